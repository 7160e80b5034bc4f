// KvStore on etcd v3 for a short-lived process (the CNI plugin, the CLI's datastore commands:
// kv/open.ts decides, 'command'): the same calls as EtcdKv
// (etcd-kv.ts) for get, list, create, update and delete, the same transactions, deadlines,
// failover and errors, but spoken straight over node:http2 with etcd's messages encoded by hand
// (etcd-proto.ts), without the etcd3 client, grpc-js and protobufjs. Those cost a fresh process
// ~0.3 CPU-s and ~20 MB to load (etcd3 parses etcd's .proto files with protobufjs every time it is
// loaded, and builds its services on that), more than everything else a CNI DEL does (docs/cni.md,
// "The plugin's etcd client"; bench/README.md, "What one call costs"). No watch: podway run and everything that
// watches or lives long use EtcdKv.
//
// What it keeps of EtcdKv, on purpose the same (both are tested against one etcd):
// - A call's deadline (timeoutMs) counts from when a connection is up; making the connection has
//   its own bound (connectTimeoutMs), and a refused or unreachable endpoint fails at once. A
//   connection is up when the server's HTTP/2 SETTINGS arrived (a stopped etcd's kernel still
//   accepts the TCP connection): all endpoints are dialled at once, the first up serves.
// - The same bounds on connections (etcd-common.ts): the TCP connection dialled afresh every
//   CONNECT_RETRY_MS while unanswered (tcp-dial.ts), an attempt given up after CONNECT_ATTEMPT_MS
//   (or connectTimeoutMs if longer), and keepalive pings while calls are open (KEEPALIVE_TIME_MS),
//   also one at once after a call ran out its deadline on an open connection: unanswered, the
//   connection is dropped and the next call connects again.
// - Every call asks for a leader ("hasleader" metadata, clientv3.WithRequireLeader).
// - The same failover (etcd-failover.ts): each attempt on the best endpoint the call has not
//   tried (connected first, one that failed within HOST_COOLDOWN_MS or holds an overtaken attempt
//   last, at random among equals); a call that never reached etcd (no connection, "no leader", not
//   etcd) made again at once on the next; a read or a revision-guarded write unanswered after a
//   quarter of the deadline sent to the next member too, the first answer taken; the leaderless
//   asked again every NO_LEADER_RETRY_MS while the call's time lasts; a create's fence (etcd-fence.ts).
// - Errors: KvUnavailableError "etcd URLS unreachable (WHAT): REASON" (the cause as Node words it,
//   which is what EtcdKv extracts from grpc-js's text), KvSlowError for a deadline passed on an open
//   connection (the members named, with several), KvTlsRejectedError for a handshake refused for
//   its certificates (etcd-common.ts), KvNotEtcdError for an endpoint answering HTTP 404.
// - clusterIdSeen(): the cluster_id of the last get or list, as the same decimal text.
import * as http2 from 'node:http2';
import { isIP, Socket } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import { prefixRangeEnd } from './keys';
import { afterPoll, LoopBudget, loopTimer } from '../../util/loop-time';
import { monoNow } from '../../util/mono-clock';
import { EtcdAnswerTooLargeError, EtcdKvOptions, etcdSettings, HOST_COOLDOWN_MS, WrittenValue, KEEPALIVE_TIME_MS, KEEPALIVE_TIMEOUT_MS, LIST_PAGE_KEYS, ListPage, pagedList, quorumHint, readEtcdTls, requestTooLargeText, tlsRejection } from './etcd-common';
import { CONNECT_RETRY_MS, connectTimedOut, dialTcp, speaksTls, TLS_ON_HTTP, TLS_PROBE_MS } from './tcp-dial';
import { Attempt, CallKind, deadlineError, drawBest, etcdTimedOut, failover, FailoverCall, FailoverRules, HostState, hostRank, LEADER_PROBE_MS, leaderLostError, notEtcdAnswer, notEtcdText, outcomeUnknownText, overtakenUntil, slowMembers } from './etcd-failover';
import { copyLeft, FenceCounters, fencedCreate, newFenceCounters } from './etcd-fence';
import { checkBatch, KvBatchWrite, KvEntry, KvGuard, KvLeaseClaims, KvList, KvNotEtcdError, KvSlowError, KvStore, KvTlsRejectedError, KvUnavailableError, KvWatch } from './kv';
import {
  Compare,
  decodeDeleteRangeResponse,
  decodeLeaseGrantResponse,
  decodeLeaseKeepAliveResponse,
  decodeLeaseTimeToLiveResponse,
  decodeRangeResponse,
  decodeTxnResponse,
  encodeDeleteRange,
  encodeLeaseGrant,
  encodeLeaseKeepAlive,
  encodeLeaseRevoke,
  encodeLeaseTimeToLive,
  encodeRange,
  encodeTxn,
  KeyValue,
  ResponseHeader,
} from './etcd-proto';

/** gRPC status codes used here. */
const CANCELLED = 1;
const DEADLINE_EXCEEDED = 4;
const RESOURCE_EXHAUSTED = 8;
const UNAVAILABLE = 14;
/** The codes etcd3 counts as recoverable (its isRecoverableError), which EtcdKv reports as unreachable. */
const RECOVERABLE = new Set([1, 2, DEADLINE_EXCEEDED, 8, 10, 13, UNAVAILABLE]);
const CODE_NAMES = ['OK', 'CANCELLED', 'UNKNOWN', 'INVALID_ARGUMENT', 'DEADLINE_EXCEEDED', 'NOT_FOUND', 'ALREADY_EXISTS', 'PERMISSION_DENIED', 'RESOURCE_EXHAUSTED', 'FAILED_PRECONDITION', 'ABORTED', 'OUT_OF_RANGE', 'UNIMPLEMENTED', 'INTERNAL', 'UNAVAILABLE', 'DATA_LOSS', 'UNAUTHENTICATED'];

