/**
 * CNI ADD and DEL with `ipam_lock_file` and `pending_del_dir` on a full disk (a real 2 MB tmpfs,
 * filled to ENOSPC), against a real etcd:
 *  - ADD and DEL succeed while etcd answers: the IPAM lock is the kernel's flock, which needs no
 *    space; the old link(2) lock's token, which does, is left out and said once on stderr. DEL
 *    releases the address and deletes the WorkloadEndpoint (nothing spooled, nothing left in etcd).
 *    Before: both failed with code 5 (`IPAM lock ...: ENOSPC ... write`), and the DEL left the
 *    endpoint and address in etcd after removing the pod's interface.
 *  - no `ipam.lock.<pid>.<rand>` token is left by a failed write, and an empty one left by an
 *    older podway is swept (before: one per call, for good).
 *  - etcd down as well: the DEL, which can neither release nor spool, fails with a message naming
 *    what is left in etcd and the commands that release it (before: only the two reasons).
 *  - a handle `podway.<id>` counting an address no block holds (what a plugin SIGKILLed between
 *    the handle's write and its block's leaves) is deleted by the DEL (before: left, `ipam check`
 *    reported it).
 * The tmpfs is mounted under a temporary directory and unmounted however the test ends; etcd is
 * started and stopped by PID (test/helpers/etcd.ts); tap pods (the plugin runs in this namespace
 * to reach etcd on loopback, and a tap device is all inside the pod namespace).
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { execFileSync } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, mkdtempSync, openSync, readdirSync, rmSync, utimesSync, writeFileSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { CniHarness } from './harness';
import { Ipam } from '../../src/control/ipam';
import { handleKey } from '../../src/control/ipam/keys';
import { encodeHandle } from '../../src/control/ipam/records';
import { applyResource } from '../../src/control/v3-store';
import { registerNode } from '../../src/control/node-registration';

const PODWAY_BIN = path.resolve(__dirname, '..', '..', '..', 'bin', 'podway.js');

/** Writes `dir/fill` until the filesystem is full (ENOSPC); returns the bytes written. */
function fill(dir: string): number {
  const fd = openSync(path.join(dir, 'fill'), 'w');
  const chunk = Buffer.alloc(64 * 1024, 0x61);
  let total = 0;
  try {
    for (let i = 0; i < 10_000; i++) {
      try {
        total += writeSync(fd, chunk);
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code === 'ENOSPC') return total;
        throw e;
      }
    }
  } finally {
    closeSync(fd);
  }
  throw new Error(`${dir}: not full after ${total} bytes (not the 2 MB tmpfs?)`);
}

/** The link(2) lock's token files (`ipam.lock.<pid>.<12 hex>`) in the lock's directory. */
function tokens(stateDir: string): string[] {
  return readdirSync(stateDir).filter((n) => /^ipam\.lock\.\d+\.[0-9a-f]{12}$/.test(n));
}

interface DiskFull {
  readonly h: CniHarness;
  readonly kv: import('../../src/control/kv/etcd-kv').EtcdKv;
  readonly etcd: import('../helpers/etcd').EtcdServer;
  readonly extra: Record<string, unknown>;
  readonly stateDir: string;
  readonly spool: string;
  readonly mnt: string;
}

async function withDiskFull(label: string, cidr: string, fn: (s: DiskFull) => Promise<void>): Promise<void> {
  const { startEtcd, ETCD_BINARY } = await import('../helpers/etcd');
  const { EtcdKv } = await import('../../src/control/kv/etcd-kv');
  if (!existsSync(ETCD_BINARY)) throw new Error(`${ETCD_BINARY} missing (scripts/setup.sh installs etcd-server)`);
  const mnt = mkdtempSync(path.join(tmpdir(), `podway-diskfull-${label}-`));
  execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=2m,mode=0755', `podway-diskfull-${label}`, mnt]);
  const etcd = await startEtcd();
  const h = new CniHarness(undefined, false);
  const kv = new EtcdKv({ endpoints: [etcd.endpoint] });
  try {
    await h.setup();
    await applyResource(kv, { apiVersion: 'projectcalico.org/v3', kind: 'IPPool', metadata: { name: `${label}-pool` }, spec: { cidr, blockSize: 26 } });
    await registerNode(kv, { name: h.nodeName, ipv4Address: '10.99.0.1/24' });
    const stateDir = path.join(mnt, 'state');
    const spool = path.join(mnt, 'pending-del');
    await fn({
      h, kv, etcd, mnt, stateDir, spool,
      extra: { datastore: undefined, datastore_type: 'etcdv3', etcd_endpoints: etcd.endpoint, interfaceType: 'tap', datastoreTimeoutMs: 1500, ipam_lock_file: path.join(stateDir, 'ipam.lock'), pending_del_dir: spool },
    });
  } finally {
    await kv.close().catch(() => undefined);
    await h.cleanup();
    await etcd.stop();
    try {
      execFileSync('umount', [mnt]);
    } catch {
      execFileSync('umount', ['-l', mnt]);
    }
    rmSync(mnt, { recursive: true, force: true });
  }
}

