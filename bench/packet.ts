// Micro-benchmark of the packet views and in-place builders over a realistic frame pool.
// Build and run:  npx tsc -p . && npm run bench:packet   (node dist/bench/packet.js)
//
// Every case processes a batch of BATCH frames per benny op, so ns/packet = time per op / BATCH.
// The naive baseline does the same parse + VXLAN encapsulation the way typical npm code does it
// (Buffer.subarray views, readUInt16BE, a fresh outer header Buffer and Buffer.concat).
import * as os from 'node:os';
import b from 'benny';
// Named imports straight from the modules, as the engine should do: the index's `export *`
// compiles to getter properties, which costs a lookup per call in CommonJS output.
import { ETHERTYPE_IPV4, writeEthernet, parseMac } from '../src/packet/ethernet';
import { HEADROOM, SLOT_SIZE, slotFrameOffset } from '../src/packet/layout';
import { ICMP_ECHO_REQUEST, icmpFillChecksum } from '../src/packet/icmp';
import {
  IPPROTO_ICMP, IPPROTO_UDP, IPV4_FLAG_DF, ipv4ComputeChecksum, ipv4DecrementTtl, ipv4Dst, ipv4Protocol, parseIpv4, writeIpv4Header,
} from '../src/packet/ipv4';
import { VXLAN_PORT, buildVxlanTemplate, encapVxlan, writeVxlanHeader } from '../src/packet/vxlan';
import { encapIpip } from '../src/packet/ipip';
import { innerFlowHash, vxlanSourcePort } from '../src/packet/flowhash';
import { validateEthIpv4 } from '../src/packet/frame';
import { writeUdpHeader } from '../src/packet/udp';
import { benchArgsOrExit } from './e2e/bench-args';

const BATCH = 256;
const POOL_SLOTS = BATCH + 1; // slot 0 holds the templates for the copyWithin variant
const pool = new Uint8Array(POOL_SLOTS * SLOT_SIZE);
const poolBuf = Buffer.from(pool.buffer, pool.byteOffset, pool.byteLength);

// A pod ping (98 bytes): Ethernet + IPv4 + ICMP echo + 56 bytes, varied per slot so hashes differ.
const FRAME_LEN = 98;
const offs = new Int32Array(BATCH);
function fillPool(): void {
  for (let i = 0; i < BATCH; i++) {
    const off = slotFrameOffset(i + 1);
    offs[i] = off;
    writeEthernet(pool, off, parseMac('ee:ee:ee:ee:ee:ee'), 0, parseMac('0a:58:0a:f4:01:05'), 0, ETHERTYPE_IPV4);
    const ip = off + 14;
    writeIpv4Header(pool, ip, 0, FRAME_LEN - 14, i, IPV4_FLAG_DF, 64, IPPROTO_ICMP, parseIpv4('10.244.1.5') + (i & 7), parseIpv4('10.244.2.7') + i);
    for (let k = 0; k < 64; k++) pool[ip + 20 + k] = k;
    pool[ip + 20] = ICMP_ECHO_REQUEST;
    icmpFillChecksum(pool, ip + 20, 64);
    if (validateEthIpv4(pool, off, FRAME_LEN) !== 0) throw new Error('bad bench frame');
  }
}
fillPool();
// IPIP encapsulation overwrites the frames' Ethernet headers, so it runs on its own copy.
const ipipPool = pool.slice();

const tpl = buildVxlanTemplate({
  outerDstMac: parseMac('52:54:00:65:43:21'),
  outerSrcMac: parseMac('52:54:00:12:34:56'),
  srcIp: parseIpv4('192.168.10.11'),
  dstIp: parseIpv4('192.168.10.12'),
  vni: 4096,
  innerDstMac: parseMac('66:b2:9f:44:55:66'),
  innerSrcMac: parseMac('66:b2:9f:11:22:33'),
});
const TPL_IN_POOL = HEADROOM; // template copy inside the pool (slot 0) for copyWithin
pool.set(tpl, TPL_IN_POOL);
const nodeSrc = parseIpv4('192.168.10.11');
const nodeDst = parseIpv4('192.168.10.12');
const SEED = 0x9e3779b9;

