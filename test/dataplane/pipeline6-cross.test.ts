// IPv6 between two podway nodes on MemoryIO: node1 resolves node2's underlay address with its
// own Neighbor Solicitation, encapsulates pod traffic in VXLAN over IPv6 (full UDP checksum, VNI
// 4096, IPv6 VTEP MACs), and node2 decapsulates it from its underlay port and delivers it; plus
// the underlay filter with IPv6 and unknown tunnel sources; `podway capture --stage decap` on
// node2 records the inner frames of that IPv6 VXLAN (read back by tshark).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { CaptureTap, Stage, readRecords } from '../../src/dataplane/capture';
import { PcapngWriter } from '../../src/dataplane/pcapng';
import { parseTraceFilter, TraceSession } from '../../src/dataplane/trace';
import { Reason } from '../../src/dataplane/counters';
import { Neighbors6 } from '../../src/dataplane/engine6';
import { underlayFilter } from '../../src/dataplane/host';
import { parseIpv6Bytes, parseMac, toHex, deriveVtepMacBytes } from './helpers6-extra';
import { onlyFrame, nothingSent, takeAll, u16, runBpf, NODE1, NODE2_MAC, NODE1_MAC, VTEP2_MAC } from './helpers';
import { Tunnel } from '../../src/dataplane/pipeline';
import { makeHarness6, frame6, dualStackYaml, RV6, NODE2_6, NODE2_MAC6 } from './helpers6';
import { icmpv6Sum } from '../packet/helpers6';

/** Independent check of the outer UDP checksum over IPv6 (pseudo-header + datagram). */
function udp6Sum(b: Uint8Array, ip: number): number {
  const len = u16(b, ip + 4);
  let s = 17 + len;
  for (let k = 8; k < 40; k += 2) s += b[ip + k] * 256 + b[ip + k + 1];
  for (let k = 0; k + 1 < len; k += 2) s += b[ip + 40 + k] * 256 + b[ip + 40 + k + 1];
  if (len % 2 === 1) s += b[ip + 40 + len - 1] * 256;
  while (s > 0xffff) s = (s % 0x10000) + Math.floor(s / 0x10000);
  return s;
}

function aToRv(): Uint8Array {
  const f = frame6('v6pipe_a_to_b');
  f.set(parseIpv6Bytes(RV6), 14 + 24);
  fixChecksum(f);
  return f;
}

test('node1 solicits node2\'s IPv6 address, learns it from the NA, then tunnels A -> RV over IPv6 VXLAN', () => {
  const h = makeHarness6();
  const sent: Uint8Array[] = [];
  const n6 = new Neighbors6(h.pipe, (write) => {
    const b = new Uint8Array(2048);
    sent.push(b.slice(128, 128 + write(b, 128)));
  }, () => parseMac(NODE1_MAC), () => {});
  n6.want([NODE2_6]);
  h.pipe.v6.onUnresolved6 = (b, off) => n6.request(b, off, 1000);
  h.pipe.v6.onNeighbor6 = (b, t, m) => n6.onAdvert(b, t, m);
  const a = h.port('caliA');
  h.receive(a, aToRv());
  nothingSent(h, 'unresolved');
  assert.is(sent.length, 1, 'one NS');
  assert.is(toHex(sent[0]), toHex(frame6('v6_ns_resolve')), 'the NS as scapy builds it');
  // A second packet within the second does not solicit again.
  h.receive(a, aToRv());
  assert.is(sent.length, 1);
  // node2's NA arrives on the underlay: learned (and left to the kernel too).
  h.receive(h.infra.underlay, frame6('v6_na_node2'));
  nothingSent(h, 'the NA is not forwarded');
  assert.is(toHex(n6.neighbor6(NODE2_6)!), '525400990002');
  h.receive(a, aToRv());
  const out = onlyFrame(h, h.infra.underlay, 'tunnelled').bytes;
  assert.is(toHex(out, 0, 14), '525400990002' + '525400990001' + '86dd', 'outer Ethernet');
  const ip = 14;
  assert.is(out[ip] >> 4, 6);
  assert.is(out[ip + 6], 17, 'UDP');
  assert.is(out[ip + 7], 64, 'outer hop limit');
  assert.is(toHex(out, ip + 8, 16), toHex(parseIpv6Bytes('fd99::1')));
  assert.is(toHex(out, ip + 24, 16), toHex(parseIpv6Bytes(NODE2_6)));
  assert.is(u16(out, ip + 42), 4789);
  const sport = u16(out, ip + 40);
  assert.ok(sport >= 32768 && sport < 60999, `source port ${sport}`);
  assert.is(u16(out, ip + 44), out.length - 14 - 40, 'UDP length');
  assert.is(udp6Sum(out, ip), 0xffff, 'outer UDP checksum');
  assert.is(toHex(out, ip + 48, 8), '0800000000100000', 'VXLAN I flag, VNI 4096');
  const inner = ip + 56;
  assert.is(toHex(out, inner, 6), deriveVtepMacBytes('node2'), 'inner dst: node2\'s IPv6 VTEP MAC');
  assert.is(toHex(out, inner + 6, 6), deriveVtepMacBytes('node1'), 'inner src: our IPv6 VTEP MAC');
  assert.is(u16(out, inner + 12), 0x86dd);
  assert.is(out[inner + 14 + 7], 63, 'inner hop limit decremented once');
  assert.is(out.length, 14 + 56 + aToRv().length);
});

