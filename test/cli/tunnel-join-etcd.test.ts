// The tunnel join (cli/tunnel-join.ts) on a real etcd (test/helpers/etcd.ts, one for this file),
// chained as `podway run` chains it: the datastore watch (KvDatastore over EtcdKv), the model
// computed from its snapshots (route-calc), a model posted only when its key changed (the model
// thread's modelKey: an unchanged model is never applied), then TunnelAddressJoin with the real
// join (control/tunnel-addrs.ts). A pool that starts selecting the node by a change of the
// node's labels, or by an edit of its own nodeSelector, gets the node its tunnel address: IPv4
// VXLAN, IPIP and IPv6 VXLAN; a label removed releases it, as calico-node's allocateip does on
// pool and node updates. (The models used to leave both out: the change was no new model, and
// the node had no tunnel address until a restart.)
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { EtcdKv } from '../../src/control/kv/etcd-kv';
import { KvDatastore } from '../../src/control/kv-datastore';
import { computeNodeModel } from '../../src/control/route-calc';
import { IPPOOL_PREFIX, nodeKey } from '../../src/control/ipam/keys';
import { registerNode } from '../../src/control/node-registration';
import { reconcileTunnelAddrs } from '../../src/control/tunnel-addrs';
import { TunnelAddressJoin } from '../../src/cli/tunnel-join';
import { modelKey } from '../../src/cli/model-worker';
import type { NodeDataplaneModel } from '../../src/control';
import { etcdForFile } from '../helpers/etcd';
import { poolValue } from '../control/ipam/helpers';

const openEtcd = etcdForFile(test);
const NODE = `rca-${process.pid}`;
const WAIT_MS = 15_000;

async function putPool(kv: EtcdKv, name: string, cidr: string, spec: Record<string, unknown>): Promise<void> {
  const key = IPPOOL_PREFIX + name;
  const cur = await kv.get(key);
  const value = poolValue(name, cidr, spec);
  if (cur) assert.ok(await kv.update(key, value, cur.modRevision), `update ${name}`);
  else assert.ok(await kv.create(key, value), `create ${name}`);
}

/** Sets (or, with undefined, removes) one label of the Node, the rest of it as stored. */
async function label(kv: EtcdKv, k: string, v: string | undefined): Promise<void> {
  const cur = (await kv.get(nodeKey(NODE)))!;
  const node = JSON.parse(cur.value) as { metadata: { labels?: Record<string, string> } };
  const labels = { ...(node.metadata.labels ?? {}) };
  if (v === undefined) delete labels[k];
  else labels[k] = v;
  node.metadata.labels = labels;
  assert.ok(await kv.update(nodeKey(NODE), JSON.stringify(node), cur.modRevision), `relabel ${NODE}`);
}

async function spec(kv: EtcdKv): Promise<{ ipv4VXLANTunnelAddr?: string; ipv6VXLANTunnelAddr?: string; bgp?: { ipv4IPIPTunnelAddr?: string } }> {
  return (JSON.parse((await kv.get(nodeKey(NODE)))!.value) as { spec: Record<string, never> }).spec;
}

