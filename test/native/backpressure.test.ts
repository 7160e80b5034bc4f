/**
 * Transmit back-pressure and TUN truncation in the native addon (root, network namespaces).
 *
 * The kernel is made to refuse sends for real: the sending end of a veth gets a slow tbf qdisc and
 * the socket a tiny send buffer, so a burst fills the buffer and sendmmsg answers EAGAIN. Frames not
 * taken must be queued in C (never waited for, never lost silently), sent in order when the socket
 * polls writable, and frames beyond the backlog counted in txDroppedFull exactly.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { native, FramePool, DescFlag, HEADROOM, SLOT_SIZE, PortStats } from '../../src/dataplane/native';
import { parseIpv4 as ip4 } from '../../src/packet/ipv4';
import { withNetns, veth, waitFor, sleep, Netns } from '../helpers/netns';
import { rd16, rd32, wr16, wr32 } from './wire-ref';

/** Backlog size in frames at first, and at most (TXQ_FRAMES, TXQ_MAX_FRAMES in native/ports.h). */
const TXQ_FRAMES = 256;
const TXQ_MAX_FRAMES = 16384;

const pool = new FramePool(1024);
const b = pool.bytes;

/** The stats fields this change adds (not yet in PortStats of src/dataplane/native.ts). */
type TxStats = PortStats & { txQueued: number; txBacklog: number; txBacklogGrown: number };
const stats = (p: number) => native.stats(p) as TxStats;

/** Classic BPF accepting only one ethertype (ldh [12]; jeq #type ? accept : drop). */
function etherFilter(type: number): Uint8Array {
  const bpf = new Uint8Array(32);
  const dv = new DataView(bpf.buffer);
  const ins = (i: number, code: number, jt: number, jf: number, k: number) => {
    dv.setUint16(i * 8, code, true); bpf[i * 8 + 2] = jt; bpf[i * 8 + 3] = jf; dv.setUint32(i * 8 + 4, k, true);
  };
  ins(0, 0x28, 0, 0, 12); ins(1, 0x15, 0, 1, type); ins(2, 0x06, 0, 0, 0x40000); ins(3, 0x06, 0, 0, 0);
  return bpf;
}
/** Classic BPF dropping everything: the socket never becomes readable. */
const dropAll = (() => { const f = new Uint8Array(8); f[0] = 0x06; return f; })();

const ETHERTYPE = 0x88b5;

/** Descriptor i as an Ethernet frame of `len` bytes carrying sequence number seq. */
function ethFrame(i: number, seq: number, len: number) {
  const o = pool.start(i);
  b.fill(0xff, o, o + 6);
  b.set([2, 0, 0, 0, 0, 1], o + 6);
  wr16(b, o + 12, ETHERTYPE);
  wr32(b, o + 14, seq);
  b.fill(seq & 255, o + 18, o + len);
  pool.len[i] = len;
  pool.txList[i] = i;
}

/** Descriptors [0, n) as Ethernet frames of `len` bytes carrying sequence numbers seq0, seq0+1, ... */
function ethFrames(n: number, seq0: number, len = 100) {
  for (let i = 0; i < n; i++) ethFrame(i, seq0 + i, len);
}

/** A slow egress: tbf at 1 Mbit/s on a veth end (about 1 ms per 100-byte frame). */
function slowQdisc(ns: Netns, dev: string, rate = '1mbit') {
  ns.exec('tc', ['qdisc', 'add', 'dev', dev, 'root', 'tbf', 'rate', rate, 'burst', '1600', 'limit', '3000']);
}

/**
 * Namespaces `labels` joined by a veth aIf--bIf whose sending end (in A) has slowQdisc(rate); `fn`
 * gets the AF_PACKET ports on both ends: pa sends (`paOpts`, and dropAll: it never turns readable,
 * so its backlog needs the addon's own writable-only handle), pb receives our ethertype. Both ports
 * are closed after `fn`, however it ends.
 */
async function withSlowPacketPair(
  labels: [string, string], aIf: string, bIf: string, rate: string, paOpts: { sndbuf?: number; txSocket?: boolean },
  fn: (pa: number, pb: number) => Promise<void>,
): Promise<void> {
  await withNetns(labels, async ([A, B]) => {
    veth(A, aIf, B, bIf);
    slowQdisc(A, aIf, rate);
    const pa = native.openPacket(aIf, { netns: A.path, ...paOpts, bpf: dropAll });
    const pb = native.openPacket(bIf, { netns: B.path, bpf: etherFilter(ETHERTYPE), rcvbuf: 1 << 20 });
    try {
      await fn(pa, pb);
    } finally {
      native.close(pa);
      native.close(pb);
    }
  });
}

/**
 * A veth A:aIf (<net>.1/24) -- B:bIf (<net>.2/24) with slowQdisc(rate) on A's end. A knows B's MAC
 * (a permanent neighbour), so no ARP exchange stands between a burst and the slow qdisc.
 */
function slowAddressedVeth(A: Netns, aIf: string, B: Netns, bIf: string, net: string, rate?: string) {
  veth(A, aIf, B, bIf);
  A.ip('addr', 'add', `${net}.1/24`, 'dev', aIf);
  B.ip('addr', 'add', `${net}.2/24`, 'dev', bIf);
  const bMac = B.ip('-br', 'link', 'show', bIf).trim().split(/\s+/)[2];
  A.ip('neigh', 'replace', `${net}.2`, 'lladdr', bMac, 'dev', aIf, 'nud', 'permanent');
  slowQdisc(A, aIf, rate);
}

