/**
 * natOutgoing through the kernel's conntrack: podway owns one nftables table (`table ip podway`),
 * created at start (replacing any copy a crashed or stopped run left), updated live when pools or
 * nodes change (its sets only, so counters and conntrack timeouts stay), left at podway run's stop
 * for the next start (stop({ keepTable }); `podway cleanup` deletes it). Nothing outside that table
 * is touched.
 *
 * Why the kernel and not a flow table of podway's own: the pipeline already hands pod egress
 * outside the pools to the kernel through its raw socket, and those packets cross the kernel's
 * OUTPUT and POSTROUTING hooks like any locally sent packet; conntrack gives masquerading with port
 * allocation that never collides with other conntrack entries, ICMP errors translated back (inner
 * header included), TCP state tracking and timeouts, in one table podway only describes (docs/natoutgoing.md,
 * "Why the kernel and not a flow table in podway"; measured in bench/e2e: the `nat-udp` rows).
 *
 * The path of a NATed flow:
 * - pod -> podway -> raw socket: OUTPUT (`output` chain: a new flow beyond maxFlows is refused and
 *   counted, a UDP flow gets podway's ct timeout policy), POSTROUTING (`postrouting`: pool source,
 *   destination outside every pool -> `masquerade fully-random`, TCP/UDP ports from podway's
 *   range; to another node's address only a connection the pod opens, natSelectors).
 * - replies (and ICMP errors about the flow) arrive on the underlay, where podway keeps the kernel
 *   from forwarding (forwarding=0). Conntrack has translated them back to the pod's address in
 *   PREROUTING (dstnat); the `prerouting` chain then sends a copy into the host port (`dup to <pod>
 *   device podway0`) and drops the original, which forwarding=0 would drop anyway: podway delivers
 *   it to the pod like any packet from the node.
 *
 * The same table holds the kernel transit drop (`pod_ingress`, see podIngressChain): pod frames
 * podway forwards are dropped before the node's conntrack and routing see them.
 *
 * IPv6 pools get the same rules in a table of their own, `table ip6 podway` (natTableProgram6),
 * owned by a second NftNat: the IPv6 pipeline hands pod egress outside the pools to the kernel
 * through its IPv6 raw socket (tx6) the same way, and Calico masquerades IPv6 pools' natOutgoing
 * too (ip6tables MASQUERADE). A table apart rather than one `inet` table keeps the IPv4 table, its
 * rules and its tests as they were, and a kernel refusing the ip6 family costs IPv4 nothing.
 */
import { execFile, execFileSync } from 'node:child_process';
import type { NamedCounts, NftTable } from './nft-counters';
import { readFileSync } from 'node:fs';
import { Backoff } from '../util/backoff';
import { isSafeIfname } from './ifname';
import type { NatOutgoingExclusions } from './nat';
import type { SpawnFn } from './spawner';

export const NAT_TABLE = 'podway';

export interface NatSpec {
  /** The host port replies are handed to (podway0), and its ifindex: nft resolves the name when
   * the rule is loaded, so a re-created device needs the table re-created. */
  hostPort: string;
  hostPortIndex: number;
  /** CIDRs of the pools with natOutgoing: true. */
  natPools: readonly string[];
  /** CIDRs of every pool (never NATed as destinations; replies to them are taken back). */
  pools: readonly string[];
  /** Node addresses: this node's and every other node's. */
  nodes: readonly string[];
  /** Felix's natOutgoingExclusions: 'IPPoolsOnly' (Felix's default; absent means it) masquerades
   * a pod's new connection to another node's address as to any address outside the pools (TCP
   * connections and ICMP echo the pod opens: natNodeOpens), 'IPPoolsAndHostIPs' never masquerades
   * to a node address. */
  natOutgoingExclusions?: NatOutgoingExclusions;
  /** TCP/UDP source ports masquerading may use. */
  portRange: readonly [number, number];
  /** UDP conntrack timeouts (seconds) of NATed flows: podway's own policy, not the sysctls. */
  udpTimeout: { unreplied: number; replied: number };
  /** NATed flows at once: a new one beyond it is refused (dropped) and counted. */
  maxFlows: number;
  /** Host ends of the veth pods podway forwards for (kernel transit drop, below). */
  pods: readonly string[];
  /** Drop pod frames podway forwards before the node's kernel tracks and routes them (the
   * `pod_ingress` chain; `podway run --no-kernel-transit-drop` turns it off). */
  kernelTransitDrop: boolean;
  /** The IPv6 table only: hold the NAT chains (default: while an IPv6 pool has natOutgoing). The
   * caller keeps it on once on, so turning the flag off later keeps the chains and flows already
   * translated keep their replies, as IPv4's. */
  natChains?: boolean;
  /** table inet podway only (the pod guard, guardTableProgram): each veth pod's own IPv4 and IPv6
   * addresses, as [interface, address]. */
  podAddrs4?: readonly (readonly [string, string])[];
  podAddrs6?: readonly (readonly [string, string])[];
  /** table inet podway only: every local pod's own IPv4 and IPv6 addresses, veth, TAP and TUN
   * alike: the sources of the pod packets podway hands the node's kernel itself, through its raw
   * sockets (they come in on lo), for `endpointToHost: 'drop'`. */
  podIps4?: readonly string[];
  podIps6?: readonly string[];
  /** The pod guard: the UDP ports of the tunnels the node receives (VXLAN, 4789). */
  tunnelPorts?: readonly number[];
  /** The pod guard: a pod's new connections to the node's own addresses accepted (the default,
   * as calico.yaml sets Felix's DefaultEndpointToHostAction) or dropped (`--endpoint-to-host drop`). */
  endpointToHost?: 'accept' | 'drop';
  /** table ip podway and table ip6 podway: the node's host ports of the table's family (CNI
   * portMappings, Kubernetes hostPort) from its pods' WorkloadEndpoints (spec.ports), in order; the
   * first of two for one address, protocol and port wins (the CNI plugin refuses the second:
   * docs/cni.md, "Host ports"). */
  hostPorts?: readonly HostPortRule[];
  /** This node's address of the table's family, the source a pod reaching its own host port (and
   * the node's own connection from its loopback) is given. */
  nodeIp?: string;
  /** The IPv6 table only: hold the host port chains (the caller keeps it on from the first IPv6
   * host port on, as natChains, so a node without one never loads the kernel's IPv6 NAT). */
  hostPortChains?: boolean;
}

/** One host port: `hostPort` on `hostIp` (null: every address of the node) to `podIp`:`port`. */
export interface HostPortRule {
  readonly protocol: 'tcp' | 'udp';
  readonly hostIp: string | null;
  readonly hostPort: number;
  readonly podIp: string;
  readonly port: number;
}

const PLAIN_IPV4 = /^\d{1,3}(\.\d{1,3}){3}$/;
const PLAIN_IPV6 = /^[0-9a-f]{0,4}(:[0-9a-f]{0,4}){2,7}$/i;

/** The host port rules fit for nft text (plain addresses of the family, ports in range), each
 * (address, protocol, port) once: the first wins. */
function hostPortRules(s: NatSpec, w: NatWords): HostPortRule[] {
  const seen = new Set<string>();
  const out: HostPortRule[] = [];
  for (const h of s.hostPorts ?? []) {
    if ((h.protocol !== 'tcp' && h.protocol !== 'udp') || !w.plain.test(h.podIp) || (h.hostIp !== null && !w.plain.test(h.hostIp))) continue;
    if (!Number.isInteger(h.hostPort) || h.hostPort < 1 || h.hostPort > 65535 || !Number.isInteger(h.port) || h.port < 1 || h.port > 65535) continue;
    const key = `${h.hostIp ?? '*'} ${h.protocol} ${h.hostPort}`;
    if (seen.has(key)) continue;
    // an address-wide one hides later ones on one address, and the reverse
    if (h.hostIp === null ? [...seen].some((k) => k.endsWith(` ${h.protocol} ${h.hostPort}`)) : seen.has(`* ${h.protocol} ${h.hostPort}`)) continue;
    seen.add(key);
    out.push(h);
  }
  return out;
}

