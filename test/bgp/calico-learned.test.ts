// One best learned route per prefix for the route calculation (src/control/bgp/learned-routes.ts).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { bestLearnedRoutes, learnedEqual } from '../../src/control/bgp/learned-routes';
import type { BgpRoute } from '../../src/control/bgp/speaker';

const r = (prefix: string, peer: string, extra: Partial<BgpRoute> = {}): BgpRoute => ({ prefix, nextHop: peer, peer, asPath: [], communities: [], ...extra });

test('local preference, then AS path length, then MED from the same AS, then the lowest peer address', () => {
  const pick = (...routes: BgpRoute[]) => bestLearnedRoutes(routes).map((x) => x.peer);
  assert.equal(pick(r('10.0.0.0/24', '10.99.0.2'), r('10.0.0.0/24', '10.99.0.3', { localPref: 200 })), ['10.99.0.3']);
  assert.equal(pick(r('10.0.0.0/24', '10.99.0.2', { asPath: [65000, 65001] }), r('10.0.0.0/24', '10.99.0.3', { asPath: [65002] })), ['10.99.0.3']);
  assert.equal(pick(r('10.0.0.0/24', '10.99.0.2', { asPath: [65000], med: 20 }), r('10.0.0.0/24', '10.99.0.3', { asPath: [65000], med: 10 })), ['10.99.0.3']);
  // MED is not compared between different neighbouring ASes: the peer address decides.
  assert.equal(pick(r('10.0.0.0/24', '10.99.0.2', { asPath: [65000], med: 20 }), r('10.0.0.0/24', '10.99.0.3', { asPath: [65001], med: 10 })), ['10.99.0.2']);
  // Arrival order does not matter; numeric, not textual, address order (10.99.0.10 > 10.99.0.9).
  assert.equal(pick(r('10.0.0.0/24', '10.99.0.10'), r('10.0.0.0/24', '10.99.0.9')), ['10.99.0.9']);
  assert.equal(pick(r('10.0.0.0/24', '10.99.0.9'), r('10.0.0.0/24', '10.99.0.10')), ['10.99.0.9']);
});

test('one route per prefix, sorted; IPv6 and malformed prefixes left out; equality by value', () => {
  const list = bestLearnedRoutes([r('10.1.0.0/24', '10.99.0.2'), r('fd00::/64', '10.99.0.2'), r('10.1.0.1/24', '10.99.0.2'), r('10.0.0.0/24', '10.99.0.3'), r('10.1.0.0/24', '10.99.0.3')]);
  assert.equal(list, [{ prefix: '10.0.0.0/24', nextHop: '10.99.0.3', peer: '10.99.0.3' }, { prefix: '10.1.0.0/24', nextHop: '10.99.0.2', peer: '10.99.0.2' }]);
  assert.ok(learnedEqual(list, bestLearnedRoutes([r('10.1.0.0/24', '10.99.0.2'), r('10.0.0.0/24', '10.99.0.3')])));
  assert.not.ok(learnedEqual(list, list.slice(1)));
});

test('IPv6 routes with an IPv6 next hop are kept (the lowest peer address by octets); mapped or IPv4 next hops are not; link-local-only ones are kept (to be withheld) unless a usable route exists', () => {
  const list = bestLearnedRoutes([
    r('fd00:10:244::80/122', 'fd00::10'), r('fd00:10:244::80/122', 'fd00::9'), r('fd00:10:244::c0/122', 'fd00::3'),
    r('fd00:1::/64', 'fe80::1'), r('fd00:2::/64', '::ffff:10.0.0.1'), r('fd00:3::/64', '10.99.0.2'), r('10.1.0.0/24', 'fd00::3'),
    r('fd00:10:244::c0/122', 'fe80::2', { localPref: 200 }), // preferred by BGP, but a usable route wins
  ]);
  assert.equal(list, [
    { prefix: 'fd00:10:244::80/122', nextHop: 'fd00::9', peer: 'fd00::9' },
    { prefix: 'fd00:10:244::c0/122', nextHop: 'fd00::3', peer: 'fd00::3' },
    { prefix: 'fd00:1::/64', nextHop: 'fe80::1', peer: 'fe80::1' },
  ]);
});

test.run();
