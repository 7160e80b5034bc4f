// The pending queue of unresolved underlay neighbours (neighbor-queue.ts) on its own, then inside
// the pipeline (MemoryIO harness): frames held per neighbour and in all up to their bounds, copied
// out of the receive descriptors, released oldest first with the MAC given, dropped by neighbour
// (failed) or by age, and counted.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { FramePool } from '../../src/dataplane/frame-pool';
import { NeighborQueue, FAMILY_V4, FAMILY_V6, FAMILY_POD } from '../../src/dataplane/neighbor-queue';
import { Reason, Event, PortCounter } from '../../src/dataplane/counters';
import { parseIpv6Bytes, toHex } from '../../src/packet';
import { makeHarness, frame, nothingSent, takeAll, fixIpChecksum, NODE2, NODE2_MAC, assertBytes, T, onlyFrame } from './helpers';
import { makeHarness6, frame6, RV6, NODE2_6 } from './helpers6';
import { parseMac } from '../../src/packet';
import { collectionsDuring } from '../helpers/gc';

const BATCH = 8;
const FIRST = BATCH + 8;
const MAC_X = Uint8Array.from([0x02, 0, 0, 0, 0, 0x0a]);
/** The node's underlay MAC now (written as the source on release). */
const SRC = Uint8Array.from([0x02, 0, 0, 0, 0, 0x0b]);

/** A pool like the engine's: receive descriptors [0, BATCH), the queue's from FIRST. */
function queue(total = 6, perNeighbor = 3, maxTicks = 2): { pool: FramePool; q: NeighborQueue } {
  const pool = new FramePool(FIRST + total);
  return { pool, q: new NeighborQueue(pool, FIRST, total, perNeighbor, maxTicks) };
}

/** Put a frame of `len` bytes tagged `tag` into receive descriptor d (destination MAC zeros). */
function put(pool: FramePool, d: number, tag: number, len = 60): void {
  pool.len[d] = len;
  const f = pool.start(d);
  pool.bytes.fill(0, f, f + 6);
  pool.bytes.fill(tag, f + 6, f + len);
}

/** The frames listed at txList[at..at+n): [first byte after the MACs, the destination MAC]. */
function listed(pool: FramePool, at: number, n: number): Array<[number, string]> {
  const out: Array<[number, string]> = [];
  for (let j = 0; j < n; j++) {
    const d = pool.txList[at + j];
    const f = pool.start(d);
    out.push([pool.bytes[f + 12], toHex(pool.bytes, f, 6)]);
  }
  return out;
}

test('held frames are copies: the receive descriptor is reused at once; release writes the MAC and lists them oldest first', () => {
  const { pool, q } = queue();
  const A = 0xc0a80a01; // above 2^31: keyed as a signed 32-bit number
  for (const tag of [1, 2, 3]) {
    put(pool, 0, tag);
    assert.ok(q.hold(0, FAMILY_V4, A, 5), `frame ${tag} held`);
  }
  put(pool, 0, 99); // the next receive overwrites descriptor 0
  assert.is(q.size, 3);
  assert.is(q.count(FAMILY_V4, A), 3);
  assert.is(q.count(FAMILY_V6, A), 0, 'another family, another neighbour');
  const n = q.release(FAMILY_V4, A, MAC_X, 0, FIRST, SRC);
  assert.is(n, 3);
  assert.equal(listed(pool, FIRST, 3), [[1, '02000000000a'], [2, '02000000000a'], [3, '02000000000a']]);
  assert.is(toHex(pool.bytes, pool.start(pool.txList[FIRST]) + 6, 6), '02000000000b', 'the source MAC is the underlay\'s now');
  for (let j = 0; j < 3; j++) assert.ok(pool.txList[FIRST + j] >= FIRST, 'queue descriptors, not receive ones');
  assert.is(pool.len[pool.txList[FIRST]], 60);
  assert.is(q.size, 0, 'freed');
  assert.is(q.release(FAMILY_V4, A, MAC_X, 0, FIRST, SRC), 0, 'nothing left to release');
});

