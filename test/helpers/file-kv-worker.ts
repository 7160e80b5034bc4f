// A child process for test/control/kv-file.test.ts: hammers a FileKv from another process.
//   node file-kv-worker.js contend DIR ID   200 create-if-absent on keys (ID*50 + j) % 400, then
//                                           200 compare-and-swap increments of /counter; prints
//                                           the keys it won as JSON
//   node file-kv-worker.js churn DIR        updates /churn forever (until killed)
//   node file-kv-worker.js dump DIR         prints {revision, entries: {key: value}} of the store
import { FileKv } from '../../src/control/kv/file-kv';

async function main(): Promise<void> {
  const [mode, dir, idText] = process.argv.slice(2);
  const store = new FileKv({ dir, lockTimeoutMs: 30_000 });
  if (mode === 'contend') {
    const id = Number(idText);
    const won: string[] = [];
    for (let j = 0; j < 200; j++) {
      const key = `/keys/${String((id * 50 + j) % 400).padStart(3, '0')}`;
      if (await store.create(key, String(id))) won.push(key);
    }
    for (let i = 0; i < 200; i++) {
      for (let attempt = 0; ; attempt++) {
        if (attempt > 10_000) throw new Error('counter CAS starved');
        const cur = await store.get('/counter');
        const ok = cur
          ? await store.update('/counter', String(Number(cur.value) + 1), cur.modRevision)
          : await store.create('/counter', '1');
        if (ok) break;
      }
    }
    await store.close();
    process.stdout.write(JSON.stringify(won));
  } else if (mode === 'churn') {
    let cur = (await store.get('/churn')) ?? (await store.create('/churn', '0'))!;
    for (let i = 0; ; i++) {
      cur = (await store.update('/churn', String(i), cur.modRevision)) ?? (await store.get('/churn'))!;
    }
  } else if (mode === 'dump') {
    const all = await store.list('/');
    await store.close();
    process.stdout.write(JSON.stringify({ revision: all.revision, entries: Object.fromEntries(all.entries.map((e) => [e.key, e.value])) }));
  } else {
    throw new Error(`unknown mode ${mode}`);
  }
}

main().catch(e => {
  console.error(e);
  process.exit(1);
});
