/**
 * Transmit GSO on the underlay (native/uso.c): runs of one outer flow's VXLAN datagrams in a send
 * batch go to the kernel as one UDP GSO message (virtio_net_hdr UDP_L4), which the kernel cuts at
 * the device. What must come out is what podway would have sent one datagram per send, except the
 * fields the kernel rewrites per datagram: the outer IPv4 id (the merged message's id + k), the IPv4
 * header checksum and the UDP checksum (computed over each datagram; podway's IPv4 VXLAN sends 0).
 *
 * Two layers: (1) the planning code on frames from JS (usoCoalesceForTest: what each message of a
 * batch would carry, no syscall), cut again by the addon's receive segmenter and checked against
 * the rules, including bad input and a fuzz run; (2) real sends on a veth whose tx offloads are off
 * (the kernel segments in software, like towards a wire) and on (the kernel hands the peer the
 * whole GSO skb, which podway's receive path cuts), captured on the peer with AF_PACKET and compared
 * byte for byte with the input frames. Root and network namespaces; each test makes its own.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { native, nativeAddon, FramePool } from '../../src/dataplane/native';
import { withNetns, Netns, linksUp } from '../helpers/netns';
import { fold, rd16, sum16, wr16 } from './wire-ref';
import { collect as collectOn, sendBatch as sendOn, resegment as resegmentOn, Message } from './pool-frames';

interface TestHooks {
  usoCoalesceForTest(frames: Uint8Array[], mtu: number, vxlanPort?: number): Message[];
}
const hooks = nativeAddon() as unknown as TestHooks;
const pool = new FramePool(512);
const MTU = 1500;

// ---- VXLAN datagrams, built here independently of the addon -------------------------------------

interface Vx { v6?: boolean; inner: number; id?: number; sport?: number; seed?: number; ttl?: number; tos?: number; df?: boolean; dport?: number; flags?: number; csum?: 'zero' | 'valid' | 'bad'; dstMac?: number; dst?: number }

/** Outer Ethernet + IPv4 (or IPv6) + UDP to 4789 + VXLAN (VNI 4096) + `inner` bytes of inner frame. */
function vx(o: Vx): Uint8Array {
  const v6 = o.v6 ?? false;
  const l4 = v6 ? 54 : 34;
  const ulen = 8 + 8 + o.inner;
  const f = new Uint8Array(l4 + ulen);
  f.set([0x02, 0, 0, 0x55, 0, o.dstMac ?? 2, 0x02, 0, 0, 0x55, 0, 1], 0);
  if (v6) {
    wr16(f, 12, 0x86dd);
    f[14] = 0x60 | ((o.tos ?? 0) >> 4); f[15] = ((o.tos ?? 0) & 15) << 4;
    wr16(f, 18, ulen); f[20] = 17; f[21] = o.ttl ?? 64;
    f.set([0xfd, 0, 0, 0x55, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1], 22);
    f.set([0xfd, 0, 0, 0x55, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, o.dst ?? 2], 38);
  } else {
    wr16(f, 12, 0x0800);
    f[14] = 0x45; f[15] = o.tos ?? 0; wr16(f, 16, 20 + ulen); wr16(f, 18, (o.id ?? 0x1000) & 0xffff);
    wr16(f, 20, o.df === false ? 0 : 0x4000); f[22] = o.ttl ?? 64; f[23] = 17;
    f.set([10, 55, 0, 1, 10, 55, 0, o.dst ?? 2], 26);
    wr16(f, 24, ~fold(sum16(f, 14, 20)) & 0xffff);
  }
  wr16(f, l4, o.sport ?? 40000); wr16(f, l4 + 2, o.dport ?? 4789); wr16(f, l4 + 4, ulen);
  f[l4 + 8] = o.flags ?? 0x08; f[l4 + 12] = 0x00; f[l4 + 13] = 0x10; // VNI 4096
  for (let i = 0; i < o.inner; i++) f[l4 + 16 + i] = ((o.seed ?? 1) * 37 + i * 11 + (i >>> 7)) & 255;
  const csum = o.csum ?? (v6 ? 'valid' : 'zero');
  if (csum !== 'zero') {
    let c = udpCsum(f, v6);
    if (csum === 'bad') c = c ^ 0x0101;
    wr16(f, l4 + 6, c);
  }
  return f;
}

