// Records as Calico's own components write them, hand-built from libcalico-go's Go structs
// (projectcalico/calico master, 2026-08: model.AllocationBlock / AllocationAttribute with
// `alternateOwnerAttrs` and `releasedAt`, model.IPAMConfig with `ipCooldownSeconds`), put in a
// real etcd (test/helpers/etcd.ts: loopback, stopped by PID), then read and written by podway's
// IPAM. What must hold: podway keeps every field of theirs it does not use, byte for byte, and
// reads their cooldown as Calico does (an address in cooldown is neither free nor anybody's,
// and is freed once the configured cooldown is over).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { auditIpam } from '../../src/control/ipam/audit';
import { AllocationBlock, inCooldown } from '../../src/control/ipam/block';
import { Ipam } from '../../src/control/ipam/ipam';
import { affinityKey, blockKey, handleKey, IPAM_CONFIG_KEY, IPPOOL_PREFIX, NODE_PREFIX, WORKLOADENDPOINT_PREFIX } from '../../src/control/ipam/keys';
import { parseNet } from '../../src/control/ipam/net';
import { unknownCalicoFields } from '../../src/control/calico-fields';
import { decodePool } from '../../src/control/ipam/records';
import { validateResource } from '../../src/control/calico-kinds';
import { applyResource, replaceResource } from '../../src/control/v3-store';
import { markDatastoreReady, registerNode, updateNodeSpec } from '../../src/control/node-registration';
import { etcdForFile } from '../helpers/etcd';

const open = etcdForFile(test);

const CIDR = '10.250.0.0/29';
const NET = parseNet(CIDR)!;
const S = 1786000000000000000n; // a sequenceNumber as newBlock seeds it (UnixNano, past 2^53)

/** metav1.Time's JSON: RFC 3339, UTC, whole seconds. */
const rfc3339 = (ms: number) => new Date(ms).toISOString().replace(/\.\d{3}Z$/, 'Z');

// The four attributes as json.Marshal(model.AllocationAttribute) writes them (struct order:
// handle_id, secondary, alternateOwnerAttrs, releasedAt; all omitempty). The last one carries a
// field of a Calico later than this test (kept, never interpreted).
const ATTR_VM = '{"handle_id":"k8s-pod-network.c1","secondary":{"namespace":"ns","node":"calico-a","pod":"vm1","timestamp":"2026-12-07 10:00:00.000000001 +0000 UTC"},"alternateOwnerAttrs":{"namespace":"ns","node":"calico-b","pod":"vm1-target"}}';
const attrCooling = (at: string) => `{"releasedAt":"${at}"}`;
const ATTR_FUTURE = '{"handle_id":"k8s-pod-network.c3","secondary":{"node":"calico-a"},"futureField":{"x":1}}';

function calicoBlock(recent: string, old: string): string {
  return `{"cidr":"${CIDR}","affinity":"host:calico-a","affinity_claim_time":"2026-12-07T09:00:00Z",`
    + '"allocations":[0,1,2,3,null,null,null,null],"unallocated":[4,5,6,7],'
    + `"attributes":[${ATTR_VM},${attrCooling(recent)},${attrCooling(old)},${ATTR_FUTURE}],`
    + `"sequenceNumber":${S + 4n},"sequenceNumberForAllocation":{"0":${S},"1":${S + 1n},"2":${S + 2n},"3":${S + 3n}},"deleted":false}`;
}

