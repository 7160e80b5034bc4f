// Convergence (root: a namespace lab): three nodes on one subnet, each running `podway run --bgp`
// on the embedded datastore, in Calico's full node-to-node mesh. Per sample, a confirmed block
// affinity (/calico/ipam/v2/host/<node>/ipv4/block/<cidr>, as IPAM writes it when a node claims a
// block) is created for one node, round robin, and the time is taken from just before the write
// to the block being routed (kind direct, via the owner) on both other nodes, polled every 5 ms
// through their control sockets. It covers the owner's watch and model, its UPDATE, the peers'
// UPDATE processing, their route calculation and the engine apply.
import { mkdtempSync, rmSync } from 'node:fs';
import * as os from 'node:os';
import { join } from 'node:path';
import { FileKv } from '../../src/control/kv/file-kv';
import { affinityKey } from '../../src/control/ipam/keys';
import { parseNet } from '../../src/control/ipam/net';
import { encodeAffinity } from '../../src/control/ipam/records';
import { applyResource } from '../../src/control/v3-store';
import { controlRequest } from '../../src/dataplane/control-server';
import { Lab, LabNode, LabNodeSpec } from '../../src/lab/lab';
import { guard, isRoot, routes, teardown } from '../../test/e2e/e2e-kit';
import { percentile } from '../stats';

const THREE: LabNodeSpec[] = [
  { name: 'node1', subnet: 'a', pods: [{ name: 'web-1', type: 'veth' }] },
  { name: 'node2', subnet: 'a', pods: [{ name: 'web-2', type: 'veth' }] },
  { name: 'node3', subnet: 'a', pods: [{ name: 'web-3', type: 'veth' }] },
];

const sleep = (ms: number) => new Promise(r => setTimeout(r, ms));


export type Topology = 'mesh' | 'reflector';
export interface ConvergenceResult { topology: Topology; nodes: number; samples: number[]; p50Ms: number; p99Ms: number; maxMs: number }

async function routedEverywhere(others: LabNode[], cidr: string, via: string): Promise<boolean> {
  for (const n of others) {
    const r = (await routes(n)).find(x => x.cidr === cidr);
    if (!r || r.kind !== 'direct' || r.via !== via) return false;
  }
  return true;
}

export async function runConvergenceBench(opts: { writes: number; topology: Topology; log: (s: string) => void }): Promise<ConvergenceResult> {
  if (!isRoot()) throw new Error('the convergence bench needs root (network namespaces); run it with sudo or use --only updates');
  const lab = guard(new Lab(THREE));
  const dir = mkdtempSync(join(os.tmpdir(), 'podway-bgpbench-'));
  const kv = new FileKv({ dir });
  try {
    lab.build();
    lab.setMode('direct');
    await lab.useKvDatastore(kv, `embedded:${dir}`);
    if (opts.topology === 'reflector') {
      const rr = lab.nodes[0]!;
      // podway's own Node registration keeps these fields (it merges into the stored Node).
      await applyResource(kv, { apiVersion: 'projectcalico.org/v3', kind: 'Node', metadata: { name: rr.name, labels: { 'route-reflector': 'true' } }, spec: { bgp: { ipv4Address: `${rr.ip}/${rr.prefix}`, routeReflectorClusterID: '224.0.0.1' } } });
      await applyResource(kv, { apiVersion: 'projectcalico.org/v3', kind: 'BGPConfiguration', metadata: { name: 'default' }, spec: { nodeToNodeMeshEnabled: false, asNumber: 64512 } });
      await applyResource(kv, { apiVersion: 'projectcalico.org/v3', kind: 'BGPPeer', metadata: { name: 'to-rr' }, spec: { nodeSelector: '!has(route-reflector)', peerSelector: 'has(route-reflector)' } });
      await applyResource(kv, { apiVersion: 'projectcalico.org/v3', kind: 'BGPPeer', metadata: { name: 'rr-clients' }, spec: { nodeSelector: 'has(route-reflector)', peerSelector: '!has(route-reflector)' } });
    }
    for (const n of lab.nodes) await lab.startPodway(n.name, 30_000, ['--bgp']);
    opts.log(`3 podways started with --bgp (${opts.topology}); waiting for them to route each other's blocks`);
    const deadline = Date.now() + 60_000;
    for (;;) {
      let ok = true;
      for (const n of lab.nodes) ok = ok && await routedEverywhere(lab.nodes.filter(o => o !== n), n.block, n.ip);
      if (ok) break;
      if (Date.now() > deadline) throw new Error('the mesh did not converge within 60 s');
      await sleep(250);
    }
    if (opts.topology === 'reflector') {
      // The topology is what it claims: each client peers with the reflector alone.
      for (const client of lab.nodes.slice(1)) {
        const c = (await controlRequest(client.control, { cmd: 'counters' })) as { bgpPeers: { peer: string }[] };
        const peers = c.bgpPeers.map(p => p.peer).join();
        if (peers !== lab.nodes[0]!.ip) throw new Error(`${client.name} peers with ${peers}, expected only the reflector ${lab.nodes[0]!.ip}`);
      }
    }
    const samples: number[] = [];
    for (let i = 0; i < opts.writes; i++) {
      const owners = opts.topology === 'reflector' ? lab.nodes.slice(1) : lab.nodes;
      const owner = owners[i % owners.length]!;
      const others = lab.nodes.filter(n => n !== owner);
      // Blocks from 10.244.128.0 up: inside the lab's pool, clear of the nodes' own blocks.
      const cidr = `10.244.${(opts.topology === 'reflector' ? 192 : 128) + Math.floor(i / 4)}.${(i % 4) * 64}/26`;
      const net = parseNet(cidr);
      if (!net) throw new Error(`bad block ${cidr}`);
      const t0 = performance.now();
      if (!await kv.create(affinityKey(owner.name, net), encodeAffinity('confirmed'))) throw new Error(`affinity for ${cidr} exists already`);
      const until = Date.now() + 10_000;
      while (!await routedEverywhere(others, cidr, owner.ip)) {
        if (Date.now() > until) throw new Error(`${cidr} of ${owner.name} not routed on ${others.map(n => n.name).join(' and ')} within 10 s`);
        await sleep(5);
      }
      const ms = performance.now() - t0;
      samples.push(ms);
      opts.log(`write ${i + 1}: ${cidr} of ${owner.name} routed on both other nodes after ${ms.toFixed(0)} ms`);
      await sleep(200);
    }
    return { topology: opts.topology, nodes: lab.nodes.length, samples: samples.map(s => Number(s.toFixed(1))), p50Ms: percentile(samples, 50), p99Ms: percentile(samples, 99), maxMs: Math.max(...samples) };
  } finally {
    await teardown(lab);
    await kv.close();
    rmSync(dir, { recursive: true, force: true });
  }
}
