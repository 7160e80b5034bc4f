// Fairness of FileLock (the embedded store's cross-process writer lock, also the bench's host
// lock): `procs` processes each take the lock, hold it `holdMs` (busy, as a write does), release,
// and go again until the deadline. Per acquisition: the wait. A fair lock keeps p99 near
// (procs - 1) × hold; an unfair one lets some waiters starve for seconds.
//
// Usage: node dist/bench/kv/lock.js [--procs 8] [--hold-ms 1] [--seconds 4] [--impl PATH]
// (--impl: another compiled file-lock.js to compare, e.g. an older version).
import { fork } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { benchArgsOrExit } from '../e2e/bench-args';
import { percentile } from '../stats';

const BENCH_ARGS = { usage: 'usage: node dist/bench/kv/lock.js [--procs N] [--hold-ms N] [--seconds N] [--impl PATH]', flags: [], options: ['--procs', '--hold-ms', '--seconds', '--impl'] };

interface Opts { procs: number; holdMs: number; seconds: number; impl: string }

function parse(argv: string[]): Opts {
  const o: Opts = { procs: 8, holdMs: 1, seconds: 4, impl: join(__dirname, '..', '..', 'src', 'control', 'kv', 'file-lock.js') };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    const v = argv[++i];
    if (v === undefined) throw new Error(`${a} needs a value`);
    if (a === '--procs') o.procs = Number(v);
    else if (a === '--hold-ms') o.holdMs = Number(v);
    else if (a === '--seconds') o.seconds = Number(v);
    else if (a === '--impl') o.impl = v;
    else throw new Error(`unknown argument ${a} (expected --procs N, --hold-ms N, --seconds N, --impl PATH)`);
  }
  if (![o.procs, o.holdMs, o.seconds].every((n) => Number.isFinite(n) && n > 0)) throw new Error('--procs, --hold-ms and --seconds must be positive numbers');
  return o;
}


async function child(lockPath: string, impl: string, holdMs: number, endAt: number): Promise<number[]> {
  // eslint-disable-next-line @typescript-eslint/no-var-requires
  const { FileLock } = require(impl) as typeof import('../../src/control/kv/file-lock');
  const lock = new FileLock(lockPath, 60_000);
  const waits: number[] = [];
  while (Date.now() < endAt) {
    const t0 = process.hrtime.bigint();
    await lock.acquire();
    waits.push(Number(process.hrtime.bigint() - t0) / 1e6);
    const until = performance.now() + holdMs;
    while (performance.now() < until) { /* hold, as a write under the lock does */ }
    await lock.release();
    await new Promise((r) => setImmediate(r));
  }
  await lock.dispose();
  return waits;
}

async function main(): Promise<void> {
  if (process.argv[2] === '--child') {
    const [lockPath, impl, hold, endAt] = process.argv.slice(3);
    const waits = await child(lockPath!, impl!, Number(hold), Number(endAt));
    process.send!(waits, () => process.exit(0));
    return;
  }
  // --help prints the usage; an unknown option or one missing its value exits 2 (bench-args.ts)
  benchArgsOrExit(process.argv.slice(2), BENCH_ARGS);
  const o = parse(process.argv.slice(2));
  const dir = mkdtempSync(join(tmpdir(), 'podway-lockbench-'));
  const pids: number[] = [];
  try {
    const endAt = Date.now() + 300 + o.seconds * 1000;
    const results = await Promise.all(Array.from({ length: o.procs }, () => new Promise<number[]>((resolve, reject) => {
      const c = fork(__filename, ['--child', join(dir, 'lock'), o.impl, String(o.holdMs), String(endAt)], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
      if (c.pid) pids.push(c.pid);
      c.once('message', (m) => resolve(m as number[]));
      c.once('exit', (code) => reject(new Error(`lock bench child exited ${code} without a result`)));
    })));
    const all = results.flat().sort((a, b) => a - b);
    const perProc = results.map((w) => w.length);
    console.log(`FileLock ${o.impl}: ${o.procs} processes, hold ${o.holdMs} ms, ${o.seconds} s: ${all.length} acquisitions (${(all.length / o.seconds).toFixed(0)}/s; per process min ${Math.min(...perProc)} max ${Math.max(...perProc)}), wait p50 ${percentile(all, 50).toFixed(2)} ms, p99 ${percentile(all, 99).toFixed(2)} ms, max ${all[all.length - 1]!.toFixed(1)} ms`);
  } finally {
    for (const pid of pids) try { process.kill(pid, 'SIGKILL'); } catch { /* exited */ }
    rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((e) => { console.error(e); process.exit(1); });
