/**
 * Software GRO towards pods (native/gro.c): runs of one TCP flow's in-order segments in a send batch
 * become one super-frame with a virtio_net_hdr, over IPv4 (GSO_TCPV4) and IPv6 (GSO_TCPV6).
 * Checked through the addon's own code paths without a syscall (groCoalesceForTest: what each
 * message of the batch would carry): a merged frame, cut again by the addon's GSO segmenter
 * (offloadDeliverForTest, the receive path's code), gives back its input frames byte for byte, its
 * partial checksum completes to a valid one, and frames that break a rule (other flow, out of
 * order, bad checksum, flags, sizes, TTL, flow label, extension headers...) go out on their own.
 * Then real sends on a veth (root, a network namespace of its own): with the veth's tx offloads off
 * the kernel segments the super-frames in software (tcp_gso_segment), with them on it hands the
 * peer the GSO skb whole and podway's receive path cuts it; either way the peer gets the input
 * frames back byte for byte.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { native, nativeAddon, FramePool } from '../../src/dataplane/native';
import { withNetns, linksUp } from '../helpers/netns';
import { fold, rd16, rd32, sum16, wr16, wr32 } from './wire-ref';
import { collect as collectOn, sendBatch as sendOn, resegment as resegmentOn, Message } from './pool-frames';

interface TestHooks {
  groCoalesceForTest(frames: Uint8Array[]): Message[];
}
const hooks = nativeAddon() as unknown as TestHooks;
const pool = new FramePool(512);

const ACK = 0x10, PSH = 0x08, SYN = 0x02, FIN = 0x01;
const isV6 = (f: Uint8Array) => rd16(f, 12) === 0x86dd;
/** Offset of the TCP header: after Ethernet + IPv4 (20) or IPv6 (40). */
const tcpAt = (f: Uint8Array) => (isV6(f) ? 54 : 34);
/** Unfolded pseudo-header sum for a TCP length of l4len (IPv4 or IPv6 by the frame's ethertype). */
const pseudo = (b: Uint8Array, l4len: number) => (isV6(b) ? sum16(b, 22, 32) : sum16(b, 26, 8)) + 6 + l4len;
/** Writes a valid TCP checksum for the frame as it stands. */
function fixTcp(f: Uint8Array): void {
  const t = tcpAt(f);
  wr16(f, t + 16, 0);
  wr16(f, t + 16, ~fold(pseudo(f, f.length - t) + sum16(f, t, f.length - t)) & 0xffff);
}
/** Writes a valid IPv4 header checksum. */
function fixIp4(f: Uint8Array): void { wr16(f, 24, 0); wr16(f, 24, ~fold(sum16(f, 14, 20)) & 0xffff); }

interface SegOpts { payload: number; seq: number; id: number; flags?: number; sport?: number; ttl?: number; seed?: number; ts?: number; v6?: boolean; flow?: number; tc?: number }

/** One TCP segment with valid checksums (timestamps option: 32-byte TCP header), over IPv4 or
 * (v6) IPv6 with TCP right after the fixed header (traffic class tc, flow label flow, hop limit ttl). */
function segment(o: SegOpts): Uint8Array {
  const v6 = o.v6 ?? false;
  const t = v6 ? 54 : 34;
  const f = new Uint8Array(t + 32 + o.payload);
  f.set([0xee, 0xee, 0xee, 0xee, 0xee, 0xee, 0x02, 0, 0, 0x77, 0, 1], 0);
  if (v6) {
    wr16(f, 12, 0x86dd);
    const tc = o.tc ?? 0, flow = o.flow ?? 0x5a5a5;
    wr32(f, 14, ((6 << 28) | (tc << 20) | flow) >>> 0);
    wr16(f, 18, f.length - 54); f[20] = 6; f[21] = o.ttl ?? 63;
    f.set([0xfd, 0, 0, 0x77, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1], 22);
    f.set([0xfd, 0, 0, 0x77, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2], 38);
  } else {
    wr16(f, 12, 0x0800);
    f[14] = 0x45; wr16(f, 16, f.length - 14); wr16(f, 18, o.id & 0xffff); wr16(f, 20, 0x4000);
    f[22] = o.ttl ?? 63; f[23] = 6;
    f.set([10, 77, 0, 1, 10, 77, 1, 2], 26);
    fixIp4(f);
  }
  wr16(f, t, o.sport ?? 40001); wr16(f, t + 2, 5201); wr32(f, t + 4, o.seq >>> 0); wr32(f, t + 8, 0x01020304);
  f[t + 12] = 8 << 4; f[t + 13] = o.flags ?? ACK; wr16(f, t + 14, 502);
  f.set([1, 1, 8, 10, 0, 0, 0x12, o.ts ?? 0x34, 0, 0, 0x56, 0x78], t + 20);
  for (let i = 0; i < o.payload; i++) f[t + 32 + i] = ((o.seed ?? 1) * 31 + i * 7 + (i >>> 8) + (o.seq & 255)) & 255;
  fixTcp(f);
  return f;
}

