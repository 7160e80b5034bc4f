/**
 * A `podway run --node node1` started by mistake on another host must not take node1 over while
 * node1 runs (root, network namespaces, a real etcd in the lab's fabric namespace). The "other
 * host" is lab node2's network namespace (another address) with a host name of its own (`unshare
 * --uts` + `hostname`), running `--node node1`. Its liveness key (control/node-live.ts) is what
 * tells them apart:
 * (a) node1 running: the other host's run exits 2, saying who runs node1, and node1's Node is not
 *     written (same value, same modRevision);
 * (d) node1 killed (-9) and started again on its own host: not refused, no wait (its own key);
 * (c) node1 killed (-9): the other host's run waits for node1's lease to expire (nobody renews
 *     it), then registers node1 with its own address; stopped cleanly, its key is gone at once;
 * (b) node1 stopped cleanly (its lease revoked, the key gone): the other host's run registers
 *     at once, with no wait;
 * (e) node1 and the other host's run started at the same moment (the key absent): the key is
 *     claimed in one transaction before the Node is written, so exactly one runs and the other
 *     exits 2 naming the first;
 * (f) node1 started again on its own host on its model cache (same boot: it forwards on it at
 *     once) while the other host runs node1: its registration is refused, and it exits 2 too
 *     (it used to go on forwarding on the cache, not ready, trying again).
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import * as path from 'node:path';
import { Lab, LabKvStore, LabNodeSpec } from '../../src/lab/lab';
import { LIVE_TTL_S, liveKey, parseLiveRecord } from '../../src/control/node-live';
import { guard, teardown, isRoot, logTail, spawnCollected, until, type Collected } from './e2e-kit';
import { exitedAndRead } from '../helpers/proc';

const SPEC: LabNodeSpec[] = [
  { name: 'node1', subnet: 'a', pods: [{ name: 'web-1', type: 'veth' }] },
  { name: 'node2', subnet: 'a', pods: [] },
];
const OTHER_HOST = `pw-nodelive-${process.pid}`;
const NODE_KEY = '/calico/resources/v3/projectcalico.org/nodes/node1';
const BIN = path.resolve(__dirname, '..', '..', '..', 'bin', 'podway.js');

let lab: Lab | null = null;
let store: LabKvStore | null = null;
let ok = false;
const others: Collected[] = [];

async function storedIp(): Promise<string | undefined> {
  const e = await store!.kv.get(NODE_KEY);
  return e ? (JSON.parse(e.value) as { spec: { bgp?: { ipv4Address?: string } } }).spec.bgp?.ipv4Address : undefined;
}

/** `podway run --node node1` in node2's namespace under the host name OTHER_HOST (stopped with SIGTERM after `limitMs`). */
function otherHostRun(limitMs: number): Collected {
  const n2 = lab!.node('node2');
  const c = spawnCollected('ip', ['netns', 'exec', n2.ns, 'unshare', '--uts', 'sh', '-c', 'hostname "$0" && exec "$@"', OTHER_HOST,
    process.execPath, BIN, 'run', '--node', 'node1', '--datastore', store!.spec, '--control', `${n2.control}.as-node1`, '--model-cache', 'none'], limitMs, { signal: 'SIGTERM' });
  others.push(c);
  return c;
}

/** Once `c` forwards (past its start: a SIGTERM before that exits 143, its key left to expire). */
function forwards(c: Collected, ms = 60_000): Promise<boolean> {
  return until(() => /start-up: forwarding at/.test(c.err()), ms);
}

/** node1's key written by `host` and naming `address` (the registered one: written after the claim). */
async function keyOf(host: string, address: string): Promise<boolean> {
  const e = await store!.kv.get(liveKey('node1'));
  return e !== null && parseLiveRecord(e.value).host === host && parseLiveRecord(e.value).addresses.includes(address);
}

async function stopOther(c: Collected): Promise<number | null> {
  if (c.proc.exitCode === null) c.proc.kill('SIGTERM');
  return c.done;
}

/** node1's podway killed with SIGKILL (no stop: its lease stays until it expires). */
async function killNode1(): Promise<void> {
  const n = lab!.node('node1');
  const p = n.proc!;
  n.proc = null;
  if (p.exitCode !== null || p.signalCode !== null) return; // already ended: its 'exit' is past
  const exited = new Promise((r) => p.once('exit', r));
  p.kill('SIGKILL');
  await exited;
}

