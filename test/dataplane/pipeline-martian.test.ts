// A pod's packet for an address a node never routes off the box (loopback, unspecified, multicast,
// broadcast, reserved; IPv6 also link-local and IPv4-mapped) must not be handed to the node's
// routing through tx4/tx6: the kernel would deliver it to the node's loopback services. It is
// dropped, counted martian_dst, and answered with ICMP/ICMPv6 unreachable (not for group addresses).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Reason, Event, COUNTER_NAMES } from '../../src/dataplane/counters';
import { Drop } from '../../src/packet/drop';
import { Role } from '../../src/dataplane/pipeline';
import { computeNodeModel, parseClusterYaml } from '../../src/control';
import { formatIpv4, isMartianDst4, isMartianDst6, parseIpv4, parseIpv6Bytes, toHex } from '../../src/packet';
import { makeHarness, Harness, frame, learnTapMac, onlyFrame, nothingSent, fixIpChecksum, ipHeaderChecksum, onesSum, u16, CLUSTER_YAML } from './helpers';
import { makeHarness6, frame6 } from './helpers6';

function retarget(f: Uint8Array, dst: string): Uint8Array {
  const c = f.slice();
  const d = parseIpv4(dst);
  c.set([d >>> 24, (d >>> 16) & 255, (d >>> 8) & 255, d & 255], 30);
  fixIpChecksum(c, 14);
  return c;
}

/** `f` (an IPv4 frame) with `opts` as IPv4 options, padded with EOL to a multiple of 4 bytes. */
function withOptions(f: Uint8Array, opts: number[]): Uint8Array {
  const pad = [...opts, ...new Array((4 - (opts.length % 4)) % 4).fill(0)];
  const c = new Uint8Array(f.length + pad.length);
  c.set(f.subarray(0, 34));
  c.set(pad, 34);
  c.set(f.subarray(34), 34 + pad.length);
  c[14] = 0x40 | ((20 + pad.length) >> 2);
  const total = ((c[16] << 8) | c[17]) + pad.length;
  c[16] = total >> 8;
  c[17] = total & 255;
  fixIpChecksum(c, 14);
  return c;
}

test('IPv4 source route options (LSRR 0x83, SSRR 0x89) are dropped and counted source_route, as the kernel with accept_source_route=0; other options are forwarded', () => {
  const h = makeHarness();
  const a = h.port('caliA');
  assert.is(COUNTER_NAMES[Drop.SOURCE_ROUTE], 'source_route');
  const route = [10, 99, 0, 2];
  const cases: Array<[string, number[]]> = [
    ['LSRR', [0x83, 7, 4, ...route]],
    ['SSRR', [0x89, 7, 4, ...route]],
    ['NOPs, then LSRR', [1, 1, 1, 0x83, 7, 4, ...route]],
    ['record route, then SSRR', [0x07, 7, 4, 0, 0, 0, 0, 0x89, 7, 4, ...route]],
  ];
  for (const [what, opts] of cases) {
    const before = h.pipe.counters[Drop.SOURCE_ROUTE];
    h.receive(a, withOptions(frame('a_to_b'), opts));
    nothingSent(h, what);
    assert.is(h.pipe.counters[Drop.SOURCE_ROUTE], before + 1, `${what}: counted source_route`);
  }
  // options that are not a source route go through (the kernel forwards them too)
  for (const [what, opts] of [['4 NOPs', [1, 1, 1, 1]], ['record route', [0x07, 7, 4, 0, 0, 0, 0]], ['EOL, then bytes that look like LSRR', [0, 0x83, 7, 4, ...route]]] as Array<[string, number[]]>) {
    h.receive(a, withOptions(frame('a_to_b'), opts));
    onlyFrame(h, h.port('caliB'), what);
  }
  assert.is(h.pipe.counters[Drop.SOURCE_ROUTE], 4);
  // the same from another node: a VXLAN packet whose inner header has an LSRR
  const payload = frame('vxlan_rv_to_a').subarray(42); // VXLAN header, then the inner Ethernet frame
  h.receive(h.infra.vxlan, { bytes: payload, addr: parseIpv4('10.99.0.2'), aport: 50000 });
  onlyFrame(h, a, 'VXLAN as it is: delivered');
  const innerOpt = withOptions(payload.subarray(8), [0x83, 7, 4, ...route]);
  const bytes = new Uint8Array(8 + innerOpt.length);
  bytes.set(payload.subarray(0, 8));
  bytes.set(innerOpt, 8);
  h.receive(h.infra.vxlan, { bytes, addr: parseIpv4('10.99.0.2'), aport: 50000 });
  nothingSent(h, 'VXLAN inner LSRR');
  assert.is(h.pipe.counters[Drop.SOURCE_ROUTE], 5, 'inner LSRR counted source_route');
});