interface RunOpts { mss?: number; last?: number; seq?: number; id?: number; sport?: number; psh?: boolean; v6?: boolean; seed?: number }

/** n segments of a flow as a sender makes them: contiguous seq, incrementing ids, PSH on the last. */
function run(n: number, o: RunOpts = {}): Uint8Array[] {
  const mss = o.mss ?? 1448;
  const out: Uint8Array[] = [];
  let seq = o.seq ?? 0xfffff000;
  for (let k = 0; k < n; k++) {
    const payload = k === n - 1 && o.last !== undefined ? o.last : mss;
    out.push(segment({ payload, seq, id: (o.id ?? 0xfff0) + k, sport: o.sport, v6: o.v6, seed: o.seed, flags: k === n - 1 && (o.psh ?? true) ? ACK | PSH : ACK }));
    seq = (seq + payload) >>> 0;
  }
  return out;
}

const resegment = (m: Message) => resegmentOn(pool, m);

function same(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && Buffer.compare(Buffer.from(a), Buffer.from(b)) === 0;
}

/** Every message, cut again, gives back its inputs in order; returns the frames per message. */
function checkRoundTrip(inputs: Uint8Array[], label: string): number[] {
  const msgs = hooks.groCoalesceForTest(inputs);
  let at = 0;
  for (const [j, m] of msgs.entries()) {
    const segs = resegment(m);
    assert.is(segs.length, m.frames, `${label}: message ${j} resegments into its frame count`);
    for (const s of segs) {
      if (!same(s, inputs[at])) assert.unreachable(`${label}: frame ${at} (message ${j}) differs after merge + resegment`);
      at++;
    }
  }
  assert.is(at, inputs.length, `${label}: every input frame accounted for`);
  return msgs.map((m) => m.frames);
}

/** A super-frame's virtio-net header: NEEDS_CSUM, the GSO type, sizes, and the TCP checksum's place. */
function assertVnet(m: Message, want: { gsoType: number; name: string; hdrLen: number; gsoSize: number; csumStart: number }): void {
  const v = new DataView(m.vnetHdr!.buffer);
  assert.is(m.vnetHdr![0], 1, 'NEEDS_CSUM');
  assert.is(m.vnetHdr![1], want.gsoType, want.name);
  assert.is(v.getUint16(2, true), want.hdrLen, 'hdr_len');
  assert.is(v.getUint16(4, true), want.gsoSize, 'gso_size');
  assert.is(v.getUint16(6, true), want.csumStart, 'csum_start');
  assert.is(v.getUint16(8, true), 16, 'csum_offset');
}

test('a 42-segment run becomes one super-frame: vnet header, headers, partial checksum; resegmented byte for byte', () => {
  const inputs = run(42, { last: 60000 - 41 * 1448 });
  const msgs = hooks.groCoalesceForTest(inputs);
  assert.is(msgs.length, 1);
  const m = msgs[0];
  assert.is(m.frames, 42);
  assertVnet(m, { gsoType: 1, name: 'GSO_TCPV4', hdrLen: 66, gsoSize: 1448, csumStart: 34 });
  const f = m.frame;
  assert.is(f.length, 66 + 60000);
  assert.is(rd16(f, 16), f.length - 14, 'IPv4 total length');
  assert.is(fold(sum16(f, 14, 20)), 0xffff, 'IPv4 header checksum');
  assert.is(rd16(f, 18), 0xfff0, 'the first segment\'s id');
  assert.is(rd32(f, 38), 0xfffff000, 'the first segment\'s seq');
  assert.is(f[47], ACK | PSH, 'PSH of the last segment');
  assert.is(rd16(f, 50), fold(pseudo(f, f.length - 34)), 'partial checksum: folded pseudo-header sum');
  // completed as the pod's side would, the checksum verifies over the whole payload
  const c = f.slice();
  wr16(c, 50, ~fold(sum16(c, 34, c.length - 34)) & 0xffff);
  assert.is(fold(pseudo(c, c.length - 34) + sum16(c, 34, c.length - 34)), 0xffff);
  checkRoundTrip(inputs, 'one run');
});

