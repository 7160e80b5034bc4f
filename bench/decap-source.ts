// Micro-benchmark of the source checks on decapsulated IPv4 (pipeline.ts deliverDecapsulated:
// martian_src, own_source, reverse_path): what they cost per packet inside a VXLAN receive batch and
// on their own, against a naive version of the same checks in the same run.
// Build and run:  npx tsc -p . && flock /tmp/pw-bench.lock node dist/bench/decap-source.js
//
// Every case handles a batch of BATCH packets per benny op, so ns/packet = time per op / BATCH.
// - 'pipeline: vxlan decap -> pod, rp_filter N': Pipeline.processBatch on a VXLAN socket batch
//   (node2's pods -> a pod here), the whole receive path including the source checks (each rp_filter
//   case runs twice, alternating, to tell the setting's cost from the order's).
// - 'source check alone': what deliverDecapsulated adds for the source: isMartianSrc4, the node's
//   addresses, LocalSet4.has, one FIB lookup and the strict reverse-path compare.
// - 'FIB lookup alone': the lookup that check makes, for its share.
// - 'naive baseline': the same verdicts the way typical code gets them: the address formatted as a
//   dotted string, martians by prefix tests on it, own addresses in a Set of strings, and the routes
//   scanned in order, each CIDR string parsed per packet.
import * as os from 'node:os';
import b from 'benny';
import { HEADROOM } from '../src/dataplane/frame-pool';
import { Role, Tunnel } from '../src/dataplane/pipeline';
import { buildNextHops, NhKind } from '../src/dataplane/nexthops';
import { NO_ROUTE } from '../src/lpm/constants';
import { isMartianSrc4 } from '../src/packet/martian';
import { writeEthernet, parseMac, ETHERTYPE_IPV4 } from '../src/packet/ethernet';
import { writeIpv4Header, parseIpv4, formatIpv4, IPPROTO_UDP } from '../src/packet/ipv4';
import { writeUdpHeader } from '../src/packet/udp';
import { benchArgsOrExit } from './e2e/bench-args';
import { memoryPipeline } from './memory-pipeline';

const BATCH = 256;
const INNER = 64; // inner Ethernet frame
const VX_LEN = 8 + INNER;
const VTEP1 = '66:99:00:00:00:01';
const blocks = (node: string, base: number) => Array.from({ length: 8 }, (_, k) => `---
apiVersion: projectcalico.org/v3
kind: BlockAffinity
metadata: { name: ${node}-10-244-${base + k}-0-26 }
spec: { node: ${node}, cidr: 10.244.${base + k}.0/26, state: confirmed, deleted: "false" }
`).join('');
const nodes = [2, 3, 4, 5].map((n) => `---
apiVersion: projectcalico.org/v3
kind: Node
metadata: { name: node${n} }
spec: { bgp: { ipv4Address: 10.99.0.${n}/24 }, ipv4VXLANTunnelAddr: 10.244.${n * 8}.0, vxlanTunnelMACAddr: "66:99:00:00:00:0${n}" }
${blocks(`node${n}`, n * 8)}`).join('');
const YAML = `
apiVersion: projectcalico.org/v3
kind: IPPool
metadata: { name: pool }
spec: { cidr: 10.244.0.0/16, blockSize: 26, vxlanMode: Always, ipipMode: Never }
---
apiVersion: projectcalico.org/v3
kind: Node
metadata: { name: node1 }
spec: { bgp: { ipv4Address: 10.99.0.1/24 }, ipv4VXLANTunnelAddr: 10.244.0.0, vxlanTunnelMACAddr: "${VTEP1}" }
${blocks('node1', 0)}${nodes}${[1, 2].map((k) => `---
apiVersion: projectcalico.org/v3
kind: WorkloadEndpoint
metadata: { name: node1-k8s-pod${k}-eth0, namespace: default }
spec: { node: node1, pod: pod${k}, interfaceName: cali${k}, ipNetworks: [10.244.0.${k}/32], mac: "2a:5f:10:00:01:0${k}" }
`).join('')}`;

