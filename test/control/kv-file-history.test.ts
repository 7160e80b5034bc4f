// FileKv's in-memory event history per instance (watchHistory): an instance that never watches
// (podway run's address-store thread and upkeep store: open.ts watches false) keeps none of the
// events it reads, however many; a fold it makes still keeps in the files every event the files
// kept before (taken from the files), so another process's watcher from an older revision gets
// the exact events, and one from before them a clear resync ('compacted'), never a gap; an
// instance keeping fewer events than the files serves a watcher from before its memory with a
// resync too.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FileKv } from '../../src/control/kv/file-kv';
import type { KvEvent } from '../../src/control/kv/kv';
import { openKvStore } from '../../src/control/kv/open';
import { collectEvents } from '../helpers/kv-conformance';

const dirs: string[] = [];
function tempDir(): string {
  const d = mkdtempSync(join(tmpdir(), 'podway-filekv-history-'));
  dirs.push(d);
  return d;
}
const held = (kv: FileKv) => (kv as unknown as { history: unknown[] }).history.length;
const valueOf = (e: KvEvent) => (e.type === 'put' ? `${e.entry.key}=${e.entry.value}@${e.entry.modRevision}` : `del ${e.key}@${e.modRevision}`);

/** Resolves with the reason of the watch's first resync (or 'events' if events came first). */
function firstWord(kv: FileKv, prefix: string, from: number): Promise<string> {
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve('nothing within 5 s'), 5000);
    kv.watch(prefix, from, {
      onEvents: () => { clearTimeout(timer); resolve('events'); },
      onResync: (r) => { clearTimeout(timer); resolve(r); },
    });
  });
}

test.after(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

test('watchHistory 0: no event kept however many are read or written; watch() refused, saying why; openKvStore watches:false gives it', async () => {
  const dir = tempDir();
  const writer = new FileKv({ dir });
  const quiet = new FileKv({ dir, watchHistory: 0 });
  const full = new FileKv({ dir });
  try {
    let cur = (await writer.create('/n/x', '0'))!;
    for (let i = 1; i < 300; i++) cur = (await writer.update('/n/x', String(i), cur.modRevision))!;
    await quiet.create('/n/own', 'q');
    assert.is((await quiet.get('/n/x'))!.value, '299', 'it reads as any instance');
    assert.is((await full.get('/n/x'))!.value, '299');
    assert.is(held(quiet), 0, 'nothing kept for watchers');
    assert.is(held(full), 301, 'a default instance keeps every event read (to 2 x historyLimit)');
    assert.throws(() => quiet.watch('/n/', 1, { onEvents: () => undefined, onResync: () => undefined }), /keeps no events for watchers \(watchHistory 0\): it cannot watch/);
    const opened = openKvStore({ kind: 'embedded', dir } as Parameters<typeof openKvStore>[0], { use: 'run', watches: false }) as FileKv;
    await opened.get('/n/x');
    assert.is(held(opened), 0, 'openKvStore watches:false');
    await opened.close();
  } finally {
    await writer.close();
    await quiet.close();
    await full.close();
  }
});

test('a fold by an instance that keeps no events keeps the files\' events: another watcher from an older revision gets them exactly, one from before them a resync', async () => {
  const dir = tempDir();
  // the files keep 40 events; folds after 25 log lines
  const opts = { dir, historyLimit: 40, rotateAfter: 25, pollMs: 20 };
  const writer = new FileKv(opts);
  const quiet = new FileKv({ ...opts, watchHistory: 0 });
  try {
    let cur = (await writer.create('/h/x', '0'))!;
    for (let i = 1; i < 20; i++) cur = (await writer.update('/h/x', String(i), cur.modRevision))!;
    const gen0 = JSON.parse(readFileSync(join(dir, 'state.json'), 'utf8')).generation as number;
    // the quiet instance writes until it is the one whose write folds the log
    let q = (await quiet.create('/h/q', '0'))!;
    for (let i = 1; i < 10; i++) q = (await quiet.update('/h/q', String(i), q.modRevision))!;
    const state = JSON.parse(readFileSync(join(dir, 'state.json'), 'utf8')) as { generation: number; revision: number; compactRevision: number; history: { r: number }[] };
    assert.ok(state.generation > gen0, `the quiet instance folded (generation ${gen0} -> ${state.generation})`);
    assert.is(held(quiet), 0);
    assert.is(state.revision, 25, 'folded at its write of revision 25 (the 25th line)');
    // it kept what a default instance would have: the events after revision - historyLimit (none dropped: 25 < 40)
    assert.is(state.compactRevision, 0, 'no event dropped from the files');
    assert.equal(state.history.map((r) => r.r), Array.from({ length: 25 }, (_, i) => i + 1), 'the snapshot holds every event, in order');
    // another process's view: a watcher from revision 5 gets revisions 5..30 exactly
    const reader = new FileKv(opts);
    const w = collectEvents(reader, '/h/', 5, 26);
    const events = await w.done;
    await w.close();
    const expected = [...Array.from({ length: 16 }, (_, i) => `/h/x=${i + 4}@${i + 5}`), ...Array.from({ length: 10 }, (_, i) => `/h/q=${i}@${i + 21}`)];
    assert.equal(events.map(valueOf), expected);
    // more writes by the quiet one, past the files' 40: its next fold drops the oldest, and a
    // watcher from before what the files keep is told to re-list
    for (let i = 10; i < 60; i++) q = (await quiet.update('/h/q', String(i), q.modRevision))!;
    const later = JSON.parse(readFileSync(join(dir, 'state.json'), 'utf8')) as { revision: number; compactRevision: number; history: { r: number }[] };
    assert.ok(later.compactRevision > 0 && later.compactRevision >= later.revision - 40 - 25, `compacted to ${later.compactRevision} of ${later.revision}`);
    assert.is(later.compactRevision + later.history.length, later.revision, 'the snapshot\'s history ends at its revision');
    const fresh = new FileKv(opts);
    assert.is(await firstWord(fresh, '/h/', later.compactRevision), 'compacted', 'from before the kept events: a resync');
    await fresh.close();
    const fresh2 = new FileKv(opts);
    const w2 = collectEvents(fresh2, '/h/', later.compactRevision + 1, q.modRevision - later.compactRevision);
    const got = await w2.done;
    await w2.close();
    assert.is(got[0]!.type === 'put' && got[0]!.entry.modRevision, later.compactRevision + 1, 'from the first kept event, no gap');
    assert.is(got.length, q.modRevision - later.compactRevision);
    await fresh2.close();
    await reader.close();
  } finally {
    await writer.close();
    await quiet.close();
  }
});

test('an instance keeping fewer events than the files: a watcher from before its memory gets a resync, one within it the events', async () => {
  const dir = tempDir();
  const writer = new FileKv({ dir });
  const short = new FileKv({ dir, watchHistory: 10, pollMs: 20 });
  try {
    let cur = (await writer.create('/s/x', '0'))!;
    for (let i = 1; i < 50; i++) cur = (await writer.update('/s/x', String(i), cur.modRevision))!;
    await short.get('/s/x');
    assert.ok(held(short) <= 20, `at most 2 x watchHistory kept (${held(short)})`);
    assert.is(await firstWord(short, '/s/', 2), 'compacted');
    const w = collectEvents(short, '/s/', 48, 3);
    assert.equal((await w.done).map(valueOf), ['/s/x=47@48', '/s/x=48@49', '/s/x=49@50']);
    await w.close();
  } finally {
    await writer.close();
    await short.close();
  }
});

test.run();
