/**
 * Shared pieces of the BGP end-to-end tests: the lab every test runs in (built, direct mode, its
 * BIRDs killed and its namespaces removed however the test ends), the ToR with a host behind it,
 * BIRD 2 started in a lab namespace (foreground, so the PID we hold is BIRD's own, killed by that
 * PID), birdc on its socket, the Calico resources a test adds, the podway CLI, a node's routes and
 * BGP peer states from its control socket, and a ping from any namespace with the sequence numbers
 * that got no reply.
 */
import { spawn, ChildProcess, execFileSync } from 'node:child_process';
import { writeFileSync, renameSync, existsSync, rmSync } from 'node:fs';
import * as path from 'node:path';
import * as assert from 'uvu/assert';
import { Lab, LabKvStore, LabNodeSpec, run, POOL_CIDR, pingArgs, parsePing, within } from '../../src/lab/lab';
import type { LabEtcd } from '../../src/lab/etcd';
import { parseAllDocuments } from 'yaml';
import { applyResource, JsonObject } from '../../src/control/v3-store';
import { controlRequest } from '../../src/dataplane/control-server';
import { guard, teardown, isRoot, track, until, logTail, RouteRow } from './e2e-kit';

export type { RouteRow };

const BIN = path.resolve(__dirname, '..', '..', '..', 'bin', 'podway.js');

export interface BirdProcess {
  readonly name: string;
  proc: ChildProcess;
  birdc(...args: string[]): string;
  /** SIGKILL by PID (no NOTIFICATION: its peers see the session drop). */
  kill(): Promise<void>;
  /** Started again with the same configuration. */
  restart(): Promise<void>;
}

/** BIRD in namespace `ns` with configuration `conf`; resolves once its control socket exists. */
export async function startBird(lab: Lab, ns: string, name: string, conf: string): Promise<BirdProcess> {
  const confFile = path.join(lab.dir, `${name}.conf`);
  const sock = path.join(lab.dir, `${name}.ctl`);
  writeFileSync(confFile, conf);
  const launch = async (): Promise<ChildProcess> => {
    rmSync(sock, { force: true });
    const p = track(spawn('ip', ['netns', 'exec', ns, 'bird', '-f', '-c', confFile, '-s', sock], { stdio: ['ignore', 'ignore', 'pipe'] }));
    let err = '';
    p.stderr!.setEncoding('utf8');
    p.stderr!.on('data', (d: string) => (err += d));
    const up = () => p.exitCode === null && existsSync(sock) && run('ip', ['netns', 'exec', ns, 'birdc', '-s', sock, 'show', 'status'], { allowFail: true, timeoutMs: 5000 }).includes('Daemon is up');
    if (!(await until(() => up() || p.exitCode !== null, 10_000)) || p.exitCode !== null) {
      throw new Error(`BIRD ${name} did not start: ${err}`);
    }
    return p;
  };
  const bird: BirdProcess = {
    name,
    proc: await launch(),
    birdc: (...args) => run('ip', ['netns', 'exec', ns, 'birdc', '-s', sock, ...args], { timeoutMs: 5000, allowFail: true }),
    kill: async () => {
      const p = bird.proc;
      if (p.exitCode !== null || p.signalCode !== null || p.pid === undefined) return;
      const exited = new Promise<void>((r) => p.once('exit', () => r()));
      process.kill(p.pid, 'SIGKILL');
      await within(exited, 5000, null);
    },
    restart: async () => {
      await bird.kill();
      bird.proc = await launch();
    },
  };
  return bird;
}

/** The fabric router's address on subnet a (the lab's default gateway there) and its AS. */
export const TOR_IP = '10.99.0.254';
export const TOR_AS = 65000;
/** A network behind the ToR, announced by BIRD to the nodes, and a host in it. */
export const OUTSIDE_NET = '198.51.100.0/24';
export const OUTSIDE_HOST = '198.51.100.1';

/** `count` nodes on subnet a, node<i> with one veth pod web-<i>. */
export function nodesOnOneSubnet(count: number): LabNodeSpec[] {
  return Array.from({ length: count }, (_, k) => ({ name: `node${k + 1}`, subnet: 'a' as const, pods: [{ name: `web-${k + 1}`, type: 'veth' as const }] }));
}

/** The BIRDs of one test, killed by PID in the reverse order of their start. */
export class Birds {
  private readonly started: BirdProcess[] = [];
  constructor(private readonly lab: Lab) {}

