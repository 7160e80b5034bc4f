/**
 * TCP between veth pods on two podway nodes with the pods' offloads left on (TSO/GSO and checksum
 * offload, as any CNI leaves them) and turned off: 10 MB each way, content checked by sha256, in
 * VXLAN, IPIP and direct modes. With offloads on, the pods' kernels hand their veths 64 KiB
 * super-frames; podway receives them whole and segments them in C (native/gso.c). An observer
 * AF_PACKET port opened here on the sending pod's host-side veth (a second reader, it takes copies)
 * shows that super-frames were really sent (or, offloads off, that none were). podway's counters
 * must show no truncated frame. Root and network namespaces; every lab is removed in `finally`.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { execFileSync } from 'node:child_process';
import { Lab, LabNodeSpec, Mode } from '../../src/lab/lab';
import { controlRequest } from '../../src/dataplane/control-server';
import { native, FramePool } from '../../src/dataplane/native';
import { guard, teardown, isRoot, logTail, tcpTransfer } from './e2e-kit';

const SPEC: LabNodeSpec[] = [
  { name: 'node1', subnet: 'a', pods: [{ name: 'web-1', type: 'veth' }] },
  { name: 'node2', subnet: 'a', pods: [{ name: 'web-2', type: 'veth' }] },
];
const MB10 = 10 << 20;
const pool = new FramePool(256);

interface PortRow { port: string; rx: number; tx: number; drops: number; kernelDrops: number; txErrors?: number; txGsoFrames?: number; txGsoSegments?: number; txGsoRejected?: number }
interface Counters { reasons: Record<string, number>; ports: PortRow[] }

/** Watch a pod's host-side veth with a vnet-header AF_PACKET port of our own, drained every 5 ms;
 * `towardsPod`: also the frames sent to the pod (podway's transmissions), not only the pod's own. */
function observe(lab: Lab, pod: string, towardsPod = false): { stop: () => { gsoFrames: number; gsoSegments: number; packets: number } } {
  const p = lab.pod(pod);
  const n = lab.node(p.node);
  const port = native.openPacket(p.ifname, { netns: `/run/netns/${n.ns}`, ringVersion: 3, ignoreOutgoing: !towardsPod });
  const timer = setInterval(() => {
    for (let k = 0; k < 64 && native.recv(port, 0, 128) > 0; k++) { /* only the counters matter */ }
  }, 5);
  return {
    stop: () => {
      clearInterval(timer);
      while (native.recv(port, 0, 128) > 0) { /* last ones */ }
      const st = native.stats(port);
      native.close(port);
      return { gsoFrames: st.rxGsoFrames ?? 0, gsoSegments: st.rxGsoSegments ?? 0, packets: st.rxPackets };
    },
  };
}

async function transferBothWays(lab: Lab, label: string, offloads: boolean, portBase: number): Promise<void> {
  for (const [from, to, port] of [['web-1', 'web-2', portBase], ['web-2', 'web-1', portBase + 1]] as const) {
    const obs = observe(lab, from);
    const toObs = observe(lab, to, true);
    let seen = { gsoFrames: 0, gsoSegments: 0, packets: 0 };
    let gro = { gsoFrames: 0, gsoSegments: 0, packets: 0 };
    let t;
    try {
      t = await tcpTransfer(lab, from, to, MB10, port);
    } finally {
      seen = obs.stop();
      gro = toObs.stop();
    }
    assert.is(t.sent.bytes, MB10, `${label} ${from} -> ${to}: sent`);
    assert.is(t.received.bytes, MB10, `${label} ${from} -> ${to}: received`);
    assert.is(t.received.sha256, t.sent.sha256, `${label} ${from} -> ${to}: sha256`);
    console.log(`  ${label} ${from} -> ${to}: 10 MB in ${t.ms} ms; ${from}'s veth carried ${seen.gsoFrames} super-frames (${seen.gsoSegments} segments) of ${seen.packets} frames`);
    console.log(`  ${label} ${to}'s veth: podway sent it ${gro.gsoFrames} coalesced super-frames (${gro.gsoSegments} segments) of ${gro.packets} frames (GRO)`);
    // the pod's only super-frames on its veth are podway's: it sends ACKs back, nothing to segment
    assert.ok(gro.gsoFrames > 0, `${label}: GRO on, yet podway sent ${to} no super-frame`);
    if (offloads) assert.ok(seen.gsoFrames > 0, `${label}: offloads on, yet ${from} sent no super-frame`);
    else assert.is(seen.gsoFrames, 0, `${label}: offloads off, yet ${from} sent super-frames`);
  }
}

