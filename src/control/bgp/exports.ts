// What a node announces over BGP, as Calico's BIRD export filter does: each of the node's
// confirmed affine blocks (never the pool aggregates), and every address of a local workload that
// lies outside those blocks (borrowed from another node's block, routed as a /32 to us). Blocks
// and addresses of pools with disableBGPExport are not announced; those of disabled pools are (a
// disabled pool only stops new assignments: Calico's filter reads only disableBGPExport).
// The evidence (checked 2026-12-06 against projectcalico/calico): libcalico-go's IPPool update
// processor (libcalico-go/lib/backend/syncersv1/updateprocessors/ippoolprocessor.go) hands confd
// every pool, a disabled one as a v1 pool with disabled true and ipam false, not left out;
// confd's bird_ipam.cfg.template rejects in reject_disabled_pools() only pools whose
// disableBGPExport is set and accepts every other pool's CIDR in calico_export_to_bgp_peers,
// never reading `disabled`; the newer confd (confd/pkg/backends/calico/bgp_processor.go,
// processIPPool) builds the same filter from DisableBGPExport alone, its "disabled ippools"
// meaning pools with BGP export disabled. So a reference saying a disabled pool is not exported
// mixes the two flags.
// And which learned routes the node passes on (computeLearnedExportPolicy): only those inside its
// IP pools, as the same filter (calico_export_to_bgp_peers) lets through.
// IPv6 alike (bird6_ipam.cfg.template has the same filter): the node's IPv6 blocks and borrowed
// /128s of its IPv6 pools, announced on its IPv6 sessions.
import { formatIPv4, parseIPv4Cidr, parseIPv4WithPrefix } from '../ipv4';
import { parsePrefix, prefixWithin as within, type Prefix } from './wire/prefix';
import type { ClusterSnapshot } from '../snapshot';
import type { BgpExport, BgpLearnedExportPolicy } from './speaker';

/** How one address family's texts are read: a CIDR (null when not one of this family), and a
 * workload's ipNetworks entry as its host prefix (/32, /128). */
interface Family {
  cidr(text: string): Prefix | null;
  host(net: string): Prefix | null;
}

const IPV4: Family = {
  cidr: (text) => {
    const c = parseIPv4Cidr(text);
    return c ? parsePrefix(c.cidr) : null;
  },
  host: (net) => {
    const parsed = net.includes(':') ? null : parseIPv4WithPrefix(net);
    return parsed ? parsePrefix(`${formatIPv4(parsed.addr)}/32`) : null;
  },
};

const IPV6: Family = {
  cidr: prefix6,
  host: (net) => prefix6(`${net.split('/')[0]}/128`),
};

/** The prefixes `nodeName` announces, sorted by address then length, each once: IPv4, then IPv6. */
export function computeExports(snapshot: ClusterSnapshot, nodeName: string): BgpExport[] {
  return [...familyExports(snapshot, nodeName, IPV4), ...familyExports(snapshot, nodeName, IPV6)];
}

/** One family's exports: the node's confirmed blocks and the host prefixes of its workloads outside
 * them, inside a pool without disableBGPExport (disabled pools too). */
function familyExports(snapshot: ClusterSnapshot, nodeName: string, family: Family): BgpExport[] {
  const pools: { p: Prefix; exported: boolean }[] = [];
  for (const pool of snapshot.ipPools) {
    const p = family.cidr(pool.spec.cidr);
    if (p) pools.push({ p, exported: !pool.spec.disableBGPExport });
  }
  const exported = (c: Prefix): boolean => pools.find((x) => within(x.p, c))?.exported ?? false;
  const out = new Map<string, Prefix>();
  const ownBlocks: Prefix[] = [];
  for (const affinity of snapshot.blockAffinities) {
    const { node, state, deleted } = affinity.spec;
    if (node !== nodeName || state !== 'confirmed' || deleted === true || deleted === 'true') continue;
    const c = family.cidr(affinity.spec.cidr);
    if (!c) continue;
    ownBlocks.push(c);
    if (exported(c)) out.set(c.text, c);
  }
  for (const wep of snapshot.workloadEndpoints) {
    if (wep.spec.node !== nodeName) continue;
    for (const net of wep.spec.ipNetworks) {
      const c = family.host(net);
      if (!c || ownBlocks.some((b) => within(b, c))) continue;
      if (exported(c)) out.set(c.text, c);
    }
  }
  return [...out.values()].sort((a, b) => Buffer.compare(a.octets, b.octets) || a.len - b.len).map((c) => ({ prefix: c.text }));
}

/** An IPv6 CIDR (host bits cleared); null for IPv4 or anything unparseable. */
function prefix6(text: string): Prefix | null {
  if (!text.includes(':')) return null;
  try {
    return parsePrefix(text);
  } catch {
    return null;
  }
}

/**
 * Which learned routes `nodeName` passes on to its peers, as Calico's BIRD export filter decides
 * for routes it learned over BGP (bird_ipam.cfg's calico_export_to_bgp_peers and bird_aggr.cfg's
 * calico_aggr; bird6_* alike for IPv6): routes inside a pool with disableBGPExport never; routes
 * strictly inside one of the node's confirmed blocks never (its block covers them); routes inside any other pool
 * (disabled ones too: Calico's filter reads only disableBGPExport) yes; everything else never, so
 * a ToR's default route or another AS's networks are not carried on to the mesh or to a second ToR.
 */
export function computeLearnedExportPolicy(snapshot: ClusterSnapshot, nodeName: string): BgpLearnedExportPolicy {
  const pools: { cidr: string; exported: boolean }[] = [];
  const cidrOf = (text: string): string | null => parseIPv4Cidr(text)?.cidr ?? prefix6(text)?.text ?? null;
  for (const pool of snapshot.ipPools) {
    const cidr = cidrOf(pool.spec.cidr);
    if (cidr) pools.push({ cidr, exported: !pool.spec.disableBGPExport });
  }
  const blocks = new Set<string>();
  for (const affinity of snapshot.blockAffinities) {
    const { node, state, deleted } = affinity.spec;
    if (node !== nodeName || state !== 'confirmed' || deleted === true || deleted === 'true') continue;
    const cidr = cidrOf(affinity.spec.cidr);
    if (cidr) blocks.add(cidr);
  }
  return { pools, blocks: [...blocks].sort() };
}
