// What a `podway` process loads (bench/README.md, "Start-up time"): every CLI start builds the
// whole command tree, so heavy modules must load only in the command that uses them; the etcd3
// client (etcd3, gRPC, protobufjs) only in `podway run` on an etcd: datastore, the datastore
// commands' calls going over the light client (kv/open.ts). Each process here reports the
// packages and project files it loaded (test/helpers/module-report-preload.ts), per thread.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { execFileSync, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { BIN, ok, podway, tempDir } from './cli-kit';
import { loadedModuleReports, REPORT_MODULES } from '../helpers/module-report';
import { controlRequest } from '../../src/dataplane/control-client';
import { within, START_WAIT_MIN_MS } from '../../src/lab/lab';
import { EtcdKv } from '../../src/control/kv/etcd-kv';
import { RESOURCES_PREFIX } from '../../src/control/calico-kinds';
import { EtcdServer, freePort, startEtcd } from '../helpers/etcd';
import { failure } from '../helpers/until';
import { addNetns } from '../helpers/netns';

const t = suite('startup modules');
const ETCD_CLIENT = ['etcd3', '@grpc/grpc-js', '@grpc/proto-loader', 'protobufjs'];
/** What `podway run` needs and no short command does. */
const RUN_ONLY = ['pino', 'prom-client', 'src/cli/run.js', 'src/dataplane/engine.js', 'src/control/index.js'];

/** `podway ARGS` with the module report; returns its exit code, stderr and its one report. */
async function loads(args: string[], env: Record<string, string> = {}): Promise<{ code: number; err: string; out: string; mods: string[] }> {
  const r = await podway(args, { NODE_OPTIONS: REPORT_MODULES, ...env });
  const reports = loadedModuleReports(r.err);
  assert.is(reports.length, 1, `podway ${args.join(' ')} reported its modules once: ${r.err}`);
  return { code: r.code, err: r.err, out: r.out, mods: reports[0]! };
}

function none(mods: readonly string[], of: readonly string[], what: string): void {
  const found = of.filter((m) => mods.includes(m));
  assert.equal(found, [], `${what} loaded ${found.join(', ')}`);
}

t('--help, status and log-level against nothing: commander and the control client, no datastore, YAML, schema, logger or metrics module', async () => {
  const sock = path.join(tempDir(), 'none.sock');
  for (const args of [['--help'], ['status', '--control', sock], ['log-level', '--control', sock], ['run', '--help']]) {
    const r = await loads(args);
    assert.is(r.code, args.includes('--help') ? 0 : 1, `${args.join(' ')}: ${r.err}`);
    if (!args.includes('--help')) assert.match(r.err, `podway is not running (no control socket at ${sock})`);
    none(r.mods, [...ETCD_CLIENT, 'zod', 'yaml', ...RUN_ONLY, 'src/control/file-datastore.js', 'src/control/kv-datastore.js'], args.join(' '));
    assert.equal(r.mods.filter((m) => !m.startsWith('src/')), ['commander'], `${args.join(' ')}: packages`);
  }
});

t('resource commands on a file: and an embedded store load no etcd client', async () => {
  const file = path.join(tempDir(), 'cluster.yaml');
  writeFileSync(file, 'apiVersion: projectcalico.org/v3\nkind: IPPool\nmetadata: {name: p}\nspec: {cidr: 10.244.0.0/16}\n');
  const fromFile = await loads(['get', 'ippools', '--datastore', `file:${file}`]);
  assert.is(fromFile.code, 0, fromFile.err);
  assert.match(fromFile.out, /^p\s+10\.244\.0\.0\/16/m);
  assert.ok(fromFile.mods.includes('yaml') && fromFile.mods.includes('zod'), 'a file: store is parsed (YAML) and checked (schemas)');
  none(fromFile.mods, [...ETCD_CLIENT, ...RUN_ONLY], 'get on a file: store');

  const store = `embedded:${path.join(tempDir(), 'store')}`;
  await ok(['apply', '-f', file, '--datastore', store]);
  const embedded = await loads(['get', 'ippools', '--datastore', store, '-o', 'yaml']);
  assert.is(embedded.code, 0, embedded.err);
  assert.match(embedded.out, 'cidr: 10.244.0.0/16');
  assert.ok(embedded.mods.includes('yaml'), '-o yaml loads the printer');
  none(embedded.mods, [...ETCD_CLIENT, ...RUN_ONLY], 'get on an embedded store');
});

/** The "podway: ..." line of a command's stderr (the module report is on another). */
const said = (err: string): string => err.split('\n').filter((l) => l.startsWith('podway: ')).join('\n');

