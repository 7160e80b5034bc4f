/**
 * The kernel and podway agree on what a node refuses from another node over VXLAN (root, network
 * namespaces): node1 runs podway, node2 is a kernel node programmed as Felix programs one
 * (src/lab/kernel.ts), its vxlan.calico made while net.ipv4.conf.default.rp_filter is 1 (strict, as
 * on a distribution that sets it so; Felix leaves tunnel devices' rp_filter alone), and podway on
 * node1 started with node1's default rp_filter 1 too (it reads the value its tunnels would have).
 *
 * Each side is sent the same inner packets by hand (a UDP socket in the other node's namespace
 * sending VXLAN payloads to port 4789, inner destination MAC the receiver's VTEP MAC): UDP to a pod
 * from a legitimate source (a pod of the sender's block), from martian sources (127.0.0.1,
 * 224.0.0.5, 0.0.0.0, 255.255.255.255) and from a source whose route back is not the tunnel
 * (198.51.100.7). A sniffer (AF_PACKET) in the receiving pod's namespace lists what arrives: on both
 * sides only the legitimate one; podway counts the others martian_src and reverse_path.
 */
import { configureKernelNode } from '../../src/lab/kernel';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawn } from 'node:child_process';
import { Lab, LabNode, LabPod, run } from '../../src/lab/lab';
import { deriveVtepMac } from '../../src/control';
import { controlRequest } from '../../src/dataplane/control-server';
import { guard, teardown, isRoot, kindOf, logTail, until } from './e2e-kit';
import { VXLAN_SOURCES_SENDER, VXLAN_SOURCES_SNIFFER } from './vxlan-sources';
import { exitedAndRead } from '../helpers/proc';

const SPEC = [
  { name: 'node1', subnet: 'a' as const, pods: [{ name: 'web-1', type: 'veth' as const }] },
  { name: 'node2', subnet: 'a' as const, pods: [{ name: 'web-2', type: 'veth' as const }] },
];

let lab: Lab | null = null;
let ok = false;

const MARTIANS = ['127.0.0.1', '224.0.0.5', '0.0.0.0', '255.255.255.255'];
const OFF_PATH = '198.51.100.7';
const MARK = `pw-wire2-${process.pid}`;

/** The inner sources that reached `pod` while `send` ran (a sniffer in its namespace). */
async function arrivals(pod: LabPod, send: () => void): Promise<string[]> {
  const p = spawn('ip', ['netns', 'exec', pod.ns, 'python3', '-c', VXLAN_SOURCES_SNIFFER, pod.podIf, MARK, '4'], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  p.stdout.on('data', (d) => (out += d));
  p.stderr.on('data', (d) => (err += d));
  const done = exitedAndRead(p).then((x) => x.code); // the sniffer's lines read to the end (python flushes them at its exit)
  try {
    assert.ok(await until(async () => out.includes('ready'), 10_000), `sniffer in ${pod.ns} did not start: ${err}`);
    send();
    const code = await done;
    assert.is(code, 0, `sniffer: ${err}`);
  } finally {
    if (p.exitCode === null && p.pid !== undefined) p.kill('SIGKILL');
  }
  const lines = out.trim().split('\n');
  return lines.length > 1 ? lines[lines.length - 1].split(' ').filter((x) => x !== '') : [];
}

function sendVxlan(from: LabNode, to: LabNode, pod: LabPod, sources: string[]): void {
  run('ip', ['netns', 'exec', from.ns, 'python3', '-c', VXLAN_SOURCES_SENDER, to.ip, deriveVtepMac(to.name), pod.ip, MARK, ...sources]);
}

test.before(async () => {
  if (!isRoot()) throw new Error('these tests need root (network namespaces)');
  lab = guard(new Lab(SPEC));
  lab.build();
  const n1 = lab.node('node1');
  const n2 = lab.node('node2');
  // strict reverse-path filtering for the tunnel devices made from now on (node2's vxlan.calico)
  // and for what podway reads on node1; `all` left as it is
  for (const n of [n1, n2]) run('ip', ['netns', 'exec', n.ns, 'sysctl', '-qw', 'net.ipv4.conf.default.rp_filter=1']);
  configureKernelNode(lab, n2, 'vxlan');
  const rp = run('ip', ['netns', 'exec', n2.ns, 'cat', '/proc/sys/net/ipv4/conf/vxlan.calico/rp_filter']).trim();
  assert.is(rp, '1', 'node2\'s vxlan.calico took the default rp_filter');
  await lab.startPodway('node1', undefined, ['--workers', '1']);
  const up = await until(async () => (await kindOf(n1, n2.block)) === 'vxlan', 10_000);
  assert.ok(up, `node1 has no vxlan route to ${n2.block}`);
});

test.after(async () => {
  if (!lab) return;
  if (!ok) console.log(logTail(lab));
  await teardown(lab);
});

test('the kernel node (node2) delivers only the legitimate source: martian sources and one with no route back through vxlan.calico are refused', async () => {
  const n1 = lab!.node('node1');
  const n2 = lab!.node('node2');
  const web1 = n1.pods[0];
  const web2 = n2.pods[0];
  const seen = await arrivals(web2, () => sendVxlan(n1, n2, web2, [web1.ip, ...MARTIANS, OFF_PATH]));
  assert.equal([...new Set(seen)], [web1.ip], `reached web-2 through node2's kernel: ${seen.join(' ')}`);
});

test('podway (node1) delivers the same one and counts the others martian_src and reverse_path', async () => {
  const n1 = lab!.node('node1');
  const n2 = lab!.node('node2');
  const web1 = n1.pods[0];
  const web2 = n2.pods[0];
  const before = (await controlRequest(n1.control, { cmd: 'counters' })) as { reasons: Record<string, number> };
  const seen = await arrivals(web1, () => sendVxlan(n2, n1, web1, [web2.ip, ...MARTIANS, OFF_PATH]));
  assert.equal([...new Set(seen)], [web2.ip], `reached web-1 through podway: ${seen.join(' ')}`);
  const after = (await controlRequest(n1.control, { cmd: 'counters' })) as { reasons: Record<string, number> };
  const moved = (k: string) => (after.reasons[k] ?? 0) - (before.reasons[k] ?? 0);
  assert.is(moved('martian_src'), MARTIANS.length * 2, JSON.stringify(after.reasons));
  assert.is(moved('reverse_path'), 2, JSON.stringify(after.reasons));
  ok = true;
});

test.run();
