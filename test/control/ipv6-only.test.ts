// An IPv6-only node (calico-node's IP=none: no spec.bgp.ipv4Address): its registration writes no
// IPv4 address (joinCluster with ip 'none', registerNode without ipv4Address), its model has the
// IPv6 half and an empty IPv4 half whose pools and endpoint addresses are listed withheld with the
// reason, and a node with neither address is refused naming both fields.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { computeNodeModel, parseClusterYaml, NO_IPV4_REASON } from '../../src/control';
import { FileKv } from '../../src/control/kv/file-kv';
import { registerNode } from '../../src/control/node-registration';
import { joinCluster } from '../../src/cli/join';
import { parseDatastoreSpec } from '../../src/control/kv/spec';
import { tunnelRxProgram } from '../../src/dataplane/nft-tunnels';
import { underlayFilter } from '../../src/dataplane/host';

const NODES = '/calico/resources/v3/projectcalico.org/nodes/';

function yaml(v6Mode: string, node1Bgp = '{ ipv6Address: "fd99::1/64" }'): string {
  return `
apiVersion: projectcalico.org/v3
kind: IPPool
metadata: { name: v4 }
spec: { cidr: 10.244.0.0/16, vxlanMode: Always }
---
apiVersion: projectcalico.org/v3
kind: IPPool
metadata: { name: v4-ipip }
spec: { cidr: 10.245.0.0/16, ipipMode: Always, vxlanMode: Never }
---
apiVersion: projectcalico.org/v3
kind: IPPool
metadata: { name: v6 }
spec: { cidr: "fd00:10:244::/64", vxlanMode: ${v6Mode} }
---
apiVersion: projectcalico.org/v3
kind: Node
metadata: { name: node1 }
spec:
  bgp: ${node1Bgp}
  ipv6VXLANTunnelAddr: "fd00:10:244::"
---
apiVersion: projectcalico.org/v3
kind: Node
metadata: { name: node2 }
spec:
  bgp: { ipv6Address: "fd99::2/64" }
  ipv6VXLANTunnelAddr: "fd00:10:244::40"
---
apiVersion: projectcalico.org/v3
kind: BlockAffinity
metadata: { name: a1 }
spec: { node: node1, cidr: "fd00:10:244::/122", state: confirmed, deleted: "false" }
---
apiVersion: projectcalico.org/v3
kind: BlockAffinity
metadata: { name: a2 }
spec: { node: node2, cidr: "fd00:10:244::40/122", state: confirmed, deleted: "false" }
---
apiVersion: projectcalico.org/v3
kind: BlockAffinity
metadata: { name: a4 }
spec: { node: node2, cidr: "10.244.0.64/26", state: confirmed, deleted: "false" }
---
apiVersion: projectcalico.org/v3
kind: WorkloadEndpoint
metadata: { name: node1-k8s-a-eth0, namespace: default }
spec: { node: node1, pod: a, interfaceName: caliA, ipNetworks: ["fd00:10:244::1/128"] }
---
apiVersion: projectcalico.org/v3
kind: WorkloadEndpoint
metadata: { name: node1-k8s-c-eth0, namespace: default }
spec: { node: node1, pod: c, interfaceName: caliC, ipNetworks: [10.244.0.3/32, "fd00:10:244::3/128"] }
`;
}

test('model of an IPv6-only node: IPv6 routes (VXLAN over IPv6, unencapsulated), no IPv4 half, IPv4 pools and addresses withheld with the reason', () => {
  const m = computeNodeModel(parseClusterYaml(yaml('Always'), 'ipv6-only.yaml'), 'node1');
  assert.is(m.node.ip, null);
  assert.is(m.node.subnet, null);
  assert.is(m.node.knownNodeIps.size, 0);
  assert.equal(m.routes, [], 'no IPv4 route (node2\'s IPv4 block is not routed)');
  assert.equal(m.pools, []);
  assert.equal(m.encap, { vxlan: false, ipip: false });
  assert.is(m.mtu.pod, 1430, 'the pods\' MTU from the IPv6 VXLAN pool alone (1500 - 70), no IPv4 encapsulation');
  assert.is(m.v6.ip6, 'fd99::1');
  assert.is(m.v6.routes.find((x) => x.cidr === 'fd00:10:244::1/128')?.mtu, 1430, 'a local pod\'s MTU: the IPv6 VXLAN one (1500 - 70)');
  // The pods are attached (their IPv6 addresses), their IPv4 ones not.
  assert.equal(m.endpoints.map((e) => [e.interfaceName, e.ips.length]), [['caliA', 0], ['caliC', 0]]);
  assert.equal(m.v6.endpoints.map((e) => [e.interfaceName, e.ips6]), [['caliA', ['fd00:10:244::1']], ['caliC', ['fd00:10:244::3']]]);
  const r = m.v6.routes.find((x) => x.cidr === 'fd00:10:244::40/122');
  assert.ok(r, 'node2\'s IPv6 block routed');
  assert.is(r!.kind, 'vxlan');
  assert.is(r!.nodeIp6, 'fd99::2');
  const why = Object.fromEntries(m.withheld.map((w) => [w.cidr, w.reason]));
  assert.is(why['10.244.0.0/16'], NO_IPV4_REASON);
  assert.is(why['10.245.0.0/16'], `${NO_IPV4_REASON} (IPIP is IPv4 only)`);
  assert.match(why['10.244.0.3/32']!, `endpoint default/node1-k8s-c-eth0: ${NO_IPV4_REASON}`);

  const direct = computeNodeModel(parseClusterYaml(yaml('Never'), 'ipv6-only.yaml'), 'node1');
  const d = direct.v6.routes.find((x) => x.cidr === 'fd00:10:244::40/122');
  assert.is(d?.kind, 'direct');
  assert.is(d?.nodeIp6, 'fd99::2');
  assert.is(direct.v6.routes.find((x) => x.cidr === 'fd00:10:244::1/128')?.mtu, 1500);
  assert.is(direct.mtu.pod, 1500, 'unencapsulated IPv6: the underlay\'s');
});

