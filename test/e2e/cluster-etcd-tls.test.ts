/**
 * etcd over TLS with client-certificate auth (root: a network namespace of its own). A CA, a
 * server certificate for 127.0.0.1 and a client certificate are made with openssl in a temp dir;
 * etcd serves https only and demands a client certificate signed by that CA. Then:
 *   - `podway apply/get/ipam` reach it with --etcd-ca-cert-file/--etcd-cert-file/--etcd-key-file,
 *     and with Calico's env names (DATASTORE_TYPE=etcdv3, ETCD_ENDPOINTS, ETCD_CA_CERT_FILE, ...);
 *   - `podway run` registers its Node and marks the datastore ready through TLS;
 *   - a client certificate from another CA (or none) is refused by etcd, and a CA file that does
 *     not hold etcd's CA refuses etcd's certificate: the CLI, the CNI plugin and `podway run` (at
 *     start) fail with a configuration error naming the TLS settings, not "etcd unreachable";
 *   - no [DEP0123] warning (TLS ServerName set to an IP address) from any of them;
 *   - a missing file, a file that is not PEM, and a cert without its key are clear errors naming
 *     the file and the flag, at once (no retrying against a handshake that cannot succeed).
 * etcd and every podway process run inside the test's own namespace, so only its loopback is used.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { ChildProcess, execFileSync, spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { atCleanup, isRoot, until } from './e2e-kit';
import { within } from '../../src/lab/lab';

const PODWAY = resolve(__dirname, '..', '..', '..', 'bin', 'podway.js');
const tag = Math.random().toString(16).slice(2, 8);
const NS = `pwtls-${tag}`;
const ENDPOINT = 'https://127.0.0.1:23790';
const procs: ChildProcess[] = [];
let dir = '';

function openssl(args: string[]): void {
  execFileSync('openssl', args, { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'] });
}

/** A CA, and certificates it signs (server: SAN IP 127.0.0.1; client: clientAuth). */
function makeCerts(prefix: string): void {
  openssl(['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '1', '-subj', `/CN=${prefix}-ca`, '-keyout', `${prefix}-ca.key`, '-out', `${prefix}-ca.pem`]);
  for (const [name, ext] of [['server', 'subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth'], ['client', 'extendedKeyUsage=clientAuth']] as const) {
    writeFileSync(join(dir, `${prefix}-${name}.ext`), `${ext}\n`);
    openssl(['req', '-newkey', 'rsa:2048', '-nodes', '-subj', `/CN=${prefix}-${name}`, '-keyout', `${prefix}-${name}.key`, '-out', `${prefix}-${name}.csr`]);
    openssl(['x509', '-req', '-in', `${prefix}-${name}.csr`, '-CA', `${prefix}-ca.pem`, '-CAkey', `${prefix}-ca.key`, '-CAcreateserial', '-days', '1', '-extfile', `${prefix}-${name}.ext`, '-out', `${prefix}-${name}.pem`]);
  }
}

const f = (name: string) => join(dir, name);

interface Result { code: number | null; out: string; err: string }

/** `podway ARGS` inside the namespace, bounded in time. */
function podway(args: string[], env: Record<string, string> = {}): Result {
  const r = spawnSync('ip', ['netns', 'exec', NS, process.execPath, PODWAY, ...args], {
    encoding: 'utf8', timeout: 30_000,
    // Only what the test sets: no DATASTORE_TYPE/ETCD_* from the caller's environment.
    env: { PATH: process.env.PATH ?? '/usr/bin:/bin', ...env },
  });
  return { code: r.status, out: r.stdout, err: r.stderr };
}

const tlsFlags = (ca = 'main-ca.pem', cert = 'main-client.pem', key = 'main-client.key') =>
  ['--datastore', `etcd:${ENDPOINT}`, '--etcd-ca-cert-file', f(ca), '--etcd-cert-file', f(cert), '--etcd-key-file', f(key)];

/** Forgets cleanUp's registration at exit (test.after ran it). */
let forgetCleanUp = (): void => undefined;

test.before(() => {
  if (!isRoot()) return;
  forgetCleanUp = atCleanup(cleanUp);
  dir = mkdtempSync(join(tmpdir(), 'podway-etcdtls-'));
  makeCerts('main');
  makeCerts('rogue');
  writeFileSync(f('not-pem.pem'), 'this is not a certificate\n');
  execFileSync('ip', ['netns', 'add', NS]);
  execFileSync('ip', ['-n', NS, 'link', 'set', 'lo', 'up']);
  // The address `podway run --ip 10.78.0.9/24` registers must be on an interface here.
  execFileSync('ip', ['-n', NS, 'link', 'add', 'tls0', 'type', 'veth', 'peer', 'name', 'tls1']);
  execFileSync('ip', ['-n', NS, 'addr', 'add', '10.78.0.9/24', 'dev', 'tls0']);
  for (const dev of ['tls0', 'tls1']) execFileSync('ip', ['-n', NS, 'link', 'set', dev, 'up']);
  const etcd = spawn('ip', ['netns', 'exec', NS, '/usr/bin/etcd',
    '--name', 'tls', '--data-dir', f('etcd-data'),
    '--listen-client-urls', ENDPOINT, '--advertise-client-urls', ENDPOINT,
    '--listen-peer-urls', 'http://127.0.0.1:23800', '--initial-advertise-peer-urls', 'http://127.0.0.1:23800',
    '--initial-cluster', 'tls=http://127.0.0.1:23800',
    '--cert-file', f('main-server.pem'), '--key-file', f('main-server.key'),
    '--trusted-ca-file', f('main-ca.pem'), '--client-cert-auth',
    '--log-level', 'warn', '--logger', 'zap'], { stdio: ['ignore', 'ignore', 'pipe'] });
  procs.push(etcd);
});

/** etcd and the runs stopped, NS deleted, the files removed: after the tests, and at exit or on the
 * runner's SIGTERM (e2e-kit atCleanup), where test.after does not run. */
function cleanUp(): void {
  for (const p of procs) if (p.pid && p.exitCode === null && p.signalCode === null) try { process.kill(p.pid, 'SIGKILL'); } catch { /* gone */ }
  // `ip netns exec` runs etcd as its child: kill whatever is left in the namespace.
  try {
    for (const pid of execFileSync('ip', ['netns', 'pids', NS], { encoding: 'utf8' }).split('\n').filter(Boolean)) {
      try { process.kill(Number(pid), 'SIGKILL'); } catch { /* gone */ }
    }
  } catch { /* namespace never made */ }
  spawnSync('ip', ['netns', 'del', NS]);
  if (dir) rmSync(dir, { recursive: true, force: true });
}

test.after(() => {
  forgetCleanUp();
  cleanUp();
});

const POOL = `apiVersion: projectcalico.org/v3
kind: IPPool
metadata: {name: tls-pool}
spec: {cidr: 10.77.0.0/24, blockSize: 28}
---
apiVersion: projectcalico.org/v3
kind: Node
metadata: {name: tls-a}
spec: {bgp: {ipv4Address: 10.78.0.1/24}}
`;

test('podway apply/get/ipam through TLS with the flags, and with Calico\'s env names', async () => {
  if (!isRoot()) { console.log('    (skipped: needs root for a network namespace)'); return; }
  writeFileSync(f('pool.yaml'), POOL);
  // etcd takes a moment to serve: the first apply is retried, bounded.
  let applied: Result = { code: null, out: '', err: '' };
  assert.ok(await until(() => (applied = podway(['apply', '-f', f('pool.yaml'), ...tlsFlags()])).code === 0, 20_000, 200), `apply: ${applied.err}`);
  assert.is(applied.out, "Successfully applied 2 resource(s)\n");
  // The endpoint is an IP: no SNI is sent, so Node says nothing about it (review D, LOW 8).
  assert.not.match(applied.err, /DEP0123|ServerName/, applied.err);
  const got = podway(['get', 'ippool', 'tls-pool', '-o', 'json', ...tlsFlags()]);
  assert.is(got.code, 0, got.err);
  assert.is(JSON.parse(got.out).spec.cidr, '10.77.0.0/24');

  const env = {
    DATASTORE_TYPE: 'etcdv3', ETCD_ENDPOINTS: ENDPOINT,
    ETCD_CA_CERT_FILE: f('main-ca.pem'), ETCD_CERT_FILE: f('main-client.pem'), ETCD_KEY_FILE: f('main-client.key'),
  };
  const assigned = podway(['ipam', 'assign', '--node', 'tls-a', '--count', '3', '--handle', 'tls-h'], env);
  assert.is(assigned.code, 0, assigned.err);
  const ips = assigned.out.trim().split('\n');
  assert.is(ips.length, 3, assigned.out);
  assert.ok(ips.every((ip) => /^10\.77\.0\.\d+$/.test(ip)), assigned.out);
  // Read through TLS, blocks and endpoints alike: the three have no endpoint, so they are leaked (exit 3) once
  // judged at once (--grace-period 0: ipam assign dates them).
  const check = podway(['ipam', 'check', '--grace-period', '0'], env);
  assert.is(check.code, 3, check.out + check.err);
  assert.match(check.out, '\nFound 3 IPs that are allocated in IPAM but not actually in use.\n');
  const nodes = podway(['get', 'node', '-o', 'json'], env);
  assert.is(nodes.code, 0, nodes.err);
  // A flag wins over its env name: a bad env CA with a good --etcd-ca-cert-file still works.
  const mixed = podway(['get', 'ippool', '--etcd-ca-cert-file', f('main-ca.pem')], { ...env, ETCD_CA_CERT_FILE: f('not-pem.pem') });
  assert.is(mixed.code, 0, mixed.err);
  assert.match(mixed.out, /tls-pool/);
});

test('podway run registers its Node and marks the datastore ready through TLS', async () => {
  if (!isRoot()) return;
  const run = spawn('ip', ['netns', 'exec', NS, process.execPath, PODWAY, 'run', '--node', 'tls-run', '--ip', '10.78.0.9/24',
    '--control', f('run.sock'), '--model-cache', f('run.model.json'), ...tlsFlags()], { stdio: ['ignore', 'pipe', 'pipe'], env: { PATH: process.env.PATH ?? '/usr/bin:/bin' } });
  procs.push(run);
  let log = '';
  run.stdout!.on('data', (b: Buffer) => { log += b.toString(); });
  run.stderr!.on('data', (b: Buffer) => { log += b.toString(); });
  try {
    let node: { spec?: { bgp?: { ipv4Address?: string } } } | null = null;
    const registered = await until(() => {
      const r = podway(['get', 'node', 'tls-run', '-o', 'json', ...tlsFlags()]);
      node = r.code === 0 ? JSON.parse(r.out) : null;
      return node !== null;
    }, 20_000, 250);
    assert.ok(registered, `podway run did not register tls-run:\n${log.slice(-2000)}`);
    assert.is(node!.spec?.bgp?.ipv4Address, '10.78.0.9/24');
    const ready = await until(() => /"datastoreReady": *true/.test(podway(['get', 'clusterinformation', 'default', '-o', 'json', ...tlsFlags()]).out), 10_000, 250);
    assert.ok(ready, `datastoreReady not set:\n${log.slice(-2000)}`);
  } finally {
    if (run.pid && run.exitCode === null && run.signalCode === null) {
      const exited = new Promise((r) => run.once('exit', r));
      process.kill(run.pid, 'SIGTERM');
      await within(exited, 5000, null);
      try { for (const pid of execFileSync('ip', ['netns', 'pids', NS], { encoding: 'utf8' }).split('\n').filter(Boolean)) if (/bin\/podway\.js/.test(execFileSync('cat', [`/proc/${pid}/cmdline`], { encoding: 'utf8' }))) process.kill(Number(pid), 'SIGKILL'); } catch { /* gone */ }
    }
  }
});

test('a refused client certificate or an untrusted server certificate is a configuration error naming the TLS settings (CLI, CNI, podway run), not an outage, bounded', () => {
  if (!isRoot()) return;
  const good = podway(['get', 'ippool', ...tlsFlags()]);
  assert.is(good.code, 0, `control: the right certificate still works: ${good.err}`);
  assert.not.match(good.err, /DEP0123|ServerName/, good.err);
  const cases: [string, string[], RegExp][] = [
    ['another CA\'s client certificate', tlsFlags('main-ca.pem', 'rogue-client.pem', 'rogue-client.key'), /etcd refused the TLS handshake: bad certificate \(the client certificate and key: --etcd-cert-file \/ ETCD_CERT_FILE, --etcd-key-file \/ ETCD_KEY_FILE/],
    ['no client certificate', ['--datastore', `etcd:${ENDPOINT}`, '--etcd-ca-cert-file', f('main-ca.pem')], /etcd refused the TLS handshake: bad certificate \(the client certificate and key: --etcd-cert-file/],
    ['a CA file without etcd\'s CA', tlsFlags('rogue-ca.pem'), /etcd's server certificate is not accepted: unable to verify the first certificate \(--etcd-ca-cert-file \/ ETCD_CA_CERT_FILE must hold the CA that signed it\)/],
  ];
  for (const [what, flags, want] of cases) {
    const t0 = Date.now();
    const r = podway(['get', 'ippool', ...flags]);
    assert.is(r.code, 1, `${what}: ${r.out}`);
    assert.match(r.err, want, `${what}: ${r.err}`);
    assert.not.match(r.err, /unreachable/, `${what}: not an outage: ${r.err}`);
    assert.not.match(r.out, /tls-pool/);
    assert.ok(Date.now() - t0 < 30_000, `${what}: gave up in bounded time`);
  }
  // The CNI plugin: ADD fails with it (code 7, invalid configuration: the conflist's TLS keys), and
  // so does DEL (not deferred to the spool as when etcd is away), before anything is made.
  const plugin = resolve(__dirname, '..', '..', 'src', 'cni', 'main.js');
  const conf = JSON.stringify({ cniVersion: '1.0.0', name: 'tls-net', type: 'podway', datastore: `etcd:${ENDPOINT}`, nodename: 'tls-a',
    etcd_ca_cert_file: f('main-ca.pem'), etcd_cert_file: f('rogue-client.pem'), etcd_key_file: f('rogue-client.key'),
    pending_del_dir: f('pending-del'), ipam_lock_file: f('ipam.lock'), control: f('none.sock'), ipam: { type: 'podway' } });
  for (const command of ['ADD', 'DEL']) {
    const r = spawnSync('ip', ['netns', 'exec', NS, process.execPath, plugin], {
      input: conf, encoding: 'utf8', timeout: 60_000,
      env: { PATH: process.env.PATH ?? '/usr/bin:/bin', CNI_COMMAND: command, CNI_CONTAINERID: `tls${tag}`, CNI_NETNS: `/run/netns/${NS}`, CNI_IFNAME: 'eth9', CNI_PATH: '/opt/cni/bin' },
    });
    assert.is(r.status, 1, `${command}: ${r.stdout} ${r.stderr}`);
    const res = JSON.parse(r.stdout);
    assert.is(res.code, 7, `${command}: ${r.stdout}`);
    assert.match(res.msg, /etcd refused the TLS handshake: bad certificate .*; in the network config: etcd_ca_cert_file, etcd_cert_file, etcd_key_file$/);
    assert.not.match(r.stderr, /DEP0123|ServerName/, r.stderr);
  }
  assert.not.ok(existsSync(f('pending-del')) && readdirSync(f('pending-del')).length > 0, 'the DEL was not deferred as if etcd were away');
  // podway run stops at start with it (once), instead of retrying "unreachable" every few seconds.
  const run = podway(['run', '--node', 'tls-rej', '--ip', '10.78.0.9/24', '--control', f('rej.sock'), '--model-cache', f('rej.model.json'), ...tlsFlags('main-ca.pem', 'rogue-client.pem', 'rogue-client.key')]);
  assert.is(run.code, 1, `exited with an error, not killed by the 30 s bound: ${(run.err + run.out).slice(-1500)}`);
  const said = (run.err + run.out).split('\n').filter((l) => /refused the TLS handshake/.test(l));
  assert.ok(said.length >= 1 && said.length <= 2, `said once (and in the exit error): ${said.join('\n')}`);
  assert.not.match(run.err + run.out, /unreachable/, (run.err + run.out).slice(-1500));
});

test('bad TLS files: clear errors naming the file and the flag, at once', () => {
  if (!isRoot()) return;
  // a file that cannot be read or parsed is an error (1); flags that do not go together a usage error (2, as every datastore command since 89362de)
  const cases: [string[], RegExp, number][] = [
    [tlsFlags('missing-ca.pem'), new RegExp(`cannot read the CA certificate file ${f('missing-ca.pem')} \\(--etcd-ca-cert-file / ETCD_CA_CERT_FILE\\)`), 1],
    [tlsFlags('main-ca.pem', 'not-pem.pem'), new RegExp(`the client certificate file ${f('not-pem.pem')} \\(--etcd-cert-file / ETCD_CERT_FILE\\) is not a PEM certificate`), 1],
    [tlsFlags('main-ca.pem', 'main-client.pem', 'not-pem.pem'), new RegExp(`the client key file ${f('not-pem.pem')} \\(--etcd-key-file / ETCD_KEY_FILE\\) is not a PEM private key`), 1],
    [['--datastore', `etcd:${ENDPOINT}`, '--etcd-ca-cert-file', f('main-ca.pem'), '--etcd-cert-file', f('main-client.pem')], /ETCD_CERT_FILE \(--etcd-cert-file\) and ETCD_KEY_FILE \(--etcd-key-file\) must be given together/, 2],
    [['--datastore', 'etcd:http://127.0.0.1:23790', '--etcd-ca-cert-file', f('main-ca.pem')], /etcd TLS files are given .* but the etcd endpoints are http:\/\//, 2],
  ];
  for (const [args, want, code] of cases) {
    for (const cmd of [['get', 'ippool'], ['ipam', 'show']]) {
      const t0 = Date.now();
      const r = podway([...cmd, ...args]);
      assert.is(r.code, code, `${cmd.join(' ')} ${args.join(' ')}: ${r.out}`);
      assert.match(r.err, want);
      assert.ok(Date.now() - t0 < 10_000, `${cmd.join(' ')}: failed at once`);
    }
  }
  // podway run stops at start with the same error instead of retrying (1: a file not there yet may
  // be written a moment later by another unit; one there but not PEM is 2, cli/etcd-tls-mistakes)
  const run = podway(['run', '--node', 'tls-bad', '--ip', '10.78.0.10/24', '--control', f('bad.sock'), ...tlsFlags('missing-ca.pem')]);
  assert.is(run.code, 1, 'exited with an error, not killed by the 30 s bound');
  assert.match(run.err + run.out, /cannot read the CA certificate file .*missing-ca\.pem \(--etcd-ca-cert-file \/ ETCD_CA_CERT_FILE\)/);
});

test.run();
