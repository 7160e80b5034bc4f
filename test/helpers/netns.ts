/**
 * Network namespaces for tests: unique names, commands run inside them, and cleanup that runs even
 * when the test fails. Tests only send traffic between addresses inside these namespaces.
 */
import { execFileSync, spawn, spawnSync, ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { atCleanup } from './cleanup';

/** Run a command, returning stdout; a failure throws with the command and its stderr. */
export function sh(cmd: string, args: string[], opts: { allowFail?: boolean; timeoutMs?: number } = {}): string {
  try {
    return execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], timeout: opts.timeoutMs ?? 20_000 });
  } catch (e) {
    if (opts.allowFail) return '';
    const err = e as { stderr?: string; message: string };
    throw new Error(`${cmd} ${args.join(' ')}: ${err.stderr?.trim() || err.message}`);
  }
}

export function ip(...args: string[]): string {
  return sh('ip', args);
}

/** A short unique tag: namespace and interface names must stay unique across parallel runs. */
export function tag(): string {
  return randomBytes(3).toString('hex');
}

export class Netns {
  readonly path: string;
  constructor(readonly name: string) {
    this.path = `/run/netns/${name}`;
  }
  /** Run a command inside the namespace. */
  exec(cmd: string, args: string[], opts?: { allowFail?: boolean; timeoutMs?: number }): string {
    return sh('ip', ['netns', 'exec', this.name, cmd, ...args], opts);
  }
  ip(...args: string[]): string {
    return sh('ip', ['-n', this.name, ...args]);
  }
  spawn(cmd: string, args: string[]): ChildProcess {
    return spawn('ip', ['netns', 'exec', this.name, cmd, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  }
}

export function isRoot(): boolean {
  return typeof process.getuid === 'function' && process.getuid() === 0;
}

/**
 * `ip netns add name`, its deletion registered with atCleanup (./cleanup.ts: at exit and on the
 * test runner's SIGTERM, where a finally does not run). Returns what deletes it now (in finally)
 * and forgets that registration.
 */
export function addNetns(name: string): () => void {
  const del = () => void sh('ip', ['netns', 'del', name], { allowFail: true });
  const forget = atCleanup(del);
  try {
    ip('netns', 'add', name);
  } catch (e) {
    forget();
    throw e;
  }
  return () => {
    forget();
    del();
  };
}

/**
 * Create namespaces named pw-<label>-<tag>, bring up their loopback, run fn, and always delete them
 * (also when the runner's SIGTERM ends the file: addNetns).
 */
export async function withNetns<T>(labels: string[], fn: (ns: Netns[]) => Promise<T> | T): Promise<T> {
  if (!isRoot()) throw new Error('this test needs root (network namespaces)');
  const t = tag();
  const made: Netns[] = [];
  const deletes: (() => void)[] = [];
  try {
    for (const l of labels) {
      const ns = new Netns(`pw-${l}-${t}`);
      deletes.push(addNetns(ns.name));
      made.push(ns);
      ns.ip('link', 'set', 'lo', 'up');
    }
    return await fn(made);
  } finally {
    for (const del of deletes) del();
  }
}

/** A veth pair with one end in each namespace (names must be <= 15 bytes). */
export function veth(a: Netns, aName: string, b: Netns, bName: string): void {
  ip('link', 'add', aName, 'netns', a.name, 'type', 'veth', 'peer', 'name', bName, 'netns', b.name);
  a.ip('link', 'set', aName, 'up');
  b.ip('link', 'set', bName, 'up');
  waitQdiscActive(a, aName);
  waitQdiscActive(b, bName);
}

/**
 * Wait (bounded) until a link that was just set up can transmit. Until the kernel's linkwatch
 * work activates its qdisc, a device keeps `noop`, which drops every frame while the sender's
 * send still succeeds; under load that work runs late and a test's first frames vanish. The bound,
 * 20 s by default (was 3 s), is for a loaded host: the wait ends as soon as the link is ready
 * (usually within a second), asking every 5 ms at first and every 50 ms after the first second.
 */
export function waitQdiscActive(ns: Netns, dev: string, timeoutMs = 20_000): void {
  const start = Date.now();
  const end = start + timeoutMs;
  const nap = new Int32Array(new SharedArrayBuffer(4));
  for (;;) {
    const line = ns.ip('-o', 'link', 'show', 'dev', dev);
    if (/LOWER_UP/.test(line) && !/qdisc noop/.test(line)) return;
    if (Date.now() >= end) throw new Error(`${ns.name}/${dev}: not ready to transmit after ${timeoutMs} ms: ${line.trim()}`);
    Atomics.wait(nap, 0, 0, Date.now() - start < 1000 ? 5 : 50);
  }
}

/**
 * Set links up and wait (bounded) until each of `ready` (default: all of them) can transmit: a
 * test that sends at once on a link it just set up otherwise loses its first frames whenever the
 * kernel's linkwatch work runs late (see waitQdiscActive). A bridge need not be listed in `ready`.
 */
export function linksUp(ns: Netns, devs: string[], ready: string[] = devs): void {
  for (const d of devs) ns.ip('link', 'set', d, 'up');
  for (const d of ready) waitQdiscActive(ns, d);
}

/** Poll a condition until it holds or the time is up (every wait in a test is bounded). */
export async function waitFor(cond: () => boolean, timeoutMs: number, stepMs = 5): Promise<boolean> {
  const end = Date.now() + timeoutMs;
  while (Date.now() < end) {
    if (cond()) return true;
    await new Promise((r) => setTimeout(r, stepMs));
  }
  return cond();
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Set in the copy of a test file that runPrivateNetns started (inside its namespace). */
const PRIVATE_NETNS_ENV = 'PODWAY_TEST_PRIVATE_NETNS';

/**
 * Run the calling test file in a network namespace of its own: the first time (in the caller's
 * namespace) this starts the same file under `unshare --net` and exits with its status, so nothing
 * after the call runs there; in that copy (with a mount namespace of its own too, for /sys) it
 * returns and the file's tests run. For tests of the
 * engine in-process on a MemoryIO: findUnderlay, nft and the sysctls then act on the namespace's
 * own interfaces and ruleset, and the namespace goes away with the process (no cleanup to miss).
 * Processes the tests start must still be stopped by their PID before the file ends.
 */
export function runPrivateNetns(timeoutMs = 120_000): void {
  if (process.env[PRIVATE_NETNS_ENV] === '1') return;
  if (!isRoot()) {
    console.error('this test needs root (unshare --net)');
    process.exit(1);
  }
  // a mount namespace too, with /sys mounted again: sysfs shows the interfaces of the namespace
  // that mounted it (as `ip netns exec` does)
  const r = spawnSync('unshare', ['--net', '--mount', '--', 'sh', '-c', 'mount -t sysfs sysfs /sys && exec "$0" "$@"', process.execPath, ...process.execArgv, process.argv[1]], {
    stdio: 'inherit',
    env: { ...process.env, [PRIVATE_NETNS_ENV]: '1' },
    timeout: timeoutMs,
    killSignal: 'SIGKILL',
  });
  if (r.error) console.error(`unshare --net --mount: ${r.error.message}`);
  process.exit(r.status ?? 1);
}
