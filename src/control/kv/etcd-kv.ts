// KvStore on etcd v3, through the npm `etcd3` client (gRPC), the way Calico's libcalico-go uses etcd:
//   create  = txn(if Version(key) == 0 && ModRevision(fence) < R + 1 then put)   (create-if-absent;
//             the fence closes the race of a copy left on a stopped member: etcd-fence.ts)
//   update  = txn(if ModRevision(key) == R && Version(key) > 0 [&& ModRevision(guard) == G && Version(guard) > 0 ...]
//             then put, returning the old entry)
//   delete  = txn(if ModRevision(key) == R then delete) or a plain delete
// Every call carries a deadline (timeoutMs); an unreachable or silent etcd becomes a
// KvUnavailableError naming the endpoints. The client's own retry policy is replaced by
// failoverPolicy, the failover of etcd-failover.ts (shared with EtcdLiteKv). A call that found no
// connection to the endpoint it was given (connection refused, host unreachable, TLS not
// established: grpc-js's "No connection established") sent nothing, so with several endpoints it
// is tried at once on the next one, within the same deadline, whatever it is (a transaction too),
// as Calico's clientv3 fails over: a CNI ADD or a CLI call, which lives for one call, must not
// fail because the first endpoint it drew is down. The endpoints connected now are drawn first
// (preferConnected): a member that drops packets, or accepts TCP and says nothing, holds a call
// made there until its deadline. A member that took the call and does not answer (stopped,
// frozen) would hold it too: a read, and a transaction guarded by a revision (applied at most once
// however many members it reaches), still unanswered after a quarter of the deadline goes to the
// next member as well, and the first answer is the call's (see etcd-failover.ts for why that is
// safe for those writes and what a lost answer then means). Any other write that may have reached
// etcd is not sent again: those retries belong to the caller, which re-reads first. An endpoint
// that failed (HOST_COOLDOWN_MS), or still holds calls another member answered, is drawn last by
// the calls after it.
//
// Connections (etcd-common.ts, CONNECT_ATTEMPT_MS and KEEPALIVE_TIME_MS): a connection that dies
// silently (packets dropped, a member's host frozen) is found by HTTP/2 keepalive within 15 s
// while a call or watch is open on it. grpc-js then connects again, but bounds no connection
// attempt: after a cut that dropped packets the attempt under way would connect only at the
// kernel's next SYN retransmission, up to half a minute after the path is back, and a single-member
// etcd stays down that long. Each client's channels ask for the bounds of grpc-connect-bound.ts: a
// fresh SYN every CONNECT_RETRY_MS while unanswered (the connection is up about a second after the
// path is back), the attempt given up after CONNECT_ATTEMPT_MS (or connectTimeoutMs if longer).
//
// Watches use etcd3's watcher, which re-subscribes by itself after a disconnection. It resumes from
// the last response header's revision + 1, which can skip events when the connection drops while
// etcd is still replaying history (the header then carries the store's current revision, not the
// last event's), so on every disconnection we point it back at the last revision we delivered + 1.
// A watch etcd cancels (its start revision was compacted, possibly while we were disconnected) is
// reported through onResync('compacted').
//
// An etcd rebuilt or wiped under us (a new data dir at the same URL, a snapshot restore) accepts
// the resumed watch as one on a future revision and says nothing: the watch would wait for
// revisions the new store reaches only much later, and drop its writes until then as "replayed".
// Every response header says which cluster answered (cluster_id) and the store's revision: a
// cluster_id other than the one the watch first saw, or a revision below the last one delivered,
// closes the watch with onResync(reason, replaced = true), and the caller lists everything again
// (and registers its node again: kv-datastore.ts, run.ts). A fresh single-member etcd started with
// the same name, URLs and cluster token has the same cluster_id: the revision says it then. A
// header's revision is the answering member's, though, and after a reconnection to a member that
// lags behind the leader it is below ours too: a revision going back is confirmed by a
// linearizable read of the store's revision (confirmedHeader) before the store counts as replaced.
// A revision at or above ours does not prove the same store, though: a wiped etcd that climbed
// past our revision while we were away (disconnected, or the confirming read failing until then)
// looks like a lagging member that caught up. So each watch keeps a witness, one key of its prefix
// as it saw it (create_revision, mod_revision: the last put it delivered, or one read when it
// started), and after a reconnection and before a header below ours counts as a lagging member's,
// reads it back at its mod_revision (witnessCheck): the same store still has that version in its
// history (or, compacted, still has the key from the same creation); a wiped one has another key
// there, or none, or not that revision yet: replaced. What this cannot tell is a store rebuilt by
// replaying the very same writes in the same order (the witness then exists as it was), nor, once
// that revision is compacted, a store whose witness key is gone or was created after it (the same
// store may have deleted it meanwhile: nothing is concluded from that, only the revision and
// cluster_id then tell a wiped store).
//
// That last case is a wiped store that climbed past our revision and was compacted, our witness
// key absent, the same cluster_id (rebuilt with the same member name, URLs and token, or restored
// keeping its ID). Calico names its datastore itself: ClusterInformation "default" carries a
// clusterGUID that calico-node (and podway's registration) writes once when it creates it
// (cluster-guid.ts), and a wiped store filled again gets a new one. So each watch also remembers
// the clusterGUID it saw (read with its first witness; a watch whose prefix holds the key follows
// its puts and deletes), and the read that confirms the store after a reconnection reads it too
// (the same single read: a range of that key gives the header's revision and cluster_id): another
// GUID, or none where there was one, is another store. The same GUID decides nothing by itself:
// the checks above still run (a snapshot of this very store restored keeps its GUID). A store
// without a ClusterInformation (older data, a store no Calico node started on) has only those
// checks. A watch etcd cancels because its start revision was compacted is checked the same way
// before it reports 'compacted': a wiped store compacted past us cancels the resumed watch.
//
// reconnect() (the node's address went away: the connections made from it are dead, but only a
// keepalive timeout, 10-15 s, would say so) makes a new client, moves the watches to it, each
// from the last revision it delivered, and closes the old one. grpc-js shares one connection
// between the channels of equal target, options and credentials in a thread, so another client
// of the same endpoint would keep the dead connection open and hand it to the new client: each
// client this thread makes carries its own number as a channel option, so a new one never shares
// (neither a reconnected store's nor a store opened after the address left, whatever other store
// of the same endpoint is still open). Closing the old client does not end a call already sent
// on it (grpc-js closes a connection gracefully, after its calls), and such a call would wait for
// its deadline: reconnect() gives up every call still waiting on the old client. A read is sent
// again, once, on the new client; a write fails as unreachable (KvUnavailableError with
// `reconnected`: it may have been applied), and its caller re-reads and retries.
// reconnectEtcdStores() reconnects every store this thread has open (podway run's main thread:
// the address monitor's own reads and writes of the Node, a registration under way).
import { AsyncLocalStorage } from 'node:async_hooks';
import { createRequire } from 'node:module';
import { isIP } from 'node:net';
import {
  castGrpcError,
  Etcd3,
  EtcdWatchStreamEnded,
  GRPCDeadlineExceededError,
  GRPCGenericError,
  GRPCNotImplementedError,
  GRPCUnavailableError,
  IKeyValue,
  IOptions,
  IWatchResponse,
  Watcher,
  isRecoverableError,
} from 'etcd3';
import { CLUSTER_INFORMATION_KEY, clusterGuidOf } from './cluster-guid';
import { installEtcdWatchGuard } from './etcd-watch-guard';
import { prefixRangeEnd } from './keys';
import { Attempt, CallKind, deadlineError, drawBest, etcdTimedOut, failover, FailoverCall, FailoverRules, HostState, hostRank, LEADER_PROBE_MS, leaderLostError, notEtcdAnswer, notEtcdText, outcomeUnknownText, overtakenUntil, slowMembers } from './etcd-failover';
import { copyLeft, FenceCounters, fencedCreate, newFenceCounters } from './etcd-fence';
import { EtcdAnswerTooLargeError, EtcdKvOptions, etcdSettings, EtcdTlsFiles, grpcReason, WrittenValue, HOST_COOLDOWN_MS, KEEPALIVE_TIME_MS, KEEPALIVE_TIMEOUT_MS, LIST_PAGE_KEYS, ListPage, pagedList, quorumHint, readEtcdTls, requestTooLargeText, tlsRejection } from './etcd-common';
import { CONNECT_ATTEMPT_OPTION, CONNECT_RETRY_OPTION, installGrpcConnectBound } from './grpc-connect-bound';
import { CONNECT_RETRY_MS } from './tcp-dial';
import { monoNow, MonoDeadline } from '../../util/mono-clock';
import { afterPoll, LoopBudget } from '../../util/loop-time';
import {
  KvEntry,
  KvEvent,
  KvGuard,
  KvLeases,
  KvList,
  KvStore,
  KvNotEtcdError,
  KvSlowError,
  KvTlsRejectedError,
  KvUnavailableError,
  KvWatch,
  KvWatchHandlers,
} from './kv';

