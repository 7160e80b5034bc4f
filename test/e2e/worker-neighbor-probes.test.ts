/**
 * One resolver of underlay neighbours for every forwarding thread (`podway run --workers 2`; root,
 * network namespaces). node1 runs podway with two threads and short neighbour timings, node2 is a
 * kernel node (src/lab/kernel.ts, dual-stack VXLAN). node2 goes deaf (an ingress drop-all on its
 * underlay interface) while tcpdump in node2's namespace counts what reaches it (packet taps come
 * before the ingress hook): node1's ARP requests for node2's IPv4 address and Neighbor
 * Solicitations for its IPv6 one, until node1's entries are FAILED.
 * - every probe seen is one of the main thread's (its table's `probes` counter, IPv4 and IPv6,
 *   over the same window): before, each thread probed every next hop itself, twice as many;
 * - "stopped answering" is a warning once per address (the main thread's); the second thread's
 *   own line is at debug level (before: one warning per thread).
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { configureKernelNode } from '../../src/lab/kernel';
import { Lab } from '../../src/lab/lab';
import { controlRequest } from '../../src/dataplane/control-server';
import { guard, teardown, isRoot, routes, logTail, until } from './e2e-kit';

const SPEC = [
  { name: 'node1', subnet: 'a' as const, pods: [{ name: 'web-1', type: 'veth' as const }] },
  { name: 'node2', subnet: 'a' as const, pods: [{ name: 'web-2', type: 'veth' as const }] },
];

interface Entry { ip: string; mac: string | null; state: string }
interface Table { entries: Entry[]; counters: Record<string, number> }
interface Status { neighbors: Table; neighbors6: Table }

let lab: Lab | null = null;
let ok = false;
let dump: ChildProcess | null = null;
let deaf = false;

const ns2 = (args: string[]) => execFileSync('ip', ['netns', 'exec', lab!.node('node2').ns, ...args], { encoding: 'utf8', timeout: 10_000 });
const status = async () => (await controlRequest(lab!.node('node1').control, { cmd: 'status' }, 10_000)) as Status;
const pingOnce = (to: string) => lab!.ping('web-1', to, 1).received === 1;

async function stopDump(): Promise<void> {
  const d = dump;
  dump = null;
  if (!d || d.exitCode !== null || d.signalCode !== null) return;
  const gone = new Promise<void>((r) => d.once('exit', () => r()));
  d.kill('SIGTERM');
  const t = setTimeout(() => d.kill('SIGKILL'), 3000);
  await gone;
  clearTimeout(t);
}

test.before(async () => {
  if (!isRoot()) throw new Error('e2e tests need root (network namespaces)');
  lab = guard(new Lab(SPEC, { dualStack: true, podOffloads: false }));
  lab.build();
  configureKernelNode(lab, lab.node('node2'), 'vxlan');
  await lab.startPodway('node1', 20_000, ['--neighbor-reachable', '2000', '--neighbor-retrans', '300', '--workers', '2', '--log-level', 'debug']);
  const n2 = lab.node('node2');
  assert.ok(await until(async () => (await routes(lab!.node('node1'))).some((r) => r.cidr === n2.block6 && r.kind === 'vxlan'), 15_000), 'node1 routes node2\'s IPv6 block over VXLAN');
  assert.ok(await until(() => pingOnce(lab!.pod('web-2').ip) && pingOnce(lab!.pod('web-2').ip6!), 15_000, 200), 'web-1 reaches web-2 over IPv4 and IPv6');
});

test.after(async () => {
  await stopDump();
  if (lab) {
    if (deaf) {
      try { ns2(['nft', 'delete', 'table', 'netdev', 'deadpeer']); } catch { /* gone with the namespace */ }
    }
    if (!ok) console.log(logTail(lab, 40));
    await teardown(lab);
  }
});

