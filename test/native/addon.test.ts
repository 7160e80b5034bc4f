/**
 * The native I/O addon in network namespaces (root): every port kind really moves frames, in
 * batches, between two namespaces; errors carry errno names. Each test makes and removes its own
 * namespaces.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { native, FramePool, HEADROOM, DescFlag, errnoOf } from '../../src/dataplane/native';
import { NATIVE_DROP_FIELDS } from '../../src/dataplane/io';
import { parseIpv4 as ip4 } from '../../src/packet/ipv4';
import { withNetns, veth, waitFor, Netns, ip, sh, sleep } from '../helpers/netns';
import { fold, rd16, rd32, sum16, wr16, wr32 } from './wire-ref';
import { FramePool as PlainFramePool } from '../../src/dataplane/frame-pool';
import { readdirSync, readFileSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { Worker } from 'node:worker_threads';
import { constants } from 'node:os';

const pool = new FramePool(512);
const b = pool.bytes;

/** Internet checksum over b[off, off+len) (test-side reference from wire-ref.ts, independent of src/packet). */
const csum = (buf: Uint8Array, off: number, len: number, init = 0): number => ~fold(sum16(buf, off, len, init)) & 0xffff;

// Big-endian access to the pool's bytes.
const put32 = (off: number, v: number) => wr32(b, off, v);
const put16 = (off: number, v: number) => wr16(b, off, v);
const get16 = (off: number) => rd16(b, off);
const get32 = (off: number) => rd32(b, off);

/** Write a 20-byte IPv4 header at o with a correct checksum. */
function ipv4(o: number, src: number, dst: number, proto: number, totalLen: number, ttl = 64) {
  b[o] = 0x45; b[o + 1] = 0; put16(o + 2, totalLen); put16(o + 4, 0x1234); put16(o + 6, 0x4000);
  b[o + 8] = ttl; b[o + 9] = proto; put16(o + 10, 0); put32(o + 12, src); put32(o + 16, dst);
  put16(o + 10, csum(b, o, 20));
}

function ns(n: Netns) {
  return n.path;
}

test('errors carry errno names', () => {
  let code: string | undefined;
  try { native.openPacket('pw-nosuch0', {}); } catch (e) { code = errnoOf(e); }
  assert.is(code, 'ENODEV');
  try { native.openTap('a-name-much-too-long-for-linux'); } catch (e) { code = errnoOf(e); }
  assert.is(code, 'ENAMETOOLONG');
  try { native.recv(1000, 0, 1); } catch (e) { code = errnoOf(e); }
  assert.is(code, 'EBADF');
  const u = native.openUdp({ addr: ip4('127.0.0.1'), port: 0 });
  const bound = native.info(u).boundPort;
  assert.ok(bound > 0);
  try { native.openUdp({ addr: ip4('127.0.0.1'), port: bound }); } catch (e) { code = errnoOf(e); }
  assert.is(code, 'EADDRINUSE');
  try { native.openPacket('lo', { netns: '/run/netns/pw-does-not-exist' }); } catch (e) { code = errnoOf(e); }
  assert.is(code, 'ENOENT');
  // a descriptor range outside the pool is refused, not written
  try { native.recv(u, 511, 5); } catch (e) { code = errnoOf(e); }
  assert.is(code, 'ERANGE');
  native.close(u);
  native.close(u); // twice is harmless
});

test('setPool refuses a headroom too small for the IPv6 UDP sender address (16 bytes before the frame)', () => {
  const p = new PlainFramePool(4); // not registered: the throw leaves the tests' pool in place
  const call = (headroom: number) => native.setPool(p.buffer, 2048, headroom, p.slot, p.off, p.len, p.port, p.flags, p.addr, p.aport, p.txList, p.segs, p.more);
  assert.throws(() => call(8), /headroom must be at least 16/);
  assert.throws(() => call(15), /headroom must be at least 16/);
});

test('UDP over IPv6 (addr6): bound before the address exists (freebind), receives datagrams with the sender address written before the frame', async () => {
  await withNetns(['udp6a', 'udp6b'], async ([A, B]) => {
    veth(A, 'u6a0', B, 'u6b0');
    const rx = native.openUdp({ netns: ns(B), addr6: Uint8Array.from([0xfd, 0x10, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2]), port: 4789 });
    try {
      assert.is(native.info(rx).boundPort, 4789);
      A.ip('-6', 'addr', 'add', 'fd10::1/64', 'dev', 'u6a0', 'nodad');
      B.ip('-6', 'addr', 'add', 'fd10::2/64', 'dev', 'u6b0', 'nodad');
      A.exec('python3', ['-c', "import socket\ns = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)\ns.bind(('fd10::1', 5555))\nfor k in range(3): s.sendto(bytes([k]) * (1000 + k), ('fd10::2', 4789))"]);
      const got: number[] = [];
      assert.ok(await waitFor(() => {
        const n = native.recv(rx, 200, 8);
        for (let k = 0; k < n; k++) {
          const i = 200 + k;
          const o = pool.start(i);
          assert.is(pool.aport[i], 5555, 'sender port');
          assert.equal([...b.subarray(o - 16, o)], [0xfd, 0x10, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1], 'sender address before the frame');
          assert.is(pool.len[i], 1000 + b[o]);
          got.push(b[o]);
        }
        return got.length === 3;
      }, 3000), `received ${got.length} of 3`);
      assert.equal(got.sort(), [0, 1, 2]);
      let code: string | undefined;
      try { native.openUdp({ addr6: new Uint8Array(4), port: 1 }); } catch (e) { code = (e as Error).message; }
      assert.match(code ?? '', 'addr6');
    } finally {
      native.close(rx);
    }
  });
});

test('UDP ports (VXLAN sockets) report each datagram\'s ECN field, IPv4 TOS and IPv6 traffic class, in descriptor flag bits 4-5', async () => {
  await withNetns(['udpecn'], async ([A]) => {
    const rx4 = native.openUdp({ netns: ns(A), addr: ip4('127.0.0.1'), port: 4789 });
    const rx6 = native.openUdp({ netns: ns(A), addr6: Uint8Array.from([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]), port: 4789 });
    try {
      // the payload's byte says which ECN field its IP header had (a DSCP beside it, to be ignored)
      A.exec('python3', ['-c', [
        'import socket',
        's = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)',
        's6 = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)',
        'for e in range(4):',
        '  s.setsockopt(socket.IPPROTO_IP, socket.IP_TOS, 0xb8 | e)',
        '  s.sendto(bytes([e]) * 64, ("127.0.0.1", 4789))',
        '  s6.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_TCLASS, 0xb8 | e)',
        '  s6.sendto(bytes([e]) * 64, ("::1", 4789))',
      ].join('\n')]);
      for (const [port, what] of [[rx4, 'IPv4'], [rx6, 'IPv6']] as const) {
        const got: number[] = [];
        assert.ok(await waitFor(() => {
          const n = native.recv(port, 200, 8);
          for (let k = 0; k < n; k++) {
            const i = 200 + k;
            const e = b[pool.start(i)];
            assert.is((pool.flags[i] & DescFlag.ECN_MASK) >>> DescFlag.ECN_SHIFT, e, `${what}: ECN ${e} in the flags`);
            assert.is(pool.flags[i] & ~DescFlag.ECN_MASK, 0, `${what}: no other flag`);
            got.push(e);
          }
          return got.length === 4;
        }, 3000), `${what}: received ${got.length} of 4`);
        assert.equal(got.sort(), [0, 1, 2, 3], what);
      }
    } finally {
      native.close(rx4);
      native.close(rx6);
    }
  });
});