// Shared with etcd-lite.ts; exported from here as before.
export { CNI_CONNECT_TIMEOUT_MS, EtcdKvOptions, EtcdTlsFiles, grpcReason, quorumHint, tlsRejection } from './etcd-common';

/** Watch re-subscription backoff: 100 ms doubling to at most 1 s, so a restarted etcd is found fast. */
const WATCH_BACKOFF_MIN_MS = 100;
const WATCH_BACKOFF_MAX_MS = 1000;

/** A channel option grpc-js does not read: only makes a client's channels differ from an older client's. */
const GENERATION_OPTION = 'podway.etcd_client_generation';
/** The longest gRPC waits before connecting again after a failed attempt (see the constructor). */
export const MAX_RECONNECT_BACKOFF_MS = 5000;

/**
 * Every call and watch asks etcd to serve it only with a leader (etcd's "hasleader" metadata, what
 * clientv3.WithRequireLeader sends): a member cut off from the others, or left alone when most
 * members are down (no quorum), answers at once "etcdserver: no leader" instead of taking the
 * call and timing out (a read waits for a leader that is not coming; a watch would be served
 * from the member's stale copy, and "resume" every time it reconnects). The call is refused before
 * etcd handles it, so it is tried on the next endpoint (neverSent); with none left the error says
 * etcd has no leader. A watch on a leaderless member is refused (and one open is ended by etcd
 * after a few election timeouts), so it stays down there and moves to a member that has one.
 * The interceptor is built on the grpc-js etcd3 itself runs on (its own dependency).
 */
const grpc = createRequire(require.resolve('etcd3'))('@grpc/grpc-js') as {
  InterceptingCall: new (next: unknown, requester: { start(metadata: { set(k: string, v: string): void }, listener: unknown, next: (m: unknown, l: unknown) => void): void }) => {
    cancelWithStatus(status: number, details: string): void;
  };
  Metadata: new () => unknown;
};
/** gRPC's status CANCELLED. */
const CANCELLED = 1;
const requireLeader = (options: unknown, nextCall: (o: unknown) => unknown): unknown => {
  const call = new grpc.InterceptingCall(nextCall(options), {
    start(metadata, listener, next) {
      metadata.set('hasleader', 'true');
      next(metadata, listener);
    },
  });
  // The attempt this call is (failoverPolicy): how to cancel it (a create's, overtaken).
  const att = attemptContext.getStore();
  if (att) att.cancel = () => call.cancelWithStatus(CANCELLED, 'another member answered the call');
  return call;
};

/** grpc-js's Channel, as far as the connection wait uses it (its connectivityState numbers below). */
interface GrpcChannel {
  getConnectivityState(tryToConnect: boolean): number;
  watchConnectivityState(currentState: number, deadline: Date | number, callback: (error?: Error) => void): void;
}
const CHANNEL_READY = 2;
const CHANNEL_TRANSIENT_FAILURE = 3;
const CHANNEL_SHUTDOWN = 4;

/** A call given up by reconnect() while it waited on the old client. */
class CallMoved extends Error {}

/** Clients made in this thread: each one's number keeps its channels off every other's connections. */
// etcd answers about a watch the library let go must not throw out of its stream handler.
installEtcdWatchGuard();
// grpc-js's connection attempts bounded, for the channels that ask (ours: see the constructor).
installGrpcConnectBound();

let clientsMade = 0;
/** The stores open in this thread (reconnectEtcdStores). */
const openStores = new Set<EtcdKv>();

/** How many etcd clients this thread made (each one its own connections): tests, diagnostics. */
export function etcdClientsMade(): number {
  return clientsMade;
}

/**
 * New connections for every etcd store open in this thread (see the module comment): e.g. the
 * node address their connections were made from left the node. Returns how many were open.
 */
export function reconnectEtcdStores(): number {
  for (const s of openStores) s.reconnect();
  return openStores.size;
}

/** The policy shape etcd3 calls: only `execute` is used (for hosts and for the whole call). */
interface CallPolicy {
  execute<T>(fn: (context: unknown) => PromiseLike<T> | T): Promise<T>;
}

/** A call under way (EtcdKv.call), for the policies under it and for its error. */
interface CallInfo extends FailoverCall {
  /**
   * The call returned or threw. Work started under it that outlives it (a stream, a timer, made
   * while it ran) still sees it through the AsyncLocalStorage: it is not that call any more.
   */
  ended?: boolean;
}
const callContext = new AsyncLocalStorage<CallInfo>();
/** The call under way here, if any (see CallInfo.ended). */
const currentCall = (): CallInfo | undefined => {
  const call = callContext.getStore();
  return call && !call.ended ? call : undefined;
};
const attemptContext = new AsyncLocalStorage<Attempt>();

/**
 * Whether a failed call never reached etcd, so sending it again elsewhere cannot apply it twice:
 * grpc-js had no connection to the endpoint (its "No connection established": refused,
 * unreachable, TLS handshake failed; the call waits for none and is not written anywhere), or a
 * member without a leader refused it before handling it (requireLeader), or the endpoint is an
 * HTTP server that is not etcd (notEtcd). A call that had a connection ("Connection dropped", a
 * reset, a deadline) may have been applied.
 */
export function neverSent(e: unknown): boolean {
  if (notEtcd(e)) return true;
  return e instanceof GRPCUnavailableError && /No connection established|etcdserver: no leader/.test(e.message);
}

/**
 * An endpoint that answers, but not as etcd (etcd-failover.ts notEtcdAnswer): an HTTP/2 server
 * answering an HTTP status (grpc-js: "12 UNIMPLEMENTED: Received HTTP status code 404"; etcd
 * answers an unknown method with a gRPC status, never with an HTTP one), or an HTTP/1 server
 * (grpc-js: "14 UNAVAILABLE: No connection established. Last error: Protocol error (TIME)").
 */
function notEtcd(e: unknown): boolean {
  return e instanceof GRPCGenericError && notEtcdAnswer(e.message) !== null;
}

/**
 * etcd answered, but with more than the client takes (grpc-js's RESOURCE_EXHAUSTED "Received
 * message larger than max (N vs MAX_RECEIVE_BYTES)"): an answer, not an outage (etcd's own
 * RESOURCE_EXHAUSTED, "too many requests", is one: it is not this).
 */
function tooLarge(e: unknown): boolean {
  return e instanceof Error && /Received message larger than max/.test(e.message);
}

/**
 * Whether a call that passed its deadline was written to a connection (grpc-js names the
 * connection's remote_addr) or was still waiting for one ("Waiting for LB pick": the endpoint never
 * connected, nothing was sent). undefined: the message says neither.
 */
function deadlineSent(e: unknown): boolean | undefined {
  if (!(e instanceof GRPCDeadlineExceededError)) return undefined;
  if (/remote_addr=/.test(e.message)) return true;
  if (/Waiting for LB pick/.test(e.message)) return false;
  return undefined;
}

/** etcd3's errors as failover() reads them. */
const RULES: FailoverRules = {
  neverSent,
  readAgain: (e) => e instanceof GRPCUnavailableError && tlsRejection(e.message) === null,
  leaderless: (e, read) => e instanceof GRPCUnavailableError && (/etcdserver: no leader/.test(e.message) || (read && /etcdserver: leader changed/.test(e.message))),
  unanswered: (e) => !tooLarge(e) && !(e instanceof Error && requestTooLargeText(e.message)) && (e instanceof GRPCUnavailableError || e instanceof GRPCDeadlineExceededError || (e instanceof Error && isRecoverableError(e))),
  deadline: (e) => e instanceof GRPCDeadlineExceededError,
};

/**
 * The whole call's policy (etcd3 calls it with each attempt, `fn`, picking its endpoint): the
 * call's failover (etcd-failover.ts) with `hosts` endpoints within `budgetMs` (the call's deadline,
 * fixed when the call was made, so the attempts share it), each attempt noted in the call's
 * CallInfo (hostPolicy fills in its endpoint); one overtaken marks its endpoint (states) until it ends.
 */
