// A node's liveness key (control/node-live.ts) on a real etcd, through both etcd clients: the
// holder (NodeLiveness on EtcdKv, the address store thread's client) grants, writes, renews and
// revokes; a lease lost (etcd away longer than its TTL) is granted and written again, and an etcd
// that does not answer is said, not thrown; the start's check (awaitNodeFree on EtcdLiteKv, the registration's client)
// lets this host through at once, refuses another host while the holder renews, and lets it
// through once the holder stopped.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { EtcdKv } from '../../src/control/kv/etcd-kv';
import { EtcdLiteKv } from '../../src/control/kv/etcd-lite';
import { awaitNodeFree, liveKey, NodeLiveElsewhereError, NodeLiveness, parseLiveRecord, thisHost, type LiveRecord } from '../../src/control/node-live';
import { startEtcd, type EtcdServer } from '../helpers/etcd';
import { until } from '../helpers/until';

const NODE = `nodelive-${process.pid}`;
let etcd: EtcdServer | null = null;

test.after(async () => {
  await etcd?.stop();
});

test('holder and start check on one etcd: renewals, an outage longer than the lease, the other host refused, a clean stop', async () => {
  etcd = await startEtcd();
  const spec = { endpoints: [etcd.endpoint], timeoutMs: 2000 };
  const kv = new EtcdKv(spec);
  const lite = new EtcdLiteKv(spec);
  const logs: string[] = [];
  const me = thisHost();
  const record: LiveRecord = { ...me, addresses: ['192.0.2.10/24'], pid: process.pid, started: new Date().toISOString() };
  // A lease of 3 s (renewed every second): an outage of 6 s loses it.
  const holder = new NodeLiveness(kv, NODE, record, { info: (m) => logs.push(`info ${m}`), warn: (m) => logs.push(`warn ${m}`) }, 3);
  try {
    await holder.tick();
    const first = holder.leaseId();
    assert.ok(first, logs.join(' | '));
    const got = await lite.getLeased(liveKey(NODE));
    assert.is(got?.lease, first, 'the key is attached to the lease (as the light client reads it)');
    assert.equal(parseLiveRecord(got!.entry.value), record);
    assert.ok((await lite.leaseTimeToLive(first!)) > 0);
    // Renewed: the lease stays (the same one) past its TTL.
    holder.start();
    await new Promise((r) => setTimeout(r, 4500));
    assert.is(holder.leaseId(), first);
    assert.ok((await kv.getLeased(liveKey(NODE))) !== null, 'still there after more than its TTL');

    // The start's check: this host goes on at once.
    const says: string[] = [];
    await awaitNodeFree(lite, { node: NODE, me, held: null, say: (m) => says.push(m) });
    assert.equal(says, []);
    // Another host (another name, none of the record's addresses held there): refused while renewed.
    const other = { host: `${me.host}-other`, machineId: me.machineId };
    const refused = await awaitNodeFree(lite, { node: NODE, me: other, held: new Set(['192.0.2.99']), say: (m) => says.push(m) }).then(() => null, (e: Error) => e);
    assert.instance(refused, NodeLiveElsewhereError);
    assert.match(refused!.message, new RegExp(`node ${NODE} is running on another host: its liveness key ${liveKey(NODE)} was written by host ${me.host}`));
    assert.match(says.join(' | '), /the other run's liveness lease expires in \d+ s/);
    // The record's address held there: the same host (its name changed), not refused.
    await awaitNodeFree(lite, { node: NODE, me: other, held: new Set(['192.0.2.10']), say: () => {} });

    // The lease lost under a running holder (etcd away longer than its TTL; here revoked behind its
    // back, which etcd answers the same: TTL 0 at the next renewal): a new lease, the key again.
    await holder.stop(0);
    const lost = new NodeLiveness(kv, NODE, record, { info: (m) => logs.push(`info ${m}`), warn: (m) => logs.push(`warn ${m}`) }, 2);
    await lost.tick();
    const before = lost.leaseId();
    assert.ok(before, logs.join(' | '));
    await kv.revokeLease(before!);
    assert.is(await kv.getLeased(liveKey(NODE)), null);
    await lost.tick();
    assert.ok(lost.leaseId() !== null && lost.leaseId() !== before, 'a new lease');
    assert.ok(logs.some((l) => /liveness lease \d+ is gone from etcd \(expired: .*granting a new one/.test(l)), logs.join(' | '));
    assert.ok((await kv.getLeased(liveKey(NODE))) !== null, 'the key written again');
    // Unreachable: a renewal fails, said once, no throw.
    await etcd.kill();
    await lost.tick();
    assert.ok(logs.some((l) => /^warn .*liveness key .* not renewed/.test(l)), logs.join(' | '));
    await etcd.start();
    assert.ok(await until(async () => {
      await lost.tick();
      return (await kv.getLeased(liveKey(NODE)).catch(() => null)) !== null;
    }, 20_000), 'the key there once etcd answers');

    // A clean stop revokes the lease: the key is gone, and the other host goes through at once.
    await lost.stop();
    assert.is(await kv.getLeased(liveKey(NODE)), null);
    const says2: string[] = [];
    await awaitNodeFree(lite, { node: NODE, me: other, held: null, say: (m) => says2.push(m) });
    assert.equal(says2, []);
  } finally {
    await holder.stop(0);
    await kv.close();
    await lite.close();
  }
});

test("the key deleted between the renewal's read and its write (an earlier holder's stop finishing): written at once, not left for the next renewal", async () => {
  etcd ??= await startEtcd();
  const spec = { endpoints: [etcd.endpoint], timeoutMs: 2000 };
  const kv = new EtcdKv(spec);
  const node = `${NODE}-race`;
  const record: LiveRecord = { ...thisHost(), addresses: [], pid: process.pid, started: new Date().toISOString() };
  const logs: string[] = [];
  const log = { info: (m: string) => logs.push(`info ${m}`), warn: (m: string) => logs.push(`warn ${m}`) };
  const earlier = new NodeLiveness(kv, node, record, log, 3);
  // The real etcd client, its grant made to land between the read of the key and the guarded write:
  // the earlier holder's lease (and the key with it) revoked there.
  let earlierLease: string | null = null;
  const racing = new EtcdKv(spec);
  racing.grantLease = async (ttl: number) => {
    if (earlierLease) await kv.revokeLease(earlierLease);
    earlierLease = null;
    return EtcdKv.prototype.grantLease.call(racing, ttl);
  };
  const later = new NodeLiveness(racing, node, record, log, 3);
  try {
    await earlier.tick();
    earlierLease = earlier.leaseId();
    assert.ok(earlierLease, logs.join(' | '));
    await later.tick();
    assert.ok(later.leaseId() !== null, logs.join(' | '));
    assert.is((await kv.getLeased(liveKey(node)))?.lease, later.leaseId(), "the key on the later holder's lease");
    assert.not.ok(logs.some((l) => /not renewed/.test(l)), logs.join(' | '));
  } finally {
    await later.stop();
    await racing.close();
    await kv.close();
  }
});

test('a stop whose revoke etcd does not answer says so (the key stays until its lease expires)', async () => {
  etcd ??= await startEtcd();
  const kv = new EtcdKv({ endpoints: [etcd.endpoint], timeoutMs: 2000 });
  const node = `${NODE}-stuck`;
  const logs: string[] = [];
  const holder = new NodeLiveness(kv, node, { ...thisHost(), addresses: [], pid: process.pid, started: new Date().toISOString() }, { info: (m) => logs.push(`info ${m}`), warn: (m) => logs.push(`warn ${m}`) }, 3);
  try {
    await holder.tick();
    const lease = holder.leaseId();
    assert.ok(lease, logs.join(' | '));
    await etcd.pause();
    try {
      await holder.stop(300);
    } finally {
      etcd.resume();
    }
    assert.ok(logs.some((l) => l.startsWith(`warn node ${node}: liveness lease ${lease} not revoked at the stop (`) && l.includes(`stays until the lease expires, within 3 s`)), logs.join(' | '));
  } finally {
    await kv.close();
  }
});

test.run();
