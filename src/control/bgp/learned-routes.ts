// From the speaker's learned routes (every peer's, possibly several per prefix) to one route per
// prefix for the route calculation, chosen as RFC 4271 9.1.2.2 orders them in the parts that
// matter between Calico peers: highest LOCAL_PREF, shortest AS_PATH, lowest MED (among routes from
// the same neighbouring AS), then the lowest peer address, so the choice never depends on arrival
// order. IPv6 prefixes are left out (the route calculation is IPv4).
import { parseIPv4, parseIPv4Cidr } from '../ipv4';
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
  return (parseIPv4(a.peer) ?? 0) - (parseIPv4(b.peer) ?? 0);
}

/** One best route per IPv4 prefix, sorted by prefix text. */
export function bestLearnedRoutes(routes: readonly BgpRoute[]): LearnedRoute[] {
  const best = new Map<string, BgpRoute>();
  for (const route of routes) {
    if (parseIPv4Cidr(route.prefix) === null || parseIPv4(route.nextHop) === null) continue;
    const held = best.get(route.prefix);
    if (!held || compareLearned(route, held) < 0) best.set(route.prefix, route);
  }
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