function failoverPolicy(hosts: number, budgetMs: number, states: ReadonlyMap<string, HostState>): CallPolicy {
  return {
    execute<T>(fn: (context: unknown) => PromiseLike<T> | T): Promise<T> {
      const call: CallInfo = currentCall() ?? { kind: 'write', attempts: [] };
      return failover<T>(call, hosts, budgetMs, RULES, () => {
        const att: Attempt = {};
        call.attempts.push(att);
        const answer = attemptContext.run(att, async () => fn({}));
        answer.catch((e: unknown) => { att.error = e; });
        return {
          answer,
          overtaken: () => {
            const state = att.host === undefined ? undefined : states.get(att.host);
            if (call.cancelOvertaken && att.cancel) {
              // a create's copy is not left waiting on that member (failover()); the member is
              // drawn last until the attempt's deadline would have passed, as if it still waited
              att.cancel();
              if (state) state.downUntil = Math.max(state.downUntil, monoNow() + budgetMs);
              return;
            }
            if (state) overtakenUntil(state, answer);
          },
        };
      });
    },
  };
}

/**
 * The policy of one endpoint (`url`): notes the endpoint an attempt went to (its error names it),
 * and when it failed (refused, no answer within the deadline, not etcd), for preferConnected,
 * which draws it after the others for HOST_COOLDOWN_MS.
 */
function hostPolicy(url: string, state: HostState): CallPolicy {
  return {
    async execute(fn) {
      const att = attemptContext.getStore();
      if (att) att.host = url;
      try {
        return await fn({});
      } catch (e) {
        if (e instanceof GRPCUnavailableError || e instanceof GRPCDeadlineExceededError || notEtcd(e)) state.downUntil = monoNow() + HOST_COOLDOWN_MS;
        throw e;
      }
    },
  };
}

/** etcd3's view of one endpoint (its Host), as far as preferConnected reads it. */
interface PoolHost {
  cachedServices?: Record<string, { getChannel(): GrpcChannel } | undefined>;
}

/**
 * etcd3 sends each call to the endpoints in a random order. With several, the order is made best
 * first, at each pick (hostRank: connected now, not failed lately, not tried by this call), each
 * endpoint once per round as etcd3's own order. Another etcd3 shape: left as it is.
 */
function preferConnected(client: Etcd3, endpoints: readonly string[], states: ReadonlyMap<string, HostState>): void {
  const pool = (client as unknown as { pool?: { hosts?: PoolHost[]; shuffledHosts?: () => Generator<PoolHost> } }).pool;
  const hosts = pool?.hosts;
  if (!pool || typeof pool.shuffledHosts !== 'function' || !Array.isArray(hosts) || hosts.length !== endpoints.length) return;
  const urlOf = new Map(hosts.map((h, i) => [h, endpoints[i]!]));
  const connected = (h: PoolHost): boolean => {
    try {
      return h.cachedServices?.KV?.getChannel().getConnectivityState(false) === CHANNEL_READY;
    } catch {
      return false;
    }
  };
  pool.shuffledHosts = function* (): Generator<PoolHost> {
    let left: PoolHost[] = [];
    for (;;) {
      if (left.length === 0) left = hosts.slice();
      const tried = new Set(currentCall()?.attempts.map((a) => a.host));
      const now = monoNow();
      const pick = drawBest(left, (h) => {
        const url = urlOf.get(h)!;
        return hostRank(connected(h), states.get(url), tried.has(url), now);
      });
      left.splice(left.indexOf(pick), 1);
      yield pick;
    }
  };
}

/**
 * grpc-js sets the TLS connection's servername (SNI) to the endpoint's host whatever it is, and
 * Node warns once per process when that is an IP address ("[DEP0123] DeprecationWarning: Setting
 * the TLS ServerName to an IP address is not permitted by RFC 6066"): every CLI call and CNI
 * ADD/DEL to an https://IP:PORT etcd printed it into the container runtime's log. SNI names a
 * host, never an address, so for an IP endpoint the servername is left out: no SNI is sent (as RFC
 * 6066 says) and Node checks the server certificate against the connection's host (the IP, its
 * subjectAltName IP), as before. grpc-js has no option for it (grpc.ssl_target_name_override
 * replaces the name, it cannot remove it), so the one credentials object etcd3 made for its hosts
 * gets a connector factory that drops an IP servername; a name stays as it was. Anything else in
 * their place (another etcd3 or grpc-js shape) is left alone: the warning comes back, nothing else.
 */
function withoutIpServername(client: Etcd3): Etcd3 {
  type Connector = { connectionOptions?: { servername?: unknown } };
  type Credentials = { _createSecureConnector?: (...args: unknown[]) => Connector; __podwayNoIpSni?: true };
  const hosts = (client as unknown as { pool?: { hosts?: { channelCredentials?: Credentials }[] } }).pool?.hosts ?? [];
  for (const host of hosts) {
    const creds = host.channelCredentials;
    const make = creds?._createSecureConnector;
    if (!creds || typeof make !== 'function' || creds.__podwayNoIpSni) continue;
    creds.__podwayNoIpSni = true;
    creds._createSecureConnector = function (this: unknown, ...args: unknown[]): Connector {
      const connector = make.apply(this, args);
      const o = connector?.connectionOptions;
      if (o && typeof o.servername === 'string' && isIP(o.servername) !== 0) delete o.servername;
      return connector;
    };
  }
  return client;
}

interface Backoff {
  readonly duration: number;
  next(): Backoff;
}
function watchBackoff(attempt: number): Backoff {
  return {
    duration: Math.min(WATCH_BACKOFF_MIN_MS * 2 ** attempt, WATCH_BACKOFF_MAX_MS),
    next: () => watchBackoff(Math.min(attempt + 1, 10)),
  };
}

function toEntry(kv: IKeyValue): KvEntry {
  return {
    key: kv.key.toString('utf8'),
    value: kv.value.toString('utf8'),
    createRevision: Number(kv.create_revision),
    modRevision: Number(kv.mod_revision),
  };
}

/** One key as a watch saw it, to tell its store from another one later (EtcdKv.witnessCheck). */
export interface Witness {
  readonly key: string;
  readonly create: number;
  readonly mod: number;
}

export class EtcdKv implements KvStore, KvLeases {
  readonly description: string;
  /** "etcd at URL[,URL]", for the lines that say what this etcd did. */
  readonly endpointText: string;
  private client: Etcd3;
  private readonly etcdOptions: IOptions;
  /** Calls waiting on the current client: reconnect() gives them up (see the module comment). */
  private readonly waiting = new Set<(e: Error) => void>();
  private readonly endpoints: readonly string[];
  private readonly timeoutMs: number;
  private readonly connectTimeoutMs: number;
  private readonly maxReceiveBytes: number;
  private readonly watches = new Set<EtcdWatch>();
  private closed = false;
  /** What this store's calls learned about each endpoint (failoverPolicy), across reconnect(). */
  private readonly hostStates = new Map<string, HostState>();
  /** The header revision of the last answer (a create's fence compares with it: etcd-fence.ts). */
  private lastRevision: number | undefined;
  /** What this store's create fences did (etcd-fence.ts; tests, diagnostics). */
  readonly fences: FenceCounters = newFenceCounters();

