// IPv6 header view, the bounded extension-header walk, ICMPv6 (checksum with the pseudo-header,
// errors built in place) and NDP (validation, NA/RA built in place), against scapy's frames
// (test/fixtures/scapy-frames6.json).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import * as P from '../../src/packet';
import { makePool, place } from './helpers';
import { bytes6, fixture6, layer6, icmpv6Sum, fixIcmpv6Checksum, loadFixtures6 } from './helpers6';

const walk = new Int32Array(4);

test('fixed header fields as scapy reports them', () => {
  const f = bytes6('v6_udp');
  const ip = layer6('v6_udp', 'IPv6');
  assert.is(P.validateIpv6(f, 14, f.length - 14), P.Drop.OK);
  const r = P.parseIpv6Repr(f, 14);
  assert.equal(r, { version: 6, trafficClass: ip.tc, flowLabel: ip.fl, payloadLength: ip.plen, nextHeader: ip.nh, hopLimit: ip.hlim, src: ip.src, dst: ip.dst });
  // The Repr writes the same 40 bytes back.
  const out = new Uint8Array(40);
  P.emitIpv6(out, 0, r);
  assert.equal([...out], [...f.subarray(14, 54)]);
});

test('validation: short, wrong version, payload length past the frame; padding allowed', () => {
  const f = bytes6('v6_udp');
  assert.is(P.validateIpv6(f, 14, 39), P.Drop.TOO_SHORT);
  assert.is(P.validateIpv6(f, 14, f.length - 15), P.Drop.BAD_TOTAL_LENGTH);
  const padded = new Uint8Array(f.length + 10);
  padded.set(f);
  assert.is(P.validateIpv6(padded, 14, padded.length - 14), P.Drop.OK);
  const v4 = f.slice();
  v4[14] = 0x45;
  assert.is(P.validateIpv6(v4, 14, v4.length - 14), P.Drop.BAD_VERSION);
});

test('extension-header walk finds the upper layer scapy put there', () => {
  for (const name of ['v6_udp', 'v6_ext_chain', 'v6_fragment_later', 'v6_echo', 'v6_ns_gw']) {
    const f = bytes6(name);
    const want = fixture6(name).build!;
    assert.is(P.ipv6WalkExtHeaders(f, 14, walk), P.Drop.OK, name);
    assert.is(walk[0], want.upper, `${name}: upper layer`);
    assert.is(walk[1], want.l4, `${name}: upper-layer offset`);
    assert.is(walk[2], want.fragment ?? 0, `${name}: fragment header crossed`);
    assert.is(walk[3], want.fragOffset ?? 0, `${name}: fragment offset`);
  }
});

test('extension-header walk: long and truncated chains are drop reasons, not exceptions', () => {
  assert.is(P.ipv6WalkExtHeaders(bytes6('v6_ext_too_long'), 14, walk), P.Drop.EXT_CHAIN_TOO_LONG);
  assert.is(P.ipv6WalkExtHeaders(bytes6('v6_ext_truncated'), 14, walk), P.Drop.BAD_EXT_HEADER);
  assert.is(P.ipv6WalkExtHeaders(bytes6('v6_ext_cut'), 14, walk), P.Drop.BAD_EXT_HEADER);
  assert.is(P.ipv6WalkExtHeaders(bytes6('v6_hbh_not_first'), 14, walk), P.Drop.BAD_EXT_HEADER);
  // Eight destination-options headers are the most podway walks.
  const eight = bytes6('v6_ext_too_long');
  const nine = P.ipv6WalkExtHeaders(eight, 14, walk);
  assert.is(nine, P.Drop.EXT_CHAIN_TOO_LONG);
  // Make the eighth header the last one (its next header: UDP) and shorten the payload: walkable.
  const at8 = 54 + 7 * 8;
  eight[at8] = 17;
  assert.is(P.ipv6WalkExtHeaders(eight, 14, walk), P.Drop.OK);
  assert.is(walk[1], 54 + 8 * 8);
});

