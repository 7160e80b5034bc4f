// The one-podway-per-network-namespace lock (src/cli/run-lock.ts: flock on
// /run/podway/run.<netns inode>.lock), in two scratch network namespaces:
// - a non-root user (uid 65534 via setpriv) can neither take it nor keep podway from taking it:
//   its own take fails (EACCES), and squatting the abstract socket @podway-run, which was the lock
//   before and made podway refuse to start, changes nothing now;
// - a root holder is named from what it wrote (node, pid, control, its VXLAN port once said), a
//   second take in its namespace is refused, one in the other namespace is not (netns per node);
// - once the holder ends, the lock is taken again, and its file is gone after a release;
// - a lock directory others may write to is refused, naming it.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmodSync, existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { execBounded } from '../e2e/tools';
import { addNetns } from '../helpers/netns';
import { readableCopy } from '../helpers/readable-copy';

const tag = randomBytes(3).toString('hex');
const NS1 = `pw-rlock1-${tag}`;
const NS2 = `pw-rlock2-${tag}`;
const RUN_LOCK = path.resolve(__dirname, '..', '..', 'src', 'cli', 'run-lock.js');
const drops: (() => void)[] = [];
const started: ChildProcess[] = [];

test.before(() => {
  if (process.getuid?.() !== 0) throw new Error('needs root (network namespaces, setpriv)');
  drops.push(addNetns(NS1), addNetns(NS2));
});
test.after(() => {
  for (const p of started) if (p.exitCode === null && p.signalCode === null && p.pid) process.kill(p.pid, 'SIGKILL');
  for (const d of drops) d();
});

/** Starts a process in `ns` (ended after 30 s at most); resolves once it printed 'ready'. */
async function holder(ns: string, args: string[], script: string): Promise<{ p: ChildProcess; out: () => string }> {
  const p = spawn('ip', ['netns', 'exec', ns, ...args, process.execPath, '-e', `setTimeout(() => process.exit(0), 30000); ${script}`], { stdio: ['ignore', 'pipe', 'pipe'] });
  started.push(p);
  let out = '';
  p.stdout!.on('data', (d) => (out += d));
  p.stderr!.on('data', (d) => (out += d));
  const t0 = Date.now();
  while (!out.includes('ready') && p.exitCode === null && Date.now() - t0 < 10_000) await new Promise((r) => setTimeout(r, 50));
  assert.ok(out.includes('ready'), `holder in ${ns} ${args.join(' ')}: ${out}`);
  return { p, out: () => out };
}

async function stop(p: ChildProcess): Promise<void> {
  if (p.exitCode !== null || p.signalCode !== null) return;
  const gone = new Promise((r) => p.once('exit', r));
  process.kill(p.pid!, 'SIGTERM');
  await Promise.race([gone, new Promise((r) => setTimeout(r, 5000))]);
}

/** takeRunLock in `ns` as root (dir: the lock directory, default /run/podway): its error message, or 'taken FILE'. */
async function take(ns: string, node: string, dir?: string): Promise<string> {
  const r = await execBounded('ip', ['netns', 'exec', ns, process.execPath, '-e',
    `require(${JSON.stringify(RUN_LOCK)}).takeRunLock({ node: ${JSON.stringify(node)}, pid: process.pid, control: '/run/x.sock' }${dir ? `, ${JSON.stringify(dir)}` : ''}).then((l) => { console.log('taken ' + l.file); l.close(); }, (e) => console.log(e.message))`], 15_000);
  assert.not.ok(r.timedOut);
  return r.stdout.trim();
}

test('a non-root user can neither take nor block the lock; a root holder is named; one run per network namespace', async () => {
  // The old squat (the abstract name) and a take of the new lock, as uid 65534.
  // Its copy of podway's lock code: a checkout under /root is unreadable to uid 65534.
  const copy = readableCopy(path.resolve(__dirname, '..', '..', '..'), RUN_LOCK, ['build/Release/podway_flock.node']);
  const squat = `require('net').createServer((c) => c.end(JSON.stringify({ node: 'fakenode', pid: 1, control: '/evil.sock' }))).listen({ path: '\\0podway-run' }, () => `
    + `require(${JSON.stringify(copy.entry)}).takeRunLock({ node: 'evil', pid: process.pid, control: '/evil.sock' }).then(() => console.log('TOOK ready'), (e) => console.log('refused: ' + e.message + ' ready')))`;
  const nobody = await holder(NS1, ['setpriv', '--reuid=65534', '--regid=65534', '--clear-groups'], squat);
  let msg: string;
  try {
    assert.not.match(nobody.out(), 'TOOK', nobody.out());
    assert.match(nobody.out(), /refused: podway's run lock \/run\/podway\/run\.\d+\.lock: EACCES/);
    // Before: "podway's run lock (the abstract unix socket @podway-run ...) is held by uid 65534".
    msg = await take(NS1, 'n1');
  } finally {
    await stop(nobody.p);
    rmSync(copy.root, { recursive: true, force: true });
  }
  const file = /^taken (\/run\/podway\/run\.\d+\.lock)$/.exec(msg)?.[1];
  assert.ok(file, msg);
  assert.not.ok(existsSync(file!), 'the file is removed as the lock is let go');

  // A root holder (a podway run's own lock), its VXLAN port said once taken.
  const real = await holder(NS1, [], `require(${JSON.stringify(RUN_LOCK)}).takeRunLock({ node: 'n0', pid: process.pid, control: '/run/n0.sock' }).then((l) => { l.say({ node: 'n0', pid: process.pid, control: '/run/n0.sock', vxlanPort: 4790 }); console.log('ready') })`);
  try {
    assert.is(await take(NS1, 'n1'), `another podway run is running in this network namespace for node n0 (pid ${real.p.pid}, control /run/n0.sock): one podway per node, it owns podway0, the nftables tables and the VXLAN UDP port 4790 here; stop it first (nothing was changed)`);
    // Another network namespace (another lab node) has its own lock.
    const other = await take(NS2, 'n2');
    assert.match(other, /^taken \/run\/podway\/run\.\d+\.lock$/);
    assert.is.not(other, `taken ${file}`);
  } finally {
    await stop(real.p);
  }
  // Its holder gone (SIGTERM: no release ran, the kernel let go), the lock is taken again.
  assert.is(await take(NS1, 'n1'), `taken ${file}`);
});

test('a lock directory others may write to is refused, naming it', async () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'podway-rlock-'));
  try {
    chmodSync(dir, 0o777);
    assert.match(await take(NS1, 'n1', dir), `podway's run lock ${dir}/run.`);
    assert.match(await take(NS1, 'n1', dir), `${dir} is writable by group or others (mode 777): refused`);
    chmodSync(dir, 0o755);
    assert.match(await take(NS1, 'n1', dir), `taken ${dir}/run.`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test.run();
