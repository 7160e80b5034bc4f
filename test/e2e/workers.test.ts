/**
 * `podway run --workers 2`: two forwarding threads share a node's veth pods and underlay through
 * PACKET_FANOUT and SO_REUSEPORT; many flows cross in both directions, TTL as with one worker, and
 * a single-queue TAP pod is refused with a clear message while the veth pods are served.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Lab } from '../../src/lab/lab';
import { controlRequest } from '../../src/dataplane/control-server';
import { isRoot } from '../helpers/netns';

let lab: Lab | null = null;
const cleanup = () => { lab?.destroy(); lab = null; };
process.once('exit', cleanup);

test('two workers forward veth pods across nodes; a TAP pod is refused clearly', async () => {
  assert.ok(isRoot(), 'needs root (network namespaces)');
  lab = new Lab([
    { name: 'node1', subnet: 'a', pods: [{ name: 'web-1', type: 'veth' }, { name: 'tap-1', type: 'tap' }] },
    { name: 'node2', subnet: 'a', pods: [{ name: 'web-2', type: 'veth' }] },
  ]);
  try {
    lab.build();
    await lab.startPodway('node1', 15_000, ['--workers', '2']);
    await lab.startPodway('node2', 15_000, ['--workers', '2']);
    const n1 = lab.node('node1');
    assert.ok(n1.log.some((l) => /2 forwarding workers/.test(l)), n1.log.join('\n'));
    assert.ok(n1.log.some((l) => /tap pods are single-queue devices: run one worker/.test(l)), `tap refusal logged: ${n1.log.join('\n')}`);
    // several flows (ping ids differ per process), both directions, across the tunnel
    for (let k = 0; k < 4; k++) {
      const a = lab.ping('web-1', lab.pod('web-2').ip, 3);
      assert.is(a.loss, 0, `web-1 -> web-2 round ${k}`);
      assert.is(a.ttl, 62);
      const b = lab.ping('web-2', lab.pod('web-1').ip, 3);
      assert.is(b.loss, 0, `web-2 -> web-1 round ${k}`);
    }
    const st = (await controlRequest(n1.control, { cmd: 'status' })) as { endpoints: number };
    assert.is(st.endpoints, 1, 'the veth pod is attached, the tap pod is not');
    // counters cover both workers: every port twice, tagged, and the pod's frames add up
    const c = (await controlRequest(n1.control, { cmd: 'counters' })) as { ports: { port: string; rx: number }[] };
    const pod = lab.pod('web-1').ifname;
    const w0 = c.ports.find((p) => p.port === `${pod} [w0]`);
    const w1 = c.ports.find((p) => p.port === `${pod} [w1]`);
    assert.ok(w0 && w1, `both workers list ${pod}: ${JSON.stringify(c.ports.map((p) => p.port))}`);
    assert.ok(w0!.rx + w1!.rx >= 24, `the pod's echo requests and replies were received: ${w0!.rx} + ${w1!.rx}`);
  } finally {
    for (const n of ['node1', 'node2']) await lab?.stopPodway(n);
    cleanup();
  }
});

test.run();
