/**
 * A pod's TCP super-frames for an underlay neighbour being resolved wait whole (root, network
 * namespaces): node1 runs podway, node2 is a kernel node (src/lab/kernel.ts), direct routes, the
 * pods' veth offloads on (podway reads web-1's TSO super-frames whole). web-1 sends web-2 a first
 * part, pauses; podway restarts (its neighbour table empty) while node2 does not answer ARP; then
 * web-1 sends the rest at once with its window open (no slow start after idle): those super-frames
 * reach podway with node2 unresolved and are held whole (`neighbor_queued` counts their segments:
 * more than the 3 packets a neighbour may have held), node2 answers again, and they leave with its
 * MAC. The stream's sha256 is checked on both sides and nothing is dropped `neighbor_unresolved`.
 * Before, segment 0 of each waited and the other segments were dropped `neighbor_unresolved` (the
 * sender resent them).
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { configureKernelNode } from '../../src/lab/kernel';
import { Lab } from '../../src/lab/lab';
import { controlRequest } from '../../src/dataplane/control-server';
import { guard, teardown, isRoot, logTail, until, nsExec, spawnCollected, assertStreamIntact } from './e2e-kit';

const PEER = path.join(__dirname, 'tcp-peer.js');
const SPEC = [
  { name: 'node1', subnet: 'a' as const, pods: [{ name: 'web-1', type: 'veth' as const }] },
  { name: 'node2', subnet: 'a' as const, pods: [{ name: 'web-2', type: 'veth' as const }] },
];
/** Probes 4 s apart: node2 stays INCOMPLETE (3 probes, 12 s) while the burst is held. */
const PODWAY_ARGS = ['--neighbor-retrans', '4000', '--workers', '1'];
const SILENT = `podway-test-silent-${process.pid}`;

let lab: Lab | null = null;
let dir = '';
let ok = false;

/** A file's text, '' if it cannot be read (a thread or process gone meanwhile). */
function readOr(file: string): string {
  try {
    return readFileSync(file, 'utf8').trim();
  } catch {
    return '';
  }
}

/**
 * What node1's podway is doing (for a request it did not answer): each thread's name, state, CPU
 * ticks (user+system) and kernel wait channel, and its child processes (a synchronous nft or ip run
 * by the main thread shows here).
 */
function podwayThreads(): string {
  const pid = lab?.node('node1').proc?.pid;
  if (pid === undefined) return 'podway not running';
  const stat = (f: string) => {
    const s = readOr(f);
    const close = s.lastIndexOf(')');
    const rest = s.slice(close + 2).split(' ');
    return { comm: s.slice(s.indexOf('(') + 1, close), state: rest[0], ppid: Number(rest[1]), ticks: Number(rest[11]) + Number(rest[12]) };
  };
  const parts: string[] = [];
  let tasks: string[] = [];
  try {
    tasks = readdirSync(`/proc/${pid}/task`);
  } catch {
    return `podway PID ${pid} gone`;
  }
  for (const t of tasks) {
    const st = stat(`/proc/${pid}/task/${t}/stat`);
    parts.push(`${t} ${st.comm} ${st.state} cpu ${st.ticks} wchan ${readOr(`/proc/${pid}/task/${t}/wchan`) || '-'}`);
  }
  const kids = readdirSync('/proc').filter((d) => /^\d+$/.test(d) && stat(`/proc/${d}/stat`).ppid === pid)
    .map((d) => `${d} ${readOr(`/proc/${d}/cmdline`).split('\0').join(' ')}`);
  return `podway PID ${pid} threads: ${parts.join('; ')}; children: ${kids.join('; ') || 'none'}`;
}

/** One control request to node1's podway (5 s); an unanswered one names the request and what podway was doing. */
async function ask(cmd: string): Promise<unknown> {
  try {
    return await controlRequest(lab!.node('node1').control, { cmd }, 5000);
  } catch (e) {
    throw new Error(`${cmd}: ${(e as Error).message}; ${podwayThreads()}`);
  }
}

async function counters(): Promise<Record<string, number>> {
  return ((await ask('counters')) as { reasons: Record<string, number> }).reasons;
}

/**
 * node2 says nothing over ARP: its replies and its own requests are dropped (a request for node1
 * from node2's kernel would tell podway node2's MAC, and nothing would be held).
 */