test('bounds: perNeighbor per neighbour, total in all; a full neighbour leaves room for the others', () => {
  const { pool, q } = queue(5, 3);
  put(pool, 0, 7);
  for (let k = 0; k < 3; k++) assert.ok(q.hold(0, FAMILY_V4, 1, 0));
  assert.not.ok(q.hold(0, FAMILY_V4, 1, 0), 'a fourth frame for the same neighbour is refused');
  assert.ok(q.hold(0, FAMILY_V6, 1, 0), 'IPv6 neighbour id 1 is another neighbour');
  assert.ok(q.hold(0, FAMILY_V4, 2, 0));
  assert.not.ok(q.hold(0, FAMILY_V4, 3, 0), 'the queue is full');
  assert.is(q.size, 5);
  // releasing one neighbour frees its places for others
  assert.is(q.release(FAMILY_V4, 1, MAC_X, 0, FIRST, SRC), 3);
  assert.ok(q.hold(0, FAMILY_V4, 3, 0));
  assert.is(q.size, 3);
});

test('release order survives places freed and reused out of order', () => {
  const { pool, q } = queue(4, 3);
  put(pool, 0, 1); q.hold(0, FAMILY_V4, 10, 0); // place 0
  put(pool, 0, 2); q.hold(0, FAMILY_V4, 20, 0); // place 1
  put(pool, 0, 3); q.hold(0, FAMILY_V4, 10, 0); // place 2
  q.release(FAMILY_V4, 20, MAC_X, 0, FIRST, SRC); // frees place 1
  put(pool, 0, 4); q.hold(0, FAMILY_V4, 10, 0); // place 1 again, but the newest
  assert.equal(listed(pool, FIRST, q.release(FAMILY_V4, 10, MAC_X, 0, FIRST, SRC)).map(([t]) => t), [1, 3, 4]);
});

test('take drops one neighbour\'s frames (its failure), age drops what outlived maxTicks', () => {
  const { pool, q } = queue(6, 3, 2);
  put(pool, 0, 1);
  q.hold(0, FAMILY_V4, 1, 4);
  q.hold(0, FAMILY_V4, 2, 5);
  const dropped: Array<[number, number]> = [];
  const note = (d: number, inPort: number) => void dropped.push([pool.bytes[pool.start(d) + 6], inPort]);
  assert.is(q.take(FAMILY_V4, 1, note), 1);
  assert.equal(dropped, [[1, 4]], 'told the frame and the port it came in on');
  assert.is(q.size, 1);
  dropped.length = 0;
  assert.is(q.age(note), 0, 'one tick');
  put(pool, 0, 2);
  q.hold(0, FAMILY_V4, 3, 6); // held one tick later
  assert.is(q.age(note), 0, 'two ticks: at the bound, kept');
  assert.is(q.age(note), 1, 'three ticks: past the bound');
  assert.equal(dropped, [[1, 5]]);
  assert.is(q.age(note), 1, 'the later one goes a tick later');
  assert.equal(dropped, [[1, 5], [2, 6]]);
  assert.is(q.size, 0);
});

test('hold and release allocate nothing (no scavenge in 300k rounds of 3 held, released)', async () => {
  const { pool, q } = queue(6, 3);
  put(pool, 0, 5, 1400);
  const key = 0xc0a80a02 | 0;
  let sent = 0;
  const run = (n: number) => {
    for (let i = 0; i < n; i++) {
      q.hold(0, FAMILY_V4, key, 1);
      q.hold(0, FAMILY_V4, key, 1);
      q.hold(0, FAMILY_V4, key, 1);
      sent += q.release(FAMILY_V4, key, MAC_X, 0, FIRST, SRC);
    }
  };
  const kinds = await collectionsDuring(() => run(50_000), () => run(300_000));
  assert.is(sent, 3 * 400_000);
  assert.is(kinds.length, 0, `garbage collections during the calls: ${kinds.join(',')}`);
});

test('a queue reaching past the pool\'s descriptors is refused', () => {
  const pool = new FramePool(FIRST + 2);
  assert.throws(() => new NeighborQueue(pool, FIRST, 3), /not in the pool/);
});

// ---- in the pipeline ---------------------------------------------------------------------------

const HELD = { total: 8, perNeighbor: 3 };

/** tun pod U's packet to a pod on node2 over the direct (unencapsulated) route, IP id `id`. */
function uToRd(id: number): Uint8Array {
  const f = frame('u_to_rd').subarray(14).slice();
  f[4] = id >> 8;
  f[5] = id & 255;
  fixIpChecksum(f, 0);
  return f;
}