/**
 * The most writes (and reads) in one transaction of writeBatch (getMany): etcd's default
 * --max-txn-ops, which bounds a transaction's comparisons and its operations alike.
 */
export const ETCD_MAX_TXN_OPS = 128;

/** How long close() waits for a connection's graceful end (etcd's answer to GOAWAY) before destroying it. */
const CLOSE_WAIT_MS = 1000;

/** A gRPC status other than OK, from etcd or for a call that failed on its way. */
class GrpcError extends Error {
  /**
   * @param sent a deadline only: whether the call was written to a connection (false: it waited
   * for one that never came up).
   */
  constructor(readonly code: number, readonly details: string, readonly sent?: boolean) {
    super(`${code} ${CODE_NAMES[code] ?? 'UNKNOWN'}: ${details}`);
  }
}

/** The endpoint had no connection (refused, unreachable, TLS handshake failed): nothing was sent. */
class NoConnection extends Error {}


const noLeader = (e: unknown): boolean => e instanceof GrpcError && e.code === UNAVAILABLE && /etcdserver: no leader/.test(e.details);
const isDeadline = (e: unknown): boolean => e instanceof GrpcError && e.code === DEADLINE_EXCEEDED;
/** A deadline's: whether the call was written to a connection (undefined: not a deadline). */
const deadlineSent = (e: unknown): boolean | undefined => (e instanceof GrpcError && e.code === DEADLINE_EXCEEDED ? e.sent : undefined);
/**
 * An endpoint that answers, but not as etcd (etcd-failover.ts notEtcdAnswer): an HTTP status to
 * etcd's gRPC API (an HTTP/2 server), or no HTTP/2 at all (node:http2's "Protocol error": an HTTP/1
 * server; the connection then failed, NoConnection).
 */
const notEtcd = (e: unknown): boolean => (e instanceof GrpcError || e instanceof NoConnection) && notEtcdAnswer(e instanceof GrpcError ? e.details : e.message) !== null;

/** An answer larger than this client takes (unary: MAX_RECEIVE_BYTES): an answer, not an outage. */
const tooLarge = (e: unknown): boolean => e instanceof GrpcError && e.code === RESOURCE_EXHAUSTED && /Received message larger than max/.test(e.details);

/** Whether a failed call never reached etcd, so that another endpoint may be asked (EtcdKv's neverSent). */
const neverSent = (e: unknown): boolean => e instanceof NoConnection || noLeader(e) || notEtcd(e);

/** This client's errors as failover() reads them (as EtcdKv's). */
const RULES: FailoverRules = {
  neverSent,
  readAgain: (e) => e instanceof GrpcError && e.code === UNAVAILABLE,
  leaderless: (e, read) => noLeader(e) || (read && e instanceof GrpcError && e.code === UNAVAILABLE && /etcdserver: leader changed/.test(e.details)),
  unanswered: (e) => e instanceof GrpcError && RECOVERABLE.has(e.code) && !tooLarge(e) && requestTooLargeText(e.details) === null,
  deadline: isDeadline,
};

interface Tls {
  readonly ca: Buffer;
  readonly cert?: Buffer;
  readonly key?: Buffer;
}

/**
 * One endpoint's HTTP/2 connection, made when first needed and again after it failed or dropped.
 * Its TCP connection is dialled afresh every CONNECT_RETRY_MS while unanswered (tcp-dial.ts), and
 * the whole attempt (TCP, TLS, HTTP/2 settings) fails after `attemptMs` ("connect ETIMEDOUT"). Up,
 * it is pinged as grpc-js pings EtcdKv's (KEEPALIVE_TIME_MS while calls are open on it), and also
 * at once when a call on it ran out its deadline: no answer within KEEPALIVE_TIMEOUT_MS and it is
 * dropped (its calls end as "Connection dropped"), so the next call connects again instead of
 * waiting on a connection cut silently.
 */
class Connection implements HostState {
  state: 'idle' | 'connecting' | 'ready' | 'failed' = 'idle';
  session: http2.ClientHttp2Session | null = null;
  /** Why the last attempt failed (or the connection dropped). */
  error: Error | null = null;
  private failedAt = 0;
  /** Calls made from now on draw this endpoint last until then (several endpoints only). */
  downUntil = 0;
  /** Attempts still waiting here after another member answered their call (drawn last meanwhile). */
  overtaken = 0;
  private readonly changed = new Set<() => void>();
  /** The attempt under way (its dial and its bound), ended by close(). */
  private attempt: { abort: AbortController; timer: { cancel(): void } } | null = null;
  /** Calls open on the session, and the keepalive timer while there are any. */
  private calls = 0;
  private keepalive: NodeJS.Timeout | undefined;
  /** A PING under way (its timeout). */
  private pinging: NodeJS.Timeout | undefined;
  /** The TLS probe under way (gone()), dropped by close(). */
  private probe: object | null = null;

  constructor(readonly url: string, private readonly tls: Tls | null, private readonly attemptMs: number) {}