/**
 * A veth between A (`net`.1 on `ifA`) and B (`net`.2 on `ifB`) with a UDP socket bound to `port`
 * on each end: `tx` in A, `rx` in B.
 */
function udpPair(A: Netns, ifA: string, B: Netns, ifB: string, net: string, port: number, rcvbuf?: number): { tx: number; rx: number } {
  veth(A, ifA, B, ifB);
  A.ip('addr', 'add', `${net}.1/24`, 'dev', ifA);
  B.ip('addr', 'add', `${net}.2/24`, 'dev', ifB);
  const tx = native.openUdp({ netns: ns(A), addr: ip4(`${net}.1`), port });
  const rx = native.openUdp({ netns: ns(B), addr: ip4(`${net}.2`), port, ...(rcvbuf ? { rcvbuf } : {}) });
  return { tx, rx };
}

test('UDP: a batch of 64 datagrams crosses two namespaces with sendmmsg/recvmmsg, woken by uv_poll', async () => {
  await withNetns(['udpa', 'udpb'], async ([A, B]) => {
    const { tx, rx } = udpPair(A, 'ua0', B, 'ub0', '10.200.0', 4789, 1 << 20);
    try {
      const N = 64;
      for (let i = 0; i < N; i++) {
        const o = pool.start(i);
        pool.len[i] = 100 + i;
        for (let k = 0; k < pool.len[i]; k++) b[o + k] = (i + k) & 255;
        put32(o, 0xc0ffee00 + i);
        pool.addr[i] = ip4('10.200.0.2');
        pool.aport[i] = 4789;
        pool.txList[i] = i;
      }
      // the datagrams leave before anyone polls: they wait in the receiver's socket buffer
      assert.is(native.send(tx, 0, N), N);
      const got = new Map<number, number>();
      let wakeups = 0;
      native.poll(rx, (port) => {
        wakeups++;
        for (let round = 0; round < 8; round++) {
          const n = native.recv(port, 100, 64);
          if (n === 0) break;
          for (let k = 0; k < n; k++) {
            const i = 100 + k;
            assert.is(pool.off[i], HEADROOM);
            assert.is(pool.addr[i], ip4('10.200.0.1'));
            assert.is(pool.aport[i], 4789);
            const o = pool.start(i);
            const seq = get32(o) - 0xc0ffee00;
            got.set(seq, pool.len[i]);
            for (let j = 4; j < pool.len[i]; j++) if (b[o + j] !== ((seq + j) & 255)) throw new Error(`payload ${seq} byte ${j}`);
          }
        }
      });
      assert.ok(await waitFor(() => got.size === N, 3000), `received ${got.size} of ${N}`);
      for (let i = 0; i < N; i++) assert.is(got.get(i), 100 + i);
      assert.ok(wakeups >= 1 && wakeups < N, `one callback per batch, not per packet (${wakeups} wake-ups)`);
      const st = native.stats(tx);
      assert.is(st.txPackets, N);
      assert.is(st.txCalls, 1);
      // the timing counters (one sample per sendmmsg call): one call, a time above zero
      assert.is(st.txSyscalls, 1);
      assert.ok((st.txSyscallNs ?? 0) > 0 && (st.txSyscallNs ?? 0) < 1e9, `sendmmsg time ${st.txSyscallNs} ns`);
      assert.is(native.stats(rx).rxPackets, N);
    } finally {
      native.close(tx);
      native.close(rx);
    }
  });
});

test('poll with recvMax: the wake-up brings its first batch (one JS call), the callback gets the count', async () => {
  await withNetns(['rma', 'rmb'], async ([A, B]) => {
    const { tx, rx } = udpPair(A, 'ra0', B, 'rb0', '10.201.0', 4789, 1 << 20);
    try {
      // bad recvMax values are refused before anything is watched
      for (const bad of [0, native.MAX_BATCH + 1, -1]) {
        let threw = false;
        try { native.poll(rx, () => {}, bad); } catch { threw = true; }
        assert.ok(threw, `recvMax ${bad} refused`);
      }
      const N = 40;
      for (let i = 0; i < N; i++) {
        const o = pool.start(i);
        pool.len[i] = 60;
        put32(o, 0xbeef0000 + i);
        pool.addr[i] = ip4('10.201.0.2');
        pool.aport[i] = 4789;
        pool.txList[i] = i;
      }
      assert.is(native.send(tx, 0, N), N);
      const seqs: number[] = [];
      const statuses: number[] = [];
      let recvCalls = 0;
      native.poll(rx, (port, n) => {
        statuses.push(n);
        // the first batch is in descriptors [0, n) already; the rest is ours to receive
        for (let k = 0; k < n; k++) seqs.push(get32(pool.start(k)) - 0xbeef0000);
        while (n === 16) {
          recvCalls++;
          n = native.recv(port, 0, 16);
          for (let k = 0; k < n; k++) seqs.push(get32(pool.start(k)) - 0xbeef0000);
        }
      }, 16);
      assert.ok(await waitFor(() => seqs.length === N, 3000), `received ${seqs.length} of ${N}`);
      assert.equal(seqs, Array.from({ length: N }, (_, i) => i));
      assert.is(statuses[0], 16, 'the first wake-up arrives with a full first batch');
      assert.ok(statuses.every((n) => n >= 0 && n <= 16), `statuses ${statuses}`);
      assert.ok(recvCalls >= 2, 'the rest was received by JS');
      // a wake-up with nothing new: no callback is owed, and none brings frames that are not there
      const before = statuses.length;
      await new Promise((r) => setTimeout(r, 50));
      assert.is(statuses.length, before);
      assert.is(native.stats(rx).rxPackets, N);
    } finally {
      native.unpoll(rx);
      native.close(tx);
      native.close(rx);
    }
  });
});

for (const version of [2, 3, 0] as const) {
  const ring = version !== 0;
  const ringVersion = version === 0 ? undefined : version;
  test(`AF_PACKET (${ring ? `TPACKET_V${version} ring` : 'recvmmsg'}): frames cross a veth; own frames not read back; BPF filter`, async () => {
    await withNetns(['pka', 'pkb'], async ([A, B]) => {
      veth(A, 'pa0', B, 'pb0');
      const pa = native.openPacket('pa0', { netns: ns(A), ring, ringVersion });
      // only ethertype 0x88b5 (IEEE local experimental): ldh [12]; jeq #0x88b5 ? accept : drop
      const bpf = new Uint8Array(32);
      const dv = new DataView(bpf.buffer);
      const ins = (i: number, code: number, jt: number, jf: number, k: number) => {
        dv.setUint16(i * 8, code, true); bpf[i * 8 + 2] = jt; bpf[i * 8 + 3] = jf; dv.setUint32(i * 8 + 4, k, true);
      };
      ins(0, 0x28, 0, 0, 12); ins(1, 0x15, 0, 1, 0x88b5); ins(2, 0x06, 0, 0, 0x40000); ins(3, 0x06, 0, 0, 0);
      const pb = native.openPacket('pb0', { netns: ns(B), ring, ringVersion, bpf });
      try {
        assert.is(native.info(pa).ring, version);
        const N = 40;
        for (let i = 0; i < N; i++) {
          const o = pool.start(i);
          b.fill(0xff, o, o + 6); // broadcast
          b.set([2, 0, 0, 0, 0, 1], o + 6);
          put16(o + 12, i % 4 === 3 ? 0x88b6 : 0x88b5); // every 4th frame must be filtered out
          put32(o + 14, i);
          pool.len[i] = 60 + i * 20;
          pool.txList[i] = i;
        }
        assert.is(native.send(pa, 0, N), N);
        const seen: number[] = [];
        const want = N - N / 4;
        await waitFor(() => {
          const n = native.recv(pb, 200, 64);
          for (let k = 0; k < n; k++) {
            const o = pool.start(200 + k);
            assert.is(get16(o + 12), 0x88b5);
            const seq = get32(o + 14);
            assert.is(pool.len[200 + k], 60 + seq * 20);
            assert.is(pool.flags[200 + k] & DescFlag.TRUNCATED, 0);
            seen.push(seq);
          }
          return seen.length >= want;
        }, 3000);
        assert.is(seen.length, want);
        assert.equal(seen, [...Array(N).keys()].filter((i) => i % 4 !== 3));
        // PACKET_IGNORE_OUTGOING: the sender never reads its own frames back (it may see the
        // peer kernel's IPv6 neighbour discovery, which is incoming traffic)
        const back = native.recv(pa, 300, 64);
        for (let k = 0; k < back; k++) {
          const t = get16(pool.start(300 + k) + 12);
          assert.ok(t !== 0x88b5 && t !== 0x88b6, `own frame read back (ethertype ${t.toString(16)})`);
        }
        assert.is(native.stats(pb).rxPackets, want);
      } finally {
        native.close(pa);
        native.close(pb);
      }
    });
  });
}

