/**
 * Fragmentation's cost, on node1's pipeline over in-memory I/O (bench/memory-pipeline.ts: sends
 * free, so the pipeline's own work is what is measured), in one process:
 *
 * - `fast`: pod -> VXLAN, 1,400-byte UDP packets that fit the route (1450): the path every packet
 *   takes, which fragmentation must leave as it was (one test per batch in flush);
 * - `frag`: pod -> VXLAN, 1,800-byte UDP packets without DF: cut into two fragments each
 *   (fragments/s), or, on a build without fragmentation, dropped too_big_no_df.
 *
 *   node dist/bench/fragment.js [--ms 1000] [--rounds 5] [--batch 64] [--root DIR]...
 *
 * Each --root (a built checkout; default this one) is measured in turn within every round, so a
 * before/after ratio is taken from measurements seconds apart (the machine is shared). Prints one
 * JSON line per root and case, then the medians.
 */
import * as path from 'node:path';

const args = process.argv.slice(2);
const opt = (name: string, dflt: string): string => {
  const k = args.indexOf(name);
  return k >= 0 && k + 1 < args.length ? args[k + 1] : dflt;
};
const roots: string[] = [];
for (let k = 0; k < args.length; k++) if (args[k] === '--root') roots.push(path.resolve(args[++k]));
if (roots.length === 0) roots.push(path.resolve(__dirname, '..', '..'));
const MS = Number(opt('--ms', '1000'));
const ROUNDS = Number(opt('--rounds', '5'));
const BATCH = Number(opt('--batch', '64'));

const YAML = `
apiVersion: projectcalico.org/v3
kind: IPPool
metadata: { name: p }
spec: { cidr: 10.244.0.0/16, blockSize: 26, vxlanMode: Always }
---
apiVersion: projectcalico.org/v3
kind: Node
metadata: { name: node1 }
spec: { bgp: { ipv4Address: 10.99.0.1/24 }, ipv4VXLANTunnelAddr: 10.244.0.0, vxlanTunnelMACAddr: "66:99:00:00:00:01" }
---
apiVersion: projectcalico.org/v3
kind: Node
metadata: { name: node2 }
spec: { bgp: { ipv4Address: 10.99.0.2/24 }, ipv4VXLANTunnelAddr: 10.244.0.64, vxlanTunnelMACAddr: "66:99:00:00:00:02" }
---
apiVersion: projectcalico.org/v3
kind: BlockAffinity
metadata: { name: node1-10-244-0-0-26 }
spec: { node: node1, cidr: 10.244.0.0/26, state: confirmed, deleted: "false" }
---
apiVersion: projectcalico.org/v3
kind: BlockAffinity
metadata: { name: node2-10-244-0-64-26 }
spec: { node: node2, cidr: 10.244.0.64/26, state: confirmed, deleted: "false" }
---
apiVersion: projectcalico.org/v3
kind: WorkloadEndpoint
metadata: { name: node1-k8s-a-eth0, namespace: default }
spec: { node: node1, orchestrator: k8s, endpoint: eth0, pod: a, interfaceName: caliA, ipNetworks: [10.244.0.1/32], mac: "2a:5f:10:00:01:01" }
`;

interface Built {
  pipe: any;
  pool: any;
  port: number;
  underlay: number;
  counters: any;
}

/** node1's pipeline from the build at `root` (its own modules), VXLAN to node2 resolved. */
function build(root: string): Built {
  const req = (m: string) => require(path.join(root, 'dist', m));
  const { computeNodeModel, parseClusterYaml } = req('src/control');
  const { MemoryIO } = req('src/dataplane/memory-io');
  const { FramePool } = req('src/dataplane/frame-pool');
  const { Pipeline, Role, tunnelsOf, FRAG_DESCS } = req('src/dataplane/pipeline');
  const { buildNextHops } = req('src/dataplane/nexthops');
  const counters = req('src/dataplane/counters');
  const model = computeNodeModel(parseClusterYaml(YAML, 'bench.yaml'), 'node1');
  const io = new MemoryIO();
  const frag = FRAG_DESCS ?? 0;
  const pool = new FramePool(BATCH + 8 + frag);
  io.setPool(pool);
  io.send = (_p: number, _f: number, count: number) => count;
  const pipe = new Pipeline(pool, BATCH, io);
  if (frag > 0) pipe.setFragArea(BATCH + 8);
  const port = io.openPacket('caliA', {});
  pipe.setPort(port, Role.POD_L2, 'caliA', [0x0af40001], Uint8Array.from([0x2a, 0x5f, 0x10, 0, 1, 1]), true);
  const underlay = io.openPacket('eth0', {});
  pipe.setPort(underlay, Role.UNDERLAY, 'eth0');
  pipe.underlayPort = underlay;
  const mac = Uint8Array.from([0x52, 0x54, 0, 0x99, 0, 2]);
  pipe.nh = buildNextHops(model, { portOf: (n: string) => (n === 'caliA' ? port : -1), neighbor: () => mac, nextHop: (ip: number) => ip, natToNodes: true });
  pipe.addr = { nodeIp: 0x0a630001, hasNodeIp: true, underlayMac: Uint8Array.from([0x52, 0x54, 0, 0x99, 0, 1]), knownNodes: new Set([0x0a630002]) };
  pipe.tunnels = tunnelsOf(model);
  return { pipe, pool, port, underlay, counters };
}

