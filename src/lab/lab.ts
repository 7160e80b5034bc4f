/**
 * A local Calico-shaped cluster in network namespaces, for the demo, the end-to-end tests and the
 * throughput benchmark. Everything it creates carries one random tag, and destroy() removes it all.
 *
 *   pods (veth / tap / tun, /32, default via 169.254.1.1)
 *     -> node namespaces (podway runs here; underlay eth0)
 *     -> fabric namespace: a bridge for subnet 10.99.0.0/24 and a routed link to 10.98.0.0/24
 *
 * Traffic only ever flows between addresses inside these namespaces.
 */
import { execFileSync, spawn, ChildProcess } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { parseAllDocuments } from 'yaml';
import { controlRequest } from '../dataplane/control-server';
import type { KvStore } from '../control/kv/kv';
import { EtcdKv } from '../control/kv/etcd-kv';
import { FileKv } from '../control/kv/file-kv';
import { applyResource, JsonObject } from '../control/v3-store';
import { Ipam } from '../control/ipam';
import { LabEtcd } from './etcd';

export type PodType = 'veth' | 'tap' | 'tun';
export type Mode = 'vxlan' | 'ipip' | 'direct' | 'crosssubnet' | 'ipip-crosssubnet';

export interface LabPodSpec { name: string; type: PodType }
export interface LabNodeSpec { name: string; subnet: 'a' | 'b'; pods: LabPodSpec[] }

export interface LabPod {
  name: string;
  type: PodType;
  node: string;
  ns: string;
  ip: string;
  /** host-side interface name (veth) or device name in the pod namespace (tap/tun) */
  ifname: string;
  /** interface inside the pod namespace */
  podIf: string;
  mac: string | null;
  /** The pod's IPv6 address in a dual-stack lab, else null. */
  ip6: string | null;
}

export interface LabNode {
  name: string;
  ns: string;
  ip: string;
  prefix: number;
  block: string;
  vtep: string;
  /** Dual-stack lab: the node's underlay IPv6, its IPv6 block (/122) and IPv6 VTEP; else null. */
  ip6: string | null;
  block6: string | null;
  vtep6: string | null;
  pods: LabPod[];
  proc: ChildProcess | null;
  control: string;
  log: string[];
}

/** A datastore from Lab.openKvStore: the store, the --datastore spec podways use, and its close (errors ignored; an embedded store's directory removed). */
export interface LabKvStore { kv: KvStore; spec: string; close(): Promise<void> }

export interface PingResult { sent: number; received: number; loss: number; rttMs: number | null; ttl: number | null }

const ROOT = path.resolve(__dirname, '..', '..', '..');

export function run(cmd: string, args: string[], opts: { allowFail?: boolean; timeoutMs?: number } = {}): string {
  try {
    return execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], timeout: opts.timeoutMs ?? 20_000 });
  } catch (e) {
    if (opts.allowFail) return ((e as { stdout?: string }).stdout ?? '') as string;
    const err = e as { stderr?: string; message: string };
    throw new Error(`${cmd} ${args.join(' ')}: ${err.stderr?.toString().trim() || err.message}`);
  }
}

/** The least Lab.startPodway waits for a podway to answer (its timeoutMs only ever adds to it). */
export const START_WAIT_MIN_MS = 60_000;
/**
 * How long a stopping `podway run` (SIGTERM) is given before SIGKILL: 20 s (was 5 s): a stop
 * spawns nft and ends two threads, which a loaded 2-CPU CI host stretches past 5 s, and tests
 * assert the exit code 0 or start the next run on what this one left.
 */
export const STOP_WAIT_MS = 20_000;

/** Seconds between the echo requests of Lab.ping (and the e2e tests' own pings). */
export const PING_INTERVAL_S = '0.05';

export const POOL_CIDR = '10.244.0.0/16';
export const POOL6_CIDR = 'fd00:10:244::/64';
/** Calico's IPv6 pod gateway (the EUI-64 link-local of ee:ee:ee:ee:ee:ee). */
export const GATEWAY6 = 'fe80::ecee:eeff:feee:eeee';
/** The outside's IPv6 address in a dual-stack lab (addOutside), its router's, and the router's on the nodes' link. */
export const OUTSIDE6 = 'fd00:203::10';
const OUTSIDE6_GATEWAY = 'fd00:203::1';
const FABRIC6 = 'fd99::fe';

/** Node k's IPv6 underlay address, block, VTEP, and its pod j's address (dual-stack labs). */
function v6For(k: number): { ip6: string; block6: string; vtep6: string } {
  // Canonical text (RFC 5952), as podway prints it: node 0's block is fd00:10:244::/122.
  const base = k === 0 ? '' : (64 * k).toString(16);
  return { ip6: `fd99::${k + 1}`, block6: `fd00:10:244::${base}/122`, vtep6: `fd00:10:244::${base}` };
}
/** An address on subnet b's I-th IPv6 subnet (routed6 labs), canonical: fd98::N, fd98:1::N, ... */
function sub6b(i: number, host: number | string): string {
  return `fd98:${i === 0 ? '' : `${i.toString(16)}:`}:${typeof host === 'number' ? host.toString(16) : host}`;
}
function pod6For(k: number, j: number): string {
  return `fd00:10:244::${(64 * k + 2 + j).toString(16)}`;
}

