// Lists of a prefix larger than one gRPC answer may be, on a real etcd (test/helpers/etcd.ts), by
// both etcd clients (EtcdKv: etcd3 over grpc-js, podway run's; EtcdLiteKv: the CLI's and the CNI
// plugin's): read in pages at one revision (etcd-common.ts pagedList).
//   - more than 4 MiB of Profiles under /calico/resources/v3/projectcalico.org/ (gRPC's default
//     receive limit: one range of it failed "Received message larger than max" and podway run
//     retried it forever as "unreachable"): listed whole, by both clients, and by `podway get`;
//   - the pages are one snapshot: a key written and a key deleted between two pages are not seen;
//   - the pinned revision compacted between two pages: the list begins again (not half a list,
//     not an error), and one overtaken by compaction every time fails saying so;
//   - an answer larger than the client takes (a small maxReceiveBytes here): the page is asked
//     again with fewer keys; one value larger than that alone fails as an answer too large, not
//     as an unreachable etcd.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { spawnSync } from 'node:child_process';
import { resolve } from 'node:path';
import { EtcdKv } from '../../src/control/kv/etcd-kv';
import { EtcdLiteKv } from '../../src/control/kv/etcd-lite';
import { EtcdAnswerTooLargeError, LIST_RESTARTS, pagedList } from '../../src/control/kv/etcd-common';
import { KvUnavailableError } from '../../src/control/kv/kv';
import { EtcdServer, startEtcd } from '../helpers/etcd';
import { failure } from '../helpers/until';

let etcd: EtcdServer | undefined;
const getEtcd = async () => (etcd ??= await startEtcd());

const test = suite('etcd paged lists');
const PROFILES = '/calico/resources/v3/projectcalico.org/profiles/';
const MiB = 1024 * 1024;

const profile = (name: string, pad: number) => JSON.stringify({
  kind: 'Profile', apiVersion: 'projectcalico.org/v3',
  metadata: { name, creationTimestamp: '2026-01-01T00:00:00Z', uid: `uid-${name}` },
  spec: { labelsToApply: { pad: 'x'.repeat(pad) } },
});

type Client = EtcdKv | EtcdLiteKv;
const clients: [string, (endpoint: string, o?: { maxReceiveBytes?: number }) => Client][] = [
  ['EtcdKv', (endpoint, o = {}) => new EtcdKv({ endpoints: [endpoint], timeoutMs: 10_000, ...o })],
  ['EtcdLiteKv', (endpoint, o = {}) => new EtcdLiteKv({ endpoints: [endpoint], timeoutMs: 10_000, ...o })],
];

/** Writes `n` keys `${prefix}NNNNN` of `size`-byte values, up to 128 (and ~1 MB) to a transaction. */
async function fill(prefix: string, n: number, size: number): Promise<void> {
  const kv = new EtcdLiteKv({ endpoints: [(await getEtcd()).endpoint], timeoutMs: 20_000 });
  const per = Math.max(1, Math.min(128, Math.floor(1_000_000 / (size + 200))));
  try {
    for (let i = 0; i < n; i += per) {
      const writes = [];
      for (let j = i; j < Math.min(n, i + per); j++) {
        const name = `p${String(j).padStart(5, '0')}`;
        writes.push({ key: `${prefix}${name}`, value: profile(name, size), modRevision: 0 });
      }
      assert.ok(await kv.writeBatch(writes), `batch at ${i}`);
    }
  } finally {
    await kv.close();
  }
}

let bigWritten = false;
/** 3000 Profiles of ~1.6 KB and three of 1.4 MB: ~9 MB under the resources prefix. */
async function writeBig(): Promise<void> {
  if (bigWritten) return;
  await fill(PROFILES, 3000, 1500);
  const kv = new EtcdLiteKv({ endpoints: [(await getEtcd()).endpoint], timeoutMs: 20_000 });
  try {
    for (const n of ['huge0', 'huge1', 'huge2']) assert.ok(await kv.create(`${PROFILES}${n}`, profile(n, 1_400_000)));
  } finally {
    await kv.close();
  }
  bigWritten = true;
}

