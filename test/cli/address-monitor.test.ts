// The address monitor of `podway run` (calico-node's monitor-addresses): which re-detected
// address is written to the Node for each way the address was given, the poll interval's syntax,
// one look at a time with a failed write said once, nothing written once stopped, and the Node
// update on a real embedded store (other fields kept, another Node's address refused, a file:
// datastore refused).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { AddressMonitor, addressSource, CONTEST_BACKOFF_LOOKS, CONTEST_OVERWRITES, decideAddressChange, parseDuration, repairStoredAddress, type AddressSource } from '../../src/cli/address-monitor';
import { NodeAddressStore } from '../../src/cli/join';
import type { NodeAddresses } from '../../src/dataplane/host';
import { FileKv } from '../../src/control/kv/file-kv';
import { registerNode, updateNodeSpec } from '../../src/control/node-registration';

const dirs: string[] = [];
process.on('exit', () => { for (const d of dirs) rmSync(d, { recursive: true, force: true }); });
/** The NodeAddressStores a test opened (as run.ts wires one to its monitor), closed in its finally. */
const stores: NodeAddressStore[] = [];
const closeStores = () => Promise.all(stores.splice(0).map((st) => st.close()));

function seen(ipv4: string | undefined, all: string[], ipv6?: string): NodeAddresses {
  return { ipv4, ipv6, all: new Set(all) };
}
const src = (v4: AddressSource, v6: AddressSource = 'default') => ({ v4, v6 });
const REG = { ipv4: '10.0.0.1/24', ipv6: null };

test('addressSource and parseDuration: Calico\'s IP values and Go durations', () => {
  assert.is(addressSource(undefined), 'default');
  assert.is(addressSource('autodetect'), 'autodetect');
  assert.is(addressSource('none'), 'none');
  assert.is(addressSource('10.0.0.1/24'), 'manual');
  assert.is(parseDuration('60s', 'x'), 60_000);
  assert.is(parseDuration('1m30s', 'x'), 90_000);
  assert.is(parseDuration('500ms', 'x'), 500);
  assert.is(parseDuration('1h', 'x'), 3_600_000);
  assert.is(parseDuration('0', 'x'), 0);
  assert.is(parseDuration('2', 'x'), 2000);
  for (const bad of ['', 'fast', '10x', '1m 30s', '-5s', 's']) {
    assert.throws(() => parseDuration(bad, '--autodetect-poll-interval'), (e: Error) => e.message.startsWith(`--autodetect-poll-interval ${JSON.stringify(bad)}: expected a duration like 60s`), bad);
  }
});

test('--ip given: never changed, whatever is found', () => {
  assert.is(decideAddressChange(REG, seen('10.0.0.7/24', ['10.0.0.7']), src('manual')), null);
  assert.is(decideAddressChange(REG, seen(undefined, []), src('manual')), null);
});

test('IP=autodetect: first-found whenever it differs (also while the old address is still held, and a changed prefix)', () => {
  assert.equal(decideAddressChange(REG, seen('10.0.0.7/24', ['10.0.0.7', '10.0.0.1']), src('autodetect')), { ipv4Address: '10.0.0.7/24' });
  assert.equal(decideAddressChange(REG, seen('10.0.0.1/16', ['10.0.0.1']), src('autodetect')), { ipv4Address: '10.0.0.1/16' });
  assert.is(decideAddressChange(REG, seen('10.0.0.1/24', ['10.0.0.1']), src('autodetect')), null, 'unchanged: nothing');
  assert.is(decideAddressChange(REG, seen(undefined, []), src('autodetect')), null, 'none found: the registered one kept');
});

test('unset: the registered address kept while the node holds it; first-found once it left', () => {
  assert.is(decideAddressChange(REG, seen('10.0.0.7/24', ['10.0.0.7', '10.0.0.1']), src('default')), null, 'still held: kept (no flapping)');
  assert.equal(decideAddressChange(REG, seen('10.0.0.7/24', ['10.0.0.7']), src('default')), { ipv4Address: '10.0.0.7/24' });
  assert.is(decideAddressChange(REG, seen(undefined, ['127.0.0.1']), src('default')), null, 'gone, nothing found: kept');
});

