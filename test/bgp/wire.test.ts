// BGP wire codec: round trips of every message type, framing over split and joined reads, and the
// RFC 4271 / RFC 7606 answer to each kind of malformed input.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import {
  Afi, AsSegment, AttrType, BgpError, decodeMessage, decodeOpen, decodeUpdate, encodeAnnounce, encodeEndOfRib,
  encodeNotification, encodeOpen, encodeRouteRefresh, encodeWithdraw, endOfRibFamily, Framer, HEADER_LEN,
  KEEPALIVE, MsgType, parsePrefix, UpdateMessage, UpdateContext, AS_TRANS, openAs,
} from '../../src/control/bgp/wire';
import { seededInts } from '../helpers/prng';

const ibgp4: UpdateContext = { fourOctetAs: true, ebgp: false };
const ebgp2: UpdateContext = { fourOctetAs: false, ebgp: true };

function frames(...bufs: Buffer[]): Buffer[] {
  const f = new Framer();
  const out: Buffer[] = [];
  for (const b of bufs) {
    f.push(b);
    for (let m = f.next(); m; m = f.next()) out.push(m);
  }
  return out;
}

function update(raw: Buffer, ctx = ibgp4): UpdateMessage {
  const m = decodeMessage(raw, ctx);
  assert.is(m.type, MsgType.Update);
  return m as UpdateMessage;
}

/** Wraps an UPDATE body (withdrawn, attributes, NLRI) in a header. */
function rawUpdate(withdrawn: Buffer, attrs: Buffer, nlri: Buffer): Buffer {
  const body = Buffer.concat([u16(withdrawn.length), withdrawn, u16(attrs.length), attrs, nlri]);
  return Buffer.concat([Buffer.alloc(16, 0xff), u16(HEADER_LEN + body.length), Buffer.from([2]), body]);
}
function u16(n: number): Buffer {
  const b = Buffer.alloc(2);
  b.writeUInt16BE(n);
  return b;
}
const attr = (flags: number, type: number, value: number[]) => Buffer.from([flags, type, value.length, ...value]);
const ORIGIN = attr(0x40, 1, [0]);
const ASPATH = attr(0x40, 2, [2, 1, 0, 0, 0xfd, 0xe8]); // 4-octet: 65000
const NEXTHOP = attr(0x40, 3, [10, 0, 0, 1]);
const NLRI = Buffer.from([24, 10, 1, 2]);

test('OPEN round trip with every capability, 4-octet AS via AS_TRANS', () => {
  const raw = encodeOpen(4200000001, 90, '10.0.0.1', {
    multiprotocol: [{ afi: 1, safi: 1 }, { afi: 2, safi: 1 }],
    routeRefresh: true,
    fourOctetAs: 4200000001,
    gracefulRestart: { restarting: true, time: 120, families: [{ afi: 1, safi: 1, forwarding: true }] },
    unknown: [],
  });
  const m = decodeMessage(raw, ibgp4);
  assert.is(m.type, MsgType.Open);
  if (m.type !== MsgType.Open) return;
  assert.is(m.myAs, AS_TRANS);
  assert.is(openAs(m), 4200000001);
  assert.is(m.holdTime, 90);
  assert.is(m.routerId, '10.0.0.1');
  assert.equal(m.caps.multiprotocol, [{ afi: 1, safi: 1 }, { afi: 2, safi: 1 }]);
  assert.ok(m.caps.routeRefresh);
  assert.equal(m.caps.gracefulRestart, { restarting: true, time: 120, families: [{ afi: 1, safi: 1, forwarding: true }] });
});