test('extension-header walk over random mutations: bounded, never throws, offsets inside the payload', () => {
  let seed = 12345;
  const rnd = () => (seed = (seed * 1103515245 + 12345) & 0x7fffffff) / 0x7fffffff;
  const base = bytes6('v6_ext_chain');
  let ok = 0;
  for (let n = 0; n < 20000; n++) {
    const f = base.slice();
    for (let m = 0; m < 3; m++) f[54 + Math.floor(rnd() * (f.length - 54))] = Math.floor(rnd() * 256);
    if (rnd() < 0.3) f[20] = Math.floor(rnd() * 256); // the fixed header's next header
    const r = P.ipv6WalkExtHeaders(f, 14, walk);
    if (r === P.Drop.OK) {
      ok++;
      assert.ok(walk[1] >= 54 && walk[1] <= f.length, `offset ${walk[1]} inside the packet`);
    } else {
      assert.ok(r === P.Drop.BAD_EXT_HEADER || r === P.Drop.EXT_CHAIN_TOO_LONG, `reason ${r}`);
    }
  }
  assert.ok(ok > 0);
});

test('ICMPv6 checksum with the pseudo-header equals scapy\'s; a flipped bit fails validation', () => {
  for (const name of ['v6_echo', 'v6_ns_gw', 'v6_na_gw', 'v6_ra', 'v6_time_exceeded', 'v6_packet_too_big']) {
    const f = bytes6(name);
    const len = f[18] * 256 + f[19];
    assert.is(P.validateIcmpv6(f, 14, 54, len), P.Drop.OK, name);
    assert.is(P.icmpv6ComputeChecksum(f, 14, 54, len), f[56] * 256 + f[57], name);
    assert.is(icmpv6Sum(f, 14, 54, len), 0xffff, `${name}: independent check`);
    const bad = f.slice();
    bad[bad.length - 1] ^= 1;
    assert.is(P.validateIcmpv6(bad, 14, 54, len), P.Drop.BAD_L4_CHECKSUM, name);
    // The pseudo-header covers the addresses: changing the source breaks it too.
    const moved = f.slice();
    moved[14 + 8 + 15] ^= 1;
    assert.is(P.validateIcmpv6(moved, 14, 54, len), P.Drop.BAD_L4_CHECKSUM, `${name}: pseudo-header`);
  }
  assert.is(P.validateIcmpv6(bytes6('v6_echo'), 14, 54, 7), P.Drop.TOO_SHORT);
});

test('ICMPv6 errors built in place: time exceeded (whole quote) and packet too big (quote cut at 1280)', () => {
  const pool = makePool(2);
  for (const name of ['v6_time_exceeded', 'v6_packet_too_big']) {
    const b = fixture6(name).build!;
    const off = place(pool, 0, bytes6(b.from));
    const src = P.parseIpv6Bytes(b.src);
    const n = P.buildIcmpv6ErrorInPlace(pool, off, b.type, b.code, b.word, src, 0, b.hlim);
    assert.is(n, off - P.ICMPV6_ERROR_PREPEND);
    const len = 14 + 40 + P.ipv6PayloadLength(pool, n + 14);
    assert.equal(P.toHex(pool, n, len), fixture6(name).hex, name);
    assert.ok(len - 14 <= 1280, `${name}: fits the IPv6 minimum MTU`);
  }
});

