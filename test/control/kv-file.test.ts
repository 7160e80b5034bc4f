// FileKv, the embedded store: the shared conformance suite, then what only a file store must
// prove: eight processes writing at once, a writer SIGKILLed mid-stream (stale lock recovered,
// store readable), a torn log line ignored and cut, the log folded into snapshots, and a write
// on a full filesystem (a small tmpfs mounted by the test: root) failing whole.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { execFile, execFileSync, spawn } from 'node:child_process';
import { appendFileSync, chmodSync, closeSync, existsSync, mkdirSync, mkdtempSync, openSync, readdirSync, readFileSync, renameSync, rmSync, statSync, unlinkSync, writeFileSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { crc32 } from 'node:zlib';
import { FileKv } from '../../src/control/kv/file-kv';
import { KvUnavailableError } from '../../src/control/kv/kv';
import { collectEvents, conformanceSuite } from '../helpers/kv-conformance';

const WORKER = join(__dirname, '..', 'helpers', 'file-kv-worker.js');
const dirs: string[] = [];
function tempDir(): string {
  const d = mkdtempSync(join(tmpdir(), 'podway-filekv-'));
  dirs.push(d);
  return d;
}
const sleep = (ms: number) => new Promise(r => setTimeout(r, ms));

conformanceSuite({
  name: 'embedded (FileKv)',
  open: async () => new FileKv({ dir: tempDir() }),
  compact: (store, revision) => (store as FileKv).compact(revision),
}).run();

const test = suite('FileKv specifics');

test('a store made under umask 002 (many distributions\' user default) is made 0700 with 0600 files and used, not refused as group-writable; an older store\'s 0644 files are made 0600 when opened', async () => {
  const dir = join(tempDir(), 'store', 'sub');
  const was = process.umask(0o002);
  try {
    const kv = new FileKv({ dir });
    await kv.create('/a', '1');
    assert.is((await kv.get('/a'))?.value, '1');
    await kv.close();
    const again = new FileKv({ dir });
    assert.is((await again.get('/a'))?.value, '1', 'read again by a new instance');
    await again.close();
  } finally {
    process.umask(was);
  }
  // The cluster's state is the owner's only, as etcd's (0644 files and a 0755 directory before).
  assert.is(statSync(dir).mode & 0o777, 0o700);
  const files = readdirSync(dir).filter((f) => /^(state\.json|log\.\d+)$/.test(f));
  assert.is(files.length, 2, readdirSync(dir).join(' '));
  for (const f of files) assert.is(statSync(join(dir, f)).mode & 0o777, 0o600, f);
  // As a store written before left them: opened, they are made 0600.
  for (const f of files) chmodSync(join(dir, f), 0o644);
  const old = new FileKv({ dir });
  assert.is((await old.get('/a'))?.value, '1');
  await old.close();
  for (const f of files) assert.is(statSync(join(dir, f)).mode & 0o777, 0o600, f);
});

test('8 processes: 200 create-if-absent each on 400 shared keys + 200 CAS increments of one counter', async () => {
  const dir = tempDir();
  const runs = Array.from({ length: 8 }, (_, id) =>
    new Promise<string[]>((resolve, reject) => {
      execFile(process.execPath, [WORKER, 'contend', dir, String(id)], { timeout: 50_000 }, (err, stdout, stderr) => {
        if (err) reject(new Error(`worker ${id}: ${err.message}\n${stderr}`));
        else resolve(JSON.parse(stdout) as string[]);
      });
    }),
  );
  const t0 = Date.now();
  const won = await Promise.all(runs);
  const ms = Date.now() - t0;
  const allWon = won.flat();
  assert.is(allWon.length, 400, 'every key created exactly once');
  assert.is(new Set(allWon).size, 400);
  const store = new FileKv({ dir });
  try {
    const keys = await store.list('/keys/');
    assert.is(keys.entries.length, 400);
    won.forEach((ks, id) => {
      for (const k of ks) assert.is(keys.entries.find(e => e.key === k)!.value, String(id), `${k} holds its winner`);
    });
    const counter = await store.get('/counter');
    assert.is(counter!.value, '1600');
    const state = JSON.parse(readFileSync(join(dir, 'state.json'), 'utf8'));
    assert.is(state.format, 'podway-kv/1');
    console.log(`    (8 processes, 3,200 successful writes in ${ms} ms)`);
  } finally {
    await store.close();
  }
});

test('a writer SIGKILLed mid-stream leaves a readable store and a stale lock the next writer recovers', async () => {
  const dir = tempDir();
  const child = spawn(process.execPath, [WORKER, 'churn', dir], { stdio: 'ignore' });
  const exited = new Promise(r => child.once('exit', r));
  let killedHolding = false;
  const watcher = new FileKv({ dir });
  try {
    // Let it write a while, then kill it while it holds the lock (most of its loop does).
    const deadline = Date.now() + 10_000;
    while (Date.now() < deadline && ((await watcher.get('/churn'))?.modRevision ?? 0) < 100) await sleep(5);
    while (Date.now() < deadline) {
      let holder = '';
      try { holder = readFileSync(join(dir, 'lock'), 'utf8'); } catch { /* not held right now */ }
      if (holder.startsWith(`${child.pid} `)) {
        process.kill(child.pid!, 'SIGKILL');
        killedHolding = true;
        break;
      }
      await sleep(1);
    }
  } finally {
    if (!killedHolding) process.kill(child.pid!, 'SIGKILL');
    await exited;
    await watcher.close();
  }
  assert.ok(killedHolding, 'caught the writer holding the lock');
  // Whether or not the kill landed before the lock was released, it is its lock or none.
  const lockLeft = existsSync(join(dir, 'lock'));
  // The dead writer's lock is broken when it is found (its /proc entry is gone), not when the wait
  // times out: the wait is bounded at 10 s (was 2 s, with the update held under 2 s too, which a
  // loaded 2-CPU host can take for the write itself); a lock never recovered still times out.
  const store = new FileKv({ dir, lockTimeoutMs: 10_000 });
  try {
    const before = await store.get('/churn');
    assert.ok(before, 'readable after the kill');
    assert.ok(before!.modRevision >= 100 && /^\d+$/.test(before!.value), JSON.stringify(before));
    const t0 = Date.now();
    const after = await store.update('/churn', 'recovered', before!.modRevision);
    assert.ok(after, 'the next writer got the lock');
    assert.ok(Date.now() - t0 < 10_000, `the next writer waited ${Date.now() - t0} ms`);
    assert.is((await store.get('/churn'))!.value, 'recovered');
    assert.not.ok(existsSync(join(dir, 'lock')), 'lock released');
    const tokens = readdirSync(dir).filter(n => n.startsWith(`lock.${child.pid}.`));
    if (lockLeft) assert.equal(tokens, [], 'the dead writer\'s token file was cleaned up');
    console.log(`    (stale lock ${lockLeft ? 'was left and recovered' : 'was already released'})`);
  } finally {
    await store.close();
  }
});

test('a torn last line (a crash mid-append) is ignored by readers and cut by the next writer', async () => {
  const dir = tempDir();
  const store = new FileKv({ dir });
  try {
    const a = (await store.create('/a', 'whole'))!;
    const state = JSON.parse(readFileSync(join(dir, 'state.json'), 'utf8'));
    const log = join(dir, `log.${state.generation}`);
    appendFileSync(log, '1234abcd {"r":' + (a.modRevision + 1) + ',"k":"/a","v":"ha');
    const reader = new FileKv({ dir });
    try {
      assert.is((await reader.get('/a'))!.value, 'whole');
      assert.is((await reader.list('/')).revision, a.modRevision);
      const b = (await reader.update('/a', 'next', a.modRevision))!;
      assert.is(b.modRevision, a.modRevision + 1);
      assert.is((await store.get('/a'))!.value, 'next', 'the other instance reads past the cut');
      assert.not.match(readFileSync(log, 'utf8'), '"ha');
    } finally {
      await reader.close();
    }
  } finally {
    await store.close();
  }
});

test('log rotation: snapshots keep entries and recent history; another instance follows', async () => {
  const dir = tempDir();
  const store = new FileKv({ dir, historyLimit: 50, rotateAfter: 40 });
  const follower = new FileKv({ dir, historyLimit: 50 });
  try {
    const first = (await store.create('/r/x', '0'))!;
    const w = collectEvents(follower, '/r/', first.modRevision, 120, 10_000);
    let cur = first;
    for (let i = 1; i < 120; i++) cur = (await store.update('/r/x', String(i), cur.modRevision))!;
    const events = await w.done;
    assert.equal(events.map(e => (e.type === 'put' ? e.entry.value : 'del')), Array.from({ length: 120 }, (_, i) => String(i)));
    await w.close();
    const state = JSON.parse(readFileSync(join(dir, 'state.json'), 'utf8'));
    assert.ok(state.generation >= 3, `generation ${state.generation}`);
    assert.ok(state.history.length <= 50);
    assert.equal(readdirSync(dir).filter(n => n.startsWith('log.')), [`log.${state.generation}`]);
    assert.is((await follower.get('/r/x'))!.value, '119');
    // Older than the kept history: resync.
    const reason = await new Promise<string>(resolve => {
      follower.watch('/r/', first.modRevision, { onEvents: () => undefined, onResync: resolve });
    });
    assert.is(reason, 'compacted');
  } finally {
    await store.close();
    await follower.close();
  }
});

test('the store deleted or moved under a watcher: reported down (last state kept), up when back; a store made anew resyncs the watcher', async () => {
  const dir = tempDir();
  const writer = new FileKv({ dir, pollMs: 20 });
  const reader = new FileKv({ dir, pollMs: 20 });
  try {
    const a = (await writer.create('/s/a', '1'))!;
    const statuses: string[] = [];
    let resynced: string | null = null;
    const events: string[] = [];
    reader.watch('/s/', a.modRevision + 1, {
      onEvents: evs => events.push(...evs.map(e => (e.type === 'put' ? e.entry.key : e.key))),
      onResync: r => (resynced = r),
      onStatus: (st, detail) => statuses.push(`${st}: ${detail}`),
    });
    await writer.create('/s/b', '2');
    for (let i = 0; i < 100 && events.length === 0; i++) await sleep(20);
    assert.equal(events, ['/s/b']);
    // moved away and back: one 'down' naming the gone snapshot, then 'up'
    renameSync(dir, `${dir}.away`);
    for (let i = 0; i < 100 && statuses.length === 0; i++) await sleep(20);
    assert.is(statuses.length, 1, statuses.join(' | '));
    assert.match(statuses[0], /^down: .*state\.json is gone/);
    const read = await reader.get('/s/a').then(() => 'read', (e: Error) => e.message);
    assert.match(read, /state\.json is gone/, 'a read says the store is gone');
    renameSync(`${dir}.away`, dir);
    for (let i = 0; i < 100 && statuses.length === 1; i++) await sleep(20);
    assert.match(statuses[1] ?? '', /^up: /, statuses.join(' | '));
    await writer.create('/s/c', '3');
    for (let i = 0; i < 100 && events.length === 1; i++) await sleep(20);
    assert.equal(events, ['/s/b', '/s/c']);
    // deleted, then a new process writes into a new store at the same path (revision 1 again):
    // the watcher is told to re-list instead of waiting for revisions that never come
    rmSync(dir, { recursive: true, force: true });
    for (let i = 0; i < 100 && statuses.length === 2; i++) await sleep(20);
    mkdirSync(dir);
    const fresh = new FileKv({ dir });
    await fresh.create('/s/z', '9');
    await fresh.close();
    for (let i = 0; i < 150 && resynced === null; i++) await sleep(20);
    assert.match(resynced ?? 'no resync', /went back to revision \d+ \(we had seen revision \d+\): the store was replaced/);
    assert.is((await reader.list('/s/')).entries.map(e => e.key).join(','), '/s/z', 'a re-list reads the new store');
    // The first writer writes on into the new store: its lock token went with the old directory
    // (link(2) said ENOENT on every write until it was written again).
    await writer.create('/s/y', '8');
    assert.is((await reader.list('/s/')).entries.map(e => e.key).join(','), '/s/y,/s/z', 'the old writer writes into the new store');
  } finally {
    await writer.close();
    await reader.close();
  }
});
test('a store whose directory does not exist yet: the first write (no read before it) makes it, in one process and in two at once', async () => {
  // `podway create -f` of a Profile into a fresh embedded store writes before it reads: the lock's
  // token file was opened in a directory nobody had made (ENOENT, "cannot take the writer lock").
  const parent = join(tempDir(), 'absent', 'parent');
  const one = new FileKv({ dir: join(parent, 'store') });
  try {
    const a = await one.create('/a', '1');
    assert.ok(a, 'created');
    assert.is(a!.modRevision, 1);
    assert.is((await one.get('/a'))?.value, '1');
  } finally {
    await one.close();
  }
  // Two processes, each with its first call a write, on a store (and parent) nobody made: both
  // writes land, one after the other, in one store.
  const dir = join(tempDir(), 'absent2', 'store');
  const script = `const { FileKv } = require(${JSON.stringify(join(__dirname, '..', '..', 'src', 'control', 'kv', 'file-kv.js'))});
    const s = new FileKv({ dir: process.argv[1] });
    s.create('/w/' + process.argv[2], 'x').then((e) => s.close().then(() => process.stdout.write(e ? 'created' : 'exists')), (e) => { process.stdout.write('failed: ' + e.message); s.close().catch(() => {}); });`;
  for (let round = 0; round < 5; round++) {
    const roundDir = `${dir}${round}`;
    const outs = await Promise.all(['p', 'q'].map((id) => new Promise<string>((resolve, reject) => {
      execFile(process.execPath, ['-e', script, roundDir, id], { timeout: 20_000 }, (err, stdout, stderr) => (err ? reject(new Error(`${err.message}\n${stderr}`)) : resolve(stdout)));
    })));
    assert.equal(outs, ['created', 'created'], `round ${round}`);
    const check = new FileKv({ dir: roundDir });
    try {
      assert.equal((await check.list('/w/')).entries.map((e) => e.key), ['/w/p', '/w/q']);
    } finally {
      await check.close();
    }
  }
});

test('a store deleted under a writer: its next write says the store is gone (not ENOENT on the lock), nothing is made; a store made again is written', async () => {
  const dir = join(tempDir(), 'store');
  const writer = new FileKv({ dir });
  try {
    await writer.create('/a', '1');
    rmSync(dir, { recursive: true, force: true });
    const e = await writer.create('/b', '2').then(() => null, (err: Error) => err);
    assert.ok(e, 'the write failed');
    assert.instance(e, KvUnavailableError);
    assert.match(e!.message, `${dir} is gone (the store was deleted or moved while in use): not written`);
    assert.not.match(e!.message, /ENOENT|writer lock/);
    assert.not.ok(existsSync(dir), 'the write did not make a new, empty store in its place');
    // another process makes the store again (a fresh one): this writer writes into it
    const other = new FileKv({ dir });
    await other.create('/z', '9');
    await other.close();
    assert.ok(await writer.create('/b', '2'));
  } finally {
    await writer.close();
  }
});

test('lock tokens of killed writers (lock.<pid>.<random>) are swept by the next writer', async () => {
  const dir = tempDir();
  const first = new FileKv({ dir });
  await first.create('/x', '1');
  await first.close();
  // A writer that was SIGKILLed: its token names a process that no longer runs.
  const gone = spawn(process.execPath, ['-e', '']);
  const pid = gone.pid!;
  await new Promise((r) => gone.once('exit', r));
  const token = join(dir, `lock.${pid}.0123456789ab`);
  writeFileSync(token, `${pid} 1 lock.${pid}.0123456789ab\n`);
  // A live process's token stays (this one's: the store below is open while we look).
  const store = new FileKv({ dir });
  try {
    assert.ok(existsSync(token));
    await store.create('/y', '2');
    assert.not.ok(existsSync(token), `the dead writer's token is removed: ${readdirSync(dir).join(' ')}`);
    assert.equal(readdirSync(dir).filter((n) => n.startsWith('lock.')).length, 1, `our own token stays: ${readdirSync(dir).join(' ')}`);
  } finally {
    await store.close();
  }
});

/** The store as another process reads it (the worker's dump mode). */
function dumpElsewhere(dir: string): { revision: number; entries: Record<string, string> } {
  return JSON.parse(execFileSync(process.execPath, [WORKER, 'dump', dir], { timeout: 30_000, encoding: 'utf8' }));
}

test('a batch written only in part (its last line missing or torn) is taken by no reader, and cut by the next writer', async () => {
  const dir = tempDir();
  const store = new FileKv({ dir });
  try {
    const a = (await store.create('/a', 'whole'))!;
    const log = join(dir, `log.${JSON.parse(readFileSync(join(dir, 'state.json'), 'utf8')).generation}`);
    const line = (rec: object) => {
      const json = JSON.stringify(rec);
      return `${crc32(Buffer.from(json)).toString(16).padStart(8, '0')} ${json}\n`;
    };
    // what a batch of three leaves when its write fails after two whole lines and could not be
    // cut off again: two lines saying more follow, then a torn third
    const r = a.modRevision;
    appendFileSync(log, line({ r: r + 1, k: '/b', v: 'B', m: 1 }) + line({ r: r + 2, k: '/c', v: 'C', m: 1 }));
    const reader = new FileKv({ dir });
    try {
      assert.is(await reader.get('/b'), null, 'a batch without its last line is not taken');
      appendFileSync(log, '1234abcd {"r":' + (r + 3) + ',"k":"/d","v":"D');
      assert.is(await reader.get('/c'), null, 'nor with a torn last line');
      assert.is((await reader.list('/')).revision, r);
      // the reader writes next: it cuts the partial batch off and writes after the last whole write
      const z = (await reader.create('/z', 'z'.repeat(50)))!;
      assert.is(z.modRevision, r + 1);
      assert.not.match(readFileSync(log, 'utf8'), '"/b"');
      const fresh = new FileKv({ dir });
      try {
        assert.is((await fresh.get('/z'))!.value, 'z'.repeat(50), 'a write after the cut is kept');
        assert.is(await fresh.get('/b'), null);
        assert.is((await fresh.list('/')).revision, r + 1);
      } finally {
        await fresh.close();
      }
      // a whole batch is taken whole, every write its own revision and event
      const revs = await store.writeBatch!([{ key: '/x', value: 'X', modRevision: 0 }, { key: '/y', value: 'Y', modRevision: 0 }]);
      assert.equal(revs, [r + 2, r + 3]);
      assert.is((await reader.get('/y'))!.value, 'Y');
      assert.is((await reader.get('/x'))!.modRevision, r + 2);
    } finally {
      await reader.close();
    }
  } finally {
    await store.close();
  }
});


/** Fills the filesystem of `file`'s directory (ENOSPC), leaving `keepPages` pages free. */
function fillDisk(file: string, keepPages: number): void {
  const fd = openSync(file, 'w');
  const chunk = Buffer.alloc(4096);
  try {
    for (let i = 0; i < 1_000_000; i++) {
      try {
        if (writeSync(fd, chunk) < chunk.length) break;
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code === 'ENOSPC') break;
        throw e;
      }
    }
  } finally {
    closeSync(fd);
  }
  if (keepPages > 0) execFileSync('truncate', ['-s', `-${keepPages * 4096}`, file]);
}

