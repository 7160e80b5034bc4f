/**
 * A pod whose MAC podway does not know and that never speaks first (root, network namespaces): a
 * TAP pod whose WorkloadEndpoint states no MAC and whose namespace has IPv6 off (no DAD or router
 * solicitation at link-up, so it sends nothing until asked). Before, every packet for it was
 * dropped (`pod_mac_unknown`) and it was unreachable; now podway holds the packet, asks the pod's
 * kernel (an ARP request from 169.254.1.1), and the pod's answer sends it: the first ping from a
 * veth pod is answered. With one forwarding thread, then again after a restart with two (the
 * thread that holds the request may not be the one reading the TAP: the MAC is shared). Then a
 * silent veth pod (quiet-1, no MAC in its endpoint) pinged over a flow the second thread handles:
 * that thread asks, the pod's ARP answer reaches the first thread (every non-IP frame of a veth
 * goes there, steer.ts), which shares the MAC, so the held ping leaves (before, it timed out).
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { writeFileSync, renameSync } from 'node:fs';
import { Lab } from '../../src/lab/lab';
import { controlRequest } from '../../src/dataplane/control-server';
import { steerIndex } from '../../src/dataplane/steer';
import { parseIpv4 } from '../../src/packet';
import { guard, teardown, isRoot, routes, logTail, until, nsExec } from './e2e-kit';

const SPEC = [{
  name: 'node1', subnet: 'a' as const,
  pods: [{ name: 'web-1', type: 'veth' as const }, { name: 'tap-1', type: 'tap' as const }, { name: 'quiet-1', type: 'veth' as const }, { name: 'web-x', type: 'veth' as const }],
}];
/** Pods whose endpoints state no MAC and that send nothing until asked. */
const SILENT = ['tap-1', 'quiet-1'];

let lab: Lab | null = null;
let ok = false;

async function counters(): Promise<Record<string, number>> {
  return ((await controlRequest(lab!.node('node1').control, { cmd: 'counters' }, 5000)) as { reasons: Record<string, number> }).reasons;
}

/** The resource file with the silent pods' endpoints stating no MAC (written whole, by rename). */
function withoutSilentMacs(): void {
  let docs = lab!.resources(lab!.mode).split('\n---\n');
  for (const name of SILENT) {
    const pod = lab!.pod(name);
    const mine = new RegExp(`^\\s*pod: ${name}$`, 'm');
    docs = docs.map((d) => (mine.test(d) ? d.replace(`\n  mac: "${pod.mac}"`, '') : d));
    assert.ok(docs.some((d) => mine.test(d) && !/mac:/.test(d)), `${name}'s endpoint without a MAC`);
  }
  writeFileSync(lab!.file + '.tmp', docs.join('\n---\n'));
  renameSync(lab!.file + '.tmp', lab!.file);
}

/** Start podway on node1 and ping tap-1 once from web-1: answered, through the hold. */
async function firstPingReachesSilentTap(args: string[]): Promise<void> {
  const n1 = lab!.node('node1');
  const tap = lab!.pod('tap-1');
  await lab!.startPodway('node1', undefined, args);
  assert.ok(await until(async () => (await routes(n1)).some((r) => r.cidr === `${tap.ip}/32` && r.kind === 'local'), 10_000), 'tap-1 routed');
  const c0 = await counters();
  assert.is(c0.arp_learned ?? 0, 0, 'tap-1 has said nothing yet');
  const p = lab!.ping('web-1', tap.ip, 1, 56, ['-W', '5']);
  const c1 = await counters();
  assert.is(p.received, 1, `the first ping to the silent tap pod is answered (${args.join(' ')}); counters ${JSON.stringify(c1)}`);
  assert.ok((c1.neighbor_queued ?? 0) >= 1 && (c1.neighbor_queue_sent ?? 0) >= 1, `held for its MAC, then sent: ${JSON.stringify(c1)}`);
  assert.ok((c1.arp_learned ?? 0) >= 1, 'its ARP answer taught the MAC');
  assert.is(c1.pod_mac_unknown ?? 0, 0, 'nothing dropped for want of the MAC');
}

test.before(async () => {
  if (!isRoot()) throw new Error('pod MAC end-to-end tests need root (network namespaces)');
  lab = guard(new Lab(SPEC));
  lab.build();
  // IPv6 off in the silent pods: nothing is sent at link-up (DAD, router solicitation, MLD)
  for (const name of SILENT) {
    const pod = lab.pod(name);
    for (const k of ['all', 'default', pod.podIf]) nsExec(pod.ns, ['sysctl', '-q', '-w', `net.ipv6.conf.${k}.disable_ipv6=1`]);
  }
  withoutSilentMacs();
});

test.after(async () => {
  if (!lab) return;
  if (!ok) console.log(logTail(lab));
  await teardown(lab);
});

test('one forwarding thread: the first ping to a tap pod that never spoke, with no MAC in its endpoint, is answered', async () => {
  await firstPingReachesSilentTap(['--workers', '1']);
});

test('two forwarding threads, after a restart (the MAC forgotten, the pod silent since): answered too', async () => {
  await lab!.stopPodway('node1');
  // the pod's own ARP entry for the gateway would let it answer without a word first; it answers
  // a request either way, so the pod stays silent until asked
  await firstPingReachesSilentTap(['--workers', '2']);
});

test('two forwarding threads: a silent veth pod pinged over a flow of the second thread is answered (its MAC shared by the first)', async () => {
  const quiet = lab!.pod('quiet-1');
  const from = lab!.pod('web-x');
  // the ping's flow (ICMP: the two addresses) as the steering filter hashes it: the second thread's
  const f = new Uint8Array(14 + 28);
  f[12] = 0x08; f[14] = 0x45; f[14 + 9] = 1;
  for (const [at, ip] of [[26, from.ip], [30, quiet.ip]] as const) { const a = parseIpv4(ip); f.set([a >>> 24, (a >>> 16) & 255, (a >>> 8) & 255, a & 255], at); }
  assert.is(steerIndex(f, 2), 1, `${from.ip} -> ${quiet.ip} is the second thread's flow (the lab's addresses changed? pick another pair)`);
  const c0 = await counters();
  const p = lab!.ping('web-x', quiet.ip, 1, 56, ['-W', '5']);
  const c1 = await counters();
  assert.is(p.received, 1, `the first ping to the silent veth pod is answered; counters ${JSON.stringify(c1)}`);
  assert.ok((c1.neighbor_queue_sent ?? 0) > (c0.neighbor_queue_sent ?? 0), `held for its MAC, then sent: ${JSON.stringify(c1)}`);
  assert.is((c1.neighbor_queue_timeout ?? 0) - (c0.neighbor_queue_timeout ?? 0), 0, 'nothing held timed out');
  assert.is(c1.pod_mac_unknown ?? 0, 0, 'nothing dropped for want of the MAC');
  ok = true;
});

test.run();
