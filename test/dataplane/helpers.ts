// A node's forwarding pipeline wired the way Engine.apply/openInfra wire it, on MemoryIO ports, so
// the tests of test/dataplane/pipeline-*.test.ts run in a plain Node process (no root, no addon)
// and compare what the pipeline sends with frames scapy built (test/fixtures/scapy-frames.json,
// the `pipe_*` fixtures of scripts/gen-fixtures.py). Also: checksum and byte-comparison helpers
// written here from scratch (so they do not share code with what they check), and a classic BPF
// interpreter for the underlay socket filter.
import * as assert from 'uvu/assert';
import { computeNodeModel, parseClusterYaml, NodeDataplaneModel } from '../../src/control';
import { MemoryIO, MemFrame } from '../../src/dataplane/memory-io';
import { FramePool } from '../../src/dataplane/frame-pool';
import { Pipeline, Role, tunnelsOf, FRAG_DESCS } from '../../src/dataplane/pipeline';
import { NeighborQueue } from '../../src/dataplane/neighbor-queue';
import { buildNextHops, learnNeighbor, NextHops } from '../../src/dataplane/nexthops';
import { underlayFilter } from '../../src/dataplane/host';
import { COUNTER_NAMES, PORT_COUNTERS } from '../../src/dataplane/counters';
import { fromHex, parseIpv4, parseMac, toHex } from '../../src/packet';
import { fixture } from '../packet/helpers';
import { sh } from '../helpers/netns';

export const NODE1 = parseIpv4('10.99.0.1');
export const NODE2 = parseIpv4('10.99.0.2');
export const NODE1_MAC = '52:54:00:99:00:01';
export const NODE2_MAC = '52:54:00:99:00:02';
export const VTEP1_MAC = '66:99:00:00:00:01';
export const VTEP2_MAC = '66:99:00:00:00:02';
export const A = parseIpv4('10.244.0.1');
export const B = parseIpv4('10.244.0.2');
export const T = parseIpv4('10.245.0.3');
export const U = parseIpv4('10.246.0.4');
export const RV = parseIpv4('10.244.0.65');

/**
 * Two nodes on 10.99.0.0/24 and three pools: 10.244/16 VXLAN, 10.245/16 IPIP, 10.246/16 without
 * encapsulation, with a /26 block per node in each. node1's pods: veths caliA (10.244.0.1) and
 * caliB (10.244.0.2) with declared MACs, tap tapT (10.245.0.3, MAC learned from its frames), tun
 * tunU (10.246.0.4). node2's pods sit at .65 (and 10.244.0.66) of its blocks.
 * The same addresses as the pipe_* fixtures of scripts/gen-fixtures.py.
 */
export const CLUSTER_YAML = `
apiVersion: projectcalico.org/v3
kind: IPPool
metadata: { name: vxlan-pool }
spec: { cidr: 10.244.0.0/16, blockSize: 26, vxlanMode: Always, ipipMode: Never }
---
apiVersion: projectcalico.org/v3
kind: IPPool
metadata: { name: ipip-pool }
spec: { cidr: 10.245.0.0/16, blockSize: 26, vxlanMode: Never, ipipMode: Always }
---
apiVersion: projectcalico.org/v3
kind: IPPool
metadata: { name: plain-pool }
spec: { cidr: 10.246.0.0/16, blockSize: 26, vxlanMode: Never, ipipMode: Never }
---
apiVersion: projectcalico.org/v3
kind: Node
metadata: { name: node1 }
spec:
  bgp: { ipv4Address: 10.99.0.1/24 }
  ipv4VXLANTunnelAddr: 10.244.0.0
  vxlanTunnelMACAddr: "${VTEP1_MAC}"
---
apiVersion: projectcalico.org/v3
kind: Node
metadata: { name: node2 }
spec:
  bgp: { ipv4Address: 10.99.0.2/24 }
  ipv4VXLANTunnelAddr: 10.244.0.64
  vxlanTunnelMACAddr: "${VTEP2_MAC}"
${['10.244.0.0', '10.245.0.0', '10.246.0.0'].map((c) => affinity('node1', c)).join('')}
${['10.244.0.64', '10.245.0.64', '10.246.0.64'].map((c) => affinity('node2', c)).join('')}
${wep('node1', 'pod-a', 'caliA', '10.244.0.1', 'mac: "2a:5f:10:00:01:01"')}
${wep('node1', 'pod-b', 'caliB', '10.244.0.2', 'mac: "2a:5f:10:00:01:02"')}
${wep('node1', 'pod-t', 'tapT', '10.245.0.3', 'interfaceType: tap')}
${wep('node1', 'pod-u', 'tunU', '10.246.0.4', 'interfaceType: tun')}
${wep('node2', 'pod-rv', 'caliRV', '10.244.0.65', '')}
${wep('node2', 'pod-rv2', 'caliRV2', '10.244.0.66', '')}
${wep('node2', 'pod-ri', 'caliRI', '10.245.0.65', '')}
${wep('node2', 'pod-rd', 'caliRD', '10.246.0.65', '')}
`;

