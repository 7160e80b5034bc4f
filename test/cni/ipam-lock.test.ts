/**
 * The CNI plugin's host-wide IPAM lock (src/cni/ipam-lock.ts), with the plugin run as a runtime
 * runs it (harness.ts): 12 ADD processes at once against one real etcd (started inside the
 * node's namespace, so the plugin reaches it there on 127.0.0.1) get 12 distinct addresses with
 * no error; an ADD waits while another holder has the lock (it queues a ticket, has allocated
 * nothing, then completes once the lock is released); a lock not released within
 * ipam_lock_timeout_ms fails the ADD with code 11 naming the file and the field, leaving nothing;
 * an older podway's live link(2) lock is honoured. (Kernel-lock behaviour: ipam-lock-flock.test.ts.)
 * Root and network namespaces.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { existsSync, mkdirSync, readdirSync } from 'node:fs';
import * as path from 'node:path';
import { CniHarness, PluginRun } from './harness';
import { Ipam } from '../../src/control/ipam';
import { EtcdKv } from '../../src/control/kv/etcd-kv';
import { FileLock } from '../../src/control/kv/file-lock';
import { FlockLock } from '../../src/cni/flock-lock';
import { flockFileOf } from '../../src/cni/ipam-lock';
import { applyResource } from '../../src/control/v3-store';
import { registerNode } from '../../src/control/node-registration';
import { LabEtcd, ETCD_BINARY } from '../../src/lab/etcd';
import { isRoot, sleep } from '../helpers/netns';
import { until } from '../helpers/until';

if (!isRoot()) throw new Error('the CNI plugin tests need root (network namespaces)');

const cid = (n: string | number): string => `c${n}${Math.random().toString(16).slice(2, 10)}`;


test('12 ADD processes at once on one host against one etcd: 12 distinct addresses, no error; 12 DELs leave IPAM empty', async () => {
  if (!existsSync(ETCD_BINARY)) throw new Error(`${ETCD_BINARY} missing (scripts/setup.sh installs etcd-server)`);
  const h = new CniHarness();
  let etcd: LabEtcd | null = null;
  let kv: EtcdKv | null = null;
  try {
    await h.setup();
    etcd = await LabEtcd.start({ netns: h.node.name, host: '127.0.0.1' });
    kv = new EtcdKv({ endpoints: [etcd.localEndpoint], timeoutMs: 20_000 });
    // one small block size: the 12 share and claim blocks, the contended case
    await applyResource(kv, { apiVersion: 'projectcalico.org/v3', kind: 'IPPool', metadata: { name: 'lock-pool' }, spec: { cidr: '10.250.16.0/24', blockSize: 29 } });
    await registerNode(kv, { name: h.nodeName, ipv4Address: '10.99.0.1/24' });
    // 12 plugin processes and etcd starting at once on 2 CPUs: at load 17 one ADD's first etcd
    // request went unanswered for the default 5 s. What is tested is the lock, not that timeout.
    const extra = { datastore: `etcd:${etcd.endpoint}`, datastoreTimeoutMs: 30_000 };
    const pods = Array.from({ length: 12 }, (_, i) => h.pod(`lk${i}`));
    const ids = pods.map((_, i) => cid(`l${i}`));
    const adds = await Promise.all(pods.map((p, i) => h.call({ command: 'ADD', containerId: ids[i], netns: p.path, ifname: 'eth0', extra })));
    adds.forEach((r, i) => assert.is(r.exitCode, 0, `ADD ${i}: ${r.stdout} ${r.stderr}`));
    const addrs = adds.map((r) => r.json.ips[0].address as string);
    assert.is(new Set(addrs).size, 12, addrs.join(' '));
    for (const a of addrs) assert.ok(a.startsWith('10.250.16.'), a);
    const ipam = new Ipam(kv);
    assert.equal(await ipam.check(), []);
    assert.is((await kv.list('/calico/resources/v3/projectcalico.org/workloadendpoints/')).entries.length, 12);
    assert.equal(h.caliLinks().length, 12);
    // nothing of the lock is left but the kernel lock's file: no queued ticket, no token file
    // No ticket left; the concurrency limit's slot files (src/cni/slots.ts) stay, as the lock file does.
    assert.equal(readdirSync(path.dirname(h.ipamLockFile)).filter((n) => !/^ipam\.lock\.slot\.\d+$/.test(n)), ['containers', 'ipam.lock.flock'], 'the lock file (and the per-container locks\' directory: container-lock.ts)');
    console.log(`  12 concurrent ADDs on etcd: slowest ${Math.max(...adds.map((r) => r.ms))} ms, fastest ${Math.min(...adds.map((r) => r.ms))} ms`);

    const dels = await Promise.all(pods.map((p, i) => h.call({ command: 'DEL', containerId: ids[i], netns: p.path, ifname: 'eth0', extra })));
    dels.forEach((r, i) => assert.is(r.exitCode, 0, `DEL ${i}: ${r.stdout} ${r.stderr}`));
    assert.equal(await ipam.check(), []);
    assert.is((await kv.list('/calico/ipam/v2/handle/')).entries.length, 0);
    assert.is((await ipam.show()).reduce((n, p) => n + p.inUse, 0), 0);
    assert.equal(h.caliLinks(), []);
  } finally {
    await kv?.close().catch(() => undefined);
    await etcd?.stop();
    await h.cleanup();
  }
});

test('an ADD waits while another holder has the IPAM lock, and completes once it is released', async () => {
  const h = new CniHarness();
  const holder = new FlockLock(flockFileOf(h.ipamLockFile));
  try {
    await h.setup();
    mkdirSync(path.dirname(h.ipamLockFile), { recursive: true });
    await holder.acquire(5000);
    const pod = h.pod('wait');
    const id = cid('w');
    let done: PluginRun | null = null;
    const running = h.call({ command: 'ADD', containerId: id, netns: pod.path, ifname: 'eth0' }).then((r) => (done = r));
    // The ADD got as far as the lock: it queued its ticket behind our hold.
    const queued = await until(() => readdirSync(path.dirname(h.ipamLockFile)).some((n) => n.startsWith('ipam.lock.flock.q.')));
    assert.ok(queued, `the ADD queued for the lock: ${readdirSync(path.dirname(h.ipamLockFile)).join(' ')}`);
    assert.is(done, null, 'the ADD did not finish while the lock was held');
    assert.equal(await h.handles(), [], 'nothing allocated while it waits');
    holder.release();
    const r = await running;
    assert.is(r.exitCode, 0, r.stdout + r.stderr);
    assert.ok(r.json.ips[0].address.startsWith('10.251.0.'), r.stdout);
    assert.equal(await h.handles(), [`podway.${id}`]);
  } finally {
    holder.dispose();
    await h.cleanup();
  }
});

test('an IPAM lock not released within ipam_lock_timeout_ms: ADD fails with 11 naming the file and the field, nothing left', async () => {
  const h = new CniHarness();
  const holder = new FlockLock(flockFileOf(h.ipamLockFile));
  try {
    await h.setup();
    mkdirSync(path.dirname(h.ipamLockFile), { recursive: true });
    await holder.acquire(5000);
    const pod = h.pod('tmo');
    const r = await h.call({ command: 'ADD', containerId: cid('t'), netns: pod.path, ifname: 'eth0', extra: { ipam_lock_timeout_ms: 300 } });
    assert.is(r.exitCode, 1, r.stdout);
    assert.is(r.json.code, 11, r.stdout);
    assert.match(r.json.msg, `IPAM lock ${h.ipamLockFile} ("ipam_lock_file" in the network config) not taken`);
    assert.match(r.json.msg, `held by pid ${process.pid}`);
    assert.equal(await h.handles(), []);
    assert.equal(await h.workloadEndpoints(), []);
    assert.equal(h.ipJson(pod, 'link', 'show').map((l) => l.ifname), ['lo'], 'no interface left');
    assert.equal(h.caliLinks(), []);
    // a bad value is refused, naming the field
    const bad = await h.call({ command: 'ADD', containerId: cid('t'), netns: pod.path, ifname: 'eth0', extra: { ipam_lock_file: 'relative/ipam.lock' } });
    assert.is(bad.json.code, 7, bad.stdout);
    assert.match(bad.json.msg, 'ipam_lock_file: expected an absolute file path');
  } finally {
    holder.dispose();
    await h.cleanup();
  }
});

test('upgrade: a live link(2) lock of an older podway (FileLock, no "flock" mark) is honoured: ADD waits, then fails 11 naming it', async () => {
  const h = new CniHarness();
  const old = new FileLock(h.ipamLockFile, 5000);
  try {
    await h.setup();
    mkdirSync(path.dirname(h.ipamLockFile), { recursive: true });
    await old.acquire();
    const pod = h.pod('old');
    const r = await h.call({ command: 'ADD', containerId: cid('o'), netns: pod.path, ifname: 'eth0', extra: { ipam_lock_timeout_ms: 400 } });
    assert.is(r.json.code, 11, r.stdout);
    assert.match(r.json.msg, `IPAM lock ${h.ipamLockFile} ("ipam_lock_file" in the network config) not taken`);
    assert.match(r.json.msg, `held by pid ${process.pid}`);
    assert.match(r.json.msg, 'older than the kernel lock');
    assert.equal(await h.handles(), []);
    await old.release();
    const ok = await h.call({ command: 'ADD', containerId: cid('o'), netns: pod.path, ifname: 'eth0' });
    assert.is(ok.exitCode, 0, ok.stdout + ok.stderr);
  } finally {
    await old.dispose();
    await h.cleanup();
  }
});

test.run();
