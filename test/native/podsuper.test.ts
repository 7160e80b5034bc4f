/**
 * A pod's TCP super-frame handed on whole (native/rxsuper.c, rxSuperTcp; ports.c send_super_uso):
 * a TSO super-frame the pod's kernel hands its veth (here: written to a TAP with IFF_VNET_HDR, which
 * the device receives as such) is received on an rxSuperTcp port as ONE descriptor (segment 0,
 * DescFlag.SUPER), encapsulated here as the pipeline does (VXLAN in front of segment 0), and sent on
 * an underlay port. There it is cut only while it is sent: into UDP GSO messages (txGso) that the
 * kernel segments in software (the underlay veth's tx offloads are off), or into the backlog (a port
 * without txGso). What the underlay's peer receives must be, byte for byte, the cut path's segments
 * (offloadDeliverForTest, gso.c: the receive segmenter, itself checked against the kernel's own
 * segmentation in gso.test.ts), each encapsulated with the outer IPv4 id + k, except the outer UDP
 * checksum, which the kernel computes for a merged message (checked valid) and podway leaves 0
 * over IPv4 for a datagram sent alone. Bad input: mutated super-frames give, on an rxSuperTcp port,
 * exactly what the scatter path gives (the same drops, the same segments), never a corrupted one.
 * Root and network namespaces, made and removed per test.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { writeSync, closeSync } from 'node:fs';
import { native, nativeAddon, FramePool, DescFlag } from '../../src/dataplane/native';
import { withNetns, Netns, linksUp } from '../helpers/netns';
import { fold, rd16, sum16, wr16, wr32 } from './wire-ref';
import { collect, frameAt } from './pool-frames';
import { prng } from '../helpers/prng';

interface TestHooks {
  offloadDeliverForTest(frame: Uint8Array, vnet: Uint8Array | null, first: number, max: number, resume: boolean): { n: number; done: number };
  vnetTapForTest(name: string, netns: string): number;
}
const hooks = nativeAddon() as unknown as TestHooks;
const pool = new FramePool(1024); // a send of MAX_BATCH descriptors (one test)

const ACK = 0x10, PSH = 0x08, FIN = 0x01;
const MSS = 1398; // 50 + 14 + 20 + 32 + 1398 = 1514: a full datagram on a 1500-byte underlay
const OUTER_ID = 0x3000;

/** A pod's TCP/IPv4 super-frame 10.77.0.1:40000 -> 10.77.0.2:5201 (timestamps), its checksum left
 * partial (the pseudo-header sum), as the pod's kernel hands it to its veth. */
function superFrame(payload: number, flags: number, seq: number, seed: number): Uint8Array {
  const f = new Uint8Array(14 + 20 + 32 + payload);
  f.set([0x02, 0, 0, 0x66, 0, 2], 0); f.set([0x02, 0, 0, 0x66, 0, 1], 6); wr16(f, 12, 0x0800);
  f[14] = 0x45; wr16(f, 16, f.length - 14); wr16(f, 18, 0x4242); wr16(f, 20, 0x4000); f[22] = 64; f[23] = 6;
  f.set([10, 77, 0, 1], 26); f.set([10, 77, 0, 2], 30);
  wr16(f, 24, ~fold(sum16(f, 14, 20)) & 0xffff);
  const t = 34;
  wr16(f, t, 40000); wr16(f, t + 2, 5201); wr32(f, t + 4, seq); wr32(f, t + 8, 0x01020304);
  f[t + 12] = 8 << 4; f[t + 13] = flags; wr16(f, t + 14, 502);
  f.set([1, 1, 8, 10, 0, 0, 0, 1, 0, 0, 0, 2], t + 20);
  for (let k = 0; k < payload; k++) f[t + 32 + k] = (k * 13 + seed) & 255;
  wr16(f, t + 16, fold(sum16(f, 26, 8) + 6 + (f.length - t)));
  return f;
}

