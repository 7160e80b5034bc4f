/**
 * podway run's upkeep store (src/cli/upkeep.ts RunStore): one store for the deferred DEL replay's
 * and the orphan holds' passes, kept across them (one etcd connection for the run, not one a pass),
 * the light client; made again after reconnect(), the old one closed once its passes gave it back;
 * none after close(). And its queue runs one task at a time, in order. No etcd needed: the light
 * client connects at its first call, and none is made here.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { RunStore, runUpkeep } from '../../src/cli/upkeep';
import { EtcdLiteKv } from '../../src/control/kv/etcd-lite';

const spec = { kind: 'etcd' as const, endpoints: ['http://127.0.0.1:9'] };

test('RunStore: one light store across passes; reconnect makes a new one and closes the old once given back; close ends it', async () => {
  const s = new RunStore(spec, 1000);
  const a = s.get();
  assert.ok(a instanceof EtcdLiteKv, 'the light client');
  await s.release(a);
  const b = s.get();
  const c = s.get(); // two passes at once share it
  assert.is(b, a);
  assert.is(c, a);
  assert.is(s.opened, 1, 'one store for every pass');
  let closed = 0;
  const close = a.close.bind(a);
  a.close = async () => { closed++; await close(); };
  s.reconnect();
  const d = s.get();
  assert.is.not(d, a, 'a new store after reconnect');
  assert.is(s.opened, 2);
  await s.release(b);
  assert.is(closed, 0, 'the old store is kept while a pass uses it');
  await s.release(c);
  assert.is(closed, 1, 'and closed once the last pass gave it back');
  await s.release(d);
  await s.close();
  assert.throws(() => s.get(), /closed/);
});

test('runUpkeep: its queue runs one task at a time, in the order asked', async () => {
  const u = runUpkeep(spec, 1000);
  const order: string[] = [];
  let inside = 0;
  let most = 0;
  const task = (name: string, ms: number) => u.serial(async () => {
    inside++;
    most = Math.max(most, inside);
    order.push(`${name}+`);
    await new Promise((r) => setTimeout(r, ms));
    order.push(`${name}-`);
    inside--;
    return name;
  });
  const done = await Promise.all([task('replay', 30), task('look', 1), task('hold', 10)]);
  assert.equal(done, ['replay', 'look', 'hold']);
  assert.equal(order, ['replay+', 'replay-', 'look+', 'look-', 'hold+', 'hold-']);
  assert.is(most, 1);
  await u.store.close();
});

test.run();
