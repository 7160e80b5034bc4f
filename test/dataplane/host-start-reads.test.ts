/**
 * The start's host reads (host.ts readHostAtStart) against the kernel in a network namespace of
 * its own (runPrivateNetns): a veth pod with Calico's host-end MAC, its /32 and /128 routes and
 * permanent neighbour, learned routes (proto bird, metric 32) of both families, an underlay.
 * - read as three `ip -batch` runs (one per family flag: none, -4, -6), each read answering what
 *   the readers that run `ip` alone answer (readPodRoutesSync, readLearnedRoutesSync,
 *   readKernelRoutesSync, readLocalAddresses, `ip -j addr show`); `ip` counted by a wrapper on the
 *   PATH that logs each run and execs the real one;
 * - one command of a batch failing (the wrapper makes the -4 batch's main-table read name a device
 *   that does not exist: the real `ip` fails it, `-force` goes on): that read's error names it and
 *   says why, the other reads of that batch are still right;
 * - a batch the real `ip` gives up on (an argument it refuses ends it at once): its reads run
 *   alone, as before, with the same answers;
 * - no `ip` at all: every read failed, the main table's error says why.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { runPrivateNetns, sh } from '../helpers/netns';
import { readHostAtStart, readKernelRoutesSync, readLearnedRoutesSync, readLocalAddresses, readPodRoutesSync, splitIpBatch, type HostStartReads } from '../../src/dataplane/host';
import { LEARNED_ROUTE_METRIC, LEARNED_ROUTE_PROTO } from '../../src/dataplane/host-programmer';

runPrivateNetns();

const dir = mkdtempSync(path.join(tmpdir(), `podway-restart27-reads-${process.pid}-`));
const LOG = path.join(dir, 'ip.log');
const FAIL_ONE = path.join(dir, 'fail-one');
const GIVE_UP = path.join(dir, 'give-up');
const realIp = sh('sh', ['-c', 'command -v ip']).trim();
const bin = path.join(dir, 'bin');
const PATH = process.env.PATH ?? '';

test.after(() => {
  process.env.PATH = PATH;
  rmSync(dir, { recursive: true, force: true });
});

function setUp(): void {
  sh('mkdir', ['-p', bin]);
  // the wrapper: every run logged; FAIL_ONE: the -4 batch's main-table read names a missing device;
  // GIVE_UP: every batch starts with a table id `ip` refuses (it exits at once, 255)
  writeFileSync(path.join(bin, 'ip'), `#!/bin/sh
echo "$*" >> '${LOG}'
case "$*" in
  *'-4 -force -batch'*) if [ -e '${FAIL_ONE}' ]; then sed 's/^route show table main$/route show table main dev nosuchdev27/' | '${realIp}' "$@"; exit $?; fi ;;
esac
case "$*" in
  *-batch*) if [ -e '${GIVE_UP}' ]; then { echo 'route show table nosuchtable27'; cat; } | '${realIp}' "$@"; exit $?; fi ;;
esac
exec '${realIp}' "$@"
`);
  chmodSync(path.join(bin, 'ip'), 0o755);
  const ip = (...a: string[]) => sh('ip', a);
  ip('link', 'set', 'lo', 'up');
  // no link-local addresses (each comes with its link's carrier, up to a second later, tentative
  // first): the reads compared must see the same namespace
  sh('sysctl', ['-qw', 'net.ipv6.conf.default.addr_gen_mode=1']);
  ip('link', 'add', 'u0', 'type', 'veth', 'peer', 'name', 'u1');
  ip('addr', 'add', '10.77.0.1/24', 'dev', 'u0');
  ip('-6', 'addr', 'add', 'fd00:77::1/64', 'dev', 'u0', 'nodad');
  ip('link', 'set', 'u1', 'up');
  ip('link', 'set', 'u0', 'up');
  ip('link', 'add', 'calirs27', 'type', 'veth', 'peer', 'name', 'podrs27');
  ip('link', 'set', 'calirs27', 'address', 'ee:ee:ee:ee:ee:ee');
  ip('link', 'set', 'podrs27', 'up');
  ip('link', 'set', 'calirs27', 'up');
  ip('route', 'add', '10.244.1.5/32', 'dev', 'calirs27', 'scope', 'link');
  ip('neigh', 'add', '10.244.1.5', 'lladdr', '02:00:00:00:01:05', 'dev', 'calirs27', 'nud', 'permanent');
  ip('-6', 'route', 'add', 'fd00:244::5/128', 'dev', 'calirs27');
  ip('route', 'add', '10.88.0.0/16', 'via', '10.77.0.2', 'proto', 'bird', 'metric', '32');
  ip('-6', 'route', 'add', 'fd00:88::/64', 'via', 'fd00:77::2', 'proto', 'bird', 'metric', '32');
  ip('route', 'add', 'default', 'via', '10.77.0.9');
}

/** What readHostAtStart answers, without its time and the nft tables (compared on their own). */
const comparable = (r: HostStartReads) => ({ links: r.links === null ? null : JSON.parse(r.links), kernelRoutes: r.kernelRoutes, podRoutes: r.podRoutes, learned: r.learned, local: r.local });

/** The reads as the readers that run `ip` alone make them. */
async function alone() {
  return {
    links: JSON.parse(sh('ip', ['-j', 'addr', 'show'])),
    kernelRoutes: readKernelRoutesSync(),
    podRoutes: readPodRoutesSync(),
    learned: readLearnedRoutesSync(LEARNED_ROUTE_PROTO, LEARNED_ROUTE_METRIC),
    local: await readLocalAddresses(),
  };
}