async function seed(): Promise<{ kv: ReturnType<typeof open>; recent: string; old: string }> {
  const kv = open();
  const now = Date.now();
  const recent = rfc3339(now - 10_000); // inside a 300 s cooldown
  const old = rfc3339(now - 1_000_000); // long over
  await kv.create(IPPOOL_PREFIX + 'p', JSON.stringify({ kind: 'IPPool', apiVersion: 'projectcalico.org/v3', metadata: { name: 'p' }, spec: { cidr: '10.250.0.0/24', blockSize: 29, ipipMode: 'Never', vxlanMode: 'Never', nodeSelector: 'all()', allowedUses: ['Workload', 'Tunnel'] } }));
  for (const n of ['calico-a', 'calico-b']) await kv.create(NODE_PREFIX + n, JSON.stringify({ kind: 'Node', apiVersion: 'projectcalico.org/v3', metadata: { name: n }, spec: {} }));
  await kv.create(IPAM_CONFIG_KEY, '{"auto_allocate_blocks":true,"ipCooldownSeconds":300}');
  await kv.create(blockKey(NET), calicoBlock(recent, old));
  await kv.create(affinityKey('calico-a', NET), '{"state":"confirmed","deleted":false}');
  await kv.create(handleKey('k8s-pod-network.c1'), `{"block":{"${CIDR}":1},"deleted":false}`);
  await kv.create(handleKey('k8s-pod-network.c3'), `{"block":{"${CIDR}":1},"deleted":false}`);
  // vm1's endpoint, so 10.250.0.0 is in use for the audit
  await kv.create(`${WORKLOADENDPOINT_PREFIX}ns/calico--a-k8s-vm1-eth0`, JSON.stringify({
    kind: 'WorkloadEndpoint', apiVersion: 'projectcalico.org/v3', metadata: { name: 'calico--a-k8s-vm1-eth0', namespace: 'ns' },
    spec: { orchestrator: 'k8s', node: 'calico-a', pod: 'vm1', endpoint: 'eth0', containerID: 'c1', ipNetworks: ['10.250.0.0/32'], interfaceName: 'cali0123456789a' },
  }));
  return { kv, recent, old };
}

test('a block Calico wrote: podway keeps alternateOwnerAttrs, releasedAt and unknown attribute fields byte for byte, releases into Calico\'s cooldown as libcalico-go does; a cooling address is not released again', async () => {
  const { kv, recent } = await seed();
  const at = Date.now();
  const ipam = new Ipam(kv, { now: () => new Date(at) });
  // podway releases c3's address (a CNI DEL) in Calico's block, with the 300 s ipCooldownSeconds
  // /calico/ipam/v2/config holds (read by the release, as libcalico-go's ReleaseIPs reads it)
  const r = await ipam.releaseIps(['10.250.0.3']);
  assert.equal(r.released, ['10.250.0.3']);
  const after = (await kv.get(blockKey(NET)))!;
  // What json.Marshal gives for libcalico-go's release() of ordinal 3 there: ordinal 3 pointed at
  // a new attribute holding only releasedAt (the release time, whole seconds), its sequence entry
  // set to the block's, the garbage collection freeing ordinal 2 (its cooldown long over: to the
  // end of unallocated, its entry cleared) and dropping the attributes no address uses (c3's and
  // ordinal 2's), sequenceNumber + 1.
  const expected = `{"cidr":"${CIDR}","affinity":"host:calico-a","affinity_claim_time":"2026-12-07T09:00:00Z",`
    + '"allocations":[0,1,null,2,null,null,null,null],"unallocated":[4,5,6,7,2],'
    + `"attributes":[${ATTR_VM},${attrCooling(recent)},${attrCooling(rfc3339(at))}],`
    + `"sequenceNumber":${S + 5n},"sequenceNumberForAllocation":{"0":${S},"1":${S + 1n},"3":${S + 4n}},"deleted":false}`;
  assert.is(after.value, expected);
  const decoded = AllocationBlock.decode(after.value, NET);
  assert.equal(decoded.attributeOf(0)?.alternate, { namespace: 'ns', node: 'calico-b', pod: 'vm1-target' });

  // An address in its cooldown is released already: not again, the block not written
  const again = await ipam.releaseIps(['10.250.0.1']);
  assert.equal([again.released, again.notAllocated], [[], ['10.250.0.1']]);
  assert.is((await kv.get(blockKey(NET)))!.modRevision, after.modRevision);
  const held = await ipam.releaseIfUnchanged('10.250.0.1', { handle: null, sequenceNumber: String(S + 1n) });
  assert.is(held.outcome, 'not-allocated');
  assert.is((await kv.get(blockKey(NET)))!.modRevision, after.modRevision);

  // ipam check: cooling addresses are not leaks (calicoctl's check skips them too)
  const audit = await auditIpam(kv, { gracePeriodMs: 0 });
  const state = (ip: string) => audit.allocations.find((a) => a.ip === ip)?.state;
  assert.equal([state('10.250.0.0'), state('10.250.0.1'), state('10.250.0.2'), state('10.250.0.3')], ['in-use', 'cooldown', undefined, 'cooldown']);
  assert.equal(audit.problems.filter((p) => p.ip?.startsWith('10.250.0.')), []);
});

