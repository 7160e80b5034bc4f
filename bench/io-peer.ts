/**
 * One side of an I/O benchmark measurement, run by bench/io.ts as a child process inside a network
 * namespace (`ip netns exec NS node dist/bench/io-peer.js MODE key=value ...`). Every measured loop
 * runs here, so batched and per-packet peers are timed by the same harness in the same kind of
 * process.
 *
 * Protocol with the parent: one JSON line on stdout when set up ({"ready":true}), one JSON line with
 * the result at the end. Receivers run until the parent writes to (or closes) stdin; senders run for
 * a warm-up plus a fixed window. Every loop is bounded in time (`maxms` is a hard stop).
 *
 * Modes:
 *   udp-send  impl=addon|dgram|dgram-connected src= dst= dport= len= batch= ms=
 *   raw-send  impl=addon|raw-socket src= dst= len= batch= ms=        (IPv4 protocol 4, IPIP)
 *   pkt-send  ifname= dstmac= len= batch= ms=                          (AF_PACKET, addon)
 *   recv      kind=udp|raw|packet|tap impl=addon|dgram addr= port= ifname= batch= ring=0|1
 *             drive=poll|spin rcvbuf=
 */
import * as dgram from 'node:dgram';
import { performance } from 'node:perf_hooks';
import { native, FramePool } from '../src/dataplane/native';

type Args = Record<string, string>;

const WARMUP_MS = 200;
/** Sends attempted between two clock reads, for every sender (batched or not). */
const CHECK_EVERY = 64;
/** Outstanding sends kept queued for the callback-based per-packet peers. */
const DEPTH = 128;

function parse(argv: string[]): { mode: string; a: Args } {
  const [mode, ...rest] = argv;
  const a: Args = {};
  for (const kv of rest) {
    const i = kv.indexOf('=');
    if (i > 0) a[kv.slice(0, i)] = kv.slice(i + 1);
  }
  return { mode, a };
}

function num(a: Args, k: string, d?: number): number {
  if (a[k] === undefined) {
    if (d === undefined) throw new Error(`missing ${k}=`);
    return d;
  }
  const v = Number(a[k]);
  if (!Number.isFinite(v)) throw new Error(`${k}=${a[k]} is not a number`);
  return v;
}

function ip4(s: string): number {
  const p = s.split('.').map(Number);
  return ((p[0] << 24) | (p[1] << 16) | (p[2] << 8) | p[3]) >>> 0;
}

function out(o: unknown): void {
  process.stdout.write(JSON.stringify(o) + '\n');
}

function csum(b: Uint8Array, off: number, len: number): number {
  let s = 0;
  for (let i = 0; i < len - 1; i += 2) s += (b[off + i] << 8) | b[off + i + 1];
  if (len & 1) s += b[off + len - 1] << 8;
  while (s > 0xffff) s = (s & 0xffff) + (s >>> 16);
  return ~s & 0xffff;
}

/** A 20-byte IPv4 header at b[o] with a valid checksum. */
function ipv4(b: Uint8Array, o: number, src: number, dst: number, proto: number, total: number): void {
  const dv = new DataView(b.buffer, b.byteOffset);
  b[o] = 0x45; b[o + 1] = 0; dv.setUint16(o + 2, total); dv.setUint16(o + 4, 0x1234); dv.setUint16(o + 6, 0x4000);
  b[o + 8] = 64; b[o + 9] = proto; dv.setUint16(o + 10, 0); dv.setUint32(o + 12, src); dv.setUint32(o + 16, dst);
  dv.setUint16(o + 10, csum(b, o, 20));
}

/** An IPIP packet: outer src->dst protocol 4, inner 10.244.1.5 -> 10.244.2.7 UDP with `len` bytes in all. */
function ipipPacket(b: Uint8Array, o: number, src: number, dst: number, len: number): void {
  const inner = len - 20;
  ipv4(b, o + 20, ip4('10.244.1.5'), ip4('10.244.2.7'), 17, inner);
  const dv = new DataView(b.buffer, b.byteOffset);
  dv.setUint16(o + 40, 40000); dv.setUint16(o + 42, 53); dv.setUint16(o + 44, inner - 20); dv.setUint16(o + 46, 0);
  for (let k = 48; k < len; k++) b[o + k] = k & 255;
  ipv4(b, o, src, dst, 4, len);
}