/** readHostAtStart with the wrapper first on the PATH; the `ip` runs it made. */
async function readCounted(): Promise<{ reads: HostStartReads; runs: string[] }> {
  writeFileSync(LOG, '');
  process.env.PATH = `${bin}:${PATH}`;
  try {
    const reads = await readHostAtStart(LEARNED_ROUTE_PROTO, LEARNED_ROUTE_METRIC);
    return { reads, runs: readFileSync(LOG, 'utf8').trim().split('\n').filter(Boolean) };
  } finally {
    process.env.PATH = PATH;
  }
}

test('three `ip -batch` runs, one per family flag, answer every read as the readers running `ip` alone do', async () => {
  setUp();
  const want = await alone();
  // the namespace's own: something to find in each read
  assert.equal(want.podRoutes.map((r) => [r.ifname, r.ip ?? r.ip6, r.mac]), [['calirs27', 0x0af40105, '02:00:00:00:01:05'], ['calirs27', 'fd00:244::5', null]]);
  assert.equal(want.learned, [{ cidr: '10.88.0.0/16', via: '10.77.0.2', dev: 'u0' }, { cidr: 'fd00:88::/64', via: 'fd00:77::2', dev: 'u0' }]);
  assert.ok(want.local.v4?.includes('10.77.0.1') && want.local.v6?.includes('fd00:77::1'), JSON.stringify(want.local));
  const { reads, runs } = await readCounted();
  assert.equal(runs.sort(), ['-j -4 -force -batch -', '-j -6 -force -batch -', '-j -force -batch -'], `ip runs: ${runs.join(' | ')}`);
  assert.equal(comparable(reads), want);
  assert.ok(reads.nftTables !== null, 'nft list tables read');
});

test('one command of a batch failing: its read says which and why; the other reads of that batch, and the other batches, still right', async () => {
  const want = await alone();
  writeFileSync(FAIL_ONE, '');
  try {
    const { reads, runs } = await readCounted();
    assert.is(runs.length, 3, `no read run again alone: ${runs.join(' | ')}`);
    assert.instance(reads.kernelRoutes, Error);
    assert.match((reads.kernelRoutes as Error).message, /^ip -j -4 route show table main exited 1: Cannot find device "nosuchdev27"$/);
    assert.equal({ ...comparable(reads), kernelRoutes: want.kernelRoutes }, want, 'the rest as read alone');
  } finally {
    rmSync(FAIL_ONE, { force: true });
  }
});

test('a batch `ip` gives up on (an argument it refuses ends it): its reads run alone, the same answers', async () => {
  const want = await alone();
  writeFileSync(GIVE_UP, '');
  try {
    const { reads, runs } = await readCounted();
    const singles = runs.filter((r) => !r.includes('-batch'));
    assert.is(runs.length - singles.length, 3, runs.join(' | '));
    assert.is(singles.length, 10, `each read alone: ${singles.join(' | ')}`);
    assert.ok(singles.includes('-j -4 route show table main') && singles.includes('-j -6 route show table main') && singles.includes('-j addr show'), singles.join(' | '));
    assert.equal(comparable(reads), want);
  } finally {
    rmSync(GIVE_UP, { force: true });
  }
});

test('no `ip`: every read failed, the main table\'s error says why; nothing else concluded', async () => {
  process.env.PATH = path.join(dir, 'nothing-here');
  let reads: HostStartReads;
  try {
    reads = await readHostAtStart(LEARNED_ROUTE_PROTO, LEARNED_ROUTE_METRIC);
  } finally {
    process.env.PATH = PATH;
  }
  assert.is(reads.links, null);
  assert.instance(reads.kernelRoutes, Error);
  assert.match((reads.kernelRoutes as Error).message, /^ip -j -4 route show table main .*ENOENT/);
  assert.equal([reads.podRoutes, reads.learned, reads.local, reads.nftTables], [[], [], { v4: null, v6: null }, null]);
});

test('splitIpBatch: output it cannot attribute line by line is not guessed at', () => {
  const ok = { code: 0, stdout: '[]\n[{"dst":"default"}]\n', stderr: '' };
  assert.equal(splitIpBatch(ok, 2)?.map((r) => r.stdout), ['[]\n', '[{"dst":"default"}]\n']);
  assert.is(splitIpBatch(ok, 3), null, 'a line missing');
  assert.is(splitIpBatch({ ...ok, stdout: '[{"dst":"def[]\n[]\n' }, 2), null, 'a line that is not one JSON list (a command cut short)');
  assert.is(splitIpBatch({ ...ok, code: 255 }, 2), null, 'not an exit of -force');
  assert.is(splitIpBatch({ code: 1, stdout: '[]\n', stderr: '' }, 2), null, 'failed, but no command said so');
  const one = splitIpBatch({ code: 1, stdout: '[]\n', stderr: 'Cannot find device "x"\nCommand failed -:1\n' }, 2);
  assert.equal(one, [{ code: 1, stdout: '', stderr: 'Cannot find device "x"', error: null }, { code: 0, stdout: '[]\n', stderr: '', error: null }]);
  const none = splitIpBatch({ code: null, stdout: '', stderr: '', error: 'spawn ip ENOENT' }, 2);
  assert.equal(none?.map((r) => [r.code, r.error]), [[null, 'spawn ip ENOENT (ip -batch)'], [null, 'spawn ip ENOENT (ip -batch)']]);
});

test.run();
