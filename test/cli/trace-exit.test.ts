// `podway trace` against a real `podway run` (embedded store, scratch network namespace): a trace
// that times out before N packets matched exits non-zero (it used to exit 0, so a script could not
// tell "nothing seen" from success); errors and bad arguments keep their own codes.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { BIN, ok, podway, runInNetns, tempDir, type NetnsRun } from './cli-kit';
import { within, START_WAIT_MIN_MS } from '../../src/lab/lab';
import { TRACE_TIMED_OUT } from '../../src/cli/main';
import { addNetns } from '../helpers/netns';
import { exitedAndRead } from '../helpers/proc';

const t = suite('trace exit status');
const NS = `pw-tx-${randomBytes(3).toString('hex')}`;
let run: NetnsRun | null = null;
let sock = '';
/** Deletes NS (registered at exit and on the runner's SIGTERM too: helpers/netns.ts addNetns). */
let dropNs = (): void => undefined;

t.before(async () => {
  if (process.getuid?.() !== 0) throw new Error('trace exit status needs root (a network namespace)');
  dropNs = addNetns(NS);
  for (const args of [['link', 'set', 'lo', 'up'], ['link', 'add', 'd0', 'type', 'veth', 'peer', 'name', 'd1'], ['addr', 'add', '10.1.2.3/24', 'dev', 'd0'], ['link', 'set', 'd0', 'up'], ['link', 'set', 'd1', 'up']]) {
    execFileSync('ip', ['-n', NS, ...args]);
  }
  const store = `embedded:${tempDir()}`;
  const pool = path.join(tempDir(), 'pool.yaml');
  writeFileSync(pool, 'apiVersion: projectcalico.org/v3\nkind: IPPool\nmetadata: {name: p}\nspec: {cidr: 10.244.0.0/16, vxlanMode: Always}\n');
  await ok(['apply', '-f', pool, '--datastore', store]);
  sock = path.join(tempDir(), 'c.sock');
  run = await runInNetns(NS, sock, ['--node', 'tx', '--ip', '10.1.2.3/24', '--datastore', store]);
});

t.after(async () => {
  await run?.stop();
  dropNs();
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

t('a bad filter is a bad argument: trace exits 2 (not 1, "could not ask"), capture too, each naming itself', async () => {
  const tr = await podway(['trace', 'net', '10.0.0.0/8', '--timeout', '1', '--control', sock]);
  assert.is(tr.code, 2, `${tr.out}${tr.err}`);
  assert.match(tr.err, 'podway: trace filter: unknown word "net"');
  const bad = await podway(['trace', 'host', '10.0.0.300', '--control', sock]);
  assert.is(bad.code, 2, bad.err);
  assert.match(bad.err, /trace filter: .*"10\.0\.0\.300"/);
  const cap = await podway(['capture', 'net', '10.0.0.0/8', '-w', path.join(tempDir(), 'x.pcapng'), '--control', sock]);
  assert.is(cap.code, 2, `${cap.out}${cap.err}`);
  assert.match(cap.err, 'podway: capture filter: unknown word "net"');
  assert.not.match(cap.err, 'trace');
});

t('trace says on stderr when it is armed; one packet sent after that line is matched', async () => {
  const tr = spawn(process.execPath, [BIN, 'trace', 'host', '10.244.7.7', 'and', 'icmp', '-n', '1', '--timeout', '20', '--control', sock], { stdio: ['ignore', 'pipe', 'pipe'] });
  try {
    let out = '';
    let err = '';
    tr.stdout!.on('data', (b: Buffer) => (out += b.toString()));
    tr.stderr!.on('data', (b: Buffer) => (err += b.toString()));
    const exited = exitedAndRead(tr).then((x) => x.code); // the packet it prints read to the end
    const end = Date.now() + START_WAIT_MIN_MS; // `podway trace` starting and asking podway run
    while (Date.now() < end && tr.exitCode === null && !/tracing/.test(err)) await new Promise((r) => setTimeout(r, 20));
    assert.match(err, 'podway: tracing "host 10.244.7.7 and proto 1": the next 1 matching packet within 20s', `armed line: ${err}`);
    // One echo request from the node (the kernel routes the pool to podway's host port), sent
    // once; nothing holds 10.244.7.7, so no reply: the request must be the packet the trace shows.
    spawnSync('ip', ['netns', 'exec', NS, 'ping', '-n', '-c', '1', '-W', '1', '10.244.7.7'], { stdio: 'ignore', timeout: 10_000 });
    const code = await within(exited, 15_000, 'still running');
    assert.is(code, 0, `trace exit: ${out}${err}`);
    // from the node's address, or its VXLAN tunnel address once registration gave it one (the
    // node's packets to the pool leave from it, as a Calico node's through vxlan.calico)
    assert.match(out, /^packet 1 \(.*\):\n  -> ipv4 (10\.1\.2\.3|10\.244\.\d+\.\d+) -> 10\.244\.7\.7 proto 1/m);
  } finally {
    if (tr.exitCode === null && tr.signalCode === null) tr.kill('SIGKILL');
  }
});

t.run();
