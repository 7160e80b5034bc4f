// The underlay neighbour table: only wanted addresses, kernel-like states driven by an injected
// clock, MAC changes at once, withdrawal after unanswered probes, a bound, and no allocation on
// the per-packet and per-reply paths.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { collectionsDuring } from '../helpers/gc';
import { NeighborTable, NeighborTableOptions } from '../../src/dataplane/neighbors';
import { Neighbors6 } from '../../src/dataplane/engine6';
import type { Pipeline } from '../../src/dataplane/pipeline';
import { formatMac } from '../../src/packet/ethernet';
import { parseIpv4 } from '../../src/packet/ipv4';
import { prng } from '../packet/helpers';

// Addresses above 2^31 on purpose: the table keys by `ip | 0`, and these are negative there.
const A = parseIpv4('192.168.10.1');
const B = parseIpv4('192.168.10.2');
const C = parseIpv4('192.168.10.3');
const MAC_A = [0x02, 0x00, 0x00, 0x00, 0x0a, 0x01];
const MAC_A2 = [0x02, 0x00, 0x00, 0x00, 0x0a, 0x99];
const MAC_B = [0x02, 0x00, 0x00, 0x00, 0x0b, 0x01];

/** An Ethernet+ARP reply at `f` in a larger buffer, as the pipeline sees it; the sender MAC is at f + 22. */
function arpFrame(op: 1 | 2, mac: number[], spa: number, f = 30): { b: Uint8Array; off: number } {
  const b = new Uint8Array(f + 60);
  b.fill(0xff, f, f + 6);
  b.set(mac, f + 6);
  b[f + 12] = 0x08; b[f + 13] = 0x06;
  b.set([0, 1, 0x08, 0, 6, 4, 0, op], f + 14);
  b.set(mac, f + 22);
  b[f + 28] = spa >>> 24; b[f + 29] = (spa >>> 16) & 255; b[f + 30] = (spa >>> 8) & 255; b[f + 31] = spa & 255;
  return { b, off: f + 22 };
}

function reply(t: NeighborTable, ip: number, mac: number[], now: number): boolean {
  const { b, off } = arpFrame(2, mac, ip);
  return t.onReply(ip, b, off, now);
}

function stateOf(t: NeighborTable, ip: number, now: number) {
  const ipText = `${ip >>> 24}.${(ip >>> 16) & 255}.${(ip >>> 8) & 255}.${ip & 255}`;
  return t.entries(now).find((e) => e.ip === ipText);
}

function table(opts: NeighborTableOptions = {}): NeighborTable {
  return new NeighborTable({ now: () => 0, ...opts });
}

test('only wanted addresses are learned; others are counted as unsolicited and not stored', () => {
  const t = table();
  t.want([A, B]);
  assert.is(t.size, 2);
  assert.is(t.mac(A), undefined, 'nothing known before a reply');
  assert.ok(reply(t, A, MAC_A, 0), 'a first MAC must be written into the next hops');
  assert.equal([...t.mac(A)!], MAC_A);
  assert.not.ok(reply(t, C, MAC_B, 0), 'C is not wanted');
  assert.is(t.mac(C), undefined);
  assert.is(t.size, 2);
  const c = t.counters();
  assert.is(c.learned, 1);
  assert.is(c.unsolicited, 1);
  assert.is(c.entries, 2);
  assert.is(c.wanted, 2);
  assert.is(stateOf(t, A, 0)!.state, 'reachable');
  assert.is(stateOf(t, B, 0)!.state, 'incomplete');
  // The same address in its signed form is the same entry.
  assert.equal([...t.mac(A | 0)!], MAC_A);
});

test('a MAC that is zero or multicast is not a neighbour\'s: ignored and counted', () => {
  const t = table();
  t.want([A]);
  assert.not.ok(reply(t, A, [0, 0, 0, 0, 0, 0], 0));
  assert.not.ok(reply(t, A, [0xff, 0xff, 0xff, 0xff, 0xff, 0xff], 0));
  assert.not.ok(reply(t, A, [0x01, 0x00, 0x5e, 0, 0, 1], 0));
  assert.is(t.mac(A), undefined);
  assert.is(t.counters().invalid, 3);
});

