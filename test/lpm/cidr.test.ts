// Parsing/formatting helpers and the errors raised for invalid input.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { covers6, formatCidr4, formatCidr6, formatIp6, networkOf6, parseCidr4, parseCidr6, parseIp4, parseIp6 } from '../../src/lpm/cidr';
import { Rib4 } from '../../src/lpm/rib4';
import { Rib6 } from '../../src/lpm/rib6';

test('parseCidr4 / formatCidr4 round trip', () => {
  assert.equal(parseCidr4('10.0.0.0/26'), { addr: 0x0a000000, len: 26 });
  assert.equal(parseCidr4('0.0.0.0/0'), { addr: 0, len: 0 });
  assert.equal(parseCidr4('255.255.255.255/32'), { addr: 0xffffffff, len: 32 });
  assert.is(formatCidr4(0xc0a80100, 24), '192.168.1.0/24');
  assert.is(parseIp4('1.2.3.4'), 0x01020304);
});

test('parseCidr6 accepts full and :: forms; formatCidr6 compresses', () => {
  assert.equal(parseCidr6('2001:0:0:0:0:0:0:0/32').w, [0x20010000, 0, 0, 0]);
  assert.equal(parseCidr6('2001:db8::/32').w, [0x20010db8, 0, 0, 0]);
  assert.equal(parseCidr6('::/0'), { w: [0, 0, 0, 0], len: 0 });
  assert.equal(parseCidr6('::1/128').w, [0, 0, 0, 1]);
  assert.equal(parseIp6('::ffff:10.0.0.1'), [0, 0, 0xffff, 0x0a000001]);
  assert.equal(parseIp6('fe80::1:2'), [0xfe800000, 0, 0, 0x00010002]);
  assert.is(formatCidr6([0x20010db8, 0, 0, 0], 32), '2001:db8::/32');
  assert.is(formatIp6(0, 0, 0, 1), '::1');
  assert.is(formatIp6(0x20010db8, 0x00010000, 0, 1), '2001:db8:1::1');
  assert.is(formatIp6(0x00010002, 0x00030004, 0x00050006, 0x00070008), '1:2:3:4:5:6:7:8');
});

function throwsWith(fn: () => unknown, ...parts: string[]): void {
  try {
    fn();
  } catch (e) {
    const msg = (e as Error).message;
    for (const p of parts) assert.ok(msg.includes(p), `message "${msg}" should mention "${p}"`);
    return;
  }
  assert.unreachable(`expected an error mentioning ${parts.join(', ')}`);
}

test('networkOf6: an address with its subnet as the network (host bits cleared), null for anything else; covers6', () => {
  const n = networkOf6('fd99::1:2/64')!;
  assert.equal([formatCidr6(n.w, n.len)], ['fd99::/64']);
  for (const t of ['fd99::1', 'fd99::/129', '10.0.0.0/8', 'fd99::g/64', '', null, undefined]) assert.is(networkOf6(t), null, String(t));
  assert.ok(covers6(n, parseIp6('fd99::ffff:1')));
  assert.not.ok(covers6(n, parseIp6('fd98::1')));
  assert.ok(covers6(n, parseIp6('fd99:0:0:0:8000::'), 65));
  assert.not.ok(covers6(n, parseIp6('fd99::'), 48), 'a shorter prefix is not inside');
  // host bits in a caller's outer prefix (a route destination as ip monitor prints it) are not compared
  assert.ok(covers6({ w: parseIp6('fd99::5'), len: 64 }, parseIp6('fd99::7')));
});

test('invalid IPv4 input is a clear error naming the input', () => {
  throwsWith(() => parseCidr4('10.0.0.1/24'), '10.0.0.1/24', 'host bits');
  throwsWith(() => parseCidr4('10.0.0.0/33'), '10.0.0.0/33', 'out of range');
  throwsWith(() => parseCidr4('10.0.0.0'), '10.0.0.0', 'missing');
  throwsWith(() => parseCidr4('10.0.0/8'), '10.0.0/8', 'four');
  throwsWith(() => parseCidr4('10.0.0.256/32'), '10.0.0.256', '256');
  throwsWith(() => parseCidr4('10.0.0.0/x'), '10.0.0.0/x', 'not a number');
  throwsWith(() => new Rib4().insert(0x0a000001, 8, 1), '10.0.0.1/8', 'host bits');
  throwsWith(() => new Rib4().insert(0, 40, 1), '40', 'out of range');
  throwsWith(() => new Rib4().insert(0, 0, 70000), '70000', 'next hop');
  throwsWith(() => new Rib4().insert(-1, 0, 1), '-1', 'unsigned');
});

test('invalid IPv6 input is a clear error naming the input', () => {
  throwsWith(() => parseCidr6('2001:db8::1/64'), '2001:db8::1/64', 'host bits');
  throwsWith(() => parseCidr6('2001:db8::/129'), '2001:db8::/129', 'out of range');
  throwsWith(() => parseCidr6('2001::db8::/32'), '2001::db8::', 'more than once');
  throwsWith(() => parseCidr6('2001:db8:0:0:0:0:0/32'), '2001:db8:0:0:0:0:0', '8 groups');
  throwsWith(() => parseCidr6('2001:xyz::/32'), 'xyz', 'hex');
  throwsWith(() => new Rib6().insert([0, 0, 0, 1], 64, 1), 'host bits');
  // Words must be integers 0..2^32-1, the length an integer 0..128 (checked without parsing).
  for (const bad of [[-1, 0, 0, 0], [2 ** 32, 0, 0, 0], [0.5, 0, 0, 0], [0, NaN, 0, 0], [0, 0, 0], [0, 0, 0, '1']]) {
    throwsWith(() => new Rib6().insert(bad as number[], 0, 1), 'unsigned 32-bit words');
  }
  for (const len of [-1, 129, 64.5, NaN]) throwsWith(() => new Rib6().insert([0, 0, 0, 0], len, 1), 'out of range');
  throwsWith(() => new Rib6().insert([0x20010db8, 0, 0, 0], 28, 1), '2001:db8::/28', 'host bits');
  throwsWith(() => new Rib6().insert([0, 0, 0, 1], 127, 1), 'host bits');
  const rib = new Rib6();
  rib.insert([0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff], 128, 1);
  rib.insert([0x20010db8, 0x80000000, 0, 0], 33, 2);
  assert.is(rib.size, 2);
});

test.run();
