/**
 * Cleanups that run however a test file's process ends: at 'exit' (also after an uncaught error)
 * and on SIGINT, SIGTERM and SIGHUP (then the process exits 128 + the signal's number). The test
 * runner ends a file that timed out with SIGTERM (scripts/run-tests.js; SIGKILL some seconds
 * later): a `finally` or an uvu after-hook does not run then, and a network namespace it was to
 * delete outlives the file. Each cleanup is synchronous (an exit handler can wait for nothing),
 * the last registered first, each once.
 */
const hooks = new Set<() => void>();
let installed = false;

const SIGNALS = { SIGHUP: 1, SIGINT: 2, SIGTERM: 15 } as const;

function runAll(): void {
  const all = [...hooks].reverse();
  hooks.clear();
  for (const h of all) {
    try {
      h();
    } catch {
      /* best effort at exit: the others still run */
    }
  }
}

/** Registers `fn`; returns the function that forgets it (call that once cleaned up, in finally). */
export function atCleanup(fn: () => void): () => void {
  if (!installed) {
    installed = true;
    process.on('exit', runAll);
    for (const [sig, n] of Object.entries(SIGNALS)) {
      process.on(sig, () => {
        runAll();
        process.exit(128 + n);
      });
    }
  }
  hooks.add(fn);
  return () => {
    hooks.delete(fn);
  };
}
