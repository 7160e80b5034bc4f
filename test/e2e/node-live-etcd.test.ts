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
 *     at once, with no wait.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import * as path from 'node:path';
import { Lab, LabKvStore, LabNodeSpec } from '../../src/lab/lab';
import { LIVE_TTL_S, liveKey, parseLiveRecord } from '../../src/control/node-live';
import { guard, teardown, isRoot, logTail, spawnCollected, until, type Collected } from './e2e-kit';

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
  assert.ok(await until(async () => {
    const e = await store!.kv.get(liveKey('node1'));
    return e !== null && parseLiveRecord(e.value).host === OTHER_HOST;
  }, 60_000), 'its liveness key written');
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
  assert.ok(await until(async () => {
    const e = await store!.kv.get(liveKey('node1'));
    return e !== null && parseLiveRecord(e.value).host === OTHER_HOST;
  }, 60_000), 'its liveness key written');
  assert.is(await stopOther(other), 0, other.err());
  assert.is(await store!.kv.get(liveKey('node1')), null);
  ok = true;
});

test.run();
