// The forwarding pipeline on in-memory ports (no root, no addon): what leaves which port, byte for
// byte against the frames scapy built (pipe_* fixtures, scripts/gen-fixtures.py), and the counter
// every dropped frame lands in. The wiring is Engine's (see helpers.ts).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Reason, Event, PortCounter } from '../../src/dataplane/counters';
import { DescFlag } from '../../src/dataplane/frame-pool';
import { Drop, innerFlowHash, vxlanSourcePort, VXLAN_SRC_PORT_MIN, VXLAN_SRC_PORT_MAX, parseIpv4, parseMac, formatIpv4 } from '../../src/packet';
import {
  makeHarness, Harness, frame, build, learnTapMac, onlyFrame, nothingSent, assertBytes, adopt, ipHeaderChecksum, u16, fixIpChecksum, takeAll, onesSum,
  NODE1, NODE2, NODE1_MAC, NODE2_MAC, VTEP1_MAC, VTEP2_MAC, A, RV,
} from './helpers';

/**
 * A copy of `f` (Ethernet, IPv4 at 14 without options, TCP or UDP) sent from `src` instead, its
 * header checksum and its L4 checksum field recomputed from scratch: `partial`, the field holds
 * the pseudo-header sum alone (as a sender leaving the checksum to offload writes it), else the
 * complete checksum. The a_to_b fixtures are pod A's; tunnelled to this node they must come from
 * another node's pod (A's own address from the underlay is dropped, own_source).
 */
function fromSource(f: Uint8Array, src: number, partial: boolean): Uint8Array {
  const c = f.slice();
  c.set([src >>> 24, (src >>> 16) & 255, (src >>> 8) & 255, src & 255], 26);
  fixIpChecksum(c, 14);
  const proto = c[23];
  const len = u16(c, 16) - 20;
  const at = 34 + (proto === 6 ? 16 : 6);
  c[at] = 0;
  c[at + 1] = 0;
  const pseudo = onesSum(c, 26, 8, proto + len);
  let v = partial ? pseudo : 0xffff - onesSum(c, 34, len, pseudo);
  if (!partial && proto === 17 && v === 0) v = 0xffff;
  c[at] = v >> 8;
  c[at + 1] = v & 255;
  return c;
}

import { failNeighbor, learnNeighbor } from '../../src/dataplane/nexthops';
import { errnoName } from '../../src/dataplane/io';

const RESOLVED = { neighbors: { '10.99.0.2': NODE2_MAC } };
const PEER = { addr: NODE2 };

/** A copy of a pod's frame (IPv4 at 14) sent to another destination, header checksum fixed. */
function retarget(f: Uint8Array, dst: string): Uint8Array {
  const c = f.slice();
  const d = parseIpv4(dst);
  c.set([d >>> 24, (d >>> 16) & 255, (d >>> 8) & 255, d & 255], 30);
  fixIpChecksum(c, 14);
  return c;
}

// ---- ARP ---------------------------------------------------------------------------------------

test('ARP: a pod asking for 169.254.1.1 is answered on its own port with ee:ee:ee:ee:ee:ee', () => {
  const h = makeHarness();
  const a = h.port('caliA');
  h.receive(a, frame('arp_a_gw'));
  const out = onlyFrame(h, a, 'arp reply');
  assert.is(build('arp_a_gw_reply').from, 'pipe_arp_a_gw');
  assertBytes(out.bytes, frame('arp_a_gw_reply'), 'arp reply');
  assert.is(h.pipe.counters[Event.ARP_REPLIED], 1);
  assert.is(h.portCounter(a, PortCounter.TX), 1);
  assert.is(h.portCounter(a, PortCounter.RX), 1);
});

test('ARP: a request for another address is dropped as ARP_NOT_GATEWAY; malformed ARP is counted', () => {
  const h = makeHarness();
  const a = h.port('caliA');
  h.receive(a, frame('arp_a_b'));
  nothingSent(h, 'arp for pod B');
  assert.is(h.pipe.counters[Reason.ARP_NOT_GATEWAY], 1);
  assert.is(h.portCounter(a, PortCounter.DROPS), 1);
  // A reply from the pod to the gateway (op 2) nobody asked for: dropped, arp_reply_unsolicited,
  // not arp_learned (hostile review LOW 7).
  const reply = frame('arp_a_gw');
  reply[21] = 2;
  h.receive(a, reply);
  nothingSent(h, 'unsolicited arp reply from a pod');
  assert.is(h.pipe.counters[Reason.ARP_REPLY_UNSOLICITED], 1);
  assert.is(h.pipe.counters[Event.ARP_LEARNED], 0);
  assert.is(h.portCounter(a, PortCounter.DROPS), 2);
  // The answer to podway's request for its MAC (holdForPod, Engine.askPodMac): not answered, counted
  // arp_learned, not a drop; once only (a second reply is unsolicited again).
  h.pipe.podArpAskedAt[a] = h.pipe.batchNow();
  h.receive(a, reply);
  nothingSent(h, 'arp reply from a pod');
  assert.is(h.pipe.counters[Reason.ARP_NOT_GATEWAY], 1);
  assert.is(h.pipe.counters[Event.ARP_LEARNED], 1);
  assert.is(h.portCounter(a, PortCounter.DROPS), 2);
  h.receive(a, reply);
  assert.is(h.pipe.counters[Reason.ARP_REPLY_UNSOLICITED], 2);
  assert.is(h.pipe.counters[Event.ARP_LEARNED], 1);
  assert.is(h.portCounter(a, PortCounter.DROPS), 3);
  // A reply to another address is not ours: dropped.
  const other = frame('arp_a_b');
  other[21] = 2;
  h.receive(a, other);
  assert.is(h.pipe.counters[Reason.ARP_NOT_GATEWAY], 2);
  // Hardware address length 8: not Ethernet/IPv4 ARP.
  const badHlen = frame('arp_a_gw');
  badHlen[18] = 8;
  // Cut short: 20 of the 28 ARP bytes.
  const short = frame('arp_a_gw').subarray(0, 34);
  // Opcode 3 (RARP request): not ARP request or reply.
  const badOp = frame('arp_a_gw');
  badOp[21] = 3;
  h.receive(a, badHlen, short, badOp);
  nothingSent(h, 'malformed arp');
  assert.is(h.pipe.counters[Drop.BAD_ARP], 2);
  assert.is(h.pipe.counters[Drop.TOO_SHORT], 1);
  assert.is(h.pipe.counters[Event.ARP_REPLIED], 0);
  assert.is(h.portCounter(a, PortCounter.DROPS), 7); // 2 not_gateway, 2 unsolicited replies, 3 malformed
});

