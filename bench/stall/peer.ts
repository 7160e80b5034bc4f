/**
 * The two ends of the forwarding-stall benchmark's stream (bench/stall/run.ts), each run inside a
 * pod namespace with `ip netns exec`:
 *
 *   node peer.js send DST_IP PORT PPS SECONDS
 *     UDP datagrams at a fixed rate to DST_IP:PORT. Payload (16 B): u32 sequence number, u32
 *     magic, f64 send time in ms on the monotonic clock (process.hrtime, CLOCK_MONOTONIC: the same
 *     clock in every process and namespace of the machine). Stops after SECONDS or on SIGTERM.
 *   node peer.js recv BIND_IP PORT OUT_FILE SECONDS
 *     Receives the stream and appends one 20-byte record per datagram to OUT_FILE: u32 sequence,
 *     f64 send time, f64 arrival time (ms, monotonic). Records are flushed every 50 ms, so the
 *     benchmark can read the file while the stream runs. Stops after SECONDS or on SIGTERM.
 *
 * Only ever sends to the address it is given (the benchmark's own pod namespace).
 */
import * as dgram from 'node:dgram';
import { openSync, writeSync, closeSync } from 'node:fs';

export const MAGIC = 0x73746c6c; // "stll"
export const RECORD_BYTES = 20;
const nowMs = () => Number(process.hrtime.bigint()) / 1e6;

function send(dst: string, port: number, pps: number, seconds: number): void {
  const sock = dgram.createSocket('udp4');
  // A connected socket reports ICMP errors (port unreachable while the receiver starts, or a
  // route briefly missing): count them, keep sending.
  let errors = 0;
  sock.on('error', () => { errors++; });
  // Connected: send() skips the per-call address lookup and goes straight to the socket.
  sock.connect(port, dst, () => {
    const start = nowMs();
    const end = start + seconds * 1000;
    // A token bucket on a 2 ms tick, holding at most 10 ms of tokens: a late tick (this process
    // descheduled) loses its debt rather than turning into a burst.
    const cap = Math.max(1, pps / 100);
    let tokens = 0;
    let last = start;
    let seq = 0;
    let inFlight = 0;
    const tick = setInterval(() => {
      const t = nowMs();
      if (t >= end) return stop();
      tokens = Math.min(cap, tokens + ((t - last) * pps) / 1000);
      last = t;
      for (; tokens >= 1 && inFlight < 256; tokens--) {
        // A fresh buffer per datagram: libuv may hand the bytes to the kernel after send()
        // returns (it queues the request when the socket is busy), so a shared one could change.
        const buf = Buffer.allocUnsafe(16);
        buf.writeUInt32LE(seq, 0);
        buf.writeUInt32LE(MAGIC, 4);
        buf.writeDoubleLE(nowMs(), 8);
        seq++;
        inFlight++;
        sock.send(buf, () => { inFlight--; });
      }
    }, 2);
    const stop = () => {
      clearInterval(tick);
      process.stdout.write(JSON.stringify({ sent: seq, errors, seconds: (nowMs() - start) / 1000 }) + '\n');
      sock.close();
    };
    process.once('SIGTERM', stop);
  });
}

function recv(bind: string, port: number, outFile: string, seconds: number): void {
  const fd = openSync(outFile, 'a');
  const sock = dgram.createSocket({ type: 'udp4', recvBufferSize: 8 << 20 });
  // Records accumulate here and go to the file in one write per flush.
  const pending = Buffer.alloc(RECORD_BYTES * 65536);
  let used = 0;
  let received = 0;
  const flush = () => {
    if (used > 0) writeSync(fd, pending, 0, used);
    used = 0;
  };
  sock.on('message', (msg) => {
    const t = nowMs();
    if (msg.length < 16 || msg.readUInt32LE(4) !== MAGIC) return;
    if (used + RECORD_BYTES > pending.length) flush();
    pending.writeUInt32LE(msg.readUInt32LE(0), used);
    pending.writeDoubleLE(msg.readDoubleLE(8), used + 4);
    pending.writeDoubleLE(t, used + 12);
    used += RECORD_BYTES;
    received++;
  });
  const timer = setInterval(flush, 50);
  const stop = () => {
    clearInterval(timer);
    clearTimeout(limit);
    flush();
    closeSync(fd);
    process.stdout.write(JSON.stringify({ received }) + '\n');
    sock.close();
  };
  const limit = setTimeout(stop, seconds * 1000);
  process.once('SIGTERM', stop);
  sock.bind(port, bind, () => process.stdout.write('ready\n'));
}

if (require.main === module) {
  const [mode, a, b, c, d] = process.argv.slice(2);
  if (mode === 'send') send(a, Number(b), Number(c), Number(d));
  else if (mode === 'recv') recv(a, Number(b), c, Number(d));
  else {
    process.stderr.write('usage: peer.js send DST_IP PORT PPS SECONDS | recv BIND_IP PORT OUT_FILE SECONDS\n');
    process.exit(2);
  }
}
