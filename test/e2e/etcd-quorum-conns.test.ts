/**
 * podway run's TCP connections to each member of a real three-member etcd (etcd-ha-kit.ts) across
 * quorum losses (two members SIGKILLed, then started again). Counted with `ss` in the node's
 * namespace, where only its podway connects to the members. Asserted after each: at most one
 * connection per etcd client of podway run (3: the model thread's, the address store thread's, the
 * main thread's) to every member, the one that stayed up and the two restarted. Without the
 * subchannel release of grpc-connect-bound.ts the restarted ones got 6-11 (docs/datastores.md,
 * "Connections to each member"): subchannels dropped while their member refused connect again
 * when their backoff ends (at most MAX_RECONNECT_BACKOFF_MS, 5 s) once it answers, and stay. So
 * after each loss the count is watched for LEAK_WATCH_MS past that backoff (failing at the first
 * excess). Two losses: the second shows the leak again on members restarted a second time (the
 * first restart closed the connections leaked before it), which one alone cannot.
 * Every loop bounded; everything stopped by PID in finally.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { LabNodeSpec } from '../../src/lab/lab';
import { MAX_RECONNECT_BACKOFF_MS } from '../../src/control/kv/etcd-kv';
import { status, logTail, until } from './e2e-kit';
import { memberConns, memberPort, openEtcdHaLab } from './etcd-ha-kit';

const SPEC: LabNodeSpec[] = [{ name: 'node1', subnet: 'a', pods: [{ name: 'web-1', type: 'veth' }] }];
const CYCLES = 2;
/** podway run's etcd clients: the model thread's watch, the address-store thread's, the main thread's. */
const CLIENTS = 3;
/** How long the connections are watched after each loss: a leaked subchannel's backoff, and its connection made. */
const LEAK_WATCH_MS = MAX_RECONNECT_BACKOFF_MS + 2000;

test('repeated quorum losses: each member, up or restarted, keeps at most one connection per podway etcd client', async () => {
  const { lab, cluster: c, close } = await openEtcdHaLab(SPEC);
  try {
    await lab.startPodway('node1', 20_000);
    const n1 = lab.node('node1');
    const st = async () => (await status(n1)) as { ready?: boolean; notReady?: string[] };
    assert.ok(await until(async () => (await st()).ready === true, 20_000, 100), `ready: ${JSON.stringify(await st())}`);
    const ports = c.endpoints.map(memberPort);
    const oneEach = () => { const by = memberConns(n1); return ports.every((p) => by[p] === CLIENTS); };
    assert.ok(await until(oneEach, 10_000, 100), `one connection per client to each member at start: ${JSON.stringify(memberConns(n1))}`);
    console.log(`  at start: ${JSON.stringify(memberConns(n1))}`);
    for (let i = 0; i < CYCLES; i++) {
      const L = await c.leader();
      assert.ok(L >= 0, 'a leader');
      const [x, y] = [(L + 1) % 3, (L + 2) % 3];
      await c.kill(x);
      await c.kill(y);
      // not ready, saying why: podway's calls and watches were refused by the two members meanwhile
      assert.ok(await until(async () => ((await st()).notReady ?? []).some((r) => /no quorum/.test(r)), 15_000, 200), `not ready: ${JSON.stringify(await st())}`);
      await c.restart(x, 30_000);
      await c.restart(y, 30_000);
      assert.ok(await until(async () => (await st()).ready === true, 20_000, 100), `ready again: ${JSON.stringify(await st())}`);
      // Watched, not slept on: the first count over CLIENTS to any member fails at once.
      let worst: Record<string, number> = {};
      const excess = await until(() => {
        const by = memberConns(n1);
        worst = by;
        return ports.some((p) => (by[p] ?? 0) > CLIENTS);
      }, LEAK_WATCH_MS, 100);
      console.log(`  quorum loss ${i + 1}: m${L} stayed up; connections ${JSON.stringify(worst)}`);
      assert.not.ok(excess, `quorum loss ${i + 1}: at most ${CLIENTS} connections to each member within ${LEAK_WATCH_MS} ms of ready (m${L} stayed up; m${x}, m${y} restarted: subchannels dropped while they refused are not left to connect for nobody): ${JSON.stringify(worst)}`);
    }
  } catch (e) {
    console.log(logTail(lab, 25));
    throw e;
  } finally {
    await close();
  }
});

test.run();
