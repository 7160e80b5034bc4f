import { readFileSync } from 'node:fs';
import * as path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { DatastoreValidationError, parseClusterYaml } from '../../src/control/snapshot';
import { deriveVtepMac, macToBytes } from '../../src/control/mac';
import { validateNodeName } from '../../src/control/resources';
import { computeNodeModel } from '../../src/control';
import { storedInterfaceType } from '../../src/control/wep-interface';
import { affinity, EXAMPLES_DIR, errorOf, node, pool, snapshotOf, wep, yamlOf } from './fixtures';

const basePool = pool('default-pool', '10.244.0.0/16', { vxlanMode: 'Always' });
const n1 = node('node1', '10.99.0.1/24', '10.244.0.0');
const n2 = node('node2', '10.99.0.2/24', '10.244.0.64');

// --- acceptance and defaults ---------------------------------------------------------------

test('IPPool defaults: blockSize 26 (IPv4) / 122 (IPv6), modes Never, flags false, selector all()', () => {
  const s = snapshotOf(pool('v4', '10.244.0.0/16'), pool('v6', 'fd00:10:244::/48'));
  assert.equal(s.ipPools[0]!.spec, {
    cidr: '10.244.0.0/16', blockSize: 26, ipipMode: 'Never', vxlanMode: 'Never',
    natOutgoing: false, disabled: false, disableBGPExport: false, nodeSelector: 'all()',
  });
  assert.is(s.ipPools[1]!.spec.blockSize, 122);
});

test('an IPv6 pool with natOutgoing is kept, with no warning (podway masquerades IPv6 too); a bad IPv6 blockSize is one error', () => {
  const s = snapshotOf(pool('v6', 'fd00:10:244::/48', { natOutgoing: true }));
  assert.is(s.ipPools[0]!.spec.natOutgoing, true);
  assert.equal(s.warnings, []);
  assert.equal(snapshotOf(pool('v4', '10.244.0.0/16', { natOutgoing: true })).warnings, []);
  assert.is(errorOf(yamlOf(pool('p', 'fd00:197::/64', { blockSize: 26 }))),
    'cluster.yaml: document 1 (IPPool p): spec.blockSize: expected 116 to 128 for an IPv6 pool, got 26');
});

test('keeps disableBGPExport, nodeSelector and allowedUses; drops fields podway does not use', () => {
  const raw = pool('p', '10.244.0.0/16', { disableBGPExport: true, nodeSelector: "zone == 'a'", allowedUses: ['Workload'] });
  (raw.metadata as Record<string, unknown>).uid = 'abc';
  (raw.metadata as Record<string, unknown>).creationTimestamp = '2024-01-01T00:00:00Z';
  const s = snapshotOf(raw);
  assert.is(s.ipPools[0]!.spec.disableBGPExport, true);
  assert.is(s.ipPools[0]!.spec.nodeSelector, "zone == 'a'");
  assert.equal(s.ipPools[0]!.metadata, { name: 'p' });
  assert.equal(s.ipPools[0]!.spec.allowedUses, ['Workload']);
  assert.not.ok('uid' in s.ipPools[0]!.metadata);
});

test('IPPool cidr overlapping a link-local range is refused, naming the field, as libcalico-go validateIPPoolSpec does', () => {
  const err = (cidr: string) => errorOf(yamlOf(pool('p', cidr)));
  assert.is(err('169.254.0.0/16'), 'cluster.yaml: document 1 (IPPool p): spec.cidr: IP pool range 169.254.0.0/16 overlaps with IPv4 Link Local range 169.254.0.0/16');
  assert.is(err('169.254.8.0/24'), 'cluster.yaml: document 1 (IPPool p): spec.cidr: IP pool range 169.254.8.0/24 overlaps with IPv4 Link Local range 169.254.0.0/16');
  assert.is(err('169.0.0.0/8'), 'cluster.yaml: document 1 (IPPool p): spec.cidr: IP pool range 169.0.0.0/8 overlaps with IPv4 Link Local range 169.254.0.0/16');
  assert.is(err('fe80::/64'), 'cluster.yaml: document 1 (IPPool p): spec.cidr: IP pool range fe80::/64 overlaps with IPv6 Link Local range fe80::/10');
  assert.is(err('fe00::/7'), 'cluster.yaml: document 1 (IPPool p): spec.cidr: IP pool range fe00::/7 overlaps with IPv6 Link Local range fe80::/10');
  // Calico's validator refuses no other range: loopback and multicast pools load (as calicoctl takes them).
  for (const cidr of ['127.0.0.0/16', '224.0.0.0/16', '169.253.0.0/16', 'fec0::/64']) assert.is(snapshotOf(pool('p', cidr)).ipPools.length, 1, cidr);
});