/** Read every frame of our ethertype from an AF_PACKET port into `seen` (sequence numbers). */
function drainEth(port: number, seen: number[], len = 100) {
  for (;;) {
    const n = native.recv(port, 600, 128);
    for (let k = 0; k < n; k++) {
      const o = pool.start(600 + k);
      if (rd16(b, o + 12) !== ETHERTYPE) continue;
      const seq = rd32(b, o + 14);
      if (pool.len[600 + k] !== len || b[o + len - 1] !== (seq & 255)) throw new Error(`frame ${seq} damaged`);
      seen.push(seq);
    }
    if (n < 128) return;
  }
}

for (const txSocket of [false, true]) test(`AF_PACKET${txSocket ? ' with a transmit-only socket (txSocket)' : ''}: a full socket queues in C, drains on POLLOUT in order, overflow counted exactly`, async () => {
  const t = txSocket ? 't' : '';
  await withSlowPacketPair([`bpa${t}`, `bpb${t}`], `qa${t}0`, `qb${t}0`, '1mbit', { sndbuf: 4096, txSocket }, async (pa, pb) => {
    ethFrames(256, 0);
    const a1 = native.send(pa, 0, 256);
    const s1 = stats(pa);
    assert.ok(s1.txBacklog > 0, `the kernel refused part of the burst (sent ${s1.txPackets})`);
    assert.ok(s1.txBacklog < 256, 'some frames went straight out');
    assert.is(a1, 256, 'every frame accepted: sent or queued');
    assert.is(s1.txPackets + s1.txBacklog, 256);
    assert.is(s1.txQueued, s1.txBacklog);
    assert.ok(s1.txRetries >= 1);
    assert.is(s1.txDroppedFull, 0);
    const q1 = s1.txBacklog;

    // The backlog holds copies: the pool slots can be reused at once. Nothing is sent ahead of
    // the backlog; a send that finds it full doubles it (its frames kept in order).
    assert.is(s1.txBacklogGrown, 0);
    ethFrames(256, 256);
    const a2 = native.send(pa, 0, 256);
    const s2 = stats(pa);
    assert.is(s2.txPackets, s1.txPackets, 'no frame overtakes the backlog');
    assert.is(a2, 256, 'a full backlog grows: every frame accepted');
    assert.is(s2.txBacklog, q1 + 256);
    assert.ok(s2.txBacklog > TXQ_FRAMES);
    assert.is(s2.txBacklogGrown, 1);
    assert.is(s2.txDroppedFull, 0);
    ethFrames(10, 512);
    assert.is(native.send(pa, 0, 10), 10);

    const want = 256 + 256 + 10;
    const seen: number[] = [];
    const drained = await waitFor(() => { drainEth(pb, seen); return stats(pa).txBacklog === 0 && seen.length >= want; }, 10_000);
    await sleep(20);
    drainEth(pb, seen);
    const s3 = stats(pa);
    assert.ok(drained, `backlog ${s3.txBacklog}, received ${seen.length} of ${want}`);
    assert.is(s3.txPackets, want);
    assert.is(s3.txErrors, 0);
    assert.is(s3.txDroppedFull, 0);
    assert.equal(seen, [...Array(want).keys()], 'the peer got every accepted frame, in order');
    // a drained port sends directly again
    ethFrames(1, 20_000);
    assert.is(native.send(pa, 0, 1), 1);
    const s3b = stats(pa);

    // The bound: sends in one go (no flush runs between them) fill it to TXQ_MAX_FRAMES; what
    // does not fit is counted, frame by frame, and a full backlog accepts nothing.
    let offered = 0, accepted = 0;
    for (let k = 0; k < 100 && stats(pa).txBacklog < TXQ_MAX_FRAMES; k++) {
      ethFrames(256, 100_000 + offered);
      accepted += native.send(pa, 0, 256);
      offered += 256;
    }
    const s4 = stats(pa);
    assert.is(s4.txBacklog, TXQ_MAX_FRAMES);
    assert.is(accepted, s4.txPackets - s3b.txPackets + TXQ_MAX_FRAMES - s3b.txBacklog, 'accepted: sent or queued');
    assert.is(s4.txDroppedFull, offered - accepted);
    assert.ok(s4.txDroppedFull > 0 && s4.txDroppedFull < 256);
    assert.is(s4.txBacklogGrown, 1 + Math.log2(TXQ_MAX_FRAMES / TXQ_FRAMES), 'doubled up to the bound');
    ethFrames(10, 10_000);
    assert.is(native.send(pa, 0, 10), 0, 'a full backlog accepts nothing');
    assert.is(stats(pa).txDroppedFull, offered - accepted + 10);
    // (the frames left in the backlog go with the port when the test closes it)
  });
});

/** /proc/net/packet rows of namespace `n` for interface index `ifindex`: protocol and running (R). */
function packetSockets(n: Netns, ifindex: number): { proto: number; running: boolean }[] {
  return n.exec('cat', ['/proc/net/packet']).split('\n').slice(1).map((l) => l.trim().split(/\s+/))
    .filter((f) => f.length >= 9 && Number(f[4]) === ifindex).map((f) => ({ proto: parseInt(f[3], 16), running: f[5] === '1' }));
}

