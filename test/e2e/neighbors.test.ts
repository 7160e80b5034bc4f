/**
 * Underlay neighbours re-probed for real (root, network namespaces): node1 runs podway with short
 * neighbour timings (--neighbor-reachable 2000 --neighbor-retrans 300), node2 is a kernel node
 * (src/lab/kernel.ts, dual-stack VXLAN). Checked, for IPv4 (ARP) and IPv6 (NDP):
 *  - node2's underlay MAC changes with no announcement (arp_notify/ndisc_notify 0): podway keeps
 *    the old MAC until the entry goes STALE, its unicast probes go unanswered, the broadcast /
 *    multicast probe is answered with the new MAC, and pod traffic to node2 resumes, without a
 *    restart, within a bound;
 *  - the MAC changes again with arp_notify/ndisc_notify 1: node2's gratuitous ARP and unsolicited
 *    NA update podway (counter `announced`);
 *  - node2 goes silent (an ingress drop-all on its underlay interface): both entries end FAILED,
 *    pod traffic to node2 is counted `neighbor_failed`; once node2 answers again (the next probe
 *    round, after the hold-down) traffic resumes.
 * All of it with one forwarding thread and with two (--workers 2: PACKET_FANOUT hands the answers
 * to one worker's probes to whichever worker the hash picks, so answers are shared between them).
 */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { execFileSync } from 'node:child_process';
import { configureKernelNode } from '../../src/lab/kernel';
import { Lab } from '../../src/lab/lab';
import { controlRequest } from '../../src/dataplane/control-server';
import { guard, teardown, isRoot, routes, logTail, until } from './e2e-kit';

const SPEC = [
  { name: 'node1', subnet: 'a' as const, pods: [{ name: 'web-1', type: 'veth' as const }] },
  { name: 'node2', subnet: 'a' as const, pods: [{ name: 'web-2', type: 'veth' as const }] },
];
const PODWAY_ARGS = ['--neighbor-reachable', '2000', '--neighbor-retrans', '300'];
const WORKERS = [1, 2];
/** Reachable 2 s + 3 probes 0.3 s apart + the 0.3 s tick, with room for a loaded machine. */
const RESUME_BOUND_MS = 15_000;

interface Entry { ip: string; mac: string | null; state: string }
interface Table { entries: Entry[]; counters: Record<string, number> }
interface Status { neighbors: Table; neighbors6: Table }

let lab: Lab | null = null;
let ok = false;

function ns2(args: string[]): string {
  return execFileSync('ip', ['netns', 'exec', lab!.node('node2').ns, ...args], { encoding: 'utf8', timeout: 10_000 });
}

async function status(): Promise<Status> {
  return (await controlRequest(lab!.node('node1').control, { cmd: 'status' }, 5000)) as Status;
}

async function counters(): Promise<Record<string, number>> {
  return ((await controlRequest(lab!.node('node1').control, { cmd: 'counters' }, 5000)) as { reasons: Record<string, number> }).reasons;
}

/** node1's entries for node2's IPv4 and IPv6 addresses. */
async function entries(): Promise<{ v4: Entry | undefined; v6: Entry | undefined; s: Status }> {
  const s = await status();
  const n2 = lab!.node('node2');
  return { v4: s.neighbors.entries.find((e) => e.ip === n2.ip), v6: s.neighbors6.entries.find((e) => e.ip === n2.ip6), s };
}

const pingOnce = (to: string) => lab!.ping('web-1', to, 1).received === 1;
const web2 = () => lab!.pod('web-2');

function setMac(mac: string): void {
  ns2(['ip', 'link', 'set', 'dev', 'eth0', 'address', mac]);
}

function setNotify(on: boolean): void {
  ns2(['sysctl', '-qw', `net.ipv4.conf.eth0.arp_notify=${on ? 1 : 0}`, `net.ipv6.conf.eth0.ndisc_notify=${on ? 1 : 0}`]);
}