test('REACHABLE becomes STALE after reachableMs, still forwards, and is probed unicast', () => {
  const t = table({ reachableMs: 30_000 });
  t.want([A]);
  reply(t, A, MAC_A, 1_000);
  let r = t.tick(30_999);
  assert.equal(r, { probe: [], changed: [] }, 'still reachable just before reachableMs');
  assert.is(stateOf(t, A, 30_999)!.state, 'reachable');
  r = t.tick(31_000);
  assert.equal(r.probe, [A >>> 0]);
  assert.equal(r.changed, []);
  assert.is(stateOf(t, A, 31_000)!.state, 'stale');
  assert.equal([...t.mac(A)!], MAC_A, 'a STALE MAC is still used');
  assert.equal([...t.unicastTo(A)!], MAC_A, 'the first re-probe goes to the cached MAC');
});

test('a reply to a STALE probe makes the entry REACHABLE again without rewriting next hops', () => {
  const t = table();
  t.want([A]);
  reply(t, A, MAC_A, 0);
  assert.equal(t.tick(30_000).probe, [A >>> 0]);
  assert.not.ok(reply(t, A, MAC_A, 30_010), 'same MAC: nothing to rewrite');
  const e = stateOf(t, A, 30_010)!;
  assert.is(e.state, 'reachable');
  assert.is(e.confirmedAgoMs, 0);
  assert.is(e.probes, 0);
  assert.equal(t.tick(31_000).probe, [], 'no more probes once confirmed');
  assert.equal(t.tick(59_999).probe, []);
  assert.equal(t.tick(60_010).probe, [A >>> 0], 'stale again reachableMs after the confirmation');
  assert.is(t.counters().confirmed, 1);
});

test('N unanswered STALE probes: FAILED, the MAC withdrawn, retried after the hold-down', () => {
  const t = table({ probes: 3, retransMs: 1_000, holdDownMs: 10_000 });
  t.want([A]);
  reply(t, A, MAC_A, 0);
  assert.equal(t.tick(30_000).probe, [A >>> 0]);
  assert.ok(t.unicastTo(A), 'probe 1 unicast');
  assert.equal(t.tick(30_500).probe, [], 'retransMs between probes');
  assert.equal(t.tick(31_000).probe, [A >>> 0]);
  assert.ok(t.unicastTo(A), 'probe 2 unicast');
  assert.equal(t.tick(32_000).probe, [A >>> 0]);
  assert.is(t.unicastTo(A), undefined, 'the last probe is broadcast, to find a MAC that changed silently');
  assert.ok(t.mac(A), 'still forwarding while probing');
  const r = t.tick(33_000);
  assert.equal(r.probe, []);
  assert.equal(r.changed, [{ ip: A >>> 0, mac: null }]);
  assert.is(t.mac(A), undefined, 'withdrawn: traffic takes the kernel path');
  assert.is(stateOf(t, A, 33_000)!.state, 'failed');
  assert.not.ok(t.request(A, 33_001), 'no requests during the hold-down');
  assert.not.ok(t.request(A, 42_999));
  assert.equal(t.tick(42_999).probe, []);
  assert.equal(t.tick(43_000).probe, [A >>> 0], 'a new round after the hold-down');
  assert.is(stateOf(t, A, 43_000)!.state, 'incomplete');
  assert.is(t.unicastTo(A), undefined, 'an INCOMPLETE entry is probed by broadcast');
  assert.ok(reply(t, A, MAC_A, 43_100), 'the returning neighbour is written into the next hops again');
  assert.equal([...t.mac(A)!], MAC_A);
  const c = t.counters();
  assert.is(c.failed, 1);
  assert.is(c.withdrawn, 1);
  assert.is(c.learned, 2);
  assert.is(c.probes, 4);
});