  async start(ns: string, name: string, conf: string): Promise<BirdProcess> {
    const bird = await startBird(this.lab, ns, name, conf);
    this.started.push(bird);
    return bird;
  }

  /** The ToR (torConf) on the fabric namespace, with OUTSIDE_HOST on the fabric's loopback;
   * `moreNets` are announced too (from the same static protocol, `static1`). */
  async tor(moreNets: string[] = []): Promise<BirdProcess> {
    run('ip', ['-n', this.lab.fabric, 'addr', 'add', `${OUTSIDE_HOST}/32`, 'dev', 'lo']);
    return this.start(this.lab.fabric, 'tor', torConf(this.lab, TOR_IP, TOR_AS, OUTSIDE_NET, moreNets));
  }

  async killAll(): Promise<void> {
    for (const bird of this.started.splice(0).reverse()) await bird.kill();
  }
}

/**
 * Runs `body` on a lab of `spec` (root only), built and in direct mode. On failure the nodes' log
 * tails are printed; whatever happens, the BIRDs started through `birds` are killed, then the
 * podways stopped and the namespaces removed.
 */
export async function inBgpLab(spec: LabNodeSpec[], body: (lab: Lab, birds: Birds) => Promise<void>, opts: { dualStack?: boolean; routed6?: boolean } = {}): Promise<void> {
  if (!isRoot()) throw new Error('BGP e2e tests need root (network namespaces)');
  // routed6 (with dualStack): subnet b's nodes on IPv6 subnets of their own behind the router (Lab)
  const lab = guard(new Lab(spec, opts.dualStack ? { dualStack: true, routed6: opts.routed6 === true } : {}));
  const birds = new Birds(lab);
  try {
    lab.build();
    lab.setMode('direct');
    await body(lab, birds);
  } catch (e) {
    console.log(logTail(lab, 30));
    throw e;
  } finally {
    await birds.killAll();
    await teardown(lab);
  }
}

/** Calico resources written as one file in one rename: the nodes' watchers never see half of it. */
export function writeResources(lab: Lab, docs: string[]): void {
  writeFileSync(lab.file + '.bgp', docs.join('---\n'));
  renameSync(lab.file + '.bgp', lab.file);
}

/** A BGPPeer resource: global, or for one node when `node` is given. */
export function bgpPeerYaml(name: string, peerIP: string, asNumber: number, node?: string): string {
  return `apiVersion: projectcalico.org/v3
kind: BGPPeer
metadata:
  name: ${name}
spec:
${node !== undefined ? `  node: ${node}\n` : ''}  peerIP: ${peerIP}
  asNumber: ${asNumber}
`;
}

/** The default BGPConfiguration with the node-to-node mesh off (AS 64512). */
export const MESH_OFF_YAML = `apiVersion: projectcalico.org/v3
kind: BGPConfiguration
metadata:
  name: default
spec:
  nodeToNodeMeshEnabled: false
  asNumber: 64512
`;

/** `podway run --bgp` on each of `names` (every lab node by default), one after the other. */
export async function startBgpPodways(lab: Lab, names: string[] = lab.nodes.map((n) => n.name)): Promise<void> {
  for (const name of names) await lab.startPodway(name, 20_000, ['--bgp']);
}

/** The kernel of namespace `ns` routes `cidr` via `via`. */
export function kernelRoutesVia(ns: string, cidr: string, via: string): boolean {
  return run('ip', ['-n', ns, 'route', 'show', cidr]).includes(`via ${via}`);
}

/** Every lab node routes every other node's block as `kind` via its owner (one routes query a node). */
export async function everyBlockRouted(lab: Lab, kind: string): Promise<boolean> {
  for (const n of lab.nodes) {
    const routes = await routesOf(lab, n.name);
    if (!lab.nodes.every((o) => o === n || routes.some((r) => r.cidr === o.block && r.kind === kind && r.via === o.ip))) return false;
  }
  return true;
}

/** A lab node with its podway running (a BIRD-only node has none to ask). */
function podwayRunning(lab: Lab, node: string): boolean {
  const p = lab.node(node).proc;
  return p !== null && p.exitCode === null && p.signalCode === null;
}

/**
 * The next-hop MAC of `node`'s route for `cidr` as `podway routes` shows it: '' while the underlay
 * neighbour is being resolved, 'failed', or undefined when there is no such route.
 */
async function nextHopMacOf(lab: Lab, node: string, cidr: string): Promise<string | undefined> {
  return ((await routesOf(lab, node)) as (RouteRow & { nextHopMac?: string })[]).find((r) => r.cidr === cidr)?.nextHopMac;
}