test('IPPool allowedUses: values and combinations libcalico-go validateIPPoolSpec refuses are refused, naming the field', () => {
  assert.is(errorOf(yamlOf(pool('p', '10.244.0.0/16', { allowedUses: ['Workload', 'workload'] }))),
    'cluster.yaml: document 1 (IPPool p): spec.allowedUses[1]: unknown use "workload": expected one of Workload, Tunnel, LoadBalancer');
  assert.is(errorOf(yamlOf(pool('p', '10.244.0.0/16', { allowedUses: ['LoadBalancer', 'Tunnel'] }))),
    'cluster.yaml: document 1 (IPPool p): spec.allowedUses: LoadBalancer cannot be used at the same time as Tunnel');
  assert.is(errorOf(yamlOf(pool('p', '10.244.0.0/16', { allowedUses: ['LoadBalancer'], vxlanMode: 'Always' }))),
    'cluster.yaml: document 1 (IPPool p): spec.allowedUses: a LoadBalancer pool cannot have ipipMode or vxlanMode enabled');
  assert.equal(snapshotOf(pool('p', '10.244.0.0/16', { allowedUses: ['Tunnel'] })).ipPools[0]!.spec.allowedUses, ['Tunnel']);
});

test('WorkloadEndpoint: interfaceType defaults to veth, accepts tap/tun, MAC lower-cased', () => {
  const s = snapshotOf(basePool, n1,
    wep('node1', 'a', ['10.244.0.1/32'], 'cali1', { mac: 'AA:BB:CC:DD:EE:01' }),
    wep('node1', 'b', ['10.244.0.2/32'], 'tap0', { interfaceType: 'tap' }));
  assert.is(s.workloadEndpoints[0]!.spec.interfaceType, 'veth');
  assert.is(s.workloadEndpoints[0]!.spec.mac, 'aa:bb:cc:dd:ee:01');
  assert.is(s.workloadEndpoints[1]!.spec.interfaceType, 'tap');
});

test('accepts calicoctl List documents, other Calico kinds, empty documents', () => {
  const list = { apiVersion: 'projectcalico.org/v3', kind: 'IPPoolList', items: [basePool], metadata: {} };
  const felix = { apiVersion: 'projectcalico.org/v3', kind: 'FelixConfiguration', metadata: { name: 'default' }, spec: {} };
  const s = parseClusterYaml(`${yamlOf(list, felix)}---\n---\n`, 'x.yaml');
  assert.is(s.ipPools.length, 1);
  assert.is(s.nodes.length, 0);
});

test('the example file loads', () => {
  const file = path.join(EXAMPLES_DIR, 'two-node-vxlan.yaml');
  const s = parseClusterYaml(readFileSync(file, 'utf8'), file);
  assert.is(s.ipPools.length, 1);
  assert.is(s.nodes.length, 2);
  assert.is(s.blockAffinities.length, 2);
  assert.is(s.workloadEndpoints.length, 4);
  assert.equal(s.warnings, []);
});

// --- per-document rejection, exact messages -------------------------------------------------

test('rejects an unknown vxlanMode naming file, document, kind/name and field', () => {
  const bad = pool('default-pool', '10.244.0.0/16', { vxlanMode: 'Sometimes' });
  assert.is(errorOf(yamlOf(n1, n2, bad)),
    'cluster.yaml: document 3 (IPPool default-pool): spec.vxlanMode: expected one of Never|Always|CrossSubnet, got "Sometimes"');
});