test('OPEN errors: version, hold time, identifier, optional parameter, unknown capability ignored', () => {
  const good = encodeOpen(65000, 90, '10.0.0.1', { multiprotocol: [], routeRefresh: false, unknown: [] }).subarray(HEADER_LEN);
  const expectErr = (b: Buffer, code: number, sub: number) => {
    try {
      decodeOpen(b);
      assert.unreachable('should throw');
    } catch (e) {
      assert.instance(e, BgpError);
      assert.is((e as BgpError).code, code);
      assert.is((e as BgpError).subcode, sub);
    }
  };
  const v3 = Buffer.from(good); v3[0] = 3;
  expectErr(v3, 2, 1);
  const hold2 = Buffer.from(good); hold2.writeUInt16BE(2, 3);
  expectErr(hold2, 2, 6);
  const id0 = Buffer.from(good); id0.writeUInt32BE(0, 5);
  expectErr(id0, 2, 3);
  const param = Buffer.concat([good.subarray(0, 9), Buffer.from([3, 1, 1, 0])]);
  expectErr(param, 2, 4);
  const lying = Buffer.concat([good.subarray(0, 9), Buffer.from([10, 2, 4])]);
  expectErr(lying, 2, 0);
  const unknownCap = Buffer.concat([good.subarray(0, 9), Buffer.from([5, 2, 3, 99, 1, 7])]);
  assert.equal(decodeOpen(unknownCap).caps.unknown, [99]);
});

test('UPDATE round trip: IPv4 with every attribute we use', () => {
  const prefixes = ['10.244.1.0/26', '10.244.1.64/26', '0.0.0.0/0', '192.0.2.1/32'].map(parsePrefix);
  const [raw] = encodeAnnounce(prefixes, {
    origin: 0,
    asPath: [{ type: AsSegment.Sequence, asns: [64512, 4200000001] }, { type: AsSegment.Set, asns: [1, 2] }],
    nextHop: '10.0.0.1',
    med: 5,
    localPref: 200,
    communities: [0xfde80007],
    originatorId: '10.0.0.9',
    clusterList: ['1.1.1.1', '2.2.2.2'],
  }, ibgp4);
  const m = update(raw);
  assert.equal(m.nlri, ['10.244.1.0/26', '10.244.1.64/26', '0.0.0.0/0', '192.0.2.1/32']);
  assert.is(m.attrs.origin, 0);
  assert.equal(m.attrs.asPath, [{ type: 2, asns: [64512, 4200000001] }, { type: 1, asns: [1, 2] }]);
  assert.is(m.attrs.nextHop, '10.0.0.1');
  assert.is(m.attrs.med, 5);
  assert.is(m.attrs.localPref, 200);
  assert.equal(m.attrs.communities, [0xfde80007]);
  assert.is(m.attrs.originatorId, '10.0.0.9');
  assert.equal(m.attrs.clusterList, ['1.1.1.1', '2.2.2.2']);
  assert.is(m.treatAsWithdraw, undefined);
});

test('UPDATE to a 2-octet speaker: AS_TRANS in AS_PATH, real path in AS4_PATH, merged on decode', () => {
  const [raw] = encodeAnnounce([parsePrefix('10.0.0.0/8')], {
    origin: 0, asPath: [{ type: AsSegment.Sequence, asns: [4200000001, 65001] }], nextHop: '10.0.0.1',
  }, ebgp2);
  const body = raw.subarray(HEADER_LEN);
  const m = decodeUpdate(body, ebgp2);
  assert.equal(m.attrs.asPath, [{ type: 2, asns: [4200000001, 65001] }]);
  // On the wire: AS_PATH holds AS_TRANS (23456 = 0x5ba0) and AS4_PATH (type 17) the real ASN.
  assert.ok(body.includes(Buffer.from([0x40, 2, 6, 2, 2, 0x5b, 0xa0, 0xfd, 0xe9])), body.toString('hex'));
  assert.ok(body.includes(Buffer.from([0xc0, 17, 10, 2, 2, 0xfa, 0x56, 0xea, 0x01])), body.toString('hex'));
});