test('a node with neither an IPv4 nor an IPv6 address is refused naming both fields', () => {
  const snap = parseClusterYaml(yaml('Always', '{ asNumber: 64512 }'), 'none.yaml');
  assert.throws(() => computeNodeModel(snap, 'node1'), /node "node1" has neither spec\.bgp\.ipv4Address nor spec\.bgp\.ipv6Address in none\.yaml/);
});

test('the dataplane\'s host pieces without an IPv4 address: the tunnel table has IPv6 rules only; the underlay filter takes IPv6 only (no ARP, no IPv4)', () => {
  const p = tunnelRxProgram('eth0', null, 4789, 'fd99::1');
  assert.not.match(p, /ip daddr/);
  assert.match(p, 'ip6 daddr fd99::1 exthdr frag missing udp dport 4789 counter name "vxlan6" drop');
  const both = underlayFilter(0x0a630001, { ipv6: true, tunnels: true });
  const v6only = underlayFilter(null, { ipv6: true, tunnels: true });
  // ldh [12]; jeq 0x86dd accept, else drop; accept; drop: 4 instructions of 8 bytes.
  assert.is(v6only.length, 4 * 8);
  assert.ok(both.length > v6only.length);
  const k = (prog: Uint8Array, i: number) => new DataView(prog.buffer, prog.byteOffset).getUint32(i * 8 + 4, true);
  assert.is(k(v6only, 1), 0x86dd, 'the one comparison is IPv6\'s ethertype');
});

test('registration without IPv4: registerNode writes only spec.bgp.ipv6Address; joinCluster with --ip none likewise, and refuses none + no IPv6', async () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'podway-v6only-'));
  const kv = new FileKv({ dir: path.join(dir, 'store') });
  try {
    await registerNode(kv, { name: 'node-a', ipv6Address: 'fd99::a/64' });
    const a = JSON.parse((await kv.get(`${NODES}node-a`))!.value);
    assert.equal(a.spec.bgp, { ipv6Address: 'fd99::a/64' });
    const none = await registerNode(kv, { name: 'node-b' }).then(() => null, (e: Error) => e);
    assert.match(none?.message ?? '(registered)', 'registerNode node-b: neither an IPv4 nor an IPv6 address');

    const ds = parseDatastoreSpec(`embedded:${path.join(dir, 'store')}`);
    const said: string[] = [];
    await joinCluster(ds, { node: 'node1', ip: 'none', ip6: 'fd99::1/64' }, (m) => said.push(m));
    const n1 = JSON.parse((await kv.get(`${NODES}node1`))!.value);
    assert.equal(n1.spec.bgp, { ipv6Address: 'fd99::1/64' });
    assert.ok(said.some((m) => /node node1 created in .* \(fd99::1\/64\)/.test(m)), said.join(' | '));
    // No IPv4 address at all is no longer refused with --ip none, but none of either is.
    const err = await joinCluster(ds, { node: 'node9', ip: 'none', ip6: 'none' }, () => {}).then(() => null, (e: Error) => e);
    assert.match(err?.message ?? '(registered)', 'node node9: --ip none (IP=none) and no IPv6 address to register');
    assert.is(await kv.get(`${NODES}node9`), null);
  } finally {
    await kv.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('--ip none with a Node that keeps spec.bgp.ipv4Address from an earlier start: refused naming the field, the Node unchanged; once the field is removed, the node registers IPv6-only', async () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'podway-v6only-'));
  const kv = new FileKv({ dir: path.join(dir, 'store') });
  try {
    await registerNode(kv, { name: 'node2', ipv4Address: '10.9.0.2/24', ipv6Address: 'fd99::2/64' });
    const stored = (await kv.get(`${NODES}node2`))!;
    const before = stored.value;
    const ds = parseDatastoreSpec(`embedded:${path.join(dir, 'store')}`);
    const err = await joinCluster(ds, { node: 'node2', ip: 'none', ip6: 'fd99::2/64' }, () => {}).then(() => null, (e: Error) => e);
    assert.match(err?.message ?? '(registered)', 'node node2: --ip none (IP=none), but its Node has spec.bgp.ipv4Address 10.9.0.2/24');
    assert.match(err?.message ?? '', 'remove spec.bgp.ipv4Address from Node node2');
    assert.is((await kv.get(`${NODES}node2`))!.value, before, 'nothing written');
    const n = JSON.parse(before);
    delete n.spec.bgp.ipv4Address;
    assert.ok(await kv.update(`${NODES}node2`, JSON.stringify(n), (await kv.get(`${NODES}node2`))!.modRevision));
    await joinCluster(ds, { node: 'node2', ip: 'none', ip6: 'fd99::2/64' }, () => {});
    assert.equal(JSON.parse((await kv.get(`${NODES}node2`))!.value).spec.bgp, { ipv6Address: 'fd99::2/64' });
  } finally {
    await kv.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

test.run();