test('rejects a field Calico does not define, naming the field meant; Calico fields podway does not use load', () => {
  // A typo must not silently mean the default (vxlanMode Never here).
  const typo = pool('default-pool', '10.244.0.0/16', { vxlanmode: 'Always' });
  assert.is(errorOf(yamlOf(n1, n2, typo)),
    'cluster.yaml: document 3 (IPPool default-pool): spec.vxlanmode: unknown field (did you mean vxlanMode?)');
  const bgpTypo = node('node3', '10.99.0.3/24', '10.244.0.128');
  (bgpTypo.spec as { bgp: Record<string, unknown> }).bgp.ipv4address = '10.99.0.3/24';
  assert.match(errorOf(yamlOf(basePool, bgpTypo)), 'spec.bgp.ipv4address: unknown field (did you mean ipv4Address?)');
  const far = wep('node1', 'a', ['10.244.0.1/32'], 'cali1', { frobnicate: 1 });
  assert.match(errorOf(yamlOf(basePool, n1, far)), /spec\.frobnicate: unknown field \(WorkloadEndpoint\.spec has orchestrator, workload, node/);
  // What calicoctl prints for fields podway ignores still loads.
  const full = pool('p', '10.244.0.0/16', { allowedUses: ['Workload', 'Tunnel'], assignmentMode: 'Automatic', namespaceSelector: '' });
  (full.metadata as Record<string, unknown>).resourceVersion = '12';
  const withOrch = node('node1', '10.99.0.1/24', '10.244.0.0');
  (withOrch.spec as Record<string, unknown>).orchRefs = [{ nodeName: 'node1', orchestrator: 'k8s' }];
  (withOrch as Record<string, unknown>).status = { podCIDRs: ['10.244.0.0/24'] };
  assert.is(snapshotOf(full, withOrch).ipPools.length, 1);
  // BGP kinds too: a misspelt keepOriginalNextHop would silently mean "next hop self".
  const peer = { apiVersion: 'projectcalico.org/v3', kind: 'BGPPeer', metadata: { name: 'tor' }, spec: { peerIP: '10.99.0.254', asNumber: 65000, keepOriginalNexthop: true } };
  assert.match(errorOf(yamlOf(basePool, n1, peer)), 'spec.keepOriginalNexthop: unknown field (did you mean keepOriginalNextHop?)');
  const secret = { ...peer, spec: { peerIP: '10.99.0.254', asNumber: 65000, password: { secretKeyRef: { name: 's', key: 'k' } }, sourceAddress: 'None' } };
  assert.is(snapshotOf(basePool, n1, secret).bgpPeers?.length, 1);
  // AS 0 (reserved, RFC 7607) stored before podway refused it still loads: nothing vanishes from
  // the snapshot (the BGP plan skips or defaults it; podway apply refuses it, test/cli).
  assert.is(snapshotOf(basePool, n1, { ...peer, spec: { peerIP: '10.99.0.254', asNumber: 0 } }).bgpPeers?.length, 1);
});

test('rejects IPIP and VXLAN both enabled', () => {
  assert.is(errorOf(yamlOf(pool('p', '10.244.0.0/16', { ipipMode: 'CrossSubnet', vxlanMode: 'Always' }))),
    'cluster.yaml: document 1 (IPPool p): spec.vxlanMode: cannot be Always while ipipMode is CrossSubnet: enable at most one encapsulation');
});

test('rejects blockSize outside 20..32, and a pool smaller than a block', () => {
  assert.is(errorOf(yamlOf(pool('p', '10.244.0.0/16', { blockSize: 19 }))),
    'cluster.yaml: document 1 (IPPool p): spec.blockSize: expected 20 to 32 for an IPv4 pool, got 19');
  assert.is(errorOf(yamlOf(pool('p', '10.244.0.0/28'))),
    'cluster.yaml: document 1 (IPPool p): spec.cidr: pool 10.244.0.0/28 is smaller than one block (/26)');
  assert.is(errorOf(yamlOf(pool('p', '10.244.0.0/16', { blockSize: 26.5 }))),
    'cluster.yaml: document 1 (IPPool p): spec.blockSize: expected an integer, got 26.5');
});

test('rejects malformed and non-canonical CIDRs, missing fields, wrong types', () => {
  assert.is(errorOf(yamlOf(pool('p', '10.244.0.1/16'))), 'cluster.yaml: document 1 (IPPool p): spec.cidr: "10.244.0.1/16" has host bits set');
  assert.is(errorOf(yamlOf(pool('p', '10.244.0.0'))), 'cluster.yaml: document 1 (IPPool p): spec.cidr: expected a CIDR like 10.244.0.0/16, got "10.244.0.0"');
  assert.is(errorOf(yamlOf(pool('p', 'fd00:197::1/64'))), 'cluster.yaml: document 1 (IPPool p): spec.cidr: "fd00:197::1/64" has host bits set');
  assert.is(errorOf(yamlOf(pool('p', 'fd00:196::1:0:0:0/80'))), 'cluster.yaml: document 1 (IPPool p): spec.cidr: "fd00:196::1:0:0:0/80" is not in canonical form: write "fd00:196:0:0:1::/80"');
  assert.is(errorOf(yamlOf(pool('p', 'FD00:196::/64'))), 'cluster.yaml: document 1 (IPPool p): spec.cidr: "FD00:196::/64" is not in canonical form: write "fd00:196::/64"');
  const noCidr = pool('p', 'x');
  delete (noCidr.spec as Record<string, unknown>).cidr;
  assert.is(errorOf(yamlOf(noCidr)), 'cluster.yaml: document 1 (IPPool p): spec.cidr: required (a string)');
  assert.is(errorOf(yamlOf(pool('p', '10.244.0.0/16', { natOutgoing: 'yes' }))),
    'cluster.yaml: document 1 (IPPool p): spec.natOutgoing: expected true or false, got "yes"');
  assert.is(errorOf(yamlOf(pool('Bad_Name', '10.244.0.0/16'))),
    `cluster.yaml: document 1 (IPPool Bad_Name): metadata.name: expected a lowercase DNS name (a-z, 0-9, '-', '.'), got "Bad_Name"`);
});

test('rejects bad Node fields', () => {
  assert.is(errorOf(yamlOf(node('node1', '10.99.0.300/24'))),
    'cluster.yaml: document 1 (Node node1): spec.bgp.ipv4Address: expected an IPv4 address with prefix length like 10.99.0.1/24, got "10.99.0.300/24"');
  assert.is(errorOf(yamlOf(node('node1', '10.99.0.1/24', '10.244.0'))),
    'cluster.yaml: document 1 (Node node1): spec.ipv4VXLANTunnelAddr: expected an IPv4 address, got "10.244.0"');
  assert.is(errorOf(yamlOf(node('node1', '10.99.0.1/24', undefined, { vxlanTunnelMACAddr: '66:00:11' }))),
    'cluster.yaml: document 1 (Node node1): spec.vxlanTunnelMACAddr: expected a MAC address like 66:0a:1b:2c:3d:4e, got "66:00:11"');
});

test('rejects bad BlockAffinity and WorkloadEndpoint fields', () => {
  assert.is(errorOf(yamlOf(basePool, n1, affinity('node1', '10.244.0.0/26', 'maybe'))),
    'cluster.yaml: document 3 (BlockAffinity node1-10-244-0-0-26): spec.state: expected one of confirmed|pending|pendingDeletion, got "maybe"');
  assert.is(errorOf(yamlOf(basePool, n1, wep('node1', 'a', ['10.244.0.0/24'], 'cali1'))),
    'cluster.yaml: document 3 (WorkloadEndpoint default/node1-k8s-a-eth0): spec.ipNetworks[0]: expected an IPv4 /32 (or IPv6 /128), got "10.244.0.0/24"');
  assert.is(errorOf(yamlOf(basePool, n1, wep('node1', 'a', ['10.244.0.1/32'], 'cali1', { interfaceType: 'macvlan' }))),
    'cluster.yaml: document 3 (WorkloadEndpoint default/node1-k8s-a-eth0): spec.interfaceType: expected one of veth|tap|tun, got "macvlan"');
  assert.is(errorOf(yamlOf(basePool, n1, wep('node1', 'a', ['10.244.0.1/32'], 'cali0123456789abc'))),
    `cluster.yaml: document 3 (WorkloadEndpoint default/node1-k8s-a-eth0): spec.interfaceName: expected a Linux interface name (at most 15 characters, no spaces, '/' or ':'), got "cali0123456789abc"`);
  const noNode = wep('node1', 'a', ['10.244.0.1/32'], 'cali1');
  delete (noNode.spec as Record<string, unknown>).node;
  assert.is(errorOf(yamlOf(basePool, n1, noNode)),
    'cluster.yaml: document 3 (WorkloadEndpoint default/node1-k8s-a-eth0): spec.node: required (a string)');
});

test('interfaceNetns: /run/netns/NAME and /proc/PID/ns/net load; any other path is refused naming the field', () => {
  const tapIn = (netns: string) => wep('node1', 'a', ['10.244.0.1/32'], 'tap0', { interfaceType: 'tap', interfaceNetns: netns });
  for (const ok of ['/run/netns/pod1', '/run/netns/Pod_1.a-b', '/run/netns/...', '/proc/1/ns/net', '/proc/4242/ns/net']) {
    assert.is(snapshotOf(basePool, n1, tapIn(ok)).workloadEndpoints[0]!.spec.interfaceNetns, ok, ok);
  }
  const bad = [
    '/etc/shadow', '/run/netns/..', '/run/netns/.', '/run/netns/', '/run/netns/a/b', '/run/netns/../../etc/x',
    'run/netns/pod1', '/var/run/netns/pod1', '/run/netns/pod 1', '/proc/self/ns/net', '/proc/1/ns/mnt',
    '/proc/1/ns/net/', '/proc//ns/net', '/run/netns/pod1\n', '',
  ];
  for (const path of bad) {
    assert.is(errorOf(yamlOf(basePool, n1, tapIn(path))),
      `cluster.yaml: document 3 (WorkloadEndpoint default/node1-k8s-a-eth0): spec.interfaceNetns: expected /run/netns/NAME (NAME of A-Z, a-z, 0-9, '_', '.', '-') or /proc/PID/ns/net, got ${JSON.stringify(path)}`, path);
  }
});

/** A TAP endpoint as the CNI plugin now writes it: its attachment in annotations, Calico's spec only. */
function annotatedTap(type: string, netns: string, spec: Record<string, unknown> = {}): Record<string, unknown> {
  const w = wep('node1', 'a', ['10.244.0.1/32'], 'tap0', spec) as { metadata: Record<string, unknown> };
  return { ...w, metadata: { ...w.metadata, annotations: { 'cni.podway.io/network': 'k8s-pod-network', 'cni.podway.io/interface-type': type, 'cni.podway.io/interface-netns': netns } } };
}

test('a TAP/TUN endpoint\'s attachment from the cni.podway.io/interface-type and -netns annotations (what calicoctl get/replace keeps); the spec fields of earlier versions still read, the annotation winning', () => {
  // annotations only: the spec holds nothing Calico does not define (a calicoctl replace round trip)
  const s = snapshotOf(basePool, n1, annotatedTap('tun', '/run/netns/pod1'));
  assert.is(s.workloadEndpoints[0]!.spec.interfaceType, 'tun');
  assert.is(s.workloadEndpoints[0]!.spec.interfaceNetns, '/run/netns/pod1');
  assert.is(s.workloadEndpoints[0]!.metadata.annotations?.['cni.podway.io/network'], 'k8s-pod-network', 'other annotations kept');
  // the old spec fields alone (a store written by an earlier version)
  const old = snapshotOf(basePool, n1, wep('node1', 'a', ['10.244.0.1/32'], 'tap0', { interfaceType: 'tap', interfaceNetns: '/proc/42/ns/net' }));
  assert.is(old.workloadEndpoints[0]!.spec.interfaceType, 'tap');
  assert.is(old.workloadEndpoints[0]!.spec.interfaceNetns, '/proc/42/ns/net');
  // both: the annotation wins
  const both = snapshotOf(basePool, n1, annotatedTap('tap', '/run/netns/new', { interfaceType: 'tun', interfaceNetns: '/run/netns/old' }));
  assert.is(both.workloadEndpoints[0]!.spec.interfaceType, 'tap');
  assert.is(both.workloadEndpoints[0]!.spec.interfaceNetns, '/run/netns/new');
  // the model podway forwards on: a TAP pod, not a veth
  const m = computeNodeModel(s, 'node1');
  assert.is(m.endpoints[0]!.interfaceType, 'tun');
  assert.is(m.endpoints[0]!.interfaceNetns, '/run/netns/pod1');
  // bad values are refused naming the annotation
  assert.match(errorOf(yamlOf(basePool, n1, annotatedTap('macvlan', '/run/netns/pod1'))), /WorkloadEndpoint default\/node1-k8s-a-eth0\): metadata\.annotations.*cni\.podway\.io\/interface-type.*macvlan/);
  assert.match(errorOf(yamlOf(basePool, n1, annotatedTap('tap', '/etc/shadow'))), /metadata\.annotations.*cni\.podway\.io\/interface-netns.*expected \/run\/netns\/NAME .*\/etc\/shadow/);
});

