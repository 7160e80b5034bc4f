// What a node announces over BGP, as Calico's BIRD export filter does: each of the node's
// confirmed affine blocks (never the pool aggregates), and every address of a local workload that
// lies outside those blocks (borrowed from another node's block, routed as a /32 to us). Blocks
// and addresses of pools with disableBGPExport are not announced; those of disabled pools are (a
// disabled pool only stops new assignments: Calico's filter reads only disableBGPExport).
// And which learned routes the node passes on (computeLearnedExportPolicy): only those inside its
// IP pools, as the same filter (calico_export_to_bgp_peers) lets through.
import { cidrContainsAddr, cidrContainsCidr, IPv4Cidr, makeIPv4Cidr, parseIPv4Cidr, parseIPv4WithPrefix } from '../ipv4';
import type { ClusterSnapshot } from '../snapshot';
import type { BgpExport, BgpLearnedExportPolicy } from './speaker';

/** The prefixes `nodeName` announces, sorted by address then length, each once. */
export function computeExports(snapshot: ClusterSnapshot, nodeName: string): BgpExport[] {
  const pools: { cidr: IPv4Cidr; exported: boolean }[] = [];
  for (const pool of snapshot.ipPools) {
    const cidr = parseIPv4Cidr(pool.spec.cidr);
    if (cidr) pools.push({ cidr, exported: !pool.spec.disableBGPExport });
  }
  const exportedPoolOf = (cidr: IPv4Cidr): boolean => pools.find((p) => cidrContainsCidr(p.cidr, cidr))?.exported ?? false;

  const out = new Map<string, IPv4Cidr>();
  const ownBlocks: IPv4Cidr[] = [];
  for (const affinity of snapshot.blockAffinities) {
    const { node, state, deleted } = affinity.spec;
    if (node !== nodeName || state !== 'confirmed' || deleted === true || deleted === 'true') continue;
    const cidr = parseIPv4Cidr(affinity.spec.cidr);
    if (!cidr) continue;
    ownBlocks.push(cidr);
    if (exportedPoolOf(cidr)) out.set(cidr.cidr, cidr);
  }
  for (const wep of snapshot.workloadEndpoints) {
    if (wep.spec.node !== nodeName) continue;
    for (const net of wep.spec.ipNetworks) {
      const parsed = net.includes(':') ? null : parseIPv4WithPrefix(net);
      if (!parsed || ownBlocks.some((b) => cidrContainsAddr(b, parsed.addr))) continue;
      const host = makeIPv4Cidr(parsed.addr, 32);
      if (exportedPoolOf(host)) out.set(host.cidr, host);
    }
  }
  return [...out.values()].sort((a, b) => a.addr - b.addr || a.prefixLen - b.prefixLen).map((c) => ({ prefix: c.cidr }));
}

/**
 * Which learned routes `nodeName` passes on to its peers, as Calico's BIRD export filter decides
 * for routes it learned over BGP (bird_ipam.cfg's calico_export_to_bgp_peers and bird_aggr.cfg's
 * calico_aggr): routes inside an IPv4 pool with disableBGPExport never; routes strictly inside one
 * of the node's confirmed blocks never (its block covers them); routes inside any other IPv4 pool
 * (disabled ones too: Calico's filter reads only disableBGPExport) yes; everything else never, so
 * a ToR's default route or another AS's networks are not carried on to the mesh or to a second ToR.
 */
export function computeLearnedExportPolicy(snapshot: ClusterSnapshot, nodeName: string): BgpLearnedExportPolicy {
  const pools: { cidr: string; exported: boolean }[] = [];
  for (const pool of snapshot.ipPools) {
    const cidr = parseIPv4Cidr(pool.spec.cidr);
    if (cidr) pools.push({ cidr: cidr.cidr, exported: !pool.spec.disableBGPExport });
  }
  const blocks = new Set<string>();
  for (const affinity of snapshot.blockAffinities) {
    const { node, state, deleted } = affinity.spec;
    if (node !== nodeName || state !== 'confirmed' || deleted === true || deleted === 'true') continue;
    const cidr = parseIPv4Cidr(affinity.spec.cidr);
    if (cidr) blocks.add(cidr.cidr);
  }
  return { pools, blocks: [...blocks].sort() };
}
