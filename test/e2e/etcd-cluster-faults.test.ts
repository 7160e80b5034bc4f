/**
 * podway on a three-member etcd cluster (test/e2e/etcd-ha-kit.ts: real members in the lab's fabric
 * namespace, 10.99.0.254:2379/2389/2399), two nodes forwarding a ping between their pods, and the
 * member faults an operator meets: the leader SIGKILLed (a CNI ADD meanwhile), two members down
 * (quorum lost: not ready naming it, a DEL deferred, an ADD failing saying so; then back: ready,
 * the watch resumed, not re-listed, the deferred DEL replayed), a member SIGSTOPped (a change
 * written meanwhile still arrives), a member removed from the cluster (`etcdctl member remove`:
 * it stops itself), a compaction under the watches. node2 is given the endpoints in another order
 * with one nobody listens on first. The ping never stops. Everything is stopped by PID in finally.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { LabNode, LabNodeSpec } from '../../src/lab/lab';
import { installCni } from '../../src/cni/install';
import { status, pingIn, logTail, until } from './e2e-kit';
import { memberConns, openEtcdHaLab } from './etcd-ha-kit';
import { addNetns, tag } from '../helpers/netns';

const SPEC: LabNodeSpec[] = [
  { name: 'node1', subnet: 'a', pods: [{ name: 'web-1', type: 'veth' }] },
  { name: 'node2', subnet: 'a', pods: [{ name: 'web-2', type: 'veth' }] },
];
const PROFILES = '/calico/resources/v3/projectcalico.org/profiles/';
/** Nobody listens there (the fabric's address, a port no member has): refused at once. */
const DEAD = 'http://10.99.0.254:2369';

interface Status { ready?: boolean; notReady?: string[]; datastoreNotInSyncSince?: string | null; cniPendingDel?: unknown }

