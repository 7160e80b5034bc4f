/**
 * A pod's TCP super-frame handed on whole (one DescFlag.SUPER descriptor, its payload in the
 * receiving port's buffer until the port's next recv) outside the send path:
 * - held by the neighbour queue (src/dataplane/neighbor-queue.ts holdSuper, native superCut): the
 *   whole super-frame waits, as its segments cut exactly as the send side would cut them, survives
 *   the port's next receive (its buffer reused), and when released leaves on a real veth as the
 *   cut path's segments byte for byte; the per-neighbour byte budget refuses what does not fit
 *   (nothing held, the caller counts every segment dropped).
 * - recorded by `podway capture` (src/dataplane/capture.ts, native superRest): one record for the
 *   whole super-frame, as tcpdump shows a GSO super-packet (the lengths of the whole, FIN/PSH, the
 *   whole payload, valid checksums), plain and in VXLAN, within the snaplen; the pcapng is read
 *   back with tshark and capinfos.
 * The super-frame is written to a TAP with IFF_VNET_HDR (the kernel hands it to the device as the
 * pod's veth would) and received on an rxSuperTcp port. Root and network namespaces, made and
 * removed per test.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { writeSync, closeSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { native, nativeAddon, FramePool, DescFlag } from '../../src/dataplane/native';
import { NeighborQueue, FAMILY_V4 } from '../../src/dataplane/neighbor-queue';
import { CaptureTap, Link, Stage, growToSuper, readRecords, type CapturePorts } from '../../src/dataplane/capture';
import { PcapngWriter } from '../../src/dataplane/pcapng';
import { withNetns, Netns, linksUp } from '../helpers/netns';
import { fold, rd16, sum16, wr16, wr32 } from './wire-ref';
import { collect, frameAt } from './pool-frames';

interface TestHooks {
  offloadDeliverForTest(frame: Uint8Array, vnet: Uint8Array | null, first: number, max: number, resume: boolean): { n: number; done: number };
  vnetTapForTest(name: string, netns: string): number;
}
const hooks = nativeAddon() as unknown as TestHooks;
const pool = new FramePool(1024);
const QFIRST = 600; // the queue's places: 600 .. 899 (receive 0.., cut path 100.., collect 300..)

const ACK = 0x10, PSH = 0x08;
const MSS = 1448;
const NEXT_HOP_MAC = [0x02, 0, 0, 0x77, 0, 9];
const OUR_MAC = new Uint8Array([0x02, 0, 0, 0x77, 0, 1]);

/** A pod's TCP/IPv4 super-frame 10.77.0.1:40000 -> 10.77.0.2:5201 (timestamps), its checksum
 * partial (the pseudo-header sum), as the pod's kernel hands it to its veth; `full` instead
 * gives it the full checksum (the super-packet as one packet). */
function superFrame(payload: number, flags: number, seq: number, seed: number, full = false): Uint8Array {
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
  const pseudo = sum16(f, 26, 8) + 6 + (f.length - t);
  wr16(f, t + 16, full ? ~fold(sum16(f, t, f.length - t, pseudo)) & 0xffff : fold(pseudo));
  return f;
}

/** The same over IPv6 (fd77::1 -> fd77::2), a TCPV6 super-frame. */
function superFrame6(payload: number, flags: number, seq: number, seed: number, full = false): Uint8Array {
  const f = new Uint8Array(14 + 40 + 32 + payload);
  f.set([0x02, 0, 0, 0x66, 0, 2], 0); f.set([0x02, 0, 0, 0x66, 0, 1], 6); wr16(f, 12, 0x86dd);
  f[14] = 0x60; wr16(f, 18, 32 + payload); f[20] = 6; f[21] = 64;
  f[22] = 0xfd; f[23] = 0x77; f[37] = 1; f[38] = 0xfd; f[39] = 0x77; f[53] = 2;
  const t = 54;
  wr16(f, t, 40000); wr16(f, t + 2, 5201); wr32(f, t + 4, seq); wr32(f, t + 8, 0x01020304);
  f[t + 12] = 8 << 4; f[t + 13] = flags; wr16(f, t + 14, 502);
  f.set([1, 1, 8, 10, 0, 0, 0, 1, 0, 0, 0, 2], t + 20);
  for (let k = 0; k < payload; k++) f[t + 32 + k] = (k * 13 + seed) & 255;
  const pseudo = sum16(f, 22, 32) + 6 + (f.length - t);
  wr16(f, t + 16, full ? ~fold(sum16(f, t, f.length - t, pseudo)) & 0xffff : fold(pseudo));
  return f;
}

