// IPv4 fragmentation (src/packet/fragment.ts) as Linux's ip_do_fragment cuts a forwarded packet:
// offsets in 8-byte units, MF on all but the last, the id kept, options without the copy flag
// turned into NOOPs in all fragments but the first, every header checksum right, and the data
// reassembling to the original. The checks are written here from scratch.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { ipv4FragmentCount, ipv4FragmentData, ipv4MakeFirstFragment, ipv4WriteFragment } from '../../src/packet/fragment';

/** An IPv4 packet of `total` bytes (UDP, no DF), `opts` as its options (padded by the caller to a
 * multiple of 4), its payload bytes numbered so a misplaced slice shows. */
function packet(total: number, opts: number[] = [], flags = 0, offset = 0): Uint8Array {
  const hl = 20 + opts.length;
  const b = new Uint8Array(total);
  b[0] = 0x40 | (hl >> 2);
  b[1] = 0x28;
  b[2] = total >> 8; b[3] = total & 255;
  b[4] = 0xbe; b[5] = 0xef;
  b[6] = (flags >> 8) | (offset >> 8); b[7] = offset & 255;
  b[8] = 63; b[9] = 17;
  b.set([10, 244, 0, 1, 10, 244, 0, 65], 12);
  b.set(opts, 20);
  for (let k = hl; k < total; k++) b[k] = (k * 7 + 3) & 255;
  fill(b, 0);
  return b;
}

function sum(b: Uint8Array, off: number, len: number): number {
  let s = 0;
  for (let k = 0; k < len; k += 2) s += (b[off + k] << 8) | b[off + k + 1];
  while (s > 0xffff) s = (s & 0xffff) + (s >>> 16);
  return s;
}
function fill(b: Uint8Array, ip: number): void {
  b[ip + 10] = 0; b[ip + 11] = 0;
  const c = ~sum(b, ip, (b[ip] & 15) << 2) & 0xffff;
  b[ip + 10] = c >> 8; b[ip + 11] = c & 255;
}

interface Frag { bytes: Uint8Array; hl: number; off: number; mf: boolean; data: Uint8Array }

/** Cut `pkt` for `mtu` the way the pipeline does: the others first (into their own buffers), then the first in place. */
function cut(pkt: Uint8Array, mtu: number): Frag[] {
  const n = ipv4FragmentCount(pkt, 0, mtu);
  // (the others written past the original: ipv4WriteFragment's region must not overlap it)
  const room = 4096;
  const b = new Uint8Array(room * (n + 1));
  b.set(pkt, 0);
  const lens: number[] = [];
  for (let k = 1; k < n; k++) lens.push(ipv4WriteFragment(b, 0, mtu, k, room * k));
  const firstLen = n > 1 ? ipv4MakeFirstFragment(b, 0, mtu) : pkt.length;
  const out: Frag[] = [];
  for (let k = 0; k < n; k++) {
    const at = room * k;
    const len = k === 0 ? firstLen : lens[k - 1];
    const f = b.slice(at, at + len);
    const hl = (f[0] & 15) << 2;
    assert.is((f[2] << 8) | f[3], len, `fragment ${k}: total length`);
    assert.is(sum(f, 0, hl), 0xffff, `fragment ${k}: header checksum`);
    assert.ok(len <= mtu, `fragment ${k}: ${len} fits ${mtu}`);
    assert.is((f[4] << 8) | f[5], 0xbeef, `fragment ${k}: the id kept`);
    assert.is(f[6] & 0x40, 0, `fragment ${k}: no DF`);
    out.push({ bytes: f, hl, off: (((f[6] & 0x1f) << 8) | f[7]) * 8, mf: (f[6] & 0x20) !== 0, data: f.subarray(hl) });
  }
  return out;
}

function reassembled(frags: Frag[], base = 0): Uint8Array {
  const total = frags.reduce((s, f) => s + f.data.length, 0);
  const r = new Uint8Array(total);
  for (const f of frags) r.set(f.data, f.off - base);
  return r;
}