test('IPv6: autodetect follows first-found (canonical text compared), unset once the address left or when none is registered, given or none never', () => {
  const reg = { ipv4: '10.0.0.1/24', ipv6: 'fd00:99::1/64' };
  const v4 = ['10.0.0.1'];
  assert.is(decideAddressChange(reg, seen('10.0.0.1/24', [...v4, 'fd00:99::1'], 'fd00:99:0::1/64'), src('default', 'autodetect')), null, 'same address in another spelling');
  assert.equal(decideAddressChange(reg, seen('10.0.0.1/24', [...v4, 'fd00:99::2'], 'fd00:99::2/64'), src('default', 'autodetect')), { ipv6Address: 'fd00:99::2/64' });
  assert.is(decideAddressChange(reg, seen('10.0.0.1/24', [...v4, 'fd00:99::2', 'fd00:99::1'], 'fd00:99::2/64'), src('default', 'default')), null);
  assert.equal(decideAddressChange(reg, seen('10.0.0.1/24', [...v4, 'fd00:99::2'], 'fd00:99::2/64'), src('default', 'default')), { ipv6Address: 'fd00:99::2/64' });
  assert.is(decideAddressChange(reg, seen('10.0.0.1/24', [...v4, 'fd00:99::2'], 'fd00:99::2/64'), src('default', 'manual')), null);
  assert.is(decideAddressChange(REG, seen('10.0.0.1/24', [...v4, 'fd00:99::2'], 'fd00:99::2/64'), src('default', 'none')), null);
  assert.equal(decideAddressChange(REG, seen('10.0.0.1/24', [...v4, 'fd00:99::2'], 'fd00:99::2/64'), src('default', 'autodetect')), { ipv6Address: 'fd00:99::2/64' }, 'autodetect: IPv6 appearing is registered');
  // an IPv6 address added to a running node whose Node has none: registered, as a restart would
  // (it stayed unregistered until a restart, while status said "give the node an IPv6 address")
  assert.equal(decideAddressChange(REG, seen('10.0.0.1/24', [...v4, 'fd00:99::2'], 'fd00:99::2/64'), src('default', 'default')), { ipv6Address: 'fd00:99::2/64' }, 'unset: IPv6 appearing is registered');
  assert.is(decideAddressChange(REG, seen('10.0.0.1/24', v4), src('default', 'default')), null, 'unset, no IPv6 found: none');
  // IPv4 is the start's choice: an IPv6-only node (none registered) is not turned dual-stack
  assert.is(decideAddressChange({ ipv4: null, ipv6: 'fd00:99::1/64' }, seen('10.0.0.1/24', [...v4, 'fd00:99::1'], 'fd00:99::1/64'), src('default', 'default')), null, 'unset IPv4 stays none');
  assert.equal(decideAddressChange(reg, seen('10.0.0.9/24', ['10.0.0.9', 'fd00:99::2'], 'fd00:99::2/64'), src('autodetect', 'autodetect')), { ipv4Address: '10.0.0.9/24', ipv6Address: 'fd00:99::2/64' }, 'both at once');
});

test('AddressMonitor.look: writes a change, says a failing write once, nothing before a model or when the look fails', async () => {
  const infos: string[] = [];
  const warns: string[] = [];
  const writes: unknown[] = [];
  let addrs: NodeAddresses | null = seen('10.0.0.7/24', ['10.0.0.7']);
  let registered: { ipv4: string; ipv6: string | null } | null = null;
  let fail: string | null = 'etcd unreachable';
  const m = new AddressMonitor({
    intervalMs: 1000, source: src('default'),
    read: async () => addrs, registered: () => registered,
    write: async (c) => { if (fail) throw new Error(fail); writes.push(c); },
    info: (s) => infos.push(s), warn: (s) => warns.push(s),
  });
  await m.look();
  assert.is(writes.length + warns.length, 0, 'no model yet: nothing');
  registered = REG;
  await m.look();
  await m.look();
  assert.is(warns.length, 1, `one warning for the same failure: ${warns.join(' | ')}`);
  assert.match(warns[0], '10.0.0.1/24 -> 10.0.0.7/24, but the Node could not be updated: etcd unreachable; tried again in 1 s');
  fail = null;
  await m.look();
  assert.equal(writes, [{ ipv4Address: '10.0.0.7/24' }]);
  assert.match(infos[0], 'node address autodetected again (first-found): 10.0.0.1/24 -> 10.0.0.7/24; Node updated');
  addrs = null;
  await m.look();
  assert.is(writes.length, 1, 'a failed look concludes nothing');
  addrs = seen(undefined, ['127.0.0.1']);
  await m.look();
  assert.match(warns[1], 'no IPv4 address found on the node\'s interfaces: keeping 10.0.0.1/24 in the Node');
  // one look at a time: a second look while the first waits on its write does nothing
  let release: () => void = () => {};
  addrs = seen('10.0.0.8/24', ['10.0.0.8']);
  const slow = new AddressMonitor({
    intervalMs: 1000, source: src('default'), read: async () => addrs, registered: () => REG,
    write: (c) => new Promise<void>((r) => { writes.push(c); release = r; }), info: () => {}, warn: () => {},
  });
  const first = slow.look();
  await new Promise((r) => setImmediate(r));
  await slow.look();
  release();
  await first;
  assert.is(slow.updates, 1);
  assert.equal(writes.slice(1), [{ ipv4Address: '10.0.0.8/24' }]);
});

