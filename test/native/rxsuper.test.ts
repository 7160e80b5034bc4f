/**
 * Tunnel super-frames handed on whole (native/rxsuper.c): a VXLAN datagram carrying a 64 KiB-class
 * inner TCP segment (UDP tunnel GSO, as a kernel node's vxlan.calico hands a veth with offloads on)
 * is received on an rxSuper port as ONE descriptor (segment 0, DescFlag.SUPER), "routed" here as
 * the pipeline does (outer headers stripped, MACs rewritten, TTL decremented), and sent to a pod
 * port. What the pod's side of the veth receives must be, byte for byte, what the cut path
 * delivers: the same super-frame cut by the receive segmenter (offloadDeliverForTest, gso.c), each
 * segment routed the same way. Sent whole to a port with gro (one GSO message), cut on send to a
 * port without, and not sent beyond segment 0 when the descriptor no longer holds segment 0 or its
 * receive buffer has moved on (counted). Root and network namespaces, made and removed per test.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { writeSync, closeSync } from 'node:fs';
import { native, nativeAddon, FramePool, DescFlag } from '../../src/dataplane/native';
import { withNetns, Netns, linksUp } from '../helpers/netns';
import { fold, rd16, sum16, wr16, wr32 } from './wire-ref';
import { collect, frameAt } from './pool-frames';
import { ecnDecapsulateIpv4 } from '../../src/packet/ecn';

interface TestHooks {
  offloadDeliverForTest(frame: Uint8Array, vnet: Uint8Array | null, first: number, max: number, resume: boolean): { n: number; done: number };
  vnetTapForTest(name: string, netns: string): number;
}
const hooks = nativeAddon() as unknown as TestHooks;
const pool = new FramePool(512);

const ACK = 0x10, PSH = 0x08, FIN = 0x01;
const GSO_TCPV4 = 1;
const POD_MAC = [0x02, 0x00, 0x00, 0x55, 0x00, 0x02];
const GW_MAC = [0xee, 0xee, 0xee, 0xee, 0xee, 0xee];

/** An inner TCP/IPv4 frame 10.77.0.1:40000 -> 10.77.0.2:5201 with a patterned payload and its
 * checksum left partial (the pseudo-header sum), as the kernel hands a GSO super-frame over. */
function inner(payload: number, flags: number, seq: number, seed: number): Uint8Array {
  const f = new Uint8Array(14 + 20 + 32 + payload);
  f.set([0x02, 0, 0, 0x66, 0, 1], 0); f.set([0x02, 0, 0, 0x66, 0, 2], 6); wr16(f, 12, 0x0800);
  f[14] = 0x45; wr16(f, 16, f.length - 14); wr16(f, 18, 0x4242); wr16(f, 20, 0x4000); f[22] = 63; f[23] = 6;
  f.set([10, 77, 0, 1], 26); f.set([10, 77, 0, 2], 30);
  wr16(f, 24, ~fold(sum16(f, 14, 20)) & 0xffff);
  const t = 34;
  wr16(f, t, 40000); wr16(f, t + 2, 5201); wr32(f, t + 4, seq); wr32(f, t + 8, 0x01020304);
  f[t + 12] = 8 << 4; f[t + 13] = flags; wr16(f, t + 14, 502);
  f.set([1, 1, 8, 10, 0, 0, 0, 1, 0, 0, 0, 2], t + 20); // NOP NOP timestamps
  for (let k = 0; k < payload; k++) f[t + 32 + k] = (k * 7 + seed) & 255;
  wr16(f, t + 16, fold(sum16(f, 26, 8) + 6 + (f.length - t)));
  return f;
}

/** `f` in VXLAN (VNI 4096) over IPv4 10.99.0.2 -> 10.99.0.1, outer UDP checksum 0. */
function vxlan(f: Uint8Array): Uint8Array {
  const o = new Uint8Array(50 + f.length);
  o.set([0x02, 0, 0, 0x99, 0, 1], 0); o.set([0x02, 0, 0, 0x99, 0, 2], 6); wr16(o, 12, 0x0800);
  o[14] = 0x45; wr16(o, 16, o.length - 14); wr16(o, 18, 0x1234); o[22] = 64; o[23] = 17;
  o.set([10, 99, 0, 2], 26); o.set([10, 99, 0, 1], 30);
  wr16(o, 24, ~fold(sum16(o, 14, 20)) & 0xffff);
  wr16(o, 34, 51234); wr16(o, 36, 4789); wr16(o, 38, o.length - 34);
  o[42] = 0x08; o[47] = 0x00; o[46] = 0x10;
  o.set(f, 50);
  return o;
}

