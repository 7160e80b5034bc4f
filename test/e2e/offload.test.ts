/**
 * TCP between veth pods on two nodes with the pods' offloads left on (TSO/GSO and checksum
 * offload, as any CNI leaves them) and turned off: 10 MB each way, content checked by sha256, in
 * VXLAN, IPIP and direct modes. With offloads on, the pods' kernels hand their veths 64 KiB
 * super-frames; podway receives them whole and segments them in C (native/gso.c). An observer
 * AF_PACKET port opened here on the sending pod's host-side veth (a second reader, it takes copies)
 * shows that super-frames were really sent (or, offloads off, that none were). podway's counters
 * must show no truncated frame.
 *
 * The underlay veth between the nodes is a wire (tx offloads off, Lab's default) in the first
 * cases. The `underlay offloads on` cases leave its offloads on, as a kind-style cluster or
 * containers-as-nodes do: the sending node's kernel then hands the underlay GSO super-frames
 * (a VXLAN datagram carrying a 64 KiB inner TCP segment: SKB_GSO_UDP_TUNNEL; IPIP: SKB_GSO_IPXIP4;
 * direct: plain TCP GSO) and partial checksums, which reach the receiving node as they are. Those
 * run podway <-> podway and kernel node (programmed as Felix does, src/lab/kernel.ts) <-> podway.
 * Cases that differ only in the mode (same lab options, same podway flags, no kernel node) run
 * one after the other on one lab and its podways, the mode switched live between them; every
 * counter a case checks is taken as its difference over the case. Root and network namespaces;
 * every lab is removed after its last case, on a failure, and by guard() on any exit.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { Lab, LabNodeSpec, Mode } from '../../src/lab/lab';
import { configureKernelNode } from '../../src/lab/kernel';
import { controlRequest } from '../../src/dataplane/control-server';
import { native, FramePool } from '../../src/dataplane/native';
import { guard, teardown, isRoot, logTail, tcpTransfer } from './e2e-kit';

const SPEC: LabNodeSpec[] = [
  { name: 'node1', subnet: 'a', pods: [{ name: 'web-1', type: 'veth' }] },
  { name: 'node2', subnet: 'a', pods: [{ name: 'web-2', type: 'veth' }] },
];
const MB10 = 10 << 20;
const pool = new FramePool(256);

interface PortRow { port: string; rx: number; tx: number; drops: number; kernelDrops: number; rxSuperFrames?: number; rxSuperSegments?: number; rxMergeFrames?: number; rxMergeSegments?: number; txSuperFrames?: number; txSuperCut?: number; txSuperLost?: number; txSuperUso?: number; rxGsoFrames?: number; rxGsoBad?: number; rxGsoDropped?: number; rxCsumCompleted?: number; txErrors?: number; txGsoFrames?: number; txGsoSegments?: number; txGsoRejected?: number; txFull?: number; txBacklogGrown?: number }
interface Counters { reasons: Record<string, number>; ports: PortRow[] }

/** `now` minus `before`: each reason and each numeric field of each port row (matched by name). */
function since(now: Counters, before: Counters | undefined): Counters {
  if (!before) return now;
  const reasons: Record<string, number> = {};
  for (const [k, v] of Object.entries(now.reasons)) reasons[k] = v - (before.reasons[k] ?? 0);
  const ports = now.ports.map((p) => {
    const b = before.ports.find((x) => x.port === p.port) as unknown as Record<string, unknown> | undefined;
    const d: Record<string, unknown> = { ...p };
    if (b) for (const [k, v] of Object.entries(p)) if (typeof v === 'number' && typeof b[k] === 'number') d[k] = v - (b[k] as number);
    return d as unknown as PortRow;
  });
  return { reasons, ports };
}

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

