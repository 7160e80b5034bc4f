// How a call goes from one etcd member to another, shared by both etcd clients (EtcdKv over
// etcd3/grpc-js, EtcdLiteKv over node:http2), which differ only in how they send one attempt to
// one endpoint and how their errors read (FailoverRules). Loads neither etcd3 nor gRPC.
import { NO_LEADER_RETRY_MS, quorumHint } from './etcd-common';
import { KvSlowError, KvUnavailableError } from './kv';
import { monoNow } from '../../util/mono-clock';

/**
 * What may be done with a call after it was sent to a member that did not answer (failover()):
 *   read     a range: it changes nothing, so it may go to every member;
 *   guarded  a transaction whose condition compares the key's ModRevision or Version (create,
 *            update, a delete at a revision): etcd applies it at most once, whichever members it
 *            is sent to (see failover()); also a write whose repetition changes nothing that
 *            matters (a create's fence, etcd-fence.ts);
 *   write    anything else (a plain delete, a compaction): sent again only where it never went.
 */
export type CallKind = 'read' | 'guarded' | 'write';

/** One sending of a call to one endpoint. */
export interface Attempt {
  /** The endpoint (its URL) the call was handed to; unset until one was. */
  host?: string;
  /** How it failed, if it did. */
  error?: unknown;
  /** Ends the attempt at once, its stream cancelled (set by the client once it is sent). */
  cancel?: () => void;
}

/** A call as failover() sees it, and what it found out. */
export interface FailoverCall {
  readonly kind: CallKind;
  /** guarded: whether an answer says the write was applied (the transaction's condition held). */
  readonly applied?: (answer: unknown) => boolean;
  /** Its attempts, in the order they were made (each client fills in host and error). */
  readonly attempts: Attempt[];
  /**
   * A create: attempts still waiting when another member answered are cancelled at once (their
   * members drawn last until their deadline would have passed), not left running (see failover()).
   */
  readonly cancelOvertaken?: boolean;
  /**
   * guarded: a member said the condition no longer held while another attempt, which may have
   * reached etcd, had no answer: whether this very write was applied is not known.
   */
  outcomeUnknown?: boolean;
}

/** How a client's errors read, for failover(). */
export interface FailoverRules {
  /** The attempt never reached etcd (no connection, "no leader", not etcd): another member may be asked. */
  neverSent(e: unknown): boolean;
  /** An "unavailable" answer after which a read is asked of another member (not a TLS refusal). */
  readAgain(e: unknown): boolean;
  /** "no leader" (or, to a read, "leader changed"): etcd is up there and electing. */
  leaderless(e: unknown, read: boolean): boolean;
  /** No answer from etcd (the connection failed under the attempt, or its deadline passed). */
  unanswered(e: unknown): boolean;
  /** The attempt's deadline passed. */
  deadline(e: unknown): boolean;
}

/** One attempt under way (failover()'s `send`). */
export interface Sent<T> {
  readonly answer: Promise<T>;
  /** Another member answered the call while this attempt still waits (called at most once). */
  overtaken(): void;
}

/**
 * With several endpoints, a read or guarded write with no answer after this share of its deadline
 * is also sent to another member (failover()); the first answer is taken.
 */
export const HEDGE_SHARE = 0.25;