interface SendResult {
  mode: string; impl: string; batch: number;
  /** Datagrams the kernel accepted inside the measured window, and the window in ms. */
  sent: number; ms: number;
  /** Everything sent, warm-up included, and the time from the first to the last send. */
  sentTotal: number; msTotal: number;
  errors: number; lastError?: string; stats?: unknown;
}

/**
 * The batched loop: one native.send per `batch` descriptors, a clock read every CHECK_EVERY sends.
 * Warm-up first (JIT, ARP, socket buffers), then the measured window.
 */
function addonSendLoop(port: number, batch: number, ms: number): Omit<SendResult, 'mode' | 'impl' | 'batch'> {
  const calls = Math.max(1, Math.floor(CHECK_EVERY / batch));
  const tStart = performance.now();
  let total = 0;
  let now = tStart;
  const warmEnd = tStart + WARMUP_MS;
  while (now < warmEnd) {
    for (let c = 0; c < calls; c++) total += native.send(port, 0, batch);
    now = performance.now();
  }
  const t0 = now;
  const end = t0 + ms;
  let sent = 0;
  while (now < end) {
    for (let c = 0; c < calls; c++) sent += native.send(port, 0, batch);
    now = performance.now();
  }
  const st = native.stats(port);
  return {
    sent, ms: now - t0, sentTotal: total + sent, msTotal: now - tStart,
    errors: st.txErrors + st.txDroppedFull, lastError: st.lastError, stats: st,
  };
}

/**
 * The per-packet callback peers (node dgram, raw-socket): keep DEPTH sends outstanding, issue the
 * next from each completion callback, count successful completions inside the window.
 */
function callbackSendLoop(
  ms: number,
  sendOne: (cb: (err: Error | null | undefined) => void) => void,
): Promise<Omit<SendResult, 'mode' | 'impl' | 'batch'>> {
  return new Promise((resolve) => {
    const tStart = performance.now();
    const t0 = tStart + WARMUP_MS;
    const end = t0 + ms;
    let inflight = 0;
    let total = 0;
    let sent = 0;
    let errors = 0;
    let lastError: string | undefined;
    let lastDone = tStart;
    let issued = 0;
    let finished = false;
    const finish = () => {
      if (finished) return;
      finished = true;
      resolve({ sent, ms: Math.min(lastDone, end) - t0, sentTotal: total, msTotal: lastDone - tStart, errors, lastError });
    };
    const onDone = (err: Error | null | undefined) => {
      inflight--;
      const now = performance.now();
      if (err) {
        errors++;
        lastError = (err as NodeJS.ErrnoException).code ?? err.message;
      } else {
        total++;
        if (now >= t0 && now < end) { sent++; lastDone = now; }
        else if (now < t0) lastDone = now;
      }
      pump(now);
    };
    const pump = (now: number) => {
      if (now >= end) {
        if (inflight === 0) finish();
        return;
      }
      while (inflight < DEPTH) {
        inflight++;
        issued++;
        sendOne(onDone);
        // a clock read every CHECK_EVERY sends, as in the batched loop
        if (issued % CHECK_EVERY === 0 && performance.now() >= end) break;
      }
    };
    pump(tStart);
    // hard stop: a peer that stops calling back must not hang the run
    setTimeout(finish, WARMUP_MS + ms + 3000).unref();
  });
}

async function udpSend(a: Args): Promise<SendResult> {
  const impl = a.impl ?? 'addon';
  const len = num(a, 'len', 64);
  const batch = num(a, 'batch', 64);
  const ms = num(a, 'ms', 2000);
  const dport = num(a, 'dport');
  if (impl === 'addon') {
    const pool = new FramePool(Math.max(batch, 64));
    const port = native.openUdp({ addr: ip4(a.src), port: 0 });
    for (let i = 0; i < batch; i++) {
      const o = pool.start(i);
      for (let k = 0; k < len; k++) pool.bytes[o + k] = (i + k) & 255;
      pool.len[i] = len;
      pool.addr[i] = ip4(a.dst);
      pool.aport[i] = dport;
      pool.txList[i] = i;
    }
    out({ ready: true });
    const r = addonSendLoop(port, batch, ms);
    native.close(port);
    return { mode: 'udp-send', impl, batch, ...r };
  }
  const sock = dgram.createSocket('udp4');
  await new Promise<void>((res, rej) => { sock.once('error', rej); sock.bind(0, a.src, () => res()); });
  const connected = impl === 'dgram-connected';
  if (connected) await new Promise<void>((res) => sock.connect(dport, a.dst, () => res()));
  const buf = Buffer.alloc(len);
  for (let k = 0; k < len; k++) buf[k] = k & 255;
  out({ ready: true });
  const r = await callbackSendLoop(ms, connected
    ? (cb) => sock.send(buf, cb)
    : (cb) => sock.send(buf, dport, a.dst, cb));
  sock.close();
  return { mode: 'udp-send', impl, batch: 1, ...r };
}