// ---- source check and local delivery ---------------------------------------------------------------

test('source check: a pod sending from an address not its own is dropped; its own address passes', () => {
  const h = makeHarness();
  h.receive(h.port('caliA'), frame('a_spoof'));
  nothingSent(h, 'spoofed');
  assert.is(h.pipe.counters[Reason.SOURCE_CHECK], 1);
  h.receive(h.port('caliA'), frame('a_to_b'));
  onlyFrame(h, h.port('caliB'), 'own address');
  assert.is(h.pipe.counters[Reason.SOURCE_CHECK], 1);
  // Pod B's address from pod A's port is spoofing too, though B is a real pod.
  const asB = frame('a_to_b');
  asB.set([10, 244, 0, 2], 26);
  asB.set([10, 244, 0, 1], 30);
  fixIpChecksum(asB, 14);
  h.receive(h.port('caliA'), asB);
  nothingSent(h, "B's address from A's port");
  assert.is(h.pipe.counters[Reason.SOURCE_CHECK], 2);
});

test('local delivery A -> B: MACs rewritten, TTL 63, header checksum as a full recompute gives', () => {
  const h = makeHarness();
  for (const name of ['a_to_b', 'a_to_b_csum_feff', 'a_to_b_csum_carry']) {
    h.receive(h.port('caliA'), frame(name));
    const out = onlyFrame(h, h.port('caliB'), name).bytes;
    assertBytes(out, frame(`${name}_out`), name);
    assert.is(out[22], 63, `${name}: ttl`);
    assert.is(u16(out, 24), ipHeaderChecksum(out, 14), `${name}: checksum equals a full recompute`);
  }
  // The edge cases are what the fixtures say they are: 0xfeff becomes 0x0000 (never 0xffff).
  assert.is(u16(frame('a_to_b_csum_feff'), 24), 0xfeff);
  assert.is(u16(frame('a_to_b_csum_feff_out'), 24), 0x0000);
  assert.is(h.portCounter(h.port('caliB'), PortCounter.TX), 3);
});

test('local delivery: IPv4 not sent to the gateway MAC is dropped (NOT_OUR_MAC)', () => {
  const h = makeHarness();
  const f = frame('a_to_b');
  f.set(parseMac('2a:5f:10:00:01:02'), 0);
  h.receive(h.port('caliA'), f);
  nothingSent(h, 'to B at L2');
  assert.is(h.pipe.counters[Reason.NOT_OUR_MAC], 1);
});

test('local delivery to a tap pod whose MAC is not known yet is dropped (POD_MAC_UNKNOWN), then delivered once it spoke', () => {
  const h = makeHarness();
  const t = h.port('tapT');
  const toT = retarget(frame('a_to_b'), '10.245.0.3');
  h.receive(h.port('caliA'), toT);
  nothingSent(h, 'to T before its MAC');
  assert.is(h.pipe.counters[Reason.POD_MAC_UNKNOWN], 1);
  learnTapMac(h);
  h.receive(h.port('caliA'), toT);
  const out = onlyFrame(h, t, 'to T').bytes;
  assertBytes(out.subarray(0, 12), new Uint8Array([...parseMac('2a:5f:10:00:01:03'), 0xee, 0xee, 0xee, 0xee, 0xee, 0xee]), 'MACs');
  assert.is(out[22], 63);
  assert.is(u16(out, 24), ipHeaderChecksum(out, 14));
});

// ---- encapsulation ------------------------------------------------------------------------------

