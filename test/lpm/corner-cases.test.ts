// Corner cases: empty table, /0 default, host routes, overlaps, deleting a covering prefix,
// duplicate inserts, and the RIB's exact get / iterate.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { parseIp4, parseIp6 } from '../../src/lpm/cidr';
import { NO_ROUTE } from '../../src/lpm/constants';
import { RouteTable4, change4 } from '../../src/lpm/route-table4';
import { RouteTable6, change6 } from '../../src/lpm/route-table6';
import { lookupText6 } from './helpers';

const ip = parseIp4;
const l6 = lookupText6;

test('empty tables return NO_ROUTE everywhere', () => {
  const t4 = new RouteTable4();
  for (const a of [0, 1, 0x7fffffff, 0x80000000, 0xffffffff]) assert.is(t4.lookup(a), NO_ROUTE);
  const t6 = new RouteTable6();
  assert.is(l6(t6, '::'), NO_ROUTE);
  assert.is(l6(t6, 'ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff'), NO_ROUTE);
  assert.is(t4.rib.size, 0);
});

test('IPv4: default, hosts, overlaps, covering delete, duplicates', () => {
  const t = new RouteTable4();
  t.applyBatch([change4('0.0.0.0/0', 1), change4('10.0.0.0/8', 2), change4('10.1.0.0/16', 3), change4('10.1.2.0/24', 4),
    change4('10.1.2.3/32', 5), change4('255.255.255.255/32', 6), change4('0.0.0.0/32', 7), change4('10.1.2.128/25', 8)]);
  assert.is(t.lookup(ip('9.9.9.9')), 1);
  assert.is(t.lookup(ip('10.200.0.1')), 2);
  assert.is(t.lookup(ip('10.1.200.1')), 3);
  assert.is(t.lookup(ip('10.1.2.4')), 4);
  assert.is(t.lookup(ip('10.1.2.3')), 5);
  assert.is(t.lookup(ip('10.1.2.200')), 8);
  assert.is(t.lookup(ip('255.255.255.255')), 6);
  assert.is(t.lookup(ip('255.255.255.254')), 1);
  assert.is(t.lookup(ip('0.0.0.0')), 7);
  assert.is(t.lookup(ip('0.0.0.1')), 1);
  // Deleting covering prefixes: the more specific ones stay, the hole falls back to the next cover.
  t.applyBatch([change4('10.1.0.0/16'), change4('0.0.0.0/0')]);
  assert.is(t.lookup(ip('10.1.200.1')), 2);
  assert.is(t.lookup(ip('10.1.2.3')), 5);
  assert.is(t.lookup(ip('9.9.9.9')), NO_ROUTE);
  t.applyBatch([change4('10.0.0.0/8')]);
  assert.is(t.lookup(ip('10.1.200.1')), NO_ROUTE);
  assert.is(t.lookup(ip('10.1.2.9')), 4);
  // Duplicate insert replaces the value and does not grow the RIB.
  const size = t.rib.size;
  assert.is(t.rib.insertCidr('10.1.2.0/24', 9), 4);
  t.rebuild(); // after editing the RIB directly; the same change as a batch is then a no-op
  t.applyBatch([change4('10.1.2.0/24', 9)]);
  assert.is(t.rib.size, size);
  assert.is(t.lookup(ip('10.1.2.9')), 9);
  // Deleting something absent is a no-op.
  t.applyBatch([change4('192.168.0.0/16')]);
  assert.is(t.rib.size, size);
  assert.is(t.rib.get(ip('10.1.2.0'), 24), 9);
  assert.is(t.rib.get(ip('10.1.2.0'), 23), undefined);
  const listed = [...t.rib.entries()].map((r) => `${r.addr}/${r.len}=${r.nh}`).sort();
  assert.equal(listed, [`${ip('0.0.0.0')}/32=7`, `${ip('10.1.2.0')}/24=9`, `${ip('10.1.2.128')}/25=8`, `${ip('10.1.2.3')}/32=5`, `${ip('255.255.255.255')}/32=6`].sort());
});

test('IPv4: a change on a short prefix updates every chunk it spans', () => {
  const t = new RouteTable4([{ addr: ip('10.0.0.0'), len: 24, nh: 1 }, { addr: ip('10.255.255.255'), len: 32, nh: 2 }]);
  t.applyBatch([change4('10.0.0.0/8', 3)]);
  assert.is(t.lookup(ip('10.128.0.0')), 3);
  assert.is(t.lookup(ip('10.255.255.254')), 3);
  assert.is(t.lookup(ip('10.255.255.255')), 2);
  assert.is(t.lookup(ip('10.0.0.5')), 1);
  t.applyBatch([change4('0.0.0.0/1', 4)]);
  assert.is(t.lookup(ip('11.0.0.0')), 4);
  assert.is(t.lookup(ip('10.128.0.0')), 3);
  assert.is(t.lookup(ip('128.0.0.0')), NO_ROUTE);
});