test('storedInterfaceType (the CNI plugin\'s read of a stored endpoint, before any schema): the annotation, else the old spec field, else veth', () => {
  assert.is(storedInterfaceType({ metadata: { annotations: { 'cni.podway.io/interface-type': 'tun' } }, spec: { interfaceType: 'tap' } }), 'tun');
  assert.is(storedInterfaceType({ metadata: {}, spec: { interfaceType: 'tap' } }), 'tap');
  assert.is(storedInterfaceType({ metadata: { annotations: { 'cni.podway.io/network': 'x' } }, spec: {} }), 'veth');
  assert.is(storedInterfaceType({}), 'veth');
});

test('validateNodeName: DNS-1123 subdomains pass unchanged; path tricks, capitals, edges and overlong names are refused naming the value', () => {
  for (const ok of ['node1', 'a', 'ip-10-0-0-1.eu-west-1.compute.internal', '0', 'x'.repeat(253)]) assert.is(validateNodeName(ok), ok);
  const rule = "a Kubernetes node name is a DNS-1123 subdomain (lowercase a-z, 0-9, '-' and '.', starting and ending with a letter or digit)";
  for (const bad of ['../../etc/foo', 'a/b', 'Node1', '-node', 'node-', '.node', 'node.', 'no de', 'node_1', '', 'node\n']) {
    assert.throws(() => validateNodeName(bad), (e: Error) => e.message === `invalid node name ${JSON.stringify(bad)}: ${rule}`, bad);
  }
  assert.throws(() => validateNodeName('x'.repeat(254), '$NODENAME'),
    (e: Error) => e.message === `invalid $NODENAME "${'x'.repeat(254)}": a Kubernetes node name is a DNS-1123 subdomain (254 characters, at most 253 allowed)`);
});

