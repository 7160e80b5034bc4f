// What `podway capture` costs the forwarding pipeline (issue 17's goals: a capture whose filter
// matches nothing >= 0.98x of no capture; one matching 1% of the packets >= 0.9x).
// Build and run:  npx tsc -p . && npm run bench:capture   (node dist/bench/capture.js)
//
// One node's pipeline on in-memory I/O (sends are free here, so the ratios are of the JS path
// alone, the worst case for capture: on a real node syscalls dilute it). Batches of 256 64-byte
// UDP frames between two local veth pods; the variants alternate in rounds so drift hits them alike.
import { HEADROOM } from '../src/dataplane/frame-pool';
import { buildNextHops } from '../src/dataplane/nexthops';
import { CaptureTap, Stage } from '../src/dataplane/capture';
import { parseTraceFilter } from '../src/dataplane/trace';
import { writeEthernet, parseMac, ETHERTYPE_IPV4 } from '../src/packet/ethernet';
import { writeIpv4Header, parseIpv4, IPPROTO_UDP, IPV4_FLAG_DF } from '../src/packet/ipv4';
import { writeUdpHeader } from '../src/packet/udp';
import { benchArgsOrExit } from './e2e/bench-args';
import { memoryPipeline } from './memory-pipeline';
import { median } from './stats';

const BATCH = 256;
const FRAME_LEN = 64;
const YAML = `
apiVersion: projectcalico.org/v3
kind: IPPool
metadata: { name: pool }
spec: { cidr: 10.244.0.0/16, blockSize: 26, vxlanMode: Always, ipipMode: Never }
---
apiVersion: projectcalico.org/v3
kind: Node
metadata: { name: node1 }
spec: { bgp: { ipv4Address: 10.99.0.1/24 }, ipv4VXLANTunnelAddr: 10.244.0.0, vxlanTunnelMACAddr: "66:99:00:00:00:01" }
---
apiVersion: projectcalico.org/v3
kind: BlockAffinity
metadata: { name: node1-10-244-0-0-26 }
spec: { node: node1, cidr: 10.244.0.0/26, state: confirmed, deleted: "false" }
${[1, 2].map((k) => `---
apiVersion: projectcalico.org/v3
kind: WorkloadEndpoint
metadata: { name: node1-k8s-pod${k}-eth0, namespace: default }
spec: { node: node1, pod: pod${k}, interfaceName: cali${k}, ipNetworks: [10.244.0.${k}/32], mac: "2a:5f:10:00:01:0${k}" }
`).join('')}`;

// sends are free (memory-pipeline.ts): the pipeline's own work is what is measured
const { model, pool, pipe, ports } = memoryPipeline(YAML, BATCH);
pipe.nh = buildNextHops(model, { portOf: (n) => ports.get(n) ?? -1, neighbor: () => undefined, nextHop: (ip) => ip });
pipe.addr = { nodeIp: model.node.ip!, hasNodeIp: true, underlayMac: parseMac('52:54:00:99:00:01'), knownNodes: new Set() };
const inPort = ports.get('cali1')!;

// Pod 1 -> pod 2, one flow per frame; every 100th frame goes to port 9999 (the 1% filter).
const frames: Uint8Array[] = [];
for (let i = 0; i < BATCH; i++) {
  const f = new Uint8Array(FRAME_LEN);
  writeEthernet(f, 0, parseMac('ee:ee:ee:ee:ee:ee'), 0, parseMac('2a:5f:10:00:01:01'), 0, ETHERTYPE_IPV4);
  writeIpv4Header(f, 14, 0, FRAME_LEN - 14, i, IPV4_FLAG_DF, 64, IPPROTO_UDP, parseIpv4('10.244.0.1'), parseIpv4('10.244.0.2'));
  writeUdpHeader(f, 34, 40000 + i, i % 100 === 0 ? 9999 : 7000, FRAME_LEN - 34);
  frames.push(f);
}
// About 1% of all frames over many batches: 3 of 256 per batch (1.2%).
function load(): void {
  for (let i = 0; i < BATCH; i++) {
    pool.off[i] = HEADROOM;
    pool.len[i] = FRAME_LEN;
    pool.flags[i] = 0;
    pool.bytes.set(frames[i], pool.start(i));
  }
}

interface Variant { name: string; tap: () => CaptureTap | null }
const tap = (words: string[], stage: number) => () => new CaptureTap({ filter: parseTraceFilter(words), stage, count: Number.MAX_SAFE_INTEGER }, BATCH);
const variants: Variant[] = [
  { name: 'no capture', tap: () => null },
  { name: 'capture matching nothing (rx, port 1)', tap: tap(['port', '1'], Stage.RX) },
  { name: 'capture matching nothing (rx, host 10.1.2.3)', tap: tap(['host', '10.1.2.3'], Stage.RX) },
  { name: 'capture matching 1% (rx, port 9999)', tap: tap(['port', '9999'], Stage.RX) },
  { name: 'capture matching 1% (tx, port 9999)', tap: tap(['port', '9999'], Stage.TX) },
  { name: 'capture matching 1% (drop stage: none dropped)', tap: tap(['port', '9999'], Stage.DROP) },
];

function run(v: Variant, ms: number): number {
  const t = v.tap();
  pipe.capture = t;
  let packets = 0;
  const end = performance.now() + ms;
  // CPU time, not wall time: on a shared machine the wall clock counts other processes' turns.
  const c0 = process.cpuUsage();
  while (performance.now() < end) {
    for (let k = 0; k < 64; k++) {
      load();
      pipe.processBatch(inPort, BATCH);
      packets += BATCH;
    }
    // The engine hands records on every 20 ms; here every 64 batches.
    if (t) t.take();
  }
  const c = process.cpuUsage(c0);
  const pps = packets / ((c.user + c.system) / 1e6);
  pipe.capture = null;
  return pps;
}

// no options (ROUNDS and MS come from the environment): --help answers with the usage, anything else exits 2
benchArgsOrExit(process.argv.slice(2), { usage: 'usage: [ROUNDS=5] [MS=600] node dist/bench/capture.js', flags: [], options: [] });
const ROUNDS = Number(process.env.ROUNDS ?? 5);
const MS = Number(process.env.MS ?? 600);
const results = variants.map(() => [] as number[]);
for (const v of variants) run(v, 200); // warm up every path
for (let r = 0; r < ROUNDS; r++) variants.forEach((v, k) => results[k].push(run(v, MS)));
const base = median(results[0]);
console.log(`pipeline with capture, ${BATCH}-frame batches of ${FRAME_LEN}-byte UDP pod to pod, packets per CPU second, median of ${ROUNDS} x ${MS} ms (load() refills the frames each batch in every variant)`);
for (const [k, v] of variants.entries()) {
  const m = median(results[k]);
  console.log(`${v.name.padEnd(48)} ${(m / 1e6).toFixed(2)} Mpps  ${(m / base).toFixed(3)}x`);
}
