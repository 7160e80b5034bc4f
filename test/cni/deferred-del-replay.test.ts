/**
 * Deferred DELs (src/cni/pending-del.ts) and their replay (src/cli/pending-del-replay.ts) against
 * a real etcd inside the node's namespace, the plugin run as a runtime runs it (harness.ts), the
 * replayer run in this process on etcd's unix socket: another endpoint string for the same etcd
 * than the plugin's http://127.0.0.1 one.
 * - entries are matched by etcd's cluster_id (which the plugin recorded), not the endpoint string;
 * - with the IPAM lock held, stop() ends the replay's lock wait (well under the 20 s lock bound),
 *   and a lock not taken in time ends the pass instead of waiting it out for every entry;
 * - an ADD replays its container's entry whatever datastore string and lock file it names;
 * - a replay and an ADD of the same container at the same time: one wins, the new pod keeps its
 *   address and endpoint, the spool ends empty;
 * - entryDatastore: cluster_id first, else endpoint overlap (localhost as 127.0.0.1).
 * Root and network namespaces.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawn, spawnSync, ChildProcess } from 'node:child_process';
import { chmodSync, chownSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { CniHarness } from './harness';
import { Ipam } from '../../src/control/ipam';
import { EtcdKv } from '../../src/control/kv/etcd-kv';
import { FlockLock } from '../../src/cni/flock-lock';
import { flockFileOf } from '../../src/cni/ipam-lock';
import { applyResource } from '../../src/control/v3-store';
import { registerNode } from '../../src/control/node-registration';
import { claimEntry, entryDatastore, lastClusterId, pendingFileName, PendingDel, PENDING_DEL_FORMAT, readPending, rememberClusterId, replayingOfContainer, unchanged, writePending } from '../../src/cni/pending-del';
import { PendingDelReplayer, RECOUNT_MS } from '../../src/cli/pending-del-replay';
import { LabEtcd, ETCD_BINARY } from '../../src/lab/etcd';
import { isRoot, sleep } from '../helpers/netns';
import { until } from '../helpers/until';

if (!isRoot()) throw new Error('the CNI plugin tests need root (network namespaces)');

const cid = (n: string): string => `c${n}${Math.random().toString(16).slice(2, 10)}`;


const entry = (o: Partial<PendingDel>): PendingDel => ({
  format: PENDING_DEL_FORMAT, network: 'n', containerID: 'c1', ifname: 'eth0', node: 'x', handle: 'n.c1', endpoints: [], interfaceName: null,
  datastore: 'etcd:http://127.0.0.1:2379', ipamLockFile: '/l', deferredAt: '', reason: '', ...o,
});

test('entryDatastore: cluster_id decides when both are known; else the same endpoint (localhost as 127.0.0.1) in either list', () => {
  assert.is(entryDatastore(entry({ clusterId: '7' }), 'etcd:http://10.0.0.9:2379', '7'), 'same');
  assert.is(entryDatastore(entry({ clusterId: '7' }), 'etcd:http://127.0.0.1:2379', '8'), 'other');
  assert.is(entryDatastore(entry({ datastore: 'etcd:http://localhost:2379/' }), 'etcd:http://127.0.0.1:2379', '8'), 'same');
  assert.is(entryDatastore(entry({ datastore: 'etcd:http://10.0.0.1:2379,http://10.0.0.2:2379' }), 'etcd:http://10.0.0.2:2379,http://10.0.0.3:2379', null), 'same');
  assert.is(entryDatastore(entry({ datastore: 'etcd:http://10.0.0.1:2379' }), 'etcd:http://10.0.0.2:2379', null), 'unknown');
  assert.is(entryDatastore(entry({ datastore: 'embedded:/a' }), 'embedded:/b', null), 'unknown');
});

test('spool files: the handle is derived (a forged one makes the entry unreadable), oldest by mtime first, a group-writable spool refused naming the field (by DEL\'s write and by the replayer), no .tmp left by a failed write', async () => {
  const dir = path.join(mkdtempSync(path.join(tmpdir(), 'podway-spool-')), 'spool');
  try {
    writePending(dir, entry({ containerID: 'c2' , handle: 'n.c2' }));
    writePending(dir, entry({ containerID: 'c1' }));
    utimesSync(path.join(dir, pendingFileName('n', 'c2', 'eth0')), new Date(), new Date(Date.now() + 5000));
    assert.equal(readPending(dir).map((s) => s.entry?.containerID), ['c1', 'c2'], 'oldest first');
    writeFileSync(path.join(dir, pendingFileName('n', 'c3', 'eth0')), JSON.stringify(entry({ containerID: 'c3', handle: 'other.pod' })));
    const forged = readPending(dir).find((s) => s.file.includes('+c3+'))!;
    assert.is(forged.entry, null);
    assert.match(forged.error ?? '', 'is not network n\'s handle of container c3');
    chmodSync(dir, 0o777);
    assert.throws(() => writePending(dir, entry({ containerID: 'c4', handle: 'n.c4' })), /"pending_del_dir": .* is writable by group or others \(mode 777\)/);
    const said: string[] = [];
    const r = new PendingDelReplayer(dir, { kind: 'etcd', endpoints: ['http://127.0.0.1:1'] }, { info: (m) => said.push(m), warn: (m) => said.push(m) }, 3_600_000);
    r.kick('test');
    await r.idle();
    await r.stop();
    assert.match(r.status().lastError ?? '', /--cni-pending-del-dir: .* is writable by group or others/);
    assert.is(said.length, 1, said.join(' | '));
    assert.is(readPending(dir).length, 3, 'nothing replayed or removed');
    chmodSync(dir, 0o700);
    // a write that fails (the target name is a directory): nothing half-written left
    mkdirSync(path.join(dir, pendingFileName('n', 'c5', 'eth0')));
    assert.throws(() => writePending(dir, entry({ containerID: 'c5', handle: 'n.c5' })));
    assert.equal(readdirSync(dir).filter((n) => n.endsWith('.tmp')), []);
  } finally {
    rmSync(path.dirname(dir), { recursive: true, force: true });
  }
});

test('a spool owned by another user (mode 0700 all the same) is refused naming it, by DEL\'s write, the replayer and an ADD through the plugin; entries, claimed entries and the cluster_id cache are read only as regular files of ours, a symlink not followed', async () => {
  const dir = path.join(mkdtempSync(path.join(tmpdir(), 'podway-spool-')), 'spool');
  const h = new CniHarness();
  try {
    writePending(dir, entry({ containerID: 'c1' }));
    // another user's directory, private to them: they could chmod it and write at will
    chownSync(dir, 65534, 65534);
    const owned = new RegExp(`"pending_del_dir": ${dir.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')} is owned by uid 65534, not by this process's user \\(uid 0\\)`);
    assert.throws(() => writePending(dir, entry({ containerID: 'c2', handle: 'n.c2' })), owned);
    const said: string[] = [];
    const r = new PendingDelReplayer(dir, { kind: 'etcd', endpoints: ['http://127.0.0.1:1'] }, { info: (m) => said.push(m), warn: (m) => said.push(m) }, 3_600_000);
    r.kick('test');
    await r.idle();
    await r.stop();
    assert.match(r.status().lastError ?? '', /--cni-pending-del-dir: .* is owned by uid 65534/);
    chownSync(dir, 0, 0);
    assert.equal(readPending(dir).map((s) => s.entry?.containerID), ['c1']);

    // an entry owned by another user, in our spool: not read
    const theirs = path.join(dir, pendingFileName('n', 'c3', 'eth0'));
    writeFileSync(theirs, JSON.stringify(entry({ containerID: 'c3', handle: 'n.c3' })));
    chownSync(theirs, 65534, 65534);
    const t = readPending(dir).find((s) => s.file === theirs)!;
    assert.is(t.entry, null);
    assert.match(t.error ?? '', `${theirs}: owned by uid 65534, not by this process's user (uid 0): not read`);
    rmSync(theirs);
    // a symlink to a well-formed entry of ours outside the spool: not followed (the link is refused)
    const outside = path.join(path.dirname(dir), 'elsewhere.json');
    writeFileSync(outside, JSON.stringify(entry({ containerID: 'c4', handle: 'n.c4' })));
    const link = path.join(dir, pendingFileName('n', 'c4', 'eth0'));
    symlinkSync(outside, link);
    const l = readPending(dir).find((s) => s.file === link)!;
    assert.is(l.entry, null, 'the entry behind the symlink is not read');
    assert.match(l.error ?? '', 'ELOOP');
    assert.is(unchanged({ file: link, text: readFileSync(outside, 'utf8'), entry: null }), false, 'unchanged() does not follow it either');
    rmSync(link);
    // an entry claimed aside (.replaying) that is a symlink: its lock file is not read through it
    const aside = path.join(dir, '.n+c5+eth0.json.replaying');
    symlinkSync(outside, aside);
    assert.equal(replayingOfContainer(dir, 'n', 'c5'), [{ file: aside, ipamLockFile: null }]);
    rmSync(aside);
    // claimEntry re-reads what it renamed aside: a symlink there is "changed", put back, not taken
    symlinkSync(outside, link);
    assert.is(claimEntry({ file: link, text: readFileSync(outside, 'utf8'), entry: null }), null);
    rmSync(link);
    // the cluster_id cache: read back when it is our regular file; a symlink (even to a valid
    // cache of ours) or another user's file is not read
    rememberClusterId(dir, 'etcd:http://x:2379', 'cid-1');
    assert.is(lastClusterId(dir, 'etcd:http://x:2379'), 'cid-1');
    const cache = readdirSync(dir).find((n) => n.startsWith('.cluster-id.'))!;
    const fake = path.join(path.dirname(dir), 'cache');
    writeFileSync(fake, readFileSync(path.join(dir, cache)));
    rmSync(path.join(dir, cache));
    symlinkSync(fake, path.join(dir, cache));
    assert.is(lastClusterId(dir, 'etcd:http://x:2379'), null, 'the symlinked cache is not followed');
    rmSync(path.join(dir, cache));
    writeFileSync(path.join(dir, cache), readFileSync(fake));
    chownSync(path.join(dir, cache), 65534, 65534);
    assert.is(lastClusterId(dir, 'etcd:http://x:2379'), null, 'another user\'s cache is not read');

    // through the plugin: ADD replays its container's deferred DELs first, and refuses a spool
    // another user owns, naming it; nothing is made
    await h.setup();
    mkdirSync(h.pendingDelDir, { recursive: true, mode: 0o700 });
    chownSync(h.pendingDelDir, 65534, 65534);
    const pod = h.pod('own');
    const id = cid('own');
    const add = await h.call({ command: 'ADD', containerId: id, netns: pod.path, ifname: 'eth0' });
    assert.is.not(add.exitCode, 0, add.stdout);
    assert.match(add.json?.msg ?? '', `"pending_del_dir" in the network config: ${h.pendingDelDir} is owned by uid 65534`);
    assert.equal(h.ipJson(pod, 'link', 'show').map((x) => x.ifname), ['lo']);
    chownSync(h.pendingDelDir, 0, 0);
    await h.add(pod, id);
    const d = await h.call({ command: 'DEL', containerId: id, netns: pod.path, ifname: 'eth0' });
    assert.is(d.exitCode, 0, d.stdout);
  } finally {
    await h.cleanup();
    rmSync(path.dirname(dir), { recursive: true, force: true });
  }
});

test('status() counts the spool by names only: a FIFO named x.json is never opened by it (no hang of podway run\'s thread); a pass reads it without blocking as unreadable; a non-private spool is not read, its refusal is the error', async () => {
  const dir = path.join(mkdtempSync(path.join(tmpdir(), 'podway-spool-')), 'spool');
  let writer: ChildProcess | null = null;
  try {
    writePending(dir, entry({ containerID: 'c1', datastore: 'etcd:http://127.0.0.1:1' }));
    const fifo = path.join(dir, 'n+x+eth0.json');
    const mk = spawnSync('mkfifo', [fifo]);
    assert.is(mk.status, 0, String(mk.stderr));
    // A writer blocks in open(2) until someone opens the FIFO to read: its exit tells that one did
    // (and, should one do so, lets that reader go on instead of hanging this test).
    writer = spawn('sh', ['-c', `echo x > '${fifo}'`], { stdio: 'ignore' });
    const w = writer;
    const said: string[] = [];
    const r = new PendingDelReplayer(dir, { kind: 'etcd', endpoints: ['http://127.0.0.1:1'] }, { info: (m) => said.push(m), warn: (m) => said.push(m) }, 3_600_000);
    let st = r.status();
    assert.is(st.pending, 2, `every name counted before any pass: ${JSON.stringify(st)}`);
    assert.is(st.ignored, 0);
    assert.not.ok(await until(() => w.exitCode !== null || w.signalCode !== null, 1_000), 'status() opened the FIFO');
    // read by an older status() or pass, this would take all memory
    symlinkSync('/dev/zero', path.join(dir, 'n+z+eth0.json'));
    // a pass (the datastore away) reads the entries: the FIFO and the symlink are unreadable, not a hang
    r.kick('test');
    await r.idle();
    await r.stop();
    const spooled = readPending(dir);
    assert.match(spooled.find((s) => s.file === fifo)?.error ?? '', 'not a regular file');
    assert.ok(spooled.find((s) => s.file.endsWith('n+z+eth0.json'))?.error, 'the symlink is not followed');
    await sleep(RECOUNT_MS + 100);
    st = r.status();
    assert.is(st.pending, 1, `the unreadable ones left alone: ${JSON.stringify(st)}`);
    assert.is(st.ignored, 2, JSON.stringify(st));
    // others may write to the spool: status() does not read it, says why
    chmodSync(dir, 0o777);
    await sleep(RECOUNT_MS + 100);
    st = r.status();
    assert.is(st.pending, 0, JSON.stringify(st));
    assert.is(st.ignored, 0, JSON.stringify(st));
    assert.match(st.lastError ?? '', /--cni-pending-del-dir: .* is writable by group or others/);
  } finally {
    if (writer && writer.exitCode === null && writer.signalCode === null) writer.kill('SIGKILL');
    rmSync(path.dirname(dir), { recursive: true, force: true });
  }
});

test('replay matched by cluster_id; stop() ends a lock wait; a lock timeout ends the pass; ADD replays its entry under another datastore string and lock file; a replay racing an ADD of the same container leaves the new pod whole', async () => {
  if (!existsSync(ETCD_BINARY)) throw new Error(`${ETCD_BINARY} missing (scripts/setup.sh installs etcd-server)`);
  const h = new CniHarness();
  let etcd: LabEtcd | null = null;
  let kv: EtcdKv | null = null;
  const replayers: PendingDelReplayer[] = [];
  const log: string[] = [];
  const say = { info: (m: string) => log.push(m), warn: (m: string) => log.push(m) };
  try {
    await h.setup();
    etcd = await LabEtcd.start({ netns: h.node.name, host: '127.0.0.1' });
    kv = new EtcdKv({ endpoints: [etcd.localEndpoint], timeoutMs: 20_000 });
    await applyResource(kv, { apiVersion: 'projectcalico.org/v3', kind: 'IPPool', metadata: { name: 'replay-pool' }, spec: { cidr: '10.250.28.0/24', blockSize: 26 } });
    await registerNode(kv, { name: h.nodeName, ipv4Address: '10.99.0.1/24' });
    const extra = { datastore: `etcd:${etcd.endpoint}`, datastoreTimeoutMs: 2000 };
    const ipam = new Ipam(kv);
    const handleIps = async (id: string) => {
      const e = await kv!.get(`/calico/ipam/v2/handle/podway.${id}`);
      return e ? JSON.parse(e.value) : null;
    };
    const spoolFiles = () => readdirSync(h.pendingDelDir).filter((n) => n.endsWith('.json'));
    const replayer = (lockTimeoutMs?: number) => {
      const r = new PendingDelReplayer(h.pendingDelDir, { kind: 'etcd', endpoints: [etcd!.localEndpoint] }, say, 3_600_000, lockTimeoutMs);
      replayers.push(r);
      return r;
    };
    /** A DEL deferred the real way: the IPAM lock held here past the plugin's bound. */
    const deferDel = async (pod: ReturnType<CniHarness['pod']>, id: string) => {
      const holder = new FlockLock(flockFileOf(h.ipamLockFile));
      await holder.acquire(5000);
      try {
        const d = await h.call({ command: 'DEL', containerId: id, netns: pod.path, ifname: 'eth0', extra: { ...extra, ipam_lock_timeout_ms: 200 } });
        assert.is(d.exitCode, 0, d.stdout + d.stderr);
        assert.match(d.stderr, 'is deferred to');
      } finally {
        holder.dispose();
      }
    };

    // 1. matched by cluster_id: the replayer names etcd by its unix socket, the entry by http://127.0.0.1
    const p1 = h.pod('r1');
    const id1 = cid('r1');
    const add1 = await h.add(p1, id1, { extra });
    await deferDel(p1, id1);
    const e1 = JSON.parse(readFileSync(path.join(h.pendingDelDir, pendingFileName('podway', id1, 'eth0')), 'utf8'));
    assert.is(e1.datastore, `etcd:${etcd.endpoint}`);
    assert.match(e1.clusterId, /^[0-9]+$/);
    const r1 = replayer();
    r1.kick('test');
    await r1.idle();
    assert.equal(spoolFiles(), [], log.join('\n'));
    assert.is(await handleIps(id1), null);
    assert.is(await ipam.allocationOf(add1.json.ips[0].address.split('/')[0]), null);
    assert.is(r1.status().replayed, 1);

    // 2. the lock held: stop() ends the replay's wait for it; a lock timeout ends the pass
    const pods = [h.pod('r2'), h.pod('r3')];
    const ids = [cid('r2'), cid('r3')];
    for (let i = 0; i < 2; i++) await h.add(pods[i], ids[i], { extra });
    for (let i = 0; i < 2; i++) await deferDel(pods[i], ids[i]);
    assert.is(spoolFiles().length, 2);
    const holder = new FlockLock(flockFileOf(h.ipamLockFile));
    await holder.acquire(5000);
    try {
      const r2 = replayer();
      r2.kick('test');
      assert.ok(await until(() => readdirSync(path.dirname(h.ipamLockFile)).some((n) => n.includes('.q.')), 20_000), 'the replay waits for the lock');
      const t0 = Date.now();
      await r2.stop();
      const took = Date.now() - t0;
      assert.ok(took < 15_000, `stop() ended the lock wait (${took} ms; the lock bound is 20 s)`);
      assert.is(spoolFiles().length, 2, 'nothing replayed');
      const r3 = replayer(300);
      r3.kick('test');
      await r3.idle();
      assert.is(r3.status().failed, 1, `one lock timeout ends the pass: ${JSON.stringify(r3.status())}`);
      assert.match(r3.status().lastError ?? '', 'not taken');
    } finally {
      holder.dispose();
    }
    assert.is(spoolFiles().length, 2);

    // 3. ADD of r2's container: its entry rewritten as an older conflist would have left it
    // (another datastore string, another lock file, no cluster_id) is replayed all the same
    const f2 = path.join(h.pendingDelDir, pendingFileName('podway', ids[0], 'eth0'));
    const otherLock = path.join(path.dirname(h.ipamLockFile), 'old-ipam.lock');
    const old = JSON.parse(readFileSync(f2, 'utf8'));
    writeFileSync(f2, JSON.stringify({ ...old, datastore: 'etcd:http://localhost:1', clusterId: undefined, ipamLockFile: otherLock }));
    const p2b = h.pod('r2b');
    const add2b = await h.add(p2b, ids[0], { extra });
    assert.match(add2b.stderr, 'replayed the DEL deferred at');
    assert.not.ok(existsSync(f2), 'the entry is gone');
    const addr2b = add2b.json.ips[0].address.split('/')[0];
    assert.is((await ipam.allocationOf(addr2b))?.handleId, `podway.${ids[0]}`);
    assert.ok(await handleIps(ids[0]), "the handle holds the new address");

    // 4. a replay and an ADD of the same container at the same time, three orderings
    let round = 0;
    for (const pod of [pods[1], h.pod('r4'), h.pod('r5')]) {
      const id = round === 0 ? ids[1] : cid(`r${round + 4}`);
      if (round > 0) {
        await h.add(pod, id, { extra });
        await deferDel(pod, id);
      }
      const again = h.pod(`r${round}x`);
      const r = replayer();
      const addRun = (async () => {
        if (round === 1) await sleep(30);
        return h.add(again, id, { extra });
      })();
      if (round === 2) await sleep(30);
      r.kick('race');
      const [a] = await Promise.all([addRun, r.idle()]);
      await r.idle();
      const addr = a.json.ips[0].address.split('/')[0];
      assert.is((await ipam.allocationOf(addr))?.handleId, `podway.${id}`, `round ${round}: the new pod keeps its address ${addr}: ${log.slice(-4).join(' | ')}`);
      const wep = (await kv.list('/calico/resources/v3/projectcalico.org/workloadendpoints/')).entries.map((e) => JSON.parse(e.value)).find((w) => w.spec.containerID === id);
      assert.ok(wep, `round ${round}: the new pod's endpoint stays`);
      assert.equal(wep.spec.ipNetworks, [`${addr}/32`]);
      assert.is(spoolFiles().filter((n) => n.includes(id)).length, 0, `round ${round}: the entry is replayed once`);
      round++;
    }
    assert.equal(await ipam.check(), []);
    // a later pass finds nothing to do and releases nothing
    const r9 = replayer();
    r9.kick('after');
    await r9.idle();
    assert.is(r9.status().replayed, 0);
    assert.equal(await ipam.check(), []);
    assert.equal(readdirSync(h.pendingDelDir).filter((n) => n.includes('.replaying') || n.endsWith('.tmp')), []);
  } finally {
    for (const r of replayers) await r.stop();
    await kv?.close().catch(() => undefined);
    await etcd?.stop();
    await h.cleanup();
  }
});