test('runs end where the rules say: other flow, gap in seq, shorter segment, PSH, size cap; each resegments to its inputs', () => {
  const a = run(5, { psh: false });
  const b = run(3, { sport: 40002, seq: 77 });
  const tail = run(4, { seq: (rd32(a[4], 38) + 1448) >>> 0, id: 0xfff5, mss: 1000 }); // continues a but with a smaller mss
  const gap = run(2, { seq: (rd32(tail[3], 38) + 5000) >>> 0, id: 0xfff9 });
  assert.equal(checkRoundTrip([...a, ...b, ...tail, ...gap], 'mixed'), [5, 3, 4, 2]);
  // a shorter segment ends a run and the next starts a new one; a longer one never joins
  const s = run(3, { psh: false, mss: 1000 });
  const longer = segment({ payload: 1400, seq: (rd32(s[2], 38) + 1000) >>> 0, id: 0xfff3 });
  assert.equal(checkRoundTrip([...s, longer], 'longer'), [3, 1]);
  const short = run(3, { last: 500, psh: false });
  const after = segment({ payload: 1448, seq: (rd32(short[2], 38) + 500) >>> 0, id: 0xfff3 });
  assert.equal(checkRoundTrip([...short, after], 'short'), [3, 1]);
  // 64 segments at most, and never over 65535 bytes of IPv4
  assert.equal(checkRoundTrip(run(70, { mss: 500 }), 'count cap'), [64, 6]);
  assert.equal(checkRoundTrip(run(50, { mss: 1448 }), 'size cap'), [45, 5]);
});

test('frames that must not merge go alone: SYN/FIN, pure ACK, bad checksums, TTL, options, ids, IPv4 options, UDP', () => {
  const base = run(4, { psh: false });
  const variants: Array<[string, (f: Uint8Array[]) => void]> = [
    ['FIN', (f) => { f[1][47] = ACK | FIN; }],
    ['SYN', (f) => { f[1][47] = ACK | SYN; }],
    ['bad TCP checksum', (f) => { f[1][100] ^= 0x40; }],
    ['bad IPv4 checksum', (f) => { f[1][24] ^= 1; }],
    ['TTL', (f) => { f[1][22] = 62; wr16(f[1], 24, 0); wr16(f[1], 24, ~fold(sum16(f[1], 14, 20)) & 0xffff); }],
    ['timestamp option', (f) => { f[1][61] ^= 1; }],
    ['ack', (f) => { f[1][45] ^= 1; }],
    ['window', (f) => { f[1][49] ^= 1; }],
    ['id not incrementing', (f) => { f[1][19] ^= 4; }],
  ];
  for (const [what, spoil] of variants) {
    const frames = base.map((x) => x.slice());
    spoil(frames);
    // fix the TCP checksum after a header change, unless the checksum itself is what is spoiled
    if (!what.startsWith('bad')) {
      const f = frames[1];
      if (what !== 'TTL' && what !== 'id not incrementing') { wr16(f, 50, 0); wr16(f, 50, ~fold(pseudo(f, f.length - 34) + sum16(f, 34, f.length - 34)) & 0xffff); }
      if (what === 'id not incrementing') { wr16(f, 24, 0); wr16(f, 24, ~fold(sum16(f, 14, 20)) & 0xffff); }
    }
    const counts = hooks.groCoalesceForTest(frames).map((m) => m.frames);
    assert.is(counts[0], 1, `${what}: the run stops before the odd frame`);
    assert.is(counts.reduce((x, y) => x + y, 0), 4);
    if (!what.startsWith('bad')) checkRoundTrip(frames, what);
  }
  // a bad checksum on the first frame: it goes alone, the rest still merge
  const bad0 = base.map((x) => x.slice());
  bad0[0][90] ^= 1;
  assert.equal(hooks.groCoalesceForTest(bad0).map((m) => m.frames), [1, 3]);
  const pureAcks = [segment({ payload: 0, seq: 1, id: 1 }), segment({ payload: 0, seq: 1, id: 2 })];
  assert.equal(checkRoundTrip(pureAcks, 'pure ACKs'), [1, 1]);
  const udp = base.map((x) => x.slice());
  udp[0][23] = 17;
  assert.is(hooks.groCoalesceForTest(udp)[0].frames, 1);
});

