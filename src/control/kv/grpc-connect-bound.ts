// Bounds on grpc-js's connection attempts (the grpc-js etcd3 runs on, node_modules/@grpc/grpc-js
// build/src/transport.js, Http2SubchannelConnector), for the channels that ask for them with two
// channel options of ours; any other channel connects as grpc-js does.
//
// grpc-js 1.14 has no connect timeout: Http2SubchannelConnector.connect() makes one net.connect()
// without a bound, then the TLS handshake and the HTTP/2 preface, and the subchannel waits for that
// one attempt however long it takes (grpc.initial/max_reconnect_backoff_ms only space attempts that
// failed; keepalive runs on a connection that is up). After a cut that dropped packets the attempt
// under way connects only at the kernel's next SYN retransmission (tcp-dial.ts). So:
//   CONNECT_RETRY_OPTION (ms)    the TCP connection is made by dialTcp: a socket unanswered this
//                                long is replaced by a new one at once (a fresh SYN);
//   CONNECT_ATTEMPT_OPTION (ms)  the whole attempt (TCP, TLS, HTTP/2 settings) fails after this long
//                                with "connect ETIMEDOUT ADDR (no connection within MS ms)" (a path
//                                cut after the SYN was answered, a server that accepts TCP and says
//                                nothing); grpc-js then tries again after its backoff, as after any
//                                failed attempt.
// A channel through an HTTP CONNECT proxy (grpc.http_connect_target) keeps grpc-js's own TCP
// connection (to the proxy), with the bound on the whole attempt.
// On those channels, a plain (http://) connection closed or reset by the server before HTTP/2 was
// up (grpc-js: "Failed to connect", "read ECONNRESET": what an etcd serving TLS does with a plain
// preface) asks the endpoint for a TLS handshake (tcp-dial.ts speaksTls, bounded), and one that
// speaks TLS fails the attempt with TLS_ON_HTTP instead, as EtcdLiteKv's connection does: the
// calls' errors and a watch's status then say "an https:// etcd given as http://" (etcd-failover.ts
// notEtcdAnswer), not "Failed to connect" (podway run, once past its start, retried it as an outage).
//
// The two methods of the connector's prototype are wrapped once per thread (each loads its own
// grpc-js), keeping grpc-js's own code for everything else; the shape relied on is checked when
// installed, and a grpc-js that changed it is refused loudly at start (as etcd-watch-guard.ts does
// for etcd3).
import { createRequire } from 'node:module';
import type { Socket } from 'node:net';
import { connectTimedOut, dialTcp, speaksTls, TLS_ON_HTTP, TLS_PROBE_MS } from './tcp-dial';
import { loopTimer } from '../../util/loop-time';

export const CONNECT_RETRY_OPTION = 'podway.connect_retry_ms';
export const CONNECT_ATTEMPT_OPTION = 'podway.connect_attempt_ms';

type Options = Record<string, unknown>;
interface Address { host?: unknown; port?: unknown }
interface ConnectorShape {
  /** The HTTP/2 session being set up (grpc-js sets it in createSession, clears it once up). */
  session?: { destroy(): void } | null;
  tcpConnect(address: Address, options: Options): Promise<Socket>;
  connect(address: Address, secureConnector: unknown, options: Options): Promise<{ shutdown(): void }>;
  createSession(secureConnectResult: { secure?: unknown }, address: Address, options: Options): Promise<unknown>;
}

/** The attempt under way on a connector (one at a time per subchannel). */
interface AttemptState {
  readonly abort: AbortController;
  socket?: Socket;
}
const attempts = new WeakMap<ConnectorShape, AttemptState>();
let installed = false;
let attemptsTimedOut = 0;

/** Connection attempts that ran out their CONNECT_ATTEMPT_OPTION bound in this thread (tests, diagnostics). */
export function connectAttemptsTimedOut(): number {
  return attemptsTimedOut;
}

const positive = (v: unknown): v is number => typeof v === 'number' && Number.isFinite(v) && v > 0;