async function counters(lab: Lab, node: string): Promise<Counters> {
  return (await controlRequest(lab.node(node).control, { cmd: 'counters' }, 5000)) as Counters;
}

let portSeq = 5300;
// Transmit GSO on the underlay (native/uso.c) is on by default; with the pods' offloads on, VXLAN
// and direct mode run once more with it off (`--no-tx-gso`): the same transfers, no GSO sends.
const cases: Array<{ offloads: boolean; mode: Mode; txGso: boolean }> = [];
for (const offloads of [true, false]) for (const mode of ['vxlan', 'ipip', 'direct'] as Mode[]) cases.push({ offloads, mode, txGso: true });
cases.push({ offloads: true, mode: 'vxlan', txGso: false }, { offloads: true, mode: 'direct', txGso: false });
for (const { offloads, mode, txGso } of cases) {
  {
    const label = `${mode}, pod offloads ${offloads ? 'on' : 'off'}${txGso ? '' : ', --no-tx-gso'}`;
    test(`${label}: 10 MB TCP each way between veth pods on two nodes, sha256 equal, nothing truncated`, async () => {
      if (!isRoot()) throw new Error('offload e2e tests need root (network namespaces)');
      const lab = guard(new Lab(SPEC, { podOffloads: offloads }));
      lab.mode = mode;
      const t0 = Date.now();
      try {
        lab.build();
        const web1 = lab.pod('web-1');
        const features = execFileSync('ip', ['netns', 'exec', web1.ns, 'ethtool', '-k', web1.podIf], { encoding: 'utf8' });
        assert.is(/tcp-segmentation-offload: (\w+)/.exec(features)?.[1], offloads ? 'on' : 'off', 'the pod veth offload state asked for');
        for (const n of ['node1', 'node2']) await lab.startPodway(n, undefined, txGso ? [] : ['--no-tx-gso']);
        await transferBothWays(lab, label, offloads, (portSeq += 2));
        let gsoSends = 0;
        for (const n of ['node1', 'node2']) {
          const c = await counters(lab, n);
          const ul = c.ports.find((p) => p.port.startsWith('underlay('));
          assert.ok(ul, `${n}: an underlay port row`);
          console.log(`  ${n} underlay: tx ${ul.tx}, GSO sends ${ul.txGsoFrames ?? 0} carrying ${ul.txGsoSegments ?? 0} frames, rejected ${ul.txGsoRejected ?? 0}, txErrors ${ul.txErrors ?? 0}`);
          assert.is(ul.txGsoRejected ?? 0, 0, `${n}: the kernel rejected GSO sends`);
          gsoSends += ul.txGsoFrames ?? 0;
          const pods = c.ports.filter((p) => p.port.startsWith('cali')).map((p) => `${p.port}: rx ${p.rx} tx ${p.tx} drops ${p.drops} kernelDrops ${p.kernelDrops}`);
          console.log(`  ${n} drop reasons ${JSON.stringify(c.reasons)}; ${pods.join('; ')}`);
          assert.is(c.reasons.truncated ?? 0, 0, `${n}: truncated frames`);
          assert.is(c.reasons.bad_partial_csum ?? 0, 0, `${n}: partial checksums JS could not complete`);
        }
        // A pod's 64 KiB super-frames, cut by podway, reach the underlay as runs of one flow (VXLAN
        // datagrams, or direct TCP segments); without offloads runs are a matter of batching
        if (!txGso || mode === 'ipip') assert.is(gsoSends, 0, `${label}: no GSO sends expected`);
        else if (offloads) assert.ok(gsoSends > 0, `${label}: transmit GSO on, yet no GSO send on the underlays`);
      } catch (e) {
        console.log(logTail(lab, 20));
        throw e;
      } finally {
        await teardown(lab);
        console.log(`  (${((Date.now() - t0) / 1000).toFixed(1)} s)`);
      }
    });
  }
}

test.run();
