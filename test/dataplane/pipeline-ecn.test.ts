// ECN through the tunnels (RFC 6040, as Linux's vxlan/ipip do it: include/net/inet_ecn.h) on
// in-memory ports: the outer ECN field podway writes when it encapsulates (VXLAN over IPv4 and
// IPv6, IPIP; the rest of the outer TOS 0, as Calico's vxlan.calico and tunl0 have it), and what
// it makes of the inner one when it decapsulates, for every pair of outer and inner ECN values,
// on the tunnel sockets and on the underlay port: byte for byte against the input with only the
// TOS (traffic class) and header checksum changed, the checksum as a full recomputation gives it.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Reason } from '../../src/dataplane/counters';
import { DescFlag } from '../../src/dataplane/frame-pool';
import { ECN_NAMES, ecnDecapsulateIpv4 } from '../../src/packet';
import { makeHarness, frame, onlyFrame, nothingSent, assertBytes, ipHeaderChecksum, u16, fixIpChecksum, learnTapMac, NODE2, NODE2_MAC } from './helpers';
import { makeHarness6, frame6, RV6, NODE2_6, NODE2_MAC6 } from './helpers6';
import { parseIpv6Bytes } from './helpers6-extra';
import { icmpv6Sum } from '../packet/helpers6';

const RESOLVED = { neighbors: { '10.99.0.2': NODE2_MAC } };
const NOT_ECT = 0, ECT1 = 1, ECT0 = 2, CE = 3;
const ALL = [NOT_ECT, ECT1, ECT0, CE];
const name = (e: number) => ECN_NAMES[e];

/** RFC 6040 figure 4, written out: the inner ECN after decapsulation, or -1 for a drop. */
function expectedInner(outer: number, inner: number): number {
  if (inner === NOT_ECT) return outer === CE ? -1 : NOT_ECT;
  if (inner === CE) return CE;
  if (outer === CE) return CE;
  if (outer === ECT1) return ECT1;
  return inner;
}

/** `f` with the IPv4 header at `ip` given TOS `tos`, its checksum recomputed. */
function withTos(f: Uint8Array, ip: number, tos: number): Uint8Array {
  const c = f.slice();
  c[ip + 1] = tos;
  fixIpChecksum(c, ip);
  return c;
}

// ---- encapsulation ------------------------------------------------------------------------------

/** Pod `pod`'s packet `fixture` (IPv4 at 14) to node2, with each inner DSCP of `dscps` and each
 * ECN value, encapsulated over IPv4 (outer protocol `protocol`, the inner IPv4 header at
 * `innerAt`): the outer TOS is the inner ECN field alone (CE sent as ECT(0), the DSCP 0), the
 * inner TOS untouched, both header checksums right. */
function outerTos4(what: string, pod: string, fixture: string, protocol: number, innerAt: number, dscps: readonly number[]): void {
  for (const dscp of dscps) {
    for (const e of ALL) {
      const h = makeHarness(RESOLVED);
      h.receive(h.port(pod), withTos(frame(fixture), 14, dscp | e));
      const out = onlyFrame(h, h.infra.underlay, what).bytes;
      const label = `${what}: inner tos ${dscp | e} (${name(e)})`;
      assert.is(out[14 + 9], protocol, `${label}: outer protocol ${protocol}`);
      assert.is(out[15], e === CE ? ECT0 : e, `${label}: outer tos`);
      assert.is(u16(out, 24), ipHeaderChecksum(out, 14), `${label}: outer header checksum`);
      assert.is(out[innerAt + 1], dscp | e, `${label}: inner tos untouched`);
      assert.is(u16(out, innerAt + 10), ipHeaderChecksum(out, innerAt), `${label}: inner header checksum`);
    }
  }
}

test('VXLAN over IPv4: the outer ECN field is the inner one, CE sent as ECT(0); the outer DSCP stays 0', () => {
  // a_to_rv encapsulated: outer Ethernet, IPv4 at 14, UDP, VXLAN, inner Ethernet, IPv4 at 64
  outerTos4('vxlan', 'caliA', 'a_to_rv', 17, 64, [0, 0xb8]);
});

test('VXLAN over IPv4 through the kernel (tx4, the neighbour unresolved): the same outer ECN field', () => {
  const h = makeHarness();
  h.receive(h.port('caliA'), withTos(frame('a_to_rv'), 14, CE));
  const out = onlyFrame(h, h.infra.tx4, 'vxlan via tx4').bytes;
  assert.is(out[1], ECT0);
  assert.is(u16(out, 10), ipHeaderChecksum(out, 0));
});