function affinity(node: string, addr: string): string {
  return `---
apiVersion: projectcalico.org/v3
kind: BlockAffinity
metadata: { name: ${node}-${addr.replace(/\./g, '-')}-26 }
spec: { node: ${node}, cidr: ${addr}/26, state: confirmed, deleted: "false" }
`;
}

function wep(node: string, pod: string, ifname: string, ip: string, extra: string): string {
  return `---
apiVersion: projectcalico.org/v3
kind: WorkloadEndpoint
metadata: { name: ${node}-k8s-${pod}-eth0, namespace: default }
spec:
  node: ${node}
  pod: ${pod}
  interfaceName: ${ifname}
  ipNetworks: [${ip}/32]
  ${extra}
`;
}

export function clusterModel(node = 'node1', yaml = CLUSTER_YAML): NodeDataplaneModel {
  return computeNodeModel(parseClusterYaml(yaml, 'test-cluster.yaml'), node);
}

export interface HarnessOptions {
  /** Pipeline.natToNodes and the next hops' view of it (natOutgoingExclusions; default true, IPPoolsOnly). */
  natToNodes?: boolean;
  /** Underlay neighbours already resolved (IP text -> MAC text). */
  neighbors?: Record<string, string>;
  /** Underlay next hop per remote node IP (default: the node itself, on-link). */
  gateways?: Record<string, string>;
  batch?: number;
  model?: NodeDataplaneModel;
  /** A pending queue for unresolved neighbours (neighbor-queue.ts), in pool descriptors after the
   * batch's, as the engine makes it (without: such packets are dropped as neighbor_unresolved). */
  held?: { total: number; perNeighbor: number; maxTicks?: number };
}

export interface Harness {
  io: MemoryIO;
  pool: FramePool;
  pipe: Pipeline;
  model: NodeDataplaneModel;
  nh: NextHops;
  infra: { tx4: number; vxlan: number; ipip: number; underlay: number; host: number };
  /** Port of each local endpoint, by interface name. */
  ports: Map<string, number>;
  /** Addresses the pipeline asked to resolve (onUnresolved), in order. */
  unresolved: number[];
  /** Send errors the pipeline reported (onPortError). */
  portErrors: { port: number; op: string; code: string }[];
  port(ifname: string): number;
  /** Queue frames on a port and let the pipeline drain it. */
  receive(port: number, ...frames: (Uint8Array | MemFrame)[]): void;
  /** A port's counter (PortCounter.*). */
  portCounter(port: number, which: number): number;
}

