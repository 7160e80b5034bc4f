// Shared setup for the IPAM tests: pool/node values as Calico stores them, fixture files, and a
// check that blocks and handles agree.
import { readFileSync } from 'node:fs';
import * as path from 'node:path';
import * as assert from 'uvu/assert';
import type { KvStore } from '../../../src/control/kv/kv';
import { Ipam } from '../../../src/control/ipam/ipam';
import { IPAM_CONFIG_KEY, IPPOOL_PREFIX, NODE_PREFIX } from '../../../src/control/ipam/keys';

/** Source fixtures (tests run from dist/, fixtures stay in test/). */
export const FIXTURE_DIR = path.resolve(__dirname, '..', '..', '..', '..', 'test', 'control', 'ipam', 'fixtures');

export function fixture(name: string): string {
  return readFileSync(path.join(FIXTURE_DIR, name), 'utf8');
}

export function poolValue(name: string, cidr: string, spec: Record<string, unknown> = {}): string {
  return JSON.stringify({ kind: 'IPPool', apiVersion: 'projectcalico.org/v3', metadata: { name }, spec: { cidr, ...spec } });
}

export function nodeValue(name: string, labels: Record<string, string> = {}): string {
  return JSON.stringify({ kind: 'Node', apiVersion: 'projectcalico.org/v3', metadata: { name, labels }, spec: {} });
}

export interface Setup {
  pools?: { name: string; cidr: string; spec?: Record<string, unknown> }[];
  nodes?: (string | { name: string; labels: Record<string, string> })[];
  config?: Record<string, unknown>;
}

/** Writes pools, nodes and config through the store's ordinary create(). */
export async function setup(kv: KvStore, s: Setup): Promise<void> {
  for (const p of s.pools ?? []) await kv.create(IPPOOL_PREFIX + p.name, poolValue(p.name, p.cidr, p.spec));
  for (const n of s.nodes ?? []) {
    const { name, labels } = typeof n === 'string' ? { name: n, labels: {} } : n;
    await kv.create(NODE_PREFIX + name, nodeValue(name, labels));
  }
  if (s.config) await kv.create(IPAM_CONFIG_KEY, JSON.stringify(s.config));
}

export const FIXED_NOW = new Date('2024-05-01T12:00:00Z');

/** Asserts check() finds nothing, printing the problems when it does. */
export async function assertClean(ipam: Ipam, label: string): Promise<void> {
  const problems = await ipam.check();
  assert.equal(problems.map((p) => `${p.kind}: ${p.message}`), [], `${label}: check() should be clean`);
}

/** Every handle's per-block counts equal the addresses its attributes hold, read straight from the store. */
export async function handleCountsFromStore(kv: KvStore): Promise<{ fromHandles: Map<string, number>; fromBlocks: Map<string, number> }> {
  const fromHandles = new Map<string, number>();
  for (const e of (await kv.list('/calico/ipam/v2/handle/')).entries) {
    const v = JSON.parse(e.value) as { block: Record<string, number> };
    for (const [cidr, n] of Object.entries(v.block)) fromHandles.set(`${e.key.slice('/calico/ipam/v2/handle/'.length)} ${cidr}`, n);
  }
  const fromBlocks = new Map<string, number>();
  for (const e of (await kv.list('/calico/ipam/v2/assignment/')).entries) {
    // Plain JSON.parse is fine here: only sequence numbers exceed 2^53, and they are not compared.
    const v = JSON.parse(e.value) as { cidr: string; allocations: (number | null)[]; attributes: { handle_id?: string }[] | null };
    for (const a of v.allocations) {
      if (a === null) continue;
      const h = v.attributes![a].handle_id!;
      const k = `${h} ${v.cidr}`;
      fromBlocks.set(k, (fromBlocks.get(k) ?? 0) + 1);
    }
  }
  return { fromHandles, fromBlocks };
}