function tcpVnet(mss: number, v6 = false): Uint8Array {
  const v = new Uint8Array(10);
  const dv = new DataView(v.buffer);
  v[0] = 1; v[1] = v6 ? 4 : 1;
  dv.setUint16(2, v6 ? 86 : 66, true); dv.setUint16(4, mss, true); dv.setUint16(6, v6 ? 54 : 34, true); dv.setUint16(8, 16, true);
  return v;
}

/** IPv4 or IPv6 (a full 1514-byte segment either way). */
const mssOf = (v6: boolean) => (v6 ? MSS - 20 : MSS);
const frameOf = (v6: boolean) => (v6 ? superFrame6 : superFrame);

/** The cut path: the same super-frame segmented on receive (gso.c), each with `mac` rewrites. */
function cutPath(f: Uint8Array, mss: number, v6 = false): Uint8Array[] {
  const r = hooks.offloadDeliverForTest(f, tcpVnet(mss, v6), 100, 128, false);
  assert.is(r.done, 1);
  const out: Uint8Array[] = [];
  for (let k = 0; k < r.n; k++) {
    const s = frameAt(pool, 100 + k);
    s.set(NEXT_HOP_MAC, 0);
    s.set(OUR_MAC, 6);
    out.push(s);
  }
  return out;
}

/** What the pipeline does before holding descriptor i for an unresolved neighbour: its source
 * MAC, the destination left for the neighbour's answer. */
function readyButMac(i: number): void {
  const f = pool.start(i);
  pool.bytes.fill(0, f, f + 6);
  pool.bytes.set(OUR_MAC, f + 6);
}

const ours = (f: Uint8Array) => f.length > 74 && ((rd16(f, 12) === 0x0800 && f[23] === 6 && rd16(f, 36) === 5201) || (rd16(f, 12) === 0x86dd && f[20] === 6 && rd16(f, 56) === 5201));

interface Lab { tapFd: number; pod: number; scatter: number; out: (txGso: boolean) => number; observer: number; ns: Netns }

async function withLab(fn: (l: Lab) => Promise<void>): Promise<void> {
  await withNetns(['shold'], async ([N]) => {
    // no IPv6 of the kernel's own on the devices (router solicitations, MLD): the test's frames only
    N.exec('sysctl', ['-qw', 'net.ipv6.conf.all.disable_ipv6=1']);
    N.exec('sysctl', ['-qw', 'net.ipv6.conf.default.disable_ipv6=1']);
    const tapFd = hooks.vnetTapForTest('sh0', N.path);
    const ports: number[] = [];
    try {
      N.ip('link', 'add', 'so0', 'type', 'veth', 'peer', 'name', 'so1');
      linksUp(N, ['sh0', 'so0', 'so1']);
      N.exec('ethtool', ['-K', 'so0', 'tx', 'off']);
      const pod = native.openPacket('sh0', { netns: N.path, ringVersion: 2, rxSuperTcp: true });
      ports.push(pod);
      const scatter = native.openPacket('sh0', { netns: N.path, ringVersion: 2 });
      ports.push(scatter);
      const observer = native.openPacket('so1', { netns: N.path, ringVersion: 2 });
      ports.push(observer);
      const out = (txGso: boolean) => {
        const p = native.openPacket('so0', { netns: N.path, txGso });
        ports.push(p);
        return p;
      };
      await fn({ tapFd, pod, scatter, out, observer, ns: N });
    } finally {
      for (const p of ports) native.close(p);
      closeSync(tapFd);
    }
  });
}

