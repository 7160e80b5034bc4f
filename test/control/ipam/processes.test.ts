// The concurrency scenario with 8 child PROCESSES (not async clients), each with its own store
// connection, on one FileKv directory and on a real etcd: 4 node names, 200 single-address
// assignments each with unique handles, then half released by handle; 1,600 distinct addresses
// and a clean check() after each step. Every child is killed by PID in `finally`; the directory
// and the etcd are removed.
import { ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { FileKv } from '../../../src/control/kv/file-kv';
import { EtcdKv } from '../../../src/control/kv/etcd-kv';
import type { KvStore } from '../../../src/control/kv/kv';
import { startEtcd } from '../../helpers/etcd';
import { prepareScenario, verifyScenario } from './scenario';

const CLIENTS = 8;
const NODES = 4;
const PER_CLIENT = 200;
const CHILD_TIMEOUT_MS = 240_000;
const WORKER = path.join(__dirname, 'processes-worker.js');

const children = new Set<ChildProcess>();

function runWorker(args: string[]): Promise<string[]> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [WORKER, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    children.add(child);
    let out = '';
    let err = '';
    child.stdout.on('data', (d) => { out += d; });
    child.stderr.on('data', (d) => { err += d; });
    const timer = setTimeout(() => { child.kill('SIGKILL'); reject(new Error(`worker ${args.join(' ')} timed out`)); }, CHILD_TIMEOUT_MS);
    child.on('exit', (code) => {
      clearTimeout(timer);
      children.delete(child);
      if (code === 0) resolve(JSON.parse(out) as string[]);
      else reject(new Error(`worker ${args.join(' ')} exited ${code}: ${err.slice(-2000)}`));
    });
  });
}

async function scenario(kv: KvStore, spec: string, label: string): Promise<void> {
  await prepareScenario(kv, NODES);
  const t0 = Date.now();
  const perClient = await Promise.all(Array.from({ length: CLIENTS }, (_, c) => runWorker(['alloc', spec, String(c), String(NODES), String(PER_CLIENT)])));
  const allocMs = Date.now() - t0;
  assert.is(perClient.flat().length, CLIENTS * PER_CLIENT);
  await verifyScenario(kv, perClient, NODES, `${label} after allocation`);
  const released = await Promise.all(Array.from({ length: CLIENTS }, (_, c) => runWorker(['release', spec, String(c), String(PER_CLIENT)])));
  assert.is(released.flat().length, CLIENTS * PER_CLIENT / 2);
  const remaining = perClient.map((ips, c) => ips.filter((ip) => !released[c].includes(ip)));
  await verifyScenario(kv, remaining, NODES, `${label} after releasing half`);
  console.log(`  ${label}, ${CLIENTS} processes: ${CLIENTS * PER_CLIENT} assignments in ${allocMs} ms`);
}

test(`${CLIENTS} processes on one FileKv directory: distinct addresses, check() clean, half released`, async () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'podway-ipam-filekv-'));
  const kv = new FileKv({ dir });
  try {
    await scenario(kv, `embedded:${dir}`, 'FileKv');
  } finally {
    for (const c of children) c.kill('SIGKILL');
    await kv.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

test(`${CLIENTS} processes on a real etcd: distinct addresses, check() clean, half released`, async () => {
  const etcd = await startEtcd();
  const kv = new EtcdKv({ endpoints: [etcd.endpoint], timeoutMs: 30_000 });
  try {
    await scenario(kv, `etcd:${etcd.endpoint}`, 'etcd');
  } finally {
    for (const c of children) c.kill('SIGKILL');
    await kv.close();
    await etcd.stop();
  }
});

test.run();