/** The rules of the three host port chains of the family's table, by chain (hostportChains). */
function hostPortChainRules(s: NatSpec, w: NatWords): { raw: string[]; dnat: string[]; snat: string[] } {
  const rules = hostPortRules(s, w);
  const dev = ifnames([s.hostPort])[0] ?? '"podway0"';
  const ip = w.ip;
  const match = (h: HostPortRule) => `${h.hostIp === null ? 'fib daddr type local' : `${ip} daddr ${h.hostIp}`} meta l4proto ${h.protocol} th dport ${h.hostPort}`;
  const raw = [
    // (IPv4) route_localnet is on for the host veths of pods with host ports (the plugin) and for
    // podway0 (podway, for its TAP/TUN pods): no packet of theirs for the node's loopback may reach
    // it (podway writes none into podway0: martian_dst); IPv6 has no such switch (the kernel drops
    // ::1 from any other interface)
    ...(ip === 'ip' ? ['iifname @pods ip daddr 127.0.0.0/8 counter name "hostport_localnet" drop', `iifname ${dev} ip daddr 127.0.0.0/8 counter name "hostport_localnet" drop`] : []),
    ...(rules.length ? [
      `iifname @pods ${ip} saddr . meta l4proto . th sport @hostport_srcs counter name "hostport_copy" drop`,
      // a veth pod's ICMP errors, which podway hands the kernel itself (tx4/tx6) when the pod has a host port
      `iifname @pods ${ip} saddr @hostport_pods ${w.icmpErrors} counter name "hostport_copy" drop`,
    ] : []),
    // (the copy's next hop, not its destination: IPv4 its own destination; IPv6 the pod's address,
    // as the kernel's IPv6 routing finds no route to a local address through podway0 and the copy
    // was lost, while the pod's goes through the pool's route there)
    ...rules.map((h) => `iifname != "lo" ${match(h)} counter name "hostport_in" dup to ${ip === 'ip6' ? h.podIp : 'ip daddr'} device ${dev} drop`),
  ];
  const dnat = rules.map((h) => `${match(h)} counter name "hostport_dnat" dnat to ${ip === 'ip6' ? `[${h.podIp}]` : h.podIp}:${h.port}`);
  const node = s.nodeIp !== undefined && w.plain.test(s.nodeIp) ? s.nodeIp : null;
  const snat = [
    ...(node === null || rules.length === 0 ? [] : [
      // the node's own connections from its loopback (127.0.0.1, ::1): the pod answers the node's address
      `ct status dnat ${ip} saddr ${w.loopback} snat to ${node}`,
      ...[...new Set(rules.map((h) => h.podIp))].map((a) => `ct status dnat ${ip} saddr ${a} ${ip} daddr ${a} snat to ${node}`),
    ]),
    // (IPv4) any other packet of the node's from its loopback into podway0, which route_localnet
    // lets out there now, goes no further (before, the kernel's routing refused it: EINVAL)
    ...(ip === 'ip' ? [`oifname ${dev} ip saddr 127.0.0.0/8 counter name "hostport_localnet" drop`] : []),
  ];
  return { raw, dnat, snat };
}

/** The pods' ends of the host ports, as hostport_srcs elements (address . protocol . port). */
function hostPortSources(s: NatSpec, w: NatWords): string[] {
  return [...new Set(hostPortRules(s, w).map((h) => `${h.podIp} . ${h.protocol} . ${h.port}`))].sort();
}

/** The addresses of the pods with a host port, as hostport_pods elements. */
function hostPortPods(s: NatSpec, w: NatWords): string[] {
  return [...new Set(hostPortRules(s, w).map((h) => h.podIp))].sort();
}

/**
 * Host ports (CNI portMappings, Kubernetes hostPort; docs/cni.md, "Host ports"), in table ip
 * podway, and the same chains in table ip6 podway for the IPv6 ones (`w`: the family's words). The node's forwarding is off (podway forwards), so a packet for a host port that the
 * kernel received and translated to a pod would be dropped by its routing, its conntrack entry
 * never confirmed. Instead:
 * - hostport_raw (prerouting, before conntrack and the transit drop): a packet for a host port,
 *   from any interface but lo, is copied into podway0 (`dup`) and dropped; podway sends it back
 *   through its raw socket (tx4), so it crosses OUTPUT like a packet of the node's own;
 * - hostport_dnat (output, nat): translates it (and the node's own connections to the host port)
 *   to the pod, and the entry is confirmed as the packet leaves for the pod;
 * - hostport_snat (postrouting, nat): a pod reaching its own host port gets the node's address as
 *   source (it would drop a packet from its own address as a martian);
 * - the pod's packets from the container port are handed to the kernel by podway too (tx4), so
 *   conntrack gives replies the host port back; the kernel's own copy of a veth pod's frame is
 *   dropped in hostport_raw (`hostport_copy`), as podway sends it.
 * Rules are rewritten whole on a change (flush chain + rules, one transaction, with the sets).
 */
function hostportChains(s: NatSpec, w: NatWords): string {
  const r = hostPortChainRules(s, w);
  const body = (xs: string[]) => xs.map((x) => `\n    ${x}`).join('');
  return `
  set hostport_srcs { type ${w.ip === 'ip' ? 'ipv4_addr' : 'ipv6_addr'} . inet_proto . inet_service;${elements(hostPortSources(s, w))} }
  set hostport_pods { type ${w.ip === 'ip' ? 'ipv4_addr' : 'ipv6_addr'};${elements(hostPortPods(s, w))} }
  counter hostport_in { }
  counter hostport_copy { }
  counter hostport_dnat { }
  counter hostport_localnet { }
  chain hostport_raw {
    type filter hook prerouting priority raw - 1; policy accept;${body(r.raw)}
  }
  chain hostport_dnat {
    type nat hook output priority -100; policy accept;${body(r.dnat)}
  }
  chain hostport_snat {
    type nat hook postrouting priority srcnat - 1; policy accept;${body(r.snat)}
  }`;
}

/** The host port part of a live update of the family's table: the pods' ends (a set) and, when
 * the rules changed, the three chains rewritten. */
function hostportUpdate(s: NatSpec, prev: NatSpec | null, w: NatWords): string[] {
  const where = `${w.ip} ${NAT_TABLE}`;
  // (the IPv6 table holds the chains only with hostPortChains, a whole-table change: tableKeyOf)
  if (w.ip === 'ip6' && !s.hostPortChains) return [];
  // (a table made without host ports holds their chains as natTableProgram wrote them)
  if (prev === null && hostPortRules(s, w).length === 0) return [];
  const lines = [
    ...setUpdate(where, 'hostport_srcs', hostPortSources(s, w), prev && hostPortSources(prev, w), false),
    ...setUpdate(where, 'hostport_pods', hostPortPods(s, w), prev && hostPortPods(prev, w), false),
  ];
  const r = hostPortChainRules(s, w);
  if (prev !== null && JSON.stringify(r) === JSON.stringify(hostPortChainRules(prev, w))) return lines;
  for (const [chain, rules] of [['hostport_raw', r.raw], ['hostport_dnat', r.dnat], ['hostport_snat', r.snat]] as const) {
    lines.push(`flush chain ${where} ${chain}`, ...rules.map((x) => `add rule ${where} ${chain} ${x}`));
  }
  return lines;
}

/** Does the IPv6 table hold its NAT chains (nat6Chains)? */
function hasNatChains(s: NatSpec): boolean {
  return s.natChains ?? s.natPools.length > 0;
}