test('AddressMonitor: the IPv6 address gone with no other found is warned as IPv4 is (keeping it in the Node), once, and again after it came back and left again; a manual --ip6 is not', async () => {
  const warns: string[] = [];
  const writes: unknown[] = [];
  let addrs: NodeAddresses = seen('10.0.0.1/24', ['10.0.0.1', 'fd88::1'], 'fd88::1/64');
  let v6: AddressSource = 'default';
  const m = new AddressMonitor({
    intervalMs: 1000, source: { v4: 'default', get v6() { return v6; } }, read: async () => addrs, registered: () => ({ ipv4: '10.0.0.1/24', ipv6: 'fd88::1/64' }),
    write: async (c) => { writes.push(c); }, info: () => {}, warn: (w) => warns.push(w),
  });
  await m.look();
  assert.equal(warns, []);
  addrs = seen('10.0.0.1/24', ['10.0.0.1', 'fe80::1']);
  await m.look();
  await m.look();
  assert.equal(warns, ['no IPv6 address found on the node\'s interfaces: keeping fd88::1/64 in the Node'], 'said once');
  assert.equal(writes, [], 'nothing written (Calico: keeping existing value)');
  addrs = seen('10.0.0.1/24', ['10.0.0.1', 'fd88::1'], 'fd88::1/64');
  await m.look();
  addrs = seen(undefined, ['fe80::1']);
  await m.look();
  assert.is(warns[1], 'no IPv4 address found on the node\'s interfaces: keeping 10.0.0.1/24 in the Node; no IPv6 address found on the node\'s interfaces: keeping fd88::1/64 in the Node');
  v6 = 'manual';
  addrs = seen('10.0.0.1/24', ['10.0.0.1']);
  await m.look();
  assert.is(warns.length, 2, `--ip6 given: the engine's warning says it (checkNodeAddress): ${warns.join(' | ')}`);
});

test('AddressMonitor addressLeft: told once, before the write, when a registered address (IPv4 or IPv6, any source) leaves the node; again for a new departure', async () => {
  const calls: string[] = [];
  let addrs: NodeAddresses = seen('10.0.0.1/24', ['10.0.0.1', 'fd00::1'], 'fd00::1/64');
  let registered = { ipv4: '10.0.0.1/24', ipv6: 'fd00::1/64' as string | null };
  let v4: AddressSource = 'manual';
  const m = new AddressMonitor({
    intervalMs: 1000, source: { get v4() { return v4; }, v6: 'default' }, read: async () => addrs, registered: () => registered,
    write: async (c) => { calls.push(`write ${JSON.stringify(c)}`); },
    addressLeft: (gone) => calls.push(`left ${gone.join(',')}`),
    info: () => {}, warn: () => {},
  });
  await m.look();
  assert.equal(calls, [], 'everything registered is held');
  addrs = seen('10.0.0.9/24', ['10.0.0.9', 'fd00::1'], 'fd00::1/64');
  await m.look();
  await m.look();
  assert.equal(calls, ['left 10.0.0.1'], 'a manual address left: told once (nothing written)');
  v4 = 'autodetect';
  addrs = seen('10.0.0.9/24', ['10.0.0.9', 'FD00::0:2'], 'FD00::0:2/64');
  await m.look();
  assert.equal(calls.slice(1), ['left 10.0.0.1,fd00::1', 'write {"ipv4Address":"10.0.0.9/24","ipv6Address":"FD00::0:2/64"}'], 'the IPv6 address left too: told before the write');
  await m.look();
  assert.is(calls.length, 4, 'the same departure is not told again (the model not caught up yet)');
  registered = { ipv4: '10.0.0.9/24', ipv6: 'fd00::2/64' };
  await m.look();
  assert.is(calls.length, 4, 'caught up: nothing gone, nothing written');
  addrs = seen('10.0.0.9/24', ['10.0.0.9'], undefined);
  await m.look();
  assert.equal(calls.slice(4), ['left fd00::2'], 'a new departure is told');
});

test('AddressMonitor: a look waiting on the datastore (a read sent just before the address left) does not hold back addressLeft: the next tick tells it, once; the write follows when the wait ends', async () => {
  const calls: string[] = [];
  let addrs: NodeAddresses = seen('10.0.0.1/24', ['10.0.0.1', '10.0.0.9']);
  let release: (() => void) | null = null;
  const m = new AddressMonitor({
    intervalMs: 20, source: src('autodetect'), read: async () => addrs, registered: () => REG,
    // the repair's read of the stored Node: the first one waits (its connection dead) until let go
    stored: () => (calls.includes('stored') ? Promise.resolve(REG) : new Promise((resolve) => { calls.push('stored'); release = () => resolve(REG); })),
    write: async (c) => { calls.push(`write ${JSON.stringify(c)}`); },
    // as run.ts does: new connections, which give up the call that waits on the old one
    addressLeft: (gone) => { calls.push(`left ${gone.join(',')}`); release?.(); },
    info: () => {}, warn: () => {},
  });
  try {
    m.start();
    const deadline = Date.now() + 20_000;
    while (!calls.includes('stored') && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5));
    assert.equal(calls, ['stored'], 'a look waits on the stored Node');
    addrs = seen('10.0.0.9/24', ['10.0.0.9']);
    while (!calls.some((c) => c.startsWith('write')) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5));
    assert.equal(calls, ['stored', 'left 10.0.0.1', 'write {"ipv4Address":"10.0.0.9/24"}'], 'told while the look waited (it never ends otherwise), once; then written');
  } finally {
    (release as (() => void) | null)?.(); // (a look still waiting would hold stop())
    await m.stop();
  }
});

