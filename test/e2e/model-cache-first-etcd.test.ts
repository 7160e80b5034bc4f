/**
 * A restart in the same boot forwards on its model cache at once (src/cli/run.ts, docs/failures.md,
 * "Datastore away"), on a real etcd (root, network namespaces, etcd in the fabric namespace,
 * every process stopped by PID). Two podways on `etcd:`, pods on both nodes. etcd is made slow
 * with SIGSTOP by PID (always SIGCONT in finally): it accepts connections and answers nothing, so
 * only the cache can make node1 forward.
 * - kill -9 of node1's podway and a new start with etcd stopped: the cache (written in this boot)
 *   is applied at once (the start-up line says so; not the unreachable datastore's way, which
 *   waits 5 s), pods talk across the nodes and on node1 while etcd is still stopped, and node1 is
 *   not ready (status, /readyz 503, podway_model_from_cache 1, `podway status`'s line); etcd
 *   resumed: the datastore's model replaces the cached one and node1 is ready;
 * - a cache written in another boot (its boot id rewritten) is not applied at once, saying why:
 *   the datastore first, the cache only once it has not answered (the unreachable way);
 * - --no-cache-first: a cache of this boot is used only the unreachable way, as before;
 * - an upgrade's first start: a cache of format 3 as the podway before format 4 wrote it (no Node)
 *   is applied at once, its Node (created before its model was applied) found the same, and it is
 *   rewritten as format 4; one of a Node deleted and registered again since is not used (or
 *   withdrawn), saying the new Node's creation time;
 * - a Node deleted (`podway delete node`) and registered again under the same name: the cache
 *   records the Node it was written for (uid, creation revision). Started with etcd stopped, node1
 *   forwards on the old Node's cache until etcd answers; the registration's read then finds no
 *   Node and the cache's endpoints, routes and tunnel addresses are withdrawn before the
 *   datastore's model replaces it. Started with etcd answering, the cache is not used at all
 *   (the light read while the host is read answers first), or, if the read lost that race, is
 *   withdrawn the same way.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { readdirSync, readFileSync } from 'node:fs';
import * as path from 'node:path';
import { Lab, LabKvStore, LabNodeSpec } from '../../src/lab/lab';
import type { LabEtcd } from '../../src/lab/etcd';
import { nodeIdentityOf, readModelCache, type CachedModel, type NodeIdentity } from '../../src/cli/model-cache';
import { writeFormat3Cache } from '../helpers/model-cache-v3';
import { controlRequest } from '../../src/dataplane/control-server';
import { execBounded } from './tools';
import { stopProcess } from '../helpers/etcd';
import { parseMetrics, valueOf } from '../observe/prom-text';
import { guard, teardown, isRoot, stopWithCacheOfAnotherBoot, logTail, until, waitLog } from './e2e-kit';

const SPEC: LabNodeSpec[] = [
  { name: 'node1', subnet: 'a', pods: [{ name: 'web-1', type: 'veth' }, { name: 'web-1b', type: 'veth' }] },
  { name: 'node2', subnet: 'a', pods: [{ name: 'web-2', type: 'veth' }] },
];
const METRICS_PORT = 9302;
const HTTP_GET = path.join(__dirname, 'http-get.js');
const PODWAY = path.resolve(__dirname, '..', '..', '..', 'bin', 'podway.js');
const N1_ARGS = ['--metrics-port', String(METRICS_PORT), '--metrics-host', '127.0.0.1'];
const FIRST = /start-up: forwarding on the cached model from \S+ \(same boot\) while the datastore answers \(.*node1\.model\.json: 2 endpoints/;
const UNREACHABLE_WAY = /datastore \S+ unreachable: forwarding on the cached model from/;

let lab: Lab | null = null;
let store: LabKvStore | null = null;
let etcd: LabEtcd | null = null;
let ok = false;

interface Status { ready?: boolean; notReady?: string[]; cachedModel?: { file: string; appliedAt: string; first: boolean } | null; endpoints?: number }
const status = async (): Promise<Status> => (await controlRequest(lab!.node('node1').control, { cmd: 'status' }, 5000)) as Status;
const talks = (from: string, to: string) => lab!.ping(from, lab!.pod(to).ip, 1, 56, ['-W', '1']).received === 1;

/** GET a path of node1's metrics port, from inside node1's namespace. */
async function get(pathname: string): Promise<{ status: number; body: string }> {
  const r = await execBounded('ip', ['netns', 'exec', lab!.node('node1').ns, process.execPath, HTTP_GET, `http://127.0.0.1:${METRICS_PORT}${pathname}`], 10_000);
  if (r.code !== 0) throw new Error(`http-get ${pathname}: exit ${r.code}: ${r.stderr}`);
  return JSON.parse(r.stdout.trim()) as { status: number; body: string };
}

