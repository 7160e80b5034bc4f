// The concurrency scenario, runnable against any KvStore: clients on several node names allocate
// one address per unique handle at the same time, then release half by handle; afterwards every
// address is distinct, check() is clean and handles agree with blocks.
import * as assert from 'uvu/assert';
import type { KvStore } from '../../../src/control/kv/kv';
import { Ipam } from '../../../src/control/ipam/ipam';
import type { IpVersion } from '../../../src/control/ipam/net';
import { assertClean, handleCountsFromStore, setup } from './helpers';

export const SCENARIO_POOL = { name: 'default-ipv4-ippool', cidr: '10.244.0.0/16' };
/** The IPv6 run's pool: a /64 of /122 blocks (Calico's IPv6 default), 2^58 of them. */
export const SCENARIO_POOL6 = { name: 'default-ipv6-ippool', cidr: 'fd00:10:244::/64' };

export function nodeName(client: number, nodes: number): string {
  return `node${client % nodes}`;
}

export function handleOf(client: number, i: number): string {
  return `k8s-pod-network.c${client}-${i}`;
}

/** One client's work: `count` single-address assignments, each with its own handle. */
export async function allocateMany(kv: KvStore, client: number, nodes: number, count: number, version: IpVersion = 4): Promise<string[]> {
  const ipam = new Ipam(kv);
  const node = nodeName(client, nodes);
  const ips: string[] = [];
  for (let i = 0; i < count; i++) {
    const r = await ipam.autoAssign({ node, count: 1, handleId: handleOf(client, i), attrs: { node, pod: `pod-${client}-${i}`, namespace: 'default' }, version });
    if (r.errors || r.ips.length !== 1) throw new Error(`client ${client} assignment ${i}: ${JSON.stringify(r)}`);
    ips.push(r.ips[0]);
  }
  return ips;
}

/** One client's release of its even-numbered handles. */
export async function releaseEven(kv: KvStore, client: number, count: number): Promise<string[]> {
  const ipam = new Ipam(kv);
  const released: string[] = [];
  for (let i = 0; i < count; i += 2) {
    const r = await ipam.releaseByHandle(handleOf(client, i));
    if (!r.found || r.released.length !== 1) throw new Error(`client ${client} release ${i}: ${JSON.stringify(r)}`);
    released.push(...r.released);
  }
  return released;
}

export async function prepareScenario(kv: KvStore, nodes: number, pool: { name: string; cidr: string } = SCENARIO_POOL): Promise<void> {
  await setup(kv, { pools: [pool], nodes: Array.from({ length: nodes }, (_, n) => `node${n}`) });
}

/** Asserts the state after allocation (or after the release, with `released`). */
export async function verifyScenario(kv: KvStore, perClient: (string[])[], nodes: number, label: string): Promise<void> {
  const all = perClient.flat();
  assert.is(new Set(all).size, all.length, `${label}: all addresses distinct`);
  const ipam = new Ipam(kv);
  await assertClean(ipam, label);
  const { fromHandles, fromBlocks } = await handleCountsFromStore(kv);
  assert.equal(fromHandles, fromBlocks, `${label}: handle counts equal block contents`);
  assert.is([...fromBlocks.values()].reduce((a, b) => a + b, 0), all.length, `${label}: addresses in blocks`);
  // Plenty of blocks in a /16: nobody had to borrow, and each node's addresses lie in its own blocks.
  const routes = await ipam.routeInputs();
  assert.equal(routes.borrowed, [], `${label}: nothing borrowed`);
  for (let n = 0; n < nodes; n++) {
    const blocks = (await ipam.blocksOf(`node${n}`)).filter((b) => b.state === 'confirmed').map((b) => b.cidr);
    const mine = perClient.filter((_, c) => c % nodes === n).flat();
    const inUse = (await ipam.blocksOf(`node${n}`)).reduce((s, b) => s + b.inUse, 0);
    assert.is(inUse, mine.length, `${label}: node${n} blocks hold its addresses`);
    assert.ok(blocks.length >= Math.ceil(mine.length / 64), `${label}: node${n} has enough blocks`);
  }
  const show = await ipam.show();
  assert.is(show[0].inUse, all.length, `${label}: show() total in use`);
}
