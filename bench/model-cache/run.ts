/**
 * What `podway run`'s model cache (src/cli/model-cache.ts) costs its forwarding thread: the JSON
 * encoding of one write runs there (the file work, fsync included, does not), at most once per
 * 10 s; and what reading it back at a start on the cache takes. Models of one node with N local
 * endpoints in a 200-node cluster. Usage: node dist/bench/model-cache/run.js [--pods 100,1000,4000]
 * (run it under `flock /tmp/pw-bench.lock`, bench/README.md).
 */
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { computeNodeModel } from '../../src/control';
import { parseClusterYaml } from '../../src/control/snapshot';
import { readModelCache, writeModelCache } from '../../src/cli/model-cache';
import { median } from '../stats';

const NODES = 200;
const RUNS = 9;

function clusterYaml(pods: number): string {
  const docs = ['apiVersion: projectcalico.org/v3\nkind: IPPool\nmetadata: {name: p}\nspec: {cidr: 10.0.0.0/8, blockSize: 26, vxlanMode: Always}'];
  for (let n = 0; n < NODES; n++) {
    docs.push(`apiVersion: projectcalico.org/v3\nkind: Node\nmetadata: {name: n${n}}\nspec: {bgp: {ipv4Address: 192.168.${n >> 8}.${(n & 255) + 1}/16}, ipv4VXLANTunnelAddr: 10.${n}.0.0}`,
      `apiVersion: projectcalico.org/v3\nkind: BlockAffinity\nmetadata: {name: n${n}-b}\nspec: {node: n${n}, cidr: 10.${n}.0.0/26, state: confirmed}`);
  }
  for (let i = 0; i < pods; i++) docs.push(`apiVersion: projectcalico.org/v3\nkind: WorkloadEndpoint\nmetadata: {name: n0-k8s-p${i}-eth0, namespace: default}\nspec: {node: n0, orchestrator: k8s, endpoint: eth0, pod: p${i}, interfaceName: calip${i}, ipNetworks: [10.0.${i >> 8}.${i & 255}/32]}`);
  return docs.join('\n---\n');
}


async function main(): Promise<void> {
  const at = process.argv.indexOf('--pods');
  const sizes = (at > 0 ? process.argv[at + 1] : '100,1000,4000').split(',').map(Number);
  const dir = mkdtempSync(path.join(tmpdir(), 'podway-bench-model-cache-'));
  try {
    for (const pods of sizes) {
      const model = computeNodeModel(parseClusterYaml(clusterYaml(pods), 'bench.yaml'), 'n0');
      const file = path.join(dir, 'n0.model.json');
      const onThread: number[] = [];
      const reads: number[] = [];
      for (let k = 0; k < RUNS; k++) {
        const t0 = performance.now();
        const written = writeModelCache(file, 'n0', 'etcd:bench', model, new Date(), { uid: 'bench', createRevision: 1 });
        onThread.push(performance.now() - t0);
        await written;
        const t1 = performance.now();
        const r = readModelCache(file, 'n0', 'etcd:bench');
        reads.push(performance.now() - t1);
        // a refusal would time the refusal, not the read (the model's every field checked)
        if (r === 'none' || 'refused' in r) throw new Error(`the cache was not read back: ${JSON.stringify(r)}`);
      }
      console.log(`${model.endpoints.length} endpoints, ${model.routes.length} routes: ${statSync(file).size} bytes; write on the calling thread median ${median(onThread).toFixed(1)} ms; read back median ${median(reads).toFixed(1)} ms (${RUNS} runs)`);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

void main();
