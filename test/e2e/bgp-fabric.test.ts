/**
 * podway on an L3 fabric (Calico over IP fabrics, "AS per compute server"): two nodes on
 * different subnets behind one router, the pool unencapsulated, the node-to-node mesh off. The
 * router is BIRD as ToR with an eBGP session to every node, each from its address on that node's
 * subnet; it re-advertises each node's block to the other node with itself as next hop. So
 * `podway run --bgp` on each node routes the other block directly to the ToR (on its own
 * subnet), the ToR's kernel forwards to the owner, and the owner delivers to its pod: nothing
 * written by hand for the other node's block, no tunnel anywhere (tcpdump on the ToR's link to
 * node2 sees the pods' packets bare, and no IPIP or VXLAN).
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawn, ChildProcess } from 'node:child_process';
import { LabNodeSpec, run, within } from '../../src/lab/lab';
import { until, sleep, track, tcpTransfer } from './e2e-kit';
import {
  inBgpLab, writeResources, bgpPeerYaml, MESH_OFF_YAML, startBgpPodways, kernelRoutesVia, assertPodPing, routesVia, routesOf, peersOf, TOR_AS,
} from './bgp-kit';

const TWO_SUBNETS: LabNodeSpec[] = [
  { name: 'node1', subnet: 'a', pods: [{ name: 'web-1', type: 'veth' }] },
  { name: 'node2', subnet: 'b', pods: [{ name: 'web-2', type: 'veth' }] },
];

/** The ToR: one eBGP session per node, from the router's address on that node's subnet. */
function fabricTorConf(peers: { name: string; ip: string; asNumber: number; torIp: string }[]): string {
  const sessions = peers.map((p) => `
protocol bgp ${p.name} {
  local ${p.torIp} as ${TOR_AS};
  neighbor ${p.ip} as ${p.asNumber};
  connect retry time 2;
  error wait time 1, 5;
  ipv4 { import all; export where source ~ [ RTS_STATIC, RTS_BGP ]; };
}`).join('\n');
  return `router id ${peers[0]!.torIp};
protocol device { scan time 2; }
protocol kernel { ipv4 { import none; export where source = RTS_BGP; }; }
${sessions}
`;
}

/**
 * tcpdump in `ns` on `ifname` (every IPv4 packet, one line each) until stopped by its PID;
 * `listening` resolves once tcpdump says its capture is open (false if it did not within 20 s).
 */
function capture(ns: string, ifname: string): { stop: () => Promise<string[]>; listening: Promise<boolean>; proc: ChildProcess } {
  const proc = track(spawn('ip', ['netns', 'exec', ns, 'tcpdump', '-n', '-l', '-i', ifname, '-c', '100000', 'ip'], { stdio: ['ignore', 'pipe', 'pipe'] }));
  let out = '';
  let err = '';
  proc.stdout!.setEncoding('utf8');
  proc.stdout!.on('data', (d: string) => (out += d));
  proc.stderr!.setEncoding('utf8');
  proc.stderr!.on('data', (d: string) => (err += d));
  const exited = new Promise<void>((r) => proc.once('exit', () => r()));
  return {
    proc,
    listening: until(() => /listening on/.test(err) || proc.exitCode !== null, 20_000).then(() => /listening on/.test(err)),
    stop: async () => {
      if (proc.exitCode === null && proc.signalCode === null && proc.pid !== undefined) process.kill(proc.pid, 'SIGINT');
      await within(exited, 5000, null);
      return out.split('\n').filter((l) => l.length > 0);
    },
  };
}

