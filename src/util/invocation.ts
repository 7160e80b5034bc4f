// The podway command as the user ran it, for every hint that prints a podway command line
// ("clean up with: podway delete workloadendpoint ..."). Installed, it is `podway`; on a checkout
// the user runs `node bin/podway.js ...` (or `./bin/podway.js`), or `npx podway ...`, and a hint
// naming `podway` sent them looking for a command they do not have.
//
// Read from this process's own start (process.argv, and npm's environment for npx):
// - npx / `npm exec` (npm sets npm_lifecycle_event=npx for what it runs): `npx podway`;
// - bin/podway.js started by path (`node bin/podway.js`, `./bin/podway.js`, a package.json
//   script): `node <that path>`, relative to the working directory when it lies under it;
// - anything else (the installed `podway` on PATH, whose argv[1] is the `podway` link; the CNI
//   plugin, started by the runtime through its shim; tests): `podway`.
// Worker threads take the main thread's (INVOCATION_ENV). A hint made by `podway run` names the command podway run was started with; `podway status`
// makes the lines it prints from the endpoints' data itself (observe/stale-endpoints.ts), so its
// commands are the ones of the user reading them.
import { basename, isAbsolute, relative, resolve } from 'node:path';
import { isMainThread } from 'node:worker_threads';

/** The entry point package.json's "bin" names (bin/podway.js). */
const ENTRY = 'podway.js';

/** The command for the start `argv` (process.argv's shape) with `env` in `cwd`. */
export function commandOf(argv: readonly string[], env: NodeJS.ProcessEnv, cwd: string): string {
  if (env.npm_lifecycle_event === 'npx') return 'npx podway';
  const script = argv[1];
  if (typeof script !== 'string' || basename(script) !== ENTRY) return 'podway';
  const abs = resolve(cwd, script);
  const rel = relative(cwd, abs);
  const shown = rel !== '' && !rel.startsWith('..') && !isAbsolute(rel) ? rel : abs;
  return `node ${shellWord(shown)}`;
}

let cached: string | null = null;

/**
 * Where the main thread leaves its answer for podway's worker threads (the join, model, address
 * store and forwarding threads), whose own argv[1] is their script: a Worker's environment is a
 * copy of the main thread's as it was made. The main thread always reads its own argv.
 */
export const INVOCATION_ENV = 'PODWAY_INVOCATION';

/** The podway command as this process was started (commandOf of process.argv), e.g. `node bin/podway.js`. */
export function podwayCommand(): string {
  if (cached !== null) return cached;
  if (isMainThread) {
    cached = commandOf(process.argv, process.env, process.cwd());
    process.env[INVOCATION_ENV] = cached;
  } else {
    cached = process.env[INVOCATION_ENV] || 'podway';
  }
  return cached;
}

/** A path as one shell word: as it is when it needs no quoting, else single-quoted. */
function shellWord(s: string): string {
  return /^[A-Za-z0-9_./+-]+$/.test(s) ? s : `'${s.replace(/'/g, `'\\''`)}'`;
}
