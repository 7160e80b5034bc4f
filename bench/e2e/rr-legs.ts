/**
 * The legs of each request/response round trip, from two captures (`rr-tail.js --legs`): tcpdump on
 * pod A's eth0 and on pod B's eth0 (inside the pods, nanosecond stamps, one clock: one machine), and
 * the client's own trace (`PKTGEN_RR_TRACE`: send time, round trip, sequence number). Per request:
 *
 *   aOut  its bytes leave pod A's stack (first segment covering its last byte, or its datagram)
 *   bIn   they reach pod B's eth0            (request leg: node1 -> underlay -> node2 -> pod B)
 *   bOut  the reply leaves pod B's stack     (server: pod B's stack and rr-server)
 *   aIn   the reply reaches pod A's eth0     (reply leg: node2 -> underlay -> node1 -> pod A)
 *
 * and the client's round trip minus (aIn - aOut): pod A's own part (its send() to the wire, e.g.
 * waiting in the socket for the congestion window, and the wire to its recv(): the client's wake-up).
 * TCP requests are matched by stream offset (request k is bytes 64k..64k+63 after the SYN in both
 * directions: the server echoes), UDP by the sequence number in the payload. Retransmitted copies do
 * not move a first arrival.
 */
import { readFileSync } from 'node:fs';

export interface LegTimes {
  /** Per request sequence number: ns since the captures' first second; NaN when not seen. */
  aOut: Float64Array;
  bIn: Float64Array;
  bOut: Float64Array;
  aIn: Float64Array;
  /** Pod A's segments (TCP) or datagrams with payload leaving it, and how many carried more than one request. */
  aDataFrames: number;
  aMultiFrames: number;
  /** Pod A's TCP segments without payload (pure ACKs) after the handshake. */
  aPureAcks: number;
  /** Per request: how many requests the frame that first carried it out of pod A held. */
  aOutPack: Uint16Array;
  /** Pod B's frames with replies (a TCP super-frame before its segmentation counts once), and how many carried more than one. */
  bDataFrames: number;
  bMultiFrames: number;
  /** Frames with replies reaching pod A (after GRO towards it), and how many carried more than one. */
  aInFrames: number;
  aInMulti: number;
  /** Per request: how many replies the frame that first brought its reply to pod A held. */
  aInPack: Uint16Array;
}

export interface Pkt { t: number; src: string; proto: number; seq: number; flags: number; payloadLen: number; payload: Buffer }

function ip4(b: Buffer, o: number): string {
  return `${b[o]}.${b[o + 1]}.${b[o + 2]}.${b[o + 3]}`;
}

/** The IPv4 TCP/UDP frames of a pcap file (Ethernet, micro- or nanosecond stamps); `base` is a second to count from. */
export function readPcap(file: string, base: number): Pkt[] {
  const b = readFileSync(file);
  if (b.length < 24) return [];
  const magic = b.readUInt32LE(0);
  const nano = magic === 0xa1b23c4d;
  if (!nano && magic !== 0xa1b2c3d4) throw new Error(`${file}: not a little-endian pcap file (magic ${magic.toString(16)})`);
  if (b.readUInt32LE(20) !== 1) throw new Error(`${file}: link type ${b.readUInt32LE(20)}, not Ethernet`);
  const out: Pkt[] = [];
  for (let o = 24; o + 16 <= b.length;) {
    const sec = b.readUInt32LE(o);
    const frac = b.readUInt32LE(o + 4);
    const incl = b.readUInt32LE(o + 8);
    const f = o + 16;
    o = f + incl;
    if (o > b.length) break;
    if (incl < 34 || b.readUInt16BE(f + 12) !== 0x0800) continue;
    const ip = f + 14;
    const ihl = (b[ip] & 15) * 4;
    const total = b.readUInt16BE(ip + 2);
    const proto = b[ip + 9];
    const l4 = ip + ihl;
    const t = (sec - base) * 1e9 + (nano ? frac : frac * 1000);
    if (proto === 6 && l4 + 20 <= o) {
      const doff = (b[l4 + 12] >> 4) * 4;
      const pay = l4 + doff;
      out.push({ t, src: ip4(b, ip + 12), proto, seq: b.readUInt32BE(l4 + 4), flags: b[l4 + 13], payloadLen: total - ihl - doff, payload: b.subarray(Math.min(pay, o), o) });
    } else if (proto === 17 && l4 + 8 <= o) {
      out.push({ t, src: ip4(b, ip + 12), proto, seq: 0, flags: 0, payloadLen: total - ihl - 8, payload: b.subarray(l4 + 8, o) });
    }
  }
  return out;
}

