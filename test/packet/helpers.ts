// Shared by the packet tests: scapy fixtures, a frame pool, a seeded PRNG and a table of every
// validator / decapsulator so malformed-input tests can run them all.
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as P from '../../src/packet';

export interface ScapyLayer {
  layer: string;
  fields: Record<string, unknown>;
}
export interface Fixture {
  name: string;
  description: string;
  hex: string;
  layers: ScapyLayer[];
  build?: Record<string, any>;
}

export function loadFixtures(): Fixture[] {
  // Compiled to dist/test/packet; the JSON stays in the source tree.
  const file = path.resolve(__dirname, '..', '..', '..', 'test', 'fixtures', 'scapy-frames.json');
  return JSON.parse(fs.readFileSync(file, 'utf8')).fixtures as Fixture[];
}

export function fixture(name: string): Fixture {
  const f = loadFixtures().find((x) => x.name === name);
  if (!f) throw new Error(`no fixture ${name}`);
  return f;
}

/** A pool like the addon's; returns the whole buffer. */
export function makePool(slots: number): Uint8Array {
  return new Uint8Array(slots * P.SLOT_SIZE);
}

// The packet fuzz tests (and test/dataplane) take their seeded numbers from here.
export { prng } from '../helpers/prng';

/** Writes `bytes` into slot `slot` at the headroom offset; returns that offset. */
export function place(pool: Uint8Array, slot: number, bytes: Uint8Array): number {
  const off = P.slotFrameOffset(slot);
  pool.set(bytes, off);
  return off;
}

/** Every function that takes untrusted (b, off, len). Results are numbers (reason or offset). */
export const CHECKERS: ReadonlyArray<[string, (b: Uint8Array, off: number, len: number) => number]> = [
  ['validateEthernet', P.validateEthernet],
  ['validateEthIpv4', P.validateEthIpv4],
  ['validateIpv4', P.validateIpv4],
  ['validateIpv4@14', (b, o, l) => (l < 14 ? -1 : P.validateIpv4(b, o + 14, l - 14))],
  ['validateArp@14', (b, o, l) => (l < 14 ? -1 : P.validateArp(b, o + 14, l - 14))],
  ['validateUdp', P.validateUdp],
  ['validateTcp', P.validateTcp],
  ['validateIcmp', P.validateIcmp],
  ['validateVxlan', P.validateVxlan],
  ['decapVxlan', (b, o, l) => P.decapVxlan(b, o, l, -1, P.VXLAN_PORT)],
  ['decapVxlan(vni)', (b, o, l) => P.decapVxlan(b, o, l, 4096, P.VXLAN_PORT)],
  ['decapVxlanPacket', (b, o, l) => P.decapVxlanPacket(b, o, l, -1, P.VXLAN_PORT)],
  ['decapIpip', P.decapIpip],
  ['decapIpipPacket', P.decapIpipPacket],
  ['innerFlowHash', (b, o, l) => P.innerFlowHash(b, o, l, 0x1234)],
  // Layered parse as the engine does it: Ethernet+IPv4, then L4 with the validated lengths.
  ['l4 after validateEthIpv4', (b, o, l) => {
    const r = P.validateEthIpv4(b, o, l);
    if (r !== 0) return r;
    const ip = o + 14;
    const hl = P.ipv4HeaderLength(b, ip);
    const pl = P.ipv4TotalLength(b, ip) - hl;
    const l4 = ip + hl;
    if (P.ipv4IsFragment(b, ip)) return 100;
    switch (P.ipv4Protocol(b, ip)) {
      case P.IPPROTO_UDP: {
        const ru = P.validateUdp(b, l4, pl);
        return ru !== 0 ? ru : P.udpChecksumOk(b, ip, l4) ? 0 : 200;
      }
      case P.IPPROTO_TCP: {
        const rt = P.validateTcp(b, l4, pl);
        return rt !== 0 ? rt : P.tcpChecksumOk(b, ip, l4, pl) ? 0 : 200;
      }
      case P.IPPROTO_ICMP:
        return P.validateIcmp(b, l4, pl) + (pl >= 8 ? 1000 * P.icmpType(b, l4) : 0);
      default:
        return 300;
    }
  }],
];

/**
 * Runs every checker on `frame` three ways: in a buffer that ends exactly at the frame (reads past
 * it give undefined), and followed by 0x00 and by 0xff padding inside a bigger buffer. A checker
 * that never reads past `len` gives the same answer all three times. Returns a mismatch message or null.
 */
export function checkAll(frame: Uint8Array, len: number): string | null {
  const off = 64; // frames live at an offset, never at 0
  const exact = new Uint8Array(off + len);
  exact.set(frame.subarray(0, len), off);
  const pad0 = new Uint8Array(off + len + 256);
  pad0.set(frame.subarray(0, len), off);
  const padF = new Uint8Array(off + len + 256).fill(0xff);
  padF.set(frame.subarray(0, len), off);
  for (const [name, fn] of CHECKERS) {
    const a = fn(exact, off, len);
    const z = fn(pad0, off, len);
    const f = fn(padF, off, len);
    if (typeof a !== 'number' || Number.isNaN(a) || a !== z || a !== f) return `${name}: exact=${a} pad00=${z} padff=${f} len=${len}`;
  }
  return null;
}