test('a cooldown that is over is collected when podway next writes the block (ipCooldownSeconds from /calico/ipam/v2/config); one still running is kept; affinity and handle fields podway does not know are kept', async () => {
  const kv = open();
  // this file's etcd is shared: clear the first test's keys
  for (const e of (await kv.list('/calico/')).entries) await kv.delete(e.key);
  const { recent } = await seed();
  // a claim Calico left pending, and a handle, each with a field of a later Calico
  const ak = affinityKey('calico-a', NET);
  await kv.update(ak, '{"state":"pending","deleted":false,"futureAff":{"a":[1,2]}}', (await kv.get(ak))!.modRevision);
  const hk = handleKey('k8s-pod-network.c1');
  await kv.update(hk, `{"block":{"${CIDR}":1},"deleted":false,"futureHandle":"x"}`, (await kv.get(hk))!.modRevision);
  const ipam = new Ipam(kv, { blockSearch: 'sequential' });
  const got = await ipam.autoAssign({ node: 'calico-a', count: 1, handleId: 'k8s-pod-network.c1', attrs: { node: 'calico-a' } });
  assert.equal(got.ips, ['10.250.0.4']);
  // podway confirmed the affinity (getBlockFromAffinity: pending again, then confirmed) and counted
  // the handle up, keeping what it does not know
  assert.is((await kv.get(ak))!.value, '{"state":"confirmed","deleted":false,"futureAff":{"a":[1,2]}}');
  assert.is((await kv.get(hk))!.value, `{"block":{"${CIDR}":2},"deleted":false,"futureHandle":"x"}`);
  await ipam.releaseIps(['10.250.0.4']);
  assert.is((await kv.get(hk))!.value, `{"block":{"${CIDR}":1},"deleted":false,"futureHandle":"x"}`);
  const b = AllocationBlock.decode((await kv.get(blockKey(NET)))!.value, NET);
  // ordinal 2's cooldown (over) freed to the end of unallocated, its attribute and sequence entry
  // gone; ordinal 4, released by podway just now, in its own 300 s cooldown
  assert.is(b.allocations[2], null);
  assert.equal(b.unallocated, [5, 6, 7, 2]);
  assert.ok(inCooldown(b.attributeOf(4)), JSON.stringify(b.attributeOf(4)));
  assert.is(b.sequenceNumberForAllocation?.has('2'), false);
  // ordinal 1's (running) kept as Calico wrote it
  assert.equal(b.attributeOf(1), { handleId: null, secondary: null, alternate: null, releasedAt: recent });
  assert.match(b.encode(), `{"releasedAt":"${recent}"}`);
  assert.equal(b.attributeOf(0)?.alternate, { namespace: 'ns', node: 'calico-b', pod: 'vm1-target' });
  assert.equal(b.attributeOf(3)?.extra, [['futureField', { x: 1 }]]);
});