test('L3 fabric: nodes on two subnets peer eBGP with a BIRD ToR (mesh off); pods across reach each other unencapsulated through it', () => inBgpLab(TWO_SUBNETS, async (lab, birds) => {
  let dump: ReturnType<typeof capture> | null = null;
  try {
    const [n1, n2] = [lab.node('node1'), lab.node('node2')];
    // The router's address on each node's subnet (the lab's default gateways) and its link to node2.
    const torIpOf = (ip: string) => ip.replace(/\.\d+$/, '.254');
    assert.is.not(torIpOf(n1.ip).split('.').slice(0, 3).join('.'), torIpOf(n2.ip).split('.').slice(0, 3).join('.'), 'two subnets');
    const peers = [n1, n2].map((n, k) => ({ name: n.name, ip: n.ip, asNumber: 64601 + k, torIp: torIpOf(n.ip) }));
    // AS per compute server, the mesh off, and each node peers with the ToR on its own subnet.
    let resources = lab.resources('direct');
    for (const p of peers) {
      const at = `    ipv4Address: ${p.ip}/24\n`;
      assert.ok(resources.includes(at), `the lab's Node ${p.name} has ${at}`);
      resources = resources.replace(at, `${at}    asNumber: ${p.asNumber}\n`);
    }
    writeResources(lab, [resources, MESH_OFF_YAML, ...peers.map((p) => bgpPeerYaml(`tor-${p.name}`, p.torIp, TOR_AS, p.name))]);
    const tor = await birds.start(lab.fabric, 'tor', fabricTorConf(peers));
    await startBgpPodways(lab);

    // Each node routes the other's block directly to the ToR on its own subnet.
    const learned = async () => (await routesVia(lab, 'node1', n2.block, 'direct', peers[0]!.torIp)) && (await routesVia(lab, 'node2', n1.block, 'direct', peers[1]!.torIp));
    assert.ok(await until(learned, 40_000, 250), `routes via the ToR:\nnode1 ${JSON.stringify(await routesOf(lab, 'node1'))}\nnode2 ${JSON.stringify(await routesOf(lab, 'node2'))}\n${tor.birdc('show', 'protocols', 'all')}\n${tor.birdc('show', 'route', 'all')}`);
    for (const [k, n] of [n1, n2].entries()) {
      assert.equal(peersOf(lab, n.name).map((p) => [p.address, p.type, p.bgpState]), [[peers[k]!.torIp, 'node specific', 'Established']], `${n.name}: only its ToR, no mesh`);
    }
    // The ToR's kernel routes each block to its owner (learned from it).
    const torVia = (n: typeof n1) => kernelRoutesVia(lab.fabric, n.block, n.ip);
    assert.ok(await until(() => torVia(n1) && torVia(n2), 20_000, 250), `the ToR's kernel:\n${run('ip', ['-n', lab.fabric, 'route'])}`);

    dump = capture(lab.fabric, 'u2');
    // (a fixed 500 ms for tcpdump to attach was a guess that a loaded host can outrun)
    assert.ok(await dump.listening, 'tcpdump on the ToR\'s link to node2 started');
    const web1 = lab.pod('web-1');
    const web2 = lab.pod('web-2');
    // TTL 61: three forwarding hops (podway, the ToR's kernel, podway) all decremented the pod's
    // own header; through a tunnel the ToR would forward the outer header and the inner TTL would be 62.
    await assertPodPing(lab, 'web-1', 'web-2', 5, 61);
    await assertPodPing(lab, 'web-2', 'web-1', 5, 61);
    for (const [from, to] of [['web-1', 'web-2'], ['web-2', 'web-1']] as const) {
      const t = await tcpTransfer(lab, from, to, 2 * 1024 * 1024);
      assert.is(t.received.bytes, t.sent.bytes, `${from} -> ${to}`);
      assert.is(t.received.sha256, t.sent.sha256, `${from} -> ${to}`);
      assert.is(t.received.peer.split(':')[0], lab.pod(from).ip, 'no NAT on the way');
    }
    const lines = await dump.stop();
    dump = null;
    // On the wire between the ToR and node2: the pods' own packets, no outer header around them.
    const pod = (ip: string) => ip.replace(/\./g, '\\.');
    const bare = new RegExp(`^\\S+ IP (${pod(web1.ip)}|${pod(web2.ip)})(\\.\\d+)? > (${pod(web1.ip)}|${pod(web2.ip)})(\\.\\d+)?: `);
    const bareCount = lines.filter((l) => bare.test(l)).length;
    const tunnelled = lines.filter((l) => /ipip|IPIP|VXLAN|\.4789: /.test(l) || (!bare.test(l) && l.includes('10.244.')));
    assert.ok(bareCount >= 20, `pod packets seen bare on node2's link: ${bareCount}\n${lines.slice(0, 20).join('\n')}`);
    assert.equal(tunnelled, [], 'no encapsulated packet on node2\'s link');
  } finally {
    if (dump) await dump.stop();
  }
}));

test.run();