/** The wiring of Engine.openInfra + openEndpoint + apply, minus the host (sysctls, routes, ARP). */
export function makeHarness(opts: HarnessOptions = {}): Harness {
  const model = opts.model ?? clusterModel();
  const io = new MemoryIO();
  const batch = opts.batch ?? 64;
  const pool = new FramePool(batch + 8 + (opts.held?.total ?? 0) + FRAG_DESCS);
  io.setPool(pool);
  const pipe = new Pipeline(pool, batch, io);
  // as the engine: the fragment area after the pending queue's
  pipe.setFragArea(batch + 8 + (opts.held?.total ?? 0));
  if (opts.held) pipe.held = new NeighborQueue(pool, batch + 8, opts.held.total, opts.held.perNeighbor, opts.held.maxTicks);
  const nodeIp = model.node.ip;
  if (nodeIp === null) throw new Error('makeHarness: an IPv4 node model (this harness opens the IPv4 tunnel sockets)');
  const infra = { tx4: -1, vxlan: -1, ipip: -1, underlay: -1, host: -1 };
  infra.tx4 = io.openRaw({ proto: 255 });
  pipe.setPort(infra.tx4, Role.TX4, 'tx4(raw)');
  infra.vxlan = io.openUdp({ addr: nodeIp, port: 4789 });
  pipe.setPort(infra.vxlan, Role.VXLAN_RX, 'vxlan');
  infra.ipip = io.openRaw({ proto: 4, addr: nodeIp });
  pipe.setPort(infra.ipip, Role.IPIP_RX, 'ipip(proto 4)');
  infra.host = io.openTun('podway0');
  pipe.setPort(infra.host, Role.HOST_TUN, 'host(podway0)');
  infra.underlay = io.openPacket('eth0', { bpf: underlayFilter(nodeIp) });
  pipe.setPort(infra.underlay, Role.UNDERLAY, 'underlay(eth0)');
  pipe.tx4Port = infra.tx4;
  pipe.underlayPort = infra.underlay;
  pipe.hostPort = infra.host;

  const ports = new Map<string, number>();
  for (const ep of model.endpoints) {
    const kind = ep.interfaceType;
    const port = kind === 'veth' ? io.openPacket(ep.interfaceName) : kind === 'tap' ? io.openTap(ep.interfaceName) : io.openTun(ep.interfaceName);
    pipe.setPort(port, kind === 'tun' ? Role.POD_TUN : Role.POD_L2, ep.interfaceName, ep.ips, ep.mac ? parseMac(ep.mac) : undefined, kind === 'veth');
    ports.set(ep.interfaceName, port);
  }

  const neighbors = new Map<number, Uint8Array>();
  for (const [ip, mac] of Object.entries(opts.neighbors ?? {})) neighbors.set(parseIpv4(ip), parseMac(mac));
  const gateways = new Map<number, number>();
  for (const [ip, gw] of Object.entries(opts.gateways ?? {})) gateways.set(parseIpv4(ip), parseIpv4(gw));
  const nh = buildNextHops(model, {
    portOf: (ifname) => ports.get(ifname) ?? -1,
    neighbor: (ip) => neighbors.get(ip),
    nextHop: (ip) => gateways.get(ip) ?? ip,
    natToNodes: opts.natToNodes ?? true,
  });
  pipe.nh = nh;
  pipe.natToNodes = opts.natToNodes ?? true;
  pipe.addr = { nodeIp, hasNodeIp: model.node.ip !== null, underlayMac: parseMac(NODE1_MAC), knownNodes: new Set(model.node.knownNodeIps) };
  pipe.tunnels = tunnelsOf(model);
  pipe.poolAddr = Uint32Array.from(model.pools, (p) => p.addr >>> 0);
  pipe.poolMask = Uint32Array.from(model.pools, (p) => (p.prefixLen === 0 ? 0 : (0xffffffff << (32 - p.prefixLen)) >>> 0));

  const unresolved: number[] = [];
  const portErrors: Harness['portErrors'] = [];
  pipe.onUnresolved = (ip) => {
    unresolved.push(ip);
    return true;
  };
  // As Engine.learn: a resolved underlay neighbour goes into every next hop through it.
  pipe.onNeighbor = (ip, b, off) => {
    learnNeighbor(pipe.nh, ip, b, off);
  };
  pipe.onPortError = (port, op, e) => portErrors.push({ port, op, code: (e as { code?: string }).code ?? e.message });

  const h: Harness = {
    io, pool, pipe, model, nh, infra, ports, unresolved, portErrors,
    port(ifname) {
      const p = ports.get(ifname);
      if (p === undefined) throw new Error(`no port ${ifname}`);
      return p;
    },
    receive(port, ...frames) {
      io.inject(port, ...frames);
      pipe.drain(port);
    },
    portCounter(port, which) {
      return pipe.portCounters[port * PORT_COUNTERS + which];
    },
  };
  return h;
}

