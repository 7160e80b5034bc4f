// What a Calico node's kernel refuses from another node, podway refuses too (Linux 6.18, checked
// against a vxlan device: docs/calico-differences.md). A source no node sends from (IPv4 0.0.0.0,
// 127/8, 224/4, 255.255.255.255; IPv6 ::, ::1, ff00::/8, fe80::/10) is dropped martian_src on every
// way in; with the node's rp_filter strict (Pipeline.rpFilter 1, the value vxlan.calico and tunl0
// have on a Calico node), a decapsulated IPv4 source whose route back is not through the tunnel it
// came in on is dropped reverse_path.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { COUNTER_NAMES, Reason } from '../../src/dataplane/counters';
import { TraceSession, parseTraceFilter } from '../../src/dataplane/trace';
import { isMartianSrc4, isMartianSrc6, parseIpv4, parseIpv6Bytes } from '../../src/packet';
import { DECAP_WAYS, Harness, IPIP_WAYS, NODE1_MAC, PLAIN_WAY, VXLAN_WAYS, learnTapMac, makeHarness, outcome, takeAll } from './helpers';
import { parseMac } from './helpers6-extra';
import { makeHarness6, frame6 } from './helpers6';
import { fixIcmpv6Checksum } from '../packet/helpers6';

const WAYS = DECAP_WAYS;
const PLAIN = PLAIN_WAY;

function harness(rpFilter = 0): Harness {
  const h = makeHarness();
  learnTapMac(h);
  h.pipe.rpFilter = rpFilter;
  return h;
}

const MARTIANS4 = ['0.0.0.0', '127.0.0.1', '127.1.2.3', '224.0.0.5', '239.255.255.250', '255.255.255.255'];
/** Not martian to Linux: the rest of 0/8 (unicast since 5.3), 240/4 but the broadcast, link-local. */
const NOT_MARTIANS4 = ['0.0.0.1', '240.0.0.1', '254.1.2.3', '169.254.1.9'];

test('the reasons have names of their own', () => {
  assert.is(COUNTER_NAMES[Reason.MARTIAN_SRC], 'martian_src');
  assert.is(COUNTER_NAMES[Reason.REVERSE_PATH], 'reverse_path');
  for (const a of MARTIANS4) assert.ok(isMartianSrc4(parseIpv4(a)), a);
  for (const a of NOT_MARTIANS4) assert.not.ok(isMartianSrc4(parseIpv4(a)), a);
});

test('a martian inner source is dropped martian_src on every way in, whatever rp_filter; the kernel\'s unicast ones are delivered with rp_filter 0 and 2', () => {
  for (const rp of [0, 1, 2]) {
    const h = harness(rp);
    let drops = 0;
    for (const w of WAYS) {
      for (const src of MARTIANS4) {
        assert.is(outcome(h, w.port(h), () => w.send(h, src)), 'martian_src', `rp ${rp}, ${w.name}, from ${src}`);
        drops++;
      }
      if (rp !== 1) for (const src of NOT_MARTIANS4) assert.is(outcome(h, w.port(h), () => w.send(h, src)), 'delivered', `rp ${rp}, ${w.name}, from ${src}`);
    }
    assert.is(h.pipe.counters[Reason.MARTIAN_SRC], drops);
    assert.is(h.pipe.counters[Reason.OWN_SOURCE], 0);
    assert.is(h.pipe.counters[Reason.REVERSE_PATH], 0);
  }
});

test('a martian source is refused before the destination, as the kernel (ip_route_input_slow) does: to another node\'s pod it is martian_src, not decap_not_local', () => {
  const h = harness();
  for (const w of [...VXLAN_WAYS, ...IPIP_WAYS]) {
    assert.is(outcome(h, w.port(h), () => w.send(h, '224.0.0.5', '10.244.0.66')), 'martian_src', w.name);
    assert.is(outcome(h, w.port(h), () => w.send(h, '10.244.0.65', '10.244.0.66')), 'decap_not_local', w.name);
  }
});

