/**
 * IPv4 fragmentation of pods' packets without DF bigger than the path MTU (root, network
 * namespaces; two podway nodes on one subnet, then a podway node and a kernel Calico-style VXLAN
 * node).
 *
 * web-1's veth (both ends) has MTU 1800 while the routes to node2 take 1450 (VXLAN), 1480 (IPIP) or
 * 1500 (unencapsulated, the underlay's), as a pod whose MTU is above its path's: `ping -M dont -s
 * 3000` sends the 3,028-byte echo as web-1's kernel fragments it for 1800 (1796 + 1252), DF clear;
 * podway cuts each fragment again for the route (before: dropped too_big_no_df, the ping lost),
 * web-2's kernel reassembles them all and answers with the whole datagram. Counted `fragmented`
 * on node1. The kernel node: its own forwarding fragments the same way for its vxlan.calico
 * (1450) and podway delivers those inner fragments to web-1; and podway's fragments reach the
 * kernel node's pod, which reassembles them.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Lab, Mode } from '../../src/lab/lab';
import { configureKernelNode } from '../../src/lab/kernel';
import { controlRequest } from '../../src/dataplane/control-server';
import { guard, teardown, isRoot, until, nsExec, logTail } from './e2e-kit';

let lab: Lab | null = null;
let ok = false;

async function reasons(l: Lab, node: string): Promise<Record<string, number>> {
  return ((await controlRequest(l.node(node).control, { cmd: 'counters' }, 5000)) as { reasons: Record<string, number> }).reasons;
}

/** Both ends of a pod's veth to `mtu` (the pod's side is where its kernel fragments). */
function podMtu(l: Lab, pod: string, mtu: number): void {
  const p = l.pod(pod);
  nsExec(l.node(p.node).ns, ['ip', 'link', 'set', p.ifname, 'mtu', String(mtu)]);
  nsExec(p.ns, ['ip', 'link', 'set', p.podIf, 'mtu', String(mtu)]);
}

test.before(async () => {
  if (!isRoot()) throw new Error('fragmentation end-to-end tests need root (network namespaces)');
});

test.after(async () => {
  if (!lab) return;
  if (!ok) console.log(logTail(lab));
  await teardown(lab);
  lab = null;
});

test('podway to podway: a 3,028-byte echo without DF from a pod with MTU 1800 crosses VXLAN (1450), IPIP (1480) and unencapsulated (1500), fragmented by node1 and reassembled by web-2; with DF it is refused', async () => {
  ok = false;
  lab = guard(new Lab([
    { name: 'node1', subnet: 'a', pods: [{ name: 'web-1', type: 'veth' }] },
    { name: 'node2', subnet: 'a', pods: [{ name: 'web-2', type: 'veth' }] },
  ]));
  const l = lab;
  try {
    l.build();
    await l.startPodway('node1', undefined, ['--workers', '1']);
    await l.startPodway('node2', undefined, ['--workers', '1']);
    const web2 = l.pod('web-2').ip;
    for (const mode of ['vxlan', 'ipip', 'direct'] as Mode[]) {
      l.setMode(mode);
      await l.waitApplied((routes, n) => l.nodes.every((m) => m === n || routes.some((r) => r.cidr === m.block && r.kind === mode)), 20_000);
      podMtu(l, 'web-1', 1800); // (setMode gave the pods the mode's MTU)
      assert.ok(await until(() => l.ping('web-1', web2, 1, 56, ['-W', '2']).received === 1, 20_000, 200), `${mode}: web-1 reaches web-2`);
      const before = await reasons(l, 'node1');
      const r = l.ping('web-1', web2, 5, 3000, ['-M', 'dont', '-W', '3']);
      const after = await reasons(l, 'node1');
      assert.is(r.received, 5, `${mode}: every 3,028-byte echo answered whole: ${JSON.stringify(r)} ${JSON.stringify(after)}`);
      // each echo: two fragments from web-1 (1800 + 1248), the first cut again by node1
      assert.ok((after.fragmented ?? 0) - (before.fragmented ?? 0) >= 5, `${mode}: node1 counted fragmented: ${JSON.stringify(after)}`);
      assert.ok((after.fragments_out ?? 0) - (before.fragments_out ?? 0) >= 10, `${mode}: and its fragments`);
      assert.is((after.too_big_no_df ?? 0) - (before.too_big_no_df ?? 0), 0, `${mode}: nothing dropped too_big_no_df`);
    }
    // with DF: answered fragmentation needed, not fragmented (last: web-1's kernel keeps the path
    // MTU it learns, and even -M dont then sends fragments that fit)
    const before = await reasons(l, 'node1');
    const d = l.ping('web-1', web2, 1, 1772, ['-M', 'do', '-W', '2']);
    assert.is(d.received, 0, `a 1,800-byte DF echo does not pass the 1500-byte route`);
    const after = await reasons(l, 'node1');
    assert.is((after.frag_needed ?? 0) - (before.frag_needed ?? 0), 1, JSON.stringify(after));
    assert.is(after.fragmented, before.fragmented);
    ok = true;
  } finally {
    // (this test's lab, whatever happened: the next test makes its own)
    if (!ok) console.log(logTail(l));
    lab = null;
    await teardown(l);
  }
});

test('podway and a kernel Calico VXLAN node: 3,028-byte echoes without DF both ways; the kernel\'s inner fragments (cut for its vxlan.calico) reach web-1 through podway, and podway\'s reach the kernel node\'s pod', async () => {
  ok = false;
  lab = guard(new Lab([
    { name: 'node1', subnet: 'a', pods: [{ name: 'web-1', type: 'veth' }] },
    { name: 'node2', subnet: 'a', pods: [{ name: 'web-2', type: 'veth' }] },
  ]));
  const l = lab;
  try {
    l.build();
    configureKernelNode(l, l.node('node2'), 'vxlan');
    await l.startPodway('node1', undefined, ['--workers', '1']);
    await l.waitApplied((routes) => routes.some((r) => r.cidr === l.node('node2').block && r.kind === 'vxlan'), 20_000);
    podMtu(l, 'web-1', 1800);
    podMtu(l, 'web-2', 1500);
    const web1 = l.pod('web-1').ip;
    const web2 = l.pod('web-2').ip;
    assert.ok(await until(() => l.ping('web-1', web2, 1, 56, ['-W', '2']).received === 1, 20_000, 200), 'web-1 reaches web-2');
    const before = await reasons(l, 'node1');
    const out = l.ping('web-1', web2, 5, 3000, ['-M', 'dont', '-W', '3']);
    assert.is(out.received, 5, `podway -> kernel node: ${JSON.stringify(out)}`);
    const mid = await reasons(l, 'node1');
    assert.ok((mid.fragmented ?? 0) - (before.fragmented ?? 0) >= 5, `node1 fragmented web-1's: ${JSON.stringify(mid)}`);
    const back = l.ping('web-2', web1, 5, 3000, ['-M', 'dont', '-W', '3']);
    assert.is(back.received, 5, `kernel node -> podway: ${JSON.stringify(back)}`);
    const after = await reasons(l, 'node1');
    assert.is((after.too_big_no_df ?? 0) - (before.too_big_no_df ?? 0), 0, JSON.stringify(after));
    ok = true;
  } finally {
    if (!ok) console.log(logTail(l));
    lab = null;
    await teardown(l);
  }
});

test.run();
