/**
 * `podway run --workers 2`: two forwarding threads share a node's veth pods and underlay through
 * PACKET_FANOUT and SO_REUSEPORT; many flows cross in both directions, TTL as with one worker.
 * TAP and TUN pods (single-queue devices) are served too: the first thread opens and alone reads
 * each, the other transmits to it through a dup of that fd, with the TAP pod's MAC the first
 * thread learned.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Lab } from '../../src/lab/lab';
import { controlRequest } from '../../src/dataplane/control-server';
import { isRoot } from '../helpers/netns';
import { execFileSync } from 'node:child_process';
import * as path from 'node:path';

/** bench/e2e/pktgen.c (built by npm install): AF_PACKET UDP frames, FLOWS source ports. */
const PKTGEN = path.resolve(__dirname, '..', '..', '..', 'build', 'Release', 'pktgen');
const FLOWS = 64;

let lab: Lab | null = null;
const cleanup = () => { lab?.destroy(); lab = null; };
process.once('exit', cleanup);

type PortRow = { port: string; rx: number; tx: number };

test('two workers forward veth, TAP and TUN pods across nodes', async () => {
  assert.ok(isRoot(), 'needs root (network namespaces)');
  lab = new Lab([
    { name: 'node1', subnet: 'a', pods: [{ name: 'web-1', type: 'veth' }, { name: 'tap-1', type: 'tap' }, { name: 'tun-1', type: 'tun' }] },
    { name: 'node2', subnet: 'a', pods: [{ name: 'web-2', type: 'veth' }] },
  ]);
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
    // 64 UDP flows (source ports) from web-2 to each device: the fanout hands some of them to
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
    for (const n of ['node1', 'node2']) await lab?.stopPodway(n);
    cleanup();
  }
});

test.run();