test('node2 goes deaf: only the main thread probes it (ARP, NDP), and says once that it stopped answering', async () => {
  const n1 = lab!.node('node1');
  const n2 = lab!.node('node2');
  // what reaches node2's eth0 from node1: ARP requests for node2 and Neighbor Solicitations (type 135)
  // The main thread's probe counts before tcpdump listens: every probe tcpdump sees is counted after
  // this (read after, a re-probe between "listening" and the read was seen but not counted).
  const s0 = await status();
  let out = '';
  let err = '';
  dump = spawn('ip', ['netns', 'exec', n2.ns, 'tcpdump', '-i', 'eth0', '-n', '-l', '-p', 'arp or (icmp6 and ip6[40] == 135)'], { stdio: ['ignore', 'pipe', 'pipe'] });
  dump.stdout!.setEncoding('utf8').on('data', (d: string) => (out += d));
  dump.stderr!.setEncoding('utf8').on('data', (d: string) => (err += d));
  assert.ok(await until(() => /listening on/.test(err), 10_000, 20), `tcpdump listening: ${err}`);
  const from = n1.log.length;
  ns2(['nft', 'add table netdev deadpeer; add chain netdev deadpeer in { type filter hook ingress device eth0 priority 0; policy drop; }']);
  deaf = true;
  const v4 = `neighbour ${n2.ip} stopped answering`;
  const v6 = `IPv6 neighbour ${n2.ip6} stopped answering`;
  const lines = (text: string) => n1.log.slice(from).filter((l) => l.includes(text)).map((l) => JSON.parse(l) as { level: string; worker?: number });
  // both entries FAILED in both threads: the main thread's status, and the second thread's own line
  // (at any level: before the change it was a warning too)
  const failed = await until(async () => {
    const s = await status();
    const e4 = s.neighbors.entries.find((e) => e.ip === n2.ip);
    const e6 = s.neighbors6.entries.find((e) => e.ip === n2.ip6);
    return e4?.state === 'failed' && e6?.state === 'failed' && lines(v4).some((l) => l.worker === 1) && lines(v6).some((l) => l.worker === 1);
  }, 20_000, 100);
  const s1 = await status();
  assert.ok(failed, `FAILED in both threads: ${JSON.stringify({ v4: s1.neighbors.entries, v6: s1.neighbors6.entries, lines4: lines(v4), lines6: lines(v6) })}`);
  // the main thread's hold-down (10 s) has begun: no probe now; what was sent has reached node2
  await until(() => false, 500, 100);
  await stopDump();
  const arp = out.split('\n').filter((l) => l.includes(`Request who-has ${n2.ip} tell ${n1.ip}`)).length;
  const ns = out.split('\n').filter((l) => l.includes(`${n1.ip6} > `) && l.includes(`who has ${n2.ip6}`)).length;
  const main4 = s1.neighbors.counters.probes - s0.neighbors.counters.probes;
  const main6 = s1.neighbors6.counters.probes - s0.neighbors6.counters.probes;
  console.log(`probes seen by node2: ARP ${arp}, NS ${ns}; the main thread's table sent ARP ${main4}, NS ${main6}`);
  assert.ok(main4 >= 1 && main6 >= 1, `the main thread probed: ${main4}, ${main6}`);
  assert.ok(arp <= main4, `ARP requests seen ${arp} <= the main thread's ${main4} (no other thread probes)`);
  assert.ok(ns <= main6, `Neighbor Solicitations seen ${ns} <= the main thread's ${main6}`);
  assert.ok(arp >= 1 && ns >= 1, `tcpdump saw the probes: ${arp}, ${ns}\n${out.slice(0, 2000)}`);
  for (const [what, text] of [['IPv4', v4], ['IPv6', v6]] as const) {
    const l = lines(text);
    assert.is(l.filter((x) => x.level === 'warn').length, 1, `${what}: one warning: ${JSON.stringify(l)}`);
    assert.ok(l.filter((x) => x.level === 'warn').every((x) => x.worker === undefined || x.worker === 0), `${what}: the main thread's: ${JSON.stringify(l)}`);
    assert.ok(l.some((x) => x.worker === 1 && x.level === 'debug'), `${what}: the second thread's at debug: ${JSON.stringify(l)}`);
  }
  ns2(['nft', 'delete', 'table', 'netdev', 'deadpeer']);
  deaf = false;
  ok = true;
});

test.run();
