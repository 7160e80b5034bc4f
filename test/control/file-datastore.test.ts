import { mkdtempSync, renameSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { FileDatastore, loadClusterFile } from '../../src/control/file-datastore';
import type { ClusterSnapshot } from '../../src/control/snapshot';
import { affinity, node, pool, yamlOf } from './fixtures';

const WAIT_MS = 5000;
const tempDirs: string[] = [];
const stores: FileDatastore[] = [];

function tempFile(contents: string): string {
  const dir = mkdtempSync(path.join(tmpdir(), 'podway-control-'));
  tempDirs.push(dir);
  const file = path.join(dir, 'cluster.yaml');
  writeFileSync(file, contents);
  return file;
}

/** Saves the way many editors do: write a temp file next to it, then rename over the original. */
function saveByRename(file: string, contents: string): void {
  const tmp = `${file}.swp`;
  writeFileSync(tmp, contents);
  renameSync(tmp, file);
}

/** Resolves with the next value a subscribe-style API delivers, or rejects after WAIT_MS. */
function next<T>(subscribe: (fn: (value: T) => void) => () => void, what: string): Promise<T> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      unsubscribe();
      reject(new Error(`no ${what} within ${WAIT_MS} ms`));
    }, WAIT_MS);
    const unsubscribe = subscribe((value) => {
      clearTimeout(timer);
      unsubscribe();
      resolve(value);
    });
  });
}

const good = yamlOf(pool('p', '10.244.0.0/16', { vxlanMode: 'Always' }), node('node1', '10.99.0.1/24', '10.244.0.0'));
const goodEdit = yamlOf(pool('p', '10.244.0.0/16', { vxlanMode: 'CrossSubnet' }), node('node1', '10.99.0.1/24', '10.244.0.0'),
  affinity('node1', '10.244.0.0/26'));
const badEdit = yamlOf(pool('p', '10.244.0.0/16', { vxlanMode: 'Sometimes' }), node('node1', '10.99.0.1/24', '10.244.0.0'));

