// The engine's decisions around its ports, in-process on a MemoryIO (which records every open and
// close), in a network namespace of its own (runPrivateNetns): a veth underlay holds the node's
// addresses, veths stand for the pods' host ends, and a host-managing engine runs the real nft on the
// namespace's ruleset. Covered: the ring check (a wedged ring reported, a ring that could not be
// set up again: pod port reattached, underlay port reopened), a tunnel table rewrite nft refuses
// (no IPv6 VXLAN socket on an address the table does not name), a model whose underlay port cannot
// be opened after its table went in (table and flags put back), and workers told where tunnels
// are read with every model (worker-model.ts).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawn, ChildProcess } from 'node:child_process';
import { runPrivateNetns, sh, waitFor } from '../helpers/netns';
import { Engine, type TunnelRx } from '../../src/dataplane/engine';
import { MemoryIO } from '../../src/dataplane/memory-io';
import { createLogger } from '../../src/observe/log';
import { underlayFilter } from '../../src/dataplane/host';
import { tunnelRxProgram, TUNNEL_TABLE } from '../../src/dataplane/nft-tunnels';
import { workerModelMessage, applyWorkerModel } from '../../src/dataplane/worker-model';
import { ownedTunnelTableInput } from '../helpers/nft-owner';
import { PodwayMetrics } from '../../src/observe/metrics';
import { DataplaneCollector } from '../../src/observe/dataplane-metrics';
import { mergeSnapshots } from '../../src/observe/snapshot';
import { parseMetrics, valueOf } from '../observe/prom-text';
import { ip6Bytes } from '../../src/control/route-calc6';
import { parseIpv4, parseIpv6Bytes, parseMac } from '../../src/packet';
import { clusterModel, frame, NODE2_MAC, CLUSTER_YAML } from './helpers';
import { dualStackYaml, frame6, B6 } from './helpers6';
import { staleEndpoints, staleEndpointLine } from '../../src/observe/stale-endpoints';

runPrivateNetns();

const UL = 'ul0';
const engines: Engine[] = [];
const children: ChildProcess[] = [];

test.before(() => {
  sh('ip', ['link', 'set', 'lo', 'up']);
  // veths (this kernel may have no dummy driver); their peers stay down and unused
  sh('ip', ['link', 'add', UL, 'type', 'veth', 'peer', 'name', `${UL}p`]);
  for (const a of ['10.99.0.1/24', '10.99.0.11/24']) sh('ip', ['addr', 'add', a, 'dev', UL]);
  sh('ip', ['-6', 'addr', 'add', 'fd99::1/64', 'dev', UL, 'nodad']);
  sh('ip', ['link', 'set', UL, 'up']);
  for (const pod of ['caliA', 'caliB']) sh('ip', ['link', 'add', pod, 'type', 'veth', 'peer', 'name', `${pod}p`]);
  // the host port a host-managing engine brings up (MemoryIO opens no device)
  sh('ip', ['tuntap', 'add', 'podway0', 'mode', 'tun']);
});

test.after(async () => {
  for (const e of engines) e.stop();
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  // the spawner's helper goes with the host programmer's stop (asynchronous)
  await new Promise((r) => setTimeout(r, 200));
});

interface Rig { engine: Engine; io: MemoryIO; lines: string[]; told: TunnelRx[] }

/** `tableRetryMs`: the refused tunnel table's retry timer (default here: long enough not to fire
 * in a test, which then sees only what models do). */
function rig(opts: { manageHost?: boolean; worker?: { index: number; count: number }; tableRetryMs?: number } = {}): Rig {
  const io = new MemoryIO();
  const lines: string[] = [];
  const told: TunnelRx[] = [];
  const log = createLogger({ level: 'info', write: (l) => void lines.push(l) });
  const engine = new Engine({ io, manageHost: opts.manageHost ?? false, ringCheckMs: 10, log, worker: opts.worker, tableRetryMs: opts.tableRetryMs ?? 600_000, onTunnelRx: (rx) => void told.push(rx) });
  engines.push(engine);
  return { engine, io, lines, told };
}

function stopRig(r: Rig): void {
  r.engine.stop();
  engines.splice(engines.indexOf(r.engine), 1);
}

/** Where tunnels are read, without the IPv4 address the ports follow (asserted on its own). */
const flags = ({ onUnderlay, ip6 }: TunnelRx) => ({ onUnderlay, ip6 });
/** The open port by this name (-1: none). */
const portOf = (r: Rig, name: string) => r.io.portNamed(name);

/** IPv6 VXLAN sockets open now, by address. */
function vxlan6Sockets(r: Rig): string[] {
  const open = new Map<number, string>();
  for (const e of r.io.events) {
    if (e.op === 'close') open.delete(e.port);
    else if (e.kind === 'udp' && e.opts.addr6) open.set(e.port, [...e.opts.addr6].join(','));
  }
  return [...open.values()];
}
const addr6 = (ip: string) => [...ip6Bytes(ip)].join(',');

/** The open underlay port's options. */
function underlayOpts(r: Rig) {
  const p = portOf(r, UL);
  assert.ok(p >= 0, 'an underlay port is open');
  return [...r.io.events].reverse().find((e) => e.op === 'open' && e.port === p)!.opts;
}

/** A metrics scrape of these engines' snapshots, merged as run.ts merges its workers'. */
async function scrape(es: Engine[]) {
  const metrics = new PodwayMetrics({ processMetrics: false });
  metrics.add(new DataplaneCollector(async () => mergeSnapshots(es.map((e) => e.metricsSnapshot()))));
  return parseMetrics(await metrics.scrape());
}

function sameBytes(a: Uint8Array | undefined, b: Uint8Array): boolean {
  return a !== undefined && a.length === b.length && a.every((x, i) => x === b[i]);
}

/** Pod A's frame to pod B forwarded out of B's port now. */
function forwardsAtoB(r: Rig): boolean {
  const a = portOf(r, 'caliA');
  const b = portOf(r, 'caliB');
  r.io.take(b);
  r.io.inject(a, frame('a_to_b'));
  r.io.pump();
  return r.io.take(b).length === 1;
}

const dualModel = (ip6 = 'fd99::1', ip4 = '10.99.0.1') => clusterModel('node1', dualStackYaml().replace('ipv4Address: 10.99.0.1/24, ipv6Address: fd99::1/64', `ipv4Address: ${ip4}/24, ipv6Address: ${ip6}/64`));

/** Hold `table inet podway_tunnels` with nft's owner flag (a copy of what podway loaded for `ip6`),
 * so that any other nft process (podway's) is refused with EPERM; it goes when `nft -i` exits. */
async function holdTunnelTable(nodeIp: string, ip6: string): Promise<ChildProcess> {
  const nft = spawn('nft', ['-i'], { stdio: ['pipe', 'ignore', 'pipe'] });
  children.push(nft);
  let err = '';
  nft.stderr!.on('data', (d) => (err += String(d)));
  nft.stdin!.write(ownedTunnelTableInput(tunnelRxProgram(UL, nodeIp, 4789, ip6)));
  const held = await waitFor(() => /flags owner/.test(sh('nft', ['list', 'table', 'inet', TUNNEL_TABLE], { allowFail: true })), 5000, 20);
  assert.ok(held, `nft -i holds the table: ${err}`);
  return nft;
}

async function release(nft: ChildProcess): Promise<void> {
  nft.stdin!.end();
  await waitFor(() => nft.exitCode !== null || nft.signalCode !== null, 5000, 10);
  if (nft.exitCode === null && nft.signalCode === null) nft.kill('SIGKILL');
}

// ---- the start's host reads ----------------------------------------------------------------------