function elements(xs: readonly string[]): string {
  return xs.length ? ` elements = { ${xs.join(', ')} }` : '';
}

/** Interface names as nft strings; a name isSafeIfname refuses (one that could break out of an nft
 * string's quotes, or no interface's) is left out. */
function ifnames(xs: readonly string[]): string[] {
  return [...new Set(xs.filter((x) => isSafeIfname(x)).map((x) => `"${x}"`))];
}

/**
 * The kernel transit drop. A veth pod's frame reaches the node's own stack as well as podway's
 * AF_PACKET socket (the kernel keeps receiving it: pod -> node traffic goes that way). For a frame
 * podway forwards, the kernel then runs conntrack (a new entry, thrown away), NAT's null binding
 * and a route lookup that, with forwarding=0 on the veth, allocates and frees a route per packet
 * before dropping it: in a 64 B flood that was more kernel time per frame than podway's own
 * receive (bench/README.md, "64-byte floods"). This chain drops such frames first (priority raw,
 * before conntrack): from a pod veth, to an address that is not the node's own (nor broadcast or
 * multicast). The kernel would drop each of them anyway; pod -> node traffic is untouched.
 */
function podIngressChain(s: NatSpec): string {
  if (!s.kernelTransitDrop) return '';
  return `
  chain pod_ingress {
    type filter hook prerouting priority raw; policy accept;
    iifname @pods fib daddr type != { local, broadcast, multicast } counter name "pod_transit" drop
  }`;
}

/**
 * The whole table, as one nft transaction: `add` then `delete` makes the create idempotent (a
 * table left by a crashed run, or none, ends the same way), and the kernel applies it atomically.
 */
export function natTableProgram(s: NatSpec): string {
  return `add table ip ${NAT_TABLE}
delete table ip ${NAT_TABLE}
table ip ${NAT_TABLE} {
  set pools { type ipv4_addr; flags interval; auto-merge;${elements(s.pools)} }
  set natpools { type ipv4_addr; flags interval; auto-merge;${elements(s.natPools)} }
  set nodes { type ipv4_addr;${elements(s.nodes)} }
  set pods { type ifname;${elements(ifnames(s.pods))} }
  counter pod_transit { }${natChains(s, NAT4_WORDS)}${podIngressChain(s)}${hostportChains(s, NAT4_WORDS)}
}
`;
}

/**
 * One set's part of a live update. Without the elements the table holds now (`had` null): flushed
 * and filled. With them: nothing when unchanged; an interval set (pools: auto-merge joins
 * neighbours, so an element may not be deletable as added) flushed and filled; any other set only
 * its difference, so an endpoint that comes or goes is one element added or deleted, not the
 * whole set again (300 pods: 300 interfaces and their addresses).
 */
function setUpdate(where: string, set: string, want: readonly string[], had: readonly string[] | null, interval: boolean): string[] {
  const fill = [`flush set ${where} ${set}`, ...(want.length ? [`add element ${where} ${set} { ${want.join(', ')} }`] : [])];
  if (had === null) return fill;
  if (want.length === had.length && want.every((x, k) => x === had[k])) return [];
  if (interval) return fill;
  const w = new Set(want);
  const h = new Set(had);
  const gone = had.filter((x) => !w.has(x));
  const added = want.filter((x) => !h.has(x));
  return [
    ...(gone.length ? [`delete element ${where} ${set} { ${gone.join(', ')} }`] : []),
    ...(added.length ? [`add element ${where} ${set} { ${added.join(', ')} }`] : []),
  ];
}

/** A live update of either family's table: its sets only, in one transaction (`prev`: the spec
 * the table holds now, for each set's difference; null: every set replaced). */
function setsProgram(family: 'ip' | 'ip6', s: NatSpec, prev: NatSpec | null = null): string {
  const lines: string[] = [];
  const where = `${family} ${NAT_TABLE}`;
  lines.push(...setUpdate(where, 'pools', s.pools, prev && prev.pools, true));
  lines.push(...setUpdate(where, 'natpools', s.natPools, prev && prev.natPools, true));
  lines.push(...setUpdate(where, 'nodes', s.nodes, prev && prev.nodes, false));
  lines.push(...setUpdate(where, 'pods', ifnames(s.pods), prev && ifnames(prev.pods), false));
  return lines.length ? lines.join('\n') + '\n' : '';
}

export function natSetsProgram(s: NatSpec, prev: NatSpec | null = null): string {
  return withHostPorts(setsProgram('ip', s, prev), hostportUpdate(s, prev, NAT4_WORDS));
}

function withHostPorts(sets: string, lines: string[]): string {
  return lines.length ? sets + lines.join('\n') + '\n' : sets;
}

/**
 * The IPv6 kernel transit drop, as podIngressChain's IPv4 one: a dual-stack veth pod's IPv6 frame
 * podway forwards also goes through the node's IPv6 input (a route lookup per frame, with
 * forwarding off counted Ip6InAddrErrors and dropped; conntrack first once table ip6 podway
 * masquerades). Link-local and multicast destinations are never dropped, whatever the route
 * lookup says about them (NDP, MLD, the pod's link-local gateway): the kernel needs them; so do
 * the node's own addresses (fib: local or anycast).
 */
function podIngressChain6(s: NatSpec): string {
  if (!s.kernelTransitDrop) return '';
  return `
  chain pod_ingress {
    type filter hook prerouting priority raw; policy accept;
    iifname @pods ip6 daddr != { fe80::/10, ff00::/8 } fib daddr type != { local, anycast } counter name "pod_transit" drop
  }`;
}

/** What differs between the IPv4 and IPv6 NAT chains: the family's words. */
interface NatWords {
  readonly ip: 'ip' | 'ip6';
  readonly icmpErrors: string;
  readonly echoRequest: string;
  /** An address of the family as plain text (fit for an nft rule), and its loopback. */
  readonly plain: RegExp;
  readonly loopback: string;
}
const NAT4_WORDS: NatWords = { ip: 'ip', icmpErrors: 'icmp type { destination-unreachable, time-exceeded, parameter-problem }', echoRequest: 'icmp type echo-request', plain: PLAIN_IPV4, loopback: '127.0.0.0/8' };
const NAT6_WORDS: NatWords = { ip: 'ip6', icmpErrors: 'icmpv6 type { destination-unreachable, packet-too-big, time-exceeded, parameter-problem }', echoRequest: 'icmpv6 type echo-request', plain: PLAIN_IPV6, loopback: '::1' };

/**
 * Which flows are masqueraded, as Felix's cali-nat-outgoing rule (felix/rules/nat.go,
 * makeNATOutgoingRuleIPTables: source in the masq-ipam-pools set, destination not in
 * all-ipam-pools, and with natOutgoingExclusions IPPoolsAndHostIPs not in all-hosts-net either),
 * each a selector the chains jump from:
 * - a natOutgoing pool's source to an address in no pool and no node's: always;
 * - to another node's address (natOutgoingExclusions IPPoolsOnly, Felix's default) only a flow the
 *   pod opens: a TCP SYN or an ICMP echo request, as a flow's first packet (conntrack's new flow:
 *   nothing else reaches a nat chain). Why not every new flow: a connection another node's host
 *   opened to the pod (node -> pod over the tunnel, or routed) reached the pod through podway,
 *   never through this node's conntrack, so the pod's replies look new to the kernel; masqueraded
 *   they would come back from the node's address and another port and the node would refuse them
 *   (a host-network client of a pod, kube-apiserver calling a webhook, a host's DNS query). So a
 *   reply (a SYN-ACK or a mid-stream TCP segment, an echo reply, any UDP) keeps the pod's address
 *   as before; the cost is that a pod's own UDP to another node leaves unmasqueraded too.
 * Destinations of this node (delivered on lo: a TAP or TUN pod's packet for another address of
 * the node, handed to the kernel through the raw socket) are never masqueraded: Calico's rule is
 * in POSTROUTING, which a pod's packet for its own host never crosses (INPUT).
 */