/**
 * Waits (10 s at most) until podway on each pod's node has the MAC of the underlay neighbour its
 * route toward the other pod's block goes through. podway sends the ARP request when it programs a
 * learned route and holds a few packets per neighbour meanwhile (neighbor_queued, 3 per
 * neighbour), but a test that pings the moment a route shows up (a route poll that just turned
 * true) can still lose requests on a loaded host: beyond those 3 (neighbor_queue_full), or when the
 * answer comes after the probe round (neighbor_queue_timeout). Once both MACs are known no request
 * may be lost.
 */
async function awaitPodPath(lab: Lab, from: string, to: string): Promise<void> {
  const [a, b] = [lab.pod(from), lab.pod(to)];
  const legs = [[a.node, b.node], [b.node, a.node]].filter(([n, other]) => n !== other && podwayRunning(lab, n));
  const resolved = async () => {
    for (const [n, other] of legs) {
      const mac = await nextHopMacOf(lab, n, lab.node(other).block);
      if (mac === '' || mac === 'failed') return false; // undefined: no route of its own for the block; the ping will tell
    }
    return true;
  };
  if (await until(resolved, 10_000, 100)) return;
  const rows = await Promise.all(legs.map(async ([n]) => `${n}: ${JSON.stringify(await routesOf(lab, n))}`));
  assert.unreachable(`${from} -> ${to}: a next hop is still unresolved after 10 s\n${rows.join('\n')}`);
}

/**
 * Pod `from` pings pod `to` `count` times once the path's next hops are resolved (awaitPodPath):
 * none lost and, when given, replies with TTL `ttl`. On loss the message carries the drop reasons
 * of both pods' podways.
 */
export async function assertPodPing(lab: Lab, from: string, to: string, count: number, ttl?: number, ttlMessage?: string): Promise<void> {
  await awaitPodPath(lab, from, to);
  const r = lab.ping(from, lab.pod(to).ip, count);
  if (r.loss !== 0) {
    const nodes = [...new Set([lab.pod(from).node, lab.pod(to).node])].filter((n) => podwayRunning(lab, n));
    const reasons = await Promise.all(nodes.map(async (n) => {
      try {
        return `${n} drops: ${JSON.stringify(((await controlRequest(lab.node(n).control, { cmd: 'counters' }, 5000)) as { reasons: unknown }).reasons)}`;
      } catch (e) {
        return `${n}: ${(e as Error).message}`;
      }
    }));
    assert.unreachable(`${from} -> ${to}: ${JSON.stringify(r)}\n${reasons.join('\n')}`);
  }
  if (ttl !== undefined) assert.is(r.ttl, ttl, ttlMessage);
}

/** Three pings from OUTSIDE_HOST (behind the ToR, on the fabric namespace) to `ip`: ping's output
 * and how many of the three were answered (parsePing). */
export function pingFromOutside(lab: Lab, ip: string): { out: string; received: number } {
  const out = run('ip', ['netns', 'exec', lab.fabric, 'ping', ...pingArgs(3, ['-I', OUTSIDE_HOST]), ip], { allowFail: true, timeoutMs: 10_000 });
  return { out, received: parsePing(out, 3).received };
}

export function podwayCli(args: string[]): string {
  return execFileSync(process.execPath, [BIN, ...args], { encoding: 'utf8', timeout: 20_000 });
}

export async function routesOf(lab: Lab, node: string): Promise<RouteRow[]> {
  return (await controlRequest(lab.node(node).control, { cmd: 'routes' })) as RouteRow[];
}

export interface PeerRow { address: string; type: string; bgpState: string; info: string }

/** `podway node status -o json` of a running node: its BGP peers. */
export function peersOf(lab: Lab, node: string): PeerRow[] {
  return (JSON.parse(podwayCli(['node', 'status', '--control', lab.node(node).control, '-o', 'json'])) as { peers: PeerRow[] }).peers;
}

/**
 * The same peers as peersOf, asked over the control socket in this process (what `node status -o
 * json` prints is this answer): for the polls, which would otherwise start a Node per look. The
 * answer comes from the model thread, which podway waits 2 s for: on a loaded host a busy thread
 * may miss that (seen at load ~37), so a missed answer is asked again, for up to 30 s; any other
 * error (podway not running) is thrown at once.
 */
