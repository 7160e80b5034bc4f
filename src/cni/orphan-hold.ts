// podway's CNI ADD does not hand out an address a pod on this node still holds (docs/ipam.md,
// "Addresses an orphan pod holds"). A pod whose WorkloadEndpoint went away while the pod stayed (its
// Node deleted with `podway delete node` while it ran, the node moved to another datastore, an
// endpoint deleted by hand) keeps its address in its namespace, and IPAM, which has released it
// or never knew it, would give it to the next pod: two pods, one address. Calico's IPAM has no
// such check; podway's plugin runs on the node and sees its pod veths.
//
// So, under the host-wide IPAM lock and before IPAM is asked, each address a pod veth's peer holds
// here (dataplane/orphan-pods.ts readPodPeerAddresses, the same detection `podway run` uses)
// that IPAM has free is assigned to the handle `podway-orphan.<node>.<host veth>` (attributes say
// why): it is not free any more, for this node or another, and `ipam show --handle`/`ipam check`
// show who holds it. A hold whose interface is gone (the orphan pod removed) is released by the
// next ADD on the node (or `podway ipam release --handle`).
import type { Ipam } from '../control/ipam';
import type { KvStore } from '../control/kv/kv';
import { HANDLE_PREFIX } from '../control/ipam/keys';
import { readPodPeerAddresses } from '../dataplane/orphan-pods';

export const ORPHAN_HANDLE_PREFIX = 'podway-orphan.';

/** The handle an orphan pod's address is held under on `node`, by its host-side veth. */
export function orphanHandle(node: string, ifname: string): string {
  return `${ORPHAN_HANDLE_PREFIX}${node}.${ifname}`;
}

export interface OrphanHold {
  /** Addresses newly held, as "ip (interface)". */
  readonly held: readonly string[];
  /** Earlier holds released (their interface gone), as handle ids. */
  readonly released: readonly string[];
  /** Pod veths not looked into (their namespace has no name), for stderr. */
  readonly unread: readonly string[];
}

/**
 * Holds the free addresses this node's pod veths' peers hold (see the top); `exclude`: host-side
 * names to skip (the veth this ADD makes or replaces). Called under the IPAM lock.
 */
export async function holdOrphanAddresses(ipam: Ipam, kv: KvStore, node: string, exclude: ReadonlySet<string>): Promise<OrphanHold> {
  // pods podway run routes are not orphans: only veths without a host route are looked into
  const scan = await readPodPeerAddresses(exclude, { skipRouted: true });
  const held: string[] = [];
  for (const o of scan.found) {
    if ((await ipam.allocationOf(o.address)) !== null) continue; // an endpoint's, or already held
    try {
      await ipam.assignIp({
        ip: o.address, handleId: orphanHandle(node, o.ifname), node,
        attrs: { node, interface: o.ifname, note: `held by podway's CNI: pod interface ${o.ifname} on node ${node} holds this address and IPAM had it free (no endpoint names it); released by the next ADD on ${node} once the interface is gone` },
      });
      held.push(`${o.address} (${o.ifname})`);
    } catch {
      /* outside every enabled pool (no pod can be given it), or taken meanwhile: nothing to hold */
    }
  }
  const live = new Set(scan.found.map((o) => orphanHandle(node, o.ifname)));
  const released: string[] = [];
  // Only when every veth was looked into: one not read may be a hold's interface.
  if (scan.unread.length === 0) {
    for (const e of (await kv.list(`${HANDLE_PREFIX}${orphanHandle(node, '')}`)).entries) {
      const h = e.key.slice(HANDLE_PREFIX.length);
      if (live.has(h) || exclude.has(h.slice(orphanHandle(node, '').length))) continue;
      await ipam.releaseByHandle(h);
      released.push(h);
    }
  }
  return { held, released, unread: scan.unread };
}