function natSelectors(s: NatSpec, w: NatWords): string[] {
  const from = `${w.ip} saddr @natpools ${w.ip} daddr != @pools oifname != "lo"`;
  const out = [`${from} ${w.ip} daddr != @nodes`];
  if ((s.natOutgoingExclusions ?? 'IPPoolsOnly') === 'IPPoolsOnly') {
    out.push(`${from} ${w.ip} daddr @nodes tcp flags & (syn | ack) == syn`);
    out.push(`${from} ${w.ip} daddr @nodes ${w.echoRequest}`);
  }
  return out;
}

/**
 * The masquerade chains of either family's table (one text, so IPv4 and IPv6 NAT cannot drift):
 * counters, the UDP timeout policy, the flow bound, the masquerade itself, and replies (ICMP
 * errors about a flow included) translated back in PREROUTING and copied into the host port.
 * A flow's first packet only is bounded (not yet confirmed): every packet of a UDP flow is "ct
 * state new" until a reply comes, and ct count walks its list on each evaluation (8x slower at
 * 1,000 flows). The selectors (natSelectors) jump to one chain each way, so the bound is one count
 * whichever selector a flow matched.
 */
function natChains(s: NatSpec, w: NatWords): string {
  const [lo, hi] = s.portRange;
  const sel = natSelectors(s, w);
  const jumps = (chain: string) => sel.map((m) => `\n    ${m} jump ${chain}`).join('');
  return `
  counter nat_flows { }
  counter nat_out { }
  counter nat_in { }
  counter nat_refused { }
  counter icmp_unmatched { }
  ct timeout udp_nat {
    protocol udp; l3proto ${w.ip};
    policy = { unreplied: ${s.udpTimeout.unreplied}, replied: ${s.udpTimeout.replied} }
  }
  chain nat_new {
    ct status ! confirmed ct count over ${s.maxFlows} counter name "nat_refused" drop
    meta l4proto udp ct status ! confirmed ct timeout set "udp_nat"
  }
  chain output {
    type filter hook output priority mangle; policy accept;${jumps('nat_new')}
  }
  chain masq {
    meta l4proto { tcp, udp } counter name "nat_flows" masquerade to :${lo}-${hi} fully-random
    counter name "nat_flows" masquerade fully-random
  }
  chain postrouting {
    type nat hook postrouting priority srcnat; policy accept;${jumps('masq')}
  }
  chain counting {
    type filter hook postrouting priority srcnat + 10; policy accept;
    ct direction original ct status snat ct original ${w.ip} saddr @pools counter name "nat_out"
  }
  chain prerouting {
    type filter hook prerouting priority filter; policy accept;
    ct direction reply ct status snat ${w.ip} daddr @pools counter name "nat_in" dup to ${w.ip} daddr device "${s.hostPort}" drop
    ${w.icmpErrors} ct state invalid counter name "icmp_unmatched"
  }`;
}

/** The IPv6 NAT part of natTableProgram6: only with an IPv6 pool with natOutgoing, so a table held
 * for the transit drop alone never makes the kernel track IPv6 (its ct expressions would). */
function nat6Chains(s: NatSpec): string {
  return hasNatChains(s) ? natChains(s, NAT6_WORDS) : '';
}

/**
 * The IPv6 table, as natTableProgram's IPv4 one: the same masquerade (fully-random, the same port
 * range), UDP timeout policy, flow bound (IPv6 flows counted apart from IPv4's), counters, and
 * replies (ICMPv6 errors about a flow included) translated back in PREROUTING and copied into the
 * host port, while an IPv6 pool has natOutgoing (nat6Chains); and the IPv6 kernel transit drop
 * (podIngressChain6), the reason the table may exist without NAT.
 */
export function natTableProgram6(s: NatSpec): string {
  return `add table ip6 ${NAT_TABLE}
delete table ip6 ${NAT_TABLE}
table ip6 ${NAT_TABLE} {
  set pools { type ipv6_addr; flags interval; auto-merge;${elements(s.pools)} }
  set natpools { type ipv6_addr; flags interval; auto-merge;${elements(s.natPools)} }
  set nodes { type ipv6_addr;${elements(s.nodes)} }
  set pods { type ifname;${elements(ifnames(s.pods))} }
  counter pod_transit { }${nat6Chains(s)}${podIngressChain6(s)}${s.hostPortChains ? hostportChains(s, NAT6_WORDS) : ''}
}
`;
}

export function natSetsProgram6(s: NatSpec, prev: NatSpec | null = null): string {
  return withHostPorts(setsProgram('ip6', s, prev), hostportUpdate(s, prev, NAT6_WORDS));
}

/** What an NftNat writes: its table's family and the two programs. */
export interface NatFamily {
  readonly family: 'ip' | 'ip6' | 'inet';
  table(s: NatSpec): string;
  /** `prev`: the spec the table holds now (each set's difference), null: every set replaced. */
  sets(s: NatSpec, prev: NatSpec | null): string;
  /** What an applied update holds, for the log (default: the NAT pools). */
  describe?(s: NatSpec): string;
  /** The part of a sets-only update worth a log line (default: describe's text). A sets-only update
   * whose text is the one last logged is not logged: every pod added or deleted changes the sets,
   * and the engine's own line already names the pod (an operator read 4-5 lines per pod before). */
  setsSaid?(s: NatSpec): string;
}

export const NAT_IPV4: NatFamily = { family: 'ip', table: natTableProgram, sets: natSetsProgram };
export const NAT_IPV6: NatFamily = { family: 'ip6', table: natTableProgram6, sets: natSetsProgram6 };

/** [interface, address] pairs as nft concatenations; pairs whose interface name could break out
 * of its quotes, or whose address is not plain address text, are left out. */
/** (interface, address) pairs as nft elements, each once: a pair listed twice (a stale and a new
 * endpoint on one veth) would make an update `delete element { x, x }`, which nft refuses. */
function ifaddrs(xs: readonly (readonly [string, string])[] | undefined): string[] {
  return [...new Set((xs ?? [])
    .filter(([i, a]) => isSafeIfname(i) && /^[0-9a-fA-F:.]{2,45}$/.test(a))
    .map(([i, a]) => `"${i}" . ${a}`))];
}

/** Plain addresses of one family as nft elements, each once; anything else is left out. */
function addrs(xs: readonly string[] | undefined, v6: boolean): string[] {
  return [...new Set((xs ?? []).filter((a) => /^[0-9a-fA-F:.]{2,45}$/.test(a) && a.includes(':') === v6))];
}

