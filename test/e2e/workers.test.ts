/**
 * `podway run --workers 2`: two forwarding threads share a node's veth pods and underlay, each
 * socket filter taking its worker's share of the flows (steer.ts; SO_REUSEPORT on the VXLAN
 * socket); many flows cross in both directions, TTL as with one worker, and a request and its
 * reply are forwarded by the same worker.
 * TAP and TUN pods (single-queue devices) are served too: the first thread opens and alone reads
 * each, the other transmits to it through a dup of that fd, with the TAP pod's MAC the first
 * thread learned.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Lab } from '../../src/lab/lab';
import { controlRequest } from '../../src/dataplane/control-server';
import { isRoot } from '../helpers/netns';
import { guard, teardown } from './e2e-kit';
import { execFileSync, spawn } from 'node:child_process';
import * as path from 'node:path';

/** bench/e2e/pktgen.c (built by npm install): AF_PACKET UDP frames, FLOWS source ports. */
const PKTGEN = path.resolve(__dirname, '..', '..', '..', 'build', 'Release', 'pktgen');
const FLOWS = 64;

let lab: Lab | null = null;
/** Stops the podways and removes the lab (its namespaces also at exit and on the runner's SIGTERM: guard). */
const cleanup = async () => {
  if (lab) await teardown(lab);
  lab = null;
};

type PortRow = { port: string; rx: number; tx: number };

test('two workers forward veth, TAP and TUN pods across nodes', async () => {
  assert.ok(isRoot(), 'needs root (network namespaces)');
  lab = guard(new Lab([
    { name: 'node1', subnet: 'a', pods: [{ name: 'web-1', type: 'veth' }, { name: 'tap-1', type: 'tap' }, { name: 'tun-1', type: 'tun' }] },
    { name: 'node2', subnet: 'a', pods: [{ name: 'web-2', type: 'veth' }] },
  ]));
  try {
    lab.build();
    await lab.startPodway('node1', 15_000, ['--workers', '2']);
    await lab.startPodway('node2', 15_000, ['--workers', '2']);
    const n1 = lab.node('node1');
    assert.ok(n1.log.some((l) => /2 forwarding workers/.test(l)), n1.log.join('\n'));
    // several flows (ping ids differ per process), both directions, across the tunnel and on the node
    const paths: [string, string, number][] = [
      ['web-1', 'web-2', 62], ['web-2', 'web-1', 62],
      ['web-2', 'tap-1', 62], ['tap-1', 'web-2', 62], ['web-2', 'tun-1', 62], ['tun-1', 'web-2', 62],
      ['web-1', 'tap-1', 63], ['tap-1', 'web-1', 63], ['web-1', 'tun-1', 63],
    ];
    for (let k = 0; k < 6; k++) {
      for (const [from, to, ttl] of paths) {
        const r = lab.ping(from, lab.pod(to).ip, 3);
        assert.is(r.loss, 0, `${from} -> ${to} round ${k}`);
        assert.is(r.ttl, ttl, `${from} -> ${to} ttl`);
      }
    }
    const st = (await controlRequest(n1.control, { cmd: 'status' })) as { endpoints: number };
    assert.is(st.endpoints, 3, 'the veth, tap and tun pods are attached');
    // counters cover both workers: every port twice, tagged, and the pod's frames add up
    const c = (await controlRequest(n1.control, { cmd: 'counters' })) as { ports: PortRow[] };
    const row = (name: string, w: number) => c.ports.find((p) => p.port === `${name} [w${w}]`);
    const names = JSON.stringify(c.ports.map((p) => p.port));
    const web = lab.pod('web-1').ifname;
    assert.ok(row(web, 0) && row(web, 1), `both workers list ${web}: ${names}`);
    assert.ok(row(web, 0)!.rx + row(web, 1)!.rx >= 6 * 3 * 5, `the veth pod's echo requests and replies were received: ${row(web, 0)!.rx} + ${row(web, 1)!.rx}`);
    for (const pod of ['tap-1', 'tun-1']) {
      const name = lab.pod(pod).ifname;
      const w0 = row(name, 0);
      const w1 = row(name, 1);
      assert.ok(w0 && w1, `both workers list ${name}: ${names}`);
      // worker 1 never reads the device: every frame from the pod went through worker 0
      assert.is(w1!.rx, 0, `${name}: worker 1 read nothing`);
      assert.ok(w0!.rx >= 6 * 3 * 2, `${name}: worker 0 read the pod's requests and replies (${w0!.rx})`);
      assert.ok(w0!.tx + w1!.tx >= 6 * 3 * 2, `${name}: requests and replies sent to the pod (${w0!.tx} + ${w1!.tx})`);
    }
    // 64 UDP flows (source ports) from web-2 to each device: the steering hands some of them to
    // worker 1 (all on one worker: 2^-64), which sends them through its dup of worker 0's fd
    const web2 = lab.pod('web-2');
    for (const pod of ['tap-1', 'tun-1']) {
      execFileSync('ip', ['netns', 'exec', web2.ns, PKTGEN, 'send', web2.podIf, web2.mac!, 'ee:ee:ee:ee:ee:ee', web2.ip, lab.pod(pod).ip, '64', String(FLOWS), '2000', '0.5'], { stdio: 'pipe', timeout: 10_000 });
    }
    const end = Date.now() + 20_000; // (5 s before: a wait for counters, bounded, not a speed)
    for (;;) {
      const now = (await controlRequest(n1.control, { cmd: 'counters' })) as { ports: PortRow[] };
      const tx = (pod: string, w: number) => now.ports.find((p) => p.port === `${lab!.pod(pod).ifname} [w${w}]`)!.tx;
      const moved = ['tap-1', 'tun-1'].map((pod) => tx(pod, 1) - row(lab!.pod(pod).ifname, 1)!.tx);
      if (moved.every((m) => m > 0)) break;
      if (Date.now() > end) assert.unreachable(`worker 1 sent the UDP flows it was handed to the tap and tun pods: ${JSON.stringify(moved)} (${JSON.stringify(now.ports)})`);
      await new Promise((r) => setTimeout(r, 100));
    }
  } finally {
    await cleanup();
  }
});

