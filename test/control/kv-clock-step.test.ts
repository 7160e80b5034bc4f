// A wall-clock step (NTP's step at boot, a VM resumed, `date -s`) during an etcd call, against a
// real etcd (test/helpers/etcd.ts: loopback, stopped by PID). The stores' deadlines and bounds
// count on the monotonic clock (src/util/mono-clock.ts), so a step neither ends them at once (a
// step forward) nor stretches them (a step back: an hour back would hold a call, or keep an
// endpoint "failed lately", for an hour). The step is made by replacing Date.now in this process
// (what the stores would read), always put back in `finally`; the etcd is always continued.
// Each test's waits are bounded by timers (monotonic in Node), never by Date.now.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { createServer, connect, Socket } from 'node:net';
import { EtcdKv } from '../../src/control/kv/etcd-kv';
import { EtcdLiteKv } from '../../src/control/kv/etcd-lite';
import { KvUnavailableError } from '../../src/control/kv/kv';
import { EtcdServer, freePort, startEtcd } from '../helpers/etcd';
import { until } from '../helpers/until';

const HOUR = 3_600_000;
const realNow = Date.now;
let etcd: EtcdServer;
test.before(async () => { etcd = await startEtcd(); });
test.after(async () => {
  Date.now = realNow;
  await etcd?.stop();
});

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** The outcome of `p`, or 'still waiting' after `ms` (a timer: monotonic). */
async function within<T>(p: Promise<T>, ms: number): Promise<{ value: T } | { error: Error } | 'still waiting'> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      p.then((value) => ({ value }), (error: Error) => ({ error })),
      new Promise<'still waiting'>((r) => { timer = setTimeout(() => r('still waiting'), ms); }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

test('EtcdKv, the clock stepped back an hour while a call waits for its connection: unreachable at the connect bound, not an hour later', async () => {
  const kv = new EtcdKv({ endpoints: [etcd.endpoint], timeoutMs: 500, connectTimeoutMs: 2000 });
  try {
    await etcd.pause(); // TCP accepted by the kernel, no HTTP/2 handshake: no connection
    try {
      const call = kv.get('/clock/a');
      await sleep(200);
      Date.now = () => realNow() - HOUR;
      const r = await within(call, 15_000);
      Date.now = realNow;
      assert.ok(r !== 'still waiting', 'the call still waited 15 s after its 2 s connect bound');
      assert.ok('error' in r, 'the call had to fail: etcd is stopped');
      assert.ok(r.error instanceof KvUnavailableError, r.error.message);
      assert.instance(r.error, KvUnavailableError);
      assert.match(r.error.message, /unreachable \(get \/clock\/a\): no connection within 2000 ms$/);
    } finally {
      Date.now = realNow;
      etcd.resume();
    }
    // (its channel may be in gRPC's reconnect backoff after the failed handshake: asked until it answers)
    assert.ok(await until(async () => (await kv.get('/clock/a').catch(() => 'failed')) === null, 20_000), 'answers once etcd runs');
  } finally {
    await kv.close();
  }
});

test('EtcdKv, the clock stepped forward an hour while a call waits for its connection: the call goes on and is answered', async () => {
  const kv = new EtcdKv({ endpoints: [etcd.endpoint], timeoutMs: 5000, connectTimeoutMs: 10_000 });
  try {
    await etcd.pause();
    let r: Awaited<ReturnType<typeof within>>;
    try {
      const call = kv.get('/clock/b');
      await sleep(200);
      Date.now = () => realNow() + HOUR;
      await sleep(300);
      etcd.resume();
      r = await within(call, 15_000);
    } finally {
      Date.now = realNow;
      etcd.resume();
    }
    assert.ok(r !== 'still waiting', 'no outcome 15 s after etcd ran again');
    assert.equal(r, { value: null }, `the call was given up: ${'error' in r ? r.error.message : ''}`);
  } finally {
    await kv.close();
  }
});

test('EtcdLiteKv, the clock stepped back an hour after a refused dial: the endpoint is dialled again after its cooldown, not an hour later', async () => {
  // a relay to etcd on a port where nothing listens yet
  const port = await freePort();
  const conns = new Set<Socket>();
  const relay = createServer((client) => {
    const upstream = connect(etcd.clientPort, '127.0.0.1');
    conns.add(client).add(upstream);
    const drop = () => { client.destroy(); upstream.destroy(); };
    client.on('error', drop).on('close', drop);
    upstream.on('error', drop).on('close', drop);
    client.pipe(upstream).pipe(client);
  });
  const kv = new EtcdLiteKv({ endpoints: [`http://127.0.0.1:${port}`], timeoutMs: 2000, connectTimeoutMs: 2000 });
  try {
    const refused = await within(kv.get('/clock/c'), 15_000);
    assert.ok(refused !== 'still waiting' && 'error' in refused, 'nothing listens: the call fails');
    assert.instance(refused.error, KvUnavailableError);
    await new Promise<void>((resolve, reject) => relay.once('error', reject).listen(port, '127.0.0.1', () => resolve()));
    Date.now = () => realNow() - HOUR;
    let r: Awaited<ReturnType<typeof within>>;
    try {
      await sleep(1500); // past the endpoint's cooldown (HOST_COOLDOWN_MS, 1 s)
      r = await within(kv.get('/clock/c'), 15_000);
    } finally {
      Date.now = realNow;
    }
    assert.ok(r !== 'still waiting', 'no outcome within 15 s');
    assert.equal(r, { value: null }, `the endpoint was not dialled again: ${'error' in r ? r.error.message : ''}`);
  } finally {
    Date.now = realNow;
    await kv.close();
    for (const c of conns) c.destroy();
    await new Promise((r) => relay.close(r));
  }
});

test.run();