test('send: a frame the kernel rejects on its own is counted, the rest of the batch still goes; bad ranges throw', async () => {
  await withNetns(['sea', 'seb'], async ([A, B]) => {
    const { tx, rx } = udpPair(A, 'sa0', B, 'sb0', '10.205.0', 7000);
    try {
      // 192.0.2.1 (TEST-NET-1) has no route in A: sendmmsg fails that one message with ENETUNREACH
      const dst = [ip4('10.205.0.2'), ip4('192.0.2.1'), ip4('10.205.0.2'), ip4('192.0.2.1'), ip4('10.205.0.2')];
      for (let i = 0; i < dst.length; i++) {
        put32(pool.start(i), i);
        pool.len[i] = 20; pool.addr[i] = dst[i]; pool.aport[i] = 7000; pool.txList[i] = i;
      }
      assert.is(native.send(tx, 0, dst.length), 3, 'the three routable datagrams are accepted');
      const st = native.stats(tx);
      assert.is(st.txPackets, 3);
      assert.is(st.txErrors, 2);
      assert.is(st.lastError, 'ENETUNREACH');
      assert.is(st.txDroppedFull, 0);
      const seen: number[] = [];
      await waitFor(() => {
        const n = native.recv(rx, 100, 16);
        for (let k = 0; k < n; k++) seen.push(get32(pool.start(100 + k)));
        return seen.length >= 3;
      }, 3000);
      assert.equal(seen, [0, 2, 4]);
      // argument errors (not per-frame problems) still throw
      let code: string | undefined;
      pool.txList[0] = 100_000; // no such descriptor
      try { native.send(tx, 0, 1); } catch (e) { code = errnoOf(e); }
      assert.is(code, 'ERANGE');
      code = undefined;
      try { native.send(tx, 0, native.MAX_BATCH + 1); } catch (e) { code = errnoOf(e); }
      assert.is(code, 'E2BIG');
      assert.is(native.stats(tx).txCalls, 1, 'refused calls are not counted as sends');
    } finally {
      native.close(tx);
      native.close(rx);
    }
  });
});

test('AF_PACKET sees kernel-built UDP with the kernel\'s own IPv4 checksum (and partial L4 checksum flagged)', async () => {
  await withNetns(['cka', 'ckb'], async ([A, B]) => {
    veth(A, 'ca0', B, 'cb0');
    A.ip('addr', 'add', '10.204.0.1/24', 'dev', 'ca0');
    A.ip('neigh', 'add', '10.204.0.2', 'lladdr', '02:00:00:00:00:02', 'dev', 'ca0');
    const pb = native.openPacket('cb0', { netns: ns(B) });
    const tx = native.openUdp({ netns: ns(A), addr: ip4('10.204.0.1'), port: 5555 });
    try {
      const i = 0;
      const o = pool.start(i);
      for (let k = 0; k < 33; k++) b[o + k] = k * 7;
      pool.len[i] = 33; pool.addr[i] = ip4('10.204.0.2'); pool.aport[i] = 6666; pool.txList[0] = i;
      assert.is(native.send(tx, 0, 1), 1);
      // A fresh link also carries the kernel's IPv6 MLD/RS frames: take ours (IPv4 to 6666).
      let at = -1;
      await waitFor(() => {
        const n = native.recv(pb, 10, 8);
        for (let i = 10; i < 10 + n && at < 0; i++) if (get16(pool.start(i) + 12) === 0x0800 && get16(pool.start(i) + 14 + 22) === 6666) at = i;
        return at >= 0;
      }, 3000);
      assert.ok(at >= 0, 'our datagram arrived');
      const f = pool.start(at);
      assert.is(get16(f + 12), 0x0800);
      const iph = f + 14;
      assert.is(b[iph + 9], 17);
      assert.is(csum(b, iph, 20), 0, 'kernel IPv4 header checksum verifies');
      assert.is(get32(iph + 12), ip4('10.204.0.1'));
      assert.is(get16(iph + 22), 6666);
      const udpLen = get16(iph + 24);
      assert.is(udpLen, 8 + 33);
      // veth offloads the UDP checksum: the kernel marks it not-yet-computed, and we flag that
      const partial = (pool.flags[at] & DescFlag.CSUM_PARTIAL) !== 0;
      const pseudo = ((get32(iph + 12) >>> 16) + (get32(iph + 12) & 0xffff) + (get32(iph + 16) >>> 16) +
        (get32(iph + 16) & 0xffff) + 17 + udpLen);
      if (partial) {
        // the field holds the folded pseudo-header sum; completing it gives a checksum that verifies
        const full = csum(b, iph + 20, udpLen);
        put16(iph + 26, full);
      }
      assert.is(csum(b, iph + 20, udpLen, pseudo), 0, `UDP checksum verifies (partial=${partial})`);
    } finally {
      native.close(pb);
      native.close(tx);
    }
  });
});

