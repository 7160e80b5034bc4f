// The engine's pending queue for unresolved underlay neighbours, in-process on a MemoryIO, in a
// network namespace of its own (runPrivateNetns: a veth underlay holds the node's address): a tun
// pod's packets to node2 over a direct route wait while node2's ARP is unanswered; ARP replies the
// neighbour table refuses (a broadcast, multicast or zero sender MAC, an address it does not want,
// a malformed reply) release nothing; node2's reply sends them, in order, to its MAC, also when
// another worker received it and shared it. A neighbour that never answers: its held packets are
// dropped when it turns FAILED, and counted. IPv6 the same with node2's Neighbor Advertisement.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { runPrivateNetns, sh, waitFor } from '../helpers/netns';
import { Engine, type EngineOptions } from '../../src/dataplane/engine';
import { MemoryIO, MemFrame } from '../../src/dataplane/memory-io';
import { parseMac, toHex, parseIpv6Bytes, answerNeighborSolicitInPlace, writeNeighborSolicit, NS_FRAME_LEN } from '../../src/packet';
import { clusterModel, frame, fixIpChecksum, NODE2_MAC, underlayAndPodVeths } from './helpers';
import { dualStackYaml, frame6, RV6 } from './helpers6';
import { readRecords, Stage, type CaptureRecord } from '../../src/dataplane/capture';
import { parseTraceFilter } from '../../src/dataplane/trace';
import { formatIpv4 } from '../../src/packet/ipv4';

runPrivateNetns();

const UL = 'ul0';
const engines: Engine[] = [];

test.before(() => underlayAndPodVeths(UL));

test.after(() => {
  for (const e of engines) e.stop();
});

function rig(opts: Partial<EngineOptions> = {}, yaml?: string): { engine: Engine; io: MemoryIO; ul: number; tun: number; ulMac: string } {
  const io = new MemoryIO();
  const engine = new Engine({ io, manageHost: false, ringCheckMs: 0, ...opts });
  engines.push(engine);
  engine.apply(clusterModel('node1', yaml));
  // the start's gateway announcements (one per pod with a link layer), not what the tests cause
  // from ee:ee:ee:ee:ee:ee: an ARP reply, or an ICMPv6 neighbor advertisement (IPv6 next header 58, type 136)
  const announcement = (f: { bytes: Uint8Array }) => toHex(f.bytes, 6, 6) === 'eeeeeeeeeeee' &&
    ((toHex(f.bytes, 12, 2) === '0806' && toHex(f.bytes, 20, 2) === '0002') || (toHex(f.bytes, 12, 2) === '86dd' && f.bytes[20] === 58 && f.bytes[54] === 136));
  const started = io.takeEverywhere(announcement);
  assert.is(started.length, counter(engine, 'gateway_announced'), `only the gateway announcements sent at the start: ${started.map((f) => toHex(f.bytes, 0, 42)).join(' ')}`);
  const ul = io.portNamed(UL);
  const tun = io.portNamed('tunU');
  assert.ok(ul >= 0 && tun >= 0, 'underlay and tun pod ports open');
  const ulMac = (JSON.parse(sh('ip', ['-j', 'link', 'show', UL])) as { address: string }[])[0].address.replace(/:/g, '');
  return { engine, io, ul, tun, ulMac };
}

/** tun pod U's packet to a pod on node2 (direct route), IP id `id`. */
function uToRd(id: number): Uint8Array {
  const f = frame('u_to_rd').subarray(14).slice();
  f[4] = id >> 8;
  f[5] = id & 255;
  fixIpChecksum(f, 0);
  return f;
}

/** An ARP frame on the underlay: op, sender MAC and address, hardware length (6 unless malformed). */
function arp(op: 1 | 2, sha: string, spa: string, toMac: string, hlen = 6): Uint8Array {
  const b = new Uint8Array(60);
  b.set(parseMac(toMac), 0);
  b.set(parseMac(sha), 6);
  b[12] = 0x08; b[13] = 0x06;
  b.set([0, 1, 0x08, 0, hlen, 4, 0, op], 14);
  b.set(parseMac(sha), 22);
  b.set(spa.split('.').map(Number), 28);
  b.set(parseMac(toMac), 32);
  b.set([10, 99, 0, 1], 38);
  return b;
}