  constructor(options: EtcdKvOptions) {
    const settings = etcdSettings(options);
    ({ endpoints: this.endpoints, timeoutMs: this.timeoutMs, connectTimeoutMs: this.connectTimeoutMs, description: this.description, maxReceiveBytes: this.maxReceiveBytes } = settings);
    this.endpointText = `etcd at ${this.endpoints.join(',')}`;
    this.etcdOptions = {
      hosts: [...this.endpoints],
      credentials: EtcdKv.credentials(options.tls),
      grpcOptions: {
        // Finds a silently dead connection under a long-lived watch (KEEPALIVE_TIME_MS); no pings
        // on an idle connection (etcd refuses them without a stream).
        'grpc.keepalive_time_ms': KEEPALIVE_TIME_MS,
        'grpc.keepalive_timeout_ms': KEEPALIVE_TIMEOUT_MS,
        'grpc.keepalive_permit_without_calls': 0,
        // gRPC takes answers of up to 4 MiB by default: a list of a large prefix is paged
        // (pagedList), and a page or a value up to MAX_RECEIVE_BYTES is taken.
        'grpc.max_receive_message_length': settings.maxReceiveBytes,
        // gRPC waits 1 s after a failed connect, growing 1.6x up to 120 s by default: a client
        // that found no way out (the node's address gone, etcd down) would then take up to two
        // minutes to see that the way is back. 5 s at most; each failed attempt is one SYN.
        'grpc.max_reconnect_backoff_ms': MAX_RECONNECT_BACKOFF_MS,
        // grpc-js bounds no connection attempt (grpc-connect-bound.ts): a fresh SYN every
        // CONNECT_RETRY_MS while unanswered, the attempt given up after connectAttemptMs.
        [CONNECT_RETRY_OPTION]: CONNECT_RETRY_MS,
        [CONNECT_ATTEMPT_OPTION]: settings.connectAttemptMs,
        // grpc-js's client option (not a channel option): on every call and watch.
        interceptors: [requireLeader],
      } as IOptions['grpcOptions'],
      faultHandling: {
        host: (url: string) => hostPolicy(url, this.hostState(url)) as never,
        global: failoverPolicy(this.endpoints.length, this.timeoutMs, this.hostStates) as never,
        watchBackoff: { next: () => watchBackoff(0) } as never,
      },
    };
    this.client = this.newClient();
    openStores.add(this);
  }

  /** A client of its own (the constructor's and each reconnect()'s): a new number, so its channels
   * never share a connection with another client's (see the module comment). */
  private newClient(): Etcd3 {
    const client = withoutIpServername(new Etcd3({ ...this.etcdOptions, grpcOptions: { ...this.etcdOptions.grpcOptions, [GENERATION_OPTION]: clientsMade++ } }));
    if (this.endpoints.length > 1) preferConnected(client, this.endpoints, this.hostStates);
    return client;
  }

  private hostState(url: string): HostState {
    let s = this.hostStates.get(url);
    if (!s) this.hostStates.set(url, (s = { downUntil: 0, overtaken: 0 }));
    return s;
  }

  /**
   * New connections (see the module comment): calls made from now on and every open watch use a
   * new client, watches resuming from the last revision they delivered; the old client is closed
   * (a call still waiting on it is given up: a read is sent again on the new one, a write fails
   * as unreachable with `reconnected`, and its caller re-reads and retries).
   */
  reconnect(): void {
    if (this.closed) return;
    const old = this.client;
    this.client = this.newClient();
    for (const w of this.watches) w.moveTo(this.client);
    const waiting = [...this.waiting];
    this.waiting.clear();
    for (const giveUp of waiting) giveUp(new CallMoved('its connection was left for a new one (reconnect) before it answered'));
    old.close();
  }

  /** Reads and checks the TLS files (etcd-common.ts readEtcdTls, which podway run calls at start). */
  static credentials(tls: EtcdTlsFiles | undefined): IOptions['credentials'] {
    const files = readEtcdTls(tls);
    return files ? { rootCertificate: files.ca, certChain: files.cert, privateKey: files.key } : undefined;
  }

  private callOptions(): { deadline: Date } {
    return { deadline: new MonoDeadline(monoNow() + this.timeoutMs) };
  }

  /** The gRPC channels of the KV service, one per endpoint (etcd3's Host clients, made on first use). */
  private kvChannels(): GrpcChannel[] {
    const hosts = (this.client as unknown as { pool?: { hosts?: { getServiceClient(name: string): { getChannel(): GrpcChannel } }[] } }).pool?.hosts ?? [];
    return hosts.map((h) => h.getServiceClient('KV').getChannel());
  }

  /** Whether a connection to some endpoint is up now. */
  private connectedNow(): boolean {
    try {
      return this.kvChannels().some((c) => c.getConnectivityState(false) === CHANNEL_READY);
    } catch {
      return false;
    }
  }

  /**
   * Waits until a connection to some endpoint is up, so that a call's deadline counts from there
   * (see timeoutMs). Returns at once when one is, and when every endpoint has failed to connect
   * (refused, unreachable: the call then fails at once as unreachable, as before). Throws
   * KvUnavailableError when none is up within connectTimeoutMs.
   */
  private async connection(what: string): Promise<void> {
    let channels: GrpcChannel[];
    try {
      channels = this.kvChannels();
    } catch {
      return; // a closed client: the call says so
    }
    const states = () => channels.map((c) => c.getConnectivityState(true));
    const settled = (s: number[]) => s.some((x) => x === CHANNEL_READY) || s.every((x) => x === CHANNEL_TRANSIENT_FAILURE || x === CHANNEL_SHUTDOWN);
    let now = states();
    if (settled(now)) return;
    // The bound counts the time the loop got to run (util/loop-time.ts), as etcd-lite's does: a
    // loop held for seconds (podway run's dataplane set up at a start on a loaded machine, while
    // the deferred CNI DELs' first pass connects) is not an etcd that did not answer; and before
    // saying unreachable, the answers that came while it was held are read (one poll phase).
    const budget = new LoopBudget(this.connectTimeoutMs);
    while (!settled(now)) {
      if (budget.left() <= 0) {
        await afterPoll();
        now = states();
        if (settled(now)) break;
        throw new KvUnavailableError(`etcd ${this.endpoints.join(',')} unreachable (${what}): no connection within ${this.connectTimeoutMs} ms`);
      }
      // The first channel to change state wakes us; each watch ends at its change or within
      // 250 ms (no timer of ours outlives the call by more).
      const wait = Math.min(250, budget.left());
      const until = new MonoDeadline(monoNow() + wait);
      await budget.wait(wait, new Promise<void>((resolve) => {
        let done = false;
        const wake = () => { if (!done) { done = true; resolve(); } };
        channels.forEach((c, i) => {
          try { c.watchConnectivityState(now[i], until, wake); } catch { wake(); }
        });
      }));
      now = states();
    }
  }

  /**
   * etcd errors that mean "not reachable" become KvUnavailableError; others pass unchanged. `call`:
   * the attempts of the call (which endpoints, how each failed), when it went through call().
   */
  private mapError(e: unknown, what: string, sentConnected = false, call?: CallInfo, written?: WrittenValue): Error {
    const err = e instanceof Error ? e : new Error(String(e));
    const withCause = <X extends Error>(x: X): X => {
      (x as { cause?: unknown }).cause = err;
      return x;
    };
    const tls = err instanceof GRPCUnavailableError ? tlsRejection(err.message) : null;
    if (tls) return withCause(new KvTlsRejectedError(`etcd ${this.endpoints.join(',')} (${what}): ${tls}`));
    if (notEtcd(err)) {
      const url = call?.attempts.find((a) => a.error === err)?.host ?? (this.endpoints.length === 1 ? this.endpoints[0]! : 'an endpoint');
      return withCause(new KvNotEtcdError(notEtcdText(this.description, what, url, notEtcdAnswer(err.message)!)));
    }
    const refused = requestTooLargeText(err.message, written);
    if (refused) return withCause(new Error(`${this.description} (${what}): ${refused}`));
    if (tooLarge(err)) {
      return withCause(new EtcdAnswerTooLargeError(`${this.description} (${what}): etcd's answer is larger than the ${this.maxReceiveBytes} bytes this client takes (${grpcReason(err.message)})`));
    }
    // A deadline's own text is gRPC's internals ("Deadline exceeded after 5.001s,LB pick:
    // ...,remote_addr=...", "Waiting for LB pick"): what it means to an operator is that nothing
    // answered in time, and whether the call was sent (deadlineError). A gRPC that says neither:
    // whether a connection was up before the call (`sentConnected`).
    if (err instanceof GRPCDeadlineExceededError) {
      return withCause(deadlineError(this.description, this.endpoints.length, what, this.timeoutMs, call, err, RULES, deadlineSent, sentConnected));
    }
    if (
      err instanceof GRPCUnavailableError ||
      err instanceof CallMoved ||
      err instanceof EtcdWatchStreamEnded ||
      isRecoverableError(err)
    ) {
      const kvErr = withCause(new KvUnavailableError(`etcd ${this.endpoints.join(',')} unreachable (${what}): ${quorumHint(grpcReason(err.message), this.endpoints.every((u) => u.startsWith('https:')))}${outcomeUnknownText(call)}`));
      kvErr.reconnected = err instanceof CallMoved;
      return kvErr;
    }
    return err;
  }

