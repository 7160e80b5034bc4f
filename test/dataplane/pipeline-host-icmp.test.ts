// ICMP errors podway sends to its own node and the sources it gives them (review Q, HIGH 1): into
// the host port (podway0) an error about the node's own packet comes from that packet's
// destination, never from the node's own address, which the node's kernel drops as a martian
// (accept_local=0) or a reverse-path check refuses; routed back through a VXLAN tunnel an error
// comes from the node's VXLAN tunnel address, as a Calico node's kernel picks it for a route
// through vxlan.calico, and from the node's address on any other way back.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Reason, Event } from '../../src/dataplane/counters';
import { parseIpv4, formatIpv4 } from '../../src/packet';
import { parseIpv6Bytes } from '../../src/packet/ipv6';
import { makeHarness, frame, onlyFrame, ipHeaderChecksum, onesSum, u16, fixIpChecksum, NODE1, NODE2, NODE2_MAC, RV, T } from './helpers';
import { makeHarness6, RV6, NODE2_6, NODE2_MAC6 } from './helpers6';

const RESOLVED = { neighbors: { '10.99.0.2': NODE2_MAC } };
const ip4 = (b: Uint8Array, off: number) => formatIpv4(((b[off] << 24) | (b[off + 1] << 16) | (b[off + 2] << 8) | b[off + 3]) >>> 0);
const hex = (b: Uint8Array, off = 0, n = b.length - off) => Buffer.from(b.subarray(off, off + n)).toString('hex');

/** A bare IPv4 UDP packet (as the node's kernel writes into the TUN), `total` bytes, DF set. */
function udp4(src: number, dst: number, total: number): Uint8Array {
  const f = new Uint8Array(total);
  f[0] = 0x45; f[2] = total >> 8; f[3] = total & 255; f[6] = 0x40; f[8] = 64; f[9] = 17;
  for (let k = 0; k < 4; k++) { f[12 + k] = (src >>> (24 - 8 * k)) & 255; f[16 + k] = (dst >>> (24 - 8 * k)) & 255; }
  f[20] = 0x9c; f[21] = 0x40; f[22] = 0x82; f[23] = 0x9a; // ports 40000 -> 33434 (traceroute's)
  f[24] = (total - 20) >> 8; f[25] = (total - 20) & 255; // UDP checksum 0: none
  fixIpChecksum(f, 0);
  return f;
}

/** A bare IPv6 UDP packet of `total` bytes. */
function udp6(src: string, dst: string, total: number): Uint8Array {
  const f = new Uint8Array(total);
  f[0] = 0x60; f[4] = (total - 40) >> 8; f[5] = (total - 40) & 255; f[6] = 17; f[7] = 64;
  f.set(parseIpv6Bytes(src), 8);
  f.set(parseIpv6Bytes(dst), 24);
  f[40] = 0x9c; f[41] = 0x40; f[42] = 0x82; f[43] = 0x9a;
  f[44] = (total - 40) >> 8; f[45] = (total - 40) & 255; f[46] = 0xff; f[47] = 0xff; // any checksum: never checked on the way
  return f;
}

function icmp6Sum(b: Uint8Array, ip: number): number {
  const len = u16(b, ip + 4);
  let s = len + 58;
  for (let k = 8; k < 40; k += 2) s += u16(b, ip + k);
  return onesSum(b, ip + 40, len, s);
}

test('the node\'s DF packet too big for the VXLAN route: fragmentation needed into podway0 from the packet\'s destination (not the node\'s own address), mtu 1450; at 1450 it goes', () => {
  const h = makeHarness(RESOLVED);
  const big = udp4(NODE1, RV, 1451);
  h.receive(h.infra.host, big.slice());
  const out = onlyFrame(h, h.infra.host, 'frag needed into podway0').bytes;
  assert.is(out[0], 0x45, 'a bare IPv4 packet (TUN)');
  assert.is(out[9], 1, 'ICMP');
  assert.is(ip4(out, 12), formatIpv4(RV), 'from the destination the node sent to');
  assert.is(ip4(out, 16), formatIpv4(NODE1), 'to the node');
  assert.equal([out[20], out[21]], [3, 4], 'fragmentation needed');
  assert.is(u16(out, 26), 1450, 'the VXLAN route\'s MTU');
  assert.is(hex(out, 28, 28), hex(big, 0, 28), 'quoting the packet');
  assert.is(u16(out, 10), ipHeaderChecksum(out, 0), 'header checksum');
  assert.is(onesSum(out, 20, u16(out, 2) - 20), 0xffff, 'icmp checksum');
  assert.is(h.pipe.counters[Reason.FRAG_NEEDED], 1);
  assert.is(h.pipe.counters[Event.ICMP_SENT], 1);
  h.receive(h.infra.host, udp4(NODE1, RV, 1450));
  onlyFrame(h, h.infra.underlay, 'the 1450-byte packet goes over VXLAN');
});

test('the node\'s DF packet bigger than its TAP pod\'s MTU: fragmentation needed into podway0 from the pod\'s address, with the pod\'s MTU', () => {
  const h = makeHarness(RESOLVED);
  h.pipe.portMtu[h.port('tapT')] = 1400;
  h.receive(h.infra.host, udp4(NODE1, T, 1401));
  const out = onlyFrame(h, h.infra.host, 'frag needed into podway0').bytes;
  assert.is(ip4(out, 12), formatIpv4(T), 'from the pod');
  assert.is(ip4(out, 16), formatIpv4(NODE1));
  assert.equal([out[20], out[21]], [3, 4]);
  assert.is(u16(out, 26), 1400);
  assert.is(onesSum(out, 20, u16(out, 2) - 20), 0xffff, 'icmp checksum');
});