test('AddressMonitor addressAppeared: after a registered address left, each look finding new addresses tells them (the old one back, then a new one); not in the look that told the departure, not once all is held again', async () => {
  const calls: string[] = [];
  let addrs: NodeAddresses = seen('10.0.0.1/24', ['10.0.0.1', 'fe80::1']);
  let registered = { ipv4: '10.0.0.1/24', ipv6: null as string | null };
  const m = new AddressMonitor({
    intervalMs: 1000, source: src('default'), read: async () => addrs, registered: () => registered,
    write: async (c) => { calls.push(`write ${JSON.stringify(c)}`); },
    addressLeft: (gone) => calls.push(`left ${gone.join(',')}`),
    addressAppeared: (added) => calls.push(`appeared ${added.join(',')}`),
    info: () => {}, warn: () => {},
  });
  await m.look();
  addrs = seen('10.0.0.1/24', ['10.0.0.1', 'fe80::1', '10.0.0.5']);
  await m.look();
  assert.equal(calls, [], 'a new address while everything registered is held: nothing (the connections are fine)');
  // Break before make: the address goes, the node has none for a while, then it comes back.
  addrs = seen(undefined, ['fe80::1']);
  await m.look();
  await m.look();
  assert.equal(calls, ['left 10.0.0.1'], 'told once; nothing appeared');
  addrs = seen(undefined, ['fe80::1', 'fe80::2']);
  await m.look();
  assert.equal(calls, ['left 10.0.0.1'], 'a link-local address is no way out');
  addrs = seen('10.0.0.1/24', ['10.0.0.1', 'fe80::1']);
  await m.look();
  assert.equal(calls, ['left 10.0.0.1', 'appeared 10.0.0.1'], 'the old address back: new connections again');
  addrs = seen('10.0.0.1/24', ['10.0.0.1', 'fe80::1', '10.0.0.6']);
  await m.look();
  assert.is(calls.length, 2, 'all held again: a new address says nothing');
  // Renumbered: the old one goes (told), the new one comes a look later (told, then written).
  addrs = seen(undefined, ['fe80::1']);
  await m.look();
  addrs = seen('10.0.0.9/24', ['10.0.0.9', 'fe80::1']);
  await m.look();
  assert.equal(calls.slice(2), ['left 10.0.0.1', 'appeared 10.0.0.9', 'write {"ipv4Address":"10.0.0.9/24"}']);
  // Until the model has the new address, the old one is still gone: a further new address is told.
  addrs = seen('10.0.0.9/24', ['10.0.0.9', '10.0.0.10', 'fe80::1']);
  await m.look();
  assert.equal(calls.slice(5, 6), ['appeared 10.0.0.10']);
  registered = { ipv4: '10.0.0.9/24', ipv6: null };
  addrs = seen('10.0.0.9/24', ['10.0.0.9', '10.0.0.10', '10.0.0.11', 'fe80::1']);
  await m.look();
  assert.is(calls.filter((c) => c.startsWith('appeared')).length, 3, 'caught up: nothing more');
  // Both in one look (make and break between two looks): the departure alone is told.
  addrs = seen('10.0.0.20/24', ['10.0.0.20', 'fe80::1']);
  const n = calls.length;
  await m.look();
  assert.equal(calls.slice(n), ['left 10.0.0.9', 'write {"ipv4Address":"10.0.0.20/24"}']);
});