  /**
   * `fn` on the current client, its errors mapped (mapError); `kind` says what may be sent again
   * (see CallKind; `applied`: a guarded write's answer that it was applied). Given up by
   * reconnect() while it waits: a read is sent once more, on the new client; anything else throws.
   * `attempts`, if given, gets the call's attempts when it ends (a create's fence).
   */
  private async call<T>(what: string, fn: () => Promise<T>, kind: CallKind = 'write', applied?: (answer: T) => boolean, cancelOvertaken = false, attempts?: Attempt[], written?: WrittenValue): Promise<T> {
    if (this.closed) throw new Error(`${this.description}: store is closed`);
    for (let sent = 1; ; sent++) {
      let up = false;
      const info: CallInfo = { kind, applied: applied as ((answer: unknown) => boolean) | undefined, attempts: [], cancelOvertaken };
      try {
        await this.connection(what);
        up = this.connectedNow();
        return await callContext.run(info, () => this.onThisClient(fn));
      } catch (e) {
        if (e instanceof CallMoved && kind === 'read' && sent === 1 && !this.closed) continue;
        const mapped = this.mapError(e, what, up, info, written);
        // too slow, or etcd's own timeout: in the first seconds of a quorum loss, that is what etcd does (etcd-failover.ts)
        if (mapped instanceof KvSlowError || etcdTimedOut(mapped)) throw (await leaderLostError(this.description, what, this.timeoutMs, info, slowMembers(info, RULES, deadlineSent, up), (url) => this.leaderProbe(url))) ?? mapped;
        throw mapped;
      } finally {
        info.ended = true;
        attempts?.push(...info.attempts);
      }
    }
  }

  /**
   * Whether the member at `url` refuses, within LEADER_PROBE_MS, a serializable read that needs a
   * leader (requireLeader's "hasleader", on its KV channel): etcd's words then, else null
   * (leaderLostError). Straight on that member's channel, past the failover: only its answer counts.
   */
  private leaderProbe(url: string): Promise<string | null> {
    type KvClient = { range(req: object, md: unknown, opts: object, cb: (err: (Error & { details?: string }) | null) => void): void };
    const hosts = (this.client as unknown as { pool?: { hosts?: { getServiceClient(name: string): unknown }[] } }).pool?.hosts ?? [];
    const host = hosts[this.endpoints.indexOf(url)];
    if (!host || this.closed) return Promise.resolve(null);
    return new Promise((resolve) => {
      try {
        (host.getServiceClient('KV') as KvClient).range(
          { key: Buffer.from('/'), limit: 1, keys_only: true, serializable: true },
          new grpc.Metadata(),
          { deadline: new MonoDeadline(monoNow() + LEADER_PROBE_MS) },
          (err) => {
            const said = err ? (err.details ?? err.message) : '';
            resolve(/etcdserver: no leader/.test(said) ? 'etcdserver: no leader' : null);
          },
        );
      } catch {
        resolve(null); // a closed client
      }
    });
  }

  /** `fn()`, or CallMoved as soon as reconnect() leaves the client it was sent on. */
  private onThisClient<T>(fn: () => Promise<T>): Promise<T> {
    let giveUp!: (e: Error) => void;
    const moved = new Promise<never>((_, reject) => { giveUp = reject; });
    this.waiting.add(giveUp);
    const sent = fn();
    sent.catch(() => undefined); // given up: its own end (the deadline, the close) is not waited for
    return Promise.race([sent, moved]).finally(() => this.waiting.delete(giveUp));
  }

  /** The one endpoint, when there is one (null: several). */
  singleEndpoint(): string | null {
    return this.endpoints.length === 1 ? this.endpoints[0]! : null;
  }

  /** The cluster_id of the last get or list's answer (null before one answered). */
  clusterIdSeen(): string | null {
    return this.lastClusterId;
  }
  private lastClusterId: string | null = null;

  /** Notes the revision of an answer's header (lastRevision). */
  private noteRevision(header: { revision?: string | number } | undefined): void {
    const r = Number(header?.revision);
    if (r > 0) this.lastRevision = r;
  }

  async get(key: string): Promise<KvEntry | null> {
    return (await this.getLeased(key))?.entry ?? null;
  }

  /**
   * Every key of `prefix` at one revision, in pages (etcd-common.ts pagedList): a prefix larger
   * than one answer may be (thousands of WorkloadEndpoints) is read whole. `pageKeys`: the keys
   * per page (LIST_PAGE_KEYS; tests ask for fewer).
   */
  async list(prefix: string, pageKeys = LIST_PAGE_KEYS): Promise<KvList> {
    const keyAt = async (from: Buffer, rev: number | undefined): Promise<Buffer | null> => {
      const res = await this.call(`list ${prefix}`, () =>
        this.client.kv.range({ key: from, range_end: prefixRangeEnd(Buffer.from(prefix)), limit: 1, keys_only: true, ...(rev !== undefined ? { revision: rev } : {}) }, this.callOptions()),
        'read',
      );
      return res.kvs[0]?.key ?? null;
    };
    const { kvs, revision } = await pagedList<IKeyValue>(Buffer.from(prefix), (kv) => kv.key, (from, rev, limit) => this.listPage(prefix, from, rev, limit), `${this.description} (list ${prefix})`, pageKeys, keyAt);
    // etcd returns a range in key (byte) order unless asked otherwise.
    return { entries: kvs.map(toEntry), revision };
  }

  /**
   * One page of `prefix` (pagedList): at most `limit` keys from `from`, at `revision` (undefined:
   * the current one). Public for the tests of pagedList on a real etcd.
   */
  async listPage(prefix: string, from: Buffer, revision: number | undefined, limit: number): Promise<ListPage<IKeyValue>> {
    const res = await this.call(`list ${prefix}`, () =>
      this.client.kv.range({ key: from, range_end: prefixRangeEnd(Buffer.from(prefix)), limit, ...(revision !== undefined ? { revision } : {}) }, this.callOptions()),
      'read',
    );
    if (res.header?.cluster_id !== undefined) this.lastClusterId = String(res.header.cluster_id);
    this.noteRevision(res.header);
    return { kvs: res.kvs, more: Boolean(res.more), revision: Number(res.header.revision) };
  }

  /**
   * Create-if-absent with its fence (etcd-fence.ts): txn(if Version(key) == 0 && ModRevision(fence)
   * < R + 1 then put, else read the fence), R the last revision this store saw.
   */
  async create(key: string, value: string): Promise<KvEntry | null> {
    const k = Buffer.from(key);
    const v = Buffer.from(value);
    const revision = await fencedCreate(key, {
      revision: () => this.lastRevision,
      readRevision: async (fence) => {
        const res = await this.call(`create ${key}`, () =>
          this.client.kv.range({ key: Buffer.from(fence), keys_only: true }, this.callOptions()),
          'read',
        );
        this.noteRevision(res.header);
        return Number(res.header.revision);
      },
      round: async (fence, below) => {
        const f = Buffer.from(fence);
        const attempts: Attempt[] = [];
        const res = await this.call(`create ${key}`, () =>
          this.client.kv.txn(
            {
              compare: [
                { key: k, target: 'Version' as never, result: 'Equal' as never, version: 0 },
                { key: f, target: 'Mod' as never, result: 'Less' as never, mod_revision: below },
              ],
              success: [{ request_put: { key: k, value: v } }],
              failure: [{ request_range: { key: f, keys_only: true } }],
            },
            this.callOptions(),
          ),
          'guarded',
          (res) => res.succeeded,
          true, // a copy left waiting is cancelled (etcd-failover.ts), and fenced
          attempts,
          { key, bytes: v.length },
        );
        this.noteRevision(res.header);
        const range = res.responses[0]?.response_range;
        if (!res.succeeded && !range) throw new Error(`etcd: create of ${key} failed without returning its fence ${fence}`);
        const fenceMod = !res.succeeded && range?.kvs[0] ? Number(range.kvs[0].mod_revision) : 0;
        return { succeeded: res.succeeded, revision: Number(res.header.revision), fenceMod, copyLeft: copyLeft(attempts, RULES) };
      },
      writeFence: async (fence) => {
        const res = await this.call(`create ${key}`, () =>
          this.client.kv.txn(
            { compare: [], success: [{ request_put: { key: Buffer.from(fence), value: Buffer.from(JSON.stringify({ create: key })) } }], failure: [] },
            this.callOptions(),
          ),
          'guarded',
          (res) => res.succeeded,
          true,
        );
        this.noteRevision(res.header);
        return Number(res.header.revision);
      },
    }, this.fences, this.description);
    if (revision === null) return null;
    return { key, value, createRevision: revision, modRevision: revision };
  }