test('the first apply on start reads whose `ip addr` predates the node address (it came since, DHCP at boot): the interfaces read again, the underlay found, forwarding', () => {
  const r = rig();
  try {
    // as readHostAtStart read it before the address was added: ul0 without 10.99.0.1
    const stale = JSON.stringify([{ ifname: 'lo', mtu: 65536, address: '00:00:00:00:00:00', addr_info: [{ local: '127.0.0.1' }] }, { ifname: UL, mtu: 1500, address: '02:00:00:00:00:01', addr_info: [] }]);
    r.engine.useStartReads({ at: performance.now(), links: stale, kernelRoutes: [], podRoutes: [], learned: [], nftTables: null, local: { v4: null, v6: null } });
    r.engine.apply(clusterModel());
    assert.is(r.engine.status().underlay?.name, UL);
    assert.ok(forwardsAtoB(r), 'forwards');
  } finally {
    stopRig(r);
  }
});

// ---- the kernel routes when no caller gives them -------------------------------------------------

/** The underlay neighbours the engine resolves once pod A has sent to node2's pod. */
function neighborsForRv(r: Rig): string[] {
  r.io.inject(portOf(r, 'caliA'), frame('a_to_rv'));
  r.io.pump();
  return r.engine.status().neighbors.entries.map((e) => e.ip);
}

test('no kernel routes given (ownKernelRoutes): the engine\'s own KernelRoutes; `ip` failing at the first apply is said, every node on-link until a read works, tried again on its own, the model applied again with the gateway it reads', async () => {
  // node2 (10.99.0.2) behind 10.99.0.3, though on the underlay's subnet: only the table says so
  sh('ip', ['route', 'add', '10.99.0.2/32', 'via', '10.99.0.3', 'dev', UL]);
  const links = sh('ip', ['-j', 'addr', 'show']);
  const path = process.env.PATH;
  const r = rig();
  try {
    // no `ip` on the PATH (a real way for the read to fail); the interfaces as read before
    process.env.PATH = `/nonexistent-pw-mend23-${process.pid}`;
    r.engine.useStartReads({ at: performance.now(), links, kernelRoutes: [], podRoutes: [], learned: [], nftTables: null, local: { v4: null, v6: null } });
    r.engine.apply(clusterModel());
    const failing = r.engine.status().ownKernelRoutes;
    assert.ok(failing?.failing && failing.readAt === null, JSON.stringify(failing));
    assert.match(r.lines.join('\n'), /kernel routes unreadable: ip -j -4 route show table main .*no table read yet: every other node is taken as on-link until one is; trying again in 1 s/);
    assert.equal(neighborsForRv(r), ['10.99.0.2'], 'on-link while no table is read');
    process.env.PATH = path;
    assert.ok(await waitFor(() => r.engine.status().ownKernelRoutes?.failing === null, 5000), JSON.stringify(r.engine.status().ownKernelRoutes));
    assert.match(r.lines.join('\n'), /kernel routes read again \(\d+ routes\) after 1 failed read since /);
    assert.ok(await waitFor(() => neighborsForRv(r).includes('10.99.0.3'), 3000), `the gateway once the table is read (the model applied again): ${neighborsForRv(r)}`);
    // a caller's table from then on: the engine's own is stopped
    r.engine.apply(clusterModel(), []);
    assert.is(r.engine.status().ownKernelRoutes, null);
  } finally {
    process.env.PATH = path;
    sh('ip', ['route', 'del', '10.99.0.2/32']);
    stopRig(r);
  }
});

// ---- the ring check ----------------------------------------------------------------------------

test('a wedged ring set up again: logged and counted (rxRingStalls), the port stays and keeps forwarding, checks go on', async () => {
  const r = rig();
  r.engine.apply(clusterModel());
  const b = portOf(r, 'caliB');
  assert.ok(forwardsAtoB(r), 'forwards before');
  r.io.failRing(b, 'stall');
  const checks = () => r.io.ringChecks.get(b) ?? 0;
  const at = checks();
  assert.ok(await waitFor(() => checks() >= at + 3, 5000), 'checked again after the stall');
  assert.ok(r.lines.some((l) => /caliB: the kernel stopped filling its receive ring/.test(l)), r.lines.join('\n'));
  assert.is(portOf(r, 'caliB'), b, 'same port');
  assert.not.ok(r.io.events.some((e) => e.op === 'close'), 'nothing closed');
  const c = r.engine.counters().ports.find((p) => p.port === 'caliB');
  assert.is(c?.rxRingStalls, 1, JSON.stringify(c));
  assert.equal(r.engine.counters().failures, { tunnelTable: 0, ringReopened: 0, ringReopenFailed: 0, followedBack: 0, followBackFailed: 0 });
  assert.ok(forwardsAtoB(r), 'forwards after');
  stopRig(r);
});

test('a pod ring that could not be set up again: its port closed, the interface attached again, forwarding back, counted', async () => {
  const r = rig();
  r.engine.apply(clusterModel());
  const b = portOf(r, 'caliB');
  const n0 = r.io.events.length;
  r.io.failRing(b, 'ENOMEM');
  const reopened = () => r.io.events.slice(n0).findIndex((e) => e.op === 'open' && e.name === 'caliB');
  assert.ok(await waitFor(() => reopened() >= 0, 5000), `caliB reopened: ${JSON.stringify(r.io.events.slice(n0))}`);
  const closed = r.io.events.slice(n0).findIndex((e) => e.op === 'close' && e.port === b);
  assert.ok(closed >= 0 && closed < reopened(), 'the failed port closed, then the interface attached again');
  assert.ok(r.io.isPolled(portOf(r, 'caliB')), 'the new port is polled');
  assert.ok(r.lines.some((l) => /caliB: its receive ring could not be set up again .*ENOMEM.*attached again/.test(l)), r.lines.join('\n'));
  assert.is(r.engine.counters().failures.ringReopened, 1);
  assert.is(r.engine.endpointList().filter((e) => e.interface === 'caliB').length, 1);
  assert.ok(forwardsAtoB(r), 'pod A reaches pod B through the new port');
  // the failed port is gone: no more checks of it, no second reattach
  await new Promise((res) => setTimeout(res, 50));
  assert.is(r.io.events.slice(n0).filter((e) => e.op === 'open' && e.name === 'caliB').length, 1, 'reattached once');
  stopRig(r);
});

/** caliB attached again under the same endpoint: its ring could not be set up again, so the engine
 * closes its port and opens the interface anew (as for a veth deleted and made again). The new port. */
async function reattachB(r: Rig): Promise<number> {
  const n0 = r.io.events.length;
  r.io.failRing(portOf(r, 'caliB'), 'ENOMEM');
  assert.ok(await waitFor(() => r.io.events.slice(n0).some((e) => e.op === 'open' && e.name === 'caliB'), 5000), 'caliB attached again');
  return portOf(r, 'caliB');
}

const macAt = (b: Uint8Array, off: number) => [...b.subarray(off, off + 6)].map((x) => x.toString(16).padStart(2, '0')).join(':');
const STATED_B = '2a:5f:10:00:01:02';
const FRESH_B = '02:00:00:00:00:99';

/** ARP requests and Neighbor Solicitations among frames sent to a pod. */
const arpRequests = (fs: { bytes: Uint8Array }[]) => fs.filter((f) => f.bytes[12] === 0x08 && f.bytes[13] === 0x06 && f.bytes[21] === 1);
const solicitations = (fs: { bytes: Uint8Array }[]) => fs.filter((f) => f.bytes[12] === 0x86 && f.bytes[13] === 0xdd && f.bytes[20] === 58 && f.bytes[54] === 135);

/** Pod A's IPv6 packet to B as it leaves B's port: its destination MAC. */
function v6ToB(r: Rig, b: number): string {
  r.io.take(b);
  r.io.inject(portOf(r, 'caliA'), frame6('v6pipe_a_to_b'));
  r.io.pump();
  const sent = r.io.take(b);
  const out = sent.filter((f) => f.bytes[12] === 0x86 && f.bytes[13] === 0xdd && solicitations([f]).length === 0);
  assert.is(out.length, 1, `A's IPv6 packet delivered to B: ${sent.length} frame(s), ${JSON.stringify(r.engine.counters().reasons)}`);
  return macAt(out[0].bytes, 0);
}