async function recvAll(port: number, at: number, want: number, max = 64): Promise<number> {
  let n = 0;
  for (let t = 0; t < 300 && n < want; t++) {
    n += native.recv(port, at + n, max - n);
    if (n < want) await new Promise((r) => setTimeout(r, 5));
  }
  return n;
}

function drain(port: number): void {
  while (native.recv(port, 200, 100) > 0) { /* empty */ }
}

/** Write super-frame f to the pod's TAP and receive it at descriptor `at`: one SUPER descriptor. */
async function receiveSuper(l: Lab, f: Uint8Array, at = 0, v6 = false, mss = mssOf(v6)): Promise<void> {
  writeSync(l.tapFd, Buffer.concat([tcpVnet(mss, v6), f]));
  assert.is(await recvAll(l.pod, at, 1), 1, 'one descriptor for the whole super-frame');
  drain(l.scatter);
  assert.is(pool.flags[at] & DescFlag.SUPER, DescFlag.SUPER, 'a SUPER descriptor');
}

function queue(bytes?: number, capacity = 300): NeighborQueue {
  const q = new NeighborQueue(pool, QFIRST, capacity, 3, 5, bytes);
  q.superCut = native.superCut;
  return q;
}

for (const [txGso, v6] of [[true, false], [false, false], [true, true]]) {
  test(`neighbour queue: a TCP/${v6 ? 'IPv6' : 'IPv4'} super-frame held for an unresolved neighbour is held whole, outlives the port's next receive, and leaves ${txGso ? 'on a txGso port (merged into a GSO message again)' : 'one frame per segment'} as the cut path's segments byte for byte`, async () => {
    await withLab(async (l) => {
      const U = l.out(txGso);
      const mss = mssOf(v6);
      const payload = 45 * mss - 300;
      const f = frameOf(v6)(payload, ACK | PSH, 0xfffff000, 3); // seq wraps inside
      const want = cutPath(f, mss, v6);
      assert.is(want.length, 45);
      await receiveSuper(l, f, 0, v6);
      readyButMac(0);
      const q = queue();
      const bytes = pool.len[0] + pool.more[0];
      assert.is(bytes, want.reduce((s, d) => s + d.length, 0), 'the bytes it stands for');
      assert.is(q.holdSuper(0, FAMILY_V4, 0x0a4d0002, l.pod, pool.segs[0], bytes), 45, 'held whole: 45 segments');
      assert.is(q.size, 45);
      assert.is(q.count(FAMILY_V4, 0x0a4d0002), 45);
      assert.is(q.bytes(FAMILY_V4, 0x0a4d0002), bytes);
      // the port receives again: its buffers are reused (another super-frame over the first one's)
      await receiveSuper(l, frameOf(v6)(payload, ACK, 77, 9), 0, v6);
      const n = q.release(FAMILY_V4, 0x0a4d0002, Uint8Array.from(NEXT_HOP_MAC), 0, QFIRST, OUR_MAC);
      assert.is(n, 45, 'all 45 released');
      assert.is(q.size, 0);
      assert.is(native.send(U, QFIRST, n), 45);
      const got = await collect(pool, l.observer, 45, ours);
      assert.is(got.length, 45, 'segments on the wire');
      for (let k = 0; k < 45; k++) assert.equal(Array.from(got[k]), Array.from(want[k]), `segment ${k}`);
      if (txGso) assert.is(native.stats(U).txGsoSegments, 45, 'sent as a GSO message, as without the wait');
    });
  });
}

