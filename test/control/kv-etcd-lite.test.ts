// EtcdLiteKv (the CNI plugin's etcd client: KV calls over node:http2, no etcd3) against real etcds
// (test/helpers/etcd.ts: loopback, free ports, stopped by PID): the shared conformance suite (no
// watches), the same entries and cluster_id as EtcdKv, and EtcdKv's behaviour where it fails, with
// the same words: nothing listening, a listener that never answers, a stopped etcd before and after
// the connection is up (kv-etcd-slow.test.ts for EtcdKv), a dead first endpoint, a cluster without
// a leader, and etcd over TLS with client certificates (a CA, server and client certificates made
// with openssl in a temp dir; another CA's client certificate; a CA file without etcd's CA).
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { ChildProcess, execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { EtcdKv } from '../../src/control/kv/etcd-kv';
import { EtcdLiteKv } from '../../src/control/kv/etcd-lite';
import { KvNotEtcdError, KvSlowError, KvTlsRejectedError, KvUnavailableError } from '../../src/control/kv/kv';
import { ETCD_BINARY, EtcdServer, freePort, startEtcd, startEtcdCluster } from '../helpers/etcd';
import { conformanceSuite, freshPrefix } from '../helpers/kv-conformance';
import { failure } from '../helpers/until';

let etcd: EtcdServer | undefined;
const getEtcd = async () => (etcd ??= await startEtcd());

const conformance = conformanceSuite({
  name: 'etcd (EtcdLiteKv)',
  watches: false,
  open: async () => new EtcdLiteKv({ endpoints: [(await getEtcd()).endpoint], timeoutMs: 5000 }),
  compact: async () => { throw new Error('not used without watches'); },
});
conformance.run();

const test = suite('EtcdLiteKv');
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

test('the same entries, list revision and cluster_id as EtcdKv reads; writes one makes are the other\'s', async () => {
  const { endpoint } = await getEtcd();
  const lite = new EtcdLiteKv({ endpoints: [endpoint] });
  const full = new EtcdKv({ endpoints: [endpoint] });
  try {
    const p = freshPrefix('same');
    const a = await lite.create(`${p}a`, '{"a":1}');
    const b = await full.create(`${p}b`, '');
    assert.ok(a && b);
    assert.equal(await full.get(`${p}a`), a);
    assert.equal(await lite.get(`${p}b`), b, 'an empty value reads as ""');
    const u = await lite.update(`${p}b`, 'x'.repeat(70_000), b!.modRevision);
    assert.ok(u && u.createRevision === b!.createRevision && u.modRevision > b!.modRevision);
    assert.equal(await full.list(p), await lite.list(p), 'the same list at the same revision');
    assert.ok(lite.clusterIdSeen());
    assert.is(lite.clusterIdSeen(), full.clusterIdSeen(), 'cluster_id in the same decimal form (the CNI spool compares them)');
    assert.ok(await full.delete(`${p}a`, a!.modRevision));
    assert.is(await lite.get(`${p}a`), null);
    assert.throws(() => lite.watch(), /does not watch/);
  } finally {
    await lite.close();
    await full.close();
  }
});

test('nothing listening: KvUnavailableError naming the endpoint and the refusal, at once (EtcdKv\'s words)', async () => {
  const port = await freePort();
  const endpoint = `http://127.0.0.1:${port}`;
  const kv = new EtcdLiteKv({ endpoints: [endpoint], timeoutMs: 1500, connectTimeoutMs: 60_000 });
  try {
    const t0 = Date.now();
    const e = await failure(kv.create('/x', 'y'));
    assert.instance(e, KvUnavailableError);
    assert.not.instance(e, KvSlowError);
    assert.is(e.message, `etcd ${endpoint} unreachable (create /x): connect ECONNREFUSED 127.0.0.1:${port}`);
    assert.ok(Date.now() - t0 < 10_000, `took ${Date.now() - t0} ms: a refusal does not wait for the connect bound`);
  } finally {
    await kv.close();
  }
});

test('a listener that never answers (no HTTP/2 handshake): unreachable after the connect bound, which defaults to the call deadline', async () => {
  const sockets = new Set<Socket>();
  const silent = createServer((s) => { sockets.add(s); s.on('error', () => undefined); });
  await new Promise<void>((r) => silent.listen(0, '127.0.0.1', r));
  const endpoint = `http://127.0.0.1:${(silent.address() as { port: number }).port}`;
  const kv = new EtcdLiteKv({ endpoints: [endpoint], timeoutMs: 800 });
  try {
    const t0 = Date.now();
    const e = await failure(kv.list('/x/'));
    const took = Date.now() - t0;
    assert.instance(e, KvUnavailableError);
    assert.is(e.message, `etcd ${endpoint} unreachable (list /x/): no connection within 800 ms`);
    assert.ok(took >= 700 && took < 800 + 5000, `took ${took} ms`);
  } finally {
    await kv.close();
    for (const s of sockets) s.destroy();
    await new Promise((r) => silent.close(r));
  }
});

test('the event loop held past the connect bound while the connection is made (a busy start): the call is answered, not "unreachable" (the bound counts time the loop ran)', async () => {
  const { endpoint } = await getEtcd();
  const kv = new EtcdLiteKv({ endpoints: [endpoint], timeoutMs: 5000, connectTimeoutMs: 1000 });
  try {
    const p = freshPrefix('held');
    // the call dials at once (synchronously), then the loop is held three times the bound:
    // etcd answers meanwhile, and its answer is read once the loop runs again
    const read = kv.get(`${p}a`).then((v) => ({ v }), (e: Error) => ({ e }));
    const until = Date.now() + 3000;
    while (Date.now() < until) { /* held, as a synchronous start step holds it */ }
    const r = await read;
    assert.ok(!('e' in r), `failed: ${'e' in r ? r.e.message : ''}`);
    assert.is((r as { v: unknown }).v, null);
  } finally {
    await kv.close();
  }
});

test('connected, then etcd stops answering: too slow (KvSlowError); not connected yet: unreachable after the connect bound; both answer again once etcd runs', async () => {
  const server = await getEtcd();
  const up = new EtcdLiteKv({ endpoints: [server.endpoint], timeoutMs: 1500, connectTimeoutMs: 10_000 });
  const fresh = new EtcdLiteKv({ endpoints: [server.endpoint], timeoutMs: 500, connectTimeoutMs: 3000 });
  try {
    assert.is(await up.get('/slow/x'), null); // the connection is up
    await server.pause();
    let slow: Error;
    let unreachable: Error;
    try {
      slow = await failure(up.get('/slow/x'));
      unreachable = await failure(fresh.get('/slow/y'));
    } finally {
      server.resume();
    }
    assert.instance(slow, KvSlowError);
    assert.instance(slow, KvUnavailableError, 'still an unavailable store for the retrying callers');
    assert.match(slow.message, /^etcd http:\/\/127\.0\.0\.1:\d+ too slow \(get \/slow\/x\): no answer within 1500 ms on an open connection \(etcd busy, or this host short of CPU\)$/);
    assert.instance(unreachable, KvUnavailableError);
    assert.not.instance(unreachable, KvSlowError);
    assert.match(unreachable.message, /unreachable \(get \/slow\/y\): no connection within 3000 ms$/);
    assert.is(await up.get('/slow/x'), null, 'answers again once etcd runs');
    assert.is(await fresh.get('/slow/y'), null, 'connects once etcd runs');
  } finally {
    await up.close();
    await fresh.close();
  }
});

test('a dead endpoint listed first (refused): every read and write goes to the next one', async () => {
  const { endpoint } = await getEtcd();
  const dead = `http://127.0.0.1:${await freePort()}`;
  const kv = new EtcdLiteKv({ endpoints: [dead, endpoint], timeoutMs: 5000 });
  try {
    const p = freshPrefix('failover');
    for (let i = 0; i < 8; i++) {
      const e = await kv.create(`${p}${i}`, 'a');
      assert.ok(e, `create ${i}`);
      assert.ok(await kv.update(`${p}${i}`, 'b', e!.modRevision), `update ${i}`);
      assert.is((await kv.get(`${p}${i}`))?.value, 'b');
      assert.ok(await kv.delete(`${p}${i}`), `delete ${i}`);
    }
  } finally {
    await kv.close();
  }
});

test('quorum lost (2 of 3 members killed): calls fail saying etcd has no leader, as EtcdKv says it', async () => {
  const cluster = await startEtcdCluster(3);
  const kv = new EtcdLiteKv({ endpoints: cluster.endpoints, timeoutMs: 3000 });
  try {
    const p = `/podway-lite-quorum-${process.pid}/`;
    assert.ok(await kv.create(`${p}a`, '1'));
    await cluster.kill(0);
    await cluster.kill(1);
    // Once the survivor knows it has no leader (an election timeout, 1 s), etcd says so: bounded.
    // A call it took before it knew says so too, once its deadline passed (kv-etcd-quorum-lost).
    let last = '';
    for (let i = 0; i < 12 && !/no leader/.test(last); i++) {
      try {
        await kv.get(`${p}a`);
        last = 'answered';
      } catch (e) {
        assert.instance(e, KvUnavailableError);
        last = (e as Error).message;
      }
    }
    assert.match(last, /unreachable \(get \/podway-lite-quorum-\d+\/a\): etcd has no leader, no quorum \(most members down or cut off\?\): etcdserver: no leader( \(member \S+ had the call without answering for 3000 ms, then said so\))?$/);
  } finally {
    await kv.close();
    await cluster.stop();
  }
});

test('etcd over TLS with client certificates: calls work; another CA\'s client certificate, or a CA file without etcd\'s, is KvTlsRejectedError naming the settings; a missing file is named', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'podway-lite-tls-'));
  const openssl = (args: string[]) => execFileSync('openssl', args, { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'] });
  const f = (name: string) => join(dir, name);
  let proc: ChildProcess | undefined;
  const stores: EtcdLiteKv[] = [];
  try {
    for (const prefix of ['main', 'rogue']) {
      openssl(['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '1', '-subj', `/CN=${prefix}-ca`, '-keyout', `${prefix}-ca.key`, '-out', `${prefix}-ca.pem`]);
      for (const [name, ext] of [['server', 'subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth'], ['client', 'extendedKeyUsage=clientAuth']] as const) {
        writeFileSync(f(`${prefix}-${name}.ext`), `${ext}\n`);
        openssl(['req', '-newkey', 'rsa:2048', '-nodes', '-subj', `/CN=${prefix}-${name}`, '-keyout', `${prefix}-${name}.key`, '-out', `${prefix}-${name}.csr`]);
        openssl(['x509', '-req', '-in', `${prefix}-${name}.csr`, '-CA', `${prefix}-ca.pem`, '-CAkey', `${prefix}-ca.key`, '-CAcreateserial', '-days', '1', '-extfile', `${prefix}-${name}.ext`, '-out', `${prefix}-${name}.pem`]);
      }
    }
    const client = await freePort();
    const peer = await freePort();
    const endpoint = `https://127.0.0.1:${client}`;
    proc = spawn(ETCD_BINARY, ['--name', 'lite-tls', '--data-dir', f('data'),
      '--listen-client-urls', endpoint, '--advertise-client-urls', endpoint,
      '--listen-peer-urls', `http://127.0.0.1:${peer}`, '--initial-advertise-peer-urls', `http://127.0.0.1:${peer}`,
      '--initial-cluster', `lite-tls=http://127.0.0.1:${peer}`,
      '--cert-file', f('main-server.pem'), '--key-file', f('main-server.key'), '--trusted-ca-file', f('main-ca.pem'), '--client-cert-auth',
      '--log-level', 'warn', '--logger', 'zap'], { stdio: ['ignore', 'ignore', 'ignore'] });
    const open = (ca: string, cert: string, key: string) => {
      const kv = new EtcdLiteKv({ endpoints: [endpoint], tls: { caFile: f(ca), certFile: f(cert), keyFile: f(key) }, timeoutMs: 3000 });
      stores.push(kv);
      return kv;
    };
    const good = open('main-ca.pem', 'main-client.pem', 'main-client.key');
    let answered = false;
    for (let i = 0; i < 100 && !answered; i++) {
      answered = await good.get('/tls/x').then(() => true, () => false);
      if (!answered) await sleep(200);
    }
    assert.ok(answered, 'etcd answered over TLS with the right certificates');
    const p = freshPrefix('tls');
    assert.ok(await good.create(`${p}a`, '1'));
    assert.is((await good.get(`${p}a`))?.value, '1');
    const rogueClient = await failure(open('main-ca.pem', 'rogue-client.pem', 'rogue-client.key').get('/tls/x'));
    assert.instance(rogueClient, KvTlsRejectedError, rogueClient.message);
    assert.match(rogueClient.message, /etcd refused the TLS handshake: (bad certificate|unknown ca) \(the client certificate and key: --etcd-cert-file \/ ETCD_CERT_FILE, --etcd-key-file \/ ETCD_KEY_FILE; etcd must trust the CA that signed it\)$/);
    const rogueCa = await failure(open('rogue-ca.pem', 'main-client.pem', 'main-client.key').get('/tls/x'));
    assert.instance(rogueCa, KvTlsRejectedError);
    assert.match(rogueCa.message, `etcd ${endpoint} (get /tls/x): etcd's server certificate is not accepted: unable to verify the first certificate (--etcd-ca-cert-file / ETCD_CA_CERT_FILE must hold the CA that signed it)`);
    assert.throws(() => new EtcdLiteKv({ endpoints: [endpoint], tls: { caFile: f('missing.pem') } }), /cannot read the CA certificate file .*missing\.pem \(--etcd-ca-cert-file \/ ETCD_CA_CERT_FILE\)/);
  } finally {
    for (const kv of stores) await kv.close();
    if (proc?.pid && proc.exitCode === null && proc.signalCode === null) { // ended (by a signal too): its 'exit' is past
      const exited = new Promise((r) => proc!.once('exit', r));
      process.kill(proc.pid, 'SIGKILL');
      await exited;
    }
    rmSync(dir, { recursive: true, force: true });
  }
});

test('an HTTP/1 server at the endpoint (python3 -m http.server on etcd\'s port): both clients say the endpoint answers but is not etcd (KvNotEtcdError), not "unreachable ... Protocol error"', async () => {
  const { createServer: createHttp } = await import('node:http');
  // a server that answers HTTP/2's preface as python's http.server does: an HTTP/1 400, then closes
  const raw = createServer((c: Socket) => { c.once('data', () => c.end('HTTP/1.0 400 Bad request version (\'HTTP/2.0\')\r\nContent-Type: text/html\r\n\r\n<p>bad</p>')); c.on('error', () => undefined); });
  const http1 = createHttp((_q, r) => r.end('hello'));
  try {
    for (const srv of [raw, http1]) {
      await new Promise<void>((r) => srv.listen(0, '127.0.0.1', () => r()));
      const endpoint = `http://127.0.0.1:${(srv.address() as { port: number }).port}`;
      for (const kv of [new EtcdKv({ endpoints: [endpoint], timeoutMs: 2000 }), new EtcdLiteKv({ endpoints: [endpoint], timeoutMs: 2000 })]) {
        try {
          for (const [what, call] of [['list /x/', () => kv.list('/x/')], ['get /x', () => kv.get('/x')]] as const) {
            const e = await failure(call());
            assert.instance(e, KvNotEtcdError, `${kv.constructor.name} ${what}: ${e.message}`);
            assert.is(e.message, `etcd ${endpoint} (${what}): the endpoint ${endpoint} answers but is not etcd: it answered etcd's gRPC API with something else than HTTP/2 (an HTTP/1 server?) (another service at that port?)`);
          }
        } finally {
          await kv.close();
        }
      }
      srv.close();
    }
  } finally {
    raw.close();
    http1.closeAllConnections();
    http1.close();
  }
});

test.after(async () => {
  await etcd?.stop();
});
test.run();