/** Calico's host-side veth name: "cali" + the first 11 hex digits of sha1("<namespace>.<pod>"). */
export function caliName(namespace: string, pod: string): string {
  return 'cali' + createHash('sha1').update(`${namespace}.${pod}`).digest('hex').slice(0, 11);
}

export class Lab {
  readonly tag = randomBytes(3).toString('hex');
  readonly dir = mkdtempSync(path.join(tmpdir(), 'podway-lab-'));
  readonly file = path.join(this.dir, 'cluster.yaml');
  /** More YAML documents the resource file carries (e.g. a FelixConfiguration), written by setMode. */
  extraResources: string[] = [];
  readonly fabric = `pw-fab-${this.tag}`;
  readonly nodes: LabNode[] = [];
  private readonly namespaces: string[] = [];
  mode: Mode = 'vxlan';
  /** The pool's natOutgoing (written by setMode/applyMode with the mode). */
  natOutgoing = false;
  /** The IPv6 pool's natOutgoing in a dual-stack lab (written by setMode/applyMode with the mode). */
  natOutgoing6 = false;
  /** The "outside" (addOutside): a namespace behind the fabric router, outside every pool; ip6
   * in a dual-stack lab. */
  outside: { ns: string; ip: string; ip6: string | null } | null = null;
  /** When set (useKvDatastore), podway reads this KV datastore and mode switches are written to it. */
  private kvDatastore: { kv: KvStore; spec: string } | null = null;
  private etcd: LabEtcd | null = null;

  /**
   * underlay 'fabric' (default): nodes hang off a bridge (subnet a) or a router (subnet b) in a
   * fabric namespace. 'p2p': exactly two nodes joined by one veth, nothing in between (the
   * benchmark topology: pod -> node -> underlay veth -> node -> pod).
   *
   * podOffloads (default true): veth pods keep their interface offloads (TSO/GSO, checksum) on, as
   * any CNI leaves them, so they hand podway 64 KiB super-frames with partial checksums (podway
   * segments them, native/README.md). false turns them off in every veth pod (tx, tso, gso).
   *
   * underlayOffloads (default false): a node's underlay veth stands for a wire between two NICs, so
   * its tx checksum offload (and with it TSO/GSO) is off: frames cross it whole, at most the MTU,
   * with their checksums filled, as a NIC puts them on a wire. Left on, a veth carries a kernel
   * node's GSO super-datagrams (VXLAN with a 64 KiB inner TCP segment and a partial checksum) to
   * the other node's sockets as they are, which no real underlay does (kind-style clusters whose
   * "nodes" share one kernel: docs/networking.md, "Offloads, super-frames and outer fragments").
   *
   * dualStack (default false): every node on subnet a (or in a p2p lab) gets an IPv6 underlay
   * address fd99::N/64 and an IPv6 block of fd00:10:244::/64 (/122, VXLAN over IPv6 in the vxlan
   * and crosssubnet modes, unencapsulated otherwise), and its pods an IPv6 /128 beside the IPv4
   * one with `default via fe80::ecee:eeff:feee:eeee` (tun pods: `default dev`). DAD is off in
   * the lab's namespaces so addresses are usable at once.
   *
   * ipv6Only (default false; implies dualStack, fabric underlay, subnet a): the nodes' underlay has
   * its IPv6 address only (no IPv4 address, no IPv4 route: start podway with `--ip none`) and the
   * pods their IPv6 /128 only. LabNode.ip and LabPod.ip are '' then. The resources keep the IPv4
   * pool (an IPv6-only node skips it) but no IPv4 Node address, block or pod address.
   *
   * routed6 (default false; with dualStack, fabric underlay): the nodes on subnet b get IPv6 too,
   * each on its own IPv6 subnet behind the fabric router (fd98:I::N/64, the router fd98:I::fe),
   * the router forwards IPv6 and holds fd99::fe on subnet a, and every node's IPv6 default route
   * goes to the router (IPv6 across a router: test/e2e/direct-offlink6). Pod routes on the
   * router are the test's to add, as for IPv4.
   */
  constructor(private readonly spec: LabNodeSpec[], private readonly opts: { underlay?: 'fabric' | 'p2p'; podOffloads?: boolean; underlayOffloads?: boolean; dualStack?: boolean; ipv6Only?: boolean; routed6?: boolean } = {}) {}

  get dualStack(): boolean {
    return this.opts.dualStack === true || this.ipv6Only;
  }

  get ipv6Only(): boolean {
    return this.opts.ipv6Only === true;
  }

  /** The node's underlay veth as a wire (see the constructor's underlayOffloads). */
  private wire(ns: string): void {
    if (!this.opts.underlayOffloads) run('ip', ['netns', 'exec', ns, 'ethtool', '-K', 'eth0', 'tx', 'off']);
  }

  static defaultSpec(): LabNodeSpec[] {
    return [
      { name: 'node1', subnet: 'a', pods: [{ name: 'web-1', type: 'veth' }, { name: 'tap-1', type: 'tap' }] },
      { name: 'node2', subnet: 'a', pods: [{ name: 'web-2', type: 'veth' }, { name: 'tap-2', type: 'tap' }] },
      { name: 'node3', subnet: 'b', pods: [{ name: 'web-3', type: 'veth' }, { name: 'tun-3', type: 'tun' }] },
    ];
  }