test('ECN: a CE-marked segment inside an ECT(0) run is never merged with the unmarked ones (IPv4 TOS, IPv6 traffic class), and keeps its mark', () => {
  for (const v6 of [false, true]) {
    const frames = run(6, { psh: false, v6 });
    const mark = (f: Uint8Array, ecn: number) => {
      if (v6) f[15] = (f[15] & 0xcf) | (ecn << 4); // the traffic class's low bits: not in any checksum
      else { f[15] = (f[15] & 0xfc) | ecn; fixIp4(f); }
    };
    for (const f of frames) mark(f, 2); // ECT(0), as an ECN-capable sender sends
    mark(frames[3], 3); // CE, set by a router on the way (or carried in from a tunnel's outer header)
    const what = v6 ? 'IPv6' : 'IPv4';
    assert.equal(checkRoundTrip(frames, `${what} CE inside`), [3, 1, 2], `${what}: the run ends before and after the CE segment`);
    // without the mark the same frames are one run: the split above is the ECN field's doing
    mark(frames[3], 2);
    assert.equal(checkRoundTrip(frames, `${what} unmarked`), [6], `${what}: one run without the mark`);
  }
});

test('IPv6: a 42-segment run becomes one GSO_TCPV6 super-frame: payload length, partial checksum over the IPv6 pseudo-header; resegmented byte for byte', () => {
  const inputs = run(42, { v6: true, last: 60000 - 41 * 1448 });
  const msgs = hooks.groCoalesceForTest(inputs);
  assert.is(msgs.length, 1);
  const m = msgs[0];
  assert.is(m.frames, 42);
  assertVnet(m, { gsoType: 4, name: 'GSO_TCPV6', hdrLen: 86, gsoSize: 1448, csumStart: 54 });
  const f = m.frame;
  assert.is(f.length, 86 + 60000);
  assert.is(rd16(f, 18), f.length - 54, 'IPv6 payload length');
  assert.is(rd32(f, 14), rd32(inputs[0], 14), 'version, traffic class, flow label kept');
  assert.is(rd32(f, 58), 0xfffff000, 'the first segment\'s seq');
  assert.is(f[67], ACK | PSH, 'PSH of the last segment');
  assert.is(rd16(f, 70), fold(pseudo(f, f.length - 54)), 'partial checksum: folded IPv6 pseudo-header sum');
  const c = f.slice();
  wr16(c, 70, ~fold(sum16(c, 54, c.length - 54)) & 0xffff);
  assert.is(fold(pseudo(c, c.length - 54) + sum16(c, 54, c.length - 54)), 0xffff, 'completed, it verifies over the whole payload');
  checkRoundTrip(inputs, 'one IPv6 run');
});

test('IPv6 runs end where the rules say; IPv4 and IPv6 flows of a batch never merge together; the length cap is per family', () => {
  const a = run(5, { v6: true, psh: false });
  const b = run(3, { v6: true, sport: 40002, seq: 77 });
  const c4 = run(4, { seq: (rd32(a[4], 58) + 1448) >>> 0 }); // a's seq continued, but over IPv4
  const gap = run(2, { v6: true, seq: (rd32(a[4], 58) + 9000) >>> 0 });
  assert.equal(checkRoundTrip([...a, ...b, ...c4, ...gap], 'mixed families'), [5, 3, 4, 2]);
  assert.equal(checkRoundTrip(run(70, { v6: true, mss: 500 }), 'IPv6 count cap'), [64, 6]);
  // 65,535 bytes of IPv6 payload (TCP header + data) vs of IPv4 total length (20 more): at a
  // 1523-byte MSS, 43 segments are 32 + 65,489 bytes: within IPv6's cap, over IPv4's
  assert.equal(checkRoundTrip(run(50, { v6: true, mss: 1523 }), 'IPv6 size cap'), [43, 7]);
  assert.equal(checkRoundTrip(run(50, { mss: 1523 }), 'IPv4 size cap'), [42, 8]);
});