function expectedDirect(id: number): Uint8Array {
  const f = frame('u_to_rd_direct').slice();
  f[14 + 4] = id >> 8;
  f[14 + 5] = id & 255;
  fixIpChecksum(f, 14);
  return f;
}

test('pipeline, direct route, neighbour unresolved: held (not sent, not dropped), then sent with the MAC in arrival order; the fourth is counted neighbor_queue_full', () => {
  const h = makeHarness({ held: HELD });
  const u = h.port('tunU');
  for (const id of [101, 102, 103, 104]) h.receive(u, uToRd(id));
  nothingSent(h, 'held');
  assert.equal(h.unresolved, [NODE2, NODE2, NODE2, NODE2], 'each packet still asks the table');
  assert.is(h.pipe.counters[Event.NEIGHBOR_QUEUED], 3);
  assert.is(h.pipe.counters[Reason.NEIGHBOR_QUEUE_FULL], 1);
  assert.is(h.pipe.counters[Reason.NEIGHBOR_UNRESOLVED], 0);
  assert.is(h.portCounter(u, PortCounter.DROPS), 1, 'the refused one is a drop of its port');
  // another neighbour's answer releases nothing here
  assert.is(h.pipe.releaseHeld(FAMILY_V4, NODE2 + 1, parseMac('02:00:00:00:00:77'), 0), 0);
  nothingSent(h, 'another neighbour answered');
  assert.is(h.pipe.releaseHeld(FAMILY_V4, NODE2, parseMac(NODE2_MAC), 0), 3);
  const sent = takeAll(h);
  assert.equal([...sent.keys()], [h.infra.underlay], 'out the underlay only');
  const frames = sent.get(h.infra.underlay)!;
  assert.is(frames.length, 3);
  frames.forEach((f, k) => assertBytes(f.bytes, expectedDirect(101 + k), `held frame ${k + 1}`));
  assert.is(h.pipe.counters[Event.NEIGHBOR_QUEUE_SENT], 3);
  assert.is(h.portCounter(h.infra.underlay, PortCounter.TX), 3, 'counted as the underlay port\'s transmits');
  assert.is(h.pipe.held!.size, 0);
});

test('pipeline: a failed neighbour\'s held frames are dropped and counted neighbor_queue_timeout (with their port), so are frames aged out', () => {
  const h = makeHarness({ held: { ...HELD, maxTicks: 1 } });
  const u = h.port('tunU');
  h.receive(u, uToRd(1), uToRd(2));
  assert.is(h.pipe.dropHeld(FAMILY_V4, NODE2), 2);
  assert.is(h.pipe.counters[Reason.NEIGHBOR_QUEUE_TIMEOUT], 2);
  assert.is(h.pipe.counterBytes[Reason.NEIGHBOR_QUEUE_TIMEOUT], 2 * (uToRd(1).length + 14));
  assert.is(h.portCounter(u, PortCounter.DROPS), 2);
  h.receive(u, uToRd(3));
  assert.is(h.pipe.ageHeld(), 0);
  assert.is(h.pipe.ageHeld(), 1, 'past maxTicks');
  assert.is(h.pipe.counters[Reason.NEIGHBOR_QUEUE_TIMEOUT], 3);
  assert.is(h.pipe.releaseHeld(FAMILY_V4, NODE2, parseMac(NODE2_MAC), 0), 0, 'nothing left to send');
  nothingSent(h, 'after the drops');
});

test('pipeline without a queue: dropped as neighbor_unresolved, as before', () => {
  const h = makeHarness();
  h.receive(h.port('tunU'), uToRd(1));
  nothingSent(h, 'no queue');
  assert.is(h.pipe.counters[Reason.NEIGHBOR_UNRESOLVED], 1);
  assert.is(h.pipe.counters[Event.NEIGHBOR_QUEUED], 0);
});

/** caliA's IPv6 packet to a pod on node2 (IPv6 VXLAN), hop limit `hl` to tell them apart. */
function aToRv6(hl: number): Uint8Array {
  const f = frame6('v6pipe_a_to_b');
  f.set(parseIpv6Bytes(RV6), 14 + 24);
  f[14 + 7] = hl;
  return f;
}