  private addNs(name: string): string {
    run('ip', ['netns', 'add', name]);
    this.namespaces.push(name);
    if (this.dualStack) run('ip', ['netns', 'exec', name, 'sysctl', '-qw', 'net.ipv6.conf.all.accept_dad=0', 'net.ipv6.conf.default.accept_dad=0']);
    run('ip', ['-n', name, 'link', 'set', 'lo', 'up']);
    return name;
  }

  /** Build namespaces, links, addresses and pods. On failure everything made so far is removed. */
  build(): void {
    try {
      this.buildInner();
    } catch (e) {
      this.destroy();
      throw e;
    }
  }

  private buildInner(): void {
    if (this.opts.underlay === 'p2p') return this.buildP2p();
    if (this.ipv6Only && this.spec.some((n) => n.subnet !== 'a')) throw new Error('an IPv6-only lab has its nodes on subnet a');
    const fab = this.addNs(this.fabric);
    run('ip', ['-n', fab, 'link', 'add', 'br0', 'type', 'bridge']);
    run('ip', ['-n', fab, 'addr', 'add', '10.99.0.254/24', 'dev', 'br0']);
    // An IPv6-only lab's fabric has its IPv6 address from the start (its etcd listens on it).
    if (this.ipv6Only) run('ip', ['-n', fab, '-6', 'addr', 'add', `${FABRIC6}/64`, 'dev', 'br0', 'nodad']);
    run('ip', ['-n', fab, 'link', 'set', 'br0', 'up']);
    run('ip', ['netns', 'exec', fab, 'sysctl', '-qw', 'net.ipv4.ip_forward=1']);
    const routed6 = this.opts.routed6 === true && this.dualStack;
    if (routed6) {
      run('ip', ['netns', 'exec', fab, 'sysctl', '-qw', 'net.ipv6.conf.all.forwarding=1']);
      run('ip', ['-n', fab, '-6', 'addr', 'replace', `${FABRIC6}/64`, 'dev', 'br0', 'nodad']);
    }
    let bIndex = 0;
    this.spec.forEach((ns, k) => {
      const nsName = this.addNs(`pw-${ns.name}-${this.tag}`);
      const inA = ns.subnet === 'a';
      const ip = this.ipv6Only ? '' : inA ? `10.99.0.${k + 1}` : `10.98.${bIndex}.${k + 1}`;
      const fabIf = `u${k + 1}`;
      run('ip', ['link', 'add', 'eth0', 'netns', nsName, 'type', 'veth', 'peer', 'name', fabIf, 'netns', fab]);
      if (ip) run('ip', ['-n', nsName, 'addr', 'add', `${ip}/24`, 'dev', 'eth0']);
      run('ip', ['-n', nsName, 'link', 'set', 'eth0', 'up']);
      this.wire(nsName);
      if (inA) {
        run('ip', ['-n', fab, 'link', 'set', fabIf, 'master', 'br0']);
        if (ip) run('ip', ['-n', nsName, 'route', 'add', 'default', 'via', '10.99.0.254']);
      }
      const v6 = this.dualStack && (inA || routed6) ? v6For(k) : null;
      if (v6 && !inA) v6.ip6 = sub6b(bIndex, k + 1);
      if (!inA) {
        run('ip', ['-n', fab, 'addr', 'add', `10.98.${bIndex}.254/24`, 'dev', fabIf]);
        run('ip', ['-n', nsName, 'route', 'add', 'default', 'via', `10.98.${bIndex}.254`]);
        if (v6) run('ip', ['-n', fab, '-6', 'addr', 'add', `${sub6b(bIndex, 'fe')}/64`, 'dev', fabIf, 'nodad']);
      }
      run('ip', ['-n', fab, 'link', 'set', fabIf, 'up']);
      const blockBase = 64 * k;
      if (v6) run('ip', ['-n', nsName, '-6', 'addr', 'add', `${v6.ip6}/64`, 'dev', 'eth0', 'nodad']);
      if (v6 && routed6) run('ip', ['-n', nsName, '-6', 'route', 'add', 'default', 'via', inA ? FABRIC6 : sub6b(bIndex, 'fe')]);
      if (!inA) bIndex++;
      const node: LabNode = {
        name: ns.name, ns: nsName, ip, prefix: 24, block: `10.244.0.${blockBase}/26`, vtep: `10.244.0.${blockBase}`,
        ip6: v6?.ip6 ?? null, block6: v6?.block6 ?? null, vtep6: v6?.vtep6 ?? null,
        pods: [], proc: null, control: path.join(this.dir, `${ns.name}.sock`), log: [],
      };
      ns.pods.forEach((p, j) => node.pods.push(this.addPod(node, p, this.ipv6Only ? '' : `10.244.0.${blockBase + 2 + j}`, v6 ? pod6For(k, j) : null)));
      this.nodes.push(node);
    });
    this.setMode(this.mode);
  }