/**
 * One call over `hosts` endpoints within `budgetMs` (its deadline: the attempts share it); `send`
 * makes one attempt on the best endpoint the call has not tried yet (each client draws them:
 * connected ones first, ones that failed recently last).
 *
 * An attempt that never reached etcd (rules.neverSent) is made again at once on the next
 * endpoint, at most once per endpoint; a read also after any other "unavailable" answer, e.g.
 * "etcdserver: leader changed" from a member whose read was under way while the leader died (as
 * clientv3's isSafeRetryImmutableRPC).
 *
 * A member that takes the call and gives no answer (stopped, frozen, its connection dead without
 * a word) would hold it until its deadline. So with several endpoints a read or a guarded write
 * still unanswered after HEDGE_SHARE of the deadline is sent to the next member too (and again
 * after as long, while members are left), the attempts running side by side, and the first answer
 * is the call's: the attempts still waiting are told (Sent.overtaken), and their members come last
 * for the calls after it until those attempts end. For a guarded write that is safe: its
 * condition compares the key's ModRevision, and the first attempt applied changes that revision,
 * so any other attempt of it, whenever it reaches etcd (even after the call ended), finds the
 * condition false and changes nothing: it is applied at most once. A create's condition is Version
 * 0, which holds again once the key is deleted, and etcd evaluates a transaction's condition when
 * it applies it, in raft order: a member stopped (SIGSTOP, a frozen VM) with a copy of our create
 * unread in its socket reads it when it runs again, as a fresh request with the deadline the
 * request carries (the time it lay there is not counted), and if the key was deleted meanwhile
 * (its caller, told the create succeeded on another member, may delete it at once), it creates the
 * key again. Seen against a real cluster: a copy whose attempt still ran when the member ran again
 * was applied after the delete; one cancelled before (the cancel, RST_STREAM, lying in the socket
 * behind it) was not, as a create that timed out there is not. So a create's attempts still
 * waiting when the call ends are cancelled at once (cancelOvertaken), not left until their
 * deadline. That leaves a race etcd decides when the member runs again (the request and its cancel
 * read together, the request's handler proposing before the cancel ends it; fresh CI runs saw the
 * copy applied after the delete 2 times of 2), which only a condition the late copy can no longer
 * meet closes: the create's fence (etcd-fence.ts). Its transaction also compares a fence key,
 * ModRevision(fence) < R + 1, R a store revision the client saw before the call, and a create that
 * left a copy on a member writes the fence key before it returns: the copy, whenever its member
 * applies it, finds the fence past its R and changes nothing. Applied at most once, a guarded
 * write whose connection failed under it (dropped, reset: it may have been applied) is sent to
 * the next member too. An answer that it was applied
 * is the call's at once. An answer that the condition did not hold is final only when every other
 * attempt is known not to be ours: each answered the same or never reached etcd; if one of them
 * may have reached etcd without an answer, that attempt may be what changed the revision, so the
 * call fails with that attempt's error and call.outcomeUnknown ("may have been applied"), and its
 * caller reads again, as after any write whose answer was lost. A plain write is never resent
 * once it may have reached etcd (a second delete would report "nothing deleted" for ours).
 *
 * When every endpoint was tried and one of them answered "no leader" (an election under way, or no
 * quorum), it is asked again every NO_LEADER_RETRY_MS while the budget lasts (also while another
 * attempt hangs on a stopped member): a call made during an election then waits for it. Fails with
 * the attempt that may have reached etcd and had no answer (a read: "no leader" first, if a member
 * said so), else "no leader", else the last error.
 */
