/**
 * Network namespaces for tests: unique names, commands run inside them, and cleanup that runs even
 * when the test fails. Tests only send traffic between addresses inside these namespaces.
 */
import { execFileSync, spawn, ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';

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
 * Create namespaces named pw-<label>-<tag>, bring up their loopback, run fn, and always delete them.
 */
export async function withNetns<T>(labels: string[], fn: (ns: Netns[]) => Promise<T> | T): Promise<T> {
  if (!isRoot()) throw new Error('this test needs root (network namespaces)');
  const t = tag();
  const made: Netns[] = [];
  try {
    for (const l of labels) {
      const ns = new Netns(`pw-${l}-${t}`);
      ip('netns', 'add', ns.name);
      made.push(ns);
      ns.ip('link', 'set', 'lo', 'up');
    }
    return await fn(made);
  } finally {
    for (const ns of made) sh('ip', ['netns', 'del', ns.name], { allowFail: true });
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
 * send still succeeds; under load that work runs late and a test's first frames vanish.
 */
export function waitQdiscActive(ns: Netns, dev: string, timeoutMs = 3000): void {
  const end = Date.now() + timeoutMs;
  const nap = new Int32Array(new SharedArrayBuffer(4));
  for (;;) {
    const line = ns.ip('-o', 'link', 'show', 'dev', dev);
    if (/LOWER_UP/.test(line) && !/qdisc noop/.test(line)) return;
    if (Date.now() >= end) throw new Error(`${ns.name}/${dev}: not ready to transmit after ${timeoutMs} ms: ${line.trim()}`);
    Atomics.wait(nap, 0, 0, 5);
  }
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