/** The same over IPv6 (fd77::1 -> fd77::2), a TCPV6 super-frame. */
function superFrame6(payload: number, flags: number, seq: number, seed: number): Uint8Array {
  const f = new Uint8Array(14 + 40 + 32 + payload);
  f.set([0x02, 0, 0, 0x66, 0, 2], 0); f.set([0x02, 0, 0, 0x66, 0, 1], 6); wr16(f, 12, 0x86dd);
  f[14] = 0x60; wr16(f, 18, 32 + payload); f[20] = 6; f[21] = 64;
  f[22] = 0xfd; f[23] = 0x77; f[37] = 1; f[38] = 0xfd; f[39] = 0x77; f[53] = 2;
  const t = 54;
  wr16(f, t, 40000); wr16(f, t + 2, 5201); wr32(f, t + 4, seq); wr32(f, t + 8, 0x01020304);
  f[t + 12] = 8 << 4; f[t + 13] = flags; wr16(f, t + 14, 502);
  f.set([1, 1, 8, 10, 0, 0, 0, 1, 0, 0, 0, 2], t + 20);
  for (let k = 0; k < payload; k++) f[t + 32 + k] = (k * 13 + seed) & 255;
  wr16(f, t + 16, fold(sum16(f, 22, 32) + 6 + (f.length - t)));
  return f;
}

/** Its vnet header: TCPV4 (TCPV6 with inner6), NEEDS_CSUM at the TCP header. */
function tcpVnet(mss: number, inner6 = false): Uint8Array {
  const v = new Uint8Array(10);
  const dv = new DataView(v.buffer);
  v[0] = 1; v[1] = inner6 ? 4 : 1;
  dv.setUint16(2, inner6 ? 86 : 66, true); dv.setUint16(4, mss, true); dv.setUint16(6, inner6 ? 54 : 34, true); dv.setUint16(8, 16, true);
  return v;
}

/** The outer headers the pipeline puts in front of a pod's frame for another node: VXLAN (VNI
 * 4096) over IPv4 10.99.0.1 -> 10.99.0.2 (UDP checksum 0) or IPv6 fd99::1 -> fd99::2, for an inner
 * frame of `len` bytes, outer IPv4 id `id`. */
function outer(len: number, id: number, v6: boolean): Uint8Array {
  const hl = v6 ? 70 : 50, o = new Uint8Array(hl);
  o.set([0x02, 0, 0, 0x99, 0, 2], 0); o.set([0x02, 0, 0, 0x99, 0, 1], 6);
  let u: number;
  if (v6) {
    wr16(o, 12, 0x86dd);
    o[14] = 0x60; wr16(o, 18, 16 + len); o[20] = 17; o[21] = 64;
    o[22] = 0xfd; o[23] = 0x99; o[37] = 1; o[38] = 0xfd; o[39] = 0x99; o[53] = 2;
    u = 54;
  } else {
    wr16(o, 12, 0x0800);
    o[14] = 0x45; wr16(o, 16, hl - 14 + len); wr16(o, 18, id); wr16(o, 20, 0x4000); o[22] = 64; o[23] = 17;
    o.set([10, 99, 0, 1], 26); o.set([10, 99, 0, 2], 30);
    wr16(o, 24, ~fold(sum16(o, 14, 20)) & 0xffff);
    u = 34;
  }
  wr16(o, u, 51234); wr16(o, u + 2, 4789); wr16(o, u + 4, 16 + len);
  o[u + 8] = 0x08; o[u + 14] = 0x10;
  return o;
}

/** Frame f in that VXLAN, with the UDP checksum an IPv6 datagram needs (and IPv4's 0). */
function encap(f: Uint8Array, id: number, v6: boolean): Uint8Array {
  const o = outer(f.length, id, v6), d = new Uint8Array(o.length + f.length);
  d.set(o, 0); d.set(f, o.length);
  if (v6) {
    const c = ~fold(sum16(d, 54, d.length - 54, sum16(d, 22, 32) + 17 + (d.length - 54))) & 0xffff;
    wr16(d, 60, c === 0 ? 0xffff : c);
  }
  return d;
}

/** What the pipeline does to descriptor i (a pod's frame for another node): the outer headers in
 * front of it (segment 0's lengths), and a super-frame's `more` grows by them per segment. */
function encapDesc(i: number, v6: boolean): void {
  const o = outer(pool.len[i], OUTER_ID, v6);
  if ((pool.flags[i] & DescFlag.SUPER) !== 0) pool.more[i] += (pool.segs[i] - 1) * o.length;
  pool.off[i] -= o.length;
  pool.len[i] += o.length;
  pool.bytes.set(o, pool.start(i));
}

