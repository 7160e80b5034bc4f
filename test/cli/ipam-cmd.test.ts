// `podway ipam show|check|release|assign|configure` as a user runs them: `node bin/podway.js ...`
// (built by `npm run build:ts`) against an embedded store in a temp dir and against a real etcd.
// Pools and nodes go in with `podway apply -f`; a leak is planted by writing a block directly
// through the KvStore, as a crashed or buggy writer would leave it. Each command path that a
// process shows (exit status, the error line, the environment, the process ending with its
// datastore closed) runs as a real process at least once per datastore (spawned/okSpawned); the
// other calls run the same main() in this process (cli-kit's podwayInProcess), which also fails if
// a command leaves anything that would keep a process alive.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { readFileSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import {
  AllocationBlock, auditIpam, BLOCK_PREFIX, blockKey, formatDuration, HANDLE_PREFIX, Ipam, NODE_PREFIX, parseAllocationTimestamp, parseBlockKey, parseDuration,
} from '../../src/control/ipam';
import { parseNet } from '../../src/control/ipam/net';
import { KvStore } from '../../src/control/kv/kv';
import { goG5, releaseChecked, RELEASE_CHANGED_SINCE_CHECK, renderBoxTable, withPercentage } from '../../src/cli/ipam-cmd';
import { HookedKv } from '../helpers/kv-hook';
import { podwayInProcess as podway, okInProcess as ok, podway as spawned, ok as okSpawned, tempDir, Target, embeddedTarget, etcdTarget, stopEtcd } from './cli-kit';

const RES = '/calico/resources/v3/projectcalico.org/';






const CLUSTER = `apiVersion: projectcalico.org/v3
kind: IPPool
metadata: {name: pool-a}
spec: {cidr: 10.244.0.0/16, vxlanMode: Always}
---
apiVersion: projectcalico.org/v3
kind: Node
metadata: {name: node1}
spec: {bgp: {ipv4Address: 10.99.0.1/24}}
---
apiVersion: projectcalico.org/v3
kind: Node
metadata: {name: node2}
spec: {bgp: {ipv4Address: 10.99.0.2/24}}
`;

// 4 addresses per block: with one block per node and strict affinity, node2 can hold 4.
const SMALL_POOL = `apiVersion: projectcalico.org/v3
kind: IPPool
metadata: {name: tiny}
spec: {cidr: 10.250.0.0/24, blockSize: 30}
`;

/** A WorkloadEndpoint document listing `ips` (host routes), as the CNI plugin writes one. */
function wepYaml(name: string, node: string, ips: readonly string[], extra: Record<string, string> = {}, namespace = 'default'): string {
  const nets = ips.map((ip) => (ip.includes(':') ? `${ip}/128` : `${ip}/32`)).join(', ');
  // Calico's identifiers, which `podway apply` requires of a named endpoint: name is <node>-k8s-<pod>-eth0.
  const ids = { orchestrator: 'k8s', pod: name.split('-k8s-')[1]!.replace(/-eth0$/, ''), endpoint: 'eth0', ...extra };
  const more = Object.entries(ids).map(([k, v]) => `, ${k}: ${v}`).join('');
  return `apiVersion: projectcalico.org/v3\nkind: WorkloadEndpoint\nmetadata: {name: ${name}, namespace: ${namespace}}\n`
    + `spec: {node: ${node}, interfaceName: cali${name.length}${name.slice(-6).replace(/[^a-z0-9]/g, '')}, ipNetworks: [${nets}]${more}}\n`;
}

const ipToInt = (ip: string) => ip.split('.').reduce((n, o) => n * 256 + Number(o), 0);
const intToIp = (n: number) => [24, 16, 8, 0].map((s) => (n >>> s) & 255).join('.');
const block26 = (ip: string) => `${intToIp(ipToInt(ip) & ~63 >>> 0)}/26`;

const formatting = suite('ipam table formatting (Go\'s %.5g and %.f, tablewriter boxes)');
formatting('numbers as calicoctl prints them', () => {
  assert.is(goG5(0), '0');
  assert.is(goG5(64), '64');
  assert.is(goG5(65536), '65536');
  assert.is(goG5(100000), '1e+05');
  assert.is(goG5(131072), '1.3107e+05');
  assert.is(goG5(1048576), '1.0486e+06');
  assert.is(goG5(4294967296), '4.295e+09');
  assert.is(goG5(2 ** 64), '1.8447e+19', 'an IPv6 /64 pool');
  assert.is(goG5(999995), '1e+06', 'a tie rounds to even, and 99999.5 carries into the exponent');
  assert.is(withPercentage(8, 65536), '8 (0%)');
  assert.is(withPercentage(65528, 65536), '65528 (100%)');
  assert.is(withPercentage(1, 8), '1 (12%)', 'Go rounds an exact .5 to even');
  assert.is(withPercentage(3, 8), '3 (38%)');
  assert.is(renderBoxTable(['A', 'LONGER'], [['x', '12'], ['yy', 'a b']]),
    '+----+--------+\n| A  | LONGER |\n+----+--------+\n| x  |     12 |\n| yy | a b    |\n+----+--------+\n');
});
formatting("allocation timestamps (podway's RFC 3339, Calico CNI's Go Time.String()) and --grace-period durations", () => {
  assert.is(parseAllocationTimestamp('2024-05-01T10:20:30.123Z'), Date.UTC(2024, 4, 1, 10, 20, 30, 123));
  assert.is(parseAllocationTimestamp('2024-05-01 10:20:30.123456789 +0000 UTC'), Date.UTC(2024, 4, 1, 10, 20, 30, 123));
  assert.is(parseAllocationTimestamp('2024-05-01 12:20:30 +0200 CEST m=+12.500000001'), Date.UTC(2024, 4, 1, 10, 20, 30));
  assert.is(parseAllocationTimestamp('yesterday'), null);
  assert.is(parseAllocationTimestamp('2024-13-45T99:99:99Z'), null);
  assert.is(parseDuration('15m'), 900_000);
  assert.is(parseDuration('1h30m'), 5_400_000);
  assert.is(parseDuration('90s'), 90_000);
  assert.is(parseDuration('0'), 0);
  assert.throws(() => parseDuration('15'), /^--grace-period: invalid duration "15": use e\.g\. 15m/);
  assert.throws(() => parseDuration('15m junk'), /invalid duration/);
  assert.is(formatDuration(900_000), '15m0s');
  assert.is(formatDuration(5_400_000), '1h30m0s');
});
formatting.run();


