// "Too slow" vs "unreachable" (review E, H2), against a real etcd (test/helpers/etcd.ts: loopback,
// stopped by PID). A call's deadline counts from when the connection is up; making the connection
// has its own bound. A stopped (SIGSTOP) etcd still accepts TCP connections in the kernel but
// answers nothing: with a connection already up a call then runs out its deadline on an open
// connection (KvSlowError, "too slow"); a store that has no connection yet cannot finish the
// HTTP/2 handshake and fails after the connect bound as unreachable. Nothing listening: unreachable
// at once. The etcd is always continued (SIGCONT) in `finally`; a call is made only once every thread
// of it is stopped (EtcdServer.pause: kill(2) returns before, and a busy host answered calls meanwhile).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { EtcdKv } from '../../src/control/kv/etcd-kv';
import { KvSlowError, KvUnavailableError } from '../../src/control/kv/kv';
import { EtcdServer, freePort, startEtcd } from '../helpers/etcd';
import { failure } from '../helpers/until';

let etcd: EtcdServer;
test.before(async () => { etcd = await startEtcd(); });
test.after(async () => { await etcd?.stop(); });

test('connected, then etcd stops answering: the call fails as too slow (KvSlowError), not unreachable', async () => {
  const kv = new EtcdKv({ endpoints: [etcd.endpoint], timeoutMs: 1500, connectTimeoutMs: 10_000 });
  try {
    assert.is(await kv.get('/slow/x'), null); // the connection is up
    await etcd.pause();
    let e: Error;
    try {
      e = await failure(kv.get('/slow/x'));
    } finally {
      etcd.resume();
    }
    assert.instance(e, KvSlowError);
    assert.instance(e, KvUnavailableError, 'still an unavailable store for the retrying callers');
    assert.match(e.message, /^etcd http:\/\/127\.0\.0\.1:\d+ too slow \(get \/slow\/x\): no answer within 1500 ms on an open connection \(etcd busy, or this host short of CPU\)$/);
    assert.is(await kv.get('/slow/x'), null, 'answers again once etcd runs');
  } finally {
    await kv.close();
  }
});

test('no connection yet and etcd not answering: unreachable after the connect bound, not the call deadline', async () => {
  const kv = new EtcdKv({ endpoints: [etcd.endpoint], timeoutMs: 500, connectTimeoutMs: 3000 });
  try {
    await etcd.pause();
    let e: Error;
    try {
      e = await failure(kv.get('/slow/y'));
    } finally {
      etcd.resume();
    }
    assert.instance(e, KvUnavailableError);
    assert.not.instance(e, KvSlowError);
    assert.match(e.message, /unreachable \(get \/slow\/y\): no connection within 3000 ms$/);
    assert.is(await kv.get('/slow/y'), null, 'connects once etcd runs');
  } finally {
    await kv.close();
  }
});

test('the event loop held past the connect bound while the connection is made (podway run\'s dataplane set up at a loaded start, the deferred CNI DELs\' first pass connecting): answered, not "unreachable" (the bound counts time the loop ran)', async () => {
  const kv = new EtcdKv({ endpoints: [etcd.endpoint], timeoutMs: 5000, connectTimeoutMs: 1000 });
  try {
    // the call starts connecting, then the loop is held three times the bound: etcd answers
    // meanwhile, and its answer is read once the loop runs again
    const read = kv.get('/slow/held').then((v) => ({ v }), (e: Error) => ({ e }));
    const until = Date.now() + 3000;
    while (Date.now() < until) { /* held, as a synchronous start step holds it */ }
    const r = await read;
    assert.ok(!('e' in r), `failed: ${'e' in r ? r.e.message : ''}`);
    assert.is((r as { v: unknown }).v, null);
  } finally {
    await kv.close();
  }
});

test('nothing listening: unreachable at once, not slow', async () => {
  const port = await freePort();
  const kv = new EtcdKv({ endpoints: [`http://127.0.0.1:${port}`], timeoutMs: 2000, connectTimeoutMs: 60_000 });
  try {
    const e = await failure(kv.get('/slow/z'));
    assert.instance(e, KvUnavailableError);
    assert.not.instance(e, KvSlowError);
    assert.match(e.message, /unreachable \(get \/slow\/z\)/);
    assert.not.match(e.message, /no connection within/, 'a refusal does not wait for the connect bound');
  } finally {
    await kv.close();
  }
});

test.run();
