/**
 * A pod's Neighbor Solicitation for its IPv6 gateway fe80::ecee:eeff:feee:eeee gets one answer
 * (root, network namespaces), counted on the pod's own interface with tcpdump. A veth pod's is the
 * node kernel's (the gateway address is the host end's own link-local address, from its
 * ee:ee:ee:ee:ee:ee), flagged router as on a Calico node (podway sets the host end's IPv6
 * forwarding=1, as Felix does); a TAP pod's is podway's, the only one to see it. Before (review K,
 * LOW 4), podway answered a veth pod's too: two advertisements for each solicitation, one of them
 * (the kernel's) not flagged router.
 */
import * as path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Lab, GATEWAY6 } from '../../src/lab/lab';
import { guard, teardown, isRoot, logTail, until, nsExec, routes } from './e2e-kit';
import { startCapture, tsharkFields, reasons, delta, sleep } from './tools';

const SPEC = [{ name: 'node1', subnet: 'a' as const, pods: [{ name: 'web-1', type: 'veth' as const }, { name: 'tap-1', type: 'tap' as const }] }];

let lab: Lab | null = null;
let ok = false;

test.before(async () => {
  if (!isRoot()) throw new Error('the NDP test needs root (network namespaces)');
  lab = guard(new Lab(SPEC, { dualStack: true }));
  lab.build();
  await lab.startPodway('node1', undefined, ['--workers', '1']);
  const n1 = lab.node('node1');
  for (const p of ['web-1', 'tap-1']) {
    const ip6 = lab.pod(p).ip6;
    assert.ok(await until(async () => (await routes(n1)).some((r) => r.cidr === `${ip6}/128` && r.kind === 'local'), 10_000), `${p} routed`);
  }
});

test.after(async () => {
  if (!lab) return;
  if (!ok) console.log(logTail(lab));
  await teardown(lab);
});

const TRUE = /^(1|True|true)$/;

/**
 * `from` resolves its gateway afresh (its neighbour entries flushed) to ping `to`'s IPv6 address;
 * returns the solicitations for the gateway it sent and the advertisements of the gateway it got,
 * as its interface saw them, and the pings answered.
 */
async function resolveGateway(from: string, to: string): Promise<{ ns: number; na: string[][][]; received: number }> {
  const p = lab!.pod(from);
  nsExec(p.ns, ['ip', '-6', 'neigh', 'flush', 'dev', p.podIf]);
  const file = path.join(lab!.dir, `ndp-${from}.pcap`);
  const cap = await startCapture(p.ns, p.podIf, file, 'icmp6', 1000);
  let received = 0;
  try {
    received = lab!.ping(from, lab!.pod(to).ip6!, 2).received;
    await sleep(1000); // a second advertisement would be on its way by now
  } finally {
    await cap.finish(0);
  }
  const rows = await tsharkFields(file, ['icmpv6.type', 'icmpv6.nd.ns.target_address', 'icmpv6.nd.na.target_address', 'icmpv6.nd.na.flag.r', 'ipv6.src']);
  const ns = rows.filter((r) => r[0][0] === '135' && r[1][0] === GATEWAY6).length;
  const na = rows.filter((r) => r[0][0] === '136' && r[2][0] === GATEWAY6);
  return { ns, na, received };
}

test('a veth pod\'s solicitation for its gateway is answered once, by the node\'s kernel, flagged router', async () => {
  const r = await resolveGateway('web-1', 'tap-1');
  assert.is(r.received, 2, 'web-1 reaches tap-1 over IPv6');
  assert.ok(r.ns >= 1, 'web-1 solicited its gateway');
  assert.is(r.na.length, r.ns, `one advertisement per solicitation: ${JSON.stringify(r.na)}`);
  for (const na of r.na) {
    assert.ok(TRUE.test(na[3][0] ?? ''), `router flag set: ${JSON.stringify(na)}`);
    assert.is(na[4][0], GATEWAY6, 'from the gateway address');
  }
});

test('a TAP pod\'s is answered once, by podway, flagged router', async () => {
  const before = await reasons(lab!.node('node1'));
  const r = await resolveGateway('tap-1', 'web-1');
  const after = await reasons(lab!.node('node1'));
  assert.is(r.received, 2, 'tap-1 reaches web-1 over IPv6');
  assert.ok(r.ns >= 1, 'tap-1 solicited its gateway');
  assert.is(r.na.length, r.ns, `one advertisement per solicitation: ${JSON.stringify(r.na)}`);
  for (const na of r.na) assert.ok(TRUE.test(na[3][0] ?? ''), `router flag set: ${JSON.stringify(na)}`);
  assert.ok(delta(before, after, 'ndp_replied') >= r.ns, 'podway answered them');
  ok = true;
});

test.run();
