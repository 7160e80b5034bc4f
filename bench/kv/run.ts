// Single-client write rate of the KvStore backends: N sequential create + update pairs (what IPAM
// does: claim, then compare-and-swap), reported as ops/s. Usage: node dist/bench/kv/run.js [N]
// (starts a throwaway etcd from /usr/bin/etcd for the etcd figure).
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { EtcdKv } from '../../src/control/kv/etcd-kv';
import { FileKv } from '../../src/control/kv/file-kv';
import { KvStore } from '../../src/control/kv/kv';
import { startEtcd } from '../../test/helpers/etcd';

async function rate(store: KvStore, n: number): Promise<number> {
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < n; i++) {
    const e = await store.create(`/bench/${i}`, `{"i":${i}}`);
    if (!e || !(await store.update(e.key, `{"i":${i},"u":1}`, e.modRevision))) throw new Error('write failed');
  }
  return (2 * n) / (Number(process.hrtime.bigint() - t0) / 1e9);
}

async function main(): Promise<void> {
  const n = Number(process.argv[2] ?? 1000);
  for (const sync of ['batched', 'always'] as const) {
    const dir = mkdtempSync(join(tmpdir(), 'podway-kvbench-'));
    const store = new FileKv({ dir, sync });
    try {
      console.log(`embedded (FileKv, sync ${sync}): ${(await rate(store, n)).toFixed(0)} ops/s`);
    } finally {
      await store.close();
      rmSync(dir, { recursive: true, force: true });
    }
  }
  const etcd = await startEtcd();
  const store = new EtcdKv({ endpoints: [etcd.endpoint] });
  try {
    console.log(`etcd 3.4 (EtcdKv, one local member): ${(await rate(store, n)).toFixed(0)} ops/s`);
  } finally {
    await store.close();
    await etcd.stop();
  }
}

main().catch(e => {
  console.error(e);
  process.exit(1);
});