test('podway\'s own releases (CNI DEL by handle, ipam release --ip, release by IP) keep the address out of use for ipCooldownSeconds as libcalico-go\'s do; the next assignment after it frees it; without the setting (0, the default) it is free at once', async () => {
  const kv = open();
  for (const e of (await kv.list('/calico/')).entries) await kv.delete(e.key);
  // one block of four addresses, so a cooling address is the only one left to give
  const net = parseNet('10.251.0.0/30')!;
  await kv.create(IPPOOL_PREFIX + 'small', JSON.stringify({ kind: 'IPPool', apiVersion: 'projectcalico.org/v3', metadata: { name: 'small' }, spec: { cidr: '10.251.0.0/30', blockSize: 30, ipipMode: 'Never', vxlanMode: 'Never', nodeSelector: 'all()', allowedUses: ['Workload', 'Tunnel'], assignmentMode: 'Automatic' } }));
  await kv.create(NODE_PREFIX + 'n1', JSON.stringify({ kind: 'Node', apiVersion: 'projectcalico.org/v3', metadata: { name: 'n1' }, spec: {} }));
  // calicoctl ipam configure --ip-cooldown-seconds 60 (libcalico-go's SetIPAMConfig writes this)
  await kv.create(IPAM_CONFIG_KEY, '{"auto_allocate_blocks":true,"ipCooldownSeconds":60}');
  const t0 = Date.parse('2026-12-07T12:00:00.400Z');
  let t = t0;
  const ipam = new Ipam(kv, { now: () => new Date(t), blockSearch: 'sequential' });
  for (const h of ['h0', 'h1', 'h2', 'h3']) assert.is((await ipam.autoAssign({ node: 'n1', count: 1, handleId: h, attrs: { node: 'n1' } })).ips.length, 1);
  const block = async () => AllocationBlock.decode((await kv.get(blockKey(net)))!.value, net);
  const seq0 = (await block()).sequenceNumber;

  // the CNI DEL's release by handle: ordinal 0 points at {"releasedAt":...} as Calico writes it
  assert.equal((await ipam.releaseByHandle('h0')).released, ['10.251.0.0']);
  const cooled = (await kv.get(blockKey(net)))!.value;
  assert.match(cooled, '"allocations":[3,0,1,2],"unallocated":[],"attributes":[{"handle_id":"h1","secondary":{"node":"n1"}},{"handle_id":"h2","secondary":{"node":"n1"}},{"handle_id":"h3","secondary":{"node":"n1"}},{"releasedAt":"2026-12-07T12:00:00Z"}]');
  assert.is(await kv.get(handleKey('h0')), null, 'the handle goes with its last address');
  // release by IP (a CNI DEL without a handle, `ipam release --ip`'s compare-and-swap): the same
  t = t0 + 10_000;
  assert.equal((await ipam.releaseIps(['10.251.0.1'])).released, ['10.251.0.1']);
  assert.is((await ipam.releaseIfUnchanged('10.251.0.2', { handle: 'h2', sequenceNumber: String(seq0 - 2n) })).outcome, 'released');
  const b1 = await block();
  assert.equal(b1.unallocated, []);
  assert.equal([0, 1, 2, 3].map((o) => b1.attributeOf(o)?.releasedAt ?? b1.attributeOf(o)?.handleId), ['2026-12-07T12:00:00Z', '2026-12-07T12:00:10Z', '2026-12-07T12:00:10Z', 'h3']);
  // each release's own attribute; the per-address release sets the address's sequence entry anew
  assert.is(b1.attributes!.length, 4);
  assert.is(b1.sequenceNumberForAllocation!.get('1'), seq0 + 1n);
  // ipam check: in cooldown, not leaked
  const audit = await auditIpam(kv, { gracePeriodMs: 0 });
  assert.equal(['10.251.0.0', '10.251.0.1', '10.251.0.2'].map((ip) => audit.allocations.find((a) => a.ip === ip)?.state), ['cooldown', 'cooldown', 'cooldown']);

  // 59 s after the first release nothing is free: the pool is full for a new pod
  t = t0 + 59_000;
  const full = await ipam.autoAssign({ node: 'n1', count: 1, handleId: 'h4', attrs: { node: 'n1' } });
  assert.equal(full.ips, []);
  // 61 s after it (51 s after the others): the next assignment frees 10.251.0.0 and gives it
  t = t0 + 61_000;
  assert.equal((await ipam.autoAssign({ node: 'n1', count: 1, handleId: 'h4', attrs: { node: 'n1' } })).ips, ['10.251.0.0']);
  const b2 = await block();
  assert.equal(b2.unallocated, []);
  assert.ok(inCooldown(b2.attributeOf(1)) && inCooldown(b2.attributeOf(2)), 'the later releases still cool');
  t = t0 + 71_000;
  assert.equal((await ipam.autoAssign({ node: 'n1', count: 2, handleId: 'h5', attrs: { node: 'n1' } })).ips, ['10.251.0.1', '10.251.0.2']);

  // without ipCooldownSeconds (libcalico-go's default, 0) a release frees at once, as Calico's
  // release then garbage collection does: to the end of unallocated, its sequence entry and the
  // handle's attribute gone, no releasedAt left
  await kv.delete(IPAM_CONFIG_KEY);
  assert.equal((await ipam.releaseByHandle('h3')).released, ['10.251.0.3']);
  const b3 = await block();
  assert.equal(b3.unallocated, [3]);
  assert.is(b3.allocations[3], null);
  assert.is(b3.sequenceNumberForAllocation!.has('3'), false);
  assert.equal(b3.attributes!.map((a) => a.handleId), ['h4', 'h5']);
  assert.not.match((await kv.get(blockKey(net)))!.value, 'releasedAt');
});