test('two workers: a request and its reply are forwarded by the same worker, flows spread over both', async () => {
  assert.ok(isRoot(), 'needs root (network namespaces)');
  lab = guard(new Lab([
    { name: 'node1', subnet: 'a', pods: [{ name: 'rr-1', type: 'veth' }] },
    { name: 'node2', subnet: 'a', pods: [{ name: 'rr-2', type: 'veth' }] },
  ]));
  let server: ReturnType<typeof spawn> | null = null;
  try {
    lab.build();
    await lab.startPodway('node1', 15_000, ['--workers', '2']);
    await lab.startPodway('node2', 15_000, ['--workers', '2']);
    const a = lab.pod('rr-1');
    const b = lab.pod('rr-2');
    assert.is(lab.ping('rr-1', b.ip, 3).loss, 0, 'the pods reach each other');
    // a UDP echo server in rr-2; each client run below is a new socket, so a new source port: a new flow
    const port = 7700;
    server = spawn('ip', ['netns', 'exec', b.ns, PKTGEN, 'rr-server', 'udp', String(port), '120'], { stdio: 'ignore' });
    // Per node, the frames each worker received in a run on the pod's port (the requests on node1,
    // the replies on node2) and on the underlay port (the other direction, inside VXLAN).
    const snapshot = async (node: string) => {
      const c = (await controlRequest(lab!.node(node).control, { cmd: 'counters' })) as { ports: PortRow[] };
      const pod = lab!.pod(node === 'node1' ? 'rr-1' : 'rr-2').ifname;
      const rx = (prefix: string, w: number) => c.ports.filter((p) => p.port.startsWith(prefix) && p.port.endsWith(`[w${w}]`)).reduce((s, p) => s + p.rx, 0);
      return [0, 1].map((w) => ({ pod: rx(pod, w), underlay: rx('underlay(', w) }));
    };
    const used = new Set<number>();
    let answered = 0;
    for (let run = 0; run < 16; run++) {
      const before = [await snapshot('node1'), await snapshot('node2')];
      // 40 requests at 200/s; a lost one (a loaded machine) only lowers the counts
      const out = execFileSync('ip', ['netns', 'exec', a.ns, PKTGEN, 'rr-client', 'udp', b.ip, String(port), '64', '200', '0.2'], { encoding: 'utf8', timeout: 10_000 });
      const got = (JSON.parse(out) as { received: number }).received;
      if (got < 20) continue; // the server not up yet, or this run lost too much to tell
      answered++;
      const after = [await snapshot('node1'), await snapshot('node2')];
      for (const n of [0, 1]) {
        const d = [0, 1].map((w) => ({ pod: after[n][w].pod - before[n][w].pod, underlay: after[n][w].underlay - before[n][w].underlay }));
        const w = d[0].pod > d[1].pod ? 0 : 1;
        const what = `run ${run}, node${n + 1}: per worker ${JSON.stringify(d)}`;
        // the pod's frames of this flow (requests on node1, replies on node2) on one worker ...
        assert.ok(d[w].pod >= got && d[1 - w].pod <= 3, `${what}: the pod's frames of the flow on one worker`);
        // ... and the other direction, received from the tunnel, on the same one
        assert.ok(d[w].underlay >= got && d[1 - w].underlay <= 3, `${what}: the tunnel's frames of the flow on the same worker`);
        if (n === 0) used.add(w);
      }
    }
    assert.ok(answered >= 8, `most runs were answered (${answered} of 16)`);
    assert.is(used.size, 2, `the flows were spread over both workers (${[...used].join(', ')})`);
  } finally {
    server?.kill('SIGKILL');
    await cleanup();
  }
});

test.run();
