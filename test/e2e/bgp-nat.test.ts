/**
 * natOutgoing over a route learned with BGP (root, network namespaces, BIRD killed by PID): a BIRD
 * ToR announces an outside network (198.51.100.0/24) to a `podway run --bgp` node whose pool has
 * natOutgoing. Calico masquerades traffic from a natOutgoing pool to any address outside every
 * pool, whatever the route; podway used to forward it over the learned route with the pod's own
 * address. The outside host (on the ToR's namespace) must see the node's address, and the answer
 * must come back to the pod.
 *
 * The node has NO default route: NATed egress is routed by the node's kernel, so podway must put
 * the learned outside route there (proto bird, metric 32, via the ToR, as calico-node's BIRD
 * does), leave alone an operator's route to another announced prefix, and remove its own route
 * when the ToR withdraws it.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawn } from 'node:child_process';
import * as path from 'node:path';
import { controlRequest } from '../../src/dataplane/control-server';
import { until, track, spawnCollected } from './e2e-kit';
import { execBounded } from './tools';
import { run } from '../../src/lab/lab';
import { parseMetrics, valueOf, family } from '../observe/prom-text';
import { inBgpLab, nodesOnOneSubnet, writeResources, bgpPeerYaml, routesVia, TOR_IP, TOR_AS, OUTSIDE_NET, OUTSIDE_HOST } from './bgp-kit';

const PEER = path.join(__dirname, 'nat-peer.js');
const HTTP_GET = path.join(__dirname, 'http-get.js');
const METRICS_PORT = 9301;
/** Also announced by the ToR; the operator has its own static route there at the same metric. */
const OPERATOR_NET = '203.0.113.0/24';

/** node's kernel routes for `cidr` (`ip route show`), one per line. */
const kernelRoutes = (ns: string, cidr: string): string => run('ip', ['-n', ns, 'route', 'show', 'table', 'main', cidr]).trim();