test('a pool\'s namespaceSelector (Calico v3.31+) is honoured for unnamed requests: matched against the namespace labels given, {} without a namespace', async () => {
  const kv = open();
  for (const e of (await kv.list('/calico/')).entries) await kv.delete(e.key);
  const pool = (name: string, cidr: string, extra: Record<string, unknown>) => kv.create(IPPOOL_PREFIX + name, JSON.stringify({
    kind: 'IPPool', apiVersion: 'projectcalico.org/v3', metadata: { name },
    spec: { cidr, vxlanMode: 'Never', ipipMode: 'Never', blockSize: 26, nodeSelector: 'all()', allowedUses: ['Workload', 'Tunnel'], assignmentMode: 'Automatic', ...extra },
  }));
  // calicoctl (v3.31+) stores both pools with their namespaceSelector; the prod one sorts first
  await pool('a-prod', '10.251.0.0/24', { namespaceSelector: "kubernetes.io/metadata.name == 'prod'" });
  await pool('b-all', '10.252.0.0/24', { namespaceSelector: 'all()' });
  await kv.create(NODE_PREFIX + 'n1', JSON.stringify({ kind: 'Node', apiVersion: 'projectcalico.org/v3', metadata: { name: 'n1' }, spec: {} }));
  const ipam = new Ipam(kv, { blockSearch: 'sequential' });
  const prod = await ipam.autoAssign({ node: 'n1', count: 1, handleId: 'h-prod', namespaceLabels: { 'kubernetes.io/metadata.name': 'prod' } });
  assert.ok(prod.ips[0]?.startsWith('10.251.'), `prod pod from a-prod: ${prod.ips}`);
  const dev = await ipam.autoAssign({ node: 'n1', count: 1, handleId: 'h-dev', namespaceLabels: { 'kubernetes.io/metadata.name': 'dev' } });
  assert.ok(dev.ips[0]?.startsWith('10.252.'), `dev pod not from a-prod: ${dev.ips}`);
  const none = await ipam.autoAssign({ node: 'n1', count: 1, handleId: 'h-none' });
  assert.ok(none.ips[0]?.startsWith('10.252.'), `no namespace: not from a-prod: ${none.ips}`);
  // named pools are used whatever the selectors say, as libcalico-go's determinePools
  const named = await ipam.autoAssign({ node: 'n1', count: 1, handleId: 'h-named', pools: ['a-prod'] });
  assert.ok(named.ips[0]?.startsWith('10.251.'), `named: ${named.ips}`);
  // only the restricted pool: an unnamed request from another namespace gets nothing, and is told why
  await kv.delete(IPPOOL_PREFIX + 'b-all');
  const refused = await ipam.autoAssign({ node: 'n1', count: 1, handleId: 'h-dev2', namespaceLabels: { 'kubernetes.io/metadata.name': 'dev' } });
  assert.equal(refused.ips, []);
  assert.match(refused.errors?.[0] ?? '', `no enabled IPv4 pool selects node n1 and its namespace; enabled pools: a-prod (10.251.0.0/24, nodeSelector "all()", namespaceSelector "kubernetes.io/metadata.name == 'prod'" (namespace labels {"kubernetes.io/metadata.name":"dev"}))`);
});