test('neighbour queue: the byte budget per neighbour (two whole 64 KiB super-frames by default; one that does not fit is not held at all, one that never could has segment 0 held while the neighbour holds nothing; plain frames still are) and the packets per neighbour (a super-frame is one)', async () => {
  await withLab(async (l) => {
    const f = superFrame(45 * MSS, ACK, 1000, 5);
    await receiveSuper(l, f);
    readyButMac(0);
    const bytes = pool.len[0] + pool.more[0];
    assert.ok(bytes > 64 << 10, `a 64 KiB super-frame is ${bytes} bytes with its segments' headers`);
    // never fits whole, nothing held for the neighbour yet: -1, the caller holds segment 0 alone
    const small = queue(32 << 10);
    assert.is(small.holdSuper(0, FAMILY_V4, 7, l.pod, pool.segs[0], bytes), -1, 'over 32 KiB: never fits, segment 0 for the caller');
    assert.is(small.size, 0, 'nothing held by holdSuper');
    const few = queue(undefined, 40);
    assert.is(few.holdSuper(0, FAMILY_V4, 7, l.pod, pool.segs[0], bytes), -1, '45 segments, 40 places: the same');
    assert.is(few.size, 0);
    // does not fit beside what the neighbour holds: refused whole (0)
    const mid = queue(100_000);
    assert.is(mid.holdSuper(0, FAMILY_V4, 7, l.pod, pool.segs[0], bytes), 45);
    assert.is(mid.holdSuper(0, FAMILY_V4, 7, l.pod, pool.segs[0], bytes), 0, 'a second over the neighbour\'s bytes: refused');
    assert.is(mid.size, 45);
    // the default budget: two whole ones and a plain frame are the three packets, a fourth not
    const q = queue();
    assert.is(q.perNeighborBytes, 212_992);
    assert.is(q.holdSuper(0, FAMILY_V4, 7, l.pod, pool.segs[0], bytes), 45);
    assert.is(q.holdSuper(0, FAMILY_V4, 7, l.pod, pool.segs[0], bytes), 45, 'a second whole 64 KiB super-frame');
    pool.flags[2] = 0; pool.len[2] = 100; pool.off[2] = pool.off[0];
    assert.ok(q.hold(2, FAMILY_V4, 7, l.pod), 'a plain frame: the third packet');
    assert.not.ok(q.hold(2, FAMILY_V4, 7, l.pod), 'a fourth: refused');
    assert.is(q.holdSuper(0, FAMILY_V4, 7, l.pod, pool.segs[0], bytes), 0, 'a fourth super-frame: refused');
    assert.ok(q.hold(2, FAMILY_V4, 8, l.pod), 'another neighbour has its own budget');
    assert.is(q.size, 92);
    // a descriptor that is no longer a live super-frame cannot be cut: -1 (the caller holds it as one)
    const g = superFrame(10 * MSS, ACK, 1000 + 45 * MSS, 6);
    await receiveSuper(l, g, 1);
    readyButMac(1);
    pool.flags[1] &= ~DescFlag.SUPER;
    assert.is(q.holdSuper(1, FAMILY_V4, 9, l.pod, 10, 1000), -1);
  });
});

/** Run a capture of descriptor 0 at `stage` (rx, or tx on port 1) and write its records as pcapng
 * to `file`; returns the records. */
function captureOne(stage: number, snaplen: number | undefined, file: string, verdict = 1) {
  const ports: CapturePorts = { portName: ['pod', 'out'], linkOf: () => Link.ETHERNET, nodeIp: 0, superRest: native.superRest };
  const tap = new CaptureTap({ filter: {}, stage, count: 10, snaplen }, 4);
  tap.before(pool, 1, 0, ports);
  tap.after(pool, 1, 0, Int32Array.of(verdict), new Uint16Array(1), -1, ports);
  const chunk = tap.take();
  assert.ok(chunk, 'a record');
  const recs = [...readRecords(chunk!)];
  const parts: Uint8Array[] = [];
  const w = new PcapngWriter((b) => parts.push(b.slice()), snaplen);
  for (const r of recs) w.packet(r.iface, r.tsMicros, r.data, r.origLen, r.comment);
  writeFileSync(file, Buffer.concat(parts));
  return recs.map((r) => ({ data: r.data.slice(), origLen: r.origLen }));
}

function tshark(file: string, fields: string[]): string[] {
  return execFileSync('tshark', ['-r', file, '-o', 'tcp.check_checksum:TRUE', '-o', 'ip.check_checksum:TRUE', '-T', 'fields', ...fields.flatMap((f) => ['-e', f])], { encoding: 'utf8' }).trim().split('\n');
}