export async function failover<T>(call: FailoverCall, hosts: number, budgetMs: number, rules: FailoverRules, send: () => Sent<T>): Promise<T> {
  const end = monoNow() + budgetMs;
  const read = call.kind === 'read';
  const hedging = hosts > 1 && call.kind !== 'write';
  const hedgeMs = budgetMs * HEDGE_SHARE;
  type Outcome = { sent: Sent<T>; ok: true; value: T } | { sent: Sent<T>; ok: false; error: unknown };
  const inflight = new Map<Sent<T>, Promise<Outcome>>();
  let started = 0;
  let nextHedgeAt = 0;
  const start = (): void => {
    started++;
    nextHedgeAt = monoNow() + hedgeMs;
    let sent: Sent<T>;
    try {
      sent = send();
    } catch (error) {
      sent = { answer: Promise.reject(error), overtaken: () => undefined };
    }
    inflight.set(sent, sent.answer.then(
      (value): Outcome => ({ sent, ok: true, value }),
      (error: unknown): Outcome => ({ sent, ok: false, error }),
    ));
  };
  const overtake = (): void => {
    for (const sent of inflight.keys()) sent.overtaken();
  };
  let leaderless: unknown;
  let last: unknown;
  // An attempt that may have reached etcd and had no answer (a write's may have been applied).
  let noAnswer: unknown;
  // guarded: an answer that the condition did not hold (final once no attempt could be ours).
  let conditionFailed: { value: T } | undefined;
  // Every member refused it and one of them has no leader: asked again at this time.
  let askAgainAt: number | undefined;
  start();
  for (;;) {
    const hedgeAt = hedging && started < hosts ? nextHedgeAt : undefined;
    const wakeAt = askAgainAt === undefined ? hedgeAt : Math.min(askAgainAt, hedgeAt ?? Infinity);
    const o = await nextOutcome(inflight, wakeAt);
    if (o === undefined) {
      // no answer within the share (the next member too), or time to ask the leaderless again
      if (askAgainAt !== undefined && monoNow() >= askAgainAt) askAgainAt = undefined;
      start();
      continue;
    }
    inflight.delete(o.sent);
    if (o.ok) {
      if (!call.applied || call.applied(o.value)) {
        overtake();
        return o.value;
      }
      conditionFailed ??= { value: o.value };
    } else {
      const e = o.error;
      last = e;
      if (rules.leaderless(e, read)) leaderless = e;
      const again = rules.neverSent(e) || (read && rules.readAgain(e));
      // A guarded write whose connection failed under it may have been applied: sent again all
      // the same (applied at most once), its answers read as above.
      const resend = !again && call.kind === 'guarded' && rules.unanswered(e) && !rules.deadline(e);
      if (resend) noAnswer ??= e;
      if (again || resend) {
        if (started < hosts) {
          start();
          continue;
        }
        // every member had it: a leaderless etcd is asked again while the time lasts
        if (leaderless !== undefined && askAgainAt === undefined && monoNow() + 2 * NO_LEADER_RETRY_MS < end) {
          askAgainAt = monoNow() + NO_LEADER_RETRY_MS;
        }
      } else if (rules.unanswered(e)) {
        noAnswer ??= e;
      } else {
        // etcd's own answer (a compacted revision, a bad request): the call's result
        overtake();
        throw e;
      }
    }
    // another member may still answer, or the leaderless are asked again
    if (inflight.size > 0 || askAgainAt !== undefined) continue;
    if (conditionFailed) {
      if (noAnswer === undefined) return conditionFailed.value;
      call.outcomeUnknown = true;
      throw noAnswer;
    }
    if (noAnswer !== undefined) throw read ? (leaderless ?? noAnswer) : noAnswer;
    throw leaderless ?? last;
  }
}

