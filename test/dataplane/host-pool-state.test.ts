// hostPoolState: the pool routes podway0 gets, with the source address of each pool's
// encapsulation (the node's VXLAN, IPIP and IPv6 VXLAN tunnel addresses, each taken by name from
// the node's own 'host' routes), and the node's own addresses on podway0. Pure: no root.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { hostPoolState } from '../../src/dataplane/engine';
import type { NodeDataplaneModel } from '../../src/control/route-calc';
import { clusterModel } from './helpers';
import { dualStackYaml } from './helpers6';

const VTEP6 = 'fd00:10:244::';

function srcOf(model: NodeDataplaneModel, cidr: string): string | null | undefined {
  return hostPoolState(model).pools.find((p) => p.cidr === cidr)?.src;
}

test('each pool\'s route into podway0 carries its encapsulation\'s tunnel address as source; the IPv6 VXLAN pool its IPv6 VTEP', () => {
  const m = clusterModel('node1', dualStackYaml());
  assert.is(srcOf(m, '10.244.0.0/16'), '10.244.0.0', 'VXLAN pool: the VTEP address');
  assert.is(srcOf(m, '10.246.0.0/16'), null, 'unencapsulated pool: the node\'s address (no src)');
  assert.is(srcOf(m, 'fd00:10:244::/64'), VTEP6, 'IPv6 VXLAN pool: the IPv6 VTEP');
  const addrs = hostPoolState(m).addrs.map((a) => a.addr);
  assert.ok(addrs.includes(VTEP6), addrs.join(', '));
});

test('the IPv6 source is the IPv6 VTEP address itself, not whichever IPv6 host route comes first', () => {
  const m = clusterModel('node1', dualStackYaml());
  const vtepRoute = m.v6.routes.find((r) => r.kind === 'host');
  assert.ok(vtepRoute, 'the model has the IPv6 VTEP as a host route');
  assert.is(vtepRoute!.cidr, `${VTEP6}/128`);
  // another address of the node's own listed before the VTEP's (a future host route, or an order change)
  const other = { ...vtepRoute!, cidr: 'fd00:10:244::5/128' };
  const reordered: NodeDataplaneModel = { ...m, v6: { ...m.v6, routes: [other, ...m.v6.routes] } };
  assert.is(srcOf(reordered, 'fd00:10:244::/64'), VTEP6);
  // both are the node's addresses on podway0
  const addrs = hostPoolState(reordered).addrs.map((a) => a.addr);
  assert.ok(addrs.includes(VTEP6) && addrs.includes('fd00:10:244::5'), addrs.join(', '));
});

test('an IPv6 VTEP the node holds no host route for (no IPv6 VXLAN in use) is no source', () => {
  const m = clusterModel('node1', dualStackYaml());
  const without: NodeDataplaneModel = { ...m, v6: { ...m.v6, routes: m.v6.routes.filter((r) => r.kind !== 'host') } };
  assert.is(srcOf(without, 'fd00:10:244::/64'), null);
  // nor does an unrelated host route stand in for it
  const other = { ...m.v6.routes.find((r) => r.kind === 'host')!, cidr: 'fd00:10:244::5/128' };
  const onlyOther: NodeDataplaneModel = { ...m, v6: { ...m.v6, routes: [other, ...without.v6.routes] } };
  assert.is(srcOf(onlyOther, 'fd00:10:244::/64'), null);
});

test.run();
