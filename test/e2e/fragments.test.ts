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
 *
 * VXLAN over IPv6: IPv6 routers never fragment and Linux's vxlan device does not fragment its own
 * IPv6 datagrams either (over a smaller route MTU it drops them and lowers the inner path MTU), so
 * the kernel node sends VXLAN over IPv6 from a UDP socket allowed to fragment (as a VTEP that does,
 * e.g. a userspace one, would), through a 1280-byte route: 200 datagrams of 1418 bytes, each an
 * inner UDP datagram from web-2's address to web-1, which checks it and echoes it back (podway ->
 * node2's vxlan-v6.calico -> web-2, which checks it too). Checked: the table counted the fragments
 * and left them to the kernel, podway's IPv6 VXLAN socket read the reassembled datagrams, every
 * payload arrived intact both ways. Again without and with conntrack (IPv6 defragmentation).
 * Root and network namespaces; every lab is removed in `finally`.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Lab, LabNode, LabNodeSpec } from '../../src/lab/lab';
import { configureKernelNode } from '../../src/lab/kernel';
import { controlRequest } from '../../src/dataplane/control-server';
import { guard, teardown, isRoot, logTail, tcpTransfer, spawnCollected, sleep, until, routes, nsExec } from './e2e-kit';
import { deriveVtepMac } from '../../src/control';

const SPEC: LabNodeSpec[] = [
  { name: 'node1', subnet: 'a', pods: [{ name: 'web-1', type: 'veth' }] },
  { name: 'node2', subnet: 'a', pods: [{ name: 'web-2', type: 'veth' }] },
];
const MB2 = 2 << 20;

interface PortRow { port: string; rx: number; drops: number }
interface Counters { reasons: Record<string, number>; ports: PortRow[] }

/** An /proc/net/snmp6 field in a namespace. */
function snmp6(ns: string, field: string): number {
  const row = nsExec(ns, ['cat', '/proc/net/snmp6']).split('\n').find((l) => l.startsWith(field + ' ') || l.startsWith(field + '\t'));
  return Number(row?.split(/\s+/)[1] ?? NaN);
}

/**
 * The VXLAN-over-IPv6 sender on the kernel node (see the IPv6 test): `count` VXLAN datagrams from a
 * UDP socket on node2's address to node1's port 4789, each carrying an inner IPv6/UDP datagram
 * (web-2 -> web-1, `size` bytes of payload numbered by `k`, checksums filled); the socket may
 * fragment (IPV6_MTU_DISCOVER = IPV6_PMTUDISC_DONT), so with a route MTU of 1280 each leaves as
 * outer fragments. The UDP echo in web-1 and the receiver in web-2 are the same script.
 */
const VXLAN6_TOOL = `
import socket, struct, sys, hashlib, json
mode = sys.argv[1]
def payload(k, size):
    out = b''
    seed = hashlib.sha256(b'podway-frag6-%d' % k).digest()
    while len(out) < size:
        out += seed
        seed = hashlib.sha256(seed).digest()
    return out[:size]
def csum(b):
    if len(b) % 2: b += b'\\0'
    s = sum(struct.unpack('!%dH' % (len(b) // 2), b))
    while s >> 16: s = (s & 0xffff) + (s >> 16)
    return (~s) & 0xffff
if mode == 'send':
    node1, node2, src, dst, dmac, smac, sport, dport, size, first, count = sys.argv[2:13]
    sport, dport, size, first, count = int(sport), int(dport), int(size), int(first), int(count)
    s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    s.setsockopt(socket.IPPROTO_IPV6, 23, 0)  # IPV6_MTU_DISCOVER = IPV6_PMTUDISC_DONT: fragment
    s.bind((node2, 0))
    sa, da = socket.inet_pton(socket.AF_INET6, src), socket.inet_pton(socket.AF_INET6, dst)
    for k in range(first, first + count):
        data = struct.pack('!I', k) + payload(k, size - 4)
        ulen = 8 + len(data)
        c = csum(sa + da + struct.pack('!IxxxB', ulen, 17) + struct.pack('!HHHH', sport, dport, ulen, 0) + data) or 0xffff
        inner = struct.pack('!IHBB', 6 << 28, ulen, 17, 64) + sa + da + struct.pack('!HHHH', sport, dport, ulen, c) + data
        eth = bytes.fromhex(dmac.replace(':', '')) + bytes.fromhex(smac.replace(':', '')) + b'\\x86\\xdd'
        s.sendto(struct.pack('!II', 0x08000000, 4096 << 8) + eth + inner, (node1, 4789))
    print(json.dumps({'sent': count}))
else:
    addr, port, count, wait = sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5])
    s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    s.bind((addr, port))
    s.settimeout(wait)
    got, ok = set(), 0
    print('ready', flush=True)
    try:
        while len(got) < count:
            data, peer = s.recvfrom(65535)
            k = struct.unpack('!I', data[:4])[0]
            if data[4:] == payload(k, len(data))[:len(data) - 4]: ok += 1
            got.add(k)
            if mode == 'echo': s.sendto(data, peer)
    except socket.timeout:
        pass
    print(json.dumps({'received': len(got), 'intact': ok}))
`;

