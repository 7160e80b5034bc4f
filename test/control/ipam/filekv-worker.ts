// A child process for filekv-processes.test.ts: one IPAM client in its own process on a shared
// FileKv directory.
//   node filekv-worker.js alloc DIR CLIENT NODES COUNT     prints the addresses assigned (JSON)
//   node filekv-worker.js release DIR CLIENT COUNT         releases the even handles, prints them
import { FileKv } from '../../../src/control/kv/file-kv';
import { allocateMany, releaseEven } from './scenario';

async function main(): Promise<void> {
  const [mode, dir, client, a, b] = process.argv.slice(2);
  const kv = new FileKv({ dir, lockTimeoutMs: 60_000 });
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