test('INCOMPLETE: probes every retransMs, FAILED after N, counted; request() follows the same schedule', () => {
  const t = table({ probes: 3, retransMs: 1_000, holdDownMs: 10_000 });
  t.want([A]);
  assert.ok(t.request(A, 0), 'a new entry is probed at once');
  assert.equal(t.tick(0).probe, [], 'the request took this slot');
  assert.equal(t.tick(1_000).probe, [A >>> 0]);
  assert.ok(t.request(A, 2_000), 'the third probe, asked by traffic');
  assert.not.ok(t.request(A, 2_999));
  const r = t.tick(3_000);
  assert.equal(r, { probe: [], changed: [{ ip: A >>> 0, mac: null }] }, 'reported: its next hops are marked failed (their packets dropped and counted)');
  assert.ok(t.failed(A));
  assert.is(stateOf(t, A, 3_000)!.state, 'failed');
  assert.is(t.counters().failed, 1);
  assert.not.ok(t.request(A, 12_999), 'hold-down');
  assert.ok(t.request(A, 13_000), 'a new round after the hold-down');
  assert.is(t.counters().probes, 4);
});

test('request() is rate-limited per address and refuses addresses that are not wanted or resolved', () => {
  const t = table({ retransMs: 1_000 });
  t.want([A, B]);
  let sentA = 0;
  let sentB = 0;
  // A batch of 256 packets to each unresolved next hop in the same millisecond: one request each.
  for (let i = 0; i < 256; i++) {
    if (t.request(A, 5)) sentA++;
    if (t.request(B, 5)) sentB++;
  }
  assert.is(sentA, 1);
  assert.is(sentB, 1);
  assert.not.ok(t.request(A, 1_004));
  assert.ok(t.request(A, 1_005));
  assert.not.ok(t.request(C, 0), 'C is not wanted');
  reply(t, B, MAC_B, 1_006);
  assert.not.ok(t.request(B, 5_000), 'B is resolved');
  assert.is(t.size, 2);
});

test('a different MAC for a wanted address is taken at once and reported; a second answer within lockMs is not', () => {
  const t = table({ lockMs: 1_000 });
  t.want([A]);
  reply(t, A, MAC_A, 0);
  assert.ok(reply(t, A, MAC_A2, 5_000), 'changed MAC: next hops must be rewritten');
  assert.equal([...t.mac(A)!], MAC_A2);
  assert.is(t.counters().macChanged, 1);
  // Two hosts answering the same broadcast: the first answer wins, no flapping.
  assert.not.ok(reply(t, A, MAC_A, 5_200));
  assert.equal([...t.mac(A)!], MAC_A2);
  assert.is(t.counters().locked, 1);
  assert.ok(reply(t, A, MAC_A, 6_000), 'past the lock window a change is taken');
  assert.equal([...t.mac(A)!], MAC_A);
  assert.is(t.counters().macChanged, 2);
  // The reported MAC is the table's own view, so writing it into next hops needs no copy here.
  const { b, off } = arpFrame(2, MAC_A2, A);
  assert.ok(t.onReply(A, b, off, 10_000));
  b.fill(0); // the caller's frame buffer is reused for the next batch
  assert.equal([...t.mac(A)!], MAC_A2, 'the table copied the MAC out of the frame');
});

