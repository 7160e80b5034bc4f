// setSchedSlice (native/README.md): the calling thread's EEVDF slice, set and read back by the
// kernel; another thread of the process keeps its own; bad values are refused.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { readFileSync } from 'node:fs';
import { release } from 'node:os';
import { Worker } from 'node:worker_threads';
import * as path from 'node:path';
import { native } from '../../src/dataplane/native';
import { applySchedSlice } from '../../src/dataplane/sched-slice';

const t = suite('native setSchedSlice');

/** EEVDF's per-task slice for SCHED_OTHER came with Linux 6.12; an older kernel ignores it. */
const [major, minor] = release().split('.').map(Number);
const customSlice = major > 6 || (major === 6 && minor >= 12);

/** se.slice of one thread of this process, in ns (/proc/PID/task/TID/sched). */
function sliceOf(tid: number | 'thread-self'): number {
  const file = tid === 'thread-self' ? '/proc/thread-self/sched' : `/proc/${process.pid}/task/${tid}/sched`;
  const m = /se\.slice\s*:\s*(\d+)/.exec(readFileSync(file, 'utf8'));
  if (!m) throw new Error(`no se.slice in ${file}`);
  return Number(m[1]);
}

t('before Linux 6.12 the call is accepted and the slice it answers is not the one asked for', () => {
  if (customSlice) return; // the next tests check the real thing
  try {
    assert.is.not(native.setSchedSlice(200_000), 200_000);
  } finally {
    native.setSchedSlice(0);
  }
});

t('sets the calling thread\'s slice, returns what the kernel holds, and 0 gives the default back', () => {
  if (!customSlice) return; // checked by the test above
  const before = sliceOf('thread-self');
  try {
    const got = native.setSchedSlice(200_000);
    assert.is(got, 200_000);
    assert.is(sliceOf('thread-self'), 200_000);
    // below the kernel's 0.1 ms floor: clamped, and the answer says so
    assert.is(native.setSchedSlice(50_000), 100_000);
  } finally {
    native.setSchedSlice(0);
  }
  assert.is(sliceOf('thread-self'), before, 'the default slice is back');
});

t('a worker thread\'s slice is its own (the main thread keeps the default)', async () => {
  if (!customSlice) return;
  const mainBefore = sliceOf('thread-self');
  const addon = path.resolve(__dirname, '..', '..', '..', 'build', 'Release', 'podway_native.node');
  const w = new Worker(`
    const { parentPort } = require('node:worker_threads');
    const fs = require('node:fs');
    const a = require(${JSON.stringify(addon)});
    const got = a.setSchedSlice(300000);
    const m = /se\\.slice\\s*:\\s*(\\d+)/.exec(fs.readFileSync('/proc/thread-self/sched', 'utf8'));
    parentPort.postMessage({ got, seen: Number(m[1]) });
  `, { eval: true });
  try {
    const r = await new Promise<{ got: number; seen: number }>((resolve, reject) => { w.once('message', resolve); w.once('error', reject); });
    assert.is(r.got, 300_000);
    assert.is(r.seen, 300_000);
    assert.is(sliceOf('thread-self'), mainBefore);
  } finally {
    await w.terminate();
  }
});

t('values outside 0..100 ms or not numbers are refused, and applySchedSlice reports them', () => {
  for (const bad of [-1, 100_000_001, Number.NaN]) assert.throws(() => native.setSchedSlice(bad), /ns must be 0\.\.100000000/);
  assert.throws(() => (native.setSchedSlice as unknown as (x: unknown) => number)('100000'), /ns must be/);
  const r = applySchedSlice(100_001);
  assert.ok('error' in r && /must be 0\.\.100000/.test(r.error));
  const ok = applySchedSlice(0);
  assert.ok('sliceUs' in ok && ok.sliceUs > 0);
});

t.run();
