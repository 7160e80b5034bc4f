/**
 * The node's rp_filter changed while `podway run` runs (root, network namespaces): podway reads
 * net.ipv4.conf.all/default.rp_filter again (every 2 s: run.ts, Engine.rereadRpFilter) and filters
 * what it decapsulates with the new value at once, on every forwarding thread (two workers here),
 * says so in its log and in `podway status`.
 *
 * node1 runs podway; from node2's namespace a UDP socket sends VXLAN payloads to node1:4789 (inner
 * destination MAC node1's VTEP MAC) carrying UDP to pod web-1: first from a source whose route back
 * is not the tunnel (198.51.100.7), then from web-2 (node2's pod: a legitimate source). A sniffer in
 * web-1's namespace lists what arrives and ends once web-2's arrives (sent last, in order through
 * podway), so nothing here waits for a drop. Strict (1): only web-2's, the other counted
 * reverse_path; off (0): both; strict again through `all`: only web-2's.
 * Without the re-read podway keeps the value it read at start: the second round fails.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawn } from 'node:child_process';
import { execFileSync } from 'node:child_process';
import * as path from 'node:path';
import { Lab, LabNode, LabPod, run } from '../../src/lab/lab';
import { deriveVtepMac } from '../../src/control';
import { controlRequest } from '../../src/dataplane/control-server';
import { guard, teardown, isRoot, kindOf, logMessage, logTail, until, waitLog as waitRaw } from './e2e-kit';
import { VXLAN_SOURCES_SENDER, VXLAN_SOURCES_SNIFFER } from './vxlan-sources';
import { exitedAndRead } from '../helpers/proc';

const waitLog = (n: LabNode, re: RegExp, from: number, ms: number) => waitRaw(n, { test: (l: string) => re.test(logMessage(l)) } as RegExp, from, ms);

const SPEC = [
  { name: 'node1', subnet: 'a' as const, pods: [{ name: 'rpf-1', type: 'veth' as const }] },
  { name: 'node2', subnet: 'a' as const, pods: [{ name: 'rpf-2', type: 'veth' as const }] },
];

let lab: Lab | null = null;
let ok = false;

const OFF_PATH = '198.51.100.7';
const MARK = `pw-felix2-rpf-${process.pid}`;

// The sources of IPv4/UDP frames to port 9999 carrying MARK on IFACE, until LAST's second one (or
/** The inner sources that reached `pod` from `from` (OFF_PATH's, then `last`'s), and podway's reverse_path count meanwhile. */
async function round(from: LabNode, to: LabNode, pod: LabPod, last: string): Promise<{ seen: string[]; reversePath: number }> {
  const count = async () => ((await controlRequest(to.control, { cmd: 'counters' }, 5000)) as { reasons: Record<string, number> }).reasons.reverse_path ?? 0;
  const before = await count();
  const p = spawn('ip', ['netns', 'exec', pod.ns, 'python3', '-c', VXLAN_SOURCES_SNIFFER, pod.podIf, MARK, '20', last], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  p.stdout.on('data', (d) => (out += d));
  p.stderr.on('data', (d) => (err += d));
  const done = exitedAndRead(p).then((x) => x.code); // the sniffer's lines read to the end (python flushes them at its exit)
  try {
    assert.ok(await until(async () => out.includes('ready'), 30_000), `sniffer in ${pod.ns} did not start: ${err}`);
    run('ip', ['netns', 'exec', from.ns, 'python3', '-c', VXLAN_SOURCES_SENDER, to.ip, deriveVtepMac(to.name), pod.ip, MARK, OFF_PATH, last]);
    assert.is(await done, 0, `sniffer: ${err}`);
  } finally {
    if (p.exitCode === null && p.pid !== undefined) p.kill('SIGKILL');
  }
  const lines = out.trim().split('\n');
  const seen = lines.length > 1 ? lines[lines.length - 1].split(' ').filter((x) => x !== '') : [];
  assert.is(seen.filter((s) => s === last).length, 2, `the legitimate source arrived: ${out} ${err}`);
  return { seen, reversePath: (await count()) - before };
}

const sysctl = (n: LabNode, key: string, v: number) => run('ip', ['netns', 'exec', n.ns, 'sysctl', '-qw', `net.ipv4.conf.${key}.rp_filter=${v}`]);
const rpStatus = async (n: LabNode) => (await controlRequest(n.control, { cmd: 'status' }, 5000)) as { rpFilter?: number; rpFilterChange?: { at: string; was: number } | null };

test.before(async () => {
  if (!isRoot()) throw new Error('these tests need root (network namespaces)');
  lab = guard(new Lab(SPEC));
  lab.build();
  const n1 = lab.node('node1');
  sysctl(n1, 'all', 0);
  sysctl(n1, 'default', 1);
  await lab.startPodway('node1', undefined, ['--workers', '2']);
  const n2 = lab.node('node2');
  assert.ok(await until(async () => (await kindOf(n1, n2.block)) === 'vxlan', 10_000), `node1 has no vxlan route to ${n2.block}`);
});

test.after(async () => {
  if (!lab) return;
  if (!ok) console.log(logTail(lab, 30));
  await teardown(lab);
});

test('at start: default 1, strict: the source with no route back through the tunnel is dropped, counted reverse_path', async () => {
  const [n1, n2] = [lab!.node('node1'), lab!.node('node2')];
  const s = await rpStatus(n1);
  assert.is(s.rpFilter, 1);
  assert.is(s.rpFilterChange, null);
  const r = await round(n2, n1, n1.pods[0], n2.pods[0].ip);
  assert.equal([...new Set(r.seen)], [n2.pods[0].ip], r.seen.join(' '));
  assert.is(r.reversePath, 2);
});

test('default set to 0 while running: read again, said in the log and status, and both arrive (every worker told)', async () => {
  const [n1, n2] = [lab!.node('node1'), lab!.node('node2')];
  const mark = n1.log.length;
  sysctl(n1, 'default', 0);
  assert.ok(await waitLog(n1, /rp_filter 1 -> 0 \(net\.ipv4\.conf\.all\/default\.rp_filter changed, the larger of the two taken\): decapsulated IPv4 filtered off/, mark, 20_000), `said: ${n1.log.slice(mark).join(' | ')}`);
  const s = await rpStatus(n1);
  assert.is(s.rpFilter, 0);
  assert.is(s.rpFilterChange?.was, 1);
  const text = execFileSync(process.execPath, [path.resolve(__dirname, '..', '..', '..', 'bin', 'podway.js'), 'status', '--control', n1.control], { encoding: 'utf8', timeout: 10_000 });
  assert.match(text, /rp_filter 0 \(off; martian and own sources dropped at any setting; was 1 until \S+\)/);
  for (let k = 0; k < 2; k++) {
    const r = await round(n2, n1, n1.pods[0], n2.pods[0].ip);
    assert.equal([...new Set(r.seen)].sort(), [OFF_PATH, n2.pods[0].ip].sort(), r.seen.join(' '));
    assert.is(r.reversePath, 0);
  }
});

test('all set to 1: strict again (the larger of all and default)', async () => {
  const [n1, n2] = [lab!.node('node1'), lab!.node('node2')];
  const mark = n1.log.length;
  sysctl(n1, 'all', 1);
  assert.ok(await waitLog(n1, /rp_filter 0 -> 1 /, mark, 20_000), `said: ${n1.log.slice(mark).join(' | ')}`);
  const r = await round(n2, n1, n1.pods[0], n2.pods[0].ip);
  assert.equal([...new Set(r.seen)], [n2.pods[0].ip], r.seen.join(' '));
  assert.is(r.reversePath, 2);
  ok = true;
});

test.run();
