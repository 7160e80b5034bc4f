// Codecs against frames crafted by scapy (test/fixtures/scapy-frames.json, made by
// scripts/gen-fixtures.py): every field scapy reports must match our accessors, and our builders
// must reproduce scapy's bytes exactly, checksums included.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import * as P from '../../src/packet';
import { Fixture, fixture, loadFixtures, makePool, place } from './helpers';

const fixtures = loadFixtures();
const pool = makePool(8);
const ip4 = P.parseIpv4;
const mac = P.parseMac;

function eq(actual: unknown, expected: unknown, what: string): void {
  assert.equal(actual, expected, `${what}: got ${String(actual)}, scapy says ${String(expected)}`);
}

/** Compares our view of each layer with scapy's dissection; returns the offsets visited. */
function compareLayers(fx: Fixture, b: Uint8Array, start: number): void {
  let off = start;
  let lastIp = -1;
  for (const { layer, fields: f } of fx.layers) {
    const at = `${fx.name}/${layer}`;
    switch (layer) {
      case 'Ether':
        eq(P.formatMac(b, off), f.dst, `${at}.dst`);
        eq(P.formatMac(b, off + 6), f.src, `${at}.src`);
        eq(P.ethType(b, off), f.type, `${at}.type`);
        off += 14;
        break;
      case 'ARP': {
        const r = P.parseArpRepr(b, off);
        eq(P.arpHardwareType(b, off), f.hwtype, `${at}.hwtype`);
        eq(P.arpProtocolType(b, off), f.ptype, `${at}.ptype`);
        eq(r.op, f.op, `${at}.op`);
        eq(r.sha, f.hwsrc, `${at}.hwsrc`);
        eq(r.spa, f.psrc, `${at}.psrc`);
        eq(r.tha, f.hwdst, `${at}.hwdst`);
        eq(r.tpa, f.pdst, `${at}.pdst`);
        off += 28;
        break;
      }
      case 'IP':
      case 'IPerror': {
        eq(P.ipv4Version(b, off), f.version, `${at}.version`);
        eq(P.ipv4Ihl(b, off), f.ihl, `${at}.ihl`);
        eq(P.ipv4Tos(b, off), f.tos, `${at}.tos`);
        eq(P.ipv4Dscp(b, off), (f.tos as number) >> 2, `${at}.dscp`);
        eq(P.ipv4Ecn(b, off), (f.tos as number) & 3, `${at}.ecn`);
        eq(P.ipv4TotalLength(b, off), f.len, `${at}.len`);
        eq(P.ipv4Id(b, off), f.id, `${at}.id`);
        eq(P.ipv4Flags(b, off), f.flags, `${at}.flags`);
        eq(P.ipv4DontFragment(b, off), ((f.flags as number) & 2) !== 0, `${at}.DF`);
        eq(P.ipv4MoreFragments(b, off), ((f.flags as number) & 1) !== 0, `${at}.MF`);
        eq(P.ipv4FragmentOffset(b, off), f.frag, `${at}.frag`);
        eq(P.ipv4Ttl(b, off), f.ttl, `${at}.ttl`);
        eq(P.ipv4Protocol(b, off), f.proto, `${at}.proto`);
        eq(P.ipv4Checksum(b, off), f.chksum, `${at}.chksum`);
        eq(P.ipv4Src(b, off), ip4(f.src as string), `${at}.src`);
        eq(P.ipv4Dst(b, off), ip4(f.dst as string), `${at}.dst`);
        eq(P.formatIpv4(P.ipv4Src(b, off)), f.src, `${at}.src string`);
        eq(P.ipv4ComputeChecksum(b, off), f.chksum, `${at} computed checksum`);
        eq(P.ipv4ChecksumOk(b, off), true, `${at} checksum verifies`);
        const opts = P.toHex(b, off + 20, P.ipv4HeaderLength(b, off) - 20);
        eq(opts, (f.options as string[]).join(''), `${at}.options`);
        if (layer === 'IP') lastIp = off;
        off += P.ipv4HeaderLength(b, off);
        break;
      }
      case 'UDP':
      case 'UDPerror':
        eq(P.udpSrcPort(b, off), f.sport, `${at}.sport`);
        eq(P.udpDstPort(b, off), f.dport, `${at}.dport`);
        eq(P.udpLength(b, off), f.len, `${at}.len`);
        eq(P.udpChecksum(b, off), f.chksum, `${at}.chksum`);
        if (layer === 'UDP' && P.ipv4FragmentOffset(b, lastIp) === 0 && !P.ipv4MoreFragments(b, lastIp)) {
          eq(P.udpChecksumOk(b, lastIp, off), true, `${at} checksum verifies`);
          if (f.chksum !== 0) eq(P.udpComputeChecksum(b, lastIp, off), f.chksum, `${at} computed checksum`);
        }
        off += 8;
        break;
      case 'TCP': {
        eq(P.tcpSrcPort(b, off), f.sport, `${at}.sport`);
        eq(P.tcpDstPort(b, off), f.dport, `${at}.dport`);
        eq(P.tcpSeq(b, off), f.seq, `${at}.seq`);
        eq(P.tcpAck(b, off), f.ack, `${at}.ack`);
        eq(P.tcpHeaderLength(b, off), (f.dataofs as number) * 4, `${at}.dataofs`);
        eq(P.tcpFlags(b, off), f.flags, `${at}.flags`);
        eq(P.tcpWindow(b, off), f.window, `${at}.window`);
        eq(P.tcpChecksum(b, off), f.chksum, `${at}.chksum`);
        eq(P.tcpUrgentPointer(b, off), f.urgptr, `${at}.urgptr`);
        const segLen = P.ipv4TotalLength(b, lastIp) - P.ipv4HeaderLength(b, lastIp);
        eq(P.validateTcp(b, off, segLen), P.Drop.OK, `${at} validates`);
        eq(P.tcpChecksumOk(b, lastIp, off, segLen), true, `${at} checksum verifies`);
        eq(P.tcpComputeChecksum(b, lastIp, off, segLen), f.chksum, `${at} computed checksum`);
        off += P.tcpHeaderLength(b, off);
        break;
      }
      case 'ICMP': {
        eq(P.icmpType(b, off), f.type, `${at}.type`);
        eq(P.icmpCode(b, off), f.code, `${at}.code`);
        eq(P.icmpChecksum(b, off), f.chksum, `${at}.chksum`);
        if ('id' in f) eq(P.icmpEchoId(b, off), f.id, `${at}.id`);
        if ('seq' in f) eq(P.icmpEchoSeq(b, off), f.seq, `${at}.seq`);
        if ('nexthopmtu' in f) eq(P.icmpNextHopMtu(b, off), f.nexthopmtu, `${at}.nexthopmtu`);
        const msgLen = P.ipv4TotalLength(b, lastIp) - P.ipv4HeaderLength(b, lastIp);
        eq(P.validateIcmp(b, off, msgLen), P.Drop.OK, `${at} validates`);
        off += 8;
        break;
      }
      case 'VXLAN':
        eq(P.vxlanFlags(b, off), f.flags, `${at}.flags`);
        eq(P.vxlanVni(b, off), f.vni, `${at}.vni`);
        eq(P.validateVxlan(b, off, 8), P.Drop.OK, `${at} validates`);
        off += 8;
        break;
      case 'Raw':
      case 'Padding':
      case 'DNS':
        return;
      default:
        throw new Error(`${at}: no comparison for scapy layer ${layer}`);
    }
  }
}

