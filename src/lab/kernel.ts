/**
 * A lab node run by the Linux kernel the way Calico's Felix programs it, as the baseline podway is
 * compared with (and the peer it must interoperate with):
 * - per veth pod: proxy_arp=1, proxy_delay=0, `<pod>/32 dev caliX scope link`;
 * - forwarding on; the node's own block blackholed;
 * - VXLAN: a `vxlan.calico` device (VNI 4096, dstport 4789 unless `wire` gives Felix's vxlanVNI /
 *   vxlanPort, learning off, the node's VTEP MAC and address, the MTU Felix gives it: vxlanMTU, or
 *   with none or 0 the node's eth0 MTU less 50, src/control/felix-mtu.ts; the settings are `wire.mtu`
 *   or else the FelixConfigurations of the lab's resource file), and per remote node a permanent neighbour, a permanent FDB entry and
 *   `<block> via <remote VTEP> dev vxlan.calico onlink`;
 * - unencapsulated: `<block> via <remote node IP> dev eth0 onlink`.
 * IPIP is not possible: this kernel has no ipip module.
 */
import { execFileSync } from 'node:child_process';
import { deriveVtepMac } from '../control';
import { Lab, LabNode, run } from './lab';
import { NAT_TABLE } from '../dataplane/nft-nat';
import { TUNNEL_TABLE } from '../dataplane/nft-tunnels';
import { resolveTunnelMtus, tunnelMtus, type TunnelMtuSettings } from '../control/felix-mtu';
import { parseAllDocuments } from 'yaml';

export type KernelMode = 'vxlan' | 'direct';

/** Felix's vxlanPort and vxlanVNI for a kernel node's VXLAN devices (default 4789, 4096), and its
 * tunnel MTU settings (vxlanMTU, vxlanMTUV6 as resolveTunnelMtus gives them; default: the lab's
 * resource file's FelixConfigurations, labFelixMtus: give them for a KV datastore). */
export interface KernelVxlanWire { port?: number; vni?: number; mtu?: TunnelMtuSettings }

/** The tunnel MTU settings Felix on `node` would read from the lab's resource file (the
 * FelixConfigurations among lab.extraResources: node.<name> over default), as podway's model does. */
export function labFelixMtus(lab: Lab, node: LabNode): TunnelMtuSettings {
  const specs = new Map<string, Record<string, unknown>>();
  for (const text of lab.extraResources) {
    for (const doc of parseAllDocuments(text)) {
      const o = doc.toJS() as { kind?: string; metadata?: { name?: string }; spec?: Record<string, unknown> } | null;
      if (o?.kind === 'FelixConfiguration' && o.metadata?.name) specs.set(o.metadata.name, o.spec ?? {});
    }
  }
  return resolveTunnelMtus({ default: specs.get('default') ?? null, node: specs.get(`node.${node.name}`) ?? null });
}

/** The MTU Felix gives the node's VXLAN devices: the settings', or eth0's less the overhead. */
function kernelTunnelMtus(lab: Lab, node: LabNode, wire: KernelVxlanWire): { vxlan: number; vxlan6: number } {
  const eth0 = (JSON.parse(nsRun(node, ['ip', '-j', 'link', 'show', 'eth0'])) as { mtu: number }[])[0].mtu;
  const m = tunnelMtus(eth0, wire.mtu ?? labFelixMtus(lab, node));
  return { vxlan: m.vxlan, vxlan6: m.vxlan6 };
}

/** The kernel baseline's masquerade table (only ever inside a lab node's namespace). */
const LAB_MASQ_TABLE = 'lab-masq';

function nsRun(node: LabNode, args: string[], allowFail = false): string {
  return run('ip', ['netns', 'exec', node.ns, ...args], { allowFail });
}

/** Undo whatever a previous kernel configuration (or podway) left on the node. */
export function resetNode(lab: Lab, node: LabNode): void {
  nsRun(node, ['ip', 'link', 'del', 'vxlan.calico'], true);
  nsRun(node, ['nft', 'delete', 'table', 'ip', LAB_MASQ_TABLE], true);
  nsRun(node, ['nft', 'delete', 'table', 'ip6', LAB_MASQ_TABLE], true);
  // podway's own tables, when a podway here was SIGKILLed before removing them: its tunnel guard
  // (inet podway_tunnels) drops VXLAN/IPIP to the node at prerouting, and its pod guard and NAT
  // tables would filter or masquerade the kernel baseline's traffic
  for (const [family, table] of [['inet', TUNNEL_TABLE], ['inet', NAT_TABLE], ['ip', NAT_TABLE], ['ip6', NAT_TABLE]]) {
    nsRun(node, ['nft', 'delete', 'table', family, table], true);
  }
  for (const other of lab.nodes) if (other !== node) nsRun(node, ['ip', 'route', 'del', other.block], true);
  nsRun(node, ['ip', 'route', 'del', 'blackhole', node.block], true);
  nsRun(node, ['ip', 'link', 'del', 'vxlan-v6.calico'], true);
  for (const other of lab.nodes) if (other !== node && other.block6) nsRun(node, ['ip', '-6', 'route', 'del', other.block6], true);
  if (node.block6) nsRun(node, ['ip', '-6', 'route', 'del', 'blackhole', node.block6], true);
  // configureKernelNode6's IPv6 forwarding: left on, the kernel would forward a podway node's pod
  // IPv6 a second time (docs/ipv6.md, "Dual-stack pods": leave it off where podway runs)
  if (node.ip6) nsRun(node, ['sysctl', '-qw', 'net.ipv6.conf.all.forwarding=0'], true);
}