test('AF_PACKET txSocket: sends leave by a second socket that has no receive hook; the port still receives (never its own frames) while its backlog drains', async () => {
  await withNetns(['bxa', 'bxb'], async ([A, B]) => {
    veth(A, 'xa0', B, 'xb0');
    slowQdisc(A, 'xa0', '1mbit');
    const ifindex = Number(A.ip('-o', 'link', 'show', 'xa0').split(':')[0]);
    const before = packetSockets(A, ifindex).length;
    const pa = native.openPacket('xa0', { netns: A.path, txSocket: true, sndbuf: 4096, bpf: etherFilter(ETHERTYPE) });
    const pb = native.openPacket('xb0', { netns: B.path, bpf: etherFilter(ETHERTYPE), rcvbuf: 1 << 20 });
    try {
      const socks = packetSockets(A, ifindex);
      assert.is(socks.length, before + 2, `two packet sockets on xa0: ${JSON.stringify(socks)}`);
      assert.equal(socks.filter((k) => k.proto === 0 && !k.running).length, 1, 'one of protocol 0, not hooked: it receives nothing');
      assert.equal(socks.filter((k) => k.proto === 0x0003 && k.running).length, 1, 'one bound to ETH_P_ALL, receiving');

      // JS polls the port for reading while its backlog (on the other socket) drains.
      const got: number[] = [];
      native.poll(pa, () => {
        for (;;) {
          const n = native.recv(pa, 600, 128);
          for (let k = 0; k < n; k++) got.push(rd32(b, pool.start(600 + k) + 14));
          if (n < 128) return;
        }
      });
      ethFrames(256, 0);
      assert.is(native.send(pa, 0, 256), 256);
      const s1 = stats(pa);
      assert.ok(s1.txBacklog > 0 && s1.txBacklog < 256, `the transmit socket's 4 KiB buffer refused part of the burst (sent ${s1.txPackets})`);
      ethFrames(20, 50_000); // B -> A while A's backlog waits
      assert.is(native.send(pb, 0, 20), 20);
      const seen: number[] = [];
      const done = await waitFor(() => { drainEth(pb, seen); return stats(pa).txBacklog === 0 && seen.length >= 256 && got.length >= 20; }, 15_000);
      await sleep(20);
      drainEth(pb, seen);
      assert.ok(done, `backlog ${stats(pa).txBacklog}, B received ${seen.length}, A received ${got.length}`);
      assert.equal(seen, [...Array(256).keys()], 'the peer got the burst once, in order');
      assert.equal(got, [...Array(20).keys()].map((k) => 50_000 + k), 'A received B\'s frames and none of its own');
      assert.is(stats(pa).txErrors, 0);
      native.unpoll(pa);
    } finally {
      native.close(pa);
      native.close(pb);
    }
    assert.ok(await waitFor(() => native.pendingCloses() === 0, 5000), 'the worker thread released both sockets');
    assert.is(packetSockets(A, ifindex).length, before, 'both sockets closed');
  });
});

test('AF_PACKET txSocket in a PACKET_FANOUT group: no member reads back the frames any member sent (with and without a socket filter)', async () => {
  // The group's shared hook ignores PACKET_IGNORE_OUTGOING of its members, and the transmit-only
  // socket is no member, so without the port's own guard every sent frame came back to the group.
  await withNetns(['bfa', 'bfb'], async ([A, B]) => {
    veth(A, 'fa0', B, 'fb0');
    const group = 1000 + (process.pid % 30000);
    const ports = [
      native.openPacket('fa0', { netns: A.path, txSocket: true, fanoutGroup: group, bpf: etherFilter(ETHERTYPE) }),
      native.openPacket('fa0', { netns: A.path, txSocket: true, fanoutGroup: group }),
    ];
    const pb = native.openPacket('fb0', { netns: B.path, bpf: etherFilter(ETHERTYPE), rcvbuf: 1 << 20 });
    try {
      const got: number[] = [];
      const seen: number[] = [];
      ethFrames(20, 0);
      assert.is(native.send(ports[0], 0, 20), 20);
      ethFrames(20, 1000);
      assert.is(native.send(ports[1], 0, 20), 20);
      ethFrames(20, 50_000); // B -> A
      assert.is(native.send(pb, 0, 20), 20);
      const done = await waitFor(() => { for (const p of ports) drainEth(p, got); drainEth(pb, seen); return seen.length >= 40 && got.length >= 20; }, 15_000);
      await sleep(50);
      for (const p of ports) drainEth(p, got);
      assert.ok(done, `B received ${seen.length}, A's group received ${got.length}`);
      assert.equal(seen.sort((x, y) => x - y), [...[...Array(20).keys()], ...[...Array(20).keys()].map((k) => 1000 + k)], 'the peer got both members\' frames');
      assert.equal(got.sort((x, y) => x - y), [...Array(20).keys()].map((k) => 50_000 + k), 'the group received B\'s frames and none of its own');
    } finally {
      for (const p of ports) native.close(p);
      native.close(pb);
    }
    assert.ok(await waitFor(() => native.pendingCloses() === 0, 5000), 'the worker thread released the sockets');
  });
});

