// The one nft counter reader and its cache (dataplane/nft-counters.ts, observe/nft-cache.ts)
// against the kernel's nftables in a network namespace of its own (root, runPrivateNetns): every
// podway table in one nft run; a read reused within NFT_COUNTERS_MAX_AGE_MS and a new one after;
// requests that meet share a run; a table deleted under the reader or nft missing said as the part
// missing, the other tables still read, never a hang or a throw.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawnSync } from 'node:child_process';
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { runPrivateNetns, sh } from '../helpers/netns';
import { parseNftCounters, readNftCounters, tableKey, type NftTable } from '../../src/dataplane/nft-counters';
import { natCountersOf } from '../../src/dataplane/nft-nat';
import { TUNNEL_NFT_TABLE, tunnelDropsOf } from '../../src/dataplane/nft-tunnels';
import { NftCounterCache, NFT_COUNTERS_MAX_AGE_MS } from '../../src/observe/nft-cache';
import { Spawner } from '../../src/dataplane/spawner';

runPrivateNetns();

const NAT: NftTable = { family: 'ip', name: 'podway' };
const GUARD: NftTable = { family: 'inet', name: 'podway' };

/** podway's three tables with their named counters at these packet counts (bytes 100 each). */
function tables(natOut: number, spoofed: number, oldPort: number): void {
  const prog = `table ip podway\ndelete table ip podway\ntable inet podway\ndelete table inet podway\ntable inet podway_tunnels\ndelete table inet podway_tunnels
table ip podway {
  counter nat_flows { packets 3 bytes 0 }
  counter nat_out { packets ${natOut} bytes 100 }
  counter pod_transit { }
}
table inet podway {
  counter pod_spoofed { packets ${spoofed} bytes 100 }
  counter pod_tunnel { }
}
table inet podway_tunnels {
  counter vxlan { packets 999 bytes 99999 }
  counter vxlan_old_port { packets ${oldPort} bytes 100 }
}
table inet not_podway {
  counter nat_out { packets 77 bytes 77 }
}
`;
  nftProgram(prog);
}

function nftProgram(prog: string): void {
  const r = spawnSync('nft', ['-f', '-'], { input: prog, encoding: 'utf8', timeout: 20_000 });
  if (r.status !== 0) throw new Error(`nft -f: ${r.stderr}`);
}

test('one run reads every podway table: each table\'s own counters, another table\'s of the same name apart', async () => {
  sh('ip', ['link', 'set', 'lo', 'up']);
  tables(40, 5, 2);
  const r = await readNftCounters([NAT, GUARD, TUNNEL_NFT_TABLE]);
  assert.equal([...r.missing], []);
  const nat = natCountersOf(r.tables.get('ip podway')!);
  assert.is(nat.outPackets, 40);
  assert.is(nat.flows, 3);
  assert.is(nat.podSpoofed, undefined, 'no guard counter in the NAT table');
  assert.is(natCountersOf(r.tables.get('inet podway')!).podSpoofed, 5);
  assert.equal(tunnelDropsOf(r.tables.get('inet podway_tunnels')!), { vxlanOldPort: { packets: 2, bytes: 100 } });
  // the parser keeps tables apart (inet not_podway's nat_out is not ip podway's)
  const all = parseNftCounters(sh('nft', ['-j', 'list', 'counters']));
  assert.is(all.get('inet not_podway')!.nat_out.packets, 77);
  assert.is(all.get('ip podway')!.nat_out.packets, 40);
  assert.throws(() => parseNftCounters('{"something": 1}'), /no "nftables" array/);
});

test('the cache: a read reused within the maximum age, a new run after it; requests that meet share one run', async () => {
  tables(10, 1, 0);
  let clock = 1000;
  const cache = new NftCounterCache(() => [NAT, GUARD], { now: () => clock });
  const natOut = async () => natCountersOf((await cache.table(NAT))!).outPackets;
  assert.is(await natOut(), 10);
  assert.is(cache.reads, 1);
  tables(11, 1, 0); // the kernel's figures move on
  clock += NFT_COUNTERS_MAX_AGE_MS;
  assert.is(await natOut(), 10, 'within the maximum age: the cached figures');
  assert.is(cache.reads, 1, 'no nft run within the maximum age');
  assert.is(cache.ageMs(await cache.get()), NFT_COUNTERS_MAX_AGE_MS);
  clock += 1;
  const [a, b, c] = await Promise.all([natOut(), natOut(), cache.get()]);
  assert.equal([a, b], [11, 11], 'older than the maximum age: read again');
  assert.is(cache.reads, 2, 'three requests at once: one nft run');
  assert.is(c.tables.get('inet podway')!.pod_spoofed.packets, 1);
  // other tables wanted (natOutgoing turned on for IPv6, say): read at once, whatever the age
  const wanted: NftTable[] = [NAT];
  const narrow = new NftCounterCache(() => wanted, { now: () => clock });
  await narrow.get();
  wanted.push(GUARD);
  assert.ok((await narrow.get()).tables.has('inet podway'));
  assert.is(narrow.reads, 2);
  // nothing wanted: no nft run at all
  const none = new NftCounterCache(() => [], { now: () => clock });
  assert.equal([...(await none.get()).tables], []);
});