function udpCsum(f: Uint8Array, v6: boolean): number {
  const l4 = v6 ? 54 : 34;
  const ulen = f.length - l4;
  const save = rd16(f, l4 + 6);
  wr16(f, l4 + 6, 0);
  const pseudo = (v6 ? sum16(f, 22, 32) : sum16(f, 26, 8)) + 17 + ulen;
  const c = ~fold(pseudo + sum16(f, l4, ulen)) & 0xffff;
  wr16(f, l4 + 6, save);
  return c === 0 ? 0xffff : c;
}

/** n datagrams of one outer flow: `inner` bytes each (the last `last` when given), ids counting up. */
function run(n: number, o: Partial<Vx> & { last?: number } = {}): Uint8Array[] {
  const out: Uint8Array[] = [];
  for (let k = 0; k < n; k++) out.push(vx({ ...o, inner: k === n - 1 && o.last !== undefined ? o.last : o.inner ?? 1400, id: (o.id ?? 0xfff8) + k, seed: (o.seed ?? 1) + k }));
  return out;
}

/**
 * What the kernel sends for message frames [first, first+c) merged (c > 1): each datagram as it
 * was, with the IPv4 id = the first's + k, the IPv4 header checksum and the UDP checksum
 * computed; a frame sent alone goes as it is.
 */
function expectedWire(frames: Uint8Array[], sizes: number[]): Uint8Array[] {
  const out: Uint8Array[] = [];
  let at = 0;
  for (const c of sizes) {
    for (let k = 0; k < c; k++) {
      const s = frames[at + k].slice();
      if (c > 1) {
        const v6 = rd16(s, 12) === 0x86dd;
        if (!v6) {
          wr16(s, 18, (rd16(frames[at], 18) + k) & 0xffff);
          wr16(s, 24, 0);
          wr16(s, 24, ~fold(sum16(s, 14, 20)) & 0xffff);
        }
        wr16(s, v6 ? 60 : 40, udpCsum(s, v6));
      }
      out.push(s);
    }
    at += c;
  }
  return out;
}

/** A datagram as it must be on the wire: lengths agree, checksums verify (UDP 0 allowed over IPv4 only). */
function wireValid(s: Uint8Array): string | null {
  const v6 = rd16(s, 12) === 0x86dd;
  const l4 = v6 ? 54 : 34;
  if (v6 ? rd16(s, 18) !== s.length - 54 : rd16(s, 16) !== s.length - 14) return 'IP length';
  if (!v6 && fold(sum16(s, 14, 20)) !== 0xffff) return 'IPv4 header checksum';
  if (rd16(s, l4 + 4) !== s.length - l4) return 'UDP length';
  if (rd16(s, l4 + 6) === 0) return v6 ? 'zero UDP checksum over IPv6' : null;
  const pseudo = (v6 ? sum16(s, 22, 32) : sum16(s, 26, 8)) + 17 + (s.length - l4);
  return fold(pseudo + sum16(s, l4, s.length - l4)) === 0xffff ? null : 'UDP checksum';
}

const same = (a: Uint8Array, b: Uint8Array) => a.length === b.length && Buffer.compare(Buffer.from(a), Buffer.from(b)) === 0;

function sameFrames(got: Uint8Array[], want: Uint8Array[], what: string): void {
  assert.is(got.length, want.length, `${what}: datagram count`);
  for (let k = 0; k < want.length; k++) {
    if (!same(got[k], want[k])) {
      const at = got[k].findIndex((v, j) => v !== want[k][j]);
      assert.unreachable(`${what}: datagram ${k} differs (lengths ${got[k].length}/${want[k].length}, first difference at byte ${at})`);
    }
  }
}

const resegment = (m: Message) => resegmentOn(pool, m);