const wepKeys = async (kv: DiskFull['kv'], id: string) => (await kv.list('/calico/resources/v3/projectcalico.org/workloadendpoints/')).entries.filter((e) => e.value.includes(id)).map((e) => e.key);

test('full disk, etcd up: ADD and DEL succeed, DEL releases in etcd, the token is said once and none is left', async () => {
  await withDiskFull('up', '10.250.40.0/24', async ({ h, kv, extra, stateDir, spool, mnt }) => {
    const a = `dfa${h.tag}`;
    const b = `dfb${h.tag}`;
    const podA = h.pod('dfa');
    const podB = h.pod('dfb');
    const addA = await h.call({ command: 'ADD', containerId: a, netns: podA.path, ifname: 'eth0', extra });
    assert.is(addA.exitCode, 0, addA.stdout + addA.stderr);
    // An empty token an older podway left on a full disk, older than the sweep's 10 s.
    const oldEmpty = path.join(stateDir, 'ipam.lock.4194000.0123456789ab');
    writeFileSync(oldEmpty, '');
    utimesSync(oldEmpty, new Date(Date.now() - 60_000), new Date(Date.now() - 60_000));
    const filled = fill(mnt);
    assert.ok(filled > 0 && filled <= 2 * 1024 * 1024, `filled ${filled} bytes`);

    const addB = await h.call({ command: 'ADD', containerId: b, netns: podB.path, ifname: 'eth0', extra });
    assert.is(addB.exitCode, 0, `ADD on a full disk: ${addB.stdout} ${addB.stderr}`);
    assert.is(addB.stderr.split('cannot be written').length - 1, 1, `said once: ${addB.stderr}`);
    assert.match(addB.stderr, 'ENOSPC');
    assert.equal(tokens(stateDir), [], 'no token left (the failed write\'s removed, the old empty one swept)');

    for (const [id, pod] of [[a, podA], [b, podB]] as const) {
      const del = await h.call({ command: 'DEL', containerId: id, netns: pod.path, ifname: 'eth0', extra });
      assert.is(del.exitCode, 0, `DEL ${id} on a full disk: ${del.stdout} ${del.stderr}`);
      assert.not.match(del.stderr, 'deferred', 'released, not spooled');
      assert.equal(await wepKeys(kv, id), [], `${id}: its WorkloadEndpoint deleted in etcd`);
      assert.is(await kv.get(handleKey(`podway.${id}`)), null, `${id}: its handle released`);
      assert.equal(h.ipJson(pod, 'link', 'show').map((l) => l.ifname), ['lo'], `${id}: its device removed`);
    }
    assert.equal(await new Ipam(kv).check(), [], 'IPAM consistent');
    assert.equal(existsSync(spool) ? readdirSync(spool).filter((n) => n.endsWith('.json')) : [], [], 'nothing spooled');
    assert.equal(tokens(stateDir), [], 'no token left after the DELs');
  });
});