/**
 * The pod guard, `table inet podway` (review C, H1 and H2; as Calico's strict RPF on workload
 * interfaces and cali-fw's drops of VXLAN and IPIP "originating in workloads"). A veth pod's frame
 * reaches the node's own stack as well as podway (pod -> node traffic goes that way), and podway's
 * source check only covers its own copy. Without this table the kernel accepted, from a pod:
 * VXLAN or IPIP to the node's underlay address with another node's address forged as the outer
 * source, which the kernel handed to podway's VXLAN socket / IPIP raw socket (whose only check is
 * that outer source) and podway delivered the inner packet to any pod; and any forged source to
 * any node service (its replies reflected at the forged pod or node).
 *
 * prerouting, priority raw + 1 (after the kernel transit drop, which took the frames podway
 * forwards; before conntrack), only for interfaces in `pods` (veth pods; a TAP or TUN pod's frames
 * reach only podway, whose source check drops a source not the pod's own before it hands anything
 * to the node's kernel):
 * - UDP to a tunnel port (VXLAN 4789) or IP protocol 4 (IPIP), to any address: `pod_tunnel`;
 * - IPv4 whose (interface, source) is not one of that pod's addresses: `pod_spoofed`;
 * - IPv6 likewise, except link-local and unspecified sources (NDP, DAD, MLD: a pod's link-local
 *   address is its own choice), which may only go to link-local or multicast destinations.
 *
 * With `endpointToHost: 'drop'` a second chain at input (priority filter, after conntrack) drops a
 * pod's packets for the node itself but replies to connections the node opened (ct state
 * established, related) and ICMPv6 NDP/MLD (types 130-133, 135, 136, as Felix's workload-to-host
 * chain): `pod_to_host`. Only then does the table use conntrack. A pod's packets for the node come
 * in three ways: a veth pod's frames on its veth (`pods`); a TAP or TUN pod's for the node's own
 * address (the one podway runs on, IPv4 or IPv6) through podway's host port (`hostPort`, podway0:
 * podway writes nothing else into it); and a TAP or TUN pod's for another address of the node (one
 * on lo, a dummy, a second NIC) through podway's raw sockets (tx4, tx6), which the kernel loops back
 * on lo (a veth pod's is the kernel's from its veth alone: the pipeline sends no copy for the
 * node's own addresses, local-addrs.ts).
 * The last is matched by conntrack's original source (`pod_ips4`, `pod_ips6`: every local pod's
 * addresses), as natOutgoing may have masqueraded it on the way out (to an address of the node).
 */
export function guardTableProgram(s: NatSpec): string {
  const ports = (s.tunnelPorts ?? []).filter((p) => Number.isInteger(p) && p > 0 && p < 65536);
  const tunnels = ports.length ? `\n    iifname @pods udp dport { ${ports.join(', ')} } counter name "pod_tunnel" drop` : '';
  const hostPort = ifnames([s.hostPort]);
  const toHost = s.endpointToHost === 'drop'
    ? `
  chain pod_input {
    type filter hook input priority filter; policy accept;
    iifname @pods jump pod_to_host${hostPort.length ? `\n    iifname ${hostPort[0]} jump pod_to_host` : ''}
    iifname "lo" ct original ip saddr @pod_ips4 jump pod_to_host
    iifname "lo" ct original ip6 saddr @pod_ips6 jump pod_to_host
  }
  chain pod_to_host {
    ct state established,related accept
    icmpv6 type { mld-listener-query, mld-listener-report, mld-listener-done, nd-router-solicit, nd-neighbor-solicit, nd-neighbor-advert } accept
    counter name "pod_to_host" drop
  }`
    : '';
  return `add table inet ${NAT_TABLE}
delete table inet ${NAT_TABLE}
table inet ${NAT_TABLE} {
  set pods { type ifname;${elements(ifnames(s.pods))} }
  set pod_addrs4 { type ifname . ipv4_addr;${elements(ifaddrs(s.podAddrs4))} }
  set pod_addrs6 { type ifname . ipv6_addr;${elements(ifaddrs(s.podAddrs6))} }
  set pod_ips4 { type ipv4_addr;${elements(addrs(s.podIps4, false))} }
  set pod_ips6 { type ipv6_addr;${elements(addrs(s.podIps6, true))} }
  counter pod_spoofed { }
  counter pod_tunnel { }
  counter pod_to_host { }
  chain pod_guard {
    type filter hook prerouting priority raw + 1; policy accept;${tunnels}
    iifname @pods meta l4proto 4 counter name "pod_tunnel" drop
    iifname @pods iifname . ip saddr != @pod_addrs4 counter name "pod_spoofed" drop
    iifname @pods ip6 saddr != { ::, fe80::/10 } iifname . ip6 saddr != @pod_addrs6 counter name "pod_spoofed" drop
    iifname @pods ip6 saddr { ::, fe80::/10 } ip6 daddr != { fe80::/10, ff00::/8 } counter name "pod_spoofed" drop
  }${toHost}
}
`;
}

/** A live update of the pod guard: the sets' differences (an endpoint's interface and addresses
 * added or deleted), in one transaction. */
export function guardSetsProgram(s: NatSpec, prev: NatSpec | null = null): string {
  const where = `inet ${NAT_TABLE}`;
  const lines = [
    ...setUpdate(where, 'pods', ifnames(s.pods), prev && ifnames(prev.pods), false),
    ...setUpdate(where, 'pod_addrs4', ifaddrs(s.podAddrs4), prev && ifaddrs(prev.podAddrs4), false),
    ...setUpdate(where, 'pod_addrs6', ifaddrs(s.podAddrs6), prev && ifaddrs(prev.podAddrs6), false),
    ...setUpdate(where, 'pod_ips4', addrs(s.podIps4, false), prev && addrs(prev.podIps4, false), false),
    ...setUpdate(where, 'pod_ips6', addrs(s.podIps6, true), prev && addrs(prev.podIps6, true), false),
  ];
  return lines.length ? lines.join('\n') + '\n' : '';
}

export const POD_GUARD: NatFamily = {
  family: 'inet', table: guardTableProgram, sets: guardSetsProgram,
  describe: (s) => `${s.pods.length} veth pods, endpoint-to-host ${s.endpointToHost ?? 'accept'}`,
  setsSaid: (s) => `endpoint-to-host ${s.endpointToHost ?? 'accept'}`,
};

/** A device's ifindex (0 when it does not exist). */
export function ifindexOf(name: string): number {
  try {
    return Number(readFileSync(`/sys/class/net/${name}/ifindex`, 'utf8').trim()) || 0;
  } catch {
    return 0;
  }
}

/**
 * Masquerading ports that never meet the kernel's own sockets' ephemeral ports nor the VXLAN port:
 * above the ephemeral range when that leaves at least 1,024 ports (61000-65535 by default), else
 * between the VXLAN port and the ephemeral range.
 */
export function defaultNatPortRange(ephemeral: readonly [number, number], vxlanPort: number): [number, number] {
  const above: [number, number] = [ephemeral[1] + 1, 65535];
  const below: [number, number] = [Math.max(1024, vxlanPort + 1), ephemeral[0] - 1];
  const size = (r: [number, number]) => r[1] - r[0] + 1;
  if (size(above) >= 1024 || size(above) >= size(below)) {
    if (size(above) > 0) return above;
  } else if (size(below) > 0) return below;
  throw new Error(`no ports for natOutgoing outside the kernel's ephemeral range ${ephemeral[0]}-${ephemeral[1]} (net.ipv4.ip_local_port_range): give --nat-port-range LOW-HIGH`);
}

/** Parse and check `--nat-port-range LO-HI`: a clear error naming the option otherwise. Without
 * `vxlanPort` (not known yet: podway run checks it once vxlanPort is resolved) that one is not
 * checked; `vxlanFrom` says where it came from in the error. */
export function parseNatPortRange(text: string, ephemeral: readonly [number, number], vxlanPort?: number, vxlanFrom?: string): [number, number] {
  const m = /^(\d{1,5})-(\d{1,5})$/.exec(text.trim());
  if (!m) throw new Error(`--nat-port-range: "${text}" is not LOW-HIGH (two port numbers, e.g. 61000-65535)`);
  const lo = Number(m[1]);
  const hi = Number(m[2]);
  // Say which bound is wrong: "not within 1024-65535" left the operator to find out which.
  const wrong = [
    lo < 1024 && `LOW ${lo} is below 1024 (the ports below are privileged, the node's own services')`,
    hi > 65535 && `HIGH ${hi} is above 65535`,
    lo > hi && `LOW ${lo} is above HIGH ${hi}`,
  ].filter(Boolean);
  if (wrong.length) throw new Error(`--nat-port-range: "${text}": ${wrong.join('; ')} (LOW-HIGH within 1024-65535)`);
  if (vxlanPort !== undefined && lo <= vxlanPort && vxlanPort <= hi) throw new Error(`--nat-port-range: ${text} holds the VXLAN port ${vxlanPort}${vxlanFrom ? ` (vxlanPort from ${vxlanFrom})` : ''}`);
  if (lo <= ephemeral[1] && ephemeral[0] <= hi) throw new Error(`--nat-port-range: ${text} overlaps the kernel's ephemeral ports ${ephemeral[0]}-${ephemeral[1]} (net.ipv4.ip_local_port_range)`);
  return [lo, hi];
}

