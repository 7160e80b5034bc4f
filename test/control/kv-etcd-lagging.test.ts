// A lagging etcd member after a reconnection is not a replaced store (etcd-kv.ts): a real
// three-member etcd cluster on loopback (unique ports), one member (m2, run as nobody) cut off
// from its peers by nftables (a table of this test's own, matching only this cluster's peer ports
// and m2's uid), so it stays at an old revision while the others go on. A watch that delivered
// the newer revisions through m0 is moved (through a forwarder of the test's) to m2: its
// responses carry m2's old revision, below what the watch delivered (or, once m2 knows it has no
// leader, m2 refuses the watch: watches ask for a leader). The store is not replaced:
// no resync while the linearizable read cannot be answered (m2 has no leader), none once m2 is
// back with its peers (the read then says the store's revision), and the watch goes on.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { ChildProcess, execFileSync, spawn } from 'node:child_process';
import { chownSync, mkdtempSync, rmSync } from 'node:fs';
import { createServer, connect, Server, Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { EtcdKv } from '../../src/control/kv/etcd-kv';
import type { KvEvent } from '../../src/control/kv/kv';
import { ETCD_BINARY, freePort } from '../helpers/etcd';

const NOBODY = 65534;
const procs: ChildProcess[] = [];
const dirs: string[] = [];
const table = `podway_test_lagging_${process.pid}`;
let tableMade = false;
const cleanup = () => {
  for (const p of procs) if (p.pid && p.exitCode === null && p.signalCode === null) try { process.kill(p.pid, 'SIGKILL'); } catch { /* gone */ }
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
  if (tableMade) try { execFileSync('nft', ['delete', 'table', 'inet', table]); } catch { /* gone */ }
  tableMade = false;
};
process.on('exit', cleanup);

async function until(what: string, cond: () => boolean | Promise<boolean>, timeoutMs: number): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!(await cond())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** A loopback forwarder whose target can change; moving it cuts the open connections. */
async function forwarder(target: number): Promise<{ endpoint: string; moveTo(port: number): void; close(): Promise<void> }> {
  const sockets = new Set<Socket>();
  let to = target;
  const server: Server = createServer((c) => {
    const up = connect(to, '127.0.0.1');
    sockets.add(c).add(up);
    const drop = () => { c.destroy(); up.destroy(); sockets.delete(c); sockets.delete(up); };
    c.on('error', drop).on('close', drop);
    up.on('error', drop).on('close', drop);
    c.pipe(up);
    up.pipe(c);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as { port: number }).port;
  return {
    endpoint: `http://127.0.0.1:${port}`,
    moveTo(p: number) { to = p; for (const s of sockets) s.destroy(); sockets.clear(); },
    close: () => { for (const s of sockets) s.destroy(); return new Promise<void>((r) => server.close(() => r())); },
  };
}

test('a watch moved to a member lagging behind (same cluster, older revision) is not taken for a replaced store; it goes on once the member caught up', async () => {
  const clients = [await freePort(), await freePort(), await freePort()];
  const peers = [await freePort(), await freePort(), await freePort()];
  const url = (p: number) => `http://127.0.0.1:${p}`;
  const cluster = peers.map((p, i) => `m${i}=${url(p)}`).join(',');
  const logs = ['', '', ''];
  for (let i = 0; i < 3; i++) {
    const dir = mkdtempSync(join(tmpdir(), `podway-etcd-lag${i}-`));
    dirs.push(dir);
    if (i === 2) chownSync(dir, NOBODY, NOBODY);
    const p = spawn(ETCD_BINARY, [
      '--name', `m${i}`, '--data-dir', dir,
      '--listen-client-urls', url(clients[i]), '--advertise-client-urls', url(clients[i]),
      '--listen-peer-urls', url(peers[i]), '--initial-advertise-peer-urls', url(peers[i]),
      '--initial-cluster', cluster, '--initial-cluster-token', `podway-lag-${process.pid}`, '--initial-cluster-state', 'new',
      '--log-level', 'warn', '--logger', 'zap',
    ], { stdio: ['ignore', 'pipe', 'pipe'], ...(i === 2 ? { uid: NOBODY, gid: NOBODY } : {}) });
    p.stdout!.on('data', (b: Buffer) => { logs[i] = (logs[i] + b.toString()).slice(-3000); });
    p.stderr!.on('data', (b: Buffer) => { logs[i] = (logs[i] + b.toString()).slice(-3000); });
    procs.push(p);
  }
  const healthy = async (i: number) => {
    try {
      const r = await fetch(`${url(clients[i])}/health`, { signal: AbortSignal.timeout(1000) });
      return ((await r.json()) as { health?: string }).health === 'true';
    } catch { return false; }
  };
  const writer = new EtcdKv({ endpoints: [url(clients[0])], timeoutMs: 3000 });
  let fwd: Awaited<ReturnType<typeof forwarder>> | null = null;
  let watcher: EtcdKv | null = null;
  try {
    for (let i = 0; i < 3; i++) await until(`member m${i} healthy: ${logs[i]}`, () => healthy(i), 30_000);
    // m2 off its peers: its own dials (uid nobody) and every dial to its peer port dropped.
    execFileSync('nft', ['-f', '-'], { input: `table inet ${table} {\n chain out { type filter hook output priority 0;\n  meta skuid ${NOBODY} tcp dport { ${peers[0]}, ${peers[1]} } drop\n  tcp dport ${peers[2]} drop\n }\n}\n` });
    tableMade = true;
    const p = `/podway-lag-${process.pid}/`;
    // Written through m0 once m0 and m1 have a leader between them (m2 may have led: a new
    // election first): each write tried again while it times out, bounded.
    const write = async (key: string) => {
      for (let attempt = 0; ; attempt++) {
        try {
          await writer.create(key, 'x'); // null: an earlier attempt landed after all
          return;
        } catch (e) {
          if (attempt >= 10) throw e;
        }
      }
    };
    for (let i = 0; i < 10; i++) await write(`${p}k${i}`);
    const { revision } = await writer.list(p);
    fwd = await forwarder(clients[0]);
    watcher = new EtcdKv({ endpoints: [fwd.endpoint], timeoutMs: 2000 });
    const events: KvEvent[] = [];
    const resyncs: string[] = [];
    const statuses: string[] = [];
    const w = watcher.watch(p, 1, {
      onEvents: (evs) => events.push(...evs),
      onResync: (reason, replaced) => resyncs.push(`${replaced}: ${reason}`),
      onStatus: (status, detail) => statuses.push(`${status}: ${detail}`),
    });
    await until('the history through m0', () => events.length === 10, 10_000);
    // The watch's connection cut and made again, to m2 (behind by at least the 10 writes).
    fwd.moveTo(clients[2]);
    const lagging = () => (w as unknown as { laggingHeaders: number }).laggingHeaders;
    // Either its first answer carries m2's revision, below the watch's: a confirmation is under way,
    // and m2, without a leader, cannot answer it (each read times out, 2 s, and is tried again); or
    // m2 already knows it has no leader and refuses the watch (watches ask for a leader, 72eb653:
    // the watch is down, "no leader"), which a fresh-machine run saw every time. Either way nothing
    // may be replaced.
    const refusedNoLeader = () => statuses.some((x) => x.startsWith('down') && /no leader/.test(x));
    await until('an answer of m2 below the revisions delivered, or m2 refusing the watch (no leader)', () => (w as unknown as { confirming: boolean }).confirming || refusedNoLeader() || resyncs.length > 0, 20_000);
    await new Promise((r) => setTimeout(r, 3000));
    assert.equal(resyncs, [], `not replaced while unconfirmed (the store's revision is ${revision})`);
    assert.is(lagging(), 0, 'nothing confirmed yet');
    // m2 back with its peers: it catches up, the read confirms the revision, the watch goes on.
    execFileSync('nft', ['delete', 'table', 'inet', table]);
    tableMade = false;
    // m2 rejoins, its higher term forces an election, it catches up, and the confirming read
    // concludes: the same store. Wait for the conclusion itself, not for a lagging header counted:
    // on the fresh CI machine m2's first watch answer came only after it had caught up (at or
    // above our revision: nothing lagging to count), which the watch rightly took as the same store.
    const confirming = () => (w as unknown as { confirming: boolean }).confirming;
    try {
      await until('the linearizable read', () => !confirming() || resyncs.length > 0, 90_000);
    } catch (e) {
      throw new Error(`${(e as Error).message}: m2 healthy ${await healthy(2)}; m2's log: ${logs[2].slice(-1500)}`);
    }
    assert.equal(resyncs, [], 'not replaced');
    await write(`${p}after`);
    await until(`the next event through m2 (watch status: ${statuses.slice(-3).join(' | ')})`, () => events.length === 11, 30_000);
    assert.equal(resyncs, [], 'not replaced after the watch went on');
    assert.is((events[10] as { entry: { key: string } }).entry.key, `${p}after`);
    await w.close();
  } finally {
    await watcher?.close();
    await writer.close();
    await fwd?.close();
    cleanup();
  }
});

test.run();
