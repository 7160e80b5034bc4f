/**
 * podway and BIRD 2 together in Calico's BGP model (root, network namespaces, BIRD killed by PID):
 * - BIRD as a second member of the node-to-node mesh, configured as calico-node's BIRD would be
 *   for its node (static blackhole for its block, export of pool routes, kernel programming, the
 *   passive side of the pair): both learn each other's block, and pods behind the two nodes reach
 *   each other unencapsulated (the BIRD node forwards with its kernel, on the routes BIRD put there).
 *   Both nodes sit on one subnet (the fabric's bridge), so pod traffic between them is switched,
 *   not routed: podway withholds a learned block whose next hop is off its subnet. The fabric's
 *   router (BIRD, eBGP with both) learns both blocks and a host behind it reaches both pods.
 * - BIRD as the route reflector of three podway nodes (mesh off, a global BGPPeer to the RR):
 *   every node learns every block through it; the RR killed by PID, the nodes keep its routes
 *   (graceful restart) and pods keep reaching each other; back, it gives them the routes again.
 * - podway restarting under traffic: BIRD as ToR keeps the node's routes (graceful restart), an
 *   outside host's ping to a pod goes on, losing packets only while podway is down.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { writeFileSync, renameSync } from 'node:fs';
import { Lab, LabNodeSpec, run } from '../../src/lab/lab';
import { guard, teardown, isRoot, until, logTail, sleep } from './e2e-kit';
import { BirdProcess, startBird, routesVia, routesOf, peerState, peersOf, pingFrom, torConf, calicoNodeBird } from './bgp-kit';

const TOR_IP = '10.99.0.254';
const TOR_AS = 65000;
const OUTSIDE_NET = '198.51.100.0/24';
const OUTSIDE_HOST = '198.51.100.1';

test('podway and BIRD (as calico-node) in one node-to-node mesh: both learn each other\'s block; pods reach each other unencapsulated; a router learns both blocks', async () => {
  if (!isRoot()) throw new Error('BGP e2e tests need root (network namespaces)');
  const spec: LabNodeSpec[] = [
    { name: 'node1', subnet: 'a', pods: [{ name: 'web-1', type: 'veth' }] },
    { name: 'node2', subnet: 'a', pods: [{ name: 'web-2', type: 'veth' }] },
  ];
  const lab = guard(new Lab(spec));
  let bird: BirdProcess | null = null;
  let tor: BirdProcess | null = null;
  try {
    lab.build();
    lab.setMode('direct');
    const [n1, n2] = [lab.node('node1'), lab.node('node2')];
    // node2 is a kernel-forwarding Calico node: its pod's /32 on the cali interface, proxy ARP
    // for the pod's gateway, forwarding on (what Felix and the CNI plugin set up).
    const web2 = lab.pod('web-2');
    run('ip', ['netns', 'exec', n2.ns, 'sysctl', '-qw', 'net.ipv4.ip_forward=1']);
    run('ip', ['netns', 'exec', n2.ns, 'sysctl', '-qw', `net.ipv4.conf.${web2.ifname}.proxy_arp=1`]);
    run('ip', ['-n', n2.ns, 'route', 'add', `${web2.ip}/32`, 'dev', web2.ifname, 'scope', 'link']);
    // The fabric router (ToR, eBGP) peers with both nodes: with podway through a global BGPPeer,
    // with node2's BIRD through its Global_ protocol, as calico-node's BIRD would have it.
    writeFileSync(lab.file + '.bgp', lab.resources('direct') + `---
apiVersion: projectcalico.org/v3
kind: BGPPeer
metadata:
  name: tor
spec:
  peerIP: ${TOR_IP}
  asNumber: ${TOR_AS}
`);
    renameSync(lab.file + '.bgp', lab.file);
    run('ip', ['-n', lab.fabric, 'addr', 'add', `${OUTSIDE_HOST}/32`, 'dev', 'lo']);
    tor = await startBird(lab, lab.fabric, 'tor', torConf(lab, TOR_IP, TOR_AS, OUTSIDE_NET));
    bird = await startBird(lab, n2.ns, 'node2-bird', calicoNodeBird(n2, [n1], [{ ip: TOR_IP, asNumber: TOR_AS }]));

    await lab.startPodway('node1', 20_000, ['--bgp']);
    // podway learns node2's block from BIRD, next hop node2, routed unencapsulated.
    const learned = await until(() => routesVia(lab, 'node1', n2.block, 'direct', n2.ip), 40_000, 250);
    assert.ok(learned, `node1 routes ${n2.block} via ${n2.ip}: ${JSON.stringify(peersOf(lab, 'node1'))} ${JSON.stringify(await routesOf(lab, 'node1'))}\n${bird.birdc('show', 'protocols', 'all')}`);
    assert.is(peerState(lab, 'node1', n2.ip), 'Established');
    // BIRD learns node1's block from podway and puts it in node2's kernel, via node1.
    const inKernel = await until(() => run('ip', ['-n', n2.ns, 'route', 'show', n1.block]).includes(`via ${n1.ip}`), 20_000, 250);
    assert.ok(inKernel, `node2's kernel: ${run('ip', ['-n', n2.ns, 'route'])}\n${bird.birdc('show', 'route', 'all')}`);
    assert.match(bird.birdc('show', 'route', n1.block, 'all'), /BGP.next_hop: 10\.99\.0\.1/);
    // The mesh session as BIRD sees it.
    assert.match(bird.birdc('show', 'protocols', `Mesh_${n1.ip.replace(/\./g, '_')}`), /Established/);

    // Pods across, both ways: node1 forwards with podway, node2 with its kernel; TTL 62 = two
    // forwarding hops and no tunnel (an encapsulating hop would not show in the inner TTL the
    // same way: the routes above are 'direct', the kernel's has no tunnel device).
    const there = lab.ping('web-1', web2.ip, 5);
    assert.is(there.loss, 0, `web-1 -> web-2: ${JSON.stringify(there)}`);
    assert.is(there.ttl, 62);
    const back = lab.ping('web-2', lab.pod('web-1').ip, 5);
    assert.is(back.loss, 0, `web-2 -> web-1: ${JSON.stringify(back)}`);
    assert.is(back.ttl, 62);

    // The router learns both blocks, each with its owner as next hop (from podway and from BIRD),
    // and a host behind it reaches both pods, no encapsulation, no NAT.
    const torVia = (n: typeof n1) => run('ip', ['-n', lab.fabric, 'route', 'show', n.block]).includes(`via ${n.ip}`);
    assert.ok(await until(() => torVia(n1) && torVia(n2), 30_000, 250), `the router's kernel:\n${run('ip', ['-n', lab.fabric, 'route'])}\n${tor.birdc('show', 'route', 'all')}`);
    assert.ok(await until(() => routesVia(lab, 'node1', OUTSIDE_NET, 'direct', TOR_IP), 20_000, 250), 'node1 routes the outside net to the router');
    assert.ok(await until(() => run('ip', ['-n', n2.ns, 'route', 'show', OUTSIDE_NET]).includes(`via ${TOR_IP}`), 20_000, 250), 'node2\'s BIRD put the outside net in its kernel');
    for (const pod of ['web-1', 'web-2']) {
      const out = run('ip', ['netns', 'exec', lab.fabric, 'ping', '-n', '-c', '3', '-i', '0.2', '-W', '1', '-I', OUTSIDE_HOST, lab.pod(pod).ip], { allowFail: true, timeoutMs: 10_000 });
      assert.match(out, /3 packets transmitted, 3 received/, `outside -> ${pod}: ${out}`);
    }
  } catch (e) {
    console.log(logTail(lab, 30));
    throw e;
  } finally {
    await bird?.kill();
    await tor?.kill();
    await teardown(lab);
  }
});

/** BIRD as route reflector (cluster id 1.0.0.1) for every lab node, on the fabric's 10.99.0.254. */
function reflectorConf(lab: Lab): string {
  const clients = lab.nodes.map((n) => `
protocol bgp ${n.name} {
  local ${TOR_IP} as 64512;
  neighbor ${n.ip} as 64512;
  direct;
  rr client;
  rr cluster id 1.0.0.1;
  graceful restart on;
  connect retry time 2;
  error wait time 1, 5;
  ipv4 { import all; export all; };
}`).join('\n');
  return `router id ${TOR_IP};
protocol device { scan time 2; }
${clients}
`;
}

