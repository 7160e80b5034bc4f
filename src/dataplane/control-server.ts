/**
 * The local control socket of a running podway: newline-delimited JSON requests
 * ({"cmd":"status"|"routes"|"endpoints"|"counters"|"trace"|"node-status", ...}) answered with one
 * JSON line ({"ok": ...}); a trace asked with "armed": true gets a {"progress": {"armed": FILTER}}
 * line before it, once the trace matches packets in every thread.
 * {"cmd":"capture", ...} is answered with one JSON line too, after which the connection carries
 * the capture's frames (see CaptureFrame) until the capture ends or the client closes it.
 * `podway run` adds to the status (readiness, log level) and adds commands (log-level) through
 * ControlExtras.
 */
import { makeDirsSync } from '../util/make-dirs';
import * as net from 'node:net';
import { chmodSync, lstatSync, statSync, unlinkSync, type Stats } from 'node:fs';
import * as path from 'node:path';
import { isMainThread } from 'node:worker_threads';
import type { Engine } from './engine';
import { parseTraceFilter, describeFilter } from './trace';
import { Taps } from './taps';
import { countRecords, parseStage, STAGE_NAMES } from './capture';
import { peerRefusal } from './peer-cred';
import type { NodeStatus as BgpNodeStatus } from '../control/bgp/agent';

// The client side (also what the CNI plugin's STATUS loads, without this module's dependencies).
export { controlRequest, defaultControlPath } from './control-client';

type Counters = ReturnType<Engine['counters']>;

/** Counters of the other forwarding workers (podway run --workers N), merged into `counters`: one
 * entry per worker in order (index k is worker k+1), null for a worker that did not answer in time. */
/** Each worker's counters; null: not known (it never answered in time); `late`: its last known. */
export type WorkerCounters = () => Promise<((Counters & { late?: true }) | null)[]>;

/** What the process adds beside the engine's view (natOutgoing's nftables table), if anything. */
export interface ControlExtras {
  nat?: { status(): unknown };
  /** The same for IPv6 pools (table ip6 podway). */
  nat6?: { status(): unknown };
  /** The pod guard's table (table inet podway, nft-nat.ts guardTableProgram). */
  guard?: { status(): unknown };
  /** Drops the node's kernel made for podway (reason name -> packets: the tunnel table's
   * vxlan_old_port, observe/tunnel-drops.ts), added to the reasons of `counters` when not 0. */
  kernelDrops?: () => Promise<Record<string, number>>;
  /** The nft tables' counters merged into `counters` (`nat`, `nat6`, `guard`, each null when the
   * table is not there or was not read; `nftNotRead`: the tables not read, with why; `nftAgeMs`):
   * through the nft counter cache (observe/nft-cache.ts), never rejecting. */
  nftCounters?: () => Promise<Record<string, unknown>>;
  /** The deferred CNI DELs' replay (etcd or embedded datastore): its counts join `counters` as cniPendingDel. */
  cniPendingDel?: () => unknown;
  /** Trace and capture across the forwarding workers (default: this engine alone). */
  taps?: Taps;
  /** The BGP sessions of `podway run --bgp` (null: the model thread did not answer). */
  bgpStatus?: () => Promise<BgpNodeStatus | null>;
  /** Merged into the status answer (readiness, log level). */
  status?: () => Promise<Record<string, unknown>>;
  /** More commands, by name (e.g. log-level): the request in, the answer out. */
  commands?: Record<string, (req: Record<string, unknown>) => unknown>;
  /** The counts of forwarding threads that died, added to the merged counters in place
   * (observe/retired-counts.ts): the sums stay monotonic across a thread's restart. */
  retired?: (merged: Counters & { missingWorkers?: number[]; lateWorkers?: number[] }) => void;
}

/**
 * Listens on `sockPath` for root and for podway's own uid only: the directory is ours and 0700,
 * the socket 0600, and every connection's peer uid is checked (SO_PEERCRED). Every failure,
 * including a refusal to touch what sits at the path, arrives as the server's 'error' event.
 */
