/**
 * Running commands without forking podway. Node's spawn forks the calling process; podway maps an
 * AF_PACKET receive ring per pod, so a fork copies page tables for every ring and blocks the
 * thread that forks for tens of ms at a few hundred pods (bench/stall). A Spawner forks one small
 * helper process at start, before any ring exists, and asks it to run commands (spawner-child.ts).
 *
 * `spawn()` returns a handle shaped like the part of ChildProcess that HostProgrammer uses
 * (pid, exit state, 'close'/'error' events, stdout/stderr 'data', stdin.end(input)), so the same
 * code runs commands locally (tests, or no helper) or through the helper.
 */
import { fork, spawn as nodeSpawn, ChildProcess } from 'node:child_process';
import { EventEmitter } from 'node:events';
import * as path from 'node:path';

/** What command runners need of a child process. */
export interface ChildLike {
  readonly pid: number | undefined;
  readonly exitCode: number | null;
  readonly signalCode: NodeJS.Signals | null;
  readonly stdout: { setEncoding(e: 'utf8'): unknown; on(ev: 'data', fn: (s: string) => void): unknown };
  readonly stderr: { setEncoding(e: 'utf8'): unknown; on(ev: 'data', fn: (s: string) => void): unknown };
  readonly stdin: { on(ev: 'error', fn: (e: Error) => void): unknown; end(input: string): unknown };
  on(ev: 'close', fn: (code: number | null, signal: NodeJS.Signals | null) => void): this;
  on(ev: 'error', fn: (e: Error) => void): this;
  once(ev: 'close', fn: (code: number | null, signal: NodeJS.Signals | null) => void): this;
}

export type SpawnFn = (file: string, args: string[]) => ChildLike;

/** Spawn in this process (node's own child_process). */
export const localSpawn: SpawnFn = (file, args) => nodeSpawn(file, args, { stdio: ['pipe', 'pipe', 'pipe'] }) as ChildProcess & ChildLike;

class Stream extends EventEmitter {
  setEncoding(): this {
    return this;
  }
}

class RemoteChild extends EventEmitter implements ChildLike {
  pid: number | undefined = undefined;
  exitCode: number | null = null;
  signalCode: NodeJS.Signals | null = null;
  readonly stdout = new Stream();
  readonly stderr = new Stream();
  readonly stdin: ChildLike['stdin'];
  constructor(start: (input: string) => void) {
    super();
    this.stdin = { on: () => this.stdin, end: (input: string) => start(input) };
  }
}

/** The most output Spawner.exec collects from one command (as readNamespaceAddrs' bound). */
const EXEC_MAX_CHARS = 256 << 20;

export class Spawner {
  private helper: ChildProcess | null = null;
  private nextId = 1;
  private readonly live = new Map<number, RemoteChild>();

  constructor(private readonly log: (m: string) => void = () => {}) {
    this.start();
  }

  private start(): void {
    const h = fork(path.join(__dirname, 'spawner-child.js'), [], { stdio: ['ignore', 'ignore', 'inherit', 'ipc'], serialization: 'json' });
    this.helper = h;
    // The helper never keeps podway alive by itself (it exits when podway goes: 'disconnect').
    h.unref();
    (h as unknown as { channel?: { unref(): void } }).channel?.unref();
    h.on('message', (m: { ev: string; id: number; pid?: number; data?: string; message?: string; code?: number | null; signal?: NodeJS.Signals | null }) => {
      const c = this.live.get(m.id);
      if (!c) return;
      if (m.ev === 'spawn') {
        c.pid = m.pid;
        c.emit('spawned');
      }
      else if (m.ev === 'stdout') c.stdout.emit('data', m.data);
      else if (m.ev === 'stderr') c.stderr.emit('data', m.data);
      else if (m.ev === 'error') c.emit('error', new Error(m.message));
      else if (m.ev === 'close') {
        this.live.delete(m.id);
        c.exitCode = m.code ?? null;
        c.signalCode = m.signal ?? null;
        c.emit('close', c.exitCode, c.signalCode);
      }
    });
    h.on('exit', (code, signal) => {
      if (this.helper === h) this.helper = null;
      // Commands in flight end with an error; the next spawn starts a new helper.
      for (const [id, c] of this.live) {
        this.live.delete(id);
        c.emit('error', new Error(`spawner helper exited (${signal ?? code})`));
      }
    });
    h.on('error', (e) => this.log(`spawner helper: ${e.message}`));
  }

  /** Run `file args` in the helper; input goes to its stdin when stdin.end(input) is called. */
  readonly spawn: SpawnFn = (file, args) => {
    const id = this.nextId++;
    const child = new RemoteChild((input) => {
      if (!this.helper || !this.helper.connected) {
        this.log('spawner helper is gone: starting it again');
        this.start();
      }
      this.live.set(id, child);
      this.helper!.send({ op: 'spawn', id, file, args, input });
    });
    return child;
  };

  /** Run a command and collect its output (bounded by timeoutMs, and EXEC_MAX_CHARS of output):
   * past either, the command's process group is killed (the helper starts each in a group of its
   * own: a shell's `ip` or `nsenter` goes with it) and the answer is an error. */
  exec(file: string, args: string[], timeoutMs = 10_000): Promise<{ code: number | null; stdout: string; stderr: string; error: string | null }> {
    return new Promise((resolve) => {
      const c = this.spawn(file, args);
      let stdout = '';
      let stderr = '';
      let done = false;
      const finish = (code: number | null, error: string | null) => {
        if (done) return;
        done = true;
        clearTimeout(timer);
        resolve({ code, stdout, stderr, error });
      };
      const killGroup = () => {
        try {
          process.kill(-c.pid!, 'SIGKILL');
        } catch {
          // the group gone already (it ended as the timer fired)
        }
      };
      const kill = (why: string) => {
        // Its pid not known yet (the helper has not said it started): killed once it says so,
        // not left running unsupervised.
        if (c.pid) killGroup();
        else (c as unknown as EventEmitter).once('spawned', killGroup);
        finish(null, why);
      };
      const timer = setTimeout(() => kill(`timed out after ${timeoutMs} ms`), timeoutMs);
      const more = () => {
        if (stdout.length + stderr.length > EXEC_MAX_CHARS) kill(`more than ${EXEC_MAX_CHARS} characters of output`);
      };
      c.stdout.on('data', (s) => {
        stdout += s;
        more();
      });
      c.stderr.on('data', (s) => {
        stderr += s;
        more();
      });
      c.on('error', (e) => finish(null, e.message));
      c.on('close', (code) => finish(code, null));
      c.stdin.end('');
    });
  }

  close(): void {
    const h = this.helper;
    this.helper = null;
    if (h && h.exitCode === null) h.kill('SIGTERM');
  }
}
