// BGPFilter rules as calico-node's BIRD runs them (confd's filterStatement and per-peer filter
// blocks): match operators with and without prefixLength (BIRD's prefix sets), first match wins
// across the filters in order, source RemotePeers, interface patterns, peerType, asPathPrefix and
// communities; rules podway cannot evaluate never match; Equal with prefixLength is BIRD's runtime
// error (rejected). And the resource's validation, naming the field.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { compileFilter, filterVerdict, patternMatches, type BgpPeerFilter, type FilterRoute } from '../../src/control/bgp/filters';
import { parsePrefix } from '../../src/control/bgp/wire';
import { errorOf, snapshotOf } from '../control/fixtures';

const API = 'projectcalico.org/v3';

function filter(spec: Record<string, unknown>, name = 'f'): BgpPeerFilter {
  const bad: string[] = [];
  const f = compileFilter(name, spec, bad);
  assert.equal(bad, []);
  return f;
}

const route = (prefix: string, more: Partial<FilterRoute> = {}): FilterRoute => ({ prefix: parsePrefix(prefix), fromBgp: true, ebgp: true, ...more });

test('match operators: Equal, NotEqual, In (inside or equal), NotIn; prefixLength makes a prefix set [CIDR{min,max}]', () => {
  const v = (rule: Record<string, unknown>, prefix: string) => filterVerdict([filter({ importV4: [{ ...rule, action: 'Reject' }] })], 'import', route(prefix));
  assert.is(v({ cidr: '10.0.0.0/8', matchOperator: 'Equal' }, '10.0.0.0/8'), 'reject');
  assert.is(v({ cidr: '10.0.0.0/8', matchOperator: 'Equal' }, '10.0.0.0/9'), null);
  assert.is(v({ cidr: '10.0.0.0/8', matchOperator: 'NotEqual' }, '10.0.0.0/9'), 'reject');
  assert.is(v({ cidr: '10.0.0.0/8', matchOperator: 'In' }, '10.0.0.0/8'), 'reject');
  assert.is(v({ cidr: '10.0.0.0/8', matchOperator: 'In' }, '10.1.2.0/24'), 'reject');
  assert.is(v({ cidr: '10.0.0.0/8', matchOperator: 'In' }, '0.0.0.0/0'), null, 'a shorter prefix is not inside');
  assert.is(v({ cidr: '10.0.0.0/8', matchOperator: 'In' }, '11.0.0.0/24'), null);
  assert.is(v({ cidr: '10.0.0.0/8', matchOperator: 'NotIn' }, '11.0.0.0/24'), 'reject');
  assert.is(v({ cidr: '10.0.0.0/8', matchOperator: 'NotIn' }, '10.0.0.0/24'), null);
  // host bits in the CIDR are cleared, as Go's ParseCIDR network
  assert.is(v({ cidr: '10.1.2.3/8', matchOperator: 'Equal' }, '10.0.0.0/8'), 'reject');
  const ranged = { cidr: '10.0.0.0/8', matchOperator: 'In', prefixLength: { min: 16, max: 24 } };
  assert.is(v(ranged, '10.1.0.0/16'), 'reject');
  assert.is(v(ranged, '10.1.2.0/24'), 'reject');
  assert.is(v(ranged, '10.1.2.0/25'), null);
  assert.is(v(ranged, '10.0.0.0/8'), null);
  assert.is(v({ ...ranged, matchOperator: 'NotIn' }, '10.0.0.0/8'), 'reject');
  // min below the CIDR's own length: the CIDR's length; max unset: 32
  assert.is(v({ cidr: '10.0.0.0/8', matchOperator: 'In', prefixLength: { min: 4 } }, '10.9.9.9/32'), 'reject');
  assert.is(v({ cidr: '10.0.0.0/8', matchOperator: 'In', prefixLength: { max: 30 } }, '10.9.9.9/32'), null);
  // Equal against a prefix set: BIRD's runtime error, the route rejected whatever the action
  assert.is(filterVerdict([filter({ importV4: [{ ...ranged, matchOperator: 'Equal', action: 'Accept' }] })], 'import', route('10.1.0.0/16')), 'error');
});