/** The cut path: the same super-frame segmented on receive (gso.c), each segment as the pipeline
 * sends it on (outer id + k, as a run of datagrams would count). */
function cutPath(f: Uint8Array, mss: number, v6: boolean, firstId = OUTER_ID, inner6 = false): Uint8Array[] {
  const r = hooks.offloadDeliverForTest(f, tcpVnet(mss, inner6), 100, 128, false);
  assert.is(r.done, 1);
  const out: Uint8Array[] = [];
  for (let k = 0; k < r.n; k++) out.push(encap(frameAt(pool, 100 + k), (firstId + k) & 0xffff, v6));
  return out;
}

const ours = (f: Uint8Array) => f.length > 60 && (rd16(f, 36) === 4789 || rd16(f, 56) === 4789);

/** The received datagrams against the expected ones: byte for byte, but the outer IPv4 UDP
 * checksum, which must be 0 or valid. */
function same(got: Uint8Array[], want: Uint8Array[], what: string): void {
  assert.is(got.length, want.length, `${what}: datagrams`);
  for (let k = 0; k < want.length; k++) {
    const g = got[k].slice();
    if (rd16(g, 12) === 0x0800) {
      const c = rd16(g, 40);
      if (c !== 0) assert.is(fold(sum16(g, 34, g.length - 34, sum16(g, 26, 8) + 17 + (g.length - 34))), 0xffff, `${what}: datagram ${k} UDP checksum`);
      wr16(g, 40, 0);
    }
    assert.equal(Array.from(g), Array.from(want[k]), `${what}: datagram ${k}`);
  }
}

function noIpv6(n: Netns): void {
  n.exec('sysctl', ['-qw', 'net.ipv6.conf.all.disable_ipv6=1']);
  n.exec('sysctl', ['-qw', 'net.ipv6.conf.default.disable_ipv6=1']);
}

interface Lab { tapFd: number; pod: number; scatter: number; underlay: (txGso: boolean, sndbuf?: number) => number; observer: number; ns: Netns }

/** A vnet TAP as the pod's veth (an rxSuperTcp port and a plain scatter port on it), a veth pair
 * as the underlay (tx offloads off on the sending end: the kernel segments in software) observed
 * from its other end. */
async function withLab(fn: (l: Lab) => Promise<void>): Promise<void> {
  await withNetns(['psup'], async ([N]) => {
    noIpv6(N);
    const tapFd = hooks.vnetTapForTest('ps0', N.path);
    const ports: number[] = [];
    try {
      N.ip('link', 'add', 'pu0', 'type', 'veth', 'peer', 'name', 'pu1');
      linksUp(N, ['ps0', 'pu0', 'pu1']);
      N.exec('ethtool', ['-K', 'pu0', 'tx', 'off']);
      const pod = native.openPacket('ps0', { netns: N.path, ringVersion: 2, rxSuperTcp: true });
      ports.push(pod);
      const scatter = native.openPacket('ps0', { netns: N.path, ringVersion: 2 });
      ports.push(scatter);
      const observer = native.openPacket('pu1', { netns: N.path, ringVersion: 2 });
      ports.push(observer);
      const underlay = (txGso: boolean, sndbuf?: number) => {
        const p = native.openPacket('pu0', { netns: N.path, txGso, ...(sndbuf ? { sndbuf } : {}) });
        ports.push(p);
        return p;
      };
      await fn({ tapFd, pod, scatter, underlay, observer, ns: N });
    } finally {
      for (const p of ports) native.close(p);
      closeSync(tapFd);
    }
  });
}

/** Receive on `port` into descriptors [at, ...) until `want` came (bounded). */
async function recvAll(port: number, at: number, want: number, max = 64): Promise<number> {
  let n = 0;
  for (let t = 0; t < 300 && n < want; t++) {
    n += native.recv(port, at + n, max - n);
    if (n < want) await new Promise((r) => setTimeout(r, 5));
  }
  return n;
}

/** Drain the scatter port (it sees every frame the pod port sees), so its ring never fills. */
function drain(port: number): void {
  while (native.recv(port, 200, 100) > 0) { /* empty */ }
}