test('AF_PACKET: 802.1Q/802.1ad-tagged frames (tag in the kernel\'s metadata, TP_STATUS_VLAN_VALID) are dropped as read and counted rxVlanTagged, on every receive path (V2 ring with and without vnet header, V3 ring, recvmmsg, staged recvmmsg)', async () => {
  await withNetns(['vla', 'vlb'], async ([A, B]) => {
    veth(A, 'vla0', B, 'vlb0');
    // From A: 10 frames tagged VID 10 (UDP to 6668), 10 tagged 802.1ad VID 5 (6670), then 10 untagged
    // (6669), all to the same unicast MAC, sent raw on vla0.
    const py = [
      'import socket, struct',
      's = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)',
      "s.bind(('vla0', 0))",
      "dst = bytes.fromhex('020000000002'); src = bytes.fromhex('020000000001')",
      'def ip(dport):',
      "    u = struct.pack('!HHHH', 5555, dport, 8 + 32, 0) + bytes(32)",
      "    h = struct.pack('!BBHHHBBH4s4s', 0x45, 0, 20 + len(u), 1, 0x4000, 64, 17, 0, bytes([10, 206, 0, 1]), bytes([10, 206, 0, 2]))",
      '    return h + u',
      "for k in range(10): s.send(dst + src + struct.pack('!HH', 0x8100, 10) + b'\\x08\\x00' + ip(6668))",
      "for k in range(10): s.send(dst + src + struct.pack('!HH', 0x88a8, 5) + b'\\x08\\x00' + ip(6670))",
      "for k in range(10): s.send(dst + src + b'\\x08\\x00' + ip(6669))",
    ].join('\n');
    const paths: [string, Record<string, unknown>][] = [
      ['V2 ring', { ring: true, ringVersion: 2 }],
      ['V2 ring, vnet header', { ring: true, ringVersion: 2, vnetHdr: true }],
      ['V3 ring', { ring: true, ringVersion: 3 }],
      ['recvmmsg', { ring: false }],
      ['staged recvmmsg, vnet header', { ring: false, vnetHdr: true }],
    ];
    for (const [what, opts] of paths) {
      const p = native.openPacket('vlb0', { netns: ns(B), ...opts });
      try {
        A.exec('python3', ['-c', py]);
        const got = new Map<number, number>();
        const dport = (i: number) => (get16(pool.start(i) + 12) === 0x0800 && b[pool.start(i) + 14 + 9] === 17 ? get16(pool.start(i) + 14 + 22) : 0);
        await waitFor(() => {
          const n = native.recv(p, 10, 64);
          for (let i = 10; i < 10 + n; i++) got.set(dport(i), (got.get(dport(i)) ?? 0) + 1);
          return (got.get(6669) ?? 0) >= 10 && (native.stats(p).rxVlanTagged ?? 0) >= 20;
        }, 3000);
        assert.is(got.get(6669) ?? 0, 10, `${what}: the untagged frames delivered`);
        assert.is(got.get(6668) ?? 0, 0, `${what}: no 802.1Q-tagged frame delivered (it would read untagged)`);
        assert.is(got.get(6670) ?? 0, 0, `${what}: no 802.1ad-tagged frame delivered`);
        assert.is(native.stats(p).rxVlanTagged, 20, `${what}: rxVlanTagged`);
        assertNativeDropsAll(p, what);
      } finally {
        native.close(p);
      }
    }
  });
});

/**
 * nativeDropsAll (the engine's once-a-second read of every port's own drops, one call) gives port
 * p's counts as stats() does, field by field in NATIVE_DROP_FIELDS order, and leaves the slots of
 * ports not open and past the array's end untouched.
 */
function assertNativeDropsAll(p: number, what: string): void {
  const n = NATIVE_DROP_FIELDS.length;
  const out = new Float64Array((p + 1) * n + n - 1).fill(-1); // the slots of port p + 1 cut short
  assert.is(native.nativeDropsAll!(out), n, 'the stride');
  const st = native.stats(p);
  assert.equal([...out.subarray(p * n, (p + 1) * n)], NATIVE_DROP_FIELDS.map((f) => st[f] ?? 0), `${what}: nativeDropsAll agrees with stats (${NATIVE_DROP_FIELDS.join(', ')})`);
  assert.ok(out.subarray(p * n).some((v) => v > 0), `${what}: a drop counted`);
  assert.ok(out.subarray((p + 1) * n).every((v) => v === -1), `${what}: a port's slots past the end untouched`);
}

/** Sends each case from `ifname` with AF_PACKET and PACKET_VNET_HDR: IPv4 TCP or UDP 10.206.0.1 ->
 * .2 from port 40000 + tag, `len` payload bytes, behind an Ethernet header to 02:..:02, with the
 * case's virtio-net header [flags, gso_type, hdr_len, gso_size, csum_start, csum_offset] (csum_start
 * from the frame's start) and `ipLen` added to the IPv4 total length (a lie). Prints each send's
 * result ('ok' or the error). */
const PY_VNET_CASES = `
import socket, struct, sys, json
a = json.loads(sys.argv[1])
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)
s.setsockopt(263, 15, 1)  # SOL_PACKET, PACKET_VNET_HDR
s.bind((a['ifname'], 0))
src, dst = bytes([10, 206, 0, 1]), bytes([10, 206, 0, 2])
def csum(b):
    if len(b) % 2: b += b'\\0'
    t = sum(struct.unpack('!%dH' % (len(b) // 2), b))
    while t >> 16: t = (t & 0xffff) + (t >> 16)
    return (~t) & 0xffff
out = []
for c in a['cases']:
    body = bytes([c['tag'] & 0xff]) * c['len']
    if c['proto'] == 'tcp':
        l4 = bytearray(struct.pack('!HHIIBBHHH', 40000 + c['tag'], 7777, 1, 1, 0x50, 0x10, 65535, 0, 0) + body); proto, co = 6, 16
    else:
        l4 = bytearray(struct.pack('!HHHH', 40000 + c['tag'], 7777, 8 + c['len'], 0) + body); proto, co = 17, 6
    struct.pack_into('!H', l4, co, (~csum(src + dst + struct.pack('!BBH', 0, proto, len(l4)))) & 0xffff)
    ip = bytearray(struct.pack('!BBHHHBBH4s4s', 0x45, 0, 20 + len(l4) + c.get('ipLen', 0), c['tag'], 0x4000, 64, proto, 0, src, dst))
    struct.pack_into('!H', ip, 10, csum(bytes(ip)))
    frame = bytes.fromhex('020000000002020000000001') + b'\\x08\\x00' + bytes(ip) + bytes(l4)
    try: s.send(struct.pack('<BBHHHH', *c['vnet']) + frame); out.append('ok')
    except OSError as e: out.append(e.strerror)
print(json.dumps(out))
`;