/** The vnet header a kernel VXLAN device's super-frame carries: inner TCPV4, csum_start the inner TCP header. */
function tunnelVnet(mss: number): Uint8Array {
  const v = new Uint8Array(10);
  const dv = new DataView(v.buffer);
  v[0] = 1; v[1] = GSO_TCPV4;
  dv.setUint16(2, 50 + 14 + 20 + 32, true); dv.setUint16(4, mss, true);
  dv.setUint16(6, 50 + 14 + 20, true); dv.setUint16(8, 16, true);
  return v;
}

/** What the pipeline does to a decapsulated frame for a local veth pod, on the frame at pool
 * offset `at` (an inner Ethernet frame): MACs, TTL - 1 with the header checksum. */
function route(b: Uint8Array, at: number): void {
  b.set(POD_MAC, at); b.set(GW_MAC, at + 6);
  if (rd16(b, at + 12) === 0x86dd) { // IPv6: hop limit - 1, no header checksum
    b[at + 21]--;
    return;
  }
  b[at + 22]--;
  wr16(b, at + 24, 0);
  wr16(b, at + 24, ~fold(sum16(b, at + 14, 20)) & 0xffff);
}

/** Descriptor i stripped of its 50 outer bytes and routed, as the pipeline leaves it (setFrame:
 * a super-frame's `more` follows its segment 0). */
function decap(i: number, d = 50): void {
  if ((pool.flags[i] & DescFlag.SUPER) !== 0) pool.more[i] -= (pool.segs[i] - 1) * d;
  pool.off[i] += d;
  pool.len[i] -= d;
  route(pool.bytes, pool.start(i));
}

/** The cut path: the same tunnel super-frame segmented (gso.c) into descriptors 100.., each routed. */
function cutPath(tun: Uint8Array, mss: number): Uint8Array[] {
  const r = hooks.offloadDeliverForTest(tun, tunnelVnet(mss), 100, 128, false);
  assert.is(r.done, 1);
  const out: Uint8Array[] = [];
  for (let k = 0; k < r.n; k++) {
    decap(100 + k);
    out.push(frameAt(pool, 100 + k));
  }
  return out;
}

const ours = (f: Uint8Array) => f.length >= 34 && rd16(f, 12) === 0x0800 && f[26] === 10 && f[27] === 77;

function noIpv6(n: Netns): void {
  n.exec('sysctl', ['-qw', 'net.ipv6.conf.all.disable_ipv6=1']);
  n.exec('sysctl', ['-qw', 'net.ipv6.conf.default.disable_ipv6=1']);
}

/** A TAP that receives what we write (the underlay), a veth pair (pod side rsp1 observed with a
 * vnet-header port, which cuts what arrives there with the receive segmenter). */
async function withLab(fn: (l: { tapFd: number; underlay: number; pod: (gro: boolean) => number; observer: number }) => Promise<void>): Promise<void> {
  await withNetns(['rsup'], async ([N]) => {
    noIpv6(N);
    const tapFd = hooks.vnetTapForTest('rs0', N.path);
    const ports: number[] = [];
    try {
      N.ip('link', 'add', 'rsp0', 'type', 'veth', 'peer', 'name', 'rsp1');
      linksUp(N, ['rs0', 'rsp0', 'rsp1']);
      const underlay = native.openPacket('rs0', { netns: N.path, ringVersion: 2, rxSuper: true });
      ports.push(underlay);
      const observer = native.openPacket('rsp1', { netns: N.path, ringVersion: 2 });
      ports.push(observer);
      const pod = (gro: boolean) => {
        const p = native.openPacket('rsp0', { netns: N.path, gro });
        ports.push(p);
        return p;
      };
      await fn({ tapFd, underlay, pod, observer });
    } finally {
      for (const p of ports) native.close(p);
      closeSync(tapFd);
    }
  });
}

/** Receive on the underlay until `want` descriptors came (bounded), into descriptors 0... */
async function recvUnderlay(port: number, want: number): Promise<number> {
  let n = 0;
  for (let t = 0; t < 300 && n < want; t++) {
    n += native.recv(port, n, 64 - n);
    if (n < want) await new Promise((r) => setTimeout(r, 5));
  }
  return n;
}

function same(got: Uint8Array[], want: Uint8Array[], what: string): void {
  assert.is(got.length, want.length, `${what}: segments`);
  for (let k = 0; k < want.length; k++) assert.equal(Array.from(got[k]), Array.from(want[k]), `${what}: segment ${k}`);
}

