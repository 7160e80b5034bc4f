// The node's liveness key on a real etcd, between the claim and the running podway's holder, and
// after: (1) the registration's thread (join-thread.ts, as podway run's start runs it) keeps the
// lease it claimed alive by itself until it is handed over or revoked: with no holder at all the
// key outlives the lease's TTL (15 s), and a revoke removes it at once; (1b) once released it
// expires when the holder stops; (1c) its lease gone under it (etcd wiped), the thread ends; (2) a registration after
// the datastore was replaced (not at start, with the run's record: run.ts ReRegistration) claims
// the key before it writes the Node, and is refused, the Node unwritten, while another host's
// podway holds it; (3) a renewal whose lease is kept but whose new value etcd refuses (too large a
// request) counts as a record write failed, not as a renewal failed.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { EtcdKv } from '../../src/control/kv/etcd-kv';
import { EtcdLiteKv } from '../../src/control/kv/etcd-lite';
import { LIVE_TTL_S, liveKey, NodeLiveElsewhereError, NodeLiveness, parseLiveRecord, thisHost, type LiveRecord } from '../../src/control/node-live';
import { joinInThread } from '../../src/cli/join-thread';
import { joinCluster, type LiveClaimHandle } from '../../src/cli/join';
import { startEtcd, type EtcdServer } from '../helpers/etcd';

const NODE = `nodehand-${process.pid}`;
const NODE_KEY = (n: string) => `/calico/resources/v3/projectcalico.org/nodes/${n}`;
let etcd: EtcdServer | null = null;

test.after(async () => {
  await etcd?.stop();
});

test('(1) the registration thread renews the lease it claimed until handed over: past its TTL with no holder, then revoked at once', async () => {
  etcd ??= await startEtcd();
  const spec = { kind: 'etcd' as const, endpoints: [etcd.endpoint] };
  const lite = new EtcdLiteKv({ endpoints: [etcd.endpoint], timeoutMs: 2000 });
  const record: LiveRecord = { ...thisHost(), addresses: [], pid: process.pid, started: new Date().toISOString() };
  const claims: { lease: string; claim?: LiveClaimHandle }[] = [];
  const says: string[] = [];
  try {
    await joinInThread(spec, { node: NODE, ip: '192.0.2.10/24', ip6: 'none', atStart: true, live: record, onLiveClaimed: (lease, claim) => claims.push({ lease, ...(claim ? { claim } : {}) }), warn: (m) => says.push(`warn ${m}`) }, (m) => says.push(m));
    assert.is(claims.length, 1, says.join(' | '));
    const { lease, claim } = claims[0]!;
    assert.ok(claim, 'a handle of the thread\'s renewals');
    assert.is(claim!.lease, lease);
    assert.is((await lite.getLeased(liveKey(NODE)))?.lease, lease, 'the key on the claimed lease');
    // No holder takes it over (its thread still loading on a loaded machine): past the TTL the
    // key is still there, on the same lease, renewed by the registration's thread (it used to
    // expire: another host could take the name while this one ran).
    await new Promise((r) => setTimeout(r, (LIVE_TTL_S + 5) * 1000));
    const ttl = await lite.leaseTimeToLive(lease);
    assert.ok(ttl > 0, `the claimed lease still alive after ${LIVE_TTL_S + 5} s (TTL ${ttl}): ${says.join(' | ')}`);
    assert.is((await lite.getLeased(liveKey(NODE)))?.lease, lease, 'the key still there');
    // The start ends before any holder renewed it: revoked, the key gone at once.
    await claim!.revoke();
    assert.is(await lite.getLeased(liveKey(NODE)), null, 'revoked: the key gone');
    assert.ok((await lite.leaseTimeToLive(lease)) < 0);
  } finally {
    for (const c of claims) await c.claim?.revoke().catch(() => undefined);
    await lite.close();
  }
});