test('IPIP: the outer DSCP 0 whatever the inner one (tunl0\'s tos 0, not inherit), the ECN field as RFC 6040 (CE sent as ECT(0))', () => {
  // t_to_ri encapsulated: outer Ethernet, outer IPv4 at 14, inner IPv4 at 34
  outerTos4('ipip', 'tapT', 't_to_ri', 4, 34, [0, 0x28, 0xb8, 0xfc]);
});

test('IPIP through the kernel (tx4, the neighbour unresolved): the same outer TOS', () => {
  const h = makeHarness();
  h.receive(h.port('tapT'), withTos(frame('t_to_ri'), 14, 0xb8 | CE));
  const out = onlyFrame(h, h.infra.tx4, 'ipip via tx4').bytes;
  assert.is(out[9], 4);
  assert.is(out[1], ECT0);
  assert.is(u16(out, 10), ipHeaderChecksum(out, 0));
});

/** Pod A's IPv6 echo request to RV on node2, traffic class `tc`, its ICMPv6 checksum fixed. */
function aToRv6(tc: number): Uint8Array {
  const f = frame6('v6pipe_a_to_b');
  f.set(parseIpv6Bytes(RV6), 14 + 24);
  f[14] = (f[14] & 0xf0) | (tc >>> 4);
  f[15] = (f[15] & 0x0f) | ((tc & 15) << 4);
  const len = u16(f, 18);
  f[56] = 0; f[57] = 0;
  const c = 0xffff - icmpv6Sum(f, 14, 54, len);
  f[56] = c >> 8; f[57] = c & 255;
  return f;
}
const tclass = (b: Uint8Array, ip: number) => ((b[ip] & 15) << 4) | (b[ip + 1] >>> 4);

test('VXLAN over IPv6: the outer traffic class carries the inner ECN field (CE as ECT(0)), the UDP checksum still right', () => {
  for (const e of ALL) {
    const h = makeHarness6({ neighbors6: { [NODE2_6]: NODE2_MAC6 } });
    h.receive(h.port('caliA'), aToRv6(0xb8 | e));
    const out = onlyFrame(h, h.infra.underlay, 'vxlan6').bytes;
    assert.is(tclass(out, 14), e === CE ? ECT0 : e, `inner ${name(e)}: outer traffic class`);
    assert.is(out[14] >> 4, 6);
    assert.is(tclass(out, 14 + 56 + 14), 0xb8 | e, 'inner traffic class untouched');
    let s = 17 + u16(out, 18);
    for (let k = 22; k < 54; k += 2) s += u16(out, k);
    for (let k = 54; k + 1 < out.length; k += 2) s += u16(out, k);
    if ((out.length - 54) % 2 === 1) s += out[out.length - 1] << 8;
    while (s > 0xffff) s = (s & 0xffff) + (s >>> 16);
    assert.is(s, 0xffff, `inner ${name(e)}: outer UDP checksum`);
  }
});

// ---- decapsulation ------------------------------------------------------------------------------

test('the packet helper: every outer/inner pair as RFC 6040 figure 4, checksum as a full recomputation', () => {
  for (const outer of ALL) {
    for (const inner of ALL) {
      for (const dscp of [0, 0x2c, 0xfc]) {
        const f = withTos(frame('vxlan_rv_to_a_out'), 14, dscp | inner);
        const r = ecnDecapsulateIpv4(f, 14, outer);
        const want = expectedInner(outer, inner);
        assert.is(r === 2, want < 0, `outer ${name(outer)} inner ${name(inner)}: drop verdict`);
        assert.is(r === 1, inner === NOT_ECT && (outer === ECT0 || outer === ECT1), 'suspect verdict');
        assertBytes(f, withTos(frame('vxlan_rv_to_a_out'), 14, dscp | (want < 0 ? inner : want)), `outer ${name(outer)} inner ${name(inner)} dscp ${dscp}`);
      }
    }
  }
});

/** Every outer/inner pair through one delivery path: `send(outer, inner)` hands the pipeline the
 * tunnel packet, `expected(inner)` is what reaches the pod with the inner ECN field `inner`. */
