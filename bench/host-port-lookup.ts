/**
 * The host-port look-up the pipelines do for each pod packet while the node has host ports
 * (Pipeline.fromHostPortSource, Pipeline6.fromHostPortSource), 20 M times: `old`, the number key
 * hostPortKey(address, protocol, port) in a Set (2ce3186, 6071679; above the small-integer range,
 * boxed per call), against `new`, nat.ts HostPortSources (typed arrays). Run it under --trace-gc and
 * count the scavenges:
 *
 *   npx tsc -p . && node --trace-gc dist/bench/host-port-lookup.js new|old 4|6 [hit|miss] | grep -c Scavenge
 *
 * `hit`: the packet's source is a pod with host ports (1 in 128 of the ports one of them); `miss`:
 * another pod of the node.
 */
import { HostPortSources } from '../src/dataplane/nat';

const mode = process.argv[2] ?? 'new';
const fam = Number(process.argv[3] ?? 4);
const kind = process.argv[4] ?? 'hit';
const N = 20_000_000;
const b = new Uint8Array(64);
const v6 = new Uint8Array(16);
v6.set([0xfd, 0, 0x02, 0x48]);
v6[15] = 5;
const ip = fam === 4 ? Uint8Array.of(10, 248, 0, 5) : v6;
b.set(ip, 8);
if (kind === 'miss') b[fam === 4 ? 11 : 23] = 9;
const list = [{ ip, proto: 6, port: 8080 }, { ip, proto: 17, port: 8081 }];

// the replaced look-up, as it was
function hostPortKey(a: number, proto: number, port: number): number {
  return (a >>> 0) * 131072 + (proto === 17 ? 65536 : 0) + (port & 0xffff);
}
function fold6(x: Uint8Array, o: number): number {
  let r = 0;
  for (let k = 0; k < 16; k += 4) r ^= (x[o + k] << 24) | (x[o + k + 1] << 16) | (x[o + k + 2] << 8) | x[o + k + 3];
  return r >>> 0;
}
const word4 = (x: Uint8Array, o: number) => ((x[o] << 24) | (x[o + 1] << 16) | (x[o + 2] << 8) | x[o + 3]) >>> 0;
const oldSet = new Set(list.map((e) => hostPortKey(fam === 4 ? word4(e.ip, 0) : fold6(e.ip, 0), e.proto, e.port)));
const table = new HostPortSources(fam === 4 ? 4 : 16);
table.set(list);

let hits = 0;
const t0 = process.hrtime.bigint();
if (mode === 'old') {
  for (let i = 0; i < N; i++) {
    const src = fam === 4 ? word4(b, 8) : fold6(b, 8);
    if (oldSet.has(hostPortKey(src, 6, 8000 + (i & 127)))) hits++;
  }
} else {
  for (let i = 0; i < N; i++) if (table.has(b, 8, 6, 8000 + (i & 127))) hits++;
}
const ms = Number(process.hrtime.bigint() - t0) / 1e6;
process.stdout.write(`${mode} IPv${fam} ${kind}: ${N} look-ups, ${hits} hits, ${ms.toFixed(0)} ms, ${((ms * 1e6) / N).toFixed(1)} ns each\n`);