/** Plans the batch, checks each message's shape, and that cutting them again gives the expected wire. */
function checkPlan(inputs: Uint8Array[], sizes: number[], what: string, mtu = MTU): void {
  const msgs = hooks.usoCoalesceForTest(inputs, mtu);
  assert.equal(msgs.map((m) => m.frames), sizes, `${what}: frames per message`);
  let at = 0;
  const got: Uint8Array[] = [];
  for (const m of msgs) {
    if (m.frames > 1) {
      const v = m.vnetHdr!;
      const dv = new DataView(v.buffer, v.byteOffset, v.byteLength);
      const v6 = rd16(m.frame, 12) === 0x86dd;
      const l4 = v6 ? 54 : 34;
      assert.is(v[0], 1, `${what}: NEEDS_CSUM`);
      assert.is(v[1], 5, `${what}: gso_type UDP_L4`);
      assert.is(dv.getUint16(2, true), l4 + 8, `${what}: hdr_len`);
      assert.is(dv.getUint16(4, true), inputs[at].length - l4 - 8, `${what}: gso_size is the first datagram's UDP payload`);
      assert.is(dv.getUint16(6, true), l4, `${what}: csum_start`);
      assert.is(dv.getUint16(8, true), 6, `${what}: csum_offset`);
      const ulen = m.frame.length - l4;
      assert.is(rd16(m.frame, l4 + 4), ulen, `${what}: UDP length of the whole`);
      assert.is(v6 ? rd16(m.frame, 18) : rd16(m.frame, 16), v6 ? ulen : ulen + 20, `${what}: IP length of the whole`);
      if (!v6) assert.is(fold(sum16(m.frame, 14, 20)), 0xffff, `${what}: IPv4 header checksum of the whole`);
      const pseudo = fold((v6 ? sum16(m.frame, 22, 32) : sum16(m.frame, 26, 8)) + 17 + ulen);
      assert.is(rd16(m.frame, l4 + 6), pseudo, `${what}: UDP checksum field holds the pseudo-header sum`);
    }
    got.push(...resegment(m));
    at += m.frames;
  }
  sameFrames(got, expectedWire(inputs, sizes), `${what} (merged, cut again)`);
}

// ---- (1) the planning code on frames from JS ------------------------------------------------------

test('a run of one flow becomes one UDP GSO message; cut again it gives the datagrams back (IPv4 and IPv6)', () => {
  checkPlan(run(20), [20], 'IPv4, 20 x 1400');
  checkPlan(run(20, { v6: true }), [20], 'IPv6, 20 x 1400');
  checkPlan(run(7, { last: 333 }), [7], 'IPv4, last one shorter');
  checkPlan(run(7, { v6: true, last: 1 }), [7], 'IPv6, last one 1 byte of inner frame');
  checkPlan(run(5, { inner: 60, id: 0 }), [5], 'small datagrams (ACKs)');
  checkPlan(run(4, { csum: 'valid' }), [4], 'IPv4 with a UDP checksum');
  // ids need not count up: the kernel writes the first's + k
  const fixed = run(6).map((f) => { const g = f.slice(); wr16(g, 18, 7); wr16(g, 24, 0); wr16(g, 24, ~fold(sum16(g, 14, 20)) & 0xffff); return g; });
  checkPlan(fixed, [6], 'IPv4, every id the same');
});

test('runs end where a datagram differs: other flow, headers, size; mixed batches keep their order', () => {
  const a = run(5, { sport: 1111, seed: 10 });
  const b = run(4, { sport: 2222, seed: 20 });
  checkPlan([...a, ...b], [5, 4], 'two flows one after the other');
  checkPlan([a[0], b[0], a[1], b[1]], [1, 1, 1, 1], 'two flows interleaved');
  checkPlan([...run(3), ...run(3, { v6: true })], [3, 3], 'IPv4 then IPv6');
  const short = run(6);
  short[2] = vx({ inner: 900, id: 0xfffa, seed: 3 });
  checkPlan(short, [3, 3], 'a shorter datagram ends its run');
  const longer = run(4);
  longer[2] = vx({ inner: 1401, id: 0xfffa });
  checkPlan(longer, [2, 2], 'a longer datagram starts a new run');
  const cases: Array<[string, Partial<Vx>]> = [
    ['outer destination MAC', { dstMac: 9 }], ['TTL', { ttl: 63 }], ['TOS', { tos: 4 }], ['DF', { df: false }],
    ['destination address', { dst: 3 }], ['UDP source port', { sport: 40001 }],
  ];
  for (const v6 of [false, true]) {
    for (const [what, change] of cases) {
      if (v6 && what === 'DF') continue;
      const r = run(5, { v6 });
      r[3] = vx({ v6, inner: 1400, id: 0xfffb, seed: 4, ...change });
      checkPlan(r, [3, 1, 1], `${v6 ? 'IPv6' : 'IPv4'}: ${what} differs`);
    }
  }
  const arp = new Uint8Array(60);
  arp[12] = 0x08; arp[13] = 0x06;
  checkPlan([...run(2), arp, ...run(2)], [2, 1, 2], 'an ARP frame between two runs');
});