export function startControlServer(engine: Engine, sockPath: string, workerCounters: WorkerCounters = async () => [], extras: ControlExtras = {}): net.Server {
  const target: ControlTarget = { engine, workerCounters, extras, taps: extras.taps ?? new Taps(engine) };
  return openControlServer(sockPath, () => target, async () => ({}));
}

/** What the socket answers for once the engine runs. */
interface ControlTarget { engine: Engine; workerCounters: WorkerCounters; extras: ControlExtras; taps: Taps }

export interface EarlyControlServer {
  readonly server: net.Server;
  /** The engine runs: from now on every command is answered as startControlServer's are. */
  attach(engine: Engine, workerCounters?: WorkerCounters, extras?: ControlExtras): void;
}

/**
 * The control socket opened before the engine exists (`podway run` registering its Node and
 * waiting for the datastore, which can take long): `podway status` then gets `starting()`'s
 * answer (why it is not forwarding yet) instead of "not running", and every other command an
 * error saying podway is starting. The same checks and modes as startControlServer.
 */
export function startEarlyControlServer(sockPath: string, starting: () => Promise<Record<string, unknown>>): EarlyControlServer {
  let target: ControlTarget | null = null;
  const server = openControlServer(sockPath, () => target, starting);
  return {
    server,
    attach(engine, workerCounters = async () => [], extras = {}) {
      target = { engine, workerCounters, extras, taps: extras.taps ?? new Taps(engine) };
    },
  };
}

function openControlServer(sockPath: string, target: () => ControlTarget | null, starting: () => Promise<Record<string, unknown>>): net.Server {
  const ownerUid = process.getuid ? process.getuid() : -1;
  const server = net.createServer((conn) => {
    conn.on('error', () => {});
    const refusal = peerRefusal(conn, ownerUid);
    if (refusal) {
      // Whatever it sends is read and dropped (closing on unread data would reset its pending write
      // before it reads the answer); it closes after the answer, or is cut off after 2 s.
      conn.resume();
      conn.setTimeout(2000, () => conn.destroy());
      conn.end(JSON.stringify({ ok: false, error: refusal }) + '\n');
      return;
    }
    let buf = '';
    conn.setEncoding('utf8');
    // the client gone (Ctrl-C on `podway trace`): what it waits for ends at once
    const gone = new AbortController();
    conn.on('close', () => gone.abort());
    // A request longer than MAX_REQUEST is answered with an error, and the connection ends.
    const tooLong = () => {
      conn.removeAllListeners('data');
      conn.resume();
      conn.setTimeout(2000, () => conn.destroy());
      conn.end(JSON.stringify({ ok: false, error: `request longer than ${MAX_REQUEST} bytes` }) + '\n');
    };
    conn.on('data', (d) => {
      buf += d;
      let nl: number;
      while ((nl = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        if (line.length > MAX_REQUEST) return tooLong();
        let req: Request;
        try {
          req = parseRequest(line);
        } catch (e) {
          conn.write(JSON.stringify({ ok: false, error: (e as Error).message }) + '\n');
          continue;
        }
        // A capture turns the connection into a stream of frames: nothing after it is read.
        const t = target();
        if (req.cmd === 'capture') {
          conn.removeAllListeners('data');
          if (t) serveCapture(t.taps, t.engine, conn, req);
          else void startingError(starting).then((error) => conn.end(JSON.stringify({ ok: false, error }) + '\n'));
          return;
        }
        const progress = (o: object) => conn.write(JSON.stringify({ progress: o }) + '\n');
        (t ? handle(t.engine, req, t.workerCounters, t.extras, t.taps, progress, gone.signal) : handleStarting(req, starting)).then(
          (res) => conn.write(JSON.stringify({ ok: true, result: res }) + '\n'),
          (err) => conn.write(JSON.stringify({ ok: false, error: (err as Error).message }) + '\n'),
        );
      }
      if (buf.length > MAX_REQUEST) tooLong();
    });
  });
  // Errors are emitted on a later tick, after the caller has attached its 'error' listener.
  const fail = (message: string) => process.nextTick(() => server.emit('error', new Error(message)));
  server.once('listening', () => {
    try {
      chmodSync(sockPath, 0o600);
    } catch (e) {
      server.close();
      server.emit('error', new Error(`cannot make ${sockPath} mode 0600: ${(e as Error).message}`));
    }
  });

  const dirProblem = prepareSocketDir(path.dirname(sockPath), ownerUid);
  if (dirProblem) {
    fail(dirProblem);
    return server;
  }
  let existing: Stats;
  try {
    existing = lstatSync(sockPath);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') listenPrivately(server, sockPath);
    else fail(`cannot check ${sockPath}: ${(e as Error).message}`);
    return server;
  }
  if (!existing.isSocket()) {
    fail(`${sockPath} exists and is not a socket (${fileKind(existing)}); refusing to remove it`);
    return server;
  }
  // A socket file is there: a stale one from a crashed run (nobody accepts: remove it and bind), or
  // a live podway's (it accepts: fail, never unlink a running instance's socket from under it).
  const probe = net.createConnection(sockPath);
  probe.once('connect', () => {
    probe.destroy();
    server.emit('error', new Error('in use by a running podway (stop it first, or pass another --control path)'));
  });
  probe.once('error', (e) => {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return listenPrivately(server, sockPath);
    if (code !== 'ECONNREFUSED') {
      server.emit('error', new Error(`cannot tell whether a podway still serves ${sockPath} (${e.message}); not removing it`));
      return;
    }
    // Stale. Remove it only if it is still the socket that refused (not something put there since).
    try {
      const now = lstatSync(sockPath);
      if (!now.isSocket() || now.ino !== existing.ino || now.dev !== existing.dev) {
        server.emit('error', new Error(`${sockPath} changed while podway checked it; not removing it`));
        return;
      }
      unlinkSync(sockPath);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') {
        server.emit('error', new Error(`cannot remove the stale socket ${sockPath}: ${(err as Error).message}`));
        return;
      }
    }
    listenPrivately(server, sockPath);
  });
  return server;
}

