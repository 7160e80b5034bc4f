/**
 * The CNI plugin's host port check on an ADD with host ports (plugin.ts refuseTakenHostPorts): the
 * node's WorkloadEndpoints read from a store holding OTHERS endpoints of other nodes (default 500)
 * and 3 of this node. `old`: every endpoint listed and parsed (listResources), then filtered on
 * spec.node; `new`: listNodeWorkloadEndpoints, which parses only the node's (by name). Both run in
 * turns on the same embedded store (FileKv in a temporary directory), ROUNDS times each:
 *
 *   npx tsc -p . && flock /tmp/pw-bench.lock node dist/bench/host-port-check.js [OTHERS] [ROUNDS]
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { FileKv } from '../src/control/kv/file-kv';
import { kindInfo } from '../src/control/calico-kinds';
import { listNodeWorkloadEndpoints, listResources } from '../src/control/v3-store';

const OTHERS = Number(process.argv[2] ?? 500);
const ROUNDS = Number(process.argv[3] ?? 40);
const PREFIX = '/calico/resources/v3/projectcalico.org/workloadendpoints/';

function wep(node: string, pod: string): [string, string] {
  const name = `${node.replace(/-/g, '--')}-k8s-${pod.replace(/-/g, '--')}-eth0`;
  const value = JSON.stringify({
    apiVersion: 'projectcalico.org/v3', kind: 'WorkloadEndpoint',
    metadata: { name, namespace: 'default', annotations: { 'cni.podway.io/network': 'podway' } },
    spec: { orchestrator: 'k8s', node, pod, endpoint: 'eth0', containerID: `c${pod}`, ipNetworks: ['10.244.1.5/32', 'fd00:10:244::5/128'], profiles: ['kns.default'], interfaceName: 'cali0123456789a', mac: '02:00:00:00:00:01', ports: [{ name: '', protocol: 'tcp', port: 8080, hostPort: 18080, hostIP: '' }] },
  });
  return [`${PREFIX}default/${name}`, value];
}

async function main(): Promise<void> {
  const dir = mkdtempSync(path.join(tmpdir(), 'podway-bench-hpcheck-'));
  const kv = new FileKv({ dir: path.join(dir, 'store') });
  try {
    for (let k = 0; k < OTHERS; k++) await kv.create(...wep(`node-${k % 50}`, `p${k}`));
    for (let k = 0; k < 3; k++) await kv.create(...wep('node-me', `mine${k}`));
    const WEP = kindInfo('WorkloadEndpoint')!;
    const runs = {
      old: async () => (await listResources(kv, WEP)).items.filter((r) => (r.object.spec as { node?: string }).node === 'node-me').length,
      new: async () => (await listNodeWorkloadEndpoints(kv, 'node-me')).items.length,
    };
    const ms: Record<string, number[]> = { old: [], new: [] };
    for (let r = 0; r < ROUNDS; r++) {
      const order: ('old' | 'new')[] = r % 2 === 0 ? ['old', 'new'] : ['new', 'old'];
      for (const which of order) {
        const t0 = process.hrtime.bigint();
        const n = await runs[which]();
        ms[which].push(Number(process.hrtime.bigint() - t0) / 1e6);
        if (n !== 3) throw new Error(`${which}: ${n} endpoints of node-me, not 3`);
      }
    }
    const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[xs.length >> 1];
    for (const which of ['old', 'new']) process.stdout.write(`${which}: ${OTHERS} endpoints of other nodes + 3 of this node, median ${median(ms[which]).toFixed(2)} ms over ${ROUNDS}\n`);
    process.stdout.write(`new/old: ${(median(ms.new) / median(ms.old)).toFixed(2)}\n`);
  } finally {
    await kv.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((e) => { console.error(e); process.exit(1); });