/** Check a VXLAN packet (outer IPv4 at `ip` of `out`) against the expected frame's bytes from `ip - eth`. */
function checkVxlan(h: ReturnType<typeof makeHarness>, out: Uint8Array, ip: number, input: Uint8Array): void {
  const expected = frame('a_to_rv_vxlan').subarray(14 - ip);
  assert.equal(build('a_to_rv_vxlan').adopt, ['outer_id', 'vxlan_sport']);
  // podway picks the outer id and the UDP source port; everything else must be scapy's.
  assertBytes(out, adopt(expected, out, [[ip + 4, 2], [ip + 20, 2]], [ip]), 'vxlan frame');
  assert.is(u16(out, ip + 10), ipHeaderChecksum(out, ip), 'outer header checksum');
  // The source port is Linux's flow hash of the inner packet (podway's seed), in 32768..60999.
  const seed = (h.pipe as unknown as { flowSeed: number }).flowSeed;
  assert.type(seed, 'number');
  const sport = u16(out, ip + 20);
  assert.is(sport, vxlanSourcePort(innerFlowHash(input, 0, input.length, seed)), 'source port = flow hash');
  assert.ok(sport >= VXLAN_SRC_PORT_MIN && sport < VXLAN_SRC_PORT_MAX, `source port ${sport} in range`);
  // Spelled out: UDP 4789 checksum 0, VNI 4096 with the I flag, inner MACs the VTEPs'.
  assert.is(u16(out, ip + 22), 4789);
  assert.is(u16(out, ip + 26), 0);
  assert.is(out[ip + 28], 0x08);
  assert.is((out[ip + 32] << 16) | (out[ip + 33] << 8) | out[ip + 34], 4096);
}

test('VXLAN to a remote node, neighbour resolved: outer Ethernet to its MAC, out the underlay', () => {
  const h = makeHarness(RESOLVED);
  const input = frame('a_to_rv');
  h.receive(h.port('caliA'), input);
  const out = onlyFrame(h, h.infra.underlay, 'vxlan').bytes;
  checkVxlan(h, out, 14, input);
  assert.equal(h.unresolved, []);
  // A second packet: a new outer id (the outer header has no DF, so ids must differ), same port.
  h.receive(h.port('caliA'), input);
  const again = onlyFrame(h, h.infra.underlay, 'vxlan again').bytes;
  assert.is.not(u16(again, 18), u16(out, 18), 'outer ids differ');
  assert.is(u16(again, 34), u16(out, 34), 'same flow, same source port');
  checkVxlan(h, again, 14, input);
});

test('VXLAN, neighbour unresolved: the outer IPv4 packet goes to the kernel (tx4) with its destination, and ARP is asked for', () => {
  const h = makeHarness();
  const input = frame('a_to_rv');
  h.receive(h.port('caliA'), input);
  const out = onlyFrame(h, h.infra.tx4, 'vxlan via tx4');
  checkVxlan(h, out.bytes, 0, input);
  assert.is(out.addr, NODE2, 'raw socket destination');
  assert.equal(h.unresolved, [NODE2]);
  // The ARP reply arrives on the underlay: learned (nothing sent: the kernel has it too), and the
  // next packet leaves with our own outer Ethernet header.
  const reply = frame('arp_a_gw_reply');
  reply.set(parseMac(NODE1_MAC), 0);
  reply.set(parseMac(NODE2_MAC), 6);
  reply.set(parseMac(NODE2_MAC), 22);
  reply.set([10, 99, 0, 2], 28);
  reply.set(parseMac(NODE1_MAC), 32);
  reply.set([10, 99, 0, 1], 38);
  h.receive(h.infra.underlay, reply);
  nothingSent(h, 'arp reply on the underlay');
  h.receive(h.port('caliA'), input);
  checkVxlan(h, onlyFrame(h, h.infra.underlay, 'vxlan after ARP').bytes, 14, input);
});

test('VXLAN through an underlay gateway: outer Ethernet to the gateway MAC, outer IPv4 still to the node', () => {
  const gwMac = '52:54:00:99:00:fe';
  const h = makeHarness({ gateways: { '10.99.0.2': '10.99.0.254' }, neighbors: { '10.99.0.254': gwMac } });
  const input = frame('a_to_rv');
  h.receive(h.port('caliA'), input);
  const out = onlyFrame(h, h.infra.underlay, 'vxlan via gateway').bytes;
  const expected = frame('a_to_rv_vxlan');
  expected.set(parseMac(gwMac), 0);
  assertBytes(out, adopt(expected, out, [[18, 2], [34, 2]], [14]), 'vxlan via gateway');
  assert.is(formatIpv4(((out[30] << 24) | (out[31] << 16) | (out[32] << 8) | out[33]) >>> 0), '10.99.0.2');
});

test('IPIP to a remote node: protocol 4, outer TTL the inner one once forwarded (tunl0: ttl inherit), DF copied from the inner header', () => {
  const h = makeHarness(RESOLVED);
  h.receive(h.port('tapT'), frame('t_to_ri'));
  const out = onlyFrame(h, h.infra.underlay, 'ipip').bytes;
  assert.equal(build('t_to_ri_ipip').adopt, ['outer_id']);
  assertBytes(out, adopt(frame('t_to_ri_ipip'), out, [[18, 2]], [14]), 'ipip frame');
  assert.is(out[23], 4);
  assert.is(out[22], 63, 'outer TTL: the inner 64 less the hop (tunl0 inherits it)');
  assert.is(u16(out, 24), ipHeaderChecksum(out, 14));
  // Unresolved: the same packet without Ethernet through the kernel.
  const h2 = makeHarness();
  h2.receive(h2.port('tapT'), frame('t_to_ri'));
  const raw = onlyFrame(h2, h2.infra.tx4, 'ipip via tx4');
  assertBytes(raw.bytes, adopt(frame('t_to_ri_ipip').subarray(14), raw.bytes, [[4, 2]], [0]), 'ipip via tx4');
  assert.is(raw.addr, NODE2);
  assert.equal(h2.unresolved, [NODE2]);
});

