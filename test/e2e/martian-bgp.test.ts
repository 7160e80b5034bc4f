/**
 * A pod's packet for a martian destination over a learned direct route (root, network namespaces,
 * BIRD killed by PID): a BIRD ToR announces a default route (and OUTSIDE_NET) to a `podway run
 * --bgp` node whose pool has no natOutgoing, so podway sends unencapsulated egress straight to the
 * ToR's MAC. A pod's frames for 127.0.0.1 and 0.1.2.3 (written with AF_PACKET to the gateway MAC)
 * match that default route; the node never routes such a destination off the box, and neither
 * does podway: counted martian_dst, answered ICMP host unreachable, nothing for them on the node's
 * wire. A frame for the outside host over the same route still goes out (the route works).
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import * as path from 'node:path';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { until } from './e2e-kit';
import { PY_RAW, pyJson, eth, icmpEcho, startCapture, tsharkFields, reasons, delta } from './tools';
import { inBgpLab, nodesOnOneSubnet, writeResources, bgpPeerYaml, routesVia, routesOf, TOR_IP, TOR_AS, OUTSIDE_HOST } from './bgp-kit';

test('without natOutgoing, a learned default route does not carry a pod\'s packets for 127.0.0.1 or 0/8 to the ToR: martian_dst', () => inBgpLab(nodesOnOneSubnet(1), async (lab, birds) => {
  const n1 = lab.node('node1');
  const pod = lab.pod('web-1');
  writeResources(lab, [lab.resources('direct'), bgpPeerYaml('tor', TOR_IP, TOR_AS)]);
  await birds.tor(['0.0.0.0/0']);
  await lab.startPodway('node1', 20_000, ['--bgp']);
  // the default route, split around the node's own prefixes: 0.0.0.0/5 holds 0/8, 64.0.0.0/2 holds 127/8
  const learned = async () => (await routesVia(lab, 'node1', '0.0.0.0/5', 'direct', TOR_IP)) && routesVia(lab, 'node1', '64.0.0.0/2', 'direct', TOR_IP);
  assert.ok(await until(learned, 30_000, 250), `node1 routes 0/8 and 127/8 to the ToR (learned from 0.0.0.0/0): ${JSON.stringify((await routesOf(lab, 'node1')).filter((r) => !r.cidr.startsWith('10.')))}`);
  const dir = mkdtempSync(path.join(tmpdir(), 'podway-martian-bgp-'));
  try {
    const file = path.join(dir, 'eth0.pcap');
    // what podway sends on the node's wire for these destinations (at most 4: stops early if wrong)
    const cap = await startCapture(n1.ns, 'eth0', file, `icmp and (dst host 127.0.0.1 or dst net 0.0.0.0/8 or dst host ${OUTSIDE_HOST})`, 4);
    const c0 = await reasons(n1);
    const frame = (dst: string, seq: number) => eth('ee:ee:ee:ee:ee:ee', pod.mac!, 0x0800, icmpEcho(pod.ip, dst, 0x7e57, seq)).toString('hex');
    const sent = await pyJson<{ sent: number }>(pod.ns, PY_RAW, [JSON.stringify({ ifname: pod.podIf, frames: [frame('127.0.0.1', 1), frame('127.0.0.1', 2), frame('0.1.2.3', 3)] })], 10_000);
    assert.is(sent.sent, 3);
    assert.ok(await until(async () => delta(c0, await reasons(n1), 'martian_dst') >= 3, 10_000, 100), 'three counted martian_dst');
    // the route itself works: the outside host's echo goes out to the ToR
    await pyJson(pod.ns, PY_RAW, [JSON.stringify({ ifname: pod.podIf, frames: [frame(OUTSIDE_HOST, 4)] })], 10_000);
    assert.ok(await until(async () => (await tsharkFields(file, ['ip.dst'])).length >= 1, 10_000, 200), 'the echo to the outside host on the wire');
    await new Promise((r) => setTimeout(r, 500));
    cap.proc.kill('SIGINT');
    await cap.finish(5000);
    const c1 = await reasons(n1);
    assert.is(delta(c0, c1, 'martian_dst'), 3, JSON.stringify(c1));
    assert.equal((await tsharkFields(file, ['ip.dst'])).map((r) => r[0]![0]), [OUTSIDE_HOST], 'only the outside host\'s packet left the node');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}));

test.run();