/**
 * The socket's directory must be a directory owned by us and writable by nobody else. Created here
 * (with any missing parents) it is mode 0700 whatever the umask; one that exists keeps its mode,
 * but someone else's directory is refused (its owner could swap the socket), and so is one group
 * or others may write, ours or root's, /tmp (1777) included: anyone could then plant files there
 * (the forwarding records `podway cleanup` reads beside the socket, a name podway writes through)
 * or, without the sticky bit, replace the socket. Returns the problem, or null.
 */
function prepareSocketDir(dir: string, ownerUid: number): string | null {
  let created: string | undefined;
  try {
    created = mkdirParents(dir, 0o700);
    if (created !== undefined) chmodSync(dir, 0o700);
  } catch (e) {
    return `cannot create the control socket directory ${dir}: ${(e as Error).message}`;
  }
  let st: Stats;
  try {
    st = statSync(dir);
  } catch (e) {
    return `cannot check the control socket directory ${dir}: ${(e as Error).message}`;
  }
  if (!st.isDirectory()) return `${dir} is not a directory (${fileKind(st)}); cannot put the control socket there`;
  if (st.uid !== ownerUid) {
    return `the control socket directory ${dir} is owned by uid ${st.uid}, not by this podway's uid ${ownerUid}; refusing to use it`;
  }
  if ((st.mode & 0o022) !== 0) {
    return `the control socket directory ${dir} is writable by group or others (mode ${(st.mode & 0o7777).toString(8)}): refused, another user could replace the socket or plant the files podway keeps beside it (the forwarding records \`podway cleanup\` sets sysctls from); \`chmod go-w ${dir}\` or pass another --control path`;
  }
  return null;
}