test('rejects wrong apiVersion, unknown kind, non-mapping documents, YAML syntax errors', () => {
  assert.is(errorOf('apiVersion: crd.projectcalico.org/v1\nkind: IPPool\nmetadata: {name: p}\nspec: {cidr: 10.0.0.0/16}\n'),
    'cluster.yaml: document 1 (IPPool p): apiVersion: expected "projectcalico.org/v3", got "crd.projectcalico.org/v1"');
  assert.is(errorOf('apiVersion: projectcalico.org/v3\nkind: IPpool\nmetadata: {name: p}\n'),
    'cluster.yaml: document 1 (IPpool p): kind: unknown kind "IPpool" (podway reads IPPool, Node, BlockAffinity, WorkloadEndpoint)');
  assert.is(errorOf(`${yamlOf(basePool)}---\n- a\n- b\n`),
    'cluster.yaml: document 2: expected a mapping with apiVersion, kind, metadata and spec, got a list');
  // Line numbers count from the top of the file, as an editor shows them. (A kind podway ignores
  // first: a FelixConfiguration is read now, and one without metadata is refused on its own.)
  assert.is(errorOf('apiVersion: projectcalico.org/v3\nkind: Profile\n---\nkind: Node\nmetadata: {name: [}\n'),
    'cluster.yaml: document 2: invalid YAML: Flow sequence in block collection must be sufficiently indented and end with a ] at line 5, column 19');
});