test('natOutgoing over a BGP-learned outside route: the outside host sees the node address and answers the pod', () => inBgpLab(nodesOnOneSubnet(1), async (lab, birds) => {
  const n1 = lab.node('node1');
  lab.natOutgoing = true;
  writeResources(lab, [lab.resources('direct'), bgpPeerYaml('tor', TOR_IP, TOR_AS)]);
  run('ip', ['-n', n1.ns, 'route', 'del', 'default']);
  run('ip', ['-n', n1.ns, 'route', 'add', OPERATOR_NET, 'via', TOR_IP, 'proto', 'static', 'metric', '32']);
  const tor = await birds.tor([OPERATOR_NET]);
  await lab.startPodway('node1', 20_000, ['--bgp', '--metrics-port', String(METRICS_PORT)]);
  assert.ok(await until(() => routesVia(lab, 'node1', OUTSIDE_NET, 'direct', TOR_IP), 30_000, 250), 'node1 routes the outside net to the ToR (learned)');
  const ours = `${OUTSIDE_NET} via ${TOR_IP} dev eth0 proto bird metric 32`;
  assert.ok(await until(() => kernelRoutes(n1.ns, OUTSIDE_NET).includes(ours), 10_000, 100), `kernel: ${kernelRoutes(n1.ns, OUTSIDE_NET)}`);
  assert.is(run('ip', ['-n', n1.ns, 'route', 'show', 'default']).trim(), '', 'the node has no default route');

  // A UDP echo on the outside host, printing the source of every datagram it gets.
  const echo = track(spawn('ip', ['netns', 'exec', lab.fabric, process.execPath, PEER, 'udp-echo', OUTSIDE_HOST, '7301', '30'], { stdio: ['ignore', 'pipe', 'pipe'] }));
  let echoOut = '';
  echo.stdout!.setEncoding('utf8');
  echo.stdout!.on('data', (d: string) => (echoOut += d));
  try {
    assert.ok(await until(() => echoOut.includes('ready') || echo.exitCode !== null, 10_000) && echoOut.includes('ready'), `udp echo: ${echoOut}`);
    // The trace says when every thread matches ({"armed": true}); the ask goes after that, and again
    // every 0.5 s until the trace has its record (bounded): a thread that started late (the 2 s
    // fallback says armed anyway) or a first datagram lost must not leave the trace empty.
    let armed = false;
    let traced = false;
    const trace = (controlRequest(n1.control, { cmd: 'trace', filter: ['dst', OUTSIDE_HOST, 'and', 'udp'], count: 1, timeoutMs: 20_000, armed: true }, 25_000, (p) => {
      if (typeof p.armed === 'string') armed = true;
    }) as Promise<{ records: { stages: string[] }[] }>).finally(() => (traced = true));
    assert.ok(await until(() => armed || traced, 10_000), 'the trace is armed');
    const asks: ReturnType<typeof spawnCollected>[] = [];
    await until(() => {
      if (!traced && asks.length < 20) asks.push(spawnCollected('ip', ['netns', 'exec', lab.pod('web-1').ns, process.execPath, PEER, 'udp-ask', OUTSIDE_HOST, '7301', '0', '3000'], 8000));
      return traced;
    }, 10_000, 500);
    const t = await trace;
    await Promise.all(asks.map((a) => a.done));
    const lines = asks.map((a) => a.out().split('\n').find((l) => l.startsWith('{')));
    assert.ok(lines.some((l) => l), `udp-ask: ${asks.map((a) => `${a.err()} ${a.out()}`).join(' | ')}`);
    const answered = lines.filter((l): l is string => !!l).map((l) => JSON.parse(l) as { answered: boolean });
    const peers = [...echoOut.matchAll(/^peer (\S+):\d+$/gm)].map((m) => m[1]);
    assert.ok(peers.length >= 1, `the outside got nothing: ${echoOut}`);
    assert.equal([...new Set(peers)], [n1.ip], `the outside saw ${peers.join(', ')} (pod ${lab.pod('web-1').ip}, node ${n1.ip})`);
    assert.ok(answered.some((r) => r.answered), `the pod got the echo back: ${lines.join(' ')}`);
    const stages = t.records[0]?.stages ?? [];
    assert.ok(stages.some((s) => s.includes('natOutgoing')), stages.join('\n'));
    const c = (await controlRequest(n1.control, { cmd: 'counters' }, 5000)) as { reasons: Record<string, number> };
    assert.ok(c.reasons.egress_nat >= 1, JSON.stringify(c.reasons));
    // The NAT table's figures in /metrics (the same the counters command shows).
    const got = await execBounded('ip', ['netns', 'exec', n1.ns, process.execPath, HTTP_GET, `http://127.0.0.1:${METRICS_PORT}/metrics`], 10_000);
    const m = parseMetrics((JSON.parse(got.stdout.trim()) as { body: string }).body);
    assert.ok(valueOf(m, 'podway_nat_flows_total') >= 1, 'a NATed flow counted');
    assert.ok(valueOf(m, 'podway_nat_out_packets_total') >= 1 && valueOf(m, 'podway_nat_in_packets_total') >= 1, 'out and back');
    assert.is(valueOf(m, 'podway_nat_refused_flows_total'), 0);
    assert.is(valueOf(m, 'podway_nat_max_flows'), 65536);
    assert.is(family(m, 'podway_nat_icmp_unmatched_total').type, 'COUNTER');
    // The operator's route was not replaced (same prefix and metric: ours is refused, not forced).
    assert.is(kernelRoutes(n1.ns, OPERATOR_NET), `${OPERATOR_NET} via ${TOR_IP} dev eth0 proto static metric 32`);
    // Our kernel route deleted by hand: NATed egress is handed to the kernel, which refuses it
    // (ENETUNREACH); that shows in tx4(raw)'s counters and in the log, not only as egress_nat.
    run('ip', ['-n', n1.ns, 'route', 'del', OUTSIDE_NET, 'proto', 'bird']);
    const lost = spawnCollected('ip', ['netns', 'exec', lab.pod('web-1').ns, process.execPath, PEER, 'udp-ask', OUTSIDE_HOST, '7301', '0', '1000'], 5000);
    await lost.done;
    const tx4 = async () => ((await controlRequest(n1.control, { cmd: 'counters' }, 5000)) as { ports: { port: string; txErrors: number; lastError?: string }[] }).ports.find((p) => p.port.startsWith('tx4'));
    assert.ok(await until(async () => ((await tx4())?.txErrors ?? 0) >= 1, 5000, 100), JSON.stringify(await tx4()));
    assert.is((await tx4())?.lastError, 'ENETUNREACH');
    assert.ok(await until(() => n1.log.some((l) => l.includes('refused') && l.includes('ENETUNREACH')), 5000, 100), n1.log.slice(-5).join('\n'));
    // The ToR withdraws both prefixes: our kernel route goes, the operator's stays.
    assert.match(tor.birdc('disable', 'static1'), /disabled/);
    assert.ok(await until(() => kernelRoutes(n1.ns, OUTSIDE_NET) === '', 10_000, 100), `kernel after withdrawal: ${kernelRoutes(n1.ns, OUTSIDE_NET)}`);
    assert.is(kernelRoutes(n1.ns, OPERATOR_NET), `${OPERATOR_NET} via ${TOR_IP} dev eth0 proto static metric 32`);
  } finally {
    if (echo.exitCode === null && echo.signalCode === null) echo.kill('SIGKILL');
  }
}));

test.run();
