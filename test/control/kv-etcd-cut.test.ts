// A path to etcd cut silently (packets dropped, nothing refused: an nft drop rule, as a firewall or
// a dead link does) and back, for both etcd clients (etcd-common.ts: CONNECT_ATTEMPT_MS,
// KEEPALIVE_TIME_MS; tcp-dial.ts). etcd runs in a namespace of its own on a veth address
// (test/helpers/netns.ts), the test in another one (runPrivateNetns); the cut is a drop rule on
// etcd's input for its client port, removed in `finally`.
//   - EtcdKv: a watch whose connection is cut is down within the keepalive bound, and up again
//     soon after the cut ends, with the write made meanwhile;
//   - EtcdLiteKv: a connection cut under it is dropped once a call ran out its deadline on it (a
//     ping nobody answers), and a call waiting for a new connection gets it soon after the cut.
// Why "soon" can be told from the old way: without the bounds a single connection attempt, started
// when the client found the connection dead, was left to the kernel, which sends the SYN again 1,
// 3, 7, 15, 31 and 63 s after the first (tcp_syn_retries 6 and, since Linux 6.5,
// tcp_syn_linear_timeouts 0: set here; see test.before). The cut is held until 33 s
// after that attempt began, so it connected only at its retransmission at 63 s, about 30 s after
// the cut ended; with the bounds a fresh SYN leaves every CONNECT_RETRY_MS and the client is back
// within a few seconds. The bound asserted, RECOVERY_MS, is generous for a loaded host and still
// half of the old way's.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { existsSync, writeFileSync } from 'node:fs';
import { EtcdKv } from '../../src/control/kv/etcd-kv';
import { EtcdLiteKv } from '../../src/control/kv/etcd-lite';
import { KvSlowError } from '../../src/control/kv/kv';
import type { KvEvent } from '../../src/control/kv/kv';
import { LabEtcd } from '../../src/lab/etcd';
import { tcpRedials } from '../../src/control/kv/tcp-dial';
import { ip, Netns, runPrivateNetns, sh, sleep, tag } from '../helpers/netns';
import { failure, until } from '../helpers/until';

runPrivateNetns(420_000);

/** How long the cut lasts after the client began connecting again (see the top). */
const HOLD_AFTER_DIAL_MS = 33_000;
/** The most the client may take to be back after the cut ends (the old way: ~30 s). */
const RECOVERY_MS = 15_000;

const LINEAR = '/proc/sys/net/ipv4/tcp_syn_linear_timeouts';
const t = tag();
const etcdNs = new Netns(`pw-cut-${t}`);
const HOST = '10.201.0.2';
let etcd: LabEtcd | null = null;
let endpoint = '';
const table = `podway_cut_${process.pid}`;
let cutOn = false;

function cut(): void {
  etcdNs.exec('nft', [`add table inet ${table}; add chain inet ${table} in { type filter hook input priority 0; }; add rule inet ${table} in tcp dport 2379 drop`]);
  cutOn = true;
}
function uncut(): void {
  if (!cutOn) return;
  etcdNs.exec('nft', ['delete', 'table', 'inet', table]);
  cutOn = false;
}

test.before(async () => {
  // The kernel's classic SYN schedule (the old way's timing above depends on it): tcp_syn_retries
  // 6, and since Linux 6.5 tcp_syn_linear_timeouts 0 (its default, 4, sends the first 4 again 1 s
  // apart, and the attempt then fails after ~18 s, which grpc-js follows with a new one).
  writeFileSync('/proc/sys/net/ipv4/tcp_syn_retries', '6');
  if (existsSync(LINEAR)) writeFileSync(LINEAR, '0');
  ip('link', 'set', 'lo', 'up');
  ip('netns', 'add', etcdNs.name);
  etcdNs.ip('link', 'set', 'lo', 'up');
  ip('link', 'add', `c-${t}`, 'type', 'veth', 'peer', 'name', `e-${t}`, 'netns', etcdNs.name);
  ip('addr', 'add', '10.201.0.1/24', 'dev', `c-${t}`);
  ip('link', 'set', `c-${t}`, 'up');
  etcdNs.ip('addr', 'add', `${HOST}/24`, 'dev', `e-${t}`);
  etcdNs.ip('link', 'set', `e-${t}`, 'up');
  etcd = await LabEtcd.start({ netns: etcdNs.name, host: HOST });
  endpoint = etcd.endpoint;
});

test.after(async () => {
  try {
    uncut();
  } finally {
    await etcd?.stop();
    sh('ip', ['netns', 'del', etcdNs.name], { allowFail: true });
  }
});