  async update(key: string, value: string, modRevision: number, guards: readonly KvGuard[] = []): Promise<KvEntry | null> {
    const k = Buffer.from(key);
    const guardCompares = guards.flatMap((g) => {
      const gk = Buffer.from(g.key);
      return [
        { key: gk, target: 'Mod' as never, result: 'Equal' as never, mod_revision: g.modRevision },
        { key: gk, target: 'Version' as never, result: 'Greater' as never, version: 0 },
      ];
    });
    const res = await this.call(`update ${key}`, () =>
      this.client.kv.txn(
        {
          compare: [
            { key: k, target: 'Mod' as never, result: 'Equal' as never, mod_revision: modRevision },
            // An absent key has ModRevision 0: without this, update(key, v, 0) would create it.
            { key: k, target: 'Version' as never, result: 'Greater' as never, version: 0 },
            ...guardCompares,
          ],
          success: [{ request_put: { key: k, value: Buffer.from(value), prev_kv: true } }],
          failure: [],
        },
        this.callOptions(),
      ),
      'guarded',
      (res) => res.succeeded,
      false,
      undefined,
      { key, bytes: Buffer.byteLength(value) },
    );
    this.noteRevision(res.header);
    if (!res.succeeded) return null;
    const prev = res.responses[0]?.response_put?.prev_kv;
    if (!prev) throw new Error(`etcd: update of ${key} succeeded without returning the previous entry`);
    return {
      key,
      value,
      createRevision: Number(prev.create_revision),
      modRevision: Number(res.header.revision),
    };
  }

  // Leases (kv.ts KvLeases): the liveness key of a running node (control/node-live.ts).

  async getLeased(key: string): Promise<{ entry: KvEntry; lease: string | null } | null> {
    const res = await this.call(`get ${key}`, () => this.client.kv.range({ key: Buffer.from(key) }, this.callOptions()), 'read');
    if (res.header?.cluster_id !== undefined) this.lastClusterId = String(res.header.cluster_id);
    this.noteRevision(res.header);
    const kv = res.kvs[0];
    if (!kv) return null;
    const lease = String(kv.lease ?? '0');
    return { entry: toEntry(kv), lease: lease === '0' ? null : lease };
  }

  async leaseTimeToLive(id: string): Promise<number> {
    const res = await this.call(`lease ${id} time to live`, () => this.client.leaseClient.leaseTimeToLive({ ID: id }, this.callOptions()), 'read');
    return Number(res.TTL);
  }

  async grantLease(ttlSeconds: number): Promise<string> {
    const res = await this.call(`grant a lease of ${ttlSeconds} s`, () => this.client.leaseClient.leaseGrant({ TTL: ttlSeconds, ID: 0 }, this.callOptions()));
    this.noteRevision(res.header);
    return String(res.ID);
  }

  /**
   * One renewal over etcd's LeaseKeepAlive stream (opened, one request, its answer, closed), as
   * clientv3's KeepAliveOnce: a renewal is idempotent, so it is a 'read' for the failover. The
   * stream carries the call's deadline.
   */
  async keepAliveLease(id: string): Promise<number> {
    return this.call(`keep lease ${id} alive`, async () => {
      const stream = (await this.client.leaseClient.leaseKeepAlive(this.callOptions())) as unknown as NodeJS.EventEmitter & { write(m: { ID: string }): void; end(): void };
      stream.on('error', () => undefined); // the first one is the answer's; later ones are news to nobody
      try {
        return await new Promise<number>((resolve, reject) => {
          stream.once('data', (r: { TTL?: string | number }) => resolve(Number(r.TTL ?? 0)));
          // grpc-js's own error (a stream's are not typed by etcd3 as its calls' are): typed here,
          // so that mapError says it in podway's words ("etcd URL unreachable (keep lease ID
          // alive): ...", not "14 UNAVAILABLE: No connection established. Last error: null ...")
          stream.once('error', (e: Error) => reject(castGrpcError(e)));
          stream.once('end', () => reject(new GRPCUnavailableError('the keep-alive stream ended without an answer')));
          stream.write({ ID: id });
        });
      } finally {
        stream.end();
      }
    }, 'read');
  }

  async revokeLease(id: string): Promise<void> {
    try {
      await this.call(`revoke lease ${id}`, () => this.client.leaseClient.leaseRevoke({ ID: id }, this.callOptions()));
    } catch (e) {
      // revoked already, or expired: its keys are gone, which is what was asked
      if (/lease not found/i.test((e as Error).message)) return;
      throw e;
    }
  }

  async putLeasedIf(key: string, value: string, lease: string, modRevision: number): Promise<boolean> {
    const k = Buffer.from(key);
    const res = await this.call(`put ${key}`, () =>
      this.client.kv.txn(
        {
          // an absent key has ModRevision 0: 0 asks for "absent"
          compare: [{ key: k, target: 'Mod' as never, result: 'Equal' as never, mod_revision: modRevision }],
          success: [{ request_put: { key: k, value: Buffer.from(value), lease } }],
          failure: [],
        },
        this.callOptions(),
      ),
      'guarded',
      (r) => r.succeeded,
      false,
      undefined,
      { key, bytes: Buffer.byteLength(value) },
    );
    this.noteRevision(res.header);
    return res.succeeded;
  }

  async putLeased(key: string, value: string, lease: string): Promise<void> {
    const res = await this.call(`put ${key}`, () => this.client.kv.put({ key: Buffer.from(key), value: Buffer.from(value), lease }, this.callOptions()), 'write', undefined, false, undefined, { key, bytes: Buffer.byteLength(value) });
    this.noteRevision(res.header);
  }

  async delete(key: string, modRevision?: number): Promise<boolean> {
    const k = Buffer.from(key);
    if (modRevision === undefined) {
      const res = await this.call(`delete ${key}`, () =>
        this.client.kv.deleteRange({ key: k }, this.callOptions()),
      );
      this.noteRevision(res.header);
      return Number(res.deleted) > 0;
    }
    const res = await this.call(`delete ${key}`, () =>
      this.client.kv.txn(
        {
          compare: [
            { key: k, target: 'Mod' as never, result: 'Equal' as never, mod_revision: modRevision },
            { key: k, target: 'Version' as never, result: 'Greater' as never, version: 0 },
          ],
          success: [{ request_delete_range: { key: k } }],
          failure: [],
        },
        this.callOptions(),
      ),
      'guarded',
      (res) => res.succeeded,
    );
    this.noteRevision(res.header);
    return res.succeeded && Number(res.responses[0]?.response_delete_range?.deleted ?? 0) > 0;
  }

  /** Discards etcd's history up to `revision` (watches from at or before it must resync). */
  async compact(revision: number): Promise<void> {
    await this.call(`compact ${revision}`, () =>
      this.client.kv.compact({ revision, physical: true }, this.callOptions()),
    );
  }

  watch(prefix: string, fromRevision: number, handlers: KvWatchHandlers): KvWatch {
    if (this.closed) throw new Error(`${this.description}: store is closed`);
    if (!Number.isInteger(fromRevision) || fromRevision < 1) {
      throw new RangeError(`watch: fromRevision must be an integer >= 1, got ${fromRevision}`);
    }
    const w = new EtcdWatch(this, this.client, prefix, fromRevision, handlers, this.timeoutMs);
    this.watches.add(w);
    w.onClosed = () => this.watches.delete(w);
    return w;
  }

  /**
   * The store's cluster_id and current revision by a linearizable read (a range without
   * `serializable`: the member answering first confirms with the leader that it has applied
   * everything committed, so a lagging member cannot answer with an old revision). A count-only
   * range of ClusterInformation "default", whose clusterGUID comes with it (null: none there); an
   * unreachable store throws KvUnavailableError.
   */
  async confirmedHeader(prefix: string): Promise<{ cluster: string; revision: number; guid: string | null }> {
    const res = await this.call(`confirm the revision of ${prefix}`, () =>
      this.client.kv.range({ key: Buffer.from(CLUSTER_INFORMATION_KEY), serializable: false }, this.callOptions()),
      'read',
    );
    const ci = res.kvs[0];
    return { cluster: String(res.header.cluster_id), revision: Number(res.header.revision), guid: ci ? clusterGuidOf(ci.value.toString('utf8')) : null };
  }

