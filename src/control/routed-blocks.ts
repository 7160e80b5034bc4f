// Which block is routed to which node (route-calc.ts, route-calc6.ts), apart so that it pulls in
// no parser: types only.
import type { ClusterSnapshot, IpamBlockHost } from './snapshot';

/**
 * The blocks routed to each node (both families): the blocks' own affinity hosts when the
 * snapshot has them (a cluster datastore: Felix's view, AllocationBlock.Host() in its route
 * resolver; see ClusterSnapshot.ipamBlockHosts), else the confirmed BlockAffinities (a YAML file,
 * which has no blocks).
 */
export function routedBlocks(snapshot: ClusterSnapshot): readonly IpamBlockHost[] {
  if (snapshot.ipamBlockHosts !== undefined) return snapshot.ipamBlockHosts;
  return snapshot.blockAffinities.filter((a) => a.spec.state === 'confirmed').map((a) => ({ cidr: a.spec.cidr, node: a.spec.node }));
}