// sends are free (memory-pipeline.ts): the pipeline's own work is what is measured
const { model, io, pool, pipe, ports } = memoryPipeline(YAML, BATCH);
const vxPort = io.openUdp({ port: 4789 });
pipe.setPort(vxPort, Role.VXLAN_RX, 'vxlan');
pipe.tunnels = Tunnel.VXLAN;
pipe.nh = buildNextHops(model, { portOf: (n) => ports.get(n) ?? -1, neighbor: () => undefined, nextHop: (ip) => ip });
const node2 = parseIpv4('10.99.0.2');
pipe.addr = { nodeIp: model.node.ip!, hasNodeIp: true, underlayMac: parseMac('52:54:00:99:00:01'), knownNodes: new Set(model.node.knownNodeIps), vxlanTunnelIp: parseIpv4('10.244.0.0') };
pipe.local4.set(['10.99.0.1', '172.17.0.1', '192.168.122.1']);

// sources: pods of the other nodes' blocks, spread over them (all pass every check)
const srcs = new Uint32Array(BATCH);
for (let i = 0; i < BATCH; i++) srcs[i] = (parseIpv4(`10.244.${16 + (i % 32)}.0`) + 1 + (i % 60)) >>> 0;
const vtep1 = parseMac(VTEP1);
const frames: Uint8Array[] = [];
for (let i = 0; i < BATCH; i++) {
  const f = new Uint8Array(VX_LEN);
  f[0] = 0x08;
  f[4] = 0x00; f[5] = 0x10; f[6] = 0x00; // VNI 4096
  writeEthernet(f, 8, vtep1, 0, parseMac('66:99:00:00:00:02'), 0, ETHERTYPE_IPV4);
  writeIpv4Header(f, 22, 0, INNER - 14, i, 0, 64, IPPROTO_UDP, srcs[i], parseIpv4('10.244.0.1') + (i & 1));
  writeUdpHeader(f, 42, 40000 + i, 7000, INNER - 34);
  f[48] = 0; f[49] = 0; // UDP checksum 0: nothing to complete
  frames.push(f);
}
function load(): void {
  for (let i = 0; i < BATCH; i++) {
    pool.off[i] = HEADROOM;
    pool.len[i] = VX_LEN;
    pool.flags[i] = 0;
    pool.addr[i] = node2;
    pool.bytes.set(frames[i], pool.start(i));
  }
}
// check once that the batch is delivered, not dropped
load();
pipe.rpFilter = 1;
pipe.processBatch(vxPort, BATCH);
{
  const drops = pipe.counters.reduce((s, v) => s + v, 0);
  if (drops !== 0) throw new Error(`bench batch not delivered: ${pipe.counters.findIndex((v) => v !== 0)} counted`);
}