t('datastore commands on etcd: the light client (no etcd3, gRPC, protobufjs); down, a bad TLS file: EtcdKv\'s words; a dead first endpoint passed over', async () => {
  let etcd: EtcdServer | undefined;
  try {
    // Nothing listens: the error is the one EtcdKv (podway run's client, and the CLI's before) gives for the same call.
    const down = `http://127.0.0.1:${await freePort()}`;
    const refused = await loads(['get', 'ippools', '--datastore', `etcd:${down}`]);
    assert.is(refused.code, 1, refused.err);
    const full = new EtcdKv({ endpoints: [down] });
    const before = await failure(full.list(`${RESOURCES_PREFIX}ippools/`)).finally(() => full.close());
    assert.match(before.message, /unreachable \(list .*\): connect ECONNREFUSED/);
    assert.is(said(refused.err), `podway: ${before.message}`);
    none(refused.mods, [...ETCD_CLIENT, 'src/control/kv/etcd-kv.js', ...RUN_ONLY], 'get on an etcd that is down');
    assert.ok(refused.mods.includes('src/control/kv/etcd-lite.js'), `the light client: ${refused.mods.join(' ')}`);

    // A CA file that cannot be read: named as EtcdKv names it.
    const ca = `${tempDir()}/missing-ca.pem`;
    const badTls = await loads(['ipam', 'show', '--datastore', 'etcd:https://127.0.0.1:2379', '--etcd-ca-cert-file', ca]);
    assert.is(badTls.code, 1, badTls.err);
    let tlsWords = '';
    try {
      new EtcdKv({ endpoints: ['https://127.0.0.1:2379'], tls: { caFile: ca } });
    } catch (e) {
      tlsWords = (e as Error).message;
    }
    assert.match(tlsWords, 'cannot read the CA certificate file');
    assert.is(said(badTls.err), `podway: ${tlsWords}`);

    // A real etcd, listed after a dead endpoint: apply, get, ipam show answer, none loading etcd3.
    etcd = await startEtcd();
    const spec = `etcd:${down},${etcd.endpoint}`;
    const file = path.join(tempDir(), 'pool.yaml');
    writeFileSync(file, 'apiVersion: projectcalico.org/v3\nkind: IPPool\nmetadata: {name: lite}\nspec: {cidr: 10.251.0.0/16}\n');
    for (const args of [['apply', '-f', file], ['get', 'ippools', '-o', 'wide'], ['ipam', 'show']]) {
      const r = await loads([...args, '--datastore', spec]);
      assert.is(r.code, 0, `${args.join(' ')}: ${r.err}`);
      if (args[0] !== 'apply') assert.match(r.out, '10.251.0.0/16');
      none(r.mods, [...ETCD_CLIENT, 'src/control/kv/etcd-kv.js', ...RUN_ONLY], `${args.join(' ')} on etcd`);
    }
  } finally {
    await etcd?.stop();
  }
});

t('podway run on a file: store: neither thread loads the etcd client, and no prom-client without --metrics-port', async () => {
  if (process.getuid?.() !== 0) throw new Error('podway run needs root (a network namespace)');
  const ns = `pw-sum-${randomBytes(3).toString('hex')}`;
  const dir = tempDir();
  const sock = path.join(dir, 'c.sock');
  const file = path.join(dir, 'cluster.yaml');
  writeFileSync(file, [
    'apiVersion: projectcalico.org/v3\nkind: IPPool\nmetadata: {name: p}\nspec: {cidr: 10.244.0.0/16, blockSize: 26}',
    'apiVersion: projectcalico.org/v3\nkind: Node\nmetadata: {name: nx}\nspec: {bgp: {ipv4Address: 10.1.1.3/24}}',
  ].join('\n---\n') + '\n');
  const dropNs = addNetns(ns);
  const proc = { current: null as ReturnType<typeof spawn> | null };
  try {
    for (const args of [['link', 'set', 'lo', 'up'], ['link', 'add', 'd0', 'type', 'veth', 'peer', 'name', 'd1'], ['addr', 'add', '10.1.1.3/24', 'dev', 'd0'], ['link', 'set', 'd0', 'up'], ['link', 'set', 'd1', 'up']]) {
      execFileSync('ip', ['-n', ns, ...args]);
    }
    const p = spawn('ip', ['netns', 'exec', ns, process.execPath, BIN, 'run', '--node', 'nx', '--datastore', `file:${file}`, '--control', sock, '--log-level', 'warn'], {
      env: { ...process.env, NODE_OPTIONS: REPORT_MODULES },
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    proc.current = p;
    let err = '';
    p.stderr!.setEncoding('utf8').on('data', (d: string) => (err += d));
    const exited = new Promise<void>((r) => p.once('exit', () => r()));
    // Running: a plain status answers once the engine forwards (the model thread has loaded).
    const deadline = Date.now() + START_WAIT_MIN_MS; // a bound on the wait, as Lab.startPodway's
    let up = false;
    while (!up && Date.now() < deadline && p.exitCode === null) {
      up = existsSync(sock) && (await controlRequest(sock, { cmd: 'status' }, 1000).then(() => true, () => false));
      if (!up) await new Promise((r) => setTimeout(r, 100));
    }
    assert.ok(up, `podway run came up: ${err}`);
    p.kill('SIGTERM');
    const stopped = await within(exited.then(() => true), 10_000, false);
    assert.ok(stopped, 'podway run stopped on SIGTERM');
    // the spawner helper (a process forked at start, dataplane/spawner.ts) reports too once it
    // exits on the stop's SIGTERM: it loads its own module alone
    const all = loadedModuleReports(err);
    const spawner = all.filter((m) => m.includes('src/dataplane/spawner-child.js'));
    for (const m of spawner) assert.equal(m, ['src/dataplane/spawner-child.js'], 'the spawner helper loads nothing else');
    const reports = all.filter((m) => !m.includes('src/dataplane/spawner-child.js'));
    assert.is(reports.length, 2, `the main and the model thread reported their modules: ${err}`);
    const main = reports.find((m) => m.includes('src/cli/run.js'));
    const model = reports.find((m) => m.includes('src/cli/model-worker.js'));
    assert.ok(main && model, `one report from each thread: ${JSON.stringify(reports)}`);
    assert.ok(main!.includes('pino') && main!.includes('src/dataplane/engine.js'), 'the main thread runs the engine and logs');
    assert.ok(model!.includes('yaml'), 'the model thread parses the file');
    for (const [what, mods] of [['main thread', main!], ['model thread', model!]] as const) {
      none(mods, [...ETCD_CLIENT, 'prom-client', 'src/control/bgp/speaker.js'], `podway run (file:), ${what}`);
    }
  } finally {
    const p = proc.current;
    if (p && p.exitCode === null && p.signalCode === null) p.kill('SIGKILL');
    dropNs();
  }
});

t.run();
