/**
 * Runs bench/io-peer.js inside a network namespace and speaks its line protocol: wait for
 * {"ready":true}, tell a receiver to stop (a line on stdin), collect {"result": ...}. Every wait is
 * bounded; a peer that overstays is killed by its own pid.
 */
import { spawn, ChildProcess } from 'node:child_process';
import * as path from 'node:path';
import { Netns } from '../test/helpers/netns';

const PEER = path.join(__dirname, 'io-peer.js');

export class Peer {
  private readonly child: ChildProcess;
  private buf = '';
  private stderr = '';
  private readyP: Promise<void>;
  private resultP: Promise<Record<string, unknown>>;
  private exited = false;
  private snaps: ((v: Record<string, unknown>) => void)[] = [];

  constructor(readonly ns: Netns, readonly args: string[], readonly timeoutMs: number) {
    this.child = spawn('ip', ['netns', 'exec', ns.name, process.execPath, PEER, ...args], {
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let onReady!: () => void;
    let onResult!: (r: Record<string, unknown>) => void;
    let onFail!: (e: Error) => void;
    let onReadyFail!: (e: Error) => void;
    this.readyP = new Promise((res, rej) => { onReady = res; onReadyFail = rej; });
    this.resultP = new Promise((res, rej) => { onResult = res; onFail = rej; });
    this.readyP.catch(() => undefined);
    this.resultP.catch(() => undefined);
    const what = `io-peer ${args.join(' ')}`;
    const fail = (msg: string) => {
      const e = new Error(`${what}: ${msg}${this.stderr ? `\n${this.stderr.trim()}` : ''}`);
      onReadyFail(e);
      onFail(e);
    };
    this.child.stdout!.setEncoding('utf8');
    this.child.stdout!.on('data', (s: string) => {
      this.buf += s;
      let i: number;
      while ((i = this.buf.indexOf('\n')) >= 0) {
        const line = this.buf.slice(0, i);
        this.buf = this.buf.slice(i + 1);
        let m: Record<string, unknown>;
        try { m = JSON.parse(line); } catch { continue; }
        if (m.ready) onReady();
        else if (m.snap) this.snaps.shift()?.(m.snap as Record<string, unknown>);
        else if (m.result) onResult(m.result as Record<string, unknown>);
        else if (m.error) fail(String(m.error));
      }
    });
    this.child.stderr!.setEncoding('utf8');
    this.child.stderr!.on('data', (s: string) => { this.stderr += s; });
    this.child.stdin!.on('error', () => undefined);
    this.child.on('error', (e) => fail(e.message));
    this.child.on('exit', (code, sig) => {
      this.exited = true;
      fail(`exited (${code ?? sig}) without a result`);
    });
    const timer = setTimeout(() => {
      fail(`no result after ${timeoutMs} ms`);
      this.kill();
    }, timeoutMs);
    timer.unref();
    this.resultP.finally(() => clearTimeout(timer)).catch(() => undefined);
  }

  ready(): Promise<void> {
    return this.readyP;
  }

  /** A receiver's counters so far (it keeps running). */
  snap(timeoutMs = 3000): Promise<Record<string, unknown>> {
    return new Promise((res, rej) => {
      const t = setTimeout(() => rej(new Error(`io-peer ${this.args[0]}: no snapshot in ${timeoutMs} ms`)), timeoutMs);
      this.snaps.push((v) => { clearTimeout(t); res(v); });
      this.child.stdin!.write('snap\n');
    });
  }

  /** Tell a receiver to stop and report. */
  stop(): void {
    if (!this.exited) this.child.stdin!.end('stop\n');
  }

  result(): Promise<Record<string, unknown>> {
    return this.resultP;
  }

  kill(): void {
    if (!this.exited && this.child.pid) {
      try { process.kill(this.child.pid, 'SIGKILL'); } catch { /* gone */ }
    }
  }
}