  /**
   * An "outside" host, stand-in for the internet: a namespace on its own link to the fabric router
   * (203.0.113.10/24, TEST-NET-3, outside every pool and node subnet), reached by every node
   * through its default route. Fabric underlay only; destroy() removes it.
   *
   * Dual stack: the outside also has OUTSIDE6 (fd00:203::10/64, a ULA range used nowhere else in
   * the lab) behind the fabric router, which forwards IPv6 and holds fd99::fe on the nodes' link;
   * every node with IPv6 gets `default via fd99::fe`, and the router routes each node's IPv6 block
   * to that node (as a BGP fabric would), so unNATed replies find the pods.
   */
  addOutside(): { ns: string; ip: string; ip6: string | null } {
    if (this.outside) return this.outside;
    if (this.opts.underlay === 'p2p') throw new Error('the outside hangs off the fabric router: a p2p lab has none');
    const ns = this.addNs(`pw-out-${this.tag}`);
    run('ip', ['link', 'add', 'eth0', 'netns', ns, 'type', 'veth', 'peer', 'name', 'out0', 'netns', this.fabric]);
    run('ip', ['-n', this.fabric, 'addr', 'add', '203.0.113.1/24', 'dev', 'out0']);
    run('ip', ['-n', this.fabric, 'link', 'set', 'out0', 'up']);
    run('ip', ['-n', ns, 'addr', 'add', '203.0.113.10/24', 'dev', 'eth0']);
    run('ip', ['-n', ns, 'link', 'set', 'eth0', 'up']);
    run('ip', ['-n', ns, 'route', 'add', 'default', 'via', '203.0.113.1']);
    this.wire(ns);
    if (this.dualStack) {
      const fab = this.fabric;
      run('ip', ['netns', 'exec', fab, 'sysctl', '-qw', 'net.ipv6.conf.all.forwarding=1']);
      if (!this.ipv6Only) run('ip', ['-n', fab, '-6', 'addr', 'replace', `${FABRIC6}/64`, 'dev', 'br0', 'nodad']);
      run('ip', ['-n', fab, '-6', 'addr', 'add', `${OUTSIDE6_GATEWAY}/64`, 'dev', 'out0', 'nodad']);
      run('ip', ['-n', ns, '-6', 'addr', 'add', `${OUTSIDE6}/64`, 'dev', 'eth0', 'nodad']);
      run('ip', ['-n', ns, '-6', 'route', 'add', 'default', 'via', OUTSIDE6_GATEWAY]);
      for (const n of this.nodes) {
        if (n.ip6 === null) continue;
        if (this.opts.routed6 !== true) run('ip', ['-n', n.ns, '-6', 'route', 'add', 'default', 'via', FABRIC6]);
        if (n.block6) run('ip', ['-n', fab, '-6', 'route', 'add', n.block6, 'via', n.ip6]);
      }
    }
    this.outside = { ns, ip: '203.0.113.10', ip6: this.dualStack ? OUTSIDE6 : null };
    return this.outside;
  }

  private buildP2p(): void {
    if (this.spec.length !== 2) throw new Error('a p2p lab has exactly two nodes');
    const ns = this.spec.map((n) => this.addNs(`pw-${n.name}-${this.tag}`));
    run('ip', ['link', 'add', 'eth0', 'netns', ns[0], 'type', 'veth', 'peer', 'name', 'eth0', 'netns', ns[1]]);
    this.spec.forEach((spec, k) => {
      const ip = `10.99.0.${k + 1}`;
      run('ip', ['-n', ns[k], 'addr', 'add', `${ip}/24`, 'dev', 'eth0']);
      run('ip', ['-n', ns[k], 'link', 'set', 'eth0', 'up']);
      this.wire(ns[k]);
      // a default route, so the kernel's proxy ARP (which needs a route to 169.254.1.1) works
      run('ip', ['-n', ns[k], 'route', 'add', 'default', 'via', `10.99.0.${2 - k}`]);
      const blockBase = 64 * k;
      const v6 = this.dualStack ? v6For(k) : null;
      if (v6) run('ip', ['-n', ns[k], '-6', 'addr', 'add', `${v6.ip6}/64`, 'dev', 'eth0', 'nodad']);
      const node: LabNode = {
        name: spec.name, ns: ns[k], ip, prefix: 24, block: `10.244.0.${blockBase}/26`, vtep: `10.244.0.${blockBase}`,
        ip6: v6?.ip6 ?? null, block6: v6?.block6 ?? null, vtep6: v6?.vtep6 ?? null,
        pods: [], proc: null, control: path.join(this.dir, `${spec.name}.sock`), log: [],
      };
      spec.pods.forEach((p, j) => node.pods.push(this.addPod(node, p, `10.244.0.${blockBase + 2 + j}`, v6 ? pod6For(k, j) : null)));
      this.nodes.push(node);
    });
    this.setMode(this.mode);
  }