test('node2 decapsulates IPv6 VXLAN from a known node and delivers to its pod (hop limit 62)', () => {
  const h1 = makeHarness6({ neighbors6: { [NODE2_6]: NODE2_MAC6 } });
  h1.receive(h1.port('caliA'), aToRv());
  const wire = onlyFrame(h1, h1.infra.underlay, 'from node1').bytes;
  const h2 = makeHarness6({ node: 'node2' });
  // RV's MAC is learned from its first frame (its NS for the gateway).
  const rv = h2.port('caliRV');
  const ns = frame6('v6_ns_gw');
  ns.set([0x2a, 0x5f, 0x20, 0, 0, 0x65], 6);
  ns.set([0x2a, 0x5f, 0x20, 0, 0, 0x65], 14 + 40 + 24 + 2);
  fixChecksum(ns);
  h2.receive(rv, ns);
  nothingSent(h2, 'NS from veth pod RV: the node kernel\'s to answer');
  // traced with its decapsulation, as IPv4 VXLAN is (before, the record went from the inner
  // header straight to the lookup: nothing said it had come through a tunnel, nor from which node)
  const tin = new TraceSession(parseTraceFilter(['host', RV6]), 1);
  h2.pipe.trace = tin;
  h2.receive(h2.infra.underlay, wire);
  const got = onlyFrame(h2, rv, 'delivered on node2').bytes;
  assert.is(tin.records.length, 1);
  assert.is(tin.records[0].ingress, 'underlay(eth0)');
  assert.match(tin.records[0].stages.join('\n'), new RegExp(`^ipv6 [^\n]+ -> ${RV6} next header 58 [^\n]+\nvxlan decap: from node fd99::1 \\(known\\), vni 4096, inner ${deriveVtepMacBytes('node1').replace(/(..)(?!$)/g, '$1:')} -> ${deriveVtepMacBytes('node2').replace(/(..)(?!$)/g, '$1:')} \\(underlay port\\)\nlookup ${RV6}: `));
  h2.pipe.trace = null;
  assert.is(toHex(got, 0, 6), '2a5f20000065');
  assert.is(u16(got, 12), 0x86dd);
  assert.is(got[14 + 7], 62, 'hop limit 62, as through two kernels');
  assert.is(icmpv6Sum(got, 14, 54, got.length - 54), 0xffff, 'inner ICMPv6 intact');
  // The same frame from an address that is not a cluster node: dropped, counted.
  const forged = wire.slice();
  forged[14 + 8 + 15] = 0x77;
  fixUdp6(forged);
  // traced by its outer header, though it is dropped before decapsulation
  const t = new TraceSession(parseTraceFilter(['host', 'fd99::77']), 2);
  h2.pipe.trace = t;
  h2.receive(h2.infra.underlay, forged);
  nothingSent(h2, 'unknown source');
  assert.is(h2.pipe.counters[Reason.UNKNOWN_TUNNEL_SOURCE], 1);
  assert.is(t.records.length, 1);
  assert.match(t.records[0].stages.join('\n'), /^ipv6 fd99::77 -> fd99::2 next header 17[^]*vxlan \(underlay port\): outer fd99::77 \(not a known node\)\ndrop: unknown_tunnel_source$/);
  h2.pipe.trace = null;
  // A zero or wrong outer UDP checksum is dropped (IPv6 requires it).
  const zero = wire.slice();
  zero[14 + 46] = 0; zero[14 + 47] = 0;
  h2.receive(h2.infra.underlay, zero);
  const bad = wire.slice();
  bad[bad.length - 1] ^= 0xff;
  h2.receive(h2.infra.underlay, bad);
  nothingSent(h2, 'bad checksums');
});

