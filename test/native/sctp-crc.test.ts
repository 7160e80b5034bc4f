/**
 * SCTP's CRC32c completed in C (native/gso.c csum_complete_partial, crc32c): a veth offers SCTP CRC
 * offload (NETIF_F_SCTP_CRC), so a pod's SCTP arrives at podway's packet socket CHECKSUM_PARTIAL,
 * its vnet header NEEDS_CSUM with csum_start at the SCTP header and csum_offset 8 (the CRC32c
 * field). It used to be dropped as bad_partial_csum; now its CRC32c is written in, as the kernel's
 * skb_crc32c_csum_help would.
 *
 * Honest limits: this CI machine's kernel has no SCTP module (socket(AF_INET, SOCK_STREAM, 132)
 * fails), so no real SCTP stack sends or checks these packets here; and python3 has no scapy to
 * compute an independent checksum. So the checks are: a bitwise reference CRC32c written here (no
 * table, unlike the C one) that gives RFC 3720 B.4's test vectors; an RFC vector fed through the
 * addon's receive delivery (offloadDeliverForTest, the code every AF_PACKET receive runs: 32 zero
 * bytes as the SCTP packet must come out with 0x8a9136aa stored least significant byte first); and
 * SCTP packets over IPv4 and IPv6 of many lengths whose field the addon fills as the reference says,
 * the rest of the frame untouched. Offsets that do not name SCTP's field stay bad_partial_csum.
 * Through a veth into a running podway: e2e/sctp-crc.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { nativeAddon, FramePool } from '../../src/dataplane/native';
import { wr16 } from './wire-ref';
import { crc32cRef } from '../helpers/crc32c';

interface DeliverResult { n: number; badCsum: number; csumCompleted: number }
interface TestHooks { offloadDeliverForTest(frame: Uint8Array, vnet: Uint8Array | null, first: number, max: number, resume: boolean): DeliverResult }
const hooks = nativeAddon() as unknown as TestHooks;
const pool = new FramePool(64);
const NEEDS_CSUM = 1;


function vnet(csumStart: number, csumOffset: number): Uint8Array {
  const v = new Uint8Array(10);
  v[0] = NEEDS_CSUM;
  new DataView(v.buffer).setUint16(6, csumStart, true);
  new DataView(v.buffer).setUint16(8, csumOffset, true);
  return v;
}

/** Ethernet + IPv4 (or IPv6) + `sctp` (the SCTP packet: common header and chunks). */
function frame(sctp: Uint8Array, v6 = false): Uint8Array {
  const l3 = 14;
  const l4 = v6 ? 54 : 34;
  const f = new Uint8Array(l4 + sctp.length);
  f.set([2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2], 0);
  if (v6) {
    wr16(f, 12, 0x86dd);
    f[l3] = 0x60; wr16(f, l3 + 4, sctp.length); f[l3 + 6] = 132; f[l3 + 7] = 64;
    f[l3 + 8] = 0xfd; f[l3 + 23] = 1; f[l3 + 24] = 0xfd; f[l3 + 39] = 2;
  } else {
    wr16(f, 12, 0x0800);
    f[l3] = 0x45; wr16(f, l3 + 2, 20 + sctp.length); f[l3 + 8] = 64; f[l3 + 9] = 132;
    f.set([10, 244, 0, 1, 10, 244, 1, 2], l3 + 12);
  }
  f.set(sctp, l4);
  return f;
}

/** An SCTP packet: ports, verification tag, the CRC field holding `junk`, one DATA chunk of `n` bytes of payload (padded to 4). */
function sctpPacket(n: number, seed: number, junk = 0xdeadbeef): Uint8Array {
  const chunkLen = 16 + n;
  const p = new Uint8Array(12 + ((chunkLen + 3) & ~3));
  const dv = new DataView(p.buffer);
  dv.setUint16(0, 40000 + (seed & 0xff)); dv.setUint16(2, 5000); dv.setUint32(4, 0x12345678 ^ seed); dv.setUint32(8, junk);
  p[12] = 0; p[13] = 0x03; dv.setUint16(14, chunkLen); dv.setUint32(16, seed); dv.setUint16(20, 1); dv.setUint16(22, 0); dv.setUint32(24, 0);
  let x = seed * 2654435761 >>> 0;
  for (let i = 0; i < n; i++) {
    x = (x * 1103515245 + 12345) >>> 0;
    p[28 + i] = x >>> 24;
  }
  return p;
}