test('(1b) handed over: the thread renews no more once released (the holder renews the same lease)', async () => {
  etcd ??= await startEtcd();
  const node = `${NODE}-b`;
  const spec = { kind: 'etcd' as const, endpoints: [etcd.endpoint] };
  const kv = new EtcdKv({ endpoints: [etcd.endpoint], timeoutMs: 2000 });
  // The holder's own client: closed before it stops, so its stop revokes nothing (as a kill -9).
  const hkv = new EtcdKv({ endpoints: [etcd.endpoint], timeoutMs: 2000 });
  const record: LiveRecord = { ...thisHost(), addresses: [], pid: process.pid, started: new Date().toISOString() };
  let claimed: { lease: string; claim?: LiveClaimHandle } | null = null;
  let holder: NodeLiveness | null = null;
  try {
    await joinInThread(spec, { node, ip: '192.0.2.11/24', ip6: 'none', atStart: true, live: record, onLiveClaimed: (lease, claim) => (claimed = { lease, ...(claim ? { claim } : {}) }) }, () => {});
    const c = claimed as { lease: string; claim?: LiveClaimHandle } | null;
    assert.ok(c?.claim);
    // The holder adopts it (a lease of 6 s here: its renewals every 2 s), renews it, then the claim is released.
    holder = new NodeLiveness(hkv, node, { ...record, addresses: ['192.0.2.11/24'] }, { info: () => {}, warn: () => {} }, 6, c!.lease);
    await holder.tick();
    assert.is(holder.status().renewedLease, c!.lease, 'the holder renewed the claimed lease');
    c!.claim!.release();
    holder.start();
    await new Promise((r) => setTimeout(r, 8000));
    assert.is((await kv.getLeased(liveKey(node)))?.lease, c!.lease, 'the key on the same lease, kept by the holder');
    assert.equal(parseLiveRecord((await kv.getLeased(liveKey(node)))!.entry.value).addresses, ['192.0.2.11/24']);
    // Released: nothing else keeps it once the holder stops renewing (its client closed first:
    // its stop's revoke does not reach etcd, as after a kill -9), so it expires within its TTL
    // (the claim's, LIVE_TTL_S: the holder's last renewal set it again). Polled every 250 ms,
    // LIVE_TTL_S + 2 s at most: the thread renewing it still (a release that did nothing) keeps it there.
    await hkv.close();
    await holder.stop(0).catch(() => undefined);
    let left = await kv.getLeased(liveKey(node));
    for (let k = 0; k < ((LIVE_TTL_S + 2) * 1000) / 250 && left !== null; k++) {
      await new Promise((r) => setTimeout(r, 250));
      left = await kv.getLeased(liveKey(node));
    }
    assert.is(left, null, `released, the holder stopped: the key expired within ${LIVE_TTL_S + 2} s (lease TTL now ${await kv.leaseTimeToLive(c!.lease)})`);
  } finally {
    await holder?.stop(0).catch(() => undefined);
    await hkv.close().catch(() => undefined);
    await kv.close();
  }
});

test('(1c) the claimed lease gone before any hand-over (etcd wiped or restored): the thread renews it no more and ends', async () => {
  etcd ??= await startEtcd();
  const node = `${NODE}-c`;
  const spec = { kind: 'etcd' as const, endpoints: [etcd.endpoint] };
  const lite = new EtcdLiteKv({ endpoints: [etcd.endpoint], timeoutMs: 2000 });
  const record: LiveRecord = { ...thisHost(), addresses: [], pid: process.pid, started: new Date().toISOString() };
  let claimed: { lease: string; claim?: LiveClaimHandle } | null = null;
  const warns: string[] = [];
  try {
    await joinInThread(spec, { node, ip: '192.0.2.12/24', ip6: 'none', atStart: true, live: record, onLiveClaimed: (lease, claim) => (claimed = { lease, ...(claim ? { claim } : {}) }), warn: (m) => warns.push(m) }, () => {});
    const c = claimed as { lease: string; claim?: LiveClaimHandle } | null;
    assert.ok(c?.claim);
    // The lease gone under the thread (as a wiped or restored etcd: the holder then writes the key
    // on a new lease, and this claim is never handed over): its next renewal (within TTL / 3 s)
    // finds it gone, and the thread ends (it used to renew it every 5 s until podway stopped).
    await lite.revokeLease(c!.lease);
    const ended = await Promise.race([c!.claim!.ended.then(() => true), new Promise<boolean>((r) => setTimeout(() => r(false), (LIVE_TTL_S / 3 + 5) * 1000))]);
    assert.ok(ended, `the thread ended once the lease was found gone: ${warns.join(' | ')}`);
    assert.ok(warns.some((w) => new RegExp(`liveness lease ${c!.lease} it claimed its key with is gone .*renewed no more`).test(w)), warns.join(' | '));
    await c!.claim!.revoke(); // the thread ended: at once
  } finally {
    await lite.close();
  }
});