export async function peersNow(lab: Lab, node: string): Promise<PeerRow[]> {
  const end = Date.now() + 30_000;
  for (;;) {
    try {
      return ((await controlRequest(lab.node(node).control, { cmd: 'node-status' }, 5000)) as { peers: PeerRow[] }).peers;
    } catch (e) {
      if (!/the model thread did not answer|no answer from/.test((e as Error).message) || Date.now() > end) throw e;
    }
    await new Promise((r) => setTimeout(r, 200));
  }
}

export async function peerState(lab: Lab, node: string, peer: string): Promise<string | undefined> {
  return (await peersNow(lab, node)).find((p) => p.address === peer)?.bgpState;
}

/** The learned route of `node` for `cidr` is of `kind` via `via`. */
export async function routesVia(lab: Lab, node: string, cidr: string, kind: string, via: string): Promise<boolean> {
  return (await routesOf(lab, node)).some((r) => r.cidr === cidr && r.kind === kind && r.via === via);
}

/** BIRD's one-line summary of its protocol `proto` (state and since: a reset changes it). */
export function birdProtocolLine(bird: BirdProcess, proto: string): string {
  return bird.birdc('show', 'protocols', proto).split('\n').find((l) => l.startsWith(proto)) ?? '';
}

/**
 * Whether two birdProtocolLine()s are the same session: the same state and info, and a "since"
 * within 50 ms. BIRD keeps the time of the last state change on its monotonic clock and prints it
 * as wall time computed at each `show`, so the same session's since can read a millisecond apart
 * (13:16:03.755 then .756: seen failing a CI run); a reset and a new session take far longer.
 */
export function sameBirdSession(a: string, b: string): boolean {
  const fa = a.trim().split(/\s+/);
  const fb = b.trim().split(/\s+/);
  if (fa.length !== fb.length || fa.length < 5) return a === b;
  if (fa.some((f, i) => i !== 4 && f !== fb[i])) return false;
  const ms = (t: string) => {
    const m = /^(\d\d):(\d\d):(\d\d)(?:\.(\d{1,3}))?$/.exec(t);
    return m ? ((Number(m[1]) * 60 + Number(m[2])) * 60 + Number(m[3])) * 1000 + Number((m[4] ?? '0').padEnd(3, '0')) : null;
  };
  const [x, y] = [ms(fa[4]!), ms(fb[4]!)];
  return x === null || y === null ? fa[4] === fb[4] : Math.abs(x - y) <= 50;
}

/** What BIRD says of the peer's OPEN in protocol `proto`'s session in force (its `Neighbor
 * capabilities` block): graceful restart's R bit shows as `Restart recovery`, the F bits as
 * `AF preserved: ipv4`. Empty while no session is up. */
export function birdNeighborCaps(bird: BirdProcess, proto: string): string {
  const all = bird.birdc('show', 'protocols', 'all', proto);
  const at = all.indexOf('Neighbor capabilities');
  if (at < 0) return '';
  const rest = all.slice(at);
  const end = rest.search(/\n\s+(Session:|Source address:|Channel )/);
  return end < 0 ? rest : rest.slice(0, end);
}

/** The UPDATEs BIRD's protocol `proto` has received (all its sessions); -1 when it says nothing. */
export function birdImportUpdates(bird: BirdProcess, proto: string): number {
  return Number(/Import updates:\s+(\d+)/.exec(bird.birdc('show', 'protocols', 'all', proto))?.[1] ?? -1);
}

/**
 * The ToR: BIRD on the fabric (10.99.0.254, AS torAs) with an eBGP session to every node. Family 6:
 * the sessions go to the nodes' IPv6 addresses from torIp (an IPv6 address), carry IPv6 only, and
 * its static protocol is named s6 (router ID still 10.99.0.254; no kernel protocol).
 */
export function torConf(lab: Lab, torIp: string, torAs: number, outsideNet: string, moreNets: string[] = [], family: 4 | 6 = 4): string {
  const v6 = family === 6;
  const neighbours = lab.nodes.map((n) => `
protocol bgp ${n.name} {
  local ${torIp} as ${torAs};
  neighbor ${v6 ? n.ip6 : n.ip} as 64512;
  connect retry time 2;
  error wait time 1, 5;
  graceful restart aware;
  ipv${family} { import all; export where source = RTS_STATIC; };
}`).join('\n');
  return `router id ${v6 ? TOR_IP : torIp};
protocol device { scan time 2; }
${v6 ? '' : 'protocol kernel { ipv4 { import none; export where source = RTS_BGP; }; }\n'}protocol static${v6 ? ' s6' : ''} { ipv${family}; ${[outsideNet, ...moreNets].map((n) => `route ${n} unreachable;`).join(' ')} }
${neighbours}
`;
}