test('List items are labelled with their item number', () => {
  const list = { apiVersion: 'projectcalico.org/v3', kind: 'IPPoolList', items: [basePool, pool('p2', '10.245.0.0/16', { ipipMode: 'Sometimes' })] };
  assert.is(errorOf(yamlOf(list)),
    'cluster.yaml: document 1 item 2 (IPPool p2): spec.ipipMode: expected one of Never|Always|CrossSubnet, got "Sometimes"');
});

test('every problem is reported, one per line, and kept as structured issues', () => {
  const text = yamlOf(pool('a', '10.244.0.0/16', { vxlanMode: 'x' }), pool('b', '10.245.0.0/16', { ipipMode: 'y' }));
  try {
    parseClusterYaml(text, 'c.yaml');
    assert.unreachable('should have thrown');
  } catch (err) {
    assert.instance(err, DatastoreValidationError);
    const e = err as DatastoreValidationError;
    assert.is(e.issues.length, 2);
    assert.equal(e.issues[1]!.location, { document: 2, kind: 'IPPool', name: 'b' });
    assert.is(e.issues[1]!.path, 'spec.ipipMode');
    assert.is(e.message.split('\n').length, 2);
  }
});

test('a malformed selector in a YAML file is refused naming file, document and field (IPPool and BGPPeer)', () => {
  assert.match(errorOf(yamlOf(pool('a', '10.244.0.0/16', { nodeSelector: 'has(x' }))),
    /^cluster\.yaml: document 1 \(IPPool a\): spec\.nodeSelector: invalid selector: selector "has\(x": .* at position \d+$/);
  const peer = { apiVersion: 'projectcalico.org/v3', kind: 'BGPPeer', metadata: { name: 'tor' }, spec: { peerIP: '10.99.0.254', asNumber: 64512, nodeSelector: 'rack ==' } };
  assert.match(errorOf(yamlOf(basePool, peer)), /^cluster\.yaml: document 2 \(BGPPeer tor\): spec\.nodeSelector: invalid selector: /);
  // well-formed ones load
  parseClusterYaml(yamlOf(pool('a', '10.244.0.0/16', { nodeSelector: "has(x) && zone in {'a','b'}" })), 'ok.yaml');
});

