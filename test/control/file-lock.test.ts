// FileLock's queue (src/control/kv/file-lock.ts): waiters take turns in ticket order, and what a
// dead process leaves behind (its ticket at the head of the queue, its "starving" marker, its
// lock) does not block the living. Timing goals are in bench/kv/lock.ts.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FileLock, FileLockAbortedError } from '../../src/control/kv/file-lock';

/** A token naming a process that has exited. */
function deadToken(): string {
  const r = spawnSync('true');
  return `${r.pid} 1 dead\n`;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

test('dead leftovers (ticket at the head, starving marker, held lock) are cleared by the next waiter', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'podway-filelock-'));
  const path = join(dir, 'lock');
  const lock = new FileLock(path, 3000);
  try {
    writeFileSync(`${path}.q.00000000000000000001.1.dead`, deadToken());
    writeFileSync(`${path}.starving`, deadToken());
    writeFileSync(path, deadToken());
    const t0 = Date.now();
    await lock.acquire();
    assert.ok(Date.now() - t0 < 2500, 'acquired before the timeout');
    assert.equal(readdirSync(dir).filter((n) => n.includes('.q.') || n.endsWith('.starving')), [], 'dead ticket and marker removed');
    await lock.release();
    assert.not.ok(existsSync(path));
  } finally {
    await lock.dispose();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('waiters get the lock in the order they queued; a live holder makes the others wait, then time out clearly', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'podway-filelock-'));
  const path = join(dir, 'lock');
  const holder = new FileLock(path, 1000);
  const waiters = Array.from({ length: 4 }, () => new FileLock(path, 10_000));
  try {
    await holder.acquire();
    const order: number[] = [];
    const pending: Promise<void>[] = [];
    for (let i = 0; i < waiters.length; i++) {
      pending.push(waiters[i]!.acquire().then(async () => {
        order.push(i);
        await sleep(5);
        await waiters[i]!.release();
      }));
      // Let each queue its ticket before the next arrives (tickets sort by arrival time).
      for (let t = 0; t < 100 && readdirSync(dir).filter((n) => n.includes('.q.')).length < i + 1; t++) await sleep(5);
    }
    assert.is(readdirSync(dir).filter((n) => n.includes('.q.')).length, 4, 'four tickets queued');
    const late = new FileLock(path, 300);
    try {
      await late.acquire();
      assert.unreachable('a held lock was taken');
    } catch (e) {
      assert.match((e as Error).message, new RegExp(`timed out after 300 ms waiting for the lock ${path.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')} \\(held by pid ${process.pid}, 5 waiting\\)`));
    } finally {
      await late.dispose();
    }
    await holder.release();
    await Promise.all(pending);
    assert.equal(order, [0, 1, 2, 3]);
    assert.equal(readdirSync(dir).filter((n) => n.includes('.q.')), [], 'tickets removed');
  } finally {
    for (const l of [holder, ...waiters]) await l.dispose();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a holder in another PID namespace is not judged dead by its PID: the lock is waited for and the timeout names the namespace', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'podway-filelock-'));
  const path = join(dir, 'lock');
  // A real process in a new PID namespace (PID 1 there): seen from here, /proc/1 is this host's
  // init with another start time, so judging by the PID would break its live lock.
  const script = `const { FileLock } = require(${JSON.stringify(require.resolve('../../src/control/kv/file-lock'))});
const l = new FileLock(${JSON.stringify(path)}, 5000);
l.acquire().then(() => { process.stdout.write('held ' + process.pid + '\\n'); process.stdin.resume(); process.stdin.on('end', () => l.dispose().then(() => process.exit(0))); });`;
  const child = spawn('unshare', ['--pid', '--fork', '--kill-child', process.execPath, '-e', script], { stdio: ['pipe', 'pipe', 'inherit'] });
  const lock = new FileLock(path, 1500);
  try {
    let out = '';
    child.stdout!.on('data', (d) => { out += d; });
    for (let t = 0; t < 200 && !out.includes('held'); t++) await sleep(50);
    assert.match(out, /^held 1\n/, 'the holder is PID 1 of its own namespace');
    const token = readFileSync(path, 'utf8').trim().split(' ');
    assert.is(token[0], '1');
    assert.ok(token[3] && token[3] !== readlinkSync('/proc/self/ns/pid'), `the token names the holder's PID namespace: ${token.join(' ')}`);
    try {
      await lock.acquire();
      assert.unreachable('a live lock of another PID namespace was broken');
    } catch (e) {
      assert.match((e as Error).message, `held by pid 1 of another PID namespace, ${token[3]}`);
    }
    assert.ok(existsSync(path), 'the holder keeps its lock');
  } finally {
    child.stdin!.end();
    await new Promise((r) => { if (child.exitCode !== null) r(null); else { child.once('exit', r); setTimeout(() => { child.kill('SIGKILL'); r(null); }, 5000).unref(); } });
    await lock.dispose();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('acquire(signal): an abort ends the wait with FileLockAbortedError, leaving no ticket', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'podway-filelock-'));
  const path = join(dir, 'lock');
  const holder = new FileLock(path, 1000);
  const waiter = new FileLock(path, 60_000);
  try {
    await holder.acquire();
    const ac = new AbortController();
    const waited = waiter.acquire(ac.signal).then(() => 'acquired', (e) => e);
    for (let t = 0; t < 200 && readdirSync(dir).filter((n) => n.includes('.q.')).length === 0; t++) await sleep(5);
    ac.abort();
    const r = await waited;
    assert.instance(r, FileLockAbortedError);
    assert.equal(readdirSync(dir).filter((n) => n.includes('.q.')), [], 'ticket removed');
    assert.ok(existsSync(path), 'the holder still has it');
  } finally {
    await waiter.dispose();
    await holder.dispose();
    rmSync(dir, { recursive: true, force: true });
  }
});

test.run();