for (const fx of fixtures) {
  test(`parse ${fx.name}: every field matches scapy`, () => {
    const bytes = P.fromHex(fx.hex);
    const off = place(pool, 0, bytes);
    compareLayers(fx, pool, off);
    const type = P.ethType(pool, off);
    if (type === P.ETHERTYPE_IPV4) {
      eq(P.validateEthIpv4(pool, off, bytes.length), P.Drop.OK, `${fx.name} validateEthIpv4`);
    } else if (type === P.ETHERTYPE_ARP) {
      eq(P.validateArp(pool, off + 14, bytes.length - 14), P.Drop.OK, `${fx.name} validateArp`);
    }
  });
}

test('Repr round trip: parse then emit reproduces the IPv4 header (with options)', () => {
  for (const name of ['icmp_echo_request', 'ipv4_options', 'tcp_syn', 'ipv4_fragment_later']) {
    const bytes = P.fromHex(fixture(name).hex);
    const off = place(pool, 0, bytes);
    const repr = P.parseIpv4Repr(pool, off + 14);
    const out = new Uint8Array(60);
    const hl = P.emitIpv4(out, 0, repr);
    assert.is(P.toHex(out, 0, hl), P.toHex(bytes, 14, hl), name);
    assert.equal(P.parseEthernetRepr(pool, off), { dst: P.formatMac(bytes, 0), src: P.formatMac(bytes, 6), ethertype: 0x0800 });
  }
});