const isArp = (f: MemFrame) => f.bytes[12] === 0x08 && f.bytes[13] === 0x06;
const ipv4Sent = (frames: MemFrame[]) => frames.filter((f) => f.bytes[12] === 0x08 && f.bytes[13] === 0x00);
const counter = (e: Engine, name: string) => (e.counters().reasons as Record<string, number>)[name] ?? 0;

test('packets to a neighbour being resolved wait; replies the table refuses release nothing; its reply sends them in order with its MAC', () => {
  // Probes 20 s apart: the round cannot fail (and drop what is held) during the test.
  const r = rig({ neighbor: { retransMs: 20_000 } });
  const probes = r.io.take(r.ul).filter(isArp);
  assert.ok(probes.some((f) => toHex(f.bytes, 38, 4) === '0a630002'), 'node2 asked for at the apply');
  for (const id of [201, 202, 203, 204]) r.io.inject(r.tun, uToRd(id));
  r.io.pump();
  assert.equal(ipv4Sent(r.io.take(r.ul)), [], 'nothing sent while node2 is unresolved');
  assert.is(counter(r.engine, 'neighbor_queued'), 3, 'three held (unres_qlen)');
  assert.is(counter(r.engine, 'neighbor_queue_full'), 1, 'the fourth counted');
  assert.is(counter(r.engine, 'neighbor_unresolved'), 0);

  const ulMac = r.ulMac.replace(/(..)(?=.)/g, '$1:');
  const refused: Array<[string, Uint8Array]> = [
    ['broadcast sender MAC', arp(2, 'ff:ff:ff:ff:ff:ff', '10.99.0.2', ulMac)],
    ['multicast sender MAC', arp(2, '01:00:5e:00:00:01', '10.99.0.2', ulMac)],
    ['zero sender MAC', arp(2, '00:00:00:00:00:00', '10.99.0.2', ulMac)],
    ['an address nobody asked for', arp(2, '02:00:00:00:00:66', '10.99.0.77', ulMac)],
    ['a request from such an address', arp(1, '02:00:00:00:00:66', '10.99.0.77', 'ff:ff:ff:ff:ff:ff')],
    ['a malformed reply (hardware length 8)', arp(2, '02:00:00:00:00:66', '10.99.0.2', ulMac, 8)],
  ];
  for (const [what, f] of refused) {
    r.io.inject(r.ul, f);
    r.io.pump();
    assert.equal(ipv4Sent(r.io.take(r.ul)), [], `${what}: nothing released`);
  }
  assert.is(counter(r.engine, 'neighbor_queue_sent'), 0);
  const st = r.engine.status() as { neighbors: { entries: { ip: string; mac: string | null }[] }; neighborQueue: unknown };
  assert.is(st.neighbors.entries.find((e) => e.ip === '10.99.0.2')?.mac, null, 'node2 still unresolved');
  assert.equal(st.neighborQueue, { held: 3, perNeighbor: 3, perNeighborBytes: 212_992, capacity: 256 }, 'podway status shows them held');

  r.io.inject(r.ul, arp(2, NODE2_MAC, '10.99.0.2', ulMac));
  r.io.pump();
  const sent = ipv4Sent(r.io.take(r.ul));
  assert.is(sent.length, 3, 'the three held packets left on the underlay');
  sent.forEach((f, k) => {
    assert.is(toHex(f.bytes, 0, 6), NODE2_MAC.replace(/:/g, ''), `packet ${k + 1} to node2's MAC`);
    assert.is(toHex(f.bytes, 6, 6), r.ulMac, 'from the underlay MAC');
    assert.is((f.bytes[14 + 4] << 8) | f.bytes[14 + 5], 201 + k, 'in the order they came');
    assert.is(f.bytes[14 + 8], uToRd(1)[8] - 1, 'TTL decremented once');
  });
  assert.is(counter(r.engine, 'neighbor_queue_sent'), 3);
  // and from now on packets go at once
  r.io.inject(r.tun, uToRd(205));
  r.io.pump();
  assert.is(ipv4Sent(r.io.take(r.ul)).length, 1);
  assert.is(counter(r.engine, 'neighbor_queued'), 3, 'not held once resolved');
});

