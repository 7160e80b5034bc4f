// The KvStore conformance suite, run against every backend (test/control/kv-*.test.ts): the same
// assertions for etcd and the embedded store, so IPAM can rely on one behaviour.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { KvEvent, KvStore } from '../../src/control/kv/kv';

export interface KvBackend {
  readonly name: string;
  /** false: a store that makes single calls only (EtcdLiteKv): the watch tests are not its. */
  readonly watches?: boolean;
  /** A store to test with (tests use their own key prefixes, so it may be shared). */
  open(): Promise<KvStore>;
  /** Discards the store's history up to `revision`. */
  compact(store: KvStore, revision: number): Promise<void>;
}

let unique = 0;
/** A key prefix no other test (or earlier run against the same store) uses. */
export function freshPrefix(tag: string): string {
  return `/t-${process.pid}-${Date.now().toString(36)}-${unique++}/${tag}/`;
}

/** Collects watch events until `count` arrived (or rejects after `timeoutMs`). */
export function collectEvents(
  store: KvStore,
  prefix: string,
  fromRevision: number,
  count: number,
  timeoutMs = 5000,
): { done: Promise<KvEvent[]>; events: KvEvent[]; close(): Promise<void> } {
  const events: KvEvent[] = [];
  let resolve!: (e: KvEvent[]) => void;
  let reject!: (e: Error) => void;
  const done = new Promise<KvEvent[]>((res, rej) => { resolve = res; reject = rej; });
  const timer = setTimeout(
    () => reject(new Error(`watch ${prefix}: ${events.length} of ${count} events within ${timeoutMs} ms: ${JSON.stringify(events)}`)),
    timeoutMs,
  );
  const w = store.watch(prefix, fromRevision, {
    onEvents(evs) {
      events.push(...evs);
      if (events.length >= count) { clearTimeout(timer); resolve(events); }
    },
    onResync(reason) { clearTimeout(timer); reject(new Error(`unexpected resync: ${reason}`)); },
  });
  return { done, events, close: () => { clearTimeout(timer); return w.close(); } };
}

const sleep = (ms: number) => new Promise(r => setTimeout(r, ms));

function describe(ev: KvEvent): string {
  return ev.type === 'put'
    ? `put ${ev.entry.key}=${ev.entry.value}@${ev.entry.modRevision}/${ev.entry.createRevision}`
    : `delete ${ev.key}@${ev.modRevision}`;
}