/** The first second stamped in a pcap file (0 if empty): both captures count from the smaller. */
export function pcapFirstSecond(file: string): number {
  const b = readFileSync(file);
  return b.length >= 28 ? b.readUInt32LE(24) : 0;
}

/**
 * Each request's four times from pod A's and pod B's captures. `n` requests (sequence numbers 0..n-1),
 * `size` bytes each, between `aIp` (the client) and the server.
 */
export function legTimes(podA: Pkt[], podB: Pkt[], proto: 'tcp' | 'udp', aIp: string, n: number, size: number): LegTimes {
  const mk = () => new Float64Array(n).fill(NaN);
  const r: LegTimes = { aOut: mk(), bIn: mk(), bOut: mk(), aIn: mk(), aDataFrames: 0, aMultiFrames: 0, aPureAcks: 0, aOutPack: new Uint16Array(n),
    bDataFrames: 0, bMultiFrames: 0, aInFrames: 0, aInMulti: 0, aInPack: new Uint16Array(n) };
  // per direction (from A, from B): the sequence number of the SYN, learnt from either capture
  const isn: Record<string, number | undefined> = {};
  for (const p of [...podA, ...podB]) if (p.proto === 6 && p.flags & 2 && isn[p.src] === undefined) isn[p.src] = p.seq;
  // which counters a frame adds to: pod A's sends, pod B's sends, pod A's arrivals
  type Side = 'aOut' | 'bOut' | 'aIn' | undefined;
  const frames = (side: Side, multi: boolean): void => {
    if (side === 'aOut') { r.aDataFrames++; if (multi) r.aMultiFrames++; }
    else if (side === 'bOut') { r.bDataFrames++; if (multi) r.bMultiFrames++; }
    else if (side === 'aIn') { r.aInFrames++; if (multi) r.aInMulti++; }
  };
  const packOf = (side: Side): Uint16Array | undefined => (side === 'aOut' ? r.aOutPack : side === 'aIn' ? r.aInPack : undefined);
  const mark = (arr: Float64Array, p: Pkt, side: Side): void => {
    const pack = packOf(side);
    if (proto === 'udp') {
      if (p.proto !== 17 || p.payload.length < 8) return;
      const k = p.payload.readUInt32LE(4);
      if (k < n && Number.isNaN(arr[k])) { arr[k] = p.t; if (pack) pack[k] = 1; }
      frames(side, false);
      return;
    }
    if (p.proto !== 6) return;
    const s0 = isn[p.src];
    if (s0 === undefined) return;
    if (p.payloadLen <= 0) { if (side === 'aOut' && !(p.flags & 2)) r.aPureAcks++; return; }
    const rel = (p.seq - s0 - 1) >>> 0;
    const kMin = Math.max(0, Math.ceil((rel - (size - 1)) / size));
    const kMax = Math.min(n - 1, Math.floor((rel + p.payloadLen - size) / size));
    frames(side, kMax > kMin);
    for (let k = kMin; k <= kMax; k++) {
      if (Number.isNaN(arr[k])) { arr[k] = p.t; if (pack) pack[k] = Math.min(65535, kMax - kMin + 1); }
    }
  };
  for (const p of podA) {
    if (p.src === aIp) mark(r.aOut, p, 'aOut');
    else mark(r.aIn, p, 'aIn');
  }
  for (const p of podB) {
    if (p.src === aIp) mark(r.bIn, p, undefined);
    else mark(r.bOut, p, 'bOut');
  }
  return r;
}

const pct = (v: number[], q: number): number => (v.length ? v[Math.min(v.length - 1, Math.floor(v.length * q))] : NaN);

/** A request matched in both captures: its round trip (the client's) and its legs, ns. */
export interface LegRow { seq: number; rtt: number; stack: number; req: number; srv: number; rep: number; pack: number; inPack: number }