test('AF_PACKET: close() drops the backlog: nothing the kernel had refused reaches the peer after the call', async () => {
  await withSlowPacketPair(['bca', 'bcb'], 'ca0', 'cb0', '1mbit', { sndbuf: 4096 }, async (pa, pb) => {
    ethFrames(256, 0);
    assert.is(native.send(pa, 0, 256), 256);
    const s1 = stats(pa);
    assert.ok(s1.txBacklog > 100, `the kernel refused most of the burst (sent ${s1.txPackets})`);
    native.close(pa);
    assert.throws(() => native.send(pa, 0, 1), /no such open port/, 'the id is gone at once');
    // What the kernel took before the close (in the socket and the qdisc) still goes out at
    // 1 Mbit/s; the backlog must not. Wait well past the time the whole burst would need.
    const seen: number[] = [];
    await waitFor(() => { drainEth(pb, seen); return seen.length >= 256; }, 1500);
    drainEth(pb, seen);
    assert.ok(seen.length <= s1.txPackets, `received ${seen.length}, the kernel had taken ${s1.txPackets}`);
    assert.equal(seen, [...Array(seen.length).keys()], 'in order, from the start of the burst');
    assert.ok(await waitFor(() => native.pendingCloses() === 0, 5000), 'the worker thread released the socket');
  });
});

test('AF_PACKET: a backlog discarded because its socket failed (the device deleted under it) is counted txBacklogDropped (drop reason tx_backlog_dropped), in txErrors too: every frame sent, rejected or dropped so', async () => {
  await withNetns(['bda', 'bdb'], async ([A, B]) => {
    veth(A, 'da0', B, 'db0');
    slowQdisc(A, 'da0');
    const pa = native.openPacket('da0', { netns: A.path, sndbuf: 4096, bpf: dropAll });
    try {
      ethFrames(256, 0);
      assert.is(native.send(pa, 0, 256), 256);
      const s1 = stats(pa);
      assert.ok(s1.txBacklog > 100, `the kernel refused most of the burst (sent ${s1.txPackets})`);
      A.ip('link', 'del', 'da0');
      assert.ok(await waitFor(() => stats(pa).txBacklog === 0, 5000), `backlog ${stats(pa).txBacklog}`);
      const s2 = stats(pa) as typeof s1 & { txBacklogDropped?: number };
      const why = JSON.stringify({ s1: { txPackets: s1.txPackets, txBacklog: s1.txBacklog }, s2: { txPackets: s2.txPackets, txRejected: s2.txRejected, txBacklogDropped: s2.txBacklogDropped, txErrors: s2.txErrors, lastError: s2.lastError } });
      assert.ok((s2.txBacklogDropped ?? 0) > 0, `txBacklogDropped: ${why}`);
      assert.is(s2.txPackets + (s2.txRejected ?? 0) + (s2.txBacklogDropped ?? 0), 256, `every frame counted once: ${why}`);
      assert.is(s2.txErrors, (s2.txRejected ?? 0) + (s2.txBacklogDropped ?? 0), `txErrors: ${why}`);
    } finally {
      native.close(pa);
    }
  });
});

test('AF_PACKET: a qdisc that drops (ENOBUFS) while the socket polls writable is retried without a busy loop', async () => {
  // a big send buffer never fills: the 3000-byte tbf queue overflows first and the kernel drops
  // (AF_PACKET reports ENOBUFS), so POLLOUT says "writable" all along
  await withSlowPacketPair(['bna', 'bnb'], 'na0', 'nb0', '10mbit', {}, async (pa, pb) => {
    ethFrames(256, 0, 1000);
    const cpu0 = process.cpuUsage();
    const t0 = Date.now();
    assert.is(native.send(pa, 0, 256), 256);
    assert.ok(stats(pa).txBacklog > 200, 'the qdisc took only a few frames');
    const seen: number[] = [];
    const drained = await waitFor(() => { drainEth(pb, seen, 1000); return stats(pa).txBacklog === 0 && seen.length >= 256; }, 10_000);
    const wallMs = Date.now() - t0;
    const cpu = process.cpuUsage(cpu0);
    const cpuMs = (cpu.user + cpu.system) / 1000;
    assert.ok(drained, `backlog ${stats(pa).txBacklog}, received ${seen.length}`);
    assert.equal(seen, [...Array(256).keys()], 'every dropped frame was sent again, in order');
    assert.ok(stats(pa).txRetries > 1);
    // retrying on every POLLOUT would spin the event loop for the whole drain (cpu close to wall)
    assert.ok(cpuMs < wallMs / 2, `the drain took ${wallMs} ms and ${cpuMs.toFixed(1)} ms of CPU`);
  });
});