function matrix(what: string, h: ReturnType<typeof makeHarness>, pod: number, send: (outer: number, inner: number) => void, expected: (inner: number) => Uint8Array): void {
  let drops = 0;
  for (const outer of ALL) {
    for (const inner of ALL) {
      send(outer, inner);
      const want = expectedInner(outer, inner);
      const label = `${what}: outer ${name(outer)} inner ${name(inner)}`;
      if (want < 0) {
        nothingSent(h, label);
        drops++;
        assert.is(h.pipe.counters[Reason.TUNNEL_ECN_NOT_ECT], drops, `${label}: counted tunnel_ecn_not_ect`);
        continue;
      }
      assertBytes(onlyFrame(h, pod, label).bytes, expected(want), label);
    }
  }
  assert.is(drops, 1);
}

test('VXLAN over IPv4 from the socket (outer ECN from IP_RECVTOS, in the descriptor flags) and from the underlay port', () => {
  const h = makeHarness();
  const a = h.port('caliA');
  const out = (e: number) => withTos(frame('vxlan_rv_to_a_out'), 14, e);
  // vxlan_rv_to_a: outer Ethernet, IPv4 at 14, UDP, VXLAN at 42, inner Ethernet at 50, IPv4 at 64
  matrix('socket', h, a, (outer, inner) => {
    const p = withTos(frame('vxlan_rv_to_a'), 64, inner).subarray(42);
    h.receive(h.infra.vxlan, { bytes: p, addr: NODE2, aport: 50000, flags: outer << DescFlag.ECN_SHIFT });
  }, out);
  const h2 = makeHarness();
  matrix('underlay', h2, h2.port('caliA'), (outer, inner) => {
    h2.receive(h2.infra.underlay, withTos(withTos(frame('vxlan_rv_to_a'), 64, inner), 14, outer));
  }, out);
});

test('IPIP from the raw socket and from the underlay port', () => {
  for (const via of ['socket', 'underlay'] as const) {
    const h = makeHarness();
    const t = h.port('tapT');
    learnTapMac(h);
    // ipip_ri_to_t: outer Ethernet, outer IPv4 at 14, inner IPv4 at 34
    matrix(via, h, t, (outer, inner) => {
      const f = withTos(withTos(frame('ipip_ri_to_t'), 34, inner), 14, outer);
      if (via === 'socket') h.receive(h.infra.ipip, { bytes: f.subarray(14), addr: NODE2 });
      else h.receive(h.infra.underlay, f);
    }, (e) => withTos(frame('ipip_ri_to_t_out'), 14, e));
  }
});

test('VXLAN over IPv6 on the underlay port: the inner traffic class gets CE / ECT(1), Not-ECT under CE dropped', () => {
  const h1 = makeHarness6({ neighbors6: { [NODE2_6]: NODE2_MAC6 } });
  const wire = (inner: number, outer: number): Uint8Array => {
    h1.receive(h1.port('caliA'), aToRv6(0x20 | inner));
    const w = onlyFrame(h1, h1.infra.underlay, 'from node1').bytes.slice();
    w[15] = (w[15] & 0xcf) | (outer << 4); // not in the UDP checksum
    return w;
  };
  const h2 = makeHarness6({ node: 'node2' });
  const rv = h2.port('caliRV');
  const ns = frame6('v6_ns_gw');
  ns.set([0x2a, 0x5f, 0x20, 0, 0, 0x65], 6);
  ns.set([0x2a, 0x5f, 0x20, 0, 0, 0x65], 14 + 40 + 24 + 2);
  const len = u16(ns, 18);
  ns[56] = 0; ns[57] = 0;
  const c = 0xffff - icmpv6Sum(ns, 14, 54, len);
  ns[56] = c >> 8; ns[57] = c & 255;
  h2.receive(rv, ns);
  nothingSent(h2, 'NS from veth pod RV: the node kernel\'s to answer');
  let drops = 0;
  for (const outer of ALL) {
    for (const inner of ALL) {
      h2.receive(h2.infra.underlay, wire(inner, outer));
      const want = expectedInner(outer, inner);
      const label = `outer ${name(outer)} inner ${name(inner)}`;
      if (want < 0) {
        nothingSent(h2, label);
        assert.is(h2.pipe.counters[Reason.TUNNEL_ECN_NOT_ECT], ++drops);
        continue;
      }
      const got = onlyFrame(h2, rv, label).bytes;
      assert.is(tclass(got, 14), 0x20 | want, `${label}: inner traffic class`);
      assert.is(icmpv6Sum(got, 14, 54, got.length - 54), 0xffff, `${label}: inner ICMPv6 intact`);
    }
  }
  assert.is(drops, 1);
});

test.run();
