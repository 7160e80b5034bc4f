// Shared setup for the IPAM tests: pool/node values as Calico stores them, fixture files, and a
// check that blocks and handles agree.
import { readFileSync } from 'node:fs';
import * as path from 'node:path';
import * as assert from 'uvu/assert';
import type { KvEntry, KvGuard, KvList, KvStore, KvWatch, KvWatchHandlers } from '../../../src/control/kv/kv';
import { Ipam } from '../../../src/control/ipam/ipam';
import { BLOCK_PREFIX, IPAM_CONFIG_KEY, IPPOOL_PREFIX, NODE_PREFIX } from '../../../src/control/ipam/keys';

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

/**
 * Holds the first `parties` creates of block keys until all of them have arrived, then lets them
 * through together: two nodes that picked the same free block both get to write their pending
 * affinity before either creates the block.
 */
export class BlockCreateBarrier implements KvStore {
  readonly description = 'barrier';
  arrived: string[] = [];
  private release: (() => void) | null = null;
  private readonly gate: Promise<void>;

  constructor(private readonly inner: KvStore, private readonly parties: number, timeoutMs: number) {
    let timer: NodeJS.Timeout;
    this.gate = new Promise<void>((resolve, reject) => {
      this.release = resolve;
      timer = setTimeout(() => reject(new Error(`barrier: only ${this.arrived.length} of ${parties} block creates arrived`)), timeoutMs);
    }).finally(() => clearTimeout(timer));
    this.gate.catch(() => {});
  }

  get(key: string): Promise<KvEntry | null> { return this.inner.get(key); }
  list(prefix: string): Promise<KvList> { return this.inner.list(prefix); }
  update(key: string, value: string, rev: number, guards?: readonly KvGuard[]): Promise<KvEntry | null> { return this.inner.update(key, value, rev, guards); }
  delete(key: string, rev?: number): Promise<boolean> { return this.inner.delete(key, rev); }
  watch(prefix: string, from: number, h: KvWatchHandlers): KvWatch { return this.inner.watch(prefix, from, h); }
  close(): Promise<void> { return this.inner.close(); }

  async create(key: string, value: string): Promise<KvEntry | null> {
    if (key.startsWith(BLOCK_PREFIX) && this.arrived.length < this.parties) {
      this.arrived.push(key);
      if (this.arrived.length === this.parties) this.release!();
      await this.gate;
    }
    return this.inner.create(key, value);
  }
}