test('a neighbour that never answers: its held packets are dropped when it turns FAILED, counted neighbor_queue_timeout', async () => {
  // 3 probes 30 ms apart: FAILED after about 0.1 s (the neighbour timer ticks every 30 ms).
  const r = rig({ neighbor: { retransMs: 30 } });
  r.io.inject(r.tun, uToRd(301), uToRd(302));
  r.io.pump();
  assert.is(counter(r.engine, 'neighbor_queued'), 2);
  assert.ok(await waitFor(() => counter(r.engine, 'neighbor_queue_timeout') === 2, 10_000), `dropped when node2 failed (timeout counter ${counter(r.engine, 'neighbor_queue_timeout')})`);
  assert.equal(ipv4Sent(r.io.take(r.ul)), [], 'nothing sent to a MAC nobody has');
  assert.is(counter(r.engine, 'neighbor_queue_sent'), 0);
  // a late answer finds nothing held
  r.io.inject(r.ul, arp(2, NODE2_MAC, '10.99.0.2', 'ff:ff:ff:ff:ff:ff'));
  r.io.pump();
  assert.equal(ipv4Sent(r.io.take(r.ul)), []);
});

test('two workers: the one that held the packets sends them when the other receives the answer and shares it', () => {
  // As run.ts wires its workers: an answer a worker's table takes goes to the others (learnShared).
  let w0: Engine | null = null;
  let w1: Engine | null = null;
  const r0 = rig({ neighbor: { retransMs: 20_000 }, worker: { index: 0, count: 2 }, onNeighbor: (ip, mac, announced) => w1?.learnShared(ip, mac, announced) });
  const r1 = rig({ neighbor: { retransMs: 20_000 }, worker: { index: 1, count: 2 }, onNeighbor: (ip, mac, announced) => w0?.learnShared(ip, mac, announced) });
  w0 = r0.engine;
  w1 = r1.engine;
  r0.io.take(r0.ul);
  r1.io.take(r1.ul);
  r0.io.inject(r0.tun, uToRd(401), uToRd(402));
  r0.io.pump();
  assert.is(counter(r0.engine, 'neighbor_queued'), 2, 'worker 0 read the tun pod and held its packets');
  // PACKET_FANOUT hands node2's reply to worker 1
  const ulMac = r1.ulMac.replace(/(..)(?=.)/g, '$1:');
  r1.io.inject(r1.ul, arp(2, NODE2_MAC, '10.99.0.2', ulMac));
  r1.io.pump();
  assert.equal(ipv4Sent(r1.io.take(r1.ul)), [], 'worker 1 held nothing, sends nothing');
  const sent = ipv4Sent(r0.io.take(r0.ul));
  assert.is(sent.length, 2, 'worker 0 sent its held packets on its own underlay port');
  sent.forEach((f, k) => {
    assert.is(toHex(f.bytes, 0, 6), NODE2_MAC.replace(/:/g, ''));
    assert.is((f.bytes[14 + 4] << 8) | f.bytes[14 + 5], 401 + k);
  });
  assert.is(counter(r0.engine, 'neighbor_queue_sent'), 2);
  assert.is(counter(r1.engine, 'neighbor_queue_sent'), 0);
});

/** caliA's IPv6 packet to a pod on node2 (IPv6 VXLAN), hop limit `hl` to tell them apart. */
function aToRv6(hl: number): Uint8Array {
  const f = frame6('v6pipe_a_to_b');
  f.set(parseIpv6Bytes(RV6), 14 + 24);
  f[14 + 7] = hl;
  return f;
}

/** The Neighbor Advertisement answering the solicitation `ns` (Ethernet frame), from `mac`. */
function answer(ns: Uint8Array, mac: string): Uint8Array {
  const b = new Uint8Array(128);
  b.set(ns);
  return b.slice(0, answerNeighborSolicitInPlace(b, 0, 14 + 40, ns.length, parseMac(mac), 0, false));
}

