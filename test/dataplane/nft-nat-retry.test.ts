/**
 * natOutgoing's table (nft-nat.ts) when nft refuses an update, against the kernel in a network
 * namespace of its own (runPrivateNetns): another process holds the table with nft's owner flag
 * (test/helpers/nft-owner.ts), so podway's update gets EPERM; once it lets go, the refused update
 * is tried again on a timer and goes in without another change.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawn, ChildProcess } from 'node:child_process';
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { runPrivateNetns, sh, waitFor } from '../helpers/netns';
import { NatSpec, natTableProgram, guardTableProgram, NftNat, NAT_TABLE, POD_GUARD } from '../../src/dataplane/nft-nat';
import { ownedTableInput } from '../helpers/nft-owner';
import { Spawner, SpawnFn } from '../../src/dataplane/spawner';
import { readFileSync } from 'node:fs';

runPrivateNetns();

const children: ChildProcess[] = [];
test.after(() => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
});

function spec(natPools: string[]): NatSpec {
  const index = Number(sh('cat', ['/sys/class/net/podway0/ifindex']).trim());
  return {
    hostPort: 'podway0', hostPortIndex: index, natPools, pools: ['10.244.0.0/16', '10.250.0.0/16'], nodes: ['10.99.0.1', '10.99.0.2'],
    portRange: [61000, 65535], udpTimeout: { unreplied: 30, replied: 120 }, maxFlows: 65536, pods: ['cali1234'], kernelTransitDrop: true,
  };
}

const table = () => sh('nft', ['list', 'table', 'ip', NAT_TABLE], { allowFail: true });

test('an update nft refuses is tried again on a timer (backing off), counted and logged once, and goes in once nft lets it', async () => {
  sh('ip', ['link', 'set', 'lo', 'up']);
  sh('ip', ['tuntap', 'add', 'podway0', 'mode', 'tun']);
  const logs: string[] = [];
  const nat = new NftNat((m) => logs.push(m), 'nft', { minMs: 200, maxMs: 400 });
  try {
    nat.start(spec([]));
    assert.match(table(), /set natpools \{\s+type ipv4_addr\s+flags interval\s+auto-merge\s+\}/);
    // hold the table: an owned copy of it
    const holder = spawn('nft', ['-i'], { stdio: ['pipe', 'ignore', 'pipe'] });
    children.push(holder);
    let err = '';
    holder.stderr!.on('data', (d) => (err += String(d)));
    holder.stdin!.write(ownedTableInput(natTableProgram(spec([])), 'ip', NAT_TABLE));
    assert.ok(await waitFor(() => /flags owner/.test(table()), 10_000, 20), `nft -i holds the table: ${err}`);
    nat.update(spec(['10.244.0.0/16']));
    // the first attempt and two retries refused, counted
    assert.ok(await waitFor(() => nat.failures >= 3, 10_000, 20), `tried again while refused: ${JSON.stringify(nat.status())} ${logs.join('\n')}`);
    assert.ok(nat.retries >= 2);
    assert.match(String(nat.status().lastError), /Operation not permitted|EPERM/);
    assert.is(logs.filter((l) => /tried again in/.test(l)).length, 1, `logged once: ${logs.join('\n')}`);
    assert.not.match(table(), /10\.244\.0\.0\/16 \}/);
    // let go: no new change comes, the timer brings the update in
    holder.stdin!.end();
    assert.ok(await waitFor(() => holder.exitCode !== null || holder.signalCode !== null, 10_000, 10), 'nft -i ended');
    assert.ok(await waitFor(() => /set natpools \{[^}]*elements = \{ 10\.244\.0\.0\/16 \}/.test(table()), 10_000, 20), `the update went in: ${table()}`);
    // (the table may be in before nft's exit reaches this process)
    assert.ok(await waitFor(() => nat.lastError === null, 10_000, 10), `${JSON.stringify(nat.status())}\n${logs.join('\n')}`);
    assert.ok(logs.some((l) => /natOutgoing from 10\.244\.0\.0\/16 \(table ip podway replaced, after \d+ refused attempt/.test(l)), logs.join('\n'));
    // healed: no more retries
    const r = nat.retries;
    await new Promise((res) => setTimeout(res, 600));
    assert.is(nat.retries, r, 'the timer stopped');
  } finally {
    await nat.stop();
  }
});

function guardSpec(addr: string): NatSpec {
  return {
    ...spec([]), pods: ['cali1234'], podAddrs4: [['cali1234', addr]], podAddrs6: [], tunnelPorts: [4789], endpointToHost: 'accept',
  };
}
const guardTable = () => sh('nft', ['list', 'table', 'inet', NAT_TABLE], { allowFail: true });

test('the pod guard: a start nft refuses (startOrRetry) is tried again on the timer, backing off, with the newest spec update() gave meanwhile, until it goes in; stop() ends the retries', async () => {
  sh('ip', ['link', 'set', 'lo', 'up']);
  if (!/podway0/.test(sh('ip', ['link', 'show'], { allowFail: true }))) sh('ip', ['tuntap', 'add', 'podway0', 'mode', 'tun']);
  const logs: string[] = [];
  const guard = new NftNat((m) => logs.push(m), 'nft', { minMs: 200, maxMs: 400 }, POD_GUARD);
  const holder = spawn('nft', ['-i'], { stdio: ['pipe', 'ignore', 'pipe'] });
  children.push(holder);
  try {
    // another process holds table inet podway (owner flag): podway's create is refused
    let err = '';
    holder.stderr!.on('data', (d) => (err += String(d)));
    holder.stdin!.write(ownedTableInput(guardTableProgram(guardSpec('10.244.0.9')), 'inet', NAT_TABLE));
    assert.ok(await waitFor(() => /flags owner/.test(guardTable()), 10_000, 20), `nft -i holds the table: ${err}`);
    let started = 0;
    assert.is(guard.startOrRetry(guardSpec('10.244.0.2'), () => started++), false, 'refused');
    assert.ok(!guard.active && guard.starting);
    assert.match(String(guard.lastError), /Operation not permitted|EPERM|create table/);
    assert.ok(await waitFor(() => guard.retries >= 2 && guard.failures >= 3, 10_000, 20), `tried again while refused: ${JSON.stringify(guard.status())}`);
    assert.ok(!guard.active && started === 0);
    // a new model meanwhile: the retry takes it
    guard.update(guardSpec('10.244.0.3'));
    holder.stdin!.end();
    assert.ok(await waitFor(() => holder.exitCode !== null || holder.signalCode !== null, 10_000, 10), 'nft -i ended');
    assert.ok(await waitFor(() => guard.active, 10_000, 20), `started by the timer: ${JSON.stringify(guard.status())} ${logs.join('\n')}`);
    assert.is(started, 1);
    assert.ok(!guard.starting);
    assert.is(guard.lastError, null);
    assert.match(guardTable(), /"cali1234" \. 10\.244\.0\.3/);
    assert.not.match(guardTable(), /flags owner/);
    assert.ok(logs.some((l) => /pod guard: table inet podway created after \d+ refused attempt/.test(l)), logs.join('\n'));
    const r = guard.retries;
    await new Promise((res) => setTimeout(res, 600));
    assert.is(guard.retries, r, 'the timer stopped');
    // a pair listed twice, then gone: real nft takes the update (deleted once, no table replace)
    const f = guard.failures, u = guard.updates, said = logs.length;
    guard.update({ ...guardSpec('10.244.0.3'), podAddrs4: [['cali1234', '10.244.0.3'], ['cali1234', '10.244.0.4'], ['cali1234', '10.244.0.4']] });
    assert.ok(await waitFor(() => guard.updates === u + 1, 10_000, 20), JSON.stringify(guard.status()));
    assert.match(guardTable(), /"cali1234" \. 10\.244\.0\.4/);
    guard.update(guardSpec('10.244.0.3'));
    assert.ok(await waitFor(() => guard.updates === u + 2 || guard.failures > f, 10_000, 20), JSON.stringify(guard.status()));
    assert.is(guard.failures, f, `no update refused: ${logs.join('\n')}`);
    // sets-only updates (pods' addresses) are not logged: the engine's endpoint lines name the pod
    assert.is(logs.length, said, `no line for a sets-only update: ${logs.slice(said).join('\n')}`);
    assert.not.match(guardTable(), /10\.244\.0\.4/);
    // a TAP/TUN pod added after start changes only pod_ips4/pod_ips6 (no veth pair): it goes in
    const u2 = guard.updates;
    guard.update({ ...guardSpec('10.244.0.3'), podIps4: ['10.244.0.7'], podIps6: ['fd00:10:244::7'] });
    assert.ok(await waitFor(() => guard.updates === u2 + 1, 10_000, 20), `a pod_ips-only change applied: ${JSON.stringify(guard.status())}`);
    assert.match(guardTable(), /set pod_ips4 \{[^}]*elements = \{ 10\.244\.0\.7 \}/);
    assert.match(guardTable(), /set pod_ips6 \{[^}]*elements = \{ fd00:10:244::7 \}/);
    guard.update(guardSpec('10.244.0.3'));
    assert.ok(await waitFor(() => guard.updates === u2 + 2, 10_000, 20), JSON.stringify(guard.status()));
    assert.not.match(guardTable(), /10\.244\.0\.7|fd00:10:244::7/);
  } finally {
    if (holder.exitCode === null && holder.signalCode === null) holder.kill('SIGKILL');
    await guard.stop();
  }
  assert.is(guardTable(), '', 'table removed at stop');
  // stop() while refused: no timer left to start it afterwards
  const g2 = new NftNat(() => {}, 'nft-not-installed-here', { minMs: 100, maxMs: 100 }, POD_GUARD);
  assert.is(g2.startOrRetry(guardSpec('10.244.0.2')), false);
  await g2.stop();
  const f = g2.failures;
  await new Promise((res) => setTimeout(res, 400));
  assert.is(g2.failures, f, 'no attempt after stop');
  assert.ok(!g2.starting);
});

/**
 * An `nft` that runs the real one NFT_SLOW_MS after it has read its program, except a delete (an
 * update's nft still running when stop() deletes the table). One process: killed, nothing runs.
 */
