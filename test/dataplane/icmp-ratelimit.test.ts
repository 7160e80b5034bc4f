// The kernel's rate limits on the ICMP/ICMPv6 errors podway sends (icmp-ratelimit.ts): the global
// bucket (50 at once, 1,000/s), the per-destination one (6 at once, then 1/s IPv4, 10/s IPv6), the
// types never limited (fragmentation needed, Packet Too Big), and the pipeline's drops counted
// icmp_ratelimited. The clock is the test's (no sleeping).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { IcmpRateLimiter, DEFAULT_ICMP_LIMITS, PER_DEST_BURST } from '../../src/dataplane/icmp-ratelimit';
import { Reason, Event, PortCounter } from '../../src/dataplane/counters';
import { TraceSession, parseTraceFilter } from '../../src/dataplane/trace';
import { parseIpv6Bytes } from '../../src/packet';
import { makeHarness, frame, takeAll, onlyFrame, nothingSent, fixIpChecksum, NODE2_MAC } from './helpers';
import { makeHarness6, frame6, NODE2_6, NODE2_MAC6, RV6 } from './helpers6';
import type { Harness } from './helpers';

const RESOLVED = { neighbors: { '10.99.0.2': NODE2_MAC } };

/** How many of `n` errors to distinct IPv4 destinations the limiter lets go at `now`. */
function burst4(l: IcmpRateLimiter, n: number, now: number, first = 0x0a000000): number {
  let sent = 0;
  for (let k = 0; k < n; k++) if (l.allow4(first + k, now)) sent++;
  return sent;
}

test('global bucket: 200 errors to 200 destinations at once: about 50 go (each takes 0-2 credits, 1 on average), none 10 ms later, about 50 again after a second', () => {
  for (const seed of [1, 2, 3, 12345, 0xdeadbeef]) {
    const l = new IcmpRateLimiter(seed);
    const sent = burst4(l, 200, 1000);
    // 50 credits at 0, 1 or 2 each: 6 standard deviations either side of 50
    assert.ok(sent >= 25 && sent <= 100, `seed ${seed}: ${sent} sent of 200`);
    assert.is(l.refusedGlobal, 200 - sent);
    assert.is(burst4(l, 10, 1010, 0x0b000000), 0, 'less than 20 ms later: no refill');
    const refill = burst4(l, 200, 1030, 0x0c000000);
    assert.ok(refill >= 1 && refill <= 60, `30 ms later: about 30 credits earned, ${refill} sent`);
    assert.ok(burst4(l, 200, 3000, 0x0d000000) >= 25, 'two seconds later: a full bucket again');
  }
});

test('per destination: 6 at once, then one per second (IPv4); another destination has its own; 0 turns it off', () => {
  const l = new IcmpRateLimiter(7);
  const a = 0x0af40001;
  const b = 0x0af40002;
  let sent = 0;
  for (let k = 0; k < 20; k++) if (l.allow4(a, 5000)) sent++;
  assert.is(sent, PER_DEST_BURST);
  assert.is(l.refusedDest, 20 - PER_DEST_BURST);
  assert.ok(l.allow4(b, 5000), 'another destination');
  assert.not.ok(l.allow4(a, 5999), '999 ms later: not yet');
  assert.ok(l.allow4(a, 6000), 'a second after the burst: one more');
  assert.not.ok(l.allow4(a, 6000));
  sent = 0;
  for (let k = 0; k < 20; k++) if (l.allow4(a, 60_000)) sent++;
  assert.is(sent, PER_DEST_BURST, 'long after: the burst again, no more');
  l.configure({ ratelimit4Ms: 0, msgsPerSec: 0 });
  sent = 0;
  for (let k = 0; k < 500; k++) if (l.allow4(a, 60_000)) sent++;
  assert.is(sent, 500, 'both limits off');
});

