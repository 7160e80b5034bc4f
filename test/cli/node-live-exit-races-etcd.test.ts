// The node's liveness key at podway run's exit, on a real etcd, through the pieces podway run uses
// and in its order (run-liveness.ts RunLiveness over the Node address store's thread, the holder,
// and the registration's thread, join-thread.ts; the exit as run.ts's stop and its signal while
// starting do it): (0) the exit's revoke of the held lease is not taken for an expiry (the holder
// wrote the key again on a new lease that outlived podway); (1) a stop racing a re-registration's
// claim; (2) a renewal of the registration's thread in flight at the hand-over to the holder, and
// a stop while it is in flight; (3) etcd stopped (SIGSTOP by PID) mid-claim, then back. Each
// ends with exactly one live key while the node runs and none after the exit, nor a renewal
// period later.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { EtcdLiteKv } from '../../src/control/kv/etcd-lite';
import { LIVE_TTL_S, liveKey, thisHost, type LiveRecord } from '../../src/control/node-live';
import { joinInThread } from '../../src/cli/join-thread';
import { nodeAddressesOf, type LiveClaimHandle } from '../../src/cli/join';
import { NodeAddressStoreThread } from '../../src/cli/address-store-thread';
import { RunLiveness } from '../../src/cli/run-liveness';
import type { Log } from '../../src/observe/log';
import { startEtcd, type EtcdServer } from '../helpers/etcd';
import { until } from '../helpers/until';

const NODE = `nodexit-${process.pid}`;
/** The holder's renewals are every LIVE_TTL_S / 3 s: past one, any it would make was made. */
const RENEWAL_MS = (LIVE_TTL_S / 3) * 1000;
let etcd: EtcdServer | null = null;
let lite: EtcdLiteKv | null = null;
const runs: Run[] = [];

test.after(async () => {
  for (const r of runs) await r.holder.close().catch(() => undefined);
  etcd?.resume();
  await lite?.close();
  await etcd?.stop();
});

async function setup(): Promise<{ etcd: EtcdServer; lite: EtcdLiteKv }> {
  etcd ??= await startEtcd();
  lite ??= new EtcdLiteKv({ endpoints: [etcd.endpoint], timeoutMs: 2000 });
  return { etcd, lite };
}

/** One podway run's liveness pieces, as run.ts makes them. */
interface Run {
  readonly node: string;
  readonly ip: string;
  readonly holder: NodeAddressStoreThread;
  readonly live: RunLiveness;
  readonly abort: AbortController;
  readonly logs: string[];
  /** The registrations started (their ends, failures included). */
  readonly joins: Promise<unknown>[];
  /** The claims heard of, in order. */
  readonly claims: { lease: string; claim?: LiveClaimHandle }[];
  addresses: string[];
}

function collect(lines: string[]): Log {
  const l: Log = { level: 'info', debug: () => {}, info: (m) => lines.push(`info ${m}`), warn: (m) => lines.push(`warn ${m}`), error: (m) => lines.push(`error ${m}`), child: () => l };
  return l;
}

function newRun(node: string, ip: string): Run {
  const logs: string[] = [];
  const log = collect(logs);
  const spec = { kind: 'etcd' as const, endpoints: [etcd!.endpoint] };
  const holder = new NodeAddressStoreThread(spec, node, log);
  const record: LiveRecord = { ...thisHost(), addresses: [], pid: process.pid, started: new Date().toISOString() };
  const run: Run = { node, ip, holder, live: null as unknown as RunLiveness, abort: new AbortController(), logs, joins: [], claims: [], addresses: [] };
  (run as { live: RunLiveness }).live = new RunLiveness(node, holder, record, () => run.addresses, log);
  // as run.ts: the holder's stop flag set first, at the start's abort
  run.abort.signal.addEventListener('abort', () => run.live.exitAsked(), { once: true });
  runs.push(run);
  return run;
}

/**
 * A registration of `run` (at start, or again after a replacement, with the run's record), its
 * claims handed to RunLiveness; `onClaim` (optional) sees each claim first and may hold it back:
 * it returns a promise, and the claim goes to RunLiveness once that resolved.
 */
function register(run: Run, atStart: boolean, onClaim?: (lease: string) => Promise<void>): Promise<void> {
  const spec = { kind: 'etcd' as const, endpoints: [etcd!.endpoint] };
  const record: LiveRecord = { ...thisHost(), addresses: run.addresses, pid: process.pid, started: new Date().toISOString() };
  const p = joinInThread(spec, {
    node: run.node, ip: run.ip, ip6: 'none', ...(atStart ? { atStart: true } : {}), live: record, signal: run.abort.signal,
    onLiveClaimed: (lease, claim) => {
      run.claims.push({ lease, ...(claim ? { claim } : {}) });
      if (!onClaim) return run.live.onLiveClaimed(lease, claim);
      void onClaim(lease).then(() => run.live.onLiveClaimed(lease, claim));
    },
    onNodeRegistered: (e) => {
      run.addresses = nodeAddressesOf(e);
      run.live.addressesChanged();
    },
    warn: (m) => run.logs.push(`warn ${m}`),
  }, (m) => run.logs.push(`say ${m}`));
  run.joins.push(p.catch(() => undefined));
  return p;
}