  private addPod(node: LabNode, p: LabPodSpec, ip: string, ip6: string | null = null): LabPod {
    const podNs = this.addNs(`pw-${p.name}-${this.tag}`);
    const short = createHash('sha1').update(`${this.tag}.${p.name}`).digest('hex').slice(0, 8);
    let ifname: string;
    let podIf: string;
    let mac: string | null = null;
    if (p.type === 'veth') {
      ifname = caliName('default', `${p.name}-${this.tag}`);
      podIf = 'eth0';
      run('ip', ['link', 'add', ifname, 'netns', node.ns, 'type', 'veth', 'peer', 'name', podIf, 'netns', podNs]);
      run('ip', ['-n', node.ns, 'link', 'set', ifname, 'address', 'ee:ee:ee:ee:ee:ee']);
      run('ip', ['-n', node.ns, 'link', 'set', ifname, 'up']);
    } else {
      ifname = `${p.type}${short}`;
      podIf = ifname;
      // A persistent device inside the pod namespace; podway opens its fd from there.
      run('ip', ['-n', podNs, 'tuntap', 'add', 'dev', ifname, 'mode', p.type]);
    }
    if (ip) run('ip', ['-n', podNs, 'addr', 'add', `${ip}/32`, 'dev', podIf]);
    if (ip6) run('ip', ['-n', podNs, '-6', 'addr', 'add', `${ip6}/128`, 'dev', podIf, 'nodad']);
    run('ip', ['-n', podNs, 'link', 'set', podIf, 'up']);
    if (p.type === 'tun') {
      run('ip', ['-n', podNs, 'route', 'add', 'default', 'dev', podIf]);
      if (ip6) run('ip', ['-n', podNs, '-6', 'route', 'add', 'default', 'dev', podIf]);
    } else {
      if (ip6) run('ip', ['-n', podNs, '-6', 'route', 'add', 'default', 'via', GATEWAY6, 'dev', podIf]);
      if (ip) {
        run('ip', ['-n', podNs, 'route', 'add', '169.254.1.1', 'dev', podIf, 'scope', 'link']);
        run('ip', ['-n', podNs, 'route', 'add', 'default', 'via', '169.254.1.1', 'dev', podIf]);
      }
      mac = JSON.parse(run('ip', ['-j', '-n', podNs, 'link', 'show', podIf]))[0].address;
      // Offloads stay on unless asked otherwise (podway receives super-frames whole and segments them).
      if (p.type === 'veth' && this.opts.podOffloads === false) run('ip', ['netns', 'exec', podNs, 'ethtool', '-K', podIf, 'tx', 'off', 'tso', 'off', 'gso', 'off']);
    }
    return { name: p.name, type: p.type, node: node.name, ns: podNs, ip, ifname, podIf, mac, ip6 };
  }

  /** Pod MTU Calico gives for the mode (1500 underlay). */
  static podMtu(mode: Mode): number {
    return mode === 'vxlan' || mode === 'crosssubnet' ? 1450 : mode === 'ipip' || mode === 'ipip-crosssubnet' ? 1480 : 1500;
  }

  /** Write the resource file for the mode (a running podway picks it up) and set pod MTUs. */
  setMode(mode: Mode): void {
    this.mode = mode;
    writeFileSync(this.file + '.tmp', this.resources(mode));
    // rename: watchers see one complete file, never a half-written one
    run('mv', [this.file + '.tmp', this.file]);
    this.setPodMtus(mode);
  }

  /** Give every pod interface the mode's pod MTU, as the CNI would. */
  private setPodMtus(mode: Mode): void {
    // Dual-stack VXLAN: IPv6 VXLAN's overhead (70) sets the pods' MTU, as in Calico.
    const mtu = this.dualStack && (mode === 'vxlan' || mode === 'crosssubnet') ? 1430 : Lab.podMtu(mode);
    for (const n of this.nodes) for (const p of n.pods) run('ip', ['-n', p.ns, 'link', 'set', p.podIf, 'mtu', String(mtu)]);
  }

  /** The --datastore podway is started with: the YAML file, or the KV datastore in use. */
  get datastoreSpec(): string {
    return this.kvDatastore?.spec ?? `file:${this.file}`;
  }

  /**
   * A real etcd in the fabric namespace, listening on the bridge address the nodes reach
   * (http://10.99.0.254:2379; an IPv6-only lab's http://[fd99::fe]:2379); this process talks to it
   * over `localEndpoint` (a unix socket).
   * destroy() kills it and removes its data.
   */
  async startEtcd(): Promise<LabEtcd> {
    if (this.opts.underlay === 'p2p') throw new Error('etcd runs in the fabric namespace: a p2p lab has none');
    if (this.etcd) return this.etcd;
    // An IPv6-only lab's nodes have no IPv4 address to reach it by: its bridge's IPv6 one.
    this.etcd = await LabEtcd.start({ netns: this.fabric, host: this.ipv6Only ? FABRIC6 : '10.99.0.254' });
    return this.etcd;
  }

  /** The IPPool and WorkloadEndpoints for `mode` as objects (Nodes are left to podway, which registers itself). */
  kvResources(mode: Mode): JsonObject[] {
    return parseAllDocuments(this.resources(mode))
      .map((d) => d.toJS() as JsonObject)
      .filter((o) => o.kind === 'IPPool' || o.kind === 'WorkloadEndpoint');
  }