async function rawSend(a: Args): Promise<SendResult> {
  const impl = a.impl ?? 'addon';
  const len = num(a, 'len', 80);
  const batch = num(a, 'batch', 64);
  const ms = num(a, 'ms', 2000);
  const src = ip4(a.src);
  const dst = ip4(a.dst);
  if (impl === 'addon') {
    const pool = new FramePool(Math.max(batch, 64));
    const port = native.openRaw({ proto: 4 });
    for (let i = 0; i < batch; i++) {
      ipipPacket(pool.bytes, pool.start(i), src, dst, len);
      pool.len[i] = len;
      pool.addr[i] = dst;
      pool.txList[i] = i;
    }
    out({ ready: true });
    const r = addonSendLoop(port, batch, ms);
    native.close(port);
    return { mode: 'raw-send', impl, batch, ...r };
  }
  // eslint-disable-next-line @typescript-eslint/no-var-requires
  const raw = require('raw-socket');
  const sock = raw.createSocket({ protocol: 4 });
  // Same packet as the addon: we write the outer IPv4 header ourselves (IP_HDRINCL).
  sock.setOption(raw.SocketLevel.IPPROTO_IP, raw.SocketOption.IP_HDRINCL, 1);
  sock.on('error', () => { /* counted per send through the callback */ });
  sock.pauseRecv(); // send-only: the receive watcher would only add wake-ups
  const buf = Buffer.alloc(len);
  ipipPacket(buf, 0, src, dst, len);
  out({ ready: true });
  const r = await callbackSendLoop(ms, (cb) => sock.send(buf, 0, len, a.dst, (err: Error | null) => cb(err)));
  sock.close();
  return { mode: 'raw-send', impl, batch: 1, ...r };
}

function pktSend(a: Args): SendResult {
  const len = num(a, 'len', 64);
  const batch = num(a, 'batch', 64);
  const ms = num(a, 'ms', 2000);
  const mac = a.dstmac.split(':').map((x) => parseInt(x, 16));
  const pool = new FramePool(Math.max(batch, 64));
  // send-only: a filter that accepts nothing, so nothing queues on this socket
  const dropAll = new Uint8Array(8);
  new DataView(dropAll.buffer).setUint16(0, 0x06, true); // BPF_RET|BPF_K, k = 0
  const port = native.openPacket(a.ifname, { ring: false, bpf: dropAll });
  for (let i = 0; i < batch; i++) {
    const o = pool.start(i);
    pool.bytes.set(mac, o);
    pool.bytes.set([2, 0, 0, 0, 0xa0, 1], o + 6);
    pool.bytes[o + 12] = 0x88; pool.bytes[o + 13] = 0xb5; // IEEE local experimental ethertype
    for (let k = 14; k < len; k++) pool.bytes[o + k] = (i + k) & 255;
    pool.len[i] = len;
    pool.txList[i] = i;
  }
  out({ ready: true });
  const r = addonSendLoop(port, batch, ms);
  native.close(port);
  return { mode: 'pkt-send', impl: 'addon', batch, ...r };
}

/**
 * Commands from the parent, one per stdin line: `snap` prints {"snap": counters} and goes on,
 * `stop` (or stdin closing) ends the run. `maxMs` is a hard stop.
 */
function commands(maxMs: number, snap: () => unknown): { stopped: () => boolean; done: Promise<void> } {
  let stop = false;
  let buf = '';
  const done = new Promise<void>((res) => {
    const fin = () => { stop = true; res(); };
    process.stdin.setEncoding('utf8');
    process.stdin.on('data', (s: string) => {
      buf += s;
      let i: number;
      while ((i = buf.indexOf('\n')) >= 0) {
        const cmd = buf.slice(0, i).trim();
        buf = buf.slice(i + 1);
        if (cmd === 'snap') out({ snap: snap() });
        else if (cmd === 'stop') fin();
      }
    });
    process.stdin.on('end', fin);
    process.stdin.on('error', fin);
    setTimeout(fin, maxMs).unref();
  });
  process.stdin.resume();
  return { stopped: () => stop, done };
}