/** Every port the harness opened, and how many frames each has sent since the last take. */
export function allPorts(h: Harness): number[] {
  return [...Object.values(h.infra), ...h.ports.values()];
}

/** Take everything sent on every port: port -> frames (only ports that sent). */
export function takeAll(h: Harness): Map<number, MemFrame[]> {
  const out = new Map<number, MemFrame[]>();
  for (const p of allPorts(h)) {
    const f = h.io.take(p);
    if (f.length > 0) out.set(p, f);
  }
  return out;
}

/** Assert that exactly one frame left, on `port`, and return it. */
export function onlyFrame(h: Harness, port: number, what: string): MemFrame {
  const sent = takeAll(h);
  const where = [...sent.entries()].map(([p, f]) => `${h.pipe.portName[p]}:${f.length}`).join(', ') || 'nothing';
  assert.is(sent.size, 1, `${what}: one port sent (sent: ${where})`);
  const frames = sent.get(port);
  assert.ok(frames, `${what}: sent on ${h.pipe.portName[port]} (sent: ${where})`);
  assert.is(frames!.length, 1, `${what}: one frame`);
  return frames![0];
}

/** Assert nothing was sent anywhere. */
export function nothingSent(h: Harness, what: string): void {
  const sent = takeAll(h);
  const where = [...sent.entries()].map(([p, f]) => `${h.pipe.portName[p]}:${f.length}`).join(', ');
  assert.is(sent.size, 0, `${what}: nothing sent (sent: ${where})`);
}

/** Tap pod T's ARP request for its gateway: its MAC learned, the one reply taken. */
export function learnTapMac(h: Harness): void {
  h.receive(h.port('tapT'), frame('arp_t_gw'));
  onlyFrame(h, h.port('tapT'), 'arp reply to T');
}

/** 'delivered' when `send` put one frame on `port` and nothing elsewhere; else nothing may have
 * been sent and the answer is the counters that moved (their names, comma-separated). */
export function outcome(h: Harness, port: number, send: () => void): string {
  const before = Float64Array.from(h.pipe.counters);
  send();
  const sent = takeAll(h);
  if (sent.size === 1 && sent.get(port)?.length === 1) return 'delivered';
  assert.is(sent.size, 0, `not delivered: nothing sent (sent on ${[...sent.keys()].map((p) => h.pipe.portName[p]).join(', ')})`);
  return [...h.pipe.counters].flatMap((v, k) => (v !== before[k] ? [COUNTER_NAMES[k]] : [])).join(',');
}

// ---- decapsulated packets from node2 --------------------------------------------------------------

/** A copy of `f` with the IPv4 header at `ip` given source (and destination) `src` (`dst`), its
 * header checksum fixed (the transport checksum is left: the pipeline does not check it here). */
export function withAddrs(f: Uint8Array, ip: number, src: string, dst?: string): Uint8Array {
  const c = f.slice();
  const put = (a: number, at: number) => c.set([a >>> 24, (a >>> 16) & 255, (a >>> 8) & 255, a & 255], at);
  put(parseIpv4(src), ip + 12);
  if (dst !== undefined) put(parseIpv4(dst), ip + 16);
  fixIpChecksum(c, ip);
  return c;
}