test('a three-member etcd: leader killed, quorum lost and back, a member stopped, a member removed, a compaction: the pods\' traffic goes on, CNI ADD/DEL, status and the watches say and do the right thing', async () => {
  const t0 = Date.now();
  const { lab, cluster: c, kv, close } = await openEtcdHaLab(SPEC);
  const dir = mkdtempSync(path.join(tmpdir(), 'podway-etcd-faults-'));
  const nsDels: (() => void)[] = [];
  let ping: ReturnType<typeof pingIn> | null = null;
  /** Seconds since the start, for the steps' lines. */
  const at = () => ((Date.now() - t0) / 1000).toFixed(1);
  try {
    const eps = c.endpoints;
    const pending = path.join(dir, 'pending-del');
    // both at once (each registers its own node); node2: another order, and an endpoint nobody listens on first
    await Promise.all([
      lab.startPodway('node1', 20_000, ['--cni-pending-del-dir', pending, '--metrics-port', '9091']),
      lab.startPodway('node2', 20_000, ['--datastore', `etcd:${DEAD},${eps[2]},${eps[1]},${eps[0]}`]),
    ]);
    const [n1, n2] = [lab.node('node1'), lab.node('node2')];
    const st = async (n: LabNode) => (await status(n)) as Status;
    const ready = async (n: LabNode, ms: number) => until(async () => (await st(n)).ready === true, ms, 100);
    assert.ok(await ready(n1, 20_000), `node1 ready: ${JSON.stringify(await st(n1))}`);
    assert.ok(await ready(n2, 20_000), `node2 ready (${DEAD} first, refused): ${JSON.stringify(await st(n2))}`);
    console.log(`  ${at()} s: lab, cluster, both nodes ready`);

    // the CNI plugin of node1, on the three members
    const inst = installCni({ binDir: path.join(dir, 'bin'), confDir: path.join(dir, 'net.d'), datastore: `etcd:${eps.join(',')}`, node: 'node1', control: n1.control, ipamLockFile: path.join(dir, 'ipam.lock'), pendingDelDir: pending, env: {} });
    const conf = JSON.parse(readFileSync(inst.conflist, 'utf8'));
    const netconf = { cniVersion: '1.0.0', name: conf.name, ...conf.plugins[0], datastoreTimeoutMs: 3000 };
    const cni = (cmd: 'ADD' | 'DEL', id: string, ns: string) => new Promise<{ code: number | null; out: string; err: string }>((resolve) => {
      const p = spawn('ip', ['netns', 'exec', n1.ns, inst.plugin], { env: { CNI_COMMAND: cmd, CNI_CONTAINERID: id, CNI_NETNS: `/run/netns/${ns}`, CNI_IFNAME: 'eth0', CNI_PATH: path.join(dir, 'bin') }, stdio: ['pipe', 'pipe', 'pipe'] });
      let out = '';
      let err = '';
      p.stdout.on('data', (d) => (out += d));
      p.stderr.on('data', (d) => (err += d));
      const k = setTimeout(() => p.kill('SIGKILL'), 30_000);
      p.on('close', (code) => { clearTimeout(k); resolve({ code, out, err }); });
      p.stdin.end(JSON.stringify(netconf));
    });
    /** The DELs spooled (one file each; the directory holds other files of its own). */
    const spooled = () => readdirSync(pending).filter((f) => f.endsWith('.json'));
    const podNs = () => { const name = `pw-ef-${tag()}`; nsDels.push(addNetns(name)); return name; };
    const attached = (id: string) => until(() => n1.log.some((l) => l.includes(`cni-${id.replace(/-/g, '--')}-eth0: attached`)), 10_000, 100);
    const profile = async (name: string) => {
      await kv.create(PROFILES + name, JSON.stringify({ kind: 'Profile', apiVersion: 'projectcalico.org/v3', metadata: { name }, spec: {} }));
      return (await kv.get(PROFILES + name))!.modRevision;
    };
    /** node's established connections to each member (its podway's: the node's namespace holds nothing else). */
    const conns = (n: LabNode): string => JSON.stringify(memberConns(n));

    // the pods' traffic, the whole test: 10 echo requests a second
    ping = pingIn(lab.pod('web-1').ns, lab.pod('web-2').ip, 1200, 0.1);

    // 1. the leader SIGKILLed: nothing goes not ready; a CNI ADD meanwhile succeeds and is attached
    const L = await c.leader();
    assert.ok(L >= 0, 'a leader');
    await c.kill(L);
    const a1 = podNs();
    const add1 = await cni('ADD', 'ef-a1', a1);
    assert.is(add1.code, 0, `ADD with the leader dead: ${add1.out} ${add1.err}`);
    assert.ok(await attached('ef-a1'), `node1 attached the pod added with the leader dead: ${n1.log.slice(-5).join(' | ')}`);
    for (const n of [n1, n2]) assert.ok((await st(n)).ready, `${n.name} still ready with the leader dead: ${JSON.stringify(await st(n))}`);
    await c.restart(L);
    console.log(`  ${at()} s: 1. leader killed, ADD attached, leader back`);

    // 2. quorum lost: two members down, and a CNI DEL and ADD at once. The member left takes their
    // calls while it still follows a leader (an election timeout), where they run out their
    // deadline; it then says it has none: the DEL is deferred, the ADD fails, saying no quorum
    // (they said "too slow", and the DEL failed instead of being deferred).
    const L2 = await c.leader();
    const [x, y] = [(L2 + 1) % 3, (L2 + 2) % 3];
    const marks = [n1.log.length, n2.log.length];
    await c.kill(x);
    await c.kill(y);
    const lostAt = Date.now();
    const noQuorum = /etcd has no leader, no quorum/;
    const [del1, add2] = await Promise.all([cni('DEL', 'ef-a1', a1), cni('ADD', 'ef-a2', podNs())]);
    assert.is(del1.code, 0, `DEL without quorum is deferred, not failed: ${del1.out} ${del1.err}`);
    assert.match(del1.err, /deferred/, del1.err);
    assert.match(del1.err, noQuorum, `the deferral says why: ${del1.err}`);
    assert.equal(spooled(), ['podway+ef-a1+eth0.json'], 'the DEL is spooled');
    assert.is(add2.code, 1, `ADD without quorum fails: ${add2.out}`);
    assert.match(add2.out, noQuorum, `the ADD's error says why: ${add2.out}`);
    assert.not.match(add2.out, /too slow/, add2.out);
    console.log(`  ${at()} s: quorum lost; ${((Date.now() - lostAt) / 1000).toFixed(1)} s later the DEL was deferred and the ADD had failed, saying: ${JSON.parse(add2.out).msg}`);
    for (const n of [n1, n2]) {
      assert.ok(await until(async () => ((await st(n)).notReady ?? []).some((r) => noQuorum.test(r)), 15_000, 200), `${n.name} not ready naming the lost quorum: ${JSON.stringify(await st(n))}`);
    }
    const readyz = execFileSync('ip', ['netns', 'exec', n1.ns, 'curl', '-s', '-m', '5', '-w', ' %{http_code}', 'http://127.0.0.1:9091/readyz'], { encoding: 'utf8' });
    assert.match(readyz, / 503$/, `/readyz: ${readyz}`);
    assert.match(readyz, noQuorum, `/readyz says why: ${readyz}`);
    await c.restart(x, 30_000);
    await c.restart(y, 30_000);
    for (const n of [n1, n2]) assert.ok(await ready(n, 15_000), `${n.name} ready again once the quorum is back: ${JSON.stringify(await st(n))}`);
    for (const [k, n] of [n1, n2].entries()) {
      const lines = n.log.slice(marks[k]);
      assert.ok(lines.some((l) => /datastore reachable again: .*watch resumed from revision \d+/.test(l)), `${n.name}: the watch resumed: ${lines.join(' | ')}`);
    }
    assert.ok(await until(() => spooled().length === 0, 70_000, 200), `the deferred DEL replayed once etcd answered: ${spooled().join(', ')} | ${n1.log.slice(-5).join(' | ')}`);
    console.log(`  ${at()} s: 2. quorum back, the deferred DEL replayed`);

    // 3. a member SIGSTOPped (each node has connections to all three): a change written meanwhile still arrives
    const P = (L2 + 1) % 3;
    await c.pause(P);
    const a3 = podNs();
    const add3 = await cni('ADD', 'ef-a3', a3);
    assert.is(add3.code, 0, `ADD with a member stopped: ${add3.out} ${add3.err}`);
    assert.ok(await until(() => n1.log.some((l) => l.includes('cni-ef--a3-eth0: attached')), 20_000, 100), `the pod added while m${P} was stopped is attached (a watch on it moved within the keepalive): ${n1.log.slice(-5).join(' | ')}`);
    c.resume(P);
    console.log(`  ${at()} s: 3. ADD with m${P} stopped attached`);

    // 4. a member removed from the cluster (it stops itself): the others go on
    const R = (P + 1) % 3;
    await c.removeMember(R, (R + 1) % 3);
    const a4 = podNs();
    const add4 = await cni('ADD', 'ef-a4', a4);
    assert.is(add4.code, 0, `ADD after m${R} was removed: ${add4.out} ${add4.err}`);
    assert.ok(await attached('ef-a4'), `the pod added after m${R} was removed is attached: ${n1.log.slice(-5).join(' | ')}`);

    console.log(`  ${at()} s: 4. ADD after m${R} removed attached`);

    // 5. a compaction under the (live) watches: nothing to re-list, the next change applies
    const rev5 = await profile('before-compaction');
    await kv.compact(rev5);
    const del3 = await cni('DEL', 'ef-a3', a3);
    assert.is(del3.code, 0, `DEL after the compaction: ${del3.err}`);
    assert.ok(await until(() => n1.log.some((l) => /cni-ef--a3-eth0: deleted/.test(l)), 10_000, 100), `node1 applied the DEL after the compaction: ${n1.log.slice(-5).join(' | ')}`);

    let moved = 0;
    for (const n of [n1, n2]) {
      assert.ok((await st(n)).ready, `${n.name} ready at the end: ${JSON.stringify(await st(n))}`);
      const resyncs = n.log.filter((l) => /must resync|listing again|re-listing/.test(l));
      assert.equal(resyncs, [], `${n.name}: no watch was re-listed`);
      // A member killed, stopped or removed drops the watches on it, which resume on another at
      // once: one info line, not "datastore unreachable" (only the lost quorum is that).
      const unreachable = n.log.filter((l) => /datastore unreachable/.test(l) && !noQuorum.test(l));
      assert.equal(unreachable, [], `${n.name}: the datastore was called unreachable only for the lost quorum`);
      moved += n.log.filter((l) => /a watch's connection dropped \(.*\) and it resumed on another etcd member within 3 s/.test(l)).length;
    }
    console.log(`  watches moved to another member (logged as such): ${moved}`);
    console.log(`  connections to the members at the end: node1 ${conns(n1)}, node2 ${conns(n2)}`);
    ping.proc.kill('SIGINT');
    const pr = await ping.done;
    let run = 0;
    let longest = 0;
    for (let s = 1; s <= pr.sent; s++) { run = pr.replied.has(s) ? 0 : run + 1; longest = Math.max(longest, run); }
    console.log(`  ping web-1 -> web-2: ${pr.sent} sent, ${pr.lost.length} lost, longest gap ${longest} (x 100 ms); ${((Date.now() - t0) / 1000).toFixed(1)} s`);
    assert.ok(pr.sent > 100, `the ping ran: ${pr.out.slice(-300)}`);
    assert.ok(longest <= 5, `the pods' traffic never stopped for over half a second: lost ${JSON.stringify(pr.lost)}`);
  } catch (e) {
    console.log(logTail(lab, 25));
    throw e;
  } finally {
    ping?.proc.kill('SIGINT');
    await close();
    for (const d of nsDels) d();
    rmSync(dir, { recursive: true, force: true });
  }
});

test.run();
