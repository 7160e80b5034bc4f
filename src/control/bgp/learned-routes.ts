// From the speaker's learned routes (every peer's, possibly several per prefix) to one route per
// prefix for the route calculation, chosen as RFC 4271 9.1.2.2 orders them in the parts that
// matter between Calico peers: highest LOCAL_PREF, shortest AS_PATH, lowest MED (among routes from
// the same neighbouring AS), then the lowest peer address, so the choice never depends on arrival
// order. IPv4 prefixes with an IPv4 next hop go to route-calc.ts, IPv6 prefixes with an IPv6 next
// hop (the global one of MP_REACH_NLRI) to route-calc6.ts; other pairings (an IPv6 prefix with an
// IPv4-mapped next hop) cannot be forwarded and are left out.
import { isIPv6 } from 'node:net';
import { parseIPv4, parseIPv4Cidr } from '../ipv4';
import { addressOctets } from './wire/prefix';
import type { LearnedRoute } from '../route-calc';
import type { BgpRoute } from './speaker';

const DEFAULT_LOCAL_PREF = 100;

/** Negative when `a` is preferred over `b`. */
export function compareLearned(a: BgpRoute, b: BgpRoute): number {
  const lp = (b.localPref ?? DEFAULT_LOCAL_PREF) - (a.localPref ?? DEFAULT_LOCAL_PREF);
  if (lp !== 0) return lp;
  if (a.asPath.length !== b.asPath.length) return a.asPath.length - b.asPath.length;
  if ((a.asPath[0] ?? 0) === (b.asPath[0] ?? 0)) {
    const med = (a.med ?? 0) - (b.med ?? 0);
    if (med !== 0) return med;
  }
  return peerOrder(a.peer, b.peer);
}

/** Lowest peer address first: as numbers for IPv4, by octets for IPv6 (IPv4 peers before IPv6). */
function peerOrder(a: string, b: string): number {
  const a4 = parseIPv4(a);
  const b4 = parseIPv4(b);
  if (a4 !== null && b4 !== null) return a4 - b4;
  if (a4 !== null || b4 !== null) return a4 !== null ? -1 : 1;
  try {
    return Buffer.compare(addressOctets(a), addressOctets(b));
  } catch {
    return a < b ? -1 : a > b ? 1 : 0;
  }
}

/** An IPv6 prefix with a usable IPv6 next hop: not unspecified, not IPv4-mapped, not link-local
 * (that needs an interface, which a route in the model does not name). */
function usable6(route: BgpRoute): boolean {
  const nh = route.nextHop;
  return route.prefix.includes(':') && isIPv6(nh) && nh !== '::' && !/^::ffff:/i.test(nh) && !/^fe[89ab]/i.test(nh);
}

/** An IPv6 prefix whose next hop is only link-local (or '::' beside a link-local one, RFC 2545). */
export function linkLocalOnly6(prefix: string, nextHop: string): boolean {
  return prefix.includes(':') && (nextHop === '::' || /^fe[89ab][0-9a-f]?:/i.test(nextHop));
}

/**
 * One best route per prefix (IPv4 and IPv6), sorted by prefix text. An IPv6 prefix heard only
 * with a link-local next hop is kept (its best such route) so the route calculation can report it
 * withheld, with the reason, in `podway routes`; a usable route for the prefix always wins.
 */
export function bestLearnedRoutes(routes: readonly BgpRoute[]): LearnedRoute[] {
  const best = new Map<string, BgpRoute>();
  const linkLocal = new Map<string, BgpRoute>();
  for (const route of routes) {
    const ok4 = parseIPv4Cidr(route.prefix) !== null && parseIPv4(route.nextHop) !== null;
    const into = ok4 || usable6(route) ? best : linkLocalOnly6(route.prefix, route.nextHop) ? linkLocal : null;
    if (!into) continue;
    const held = into.get(route.prefix);
    if (!held || compareLearned(route, held) < 0) into.set(route.prefix, route);
  }
  for (const [prefix, route] of linkLocal) if (!best.has(prefix)) best.set(prefix, route);
  return [...best.values()]
    .map((r) => ({ prefix: r.prefix, nextHop: r.nextHop, peer: r.peer }))
    .sort((a, b) => (a.prefix < b.prefix ? -1 : a.prefix > b.prefix ? 1 : 0));
}

/** Whether two learned-route lists (as bestLearnedRoutes returns them) are the same. */
export function learnedEqual(a: readonly LearnedRoute[], b: readonly LearnedRoute[]): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) {
    const x = a[i]!;
    const y = b[i]!;
    if (x.prefix !== y.prefix || x.nextHop !== y.nextHop || x.peer !== y.peer) return false;
  }
  return true;
}