/** `podwayNodes`: the nodes podway runs on (a kernel node's pods are not sent GRO'd frames by podway). */
async function transferBothWays(lab: Lab, label: string, offloads: boolean, portBase: number, podwayNodes = ['node1', 'node2']): Promise<void> {
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
    if (podwayNodes.includes(lab.pod(to).node)) assert.ok(gro.gsoFrames > 0, `${label}: GRO on, yet podway sent ${to} no super-frame`);
    if (offloads) assert.ok(seen.gsoFrames > 0, `${label}: offloads on, yet ${from} sent no super-frame`);
    else assert.is(seen.gsoFrames, 0, `${label}: offloads off, yet ${from} sent super-frames`);
  }
}

/** The node's IPv4 InDelivers (/proc/net/snmp in its namespace): packets its own stack took. */
function inDelivers(lab: Lab, node: string): number {
  const snmp = execFileSync('ip', ['netns', 'exec', lab.node(node).ns, 'cat', '/proc/net/snmp'], { encoding: 'utf8' }).split('\n').filter((l) => l.startsWith('Ip:'));
  const names = snmp[0].split(/\s+/);
  return Number(snmp[1].split(/\s+/)[names.indexOf('InDelivers')]);
}

/** Tunnel packets podway's table counted (and dropped: the kernel's copy) on the node, by kind. */
function tunnelTableCount(lab: Lab, node: string, kind: 'vxlan' | 'ipip'): number {
  const out = execFileSync('ip', ['netns', 'exec', lab.node(node).ns, 'nft', '-j', 'list', 'counters', 'table', 'inet', 'podway_tunnels'], { encoding: 'utf8' });
  return (JSON.parse(out) as { nftables: { counter?: { name: string; packets: number } }[] }).nftables.find((x) => x.counter?.name === kind)?.counter?.packets ?? 0;
}

async function counters(lab: Lab, node: string): Promise<Counters> {
  return (await controlRequest(lab.node(node).control, { cmd: 'counters' }, 5000)) as Counters;
}

interface Case { mode: Mode; offloads: boolean; txGso: boolean; underlayOffloads: boolean; kernelNode2: boolean; rxSuper?: boolean; rxMerge?: boolean; podSuper?: boolean }
const CASES: Case[] = [];
for (const offloads of [true, false]) for (const mode of ['vxlan', 'ipip', 'direct'] as Mode[]) CASES.push({ mode, offloads, txGso: true, underlayOffloads: false, kernelNode2: false });
// Transmit GSO on the underlay (native/uso.c) is on by default; with the pods' offloads on, VXLAN
// and direct mode run once more with it off (`--no-tx-gso`): the same transfers, no GSO sends.
for (const mode of ['vxlan', 'direct'] as Mode[]) CASES.push({ mode, offloads: true, txGso: false, underlayOffloads: false, kernelNode2: false });
for (const mode of ['vxlan', 'ipip', 'direct'] as Mode[]) CASES.push({ mode, offloads: true, txGso: true, underlayOffloads: true, kernelNode2: false });
// the kernel has no ipip module here (see interop.test.ts): VXLAN and direct only
for (const mode of ['vxlan', 'direct'] as Mode[]) CASES.push({ mode, offloads: true, txGso: true, underlayOffloads: true, kernelNode2: true });
// The kernel node's VXLAN super-frames are handed on whole to the pod (native/rxsuper.h) by
// default; `--no-rx-super` cuts them into datagrams and merges them again: both deliver the same
// 10 MB (sha256), and the counters say which path each took.
CASES.push({ mode: 'vxlan', offloads: true, txGso: true, underlayOffloads: true, kernelNode2: true, rxSuper: false });
// Between podway nodes over that underlay, a peer's UDP GSO messages of VXLAN datagrams (uso.c)
// arrive whole: one flow's in-order run becomes one SUPER descriptor (native/rxsuper.h, both
// rx-super and rx-merge on; PSH inside ends a group), or with --no-rx-merge is cut into datagrams as before.
CASES.push({ mode: 'vxlan', offloads: true, txGso: true, underlayOffloads: true, kernelNode2: false, rxMerge: false });
// A pod's own TCP super-frames are handed to the pipeline whole and cut only where they are sent
// (native/README.md, rxSuperTcp) by default; `--no-pod-super` cuts them on receive as before.
CASES.push({ mode: 'vxlan', offloads: true, txGso: true, underlayOffloads: false, kernelNode2: false, podSuper: false });

