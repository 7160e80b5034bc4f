// FileLock's queue (src/control/kv/file-lock.ts): waiters take turns in ticket order, and what a
// dead process leaves behind (its ticket at the head of the queue, its "starving" marker, its
// lock) does not block the living. Timing goals are in bench/kv/lock.ts.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FileLock } from '../../src/control/kv/file-lock';

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

test.run();