  /**
   * One key of `prefix` as the store has it now (a watch's first witness; null if none) and the
   * store's clusterGUID (null: no ClusterInformation "default", or none in it): one read-only
   * transaction, linearizable.
   */
  async readWitness(prefix: string): Promise<{ witness: Witness | null; guid: string | null }> {
    const start = Buffer.from(prefix);
    const res = await this.call(`read a key of ${prefix}`, () =>
      this.client.kv.txn(
        {
          compare: [],
          success: [
            { request_range: { key: start, range_end: prefixRangeEnd(start), limit: 1, keys_only: true, serializable: false } },
            { request_range: { key: Buffer.from(CLUSTER_INFORMATION_KEY), serializable: false } },
          ],
          failure: [],
        },
        this.callOptions(),
      ),
      'read',
    );
    const kv = res.responses[0]?.response_range?.kvs[0];
    const ci = res.responses[1]?.response_range?.kvs[0];
    return {
      witness: kv ? { key: kv.key.toString('utf8'), create: Number(kv.create_revision), mod: Number(kv.mod_revision) } : null,
      guid: ci ? clusterGuidOf(ci.value.toString('utf8')) : null,
    };
  }

  /**
   * Whether this store is the one `w` was seen in (see the module comment): null if so, else why
   * not. Read linearizably at `w.mod`: the same store answers with that very version; when that
   * revision is compacted, the key as it is now must come from the same creation, at or after
   * `w.mod`. Unreachable: throws KvUnavailableError (nothing concluded).
   */
  async witnessCheck(w: Witness): Promise<string | null> {
    const key = Buffer.from(w.key);
    const seen = `${w.key} (created at revision ${w.create}, modified at ${w.mod})`;
    let kv: IKeyValue | undefined;
    try {
      const res = await this.call(`read ${w.key} at revision ${w.mod}`, () =>
        this.client.kv.range({ key, revision: w.mod, keys_only: true, serializable: false }, this.callOptions()),
        'read',
      );
      kv = res.kvs[0];
    } catch (e) {
      if (e instanceof KvUnavailableError) throw e;
      const msg = (e as Error).message;
      if (/future revision/i.test(msg)) return `${this.endpointText} has not reached revision ${w.mod} of ${seen}`;
      if (!/compacted/i.test(msg)) throw e;
      // History compacted: the key as it is now. Gone, or created again after w.mod, says nothing
      // (the same store may have deleted it since: a node cut off longer than the compaction
      // retention, its witness a pod's endpoint); a wiped store is then told by its revision or
      // cluster_id only. A key alive now that was created at or before w.mod by another creation,
      // or the same creation modified last before w.mod, cannot be the same store's.
      const res = await this.call(`read ${w.key}`, () =>
        this.client.kv.range({ key, keys_only: true, serializable: false }, this.callOptions()),
        'read',
      );
      const now = res.kvs[0];
      if (!now || Number(now.create_revision) > w.mod) return null;
      if (Number(now.create_revision) !== w.create || Number(now.mod_revision) < w.mod) {
        return `${this.endpointText} has ${w.key} created at revision ${now.create_revision}, modified at ${now.mod_revision}, not ${seen}`;
      }
      return null;
    }
    if (!kv) return `${this.endpointText} had no ${w.key} at revision ${w.mod}: not the store of ${seen}`;
    if (Number(kv.create_revision) !== w.create || Number(kv.mod_revision) !== w.mod) {
      return `${this.endpointText} had ${w.key} created at revision ${kv.create_revision}, modified at ${kv.mod_revision} at revision ${w.mod}: not the store of ${seen}`;
    }
    return null;
  }

  /**
   * Whether a read at `revision` fails because etcd compacted it (used to name a canceled watch). A
   * read like the others (call()): it waits for a connection, and goes to another member when one
   * does not answer. false when no member answered (nothing known).
   */
  async isCompacted(prefix: string, revision: number): Promise<boolean> {
    const start = Buffer.from(prefix);
    try {
      await this.call(`read ${prefix} at revision ${revision}`, () =>
        this.client.kv.range({ key: start, range_end: prefixRangeEnd(start), revision, limit: 1, keys_only: true }, this.callOptions()),
        'read',
      );
      return false;
    } catch (e) {
      return !(e instanceof KvUnavailableError) && /compacted/i.test((e as Error).message);
    }
  }

  async close(): Promise<void> {
    if (this.closed) return;
    await Promise.all([...this.watches].map(w => w.close()));
    this.closed = true;
    openStores.delete(this);
    this.client.close();
  }
}

class EtcdWatch implements KvWatch {
  onClosed: () => void = () => undefined;
  private closed = false;
  /** The highest revision whose events were all delivered (fromRevision - 1 at first). */
  private delivered: number;
  private down = false;
  /** What the last 'down' said: the endpoint is not etcd, or another failure (onDisconnected). */
  private downKind: 'not-etcd' | 'other' = 'other';
  /** The etcd cluster that answered first (its response headers' cluster_id). */
  private clusterId: string | undefined;
  /** The store is being confirmed by linearizable reads (confirmStore). */
  private confirming = false;
  /** A header below `delivered` came since the last confirmation: a confirmed store counts it as lagging. */
  private wentBack = false;
  private confirmRetry: NodeJS.Timeout | undefined;
  /** A key of the prefix as this watch saw it (see the module comment); undefined until one is known. */
  private witness: Witness | undefined;
  /** The store's clusterGUID as this watch saw it: undefined until read, null when there was none. */
  private guid: string | null | undefined;
  /** What the confirmation under way compares the store with (see confirmStore), as it was when it began. */
  private basis: { seen: number; witness: Witness | undefined; guid: string | null | undefined } | undefined;
  private readingWitness = false;
  /** Headers below `delivered` that the linearizable read found to be a lagging member's (tests, diagnostics). */
  laggingHeaders = 0;
  /** Set once etcd canceled the watch: the compaction probe whose answer names the resync. */
  private resync: Promise<void> | undefined;
  /** etcd canceled the current watcher itself: it is not canceled again (etcd-watch-guard.ts). */
  private canceledByEtcd = false;
  private watcher: Watcher;

  constructor(
    private readonly store: EtcdKv,
    client: Etcd3,
    private readonly prefix: string,
    fromRevision: number,
    private readonly handlers: KvWatchHandlers,
    private readonly timeoutMs: number,
  ) {
    this.delivered = fromRevision - 1;
    this.watcher = this.subscribe(client, fromRevision);
    this.takeWitness();
  }

  /**
   * A first witness read from the store (a put delivered meanwhile, or later, takes its place),
   * and the store's clusterGUID when none is known yet (one seen is kept: only a put or delete of
   * the ClusterInformation delivered by this watch changes it).
   */
  private takeWitness(): void {
    if (this.readingWitness || this.closed) return;
    this.readingWitness = true;
    this.store.readWitness(this.prefix).then(
      ({ witness, guid }) => {
        if (this.confirming) return;
        if (!this.witness && witness) this.witness = witness;
        // Only when nothing is known: a ClusterInformation put or delete delivered while this read
        // was in flight (guid set, or null for a delete) is newer than what the read saw.
        if (this.guid === undefined) this.guid = guid;
      },
      () => undefined, // unreachable: the next events delivered try again
    ).finally(() => { this.readingWitness = false; });
  }

  private subscribe(client: Etcd3, fromRevision: number): Watcher {
    // watcher() attaches synchronously, so no response can arrive before our listeners are on.
    const watcher = client.watch().prefix(this.prefix).startRevision(String(fromRevision)).watcher();
    // Only the current watcher speaks: one left behind by moveTo() is ignored until it ends.
    watcher.on('data', res => watcher === this.watcher && this.onData(res));
    watcher.on('disconnected', err => watcher === this.watcher && this.onDisconnected(err));
    watcher.on('connected', (res: IWatchResponse) => watcher === this.watcher && this.onConnected(res));
    // etcd canceled the watch (its start revision was compacted); must stay attached after close
    // too, or EventEmitter would throw the 'error' event.
    watcher.on('error', err => watcher === this.watcher && void this.onCanceled(err));
    return watcher;
  }

  /** Go on with `client` from the last revision delivered; the old watcher is canceled (not waited for). */
  moveTo(client: Etcd3): void {
    if (this.closed || this.resync) return;
    const old = this.watcher;
    this.watcher = this.subscribe(client, this.delivered + 1);
    // On a dead connection the cancel is answered only when that connection is given up; the
    // watcher then leaves its manager, which stops retrying on the closed client.
    // (A watch that was down is reported up again by the new watcher's 'connected'.)
    void old.cancel().catch(() => undefined);
    // a new connection, possibly to another store at the same URL
    this.confirmStore();
  }