for (const gro of [true, false]) {
  test(`a VXLAN TCP super-frame is one SUPER descriptor, and ${gro ? 'a pod port with gro gets it as one GSO message' : 'a pod port without gro gets it cut on send'}: the pod receives exactly the cut path's segments`, async () => {
    await withLab(async ({ tapFd, underlay, pod, observer }) => {
      const P = pod(gro);
      const mss = 1398;
      const tun = vxlan(inner(30000, ACK | PSH | FIN, 0xfffff000, 3)); // seq wraps inside
      writeSync(tapFd, Buffer.concat([tunnelVnet(mss), tun]));
      assert.is(await recvUnderlay(underlay, 1), 1, 'one descriptor for the whole super-frame');
      const nseg = Math.ceil(30000 / mss);
      assert.is(pool.flags[0] & DescFlag.SUPER, DescFlag.SUPER);
      assert.is(pool.segs[0], nseg);
      const want = cutPath(tun, mss);
      assert.is(want.length, nseg);
      // segment 0 in the pool is the cut path's segment 0 (before routing), and `more` counts the rest
      assert.is(pool.len[0], want[0].length + 50);
      assert.is(pool.len[0] + pool.more[0], want.reduce((s, f) => s + f.length + 50, 0));
      decap(0);
      assert.equal(Array.from(frameAt(pool, 0)), Array.from(want[0]), 'segment 0 as routed');
      assert.is(pool.len[0] + pool.more[0], want.reduce((s, f) => s + f.length, 0), 'more follows the decapsulation');
      pool.txList[0] = 0;
      assert.is(native.send(P, 0, 1), nseg, 'send counts the segments');
      const got = await collect(pool, observer, nseg, ours);
      same(got, want, gro ? 'whole' : 'cut on send');
      const ps = native.stats(P), us = native.stats(underlay), os = native.stats(observer);
      assert.is(us.rxSuperFrames, 1);
      assert.is(us.rxSuperSegments, nseg);
      assert.is(us.rxPackets, nseg);
      assert.is(us.rxGsoFrames, 0, 'not cut on receive');
      assert.is(ps.txPackets, nseg);
      assert.is(ps.txSuperLost, 0);
      if (gro) {
        assert.is(ps.txSuperFrames, 1);
        assert.is(ps.txGroSegments, nseg);
        assert.is(os.rxGsoFrames, 1, 'the pod side received one GSO super-frame');
      } else {
        assert.is(ps.txSuperCut, 1);
        assert.is(os.rxGsoFrames, 0, 'the pod side received plain segments');
      }
    });
  });
}

test('a SUPER descriptor that no longer holds its segment 0, or whose receive buffer moved on, goes as it is: the rest counted lost', async () => {
  await withLab(async ({ tapFd, underlay, pod, observer }) => {
    const P = pod(true);
    const mss = 1000;
    // 1: the frame changed (here: its TCP sequence number), as when JS builds something else in it
    writeSync(tapFd, Buffer.concat([tunnelVnet(mss), vxlan(inner(5000, ACK, 100, 5))]));
    assert.is(await recvUnderlay(underlay, 1), 1);
    assert.is(pool.segs[0], 5);
    decap(0);
    const t = pool.start(0) + 34;
    wr32(pool.bytes, t + 4, 777);
    const changed = frameAt(pool, 0);
    pool.txList[0] = 0;
    assert.is(native.send(P, 0, 1), 1, 'only the frame itself');
    same(await collect(pool, observer, 1, ours), [changed], 'as it is');
    assert.is(native.stats(P).txSuperLost, 4);
    // 2: the underlay port received again before the send: its buffers are no longer the frame's
    writeSync(tapFd, Buffer.concat([tunnelVnet(mss), vxlan(inner(5000, ACK, 100, 6))]));
    assert.is(await recvUnderlay(underlay, 1), 1);
    decap(0);
    const stale = frameAt(pool, 0);
    assert.is(native.recv(underlay, 1, 8), 0);
    assert.is(native.send(P, 0, 1), 1);
    same(await collect(pool, observer, 1, ours), [stale], 'stale: segment 0 alone');
    assert.is(native.stats(P).txSuperLost, 8);
    assert.is(native.stats(P).txSuperFrames, 0);
  });
});

// ---- receive merge (rxMerge): one datagram per segment, as over an underlay without offloads ----

/** The datagrams a kernel VXLAN node sends for `payload` bytes over a link without offloads: the
 * cut path's segments of the same super-frame (full checksums, inner and outer ids + k). */
function datagrams(payload: number, mss: number, seed: number): Uint8Array[] {
  const r = hooks.offloadDeliverForTest(vxlan(inner(payload, ACK | PSH, 0x7ffff000, seed)), tunnelVnet(mss), 100, 128, false);
  assert.is(r.done, 1);
  const out: Uint8Array[] = [];
  for (let k = 0; k < r.n; k++) out.push(frameAt(pool, 100 + k));
  return out;
}