/** A way into the node: the port its packet is delivered to, and how to send one with a given inner
 * source (and destination). */
export interface DecapWay { name: string; port: (h: Harness) => number; send: (h: Harness, src: string, dst?: string) => void }

/** node2's pod RV (VXLAN pool) -> A over VXLAN, on the UDP socket (the payload from byte 42: inner
 * IPv4 at 22) and on the underlay port (inner IPv4 at 64). */
export const VXLAN_WAYS: readonly DecapWay[] = [
  { name: 'vxlan (socket)', port: (h) => h.port('caliA'), send: (h, s, d) => h.receive(h.infra.vxlan, { bytes: withAddrs(frame('vxlan_rv_to_a'), 64, s, d).subarray(42), addr: NODE2, aport: 50000 }) },
  { name: 'vxlan (underlay port)', port: (h) => h.port('caliA'), send: (h, s, d) => h.receive(h.infra.underlay, withAddrs(frame('vxlan_rv_to_a'), 64, s, d)) },
];
/** node2's pod RI (IPIP pool) -> T over IPIP, on the raw socket (from byte 14: inner at 20) and on
 * the underlay port (inner at 34). */
export const IPIP_WAYS: readonly DecapWay[] = [
  { name: 'ipip (socket)', port: (h) => h.port('tapT'), send: (h, s, d) => h.receive(h.infra.ipip, { bytes: withAddrs(frame('ipip_ri_to_t'), 34, s, d).subarray(14), addr: NODE2 }) },
  { name: 'ipip (underlay port)', port: (h) => h.port('tapT'), send: (h, s, d) => h.receive(h.infra.underlay, withAddrs(frame('ipip_ri_to_t'), 34, s, d)) },
];
/** node2's pod RD (plain pool) -> U, unencapsulated on the underlay port (inner at 14). */
export const PLAIN_WAY: DecapWay = { name: 'unencapsulated', port: (h) => h.port('tunU'), send: (h, s, d) => h.receive(h.infra.underlay, withAddrs(frame('underlay_rd_to_u'), 14, s, d)) };
/** The five ways a packet from node2 reaches a pod here, in that order. */
export const DECAP_WAYS: readonly DecapWay[] = [...VXLAN_WAYS, ...IPIP_WAYS, PLAIN_WAY];

// ---- fixtures ------------------------------------------------------------------------------------

/** A pipe_* fixture's bytes. */
export function frame(name: string): Uint8Array {
  return fromHex(fixture(`pipe_${name}`).hex);
}

/** A pipe_* fixture's build record. */
export function build(name: string): Record<string, any> {
  const b = fixture(`pipe_${name}`).build;
  if (!b) throw new Error(`fixture pipe_${name} has no build record`);
  return b;
}

// ---- checksums and comparison, independent of src/packet -----------------------------------------

/** RFC 1071 sum of 16-bit big-endian words, folded. */
export function onesSum(b: Uint8Array, off: number, len: number, initial = 0): number {
  let s = initial;
  for (let k = 0; k + 1 < len; k += 2) s += b[off + k] * 256 + b[off + k + 1];
  if (len % 2 === 1) s += b[off + len - 1] * 256;
  while (s > 0xffff) s = (s % 0x10000) + Math.floor(s / 0x10000);
  return s;
}

/** The header checksum of the IPv4 header at `off`, computed from scratch (its field taken as 0). */
export function ipHeaderChecksum(b: Uint8Array, off: number): number {
  const hl = (b[off] & 15) * 4;
  const copy = b.slice(off, off + hl);
  copy[10] = 0;
  copy[11] = 0;
  return 0xffff - onesSum(copy, 0, hl);
}

