/**
 * Receive cost of a pod port's TCP super-frames, scatter receive against the whole-copy path
 * (native/README.md "Scatter receive"), root: `node dist/bench/scatter-rx.js [rounds (2000)] [batch (256)]`.
 *
 * One TAP with a vnet header in a namespace of its own; two AF_PACKET ports on it (TPACKET_V2 ring,
 * PACKET_COPY_THRESH, as podway opens a pod's veth), one with scatterRx off. Every round writes 16
 * TCP super-frames of 64,000 payload bytes (gso_size 1448, 45 segments each) to the TAP, so both
 * ports get the same frames, then drains each port with `recv` calls of `batch` descriptors (256 as
 * podway's default), the order alternating per round. Only the time inside `recv` is counted: the
 * kernel's copy into our memory plus the segmenting in C, i.e. what the change is about. The write
 * and the kernel's work on it are the same for both and outside the clock. On a shared machine a
 * round now and then is preempted, so besides the mean the median round is reported (per
 * super-frame), the figure to compare.
 */
import { closeSync, writeSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { native, nativeAddon, FramePool } from '../src/dataplane/native';
import { machineInfo } from './machine';
import { median } from './stats';

const rounds = Number(process.argv[2] ?? 2000);
const batch = Number(process.argv[3] ?? 256);
const PER_ROUND = 16, PAYLOAD = 64000, MSS = 1448;

interface Hooks { vnetTapForTest(name: string, netns: string): number }
const hooks = nativeAddon() as unknown as Hooks;

/** Ethernet + IPv4 + TCP (32-byte header) + payload, with the partial checksum a kernel leaves. */
function superFrame(seq: number): Buffer {
  const f = Buffer.alloc(14 + 20 + 32 + PAYLOAD);
  f.set([0xee, 0xee, 0xee, 0xee, 0xee, 0xee, 2, 0, 0, 0x77, 0, 1], 0);
  f.writeUInt16BE(0x0800, 12);
  f[14] = 0x45; f.writeUInt16BE(f.length - 14, 16); f.writeUInt16BE(0x4000, 20); f[22] = 64; f[23] = 6;
  f.set([10, 77, 0, 1, 10, 77, 0, 2], 26);
  let s = 0;
  for (let i = 14; i < 34; i += 2) s += f.readUInt16BE(i);
  while (s > 0xffff) s = (s & 0xffff) + (s >>> 16);
  f.writeUInt16BE(~s & 0xffff, 24);
  f.writeUInt16BE(40001, 34); f.writeUInt16BE(5201, 36); f.writeUInt32BE(seq >>> 0, 38);
  f[46] = 8 << 4; f[47] = 0x18; f.writeUInt16BE(502, 48);
  for (let i = 66; i < f.length; i++) f[i] = (i * 7 + (i >>> 8)) & 255;
  // partial checksum: the folded pseudo-header sum (source, destination, protocol, TCP length)
  let p = 6 + (f.length - 34);
  for (let i = 26; i < 34; i += 2) p += f.readUInt16BE(i);
  while (p > 0xffff) p = (p & 0xffff) + (p >>> 16);
  f.writeUInt16BE(p, 50);
  const v = Buffer.alloc(10);
  v[0] = 1; v[1] = 1; // NEEDS_CSUM, TCPV4
  v.writeUInt16LE(66, 2); v.writeUInt16LE(MSS, 4); v.writeUInt16LE(34, 6); v.writeUInt16LE(16, 8);
  return Buffer.concat([v, f]);
}


function main(): void {
  const ns = `psrx-${randomBytes(3).toString('hex')}`;
  execFileSync('ip', ['netns', 'add', ns]);
  const ports: number[] = [];
  let fd = -1;
  try {
    const path = `/run/netns/${ns}`;
    fd = hooks.vnetTapForTest('srx0', path);
    execFileSync('ip', ['-n', ns, 'link', 'set', 'srx0', 'up']);
    execFileSync('ip', ['netns', 'exec', ns, 'sysctl', '-qw', 'net.ipv6.conf.all.disable_ipv6=1']);
    new FramePool(1024);
    const scatter = native.openPacket('srx0', { netns: path });
    ports.push(scatter);
    const whole = native.openPacket('srx0', { netns: path, scatterRx: false });
    ports.push(whole);
    const frames = Array.from({ length: PER_ROUND }, (_, k) => superFrame(k * PAYLOAD));
    const ns0 = [0, 0], got = [0, 0];
    const perRound: number[][] = [[], []];
    const drain = (k: number) => {
      const port = k === 0 ? scatter : whole;
      const t0 = process.hrtime.bigint();
      for (let guard = 0; guard < 10000; guard++) {
        const n = native.recv(port, 0, batch);
        got[k] += n;
        if (n === 0) break;
      }
      const t = Number(process.hrtime.bigint() - t0);
      ns0[k] += t;
      perRound[k].push(t / PER_ROUND);
    };
    for (let r = 0; r < rounds; r++) {
      for (const f of frames) writeSync(fd, f);
      if (r % 2 === 0) { drain(0); drain(1); } else { drain(1); drain(0); }
    }
    const st = ports.map((p) => native.stats(p) as unknown as { rxGsoFrames: number; rxScatterFrames: number; rxKernelDrops: number; rxTruncated: number });
    const sf = rounds * PER_ROUND;
    const row = (k: number, what: string) => {
      const bytes = st[k].rxGsoFrames * PAYLOAD;
      return `| ${what} | ${st[k].rxGsoFrames} / ${sf} | ${got[k]} | ${(median(perRound[k]) / 1000).toFixed(2)} | ${(ns0[k] / st[k].rxGsoFrames / 1000).toFixed(2)} | ${(ns0[k] / bytes).toFixed(3)} | ${st[k].rxScatterFrames} | ${st[k].rxTruncated} |`;
    };
    const m = machineInfo();
    console.log(`machine: ${m.cpu}, nproc ${m.nproc}, kernel ${m.kernel}, Node ${m.node}, ${m.date}; load at the end ${m.loadavg.join(' ')}; ${rounds} rounds of ${PER_ROUND} super-frames, recv batch ${batch}`);
    console.log('| path | super-frames segmented / written | descriptors | µs in recv per super-frame, median round | mean | ns (s/GB) per payload byte, mean | scattered | truncated |');
    console.log('|---|---|---|---|---|---|---|---|');
    console.log(row(0, 'scatter receive'));
    console.log(row(1, 'whole copy (scatterRx: false)'));
    console.log(`whole / scatter time per super-frame: median round ${(median(perRound[1]) / median(perRound[0])).toFixed(2)}x, mean ${((ns0[1] / st[1].rxGsoFrames) / (ns0[0] / st[0].rxGsoFrames)).toFixed(2)}x`);
  } finally {
    for (const p of ports) native.close(p);
    if (fd >= 0) closeSync(fd);
    execFileSync('ip', ['netns', 'del', ns]);
  }
}

main();