test('no ICMPv6 error about an ICMPv6 error, a multicast destination, or an unspecified source', () => {
  const echo = bytes6('v6_echo');
  assert.ok(P.mayReplyWithIcmpv6Error(echo, 14, 58, 54));
  const err = bytes6('v6_time_exceeded');
  assert.not.ok(P.mayReplyWithIcmpv6Error(err, 14, 58, 54));
  assert.not.ok(P.mayReplyWithIcmpv6Error(bytes6('v6_ns_gw'), 14, 58, -1), 'unwalkable ICMPv6');
  const mc = echo.slice();
  mc[14 + 24] = 0xff;
  assert.not.ok(P.mayReplyWithIcmpv6Error(mc, 14, 58, 54));
  const unspec = echo.slice();
  unspec.fill(0, 14 + 8, 14 + 24);
  assert.not.ok(P.mayReplyWithIcmpv6Error(unspec, 14, 58, 54));
  assert.ok(P.mayReplyWithIcmpv6Error(bytes6('v6_udp'), 14, 17, 54));
});

test('NDP validation: good messages pass', () => {
  for (const name of ['v6_ns_gw', 'v6_na_gw', 'v6_ns_gw_nud', 'v6_ns_dad', 'v6_ns_other', 'v6_rs', 'v6_ra', 'v6_rs_unspec', 'v6_ra_unspec', 'v6_ra_from_router']) {
    const f = bytes6(name);
    const len = f[18] * 256 + f[19];
    assert.is(P.validateIcmpv6(f, 14, 54, len), P.Drop.OK, `${name}: checksum`);
    assert.is(P.validateNdp(f, 14, 54, len), P.Drop.OK, name);
  }
});

test('NDP validation: hop limit != 255, bad options, DAD with SLLA, multicast target, code, length: BAD_NDP', () => {
  for (const name of ['v6_ns_hlim64', 'v6_ns_optlen0', 'v6_ns_opt_past_end', 'v6_ns_dad_slla', 'v6_ns_mcast_target', 'v6_ns_code1', 'v6_ns_short']) {
    const f = bytes6(name);
    if (fixture6(name).build?.fix_icmpv6_checksum) fixIcmpv6Checksum(f);
    const len = f[18] * 256 + f[19];
    assert.is(P.validateIcmpv6(f, 14, 54, len), P.Drop.OK, `${name}: checksum is right, the message is not`);
    assert.is(P.validateNdp(f, 14, 54, len), P.Drop.BAD_NDP, name);
  }
  for (const group of [[0xff, 0xff, 0xff, 0xff, 0xff, 0xff], [0x01, 0x00, 0x5e, 0x00, 0x00, 0x01], [0x33, 0x33, 0, 0, 0, 1]]) {
    const ns = bytes6('v6_ns_gw');
    const len = ns[18] * 256 + ns[19];
    const slla = P.ndpFindOption(ns, 54, len, 1);
    assert.ok(slla > 0, 'the fixture NS carries a source link-layer option');
    ns.set(group, slla + 2);
    fixIcmpv6Checksum(ns);
    assert.is(P.validateIcmpv6(ns, 14, 54, len), P.Drop.OK);
    assert.is(P.validateNdp(ns, 14, 54, len), P.Drop.BAD_NDP, `source link-layer option ${group.map((x) => x.toString(16)).join(':')}`);
  }
  const f = bytes6('v6_ns_bad_csum');
  assert.is(P.validateIcmpv6(f, 14, 54, f[18] * 256 + f[19]), P.Drop.BAD_L4_CHECKSUM);
});

test('NDP options: SLLA found where scapy put it; none in a NUD probe', () => {
  const f = bytes6('v6_ns_gw');
  const o = P.ndpFindOption(f, 54, f.length - 54, P.NDP_OPT_SOURCE_LLADDR);
  assert.is(o, 54 + 24);
  assert.is(P.formatMac(f, o + 2), layer6('v6_ns_gw', 'ICMPv6NDOptSrcLLAddr').lladdr);
  const nud = bytes6('v6_ns_gw_nud');
  assert.is(P.ndpFindOption(nud, 54, nud.length - 54, P.NDP_OPT_SOURCE_LLADDR), -1);
  const ra = bytes6('v6_ra_from_router');
  const mtu = P.ndpFindOption(ra, 54, ra.length - 54, P.NDP_OPT_MTU);
  assert.is(P.get32(ra, mtu + 4), 1500);
});