for (const [inner6, v6] of [[false, false], [false, true], [true, false], [true, true]]) {
  test(`a pod's TCP/${inner6 ? 'IPv6' : 'IPv4'} super-frame is one SUPER descriptor; in VXLAN over ${v6 ? 'IPv6' : 'IPv4'} on a txGso underlay it leaves as UDP GSO messages: the peer receives exactly the cut path's datagrams`, async () => {
    await withLab(async (l) => {
      const U = l.underlay(true);
      const mss = MSS - (v6 ? 20 : 0) - (inner6 ? 20 : 0); // a full datagram on the 1500-byte underlay either way
      const payload = 45 * mss - 100; // 45 segments, a shorter last
      const f = (inner6 ? superFrame6 : superFrame)(payload, ACK | PSH, 0xfffff000, 3); // seq wraps inside
      writeSync(l.tapFd, Buffer.concat([tcpVnet(mss, inner6), f]));
      assert.is(await recvAll(l.pod, 0, 1), 1, 'one descriptor for the whole super-frame');
      drain(l.scatter);
      assert.is(pool.flags[0] & DescFlag.SUPER, DescFlag.SUPER);
      assert.is(pool.segs[0], 45);
      const want = cutPath(f, mss, v6, OUTER_ID, inner6);
      const oh = v6 ? 70 : 50;
      assert.equal(Array.from(frameAt(pool, 0)), Array.from(want[0].subarray(oh)), 'segment 0 as the cut path writes it');
      encapDesc(0, v6);
      assert.is(pool.len[0] + pool.more[0], want.reduce((s, d) => s + d.length, 0), 'more follows the encapsulation');
      pool.txList[0] = 0;
      assert.is(native.send(U, 0, 1), 45, 'send counts the segments');
      same(await collect(pool, l.observer, 45, ours), want, 'UDP GSO');
      const ps = native.stats(l.pod), us = native.stats(U);
      assert.is(ps.rxSuperFrames, 1);
      assert.is(ps.rxSuperSegments, 45);
      assert.is(ps.rxPackets, 45);
      assert.is(ps.rxGsoFrames, 0, 'not cut on receive');
      assert.is(us.txSuperUso, 1);
      // over IPv4 65,535 bytes of total length hold 44 datagrams (the shorter last goes alone);
      // IPv6's payload length leaves its 40-byte header out: all 45 in one message
      const inOne = Math.min(45, Math.floor((65535 - (v6 ? 8 : 28)) / (want[0].length - (v6 ? 62 : 42))));
      assert.is(us.txGsoFrames, 1, 'one GSO message');
      assert.is(us.txGsoSegments, inOne === 44 ? 44 : 45);
      assert.is(us.txPackets, 45);
      assert.is(us.txSuperLost, 0);
      assert.is(us.txSuperCut, 0);
    });
  });
}

test('two super-frames of one stream back to back: the second continues the first one\'s last message (as uso merged runs across super-frames; its outer ids count on from that message\'s first)', async () => {
  await withLab(async (l) => {
    const U = l.underlay(true);
    const a = superFrame(45 * MSS, ACK, 1000, 5), b = superFrame(45 * MSS, ACK | PSH, 1000 + 45 * MSS, 6);
    writeSync(l.tapFd, Buffer.concat([tcpVnet(MSS), a]));
    writeSync(l.tapFd, Buffer.concat([tcpVnet(MSS), b]));
    assert.is(await recvAll(l.pod, 0, 2), 2);
    drain(l.scatter);
    assert.equal([pool.segs[0], pool.segs[1]], [45, 45]);
    // messages: a0-a43 (ids + 0..43), a44 + b0-b42 (ids + 44..87), b43-b44 (b's own ids + 43, 44)
    const wb = cutPath(b, MSS, false);
    const wb2 = cutPath(b, MSS, false, OUTER_ID + 45);
    const want = [...cutPath(a, MSS, false), ...wb2.slice(0, 43), ...wb.slice(43)];
    for (const i of [0, 1]) { encapDesc(i, false); pool.txList[i] = i; }
    assert.is(native.send(U, 0, 2), 90);
    same(await collect(pool, l.observer, 90, ours), want, 'two super-frames');
    const us = native.stats(U);
    assert.is(us.txGsoFrames, 3, '44, 1 + 43, 2 datagrams');
    assert.is(us.txGsoSegments, 90);
    assert.is(us.txSuperUso, 2);
  });
});