test('a table deleted under the reader: that part missing ("no such table"), the others read; back once it is', async () => {
  tables(20, 2, 0);
  let clock = 1000;
  const cache = new NftCounterCache(() => [NAT, GUARD, TUNNEL_NFT_TABLE], { now: () => clock });
  assert.is((await cache.get()).missing.size, 0);
  sh('nft', ['delete', 'table', 'inet', 'podway']);
  clock += NFT_COUNTERS_MAX_AGE_MS + 1;
  const s = await cache.get();
  assert.equal(Object.fromEntries(s.missing), { 'inet podway': 'no such table' });
  assert.is(await cache.table(GUARD), null);
  assert.is(natCountersOf(s.tables.get(tableKey(NAT))!).outPackets, 20, 'the NAT table still read');
  assert.is(tunnelDropsOf(s.tables.get(tableKey(TUNNEL_NFT_TABLE))!).vxlanOldPort.packets, 0);
  tables(21, 3, 0);
  clock += NFT_COUNTERS_MAX_AGE_MS + 1;
  assert.is((await cache.get()).missing.size, 0);
  assert.is(natCountersOf((await cache.table(GUARD))!).podSpoofed, 3);
});

test('nft missing (not on the path given), failing or hanging: every table missing with why, the answer still comes', async () => {
  const gone = await readNftCounters([NAT, GUARD], { nft: path.join(__dirname, 'no-such-dir', 'nft') });
  assert.equal([...gone.tables], []);
  assert.equal(Object.fromEntries(gone.missing), { 'ip podway': 'the nft command was not found (package nftables)', 'inet podway': 'the nft command was not found (package nftables)' });
  // a PATH without nft for the reader's process: the same
  const savedPath = process.env.PATH;
  process.env.PATH = path.join(__dirname, 'no-such-dir');
  let noPath;
  try {
    noPath = await readNftCounters([NAT]);
  } finally {
    process.env.PATH = savedPath;
  }
  assert.equal(Object.fromEntries(noPath.missing), { 'ip podway': 'the nft command was not found (package nftables)' });
  // an nft that fails: its first error line
  const fails = await readNftCounters([NAT], { nft: 'false' });
  assert.match(fails.missing.get('ip podway')!, /^nft: /);
  // an "nft" that never answers: killed at the bound
  const dir = mkdtempSync(path.join(tmpdir(), `podway-cnt26-${process.pid}-`));
  try {
    const stuck = path.join(dir, 'nft');
    writeFileSync(stuck, '#!/bin/sh\nexec sleep 60\n');
    chmodSync(stuck, 0o755);
    const hangs = await readNftCounters([NAT], { nft: stuck, timeoutMs: 300 });
    assert.is(hangs.missing.get('ip podway'), 'nft did not answer within 300 ms');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  // a reader that throws, through the cache: missing, no rejection
  const cache = new NftCounterCache(() => [NAT], { read: async () => { throw new Error('boom'); } });
  assert.equal(Object.fromEntries((await cache.get()).missing), { 'ip podway': 'read failed: boom' });
});

test('through the spawner helper (podway run: no fork of the forwarding process): the same counts; nft missing, failing or hanging said as without it', async () => {
  tables(41, 6, 3);
  const sp = new Spawner();
  const exec = (f: string, a: string[], t: number) => sp.exec(f, a, t);
  const dir = mkdtempSync(path.join(tmpdir(), `podway-nftcnt-${process.pid}-`));
  try {
    const r = await readNftCounters([NAT, GUARD, TUNNEL_NFT_TABLE], { exec });
    assert.equal([...r.missing], []);
    assert.is(natCountersOf(r.tables.get('ip podway')!).outPackets, 41);
    assert.is(natCountersOf(r.tables.get('inet podway')!).podSpoofed, 6);
    assert.equal(tunnelDropsOf(r.tables.get('inet podway_tunnels')!), { vxlanOldPort: { packets: 3, bytes: 100 } });
    const gone = await readNftCounters([NAT], { exec, nft: path.join(dir, 'no-such-nft') });
    assert.is(gone.missing.get('ip podway'), 'the nft command was not found (package nftables)');
    assert.match((await readNftCounters([NAT], { exec, nft: 'false' })).missing.get('ip podway')!, /^nft: exit code 1/);
    const stuck = path.join(dir, 'nft');
    writeFileSync(stuck, '#!/bin/sh\nexec sleep 60\n');
    chmodSync(stuck, 0o755);
    assert.is((await readNftCounters([NAT], { exec, nft: stuck, timeoutMs: 300 })).missing.get('ip podway'), 'nft did not answer within 300 ms');
  } finally {
    sp.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

test.run();