test('BIRD as route reflector for three podway nodes: all learn all blocks; the reflector killed and back: routes kept, then relearned', async () => {
  if (!isRoot()) throw new Error('BGP e2e tests need root (network namespaces)');
  const spec: LabNodeSpec[] = [1, 2, 3].map((i) => ({ name: `node${i}`, subnet: 'a' as const, pods: [{ name: `web-${i}`, type: 'veth' as const }] }));
  const lab = guard(new Lab(spec));
  let rr: BirdProcess | null = null;
  try {
    lab.build();
    lab.setMode('direct');
    const extra = `apiVersion: projectcalico.org/v3
kind: BGPConfiguration
metadata:
  name: default
spec:
  nodeToNodeMeshEnabled: false
  asNumber: 64512
---
apiVersion: projectcalico.org/v3
kind: BGPPeer
metadata:
  name: reflector
spec:
  peerIP: ${TOR_IP}
  asNumber: 64512
`;
    writeFileSync(lab.file + '.bgp', lab.resources('direct') + '---\n' + extra);
    renameSync(lab.file + '.bgp', lab.file);
    rr = await startBird(lab, lab.fabric, 'rr', reflectorConf(lab));
    for (const n of lab.nodes) await lab.startPodway(n.name, 20_000, ['--bgp']);
    const allLearned = async () => {
      for (const n of lab.nodes) for (const o of lab.nodes) if (o !== n && !(await routesVia(lab, n.name, o.block, 'direct', o.ip))) return false;
      return true;
    };
    assert.ok(await until(allLearned, 40_000, 250), `every node routes the other blocks via their owners\n${rr.birdc('show', 'route', 'all')}`);
    for (const n of lab.nodes) {
      assert.equal(peersOf(lab, n.name).map((p) => [p.address, p.bgpState]), [[TOR_IP, 'Established']], `${n.name}: only the reflector, no mesh`);
    }
    assert.is(lab.ping('web-1', lab.pod('web-3').ip, 3).loss, 0);

    // The reflector dies without a word: the nodes keep its routes for its restart time.
    await rr.kill();
    assert.ok(await until(() => lab.nodes.every((n) => peerState(lab, n.name, TOR_IP) !== 'Established'), 10_000, 250), 'sessions down');
    await sleep(2000);
    assert.ok(await allLearned(), 'routes kept while the reflector restarts');
    assert.is(lab.ping('web-2', lab.pod('web-1').ip, 3).loss, 0, 'pods still reach each other');

    await rr.restart();
    assert.ok(await until(() => lab.nodes.every((n) => peerState(lab, n.name, TOR_IP) === 'Established'), 30_000, 250), 'sessions back');
    // Relearned: the reflector has every block from its owner again, and after the End-of-RIBs
    // (stale routes replaced or dropped) every node still routes every other block.
    const rrHasAll = () => lab.nodes.every((n) => new RegExp(`${n.block.replace(/[./]/g, '\\$&')}\\s+unicast \\[${n.name} `).test(rr!.birdc('show', 'route', n.block)));
    assert.ok(await until(rrHasAll, 20_000, 250), rr.birdc('show', 'route', 'all'));
    await sleep(3000);
    assert.ok(await allLearned(), 'every node routes every other block after the reflector came back');
    assert.is(lab.ping('web-3', lab.pod('web-2').ip, 3).loss, 0);
  } catch (e) {
    console.log(logTail(lab, 30));
    throw e;
  } finally {
    await rr?.kill();
    await teardown(lab);
  }
});

