/**
 * The IPAM lock on flock(2) (src/cni/ipam-lock.ts, src/cni/flock-lock.ts, native/flock.c), with
 * real processes: a holder killed by SIGKILL, in this PID namespace and in another one (`unshare
 * --pid --fork`, as a containerised podway run without hostPID), lets the waiter in at once, and
 * the next plugin ADD goes through; waiters are served in the order they queued; processes racing
 * for it never overlap; an abort ends a wait and leaves no ticket; a legacy (link(2)) waiter of
 * an older podway waits for a new holder. Root (unshare, network namespaces).
 */
// test-exclusive
// (its lock waiters are node processes with 20 s lock timeouts, started one after another: at load
// 15 with two other files beside it, the waiter meant to sweep a killed one's token started too
// late for the test's 30 s wait; alone, as before the runner ran files at once)
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { ChildProcess, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { flockFileOf, IpamLockAbortedError, legacyDeadIf, LEGACY_TOKEN_MARK, withIpamLock } from '../../src/cni/ipam-lock';
import { FileLock, FileLockTimeoutError } from '../../src/control/kv/file-lock';
import { CniHarness } from './harness';
import { isRoot, sleep } from '../helpers/netns';
import { until } from '../helpers/until';

if (!isRoot()) throw new Error('the IPAM lock tests need root (unshare --pid, network namespaces)');

const IPAM_LOCK = require.resolve('../../src/cni/ipam-lock');


interface Proc {
  readonly child: ChildProcess;
  /** Its stdout so far. */
  out(): string;
  /** The PID of the node process as this namespace sees it (inside unshare: unshare's child). */
  hostPid(): number;
  exited(): Promise<number | null>;
}

/**
 * A node process running `body` (JS with `withIpamLock` and `file` in scope), in a new PID
 * namespace when `pidns`.
 */
function nodeProc(file: string, body: string, pidns = false): Proc {
  const script = `const { withIpamLock } = require(${JSON.stringify(IPAM_LOCK)}); const file = ${JSON.stringify(file)};\n${body}`;
  const args = [process.execPath, '-e', script];
  const child = pidns ? spawn('unshare', ['--pid', '--fork', '--kill-child', ...args], { stdio: ['pipe', 'pipe', 'inherit'] }) : spawn(args[0]!, args.slice(1), { stdio: ['pipe', 'pipe', 'inherit'] });
  let out = '';
  child.stdout!.on('data', (d) => { out += d; });
  const exit = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
  return {
    child,
    out: () => out,
    hostPid: () => {
      if (!pidns) return child.pid!;
      const kids = readFileSync(`/proc/${child.pid}/task/${child.pid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean);
      if (kids.length !== 1) throw new Error(`unshare ${child.pid} has children ${JSON.stringify(kids)}`);
      return Number(kids[0]);
    },
    exited: () => exit,
  };
}

/** Holds the lock until its stdin ends (or it is killed); prints "held <its pid> <its PID namespace>". */
const HOLD = `withIpamLock({ file, timeoutMs: 20000, setting: 'test' }, () => new Promise((r) => {
  process.stdout.write('held ' + process.pid + ' ' + require('fs').readlinkSync('/proc/self/ns/pid') + '\\n');
  process.stdin.on('end', r); process.stdin.resume();
})).then(() => process.exit(0), (e) => { console.error(e.message); process.exit(3); });`;

async function stop(p: Proc): Promise<void> {
  if (p.child.exitCode !== null || p.child.signalCode !== null) return;
  p.child.stdin!.end();
  const t = setTimeout(() => p.child.kill('SIGKILL'), 5000);
  await p.exited();
  clearTimeout(t);
}

const tickets = (dir: string) => readdirSync(dir).filter((n) => n.startsWith('ipam.lock.flock.q.'));

for (const pidns of [false, true]) {
  test(`a holder killed by SIGKILL ${pidns ? 'in another PID namespace' : 'in this PID namespace'} releases the lock at once: the waiter gets it`, async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'podway-flock-'));
    const file = path.join(dir, 'ipam.lock');
    const holder = nodeProc(file, HOLD, pidns);
    try {
      assert.ok(await until(() => holder.out().includes('held')), `the holder took the lock: ${holder.out()}`);
      const [, pid, ns] = holder.out().trim().split(' ');
      if (pidns) {
        assert.is(pid, '1', 'PID 1 of its own namespace');
        assert.is.not(ns, readlinkSync('/proc/self/ns/pid'), 'another PID namespace');
      }
      // its link(2) token for older plugins names it too (and is marked as taken under the kernel lock)
      const legacy = readFileSync(file, 'utf8').trim().split(' ');
      assert.is(legacy[0], pid);
      assert.is(legacy[4], 'flock');
      let waited: number | Error | null = null;
      const t0 = Date.now();
      let killedAt = 0;
      const waiter = withIpamLock({ file, timeoutMs: 20_000, setting: 'test' }, async () => (waited = Date.now() - killedAt)).catch((e) => (waited = e as Error));
      assert.ok(await until(() => tickets(dir).length === 1), 'the waiter queued');
      await sleep(200);
      assert.is(waited, null, 'the waiter waits while the holder lives');
      killedAt = Date.now();
      process.kill(holder.hostPid(), 'SIGKILL');
      await waiter;
      assert.ok(typeof waited === 'number', `the waiter took the lock after the kill: ${waited}`);
      console.log(`  ${pidns ? 'other' : 'same'} PID namespace: lock taken ${waited} ms after the SIGKILL (${Date.now() - t0} ms waited in all)`);
      // the crashed holder's link(2) lock and token were cleared; only the kernel lock's file stays
      assert.equal(readdirSync(dir), ['ipam.lock.flock']);
    } finally {
      await stop(holder);
      rmSync(dir, { recursive: true, force: true });
    }
  });
}

test('ipam.lock.flock removed under a live holder of this PID namespace: a newcomer takes the new kernel lock but not the holder\'s link(2) lock (no two IPAM writers)', async () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'podway-flock-'));
  const file = path.join(dir, 'ipam.lock');
  const holder = nodeProc(file, HOLD);
  try {
    assert.ok(await until(() => holder.out().includes('held')), `the holder took the lock: ${holder.out()}`);
    const token = readFileSync(file, 'utf8');
    assert.is(token.trim().split(' ')[4], LEGACY_TOKEN_MARK);
    assert.not.ok(legacyDeadIf(file)(token), 'a marked token of this namespace whose holder lives is not stale');
    rmSync(flockFileOf(file));
    let entered = false;
    const err = await withIpamLock({ file, timeoutMs: 1500, setting: 'test' }, async () => { entered = true; }).then(() => null, (e) => e as Error);
    assert.not.ok(entered, 'the newcomer got in beside the live holder');
    assert.match(err?.message ?? '', 'holds this link(2) lock');
    assert.is(readFileSync(file, 'utf8'), token, 'the holder\'s link(2) lock kept');
  } finally {
    await stop(holder);
    rmSync(dir, { recursive: true, force: true });
  }
});

test('the link(2) token of a waiter killed by SIGKILL is swept by the next withIpamLock; a live waiter\'s is kept', async () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'podway-flock-'));
  const file = path.join(dir, 'ipam.lock');
  const tokenOf = (pid: number) => readdirSync(dir).filter((n) => new RegExp(`^ipam\\.lock\\.${pid}\\.[0-9a-f]{12}$`).test(n));
  let release = (): void => undefined;
  const procs: Proc[] = [];
  try {
    const held = withIpamLock({ file, timeoutMs: 20_000, setting: 'test' }, () => new Promise<void>((r) => { release = r; }));
    assert.ok(await until(() => existsSync(file)), 'held here');
    const killed = nodeProc(file, HOLD);
    const live = nodeProc(file, HOLD);
    procs.push(killed, live);
    assert.ok(await until(() => tokenOf(killed.child.pid!).length === 1 && tokenOf(live.child.pid!).length === 1), `both waiters wrote their tokens: ${readdirSync(dir).join(' ')}`);
    const killedPid = killed.child.pid!;
    killed.child.kill('SIGKILL');
    await killed.exited();
    assert.is(tokenOf(killedPid).length, 1, 'SIGKILL left its token');
    // a newcomer's withIpamLock sweeps it (it waits, the lock being held here)
    const next = nodeProc(file, HOLD);
    procs.push(next);
    assert.ok(await until(() => tokenOf(killedPid).length === 0), `the dead waiter's token swept: ${readdirSync(dir).join(' ')}`);
    assert.is(tokenOf(live.child.pid!).length, 1, 'the live waiter\'s token kept');
    release();
    await held;
  } finally {
    release();
    for (const p of procs) await stop(p);
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a plugin killed holding the IPAM lock in another PID namespace: the next ADD goes through', async () => {
  const h = new CniHarness();
  let holder: Proc | null = null;
  try {
    await h.setup();
    holder = nodeProc(h.ipamLockFile, HOLD, true);
    assert.ok(await until(() => holder!.out().includes('held')), `the holder took the lock: ${holder.out()}`);
    process.kill(holder.hostPid(), 'SIGKILL');
    await holder.exited();
    const pod = h.pod('after');
    const id = `k${Math.random().toString(16).slice(2, 10)}`;
    const r = await h.call({ command: 'ADD', containerId: id, netns: pod.path, ifname: 'eth0', extra: { ipam_lock_timeout_ms: 20_000 } });
    assert.is(r.exitCode, 0, r.stdout + r.stderr);
    assert.equal(await h.handles(), [`podway.${id}`]);
    // No ticket left; the concurrency limit's slot files (src/cni/slots.ts) stay, as the lock file does.
    assert.equal(readdirSync(path.dirname(h.ipamLockFile)).filter((n) => !/^ipam\.lock\.slot\.\d+$/.test(n)), ['containers', 'ipam.lock.flock'], 'the lock file (and the per-container locks\' directory: container-lock.ts)');
  } finally {
    if (holder) await stop(holder);
    await h.cleanup();
  }
});

test('waiters are served in the order they queued', async () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'podway-flock-'));
  const file = path.join(dir, 'ipam.lock');
  const log = path.join(dir, 'order.log');
  const procs: Proc[] = [];
  let release: () => void = () => undefined;
  const held = withIpamLock({ file, timeoutMs: 5000, setting: 'test' }, () => new Promise<void>((r) => { release = r; }));
  try {
    await until(() => existsSync(flockFileOf(file)) && readFileSync(flockFileOf(file), 'utf8').startsWith(`${process.pid} `));
    for (let i = 0; i < 4; i++) {
      procs.push(nodeProc(file, `withIpamLock({ file, timeoutMs: 60000, setting: 'test' }, async () => require('fs').appendFileSync(${JSON.stringify(log)}, 'w${i}\\n')).then(() => process.exit(0), (e) => { console.error(e.message); process.exit(3); });`));
      // the next one starts only once this one queued
      assert.ok(await until(() => tickets(dir).length === i + 1), `waiter ${i} queued: ${readdirSync(dir).join(' ')}`);
    }
    release();
    await held;
    const codes = await Promise.all(procs.map((p) => p.exited()));
    assert.equal(codes, [0, 0, 0, 0]);
    assert.equal(readFileSync(log, 'utf8').trim().split('\n'), ['w0', 'w1', 'w2', 'w3']);
    assert.equal(tickets(dir), []);
  } finally {
    release();
    for (const p of procs) await stop(p);
    rmSync(dir, { recursive: true, force: true });
  }
});

