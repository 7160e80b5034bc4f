// `podway trace` against a real `podway run` (embedded store, scratch network namespace): a trace
// that times out before N packets matched exits non-zero (it used to exit 0, so a script could not
// tell "nothing seen" from success); errors and bad arguments keep their own codes.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { execFileSync, spawn, ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { BIN, ok, podway, tempDir } from './cli-kit';
import { TRACE_TIMED_OUT } from '../../src/cli/main';

const t = suite('trace exit status');
const NS = `pw-tx-${randomBytes(3).toString('hex')}`;
let child: ChildProcess | null = null;
let sock = '';
let log = '';

t.before(async () => {
  if (process.getuid?.() !== 0) throw new Error('trace exit status needs root (a network namespace)');
  execFileSync('ip', ['netns', 'add', NS]);
  for (const args of [['link', 'set', 'lo', 'up'], ['link', 'add', 'd0', 'type', 'veth', 'peer', 'name', 'd1'], ['addr', 'add', '10.1.2.3/24', 'dev', 'd0'], ['link', 'set', 'd0', 'up'], ['link', 'set', 'd1', 'up']]) {
    execFileSync('ip', ['-n', NS, ...args]);
  }
  const store = `embedded:${tempDir()}`;
  const pool = path.join(tempDir(), 'pool.yaml');
  writeFileSync(pool, 'apiVersion: projectcalico.org/v3\nkind: IPPool\nmetadata: {name: p}\nspec: {cidr: 10.244.0.0/16, vxlanMode: Always}\n');
  await ok(['apply', '-f', pool, '--datastore', store]);
  sock = path.join(tempDir(), 'c.sock');
  child = spawn('ip', ['netns', 'exec', NS, process.execPath, BIN, 'run', '--node', 'tx', '--ip', '10.1.2.3/24', '--datastore', store, '--control', sock], { stdio: ['ignore', 'ignore', 'pipe'] });
  child.stderr!.on('data', (b: Buffer) => (log += b.toString()));
  // Bounded wait for podway to run: `podway status` also answers (exit 0) while it is starting,
  // when trace is refused ("podway is starting"), so the answer must say it runs.
  const end = Date.now() + 30_000;
  while (Date.now() < end && child.exitCode === null) {
    if (existsSync(sock) && /^podway is running/.test((await podway(['status', '--control', sock])).out)) return;
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`podway run did not come up: ${log}`);
});

t.after(async () => {
  if (child && child.exitCode === null) {
    const exited = new Promise((r) => child!.once('exit', r));
    child.kill('SIGTERM');
    await Promise.race([exited, new Promise((r) => setTimeout(r, 10_000))]);
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  }
  execFileSync('ip', ['netns', 'del', NS], { stdio: 'ignore' });
});

t('no packet matched before the timeout: exit 3, said on the table; JSON still printed, with the reason on stderr', async () => {
  let r = await podway(['trace', 'host', '10.244.9.9', 'and', 'icmp', '--timeout', '1', '--control', sock]);
  assert.is(r.code, TRACE_TIMED_OUT, `${r.out}${r.err}`);
  assert.is(TRACE_TIMED_OUT, 3);
  assert.match(r.out, 'no packet matched "host 10.244.9.9 and proto 1" in time');
  r = await podway(['trace', 'icmp', '-n', '2', '--timeout', '1', '-o', 'json', '--control', sock]);
  assert.is(r.code, 3, `${r.out}${r.err}`);
  assert.equal(JSON.parse(r.out).records, []);
  assert.match(r.err, /trace timed out after 1s: 0 of 2 packets matched "proto 1"/);
});

t('podway not running at the socket is 1, a bad argument 2; --help documents the codes', async () => {
  assert.is((await podway(['trace', 'icmp', '--timeout', '1', '--control', path.join(tempDir(), 'none.sock')])).code, 1);
  assert.is((await podway(['trace', 'icmp', '--timeout', 'x', '--control', sock])).code, 2);
  const help = (await podway(['trace', '--help'])).out.replace(/\s+/g, ' ');
  assert.match(help, 'Exit status: 0 when N packets matched; 3 when the timeout came first');
});

t.run();
