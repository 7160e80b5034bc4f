/**
 * The node's IPv6 underlay address removed while podway runs and keeps using it (root, network
 * namespaces; docs/failures.md, "The node's address changed"), as test/e2e/node-address-arp.test.ts
 * does for IPv4: a dual-stack lab on a file: datastore, which podway never writes, so node1's Node
 * keeps fd99::1 for good, and node1's kernel holds fd99::111 instead. node2's podway sends its
 * IPv6 VXLAN for node1's pods to fd99::1 and re-resolves it (NDP) once its entry is stale (podway's
 * neighbour table re-asks every 30 s by default): podway on node1 must answer that Neighbor
 * Solicitation on the underlay itself (the kernel no longer does), counted ndp_replied. node2's
 * podway runs with `--neighbor-reachable 5000` (docs/networking.md: the product's own setting, as
 * e2e/neighbors runs), so its entry for node1 goes stale and is re-asked every ~5 s (node1's keeps
 * the default: its own solicitations, which would teach node2 too, stay 30 s apart): a ping6
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
  lab = guard(new Lab(SPEC, { dualStack: true, podOffloads: false }));
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

test(`node1's IPv6 address removed: podway answers NDP for the address it still uses, pod IPv6 keeps flowing for ${SECONDS} s (neighbours re-asked every ${REACHABLE_MS / 1000} s)`, async () => {
  const n1 = lab!.node('node1');
  const web1 = lab!.pod('web-1');
  const web2 = lab!.pod('web-2');
  const ip6 = n1.ip6!;
  const pingOk = () => lab!.ping('web-1', web2.ip6!, 1, 56, ['-W', '1']).received === 1;
  assert.ok(await until(pingOk, 10_000, 100), 'pods talk over IPv6 before the change');
  const before = await reasons(n1);
  // another IPv6 address on node1's underlay, then the Node's one removed (the Node keeps it)
  nsExec(n1.ns, ['ip', '-6', 'addr', 'add', 'fd99::111/64', 'dev', 'eth0', 'nodad']);
  nsExec(n1.ns, ['ip', '-6', 'addr', 'del', `${ip6}/64`, 'dev', 'eth0']);
  assert.not.match(nsExec(n1.ns, ['ip', '-6', 'addr', 'show', 'dev', 'eth0']), new RegExp(`inet6 ${ip6}/`), `node1 no longer holds ${ip6}`);
  // the engine looks for its address every 5 s
  assert.ok(await until(() => n1.log.some((l) => l.includes(`node address ${ip6} is no longer on this node`)), 8000, 100), `podway warns: ${n1.log.slice(-5).join(' | ')}`);
  // SECONDS of echoes (bounded: the ping's own -w, and the process's timeout)
  const r = spawnSync('ip', ['netns', 'exec', web1.ns, 'ping', '-6', '-n', '-c', String(COUNT), '-i', '0.2', '-W', '1', '-w', String(SECONDS + 15), web2.ip6!], { encoding: 'utf8', timeout: (SECONDS + 30) * 1000 });
  const received = (r.stdout.match(/bytes from/g) ?? []).length;
  const seqs = [...r.stdout.matchAll(/icmp_seq=(\d+)/g)].map((m) => Number(m[1]));
  // node2 solicited node1's address (its entry went stale) and node1's podway answered
  const replied = delta(before, await reasons(n1), 'ndp_replied');
  if (process.env.E2E_VERBOSE) console.log(`  ${received}/${COUNT} replies over ${SECONDS} s with ${ip6} gone from node1; node1's podway answered ${replied} NDP solicitation(s); last seq ${Math.max(0, ...seqs)}`);
  assert.ok(received >= COUNT * 0.9, `${received}/${COUNT} echoes answered over ${SECONDS} s with node1's IPv6 address gone:\n${r.stdout.split('\n').slice(-4).join('\n')}`);
  assert.ok(seqs.filter((s) => s > (COUNT * (SECONDS - LAST_SECONDS)) / SECONDS).length >= (COUNT * LAST_SECONDS) / SECONDS * 0.9, `replies in the last ${LAST_SECONDS} s, past the first re-resolutions`);
  assert.ok(replied >= 1, `node1's podway answered NDP for ${ip6} on the underlay (ndp_replied ${replied})`);
  ok = true;
});

test.run();