// ICMPv6 (next header 58) type 135: byte 14 + 40 alone is also the high byte of an encapsulated
// packet's outer UDP source port (a flow hash with a random seed per process), 0x87 about once in 110.
const isNs = (f: MemFrame) => f.bytes[12] === 0x86 && f.bytes[13] === 0xdd && f.bytes[14 + 6] === 58 && f.bytes[14 + 40] === 135;
const ipv6Sent = (frames: MemFrame[]) => frames.filter((f) => f.bytes[12] === 0x86 && f.bytes[13] === 0xdd && !isNs(f));

test('IPv6: packets to a neighbour being solicited wait; NAs the table refuses release nothing; node2\'s NA sends them, encapsulated, with its MAC', () => {
  const r = rig({ neighbor: { retransMs: 20_000 } }, dualStackYaml());
  const caliA = r.io.portNamed('caliA');
  const node2 = toHex(parseIpv6Bytes('fd99::2'));
  const ns = r.io.take(r.ul).filter(isNs).find((f) => toHex(f.bytes, 14 + 48, 16) === node2);
  assert.ok(ns, 'node2 solicited at the apply');
  r.io.inject(caliA, aToRv6(64), aToRv6(63));
  r.io.pump();
  assert.equal(ipv6Sent(r.io.take(r.ul)), [], 'nothing sent while node2 is unresolved');
  assert.is(counter(r.engine, 'neighbor_queued'), 2);

  const stranger = new Uint8Array(NS_FRAME_LEN);
  writeNeighborSolicit(stranger, 0, parseMac('02:00:00:00:00:01'), parseIpv6Bytes('fd99::1'), 0, parseIpv6Bytes('fd99::77'), 0);
  const corrupt = answer(ns!.bytes, NODE2_MAC);
  corrupt[14 + 40 + 2] ^= 0xff; // ICMPv6 checksum
  const refused: Array<[string, Uint8Array]> = [
    ['an NA for an address nobody asked for', answer(stranger, '02:00:00:00:00:66')],
    ['an NA naming a multicast MAC', answer(ns!.bytes, '33:33:00:00:00:01')],
    ['an NA with a bad checksum', corrupt],
  ];
  for (const [what, f] of refused) {
    r.io.inject(r.ul, f);
    r.io.pump();
    assert.equal(ipv6Sent(r.io.take(r.ul)), [], `${what}: nothing released`);
  }
  assert.is(counter(r.engine, 'neighbor_queue_sent'), 0);

  r.io.inject(r.ul, answer(ns!.bytes, NODE2_MAC));
  r.io.pump();
  const sent = ipv6Sent(r.io.take(r.ul));
  assert.is(sent.length, 2, 'both held packets left on the underlay');
  sent.forEach((f, k) => {
    assert.is(toHex(f.bytes, 0, 6), NODE2_MAC.replace(/:/g, ''), `packet ${k + 1} to node2's MAC`);
    assert.is(toHex(f.bytes, 14 + 24, 16), node2, 'outer destination node2');
    assert.is(f.bytes[14 + 70 + 7], 63 - k, 'in the order they came (inner hop limit, decremented)');
  });
  assert.is(counter(r.engine, 'neighbor_queue_sent'), 2);
});

