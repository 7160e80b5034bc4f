// The CLI's plain-text tables (podway counters, routes, ...): a column only some rows have (a pod
// port's txRejected or txBacklog, which the engine adds only when non-zero) still shows.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { table, listSummary, summarizeHostChanges, guardSummary, natExclusionsText, ageText, cachedNodeText, rpFilterText } from '../../src/cli/format';

test('columns are every row\'s keys in first-seen order, not only the first row\'s', () => {
  const out = table([
    { port: 'underlay(eth0)', rx: 10, tx: 9 },
    { port: 'cali1', rx: 3, tx: 2, txRejected: 1 },
  ]);
  const [head, first, second] = out.trimEnd().split('\n');
  assert.equal(head.split(/\s+/), ['PORT', 'RX', 'TX', 'TXREJECTED']);
  assert.equal(first.split(/\s+/), ['underlay(eth0)', '10', '9']);
  assert.equal(second.split(/\s+/), ['cali1', '3', '2', '1']);
});

test('explicit columns are kept as given; no rows is (none)', () => {
  assert.is(table([{ a: 1, b: 2 }], ['b']), 'B\n2\n');
  assert.is(table([]), '(none)\n');
});

test('status at scale: a sysctl set on every pod veth is one line with the count and examples; known nodes are counted past 8', () => {
  const changes = ['net.ipv4.ip_forward=1 (was 0)', ...Array.from({ length: 300 }, (_, k) => `net.ipv6.conf.cali${k}.accept_ra=0 (was 1)`), 'net.ipv4.conf.all.rp_filter=0 (was 1)', 'net.ipv4.conf.tap1.proxy_arp=1 (was 0)'];
  assert.equal(summarizeHostChanges(changes), [
    'net.ipv4.ip_forward=1 (was 0)',
    'net.ipv6.conf.IF.accept_ra=0 (was 1) on 300 interfaces: cali0, cali1, cali2 and 297 more (-o json lists all)',
    'net.ipv4.conf.all.rp_filter=0 (was 1)',
    'net.ipv4.conf.tap1.proxy_arp=1 (was 0)',
  ]);
  assert.equal(summarizeHostChanges(changes.slice(0, 3)), changes.slice(0, 3), 'a few are listed as they are');
  const ips = Array.from({ length: 20 }, (_, k) => `10.0.0.${k + 1}`);
  assert.is(listSummary(ips.slice(0, 3)), '10.0.0.1, 10.0.0.2, 10.0.0.3');
  assert.is(listSummary(ips), '20: 10.0.0.1, 10.0.0.2, 10.0.0.3, 10.0.0.4, 10.0.0.5, 10.0.0.6, 10.0.0.7, 10.0.0.8 and 12 more (-o json lists all)');
});

test('guardSummary: the veth pods whose sources and tunnels are checked; with endpoint-to-host drop, every local pod\'s addresses (veth, TAP, TUN)', () => {
  assert.is(guardSummary({ pods: 1, podIps4: 3, podIps6: 0, endpointToHost: 'accept' }), '1 veth pod (forged sources and tunnel packets dropped); endpoint-to-host accept');
  assert.is(guardSummary({ pods: 2, podIps4: 4, podIps6: 3, endpointToHost: 'drop' }), '2 veth pods (forged sources and tunnel packets dropped); endpoint-to-host drop: new connections to the node from every local pod, veth, TAP and TUN (4 IPv4 and 3 IPv6 pod addresses)');
});

test('natExclusionsText: the natOutgoingExclusions mode on podway status\'s nat lines, with what it does to a pod\'s traffic to other nodes; nothing from a podway that did not say', () => {
  assert.is(natExclusionsText('IPPoolsOnly'), '; natOutgoingExclusions IPPoolsOnly (to other nodes: the TCP connections and pings a pod opens are masqueraded)');
  assert.is(natExclusionsText('IPPoolsAndHostIPs'), '; natOutgoingExclusions IPPoolsAndHostIPs (to other nodes: the pod\'s address)');
  assert.is(natExclusionsText(undefined), '');
  // no pool has natOutgoing: nothing is masqueraded, so no meaning that says otherwise (review: status contradicted itself)
  assert.is(natExclusionsText('IPPoolsOnly', 0), '; natOutgoingExclusions IPPoolsOnly');
});

test('a cached model\'s age and the word on its Node (podway status)', () => {
  assert.equal([0, 59, 60, 192, 3599, 3600, 7500, 86_399, 86_400, 300_000].map(ageText), ['0 s', '59 s', '1 min 0 s', '3 min 12 s', '59 min 59 s', '1 h 0 min', '2 h 5 min', '23 h 59 min', '1 d 0 h', '3 d 11 h']);
  assert.is(ageText(-3), '0 s', 'a clock moved back: never negative');
  assert.is(cachedNodeText({ nodeCheck: 'not compared yet' }), '; its Node not compared with the datastore\'s yet (no answer)');
  assert.is(cachedNodeText({ nodeCheck: 'same Node' }), '; its Node is the datastore\'s');
  assert.is(cachedNodeText({ nodeCheck: 'withdrawn', notThisNode: 'its Node n1 (uid u, created at revision 4) is not in the datastore any more (deleted)' }), '; not this node\'s state (its Node n1 (uid u, created at revision 4) is not in the datastore any more (deleted)): its endpoints, routes and tunnel addresses withdrawn');
  assert.is(cachedNodeText({}), '', 'an older podway\'s answer says nothing of it');
});

test('rpFilterText: the rp_filter podway applies to decapsulated sources, on status\'s underlay line; nothing from a podway that did not say', () => {
  assert.is(rpFilterText(1), '; rp_filter 1 (strict: a decapsulated source must route back through the tunnel it came in on; martian and own sources dropped at any setting)');
  assert.match(rpFilterText(2), /^; rp_filter 2 \(loose;/);
  assert.match(rpFilterText(0), /^; rp_filter 0 \(off;/);
  assert.is(rpFilterText(undefined), '');
  assert.match(rpFilterText(0, { at: '2026-12-07T00:00:00.000Z', was: 1 }), /^; rp_filter 0 \(off; martian and own sources dropped at any setting; was 1 until 2026-12-07T00:00:00\.000Z\)$/);
});

test.run();