  /**
   * Whether the store that answered is another one than the one we watched (see the module
   * comment); if so the watch is closed and onResync(reason, true) told.
   */
  private replacedStore(header: IWatchResponse['header'] | undefined): boolean {
    if (!header) return false;
    const cluster = String(header.cluster_id);
    const revision = Number(header.revision);
    let reason: string | undefined;
    if (this.clusterId === undefined) this.clusterId = cluster;
    else if (cluster !== this.clusterId) reason = `${this.store.endpointText} is a different cluster (cluster_id ${cluster}, was ${this.clusterId})`;
    // A header's revision is the store's current one as the answering member has applied it:
    // below a revision we delivered, the store went back (wiped, restored) -- or, after a
    // reconnection to another member, that member lags behind the leader. A linearizable read
    // tells them apart before anything is re-listed (the watch drops what it replays meanwhile).
    if (!reason && revision < this.delivered) {
      this.wentBack = true;
      this.confirmStore();
      return false;
    }
    if (!reason) return false;
    this.replaced(reason);
    return true;
  }

  /**
   * After a header below `delivered`, and after a reconnection: linearizable reads decide whether
   * the store is still the one we watched. Its revision below ours, or another cluster_id:
   * replaced. At or above, the witness decides (a wiped store may have climbed past us meanwhile):
   * another key, version or creation at its revision: replaced; the same: a lagging member
   * answered (or the same store came back), the watch goes on. A read that fails concludes
   * nothing and all is tried again a second later while the watch is open.
   */
  private confirmStore(): void {
    if (this.confirming || this.closed) return;
    // Until concluded (reads failing are tried again), the revision and witness as they are now:
    // what the store at the other end delivers meanwhile must not stand in for them.
    this.confirming = true;
    const basis = { seen: this.delivered, witness: this.witness, guid: this.guid };
    this.basis = basis;
    const attempt = (): void => {
      this.otherStore(basis).then(
        (reason) => {
          this.confirming = false;
          this.basis = undefined;
          if (this.closed) return;
          if (reason) return this.replaced(reason);
          if (this.wentBack) this.laggingHeaders++;
          this.wentBack = false;
        },
        () => {
          if (this.closed) return;
          this.confirmRetry = setTimeout(attempt, 1000);
          this.confirmRetry.unref();
        },
      );
    };
    attempt();
  }

  /**
   * Why the store answering now is not the one this watch saw up to `basis` (null: the same, as far
   * as can be told): its cluster_id, its revision below ours, its clusterGUID changed or gone, the
   * witness's version. Unreachable: throws KvUnavailableError.
   */
  private async otherStore(basis: { seen: number; witness: Witness | undefined; guid: string | null | undefined }): Promise<string | null> {
    const h = await this.store.confirmedHeader(this.prefix);
    if (this.clusterId !== undefined && h.cluster !== this.clusterId) return `${this.store.endpointText} is a different cluster (cluster_id ${h.cluster}, was ${this.clusterId})`;
    if (h.revision < basis.seen) return `${this.store.endpointText} went back to revision ${h.revision} (we had seen revision ${basis.seen})`;
    if (basis.guid && h.guid !== basis.guid) {
      return h.guid
        ? `${this.store.endpointText} is another Calico datastore (ClusterInformation default has clusterGUID ${h.guid}, was ${basis.guid})`
        : `${this.store.endpointText} is another Calico datastore (no clusterGUID in ClusterInformation default any more, was ${basis.guid})`;
    }
    return basis.witness ? this.store.witnessCheck(basis.witness) : null;
  }

  /** The store is another one than the one we watched: the watch is closed and onResync(reason, true) told. */
  private replaced(reason: string): void {
    this.closed = true;
    clearTimeout(this.confirmRetry);
    this.resync = Promise.resolve();
    this.onClosed();
    if (!this.canceledByEtcd) void this.watcher.cancel().catch(() => undefined);
    this.handlers.onResync(reason, true);
  }

  private onData(res: IWatchResponse): void {
    if (this.closed) return;
    if (this.replacedStore(res.header)) return;
    if (res.events.length === 0) {
      // A progress notification: etcd sends them only to watchers that are caught up.
      this.delivered = Math.max(this.delivered, Number(res.header.revision));
      return;
    }
    const events: KvEvent[] = [];
    let last = this.delivered;
    for (const ev of res.events) {
      const rev = Number(ev.kv.mod_revision);
      if (rev <= this.delivered) continue; // replayed after a re-subscription
      last = Math.max(last, rev);
      if (ev.type === 'Put') {
        const entry = toEntry(ev.kv);
        events.push({ type: 'put', entry });
        if (!this.confirming) {
          this.witness = { key: entry.key, create: entry.createRevision, mod: entry.modRevision };
          if (entry.key === CLUSTER_INFORMATION_KEY) this.guid = clusterGuidOf(entry.value);
        }
      } else {
        const key = ev.kv.key.toString('utf8');
        events.push({ type: 'delete', key, modRevision: rev });
        if (!this.confirming && this.witness?.key === key) this.witness = undefined;
        if (!this.confirming && key === CLUSTER_INFORMATION_KEY) this.guid = null;
      }
    }
    if (!this.witness && !this.confirming) this.takeWitness();
    this.delivered = last;
    if (events.length > 0) this.handlers.onEvents(events);
  }

  private onDisconnected(err: Error): void {
    if (this.closed) return;
    // Resubscribe from what we delivered, not from the last header etcd3 saw (see module comment).
    (this.watcher.request as { start_revision?: number | string }).start_revision = this.delivered + 1;
    // Each failed re-subscription says why again. Said once while down, unless what answers at
    // the endpoint becomes something that is not etcd (an HTTP server took etcd's port), or stops
    // being that: the first words ("Connection dropped", as etcd stopped) would stand for the
    // whole outage. A stream that ended says nothing about why (it alternates with the attempts'
    // errors): it changes nothing.
    const how = notEtcdAnswer(err.message);
    const kind = how ? 'not-etcd' : 'other';
    if (this.down && (kind === this.downKind || err instanceof EtcdWatchStreamEnded)) return;
    this.down = true;
    this.downKind = kind;
    const detail = how
      ? notEtcdText(this.store.description, `watch ${this.prefix}`, this.store.singleEndpoint() ?? 'an endpoint', how)
      : `${this.store.description}: ${tlsRejection(err.message) ?? quorumHint(grpcReason(err.message))}`;
    this.handlers.onStatus?.('down', detail, how ? 'not-etcd' : undefined);
  }

  private onConnected(res: IWatchResponse | undefined): void {
    if (this.closed || this.replacedStore(res?.header)) return;
    if (!this.down) return;
    this.down = false;
    // back after a disconnection: the store at this URL may be another one (see the module comment)
    this.confirmStore();
    this.handlers.onStatus?.('up', `${this.store.description}: watch resumed from revision ${this.delivered + 1}`);
  }

  private async onCanceled(err: Error): Promise<void> {
    if (this.closed || this.resync) return;
    this.canceledByEtcd = true;
    this.onClosed();
    // A store wiped, filled past our revision and compacted cancels the resumed watch as
    // compacted, before (or while) the confirmation after the reconnection reads it: the store is
    // checked here too, against what the confirmation under way compares with if there is one.
    // Unreachable: a compaction resync, as before.
    const basis = this.basis ?? { seen: this.delivered, witness: this.witness, guid: this.guid };
    this.resync = Promise.all([
      this.store.isCompacted(this.prefix, this.delivered + 1),
      this.otherStore(basis).catch(() => null),
    ]).then(([compacted, other]) => {
      if (this.closed) return;
      if (other) return this.replaced(other);
      this.closed = true;
      clearTimeout(this.confirmRetry);
      this.handlers.onResync(compacted ? 'compacted' : `watch canceled by etcd: ${err.message}`);
    });
    await this.resync;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    clearTimeout(this.confirmRetry);
    this.onClosed();
    if (this.resync) return; // etcd already ended the watch
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      this.watcher.cancel().catch(() => undefined),
      new Promise<void>(resolve => (timer = setTimeout(resolve, this.timeoutMs))),
    ]);
    clearTimeout(timer);
  }
}