function slowNft(dir: string): string {
  const file = path.join(dir, 'nft');
  writeFileSync(file, `#!${process.execPath}
const { execFileSync } = require('node:child_process');
const chunks = [];
process.stdin.on('data', (c) => chunks.push(c)).on('end', () => {
  const prog = Buffer.concat(chunks);
  const ms = prog.toString().startsWith('delete table') ? 0 : Number(process.env.NFT_SLOW_MS || 0);
  setTimeout(() => {
    try { execFileSync('nft', process.argv.slice(2), { input: prog, stdio: ['pipe', 'inherit', 'inherit'] }); } catch (e) { process.exit(e.status || 1); }
  }, ms);
});
`);
  chmodSync(file, 0o755);
  return file;
}

test('stop() while an update\'s nft still runs: it is waited for, then the table is deleted (none left behind)', async () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'podway-slow-nft-'));
  const logs: string[] = [];
  const nat = new NftNat((m) => logs.push(m), slowNft(dir));
  try {
    process.env.NFT_SLOW_MS = '0';
    nat.start(spec([]));
    assert.match(table(), /table ip podway/);
    process.env.NFT_SLOW_MS = '1000';
    // a new flow limit: the whole table is replaced (a replace re-creates a deleted table)
    nat.update({ ...spec(['10.244.0.0/16']), maxFlows: 1000 });
    await nat.stop();
    assert.is(table(), '', 'deleted at stop');
    // the update's nft would have committed by now had it outlived the delete
    await new Promise((res) => setTimeout(res, 1500));
    assert.is(table(), '', `nothing left behind: ${table()}`);
    assert.not.ok(logs.some((l) => /killed/.test(l)), logs.join('\n'));
  } finally {
    await nat.stop();
    delete process.env.NFT_SLOW_MS;
    sh('nft', ['delete', 'table', 'ip', NAT_TABLE], { allowFail: true });
    rmSync(dir, { recursive: true, force: true });
  }
});