/** mkdir -p without Node's endless retry (util/make-dirs.ts: `--control /proc/nope/n.sock` is an error, not a hang). */
const mkdirParents = (dir: string, mode: number): string | undefined => makeDirsSync(dir, { mode });

/**
 * bind() with umask 0177, so the socket file is 0600 from the moment it exists (the 'listening'
 * handler chmods it too: worker threads cannot change the umask). bind runs synchronously inside
 * listen(), so the umask is back before any other code runs.
 */
function listenPrivately(server: net.Server, sockPath: string): void {
  const oldMask = isMainThread ? process.umask(0o177) : null;
  try {
    server.listen(sockPath);
  } finally {
    if (oldMask !== null) process.umask(oldMask);
  }
}

function fileKind(st: Stats): string {
  if (st.isFile()) return 'a regular file';
  if (st.isDirectory()) return 'a directory';
  if (st.isSymbolicLink()) return 'a symbolic link';
  if (st.isFIFO()) return 'a FIFO';
  if (st.isCharacterDevice() || st.isBlockDevice()) return 'a device';
  if (st.isSocket()) return 'a socket';
  return 'an unknown file type';
}

/** What every command but a starting-aware status gets before the engine runs. */
async function startingError(starting: () => Promise<Record<string, unknown>>): Promise<string> {
  const s = await starting().catch(() => ({} as Record<string, unknown>));
  const why = typeof s.starting === 'string' ? `: ${s.starting}${typeof s.datastore === 'string' && s.datastore ? ` (${s.datastore})` : ''}` : '';
  return `podway is starting${why}; not forwarding yet`;
}

/**
 * Before the engine runs: {"cmd":"status","starting":true} (`podway status`) gets `starting()`'s
 * answer; everything else an error saying podway is starting and why. A plain status is an error
 * too: its callers (the CNI plugin's STATUS, test labs, benches) take an answer to mean the
 * dataplane runs.
 */
async function handleStarting(req: Request, starting: () => Promise<Record<string, unknown>>): Promise<unknown> {
  if (req.cmd === 'status' && req.starting === true) return starting();
  throw new Error(await startingError(starting));
}

/** The longest request line read (the client's own requests are a few hundred bytes). */
const MAX_REQUEST = 65536;

/** A request: a JSON object; its fields are checked by the command that reads them. */
type Request = Record<string, unknown>;

function parseRequest(line: string): Request {
  let req: unknown;
  try {
    req = JSON.parse(line);
  } catch {
    throw new Error('request is not JSON');
  }
  if (typeof req !== 'object' || req === null || Array.isArray(req)) throw new Error('request is not a JSON object ({"cmd": ...})');
  return req as Request;
}

/** An optional positive number field of a request, else `dflt`; anything else is an error naming the field. */
function numberField(req: Request, field: string, dflt: number): number {
  const v = req[field];
  if (v === undefined) return dflt;
  if (typeof v !== 'number' || !Number.isFinite(v) || v <= 0) throw new Error(`${field}: ${JSON.stringify(v)} is not a positive number`);
  return v;
}