let sink = 0;
let ipId = 0;

// ---- alternative VXLAN template copies (the exported encapVxlan uses TypedArray#set) --------------
function encapVxlanByteLoop(bb: Uint8Array, off: number, len: number, srcPort: number, id: number): number {
  for (let i = 0; i < 62; i++) bb[off - 50 + i] = tpl[i];
  return patchVxlan(bb, off - 50, len, srcPort, id);
}

function patchVxlan(bb: Uint8Array, o: number, len: number, srcPort: number, id: number): number {
  const ip = o + 14;
  const total = len + 36;
  bb[ip + 2] = total >>> 8;
  bb[ip + 3] = total;
  bb[ip + 4] = id >>> 8;
  bb[ip + 5] = id;
  let s = (~((tpl[24] << 8) | tpl[25]) & 0xffff) + total + (id & 0xffff);
  s = (s & 0xffff) + (s >>> 16);
  s = ~((s & 0xffff) + (s >>> 16)) & 0xffff;
  bb[ip + 10] = s >>> 8;
  bb[ip + 11] = s;
  bb[ip + 20] = srcPort >>> 8;
  bb[ip + 21] = srcPort;
  const ulen = len + 16;
  bb[ip + 24] = ulen >>> 8;
  bb[ip + 25] = ulen;
  return o;
}
function encapVxlanSet(bb: Uint8Array, off: number, len: number, srcPort: number, id: number): number {
  bb.set(tpl, off - 50);
  return patchVxlan(bb, off - 50, len, srcPort, id);
}
function encapVxlanCopyWithin(bb: Uint8Array, off: number, len: number, srcPort: number, id: number): number {
  bb.copyWithin(off - 50, TPL_IN_POOL, TPL_IN_POOL + 62);
  return patchVxlan(bb, off - 50, len, srcPort, id);
}
// Template pre-split into big-endian 32-bit words, stored with DataView (unaligned stores are fine).
const poolView = new DataView(pool.buffer, pool.byteOffset, pool.byteLength);
const tplWords = new Int32Array(15);
const tplView = new DataView(tpl.buffer, tpl.byteOffset, tpl.byteLength);
for (let i = 0; i < 15; i++) tplWords[i] = tplView.getInt32(4 * i);
const tplTail = tplView.getUint16(60);
function encapVxlanDataView(bb: Uint8Array, off: number, len: number, srcPort: number, id: number): number {
  const o = off - 50;
  const dv = poolView;
  for (let i = 0; i < 15; i++) dv.setInt32(o + 4 * i, tplWords[i]);
  dv.setUint16(o + 60, tplTail);
  return patchVxlan(bb, o, len, srcPort, id);
}
/** No template: every outer field written from numbers. */
function encapVxlanFields(bb: Uint8Array, off: number, len: number, srcPort: number, id: number): number {
  const o = off - 50;
  for (let i = 0; i < 6; i++) {
    bb[o + i] = tpl[i];
    bb[o + 6 + i] = tpl[6 + i];
    bb[off + i] = tpl[50 + i];
    bb[off + 6 + i] = tpl[56 + i];
  }
  bb[o + 12] = 0x08;
  bb[o + 13] = 0;
  writeIpv4Header(bb, o + 14, 0, len + 36, id, 0, 64, IPPROTO_UDP, nodeSrc, nodeDst);
  writeUdpHeader(bb, o + 34, srcPort, VXLAN_PORT, len + 16);
  writeVxlanHeader(bb, o + 42, 4096);
  return o;
}

// ---- naive baseline -------------------------------------------------------------------------------