/** etcd frozen (SIGSTOP, by PID): every thread of it in state T in /proc. */
const etcdStopped = (pid: number) => readdirSync(`/proc/${pid}/task`).every((t) => /^[tT]$/.test(readFileSync(`/proc/${pid}/task/${t}/stat`, 'utf8').replace(/^.*\) /s, '').split(' ')[0]!));

/** `fn` with etcd frozen (every thread stopped before it runs); resumed (SIGCONT) in finally,
 * whatever happens. */
async function withEtcdStopped(fn: (pid: number) => Promise<void>): Promise<void> {
  const pid = etcd!.pid();
  assert.ok(pid > 0, 'etcd runs');
  try {
    await stopProcess(pid);
    await fn(pid);
  } finally {
    process.kill(pid, 'SIGCONT');
  }
}

/** SIGKILL node1's podway (a crash) and wait for its exit. */
async function killNode1(): Promise<void> {
  const n1 = lab!.node('node1');
  const p = n1.proc!;
  n1.proc = null;
  if (p.exitCode !== null || p.signalCode !== null) return; // already ended: its 'exit' is past
  const exited = new Promise<void>((r) => p.once('exit', () => r()));
  p.kill('SIGKILL');
  await exited;
}

/** Which of the three pairs talk, and what node1 says (for a failure's message). */
async function diag(): Promise<string> {
  const pairs = [['web-1', 'web-2'], ['web-2', 'web-1'], ['web-1', 'web-1b']].map(([a, b]) => `${a}->${b} ${talks(a, b) ? 'ok' : 'LOST'}`);
  const st = await status().catch((e: Error) => ({ error: e.message }));
  return `${pairs.join(', ')}; status ${JSON.stringify(st).slice(0, 600)}`;
}

const ready = async () => {
  try {
    return (await status()).ready === true;
  } catch {
    return false;
  }
};

test.before(async () => {
  if (!isRoot()) throw new Error('e2e tests need root (network namespaces)');
  lab = guard(new Lab(SPEC, { podOffloads: false }));
  lab.build();
  lab.setMode('vxlan');
  store = await lab.openKvStore('etcd', 'podway-cachefirst-etcd-');
  etcd = await lab.startEtcd();
  await lab.useKvDatastore(store.kv, store.spec);
  await lab.startPodway('node1', 20_000, N1_ARGS);
  await lab.startPodway('node2', 20_000);
});

test.after(async () => {
  if (!lab) return;
  if (!ok) console.log(logTail(lab, 40), `\n--- etcd:\n${etcd?.log().slice(-1500)}`);
  await teardown(lab); // etcd too (killed by PID, its data removed)
  await store?.close();
});

test('at start: pods talk; node1 writes its cache with this boot\'s id', async () => {
  assert.ok(await until(() => talks('web-1', 'web-2') && talks('web-2', 'web-1') && talks('web-1', 'web-1b'), 15_000, 100), 'pods talk');
  const file = lab!.modelCachePath('node1');
  const boot = readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim();
  // with node2's block: the first model written may be from before node2 registered (the cache
  // is written at most every 10 s, and a kill -9 writes nothing more)
  const block2 = lab!.node('node2').block;
  assert.ok(await until(() => {
    const r = readModelCache(file, 'node1', store!.spec);
    return r !== 'none' && !('refused' in r) && r.bootId === boot && r.model.endpoints.length === 2 && r.model.routes.some((x) => x.cidr === block2 && x.kind === 'vxlan');
  }, 30_000, 100), `node1 wrote ${file} with boot id ${boot} and a route to ${block2}`);
  assert.ok(await until(ready, 20_000, 200), 'node1 ready');
});

