// A DescFlag.SUPER descriptor (a pod's TCP super-frame handed on whole, native/rxsuper.h) through
// the pipeline: the outer IPv4 ids its packets take, and an ICMP error built in it (one packet).
// MemoryIO counts a SUPER descriptor's send as its segments, as the addon does.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Reason, Event, PortCounter } from '../../src/dataplane/counters';
import { DescFlag } from '../../src/dataplane/frame-pool';
import { makeHarness, frame, onlyFrame, u16, NODE2_MAC } from './helpers';
import { makeHarness6, frame6, RV6, NODE2_6, NODE2_MAC6 } from './helpers6';
import { parseIpv6Bytes } from '../../src/packet';

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

test.run();