test('AF_PACKET with a vnet header, through a real veth: partial checksum offsets that lie are counted rxBadCsum (drop reason bad_partial_csum), apart from rxGsoBad; nothing of either delivered; honest frames are (V2 ring, V2 ring with scatter receive, V3 ring, staged recvmmsg)', async () => {
  await withNetns(['bca', 'bcb'], async ([A, B]) => {
    veth(A, 'bca0', B, 'bcb0');
    const NC = 1, TCPV4 = 1, UDP_L4 = 5;
    // csum_start counted from the frame's start: Ethernet 14 + IPv4 20, so the L4 header is at 34
    type Case = { tag: number; proto: 'tcp' | 'udp'; len: number; vnet: number[]; ipLen?: number; want: 'csum' | 'bad' | 'segments' | 'refused' };
    const cases: Case[] = [
      // what the sender's kernel takes (for a frame it does not segment it checks only that the
      // checksum field lies in the frame, csum_start at least 20 bytes in; a TCPV4 frame whose
      // payload fits one gso_size is not GSO for it): they reach the packet socket as given
      { tag: 1, proto: 'tcp', len: 500, vnet: [NC, 0, 0, 0, 24, 16], want: 'csum' }, // into the IPv4 header
      { tag: 2, proto: 'tcp', len: 500, vnet: [NC, 0, 0, 0, 34, 20], want: 'csum' }, // not TCP's checksum field
      { tag: 3, proto: 'tcp', len: 500, vnet: [NC, TCPV4, 54, 1400, 38, 16], want: 'csum' }, // 4 bytes into the TCP header
      { tag: 4, proto: 'udp', len: 500, vnet: [NC, 0, 0, 0, 42, 6], want: 'csum' }, // into the UDP payload
      { tag: 9, proto: 'tcp', len: 3000, vnet: [NC, TCPV4, 54, 1400, 34, 16], ipLen: -100, want: 'bad' }, // IPv4 total length a lie: gso_bad
      { tag: 5, proto: 'udp', len: 2000, vnet: [NC, UDP_L4, 42, 100, 34, 6], want: 'segments' }, // honest: 20 segments
      { tag: 6, proto: 'tcp', len: 500, vnet: [NC, 0, 0, 0, 34, 16], want: 'segments' }, // honest plain frame, checksum completed
      // refused by the sender's kernel (EINVAL): outside the frame, or not the protocol's offset for GSO
      { tag: 7, proto: 'tcp', len: 500, vnet: [NC, 0, 0, 0, 2000, 16], want: 'refused' },
      { tag: 8, proto: 'tcp', len: 3000, vnet: [NC, TCPV4, 54, 1400, 34, 6], want: 'refused' },
    ];
    const paths: [string, Record<string, unknown>][] = [
      ['V2 ring', { ring: true, ringVersion: 2, vnetHdr: true }],
      ['V2 ring, scatter receive', { ring: true, ringVersion: 2, vnetHdr: true, scatterRx: true }],
      ['V3 ring', { ring: true, ringVersion: 3, vnetHdr: true }],
      ['staged recvmmsg', { ring: false, vnetHdr: true }],
    ];
    for (const [what, opts] of paths) {
      const p = native.openPacket('bcb0', { netns: ns(B), ...opts });
      try {
        const results = JSON.parse(A.exec('python3', ['-c', PY_VNET_CASES, JSON.stringify({ ifname: 'bca0', cases })]).trim()) as string[];
        const why = `${what}: sends ${JSON.stringify(results)}`;
        for (const [k, c] of cases.entries()) assert.is(results[k], c.want === 'refused' ? 'Invalid argument' : 'ok', `case ${c.tag}: ${why}`);
        const got = new Map<number, number>();
        const tagOf = (i: number) => (get16(pool.start(i) + 12) === 0x0800 && b[pool.start(i) + 23] !== 0 ? get16(pool.start(i) + 34) - 40000 : -1);
        const want = { csum: cases.filter((c) => c.want === 'csum').length, bad: cases.filter((c) => c.want === 'bad').length };
        await waitFor(() => {
          const n = native.recv(p, 10, 64);
          for (let i = 10; i < 10 + n; i++) got.set(tagOf(i), (got.get(tagOf(i)) ?? 0) + 1);
          const st = native.stats(p);
          return (got.get(6) ?? 0) >= 1 && (got.get(5) ?? 0) >= 20 && (st.rxBadCsum ?? 0) >= want.csum && (st.rxGsoBad ?? 0) >= want.bad;
        }, 3000);
        const st = native.stats(p);
        const why2 = `${why}, delivered ${JSON.stringify([...got])}, stats ${JSON.stringify({ rxBadCsum: st.rxBadCsum, rxGsoBad: st.rxGsoBad, rxGsoDropped: st.rxGsoDropped, rxTruncated: st.rxTruncated })}`;
        assert.is(st.rxBadCsum, want.csum, `rxBadCsum: ${why2}`);
        assert.is(st.rxGsoBad, want.bad, `rxGsoBad: ${why2}`);
        assert.is(st.rxGsoDropped, 0, `rxGsoDropped: ${why2}`);
        for (const t of [1, 2, 3, 4, 7, 8, 9]) assert.is(got.get(t) ?? 0, 0, `case ${t} delivered: ${why2}`);
        assert.is(got.get(5), 20, `the honest UDP GSO frame's segments: ${why2}`);
        assert.is(got.get(6), 1, `the honest plain frame: ${why2}`);
        assert.is(st.rxCsumCompleted, 1, `its checksum completed: ${why2}`);
        assertNativeDropsAll(p, why2);
      } finally {
        native.close(p);
      }
    }
  });
});

test('preparePacket: ports prepared ahead (at most 2) are bound by openPacket with the same options and receive frames', async () => {
  await withNetns(['spa'], async ([A]) => {
    // Spares are made in the process's own namespace: the receiving end is a uniquely named veth
    // end here, its peer in the test's namespace; nothing in this namespace has an address on it.
    const host = `pws${Math.random().toString(36).slice(2, 8)}`;
    ip('link', 'add', host, 'type', 'veth', 'peer', 'name', 'spa0', 'netns', A.name);
    const ports: number[] = [];
    try {
      ip('link', 'set', host, 'up');
      A.ip('link', 'set', 'spa0', 'up');
      A.ip('addr', 'add', '10.205.0.1/24', 'dev', 'spa0');
      A.ip('neigh', 'add', '10.205.0.2', 'lladdr', '02:00:00:00:00:02', 'dev', 'spa0');
      const opts = { ring: true, ringVersion: 2 as const, ringBlocks: 4 };
      assert.is(native.preparePacket!(opts), true);
      assert.is(native.preparePacket!(opts), true);
      assert.is(native.preparePacket!(opts), false, 'two spares at most');
      assert.throws(() => native.preparePacket!({ ...opts, netns: A.path }), /netns/);
      await sleep(300); // the worker thread's ring setups
      // Two from the spares, a third opened directly; all on the interface, all receive.
      for (let k = 0; k < 3; k++) ports.push(native.openPacket(host, opts));
      assert.is(native.preparePacket!({ ...opts, ringBlocks: 8 }), true, 'room again once the spares were used');
      const ifindex = Number(sh('cat', [`/sys/class/net/${host}/ifindex`]).trim());
      for (const p of ports) assert.is(native.info(p).ifindex, ifindex);
      const tx = native.openUdp({ netns: A.path, addr: ip4('10.205.0.1'), port: 5556 });
      try {
        const i = 0;
        pool.len[i] = 20; pool.addr[i] = ip4('10.205.0.2'); pool.aport[i] = 6667; pool.txList[0] = i;
        assert.is(native.send(tx, 0, 1), 1);
        // The peer end also sends what the kernel sends on a fresh link (IPv6 MLD and router
        // solicitations): only our datagram (IPv4, UDP to 6667) is counted.
        const ours = (i: number) => get16(pool.start(i) + 12) === 0x0800 && get16(pool.start(i) + 14 + 22) === 6667;
        for (const p of ports) {
          let got = 0;
          await waitFor(() => {
            const n = native.recv(p, 10, 8);
            for (let i = 10; i < 10 + n; i++) if (ours(i)) got++;
            return got > 0;
          }, 3000);
          assert.is(got, 1, `port ${p} received the frame once`);
        }
      } finally {
        native.close(tx);
      }
    } finally {
      for (const p of ports) native.close(p);
      sh('ip', ['link', 'del', host], { allowFail: true });
    }
  });
});