/** Write the from-scratch header checksum into the IPv4 header at `off`. */
export function fixIpChecksum(b: Uint8Array, off: number): void {
  const c = ipHeaderChecksum(b, off);
  b[off + 10] = c >> 8;
  b[off + 11] = c & 255;
}

/** Assert two byte strings are equal, naming the first differing offset. */
export function assertBytes(actual: Uint8Array, expected: Uint8Array, what: string): void {
  let first = -1;
  const n = Math.max(actual.length, expected.length);
  for (let k = 0; k < n; k++) {
    if (actual[k] !== expected[k]) {
      first = k;
      break;
    }
  }
  if (first >= 0) {
    const from = Math.max(0, first - 4);
    assert.fixture(toHex(actual, from, Math.min(24, actual.length - from)), toHex(expected, from, Math.min(24, expected.length - from)),
      `${what}: first difference at byte ${first} (lengths ${actual.length} vs ${expected.length}; showing from byte ${from})`);
  }
  assert.is(actual.length, expected.length, `${what}: length`);
}

/** The 16-bit big-endian value at `off`. */
export function u16(b: Uint8Array, off: number): number {
  return (b[off] << 8) | b[off + 1];
}

/**
 * The expected frame with the fields podway picks taken from the actual one: `fields` are
 * [offset, length] ranges copied over; `ipHeaders` the offsets of IPv4 headers whose checksum is
 * then recomputed from scratch in the expected copy. The actual frame must still match every other
 * byte, and its header checksums must equal those recomputations.
 */
export function adopt(expected: Uint8Array, actual: Uint8Array, fields: [number, number][], ipHeaders: number[]): Uint8Array {
  const e = expected.slice();
  for (const [off, len] of fields) e.set(actual.subarray(off, off + len), off);
  for (const ip of ipHeaders) fixIpChecksum(e, ip);
  return e;
}

// ---- classic BPF ----------------------------------------------------------------------------------

/**
 * Runs a classic BPF program (8 bytes per instruction: code u16 LE, jt, jf, k u32 LE, as in
 * struct sock_filter) over a packet, like the kernel's socket filter: returns the accept length
 * (0 = drop). Knows only the instructions podway's filter needs: ld/ldh absolute, jeq k, ret k.
 * Anything else throws, as do jumps out of the program and running off its end. A load beyond the
 * packet ends the program with 0, as in the kernel.
 */