test('a veth pod with a stated MAC attached again under the same endpoint is asked at once: an ARP request (IPv4, dual stack), a Neighbor Solicitation from the gateway\'s link-local (IPv6 only); its answer\'s MAC then carries its IPv6 traffic', async () => {
  // IPv6 only: before, nothing was sent and B's IPv6 traffic went to the stale stated MAC until B spoke
  const v6only = clusterModel('node1', dualStackYaml().replace(`ipNetworks: [10.244.0.2/32, ${B6}/128]`, `ipNetworks: [${B6}/128]`));
  assert.equal(v6only.endpoints.find((e) => e.interfaceName === 'caliB')?.ips, [], 'caliB is IPv6 only');
  let r = rig();
  try {
    r.engine.apply(v6only);
    assert.is(solicitations(r.io.take(portOf(r, 'caliB'))).length, 0, 'not asked at the first attach');
    const b = await reattachB(r);
    const sent = r.io.take(b);
    assert.is(arpRequests(sent).length, 0);
    const ns = solicitations(sent);
    assert.is(ns.length, 1, `one Neighbor Solicitation on re-attach: ${sent.length} frame(s)`);
    const f = ns[0].bytes;
    assert.is(macAt(f, 0), '33:33:ff:00:00:02', 'to B\'s solicited-node group');
    assert.is(macAt(f, 6), 'ee:ee:ee:ee:ee:ee');
    assert.equal([...f.subarray(22, 38)], [...ip6Bytes('fe80::ecee:eeff:feee:eeee')], 'from the gateway\'s link-local');
    assert.equal([...f.subarray(62, 78)], [...ip6Bytes(B6)], 'for B\'s IPv6 address');
    assert.is(v6ToB(r, b), STATED_B, 'the stated MAC until B answers');
    // B's answer (any frame of B's: the NA is one) with its new MAC
    const from = frame6('v6pipe_b_to_a');
    from.set(parseMac(FRESH_B), 6);
    r.io.inject(b, from);
    r.io.pump();
    assert.is(v6ToB(r, b), FRESH_B, 'the answer\'s MAC');
  } finally {
    stopRig(r);
  }
  // IPv4 and dual stack: an ARP request for B's IPv4 address, whose answer serves IPv6 too
  for (const model of [clusterModel(), dualModel()]) {
    r = rig();
    try {
      r.engine.apply(model);
      assert.is(arpRequests(r.io.take(portOf(r, 'caliB'))).length, 0, 'not asked at the first attach');
      const b = await reattachB(r);
      const sent = r.io.take(b);
      assert.is(solicitations(sent).length, 0);
      const arp = arpRequests(sent);
      assert.is(arp.length, 1, `one ARP request on re-attach: ${sent.length} frame(s)`);
      assert.equal([...arp[0].bytes.subarray(28, 32)], [169, 254, 1, 1], 'from the gateway');
      assert.equal([...arp[0].bytes.subarray(38, 42)], [10, 244, 0, 2], 'for B\'s IPv4 address');
      if (model.v6.endpoints.length === 0) continue;
      const reply = frame('arp_b_gw');
      reply.set(parseMac(FRESH_B), 6);
      reply.set(parseMac(FRESH_B), 22);
      r.io.inject(b, reply);
      r.io.pump();
      assert.is(v6ToB(r, b), FRESH_B, 'dual stack: B\'s ARP frame\'s MAC carries its IPv6 traffic');
    } finally {
      stopRig(r);
    }
  }
});

test('an underlay ring that could not be set up again: reopened (new port before the old one closes), a failed reopen tried again on the next check', async () => {
  const r = rig();
  r.engine.apply(clusterModel());
  const u = portOf(r, UL);
  const bpf = underlayOpts(r).bpf!;
  // a frame the old port sends: its count goes on in the new port's series (no counter reset)
  r.io.inject(portOf(r, 'caliA'), frame('a_to_rv'));
  r.io.pump();
  const sentBefore = valueOf(await scrape([r.engine]), 'podway_port_tx_packets_total', { port: `underlay(${UL})` });
  assert.ok(sentBefore >= 1, `the old underlay port sent (an ARP request at least): ${sentBefore}`);
  const n0 = r.io.events.length;
  r.io.failOpen(UL, 'EMFILE');
  r.io.failRing(u, 'EIO');
  assert.ok(await waitFor(() => r.engine.counters().failures.ringReopenFailed >= 1, 5000), 'first reopen failed');
  assert.is(portOf(r, UL), u, 'the old port stays until a new one is open');
  assert.ok(r.lines.some((l) => /reopening the underlay port failed: open ul0: EMFILE; it receives nothing, tried again on the next check/.test(l)), r.lines.join('\n'));
  assert.ok(await waitFor(() => portOf(r, UL) !== u && portOf(r, UL) >= 0, 5000), 'reopened on a later check');
  const ev = r.io.events.slice(n0);
  const opened = ev.findIndex((e) => e.op === 'open' && e.name === UL);
  const closed = ev.findIndex((e) => e.op === 'close' && e.port === u);
  assert.ok(opened >= 0 && closed > opened, `new port first: ${JSON.stringify(ev.map((e) => `${e.op} ${e.name}`))}`);
  assert.ok(sameBytes(underlayOpts(r).bpf, bpf), 'same filter');
  assert.equal(r.engine.counters().failures, { tunnelTable: 0, ringReopened: 1, ringReopenFailed: 1, followedBack: 0, followBackFailed: 0 });
  const m = await scrape([r.engine]);
  assert.is(valueOf(m, 'podway_engine_failures_total', { kind: 'ring_reopened' }), 1);
  assert.is(valueOf(m, 'podway_engine_failures_total', { kind: 'ring_reopen_failed' }), 1);
  assert.is(valueOf(m, 'podway_engine_failures_total', { kind: 'tunnel_table' }), 0);
  assert.ok(r.io.isPolled(portOf(r, UL)));
  assert.equal(r.engine.readiness().problems, []);
  // the new port receives (node2's ARP reply, learned) and sends (pod A's frame to node2's pod)
  const mac = parseMac(r.engine.status().underlay!.mac);
  const reply = frame('arp_a_gw_reply');
  reply.set(mac, 0);
  reply.set(parseMac(NODE2_MAC), 6);
  reply.set(parseMac(NODE2_MAC), 22);
  reply.set([10, 99, 0, 2], 28);
  reply.set(mac, 32);
  reply.set([10, 99, 0, 1], 38);
  r.io.inject(portOf(r, UL), reply);
  r.io.pump();
  assert.ok(r.engine.routes().some((x) => x.via === '10.99.0.2' && x.nextHopMac === NODE2_MAC), JSON.stringify(r.engine.routes()));
  r.io.take(portOf(r, UL));
  r.io.inject(portOf(r, 'caliA'), frame('a_to_rv'));
  r.io.pump();
  assert.is(r.io.take(portOf(r, UL)).length, 1, 'the new underlay port sends');
  assert.is(valueOf(await scrape([r.engine]), 'podway_port_tx_packets_total', { port: `underlay(${UL})` }), sentBefore + 1, 'the series goes on from the old port\'s count');
  stopRig(r);
});

// ---- pod links -------------------------------------------------------------------------------