test('a full filesystem: a write that fits only in part throws, is not applied, and leaves the store consistent for every process', async () => {
  const dir = tempDir();
  execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=256k,mode=0700', `podway-filekv-${process.pid}`, dir]);
  const store = new FileKv({ dir });
  try {
    const a = (await store.create('/a', 'first'))!;
    const log = join(dir, `log.${JSON.parse(readFileSync(join(dir, 'state.json'), 'utf8')).generation}`);
    // Pad the log so that its last page has 100 bytes left: the next 600-byte line fits in part.
    const lineOf = (r: number, k: string, v: string) => 8 + 1 + JSON.stringify({ r, k, v }).length + 1;
    const room = 4096 - (statSync(log).size % 4096);
    const pad = (room - 100 + 4096 - lineOf(a.modRevision + 1, '/pad', '')) % 4096;
    const padded = (await store.create('/pad', 'p'.repeat(pad)))!;
    const validSize = statSync(log).size;
    assert.is(4096 - (validSize % 4096), 100, 'the log ends 100 bytes before a page boundary');
    fillDisk(join(dir, 'filler'), 0);

    const big = 'b'.repeat(600);
    let err: NodeJS.ErrnoException | undefined;
    await store.create('/b', big).catch((e) => { err = e; });
    assert.ok(err, 'a write the filesystem cannot hold whole must throw');
    assert.is(err!.code, 'ENOSPC', String(err));
    assert.match(err!.message, `embedded ${dir}`);
    assert.match(err!.message, 'not applied');
    assert.is(statSync(log).size, validSize, 'the part written is cut off again');
    assert.is(await store.get('/b'), null, 'this process did not apply it');
    assert.is((await store.list('/')).revision, padded.modRevision);
    const other = dumpElsewhere(dir);
    assert.is(other.revision, padded.modRevision, 'another process reads the previous revision');
    assert.equal(Object.keys(other.entries).sort(), ['/a', '/pad']);

    // Room again: the same store writes, and the other process sees that write after the others.
    unlinkSync(join(dir, 'filler'));
    const b = (await store.create('/b', big))!;
    assert.is(b.modRevision, padded.modRevision + 1);
    const after = dumpElsewhere(dir);
    assert.is(after.revision, b.modRevision);
    assert.is(after.entries['/b'], big);
    assert.is(after.entries['/a'], 'first');
  } finally {
    await store.close().catch(() => undefined);
    execFileSync('umount', [dir]);
  }
});

test.after(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});
test.run();