test('UPDATE IPv6 in MP_REACH / MP_UNREACH, End-of-RIB for both families', () => {
  const [raw] = encodeAnnounce([parsePrefix('fd00:10:244::/64'), parsePrefix('2001:db8::/32')], { origin: 0, asPath: [], nextHop: 'fd00::1', localPref: 100 }, ibgp4);
  const m = update(raw);
  assert.equal(m.nlri, []);
  assert.equal(m.attrs.mpReach, { afi: 2, safi: 1, nextHop: 'fd00::1', linkLocal: undefined, nlri: ['fd00:10:244::/64', '2001:db8::/32'] });
  const [w] = encodeWithdraw([parsePrefix('fd00:10:244::/64')]);
  assert.equal(update(w).attrs.mpUnreach, { afi: 2, safi: 1, withdrawn: ['fd00:10:244::/64'] });
  const [w4] = encodeWithdraw([parsePrefix('10.1.0.0/16')]);
  assert.equal(update(w4).withdrawn, ['10.1.0.0/16']);
  assert.is(endOfRibFamily(update(encodeEndOfRib(Afi.Ipv4))), Afi.Ipv4);
  assert.is(endOfRibFamily(update(encodeEndOfRib(Afi.Ipv6))), Afi.Ipv6);
  assert.is(endOfRibFamily(update(w4)), null);
});

test('UPDATE encoding splits many prefixes into messages under 4096 octets', () => {
  const prefixes = Array.from({ length: 3000 }, (_, i) => parsePrefix(`10.${i >> 8}.${i & 255}.0/24`));
  const msgs = encodeAnnounce(prefixes, { origin: 0, asPath: [], nextHop: '10.0.0.1' }, ibgp4);
  assert.ok(msgs.length > 1);
  assert.ok(msgs.every(b => b.length <= 4096));
  assert.is(msgs.flatMap(b => update(b).nlri).length, 3000);
  const v6 = Array.from({ length: 2000 }, (_, i) => parsePrefix(`fd00:${i.toString(16)}::/64`));
  const m6 = encodeAnnounce(v6, { origin: 0, asPath: [], nextHop: 'fd00::1' }, ibgp4);
  assert.ok(m6.every(b => b.length <= 4096));
  assert.is(m6.flatMap(b => update(b).attrs.mpReach!.nlri).length, 2000);
});

test('framing: split reads, several messages in one read, byte by byte', () => {
  const msgs = [KEEPALIVE, encodeNotification(6, 2), encodeRouteRefresh(1, 1), ...encodeAnnounce([parsePrefix('10.0.0.0/8')], { origin: 0, asPath: [], nextHop: '1.2.3.4' }, ibgp4)];
  const all = Buffer.concat(msgs);
  assert.equal(frames(all), msgs);
  assert.equal(frames(...[...all].map(b => Buffer.from([b]))), msgs);
  assert.equal(frames(all.subarray(0, 7), all.subarray(7, 40), all.subarray(40)), msgs);
  const rr = decodeMessage(encodeRouteRefresh(2, 1), ibgp4);
  assert.equal(rr, { type: MsgType.RouteRefresh, afi: 2, safi: 1 });
  const n = decodeMessage(encodeNotification(6, 2, Buffer.from('bye')), ibgp4);
  assert.equal(n, { type: MsgType.Notification, code: 6, subcode: 2, data: Buffer.from('bye') });
});

function headerError(b: Buffer): BgpError {
  try {
    frames(b);
  } catch (e) {
    return e as BgpError;
  }
  throw new Error('no error');
}

test('framing errors: marker, length out of range, length below the type minimum, type', () => {
  const bad = Buffer.from(KEEPALIVE); bad[3] = 0;
  assert.is(headerError(bad).subcode, 1);
  const long = Buffer.from(KEEPALIVE); long.writeUInt16BE(5000, 16);
  const e = headerError(long);
  assert.equal([e.code, e.subcode, e.data.readUInt16BE(0)], [1, 2, 5000]);
  const ka20 = Buffer.concat([KEEPALIVE, Buffer.alloc(1)]); ka20.writeUInt16BE(20, 16);
  assert.equal([headerError(ka20).code, headerError(ka20).subcode], [1, 2]);
  const type9 = Buffer.from(KEEPALIVE); type9[18] = 9;
  const t = headerError(type9);
  assert.equal([t.code, t.subcode, [...t.data]], [1, 3, [9]]);
});

