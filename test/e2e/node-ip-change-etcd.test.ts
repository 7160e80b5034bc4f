/**
 * The node address monitor on a real etcd, dual stack (root, network namespaces). Two podways on
 * `etcd:` (etcd started by the lab in the fabric namespace), both registering the addresses found
 * on their underlay; node1 follows first-found (--ip autodetect --ip6 autodetect, Calico's
 * IP=autodetect / IP6=autodetect), re-detected every 300 ms. node1 is renumbered, IPv4 first (new
 * address added, then the old one removed), then IPv6 (old one removed, then the new one added):
 * - its Node in etcd, in Calico's layout (/calico/resources/v3/projectcalico.org/nodes/node1, one
 *   projectcalico.org/v3 Node as JSON), gets the new spec.bgp.ipv4Address / ipv6Address, and
 *   nothing else of it changes (uid, creation time, tunnel addresses and MACs, the other family's
 *   address); IPAM stays consistent;
 * - node2 (a separate podway, reading etcd only) routes node1's IPv4 / IPv6 block to the new
 *   address and its natOutgoing `nodes` set names the new IPv4 address;
 * - node1 itself follows through new etcd connections: the ones made from the old address are
 *   dead without a word (only a keepalive timeout, 10-15 s, would say so), and its watch with
 *   them; podway must not wait for that;
 * - pods on both nodes talk again (IPv4 over VXLAN to the new IPv4 underlay address, IPv6 over
 *   VXLAN to the new IPv6 underlay address), with no podway restart.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Lab, LabKvStore, LabNode, LabNodeSpec } from '../../src/lab/lab';
import { Ipam } from '../../src/control/ipam';
import { applyResource } from '../../src/control/v3-store';
import { controlRequest } from '../../src/dataplane/control-server';
import { guard, teardown, isRoot, routes, logTail, until, waitLog, RouteRow, nsExec } from './e2e-kit';

const SPEC: LabNodeSpec[] = [
  { name: 'node1', subnet: 'a', pods: [{ name: 'web-1', type: 'veth' }] },
  { name: 'node2', subnet: 'a', pods: [{ name: 'web-2', type: 'veth' }] },
];
const NEW_IP = '10.99.0.31';
const NEW_IP6 = 'fd99::a31';
const NODE1_KEY = '/calico/resources/v3/projectcalico.org/nodes/node1';

let lab: Lab | null = null;
let store: LabKvStore | null = null;
let ok = false;

interface StoredNode {
  apiVersion: string;
  kind: string;
  metadata: { name: string; uid?: string; creationTimestamp?: string; resourceVersion?: string };
  spec: { bgp: { ipv4Address: string; ipv6Address?: string }; [k: string]: unknown };
}

/** node1's Node as etcd holds it (read through this process's own etcd client). */
async function node1(): Promise<StoredNode> {
  const e = await store!.kv.get(NODE1_KEY);
  assert.ok(e, 'node1 has a Node in etcd');
  return JSON.parse(e!.value) as StoredNode;
}

/** node2's route to node1's IPv4 (or IPv6) block. */
async function node2ToNode1(v6 = false): Promise<RouteRow | undefined> {
  const n1 = lab!.node('node1');
  return (await routes(lab!.node('node2'))).find((r) => r.cidr === (v6 ? n1.block6 : n1.block));
}

/**
 * node1 said it made new etcd connections (`reconnect`), and followed the change (`followed`, a
 * line logged once its model had the new Node) with no "datastore unreachable" before: its model
 * came through the new connections, not after the dead one timed out.
 */
async function followedWithoutTimeout(n: LabNode, mark: number, reconnect: RegExp, followed: RegExp): Promise<void> {
  assert.ok(await waitLog(n, reconnect, mark, 15_000), `${n.name} makes new datastore connections: ${n.log.slice(mark).join(' | ')}`);
  assert.ok(await waitLog(n, followed, mark, 15_000), `${n.name} followed: ${n.log.slice(mark).join(' | ')}`);
  const lines = n.log.slice(mark);
  const at = lines.findIndex((l) => followed.test(l));
  assert.not.ok(lines.slice(0, at).some((l) => /datastore unreachable/.test(l)), `no dead connection waited for: ${lines.slice(0, at + 1).join(' | ')}`);
}