const ACCEPT_88B5 = (() => {
  // ldh [12]; jeq #0x88b5 ? accept : drop  (only the generator's frames count)
  const b = new Uint8Array(32);
  const dv = new DataView(b.buffer);
  const ins = (i: number, code: number, jt: number, jf: number, k: number) => {
    dv.setUint16(i * 8, code, true); b[i * 8 + 2] = jt; b[i * 8 + 3] = jf; dv.setUint32(i * 8 + 4, k, true);
  };
  ins(0, 0x28, 0, 0, 12); ins(1, 0x15, 0, 1, 0x88b5); ins(2, 0x06, 0, 0, 0x40000); ins(3, 0x06, 0, 0, 0);
  return b;
})();

async function recv(a: Args): Promise<unknown> {
  const kind = a.kind;
  const impl = a.impl ?? 'addon';
  const batch = num(a, 'batch', 64);
  const maxMs = num(a, 'maxms', 20000);
  const rcvbuf = num(a, 'rcvbuf', 0);
  const drive = a.drive ?? (kind === 'udp' || kind === 'raw' ? 'poll' : 'spin');
  const t0 = performance.now();
  if (impl === 'dgram') {
    const sock = dgram.createSocket({ type: 'udp4', recvBufferSize: rcvbuf || undefined });
    let count = 0;
    sock.on('message', () => { count++; });
    await new Promise<void>((res, rej) => { sock.once('error', rej); sock.bind(num(a, 'port'), a.addr, () => res()); });
    const got = rcvbuf ? sock.getRecvBufferSize() : 0;
    out({ ready: true });
    await commands(maxMs, () => ({ count })).done;
    sock.close();
    return { mode: 'recv', kind, impl, batch: 1, count, rcvbufGranted: got, ms: performance.now() - t0 };
  }
  const pool = new FramePool(Math.max(batch, 64) * 2);
  let port: number;
  if (kind === 'udp') port = native.openUdp({ addr: ip4(a.addr), port: num(a, 'port'), rcvbuf });
  else if (kind === 'raw') port = native.openRaw({ proto: 4, addr: a.addr ? ip4(a.addr) : 0, rcvbuf });
  else if (kind === 'packet') port = native.openPacket(a.ifname, { ring: a.ring !== '0', ringVersion: a.ring === '2' ? 2 : 3, bpf: ACCEPT_88B5, rcvbuf });
  else if (kind === 'tap') port = native.openTap(a.ifname);
  else throw new Error(`recv: kind=${kind}?`);
  let count = 0;
  let calls = 0;
  let errors = 0;
  let lastError: string | undefined;
  const drain = () => {
    // bounded: at most 64 batches per wake-up or slice step
    for (let round = 0; round < 64; round++) {
      let n = 0;
      try {
        n = native.recv(port, 0, batch);
      } catch (e) {
        errors++;
        lastError = (e as NodeJS.ErrnoException).code ?? String(e);
        return;
      }
      calls++;
      if (n === 0) return;
      count += n;
    }
  };
  out({ ready: true });
  const stop = commands(maxMs, () => ({ count, calls }));
  if (drive === 'poll') {
    native.poll(port, drain);
    await stop.done;
    native.unpoll(port);
  } else {
    // spin: recv in a tight loop, in 2 ms slices so the stop signal from stdin gets through
    while (!stop.stopped()) {
      const sliceEnd = performance.now() + 2;
      while (performance.now() < sliceEnd) drain();
      await new Promise((r) => setImmediate(r));
    }
  }
  drain();
  const st = native.stats(port);
  native.close(port);
  return {
    mode: 'recv', kind, impl, batch, ring: kind === 'packet' ? a.ring !== '0' : undefined, drive,
    count, calls, errors, lastError, stats: st, ms: performance.now() - t0,
  };
}

async function main(): Promise<void> {
  const { mode, a } = parse(process.argv.slice(2));
  let r: unknown;
  if (mode === 'udp-send') r = await udpSend(a);
  else if (mode === 'raw-send') r = await rawSend(a);
  else if (mode === 'pkt-send') r = pktSend(a);
  else if (mode === 'recv') r = await recv(a);
  else throw new Error(`io-peer: unknown mode ${mode}`);
  out({ result: r });
  process.exit(0);
}

main().catch((e) => {
  out({ error: String((e as Error)?.stack ?? e), code: (e as NodeJS.ErrnoException)?.code });
  process.exit(1);
});