test('a full neighbour table: packets for a neighbour it refused are not held but counted neighbor_table_full at once (IPv4 direct, IPv6 VXLAN)', () => {
  // A table bound of 0 (4,096 in production): every underlay neighbour is refused, so none is ever
  // asked for, and nothing may wait for its answer.
  const r = rig({ neighbor: { retransMs: 20_000, maxEntries: 0 } }, dualStackYaml());
  r.io.take(r.ul);
  const st0 = r.engine.status() as { neighbors: { entries: unknown[] } };
  assert.equal(st0.neighbors.entries, [], 'the table refused every neighbour');
  r.io.inject(r.tun, uToRd(501), uToRd(502));
  r.io.pump();
  assert.is(counter(r.engine, 'neighbor_table_full'), 2, 'both IPv4 packets counted at once');
  assert.is(counter(r.engine, 'neighbor_queued'), 0, 'none held');
  assert.equal(ipv4Sent(r.io.take(r.ul)), [], 'none sent to a MAC nobody asked for');
  r.io.inject(r.io.portNamed('caliA'), aToRv6(64));
  r.io.pump();
  assert.is(counter(r.engine, 'neighbor_table_full'), 3, 'the IPv6 packet too');
  assert.is(counter(r.engine, 'neighbor_queued'), 0);
  assert.is(counter(r.engine, 'neighbor_unresolved'), 0, 'not the vaguer counter');
  const st = r.engine.status() as { neighborQueue: { held: number } };
  assert.is(st.neighborQueue.held, 0, 'the queue stays empty');
});

/** Run a capture (the engine's API, as `podway capture` uses it) around `during`; its records. */
async function captured(engine: Engine, stage: number, filter: string[], during: () => Promise<void> | void): Promise<CaptureRecord[]> {
  const chunks: Uint8Array[] = [];
  let ended = false;
  const stop = engine.startCapture({ filter: parseTraceFilter(filter, 'capture'), stage, count: 100 }, (chunk, _lost, end) => {
    if (chunk) chunks.push(chunk.slice());
    if (end) ended = true;
  });
  try {
    await during();
  } finally {
    stop();
  }
  assert.ok(ended, 'the capture ended');
  return chunks.flatMap((c) => [...readRecords(c)].map((r) => ({ ...r, data: r.data.slice() })));
}

/** The IPv4 destination of uToRd's packets, as a capture filter names it. */
const rdDst = () => formatIpv4(((uToRd(1)[16] << 24) | (uToRd(1)[17] << 16) | (uToRd(1)[18] << 8) | uToRd(1)[19]) >>> 0);

test('capture: held packets are recorded at route when routed, at tx when the answer sends them (on the underlay, to the MAC); not when the filter does not match', async () => {
  const r = rig({ neighbor: { retransMs: 20_000 } });
  const ulMac = r.ulMac.replace(/(..)(?=.)/g, '$1:');
  const atRoute = await captured(r.engine, Stage.ROUTE, ['host', rdDst()], () => {
    r.io.inject(r.tun, uToRd(601));
    r.io.pump();
  });
  assert.is(atRoute.length, 1, 'routed while its neighbour is unresolved: recorded at route');
  assert.is(atRoute[0].iface, `underlay(${UL})`, 'routed to the underlay');
  const atTx = await captured(r.engine, Stage.TX, ['host', rdDst()], () => {
    r.io.inject(r.tun, uToRd(602), uToRd(603));
    r.io.pump();
    assert.is(counter(r.engine, 'neighbor_queued'), 3);
    r.io.inject(r.ul, arp(2, NODE2_MAC, '10.99.0.2', ulMac));
    r.io.pump();
  });
  assert.is(ipv4Sent(r.io.take(r.ul)).length, 3, 'the three held packets left');
  assert.is(atTx.length, 3, 'each recorded at its transmit');
  atTx.forEach((rec, k) => {
    assert.is(rec.iface, `underlay(${UL})`);
    assert.is(rec.comment, '');
    assert.is(toHex(rec.data, 0, 6), NODE2_MAC.replace(/:/g, ''), 'as sent: to node2\'s MAC');
    assert.is((rec.data[14 + 4] << 8) | rec.data[14 + 5], 601 + k, 'in order');
  });
  // a filter they do not match records nothing
  const other = await captured(r.engine, Stage.TX, ['host', '10.1.2.3'], () => {
    r.io.inject(r.tun, uToRd(604));
    r.io.pump();
  });
  assert.is(ipv4Sent(r.io.take(r.ul)).length, 1);
  assert.equal(other, [], 'another host\'s filter: nothing');
});