test('EtcdKv: a watch cut silently is down within the keepalive bound, and up again soon after the cut ends, with the write made meanwhile', async () => {
  const prefix = `/cut-${process.pid}/`;
  const kv = new EtcdKv({ endpoints: [endpoint], timeoutMs: 3000 });
  // writes through etcd's unix socket, which the cut does not touch
  const writer = new EtcdKv({ endpoints: [etcd!.localEndpoint], timeoutMs: 10_000 });
  const seen = new Set<string>();
  const statuses: { status: string; at: number; detail: string }[] = [];
  try {
    const { revision } = await kv.list(prefix);
    const w = kv.watch(prefix, revision + 1, {
      onEvents: (evs: readonly KvEvent[]) => { for (const e of evs) if (e.type === 'put') seen.add(e.entry.key); },
      onResync: (reason) => { statuses.push({ status: `resync ${reason}`, at: Date.now(), detail: '' }); },
      onStatus: (status, detail) => { statuses.push({ status, at: Date.now(), detail }); },
    });
    try {
      assert.ok(await writer.create(`${prefix}before`, 'x'));
      assert.ok(await until(() => seen.has(`${prefix}before`), 20_000), 'the watch delivers before the cut');
      const redials = tcpRedials();
      cut();
      const cutAt = Date.now();
      try {
        // keepalive: a ping within 10 s, its answer awaited 5 s
        assert.ok(await until(() => statuses.some((s) => s.status === 'down'), 30_000, 20), `the watch is down within the keepalive bound: ${JSON.stringify(statuses)}`);
        const downAt = statuses.find((s) => s.status === 'down')!.at;
        assert.ok(downAt - cutAt < 30_000);
        assert.ok(await writer.create(`${prefix}during`, 'x'), 'written while the watch is cut off');
        await sleep(Math.max(0, downAt + HOLD_AFTER_DIAL_MS - Date.now()));
        assert.not.ok(seen.has(`${prefix}during`), 'nothing passes the cut');
      } finally {
        uncut();
      }
      const backAt = Date.now();
      assert.ok(await until(() => seen.has(`${prefix}during`), RECOVERY_MS, 20), `the write made during the cut is delivered within ${RECOVERY_MS} ms of its end: ${JSON.stringify(statuses)}`);
      const up = statuses.find((s) => s.status === 'up' && s.at >= backAt - 1000);
      assert.ok(up, `the watch says it is up again: ${JSON.stringify(statuses)}`);
      assert.not.ok(statuses.some((s) => s.status.startsWith('resync')), 'resumed, not resynced');
      assert.ok(tcpRedials() > redials, 'connection attempts were dialled afresh while the cut lasted');
    } finally {
      await w.close();
    }
  } finally {
    await kv.close();
    await writer.close();
  }
});

test('EtcdLiteKv: a connection cut silently is dropped after a call ran out its deadline on it, and a call waiting for a connection gets one soon after the cut ends', async () => {
  const key = `/cut-${process.pid}/lite`;
  const kv = new EtcdLiteKv({ endpoints: [endpoint], timeoutMs: 2000, connectTimeoutMs: 90_000 });
  const state = () => (kv as unknown as { connections: { state: string }[] }).connections[0]!.state;
  try {
    assert.is(await kv.get(key), null);
    assert.is(state(), 'ready');
    cut();
    try {
      const e = await failure(kv.get(key));
      assert.instance(e, KvSlowError, `a call on the cut connection runs out its deadline: ${e.message}`);
      // the ping sent then is not answered within KEEPALIVE_TIMEOUT_MS: the connection is dropped
      assert.ok(await until(() => state() !== 'ready', 20_000, 20), `the dead connection is dropped (${state()})`);
      const redials = tcpRedials();
      const dialAt = Date.now();
      const waiting = kv.get(key).then((v) => ({ v, at: Date.now() }), (err: Error) => ({ err, at: Date.now() }));
      await sleep(Math.max(0, dialAt + HOLD_AFTER_DIAL_MS - Date.now()));
      const redialled = tcpRedials() > redials;
      uncut();
      const backAt = Date.now();
      const r = await waiting;
      assert.ok('v' in r, `the waiting call succeeds: ${'err' in r ? r.err.message : ''}`);
      assert.ok(r.at - backAt < RECOVERY_MS, `within ${RECOVERY_MS} ms of the cut's end (took ${r.at - backAt} ms)`);
      assert.ok(redialled, 'the connection was dialled afresh while the cut lasted');
    } finally {
      uncut();
    }
  } finally {
    await kv.close();
  }
});

test.run();
