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
// why; control/ipam/orphan-holds.ts, which `podway run` holds through too, as soon as it finds
// one): it is not free any more, for this node or another, and `ipam show --handle`/`ipam check`
// show who holds it. A hold whose veth is gone or routed again (the orphan pod removed, or served)
// is released by the next ADD on the node (or by podway run); one an operator released by hand is
// not taken again while the pod keeps the address (the node's ledger, orphan-holds.ts).
import type { Ipam } from '../control/ipam';
import type { KvStore } from '../control/kv/kv';
import { holdOrphans, orphanLedgerFile, POD_DEVICE_NAME, ORPHAN_HANDLE_PREFIX, orphanHandle } from '../control/ipam/orphan-holds';
import { readPodPeerAddresses } from '../dataplane/orphan-pods';

export { ORPHAN_HANDLE_PREFIX, orphanHandle };

export interface OrphanHold {
  /** Addresses newly held, as "ip (interface)". */
  readonly held: readonly string[];
  /** Earlier holds released (their interface gone), as handle ids. */
  readonly released: readonly string[];
  /** Addresses held here before and released by hand since: not held again (control/ipam/orphan-holds.ts). */
  readonly releasedByHand: readonly string[];
  /** Pod veths not looked into (their namespace could not be found or read), for stderr. */
  readonly unread: readonly string[];
}

/**
 * Holds the free addresses this node's pod veths' peers hold (see the top); `exclude`: host-side
 * names to skip (the veth this ADD makes or replaces). Called under the IPAM lock `ipamLockFile`
 * (its ledger is beside it).
 */
export async function holdOrphanAddresses(ipam: Ipam, kv: KvStore, node: string, exclude: ReadonlySet<string>, ipamLockFile: string): Promise<OrphanHold> {
  // pods podway run routes are not orphans: only veths without a host route are looked into
  const scan = await readPodPeerAddresses(exclude, { skipRouted: true });
  const live = new Set(scan.found.map((o) => o.ifname));
  const r = await holdOrphans(ipam, kv, {
    node, found: scan.found, ledgerFile: orphanLedgerFile(ipamLockFile), by: 'podway\'s CNI',
    // Only when every veth was looked into: one not read may be a hold's interface. A tap/tun
    // pod's device (in its pod's namespace, not looked for here) is podway run's to judge.
    gone: (ifname) => scan.unread.length === 0 && !live.has(ifname) && !exclude.has(ifname) && !POD_DEVICE_NAME.test(ifname),
  });
  return { ...r, unread: scan.unread };
}