test('(2) a registration after the datastore was replaced claims the key first; refused, the Node unwritten, while another host holds it', async () => {
  etcd ??= await startEtcd();
  const node = `${NODE}-rereg`;
  const spec = { kind: 'etcd' as const, endpoints: [etcd.endpoint] };
  const kv = new EtcdKv({ endpoints: [etcd.endpoint], timeoutMs: 2000 });
  const me = thisHost();
  const record: LiveRecord = { ...me, addresses: ['192.0.2.20/24'], pid: process.pid, started: new Date().toISOString() };
  const leases: string[] = [];
  let other: NodeLiveness | null = null;
  try {
    // The store wiped: no key, no Node. The registration (not at start) claims the key, then writes the Node.
    await joinCluster(spec, { node, ip: '192.0.2.20/24', ip6: 'none', live: record, onLiveClaimed: (lease) => leases.push(lease) }, () => {});
    assert.is(leases.length, 1, 'the key claimed by the registration');
    const key = await kv.getLeased(liveKey(node));
    assert.is(key?.lease, leases[0]);
    assert.is(parseLiveRecord(key!.entry.value).host, me.host);
    assert.ok((await kv.get(NODE_KEY(node))) !== null, 'the Node written');
    // The key's lease gone (the store replaced again) and another host took the name meanwhile:
    // its podway renews the key.
    await kv.revokeLease(leases[0]!);
    const otherRec: LiveRecord = { host: `${me.host}-other`, machineId: 'other-machine', addresses: ['198.51.100.7/24'], pid: 7, started: new Date().toISOString() };
    other = new NodeLiveness(kv, node, otherRec, { info: () => {}, warn: () => {} }, 6);
    other.start();
    await other.tick();
    assert.ok(other.leaseId());
    const nodeBefore = await kv.get(NODE_KEY(node));
    const says: string[] = [];
    const refused = await joinCluster(spec, { node, ip: '192.0.2.20/24', ip6: 'none', live: record, onLiveClaimed: (lease) => leases.push(lease) }, (m) => says.push(m)).then(() => null, (e: Error) => e);
    assert.instance(refused, NodeLiveElsewhereError, `refused: ${refused?.message} | ${says.join(' | ')}`);
    assert.match(refused!.message, new RegExp(`node ${node} is running on another host: .*written by host ${otherRec.host}`));
    assert.is(leases.length, 1, 'nothing claimed');
    const nodeAfter = await kv.get(NODE_KEY(node));
    assert.is(nodeAfter!.modRevision, nodeBefore!.modRevision, 'the Node not written');
    assert.is(parseLiveRecord((await kv.getLeased(liveKey(node)))!.entry.value).host, otherRec.host, 'the other host keeps the key');
  } finally {
    await other?.stop(0);
    await kv.close();
  }
});

test('(3) the lease renewed but the new value refused by etcd: a record write failed, not a renewal failed', async () => {
  etcd ??= await startEtcd();
  const node = `${NODE}-write`;
  const kv = new EtcdKv({ endpoints: [etcd.endpoint], timeoutMs: 4000 });
  const record: LiveRecord = { ...thisHost(), addresses: ['192.0.2.30/24'], pid: process.pid, started: new Date().toISOString() };
  const logs: string[] = [];
  const h = new NodeLiveness(kv, node, record, { info: (m) => logs.push(`info ${m}`), warn: (m) => logs.push(`warn ${m}`) }, 15);
  try {
    await h.tick();
    const lease = h.leaseId();
    assert.ok(lease, logs.join(' | '));
    // A value past etcd's request limit (--max-request-bytes, 1.5 MiB by default): the put is
    // refused, the keep-alive before it answered.
    const many = Array.from({ length: 120_000 }, (_, k) => `10.${(k >> 16) & 255}.${(k >> 8) & 255}.${k & 255}/32`);
    await h.setAddresses(many);
    const s = h.status();
    assert.is(s.recordWritesFailed, 1, `${JSON.stringify({ ...s })} | ${logs.join(' | ').slice(0, 2000)}`);
    assert.is(s.renewalsFailed, 0, 'not a renewal failed');
    assert.is(s.renewedLease, lease, 'the lease renewed');
    assert.is(s.lostSince, null);
    assert.ok(logs.some((l) => /^warn .*liveness key .* renewed, but its new value .* not written/.test(l)), logs.join(' | ').slice(0, 2000));
    const key = await kv.getLeased(liveKey(node));
    assert.is(key?.lease, lease, 'the key held');
    assert.equal(parseLiveRecord(key!.entry.value).addresses, ['192.0.2.30/24'], 'its old value');
    // Addresses that fit: written at the next renewal.
    await h.setAddresses(['192.0.2.31/24']);
    assert.equal(parseLiveRecord((await kv.getLeased(liveKey(node)))!.entry.value).addresses, ['192.0.2.31/24']);
    assert.is(h.status().recordWritesFailed, 1);
    assert.is(h.status().renewalsFailed, 0);
  } finally {
    await h.stop(0);
    await kv.close();
  }
});

test.run();