test('direct (unencapsulated) route from a tun pod: out the underlay to the node MAC; unresolved, without a pending queue (the engine has one: neighbor-queue tests), is dropped and resolution asked', () => {
  const h = makeHarness(RESOLVED);
  h.receive(h.port('tunU'), frame('u_to_rd').subarray(14));
  assertBytes(onlyFrame(h, h.infra.underlay, 'direct').bytes, frame('u_to_rd_direct'), 'direct frame');
  const h2 = makeHarness();
  h2.receive(h2.port('tunU'), frame('u_to_rd').subarray(14));
  nothingSent(h2, 'direct unresolved');
  assert.is(h2.pipe.counters[Reason.NEIGHBOR_UNRESOLVED], 1);
  assert.equal(h2.unresolved, [NODE2]);
});

test('a failed underlay neighbour: IPIP and direct traffic through it is dropped as neighbor_failed (not sent to the kernel) and still asks the table; an answer restores it', () => {
  const h = makeHarness(RESOLVED);
  assert.ok(failNeighbor(h.pipe.nh, NODE2) > 0);
  h.receive(h.port('tapT'), frame('t_to_ri'));
  h.receive(h.port('tunU'), frame('u_to_rd').subarray(14));
  nothingSent(h, 'failed neighbour');
  assert.is(h.pipe.counters[Reason.NEIGHBOR_FAILED], 2);
  assert.equal(h.unresolved, [NODE2, NODE2], 'each packet asks the table (it rate-limits and backs off)');
  learnNeighbor(h.pipe.nh, NODE2, parseMac(NODE2_MAC), 0);
  h.receive(h.port('tapT'), frame('t_to_ri'));
  onlyFrame(h, h.infra.underlay, 'ipip after the neighbour answered');
});

test('ARP on the underlay: a reply is a reply, a request or a gratuitous ARP is an announcement, malformed ARP is counted', () => {
  const h = makeHarness(RESOLVED);
  const replies: number[] = [];
  const announced: [number, boolean][] = [];
  h.pipe.onNeighbor = (ip) => replies.push(ip);
  h.pipe.onNeighborAnnounce = (ip, _b, _off, g) => announced.push([ip, g]);
  const arp = (op: number, spa: number, tpa: number): Uint8Array => {
    const f = new Uint8Array(60);
    f.fill(0xff, 0, 6);
    f.set(parseMac(NODE2_MAC), 6);
    f[12] = 0x08; f[13] = 0x06;
    f.set([0, 1, 0x08, 0, 6, 4, 0, op], 14);
    f.set(parseMac(NODE2_MAC), 22);
    f.set([spa >>> 24, (spa >>> 16) & 255, (spa >>> 8) & 255, spa & 255], 28);
    f.set([tpa >>> 24, (tpa >>> 16) & 255, (tpa >>> 8) & 255, tpa & 255], 38);
    return f;
  };
  h.receive(h.infra.underlay, arp(2, NODE2, NODE1), arp(1, NODE2, NODE1), arp(1, NODE2, NODE2), arp(2, NODE2, NODE2));
  assert.equal(replies, [NODE2]);
  assert.equal(announced, [[NODE2, false], [NODE2, true], [NODE2, true]]);
  const bad = arp(3, NODE2, NODE2);
  h.receive(h.infra.underlay, bad);
  assert.is(h.pipe.counters[Drop.BAD_ARP], 1, 'malformed ARP counted');
  assert.is(replies.length + announced.length, 4, 'and not learned from');
});

// ---- decapsulation ------------------------------------------------------------------------------

test('VXLAN from a known node to a local pod is delivered (TTL 62, pod MACs)', () => {
  const h = makeHarness();
  h.receive(h.infra.vxlan, { bytes: frame('vxlan_rv_to_a').subarray(42), addr: NODE2, aport: 50000 });
  assertBytes(onlyFrame(h, h.port('caliA'), 'decap').bytes, frame('vxlan_rv_to_a_out'), 'decapsulated');
});

test('VXLAN drops: unknown source, wrong VNI, no I flag, not a local destination, blackhole', () => {
  const h = makeHarness();
  const payload = () => frame('vxlan_rv_to_a').subarray(42).slice();
  h.receive(h.infra.vxlan, { bytes: payload(), addr: parseIpv4('10.99.0.77') });
  assert.is(h.pipe.counters[Reason.UNKNOWN_TUNNEL_SOURCE], 1);
  const vni = payload();
  vni[6] = 0x01; // VNI 4097
  h.receive(h.infra.vxlan, { bytes: vni, addr: NODE2 });
  assert.is(h.pipe.counters[Drop.BAD_VNI], 1);
  const flags = payload();
  flags[0] = 0;
  h.receive(h.infra.vxlan, { bytes: flags, addr: NODE2 });
  assert.is(h.pipe.counters[Drop.BAD_VXLAN_FLAGS], 1);
  h.receive(h.infra.vxlan, { bytes: frame('vxlan_rv_to_rv2').subarray(42), addr: NODE2 });
  assert.is(h.pipe.counters[Reason.DECAP_NOT_LOCAL], 1);
  h.receive(h.infra.vxlan, { bytes: frame('vxlan_rv_to_hole').subarray(42), addr: NODE2 });
  assert.is(h.pipe.counters[Reason.BLACKHOLE], 1);
  // A corrupted inner header checksum.
  const csum = payload();
  csum[8 + 14 + 10] ^= 0xff;
  h.receive(h.infra.vxlan, { bytes: csum, addr: NODE2 });
  assert.is(h.pipe.counters[Drop.BAD_CHECKSUM], 1);
  nothingSent(h, 'vxlan drops');
  assert.is(h.portCounter(h.infra.vxlan, PortCounter.DROPS), 6);
});