  /** Starts connecting unless connected, connecting, or failed within HOST_COOLDOWN_MS (grpc-js waits ~1 s too). */
  start(): void {
    if (this.state === 'ready' || this.state === 'connecting') return;
    if (this.state === 'failed' && monoNow() - this.failedAt < HOST_COOLDOWN_MS) return;
    const u = new URL(this.url);
    const host = u.hostname.replace(/^\[(.*)\]$/, '$1');
    const port = Number(u.port);
    this.state = 'connecting';
    this.error = null;
    const abort = new AbortController();
    const attempt = {
      abort,
      // counted in time the loop got to run (loop-time.ts): a start that held the loop longer
      // than the bound does not give up a connection that came up meanwhile
      timer: loopTimer(this.attemptMs, () => {
        const e = connectTimedOut(host, port, this.attemptMs);
        abort.abort(e);
        if (this.attempt !== attempt) return;
        // past the TCP connection (TLS, HTTP/2 settings): the session goes, saying why
        this.error ??= e;
        const session = this.session;
        if (session) this.gone(session);
      }),
    };
    this.attempt = attempt;
    const over = (): void => {
      attempt.timer.cancel();
      if (this.attempt === attempt) this.attempt = null;
    };
    // unref'd: a process whose calls are done does not wait for a dial (its open calls' timers
    // keep it running while they wait)
    dialTcp(host, port, CONNECT_RETRY_MS, abort.signal, true).then(
      (socket) => {
        if (this.attempt !== attempt) {
          socket.destroy(); // closed meanwhile
          return;
        }
        this.handshake(socket, u, host, over);
      },
      (e: Error) => {
        if (this.attempt !== attempt) return; // closed meanwhile
        over();
        this.fail(e);
      },
    );
  }

  /** The attempt failed before a session existed (refused, unreachable, no connection within its bound). */
  private fail(e: Error): void {
    this.state = 'failed';
    this.failedAt = monoNow();
    this.error = e;
    this.notify();
  }

  /** TLS if https, then the HTTP/2 session over the TCP connection `tcp`. */
  private handshake(tcp: Socket, u: URL, host: string, over: () => void): void {
    const tls = this.tls;
    const secure = u.protocol === 'https:';
    let session: http2.ClientHttp2Session;
    session = http2.connect(`${secure ? 'https' : 'http'}://${u.host}`, {
      // The socket is ours: for TLS, no SNI when the endpoint is an IP address (RFC 6066; Node
      // warns for it), as EtcdKv does; the server certificate is checked against the host all the same.
      createConnection: (): Socket => {
        const socket = secure
          ? tlsConnect({ socket: tcp, host, ca: tls?.ca, cert: tls?.cert, key: tls?.key, servername: isIP(host) === 0 ? host : undefined, ALPNProtocols: ['h2'] })
          : tcp;
        // A TLS alert after the handshake (etcd refusing our client certificate) fails the socket
        // without a word from the session, which then never closes (Node 20): gone() destroys it.
        socket.on('error', (e: Error) => {
          if (this.session !== session) return;
          this.error ??= e;
          this.gone(session);
        });
        return socket;
      },
    });
    this.session = session;
    // Open calls keep the process running (their deadline timers), an idle connection does not.
    session.unref();
    session.once('remoteSettings', () => {
      if (this.session !== session) return;
      over();
      this.state = 'ready';
      this.notify();
    });
    // etcd going away (stopping, or closing an idle connection): calls from now on connect again.
    session.once('goaway', () => {
      if (this.session !== session) return;
      over();
      this.session = null;
      this.state = 'idle';
      this.stopKeepalive();
      this.notify();
    });
    session.on('error', (e: Error) => {
      if (this.session === session && this.error === null) this.error = e;
    });
    session.once('close', () => this.gone(session));
  }

  /** The session's end (closed, its socket failed, its attempt or a PING timed out). */
  private gone(session: http2.ClientHttp2Session): void {
    if (this.session !== session) return;
    this.session = null;
    this.stopKeepalive();
    if (this.state === 'connecting') {
      if (this.attempt) {
        this.attempt.timer.cancel();
        this.attempt = null;
      }
      const reset = (this.error as NodeJS.ErrnoException | null)?.code === 'ECONNRESET';
      if ((this.error === null || reset) && new URL(this.url).protocol === 'http:') {
        // Closed by the peer before HTTP/2 was up, without a word: etcd serving TLS does that
        // with a plain preface (a reset when the preface was still unread as it closed). Asked
        // once (bounded), to say so instead of "closed"; the connection stays 'connecting'
        // meanwhile (close() ends that, and the answer is dropped).
        if (!session.destroyed) session.destroy();
        const u = new URL(this.url);
        const probe = {};
        this.probe = probe;
        void speaksTls(u.hostname.replace(/^\[(.*)\]$/, '$1'), Number(u.port), TLS_PROBE_MS).then((tls) => {
          if (this.probe !== probe || this.state !== 'connecting' || this.session !== null) return;
          this.probe = null;
          this.state = 'failed';
          this.failedAt = monoNow();
          this.error = tls ? new Error(TLS_ON_HTTP) : (this.error ?? new Error('connection closed before it was up'));
          this.notify();
        });
        return;
      }
      this.state = 'failed';
      this.failedAt = monoNow();
      this.error ??= new Error('connection closed before it was up');
    } else {
      // Dropped after it was up: the next call connects again.
      this.state = 'idle';
    }
    if (!session.destroyed) session.destroy();
    this.notify();
  }

  /** A call opened on the session (keepalive runs while any is open). */
  callOpened(): void {
    if (this.calls++ === 0 && this.keepalive === undefined) {
      this.keepalive = setInterval(() => this.ping(), KEEPALIVE_TIME_MS);
      this.keepalive.unref();
    }
  }

  callClosed(): void {
    if (--this.calls === 0) this.stopKeepalive();
  }

  private stopKeepalive(): void {
    clearInterval(this.keepalive);
    this.keepalive = undefined;
  }