test('an IPv6 pool CIDR is stored in Calico\'s canonical text (clientv3 stores cidr.String()); another spelling of it is no CIDR change', async () => {
  const kv = open();
  const pool = (cidr: string) => ({ apiVersion: 'projectcalico.org/v3', kind: 'IPPool', metadata: { name: 'v6' }, spec: { cidr } });
  const r = await applyResource(kv, pool('FD00:10:244:0::/64'));
  assert.is(r.action, 'created');
  assert.is((JSON.parse((await kv.get(IPPOOL_PREFIX + 'v6'))!.value) as { spec: { cidr: string } }).spec.cidr, 'fd00:10:244::/64');
  await replaceResource(kv, pool('fd00:10:244:0:0::/64'));
  assert.is((JSON.parse((await kv.get(IPPOOL_PREFIX + 'v6'))!.value) as { spec: { cidr: string } }).spec.cidr, 'fd00:10:244::/64');
  const refused = async (f: () => Promise<unknown>): Promise<string> => f().then(() => 'written', (e: Error) => e.message);
  assert.match(await refused(() => applyResource(kv, pool('fd00:10:245::/64'))), /spec\.cidr cannot be changed/);
  assert.match(await refused(() => applyResource(kv, { ...pool('fd00:10:246::1/64'), metadata: { name: 'v6b' } })), /host bits set/);
});

test('a Node and ClusterInformation calico-node wrote: podway registers and marks ready keeping every field it does not set', async () => {
  const kv = open();
  // json.Marshal(internalapi.Node) as calico-node (etcd) leaves it, status and all
  const meta = '"metadata":{"name":"cn1","uid":"3f2c7c1e-7d2b-4a57-9f3e-1c2d3e4f5a6b","creationTimestamp":"2026-12-01T10:00:00Z","labels":{"kubernetes.io/hostname":"cn1","zone":"a"},"annotations":{"projectcalico.org/kube-labels":"{}"}}';
  const rest = '"ipv4VXLANTunnelAddr":"10.244.1.0","vxlanTunnelMACAddr":"66:aa:bb:cc:dd:ee","orchRefs":[{"nodeName":"cn1","orchestrator":"k8s"}],"wireguard":{"interfaceIPv4Address":"10.244.1.2"},"addresses":[{"address":"10.0.0.1/24","type":"CalicoNodeIP"}],"interfaces":[{"name":"eth0","addresses":["10.0.0.1"]}]},"status":{"wireguardPublicKey":"abc=","podCIDRs":["10.244.1.0/24"]}}';
  const node = (addr: string) => `{"kind":"Node","apiVersion":"projectcalico.org/v3",${meta},"spec":{"bgp":{"asNumber":64512,"ipv4Address":"${addr}","ipv4IPIPTunnelAddr":"10.244.1.1"},${rest}`;
  await kv.create(NODE_PREFIX + 'cn1', node('10.0.0.1/24'));
  const same = await registerNode(kv, { name: 'cn1', ipv4Address: '10.0.0.1/24', vxlanTunnelAddr: '10.244.1.0', vtepMac: '66:aa:bb:cc:dd:ee' });
  assert.is(same.action, 'unchanged');
  const moved = await registerNode(kv, { name: 'cn1', ipv4Address: '10.0.0.7/24', vxlanTunnelAddr: '10.244.1.0', vtepMac: '66:aa:bb:cc:dd:ee' });
  assert.is(moved.action, 'updated');
  assert.is((await kv.get(NODE_PREFIX + 'cn1'))!.value, node('10.0.0.7/24'));
  await updateNodeSpec(kv, 'cn1', (spec) => { spec.ipv4VXLANTunnelAddr = '10.244.1.0'; });
  assert.is((await kv.get(NODE_PREFIX + 'cn1'))!.value, node('10.0.0.7/24'));
  const ciKey = '/calico/resources/v3/projectcalico.org/clusterinformations/default';
  const ci = (types: string) => `{"kind":"ClusterInformation","apiVersion":"projectcalico.org/v3","metadata":{"name":"default","uid":"u1","creationTimestamp":"2026-12-01T10:00:00Z"},"spec":{"clusterGUID":"0123456789abcdef0123456789abcdef","clusterType":"${types}","calicoVersion":"v3.32.1","datastoreReady":true,"variant":"Calico"}}`;
  await kv.create(ciKey, ci('k8s,bgp'));
  assert.is((await markDatastoreReady(kv, { clusterType: 'k8s,bgp' })).action, 'unchanged');
  await markDatastoreReady(kv, { clusterType: 'k8s,podway' });
  assert.is((await kv.get(ciKey))!.value, ci('k8s,bgp,podway'));
});