test('pipeline, IPv6 VXLAN, neighbour unresolved: encapsulated and held under its Neighbors6 id; released with the MAC; no id: neighbor_unresolved', () => {
  const h = makeHarness6({ held: HELD });
  const asked: string[] = [];
  h.pipe.v6.onUnresolved6 = (b, off) => asked.push(toHex(b, off, 16));
  const node2 = toHex(parseIpv6Bytes(NODE2_6));
  h.pipe.v6.neighborId = (b, off) => (toHex(b, off, 16) === node2 ? 7 : 0);
  const a = h.port('caliA');
  h.receive(a, aToRv6(64), aToRv6(63));
  nothingSent(h, 'held');
  assert.equal(asked, [node2, node2]);
  assert.is(h.pipe.counters[Event.NEIGHBOR_QUEUED], 2);
  assert.is(h.pipe.held!.count(FAMILY_V6, 7), 2);
  const mac = parseMac('52:54:00:99:00:02');
  assert.is(h.pipe.releaseHeld(FAMILY_V6, 7, mac, 0), 2);
  const frames = takeAll(h).get(h.infra.underlay)!;
  assert.is(frames.length, 2);
  for (const [k, f] of frames.entries()) {
    assert.is(toHex(f.bytes, 0, 6), '525400990002', 'to the neighbour\'s MAC');
    assert.is(toHex(f.bytes, 12, 2), '86dd');
    assert.is(toHex(f.bytes, 14 + 24, 16), node2, 'outer destination node2');
    // outer IPv6 40 + UDP 8 + VXLAN 8 + inner Ethernet 14: the inner hop limit, decremented
    assert.is(f.bytes[14 + 70 + 7], 63 - k, `frame ${k + 1} in order`);
  }
  h.pipe.v6.neighborId = () => -1;
  h.receive(a, aToRv6(64));
  assert.is(h.pipe.counters[Reason.NEIGHBOR_TABLE_FULL], 1, 'a neighbour the table refused to track is not held');
  assert.is(h.pipe.counters[Reason.NEIGHBOR_UNRESOLVED], 0);
  assert.is(h.pipe.held!.size, 0);
  // not wanted at all (a model the engine's table has not been given yet): not held either, but
  // the table is not full
  h.pipe.v6.neighborId = () => 0;
  h.receive(a, aToRv6(64));
  assert.is(h.pipe.counters[Reason.NEIGHBOR_TABLE_FULL], 1, 'not counted as a full table');
  assert.is(h.pipe.counters[Reason.NEIGHBOR_UNRESOLVED], 1, 'counted neighbor_unresolved');
  assert.is(h.pipe.held!.size, 0);
});

test('pipeline: a neighbour the full table refused (onUnresolved false) is not held: counted neighbor_table_full at once, a drop of its port', () => {
  const h = makeHarness({ held: HELD });
  const u = h.port('tunU');
  h.pipe.onUnresolved = (ip) => ip !== NODE2;
  h.receive(u, uToRd(1), uToRd(2));
  nothingSent(h, 'refused neighbour');
  assert.is(h.pipe.counters[Reason.NEIGHBOR_TABLE_FULL], 2);
  assert.is(h.pipe.counters[Event.NEIGHBOR_QUEUED], 0);
  assert.is(h.pipe.held!.size, 0, 'nothing waits for an answer that will not come');
  assert.is(h.portCounter(u, PortCounter.DROPS), 2);
  assert.is(h.pipe.counterBytes[Reason.NEIGHBOR_TABLE_FULL], 2 * uToRd(1).length, "the bytes received");
});

test('pipeline: the unresolved path reads the clock once per batch and hands every packet of the batch that time', () => {
  const h = makeHarness({ held: { total: 16, perNeighbor: 16 } });
  const u = h.port('tunU');
  const seen: number[] = [];
  h.pipe.onUnresolved = (_ip, now) => {
    seen.push(now);
    return true;
  };
  const real = Date.now;
  let reads = 0;
  Date.now = () => {
    reads++;
    return real.call(Date) + reads * 1000; // every read a different time: a second read would show
  };
  try {
    h.receive(u, uToRd(1), uToRd(2), uToRd(3), uToRd(4));
  } finally {
    Date.now = real;
  }
  assert.is(seen.length, 4, 'each packet asked the table');
  assert.is(reads, 1, 'one clock read for the batch');
  assert.ok(seen.every((t) => t === seen[0]), `one time for the batch: ${seen.join(', ')}`);
  assert.is(h.pipe.counters[Event.NEIGHBOR_QUEUED], 4);
});