  /**
   * A PING on the session (unless one is under way): no answer within KEEPALIVE_TIMEOUT_MS and the
   * session is dropped. Also called when a call on it ran out its deadline.
   */
  ping(): void {
    const session = this.session;
    if (this.state !== 'ready' || !session || session.destroyed || this.pinging) return;
    const timer = setTimeout(() => {
      this.pinging = undefined;
      if (this.session !== session) return;
      this.error = new Error(`no answer to a keepalive ping within ${KEEPALIVE_TIMEOUT_MS} ms (connection cut?)`);
      this.gone(session);
    }, KEEPALIVE_TIMEOUT_MS);
    timer.unref();
    this.pinging = timer;
    const answered = (): void => {
      clearTimeout(timer);
      if (this.pinging === timer) this.pinging = undefined;
    };
    try {
      // An error (the session closing meanwhile) ends the ping as an answer would: close says the rest.
      if (!session.ping(() => answered())) answered();
    } catch {
      answered();
    }
  }

  /** Resolves at the next change of state, or after `ms`. */
  change(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const done = (): void => {
        clearTimeout(timer);
        this.changed.delete(done);
        resolve();
      };
      const timer = setTimeout(done, ms);
      this.changed.add(done);
    });
  }

  private notify(): void {
    for (const f of [...this.changed]) f();
  }

  close(): Promise<void> {
    const s = this.session;
    const wasReady = this.state === 'ready';
    if (this.attempt) {
      this.attempt.timer.cancel();
      this.attempt.abort.abort(new Error('closed'));
      this.attempt = null;
    }
    this.stopKeepalive();
    clearTimeout(this.pinging);
    this.pinging = undefined;
    this.probe = null;
    this.session = null;
    this.state = 'idle';
    this.notify();
    if (!s || s.destroyed) return Promise.resolve();
    if (!wasReady) {
      s.destroy();
      return Promise.resolve();
    }
    // A graceful close (GOAWAY, then wait for the peer) bounded at CLOSE_WAIT_MS; then the session
    // is destroyed and close() is done. Not resolved by the session's 'close' event after destroy():
    // on a session whose peer stopped answering (etcd SIGSTOPped mid-call), Node 20 never emits it,
    // and as the session is unref'd nothing else kept the loop running: the plugin process ended
    // with close() still awaited, exit 0 and nothing on stdout (main.ts answerIfLoopEmpties).
    return new Promise((resolve) => {
      const t = setTimeout(() => {
        s.destroy();
        resolve();
      }, CLOSE_WAIT_MS);
      s.close(() => {
        clearTimeout(t);
        resolve();
      });
    });
  }
}

function toEntry(kv: KeyValue): KvEntry {
  return { key: kv.key.toString('utf8'), value: kv.value.toString('utf8'), createRevision: kv.createRevision, modRevision: kv.modRevision };
}

/** The 5-byte gRPC message prefix (not compressed, length) and the message. */
function grpcFrame(message: Buffer): Buffer {
  const head = Buffer.alloc(5);
  head.writeUInt32BE(message.length, 1);
  return Buffer.concat([head, message]);
}

export class EtcdLiteKv implements KvStore, KvLeaseClaims {
  readonly description: string;
  private readonly endpoints: readonly string[];
  private readonly timeoutMs: number;
  private readonly connectTimeoutMs: number;
  private readonly maxReceiveBytes: number;
  private readonly connections: Connection[];
  private lastClusterId: string | null = null;
  /** The header revision of the last answer (a create's fence compares with it: etcd-fence.ts). */
  private lastRevision: number | undefined;
  /** What this store's create fences did (etcd-fence.ts; tests, diagnostics). */
  readonly fences: FenceCounters = newFenceCounters();
  private closed = false;

  constructor(options: EtcdKvOptions) {
    const settings = etcdSettings(options);
    ({ endpoints: this.endpoints, timeoutMs: this.timeoutMs, connectTimeoutMs: this.connectTimeoutMs, description: this.description, maxReceiveBytes: this.maxReceiveBytes } = settings);
    const tls = readEtcdTls(options.tls);
    this.connections = this.endpoints.map((url) => new Connection(url, tls, settings.connectAttemptMs));
  }

  clusterIdSeen(): string | null {
    return this.lastClusterId;
  }

  private noteHeader(h: ResponseHeader): void {
    this.lastClusterId = h.clusterId;
    this.noteRevision(h);
  }

  private noteRevision(h: ResponseHeader): void {
    if (h.revision > 0) this.lastRevision = h.revision;
  }

  async get(key: string): Promise<KvEntry | null> {
    return (await this.getLeased(key))?.entry ?? null;
  }

  async getLeased(key: string): Promise<{ entry: KvEntry; lease: string | null } | null> {
    const res = decodeRangeResponse(await this.call(`get ${key}`, 'Range', encodeRange({ key: Buffer.from(key) }), 'read'));
    this.noteHeader(res.header);
    const kv = res.kvs[0];
    return kv ? { entry: toEntry(kv), lease: kv.lease ?? null } : null;
  }

  /** etcd's LeaseTimeToLive (the Lease service): the seconds left, -1 when expired. */
  async leaseTimeToLive(id: string): Promise<number> {
    const res = decodeLeaseTimeToLiveResponse(await this.call(`lease ${id} time to live`, 'Lease/LeaseTimeToLive', encodeLeaseTimeToLive(id), 'read'));
    this.noteRevision(res.header);
    return res.ttl;
  }

  /** etcd's LeaseGrant: a new lease of `ttlSeconds` (the start's claim of its liveness key). */
  async grantLease(ttlSeconds: number): Promise<string> {
    const res = decodeLeaseGrantResponse(await this.call(`grant a lease of ${ttlSeconds} s`, 'Lease/LeaseGrant', encodeLeaseGrant(ttlSeconds)));
    this.noteRevision(res.header);
    if (res.error) throw new Error(`etcd: grant a lease of ${ttlSeconds} s: ${res.error}`);
    return res.id;
  }