test('per destination, IPv6: 6 at once, then one per 100 ms (net.ipv6.icmp.ratelimit 100)', () => {
  assert.is(DEFAULT_ICMP_LIMITS.ratelimit6Ms, 100);
  const l = new IcmpRateLimiter(9);
  const b = new Uint8Array(32);
  b.set(parseIpv6Bytes('fd00:10:244::1'), 0);
  b.set(parseIpv6Bytes('fd00:10:244::2'), 16);
  let sent = 0;
  for (let k = 0; k < 20; k++) if (l.allow6(b, 0, 100)) sent++;
  assert.is(sent, PER_DEST_BURST);
  assert.ok(l.allow6(b, 16, 100), 'another destination');
  assert.not.ok(l.allow6(b, 0, 199));
  assert.ok(l.allow6(b, 0, 200));
});

test('a clock that goes back does not stop the limiter for good', () => {
  const l = new IcmpRateLimiter(3);
  burst4(l, 200, 100_000);
  assert.is(burst4(l, 5, 50_000, 0x0b000000), 0, 'the clock went back: nothing at once');
  assert.ok(burst4(l, 200, 51_000, 0x0c000000) >= 25, 'a second after the step back: a full bucket');
});

/** n copies of pod A's TTL 1 packet (a_ttl1: A to a remote pod). */
function ttl1s(n: number): Uint8Array[] {
  return Array.from({ length: n }, () => frame('a_ttl1'));
}

function harness(): Harness {
  const h = makeHarness({ ...RESOLVED, batch: 256 });
  let now = 1_000_000;
  h.pipe.clock = () => now;
  (h as Harness & { advance(ms: number): void }).advance = (ms: number) => {
    now += ms;
  };
  return h;
}
const advance = (h: Harness, ms: number): void => (h as Harness & { advance(ms: number): void }).advance(ms);

test('pipeline: 200 TTL 1 packets from one pod in one batch: 6 time exceeded back (the per-destination burst), 194 dropped as icmp_ratelimited; a second later one more', () => {
  const h = harness();
  const a = h.port('caliA');
  h.receive(a, ...ttl1s(200));
  const sent = takeAll(h);
  assert.equal([...sent.keys()], [a], 'errors only, back to the pod');
  assert.is(sent.get(a)!.length, PER_DEST_BURST);
  for (const f of sent.get(a)!) assert.is(f.bytes[34], 11, 'time exceeded');
  assert.is(h.pipe.counters[Reason.TTL_EXPIRED], 200, 'every packet expired');
  assert.is(h.pipe.counters[Event.ICMP_SENT], PER_DEST_BURST);
  assert.is(h.pipe.counters[Reason.ICMP_RATELIMITED], 200 - PER_DEST_BURST);
  assert.is(h.portCounter(a, PortCounter.DROPS), 200 - PER_DEST_BURST);
  assert.is(h.pipe.counterBytes[Reason.ICMP_RATELIMITED], (200 - PER_DEST_BURST) * frame('a_ttl1').length);
  advance(h, 999);
  h.receive(a, ...ttl1s(3));
  nothingSent(h, '999 ms later');
  advance(h, 1);
  h.receive(a, ...ttl1s(3));
  assert.is(onlyFrame(h, a, 'a second later').bytes[34], 11);
  assert.is(h.pipe.counters[Reason.ICMP_RATELIMITED], 200 - PER_DEST_BURST + 5);
});

test('pipeline: without the per-destination limit, 200 TTL 1 packets in one batch get about the global burst (50) of errors, the rest counted; a second later as many again', () => {
  const h = harness();
  h.pipe.icmpLimit.configure({ ratelimit4Ms: 0 });
  const a = h.port('caliA');
  h.receive(a, ...ttl1s(200));
  const n = h.io.take(a).length;
  assert.ok(n >= 25 && n <= 100, `${n} errors`);
  assert.is(h.pipe.counters[Event.ICMP_SENT], n);
  assert.is(h.pipe.counters[Reason.ICMP_RATELIMITED], 200 - n);
  advance(h, 1000);
  h.receive(a, ...ttl1s(200));
  const m = h.io.take(a).length;
  assert.ok(m >= 25 && m <= 100, `${m} errors a second later`);
});

