// `podway delete node N` while N's `podway run` answers on its default control socket on this host,
// with a pod (WorkloadEndpoint) on it, on an embedded store, in a scratch network namespace: the
// delete says the running node does NOT register again (it registers at start only, as
// calico/node does) and what to do: stop it to decommission, restart it to keep the node. The run
// goes not ready, naming the missing Node, and no Node of that name comes back while it runs;
// restarted, it registers the node again (the advice holds). Its status names its version.
// test-resources: run-podway-sockets
// (a `podway run` on the default /run/podway/NODE.sock, or commands that compare their datastore
// with every run answering there: two such files at once see each other's runs)
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { execFileSync, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { BIN, ok, podway, tempDir } from './cli-kit';
import { controlRequest, defaultControlPath } from '../../src/dataplane/control-client';
import { within, START_WAIT_MIN_MS } from '../../src/lab/lab';
import { addNetns } from '../helpers/netns';
import { buildVersion, versionText } from '../../src/cli/version';

if (process.getuid?.() !== 0) throw new Error('the running-node delete test needs root (a network namespace)');

const NS = `pw-dfx-${randomBytes(3).toString('hex')}`;
const NODE = `docfix-del-${process.pid}`;
const STOP_WAIT_MS = 30_000; // contrib/systemd's TimeoutStopSec, as run-start-checks

interface Status { ready?: boolean; notReady?: string[]; version?: unknown }

function startRun(store: string): { child: ReturnType<typeof spawn>; err: () => string; exited: Promise<number | null> } {
  // no --control: the default socket, /run/podway/NODE.sock, the one `podway delete node` asks
  const child = spawn('ip', ['netns', 'exec', NS, process.execPath, BIN, 'run', '--node', NODE, '--ip', '10.1.7.3/24', '--datastore', store,
    '--model-cache', 'none', '--workers', '1'], { stdio: ['ignore', 'ignore', 'pipe'] });
  let err = '';
  child.stderr!.on('data', (b: Buffer) => (err += b.toString()));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  return { child, err: () => err, exited };
}

async function status(): Promise<Status | null> {
  try {
    return (await controlRequest(defaultControlPath(NODE), { cmd: 'status' }, 3000)) as Status;
  } catch {
    return null;
  }
}

/** Polls `f` every 100 ms until it is true, at most `ms`. */
async function until(f: () => Promise<boolean>, ms: number): Promise<boolean> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (await f()) return true;
    await new Promise((r) => setTimeout(r, 100));
  }
  return f();
}

test('delete node under its running podway run: said it does not register again (restart it to); not ready, no Node while it runs; registered again once restarted', async () => {
  if (existsSync(defaultControlPath(NODE))) throw new Error(`${defaultControlPath(NODE)} exists already`);
  const dropNs = addNetns(NS);
  let run: ReturnType<typeof startRun> | null = null;
  const stop = async () => {
    if (!run || run.child.exitCode !== null) return;
    run.child.kill('SIGTERM');
    const code = await within(run.exited, STOP_WAIT_MS, 'timeout' as const);
    if (code === 'timeout') run.child.kill('SIGKILL');
  };
  try {
    for (const args of [['link', 'set', 'lo', 'up'], ['link', 'add', 'd0', 'type', 'veth', 'peer', 'name', 'd1'], ['addr', 'add', '10.1.7.3/24', 'dev', 'd0'], ['link', 'set', 'd0', 'up']]) {
      execFileSync('ip', ['-n', NS, ...args]);
    }
    const store = `embedded:${tempDir()}`;
    const file = path.join(tempDir(), 'pool.yaml');
    writeFileSync(file, 'apiVersion: projectcalico.org/v3\nkind: IPPool\nmetadata: {name: p}\nspec: {cidr: 10.244.0.0/16, blockSize: 26, vxlanMode: Always}\n');
    await ok(['apply', '-f', file, '--datastore', store]);
    run = startRun(store);
    assert.ok(await until(async () => (await status())?.ready === true, START_WAIT_MIN_MS), `ready: ${JSON.stringify(await status())} ${run.err().slice(-2000)}`);
    // status names the build that runs (dist/version.json, as --version: cli/version)
    assert.equal((await status())?.version, buildVersion());
    const text = await ok(['status', '--control', defaultControlPath(NODE)]);
    assert.match(text, new RegExp(`^podway is running on node ${NODE} .*\\nversion ${versionText().replace(/[()]/g, '\\$&')}\\n`));
    // a pod on the node (its endpoint: the sign that it looked alive)
    const wep = path.join(tempDir(), 'wep.yaml');
    writeFileSync(wep, `apiVersion: projectcalico.org/v3\nkind: WorkloadEndpoint\nmetadata: {namespace: shop}\nspec: {node: ${NODE}, orchestrator: k8s, pod: web, endpoint: eth0, interfaceName: calidfx0, ipNetworks: [10.244.0.9/32]}\n`);
    await ok(['apply', '-f', wep, '--datastore', store]);

    const del = await podway(['delete', 'node', NODE, '--datastore', store]);
    assert.is(del.code, 0, del.err);
    assert.match(del.err, `warning: podway run of node ${NODE} answers on ${defaultControlPath(NODE)}: it does not register the node again (it registers at start only, as calico/node does)`);
    assert.match(del.err, 'stop it to decommission the node, or restart it to register the node again');
    assert.match(del.err, `warning: node ${NODE} looked alive: it had 1 WorkloadEndpoint(s)`);
    assert.match(del.err, 'to keep the node, restart its podway run (it registers the node at start only, as calico/node does), then re-create those pods');
    assert.not.match(del.err, /registers it again|will register/, del.err);

    // what the warning says: not ready, naming the Node gone; the Node is not written again
    assert.ok(await until(async () => ((await status())?.notReady ?? []).some((r) => r.includes(`node "${NODE}" is not in`)), 20_000), `not ready: ${JSON.stringify(await status())}`);
    assert.not.match(await ok(['get', 'node', '--datastore', store]), NODE, 'no Node while the run goes on');
    assert.is(run.child.exitCode, null, 'the run goes on');

    // restarted, it registers the node again
    await stop();
    run = startRun(store);
    assert.ok(await until(async () => (await status())?.ready === true, START_WAIT_MIN_MS), `ready again: ${JSON.stringify(await status())} ${run.err().slice(-2000)}`);
    assert.match(await ok(['get', 'node', '--datastore', store]), NODE, 'registered again at the start');
  } finally {
    await stop();
    dropNs();
  }
});

test.run();