test('a gratuitous ARP with a new MAC is taken at once as STALE and verified by a unicast probe', () => {
  const t = table();
  t.want([A, B]);
  reply(t, A, MAC_A, 0);
  const g = arpFrame(1, MAC_A2, A);
  assert.ok(t.onAnnounce(A, g.b, g.off, 100));
  assert.equal([...t.mac(A)!], MAC_A2);
  assert.is(stateOf(t, A, 100)!.state, 'stale');
  assert.equal(t.tick(1_000).probe.filter((ip) => ip === A >>> 0), [A >>> 0]);
  assert.equal([...t.unicastTo(A)!], MAC_A2, 'the probe checks the announced MAC');
  assert.not.ok(reply(t, A, MAC_A2, 1_010));
  assert.is(stateOf(t, A, 1_010)!.state, 'reachable');
  assert.not.ok(t.onAnnounce(A, g.b, g.off, 1_020), 'the same MAC announced again changes nothing');
  assert.is(stateOf(t, A, 1_020)!.state, 'reachable');
  // An announcement of a neighbour not yet resolved resolves it.
  const gb = arpFrame(1, MAC_B, B);
  assert.ok(t.onAnnounce(B, gb.b, gb.off, 1_030));
  assert.equal([...t.mac(B)!], MAC_B);
  const gc = arpFrame(1, MAC_B, C);
  assert.not.ok(t.onAnnounce(C, gc.b, gc.off, 1_040));
  assert.is(t.size, 2);
  const c = t.counters();
  assert.is(c.macChanged, 1);
  assert.is(c.learned, 2);
  assert.is(c.unsolicited, 1);
});

test('a STALE entry takes a different MAC from the answer to its broadcast probe at once (no lock: how a silent MAC change is found)', () => {
  const t = table({ reachableMs: 2_000, retransMs: 300, probes: 3, lockMs: 1_000 });
  t.want([A]);
  reply(t, A, MAC_A, 0);
  assert.equal(t.tick(2_000).probe, [A >>> 0]);
  assert.ok(t.unicastTo(A), 'unicast to the old MAC: unanswered');
  assert.equal(t.tick(2_300).probe, [A >>> 0]);
  assert.equal(t.tick(2_600).probe, [A >>> 0]);
  assert.is(t.unicastTo(A), undefined, 'broadcast');
  assert.ok(reply(t, A, MAC_A2, 2_610), 'the new MAC, 0.61 s after the entry went STALE, is taken');
  assert.equal([...t.mac(A)!], MAC_A2);
  assert.is(stateOf(t, A, 2_610)!.state, 'reachable');
  assert.not.ok(reply(t, A, MAC_A, 2_700), 'a second answer to the same broadcast is locked');
  assert.is(t.counters().macChanged, 1);
  assert.is(t.counters().locked, 1);
});

test('an ordinary request naming a new MAC is held by the lock window of a REACHABLE entry; a gratuitous one is not', () => {
  const t = table({ lockMs: 1_000 });
  t.want([A]);
  reply(t, A, MAC_A, 0);
  const r = arpFrame(1, MAC_A2, A);
  assert.not.ok(t.onAnnounce(A, r.b, r.off, 500, false), 'request within the lock window');
  assert.is(t.counters().locked, 1);
  assert.ok(t.onAnnounce(A, r.b, r.off, 600, true), 'gratuitous ARP: taken');
  assert.equal([...t.mac(A)!], MAC_A2);
  assert.is(t.counters().announced, 1);
});

test('FAILED again and again: the hold-down doubles up to maxHoldDownMs, an answer resets it; failed() while unresolved after a failure', () => {
  const t = table({ probes: 1, retransMs: 1_000, holdDownMs: 10_000, maxHoldDownMs: 30_000 });
  t.want([A]);
  let now = 0;
  const failAt: number[] = [];
  // Each round: one probe, then FAILED at the next due tick; the next round starts after the hold-down.
  for (let k = 0; k < 5; k++) {
    let r = t.tick(now);
    while (r.probe.length === 0) r = t.tick((now += 100));
    while (r.changed.length === 0) r = t.tick((now += 100));
    assert.equal(r.changed, [{ ip: A >>> 0, mac: null }]);
    assert.ok(t.failed(A));
    failAt.push(now);
  }
  const gaps = failAt.slice(1).map((x, k) => x - failAt[k]);
  // gap = hold-down + one retrans interval (the round's probe, then its failure)
  assert.equal(gaps, [11_000, 21_000, 31_000, 31_000]);
  assert.is(t.counters().failedNow, 1);
  // status's "unreachable since": the first failed round, kept through the later ones
  assert.equal(t.failedEntries(), [{ key: A >>> 0, since: failAt[0] }]);
  assert.ok(reply(t, A, MAC_A, now + 1), 'a late answer during the hold-down still resolves it');
  assert.not.ok(t.failed(A));
  assert.is(t.counters().failedNow, 0);
  assert.equal(t.failedEntries(), [], 'answered: no longer listed');
  // reset: the next failure waits the base hold-down again
  now += 1;
  let r = t.tick((now += 30_000));
  while (r.changed.length === 0) r = t.tick((now += 100));
  const f1 = now;
  r = t.tick(now);
  while (r.probe.length === 0) r = t.tick((now += 100));
  assert.is(now - f1, 10_000, 'hold-down back to the base after an answer');
  assert.equal(t.failedEntries(), [{ key: A >>> 0, since: f1 }], 'a new outage: since its own first failed round');
});