test('IPv6: the node\'s packet too big for the IPv6 VXLAN route: Packet Too Big into podway0 from the packet\'s destination (not the node\'s fd99::1), mtu 1430', () => {
  const h = makeHarness6({ neighbors6: { [NODE2_6]: NODE2_MAC6 } });
  const big = udp6('fd99::1', RV6, 1431);
  h.receive(h.infra.host, big.slice());
  const out = onlyFrame(h, h.infra.host, 'packet too big into podway0').bytes;
  assert.is(out[0] >> 4, 6, 'a bare IPv6 packet (TUN)');
  assert.is(out[6], 58, 'ICMPv6');
  assert.is(hex(out, 8, 16), hex(parseIpv6Bytes(RV6)), 'from the destination the node sent to');
  assert.is(hex(out, 24, 16), hex(parseIpv6Bytes('fd99::1')), 'to the node');
  assert.is(out[40], 2, 'Packet Too Big');
  assert.is(u16(out, 44) * 65536 + u16(out, 46), 1430, 'the IPv6 VXLAN route\'s MTU');
  assert.is(hex(out, 48, 40), hex(big, 0, 40), 'quoting the packet');
  assert.is(icmp6Sum(out, 0), 0xffff, 'ICMPv6 checksum');
  assert.is(h.pipe.counters[Reason.FRAG_NEEDED], 1);
});

test('TTL 1 inside a VXLAN packet: time exceeded routed back through the tunnel from the node\'s VXLAN tunnel address; to an outside sender (tx4) still from the node\'s address', () => {
  const h = makeHarness(RESOLVED);
  // as Engine.apply sets it while a pool uses VXLAN
  h.pipe.addr = { ...h.pipe.addr, vxlanTunnelIp: parseIpv4('10.244.0.0') };
  h.receive(h.infra.vxlan, { bytes: frame('vxlan_rv_to_a_ttl1').subarray(42), addr: NODE2 });
  const out = onlyFrame(h, h.infra.underlay, 'time exceeded via vxlan').bytes;
  const inner = 50 + 14;
  assert.is(ip4(out, 30), formatIpv4(NODE2), 'outer: to node2');
  assert.is(ip4(out, inner + 12), '10.244.0.0', 'inner: from node1\'s VXLAN tunnel address');
  assert.is(ip4(out, inner + 16), formatIpv4(RV), 'to the sender');
  assert.is(out[inner + 20], 11, 'time exceeded');
  assert.is(u16(out, inner + 10), ipHeaderChecksum(out, inner), 'header checksum');
  assert.is(onesSum(out, inner + 20, u16(out, inner + 2) - 20), 0xffff, 'icmp checksum');
  // The same node, a sender with no pod or node route (the way back is the node's routing).
  const f = frame('underlay_rd_to_u').slice();
  f.set([192, 0, 2, 9], 14 + 12);
  f[14 + 8] = 1;
  fixIpChecksum(f, 14);
  h.receive(h.infra.underlay, f);
  const viaTx4 = onlyFrame(h, h.infra.tx4, 'time exceeded via tx4').bytes;
  assert.is(ip4(viaTx4, 12), formatIpv4(NODE1), 'unencapsulated: from the node\'s address');
});

test('TTL 1 inside an IPIP packet: time exceeded routed back through IPIP from the node\'s IPIP tunnel address (when it has one), else from its address', () => {
  const RI = parseIpv4('10.245.0.65');
  const ipipTtl1 = () => {
    const inner = udp4(RI, T, 100);
    inner[8] = 1;
    fixIpChecksum(inner, 0);
    const outer = new Uint8Array(20 + inner.length);
    outer[0] = 0x45; outer[2] = outer.length >> 8; outer[3] = outer.length & 255; outer[8] = 64; outer[9] = 4;
    for (let k = 0; k < 4; k++) { outer[12 + k] = (NODE2 >>> (24 - 8 * k)) & 255; outer[16 + k] = (NODE1 >>> (24 - 8 * k)) & 255; }
    fixIpChecksum(outer, 0);
    outer.set(inner, 20);
    return { bytes: outer, addr: NODE2 };
  };
  for (const [tunnelIp, from] of [[parseIpv4('10.245.0.1'), '10.245.0.1'], [0, formatIpv4(NODE1)]] as const) {
    const h = makeHarness(RESOLVED);
    h.pipe.addr = { ...h.pipe.addr, ipipTunnelIp: tunnelIp };
    h.receive(h.infra.ipip, ipipTtl1());
    const out = onlyFrame(h, h.infra.underlay, 'time exceeded via ipip').bytes;
    const inner = 14 + 20;
    assert.is(out[14 + 9], 4, 'IPIP');
    assert.is(ip4(out, 14 + 16), formatIpv4(NODE2), 'outer: to node2');
    assert.is(ip4(out, inner + 12), from, 'inner: the error\'s source');
    assert.is(ip4(out, inner + 16), formatIpv4(RI), 'to the sender');
    assert.is(out[inner + 20], 11, 'time exceeded');
    assert.is(u16(out, inner + 10), ipHeaderChecksum(out, inner), 'header checksum');
    assert.is(onesSum(out, inner + 20, u16(out, inner + 2) - 20), 0xffff, 'icmp checksum');
  }
});

test.run();