test('poll: a packet port bound while its device is down reports ENETDOWN (the socket error, not EBADF) once, and receives when polled again after the device is up; the same after a down/up', async () => {
  await withNetns(['pdn'], async ([A]) => {
    // The host end is made here (AF_PACKET ports open in this namespace), its peer in A; the host
    // end stays down until the port is bound and polled, as when a runtime sets it up in a later step.
    const host = `pwd${Math.random().toString(36).slice(2, 8)}`;
    ip('link', 'add', host, 'type', 'veth', 'peer', 'name', 'pdn0', 'netns', A.name);
    const statuses: number[] = [];
    let p = -1;
    let tx = -1;
    try {
      A.ip('link', 'set', 'pdn0', 'up');
      A.ip('addr', 'add', '10.208.0.1/24', 'dev', 'pdn0');
      A.ip('neigh', 'add', '10.208.0.2', 'lladdr', '02:00:00:00:00:02', 'dev', 'pdn0');
      tx = native.openUdp({ netns: A.path, port: 0 });
      p = native.openPacket(host, { ring: true, ringVersion: 2, ringBlocks: 4, ignoreOutgoing: true });
      let got = 0;
      const cb = (port: number, n: number) => {
        statuses.push(n);
        if (n < 0) return; // libuv stopped the handle: polled again below, as the engine does
        for (let i = 0; i < n; i++) if (get16(pool.start(i) + 12) === 0x0800 && get16(pool.start(i) + 14 + 22) === 7010) got++;
        while (n === 8) n = native.recv(port, 0, 8);
      };
      native.poll(p, cb, 8);
      const ENETDOWN = -constants.errno.ENETDOWN;
      assert.ok(await waitFor(() => statuses.length > 0, 2000), 'the pending error is reported');
      assert.equal(statuses, [ENETDOWN], 'ENETDOWN, not EBADF');
      const deliver = async () => {
        got = 0;
        return waitFor(() => {
          pool.len[0] = 20; pool.addr[0] = ip4('10.208.0.2'); pool.aport[0] = 7010; pool.txList[0] = 0;
          native.send(tx, 0, 1);
          return got > 0;
        }, 3000, 50);
      };
      ip('link', 'set', host, 'up');
      native.poll(p, cb, 8); // the error was read (and so cleared): polling again works
      assert.ok(await deliver(), `received once up; statuses ${statuses}`);
      assert.ok(statuses.slice(1).every((n) => n >= 0), `no error after the first: ${statuses}`);

      statuses.length = 0;
      ip('link', 'set', host, 'down');
      assert.ok(await waitFor(() => statuses.length > 0, 2000), 'going down is reported');
      assert.equal(statuses, [ENETDOWN]);
      ip('link', 'set', host, 'up');
      native.poll(p, cb, 8);
      assert.ok(await deliver(), `received after a down/up; statuses ${statuses}`);
      assert.ok(statuses.slice(1).every((n) => n >= 0), `no error after the first: ${statuses}`);
    } finally {
      if (p >= 0) native.close(p);
      if (tx >= 0) native.close(tx);
      sh('ip', ['link', 'del', host], { allowFail: true });
    }
  });
});

/** File descriptors open in this process now. */
const openFds = () => readdirSync('/proc/self/fd').length;
/** Packet-ring mappings in this process now (an AF_PACKET ring maps as a socket). */
const ringMaps = () => readFileSync('/proc/self/maps', 'utf8').split('\n').filter((l) => l.includes('socket:')).length;

test('close: an AF_PACKET port with a ring is gone when close() returns; its fd and ring are released on a worker thread', async () => {
  await withNetns(['clo'], async ([A]) => {
    // Two uniquely named veths with their host ends here (AF_PACKET ports open in this namespace).
    const t = Math.random().toString(36).slice(2, 7);
    const hosts = [`pwc${t}a`, `pwc${t}b`];
    hosts.forEach((h, k) => ip('link', 'add', h, 'type', 'veth', 'peer', 'name', `clo${k}`, 'netns', A.name));
    try {
      hosts.forEach((h, k) => {
        ip('link', 'set', h, 'up');
        A.ip('link', 'set', `clo${k}`, 'up');
        A.ip('addr', 'add', `10.207.${k}.1/24`, 'dev', `clo${k}`);
        A.ip('neigh', 'add', `10.207.${k}.2`, 'lladdr', '02:00:00:00:00:02', 'dev', `clo${k}`);
      });
      const opts = { ring: true, ringVersion: 2 as const, ringBlocks: 4 };
      assert.ok(await waitFor(() => native.pendingCloses() === 0, 5000), 'no close pending from earlier tests');
      const fds0 = openFds();
      const maps0 = ringMaps();
      const tx = native.openUdp({ netns: A.path, port: 0 });
      /** A datagram from the namespace out of veth k; true when `port` received it. */
      const sendVia = (k: number, dport: number) => {
        pool.len[0] = 20; pool.addr[0] = ip4(`10.207.${k}.2`); pool.aport[0] = dport; pool.txList[0] = 0;
        assert.is(native.send(tx, 0, 1), 1);
      };
      const received = async (port: number, dport: number) => {
        let got = false;
        await waitFor(() => {
          const n = native.recv(port, 10, 8);
          for (let i = 0; i < n; i++) if (get16(pool.start(10 + i) + 12) === 0x0800 && get16(pool.start(10 + i) + 14 + 22) === dport) got = true;
          return got;
        }, 1000);
        return got;
      };
      try {
        const p = native.openPacket(hosts[0], opts);
        let wakeups = 0;
        native.poll(p, () => { wakeups++; });
        sendVia(0, 7001);
        assert.ok(await received(p, 7001), 'the port received before the close');
        const pending = native.pendingCloses();
        native.close(p);
        // Detached at once: the release waits for the worker thread, whose completion runs on this
        // (JS) thread, so it cannot have completed before we yield.
        assert.is(native.pendingCloses(), pending + 1, 'the release is queued, not done in the call');
        for (const call of [() => native.recv(p, 0, 1), () => native.send(p, 0, 1), () => native.stats(p), () => native.info(p)])
          assert.throws(call, /no such open port/);
        native.close(p); // a second close is harmless
        const w = wakeups;
        sendVia(0, 7002);
        await sleep(50);
        assert.is(wakeups, w, 'no readiness callback after the close');
        // The id is reused by the next port (the lowest free slot): it is bound to the other veth,
        // and neither the closed socket's frames nor anything sent to the first veth reach it.
        const q = native.openPacket(hosts[1], opts);
        try {
          assert.is(q, p, 'the id was free at once');
          assert.is(native.info(q).name, hosts[1]);
          sendVia(0, 7003);
          assert.not.ok(await received(q, 7003), 'nothing from the closed port\'s interface');
          sendVia(1, 7004);
          assert.ok(await received(q, 7004), 'the new port receives its own interface');
          assert.is(native.stats(q).rxPackets >= 1, true);
        } finally {
          native.close(q);
        }
        assert.ok(await waitFor(() => native.pendingCloses() === 0, 5000), 'both releases completed');
        // Many cycles without waiting in between: every fd and ring mapping comes back.
        for (let k = 0; k < 40; k++) {
          const c = native.openPacket(hosts[k & 1], opts);
          native.poll(c, () => {});
          native.close(c);
        }
        assert.ok(native.pendingCloses() > 0, 'closes queued behind each other');
        assert.ok(await waitFor(() => native.pendingCloses() === 0, 10_000), `pending ${native.pendingCloses()}`);
      } finally {
        native.close(tx);
      }
      assert.is(openFds(), fds0, 'no fd left open');
      assert.is(ringMaps(), maps0, 'no ring left mapped');
    } finally {
      for (const h of hosts) sh('ip', ['link', 'del', h], { allowFail: true });
    }
  });
});