function delivered(): Uint8Array {
  return pool.bytes.slice(pool.start(0), pool.start(0) + pool.len[0]);
}

test('the reference CRC32c gives RFC 3720 B.4\'s vectors', () => {
  assert.is(crc32cRef(new Uint8Array(32)), 0x8a9136aa, '32 bytes of zeros');
  assert.is(crc32cRef(new Uint8Array(32).fill(0xff)), 0x62a8ab43, '32 bytes of ones');
  assert.is(crc32cRef(Uint8Array.from({ length: 32 }, (_, i) => i)), 0x46dd794e, 'incrementing');
  assert.is(crc32cRef(Uint8Array.from({ length: 32 }, (_, i) => 31 - i)), 0x113fdb5c, 'decrementing');
});

test('RFC 3720 B.4 through the addon: 32 zero bytes as the SCTP packet get 0x8a9136aa, least significant byte first', () => {
  const f = frame(new Uint8Array(32));
  const r = hooks.offloadDeliverForTest(f, vnet(34, 8), 0, 1, false);
  assert.is(r.n, 1);
  assert.equal([...delivered().subarray(34 + 8, 34 + 12)], [0xaa, 0x36, 0x91, 0x8a]);
});

for (const v6 of [false, true]) {
  test(`SCTP over ${v6 ? 'IPv6' : 'IPv4'} with a partial CRC32c (csum_offset 8): completed as the reference says, for lengths 0..1400, the rest of the frame untouched`, () => {
    const l4 = v6 ? 54 : 34;
    for (const n of [0, 1, 2, 3, 4, 5, 7, 8, 15, 16, 63, 64, 255, 256, 511, 1000, 1399, 1400]) {
      const f = frame(sctpPacket(n, n + 1), v6);
      const before = hooks.offloadDeliverForTest(new Uint8Array(60), null, 1, 1, false);
      const r = hooks.offloadDeliverForTest(f, vnet(l4, 8), 0, 1, false);
      assert.is(r.n, 1, `${n}: delivered`);
      assert.is(r.csumCompleted, before.csumCompleted + 1, `${n}: counted completed`);
      assert.is(r.badCsum, before.badCsum, `${n}: not bad_partial_csum`);
      const got = delivered();
      const zeroed = f.slice(l4);
      zeroed.fill(0, 8, 12);
      const want = crc32cRef(zeroed);
      assert.is(new DataView(got.buffer, got.byteOffset).getUint32(l4 + 8, true), want, `${n}: CRC32c`);
      // a receiver's check: the CRC over the packet with its field zeroed equals the field
      assert.equal([...got.subarray(0, l4 + 8)], [...f.subarray(0, l4 + 8)], `${n}: headers untouched`);
      assert.equal([...got.subarray(l4 + 12)], [...f.subarray(l4 + 12)], `${n}: chunks untouched`);
    }
  });
}

test('offsets that do not name SCTP\'s CRC field stay bad_partial_csum: csum_offset 6 or 16, csum_start past the SCTP header, a packet shorter than its common header', () => {
  const f = frame(sctpPacket(100, 3));
  for (const [start, off, what] of [[34, 6, 'UDP\'s offset'], [34, 16, 'TCP\'s offset'], [38, 8, 'csum_start inside the header'], [30, 8, 'csum_start in the IP header']] as const) {
    const before = hooks.offloadDeliverForTest(new Uint8Array(60), null, 1, 1, false);
    const r = hooks.offloadDeliverForTest(f, vnet(start, off), 0, 1, false);
    assert.is(r.n, 0, `${what}: dropped`);
    assert.is(r.badCsum, before.badCsum + 1, `${what}: bad_partial_csum`);
  }
  const short = frame(new Uint8Array(10));
  const before = hooks.offloadDeliverForTest(new Uint8Array(60), null, 1, 1, false);
  assert.is(hooks.offloadDeliverForTest(short, vnet(34, 8), 0, 1, false).badCsum, before.badCsum + 1, 'no room for the common header');
});

test.run();