test('IPIP from a known node to the tap pod: delivered once its MAC is learned; unknown source dropped', () => {
  const h = makeHarness();
  const packet = frame('ipip_ri_to_t').subarray(14);
  h.receive(h.infra.ipip, { bytes: packet, addr: NODE2 });
  nothingSent(h, 'before T spoke');
  assert.is(h.pipe.counters[Reason.POD_MAC_UNKNOWN], 1);
  learnTapMac(h);
  h.receive(h.infra.ipip, { bytes: packet, addr: NODE2 });
  assertBytes(onlyFrame(h, h.port('tapT'), 'ipip decap').bytes, frame('ipip_ri_to_t_out'), 'ipip decapsulated');
  h.receive(h.infra.ipip, { bytes: packet, addr: parseIpv4('10.99.0.9') });
  nothingSent(h, 'ipip from a stranger');
  assert.is(h.pipe.counters[Reason.UNKNOWN_TUNNEL_SOURCE], 1);
});

test('VXLAN and IPIP on the underlay port (engine: tunnels on the underlay): decapsulated as from the sockets; no checksum guessing there', () => {
  const h = makeHarness();
  // the whole frame as the underlay packet socket hands it over: outer Ethernet, IPv4, UDP, VXLAN
  h.receive(h.infra.underlay, frame('vxlan_rv_to_a'));
  assertBytes(onlyFrame(h, h.port('caliA'), 'vxlan on the underlay').bytes, frame('vxlan_rv_to_a_out'), 'decapsulated');
  learnTapMac(h);
  h.receive(h.infra.underlay, frame('ipip_ri_to_t'));
  assertBytes(onlyFrame(h, h.port('tapT'), 'ipip on the underlay').bytes, frame('ipip_ri_to_t_out'), 'ipip decapsulated');
  // drops, counted as on the sockets: a stranger, a wrong VNI, a fragment
  const stranger = frame('vxlan_rv_to_a');
  stranger.set([10, 99, 0, 77], 26);
  fixIpChecksum(stranger, 14);
  h.receive(h.infra.underlay, stranger);
  assert.is(h.pipe.counters[Reason.UNKNOWN_TUNNEL_SOURCE], 1);
  const vni = frame('vxlan_rv_to_a');
  vni[42 + 6] = 0x01;
  h.receive(h.infra.underlay, vni);
  assert.is(h.pipe.counters[Drop.BAD_VNI], 1);
  const frag = frame('vxlan_rv_to_a');
  frag[20] |= 0x20; // MF: the first fragment of a datagram the kernel would have reassembled
  fixIpChecksum(frag, 14);
  h.receive(h.infra.underlay, frag);
  assert.is(h.pipe.counters[Drop.FRAGMENT], 1);
  nothingSent(h, 'underlay tunnel drops');
  assert.is(h.portCounter(h.infra.underlay, PortCounter.DROPS), 3);
  // An inner checksum equal to its pseudo-header sum is left alone here: on this port the kernel's
  // metadata says what is partial (native/gso.c completed it), nothing is guessed.
  const name = 'a_to_b_partial_tcp_out';
  const partial = fromSource(Uint8Array.from(Buffer.from(build(name).input_hex, 'hex')), RV, true);
  const outer = frame('vxlan_rv_to_a');
  const f = new Uint8Array(50 + partial.length);
  f.set(outer.subarray(0, 50));
  f.set(partial, 50);
  // inner MACs as a kernel node writes them: to our VTEP MAC (vxlanInnerMacOk), from its own
  f.set(parseMac(VTEP1_MAC), 50);
  f.set(parseMac(VTEP2_MAC), 56);
  f[16] = (f.length - 14) >> 8; f[17] = (f.length - 14) & 255; fixIpChecksum(f, 14);
  f[38] = (f.length - 34) >> 8; f[39] = (f.length - 34) & 255; f[40] = f[41] = 0;
  h.receive(h.infra.underlay, f);
  const got = onlyFrame(h, h.port('caliB'), 'partial inner checksum on the underlay').bytes;
  assert.is(u16(got, 34 + 16), u16(partial, 34 + 16), 'not completed in JS');
  assert.is(h.pipe.counters[Event.CSUM_COMPLETED], 0);
});

test('underlay: unencapsulated pool traffic for a local tun pod is delivered; other frames are left to the kernel', () => {
  const h = makeHarness();
  h.receive(h.infra.underlay, frame('underlay_rd_to_u'));
  const out = onlyFrame(h, h.port('tunU'), 'underlay to tun').bytes;
  assert.is(build('underlay_rd_to_u_out').l3, true);
  assertBytes(out, frame('underlay_rd_to_u_out').subarray(14), 'delivered to U');
  // Another host's unicast and traffic for the node itself: not ours, not counted as drops.
  const other = frame('underlay_rd_to_u');
  other[5] = 0x77;
  h.receive(h.infra.underlay, other, retarget(frame('underlay_rd_to_u'), '10.99.0.1'));
  nothingSent(h, 'not for pods');
  assert.is(h.pipe.counters[Reason.UNDERLAY_NOT_FOR_PODS], 1);
  assert.is(h.portCounter(h.infra.underlay, PortCounter.DROPS), 0);
  // For an unallocated address of our block: blackhole.
  h.receive(h.infra.underlay, retarget(frame('underlay_rd_to_u'), '10.246.0.9'));
  nothingSent(h, 'blackhole');
  assert.is(h.pipe.counters[Reason.BLACKHOLE], 1);
});