test('decap: VXLAN fixtures give the inner frame, IPIP the inner datagram', () => {
  for (const name of ['vxlan', 'vxlan_udp_checksum']) {
    const bytes = P.fromHex(fixture(name).hex);
    const off = place(pool, 1, bytes);
    const inner = P.decapVxlan(pool, off, bytes.length, 4096, P.VXLAN_PORT);
    assert.is(inner, off + 50, name);
    assert.is(P.vxlanInnerLength(pool, inner), bytes.length - 50);
    assert.is(P.validateEthIpv4(pool, inner, P.vxlanInnerLength(pool, inner)), P.Drop.OK);
    assert.is(P.decapVxlan(pool, off, bytes.length, 4097, P.VXLAN_PORT), -P.Drop.BAD_VNI);
    assert.is(P.decapVxlan(pool, off, bytes.length, -1, 8472), -P.Drop.NOT_VXLAN);
    assert.is(P.decapVxlanPacket(pool, off + 14, bytes.length - 14, -1, P.VXLAN_PORT), off + 50);
  }
  const bytes = P.fromHex(fixture('ipip').hex);
  const off = place(pool, 1, bytes);
  const inner = P.decapIpip(pool, off, bytes.length);
  assert.is(inner, off + 34);
  assert.is(P.ipv4TotalLength(pool, inner), bytes.length - 34);
  assert.is(P.decapIpip(pool, place(pool, 2, P.fromHex(fixture('udp_dns').hex)), 71), -P.Drop.BAD_PROTOCOL);
  assert.is(P.decapVxlan(pool, off, bytes.length, -1, P.VXLAN_PORT), -P.Drop.BAD_PROTOCOL);
});

// ---- builders, byte for byte against scapy ---------------------------------------------------------

function expectFrame(fx: Fixture, b: Uint8Array, off: number, len: number): void {
  assert.is(len, fx.hex.length / 2, `${fx.name}: length`);
  assert.is(P.toHex(b, off, len), fx.hex, `${fx.name}: bytes`);
}

test('build arp_reply in place from arp_request (and from the padded request)', () => {
  const fx = fixture('arp_reply');
  for (const from of ['arp_request', 'arp_request_padded']) {
    const req = P.fromHex(fixture(from).hex);
    const off = place(pool, 2, req);
    assert.is(P.validateArp(pool, off + 14, req.length - 14), P.Drop.OK);
    assert.is(P.arpOp(pool, off + 14), P.ARP_REQUEST);
    assert.is(P.arpTpa(pool, off + 14), P.parseIpv4('169.254.1.1'));
    const len = P.arpReplyInPlace(pool, off, mac(fx.build!.mac), 0);
    expectFrame(fx, pool, off, len);
  }
});

test('build icmp_echo_reply in place from icmp_echo_request', () => {
  const fx = fixture('icmp_echo_reply');
  const req = P.fromHex(fixture(fx.build!.from).hex);
  const off = place(pool, 2, req);
  P.icmpEchoReplyInPlace(pool, off, fx.build!.ttl);
  expectFrame(fx, pool, off, req.length);
});

test('emit icmp_echo_request and udp_dns from field values', () => {
  for (const name of ['icmp_echo_request', 'udp_dns']) {
    const fx = fixture(name);
    const bld = fx.build!;
    const off = P.slotFrameOffset(3);
    pool.fill(0xa5, off - P.HEADROOM, off + P.MAX_FRAME_LEN);
    const payload = P.fromHex(bld.payload);
    const l4Len = 8 + payload.length;
    P.emitEthernet(pool, off, { dst: bld.eth.dst, src: bld.eth.src, ethertype: P.ETHERTYPE_IPV4 });
    const ip = off + 14;
    const proto = bld.icmp ? P.IPPROTO_ICMP : P.IPPROTO_UDP;
    P.emitIpv4(pool, ip, { tos: bld.ip.tos, totalLength: 20 + l4Len, id: bld.ip.id, flags: bld.ip.flags, fragmentOffset: 0, ttl: bld.ip.ttl, protocol: proto, src: bld.ip.src, dst: bld.ip.dst, options: [] });
    pool.set(payload, ip + 28);
    if (bld.icmp) {
      P.emitIcmp(pool, ip + 20, l4Len, bld.icmp.type, bld.icmp.code, bld.icmp.rest);
    } else {
      P.writeUdpHeader(pool, ip + 20, bld.udp.sport, bld.udp.dport, l4Len);
      P.udpFillChecksum(pool, ip, ip + 20);
    }
    expectFrame(fx, pool, off, 14 + 20 + l4Len);
    // writeIpv4Header (hot-path builder) gives the same header as the Repr emitter.
    const alt = new Uint8Array(20);
    P.writeIpv4Header(alt, 0, bld.ip.tos, 20 + l4Len, bld.ip.id, bld.ip.flags << 13, bld.ip.ttl, proto, P.parseIpv4(bld.ip.src), P.parseIpv4(bld.ip.dst));
    assert.is(P.toHex(alt), P.toHex(pool, ip, 20), `${name}: writeIpv4Header`);
  }
});

