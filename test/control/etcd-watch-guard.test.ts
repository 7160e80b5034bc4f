// etcd3's watch multiplexer threw "Failed to find watcher for IWatchResponse" out of its gRPC stream
// handler, an uncaught exception that killed the process, when etcd answered about a watch the
// library had let go (src/control/kv/etcd-watch-guard.ts). Reproduced here against a real etcd
// (test/helpers/etcd.ts, stopped by PID): a watch etcd cancels because its start revision was
// compacted, then canceled by its owner while a second watch keeps the shared stream open. etcd
// answers that cancel for an id the library no longer tracks. Without the guard the process
// records the uncaught exception below and the cancel never resolves.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Etcd3 } from 'etcd3';
import { EtcdKv } from '../../src/control/kv/etcd-kv';
import { lateWatchCancels } from '../../src/control/kv/etcd-watch-guard';
import { EtcdServer, startEtcd } from '../helpers/etcd';

let etcd: EtcdServer;
test.before(async () => { etcd = await startEtcd(); });
test.after(async () => { await etcd?.stop(); });

function within<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    p.finally(() => clearTimeout(timer)),
    new Promise<T>((_, reject) => { timer = setTimeout(() => reject(new Error(`${what}: not within ${ms} ms`)), ms); }),
  ]);
}

test('canceling a watch etcd canceled (compacted), another watch open: no uncaught throw, cancel() resolves', async () => {
  // Loading etcd-kv installs the guard, as `podway run` and the CNI plugin do.
  assert.type(EtcdKv, 'function');
  const uncaught: Error[] = [];
  const onUncaught = (e: Error): void => { uncaught.push(e); };
  process.on('uncaughtException', onUncaught);
  const client = new Etcd3({ hosts: etcd.endpoint });
  let keeper: Awaited<ReturnType<ReturnType<Etcd3['watch']>['create']>> | undefined;
  try {
    for (let i = 0; i < 4; i++) await client.put('/guard/a/k').value(String(i));
    const head = Number((await client.get('/guard/a/k').exec()).header.revision);
    await client.kv.compact({ revision: String(head) });
    keeper = await client.watch().prefix('/guard/b/').create();
    const canceled = new Promise<Error>((resolve) => {
      const w = client.watch().prefix('/guard/a/').startRevision('2').watcher();
      w.on('error', (e: Error) => resolve(Object.assign(e, { watcher: w })));
    });
    const err = (await within(canceled, 10_000, 'etcd canceling the compacted watch')) as Error & { watcher: { cancel(): Promise<void> } };
    assert.match(err.message, /Watcher canceled/);
    const before = lateWatchCancels();
    await within(err.watcher.cancel(), 10_000, 'cancel() of the watch etcd canceled');
    assert.is(lateWatchCancels(), before + 1, 'etcd answered the cancel for the id the library had dropped');
    // the stream still serves the other watch
    const seen = new Promise<string>((resolve) => keeper!.on('put', (kv) => resolve(kv.value.toString())));
    await client.put('/guard/b/x').value('still-watched');
    assert.is(await within(seen, 10_000, 'an event on the watch left open'), 'still-watched');
    await new Promise((r) => setTimeout(r, 200));
    assert.equal(uncaught.map((e) => e.message), []);
  } finally {
    process.off('uncaughtException', onUncaught);
    // an open watch stream would keep the client (and this process) alive after close()
    if (keeper) await within(keeper.cancel(), 10_000, 'cancel() of the open watch').catch(() => undefined);
    client.close();
  }
});

test.run();