/** The client's trace (lines "sentNs rttNs seq" from pktgen rr-client) matched to the captures' times. */
export function legRows(trace: string, t: LegTimes): { rows: LegRow[]; unmatched: number } {
  const rows: LegRow[] = [];
  let unmatched = 0;
  for (const l of trace.trim().split('\n')) {
    const [, rttS, seqS] = l.split(' ');
    const k = Number(seqS);
    const rtt = Number(rttS);
    if (seqS === undefined || !Number.isInteger(k) || k < 0 || k >= t.aOut.length) { unmatched++; continue; }
    const a = t.aOut[k], bi = t.bIn[k], bo = t.bOut[k], ai = t.aIn[k];
    if ([a, bi, bo, ai].some(Number.isNaN)) { unmatched++; continue; }
    rows.push({ seq: k, rtt, stack: rtt - (ai - a), req: bi - a, srv: bo - bi, rep: ai - bo, pack: t.aOutPack[k], inPack: t.aInPack[k] });
  }
  return { rows, unmatched };
}

/**
 * One line: the round trip and its legs (µs) at the median and over the slowest 1% of replies
 * (the mean of each leg over those requests, so the legs add up to their mean round trip).
 * `trace`: lines "sentNs rttNs seq" from pktgen rr-client.
 */
export function legsSummary(trace: string, t: LegTimes): string {
  type Row = LegRow;
  const { rows, unmatched } = legRows(trace, t);
  if (!rows.length) return `no request matched in both captures (${unmatched} unmatched)`;
  const us = (x: number) => (x / 1e3).toFixed(0);
  const med = (f: (r: Row) => number) => us(pct(rows.map(f).sort((x, y) => x - y), 0.5));
  const sorted = [...rows].sort((x, y) => x.rtt - y.rtt);
  const slow = sorted.slice(Math.floor(sorted.length * 0.99));
  const mean = (f: (r: Row) => number) => us(slow.reduce((s, r) => s + f(r), 0) / slow.length);
  const packed = slow.filter((r) => r.pack > 1).length;
  const inPacked = slow.filter((r) => r.inPack > 1).length;
  const p99 = (f: (r: Row) => number) => us(pct(rows.map(f).sort((x, y) => x - y), 0.99));
  return `${rows.length} matched (${unmatched} not); median rtt ${med((r) => r.rtt)} = pod A ${med((r) => r.stack)} + request leg ${med((r) => r.req)} + server ${med((r) => r.srv)} + reply leg ${med((r) => r.rep)} µs (medians each); ` +
    `slowest 1% (${slow.length}, from ${us(slow[0].rtt)} µs) mean rtt ${mean((r) => r.rtt)} = pod A ${mean((r) => r.stack)} + request leg ${mean((r) => r.req)} + server ${mean((r) => r.srv)} + reply leg ${mean((r) => r.rep)} µs, ` +
    `each leg's own p99: rtt ${p99((r) => r.rtt)}, pod A ${p99((r) => r.stack)}, request leg ${p99((r) => r.req)}, server ${p99((r) => r.srv)}, reply leg ${p99((r) => r.rep)} µs; ` +
    `${packed} of the slowest left pod A in a frame with other requests, ${inPacked} came back in one with other replies; ` +
    `frames with more than one request or reply: pod A sent ${t.aMultiFrames} of ${t.aDataFrames} (and ${t.aPureAcks} pure ACKs), pod B sent ${t.bMultiFrames} of ${t.bDataFrames}, pod A received ${t.aInMulti} of ${t.aInFrames}`;
}

/** CLOCK_REALTIME minus CLOCK_MONOTONIC in ns (to a few µs): hrtime read when Date.now() ticks. */
export function realtimeMinusMonotonicNs(): number {
  const t0 = Date.now();
  let t = t0;
  let h = process.hrtime.bigint();
  for (let k = 0; k < 5_000_000 && t === t0; k++) { h = process.hrtime.bigint(); t = Date.now(); }
  return t * 1e6 - Number(h);
}

/**
 * The intervals (monotonic ns) in which thread `tid` was runnable but not running (woken or
 * preempted, until switched in) and asleep (switched out in a sleep, until woken), from `perf
 * script` lines of sched_wakeup and sched_switch (perf record -k CLOCK_MONOTONIC).
 */