/** `f` (an Ethernet IPv4 frame) from `src` instead. */
function from(f: Uint8Array, src: string): Uint8Array {
  const c = f.slice();
  const s = parseIpv4(src);
  c.set([s >>> 24, (s >>> 16) & 255, (s >>> 8) & 255, s & 255], 26);
  fixIpChecksum(c, 14);
  return c;
}

/** The ICMP parameter problem at `ip` in `out`: from node1 to `to`, pointer `ptr`, quoting `offending`'s header (at `at`). */
function assertParamProblem(out: Uint8Array, ip: number, to: string, ptr: number, offending: Uint8Array, at: number, what: string): void {
  const hl = (offending[at] & 15) * 4;
  assert.is(out[ip + 9], 1, `${what}: icmp`);
  assert.is(formatIpv4(u32(out, ip + 12)), '10.99.0.1', `${what}: from the node`);
  assert.is(formatIpv4(u32(out, ip + 16)), to, `${what}: to the sender`);
  assert.is(u16(out, ip + 10), ipHeaderChecksum(out, ip), `${what}: header checksum`);
  const icmp = ip + 20;
  const total = u16(out, ip + 2);
  assert.equal([out[icmp], out[icmp + 1], out[icmp + 4], out[icmp + 5], out[icmp + 6], out[icmp + 7]], [12, 0, ptr, 0, 0, 0], `${what}: parameter problem, pointer ${ptr}`);
  assert.is(onesSum(out, icmp, total - 20), 0xffff, `${what}: icmp checksum`);
  assert.is(total, 20 + 8 + hl + 8, `${what}: the header and 8 bytes quoted`);
  assert.is(toHex(out.subarray(icmp + 8, icmp + 8 + hl + 8)), toHex(offending.subarray(at, at + hl + 8)), `${what}: quoted as it came`);
}

function u32(b: Uint8Array, o: number): number {
  return ((b[o] << 24) | (b[o + 1] << 16) | (b[o + 2] << 8) | b[o + 3]) >>> 0;
}

