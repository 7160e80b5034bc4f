// A command given no datastore (no --datastore, $PODWAY_DATASTORE, DATASTORE_TYPE, ETCD_ENDPOINTS)
// while this machine's `podway run` uses another one (README.md, "Two nodes on etcd"): a write is refused
// naming the run's datastore, nothing written; a read warns; a datastore named is used as named.
// The run waits for an etcd that is not there (a fresh network namespace: nothing answers on
// 127.0.0.1:1), so it stays starting and touches no host setting; its control socket is the
// default /run/podway/NODE.sock, where the CLI looks.
// test-resources: run-podway-sockets
// (a `podway run` on the default /run/podway/NODE.sock, or commands that compare their datastore
// with every run answering there: two such files at once see each other's runs)
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { ChildProcess, execFileSync, spawn } from 'node:child_process';
import { existsSync, readdirSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { randomBytes } from 'node:crypto';
import { controlRequest } from '../../src/dataplane/control-client';
import { DEFAULT_EMBEDDED_DIR } from '../../src/control/kv/spec';
import { BIN, podway, tempDir } from './cli-kit';
import { until } from '../helpers/until';
import { addNetns } from '../helpers/netns';

const POOL = 'apiVersion: projectcalico.org/v3\nkind: IPPool\nmetadata: {name: ds-check}\nspec: {cidr: 10.250.0.0/16}\n';

test('a run on etcd, a command on the default store: writes refused (apply, delete, ipam assign, cni install), reads warned, named stores used', async () => {
  if (process.getuid?.() !== 0) throw new Error('podway run needs root (a network namespace)');
  const suffix = `${process.pid}-${randomBytes(2).toString('hex')}`;
  const node = `ds-check-${suffix}`;
  const ns = `pw-dsc-${suffix}`;
  const sock = `/run/podway/${node}.sock`;
  const etcd = 'etcd:http://127.0.0.1:1';
  const dir = tempDir();
  const pool = path.join(dir, 'pool.yaml');
  writeFileSync(pool, POOL);
  const defaultExisted = existsSync(DEFAULT_EMBEDDED_DIR);
  let run: ChildProcess | null = null;
  let err = '';
  const dropNs = addNetns(ns);
  const node2 = `ds-check2-${suffix}`;
  const ns2 = `pw-dsc2-${suffix}`;
  const sock2 = `/run/podway/${node2}.sock`;
  const etcd2 = 'etcd:http://127.0.0.1:2';
  let run2: ChildProcess | null = null;
  const dropNs2 = addNetns(ns2);
  try {
    execFileSync('ip', ['-n', ns, 'link', 'set', 'lo', 'up']);
    run = spawn('ip', ['netns', 'exec', ns, process.execPath, BIN, 'run', '--node', node, '--datastore', etcd,
      '--model-cache', path.join(dir, 'cache.json'), '--log-level', 'warn'], { stdio: ['ignore', 'ignore', 'pipe'] });
    run.stderr!.setEncoding('utf8').on('data', (d: string) => (err += d));
    const answered = await until(async () => {
      try {
        const s = await controlRequest(sock, { cmd: 'status', starting: true }, 2000) as { datastoreSource?: string };
        return s.datastoreSource === etcd;
      } catch {
        return false;
      }
    }, 60_000, 200);
    assert.ok(answered, `podway run did not answer on ${sock} with its datastore: ${err}`);

    // Other tests' runs on this machine (on other stores) may be listed too, each store with its
    // own hint: then this node's hint is the clause 'for the store of node(s) ... NODE ...'.
    const hint = `(?:: |; )(?:for the store of nodes? (?:[^;]*, )?${node}(?:, [^;]*)? )?give --datastore etcd:http://127\\.0\\.0\\.1:1, or set DATASTORE_TYPE=etcdv3 ETCD_ENDPOINTS=http://127\\.0\\.0\\.1:1 `;
    const refused = new RegExp(`podway run \\(node ${node}\\) uses etcd:http://127\\.0\\.0\\.1:1[;,].*not embedded:${DEFAULT_EMBEDDED_DIR}, the default this command would use .*${hint}.*nothing was written`);
    for (const args of [['apply', '-f', pool], ['delete', 'ippool', 'ds-check'], ['ipam', 'assign', '--node', node, '--ip', '10.250.0.9']]) {
      const r = await podway(args);
      assert.is(r.code, 1, `podway ${args.join(' ')}: ${r.err}${r.out}`);
      assert.match(r.err, refused, `podway ${args.join(' ')}`);
      assert.is(r.out, '');
    }
    const binDir = path.join(dir, 'bin');
    const confDir = path.join(dir, 'net.d');
    const cni = await podway(['cni', 'install', '--node', node, '--bin-dir', binDir, '--conf-dir', confDir]);
    assert.is(cni.code, 1, cni.err);
    assert.match(cni.err, refused);
    assert.ok(!existsSync(confDir) || readdirSync(confDir).length === 0, 'cni install wrote a conflist');
    if (!defaultExisted) assert.not.ok(existsSync(DEFAULT_EMBEDDED_DIR), `${DEFAULT_EMBEDDED_DIR} was made`);

    // a second run on another store (in a namespace of its own: one run per namespace): each
    // store's hint, not the first run's for both
    execFileSync('ip', ['-n', ns2, 'link', 'set', 'lo', 'up']);
    run2 = spawn('ip', ['netns', 'exec', ns2, process.execPath, BIN, 'run', '--node', node2, '--datastore', etcd2,
      '--model-cache', path.join(dir, 'cache2.json'), '--log-level', 'warn'], { stdio: ['ignore', 'ignore', 'pipe'] });
    run2.stderr!.setEncoding('utf8').on('data', (d: string) => (err += d));
    assert.ok(await until(async () => {
      try {
        return ((await controlRequest(sock2, { cmd: 'status', starting: true }, 2000)) as { datastoreSource?: string }).datastoreSource === etcd2;
      } catch {
        return false;
      }
    }, 60_000, 200), `the second podway run did not answer on ${sock2}: ${err}`);
    const both = await podway(['get', 'ippool']);
    const line = both.err.split('\n').find((l) => l.startsWith('warning: ')) ?? '';
    assert.match(line, `podway run (node ${node}) uses ${etcd}`);
    assert.match(line, `podway run (node ${node2}) uses ${etcd2}`);
    assert.match(line, `for the store of node ${node} give --datastore ${etcd}, or set DATASTORE_TYPE=etcdv3 ETCD_ENDPOINTS=http://127.0.0.1:1 `);
    assert.match(line, `for the store of node ${node2} give --datastore ${etcd2}, or set DATASTORE_TYPE=etcdv3 ETCD_ENDPOINTS=http://127.0.0.1:2 `);
    const write2 = await podway(['apply', '-f', pool]);
    assert.is(write2.code, 1, write2.err);
    assert.match(write2.err, `for the store of node ${node2} give --datastore ${etcd2}`);
    assert.match(write2.err, /nothing was written/);
    await stop(run2);
    run2 = null;

    // a read: warned, then done on the default store (which may or may not exist here)
    const get = await podway(['get', 'ippool']);
    assert.match(get.err, new RegExp(`^warning: (?:.*; )?podway run \\(node ${node}\\) uses etcd:http://127\\.0\\.0\\.1:1.*; reading embedded:${DEFAULT_EMBEDDED_DIR}: (?:for the node's store give --datastore |(?:.*; )?for the store of nodes? (?:[^;]*, )?${node}(?:, [^;]*)? give --datastore etcd:http://127\\.0\\.0\\.1:1, )`, 'm'));

    // named: as named, not compared (an embedded store of the test's; etcd's own variables)
    const mine = `embedded:${path.join(dir, 'store')}`;
    const applied = await podway(['apply', '-f', pool, '--datastore', mine]);
    assert.is(applied.code, 0, applied.err);
    assert.not.match(applied.err, /podway run/);
    const viaEnv = await podway(['get', 'ippool'], { PODWAY_DATASTORE: mine });
    assert.is(viaEnv.code, 0, viaEnv.err);
    assert.match(viaEnv.out, /ds-check/);
    assert.not.match(viaEnv.err, /podway run/);
    const viaCalico = await podway(['get', 'ippool'], { DATASTORE_TYPE: 'etcdv3', ETCD_ENDPOINTS: 'http://127.0.0.1:1' });
    assert.not.match(viaCalico.err, /podway run \(node/);
  } finally {
    await stop(run);
    await stop(run2);
    dropNs();
    dropNs2();
  }
});

/** SIGTERM, then SIGKILL after 20 s; resolves once it exited. */
async function stop(run: ChildProcess | null): Promise<void> {
  if (!run || run.exitCode !== null || run.signalCode !== null) return;
  const exited = new Promise((r) => run.once('exit', r));
  run.kill('SIGTERM');
  const timer = setTimeout(() => run.kill('SIGKILL'), 20_000);
  await exited;
  clearTimeout(timer);
}

test.run();