function podFrame(total: number): Uint8Array {
  const f = new Uint8Array(14 + total);
  f.fill(0xee, 0, 6);
  f.set([0x2a, 0x5f, 0x10, 0, 1, 1], 6);
  f[12] = 8;
  f[14] = 0x45; f[16] = total >> 8; f[17] = total & 255; f[22] = 64; f[23] = 17;
  f.set([10, 244, 0, 1, 10, 244, 0, 65], 26);
  f[34] = 0x30; f[35] = 0x39; f[36] = 0x30; f[37] = 0x3a; f[38] = (total - 20) >> 8; f[39] = (total - 20) & 255;
  let s = 0;
  for (let k = 0; k < 20; k += 2) s += (f[14 + k] << 8) | f[15 + k];
  while (s > 0xffff) s = (s & 0xffff) + (s >>> 16);
  const c = ~s & 0xffff;
  f[24] = c >> 8; f[25] = c & 255;
  return f;
}

/** Packets/s through processBatch for `ms` ms: each batch's frames written into the pool first
 * (as a receive would), then processed; returns packets/s and the fragments made. */
function measure(b: Built, frame: Uint8Array, ms: number): { pps: number; fragmentsPerS: number } {
  const { pipe, pool } = b;
  const C = b.counters;
  const fragOut = C.Event.FRAGMENTS_OUT;
  const f0 = fragOut === undefined ? 0 : pipe.counters[fragOut];
  let n = 0;
  const end = process.hrtime.bigint() + BigInt(ms) * 1_000_000n;
  const t0 = process.hrtime.bigint();
  let t = t0;
  while (t < end) {
    for (let r = 0; r < 64; r++) {
      for (let i = 0; i < BATCH; i++) {
        const at = (pool.slot[i] << 11) + 128;
        pool.bytes.set(frame, at);
        pool.off[i] = 128;
        pool.len[i] = frame.length;
        pool.flags[i] = 0;
      }
      pipe.processBatch(b.port, BATCH);
      n += BATCH;
    }
    t = process.hrtime.bigint();
  }
  const s = Number(t - t0) / 1e9;
  const made = fragOut === undefined ? 0 : pipe.counters[fragOut] - f0;
  return { pps: n / s, fragmentsPerS: made / s };
}

const builds = roots.map((r) => ({ root: r, b: build(r) }));
if (args.includes('--check')) { for (const x of builds) { measure(x.b, podFrame(1400), 50); const c = x.b.pipe.counters; const names = x.b.counters.COUNTER_NAMES; console.log(x.root, "underlay tx", x.b.pipe.portCounters[x.b.underlay * 7 + 2], JSON.stringify(Object.fromEntries([...c].flatMap((v: number, k: number) => (v ? [[names[k], v]] : []))))); } process.exit(0); }
const fast = podFrame(1400);
const big = podFrame(1800);
const res = new Map<string, number[]>();
const push = (k: string, v: number) => res.set(k, [...(res.get(k) ?? []), v]);
for (const x of builds) { measure(x.b, fast, 200); measure(x.b, big, 200); } // warm-up
for (let round = 0; round < ROUNDS; round++) {
  for (const x of builds) {
    const a = measure(x.b, fast, MS);
    const c = measure(x.b, big, MS);
    push(`${x.root} fast pps`, a.pps);
    push(`${x.root} frag pps`, c.pps);
    push(`${x.root} frag fragments/s`, c.fragmentsPerS);
    console.log(JSON.stringify({ round, root: x.root, fastPps: Math.round(a.pps), fragPps: Math.round(c.pps), fragmentsPerS: Math.round(c.fragmentsPerS) }));
  }
}
const med = (v: number[]) => [...v].sort((p, q) => p - q)[Math.floor(v.length / 2)];
for (const [k, v] of res) console.log(`${k}: median ${Math.round(med(v))} (${v.map(Math.round).join(', ')})`);
if (builds.length === 2) {
  const ratios = Array.from({ length: ROUNDS }, (_, r) => res.get(`${builds[0].root} fast pps`)![r] / res.get(`${builds[1].root} fast pps`)![r]);
  console.log(`fast path ${builds[0].root} / ${builds[1].root}: per-round ratios ${ratios.map((x) => x.toFixed(3)).join(', ')}, median ${med(ratios).toFixed(3)}`);
}