test('NA for the gateway built in place from the NS, byte for byte as scapy builds it', () => {
  const pool = makePool(2);
  for (const name of ['v6_na_gw', 'v6_na_gw_nud']) {
    const b = fixture6(name).build!;
    const inFrame = bytes6(b.from);
    const off = place(pool, 0, inFrame);
    const n = P.answerNeighborSolicitInPlace(pool, off, off + 54, inFrame.length - 54, P.parseMac(b.mac), 0, b.router);
    assert.is(n, P.NA_FRAME_LEN);
    assert.equal(P.toHex(pool, off, n), fixture6(name).hex, name);
  }
});

test('RA built in place from the RS (to the solicitor, or all-nodes from ::), as scapy builds it', () => {
  const pool = makePool(2);
  for (const name of ['v6_ra', 'v6_ra_unspec']) {
    const b = fixture6(name).build!;
    const inFrame = bytes6(b.from);
    const off = place(pool, 0, inFrame);
    const n = P.answerRouterSolicitInPlace(pool, off, off + 54, inFrame.length - 54, P.parseIpv6Bytes(b.src), 0, P.parseMac(b.mac), 0, b.mtu);
    assert.is(n, P.RA_FRAME_LEN);
    assert.equal(P.toHex(pool, off, n), fixture6(name).hex, name);
  }
});

test('the gateway is the EUI-64 link-local of ee:ee:ee:ee:ee:ee; address text round trips', () => {
  const gw = P.linkLocalFromMac(P.parseMac('ee:ee:ee:ee:ee:ee'));
  assert.is(P.formatIpv6(gw), 'fe80::ecee:eeff:feee:eeee');
  for (const t of ['::', '::1', 'fd00:10:244::41', '2001:db8:0:1:1:1:1:1', 'fe80::285f:10ff:fe00:101', 'ff02::1:ffee:eeee']) {
    assert.is(P.formatIpv6(P.parseIpv6Bytes(t)), t);
  }
  assert.throws(() => P.parseIpv6Bytes('1::2::3'), /appears more than once/);
  assert.throws(() => P.parseIpv6Bytes('fd00::g'), /not 1-4 hex digits/);
  const f = bytes6('v6_ns_gw');
  assert.ok(P.ipv6IsSolicitedNodeOf(f, 14 + 24, 54 + 8), 'ff02::1:ffee:eeee is the gateway\'s group');
  assert.ok(P.ipv6IsLinkLocal(f, 14 + 8));
  assert.ok(P.ipv6IsMulticast(f, 14 + 24));
});

test('canonicalIpv6: one RFC 5952 spelling, a dotted IPv4 tail as two groups, invalid text refused', () => {
  for (const [a, want] of [['fd00:0::1', 'fd00::1'], ['FD00::1', 'fd00::1'], ['0:0:0:0:0:0:0:0', '::'], ['2001:db8:0:0:1:0:0:1', '2001:db8::1:0:0:1'], ['::ffff:10.0.0.1', '::ffff:a00:1'], ['1:2:3:4:5:6:1.2.3.4', '1:2:3:4:5:6:102:304']]) {
    assert.is(P.canonicalIpv6(a), want, a);
  }
  for (const a of ['1.2.3.4', '::1.2.3.256', '::01.2.3.4', 'fe80::1%eth0', ':::', '1:2:3:4:5:6:7:8:9']) assert.throws(() => P.canonicalIpv6(a), /invalid IPv6 address/, a);
});

