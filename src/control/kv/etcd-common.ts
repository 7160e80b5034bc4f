// What both etcd clients share and that loads neither etcd3 nor gRPC: the options, the timing
// constants, the TLS files and their checks, and the words for etcd's failures. EtcdKv (etcd-kv.ts,
// etcd3 over grpc-js: watches, long-lived processes) and EtcdLiteKv (etcd-lite.ts, the KV calls of a
// short-lived process straight over HTTP/2) give the same errors from these.
import { createPrivateKey, X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';

export interface EtcdTlsFiles {
  /** PEM CA bundle that signed the etcd server certificates (Calico's ETCD_CA_CERT_FILE). */
  readonly caFile?: string;
  /** PEM client certificate (ETCD_CERT_FILE); needs keyFile. */
  readonly certFile?: string;
  /** PEM client key (ETCD_KEY_FILE); needs certFile. */
  readonly keyFile?: string;
}

export interface EtcdKvOptions {
  /** Client URLs, e.g. `http://127.0.0.1:2379`; all http or all https. */
  readonly endpoints: readonly string[];
  readonly tls?: EtcdTlsFiles;
  /**
   * Deadline of each call, in ms (default 5000), counted from when a connection to etcd is up:
   * the time a fresh process spends connecting (slow when its CPU is short) is not taken from it.
   */
  readonly timeoutMs?: number;
  /**
   * Bound on making that connection, in ms (default: timeoutMs; the CNI plugin gives it
   * CNI_CONNECT_TIMEOUT_MS). A refused or unreachable endpoint fails at once whatever it is.
   */
  readonly connectTimeoutMs?: number;
  /** The largest answer taken, in bytes (default MAX_RECEIVE_BYTES; tests give less). */
  readonly maxReceiveBytes?: number;
}

export const DEFAULT_TIMEOUT_MS = 5000;

/** What both etcd clients (EtcdKv, EtcdLiteKv) take from their options, the same way. */
export interface EtcdSettings {
  readonly endpoints: readonly string[];
  readonly timeoutMs: number;
  readonly connectTimeoutMs: number;
  /** One connection attempt's bound: CONNECT_ATTEMPT_MS, or connectTimeoutMs if longer. */
  readonly connectAttemptMs: number;
  /** "etcd URL[,URL]", the start of their error messages. */
  readonly description: string;
  /** The largest answer taken (MAX_RECEIVE_BYTES unless the options say less). */
  readonly maxReceiveBytes: number;
}

/** "etcd URL[,URL]": how a store of these endpoints names itself (errors, its fence counts). */
export function etcdDescription(endpoints: readonly string[]): string {
  return `etcd ${endpoints.join(',')}`;
}

/** `options` with their defaults; throws when no endpoint is given. */
export function etcdSettings(options: EtcdKvOptions): EtcdSettings {
  if (options.endpoints.length === 0) throw new Error('etcd: no endpoints given');
  const timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  const connectTimeoutMs = options.connectTimeoutMs ?? timeoutMs;
  return {
    endpoints: [...options.endpoints],
    timeoutMs,
    connectTimeoutMs,
    connectAttemptMs: Math.max(CONNECT_ATTEMPT_MS, connectTimeoutMs),
    description: etcdDescription(options.endpoints),
    maxReceiveBytes: options.maxReceiveBytes ?? MAX_RECEIVE_BYTES,
  };
}
/**
 * The CNI plugin's bound on making its connection (connectTimeoutMs): etcd refusing or the host
 * unreachable fail at once (no connection established); this bounds a connection attempt nobody
 * answers (packets dropped) or one a CPU-starved fresh process is slow to finish (a storm of
 * plugin processes). Calico's etcd client dials for up to 30 s (libcalico-go's clientTimeout) too.
 */
export const CNI_CONNECT_TIMEOUT_MS = 30_000;
/**
 * How long one attempt to connect to a member (TCP, TLS, HTTP/2 settings) may take before it is
 * given up and made again (by grpc-js after its backoff; by EtcdLiteKv at the next call): gRPC's
 * "min connect timeout", or the connect bound (connectTimeoutMs) if that is longer, so that a
 * CPU-starved process's TLS handshake is never cut short of what its calls wait for. Within it the
 * TCP connection is dialled afresh every CONNECT_RETRY_MS while unanswered (tcp-dial.ts): a path
 * that comes back is used about a second later, not at the kernel's next SYN retransmission.
 */
export const CONNECT_ATTEMPT_MS = 20_000;

/**
 * HTTP/2 keepalive of both clients while calls or watches are open on a connection: a PING after
 * KEEPALIVE_TIME_MS, and the connection dropped when its answer does not come within
 * KEEPALIVE_TIMEOUT_MS. A connection cut silently (packets dropped, a member's host frozen) is
 * found within 15 s (a watch on it is then down and resubscribes on a new connection) instead of the
 * kernel's retransmission timeout (~15 min). etcd accepts pings every 5 s or slower while a stream
 * is open (and none without one: no pings on an idle connection).
 */
export const KEEPALIVE_TIME_MS = 10_000;
export const KEEPALIVE_TIMEOUT_MS = 5_000;

/** With several endpoints, one that failed a call is drawn after the others for this long (etcd-failover.ts, hostRank). */
export const HOST_COOLDOWN_MS = 1000;

/** A leaderless etcd is asked again this often while the call's time lasts (an election takes 1-2 s). */
export const NO_LEADER_RETRY_MS = 250;

/** Where each TLS file comes from, for errors a user can act on. */
export const TLS_FILES = {
  ca: { what: 'CA certificate', names: '--etcd-ca-cert-file / ETCD_CA_CERT_FILE' },
  cert: { what: 'client certificate', names: '--etcd-cert-file / ETCD_CERT_FILE' },
  key: { what: 'client key', names: '--etcd-key-file / ETCD_KEY_FILE' },
} as const;

/** Reads a TLS file and checks it holds what it should (PEM certificate or key), so a wrong file
 * is a clear error at start rather than a TLS handshake that fails on every retry. */
export function readTlsFile(kind: keyof typeof TLS_FILES, path: string): Buffer {
  const { what, names } = TLS_FILES[kind];
  let data: Buffer;
  try {
    data = readFileSync(path);
  } catch (e) {
    // the errno kept: a file not there yet (ENOENT) may come right by itself, podway run tells it apart
    throw Object.assign(new Error(`etcd TLS: cannot read the ${what} file ${path} (${names}): ${(e as Error).message}`), { code: (e as NodeJS.ErrnoException).code });
  }
  try {
    if (kind === 'key') createPrivateKey(data);
    else new X509Certificate(data);
  } catch (e) {
    throw new Error(`etcd TLS: the ${what} file ${path} (${names}) is not a PEM ${kind === 'key' ? 'private key' : 'certificate'}: ${(e as Error).message}`);
  }
  return data;
}

/** The TLS files of an etcd spec, read and checked (null: plain http). */
export function readEtcdTls(tls: EtcdTlsFiles | undefined): { ca: Buffer; cert?: Buffer; key?: Buffer } | null {
  if (!tls || (!tls.caFile && !tls.certFile && !tls.keyFile)) return null;
  if (!tls.certFile !== !tls.keyFile) {
    throw new Error(`etcd TLS: a client certificate file (${TLS_FILES.cert.names}) and a key file (${TLS_FILES.key.names}) go together; only one was given`);
  }
  if (!tls.caFile) throw new Error(`etcd TLS: a client certificate needs the CA certificate file too (${TLS_FILES.ca.names})`);
  return {
    ca: readTlsFile('ca', tls.caFile),
    cert: tls.certFile ? readTlsFile('cert', tls.certFile) : undefined,
    key: tls.keyFile ? readTlsFile('key', tls.keyFile) : undefined,
  };
}

/**
 * etcd's own words when it is up but cannot serve (most members down, or this one cut off from
 * them), and a TLS hello dropped by an endpoint (https:// given for a plain-http etcd?), with what
 * they mean to an operator: "etcdserver: no leader" (a member asked to serve only
 * with a leader has none) and "etcdserver: request timed out" (a member could not commit or
 * confirm a call with a quorum in time).
 */
export function quorumHint(reason: string, https = false): string {
  if (/etcdserver: no leader/.test(reason)) return `etcd has no leader, no quorum (most members down or cut off?): ${reason}`;
  if (/etcdserver: request timed out/.test(reason)) return `etcd could not reach a quorum in time (most members down or cut off?): ${reason}`;
  // An https:// endpoint whose etcd serves plain http: the server drops the TLS hello, which is
  // also what a connection cut at that moment looks like, so a hint (retried as an outage), not a
  // configuration error as the "wrong version number" answer of tlsRejection is.
  // The same dropped hello reads as a reset when the server's RST comes before its FIN is seen
  // (timing: seen on a loaded machine): hinted the same for https:// endpoints only.
  if (/socket disconnected before secure TLS connection was established/i.test(reason) || (https && /\bECONNRESET\b/.test(reason))) return `${reason} (the endpoint may not speak TLS: an http:// etcd given as https://?)`;
  return reason;
}

/**
 * grpc-js's words for a failed connection, down to the cause: "14 UNAVAILABLE: No connection
 * established. Last error: Error: connect ECONNREFUSED 10.0.0.5:2379. Resolution note: " becomes
 * "connect ECONNREFUSED 10.0.0.5:2379" (the resolution note kept when it says something).
 */
export function grpcReason(message: string): string {
  const m = /Last error: (?:Error: )?(.*?)\.? Resolution note: ?(.*)$/s.exec(message);
  if (m) {
    // grpc-js stamps the last error with its time ("Protocol error (2026-12-07T17:19:42.958Z)"),
    // and has none to give while it waits to connect again ("Last error: null. Resolution note: ;")
    let last = m[1]!.replace(/ \(\d{4}-\d\d-\d\dT[\d:.]+Z\)$/, '').trim();
    if (last === '' || last === 'null' || last === 'undefined') last = 'no connection (refused or not answering; trying again)';
    const note = m[2]!.replace(/^[\s;]+|[\s;]+$/g, '');
    return note ? `${last} (${note})` : last;
  }
  // "14 UNAVAILABLE: Connection dropped": the status code says nothing more than "unreachable".
  return message.replace(/\.? Resolution note: ?$/, '').replace(/^\d+ [A-Z_]+: /, '');
}

/**
 * What a failed TLS handshake says about the configuration, or null when it is not one of those:
 * etcd's alert refusing our client certificate (no certificate, one from a CA it does not trust,
 * expired, ...), our CA file not accepting etcd's server certificate, or an endpoint that does not
 * speak TLS. grpc-js words them "No connection established. Last error: ...:sslv3 alert bad
 * certificate:..." / "... Last error: Error: unable to verify the first certificate".
 */
export function tlsRejection(message: string): string | null {
  const alert = /alert ((?:bad|unsupported|revoked|expired|unknown) certificate|unknown ca|certificate required|access denied|handshake failure|decrypt error)/i.exec(message);
  if (alert) {
    return `etcd refused the TLS handshake: ${alert[1]!.toLowerCase()} (the client certificate and key: ${TLS_FILES.cert.names}, ${TLS_FILES.key.names}; etcd must trust the CA that signed it)`;
  }
  const server = /(unable to verify the first certificate|self[- ]signed certificate(?: in certificate chain)?|unable to get (?:local )?issuer certificate|certificate has expired|certificate is not yet valid|Hostname\/IP does not match certificate's altnames[^.]*)/i.exec(message);
  if (server) return `etcd's server certificate is not accepted: ${server[1]} (${TLS_FILES.ca.names} must hold the CA that signed it)`;
  if (/wrong version number|packet length too long/i.test(message)) return `the endpoint does not speak TLS (an http:// etcd given as https://?)`;
  return null;
}


/**
 * A prefix is listed in pages of at most this many keys (both clients' list()), each page one
 * range request: a prefix of thousands of WorkloadEndpoints is many answers of a bounded size,
 * not one answer that outgrows the receive bound (MAX_RECEIVE_BYTES). kube-apiserver's paging of
 * etcd (limit + the next key, at the first page's revision) is the same; 500 is its usual page.
 */
export const LIST_PAGE_KEYS = 500;

/**
 * The largest answer either client takes from etcd, in bytes (gRPC's default is 4 MiB, grpc-js's
 * `grpc.max_receive_message_length`; clientv3, Calico's client, takes up to 2 GiB). A value etcd
 * stores is at most its --max-request-bytes (1.5 MiB by default) and a page of LIST_PAGE_KEYS
 * such keys would be larger than this: a page whose answer is too large is asked again with
 * fewer keys (pagedList), down to one key, so only a single value larger than this bound (an
 * etcd run with --max-request-bytes above 64 MiB) cannot be read.
 */
export const MAX_RECEIVE_BYTES = 64 * 1024 * 1024;

/** A paged list whose revision etcd compacted under it is begun again at most this many times. */
export const LIST_RESTARTS = 5;

/** An answer larger than the bound the client takes (MAX_RECEIVE_BYTES): not an outage. */
export class EtcdAnswerTooLargeError extends Error {}

/** etcd's --max-request-bytes when not given: 1.5 MiB. */
export const ETCD_DEFAULT_MAX_REQUEST_BYTES = 1.5 * 1024 * 1024;
/** What etcd's gRPC server takes above its --max-request-bytes (etcd's grpcOverheadBytes). */
export const ETCD_GRPC_OVERHEAD_BYTES = 512 * 1024;

/** A write's largest value, for the words of a request etcd refused as too large. */
export interface WrittenValue {
  readonly key: string;
  /** The value's length in bytes. */
  readonly bytes: number;
}

/**
 * etcd refused a request larger than it takes: one above its --max-request-bytes (1.5 MiB by
 * default; etcdserver's "request is too large") or above that and gRPC's 512 KiB over it, which
 * its gRPC server refuses unread ("grpc: received message larger than max (N vs. M)", M the flag
 * plus 512 KiB). etcd answered, the request is the matter, not an outage. The words for it, naming
 * the key written and its value's size (`written`: a write's largest value) and etcd's limit (its
 * value when etcd said it), or null when `details` says something else.
 */
export function requestTooLargeText(details: string, written?: WrittenValue): string | null {
  const grpc = /\bgrpc: received message larger than max \((\d+) vs\.? (\d+)\)/.exec(details);
  if (!grpc && !/\bgrpc: received message larger than max\b|etcdserver: request is too large/.test(details)) return null;
  const limit = grpc
    ? `etcd's --max-request-bytes, ${Number(grpc[2]) - ETCD_GRPC_OVERHEAD_BYTES} bytes here (its gRPC server refused the ${grpc[1]}-byte request unread: above that and 512 KiB)`
    : `etcd's --max-request-bytes (${ETCD_DEFAULT_MAX_REQUEST_BYTES} bytes, 1.5 MiB, unless etcd was given another)`;
  const what = written ? `the value of ${written.key} is ${written.bytes} bytes` : 'the request';
  return `etcd refused the request as larger than it takes: ${what}, over ${limit}: ${details.replace(/^\d+ [A-Z_]+: /, '')}`;
}

/** The size of the answer a client refused ("Received message larger than max (N vs M)"), or null. */
export function answerBytes(details: string): number | null {
  const m = /Received message larger than max \((\d+) vs/.exec(details);
  return m ? Number(m[1]) : null;
}

/** Whether an etcd error says that the revision asked for is compacted (etcd's ErrCompacted). */
export function compactedError(e: unknown): boolean {
  return e instanceof Error && /required revision has been compacted/.test(e.message);
}

/**
 * A single key's answer was larger than the client takes (pagedList, at one key a page): the error
 * names that key (read with its key only, `keyAt`), its size and the bound, not only the list. If
 * the key cannot be read, the error as it was.
 */
async function tooLargeKey(e: EtcdAnswerTooLargeError, from: Buffer, revision: number | undefined, keyAt: (from: Buffer, revision: number | undefined) => Promise<Buffer | null>, what: string): Promise<Error> {
  let key: Buffer | null;
  try {
    key = await keyAt(from, revision);
  } catch {
    return e;
  }
  if (!key) return e;
  const bytes = answerBytes(e.message);
  const max = /larger than the (\d+) bytes this client takes/.exec(e.message)?.[1];
  return Object.assign(new EtcdAnswerTooLargeError(`${what}: the value of ${key.toString('utf8')} is ${bytes !== null ? `about ${bytes} bytes` : 'too large'}, larger than the ${max ?? MAX_RECEIVE_BYTES} bytes this client takes (etcd stores values up to its --max-request-bytes, which is above that)`), { cause: e });
}

/** One page of a prefix (pagedList): its entries in key order, whether more follow, and the header's revision. */
export interface ListPage<T> {
  readonly kvs: readonly T[];
  readonly more: boolean;
  readonly revision: number;
}

/**
 * Every key of a prefix at one revision, read in pages (LIST_PAGE_KEYS keys each): the first page
 * at the store's current revision, the next ones from the key after the last one read, at the
 * first page's header revision (etcd's range with `revision`), so the pages together are one
 * consistent snapshot, as a single range would be. `page(from, revision, limit)` reads one
 * (revision undefined: the current one). A page whose answer is larger than the client takes
 * (EtcdAnswerTooLargeError) is asked again with a quarter of the keys, down to one. When etcd
 * compacted the revision between two pages (a compaction while a long list ran), the list begins
 * again at the current revision, at most LIST_RESTARTS times; then the compaction error is thrown
 * (`what` names the list). `keyOf` gives an entry's key bytes.
 */
export async function pagedList<T>(
  prefix: Buffer,
  keyOf: (kv: T) => Buffer,
  page: (from: Buffer, revision: number | undefined, limit: number) => Promise<ListPage<T>>,
  what: string,
  pageKeys = LIST_PAGE_KEYS,
  keyAt?: (from: Buffer, revision: number | undefined) => Promise<Buffer | null>,
): Promise<{ kvs: T[]; revision: number; pages: number; restarts: number }> {
  let limit = pageKeys;
  let pages = 0;
  for (let restarts = 0; ; restarts++) {
    const kvs: T[] = [];
    let from = prefix;
    let revision: number | undefined;
    for (;;) {
      let p: ListPage<T>;
      try {
        p = await page(from, revision, limit);
        pages++;
      } catch (e) {
        if (e instanceof EtcdAnswerTooLargeError && limit > 1) {
          limit = Math.max(1, Math.floor(limit / 4));
          continue;
        }
        if (e instanceof EtcdAnswerTooLargeError && keyAt) throw await tooLargeKey(e, from, revision, keyAt, what);
        if (revision !== undefined && compactedError(e)) {
          if (restarts < LIST_RESTARTS) break;
          throw Object.assign(new Error(`${what}: etcd compacted the revision of the list ${restarts + 1} times while its pages were read (${(e as Error).message})`), { cause: e });
        }
        throw e;
      }
      revision ??= p.revision;
      kvs.push(...p.kvs);
      const last = p.kvs[p.kvs.length - 1];
      if (!p.more || last === undefined) return { kvs, revision, pages, restarts };
      // the next key after the last one read (keys are byte strings: its successor is key + 0x00)
      from = Buffer.concat([keyOf(last), Buffer.from([0])]);
    }
  }
}