/**
 * The IPv6 half of a dual-stack kernel node, as Felix programs it: IPv6 forwarding, the node's
 * IPv6 block blackholed, per veth pod `<pod6>/128 dev caliX` with a permanent neighbour and
 * proxy_ndp=1 (the pod's gateway fe80::ecee:eeff:feee:eeee is the cali veth's own link-local
 * address, answered by the kernel); VXLAN: `vxlan-v6.calico` (VNI 4096, dstport 4789, local =
 * the node's IPv6, learning off, MAC 0x66 + sha1(name + "-v6"), the IPv6 VTEP /128, the MTU Felix
 * gives it: vxlanMTUV6, or eth0's less 70),
 * per remote node a permanent neighbour, FDB entry and `<block6> via <VTEP6> dev vxlan-v6.calico
 * onlink`; unencapsulated (`mtus` null: configureKernelNode reads the VXLAN MTUs once for both
 * families): `<block6> via <node IPv6> dev eth0 onlink`.
 */
function configureKernelNode6(lab: Lab, node: LabNode, wire: KernelVxlanWire, mtus: { vxlan6: number } | null): void {
  if (!node.ip6 || !node.block6 || !node.vtep6) return;
  nsRun(node, ['sysctl', '-qw', 'net.ipv6.conf.all.forwarding=1', 'net.ipv6.conf.eth0.forwarding=1']);
  nsRun(node, ['ip', '-6', 'route', 'replace', 'blackhole', node.block6]);
  for (const p of node.pods) {
    if (!p.ip6) continue;
    nsRun(node, ['sysctl', '-qw', `net.ipv6.conf.${p.ifname}.proxy_ndp=1`, `net.ipv6.conf.${p.ifname}.accept_ra=0`, `net.ipv6.conf.${p.ifname}.forwarding=1`]);
    nsRun(node, ['ip', '-6', 'route', 'replace', `${p.ip6}/128`, 'dev', p.ifname]);
    if (p.mac) nsRun(node, ['ip', '-6', 'neigh', 'replace', p.ip6, 'lladdr', p.mac, 'dev', p.ifname, 'nud', 'permanent']);
  }
  const others = lab.nodes.filter((o) => o !== node && o.ip6 && o.block6 && o.vtep6);
  if (mtus) {
    nsRun(node, ['ip', 'link', 'add', 'vxlan-v6.calico', 'type', 'vxlan', 'id', String(wire.vni ?? 4096), 'dstport', String(wire.port ?? 4789), 'local', node.ip6, 'dev', 'eth0', 'nolearning']);
    nsRun(node, ['ip', 'link', 'set', 'vxlan-v6.calico', 'address', deriveVtepMac(node.name, 6), 'mtu', String(mtus.vxlan6), 'up']);
    nsRun(node, ['ip', '-6', 'addr', 'add', `${node.vtep6}/128`, 'dev', 'vxlan-v6.calico', 'nodad']);
    for (const other of others) {
      const mac = deriveVtepMac(other.name, 6);
      nsRun(node, ['ip', '-6', 'neigh', 'replace', other.vtep6!, 'lladdr', mac, 'dev', 'vxlan-v6.calico', 'nud', 'permanent']);
      nsRun(node, ['bridge', 'fdb', 'replace', mac, 'dev', 'vxlan-v6.calico', 'dst', other.ip6!, 'self', 'permanent']);
      nsRun(node, ['ip', '-6', 'route', 'replace', other.block6!, 'via', other.vtep6!, 'dev', 'vxlan-v6.calico', 'onlink']);
    }
  } else {
    for (const other of others) nsRun(node, ['ip', '-6', 'route', 'replace', other.block6!, 'via', other.ip6!, 'dev', 'eth0', 'onlink']);
  }
}

