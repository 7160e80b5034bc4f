/**
 * nat.ts HostPortSources, the pipelines' typed table of the host ports' pod ends: an address's
 * (protocol, port) pairs found, others not; any-host-port by address (fragments); IPv6 addresses
 * whose words fold alike told apart; many addresses (probing); set again replaces.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { HostPortSources } from '../../src/dataplane/nat';

const v4 = (a: number, b: number, c: number, d: number) => Uint8Array.of(a, b, c, d);

test('IPv4: pairs of an address, other pairs and addresses not; hasAddr', () => {
  const t = new HostPortSources(4);
  assert.is(t.size, 0);
  assert.is(t.has(v4(10, 0, 0, 1), 0, 6, 80), false);
  t.set([{ ip: v4(10, 248, 0, 5), proto: 6, port: 8080 }, { ip: v4(10, 248, 0, 5), proto: 17, port: 8081 }, { ip: v4(192, 168, 1, 2), proto: 6, port: 443 }]);
  assert.is(t.size, 3);
  const pkt = new Uint8Array(20);
  pkt.set([10, 248, 0, 5], 12);
  assert.is(t.has(pkt, 12, 6, 8080), true);
  assert.is(t.has(pkt, 12, 17, 8081), true);
  assert.is(t.has(pkt, 12, 17, 8080), false, 'protocol counts');
  assert.is(t.has(pkt, 12, 6, 443), false, 'another address\'s port');
  assert.is(t.hasAddr(pkt, 12), true);
  pkt.set([192, 168, 1, 2], 12);
  assert.is(t.has(pkt, 12, 6, 443), true, 'an address above 2^31');
  pkt.set([10, 248, 0, 6], 12);
  assert.is(t.hasAddr(pkt, 12), false);
  assert.is(t.has(pkt, 12, 6, 8080), false);
  t.set([]);
  assert.is(t.size, 0);
  assert.is(t.has(v4(10, 248, 0, 5), 0, 6, 8080), false, 'set again replaces');
});

test('set again with the same host ports (every model apply): nothing rebuilt, in any order; a change rebuilds', () => {
  const t = new HostPortSources(4);
  const a = { ip: v4(10, 248, 0, 5), proto: 6, port: 8080 };
  const b = { ip: v4(10, 248, 0, 5), proto: 17, port: 8081 };
  const c = { ip: v4(10, 248, 0, 6), proto: 6, port: 80 };
  assert.is(t.set([a, b, c]), true);
  const pairs = (t as unknown as { pairs: Int32Array }).pairs;
  assert.is(t.set([c, b, a]), false, 'the same, another order');
  assert.is(t.set([c, b, a, b]), false, 'a repeated entry is the same');
  assert.ok((t as unknown as { pairs: Int32Array }).pairs === pairs, 'the arrays kept');
  assert.is(t.has(v4(10, 248, 0, 6), 0, 6, 80), true);
  assert.is(t.set([a, b]), true, 'one gone');
  assert.is(t.has(v4(10, 248, 0, 6), 0, 6, 80), false);
  assert.is(t.set([]), true);
  assert.is(t.set([]), false);
  assert.is(t.size, 0);
});

test('IPv4: 300 addresses, each found with its port and not another\'s', () => {
  const t = new HostPortSources(4);
  const list = Array.from({ length: 300 }, (_, k) => ({ ip: v4(10, 1, k >> 8, k & 255), proto: 6, port: 1000 + k }));
  t.set(list);
  for (let k = 0; k < 300; k++) {
    assert.is(t.has(list[k].ip, 0, 6, 1000 + k), true, `address ${k}`);
    assert.is(t.has(list[k].ip, 0, 6, 1001 + k), false, `address ${k}, another port`);
  }
  assert.is(t.hasAddr(v4(10, 1, 2, 0), 0), false);
});

test('IPv6: addresses whose four words XOR alike are told apart', () => {
  const t = new HostPortSources(16);
  const a = new Uint8Array(16); a.set([0xfd, 0, 2, 0x48]); a[15] = 5;
  const b = new Uint8Array(16); b.set([0xfd, 0, 2, 0x48]); b[11] = 5; // same fold, another address
  t.set([{ ip: a, proto: 17, port: 8083 }]);
  const pkt = new Uint8Array(40);
  pkt.set(a, 8);
  assert.is(t.has(pkt, 8, 17, 8083), true);
  assert.is(t.hasAddr(pkt, 8), true);
  pkt.set(b, 8);
  assert.is(t.hasAddr(pkt, 8), false, 'same fold, another address');
  assert.is(t.has(pkt, 8, 17, 8083), false);
  t.set([{ ip: a, proto: 17, port: 8083 }, { ip: b, proto: 6, port: 80 }]);
  assert.is(t.has(pkt, 8, 6, 80), true);
  assert.is(t.has(pkt, 8, 17, 8083), false);
});

test.run();