// ---- the node's own traffic and egress ------------------------------------------------------------

test('host port: the node reaches a pod with its TTL unchanged; a tap pod reaches the node through it, a veth pod through the kernel', () => {
  const h = makeHarness();
  h.receive(h.infra.host, frame('host_to_a').subarray(14));
  assertBytes(onlyFrame(h, h.port('caliA'), 'host to A').bytes, frame('host_to_a_out'), 'host to A');
  // Tap pod T to the node IP: into the host port, untouched.
  const tToNode = retarget(frame('t_to_ri'), '10.99.0.1');
  h.receive(h.port('tapT'), tToNode);
  assertBytes(onlyFrame(h, h.infra.host, 'T to the node').bytes, tToNode.subarray(14), 'T to the node');
  // Veth pod A to the node IP: the node's kernel got the frame from the veth already.
  h.receive(h.port('caliA'), retarget(frame('a_to_b'), '10.99.0.1'));
  nothingSent(h, 'A to the node');
  assert.is(h.pipe.counters[Event.TO_HOST], 2);
});

/**
 * Pod A's a_to_b retargeted to `dst`, received on caliA: the one packet handed to the kernel (tx4)
 * is its IPv4 part with TTL 64 - 1 and the checksum to match (`what` names the case).
 */
function assertEgressToKernel(h: Harness, dst: string, what: string, message: string): ReturnType<typeof onlyFrame> {
  const f = retarget(frame('a_to_b'), dst);
  h.receive(h.port('caliA'), f);
  const out = onlyFrame(h, h.infra.tx4, what);
  const expected = f.slice(14);
  expected[8] = 63;
  fixIpChecksum(expected, 0);
  assertBytes(out.bytes, expected, message);
  return out;
}

test('egress outside the pools goes to the kernel (tx4) with TTL - 1; a pool address without a route is dropped', () => {
  const h = makeHarness();
  const out = assertEgressToKernel(h, '8.8.8.8', 'egress', 'egress packet');
  assert.is(out.addr, parseIpv4('8.8.8.8'));
  assert.is(h.pipe.counters[Event.EGRESS], 1);
  h.receive(h.port('caliA'), retarget(frame('a_to_b'), '10.244.1.5'));
  nothingSent(h, 'pool address without route');
  assert.is(h.pipe.counters[Reason.NO_ROUTE], 1);
});

test('the node\'s other addresses (its local table): a veth pod\'s packet for one is left to the kernel, which has its frame (to_host, no copy through tx4); a tap pod\'s goes through tx4; loopback stays martian_dst; a changed set is followed', () => {
  const h = makeHarness();
  // before the set holds it: podway's copy through the node's routing (the duplicate)
  assertEgressToKernel(h, '169.254.20.10', 'not known as the node\'s', 'through tx4');
  assert.is(h.pipe.counters[Event.EGRESS], 1);
  h.pipe.local4.set(['10.99.0.1', '127.0.0.0/8', '127.0.0.1', '169.254.20.10', '172.17.0.1', '192.0.2.0/24']);
  for (const dst of ['169.254.20.10', '172.17.0.1', '192.0.2.77']) {
    h.receive(h.port('caliA'), retarget(frame('a_to_b'), dst));
    nothingSent(h, `veth pod A -> ${dst}`);
  }
  assert.is(h.pipe.counters[Event.TO_HOST], 3, 'counted to_host, as for the node\'s main address');
  assert.is(h.pipe.counters[Event.EGRESS], 1, 'none handed to the node\'s routing');
  // TTL 1: the kernel delivers it (local delivery), podway answers nothing
  const ttl1 = retarget(frame('a_to_b'), '169.254.20.10');
  ttl1[22] = 1;
  fixIpChecksum(ttl1, 14);
  h.receive(h.port('caliA'), ttl1);
  nothingSent(h, 'TTL 1 to a node address');
  assert.is(h.pipe.counters[Event.TO_HOST], 4);
  // a tap pod's frame reaches only podway: its copy through the node's routing is the one delivery
  const t = retarget(frame('t_to_ri'), '169.254.20.10');
  h.receive(h.port('tapT'), t);
  assert.is(onlyFrame(h, h.infra.tx4, 'tap pod T -> 169.254.20.10').addr, parseIpv4('169.254.20.10'));
  assert.is(h.pipe.counters[Event.TO_HOST], 4);
  // loopback (in the local table) is never a pod's: martian_dst as before
  h.receive(h.port('caliA'), retarget(frame('a_to_b'), '127.0.0.1'));
  assert.is(h.pipe.counters[Reason.MARTIAN_DST], 1, '127.0.0.1: martian_dst');
  onlyFrame(h, h.port('caliA'), 'ICMP host unreachable back to A');
  // the address gone from the node: podway's copy again
  h.pipe.local4.set(['10.99.0.1']);
  assertEgressToKernel(h, '169.254.20.10', 'gone from the node', 'through tx4 again');
  assert.is(h.pipe.counters[Event.TO_HOST], 4);
});

