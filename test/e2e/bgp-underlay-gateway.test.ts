/**
 * The underlay next hop of tunnel traffic follows the kernel's routes to the other node (root,
 * network namespaces, BIRD 2 as the ToR, killed by PID). Two nodes on one subnet, VXLAN pool, both
 * peered with the ToR; pod web-1 on node1 pings web-2 on node2 all along, and tcpdump on node1's
 * underlay (eth0) reads the destination MAC of each VXLAN frame to node2:
 * - the ToR announces node2's address as a /32 (next hop the ToR): podway's learned route goes
 *   into node1's kernel, and the tunnel frames go to the ToR's MAC;
 * - the ToR withdraws it: node2 is on-link again, and the frames go to node2's own MAC.
 * They used to lag one change behind (the kernel routes were read right after the model was
 * applied, before the host programmer had written the learned route, and never again): node2's
 * MAC while the /32 was in, then the ToR's after the withdrawal, for good. The same for a route
 * written by hand (`ip route add NODE2/32 via TOR`, then deleted): the kernel resolves a next hop
 * per packet, podway follows its route changes (`ip monitor`).
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawn } from 'node:child_process';
import { run, within } from '../../src/lab/lab';
import { until, track, backgroundPing } from './e2e-kit';
import { inBgpLab, nodesOnOneSubnet, writeResources, bgpPeerYaml, startBgpPodways, kernelRoutesVia, TOR_IP, TOR_AS } from './bgp-kit';

function macOf(ns: string, ifname: string): string {
  return (JSON.parse(run('ip', ['-n', ns, '-j', 'link', 'show', 'dev', ifname])) as { address: string }[])[0]!.address;
}

test('tunnel frames to node2 go to the ToR while its /32 via the ToR is in node1\'s kernel, to node2 once it is gone (BGP, then by hand)', () => inBgpLab(nodesOnOneSubnet(2), async (lab, birds) => {
  const n1 = lab.node('node1');
  const n2 = lab.node('node2');
  writeResources(lab, [lab.resources('vxlan'), bgpPeerYaml('tor', TOR_IP, TOR_AS)]);
  const tor = await birds.tor([`${n2.ip}/32`]);
  tor.birdc('disable', 'static1');
  await startBgpPodways(lab);
  const torMac = macOf(lab.fabric, 'br0');
  const node2Mac = macOf(n2.ns, 'eth0');
  assert.is.not(torMac, node2Mac);

  const frames: string[] = [];
  const dump = track(spawn('ip', ['netns', 'exec', n1.ns, 'tcpdump', '-e', '-n', '-l', '-i', 'eth0', '-c', '100000', `udp port 4789 and dst host ${n2.ip}`], { stdio: ['ignore', 'pipe', 'pipe'] }));
  let err = '';
  let partial = '';
  dump.stdout!.setEncoding('utf8');
  dump.stdout!.on('data', (d: string) => {
    const lines = (partial + d).split('\n');
    partial = lines.pop()!;
    for (const l of lines) {
      const m = /^\S+ ([0-9a-f:]{17}) > ([0-9a-f:]{17}),/.exec(l);
      if (m) frames.push(m[2]!);
    }
  });
  dump.stderr!.setEncoding('utf8');
  dump.stderr!.on('data', (d: string) => (err += d));
  const dumped = new Promise<void>((r) => dump.once('exit', () => r()));
  const ping = backgroundPing(lab, 'web-1', lab.pod('web-2').ip, 1500, 0.1);
  try {
    assert.ok(await until(() => /listening on/.test(err), 20_000, 100), `tcpdump listening: ${err}`);
    /** The frames captured from now on all go to `mac` (at least 5 of them), within the wait. */
    const framesGoTo = async (mac: string, why: string) => {
      let from = frames.length;
      const ok = await until(() => {
        const seen = frames.slice(from);
        // a frame to another MAC: what went before the change; wait for the ones after it
        if (seen.some((m) => m !== mac)) from = frames.length;
        return frames.length - from >= 5;
      }, 30_000, 200);
      assert.ok(ok, `${why}: the tunnel frames to node2 go to ${mac}; the last ones went to ${frames.slice(-5).join(', ')}`);
    };
    await framesGoTo(node2Mac, 'on-link at the start');

    // BGP: the ToR announces node2's /32 with itself as next hop, then withdraws it.
    tor.birdc('enable', 'static1');
    assert.ok(await until(() => kernelRoutesVia(n1.ns, n2.ip, TOR_IP), 30_000, 200), `node1's kernel routes ${n2.ip} via the ToR: ${run('ip', ['-n', n1.ns, 'route'])}`);
    await framesGoTo(torMac, `${n2.ip}/32 via the ToR learned`);
    tor.birdc('disable', 'static1');
    assert.ok(await until(() => !kernelRoutesVia(n1.ns, n2.ip, TOR_IP), 30_000, 200), `the /32 withdrawn from node1's kernel: ${run('ip', ['-n', n1.ns, 'route'])}`);
    await framesGoTo(node2Mac, `${n2.ip}/32 withdrawn`);

    // By hand, no BGP involved: the kernel's route is followed all the same.
    run('ip', ['-n', n1.ns, 'route', 'add', `${n2.ip}/32`, 'via', TOR_IP, 'dev', 'eth0']);
    await framesGoTo(torMac, `${n2.ip}/32 via the ToR added by hand`);
    run('ip', ['-n', n1.ns, 'route', 'del', `${n2.ip}/32`, 'via', TOR_IP, 'dev', 'eth0']);
    await framesGoTo(node2Mac, `${n2.ip}/32 deleted by hand`);
  } finally {
    if (ping.proc.exitCode === null && ping.proc.pid !== undefined) process.kill(ping.proc.pid, 'SIGINT');
    if (dump.exitCode === null && dump.signalCode === null && dump.pid !== undefined) process.kill(dump.pid, 'SIGINT');
    await within(dumped, 5000, null);
    await ping.done;
  }
}));

test.run();