test('a veth pod set down and up again, sending nothing: its node route and neighbour are back as soon as the link is up (not on the programmer\'s 10 s retry), its port polled again', async () => {
  const route = () => sh('ip', ['-4', 'route', 'show', '10.244.0.1/32']);
  const neigh = () => sh('ip', ['neigh', 'show', '10.244.0.1', 'dev', 'caliA']);
  const programmed = () => /dev caliA/.test(route()) && /PERMANENT/.test(neigh());
  sh('ip', ['link', 'set', 'caliA', 'up']);
  const r = rig({ manageHost: true });
  try {
    r.engine.apply(clusterModel());
    assert.ok(await waitFor(programmed, 10_000, 20), `route and neighbour programmed: ${route()} / ${neigh()}`);
    const a = portOf(r, 'caliA');
    sh('ip', ['link', 'set', 'caliA', 'down']);
    assert.not.ok(/dev caliA/.test(route()), 'the kernel removed the route with the link');
    // what the packet socket reports when its device goes down (NETDEV_DOWN: sk_err ENETDOWN)
    const failed = () => r.engine.status().hostProgramming!.failures;
    const f0 = failed();
    r.io.failNext(a, 'recv', 'ENETDOWN');
    r.io.pump();
    // the programmer tried while the link was down (refused: retried later)
    assert.ok(await waitFor(() => failed() > f0, 5000, 10), 'a run while down failed');
    assert.not.ok(programmed());
    sh('ip', ['link', 'set', 'caliA', 'up']);
    // the pod sends nothing: only the link coming up can bring the route back before the retry
    assert.ok(await waitFor(programmed, 5000, 20), `route and neighbour back with the link: ${route()} / ${neigh()} ${r.lines.join('\n')} ${JSON.stringify(r.engine.status().hostProgramming)}`);
    assert.ok(r.io.isPolled(a), 'the port is polled again');
    assert.ok(r.lines.some((l) => /caliA.*up again/.test(l)), r.lines.join('\n'));
    assert.ok(forwardsAtoB(r), 'forwards');
  } finally {
    stopRig(r);
    sh('ip', ['link', 'set', 'caliA', 'down']);
  }
});

test('a pod interface missing: `routes` lists its /32 as withheld with status\'s reason, `endpoints` lists it as waiting; status forgets the sysctls of a deleted pod veth', async () => {
  sh('ip', ['link', 'add', 'caliW', 'type', 'veth', 'peer', 'name', 'caliWp']);
  const r = rig({ manageHost: true });
  try {
    r.engine.apply(clusterModel('node1', CLUSTER_YAML.replace('interfaceName: caliA', 'interfaceName: caliW').replace('interfaceName: caliB', 'interfaceName: caliZ')));
    const routes = r.engine.routes();
    const row = (cidr: string) => routes.find((x) => x.cidr === cidr) as { kind: string; withheld?: string } | undefined;
    assert.is(row('10.244.0.2/32')?.kind, 'withheld', JSON.stringify(routes));
    assert.match(row('10.244.0.2/32')?.withheld ?? '', /interface caliZ not attached: interface caliZ of workload .* does not exist/);
    assert.is(row('10.244.0.1/32')?.kind, 'local');
    assert.is(row('10.244.0.1/32')?.withheld, undefined);
    // the same route as status's withheld list
    assert.ok(r.engine.status().withheld.some((w) => w.cidr === '10.244.0.2/32' && /caliZ/.test(w.reason)));
    const eps = r.engine.endpointList();
    const z = eps.find((e) => e.interface === 'caliZ');
    assert.ok(z, JSON.stringify(eps));
    assert.is(z!.state, 'waiting: interface missing');
    assert.equal(z!.networks, ['10.244.0.2/32']);
    assert.is(eps.find((e) => e.interface === 'caliW')?.state, 'attached');
    // since when it waits: kept across applies and retries (a pod removed while no DEL could run
    // waits forever: status names it after --endpoint-missing-after, with the cleanup)
    const [w] = r.engine.waitingEndpoints();
    assert.is(w.interface, 'caliZ');
    assert.ok(w.missing);
    const since = Date.parse(w.since);
    assert.ok(Math.abs(Date.now() - since) < 60_000, w.since);
    assert.is((z as { since?: string }).since, w.since);
    await new Promise((res) => setTimeout(res, 20));
    r.engine.apply(clusterModel('node1', CLUSTER_YAML.replace('interfaceName: caliA', 'interfaceName: caliW').replace('interfaceName: caliB', 'interfaceName: caliZ')));
    assert.is(r.engine.waitingEndpoints()[0].since, w.since, 'the wait goes on from its start');
    assert.equal(staleEndpoints(r.engine.waitingEndpoints(), since + 299_000, 300_000), [], 'not before 5 min');
    const [stale] = staleEndpoints(r.engine.waitingEndpoints(), since + 301_000, 300_000);
    assert.is(stale.waitingSeconds, 301);
    const [ns, name] = w.workload.split('/');
    assert.is(stale.cleanup, `podway delete workloadendpoint ${name} -n ${ns} && podway ipam release --ip 10.244.0.2 --grace-period 0`);
    assert.match(staleEndpointLine(stale), `endpoint ${w.workload}: interface caliZ missing since ${w.since} (5 min); if its pod is gone`);
    // podway turned accept_ra off on the pod's veth (the kernel's default is on): noted, until it is gone
    const ra = () => r.engine.status().hostChanges.filter((n) => /^net\.ipv6\.conf\.caliW\.accept_ra=0/.test(n));
    assert.is(ra().length, 1, JSON.stringify(r.engine.status().hostChanges));
    sh('ip', ['link', 'del', 'caliW']);
    assert.is(ra().length, 0, 'no longer listed once the interface is gone');
  } finally {
    stopRig(r);
    sh('ip', ['link', 'del', 'caliW'], { allowFail: true });
  }
});

test('pod veths coming and going with nobody asking status: the notes of their sysctls stay bounded (pruned as they double), the live veth\'s kept', async () => {
  // A long-running node attaches a pod veth per pod; each attach notes its sysctls (accept_ra,
  // forwarding). Before, only status() pruned the notes of gone veths: with nobody asking, they
  // grew by two per pod for the life of the process (found by bench/soak/churn.ts).
  const r = rig({ manageHost: true });
  const cycles = 60;
  let name = '';
  let grew = 0;
  try {
    for (let i = 0; i < cycles; i++) {
      name = `caliN${i}`;
      sh('ip', ['link', 'add', name, 'type', 'veth', 'peer', 'name', `${name}p`]);
      r.engine.apply(clusterModel('node1', CLUSTER_YAML.replace('interfaceName: caliA', `interfaceName: ${name}`)));
      const mine = r.engine.notes.filter((n) => n.startsWith(`net.ipv6.conf.${name}.`));
      if (i === 0) grew = mine.length;
      assert.ok(mine.length >= 1, `attaching ${name} noted its sysctls: ${JSON.stringify(r.engine.notes)}`);
      if (i < cycles - 1) sh('ip', ['link', 'del', name]);
    }
    // without pruning: every veth's notes (2 each here), 120; pruned when they double (+64 slack)
    const notes = r.engine.notes.length;
    const gone = r.engine.notes.filter((n) => /^net\.ipv6\.conf\.caliN\d+\./.test(n) && !n.startsWith(`net.ipv6.conf.${name}.`)).length;
    assert.ok(grew >= 2, `each attach notes accept_ra and forwarding (${grew})`);
    assert.ok(notes <= 80, `${notes} notes after ${cycles} pod veths came and went (${gone} of gone veths): ${JSON.stringify(r.engine.notes.slice(0, 6))} ...`);
    assert.ok(r.engine.notes.some((n) => n.startsWith(`net.ipv6.conf.${name}.accept_ra=0`)), 'the live veth\'s notes kept');
    assert.ok(r.engine.status().hostChanges.some((n) => n.startsWith(`net.ipv6.conf.${name}.accept_ra=0`)), 'and listed by status');
    assert.ok(!r.engine.status().hostChanges.some((n) => n.startsWith('net.ipv6.conf.caliN0.')), 'a gone veth\'s not listed');
  } finally {
    stopRig(r);
    sh('ip', ['link', 'del', name], { allowFail: true });
  }
});

// ---- the tunnel table and the IPv6 VXLAN socket ------------------------------------------------

