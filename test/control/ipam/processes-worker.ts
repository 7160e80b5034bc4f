// A child process for processes.test.ts: one IPAM client in its own process with its own store
// connection (a FileKv on the shared directory, or an etcd client).
//   node processes-worker.js alloc SPEC CLIENT NODES COUNT     prints the addresses assigned (JSON)
//   node processes-worker.js release SPEC CLIENT COUNT         releases the even handles, prints them
// SPEC: embedded:DIR or etcd:URL.
import { FileKv } from '../../../src/control/kv/file-kv';
import { EtcdKv } from '../../../src/control/kv/etcd-kv';
import type { KvStore } from '../../../src/control/kv/kv';
import { allocateMany, releaseEven } from './scenario';

async function main(): Promise<void> {
  const [mode, spec, client, a, b] = process.argv.slice(2);
  const kv: KvStore = spec.startsWith('etcd:') ? new EtcdKv({ endpoints: [spec.slice('etcd:'.length)], timeoutMs: 30_000 })
    : new FileKv({ dir: spec.slice('embedded:'.length), lockTimeoutMs: 60_000 });
  try {
    const out = mode === 'alloc' ? await allocateMany(kv, Number(client), Number(a), Number(b))
      : mode === 'release' ? await releaseEven(kv, Number(client), Number(a))
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