  /** etcd's LeaseRevoke (its keys deleted with it); a lease already gone is no error. */
  async revokeLease(id: string): Promise<void> {
    try {
      await this.call(`revoke lease ${id}`, 'Lease/LeaseRevoke', encodeLeaseRevoke(id));
    } catch (e) {
      if (/lease not found/i.test((e as Error).message)) return;
      throw e;
    }
  }

  /**
   * One renewal of the lease (etcd's LeaseKeepAlive stream, one request and its answer, then
   * closed: clientv3's KeepAliveOnce); its TTL after that, 0 when it is gone (expired, revoked).
   * The registration's thread keeps the lease it claimed a node's liveness key with alive by it
   * until the running podway's holder has renewed it (control/node-live.ts ClaimKeeper).
   */
  async keepAliveLease(id: string): Promise<number> {
    const res = decodeLeaseKeepAliveResponse(await this.call(`keep lease ${id} alive`, 'Lease/LeaseKeepAlive', encodeLeaseKeepAlive(id), 'read'));
    this.noteRevision(res.header);
    return res.ttl;
  }

  /** `key` attached to `lease` if still at `modRevision` (0: absent), in one Txn (kv.ts KvLeaseClaims). */
  async putLeasedIf(key: string, value: string, lease: string, modRevision: number): Promise<boolean> {
    const k = Buffer.from(key);
    const res = decodeTxnResponse(await this.call(`put ${key}`, 'Txn', encodeTxn({
      compare: [{ key: k, target: 'mod', result: 'equal', value: modRevision }],
      success: [{ put: { key: k, value: Buffer.from(value), lease } }],
    }), 'guarded', false, undefined, { key, bytes: Buffer.byteLength(value) }));
    this.noteRevision(res.header);
    return res.succeeded;
  }

  /** Every key of `prefix` at one revision, in pages, as EtcdKv's (etcd-common.ts pagedList). */
  async list(prefix: string, pageKeys = LIST_PAGE_KEYS): Promise<KvList> {
    const keyAt = async (from: Buffer, rev: number | undefined): Promise<Buffer | null> =>
      decodeRangeResponse(await this.call(`list ${prefix}`, 'Range', encodeRange({ key: from, rangeEnd: prefixRangeEnd(Buffer.from(prefix)), limit: 1, revision: rev, keysOnly: true }), 'read')).kvs[0]?.key ?? null;
    const { kvs, revision } = await pagedList<KeyValue>(Buffer.from(prefix), (kv) => kv.key, (from, rev, limit) => this.listPage(prefix, from, rev, limit), `${this.description} (list ${prefix})`, pageKeys, keyAt);
    // etcd returns a range in key (byte) order unless asked otherwise.
    return { entries: kvs.map(toEntry), revision };
  }

  /** One page of `prefix` (pagedList): at most `limit` keys from `from`, at `revision` (undefined: the current one). */
  async listPage(prefix: string, from: Buffer, revision: number | undefined, limit: number): Promise<ListPage<KeyValue>> {
    const res = decodeRangeResponse(await this.call(`list ${prefix}`, 'Range', encodeRange({ key: from, rangeEnd: prefixRangeEnd(Buffer.from(prefix)), limit, revision }), 'read'));
    this.noteHeader(res.header);
    return { kvs: res.kvs, more: res.more, revision: res.header.revision };
  }

  /** Create-if-absent with its fence (etcd-fence.ts), as EtcdKv's. */
  async create(key: string, value: string): Promise<KvEntry | null> {
    const k = Buffer.from(key);
    const v = Buffer.from(value);
    const revision = await fencedCreate(key, {
      revision: () => this.lastRevision,
      readRevision: async (fence) => {
        const res = decodeRangeResponse(await this.call(`create ${key}`, 'Range', encodeRange({ key: Buffer.from(fence), keysOnly: true }), 'read'));
        this.noteRevision(res.header);
        return res.header.revision;
      },
      round: async (fence, below) => {
        const f = Buffer.from(fence);
        const attempts: Attempt[] = [];
        const res = decodeTxnResponse(await this.call(`create ${key}`, 'Txn', encodeTxn({
          compare: [
            { key: k, target: 'version', result: 'equal', value: 0 },
            { key: f, target: 'mod', result: 'less', value: below },
          ],
          success: [{ put: { key: k, value: v } }],
          failure: [{ range: { key: f, keysOnly: true } }],
        }), 'guarded', true, attempts, { key, bytes: v.length })); // a copy left waiting is cancelled (etcd-failover.ts), and fenced
        this.noteRevision(res.header);
        const op = res.responses[0];
        if (!res.succeeded && !(op && 'range' in op)) throw new Error(`etcd: create of ${key} failed without returning its fence ${fence}`);
        const fenceMod = !res.succeeded && op && 'range' in op ? (op.range.kvs[0]?.modRevision ?? 0) : 0;
        return { succeeded: res.succeeded, revision: res.header.revision, fenceMod, copyLeft: copyLeft(attempts, RULES) };
      },
      writeFence: async (fence) => {
        const res = decodeTxnResponse(await this.call(`create ${key}`, 'Txn', encodeTxn({
          compare: [],
          success: [{ put: { key: Buffer.from(fence), value: Buffer.from(JSON.stringify({ create: key })) } }],
        }), 'guarded', true));
        this.noteRevision(res.header);
        return res.header.revision;
      },
    }, this.fences, this.description);
    if (revision === null) return null;
    return { key, value, createRevision: revision, modRevision: revision };
  }