test('only VXLAN datagrams with sound headers and checksums merge; the rest go alone', () => {
  const alone: Array<[string, (f: Uint8Array[]) => void, boolean?]> = [
    ['not the VXLAN port', (r) => { r[0] = vx({ inner: 1400, dport: 4790 }); r[1] = vx({ inner: 1400, dport: 4790, id: 0xfff9 }); }],
    ['no VXLAN I flag', (r) => { r[0] = vx({ inner: 1400, flags: 0 }); r[1] = vx({ inner: 1400, flags: 0, id: 0xfff9 }); }],
    ['bad UDP checksum (IPv4)', (r) => { r[0] = vx({ inner: 1400, csum: 'bad' }); }],
    ['bad UDP checksum (IPv6)', (r) => { r[0] = vx({ v6: true, inner: 1400, csum: 'bad' }); r[1] = vx({ v6: true, inner: 1400 }); }],
    ['zero UDP checksum over IPv6', (r) => { r[0] = vx({ v6: true, inner: 1400, csum: 'zero' }); r[1] = vx({ v6: true, inner: 1400 }); }],
    ['bad IPv4 header checksum', (r) => { r[0][24] ^= 0x10; }],
    ['a fragment', (r) => { for (const f of r) { f[20] |= 0x20; wr16(f, 24, 0); wr16(f, 24, ~fold(sum16(f, 14, 20)) & 0xffff); } }],
    ['UDP length not the IP one', (r) => { wr16(r[0], 38, rd16(r[0], 38) - 2); }],
    ['IP length past the frame', (r) => { r[0] = r[0].slice(0, r[0].length - 10); }],
    ['IPv4 options', (r) => { r[0][14] = 0x46; }],
    ['not UDP', (r) => { r[0][23] = 6; }],
    ['over the device MTU', (r) => { r[0] = vx({ inner: 1500 - 36 + 1 }); r[1] = vx({ inner: 1500 - 36 + 1, id: 0xfff9 }); }],
  ];
  for (const [what, spoil] of alone) {
    const r = run(2);
    spoil(r);
    assert.equal(hooks.usoCoalesceForTest(r, MTU).map((m) => m.frames), [1, 1], what);
  }
  assert.equal(hooks.usoCoalesceForTest(run(2), 1435).map((m) => m.frames), [1, 1], 'MTU one byte short');
  assert.equal(hooks.usoCoalesceForTest(run(2), 1436).map((m) => m.frames), [2], 'MTU exactly the datagram');
  // a spoiled datagram after the first ends the run there
  const r = run(5);
  r[2] = vx({ inner: 1400, csum: 'bad', id: 0xfffa });
  checkPlan(r, [2, 1, 2], 'bad checksum in the middle');
  checkPlan(run(1), [1], 'a single datagram');
  checkPlan([vx({ inner: 0 }), vx({ inner: 0, id: 0xfff9 })], [2], 'VXLAN header and no inner bytes');
});

test('the VXLAN port is the one given (Felix\'s vxlanPort, setVxlanPort): datagrams to 8472 merge only when 8472 is the port; to 4789 then they go alone', () => {
  const run = (dport: number) => [0, 1, 2, 3].map((k) => vx({ inner: 1000, dport, id: 0x2000 + k, seed: k + 1 }));
  assert.equal(hooks.usoCoalesceForTest(run(8472), MTU).map((m) => m.frames), [1, 1, 1, 1], 'the default port 4789: not VXLAN');
  assert.equal(hooks.usoCoalesceForTest(run(8472), MTU, 8472).map((m) => m.frames), [4], 'port 8472 given: one message');
  assert.equal(hooks.usoCoalesceForTest(run(4789), MTU, 8472).map((m) => m.frames), [1, 1, 1, 1], 'the old port once 8472 is in use: alone');
  assert.throws(() => hooks.usoCoalesceForTest(run(4789), MTU, 0), /vxlanPort/);
  assert.throws(() => (nativeAddon() as unknown as { setVxlanPort(p: number): void }).setVxlanPort(65536), /setVxlanPort/);
});