/** The lab of the cases running now: `key` their shared lab options and podway flags (null: one case only). */
let current: { key: string | null; lab: Lab } | null = null;

async function dropLab(): Promise<void> {
  const c = current;
  current = null;
  if (c) await teardown(c.lab);
}
test.after(dropLab);

let portSeq = 5300;
for (const { mode, offloads, txGso, underlayOffloads, kernelNode2, rxSuper = true, rxMerge = true, podSuper = true } of CASES) {
  const label = `${mode}, pod offloads ${offloads ? 'on' : 'off'}${txGso ? '' : ', --no-tx-gso'}${underlayOffloads ? ', underlay offloads on' : ''}${kernelNode2 ? ', node2 a kernel node' : ''}${rxSuper ? '' : ', --no-rx-super'}${rxMerge ? '' : ', --no-rx-merge'}${podSuper ? '' : ', --no-pod-super'}`;
  test(`${label}: 10 MB TCP each way between veth pods on two nodes, sha256 equal, nothing truncated`, async () => {
    if (!isRoot()) throw new Error('offload e2e tests need root (network namespaces)');
    const podway = kernelNode2 ? ['node1'] : ['node1', 'node2'];
    // the --no-tx-gso runs also ask for a 64 MiB underlay ring; the others get the default 16 MiB
    const ringMb = txGso ? 16 : 64;
    // a kernel node is programmed for its mode: its lab serves that case only
    const key = kernelNode2 ? null : JSON.stringify({ offloads, underlayOffloads, txGso, rxSuper, rxMerge, podSuper });
    if (current && (key === null || current.key !== key)) await dropLab();
    const t0 = Date.now();
    const reused = current !== null;
    if (!current) {
      const fresh = guard(new Lab(SPEC, { podOffloads: offloads, underlayOffloads }));
      fresh.mode = mode;
      current = { key, lab: fresh };
      try {
        fresh.build();
        if (kernelNode2) configureKernelNode(fresh, fresh.node('node2'), mode === 'vxlan' ? 'vxlan' : 'direct');
        // one forwarding thread: the counters below are read by port name (no [wN] tags)
        for (const n of podway) await fresh.startPodway(n, undefined, ['--workers', '1', ...(txGso ? [] : ['--no-tx-gso', '--underlay-ring-mb', String(ringMb)]), ...(rxSuper ? [] : ['--no-rx-super']), ...(rxMerge ? [] : ['--no-rx-merge']), ...(podSuper ? [] : ['--no-pod-super'])]);
      } catch (e) {
        console.log(logTail(fresh, 20));
        await dropLab();
        throw e;
      }
    }
    const lab = current.lab;
    try {
      if (reused) {
        // the same podways, switched to this case's mode (pod MTUs follow, as on a fresh lab)
        lab.setMode(mode);
        await lab.waitApplied((routes, n) => lab.nodes.every((m) => m === n || routes.some((r) => r.cidr === m.block && r.kind === mode)), 10_000);
      }
      const web1 = lab.pod('web-1');
      const features = execFileSync('ip', ['netns', 'exec', web1.ns, 'ethtool', '-k', web1.podIf], { encoding: 'utf8' });
      assert.is(/tcp-segmentation-offload: (\w+)/.exec(features)?.[1], offloads ? 'on' : 'off', 'the pod veth offload state asked for');
      const n1 = lab.node('node1');
      const underlay = execFileSync('ip', ['netns', 'exec', n1.ns, 'ethtool', '-k', 'eth0'], { encoding: 'utf8' });
      assert.is(/tx-checksumming: (\w+)/.exec(underlay)?.[1], underlayOffloads ? 'on' : 'off', 'the underlay veth offload state asked for');
      for (const n of podway) {
        // each ring is a socket:[inode] mapping of the process; the largest is the underlay's (a pod's is 1 MiB)
        const maps = readFileSync(`/proc/${lab.node(n).proc!.pid}/maps`, 'utf8').split('\n').filter((l) => l.includes('socket:['));
        const sizes = maps.map((l) => { const [a, b] = l.split(' ')[0].split('-').map((x) => parseInt(x, 16)); return b - a; });
        assert.is(Math.max(0, ...sizes), ringMb << 20, `${n}: the largest ring mapping is the ${ringMb} MiB underlay ring`);
      }
      // every counter below is this case's: its difference over the case
      const before = new Map<string, Counters>();
      const tableBefore = new Map<string, number>();
      for (const n of podway) {
        before.set(n, await counters(lab, n));
        if (mode !== 'direct') tableBefore.set(n, tunnelTableCount(lab, n, mode === 'ipip' ? 'ipip' : 'vxlan'));
      }
      const caseCounters = async (n: string) => since(await counters(lab, n), before.get(n));
      const delivered = inDelivers(lab, 'node1');
      await transferBothWays(lab, label, offloads, (portSeq += 2), podway);
      // ~7,000 tunnel packets (data one way, ACKs the other) reached each node: podway took them on its underlay port (with the
      // kernel's offload metadata) and the kernel's own copy was dropped before its stack.
      const stackTook = inDelivers(lab, 'node1') - delivered;
      let gsoSends = 0, merges = 0;
      for (const n of podway) {
        const c = await caseCounters(n);
        const ul = c.ports.find((p) => p.port.startsWith('underlay('));
        assert.ok(ul, `${n}: an underlay port row`);
        console.log(`  ${n} underlay: tx ${ul.tx}, GSO sends ${ul.txGsoFrames ?? 0} carrying ${ul.txGsoSegments ?? 0} frames, rejected ${ul.txGsoRejected ?? 0}, txErrors ${ul.txErrors ?? 0}`);
        assert.is(ul.txGsoRejected ?? 0, 0, `${n}: the kernel rejected GSO sends`);
        // podway's own batching loses nothing: a batch of pod super-frames cut into segments (IPIP:
        // one datagram each) fits the underlay's backlog, which grows (native/README.md); before,
        // its 256 frames overflowed and IPIP lost ~5% of the segments here. Any frame a full
        // transmit path does drop is counted under the drop reason tx_full, on every port.
        console.log(`  ${n} underlay: txFull ${ul.txFull ?? 0}, backlog grown ${ul.txBacklogGrown ?? 0} times; drop reason tx_full ${c.reasons.tx_full ?? 0}`);
        assert.is(ul.txFull ?? 0, 0, `${n}: frames the underlay's full backlog dropped`);
        assert.is(c.reasons.tx_full ?? 0, c.ports.reduce((a, p) => a + (p.txFull ?? 0), 0), `${n}: drop reason tx_full = the ports' txFull`);
        merges += ul.rxMergeFrames ?? 0;
        if (ul.rxMergeFrames) console.log(`  ${n} underlay: ${ul.rxMergeFrames} runs of datagrams merged on receive (${ul.rxMergeSegments} datagrams)`);
        gsoSends += ul.txGsoFrames ?? 0;
        const pods = c.ports.filter((p) => p.port.startsWith('cali')).map((p) => `${p.port}: rx ${p.rx} tx ${p.tx} drops ${p.drops} kernelDrops ${p.kernelDrops}`);
        const underlay = c.ports.find((p) => p.port.startsWith('underlay('))!;
        const tunnelSockets = c.ports.filter((p) => p.port.startsWith('vxlan(') || p.port.startsWith('ipip('));
        console.log(`  ${n} drop reasons ${JSON.stringify(c.reasons)}; ${pods.join('; ')}; underlay rx ${underlay.rx} (super-frames segmented ${underlay.rxGsoFrames ?? 0}, partial checksums completed ${underlay.rxCsumCompleted ?? 0}); tunnel sockets rx ${tunnelSockets.map((p) => p.rx).join('/')}`);
        assert.is(c.reasons.truncated ?? 0, 0, `${n}: truncated frames`);
        assert.is(c.reasons.bad_partial_csum ?? 0, 0, `${n}: partial checksums JS could not complete`);
        assert.is(underlay.rxGsoBad ?? 0, 0, `${n}: offload metadata podway found inconsistent`);
        assert.is(underlay.rxGsoDropped ?? 0, 0, `${n}: super-frames podway could not segment`);
        if (mode !== 'direct') {
          assert.equal(tunnelSockets.map((p) => p.rx), tunnelSockets.map(() => 0), `${n}: tunnel packets arrived on the sockets, not the underlay port`);
          const dropped = tunnelTableCount(lab, n, mode === 'ipip' ? 'ipip' : 'vxlan') - (tableBefore.get(n) ?? 0);
          // (the kernel counts a GSO super-datagram, which podway segments, as one packet)
          assert.ok(dropped > (underlayOffloads ? 100 : 5000), `${n}: podway's table dropped the kernel's copy of ${dropped} ${mode} packets`);
          assert.ok(underlay.rx > 5000, `${n}: the underlay port took the tunnel packets (rx ${underlay.rx})`);
        }
      }
      // A pod's TCP super-frames (its offloads on) reach the pipeline whole (SUPER descriptors) and
      // are cut where they leave: UDP GSO messages built on send (VXLAN, tx GSO on), one TCP GSO
      // message (direct), the backlog (IPIP, --no-tx-gso); with --no-pod-super, cut on receive
      {
        let podSupers = 0, uso = 0, whole = 0, cut = 0, lost = 0;
        for (const n of podway) {
          for (const p of (await caseCounters(n)).ports) {
            if (p.port.startsWith('cali')) podSupers += p.rxSuperFrames ?? 0;
            if (p.port.startsWith('underlay(')) { uso += p.txSuperUso ?? 0; whole += p.txSuperFrames ?? 0; cut += p.txSuperCut ?? 0; }
            lost += p.txSuperLost ?? 0;
          }
        }
        console.log(`  pods' super-frames handed on whole ${podSupers}; underlays: as UDP GSO ${uso}, as one TCP GSO message ${whole}, cut ${cut}; segments lost ${lost}`);
        assert.is(lost, 0, `${label}: segments of a super-frame not sent`);
        if (!offloads || !podSuper) assert.is(podSupers, 0, `${label}: no pod super-frame should be handed on whole`);
        else {
          assert.ok(podSupers > 0, `${label}: the pods' super-frames, yet none was handed on whole`);
          if (mode === 'vxlan' && txGso) assert.ok(uso > 0, `${label}: no super-frame left as UDP GSO messages built on send`);
          else if (mode === 'direct' && txGso) assert.ok(whole > 0, `${label}: no super-frame left as one TCP GSO message`);
          else assert.ok(cut > 0, `${label}: no super-frame was cut on send`);
        }
      }
      // A pod's 64 KiB super-frames, cut by podway, reach the underlay as runs of one flow (VXLAN
      // datagrams, or direct TCP segments); without offloads runs are a matter of batching
      if (!txGso || mode === 'ipip') assert.is(gsoSends, 0, `${label}: no GSO sends expected`);
      else if (offloads) assert.ok(gsoSends > 0, `${label}: transmit GSO on, yet no GSO send on the underlays`);
      // over a wire the peer's VXLAN stream arrives one datagram per segment: runs merged on receive
      if (mode === 'vxlan' && !underlayOffloads && offloads && txGso) assert.ok(merges > 0, `${label}: no run of VXLAN datagrams was merged on receive`);
      // over an underlay with offloads on, the peer's GSO messages of VXLAN datagrams arrive whole:
      // merged into SUPER descriptors without cutting (rx-merge on) or cut (--no-rx-merge)
      if (mode === 'vxlan' && underlayOffloads && !kernelNode2) {
        for (const n of podway) {
          const c = await caseCounters(n);
          const u = c.ports.find((p) => p.port.startsWith('underlay('))!;
          const pod = c.ports.find((p) => p.port.startsWith('cali'))!;
          console.log(`  ${n} underlay: GSO messages merged whole ${u.rxMergeFrames ?? 0} (${u.rxMergeSegments ?? 0} datagrams), segmented ${u.rxGsoFrames ?? 0}; pod port: sent whole ${pod.txSuperFrames ?? 0}, cut ${pod.txSuperCut ?? 0}, lost ${pod.txSuperLost ?? 0}`);
          if (rxMerge) {
            assert.ok((u.rxMergeFrames ?? 0) > 0, `${n}: the peer's GSO messages of VXLAN datagrams, yet none became one descriptor`);
            assert.ok((u.rxMergeSegments ?? 0) > 2 * (u.rxMergeFrames ?? 0), `${n}: merged messages of 2+ datagrams each`);
            assert.ok((pod.txSuperFrames ?? 0) > 0, `${n}: no merged message reached the pod as one GSO message`);
            assert.is(pod.txSuperLost ?? 0, 0, `${n}: segments of a merged message not sent`);
          } else {
            assert.is(u.rxMergeFrames ?? 0, 0, `${n}: --no-rx-merge, yet datagrams were merged`);
            assert.ok((u.rxGsoFrames ?? 0) > 0, `${n}: the peer's GSO messages, yet none was segmented`);
          }
        }
      }
      if (mode !== 'direct') assert.ok(stackTook < 1000, `node1's stack took ${stackTook} packets: the kernel's copy of the tunnel packets was not dropped`);
      // A kernel node over a veth with offloads on sends UDP-tunnel GSO super-frames: handed on
      // whole to pod web-1 (one GSO message each), or with --no-rx-super segmented in C.
      if (kernelNode2 && mode === 'vxlan') {
        const c = await caseCounters('node1');
        const u = c.ports.find((p) => p.port.startsWith('underlay('))!;
        const pod = c.ports.find((p) => p.port.startsWith('cali'))!;
        console.log(`  node1 underlay: super-frames handed on whole ${u.rxSuperFrames ?? 0} (${u.rxSuperSegments ?? 0} segments), segmented ${u.rxGsoFrames ?? 0}; web-1's port: sent whole ${pod.txSuperFrames ?? 0}, cut ${pod.txSuperCut ?? 0}, segments lost ${pod.txSuperLost ?? 0}`);
        if (rxSuper) {
          assert.ok((u.rxSuperFrames ?? 0) > 0, 'node2 (kernel) sent tunnel super-frames, yet none was handed on whole');
          assert.ok((pod.txSuperFrames ?? 0) > 0, 'no super-frame reached web-1 as one GSO message');
          assert.ok((u.rxSuperSegments ?? 0) > 2 * (u.rxSuperFrames ?? 0), 'super-frames of 2+ segments each');
          assert.is(pod.txSuperLost ?? 0, 0, 'segments of a super-frame not sent');
        } else {
          assert.ok((u.rxGsoFrames ?? 0) > 0, 'node2 (kernel) sent tunnel super-frames, yet none was segmented');
          assert.is(u.rxSuperFrames ?? 0, 0, '--no-rx-super, yet super-frames were handed on whole');
        }
      }
    } catch (e) {
      console.log(logTail(lab, 20));
      await dropLab();
      throw e;
    } finally {
      if (key === null) await dropLab();
      console.log(`  (${((Date.now() - t0) / 1000).toFixed(1)} s${reused ? ', same lab as the case before' : ''})`);
    }
  });
}

test.run();