/** inner() over IPv6 (fd77::1 -> fd77::2), as a TCPV6 super-frame's inner frame. */
function inner6(payload: number, flags: number, seq: number, seed: number): Uint8Array {
  const f = new Uint8Array(14 + 40 + 32 + payload);
  f.set([0x02, 0, 0, 0x66, 0, 1], 0); f.set([0x02, 0, 0, 0x66, 0, 2], 6); wr16(f, 12, 0x86dd);
  f[14] = 0x60; wr16(f, 18, 32 + payload); f[20] = 6; f[21] = 63;
  f[22] = 0xfd; f[23] = 0x77; f[37] = 1; f[38] = 0xfd; f[39] = 0x77; f[53] = 2;
  const t = 54;
  wr16(f, t, 40000); wr16(f, t + 2, 5201); wr32(f, t + 4, seq); wr32(f, t + 8, 0x01020304);
  f[t + 12] = 8 << 4; f[t + 13] = flags; wr16(f, t + 14, 502);
  f.set([1, 1, 8, 10, 0, 0, 0, 1, 0, 0, 0, 2], t + 20);
  for (let k = 0; k < payload; k++) f[t + 32 + k] = (k * 7 + seed) & 255;
  wr16(f, t + 16, fold(sum16(f, 22, 32) + 6 + (f.length - t)));
  return f;
}

/** datagrams() with inner TCP/IPv6 (a TCPV6 tunnel super-frame cut). */
function datagrams6(payload: number, mss: number, seed: number): Uint8Array[] {
  const v = tunnelVnet(mss);
  v[1] = 4; // GSO_TCPV6
  new DataView(v.buffer).setUint16(2, 50 + 14 + 40 + 32, true);
  new DataView(v.buffer).setUint16(6, 50 + 14 + 40, true);
  const r = hooks.offloadDeliverForTest(vxlan(inner6(payload, ACK | PSH, 0x7ffff000, seed)), v, 100, 128, false);
  assert.is(r.done, 1);
  const out: Uint8Array[] = [];
  for (let k = 0; k < r.n; k++) out.push(frameAt(pool, 100 + k));
  return out;
}

const ours6 = (f: Uint8Array) => f.length >= 54 && rd16(f, 12) === 0x86dd && f[22] === 0xfd && f[23] === 0x77;

/** `d` as the pipeline forwards it to a veth pod: outer headers gone, MACs, TTL. */
function routed(d: Uint8Array): Uint8Array {
  const f = d.slice(50);
  route(f, 0);
  return f;
}

async function withMergeLab(fn: (l: { tapFd: number; underlay: number; pod: number; observer: number }) => Promise<void>, under: { rxSuper?: boolean; rxMerge?: boolean } = { rxMerge: true }): Promise<void> {
  await withNetns(['rsum'], async ([N]) => {
    noIpv6(N);
    const tapFd = hooks.vnetTapForTest('rm0', N.path);
    const ports: number[] = [];
    try {
      N.ip('link', 'add', 'rmp0', 'type', 'veth', 'peer', 'name', 'rmp1');
      linksUp(N, ['rm0', 'rmp0', 'rmp1']);
      for (const [name, o] of [['rm0', { ringVersion: 2 as const, ...under }], ['rmp1', { ringVersion: 2 as const }], ['rmp0', { gro: true }]] as const) ports.push(native.openPacket(name, { netns: N.path, ...o }));
      await fn({ tapFd, underlay: ports[0], observer: ports[1], pod: ports[2] });
    } finally {
      for (const p of ports) native.close(p);
      closeSync(tapFd);
    }
  });
}

/** Write the datagrams to the TAP (plain: a zero vnet header), then take what the underlay makes of
 * them in one recv; route every descriptor and send them all to the pod port. */
async function mergeAndSend(l: { tapFd: number; underlay: number; pod: number }, ds: Uint8Array[]): Promise<number> {
  for (const d of ds) writeSync(l.tapFd, Buffer.concat([new Uint8Array(10), d]));
  await new Promise((r) => setTimeout(r, 50));
  const n = native.recv(l.underlay, 0, 64);
  for (let i = 0; i < n; i++) {
    decap(i);
    pool.txList[i] = i;
  }
  assert.is(native.send(l.pod, 0, n), ds.length, 'send counts every datagram');
  return n;
}

test('rxMerge: a run of VXLAN TCP datagrams is one SUPER descriptor; the pod receives exactly the datagrams, routed', async () => {
  await withMergeLab(async (l) => {
    const ds = datagrams(14000, 1400, 9);
    assert.is(ds.length, 10);
    const n = await mergeAndSend(l, ds);
    assert.is(n, 1, 'one descriptor');
    assert.is(pool.segs[0], 10);
    assert.is(pool.len[0] + pool.more[0], ds.reduce((s, d) => s + d.length - 50, 0), 'bytes of all, as routed');
    same(await collect(pool, l.observer, 10, ours), ds.map(routed), 'merged');
    const us = native.stats(l.underlay), ps = native.stats(l.pod);
    assert.is(us.rxMergeFrames, 1);
    assert.is(us.rxMergeSegments, 10);
    assert.is(us.rxPackets, 10);
    assert.is(ps.txSuperFrames, 1);
    assert.is(ps.txPackets, 10);
    assert.is(native.stats(l.observer).rxGsoFrames, 1, 'one GSO super-frame reached the pod side');
  });
});