/** icmpUnmatched: ICMP errors that reached the node quoting no known flow (not translated; the
 * node's stack ignores them). */
export interface NatCounters { flows: number; outPackets: number; outBytes: number; inPackets: number; inBytes: number; refused: number; icmpUnmatched: number;
  /** pod frames the kernel transit drop took before conntrack (podway forwards them) */
  podTransit: number;
  /** table inet podway (the pod guard): frames from a veth pod the kernel got with a source not the
   * pod's own, tunnel packets (VXLAN, IPIP) from pods, and new connections from pods to the node
   * refused by `--endpoint-to-host drop` */
  podSpoofed?: number; podTunnel?: number; podToHost?: number;
  /** table ip podway's host ports: packets for a host port copied into podway0 (hostport_in), new
   * connections translated to a pod (hostport_dnat), the kernel's copies of veth pods' host port
   * packets dropped (podway sends them: hostport_copy), veth pods' packets for 127.0.0.0/8 dropped
   * (hostport_localnet) */
  hostPortIn?: number; hostPortDnat?: number; hostPortCopy?: number; hostPortLocalnet?: number }

function nftError(e: unknown, what: string): Error {
  const err = e as NodeJS.ErrnoException & { stderr?: Buffer | string };
  if (err.code === 'ENOENT') return new Error(`natOutgoing needs nftables: the nft command was not found (install the nftables package; scripts/setup.sh does)`);
  const msg = (err.stderr ?? '').toString().trim() || err.message;
  return new Error(`nft (${what}): ${msg}`);
}

/**
 * The table's owner. start/stop are synchronous (they run once, before forwarding and at exit);
 * updates run in a child process the event loop never waits for, one at a time, the newest spec
 * winning, so forwarding is never stalled by `nft`: in podway run that child is forked by the
 * engine's spawner helper (useSpawner), as a fork of podway itself holds the forwarding thread.
 */
export class NftNat {
  private spec: NatSpec | null = null;
  private tableKey = '';
  private setsKey = '';
  private running = false;
  private pending: NatSpec | null = null;
  /** The update's `nft -f` still running (stop() waits for it: see there), and its exit. */
  private child: { kill: () => void; exited: Promise<void> } | null = null;
  /** Runs the updates' `nft` (useSpawner): the engine's spawner helper, so podway's
   * own process, the forwarding thread, never forks for them; null: node's execFile here. */
  private spawnFn: SpawnFn | null = null;
  lastError: string | null = null;
  /** What the last logged update said (NatFamily.setsSaid). */
  private lastSaid = '';
  updates = 0;
  /** Updates nft refused (or failed to run), retries included. */
  failures = 0;
  /** Refused updates tried again on the timer (no new change came first). */
  retries = 0;
  /** The refused spec, tried again when the timer fires (a newer change replaces it). */
  private failed: NatSpec | null = null;
  private retryTimer: NodeJS.Timeout | null = null;
  /** startOrRetry's spec while its start is refused (the timer starts it), and its callback. */
  private startWanted: NatSpec | null = null;
  /** The timer's create runs in the spawner helper now (retryStartAsync). */
  private creating = false;
  private onStarted: () => void = () => {};
  /** The wait before a refused update is tried again; attempts 0 while none is refused. */
  private readonly retryWait: Backoff;
  private readonly retryMaxMs: number;

  /**
   * `retry`: a refused update is tried again after retry.minMs (default 1 s), doubling up to
   * retry.maxMs (default 60 s) while it keeps being refused, so the table heals without waiting for
   * the next change (a table held by another process, nft briefly missing during an upgrade).
   */
  constructor(private readonly log: (m: string) => void, private readonly nft = 'nft', retry: { minMs?: number; maxMs?: number } = {}, private readonly fam: NatFamily = NAT_IPV4) {
    const first = retry.minMs ?? 1000;
    this.retryMaxMs = Math.max(first, retry.maxMs ?? 60_000);
    this.retryWait = new Backoff({ first, max: this.retryMaxMs });
  }

  /**
   * Run the live updates' `nft` through `spawn` (the engine's Spawner: a small
   * helper process forked before any packet ring was mapped). Node's execFile forks this process,
   * and the fork blocks the thread that calls it until the child has exec'd: the forwarding
   * thread, for the time the fork copies page tables (a ring per pod) and, on a loaded machine,
   * for as long as the new child waits for a CPU (an IPPool edit that changed no route stalled
   * pod traffic 0.2-0.6 s at load ~20; bench/README.md, "A pool change"). start/stop stay
   * synchronous and local (they run before forwarding and at the exit).
   */
  useSpawner(spawn: SpawnFn | null): void {
    this.spawnFn = spawn;
  }

  /** Create (or re-create) the table. Throws a clear error when nft is missing or refuses. */
  start(s: NatSpec): void {
    this.run(this.fam.table(s), 'create table');
    this.started(s);
  }

  /**
   * start() of several tables in one `nft -f` (one nft process, one transaction: all go in or
   * none): at podway's start the pod guard and the NAT tables went in one nft run after the other
   * on the forwarding thread. True when they went in (each as its start() would leave it); false
   * when nft refused or failed, nothing changed then: the caller starts each on its own, which
   * says which one nft refuses and why.
   */
  static startTogether(tables: readonly (readonly [NftNat, NatSpec])[]): boolean {
    if (tables.length === 0) return true;
    const nft = tables[0]![0].nft;
    if (tables.some(([n]) => n.nft !== nft || n.spec !== null)) return false;
    try {
      execFileSync(nft, ['-f', '-'], { input: tables.map(([n, s]) => n.fam.table(s)).join(''), stdio: ['pipe', 'ignore', 'pipe'], timeout: 10_000 });
    } catch {
      return false;
    }
    for (const [n, s] of tables) n.started(s);
    return true;
  }

  private started(s: NatSpec): void {
    this.spec = s;
    this.tableKey = tableKeyOf(s, this.fam.family);
    this.setsKey = setsKeyOf(s);
    this.lastError = null;
    // the creation was logged by the caller with what it holds
    this.lastSaid = this.fam.setsSaid ? this.fam.setsSaid(s) : this.fam.describe ? this.fam.describe(s) : natPoolsSaid(s);
  }

  get active(): boolean {
    return this.spec !== null;
  }

  /** The table this one owns, for the counter reader (nft-counters.ts readNftCounters). */
  get table(): NftTable {
    return { family: this.fam.family, name: NAT_TABLE };
  }

  /**
   * start(), and when nft refuses it, start again on the retry timer (the same backoff as a refused
   * update: retry.minMs doubling up to retry.maxMs), with the newest spec update() got meanwhile,
   * until it goes in or stop(). Never throws: false and lastError when this attempt failed (each
   * failure counted; `onStarted` is called when a later attempt succeeds).
   */
  startOrRetry(s: NatSpec, onStarted: () => void = () => {}): boolean {
    this.startWanted = s;
    this.onStarted = onStarted;
    if (this.retryTimer || this.creating) return false; // already waiting or trying: that attempt takes this spec
    return this.tryStart();
  }