test('malformed IPv4 options (IHL 15 of garbage, a bad record route, a length past the header) are dropped and counted bad_ip_options, as the kernel\'s ip_options_compile drops them; answered with ICMP parameter problem (the kernel\'s pointer) by podway for a TAP/TUN pod and a decapsulated packet, by the node\'s kernel for a veth pod (its copy); well-formed ones still go', () => {
  const h = makeHarness();
  const a = h.port('caliA');
  const t = h.port('tapT');
  const u = h.port('tunU');
  assert.is(COUNTER_NAMES[Drop.BAD_IP_OPTIONS], 'bad_ip_options');
  learnTapMac(h);
  let now = 1_000_000;
  h.pipe.clock = () => now;
  const garbage = Array.from({ length: 40 }, (_, k) => (0xde + k * 37) & 255);
  const cases: Array<[string, number[], number]> = [
    ['IHL 15 of garbage', garbage, 23], // type 0xde length 3, then type 0x4d length 114: past the header
    ['record route pointer 3', [0x07, 7, 3, 0, 0, 0, 0], 22],
    ['record route without room for an address', [0x07, 7, 5, 0, 0, 0, 0], 22],
    ['an option length past the header', [0x1e, 9, 0, 0], 20],
  ];
  let n = 0;
  for (const [what, opts, ptr] of cases) {
    now += 2000; // past the per-destination rate limit's refill
    const f = withOptions(frame('a_to_b'), opts);
    if (opts === garbage) assert.is(f[14], 0x4f, 'IHL 15');
    // a veth pod: the node's kernel has the frame too and answers it itself
    h.receive(a, f);
    nothingSent(h, `${what} from a veth pod`);
    // a TAP pod: podway answers, back on its port
    const ft = from(f, '10.245.0.3');
    h.receive(t, ft);
    const et = onlyFrame(h, t, `${what} from the tap pod`).bytes;
    assert.is(toHex(et.subarray(6, 12)), 'eeeeeeeeeeee', `${what}: from the gateway MAC`);
    assertParamProblem(et, 14, '10.245.0.3', ptr, ft, 14, `${what} (tap)`);
    // a TUN pod: no Ethernet
    const fu = from(f, '10.246.0.4').subarray(14);
    h.receive(u, fu);
    assertParamProblem(onlyFrame(h, u, `${what} from the tun pod`).bytes, 0, '10.246.0.4', ptr, fu, 0, `${what} (tun)`);
    n += 3;
    assert.is(h.pipe.counters[Drop.BAD_IP_OPTIONS], n, `${what}: counted bad_ip_options`);
  }
  assert.is(h.pipe.counters[Event.ICMP_SENT], 8);
  // a source not the pod's: the source check first (Calico's RPF check comes before the kernel's option check)
  h.receive(t, withOptions(frame('a_to_b'), [0x07, 7, 3, 0, 0, 0, 0]));
  nothingSent(h, 'spoofed source');
  assert.is(h.pipe.counters[Reason.SOURCE_CHECK], 1);
  // CIPSO: refused without an answer, as the kernel
  h.receive(t, from(withOptions(frame('a_to_b'), [0x86, 8, 0, 0, 0, 1, 0, 0]), '10.245.0.3'));
  nothingSent(h, 'cipso');
  assert.is(h.pipe.counters[Drop.BAD_IP_OPTIONS], n + 1);
  // rate-limited as the kernel's (per destination: 6 at once)
  now += 10_000;
  const burst = from(withOptions(frame('a_to_b'), [0x07, 2, 1, 1]), '10.245.0.3');
  for (let k = 0; k < 7; k++) h.receive(t, burst.slice());
  const answered = h.io.take(t).length;
  assert.is(answered, 6, 'six answered');
  assert.is(h.pipe.counters[Reason.ICMP_RATELIMITED], 1);
  h.receive(a, withOptions(frame('a_to_b'), [0x07, 7, 4, 0, 0, 0, 0]));
  onlyFrame(h, h.port('caliB'), 'a good record route goes');
  // from another node: a VXLAN packet whose inner header has a bad record route: answered to its
  // pod (10.244.0.65 on node2), routed back through VXLAN (tx4 while node2's MAC is unresolved)
  const payload = frame('vxlan_rv_to_a').subarray(42);
  const innerOpt = withOptions(payload.subarray(8), [0x07, 7, 3, 0, 0, 0, 0]);
  const bytes = new Uint8Array(8 + innerOpt.length);
  bytes.set(payload.subarray(0, 8));
  bytes.set(innerOpt, 8);
  const asSent = bytes.slice();
  h.receive(h.infra.vxlan, { bytes, addr: parseIpv4('10.99.0.2'), aport: 50000 });
  const out = onlyFrame(h, h.infra.tx4, 'VXLAN inner bad record route: answered').bytes;
  assert.is(formatIpv4(u32(out, 16)), '10.99.0.2', 'outer: to node2');
  assert.is(u16(out, 22), 4789, 'vxlan');
  assertParamProblem(out, 20 + 8 + 8 + 14, '10.244.0.65', 22, asSent, 8 + 14, 'inside VXLAN');
  // inside IPIP (raw socket): to its pod 10.245.0.65, back through IPIP
  now += 10_000;
  const ipip = frame('ipip_ri_to_t').subarray(14);
  const innerBad = withOptions(new Uint8Array([...new Uint8Array(14), ...ipip.subarray(20)]), [0x07, 7, 3, 0, 0, 0, 0]).subarray(14);
  const ipipBad = new Uint8Array([...ipip.subarray(0, 20), ...innerBad]);
  ipipBad[2] = ipipBad.length >> 8;
  ipipBad[3] = ipipBad.length & 255;
  fixIpChecksum(ipipBad, 0);
  const ipipSent = ipipBad.slice();
  h.receive(h.infra.ipip, { bytes: ipipBad, addr: parseIpv4('10.99.0.2') });
  const back = onlyFrame(h, h.infra.tx4, 'IPIP inner bad record route: answered').bytes;
  assert.is(back[9], 4, 'outer: ipip');
  assertParamProblem(back, 20, '10.245.0.65', 22, ipipSent, 20, 'inside IPIP');
  // a tunnel's outer header (the underlay port, where the kernel's copy is dropped before its
  // option check): answered to the sending node, through the node's routing
  now += 10_000;
  const outerBad = withOptions(frame('vxlan_rv_to_a'), [0x07, 2, 1, 1]);
  h.receive(h.infra.underlay, outerBad);
  assertParamProblem(onlyFrame(h, h.infra.tx4, 'VXLAN outer bad options: answered').bytes, 0, '10.99.0.2', 21, outerBad, 14, 'outer header');
  assert.is(h.pipe.counters[Drop.SOURCE_ROUTE], 0);
});