test('UDP: queued datagrams keep their destinations; JS is never woken for writability; unpoll/poll mid-drain', async () => {
  await withNetns(['bua', 'bub'], async ([A, B]) => {
    slowAddressedVeth(A, 'va0', B, 'vb0', '10.210.0');
    const tx = native.openUdp({ netns: A.path, addr: ip4('10.210.0.1'), port: 4000, sndbuf: 4096 });
    const rx = [
      native.openUdp({ netns: B.path, addr: ip4('10.210.0.2'), port: 4001, rcvbuf: 1 << 20 }),
      native.openUdp({ netns: B.path, addr: ip4('10.210.0.2'), port: 4002, rcvbuf: 1 << 20 }),
    ];
    try {
      let jsWakeups = 0;
      native.poll(tx, () => { jsWakeups++; }); // nothing is ever sent to tx: it never turns readable
      const N = 200;
      for (let i = 0; i < N; i++) {
        const o = pool.start(i);
        wr32(b, o, i);
        b.fill(i & 255, o + 4, o + 64);
        pool.len[i] = 64;
        pool.addr[i] = ip4('10.210.0.2');
        pool.aport[i] = 4001 + (i & 1);
        pool.txList[i] = i;
      }
      assert.is(native.send(tx, 0, N), N);
      const s1 = stats(tx);
      assert.ok(s1.txBacklog > 0, `refused part of the burst (sent ${s1.txPackets})`);
      // clobber the pool: the backlog must send its own copies, with their own addresses
      for (let i = 0; i < N; i++) { b.fill(0xee, pool.start(i), pool.start(i) + 64); pool.aport[i] = 9; }

      const got: number[][] = [[], []];
      const drainRx = () => {
        for (let r = 0; r < 2; r++) {
          for (let n = native.recv(rx[r], 600, 128); n > 0; n = native.recv(rx[r], 600, 128)) {
            for (let k = 0; k < n; k++) {
              const o = pool.start(600 + k);
              const seq = rd32(b, o);
              if (pool.len[600 + k] !== 64 || b[o + 63] !== (seq & 255)) throw new Error(`datagram ${seq} damaged`);
              assert.is(pool.addr[600 + k], ip4('10.210.0.1'));
              assert.is(pool.aport[600 + k], 4000);
              got[r].push(seq);
            }
          }
        }
      };
      // JS stops polling while frames are still queued: the addon keeps flushing on its own
      native.unpoll(tx);
      await waitFor(() => { drainRx(); return stats(tx).txBacklog < s1.txBacklog; }, 5000);
      native.poll(tx, () => { jsWakeups++; });
      const done = await waitFor(() => { drainRx(); return got[0].length + got[1].length >= N; }, 10_000);
      const s2 = stats(tx);
      assert.ok(done, `received ${got[0].length + got[1].length} of ${N}, backlog ${s2.txBacklog}`);
      assert.is(s2.txBacklog, 0);
      assert.is(s2.txPackets, N);
      assert.equal(got[0], [...Array(N / 2).keys()].map((k) => 2 * k), 'port 4001: even datagrams, in order');
      assert.equal(got[1], [...Array(N / 2).keys()].map((k) => 2 * k + 1), 'port 4002: odd datagrams, in order');
      assert.is(jsWakeups, 0, 'writable wake-ups never reach JS');
    } finally {
      native.close(tx);
      for (const r of rx) native.close(r);
    }
  });
});

test('AF_PACKET: a frame the veth drops every time (bigger than its peer\'s MTU: ENOBUFS) is dropped after bounded retries and counted; the frames behind it go', async () => {
  // A pod that lowered its eth0 MTU (1300) under its host-side veth's (1500): veth_xmit drops a
  // 1364-byte frame for the peer's MTU and the packet socket answers ENOBUFS, as for a full queue.
  await withNetns(['bma', 'bmb'], async ([A, B]) => {
    veth(A, 'ma0', B, 'mb0');
    B.ip('link', 'set', 'mb0', 'mtu', '1300');
    const pa = native.openPacket('ma0', { netns: A.path, bpf: dropAll });
    const pb = native.openPacket('mb0', { netns: B.path, bpf: etherFilter(ETHERTYPE), rcvbuf: 1 << 20 });
    try {
      const big = 14 + 1350;
      ethFrames(1, 0, big);
      assert.is(native.send(pa, 0, 1), 1, 'accepted (queued)');
      const s0 = stats(pa);
      assert.is(s0.txBacklog, 1, 'the kernel refused it: queued, as back-pressure looks the same');
      ethFrames(5, 1);
      assert.is(native.send(pa, 0, 5), 5);
      const seen: number[] = [];
      const done = await waitFor(() => { drainEth(pb, seen); return seen.length >= 5; }, 10_000);
      const s1 = stats(pa) as TxStats & { txRejected: number; txHeadDropped: number };
      assert.ok(done, `the small frames behind the refused one arrived: ${JSON.stringify(seen)}, backlog ${s1.txBacklog}, retries ${s1.txRetries}`);
      assert.equal(seen, [1, 2, 3, 4, 5], 'in order, the big one not among them');
      assert.is(s1.txBacklog, 0);
      assert.is(s1.txHeadDropped, 1, 'the big frame dropped from the head of the backlog');
      assert.is(s1.txRejected, 1);
      assert.is(s1.txErrors, 1);
      assert.is(s1.lastError, 'ENOBUFS');
      assert.ok(s1.txRetries >= 6, `retried a few times first (${s1.txRetries})`);
      // a copy for `podway capture --stage drop`, taken once
      const out = new Uint8Array(8192);
      const k = native.takeRejected!(pa, out);
      assert.is(k, 4 + big);
      assert.is(out[0] | (out[1] << 8), big, 'original length');
      assert.is(out[2] | (out[3] << 8), big, 'bytes kept');
      assert.is(rd16(out, 4 + 12), ETHERTYPE);
      assert.is(rd32(out, 4 + 14), 0, 'the big frame');
      assert.is(native.takeRejected!(pa, out), 0, 'taken once');
      // the port sends directly again
      ethFrames(1, 100);
      assert.is(native.send(pa, 0, 1), 1);
      await waitFor(() => { drainEth(pb, seen); return seen.length >= 6; }, 5000);
      assert.equal(seen.slice(5), [100]);
    } finally {
      native.close(pa);
      native.close(pb);
    }
  });
});