/** caliA's packet to tap pod T (whose endpoint states no MAC), IP id `id`. */
function aToT(id: number): Uint8Array {
  const f = frame('a_to_b').slice();
  f.set([T >>> 24, (T >>> 16) & 255, (T >>> 8) & 255, T & 255], 30);
  f[14 + 4] = id >> 8;
  f[14 + 5] = id & 255;
  fixIpChecksum(f, 14);
  return f;
}

/** Tap pod T's answer to the gateway's ARP request for its MAC. */
function tAnswers(): Uint8Array {
  const f = frame('arp_t_gw').slice(); // T's request for 169.254.1.1: its MACs and addresses
  f[21] = 2; // ... as a reply (sender T, target the gateway)
  f.set([0xee, 0xee, 0xee, 0xee, 0xee, 0xee], 0);
  return f;
}

test('pipeline, a local pod whose MAC is unknown: asked (onPodMacUnknown) and held; its ARP answer teaches the MAC and sends them in order from the gateway MAC', () => {
  const h = makeHarness({ held: HELD });
  const t = h.port('tapT');
  const asked: Array<[number, number]> = [];
  h.pipe.onPodMacUnknown = (port, ip) => asked.push([port, ip]);
  h.receive(h.port('caliA'), aToT(11), aToT(12));
  nothingSent(h, 'held for T\'s MAC');
  assert.equal(asked, [[t, T], [t, T]], 'T asked for (the engine rate-limits the requests)');
  assert.is(h.pipe.counters[Event.NEIGHBOR_QUEUED], 2);
  assert.is(h.pipe.held!.count(FAMILY_POD, t), 2);
  assert.is(h.pipe.counters[Reason.POD_MAC_UNKNOWN], 0);
  h.receive(t, tAnswers());
  const frames = takeAll(h).get(t)!;
  assert.is(frames.length, 2, 'both left on T\'s port');
  const tMac = toHex(frame('arp_t_gw'), 6, 6);
  frames.forEach((f, k) => {
    assert.is(toHex(f.bytes, 0, 6), tMac, 'to T\'s MAC');
    assert.is(toHex(f.bytes, 6, 6), 'eeeeeeeeeeee', 'from the gateway MAC');
    assert.is(toHex(f.bytes, 12, 2), '0800');
    assert.is((f.bytes[14 + 4] << 8) | f.bytes[14 + 5], 11 + k, 'in order');
    assert.is(f.bytes[14 + 8], aToT(1)[14 + 8] - 1, 'TTL decremented once');
  });
  assert.is(h.pipe.counters[Event.NEIGHBOR_QUEUE_SENT], 2);
  assert.is(h.pipe.counters[Event.ARP_LEARNED], 1, 'the answer counted, not dropped');
  assert.is(h.portCounter(t, PortCounter.DROPS), 0);
  // known now: delivered at once
  h.receive(h.port('caliA'), aToT(13));
  assert.is(toHex(onlyFrame(h, t, 'at once').bytes, 0, 6), tMac);
  assert.is(h.pipe.counters[Event.NEIGHBOR_QUEUED], 2);
});

test('pipeline, a local pod whose MAC is unknown: without a queue dropped pod_mac_unknown (still asked); a port closed drops what waits for it, counted', () => {
  const none = makeHarness();
  let asked = 0;
  none.pipe.onPodMacUnknown = () => asked++;
  none.receive(none.port('caliA'), aToT(1));
  nothingSent(none, 'no queue');
  assert.is(none.pipe.counters[Reason.POD_MAC_UNKNOWN], 1);
  assert.is(asked, 1, 'asked anyway: the next packet finds the MAC');
  const h = makeHarness({ held: HELD });
  const t = h.port('tapT');
  h.receive(h.port('caliA'), aToT(1));
  assert.is(h.pipe.held!.size, 1);
  h.pipe.clearPort(t);
  assert.is(h.pipe.held!.size, 0, 'gone with the port');
  assert.is(h.pipe.counters[Reason.NEIGHBOR_QUEUE_TIMEOUT], 1);
  assert.is(h.pipe.releaseToPod(t), 0);
  nothingSent(h, 'nothing to a closed port');
});

test.run();