  /** Waiting to start again (startOrRetry failed, not stopped): update() gives it the newest spec. */
  get starting(): boolean {
    return this.spec === null && this.startWanted !== null;
  }

  /** startOrRetry's first attempt: synchronous, as start() (before forwarding). */
  private tryStart(): boolean {
    const s = this.startWanted;
    if (!s || this.spec) return this.spec !== null;
    try {
      this.start(s);
    } catch (e) {
      this.startRefused(e as Error);
      return false;
    }
    this.startWanted = null;
    this.retryWait.reset();
    return true;
  }

  /** A start refused: counted, and tried again on the timer (backing off). */
  private startRefused(e: Error): void {
    this.lastError = e.message;
    this.failures++;
    const wait = this.retryWait.next();
    this.retryTimer = setTimeout(() => {
      this.retryTimer = null;
      if (!this.startWanted || this.spec) return;
      this.retries++;
      if (this.spawnFn) return void this.retryStartAsync();
      if (this.tryStart()) this.startedLate();
    }, wait);
    this.retryTimer.unref();
  }

  private startedLate(): void {
    this.log(`${this.fam.family === 'inet' ? 'pod guard' : 'nat'}: table ${this.fam.family} ${NAT_TABLE} created after ${this.failures} refused attempt(s)`);
    this.onStarted();
  }

  /**
   * The timer's attempt with a spawner (useSpawner): podway forwards by then, so the create's
   * `nft -f` runs in the spawner helper like an update's (runAsync), not synchronously on this
   * thread (execFileSync forks podway, its rings mapped, and waits for nft). update() meanwhile
   * gives startWanted its newest spec, applied as an update once the create went in; stop()
   * meanwhile waits for this nft and deletes what it made.
   */
  private async retryStartAsync(): Promise<void> {
    const s = this.startWanted!;
    this.creating = true;
    let refused: Error | null = null;
    try {
      await this.runAsync(this.fam.table(s), 'create table');
    } catch (e) {
      refused = e as Error;
    } finally {
      this.creating = false;
    }
    const newest = this.startWanted;
    if (newest === null) return; // stopped meanwhile: stop() waited for this nft, and deletes the table
    if (refused) return this.startRefused(refused);
    this.started(s);
    this.startWanted = null;
    this.retryWait.reset();
    this.startedLate();
    if (newest !== s) this.update(newest);
  }

  /**
   * Delete a copy of the table a crashed run left behind, while this run has not created its own
   * (the IPv6 table is created only once an IPv6 pool has natOutgoing: a leftover would otherwise
   * keep masquerading after the flag went off). True when there was one. Never throws (no nft, or
   * a kernel without the family: there is nothing to remove then).
   */
  removeLeftover(): boolean {
    if (this.spec) return false;
    return this.removeListed();
  }

  /** removeLeftover(), told what `nft list tables` printed (read earlier: readHostAtStart): a
   * table it does not name is not looked for again (nothing but podway makes it). */
  removeLeftoverListed(tables: string | null): boolean {
    if (this.spec) return false;
    if (tables !== null && !new RegExp(`^table ${this.fam.family} ${NAT_TABLE}$`, 'm').test(tables)) return false;
    return this.removeListed();
  }

  private removeListed(): boolean {
    try {
      execFileSync(this.nft, ['list', 'table', this.fam.family, NAT_TABLE], { stdio: ['ignore', 'ignore', 'ignore'], timeout: 10_000 });
    } catch {
      return false;
    }
    try {
      this.run(`delete table ${this.fam.family} ${NAT_TABLE}\n`, 'delete leftover table');
      return true;
    } catch (e) {
      this.lastError = (e as Error).message;
      return false;
    }
  }

  /** Apply a new spec: the sets when only they changed, else the whole table. */
  update(s: NatSpec): void {
    if (!this.spec) {
      if (this.startWanted) this.startWanted = s; // started by the retry timer with this one
      return;
    }
    if (tableKeyOf(s, this.fam.family) === this.tableKey && setsKeyOf(s) === this.setsKey) return;
    this.pending = s;
    if (!this.running) void this.drain();
  }

  private async drain(): Promise<void> {
    this.running = true;
    try {
      while (this.pending && this.spec) {
        const s = this.pending;
        this.pending = null;
        const whole = tableKeyOf(s, this.fam.family) !== this.tableKey;
        try {
          const program = whole ? this.fam.table(s) : this.fam.sets(s, this.spec);
          if (program) await this.runAsync(program, whole ? 'replace table' : 'update sets');
          this.tableKey = tableKeyOf(s, this.fam.family);
          this.setsKey = setsKeyOf(s);
          // What status() reports is what the kernel now holds (unless stop() came meanwhile).
          if (this.spec) this.spec = s;
          this.updates++;
          this.lastError = null;
          const healed = this.retryWait.attempts > 0 ? `, after ${this.failures} refused attempt(s) in all` : '';
          this.clearRetry();
          const what = this.fam.describe ? this.fam.describe(s) : natPoolsSaid(s);
          const said = this.fam.setsSaid ? this.fam.setsSaid(s) : what;
          if (whole || healed || said !== this.lastSaid) this.log(`${this.fam.family === 'inet' ? 'pod guard' : 'nat'}: ${what} (table ${this.fam.family} ${NAT_TABLE} ${whole ? 'replaced' : 'sets updated'}${healed})`);
          this.lastSaid = said;
        } catch (e) {
          const first = this.retryWait.attempts === 0;
          this.lastError = (e as Error).message;
          this.failures++;
          if (!this.spec) break; // stopped meanwhile: nothing to heal
          // the next attempt replaces the whole table: the refused one may have left it half-updated
          this.tableKey = '';
          const wait = this.retryWait.next();
          // once while it keeps being refused, not on every retry (status: lastError, failures, retries)
          if (first) this.log(`nat: ${this.lastError} (tried again in ${wait / 1000} s, backing off up to ${this.retryMaxMs / 1000} s, and on the next change)`);
          this.failed = s;
          if (this.retryTimer) clearTimeout(this.retryTimer);
          this.retryTimer = setTimeout(() => this.retry(), wait);
          this.retryTimer.unref();
        }
      }
    } finally {
      this.running = false;
    }
  }

  /** The retry timer fired: the refused spec again, unless a newer change is on its way. */
  private retry(): void {
    this.retryTimer = null;
    const s = this.failed;
    this.failed = null;
    if (!s || !this.spec || this.pending) return;
    this.retries++;
    this.pending = s;
    if (!this.running) void this.drain();
  }

  private clearRetry(): void {
    if (this.retryTimer) clearTimeout(this.retryTimer);
    this.retryTimer = null;
    this.failed = null;
    this.retryWait.reset();
  }

  /**
   * Stop: remove the table unless `keepTable` (below). Never throws: a table already gone is fine. An update's `nft -f`
   * still running is waited for first (up to `waitMs`, default 5 s, then killed): a replace that committed after
   * the delete would leave the table (pod_ingress drop, masquerade) behind once podway is gone.
   * `keepTable` (podway run's stop): the same, but the table stays in the kernel, as a crash leaves
   * it; the next start replaces it in one transaction (`podway cleanup` removes it). The update in
   * flight is still waited for, so none commits after this process ended (over the next run's).
   */
  async stop({ waitMs = 5000, keepTable = false }: { waitMs?: number; keepTable?: boolean } = {}): Promise<void> {
    this.clearRetry();
    this.startWanted = null;
    // A create the retry timer has under way (retryStartAsync) may commit: waited for, and its
    // table deleted as a started one's is.
    const creating = this.creating && this.child !== null;
    if (!this.spec && !creating) return;
    this.spec = null;
    this.pending = null;
    const c = this.child;
    if (c) {
      let timer: NodeJS.Timeout | undefined;
      const inTime = await Promise.race([c.exited.then(() => true), new Promise<boolean>((r) => (timer = setTimeout(() => r(false), waitMs)))]);
      clearTimeout(timer);
      if (!inTime) {
        this.log(`nat: an update's nft still ran after ${waitMs / 1000} s at stop: killed`);
        c.kill();
        await Promise.race([c.exited, new Promise((r) => setTimeout(r, 1000).unref())]);
      }
    }
    if (keepTable) return;
    try {
      this.run(`delete table ${this.fam.family} ${NAT_TABLE}\n`, 'delete table');
    } catch (e) {
      // a create that was refused (or killed) made no table: nothing to say
      if (!creating) this.log(`nat: ${(e as Error).message}`);
    }
  }

