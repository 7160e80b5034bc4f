/**
 * The CNI plugin and IPPool spec.assignmentMode (Calico v3.30+), root and network namespaces: an
 * ADD whose config names no pool gets its addresses from Automatic pools only, IPv4 and IPv6; a
 * Manual pool gives only to an ADD whose ipam.ipv4_pools / ipv6_pools names it (or that asks for
 * one of its addresses with IP=). With only Manual pools left, an unnamed ADD is refused saying so.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { CniHarness } from './harness';
import { applyResource } from '../../src/control/v3-store';
import { Ipam } from '../../src/control/ipam';
import { isRoot } from '../helpers/netns';

if (!isRoot()) throw new Error('the CNI plugin tests need root (network namespaces)');

const cid = (n: string): string => `c${n}${Math.random().toString(16).slice(2, 10)}`;
const args = (pod: string) => `K8S_POD_NAMESPACE=web;K8S_POD_NAME=${pod}`;
const pool = (name: string, spec: Record<string, unknown>) => ({ apiVersion: 'projectcalico.org/v3', kind: 'IPPool', metadata: { name }, spec });

test('ADD: Manual pools only when named in ipv4_pools/ipv6_pools or by IP=; Automatic pools otherwise', async () => {
  const h = new CniHarness();
  try {
    await h.setup({ cidr: '10.251.0.0/24', blockSize: 26 }); // Automatic (no assignmentMode)
    const m4 = `m4-${h.tag}`;
    const m6 = `m6-${h.tag}`;
    await applyResource(h.kv, pool(m4, { cidr: '10.252.0.0/24', blockSize: 26, assignmentMode: 'Manual' }));
    await applyResource(h.kv, pool(m6, { cidr: 'fd00:252::/120', assignmentMode: 'Manual' }));
    // A misspelt mode is refused by apply, naming the field.
    try {
      await applyResource(h.kv, pool(`bad-${h.tag}`, { cidr: '10.253.0.0/24', assignmentMode: 'manual' }));
      assert.unreachable('assignmentMode manual');
    } catch (e) {
      assert.match((e as Error).message, /spec\.assignmentMode/);
    }

    // No pool named: IPv4 from the Automatic pool; no IPv6 (the only IPv6 pool is Manual, assign_ipv6 unset).
    const a = await h.add(h.pod('a'), cid('a'), { args: args('a') });
    assert.is(a.exitCode, 0, a.stdout + a.stderr);
    assert.equal(a.json.ips.map((i: { address: string }) => i.address.replace(/\.\d+\/32$/, '')), ['10.251.0'], JSON.stringify(a.json.ips));

    // Named: both Manual pools give.
    const b = await h.add(h.pod('b'), cid('b'), { args: args('b'), extra: { ipam: { type: 'calico-ipam', ipv4_pools: [m4], ipv6_pools: [m6] } } });
    assert.is(b.exitCode, 0, b.stdout + b.stderr);
    assert.match(b.json.ips[0].address, /^10\.252\.0\.\d+\/32$/);
    // (the block's first address may be given: fd00:252::, as Calico gives a block's .0 / ::0)
    assert.match(b.json.ips[1]?.address ?? JSON.stringify(b.json), /^fd00:252::([0-9a-f]{1,4})?\/128$/);

    // IP= an address of the Manual pool: given.
    const c = await h.add(h.pod('c'), cid('c'), { args: `${args('c')};IP=10.252.0.77` });
    assert.is(c.exitCode, 0, c.stdout + c.stderr);
    assert.is(c.json.ips[0].address, '10.252.0.77/32');

    // The Automatic pool disabled: an unnamed ADD finds no pool and says the Manual one is kept for requests naming it.
    await applyResource(h.kv, pool(`pool-${h.tag}`, { cidr: '10.251.0.0/24', blockSize: 26, disabled: true }));
    const xpod = h.pod('x');
    const x = await h.call({ command: 'ADD', containerId: cid('x'), netns: xpod.path, ifname: 'eth0', args: args('x') });
    assert.ok(x.json?.code, x.stdout);
    assert.match(x.json.msg, /no enabled IPv4 pool selects node/);
    assert.match(x.json.msg, `${m4} (10.252.0.0/24, assignmentMode Manual: used only when named`);
    assert.equal(await new Ipam(h.kv).check(), [], 'nothing left over by the refused ADD');
    assert.is((await h.handles()).length, 3, 'the three pods hold addresses');
  } finally {
    await h.cleanup();
  }
});

test.run();