/** An /proc/net/snmp IPv4 field in a namespace. */
function snmpIp(ns: string, field: string): number {
  const rows = nsExec(ns, ['cat', '/proc/net/snmp']).split('\n').filter((l) => l.startsWith('Ip:'));
  return Number(rows[1].split(/\s+/)[rows[0].split(/\s+/).indexOf(field)]);
}

function tableCounter(ns: string, name: string): number {
  const out = nsExec(ns, ['nft', '-j', 'list', 'counters', 'table', 'inet', 'podway_tunnels']);
  return (JSON.parse(out) as { nftables: { counter?: { name: string; packets: number } }[] }).nftables.find((x) => x.counter?.name === name)?.counter?.packets ?? 0;
}

/**
 * The lab both families share: node1 runs podway, node2 is a kernel VXLAN node (Felix-style,
 * src/lab/kernel.ts), pods without offloads (dual-stack for IPv6). `narrow` makes node2's path to
 * node1 smaller (and whatever else must hold before podway starts); with `conntrack`, a conntrack
 * rule of the family's table registers netfilter's defragmentation in node1's namespace. Then
 * podway starts on node1 and `body` runs; the lab's log tail is shown on failure and the lab is
 * removed however it ends.
 */
async function fragmentLab(
  family: 'ip' | 'ip6', conntrack: boolean,
  narrow: (lab: Lab, n1: LabNode, n2: LabNode) => void,
  body: (lab: Lab, n1: LabNode, n2: LabNode) => Promise<void>,
): Promise<void> {
  if (!isRoot()) throw new Error('fragment e2e tests need root (network namespaces)');
  const lab = guard(new Lab(SPEC, { dualStack: family === 'ip6', podOffloads: false }));
  lab.mode = 'vxlan';
  try {
    lab.build();
    const n1 = lab.node('node1');
    const n2 = lab.node('node2');
    configureKernelNode(lab, n2, 'vxlan');
    narrow(lab, n1, n2);
    const table = family === 'ip' ? 'fragtest' : 'fragtest6';
    if (conntrack) nsExec(n1.ns, ['nft', `add table ${family} ${table}; add chain ${family} ${table} c { type filter hook prerouting priority 0; policy accept; }; add rule ${family} ${table} c ct state new counter`]);
    await lab.startPodway('node1', undefined, ['--workers', '1']); // one thread: counters read by port name
    await body(lab, n1, n2);
  } catch (e) {
    console.log(logTail(lab, 20));
    throw e;
  } finally {
    await teardown(lab);
  }
}

let portSeq = 5420;
for (const conntrack of [false, true]) {
  test(`kernel node's VXLAN fragmented on the underlay (route MTU 1200, DF unset)${conntrack ? ', conntrack (defrag) loaded on the podway node' : ''}: large ping and 2 MB TCP arrive, fragments through the socket`, async () => {
    await fragmentLab('ip', conntrack, (lab, n1, n2) => {
      // node2 -> node1 over a narrower path; the vxlan device and the pods keep MTU 1450
      nsExec(n2.ns, ['ip', 'route', 'add', `${n1.ip}/32`, 'dev', 'eth0', 'mtu', '1200']);
      nsExec(lab.pod('web-2').ns, ['sysctl', '-qw', 'net.ipv4.ip_no_pmtu_disc=1']);
    }, async (lab, n1) => {
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
    });
  });
}

