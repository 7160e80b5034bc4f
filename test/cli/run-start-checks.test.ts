// `podway run` on an embedded store with a node address it cannot use: refused before the Node is
// registered (every other node reads its address from there), in a scratch network namespace.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { execFileSync, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { BIN, ok, podway, tempDir } from './cli-kit';
import { execBounded } from '../e2e/tools';

const t = suite('run start checks');
const NS = `pw-nu-${randomBytes(3).toString('hex')}`;
let store = '';

t.before(() => {
  if (process.getuid?.() !== 0) throw new Error('run start checks need root (a network namespace)');
  execFileSync('ip', ['netns', 'add', NS]);
  // One interface holding 10.1.1.3/24; 10.1.1.9 is held by none.
  for (const args of [['link', 'set', 'lo', 'up'], ['link', 'add', 'd0', 'type', 'veth', 'peer', 'name', 'd1'], ['addr', 'add', '10.1.1.3/24', 'dev', 'd0'], ['link', 'set', 'd0', 'up']]) {
    execFileSync('ip', ['-n', NS, ...args]);
  }
});

t.after(() => {
  execFileSync('ip', ['netns', 'del', NS], { stdio: 'ignore' });
});

t.before.each(async () => {
  store = `embedded:${tempDir()}`;
  const pool = path.join(tempDir(), 'pool.yaml');
  writeFileSync(pool, 'apiVersion: projectcalico.org/v3\nkind: IPPool\nmetadata: {name: p}\nspec: {cidr: 10.244.0.0/16, vxlanMode: Always}\n');
  await ok(['apply', '-f', pool, '--datastore', store]);
});

async function run(args: string[]): Promise<{ code: number | null; stderr: string }> {
  const r = await execBounded('ip', ['netns', 'exec', NS, process.execPath, BIN, 'run', '--node', 'nx', '--datastore', store,
    '--control', path.join(tempDir(), 'c.sock'), ...args], 20_000);
  assert.not.ok(r.timedOut, `podway run ${args.join(' ')} did not exit: ${r.stderr}`);
  return { code: r.code, stderr: r.stderr };
}

async function registeredNodes(): Promise<string> {
  return ok(['get', 'node', '--datastore', store]);
}

t('--ip held by no interface here: refused naming it, no Node registered', async () => {
  const r = await run(['--ip', '10.1.1.9/24']);
  assert.is(r.code, 1, r.stderr);
  assert.match(r.stderr, '--ip (or IP) 10.1.1.9/24: no interface holds the node IP 10.1.1.9');
  assert.not.match(await registeredNodes(), /\bnx\b/);
});

t('--ip without a prefix length, a malformed --ip6, a bad --underlay-ring-mb: refused before registering', async () => {
  let r = await run(['--ip', '10.1.1.3']);
  assert.is(r.code, 1, r.stderr);
  assert.match(r.stderr, '--ip (or IP) "10.1.1.3": expected the node\'s IPv4 address with its prefix length');
  r = await run(['--ip', '10.1.1.3/24', '--ip6', 'zz']);
  assert.is(r.code, 1, r.stderr);
  assert.match(r.stderr, '--ip6 (or IP6) "zz": expected an IPv6 address with its prefix length');
  r = await run(['--ip', '10.1.1.3/24', '--underlay-ring-mb', 'abc']);
  assert.is(r.code, 1, r.stderr);
  assert.match(r.stderr, '--underlay-ring-mb must be 1..1024');
  r = await run(['--ip', '10.1.1.3/24', '--nat-port-range', '5-1']);
  assert.is(r.code, 1, r.stderr);
  assert.match(r.stderr, '--nat-port-range: "5-1" is not LOW-HIGH');
  r = await run(['--autodetect-poll-interval', 'often']);
  assert.is(r.code, 1, r.stderr);
  assert.match(r.stderr, 'run: --autodetect-poll-interval "often": expected a duration like 60s, 1m30s or 500ms (0 turns re-detection off)');
  r = await run(['--autodetect-poll-interval', '10ms']);
  assert.is(r.code, 1, r.stderr);
  assert.match(r.stderr, '--autodetect-poll-interval must be 0 (off) or 100ms..24h');
  assert.not.match(await registeredNodes(), /\bnx\b/);
});

t('file: datastore: --ip or --ip6 other than the file\'s Node address is refused naming the flag (it was ignored without a word)', async () => {
  const file = path.join(tempDir(), 'cluster.yaml');
  writeFileSync(file, [
    'apiVersion: projectcalico.org/v3\nkind: IPPool\nmetadata: {name: p}\nspec: {cidr: 10.244.0.0/16, blockSize: 26, vxlanMode: Always}',
    'apiVersion: projectcalico.org/v3\nkind: Node\nmetadata: {name: nx}\nspec: {bgp: {ipv4Address: 10.1.1.3/24}, ipv4VXLANTunnelAddr: 10.244.0.0}',
  ].join('\n---\n') + '\n');
  // 10.1.1.9 is held by no interface here, 10.1.1.3/16 is the right address with another subnet.
  for (const ip of ['10.1.1.9/24', '10.1.1.3/16']) {
    const r = await run(['--datastore', `file:${file}`, '--ip', ip]);
    assert.is(r.code, 1, r.stderr);
    assert.match(r.stderr, `--ip (or IP) ${ip} is not node nx's spec.bgp.ipv4Address 10.1.1.3/24: a file: datastore is read-only and this node's address is its Node's in ${file}`);
  }
  const r = await run(['--datastore', `file:${file}`, '--ip6', 'fd00:5::3/64']);
  assert.is(r.code, 1, r.stderr);
  assert.match(r.stderr, `--ip6 (or IP6) fd00:5::3/64 is not node nx's spec.bgp.ipv6Address (none)`);
});

t('Ctrl-C while waiting for an unreachable etcd: said in the log, exit 130 (it ended without a word)', async () => {
  const child = spawn('ip', ['netns', 'exec', NS, process.execPath, BIN, 'run', '--node', 'nx', '--ip', '10.1.1.3/24',
    '--datastore', 'etcd:http://127.0.0.1:9', '--control', path.join(tempDir(), 'c.sock')], { stdio: ['ignore', 'ignore', 'pipe'] });
  let err = '';
  child.stderr!.on('data', (b: Buffer) => (err += b.toString()));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  try {
    const end = Date.now() + 15_000;
    while (!/unreachable/.test(err) && Date.now() < end) await new Promise((r) => setTimeout(r, 100));
    assert.match(err, /etcd http:\/\/127\.0\.0\.1:9 unreachable/);
    child.kill('SIGINT');
    const code = await Promise.race([exited, new Promise<'timeout'>((r) => setTimeout(() => r('timeout'), 10_000))]);
    assert.is(code, 130, err);
    assert.match(err, /"level":"warn".*SIGINT while starting: stopping/);
  } finally {
    if (child.exitCode === null) child.kill('SIGKILL');
  }
});

t.run();