test('rxMerge: a datagram whose TCP checksum is wrong is never merged (it goes alone, as it came); a gap in the sequence or another flow ends a run', async () => {
  await withMergeLab(async (l) => {
    const ds = datagrams(14000, 1400, 11);
    ds[5] = ds[5].slice();
    ds[5][ds[5].length - 1] ^= 0x5a; // payload changed, checksum not: corrupted on the way
    const n = await mergeAndSend(l, ds);
    assert.is(n, 3, 'runs 0-4, 5 alone, 6-9');
    assert.equal([pool.flags[0] & DescFlag.SUPER, pool.flags[1] & DescFlag.SUPER, pool.flags[2] & DescFlag.SUPER], [DescFlag.SUPER, 0, DescFlag.SUPER]);
    assert.equal([pool.segs[0], pool.segs[2]], [5, 4]);
    same(await collect(pool, l.observer, 10, ours), ds.map(routed), 'split runs');
    // out of order: 0 1 3 2 -> runs [0 1], [3], [2] (nothing reordered, nothing merged across the gap)
    const es = datagrams(5600, 1400, 12);
    const order = [es[0], es[1], es[3], es[2]];
    assert.is(await mergeAndSend(l, order), 3);
    same(await collect(pool, l.observer, 4, ours), order.map(routed), 'out of order');
  });
});

/** `d` (a VXLAN datagram: outer IPv4 at 14, inner at 64) with the outer and inner ECN fields set,
 * both header checksums recomputed (the TCP checksum does not cover them). */
function withEcn(d: Uint8Array, outer: number, inner: number): Uint8Array {
  const f = d.slice();
  for (const [ip, e] of [[14, outer], [64, inner]]) {
    f[ip + 1] = (f[ip + 1] & 0xfc) | e;
    wr16(f, ip + 10, 0);
    wr16(f, ip + 10, ~fold(sum16(f, ip, 20)) & 0xffff);
  }
  return f;
}

test('rxMerge and ECN: a datagram whose outer or inner ECN field differs (CE) is never merged into the run; the pipeline\'s RFC 6040 decapsulation of a merged run\'s segment 0 marks every segment', async () => {
  const ECT0 = 2, CE = 3;
  await withMergeLab(async (l) => {
    // every datagram ECT(0) inside and out (an ECN-capable flow), datagram 5 CE-marked by a router on the underlay
    for (const [what, at] of [['outer', 14], ['inner', 64]] as const) {
      const ds = datagrams(14000, 1400, 21).map((d) => withEcn(d, ECT0, ECT0));
      ds[5] = at === 14 ? withEcn(ds[5], CE, ECT0) : withEcn(ds[5], ECT0, CE);
      const n = await mergeAndSendDecap(l, ds);
      assert.is(n, 3, `${what} CE: runs 0-4, 5 alone, 6-9`);
      assert.equal([pool.segs[0], pool.flags[1] & DescFlag.SUPER, pool.segs[2]], [5, 0, 4], `${what} CE: the run split around it`);
      // what reaches the pod: datagram 5's inner packet CE (carried in from the outer header, or its own), the rest ECT(0)
      same(await collect(pool, l.observer, 10, ours), ds.map((d, k) => routed(withEcn(d, ECT0, k === 5 ? CE : ECT0))), `${what} CE`);
    }
    // a whole run under an outer CE: one descriptor; segment 0's inner header marked by the
    // decapsulation, and the addon's headers for the other segments come from it
    const all = datagrams(14000, 1400, 22).map((d) => withEcn(d, CE, ECT0));
    assert.is(await mergeAndSendDecap(l, all), 1, 'one descriptor');
    same(await collect(pool, l.observer, 10, ours), all.map((d) => routed(withEcn(d, ECT0, CE))), 'every segment CE');
  });
});

/** mergeAndSend, each descriptor decapsulated with RFC 6040 first, as the pipeline does it
 * (src/packet/ecn.ts: the outer ECN field into the inner IPv4 header, checksum updated). */
async function mergeAndSendDecap(l: { tapFd: number; underlay: number; pod: number }, ds: Uint8Array[]): Promise<number> {
  for (const d of ds) writeSync(l.tapFd, Buffer.concat([new Uint8Array(10), d]));
  await new Promise((r) => setTimeout(r, 50));
  const n = native.recv(l.underlay, 0, 64);
  for (let i = 0; i < n; i++) {
    const o = pool.start(i);
    assert.is(ecnDecapsulateIpv4(pool.bytes, o + 64, pool.bytes[o + 15] & 3), 0, 'not a drop');
    decap(i);
    pool.txList[i] = i;
  }
  assert.is(native.send(l.pod, 0, n), ds.length, 'send counts every datagram');
  return n;
}