export function conformanceSuite(backend: KvBackend) {
  const test = suite(`KvStore conformance: ${backend.name}`);
  let store: KvStore;
  test.before(async () => { store = await backend.open(); });
  test.after(async () => { await store?.close(); });

  test('get, create-if-absent (the second create loses), get again', async () => {
    const p = freshPrefix('create');
    assert.is(await store.get(`${p}a`), null);
    const a = await store.create(`${p}a`, '{"n":1}');
    assert.ok(a);
    assert.is(a!.key, `${p}a`);
    assert.is(a!.value, '{"n":1}');
    assert.ok(a!.modRevision > 0);
    assert.is(a!.createRevision, a!.modRevision);
    assert.equal(await store.get(`${p}a`), a);
    assert.is(await store.create(`${p}a`, '{"n":2}'), null);
    assert.equal(await store.get(`${p}a`), a, 'the losing create changed nothing');
  });

  test('update compares modRevision: stale revision, absent key and revision 0 all fail', async () => {
    const p = freshPrefix('update');
    const a = (await store.create(`${p}a`, 'v1'))!;
    const b = await store.update(`${p}a`, 'v2', a.modRevision);
    assert.ok(b);
    assert.is(b!.value, 'v2');
    assert.is(b!.createRevision, a.createRevision);
    assert.ok(b!.modRevision > a.modRevision);
    assert.equal(await store.get(`${p}a`), b);
    assert.is(await store.update(`${p}a`, 'v3', a.modRevision), null, 'stale revision');
    assert.is((await store.get(`${p}a`))!.value, 'v2');
    assert.is(await store.update(`${p}absent`, 'x', b!.modRevision), null, 'absent key');
    assert.is(await store.update(`${p}absent`, 'x', 0), null, 'revision 0 does not create');
    assert.is(await store.get(`${p}absent`), null);
  });

  test('update with guards: written only while every guard key is at its revision (changed or deleted guard: nothing written)', async () => {
    const p = freshPrefix('guard');
    const a = (await store.create(`${p}a`, 'a1'))!;
    const g = (await store.create(`${p}g`, 'g1'))!;
    const a2 = await store.update(`${p}a`, 'a2', a.modRevision, [{ key: `${p}g`, modRevision: g.modRevision }]);
    assert.ok(a2, 'guard holds');
    assert.is((await store.get(`${p}g`))!.modRevision, g.modRevision, 'the guard key is not written');
    const g2 = (await store.update(`${p}g`, 'g2', g.modRevision))!;
    assert.is(await store.update(`${p}a`, 'a3', a2!.modRevision, [{ key: `${p}g`, modRevision: g.modRevision }]), null, 'guard changed');
    assert.is((await store.get(`${p}a`))!.value, 'a2');
    assert.ok(await store.delete(`${p}g`, g2.modRevision));
    assert.is(await store.update(`${p}a`, 'a3', a2!.modRevision, [{ key: `${p}g`, modRevision: g2.modRevision }]), null, 'guard deleted');
    assert.is(await store.update(`${p}a`, 'a3', a2!.modRevision, [{ key: `${p}g`, modRevision: 0 }]), null, 'revision 0 is no "absent" guard');
    assert.equal(await store.get(`${p}a`), a2);
  });

  test('delete with and without a revision', async () => {
    const p = freshPrefix('delete');
    const a = (await store.create(`${p}a`, 'v'))!;
    const a2 = (await store.update(`${p}a`, 'v2', a.modRevision))!;
    assert.is(await store.delete(`${p}a`, a.modRevision), false, 'stale revision');
    assert.ok(await store.get(`${p}a`));
    assert.is(await store.delete(`${p}a`, a2.modRevision), true);
    assert.is(await store.get(`${p}a`), null);
    assert.is(await store.delete(`${p}a`), false, 'already gone');
    await store.create(`${p}b`, 'v');
    assert.is(await store.delete(`${p}b`), true, 'unconditional');
    assert.is(await store.get(`${p}b`), null);
    assert.is(await store.delete(`${p}b`, 1), false);
    // A deleted key can be created again, with a new createRevision.
    const again = (await store.create(`${p}a`, 'v3'))!;
    assert.ok(again.createRevision > a2.modRevision);
  });

  test('revisions increase with every write; list reports a revision at or after them', async () => {
    const p = freshPrefix('revs');
    const revs: number[] = [];
    const x = (await store.create(`${p}x`, '0'))!;
    revs.push(x.modRevision);
    let cur = x;
    for (let i = 1; i <= 5; i++) {
      cur = (await store.update(`${p}x`, String(i), cur.modRevision))!;
      revs.push(cur.modRevision);
      revs.push((await store.create(`${p}y${i}`, 'y'))!.modRevision);
    }
    for (let i = 1; i < revs.length; i++) assert.ok(revs[i] > revs[i - 1], `revisions ${revs.join(',')}`);
    const l = await store.list(p);
    assert.ok(l.revision >= revs[revs.length - 1]);
  });

  test('list: key order and prefix boundaries (/a/b vs /a/bc)', async () => {
    const p = freshPrefix('list');
    for (const k of ['a/bc', 'a/b/x', 'a/b', 'a/a', 'a/c', 'a/b/a', 'a', 'b/a']) await store.create(`${p}${k}`, k);
    const keys = async (pre: string) => (await store.list(`${p}${pre}`)).entries.map(e => e.key.slice(p.length));
    assert.equal(await keys('a/b/'), ['a/b/a', 'a/b/x']);
    assert.equal(await keys('a/b'), ['a/b', 'a/b/a', 'a/b/x', 'a/bc']);
    assert.equal(await keys(''), ['a', 'a/a', 'a/b', 'a/b/a', 'a/b/x', 'a/bc', 'a/c', 'b/a']);
    assert.equal(await keys('a/d'), []);
    const all = await store.list(p);
    for (const e of all.entries) assert.is(e.value, e.key.slice(p.length));
  });

  test('getMany and writeBatch (stores with maxBatch): all written when every condition holds, none when one fails', async () => {
    if (store.maxBatch === undefined) return; // a store without batches (etcd3's client): writeAll writes one at a time
    assert.ok(store.getMany && store.writeBatch, 'maxBatch comes with getMany and writeBatch');
    const p = freshPrefix('batch');
    const a = (await store.create(`${p}a`, 'a1'))!;
    assert.equal(await store.getMany!([`${p}a`, `${p}b`]), [a, null]);
    // creates (revision 0: absent) and a replace (at a's revision), in one transaction
    const revs = (await store.writeBatch!([
      { key: `${p}b`, value: 'b1', modRevision: 0 },
      { key: `${p}a`, value: 'a2', modRevision: a.modRevision },
      { key: `${p}c`, value: 'c1', modRevision: 0 },
    ]))!;
    assert.is(revs.length, 3);
    assert.ok(revs[0]! > a.modRevision && revs[1]! >= revs[0]! && revs[2]! >= revs[1]!, `revisions in order: ${revs}`);
    const [a2, b, c] = await store.getMany!([`${p}a`, `${p}b`, `${p}c`]);
    assert.equal([a2!.value, a2!.createRevision, a2!.modRevision], ['a2', a.createRevision, revs[1]]);
    assert.equal([b!.value, b!.createRevision, b!.modRevision], ['b1', revs[0], revs[0]]);
    assert.equal([c!.value, c!.modRevision], ['c1', revs[2]]);
    // one condition failing (a stale revision; a create of one that exists; a replace of an absent one): nothing written
    const before = await store.list(p);
    assert.is(await store.writeBatch!([{ key: `${p}d`, value: 'd1', modRevision: 0 }, { key: `${p}a`, value: 'a3', modRevision: a.modRevision }]), null, 'stale revision');
    assert.is(await store.writeBatch!([{ key: `${p}d`, value: 'd1', modRevision: 0 }, { key: `${p}b`, value: 'b2', modRevision: 0 }]), null, 'create of one that exists');
    assert.is(await store.writeBatch!([{ key: `${p}d`, value: 'd1', modRevision: 0 }, { key: `${p}e`, value: 'e1', modRevision: b!.modRevision }]), null, 'replace of one absent');
    assert.equal((await store.list(p)).entries, before.entries, 'nothing written');
    assert.equal(await store.writeBatch!([]), []);
    // as many as the store takes at once
    const many = Array.from({ length: store.maxBatch }, (_, i) => ({ key: `${p}m/${String(i).padStart(4, '0')}`, value: `v${i}`, modRevision: 0 }));
    assert.is((await store.writeBatch!(many))!.length, many.length);
    assert.equal((await store.getMany!(many.map((m) => m.key))).map((e) => e?.value), many.map((m) => m.value));
  });

  if (backend.watches === false) return test;

  test('watch from an older revision delivers exactly the later events, in order, then live ones', async () => {
    const p = freshPrefix('watch');
    const a = (await store.create(`${p}a`, '1'))!;
    const start = (await store.list(p)).revision;
    // After `start`: an update, a create, a write outside the prefix, a delete.
    const a2 = (await store.update(`${p}a`, '2', a.modRevision))!;
    const b = (await store.create(`${p}b`, 'b'))!;
    await store.create(`${p.slice(0, -1)}x/outside`, 'no');
    assert.ok(await store.delete(`${p}a`));
    const w = collectEvents(store, p, start + 1, 4);
    await sleep(50);
    const c = (await store.create(`${p}c`, 'c'))!; // live, after the watch started
    const events = await w.done;
    const expected = [
      `put ${p}a=2@${a2.modRevision}/${a.createRevision}`,
      `put ${p}b=b@${b.modRevision}/${b.modRevision}`,
      `delete ${p}a@${b.modRevision + 2}`,
      `put ${p}c=c@${c.modRevision}/${c.modRevision}`,
    ];
    // The delete's revision: the outside write came between b and it.
    assert.equal(events.map(describe), expected);
    await sleep(300);
    assert.is(events.length, 4, `no extra events: ${events.map(describe).join('; ')}`);
    await w.close();
    await store.create(`${p}after-close`, 'x');
    await sleep(300);
    assert.is(events.length, 4, 'no events after close');
  });

  test('a watch sees each write of a batch as its own event, in the order given', async () => {
    if (store.maxBatch === undefined) return;
    const p = freshPrefix('batch-watch');
    const a = (await store.create(`${p}a`, 'a1'))!;
    const w = collectEvents(store, p, a.modRevision + 1, 3);
    try {
      assert.ok(await store.writeBatch!([
        { key: `${p}z`, value: 'z1', modRevision: 0 },
        { key: `${p}a`, value: 'a2', modRevision: a.modRevision },
        { key: `${p}m`, value: 'm1', modRevision: 0 },
      ]));
      const events = await w.done;
      assert.equal(events.map((e) => (e.type === 'put' ? `${e.entry.key.slice(p.length)}=${e.entry.value}` : describe(e))), ['z=z1', 'a=a2', 'm=m1']);
    } finally {
      await w.close();
    }
  });

  test('a watch from a compacted revision resyncs with reason compacted', async () => {
    const p = freshPrefix('compact');
    const a = (await store.create(`${p}a`, '1'))!;
    const a2 = (await store.update(`${p}a`, '2', a.modRevision))!;
    await store.update(`${p}a`, '3', a2.modRevision);
    const now = (await store.list(p)).revision;
    await backend.compact(store, now);
    const reason = await new Promise<string>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('no resync within 5 s')), 5000);
      store.watch(p, a.modRevision, {
        onEvents: evs => reject(new Error(`events from a compacted revision: ${JSON.stringify(evs)}`)),
        onResync: r => { clearTimeout(timer); resolve(r); },
      });
    });
    assert.is(reason, 'compacted');
    // From the list's revision + 1 the watch works again.
    const w = collectEvents(store, p, now + 1, 1);
    const d = (await store.create(`${p}d`, 'd'))!;
    assert.equal((await w.done).map(describe), [`put ${p}d=d@${d.modRevision}/${d.modRevision}`]);
    await w.close();
  });

  return test;
}