test('limits: at most 64 datagrams and 65535 bytes of IP per message', () => {
  checkPlan(run(70, { inner: 100 }), [64, 6], '70 small datagrams');
  // 1400 + 16 bytes of UDP payload each: 46 fit under 65535 - 28
  const big = run(50, { inner: 1400 });
  const first = Math.floor((65535 - 28) / 1416);
  checkPlan(big, [first, 50 - first], '50 x 1416-byte payloads over IPv4', 9000);
  const first6 = Math.floor((65535 - 8) / 1416);
  checkPlan(run(50, { v6: true, inner: 1400 }), [first6, 50 - first6], '50 x 1416-byte payloads over IPv6', 9000);
});

test('fuzz: random batches of spoiled, resized and reordered datagrams; every message cuts back to its inputs', () => {
  let seed = 12345;
  const rnd = (n: number) => { seed = (seed * 1103515245 + 12345) & 0x7fffffff; return seed % n; };
  for (let round = 0; round < 300; round++) {
    const v6 = rnd(3) === 0;
    const n = 1 + rnd(40);
    const inner = 20 + rnd(1400);
    const frames = run(n, { v6, inner, sport: 30000 + rnd(2), last: rnd(2) ? 1 + rnd(inner) : undefined, csum: v6 ? 'valid' : rnd(4) === 0 ? 'valid' : 'zero' });
    for (let m = rnd(4); m > 0; m--) {
      const k = rnd(n);
      const f = frames[k].slice();
      const what = rnd(5);
      if (what === 0) f[rnd(f.length)] ^= 1 << rnd(8); // any byte: header or payload
      else if (what === 1 && k > 0) frames[k] = frames[k - 1];
      else if (what === 2) frames[k] = vx({ v6, inner: 1 + rnd(1400), id: rnd(65536) });
      else if (what === 3) frames[k] = f.slice(0, Math.max(14, f.length - 1 - rnd(20)));
      else frames[k] = vx({ v6: !v6, inner });
      if (what === 0) frames[k] = f;
    }
    const msgs = hooks.usoCoalesceForTest(frames, 1400 + rnd(200));
    assert.is(msgs.reduce((s, m) => s + m.frames, 0), n, `round ${round}: every frame in one message`);
    let at = 0;
    for (const m of msgs) {
      const want = expectedWire(frames.slice(at, at + m.frames), [m.frames]);
      const got = resegment(m);
      sameFrames(got, want, `round ${round}, frames ${at}..${at + m.frames - 1}`);
      if (m.frames > 1) for (const s of got) assert.is(wireValid(s), null, `round ${round}: merged datagrams are valid on the wire`);
      at += m.frames;
    }
  }
});

// ---- (2) real sends through a veth -------------------------------------------------------------

function noIpv6(n: Netns): void {
  n.exec('sysctl', ['-qw', 'net.ipv6.conf.all.disable_ipv6=1']);
  n.exec('sysctl', ['-qw', 'net.ipv6.conf.default.disable_ipv6=1']);
}

/** Our VXLAN datagrams: UDP to 4789 from source MAC 02:00:00:55:.. (not the kernel's own frames). */
function ourDatagram(s: Uint8Array): boolean {
  const et = s.length > 14 ? rd16(s, 12) : 0;
  const l4 = et === 0x0800 ? 34 : et === 0x86dd ? 54 : 0;
  return l4 > 0 && s.length >= l4 + 8 && rd16(s, l4 + 2) === 4789 && s[6] === 0x02 && s[9] === 0x55;
}
const collect = (port: number, want: number, timeoutMs?: number) => collectOn(pool, port, want, ourDatagram, timeoutMs);
const sendBatch = (port: number, frames: Uint8Array[]) => sendOn(pool, port, frames);

