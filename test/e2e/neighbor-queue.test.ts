/**
 * The first packet to an underlay neighbour still being resolved arrives (root, network
 * namespaces): node1 runs podway, node2 is a kernel node (src/lab/kernel.ts), unencapsulated
 * (direct routes, IPv4 and IPv6). node2 is not in the model at first; node2 is made
 * slow to answer (its ARP replies and Neighbor Advertisements dropped on the way out), then its
 * blocks appear: podway's next hops to node2 are unresolved, and one ping (count 1) from web-1 to
 * web-2 over each family is held by podway (counter `neighbor_queued`) instead of being dropped.
 * Once node2 answers (the next probe, `--neighbor-retrans 4000`), the held requests leave with its
 * MAC and both pings are answered. Before the pending queue those requests were dropped
 * (`neighbor_unresolved`) and the pings got nothing. With one forwarding thread and with two
 * (--workers 2: the answer may reach the other worker, which shares it; the worker that held the
 * packet sends it); and with `--neighbor-queue 0`, where both are dropped as before.
 */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { writeFileSync, renameSync } from 'node:fs';
import { configureKernelNode } from '../../src/lab/kernel';
import { Lab } from '../../src/lab/lab';
import { controlRequest } from '../../src/dataplane/control-server';
import { guard, teardown, isRoot, routes, logTail, until, nsExec, pingIn, type PingRun } from './e2e-kit';

const SPEC = [
  { name: 'node1', subnet: 'a' as const, pods: [{ name: 'web-1', type: 'veth' as const }] },
  { name: 'node2', subnet: 'a' as const, pods: [{ name: 'web-2', type: 'veth' as const }] },
];
/** Probes 4 s apart: node2's entry stays INCOMPLETE (its 3 probes, 12 s) while the test checks
 * the pings are held, with room for a loaded machine. */
const PODWAY_ARGS = ['--neighbor-retrans', '4000'];
const SILENT = 'podway-test-silent';

let lab: Lab | null = null;
let ok = false;

async function counters(): Promise<Record<string, number>> {
  return ((await controlRequest(lab!.node('node1').control, { cmd: 'counters' }, 5000)) as { reasons: Record<string, number> }).reasons;
}

/** The resource file without node2's Node, blocks and pods (its VTEP address would be routed
 * through it too): nothing is routed through node2 yet, and podway does not resolve it. */
function withoutNode2(): void {
  const ofNode2 = (d: string) => (d.includes('kind: Node\n') && d.includes('name: node2\n')) || d.includes('node: node2\n');
  const docs = lab!.resources('direct').split('\n---\n').filter((d) => !ofNode2(d));
  writeFileSync(lab!.file + '.tmp', docs.join('\n---\n') + '\n');
  renameSync(lab!.file + '.tmp', lab!.file);
}

/** node2 stops answering ARP and NDP (its requests and solicitations still go out). */
function silence(on: boolean): void {
  const ns = lab!.node('node2').ns;
  if (on) {
    nsExec(ns, ['nft', `add table arp ${SILENT}; add chain arp ${SILENT} out { type filter hook output priority 0; arp operation reply drop; }`]);
    nsExec(ns, ['nft', `add table ip6 ${SILENT}; add chain ip6 ${SILENT} out { type filter hook output priority 0; icmpv6 type nd-neighbor-advert drop; }`]);
  } else {
    nsExec(ns, ['nft', `delete table arp ${SILENT}; delete table ip6 ${SILENT}`]);
  }
}

interface FirstPings { reached: boolean; r4: PingRun; r6: PingRun; c0: Record<string, number>; c1: Record<string, number>; c2: Record<string, number> }

/**
 * node2 silenced, its Node and blocks written: once node1 shows the direct routes unresolved, one
 * ping per family from web-1 to web-2 (each reply awaited `waitS` seconds); once both requests
 * reached podway (held or dropped), node2 answers again. The counters before, at that point, after.
 */
