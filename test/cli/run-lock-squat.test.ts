// The one-podway-per-namespace lock (src/cli/run-lock.ts, the abstract socket @podway-run) held
// by a non-root user (uid 65534 via setpriv, in a scratch network namespace) answering with text
// of its choosing: podway refuses to start naming the squatter's uid and pid, never the "podway"
// its text describes. A root holder (a real takeRunLock) is still named from its answer.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import * as path from 'node:path';
import { execBounded } from '../e2e/tools';
import { addNetns } from '../helpers/netns';

const NS = `pw-squat-${randomBytes(3).toString('hex')}`;
const RUN_LOCK = path.resolve(__dirname, '..', '..', 'src', 'cli', 'run-lock.js');
let dropNs = (): void => undefined;
const started: ChildProcess[] = [];

test.before(() => {
  if (process.getuid?.() !== 0) throw new Error('needs root (a network namespace, setpriv)');
  dropNs = addNetns(NS);
});
test.after(() => {
  for (const p of started) if (p.exitCode === null && p.signalCode === null && p.pid) process.kill(p.pid, 'SIGKILL');
  dropNs();
});

/** Starts a holder of @podway-run in NS (ended after 30 s at most); resolves with it once it listens. */
async function holder(args: string[], script: string): Promise<ChildProcess> {
  const p = spawn('ip', ['netns', 'exec', NS, ...args, process.execPath, '-e', `setTimeout(() => process.exit(0), 30000); ${script}`], { stdio: ['ignore', 'pipe', 'pipe'] });
  started.push(p);
  let out = '';
  p.stdout!.on('data', (d) => (out += d));
  p.stderr!.on('data', (d) => (out += d));
  const t0 = Date.now();
  while (!out.includes('ready') && p.exitCode === null && Date.now() - t0 < 10_000) await new Promise((r) => setTimeout(r, 50));
  assert.ok(out.includes('ready'), `holder ${args.join(' ')}: ${out}`);
  return p;
}

async function stop(p: ChildProcess): Promise<void> {
  if (p.exitCode !== null || p.signalCode !== null) return;
  const gone = new Promise((r) => p.once('exit', r));
  process.kill(p.pid!, 'SIGTERM');
  await Promise.race([gone, new Promise((r) => setTimeout(r, 5000))]);
}

/** takeRunLock in NS as root: its error message, or 'taken'. */
async function take(node: string): Promise<string> {
  const r = await execBounded('ip', ['netns', 'exec', NS, process.execPath, '-e',
    `require(${JSON.stringify(RUN_LOCK)}).takeRunLock({ node: ${JSON.stringify(node)}, pid: process.pid, control: '/run/x.sock' }).then((s) => { console.log('taken'); s.close(); }, (e) => console.log(e.message))`], 15_000);
  assert.not.ok(r.timedOut);
  return r.stdout.trim();
}

test('a non-root squatter of @podway-run: refused naming its uid and pid, its text not trusted; a root holder named from its answer', async () => {
  const fake = `require('net').createServer((c) => c.end(JSON.stringify({ node: 'fakenode', pid: 1, control: '/evil.sock', vxlanPort: 4789 }))).listen({ path: '\\0podway-run' }, () => console.log('ready'))`;
  const squatter = await holder(['setpriv', '--reuid=65534', '--regid=65534', '--clear-groups'], fake);
  let msg: string;
  try {
    msg = await take('n1');
  } finally {
    await stop(squatter);
  }
  // Before the fix: "another podway run is running in this network namespace for node fakenode (pid 1, control /evil.sock)".
  assert.not.match(msg, 'fakenode');
  assert.not.match(msg, 'another podway run is running');
  assert.match(msg, `podway's run lock (the abstract unix socket @podway-run of this network namespace) is held by uid 65534 (pid `);
  assert.match(msg, 'neither root nor this user (uid 0): not a podway run, its answer not trusted');
  const pid = /held by uid 65534 \(pid (\d+)\)/.exec(msg)?.[1];
  assert.ok(pid && Number(pid) > 1, msg);
  // Once it is gone, the lock is taken.
  assert.is(await take('n1'), 'taken');
  // A root holder (a podway run's own lock) is named from its answer, as before.
  const real = await holder([], `require(${JSON.stringify(RUN_LOCK)}).takeRunLock({ node: 'n0', pid: process.pid, control: '/run/n0.sock' }).then(() => console.log('ready'))`);
  try {
    assert.match(await take('n1'), `another podway run is running in this network namespace for node n0 (pid ${real.pid}, control /run/n0.sock)`);
  } finally {
    await stop(real);
  }
});

test.run();