test('isMartianDst4: 0/8, 127/8, multicast, reserved and broadcast; not link-local, private or public', () => {
  for (const a of ['0.0.0.0', '0.1.2.3', '127.0.0.1', '127.255.255.254', '224.0.0.1', '239.1.2.3', '240.0.0.1', '255.255.255.255']) assert.ok(isMartianDst4(parseIpv4(a)), a);
  for (const a of ['1.0.0.0', '126.255.255.255', '128.0.0.1', '169.254.169.254', '169.254.20.10', '10.0.0.1', '8.8.8.8', '223.255.255.255']) assert.not.ok(isMartianDst4(parseIpv4(a)), a);
});

test('isMartianDst6: ::, ::1, ::ffff:0:0/96, fe80::/10, ff00::/8; not ::2, global, ULA, fec0::', () => {
  for (const a of ['::', '::1', '::ffff:7f00:1', '::ffff:0:0', 'fe80::1', 'febf:ffff::1', 'ff02::1', 'ff0e::1']) assert.ok(isMartianDst6(parseIpv6Bytes(a), 0), a);
  for (const a of ['::2', '::1:0:0:1', '::fffe:7f00:1', '2001:db8::1', 'fd00:10::5', 'fec0::1', 'fe7f::1', '64:ff9b::7f00:1']) assert.not.ok(isMartianDst6(parseIpv6Bytes(a), 0), a);
});

/** Pod A sends to `dst`: nothing goes to tx4, ICMP host unreachable comes back (unless `group`). */
function assertMartian4(h: Harness, dst: string, group: boolean): void {
  const a = h.port('caliA');
  const before = h.pipe.counters[Reason.MARTIAN_DST];
  const icmp = h.pipe.counters[Event.ICMP_SENT];
  h.receive(a, retarget(frame('a_to_b'), dst));
  if (group) nothingSent(h, `A -> ${dst}`);
  else {
    const out = onlyFrame(h, a, `A -> ${dst}: unreachable back to the pod`).bytes;
    assert.is(out[14 + 9], 1, `${dst}: ICMP`);
    assert.is(out[14 + 20], 3, `${dst}: destination unreachable`);
    assert.is(out[14 + 21], 1, `${dst}: host unreachable`);
    assert.is(h.pipe.counters[Event.ICMP_SENT], icmp + 1);
  }
  assert.is(h.pipe.counters[Reason.MARTIAN_DST], before + 1, `${dst}: counted martian_dst`);
}

test('IPv4: a pod\'s packet for loopback, 0/8, multicast, broadcast, reserved never reaches tx4; outside and 169.254 addresses still do', () => {
  const h = makeHarness();
  h.pipe.natSources.set(h.model.pools.filter((p) => p.cidr === '10.244.0.0/16'));
  assertMartian4(h, '127.0.0.1', false);
  assertMartian4(h, '127.1.2.3', false);
  assertMartian4(h, '0.0.0.0', false);
  assertMartian4(h, '240.0.0.1', true); // reserved: with the broadcast, no ICMP error
  assertMartian4(h, '224.0.0.251', true);
  assertMartian4(h, '255.255.255.255', true);
  const a = h.port('caliA');
  for (const dst of ['8.8.8.8', '169.254.169.254']) {
    h.receive(a, retarget(frame('a_to_b'), dst));
    assert.is(onlyFrame(h, h.infra.tx4, `A -> ${dst}`).addr, parseIpv4(dst));
  }
  assert.is(h.pipe.counters[Event.EGRESS_NAT], 2);
  assert.is(h.pipe.counters[Reason.MARTIAN_DST], 6);
  assert.is(h.pipe.counters[Reason.NO_ROUTE], 0);
});

test('IPv4: natOutgoing over a learned default route does not hand loopback to tx4 either', () => {
  const model = computeNodeModel(parseClusterYaml(CLUSTER_YAML, 'test-cluster.yaml'), 'node1', {
    bgp: { learned: [{ prefix: '0.0.0.0/0', nextHop: '10.99.0.254', peer: 'bgp tor' }] },
  });
  const h = makeHarness({ model, neighbors: { '10.99.0.254': '52:54:00:99:00:fe' } });
  h.pipe.natSources.set(model.pools.filter((p) => p.cidr === '10.244.0.0/16'));
  assertMartian4(h, '127.0.0.1', false);
  h.receive(h.port('caliA'), retarget(frame('a_to_b'), '8.8.8.8'));
  assert.is(onlyFrame(h, h.infra.tx4, 'A -> 8.8.8.8 over the default route').addr, parseIpv4('8.8.8.8'));
});