test('rxMerge: one recv call takes at most its batch size of ring frames, merged ones included; the rest stay in the ring for the next call', async () => {
  await withMergeLab(async (l) => {
    const ds = datagrams(14000, 1400, 13);
    for (const d of ds) writeSync(l.tapFd, Buffer.concat([new Uint8Array(10), d]));
    await new Promise((r) => setTimeout(r, 50));
    const runs: number[] = [];
    for (let call = 0; call < 6; call++) {
      const n = native.recv(l.underlay, 0, 4);
      if (n === 0) break;
      for (let i = 0; i < n; i++) runs.push(pool.flags[i] & DescFlag.SUPER ? pool.segs[i] : 1);
    }
    assert.equal(runs, [4, 4, 2], 'runs cut at 4 ring frames per call, nothing lost');
    assert.is(native.stats(l.underlay).rxPackets, 10);
    assert.is(native.stats(l.underlay).rxKernelDrops, 0);
  });
});

// ---- a podway peer's UDP GSO message of VXLAN datagrams (uso.c), over an underlay with offloads ----

const GSO_UDP_L4 = 5;

/** The datagrams `ds` (one outer flow) as one UDP GSO message, as a podway peer sends them (uso.c)
 * and a veth underlay with offloads on hands them over: datagram 0's outer headers with the whole
 * length, the UDP payloads (VXLAN) one after the other, a vnet header with gso_size the datagrams'
 * size. outer6: over IPv6 (fd99::2 -> fd99::1) instead of the datagrams' IPv4. */
function usoMessage(ds: Uint8Array[], outer6 = false): { frame: Uint8Array; vnet: Uint8Array } {
  const size = ds[0].length - 42, hl = outer6 ? 62 : 42, l4 = hl - 8;
  const f = new Uint8Array(hl + ds.reduce((s, d) => s + d.length - 42, 0));
  if (outer6) {
    f.set(ds[0].subarray(0, 12), 0); wr16(f, 12, 0x86dd);
    f[14] = 0x60; wr16(f, 18, f.length - 54); f[20] = 17; f[21] = 64;
    f[22] = 0xfd; f[23] = 0x99; f[37] = 2; f[38] = 0xfd; f[39] = 0x99; f[53] = 1;
    f.set(ds[0].subarray(34, 38), l4); // UDP ports
  } else {
    f.set(ds[0].subarray(0, 42), 0);
    wr16(f, 16, f.length - 14); wr16(f, 24, 0); wr16(f, 24, ~fold(sum16(f, 14, 20)) & 0xffff);
  }
  let at = hl;
  for (const d of ds) { f.set(d.subarray(42), at); at += d.length - 42; }
  wr16(f, l4 + 4, f.length - l4);
  // the partial checksum the kernel leaves: the pseudo-header sum
  wr16(f, l4 + 6, fold((outer6 ? sum16(f, 22, 32) : sum16(f, 26, 8)) + 17 + (f.length - l4)));
  const v = new Uint8Array(10);
  const dv = new DataView(v.buffer);
  v[0] = 1; v[1] = GSO_UDP_L4;
  dv.setUint16(2, hl, true); dv.setUint16(4, size, true); dv.setUint16(6, l4, true); dv.setUint16(8, 6, true);
  return { frame: f, vnet: v };
}

/** Datagram `d` (IPv4 VXLAN, inner TCP/IPv4 at 64) with TCP flags `fl`, its TCP checksum redone. */
function withFlags(d: Uint8Array, fl: number): Uint8Array {
  const f = d.slice(), t = 84, len = f.length - t;
  f[t + 13] = fl;
  wr16(f, t + 16, 0);
  wr16(f, t + 16, ~fold(sum16(f, t, len, sum16(f, 76, 8) + 6 + len)) & 0xffff);
  return f;
}

/** Outer bytes in front of the inner Ethernet frame: outer headers (hdr_len) and VXLAN. */
const outerLen = (m: { vnet: Uint8Array }) => (m.vnet[2] | (m.vnet[3] << 8)) + 8;

/** The cut path: the message segmented by gso.c into descriptors 100.., each decapsulated and routed. */
function usoCut(m: { frame: Uint8Array; vnet: Uint8Array }): Uint8Array[] {
  const r = hooks.offloadDeliverForTest(m.frame, m.vnet, 100, 128, false);
  assert.is(r.done, 1);
  const out: Uint8Array[] = [];
  for (let k = 0; k < r.n; k++) {
    decap(100 + k, outerLen(m));
    out.push(frameAt(pool, 100 + k));
  }
  return out;
}

/** Write the message to the TAP, receive `descs` descriptors (no recv after: a SUPER descriptor's
 * buffer lasts until the port's next recv), route them and send them all to the pod port. */
async function usoAndSend(l: { tapFd: number; underlay: number; pod: number }, m: { frame: Uint8Array; vnet: Uint8Array }, segs: number, descs: number): Promise<number> {
  writeSync(l.tapFd, Buffer.concat([m.vnet, m.frame]));
  const k = await recvUnderlay(l.underlay, descs);
  for (let i = 0; i < k; i++) {
    decap(i, outerLen(m));
    pool.txList[i] = i;
  }
  assert.is(native.send(l.pod, 0, k), segs, 'send counts every datagram');
  return k;
}