export function runBpf(prog: Uint8Array, pkt: Uint8Array): number {
  if (prog.length % 8 !== 0 || prog.length === 0) throw new Error(`bpf: program length ${prog.length} is not a positive multiple of 8`);
  const dv = new DataView(prog.buffer, prog.byteOffset, prog.byteLength);
  const n = prog.length / 8;
  let a = 0;
  let x = 0;
  let pc = 0;
  const mem = new Uint32Array(16);
  const word = (o: number) => ((pkt[o] << 24) | (pkt[o + 1] << 16) | (pkt[o + 2] << 8) | pkt[o + 3]) >>> 0;
  for (let steps = 0; steps <= n; steps++) {
    if (pc < 0 || pc >= n) throw new Error(`bpf: pc ${pc} outside the program (${n} instructions)`);
    const code = dv.getUint16(pc * 8, true);
    const jt = prog[pc * 8 + 2];
    const jf = prog[pc * 8 + 3];
    const k = dv.getUint32(pc * 8 + 4, true);
    switch (code) {
      case 0x28: // BPF_LD | BPF_H | BPF_ABS
        if (k + 2 > pkt.length) return 0;
        a = (pkt[k] << 8) | pkt[k + 1];
        pc++;
        break;
      case 0x20: // BPF_LD | BPF_W | BPF_ABS
        if (k + 4 > pkt.length) return 0;
        a = ((pkt[k] << 24) | (pkt[k + 1] << 16) | (pkt[k + 2] << 8) | pkt[k + 3]) >>> 0;
        pc++;
        break;
      case 0x30: // BPF_LD | BPF_B | BPF_ABS
        if (k + 1 > pkt.length) return 0;
        a = pkt[k];
        pc++;
        break;
      case 0x48: // BPF_LD | BPF_H | BPF_IND
        if (x + k + 2 > pkt.length) return 0;
        a = (pkt[x + k] << 8) | pkt[x + k + 1];
        pc++;
        break;
      case 0xb1: // BPF_LDX | BPF_B | BPF_MSH: x = 4 * (pkt[k] & 15)
        if (k + 1 > pkt.length) return 0;
        x = (pkt[k] & 15) * 4;
        pc++;
        break;
      case 0x15: // BPF_JMP | BPF_JEQ | BPF_K
        pc += 1 + (a >>> 0 === k ? jt : jf);
        break;
      case 0x45: // BPF_JMP | BPF_JSET | BPF_K
        pc += 1 + ((a & k) !== 0 ? jt : jf);
        break;
      case 0x40: // BPF_LD | BPF_W | BPF_IND
        if (x + k + 4 > pkt.length) return 0;
        a = word(x + k);
        pc++;
        break;
      case 0x80: // BPF_LD | BPF_W | BPF_LEN
        a = pkt.length;
        pc++;
        break;
      case 0x60: // BPF_LD | BPF_MEM
        a = mem[k];
        pc++;
        break;
      case 0x61: // BPF_LDX | BPF_MEM
        x = mem[k];
        pc++;
        break;
      case 0x02: // BPF_ST
        mem[k] = a;
        pc++;
        break;
      case 0x04: a = (a + k) >>> 0; pc++; break; // BPF_ALU | BPF_ADD | BPF_K
      case 0x24: a = Math.imul(a, k) >>> 0; pc++; break; // MUL K (32-bit, wrapping)
      case 0x54: a = (a & k) >>> 0; pc++; break; // AND K
      case 0x74: a = a >>> k; pc++; break; // RSH K
      case 0x94: // MOD K
        if (k === 0) throw new Error('bpf: modulo by 0');
        a = a % k;
        pc++;
        break;
      case 0xac: a = (a ^ x) >>> 0; pc++; break; // XOR X
      case 0x07: x = a; pc++; break; // BPF_MISC | BPF_TAX
      case 0x87: a = x; pc++; break; // BPF_MISC | BPF_TXA
      case 0x05: // BPF_JMP | BPF_JA
        pc += 1 + k;
        break;
      case 0x35: // BPF_JMP | BPF_JGE | BPF_K
        pc += 1 + (a >>> 0 >= k ? jt : jf);
        break;
      case 0x3d: // BPF_JMP | BPF_JGE | BPF_X
        pc += 1 + (a >>> 0 >= x >>> 0 ? jt : jf);
        break;
      case 0x06: // BPF_RET | BPF_K
        return k;
      default:
        throw new Error(`bpf: unknown opcode 0x${code.toString(16)} at instruction ${pc}`);
    }
  }
  throw new Error('bpf: program did not return (classic BPF only jumps forward, so this is a loop bug)');
}

/**
 * In a test's private namespace (runPrivateNetns): the veth underlay `ul` holding node1's addresses
 * (10.99.0.1/24, fd99::1/64) and up, and the veths of two pods, caliA and caliB (each with a peer).
 */
export function underlayAndPodVeths(ul: string): void {
  sh('ip', ['link', 'set', 'lo', 'up']);
  sh('ip', ['link', 'add', ul, 'type', 'veth', 'peer', 'name', `${ul}p`]);
  sh('ip', ['addr', 'add', '10.99.0.1/24', 'dev', ul]);
  sh('ip', ['-6', 'addr', 'add', 'fd99::1/64', 'dev', ul, 'nodad']);
  sh('ip', ['link', 'set', ul, 'up']);
  for (const pod of ['caliA', 'caliB']) sh('ip', ['link', 'add', pod, 'type', 'veth', 'peer', 'name', `${pod}p`]);
}