test('close: a process or worker_thread ends cleanly with releases still pending (natural exit and worker teardown wait for them, process.exit need not)', async () => {
  const host = `pwx${Math.random().toString(36).slice(2, 8)}`;
  ip('link', 'add', host, 'type', 'veth', 'peer', 'name', `${host}p`);
  try {
    ip('link', 'set', host, 'up');
    const mod = JSON.stringify(require.resolve('../../src/dataplane/native'));
    for (const ending of ['', 'process.exit(7);']) {
      // Each child closes ports and ends at once; a natural end prints how many releases were
      // still pending when it started to end and which ran before the loop emptied.
      const script = `const {native}=require(${mod});const o={ring:true,ringVersion:2,ringBlocks:4};` +
        `for(let i=0;i<8;i++){const p=native.openPacket(${JSON.stringify(host)},o);native.poll(p,()=>{});native.close(p);}` +
        `const n=native.pendingCloses();process.on('exit',()=>console.log(n,native.pendingCloses()));${ending}`;
      const r = spawnSync(process.execPath, ['-e', script], { encoding: 'utf8', timeout: 20_000 });
      assert.is(r.status, ending ? 7 : 0, `exit status (stderr: ${r.stderr})`);
      assert.is(r.signal, null);
      const [queued, left] = r.stdout.trim().split(' ').map(Number);
      assert.is(queued, 8);
      assert.is(left, ending ? 8 : 0, ending ? 'process.exit does not wait' : 'a natural exit waited for every release');
    }
    // A worker_thread (podway run --workers) has its own addon instance: its teardown, natural or
    // terminate(), completes the releases it queued before the instance goes (the fds are the
    // process's, so they are counted here).
    assert.ok(await waitFor(() => native.pendingCloses() === 0, 5000));
    const fds0 = openFds();
    for (const end of ['natural', 'terminate']) {
      const w = new Worker(`const {native}=require(${mod});const o={ring:true,ringVersion:2,ringBlocks:4};` +
        `for(let i=0;i<8;i++){const p=native.openPacket(${JSON.stringify(host)},o);native.poll(p,()=>{});native.close(p);}` +
        `require('worker_threads').parentPort.postMessage(native.pendingCloses());` +
        // terminate(): kept alive, so terminate ends it (else it may end by itself first, code 0:
        // seen once on a loaded fresh machine)
        (end === 'terminate' ? 'setInterval(()=>{},1e6);' : ''), { eval: true });
      // 'exit' is listened for from the start: a worker that ends before its message is read has
      // the message and 'exit' emitted in one turn, so a listener added after the message would
      // never fire and the test would end with nothing left to wait on (stop CI of session 25).
      const exited = new Promise<number>((resolve) => w.once('exit', resolve));
      const queued = await new Promise((resolve, reject) => { w.once('message', resolve); w.once('error', reject); });
      assert.is(queued, 8, `${end}: releases queued in the worker`);
      const code = end === 'terminate' ? await w.terminate() : await exited;
      assert.is(code, end === 'terminate' ? 1 : 0, `${end}: exit code`);
      assert.is(openFds(), fds0, `${end}: every fd the worker opened is closed once it is gone`);
    }
  } finally {
    sh('ip', ['link', 'del', host], { allowFail: true });
  }
});

/** linkMtus's answer for these ports (a fresh array: a port it does not read stays 0). */
function linkMtusOf(...ports: number[]): number[] {
  const out = new Uint32Array(1024);
  native.linkMtus(out);
  return ports.map((p) => out[p]);
}

test('TAP: the namespace kernel answers our ARP request, read back through the TAP in one batch; linkMtus reads the device\'s MTU in its namespace', async () => {
  await withNetns(['tap'], async ([A]) => {
    const fds0 = openFds();
    const t = native.openTap('pwtap0', { netns: ns(A) });
    try {
      // the device is in A, not in this namespace: read through the socket the port made in A
      A.ip('link', 'set', 'pwtap0', 'mtu', '1234');
      assert.equal(linkMtusOf(t), [1234]);
      A.ip('link', 'set', 'pwtap0', 'mtu', '1500');
      assert.equal(linkMtusOf(t), [1500], 'followed');
      A.ip('addr', 'add', '10.201.0.1/24', 'dev', 'pwtap0');
      A.ip('link', 'set', 'pwtap0', 'up');
      const kernelMac = A.ip('-br', 'link', 'show', 'pwtap0').trim().split(/\s+/)[2];
      // drain anything the kernel sent on link-up (IPv6 router solicitations and the like)
      await new Promise((r) => setTimeout(r, 50));
      while (native.recv(t, 0, 64) > 0) { /* discard */ }
      const o = pool.start(0);
      const me = [0x02, 0, 0, 0, 0xaa, 0x01];
      b.fill(0xff, o, o + 6); b.set(me, o + 6); put16(o + 12, 0x0806);
      put16(o + 14, 1); put16(o + 16, 0x0800); b[o + 18] = 6; b[o + 19] = 4; put16(o + 20, 1);
      b.set(me, o + 22); put32(o + 28, ip4('10.201.0.2')); b.fill(0, o + 32, o + 38); put32(o + 38, ip4('10.201.0.1'));
      pool.len[0] = 42; pool.txList[0] = 0;
      assert.is(native.send(t, 0, 1), 1);
      let reply = -1;
      await waitFor(() => {
        const n = native.recv(t, 20, 16);
        for (let k = 0; k < n; k++) {
          const f = pool.start(20 + k);
          if (get16(f + 12) === 0x0806 && get16(f + 20) === 2) reply = 20 + k;
        }
        return reply >= 0;
      }, 3000);
      assert.ok(reply >= 0, 'ARP reply from the kernel');
      const f = pool.start(reply);
      const mac = [...b.subarray(f + 22, f + 28)].map((x) => x.toString(16).padStart(2, '0')).join(':');
      assert.is(mac, kernelMac);
      assert.is(get32(f + 28), ip4('10.201.0.1'));
      assert.equal([...b.subarray(f + 32, f + 38)], me);
      A.ip('link', 'del', 'pwtap0');
      assert.equal(linkMtusOf(t), [0], 'the device gone: unknown');
    } finally {
      native.close(t);
    }
    assert.is(openFds(), fds0, 'closed with its MTU socket');
  });
});

test('TUN: an ICMP echo request written to the TUN is answered by the namespace kernel', async () => {
  await withNetns(['tun'], async ([A]) => {
    const t = native.openTun('pwtun0', { netns: ns(A) });
    try {
      A.ip('addr', 'add', '10.202.0.1/24', 'dev', 'pwtun0');
      A.ip('link', 'set', 'pwtun0', 'up');
      await new Promise((r) => setTimeout(r, 20));
      while (native.recv(t, 0, 64) > 0) { /* discard */ }
      const o = pool.start(0);
      const len = 20 + 8 + 16;
      ipv4(o, ip4('10.202.0.2'), ip4('10.202.0.1'), 1, len);
      b[o + 20] = 8; b[o + 21] = 0; put16(o + 22, 0); put16(o + 24, 0x4242); put16(o + 26, 7);
      for (let k = 0; k < 16; k++) b[o + 28 + k] = k;
      put16(o + 22, csum(b, o + 20, 24));
      pool.len[0] = len; pool.txList[0] = 0;
      assert.is(native.send(t, 0, 1), 1);
      let got = -1;
      await waitFor(() => {
        const n = native.recv(t, 30, 16);
        for (let k = 0; k < n; k++) if (b[pool.start(30 + k) + 9] === 1) got = 30 + k;
        return got >= 0;
      }, 3000);
      assert.ok(got >= 0, 'echo reply');
      const f = pool.start(got);
      assert.is(b[f] >> 4, 4);
      assert.is(get32(f + 12), ip4('10.202.0.1'));
      assert.is(get32(f + 16), ip4('10.202.0.2'));
      assert.is(b[f + 20], 0, 'ICMP echo reply');
      assert.is(get16(f + 24), 0x4242);
      assert.is(csum(b, f, 20), 0);
      assert.is(csum(b, f + 20, 24), 0);
    } finally {
      native.close(t);
    }
  });
});