test('stop() while an update\'s nft hangs: killed after the bound, the table deleted', async () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'podway-slow-nft-'));
  const logs: string[] = [];
  const nat = new NftNat((m) => logs.push(m), slowNft(dir));
  try {
    process.env.NFT_SLOW_MS = '0';
    nat.start(spec([]));
    process.env.NFT_SLOW_MS = '60000';
    nat.update({ ...spec(['10.244.0.0/16']), maxFlows: 1000 });
    await nat.stop({ waitMs: 300 });
    assert.ok(logs.some((l) => /still ran after 0\.3 s at stop: killed/.test(l)), logs.join('\n'));
    assert.is(table(), '', 'deleted at stop');
  } finally {
    await nat.stop();
    delete process.env.NFT_SLOW_MS;
    sh('nft', ['delete', 'table', 'ip', NAT_TABLE], { allowFail: true });
    rmSync(dir, { recursive: true, force: true });
  }
});

/** slowNft, its wait read from `dir`/ms at each run (the spawner helper's environment is fixed
 * when it is forked), its PID, its parent's and the wait written to `dir`/pids before it waits, its PID and
 * the real nft's exit status to `dir`/exits after. */
function slowNftFromFile(dir: string): string {
  const file = path.join(dir, 'nft');
  writeFileSync(path.join(dir, 'ms'), '0');
  writeFileSync(file, `#!${process.execPath}
const { execFileSync } = require('node:child_process');
const fs = require('node:fs');
const chunks = [];
process.stdin.on('data', (c) => chunks.push(c)).on('end', () => {
  const prog = Buffer.concat(chunks);
  const run = () => {
    let status = 0;
    try { execFileSync('nft', process.argv.slice(2), { input: prog, stdio: ['pipe', 'inherit', 'inherit'] }); } catch (e) { status = e.status || 1; }
    fs.appendFileSync(${JSON.stringify(path.join(dir, 'exits'))}, process.pid + ' ' + status + '\\n');
    process.exit(status);
  };
  const wait = prog.toString().startsWith('delete table') ? '0' : fs.readFileSync(${JSON.stringify(path.join(dir, 'ms'))}, 'utf8').trim();
  // 'gate': wait (logged as -1) until the test writes the file 'go', polled every 20 ms, at most 30 s
  const ms = wait === 'gate' ? -1 : Number(wait);
  fs.appendFileSync(${JSON.stringify(path.join(dir, 'pids'))}, process.pid + ' ' + process.ppid + ' ' + ms + '\\n');
  if (ms >= 0) { setTimeout(run, ms); return; }
  const until = Date.now() + 30000;
  const poll = () => (fs.existsSync(${JSON.stringify(path.join(dir, 'go'))}) || Date.now() > until ? run() : setTimeout(poll, 20));
  poll();
});
`);
  chmodSync(file, 0o755);
  return file;
}