test('two processes racing for the lock take turns: their holds never overlap, each gets all its turns', async () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'podway-flock-'));
  const file = path.join(dir, 'ipam.lock');
  const log = path.join(dir, 'turns.log');
  const ROUNDS = 25;
  const body = (name: string) => `const fs = require('fs');
(async () => {
  for (let i = 0; i < ${ROUNDS}; i++) {
    await withIpamLock({ file, timeoutMs: 60000, setting: 'test' }, async () => {
      fs.appendFileSync(${JSON.stringify(log)}, 'in ${name}\\n');
      await new Promise((r) => setTimeout(r, 2));
      fs.appendFileSync(${JSON.stringify(log)}, 'out ${name}\\n');
    });
  }
})().then(() => process.exit(0), (e) => { console.error(e.message); process.exit(3); });`;
  const procs = [nodeProc(file, body('a')), nodeProc(file, body('b'))];
  try {
    const codes = await Promise.all(procs.map((p) => p.exited()));
    assert.equal(codes, [0, 0]);
    const lines = readFileSync(log, 'utf8').trim().split('\n');
    assert.is(lines.length, 4 * ROUNDS);
    for (let i = 0; i < lines.length; i += 2) {
      assert.ok(lines[i]!.startsWith('in ') && lines[i + 1] === `out ${lines[i]!.slice(3)}`, `holds overlap at line ${i}: ${lines.slice(i, i + 4).join(' | ')}`);
    }
    for (const n of ['a', 'b']) assert.is(lines.filter((l) => l === `in ${n}`).length, ROUNDS);
    const switches = lines.filter((l, i) => i % 2 === 0 && i > 0 && l !== lines[i - 2]).length;
    console.log(`  ${2 * ROUNDS} holds, the holder changed ${switches} times`);
    assert.equal(tickets(dir), []);
  } finally {
    for (const p of procs) await stop(p);
    rmSync(dir, { recursive: true, force: true });
  }
});