test('a send refused part way through a super-frame (a slow qdisc, a tiny send buffer: EAGAIN) cuts only its unsent segments into the backlog: every datagram arrives once, in order', async () => {
  await withLab(async (l) => {
    // 20 Mbit/s: the first message's 44 datagrams wait in the qdisc, holding the socket's buffer
    l.ns.exec('tc', ['qdisc', 'add', 'dev', 'pu0', 'root', 'tbf', 'rate', '20mbit', 'burst', '1600', 'limit', '400000']);
    const U = l.underlay(true, 4096);
    const a = superFrame(45 * MSS, ACK, 5000, 21), b = superFrame(45 * MSS, ACK | PSH, 5000 + 45 * MSS, 22);
    writeSync(l.tapFd, Buffer.concat([tcpVnet(MSS), a]));
    writeSync(l.tapFd, Buffer.concat([tcpVnet(MSS), b]));
    assert.is(await recvAll(l.pod, 0, 2), 2);
    drain(l.scatter);
    // sent: a0-a43 in one message; refused: a44 + b0-b42 (continued), then b43-b44: a44 and all of
    // b cut into the backlog with the cut path's ids
    const want = [...cutPath(a, MSS, false), ...cutPath(b, MSS, false)];
    for (const i of [0, 1]) { encapDesc(i, false); pool.txList[i] = i; }
    assert.is(native.send(U, 0, 2), 90, 'sent or queued: every segment');
    const us = native.stats(U);
    assert.is(us.txGsoFrames, 1, 'the first message went');
    assert.is(us.txSuperCut, 2, 'the rest of the first and the whole second cut');
    assert.is(us.txQueued, 46, 'a44 and b0-b44 queued');
    same(await collect(pool, l.observer, 90, ours, 10_000), want, 'refused part way');
    assert.is(native.stats(U).txPackets, 90);
    assert.is(native.stats(U).txDroppedFull, 0);
  });
});

test('on an underlay without txGso, a pod\'s super-frame in VXLAN is cut into the backlog: the same datagrams (outer UDP checksum 0, ids + k)', async () => {
  await withLab(async (l) => {
    const U = l.underlay(false);
    const f = superFrame(10 * MSS + 7, ACK | PSH, 77, 8);
    writeSync(l.tapFd, Buffer.concat([tcpVnet(MSS), f]));
    assert.is(await recvAll(l.pod, 0, 1), 1);
    drain(l.scatter);
    assert.is(pool.segs[0], 11);
    const want = cutPath(f, MSS, false);
    encapDesc(0, false);
    pool.txList[0] = 0;
    assert.is(native.send(U, 0, 1), 11);
    const got = await collect(pool, l.observer, 11, ours);
    for (const g of got) assert.is(rd16(g, 40), 0, 'IPv4 VXLAN without a UDP checksum, as podway sends it');
    same(got, want, 'cut on send');
    assert.is(native.stats(U).txSuperCut, 1);
    assert.is(native.stats(U).txSuperLost, 0);
  });
});

/** An outer IPv4 header for IPIP 10.99.0.1 -> 10.99.0.2 around an inner IP packet of `len` bytes. */
function ipipHeader(len: number, id: number): Uint8Array {
  const o = new Uint8Array(20);
  o[0] = 0x45; wr16(o, 2, 20 + len); wr16(o, 4, id); wr16(o, 6, 0x4000); o[8] = 64; o[9] = 4;
  o.set([10, 99, 0, 1], 12); o.set([10, 99, 0, 2], 16);
  wr16(o, 10, ~fold(sum16(o, 0, 20)) & 0xffff);
  return o;
}