function naiveParseEncap(frame: Buffer): Buffer | null {
  if (frame.length < 14 || frame.readUInt16BE(12) !== 0x0800) return null;
  const ip = frame.subarray(14);
  if (ip.length < 20 || ip[0] >> 4 !== 4) return null;
  const hl = (ip[0] & 15) * 4;
  const total = ip.readUInt16BE(2);
  if (hl < 20 || total < hl || total > ip.length) return null;
  let s = 0;
  for (let i = 0; i < hl; i += 2) s += ip.readUInt16BE(i);
  while (s > 0xffff) s = (s & 0xffff) + (s >>> 16);
  if (s !== 0xffff) return null;
  const src = ip.readUInt32BE(12);
  const dst = ip.readUInt32BE(16);
  const outer = Buffer.alloc(50);
  tpl.subarray(0, 12).forEach((v, i) => (outer[i] = v));
  outer.writeUInt16BE(0x0800, 12);
  outer.writeUInt8(0x45, 14);
  outer.writeUInt16BE(frame.length + 36, 16);
  outer.writeUInt16BE(ipId++ & 0xffff, 18);
  outer.writeUInt8(64, 22);
  outer.writeUInt8(17, 23);
  outer.writeUInt32BE(nodeSrc, 26);
  outer.writeUInt32BE(nodeDst, 30);
  let c = 0;
  for (let i = 14; i < 34; i += 2) c += outer.readUInt16BE(i);
  while (c > 0xffff) c = (c & 0xffff) + (c >>> 16);
  outer.writeUInt16BE(~c & 0xffff, 24);
  outer.writeUInt16BE(32768 + ((src ^ dst) % 28231), 34);
  outer.writeUInt16BE(4789, 36);
  outer.writeUInt16BE(frame.length + 16, 38);
  outer.writeUInt32BE(0x08000000, 42);
  outer.writeUInt32BE(4096 << 8, 46);
  return Buffer.concat([outer, frame]);
}

// ---- cases ----------------------------------------------------------------------------------------

type Case = [string, () => void];
const cases: Case[] = [
  ['parse+validate Eth+IPv4', () => {
    let acc = 0;
    for (let i = 0; i < BATCH; i++) {
      const off = offs[i];
      if (validateEthIpv4(pool, off, FRAME_LEN) === 0) acc += ipv4Dst(pool, off + 14) + ipv4Protocol(pool, off + 14);
    }
    sink += acc;
  }],
  ['full IPv4 header checksum', () => {
    let acc = 0;
    for (let i = 0; i < BATCH; i++) acc += ipv4ComputeChecksum(pool, offs[i] + 14);
    sink += acc;
  }],
  ['incremental TTL decrement', () => {
    let acc = 0;
    for (let i = 0; i < BATCH; i++) acc += ipv4DecrementTtl(pool, offs[i] + 14);
    sink += acc;
  }],
  ['IPIP encap in place', () => {
    let acc = 0;
    for (let i = 0; i < BATCH; i++) {
      const off = offs[i];
      acc += encapIpip(ipipPool, off + 14, FRAME_LEN - 14, nodeSrc, nodeDst, 64, (ipId++ & 0xffff));
    }
    sink += acc;
  }],
  ['VXLAN encap (encapVxlan: template, TypedArray#set)', () => {
    let acc = 0;
    for (let i = 0; i < BATCH; i++) acc += encapVxlan(pool, offs[i], FRAME_LEN, tpl, 40000 + i, ipId++ & 0xffff);
    sink += acc;
  }],
  ['VXLAN encap (template, byte loop)', () => {
    let acc = 0;
    for (let i = 0; i < BATCH; i++) acc += encapVxlanByteLoop(pool, offs[i], FRAME_LEN, 40000 + i, ipId++ & 0xffff);
    sink += acc;
  }],
  ['VXLAN encap (template, TypedArray#set, bench copy)', () => {
    let acc = 0;
    for (let i = 0; i < BATCH; i++) acc += encapVxlanSet(pool, offs[i], FRAME_LEN, 40000 + i, ipId++ & 0xffff);
    sink += acc;
  }],
  ['VXLAN encap (template in pool, copyWithin)', () => {
    let acc = 0;
    for (let i = 0; i < BATCH; i++) acc += encapVxlanCopyWithin(pool, offs[i], FRAME_LEN, 40000 + i, ipId++ & 0xffff);
    sink += acc;
  }],
  ['VXLAN encap (template words, DataView)', () => {
    let acc = 0;
    for (let i = 0; i < BATCH; i++) acc += encapVxlanDataView(pool, offs[i], FRAME_LEN, 40000 + i, ipId++ & 0xffff);
    sink += acc;
  }],
  ['VXLAN encap (no template, field writes)', () => {
    let acc = 0;
    for (let i = 0; i < BATCH; i++) acc += encapVxlanFields(pool, offs[i], FRAME_LEN, 40000 + i, ipId++ & 0xffff);
    sink += acc;
  }],
  ['flow hash + source port', () => {
    let acc = 0;
    for (let i = 0; i < BATCH; i++) acc += vxlanSourcePort(innerFlowHash(pool, offs[i], FRAME_LEN, SEED));
    sink += acc;
  }],
  ['parse + TTL + hash + VXLAN encap (fast path)', () => {
    let acc = 0;
    for (let i = 0; i < BATCH; i++) {
      const off = offs[i];
      if (validateEthIpv4(pool, off, FRAME_LEN) !== 0) throw new Error('frame failed validation');
      ipv4DecrementTtl(pool, off + 14);
      const port = vxlanSourcePort(innerFlowHash(pool, off, FRAME_LEN, SEED));
      acc += encapVxlan(pool, off, FRAME_LEN, tpl, port, ipId++ & 0xffff);
    }
    sink += acc;
  }],
  ['naive baseline: Buffer parse + concat encap', () => {
    let acc = 0;
    for (let i = 0; i < BATCH; i++) {
      const off = offs[i];
      const out = naiveParseEncap(poolBuf.subarray(off, off + FRAME_LEN));
      if (out) acc += out.length;
    }
    sink += acc;
  }],
];