  /**
   * Use a KV datastore (etcd, or the embedded store) in Calico's layout instead of the YAML file:
   * writes the IPPool for the current mode and the pods' WorkloadEndpoints (all but `withoutEndpoints`),
   * and gives every pod its addresses (IPv6 too in a dual-stack lab) through IPAM, as the CNI plugin
   * would. No Node is written: podways started after this read `spec` and register their own
   * Nodes (IPv4 and IPv6 addresses found on their underlay, VXLAN tunnel addresses from IPAM).
   */
  /**
   * A KV datastore for this lab's podways (hand it to useKvDatastore): etcd started in the fabric
   * (startEtcd), reached from here over its local socket; or an embedded store in a new directory
   * of the lab's directory starting with `prefix`. The caller closes it after teardown.
   */
  async openKvStore(kind: 'etcd' | 'embedded', prefix: string): Promise<LabKvStore> {
    if (kind === 'etcd') {
      const etcd = await this.startEtcd();
      const kv = new EtcdKv({ endpoints: [etcd.localEndpoint], timeoutMs: 5000 });
      return { kv, spec: `etcd:${etcd.endpoint}`, close: () => kv.close().catch(() => undefined) };
    }
    // inside the lab's directory: destroy() removes it also when close() never runs (a signal)
    const dir = mkdtempSync(path.join(this.dir, prefix));
    const kv = new FileKv({ dir });
    return {
      kv,
      spec: `embedded:${dir}`,
      close: async () => {
        await kv.close().catch(() => undefined);
        rmSync(dir, { recursive: true, force: true });
      },
    };
  }

  async useKvDatastore(kv: KvStore, spec: string, opts: { withoutEndpoints?: string[] } = {}): Promise<void> {
    const skip = new Set(opts.withoutEndpoints ?? []);
    for (const obj of this.kvResources(this.mode)) {
      const pod = (obj.spec as { pod?: string }).pod;
      if (obj.kind === 'WorkloadEndpoint' && pod !== undefined && skip.has(pod)) continue;
      await applyResource(kv, obj);
    }
    const ipam = new Ipam(kv);
    for (const n of this.nodes) {
      for (const p of n.pods) {
        // One handle for both families, as the CNI plugin holds a dual-stack pod's addresses.
        for (const ip of [p.ip, p.ip6].filter((x): x is string => !!x)) await ipam.assignIp({ ip, handleId: `lab.${p.name}`, attrs: { node: n.name, pod: p.name }, node: n.name });
      }
    }
    this.kvDatastore = { kv, spec };
  }

  /** Write `pod`'s WorkloadEndpoint to the KV datastore (one left out by useKvDatastore). */
  async addEndpoint(pod: string): Promise<void> {
    if (!this.kvDatastore) throw new Error('addEndpoint needs a KV datastore (useKvDatastore)');
    const wep = this.kvResources(this.mode).find((o) => o.kind === 'WorkloadEndpoint' && (o.spec as { pod?: string }).pod === pod);
    if (!wep) throw new Error(`no pod ${pod}`);
    await applyResource(this.kvDatastore.kv, wep);
  }

  /**
   * Switch the pool's mode where podway reads it: the file (setMode), or the IPPool in the KV
   * datastore; pod MTUs follow as the CNI would set them.
   */
  async applyMode(mode: Mode): Promise<void> {
    if (!this.kvDatastore) return this.setMode(mode);
    // every pool of the mode (the IPv6 one too in a dual-stack lab)
    for (const pool of this.kvResources(mode).filter((o) => o.kind === 'IPPool')) await applyResource(this.kvDatastore.kv, pool);
    this.mode = mode;
    this.setPodMtus(mode);
  }

  resources(mode: Mode): string {
    const ipip = mode === 'ipip' ? 'Always' : mode === 'ipip-crosssubnet' ? 'CrossSubnet' : 'Never';
    const vxlan = mode === 'vxlan' ? 'Always' : mode === 'crosssubnet' ? 'CrossSubnet' : 'Never';
    const docs: string[] = [
      `apiVersion: projectcalico.org/v3
kind: IPPool
metadata:
  name: default-ipv4-ippool
spec:
  cidr: ${POOL_CIDR}
  blockSize: 26
  ipipMode: ${ipip}
  vxlanMode: ${vxlan}
  natOutgoing: ${this.natOutgoing}`,
    ];
    if (this.dualStack) {
      docs.push(`apiVersion: projectcalico.org/v3
kind: IPPool
metadata:
  name: default-ipv6-ippool
spec:
  cidr: "${POOL6_CIDR}"
  blockSize: 122
  ipipMode: Never
  vxlanMode: ${vxlan}
  natOutgoing: ${this.natOutgoing6}`);
    }
    for (const n of this.nodes) {
      // an IPv6-only node has no IPv4 address, VTEP or block: only the IPv6 ones
      const v4 = !this.ipv6Only;
      const bgp = [v4 && `    ipv4Address: ${n.ip}/${n.prefix}`, n.ip6 && `    ipv6Address: "${n.ip6}/64"`];
      // IPIP modes: the IPIP tunnel address (Calico's tunl0 address) is the same first address of the block.
      const ipipAddr = v4 && (mode === 'ipip' || mode === 'ipip-crosssubnet') && `    ipv4IPIPTunnelAddr: ${n.vtep}`;
      const tunnels = [v4 && `  ipv4VXLANTunnelAddr: ${n.vtep}`, n.vtep6 && `  ipv6VXLANTunnelAddr: "${n.vtep6}"`];
      docs.push(`apiVersion: projectcalico.org/v3
kind: Node
metadata:
  name: ${n.name}
spec:
  bgp:
${[...bgp, ipipAddr, ...tunnels].filter(Boolean).join('\n')}`);
      if (!this.ipv6Only) docs.push(`apiVersion: projectcalico.org/v3
kind: BlockAffinity
metadata:
  name: ${n.name}-${n.block.replace(/[./]/g, '-')}
spec:
  node: ${n.name}
  cidr: ${n.block}
  state: confirmed`);
      if (n.block6) {
        docs.push(`apiVersion: projectcalico.org/v3
kind: BlockAffinity
metadata:
  name: ${n.name}-${n.block6.replace(/[:/]/g, '-')}
spec:
  node: ${n.name}
  cidr: "${n.block6}"
  state: confirmed`);
      }
      for (const p of n.pods) {
        docs.push(`apiVersion: projectcalico.org/v3
kind: WorkloadEndpoint
metadata:
  name: ${n.name.replace(/-/g, '--')}-k8s-${p.name.replace(/-/g, '--')}-eth0
  namespace: default${p.type !== 'veth' ? `\n  annotations:\n    cni.podway.io/interface-type: ${p.type}\n    cni.podway.io/interface-netns: /run/netns/${p.ns}` : ''}
spec:
  node: ${n.name}
  orchestrator: k8s
  pod: ${p.name}
  endpoint: eth0
  interfaceName: ${p.ifname}
  ipNetworks:${p.ip ? `\n    - ${p.ip}/32` : ''}${p.ip6 ? `\n    - "${p.ip6}/128"` : ''}${p.mac ? `\n  mac: "${p.mac}"` : ''}`);
      }
    }
    return [...docs, ...this.extraResources].join('\n---\n') + '\n';
  }

