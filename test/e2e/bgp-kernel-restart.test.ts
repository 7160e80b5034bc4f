/**
 * podway's learned kernel routes across a restart of podway (root, network namespaces, BIRD 2
 * killed by PID). A BIRD ToR announces OUTSIDE_NET to node1 (`podway run --bgp`); a second BIRD,
 * on node2 (no podway there) in the node-to-node mesh, announces another outside prefix. podway puts both in node1's kernel (proto bird, metric 32).
 *
 * podway stops (SIGTERM: a graceful restart) and starts again while node2's session is held
 * down at its BIRD (a slower peer). The new run adopts the routes the earlier one left: both must stay
 * in the kernel the whole time, exactly once each, also after the first peer's prefix is learned
 * again (the hold is per route: the slower peer's prefix is kept until it comes back, at most
 * 120 s). The second session comes back and brings its prefix; a third prefix, withdrawn while
 * podway was down, is held until then and goes once both peers have sent their whole tables
 * (End-of-RIB), not 120 s later. Then each prefix withdrawn at BIRD leaves the kernel (the adopted
 * routes are podway's own, not left behind).
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { run } from '../../src/lab/lab';
import { until } from './e2e-kit';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
import { inBgpLab, nodesOnOneSubnet, writeResources, bgpPeerYaml, routesVia, peerState, peersNow, routesOf, TOR_IP, TOR_AS, OUTSIDE_NET } from './bgp-kit';

/** The prefix the slower peer announces, and one it withdraws while podway is down. */
const SLOW_NET = '192.0.2.0/24';
const GONE_NET = '203.0.113.0/24';

/** The slower peer: BIRD on node2 (no podway there), in the node-to-node mesh with node1 (AS
 * 64512, as calico-node's BIRD), announcing SLOW_NET with itself as next hop. */
function slowPeerConf(self: string, peer: string): string {
  return `router id ${self};
protocol device { scan time 2; }
protocol static static2 { ipv4; route ${SLOW_NET} unreachable; }
protocol static static3 { ipv4; route ${GONE_NET} unreachable; }
protocol bgp mesh {
  local ${self} as 64512;
  neighbor ${peer} as 64512;
  source address ${self};
  connect retry time 2;
  error wait time 1, 5;
  graceful restart;
  ipv4 { import all; next hop self; export where proto = "static2" || proto = "static3"; };
}
`;
}

test('restart with --bgp: learned kernel routes are adopted and kept (per route, a slow peer\'s too), never duplicated, and removed on withdrawal', () => inBgpLab(nodesOnOneSubnet(2), async (lab, birds) => {
  const [n1, n2] = [lab.node('node1'), lab.node('node2')];
  writeResources(lab, [lab.resources('direct'), bgpPeerYaml('tor', TOR_IP, TOR_AS)]);
  const tor = await birds.tor();
  const slow = await birds.start(n2.ns, 'slow', slowPeerConf(n2.ip, n1.ip));
  const ours = { [OUTSIDE_NET]: `${OUTSIDE_NET} via ${TOR_IP} dev eth0 proto bird metric 32`, [SLOW_NET]: `${SLOW_NET} via ${n2.ip} dev eth0 proto bird metric 32` };
  /** node1's kernel routes for `cidr`, one per line ('' when none). */
  const kernel = (cidr: string) => run('ip', ['-n', n1.ns, 'route', 'show', 'table', 'main', cidr]).trim();
  const bothInKernel = () => kernel(OUTSIDE_NET) === ours[OUTSIDE_NET] && kernel(SLOW_NET) === ours[SLOW_NET];
  const gone = `${GONE_NET} via ${n2.ip} dev eth0 proto bird metric 32`;

  await lab.startPodway('node1', 20_000, ['--bgp']);
  if (!(await until(() => bothInKernel() && kernel(GONE_NET) === gone, 30_000, 200))) {
    assert.unreachable(`both learned routes in the kernel: ${kernel(OUTSIDE_NET)} | ${kernel(SLOW_NET)}\npodway: ${JSON.stringify(await peersNow(lab, 'node1'))}\nBIRD: ${slow.birdc('show', 'protocols', 'all', 'mesh')}`);
  }

  // From here until the slow peer is back, every look at the kernel must find both routes, once each.
  const wrong: string[] = [];
  let looks = 0;
  const watch = setInterval(() => {
    looks++;
    for (const cidr of [OUTSIDE_NET, SLOW_NET]) {
      const k = kernel(cidr);
      if (k !== ours[cidr as keyof typeof ours] && wrong.length < 10) wrong.push(`${cidr}: "${k}"`);
    }
  }, 100);
  try {
    // SIGTERM (SIGKILL after 5 s on a loaded host): either way the routes stay in the kernel.
    await lab.stopPodway('node1');
    // The slow peer: its session held down at BIRD until the restarted podway has its first
    // peer's routes again.
    assert.match(slow.birdc('disable', 'mesh'), /disabled/);
    // ... and GONE_NET withdrawn meanwhile: the new run cannot know until the slow peer is back.
    assert.match(slow.birdc('disable', 'static3'), /disabled/);
    await lab.startPodway('node1', 20_000, ['--bgp']);
    assert.ok(await until(() => n1.log.some((l) => l.includes('learned route(s) left by an earlier run')), 10_000, 100), 'the restarted podway adopted the earlier run\'s routes');
    assert.ok(await until(() => routesVia(lab, 'node1', OUTSIDE_NET, 'direct', TOR_IP), 30_000, 200), 'the first peer\'s prefix learned again');
    // A model with the first peer's route has been programmed: a hold ending on it would have
    // removed the slow peer's route by now (the host programmer runs within a turn or two).
    await sleep(2000);
    assert.equal(wrong, [], `the kernel's learned routes changed during the restart (${looks} looks)`);
    assert.is(kernel(GONE_NET), gone, 'held while a peer has not given its whole table');
    assert.match(slow.birdc('enable', 'mesh'), /enabled/);
    assert.ok(await until(async () => (await peerState(lab, 'node1', n2.ip)) === 'Established' && (await routesOf(lab, 'node1')).some((r) => r.cidr === SLOW_NET), 30_000, 200), 'the slow peer is back with its prefix');
    await sleep(500);
  } finally {
    clearInterval(watch);
  }
  assert.equal(wrong, [], `the kernel's learned routes changed during the restart (${looks} looks)`);
  assert.ok(looks > 0);
  // Both peers up with their End-of-RIB: nobody brings GONE_NET, it goes (long before the 120 s hold ends).
  assert.ok(await until(() => kernel(GONE_NET) === '', 30_000, 200), `the prefix withdrawn while podway was down: ${kernel(GONE_NET)}`);
  assert.ok(bothInKernel(), `${kernel(OUTSIDE_NET)} | ${kernel(SLOW_NET)}`);

  // Withdrawn at BIRD, each goes from the kernel (the adopted routes are podway's own).
  assert.match(slow.birdc('disable', 'static2'), /disabled/);
  assert.ok(await until(() => kernel(SLOW_NET) === '', 10_000, 100), `after the slow peer's withdrawal: ${kernel(SLOW_NET)}`);
  assert.is(kernel(OUTSIDE_NET), ours[OUTSIDE_NET]);
  assert.match(tor.birdc('disable', 'static1'), /disabled/);
  assert.ok(await until(() => kernel(OUTSIDE_NET) === '', 10_000, 100), `after the first peer's withdrawal: ${kernel(OUTSIDE_NET)}`);
}));

test.run();