test('more than 4 MiB under the resources prefix: both clients list all of it, at one revision, the same entries', async () => {
  await writeBig();
  const { endpoint } = await getEtcd();
  const lists = [];
  for (const [name, open] of clients) {
    const kv = open(endpoint);
    try {
      const list = await kv.list('/calico/resources/v3/projectcalico.org/');
      const bytes = list.entries.reduce((n, e) => n + e.key.length + e.value.length, 0);
      assert.ok(bytes > 8 * MiB, `${name}: ${bytes} bytes read, more than one 4 MiB answer could hold`);
      assert.is(list.entries.length, 3003, name);
      assert.is(list.entries[0]!.key, `${PROFILES}huge0`);
      assert.is(list.entries[3002]!.key, `${PROFILES}p02999`);
      assert.ok(list.entries.every((e, i) => i === 0 || e.key > list.entries[i - 1]!.key), `${name}: in key order, none twice`);
      assert.is(JSON.parse(list.entries[1]!.value).spec.labelsToApply.pad.length, 1_400_000);
      lists.push(list);
    } finally {
      await kv.close();
    }
  }
  assert.equal(lists[0], lists[1]);
});

test('podway get profile on etcd with more than 4 MiB of Profiles prints every one', async () => {
  await writeBig();
  const podway = resolve(__dirname, '..', '..', '..', 'bin', 'podway.js');
  const r = spawnSync(process.execPath, [podway, 'get', 'profile', '--datastore', `etcd:${(await getEtcd()).endpoint}`], { encoding: 'utf8', timeout: 60_000, maxBuffer: 64 * MiB });
  assert.is(r.status, 0, r.stderr.slice(-2000));
  const names = r.stdout.split('\n').slice(1).map((l) => l.trim().split(/\s+/)[0]).filter((n) => n);
  for (const n of ['huge0', 'huge1', 'huge2', 'p00000', 'p01500', 'p02999']) assert.ok(names.includes(n), `${n} listed`);
  assert.ok(names.length >= 3003, `${names.length} profiles listed`);
});