for (const [outer6, in6] of [[false, false], [true, false], [false, true], [true, true]]) {
  test(`rxSuper + rxMerge: a peer's UDP GSO message (outer ${outer6 ? 'IPv6' : 'IPv4'}, inner TCP/${in6 ? 'IPv6' : 'IPv4'}) of one flow's VXLAN TCP datagrams is one SUPER descriptor; the pod receives exactly the cut path's segments`, async () => {
    await withMergeLab(async (l) => {
      const ds = in6 ? datagrams6(14000, 1400, 21) : datagrams(14000, 1400, 21);
      assert.is(ds.length, 10);
      const m = usoMessage(ds, outer6);
      const want = usoCut(m);
      same(want, ds.map(routed), 'the cut path gives back the datagrams');
      assert.is(await usoAndSend(l, m, 10, 1), 1, 'one descriptor');
      assert.is(pool.segs[0], 10);
      same(await collect(pool, l.observer, 10, in6 ? ours6 : ours), want, 'merged');
      const us = native.stats(l.underlay), ps = native.stats(l.pod);
      assert.is(us.rxMergeFrames, 1);
      assert.is(us.rxMergeSegments, 10);
      assert.is(us.rxPackets, 10);
      assert.is(us.rxGsoFrames, 0, 'not cut on receive');
      assert.is(ps.txSuperFrames, 1);
      assert.is(ps.txPackets, 10);
      assert.is(native.stats(l.observer).rxGsoFrames, 1, 'one GSO super-frame reached the pod side');
    }, { rxSuper: true, rxMerge: true });
  });
}

test('rxSuper + rxMerge: a UDP GSO message with a wrong inner TCP checksum or a gap is cut on receive as before', async () => {
  await withMergeLab(async (l) => {
    const bad = datagrams(8400, 1400, 22);
    bad[3] = bad[3].slice();
    bad[3][bad[3].length - 1] ^= 0x5a;
    const gap = datagrams(8400, 1400, 23);
    gap.splice(2, 1);
    let segs = 0;
    for (const [what, ds] of [['bad checksum', bad], ['gap', gap]] as const) {
      const m = usoMessage(ds);
      const want = usoCut(m);
      const n = await usoAndSend(l, m, ds.length, ds.length);
      assert.is(n, ds.length, `${what}: one descriptor per datagram`);
      for (let i = 0; i < n; i++) assert.is(pool.flags[i] & DescFlag.SUPER, 0);
      same(await collect(pool, l.observer, n, ours), want, what);
      segs += n;
    }
    const us = native.stats(l.underlay);
    assert.is(us.rxMergeFrames, 0);
    assert.is(us.rxGsoFrames, 2);
    assert.is(us.rxPackets, segs);
  }, { rxSuper: true, rxMerge: true });
});

test('rxSuper + rxMerge: PSH ends a group inside a UDP GSO message (as GRO flushes): one descriptor per group, a group of one as the cut path writes it; the pod receives exactly the cut path\'s segments', async () => {
  await withMergeLab(async (l) => {
    const ds = datagrams(8400, 1400, 24); // PSH on the last (5)
    ds[0] = withFlags(ds[0], ACK | PSH);
    ds[3] = withFlags(ds[3], ACK | PSH);
    const m = usoMessage(ds);
    const want = usoCut(m);
    assert.is(await usoAndSend(l, m, 6, 3), 3, 'groups [0], [1-3], [4-5]');
    assert.equal([0, 1, 2].map((i) => pool.flags[i] & DescFlag.SUPER), [0, DescFlag.SUPER, DescFlag.SUPER]);
    assert.equal([pool.segs[1], pool.segs[2]], [3, 2]);
    same(await collect(pool, l.observer, 6, ours), want, 'groups');
    const us = native.stats(l.underlay), ps = native.stats(l.pod);
    assert.is(us.rxMergeFrames, 2);
    assert.is(us.rxMergeSegments, 5);
    assert.is(us.rxPackets, 6);
    assert.is(us.rxGsoFrames, 0);
    assert.is(ps.txSuperFrames, 2);
    assert.is(ps.txPackets, 6);
    // PSH on every datagram: no group of two, so the cut path
    const all = datagrams(4200, 1400, 25).map((d) => withFlags(d, ACK | PSH));
    const m2 = usoMessage(all);
    const want2 = usoCut(m2);
    assert.is(await usoAndSend(l, m2, 3, 3), 3);
    same(await collect(pool, l.observer, 3, ours), want2, 'PSH everywhere');
    assert.is(native.stats(l.underlay).rxGsoFrames, 1);
  }, { rxSuper: true, rxMerge: true });
});

