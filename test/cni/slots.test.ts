/**
 * The plugin's concurrency limit (src/cni/slots.ts, main.ts), with real processes and real flock(2):
 * 4 waiters with K=2 never hold more than 2 slots at once and all get one; a holder killed by
 * SIGKILL frees its slot for a waiter; a wait past its bound goes on without a slot (a warning,
 * never a failure), as does the plugin itself (main.js, a VERSION-free command); 0 is no limit; the
 * config parser knows the key and names it when it is wrong.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { ChildProcess, spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { takeSlot, slotFileOf, slotOptionsOf, defaultConcurrencyLimit } from '../../src/cni/slots';
import { loadFlockAddon, openPrivate } from '../../src/cni/flock-lock';
import { parseConfig, parseStdin, unknownSettings } from '../../src/cni/config';
import { CniError } from '../../src/cni/errors';
import { until } from '../helpers/until';
import { exitedAndRead } from '../helpers/proc';

const SLOTS = require.resolve('../../src/cni/slots');
const MAIN = require.resolve('../../src/cni/main');

interface Waiter {
  readonly id: number;
  readonly child: ChildProcess;
  out(): string;
  exited(): Promise<number | null>;
}

/**
 * A plugin-like process: takes a slot of `limit` beside `lock`, then writes `<dir>/held.<id>`,
 * waits (bounded) for `<dir>/go.<id>`, removes its mark and exits, printing its takeSlot result.
 */
function waiter(dir: string, lock: string, limit: number, id: number): Waiter {
  const script = `const { takeSlot } = require(${JSON.stringify(SLOTS)}); const fs = require('fs');
const dir = ${JSON.stringify(dir)}, id = ${id};
takeSlot({ ipamLockFile: ${JSON.stringify(lock)}, limit: ${limit}, timeoutMs: 120000, pollMs: 50 }).then(async (r) => {
  fs.writeFileSync(dir + '/held.' + id, String(r.slot));
  const end = Date.now() + 120000;
  while (!fs.existsSync(dir + '/go.' + id) && Date.now() < end) await new Promise((res) => setTimeout(res, 20));
  fs.unlinkSync(dir + '/held.' + id);
  process.stdout.write(JSON.stringify(r) + '\\n');
  process.exit(0);
}, (e) => { console.error(e); process.exit(3); });`;
  const child = spawn(process.execPath, ['-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
  let out = '';
  child.stdout!.on('data', (d) => { out += d; });
  const exit = exitedAndRead(child).then((x) => x.code); // its JSON line read to the end, not just its exit
  return { id, child, out: () => out, exited: () => exit };
}

const held = (dir: string) => readdirSync(dir).filter((n) => n.startsWith('held.')).map((n) => Number(n.slice(5)));

function killAll(ws: Waiter[]): void {
  for (const w of ws) if (w.child.exitCode === null && w.child.signalCode === null) w.child.kill('SIGKILL');
}

test('4 waiters, 2 slots: never more than 2 hold one at once, and all get one', async () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'pw-slots-'));
  const lock = path.join(dir, 'run', 'ipam.lock');
  const ws: Waiter[] = [];
  try {
    for (let i = 0; i < 4; i++) ws.push(waiter(dir, lock, 2, i));
    let maxHeld = 0;
    const released = new Set<number>();
    // Both slots taken while two wait (the waiters wait for nothing else: this comes).
    assert.ok(await until(() => {
      const h = held(dir);
      assert.ok(h.length <= 2, `at most 2 hold a slot: ${JSON.stringify(h)}`);
      return h.length === 2;
    }, 90_000, 10), 'two hold a slot');
    assert.ok(ws.every((w) => w.child.exitCode === null), 'the other two still wait');
    // Let the holders go one at a time; between releases, watch the marks.
    while (released.size < 4) {
      assert.ok(await until(() => {
        const h = held(dir);
        maxHeld = Math.max(maxHeld, h.length);
        assert.ok(h.length <= 2, `at most 2 hold a slot: ${JSON.stringify(h)}`);
        return h.some((id) => !released.has(id));
      }, 90_000, 10), 'a waiter holds a slot');
      const h = held(dir).filter((id) => !released.has(id));
      assert.ok(h.length <= 2);
      const next = h[0]!;
      released.add(next);
      writeFileSync(path.join(dir, `go.${next}`), '');
      assert.ok(await until(() => {
        const now = held(dir);
        maxHeld = Math.max(maxHeld, now.length);
        assert.ok(now.length <= 2, `at most 2 hold a slot: ${JSON.stringify(now)}`);
        return ws[next]!.child.exitCode !== null;
      }, 60_000, 10), `waiter ${next} exits`);
    }
    const codes = await Promise.all(ws.map((w) => w.exited()));
    assert.equal(codes, [0, 0, 0, 0]);
    const results = ws.map((w) => JSON.parse(w.out()));
    for (const r of results) {
      assert.ok(r.slot === 0 || r.slot === 1, `a slot of 2: ${JSON.stringify(r)}`);
      assert.is(r.warning, null);
    }
    assert.is(maxHeld, 2, 'two held at once (the limit is used, not just respected)');
    assert.ok(existsSync(slotFileOf(lock, 0)) && existsSync(slotFileOf(lock, 1)) && !existsSync(slotFileOf(lock, 2)));
  } finally {
    killAll(ws);
    await Promise.all(ws.map((w) => w.exited()));
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a holder killed by SIGKILL frees its slot: the waiter gets it', async () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'pw-slots-'));
  const lock = path.join(dir, 'ipam.lock');
  const ws: Waiter[] = [];
  try {
    ws.push(waiter(dir, lock, 1, 0));
    assert.ok(await until(() => held(dir).includes(0), 60_000), 'the first holds the slot');
    ws.push(waiter(dir, lock, 1, 1));
    // Alive and waiting (it cannot hold: the one slot is taken).
    assert.not.ok(held(dir).includes(1));
    ws[0]!.child.kill('SIGKILL');
    await ws[0]!.exited();
    assert.ok(await until(() => held(dir).includes(1), 60_000), 'the waiter takes the freed slot');
    writeFileSync(path.join(dir, 'go.1'), '');
    assert.is(await ws[1]!.exited(), 0);
    assert.is(JSON.parse(ws[1]!.out()).slot, 0);
  } finally {
    killAll(ws);
    await Promise.all(ws.map((w) => w.exited()));
    rmSync(dir, { recursive: true, force: true });
  }
});