  node(name: string): LabNode {
    const n = this.nodes.find((x) => x.name === name);
    if (!n) throw new Error(`no node ${name}`);
    return n;
  }

  pod(name: string): LabPod {
    for (const n of this.nodes) for (const p of n.pods) if (p.name === name) return p;
    throw new Error(`no pod ${name}`);
  }

  /**
   * Start `podway run` on a node and wait until its control socket answers `status` (forwarding),
   * for at least START_WAIT_MIN_MS whatever `timeoutMs` says: a bound on the wait, not on podway's
   * speed (a Node process start on a loaded 2-CPU host took over 20 s, the CPU time under 1 s).
   * `env`: added to this process's environment for it (NODE_OPTIONS, say). `root`: the checkout
   * whose bin/podway.js runs (another build's, for a bench comparing two).
   */
  async startPodway(nodeName: string, timeoutMs = START_WAIT_MIN_MS, extraArgs: string[] = [], env: NodeJS.ProcessEnv = {}, root = ROOT): Promise<void> {
    timeoutMs = Math.max(timeoutMs, START_WAIT_MIN_MS);
    const n = this.node(nodeName);
    const bin = path.join(root, 'bin', 'podway.js');
    // The model cache in the lab's directory (never the host's /var/lib/podway), kept across restarts.
    const cache = extraArgs.includes('--model-cache') ? [] : ['--model-cache', this.modelCachePath(n.name)];
    const proc = spawn('ip', ['netns', 'exec', n.ns, process.execPath, bin, 'run', '--node', n.name, '--datastore', this.datastoreSpec, '--control', n.control, ...cache, ...extraArgs], { stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, ...env } });
    n.proc = proc;
    proc.stderr!.setEncoding('utf8');
    proc.stderr!.on('data', (d: string) => {
      n.log.push(...d.split('\n').filter(Boolean));
      if (n.log.length > 500) n.log.splice(0, n.log.length - 500);
    });
    const end = Date.now() + timeoutMs;
    while (Date.now() < end) {
      if (proc.exitCode !== null) throw new Error(`podway on ${n.name} exited (${proc.exitCode}): ${n.log.slice(-5).join(' | ')}`);
      if (existsSync(n.control)) {
        try {
          await controlRequest(n.control, { cmd: 'status' }, 2000);
          return;
        } catch {
          /* not yet */
        }
      }
      await sleep(50);
    }
    throw new Error(`podway on ${n.name} did not come up in ${timeoutMs} ms: ${n.log.slice(-5).join(' | ')}`);
  }

  /** Where a node's podway keeps its model cache (podway run --model-cache) in this lab. */
  modelCachePath(nodeName: string): string {
    return path.join(this.dir, `${nodeName}.model.json`);
  }

  /**
   * SIGTERM; SIGKILL (and null) if it still runs after `timeoutMs`. Its exit code otherwise.
   * STOP_WAIT_MS by default. A quick stop does not wait (within()).
   */
  async stopPodway(nodeName: string, timeoutMs = STOP_WAIT_MS): Promise<number | null> {
    const n = this.node(nodeName);
    const p = n.proc;
    if (!p) return null;
    n.proc = null;
    // ended already (a signal too: exitCode null): its 'exit' is past, a listener would wait the whole timeoutMs
    if (p.exitCode !== null || p.signalCode !== null) return p.exitCode;
    // Its log read to the end too ('close', 2 s at most after the exit: its spawner helper, which
    // shares its stderr, ends a moment after it): 'exit' can come before its last lines are read,
    // and callers look for what it said as it stopped.
    const closed = new Promise<void>((r) => p.once('close', () => r()));
    p.kill('SIGTERM');
    const code = await within(new Promise<number | null>((r) => p.once('exit', (c) => r(c))), timeoutMs, 'timeout' as const);
    if (code === 'timeout') {
      p.kill('SIGKILL');
      return null;
    }
    await within(closed, 2000, null);
    return code;
  }

  /** Wait until every running podway has applied the current file (its routes show the mode). */
  async waitApplied(check: (routes: { cidr: string; kind: string }[], node: LabNode) => boolean, timeoutMs = 10_000): Promise<void> {
    const end = Date.now() + timeoutMs;
    for (const n of this.nodes) {
      if (!n.proc) continue;
      for (;;) {
        const routes = (await controlRequest(n.control, { cmd: 'routes' })) as { cidr: string; kind: string }[];
        if (check(routes, n)) break;
        if (Date.now() > end) throw new Error(`podway on ${n.name} did not apply the new resources in time`);
        await sleep(50);
      }
    }
  }

  /**
   * `count` echo requests from a pod, 50 ms apart (root may go below ping's 200 ms floor; the
   * replies, not the pace, are what callers check: each may take up to -W seconds, 1 unless
   * `extra` says otherwise). With more than one request ping gets a deadline (pingArgs): it waits
   * for every reply, and only the replies to requests 1..count are counted.
   */
  ping(from: string, toIp: string, count = 3, size = 56, extra: string[] = []): PingResult {
    const p = this.pod(from);
    const out = run('ip', ['netns', 'exec', p.ns, 'ping', ...pingArgs(count, ['-s', String(size), ...extra]), toIp], { allowFail: true, timeoutMs: 5000 + count * 1500 });
    return parsePing(out, count);
  }

  destroy(): void {
    for (const n of this.nodes) {
      if (n.proc && n.proc.exitCode === null) n.proc.kill('SIGKILL');
      n.proc = null;
    }
    this.etcd?.destroySync();
    this.etcd = null;
    for (const ns of this.namespaces.reverse()) run('ip', ['netns', 'del', ns], { allowFail: true });
    this.namespaces.length = 0;
    rmSync(this.dir, { recursive: true, force: true });
  }
}