test('3,000 bytes under 1,450: three fragments of 1,424, 1,424 and 132 data bytes at offsets 0, 1424, 2848; MF on the first two; same TTL, TOS, addresses; the data reassembles', () => {
  const p = packet(3000);
  const f = cut(p, 1450);
  assert.equal(f.map((x) => x.data.length), [1424, 1424, 132]);
  assert.equal(f.map((x) => x.off), [0, 1424, 2848]);
  assert.equal(f.map((x) => x.mf), [true, true, false]);
  for (const x of f) {
    assert.is(x.bytes[8], 63);
    assert.is(x.bytes[1], 0x28);
    assert.equal([...x.bytes.subarray(12, 20)], [...p.subarray(12, 20)]);
    assert.is(x.off % 8, 0);
  }
  assert.equal([...reassembled(f)], [...p.subarray(20)]);
});

test('a packet that fits the MTU exactly is one fragment (not cut); one byte more is two, the last with 8 bytes or fewer', () => {
  assert.is(ipv4FragmentCount(packet(1450), 0, 1450), 1);
  const f = cut(packet(1451), 1450);
  assert.equal(f.map((x) => x.data.length), [1424, 7]);
  assert.equal(f.map((x) => x.mf), [true, false]);
  // data a multiple of 8 exactly: no empty last fragment
  const g = cut(packet(20 + 2 * 1424), 1450);
  assert.equal(g.map((x) => x.data.length), [1424, 1424]);
});

test('an odd options header (router alert: copied; record route: not copied; a NOOP): all in the first fragment, record route NOOPed in the others, the header length kept in every one', () => {
  const ra = [0x94, 0x04, 0x00, 0x00];
  const rr = [0x07, 0x07, 0x04, 0, 0, 0, 0];
  const opts = [...ra, ...rr, 0x01];
  const p = packet(1000, opts);
  const f = cut(p, 300);
  const per = (300 - 32) & ~7; // 264
  assert.is(ipv4FragmentData(300, 32), per);
  assert.equal(f.map((x) => x.data.length), [264, 264, 264, 1000 - 32 - 3 * 264]);
  assert.equal([...f[0].bytes.subarray(20, 32)], opts, 'the first keeps every option');
  for (const x of f.slice(1)) {
    assert.is(x.hl, 32);
    assert.equal([...x.bytes.subarray(20, 32)], [...ra, 1, 1, 1, 1, 1, 1, 1, 0x01], 'router alert copied, record route NOOPed');
  }
  assert.equal([...reassembled(f)], [...p.subarray(32)]);
});

test('a fragment cut again: offsets count from its own, and its MF stays on its last piece; the last fragment of a datagram keeps MF clear', () => {
  const mid = packet(20 + 1600, [], 0x2000, 100); // offset 800 bytes, more to come
  const f = cut(mid, 1000);
  assert.equal(f.map((x) => x.off), [800, 800 + 976]);
  assert.equal(f.map((x) => x.mf), [true, true]);
  assert.equal([...reassembled(f, 800)], [...mid.subarray(20)]);
  const last = packet(20 + 1600, [], 0, 100);
  assert.equal(cut(last, 1000).map((x) => x.mf), [true, false]);
});

test('an MTU that leaves fewer than 8 data bytes after the header cannot be cut (0 fragments: the caller drops it)', () => {
  assert.is(ipv4FragmentCount(packet(100), 0, 27), 0);
  assert.is(ipv4FragmentCount(packet(100, new Array(40).fill(1)), 0, 67), 0);
  assert.is(ipv4FragmentCount(packet(100), 0, 28), 10);
  // IPv4's minimum MTU (68) takes the largest header (60) and 8 bytes
  const f = cut(packet(200, [0x94, 4, 0, 0, ...new Array(36).fill(1)]), 68);
  assert.ok(f.every((x, k) => x.data.length === 8 || k === f.length - 1));
  assert.is(f.length, Math.ceil(140 / 8));
});

test.run();
