// A pod's IPv4 packet without DF bigger than its next hop's MTU is cut into fragments as the
// kernel's forwarding cuts it (before: dropped too_big_no_df): through VXLAN (route MTU 1450) and
// IPIP (1480) each fragment is encapsulated on its own, unencapsulated (the underlay's 1500) it
// leaves as fragments, to a local pod whose device MTU is smaller too, and to the node's routing
// (tx4) at the underlay's MTU. The fragments' headers are checked field by field here, and their
// data reassembled against the packet sent. With DF the answer stays fragmentation needed.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Reason, Event, PortCounter } from '../../src/dataplane/counters';
import { makeHarness, takeAll, nothingSent, onesSum, u16, NODE2_MAC } from './helpers';
import type { Harness } from './helpers';

const RESOLVED = { neighbors: { '10.99.0.2': NODE2_MAC } };
const POD_A_MAC = [0x2a, 0x5f, 0x10, 0x00, 0x01, 0x01];

/** caliA's frame (to the gateway MAC): IPv4 UDP from 10.244.0.1 to `dst`, `total` IP bytes,
 * id `id`, TTL 64, DF as asked, payload bytes numbered. */
function podFrame(dst: number[], total: number, df = false, id = 0x1234): Uint8Array {
  const f = new Uint8Array(14 + total);
  f.fill(0xee, 0, 6);
  f.set(POD_A_MAC, 6);
  f[12] = 0x08;
  const ip = 14;
  f[ip] = 0x45;
  f[ip + 2] = total >> 8; f[ip + 3] = total & 255;
  f[ip + 4] = id >> 8; f[ip + 5] = id & 255;
  f[ip + 6] = df ? 0x40 : 0;
  f[ip + 8] = 64; f[ip + 9] = 17;
  f.set([10, 244, 0, 1], ip + 12);
  f.set(dst, ip + 16);
  for (let k = ip + 20; k < f.length; k++) f[k] = (k * 13 + 5) & 255;
  // UDP header: ports, length, checksum 0 (none: the pipeline does not look at it)
  f[ip + 20] = 0x30; f[ip + 21] = 0x39; f[ip + 22] = 0x30; f[ip + 23] = 0x3a;
  f[ip + 24] = (total - 20) >> 8; f[ip + 25] = (total - 20) & 255; f[ip + 26] = 0; f[ip + 27] = 0;
  const c = ~onesSum(f, ip, 20) & 0xffff;
  f[ip + 10] = c >> 8; f[ip + 11] = c & 255;
  return f;
}

/** The fragments in `frames` (IP header at `at` in each): checked (checksum, id, TTL 63, no DF,
 * 8-byte offsets, length within `mtu`, MF on all but the last) and reassembled against `sent`. */
function checkFragments(frames: Uint8Array[], at: number, sent: Uint8Array, mtu: number, what: string): void {
  const data = new Uint8Array(sent.length - 34);
  let covered = 0;
  let last = 0;
  frames.forEach((f, k) => {
    const ip = at;
    const len = u16(f, ip + 2);
    assert.is(f.length, at + len, `${what} ${k}: frame length`);
    assert.ok(len <= mtu, `${what} ${k}: ${len} within ${mtu}`);
    assert.is(onesSum(f, ip, 20), 0xffff, `${what} ${k}: header checksum`);
    assert.is(u16(f, ip + 4), u16(sent, 18), `${what} ${k}: the id kept`);
    assert.is(f[ip + 8], 63, `${what} ${k}: TTL decremented once`);
    assert.is(f[ip + 6] & 0x40, 0, `${what} ${k}: no DF`);
    const off = (u16(f, ip + 6) & 0x1fff) * 8;
    const mf = (f[ip + 6] & 0x20) !== 0;
    assert.is(mf, k < frames.length - 1, `${what} ${k}: MF`);
    if (mf) assert.is((len - 20) % 8, 0, `${what} ${k}: data a multiple of 8`);
    data.set(f.subarray(ip + 20, ip + len), off);
    covered += len - 20;
    last = Math.max(last, off + len - 20);
  });
  assert.is(covered, sent.length - 34, `${what}: every byte once`);
  assert.is(last, sent.length - 34);
  assert.equal([...data], [...sent.subarray(34)], `${what}: reassembled`);
}

function sentOn(h: Harness, port: number): Uint8Array[] {
  const all = takeAll(h);
  const where = [...all.entries()].map(([p, f]) => `${h.pipe.portName[p]}:${f.length}`).join(', ');
  assert.is(all.size, 1, `one port sent (sent: ${where})`);
  return (all.get(port) ?? []).map((m) => m.bytes);
}

test('VXLAN (route MTU 1450): a 1,800-byte packet without DF leaves as two VXLAN datagrams, each inner fragment within 1450; counted fragmented 1, fragments_out 2, no drop', () => {
  const h = makeHarness(RESOLVED);
  const a = h.port('caliA');
  const f = podFrame([10, 244, 0, 65], 1800);
  h.receive(a, f);
  const out = sentOn(h, h.infra.underlay);
  assert.is(out.length, 2);
  for (const o of out) {
    assert.is(u16(o, 14 + 2), o.length - 14, 'outer total length');
    assert.is(onesSum(o, 14, 20), 0xffff, 'outer checksum');
    assert.is(u16(o, 36), 4789);
  }
  // (the outer UDP source port: the flow hash of a fragment is its addresses', the same for both)
  assert.is(u16(out[0], 34), u16(out[1], 34), 'one outer flow');
  checkFragments(out, 64, f, 1450, 'vxlan');
  assert.is(h.pipe.counters[Event.FRAGMENTED], 1);
  assert.is(h.pipe.counters[Event.FRAGMENTS_OUT], 2);
  assert.is(h.pipe.counters[Reason.TOO_BIG_NO_DF], 0);
  assert.is(h.portCounter(a, PortCounter.DROPS), 0);
  assert.is(h.portCounter(h.infra.underlay, PortCounter.TX), 2);
});