test('rules in order, first match wins; the filters of a peer in order; no match: null (the default)', () => {
  const a = filter({ exportV4: [{ cidr: '10.244.1.0/26', matchOperator: 'Equal', action: 'Accept' }, { cidr: '10.244.0.0/16', matchOperator: 'In', action: 'Reject' }] }, 'a');
  const b = filter({ exportV4: [{ action: 'Accept' }] }, 'b');
  assert.is(filterVerdict([a], 'export', route('10.244.1.0/26')), 'accept');
  assert.is(filterVerdict([a], 'export', route('10.244.2.0/26')), 'reject');
  assert.is(filterVerdict([a], 'export', route('10.99.0.0/24')), null);
  assert.is(filterVerdict([a, b], 'export', route('10.99.0.0/24')), 'accept', 'the next filter decides');
  assert.is(filterVerdict([b, a], 'export', route('10.244.2.0/26')), 'accept', 'the first filter decides');
  assert.is(filterVerdict([a], 'import', route('10.244.2.0/26')), null, 'export rules do not import');
  assert.is(filterVerdict([a], 'export', route('fd00::/64')), null, 'IPv4 rules do not judge IPv6 routes');
  const six = filter({ importV6: [{ cidr: 'fd00::/8', matchOperator: 'In', prefixLength: { max: 64 }, action: 'Reject' }] });
  assert.is(filterVerdict([six], 'import', route('fd00:1::/64')), 'reject');
  assert.is(filterVerdict([six], 'import', route('fd00:1::/80')), null);
});

test('source RemotePeers, interface (BIRD patterns), peerType, asPathPrefix, communities; priority never matches', () => {
  const one = (rule: Record<string, unknown>, r: FilterRoute) => filterVerdict([filter({ exportV4: [{ ...rule, action: 'Reject' }] })], 'export', r);
  assert.is(one({ source: 'RemotePeers' }, route('10.0.0.0/24')), 'reject');
  assert.is(one({ source: 'RemotePeers' }, route('10.0.0.0/24', { fromBgp: false })), null, 'our own block is not RTS_BGP');
  assert.is(one({ interface: 'eth*' }, route('10.0.0.0/24', { iface: () => 'eth0' })), 'reject');
  assert.is(one({ interface: 'eth?' }, route('10.0.0.0/24', { iface: () => 'eth10' })), null);
  assert.is(one({ interface: 'eth*' }, route('10.0.0.0/24', { iface: () => undefined })), null, 'no interface: no match');
  assert.ok(patternMatches('*', 'lo') && patternMatches('e*h*0', 'eth0') && !patternMatches('eth', 'eth0') && patternMatches('*0', 'eth0'));
  assert.is(one({ peerType: 'iBGP' }, route('10.0.0.0/24', { ebgp: true })), null);
  assert.is(one({ peerType: 'eBGP' }, route('10.0.0.0/24', { ebgp: true })), 'reject');
  assert.is(one({ asPathPrefix: [65000, 65001] }, route('10.0.0.0/24', { asPath: [65000, 65001, 7] })), 'reject');
  assert.is(one({ asPathPrefix: [65000, 65001] }, route('10.0.0.0/24', { asPath: [65001, 65000] })), null);
  assert.is(one({ communities: { values: ['65000:100'] } }, route('10.0.0.0/24', { communities: [65000 * 65536 + 100] })), 'reject');
  assert.is(one({ communities: { values: ['65000:100'] } }, route('10.0.0.0/24', { communities: [] })), null);
  assert.is(one({ communities: { values: ['65000:100:7'] } }, route('10.0.0.0/24')), null, 'a large community: not evaluated');
  assert.is(one({ priority: 512 }, route('10.0.0.0/24')), null, 'priority: not evaluated');
  // all conditions AND-ed
  assert.is(one({ cidr: '10.0.0.0/8', matchOperator: 'In', source: 'RemotePeers', interface: 'lo' }, route('10.0.0.0/24', { iface: () => 'lo' })), 'reject');
  assert.is(one({ cidr: '10.0.0.0/8', matchOperator: 'In', source: 'RemotePeers', interface: 'lo' }, route('10.0.0.0/24', { iface: () => 'eth0' })), null);
});

