/**
 * The per-container lock files of the CNI's ADDs (cni/container-lock.ts) that no DEL removes: a
 * pod whose netns vanished with podway down, cleaned up by hand with `podway status`'s commands,
 * left `<dir>/containers/<id>.lock` for good. `podway run`'s orphan pass sweeps those no ADD holds
 * (sweepContainerLocks); one held is left, and ADDs racing the sweep keep their lock (never two
 * holders of one container's lock at once).
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, rmSync, utimesSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { containerLockDir, containerLockFile, sweepContainerLocks, withContainerLock } from '../../src/cni/container-lock';
import { OrphanHolder } from '../../src/cli/orphan-holds';

const dir = mkdtempSync(path.join(tmpdir(), `podway-ops27-locks-${process.pid}-`));
test.after(() => rmSync(dir, { recursive: true, force: true }));
const LOCK = path.join(dir, 'ipam.lock');
const opts = { ipamLockFile: LOCK, timeoutMs: 5000 };
/** An hour ago: older than the sweep's minute. */
const old = (file: string) => utimesSync(file, new Date(Date.now() - 3_600_000), new Date(Date.now() - 3_600_000));

test('a finished ADD\'s file whose DEL never came is swept once a minute old; a held one never', async () => {
  // the ADD of a pod that then vanished (no DEL): its file stays
  await withContainerLock(opts, 'gone1', async () => 'added');
  const gone = containerLockFile(LOCK, 'gone1');
  assert.ok(existsSync(gone), 'the ADD leaves its file (the DEL removes it)');
  // used just now: left (a runtime's retry finds it)
  assert.is(await sweepContainerLocks(LOCK), 0);
  assert.ok(existsSync(gone));
  old(gone);
  // an ADD under way holds its own, however old
  let release!: () => void;
  const held = new Promise<void>((r) => { release = r; });
  let entered!: () => void;
  const inside = new Promise<void>((r) => { entered = r; });
  const add = withContainerLock(opts, 'busy1', async () => { entered(); await held; return 'done'; });
  await inside;
  const busy = containerLockFile(LOCK, 'busy1');
  old(busy);
  assert.is(await sweepContainerLocks(LOCK), 1, 'the vanished pod\'s file removed');
  assert.not.ok(existsSync(gone));
  assert.ok(existsSync(busy), 'the held file stays');
  release();
  assert.is(await add, 'done');
  old(busy);
  assert.is(await sweepContainerLocks(LOCK), 1, 'let go: removed');
  assert.equal(readdirSync(containerLockDir(LOCK)), []);
  // no directory yet: nothing to sweep, no error
  assert.is(await sweepContainerLocks(path.join(dir, 'none', 'ipam.lock')), 0);
});

test('ADDs racing the sweep keep their lock: never two holders of one container\'s lock', async () => {
  // Two processes take the lock of one container 40 times each; each, holding it, makes a marker
  // file with O_EXCL (refused while the other's exists) and removes it before letting go. This
  // process sweeps with no age limit meanwhile, removing the file between their holds.
  const MOD = path.resolve(__dirname, '..', '..', 'src', 'cni', 'container-lock.js');
  const marker = path.join(dir, 'inside');
  const code = `
    const fs = require('node:fs');
    const { withContainerLock } = require(${JSON.stringify(MOD)});
    (async () => {
      for (let i = 0; i < 40; i++) {
        await withContainerLock({ ipamLockFile: ${JSON.stringify(LOCK)}, timeoutMs: 10000 }, 'race1', async () => {
          fs.closeSync(fs.openSync(${JSON.stringify(marker)}, 'wx'));
          await new Promise((r) => setTimeout(r, 1));
          fs.unlinkSync(${JSON.stringify(marker)});
        });
      }
      console.log('ok');
    })().catch((e) => { console.log('failed: ' + e.message); process.exitCode = 1; });`;
  const kids = [0, 1].map(() => spawn(process.execPath, ['-e', code], { stdio: ['ignore', 'pipe', 'pipe'] }));
  const outs = kids.map((k) => {
    let out = '';
    k.stdout!.on('data', (d) => { out += d; });
    k.stderr!.on('data', (d) => { out += d; });
    return new Promise<{ code: number | null; out: string }>((res) => k.on('close', (c) => res({ code: c, out })));
  });
  let swept = 0;
  let done = false;
  const all = Promise.all(outs).finally(() => { done = true; });
  const deadline = Date.now() + 60_000;
  try {
    while (!done && Date.now() < deadline) {
      swept += await sweepContainerLocks(LOCK, 0);
      await new Promise((r) => setImmediate(r));
    }
    let timer: NodeJS.Timeout | undefined;
    const results = await Promise.race([all, new Promise<null>((r) => { timer = setTimeout(() => r(null), Math.max(0, deadline - Date.now())); })]);
    clearTimeout(timer);
    assert.ok(results, 'both ended within 60 s');
    for (const r of results!) {
      assert.is(r.code, 0, r.out);
      assert.is(r.out.trim(), 'ok', 'every ADD took the lock alone (no marker of the other found)');
    }
    if (process.env.TEST_VERBOSE) console.log(`  swept ${swept} file(s) between the holds`);
    assert.ok(swept >= 1, 'the sweep removed the file between holds (the race happened)');
  } finally {
    for (const k of kids) if (k.exitCode === null) k.kill('SIGKILL');
  }
});

test('podway run\'s orphan pass sweeps them (at its start: no datastore needed for it)', async () => {
  await withContainerLock(opts, 'gone2', async () => undefined);
  const gone = containerLockFile(LOCK, 'gone2');
  old(gone);
  const warned: string[] = [];
  // a datastore that does not answer: the holds' part fails, said, the sweep is done before it
  const holder = new OrphanHolder('n1', { kind: 'etcd', endpoints: ['http://127.0.0.1:9'] }, [LOCK], { list: () => [], scanComplete: () => true }, { info: () => undefined, warn: (m) => warned.push(m) }, 3_600_000);
  try {
    holder.start();
    await holder.idle();
  } finally {
    await holder.stop();
  }
  assert.not.ok(existsSync(gone), 'swept by the pass');
  assert.is(holder.locksSwept, 1);
});

test.run();