/**
 * ping's arguments for `count` requests PING_INTERVAL_S (or `intervalS`) apart, each reply awaited up to -W
 * seconds (1 unless `extra` gives -W). ping -c alone, once any reply came, exits twice the slowest
 * round trip so far (at least one interval: 50 ms) after its last request: -W only covers "no
 * reply yet", so a last reply delayed 50 ms by a loaded host counted as lost. With count > 1 a
 * deadline (-w: twice the planned time, as a loaded host stretches ping's pace, plus -W and a
 * second) makes ping wait until `count` replies came; a request
 * left unanswered at the next tick makes ping send one more (numbered past count, which
 * parsePing does not count), so callers expecting no reply at an exact packet count pass
 * `{ awaitReplies: false }`.
 */
export function pingArgs(count: number, extra: string[] = [], opts: { awaitReplies?: boolean; intervalS?: number } = {}): string[] {
  const interval = opts.intervalS ?? Number(PING_INTERVAL_S);
  const args = ['-n', '-c', String(count), '-i', String(interval), '-W', '1', ...extra];
  if (count > 1 && opts.awaitReplies !== false) {
    const w = args.lastIndexOf('-W');
    const waitS = Number(args[w + 1]) || 1;
    args.push('-w', String(Math.ceil(2 * count * interval + waitS + 1)));
  }
  return args;
}

/**
 * ping's output as the result of `count` requests: the replies to icmp_seq 1..count (a deadline
 * may have made ping send more: pingArgs), each counted once; sent is count unless ping sent
 * fewer (an error stopped it).
 */
export function parsePing(out: string, count: number): PingResult {
  const m = /(\d+) packets transmitted, (\d+) (?:packets )?received/.exec(out);
  const transmitted = m ? Number(m[1]) : count;
  const sent = Math.min(transmitted, count);
  const replied = new Set<number>();
  const ttls: number[] = [];
  for (const r of out.matchAll(/bytes from .*?icmp_seq=(\d+) ttl=(\d+)/g)) {
    const seq = Number(r[1]);
    if (seq >= 1 && seq <= count) {
      replied.add(seq);
      ttls.push(Number(r[2]));
    }
  }
  // No reply lines (ping -q): its own count, at most the requests that count.
  const received = replied.size > 0 || !m ? replied.size : Math.min(Number(m[2]), sent);
  const rtt = /= [\d.]+\/([\d.]+)\//.exec(out);
  return { sent, received, loss: sent ? Math.round(((sent - received) / sent) * 100) : 100, rttMs: rtt ? Number(rtt[1]) : null, ttl: ttls.length ? ttls[0] : null };
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * `p`'s value, or `onTimeout` if `p` has not settled after `ms`. The timer is cleared either way:
 * raced against a plain sleep, a pending timer keeps the process alive that long (a test file
 * lingered 5-20 s after its last test, waiting out the bound on a stop that took milliseconds).
 */
export async function within<T, U>(p: Promise<T>, ms: number, onTimeout: U): Promise<T | U> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([p, new Promise<U>((r) => (timer = setTimeout(() => r(onTimeout), ms)))]);
  } finally {
    clearTimeout(timer);
  }
}
