/**
 * natOutgoing's IPv6 table (nft-nat.ts, NAT_IPV6) against the kernel in a network namespace of its
 * own (runPrivateNetns): the table ip6 podway created, its sets updated live, its counters read,
 * deleted at stop, and the IPv4 table beside it left alone.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { runPrivateNetns, sh } from '../helpers/netns';
import { NatSpec, NftNat, NAT_IPV6, NAT_TABLE, POD_GUARD, natCountersOf } from '../../src/dataplane/nft-nat';
import { readNftCounters } from '../../src/dataplane/nft-counters';

runPrivateNetns();

function spec6(natPools: string[], nodes = ['fd99::1', 'fd99::2']): NatSpec {
  const index = Number(sh('cat', ['/sys/class/net/podway0/ifindex']).trim());
  return {
    hostPort: 'podway0', hostPortIndex: index, natPools, pools: ['fd00:10:244::/64', 'fd00:11::/64'], nodes,
    portRange: [61000, 65535], udpTimeout: { unreplied: 30, replied: 120 }, maxFlows: 1000, pods: [], kernelTransitDrop: false,
  };
}

const tables = () => sh('nft', ['list', 'tables']).trim().split('\n').filter(Boolean).sort();

test('table ip6 podway: created, sets updated live, counters read, deleted at stop; the IPv4 table untouched', async () => {
  sh('ip', ['link', 'set', 'lo', 'up']);
  sh('ip', ['tuntap', 'add', 'podway0', 'mode', 'tun']);
  const v4 = new NftNat(() => {});
  const nat6 = new NftNat(() => {}, 'nft', {}, NAT_IPV6);
  try {
    v4.start({ ...spec6([]), natPools: [], pools: ['10.244.0.0/16'], nodes: ['10.99.0.1'] });
    nat6.start(spec6(['fd00:10:244::/64']));
    assert.equal(tables(), ['table ip podway', 'table ip6 podway']);
    assert.match(sh('nft', ['list', 'set', 'ip6', NAT_TABLE, 'natpools']), 'fd00:10:244::/64');
    assert.equal((nat6.status() as { table: string }).table, 'ip6 podway');
    nat6.update(spec6(['fd00:10:244::/64', 'fd00:11::/64'], ['fd99::3']));
    const deadline = Date.now() + 10_000;
    while (nat6.updates < 1 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    assert.is(nat6.updates, 1, `updated: ${nat6.lastError}`);
    assert.match(sh('nft', ['list', 'set', 'ip6', NAT_TABLE, 'natpools']), 'fd00:11::/64');
    assert.match(sh('nft', ['list', 'set', 'ip6', NAT_TABLE, 'nodes']), 'fd99::3');
    const read = await readNftCounters([nat6.table, v4.table]);
    assert.equal([...read.missing], []);
    const c = natCountersOf(read.tables.get('ip6 podway')!);
    assert.equal(c, { flows: 0, outPackets: 0, outBytes: 0, inPackets: 0, inBytes: 0, refused: 0, icmpUnmatched: 0, podTransit: 0 });
    await nat6.stop();
    assert.equal(tables(), ['table ip podway'], 'only the IPv6 table removed');
    const after = await readNftCounters([nat6.table, v4.table]);
    assert.equal(Object.fromEntries(after.missing), { 'ip6 podway': 'no such table' }, 'the IPv6 table gone, the IPv4 one read');
    assert.ok(after.tables.has('ip podway'));
  } finally {
    await nat6.stop();
    await v4.stop();
  }
  assert.equal(sh('nft', ['list', 'tables']).trim(), '');
});

test('a leftover table ip6 podway (a crashed run\'s) is removed by removeLeftover while none is ours; the IPv4 table stays', () => {
  const v4 = new NftNat(() => {});
  const left = new NftNat(() => {}, 'nft', {}, NAT_IPV6);
  left.start(spec6(['fd00:10:244::/64']));
  v4.start({ ...spec6([]), natPools: [], pools: ['10.244.0.0/16'], nodes: ['10.99.0.1'] });
  assert.equal(tables(), ['table ip podway', 'table ip6 podway']);
  const fresh = new NftNat(() => {}, 'nft', {}, NAT_IPV6);
  assert.is(fresh.removeLeftover(), true);
  assert.equal(tables(), ['table ip podway']);
  assert.is(fresh.removeLeftover(), false, 'nothing left');
  // an active NftNat never removes its own table this way
  fresh.start(spec6(['fd00:10:244::/64']));
  assert.is(fresh.removeLeftover(), false);
  assert.equal(tables(), ['table ip podway', 'table ip6 podway']);
  sh('nft', ['flush', 'ruleset']);
});

test('startTogether: the guard, IPv4 and IPv6 tables in one nft run, each started as start() leaves it; one refused: none goes in', () => {
  const v4spec: NatSpec = { ...spec6([]), natPools: ['10.244.0.0/16'], pools: ['10.244.0.0/16'], nodes: ['10.99.0.1'] };
  const guardSpec: NatSpec = { ...spec6([]), natPools: [], pools: [], nodes: [], pods: ['cali1'], podAddrs4: [['cali1', '10.244.0.2']], podAddrs6: [], tunnelPorts: [4789], endpointToHost: 'accept' };
  const guard = new NftNat(() => {}, 'nft', {}, POD_GUARD);
  const v4 = new NftNat(() => {});
  const v6 = new NftNat(() => {}, 'nft', {}, NAT_IPV6);
  try {
    // refused as a whole (a pool nft cannot parse in the IPv6 table): nothing created, none active
    assert.is(NftNat.startTogether([[guard, guardSpec], [v4, v4spec], [v6, { ...spec6([]), pools: ['not-a-cidr'] }]]), false);
    assert.equal(tables(), [], 'one transaction: the guard and IPv4 tables did not go in either');
    assert.ok(!guard.active && !v4.active && !v6.active);
    assert.is(NftNat.startTogether([[guard, guardSpec], [v4, v4spec], [v6, spec6(['fd00:10:244::/64'])]]), true);
    assert.equal(tables(), ['table inet podway', 'table ip podway', 'table ip6 podway']);
    assert.ok(guard.active && v4.active && v6.active);
    assert.match(sh('nft', ['list', 'set', 'ip', NAT_TABLE, 'natpools']), '10.244.0.0/16');
    assert.match(sh('nft', ['list', 'set', 'ip6', NAT_TABLE, 'natpools']), 'fd00:10:244::/64');
    assert.is(NftNat.startTogether([[v4, v4spec]]), false, 'a table started already is not started again');
  } finally {
    sh('nft', ['flush', 'ruleset']);
  }
});

test('removeLeftoverListed: a leftover named by `nft list tables` read before is removed; one not named is not looked for', () => {
  const left = new NftNat(() => {}, 'nft', {}, NAT_IPV6);
  left.start(spec6(['fd00:10:244::/64']));
  const fresh = new NftNat(() => {}, 'nft', {}, NAT_IPV6);
  // a listing that does not name it (read before the table came): not looked for, left alone
  assert.is(fresh.removeLeftoverListed('table ip podway\n'), false);
  assert.equal(tables(), ['table ip6 podway']);
  assert.is(fresh.removeLeftoverListed(sh('nft', ['list', 'tables'])), true);
  assert.equal(tables(), []);
  // no listing (nft failed then): looked for as removeLeftover does
  left.start(spec6(['fd00:10:244::/64']));
  assert.is(fresh.removeLeftoverListed(null), true);
  assert.equal(tables(), []);
  sh('nft', ['flush', 'ruleset']);
});

test.run();
