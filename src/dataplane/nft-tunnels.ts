/**
 * Tunnel receive on the underlay port: podway's second nftables table (`table inet podway_tunnels`),
 * separate from the natOutgoing one (nft-nat.ts replaces that one whole on changes).
 *
 * Why: the VXLAN UDP socket and the IPIP raw socket hand over a datagram without the kernel's
 * offload metadata. On a veth underlay with its offloads on (kind-style clusters, containers as
 * nodes) a kernel node sends podway VXLAN whose inner TCP checksum is only partial
 * (CHECKSUM_PARTIAL crosses a veth) and UDP-tunnel GSO super-frames (one 64 KiB datagram carrying a
 * TCP super-frame), which a socket delivers as a partial checksum nobody completes and a datagram
 * cut at the slot. The underlay AF_PACKET port sees the same frames with a virtio_net_hdr (gso_type,
 * gso_size, csum_start) and native/gso.c completes or segments them. So when this table is in
 * place the underlay port's filter takes the node's tunnel packets too (host.ts underlayFilter
 * `tunnels`), and the table drops the kernel's own copy of them at PREROUTING, priority raw: after
 * the AF_PACKET tap, before conntrack and before the sockets (no ICMP port or protocol
 * unreachable, no second delivery).
 *
 * Outer IPv4 fragments (a kernel vxlan sends with DF unset, so an underlay hop with a smaller MTU
 * fragments its packets) are not taken: the rules match unfragmented datagrams only (`ip frag-off
 * & 0x3fff == 0`: neither MF nor an offset) and the underlay filter skips fragments, so the kernel
 * reassembles them and hands the whole datagram to the VXLAN UDP socket or the IPIP raw socket,
 * which podway keeps reading (they then carry reassembled datagrams only). The chain runs at
 * priority -450, before netfilter's defragmentation (-400, loaded with conntrack, e.g. by the
 * natOutgoing table): after it the rule would see the reassembled datagram as unfragmented and
 * drop it while the underlay port got only the fragments. VXLAN over IPv6 the same way: the
 * `vxlan6` rule matches datagrams without a fragment header only (`exthdr frag missing`; a first
 * fragment carries the UDP header and would match `udp dport` otherwise), and the kernel
 * reassembles the fragments for podway's IPv6 VXLAN socket (engine.ts openVxlan6), while
 * pipeline6 leaves the fragments it sees on the underlay port to the node (not for a pod).
 * The rules' counters (`vxlan`, `ipip`, `vxlan6`: `nft list counters table inet podway_tunnels`)
 * count the tunnel packets taken this way (a GSO super-datagram counts once); `fragments` counts
 * the outer IPv4 UDP and IPIP fragments to the node left to the kernel's reassembly (not only VXLAN: a later fragment has no port),
 * `fragments6` the outer IPv6 fragments to the node's IPv6 address.
 *
 * Felix's vxlanPort (podway run's, at its start): the rules match it. When the table a previous
 * run left matched another port (vxlanPort changed between the two runs), VXLAN still arriving on
 * that old port from nodes not moved yet is dropped here too, counted `vxlan_old_port` (not taken
 * by podway, not answered with ICMP port unreachable by the kernel), for this run's life.
 *
 * The addresses are the ones podway uses (the Node's bgp.ipv4Address / ipv6Address): the engine
 * installs the table again, whole, when either changes (engine.ts followIp4 for IPv4, followIp6
 * for IPv6), so the rules never name an address the node gave up.
 *
 * Without nft (or when it refuses) tunnels keep arriving on the sockets as before.
 */
import { execFileSync } from 'node:child_process';
import type { NamedCounts, NftCount, NftTable } from './nft-counters';
import { isSafeIfname } from './ifname';

export const TUNNEL_TABLE = 'podway_tunnels';

/** The table as one nft transaction (`add` then `delete`: replaces a copy a crashed run left).
 * `nodeIp6`: the node's IPv6 address, whose VXLAN (always taken on the underlay port: pipeline6)
 * is dropped the same way; without the rule the kernel answered it with ICMPv6 port unreachable. */