test('AddressMonitor.stop: a look waiting on its read writes nothing; stop waits for a write already under way; no look after', async () => {
  const writes: unknown[] = [];
  let releaseRead: (a: NodeAddresses) => void = () => {};
  let releaseWrite: () => void = () => {};
  const m = new AddressMonitor({
    intervalMs: 1000, source: src('default'), registered: () => REG,
    read: () => new Promise<NodeAddresses>((r) => (releaseRead = r)),
    write: (c) => new Promise<void>((r) => { writes.push(c); releaseWrite = r; }), info: () => {}, warn: () => {},
  });
  // stopped while reading: the read returns a change, nothing is written
  const look = m.look();
  const stopped = m.stop();
  releaseRead(seen('10.0.0.7/24', ['10.0.0.7']));
  await stopped;
  await look;
  assert.equal(writes, [], 'no write after stop');
  await m.look();
  assert.is(m.looks, 1, 'no look after stop');
  // stopped while writing: stop resolves only once the write is done
  const m2 = new AddressMonitor({
    intervalMs: 1000, source: src('default'), registered: () => REG,
    read: async () => seen('10.0.0.8/24', ['10.0.0.8']),
    write: (c) => new Promise<void>((r) => { writes.push(c); releaseWrite = r; }), info: () => {}, warn: () => {},
  });
  const look2 = m2.look();
  while (writes.length === 0) await new Promise((r) => setImmediate(r));
  let done = false;
  const stopped2 = m2.stop().then(() => (done = true));
  await new Promise((r) => setImmediate(r));
  assert.is(done, false, 'stop waits for the write under way');
  releaseWrite();
  await stopped2;
  await look2;
  assert.is(m2.updates, 1);
  assert.equal(writes, [{ ipv4Address: '10.0.0.8/24' }]);
});

test('NodeAddressStore.update on the embedded store: only the addresses change; another Node\'s address is refused; file: refused', async () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'podway-addrmon-'));
  dirs.push(dir);
  const kv = new FileKv({ dir });
  try {
    await registerNode(kv, { name: 'node1', ipv4Address: '10.0.0.1/24', vxlanTunnelAddr: '10.244.0.0', ipv6Address: 'fd00::1/64', labels: { zone: 'a' } });
    await registerNode(kv, { name: 'node2', ipv4Address: '10.0.0.2/24' });
    const spec = { kind: 'embedded' as const, dir };
    const store = new NodeAddressStore(spec, 'node1');
    stores.push(store);
    await store.update({ ipv4Address: '10.0.0.7/24' });
    const n1 = JSON.parse((await kv.get('/calico/resources/v3/projectcalico.org/nodes/node1'))!.value);
    assert.equal(n1.spec.bgp, { ipv4Address: '10.0.0.7/24', ipv6Address: 'fd00::1/64' });
    assert.is(n1.spec.ipv4VXLANTunnelAddr, '10.244.0.0', 'tunnel address kept');
    assert.equal(n1.metadata.labels, { zone: 'a' });
    try {
      await store.update({ ipv4Address: '10.0.0.2/24' });
      assert.unreachable('another Node\'s address');
    } catch (e) {
      assert.match((e as Error).message, 'Node node2 is already using the IPv4 address 10.0.0.2');
    }
    const still = JSON.parse((await kv.get('/calico/resources/v3/projectcalico.org/nodes/node1'))!.value);
    assert.is(still.spec.bgp.ipv4Address, '10.0.0.7/24', 'nothing written on a conflict');
    try {
      const node9 = new NodeAddressStore(spec, 'node9');
      stores.push(node9);
      await node9.update({ ipv4Address: '10.0.0.9/24' });
      assert.unreachable('no such Node');
    } catch (e) {
      assert.match((e as Error).message, 'Node node9 is not in');
    }
    try {
      const file = new NodeAddressStore({ kind: 'file', path: path.join(dir, 'x.yaml') }, 'node1');
      stores.push(file);
      await file.update({ ipv4Address: '10.0.0.9/24' });
      assert.unreachable('file: datastore');
    } catch (e) {
      assert.match((e as Error).message, 'read-only');
    }
  } finally {
    await closeStores();
    await kv.close();
  }
});

test('AddressMonitor: a throwing read() or registered() is said once, not an unhandled rejection; the next look runs', async () => {
  const warns: string[] = [];
  const rejections: unknown[] = [];
  const onRejection = (r: unknown) => { rejections.push(r); };
  process.on('unhandledRejection', onRejection);
  let readThrows = true;
  let regThrows = false;
  const writes: unknown[] = [];
  const m = new AddressMonitor({
    intervalMs: 5, source: src('default'),
    read: async () => { if (readThrows) throw new Error('netlink gone'); return seen('10.0.0.7/24', ['10.0.0.7']); },
    registered: () => { if (regThrows) throw new Error('bad model'); return REG; },
    write: async (c) => { writes.push(c); },
    info: () => {}, warn: (s) => warns.push(s),
  });
  try {
    await m.look();
    await m.look();
    // the timer's `void this.look()` path too: a few ticks, bounded
    m.start();
    await new Promise((r) => setTimeout(r, 40));
    await m.stop();
    await new Promise((r) => setImmediate(r));
    assert.equal(warns, ['node address look failed: netlink gone; tried again in 0.005 s'], warns.join(' | '));
    assert.is(rejections.length, 0, 'no unhandled rejection');
    const m2 = new AddressMonitor({
      intervalMs: 1000, source: src('default'),
      read: async () => { if (readThrows) throw new Error('netlink gone'); return seen('10.0.0.7/24', ['10.0.0.7']); },
      registered: () => { if (regThrows) throw new Error('bad model'); return REG; },
      write: async (c) => { writes.push(c); },
      info: () => {}, warn: (s) => warns.push(s),
    });
    regThrows = true;
    await m2.look();
    assert.match(warns[warns.length - 1], 'node address look failed: bad model');
    regThrows = false;
    readThrows = false;
    await m2.look();
    assert.equal(writes, [{ ipv4Address: '10.0.0.7/24' }], 'the next look works');
  } finally {
    process.off('unhandledRejection', onRejection);
    await m.stop();
  }
});