test('nft refusing the rewrite for a new node IPv6 address: no IPv6 VXLAN socket on it (datagrams read once, on the underlay port), counted; the next rewrite opens it', async () => {
  const r = rig({ manageHost: true });
  r.engine.apply(dualModel());
  assert.equal(flags(r.engine.tunnelRx()), { onUnderlay: true, ip6: 'fd99::1' });
  assert.equal(vxlan6Sockets(r), [addr6('fd99::1')], 'a socket on the address the table names');
  const nft = await holdTunnelTable('10.99.0.1', 'fd99::1');
  r.engine.apply(dualModel('fd99::a1'));
  assert.equal(vxlan6Sockets(r), [], 'no socket: the kernel would hand it every datagram the underlay port takes');
  assert.equal(flags(r.engine.tunnelRx()), { onUnderlay: true, ip6: 'fd99::1' });
  assert.is(r.engine.failures.tunnelTable, 1);
  assert.ok(r.lines.some((l) => /fd99::1 -> fd99::a1: could not rewrite nftables table inet podway_tunnels \(it still names fd99::1\).*VXLAN to fd99::a1 is read from the underlay port only/.test(l)), r.lines.join('\n'));
  assert.match(String(r.engine.status().tunnelsOn), 'VXLAN to fd99::a1: underlay port only (no IPv6 VXLAN socket: the table names fd99::1)');
  // the underlay port still takes IPv6 (and tunnels)
  assert.ok(sameBytes(underlayOpts(r).bpf, underlayFilter(parseIpv4('10.99.0.1'), { ipv6: true, tunnels: true, vxlanPort: 4789 })));
  await release(nft);
  r.engine.apply(dualModel('fd99::b1'));
  assert.equal(vxlan6Sockets(r), [addr6('fd99::b1')], 'the table names the new address again: socket back');
  assert.equal(flags(r.engine.tunnelRx()), { onUnderlay: true, ip6: 'fd99::b1' });
  assert.match(sh('nft', ['list', 'table', 'inet', TUNNEL_TABLE]), /ip6 daddr fd99::b1 exthdr frag missing/);
  stopRig(r);
});

test('no tunnel table at start (nft refused): tried again on a new IPv6 address, and once in place the underlay port takes the tunnels and the IPv6 VXLAN socket opens', async () => {
  const nft = await holdTunnelTable('10.99.0.1', 'fd99::1');
  const r = rig({ manageHost: true });
  try {
    r.engine.apply(dualModel());
    assert.equal(flags(r.engine.tunnelRx()), { onUnderlay: false, ip6: null });
    assert.ok(sameBytes(underlayOpts(r).bpf, underlayFilter(parseIpv4('10.99.0.1'), { ipv6: true, tunnels: false, vxlanPort: 4789 })));
    assert.equal(vxlan6Sockets(r), []);
    r.engine.apply(dualModel('fd99::a1'));
    assert.equal(flags(r.engine.tunnelRx()), { onUnderlay: false, ip6: null }, 'still refused');
    assert.is(r.engine.failures.tunnelTable, 2);
  } finally {
    await release(nft);
  }
  const u = portOf(r, UL);
  r.engine.apply(dualModel('fd99::b1'));
  assert.equal(flags(r.engine.tunnelRx()), { onUnderlay: true, ip6: 'fd99::b1' });
  assert.match(sh('nft', ['list', 'table', 'inet', TUNNEL_TABLE]), /ip daddr 10\.99\.0\.1 .*counter name "vxlan" drop/);
  assert.ok(portOf(r, UL) !== u, 'underlay port reopened');
  assert.ok(sameBytes(underlayOpts(r).bpf, underlayFilter(parseIpv4('10.99.0.1'), { ipv6: true, tunnels: true, vxlanPort: 4789 })), 'its filter takes the tunnels');
  assert.equal(vxlan6Sockets(r), [addr6('fd99::b1')]);
  assert.match(String(r.engine.status().tunnelsOn), /^underlay port \(nft table inet podway_tunnels\)$/);
  stopRig(r);
});

test('a tunnel table nft refused is tried again on a timer (counted): once nft lets it, tunnels move to the underlay port without another model and the workers are told; a refused IPv6 rewrite heals the same way', async () => {
  const nft = await holdTunnelTable('10.99.0.1', 'fd99::1');
  const r = rig({ manageHost: true, tableRetryMs: 100 });
  try {
    r.engine.apply(dualModel());
    assert.equal(flags(r.engine.tunnelRx()), { onUnderlay: false, ip6: null });
    assert.ok(await waitFor(() => r.engine.failures.tunnelTable >= 3, 10_000, 20), `refused again on the timer: ${r.engine.failures.tunnelTable}`);
    assert.equal(flags(r.engine.tunnelRx()), { onUnderlay: false, ip6: null }, 'still refused');
    assert.is(r.lines.filter((l) => /still not in place .*tried again, backing off/.test(l)).length, 1, 'logged once');
  } finally {
    await release(nft);
  }
  const u = portOf(r, UL);
  assert.ok(await waitFor(() => r.engine.tunnelRx().onUnderlay, 10_000, 20), 'installed on a retry, no model applied');
  assert.equal(flags(r.engine.tunnelRx()), { onUnderlay: true, ip6: 'fd99::1' });
  assert.match(sh('nft', ['list', 'table', 'inet', TUNNEL_TABLE]), /ip daddr 10\.99\.0\.1 .*counter name "vxlan" drop/);
  assert.ok(portOf(r, UL) !== u, 'underlay port reopened');
  assert.ok(sameBytes(underlayOpts(r).bpf, underlayFilter(parseIpv4('10.99.0.1'), { ipv6: true, tunnels: true, vxlanPort: 4789 })), 'its filter takes the tunnels');
  assert.equal(vxlan6Sockets(r), [addr6('fd99::1')]);
  assert.equal(r.told.map(flags), [{ onUnderlay: true, ip6: 'fd99::1' }], 'the workers are told');
  assert.ok(r.lines.some((l) => /installed on a retry/.test(l)), r.lines.join('\n'));
  assert.ok(forwardsAtoB(r));
  // a refused rewrite for a new IPv6 address: the table still names the old one, then heals
  const nft2 = await holdTunnelTable('10.99.0.1', 'fd99::1');
  try {
    r.engine.apply(dualModel('fd99::a1'));
    assert.equal(flags(r.engine.tunnelRx()), { onUnderlay: true, ip6: 'fd99::1' });
    assert.equal(vxlan6Sockets(r), []);
  } finally {
    await release(nft2);
  }
  assert.ok(await waitFor(() => r.engine.tunnelRx().ip6 === 'fd99::a1', 10_000, 20), 'rewritten on a retry');
  assert.match(sh('nft', ['list', 'table', 'inet', TUNNEL_TABLE]), /ip6 daddr fd99::a1 exthdr frag missing/);
  assert.equal(vxlan6Sockets(r), [addr6('fd99::a1')]);
  assert.equal(flags(r.told.at(-1)!), { onUnderlay: true, ip6: 'fd99::a1' });
  // healed: the timer stops
  const n = r.engine.failures.tunnelTable;
  await new Promise((res) => setTimeout(res, 400));
  assert.is(r.engine.failures.tunnelTable, n);
  stopRig(r);
});

test('a new node IPv4 address whose underlay port cannot be opened: rejected with the old tunnel table and flags; the retry follows', async () => {
  const r = rig({ manageHost: true });
  r.engine.apply(dualModel());
  const u = portOf(r, UL);
  r.io.failOpen(UL, 'EMFILE');
  assert.throws(() => r.engine.apply(dualModel('fd99::1', '10.99.0.11')), /10\.99\.0\.1 -> 10\.99\.0\.11: open ul0: EMFILE/);
  assert.match(sh('nft', ['list', 'table', 'inet', TUNNEL_TABLE]), /ip daddr 10\.99\.0\.1 .*counter name "vxlan" drop/, 'the table names the old address again');
  assert.not.match(sh('nft', ['list', 'table', 'inet', TUNNEL_TABLE]), /10\.99\.0\.11/);
  assert.equal(flags(r.engine.tunnelRx()), { onUnderlay: true, ip6: 'fd99::1' });
  assert.is(portOf(r, UL), u, 'the old underlay port stays');
  r.engine.apply(dualModel('fd99::1', '10.99.0.11'));
  assert.match(sh('nft', ['list', 'table', 'inet', TUNNEL_TABLE]), /ip daddr 10\.99\.0\.11 .*counter name "vxlan" drop/);
  assert.ok(sameBytes(underlayOpts(r).bpf, underlayFilter(parseIpv4('10.99.0.11'), { ipv6: true, tunnels: true, vxlanPort: 4789 })));
  stopRig(r);
});

