/**
 * The node's IPv4 underlay address removed while podway runs and keeps using it (root, network
 * namespaces; docs/failures.md, "The node's address changed"): a file: datastore, which podway
 * never writes, so node1's Node keeps the old address for good, and node1 is left with no IPv4
 * address at all. podway must answer ARP for that address on the underlay itself (the node's
 * kernel no longer does): node2 re-resolves node1 once its entry for it is stale (podway's
 * neighbour table re-asks every 30 s), and without an answer its VXLAN to node1 was dropped for
 * ~27 s of every 30 (an ARP request of node1's own taught node2 again for the rest). A ping between
 * the two nodes' pods for 45 s (well past one 30 s re-resolution) must lose next to nothing.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawnSync } from 'node:child_process';
import { Lab, LabNodeSpec } from '../../src/lab/lab';
import { guard, teardown, isRoot, logTail, until, nsExec } from './e2e-kit';
import { reasons, delta } from './tools';

const SPEC: LabNodeSpec[] = [
  { name: 'node1', subnet: 'a', pods: [{ name: 'web-1', type: 'veth' }] },
  { name: 'node2', subnet: 'a', pods: [{ name: 'web-2', type: 'veth' }] },
];
/** 225 echoes 0.2 s apart: 45 s. */
const COUNT = 225;

let lab: Lab | null = null;
let ok = false;

test.before(async () => {
  if (!isRoot()) throw new Error('e2e tests need root (network namespaces)');
  lab = guard(new Lab(SPEC, { podOffloads: false }));
  lab.build();
  lab.setMode('vxlan');
  await lab.startPodway('node1');
  await lab.startPodway('node2');
});

test.after(async () => {
  if (!lab) return;
  if (!ok) console.log(logTail(lab, 30));
  await teardown(lab);
});

test('node1 left with no IPv4 address: podway answers ARP for the address it still uses, pod traffic keeps flowing for 45 s', async () => {
  const n1 = lab!.node('node1');
  const web1 = lab!.pod('web-1');
  const web2 = lab!.pod('web-2');
  const pingOk = () => lab!.ping('web-1', web2.ip, 1, 56, ['-W', '1']).received === 1;
  assert.ok(await until(pingOk, 10_000, 100), 'pods talk before the change');
  const before = await reasons(n1);
  // node1 has no IPv4 address left on its underlay (a second one added, then the first removed:
  // without promote_secondaries the kernel removes the second with it, as the review saw)
  nsExec(n1.ns, ['sysctl', '-qw', 'net.ipv4.conf.eth0.promote_secondaries=0']);
  nsExec(n1.ns, ['ip', 'addr', 'add', '10.99.0.111/24', 'dev', 'eth0']);
  nsExec(n1.ns, ['ip', 'addr', 'del', `${n1.ip}/24`, 'dev', 'eth0']);
  assert.not.match(nsExec(n1.ns, ['ip', '-4', 'addr', 'show', 'dev', 'eth0']), /inet /, 'node1 has no IPv4 address');
  // the engine looks for its address every 5 s
  assert.ok(await until(() => n1.log.some((l) => new RegExp(`node address ${n1.ip.replace(/\./g, '\\.')} is no longer on this node`).test(l)), 8000, 100), `podway warns: ${n1.log.slice(-5).join(' | ')}`);
  // 45 s of echoes (bounded: the ping's own -w, and the process's timeout)
  const r = spawnSync('ip', ['netns', 'exec', web1.ns, 'ping', '-n', '-c', String(COUNT), '-i', '0.2', '-W', '1', '-w', '60', web2.ip], { encoding: 'utf8', timeout: 75_000 });
  const received = (r.stdout.match(/bytes from/g) ?? []).length;
  const seqs = [...r.stdout.matchAll(/icmp_seq=(\d+)/g)].map((m) => Number(m[1]));
  // node2 asked for node1's address (its entry went stale) and node1's podway answered
  const replied = delta(before, await reasons(n1), 'arp_replied');
  if (process.env.E2E_VERBOSE) console.log(`  ${received}/${COUNT} replies over 45 s with no IPv4 address on node1; node1's podway answered ${replied} ARP request(s); last seq ${Math.max(0, ...seqs)}`);
  // Lost ~27 of every 30 s before (about 10% received): allow what a loaded machine loses itself.
  assert.ok(received >= COUNT * 0.9, `${received}/${COUNT} echoes answered over 45 s with node1's address gone:\n${r.stdout.split('\n').slice(-4).join('\n')}`);
  assert.ok(seqs.filter((s) => s > (COUNT * 35) / 45).length >= (COUNT * 10) / 45 * 0.9, 'replies in the last 10 s, past the first re-resolution');
  assert.ok(replied >= 1, `node1's podway answered ARP for ${n1.ip} on the underlay (arp_replied ${replied})`);
  ok = true;
});

test.run();