test('repairStoredAddress: a stored address no interface holds is replaced by the given one, first-found, or the one in force (held); a held or absent one is left', () => {
  const here = seen('10.0.0.1/24', ['10.0.0.1', '10.0.0.5', 'fd00::1'], 'fd00::1/64');
  const foreign = { ipv4: '10.97.0.3/24', ipv6: null };
  assert.equal(repairStoredAddress(foreign, REG, here, src('default')), { ipv4Address: '10.0.0.1/24' }, 'default: the address in force');
  assert.equal(repairStoredAddress(foreign, { ipv4: '10.0.0.5/24', ipv6: null }, here, src('default')), { ipv4Address: '10.0.0.5/24' }, 'default: the one in force, not first-found, while held');
  assert.equal(repairStoredAddress(foreign, { ipv4: '10.0.0.9/24', ipv6: null }, here, src('default')), { ipv4Address: '10.0.0.1/24' }, 'default: first-found when the one in force is gone too');
  assert.equal(repairStoredAddress(foreign, { ipv4: '10.0.0.5/24', ipv6: null }, here, src('autodetect')), { ipv4Address: '10.0.0.1/24' }, 'autodetect: first-found');
  assert.equal(repairStoredAddress(foreign, REG, here, src('manual'), { v4: '10.0.0.5/24' }), { ipv4Address: '10.0.0.5/24' }, 'manual: the given one');
  assert.is(repairStoredAddress({ ipv4: '10.0.0.5/24', ipv6: null }, REG, here, src('default')), null, 'a stored address held here is left (the monitor decides)');
  assert.is(repairStoredAddress(REG, REG, here, src('default')), null, 'nothing to repair');
  assert.equal(repairStoredAddress({ ipv4: '10.0.0.1/24', ipv6: 'fd00:97::3/64' }, { ipv4: '10.0.0.1/24', ipv6: 'fd00::1/64' }, here, src('default')), { ipv6Address: 'fd00::1/64' }, 'IPv6 alike');
  assert.is(repairStoredAddress({ ipv4: '10.0.0.1/24', ipv6: 'fd00:97::3/64' }, REG, here, src('default', 'none')), null, 'IPv6 none: left');
});

test('AddressMonitor: a stored Node address not held here (the model in force is fine) is written back with a warning naming it; lookSoon looks at once', async () => {
  const writes: unknown[] = [];
  const warns: string[] = [];
  let stored = { ipv4: '10.97.0.3/24', ipv6: null as string | null };
  const m = new AddressMonitor({
    intervalMs: 60_000, source: src('default'), read: async () => seen('10.0.0.1/24', ['10.0.0.1']), registered: () => REG,
    stored: async () => stored,
    write: async (c) => { writes.push(c); stored = { ipv4: c.ipv4Address ?? stored.ipv4, ipv6: null }; }, info: () => {}, warn: (w) => warns.push(w),
  });
  m.lookSoon();
  for (let i = 0; i < 100 && writes.length === 0; i++) await new Promise((r) => setTimeout(r, 10));
  await m.stop();
  assert.equal(writes, [{ ipv4Address: '10.0.0.1/24' }]);
  assert.ok(warns.some((w) => /stored address 10\.97\.0\.3 is not held by any interface here/.test(w)), warns.join(' | '));
});

/** An embedded store holding Node node1 at `ipv4`, with its spec for a NodeAddressStore. */
async function storeWithNode(ipv4: string): Promise<{ kv: FileKv; spec: { kind: 'embedded'; dir: string } }> {
  const dir = mkdtempSync(path.join(tmpdir(), 'podway-addrmon-'));
  dirs.push(dir);
  const kv = new FileKv({ dir });
  await registerNode(kv, { name: 'node1', ipv4Address: ipv4 });
  return { kv, spec: { kind: 'embedded', dir } };
}

/** The Node's addresses as another process reads them: a NodeAddressStore of its own, closed after. */
async function storedNow(spec: { kind: 'embedded'; dir: string }): Promise<{ ipv4: string | null; ipv6: string | null } | null> {
  const store = new NodeAddressStore(spec, 'node1');
  try {
    return await store.stored();
  } finally {
    await store.close();
  }
}

const setStored = (kv: FileKv, ipv4: string) => updateNodeSpec(kv, 'node1', (s) => { s.bgp = { ...((s.bgp ?? {}) as object), ipv4Address: ipv4 }; });

