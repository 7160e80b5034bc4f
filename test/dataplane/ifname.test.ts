// The one interface-name rule (dataplane/ifname.ts) against the kernel's: every name it takes is
// one the kernel takes (a bridge made with it in a network namespace of the test's own), and
// of the names made only of the characters it allows, the kernel refuses exactly those it
// refuses ("." and "..", more than 15 bytes). Names the kernel takes but the rule refuses are
// the quoting's (an nft string's quote, a batch line's comment or space). Then each place that
// used its own copy refuses and takes the same names through it.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { execFileSync, spawnSync } from 'node:child_process';
import * as path from 'node:path';
import { isSafeIfname } from '../../src/dataplane/ifname';
import { quietKernelOn, sysctlFile } from '../../src/dataplane/host';
import { installTunnelRx } from '../../src/dataplane/nft-tunnels';
import { guardTableProgram, natTableProgram, type NatSpec } from '../../src/dataplane/nft-nat';
import { isRoot, withNetns, type Netns } from '../helpers/netns';

const IN_CHARSET = ['eth0', 'eth0.100', 'a..b', '...', '.a', 'a.', 'veth-1@if2', 'cali_1', 'x'.repeat(15), 'x'.repeat(16), '.', '..', '@', '-', '-a'];
const OTHERS = ['', 'a/b', 'a:b', 'a b', 'a\tb', 'a"b', 'a#b', 'a;b', 'a$b', 'é', "a'b"];

function kernelTakes(ns: Netns, name: string): boolean {
  const r = spawnSync('ip', ['-n', ns.name, 'link', 'add', 'name', name, 'type', 'bridge'], { encoding: 'utf8', timeout: 20_000 });
  if (r.status !== 0) return false;
  spawnSync('ip', ['-n', ns.name, 'link', 'del', 'dev', name], { timeout: 20_000 });
  return true;
}

test('the rule: 1-15 of [A-Za-z0-9_.@-], not "." or ".."', () => {
  for (const n of ['eth0', 'eth0.100', 'a..b', 'cali_1', 'veth-1@if2', 'x'.repeat(15), '...']) assert.ok(isSafeIfname(n), n);
  for (const n of ['', '.', '..', 'x'.repeat(16), 'a/b', 'a:b', 'a b', 'a"b', 'a#b', 'é']) assert.not.ok(isSafeIfname(n), JSON.stringify(n));
});

test('the kernel takes every name the rule takes; within its characters it refuses exactly what the rule refuses', async () => {
  if (!isRoot()) return;
  await withNetns(['ifname'], ([ns]) => {
    for (const n of IN_CHARSET) assert.is(isSafeIfname(n), kernelTakes(ns, n), `${JSON.stringify(n)}: the rule and the kernel agree`);
    for (const n of OTHERS) {
      assert.not.ok(isSafeIfname(n), JSON.stringify(n));
      // (the kernel takes some of these, e.g. 'a"b': refused for the quoting, not by the kernel)
      if (['', 'a/b', 'a:b', 'a b', 'a\tb'].includes(n)) assert.not.ok(kernelTakes(ns, n), `the kernel refuses ${JSON.stringify(n)}`);
    }
    assert.ok(kernelTakes(ns, 'a"b'), 'the kernel takes a quote in a name (the rule does not: nft strings)');
  });
});

test('each user of the rule: the sysctl path, the tunnel table, the NAT and guard tables', () => {
  // "..": refused before any sysctl is touched (it would climb out of conf/); "a..b" passes the
  // name check (the sysctl then fails: no such interface here).
  assert.throws(() => quietKernelOn('..', true), /bad interface name/);
  assert.throws(() => quietKernelOn('.', true), /bad interface name/);
  assert.throws(() => quietKernelOn('pw-no-such..if', false), (e: Error) => !/bad interface name/.test(e.message));
  assert.match(installTunnelRx('..', '10.99.0.1', 4789, null, '/nonexistent/nft') ?? '', 'not usable in an nft rule');
  assert.match(installTunnelRx('eth0:1', '10.99.0.1', 4789, null, '/nonexistent/nft') ?? '', 'not usable in an nft rule');
  assert.match(installTunnelRx('eth0.100', '10.99.0.1', 4789, null, '/nonexistent/nft') ?? '', 'the nft command was not found', 'a VLAN name is taken');
  const spec: NatSpec = {
    hostPort: 'podway0', hostPortIndex: 5, natPools: ['10.65.0.0/16'], pools: ['10.65.0.0/16'], nodes: ['10.99.0.1'],
    portRange: [20000, 29999], udpTimeout: { unreplied: 30, replied: 120 }, maxFlows: 1000,
    pods: ['cali1', '.', '..', 'a..b', 'a"b'], kernelTransitDrop: true,
    podAddrs4: [['cali1', '10.65.0.2'], ['..', '10.65.0.3'], ['a..b', '10.65.0.4']],
  };
  const nat = natTableProgram(spec);
  assert.match(nat, /set pods \{ type ifname; elements = \{ "cali1", "a\.\.b" \} \}/);
  const guard = guardTableProgram(spec);
  assert.match(guard, '"cali1" . 10.65.0.2');
  assert.match(guard, '"a..b" . 10.65.0.4');
  assert.not.match(guard, '"..');
});

test('names with dots reach their own sysctls (a VLAN\'s eth0.100: /proc/sys/.../conf/eth0.100/)', async () => {
  assert.is(sysctlFile('net.ipv4.conf.eth0/100.forwarding'), '/proc/sys/net/ipv4/conf/eth0.100/forwarding');
  assert.is(sysctlFile('net.ipv4.conf.a//b.proxy_arp'), '/proc/sys/net/ipv4/conf/a..b/proxy_arp');
  assert.is(sysctlFile('net.ipv4.ip_forward'), '/proc/sys/net/ipv4/ip_forward');
  if (!isRoot()) return;
  await withNetns(['sysctl'], ([ns]) => {
    const host = path.join(__dirname, '..', '..', 'src', 'dataplane', 'host.js');
    for (const name of ['br.100', 'x..y']) {
      ns.ip('link', 'add', 'name', name, 'type', 'bridge');
      const file = (v: 4 | 6, k: string) => `/proc/sys/net/ipv${v}/conf/${name}/${k}`;
      const cat = (f: string) => ns.exec('cat', [f]).trim();
      ns.exec('sh', ['-c', `echo 1 > ${file(4, 'forwarding')}; echo 1 > ${file(4, 'proxy_arp')}; echo 1 > ${file(6, 'accept_ra')}; echo 0 > ${file(6, 'forwarding')}`]);
      // quietKernelOn in the namespace (its /proc/sys/net is the namespace's)
      const notes = execFileSync('ip', ['netns', 'exec', ns.name, process.execPath, '-e', `console.log(JSON.stringify(require(${JSON.stringify(host)}).quietKernelOn(${JSON.stringify(name)}, true)))`], { encoding: 'utf8', timeout: 30_000 });
      assert.is((JSON.parse(notes) as string[]).length, 4, notes);
      assert.is(cat(file(4, 'forwarding')), '0', `${name} forwarding`);
      assert.is(cat(file(4, 'proxy_arp')), '0', `${name} proxy_arp`);
      assert.is(cat(file(6, 'accept_ra')), '0', `${name} accept_ra`);
      // a router on the link, as Felix sets it: the kernel's advertisements for the gateway say so
      assert.is(cat(file(6, 'forwarding')), '1', `${name} IPv6 forwarding (the interface's)`);
    }
  });
});

test.run();