for (const tx of ['off', 'on'] as const) {
  test(`real sends on a veth with tx offloads ${tx}: the peer sees podway's datagrams byte for byte, but the rewritten id and checksums${tx === 'on' ? ' (the GSO skb arrives whole; podway\'s receive cuts it)' : ''}`, async () => {
    await withNetns(['uso'], async ([N]) => {
      noIpv6(N);
      N.ip('link', 'add', 'ua0', 'type', 'veth', 'peer', 'name', 'ub0');
      N.exec('ethtool', ['-K', 'ua0', 'tx', tx]);
      linksUp(N, ['ua0', 'ub0']);
      const txp = native.openPacket('ua0', { netns: N.path, txGso: true });
      const rxp = native.openPacket('ub0', { netns: N.path });
      try {
        const mixed = [...run(3, { sport: 1 }), ...run(4, { sport: 2, last: 100 }), vx({ inner: 1400, sport: 3 }), ...run(5, { v6: true, sport: 4, last: 7 })];
        const cases: Array<[string, Uint8Array[], number[]]> = [
          ['IPv4, 45 x 1400 (a 64 KiB super-frame cut by podway, encapsulated)', run(45, { seed: 5 }), [45]],
          ['IPv4, last shorter, ids all 0 without DF', run(9, { last: 77, df: false, id: 0 }).map((f) => { const g = f.slice(); wr16(g, 18, 0); wr16(g, 24, 0); wr16(g, 24, ~fold(sum16(g, 14, 20)) & 0xffff); return g; }), [9]],
          ['IPv6, 30 x 1300, last shorter', run(30, { v6: true, inner: 1300, last: 500 }), [30]],
          ['mixed flows and families', mixed, [3, 4, 1, 5]],
          ['70 small datagrams', run(70, { inner: 64 }), [64, 6]],
          ['a single datagram', run(1), [1]],
        ];
        let merged = 0, mergedFrames = 0, sent = 0;
        for (const [what, frames, sizes] of cases) {
          assert.equal(hooks.usoCoalesceForTest(frames, MTU).map((m) => m.frames), sizes, `${what}: plan`);
          assert.is(sendBatch(txp, frames), frames.length, `${what}: all taken`);
          sent += frames.length;
          for (const c of sizes) if (c > 1) { merged++; mergedFrames += c; }
          const got = await collect(rxp, frames.length);
          sameFrames(got, expectedWire(frames, sizes), what);
          for (const s of got) assert.is(wireValid(s), null, `${what}: valid on the wire`);
        }
        const st = native.stats(txp);
        assert.is(st.txGsoFrames, merged, 'txGsoFrames: one per merged message');
        assert.is(st.txGsoSegments, mergedFrames, 'txGsoSegments: the frames they carried');
        assert.is(st.txPackets, sent, 'txPackets counts frames, not sends');
        assert.is(st.txErrors + st.txDroppedFull + (st.txBacklog ?? 0) + (st.txGsoRejected ?? 0), 0);
        if (tx === 'on') assert.ok((native.stats(rxp).rxGsoFrames ?? 0) > 0, 'the peer received GSO skbs whole');
      } finally {
        native.close(txp);
        native.close(rxp);
      }
    });
  });
}

test('a datagram over the device MTU is not hidden in a merged message: each is refused alone (EMSGSIZE), as without GSO', async () => {
  await withNetns(['usom'], async ([N]) => {
    noIpv6(N);
    N.ip('link', 'add', 'um0', 'type', 'veth', 'peer', 'name', 'un0');
    N.exec('ethtool', ['-K', 'um0', 'tx', 'off']);
    N.ip('link', 'set', 'um0', 'mtu', '1400');
    linksUp(N, ['um0', 'un0']);
    const txp = native.openPacket('um0', { netns: N.path, txGso: true });
    const rxp = native.openPacket('un0', { netns: N.path });
    try {
      const frames = [...run(3, { inner: 1400 }), ...run(3, { inner: 1000, sport: 9 })];
      assert.is(sendBatch(txp, frames), 3, 'the kernel took three (rejected frames are not accepted)');
      const got = await collect(rxp, 3);
      sameFrames(got, expectedWire(frames.slice(3), [3]), 'the datagrams within the MTU, merged');
      const st = native.stats(txp);
      assert.is(st.txErrors, 3, 'the three over the MTU, rejected one by one');
      assert.is(st.lastError, 'EMSGSIZE');
      assert.is(st.txPackets, 3);
      assert.is(st.txGsoFrames, 1);
    } finally {
      native.close(txp);
      native.close(rxp);
    }
  });
});