test('NodeAddressStore.update with expect (the repair): written only over the addresses judged; a Node changed since is left, false', async () => {
  const { kv, spec } = await storeWithNode('10.97.0.3/24');
  const store = new NodeAddressStore(spec, 'node1');
  stores.push(store);
  try {
    assert.is(await store.update({ ipv4Address: '10.0.0.1/24' }, { ipv4: '10.97.0.9/24', ipv6: null }), false, 'not the address judged');
    assert.equal(await storedNow(spec), { ipv4: '10.97.0.3/24', ipv6: null }, 'left as it is');
    assert.is(await store.update({ ipv4Address: '10.0.0.1/24' }, { ipv4: '10.97.0.3/24', ipv6: 'fd00::1/64' }), false, 'an IPv6 address judged that is not there');
    assert.is(await store.update({ ipv4Address: '10.0.0.1/24' }, { ipv4: '10.97.0.3/24', ipv6: null }), true);
    assert.equal(await storedNow(spec), { ipv4: '10.0.0.1/24', ipv6: null });
  } finally {
    await closeStores();
    await kv.close();
  }
});

test('AddressMonitor repair is a compare-and-swap: the Node rewritten again between the read and the write is not overwritten (embedded store)', async () => {
  const { kv, spec } = await storeWithNode('10.97.0.3/24');
  // one store for the monitor's reads and writes, as run.ts wires it
  const store = new NodeAddressStore(spec, 'node1');
  stores.push(store);
  const infos: string[] = [];
  let raced = 0;
  try {
    const m = new AddressMonitor({
      intervalMs: 60_000, source: src('default'), read: async () => seen('10.0.0.1/24', ['10.0.0.1']), registered: () => REG,
      stored: () => store.stored(),
      write: async (c, expect) => {
        // the other writer, between this monitor's read and its write
        if (raced++ === 0) await setStored(kv, '10.97.0.4/24');
        return store.update(c, expect);
      },
      info: (i) => infos.push(i), warn: () => {},
    });
    await m.look();
    assert.equal(await storedNow(spec), { ipv4: '10.97.0.4/24', ipv6: null }, 'the newer write is kept');
    assert.is(m.updates, 0);
    assert.ok(infos.some((i) => /changed again while it was being repaired/.test(i)), infos.join(' | '));
    await m.look();
    assert.equal(await storedNow(spec), { ipv4: '10.0.0.1/24', ipv6: null }, 'the next look repairs what it read');
    assert.is(m.updates, 1);
    await m.stop();
  } finally {
    await closeStores();
    await kv.close();
  }
});