test('egress from a natOutgoing pool leaves unchanged for the kernel to masquerade, counted as egress_nat; to another node too (Felix\'s natOutgoingExclusions IPPoolsOnly), but counted egress (the table masquerades only what the pod opens there), as with IPPoolsAndHostIPs', () => {
  const h = makeHarness();
  h.pipe.natSources.set(h.model.pools);
  assertEgressToKernel(h, '8.8.8.8', 'nat egress', 'podway leaves the translation to the kernel');
  assert.is(h.pipe.counters[Event.EGRESS_NAT], 1);
  assert.is(h.pipe.counters[Event.EGRESS], 0);
  const otherNode = [...h.model.node.knownNodeIps].find((ip) => ip !== h.model.node.ip)!;
  h.receive(h.port('caliA'), retarget(frame('a_to_b'), formatIpv4(otherNode)));
  onlyFrame(h, h.infra.tx4, 'to a node');
  // another node's address is outside every pool, but the table masquerades only the TCP
  // connections and pings the pod opens there (this UDP datagram keeps the pod's address):
  // egress_nat counts only what the table masquerades
  assert.is(h.pipe.counters[Event.EGRESS_NAT], 1, 'to another node (IPPoolsOnly): not egress_nat');
  assert.is(h.pipe.counters[Event.EGRESS], 1);
  h.pipe.natToNodes = false; // --nat-outgoing-exclusions IPPoolsAndHostIPs
  h.receive(h.port('caliA'), retarget(frame('a_to_b'), formatIpv4(otherNode)));
  onlyFrame(h, h.infra.tx4, 'to a node, hosts excluded');
  assert.is(h.pipe.counters[Event.EGRESS], 2, 'IPPoolsAndHostIPs: a node address is not NATed');
  assert.is(h.pipe.counters[Event.EGRESS_NAT], 1);
  h.pipe.natToNodes = true;
  h.pipe.natSources.set([]);
  h.receive(h.port('caliA'), retarget(frame('a_to_b'), '8.8.8.8'));
  onlyFrame(h, h.infra.tx4, 'flag off');
  assert.is(h.pipe.counters[Event.EGRESS], 3);
  assert.is(h.pipe.counters[Event.EGRESS_NAT], 1);
});

// ---- receive flags -------------------------------------------------------------------------------

test('truncated frames (flag from the port, or longer than a slot) are counted and dropped', () => {
  const h = makeHarness();
  const a = h.port('caliA');
  const long = new Uint8Array(2000);
  long.set(frame('a_to_b'));
  h.receive(a, { bytes: frame('a_to_b'), flags: DescFlag.TRUNCATED }, long);
  nothingSent(h, 'truncated');
  assert.is(h.pipe.counters[Reason.TRUNCATED], 2);
  assert.is(h.io.stats(a).rxTruncated, 1);
  assert.is(h.portCounter(a, PortCounter.DROPS), 2);
});

test('partial L4 checksums (CSUM_PARTIAL) are completed as scapy computes them, for TCP and UDP', () => {
  const h = makeHarness();
  for (const proto of ['tcp', 'udp']) {
    const name = `a_to_b_partial_${proto}_out`;
    const input = Uint8Array.from(Buffer.from(build(name).input_hex, 'hex'));
    const expected = frame(name);
    // The input really is partial: its L4 checksum field differs from the final one.
    const at = 34 + (proto === 'tcp' ? 16 : 6);
    assert.is.not(u16(input, at), u16(expected, at), `${proto}: input is partial`);
    h.receive(h.port('caliA'), { bytes: input, flags: DescFlag.CSUM_PARTIAL });
    assertBytes(onlyFrame(h, h.port('caliB'), proto).bytes, expected, `${proto} completed`);
  }
  // ICMP has no offloadable checksum: a partial flag on it cannot be completed.
  h.receive(h.port('caliA'), { bytes: frame('a_ttl1_icmperr'), flags: DescFlag.CSUM_PARTIAL });
  nothingSent(h, 'partial icmp');
  assert.is(h.pipe.counters[Reason.BAD_PARTIAL_CSUM], 1);
});

test('tunnelled TCP/UDP with a partial checksum (a kernel node on the same host) is completed; a right checksum is left alone', () => {
  const vxlan = (inner: Uint8Array) => {
    const v = new Uint8Array(8 + inner.length);
    v[0] = 0x08; v[4] = 0x00; v[5] = 0x10; v[6] = 0x00; // I flag, VNI 4096
    v.set(inner, 8);
    // inner MACs as a kernel node writes them: to our VTEP MAC (vxlanInnerMacOk), from its own
    v.set(parseMac(VTEP1_MAC), 8);
    v.set(parseMac(VTEP2_MAC), 14);
    return v;
  };
  for (const proto of ['tcp', 'udp']) {
    const h = makeHarness();
    const name = `a_to_b_partial_${proto}_out`;
    const partial = fromSource(Uint8Array.from(Buffer.from(build(name).input_hex, 'hex')), RV, true);
    const expected = fromSource(frame(name), RV, false);
    assert.is(u16(fromSource(frame(name), A, false), 34 + (proto === 'tcp' ? 16 : 6)), u16(frame(name), 34 + (proto === 'tcp' ? 16 : 6)), 'fromSource computes the checksum scapy did');
    h.receive(h.infra.vxlan, { bytes: vxlan(partial), addr: NODE2, aport: 50000 });
    assertBytes(onlyFrame(h, h.port('caliB'), `${proto} decap`).bytes, expected, `${proto}: completed on decap`);
    assert.is(h.pipe.counters[Event.CSUM_COMPLETED], 1);
    // the delivered frame again (right checksum, TTL one lower): only the TTL and IP checksum change
    h.receive(h.infra.vxlan, { bytes: vxlan(expected), addr: NODE2, aport: 50000 });
    const again = onlyFrame(h, h.port('caliB'), `${proto} decap of a complete packet`).bytes;
    const at = 34 + (proto === 'tcp' ? 16 : 6);
    assert.is(u16(again, at), u16(expected, at), `${proto}: a right checksum is unchanged`);
    assert.is(h.pipe.counters[Event.CSUM_COMPLETED], 1, 'not counted as completed');
  }
});

