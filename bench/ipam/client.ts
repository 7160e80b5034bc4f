// One IPAM benchmark client, forked by bench/ipam/run.ts: its own KvStore connection (an EtcdKv
// client or a FileKv reader/writer on the shared directory), then pod churn for one node until the
// deadline: autoAssign one address per "pod" (a handle of its own, as the CNI plugin does), and
// once `window` pods are held, release the oldest by handle for every new one, so the node's blocks
// stay at the size a real node has instead of filling up. Both calls are timed one by one.
import { Ipam } from '../../src/control/ipam';
import { FileLock } from '../../src/control/kv/file-lock';
import { openKvStore } from '../../src/control/kv/open';
import { parseDatastoreSpec } from '../../src/control/kv/spec';

export interface ClientConfig {
  readonly spec: string;
  readonly node: string;
  readonly clientId: number;
  /** Pods held before each new one releases the oldest. */
  readonly window: number;
  /**
   * A lock file shared by the clients of one node, held around each call, as Calico's CNI plugin
   * serializes the IPAM calls of one host with its ipam.lock (FileLock here: node has no flock).
   */
  readonly hostLock?: string;
}

export interface ClientResult {
  readonly assigns: number;
  readonly releases: number;
  readonly assignMs: number[];
  readonly releaseMs: number[];
  readonly failures: number;
  readonly firstFailure?: string;
}

type Message = { type: 'go'; endAt: number };

async function main(): Promise<void> {
  const config = JSON.parse(process.argv[2]!) as ClientConfig;
  const spec = parseDatastoreSpec(config.spec);
  if (spec.kind === 'file') throw new Error('bench client: a file: datastore has no IPAM');
  const kv = openKvStore(spec, { use: 'run', timeoutMs: 10_000 });
  const ipam = new Ipam(kv);
  const lock = config.hostLock ? new FileLock(config.hostLock, 60_000) : null;
  const locked = async <T>(fn: () => Promise<T>): Promise<T> => {
    await lock?.acquire();
    try {
      return await fn();
    } finally {
      await lock?.release();
    }
  };
  // Connect before the clock starts: one read, so an etcd client has its channel up.
  await ipam.getConfig();
  const go = await new Promise<Message>((resolve) => {
    process.once('message', (m) => resolve(m as Message));
    process.send!({ type: 'ready' });
  });
  const assignMs: number[] = [];
  const releaseMs: number[] = [];
  const held: string[] = [];
  let failures = 0;
  let firstFailure: string | undefined;
  let releases = 0;
  for (let i = 0; Date.now() < go.endAt; i++) {
    const handleId = `k8s-pod-network.bench-${config.clientId}-${i}`;
    const t0 = process.hrtime.bigint();
    let got = 0;
    try {
      const r = await locked(() => ipam.autoAssign({ node: config.node, count: 1, handleId, attrs: { node: config.node, namespace: 'bench', pod: `p${config.clientId}-${i}` } }));
      got = r.ips.length;
      if (got !== 1) throw new Error(r.errors?.join('; ') ?? 'no address');
    } catch (e) {
      failures++;
      firstFailure ??= (e as Error).message;
    }
    if (got === 1) {
      assignMs.push(Number(process.hrtime.bigint() - t0) / 1e6);
      held.push(handleId);
    }
    if (held.length > config.window) {
      const t1 = process.hrtime.bigint();
      const oldest = held.shift()!;
      await locked(() => ipam.releaseByHandle(oldest));
      releaseMs.push(Number(process.hrtime.bigint() - t1) / 1e6);
      releases++;
    }
  }
  await lock?.dispose();
  await kv.close();
  const result: ClientResult = { assigns: assignMs.length, releases, assignMs, releaseMs, failures, firstFailure };
  process.send!({ type: 'result', result }, () => process.exit(0));
}

main().catch((e) => {
  process.stderr.write(`bench client: ${(e as Error).stack ?? e}\n`);
  process.exit(1);
});
