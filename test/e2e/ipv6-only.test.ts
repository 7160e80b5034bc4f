/**
 * Two IPv6-only nodes (root, network namespaces): the nodes' underlay has no IPv4 address at all and
 * `podway run --ip none` (Calico's IP=none) on the embedded store. Each registers a Node with
 * spec.bgp.ipv6Address only (first-found IPv6) and an IPv6 VXLAN tunnel address from IPAM, no IPv4
 * one although the IPv4 pool is VXLAN too; the dataplane finds its underlay by the IPv6 address
 * and forwards with no IPv4 address (no ARP, NDP only). IPv6 pods ping and talk TCP across over
 * VXLAN-over-IPv6, then, with the pools switched to no encapsulation, unencapsulated; the IPv4
 * pool is listed withheld with the reason and `podway status` says the node is IPv6 only
 * (`routes`, `endpoints`, `counters` answer too); with natOutgoing on the IPv6 pool a pod reaches
 * a host outside every pool from its node's IPv6 address. Restarted with `--bgp --router-id hash`
 * the two mesh over IPv6 and route each other's IPv6 block from BGP alone (unencapsulated pool):
 * each accepted it from its peer, and drops it when the mesh is turned off.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { Lab, LabKvStore, LabNodeSpec } from '../../src/lab/lab';
import { controlRequest } from '../../src/dataplane/control-client';
import { guard, teardown, isRoot, until, logTail, routes, tcpTransferTo } from './e2e-kit';
import { MESH_OFF_YAML } from './bgp-kit';

const SPEC: LabNodeSpec[] = [
  { name: 'node1', subnet: 'a', pods: [{ name: 'web-1', type: 'veth' }] },
  { name: 'node2', subnet: 'a', pods: [{ name: 'web-2', type: 'veth' }] },
];

const BIN = path.resolve(__dirname, '..', '..', '..', 'bin', 'podway.js');
const cli = (args: string[]) => execFileSync(process.execPath, [BIN, ...args], { encoding: 'utf8', timeout: 20_000 });

interface StoredNode { spec: { bgp: { ipv4Address?: string; ipv6Address?: string }; ipv4VXLANTunnelAddr?: string; ipv6VXLANTunnelAddr?: string } }
interface Status { nodeIp: string | null; ipv6: { nodeIp: string | null }; withheld: { cidr: string; reason: string }[] }

async function crossTraffic(lab: Lab, kind: 'vxlan' | 'direct', port: number): Promise<void> {
  for (const [from, to] of [['node1', 'node2'], ['node2', 'node1']]) {
    const block6 = lab.node(to).block6!;
    assert.ok(await until(async () => (await routes(lab.node(from))).some((r) => r.cidr === block6 && r.kind === kind), 20_000), `${from} routes ${block6} (${kind})`);
  }
  for (const [a, b] of [['web-1', 'web-2'], ['web-2', 'web-1']]) {
    const to = lab.pod(b).ip6!;
    assert.ok(await until(() => lab.ping(a, to, 1).received === 1, 15_000, 100), `${a} -> ${b} (${to}) reachable (${kind})`);
    const p = lab.ping(a, to, 4);
    assert.is(p.loss, 0, `${a} -> ${b} (${kind}): ${JSON.stringify(p)}`);
    assert.is(p.ttl, 62, `${a} -> ${b}: hop limit 64 - 2`);
  }
  const dst = lab.pod('web-2');
  const t = await tcpTransferTo(lab, 'web-1', { name: 'web-2', ns: dst.ns, ip: dst.ip6! }, 1 << 20, port);
  assert.is(t.received.bytes, 1 << 20, `TCP over ${kind}`);
  assert.is(t.received.sha256, t.sent.sha256);
}

test('two IPv6-only nodes (--ip none): Nodes without IPv4, IPv6 pods ping and TCP over VXLAN-over-IPv6, then unencapsulated, then with BGP; the IPv4 pool withheld', async () => {
  if (!isRoot()) throw new Error('this test needs root (network namespaces)');
  const lab = guard(new Lab(SPEC, { ipv6Only: true, podOffloads: false }));
  let opened: LabKvStore | null = null;
  try {
    lab.build();
    opened = await lab.openKvStore('embedded', 'podway-v6only-');
    const kv = opened.kv;
    await lab.useKvDatastore(kv, opened.spec);
    for (const n of lab.nodes) await lab.startPodway(n.name, 20_000, ['--ip', 'none']);

    for (const n of lab.nodes) {
      const node = JSON.parse((await kv.get(`/calico/resources/v3/projectcalico.org/nodes/${n.name}`))!.value) as StoredNode;
      assert.is(node.spec.bgp.ipv4Address, undefined, `${n.name}: no IPv4 address registered`);
      assert.is(node.spec.bgp.ipv6Address, `${n.ip6}/64`, `${n.name}: first-found IPv6`);
      assert.is(node.spec.ipv4VXLANTunnelAddr, undefined, `${n.name}: no IPv4 VTEP (the IPv4 VXLAN pool is not for it)`);
      assert.is(node.spec.ipv6VXLANTunnelAddr, n.block6!.split('/')[0], `${n.name}: IPv6 VTEP from IPAM`);
      const st = (await controlRequest(n.control, { cmd: 'status' }, 5000)) as Status;
      assert.is(st.nodeIp, null);
      assert.is(st.ipv6.nodeIp, n.ip6);
      const w = st.withheld.find((x) => x.cidr === '10.244.0.0/16');
      assert.match(w?.reason ?? JSON.stringify(st.withheld), 'this node has no IPv4 address');
      assert.ok(n.log.some((l) => /forwarding: node fd99::\S+ \(IPv6 only\)/.test(l)), n.log.join(' | '));
      // Ready: it never was (readiness wanted the IPv4 VXLAN and IPIP sockets such a node does not open).
      const ready = async () => (await controlRequest(n.control, { cmd: 'status' }, 5000)) as { ready?: boolean; notReady?: string[] };
      assert.ok(await until(async () => (await ready()).ready === true, 30_000), `${n.name} ready: ${JSON.stringify((await ready()).notReady)}`);
    }
    await crossTraffic(lab, 'vxlan', 5311);
    // The operator's commands on an IPv6-only node: no IPv4 address to show, no crash.
    const ctl = lab.node('node1').control;
    assert.match(cli(['status', '--control', ctl]), /podway is running on node node1 \(fd99::1, IPv6 only\)/);
    assert.match(cli(['status', '--control', ctl]), /withheld: 10\.244\.0\.0\/16 via node1: this node has no IPv4 address/);
    assert.match(cli(['routes', '--control', ctl]), /fd00:10:244::40\/122\s+vxlan\s+node2/);
    assert.match(cli(['endpoints', '--control', ctl]), new RegExp(lab.pod('web-1').ip6!.replace(/[.:]/g, '\\$&')));
    cli(['counters', '--control', ctl]);

    // Both pools to no encapsulation: the IPv6 blocks are routed straight to the other node.
    await lab.applyMode('direct');
    await crossTraffic(lab, 'direct', 5312);

    // natOutgoing on the IPv6 pool: a pod reaches a host outside every pool from the node's IPv6 address.
    const o = lab.addOutside();
    lab.natOutgoing6 = true;
    await lab.applyMode('direct');
    const n1 = lab.node('node1');
    assert.ok(await until(() => cli(['status', '--control', n1.control]).includes('nat6: table ip6 podway; natOutgoing from'), 20_000), 'node1 masquerades its IPv6 pool');
    const out = await tcpTransferTo(lab, 'web-1', { name: 'outside', ns: o.ns, ip: o.ip6! }, 256 << 10, 5313);
    assert.is(out.received.sha256, out.sent.sha256);
    assert.ok(out.received.peer.startsWith(`${n1.ip6}:`) || out.received.peer.startsWith(`[${n1.ip6}]:`), `the outside saw ${out.received.peer}, not node1's ${n1.ip6}`);

    // Calico's BGP networking (--bgp) on IPv6-only nodes: the router ID from the node name
    // (CALICO_ROUTER_ID=hash; no IPv4 address to take it from), an IPv6 mesh session, and the
    // other node's IPv6 block (unencapsulated pool) routed from what was learned.
    for (const n of lab.nodes) assert.is(await lab.stopPodway(n.name), 0);
    for (const n of lab.nodes) await lab.startPodway(n.name, 20_000, ['--ip', 'none', '--bgp', '--router-id', 'hash']);
    for (const n of lab.nodes) {
      const other = lab.nodes.find((x) => x !== n)!;
      const established = () => {
        const peers = (JSON.parse(cli(['node', 'status', '--control', n.control, '-o', 'json'])) as { peers: { address: string; bgpState: string }[] }).peers;
        return peers.some((p) => p.address === other.ip6 && p.bgpState === 'Established');
      };
      assert.ok(await until(established, 30_000, 200), `${n.name}: IPv6 session with ${other.ip6} Established`);
    }
    await crossTraffic(lab, 'direct', 5314);
    // Where those direct routes came from: in BGP mode an unencapsulated pool's routes are the
    // learned ones only (route-calc6's fromDatastore), so each node must have accepted the other's
    // IPv6 block from its peer: the route above is then BGP's, not the datastore's.
    for (const n of lab.nodes) {
      const other = lab.nodes.find((x) => x !== n)!;
      const st = JSON.parse(cli(['node', 'status', '--control', n.control, '-o', 'json'])) as { learned: number; peers: { address: string; prefixesAccepted: number }[] };
      const peer = st.peers.find((p) => p.address === other.ip6);
      assert.ok(peer !== undefined && peer.prefixesAccepted >= 1, `${n.name}: prefixes accepted from ${other.ip6}: ${JSON.stringify(st.peers)}`);
      assert.ok(st.learned >= 1, `${n.name}: learned routes ${st.learned}`);
    }
    // And from BGP alone: the mesh turned off (sessions closed, the blocks' affinities still in the
    // datastore), each node drops the other's IPv6 block.
    const meshOff = path.join(lab.dir, 'mesh-off.yaml');
    writeFileSync(meshOff, MESH_OFF_YAML);
    cli(['apply', '-f', meshOff, '--datastore', opened!.spec]);
    for (const n of lab.nodes) {
      const block6 = lab.nodes.find((x) => x !== n)!.block6!;
      assert.ok(await until(async () => !(await routes(n)).some((r) => r.cidr === block6), 30_000), `${n.name}: ${block6} gone with the mesh off`);
    }
  } catch (e) {
    console.log(logTail(lab, 25));
    throw e;
  } finally {
    await teardown(lab);
    await opened?.close();
  }
});

test.run();