async function firstPings(waitS: number): Promise<FirstPings> {
  const n2 = lab!.node('node2');
  const web2 = lab!.pod('web-2');
  const web1 = lab!.pod('web-1');
  assert.not.ok((await routes(lab!.node('node1'))).some((r) => r.cidr === n2.block), 'no route to node2 yet');
  const st = (await controlRequest(lab!.node('node1').control, { cmd: 'status' }, 5000)) as { neighbors: { entries: { ip: string }[] }; neighbors6: { entries: { ip: string }[] } };
  assert.not.ok(st.neighbors.entries.some((e) => e.ip === n2.ip) || st.neighbors6.entries.some((e) => e.ip === n2.ip6), `node2 not a neighbour podway resolves yet: ${JSON.stringify(st.neighbors.entries)} ${JSON.stringify(st.neighbors6.entries)}`);
  silence(true);
  let silenced = true;
  try {
    lab!.setMode('direct'); // node2 and its blocks appear
    const unresolved = await until(async () => {
      const rows = (await routes(lab!.node('node1'))) as unknown as { cidr: string; kind: string; nextHopMac: string }[];
      const v4 = rows.find((r) => r.cidr === n2.block);
      const v6 = rows.find((r) => r.cidr === n2.block6);
      return v4?.kind === 'direct' && v6?.kind === 'direct' && v4.nextHopMac === '' && v6.nextHopMac === '';
    }, 10_000);
    assert.ok(unresolved, 'node1 routes node2\'s blocks directly, next hops unresolved');
    const c0 = await counters();
    const p4 = pingIn(web1.ns, web2.ip, 1, 0.05, ['-W', String(waitS)]);
    const p6 = pingIn(web1.ns, web2.ip6!, 1, 0.05, ['-W', String(waitS)]);
    // Both requests reached podway (held, or dropped by a podway without the queue) before node2 answers.
    const seen = (c: Record<string, number>) => (c.neighbor_queued ?? 0) + (c.neighbor_unresolved ?? 0) + (c.neighbor_queue_full ?? 0);
    const reached = await until(async () => seen(await counters()) - seen(c0) >= 2, 10_000);
    const c1 = await counters();
    silence(false);
    silenced = false;
    const [r4, r6] = await Promise.all([p4.done, p6.done]);
    return { reached, r4, r6, c0, c1, c2: await counters() };
  } finally {
    if (silenced) silence(false);
  }
}

const RUNS = [
  { workers: 1, args: [] as string[] },
  { workers: 2, args: [] as string[] },
  // the flag reaches every worker: nothing held, the first requests lost as before the queue
  { workers: 2, args: ['--neighbor-queue', '0'] },
];

for (const { workers, args } of RUNS) {
  const held = !args.includes('0');
  const test = suite(`first packet to an unresolved neighbour, ${workers} worker${workers > 1 ? 's' : ''}${held ? '' : ', --neighbor-queue 0'}`);
  test.before(async () => {
    ok = false;
    if (!isRoot()) throw new Error('neighbour queue e2e tests need root (network namespaces)');
    lab = guard(new Lab(SPEC, { dualStack: true, podOffloads: false }));
    lab.build();
    lab.setMode('direct');
    withoutNode2();
    configureKernelNode(lab, lab.node('node2'), 'direct');
    await lab.startPodway('node1', 15_000, [...PODWAY_ARGS, '--workers', String(workers), ...args]);
  });

  test.after(async () => {
    if (!lab) return;
    if (!ok) console.log(logTail(lab, 40));
    await teardown(lab);
  });

  if (held) {
    test('a route to node2 appears while node2 is slow to answer ARP/NDP: one ping per family, sent at once, is held and answered', async () => {
      const { reached, r4, r6, c0, c1, c2 } = await firstPings(30);
      assert.ok(reached, `both echo requests reached podway while node2 was unresolved (${JSON.stringify(c1)})`);
      assert.is(r4.received, 1, `IPv4: the first echo request arrived and was answered\n${r4.out}\ncounters ${JSON.stringify(c2)}`);
      assert.is(r6.received, 1, `IPv6: the first echo request arrived and was answered\n${r6.out}\ncounters ${JSON.stringify(c2)}`);
      assert.ok((c1.neighbor_queued ?? 0) - (c0.neighbor_queued ?? 0) >= 2, `both held for node2 (neighbor_queued ${c1.neighbor_queued ?? 0})`);
      assert.ok((c2.neighbor_queue_sent ?? 0) - (c0.neighbor_queue_sent ?? 0) >= 2, `held requests sent (${c2.neighbor_queue_sent ?? 0})`);
      assert.is(c2.neighbor_queue_timeout ?? 0, 0, 'none timed out');
      assert.is(c2.neighbor_unresolved ?? 0, 0, 'none dropped as unresolved');
      ok = true;
    });
  } else {
    test('--neighbor-queue 0: the same first pings are dropped as neighbor_unresolved (the behaviour before the queue)', async () => {
      const { reached, r4, r6, c0, c1, c2 } = await firstPings(3);
      assert.ok(reached, `both echo requests reached podway while node2 was unresolved (${JSON.stringify(c1)})`);
      assert.ok((c2.neighbor_unresolved ?? 0) - (c0.neighbor_unresolved ?? 0) >= 2, `both dropped as unresolved (${JSON.stringify(c2)})`);
      assert.is(c2.neighbor_queued ?? 0, 0, 'nothing held');
      assert.is(r4.received + r6.received, 0, 'so neither was answered');
      ok = true;
    });
  }
  test.run();
}