test('kill -9 and a start with etcd stopped: node1 forwards on its cache at once, not ready; etcd resumed: the datastore\'s model replaces it, ready', async () => {
  const n1 = lab!.node('node1');
  await killNode1();
  const mark = n1.log.length;
  await withEtcdStopped(async (pid) => {
    await lab!.startPodway('node1', 20_000, N1_ARGS); // resolves once the engine answers status (forwarding)
    assert.ok(await waitLog(n1, FIRST, mark, 10_000), `the cache applied at once: ${n1.log.slice(mark).join(' | ')}`);
    assert.ok(await until(() => talks('web-1', 'web-2') && talks('web-2', 'web-1') && talks('web-1', 'web-1b'), 15_000, 100), `pods talk on the cached model: ${await diag()}: ${n1.log.slice(mark).join(' | ')}`);
    assert.ok(etcdStopped(pid), 'etcd still stopped: no datastore model can have come');
    const st = await status();
    assert.is(st.ready, false, 'not ready on the cached model');
    assert.ok(st.notReady?.some((r) => /^datastore: running on the cached model from \S+: applied at start \(same boot\), the datastore's model not yet/.test(r)), `the reason names the cache: ${JSON.stringify(st.notReady)}`);
    assert.equal(st.cachedModel && { file: st.cachedModel.file, first: st.cachedModel.first }, { file: lab!.modelCachePath('node1'), first: true });
    assert.is(st.endpoints, 2);
    const rz = await get('/readyz');
    assert.is(rz.status, 503, rz.body);
    assert.match(rz.body, /running on the cached model/);
    const m = parseMetrics((await get('/metrics')).body);
    assert.is(valueOf(m, 'podway_model_from_cache'), 1);
    assert.is(valueOf(m, 'podway_ready'), 0);
    const cli = await execBounded(process.execPath, [PODWAY, 'status', '--control', n1.control], 15_000);
    // how old, and that its Node cannot have been compared (etcd stopped)
    assert.match(cli.stdout, /^forwarding on the cached model from \S+, (\d+ s|\d+ min \d+ s) old \(.*node1\.model\.json\): applied at start \(written in this boot\), the datastore's model not applied yet; its Node not compared with the datastore's yet \(no answer\)$/m);
    const age = (await status()).cachedModel as { ageSeconds?: number; appliedAt: string; nodeCheck?: string } | null;
    assert.ok(age && typeof age.ageSeconds === 'number' && Math.abs(age.ageSeconds - (Date.now() - Date.parse(age.appliedAt)) / 1000) < 5, `ageSeconds: ${JSON.stringify(age)}`);
    assert.is(age?.nodeCheck, 'not compared yet');
    assert.ok(etcdStopped(pid), 'etcd stopped all along');
  });
  assert.not.ok(n1.log.slice(mark).some((l) => UNREACHABLE_WAY.test(l)), 'not the unreachable datastore\'s way');
  assert.ok(await waitLog(n1, /answers: its model replaces the cached one/, mark, 60_000), `the datastore's model replaces the cache: ${n1.log.slice(mark).join(' | ')}`);
  assert.ok(await until(ready, 30_000, 200), `node1 ready: ${JSON.stringify(await status())}`);
  assert.not.ok(n1.log.slice(mark).some((l) => /not this node's state|not used: its Node/.test(l)), 'the same Node: the cache is neither refused nor withdrawn');
  assert.is((await status()).cachedModel, null);
  assert.is((await get('/readyz')).status, 200);
  assert.is(valueOf(parseMetrics((await get('/metrics')).body), 'podway_model_from_cache'), 0);
  assert.ok(await until(() => talks('web-1', 'web-2') && talks('web-2', 'web-1') && talks('web-1', 'web-1b'), 15_000, 100), 'pods talk on the datastore\'s model');
});

test('a cache of another boot is not applied at once (said): the datastore first, the cache only once it has not answered', async () => {
  const n1 = lab!.node('node1');
  const other = await stopWithCacheOfAnotherBoot(lab!, 'node1', store!.spec);
  const mark = n1.log.length;
  await withEtcdStopped(async (pid) => {
    await lab!.startPodway('node1', 20_000, N1_ARGS);
    assert.ok(await waitLog(n1, new RegExp(`model cache .*node1\\.model\\.json not applied at start: it was written in another boot of the machine \\(boot id ${other}, this one [0-9a-f-]+\\)`), mark, 10_000), `said why: ${n1.log.slice(mark).join(' | ')}`);
    assert.ok(await waitLog(n1, UNREACHABLE_WAY, mark, 10_000), `on the cache the unreachable way: ${n1.log.slice(mark).join(' | ')}`);
    assert.ok(etcdStopped(pid), 'etcd still stopped');
    assert.is((await status()).cachedModel?.first, false);
  });
  assert.not.ok(n1.log.slice(mark).some((l) => FIRST.test(l)), 'not applied at once');
  assert.ok(await until(ready, 60_000, 200), `node1 ready once etcd answers: ${n1.log.slice(mark).join(' | ')}`);
});

test('--no-cache-first: a cache of this boot is used only the unreachable way', async () => {
  const n1 = lab!.node('node1');
  const file = lab!.modelCachePath('node1');
  const boot = readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim();
  assert.is(await lab!.stopPodway('node1'), 0); // writes the datastore's model (this boot's id)
  const r = readModelCache(file, 'node1', store!.spec);
  assert.ok(r !== 'none' && !('refused' in r) && r.bootId === boot, `the cache is this boot's: ${JSON.stringify(r).slice(0, 300)}`);
  const mark = n1.log.length;
  await withEtcdStopped(async (pid) => {
    await lab!.startPodway('node1', 20_000, [...N1_ARGS, '--no-cache-first']);
    assert.ok(await waitLog(n1, UNREACHABLE_WAY, mark, 10_000), `on the cache the unreachable way: ${n1.log.slice(mark).join(' | ')}`);
    assert.ok(etcdStopped(pid), 'etcd still stopped');
  });
  assert.not.ok(n1.log.slice(mark).some((l) => FIRST.test(l) || /not applied at start/.test(l)), `neither applied at once nor said: ${n1.log.slice(mark).join(' | ')}`);
  assert.ok(await until(ready, 60_000, 200), `node1 ready once etcd answers: ${n1.log.slice(mark).join(' | ')}`);
});

const NODE1_KEY = '/calico/resources/v3/projectcalico.org/nodes/node1';
/** The identity of node1's Node in etcd now (null: none). */
const storedNode1 = async (): Promise<NodeIdentity | null> => {
  const e = await store!.kv.get(NODE1_KEY);
  return e ? nodeIdentityOf(e) : null;
};
/** The Node identity node1's model cache records. */
const cachedNode1 = (): NodeIdentity | null | undefined => {
  const r = readModelCache(lab!.modelCachePath('node1'), 'node1', store!.spec);
  return r === 'none' || 'refused' in r ? undefined : r.nodeIdentity;
};
/** `podway delete node node1` on the lab's etcd (node1's podway stopped), run on node2. */
async function deleteNode1(): Promise<void> {
  const r = await execBounded('ip', ['netns', 'exec', lab!.node('node2').ns, process.execPath, PODWAY, 'delete', 'node', 'node1', '--datastore', lab!.datastoreSpec], 30_000);
  assert.is(r.code, 0, `podway delete node node1: ${r.stderr}`);
  assert.is(await storedNode1(), null, 'node1\'s Node deleted');
}
const WITHDRAWN = /model cache \S*node1\.model\.json: its Node node1 \(uid [0-9a-f-]+, created at revision \d+\) is not in the datastore any more \(deleted\): not this node's state: its endpoints, routes and tunnel addresses withdrawn/;
const NOT_USED = /model cache \S*node1\.model\.json not used: its Node node1 \(uid [0-9a-f-]+, created at revision \d+\) is not in the datastore any more \(deleted\); the datastore's model first/;

/** node1 stopped (exit 0: its newest model written, format 4) and its cache rewritten as the
 * podway before format 4 wrote it (test/helpers/model-cache-v3.ts: format 3, no Node); `from`: the
 * format 4 cache to take the model, the time and the boot from (default: the one just written). */
async function stopWithFormat3Cache(from?: CachedModel): Promise<CachedModel> {
  assert.is(await lab!.stopPodway('node1'), 0);
  const file = lab!.modelCachePath('node1');
  const r = from ?? readModelCache(file, 'node1', store!.spec);
  if (r === 'none' || 'refused' in r) return assert.unreachable(`node1's cache: ${JSON.stringify(r)}`) as never;
  writeFormat3Cache(file, 'node1', store!.spec, r.model, r.appliedAt, r.bgp, r.bootId);
  const v3 = JSON.parse(readFileSync(file, 'utf8')) as { version: number; nodeIdentity?: unknown };
  assert.ok(v3.version === 3 && v3.nodeIdentity === undefined, 'format 3, no Node');
  return r;
}
const OLDER_USED = /model cache \S*node1\.model\.json: format 3, written by an older podway: used as this one's; it does not say its Node: the datastore's Node is taken for it only if created before its model was applied at the datastore's first answer/;

test('an upgrade\'s first start (a format 3 cache, as the podway before format 4 wrote it: no Node) forwards on it at once; its Node, created before its model was applied, is found the same; the cache rewritten as format 4', async () => {
  const n1 = lab!.node('node1');
  assert.ok(await until(ready, 30_000, 200), 'node1 ready');
  const r = await stopWithFormat3Cache();
  const node = await store!.kv.get(NODE1_KEY);
  const created = (JSON.parse(node!.value) as { metadata: { creationTimestamp: string } }).metadata.creationTimestamp;
  assert.ok(Date.parse(created) + 1000 <= r.appliedAt.getTime(), `the model (${r.appliedAt.toISOString()}) applied a second or more after the Node's creation (${created})`);
  const mark = n1.log.length;
  await lab!.startPodway('node1', 20_000, N1_ARGS);
  assert.ok(await waitLog(n1, OLDER_USED, mark, 10_000), `format 3 read, said: ${n1.log.slice(mark).join(' | ')}`);
  assert.ok(await waitLog(n1, FIRST, mark, 10_000), `applied at once (not the wait of a start without a cache): ${n1.log.slice(mark).join(' | ')}`);
  assert.not.ok(n1.log.slice(mark).some((l) => /model cache .* ignored:/.test(l)), 'not ignored');
  assert.ok(await until(ready, 60_000, 200), `node1 ready: ${n1.log.slice(mark).join(' | ')}`);
  assert.not.ok(n1.log.slice(mark).some((l) => /node1\.model\.json not used:|not this node's state/.test(l)), `neither refused nor withdrawn: ${n1.log.slice(mark).join(' | ')}`);
  assert.is((await status()).endpoints, 2);
  assert.ok(await until(() => talks('web-1', 'web-2') && talks('web-2', 'web-1') && talks('web-1', 'web-1b'), 15_000, 100), `pods talk: ${await diag()}`);
  // rewritten as format 4 with the Node registered (the same one)
  const stored = await storedNode1();
  assert.ok(await until(() => JSON.stringify(cachedNode1()) === JSON.stringify(stored), 30_000, 200), `the cache records node1's Node now: ${JSON.stringify(cachedNode1())}`);
  assert.is((JSON.parse(readFileSync(lab!.modelCachePath('node1'), 'utf8')) as { version: number }).version, 4);
});

test('a Node deleted and registered again, started with etcd stopped: the old Node\'s cache forwards until etcd answers, then is withdrawn before the datastore\'s model', async () => {
  const n1 = lab!.node('node1');
  assert.ok(await until(ready, 30_000, 200), 'node1 ready');
  assert.is(await lab!.stopPodway('node1'), 0); // writes the newest model, with its Node
  const old = await storedNode1();
  assert.ok(old !== null && old.uid !== null, `node1's Node has a uid: ${JSON.stringify(old)}`);
  assert.equal(cachedNode1(), old, 'the cache records the Node it was written for');
  await deleteNode1();
  const mark = n1.log.length;
  await withEtcdStopped(async (pid) => {
    await lab!.startPodway('node1', 20_000, N1_ARGS);
    assert.ok(await waitLog(n1, FIRST, mark, 10_000), `the cache applied at once (nothing can tell it is stale yet): ${n1.log.slice(mark).join(' | ')}`);
    assert.is((await status()).endpoints, 2, 'the old Node\'s endpoints, while etcd is stopped');
    assert.ok(etcdStopped(pid), 'etcd still stopped');
  });
  assert.ok(await waitLog(n1, WITHDRAWN, mark, 60_000), `withdrawn once the registration read etcd: ${n1.log.slice(mark).join(' | ')}`);
  assert.ok(await waitLog(n1, /answers: its model replaces the cached one/, mark, 60_000), `the datastore's model applied: ${n1.log.slice(mark).join(' | ')}`);
  const at = (re: RegExp) => n1.log.findIndex((l, k) => k >= mark && re.test(l));
  assert.ok(at(WITHDRAWN) < at(/answers: its model replaces the cached one/), 'withdrawn before the datastore\'s model came');
  assert.ok(await waitLog(n1, /model cache withdrawn applied: 0 endpoints/, mark, 1000), `the withdrawn model applied: ${n1.log.slice(mark).join(' | ')}`);
  assert.ok(await until(ready, 30_000, 200), `node1 ready: ${JSON.stringify(await status())}`);
  const st = await status();
  assert.is(st.endpoints, 0, 'the deleted Node\'s endpoints are gone');
  const now = await storedNode1();
  assert.ok(now !== null && now.uid !== old!.uid && now.createRevision !== old!.createRevision, `registered again as another Node: ${JSON.stringify(now)}`);
  assert.ok(await until(() => JSON.stringify(cachedNode1()) === JSON.stringify(now), 30_000, 200), `the cache now records the new Node: ${JSON.stringify(cachedNode1())}`);
});

test('a Node deleted and registered again, started with etcd answering: the old Node\'s cache is not used (or withdrawn, if etcd answered after the host was read)', async () => {
  const n1 = lab!.node('node1');
  assert.is(await lab!.stopPodway('node1'), 0);
  const old = await storedNode1();
  assert.equal(cachedNode1(), old, 'the cache records the Node it was written for');
  await deleteNode1();
  const mark = n1.log.length;
  await lab!.startPodway('node1', 20_000, N1_ARGS);
  assert.ok(await until(ready, 60_000, 200), `node1 ready: ${n1.log.slice(mark).join(' | ')}`);
  const log = n1.log.slice(mark);
  const notUsed = log.some((l) => NOT_USED.test(l));
  const applied = log.some((l) => /start-up: forwarding on the cached model from/.test(l));
  assert.ok(notUsed ? !applied : applied && log.some((l) => WITHDRAWN.test(l)), `refused before its apply, or withdrawn after it: ${log.join(' | ')}`);
  console.log(`  (the old Node's cache was ${notUsed ? 'refused before its apply' : 'applied, then withdrawn'})`);
  const now = await storedNode1();
  assert.ok(now !== null && now.uid !== old!.uid, 'registered again as another Node');
});

test('a format 3 cache of a Node deleted and registered again after its model was applied: not used (or withdrawn, if etcd answered after the host was read), saying the new Node\'s creation', async () => {
  const n1 = lab!.node('node1');
  assert.ok(await until(ready, 30_000, 200), 'node1 ready');
  assert.is(await lab!.stopPodway('node1'), 0);
  const old = readModelCache(lab!.modelCachePath('node1'), 'node1', store!.spec);
  if (old === 'none' || 'refused' in old) return assert.unreachable(`node1's cache: ${JSON.stringify(old)}`);
  await deleteNode1();
  // registered again (a start of this podway), its model's cache then replaced by the old Node's, format 3
  await lab!.startPodway('node1', 20_000, N1_ARGS);
  assert.ok(await until(ready, 60_000, 200), 'node1 registered again, ready');
  await stopWithFormat3Cache(old);
  const mark = n1.log.length;
  await lab!.startPodway('node1', 20_000, N1_ARGS);
  assert.ok(await until(ready, 60_000, 200), `node1 ready: ${n1.log.slice(mark).join(' | ')}`);
  const log = n1.log.slice(mark);
  const why = 'it is of format 3, which does not say which Node node1 it was written for, and the datastore\'s Node node1 was created at \\S+, not before its model was applied \\(\\S+\\): deleted and registered again, or too close to tell';
  const notUsed = log.some((l) => new RegExp(`node1\\.model\\.json not used: ${why}; the datastore's model first`).test(l));
  const applied = log.some((l) => /start-up: forwarding on the cached model from/.test(l));
  const withdrawn = log.some((l) => new RegExp(`node1\\.model\\.json: ${why}: not this node's state: its endpoints, routes and tunnel addresses withdrawn`).test(l));
  assert.ok(notUsed ? !applied : applied && withdrawn, `refused before its apply, or withdrawn after it: ${log.join(' | ')}`);
  console.log(`  (the old Node's format 3 cache was ${notUsed ? 'refused before its apply' : 'applied, then withdrawn'})`);
  ok = true;
});

test.run();