function silence(on: boolean): void {
  const ns = lab!.node('node2').ns;
  if (on) nsExec(ns, ['nft', `add table arp ${SILENT}; add chain arp ${SILENT} out { type filter hook output priority 0; drop; }`]);
  else nsExec(ns, ['nft', `delete table arp ${SILENT}`]);
}

test.before(async () => {
  if (!isRoot()) throw new Error('neighbour queue e2e tests need root (network namespaces)');
  dir = mkdtempSync(path.join(tmpdir(), 'podway-nqsuper-'));
  lab = guard(new Lab(SPEC));
  lab.build();
  lab.setMode('direct');
  configureKernelNode(lab, lab.node('node2'), 'direct');
  nsExec(lab.pod('web-1').ns, ['sysctl', '-q', '-w', 'net.ipv4.tcp_slow_start_after_idle=0']);
  await lab.startPodway('node1', 15_000, PODWAY_ARGS);
});

test.after(async () => {
  if (lab) {
    if (!ok) console.log(logTail(lab, 40));
    await teardown(lab);
  }
  if (dir) rmSync(dir, { recursive: true, force: true });
});

test('super-frames for node2 while it is resolved after a restart wait whole and leave with its MAC: the stream intact, nothing dropped neighbor_unresolved', async () => {
  const web1 = lab!.pod('web-1');
  const web2 = lab!.pod('web-2');
  const n2 = lab!.node('node2');
  const go = path.join(dir, 'go');
  const server = spawnCollected('ip', ['netns', 'exec', web2.ns, 'env', 'PEER_TIMEOUT_S=240', process.execPath, PEER, 'recv', web2.ip, '5401', String(1 << 20)], 250_000);
  assert.ok(await until(() => /listening/.test(server.out()) || server.proc.exitCode !== null, 15_000), `receiver up: ${server.err()}`);
  const client = spawnCollected('ip', ['netns', 'exec', web1.ns, 'env', 'PEER_TIMEOUT_S=240', process.execPath, PEER, 'send-pause', web2.ip, '5401', String(1 << 20), String(4 << 20), go], 250_000);
  try {
    let silenced = false;
    try {
      assert.ok(await until(() => /paused/.test(client.out()) || client.proc.exitCode !== null, 60_000), `first part sent: ${client.err()}`);
      // the receiver has read the whole first part (its window updates and ACKs sent) before the restart:
      // under load the sender's 2 s were not always enough, and a pod that speaks after the restart
      // (its late window update) could find podway's neighbour entry in another state than the test means
      assert.ok(await until(() => /^got /m.test(server.out()) || server.proc.exitCode !== null, 60_000), `first part read by the receiver: ${server.err()}`);
      await new Promise((r) => setTimeout(r, 500));
      silence(true);
      silenced = true;
      await lab!.stopPodway('node1');
      await lab!.startPodway('node1', 15_000, PODWAY_ARGS);
      const unresolved = await until(async () => {
        const rows = (await ask('routes')) as { cidr: string; kind: string; nextHopMac: string }[];
        const r = rows.find((x) => x.cidr === n2.block);
        return r?.kind === 'direct' && r.nextHopMac === '';
      }, 15_000);
      assert.ok(unresolved, 'node1 routes node2\'s block directly, next hop unresolved');
      const c0 = await counters();
      writeFileSync(go, '');
      const held = await until(async () => ((await counters()).neighbor_queued ?? 0) > 3, 15_000);
      const c1 = await counters();
      silence(false);
      silenced = false;
      assert.ok(held, `a super-frame held as its segments (more than 3 packets queued): ${JSON.stringify(c1)}`);
      assert.is(c0.neighbor_queued ?? 0, 0);
    } finally {
      if (silenced) silence(false);
    }
    await assertStreamIntact(client, server, 5 << 20);
    const c2 = await counters();
    assert.is(c2.neighbor_queue_sent ?? 0, c2.neighbor_queued ?? 0, `everything held was sent: ${JSON.stringify(c2)}`);
    assert.is(c2.neighbor_unresolved ?? 0, 0, 'no segment dropped neighbor_unresolved');
    assert.is(c2.neighbor_queue_timeout ?? 0, 0);
    ok = true;
  } finally {
    // a failed test does not wait out the pair's 250 s limit (its timers kept this file running)
    if (!ok) for (const p of [client.proc, server.proc]) if (p.exitCode === null && p.signalCode === null) p.kill('SIGKILL');
  }
});

test.run();