test('an abort during the wait (podway run stopping) ends it with IpamLockAbortedError and leaves no ticket', async () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'podway-flock-'));
  const file = path.join(dir, 'ipam.lock');
  const holder = nodeProc(file, HOLD);
  try {
    assert.ok(await until(() => holder.out().includes('held')));
    const ac = new AbortController();
    let ran = false;
    const waited = withIpamLock({ file, timeoutMs: 60_000, setting: 'test' }, async () => { ran = true; }, ac.signal).then(() => 'acquired', (e) => e);
    assert.ok(await until(() => tickets(dir).length === 1), 'queued');
    ac.abort();
    const r = await waited;
    assert.instance(r, IpamLockAbortedError);
    assert.match((r as Error).message, `IPAM lock ${file} (test): wait given up (stopping)`);
    assert.not.ok(ran);
    assert.equal(tickets(dir), [], 'ticket removed');
    assert.is(holder.child.exitCode, null, 'the holder still has it');
  } finally {
    await stop(holder);
    rmSync(dir, { recursive: true, force: true });
  }
});

test('upgrade: an older podway (link(2) lock, no kernel lock) waits for a new holder, then takes its turn', async () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'podway-flock-'));
  const file = path.join(dir, 'ipam.lock');
  const holder = nodeProc(file, HOLD, true);
  const old = new FileLock(file, 400);
  try {
    assert.ok(await until(() => holder.out().includes('held')));
    try {
      await old.acquire();
      assert.unreachable('the old protocol took a lock a new plugin holds');
    } catch (e) {
      assert.instance(e, FileLockTimeoutError);
      assert.match((e as Error).message, 'held by pid 1 of another PID namespace');
    }
    await stop(holder);
    assert.is(holder.child.exitCode, 0);
    await old.acquire();
    await old.release();
  } finally {
    await stop(holder);
    await old.dispose();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('upgrade: an older podway killed holding its link(2) lock in another PID namespace: kept while young, broken once older than any hold', async () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'podway-flock-'));
  const file = path.join(dir, 'ipam.lock');
  // the older protocol itself: FileLock without the mark, as plugins before the kernel lock take it
  const script = `const { FileLock } = require(${JSON.stringify(require.resolve('../../src/control/kv/file-lock'))});
new FileLock(${JSON.stringify(file)}, 5000).acquire().then(() => { process.stdout.write('held\\n'); setInterval(() => {}, 1000); });`;
  const child = spawn('unshare', ['--pid', '--fork', '--kill-child', process.execPath, '-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
  let out = '';
  child.stdout!.on('data', (d) => { out += d; });
  const exited = new Promise((r) => child.once('exit', r));
  try {
    assert.ok(await until(() => out.includes('held')), 'the old holder took its lock');
    const token = readFileSync(file, 'utf8');
    assert.is(token.trim().split(' ').length, 4, `an unmarked token of another namespace: ${token}`);
    const kid = Number(readFileSync(`/proc/${child.pid}/task/${child.pid}/children`, 'utf8').trim());
    process.kill(kid, 'SIGKILL');
    await exited;
    await sleep(50);
    // young: cannot be told from a live holder of another namespace, so kept (what the plugin uses)
    assert.not.ok(legacyDeadIf(file)(token));
    const plugin = new FileLock(file, 300, { mark: LEGACY_TOKEN_MARK, deadIf: legacyDeadIf(file) });
    try {
      await plugin.acquire();
      assert.unreachable('a young foreign lock was broken');
    } catch (e) {
      assert.instance(e, FileLockTimeoutError);
    } finally {
      await plugin.dispose();
    }
    // older than the bound (here 20 ms instead of 10 minutes): a crash's leftover, broken
    assert.ok(legacyDeadIf(file, 20)(token));
    assert.not.ok(legacyDeadIf(file, 20)(token.replace(/ \d+ /, ' 1 ')), 'only the token the lock file holds');
    const later = new FileLock(file, 5000, { mark: LEGACY_TOKEN_MARK, deadIf: legacyDeadIf(file, 20) });
    await later.acquire();
    assert.match(readFileSync(file, 'utf8'), / flock\n$/);
    await later.dispose();
    assert.not.ok(existsSync(file));
  } finally {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  }
});

test.run();