async function handle(engine: Engine, req: Request, workerCounters: WorkerCounters, extras: ControlExtras, taps: Taps, progress: (o: object) => void, gone: AbortSignal): Promise<unknown> {
  switch (req.cmd) {
    case 'status':
      return { ...engine.status(), ...(extras.nat ? { nat: extras.nat.status() } : {}), ...(extras.nat6 ? { nat6: extras.nat6.status() } : {}), ...(extras.guard ? { guard: extras.guard.status() } : {}), ...(await extras.status?.()) };
    case 'routes':
      return engine.routes();
    case 'endpoints':
      return engine.endpointList();
    case 'counters': {
      // The parts at once: the workers' answers, the nft tables (one cached read for the kernel
      // drops and the tables: observe/nft-cache.ts), the model thread's BGP sessions. A part that
      // fails is said in the answer (missingWorkers, nftNotRead), never fails the answer.
      const [workers, kernelDrops, nft, bgp] = await Promise.all([
        workerCounters(),
        extras.kernelDrops ? extras.kernelDrops().catch(() => ({})) : {},
        extras.nftCounters ? extras.nftCounters().catch((e: Error) => ({ nftNotRead: { all: e.message } })) : {},
        extras.bgpStatus ? extras.bgpStatus() : null,
      ]);
      const merged = mergeCounters(engine.counters(), workers);
      extras.retired?.(merged);
      for (const [r, n] of Object.entries(kernelDrops as Record<string, number>)) if (n > 0) merged.reasons[r] = (merged.reasons[r] ?? 0) + n;
      // IPv6's table exists only once an IPv6 pool has natOutgoing (nat6 null before)
      const withNft = { ...merged, ...nft };
      const withNat = extras.cniPendingDel ? { ...withNft, cniPendingDel: extras.cniPendingDel() } : withNft;
      // Per BGP peer: messages, updates, prefixes received/accepted (only when BGP runs).
      if (!bgp?.enabled) return withNat;
      const bgpPeers = bgp.peers.map((p) => ({
        peer: p.address, type: p.type, state: p.bgpState, messagesIn: p.messagesIn, messagesOut: p.messagesOut,
        updatesIn: p.updatesIn, updatesOut: p.updatesOut, prefixesReceived: p.prefixesReceived, prefixesAccepted: p.prefixesAccepted,
      }));
      return { ...withNat, bgpPeers };
    }
    case 'node-status': {
      const status = extras.bgpStatus ? await extras.bgpStatus() : null;
      if (extras.bgpStatus && status === null) throw new Error('the model thread did not answer within 2 s');
      return status ?? { enabled: false, peers: [] };
    }
    case 'trace': {
      const f = parseTraceFilter(req.filter ?? []);
      // {"armed": true}: a {"progress": {"armed": FILTER}} line first, once every thread matches.
      const onArmed = req.armed === true ? () => progress({ armed: describeFilter(f) }) : undefined;
      const records = await taps.trace(f, numberField(req, 'count', 1), Math.min(numberField(req, 'timeoutMs', 10_000), 120_000), onArmed, gone);
      return { filter: describeFilter(f), records };
    }
    default: {
      const extra = typeof req.cmd === 'string' && Object.hasOwn(extras.commands ?? {}, req.cmd) ? extras.commands![req.cmd] : undefined;
      if (extra) return extra(req as Record<string, unknown>);
      throw new Error(`unknown command ${JSON.stringify(req.cmd)}`);
    }
  }
}

/** Drop reasons, route packets and engine failures add up across workers; each worker's ports are listed with its
 * index. A worker that did not answer (null) is left out of the sums and named in `missingWorkers`
 * (its index), so a sum that lacks a worker's part says so. */
export function mergeCounters(main: Counters, others: readonly ((Counters & { late?: true }) | null)[]): Counters & { missingWorkers?: number[]; lateWorkers?: number[] } {
  if (others.length === 0) return main;
  const reasons: Record<string, number> = { ...main.reasons };
  const ports = main.ports.map((p) => ({ ...p, port: `${p.port as string} [w0]` }));
  const routes = new Map(main.routes.map((r) => [r.cidr, { ...r }]));
  const failures = { ...main.failures };
  const missingWorkers: number[] = [];
  const lateWorkers: number[] = [];
  others.forEach((c, k) => {
    if (c === null) return void missingWorkers.push(k + 1);
    // a late thread's last known counts (cli/worker-answers.ts withLastKnown): summed, and said
    if (c.late) lateWorkers.push(k + 1);
    for (const [r, n] of Object.entries(c.reasons)) reasons[r] = (reasons[r] ?? 0) + n;
    for (const [f, n] of Object.entries(c.failures ?? {})) failures[f as keyof typeof failures] += n;
    for (const p of c.ports) ports.push({ ...p, port: `${p.port as string} [w${k + 1}]` });
    for (const r of c.routes ?? []) {
      const have = routes.get(r.cidr);
      if (have) have.packets += r.packets;
      else routes.set(r.cidr, { ...r });
    }
  });
  return { reasons, ports, routes: [...routes.values()], failures, ...(missingWorkers.length ? { missingWorkers } : {}), ...(lateWorkers.length ? { lateWorkers } : {}) };
}

