// An etcd serving TLS given as http://: it closes the plain HTTP/2 connection without a byte, and
// every client said `unreachable ... connection closed before it was up` (podway run retried it
// as an outage every 10 s, forever). The light client (the CLI's, the CNI plugin's, podway run's
// registration) now asks the endpoint for a TLS handshake when that happens and says what it is:
// a configuration error naming the https:// URL to give, as an endpoint that is not etcd is (the
// CLI fails, the CNI plugin fails ADD and DEL with code 7, podway run stops at start). A server
// that accepts and closes without speaking TLS is still unreachable ("closed before it was up", or
// ECONNRESET when its close came after the client's first bytes).
// Real etcd with a certificate made by openssl, inside a network namespace of the test's own.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { ChildProcess, execFileSync, spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { ETCD_BINARY, freePort } from '../helpers/etcd';
import { EtcdKv } from '../../src/control/kv/etcd-kv';
import { KvNotEtcdError } from '../../src/control/kv/kv';
import { KvDatastore } from '../../src/control/kv-datastore';
import { failure, until } from '../helpers/until';
import { addNetns } from '../helpers/netns';

const PODWAY = resolve(__dirname, '..', '..', '..', 'bin', 'podway.js');
const PLUGIN = resolve(__dirname, '..', '..', 'src', 'cni', 'main.js');