test('RFC 7606: malformed attributes are treat-as-withdraw or discarded, not session resets', () => {
  const base = (attrs: Buffer[]) => update(rawUpdate(Buffer.alloc(0), Buffer.concat(attrs), NLRI));
  assert.is(base([ORIGIN, ASPATH, NEXTHOP]).treatAsWithdraw, undefined);
  // Bad ORIGIN value, wrong lengths, wrong flags, segment overrun, zero-length segment.
  assert.match(base([attr(0x40, 1, [7]), ASPATH, NEXTHOP]).treatAsWithdraw ?? '', /ORIGIN value 7/);
  assert.ok(base([ORIGIN, ASPATH, attr(0x40, 3, [10, 0, 0])]).treatAsWithdraw);
  assert.ok(base([attr(0xc0, 1, [0]), ASPATH, NEXTHOP]).treatAsWithdraw, 'ORIGIN flagged optional');
  assert.ok(base([ORIGIN, attr(0x40, 2, [2, 5, 0, 0, 0, 1]), NEXTHOP]).treatAsWithdraw, 'AS_PATH segment overruns');
  assert.ok(base([ORIGIN, attr(0x40, 2, [2, 0]), NEXTHOP]).treatAsWithdraw, 'empty segment');
  assert.ok(base([ORIGIN, attr(0x40, 2, [9, 1, 0, 0, 0, 1]), NEXTHOP]).treatAsWithdraw, 'unknown segment type');
  assert.ok(base([ORIGIN, ASPATH, NEXTHOP, attr(0xc0, 8, [1, 2, 3])]).treatAsWithdraw, 'COMMUNITIES not a multiple of 4');
  assert.ok(base([ORIGIN, ASPATH, NEXTHOP, attr(0x40, 5, [0, 0])]).treatAsWithdraw, 'LOCAL_PREF length');
  assert.ok(base([ORIGIN, ASPATH, NEXTHOP, attr(0x80, 9, [1, 2, 3])]).treatAsWithdraw, 'ORIGINATOR_ID length');
  assert.ok(base([ORIGIN, ASPATH, NEXTHOP, attr(0x80, 10, [1, 2, 3, 4, 5])]).treatAsWithdraw, 'CLUSTER_LIST length');
  assert.ok(base([ORIGIN, ASPATH, NEXTHOP, attr(0x80, 4, [1])]).treatAsWithdraw, 'MED length');
  // Missing mandatory attributes.
  assert.match(base([ASPATH, NEXTHOP]).treatAsWithdraw ?? '', /ORIGIN missing/);
  assert.match(base([ORIGIN, ASPATH]).treatAsWithdraw ?? '', /NEXT_HOP missing/);
  // An attribute running past the attribute list: the NLRI are still found and withdrawn.
  const overrun = base([ORIGIN, ASPATH, NEXTHOP, Buffer.from([0xc0, 8, 200, 0, 0])]);
  assert.ok(overrun.treatAsWithdraw);
  assert.equal(overrun.nlri, ['10.1.2.0/24']);
  // Discards: ATOMIC_AGGREGATE with a value, AGGREGATOR of the wrong size, a repeated attribute.
  const d = base([ORIGIN, ASPATH, NEXTHOP, attr(0x40, 6, [1]), attr(0xc0, 7, [1, 2]), attr(0x40, 1, [1])]);
  assert.is(d.treatAsWithdraw, undefined);
  assert.is(d.discarded.length, 3);
  assert.is(d.attrs.origin, 0, 'the first ORIGIN is kept');
  // eBGP: LOCAL_PREF, ORIGINATOR_ID and CLUSTER_LIST are discarded, not used.
  const e = update(rawUpdate(Buffer.alloc(0), Buffer.concat([ORIGIN, attr(0x40, 2, [2, 1, 0xfd, 0xe9]), NEXTHOP, attr(0x40, 5, [0, 0, 1, 0]), attr(0x80, 9, [1, 1, 1, 1])]), NLRI), ebgp2);
  assert.equal([e.attrs.localPref, e.attrs.originatorId, e.discarded.length, e.treatAsWithdraw], [undefined, undefined, 2, undefined]);
  // Unknown optional transitive is kept (to pass on), unknown optional non-transitive dropped.
  const u = base([ORIGIN, ASPATH, NEXTHOP, attr(0xc0, 99, [1, 2]), attr(0x80, 98, [3])]);
  assert.equal(u.attrs.unknown?.map(a => a.type), [99]);
});