/**
 * The frames of a capture stream after its JSON answer line: a 4-byte little-endian payload
 * length, one byte of kind, the payload. RECORDS carries capture records (capture.ts), LOST and
 * END a JSON object ({lost} / {taken, lost}).
 */
export const CaptureFrame = { RECORDS: 1, LOST: 2, END: 3 } as const;

/** Bytes queued to a capture client beyond which records are dropped (counted) instead: a slow
 * reader never makes the process buffer without bound, and forwarding never waits for it. */
const CAPTURE_QUEUE_BYTES = 8 << 20;

function frameOf(kind: number, payload: Uint8Array): Buffer {
  const head = Buffer.alloc(5);
  head.writeUInt32LE(payload.length, 0);
  head[4] = kind;
  return Buffer.concat([head, payload]);
}

function serveCapture(taps: Taps, engine: Engine, conn: net.Socket, request: Request): void {
  let stop: (() => void) | null = null;
  try {
    const req = request as { filter?: unknown; stage?: string; count?: number; snaplen?: number };
    const filter = parseTraceFilter(req.filter ?? [], 'capture');
    const stage = parseStage(req.stage);
    const count = Number.isInteger(req.count) && req.count! > 0 ? req.count! : Number.MAX_SAFE_INTEGER;
    let lost = 0;
    let taken = 0;
    // The answer goes out once every thread captures (Taps' ready): the client's "capturing" then
    // holds for whichever worker a flow lands on. Frames the main engine takes before that wait
    // here, behind the answer.
    let answered = false;
    let ending = false;
    const early: Buffer[] = [];
    let earlyBytes = 0;
    const send = (b: Buffer) => {
      if (conn.destroyed) return;
      if (answered) conn.write(b);
      else {
        early.push(b);
        earlyBytes += b.length;
      }
    };
    const json = (kind: number, v: object) => send(frameOf(kind, Buffer.from(JSON.stringify(v))));
    // (a client that does not say: tcpdump's default; CaptureTap bounds it)
    const snaplen = Number.isInteger(req.snaplen) && req.snaplen! > 0 ? req.snaplen! : undefined;
    const session = taps.capture({ filter, stage, count, snaplen }, {
      chunk: (c) => {
        const n = countRecords(c);
        if (conn.destroyed || conn.writableLength + earlyBytes > CAPTURE_QUEUE_BYTES) {
          lost += n;
          json(CaptureFrame.LOST, { lost });
          return;
        }
        taken += n;
        send(frameOf(CaptureFrame.RECORDS, c));
      },
      lost: (n) => {
        lost += n;
        json(CaptureFrame.LOST, { lost });
      },
      end: () => {
        json(CaptureFrame.END, { taken, lost });
        if (answered) conn.end();
        else ending = true;
      },
    }, countRecords);
    stop = session.stop;
    const answer = JSON.stringify({ ok: true, result: { filter: describeFilter(filter), stage: STAGE_NAMES[stage], ports: engine.portNames() } }) + '\n';
    void session.ready.then(() => {
      answered = true;
      if (conn.destroyed) return;
      conn.write(answer);
      for (const b of early) conn.write(b);
      early.length = 0;
      earlyBytes = 0;
      if (ending) conn.end();
    });
  } catch (e) {
    conn.end(JSON.stringify({ ok: false, error: (e as Error).message }) + '\n');
    return;
  }
  // The client closing (Ctrl-C, -n reached) switches capture off in every thread.
  const s = stop;
  conn.on('close', () => s());
  conn.resume();
}