export function tunnelRxProgram(underlay: string, nodeIp: string | null, vxlanPort: number, nodeIp6: string | null = null, oldVxlanPort: number | null = null): string {
  const old = oldVxlanPort !== null && oldVxlanPort !== vxlanPort;
  const v6 = nodeIp6
    ? `\n    iifname "${underlay}" ip6 daddr ${nodeIp6} exthdr frag missing udp dport ${vxlanPort} counter name "vxlan6" drop` +
      (old ? `\n    iifname "${underlay}" ip6 daddr ${nodeIp6} udp dport ${oldVxlanPort} counter name "vxlan_old_port" drop` : '') +
      `\n    iifname "${underlay}" ip6 daddr ${nodeIp6} exthdr frag exists counter name "fragments6"`
    : '';
  // An IPv6-only node (nodeIp null: no IPv4 address) has no IPv4 tunnel rules.
  const v4 = nodeIp === null
    ? ''
    : `\n    iifname "${underlay}" ip daddr ${nodeIp} ip frag-off & 0x3fff == 0 udp dport ${vxlanPort} counter name "vxlan" drop` +
      (old ? `\n    iifname "${underlay}" ip daddr ${nodeIp} udp dport ${oldVxlanPort} counter name "vxlan_old_port" drop` : '') +
      `\n    iifname "${underlay}" ip daddr ${nodeIp} ip frag-off & 0x3fff == 0 ip protocol 4 counter name "ipip" drop` +
      `\n    iifname "${underlay}" ip daddr ${nodeIp} ip frag-off & 0x3fff != 0 ip protocol { udp, 4 } counter name "fragments"`;
  return `add table inet ${TUNNEL_TABLE}
delete table inet ${TUNNEL_TABLE}
table inet ${TUNNEL_TABLE} {
  counter vxlan { }
  counter ipip { }
  counter vxlan6 { }
  counter fragments { }
  counter fragments6 { }
  counter vxlan_old_port { }
  chain prerouting {
    type filter hook prerouting priority -450; policy accept;${v4}${v6}
  }
}
`;
}

/** Install the table; returns null, or why it could not be (nft missing or refusing). */
export function installTunnelRx(underlay: string, nodeIp: string | null, vxlanPort: number, nodeIp6: string | null = null, nft = 'nft', oldVxlanPort: number | null = null): string | null {
  if (!isSafeIfname(underlay)) return `interface name ${JSON.stringify(underlay)} not usable in an nft rule`;
  if (nodeIp6 !== null && !/^[0-9a-fA-F:.]{2,45}$/.test(nodeIp6)) return `IPv6 address ${JSON.stringify(nodeIp6)} not usable in an nft rule`;
  try {
    execFileSync(nft, ['-f', '-'], { input: tunnelRxProgram(underlay, nodeIp, vxlanPort, nodeIp6, oldVxlanPort), stdio: ['pipe', 'ignore', 'pipe'], timeout: 10_000 });
    return null;
  } catch (e) {
    const err = e as NodeJS.ErrnoException & { stderr?: Buffer | string };
    if (err.code === 'ENOENT') return 'the nft command was not found (package nftables)';
    return ((err.stderr ?? '').toString().trim() || err.message).split('\n')[0];
  }
}

/** The VXLAN port the table in place matches (a previous run's), or null: no table, or nft missing. */
export function installedTunnelPort(nft = 'nft'): number | null {
  try {
    const text = execFileSync(nft, ['list', 'table', 'inet', TUNNEL_TABLE], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'], timeout: 10_000 });
    const m = /udp dport (\d+) counter (?:packets \d+ bytes \d+ )?name "vxlan6?" drop/.exec(text) ?? /udp dport (\d+) counter name "vxlan6?"/.exec(text);
    return m ? Number(m[1]) : null;
  } catch {
    return null;
  }
}

/** The tunnel table, for the counter reader (nft-counters.ts readNftCounters). */
export const TUNNEL_NFT_TABLE: NftTable = { family: 'inet', name: TUNNEL_TABLE };

/** The table's drops the node's kernel makes for podway (`vxlan_old_port`) from its named counters
 * (readNftCounters): for `podway counters` and /metrics (observe/tunnel-drops.ts), never per packet. */
export function tunnelDropsOf(named: NamedCounts): { vxlanOldPort: NftCount } {
  const k = named.vxlan_old_port;
  return { vxlanOldPort: { packets: k?.packets ?? 0, bytes: k?.bytes ?? 0 } };
}

/** Remove the table (an engine stopped without keepTunnelTable, a start that failed; podway run's
 * stop leaves it for the next start). Never throws: a table already gone is fine. */
export function removeTunnelRx(nft = 'nft'): void {
  try {
    execFileSync(nft, ['delete', 'table', 'inet', TUNNEL_TABLE], { stdio: 'ignore', timeout: 10_000 });
  } catch {
    /* gone already, or nft missing */
  }
}