test('useSpawner: live updates run nft in the spawner helper, never a fork of this process (the forwarding thread); a refusal and a hung update at stop behave as without it', async () => {
  sh('ip', ['link', 'set', 'lo', 'up']);
  if (!/podway0/.test(sh('ip', ['link', 'show'], { allowFail: true }))) sh('ip', ['tuntap', 'add', 'podway0', 'mode', 'tun']);
  const dir = mkdtempSync(path.join(tmpdir(), 'podway-spawned-nft-'));
  const logs: string[] = [];
  const sp = new Spawner();
  const helperPid = (sp as unknown as { helper: { pid: number } }).helper.pid;
  const ran: string[][] = [];
  const spawnFn: SpawnFn = (file, args) => {
    ran.push([file, ...args]);
    return sp.spawn(file, args);
  };
  const nat = new NftNat((m) => logs.push(m), slowNftFromFile(dir));
  nat.useSpawner(spawnFn);
  const holder = spawn('nft', ['-i'], { stdio: ['pipe', 'ignore', 'pipe'] });
  children.push(holder);
  try {
    nat.start(spec([]));
    assert.is(ran.length, 0, 'start runs nft here, synchronously (before forwarding)');
    nat.update(spec(['10.250.0.0/16']));
    assert.ok(await waitFor(() => nat.updates === 1 || nat.failures > 0, 10_000, 20), `${JSON.stringify(nat.status())} ${logs.join('\n')}`);
    assert.is(nat.lastError, null);
    assert.match(table(), /set natpools \{[^}]*elements = \{ 10\.250\.0\.0\/16 \}/);
    assert.equal(ran[0].slice(1), ['-f', '-'], 'the update went through the spawner');
    // its nft's parent was the helper, not this process
    const [, ppid] = readFileSync(path.join(dir, 'pids'), 'utf8').trim().split('\n').pop()!.split(' ').map(Number);
    assert.is(ppid, helperPid, `nft ran under the spawner helper ${helperPid}, not ${process.pid}`);
    // refused (another process holds the table): the same error and retry as with execFile
    holder.stdin!.write(ownedTableInput(natTableProgram(spec([])), 'ip', NAT_TABLE));
    assert.ok(await waitFor(() => /flags owner/.test(table()), 10_000, 20), 'nft -i holds the table');
    nat.update(spec(['10.244.0.0/16']));
    assert.ok(await waitFor(() => nat.failures >= 1, 10_000, 20), JSON.stringify(nat.status()));
    assert.match(String(nat.status().lastError), /^nft \(update sets\): .*(Operation not permitted|EPERM)/);
    holder.stdin!.end();
    assert.ok(await waitFor(() => holder.exitCode !== null || holder.signalCode !== null, 10_000, 10), 'nft -i ended');
    assert.ok(await waitFor(() => nat.lastError === null, 10_000, 20), `healed: ${JSON.stringify(nat.status())}`);
    // an update that hangs at stop: killed (its PID, in the helper's session) after the bound
    writeFileSync(path.join(dir, 'ms'), '60000');
    nat.update({ ...spec(['10.244.0.0/16']), maxFlows: 1000 });
    assert.ok(await waitFor(() => readFileSync(path.join(dir, 'pids'), 'utf8').trim().split('\n').length >= ran.filter((r) => r[1] === '-f').length, 10_000, 20), 'the slow nft started');
    await nat.stop({ waitMs: 300 });
    assert.ok(logs.some((l) => /still ran after 0\.3 s at stop: killed/.test(l)), logs.join('\n'));
    assert.is(table(), '', 'deleted at stop');
    // killed through the spawner helper: stop() waits 1 s at most for its exit, and the helper
    // (another process) may reap it later on a loaded host; waited for, bounded (was a fixed 300 ms)
    const [slowPid] = readFileSync(path.join(dir, 'pids'), 'utf8').trim().split('\n').pop()!.split(' ').map(Number);
    assert.ok(await waitFor(() => !existsPid(slowPid), 10_000, 20), `the hung nft ${slowPid} was killed`);
  } finally {
    if (holder.exitCode === null && holder.signalCode === null) holder.kill('SIGKILL');
    await nat.stop();
    sp.close();
    sh('nft', ['delete', 'table', 'ip', NAT_TABLE], { allowFail: true });
    rmSync(dir, { recursive: true, force: true });
  }
});