test('IPv4: without natOutgoing, a learned direct default route does not send loopback or 0/8 to its next hop (the ToR) either', () => {
  const model = computeNodeModel(parseClusterYaml(CLUSTER_YAML, 'test-cluster.yaml'), 'node1', {
    bgp: { learned: [{ prefix: '0.0.0.0/0', nextHop: '10.99.0.254', peer: 'bgp tor' }] },
  });
  const h = makeHarness({ model, neighbors: { '10.99.0.254': '52:54:00:99:00:fe' } });
  // no natSources: the route is taken as it is, unencapsulated, to the ToR's MAC
  assertMartian4(h, '127.0.0.1', false);
  assertMartian4(h, '0.1.2.3', false);
  assertMartian4(h, '240.0.0.1', true);
  assert.is(h.pipe.counters[Reason.MARTIAN_DST], 3);
  h.receive(h.port('caliA'), retarget(frame('a_to_b'), '8.8.8.8'));
  const out = onlyFrame(h, h.infra.underlay, 'A -> 8.8.8.8 over the default route, to the ToR').bytes;
  assert.equal([...out.subarray(0, 6)], [0x52, 0x54, 0x00, 0x99, 0x00, 0xfe]);
  assert.is(h.pipe.counters[Event.EGRESS_NAT], 0);
});

test('IPv6: a pod\'s packet for ::1, ::, fe80::/10, ::ffff:0:0/96 never reaches tx6: ICMPv6 unreachable, martian_dst; outside still goes out', () => {
  const h = makeHarness6();
  const tx6 = h.io.openRaw({ ipv6: true });
  h.pipe.setPort(tx6, Role.TX6, 'tx6(raw)');
  h.pipe.v6.tx6Port = tx6;
  (h.infra as Record<string, number>).tx6 = tx6;
  const a = h.port('caliA');
  let n = 0;
  for (const dst of ['::1', '::', 'fe80::1', '::ffff:7f00:1']) {
    const f = frame6('v6pipe_a_to_b');
    f.set(parseIpv6Bytes(dst), 14 + 24);
    h.receive(a, f);
    const out = onlyFrame(h, a, `A -> ${dst}: unreachable back to the pod`).bytes;
    assert.is(out[14 + 6], 58, `${dst}: ICMPv6`);
    assert.is(out[14 + 40], 1, `${dst}: destination unreachable`);
    assert.is(h.pipe.counters[Reason.MARTIAN_DST], ++n, `${dst}: counted martian_dst`);
  }
  const f = frame6('v6pipe_a_to_b');
  f.set(parseIpv6Bytes('2001:db8::1'), 14 + 24);
  h.receive(a, f);
  onlyFrame(h, tx6, 'A -> 2001:db8::1');
  assert.is(h.pipe.counters[Event.EGRESS], 1);
  assert.is(h.pipe.counters[Reason.NO_ROUTE], 0);
  // The gateway's link-local is the veth host end's own: the kernel has A's frame and answers
  // its echo (from A's global address or its link-local one); podway sends nothing.
  const toGw = frame6('v6pipe_a_to_b');
  toGw.set(parseIpv6Bytes('fe80::ecee:eeff:feee:eeee'), 14 + 24);
  h.receive(a, toGw);
  nothingSent(h, 'A -> the gateway\'s link-local: the kernel\'s');
  const fromLl = toGw.slice();
  fromLl.set(parseIpv6Bytes('fe80::285f:10ff:fe00:101'), 14 + 8);
  h.receive(a, fromLl);
  nothingSent(h, 'A (link-local) -> the gateway\'s link-local: the kernel\'s');
  assert.is(h.pipe.counters[Event.TO_HOST], 2);
  assert.is(h.pipe.counters[Reason.MARTIAN_DST], n, 'no martian_dst');
  assert.is(h.pipe.counters[Reason.SOURCE_CHECK], 0, 'no source_check');
  assert.is(h.pipe.counters[Event.ICMP_SENT], n);
  // A TUN pod has no host end owning that address: still martian, unreachable back
  const u = h.port('tunU');
  const uToGw = toGw.subarray(14).slice();
  uToGw.set(parseIpv6Bytes('fd00:10:244::4'), 8);
  h.receive(u, uToGw);
  onlyFrame(h, u, 'U -> the gateway\'s link-local: unreachable');
  assert.is(h.pipe.counters[Reason.MARTIAN_DST], n + 1);
});

test.run();