/** A frame with the fields the kernel may rewrite (IPv4 id and header checksum, UDP checksum) zeroed. */
function normalized(f: Uint8Array): Uint8Array {
  const g = f.slice();
  if (rd16(g, 12) === 0x86dd) { wr16(g, 60, 0); return g; }
  wr16(g, 18, 0); wr16(g, 24, 0); wr16(g, 40, 0);
  return g;
}

test('a full socket: merged sends the kernel refuses go to the backlog frame by frame, drain in order, every frame counted once', async () => {
  await withNetns(['usob'], async ([N]) => {
    noIpv6(N);
    N.ip('link', 'add', 'uq0', 'type', 'veth', 'peer', 'name', 'ur0');
    N.exec('ethtool', ['-K', 'uq0', 'tx', 'off']);
    // a slow qdisc with room for everything: skbs wait there holding send buffer, so a small
    // sndbuf makes sendmmsg answer EAGAIN partway through the batch (no drops: limit is large)
    N.exec('tc', ['qdisc', 'add', 'dev', 'uq0', 'root', 'tbf', 'rate', '20mbit', 'burst', '16000', 'limit', '4000000']);
    linksUp(N, ['uq0', 'ur0']);
    const txp = native.openPacket('uq0', { netns: N.path, txGso: true, sndbuf: 4096 });
    const rxp = native.openPacket('ur0', { netns: N.path, rcvbuf: 8 << 20 });
    try {
      const frames: Uint8Array[] = [];
      for (let flow = 0; flow < 6; flow++) frames.push(...run(30, { sport: 100 + flow, seed: flow * 50, v6: flow % 3 === 2 }));
      assert.is(sendBatch(txp, frames), frames.length, 'every frame accepted: sent or queued');
      const s1 = native.stats(txp);
      assert.ok((s1.txBacklog ?? 0) > 0, `the kernel refused part of the batch (sent ${s1.txPackets})`);
      assert.ok(s1.txGsoFrames! >= 1, 'at least the first run went merged');
      assert.is(s1.txPackets + (s1.txBacklog ?? 0), frames.length, 'frames, not sends, are counted');
      const got = await collect(rxp, frames.length, 8000);
      const s2 = native.stats(txp);
      assert.is(s2.txBacklog ?? 0, 0, 'the backlog drained');
      assert.is(s2.txPackets, frames.length);
      assert.is(s2.txErrors + s2.txDroppedFull, 0);
      assert.is(got.length, frames.length, 'the peer got every frame once');
      for (const [k, f] of got.entries()) {
        assert.is(wireValid(f), null, `datagram ${k} valid`);
        if (!same(normalized(f), normalized(frames[k]))) assert.unreachable(`datagram ${k} is not the ${k}th sent (order or content)`);
      }
    } finally {
      native.close(txp);
      native.close(rxp);
    }
  });
});

test('without txGso the same batch goes one datagram per message (no GSO counters), byte for byte', async () => {
  await withNetns(['usoo'], async ([N]) => {
    noIpv6(N);
    N.ip('link', 'add', 'uo0', 'type', 'veth', 'peer', 'name', 'up0');
    N.exec('ethtool', ['-K', 'uo0', 'tx', 'off']);
    linksUp(N, ['uo0', 'up0']);
    const txp = native.openPacket('uo0', { netns: N.path });
    const rxp = native.openPacket('up0', { netns: N.path });
    try {
      const frames = run(10);
      assert.is(sendBatch(txp, frames), 10);
      sameFrames(await collect(rxp, 10), frames, 'as given');
      assert.is(native.stats(txp).txGsoFrames ?? 0, 0);
    } finally {
      native.close(txp);
      native.close(rxp);
    }
  });
});

test.run();