test('IPv6 frames that must not merge go alone: flow label, traffic class, hop limit, addresses, extension header, FIN, bad checksum, lengths', () => {
  const base = run(4, { v6: true, psh: false });
  const variants: Array<[string, (f: Uint8Array) => Uint8Array | void, boolean]> = [
    ['flow label', (f) => { f[17] ^= 1; }, true],
    ['traffic class', (f) => { f[15] ^= 0x10; }, true],
    ['hop limit', (f) => { f[21] = 62; }, true],
    ['source address', (f) => { f[37] ^= 1; }, true],
    ['destination address', (f) => { f[53] ^= 1; }, true],
    ['FIN', (f) => { f[67] = ACK | FIN; }, true],
    ['ack', (f) => { f[65] ^= 1; }, true],
    ['window', (f) => { f[69] ^= 1; }, true],
    ['timestamp option', (f) => { f[81] ^= 1; }, true],
    ['bad TCP checksum', (f) => { f[120] ^= 0x40; }, false],
    ['payload length over the frame', (f) => { wr16(f, 18, rd16(f, 18) + 1); }, false],
    ['jumbogram (payload length 0)', (f) => { wr16(f, 18, 0); }, false],
    ['IPv6 version field', (f) => { f[14] = (f[14] & 0x0f) | 0x40; }, false],
    ['a hop-by-hop header before TCP', (f) => {
      // the same segment with an 8-byte hop-by-hop options header (PadN) between IPv6 and TCP
      const g = new Uint8Array(f.length + 8);
      g.set(f.subarray(0, 54), 0);
      g[20] = 0; wr16(g, 18, rd16(f, 18) + 8);
      g.set([6, 0, 1, 4, 0, 0, 0, 0], 54);
      g.set(f.subarray(54), 62);
      // TCP checksum is over the same pseudo-header and segment: it stays valid
      return g;
    }, false],
  ];
  for (const [what, spoil, refix] of variants) {
    const frames: Uint8Array[] = base.map((x) => x.slice());
    const r = spoil(frames[1]);
    if (r) frames[1] = r;
    if (refix) fixTcp(frames[1]);
    const counts = hooks.groCoalesceForTest(frames).map((m) => m.frames);
    assert.is(counts[0], 1, `${what}: the run stops before the odd frame`);
    assert.is(counts.reduce((x, y) => x + y, 0), 4, `${what}: every frame sent`);
    if (refix) checkRoundTrip(frames, what);
  }
  const bad0 = base.map((x) => x.slice());
  bad0[0][100] ^= 1;
  assert.equal(hooks.groCoalesceForTest(bad0).map((m) => m.frames), [1, 3], 'a bad first segment goes alone, the rest merge');
  const pureAcks = [segment({ v6: true, payload: 0, seq: 1, id: 0 }), segment({ v6: true, payload: 0, seq: 1, id: 0 })];
  assert.equal(checkRoundTrip(pureAcks, 'IPv6 pure ACKs'), [1, 1]);
  const udp = base.map((x) => x.slice());
  udp[0][20] = 17;
  assert.is(hooks.groCoalesceForTest(udp)[0].frames, 1, 'UDP next header');
  // a frame cut short (a 60-byte IPv6 stub) is refused without reading past it
  assert.equal(hooks.groCoalesceForTest([base[0].slice(0, 60), base[1]]).map((m) => m.frames), [1, 1]);
});


test('fuzz: 2000 mutated batches of IPv4 and IPv6 flows; every message resegments to exactly its inputs, all frames accounted for', () => {
  let seed = 12345;
  const rnd = (n: number) => { seed = (seed * 1103515245 + 12345) >>> 0; return (seed >>> 8) % n; };
  for (let iter = 0; iter < 2000; iter++) {
    const frames: Uint8Array[] = [];
    const groups = 1 + rnd(4);
    for (let g = 0; g < groups; g++) frames.push(...run(1 + rnd(12), { mss: 200 + rnd(1300), last: rnd(3) === 0 ? 1 + rnd(150) : undefined, sport: 40000 + rnd(2), seq: rnd(3) ? 1000 : 1000 + rnd(3000), id: rnd(2) ? 5 : rnd(65536), psh: rnd(2) === 0, v6: rnd(2) === 0 }));
    for (let m = rnd(4); m > 0; m--) {
      const f = frames[rnd(frames.length)];
      const at = rnd(f.length);
      f[at] = rnd(256); // anywhere: headers, checksums, payload
    }
    if (rnd(3) === 0 && frames.length > 2) { const i = rnd(frames.length - 1); [frames[i], frames[i + 1]] = [frames[i + 1], frames[i]]; }
    const msgs = hooks.groCoalesceForTest(frames);
    let at = 0;
    for (const m of msgs) {
      if (m.frames > 1) {
        const segs = resegment(m);
        assert.is(segs.length, m.frames);
        for (const s of segs) { if (!same(s, frames[at])) assert.unreachable(`iteration ${iter}: frame ${at} changed by merge + resegment`); at++; }
      } else {
        assert.ok(same(m.frame, frames[at]), `iteration ${iter}: a lone frame is sent as it is`);
        at++;
      }
    }
    assert.is(at, frames.length);
  }
});

