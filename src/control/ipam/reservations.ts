// Calico's IPReservations (v3.22+) as IPAM's automatic assignment reads them (libcalico-go
// lib/ipam getReservedIPs and its addrFilter): every reservedCIDRs entry of every IPReservation,
// read once per assignment call. Automatic assignment skips a reserved address inside a block, and
// skips a block one reservation covers entirely without claiming it; an explicit request (Calico's
// AssignIP: the CNI's IP=, runtimeConfig.ips, `podway ipam assign --ip`) does not consult them.
// Reservations only hold back new assignments: addresses already assigned stay.
import type { KvStore } from '../kv/kv';
import { IPRESERVATION_PREFIX } from './keys';
import { IpNet, IpVersion, netContains, netContainsNet, netsOverlap, parseCidrOrIp } from './net';
import { podwayCommand } from '../../util/invocation';

export interface Reservation {
  /** The IPReservation's name. */
  readonly name: string;
  readonly cidr: IpNet;
}

/** The reservations of one IP version, with Calico's three questions about them. */
export class Reservations {
  constructor(readonly list: readonly Reservation[]) {}

  get empty(): boolean {
    return this.list.length === 0;
  }

  /** Whether one reservation covers all of `net` (MatchesWholeCIDR). */
  coversWhole(net: IpNet): boolean {
    return this.list.some((r) => netContainsNet(r.cidr, net));
  }

  /** The reservations overlapping `net` (MatchesSome when any). */
  overlapping(net: IpNet): Reservation[] {
    return this.list.filter((r) => netsOverlap(r.cidr, net));
  }

  /** Whether an address is reserved (MatchesIP). */
  matches(version: IpVersion, value: bigint): boolean {
    return this.list.some((r) => r.cidr.version === version && netContains(r.cidr, value));
  }
}

export const NO_RESERVATIONS = new Reservations([]);

/**
 * Reads every IPReservation of one IP version. A stored value that is not a reservation (not JSON,
 * spec.reservedCIDRs not a list of CIDRs or addresses) throws an error naming its key and field:
 * Calico's validation keeps such values out, and assigning while one reservation cannot be read
 * could hand out an address it holds back.
 */
export async function readReservations(kv: KvStore, version: IpVersion): Promise<Reservations> {
  const list = await kv.list(IPRESERVATION_PREFIX);
  const out: Reservation[] = [];
  for (const e of list.entries) {
    const name = e.key.slice(IPRESERVATION_PREFIX.length);
    if (name === '' || name.includes('/')) continue;
    const where = `IPReservation ${name} (${e.key})`;
    let obj: unknown;
    try {
      obj = JSON.parse(e.value);
    } catch (err) {
      throw new Error(`${where}: value is not JSON (${(err as Error).message}); fix or delete it (${podwayCommand()} delete ipreservation ${name})`);
    }
    const spec = typeof obj === 'object' && obj !== null ? (obj as { spec?: unknown }).spec : undefined;
    const cidrs = typeof spec === 'object' && spec !== null ? (spec as { reservedCIDRs?: unknown }).reservedCIDRs : undefined;
    if (cidrs === undefined || cidrs === null) continue;
    if (!Array.isArray(cidrs)) throw new Error(`${where}: spec.reservedCIDRs: expected a list of CIDRs, got ${JSON.stringify(cidrs)}`);
    cidrs.forEach((c: unknown, i) => {
      // Calico trims each entry and skips an empty one (getReservedIPs).
      const text = typeof c === 'string' ? c.trim() : null;
      if (text === '') return;
      const cidr = text === null ? null : parseCidrOrIp(text);
      if (!cidr) throw new Error(`${where}: spec.reservedCIDRs[${i}]: expected a CIDR or IP address, got ${JSON.stringify(c)}`);
      if (cidr.version === version) out.push({ name, cidr });
    });
  }
  return new Reservations(out);
}
