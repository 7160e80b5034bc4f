/**
 * The last-known-good model cache (src/cli/model-cache.ts) on a real etcd (root, network
 * namespaces). Two podways on `etcd:` (etcd in the fabric namespace), pods on both nodes; etcd is
 * killed by PID, and node1's podway restarted while it is down (an upgrade or a crash during an
 * etcd incident). The restarts on the cache here run with --no-cache-first, the way a cache of an
 * earlier boot is used (model-cache-first-etcd.test.ts has the same boot's, applied at once), but
 * the last case's, which runs as started by default:
 * - node1 forwards at once on the model it cached before: pods across the nodes and on node1
 *   itself talk while etcd is still down (without the cache podway waited for etcd, forwarding
 *   nothing: `starting: waiting for the datastore`);
 * - its status says so and it is not ready (the reason names the cached model);
 * - etcd back, node1 replaces the cached model with the datastore's, is ready again and follows a
 *   change made after (a new pod on node1 attached and reached from node2);
 * - etcd silent (its packets dropped, nothing refused): node1 forwards on the cache once the
 *   datastore has not answered within the bound, and follows etcd once its packets pass again;
 * - a cache damaged, cut short, written by an older podway (format 2, no boot, no Node) or of the wrong
 *   shape (checksum right) is ignored with the reason in the log, and podway waits for etcd as
 *   without a cache;
 * - a cache this host cannot take (its node address held by no interface here) is not applied at
 *   once (said), then, etcd unreachable, stops that start and is set aside (FILE.bad): the next
 *   start waits for etcd instead of failing again;
 * - SIGTERM while on the cache with etcd silent (the registration waiting on it): podway stops
 *   within the stop bound;
 * - the datastore's first model refused by the engine while on the cache (applied at once: same
 *   boot; its Node names a second address whose VXLAN port another socket holds): node1 stays on
 *   the cache, not ready, saying why (the model thread in sync does not make it ready), and is
 *   ready once one of the datastore's models is applied.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { ChildProcess, spawn } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { Lab, LabKvStore, LabNodeSpec, START_WAIT_MIN_MS } from '../../src/lab/lab';
import type { LabEtcd } from '../../src/lab/etcd';
import { createHash } from 'node:crypto';
import { readModelCache, withChecksum, writeModelCache } from '../../src/cli/model-cache';
import { controlRequest } from '../../src/dataplane/control-server';
import { guard, teardown, isRoot, logTail, nsExec, until, waitLog } from './e2e-kit';

const SPEC: LabNodeSpec[] = [
  { name: 'node1', subnet: 'a', pods: [{ name: 'web-1', type: 'veth' }, { name: 'web-1b', type: 'veth' }, { name: 'web-1c', type: 'veth' }] },
  { name: 'node2', subnet: 'a', pods: [{ name: 'web-2', type: 'veth' }] },
];

let lab: Lab | null = null;
let store: LabKvStore | null = null;
let etcd: LabEtcd | null = null;
let ok = false;

interface Status { ready?: boolean; notReady?: string[]; cachedModel?: { file: string; appliedAt: string } | null; endpoints?: number; starting?: string }
const status = async (): Promise<Status> => (await controlRequest(lab!.node('node1').control, { cmd: 'status', starting: true }, 5000)) as Status;

/** The unreachable datastore's way of using the cache (a cache of another boot is used so). */
const NOT_FIRST = ['--no-cache-first'];

const talks = (from: string, to: string) => lab!.ping(from, lab!.pod(to).ip, 1, 56, ['-W', '1']).received === 1;

/** 3 echo requests each way, none lost. */
function pairTalks(a: string, b: string, what: string): void {
  for (const [x, y] of [[a, b], [b, a]]) {
    const p = lab!.ping(x, lab!.pod(y).ip, 3, 56, ['-W', '2']);
    assert.is(p.loss, 0, `${what}: ${x} -> ${y}: ${JSON.stringify(p)}`);
  }
}