test('IPv6: default, /128 hosts, overlaps, covering delete, duplicates', () => {
  const t = new RouteTable6();
  t.applyBatch([change6('::/0', 1), change6('2001:db8::/32', 2), change6('2001:db8:1::/48', 3), change6('2001:db8:1::1/128', 4),
    change6('ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff/128', 5), change6('::/128', 6), change6('2001:db8:1:0:8000::/65', 7)]);
  assert.is(l6(t, '3000::1'), 1);
  assert.is(l6(t, '2001:db8:2::1'), 2);
  assert.is(l6(t, '2001:db8:1::2'), 3);
  assert.is(l6(t, '2001:db8:1::1'), 4);
  assert.is(l6(t, '2001:db8:1:0:8000::1'), 7);
  assert.is(l6(t, 'ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff'), 5);
  assert.is(l6(t, 'ffff:ffff:ffff:ffff:ffff:ffff:ffff:fffe'), 1);
  assert.is(l6(t, '::'), 6);
  assert.is(l6(t, '::1'), 1);
  t.applyBatch([change6('2001:db8::/32'), change6('::/0')]);
  assert.is(l6(t, '2001:db8:2::1'), NO_ROUTE);
  assert.is(l6(t, '2001:db8:1::1'), 4);
  assert.is(l6(t, '2001:db8:1::2'), 3);
  const size = t.rib.size;
  t.applyBatch([change6('2001:db8:1::/48', 8), change6('2001:db8:1::/48', 9)]);
  assert.is(t.rib.size, size);
  assert.is(l6(t, '2001:db8:1::2'), 9);
  assert.is(t.rib.get(parseIp6('2001:db8:1::'), 48), 9);
  assert.is([...t.rib.entries()].length, size);
});

test('no-op changes (same next hop again, delete of an absent route) change nothing; order within a batch holds', () => {
  const t4 = new RouteTable4([{ addr: parseIp4('10.0.0.0'), len: 8, nh: 1 }, { addr: parseIp4('10.1.2.0'), len: 24, nh: 2 }]);
  const l4 = (a: string) => t4.lookup(parseIp4(a));
  t4.applyBatch([change4('10.1.2.0/24', 2), change4('10.9.0.0/16'), change4('10.1.2.128/25')]);
  assert.is(l4('10.1.2.200'), 2);
  assert.is(l4('10.9.0.1'), 1);
  // Set, same set again, delete, set again: the last one wins.
  t4.applyBatch([change4('10.7.7.0/24', 5), change4('10.7.7.0/24', 5), change4('10.7.7.0/24'), change4('10.7.7.0/24', 6)]);
  assert.is(l4('10.7.7.7'), 6);
  t4.applyBatch([change4('10.7.7.0/24', 6), change4('10.7.7.0/24')]);
  assert.is(l4('10.7.7.7'), 1);
  const t6 = new RouteTable6([{ w: parseIp6('2001:db8::'), len: 32, nh: 1 }, { w: parseIp6('2001:db8:1::'), len: 48, nh: 2 }]);
  t6.applyBatch([change6('2001:db8:1::/48', 2), change6('2001:db8:2::/48'), change6('2001:db8:1:8000::/49')]);
  assert.is(l6(t6, '2001:db8:1:8000::1'), 2);
  assert.is(l6(t6, '2001:db8:2::1'), 1);
  t6.applyBatch([change6('2001:db8:7::/48', 5), change6('2001:db8:7::/48', 5), change6('2001:db8:7::/48'), change6('2001:db8:7::/48', 6)]);
  assert.is(l6(t6, '2001:db8:7::7'), 6);
  t6.applyBatch([change6('2001:db8:7::/48', 6), change6('2001:db8:7::/48')]);
  assert.is(l6(t6, '2001:db8:7::7'), 1);
  // Changes of several chunks interleaved with a short prefix (the table applies short prefixes
  // first and the rest chunk by chunk): the batch order still holds per prefix.
  t6.applyBatch([change6('2001:db9:5::/48', 3), change6('2001:db8:7::/48', 8), change6('2000::/8', 4),
    change6('2001:db9:5::/48', 9), change6('2001:db8:7::/48'), change6('2000::/8', 5)]);
  assert.is(l6(t6, '2001:db9:5::1'), 9);
  assert.is(l6(t6, '2001:db8:7::7'), 1);
  assert.is(l6(t6, '2001:dba::1'), 5);
  t6.applyBatch([change6('2000::/8'), change6('2001:db9:5::/48')]);
  assert.is(l6(t6, '2001:dba::1'), NO_ROUTE);
  assert.is(l6(t6, '2001:db9:5::1'), NO_ROUTE);
  assert.is(l6(t6, '2001:db8:7::7'), 1);
});

test('an invalid change rejects the whole batch', () => {
  const t = new RouteTable4([{ addr: ip('10.0.0.0'), len: 24, nh: 1 }]);
  const before = t.fib;
  assert.throws(() => t.applyBatch([change4('10.0.1.0/24', 2), { op: 'set', addr: ip('10.0.2.1'), len: 24, nh: 3 }]), /10\.0\.2\.1\/24.*host bits/);
  assert.throws(() => t.applyBatch([{ op: 'set', addr: ip('10.0.2.0'), len: 24, nh: -1 }]), /next hop -1/);
  assert.is(t.rib.get(ip('10.0.1.0'), 24), undefined);
  assert.is(t.fib, before);
  t.applyBatch([change4('10.0.1.0/24', 2)]);
  assert.is(t.lookup(ip('10.0.1.1')), 2);
  assert.is(t.lookup(ip('10.0.0.1')), 1);
  const t6 = new RouteTable6();
  assert.throws(() => t6.applyBatch([change6('2001:db8::/32', 1), { op: 'delete', w: [1, 0, 0, 0], len: 8 }]), /host bits/);
  assert.is(t6.rib.size, 0);
});

test.run();