test('AF_PACKET: after one frame too big for the veth peer was dropped past the retries, later ones at least that long are dropped at their first refusal; small frames among them all go', async () => {
  // The pod (MTU 1300) gets a steady mix of frames too big for it and small ones. Each big frame
  // held the backlog's head for the whole bound (~255 ms) while the small ones behind it waited and
  // overflowed; the kernel itself would drop only the big ones.
  await withNetns(['bta', 'btb'], async ([A, B]) => {
    veth(A, 'ta0', B, 'tb0');
    B.ip('link', 'set', 'tb0', 'mtu', '1300');
    const pa = native.openPacket('ta0', { netns: A.path, bpf: dropAll });
    const pb = native.openPacket('tb0', { netns: B.path, bpf: etherFilter(ETHERTYPE), rcvbuf: 1 << 20 });
    type S = TxStats & { txRejected: number; txHeadDropped: number; txTooBigLen: number };
    const st = () => stats(pa) as S;
    try {
      const big = 14 + 1350;
      const seen: number[] = [];
      // the first big frame: dropped by the bound, its length remembered
      ethFrame(0, 1000, big);
      ethFrame(1, 0, 100);
      pool.txList[1] = 1;
      assert.is(native.send(pa, 0, 2), 2);
      assert.ok(await waitFor(() => { drainEth(pb, seen); return seen.length >= 1; }, 10_000), 'the small frame behind it arrived');
      const s0 = st();
      assert.is(s0.txHeadDropped, 1);
      assert.ok(s0.txRetries >= 6, `the first one waited out the bound (${s0.txRetries} refusals)`);
      assert.is(s0.txTooBigLen, big, 'its length is remembered');
      assert.is(s0.txBacklog, 0);

      // one big frame alone: refused by the direct send, then by the first flush, which drops it
      ethFrame(0, 1001, big);
      assert.is(native.send(pa, 0, 1), 1);
      assert.ok(await waitFor(() => st().txBacklog === 0, 10_000));
      const s1 = st();
      assert.is(s1.txHeadDropped, 2);
      assert.is(s1.txRetries - s0.txRetries, 2, 'dropped at its first refusal from the backlog, no retries after it');

      // a stream: rounds of [big, small, small], bigger ones too (at least the remembered length)
      const rounds = 20;
      let seq = 1;
      for (let r = 0; r < rounds; r++) {
        ethFrame(3 * r, 2000 + r, r % 2 ? big + 50 : big);
        ethFrame(3 * r + 1, seq++, 100);
        ethFrame(3 * r + 2, seq++, 100);
      }
      assert.is(native.send(pa, 0, 3 * rounds), 3 * rounds, 'all taken (sent or queued): none overflowed');
      const done = await waitFor(() => { drainEth(pb, seen); return seen.length >= 1 + 2 * rounds && st().txBacklog === 0; }, 10_000);
      const s2 = st();
      assert.ok(done, `received ${seen.length}, backlog ${s2.txBacklog}`);
      assert.equal(seen, [...Array(1 + 2 * rounds).keys()], 'every small frame, in order; no big one');
      assert.is(s2.txHeadDropped, 2 + rounds, 'each big frame dropped');
      assert.is(s2.txRejected, 2 + rounds);
      assert.is(s2.txDroppedFull, 0);
      // one refusal per big frame (the direct send's, on the first, included), never a retry
      assert.ok(s2.txRetries - s1.txRetries <= rounds + 1, `${s2.txRetries - s1.txRetries} refusals for ${rounds} big frames`);
      assert.is(s2.txTooBigLen, big, 'the shortest dropped');

      // the pod raises its MTU: a big frame goes through and the remembered length is forgotten
      B.ip('link', 'set', 'tb0', 'mtu', '1500');
      ethFrame(0, 3000, big);
      assert.is(native.send(pa, 0, 1), 1);
      const bigSeen: number[] = [];
      assert.ok(await waitFor(() => { drainEth(pb, bigSeen, big); return bigSeen.length >= 1; }, 10_000), 'the big frame arrived');
      assert.equal(bigSeen, [3000]);
      assert.is(st().txTooBigLen, 0);
      assert.is(st().txHeadDropped, 2 + rounds);
    } finally {
      native.close(pa);
      native.close(pb);
    }
  });
});