// ---- real sends through a veth -------------------------------------------------------------------

/** Our segments: source MAC 02:00:00:77:00:01 (the kernel's own frames on a fresh veth are not). */
const ourSegment = (f: Uint8Array) => f.length > 14 && f[6] === 0x02 && f[9] === 0x77 && f[11] === 1;
const collect = (port: number, want: number, timeoutMs?: number) => collectOn(pool, port, want, ourSegment, timeoutMs);
const sendBatch = (port: number, frames: Uint8Array[]) => sendOn(pool, port, frames);

for (const tx of ['off', 'on'] as const) {
  test(`real sends on a veth with tx offloads ${tx}: IPv4 and IPv6 runs go as super-frames, the peer gets every segment back byte for byte${tx === 'on' ? ' (the GSO skb arrives whole; podway\'s receive cuts it)' : ' (the kernel segments them)'}`, async () => {
    await withNetns(['gro'], async ([N]) => {
      N.exec('sysctl', ['-qw', 'net.ipv6.conf.all.disable_ipv6=1']);
      N.exec('sysctl', ['-qw', 'net.ipv6.conf.default.disable_ipv6=1']);
      N.ip('link', 'add', 'ga0', 'type', 'veth', 'peer', 'name', 'gb0');
      N.exec('ethtool', ['-K', 'ga0', 'tx', tx]);
      linksUp(N, ['ga0', 'gb0']);
      const txp = native.openPacket('ga0', { netns: N.path, gro: true });
      const rxp = native.openPacket('gb0', { netns: N.path });
      try {
        // segments within the veth's 1500-byte MTU (IPv6: 40 + 32 + 1428), as a pod's would be
        const mixed = [...run(3, { v6: true, mss: 1428, sport: 1, psh: false }), ...run(4, { sport: 2, last: 100 }), segment({ v6: true, payload: 0, seq: 5, id: 0 }), ...run(5, { v6: true, mss: 1428, sport: 4, last: 7, seed: 9 })];
        const cases: Array<[string, Uint8Array[], number[]]> = [
          ['IPv4, 45 x 1448 (a pod\'s 64 KiB cut by podway)', run(45, { seed: 5 }), [45]],
          ['IPv6, 45 x 1428', run(45, { v6: true, mss: 1428, seed: 6 }), [45]],
          ['IPv6, 30 x 1200, last shorter', run(30, { v6: true, mss: 1200, last: 500, seed: 7 }), [30]],
          ['mixed flows and families, a pure ACK between', mixed, [3, 4, 1, 5]],
          ['IPv6, 70 small segments', run(70, { v6: true, mss: 64 }), [64, 6]],
        ];
        let merged = 0, mergedFrames = 0, sent = 0;
        for (const [what, frames, sizes] of cases) {
          assert.equal(hooks.groCoalesceForTest(frames).map((m) => m.frames), sizes, `${what}: plan`);
          assert.is(sendBatch(txp, frames), frames.length, `${what}: all taken`);
          sent += frames.length;
          for (const c of sizes) if (c > 1) { merged++; mergedFrames += c; }
          const got = await collect(rxp, frames.length);
          assert.is(got.length, frames.length, `${what}: segments on the peer`);
          for (const [k, f] of got.entries()) if (!same(f, frames[k])) assert.unreachable(`${what}: segment ${k} differs from the one sent`);
        }
        const st = native.stats(txp);
        assert.is(st.txGroFrames, merged, 'txGroFrames: one per merged message');
        assert.is(st.txGroSegments, mergedFrames, 'txGroSegments: the frames they carried');
        assert.is(st.txPackets, sent, 'txPackets counts frames, not sends');
        assert.is(st.txErrors + st.txDroppedFull + (st.txBacklog ?? 0) + (st.txGsoRejected ?? 0), 0);
        if (tx === 'on') assert.ok((native.stats(rxp).rxGsoFrames ?? 0) >= merged, 'the peer received the GSO skbs whole');
        else assert.is(native.stats(rxp).rxGsoFrames ?? 0, 0, 'the kernel cut them before the peer');
      } finally {
        native.close(txp);
        native.close(rxp);
      }
    });
  });
}

test.run();
