// A DescFlag.SUPER descriptor (a pod's TCP super-frame handed on whole, native/rxsuper.h) through
// the pipeline: the outer IPv4 ids its packets take, and an ICMP error built in it (one packet).
// MemoryIO counts a SUPER descriptor's send as its segments, as the addon does.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Reason, Event, PortCounter } from '../../src/dataplane/counters';
import { DescFlag } from '../../src/dataplane/frame-pool';
import { makeHarness, frame, onlyFrame, takeAll, nothingSent, assertBytes, u16, NODE2, NODE2_MAC } from './helpers';
import { FAMILY_V4 } from '../../src/dataplane/neighbor-queue';
import { parseIpv6Bytes, parseMac } from '../../src/packet';
import { TraceSession, parseTraceFilter } from '../../src/dataplane/trace';
import { makeHarness6, frame6, RV6, NODE2_6, NODE2_MAC6 } from './helpers6';

const RESOLVED = { neighbors: { '10.99.0.2': NODE2_MAC } };

/** Frame f as a super-frame of `segs` segments (each as long as f). */
const sup = (f: Uint8Array, segs: number) => ({ bytes: f, flags: DescFlag.SUPER, segs, more: (segs - 1) * (f.length - 14) });

for (const via of ['underlay', 'tx4'] as const) {
  test(`VXLAN (${via}): a super-frame's packets take outer ids id..id+segs-1 (cut with id + k), the next packet's id follows them`, () => {
    const h = makeHarness(via === 'underlay' ? RESOLVED : {});
    const port = via === 'underlay' ? h.infra.underlay : h.infra.tx4;
    const ip = via === 'underlay' ? 14 : 0;
    const input = frame('a_to_rv');
    h.receive(h.port('caliA'), sup(input, 10));
    const s = onlyFrame(h, port, 'super-frame');
    assert.is(s.flags! & DescFlag.SUPER, DescFlag.SUPER, 'sent whole');
    assert.is(s.segs, 10);
    h.receive(h.port('caliA'), input);
    const next = onlyFrame(h, port, 'next').bytes;
    assert.is(u16(next, ip + 4), (u16(s.bytes, ip + 4) + 10) & 0xffff, 'next id after the super-frame\'s 10');
    h.receive(h.port('caliA'), input);
    assert.is(u16(onlyFrame(h, port, 'plain').bytes, ip + 4), (u16(next, ip + 4) + 1) & 0xffff, 'a plain packet takes one');
    assert.is(h.portCounter(port, PortCounter.TX), 12);
  });
}

test('TTL 1 on a super-frame from a pod: ONE ICMP time exceeded (not a super-frame), the other segments dropped ttl_expired', () => {
  const h = makeHarness(RESOLVED);
  const a = h.port('caliA');
  h.receive(a, sup(frame('a_ttl1'), 5));
  const out = onlyFrame(h, a, 'time exceeded');
  assert.is(out.bytes[34], 11);
  assert.is(out.flags! & DescFlag.SUPER, 0, 'one packet');
  assert.is(h.portCounter(a, PortCounter.TX), 1, 'one sent');
  assert.is(h.portCounter(a, PortCounter.RX), 5);
  assert.is(h.portCounter(a, PortCounter.DROPS), 4, 'the other segments');
  assert.is(h.pipe.counters[Reason.TTL_EXPIRED], 5);
  assert.is(h.pipe.counters[Event.ICMP_SENT], 1);
});

test('a super-frame over the path MTU with DF: ONE ICMP fragmentation needed, the other segments dropped frag_needed', () => {
  const h = makeHarness(RESOLVED);
  const a = h.port('caliA');
  h.receive(a, sup(frame('a_big_df'), 3));
  const out = onlyFrame(h, a, 'frag needed');
  assert.is(out.bytes[34], 3);
  assert.is(out.bytes[35], 4);
  assert.is(out.flags! & DescFlag.SUPER, 0, 'one packet');
  assert.is(h.portCounter(a, PortCounter.TX), 1);
  assert.is(h.portCounter(a, PortCounter.DROPS), 2);
  assert.is(h.pipe.counters[Reason.FRAG_NEEDED], 3);
});

test('IPv6: a super-frame too big for the path: ONE ICMPv6 packet too big, the other segments dropped frag_needed', () => {
  const h = makeHarness6({ neighbors6: { [NODE2_6]: NODE2_MAC6 } });
  const a = h.port('caliA');
  const big = frame6('v6_big');
  big.set(parseIpv6Bytes(RV6), 14 + 24);
  h.receive(a, sup(big, 4));
  const out = onlyFrame(h, a, 'packet too big');
  assert.is(out.bytes[14 + 40], 2);
  assert.is(out.flags! & DescFlag.SUPER, 0, 'one packet');
  assert.is(h.portCounter(a, PortCounter.TX), 1);
  assert.is(h.portCounter(a, PortCounter.DROPS), 3);
  assert.is(h.pipe.counters[Reason.FRAG_NEEDED], 4);
});

test('direct route, neighbour unresolved, without the addon\'s cut (MemoryIO has none; the addon holds it whole: test/native/superhold.test.ts): of a super-frame, segment 0 waits in the neighbour queue (one packet, sent when the neighbour answers), the other segments are dropped neighbor_unresolved', () => {
  const h = makeHarness({ held: { total: 8, perNeighbor: 3 } });
  const u = h.port('tunU');
  const f = frame('u_to_rd').subarray(14).slice();
  h.receive(u, { bytes: f, flags: DescFlag.SUPER, segs: 6, more: 5 * f.length });
  nothingSent(h, 'held');
  assert.is(h.pipe.counters[Event.NEIGHBOR_QUEUED], 1);
  assert.is(h.pipe.counters[Reason.NEIGHBOR_UNRESOLVED], 5);
  assert.is(h.portCounter(u, PortCounter.DROPS), 5);
  assert.is(h.pipe.releaseHeld(FAMILY_V4, NODE2, parseMac(NODE2_MAC), 0), 1);
  const sent = takeAll(h).get(h.infra.underlay)!;
  assert.is(sent.length, 1);
  assert.is(sent[0].flags! & DescFlag.SUPER, 0, 'one packet');
  assertBytes(sent[0].bytes.subarray(34), f.subarray(20), 'segment 0\'s payload');
  assert.is(h.portCounter(h.infra.underlay, PortCounter.TX), 1);
});

test('trace: a super-frame\'s record says what the one descriptor stands for (segments, bytes as received), not one MSS packet', () => {
  const h = makeHarness(RESOLVED);
  const t = new TraceSession(parseTraceFilter([]), 2);
  h.pipe.trace = t;
  const input = frame('a_to_rv');
  h.receive(h.port('caliA'), sup(input, 10));
  h.receive(h.port('caliA'), input);
  assert.is(t.records.length, 2);
  const [r, plain] = t.records;
  const bytes = input.length + 9 * (input.length - 14);
  assert.match(r.stages[0], /^ipv4 /, 'segment 0\'s line first');
  assert.is(r.stages[1], `tcp super-frame: 10 segments, ${bytes} bytes as received (segment 0 ${input.length}; the line above is segment 0's), handed on as one descriptor: every step below is taken once for all 10, and it is cut into them where it is sent`);
  assert.ok(r.stages.some((st) => /vxlan encap/.test(st)), r.stages.join('\n'));
  assert.not.ok(plain.stages.some((st) => /super-frame/.test(st)), 'a plain packet is not one');
});

test.run();