/** calico-node's BIRD for `node` (confd's bird.cfg for an unencapsulated pool, stock BIRD 2). */
export function calicoNodeBird(node: { ip: string; block: string }, meshPeers: { ip: string }[], globalPeers: { ip: string; asNumber: number }[] = []): string {
  const globals = globalPeers.map((p) => `
protocol bgp Global_${p.ip.replace(/\./g, '_')} from bgp_template {
  local ${node.ip} as 64512;
  neighbor ${p.ip} as ${p.asNumber};
  source address ${node.ip};
}`).join('\n');
  const mesh = meshPeers.map((p) => `
protocol bgp Mesh_${p.ip.replace(/\./g, '_')} from bgp_template {
  local ${node.ip} as 64512;
  neighbor ${p.ip} as 64512;
  source address ${node.ip};
${p.ip > node.ip ? '  passive on; # Calico: toward a greater address (as strings) we wait for the peer\n' : ''}}`).join('\n');
  return `router id ${node.ip};
filter calico_export_to_bgp_peers {
  if ( net ~ ${POOL_CIDR} ) then { accept; }
  reject;
}
filter calico_kernel_programming {
  # Calico's own BIRD build sets krt_tunnel here for IPIP pools; an unencapsulated pool needs none.
  accept;
}
protocol kernel {
  learn;
  persist;
  scan time 2;
  ipv4 { import all; export filter calico_kernel_programming; };
  graceful restart;
  merge paths on;
}
protocol device { scan time 2; }
protocol direct { ipv4; interface -"cali*", "*"; }
# Calico's static routes for the node's affine blocks.
protocol static { ipv4; route ${node.block} blackhole; }
template bgp bgp_template {
  description "Connection to BGP peer";
  local as 64512;
  ipv4 { import all; export filter calico_export_to_bgp_peers; };
  graceful restart;
  connect delay time 2;
  connect retry time 5;
  error wait time 5,30;
}
${mesh}
${globals}
`;
}


/**
 * One node on one subnet with etcd (a LabEtcd, its datastore in force) and a BIRD ToR peering
 * with it through a global BGPPeer, and `podway run --bgp` started on node1: the model cache
 * tests' rig (model-cache-bgp-etcd, model-cache-bgp-withdraw-etcd). Filled as it is built, so that
 * stopEtcdTor stops whatever was made when a step fails.
 */
export interface EtcdTor {
  lab: Lab | null;
  store: LabKvStore | null;
  etcd: LabEtcd | null;
  birds: Birds | null;
  tor: BirdProcess | null;
}

export function etcdTor(): EtcdTor {
  return { lab: null, store: null, etcd: null, birds: null, tor: null };
}

/** Builds the rig into `r` (root needed); `storePrefix` names the etcd data dir. */
export async function startEtcdTor(r: EtcdTor, storePrefix: string): Promise<void> {
  if (!isRoot()) throw new Error('e2e tests need root (network namespaces)');
  const lab = (r.lab = guard(new Lab(nodesOnOneSubnet(1))));
  r.birds = new Birds(lab);
  lab.build();
  lab.setMode('direct');
  const store = (r.store = await lab.openKvStore('etcd', storePrefix));
  r.etcd = await lab.startEtcd();
  await lab.useKvDatastore(store.kv, store.spec);
  await applyResource(store.kv, parseAllDocuments(bgpPeerYaml('tor', TOR_IP, TOR_AS))[0]!.toJS() as JsonObject);
  r.tor = await r.birds.tor();
  await lab.startPodway('node1', 20_000, ['--bgp']);
}

/** Stops what startEtcdTor made (BIRD and etcd by PID); when the file failed (`ok` false) its logs
 * first: the last `lines` of the lab's, the ToR's protocols and `birdc` sections named, etcd's tail. */
export async function stopEtcdTor(r: EtcdTor, ok: boolean, lines: number, birdc: string[][] = [['show', 'protocols', 'all']]): Promise<void> {
  if (!r.lab) return;
  if (!ok) console.log(logTail(r.lab, lines), `\n--- ToR:\n${birdc.map((a) => r.tor?.birdc(...a) ?? '').join('\n')}\n--- etcd:\n${r.etcd?.log().slice(-1500)}`);
  await r.birds?.killAll();
  await teardown(r.lab); // etcd too (killed by PID, its data removed)
  await r.store?.close();
}
