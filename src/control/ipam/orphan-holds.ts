// Addresses a pod on a node still holds while no WorkloadEndpoint names them (an "orphan" pod:
// its endpoint or Node deleted while it ran, or made under another datastore), held in IPAM so
// that no pod, on this node or another, and no `podway ipam assign`, is given them (docs/ipam.md,
// "Addresses a pod on the node still holds"). Who finds them is not this module's business: the
// CNI ADD on the node (cni/orphan-hold.ts, from the pods' interfaces) and `podway run`
// (cli/orphan-holds.ts, from what its engine found) pass in what they found, each under the
// host-wide IPAM lock (cni/ipam-lock.ts), and both hold under the same handle,
// `podway-orphan.<node>.<interface>`, so either's hold is the other's.
//
// An operator's release of such a hold (`podway ipam release --from-report`, `--ip`, `--handle`)
// stands: the node keeps a ledger of the holds it made (a file beside the IPAM lock file, read and
// written under that lock), and an address it held that is found free again while its interface
// still holds it was released by someone else. It is not held again (said once, `releasedByHand`)
// until that interface goes; then the ledger forgets it.
import { readFileSync } from 'node:fs';
import type { KvStore } from '../kv/kv';
import type { Ipam } from './ipam';
import { HANDLE_PREFIX } from './keys';
import { replaceFile } from '../../util/replace-file';

export const ORPHAN_HANDLE_PREFIX = 'podway-orphan.';

/** The handle an orphan pod's address is held under on `node`, by its interface (host veth, or a tap/tun pod's device name). */
export function orphanHandle(node: string, ifname: string): string {
  return `${ORPHAN_HANDLE_PREFIX}${node}.${ifname}`;
}

/** A tap/tun pod's device name as podway gives it (cni/names.ts podDeviceName): its alternative name in the pod's namespace. */
export const POD_DEVICE_NAME = /^(tap|tun)[0-9a-f]{11}$/;

/** The alias podway's CNI gives a tap/tun pod's device, then the node's name (cni/netlink.ts createTunTap): whose pod it is. */
export const POD_DEVICE_ALIAS = 'podway:';

/** One address an interface holds that no endpoint names. */
export interface FoundOrphan {
  readonly ifname: string;
  readonly address: string;
}

/** What one pass did. */
export interface OrphanHoldResult {
  /** Addresses newly held, as "ip (interface)". */
  readonly held: readonly string[];
  /** Holds released (their interface gone), as handle ids. */
  readonly released: readonly string[];
  /** Addresses this node held that someone released by hand since (not held again), as "ip (interface)"; each said once. */
  readonly releasedByHand: readonly string[];
  /** This node's orphan holds left after the pass (handles). */
  readonly holds: number;
}

/** The ledger file of the holds made under the IPAM lock `ipamLockFile`. */
export function orphanLedgerFile(ipamLockFile: string): string {
  return `${ipamLockFile}.orphan-holds.json`;
}

/** Per handle: the addresses held under it, and those an operator released since (not held again). */
type Ledger = Record<string, { held: string[]; releasedByHand: string[] }>;

function readLedger(file: string): Ledger {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch {
    return {}; // none yet (or /run emptied by a reboot, which took the pods too)
  }
  try {
    const raw = JSON.parse(text) as unknown;
    const out: Ledger = {};
    if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) return out;
    for (const [h, v] of Object.entries(raw as Record<string, unknown>)) {
      const e = v as { held?: unknown; releasedByHand?: unknown };
      const list = (x: unknown) => (Array.isArray(x) ? x.filter((a): a is string => typeof a === 'string') : []);
      if (h.startsWith(ORPHAN_HANDLE_PREFIX)) out[h] = { held: list(e?.held), releasedByHand: list(e?.releasedByHand) };
    }
    return out;
  } catch {
    // A torn or foreign file: forgotten (replaced whole below). Its only cost: a hold released by
    // hand before it was lost is taken again.
    return {};
  }
}

export interface HoldOptions {
  /** The node's name (the handle's and the allocation's). */
  readonly node: string;
  /** What the caller found now. */
  readonly found: readonly FoundOrphan[];
  /** Whether a hold of this interface is to be released: its interface gone (the caller knows how to tell). */
  readonly gone: (ifname: string) => boolean;
  /** The ledger file (orphanLedgerFile of the IPAM lock file); null: none kept. */
  readonly ledgerFile: string | null;
  /** Who holds, for the allocation's note: "podway's CNI" or "podway run". */
  readonly by: string;
}

/**
 * Holds each found address IPAM has free under orphanHandle (unless this node held it before and
 * someone released it since: see the top), and releases the holds of this node whose interface is
 * gone. Call it under the host-wide IPAM lock.
 */
export async function holdOrphans(ipam: Ipam, kv: KvStore, o: HoldOptions): Promise<OrphanHoldResult> {
  const ledger = o.ledgerFile ? readLedger(o.ledgerFile) : {};
  const before = JSON.stringify(ledger);
  const entry = (h: string) => (ledger[h] ??= { held: [], releasedByHand: [] });
  const held: string[] = [];
  const releasedByHand: string[] = [];
  for (const f of o.found) {
    const h = orphanHandle(o.node, f.ifname);
    const a = await ipam.allocationOf(f.address).catch(() => null);
    if (a !== null) {
      // an endpoint's, another holder's, or ours already (then remembered as ours)
      if (a.handleId === h && !entry(h).held.includes(f.address)) entry(h).held.push(f.address);
      continue;
    }
    const e = ledger[h];
    if (e?.releasedByHand.includes(f.address)) continue; // said before
    if (e?.held.includes(f.address)) {
      // held here, free now, the interface still has it: an operator released it; it stands
      e.held = e.held.filter((x) => x !== f.address);
      e.releasedByHand.push(f.address);
      releasedByHand.push(`${f.address} (${f.ifname})`);
      continue;
    }
    try {
      await ipam.assignIp({
        ip: f.address, handleId: h, node: o.node,
        attrs: { node: o.node, interface: f.ifname, timestamp: new Date().toISOString(), note: `held by ${o.by}: pod interface ${f.ifname} on node ${o.node} holds this address and IPAM had it free (no endpoint names it); released by podway on ${o.node} once the interface is gone` },
      });
      entry(h).held.push(f.address);
      held.push(`${f.address} (${f.ifname})`);
    } catch {
      /* outside every enabled pool (no pod can be given it), in a block strict affinity keeps for another node, or taken meanwhile: nothing to hold */
    }
  }
  const released: string[] = [];
  let holds = 0;
  const mine = orphanHandle(o.node, '');
  const handles = new Set([...(await kv.list(`${HANDLE_PREFIX}${mine}`)).entries.map((e) => e.key.slice(HANDLE_PREFIX.length)), ...Object.keys(ledger).filter((h) => h.startsWith(mine))]);
  for (const h of handles) {
    if (!o.gone(h.slice(mine.length))) {
      holds++;
      continue;
    }
    if ((await ipam.releaseByHandle(h)).found) released.push(h);
    delete ledger[h];
  }
  for (const [h, e] of Object.entries(ledger)) if (e.held.length === 0 && e.releasedByHand.length === 0) delete ledger[h];
  if (o.ledgerFile && JSON.stringify(ledger) !== before) await replaceFile(o.ledgerFile, `${JSON.stringify(ledger, null, 1)}\n`, { mode: 0o600 });
  return { held, released, releasedByHand, holds };
}