function resetError(raw: Buffer, ctx = ibgp4): BgpError {
  try {
    decodeMessage(raw, ctx);
  } catch (e) {
    assert.instance(e, BgpError);
    return e as BgpError;
  }
  throw new Error('expected a session reset');
}

test('RFC 7606: session resets where the NLRI cannot be located', () => {
  const attrs = Buffer.concat([ORIGIN, ASPATH, NEXTHOP]);
  // Withdrawn length past the message.
  const w = rawUpdate(Buffer.alloc(0), attrs, NLRI);
  w.writeUInt16BE(500, HEADER_LEN);
  assert.equal([resetError(w).code, resetError(w).subcode], [3, 1]);
  // Total attribute length past the message.
  const t = rawUpdate(Buffer.alloc(0), attrs, NLRI);
  t.writeUInt16BE(500, HEADER_LEN + 2);
  assert.equal([resetError(t).code, resetError(t).subcode], [3, 1]);
  // NLRI with a prefix length over 32, NLRI overrunning.
  assert.equal(resetError(rawUpdate(Buffer.alloc(0), attrs, Buffer.from([33, 1, 2, 3, 4, 5]))).subcode, 10);
  assert.equal(resetError(rawUpdate(Buffer.alloc(0), attrs, Buffer.from([24, 1, 2]))).subcode, 10);
  // Unrecognized well-known attribute.
  assert.equal(resetError(rawUpdate(Buffer.alloc(0), Buffer.concat([attrs, attr(0x40, 99, [1])]), NLRI)).subcode, 2);
  // Malformed MP_REACH and repeated MP_UNREACH.
  assert.equal(resetError(rawUpdate(Buffer.alloc(0), Buffer.concat([attrs, attr(0x80, AttrType.MpReach, [0, 2, 1, 16, 1])]), Buffer.alloc(0))).code, 3);
  const mpu = attr(0x80, AttrType.MpUnreach, [0, 2, 1]);
  assert.equal(resetError(rawUpdate(Buffer.alloc(0), Buffer.concat([mpu, mpu]), Buffer.alloc(0))).subcode, 1);
  // ROUTE-REFRESH of the wrong length.
  const rr = Buffer.concat([encodeRouteRefresh(1, 1), Buffer.alloc(1)]);
  rr.writeUInt16BE(24, 16);
  assert.is(resetError(rr).code, 7);
});

/** MP_REACH_NLRI value for IPv6 unicast: next hop octets, then NLRI octets. */
function mpReach6(nextHop: number[], nlri: number[]): number[] {
  return [0, 2, 1, nextHop.length, ...nextHop, 0, ...nlri];
}
const v6 = (text: string) => [...parsePrefix(`${text}/128`).octets];

