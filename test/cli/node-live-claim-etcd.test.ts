// The start's claim of a node's liveness key (control/node-live.ts claimNode) and its holder's
// later life, on a real etcd: two hosts claiming one node at the same moment through the light
// client (the registration's) get exactly one claim, and the other is refused once the winner's
// holder renews; the holder adopts the claimed lease (no second lease), writes the node's
// addresses into the key and follows a change of them under the same lease; renewals that fail
// (etcd paused past its deadline) are counted and the lease is reported lost after its TTL.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { EtcdKv } from '../../src/control/kv/etcd-kv';
import { EtcdLiteKv } from '../../src/control/kv/etcd-lite';
import { claimNode, liveKey, NodeLiveElsewhereError, NodeLiveness, parseLiveRecord, type LiveRecord, type LivenessStatus } from '../../src/control/node-live';
import { startEtcd, type EtcdServer } from '../helpers/etcd';

const NODE = `nodeclaim-${process.pid}`;
let etcd: EtcdServer | null = null;

test.after(async () => {
  etcd?.resume();
  await etcd?.stop();
});

test('two hosts claim one node at once: one claim, the other refused; the holder adopts it and follows the addresses; failed renewals counted', async () => {
  etcd = await startEtcd();
  const spec = { endpoints: [etcd.endpoint], timeoutMs: 1500 };
  const liteA = new EtcdLiteKv(spec);
  const liteB = new EtcdLiteKv(spec);
  const kv = new EtcdKv(spec);
  const hostA = { host: `claim-a-${process.pid}`, machineId: 'aaaa' };
  const hostB = { host: `claim-b-${process.pid}`, machineId: 'bbbb' };
  const recA: LiveRecord = { ...hostA, addresses: [], pid: 1, started: new Date().toISOString() };
  const recB: LiveRecord = { ...hostB, addresses: [], pid: 2, started: new Date().toISOString() };
  const says: string[] = [];
  const logs: string[] = [];
  const statuses: LivenessStatus[] = [];
  let holder: NodeLiveness | null = null;
  try {
    // Both read the key absent and write it in one transaction each: exactly one gets it.
    const claims = await Promise.allSettled([
      claimNode(liteA, { node: NODE, me: hostA, held: new Set(), say: (m) => says.push(`A ${m}`), record: recA, sampleMs: 1500 }),
      claimNode(liteB, { node: NODE, me: hostB, held: new Set(), say: (m) => says.push(`B ${m}`), record: recB, sampleMs: 1500 }),
      // the winner's holder starts renewing its lease while the loser watches it (as podway run's
      // address store thread does once the registration's thread claimed the key)
      (async () => {
        for (let k = 0; k < 100 && holder === null; k++) {
          const got = await kv.getLeased(liveKey(NODE));
          if (got?.lease) {
            const rec = parseLiveRecord(got.entry.value);
            holder = new NodeLiveness(kv, NODE, rec.host === hostA.host ? recA : recB, { info: (m) => logs.push(`info ${m}`), warn: (m) => logs.push(`warn ${m}`) }, 6, got.lease, (s) => statuses.push(s));
            holder.start();
          } else await new Promise((r) => setTimeout(r, 20));
        }
      })(),
    ]);
    const won = claims.slice(0, 2).filter((c) => c.status === 'fulfilled');
    const lost = claims.slice(0, 2).filter((c): c is PromiseRejectedResult => c.status === 'rejected');
    assert.is(won.length, 1, `exactly one claim: ${claims.map((c) => c.status === 'fulfilled' ? `lease ${c.value}` : (c.reason as Error).message).join(' | ')}`);
    assert.is(lost.length, 1);
    assert.instance(lost[0]!.reason, NodeLiveElsewhereError);
    const winnerLease = (won[0] as PromiseFulfilledResult<string>).value;
    const got = await kv.getLeased(liveKey(NODE));
    assert.is(got?.lease, winnerLease, 'the key on the winner\'s lease');
    const winner = parseLiveRecord(got!.entry.value);
    assert.match((lost[0]!.reason as Error).message, new RegExp(`written by host ${winner.host}`), 'the loser names the winner');
    assert.ok(holder !== null);
    const h = holder as NodeLiveness;
    assert.is(h.leaseId(), winnerLease, 'the holder adopted the claimed lease');

    // The node's addresses: written into the key under the same lease, and followed when they change.
    await h.setAddresses(['192.0.2.10/24']);
    let now = await kv.getLeased(liveKey(NODE));
    assert.equal(parseLiveRecord(now!.entry.value).addresses, ['192.0.2.10/24']);
    assert.is(now!.lease, winnerLease);
    await h.setAddresses(['192.0.2.77/24', 'fd00:99::7/64']);
    now = await kv.getLeased(liveKey(NODE));
    assert.equal(parseLiveRecord(now!.entry.value).addresses, ['192.0.2.77/24', 'fd00:99::7/64']);
    assert.is(now!.lease, winnerLease, 'same lease');
    assert.ok(logs.some((l) => /liveness key .* updated \(node address 192\.0\.2\.77\/24, fd00:99::7\/64/.test(l)), logs.join(' | '));

    // etcd paused: renewals fail and are counted; past the TTL (6 s) the lease is reported lost.
    assert.is(h.status().renewalsFailed, 0);
    assert.is(h.status().lostSince, null);
    await etcd.pause();
    for (let k = 0; k < 40 && !(h.status().renewalsFailed >= 2 && h.status().lostSince !== null); k++) await new Promise((r) => setTimeout(r, 500));
    assert.ok(h.status().renewalsFailed >= 2, JSON.stringify(h.status()));
    assert.ok(h.status().lostSince !== null, `lost after its TTL: ${JSON.stringify(h.status())}`);
    assert.ok(statuses.some((s) => s.renewalsFailed > 0), 'posted to the status callback');
    etcd.resume();
    // Back: the key written again (a new lease: etcd let the old one expire, or the same renewed), not lost.
    for (let k = 0; k < 60 && (h.status().lostSince !== null || (await kv.getLeased(liveKey(NODE)).catch(() => null)) === null); k++) {
      await h.tick();
      await new Promise((r) => setTimeout(r, 250));
    }
    assert.is(h.status().lostSince, null, JSON.stringify(h.status()));
    const back = await kv.getLeased(liveKey(NODE));
    assert.equal(parseLiveRecord(back!.entry.value).addresses, ['192.0.2.77/24', 'fd00:99::7/64'], 'the addresses kept');
    await h.stop();
    assert.is(await kv.getLeased(liveKey(NODE)), null, 'revoked at the stop');
  } finally {
    etcd?.resume();
    await (holder as NodeLiveness | null)?.stop(0);
    await kv.close();
    await liteA.close();
    await liteB.close();
  }
});

test('a second claim in one run (a start on the model cache tried again) adopted while a changed record is written: the key stays, on the new lease', async () => {
  etcd ??= await startEtcd();
  const spec = { endpoints: [etcd.endpoint], timeoutMs: 1500 };
  const lite = new EtcdLiteKv(spec);
  const kv = new EtcdKv(spec);
  const node = `${NODE}-again`;
  const me = { host: `claim-again-${process.pid}`, machineId: 'cccc' };
  const rec: LiveRecord = { ...me, addresses: [], pid: 3, started: new Date().toISOString() };
  const claim = () => claimNode(lite, { node, me, held: new Set(), say: () => {}, record: rec, sampleMs: 1500 });
  const logs: string[] = [];
  const h = new NodeLiveness(kv, node, rec, { info: (m) => logs.push(`info ${m}`), warn: (m) => logs.push(`warn ${m}`) }, 15, await claim());
  try {
    await h.tick();
    const second = await claim();
    // The renewal writing the changed record (on the first lease) ends just before the adoption
    // revokes that lease, which deletes the key with it.
    await Promise.all([h.tick(), h.adopt(second), h.setAddresses(['192.0.2.5/24'])]);
    await h.tick();
    const now = await kv.getLeased(liveKey(node));
    assert.ok(now !== null, `the key is there: ${logs.join(' | ')}`);
    assert.is(now!.lease, second, 'on the adopted lease');
    assert.is(h.leaseId(), second);
    assert.equal(parseLiveRecord(now!.entry.value).addresses, ['192.0.2.5/24']);
  } finally {
    await h.stop(0);
    await kv.close();
    await lite.close();
  }
});

test.run();