test('IPIP (route MTU 1480) and unencapsulated (the underlay\'s 1500): fragments within each, reassembling to the packet; with DF still fragmentation needed', () => {
  const h = makeHarness(RESOLVED);
  const a = h.port('caliA');
  const f = podFrame([10, 245, 0, 65], 1900);
  h.receive(a, f);
  const ipip = sentOn(h, h.infra.underlay);
  assert.is(ipip.length, 2);
  for (const o of ipip) assert.is(o[14 + 9], 4, 'ip in ip');
  checkFragments(ipip, 34, f, 1480, 'ipip');
  const d = podFrame([10, 246, 0, 65], 1900, false, 0x4321);
  h.receive(a, d);
  const direct = sentOn(h, h.infra.underlay);
  assert.is(direct.length, 2);
  checkFragments(direct, 14, d, 1500, 'direct');
  assert.is(h.pipe.counters[Event.FRAGMENTED], 2);
  assert.is(h.pipe.counters[Event.FRAGMENTS_OUT], 4);
  h.receive(a, podFrame([10, 246, 0, 65], 1900, true));
  const icmp = sentOn(h, a);
  assert.is(icmp.length, 1);
  assert.is(icmp[0][34], 3);
  assert.is(icmp[0][35], 4);
  assert.is(u16(icmp[0], 40), 1500);
  assert.is(h.pipe.counters[Reason.FRAG_NEEDED], 1);
  assert.is(h.pipe.counters[Event.FRAGMENTED], 2);
});

test('a local pod whose device MTU is 576: fragments of 552 data bytes delivered to it with its MAC; the node\'s routing (tx4) takes fragments within the underlay\'s MTU, each addressed for it', () => {
  const h = makeHarness(RESOLVED);
  const a = h.port('caliA');
  const b = h.port('caliB');
  h.pipe.portMtu[b] = 576;
  const f = podFrame([10, 244, 0, 2], 1500);
  h.receive(a, f);
  const local = sentOn(h, b);
  assert.is(local.length, 3);
  for (const o of local) assert.equal([...o.subarray(0, 6)], [0x2a, 0x5f, 0x10, 0x00, 0x01, 0x02], 'to caliB\'s MAC');
  checkFragments(local, 14, f, 576, 'local');
  h.pipe.tx4Mtu = 1000;
  const e = podFrame([8, 8, 8, 8], 1800);
  h.receive(a, e);
  const tx4 = sentOn(h, h.infra.tx4);
  assert.is(tx4.length, 2);
  checkFragments(tx4.map((x) => { const c = new Uint8Array(14 + x.length); c.set(x, 14); return c; }), 14, e, 1000, 'tx4');
  assert.is(h.io.take(h.infra.tx4).length, 0);
  assert.is(h.pipe.counters[Event.EGRESS], 2, 'each fragment handed to the node\'s routing');
});

test('more fragments than the area holds in one batch (70 packets of two): the area is sent early and every fragment leaves, each packet\'s reassembling; the first fragments keep the batch\'s order', () => {
  const h = makeHarness({ ...RESOLVED, batch: 128 });
  const a = h.port('caliA');
  const frames = Array.from({ length: 70 }, (_, k) => podFrame([10, 244, 0, 65], 1600, false, 0x100 + k));
  h.receive(a, ...frames);
  const out = sentOn(h, h.infra.underlay);
  assert.is(out.length, 140);
  const byId = new Map<number, Uint8Array[]>();
  for (const o of out) {
    const id = u16(o, 64 + 4);
    byId.set(id, [...(byId.get(id) ?? []), o]);
  }
  assert.is(byId.size, 70);
  for (let k = 0; k < 70; k++) {
    const fr = byId.get(0x100 + k)!.sort((x, y) => (u16(x, 64 + 6) & 0x1fff) - (u16(y, 64 + 6) & 0x1fff));
    checkFragments(fr, 64, frames[k], 1450, `packet ${k}`);
  }
  const firsts = out.filter((o) => (u16(o, 64 + 6) & 0x1fff) === 0).map((o) => u16(o, 64 + 4));
  assert.equal(firsts, frames.map((_, k) => 0x100 + k));
  assert.is(h.pipe.counters[Event.FRAGMENTED], 70);
  assert.is(h.pipe.counters[Event.FRAGMENTS_OUT], 140);
});

test('what cannot be cut is still dropped too_big_no_df: a route MTU under header + 8 bytes; and no fragment area (a pipeline without one)', () => {
  const h = makeHarness(RESOLVED);
  const a = h.port('caliA');
  const b = h.port('caliB');
  h.pipe.portMtu[b] = 27;
  h.receive(a, podFrame([10, 244, 0, 2], 100));
  nothingSent(h, 'mtu 27');
  assert.is(h.pipe.counters[Reason.TOO_BIG_NO_DF], 1);
  assert.is(h.pipe.counters[Event.FRAGMENTED], 0);
  assert.is(h.portCounter(a, PortCounter.DROPS), 1);
});

test.run();