// --- cross-resource checks ------------------------------------------------------------------

test('rejects duplicate names', () => {
  assert.is(errorOf(yamlOf(basePool, n1, node('node1', '10.99.0.9/24'))),
    'cluster.yaml: document 3 (Node node1): metadata.name: duplicate Node "node1" (first defined in document 2)');
});

test('rejects an affinity for an unknown node and a block outside every pool', () => {
  assert.is(errorOf(yamlOf(basePool, n1, affinity('node3', '10.244.0.0/26'))),
    'cluster.yaml: document 3 (BlockAffinity node3-10-244-0-0-26): spec.node: unknown node "node3"');
  assert.is(errorOf(yamlOf(basePool, n1, affinity('node1', '10.250.0.0/26'))),
    'cluster.yaml: document 3 (BlockAffinity node1-10-250-0-0-26): spec.cidr: 10.250.0.0/26 is outside every IPPool');
  assert.is(errorOf(yamlOf(basePool, n1, affinity('node1', '10.244.0.0/24'))),
    'cluster.yaml: document 3 (BlockAffinity node1-10-244-0-0-24): spec.cidr: /24 does not match blockSize 26 of IPPool "default-pool"');
});

test('rejects one block confirmed for two nodes (a pending claim is fine)', () => {
  assert.is(errorOf(yamlOf(basePool, n1, n2, affinity('node1', '10.244.0.0/26'), affinity('node2', '10.244.0.0/26'))),
    'cluster.yaml: document 5 (BlockAffinity node2-10-244-0-0-26): spec.cidr: 10.244.0.0/26 is already confirmed for node "node1" (document 4)');
  snapshotOf(basePool, n1, n2, affinity('node1', '10.244.0.0/26'), affinity('node2', '10.244.0.0/26', 'pending'));
});