test.before(async () => {
  if (!isRoot()) throw new Error('e2e tests need root (network namespaces)');
  lab = guard(new Lab(SPEC, { podOffloads: false }));
  lab.build();
  lab.setMode('vxlan');
  store = await lab.openKvStore('etcd', 'podway-node-live-');
  await lab.useKvDatastore(store.kv, store.spec);
  await lab.startPodway('node1', 20_000);
});

test.after(async () => {
  for (const c of others) await stopOther(c).catch(() => null);
  if (!lab) return;
  if (!ok) {
    console.log(logTail(lab, 30));
    for (const c of others) console.log(`--- other host's run:\n${c.err().split('\n').slice(-15).join('\n')}`);
  }
  await teardown(lab);
  await store?.close();
});

test('(a) node1 running: a run of node1 on another host exits 2 naming it, the Node untouched', async () => {
  const node1Ip = `${lab!.node('node1').ip}/24`;
  assert.ok(await until(async () => (await store!.kv.get(liveKey('node1'))) !== null, 60_000), 'node1 wrote its liveness key');
  const live = parseLiveRecord((await store!.kv.get(liveKey('node1')))!.value);
  assert.is(live.host, (await import('node:os')).hostname());
  assert.equal(live.addresses, [node1Ip]);
  const before = await store!.kv.get(NODE_KEY);
  assert.is(await storedIp(), node1Ip);
  const other = otherHostRun(90_000);
  const code = await other.done;
  assert.is(code, 2, other.err());
  assert.match(other.err(), /node node1 is running on another host/);
  assert.match(other.err(), new RegExp(`written by host ${live.host}`));
  assert.match(other.err(), /stop podway on /);
  const after = await store!.kv.get(NODE_KEY);
  assert.is(after!.modRevision, before!.modRevision, 'the Node was not written');
  assert.is(after!.value, before!.value);
  assert.is(lab!.node('node1').proc?.exitCode, null, 'node1 runs on');
});

test('(d) node1 killed and started again on its own host: not refused, no wait', async () => {
  await killNode1();
  const pidBefore = parseLiveRecord((await store!.kv.get(liveKey('node1')))!.value).pid;
  await lab!.startPodway('node1', 20_000);
  const n = lab!.node('node1');
  assert.not.ok(n.log.some((l) => /written by another host|waiting to see/.test(l)), 'its own key: no wait');
  assert.ok(await until(async () => {
    const e = await store!.kv.get(liveKey('node1'));
    return e !== null && parseLiveRecord(e.value).pid !== pidBefore;
  }, 60_000), 'the key written again by the new run');
  assert.is(await storedIp(), `${n.ip}/24`);
});