test('the bound: wanted addresses beyond maxEntries are refused, counted, and reported once per overflow', () => {
  const t = table({ maxEntries: 4 });
  const ips = [1, 2, 3, 4, 5, 6].map((i) => parseIpv4(`10.0.0.${i}`));
  let r = t.want(ips);
  assert.equal(r, { added: 4, dropped: 0, refused: 2, firstRefusal: true });
  assert.is(t.size, 4);
  r = t.want(ips);
  assert.equal(r, { added: 0, dropped: 0, refused: 2, firstRefusal: false }, 'the same overflow: no second log');
  const c = t.counters();
  assert.is(c.refused, 4);
  assert.is(c.wanted, 6);
  assert.is(c.entries, 4);
  // A refused address is not tracked: no requests, its replies are unsolicited.
  assert.not.ok(t.request(ips[5], 0));
  assert.not.ok(reply(t, ips[5], MAC_B, 0));
  assert.is(t.mac(ips[5]), undefined);
  assert.is(t.counters().unsolicited, 1);
  r = t.want(ips.slice(0, 3));
  assert.equal(r, { added: 0, dropped: 1, refused: 0, firstRefusal: false });
  r = t.want(ips);
  assert.equal(r, { added: 1, dropped: 0, refused: 2, firstRefusal: true }, 'a new overflow is reported again');
});

test('want() drops entries no longer wanted and keeps the state of those still wanted', () => {
  const t = table();
  t.want([A, B]);
  reply(t, A, MAC_A, 0);
  reply(t, B, MAC_B, 0);
  const r = t.want([B, C, C, 0]);
  assert.equal(r, { added: 1, dropped: 1, refused: 0, firstRefusal: false }, 'duplicates and 0.0.0.0 are not entries');
  assert.is(t.size, 2);
  assert.is(t.mac(A), undefined);
  assert.not.ok(reply(t, A, MAC_A, 10), 'A is no longer wanted');
  assert.equal([...t.mac(B)!], MAC_B, 'B kept its MAC');
  assert.is(stateOf(t, B, 10)!.state, 'reachable');
  assert.is(stateOf(t, C, 10)!.state, 'incomplete');
  t.want([]);
  assert.is(t.size, 0);
});

test('a flood of 100,000 replies with random senders leaves the table at the wanted set and is counted', () => {
  const t = table({ maxEntries: 4096 });
  const wanted = [A, B, C];
  t.want(wanted);
  reply(t, A, MAC_A, 0);
  const rnd = prng(0x5eed);
  const { b, off } = arpFrame(2, MAC_B, 0);
  const wantedSet = new Set(wanted.map((ip) => ip >>> 0));
  let expected = 0;
  let reported = 0;
  for (let i = 0; i < 100_000; i++) {
    const ip = (rnd() * 4294967296) >>> 0;
    for (let k = 0; k < 6; k++) b[off + k] = (rnd() * 256) | 0;
    b[off] &= 0xfe; // unicast, so none is ignored as invalid
    if (!wantedSet.has(ip)) expected++;
    if (t.onReply(ip, b, off, 1 + i)) reported++;
  }
  assert.is(t.size, wanted.length);
  assert.ok(t.size <= t.counters().wanted);
  assert.is(t.counters().unsolicited, expected);
  assert.is(reported, 100_000 - expected);
  assert.equal([...t.mac(A)!], MAC_A, 'the wanted neighbour was not overwritten');
  assert.is(t.entries().length, wanted.length);
});