test('rejects two workloads claiming one IP on one node; warns when on two nodes', () => {
  assert.is(errorOf(yamlOf(basePool, n1, wep('node1', 'a', ['10.244.0.1/32'], 'cali1'), wep('node1', 'b', ['10.244.0.1/32'], 'cali2'))),
    'cluster.yaml: document 4 (WorkloadEndpoint default/node1-k8s-b-eth0): spec.ipNetworks[0]: 10.244.0.1/32 is already claimed on node "node1" by WorkloadEndpoint default/node1-k8s-a-eth0 (document 3)');
  const s = snapshotOf(basePool, n1, n2, wep('node1', 'a', ['10.244.0.1/32'], 'cali1'), wep('node2', 'b', ['10.244.0.1/32'], 'cali2'));
  assert.equal(s.warnings, ['test.yaml: 10.244.0.1/32 is claimed by workloads on several nodes (node1, node2); local endpoints win, then the last one in the file']);
});

test('rejects other cross-resource conflicts', () => {
  assert.is(errorOf(yamlOf(basePool, pool('other', '10.244.128.0/17'))),
    'cluster.yaml: document 2 (IPPool other): spec.cidr: 10.244.128.0/17 overlaps IPPool "default-pool" (10.244.0.0/16)');
  assert.is(errorOf(yamlOf(basePool, pool('v6', 'fd00:196::/64'), pool('v6-inner', 'fd00:196:0:0:1::/80'))),
    'cluster.yaml: document 3 (IPPool v6-inner): spec.cidr: fd00:196:0:0:1::/80 overlaps IPPool "v6" (fd00:196::/64)');
  assert.is(errorOf(yamlOf(basePool, n1, node('node2', '10.99.0.1/16'))),
    'cluster.yaml: document 3 (Node node2): spec.bgp.ipv4Address: 10.99.0.1 is also the address of Node "node1"');
  assert.is(errorOf(yamlOf(basePool, n1, node('node2', '10.99.0.2/24', '10.244.0.0'))),
    'cluster.yaml: document 3 (Node node2): spec.ipv4VXLANTunnelAddr: 10.244.0.0 is also the VXLAN tunnel address of Node "node1"');
  assert.is(errorOf(yamlOf(basePool, n1, wep('node1', 'a', ['10.244.0.1/32'], 'cali1'), wep('node1', 'b', ['10.244.0.2/32'], 'cali1'))),
    'cluster.yaml: document 4 (WorkloadEndpoint default/node1-k8s-b-eth0): spec.interfaceName: "cali1" is already used on node "node1" by WorkloadEndpoint default/node1-k8s-a-eth0 (document 3)');
  assert.is(errorOf(yamlOf(basePool, n1, wep('node9', 'a', ['10.244.0.1/32'], 'cali1'))),
    'cluster.yaml: document 3 (WorkloadEndpoint default/node9-k8s-a-eth0): spec.node: unknown node "node9"');
  assert.is(errorOf(yamlOf(basePool, n1, wep('node1', 'a', ['10.0.0.5/32'], 'cali1'))),
    'cluster.yaml: document 3 (WorkloadEndpoint default/node1-k8s-a-eth0): spec.ipNetworks[0]: 10.0.0.5/32 is outside every IPPool');
});

// --- VTEP MAC ---------------------------------------------------------------------------------

test('VTEP MAC is 0x66 + first 5 bytes of sha1(nodename), as Felix vtepMACForHost', () => {
  // Expected values computed independently:
  //   python3 -c "import hashlib; h=hashlib.sha1(b'node1').digest(); print(':'.join('%02x'%b for b in bytes([0x66])+h[:5]))"
  assert.is(deriveVtepMac('node1'), '66:f9:37:c3:7e:94');
  assert.is(deriveVtepMac('node2'), '66:2d:bf:44:a6:8b');
  assert.is(deriveVtepMac('ip-10-0-1-23.ec2.internal'), '66:57:2c:f8:ad:4d');
  // IPv6 hashes nodename + "-v6": same command with b'node1-v6'.
  assert.is(deriveVtepMac('node1', 6), '66:0f:35:f2:60:df');
  assert.equal([...macToBytes('66:f9:37:c3:7e:94')], [0x66, 0xf9, 0x37, 0xc3, 0x7e, 0x94]);
});

test.run();