function existsPid(pid: number): boolean {
  try {
    return !/^\S+ \S+ Z/.test(readFileSync(`/proc/${pid}/stat`, 'utf8').replace(/\(.*\)/, 'x'));
  } catch {
    return false;
  }
}

test('useSpawner: a refused start (startOrRetry) is tried again on the timer through the spawner helper, never nft run synchronously here (the forwarding thread by then), with the newest spec; stop() during such a create waits for it and leaves no table', async () => {
  sh('ip', ['link', 'set', 'lo', 'up']);
  if (!/podway0/.test(sh('ip', ['link', 'show'], { allowFail: true }))) sh('ip', ['tuntap', 'add', 'podway0', 'mode', 'tun']);
  const dir = mkdtempSync(path.join(tmpdir(), 'podway-spawned-create-'));
  const logs: string[] = [];
  const sp = new Spawner();
  const helperPid = (sp as unknown as { helper: { pid: number } }).helper.pid;
  const ran: string[][] = [];
  const spawnFn: SpawnFn = (file, args) => {
    ran.push([file, ...args]);
    return sp.spawn(file, args);
  };
  const nft = slowNftFromFile(dir);
  const pids = () => readFileSync(path.join(dir, 'pids'), 'utf8').trim().split('\n').map((l) => l.split(' ').map(Number));
  const hold = () => {
    const h = spawn('nft', ['-i'], { stdio: ['pipe', 'ignore', 'pipe'] });
    children.push(h);
    h.stdin!.write(ownedTableInput(guardTableProgram(guardSpec('10.244.0.9')), 'inet', NAT_TABLE));
    return h;
  };
  const release = async (h: ChildProcess) => {
    h.stdin!.end();
    assert.ok(await waitFor(() => h.exitCode !== null || h.signalCode !== null, 10_000, 10), 'nft -i ended');
  };
  const guard = new NftNat((m) => logs.push(m), nft, { minMs: 200, maxMs: 400 }, POD_GUARD);
  guard.useSpawner(spawnFn);
  const g2 = new NftNat((m) => logs.push(m), nft, { minMs: 200, maxMs: 200 }, POD_GUARD);
  g2.useSpawner(spawnFn);
  let holder = hold();
  try {
    assert.ok(await waitFor(() => /flags owner/.test(guardTable()), 10_000, 20), 'nft -i holds the table');
    let started = 0;
    assert.is(guard.startOrRetry(guardSpec('10.244.0.2'), () => started++), false, 'refused');
    assert.is(ran.length, 0, 'the first attempt runs here, synchronously (before forwarding)');
    assert.is(pids()[0]![1], process.pid);
    assert.ok(await waitFor(() => guard.retries >= 2 && guard.failures >= 3, 10_000, 20), `tried again while refused: ${JSON.stringify(guard.status())}`);
    assert.match(String(guard.lastError), /^nft \(create table\): .*(Operation not permitted|EPERM)/);
    // every attempt of the timer went through the helper: one spawn each, nft the helper's child
    assert.ok(await waitFor(() => pids().length === 1 + ran.length, 5000, 10), `${pids().length} nft runs, ${ran.length} spawned`);
    assert.ok(ran.length >= guard.retries - 1 && ran.every((r) => r[0] === nft && r[1] === '-f'), JSON.stringify(ran));
    for (const [pid, ppid] of pids().slice(1)) assert.is(ppid, helperPid, `nft ${pid} ran under the spawner helper ${helperPid}, not ${process.pid}`);
    // a new model meanwhile, then the table let go: the timer's create takes the newest spec
    guard.update(guardSpec('10.244.0.3'));
    await release(holder);
    assert.ok(await waitFor(() => guard.active, 10_000, 20), `started by the timer: ${JSON.stringify(guard.status())} ${logs.join('\n')}`);
    assert.is(started, 1);
    assert.is(guard.lastError, null);
    assert.match(guardTable(), /"cali1234" \. 10\.244\.0\.3/);
    assert.ok(logs.some((l) => /pod guard: table inet podway created after \d+ refused attempt/.test(l)), logs.join('\n'));
    assert.is(pids()[pids().length - 1]![1], helperPid, 'the create that went in ran in the helper');
    await guard.stop();
    assert.is(guardTable(), '', 'table removed at stop');
    // stop() while the timer's create runs (it waits for the file 'go', written once the table
    // is let go and stop() called, then commits): waited for, the table it made deleted, none
    // left behind. No fixed wait the release must fit in, however loaded the machine.
    holder = hold();
    assert.ok(await waitFor(() => /flags owner/.test(guardTable()), 10_000, 20), 'nft -i holds the table again');
    assert.is(g2.startOrRetry(guardSpec('10.244.0.4')), false);
    writeFileSync(path.join(dir, 'ms'), 'gate');
    assert.ok(await waitFor(() => pids().some((p) => p[2] === -1), 10_000, 10), 'a create of the timer started, waiting for go');
    const [creating] = pids().find((p) => p[2] === -1)!;
    await release(holder);
    assert.ok(g2.starting, 'the create is still in flight when stop() is called');
    const stopping = g2.stop({ waitMs: 30_000 });
    writeFileSync(path.join(dir, 'go'), '');
    await stopping;
    const exits = readFileSync(path.join(dir, 'exits'), 'utf8');
    assert.match(exits, new RegExp(`^${creating} 0$`, 'm'), `the create in flight at stop went in (then deleted): ${exits}`);
    assert.is(guardTable(), '', 'deleted at stop');
    await new Promise((res) => setTimeout(res, 1000));
    assert.is(guardTable(), '', `nothing left behind: ${guardTable()}`);
    assert.not.ok(g2.active || g2.starting);
    assert.not.ok(logs.some((l) => /delete table|killed/.test(l)), logs.join('\n'));
  } finally {
    if (holder.exitCode === null && holder.signalCode === null) holder.kill('SIGKILL');
    await guard.stop();
    await g2.stop();
    sp.close();
    sh('nft', ['delete', 'table', 'inet', NAT_TABLE], { allowFail: true });
    rmSync(dir, { recursive: true, force: true });
  }
});

test.run();