const ping4 = (from: string, to: string) => lab!.ping(from, lab!.pod(to).ip, 1, 56, ['-W', '1']).received === 1;
const ping6 = (from: string, to: string) => lab!.ping(from, lab!.pod(to).ip6!, 1, 56, ['-W', '1']).received === 1;
const both4 = () => ping4('web-1', 'web-2') && ping4('web-2', 'web-1');
const both6 = () => ping6('web-1', 'web-2') && ping6('web-2', 'web-1');

/** Both families both ways, 3 echo requests each, none lost, two forwarding hops (TTL 62). */
function podsTalk(what: string): void {
  for (const [a, b] of [['web-1', 'web-2'], ['web-2', 'web-1']]) {
    for (const to of [lab!.pod(b).ip, lab!.pod(b).ip6!]) {
      const p = lab!.ping(a, to, 3, 56, ['-W', '2']);
      assert.is(p.loss, 0, `${what}: ${a} -> ${b} (${to}): ${JSON.stringify(p)}`);
      assert.is(p.ttl, 62, `${what}: ${a} -> ${to} crosses two podway nodes`);
    }
  }
}

test.before(async () => {
  if (!isRoot()) throw new Error('e2e tests need root (network namespaces)');
  lab = guard(new Lab(SPEC, { dualStack: true, podOffloads: false }));
  lab.build();
  lab.setMode('vxlan');
  store = await lab.openKvStore('etcd', 'podway-ipchange-etcd-');
  await lab.useKvDatastore(store.kv, store.spec);
  await lab.startPodway('node1', 20_000, ['--autodetect-poll-interval', '300ms', '--ip', 'autodetect', '--ip6', 'autodetect']);
  await lab.startPodway('node2', 20_000, ['--autodetect-poll-interval', '300ms']);
});

test.after(async () => {
  if (!lab) return;
  if (!ok) console.log(logTail(lab, 30));
  await teardown(lab); // etcd too (killed by PID, its data removed)
  await store?.close();
});

let before: StoredNode;

test('at start: node1 registered in etcd with the addresses found; node2 routes to them; pods talk (IPv4 and IPv6)', async () => {
  const n1 = lab!.node('node1');
  before = await node1();
  assert.is(before.apiVersion, 'projectcalico.org/v3');
  assert.is(before.kind, 'Node');
  assert.is(before.metadata.name, 'node1');
  assert.ok(before.metadata.uid, 'a uid');
  assert.is(before.spec.bgp.ipv4Address, `${n1.ip}/24`);
  assert.is(before.spec.bgp.ipv6Address, `${n1.ip6}/64`);
  assert.ok(before.spec.ipv4VXLANTunnelAddr && before.spec.ipv6VXLANTunnelAddr, `tunnel addresses: ${JSON.stringify(before.spec)}`);
  assert.ok(await until(async () => (await node2ToNode1())?.via === n1.ip && (await node2ToNode1(true))?.via === n1.ip6, 15_000, 100),
    `node2 routes node1's blocks to ${n1.ip} and ${n1.ip6}: ${JSON.stringify(await routes(lab!.node('node2')))}`);
  assert.ok(await until(() => both4() && both6(), 15_000, 100), 'pods talk before the change');
  podsTalk('before');
});

