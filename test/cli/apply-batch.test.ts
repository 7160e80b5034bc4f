// `podway apply|create|replace -f` of thousands of resources, written in batches (one transaction
// of up to the store's maxBatch: resources-cmd.ts writeBatch), against an embedded store and a
// real etcd: each outcome (what is stored, the stdout and stderr lines, the exit status) is the
// one writing the same file one resource at a time gives (a reference made here with
// v3-store.ts's applyResource/createResource/replaceResource on an embedded store of its own, as
// the command wrote before), a watcher started before the command sees every write as an event,
// in file order, and a writer racing the command (creating some of the same resources, as another
// `podway` or a CNI ADD would) loses none of its writes.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { FileKv } from '../../src/control/kv/file-kv';
import type { KvEvent, KvStore } from '../../src/control/kv/kv';
import { applyResource, createResource, JsonObject, replaceResource, ResourceError } from '../../src/control/v3-store';
import { readResourceFile } from '../../src/cli/resource-files';
import { podway, tempDir, Target, embeddedTarget, etcdTarget, stopEtcd } from './cli-kit';

const WEPS = '/calico/resources/v3/projectcalico.org/workloadendpoints/';
const N = 1000;

/** WorkloadEndpoint i as a document (no metadata.name: Calico computes it), with `extra` lines in its metadata. */
function wepDoc(i: number, extra = ''): string {
  return `apiVersion: projectcalico.org/v3\nkind: WorkloadEndpoint\nmetadata:\n  namespace: ns${i % 10}\n${extra}spec:\n  node: node${i % 100}\n  orchestrator: k8s\n  pod: pod-${i}\n  endpoint: eth0\n  interfaceName: cali${String(i).padStart(11, '0')}\n  ipNetworks: [10.128.${i >> 8}.${i & 255}/32]\n`;
}
const wepName = (i: number) => `node${i % 100}-k8s-pod--${i}-eth0`;
const wepKey = (i: number) => `${WEPS}ns${i % 10}/${wepName(i)}`;
const wepLoc = (file: string, i: number) => `${file}: document ${i + 1} (WorkloadEndpoint ns${i % 10}/${wepName(i)})`;

function writeDocs(dir: string, name: string, docs: string[]): string {
  const file = path.join(dir, name);
  writeFileSync(file, docs.join('---\n'));
  return file;
}

/** A stored value without what differs between two writes of the same resource (uid, creation time). */
function comparable(value: string): unknown {
  const o = JSON.parse(value) as { metadata: Record<string, unknown> };
  const { uid: _u, creationTimestamp: _c, ...meta } = o.metadata;
  return { ...o, metadata: meta };
}

type Verb = 'apply' | 'create' | 'replace';

/**
 * The reference: `file` written one resource at a time into `kv` as writeAll wrote it before
 * batches (stopping at the first failure, --skip-exists skips counted): how many were done, the
 * index of the one that failed and why, and the skipped indexes.
 */
async function oneAtATime(kv: KvStore, verb: Verb, file: string, skipExists = false): Promise<{ done: number; failed?: { index: number; reason: string }; skipped: number[] }> {
  const resources = readResourceFile(file, 'write');
  let done = 0;
  const skipped: number[] = [];
  for (let i = 0; i < resources.length; i++) {
    const obj = resources[i]!.object;
    try {
      if (verb === 'apply') await applyResource(kv, obj);
      else if (verb === 'create') await createResource(kv, obj);
      else await replaceResource(kv, obj);
      done++;
    } catch (e) {
      if (skipExists && e instanceof ResourceError && e.reason === 'exists') {
        skipped.push(i);
        done++;
        continue;
      }
      if (!(e instanceof ResourceError)) throw e;
      return { done, failed: { index: i, reason: e.message }, skipped };
    }
  }
  return { done, skipped };
}

/** Every event under WEPS from `from` on, collected until the store's revision `until` was delivered. */
function watchAll(kv: KvStore, from: number): { events: KvEvent[]; upTo(until: number): Promise<void>; close(): Promise<void> } {
  const events: KvEvent[] = [];
  let last = from - 1;
  let resynced = '';
  const w = kv.watch(WEPS, from, {
    onEvents: (evs) => {
      events.push(...evs);
      last = Math.max(last, ...evs.map((e) => (e.type === 'put' ? e.entry.modRevision : e.modRevision)));
    },
    onResync: (reason) => { resynced = reason; },
  });
  return {
    events,
    async upTo(until) {
      const end = Date.now() + 30_000;
      while (last < until && !resynced && Date.now() < end) await new Promise((r) => setTimeout(r, 20));
      assert.is(resynced, '', 'the watch went on (no resync)');
      assert.ok(last >= until, `the watch delivered up to revision ${last}, the store is at ${until}`);
    },
    close: () => w.close(),
  };
}