test('an https etcd given as http://: the CLI, the CNI plugin (code 7) and podway run (stops at start) say it speaks TLS and name the https:// URL; a server closing without TLS stays unreachable', async () => {
  const ns = `pwtlsh-${process.pid}-${Math.random().toString(16).slice(2, 6)}`;
  const dir = mkdtempSync(join(tmpdir(), 'podway-tls-as-http-'));
  const dropNs = addNetns(ns);
  let etcd: ChildProcess | undefined;
  let closer: ChildProcess | undefined;
  const stop = (p?: ChildProcess) => { if (p?.pid && p.exitCode === null && p.signalCode === null) try { process.kill(p.pid, 'SIGKILL'); } catch { /* gone */ } };
  try {
    execFileSync('ip', ['-n', ns, 'link', 'set', 'lo', 'up']);
    execFileSync('ip', ['-n', ns, 'link', 'add', 'th0', 'type', 'veth', 'peer', 'name', 'th1']);
    execFileSync('ip', ['-n', ns, 'addr', 'add', '10.78.1.9/24', 'dev', 'th0']);
    for (const dev of ['th0', 'th1']) execFileSync('ip', ['-n', ns, 'link', 'set', dev, 'up']);
    const openssl = (args: string[]) => execFileSync('openssl', args, { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'] });
    openssl(['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '1', '-subj', '/CN=tls-as-http-ca', '-keyout', 'ca.key', '-out', 'ca.pem']);
    writeFileSync(join(dir, 'server.ext'), 'subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n');
    openssl(['req', '-newkey', 'rsa:2048', '-nodes', '-subj', '/CN=server', '-keyout', 'server.key', '-out', 'server.csr']);
    openssl(['x509', '-req', '-in', 'server.csr', '-CA', 'ca.pem', '-CAkey', 'ca.key', '-CAcreateserial', '-days', '1', '-extfile', 'server.ext', '-out', 'server.pem']);
    etcd = spawn('ip', ['netns', 'exec', ns, ETCD_BINARY, '--name', 'tls-as-http', '--data-dir', join(dir, 'data'),
      '--listen-client-urls', 'https://127.0.0.1:2379', '--advertise-client-urls', 'https://127.0.0.1:2379',
      '--listen-peer-urls', 'http://127.0.0.1:2380', '--initial-advertise-peer-urls', 'http://127.0.0.1:2380', '--initial-cluster', 'tls-as-http=http://127.0.0.1:2380',
      '--cert-file', join(dir, 'server.pem'), '--key-file', join(dir, 'server.key'), '--log-level', 'warn', '--logger', 'zap'], { stdio: 'ignore' });
    const inNs = (args: string[], env: Record<string, string> = {}, input?: string) => spawnSync('ip', ['netns', 'exec', ns, process.execPath, ...args], {
      input, encoding: 'utf8', timeout: 60_000, env: { PATH: process.env.PATH ?? '/usr/bin:/bin', ...env },
    });
    // healthy over TLS (curl -k: the test's own check, not podway's)
    const end = Date.now() + 20_000;
    while (!/"health":\s*"true"/.test(spawnSync('ip', ['netns', 'exec', ns, 'curl', '-sk', '-m', '1', 'https://127.0.0.1:2379/health'], { encoding: 'utf8' }).stdout ?? '')) {
      assert.ok(Date.now() < end, 'TLS etcd healthy within 20 s');
      await new Promise((r) => setTimeout(r, 100));
    }
    const endpoint = 'http://127.0.0.1:2379';
    const saysTls = /the endpoint http:\/\/127\.0\.0\.1:2379 speaks TLS, not plain HTTP\/2: an https:\/\/ etcd given as http:\/\/ \(give it as https:\/\/127\.0\.0\.1:2379, with its CA in --etcd-ca-cert-file/;
    const cli = inNs([PODWAY, 'get', 'ippool', '--datastore', `etcd:${endpoint}`]);
    assert.is(cli.status, 1, cli.stdout + cli.stderr);
    assert.match(cli.stderr, saysTls);
    const conf = JSON.stringify({ cniVersion: '1.0.0', name: 'th-net', type: 'podway', datastore: `etcd:${endpoint}`, nodename: 'th-a',
      pending_del_dir: join(dir, 'pending-del'), ipam_lock_file: join(dir, 'ipam.lock'), control: join(dir, 'none.sock'), ipam: { type: 'podway' } });
    for (const command of ['ADD', 'DEL']) {
      const r = inNs([PLUGIN], { CNI_COMMAND: command, CNI_CONTAINERID: `th${process.pid}`, CNI_NETNS: `/run/netns/${ns}`, CNI_IFNAME: 'eth9', CNI_PATH: '/opt/cni/bin' }, conf);
      assert.is(r.status, 1, `${command}: ${r.stdout} ${r.stderr}`);
      const res = JSON.parse(r.stdout) as { code: number; msg: string };
      assert.is(res.code, 7, `${command}: ${r.stdout}`);
      assert.match(res.msg, saysTls);
    }
    assert.not.ok(existsSync(join(dir, 'pending-del')) && readdirSync(join(dir, 'pending-del')).length > 0, 'the DEL was not deferred as if etcd were away');
    const run = inNs([PODWAY, 'run', '--node', 'th-run', '--ip', '10.78.1.9/24', '--control', join(dir, 'run.sock'), '--model-cache', join(dir, 'run.model.json'), '--datastore', `etcd:${endpoint}`]);
    assert.is(run.status, 1, `exited with an error, not killed by the 60 s bound: ${(run.stderr + run.stdout).slice(-1500)}`);
    assert.match(run.stderr + run.stdout, saysTls);
    assert.not.match(run.stderr + run.stdout, /retrying in/, (run.stderr + run.stdout).slice(-1500));

    // A server that accepts and closes at once, speaking no TLS: unreachable as before.
    closer = spawn('ip', ['netns', 'exec', ns, process.execPath, '-e', 'require("net").createServer((s) => s.destroy()).listen(2391, "127.0.0.1", () => console.log("up"))'], { stdio: ['ignore', 'pipe', 'ignore'] });
    await new Promise<void>((r) => closer!.stdout!.once('data', () => r()));
    const plain = inNs([PODWAY, 'get', 'ippool', '--datastore', 'etcd:http://127.0.0.1:2391']);
    assert.is(plain.status, 1, plain.stderr);
    // closed before the client's preface was read (FIN), or after (RST: data unread), by timing
    assert.match(plain.stderr, /unreachable \(list [^)]*\): (connection closed before it was up|read ECONNRESET)/, plain.stderr);
    assert.not.match(plain.stderr, /TLS/);
  } finally {
    stop(closer);
    stop(etcd);
    dropNs();
    rmSync(dir, { recursive: true, force: true });
  }
});

// A TLS endpoint that resets a plain connection (the client's preface unread as it closes: a busy
// etcd can do that) instead of closing it: the client saw ECONNRESET, asked nothing, and called it
// unreachable. It asks the TLS question then too. The peer: on loopback, a server that answers a
// TLS ClientHello with a TLS alert (a TLS server refusing the handshake; enough for the question)
// and resets anything else (socket.resetAndDestroy: an RST, every time).
test('an http:// endpoint that resets a plain connection but speaks TLS: said to speak TLS, not "read ECONNRESET"', async () => {
  const server = `const net = require('net');
net.createServer((s) => s.once('data', (d) => {
  if (d[0] === 0x16) s.end(Buffer.from([0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 0x28]));
  else s.resetAndDestroy();
})).listen(0, '127.0.0.1', function () { console.log(this.address().port); });
setTimeout(() => process.exit(0), 30000);`;
  const peer = spawn(process.execPath, ['-e', server], { stdio: ['ignore', 'pipe', 'ignore'] });
  try {
    const port = await new Promise<string>((r) => peer.stdout!.once('data', (d) => r(String(d).trim())));
    for (let i = 0; i < 2; i++) {
      const r = spawnSync(process.execPath, [PODWAY, 'get', 'ippool', '--datastore', `etcd:http://127.0.0.1:${port}`], { encoding: 'utf8', timeout: 30_000 });
      assert.is(r.status, 1, r.stderr);
      assert.match(r.stderr, `the endpoint http://127.0.0.1:${port} speaks TLS, not plain HTTP/2`, r.stderr);
    }
  } finally {
    if (peer.pid && peer.exitCode === null) process.kill(peer.pid, 'SIGKILL');
  }
});

// Once past its start, podway run's own clients (EtcdKv over grpc-js: its watches, the address
// store's calls) said "unreachable ...: Failed to connect" for the same etcd (grpc-js's words for a
// connection closed before HTTP/2 was up), and the datastore called it an outage. They now ask the
// TLS question too (grpc-connect-bound.ts). A real etcd on loopback, first plain (the watch up),
// then started again on the same data and URL serving TLS: the watch goes down saying the endpoint
// speaks TLS (as the datastore's error says it: KvDatastore, as podway run's model thread has it),
// and a call fails the same way (KvNotEtcdError).
test('an etcd that comes back serving TLS at the http:// URL podway run was given: its watch, its datastore error and its calls say it speaks TLS, not "Failed to connect"', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'podway-tls-later-'));
  let etcd: ChildProcess | undefined;
  let kv: EtcdKv | undefined;
  let ds: KvDatastore | undefined;
  const stop = async () => {
    const p = etcd;
    if (!p?.pid || p.exitCode !== null || p.signalCode !== null) return;
    const gone = new Promise((r) => p.once('exit', r));
    process.kill(p.pid, 'SIGKILL');
    await gone;
  };
  try {
    const openssl = (args: string[]) => execFileSync('openssl', args, { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'] });
    openssl(['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '1', '-subj', '/CN=tls-later-ca', '-keyout', 'ca.key', '-out', 'ca.pem']);
    writeFileSync(join(dir, 'server.ext'), 'subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n');
    openssl(['req', '-newkey', 'rsa:2048', '-nodes', '-subj', '/CN=server', '-keyout', 'server.key', '-out', 'server.csr']);
    openssl(['x509', '-req', '-in', 'server.csr', '-CA', 'ca.pem', '-CAkey', 'ca.key', '-CAcreateserial', '-days', '1', '-extfile', 'server.ext', '-out', 'server.pem']);
    const [cp, pp] = [await freePort(), await freePort()];
    const endpoint = `http://127.0.0.1:${cp}`;
    const start = (tls: boolean) => {
      const url = `${tls ? 'https' : 'http'}://127.0.0.1:${cp}`;
      etcd = spawn(ETCD_BINARY, ['--name', 'tls-later', '--data-dir', join(dir, 'data'), '--listen-client-urls', url, '--advertise-client-urls', url,
        '--listen-peer-urls', `http://127.0.0.1:${pp}`, '--initial-advertise-peer-urls', `http://127.0.0.1:${pp}`, '--initial-cluster', `tls-later=http://127.0.0.1:${pp}`,
        ...(tls ? ['--cert-file', join(dir, 'server.pem'), '--key-file', join(dir, 'server.key')] : []), '--log-level', 'warn', '--logger', 'zap'], { stdio: 'ignore' });
    };
    start(false);
    kv = new EtcdKv({ endpoints: [endpoint], timeoutMs: 3000 });
    const store = kv;
    assert.ok(await until(async () => { try { await store.get('/x'); return true; } catch { return false; } }, 20_000, 100), 'plain etcd answers');
    ds = new KvDatastore(kv);
    const errors: string[] = [];
    ds.onError((e) => errors.push(e.message));
    await ds.start();
    const statuses: { s: string; d: string; k?: string }[] = [];
    const w = kv.watch('/tls-later/', 1, { onEvents: () => undefined, onResync: () => undefined, onStatus: (s, d, k) => statuses.push({ s, d, k }) });
    await stop();
    start(true);
    const says = `the endpoint ${endpoint} speaks TLS, not plain HTTP/2: an https:// etcd given as http:// (give it as ${endpoint.replace('http:', 'https:')}, with its CA in --etcd-ca-cert-file / ETCD_CA_CERT_FILE`;
    assert.ok(await until(() => statuses.some((x) => x.s === 'down' && x.k === 'not-etcd' && x.d.includes(says)), 20_000, 100), `the watch says it: ${JSON.stringify(statuses)}`);
    assert.ok(await until(() => errors.some((e) => e.startsWith(`datastore speaks TLS at an http:// endpoint: etcd ${endpoint} (watch /calico/`) && e.includes(says)), 20_000, 100), `the datastore says it: ${JSON.stringify(errors)}`);
    const e = await failure(kv.get('/x'));
    assert.instance(e, KvNotEtcdError, e.message);
    assert.ok(e.message.includes(says), e.message);
    assert.not.ok([...statuses.map((x) => x.d), ...errors, e.message].some((m) => /Failed to connect/.test(m)), 'no "Failed to connect"');
    await w.close();
  } finally {
    await ds?.close().catch(() => undefined);
    await kv?.close().catch(() => undefined);
    await stop();
    rmSync(dir, { recursive: true, force: true });
  }
});

test.run();