test('IPv6 VXLAN is decapsulated only while an IPv6 pool uses VXLAN (tunnel_mode_unused), and only for node2\'s IPv6 VTEP MAC (vxlan_inner_mac)', () => {
  const h1 = makeHarness6({ neighbors6: { [NODE2_6]: NODE2_MAC6 } });
  h1.receive(h1.port('caliA'), aToRv());
  const wire = onlyFrame(h1, h1.infra.underlay, 'from node1').bytes;
  // node2 whose IPv6 pool does not encapsulate: Calico has no vxlan-v6.calico there
  const pool = 'spec: { cidr: "fd00:10:244::/64", vxlanMode: Always, ipipMode: Never }';
  assert.ok(dualStackYaml().includes(pool));
  const plain = makeHarness6({ node: 'node2', yaml: dualStackYaml().replace(pool, 'spec: { cidr: "fd00:10:244::/64", vxlanMode: Never, ipipMode: Never }') });
  assert.is(plain.pipe.tunnels & Tunnel.VXLAN6, 0);
  plain.receive(plain.infra.underlay, wire);
  nothingSent(plain, 'no IPv6 VXLAN pool');
  assert.is(plain.pipe.counters[Reason.TUNNEL_MODE_UNUSED], 1);
  // node2 with it: the inner destination must be its IPv6 VTEP MAC, the source not that MAC
  const h2 = makeHarness6({ node: 'node2' });
  assert.is(toHex(h2.pipe.v6.nh!.vtepMac), deriveVtepMacBytes('node2'));
  const inner = 14 + 40 + 8 + 8;
  for (const [what, at, mac] of [['another unicast', 0, '02:00:00:00:00:01'], ['broadcast', 0, 'ff:ff:ff:ff:ff:ff'], ['node2\'s IPv4 VTEP MAC', 0, VTEP2_MAC], ['its own MAC as the source', 6, toHex(wire, inner, 6).replace(/(..)(?!$)/g, '$1:')]] as Array<[string, number, string]>) {
    const f = wire.slice();
    f.set(parseMac(mac), inner + at);
    fixUdp6(f);
    h2.receive(h2.infra.underlay, f);
    nothingSent(h2, what);
  }
  assert.is(h2.pipe.counters[Reason.VXLAN_INNER_MAC], 4);
  assert.is(h2.pipe.counters[Reason.TUNNEL_MODE_UNUSED], 0);
});