async function entries(kv: KvStore): Promise<Map<string, string>> {
  return new Map((await kv.list(WEPS)).entries.map((e) => [e.key, e.value]));
}

function batchSuite(target: Target) {
  const test = suite(`apply/create/replace -f of ${N} resources in batches, on ${target.name}`);
  let spec = '';
  let kv: KvStore;
  let work = '';
  let ref: FileKv;
  test.before.each(async () => {
    ({ spec, kv } = await target.open());
    work = tempDir('podway-apply-batch-');
    ref = new FileKv({ dir: path.join(work, 'reference') });
  });
  test.after.each(async () => {
    await kv.close();
    await ref.close();
  });
  const ds = () => ['--datastore', spec];

  /** Plants `docs` (as `podway apply` would) in both the store and the reference. */
  async function plant(docs: string[]): Promise<void> {
    const file = writeDocs(work, 'plant.yaml', docs);
    for (const r of readResourceFile(file, 'write')) {
      await applyResource(kv, r.object);
      await applyResource(ref, r.object);
    }
  }

  /**
   * Runs `podway VERB -f file` with a watcher on the store, and the reference on the same file:
   * the same stored resources (but their uid and creation time), the watcher saw each write the
   * command made in file order, and the command said what the reference's outcome says.
   */
  async function sameAsOneAtATime(verb: Verb, file: string, extra: string[] = []): Promise<{ out: string; err: string; done: number; failed?: number }> {
    const before = await kv.list(WEPS);
    const watcher = watchAll(kv, before.revision + 1);
    const r = await podway([verb, '-f', file, ...extra, ...ds()]);
    const expected = await oneAtATime(ref, verb, file, extra.includes('--skip-exists'));
    try {
      const after = await kv.list(WEPS);
      await watcher.upTo(after.revision);
      // what is stored
      const got = await entries(kv);
      const want = await entries(ref);
      assert.equal([...got.keys()].sort(), [...want.keys()].sort(), 'the same resources stored');
      for (const [k, v] of want) assert.equal(comparable(got.get(k)!), comparable(v), k);
      // what was said
      const resources = readResourceFile(file, 'write');
      const n = resources.length;
      const locOf = (f: string, i: number) => {
        const m = resources[i]!.object.metadata as JsonObject;
        return `${f}: document ${i + 1} (${String(resources[i]!.object.kind)} ${m.namespace ? `${String(m.namespace)}/` : ''}${String(m.name)})`;
      };
      const skips = expected.skipped.map((i) => {
        const m = resources[i]!.object.metadata as JsonObject;
        return `podway: ${locOf(file, i)}: WorkloadEndpoint(${String(m.namespace)}/${String(m.name)}) already exists: skipped (--skip-exists)\n`;
      }).join('');
      const past = { apply: 'applied', create: 'created', replace: 'replaced' }[verb];
      if (expected.failed) {
        const head = expected.done === 0 ? `Failed to ${verb} any 'WorkloadEndpoint' resource(s)` : `Partial success: ${past} the first ${expected.done} out of ${n} resources`;
        assert.is(r.code, 1, r.err);
        // (a revision in a conflict's reason is the store's own: the reference's differs)
        const revs = (t: string) => t.replace(/resourceVersion \d+/g, 'resourceVersion R');
        assert.is(revs(r.err), revs(`${skips}podway: ${head}: ${locOf(file, expected.failed.index)}: ${expected.failed.reason}\n`));
        assert.is(r.out, '');
      } else {
        assert.is(r.code, 0, r.err);
        assert.is(r.err, skips);
        assert.is(r.out, `Successfully ${past} ${expected.done} 'WorkloadEndpoint' resource(s)\n`);
      }
      // what a watcher saw: one put per resource written, in file order, each with the value stored
      // then (nothing else writes here), and the last event of each key is what is stored now
      const written = readResourceFile(file, 'write').slice(0, expected.failed?.index ?? n).map((x, i) => ({ x, i }))
        .filter(({ x, i }) => !expected.skipped.includes(i) && x.object.kind === 'WorkloadEndpoint');
      assert.equal(watcher.events.map((e) => e.type), written.map(() => 'put'));
      assert.equal(watcher.events.map((e) => (e.type === 'put' ? e.entry.key : e.key)), written.map(({ x }) => `${WEPS}${(x.object.metadata as JsonObject).namespace}/${(x.object.metadata as JsonObject).name}`));
      const revs = watcher.events.map((e) => (e.type === 'put' ? e.entry.modRevision : 0));
      for (let i = 1; i < revs.length; i++) assert.ok(revs[i]! >= revs[i - 1]!, `revisions in order at event ${i}: ${revs[i - 1]} then ${revs[i]}`);
      const lastOf = new Map(watcher.events.map((e) => [e.type === 'put' ? e.entry.key : e.key, e.type === 'put' ? e.entry.value : '']));
      for (const [k, v] of lastOf) assert.is(got.get(k), v, `the last event of ${k} is what is stored`);
      return { out: r.out, err: r.err, done: expected.done, failed: expected.failed?.index };
    } finally {
      await watcher.close();
    }
  }

  test('create -f: one that exists in the middle stops it there, the ones before it written (and seen by a watcher)', async () => {
    await plant([wepDoc(634, '  labels: {planted: "yes"}\n')]);
    const file = writeDocs(work, 'weps.yaml', Array.from({ length: N }, (_, i) => wepDoc(i)));
    const r = await sameAsOneAtATime('create', file);
    assert.is(r.failed, 634);
    assert.match(r.err, `podway: Partial success: created the first 634 out of ${N} resources: ${wepLoc(file, 634)}: resource already exists: WorkloadEndpoint(ns4/${wepName(634)})`);
    assert.match((await kv.get(wepKey(634)))!.value, '"planted":"yes"');
    assert.is(await kv.get(wepKey(635)), null);
  });

  test('create --skip-exists: existing ones in the middle skipped (said in file order), all the others created', async () => {
    await plant([wepDoc(7), wepDoc(600, '  labels: {planted: "yes"}\n'), wepDoc(601), wepDoc(N - 1)]);
    const file = writeDocs(work, 'weps.yaml', Array.from({ length: N }, (_, i) => wepDoc(i)));
    const r = await sameAsOneAtATime('create', file, ['--skip-exists']);
    assert.is(r.failed, undefined);
    assert.is(r.err.split('\n').filter(Boolean).length, 4);
    assert.match((await kv.get(wepKey(600)))!.value, '"planted":"yes"');
  });

  test('apply -f: new and existing ones (their uid kept), a key given twice, an IPPool between them; a stale resourceVersion stops it', async () => {
    await plant(Array.from({ length: 300 }, (_, i) => wepDoc(i * 5, '  labels: {old: "yes"}\n')));
    const oldUids = new Map<string, string>();
    for (let i = 0; i < 300; i++) oldUids.set(wepKey(i * 5), (JSON.parse((await kv.get(wepKey(i * 5)))!.value) as { metadata: { uid: string } }).metadata.uid);
    const docs = Array.from({ length: N }, (_, i) => wepDoc(i, '  labels: {new: "yes"}\n'));
    docs.splice(700, 0, 'apiVersion: projectcalico.org/v3\nkind: IPPool\nmetadata: {name: p1}\nspec: {cidr: 10.128.0.0/16}\n');
    docs.splice(900, 0, wepDoc(10, '  labels: {again: "yes"}\n')); // resource 10 a second time
    const file = writeDocs(work, 'weps.yaml', docs);
    const r = await podway(['apply', '-f', file, ...ds()]);
    assert.is(r.code, 0, r.err);
    assert.is(r.out, `Successfully applied ${N + 2} resource(s)\n`);
    for (const [k, was] of oldUids) assert.is((JSON.parse((await kv.get(k))!.value) as { metadata: { uid: string } }).metadata.uid, was, `${k} kept its uid`);
    assert.match((await kv.get(wepKey(10)))!.value, '"again":"yes"');
    assert.ok(await kv.get('/calico/resources/v3/projectcalico.org/ippools/p1'));

    // the same file again with a stale resourceVersion on document 801: the ones before it
    // replaced, it and the rest not, as one at a time (the reference is at the same point)
    for (const d of readResourceFile(file, 'write')) await applyResource(ref, d.object);
    const stale = docs.slice();
    stale[800] = stale[800]!.replace('metadata:\n', 'metadata:\n  resourceVersion: "3"\n');
    const staleFile = writeDocs(work, 'stale.yaml', stale);
    const s = await sameAsOneAtATime('apply', staleFile);
    assert.is(s.failed, 800);
    assert.match(s.err, `podway: Partial success: applied the first 800 out of ${N + 2} resources: ${staleFile}: document 801 (WorkloadEndpoint `);
    assert.match(s.err, 'has resourceVersion');
  });

  test('replace -f: one that does not exist in the middle stops it there', async () => {
    const file0 = writeDocs(work, 'all.yaml', Array.from({ length: N }, (_, i) => wepDoc(i)));
    await sameAsOneAtATime('apply', file0);
    const docs = Array.from({ length: N }, (_, i) => wepDoc(i, '  labels: {replaced: "yes"}\n'));
    docs[777] = wepDoc(N + 5);
    const file = writeDocs(work, 'replace.yaml', docs);
    const r = await sameAsOneAtATime('replace', file);
    assert.is(r.failed, 777);
    assert.match(r.err, `Partial success: replaced the first 777 out of ${N} resources: ${file}: document 778 (WorkloadEndpoint ns${(N + 5) % 10}/${wepName(N + 5)}): resource does not exist`);
  });

  test('an invalid document in the middle: nothing written, the file and the document named', async () => {
    const docs = Array.from({ length: N }, (_, i) => wepDoc(i));
    docs[611] = docs[611]!.replace('  endpoint: eth0\n', '  endpoint: eth0\n  colour: blue\n');
    const file = writeDocs(work, 'bad.yaml', docs);
    for (const verb of ['apply', 'create', 'replace']) {
      const r = await podway([verb, '-f', file, ...ds()]);
      assert.is(r.code, 1, r.err);
      assert.match(r.err, `${wepLoc(file, 611)}: spec.colour: unknown field`);
      assert.equal((await kv.list(WEPS)).entries, [], 'nothing written');
    }
  });

  test('a writer racing apply -f (creating some of the same resources, and counting in a key of its own) loses none of its writes', async () => {
    const file = writeDocs(work, 'weps.yaml', Array.from({ length: N }, (_, i) => wepDoc(i)));
    const before = await kv.list(WEPS);
    const watcher = watchAll(kv, before.revision + 1);
    try {
      const command = podway(['apply', '-f', file, ...ds()]);
      let finished = false;
      void command.then(() => { finished = true; });
      // The racer: creates resources from the end of the file backwards (those apply reaches
      // last) with a uid of its own, and increments a counter resource by compare-and-swap.
      const mine = new Map<string, string>();
      let count = 0;
      const counterKey = `${WEPS}racer/counter`;
      await kv.create(counterKey, '0');
      const end = Date.now() + 60_000;
      for (let j = N - 1; j >= 0 && !finished && Date.now() < end; j -= 7) {
        const uid = `racer-${j}`;
        const value = JSON.stringify({ kind: 'WorkloadEndpoint', apiVersion: 'projectcalico.org/v3', metadata: { name: wepName(j), namespace: `ns${j % 10}`, uid, creationTimestamp: '2026-01-01T00:00:00Z' }, spec: { node: `node${j % 100}`, orchestrator: 'k8s', pod: `pod-${j}`, endpoint: 'eth0' } });
        if (await kv.create(wepKey(j), value)) mine.set(wepKey(j), uid);
        for (let attempt = 0; attempt < 50; attempt++) {
          const c = (await kv.get(counterKey))!;
          if (await kv.update(counterKey, String(Number(c.value) + 1), c.modRevision)) {
            count++;
            break;
          }
        }
      }
      const r = await command;
      assert.is(r.code, 0, r.err);
      assert.is(r.out, `Successfully applied ${N} 'WorkloadEndpoint' resource(s)\n`);
      // Each resource the racer created first keeps its uid: apply replaced it (as it replaces
      // one that exists), it did not create it again over the racer's.
      for (const [k, uid] of mine) {
        const stored = JSON.parse((await kv.get(k))!.value) as { metadata: { uid: string }; spec: { interfaceName?: string } };
        assert.is(stored.metadata.uid, uid, `${k}: the racer's create kept`);
        assert.ok(stored.spec.interfaceName, `${k}: and apply's spec written over it`);
      }
      assert.is((await kv.get(counterKey))!.value, String(count), 'every increment counted');
      for (let i = 0; i < N; i++) assert.ok(await kv.get(wepKey(i)), `${wepKey(i)} stored`);
      // the watcher saw every write of both, and ends at what is stored
      const after = await kv.list(WEPS);
      await watcher.upTo(after.revision);
      const lastOf = new Map(watcher.events.map((e) => [e.type === 'put' ? e.entry.key : e.key, e.type === 'put' ? e.entry.value : '']));
      assert.is(lastOf.size, after.entries.length);
      for (const e of after.entries) assert.is(lastOf.get(e.key), e.value, `the last event of ${e.key} is what is stored`);
      assert.is(watcher.events.filter((e) => e.type === 'put' && e.entry.key === counterKey).length, count + 1, 'each increment an event');
    } finally {
      await watcher.close();
    }
  });

  return test;
}

batchSuite(embeddedTarget).run();
const etcdSuite = batchSuite(etcdTarget);
etcdSuite.after(stopEtcd);
etcdSuite.run();