test.after.each(async () => {
  await Promise.all(stores.splice(0).map((s) => s.close()));
  for (const dir of tempDirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

test('loadClusterFile reads once; a missing file names the path', async () => {
  const file = tempFile(good);
  const s = await loadClusterFile(file);
  assert.is(s.source, file);
  assert.is(s.ipPools[0]!.spec.vxlanMode, 'Always');
  const missing = path.join(path.dirname(file), 'nope.yaml');
  try {
    await loadClusterFile(missing);
    assert.unreachable('should have thrown');
  } catch (err) {
    assert.match((err as Error).message, `${missing}: cannot read: ENOENT`);
  }
});

test('start() delivers the initial snapshot; a rename-save applies; a bad edit is reported and the last good stays', async () => {
  const file = tempFile(good);
  const store = new FileDatastore(file, { debounceMs: 30 });
  stores.push(store);
  const seen: ClusterSnapshot[] = [];
  store.onSnapshot((s) => seen.push(s));
  const initial = await store.start();
  assert.is(seen.length, 1);
  assert.is(store.current(), initial);

  const applied = next<ClusterSnapshot>((fn) => store.onSnapshot(fn), 'snapshot');
  saveByRename(file, goodEdit);
  const edited = await applied;
  assert.is(edited.ipPools[0]!.spec.vxlanMode, 'CrossSubnet');
  assert.is(edited.blockAffinities.length, 1);
  assert.is(store.current(), edited);

  const rejected = next<Error>((fn) => store.onError(fn), 'error');
  writeFileSync(file, badEdit); // in-place write this time
  const err = await rejected;
  assert.is(err.message, `${file}: document 1 (IPPool p): spec.vxlanMode: expected one of Never|Always|CrossSubnet, got "Sometimes"`);
  assert.is(store.current(), edited, 'last good snapshot stays in force');

  const fixed = next<ClusterSnapshot>((fn) => store.onSnapshot(fn), 'snapshot');
  saveByRename(file, good);
  assert.is((await fixed).ipPools[0]!.spec.vxlanMode, 'Always');
});

test('a deleted file is reported; the snapshot stays; recreating it applies', async () => {
  const file = tempFile(good);
  const store = new FileDatastore(file, { debounceMs: 30 });
  stores.push(store);
  const initial = await store.start();
  const gone = next<Error>((fn) => store.onError(fn), 'error');
  unlinkSync(file);
  assert.match((await gone).message, `${file}: cannot read: ENOENT`);
  assert.is(store.current(), initial);
  const back = next<ClusterSnapshot>((fn) => store.onSnapshot(fn), 'snapshot');
  writeFileSync(file, goodEdit);
  assert.is((await back).blockAffinities.length, 1);
});

test('a throwing snapshot listener is reported as an error and does not stop the watch', async () => {
  const file = tempFile(good);
  const store = new FileDatastore(file, { debounceMs: 30 });
  stores.push(store);
  await store.start();
  store.onSnapshot(() => {
    throw new Error('node "node9" is not in the snapshot');
  });
  const reported = next<Error>((fn) => store.onError(fn), 'error');
  saveByRename(file, goodEdit);
  assert.is((await reported).message, 'node "node9" is not in the snapshot');
  assert.is(store.current()!.blockAffinities.length, 1);
});

test('start() rejects an invalid initial file; close() stops delivery', async () => {
  const file = tempFile(badEdit);
  const store = new FileDatastore(file, { debounceMs: 30 });
  stores.push(store);
  try {
    await store.start();
    assert.unreachable('should have thrown');
  } catch (err) {
    assert.match((err as Error).message, `${file}: document 1 (IPPool p): spec.vxlanMode`);
  }
  assert.is(store.current(), undefined);

  const file2 = tempFile(good);
  const store2 = new FileDatastore(file2, { debounceMs: 30 });
  stores.push(store2);
  await store2.start();
  let calls = 0;
  store2.onSnapshot(() => calls++);
  store2.onError(() => calls++);
  await store2.close();
  saveByRename(file2, goodEdit);
  await new Promise((r) => setTimeout(r, 200));
  assert.is(calls, 0);
});


test('a write that pauses with a valid prefix in the file (fewer objects) is held until the file settles; a real removal applies after the settle time', async () => {
  const three = [node('node1', '10.99.0.1/24', '10.244.0.0'), node('node2', '10.99.0.2/24', '10.244.1.0'), node('node3', '10.99.0.3/24', '10.244.2.0')];
  const full = yamlOf(pool('p', '10.244.0.0/16', { vxlanMode: 'Always' }), ...three);
  const file = tempFile(full);
  const store = new FileDatastore(file, { debounceMs: 30, shrinkSettleMs: 1000 });
  stores.push(store);
  await store.start();
  const seen: number[] = [];
  store.onSnapshot((s) => seen.push(s.nodes.length));
  // an in-place writer: the first documents, a pause longer than the debounce, then the rest
  const edited = yamlOf(pool('p', '10.244.0.0/16', { vxlanMode: 'CrossSubnet' }), ...three);
  const prefix = yamlOf(pool('p', '10.244.0.0/16', { vxlanMode: 'CrossSubnet' }), three[0]!);
  const whole = next<ClusterSnapshot>((fn) => store.onSnapshot(fn), 'snapshot');
  writeFileSync(file, prefix);
  await new Promise((r) => setTimeout(r, 400));
  writeFileSync(file, edited);
  const s = await whole;
  assert.is(s.nodes.length, 3);
  assert.is(s.ipPools[0]!.spec.vxlanMode, 'CrossSubnet');
  assert.equal(seen, [3], 'the prefix was never applied');
  // a removal that stays: applied once the file has been still for the settle time
  const removed = next<ClusterSnapshot>((fn) => store.onSnapshot(fn), 'snapshot');
  writeFileSync(file, prefix);
  assert.is((await removed).nodes.length, 1);
  assert.equal(seen, [3, 1]);
});
test.run();