  /** The spec the table holds now (the start spec, then each applied update), for `podway status`. */
  status() {
    const s = this.spec;
    if (s && this.fam.family === 'inet') return { table: `${this.fam.family} ${NAT_TABLE}`, pods: s.pods.length, podIps4: s.podIps4?.length ?? 0, podIps6: s.podIps6?.length ?? 0, endpointToHost: s.endpointToHost ?? 'accept', updates: this.updates, failures: this.failures, retries: this.retries, lastError: this.lastError };
    return s
      ? { table: `${this.fam.family} ${NAT_TABLE}`, natPools: s.natPools, natOutgoingExclusions: s.natOutgoingExclusions ?? 'IPPoolsOnly', portRange: `${s.portRange[0]}-${s.portRange[1]}`, udpTimeout: s.udpTimeout, maxFlows: s.maxFlows, updates: this.updates, failures: this.failures, retries: this.retries, lastError: this.lastError }
      : { table: null, lastError: this.lastError };
  }

  private run(program: string, what: string): void {
    try {
      execFileSync(this.nft, ['-f', '-'], { input: program, stdio: ['pipe', 'ignore', 'pipe'], timeout: 10_000 });
    } catch (e) {
      throw nftError(e, what);
    }
  }

  /**
   * `nft args` through a SpawnFn, stdin `input`, bounded by timeoutMs (then SIGKILL); resolves
   * once with its stdout and an error shaped as execFile's (code ENOENT when nft is missing,
   * stderr kept) when it failed. `kill` ends it early.
   */
  private collect(sp: SpawnFn, args: string[], input: string, timeoutMs: number): { exit: Promise<{ err: (Error & { code?: string; stderr?: string }) | null; out: string }>; kill: () => void } {
    const c = sp(this.nft, args);
    let out = '';
    let errText = '';
    let timer: NodeJS.Timeout | undefined;
    const kill = () => {
      if (c.pid !== undefined && c.exitCode === null && c.signalCode === null) {
        try {
          process.kill(c.pid, 'SIGKILL');
        } catch {
          /* gone already */
        }
      }
    };
    const exit = new Promise<{ err: (Error & { code?: string; stderr?: string }) | null; out: string }>((resolve) => {
      let done = false;
      const finish = (err: (Error & { code?: string; stderr?: string }) | null) => {
        if (done) return;
        done = true;
        clearTimeout(timer);
        resolve({ err, out });
      };
      timer = setTimeout(() => {
        kill();
        finish(Object.assign(new Error(`nft timed out after ${timeoutMs / 1000} s`), { stderr: errText }));
      }, timeoutMs);
      c.stdout.setEncoding('utf8');
      c.stderr.setEncoding('utf8');
      c.stdout.on('data', (d) => (out += d));
      c.stderr.on('data', (d) => (errText += d));
      c.on('error', (e) => finish(Object.assign(new Error(e.message), /ENOENT/.test(e.message) ? { code: 'ENOENT' } : {}, { stderr: errText })));
      c.on('close', (code, signal) => finish(code === 0 ? null : Object.assign(new Error(`nft exited ${signal ?? code}`), { stderr: errText })));
      c.stdin.on('error', () => {}); // EPIPE from an nft that exits early: its status says more
      c.stdin.end(input);
    });
    return { exit, kill };
  }

  private runAsync(program: string, what: string): Promise<void> {
    const sp = this.spawnFn;
    if (sp) {
      const r = this.collect(sp, ['-f', '-'], program, 10_000);
      const exited = r.exit.then(() => undefined);
      const me = { kill: r.kill, exited };
      this.child = me;
      void exited.then(() => {
        if (this.child === me) this.child = null;
      });
      return r.exit.then(({ err }) => {
        if (err) throw nftError(err, what);
      });
    }
    return new Promise((resolve, reject) => {
      const c = execFile(this.nft, ['-f', '-'], { timeout: 10_000 }, (err, _out, stderr) => {
        if (err) reject(nftError(Object.assign(err, { stderr }), what));
        else resolve();
      });
      // 'exit', not the callback: the callback also waits for the pipes, which a grandchild may hold
      const exited = new Promise<void>((r) => { c.once('exit', () => r()); c.once('error', () => r()); });
      const me = { kill: () => c.kill('SIGKILL'), exited };
      this.child = me;
      void exited.then(() => {
        if (this.child === me) this.child = null;
      });
      c.stdin?.end(program);
    });
  }
}

/** What only a whole-table replace changes (the chains' constants). */
function tableKeyOf(s: NatSpec, family: NatFamily['family']): string {
  // The IPv6 table holds its NAT chains only while an IPv6 pool has natOutgoing (nat6Chains).
  if (family === 'inet') return JSON.stringify([s.tunnelPorts ?? [], s.endpointToHost ?? 'accept']);
  // natOutgoingExclusions is in the masquerade rules (natSelectors): it changes live with a FelixConfiguration
  return JSON.stringify([s.hostPort, s.hostPortIndex, s.portRange, s.udpTimeout, s.maxFlows, s.kernelTransitDrop, family === 'ip6' && hasNatChains(s), s.natOutgoingExclusions ?? 'IPPoolsOnly', family === 'ip6' && s.hostPortChains === true]);
}

/** Every set the tables hold: a spec that changes any of them updates the kernel (a TAP/TUN pod
 * changes only pod_ips4/pod_ips6). */
function natPoolsSaid(s: NatSpec): string {
  return s.natPools.length ? 'natOutgoing from ' + s.natPools.join(', ') : 'no pool has natOutgoing';
}

function setsKeyOf(s: NatSpec): string {
  return JSON.stringify([s.pools, s.natPools, s.nodes, s.pods, s.podAddrs4 ?? [], s.podAddrs6 ?? [], s.podIps4 ?? [], s.podIps6 ?? [], s.hostPorts ?? [], s.nodeIp ?? '']);
}

/** The NAT or guard figures from a table's named counters (nft-counters.ts readNftCounters; a
 * counter the table lacks reads 0, the guard's stay unset without theirs). */
export function natCountersOf(named: NamedCounts): NatCounters {
  const p = (name: string) => named[name]?.packets ?? 0;
  const c: NatCounters = {
    flows: p('nat_flows'), outPackets: p('nat_out'), outBytes: named.nat_out?.bytes ?? 0, inPackets: p('nat_in'), inBytes: named.nat_in?.bytes ?? 0,
    refused: p('nat_refused'), icmpUnmatched: p('icmp_unmatched'), podTransit: p('pod_transit'),
  };
  if (named.pod_spoofed) c.podSpoofed = p('pod_spoofed');
  if (named.pod_tunnel) c.podTunnel = p('pod_tunnel');
  if (named.pod_to_host) c.podToHost = p('pod_to_host');
  if (named.hostport_in) {
    c.hostPortIn = p('hostport_in');
    c.hostPortDnat = p('hostport_dnat');
    c.hostPortCopy = p('hostport_copy');
    c.hostPortLocalnet = p('hostport_localnet');
  }
  return c;
}