test('MP-BGP IPv6: global + link-local next hop (RFC 2545), unusable next hops are treat-as-withdraw, bad lengths reset', () => {
  const mandatory = [ORIGIN, ASPATH];
  const nlri = [64, 0xfd, 0, 0, 0x10, 0, 0, 0, 0]; // fd00:10::/64
  const ok = update(rawUpdate(Buffer.alloc(0), Buffer.concat([...mandatory, attr(0x80, AttrType.MpReach, mpReach6([...v6('fd00::2'), ...v6('fe80::2')], nlri))]), Buffer.alloc(0)));
  assert.equal(ok.attrs.mpReach, { afi: 2, safi: 1, nextHop: 'fd00::2', linkLocal: 'fe80::2', nlri: ['fd00:10::/64'] });
  assert.is(ok.treatAsWithdraw, undefined, 'no NEXT_HOP needed beside MP_REACH_NLRI');
  const withdrawn = (nh: number[]) => update(rawUpdate(Buffer.alloc(0), Buffer.concat([...mandatory, attr(0x80, AttrType.MpReach, mpReach6(nh, nlri))]), Buffer.alloc(0)));
  assert.match(withdrawn(v6('::')).treatAsWithdraw ?? '', /unspecified/);
  assert.match(withdrawn(v6('ff02::1')).treatAsWithdraw ?? '', /multicast/);
  assert.equal(withdrawn(v6('ff02::1')).attrs.mpReach?.nlri, ['fd00:10::/64'], 'the NLRI are still found (to withdraw them)');
  assert.is(withdrawn([...v6('::'), ...v6('fe80::2')]).treatAsWithdraw, undefined, ':: beside a link-local one is well formed');
  // Missing ORIGIN with MP_REACH only: treat-as-withdraw too.
  assert.match(update(rawUpdate(Buffer.alloc(0), Buffer.concat([ASPATH, attr(0x80, AttrType.MpReach, mpReach6(v6('fd00::2'), nlri))]), Buffer.alloc(0))).treatAsWithdraw ?? '', /ORIGIN missing/);
  // Session resets: a next hop length that is neither 16 nor 32, a prefix length over 128, NLRI
  // overrunning the attribute, MP_REACH flagged transitive, MP_UNREACH overrunning.
  const reset = (value: number[], flags = 0x80, type = AttrType.MpReach) => resetError(rawUpdate(Buffer.alloc(0), Buffer.concat([...mandatory, attr(flags, type, value)]), Buffer.alloc(0)));
  assert.equal([reset(mpReach6([...v6('fd00::2'), 1], nlri)).code, reset(mpReach6([...v6('fd00::2'), 1], nlri)).subcode], [3, 9]);
  assert.is(reset(mpReach6(v6('fd00::2'), [129, ...Array(17).fill(0)])).subcode, 10);
  assert.is(reset(mpReach6(v6('fd00::2'), [64, 0xfd, 0])).subcode, 10);
  assert.is(reset(mpReach6(v6('fd00::2'), nlri), 0xc0).subcode, 4);
  assert.is(reset([0, 2, 1, 64, 0xfd], 0x80, AttrType.MpUnreach).subcode, 10);
  // OPEN offering IPv6 unicast only, with graceful restart for it.
  const open = decodeOpen(encodeOpen(64512, 90, '10.0.0.1', { multiprotocol: [{ afi: 2, safi: 1 }], routeRefresh: true, fourOctetAs: 64512, gracefulRestart: { restarting: false, time: 120, families: [{ afi: 2, safi: 1, forwarding: true }] }, unknown: [] }).subarray(HEADER_LEN));
  assert.equal(open.caps.multiprotocol, [{ afi: 2, safi: 1 }]);
  assert.equal(open.caps.gracefulRestart?.families, [{ afi: 2, safi: 1, forwarding: true }]);
});

