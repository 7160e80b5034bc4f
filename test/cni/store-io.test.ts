/**
 * The embedded datastore on a disk that cannot be written (a tmpfs mounted over the harness's
 * store directory, made read-only, then filled), with the plugin run as a runtime runs it
 * (harness.ts):
 * - ADD answers CNI code 5 naming the store and the config field, with the errno (EROFS, ENOSPC)
 *   and no JS stack, and leaves nothing in the pod's namespace;
 * - DEL (podman never retries one) removes the pod's interface, spools the release to
 *   pending_del_dir and succeeds; `podway run` on that store replays it once it takes writes again:
 *   the IPAM handle and the WorkloadEndpoint are gone, `ipam check` finds nothing.
 * Root and network namespaces.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { execFileSync } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, openSync, readdirSync, unlinkSync, writeSync } from 'node:fs';
import * as path from 'node:path';
import { CniHarness, RunningPodway } from './harness';
import { Ipam } from '../../src/control/ipam';
import { FileKv } from '../../src/control/kv/file-kv';
import { pendingFileName } from '../../src/cni/pending-del';
import { controlRequest } from '../../src/dataplane/control-server';
import { isRoot } from '../helpers/netns';
import { until } from '../helpers/until';

if (!isRoot()) throw new Error('the CNI plugin tests need root (network namespaces, mount)');

const cid = (n: string): string => `c${n}${Math.random().toString(16).slice(2, 10)}`;

function podLinks(pod: { ip(...a: string[]): string }): string[] {
  return (JSON.parse(pod.ip('-j', 'link', 'show')) as { ifname: string }[]).map((l) => l.ifname).filter((n) => n !== 'lo');
}

/** Writes `file` until its filesystem is full (bounded). */
function fillDisk(file: string): void {
  const fd = openSync(file, 'w');
  const chunk = Buffer.alloc(64 * 1024);
  try {
    for (let i = 0; i < 10_000; i++) {
      try {
        writeSync(fd, chunk); // a short write is followed by one that fails
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code === 'ENOSPC') return;
        throw e;
      }
    }
  } finally {
    closeSync(fd);
  }
  throw new Error(`${file}: the filesystem never filled`);
}

test('embedded store read-only, then full: ADD fails with code 5 naming the store, DEL defers the release, podway run replays it once writable', async () => {
  const h = new CniHarness();
  mkdirSync(h.storeDir, { recursive: true });
  execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=2m,mode=0700', `podway-cni-io-${h.tag}`, h.storeDir]);
  let podway: RunningPodway | null = null;
  try {
    await h.setup();
    // Each look by a store of its own, closed after: a file left open for writing would keep the
    // remount read-only from happening (EBUSY).
    await h.kv.close();
    const look = async <T>(fn: (kv: FileKv) => Promise<T>): Promise<T> => {
      const kv = new FileKv({ dir: h.storeDir });
      try {
        return await fn(kv);
      } finally {
        await kv.close();
      }
    };
    const handleOf = (id: string) => look((kv) => kv.get(`/calico/ipam/v2/handle/podway.${id}`));
    const endpointsOf = (id: string) => look(async (kv) => (await kv.list('/calico/resources/v3/projectcalico.org/workloadendpoints/')).entries.filter((e) => e.value.includes(id)));
    const podA = h.pod('a');
    const idA = cid('a');
    const addA = await h.add(podA, idA);
    const addrA = (addA.json.ips[0].address as string).split('/')[0];
    assert.ok(await handleOf(idA));
    assert.is((await endpointsOf(idA)).length, 1);

    execFileSync('mount', ['-o', 'remount,ro', h.storeDir]);
    const podB = h.pod('b');
    const addB = await h.call({ command: 'ADD', containerId: cid('b'), netns: podB.path, ifname: 'eth0' });
    assert.is(addB.exitCode, 1, addB.stdout);
    assert.is(addB.json.code, 5, addB.stdout);
    assert.match(addB.json.msg, `datastore embedded:${h.storeDir} ("datastore" in the network config): `);
    assert.match(addB.json.msg, 'EROFS');
    assert.is(addB.json.details, undefined, 'no JS stack');
    assert.equal(podLinks(podB), []);

    // DEL on the read-only store: what is local goes, the release is spooled, the runtime told success.
    const delA = await h.call({ command: 'DEL', containerId: idA, netns: podA.path, ifname: 'eth0' });
    assert.is(delA.exitCode, 0, delA.stdout + delA.stderr);
    assert.match(delA.stderr, /EROFS.*deferred to .*once the datastore takes writes again/);
    const fileA = path.join(h.pendingDelDir, pendingFileName('podway', idA, 'eth0'));
    assert.ok(existsSync(fileA), readdirSync(h.pendingDelDir).join(' '));
    assert.equal(podLinks(podA), []);
    assert.ok(await handleOf(idA), 'nothing released in the read-only store');

    // Writable but full: ENOSPC, the same way.
    execFileSync('mount', ['-o', 'remount,rw', h.storeDir]);
    const filler = path.join(h.storeDir, 'filler');
    fillDisk(filler);
    const podC = h.pod('c');
    const addC = await h.call({ command: 'ADD', containerId: cid('c'), netns: podC.path, ifname: 'eth0' });
    assert.is(addC.exitCode, 1, addC.stdout);
    assert.is(addC.json.code, 5, addC.stdout);
    assert.match(addC.json.msg, `datastore embedded:${h.storeDir} ("datastore" in the network config): `);
    assert.match(addC.json.msg, 'ENOSPC');
    assert.is(addC.json.details, undefined, 'no JS stack');
    assert.equal(podLinks(podC), []);

    // Room again: podway run on the store replays the deferred DEL at its first pass.
    unlinkSync(filler);
    h.addUplink();
    const status = async () => ((await controlRequest(h.control, { cmd: 'status' }, 5000)) as { cniPendingDel: { pending: number; replayed: number; lastError: string | null } | null }).cniPendingDel;
    podway = h.startPodway(['--model-cache', 'none']);
    await podway.ready();
    assert.ok(await until(async () => !existsSync(fileA) && (await status())?.replayed === 1, 90_000), `replayed: ${JSON.stringify(await status())} | ${podway.log.slice(-5).join(' | ')}`);
    assert.is(await handleOf(idA), null, 'the handle released');
    assert.equal(await endpointsOf(idA), [], 'the WorkloadEndpoint deleted');
    assert.is(await look((kv) => new Ipam(kv).allocationOf(addrA)), null, 'the address is free');
    assert.equal(await look((kv) => new Ipam(kv).check()), []);
  } finally {
    await podway?.stop();
    await h.kv.close().catch(() => undefined);
    // Lazy: a process still holding a file there does not keep the mount (or the test) alive.
    try { execFileSync('umount', ['-l', h.storeDir]); } catch { /* not mounted */ }
    await h.cleanup();
  }
});

test.run();
