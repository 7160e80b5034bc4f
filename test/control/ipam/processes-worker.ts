// A child process for processes.test.ts: one IPAM client in its own process with its own store
// connection (a FileKv on the shared directory, or an etcd client).
//   node processes-worker.js alloc SPEC CLIENT NODES COUNT     prints the addresses assigned (JSON)
//   node processes-worker.js release SPEC CLIENT COUNT         releases the even handles, prints them
//   node processes-worker.js burst SPEC NODE TAG COUNT POOL    COUNT single-address assignments at once
//                                                              (handles TAG-<i>, from POOL), prints [ip, handle] pairs
// SPEC: embedded:DIR or etcd:URL.
import { FileKv } from '../../../src/control/kv/file-kv';
import { EtcdKv } from '../../../src/control/kv/etcd-kv';
import type { KvStore } from '../../../src/control/kv/kv';
import { Ipam } from '../../../src/control/ipam/ipam';
import { allocateMany, releaseEven } from './scenario';

/** `count` assignments started together on one client (as concurrent CNI ADDs of one node). */
async function burst(kv: KvStore, node: string, tag: string, count: number, pool: string): Promise<[string, string][]> {
  const ipam = new Ipam(kv);
  return Promise.all(Array.from({ length: count }, async (_, i) => {
    const handle = `${tag}-${i}`;
    const r = await ipam.autoAssign({ node, count: 1, handleId: handle, attrs: { node, pod: handle, namespace: 'default' }, pools: [pool] });
    if (r.errors || r.ips.length !== 1) throw new Error(`${handle}: ${JSON.stringify(r)}`);
    return [r.ips[0]!, handle] as [string, string];
  }));
}

async function main(): Promise<void> {
  const [mode, spec, client, a, b, c] = process.argv.slice(2);
  const kv: KvStore = spec.startsWith('etcd:') ? new EtcdKv({ endpoints: [spec.slice('etcd:'.length)], timeoutMs: 30_000 })
    : new FileKv({ dir: spec.slice('embedded:'.length), lockTimeoutMs: 60_000 });
  try {
    const out = mode === 'alloc' ? await allocateMany(kv, Number(client), Number(a), Number(b))
      : mode === 'release' ? await releaseEven(kv, Number(client), Number(a))
      : mode === 'burst' ? await burst(kv, client, a, Number(b), c)
      : (() => { throw new Error(`unknown mode ${mode}`); })();
    process.stdout.write(JSON.stringify(out));
  } finally {
    await kv.close();
  }
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
