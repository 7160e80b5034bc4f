// Making the TCP connection to an etcd member, for both etcd clients (EtcdKv through its gRPC
// connector, grpc-connect-bound.ts; EtcdLiteKv directly). Loads neither etcd3 nor gRPC.
//
// Why not one net.connect(): a connection attempt whose SYN nobody answers (the path cut by a
// firewall that drops packets, a link down, a member's host frozen) is left to the kernel, which
// sends the SYN again 1, 3, 7, 15, 31 and 63 s after the first and gives up after ~127 s
// (tcp_syn_retries 6; since Linux 6.5 by default 1, 2, 3, 4, 6 and 10 s, giving up after ~18 s:
// tcp_syn_linear_timeouts 4). When the path comes back, that attempt connects only at its next
// retransmission: up to 32 s later (8 s with the newer default). Nothing else connects meanwhile:
// grpc-js makes one attempt at a time and has no bound on it (no connect timeout option; gRPC's
// 20 s "min connect timeout" is not in grpc-js 1.14), and calls wait for it.
//
// So a socket that has not connected after `retryMs` is closed and a new one dialled at once (its
// own SYN, then its own retransmission 1 s later): with retryMs 2000 a SYN leaves about every
// second while the path is cut, and the connection comes up about a second after it is back. A
// reachable member connects in one round trip; a lost SYN is sent again by the kernel after 1 s,
// before the socket is given up. A refusal or an unreachable host (ICMP) ends the dial at once with
// its error, as one net.connect would. Whether a socket connected is looked at after the poll phase
// that would have reported it (setImmediate after the timer): a process short of CPU, whose timer
// and connection are both due when it gets to run, keeps the connection it made.
import { connect as netConnect, isIP, Socket } from 'node:net';
import { connect as tlsConnect } from 'node:tls';

/** A socket with no connection after this long is closed and another dialled at once. */
export const CONNECT_RETRY_MS = 2000;

let redials = 0;

/** How many sockets this thread closed for want of an answer and dialled again (tests, diagnostics). */
export function tcpRedials(): number {
  return redials;
}

/** Node's words for a connect that timed out, with how long it was given. */
export function connectTimedOut(host: string, port: number, ms: number): Error {
  const target = host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
  return Object.assign(new Error(`connect ETIMEDOUT ${target} (no connection within ${ms} ms)`), { code: 'ETIMEDOUT' });
}

/**
 * A connected TCP socket to host:port, dialled again every `retryMs` while unanswered (see the
 * module comment). Rejects with the first socket error (refused, unreachable), or with the reason
 * `abort` is aborted with (its caller's bound on the whole attempt), closing the socket under way.
 * `unref`: the dial does not keep the process alive (its sockets and timers unref'd, and so the
 * socket it resolves with), as an unref'd HTTP/2 session's connection does not.
 */
export function dialTcp(host: string, port: number, retryMs: number, abort?: AbortSignal, unref = false): Promise<Socket> {
  return new Promise<Socket>((resolve, reject) => {
    let current: Socket | null = null;
    let timer: NodeJS.Timeout | undefined;
    let done = false;
    const finish = (): void => {
      done = true;
      clearTimeout(timer);
      abort?.removeEventListener('abort', onAbort);
    };
    function onAbort(): void {
      if (done) return;
      finish();
      current?.destroy();
      reject(abort!.reason instanceof Error ? abort!.reason : new Error(String(abort!.reason)));
    }
    const dial = (): void => {
      const s = netConnect({ host, port });
      if (unref) s.unref();
      current = s;
      // a socket given up may still report its end: nobody listens for it but this
      s.on('error', (e: Error) => {
        if (done || s !== current) return;
        finish();
        s.destroy();
        reject(e);
      });
      s.once('connect', () => {
        if (done || s !== current) return;
        finish();
        s.removeAllListeners('error');
        resolve(s);
      });
      timer = setTimeout(() => setImmediate(() => {
        if (done || s !== current || !s.connecting) return;
        redials++;
        s.removeAllListeners('error').on('error', () => undefined);
        s.destroy();
        dial();
      }), retryMs);
      if (unref) timer.unref();
    };
    if (abort?.aborted) {
      done = true;
      reject(abort.reason instanceof Error ? abort.reason : new Error(String(abort.reason)));
      return;
    }
    abort?.addEventListener('abort', onAbort, { once: true });
    dial();
  });
}

/** How long an http:// endpoint that closed before HTTP/2 was up is given to answer TLS (speaksTls). */
export const TLS_PROBE_MS = 2000;
/**
 * What such an endpoint that does answer TLS failed with, in both clients (etcd-failover.ts
 * notEtcdAnswer knows it): EtcdLiteKv's connection, grpc-js's for EtcdKv (grpc-connect-bound.ts).
 */
export const TLS_ON_HTTP = 'it closed the plain HTTP/2 connection before it was up, and it speaks TLS';

/**
 * Whether host:port answers a TLS handshake (its certificate not checked: nothing is sent over it),
 * within `ms`: for an http:// endpoint that closed the connection before HTTP/2 was up, which is
 * what etcd serving TLS does with a plain HTTP/2 preface (it closes without a byte), to say that
 * rather than "closed". A handshake completed, or a TLS alert from the server (one refusing a client
 * without a certificate), is TLS; a refusal, a close, a timeout or bytes that are not TLS are not.
 */
export function speaksTls(host: string, port: number, ms: number): Promise<boolean> {
  return new Promise<boolean>((resolve) => {
    let done = false;
    const socket = tlsConnect({ host, port, rejectUnauthorized: false, ALPNProtocols: ['h2'], servername: isIP(host) === 0 ? host : undefined });
    socket.unref();
    const end = (yes: boolean): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      socket.destroy();
      resolve(yes);
    };
    const timer = setTimeout(() => end(false), ms);
    timer.unref();
    socket.once('secureConnect', () => end(true));
    socket.on('error', (e: Error) => end(/\balert\b/i.test(e.message)));
    socket.once('close', () => end(false));
  });
}