/** Until the holder renewed `lease` itself (the claim then handed over). */
function handedOver(run: Run, lease: string, ms = 30_000): Promise<boolean> {
  return until(() => run.holder.liveStatus()?.renewedLease === lease, ms);
}

/** podway run's stop (run.ts): the start aborted (the holder's flag first), claims revoked, the holder closed, the registrations ended, late claims revoked. */
async function stop(run: Run): Promise<void> {
  run.abort.abort();
  await Promise.all([run.live.revokeClaims().catch(() => undefined), run.holder.close()]);
  await Promise.race([Promise.all(run.joins), new Promise((r) => setTimeout(r, 10_000).unref())]);
  await run.live.lateRevoked();
}

/** The live leases etcd has that carry `key` (etcd's JSON gateway: every lease, with its keys). */
async function leasesCarrying(endpoint: string, key: string): Promise<string[]> {
  const post = async (p: string, body: unknown) => (await fetch(`${endpoint}${p}`, { method: 'POST', body: JSON.stringify(body), signal: AbortSignal.timeout(5000) })).json();
  const all = ((await post('/v3/lease/leases', {})) as { leases?: { ID: string }[] }).leases ?? [];
  const out: string[] = [];
  for (const l of all) {
    const t = (await post('/v3/lease/timetolive', { ID: l.ID, keys: true })) as { TTL?: string; keys?: string[] };
    if (Number(t.TTL ?? -1) > 0 && (t.keys ?? []).some((k) => Buffer.from(k, 'base64').toString() === key)) out.push(l.ID);
  }
  return out;
}

/** Exactly one live key for the node, on the lease its holder renews. */
async function assertOneLiveKey(run: Run, what: string): Promise<void> {
  const held = run.holder.liveStatus()?.lease ?? null;
  const got = await lite!.getLeased(liveKey(run.node));
  assert.ok(got !== null, `${what}: the key there | ${run.logs.join(' | ')}`);
  assert.is(got!.lease, held, `${what}: on the holder's lease | ${run.logs.join(' | ')}`);
  assert.ok((await lite!.leaseTimeToLive(held!)) > 0, `${what}: its lease alive`);
  assert.equal(await leasesCarrying(etcd!.endpoint, liveKey(run.node)), [held], `${what}: no other live lease carries it`);
}

/** No key after the exit, nor a renewal period later (nothing granted or written again), and no "granting a new one". */
async function assertGoneForGood(list: Run[], what: string): Promise<void> {
  for (const r of list) assert.is(await lite!.getLeased(liveKey(r.node)), null, `${what} ${r.node}: the key gone at the exit | ${r.logs.join(' | ')}`);
  await new Promise((r) => setTimeout(r, RENEWAL_MS + 1000));
  for (const r of list) {
    assert.is(await lite!.getLeased(liveKey(r.node)), null, `${what} ${r.node}: no key a renewal period after the exit | ${r.logs.join(' | ')}`);
    assert.equal(await leasesCarrying(etcd!.endpoint, liveKey(r.node)), [], `${what} ${r.node}: no live lease carries the key`);
    assert.not.ok(r.logs.some((l) => /granting a new one/.test(l)), `${what} ${r.node}: no lease granted again | ${r.logs.join(' | ')}`);
  }
}

test('(0) the exit\'s revoke of the held lease is not taken for an expiry: no new lease, no key after', async () => {
  const { lite } = await setup();
  const run = newRun(`${NODE}-0`, '192.0.2.40/24');
  await register(run, true);
  const lease = run.claims[0]?.lease;
  assert.ok(lease, run.logs.join(' | '));
  assert.ok(await handedOver(run, lease!), `the holder renewed the claimed lease | ${run.logs.join(' | ')}`);
  await assertOneLiveKey(run, 'running');
  // The signal while starting's order: the exit asked (the holder's flag), then the lease revoked
  // through another client while the holder still holds it (its close not come yet). Its next
  // renewal (within LIVE_TTL_S / 3 s) finds the lease gone: it used to take that for an expiry,
  // grant a new lease and write the key again, which then outlived podway until its TTL.
  run.abort.abort();
  await lite.revokeLease(lease!);
  await assertGoneForGood([run], '(0)');
  await run.holder.close();
  assert.is(await lite.getLeased(liveKey(run.node)), null);
});