export function threadStates(perfScript: string, tid: number): { waiting: [number, number][]; sleeping: [number, number][] } {
  const waiting: [number, number][] = [];
  const sleeping: [number, number][] = [];
  let since: number | undefined;
  let asleep: number | undefined;
  const pidRe = new RegExp(`\\bpid=${tid}\\b`);
  for (const line of perfScript.split('\n')) {
    const m = /^\s*(?:\[\d+\]\s+)?(\d+\.\d+):\s+sched:(sched_wakeup|sched_switch):\s+(.*)$/.exec(line);
    if (!m) continue;
    const t = Math.round(Number(m[1]) * 1e9);
    const rest = m[3];
    if (m[2] === 'sched_wakeup') {
      if (pidRe.test(rest)) {
        if (asleep !== undefined) { sleeping.push([asleep, t]); asleep = undefined; }
        if (since === undefined) since = t;
      }
      continue;
    }
    const sw = /prev_pid=(\d+) .*prev_state=(\S+) ==> .*next_pid=(\d+)/.exec(rest);
    if (!sw) continue;
    if (Number(sw[3]) === tid) { if (since !== undefined) waiting.push([since, t]); since = undefined; }
    if (Number(sw[1]) === tid) {
      if (sw[2] === 'R' || sw[2] === 'R+') since = t;
      else asleep = t;
    }
  }
  return { waiting, sleeping };
}

/** How much of [a, b) lies in the (sorted, disjoint) intervals. */
function overlap(iv: [number, number][], a: number, b: number): number {
  let lo = 0, hi = iv.length;
  while (lo < hi) { const mid = (lo + hi) >> 1; if (iv[mid][1] <= a) lo = mid + 1; else hi = mid; }
  let s = 0;
  for (let k = lo; k < iv.length && iv[k][0] < b; k++) s += Math.max(0, Math.min(b, iv[k][1]) - Math.max(a, iv[k][0]));
  return s;
}

/**
 * The share of the request and reply legs (through node1) spent while node1's forwarding thread was
 * waiting for a CPU, for the slowest 1% of the requests inside the perf window and for all of them,
 * and the share of the window it waited at all. `baseSec`: the captures' base second; `offNs`:
 * realtime minus monotonic.
 */
export function legsInWaits(trace: string, t: LegTimes, states: { waiting: [number, number][]; sleeping: [number, number][] }, baseSec: number, offNs: number): string {
  const waits = states.waiting;
  const sleeps = states.sleeping;
  if (!waits.length) return 'the forwarding thread never waited in the perf window';
  const toMono = (x: number) => x + baseSec * 1e9 - offNs;
  const w0 = waits[0][0], w1 = waits[waits.length - 1][1];
  const { rows } = legRows(trace, t);
  const inWin = rows.filter((r) => { const a = toMono(t.aOut[r.seq]); return a >= w0 && toMono(t.aIn[r.seq]) <= w1; });
  if (!inWin.length) return 'no request inside the perf window';
  const share = (rs: LegRow[]) => {
    let legs = 0, waited = 0, slept = 0;
    for (const r of rs) {
      const a = toMono(t.aOut[r.seq]), bi = toMono(t.bIn[r.seq]), bo = toMono(t.bOut[r.seq]), ai = toMono(t.aIn[r.seq]);
      legs += (bi - a) + (ai - bo);
      waited += overlap(waits, a, bi) + overlap(waits, bo, ai);
      slept += overlap(sleeps, a, bi) + overlap(sleeps, bo, ai);
    }
    return { legs, waited, slept };
  };
  const sorted = [...inWin].sort((x, y) => x.rtt - y.rtt);
  const slow = share(sorted.slice(Math.floor(sorted.length * 0.99)));
  const all = share(inWin);
  const total = waits.reduce((s, [a, b]) => s + (b - a), 0);
  const pc = (x: number, y: number) => (y > 0 ? ((100 * x) / y).toFixed(0) : '-');
  return `${inWin.length} requests in the perf window; the forwarding thread was waiting for a CPU ${pc(total, w1 - w0)}% of the window (${waits.length} waits); ` +
    `of the request + reply legs' time, for the slowest 1% (${(slow.legs / 1e3 / Math.max(1, Math.ceil(inWin.length / 100))).toFixed(0)} µs of legs each) ${pc(slow.waited, slow.legs)}% fell in those waits, ${pc(slow.slept, slow.legs)}% while it slept, the rest while it ran; ` +
    `for all requests ${pc(all.waited, all.legs)}% / ${pc(all.slept, all.legs)}%`;
}
