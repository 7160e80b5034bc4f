// A node whose VXLAN blocks have no tunnel address to reach them by (control/tunnel-gaps.ts) is
// not ready, and /readyz and `podway status` say why: computed from the node's real model
// (route-calc on a snapshot), read through Health as `podway run` does.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { computeNodeModel } from '../../src/control/route-calc';
import { tunnelAddressGaps } from '../../src/control/tunnel-gaps';
import { Health } from '../../src/observe/health';
import { affinity, node, pool, snapshotOf } from './fixtures';

async function readiness(gaps: string[]) {
  const h = new Health();
  h.setDatastore(true);
  h.setEngines(async () => [{ problems: [], waiting: [] }]);
  h.setTunnelGaps(gaps);
  return h.report();
}

test('a node with a block in a (disabled) VXLAN pool and no tunnel address: not ready, saying which blocks', async () => {
  const snap = snapshotOf(
    pool('p', '10.70.0.0/16', { vxlanMode: 'Always', disabled: true }),
    node('a', '10.99.0.1/24'),
    node('b', '10.99.0.2/24', '10.70.1.0'),
    affinity('a', '10.70.0.0/26'),
    affinity('b', '10.70.1.0/26'),
  );
  const gaps = tunnelAddressGaps(computeNodeModel(snap, 'a'));
  assert.is(gaps.length, 1);
  assert.match(gaps[0]!, 'VXLAN block(s) 10.70.0.0/26 but no IPv4 VXLAN tunnel address');
  const r = await readiness(gaps);
  assert.is(r.ready, false);
  assert.equal(r.reasons, [`unreachable: ${gaps[0]}`]);
  // node b has its address: nothing to say; and the other nodes indeed withhold a's block
  assert.equal(tunnelAddressGaps(computeNodeModel(snap, 'b')), []);
  assert.ok(computeNodeModel(snap, 'b').withheld.some((w) => w.cidr === '10.70.0.0/26' && /VTEP IP unknown/.test(w.reason)));
  assert.is((await readiness([])).ready, true);
});

test('no gap without VXLAN: an unencapsulated pool needs no tunnel address, nor a node without blocks', () => {
  const plain = snapshotOf(pool('p', '10.71.0.0/16'), node('a', '10.99.0.1/24'), affinity('a', '10.71.0.0/26'));
  assert.equal(tunnelAddressGaps(computeNodeModel(plain, 'a')), []);
  const empty = snapshotOf(pool('p', '10.72.0.0/16', { vxlanMode: 'Always' }), node('a', '10.99.0.1/24'));
  assert.equal(tunnelAddressGaps(computeNodeModel(empty, 'a')), []);
});

test('a node with IPv6 blocks and no IPv6 address: not ready once other nodes exist (they withhold its blocks); alone it is', () => {
  const v6pool = pool('p6', 'fd00:73::/64');
  const pair = snapshotOf(pool('p', '10.73.0.0/16'), v6pool, node('a', '10.99.0.1/24'), node('b', undefined, undefined, { bgp: { ipv4Address: '10.99.0.2/24', ipv6Address: 'fd99::2/64' } }), affinity('a', 'fd00:73::/122'));
  const gaps = tunnelAddressGaps(computeNodeModel(pair, 'a'));
  assert.is(gaps.length, 1);
  assert.match(gaps[0]!, 'IPv6 block(s) fd00:73::/122 but no IPv6 address of its own');
  // what to do, including when it is done by itself (an address added to a running node) and when not
  assert.match(gaps[0]!, 'give the node an IPv6 address: one found on its interfaces is registered within --autodetect-poll-interval, 60 s by default, unless --ip6 names an address or none, which is read at the next start;');
  assert.ok(computeNodeModel(pair, 'b').v6.withheld.some((w) => w.cidr === 'fd00:73::/122' && /node IPv6 address unknown/.test(w.reason)));
  const alone = snapshotOf(pool('p', '10.73.0.0/16'), v6pool, node('a', '10.99.0.1/24'), affinity('a', 'fd00:73::/122'));
  assert.equal(tunnelAddressGaps(computeNodeModel(alone, 'a')), []);
});

test.run();