function ipamSuite(target: Target) {
  const test = suite(`podway ipam on ${target.name}`);
  let spec = '';
  let kv: KvStore;
  let work = '';
  test.before.each(async () => {
    ({ spec, kv } = await target.open());
    work = tempDir();
    writeFileSync(path.join(work, 'cluster.yaml'), CLUSTER);
    writeFileSync(path.join(work, 'tiny.yaml'), SMALL_POOL);
  });
  test.after.each(async () => {
    await kv.close();
  });
  const ds = () => ['--datastore', spec];

  test('check that could not ask the podway run named (--control) finds no problems but says what it did not check, exit 5 (not 0)', async () => {
    await ok(['apply', '-f', path.join(work, 'cluster.yaml'), ...ds()]);
    const sock = path.join(work, 'no-podway.sock');
    const r = await podway(['ipam', 'check', '--control', sock, ...ds()]);
    assert.is(r.code, 5, r.err + r.out);
    assert.ok(r.out.includes(`  not checked: podway run on ${sock} did not answer`), r.out);
    assert.match(r.out, /\nCheck incomplete; found 0 problems in what was checked; not checked: this node's workload endpoints missing their interface \(podway run on [^\n]* did not answer[^\n]*; this node's orphan pod interfaces \([^\n]*\)\.\n$/);
    assert.not.match(r.out, 'Check complete');
    const j = await podway(['ipam', 'check', '-o', 'json', '--control', sock, ...ds()]);
    assert.is(j.code, 5, j.err);
    const report = JSON.parse(j.out);
    assert.is(report.problemCount, 0);
    assert.is(report.notChecked.length, 2, j.out);
  });

  test('assign 5, show and show --show-blocks, check clean, plant a leak, check names it, release', async () => {
    await ok(['apply', '-f', path.join(work, 'cluster.yaml'), ...ds()]);
    const assigned = (await okSpawned(['ipam', 'assign', '--node', 'node1', '--count', '5', '--handle', 'k8s-pod-network.abc', ...ds()])).trim().split('\n');
    assert.is(assigned.length, 5, `five addresses: ${assigned.join(' ')}`);
    assert.is(new Set(assigned).size, 5);
    for (const ip of assigned) assert.match(ip, /^10\.244\.\d+\.\d+$/);
    // A fresh block hands out its ordinals in order: one /26, from its base.
    const cidr = block26(assigned[0]!);
    assert.ok(assigned.every((ip) => block26(ip) === cidr));
    assert.is(`${assigned[0]}/26`, cidr);

    assert.is(await ok(['ipam', 'show', ...ds()]), [
      '+----------+---------------+-----------+------------+--------------+',
      '| GROUPING |     CIDR      | IPS TOTAL | IPS IN USE |   IPS FREE   |',
      '+----------+---------------+-----------+------------+--------------+',
      '| IP Pool  | 10.244.0.0/16 |     65536 | 5 (0%)     | 65531 (100%) |',
      '+----------+---------------+-----------+------------+--------------+',
      '',
    ].join('\n'));
    const blocks = await ok(['ipam', 'show', '--show-blocks', ...ds()]);
    const w = Math.max(13, cidr.length);
    assert.ok(blocks.includes(`| IP Pool  | ${'10.244.0.0/16'.padEnd(w)} |     65536 | 5 (0%)     | 65531 (100%) |\n`), blocks);
    assert.ok(blocks.includes(`| Block    | ${cidr.padEnd(w)} |        64 | 5 (8%)     | 59 (92%)     |\n`), blocks);
    const json = JSON.parse(await ok(['ipam', 'show', '--show-blocks', '-o', 'json', ...ds()]));
    assert.equal(json.map((p: { name: string; inUse: number }) => [p.name, p.inUse]), [['pool-a', 5]]);
    assert.equal(json[0].blocks.map((b: { cidr: string; affinity: string; inUse: number }) => [b.cidr, b.affinity, b.inUse]), [[cidr, 'host:node1', 5]]);

    // The pod that holds them: a WorkloadEndpoint listing the five (check calls unused ones leaked).
    writeFileSync(path.join(work, 'wep-abc.yaml'), wepYaml('node1-k8s-abc-eth0', 'node1', assigned, { containerID: 'abc' }));
    await ok(['apply', '-f', path.join(work, 'wep-abc.yaml'), ...ds()]);
    const clean = await podway(['ipam', 'check', ...ds()]);
    assert.is(clean.code, 0, clean.err + clean.out);
    assert.ok(clean.out.includes('Found 5 workload IPs.\nWorkloads and nodes are using 5 IPs.\n'), clean.out);
    assert.match(clean.out, /^Checking IPAM for inconsistencies\.\.\.\n\nLoading all IPAM blocks\.\.\.\nFound 1 IPAM blocks\.\n/);
    assert.ok(clean.out.includes(` IPAM block ${cidr} affinity=host:node1:\n`), clean.out);
    assert.ok(clean.out.endsWith('\nCheck complete; found 0 problems.\n'), clean.out);

    // The leak: an address written into the block for a handle that has no handle key.
    const entry = (await kv.list(BLOCK_PREFIX)).entries.find((e) => parseBlockKey(e.key)?.text === cidr)!;
    const block = AllocationBlock.decode(entry.value, parseBlockKey(entry.key)!);
    const [ordinal] = block.autoAssign(1, 'k8s-pod-network.leaked', { node: 'node1', pod: 'ghost', namespace: 'default' });
    block.sequenceNumber += 1n;
    assert.ok(await kv.update(entry.key, block.encode(), entry.modRevision), 'planted the leak');
    const leakedIp = block.ordinalToIp(ordinal!);
    assert.is(await kv.get(`${HANDLE_PREFIX}k8s-pod-network.leaked`), null);

    // Two problems: its handle does not exist, and nobody uses it (no timestamp: judged at once).
    const dirty = await spawned(['ipam', 'check', ...ds()]);
    assert.is(dirty.code, 3, 'problems found: exit 3');
    const attrs = 'attrs Main:k8s-pod-network.leaked Extra:namespace=default,node=node1,pod=ghost';
    assert.ok(dirty.out.includes(` IPAM block ${cidr} affinity=host:node1:\n  ${leakedIp} held by handle k8s-pod-network.leaked, which does not exist; ${attrs}\n`), dirty.out);
    assert.ok(dirty.out.includes(`\n  ${leakedIp} leaked: allocated, used by no workload or node; ${attrs}\nFound 1 IPs that are allocated in IPAM but not actually in use.\n`), dirty.out);
    assert.ok(dirty.out.endsWith('\nCheck complete; found 2 problems.\n'), dirty.out);
    const dirtyJson = await podway(['ipam', 'check', '-o', 'json', ...ds()]);
    assert.is(dirtyJson.code, 3);
    const report = JSON.parse(dirtyJson.out);
    assert.is(report.problemCount, 2);
    assert.equal(report.problems.map((p: { kind: string; ips?: string[]; ip?: string }) => [p.kind, p.ips ?? p.ip]), [['address-without-handle', [leakedIp]], ['leaked', leakedIp]]);
    assert.match(await ok(['ipam', 'show', ...ds()]), /\| 6 \(0%\) +\| 65530 \(100%\) \|/);

    // release --ip frees the leaked one; release --handle the pod's five.
    assert.is(await okSpawned(['ipam', 'release', '--ip', leakedIp, ...ds()]), `Successfully released IP address ${leakedIp}\n`);
    assert.is((await podway(['ipam', 'check', ...ds()])).code, 0);
    // The pod's handle is refused while its endpoint lists the addresses, naming it; nothing released.
    const live = await podway(['ipam', 'release', '--handle', 'k8s-pod-network.abc', ...ds()]);
    assert.is(live.code, 1);
    assert.ok(live.err.startsWith(`podway: IP address ${assigned[0]} is in use by Workload(default/node1-k8s-abc-eth0) on node node1; `), live.err);
    assert.ok(live.err.endsWith('delete the endpoint (or node) first, or pass --force; nothing was released\n'), live.err);
    assert.match(await ok(['ipam', 'show', ...ds()]), /\| 5 \(0%\) /);
    await ok(['delete', 'wep', 'node1-k8s-abc-eth0', ...ds()]);
    // Used by nobody now, but `ipam assign` dated them seconds ago: an ADD may be in flight
    // (assigned, endpoint not yet written), so refused like an address in use, naming why.
    const fresh = await podway(['ipam', 'release', '--handle', 'k8s-pod-network.abc', ...ds()]);
    assert.is(fresh.code, 1, fresh.out);
    assert.match(fresh.err, new RegExp(`^podway: IP address ${assigned[0]!.replace(/\./g, '\\.')} was allocated \\d+s ago \\(less than the grace period 15m0s\\) and is used by nothing yet; `));
    assert.ok(fresh.err.endsWith('wait, pass a shorter --grace-period, or pass --force; nothing was released\n'), fresh.err);
    assert.match(await ok(['ipam', 'show', ...ds()]), /\| 5 \(0%\) /, 'nothing released');
    assert.is(await ok(['ipam', 'release', '--handle', 'k8s-pod-network.abc', '--grace-period', '0', ...ds()]),
      `Successfully released 5 IP address(es) of handle k8s-pod-network.abc: ${assigned.join(', ')}\n`);
    assert.is(await kv.get(`${HANDLE_PREFIX}k8s-pod-network.abc`), null, 'the handle key is gone');
    assert.match(await ok(['ipam', 'show', ...ds()]), /\| IP Pool  \| 10\.244\.0\.0\/16 \|     65536 \| 0 \(0%\)     \| 65536 \(100%\) \|/);
    const again = await spawned(['ipam', 'release', '--handle', 'k8s-pod-network.abc', ...ds()]);
    assert.is(again.code, 1);
    assert.is(again.err, 'podway: handle k8s-pod-network.abc does not exist\n');
    // A handle counting an address no block holds (an ADD that failed between the two writes, a
    // full disk): deleted by release --handle, not left with "released 0".
    assert.ok(await kv.create(`${HANDLE_PREFIX}k8s-pod-network.orphan`, '{"block":{"10.244.0.0/26":1},"deleted":false}'));
    assert.is(await ok(['ipam', 'release', '--handle', 'k8s-pod-network.orphan', ...ds()]),
      'Successfully released 0 IP address(es) of handle k8s-pod-network.orphan; the handle held none and is deleted\n');
    assert.is(await kv.get(`${HANDLE_PREFIX}k8s-pod-network.orphan`), null, 'the empty handle is gone');
    const twice = await podway(['ipam', 'release', '--ip', assigned[0]!, ...ds()]);
    assert.is(twice.code, 1);
    assert.is(twice.err, `podway: IP address ${assigned[0]} is not assigned\n`);
  });

  test('a full pool: strict affinity and one block per node; assign exits 1 naming the pool and the limit', async () => {
    await ok(['apply', '-f', path.join(work, 'cluster.yaml'), ...ds()]);
    await ok(['apply', '-f', path.join(work, 'tiny.yaml'), ...ds()]);
    assert.is(await okSpawned(['ipam', 'configure', '--strictaffinity', 'true', '--max-blocks-per-host', '1', ...ds()]),
      'Successfully set StrictAffinity to: true\nSuccessfully set MaxBlocksPerHost to: 1\n');
    assert.is((await kv.get('/calico/ipam/v2/config'))!.value, '{"strict_affinity":true,"auto_allocate_blocks":true,"maxBlocksPerHost":1}');
    assert.match(await ok(['ipam', 'show', '--show-configuration', ...ds()]), /\| StrictAffinity     \| true  \|\n\| AutoAllocateBlocks \| true  \|\n\| MaxBlocksPerHost   \|     1 \|/);

    const r = await spawned(['ipam', 'assign', '--node', 'node2', '--count', '5', '--pool', '10.250.0.0/24', '--handle', 'h-full', ...ds()]);
    assert.is(r.code, 1, r.err + r.out);
    const got = r.out.trim().split('\n');
    assert.is(got.length, 4, 'the one /30 block held four; they are printed (and held) even though the call failed');
    assert.ok(got.every((ip) => ip.startsWith('10.250.0.')), r.out);
    assert.is(r.err, 'podway: assigned 4 of 5 address(es): pools [10.250.0.0/24]: node node2 has reached maxBlocksPerHost=1 blocks and they are full (a node at its block limit does not borrow)\n');
    assert.match(await ok(['ipam', 'show', ...ds()]), /\| IP Pool  \| 10\.250\.0\.0\/24 \|       256 \| 4 \(2%\)     \| 252 \(98%\) +\|/);

    // --ip outside node2's block (nobody's yet) claims that block for node1; --pool with --ip is refused.
    const node2Base = ipToInt(got[0]!) & ~3;
    assert.ok(got.every((ip) => (ipToInt(ip) & ~3) === node2Base), 'all four from one /30');
    const elsewhere = intToIp(ipToInt('10.250.0.0') + ((node2Base + 4 - ipToInt('10.250.0.0')) % 256) + 1);
    const both = await podway(['ipam', 'assign', '--node', 'node1', '--ip', elsewhere, '--pool', '10.250.0.0/24', ...ds()]);
    assert.is(both.code, 2, 'a conflicting option: a usage error');
    assert.match(both.err, /--pool chooses pools for --count/);
    assert.is(await ok(['ipam', 'assign', '--node', 'node1', '--ip', elsewhere, ...ds()]), `${elsewhere}\n`);
    // ... and an address in node2's block is refused to node1 under strict affinity.
    const strict = await podway(['ipam', 'assign', '--node', 'node1', '--ip', intToIp(node2Base + 3), ...ds()]);
    assert.is(strict.code, 1);
    assert.ok(strict.err.includes(`block ${intToIp(node2Base)}/30 is affine to host:node2 and strict_affinity is set`), strict.err);
    const borrowedNone = await ok(['ipam', 'show', '--show-borrowed', ...ds()]);
    assert.is(borrowedNone.trim().split('\n').length, 4, 'no borrowed addresses: header and borders only');
    // Without strict affinity node1 may borrow: release one of node2's and take it for node1. The
    // block limit goes with it (libcalico-go refuses MaxBlocksPerHost without StrictAffinity).
    assert.is(await ok(['ipam', 'configure', '--strictaffinity', 'false', '--max-blocks-per-host', '0', ...ds()]), 'Successfully set StrictAffinity to: false\nSuccessfully set MaxBlocksPerHost to: 0\n');
    await ok(['ipam', 'release', '--ip', got[3]!, '--grace-period', '0', ...ds()]);
    assert.is(await ok(['ipam', 'assign', '--node', 'node1', '--ip', got[3]!, '--handle', 'borrower', ...ds()]), `${got[3]}\n`);
    const borrowed = (await ok(['ipam', 'show', '--show-borrowed', ...ds()])).split('\n');
    const cells = (line: string) => line.split('|').slice(1, -1).map((c) => c.trim());
    assert.equal(cells(borrowed[1]!), ['IP', 'BORROWING-NODE', 'BLOCK', 'BLOCK OWNER', 'TYPE', 'ALLOCATED-TO']);
    assert.equal(cells(borrowed[3]!), [got[3], 'node1', `${intToIp(node2Base)}/30`, 'node2', '', '']);
    assert.ok(borrowed[3]!.startsWith(`| ${got[3]} `), 'the address left-aligned');
    assert.is(borrowed.length, 6);
    // A borrowed address is no problem; the ones no endpoint lists are (leaked), and only those.
    const borrowCheck = await podway(['ipam', 'check', '-o', 'json', '--grace-period', '0', ...ds()]);
    assert.is(borrowCheck.code, 3, borrowCheck.err);
    const leakedOnly = JSON.parse(borrowCheck.out).problems as { kind: string; ip: string }[];
    assert.equal(leakedOnly.map((p) => p.kind), leakedOnly.map(() => 'leaked'));
    assert.equal(leakedOnly.map((p) => p.ip).sort(), [...got, elsewhere].sort());

    const ghost = await podway(['ipam', 'assign', '--node', 'ghost', ...ds()]);
    assert.is(ghost.code, 1);
    assert.match(ghost.err, /node ghost does not exist/);
  });

  test('IPv6: assign --ipv6 from a /64 pool (/122 blocks), show and check with both families, release', async () => {
    await ok(['apply', '-f', path.join(work, 'cluster.yaml'), ...ds()]);
    writeFileSync(path.join(work, 'v6.yaml'), 'apiVersion: projectcalico.org/v3\nkind: IPPool\nmetadata: {name: pool-v6}\nspec: {cidr: "fd00:10:244::/64", vxlanMode: Always}\n');
    await ok(['apply', '-f', path.join(work, 'v6.yaml'), ...ds()]);
    assert.match(await ok(['ipam', 'assign', '--node', 'node1', ...ds()]), /^10\.244\.\d+\.\d+\n$/, 'IPv4 stays the default');
    const v6 = (await ok(['ipam', 'assign', '--node', 'node1', '--ipv6', '--count', '3', '--handle', 'k8s-pod-network.six', ...ds()])).trim().split('\n');
    assert.is(v6.length, 3);
    for (const ip of v6) assert.match(ip, /^fd00:10:244:[0-9a-f:]+$/);
    const blocks = await ok(['ipam', 'show', '--show-blocks', ...ds()]);
    assert.match(blocks, /\| IP Pool  \| fd00:10:244::\/64 +\| 1\.8447e\+19 \| 3 \(0%\) +\| 1\.8447e\+19 \(100%\) \|/);
    assert.match(blocks, /\| Block    \| fd00:10:244:[0-9a-f:]*\/122 +\| +64 \| 3 \(5%\) +\| 61 \(95%\) +\|/);
    const clean = await podway(['ipam', 'check', '--grace-period', '0', ...ds()]);
    assert.is(clean.code, 3, clean.err + clean.out);
    assert.ok(clean.out.includes('Found 2 IPAM blocks.'), clean.out);
    for (const ip of v6) assert.ok(clean.out.includes(`\n  ${ip} leaked: allocated, used by no workload or node; attrs Main:k8s-pod-network.six Extra:node=node1,timestamp=`), clean.out);
    assert.ok(clean.out.includes('\nFound 4 IPs that are allocated in IPAM but not actually in use.\n'), clean.out);
    assert.ok(clean.out.includes('  fd00:10:244::/64\n'), clean.out);
    assert.is(await ok(['ipam', 'release', '--ip', v6[2]!, '--force', ...ds()]), `Successfully released IP address ${v6[2]}\n`);
    // a handle given with what follows a carriage return (Calico keeps the name up to it): the same handle
    assert.is(await ok(['ipam', 'release', '--handle', 'k8s-pod-network.six\rextra', '--grace-period', '0', ...ds()]),
      `Successfully released 2 IP address(es) of handle k8s-pod-network.six\rextra: ${v6[0]}, ${v6[1]}\n`);
    const none = await podway(['ipam', 'assign', '--node', 'node1', '--ipv6', '--pool', 'pool-a', ...ds()]);
    assert.is(none.code, 1);
    assert.match(none.err, /pool-a\) does not exist, or is not enabled/, 'an IPv4 pool is no IPv6 pool');
  });

  test('check against workloads and nodes: a killed ADD, a deleted node, a released endpoint address; show --ip; release guards and --from-report', async () => {
    await ok(['apply', '-f', path.join(work, 'cluster.yaml'), ...ds()]);
    const ipam = new Ipam(kv, { blockSearch: 'sequential' });
    const hourAgo = new Date(Date.now() - 3_600_000).toISOString();
    const pod = (name: string, stamp: string) => ({ node: 'node1', namespace: 'default', pod: name, timestamp: stamp });
    const one = async (node: string, handle: string, attrs: Record<string, string>) => {
      const r = await ipam.autoAssign({ node, count: 1, handleId: handle, attrs });
      assert.is(r.ips.length, 1, String(r.errors));
      return r.ips[0]!;
    };
    // A running pod and its endpoint; node1's VXLAN tunnel address, named by the Node.
    const web = await one('node1', 'k8s-pod-network.c0web', pod('web', hourAgo));
    const tunnel = await one('node1', 'vxlan-tunnel-addr-node1', { node: 'node1', type: 'vxlanTunnelAddress' });
    // A CNI ADD killed after IPAM and before the endpoint, an hour ago; another one just now (in progress).
    const killed = await one('node1', 'k8s-pod-network.c1killed', pod('killed', hourAgo));
    const fresh = await one('node1', 'k8s-pod-network.c2fresh', pod('fresh', new Date().toISOString()));
    // A node deleted behind IPAM's back: its tunnel address stays allocated.
    await kv.create(`${NODE_PREFIX}gone`, '{"kind":"Node","apiVersion":"projectcalico.org/v3","metadata":{"name":"gone"},"spec":{}}');
    const goneTunnel = await one('gone', 'vxlan-tunnel-addr-gone', { node: 'gone', type: 'vxlanTunnelAddress' });
    assert.ok(await kv.delete(`${NODE_PREFIX}gone`));
    // An endpoint whose address was released under it.
    const orphan = await one('node1', 'k8s-pod-network.c3orphan', pod('orphan', hourAgo));
    writeFileSync(path.join(work, 'users.yaml'), [
      wepYaml('node1-k8s-web-eth0', 'node1', [web], { containerID: 'c0web', pod: 'web' }),
      CLUSTER.split('---\n')[1]!.replace('spec: {', `spec: {ipv4VXLANTunnelAddr: ${tunnel}, `),
      wepYaml('node1-k8s-orphan-eth0', 'node1', [orphan], { containerID: 'c3orphan', pod: 'orphan' }),
    ].join('---\n'));
    await ok(['apply', '-f', path.join(work, 'users.yaml'), ...ds()]);
    assert.equal((await ipam.releaseIps([orphan])).released, [orphan]);
    // IPAM alone sees nothing wrong: every handle and block agrees.
    assert.equal(await ipam.check(), []);

    const r = await podway(['ipam', 'check', ...ds()]);
    assert.is(r.code, 3, r.err + r.out);
    assert.ok(r.out.includes('Loading all nodes.\nFound 1 node tunnel IPs.\n\nLoading all workload endpoints.\nFound 2 workload IPs.\nWorkloads and nodes are using 3 IPs.\n'), r.out);
    assert.ok(r.out.includes([
      'Scanning for IPs that are allocated but not actually in use...',
      `  ${killed} leaked: allocated, used by no workload or node; attrs Main:k8s-pod-network.c1killed Extra:namespace=default,node=node1,pod=killed,timestamp=${hourAgo}`,
      `  ${goneTunnel} leaked: allocated, used by no workload or node; its node gone no longer exists; attrs Main:vxlan-tunnel-addr-gone Extra:node=gone,type=vxlanTunnelAddress`,
      'Found 2 IPs that are allocated in IPAM but not actually in use.',
      `Left 1 unused allocations younger than the 15m0s grace period unjudged (an ADD in progress allocates before it writes its endpoint): ${fresh}`,
      'Scanning for IPs that are in use by a workload or node but not allocated in IPAM...',
      `  ${orphan} in use by Workload(default/node1-k8s-orphan-eth0) and in an active IP pool but has no IPAM allocation (IPAM may hand it out again)`,
      'Found 0 in-use IPs that are not in active IP pools.',
      'Found 1 in-use IPs that are in active IP pools but have no corresponding IPAM allocation.',
    ].join('\n')), r.out);
    assert.ok(r.out.endsWith('\nCheck complete; found 3 problems.\n'), r.out);
    // With no grace period the fresh allocation is judged too.
    const judged = await auditIpam(kv, { gracePeriodMs: 0 });
    assert.equal(judged.problems.map((p) => [p.kind, p.ip]).sort(), [['leaked', killed], ['leaked', fresh], ['leaked', goneTunnel], ['not-allocated', orphan]].sort());

    // show --ip: one address, its holder and its user.
    assert.is((await okSpawned(['ipam', 'show', '--ip', web, ...ds()])).replace(/Sequence number: \d+/, 'Sequence number: SEQ'), [
      `IP ${web} is in use`, 'Handle ID: k8s-pod-network.c0web', 'Attributes:', '  namespace: default', '  node: node1', '  pod: web',
      `  timestamp: ${hourAgo}`, 'Pool: pool-a (10.244.0.0/16)', `Block: ${block26(web)} affinity=host:node1`, 'Sequence number: SEQ',
      'Used by: Workload(default/node1-k8s-web-eth0) on node node1 (ipNetworks)', '',
    ].join('\n'));
    const orphanShow = await ok(['ipam', 'show', '--ip', orphan, ...ds()]);
    assert.ok(orphanShow.startsWith(`IP ${orphan} is not assigned\nPool: pool-a (10.244.0.0/16)\nUsed by: Workload(default/node1-k8s-orphan-eth0) on node node1 (ipNetworks)\nProblem: ${orphan} in use by`), orphanShow);
    const json = JSON.parse(await ok(['ipam', 'show', '--ip', goneTunnel, '-o', 'json', ...ds()]));
    assert.equal([json.allocated, json.handle, json.state, json.owners], [true, 'vxlan-tunnel-addr-gone', 'leaked', []]);

    // release --ip of what a live endpoint or node uses: refused naming the owner, nothing released.
    const refused = await spawned(['ipam', 'release', '--ip', killed, '--ip', web, '--ip', tunnel, ...ds()]);
    assert.is(refused.code, 1);
    assert.is(refused.err, `podway: IP address ${web} is in use by Workload(default/node1-k8s-web-eth0) on node node1; `
      + `IP address ${tunnel} is in use by Node(node1) (ipv4VXLANTunnelAddr): releasing them lets IPAM hand them out again while still in use; `
      + 'delete the endpoint (or node) first, or pass --force; nothing was released\n');
    assert.ok(await ipam.allocationOf(killed), 'the unused one was not released either');
    const forced = await spawned(['ipam', 'release', '--ip', tunnel, '--force', ...ds()]);
    assert.is(forced.code, 0, forced.err);
    assert.is(forced.out, `Successfully released IP address ${tunnel}\n`);
    assert.is(forced.err, `podway: warning: releasing ${tunnel} although Node(node1) (ipv4VXLANTunnelAddr) uses it (--force)\n`);

    // The report, then the world moves on before the release: the killed ADD's endpoint appears at last.
    // Handles holding no address: a stale one, and one whose ADD, at report time, had written its handle but not yet its block.
    const stale = `{"block":{"${block26(web)}":1},"deleted":false}`;
    assert.ok(await kv.create(`${HANDLE_PREFIX}k8s-pod-network.c8stale`, stale));
    assert.ok(await kv.create(`${HANDLE_PREFIX}k8s-pod-network.c9inflight`, stale));
    const reportFile = path.join(work, 'report.json');
    const reported = await podway(['ipam', 'check', '-o', reportFile, ...ds()]);
    assert.is(reported.code, 3);
    assert.ok(reported.out.endsWith(`Report written to ${reportFile}.\n`), reported.out);
    const report = JSON.parse(readFileSync(reportFile, 'utf8'));
    assert.equal(report.allocations.filter((a: { state: string }) => a.state === 'leaked').map((a: { ip: string }) => a.ip).sort(), [killed, goneTunnel].sort());
    assert.is(report.allocations.find((a: { ip: string }) => a.ip === web).owners[0], 'Workload(default/node1-k8s-web-eth0)');
    assert.equal(report.leakedHandles.map((h: { id: string }) => h.id), ['k8s-pod-network.c8stale', 'k8s-pod-network.c9inflight']);
    const entry = (await kv.get(`${BLOCK_PREFIX}ipv4/block/${block26(web).replace('/', '-')}`))!;
    const inflight = AllocationBlock.decode(entry.value, parseBlockKey(entry.key)!);
    inflight.autoAssign(1, 'k8s-pod-network.c9inflight', pod('inflight', new Date().toISOString()));
    inflight.sequenceNumber += 1n;
    assert.ok(await kv.update(entry.key, inflight.encode(), entry.modRevision));
    const lateKey = `${RES}workloadendpoints/default/node1-k8s-killed-eth0`;
    assert.ok(await kv.create(lateKey, JSON.stringify({ kind: 'WorkloadEndpoint', apiVersion: 'projectcalico.org/v3',
      metadata: { name: 'node1-k8s-killed-eth0', namespace: 'default' }, spec: { node: 'node1', interfaceName: 'calikilled', ipNetworks: [`${killed}/32`] } })));
    const released = await okSpawned(['ipam', 'release', '--from-report', reportFile, ...ds()]);
    assert.ok(released.includes(`  skipped ${killed}: in use by Workload(default/node1-k8s-killed-eth0) now\n`), released);
    assert.ok(released.includes(`  released ${goneTunnel} (handle vxlan-tunnel-addr-gone)\n`), released);
    assert.ok(released.endsWith([
      'Released 1 IPs; skipped 1.', '  deleted handle k8s-pod-network.c8stale', '  skipped handle k8s-pod-network.c9inflight: holds IPs now',
      'Deleted 1 handles; skipped 1.', ''].join('\n')), released);
    assert.is(await kv.get(`${HANDLE_PREFIX}k8s-pod-network.c8stale`), null);
    assert.is(await ipam.allocationOf(goneTunnel), null);
    assert.is(await kv.get(`${HANDLE_PREFIX}vxlan-tunnel-addr-gone`), null, 'the handle went with its last address');

    // An address released and assigned again after the report has a new sequence number: skipped.
    await kv.delete(lateKey);
    const second = path.join(work, 'second.json');
    await podway(['ipam', 'check', '-o', second, ...ds()]);
    assert.equal((await ipam.releaseIps([killed])).released, [killed]);
    await ipam.assignIp({ ip: killed, handleId: 'k8s-pod-network.c1killed', attrs: pod('killed', hourAgo), node: 'node1' });
    assert.match(await ok(['ipam', 'release', '--from-report', second, ...ds()]), `  skipped ${killed}: assigned again since the report\n`);
    assert.ok(await ipam.allocationOf(killed));
    // Reports of another cluster, and files that are no report, are refused.
    writeFileSync(path.join(work, 'other.json'), JSON.stringify({ ...report, clusterGUID: 'ffff' }));
    await kv.create(`${RES}clusterinformations/default`, '{"kind":"ClusterInformation","apiVersion":"projectcalico.org/v3","metadata":{"name":"default"},"spec":{"clusterGUID":"abcd"}}');
    const other = await podway(['ipam', 'release', '--from-report', path.join(work, 'other.json'), ...ds()]);
    assert.is(other.code, 1);
    assert.match(other.err, 'is of another cluster (clusterGUID ffff, this datastore\'s is abcd); refusing to release');
    const notReport = await podway(['ipam', 'release', '--from-report', path.join(work, 'users.yaml'), ...ds()]);
    assert.is(notReport.code, 1);
    assert.match(notReport.err, /users\.yaml is not JSON/);
  });

  test('check: an address two endpoints use, one held for another pod; an endpoint on a node that does not exist', async () => {
    await ok(['apply', '-f', path.join(work, 'cluster.yaml'), ...ds()]);
    const ipam = new Ipam(kv);
    const [a] = (await ipam.autoAssign({ node: 'node1', count: 1, handleId: 'k8s-pod-network.caaa', attrs: { node: 'node1', namespace: 'default', pod: 'a' } })).ips;
    writeFileSync(path.join(work, 'two.yaml'), wepYaml('node1-k8s-a-eth0', 'node1', [a!], { containerID: 'caaa', pod: 'a' })
      + '---\n' + wepYaml('node1-k8s-b-eth0', 'node1', [a!], { containerID: 'cbbb', pod: 'b' })
      + '---\n' + wepYaml('ghost-k8s-c-eth0', 'ghost', ['10.99.5.5'], { pod: 'c' }, 'prod'));
    await ok(['apply', '-f', path.join(work, 'two.yaml'), ...ds()]);
    const r = await podway(['ipam', 'check', '-o', 'json', ...ds()]);
    assert.is(r.code, 3, r.err);
    const problems = (JSON.parse(r.out).problems as { kind: string; message: string }[]).map((p) => [p.kind, p.message]);
    assert.equal(problems, [
      ['endpoint-on-missing-node', 'Workload(prod/ghost-k8s-c-eth0) is on node "ghost", which does not exist (a deleted node\'s endpoint: the address stays held while it is listed)'],
      ['owner-mismatch', `${a} in use by Workload(default/node1-k8s-b-eth0) but held for pod default/a (releasing that holder frees an address in use); attrs Main:k8s-pod-network.caaa Extra:namespace=default,node=node1,pod=a`],
      ['multiple-owners', `${a} has multiple owners: Workload(default/node1-k8s-a-eth0), Workload(default/node1-k8s-b-eth0)`],
    ]);
    const table = (await podway(['ipam', 'check', ...ds()])).out;
    assert.ok(table.includes('  10.99.5.5 in use by Workload(prod/ghost-k8s-c-eth0) is not in any active IP pool (not IPAM\'s: not counted as a problem).\nFound 1 in-use IPs that are not in active IP pools.\n'), table);
    assert.ok(table.endsWith('\nCheck complete; found 3 problems.\n'), table);
  });

  test('release --from-report re-checks with the report\'s grace period unless --grace-period is given', async () => {
    await ok(['apply', '-f', path.join(work, 'cluster.yaml'), ...ds()]);
    const ipam = new Ipam(kv);
    const now = new Date().toISOString();
    const [a] = (await ipam.autoAssign({ node: 'node1', count: 1, handleId: 'k8s-pod-network.cyoung', attrs: { node: 'node1', timestamp: now } })).ips;
    const report = path.join(work, 'grace0.json');
    assert.is((await podway(['ipam', 'check', '--grace-period', '0', '-o', report, ...ds()])).code, 3);
    assert.is(JSON.parse(readFileSync(report, 'utf8')).gracePeriod, '0s');
    // given explicitly, the flag wins: the young address is skipped
    const strict = await ok(['ipam', 'release', '--from-report', report, '--grace-period', '15m', ...ds()]);
    assert.match(strict, `  skipped ${a}: allocated less than 15m0s ago`);
    assert.not.match(strict, 'Using the report');
    assert.ok(await ipam.allocationOf(a!));
    // without it, the report's 0s: released, and said
    const released = await ok(['ipam', 'release', '--from-report', report, ...ds()]);
    assert.ok(released.startsWith('Using the report\'s grace period 0s (not the default 15m0s; --grace-period overrides it).\n'), released);
    assert.match(released, `  released ${a} (handle k8s-pod-network.cyoung)`);
    assert.is(await ipam.allocationOf(a!), null);
  });

  test('release --from-report with two reports: only what both call leaked is released', async () => {
    await ok(['apply', '-f', path.join(work, 'cluster.yaml'), ...ds()]);
    const ipam = new Ipam(kv);
    const old = new Date(Date.now() - 3_600_000).toISOString();
    const [a] = (await ipam.autoAssign({ node: 'node1', count: 1, handleId: 'k8s-pod-network.caaa', attrs: { node: 'node1', timestamp: old } })).ips;
    const [b] = (await ipam.autoAssign({ node: 'node1', count: 1, handleId: 'k8s-pod-network.cbbb', attrs: { node: 'node1', timestamp: old } })).ips;
    const first = path.join(work, 'first.json');
    const second = path.join(work, 'second.json');
    assert.is((await podway(['ipam', 'check', '-o', first, ...ds()])).code, 3);
    // Between the reports b's endpoint shows up (a slow ADD); after the second it is gone again.
    const wepKey = `${RES}workloadendpoints/default/node1-k8s-b-eth0`;
    assert.ok(await kv.create(wepKey, JSON.stringify({ kind: 'WorkloadEndpoint', apiVersion: 'projectcalico.org/v3',
      metadata: { name: 'node1-k8s-b-eth0', namespace: 'default' }, spec: { node: 'node1', interfaceName: 'calib', ipNetworks: [`${b}/32`] } })));
    assert.is((await podway(['ipam', 'check', '-o', second, ...ds()])).code, 3);
    assert.ok(await kv.delete(wepKey));
    assert.is(await ok(['ipam', 'release', '--from-report', first, '--from-report', second, ...ds()]), [
      'Releasing 1 leaked IPs from the report, each re-checked first...', `  released ${a} (handle k8s-pod-network.caaa)`, 'Released 1 IPs; skipped 0.',
      'The report names no handles without IPs to delete.', ''].join('\n'));
    assert.is(await ipam.allocationOf(a!), null);
    assert.ok(await ipam.allocationOf(b!), 'b, in use at the second report, is kept');
  });

  test('release --from-report deletes the empty handle of an ADD stalled before its block write: the ADD\'s guarded write fails and counts its address in a new handle', async () => {
    await ok(['apply', '-f', path.join(work, 'cluster.yaml'), ...ds()]);
    const ipam = new Ipam(kv);
    // node1's block exists already: the stalled ADD's next block write is an update. Its one
    // address is recent (within the grace period), so the release leaves the block unwritten.
    assert.is((await ipam.autoAssign({ node: 'node1', count: 1, handleId: 'k8s-pod-network.cfirst', attrs: { node: 'node1', timestamp: new Date().toISOString() } })).ips.length, 1);
    const report = path.join(work, 'stalled.json');
    let released = '';
    const hooked = new HookedKv(kv);
    // The ADD has written its handle and stalls before its block write, through a check and the
    // release of that check's report (the handle holds no address in any block then).
    hooked.beforeWrite((op, key) => op === 'update' && key.startsWith(BLOCK_PREFIX), async () => {
      assert.is((await podway(['ipam', 'check', '-o', report, ...ds()])).code, 3);
      released = await ok(['ipam', 'release', '--from-report', report, ...ds()]);
    });
    const add = await new Ipam(hooked).autoAssign({ node: 'node1', count: 1, handleId: 'k8s-pod-network.cstalled', attrs: { node: 'node1', pod: 'stalled', namespace: 'default' } });
    assert.is(hooked.fired, 1);
    assert.ok(released.includes('  deleted handle k8s-pod-network.cstalled\n'), released);
    assert.ok(released.startsWith('The report names no leaked IPs to release.\n'), released);
    assert.is(add.ips.length, 1, JSON.stringify(add));
    assert.is((await ipam.allocationOf(add.ips[0]!))?.handleId, 'k8s-pod-network.cstalled');
    assert.is((await kv.get(`${HANDLE_PREFIX}k8s-pod-network.cstalled`))?.value, `{"block":{"${block26(add.ips[0]!)}":1},"deleted":false}`, 'the handle counts the address again');
    assert.equal(await ipam.check(), []);
  });

  test('release --handle: only what the check judged is released; an address reassigned, or given to the handle, since the check is kept (exit 4)', async () => {
    await ok(['apply', '-f', path.join(work, 'cluster.yaml'), ...ds()]);
    const ipam = new Ipam(kv);
    const old = { node: 'node1', pod: 'gone', namespace: 'default', timestamp: '2024-01-01T00:00:00Z' };
    const fresh = (pod: string) => ({ node: 'node1', pod, namespace: 'default', timestamp: new Date().toISOString() });
    const H = 'k8s-pod-network.chandle';
    // `release --handle H` on a store where `reassign` runs just before the first block write (the
    // release of the first address judged), through the real store underneath.
    const raceRelease = async (reassign: () => Promise<void>) => {
      const hooked = new HookedKv(kv);
      hooked.beforeWrite((op, key) => op === 'update' && key.startsWith(BLOCK_PREFIX), reassign);
      let out = '';
      let err = '';
      const code = await releaseChecked(hooked, { ip: [], handle: H, gracePeriod: '15m' }, (t) => void (out += t), (t) => void (err += t));
      assert.is(hooked.fired, 1, 'the change ran between the check and the release');
      return { code, out, err };
    };

    // A CNI DEL and ADD of one of the handle's addresses for a new pod: that pod keeps it.
    const [a, b] = (await ipam.autoAssign({ node: 'node1', count: 2, handleId: H, attrs: old })).ips;
    assert.ok(a && b);
    const first = await raceRelease(async () => {
      assert.equal((await ipam.releaseIps([a!])).released, [a]);
      await ipam.assignIp({ ip: a!, handleId: 'k8s-pod-network.cnew', attrs: fresh('new'), node: 'node1' });
    });
    assert.is(first.code, RELEASE_CHANGED_SINCE_CHECK);
    assert.is(first.err, `podway: ${a} was reassigned since the check; not released (held by handle k8s-pod-network.cnew now, not ${H})\n`);
    assert.is(first.out, `Successfully released 1 IP address(es) of handle ${H}: ${b}\n`);
    assert.is((await ipam.allocationOf(a!))?.handleId, 'k8s-pod-network.cnew', "the new pod's address is still allocated to it");
    assert.is(await ipam.allocationOf(b!), null);
    assert.is(await kv.get(`${HANDLE_PREFIX}${H}`), null, 'the handle went with its last address');
    assert.equal(await ipam.check(), []);

    // The handle given another address after the check (an ADD retried under the same container
    // ID): judged by nothing, so not released; what was judged is.
    const [c] = (await ipam.autoAssign({ node: 'node1', count: 1, handleId: H, attrs: old })).ips;
    let added = '';
    const second = await raceRelease(async () => {
      [added] = (await ipam.autoAssign({ node: 'node1', count: 1, handleId: H, attrs: fresh('retry') })).ips;
    });
    assert.is(second.code, RELEASE_CHANGED_SINCE_CHECK);
    assert.is(second.err, `podway: handle ${H} was given ${added} since the check; not released (run release --handle again to judge it)\n`);
    assert.is(second.out, `Successfully released 1 IP address(es) of handle ${H}: ${c}\n`);
    assert.is((await ipam.allocationOf(added))?.handleId, H, 'the new address stays with the handle');
    assert.ok(await kv.get(`${HANDLE_PREFIX}${H}`), 'the handle stays with it');
    assert.equal(await ipam.check(), []);

    // Unchanged since the check (another handle's address written in the same block meanwhile): all released.
    await ipam.releaseByHandle(H);
    const both = (await ipam.autoAssign({ node: 'node1', count: 2, handleId: H, attrs: old })).ips;
    const third = await raceRelease(async () => {
      assert.is((await ipam.autoAssign({ node: 'node1', count: 1, handleId: 'k8s-pod-network.cother', attrs: fresh('other') })).ips.length, 1);
    });
    assert.equal(third, { code: 0, out: `Successfully released 2 IP address(es) of handle ${H}: ${both.join(', ')}\n`, err: '' });
    assert.is(await kv.get(`${HANDLE_PREFIX}${H}`), null);
    assert.equal(await ipam.check(), []);
  });

  test('release --ip: an address freed and assigned to a new pod between the check and the release is kept (exit 4), by sequence number and, in a block without them, by attributes', async () => {
    await ok(['apply', '-f', path.join(work, 'cluster.yaml'), ...ds()]);
    const ipam = new Ipam(kv);
    // Leaked long ago (an old timestamp, no endpoint): the check passes it for release.
    const old = { node: 'node1', pod: 'gone', namespace: 'default', timestamp: '2024-01-01T00:00:00Z' };
    const [ip] = (await ipam.autoAssign({ node: 'node1', count: 1, handleId: 'k8s-pod-network.cgone', attrs: old })).ips;
    assert.ok(ip);
    const fresh = (pod: string) => ({ node: 'node1', pod, namespace: 'default', timestamp: new Date().toISOString() });
    /** Drops the block's per-address sequence numbers, as a writer that keeps none leaves it. */
    const dropSequenceNumbers = async () => {
      const e = (await kv.get(blockKey(parseNet(block26(ip!))!)))!;
      const block = AllocationBlock.decode(e.value, parseBlockKey(e.key)!);
      block.sequenceNumberForAllocation = null;
      assert.ok(await kv.update(e.key, block.encode(), e.modRevision));
    };
    // Run `release --ip` on a store whose first block write (the release) is preceded by a CNI
    // DEL and ADD of the same address for a new pod, through the real store underneath.
    const raceRelease = async (reassign: () => Promise<void>) => {
      const hooked = new HookedKv(kv);
      hooked.beforeWrite((op, key) => op === 'update' && key.startsWith(BLOCK_PREFIX), reassign);
      let out = '';
      let err = '';
      const code = await releaseChecked(hooked, { ip: [ip!], gracePeriod: '15m' }, (t) => void (out += t), (t) => void (err += t));
      assert.is(hooked.fired, 1, 'the reassignment ran between the check and the release');
      return { code, out, err };
    };

    const first = await raceRelease(async () => {
      assert.equal((await ipam.releaseIps([ip!])).released, [ip]);
      await ipam.assignIp({ ip: ip!, handleId: 'k8s-pod-network.cnew', attrs: fresh('new'), node: 'node1' });
    });
    assert.is(first.code, RELEASE_CHANGED_SINCE_CHECK);
    assert.is(first.out, '');
    assert.match(first.err, `podway: ${ip} was reassigned since the check; not released (held by handle k8s-pod-network.cnew now, not k8s-pod-network.cgone)\n`);
    assert.is((await ipam.allocationOf(ip!))?.handleId, 'k8s-pod-network.cnew', "the new pod's address is still allocated to it");
    assert.equal(await ipam.check(), []);

    // The same handle again (a pod's sandbox re-created under one container ID): the sequence number tells.
    await ipam.releaseByHandle('k8s-pod-network.cnew');
    await ipam.assignIp({ ip: ip!, handleId: 'k8s-pod-network.cgone', attrs: old, node: 'node1' });
    const second = await raceRelease(async () => {
      await ipam.releaseIps([ip!]);
      await ipam.assignIp({ ip: ip!, handleId: 'k8s-pod-network.cgone', attrs: fresh('gone'), node: 'node1' });
    });
    assert.is(second.code, RELEASE_CHANGED_SINCE_CHECK);
    assert.match(second.err, new RegExp(`^podway: ${ip!.replace(/\./g, '\\.')} was reassigned since the check; not released \\(assigned again since \\(sequence number \\d+, was \\d+\\)\\)\n$`));
    assert.ok(await ipam.allocationOf(ip!));

    // A block without per-address sequence numbers (and no handle): the attributes tell.
    await ipam.releaseIps([ip!]);
    await ipam.assignIp({ ip: ip!, handleId: null, attrs: old, node: 'node1' });
    await dropSequenceNumbers();
    const third = await raceRelease(async () => {
      await ipam.releaseIps([ip!]);
      await ipam.assignIp({ ip: ip!, handleId: null, attrs: fresh('third'), node: 'node1' });
      await dropSequenceNumbers();
    });
    assert.is(third.code, RELEASE_CHANGED_SINCE_CHECK);
    assert.match(third.err, `podway: ${ip} was reassigned since the check; not released (its attributes changed (`);
    assert.is((await ipam.allocationOf(ip!))?.secondary?.pod, 'third');

    // Unchanged since the check (a write to another address of the block meanwhile): released.
    await ipam.releaseIps([ip!]);
    await ipam.assignIp({ ip: ip!, handleId: 'k8s-pod-network.cgone', attrs: old, node: 'node1' });
    const other = await raceRelease(async () => {
      assert.is((await ipam.autoAssign({ node: 'node1', count: 1, handleId: 'k8s-pod-network.cother', attrs: fresh('other') })).ips.length, 1);
    });
    assert.equal(other, { code: 0, out: `Successfully released IP address ${ip}\n`, err: '' });
    assert.is(await ipam.allocationOf(ip!), null);
    assert.equal(await ipam.check(), []);
  });

  test('check agrees with delete node: clean before (tunnel address and endpoint in use), clean after (both released)', async () => {
    await ok(['apply', '-f', path.join(work, 'cluster.yaml'), ...ds()]);
    const ipam = new Ipam(kv);
    const [tunnel] = (await ipam.autoAssign({ node: 'node2', count: 1, handleId: 'vxlan-tunnel-addr-node2', attrs: { node: 'node2', type: 'vxlanTunnelAddress' } })).ips;
    const [w] = (await ipam.autoAssign({ node: 'node2', count: 1, handleId: 'k8s-pod-network.cw', attrs: { node: 'node2', namespace: 'default', pod: 'w' } })).ips;
    writeFileSync(path.join(work, 'node2.yaml'), CLUSTER.split('---\n')[2]!.replace('spec: {', `spec: {ipv4VXLANTunnelAddr: ${tunnel}, `)
      + '---\n' + wepYaml('node2-k8s-w-eth0', 'node2', [w!], { containerID: 'cw', pod: 'w' }));
    await ok(['apply', '-f', path.join(work, 'node2.yaml'), ...ds()]);
    const before = JSON.parse(await ok(['ipam', 'check', '-o', 'json', ...ds()]));
    assert.equal([before.problemCount, before.summary.inUse, before.summary.nodeIps, before.summary.workloadIps], [0, 2, 1, 1]);
    await ok(['delete', 'node', 'node2', ...ds()]);
    const after = JSON.parse(await ok(['ipam', 'check', '-o', 'json', ...ds()]));
    assert.equal([after.problemCount, after.summary.allocations], [0, 0]);
  });

  test('check -o yaml: calicoctl\'s -o FILE writes a file named yaml, with a warning; -o ./yaml and an existing file do not warn', async () => {
    await ok(['apply', '-f', path.join(work, 'cluster.yaml'), ...ds()]);
    const cwd = tempDir('podway-ipam-o-');
    const first = await spawned(['ipam', 'check', '-o', 'yaml', ...ds()], {}, cwd);
    assert.is(first.code, 0, first.err);
    assert.is(first.err, 'podway: warning: -o yaml is not an output format of ipam check: the JSON report was written to a new file named "yaml" '
      + '(-o takes table, json, or a FILE as calicoctl\'s; give -o ./yaml to mean the file)\n');
    assert.ok(first.out.endsWith('Report written to yaml.\n'), first.out);
    assert.is(JSON.parse(readFileSync(path.join(cwd, 'yaml'), 'utf8')).problemCount, 0);
    // The file exists now: writing it again was meant.
    const again = await spawned(['ipam', 'check', '-o', 'yaml', ...ds()], {}, cwd);
    assert.equal([again.code, again.err], [0, '']);
    const explicit = await spawned(['ipam', 'check', '-o', './wide', ...ds()], {}, cwd);
    assert.equal([explicit.code, explicit.err], [0, '']);
    assert.ok(readFileSync(path.join(cwd, 'wide'), 'utf8').includes('"problemCount": 0'));
    // json stays the format: printed, no file.
    const json = await spawned(['ipam', 'check', '-o', 'json', ...ds()], {}, cwd);
    assert.equal([json.code, json.err, JSON.parse(json.out).problemCount], [0, '', 0]);
    assert.throws(() => readFileSync(path.join(cwd, 'json')));
  });

  test('the datastore from PODWAY_DATASTORE; a file: datastore is refused with the reason', async () => {
    await ok(['apply', '-f', path.join(work, 'cluster.yaml')], { PODWAY_DATASTORE: spec });
    assert.match(await okSpawned(['ipam', 'assign', '--node', 'node2'], { PODWAY_DATASTORE: spec }), /^10\.244\.\d+\.\d+\n$/);
    assert.match(await ok(['ipam', 'show'], { PODWAY_DATASTORE: spec }), /\| 1 \(0%\) /);
    const file = await spawned(['ipam', 'show', '--datastore', `file:${path.join(work, 'cluster.yaml')}`]);
    assert.is(file.code, 1);
    assert.is(file.err, 'podway: file: datastores hold no IPAM data (blocks, handles, affinities); use etcd: or embedded:\n');
    const write = await podway(['ipam', 'release', '--ip', '10.244.0.1', '--datastore', `file:${path.join(work, 'cluster.yaml')}`]);
    assert.is(write.code, 1);
    assert.match(write.err, /file: datastores are read-only/);
  });

  return test;
}

ipamSuite(embeddedTarget).run();

const etcdSuite = ipamSuite(etcdTarget);
etcdSuite.after(stopEtcd);
etcdSuite.run();