test('TUN shared between threads: sharedTx dups the fd the owner listed with share; its writes reach the device, the owner reads the answer; gone with the owner', async () => {
  await withNetns(['tunshare'], async ([A]) => {
    let code = '';
    try { native.openTun('pwtuns0', { netns: ns(A), sharedTx: true }); } catch (e) { code = errnoOf(e) ?? ''; }
    assert.is(code, 'ENOENT', 'nothing listed yet');
    const owner = native.openTun('pwtuns0', { netns: ns(A), share: true });
    let tx = -1;
    try {
      code = '';
      try { native.openTap('pwtuns0', { netns: ns(A), sharedTx: true }); } catch (e) { code = errnoOf(e) ?? ''; }
      assert.is(code, 'EPROTOTYPE', 'a TUN is not a TAP');
      tx = native.openTun('pwtuns0', { netns: ns(A), sharedTx: true });
      A.ip('link', 'set', 'pwtuns0', 'mtu', '1321');
      assert.equal(linkMtusOf(owner, tx), [1321, 1321], 'linkMtus: the owner and the dup read the device in A');
      A.ip('addr', 'add', '10.203.0.1/24', 'dev', 'pwtuns0');
      A.ip('link', 'set', 'pwtuns0', 'up');
      await new Promise((r) => setTimeout(r, 20));
      while (native.recv(owner, 0, 64) > 0) { /* discard */ }
      const o = pool.start(0);
      const len = 20 + 8 + 16;
      ipv4(o, ip4('10.203.0.2'), ip4('10.203.0.1'), 1, len);
      b[o + 20] = 8; b[o + 21] = 0; put16(o + 22, 0); put16(o + 24, 0x4343); put16(o + 26, 9);
      for (let k = 0; k < 16; k++) b[o + 28 + k] = k;
      put16(o + 22, csum(b, o + 20, 24));
      pool.len[0] = len; pool.txList[0] = 0;
      assert.is(native.send(tx, 0, 1), 1, 'written through the dup');
      let got = -1;
      await waitFor(() => {
        const n = native.recv(owner, 30, 16);
        for (let k = 0; k < n; k++) if (b[pool.start(30 + k) + 9] === 1 && get16(pool.start(30 + k) + 24) === 0x4343) got = 30 + k;
        return got >= 0;
      }, 3000);
      assert.ok(got >= 0, 'the echo reply, read on the owner');
      assert.is(b[pool.start(got) + 20], 0, 'ICMP echo reply');
    } finally {
      if (tx >= 0) native.close(tx);
      native.close(owner);
    }
    code = '';
    try { native.openTun('pwtuns0', { netns: ns(A), sharedTx: true }); } catch (e) { code = errnoOf(e) ?? ''; }
    assert.is(code, 'ENOENT', 'the owner left the list when it closed');
  });
});

test('raw IPv4 protocol 4: IPIP packets cross two namespaces without an ipip module', async () => {
  await withNetns(['ipa', 'ipb'], async ([A, B]) => {
    veth(A, 'ia0', B, 'ib0');
    A.ip('addr', 'add', '10.203.0.1/24', 'dev', 'ia0');
    B.ip('addr', 'add', '10.203.0.2/24', 'dev', 'ib0');
    const ra = native.openRaw({ netns: ns(A), proto: 4 });
    const rb = native.openRaw({ netns: ns(B), proto: 4 });
    try {
      const N = 16;
      for (let i = 0; i < N; i++) {
        const o = pool.start(i);
        const innerLen = 20 + 8 + 10;
        // inner IPv4/UDP between two pod addresses, then the outer header in front of it
        ipv4(o + 20, ip4('10.244.1.5'), ip4('10.244.2.7'), 17, innerLen);
        put16(o + 40, 1000 + i); put16(o + 42, 53); put16(o + 44, 18); put16(o + 46, 0);
        for (let k = 0; k < 10; k++) b[o + 48 + k] = i;
        ipv4(o, ip4('10.203.0.1'), ip4('10.203.0.2'), 4, 20 + innerLen);
        pool.len[i] = 20 + innerLen; pool.addr[i] = ip4('10.203.0.2'); pool.txList[i] = i;
      }
      assert.is(native.send(ra, 0, N), N);
      const seen: number[] = [];
      await waitFor(() => {
        const n = native.recv(rb, 100, 64);
        for (let k = 0; k < n; k++) {
          const f = pool.start(100 + k);
          assert.is(b[f + 9], 4, 'outer protocol 4');
          assert.is(get32(f + 12), ip4('10.203.0.1'));
          assert.is(pool.addr[100 + k], ip4('10.203.0.1'));
          assert.is(csum(b, f, 20), 0);
          assert.is(get32(f + 20 + 12), ip4('10.244.1.5'));
          assert.is(get32(f + 20 + 16), ip4('10.244.2.7'));
          seen.push(get16(f + 40) - 1000);
        }
        return seen.length >= N;
      }, 3000);
      assert.equal(seen.sort((x, y) => x - y), [...Array(N).keys()]);
    } finally {
      native.close(ra);
      native.close(rb);
    }
  });
});

/** The receive queues (bytes) of a namespace's raw sockets of protocol 255 (IPPROTO_RAW), from
 * /proc/net/raw or raw6 ("tx_queue:rx_queue" in hex, local "address:protocol"). */
function rawRxQueues(n: Netns, file: 'raw' | 'raw6'): number[] {
  return n.exec('cat', [`/proc/net/${file}`]).split('\n').slice(1).map((l) => l.trim().split(/\s+/)).filter((f) => f.length > 4 && f[1].endsWith(':00FF')).map((f) => parseInt(f[4].split(':')[1], 16));
}

/** A counter of /proc/net/snmp6 (name value lines) or /proc/net/snmp (Ip: header and value lines). */
function snmp(n: Netns, name: string): number {
  const six = n.exec('cat', ['/proc/net/snmp6']).split('\n').map((l) => l.trim().split(/\s+/)).find((f) => f[0] === name);
  if (six) return Number(six[1]);
  const lines = n.exec('cat', ['/proc/net/snmp']).split('\n').filter((l) => l.startsWith('Ip: '));
  const k = lines[0].split(/\s+/).indexOf(name);
  return Number(lines[1].split(/\s+/)[k]);
}

test('raw IPPROTO_RAW ports (tx6, tx4) are transmit only: packets of protocol 255 for the node reach them but never sit in their receive queue', async () => {
  await withNetns(['rawrx'], async ([A]) => {
    const tx6 = native.openRaw({ netns: ns(A), ipv6: true });
    const tx4 = native.openRaw({ netns: ns(A), proto: 255 });
    try {
      // IPv6 ::1 -> ::1, next header 255, 32 bytes: the kernel delivers it to the raw sockets of
      // protocol 255 (Ip6InDelivers counts it; without one it would be an unknown protocol).
      const o = pool.start(0);
      b.fill(0, o, o + 72);
      b[o] = 0x60; put16(o + 4, 32); b[o + 6] = 255; b[o + 7] = 64; b[o + 23] = 1; b[o + 39] = 1;
      pool.len[0] = 72; pool.txList[0] = 0;
      const delivered6 = snmp(A, 'Ip6InDelivers');
      for (let k = 0; k < 4; k++) assert.is(native.send(tx6, 0, 1), 1, 'sent');
      assert.ok(await waitFor(() => snmp(A, 'Ip6InDelivers') >= delivered6 + 4, 3000), 'delivered to the node\'s raw sockets');
      assert.is(snmp(A, 'Ip6InUnknownProtos'), 0, 'taken by a raw socket of protocol 255');
      assert.equal(rawRxQueues(A, 'raw6'), [0], 'tx6 queued none of them');
      // IPv4 127.0.0.1 -> 127.0.0.1, protocol 255
      ipv4(o, ip4('127.0.0.1'), ip4('127.0.0.1'), 255, 20 + 32);
      pool.len[0] = 52; pool.addr[0] = ip4('127.0.0.1');
      const delivered4 = snmp(A, 'InDelivers');
      for (let k = 0; k < 4; k++) assert.is(native.send(tx4, 0, 1), 1, 'sent');
      assert.ok(await waitFor(() => snmp(A, 'InDelivers') >= delivered4 + 4, 3000), 'delivered to the node\'s raw sockets');
      assert.equal(rawRxQueues(A, 'raw'), [0], 'tx4 queued none of them');
    } finally {
      native.close(tx6);
      native.close(tx4);
    }
  });
});

test.run();