function cpuModel(): string {
  const c = os.cpus();
  return c.length ? `${c[0].model} (${c.length} logical CPUs)` : 'unknown CPU';
}

async function main(): Promise<void> {
  // Optional filter: node dist/bench/packet.js 'VXLAN|naive'
  // one optional argument, a case filter; --help (or any option) answers with the usage, not a filter
  const argv = process.argv.slice(2);
  if (argv.length > 1 || argv[0]?.startsWith('-')) benchArgsOrExit(argv, { usage: "usage: node dist/bench/packet.js [CASE_REGEX]   (e.g. 'VXLAN|naive')", flags: [], options: [] });
  const filter = process.argv[2] ? new RegExp(process.argv[2], 'i') : null;
  const selected = cases.filter(([name]) => !filter || filter.test(name));
  const nsPerPacket = new Map<string, number>();
  await b.suite(
    `podway packet views, batch of ${BATCH} frames per op`,
    ...selected.map(([name, fn]) => b.add(name, fn)),
    b.cycle(),
    b.complete((summary) => {
      for (const r of summary.results) nsPerPacket.set(r.name, (r.details.mean * 1e9) / BATCH);
    }),
  );
  console.log(`\nmachine: ${cpuModel()}, Node ${process.version}, ${os.platform()} ${os.arch()}`);
  console.log('ns/packet:');
  for (const [name, ns] of nsPerPacket) console.log(`  ${name.padEnd(52)} ${ns.toFixed(2).padStart(8)}`);
  const fast = nsPerPacket.get('parse + TTL + hash + VXLAN encap (fast path)');
  const naive = nsPerPacket.get('naive baseline: Buffer parse + concat encap');
  if (fast !== undefined && naive !== undefined) console.log(`naive / fast path: ${(naive / fast).toFixed(1)}x  (goal: fast path < 30 ns/packet: ${fast < 30 ? 'met' : 'NOT met'})`);
  if (sink === 42) console.log('');
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