test('node1\'s IPv4 address renumbered: the Node in etcd gets it (nothing else changes), node2 follows, pods talk again', async () => {
  const [n1, n2] = [lab!.node('node1'), lab!.node('node2')];
  const old = n1.ip;
  const mark = n1.log.length;
  // Make-before-break, as systemd-networkd renews a changed lease: the new address is added, then
  // the old one removed and the new one promoted in its place (the default route stays). The node
  // always has a route to etcd; only the connections made from the old address die.
  nsExec(n1.ns, ['sysctl', '-qw', 'net.ipv4.conf.eth0.promote_secondaries=1']);
  const t0 = Date.now();
  nsExec(n1.ns, ['ip', 'addr', 'add', `${NEW_IP}/24`, 'dev', 'eth0']);
  nsExec(n1.ns, ['ip', 'addr', 'del', `${old}/24`, 'dev', 'eth0']);
  assert.match(nsExec(n1.ns, ['ip', 'route', 'show', 'default']), /via 10\.99\.0\.254/, 'the default route stays');
  n1.ip = NEW_IP;

  assert.ok(await until(async () => (await node1()).spec.bgp.ipv4Address === `${NEW_IP}/24`, 10_000, 100), `the Node in etcd has the new address: ${JSON.stringify((await node1()).spec)}`);
  const after = await node1();
  // Only the address changed: the same Node (uid, creation), the same tunnel addresses and MACs,
  // the IPv6 address untouched.
  assert.equal({ ...after, metadata: { ...after.metadata, resourceVersion: undefined }, spec: { ...after.spec, bgp: { ...after.spec.bgp, ipv4Address: undefined } } },
    { ...before, metadata: { ...before.metadata, resourceVersion: undefined }, spec: { ...before.spec, bgp: { ...before.spec.bgp, ipv4Address: undefined } } },
    'the rest of the Node is unchanged');
  assert.ok(await waitLog(n1, new RegExp(`node address autodetected again \\(first-found\\): ${old.replace(/\./g, '\\.')}/24 -> ${NEW_IP.replace(/\./g, '\\.')}/24; Node updated`), mark, 15_000), `node1 says it updated its Node: ${n1.log.slice(mark).join(' | ')}`);
  assert.equal((await new Ipam(store!.kv).check()).map((p) => p.message), [], 'IPAM consistent');

  // node2 reads the change from etcd: route, natOutgoing's set of node addresses.
  assert.ok(await until(async () => (await node2ToNode1())?.via === NEW_IP, 10_000, 100), `node2 routes node1's block to ${NEW_IP}: ${JSON.stringify(await node2ToNode1())}`);
  assert.is((await node2ToNode1())?.kind, 'vxlan');
  assert.is((await node2ToNode1(true))?.via, n1.ip6, 'the IPv6 route stays on the IPv6 address');
  assert.ok(await until(() => nsExec(n2.ns, ['nft', 'list', 'set', 'ip', 'podway', 'nodes']).includes(NEW_IP), 10_000, 100), 'node2\'s nodes set has the new address');
  assert.not.match(nsExec(n2.ns, ['nft', 'list', 'set', 'ip', 'podway', 'nodes']), new RegExp(`${old.replace(/\./g, '\\.')}[,\\s}]`), 'and not the old one');
  assert.ok(await until(async () => ((await controlRequest(n1.control, { cmd: 'status' }, 5000)) as { nodeIp: string }).nodeIp === NEW_IP, 10_000, 100), 'node1\'s dataplane uses the new address');
  // node1's own watch: its etcd connection came from the old address, dead without a word (until
  // a keepalive times out, 10-15 s): podway makes new ones, so node1 sees its Node change at once.
  await followedWithoutTimeout(n1, mark, new RegExp(`new connections \\(node address ${old.replace(/\./g, '\\.')} left the node\\)`), /node address 10\.99\.0\.1 -> 10\.99\.0\.31: tunnel sockets/);

  assert.ok(await until(both4, 10_000, 100), 'IPv4 pods talk again');
  // For the log (not asserted: timings live in bench/).
  console.log(`  IPv4 address changed -> pods talk both ways ${Date.now() - t0} ms (poll 300 ms)`);
  podsTalk('after the IPv4 change');
});