  async update(key: string, value: string, modRevision: number, guards: readonly KvGuard[] = []): Promise<KvEntry | null> {
    const k = Buffer.from(key);
    const compare: Compare[] = [
      { key: k, target: 'mod', result: 'equal', value: modRevision },
      // An absent key has ModRevision 0: without this, update(key, v, 0) would create it.
      { key: k, target: 'version', result: 'greater', value: 0 },
      ...guards.flatMap((g): Compare[] => {
        const gk = Buffer.from(g.key);
        return [
          { key: gk, target: 'mod', result: 'equal', value: g.modRevision },
          { key: gk, target: 'version', result: 'greater', value: 0 },
        ];
      }),
    ];
    const res = decodeTxnResponse(await this.call(`update ${key}`, 'Txn', encodeTxn({ compare, success: [{ put: { key: k, value: Buffer.from(value), prevKv: true } }] }), 'guarded', false, undefined, { key, bytes: Buffer.byteLength(value) }));
    this.noteRevision(res.header);
    if (!res.succeeded) return null;
    const op = res.responses[0];
    const prev = op && 'put' in op ? op.put.prevKv : null;
    if (!prev) throw new Error(`etcd: update of ${key} succeeded without returning the previous entry`);
    return { key, value, createRevision: prev.createRevision, modRevision: res.header.revision };
  }

  async delete(key: string, modRevision?: number): Promise<boolean> {
    const k = Buffer.from(key);
    if (modRevision === undefined) {
      const res = decodeDeleteRangeResponse(await this.call(`delete ${key}`, 'DeleteRange', encodeDeleteRange({ key: k })));
      this.noteRevision(res.header);
      return res.deleted > 0;
    }
    const res = decodeTxnResponse(await this.call(`delete ${key}`, 'Txn', encodeTxn({
      compare: [
        { key: k, target: 'mod', result: 'equal', value: modRevision },
        { key: k, target: 'version', result: 'greater', value: 0 },
      ],
      success: [{ deleteRange: { key: k } }],
    }), 'guarded'));
    this.noteRevision(res.header);
    const op = res.responses[0];
    return res.succeeded && op !== undefined && 'deleteRange' in op && op.deleteRange.deleted > 0;
  }

  readonly maxBatch = ETCD_MAX_TXN_OPS;

  /** One read-only transaction of a Range per key: every entry at one revision. */
  async getMany(keys: readonly string[]): Promise<(KvEntry | null)[]> {
    if (keys.length === 0) return [];
    if (keys.length > ETCD_MAX_TXN_OPS) throw new RangeError(`getMany: ${keys.length} keys, at most ${ETCD_MAX_TXN_OPS}`);
    const res = decodeTxnResponse(await this.call(`get ${keys.length} keys from ${keys[0]}`, 'Txn', encodeTxn({
      compare: [],
      success: keys.map((k) => ({ range: { key: Buffer.from(k) } })),
    }), 'read'));
    this.noteHeader(res.header);
    if (res.responses.length !== keys.length) throw new Error(`etcd: a read of ${keys.length} keys answered ${res.responses.length}`);
    return res.responses.map((op, i) => {
      if (!('range' in op)) throw new Error(`etcd: the read of ${keys[i]} in a transaction answered no range`);
      const kv = op.range.kvs[0];
      return kv ? toEntry(kv) : null;
    });
  }

  /**
   * One transaction: each create compares Version(key) == 0, each replace ModRevision(key) ==
   * its revision (> 0, so the key exists), and all are put if every comparison holds. Sent as a
   * plain write (never hedged to a second member, so it leaves no copy a create's fence would
   * have to stop: etcd-fence.ts); a member that took it and did not answer fails it, its outcome
   * unknown, as one write's.
   */
  async writeBatch(writes: readonly KvBatchWrite[]): Promise<number[] | null> {
    if (!checkBatch(writes, ETCD_MAX_TXN_OPS)) return [];
    const compare: Compare[] = writes.map((w) => w.modRevision === 0
      ? { key: Buffer.from(w.key), target: 'version', result: 'equal', value: 0 }
      : { key: Buffer.from(w.key), target: 'mod', result: 'equal', value: w.modRevision });
    const largest = writes.reduce((a, w) => (Buffer.byteLength(w.value) > Buffer.byteLength(a.value) ? w : a));
    const res = decodeTxnResponse(await this.call(`write ${writes.length} keys from ${writes[0]!.key}`, 'Txn', encodeTxn({
      compare,
      success: writes.map((w) => ({ put: { key: Buffer.from(w.key), value: Buffer.from(w.value) } })),
    }), 'write', false, undefined, { key: largest.key, bytes: Buffer.byteLength(largest.value) }));
    this.noteRevision(res.header);
    if (!res.succeeded) return null;
    return writes.map(() => res.header.revision);
  }

  watch(): KvWatch {
    throw new Error(`${this.description}: EtcdLiteKv makes single calls only and does not watch (use EtcdKv)`);
  }

  async close(): Promise<void> {
    this.closed = true;
    await Promise.all(this.connections.map((c) => c.close()));
  }

  // ------------------------------------------------------------------------------------------
  // Calls

  /**
   * One call of etcd's KV service: its reply message, or an error mapped as EtcdKv maps them.
   * `kind`: what may be sent again (etcd-failover.ts); a guarded write is a Txn, applied when it
   * succeeded. `attempts`, if given, gets the call's attempts when it ends (a create's fence).
   */
  private async call(what: string, method: string, request: Buffer, kind: CallKind = 'write', cancelOvertaken = false, attempts?: Attempt[], written?: WrittenValue): Promise<Buffer> {
    if (this.closed) throw new Error(`${this.description}: store is closed`);
    let up = false;
    const call: FailoverCall = { kind, applied: kind === 'guarded' ? (answer) => decodeTxnResponse(answer as Buffer).succeeded : undefined, attempts: [], cancelOvertaken };
    try {
      await this.connection(what);
      up = this.connections.some((c) => c.state === 'ready');
      const deadline = monoNow() + this.timeoutMs;
      return await failover<Buffer>(call, this.connections.length, this.timeoutMs, RULES, () => this.send(call, method, request, deadline));
    } catch (e) {
      const mapped = this.mapError(e, what, up, call, written);
      // too slow, or etcd's own timeout: in the first seconds of a quorum loss, that is what etcd does (etcd-failover.ts)
      if (mapped instanceof KvSlowError || etcdTimedOut(mapped)) throw (await leaderLostError(this.description, what, this.timeoutMs, call, slowMembers(call, RULES, deadlineSent, up), (url) => this.leaderProbe(url))) ?? mapped;
      throw mapped;
    } finally {
      attempts?.push(...call.attempts);
    }
  }