test('podway restarts under traffic: the BIRD ToR keeps its routes (graceful restart), an outside ping to a pod loses packets only while podway is down', async () => {
  if (!isRoot()) throw new Error('BGP e2e tests need root (network namespaces)');
  const spec: LabNodeSpec[] = [
    { name: 'node1', subnet: 'a', pods: [{ name: 'web-1', type: 'veth' }] },
    { name: 'node2', subnet: 'a', pods: [{ name: 'web-2', type: 'veth' }] },
  ];
  const lab = guard(new Lab(spec));
  let tor: BirdProcess | null = null;
  try {
    lab.build();
    lab.setMode('direct');
    const peer = `apiVersion: projectcalico.org/v3
kind: BGPPeer
metadata:
  name: tor
spec:
  peerIP: ${TOR_IP}
  asNumber: ${TOR_AS}
`;
    writeFileSync(lab.file + '.bgp', lab.resources('direct') + '---\n' + peer);
    renameSync(lab.file + '.bgp', lab.file);
    run('ip', ['-n', lab.fabric, 'addr', 'add', `${OUTSIDE_HOST}/32`, 'dev', 'lo']);
    tor = await startBird(lab, lab.fabric, 'tor', torConf(lab, TOR_IP, TOR_AS, OUTSIDE_NET));
    for (const n of lab.nodes) await lab.startPodway(n.name, 20_000, ['--bgp']);
    const n2 = lab.node('node2');
    const torHasBlock = () => run('ip', ['-n', lab.fabric, 'route', 'show', n2.block]).includes(`via ${n2.ip}`);
    assert.ok(await until(torHasBlock, 30_000, 250), `the ToR's kernel has ${n2.block}: ${tor.birdc('show', 'route', 'all')}`);
    assert.ok(await until(() => routesVia(lab, 'node2', OUTSIDE_NET, 'direct', TOR_IP), 20_000, 250), 'node2 routes the outside net to the ToR');
    assert.is(peerState(lab, 'node2', TOR_IP), 'Established');

    const interval = 0.05;
    const ping = pingFrom(lab.fabric, lab.pod('web-2').ip, 400, interval, OUTSIDE_HOST);
    await sleep(2000);
    const downAt = Date.now();
    await lab.stopPodway('node2');
    // While podway is down: the ToR still has the block from node2's session (stale, kept for the
    // restart time) and in its kernel.
    await sleep(1000);
    const whileDown = tor.birdc('show', 'route', n2.block, 'all');
    assert.match(whileDown, /\[node2 /, `kept from node2 while it restarts:\n${whileDown}`);
    assert.ok(torHasBlock(), 'still in the ToR kernel');
    await lab.startPodway('node2', 20_000, ['--bgp']);
    const upAt = Date.now();
    assert.ok(await until(() => peerState(lab, 'node2', TOR_IP) === 'Established', 20_000, 250), 'session back');
    const r = await ping.done;
    assert.ok(r.sent >= 300, r.out.slice(-300));
    // Every packet before the restart and after podway was back (plus 2 s to settle) answered;
    // the lost ones lie inside the restart window.
    const seqAt = (t: number) => Math.floor((t - (downAt - 2000)) / (interval * 1000)) + 1;
    const first = Math.max(1, seqAt(downAt - 1000));
    const last = seqAt(upAt + 2000);
    const outside = r.lost.filter((s) => s < first || s > last);
    assert.equal(outside, [], `lost outside the restart window [${first}, ${last}]: ${JSON.stringify(r.lost)}`);
    assert.ok(r.lost.length > 0, 'the pod is unreachable while podway is down (the window is real)');
    assert.ok(r.replied.has(r.sent), 'the stream continues to its end');
  } catch (e) {
    console.log(logTail(lab, 30));
    throw e;
  } finally {
    await tor?.kill();
    await teardown(lab);
  }
});

test.run();
