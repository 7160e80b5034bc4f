// Random bytes and random mutations of the scapy fixtures through every validator / decapsulator:
// no exception, no read past `len` (checkAll compares runs with different bytes after the frame),
// no hang (bounded case count and a time budget), and an OK verdict implies in-bounds lengths.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import * as P from '../../src/packet';
import { checkAll, loadFixtures, prng } from './helpers';

const CASES = Number(process.env.PODWAY_FUZZ_CASES ?? 200_000);
const BUDGET_MS = Number(process.env.PODWAY_FUZZ_MS ?? 60_000);
const frames = loadFixtures().map((f) => P.fromHex(f.hex));

function invariants(b: Uint8Array, len: number): string | null {
  if (P.validateEthIpv4(b, 0, len) === P.Drop.OK) {
    const total = P.ipv4TotalLength(b, 14);
    const hl = P.ipv4HeaderLength(b, 14);
    if (hl < 20 || hl > total || 14 + total > len) return `validateEthIpv4 OK but hl=${hl} total=${total} len=${len}`;
  }
  const v = P.decapVxlan(b, 0, len, -1, P.VXLAN_PORT);
  if (v >= 0 && v + P.vxlanInnerLength(b, v) > len) return `decapVxlan inner frame beyond len`;
  if (v >= 0 && P.vxlanInnerLength(b, v) < 14) return `decapVxlan inner frame shorter than Ethernet`;
  const i = P.decapIpip(b, 0, len);
  if (i >= 0 && i + P.ipv4TotalLength(b, i) > len) return `decapIpip inner datagram beyond len`;
  return null;
}

test(`fuzz: ${CASES} random and mutated frames`, () => {
  const rnd = prng(0xc0ffee);
  const buf = new Uint8Array(2048);
  const t0 = Date.now();
  let n = 0;
  let accepted = 0;
  for (; n < CASES; n++) {
    if ((n & 1023) === 0 && Date.now() - t0 > BUDGET_MS) break;
    let len: number;
    const mode = n % 4;
    if (mode === 0) {
      // Pure noise, but mostly with an IPv4 ethertype and version nibble so it gets past the first checks.
      len = Math.floor(rnd() * 200);
      for (let k = 0; k < len; k++) buf[k] = (rnd() * 256) | 0;
      if (len > 14 && rnd() < 0.8) { buf[12] = 0x08; buf[13] = 0x00; buf[14] = 0x40 | (buf[14] & 0x0f); }
    } else {
      const src = frames[(rnd() * frames.length) | 0];
      len = src.length;
      buf.set(src);
      const flips = 1 + ((rnd() * 4) | 0);
      for (let k = 0; k < flips; k++) {
        const at = (rnd() * len) | 0;
        if (mode === 1) buf[at] ^= 1 << ((rnd() * 8) | 0);
        else buf[at] = (rnd() * 256) | 0;
      }
      // Keep header checksums valid half of the time so the deeper checks get exercised.
      if (mode === 3 && len >= 34 && (buf[14] >>> 4) === 4 && (buf[14] & 15) >= 5 && 14 + ((buf[14] & 15) << 2) <= len) {
        P.ipv4FillChecksum(buf, 14);
        if (len >= 68 && buf[23] === 17) P.ipv4FillChecksum(buf, 48); // inner header of a VXLAN frame? harmless otherwise
      }
      if (rnd() < 0.3) len = (rnd() * len) | 0;
    }
    let err: string | null;
    try {
      err = checkAll(buf, len) ?? invariants(buf, len);
    } catch (e) {
      err = `threw ${(e as Error).message}`;
    }
    if (err) assert.unreachable(`case ${n} (mode ${mode}, ${P.toHex(buf, 0, len)}): ${err}`);
    if (P.validateEthIpv4(buf, 0, len) === 0) accepted++;
  }
  assert.ok(n >= Math.min(CASES, 20_000), `ran only ${n} cases within ${BUDGET_MS} ms`);
  assert.ok(accepted > 0, 'some mutated frames still validate, so deep paths ran');
  console.log(`  fuzz: ${n} cases in ${Date.now() - t0} ms, ${accepted} passed Ethernet+IPv4 validation`);
});

test.run();
