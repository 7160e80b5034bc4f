// Two writers racing on ONE block, from two processes each with its own store connection, on a
// real etcd and on one FileKv directory: 20 assignments started at once in each process (40
// concurrent compare-and-swaps on the same block key). Once as two CNI plugins of one node, once
// as two nodes where one claims the pool's only block and the other borrows from it. Afterwards no
// address was given twice (double allocation) and every address a process was told it got is in
// the block under that very handle, counted by that handle (no lost allocation); check() is clean.
// Children are killed by PID in `finally`; etcd and the directory are removed.
import { ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { AllocationBlock } from '../../../src/control/ipam/block';
import { BLOCK_PREFIX, parseBlockKey } from '../../../src/control/ipam/keys';
import { EtcdKv } from '../../../src/control/kv/etcd-kv';
import { FileKv } from '../../../src/control/kv/file-kv';
import type { KvStore } from '../../../src/control/kv/kv';
import { startEtcd } from '../../helpers/etcd';
import { Ipam } from '../../../src/control/ipam/ipam';
import { assertClean, handleCountsFromStore, setup } from './helpers';

const PER_PROCESS = 20;
// 40 CASes on one key: ~15 s on a quiet 2-CPU machine, over 120 s seen at load 15 (CI with other work).
const CHILD_TIMEOUT_MS = 300_000;
const WORKER = path.join(__dirname, 'processes-worker.js');
const children = new Set<ChildProcess>();

function burst(spec: string, node: string, tag: string, pool: string): Promise<[string, string][]> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [WORKER, 'burst', spec, node, tag, String(PER_PROCESS), pool], { stdio: ['ignore', 'pipe', 'pipe'] });
    children.add(child);
    let out = '';
    let err = '';
    child.stdout.on('data', (d) => { out += d; });
    child.stderr.on('data', (d) => { err += d; });
    const timer = setTimeout(() => { child.kill('SIGKILL'); reject(new Error(`burst ${tag} timed out`)); }, CHILD_TIMEOUT_MS);
    child.on('close', (code) => { // 'close': stdout read to its end ('exit' can come first: a JSON cut short)
      clearTimeout(timer);
      children.delete(child);
      if (code === 0) resolve(JSON.parse(out) as [string, string][]);
      else reject(new Error(`burst ${tag} exited ${code}: ${err.slice(-2000)}`));
    });
  });
}

/** Every allocation in the store as ip -> { handle, node attribute }. */
async function allocations(kv: KvStore): Promise<Map<string, { handle: string | null; node: string | undefined }>> {
  const out = new Map<string, { handle: string | null; node: string | undefined }>();
  for (const e of (await kv.list(BLOCK_PREFIX)).entries) {
    const b = AllocationBlock.decode(e.value, parseBlockKey(e.key)!);
    b.allocations.forEach((a, o) => {
      if (a !== null) out.set(b.ordinalToIp(o), { handle: b.attributeOf(o)?.handleId ?? null, node: b.attributeOf(o)?.secondary?.node });
    });
  }
  return out;
}

async function race(kv: KvStore, spec: string, label: string, poolName: string, cidr: string, nodes: [string, string]): Promise<void> {
  await setup(kv, { pools: [{ name: poolName, cidr, spec: { blockSize: 26 } }], nodes: [...new Set(nodes)] });
  const [a, b] = await Promise.all([burst(spec, nodes[0], `${label}-a`, poolName), burst(spec, nodes[1], `${label}-b`, poolName)]);
  const got = [...a, ...b];
  assert.is(got.length, 2 * PER_PROCESS);
  assert.is(new Set(got.map(([ip]) => ip)).size, got.length, `${label}: no address given twice`);
  const stored = await allocations(kv);
  assert.is(stored.size, got.length, `${label}: the block holds exactly the addresses handed out`);
  for (const [ip, handle] of got) {
    assert.is(stored.get(ip)?.handle, handle, `${label}: ${ip} is held by ${handle}, which was told it got it`);
  }
  const { fromHandles, fromBlocks } = await handleCountsFromStore(kv);
  assert.equal(fromHandles, fromBlocks, `${label}: every handle counts exactly its address`);
  const ipam = new Ipam(kv);
  await assertClean(ipam, label);
  // The pool is one /26 block: one owner; with two nodes the other one's addresses are borrowed.
  const blocks = (await kv.list(BLOCK_PREFIX)).entries.map((e) => AllocationBlock.decode(e.value, parseBlockKey(e.key)!));
  assert.equal(blocks.map((x) => x.cidr.text), [cidr], `${label}: one block`);
  if (nodes[0] !== nodes[1]) {
    const owner = blocks[0]!.host();
    assert.ok(nodes.includes(owner), `${label}: one of the racing nodes owns the block (${owner})`);
    const borrowed = (await ipam.routeInputs()).borrowed;
    assert.is(borrowed.length, PER_PROCESS, `${label}: the other node borrowed its ${PER_PROCESS}`);
    assert.ok(borrowed.every((x) => x.node !== owner && x.blockNode === owner));
  }
}


test(`etcd: two processes x ${PER_PROCESS} concurrent assignments on one block (one node; two nodes): no double, no lost allocation`, async () => {
  const etcd = await startEtcd();
  const kv = new EtcdKv({ endpoints: [etcd.endpoint], timeoutMs: 30_000 });
  try {
    // Emptied between the races, so each starts from a datastore with only its own pool and nodes.
    await race(kv, `etcd:${etcd.endpoint}`, 'etcd-one-node', 'burst-one', '10.70.0.0/26', ['burst-n1', 'burst-n1']);
    for (const e of (await kv.list('/calico/')).entries) await kv.delete(e.key);
    await race(kv, `etcd:${etcd.endpoint}`, 'etcd-two-nodes', 'burst-two', '10.71.0.0/26', ['burst-n2', 'burst-n3']);
  } finally {
    for (const c of children) c.kill('SIGKILL');
    await kv.close();
    await etcd.stop();
  }
});

test(`FileKv: two processes x ${PER_PROCESS} concurrent assignments on one block (one node; two nodes): no double, no lost allocation`, async () => {
  const dirs = [mkdtempSync(path.join(tmpdir(), 'podway-ipam-burst-')), mkdtempSync(path.join(tmpdir(), 'podway-ipam-burst-'))];
  const kvs = dirs.map((dir) => new FileKv({ dir }));
  try {
    await race(kvs[0]!, `embedded:${dirs[0]}`, 'filekv-one-node', 'burst-one', '10.70.0.0/26', ['burst-n1', 'burst-n1']);
    await race(kvs[1]!, `embedded:${dirs[1]}`, 'filekv-two-nodes', 'burst-two', '10.71.0.0/26', ['burst-n2', 'burst-n3']);
  } finally {
    for (const c of children) c.kill('SIGKILL');
    for (const kv of kvs) await kv.close();
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  }
});

test.run();