test('full disk, etcd down: DEL that can neither release nor spool names what is left and the commands', async () => {
  await withDiskFull('down', '10.250.41.0/24', async ({ h, kv, etcd, extra, stateDir, mnt }) => {
    const c = `dfc${h.tag}`;
    const pod = h.pod('dfc');
    const add = await h.call({ command: 'ADD', containerId: c, netns: pod.path, ifname: 'eth0', extra });
    assert.is(add.exitCode, 0, add.stdout + add.stderr);
    // The spool directory as DEL would make it (so that its write, not the mkdir, meets the full disk).
    if (!existsSync(path.join(mnt, 'pending-del'))) mkdirSync(path.join(mnt, 'pending-del'), { mode: 0o700 });
    fill(mnt);
    await etcd.kill();
    const del = await h.call({ command: 'DEL', containerId: c, netns: pod.path, ifname: 'eth0', extra });
    assert.is.not(del.exitCode, 0, 'nothing released or deferred: DEL fails');
    const msg: string = del.json?.msg ?? '';
    for (const text of [msg, del.stderr]) {
      assert.match(text, 'ENOSPC', 'the spool\'s reason');
      assert.match(text, `LEFT in the datastore`);
      assert.match(text, `IPAM handle podway.${c}`);
      assert.match(text, `podway ipam release --handle podway.${c} --grace-period 0 --datastore etcd:${etcd.endpoint}`);
      assert.match(text, /podway delete workloadendpoint \S+ -n default --datastore etcd:/);
      assert.match(text, 'podway ipam check --datastore');
    }
    assert.equal(h.ipJson(pod, 'link', 'show').map((l) => l.ifname), ['lo'], 'the pod\'s device removed all the same');
    assert.equal(tokens(stateDir), [], 'no token left');
    // The commands it gives release what it left, once etcd is back.
    await etcd.start();
    const fix = /Once it answers: (.*) \(only one of the endpoints named exists\)/.exec(msg)?.[1];
    assert.ok(fix, `commands in: ${msg}`);
    for (const cmd of fix!.split('; ')) {
      const argv = cmd.split(' ');
      assert.is(argv[0], 'podway');
      try {
        execFileSync(process.execPath, [PODWAY_BIN, ...argv.slice(1)], { stdio: 'pipe', timeout: 30_000 });
      } catch (e) {
        // The candidate endpoint that was never written: said not to exist.
        assert.match(String((e as { stderr?: Buffer }).stderr ?? ''), /not (found|exist)/i, `${cmd}: ${String((e as { stderr?: Buffer }).stderr ?? e)}`);
      }
    }
    assert.equal(await wepKeys(kv, c), [], 'the endpoint deleted by the command given');
    assert.is(await kv.get(handleKey(`podway.${c}`)), null, 'the handle released by the command given');
    assert.equal(await new Ipam(kv).check(), [], 'IPAM consistent');
  });
});

test('DEL deletes a handle that counts an address no block holds (an ADD SIGKILLed between the two writes)', async () => {
  await withDiskFull('handle', '10.250.42.0/24', async ({ h, kv, extra }) => {
    const live = `dfl${h.tag}`;
    const killed = `dfk${h.tag}`;
    const pod = h.pod('dfl');
    const add = await h.call({ command: 'ADD', containerId: live, netns: pod.path, ifname: 'eth0', extra });
    assert.is(add.exitCode, 0, add.stdout + add.stderr);
    const addr = (add.json.ips[0].address as string).split('/')[0]!;
    const block = `${addr.split('.').slice(0, 3).join('.')}.0/26`;
    // The state an ADD of `killed` leaves when SIGKILLed after IPAM wrote its handle (incremented
    // first, as Calico's) and before the block's write: the handle counts 1 in a block holding none.
    assert.ok(await kv.create(handleKey(`podway.${killed}`), encodeHandle(new Map([[block, 1]]))), 'handle written');
    const before = await new Ipam(kv).check();
    assert.ok(before.some((p) => JSON.stringify(p).includes(`podway.${killed}`)), `ipam check reports it before: ${JSON.stringify(before)}`);
    const del = await h.call({ command: 'DEL', containerId: killed, netns: h.pod('dfk').path, ifname: 'eth0', extra });
    assert.is(del.exitCode, 0, del.stdout + del.stderr);
    assert.is(await kv.get(handleKey(`podway.${killed}`)), null, 'the handle deleted by its ID');
    assert.match(del.stderr, `IPAM handle podway.${killed} counted addresses no block holds`);
    assert.equal(await new Ipam(kv).check(), [], 'IPAM consistent');
    // The live pod's address is untouched.
    assert.ok((await new Ipam(kv).allocationOf(addr))?.handleId === `podway.${live}`, 'the other handle\'s address still held');
    const d2 = await h.call({ command: 'DEL', containerId: live, netns: pod.path, ifname: 'eth0', extra });
    assert.is(d2.exitCode, 0, d2.stdout + d2.stderr);
  });
});

test.run();
