/**
 * The address `podway run` registers at start when none is given (no --ip / --ip6, Calico's IP /
 * IP6 unset): the Node's own while an interface here holds it, else first-found.
 *
 * calico-node keeps the Node's address in that case and only warns when no interface holds it
 * (startup.go validateIP: "Unable to confirm IPv4 address ... is assigned to this host"). podway
 * does not keep it when first-found has one: a Node rewritten by a second process started under
 * the same name (or left from an old address) would otherwise bring the real node up on an
 * address that is not its own, and only `--ip` would get it back. calico-node's shipped
 * manifests set IP=autodetect, which detects afresh at every start too.
 */
import { execFileSync } from 'node:child_process';
import { addressSpelling } from '../packet/ipv6';

/** Every address on any interface here (IPv6 canonical), or null when `ip` cannot tell. */
export function addressesHeldHere(): Set<string> | null {
  let links: { addr_info?: { local?: string }[] }[];
  try {
    links = JSON.parse(execFileSync('ip', ['-j', 'addr', 'show'], { encoding: 'utf8', timeout: 10_000 })) as typeof links;
    if (!Array.isArray(links)) return null;
  } catch {
    return null;
  }
  const held = new Set<string>();
  for (const l of links) for (const a of l.addr_info ?? []) if (a.local) held.add(addressSpelling(a.local));
  return held;
}


export interface StartAddressChoice {
  /** What to register ("addr/prefix"), undefined when there is nothing. */
  readonly address: string | undefined;
  /** Why the Node's own address was not used, or was used although no interface holds it. */
  readonly warning?: string;
}

/**
 * The Node's stored address (`stored`, "addr/prefix") when an interface in `held` has it, else
 * `detect()`'s (first-found); the stored one with a warning when detection finds nothing (as
 * calico-node keeps it); `detect()` when nothing is stored. `held` null (ip failed): the stored
 * one, as before.
 */
export function chooseStartAddress(family: 4 | 6, node: string, stored: string | undefined, detect: () => string | undefined, held: ReadonlySet<string> | null): StartAddressChoice {
  if (stored === undefined) return { address: detect() };
  if (held === null || held.has(addressSpelling(stored.split('/')[0]!))) return { address: stored };
  const flag = family === 4 ? '--ip (or IP)' : '--ip6 (or IP6)';
  const detected = detect();
  if (detected === undefined) {
    return { address: stored, warning: `node ${node}: its Node's IPv${family} address ${stored} is on no interface here and first-found finds none: keeping it, as calico-node does (give ${flag} to choose)` };
  }
  return { address: detected, warning: `node ${node}: its Node's IPv${family} address ${stored} is on no interface here: registering first-found ${detected} instead (give ${flag} to choose)` };
}