for (const tunnel of ['VXLAN', 'IPIP'] as const) {
  test(`on a raw IPv4 port (tx4: the underlay neighbour's MAC not known), a pod's super-frame in ${tunnel} is cut into its segments: the peer receives exactly the cut path's packets`, async () => {
    await withLab(async (l) => {
      // the raw socket's packets leave through pu0 to a neighbour the kernel knows
      l.ns.ip('addr', 'add', '10.99.0.1/24', 'dev', 'pu0');
      l.ns.ip('neigh', 'replace', '10.99.0.2', 'lladdr', '02:00:00:99:00:02', 'dev', 'pu0');
      const U = native.openRaw({ netns: l.ns.path, proto: 255 });
      try {
        const f = superFrame(45 * MSS - 100, ACK | PSH, 0xfffff000, 31);
        writeSync(l.tapFd, Buffer.concat([tcpVnet(MSS), f]));
        assert.is(await recvAll(l.pod, 0, 1), 1);
        drain(l.scatter);
        assert.is(pool.segs[0], 45);
        // the packets expected: the cut path's segments, each in the tunnel (no outer Ethernet)
        const r = hooks.offloadDeliverForTest(f, tcpVnet(MSS), 100, 128, false);
        assert.is(r.n, 45);
        const want: Uint8Array[] = [];
        for (let k = 0; k < r.n; k++) {
          const seg = frameAt(pool, 100 + k);
          if (tunnel === 'VXLAN') want.push(encap(seg, (OUTER_ID + k) & 0xffff, false).subarray(14));
          else {
            const inner = seg.subarray(14), d = new Uint8Array(20 + inner.length);
            d.set(ipipHeader(inner.length, (OUTER_ID + k) & 0xffff), 0); d.set(inner, 20);
            want.push(d);
          }
        }
        // descriptor 0 as the pipeline hands it to tx4: an IPv4 packet, the tunnel in front
        if (tunnel === 'VXLAN') {
          const o = outer(pool.len[0], OUTER_ID, false).subarray(14);
          pool.more[0] += (pool.segs[0] - 1) * o.length;
          pool.off[0] -= o.length; pool.len[0] += o.length;
          pool.bytes.set(o, pool.start(0));
        } else {
          pool.more[0] += (pool.segs[0] - 1) * 6;
          pool.off[0] += 14 - 20; pool.len[0] += 20 - 14;
          pool.bytes.set(ipipHeader(pool.len[0] - 20, OUTER_ID), pool.start(0));
        }
        assert.equal(Array.from(frameAt(pool, 0)), Array.from(want[0]), 'segment 0 as it goes');
        pool.addr[0] = (10 << 24 | 99 << 16 | 2) >>> 0;
        pool.txList[0] = 0;
        assert.is(native.send(U, 0, 1), 45, 'every segment sent or queued');
        const mine = (x: Uint8Array) => x.length > 34 && rd16(x, 12) === 0x0800 && x[23] === (tunnel === 'VXLAN' ? 17 : 4) && x[27] === 99 && x[29] === 1; // from 10.99.0.1
        const got = await collect(pool, l.observer, 45, mine);
        assert.is(got.length, 45);
        for (let k = 0; k < 45; k++) {
          const g = got[k].subarray(14), w = want[k];
          const at = g.findIndex((x, j) => x !== w[j]);
          assert.ok(g.length === w.length && at < 0, `packet ${k}: ${g.length} bytes (want ${w.length}), first difference at ${at}: ${g[at]} (want ${w[at]})`);
        }
        const us = native.stats(U);
        assert.is(us.txSuperCut, 1);
        assert.is(us.txSuperLost, 0);
        assert.is(us.txPackets, 45);
      } finally {
        native.close(U);
      }
    });
  });
}