test('capture at drop: held packets of a neighbour that never answers, with the reason, under the pod port they came from', async () => {
  const r = rig({ neighbor: { retransMs: 30 } });
  const recs = await captured(r.engine, Stage.DROP, ['host', rdDst()], async () => {
    r.io.inject(r.tun, uToRd(701), uToRd(702));
    r.io.pump();
    assert.is(counter(r.engine, 'neighbor_queued'), 2);
    assert.ok(await waitFor(() => counter(r.engine, 'neighbor_queue_timeout') === 2, 10_000), 'dropped when node2 failed');
  });
  assert.is(recs.length, 2, 'both drops recorded');
  for (const [k, rec] of recs.entries()) {
    assert.is(rec.iface, 'tunU');
    assert.is(rec.comment, 'drop: neighbor_queue_timeout');
    assert.is((rec.data[14 + 4] << 8) | rec.data[14 + 5], 701 + k);
  }
});

test('capture at tx: an IPv6 packet held for node2\'s NA is recorded when it leaves, VXLAN-encapsulated, matched on its inner address', async () => {
  const r = rig({ neighbor: { retransMs: 20_000 } }, dualStackYaml());
  const node2 = toHex(parseIpv6Bytes('fd99::2'));
  const ns = r.io.take(r.ul).filter(isNs).find((f) => toHex(f.bytes, 14 + 48, 16) === node2);
  assert.ok(ns, 'node2 solicited at the apply');
  const recs = await captured(r.engine, Stage.TX, ['host', RV6], () => {
    r.io.inject(r.io.portNamed('caliA'), aToRv6(64));
    r.io.pump();
    assert.is(counter(r.engine, 'neighbor_queued'), 1);
    r.io.inject(r.ul, answer(ns!.bytes, NODE2_MAC));
    r.io.pump();
  });
  assert.is(ipv6Sent(r.io.take(r.ul)).length, 1, 'sent');
  assert.is(recs.length, 1, 'recorded at its transmit');
  assert.is(toHex(recs[0].data, 0, 6), NODE2_MAC.replace(/:/g, ''));
  assert.is(toHex(recs[0].data, 14 + 24, 16), node2, 'as sent: outer destination node2');
  assert.is(toHex(recs[0].data, 14 + 70 + 24, 16), toHex(parseIpv6Bytes(RV6)), 'inner destination the pod the filter named');
});

test('a tap pod whose endpoint states no MAC: the engine asks it (ARP from 169.254.1.1, at most one a second) and sends what waited once it answers', () => {
  const r = rig({ neighbor: { retransMs: 20_000 } });
  const tap = r.io.portNamed('tapT');
  const caliA = r.io.portNamed('caliA');
  assert.ok(tap >= 0 && caliA >= 0);
  const toT = (id: number) => {
    const f = frame('a_to_b').slice();
    f.set([10, 245, 0, 3], 30);
    f[18] = id >> 8; f[19] = id & 255;
    fixIpChecksum(f, 14);
    return f;
  };
  r.io.inject(caliA, toT(801), toT(802));
  r.io.pump();
  r.io.inject(caliA, toT(803));
  r.io.pump();
  const asked = r.io.take(tap);
  assert.is(asked.length, 1, `one ARP request for the three packets (rate-limited), nothing else: ${asked.map((f) => toHex(f.bytes, 0, 14)).join(' ')}`);
  const req = asked[0].bytes;
  assert.ok(isArp(asked[0]), 'an ARP frame');
  assert.is(toHex(req, 0, 6), 'ffffffffffff', 'broadcast');
  assert.is(toHex(req, 6, 6), 'eeeeeeeeeeee', 'from the gateway MAC');
  assert.is(toHex(req, 20, 2), '0001', 'a request');
  assert.is(toHex(req, 28, 4), 'a9fe0101', 'from 169.254.1.1');
  assert.is(toHex(req, 38, 4), '0af50003', 'for the pod\'s address');
  assert.is(counter(r.engine, 'neighbor_queued'), 3);
  // the pod answers as a kernel does: to the gateway, with its MAC
  const tMac = '2a:5f:10:00:01:03';
  r.io.inject(tap, arp(2, tMac, '10.245.0.3', 'ee:ee:ee:ee:ee:ee').map((v, k) => (k >= 38 && k < 42 ? [169, 254, 1, 1][k - 38] : v)));
  r.io.pump();
  const sent = r.io.take(tap).filter((f) => f.bytes[12] === 0x08 && f.bytes[13] === 0x00);
  assert.is(sent.length, 3, 'the three packets reached the pod');
  sent.forEach((f, k) => {
    assert.is(toHex(f.bytes, 0, 6), tMac.replace(/:/g, ''));
    assert.is((f.bytes[18] << 8) | f.bytes[19], 801 + k, 'in order');
  });
  assert.is(counter(r.engine, 'neighbor_queue_sent'), 3);
  assert.is(counter(r.engine, 'pod_mac_unknown'), 0);
});