for (const conntrack of [false, true]) {
  test(`VXLAN over IPv6 fragmented by the kernel node (route MTU 1280)${conntrack ? ', conntrack (IPv6 defrag) loaded on the podway node' : ''}: reassembled by the kernel, read from podway's IPv6 VXLAN socket, delivered, content checked both ways`, async () => {
    await fragmentLab('ip6', conntrack, (_lab, n1, n2) => {
      // node2 -> node1 over a 1280-byte path (the IPv6 minimum); the pods keep MTU 1430
      nsExec(n2.ns, ['ip', '-6', 'route', 'add', `${n1.ip6}/128`, 'dev', 'eth0', 'mtu', '1280']);
    }, async (lab, n1, n2) => {
      assert.ok(await until(async () => (await routes(n1)).some((r) => r.cidr === n2.block6 && r.kind === 'vxlan'), 10_000), 'node1 routes node2\'s IPv6 block over VXLAN');
      assert.ok(await until(() => lab.ping('web-2', lab.pod('web-1').ip6!, 1).received === 1, 10_000, 200), 'unfragmented IPv6 VXLAN works first');
      const w1 = lab.pod('web-1');
      const w2 = lab.pod('web-2');
      const COUNT = 200;
      const SIZE = 1300; // inner 1348 bytes, VXLAN datagram 1418 > 1280: two outer fragments each
      const reasm0 = snmp6(n1.ns, 'Ip6ReasmOKs');
      const fails0 = snmp6(n1.ns, 'Ip6ReasmFails');
      // each gives up after 15 s without a datagram (it ends at once when all COUNT came): the
      // senders below are ten process starts, and 3 s between two of them was too short a wait
      // for a loaded 2-CPU host (the listener then reports what it had as all it got)
      const recv = spawnCollected('ip', ['netns', 'exec', w2.ns, 'python3', '-c', VXLAN6_TOOL, 'recv', w2.ip6!, '6101', String(COUNT), '15'], 120_000);
      const echo = spawnCollected('ip', ['netns', 'exec', w1.ns, 'python3', '-c', VXLAN6_TOOL, 'echo', w1.ip6!, '6100', String(COUNT), '15'], 120_000);
      assert.ok(await until(() => recv.out().includes('ready') && echo.out().includes('ready'), 10_000), 'listeners ready');
      // paced: 200 datagrams in about 1 s, so no socket buffer on the way overflows
      for (let k = 0; k < COUNT; k += 20) {
        const send = spawnCollected('ip', ['netns', 'exec', n2.ns, 'python3', '-c', VXLAN6_TOOL, 'send', n1.ip6!, n2.ip6!, w2.ip6!, w1.ip6!, deriveVtepMac('node1', 6), deriveVtepMac('node2', 6), '6101', '6100', String(SIZE), String(k), '20'], 30_000);
        assert.is(await send.done, 0, `sender: ${send.err()}`);
        await sleep(20);
      }
      await Promise.all([echo.done, recv.done]);
      const e = JSON.parse(echo.out().split('\n').filter((l) => l.startsWith('{')).pop() ?? '{}') as { received: number; intact: number };
      const r = JSON.parse(recv.out().split('\n').filter((l) => l.startsWith('{')).pop() ?? '{}') as { received: number; intact: number };
      const c = (await controlRequest(n1.control, { cmd: 'counters' }, 5000)) as Counters;
      const sock = c.ports.find((p) => p.port.startsWith('vxlan6('));
      const reassembled = snmp6(n1.ns, 'Ip6ReasmOKs') - reasm0;
      console.log(`  node1: table fragments6 ${tableCounter(n1.ns, 'fragments6')}, vxlan6 ${tableCounter(n1.ns, 'vxlan6')}; vxlan6 socket rx ${sock?.rx}; kernel reassembled ${reassembled}; web-1 got ${JSON.stringify(e)}, web-2 got back ${JSON.stringify(r)}; drop reasons ${JSON.stringify(c.reasons)}`);
      assert.ok(tableCounter(n1.ns, 'fragments6') >= 2 * COUNT * 0.95, 'the path fragmented: fragments counted by the table and left to the kernel');
      // (netfilter's IPv6 defragmentation, loaded with conntrack, does not count in Ip6ReasmOKs)
      if (!conntrack) assert.ok(reassembled >= COUNT * 0.95, `node1's kernel reassembled ${reassembled} datagrams`);
      assert.ok(sock && sock.rx >= COUNT * 0.95, `podway's IPv6 VXLAN socket read ${sock?.rx} datagrams`);
      // UDP, paced, in namespaces on one host: none should be lost, but allow a stray drop
      assert.ok(e.received >= COUNT * 0.95, `web-1 received ${e.received} of ${COUNT}`);
      assert.is(e.intact, e.received, 'every datagram web-1 received is intact');
      assert.ok(r.received >= e.received * 0.95, `web-2 received ${r.received} echoes of ${e.received}`);
      assert.is(r.intact, r.received, 'every echo web-2 received is intact');
      assert.is(snmp6(n1.ns, 'Ip6ReasmFails') - fails0, 0, 'node1\'s kernel failed to reassemble datagrams');
      assert.is(c.reasons.fragment ?? 0, 0, 'podway dropped fragments');
      assert.is(c.reasons.unknown_tunnel_source ?? 0, 0, 'the socket\'s sender address was read right (a known node)');
    });
  });
}

test.run();