test('all slots held past the bound: no slot and a warning, never an error; 0 is no limit', async () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'pw-slots-'));
  const lock = path.join(dir, 'ipam.lock');
  const ws: Waiter[] = [];
  try {
    ws.push(waiter(dir, lock, 1, 0));
    assert.ok(await until(() => held(dir).includes(0), 60_000), 'the other process holds the slot');
    const r = await takeSlot({ ipamLockFile: lock, limit: 1, timeoutMs: 300, pollMs: 50 });
    assert.is(r.slot, null);
    assert.match(r.warning ?? '', /no concurrency slot of 1 .* free after 300 ms; going on without one/);
    const none = await takeSlot({ ipamLockFile: lock, limit: 0, timeoutMs: 300 });
    assert.equal([none.slot, none.warning], [null, null]);
    // A limiter that cannot work (a directory others may write to) is a warning too.
    const open = path.join(dir, 'open');
    spawnSync('install', ['-d', '-m', '0777', open]);
    const w = await takeSlot({ ipamLockFile: path.join(open, 'ipam.lock'), limit: 2, timeoutMs: 300 });
    assert.is(w.slot, null);
    assert.match(w.warning ?? '', /concurrency limit not applied .*writable by group or others/);
  } finally {
    killAll(ws);
    await Promise.all(ws.map((w) => w.exited()));
    rmSync(dir, { recursive: true, force: true });
  }
});

test('the plugin (main.js) takes a slot before its work, and goes on without one at the bound', async () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'pw-slots-'));
  const lock = path.join(dir, 'ipam.lock');
  const flock = loadFlockAddon();
  const fd = openPrivate(slotFileOf(lock, 0));
  try {
    assert.ok(flock.flockTry(fd, 'ex'), 'this test holds slot 0');
    // A STATUS against an embedded datastore that does not exist: an error of the plugin's own
    // (code 7), reached only after the limiter let it go.
    const conf = { cniVersion: '1.1.0', name: 'slots', type: 'podway', datastore: 'embedded:' + path.join(dir, 'nostore'), nodename: 'n1', ipam_lock_file: lock, ipam_lock_timeout_ms: 300, concurrency_limit: 1 };
    const env = { PATH: process.env.PATH ?? '/usr/bin:/bin', CNI_COMMAND: 'STATUS', CNI_PATH: '/nonexistent' };
    const r = spawnSync(process.execPath, [MAIN], { input: JSON.stringify(conf), env, encoding: 'utf8', timeout: 60_000 });
    assert.match(r.stderr, /no concurrency slot of 1 .* free after 300 ms; going on without one/);
    assert.ok(r.stdout.includes('"code"'), `the plugin answered: ${r.stdout} ${r.stderr}`);
    assert.not.match(r.stdout, /concurrency/);
    // Slot free: no warning.
    flock.flockTry(fd, 'un');
    const r2 = spawnSync(process.execPath, [MAIN], { input: JSON.stringify(conf), env, encoding: 'utf8', timeout: 60_000 });
    assert.not.match(r2.stderr, /concurrency/);
    assert.is(r2.stdout, r.stdout);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('concurrency_limit: a known key, 0..1024, checked by the parser; the limiter falls back to its default', () => {
  const base = { cniVersion: '1.1.0', name: 'n', type: 'podway', datastore: 'embedded:/nonexistent-store', nodename: 'n1' };
  assert.equal(unknownSettings({ ...base, concurrency_limit: 3 }), []);
  for (const bad of [-1, 1.5, '4', 1025, null]) {
    try {
      parseConfig({ ...base, concurrency_limit: bad }, {});
      assert.unreachable(`concurrency_limit ${JSON.stringify(bad)} accepted`);
    } catch (e) {
      assert.instance(e, CniError);
      assert.match((e as Error).message, /concurrency_limit: expected an integer 0\.\.1024/);
    }
  }
  parseConfig({ ...base, concurrency_limit: 0 }, {});
  assert.equal(slotOptionsOf({ concurrency_limit: 5, ipam_lock_file: '/x/l' }, { ipamLockFile: '/d/l', timeoutMs: 9 }), { ipamLockFile: '/x/l', timeoutMs: 9, limit: 5 });
  assert.equal(slotOptionsOf(parseStdin('not json').json, { ipamLockFile: '/d/l', timeoutMs: 9 }), { ipamLockFile: '/d/l', timeoutMs: 9, limit: defaultConcurrencyLimit() });
  assert.equal(slotOptionsOf({ concurrency_limit: '4' }, { ipamLockFile: '/d/l', timeoutMs: 9 }).limit, defaultConcurrencyLimit());
  assert.ok(defaultConcurrencyLimit() >= 2);
});

test.run();
