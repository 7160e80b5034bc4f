/**
 * Fragmented tunnel packets from a kernel node. A kernel vxlan device sends with DF unset, so an
 * underlay hop with a smaller MTU than the pods expect fragments its outer IPv4 packets. podway
 * takes unfragmented tunnel packets on its underlay port (nft-tunnels.ts); fragments must be left
 * to the kernel, which reassembles them and hands the whole datagram to podway's VXLAN socket.
 *
 * Here node2 is a kernel node (programmed as Felix does, src/lab/kernel.ts), node1 runs podway.
 * node2's route to node1 has MTU 1200 while the pods' MTU stays 1450, and node2's pod sends
 * without DF (net.ipv4.ip_no_pmtu_disc=1 in its namespace: TCP and ping alike), so its large
 * packets cross the underlay as outer fragments. Checked: a large ping and 2 MB of TCP (sha256)
 * arrive, the fragments were counted by podway's table and went through the socket path, podway
 * dropped no fragment and the kernel's reassembly failed none. Run twice: without conntrack in
 * node1's namespace and with it (netfilter's defragmentation at prerouting -400, which runs
 * before priority raw: the table's rules must see fragments before it reassembles them).
 * Root and network namespaces; every lab is removed in `finally`.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { execFileSync } from 'node:child_process';
import { Lab, LabNodeSpec } from '../../src/lab/lab';
import { configureKernelNode } from '../../src/lab/kernel';
import { controlRequest } from '../../src/dataplane/control-server';
import { guard, teardown, isRoot, logTail, tcpTransfer } from './e2e-kit';

const SPEC: LabNodeSpec[] = [
  { name: 'node1', subnet: 'a', pods: [{ name: 'web-1', type: 'veth' }] },
  { name: 'node2', subnet: 'a', pods: [{ name: 'web-2', type: 'veth' }] },
];
const MB2 = 2 << 20;

interface PortRow { port: string; rx: number; drops: number }
interface Counters { reasons: Record<string, number>; ports: PortRow[] }

function nsExec(ns: string, args: string[]): string {
  return execFileSync('ip', ['netns', 'exec', ns, ...args], { encoding: 'utf8', timeout: 10_000 });
}

/** An /proc/net/snmp IPv4 field in a namespace. */
function snmpIp(ns: string, field: string): number {
  const rows = nsExec(ns, ['cat', '/proc/net/snmp']).split('\n').filter((l) => l.startsWith('Ip:'));
  return Number(rows[1].split(/\s+/)[rows[0].split(/\s+/).indexOf(field)]);
}

function tableCounter(ns: string, name: string): number {
  const out = nsExec(ns, ['nft', '-j', 'list', 'counters', 'table', 'inet', 'podway_tunnels']);
  return (JSON.parse(out) as { nftables: { counter?: { name: string; packets: number } }[] }).nftables.find((x) => x.counter?.name === name)?.counter?.packets ?? 0;
}

let portSeq = 5420;
for (const conntrack of [false, true]) {
  test(`kernel node's VXLAN fragmented on the underlay (route MTU 1200, DF unset)${conntrack ? ', conntrack (defrag) loaded on the podway node' : ''}: large ping and 2 MB TCP arrive, fragments through the socket`, async () => {
    if (!isRoot()) throw new Error('fragment e2e tests need root (network namespaces)');
    const lab = guard(new Lab(SPEC, { podOffloads: false }));
    lab.mode = 'vxlan';
    try {
      lab.build();
      const n1 = lab.node('node1');
      const n2 = lab.node('node2');
      configureKernelNode(lab, n2, 'vxlan');
      // node2 -> node1 over a narrower path; the vxlan device and the pods keep MTU 1450
      nsExec(n2.ns, ['ip', 'route', 'add', `${n1.ip}/32`, 'dev', 'eth0', 'mtu', '1200']);
      nsExec(lab.pod('web-2').ns, ['sysctl', '-qw', 'net.ipv4.ip_no_pmtu_disc=1']);
      // any conntrack rule registers netfilter's defragmentation in node1's namespace
      if (conntrack) nsExec(n1.ns, ['nft', 'add table ip fragtest; add chain ip fragtest c { type filter hook prerouting priority 0; policy accept; }; add rule ip fragtest c ct state new counter']);
      await lab.startPodway('node1');
      const reasmFails = snmpIp(n1.ns, 'ReasmFails');
      const reasmOks = snmpIp(n1.ns, 'ReasmOKs');

      // 1372 bytes of ICMP payload: a 1400-byte inner packet, a 1450-byte VXLAN datagram > 1200
      const ping = lab.ping('web-2', lab.pod('web-1').ip, 5, 1372, ['-M', 'dont', '-W', '3']);
      assert.is(ping.loss, 0, `large ping web-2 -> web-1: ${JSON.stringify(ping)}`);
      const t = await tcpTransfer(lab, 'web-2', 'web-1', MB2, (portSeq += 1));
      assert.is(t.received.bytes, MB2, 'TCP web-2 -> web-1: received');
      assert.is(t.received.sha256, t.sent.sha256, 'TCP web-2 -> web-1: sha256');
      // and the other way (podway sends whole datagrams; node2's ACKs and replies are small or fragmented)
      const back = await tcpTransfer(lab, 'web-1', 'web-2', MB2, (portSeq += 1));
      assert.is(back.received.sha256, back.sent.sha256, 'TCP web-1 -> web-2: sha256');

      const c = (await controlRequest(n1.control, { cmd: 'counters' }, 5000)) as Counters;
      const sock = c.ports.find((p) => p.port.startsWith('vxlan('));
      const ul = c.ports.find((p) => p.port.startsWith('underlay('));
      const fragments = tableCounter(n1.ns, 'fragments');
      const reassembled = snmpIp(n1.ns, 'ReasmOKs') - reasmOks;
      console.log(`  node1: table fragments ${fragments}, vxlan ${tableCounter(n1.ns, 'vxlan')}; vxlan socket rx ${sock?.rx}; underlay rx ${ul?.rx}; kernel reassembled ${reassembled}; drop reasons ${JSON.stringify(c.reasons)}`);
      // ~1,500 large TCP segments plus 5 pings, each in two fragments
      assert.ok(fragments > 1000, `podway's table saw ${fragments} fragments: the path did not fragment`);
      assert.ok(reassembled > 500, `node1's kernel reassembled ${reassembled} datagrams`);
      assert.ok(sock && sock.rx >= reassembled, `the VXLAN socket read ${sock?.rx} datagrams of ${reassembled} reassembled`);
      assert.ok(ul && ul.rx > 20, `unfragmented tunnel packets (ACKs, delayed and GRO-merged) still on the underlay port: rx ${ul?.rx}`);
      assert.is(c.reasons.fragment ?? 0, 0, 'podway dropped fragments');
      assert.is(snmpIp(n1.ns, 'ReasmFails') - reasmFails, 0, "node1's kernel failed to reassemble datagrams");
    } catch (e) {
      console.log(logTail(lab, 20));
      throw e;
    } finally {
      await teardown(lab);
    }
  });
}

test.run();