export function configureKernelNode(lab: Lab, node: LabNode, mode: KernelMode, wire: KernelVxlanWire = {}): void {
  resetNode(lab, node);
  // Writing ip_forward only propagates to the interfaces when the value changes, so the per-interface
  // switches podway turned off (forwarding=0 on the underlay and pod veths) are set back one by one.
  nsRun(node, ['sysctl', '-qw', 'net.ipv4.ip_forward=1', 'net.ipv4.conf.eth0.forwarding=1']);
  nsRun(node, ['ip', 'route', 'replace', 'blackhole', node.block]);
  for (const p of node.pods) {
    if (p.type !== 'veth') throw new Error(`the kernel baseline serves veth pods only (${p.name} is ${p.type})`);
    nsRun(node, ['sysctl', '-qw', `net.ipv4.conf.${p.ifname}.proxy_arp=1`, `net.ipv4.neigh.${p.ifname}.proxy_delay=0`, `net.ipv4.conf.${p.ifname}.forwarding=1`]);
    nsRun(node, ['ip', 'route', 'replace', `${p.ip}/32`, 'dev', p.ifname, 'scope', 'link']);
    if (p.mac) nsRun(node, ['ip', 'neigh', 'replace', p.ip, 'lladdr', p.mac, 'dev', p.ifname, 'nud', 'permanent']);
  }
  // VXLAN: the MTUs Felix gives both families' devices, read once (eth0's, the FelixConfigurations)
  const mtus = mode === 'vxlan' ? kernelTunnelMtus(lab, node, wire) : null;
  if (mtus) {
    nsRun(node, ['ip', 'link', 'add', 'vxlan.calico', 'type', 'vxlan', 'id', String(wire.vni ?? 4096), 'dstport', String(wire.port ?? 4789), 'local', node.ip, 'dev', 'eth0', 'nolearning']);
    nsRun(node, ['ip', 'link', 'set', 'vxlan.calico', 'address', deriveVtepMac(node.name), 'mtu', String(mtus.vxlan), 'up']);
    nsRun(node, ['ip', 'addr', 'add', `${node.vtep}/32`, 'dev', 'vxlan.calico']);
    for (const other of lab.nodes) {
      if (other === node) continue;
      const mac = deriveVtepMac(other.name);
      nsRun(node, ['ip', 'neigh', 'replace', other.vtep, 'lladdr', mac, 'dev', 'vxlan.calico', 'nud', 'permanent']);
      nsRun(node, ['bridge', 'fdb', 'replace', mac, 'dev', 'vxlan.calico', 'dst', other.ip, 'self', 'permanent']);
      nsRun(node, ['ip', 'route', 'replace', other.block, 'via', other.vtep, 'dev', 'vxlan.calico', 'onlink']);
    }
  } else {
    for (const other of lab.nodes) {
      if (other !== node) nsRun(node, ['ip', 'route', 'replace', other.block, 'via', other.ip, 'dev', 'eth0', 'onlink']);
    }
  }
  if (lab.dualStack) configureKernelNode6(lab, node, wire, mtus);
}

/**
 * Calico's natOutgoing on a kernel node: `MASQUERADE --random-fully` for traffic from the pool to
 * anything outside it, other nodes' addresses included (Felix's natOutgoingExclusions default,
 * IPPoolsOnly: felix/rules/nat.go matches the source pool and `! --match-set all-ipam-pools dst`
 * alone), in nftables form. A reply to a connection another node opened is not masqueraded: the
 * kernel node forwarded the request, so its conntrack knows the flow (nat chains see a flow's
 * first packet only).
 */
export function kernelMasquerade(lab: Lab, node: LabNode, pool: string): void {
  const match = `ip saddr ${pool} ip daddr != ${pool}`;
  const program = `table ip ${LAB_MASQ_TABLE} {
  chain postrouting {
    type nat hook postrouting priority srcnat; policy accept;
    ${match} meta l4proto { tcp, udp } masquerade to :61000-65535 fully-random
    ${match} masquerade fully-random
  }
}
`;
  execFileSync('ip', ['netns', 'exec', node.ns, 'nft', '-f', '-'], { input: program, stdio: ['pipe', 'ignore', 'pipe'], timeout: 10_000 });
}

/** The same for an IPv6 pool (Calico's ip6tables `MASQUERADE --random-fully`, other nodes' addresses included as for IPv4). */
export function kernelMasquerade6(lab: Lab, node: LabNode, pool: string): void {
  const match = `ip6 saddr ${pool} ip6 daddr != ${pool}`;
  const program = `table ip6 ${LAB_MASQ_TABLE} {
  chain postrouting {
    type nat hook postrouting priority srcnat; policy accept;
    ${match} meta l4proto { tcp, udp } masquerade to :61000-65535 fully-random
    ${match} masquerade fully-random
  }
}
`;
  execFileSync('ip', ['netns', 'exec', node.ns, 'nft', '-f', '-'], { input: program, stdio: ['pipe', 'ignore', 'pipe'], timeout: 10_000 });
}