test('(c) node1 killed: the other host waits for its lease to expire, then registers node1', async () => {
  await killNode1();
  const other = otherHostRun(120_000);
  const node2Ip = `${lab!.node('node2').ip}/24`;
  assert.ok(await until(() => /the other run's liveness lease expires in \d+ s/.test(other.err()), 30_000), other.err());
  assert.ok(await until(async () => (await storedIp()) === node2Ip, (LIVE_TTL_S + 30) * 1000), `registered after the lease expired: ${other.err()}`);
  assert.match(other.err(), /lease expired \(its podway is not running\): registering here/);
  assert.is(other.proc.exitCode, null, 'it runs');
  assert.ok(await until(() => keyOf(OTHER_HOST, node2Ip), 60_000), 'its liveness key written, with its address');
  assert.ok(await forwards(other), other.err());
  assert.is(await stopOther(other), 0, other.err());
  assert.is(await store!.kv.get(liveKey('node1')), null, 'a clean stop revoked its lease: the key is gone');
});

test('(b) node1 stopped cleanly: the other host registers at once', async () => {
  await lab!.startPodway('node1', 20_000);
  const node1Ip = `${lab!.node('node1').ip}/24`;
  assert.ok(await until(async () => (await storedIp()) === node1Ip && (await store!.kv.get(liveKey('node1'))) !== null, 20_000), 'node1 back, with its key');
  assert.is(await lab!.stopPodway('node1'), 0);
  assert.is(await store!.kv.get(liveKey('node1')), null, 'revoked at the clean stop');
  const other = otherHostRun(120_000);
  const node2Ip = `${lab!.node('node2').ip}/24`;
  assert.ok(await until(async () => (await storedIp()) === node2Ip, 60_000), other.err());
  assert.not.match(other.err(), /written by another host/);
  assert.ok(await until(() => keyOf(OTHER_HOST, node2Ip), 60_000), 'its liveness key written, with its address');
  assert.ok(await forwards(other), other.err());
  assert.is(await stopOther(other), 0, other.err());
  assert.is(await store!.kv.get(liveKey('node1')), null);
});

/** `podway run --node node1` on node1's own host (its namespace, this machine's host name), not through the lab. */
function ownHostRun(limitMs: number): Collected {
  const n1 = lab!.node('node1');
  const c = spawnCollected('ip', ['netns', 'exec', n1.ns, process.execPath, BIN, 'run', '--node', 'node1', '--datastore', store!.spec, '--control', n1.control, '--model-cache', 'none'], limitMs, { signal: 'SIGTERM' });
  others.push(c);
  return c;
}

test('(e) node1 started on two hosts at the same moment: exactly one runs, the other exits 2 naming it', async () => {
  assert.is(await store!.kv.get(liveKey('node1')), null, 'no key: neither waits for a lease');
  const own = ownHostRun(120_000);
  const other = otherHostRun(120_000);
  const first = await Promise.race([own.done.then((code) => ({ who: 'own', code })), other.done.then((code) => ({ who: 'other', code }))]);
  const [loser, winner] = first.who === 'own' ? [own, other] : [other, own];
  assert.is(first.code, 2, `the one refused exits 2: ${loser.err()}`);
  assert.match(loser.err(), /node node1 is running on another host/);
  const winnerHost = winner === own ? (await import('node:os')).hostname() : OTHER_HOST;
  assert.match(loser.err(), new RegExp(`written by host ${winnerHost}`), 'names the one that runs');
  assert.is(winner.proc.exitCode, null, `the other runs: ${winner.err()}`);
  const winnerIp = `${lab!.node(winner === own ? 'node1' : 'node2').ip}/24`;
  assert.ok(await until(async () => (await storedIp()) === winnerIp, 60_000), `the Node has the winner's address: ${winner.err()}`);
  assert.ok(await until(() => keyOf(winnerHost, winnerIp), 30_000), 'the key names the winner and its registered address');
  assert.not.match(loser.err(), new RegExp(`node node1 (registered|updated|unchanged) in`), 'the refused one wrote no Node');
  assert.ok(await forwards(winner), winner.err());
  assert.is(await stopOther(winner), 0, winner.err());
  assert.is(await store!.kv.get(liveKey('node1')), null);
});

test('(f) node1 started on its model cache while another host runs it: refused, exit 2', async () => {
  const other = otherHostRun(120_000);
  const node2Ip = `${lab!.node('node2').ip}/24`;
  assert.ok(await until(async () => (await keyOf(OTHER_HOST, node2Ip)) && (await storedIp()) === node2Ip, 60_000) && await forwards(other), `the other host runs node1: ${other.err()}`);
  // node1's own start, with its lab model cache (written by its earlier runs, this boot): it
  // forwards on the cache at once (its control socket answers) while it registers.
  await lab!.startPodway('node1', 20_000);
  const n1 = lab!.node('node1');
  assert.ok(n1.log.some((l) => /forwarding on the cached model/.test(l)), `started on the cache: ${n1.log.slice(-5).join(' | ')}`);
  const p = n1.proc!;
  // its last log lines ('stopping, exit 2') read too, not only its exit seen
  const code = await Promise.race([exitedAndRead(p).then((x) => x.code), new Promise<null>((resolve) => setTimeout(() => resolve(null), 60_000).unref())]);
  n1.proc = null;
  assert.is(code, 2, n1.log.slice(-8).join(' | '));
  assert.ok(n1.log.some((l) => /node node1 is running on another host.*forwarded on its model cache .* stopping, exit 2/.test(l)), n1.log.slice(-8).join(' | '));
  assert.is(await storedIp(), node2Ip, 'the Node left as the other host wrote it');
  assert.is(other.proc.exitCode, null, 'the other host runs on');
  assert.is(await stopOther(other), 0, other.err());
  ok = true;
});

test.run();