test('capture --stage decap on node2: the inner IPv6 frame of VXLAN over IPv6, filtered on the inner packet; not unknown senders, bad checksums or the host\'s frames', () => {
  const h1 = makeHarness6({ neighbors6: { [NODE2_6]: NODE2_MAC6 } });
  h1.receive(h1.port('caliA'), aToRv());
  const wire = onlyFrame(h1, h1.infra.underlay, 'from node1').bytes;
  const h2 = makeHarness6({ node: 'node2' });
  const forged = wire.slice();
  forged[14 + 8 + 15] = 0x77;
  fixUdp6(forged);
  const bad = wire.slice();
  bad[bad.length - 1] ^= 0xff;
  const run = (filter: string): { iface: string; data: Uint8Array }[] => {
    const tap = new CaptureTap({ filter: parseTraceFilter(filter.split(' ').filter(Boolean)), stage: Stage.DECAP, count: 100 }, h2.pipe.batch);
    h2.pipe.capture = tap;
    try {
      // decapsulated (RV's MAC unknown: still delivered or dropped after decap either way), an
      // unknown sender, a bad outer checksum, and node2's own IPv6 (an NA, left to the host)
      h2.receive(h2.infra.underlay, wire, forged, bad, frame6('v6_na_node2'));
      takeAll(h2);
    } finally {
      h2.pipe.capture = null;
    }
    const c = tap.take();
    return c ? [...readRecords(c)].map((r) => ({ iface: r.iface, data: r.data.slice() })) : [];
  };
  const all = run('');
  assert.is(all.length, 1, 'only the frame that passed decapsulation');
  assert.is(all[0].iface, 'underlay(eth0)');
  assert.is(toHex(all[0].data), toHex(wire.subarray(14 + 40 + 8 + 8)), 'the inner Ethernet frame as it arrived');
  assert.is(run(`host ${RV6}`).length, 1, 'a filter on the inner destination');
  assert.is(run('icmp6').length, 1, 'a filter on the inner protocol');
  assert.is(run(`host ${NODE2_6}`).length, 0, 'the outer address is not what decap matches');
  assert.is(run('udp').length, 0, 'nor the outer protocol');
  // tshark reads the record as an IPv6 ICMPv6 echo from A to RV
  const dir = mkdtempSync(path.join(tmpdir(), 'podway-decap6-'));
  try {
    const parts: Uint8Array[] = [];
    const w = new PcapngWriter((b) => parts.push(b));
    w.begin();
    w.packet(all[0].iface, 1, all[0].data);
    const file = path.join(dir, 'decap6.pcapng');
    writeFileSync(file, Buffer.concat(parts));
    const out = execFileSync('tshark', ['-r', file, '-T', 'fields', '-E', 'separator=|', '-e', 'frame.interface_name', '-e', 'ipv6.src', '-e', 'ipv6.dst', '-e', 'icmpv6.type', '-e', 'ipv6.hlim'], { encoding: 'utf8', timeout: 30_000, stdio: ['ignore', 'pipe', 'ignore'] });
    const [row] = out.split('\n').filter(Boolean).map((l) => l.split('|'));
    assert.equal(row, ['underlay(eth0)', 'fd00:10:244::1', RV6, '128', '63']);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});


/** node2's NA with `mac` (link-layer option and Ethernet source), NA flags `flags`, for `target`. */
function na(mac: string, flags: number, target = NODE2_6): Uint8Array {
  const f = frame6('v6_na_node2');
  const m = parseMac(mac);
  f.set(m, 6);
  f.set(m, 80);
  f[58] = flags;
  f.set(parseIpv6Bytes(target), 62);
  fixChecksum(f);
  return f;
}

test('IPv6 underlay neighbours age and are re-probed (unicast NS, then multicast), a changed MAC is taken, a silent one FAILS and its traffic is counted; unsolicited NAs', () => {
  const h = makeHarness6();
  const sent: Uint8Array[] = [];
  const logs: string[] = [];
  const n6 = new Neighbors6(h.pipe, (write) => {
    const b = new Uint8Array(2048);
    sent.push(b.slice(128, 128 + write(b, 128)));
  }, () => parseMac(NODE1_MAC), (m) => logs.push(m), { reachableMs: 2_000, retransMs: 300, probes: 3, holdDownMs: 5_000 });
  n6.want([NODE2_6]);
  let now = 1_000;
  h.pipe.v6.onUnresolved6 = (b, off) => n6.request(b, off, now);
  h.pipe.v6.onNeighbor6 = (b, t, m) => n6.onAdvert(b, t, m, now);
  const a = h.port('caliA');
  const outerDst = () => toHex(onlyFrame(h, h.infra.underlay, 'tunnelled').bytes, 0, 6);
  n6.solicitMissing(now);
  assert.is(sent.length, 1);
  h.receive(h.infra.underlay, na(NODE2_MAC6, 0x60));
  h.receive(a, aToRv());
  assert.is(outerDst(), '525400990002');
  // REACHABLE for 2 s, then STALE: unicast NS to the cached MAC and to node2's address itself
  sent.length = 0;
  n6.tick((now = 2_999));
  assert.is(sent.length, 0, 'still reachable');
  n6.tick((now = 3_000));
  assert.is(sent.length, 1, 'the first re-probe');
  const ns = sent[0];
  assert.is(toHex(ns, 0, 6), '525400990002', 'unicast to the cached MAC');
  assert.is(toHex(ns, 14 + 24, 16), toHex(parseIpv6Bytes(NODE2_6)), 'to the target address');
  assert.is(ns[14 + 40], 135, 'a Neighbor Solicitation');
  assert.is(ns[14 + 7], 255, 'hop limit 255');
  assert.is(icmpv6Sum(ns, 14, 54, 32), 0xffff, 'ICMPv6 checksum');
  h.receive(a, aToRv());
  assert.is(outerDst(), '525400990002', 'STALE still forwards');
  n6.tick((now = 3_300));
  n6.tick((now = 3_600));
  assert.is(sent.length, 3);
  assert.is(toHex(sent[2], 0, 3), '3333ff', 'the last probe goes to the solicited-node group');
  // node2 changed its MAC: it answers the multicast probe with the new one, taken at once
  h.receive(h.infra.underlay, na('02:00:5e:10:00:2a', 0x60));
  h.receive(a, aToRv());
  assert.is(outerDst(), '02005e10002a', 'the next hop follows the new MAC');
  assert.is(n6.table.counters().macChanged, 1);
  // an unsolicited NA with the override flag (ndisc_notify): taken; without it: ignored
  h.receive(h.infra.underlay, na('02:00:5e:10:00:3b', 0x20));
  h.receive(a, aToRv());
  assert.is(outerDst(), '02005e10003b', 'unsolicited NA with override');
  h.receive(h.infra.underlay, na('02:00:5e:10:00:4c', 0x00));
  h.receive(a, aToRv());
  assert.is(outerDst(), '02005e10003b', 'unsolicited NA without override changes nothing');
  h.receive(h.infra.underlay, na('02:00:5e:10:00:4c', 0x60, 'fd99::77'));
  assert.is(n6.table.counters().unsolicited, 1, 'an NA for an address podway does not want: counted, not stored');
  assert.is(n6.table.size, 1);
  // a hostile NA (hop limit 254): counted bad_ndp, not learned
  const hostile = na('02:00:5e:10:00:5d', 0x20);
  hostile[14 + 7] = 254;
  h.receive(h.infra.underlay, hostile);
  h.receive(a, aToRv());
  assert.is(outerDst(), '02005e10003b', 'the hostile NA changed nothing');
  // node2 goes silent: STALE, 3 probes, FAILED; its traffic is dropped and counted
  const failedBefore = h.pipe.counters[Reason.NEIGHBOR_FAILED];
  for (now = 6_000; now < 9_000; now += 300) n6.tick(now);
  assert.is(n6.table.entries(now)[0].state, 'failed');
  assert.ok(logs.some((l) => /stopped answering/.test(l)), 'logged');
  h.receive(a, aToRv(), aToRv());
  nothingSent(h, 'a failed neighbour');
  assert.is(h.pipe.counters[Reason.NEIGHBOR_FAILED] - failedBefore, 2, 'counted neighbor_failed');
  // it answers the next round (after the hold-down): traffic flows again
  sent.length = 0;
  for (let t = now; t <= now + 6_000; t += 300) n6.tick(t);
  assert.ok(sent.length >= 1, 'probed again after the hold-down');
  h.receive(h.infra.underlay, na(NODE2_MAC6, 0x60));
  h.receive(a, aToRv());
  assert.is(outerDst(), '525400990002');
});

test('two workers: an unsolicited NA one worker takes is taken by the other as an announcement, not held by its REACHABLE lock as a reply would be', () => {
  // Worker A receives node2's announcement (PACKET_FANOUT handed it the frame); worker B's entry
  // for node2 is REACHABLE and fresh, so a reply with a new MAC would be locked out.
  const shared: { ip6: string; mac: Uint8Array; announced: boolean }[] = [];
  const worker = (share?: (ip6: string, mac: Uint8Array, announced: boolean) => void) => {
    const h = makeHarness6();
    const n6 = new Neighbors6(h.pipe, () => {}, () => parseMac(NODE1_MAC), () => {}, {}, share);
    n6.want([NODE2_6]);
    h.pipe.v6.onNeighbor6 = (b, t, m) => n6.onAdvert(b, t, m, 1_000);
    h.receive(h.infra.underlay, na(NODE2_MAC6, 0x60));
    return { h, n6 };
  };
  const a = worker((ip6, mac, announced) => shared.push({ ip6, mac, announced }));
  const b = worker();
  assert.is(toHex(b.n6.neighbor6(NODE2_6)!), toHex(parseMac(NODE2_MAC6)));
  shared.length = 0;
  a.h.receive(a.h.infra.underlay, na('02:00:5e:10:00:3b', 0x20));
  assert.is(shared.length, 1, 'A shares the announcement');
  assert.ok(shared[0].announced, 'as an announcement');
  // As a reply, B's fresh REACHABLE entry holds its MAC (the lock window, as the kernel's)...
  b.n6.learnShared(shared[0].ip6, shared[0].mac, false, 1_100);
  assert.is(toHex(b.n6.neighbor6(NODE2_6)!), toHex(parseMac(NODE2_MAC6)), 'a reply is locked out');
  // ...as the announcement it was, B takes the new MAC and B's flows follow it.
  b.n6.learnShared(shared[0].ip6, shared[0].mac, true, 1_100);
  assert.is(toHex(b.n6.neighbor6(NODE2_6)!), '02005e10003b', 'the announcement is taken');
  b.h.receive(b.h.port('caliA'), aToRv());
  assert.is(toHex(onlyFrame(b.h, b.h.infra.underlay, 'tunnelled').bytes, 0, 6), '02005e10003b', 'B tunnels to the new MAC');
  // A solicited answer is shared as a reply.
  shared.length = 0;
  a.h.receive(a.h.infra.underlay, na('02:00:5e:10:00:3b', 0x60));
  assert.ok(shared.length === 1 && !shared[0].announced, 'a solicited NA is shared as a reply');
});

test('underlay filter with IPv6: IPv6 and ARP accepted, IPv4 for the node still left to its sockets', () => {
  const prog = underlayFilter(NODE1, { ipv6: true });
  const f = frame6('v6_na_node2');
  assert.ok(runBpf(prog, f) > 0, 'IPv6');
  const v4 = new Uint8Array(60);
  v4[12] = 0x08; v4[13] = 0x00;
  v4[30] = NODE1 >>> 24; v4[31] = (NODE1 >>> 16) & 255; v4[32] = (NODE1 >>> 8) & 255; v4[33] = NODE1 & 255;
  assert.is(runBpf(prog, v4), 0, 'IPv4 to the node');
  v4[33] ^= 1;
  assert.ok(runBpf(prog, v4) > 0, 'IPv4 to a pod');
  v4[12] = 0x08; v4[13] = 0x06;
  assert.ok(runBpf(prog, v4) > 0, 'ARP');
  v4[12] = 0x81; v4[13] = 0x00;
  assert.is(runBpf(prog, v4), 0, 'VLAN');
  assert.is(runBpf(underlayFilter(NODE1), f), 0, 'IPv6 without the option');
  void NODE2_MAC;
});

test('node2: a tunnelled packet with hop limit 1 gets ICMPv6 time exceeded, and one bigger than the pod port\'s MTU Packet Too Big, from node2\'s IPv6 VXLAN tunnel address (as vxlan-v6.calico\'s route back picks it), tunnelled back to node1; capture at drop shows the packets as they came', () => {
  const h1 = makeHarness6({ neighbors6: { [NODE2_6]: NODE2_MAC6 } });
  const h2 = makeHarness6({ node: 'node2', neighbors6: { 'fd99::1': NODE1_MAC } });
  const rv = h2.port('caliRV');
  const hl2 = aToRv();
  hl2[14 + 7] = 2; // 1 after node1's hop
  h1.receive(h1.port('caliA'), hl2);
  const wire = onlyFrame(h1, h1.infra.underlay, 'from node1').bytes;
  const tap = new CaptureTap({ filter: parseTraceFilter([]), stage: Stage.DROP, count: 10 }, h2.pipe.batch);
  h2.pipe.capture = tap;
  h2.receive(h2.infra.underlay, wire);
  const back = onlyFrame(h2, h2.infra.underlay, 'time exceeded back').bytes;
  assert.is(toHex(back, 14 + 24, 16), toHex(parseIpv6Bytes('fd99::1')), 'outer: to node1');
  const inner = 14 + 40 + 8 + 8 + 14;
  assert.is(toHex(back, inner + 8, 16), toHex(parseIpv6Bytes('fd00:10:244::40')), 'from node2\'s IPv6 VXLAN tunnel address');
  assert.is(toHex(back, inner + 24, 16), toHex(parseIpv6Bytes('fd00:10:244::1')), 'to A');
  assert.equal([back[inner + 40], back[inner + 41]], [3, 0], 'ICMPv6 time exceeded, hop limit');
  assert.is(icmpv6Sum(back, inner, inner + 40, u16(back, inner + 4)), 0xffff, 'ICMPv6 checksum');
  assert.is(h2.pipe.counters[Reason.TTL_EXPIRED], 1);
  // Packet Too Big: RV's port (its veth's host end) has MTU 1300; a 1400-byte packet fits node1's route (1430)
  h2.pipe.portMtu[rv] = 1300;
  const big = new Uint8Array(14 + 1400);
  big.set(aToRv());
  big[18] = (1360 >> 8); big[19] = 1360 & 255;
  fixChecksum(big);
  h1.receive(h1.port('caliA'), big);
  h2.receive(h2.infra.underlay, onlyFrame(h1, h1.infra.underlay, 'big from node1').bytes);
  const ptb = onlyFrame(h2, h2.infra.underlay, 'packet too big back').bytes;
  assert.is(toHex(ptb, inner + 8, 16), toHex(parseIpv6Bytes('fd00:10:244::40')), 'from node2\'s IPv6 VXLAN tunnel address');
  assert.is(ptb[inner + 40], 2, 'ICMPv6 Packet Too Big');
  assert.is(u16(ptb, inner + 44) * 65536 + u16(ptb, inner + 46), 1300, 'the pod port\'s MTU');
  assert.is(h2.pipe.counters[Reason.FRAG_NEEDED], 1);
  h2.pipe.capture = null;
  const c = tap.take();
  const recs = c ? [...readRecords(c)] : [];
  assert.equal(recs.map((r) => r.comment), ['drop: ttl_expired', 'drop: frag_needed'], 'both recorded at drop, not as the errors they became');
  assert.is(recs[0].data[14 + 40 + 8 + 8 + 14 + 40], 128, 'the echo request as it came (inner of the VXLAN frame)');
});

function fixChecksum(f: Uint8Array): void {
  const len = u16(f, 18);
  f[56] = 0; f[57] = 0;
  const c = 0xffff - icmpv6Sum(f, 14, 54, len);
  f[56] = c >> 8; f[57] = c & 255;
}

function fixUdp6(f: Uint8Array): void {
  f[14 + 46] = 0; f[14 + 47] = 0;
  const c = 0xffff - udp6Sum(f, 14);
  f[14 + 46] = c >> 8; f[14 + 47] = c & 255;
}

test.run();