test('strict rp_filter (1): a decapsulated source routed back through another device is dropped reverse_path; through the same tunnel delivered; loose (2) and off (0) deliver them all', () => {
  // node2's blocks: 10.244.0.64/26 over VXLAN, 10.245.0.64/26 over IPIP, 10.246.0.64/26 direct
  const cases: Array<[string, string, string]> = [
    // [source, over VXLAN, over IPIP] with rp_filter 1
    ['10.244.0.65', 'delivered', 'reverse_path'], // a VXLAN-pool pod of node2
    ['10.244.0.64', 'delivered', 'reverse_path'], // node2's VXLAN tunnel address
    ['10.245.0.65', 'reverse_path', 'delivered'], // an IPIP-pool pod of node2
    ['10.246.0.65', 'reverse_path', 'reverse_path'], // routed unencapsulated over the underlay
    ['10.99.0.2', 'reverse_path', 'reverse_path'], // node2's own address: no pod route (the node's table)
    ['198.51.100.7', 'reverse_path', 'reverse_path'], // outside the pools
    ['240.0.0.1', 'reverse_path', 'reverse_path'], // unicast to Linux, no route back here
  ];
  const h1 = harness(1);
  for (const [src, overVxlan, overIpip] of cases) {
    for (const w of VXLAN_WAYS) assert.is(outcome(h1, w.port(h1), () => w.send(h1, src)), overVxlan, `rp 1, ${w.name}, from ${src}`);
    for (const w of IPIP_WAYS) assert.is(outcome(h1, w.port(h1), () => w.send(h1, src)), overIpip, `rp 1, ${w.name}, from ${src}`);
    // the underlay device's own rp_filter is not modelled
    assert.is(outcome(h1, PLAIN.port(h1), () => PLAIN.send(h1, src)), 'delivered', `rp 1, unencapsulated, from ${src}`);
  }
  const rejected = cases.reduce((n, c) => n + (c[1] === 'reverse_path' ? 2 : 0) + (c[2] === 'reverse_path' ? 2 : 0), 0);
  assert.is(h1.pipe.counters[Reason.REVERSE_PATH], rejected);
  for (const rp of [0, 2]) {
    const h = harness(rp);
    for (const [src] of cases) for (const w of WAYS) assert.is(outcome(h, w.port(h), () => w.send(h, src)), 'delivered', `rp ${rp}, ${w.name}, from ${src}`);
    assert.is(h.pipe.counters[Reason.REVERSE_PATH], 0);
  }
});

test('own sources stay own_source with every rp_filter (checked before the reverse path); to the node\'s VXLAN tunnel address the reverse path is checked too', () => {
  for (const rp of [0, 1, 2]) {
    const h = harness(rp);
    for (const w of WAYS) for (const src of ['10.99.0.1', '10.244.0.2', '10.245.0.9']) assert.is(outcome(h, w.port(h), () => w.send(h, src)), 'own_source', `rp ${rp}, ${w.name}, from ${src}`);
  }
  const h = harness(1);
  const vx = VXLAN_WAYS[0];
  assert.is(outcome(h, h.infra.host, () => vx.send(h, '10.244.0.65', '10.244.0.0')), 'delivered', 'into the host port');
  assert.is(outcome(h, h.infra.host, () => vx.send(h, '10.245.0.65', '10.244.0.0')), 'reverse_path');
  assert.is(outcome(h, h.infra.host, () => vx.send(h, '127.0.0.1', '10.244.0.0')), 'martian_src');
});

test('traced: the martian source and the route back that failed', () => {
  const h = harness(1);
  const t = new TraceSession(parseTraceFilter([]), 4);
  h.pipe.trace = t;
  VXLAN_WAYS[0].send(h, '224.0.0.5');
  IPIP_WAYS[0].send(h, '10.244.0.65');
  VXLAN_WAYS[0].send(h, '198.51.100.7');
  takeAll(h);
  assert.match(t.records[0].stages.join('\n'), /vxlan decap: [^\n]*\nsource 224\.0\.0\.5: a martian source [^\n]*\ndrop: martian_src$/);
  assert.match(t.records[1].stages.join('\n'), /ipip decap: [^\n]*\nsource 10\.244\.0\.65: route back 10\.244\.0\.64\/26 vxlan, not through the ipip tunnel it came in on: strict reverse-path filtering \(rp_filter 1\) drops it\ndrop: reverse_path$/);
  assert.match(t.records[2].stages.join('\n'), /source 198\.51\.100\.7: route back not a pod route \(the node's own table\), not through the vxlan tunnel [^\n]*\ndrop: reverse_path$/);
});

test('IPv6 from the underlay: ::, ::1, multicast and link-local sources dropped martian_src; an IPv4-mapped one (which Linux forwards) and any other delivered, with rp_filter strict too (the kernel has no IPv6 reverse-path filter)', () => {
  const h = makeHarness6();
  h.pipe.rpFilter = 1;
  const a = h.port('caliA');
  const send = (src: string) => {
    const f = frame6('v6pipe_a_to_b');
    f.set(parseMac(NODE1_MAC), 0);
    f.set([0x02, 0, 0x5e, 0, 0, 0x09], 6);
    f.set(parseIpv6Bytes('fd00:10:244::1'), 14 + 24);
    f.set(parseIpv6Bytes(src), 14 + 8);
    fixIcmpv6Checksum(f);
    h.receive(h.infra.underlay, f);
  };
  const martians = ['::', '::1', 'ff02::1', 'ff0e::1', 'fe80::1', 'febf::1'];
  for (const src of martians) {
    assert.ok(isMartianSrc6(parseIpv6Bytes(src), 0), src);
    assert.is(outcome(h, a, () => send(src)), 'martian_src', src);
  }
  for (const src of ['::ffff:a00:1', '::2', 'fec0::1', '2001:db8::7', 'fd00:10:244::41']) {
    assert.not.ok(isMartianSrc6(parseIpv6Bytes(src), 0), src);
    assert.is(outcome(h, a, () => send(src)), 'delivered', src);
  }
  assert.is(h.pipe.counters[Reason.MARTIAN_SRC], martians.length);
});

test.run();