test('a send of 1024 descriptors, 16 super-frames (two messages each) among 1008 plain frames: more messages than MAX_BATCH, sent in two rounds, every datagram once and in order', async () => {
  await withLab(async (l) => {
    const U = l.underlay(true, 8 << 20);
    // 16 super-frames (a pod port's arena holds 16 per recv call) of 45 segments: 44 datagrams in
    // one message (65,535 bytes of outer IPv4), the shorter last in a second
    for (let j = 0; j < 16; j++) writeSync(l.tapFd, Buffer.concat([tcpVnet(MSS), superFrame(45 * MSS - 100, ACK, 1000 + j * 100000, j)]));
    assert.is(await recvAll(l.pod, 0, 16), 16);
    drain(l.scatter);
    for (let j = 0; j < 16; j++) {
      assert.is(pool.segs[j], 45, `super-frame ${j}`);
      encapDesc(j, false);
      wr16(pool.bytes, pool.start(j) + 34, 40000 + j); // its own outer flow (UDP source port)
    }
    // 4 plain UDP datagrams 10.99.0.1 -> 10.99.0.2 to ports 7000..7003, in turn: never a run
    for (let x = 0; x < 4; x++) {
      const d = 20 + x, f = new Uint8Array(14 + 20 + 8 + 60);
      f.set([0x02, 0, 0, 0x99, 0, 2], 0); f.set([0x02, 0, 0, 0x99, 0, 1], 6); wr16(f, 12, 0x0800);
      f[14] = 0x45; wr16(f, 16, f.length - 14); f[22] = 64; f[23] = 17;
      f.set([10, 99, 0, 1], 26); f.set([10, 99, 0, 2], 30);
      wr16(f, 24, ~fold(sum16(f, 14, 20)) & 0xffff);
      wr16(f, 34, 6000); wr16(f, 36, 7000 + x); wr16(f, 38, f.length - 34);
      pool.off[d] = pool.off[0] + 70; // (any headroom will do)
      pool.len[d] = f.length;
      pool.flags[d] = 0;
      pool.bytes.set(f, pool.start(d));
    }
    // S P P ... (63 plain) S P ...: 16 x (2 + 63) = 1040 messages for 1024 frames
    const want: string[] = [];
    let n = 0, p = 0;
    for (let j = 0; j < 16; j++) {
      pool.txList[n++] = j;
      for (let s = 0; s < 45; s++) want.push(`S${j}:${s}`);
      for (let k = 0; k < 63; k++, p++) { pool.txList[n++] = 20 + (p & 3); want.push(`P${p & 3}`); }
    }
    assert.is(n, 1024);
    assert.is(native.send(U, 0, 1024), 16 * 45 + 1008, 'every segment sent or queued');
    const label = (x: Uint8Array): string | null => {
      if (x.length < 42 || rd16(x, 12) !== 0x0800 || x[23] !== 17 || x[27] !== 99) return null;
      if (rd16(x, 36) === 4789) return `S${rd16(x, 34) - 40000}:${(rd16(x, 50 + 14 + 4) - 0x4242) & 0xffff}`; // inner IPv4 id + k
      const dp = rd16(x, 36);
      return dp >= 7000 && dp < 7004 ? `P${dp - 7000}` : null;
    };
    const got = await collect(pool, l.observer, want.length, (x) => label(x) !== null, 10_000);
    assert.is(got.length, want.length, 'datagrams');
    const labels = got.map(label);
    const at = labels.findIndex((x, k) => x !== want[k]);
    assert.is(at, -1, `in order: datagram ${at} is ${labels[at]}, expected ${want[at]}`);
    const us = native.stats(U);
    assert.is(us.txPackets, want.length);
    assert.is(us.txSuperUso, 16);
    assert.is(us.txSuperLost, 0);
    assert.is(us.txDroppedFull, 0);
  });
});

test('a SUPER descriptor JS changed (no longer segment 0) goes as it is, the rest counted lost; SYN/FIN/RST super-frames and tiny gso_size are cut on receive', async () => {
  await withLab(async (l) => {
    const U = l.underlay(true);
    writeSync(l.tapFd, Buffer.concat([tcpVnet(MSS), superFrame(5 * MSS, ACK, 100, 9)]));
    assert.is(await recvAll(l.pod, 0, 1), 1);
    drain(l.scatter);
    assert.is(pool.segs[0], 5);
    wr32(pool.bytes, pool.start(0) + 34 + 4, 999); // its sequence number
    encapDesc(0, false);
    const changed = frameAt(pool, 0);
    pool.txList[0] = 0;
    assert.is(native.send(U, 0, 1), 1, 'only the frame itself');
    same(await collect(pool, l.observer, 1, ours), [changed], 'as it is');
    assert.is(native.stats(U).txSuperLost, 4);
    // FIN: every segment to JS (the connection's state changes); gso_size 100: more than 128 segments
    for (const [f, mss, segs] of [[superFrame(3 * MSS, ACK | FIN, 5, 1), MSS, 3], [superFrame(13000, ACK, 5, 2), 100, 130]] as const) {
      writeSync(l.tapFd, Buffer.concat([tcpVnet(mss), f]));
      let n = 0;
      for (let t = 0; t < 300 && n < segs; t++) {
        n += native.recv(l.pod, n, 256 - n);
        if (n < segs) await new Promise((r) => setTimeout(r, 5));
      }
      drain(l.scatter);
      assert.is(n, segs, 'cut on receive');
      for (let i = 0; i < n; i++) assert.is(pool.flags[i] & DescFlag.SUPER, 0);
    }
    assert.is(native.stats(l.pod).rxSuperFrames, 1);
  });
});