  /**
   * Whether the member at `url` refuses, within LEADER_PROBE_MS, a serializable read that needs a
   * leader ("hasleader", as every call asks): etcd's words then, else null (leaderLostError).
   */
  private async leaderProbe(url: string): Promise<string | null> {
    const c = this.connections.find((x) => x.url === url);
    if (!c || this.closed) return null;
    try {
      await this.unary(c, 'Range', encodeRange({ key: Buffer.from('/'), limit: 1, keysOnly: true, serializable: true }), monoNow() + LEADER_PROBE_MS);
      return null;
    } catch (e) {
      return noLeader(e) ? (e as GrpcError).details : null;
    }
  }

  /**
   * Waits until a connection to some endpoint is up (all are dialled), so that a call's deadline
   * counts from there. Returns at once when one is, or when every endpoint has failed (refused,
   * unreachable: the call then fails at once). KvUnavailableError when none is up in connectTimeoutMs.
   */
  private async connection(what: string): Promise<void> {
    for (const c of this.connections) c.start();
    const settled = (): boolean => this.connections.some((c) => c.state === 'ready') || this.connections.every((c) => c.state === 'failed');
    // The bound counts the time the loop got to run (loop-time.ts): a loop held for seconds (a
    // busy start on a loaded machine) is not a member that did not answer; and before saying
    // unreachable, the answers that came while it was held are read (one poll phase).
    const budget = new LoopBudget(this.connectTimeoutMs);
    while (!settled()) {
      if (budget.left() <= 0) {
        await afterPoll();
        if (settled()) break;
        throw new KvUnavailableError(`${this.description} unreachable (${what}): no connection within ${this.connectTimeoutMs} ms`);
      }
      const wait = Math.min(250, budget.left());
      await budget.wait(wait, Promise.race(this.connections.map((c) => c.change(wait))));
    }
  }

  /**
   * One attempt of `call` on the best endpoint it has not tried (hostRank: connected now, not
   * failed lately, at random among equals), within the call's `deadline`.
   */
  private send(call: FailoverCall, method: string, request: Buffer, deadline: number): { answer: Promise<Buffer>; overtaken(): void } {
    const several = this.connections.length > 1;
    const tried = new Set(call.attempts.map((a) => a.host));
    const now = monoNow();
    const c = drawBest(this.connections, (x) => hostRank(x.state === 'ready', several ? x : undefined, tried.has(x.url), now));
    const att: Attempt = { host: c.url };
    call.attempts.push(att);
    const answer = this.unary(c, method, request, deadline, att).catch((e: unknown) => {
      att.error = e;
      if (several && (e instanceof NoConnection || notEtcd(e) || (e instanceof GrpcError && (e.code === UNAVAILABLE || e.code === DEADLINE_EXCEEDED)))) c.downUntil = monoNow() + HOST_COOLDOWN_MS;
      throw e;
    });
    return {
      answer,
      overtaken: () => {
        if (call.cancelOvertaken && att.cancel) {
          // a create's copy is not left waiting on that member (etcd-failover.ts); the member is
          // drawn last until the attempt's deadline would have passed, as if it still waited
          att.cancel();
          if (several) c.downUntil = Math.max(c.downUntil, deadline);
          return;
        }
        if (several) overtakenUntil(c, answer);
      },
    };
  }