// ---- fault isolation -------------------------------------------------------------------------------

test('a send refused by one output port costs only that port: the batch\'s other frames go out', () => {
  const h = makeHarness(RESOLVED);
  const a = h.port('caliA');
  const b = h.port('caliB');
  h.io.failNext(b, 'send', 'ERANGE');
  h.io.inject(a, frame('a_to_b'), frame('a_to_rv'), frame('arp_a_gw'), frame('a_to_b'));
  assert.not.throws(() => h.pipe.drain(a));
  const sent = takeAll(h);
  assert.equal([...sent.keys()].sort(), [a, h.infra.underlay].sort(), 'underlay and A sent; B refused');
  assert.is(sent.get(h.infra.underlay)!.length, 1);
  assertBytes(sent.get(a)![0].bytes, frame('arp_a_gw_reply'), 'arp reply in the same batch');
  assert.is(h.portCounter(b, PortCounter.DROPS), 2);
  assert.is(h.portCounter(b, PortCounter.TX_ERRORS), 1);
  assert.is(h.portCounter(b, PortCounter.TX), 0);
  assert.is(h.pipe.counters[Reason.TX_ERROR], 2);
  assert.is(h.portCounter(h.infra.underlay, PortCounter.TX), 1);
  assert.is(h.portCounter(a, PortCounter.TX), 1);
  assert.equal(h.portErrors, [{ port: b, op: 'send', code: 'ERANGE' }]);
  // The fault was one call: the next batch reaches B.
  h.receive(a, frame('a_to_b'));
  assertBytes(onlyFrame(h, b, 'after the fault').bytes, frame('a_to_b_out'), 'after the fault');
  assert.is(h.portCounter(b, PortCounter.TX), 1);
});

test('harness sanity: A is 10.244.0.1 on caliA with its declared MAC, node IP 10.99.0.1', () => {
  const h = makeHarness();
  const a = h.port('caliA');
  assert.is(h.pipe.podIps[a * 4], A);
  assert.is(h.pipe.podMacKnown[a], 1);
  assert.is(h.pipe.addr.nodeIp, NODE1);
  assert.ok(h.pipe.addr.knownNodes.has(NODE2));
});

test('a stated pod MAC (spec.mac) is checked against the pod\'s first frame: a different source MAC (the veth made again) replaces it', () => {
  const h = makeHarness();
  const a = h.port('caliA');
  const stated = [...h.pipe.podMac.subarray(a * 6, a * 6 + 6)];
  const f = frame('a_to_b').slice();
  const fresh = [0x02, 0, 0, 0, 0, 0x99];
  assert.not.equal(fresh, stated);
  f.set(fresh, 6);
  h.receive(a, f);
  assert.equal([...h.pipe.podMac.subarray(a * 6, a * 6 + 6)], fresh, 'learned from the pod\'s frame');
  assert.is(h.pipe.podMacCheck[a], 0, 'checked once, not per frame');
  // the stated MAC again (a model with spec.mac): checked again by the next frame
  h.pipe.updatePort(a, [A], Uint8Array.from(stated));
  h.receive(a, f);
  assert.equal([...h.pipe.podMac.subarray(a * 6, a * 6 + 6)], fresh);
});

test('one JS call per wake-up: poll with recvMax hands the pipeline its first batch, drainReceived forwards it and drains the rest', () => {
  const h = makeHarness({ ...RESOLVED, batch: 2 });
  const a = h.port('caliA');
  const statuses: number[] = [];
  h.io.poll(a, (p, n) => {
    statuses.push(n);
    if (n >= 0) h.pipe.drainReceived(p, n);
  }, h.pipe.batch);
  h.io.inject(a, frame('a_to_b'), frame('a_to_b'), frame('a_to_b'), frame('a_to_b'), frame('a_to_b'));
  assert.is(h.io.pump(), 1, 'one callback drained all five (a full first batch, then recv)');
  assert.equal(statuses, [2], 'the first batch came with the call');
  const b = h.port('caliB');
  assert.is(takeAll(h).get(b)?.length, 5, 'all five forwarded to B');
  assert.is(h.io.stats(a).rxCalls, 3, 'recv calls: the I/O layer\'s (2 frames), then the pipeline\'s (2, then 1: not full, done)');
  // a receive that fails reaches the callback as -errno, named as the addon would
  h.io.failNext(a, 'recv', 'ENETDOWN');
  assert.is(h.io.pump(), 1);
  assert.ok(statuses[1] < 0, `status ${statuses[1]}`);
  assert.is(errnoName(statuses[1]), 'ENETDOWN');
  assert.throws(() => h.io.poll(a, () => {}, 0), /recvMax/);
});

test.run();