/** The first of `inflight` to end, or undefined at `wakeAt` if none ended by then. */
async function nextOutcome<O>(inflight: ReadonlyMap<unknown, Promise<O>>, wakeAt: number | undefined): Promise<O | undefined> {
  if (wakeAt === undefined) return Promise.race(inflight.values());
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      ...inflight.values(),
      new Promise<undefined>((resolve) => { timer = setTimeout(() => resolve(undefined), Math.max(0, wakeAt - monoNow())); }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

/** What the calls of one store learned about one of its endpoints. */
export interface HostState {
  /** It failed a call (refused, no answer within the deadline, not etcd): drawn last until then. */
  downUntil: number;
  /** Attempts still waiting on it after another member answered their call: drawn last meanwhile. */
  overtaken: number;
}

/**
 * Each attempt's endpoint, best first, among those the call was not sent to yet: one connected now;
 * then one not connected (a call made there waits for its connection: a member that drops
 * packets, or accepts TCP and says nothing, would hold it there); then one that failed a call
 * within HOST_COOLDOWN_MS or still holds attempts other members answered (HostState); then the
 * ones the call already went to (the leaderless asked again). Among equals, at random (the load
 * spread). Drawn last, not skipped: when every other member failed too, a call still goes there
 * rather than failing unsent.
 */
export function hostRank(connected: boolean, state: HostState | undefined, tried: boolean, now = monoNow()): number {
  if (tried) return 3;
  if (state && (now < state.downUntil || state.overtaken > 0)) return 2;
  return connected ? 0 : 1;
}

/** One of `items` of the lowest rank, at random among those. */
export function drawBest<H>(items: readonly H[], rank: (h: H) => number): H {
  const ranks = items.map(rank);
  const best = Math.min(...ranks);
  const equals = items.filter((_, i) => ranks[i] === best);
  return equals[Math.floor(Math.random() * equals.length)]!;
}

/** Marks `state` overtaken until `answer` settles (Sent.overtaken). */
export function overtakenUntil(state: HostState, answer: Promise<unknown>): void {
  state.overtaken++;
  const done = (): void => { state.overtaken--; };
  answer.then(done, done);
}

/** The words a failed guarded write adds when a member's answer left its outcome unknown. */
export function outcomeUnknownText(call: FailoverCall | undefined): string {
  return call?.outcomeUnknown ? '; the write may have been applied (another member found its condition changed, maybe by this very write)' : '';
}

/**
 * A call that passed its deadline, as both clients word it. Whether an attempt was written to a
 * connection (`sentOf`: true, false, or undefined when the client cannot tell: then `fallbackSent`,
 * whether a connection was up before the call): sent, it is a slow answer, not an outage: etcd
 * busy (or stopped), or this process too short of CPU to read the answer in time (KvSlowError);
 * still waiting for a connection, that member never connected. With several endpoints the error
 * names the members that had the call.
 */
export function deadlineError(
  store: string, endpoints: number, what: string, timeoutMs: number, call: FailoverCall | undefined,
  err: unknown, rules: Pick<FailoverRules, 'deadline'>, sentOf: (e: unknown) => boolean | undefined, fallbackSent: boolean,
): KvUnavailableError {
  const unknown = outcomeUnknownText(call);
  const sent = (e: unknown): boolean => sentOf(e) ?? fallbackSent;
  const timedOut = (call?.attempts ?? []).filter((a) => a.host !== undefined && rules.deadline(a.error));
  if (endpoints > 1 && timedOut.length > 0) {
    const members = (urls: string[]) => (urls.length === 1 ? `member ${urls[0]}` : `members ${urls.join(', ')}`);
    const answeredNot = [...new Set(timedOut.filter((a) => sent(a.error)).map((a) => a.host!))];
    const unconnected = [...new Set(timedOut.filter((a) => !sent(a.error)).map((a) => a.host!))].filter((u) => !answeredNot.includes(u));
    if (answeredNot.length > 0) {
      const also = unconnected.length > 0 ? `; ${members(unconnected)} did not connect` : '';
      return new KvSlowError(`${store} too slow (${what}): no answer within ${timeoutMs} ms from ${members(answeredNot)} on an open connection (etcd busy or stopped, or this host short of CPU)${also}${unknown}`);
    }
    return new KvUnavailableError(`${store} unreachable (${what}): ${members(unconnected)} did not connect within ${timeoutMs} ms${unknown}`);
  }
  if (sent(err)) return new KvSlowError(`${store} too slow (${what}): no answer within ${timeoutMs} ms on an open connection (etcd busy, or this host short of CPU)${unknown}`);
  return new KvUnavailableError(`${store} unreachable (${what}): did not connect within ${timeoutMs} ms`);
}

/**
 * How long each member that took a call and gave no answer by its deadline is given, after it, to
 * say whether it has a leader (leaderLostError).
 */
export const LEADER_PROBE_MS = 1000;

/**
 * etcd's own deadline for a call it could not commit or confirm with a quorum: "request timed out",
 * or the call's deadline (passed down to etcd) ending a read that waited for its leader ("context
 * deadline exceeded", etcd's words as its gRPC server sends them, code UNKNOWN).
 */
export function etcdTimedOut(e: unknown): boolean {
  return e instanceof Error && /etcdserver: request timed out|\bcontext deadline exceeded\b/.test(e.message);
}

/**
 * The members a call ran out its deadline on, on an open connection (deadlineError's "too slow":
 * `sentOf` and `fallbackSent` as there), or that answered it with etcd's own deadline ("request
 * timed out", which the call's deadline passed down to etcd can bring just before ours).
 */
export function slowMembers(call: FailoverCall, rules: Pick<FailoverRules, 'deadline'>, sentOf: (e: unknown) => boolean | undefined, fallbackSent: boolean): string[] {
  const slow = (e: unknown): boolean => (rules.deadline(e) && (sentOf(e) ?? fallbackSent)) || etcdTimedOut(e);
  return [...new Set(call.attempts.filter((a) => a.host !== undefined && slow(a.error)).map((a) => a.host!))];
}

/**
 * A call that ran out its deadline on members that took it ("too slow"), or that etcd timed out
 * itself, in the first seconds of a quorum loss: a member takes a call while it still follows a
 * leader that is gone (or still leads with most of its followers gone), and the call waits for a
 * quorum that is not coming; etcd says "no leader" only to calls made once the member noticed (an
 * election timeout, 1 s by default, later), and its own timeout ("request timed out", or the
 * call's deadline passed down to it) can come just before the client's. So each such member is
 * asked then, within LEADER_PROBE_MS, a read that needs a leader (`probe`: a serializable range
 * with "hasleader", which a member without one refuses at once, resolving to etcd's words; null
 * for anything else: an answer, no answer, no connection). One that says "no leader": the call's
 * error is etcd having no quorum (KvUnavailableError, as every "no leader" is), not "too slow";
 * null when none says so (etcd busy or stopped, this host short of CPU: the error stands).
 */
export async function leaderLostError(
  store: string, what: string, timeoutMs: number, call: FailoverCall, members: readonly string[], probe: (member: string) => Promise<string | null>,
): Promise<KvUnavailableError | null> {
  if (members.length === 0) return null;
  const said = await Promise.all(members.map((m) => probe(m).catch(() => null)));
  const i = said.findIndex((x) => x !== null);
  if (i < 0) return null;
  const how = members.length === 1
    ? `member ${members[0]} had the call without answering for ${timeoutMs} ms, then said so`
    : `members ${members.join(', ')} had the call without answering for ${timeoutMs} ms, then ${members[i]} said so`;
  const write = call.kind === 'read' ? '' : '; the write, taken before the quorum was lost, may still be applied once it is back';
  return new KvUnavailableError(`${store} unreachable (${what}): ${quorumHint(`${said[i]} (${how})`)}${write}${outcomeUnknownText(call)}`);
}

/** notEtcdAnswer's word for an http:// endpoint that speaks TLS (the light client asks: etcd-lite.ts). */
const TLS_NOT_HTTP = 'it speaks TLS';

/**
 * How an endpoint that answers, but not as etcd, answered etcd's gRPC API, from the error's text
 * (null: not that): an HTTP status (a 404 from an HTTP/2 server; not 502-504, a proxy's word for an
 * etcd behind it that is down), or bytes that are not HTTP/2 ("Protocol error", nghttp2's and
 * grpc-js's word: an HTTP/1 server such as `python3 -m http.server` answers HTTP/2's preface with
 * an HTTP/1 error). etcd itself answers in gRPC, never either way.
 */
export function notEtcdAnswer(message: string): string | null {
  const http = /Received HTTP status code (\d+)/.exec(message);
  if (http && !/^50[234]$/.test(http[1]!)) return `it answered HTTP ${http[1]} to etcd's gRPC API`;
  if (/\bProtocol error\b/.test(message)) return 'it answered etcd\'s gRPC API with something else than HTTP/2 (an HTTP/1 server?)';
  if (/\band it speaks TLS\b/.test(message)) return TLS_NOT_HTTP;
  return null;
}

/** The words for an endpoint that answers but is not etcd (`how`: notEtcdAnswer's). */
export function notEtcdText(store: string, what: string, url: string, how: string): string {
  if (how === TLS_NOT_HTTP) return `${store} (${what}): the endpoint ${url} speaks TLS, not plain HTTP/2: an https:// etcd given as http:// (give it as ${url.replace(/^http:/, 'https:')}, with its CA in --etcd-ca-cert-file / ETCD_CA_CERT_FILE and, if etcd asks for one, a client certificate)`;
  return `${store} (${what}): the endpoint ${url} answers but is not etcd: ${how} (another service at that port?)`;
}
