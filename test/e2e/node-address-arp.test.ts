/**
 * The node's IPv4 underlay address removed while podway runs and keeps using it (root, network
 * namespaces; docs/failures.md, "The node's address changed"): a file: datastore, which podway
 * never writes, so node1's Node keeps the old address for good, and node1 is left with no IPv4
 * address at all. podway must answer ARP for that address on the underlay itself (the node's
 * kernel no longer does): node2 re-resolves node1 once its entry for it is stale (podway's
 * neighbour table re-asks every 30 s by default), and without an answer its VXLAN to node1 was
 * dropped for ~27 s of every 30 (an ARP request of node1's own taught node2 again for the rest).
 * node2's podway runs with `--neighbor-reachable 5000` (docs/networking.md: the product's own
 * setting, as e2e/neighbors runs), so its entry for node1 goes stale and is re-asked every ~5 s
 * (node1's keeps the default: its own requests, which would teach node2 too, stay 30 s apart): a ping
 * between the two nodes' pods for 20 s spans three or more re-resolutions (it was 45 s at the
 * default 30 s, for one) and must lose next to nothing.
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
/** How long an answer keeps an underlay neighbour REACHABLE before it is re-asked (default 30 s). */
const REACHABLE_MS = 5000;
const PODWAY_ARGS = ['--neighbor-reachable', String(REACHABLE_MS)];
/** The ping's length: past three re-resolutions (REACHABLE_MS each, plus the probes' seconds). */
const SECONDS = 20;
/** 100 echoes 0.2 s apart: 20 s. */
const COUNT = SECONDS * 5;
/** The run's last seconds, past the first re-resolutions, must have their replies too. */
const LAST_SECONDS = 5;

let lab: Lab | null = null;
let ok = false;

test.before(async () => {
  if (!isRoot()) throw new Error('e2e tests need root (network namespaces)');
  lab = guard(new Lab(SPEC, { podOffloads: false }));
  lab.build();
  lab.setMode('vxlan');
  await lab.startPodway('node1');
  await lab.startPodway('node2', undefined, PODWAY_ARGS);
});

test.after(async () => {
  if (!lab) return;
  if (!ok) console.log(logTail(lab, 30));
  await teardown(lab);
});

test(`node1 left with no IPv4 address: podway answers ARP for the address it still uses, pod traffic keeps flowing for ${SECONDS} s (neighbours re-asked every ${REACHABLE_MS / 1000} s)`, async () => {
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
  // SECONDS of echoes (bounded: the ping's own -w, and the process's timeout)
  const r = spawnSync('ip', ['netns', 'exec', web1.ns, 'ping', '-n', '-c', String(COUNT), '-i', '0.2', '-W', '1', '-w', String(SECONDS + 15), web2.ip], { encoding: 'utf8', timeout: (SECONDS + 30) * 1000 });
  const received = (r.stdout.match(/bytes from/g) ?? []).length;
  const seqs = [...r.stdout.matchAll(/icmp_seq=(\d+)/g)].map((m) => Number(m[1]));
  // node2 asked for node1's address (its entry went stale) and node1's podway answered
  const replied = delta(before, await reasons(n1), 'arp_replied');
  if (process.env.E2E_VERBOSE) console.log(`  ${received}/${COUNT} replies over ${SECONDS} s with no IPv4 address on node1; node1's podway answered ${replied} ARP request(s); last seq ${Math.max(0, ...seqs)}`);
  // Lost most of every re-resolution period before: allow what a loaded machine loses itself.
  assert.ok(received >= COUNT * 0.9, `${received}/${COUNT} echoes answered over ${SECONDS} s with node1's address gone:\n${r.stdout.split('\n').slice(-4).join('\n')}`);
  assert.ok(seqs.filter((s) => s > (COUNT * (SECONDS - LAST_SECONDS)) / SECONDS).length >= (COUNT * LAST_SECONDS) / SECONDS * 0.9, `replies in the last ${LAST_SECONDS} s, past the first re-resolutions`);
  assert.ok(replied >= 1, `node1's podway answered ARP for ${n1.ip} on the underlay (arp_replied ${replied})`);
  ok = true;
});

test.run();