test('the BGPFilter resource: loaded into the snapshot; bad rules refused naming the field', () => {
  const snap = snapshotOf({ apiVersion: API, kind: 'BGPFilter', metadata: { name: 'f' }, spec: { exportV4: [{ cidr: '10.0.0.0/8', matchOperator: 'In', prefixLength: { min: 16 }, action: 'Reject' }], importV6: [{ interface: 'eth*', action: 'Accept' }] } });
  assert.equal(snap.bgpFilters?.map((f) => f.metadata.name), ['f']);
  const doc = (rule: string, dir = 'exportV4') => `apiVersion: ${API}\nkind: BGPFilter\nmetadata: {name: f}\nspec: {${dir}: [${rule}]}\n`;
  assert.match(errorOf(doc('{cidr: 10.0.0.0/8, action: Reject}')), /spec\.exportV4\[0\]\.matchOperator: required with cidr/);
  assert.match(errorOf(doc('{matchOperator: In, action: Reject}')), /spec\.exportV4\[0\]\.cidr: required with matchOperator/);
  assert.match(errorOf(doc('{cidr: "fd00::/8", matchOperator: In, action: Reject}')), /spec\.exportV4\[0\]\.cidr: expected an IPv4 CIDR/);
  assert.match(errorOf(doc('{cidr: 10.0.0.0/8, matchOperator: In, action: Reject}', 'importV6')), /spec\.importV6\[0\]\.cidr: expected an IPv6 CIDR/);
  assert.match(errorOf(doc('{cidr: 10.0.0.0/8, matchOperator: Within, action: Reject}')), /spec\.exportV4\[0\]\.matchOperator/);
  assert.match(errorOf(doc('{cidr: 10.0.0.0/8, matchOperator: In}')), /spec\.exportV4\[0\]\.action: expected one of Accept\|Reject, got nothing/);
  assert.match(errorOf(doc('{prefixLength: {min: 8}, action: Reject}')), /spec\.exportV4\[0\]\.prefixLength: cidr is required when prefixLength is set/);
  assert.match(errorOf(doc('{cidr: 10.0.0.0/8, matchOperator: In, prefixLength: {max: 33}, action: Reject}')), /spec\.exportV4\[0\]\.prefixLength\.max/);
  // an empty prefix set (min above max, or max below the cidr's own length): named, not a rule that never matches
  assert.match(errorOf(doc('{cidr: 10.0.0.0/8, matchOperator: In, prefixLength: {min: 30, max: 24}, action: Reject}')), /spec\.exportV4\[0\]\.prefixLength: an empty range: min 30 is above max 24/);
  assert.match(errorOf(doc('{cidr: 10.0.0.0/16, matchOperator: NotIn, prefixLength: {max: 8}, action: Reject}')), /spec\.exportV4\[0\]\.prefixLength: an empty range: min 16 is above max 8 \(min is at least the cidr's own length 16/);
  assert.match(errorOf(doc('{interface: "eth 0", action: Reject}')), /spec\.exportV4\[0\]\.interface: expected an interface name or pattern/);
  assert.match(errorOf(doc('{source: Local, action: Reject}')), /spec\.exportV4\[0\]\.source/);
  assert.match(errorOf(doc('{action: Reject, operations: [{setPriority: {value: 1}}]}')), /spec\.exportV4\[0\]\.operations: operations may only be used with action Accept/);
  assert.match(errorOf(doc('{cidr: 10.0.0.0/8, matchOperatr: In, action: Reject}')), /spec\.exportV4\[0\]\.matchOperatr: unknown field \(did you mean matchOperator\?\)/);
});

test.run();