test('node1\'s IPv6 address renumbered: the Node in etcd gets it, node2 routes node1\'s IPv6 block to it, IPv6 pods talk again over the new IPv6 underlay', async () => {
  const [n1, n2] = [lab!.node('node1'), lab!.node('node2')];
  const old6 = n1.ip6!;
  const was = await node1();
  const mark = n1.log.length;
  const t0 = Date.now();
  nsExec(n1.ns, ['ip', '-6', 'addr', 'del', `${old6}/64`, 'dev', 'eth0']);
  nsExec(n1.ns, ['ip', '-6', 'addr', 'add', `${NEW_IP6}/64`, 'dev', 'eth0', 'nodad']);
  n1.ip6 = NEW_IP6;

  assert.ok(await until(async () => (await node1()).spec.bgp.ipv6Address === `${NEW_IP6}/64`, 10_000, 100), `the Node in etcd has the new IPv6 address: ${JSON.stringify((await node1()).spec)}`);
  const after = await node1();
  assert.equal({ ...after, metadata: { ...after.metadata, resourceVersion: undefined }, spec: { ...after.spec, bgp: { ...after.spec.bgp, ipv6Address: undefined } } },
    { ...was, metadata: { ...was.metadata, resourceVersion: undefined }, spec: { ...was.spec, bgp: { ...was.spec.bgp, ipv6Address: undefined } } },
    'the rest of the Node is unchanged (the new IPv4 address stays)');
  assert.ok(await waitLog(n1, /node address autodetected again \(first-found\): fd99::1\/64 -> fd99::a31\/64; Node updated/, mark, 15_000), `node1 says it updated its Node: ${n1.log.slice(mark).join(' | ')}`);
  assert.equal((await new Ipam(store!.kv).check()).map((p) => p.message), [], 'IPAM consistent');

  assert.ok(await until(async () => (await node2ToNode1(true))?.via === NEW_IP6, 10_000, 100), `node2 routes node1's IPv6 block to ${NEW_IP6}: ${JSON.stringify(await node2ToNode1(true))}`);
  assert.is((await node2ToNode1(true))?.kind, 'vxlan');
  assert.is((await node2ToNode1())?.via, NEW_IP, 'the IPv4 route stays on the new IPv4 address');
  // node1 takes IPv6 VXLAN to its new address from the underlay port (its tunnel table names it)
  const tunnels = () => nsExec(n1.ns, ['nft', 'list', 'table', 'inet', 'podway_tunnels']);
  assert.ok(await until(() => /ip6 daddr fd99::a31 .*udp dport 4789 counter name "vxlan6" drop/.test(tunnels()), 10_000, 100), `node1's tunnel table names ${NEW_IP6}:\n${tunnels()}`);
  await followedWithoutTimeout(n1, mark, /new connections \(node address fd99::1 left the node\)/, /node IPv6 address fd99::1 -> fd99::a31: nftables table inet podway_tunnels follows it/);
  assert.not.match(tunnels(), /ip6 daddr fd99::1 /, 'and not the old IPv6 address');

  assert.ok(await until(both6, 15_000, 100), `IPv6 pods talk again: ${n2.log.slice(-5).join(' | ')}`);
  console.log(`  IPv6 address changed -> pods talk both ways ${Date.now() - t0} ms (poll 300 ms)`);
  podsTalk('after the IPv6 change');
  for (const n of [n1, n2]) assert.is(n.proc?.exitCode, null, `${n.name}'s podway ran all along`);
});

test('node1\'s IPv4 address gone for a few seconds, then back: new etcd connections when it leaves and again when it appears; node1 sees later etcd changes', async () => {
  const [n1, n2] = [lab!.node('node1'), lab!.node('node2')];
  const ip = n1.ip;
  const esc = ip.replace(/\./g, '\\.');
  const mark = n1.log.length;
  // Break before make: no IPv4 address (and no route to etcd) for a while. The connections made
  // when it left find no way out and sit in gRPC's reconnect backoff; the address coming back
  // must make new ones at once.
  nsExec(n1.ns, ['ip', 'addr', 'del', `${ip}/24`, 'dev', 'eth0']);
  assert.ok(await waitLog(n1, new RegExp(`new connections \\(node address ${esc} left the node\\)`), mark, 15_000), `left: ${n1.log.slice(mark).join(' | ')}`);
  await new Promise((r) => setTimeout(r, 3000));
  nsExec(n1.ns, ['ip', 'addr', 'add', `${ip}/24`, 'dev', 'eth0']);
  nsExec(n1.ns, ['ip', 'route', 'replace', 'default', 'via', '10.99.0.254']);
  assert.ok(await waitLog(n1, new RegExp(`new connections \\(node address ${esc} appeared\\)`), mark, 15_000), `appeared: ${n1.log.slice(mark).join(' | ')}`);
  // A change written to etcd now reaches node1's model: a new pool is routed into its host port.
  const cidr = '10.251.0.0/16';
  await applyResource(store!.kv, { apiVersion: 'projectcalico.org/v3', kind: 'IPPool', metadata: { name: 'later-pool' }, spec: { cidr, vxlanMode: 'Always', ipipMode: 'Never', natOutgoing: false } });
  const poolRoute = () => nsExec(n1.ns, ['ip', 'route', 'show', cidr]).trim();
  assert.ok(await until(() => poolRoute() !== '', 20_000, 100), `node1 routes the new pool: ${n1.log.slice(mark).join(' | ')}`);
  assert.ok(await until(async () => ((await controlRequest(n1.control, { cmd: 'status' }, 5000)) as { nodeIp: string }).nodeIp === ip, 10_000, 100), 'node1 keeps its address');
  assert.ok(await until(both4, 15_000, 100), 'IPv4 pods talk again');
  for (const n of [n1, n2]) assert.is(n.proc?.exitCode, null, `${n.name}'s podway ran all along`);
  ok = true;
});

test.run();