test('raw IPv4: closing a port with a backlog frees it; the id opens, polls and sends again', async () => {
  await withNetns(['bra', 'brb'], async ([A, B]) => {
    slowAddressedVeth(A, 'ra0', B, 'rb0', '10.212.0', '100kbit');
    let ra = native.openRaw({ netns: A.path, proto: 4, sndbuf: 4096 });
    const rb = native.openRaw({ netns: B.path, proto: 4, rcvbuf: 1 << 20 });
    try {
      const packets = (n: number, seq0: number) => {
        for (let i = 0; i < n; i++) {
          const o = pool.start(i);
          b.fill(0, o, o + 40);
          b[o] = 0x45; wr16(b, o + 2, 40); b[o + 8] = 64; b[o + 9] = 4;
          wr32(b, o + 12, ip4('10.212.0.1')); wr32(b, o + 16, ip4('10.212.0.2'));
          wr32(b, o + 20, seq0 + i);
          pool.len[i] = 40; pool.addr[i] = ip4('10.212.0.2'); pool.txList[i] = i;
        }
      };
      packets(256, 0);
      assert.is(native.send(ra, 0, 256), 256);
      const s = stats(ra);
      assert.ok(s.txBacklog > 0, `refused part of the burst (sent ${s.txPackets})`);
      const oldId = ra;
      native.close(ra); // the internal writable handle is closed asynchronously, the backlog freed
      await sleep(30);  // let libuv run the close callbacks (a use after free would crash here)
      let code: string | undefined;
      try { native.stats(oldId); } catch (e) { code = (e as { code?: string }).code; }
      assert.is(code, 'EBADF');
      const seen: number[] = [];
      const drainRb = () => {
        for (let n = native.recv(rb, 600, 128); n > 0; n = native.recv(rb, 600, 128))
          for (let k = 0; k < n; k++) seen.push(rd32(b, pool.start(600 + k) + 20));
      };
      await waitFor(() => { drainRb(); return seen.length >= s.txPackets; }, 5000);
      assert.equal(seen.slice(0, s.txPackets), [...Array(s.txPackets).keys()], 'what was sent before close arrived in order');
      assert.ok(seen.length < 256, 'the queued rest went with the port');

      A.exec('tc', ['qdisc', 'del', 'dev', 'ra0', 'root']);
      ra = native.openRaw({ netns: A.path, proto: 4 });
      assert.is(ra, oldId, 'the freed id is reused');
      let wakeups = 0;
      native.poll(ra, () => { wakeups++; });
      packets(4, 1000);
      assert.is(native.send(ra, 0, 4), 4);
      seen.length = 0;
      await waitFor(() => { drainRb(); return seen.length >= 4; }, 3000);
      assert.equal(seen, [1000, 1001, 1002, 1003]);
      assert.is(stats(ra).txBacklog, 0);
      native.unpoll(ra);
      native.unpoll(ra); // twice is harmless
      assert.is(wakeups, 0);
    } finally {
      native.close(ra);
      native.close(rb);
    }
  });
});

test('TUN: a packet longer than the slot is flagged TRUNCATED and counted; one that exactly fits is not', async () => {
  await withNetns(['trn'], async ([A]) => {
    const t = native.openTun('pwtrn0', { netns: A.path });
    try {
      A.ip('link', 'set', 'pwtrn0', 'mtu', '4000');
      A.ip('addr', 'add', '10.213.0.1/24', 'dev', 'pwtrn0');
      A.ip('link', 'set', 'pwtrn0', 'up');
      await sleep(20);
      while (native.recv(t, 0, 64) > 0) { /* discard what the kernel sent on link-up */ }
      const cap = SLOT_SIZE - HEADROOM;
      // The namespace's kernel sends three UDP datagrams out through the TUN: IP packets of exactly
      // the slot capacity, of 2028 bytes (more than a slot holds), and of 128 bytes.
      const sizes = [cap - 28, 2000, 100];
      const script = `const s=require('dgram').createSocket('udp4');const sz=${JSON.stringify(sizes)};` +
        `(function next(i){if(i===sz.length)return s.close();s.send(Buffer.alloc(sz[i],i+1),9,'10.213.0.2',()=>next(i+1));})(0);`;
      A.exec(process.execPath, ['-e', script], { timeoutMs: 10_000 });
      const got: { len: number; flags: number; ipLen: number; fill: number }[] = [];
      await waitFor(() => {
        const n = native.recv(t, 0, 16);
        for (let k = 0; k < n; k++) {
          const o = pool.start(k);
          if (b[o] >> 4 !== 4 || b[o + 9] !== 17 || rd16(b, o + 22) !== 9) continue;
          got.push({ len: pool.len[k], flags: pool.flags[k], ipLen: rd16(b, o + 2), fill: b[o + 28] });
        }
        return got.length >= 3;
      }, 3000);
      assert.is(got.length, 3, 'three datagrams read');
      assert.equal(got[0], { len: cap, flags: 0, ipLen: cap, fill: 1 }, 'exactly a slot: whole, not flagged');
      assert.equal(got[1], { len: cap, flags: DescFlag.TRUNCATED, ipLen: 2028, fill: 2 }, 'cut at the slot, flagged');
      assert.equal(got[2], { len: 128, flags: 0, ipLen: 128, fill: 3 });
      assert.is(native.stats(t).rxTruncated, 1);
    } finally {
      native.close(t);
    }
  });
});

/**
 * Back-pressure (native/README.md): a "pod" port (holdRx) whose frames JS forwards to an
 * "underlay" port (txHoldHigh) behind a slow tbf is held back, not read, while the underlay's
 * backlog is over its high-water mark, and read again once it is down to its low-water mark.
 * C -> A:hs0 is the pod's veth (its frames flood in), A:ha0 -> B the slow underlay.
 */
