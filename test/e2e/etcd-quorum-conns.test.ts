/**
 * podway run's TCP connections to each member of a real three-member etcd (etcd-ha-kit.ts) across
 * five quorum losses (two members SIGKILLed, then started again). Counted with `ss` in the node's
 * namespace, where only its podway connects to the members. Asserted after each: at most one
 * connection per etcd client of podway run (3: the model thread's, the address store thread's, the
 * main thread's) to every member, the one that stayed up and the two restarted. Without the
 * subchannel release of grpc-connect-bound.ts the restarted ones got 6-11 (docs/datastores.md,
 * "Connections to each member").
 * Every loop bounded; everything stopped by PID in finally.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { execFileSync } from 'node:child_process';
import { Lab, LabNode, LabNodeSpec } from '../../src/lab/lab';
import { EtcdKv } from '../../src/control/kv/etcd-kv';
import { guard, teardown, status, logTail, until, sleep } from './e2e-kit';
import { LabEtcdCluster } from './etcd-ha-kit';

const SPEC: LabNodeSpec[] = [{ name: 'node1', subnet: 'a', pods: [{ name: 'web-1', type: 'veth' }] }];
const CYCLES = 5;
/** podway run's etcd clients: the model thread's watch, the address-store thread's, the main thread's. */
const CLIENTS = 3;

/** Established connections from the node's namespace to each member, by member port. */
function conns(n: LabNode): Record<string, number> {
  const by: Record<string, number> = {};
  for (const l of execFileSync('ip', ['netns', 'exec', n.ns, 'ss', '-tnH', 'state', 'established'], { encoding: 'utf8' }).split('\n')) {
    const m = /10\.99\.0\.254:(\d+)/.exec(l);
    if (m) by[m[1]!] = (by[m[1]!] ?? 0) + 1;
  }
  return by;
}

test('repeated quorum losses: each member, up or restarted, keeps at most one connection per podway etcd client', async () => {
  const lab = guard(new Lab(SPEC));
  let cl: LabEtcdCluster | null = null;
  let kv: EtcdKv | null = null;
  try {
    lab.build();
    cl = new LabEtcdCluster(lab.fabric);
    await cl.start();
    const c = cl;
    kv = new EtcdKv({ endpoints: c.localEndpoints, timeoutMs: 5000 });
    await lab.useKvDatastore(kv, `etcd:${c.endpoints.join(',')}`);
    await lab.startPodway('node1', 20_000);
    const n1 = lab.node('node1');
    const st = async () => (await status(n1)) as { ready?: boolean; notReady?: string[] };
    assert.ok(await until(async () => (await st()).ready === true, 20_000, 100), `ready: ${JSON.stringify(await st())}`);
    await sleep(2000);
    const start = conns(n1);
    console.log(`  at start: ${JSON.stringify(start)}`);
    for (const ep of c.endpoints) assert.is(start[ep.split(':')[2]!], CLIENTS, `one connection per client to ${ep} at start: ${JSON.stringify(start)}`);
    for (let i = 0; i < CYCLES; i++) {
      const L = await c.leader();
      assert.ok(L >= 0, 'a leader');
      const [x, y] = [(L + 1) % 3, (L + 2) % 3];
      await c.kill(x);
      await c.kill(y);
      assert.ok(await until(async () => ((await st()).notReady ?? []).some((r) => /no quorum/.test(r)), 15_000, 200), `not ready: ${JSON.stringify(await st())}`);
      await sleep(3000);
      await c.restart(x, 30_000);
      await c.restart(y, 30_000);
      assert.ok(await until(async () => (await st()).ready === true, 20_000, 100), `ready again: ${JSON.stringify(await st())}`);
      await sleep(3000);
      const by = conns(n1);
      const kept = c.endpoints[L]!.split(':')[2]!;
      console.log(`  quorum loss ${i + 1}: m${L} stayed up; connections ${JSON.stringify(by)}`);
      assert.ok((by[kept] ?? 0) <= CLIENTS, `quorum loss ${i + 1}: at most ${CLIENTS} connections to m${L}, which stayed up: ${JSON.stringify(by)}`);
      for (const m of [x, y]) {
        const port = c.endpoints[m]!.split(':')[2]!;
        assert.ok((by[port] ?? 0) <= CLIENTS, `quorum loss ${i + 1}: at most ${CLIENTS} connections to m${m}, restarted (subchannels dropped while it refused are not left to connect for nobody): ${JSON.stringify(by)}`);
      }
    }
  } catch (e) {
    console.log(logTail(lab, 25));
    throw e;
  } finally {
    await teardown(lab);
    await kv?.close().catch(() => undefined);
    await cl?.stop();
  }
});

test.run();