test('entries() shows address, MAC, state and ages for podway status', () => {
  let clock = 0;
  const t = new NeighborTable({ now: () => clock });
  t.want([B, A]);
  reply(t, A, MAC_A, 100);
  clock = 600;
  assert.equal(t.entries(), [
    { ip: '192.168.10.1', mac: '02:00:00:00:0a:01', state: 'reachable', ageMs: 500, confirmedAgoMs: 500, probes: 0 },
    { ip: '192.168.10.2', mac: null, state: 'incomplete', ageMs: 600, confirmedAgoMs: null, probes: 0 },
  ]);
});

test('request(), onReply() and mac() do not allocate on their repeat paths (no scavenge in 2M rounds)', async () => {
  const t = table();
  t.want([A, B]);
  reply(t, A, MAC_A, 0);
  const { b, off } = arpFrame(2, MAC_A, A);
  const a = A | 0; // small integers, so the calls below box nothing themselves
  const bb = B | 0;
  const run = (n: number) => {
    let sent = 0;
    for (let i = 0; i < n; i++) {
      if (t.request(bb, 7)) sent++;
      if (t.onReply(a, b, off, 7)) sent++;
      if (t.mac(a) === undefined) sent++;
    }
    return sent;
  };
  let sent = 0;
  const kinds = await collectionsDuring(() => run(200_000), () => (sent = run(2_000_000)));
  assert.is(sent, 0, 'B was probed during the warm-up at the same time; A stays confirmed');
  // A boxed number or an object per call would be tens of MB of garbage here: many scavenges
  // (an unsigned key above 2^31, boxed per lookup, was measured at 47).
  assert.is(kinds.length, 0, `garbage collections during the calls: ${kinds.join(',')}`);
});

test('IPv6 (Neighbors6): request() for a resolved neighbour and a repeated solicited NA do not allocate (the 16-byte lookup is an index, no address text)', async () => {
  // Neighbors6 touches the pipeline only to send or to write next hops; neither happens here.
  const sent: number[] = [];
  const n6 = new Neighbors6({ v6: { nh: null, hasNodeIp6: true, nodeIp6: new Uint8Array(16) } } as unknown as Pipeline, () => sent.push(1), () => new Uint8Array(6), () => {});
  n6.want(['fd99::2', 'fd99::3', 'fd99::1:0:2']);
  // node2's solicited NA as it sits in a received frame: flags at target - 4, the MAC after the target
  const f = new Uint8Array(200);
  const target = 100;
  f[target - 4] = 0x60;
  f.set([0xfd, 0x99, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2], target);
  f.set([0x52, 0x54, 0, 0x99, 0, 2], target + 18);
  n6.onAdvert(f, target, target + 18, 7);
  assert.is(formatMac(n6.neighbor6('fd99::2')!), '52:54:00:99:00:02');
  sent.length = 0;
  const run = (n: number) => {
    for (let i = 0; i < n; i++) {
      n6.request(f, target, 7);
      n6.onAdvert(f, target, target + 18, 7);
    }
  };
  const kinds = await collectionsDuring(() => run(200_000), () => run(1_000_000));
  assert.is(sent.length, 0, 'a resolved neighbour is not solicited per packet');
  assert.is(n6.table.counters().confirmed, 1_400_000, 'every repeated NA confirmed it (the first one taught the MAC)');
  assert.is(kinds.length, 0, `garbage collections during the calls: ${kinds.join(',')}`);
});

test.run();