  /** One unary gRPC call on `c` by `deadline`: NoConnection when it has none (waiting for one under way, within the deadline). */
  private async unary(c: Connection, method: string, request: Buffer, deadline: number, att?: Attempt): Promise<Buffer> {
    c.start();
    while (c.state === 'connecting') {
      if (monoNow() >= deadline) {
        await afterPoll(); // a connection made while the loop was held is seen first
        if (c.state !== 'connecting') break;
        throw new GrpcError(DEADLINE_EXCEEDED, 'Deadline exceeded while connecting', false);
      }
      await c.change(deadline - monoNow());
    }
    const session = c.session;
    if (c.state !== 'ready' || !session || session.destroyed || session.closed) {
      throw new NoConnection(c.error?.message ?? 'no connection');
    }
    return new Promise<Buffer>((resolve, reject) => {
      let stream: http2.ClientHttp2Stream;
      try {
        stream = session.request({
          ':method': 'POST',
          // 'Range': the KV service's; 'Lease/LeaseTimeToLive': another service's
          ':path': method.includes('/') ? `/etcdserverpb.${method}` : `/etcdserverpb.KV/${method}`,
          'content-type': 'application/grpc',
          te: 'trailers',
          'grpc-timeout': `${Math.max(1, Math.ceil(deadline - monoNow()))}m`,
          // clientv3.WithRequireLeader: a member without a leader refuses at once.
          hasleader: 'true',
        });
      } catch (e) {
        reject(new NoConnection((e as Error).message));
        return;
      }
      const chunks: Buffer[] = [];
      let status: number | null = null;
      let message = '';
      let settled = false;
      c.callOpened();
      const finish = (err: Error | null, body?: Buffer): void => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        c.callClosed();
        if (err) reject(err);
        else resolve(body!);
      };
      // after the poll phase due (setImmediate): an answer that came while the loop was held
      // (loop-time.ts) is read before the deadline is declared passed
      const timer = setTimeout(() => setImmediate(() => {
        if (settled) return;
        finish(new GrpcError(DEADLINE_EXCEEDED, 'Deadline exceeded', true));
        stream.close(http2.constants.NGHTTP2_CANCEL);
        // no answer on an open connection: is it still there? (dropped if the ping is not answered)
        c.ping();
      }), Math.max(1, deadline - monoNow()));
      if (att) {
        att.cancel = () => {
          finish(new GrpcError(CANCELLED, 'another member answered the call'));
          stream.close(http2.constants.NGHTTP2_CANCEL);
        };
      }
      const readStatus = (h: http2.IncomingHttpHeaders): void => {
        const s = h['grpc-status'];
        if (s !== undefined) {
          status = Number(s);
          const m = h['grpc-message'];
          if (typeof m === 'string') {
            try {
              message = decodeURIComponent(m);
            } catch {
              message = m;
            }
          }
        }
      };
      stream.on('response', (h) => {
        const httpStatus = Number(h[':status']);
        if (httpStatus !== 200) {
          // gRPC's HTTP-to-status mapping for a reply that is not gRPC's.
          const code = httpStatus === 502 || httpStatus === 503 || httpStatus === 504 ? UNAVAILABLE : httpStatus === 401 ? 16 : httpStatus === 403 ? 7 : httpStatus === 404 ? 12 : 2;
          finish(new GrpcError(code, `Received HTTP status code ${httpStatus}`));
          stream.close(http2.constants.NGHTTP2_CANCEL);
          return;
        }
        readStatus(h);
      });
      stream.on('trailers', readStatus);
      // At most maxReceiveBytes (and its 5-byte frame), as EtcdKv's gRPC takes: a larger answer
      // is given up (a list asks for fewer keys per page: pagedList).
      let received = 0;
      const max = this.maxReceiveBytes;
      stream.on('data', (d: Buffer) => {
        if (settled) return;
        received += d.length;
        if (received > max + 5) {
          const first = chunks[0] ?? d;
          const size = first.length >= 5 ? first.readUInt32BE(1) : received - 5; // the message's length, as its frame says
          finish(new GrpcError(RESOURCE_EXHAUSTED, `Received message larger than max (${size} vs ${max})`));
          stream.close(http2.constants.NGHTTP2_CANCEL);
          return;
        }
        chunks.push(d);
      });
      stream.on('error', () => undefined); // the close below says what happened
      stream.on('close', () => {
        if (status === null) {
          // No status: the stream was reset or the connection went away under it.
          const refused = stream.rstCode === http2.constants.NGHTTP2_REFUSED_STREAM;
          finish(new GrpcError(session.destroyed || session.closed || refused ? UNAVAILABLE : 13, refused ? 'Stream refused by server' : session.destroyed || session.closed ? 'Connection dropped' : `Received RST_STREAM with code ${stream.rstCode}`));
          return;
        }
        if (status !== 0) {
          finish(new GrpcError(status, message));
          return;
        }
        const body = Buffer.concat(chunks);
        if (body.length < 5 || body[0] !== 0 || body.readUInt32BE(1) !== body.length - 5) {
          finish(new GrpcError(13, `etcd's reply to ${method} is not one uncompressed gRPC message (${body.length} bytes)`));
          return;
        }
        finish(null, body.subarray(5));
      });
      stream.end(grpcFrame(request));
    });
  }

  /** As EtcdKv.mapError: unreachable, too slow, refused for its TLS settings, not etcd; others as they are. */
  private mapError(e: unknown, what: string, sentConnected: boolean, call: FailoverCall, written?: WrittenValue): Error {
    if (e instanceof KvUnavailableError) return e;
    const err = e instanceof Error ? e : new Error(String(e));
    const tls = err instanceof NoConnection ? tlsRejection(err.message) : null;
    if (tls) return withCause(new KvTlsRejectedError(`${this.description} (${what}): ${tls}`), err);
    if (notEtcd(err)) {
      const url = call.attempts.find((a) => a.error === err)?.host ?? this.endpoints[0]!;
      return withCause(new KvNotEtcdError(notEtcdText(this.description, what, url, notEtcdAnswer(err instanceof GrpcError ? err.details : err.message)!)), err);
    }
    const refused = err instanceof GrpcError ? requestTooLargeText(err.details, written) : null;
    if (refused) return withCause(new Error(`${this.description} (${what}): ${refused}`), err);
    if (tooLarge(err)) return withCause(new EtcdAnswerTooLargeError(`${this.description} (${what}): etcd's answer is larger than the ${this.maxReceiveBytes} bytes this client takes (${(err as GrpcError).details})`), err);
    const recoverable = err instanceof NoConnection || (err instanceof GrpcError && RECOVERABLE.has(err.code));
    if (!recoverable) return err instanceof GrpcError ? withCause(new Error(`${this.description} (${what}): ${err.message}`), err) : err;
    if (isDeadline(err)) {
      return withCause(deadlineError(this.description, this.endpoints.length, what, this.timeoutMs, call, err, RULES, deadlineSent, sentConnected), err);
    }
    const reason = quorumHint(err instanceof GrpcError ? err.details : err.message, this.endpoints.every((u) => u.startsWith('https:')));
    return withCause(new KvUnavailableError(`${this.description} unreachable (${what}): ${reason}${outcomeUnknownText(call)}`), err);
  }
}

function withCause<E extends Error>(e: E, cause: unknown): E {
  (e as { cause?: unknown }).cause = cause;
  return e;
}