let sink = 0;
function sourceCheck(rp: number): void {
  const a = pipe.addr;
  const nhs = pipe.nh;
  for (let i = 0; i < BATCH; i++) {
    const src = srcs[i];
    if (isMartianSrc4(src)) { sink++; continue; }
    if ((src === a.nodeIp && a.hasNodeIp) || src === a.vxlanTunnelIp || pipe.local4.has(src)) { sink++; continue; }
    const nh = nhs.fib.lookup(src);
    const kind = nh === NO_ROUTE ? 0 : nhs.kind[nh];
    if (kind === NhKind.LOCAL || kind === NhKind.HOST || kind === NhKind.BLACKHOLE) { sink++; continue; }
    if (rp === 1 && kind !== NhKind.VXLAN) sink++;
  }
}
function lookupOnly(): void {
  const fib = pipe.nh.fib;
  for (let i = 0; i < BATCH; i++) sink += fib.lookup(srcs[i]);
}
// the naive way: strings and a scan of the routes in model order
const ownSet = new Set(['10.99.0.1', '10.244.0.0', '172.17.0.1', '192.168.122.1']);
const routeList = pipe.nh.routes.map((r, k) => ({ cidr: r.cidr, kind: pipe.nh.kind[k] }));
function naive(): void {
  for (let i = 0; i < BATCH; i++) {
    const s = formatIpv4(srcs[i]);
    if (s === '0.0.0.0' || s.startsWith('127.') || s === '255.255.255.255' || (Number(s.split('.')[0]) >= 224 && Number(s.split('.')[0]) < 240)) { sink++; continue; }
    if (ownSet.has(s)) { sink++; continue; }
    let best = -1;
    let kind = 0;
    for (const r of routeList) {
      const [net, len] = r.cidr.split('/');
      const bits = Number(len);
      const mask = bits === 0 ? 0 : (0xffffffff << (32 - bits)) >>> 0;
      if (((parseIpv4(s) & mask) >>> 0) === ((parseIpv4(net) & mask) >>> 0) && bits > best) { best = bits; kind = r.kind; }
    }
    if (kind === NhKind.LOCAL || kind === NhKind.HOST || kind === NhKind.BLACKHOLE || kind !== NhKind.VXLAN) sink++;
  }
}
function pipeline(rp: number): () => void {
  return () => {
    pipe.rpFilter = rp;
    load();
    pipe.processBatch(vxPort, BATCH);
  };
}

const cases: Array<[string, () => void]> = [
  ['pipeline: vxlan decap -> pod, rp_filter 1', pipeline(1)],
  ['pipeline: vxlan decap -> pod, rp_filter 0', pipeline(0)],
  // the first case runs first (a colder start): the same again shows what the order costs
  ['pipeline: vxlan decap -> pod, rp_filter 1 again', pipeline(1)],
  ['pipeline: vxlan decap -> pod, rp_filter 0 again', pipeline(0)],
  ['source check alone (strict)', () => sourceCheck(1)],
  ['FIB lookup alone', lookupOnly],
  ['naive baseline: strings + route scan', naive],
];

function cpuModel(): string {
  const c = os.cpus();
  return c.length ? `${c[0].model} (${c.length} logical CPUs)` : 'unknown CPU';
}

async function main(): Promise<void> {
  const argv = process.argv.slice(2);
  if (argv.length > 1 || argv[0]?.startsWith('-')) benchArgsOrExit(argv, { usage: "usage: node dist/bench/decap-source.js [CASE_REGEX]   (e.g. 'alone|naive')", flags: [], options: [] });
  const filter = argv[0] ? new RegExp(argv[0], 'i') : null;
  const selected = cases.filter(([name]) => !filter || filter.test(name));
  const nsPerPacket = new Map<string, number>();
  await b.suite(
    `decapsulated source checks, batch of ${BATCH} packets per op, ${pipe.nh.routes.length} routes`,
    ...selected.map(([name, fn]) => b.add(name, fn)),
    b.cycle(),
    b.complete((summary) => {
      for (const r of summary.results) nsPerPacket.set(r.name, (r.details.mean * 1e9) / BATCH);
    }),
  );
  console.log(`\nmachine: ${cpuModel()}, Node ${process.version}, ${os.platform()} ${os.arch()}, load ${os.loadavg().map((x) => x.toFixed(2)).join(' ')}; ${pipe.nh.routes.length} routes`);
  console.log('ns/packet:');
  for (const [name, ns] of nsPerPacket) console.log(`  ${name.padEnd(44)} ${ns.toFixed(2).padStart(8)}`);
  const check = nsPerPacket.get('source check alone (strict)');
  const nv = nsPerPacket.get('naive baseline: strings + route scan');
  if (check !== undefined && nv !== undefined) console.log(`naive / source check: ${(nv / check).toFixed(1)}x`);
  if (sink === 42) console.log('');
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