/** The IPv4 VXLAN sockets open now, by address. */
function vxlan4Sockets(r: Rig): number[] {
  const open = new Map<number, number>();
  for (const e of r.io.events) {
    if (e.op === 'close') open.delete(e.port);
    else if (e.kind === 'udp' && e.opts.addr !== undefined) open.set(e.port, e.opts.addr);
  }
  return [...open.values()];
}

/** The engine's infra wholly on `ip4`: VXLAN socket, tunnel table and underlay filter. */
function infraOn(r: Rig, ip4: string, steer?: { index: number; count: number }): void {
  assert.equal(vxlan4Sockets(r), [parseIpv4(ip4)], `one VXLAN socket, on ${ip4}`);
  const table = sh('nft', ['list', 'table', 'inet', TUNNEL_TABLE]);
  assert.match(table, new RegExp(`ip daddr ${ip4.replace(/\./g, '\\.')} .*counter name "vxlan" drop`), 'the table names it');
  assert.is((table.match(/ip daddr 10\.99\.0\.\d+ /g) ?? []).every((m) => m === `ip daddr ${ip4} `), true, `the table names no other address: ${table}`);
  assert.ok(sameBytes(underlayOpts(r).bpf, underlayFilter(parseIpv4(ip4), { ipv6: true, tunnels: true, vxlanPort: 4789, steer })), `the underlay filter takes ${ip4}`);
  assert.equal(flags(r.engine.tunnelRx()), { onUnderlay: true, ip6: 'fd99::1' });
}

test('a model with a bad endpoint MAC and a new node IPv4 address: refused before anything moves (ports, table and filter on the old address), forwarding on the last good model; the good retry follows', () => {
  const r = rig({ manageHost: true });
  r.engine.apply(dualModel());
  const u = portOf(r, UL);
  const next = dualModel('fd99::1', '10.99.0.11');
  const bad = { ...next, endpoints: next.endpoints.map((e) => (e.interfaceName === 'caliB' ? { ...e, mac: 'not-a-mac' } : e)) };
  assert.throws(() => r.engine.apply(bad), /endpoint .*\(caliB\): bad MAC address: not-a-mac/);
  infraOn(r, '10.99.0.1');
  assert.is(portOf(r, UL), u, 'the underlay port was not reopened');
  assert.is(r.engine.status().nodeIp, '10.99.0.1');
  assert.equal(r.engine.failures, { tunnelTable: 0, ringReopened: 0, ringReopenFailed: 0, followedBack: 0, followBackFailed: 0 }, 'nothing to follow back');
  assert.ok(forwardsAtoB(r), 'forwards on the last good model');
  r.engine.apply(next);
  infraOn(r, '10.99.0.11');
  assert.is(r.engine.status().nodeIp, '10.99.0.11');
  assert.ok(forwardsAtoB(r), 'forwards');
  stopRig(r);
});

/** A route the FIB refuses (host bits set): route-calc never builds one, so model-check lets it
 * through, and apply throws in buildNextHops, after the infra followed the new address. */
function withBadRoute(m: ReturnType<typeof dualModel>) {
  const k = m.routes.findIndex((x) => x.prefixLen < 32);
  assert.ok(k >= 0);
  return { ...m, routes: m.routes.map((x, i) => (i === k ? { ...x, addr: (x.addr + 1) >>> 0 } : x)) };
}

test('a model rejected after its new IPv4 address was followed (a later step threw): the ports follow back to the last good address (counted, logged), forwarding on the last good model; the retry follows', () => {
  const r = rig({ manageHost: true });
  r.engine.apply(dualModel());
  assert.throws(() => r.engine.apply(withBadRoute(dualModel('fd99::1', '10.99.0.11'))), /host bits are set/);
  infraOn(r, '10.99.0.1');
  assert.is(r.engine.status().nodeIp, '10.99.0.1', 'the model in force is the old one');
  assert.is(r.engine.failures.followedBack, 1);
  assert.is(r.engine.failures.followBackFailed, 0);
  assert.ok(r.lines.some((l) => /model rejected after .*host bits are set.*followed back 10\.99\.0\.11\/fd99::1 -> 10\.99\.0\.1\/fd99::1/.test(l)), r.lines.join('\n'));
  assert.ok(forwardsAtoB(r), 'forwards on the last good model');
  r.engine.apply(dualModel('fd99::1', '10.99.0.11'));
  infraOn(r, '10.99.0.11');
  assert.is(r.engine.status().nodeIp, '10.99.0.11');
  assert.ok(forwardsAtoB(r), 'forwards');
  stopRig(r);
});

test('a model rejected after its new IPv4 address was followed, the old address gone: no follow back (counted, logged), and the retry follows nothing twice (no second VXLAN socket on the address, EADDRINUSE) and applies', () => {
  const r = rig({ manageHost: true });
  r.engine.apply(dualModel());
  // 10.99.0.11 stays (the kernel would drop the secondaries with their primary)
  sh('sysctl', ['-qw', `net.ipv4.conf.${UL}.promote_secondaries=1`]);
  sh('ip', ['addr', 'del', '10.99.0.1/24', 'dev', UL]);
  try {
    assert.throws(() => r.engine.apply(withBadRoute(dualModel('fd99::1', '10.99.0.11'))), /host bits are set/);
    assert.is(r.engine.failures.followBackFailed, 1);
    assert.is(r.engine.failures.followedBack, 0);
    assert.ok(r.lines.some((l) => /could not follow back to 10\.99\.0\.1.*no interface holds the node IP 10\.99\.0\.1.*stay on 10\.99\.0\.11/.test(l)), r.lines.join('\n'));
    infraOn(r, '10.99.0.11');
    const opens = r.io.events.filter((e) => e.kind === 'udp' && e.opts.addr !== undefined).length;
    const u = portOf(r, UL);
    // the retry (the same address, a good model) must not bind the VXLAN socket again
    r.engine.apply(dualModel('fd99::1', '10.99.0.11'));
    assert.is(r.engine.status().nodeIp, '10.99.0.11');
    infraOn(r, '10.99.0.11');
    assert.is(r.io.events.filter((e) => e.kind === 'udp' && e.opts.addr !== undefined).length, opens, 'nothing opened again');
    assert.is(portOf(r, UL), u, 'underlay port not reopened');
    assert.ok(forwardsAtoB(r), 'forwards');
  } finally {
    // as test.before left them, in that order
    sh('ip', ['-4', 'addr', 'flush', 'dev', UL]);
    for (const a of ['10.99.0.1/24', '10.99.0.11/24']) sh('ip', ['addr', 'add', a, 'dev', UL]);
  }
  // and back to the old address: followed as any change
  r.engine.apply(dualModel());
  infraOn(r, '10.99.0.1');
  stopRig(r);
});