/** Datagram `d` (as withFlags) with its TCP timestamps (TSval, TSecr) or ACK number and window set. */
function withTcp(d: Uint8Array, f: { tsval?: number; tsecr?: number; ack?: number; win?: number }): Uint8Array {
  const g = d.slice(), t = 84;
  if (f.tsval !== undefined) wr32(g, t + 24, f.tsval);
  if (f.tsecr !== undefined) wr32(g, t + 28, f.tsecr);
  if (f.ack !== undefined) wr32(g, t + 8, f.ack);
  if (f.win !== undefined) wr16(g, t + 14, f.win);
  return withFlags(g, g[t + 13]);
}

test('rxSuper + rxMerge: a new TSval/TSecr, ACK number or window inside a UDP GSO message starts a group (as GRO flushes), after a PSH or not; each group carries its own headers and the pod receives exactly the cut path\'s segments', async () => {
  await withMergeLab(async (l) => {
    // what a peer's message looks like when it spans two of the sender's TSO super-frames: the
    // first ends in PSH, the second has a later TSval (and here a new TSecr)
    const ds = datagrams(11200, 1400, 27); // 8 datagrams, PSH on the last
    ds[2] = withFlags(ds[2], ACK | PSH);
    for (let k = 3; k < 8; k++) ds[k] = withTcp(ds[k], { tsval: 2, tsecr: 3 });
    // and inside the second, without PSH: a new ACK number from datagram 5, a new window from 7
    for (let k = 5; k < 8; k++) ds[k] = withTcp(ds[k], { ack: 0x01020305 });
    ds[7] = withTcp(ds[7], { win: 503 });
    const m = usoMessage(ds);
    const want = usoCut(m);
    assert.is(await usoAndSend(l, m, 8, 4), 4, 'groups [0-2], [3-4], [5-6], [7]');
    assert.equal([0, 1, 2, 3].map((i) => pool.flags[i] & DescFlag.SUPER), [DescFlag.SUPER, DescFlag.SUPER, DescFlag.SUPER, 0]);
    assert.equal([pool.segs[0], pool.segs[1], pool.segs[2]], [3, 2, 2]);
    same(await collect(pool, l.observer, 8, ours), want, 'groups');
    const us = native.stats(l.underlay), ps = native.stats(l.pod);
    assert.is(us.rxMergeFrames, 3);
    assert.is(us.rxMergeSegments, 7);
    assert.is(us.rxPackets, 8);
    assert.is(us.rxGsoFrames, 0, 'not cut');
    assert.is(ps.txSuperFrames, 3);
    assert.is(ps.txPackets, 8);
    // a new TSval on every datagram: no group of two, so the cut path
    const each = datagrams(4200, 1400, 28).map((d, k) => withTcp(d, { tsval: 10 + k }));
    const m2 = usoMessage(each);
    const want2 = usoCut(m2);
    assert.is(await usoAndSend(l, m2, 3, 3), 3);
    for (let i = 0; i < 3; i++) assert.is(pool.flags[i] & DescFlag.SUPER, 0);
    same(await collect(pool, l.observer, 3, ours), want2, 'a new TSval everywhere');
    assert.is(native.stats(l.underlay).rxGsoFrames, 1);
  }, { rxSuper: true, rxMerge: true });
});

for (const under of [{ rxSuper: true }, { rxMerge: true }]) {
  test(`only ${Object.keys(under)[0]}: a peer's UDP GSO message is cut on receive, as before`, async () => {
    await withMergeLab(async (l) => {
      const ds = datagrams(7000, 1400, 26);
      const m = usoMessage(ds);
      const want = usoCut(m);
      assert.is(await usoAndSend(l, m, 5, 5), 5);
      same(await collect(pool, l.observer, 5, ours), want, 'cut');
      assert.is(native.stats(l.underlay).rxGsoFrames, 1);
      assert.is(native.stats(l.underlay).rxMergeFrames, 0);
    }, under);
  });
}

test('without rxSuper (the default; here with rxMerge on, which has the same buffers) the same super-frame is cut on receive, as before', async () => {
  await withNetns(['rsuq'], async ([N]) => {
    noIpv6(N);
    const fd = hooks.vnetTapForTest('rq0', N.path);
    let port = -1;
    try {
      N.ip('link', 'set', 'rq0', 'up');
      port = native.openPacket('rq0', { netns: N.path, ringVersion: 2, rxMerge: true });
      writeSync(fd, Buffer.concat([tunnelVnet(1398), vxlan(inner(9000, ACK, 1, 7))]));
      assert.is(await recvUnderlay(port, 7), 7);
      for (let i = 0; i < 7; i++) assert.is(pool.flags[i] & DescFlag.SUPER, 0);
      assert.is(native.stats(port).rxGsoFrames, 1);
      assert.is(native.stats(port).rxSuperFrames, 0);
    } finally {
      if (port >= 0) native.close(port);
      closeSync(fd);
    }
  });
});

test.run();