test('fuzz: mutated super-frames give on an rxSuperTcp port what the scatter path gives (the same drops and segments, a SUPER descriptor standing for them), and sent cut they are the scatter path\'s segments', async () => {
  await withLab(async (l) => {
    const U = l.underlay(false);
    const rnd = prng(0x5eed12);
    let supers = 0, cutSends = 0;
    for (let iter = 0; iter < 150; iter++) {
      const f = superFrame(1 + Math.floor(rnd() * 20000), ACK | (rnd() < 0.3 ? PSH : 0), Math.floor(rnd() * 2 ** 32), iter);
      const v = tcpVnet(MSS);
      const dv = new DataView(v.buffer);
      // one or two mutations of header and metadata bytes
      for (let m = 0; m < 1 + Math.floor(rnd() * 2); m++) {
        const what = Math.floor(rnd() * 6);
        if (what === 0) dv.setUint16(4, [0, 1, 536, 1398, 1400, 3000][Math.floor(rnd() * 6)], true);
        else if (what === 1) dv.setUint16(6, Math.floor(rnd() * 80), true);
        else if (what === 2) f[14 + Math.floor(rnd() * 20)] ^= 1 << Math.floor(rnd() * 8);
        else if (what === 3) f[34 + Math.floor(rnd() * 32)] ^= 1 << Math.floor(rnd() * 8);
        else if (what === 4) v[1] = [0, 1, 3, 4, 5, 0x81][Math.floor(rnd() * 6)];
        else dv.setUint16(8, [0, 6, 16, 17][Math.floor(rnd() * 4)], true);
      }
      const before = native.stats(l.pod), sBefore = native.stats(l.scatter);
      try {
        writeSync(l.tapFd, Buffer.concat([v, f]));
      } catch {
        continue; // the TAP refused the vnet header itself (EINVAL): nothing reached the ports
      }
      await new Promise((r) => setTimeout(r, 2));
      const n = native.recv(l.pod, 0, 150);
      const m = native.recv(l.scatter, 200, 150);
      const after = native.stats(l.pod), sAfter = native.stats(l.scatter);
      assert.is(after.rxGsoBad! - before.rxGsoBad!, sAfter.rxGsoBad! - sBefore.rxGsoBad!, `iteration ${iter}: the same bad count`);
      assert.is(after.rxGsoDropped! - before.rxGsoDropped!, sAfter.rxGsoDropped! - sBefore.rxGsoDropped!, `iteration ${iter}: the same dropped count`);
      assert.is(after.rxTruncated - before.rxTruncated, sAfter.rxTruncated - sBefore.rxTruncated, `iteration ${iter}: the same truncated count`);
      const scattered: Uint8Array[] = [];
      for (let i = 200; i < 200 + m; i++) scattered.push(frameAt(pool, i));
      if (n === 1 && (pool.flags[0] & DescFlag.SUPER) !== 0) {
        supers++;
        assert.is(pool.segs[0], m, `iteration ${iter}: segments`);
        assert.equal(Array.from(frameAt(pool, 0)), Array.from(scattered[0]), `iteration ${iter}: segment 0`);
        assert.is(pool.len[0] + pool.more[0], scattered.reduce((s, x) => s + x.length, 0), `iteration ${iter}: bytes`);
        if (iter % 3 === 0 && scattered.every((x) => x.length <= 1514)) { // cut on send (within the veth's MTU) (no encapsulation: the frame as it came), compared whole
          pool.txList[0] = 0;
          assert.is(native.send(U, 0, 1), m);
          const got = await collect(pool, l.observer, m, (x) => x.length >= 34 && x[9] === 0x66 && x[11] === 1); // our source MAC (never mutated)
          assert.equal(got.map((x) => Array.from(x)), scattered.map((x) => Array.from(x)), `iteration ${iter}: cut on send`);
          cutSends++;
        }
      } else {
        assert.is(n, m, `iteration ${iter}: descriptors`);
        for (let i = 0; i < n; i++) assert.equal(Array.from(frameAt(pool, i)), Array.from(scattered[i]), `iteration ${iter}: descriptor ${i}`);
      }
    }
    assert.ok(supers > 10, `some stayed whole (${supers})`);
    assert.ok(cutSends > 3, `some were cut on send (${cutSends})`);
    assert.is(native.stats(U).txSuperLost, 0);
  });
});

test.run();