test('a tap pod with IPv6 addresses only and no MAC: asked by a Neighbor Solicitation from the gateway\'s link-local address; its advertisement sends what waited', () => {
  const r = rig({ neighbor: { retransMs: 20_000 } }, dualStackYaml().replace('ipNetworks: [10.245.0.3/32, fd00:10:244::3/128]', 'ipNetworks: [fd00:10:244::3/128]'));
  const tap = r.io.portNamed('tapT');
  const caliA = r.io.portNamed('caliA');
  assert.ok(tap >= 0 && caliA >= 0);
  const toT = (flow: number) => {
    const f = frame6('v6pipe_a_to_b');
    f.set(parseIpv6Bytes('fd00:10:244::3'), 14 + 24);
    f[14 + 3] = flow; // the flow label's low byte tells them apart
    return f;
  };
  r.io.inject(caliA, toT(1), toT(2));
  r.io.pump();
  r.io.inject(caliA, toT(3));
  r.io.pump();
  const asked = r.io.take(tap);
  assert.is(asked.length, 1, `one solicitation for the three packets (rate-limited), nothing else: ${asked.map((f) => toHex(f.bytes, 0, 14)).join(' ')}`);
  const ns = asked[0].bytes;
  assert.ok(isNs(asked[0]), 'a Neighbor Solicitation');
  assert.is(toHex(ns, 0, 6), '3333ff000003', 'to the solicited-node group\'s MAC');
  assert.is(toHex(ns, 6, 6), 'eeeeeeeeeeee', 'from the gateway MAC');
  assert.is(toHex(ns, 14 + 8, 16), toHex(parseIpv6Bytes('fe80::ecee:eeff:feee:eeee')), 'from the gateway\'s link-local address');
  assert.is(toHex(ns, 14 + 24, 16), toHex(parseIpv6Bytes('ff02::1:ff00:3')), 'to the pod\'s solicited-node group');
  assert.is(toHex(ns, 14 + 48, 16), toHex(parseIpv6Bytes('fd00:10:244::3')), 'for the pod\'s address');
  assert.is(ns[14 + 7], 255, 'hop limit 255');
  assert.is(counter(r.engine, 'neighbor_queued'), 3);
  assert.is(counter(r.engine, 'pod_mac_unknown'), 0);
  // the pod's kernel answers (to the gateway, with its MAC)
  const tMac = '2a:5f:10:00:01:03';
  r.io.inject(tap, answer(ns, tMac));
  r.io.pump();
  const sent = r.io.take(tap).filter((f) => f.bytes[12] === 0x86 && f.bytes[13] === 0xdd && !isNs(f));
  assert.is(sent.length, 3, `the three packets reached the pod: ${JSON.stringify(Object.fromEntries(Object.entries(r.engine.counters().reasons as Record<string, number>).filter(([, v]) => v)))}`);
  sent.forEach((f, k) => {
    assert.is(toHex(f.bytes, 0, 6), tMac.replace(/:/g, ''), 'to the MAC the advertisement gave');
    assert.is(toHex(f.bytes, 6, 6), 'eeeeeeeeeeee');
    assert.is(f.bytes[14 + 3], 1 + k, 'in order');
  });
  assert.is(counter(r.engine, 'neighbor_queue_sent'), 3);
  assert.is(counter(r.engine, 'pod_mac_unknown'), 0);
});

test.run();