test('with a worker: a model rejected after its new IPv4 address was followed, the old address gone (no follow back): the worker is told where the main engine\'s ports are and follows them with the last good model; the retry moves nothing', () => {
  const main = rig({ manageHost: true, worker: { index: 0, count: 2 } });
  const w = rig({ worker: { index: 1, count: 2 } });
  // as run.ts: the worker gets a model the main engine applied, with its tunnelRx()
  let told = '';
  const tell = (model: ReturnType<typeof dualModel>) => {
    const msg = structuredClone(workerModelMessage(main.engine, model, []));
    told = JSON.stringify(msg.tunnels);
    applyWorkerModel(w.engine, msg);
  };
  // worker 1 of 2: its filter takes its share of the flows (steer.ts)
  const filter = (nodeIp: string) => underlayFilter(parseIpv4(nodeIp), { ipv6: true, tunnels: true, vxlanPort: 4789, steer: { index: 1, count: 2 } });
  const good = dualModel();
  main.engine.apply(good, []);
  tell(good);
  assert.equal(vxlan4Sockets(w), [parseIpv4('10.99.0.1')]);
  sh('sysctl', ['-qw', `net.ipv4.conf.${UL}.promote_secondaries=1`]);
  sh('ip', ['addr', 'del', '10.99.0.1/24', 'dev', UL]);
  try {
    assert.throws(() => main.engine.apply(withBadRoute(dualModel('fd99::1', '10.99.0.11')), []), /host bits are set/);
    assert.is(main.engine.failures.followBackFailed, 1);
    infraOn(main, '10.99.0.11', { index: 0, count: 2 }); // worker 0 of 2: its share of the flows (steer.ts)
    assert.is(main.engine.tunnelRx().ip, parseIpv4('10.99.0.11'), 'tunnelRx names the address the ports are on');
    // run.ts: tunnelRx() moved since the workers were told: the last good model again, with it
    assert.ok(JSON.stringify(main.engine.tunnelRx()) !== told, 'the workers must be told');
    const u = portOf(w, UL);
    tell(good);
    assert.ok(portOf(w, UL) !== u, 'the worker reopened its underlay port');
    assert.ok(sameBytes(underlayOpts(w).bpf, filter('10.99.0.11')), 'the worker\'s filter takes the address the table names');
    assert.equal(vxlan4Sockets(w), [parseIpv4('10.99.0.11')], 'its VXLAN socket too');
    assert.is(w.engine.status().nodeIp, '10.99.0.1', 'with the last good model in force, as the main engine');
    assert.is(main.engine.status().nodeIp, '10.99.0.1');
    assert.equal(w.engine.tunnelRx(), main.engine.tunnelRx());
    // the retry: nothing moves in either (no second VXLAN socket on the address, EADDRINUSE)
    const opens = w.io.events.filter((e) => e.kind === 'udp' && e.opts.addr !== undefined).length;
    const u2 = portOf(w, UL);
    const next = dualModel('fd99::1', '10.99.0.11');
    main.engine.apply(next, []);
    tell(next);
    assert.is(w.engine.status().nodeIp, '10.99.0.11');
    assert.is(w.io.events.filter((e) => e.kind === 'udp' && e.opts.addr !== undefined).length, opens, 'nothing opened again');
    assert.is(portOf(w, UL), u2, 'underlay port not reopened');
    assert.ok(forwardsAtoB(w), 'the worker forwards');
  } finally {
    sh('ip', ['-4', 'addr', 'flush', 'dev', UL]);
    for (const a of ['10.99.0.1/24', '10.99.0.11/24']) sh('ip', ['addr', 'add', a, 'dev', UL]);
  }
  main.engine.apply(good, []);
  tell(good);
  assert.equal(vxlan4Sockets(w), [parseIpv4('10.99.0.1')]);
  assert.ok(sameBytes(underlayOpts(w).bpf, filter('10.99.0.1')));
  stopRig(w);
  stopRig(main);
});

test('an IPv6-only node (no IPv4 address) is ready with the ports it opens: no IPv4 VXLAN or IPIP socket is wanted (it was never ready: no READY=1 under systemd), a worker\'s likewise', () => {
  const v6only = clusterModel('node1', dualStackYaml().replace('ipv4Address: 10.99.0.1/24, ipv6Address: fd99::1/64', 'ipv6Address: fd99::1/64'));
  assert.is(v6only.node.ip, null, 'node1 has no IPv4 address');
  const r = rig();
  const w = rig({ worker: { index: 1, count: 2 } });
  try {
    for (const x of [r, w]) {
      x.engine.apply(v6only);
      assert.ok(portOf(x, UL) >= 0, 'underlay port open');
      assert.not.ok(x.io.events.some((e) => e.op === 'open' && e.kind === 'udp' && e.opts.addr !== undefined), 'no IPv4 VXLAN socket');
      assert.equal(x.engine.readiness().problems, [], x === r ? 'primary' : 'worker');
    }
    // Dual stack again: the IPv4 sockets are opened, and wanted, again.
    r.engine.apply(dualModel());
    assert.ok(r.io.events.some((e) => e.op === 'open' && e.kind === 'udp' && e.opts.addr !== undefined), 'an IPv4 VXLAN socket');
    assert.equal(r.engine.readiness().problems, []);
  } finally {
    stopRig(w);
    stopRig(r);
  }
});

test('the node address moved to another interface, a port there cannot be opened: rejected with no node port open (readiness says so, pods\' ports stay), the next model opens them there', () => {
  sh('ip', ['link', 'add', 'ul1', 'type', 'veth', 'peer', 'name', 'ul1p']);
  sh('ip', ['addr', 'add', '10.99.1.1/24', 'dev', 'ul1']);
  sh('ip', ['link', 'set', 'ul1', 'up']);
  const r = rig();
  try {
    r.engine.apply(dualModel());
    const a = portOf(r, 'caliA');
    r.io.failOpen('ul1', 'EMFILE');
    assert.throws(() => r.engine.apply(dualModel('fd99::1', '10.99.1.1')), /EMFILE/);
    assert.is(portOf(r, UL), -1, 'the old underlay port was closed first (not rolled back)');
    assert.ok(r.engine.readiness().problems.some((p) => /port underlay is not open/.test(p)), JSON.stringify(r.engine.readiness()));
    assert.is(portOf(r, 'caliA'), a, 'pods\' ports stay');
    r.engine.apply(dualModel('fd99::1', '10.99.1.1'));
    assert.ok(portOf(r, 'ul1') >= 0, 'underlay port open on the new interface');
    assert.equal(r.engine.readiness().problems, []);
    assert.is(r.engine.status().underlay?.name, 'ul1');
    assert.ok(forwardsAtoB(r));
  } finally {
    stopRig(r);
    sh('ip', ['link', 'del', 'ul1']);
  }
});

test('a rejected new IPv4 address whose old table nft will not put back: no table, tunnels on the sockets, the next apply reopens the underlay port without them', async () => {
  const r = rig({ manageHost: true });
  r.engine.apply(dualModel());
  const nft = await holdTunnelTable('10.99.0.1', 'fd99::1');
  try {
    r.io.failOpen(UL, 'EMFILE');
    assert.throws(() => r.engine.apply(dualModel('fd99::1', '10.99.0.11')), /EMFILE/);
    assert.equal(flags(r.engine.tunnelRx()), { onUnderlay: false, ip6: null });
    assert.ok(r.lines.some((l) => /could not put nftables table inet podway_tunnels back for 10\.99\.0\.1 .*the underlay port is reopened with the next model/.test(l)), r.lines.join('\n'));
    assert.is(r.engine.failures.tunnelTable, 2, 'the refused install and the refused restore');
  } finally {
    await release(nft);
  }
  const u = portOf(r, UL);
  assert.ok(sameBytes(underlayOpts(r).bpf, underlayFilter(parseIpv4('10.99.0.1'), { ipv6: true, tunnels: true, vxlanPort: 4789 })), 'the old port still takes tunnels');
  r.engine.apply(dualModel());
  assert.ok(portOf(r, UL) !== u, 'reopened');
  assert.ok(sameBytes(underlayOpts(r).bpf, underlayFilter(parseIpv4('10.99.0.1'), { ipv6: true, tunnels: false, vxlanPort: 4789 })), 'tunnels left to the sockets');
  const u2 = portOf(r, UL);
  r.engine.apply(dualModel());
  assert.is(portOf(r, UL), u2, 'once');
  stopRig(r);
});