test('a pool that starts selecting the node (a Node label added, a nodeSelector edited) gets it its tunnel address: IPv4 VXLAN, IPIP, IPv6 VXLAN; the label removed releases it', async () => {
  const kv = openEtcd();
  const ds = new KvDatastore(kv, { debounceMs: 5, maxDelayMs: 50 });
  const errors: string[] = [];
  const join = new TunnelAddressJoin(async () => void (await reconcileTunnelAddrs(kv, NODE, { assignV6: true })), (e) => errors.push(e.message));
  // The model thread's side: a model is posted (and applied) only when its key changed.
  let lastKey = '';
  let posted = 0;
  const poll = (): NodeDataplaneModel | null => {
    const snap = ds.current();
    if (!snap || !snap.nodes.some((n) => n.metadata.name === NODE)) return null;
    const m = computeNodeModel(snap, NODE);
    const key = modelKey(m);
    if (key === lastKey) return null;
    lastKey = key;
    posted++;
    join.applied(m);
    return m;
  };
  /** Applies every new model until `done` holds on the stored Node (bounded): false when it never did. */
  const until = async (done: (s: Awaited<ReturnType<typeof spec>>) => boolean): Promise<boolean> => {
    const deadline = Date.now() + WAIT_MS;
    for (;;) {
      poll();
      await join.idle();
      if (done(await spec(kv))) return true;
      if (Date.now() > deadline) return false;
      await new Promise((r) => setTimeout(r, 50));
    }
  };
  const seen = async (what: () => boolean): Promise<void> => {
    const deadline = Date.now() + WAIT_MS;
    while (!what() && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    assert.ok(what(), 'the snapshot shows the write');
  };
  try {
    // rca's pool no longer VXLAN (no address), then a VXLAN pool selecting vx == "y" (not rca yet)
    await putPool(kv, 'default-ipv4-ippool', '10.244.0.0/16', { vxlanMode: 'Never', ipipMode: 'Never' });
    await registerNode(kv, { name: NODE, ipv4Address: '10.99.0.1/24', ipv6Address: 'fd99::1/64' });
    await label(kv, 'zone', 'a');
    await putPool(kv, 'vxl', '10.95.0.0/24', { vxlanMode: 'Always', ipipMode: 'Never', nodeSelector: 'vx == "y"' });
    await ds.start();
    // the snapshot has the pool: the model (its pool not selecting rca) asks for no join
    await seen(() => ds.current()?.ipPools.some((p) => p.metadata.name === 'vxl') === true);
    const m0 = poll();
    assert.ok(m0, 'a first model');
    assert.is(m0!.pools.find((p) => p.name === 'vxl')?.tunnelAddr, false, 'vxl does not select rca');
    await join.idle();
    assert.is(join.runs, 0, 'nothing stale: no join');
    assert.is((await spec(kv)).ipv4VXLANTunnelAddr, undefined);

    // H1's repro: label vx: "y" added to the Node
    await label(kv, 'vx', 'y');
    const before = posted;
    assert.ok(await until((s) => s.ipv4VXLANTunnelAddr !== undefined), `rca got an IPv4 VXLAN address after its label (models posted since: ${posted - before}, joins ${join.runs})`);
    assert.match(String((await spec(kv)).ipv4VXLANTunnelAddr), /^10\.95\.0\./, 'from vxl');

    // IPIP: a pool selecting zone == "b" gives none; its nodeSelector edited to all() does
    await putPool(kv, 'ipl', '10.96.0.0/24', { vxlanMode: 'Never', ipipMode: 'Always', nodeSelector: 'zone == "b"' });
    await seen(() => ds.current()?.ipPools.some((p) => p.metadata.name === 'ipl') === true);
    poll();
    await join.idle();
    assert.is((await spec(kv)).bgp?.ipv4IPIPTunnelAddr, undefined, 'ipl does not select rca');
    await putPool(kv, 'ipl', '10.96.0.0/24', { vxlanMode: 'Never', ipipMode: 'Always', nodeSelector: 'all()' });
    assert.ok(await until((s) => s.bgp?.ipv4IPIPTunnelAddr !== undefined), 'rca got an IPIP address after the nodeSelector edit');
    assert.match(String((await spec(kv)).bgp?.ipv4IPIPTunnelAddr), /^10\.96\.0\./, 'from ipl');

    // IPv6 VXLAN: a pool selecting vx6 == "y", then the label
    await putPool(kv, 'vxl6', 'fd00:95::/64', { vxlanMode: 'Always', ipipMode: 'Never', nodeSelector: 'vx6 == "y"', blockSize: 122 });
    await label(kv, 'vx6', 'y');
    assert.ok(await until((s) => s.ipv6VXLANTunnelAddr !== undefined), 'rca got an IPv6 VXLAN address after its label');
    assert.match(String((await spec(kv)).ipv6VXLANTunnelAddr), /^fd00:95:/, 'from vxl6');

    // the label removed: vxl no longer selects rca, its address is released (allocateip)
    await label(kv, 'vx', undefined);
    assert.ok(await until((s) => s.ipv4VXLANTunnelAddr === undefined), 'the IPv4 VXLAN address released once vxl no longer selects rca');
    const s = await spec(kv);
    assert.ok(s.bgp?.ipv4IPIPTunnelAddr !== undefined && s.ipv6VXLANTunnelAddr !== undefined, 'the other two kept');
    assert.equal(errors, []);
  } finally {
    join.stop();
    await ds.close();
  }
});

test.run();
