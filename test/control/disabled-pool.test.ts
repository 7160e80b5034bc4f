/**
 * A disabled IPPool (`disabled: true`) with blocks in use: as in Calico, whose dataplane never
 * reads the field (felix/calc's route resolver and encapsulation calculator, the masquerade
 * manager, confd's BIRD filters, which reject only disableBGPExport pools), disabling it changes
 * nothing a node does with what is already there: the routes and blackholes of its blocks (the
 * FIB), the pool's kernel route into podway0, its natOutgoing, the tunnel MTUs, its BGP exports and
 * the learned routes accepted inside it. IPv4 and IPv6 pools alike (docs/ipam.md, "A disabled pool").
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { computeNodeModel, type NodeDataplaneModel } from '../../src/control/route-calc';
import { computeExports, computeLearnedExportPolicy } from '../../src/control/bgp/exports';
import { hostPoolState } from '../../src/dataplane/engine';
import { affinity, node, pool, snapshotOf, wep } from './fixtures';

const snap = (disabled: boolean) => snapshotOf(
  pool('vx', '10.244.0.0/16', { vxlanMode: 'Always', natOutgoing: true, disabled }),
  pool('ip', '10.245.0.0/16', { ipipMode: 'CrossSubnet', natOutgoing: true, disabled }),
  pool('v6', 'fd00:10:244::/64', { vxlanMode: 'Always', natOutgoing: true, disabled }),
  node('node1', '10.99.0.1/24', '10.244.0.0', { bgp: { ipv4Address: '10.99.0.1/24', ipv6Address: 'fd99::1/64', ipv4IPIPTunnelAddr: '10.245.0.0' }, ipv6VXLANTunnelAddr: 'fd00:10:244::' }),
  node('node2', '10.98.0.2/24', '10.244.0.64', { bgp: { ipv4Address: '10.98.0.2/24', ipv6Address: 'fd99::2/64', ipv4IPIPTunnelAddr: '10.245.0.64' }, ipv6VXLANTunnelAddr: 'fd00:10:244::40' }),
  affinity('node1', '10.244.0.0/26'), affinity('node2', '10.244.0.64/26'),
  affinity('node1', '10.245.0.0/26'), affinity('node2', '10.245.0.64/26'),
  affinity('node1', 'fd00:10:244::/122'), affinity('node2', 'fd00:10:244::40/122'),
  wep('node1', 'a', ['10.244.0.5/32', 'fd00:10:244::5/128'], 'calia'),
  wep('node1', 'b', ['10.245.0.5/32'], 'calib'),
  wep('node1', 'borrowed', ['10.244.0.70/32'], 'calic'),
  wep('node2', 'c', ['10.244.0.66/32', 'fd00:10:244::46/128'], 'calid'),
);

/** The model less the pools' own `disabled` flags. */
const withoutFlag = (m: NodeDataplaneModel) => JSON.parse(JSON.stringify({ ...m, pools: m.pools.map((p) => ({ ...p, disabled: null })), v6: { ...m.v6, pools: m.v6.pools.map((p) => ({ ...p, disabled: null })) } }, (_k, v) => (v instanceof Set ? [...v] : v)));

test('disabling every pool changes no route, blackhole, pool route, natOutgoing, MTU or BGP export of a node', () => {
  for (const name of ['node1', 'node2']) {
    const on = computeNodeModel(snap(false), name);
    const off = computeNodeModel(snap(true), name);
    assert.ok(off.pools.every((p) => p.disabled) && off.v6.pools.every((p) => p.disabled === true), 'the pools are disabled');
    // the premise: the model has what is compared (blocks routed, blackholed, NAT pools, tunnels)
    assert.ok(on.routes.some((r) => r.kind === 'blackhole') && on.routes.some((r) => r.kind === 'vxlan'), JSON.stringify(on.routes.map((r) => [r.cidr, r.kind])));
    assert.ok(on.v6.routes.some((r) => r.kind === 'vxlan'), JSON.stringify(on.v6.routes.map((r) => [r.cidr, r.kind])));
    assert.equal(withoutFlag(off), withoutFlag(on), `${name}: the whole model (routes, blackholes, pools with natOutgoing, MTUs, tunnel addresses)`);
    assert.equal(hostPoolState(off, 1500), hostPoolState(on, 1500), `${name}: the kernel's pool routes into podway0 and the tunnel addresses on it`);
    assert.equal(off.pools.filter((p) => p.natOutgoing).map((p) => p.cidr), ['10.244.0.0/16', '10.245.0.0/16']);
    assert.equal(computeExports(snap(true), name), computeExports(snap(false), name), `${name}: BGP exports`);
    assert.ok(computeExports(snap(true), name).length > 0);
    assert.equal(computeLearnedExportPolicy(snap(true), name), computeLearnedExportPolicy(snap(false), name), `${name}: learned routes passed on`);
  }
});

test.run();