test('capture: a TCP/IPv6 super-frame is one record, the whole super-packet (payload length, PSH, payload, checksum); tshark reads it', async () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'podway-superhold-'));
  try {
    await withLab(async (l) => {
      const mss = mssOf(true) - 1; // odd: the payload behind segment 0's starts on an odd offset
      const payload = 45 * mss - 300;
      const f = superFrame6(payload, ACK | PSH, 0x7ffff000, 4);
      const whole = superFrame6(payload, ACK | PSH, 0x7ffff000, 4, true);
      await receiveSuper(l, f, 0, true, mss);
      const file = path.join(dir, 'rx6.pcapng');
      const recs = captureOne(Stage.RX, undefined, file);
      assert.is(recs.length, 1, 'one record');
      assert.is(recs[0].origLen, whole.length);
      assert.equal(Array.from(recs[0].data), Array.from(whole), 'the super-packet byte for byte');
      const [line] = tshark(file, ['frame.len', 'ipv6.plen', 'tcp.len', 'tcp.checksum.status', 'tcp.flags.push']);
      assert.is(line, `${whole.length}\t${whole.length - 54}\t${payload}\t1\t1`);
    });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('capture: a super-frame is one record, the whole super-packet (lengths, PSH, payload, checksums) as tcpdump shows one; tshark and capinfos read the file', async () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'podway-superhold-'));
  try {
    await withLab(async (l) => {
      const payload = 45 * MSS - 300;
      const f = superFrame(payload, ACK | PSH, 0xfffff000, 3);
      const whole = superFrame(payload, ACK | PSH, 0xfffff000, 3, true);
      await receiveSuper(l, f);
      const file = path.join(dir, 'rx.pcapng');
      const recs = captureOne(Stage.RX, undefined, file);
      assert.is(recs.length, 1, 'one record');
      assert.is(recs[0].origLen, whole.length);
      assert.equal(Array.from(recs[0].data), Array.from(whole), 'the super-packet byte for byte (full checksum, PSH)');
      const caps = execFileSync('capinfos', ['-c', '-M', file], { encoding: 'utf8' });
      assert.match(caps, /Number of packets:\s+1\b/);
      const [line] = tshark(file, ['frame.len', 'frame.cap_len', 'ip.len', 'tcp.len', 'tcp.checksum.status', 'ip.checksum.status', 'tcp.flags.push']);
      assert.is(line, `${whole.length}\t${whole.length}\t${whole.length - 14}\t${payload}\t1\t1\t1`, 'tshark: lengths of the whole, checksums good (1), PSH');

      // snaplen: only the first 128 bytes copied, the original length kept
      const file2 = path.join(dir, 'snap.pcapng');
      const cut = captureOne(Stage.RX, 128, file2);
      assert.is(cut[0].data.length, 128);
      assert.is(cut[0].origLen, whole.length);
      assert.equal(Array.from(cut[0].data), Array.from(whole.subarray(0, 128)));
      const [l2] = tshark(file2, ['frame.len', 'frame.cap_len', 'ip.len']);
      assert.is(l2, `${whole.length}\t128\t${whole.length - 14}`);

      // at tx, in VXLAN over IPv4 (as the pipeline encapsulates it for another node)
      const o = new Uint8Array(50);
      o.set([0x02, 0, 0, 0x99, 0, 2], 0); o.set([0x02, 0, 0, 0x99, 0, 1], 6); wr16(o, 12, 0x0800);
      const seg0 = pool.len[0];
      o[14] = 0x45; wr16(o, 16, 36 + seg0); wr16(o, 18, 0x3000); o[22] = 64; o[23] = 17;
      o.set([10, 99, 0, 1], 26); o.set([10, 99, 0, 2], 30);
      wr16(o, 24, ~fold(sum16(o, 14, 20)) & 0xffff);
      wr16(o, 34, 51234); wr16(o, 36, 4789); wr16(o, 38, 16 + seg0); o[42] = 0x08; o[48] = 0x10;
      pool.off[0] -= 50; pool.len[0] += 50; pool.more[0] += (pool.segs[0] - 1) * 50;
      pool.bytes.set(o, pool.start(0));
      const file3 = path.join(dir, 'tx.pcapng');
      const tx = captureOne(Stage.TX, undefined, file3);
      const wo = o.slice();
      wr16(wo, 16, 36 + whole.length); wr16(wo, 24, 0); wr16(wo, 24, ~fold(sum16(wo, 14, 20)) & 0xffff); wr16(wo, 38, 16 + whole.length);
      assert.equal(Array.from(tx[0].data), [...wo, ...whole], 'outer and inner lengths of the whole');
      const [l3] = tshark(file3, ['frame.len', 'ip.len', 'udp.length', 'tcp.len', 'tcp.checksum.status']);
      assert.is(l3, `${whole.length + 50}\t${whole.length + 36},${whole.length - 14}\t${whole.length + 16}\t${payload}\t1`);
    });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('capture: a super-frame in IP-in-IP is one record with the outer and inner lengths and the TCP checksum of the whole; one in UDP to another port than 4789 is left as segment 0', async () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'podway-superhold-'));
  try {
    await withLab(async (l) => {
      const payload = 45 * MSS - 300;
      const f = superFrame(payload, ACK | PSH, 0xfffff000, 7);
      const whole = superFrame(payload, ACK | PSH, 0xfffff000, 7, true);
      await receiveSuper(l, f);
      // at tx, in IPIP (as the pipeline encapsulates it for another node): the pod's Ethernet
      // header gives way to the node's and an outer IPv4 header (protocol 4)
      const o = new Uint8Array(34);
      o.set([0x02, 0, 0, 0x99, 0, 2], 0); o.set([0x02, 0, 0, 0x99, 0, 1], 6); wr16(o, 12, 0x0800);
      const seg0 = pool.len[0];
      o[14] = 0x45; wr16(o, 16, 20 + seg0 - 14); wr16(o, 18, 0x3001); o[22] = 64; o[23] = 4;
      o.set([10, 99, 0, 1], 26); o.set([10, 99, 0, 2], 30);
      wr16(o, 24, ~fold(sum16(o, 14, 20)) & 0xffff);
      pool.off[0] -= 20; pool.len[0] += 20; pool.more[0] += (pool.segs[0] - 1) * 20;
      pool.bytes.set(o, pool.start(0));
      const file = path.join(dir, 'ipip.pcapng');
      const tx = captureOne(Stage.TX, undefined, file);
      assert.is(tx.length, 1, 'one record');
      const wo = o.slice();
      wr16(wo, 16, 20 + whole.length - 14); wr16(wo, 24, 0); wr16(wo, 24, ~fold(sum16(wo, 14, 20)) & 0xffff);
      assert.equal(Array.from(tx[0].data), [...wo, ...whole.subarray(14)], 'outer and inner IPv4 of the whole, TCP checksum of the whole');
      const [line] = tshark(file, ['frame.len', 'ip.len', 'tcp.len', 'tcp.checksum.status', 'ip.checksum.status']);
      assert.is(line, `${whole.length + 20}\t${whole.length + 6},${whole.length - 14}\t${payload}\t1\t1,1`, 'tshark: both IPv4 headers good, TCP checksum good');

      // UDP to a port that is not VXLAN's: no header of the record is touched
      const ud = new Uint8Array(14 + 20 + 8 + 20 + 40);
      wr16(ud, 12, 0x0800); ud[14] = 0x45; wr16(ud, 16, ud.length - 14); ud[23] = 17;
      wr16(ud, 24, ~fold(sum16(ud, 14, 20)) & 0xffff);
      wr16(ud, 34, 1234); wr16(ud, 36, 5555); wr16(ud, 38, ud.length - 34); wr16(ud, 40, 0x1234);
      ud[42] = 0x45; wr16(ud, 44, 60); ud[51] = 6;
      const before = ud.slice();
      growToSuper(ud, 0, ud.length, 10_000, PSH, 0x4321);
      assert.equal(Array.from(ud), Array.from(before), 'UDP to port 5555: unchanged');
    });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test.run();