test('an IPPool with an empty ipipMode or vxlanMode is read as Never, as libcalico-go reads it (convertIpPoolFromStorage), by IPAM and podway run\'s model', () => {
  const text = JSON.stringify({ kind: 'IPPool', apiVersion: 'projectcalico.org/v3', metadata: { name: 'e' }, spec: { cidr: '10.253.0.0/24', ipipMode: '', vxlanMode: '' } });
  assert.is(decodePool(text, 'k').cidr.text, '10.253.0.0/24');
  const v = validateResource(JSON.parse(text));
  assert.ok(v.ok, JSON.stringify(v));
  const spec = (v as { value: { spec: { ipipMode: string; vxlanMode: string } } }).value.spec;
  assert.equal([spec.ipipMode, spec.vxlanMode], ['Never', 'Never']);
});

test('a WorkloadEndpoint whose ipNetworks hold a bare address (libcalico-go\'s "net" validator takes one) is read as its /32 or /128', () => {
  const wep = (nets: string[]) => ({
    kind: 'WorkloadEndpoint', apiVersion: 'projectcalico.org/v3', metadata: { name: 'n1-cni-c1-eth0', namespace: 'default' },
    spec: { orchestrator: 'cni', workload: 'c1', node: 'n1', containerID: 'c1', endpoint: 'eth0', interfaceName: 'cali0123456789a', ipNetworks: nets },
  });
  const v = validateResource(wep(['10.250.1.5', 'fd00:250::5']));
  assert.ok(v.ok, JSON.stringify(v));
  assert.equal((v as { value: { spec: { ipNetworks: string[] } } }).value.spec.ipNetworks, ['10.250.1.5/32', 'fd00:250::5/128']);
  assert.is(validateResource(wep(['10.250.1.0/24'])).ok, false);
});

test('calicoctl get -o yaml output of a v3.31/v3.32 BGPConfiguration applies: its newer fields are Calico\'s', () => {
  const conf = {
    apiVersion: 'projectcalico.org/v3', kind: 'BGPConfiguration', metadata: { name: 'default' },
    spec: { serviceLoadBalancerAggregation: 'Disabled', ipv4NormalRoutePriority: 1024, ipv6NormalRoutePriority: 1024, nodeToNodeMeshEnabled: true },
  };
  assert.equal(unknownCalicoFields(conf), []);
  assert.equal(unknownCalicoFields({ ...conf, spec: { ipv4NormalRoutPriority: 1 } }).map((u) => u.message), ['unknown field (did you mean ipv4NormalRoutePriority?)']);
});

test.run();