test('MP_REACH / MP_UNREACH of a family never negotiated (VPNv4, SAFI 128): ignored and counted as discarded, not a reset; its End-of-RIB is not IPv4\'s', () => {
  // VPNv4: a 12-octet next hop (route distinguisher + IPv4), labelled NLRI (88 bits: label, RD, /24).
  const vpnNlri = [88, 0, 0x10, 0x01, 0, 0, 0xfd, 0xe8, 0, 0, 0, 1, 10, 1, 2];
  const vpnReach = [0, 1, 128, 12, ...Array(8).fill(0), 10, 0, 0, 2, 0, ...vpnNlri];
  const m = update(rawUpdate(Buffer.alloc(0), Buffer.concat([ORIGIN, ASPATH, attr(0x80, AttrType.MpReach, vpnReach)]), Buffer.alloc(0)));
  assert.equal(m.attrs.mpReach, { afi: 1, safi: 128, nextHop: '', nlri: [] });
  assert.equal(m.discarded, ['MP_REACH_NLRI of AFI 1 SAFI 128, a family not negotiated']);
  assert.is(m.treatAsWithdraw, undefined);
  const un = update(rawUpdate(Buffer.alloc(0), attr(0x80, AttrType.MpUnreach, [0, 1, 128, ...vpnNlri]), Buffer.alloc(0)));
  assert.equal(un.attrs.mpUnreach, { afi: 1, safi: 128, withdrawn: [] });
  assert.equal(un.discarded, ['MP_UNREACH_NLRI of AFI 1 SAFI 128, a family not negotiated']);
  // VPNv4 End-of-RIB (an empty MP_UNREACH of AFI 1 SAFI 128) is not an IPv4 unicast End-of-RIB.
  assert.is(endOfRibFamily(update(rawUpdate(Buffer.alloc(0), attr(0x80, AttrType.MpUnreach, [0, 1, 128]), Buffer.alloc(0)))), null);
  assert.is(endOfRibFamily(update(encodeEndOfRib(Afi.Ipv6))), Afi.Ipv6);
});

test('fuzz: random and mutated messages never throw anything but BgpError', () => {
  const seeds = [
    rawUpdate(Buffer.from([8, 10]), Buffer.concat([ORIGIN, ASPATH, NEXTHOP, attr(0xc0, 8, [0, 1, 0, 2])]), NLRI),
    ...encodeAnnounce([parsePrefix('fd00::/64')], { origin: 0, asPath: [], nextHop: 'fd00::1', clusterList: ['1.1.1.1'] }, ibgp4),
    rawUpdate(Buffer.alloc(0), Buffer.concat([ORIGIN, ASPATH, attr(0x80, AttrType.MpReach, mpReach6([...v6('fd00::2'), ...v6('fe80::2')], [64, 0xfd, 0, 0, 0x10, 0, 0, 0, 0, 7, 0xfe]))]), Buffer.alloc(0)),
    ...encodeWithdraw([parsePrefix('fd00:10::/64'), parsePrefix('fd00:11::/122')]),
    encodeEndOfRib(Afi.Ipv6),
    encodeOpen(65000, 90, '1.1.1.1', { multiprotocol: [{ afi: 1, safi: 1 }], routeRefresh: true, fourOctetAs: 65000, unknown: [] }),
    encodeNotification(3, 1, Buffer.from([1, 2, 3])),
    encodeRouteRefresh(1, 1),
  ];
  const rand = seededInts(12345);
  let resets = 0;
  for (let i = 0; i < 20000; i++) {
    const msg = Buffer.from(seeds[rand(seeds.length)]);
    const mutations = 1 + rand(4);
    for (let k = 0; k < mutations; k++) {
      const at = HEADER_LEN + rand(Math.max(1, msg.length - HEADER_LEN));
      if (at < msg.length) msg[at] = rand(256);
    }
    const cut = rand(3) === 0 ? msg.subarray(0, HEADER_LEN + rand(msg.length - HEADER_LEN + 1)) : msg;
    const framed = Buffer.from(cut);
    framed.writeUInt16BE(framed.length, 16);
    try {
      for (const m of frames(framed)) decodeMessage(m, rand(2) ? ibgp4 : ebgp2);
    } catch (e) {
      if (!(e instanceof BgpError)) throw new Error(`case ${i}: ${(e as Error).stack}\n${framed.toString('hex')}`);
      resets++;
    }
  }
  assert.ok(resets > 0 && resets < 20000, `${resets} resets`);
});

test.run();