/** Installs the bounds once per thread (etcd-kv.ts does at load). Throws if grpc-js's shape changed. */
export function installGrpcConnectBound(): void {
  if (installed) return;
  const transport = createRequire(require.resolve('etcd3'))('@grpc/grpc-js/build/src/transport') as { Http2SubchannelConnector?: { prototype: ConnectorShape } };
  const proto = transport.Http2SubchannelConnector?.prototype;
  if (!proto || typeof proto.tcpConnect !== 'function' || typeof proto.connect !== 'function' || typeof proto.createSession !== 'function') {
    throw new Error('@grpc/grpc-js changed: build/src/transport.js has no Http2SubchannelConnector.tcpConnect/connect/createSession (src/control/kv/grpc-connect-bound.ts needs review)');
  }
  const tcpConnect = proto.tcpConnect;
  const connect = proto.connect;
  const createSession = proto.createSession;

  proto.createSession = function (this: ConnectorShape, secureConnectResult: { secure?: unknown }, address: Address, options: Options): Promise<unknown> {
    const made = createSession.call(this, secureConnectResult, address, options);
    const { host, port } = address;
    if (!positive(options[CONNECT_ATTEMPT_OPTION]) || secureConnectResult?.secure !== false || typeof host !== 'string' || typeof port !== 'number') return made;
    return made.catch(async (reason: unknown) => {
      // grpc-js rejects with its words and a time: "Failed to connect (2026-...Z)"
      if (!/^(Failed to connect|read ECONNRESET|Connection closed before starting HTTP\/2 handshake)\b/.test(String(reason))) throw reason;
      if (await speaksTls(host, port, TLS_PROBE_MS)) throw `${TLS_ON_HTTP} (${new Date().toISOString()})`;
      throw reason;
    });
  };

  proto.tcpConnect = function (this: ConnectorShape, address: Address, options: Options): Promise<Socket> {
    const retryMs = options[CONNECT_RETRY_OPTION];
    const { host, port } = address;
    if (!positive(retryMs) || 'grpc.http_connect_target' in options || typeof host !== 'string' || typeof port !== 'number') {
      return tcpConnect.call(this, address, options);
    }
    const attempt = attempts.get(this);
    return dialTcp(host, port, retryMs, attempt?.abort.signal).then((socket) => {
      if (attempt) attempt.socket = socket;
      return socket;
    });
  };

  proto.connect = function (this: ConnectorShape, address: Address, secureConnector: unknown, options: Options): Promise<{ shutdown(): void }> {
    const ms = options[CONNECT_ATTEMPT_OPTION];
    if (!positive(ms)) return connect.call(this, address, secureConnector, options);
    const attempt: AttemptState = { abort: new AbortController() };
    attempts.set(this, attempt);
    let timer: { cancel(): void } | undefined;
    let expired = false;
    const made = connect.call(this, address, secureConnector, options);
    // Counted in the time the loop got to run (util/loop-time.ts), after a poll phase: a loop held
    // for seconds (a start on a loaded machine) does not fail an attempt whose answer came meanwhile.
    const bound = new Promise<never>((_, reject) => {
      timer = loopTimer(ms, () => {
        expired = true;
        attemptsTimedOut++;
        const e = typeof address.host === 'string'
          ? connectTimedOut(address.host, Number(address.port), ms)
          : Object.assign(new Error(`connect ETIMEDOUT ${String((address as { path?: unknown }).path)} (no connection within ${ms} ms)`), { code: 'ETIMEDOUT' });
        // Ends the attempt where it is: the dial (dialTcp closes its socket), the TLS handshake or
        // the HTTP/2 preface (the socket, the session). grpc-js's own promise then fails too.
        attempt.abort.abort(e);
        attempt.socket?.destroy();
        this.session?.destroy();
        reject(e);
      });
    });
    // Connected just as the bound ran out: that connection is nobody's, closed.
    made.then((t) => { if (expired) t.shutdown(); }, () => undefined);
    return Promise.race([made, bound]).finally(() => {
      timer?.cancel();
      if (attempts.get(this) === attempt) attempts.delete(this);
    });
  };
  // A subchannel no channel holds any more (refcount 0: etcd3's resetAllServices closed the service
  // clients of a host after a failed call, and grpc-js's pool dropped it) goes IDLE only from
  // CONNECTING or READY: one in TRANSIENT_FAILURE (its member refused) keeps its backoff timer and
  // connects again when it ends, for nobody, until its member answers, and that connection is then
  // never closed (docs/datastores.md, "Connections to each member"). So at refcount 0 it is told
  // to stop: the backoff's end takes it to IDLE.
  const subchannelMod = createRequire(require.resolve('etcd3'))('@grpc/grpc-js/build/src/subchannel') as { Subchannel?: { prototype: SubchannelShape } };
  const sub = subchannelMod.Subchannel?.prototype;
  if (!sub || typeof sub.unref !== 'function' || typeof sub.handleBackoffTimer !== 'function') {
    throw new Error('@grpc/grpc-js changed: build/src/subchannel.js has no Subchannel.unref/handleBackoffTimer (src/control/kv/grpc-connect-bound.ts needs review)');
  }
  const unref = sub.unref;
  sub.unref = function (this: SubchannelShape): void {
    unref.call(this);
    if (this.refcount === 0) {
      this.continueConnecting = false;
      subchannelsReleased++;
    }
  };
  installed = true;
}

interface SubchannelShape {
  refcount: number;
  continueConnecting: boolean;
  unref(): void;
  handleBackoffTimer(): void;
}
let subchannelsReleased = 0;

/** Subchannels no channel held any more, told to stop connecting, in this thread (tests, diagnostics). */
export function grpcSubchannelsReleased(): number {
  return subchannelsReleased;
}