test('AddressMonitor repair: a compare-and-swap that finds the Node changed back to this node\'s own address is no overwrite (no contest, no back-off)', async () => {
  const { kv, spec } = await storeWithNode('10.97.0.3/24');
  // one store for the monitor's reads and writes, as run.ts wires it
  const store = new NodeAddressStore(spec, 'node1');
  stores.push(store);
  const infos: string[] = [];
  const warns: string[] = [];
  try {
    const m = new AddressMonitor({
      intervalMs: 60_000, source: src('default'), read: async () => seen('10.0.0.1/24', ['10.0.0.1']), registered: () => REG,
      stored: () => store.stored(),
      write: async (c, expect) => {
        // someone writes this node's own address back between the read and the write
        await setStored(kv, '10.0.0.1/24');
        return store.update(c, expect);
      },
      info: (i) => infos.push(i), warn: (w) => warns.push(w),
    });
    for (let i = 0; i < CONTEST_OVERWRITES + 1; i++) {
      await setStored(kv, `10.97.0.${10 + i}/24`);
      await m.look();
      assert.equal(await storedNow(spec), { ipv4: '10.0.0.1/24', ipv6: null });
    }
    assert.ok(infos.filter((i) => /changed back to this node's own while it was being repaired/.test(i)).length === CONTEST_OVERWRITES + 1, infos.join(' | '));
    assert.not.ok(warns.some((w) => /another process appears to be writing/.test(w)), warns.join(' | '));
    assert.is(m.repairsHeldBack, 0);
    await m.stop();
  } finally {
    await closeStores();
    await kv.close();
  }
});

test('AddressMonitor: two podways writing one Node (embedded store) stop flapping: one says another process writes it and backs off; the stored Node then stays put; after the back-off one repair, and a back-off again', async () => {
  const { kv, spec } = await storeWithNode('10.0.0.1/24');
  const interval = 60_000;
  let clock = 1_000_000;
  const warns: string[] = [];
  // each podway with its own store (run.ts's), for its monitor's reads and writes
  const monitor = (own: string, store = new NodeAddressStore(spec, 'node1')) => (stores.push(store), new AddressMonitor({
    intervalMs: interval, source: src('default'), now: () => clock,
    read: async () => seen(`${own}/24`, [own]), registered: () => ({ ipv4: `${own}/24`, ipv6: null }),
    stored: () => store.stored(),
    write: (c, expect) => store.update(c, expect),
    info: () => {}, warn: (w) => warns.push(`${own}: ${w}`),
  }));

  const a = monitor('10.0.0.1');
  const b = monitor('10.0.0.2');
  const contest = () => warns.filter((w) => /another process appears to be writing this node's Node/.test(w));
  try {
    // Each look of one follows a write of the other (the rejected model asks for a look at once).
    const history: string[] = [];
    const round = async () => {
      await a.look();
      await b.look();
      history.push((await storedNow(spec))!.ipv4!);
      clock += 1000;
    };
    for (let i = 0; i < 2 * CONTEST_OVERWRITES + 2; i++) await round();
    assert.is(contest().length, 1, warns.join(' | '));
    assert.match(contest()[0], `${CONTEST_OVERWRITES} times within`);
    assert.match(contest()[0], `not repairing it for ${CONTEST_BACKOFF_LOOKS * interval / 1000} s`);
    const writes = a.updates + b.updates;
    assert.ok(writes <= 2 * CONTEST_OVERWRITES + 1, `writes bounded: ${writes} (${history.join(' ')})`);
    const settled = history[history.length - 1];
    for (let i = 0; i < 5; i++) await round();
    assert.equal(history.slice(-6), Array(6).fill(settled), `the Node stays put in the back-off: ${history.join(' ')}`);
    assert.is(a.updates + b.updates, writes, 'nothing written in the back-off');
    assert.ok(a.repairsHeldBack + b.repairsHeldBack > 0);
    // The back-off over: the one that backed off repairs once; the other sees its address
    // overwritten again and backs off in turn (or the first does again): no flapping either way.
    clock += CONTEST_BACKOFF_LOOKS * interval;
    for (let i = 0; i < 6; i++) await round();
    assert.is(contest().length, 2, warns.join(' | '));
    assert.ok(a.updates + b.updates <= writes + 2, `at most one repair each after the back-off: ${history.join(' ')}`);
    assert.equal(new Set(history.slice(-4)).size, 1, `the Node stays put again: ${history.join(' ')}`);
  } finally {
    await a.stop();
    await b.stop();
    await closeStores();
    await kv.close();
  }
});

test('AddressMonitor: foreign writes far apart are each repaired, no contest; a contest followed by a quiet window is forgotten', async () => {
  const { kv, spec } = await storeWithNode('10.0.0.1/24');
  // one store for the monitor's reads and writes, as run.ts wires it
  const store = new NodeAddressStore(spec, 'node1');
  stores.push(store);
  let clock = 0;
  const warns: string[] = [];
  const infos: string[] = [];
  const m = new AddressMonitor({
    intervalMs: 1000, source: src('default'), now: () => clock,
    read: async () => seen('10.0.0.1/24', ['10.0.0.1']), registered: () => REG,
    stored: () => store.stored(),
    write: (c, expect) => store.update(c, expect),
    info: (i) => infos.push(i), warn: (w) => warns.push(w),
  });
  try {
    for (let i = 0; i < CONTEST_OVERWRITES + 2; i++) {
      await setStored(kv, '10.97.0.3/24');
      await m.look();
      clock += 20_000; // well apart: each overwrite outside the last one's window
      await m.look();
    }
    assert.is(m.updates, CONTEST_OVERWRITES + 2, 'each one repaired');
    assert.not.ok(warns.some((w) => /another process appears/.test(w)), warns.join(' | '));
    assert.equal(await storedNow(spec), { ipv4: '10.0.0.1/24', ipv6: null });
    // A contest (overwrites close together), its back-off, one repair after it, then quiet for a
    // window: forgotten, and later overwrites count from zero again.
    for (let i = 0; i < CONTEST_OVERWRITES + 1; i++) {
      await setStored(kv, '10.97.0.3/24');
      await m.look();
      clock += 1000;
    }
    assert.is(warns.filter((w) => /another process appears/.test(w)).length, 1, warns.join(' | '));
    clock += CONTEST_BACKOFF_LOOKS * 1000;
    await m.look();
    assert.equal(await storedNow(spec), { ipv4: '10.0.0.1/24', ipv6: null }, 'repaired after the back-off');
    clock += 10_000;
    await m.look();
    assert.ok(infos.some((i) => /the other writer seems gone/.test(i)), infos.join(' | '));
    for (let i = 0; i < CONTEST_OVERWRITES - 1; i++) {
      await setStored(kv, '10.97.0.3/24');
      await m.look();
      clock += 1000;
      await m.look();
    }
    assert.is(warns.filter((w) => /another process appears/.test(w)).length, 1, 'no new contest below the count');
  } finally {
    await m.stop();
    await closeStores();
    await kv.close();
  }
});

test.run();