test.before(async () => {
  if (!isRoot()) throw new Error('e2e tests need root (network namespaces)');
  lab = guard(new Lab(SPEC, { podOffloads: false }));
  lab.build();
  lab.setMode('vxlan');
  store = await lab.openKvStore('etcd', 'podway-modelcache-etcd-');
  etcd = await lab.startEtcd();
  // web-1c's endpoint comes after the outage: node1 must follow etcd again by then.
  await lab.useKvDatastore(store.kv, store.spec, { withoutEndpoints: ['web-1c'] });
  await lab.startPodway('node1', 20_000);
  await lab.startPodway('node2', 20_000);
});

test.after(async () => {
  if (!lab) return;
  if (!ok) console.log(logTail(lab, 30), `\n--- etcd:\n${etcd?.log().slice(-1500)}`);
  await teardown(lab); // etcd too (killed by PID, its data removed)
  await store?.close();
});

test('at start: pods talk across the nodes and on node1; node1 wrote its model cache', async () => {
  assert.ok(await until(() => talks('web-1', 'web-2') && talks('web-2', 'web-1') && talks('web-1', 'web-1b'), 15_000, 100), 'pods talk');
  pairTalks('web-1', 'web-2', 'across the nodes');
  pairTalks('web-1', 'web-1b', 'on node1');
  const file = lab!.modelCachePath('node1');
  assert.ok(await until(() => existsSync(file), 10_000, 100), `node1 wrote ${file}`);
  const c = JSON.parse(readFileSync(file, 'utf8')) as { format: string; version: number; node: string; datastore: string; bgp: string | null; bootId: string };
  assert.is(c.format, 'podway-model-cache');
  assert.is(c.version, 4);
  assert.is(c.bootId, readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim(), 'this boot\'s id');
  assert.is(c.bgp, null, 'no BGP settings without --bgp');
  assert.is(c.node, 'node1');
  assert.is(c.datastore, store!.spec);
  const st = await status();
  assert.is(st.ready, true, `ready: ${JSON.stringify(st.notReady)}`);
  assert.is(st.cachedModel, null);
});