test('back-pressure: a holdRx port feeding a backlog past txHoldHigh is not read until it is down to txHoldLow (no tx_full, backlog bounded); a backlog that never moves gives the hold up; traffic resumes', async () => {
  const HIGH = 64, LOW = 16, BATCH = 256;
  await withNetns(['bha', 'bhb', 'bhc'], async ([A, B, C]) => {
    veth(A, 'ha0', B, 'hb0');
    slowQdisc(A, 'ha0', '1mbit');
    veth(C, 'hc0', A, 'hs0');
    const u = native.openPacket('ha0', { netns: A.path, bpf: dropAll, sndbuf: 4096, txHoldHigh: HIGH, txHoldLow: LOW });
    const pb = native.openPacket('hb0', { netns: B.path, bpf: etherFilter(ETHERTYPE), rcvbuf: 4 << 20 });
    const s = native.openPacket('hs0', { netns: A.path, bpf: etherFilter(ETHERTYPE), holdRx: true });
    const pc = native.openPacket('hc0', { netns: C.path, bpf: dropAll });
    try {
      // JS's part: every batch read from the pod goes to the underlay (descriptors [0, n))
      let forwarded = 0, maxBacklog = 0;
      native.poll(s, (_p, n) => {
        if (n <= 0) return;
        for (let i = 0; i < n; i++) pool.txList[i] = i;
        native.send(u, 0, n);
        forwarded += n;
        maxBacklog = Math.max(maxBacklog, stats(u).txBacklog);
      }, BATCH);
      // the pod floods: BATCH frames a turn from descriptors [300, 300 + BATCH)
      let seq = 0;
      const flood = async (frames: number) => {
        const end = Date.now() + 30_000;
        for (let k = 0; k < frames && Date.now() < end; k += BATCH) {
          for (let j = 0; j < BATCH; j++) ethFrame(300 + j, seq++, 100);
          native.send(pc, 300, BATCH);
          maxBacklog = Math.max(maxBacklog, stats(u).txBacklog);
          await sleep(1);
        }
      };
      const seen: number[] = [];

      // 1. Far more than the 16,384-frame backlog could take, at 1 Mbit/s.
      await flood(40 * 1024);
      const s1 = stats(s), u1 = stats(u);
      console.log(`  flood: ${seq} offered, ${forwarded} read and forwarded; pod port held ${s1.rxHeld} times (${Math.round((s1.rxHeldNs ?? 0) / 1e6)} ms), ring drops ${s1.rxKernelDrops}; underlay backlog max ${maxBacklog}, txFull ${u1.txDroppedFull}`);
      assert.ok((s1.rxHeld ?? 0) > 0, 'the pod port was held back');
      assert.ok((s1.rxHeldNs ?? 0) > 0, 'for some time');
      assert.ok(forwarded < seq, 'not every frame offered was read: the rest stayed in the pod port\'s ring (or the kernel dropped them there)');
      assert.is(u1.txDroppedFull, 0, 'no tx_full while the hold works');
      assert.ok(maxBacklog <= HIGH + BATCH, `the backlog stayed within the high-water mark and one batch (max ${maxBacklog})`);
      assert.ok(maxBacklog > HIGH, `the backlog did pass the high-water mark (max ${maxBacklog})`);
      // the backlog drains to the low-water mark: the pod port is read again, as it is once empty
      assert.ok(await waitFor(() => { drainEth(pb, seen); return !stats(s).rxHeldNow && stats(u).txBacklog === 0; }, 20_000), `released and drained (backlog ${stats(u).txBacklog}, held now ${stats(s).rxHeldNow})`);
      const afterFlood = forwarded;
      await flood(10);
      assert.ok(await waitFor(() => forwarded > afterFlood, 10_000), 'the pod port is read again once the backlog drained');

      // 2. A link that takes nothing (tbf at 8 bit/s: the 4 KiB socket buffer stays full, EAGAIN,
      // which the backlog waits out for as long as it takes): the hold is given up after
      // HOLD_STALL_MS without a frame leaving, and the pod is read again.
      A.exec('tc', ['qdisc', 'change', 'dev', 'ha0', 'root', 'tbf', 'rate', '8bit', 'burst', '1600', 'limit', '3000']);
      const s2 = stats(s);
      const f2 = forwarded;
      await flood(4096);
      assert.ok(await waitFor(() => (stats(u).txHoldStalls ?? 0) > 0, 10_000), 'the hold on a backlog that never moves was given up');
      assert.ok(await waitFor(() => !stats(s).rxHeldNow, 5000), 'the pod port is not held any more');
      const f3 = forwarded;
      await flood(1024);
      assert.ok(await waitFor(() => forwarded > f3, 10_000), 'the pod port is read while the dead link\'s backlog stays long');
      const u3 = stats(u);
      console.log(`  dead link: held ${(stats(s).rxHeld ?? 0) - (s2.rxHeld ?? 0)} more times, given up ${u3.txHoldStalls}; forwarded ${forwarded - f2} meanwhile; backlog ${u3.txBacklog}, txFull ${u3.txDroppedFull}`);
      assert.ok(u3.txBacklog > HIGH + BATCH, `its frames meet the backlog as without back-pressure (backlog ${u3.txBacklog})`);

      // 3. The link works again: frames leave, the hold holds again, the backlog drains and the
      // pod's traffic reaches the peer.
      A.exec('tc', ['qdisc', 'change', 'dev', 'ha0', 'root', 'tbf', 'rate', '20mbit', 'burst', '16000', 'limit', '30000']);
      assert.ok(await waitFor(() => { drainEth(pb, seen); return stats(u).txBacklog === 0 && !stats(s).rxHeldNow; }, 30_000), `drained (backlog ${stats(u).txBacklog})`);
      const marker = seq;
      await flood(BATCH);
      assert.ok(await waitFor(() => { drainEth(pb, seen); return seen.includes(marker + BATCH - 1); }, 10_000), 'the pod\'s frames reach the peer again');
      native.unpoll(s);
    } finally {
      for (const p of [s, pc, u, pb]) native.close(p);
    }
  });
});

test.run();