test('etcd killed: the spool is still counted (pending, from the directory), the failure shown with its time; etcd back: the pass replays it and the failure is cleared', async () => {
  if (!existsSync(ETCD_BINARY)) throw new Error(`${ETCD_BINARY} missing (scripts/setup.sh installs etcd-server)`);
  const h = new CniHarness();
  let etcd: LabEtcd | null = null;
  let r: PendingDelReplayer | null = null;
  const log: string[] = [];
  try {
    await h.setup();
    etcd = await LabEtcd.start({ netns: h.node.name, host: '127.0.0.1' });
    const kv = new EtcdKv({ endpoints: [etcd.localEndpoint], timeoutMs: 20_000 });
    let clusterId: string | null;
    try {
      await kv.get('/calico/resources/v3/projectcalico.org/nodes/x');
      clusterId = kv.clusterIdSeen();
    } finally {
      await kv.close();
    }
    assert.ok(clusterId, 'etcd told its cluster_id');
    // entries as the plugin writes them (http://127.0.0.1, the cluster_id it saw); the replayer
    // names etcd by its unix socket: they are its own by cluster_id only
    const spool = (id: string) => writePending(h.pendingDelDir, entry({
      network: 'podway', containerID: id, handle: `podway.${id}`, datastore: `etcd:${etcd!.endpoint}`, clusterId: clusterId!, ipamLockFile: h.ipamLockFile, deferredAt: new Date().toISOString(), reason: 'test',
    }));
    const pending = () => readdirSync(h.pendingDelDir).filter((n) => n.endsWith('.json')).length;
    spool(cid('k1'));
    r = new PendingDelReplayer(h.pendingDelDir, { kind: 'etcd', endpoints: [etcd.localEndpoint] }, { info: (m) => log.push(m), warn: (m) => log.push(m) }, 3_600_000);
    r.kick('test');
    await r.idle();
    assert.is(pending(), 0, log.join('\n'));
    assert.is(r.status().replayed, 1);
    assert.is(r.status().lastError, null);

    await etcd.kill();
    spool(cid('k2'));
    // no pass yet: status() counts the spool itself (it was counted empty by the pass above)
    assert.ok(await until(() => r!.status().pending === 1, 10_000), `counted during the outage without a pass: ${JSON.stringify(r.status())}`);
    assert.is(r.status().ignored, 0);
    // a pass meets the outage: the entry still counted, the failure shown with its time
    const before = Date.now();
    r.kick('test');
    await r.idle();
    let st = r.status();
    assert.is(st.pending, 1, JSON.stringify(st));
    assert.ok(st.lastError, JSON.stringify(st));
    assert.ok(st.lastErrorAt !== null && Date.parse(st.lastErrorAt) >= before - 1000, JSON.stringify(st));
    spool(cid('k3'));
    assert.ok(await until(() => r!.status().pending === 2, 10_000), `a second entry counted: ${JSON.stringify(r.status())}`);

    await etcd.start();
    r.kick('the datastore answers again');
    await r.idle();
    st = r.status();
    assert.is(pending(), 0, log.join('\n'));
    assert.is(st.pending, 0, JSON.stringify(st));
    assert.is(st.replayed, 3, JSON.stringify(st));
    assert.is(st.lastError, null, `the outage's error is cleared once a pass replays: ${JSON.stringify(st)}`);
    assert.is(st.lastErrorAt, null);
  } finally {
    await r?.stop();
    await etcd?.stop();
    await h.cleanup();
  }
});

test.run();