test('(1) a stop racing a re-registration\'s claim: none after the exit, whenever it comes', async () => {
  await setup();
  // The stop 0, 20, 80, 300 ms after the re-registration began (its thread loading, claiming,
  // the claim heard of and adopted, the Node written), and once as the claim is heard of.
  const delays = [0, 20, 80, 300, -1];
  const done: Run[] = [];
  for (const [k, d] of delays.entries()) {
    const run = newRun(`${NODE}-1-${k}`, `192.0.2.${50 + k}/24`);
    await register(run, true);
    assert.ok(await handedOver(run, run.claims[0]!.lease), `${run.node}: handed over | ${run.logs.join(' | ')}`);
    await assertOneLiveKey(run, `${run.node} running`);
    // The datastore replaced (as run.ts ReRegistration): the key claimed again on a new lease.
    if (d >= 0) {
      void register(run, false).catch(() => undefined);
      await new Promise((r) => setTimeout(r, d));
      await stop(run);
    } else {
      let stopping: Promise<void> | null = null;
      void register(run, false, () => {
        stopping ??= stop(run);
        return Promise.resolve();
      }).catch(() => undefined);
      assert.ok(await until(() => stopping !== null, 30_000), `${run.node}: claimed again | ${run.logs.join(' | ')}`);
      await stopping;
    }
    done.push(run);
  }
  await assertGoneForGood(done, '(1)');
});

test('(2) a renewal of the registration\'s thread in flight at the hand-over; a stop while it is in flight', async () => {
  const { etcd } = await setup();
  // (a) handed over while both the thread's renewal (every LIVE_TTL_S / 3 s from the claim) and
  // the holder's first one wait on a stopped etcd; (b) the same, and the stop comes then.
  for (const stopInFlight of [false, true]) {
    const run = newRun(`${NODE}-2-${stopInFlight ? 'b' : 'a'}`, `192.0.2.${stopInFlight ? 61 : 60}/24`);
    // etcd stopped as the claim is heard of, before the holder takes it (the registration's
    // own write of the Node waits on it too)
    let paused = false;
    let pausing: Promise<void> | null = null;
    // (once: a claim made again by the same registration, etcd unreachable meanwhile, goes on)
    const registered = register(run, true, () => (pausing ??= etcd.pause().then(() => void (paused = true)))).catch((e: Error) => e);
    assert.ok(await until(() => paused, 60_000), `claimed | ${run.logs.join(' | ')}`);
    const lease = run.claims[0]?.lease;
    assert.ok(lease, run.logs.join(' | '));
    // past the thread's first renewal: it waits on etcd now, as does the holder's
    await new Promise((r) => setTimeout(r, RENEWAL_MS + 1500));
    if (stopInFlight) {
      const stopped = stop(run);
      await new Promise((r) => setTimeout(r, 300));
      etcd.resume();
      await stopped;
      await assertGoneForGood([run], '(2b)');
      continue;
    }
    etcd.resume();
    assert.not.instance(await registered, Error, run.logs.join(' | '));
    assert.ok(await handedOver(run, lease!), `handed over | ${run.logs.join(' | ')}`);
    // the registration's thread ends once released (its renewal in flight answered: not news)
    const ended = await Promise.race([run.claims[0]!.claim!.ended.then(() => true), new Promise<boolean>((r) => setTimeout(() => r(false), 20_000))]);
    assert.ok(ended, `the registration's thread ended after the hand-over | ${run.logs.join(' | ')}`);
    assert.not.ok(run.logs.some((l) => /it claimed its key with (not renewed|is gone)/.test(l)), `no renewal of the handed-over lease said failed | ${run.logs.join(' | ')}`);
    // Past the claim's TTL: kept by the holder alone, one key.
    await new Promise((r) => setTimeout(r, RENEWAL_MS + 1000));
    await assertOneLiveKey(run, '(2a) after the hand-over');
    assert.is(run.holder.liveStatus()?.lease, lease, 'the claimed lease kept (no second one)');
    await stop(run);
    await assertGoneForGood([run], '(2a)');
  }
});

test('(3) etcd stopped mid-claim, then back: one live key while running, none after the exit', async () => {
  const { etcd, lite } = await setup();
  // (a) etcd stopped as the registration's thread starts (its first read of the key waits);
  // (b) stopped the moment the claim's write is seen (its answer, and the Node's write, wait).
  for (const when of ['start', 'written'] as const) {
    const run = newRun(`${NODE}-3-${when}`, `192.0.2.${when === 'start' ? 70 : 71}/24`);
    const registered = register(run, true);
    if (when === 'start') await etcd.pause();
    else {
      const seen = await until(async () => (await lite.getLeased(liveKey(run.node))) !== null, 30_000, 2);
      assert.ok(seen, `the claim written | ${run.logs.join(' | ')}`);
      await etcd.pause();
    }
    // longer than the light client's call deadline: the registration finds etcd unreachable and waits
    await new Promise((r) => setTimeout(r, 6000));
    etcd.resume();
    await registered;
    const lease = run.claims.at(-1)?.lease;
    assert.ok(lease, run.logs.join(' | '));
    assert.ok(await handedOver(run, lease!), `handed over | ${run.logs.join(' | ')}`);
    await assertOneLiveKey(run, `(3${when}) running`);
    await new Promise((r) => setTimeout(r, RENEWAL_MS + 1000));
    await assertOneLiveKey(run, `(3${when}) a renewal period later`);
    await stop(run);
    await assertGoneForGood([run], `(3${when})`);
  }
});

test.run();