test('etcd killed, node1\'s podway restarted: it forwards on its cached model while etcd is still down, not ready, saying why', async () => {
  const n1 = lab!.node('node1');
  await etcd!.kill();
  assert.not.ok(etcd!.alive(), 'etcd is down');
  assert.is(await lab!.stopPodway('node1'), 0, 'node1 stopped cleanly');
  const mark = n1.log.length;
  await lab!.startPodway('node1', 20_000, NOT_FIRST); // resolves once the engine answers status (forwarding)
  assert.ok(await waitLog(n1, /unreachable: forwarding on the cached model from \S+ \(.*node1\.model\.json: 2 endpoints/, mark, 10_000), `node1 says it runs on the cache: ${n1.log.slice(mark).join(' | ')}`);
  assert.ok(await until(() => talks('web-1', 'web-2') && talks('web-2', 'web-1') && talks('web-1', 'web-1b'), 15_000, 100), `pods talk on the cached model: ${n1.log.slice(mark).join(' | ')}`);
  pairTalks('web-1', 'web-2', 'across the nodes, etcd down');
  pairTalks('web-1', 'web-1b', 'on node1, etcd down');
  assert.not.ok(etcd!.alive(), 'etcd is still down');
  const st = await status();
  assert.is(st.ready, false, 'not ready on the cached model');
  assert.ok(st.notReady?.some((r) => /^datastore: running on the cached model from .*: datastore unreachable/.test(r)), `the reason names the cache: ${JSON.stringify(st.notReady)}`);
  assert.ok(st.cachedModel && st.cachedModel.file === lab!.modelCachePath('node1'), `status names the cache: ${JSON.stringify(st.cachedModel)}`);
  // the reason (status' notReady is /readyz's reasons) says how old the cached model is, as status' cachedModel
  const reason = st.notReady!.find((r) => r.startsWith('datastore: '))!;
  assert.match(reason, new RegExp(`; the cached model \\(from ${st.cachedModel!.appliedAt.replace(/\./g, '\\.')}\\) is (\\d+ s|\\d+ min \\d+ s) old$`), reason);
  // and for how long the datastore has been away (since the start here: never in sync)
  assert.match(reason, /: datastore unreachable.* \(for (\d+ s|\d+ min \d+ s), since \d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ\); the cached model/, reason);
  assert.is(st.endpoints, 2);
  // stopped while still on the cache (the datastore's start given up, nothing left running), and
  // started on it once more
  assert.is(await lab!.stopPodway('node1'), 0, 'node1 stops cleanly on the cached model');
  await lab!.startPodway('node1', 20_000, NOT_FIRST);
  assert.ok(await until(() => talks('web-1', 'web-2') && talks('web-1', 'web-1b'), 15_000, 100), 'pods talk after a second restart on the cache');
  assert.ok((await status()).cachedModel, 'on the cache again');
});

test('etcd back: node1 takes the datastore\'s model, is ready again and follows a new pod', async () => {
  const n1 = lab!.node('node1');
  const mark = n1.log.length;
  await etcd!.start();
  assert.ok(await waitLog(n1, /answers: its model replaces the cached one/, mark, 30_000), `node1 follows etcd again: ${n1.log.slice(mark).join(' | ')}`);
  assert.ok(await until(async () => (await status()).ready === true, 20_000, 200), `node1 ready again: ${JSON.stringify(await status())}`);
  assert.is((await status()).cachedModel, null);
  await lab!.addEndpoint('web-1c');
  assert.ok(await until(async () => (await status()).endpoints === 3, 20_000, 100), `node1 attaches web-1c: ${JSON.stringify(await status())}`);
  assert.ok(await until(() => talks('web-2', 'web-1c') && talks('web-1c', 'web-2'), 15_000, 100), 'the new pod talks across the nodes');
  pairTalks('web-1c', 'web-2', 'new pod after the outage');
  pairTalks('web-1', 'web-1b', 'on node1 after the outage');
});

test('etcd silent to node1 (packets dropped): node1 restarted forwards on the cache after the bound, and follows etcd once it answers', async () => {
  const n1 = lab!.node('node1');
  assert.is(await lab!.stopPodway('node1'), 0);
  const table = `podway_test_blackhole_${process.pid}`;
  let blocked = true;
  nsExec(n1.ns, ['nft', `add table inet ${table}; add chain inet ${table} out { type filter hook output priority 0; }; add rule inet ${table} out tcp dport 2379 drop`]);
  try {
    const mark = n1.log.length;
    await lab!.startPodway('node1', 20_000, NOT_FIRST);
    assert.ok(await waitLog(n1, /unreachable: forwarding on the cached model from/, mark, 10_000), `node1 runs on the cache: ${n1.log.slice(mark).join(' | ')}`);
    assert.ok(await until(() => talks('web-1c', 'web-2') && talks('web-1', 'web-1b'), 15_000, 100), 'pods talk (web-1c too: the cache has it)');
    assert.ok((await status()).cachedModel, 'on the cache');
    assert.ok(etcd!.alive(), 'etcd runs all along');
    // SIGTERM while the registration still waits on the silent etcd: aborted, podway stops
    // within lab's stop bound (SIGKILL after it: exit null), and starts on the cache again.
    assert.is(await lab!.stopPodway('node1'), 0, `node1 stops while its registration waits on a silent etcd: ${n1.log.slice(mark).join(' | ')}`);
    const mark2 = n1.log.length;
    await lab!.startPodway('node1', 20_000, NOT_FIRST);
    assert.ok(await waitLog(n1, /unreachable: forwarding on the cached model from/, mark2, 10_000), `node1 runs on the cache again: ${n1.log.slice(mark2).join(' | ')}`);
    nsExec(n1.ns, ['nft', 'delete', 'table', 'inet', table]);
    blocked = false;
    assert.ok(await waitLog(n1, /answers: its model replaces the cached one/, mark, 60_000), `node1 follows etcd: ${n1.log.slice(mark).join(' | ')}`);
    assert.ok(await until(async () => (await status()).ready === true, 20_000, 200), `ready: ${JSON.stringify(await status())}`);
  } finally {
    if (blocked) nsExec(n1.ns, ['nft', 'delete', 'table', 'inet', table]);
  }
});

/** node1's cache as it is written now, edited into what older or damaged files hold. */
const CACHE_VARIANTS: { what: string; edit: (text: string) => string; said: RegExp }[] = [
  // one word of the model changed, the file still JSON: the checksum no longer matches
  { what: 'damaged', edit: (t) => { const c = JSON.parse(t) as { model: string }; return JSON.stringify({ ...c, model: c.model.replace('"endpoints"', '"endpointz"') }); }, said: /ignored: its checksum does not match: damaged/ },
  // a write cut short (not podway's: it replaces the file whole; a disk's or a hand's)
  { what: 'cut short', edit: (t) => t.slice(0, Math.floor(t.length * 0.6)), said: /ignored: not JSON \(.*\): damaged or cut short/ },
  // format 2 (the podways before the boot id): no boot, no Node, the checksum of the model and
  // the BGP settings only (format 3, the podway before format 4's, is read: model-cache-first-etcd)
  { what: 'an older podway\'s (format 2, no boot, no Node)', edit: (t) => {
    const c = JSON.parse(t) as Record<string, unknown> & { model: string; bgp: string | null };
    const v2: Record<string, unknown> = { ...c, version: 2, sha256: createHash('sha256').update(`${c.model}\n${c.bgp ?? 'null'}`).digest('hex') };
    delete v2.nodeIdentity;
    delete v2.bootId;
    return JSON.stringify(v2);
  }, said: /ignored: format version 2, written by an older podway: it lacks what this one checks \(the boot of the machine and the Node it was written for\), and this podway reads formats 3 and 4 only/ },
  // the right checksum over a model of the wrong shape (an endpoint's addresses as text)
  { what: 'of the wrong shape', edit: (t) => {
    const c = JSON.parse(t) as Record<string, unknown> & { model: string };
    const m = JSON.parse(c.model) as { endpoints: { ips: unknown }[] };
    m.endpoints[0]!.ips = ['10.244.0.1'];
    return JSON.stringify(withChecksum({ ...c, model: JSON.stringify(m) }));
  }, said: /ignored: the model is malformed \(model\.endpoints\[0\]\.ips\)/ },
];

test('a damaged, cut short, older podway\'s or wrongly shaped cache is ignored, saying why: podway waits for the datastore as without a cache', async () => {
  const n1 = lab!.node('node1');
  const file = lab!.modelCachePath('node1');
  for (const v of CACHE_VARIANTS) {
    assert.ok(await until(async () => (await status()).ready === true, 30_000, 200), `node1 ready before (${v.what})`);
    assert.is(await lab!.stopPodway('node1'), 0);
    await etcd!.kill();
    const good = readFileSync(file, 'utf8');
    assert.ok(readModelCache(file, 'node1', store!.spec) !== 'none', 'a cache to edit');
    writeFileSync(file, v.edit(good));
    const mark = n1.log.length;
    let started = false;
    const start = lab!.startPodway('node1', 20_000).then(() => (started = true), () => undefined);
    const said = new RegExp(`model cache .*node1\\.model\\.json ${v.said.source}.*; the start waits for the datastore as without a cache`);
    assert.ok(await waitLog(n1, said, mark, START_WAIT_MIN_MS), `${v.what}: the reason is logged: ${n1.log.slice(mark).join(' | ')}`);
    assert.ok(await until(async () => {
      try {
        return /waiting for the datastore/.test((await status()).starting ?? '');
      } catch {
        return false;
      }
    }, 15_000, 200), `${v.what}: node1 waits for the datastore`);
    assert.not.ok(started, `${v.what}: not forwarding without the datastore`);
    assert.not.ok(n1.log.slice(mark).some((l) => /forwarding on the cached model/.test(l)), `${v.what}: the cache is not forwarded on`);
    await etcd!.start();
    await start;
    assert.ok(started || (await until(async () => (await status()).ready === true, 20_000, 200)), `${v.what}: node1 starts once etcd is back: ${n1.log.slice(mark).join(' | ')}`);
    assert.ok(await until(() => talks('web-1', 'web-2') && talks('web-1', 'web-1b'), 15_000, 100), `${v.what}: pods talk again`);
  }
});

test('a cached model the host cannot take is set aside: the next start waits for the datastore', async () => {
  const n1 = lab!.node('node1');
  const file = lab!.modelCachePath('node1');
  assert.ok(await until(async () => (await status()).ready === true, 20_000, 200), 'node1 ready before');
  assert.is(await lab!.stopPodway('node1'), 0);
  const r = readModelCache(file, 'node1', store!.spec);
  if (r === 'none' || 'refused' in r || r.nodeIdentity === null) return assert.unreachable(`node1's cache (format 4): ${JSON.stringify(r)}`);
  // an address no interface of node1 holds (10.99.0.200), written as a sound cache
  await writeModelCache(file, 'node1', store!.spec, { ...r.model, node: { ...r.model.node, ip: ((10 << 24) | (99 << 16) | 200) >>> 0 } }, r.appliedAt, r.nodeIdentity);
  await etcd!.kill();
  const mark = n1.log.length;
  let failed = '';
  await lab!.startPodway('node1', 20_000).catch((e: Error) => (failed = e.message));
  assert.match(failed, /exited \(1\)/, `that start fails: ${n1.log.slice(mark).join(' | ')}`);
  assert.ok(n1.log.slice(mark).some((l) => /model cache .*node1\.model\.json not applied at start: its node address: no interface holds the node IP 10\.99\.0\.200/.test(l)), `not applied at once (same boot, but an address no interface holds): ${n1.log.slice(mark).join(' | ')}`);
  assert.ok(await waitLog(n1, /the cached model could not be applied .*moved to .*node1\.model\.json\.bad; the next start waits for the datastore/, mark, 5000), `said: ${n1.log.slice(mark).join(' | ')}`);
  assert.ok(existsSync(`${file}.bad`) && !existsSync(file), 'set aside');
  await lab!.stopPodway('node1');
  // the next start (etcd still down) waits for etcd, then forwards on its model
  let started = false;
  const start = lab!.startPodway('node1', 20_000).then(() => (started = true), () => undefined);
  assert.ok(await until(async () => {
    try {
      return /waiting for the datastore/.test((await status()).starting ?? '');
    } catch {
      return false;
    }
  }, START_WAIT_MIN_MS, 200), 'node1 waits for the datastore');
  assert.not.ok(started, 'not forwarding without the datastore');
  await etcd!.start();
  await start;
  assert.ok(started || (await until(async () => (await status()).ready === true, 20_000, 200)), `node1 starts once etcd is back: ${n1.log.slice(mark).join(' | ')}`);
  assert.ok(await until(() => talks('web-1', 'web-2') && talks('web-1', 'web-1b'), 15_000, 100), 'pods talk again');
});

test('the datastore\'s first model refused while on the cache: still on the cache and not ready, saying why; ready only once one of its models is applied', async () => {
  const n1 = lab!.node('node1');
  const nodeKey = '/calico/resources/v3/projectcalico.org/nodes/node1';
  const setNodeIp = async (ip: string) => {
    const e = (await store!.kv.get(nodeKey))!;
    const o = JSON.parse(e.value) as { spec: { bgp: { ipv4Address: string } } };
    o.spec.bgp.ipv4Address = `${ip}/24`;
    assert.ok(await store!.kv.update(nodeKey, JSON.stringify(o), e.modRevision), `Node address ${ip} written`);
  };
  const own = n1.ip;
  // A second address on node1 (B), which the datastore's Node will name, with its VXLAN port
  // taken by another socket: the engine refuses to follow B (EADDRINUSE on B:4789).
  const other = `${own.split('.').slice(0, 3).join('.')}.201`;
  const table = `podway_test_blackhole2_${process.pid}`;
  let blocked = false;
  let holder: ChildProcess | null = null;
  assert.ok(await until(async () => (await status()).ready === true, 20_000, 200), 'node1 ready before');
  assert.is(await lab!.stopPodway('node1'), 0);
  nsExec(n1.ns, ['ip', 'addr', 'add', `${other}/24`, 'dev', 'eth0']);
  try {
    // (no SO_REUSEADDR: podway's bind of the same address and port fails; ends by itself after 5 min)
    holder = spawn('ip', ['netns', 'exec', n1.ns, process.execPath, '-e', `const s = require('node:dgram').createSocket('udp4'); s.bind(4789, '${other}', () => console.log('bound')); setTimeout(() => process.exit(0), 300000);`], { stdio: ['ignore', 'pipe', 'inherit'] });
    let bound = false;
    holder.stdout!.on('data', (d: Buffer) => { if (/bound/.test(d.toString())) bound = true; });
    assert.ok(await until(() => bound, 10_000, 50), `a socket holds ${other}:4789`);
    await setNodeIp(other);
    // etcd silent to node1 at start: it forwards on its cache (address A; applied at once, same
    // boot), then etcd answers with B.
    nsExec(n1.ns, ['nft', `add table inet ${table}; add chain inet ${table} out { type filter hook output priority 0; }; add rule inet ${table} out tcp dport 2379 drop`]);
    blocked = true;
    const mark = n1.log.length;
    await lab!.startPodway('node1', 20_000);
    assert.ok(await waitLog(n1, /start-up: forwarding on the cached model from \S+ \(same boot\) while the datastore answers/, mark, 10_000), `node1 runs on the cache: ${n1.log.slice(mark).join(' | ')}`);
    nsExec(n1.ns, ['nft', 'delete', 'table', 'inet', table]);
    blocked = false;
    assert.ok(await waitLog(n1, new RegExp(`update rejected, keeping the last good state: .*${other.replace(/\./g, '\\.')}:4789: Address already in use`), mark, 60_000), `the datastore's model is refused: ${n1.log.slice(mark).join(' | ')}`);
    // The model thread is in sync with the datastore, but its model is not in force: not ready.
    assert.ok(await until(async () => (await status()).notReady?.some((r) => /the datastore's model was refused/.test(r)) === true, 10_000, 200), `the reason: ${JSON.stringify(await status())}`);
    const st = await status();
    assert.is(st.ready, false, 'not ready while the cache is in force');
    assert.ok(st.cachedModel, 'status still names the cache');
    assert.not.ok(n1.log.slice(mark).some((l) => /answers: its model replaces the cached one/.test(l)), 'the cache was not left');
    // B free again and the Node back on A: the datastore's model applies, the cache is left, ready.
    holder.kill('SIGKILL');
    holder = null;
    await setNodeIp(own);
    assert.ok(await waitLog(n1, /answers: its model replaces the cached one/, mark, 30_000), `node1 leaves the cache: ${n1.log.slice(mark).join(' | ')}`);
    assert.ok(await until(async () => (await status()).ready === true, 20_000, 200), `ready: ${JSON.stringify(await status())}`);
    assert.is((await status()).cachedModel, null);
    assert.ok(await until(() => talks('web-1', 'web-2') && talks('web-2', 'web-1'), 15_000, 100), 'pods talk across the nodes again');
    ok = true;
  } finally {
    if (holder) holder.kill('SIGKILL');
    if (blocked) nsExec(n1.ns, ['nft', 'delete', 'table', 'inet', table]);
    nsExec(n1.ns, ['ip', 'addr', 'del', `${other}/24`, 'dev', 'eth0']);
  }
});

test.run();