for (const workers of WORKERS) {
  const test = suite(`underlay neighbours, ${workers} worker${workers > 1 ? 's' : ''}`);
  test.before(async () => {
    ok = false;
    if (!isRoot()) throw new Error('neighbour e2e tests need root (network namespaces)');
    lab = guard(new Lab(SPEC, { dualStack: true, podOffloads: false }));
    lab.build();
    configureKernelNode(lab, lab.node('node2'), 'vxlan');
    setNotify(false);
    await lab.startPodway('node1', 15_000, [...PODWAY_ARGS, '--workers', String(workers)]);
    const n2 = lab.node('node2');
    assert.ok(await until(async () => (await routes(lab!.node('node1'))).some((r) => r.cidr === n2.block6 && r.kind === 'vxlan'), 10_000), 'node1 routes node2\'s IPv6 block over VXLAN');
    assert.ok(await until(() => pingOnce(web2().ip) && pingOnce(web2().ip6!), 10_000, 200), 'web-1 reaches web-2 over IPv4 and IPv6');
  });

  test.after(async () => {
    if (!lab) return;
    if (!ok) console.log(logTail(lab, 40));
    await teardown(lab);
  });

  test('node2\'s MAC changes silently: re-probed, the new MAC answers the broadcast/multicast probe, IPv4 and IPv6 traffic resume', async () => {
    const before = await entries();
    const oldMac = JSON.parse(ns2(['ip', '-j', 'link', 'show', 'eth0']))[0].address as string;
    assert.is(before.v4?.mac, oldMac, 'IPv4 entry holds node2\'s MAC');
    assert.is(before.v6?.mac, oldMac, 'IPv6 entry holds node2\'s MAC');
    const newMac = '02:00:5e:10:00:2a';
    setMac(newMac);
    const t0 = Date.now();
    // Traffic while the old MAC is still cached is lost (node2 ignores frames to a MAC it no longer has).
    let t4 = -1;
    let t6 = -1;
    const resumed = await until(() => {
      if (t4 < 0 && pingOnce(web2().ip)) t4 = Date.now() - t0;
      if (t6 < 0 && pingOnce(web2().ip6!)) t6 = Date.now() - t0;
      return t4 >= 0 && t6 >= 0;
    }, RESUME_BOUND_MS, 100);
    console.log(`  traffic to node2's new MAC resumed after: IPv4 ${t4} ms, IPv6 ${t6} ms`);
    assert.ok(resumed, `traffic resumed within ${RESUME_BOUND_MS} ms (IPv4 ${t4}, IPv6 ${t6})`);
    const after = await entries();
    assert.is(after.v4?.mac, newMac, 'IPv4 entry has the new MAC');
    assert.is(after.v6?.mac, newMac, 'IPv6 entry has the new MAC');
    assert.ok(after.s.neighbors.counters.macChanged >= 1, `IPv4 macChanged ${after.s.neighbors.counters.macChanged}`);
    assert.ok(after.s.neighbors6.counters.macChanged >= 1, `IPv6 macChanged ${after.s.neighbors6.counters.macChanged}`);
    assert.is(after.s.neighbors.counters.announced, 0, 'node2 did not announce (arp_notify 0): found by probing');
    assert.is(after.s.neighbors6.counters.announced, 0, 'node2 did not announce (ndisc_notify 0): found by probing');
    // and the other way still works
    assert.is(lab!.ping('web-2', lab!.pod('web-1').ip, 3).loss, 0, 'web-2 -> web-1 IPv4');
    assert.is(lab!.ping('web-2', lab!.pod('web-1').ip6!, 3).loss, 0, 'web-2 -> web-1 IPv6');
  });

  test('node2 announces a new MAC (gratuitous ARP, unsolicited NA): taken from the announcement', async () => {
    const c0 = (await status());
    setNotify(true);
    const newMac = '02:00:5e:10:00:3b';
    setMac(newMac);
    assert.ok(await until(async () => {
      const e = await entries();
      return e.v4?.mac === newMac && e.v6?.mac === newMac;
    }, RESUME_BOUND_MS, 50), 'both entries have the announced MAC');
    const s = await status();
    assert.ok(s.neighbors.counters.announced > c0.neighbors.counters.announced, `IPv4 announced ${s.neighbors.counters.announced}`);
    assert.ok(s.neighbors6.counters.announced > c0.neighbors6.counters.announced, `IPv6 announced ${s.neighbors6.counters.announced}`);
    assert.ok(pingOnce(web2().ip) || pingOnce(web2().ip), 'IPv4 to node2 after the announcement');
    assert.ok(pingOnce(web2().ip6!) || pingOnce(web2().ip6!), 'IPv6 to node2 after the announcement');
    setNotify(false);
  });

  test('node2 goes silent: both entries end FAILED, traffic to it is counted neighbor_failed, and resumes when it answers again', async () => {
    ns2(['nft', 'add table netdev deadpeer; add chain netdev deadpeer in { type filter hook ingress device eth0 priority 0; policy drop; }']);
    try {
      const failed = await until(async () => {
        const e = await entries();
        return e.v4?.state === 'failed' && e.v6?.state === 'failed';
      }, RESUME_BOUND_MS, 100);
      const e = await entries();
      assert.ok(failed, `entries FAILED: IPv4 ${JSON.stringify(e.v4)}, IPv6 ${JSON.stringify(e.v6)}`);
      assert.is(e.v4?.mac, null);
      assert.is(e.v6?.mac, null);
      assert.ok(e.s.neighbors.counters.failedNow >= 1 && e.s.neighbors6.counters.failedNow >= 1, 'failedNow counters');
      // Every thread's table fails on its own timer (a worker's may lag the main one by a probe
      // round): ping until 6 pings were counted, none answered.
      const d0 = (await counters()).neighbor_failed ?? 0;
      let answered = 0;
      let sent = 0;
      const counted = await until(async () => {
        answered += lab!.ping('web-1', web2().ip, 1).received + lab!.ping('web-1', web2().ip6!, 1).received;
        sent += 2;
        return ((await counters()).neighbor_failed ?? 0) - d0 >= 6;
      }, 10_000, 0);
      assert.is(answered, 0, 'a dead peer answers nothing');
      assert.ok(counted, `pings to the dead peer were counted neighbor_failed (${((await counters()).neighbor_failed ?? 0) - d0} of ${sent})`);
      const rows = (await routes(lab!.node('node1'))) as unknown as { cidr: string; nextHopMac: string }[];
      assert.is(rows.find((r) => r.cidr === lab!.node('node2').block)?.nextHopMac, 'failed', 'podway routes shows the next hop failed');
    } finally {
      ns2(['nft', 'delete', 'table', 'netdev', 'deadpeer']);
    }
    // The next round comes after the hold-down: 10 s after the first failed round, doubled after
    // each further one, at most 60 s (neighbors.ts). node2, deaf, keeps asking for node1, and each
    // of its requests makes node1's entry STALE and probed again: on a loaded host (the pings
    // above slow) that is several failed rounds, so the wait covers the longest hold-down.
    const back = await until(() => pingOnce(web2().ip) && pingOnce(web2().ip6!), 75_000, 200);
    assert.ok(back, 'traffic resumes once node2 answers the next probe round');
    const e = await entries();
    assert.ok(e.v4?.state === 'reachable' || e.v4?.state === 'stale', `IPv4 entry answered again: ${e.v4?.state}`);
    ok = true;
  });
  test.run();
}
