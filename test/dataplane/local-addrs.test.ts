// The node's own addresses as the kernel's local table lists them (src/dataplane/local-addrs.ts):
// what `ip -j route show table local` prints is read, the sets answer for host addresses and
// shorter prefixes, and martian destinations are left out.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { keptLocalAddresses, LocalSet4, LocalSet6, parseLocalTable, sameLocalAddresses } from '../../src/dataplane/local-addrs';
import { parseIpv4, parseIpv6Bytes } from '../../src/packet';

test('parseLocalTable: the local entries of ip -j route show table local (broadcast, multicast and anycast left out), each once, sorted', () => {
  const v4 = '[{"type":"local","dst":"127.0.0.0/8","dev":"lo","protocol":"kernel","scope":"host","prefsrc":"127.0.0.1","flags":[]},{"type":"local","dst":"127.0.0.1","dev":"lo","protocol":"kernel","scope":"host","prefsrc":"127.0.0.1","flags":[]},{"type":"broadcast","dst":"127.255.255.255","dev":"lo","protocol":"kernel","scope":"link","prefsrc":"127.0.0.1","flags":[]},{"type":"local","dst":"192.0.2.2","dev":"eth0","protocol":"kernel","scope":"host","prefsrc":"192.0.2.2","flags":[]},{"type":"local","dst":"192.0.2.2","dev":"eth1","flags":[]}]';
  assert.equal(parseLocalTable(v4), ['127.0.0.0/8', '127.0.0.1', '192.0.2.2']);
  const v6 = '[{"type":"local","dst":"::1","dev":"lo","protocol":"kernel","metric":0,"flags":[],"pref":"medium"},{"type":"anycast","dst":"fd00::","dev":"eth0","flags":[]},{"type":"local","dst":"fd00::2","dev":"eth0","protocol":"kernel","metric":0,"flags":[],"pref":"medium"},{"type":"multicast","dst":"ff00::/8","dev":"eth0","protocol":"kernel","metric":256,"flags":[],"pref":"medium"}]';
  assert.equal(parseLocalTable(v6), ['::1', 'fd00::2']);
  assert.equal(parseLocalTable('[]'), []);
  assert.throws(() => parseLocalTable('{"not":"a list"}'), /not a list/);
  assert.throws(() => parseLocalTable('Error: ...'));
});

test('keptLocalAddresses: what status lists as the node\'s own addresses is what the sets hold: no loopback, link-local or multicast entry (status said "loopback and link-local left out" and listed 127.0.0.1, ::1, fe80::...)', () => {
  const kept = keptLocalAddresses({
    v4: ['10.0.0.1', '127.0.0.0/8', '127.0.0.1', '169.254.20.10', '192.0.2.0/24'],
    v6: ['::1', 'fd00:99::1', 'fe80::1c2b:3ff:fe4d:5e6f', 'fe80::/64', 'ff02::1'],
  });
  assert.equal(kept, { v4: ['10.0.0.1', '169.254.20.10', '192.0.2.0/24'], v6: ['fd00:99::1'] });
});

test('LocalSet4: host addresses and prefixes (lo given a /24, AnyIP) match; martian ones (127/8, 0/8, multicast) and unreadable ones are left out', () => {
  const s = new LocalSet4();
  const kept = s.set(['127.0.0.0/8', '127.0.0.1', '0.0.0.0/8', '224.0.0.0/4', '192.0.2.2', '169.254.20.10', '10.9.0.0/24', '10.8.0.7/32', 'bogus', '10.1.1.1/40', '192.0.2.2']);
  assert.is(kept, 4);
  assert.is(s.size, 4);
  for (const a of ['192.0.2.2', '169.254.20.10', '10.9.0.0', '10.9.0.255', '10.8.0.7']) assert.ok(s.has(parseIpv4(a)), a);
  for (const a of ['127.0.0.1', '192.0.2.3', '10.9.1.0', '10.8.0.6', '0.0.0.0', '255.255.255.255']) assert.not.ok(s.has(parseIpv4(a)), a);
  // many host addresses (kube-proxy's IPVS puts every Service address on kube-ipvs0): binary search
  const many = Array.from({ length: 5000 }, (_, k) => `10.96.${k >> 8}.${k & 255}`);
  s.set(many.reverse());
  assert.is(s.size, 5000);
  for (const k of [0, 1, 255, 256, 2500, 4999]) assert.ok(s.has(parseIpv4(`10.96.${k >> 8}.${k & 255}`)), String(k));
  assert.not.ok(s.has(parseIpv4('10.96.19.136')));
  assert.not.ok(s.has(parseIpv4('192.0.2.2')), 'the set is replaced, not added to');
  s.set([]);
  assert.not.ok(s.has(parseIpv4('10.96.0.0')));
});

test('LocalSet6: host addresses and prefixes match; ::1, link-local, IPv4-mapped and multicast are left out', () => {
  const s = new LocalSet6();
  const has = (a: string) => s.has(parseIpv6Bytes(a), 0);
  assert.is(s.set(['::1', 'fe80::fc:ff:fe00:1', 'ff00::/8', '::ffff:10.0.0.1', 'fd00::2', 'fd00:20::10', 'FD00:20::10', 'fd00:30::/64', 'zz::1']), 3);
  for (const a of ['fd00::2', 'fd00:20::10', 'fd00:30::1', 'fd00:30::ffff:1']) assert.ok(has(a), a);
  for (const a of ['::1', 'fe80::fc:ff:fe00:1', 'fd00::3', 'fd00:31::1', 'fd00:20::11']) assert.not.ok(has(a), a);
  const many = Array.from({ length: 3000 }, (_, k) => `fd00:96::${k.toString(16)}`);
  s.set(many);
  for (const k of [0, 1, 1500, 2999]) assert.ok(has(`fd00:96::${k.toString(16)}`), String(k));
  assert.not.ok(has('fd00:96::bb8'));
  // at an offset inside a frame
  const b = new Uint8Array(64);
  b.set(parseIpv6Bytes('fd00:96::7'), 24);
  assert.ok(s.has(b, 24));
});

test('sameLocalAddresses: a change in either family is a change', () => {
  assert.ok(sameLocalAddresses({ v4: ['10.0.0.1'], v6: [] }, { v4: ['10.0.0.1'], v6: [] }));
  assert.not.ok(sameLocalAddresses({ v4: ['10.0.0.1'], v6: [] }, { v4: ['10.0.0.1'], v6: ['fd00::1'] }));
  assert.not.ok(sameLocalAddresses({ v4: ['10.0.0.1'], v6: [] }, { v4: ['10.0.0.2'], v6: [] }));
  assert.not.ok(sameLocalAddresses(null, { v4: [], v6: [] }));
});

test.run();