test('no tunnel table, installed for a new IPv6 address, but the underlay port cannot be reopened: the table goes again and the retry installs it and reopens the port', async () => {
  const nft = await holdTunnelTable('10.99.0.1', 'fd99::1');
  const r = rig({ manageHost: true });
  try {
    r.engine.apply(dualModel());
    assert.equal(flags(r.engine.tunnelRx()), { onUnderlay: false, ip6: null });
  } finally {
    await release(nft);
  }
  const u = portOf(r, UL);
  r.io.failOpen(UL, 'EMFILE');
  assert.throws(() => r.engine.apply(dualModel('fd99::a1')), /EMFILE/);
  assert.equal(flags(r.engine.tunnelRx()), { onUnderlay: false, ip6: null }, 'flags as before');
  assert.is(sh('nft', ['list', 'table', 'inet', TUNNEL_TABLE], { allowFail: true }).includes('drop'), false, 'no table drops tunnels the old port does not take');
  assert.is(portOf(r, UL), u);
  r.engine.apply(dualModel('fd99::a1'));
  assert.equal(flags(r.engine.tunnelRx()), { onUnderlay: true, ip6: 'fd99::a1' });
  assert.ok(portOf(r, UL) !== u, 'underlay port reopened on the retry');
  assert.ok(sameBytes(underlayOpts(r).bpf, underlayFilter(parseIpv4('10.99.0.1'), { ipv6: true, tunnels: true, vxlanPort: 4789 })));
  assert.equal(vxlan6Sockets(r), [addr6('fd99::a1')]);
  stopRig(r);
});

test('a worker whose underlay port cannot be reopened for new tunnels keeps the old ones: the same message again reopens it', () => {
  const w = rig({ worker: { index: 1, count: 2 } });
  const msg = (onUnderlay: boolean, ip6: string | null) => ({ type: 'model' as const, model: dualModel(), kernelRoutes: [], tunnels: { onUnderlay, ip6 } });
  applyWorkerModel(w.engine, msg(true, 'fd99::1'));
  const u = portOf(w, UL);
  w.io.failOpen(UL, 'EMFILE');
  assert.throws(() => applyWorkerModel(w.engine, msg(false, null)), /EMFILE/);
  assert.equal(flags(w.engine.tunnelRx()), { onUnderlay: true, ip6: 'fd99::1' }, 'still what its ports do');
  assert.is(portOf(w, UL), u);
  applyWorkerModel(w.engine, msg(false, null));
  assert.equal(flags(w.engine.tunnelRx()), { onUnderlay: false, ip6: null });
  assert.ok(portOf(w, UL) !== u, 'reopened');
  // worker 1 of 2: the filter takes its share of the flows (steer.ts)
  assert.ok(sameBytes(underlayOpts(w).bpf, underlayFilter(parseIpv4('10.99.0.1'), { ipv6: true, tunnels: false, vxlanPort: 4789, steer: { index: 1, count: 2 } })));
  assert.equal(vxlan6Sockets(w), []);
  stopRig(w);
});

test('the node\'s own addresses reach a worker with each model message and with a later change (setLocalAddresses, run.ts\'s local-addresses message); a family read as null keeps what it had', () => {
  const main = rig();
  const w = rig({ worker: { index: 1, count: 2 } });
  main.engine.apply(dualModel());
  assert.ok(main.engine.setLocalAddresses({ v4: ['10.99.0.1', '127.0.0.0/8', '169.254.20.10'], v6: ['::1', 'fd00:20::10', 'fd99::1'] }));
  assert.not.ok(main.engine.setLocalAddresses({ v4: ['10.99.0.1', '127.0.0.0/8', '169.254.20.10'], v6: null }), 'the same again (IPv6 unread): no change');
  const msg = workerModelMessage(main.engine, dualModel(), []);
  assert.equal(msg.local, { v4: ['10.99.0.1', '127.0.0.0/8', '169.254.20.10'], v6: ['::1', 'fd00:20::10', 'fd99::1'] });
  applyWorkerModel(w.engine, msg);
  const has6 = (a: string) => w.engine.pipe.v6.local6.has(parseIpv6Bytes(a), 0);
  assert.ok(w.engine.pipe.local4.has(parseIpv4('169.254.20.10')) && has6('fd00:20::10'), 'in the worker\'s pipeline');
  assert.not.ok(w.engine.pipe.local4.has(parseIpv4('127.0.0.1')), 'loopback left out');
  assert.ok(w.engine.setLocalAddresses({ v4: ['10.99.0.1'], v6: null }));
  assert.not.ok(w.engine.pipe.local4.has(parseIpv4('169.254.20.10')), 'gone');
  assert.ok(has6('fd00:20::10'), 'IPv6 unread: kept');
  assert.equal(w.engine.status().localAddresses, { v4: ['10.99.0.1'], v6: ['fd00:20::10', 'fd99::1'] }, 'status: the addresses the pipeline keeps (loopback left out, 29c0b81)');
  stopRig(w);
  stopRig(main);
});

test('workers are told where tunnels are read with every model: a refused rewrite and a fallback to the sockets reach them', async () => {
  const main = rig({ manageHost: true, worker: { index: 0, count: 2 } });
  const w = rig({ worker: { index: 1, count: 2 } });
  const send = (model: ReturnType<typeof dualModel>) => {
    main.engine.apply(model, []);
    // as run.ts posts it: a structured clone, as worker_threads delivers it
    applyWorkerModel(w.engine, structuredClone(workerModelMessage(main.engine, model, [])));
  };
  // each worker's filter takes its share of the flows (steer.ts)
  const filter = (nodeIp: string, tunnels: boolean, index = 1) => underlayFilter(parseIpv4(nodeIp), { ipv6: true, tunnels, vxlanPort: 4789, steer: { index, count: 2 } });
  send(dualModel());
  assert.ok(sameBytes(underlayOpts(w).bpf, filter('10.99.0.1', true)), 'the worker takes tunnels on its underlay port');
  assert.equal(vxlan6Sockets(w), [addr6('fd99::1')]);
  const nft = await holdTunnelTable('10.99.0.1', 'fd99::1');
  try {
    // IPv6 rewrite refused: the worker opens no socket on the new address either
    send(dualModel('fd99::a1'));
    assert.equal(vxlan6Sockets(main), []);
    assert.equal(vxlan6Sockets(w), [], 'the worker follows the main engine');
    // a new IPv4 address: the main engine cannot install its table and reads tunnels on the
    // sockets; the worker's underlay port must stop taking them (or each arrives twice)
    send(dualModel('fd99::a1', '10.99.0.11'));
    assert.equal(flags(main.engine.tunnelRx()), { onUnderlay: false, ip6: null });
    assert.ok(sameBytes(underlayOpts(main).bpf, filter('10.99.0.11', false, 0)));
    assert.ok(sameBytes(underlayOpts(w).bpf, filter('10.99.0.11', false)), 'the worker\'s filter leaves tunnels to the sockets');
    assert.equal(flags(w.engine.tunnelRx()), { onUnderlay: false, ip6: null });
    assert.match(String(w.engine.status().tunnelsOn), /^sockets; VXLAN to fd99::a1: underlay port only/);
    assert.is(main.engine.counters().failures.tunnelTable, 2);
    // the metrics add every worker's up (the worker installs nothing: 0)
    assert.is(valueOf(await scrape([main.engine, w.engine]), 'podway_engine_failures_total', { kind: 'tunnel_table' }), 2);
  } finally {
    await release(nft);
  }
  // the same addresses again, the table installs: only the tunnels changed for the worker
  const u = portOf(w, UL);
  main.engine.apply(dualModel('fd99::a1', '10.99.0.1'), []);
  main.engine.apply(dualModel('fd99::a1', '10.99.0.11'), []);
  assert.equal(flags(main.engine.tunnelRx()), { onUnderlay: true, ip6: 'fd99::a1' });
  applyWorkerModel(w.engine, structuredClone(workerModelMessage(main.engine, dualModel('fd99::a1', '10.99.0.11'), [])));
  assert.ok(portOf(w, UL) !== u, 'the worker reopened its underlay port for the new filter');
  assert.ok(sameBytes(underlayOpts(w).bpf, filter('10.99.0.11', true)));
  assert.equal(vxlan6Sockets(w), [addr6('fd99::a1')]);
  stopRig(w);
  stopRig(main);
});

test.run();