for (const [name, open] of clients) {
  test(`${name}: the pages are one snapshot: a key written and a key deleted between two pages are not seen; a small page size reads the same list`, async () => {
    const { endpoint } = await getEtcd();
    const prefix = `/podway-paged-snap-${name}-${process.pid}/`;
    await fill(prefix, 40, 10);
    const kv = open(endpoint);
    try {
      const whole = await kv.list(prefix);
      assert.is(whole.entries.length, 40);
      assert.equal(await kv.list(prefix, 7), whole, 'in pages of 7 keys: the same entries and revision');
      let pages = 0;
      const res = await pagedList(Buffer.from(prefix), (e: { key: Buffer }) => e.key, async (from, rev, limit) => {
        const page = await kv.listPage(prefix, from, rev, limit);
        if (pages++ === 0) {
          // between the first page and the second: one key added at the end, one in a later page deleted
          assert.ok(await kv.create(`${prefix}p99999`, 'late'));
          assert.ok(await kv.delete(`${prefix}p00030`));
        }
        return page;
      }, 'test', 10);
      assert.is(res.kvs.length, 40, 'the list as it was at the first page');
      assert.is(res.revision, whole.revision);
      assert.is(res.pages, 4);
      assert.is(res.restarts, 0);
      assert.ok(res.kvs.some((e) => e.key.toString() === `${prefix}p00030`), 'deleted after the first page: still in the list');
      assert.not.ok(res.kvs.some((e) => e.key.toString() === `${prefix}p99999`), 'written after the first page: not in the list');
      const now = await kv.list(prefix, 10);
      assert.is(now.entries.length, 40);
      assert.ok(now.revision > whole.revision);
    } finally {
      await kv.close();
    }
  });

  test(`${name}: the list's revision compacted between two pages: the list begins again at the current revision; compacted every time: an error saying so`, async () => {
    const { endpoint } = await getEtcd();
    const prefix = `/podway-paged-compact-${name}-${process.pid}/`;
    await fill(prefix, 25, 10);
    const kv = open(endpoint);
    const admin = new EtcdKv({ endpoints: [endpoint], timeoutMs: 10_000 });
    try {
      let pages = 0;
      const res = await pagedList(Buffer.from(prefix), (e: { key: Buffer }) => e.key, async (from, rev, limit) => {
        const page = await kv.listPage(prefix, from, rev, limit);
        if (pages++ === 0) {
          // after the first page: a write, and etcd compacted up to it (the pinned revision is gone)
          const e = await admin.create(`${prefix}p77777`, 'new');
          await admin.compact(e!.modRevision);
        }
        return page;
      }, 'test', 10);
      assert.is(res.restarts, 1, 'begun again once');
      assert.is(res.kvs.length, 26, 'the whole list at the new revision, with the key written meanwhile');
      assert.equal(res.kvs.map((e) => e.key.toString()), [...Array.from({ length: 25 }, (_, i) => `${prefix}p${String(i).padStart(5, '0')}`), `${prefix}p77777`]);

      // compacted after every first page: given up after LIST_RESTARTS restarts, an error naming it (not unreachable)
      let firstPages = 0;
      const e = await failure(pagedList(Buffer.from(prefix), (x: { key: Buffer }) => x.key, async (from, rev, limit) => {
        const page = await kv.listPage(prefix, from, rev, limit);
        if (rev === undefined) {
          firstPages++;
          const w = await admin.create(`${prefix}q${firstPages}`, 'x');
          await admin.compact(w!.modRevision);
        }
        return page;
      }, 'list of the test', 10));
      assert.not.instance(e, KvUnavailableError);
      assert.match(e.message, new RegExp(`^list of the test: etcd compacted the revision of the list ${LIST_RESTARTS + 1} times while its pages were read \\(.*required revision has been compacted\\)$`));
      assert.is(firstPages, LIST_RESTARTS + 1);
    } finally {
      await kv.close();
      await admin.close();
    }
  });

  test(`${name}: a page larger than the client takes is asked again with fewer keys; one value larger than that fails as too large, not as unreachable`, async () => {
    const { endpoint } = await getEtcd();
    const prefix = `/podway-paged-large-${name}-${process.pid}/`;
    await fill(prefix, 12, 300_000); // 3.6 MB, a page of 3 at most under 1 MiB
    const kv = open(endpoint, { maxReceiveBytes: MiB });
    try {
      const list = await kv.list(prefix);
      assert.is(list.entries.length, 12);
      assert.ok(list.entries.every((x) => x.value.length > 300_000));
      const writer = open(endpoint);
      try {
        assert.ok(await writer.create(`${prefix}zz-big`, 'y'.repeat(1_200_000)));
      } finally {
        await writer.close();
      }
      const e = await failure(kv.list(prefix));
      assert.instance(e, EtcdAnswerTooLargeError);
      assert.not.instance(e, KvUnavailableError, 'etcd answered: not an outage');
      // the key named, with its size (3c783ce: the list alone was named before)
      assert.match(e.message, new RegExp(`^etcd ${endpoint.replace(/[.:/]/g, '\\$&')} \\(list ${prefix}\\): the value of ${prefix}zz-big is about \\d+ bytes, larger than the 1048576 bytes this client takes \\(etcd stores values up to its --max-request-bytes, which is above that\\)$`));
      const g = await failure(kv.get(`${prefix}zz-big`));
      assert.instance(g, EtcdAnswerTooLargeError);
    } finally {
      await kv.close();
    }
  });
}

test.after(async () => {
  await etcd?.stop();
});

test.run();