test('encapVxlan with a cached template reproduces scapy (with and without outer Ethernet)', () => {
  const fx = fixture('vxlan');
  const bld = fx.build!;
  const spec = {
    outerDstMac: mac(bld.outer_dst_mac),
    outerSrcMac: mac(bld.outer_src_mac),
    srcIp: ip4(bld.src),
    dstIp: ip4(bld.dst),
    vni: bld.vni,
    ttl: bld.ttl,
    innerDstMac: mac(bld.inner_dst_mac),
    innerSrcMac: mac(bld.inner_src_mac),
  };
  const tpl = P.buildVxlanTemplate(spec);
  assert.ok(P.isVxlanTemplate(tpl));
  assert.is(P.vxlanTemplateOverhead(tpl), 50);
  const inner = P.fromHex(bld.inner_hex);
  // The pod's frame arrives with the pod/gateway MACs; the template rewrites them.
  const podFrame = inner.slice();
  podFrame.set(mac('ee:ee:ee:ee:ee:ee'), 0);
  podFrame.set(mac('0a:58:0a:f4:01:05'), 6);
  for (let round = 0; round < 2; round++) {
    // Twice over the same slot: stale bytes from an earlier packet must not leak into the next.
    const off = place(pool, 4, podFrame);
    const o = P.encapVxlan(pool, off, podFrame.length, tpl, bld.sport, bld.id);
    assert.is(o, off - 50);
    expectFrame(fx, pool, o, podFrame.length + 50);
  }
  const tplNoEth = P.buildVxlanTemplate({ ...spec, outerDstMac: undefined, outerSrcMac: undefined });
  assert.is(tplNoEth.length, 48);
  const off = place(pool, 5, podFrame);
  const o = P.encapVxlan(pool, off, podFrame.length, tplNoEth, bld.sport, bld.id);
  assert.is(o, off - 36);
  assert.is(P.toHex(pool, o, podFrame.length + 36), fx.hex.slice(28));
});

test('encapIpip + writeEthernet reproduces scapy', () => {
  const fx = fixture('ipip');
  const bld = fx.build!;
  const inner = P.fromHex(bld.inner_hex);
  // The datagram arrives inside a pod Ethernet frame; IPIP replaces that header.
  const frame = new Uint8Array(14 + inner.length);
  frame.set(inner, 14);
  const off = place(pool, 5, frame);
  const o = P.encapIpip(pool, off + 14, inner.length, ip4(bld.src), ip4(bld.dst), bld.ttl, bld.id);
  assert.is(o, off - 6);
  P.writeEthernet(pool, o - 14, mac(bld.outer_dst_mac), 0, mac(bld.outer_src_mac), 0, P.ETHERTYPE_IPV4);
  expectFrame(fx, pool, o - 14, inner.length + 34);
});

test('buildIcmpErrorInPlace reproduces scapy (time exceeded, frag needed)', () => {
  for (const name of ['icmp_time_exceeded', 'icmp_frag_needed']) {
    const fx = fixture(name);
    const bld = fx.build!;
    const orig = P.fromHex(bld.original_hex);
    const off = place(pool, 6, orig);
    assert.is(P.validateEthIpv4(pool, off, orig.length), P.Drop.OK);
    assert.ok(P.mayReplyWithIcmpError(pool, off + 14));
    const n = P.buildIcmpErrorInPlace(pool, off, bld.type, bld.code, bld.rest, ip4(bld.src), bld.ttl, bld.id);
    assert.is(n, off - P.ICMP_ERROR_PREPEND);
    expectFrame(fx, pool, n, 14 + P.ipv4TotalLength(pool, n + 14));
    // An ICMP error is never answered with another one (RFC 1812 4.3.2.7).
    assert.not.ok(P.mayReplyWithIcmpError(pool, n + 14));
  }
});

test.run();