test('pipeline: fragmentation needed is never limited (PMTU discovery): 100 big DF packets, 100 errors', () => {
  const h = harness();
  const a = h.port('caliA');
  h.receive(a, ...Array.from({ length: 100 }, () => frame('a_big_df')));
  const out = h.io.take(a);
  assert.is(out.length, 100);
  for (const f of out) assert.is(f.bytes[35], 4, 'fragmentation needed');
  assert.is(h.pipe.counters[Reason.ICMP_RATELIMITED], 0);
});

test('pipeline: a martian destination\'s host unreachable is limited too (type 3 other than code 4)', () => {
  const h = harness();
  h.pipe.tx4Port = h.infra.tx4;
  const a = h.port('caliA');
  const f = frame('a_ttl1');
  f[22] = 64;
  f.set([127, 0, 0, 1], 30);
  fixIpChecksum(f, 14);
  h.receive(a, ...Array.from({ length: 10 }, () => f.slice()));
  const out = h.io.take(a);
  assert.is(out.length, PER_DEST_BURST);
  for (const e of out) assert.equal([e.bytes[34], e.bytes[35]], [3, 1], 'host unreachable');
  assert.is(h.pipe.counters[Reason.MARTIAN_DST], 10);
  assert.is(h.pipe.counters[Reason.ICMP_RATELIMITED], 10 - PER_DEST_BURST);
});

test('pipeline: a trace shows the rate-limited packet as dropped icmp_ratelimited', () => {
  const h = harness();
  h.pipe.icmpLimit.configure({ msgsPerSec: 1000, msgsBurst: 50, ratelimit4Ms: 1000 });
  const a = h.port('caliA');
  h.receive(a, ...ttl1s(PER_DEST_BURST));
  h.io.take(a);
  const t = new TraceSession(parseTraceFilter(['host', '10.244.0.1']), 4);
  h.pipe.trace = t;
  h.receive(a, frame('a_ttl1'));
  nothingSent(h, 'limited');
  const stages = t.records.flatMap((r) => r.stages);
  assert.ok(stages.some((s) => /ttl 1: expired/.test(s)), JSON.stringify(stages));
  assert.ok(stages.includes('drop: icmp_ratelimited'), JSON.stringify(stages));
});

test('pipeline6: 20 hop-limit-1 packets from one pod: 6 time exceeded, 14 icmp_ratelimited; 100 ms later one more; Packet Too Big never limited', () => {
  const h = makeHarness6({ neighbors6: { [NODE2_6]: NODE2_MAC6 }, batch: 64 });
  let now = 5_000_000;
  h.pipe.clock = () => now;
  const a = h.port('caliA');
  const hl1 = (): Uint8Array => frame6('v6pipe_a_hlim1');
  h.receive(a, ...Array.from({ length: 20 }, hl1));
  const out = h.io.take(a);
  assert.is(out.length, PER_DEST_BURST);
  for (const f of out) assert.is(f.bytes[14 + 40], 3, 'time exceeded');
  assert.is(h.pipe.counters[Reason.TTL_EXPIRED], 20);
  assert.is(h.pipe.counters[Reason.ICMP_RATELIMITED], 20 - PER_DEST_BURST);
  now += 99;
  h.receive(a, hl1());
  nothingSent(h, '99 ms later');
  now += 1;
  h.receive(a, hl1());
  assert.is(onlyFrame(h, a, '100 ms later').bytes[14 + 40], 3);
  const big = frame6('v6_big');
  big.set(parseIpv6Bytes(RV6), 14 + 24);
  h.receive(a, ...Array.from({ length: 30 }, () => big.slice()));
  const ptb = h.io.take(a);
  assert.is(ptb.length, 30, 'every Packet Too Big sent');
  for (const f of ptb) assert.is(f.bytes[14 + 40], 2);
  assert.is(h.pipe.counters[Reason.ICMP_RATELIMITED], 20 - PER_DEST_BURST + 1);
});

test.run();