test('every IPv6 fixture: validation and the walk never throw on any cut of the frame', () => {
  for (const fx of loadFixtures6()) {
    const f = P.fromHex(fx.hex);
    for (let len = 0; len <= f.length - 14; len++) {
      const v = P.validateIpv6(f, 14, len);
      if (v === P.Drop.OK) {
        const r = P.ipv6WalkExtHeaders(f, 14, walk);
        if (r === P.Drop.OK && walk[0] === 58) {
          const l4len = 14 + 40 + P.ipv6PayloadLength(f, 14) - walk[1];
          if (P.validateIcmpv6(f, 14, walk[1], l4len) === P.Drop.OK && P.isNdpType(f[walk[1]])) P.validateNdp(f, 14, walk[1], l4len);
        }
      }
    }
  }
});

test('NS for address resolution written as scapy builds it', () => {
  const b = fixture6('v6_ns_resolve').build!;
  const pool = makePool(1);
  const off = P.slotFrameOffset(0);
  const n = P.writeNeighborSolicit(pool, off, P.parseMac(b.mac), P.parseIpv6Bytes(b.src), 0, P.parseIpv6Bytes(b.target), 0);
  assert.is(n, P.NS_FRAME_LEN);
  assert.equal(P.toHex(pool, off, n), fixture6('v6_ns_resolve').hex);
  const na = bytes6('v6_na_node2');
  assert.is(P.validateNdp(na, 14, 54, na.length - 54), P.Drop.OK);
});

test('writeUnsolicitedAdvert and writeGatewayAnnounce: the gateway announced to a pod (Engine.announceGateway)', () => {
  const pool = makePool(2);
  const gwMac = P.parseMac('ee:ee:ee:ee:ee:ee');
  const gw6 = P.linkLocalFromMac(gwMac);
  const podMac = P.parseMac('02:11:22:33:44:55');
  for (const to of [podMac, null]) {
    const off = P.slotFrameOffset(0);
    pool.fill(0xaa, off, off + 128);
    const n = P.writeUnsolicitedAdvert(pool, off, gwMac, 0, gw6, 0, to, 0, true);
    assert.is(n, P.NA_FRAME_LEN);
    const f = pool.subarray(off, off + n);
    assert.is(P.formatMac(f, 0), to ? '02:11:22:33:44:55' : '33:33:00:00:00:01');
    assert.is(P.formatMac(f, 6), 'ee:ee:ee:ee:ee:ee');
    assert.is(P.formatIpv6(f, 22), 'fe80::ecee:eeff:feee:eeee', 'from the gateway');
    assert.is(P.formatIpv6(f, 38), 'ff02::1', 'to all-nodes');
    assert.is(f[54], 136);
    assert.is(f[58], 0xa0, 'Router and Override, not Solicited');
    assert.is(P.formatIpv6(f, 62), 'fe80::ecee:eeff:feee:eeee', 'target');
    assert.is(P.formatMac(f, 80), 'ee:ee:ee:ee:ee:ee', 'target link-layer option');
    assert.is(icmpv6Sum(f, 14, 54, 32), 0xffff, 'checksum');
    assert.is(P.validateNdp(f, 14, 54, 32), P.Drop.OK);
  }
  const off = P.slotFrameOffset(1);
  for (const to of [podMac, null]) {
    pool.fill(0xaa, off, off + 64);
    const n = P.writeGatewayAnnounce(pool, off, gwMac, 0, P.parseIpv4('169.254.1.1'), to, 0, P.parseIpv4('10.244.0.5'));
    assert.is(n, 60);
    const f = pool.subarray(off, off + n);
    assert.is(P.formatMac(f, 0), to ? '02:11:22:33:44:55' : 'ff:ff:ff:ff:ff:ff');
    assert.is(P.validateArp(f, 14, n - 14), P.Drop.OK);
    assert.equal(P.parseArpRepr(f, 14), { op: P.ARP_REPLY, sha: 'ee:ee:ee:ee:ee:ee', spa: '169.254.1.1', tha: to ? '02:11:22:33:44:55' : '00:00:00:00:00:00', tpa: '10.244.0.5' });
    assert.ok(f.subarray(42, 60).every((x) => x === 0), 'padded with zeros');
  }
});

test.run();
