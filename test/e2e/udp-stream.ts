/**
 * A steady UDP stream between two pods, for measuring forwarding gaps (a benchmark/test peer, run
 * inside a pod's namespace as a child process):
 *   node udp-stream.js send DST_IP PORT RATE_PPS SECONDS [SRC_PORT]
 *   node udp-stream.js recv PORT SECONDS
 * Each datagram carries a 32-bit sequence number. The sender keeps the schedule (it sends what is
 * due every 2 ms, so a slow tick does not lower the rate). The receiver prints, when it ends
 * (after SECONDS or on SIGTERM), one JSON line: {received, arrivals: [[seq, epochMs], ...]}, with
 * epoch milliseconds (performance.timeOrigin + now()) so the test can line them up with its own
 * clock. Neither end loses the stream's tail: the sender closes once its sends are done, the
 * receiver on SIGTERM reads until nothing arrived for 300 ms.
 */
import * as dgram from 'node:dgram';
import { performance } from 'node:perf_hooks';

const epochMs = () => performance.timeOrigin + performance.now();

function send(dst: string, port: number, rate: number, seconds: number, srcPort?: number): void {
  const sock = dgram.createSocket('udp4');
  // a given source port: the test knows the flow (which forwarding thread steers it: steer.ts)
  if (srcPort) sock.bind(srcPort);
  const t0 = performance.now();
  let seq = 0;
  let inFlight = 0; // sends not done yet
  const total = Math.round(rate * seconds);
  const timer = setInterval(() => {
    const due = Math.min(total, Math.floor(((performance.now() - t0) / 1000) * rate));
    while (seq < due) {
      // A buffer per datagram: dgram sends asynchronously, so a reused one would be rewritten
      // before it leaves (duplicate sequence numbers). A test peer, not a hot path.
      const buf = Buffer.alloc(64);
      buf.writeUInt32BE(seq++, 0);
      inFlight++;
      sock.send(buf, port, dst, () => inFlight--);
    }
    if (seq >= total) {
      clearInterval(timer);
      // closed once every send is done (a send the socket's full buffer made wait would be
      // cancelled by the close, counted nowhere), 5 s at most
      const end = Date.now() + 5000;
      const close = setInterval(() => {
        if (inFlight > 0 && Date.now() < end) return;
        clearInterval(close);
        sock.close();
      }, 20);
    }
  }, 2);
}

function recv(port: number, seconds: number): void {
  // A large receive buffer (capped by net.core.rmem_max) so that a receiver the host does not
  // schedule for a while drops less; what it still drops the kernel counts (Udp RcvbufErrors),
  // and the test tells those from the dataplane's losses.
  const sock = dgram.createSocket({ type: 'udp4', recvBufferSize: 4 << 20 });
  const seqs: number[] = [];
  const times: number[] = [];
  sock.on('message', (m) => {
    if (m.length < 4) return;
    seqs.push(m.readUInt32BE(0));
    times.push(epochMs());
  });
  let done = false;
  const finish = () => {
    if (done) return;
    done = true;
    sock.close();
    process.stdout.write(JSON.stringify({ received: seqs.length, arrivals: seqs.map((s, k) => [s, Math.round(times[k] * 1000) / 1000]) }) + '\n');
  };
  sock.bind(port, () => process.stdout.write('ready\n'));
  setTimeout(finish, seconds * 1000);
  // SIGTERM (the sender is done): what is still on its way or waiting in the socket (a receiver
  // a loaded host has not scheduled for a while) is read first: the end once nothing arrived for
  // 300 ms, 5 s at most. Closing at once lost that tail, counted nowhere.
  process.once('SIGTERM', () => {
    const end = Date.now() + 5000;
    const quiet = setInterval(() => {
      if (epochMs() - (times.length ? times[times.length - 1] : 0) < 300 && Date.now() < end) return;
      clearInterval(quiet);
      finish();
    }, 50);
  });
}

const [mode, ...args] = process.argv.slice(2);
if (mode === 'send') send(args[0], Number(args[1]), Number(args[2]), Number(args[3]), args[4] ? Number(args[4]) : undefined);
else if (mode === 'recv') recv(Number(args[0]), Number(args[1]));
else {
  process.stderr.write('usage: udp-stream send DST PORT RATE SECONDS | recv PORT SECONDS\n');
  process.exit(2);
}
