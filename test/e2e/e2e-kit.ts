/**
 * Shared pieces of the interop and live end-to-end tests: cleanup that survives crashes and
 * signals, a background ping with per-sequence results, a TCP transfer checked by sha256 on both
 * sides, and bounded waits on podway's control socket and log.
 */
import { execFileSync, spawn, ChildProcess } from 'node:child_process';
import * as path from 'node:path';
import * as assert from 'uvu/assert';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { Lab, LabNode, parsePing, pingArgs, PingResult, sleep, within } from '../../src/lab/lab';
import { controlRequest } from '../../src/dataplane/control-server';
import { COUNTER_NAMES, Event, Event6 } from '../../src/dataplane/counters';
import { until } from '../helpers/until';
import { atCleanup as atExitOrSignal } from '../helpers/cleanup';
import { readModelCache, writeModelCache } from '../../src/cli/model-cache';
import { steerIndex } from '../../src/dataplane/steer';
import { parseIpv4 } from '../../src/packet/ipv4';
import { exitedAndRead } from '../helpers/proc';
import { execBounded } from './tools';
import { parseMetrics, valueOf } from '../observe/prom-text';
import { METRICS_RENDER_MS } from '../../src/observe/http';

export { sleep };

export interface RouteRow { cidr: string; kind: string; node: string; via: string }

const live = new Set<Lab>();
const children = new Set<ChildProcess>();
const hooks = new Set<() => void>();
let installed = false;

function cleanupAll(): void {
  // first what lives inside the labs' namespaces (a podman host runs podman in its node's), the
  // last registered first
  for (const h of [...hooks].reverse()) {
    try {
      h();
    } catch {
      /* best effort at exit */
    }
  }
  hooks.clear();
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  children.clear();
  for (const lab of live) {
    try {
      lab.destroy();
    } catch {
      /* best effort at exit */
    }
  }
  live.clear();
}

/**
 * Track a lab (and later its helper processes) so that namespaces never outlive this process:
 * destroyed on 'exit' (including uncaught errors) and on SIGINT/SIGTERM (the test runner's
 * timeout sends SIGTERM).
 */
export function guard(lab: Lab): Lab {
  install();
  live.add(lab);
  return lab;
}

function install(): void {
  if (installed) return;
  installed = true;
  atExitOrSignal(cleanupAll);
}

/**
 * A synchronous cleanup run, as the labs' destruction, at exit and on SIGINT/SIGTERM/SIGHUP (the
 * test runner's timeout), before the labs go and after cleanups registered later: for what lives
 * in a lab's namespaces (a podman host's containers). Returns the function that forgets it (call
 * it once cleaned up in finally).
 */
export function atCleanup(fn: () => void): () => void {
  install();
  hooks.add(fn);
  return () => {
    hooks.delete(fn);
  };
}

/** Stop every podway (all at once: each stops on its own), every tracked child still running (a
 * peer a failed assertion left waiting: its pipes would hold this process open until its own
 * timeout, 240 s in e2e/super-frames), lab.destroy() and forget it (use in finally). */
export async function teardown(lab: Lab): Promise<void> {
  await Promise.all(lab.nodes.map((n) => lab.stopPodway(n.name).catch(() => null)));
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  lab.destroy();
  live.delete(lab);
}

export function track(c: ChildProcess): ChildProcess {
  children.add(c);
  c.once('exit', () => children.delete(c));
  return c;
}

/** `args` run in network namespace `ns` (10 s at most); its standard output. Throws on failure. */
export function nsExec(ns: string, args: string[]): string {
  return execFileSync('ip', ['netns', 'exec', ns, ...args], { encoding: 'utf8', timeout: 10_000 });
}

/**
 * `podway cleanup` for a lab node whose podway is stopped (run in its namespace, as an operator
 * would after `systemctl stop`): its stdout. Throws (with podway's stderr) when it exits non-zero.
 */
export function podwayCleanup(n: LabNode): string {
  const bin = path.resolve(__dirname, '..', '..', '..', 'bin', 'podway.js');
  return execFileSync('ip', ['netns', 'exec', n.ns, process.execPath, bin, 'cleanup', '--node', n.name, '--control', n.control], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], timeout: 60_000 });
}

export function isRoot(): boolean {
  return typeof process.getuid === 'function' && process.getuid() === 0;
}

// ---- child processes ---------------------------------------------------------------------------

/** A child started by spawnCollected: what it wrote so far and its exit code once it ended. */
export interface Collected { proc: ChildProcess; out: () => string; err: () => string; done: Promise<number | null> }

/**
 * Starts `cmd args`, tracked (killed if this process exits first), its stdout and stderr collected
 * as text (stderr into out() as well with `mergeStderr`, in arrival order); sent `signal` (SIGKILL
 * unless given) if it still runs after `limitMs`. `onStdout` sees each stdout chunk as it comes.
 */
export function spawnCollected(
  cmd: string, args: string[], limitMs: number,
  opts: { stdin?: 'pipe' | 'ignore'; signal?: NodeJS.Signals; mergeStderr?: boolean; onStdout?: (d: string) => void } = {},
): Collected {
  const proc = track(spawn(cmd, args, { stdio: [opts.stdin ?? 'ignore', 'pipe', 'pipe'] }));
  let out = '';
  let err = '';
  proc.stdout!.setEncoding('utf8');
  proc.stdout!.on('data', (d: string) => {
    out += d;
    opts.onStdout?.(d);
  });
  proc.stderr!.setEncoding('utf8');
  proc.stderr!.on('data', (d: string) => {
    if (opts.mergeStderr) out += d;
    else err += d;
  });
  // Resolved once its output is read too: 'exit' can come before the last of it (a ping's stdout to
  // a pipe is block-buffered: its last ~60 replies and its summary arrive as it exits), so 'close'
  // is waited for, 1 s at most (a child it left behind may hold the pipes open).
  const closed = new Promise<void>((r) => proc.once('close', () => r()));
  const done = new Promise<number | null>((resolve) => {
    const timer = setTimeout(() => proc.kill(opts.signal ?? 'SIGKILL'), limitMs);
    proc.once('exit', (code) => {
      clearTimeout(timer);
      void Promise.race([closed, new Promise((r) => setTimeout(r, 1000))]).then(() => resolve(code));
    });
  });
  return { proc, out: () => out, err: () => err, done };
}

/**
 * `podway capture --control CONTROL ARGS -w FILE`, returned once it says it captures (every worker)
 * or exited (an Error then, with what it wrote); sent `signal` if it still runs after `limitMs`.
 */
export async function startCapture(control: string, args: string[], file: string, limitMs: number, signal?: NodeJS.Signals): Promise<Collected> {
  const bin = path.resolve(__dirname, '..', '..', '..', 'bin', 'podway.js');
  const p = spawnCollected(process.execPath, [bin, 'capture', '--control', control, ...args, '-w', file], limitMs, { stdin: 'pipe', signal });
  const up = await until(() => /capturing/.test(p.err()) || p.proc.exitCode !== null, 15_000);
  if (!up || p.proc.exitCode !== null) throw new Error(`capture did not start: ${p.err()}`);
  return p;
}

/** tshark's `fields` of each packet in `file` (a display filter and other tshark options as given). */
export function tsharkRows(file: string, fields: string[], filter?: string, options: string[] = []): string[][] {
  const out = execFileSync('tshark', ['-r', file, ...options, ...(filter ? ['-Y', filter] : []), '-T', 'fields', '-E', 'separator=|', ...fields.flatMap((f) => ['-e', f])], { encoding: 'utf8', timeout: 60_000, stdio: ['ignore', 'pipe', 'ignore'] });
  return out.split('\n').filter((l) => l.length > 0).map((l) => l.split('|'));
}

// ---- background ping ---------------------------------------------------------------------------

export interface PingRun extends PingResult {
  out: string;
  /** icmp_seq numbers that got a reply */
  replied: Set<number>;
  /** sequence numbers 1..sent with no reply */
  lost: number[];
  ttls: Set<number>;
}

/** Start `ping -i interval -c count` in a pod's namespace; resolves when ping ends (bounded). */
export function backgroundPing(lab: Lab, from: string, toIp: string, count: number, intervalS = 0.05): { done: Promise<PingRun>; proc: ChildProcess; out: () => string } {
  return pingIn(lab.pod(from).ns, toIp, count, intervalS);
}

/**
 * The same from any namespace, `extra` ping arguments before the destination (`-I` a source):
 * SIGINT after twice its planned time plus 15 s. Every reply is awaited (Lab's pingArgs: ping may send
 * requests past `count` while one is unanswered; results cover requests 1..count). `out()` is its
 * output so far: a caller may end it early (SIGINT) once the replies it needs came.
 */
export function pingIn(ns: string, toIp: string, count: number, intervalS: number, extra: string[] = []): { done: Promise<PingRun>; proc: ChildProcess; out: () => string } {
  const limitMs = 2 * count * intervalS * 1000 + 15_000;
  const ping = spawnCollected('ip', ['netns', 'exec', ns, 'ping', ...pingArgs(count, extra, { intervalS }), toIp], limitMs, { signal: 'SIGINT', mergeStderr: true });
  const done = ping.done.then((): PingRun => {
    const out = ping.out();
    const r = parsePing(out, count);
    const replied = new Set<number>();
    const ttls = new Set<number>();
    for (const m of out.matchAll(/icmp_seq=(\d+) ttl=(\d+)/g)) {
      if (Number(m[1]) > count) continue;
      replied.add(Number(m[1]));
      ttls.add(Number(m[2]));
    }
    const lost: number[] = [];
    for (let s = 1; s <= r.sent; s++) if (!replied.has(s)) lost.push(s);
    return { ...r, out, replied, lost, ttls };
  });
  return { done, proc: ping.proc, out: ping.out };
}

// ---- TCP transfer --------------------------------------------------------------------------------

const PEER = path.join(__dirname, 'tcp-peer.js');

export interface Transfer { sent: { bytes: number; sha256: string }; received: { bytes: number; sha256: string; peer: string }; ms: number }

function runPeer(ns: string, args: string[], onLine?: (l: string) => void): Promise<{ code: number | null; out: string; err: string }> {
  const peer = spawnCollected('ip', ['netns', 'exec', ns, process.execPath, PEER, ...args], 70_000, {
    onStdout: (d) => { if (onLine) for (const l of d.split('\n')) if (l) onLine(l); },
  });
  return peer.done.then((code) => ({ code, out: peer.out(), err: peer.err() }));
}

/** Send `bytes` random bytes over TCP from one pod to another; returns both sides' sha256. */
export async function tcpTransfer(lab: Lab, from: string, to: string, bytes: number, port = 5201, localPort?: number): Promise<Transfer> {
  const dst = lab.pod(to);
  return tcpTransferFromNs({ name: from, ns: lab.pod(from).ns }, { name: to, ns: dst.ns, ip: dst.ip }, bytes, port, localPort);
}

/** The same towards any namespace and address (a pod, a node, the lab's outside); the receiver
 * reports the peer address it saw (`received.peer`, "ip:port"). */
export async function tcpTransferTo(lab: Lab, from: string, dst: { name: string; ns: string; ip: string }, bytes: number, port = 5201): Promise<Transfer> {
  return tcpTransferFromNs({ name: from, ns: lab.pod(from).ns }, dst, bytes, port);
}

/** The same from any namespace (a node's own stack, say); `localPort`: the sender's source port
 * (a flow steered to a chosen forwarding worker: steer.ts steerIndex). */
export async function tcpTransferFromNs(src: { name: string; ns: string }, dst: { name: string; ns: string; ip: string }, bytes: number, port = 5201, localPort?: number): Promise<Transfer> {
  const from = src.name;
  const to = dst.name;
  let listening!: () => void;
  const ready = new Promise<void>((r) => (listening = r));
  const server = runPeer(dst.ns, ['recv', dst.ip, String(port)], (l) => l === 'listening' && listening());
  const up = await within(Promise.race([ready.then(() => true), server.then(() => false)]), 10_000, false);
  if (!up) throw new Error(`tcp receiver in ${to} did not start: ${(await within(server, 100, undefined))?.err ?? ''}`);
  const t0 = Date.now();
  const client = await runPeer(src.ns, ['send', dst.ip, String(port), String(bytes), ...(localPort === undefined ? [] : [String(localPort)])]);
  const srv = await server;
  const ms = Date.now() - t0;
  if (client.code !== 0) throw new Error(`tcp sender ${from} -> ${to} failed (${client.code}): ${client.err.trim()}`);
  if (srv.code !== 0) throw new Error(`tcp receiver ${to} failed (${srv.code}): ${srv.err.trim()}`);
  return { sent: peerReport(client.out), received: peerReport(srv.out), ms };
}

/** The last JSON line a tcp-peer printed: its report of the stream (bytes, sha256, ...). */
export function peerReport<T = { bytes: number; sha256: string }>(out: string): T {
  return JSON.parse(out.trim().split('\n').filter((l) => l.startsWith('{')).pop()!);
}

/** A tcp-peer sender and receiver (spawnCollected) both ended 0 and the receiver got `bytes`, as sent. */
export async function assertStreamIntact(client: Collected, server: Collected, bytes: number): Promise<void> {
  const [cc, sc] = await Promise.all([client.done, server.done]);
  assert.is(cc, 0, `sender: ${client.err()}`);
  assert.is(sc, 0, `receiver: ${server.err()}`);
  const got = peerReport(server.out());
  assert.is(got.bytes, bytes);
  assert.is(got.sha256, peerReport(client.out()).sha256, 'the stream intact');
}

// ---- control socket and log ------------------------------------------------------------------------

export async function routes(n: LabNode): Promise<RouteRow[]> {
  return (await controlRequest(n.control, { cmd: 'routes' }, 5000)) as RouteRow[];
}

export async function status(n: LabNode): Promise<{ modelsApplied: number; routes: number; endpoints: number; withheld: unknown[]; ready?: boolean; datastoreRejected?: { since: string; error: string } | null }> {
  return (await controlRequest(n.control, { cmd: 'status' }, 5000)) as { modelsApplied: number; routes: number; endpoints: number; withheld: unknown[]; ready?: boolean; datastoreRejected?: { since: string; error: string } | null };
}

export async function kindOf(n: LabNode, cidr: string): Promise<string | undefined> {
  return (await routes(n)).find((r) => r.cidr === cidr)?.kind;
}

export { until };

/** Wait for a log line (added after index `from`) matching re. */
export async function waitLog(n: LabNode, re: RegExp, from: number, timeoutMs = 5000): Promise<string | null> {
  let hit: string | null = null;
  await until(() => {
    hit = n.log.slice(from).find((l) => re.test(l)) ?? null;
    return hit !== null;
  }, timeoutMs);
  return hit;
}

/** A log line's message: podway logs JSON lines (src/observe/log.ts); other lines as they are. */
export function logMessage(line: string): string {
  try {
    const o = JSON.parse(line) as { msg?: unknown };
    return typeof o.msg === 'string' ? o.msg : line;
  } catch {
    return line;
  }
}

export function logTail(lab: Lab, lines = 15): string {
  return lab.nodes.map((n) => `--- ${n.name}:\n${n.log.slice(-lines).join('\n')}`).join('\n');
}

// ---- steady UDP stream ------------------------------------------------------------------------------

const STREAM = path.join(__dirname, 'udp-stream.js');

/**
 * What a stream's receiver saw: every arrival as [sequence number, epoch ms]; and `socketDrops`,
 * datagrams dropped by the stream's own sockets while it ran (the receiving pod's Udp
 * RcvbufErrors plus the sending pod's SndbufErrors: each pod namespace holds one stream);
 * `sentUntil`, when the sender ended (epoch ms): a window that lasts longer saw the stream's end.
 */
export interface StreamResult { received: number; arrivals: [number, number][]; socketDrops: number; sentUntil: number }

/** Udp counters of a namespace's /proc/net/snmp, by name. */
function udpCounters(ns: string): Record<string, number> {
  const lines = nsExec(ns, ['cat', '/proc/net/snmp']).split('\n').filter((l) => l.startsWith('Udp: '));
  const names = lines[0].split(/\s+/).slice(1);
  const values = lines[1].split(/\s+/).slice(1).map(Number);
  return Object.fromEntries(names.map((n, k) => [n, values[k]]));
}

/**
 * A steady UDP stream (udp-stream.ts) from pod `from` to pod `to` for `seconds` at `rate` packets
 * per second: the receiver starts first (bounded wait), then the sender. Returns a function that
 * waits for the sender to finish and returns the receiver's arrivals.
 */
export async function udpStream(lab: Lab, from: string, to: string, seconds: number, opts: { rate?: number; port?: number; srcPort?: number } = {}): Promise<() => Promise<StreamResult>> {
  const rate = opts.rate ?? 1000;
  const port = opts.port ?? 5201;
  const [rxNs, txNs] = [lab.pod(to).ns, lab.pod(from).ns];
  const before = { rx: udpCounters(rxNs), tx: udpCounters(txNs) };
  const rx = track(spawn('ip', ['netns', 'exec', lab.pod(to).ns, process.execPath, STREAM, 'recv', String(port), String(seconds + 5)], { stdio: ['ignore', 'pipe', 'pipe'] }));
  let out = '';
  rx.stdout!.setEncoding('utf8');
  rx.stdout!.on('data', (d: string) => (out += d));
  // a bound on a hang, ended by the line: a node start in a pod namespace missed 5 s at load ~27
  const ready = await until(() => out.includes('ready'), 30_000);
  if (!ready) throw new Error(`udp receiver in ${to} did not start`);
  const tx = track(spawn('ip', ['netns', 'exec', lab.pod(from).ns, process.execPath, STREAM, 'send', lab.pod(to).ip, String(port), String(rate), String(seconds), ...(opts.srcPort ? [String(opts.srcPort)] : [])], { stdio: 'ignore' }));
  let sentUntil = 0;
  tx.once('exit', () => (sentUntil = Date.now()));
  return async () => {
    await new Promise<void>((r) => (tx.exitCode !== null ? r() : tx.once('exit', () => r())));
    await sleep(300);
    // its JSON line (every arrival: hundreds of KB) read to the end, not only its exit seen
    const rxDone = exitedAndRead(rx, 5000);
    rx.kill('SIGTERM');
    await rxDone;
    const line = out.split('\n').find((l) => l.startsWith('{'));
    if (!line) throw new Error(`no result from the receiver in ${to}: ${out.slice(0, 200)}`);
    const socketDrops = udpCounters(rxNs).RcvbufErrors - before.rx.RcvbufErrors + udpCounters(txNs).SndbufErrors - before.tx.SndbufErrors;
    return { ...(JSON.parse(line) as Omit<StreamResult, 'socketDrops' | 'sentUntil'>), socketDrops, sentUntil };
  };
}

/** The longest gap between consecutive arrivals inside [t0, t1] (epoch ms), where, and how many arrived. */
export function gapIn(r: StreamResult, t0: number, t1: number): { maxGapMs: number; at: number; count: number } {
  let maxGapMs = 0;
  let at = 0;
  let count = 0;
  let prev = -1;
  for (const [, t] of r.arrivals) {
    if (t < t0 - 1000) continue;
    if (t > t1) break;
    if (prev >= 0 && t >= t0 && t - prev > maxGapMs) {
      maxGapMs = t - prev;
      at = t;
    }
    if (t >= t0) count++;
    prev = t;
  }
  return { maxGapMs, at, count };
}

/**
 * The longest gap between arrivals outside the given windows (each window's t0 - 1 s .. t1, as
 * gapIn reads them) and the stream's first 0.5 s: what the machine's own scheduling does to the
 * stream when nothing is edited.
 */
export function gapOutside(r: StreamResult, windows: { t0: number; t1: number }[]): number {
  let maxGapMs = 0;
  let prev = -1;
  const settled = r.arrivals.length ? r.arrivals[0][1] + 500 : 0; // the stream's first 0.5 s: neighbours resolving
  for (const [, t] of r.arrivals) {
    const inWindow = t < settled || windows.some((w) => t >= w.t0 - 1000 && t <= w.t1);
    if (!inWindow && prev >= 0 && t - prev > maxGapMs) maxGapMs = t - prev;
    prev = inWindow ? -1 : t;
  }
  return maxGapMs;
}

/**
 * The longest gap a model edit may leave in a 1,000 pps stream before the test calls the stream
 * interrupted: 1 s, or twice what the same stream showed away from any edit when the host itself
 * stalls it even longer. Not a latency figure (speed lives in bench/): on a 2-CPU CI host at load
 * 14-22 a no-op edit, which installs nothing in the forwarding thread ("model is unchanged"),
 * still left 160-330 ms gaps with nothing lost, against a 100 ms floor that a quiet baseline did
 * not raise (the edit's own parsing is extra CPU that the calm stretches lack). What an interrupted
 * flow costs here is loss (ports closed, routes missing: asserted separately, per packet) or a
 * stall of seconds (a forwarder waiting on the datastore, a neighbour or a retry timer), which
 * this bound still catches. How long a model apply stops forwarding is measured by
 * `npm run bench:stall` (bench/README.md), on a quiet machine.
 */
export const STALL_MS = 1000;

export function allowedGap(r: StreamResult, windows: { t0: number; t1: number }[], floorMs = STALL_MS): number {
  return Math.max(floorMs, 2 * gapOutside(r, windows));
}

/**
 * The run-queue wait of each podway's forwarding thread (its main thread), sampled every `everyMs`
 * while a stream runs: /proc/PID/task/PID/schedstat's second field, the ns the thread spent
 * runnable but waiting for a CPU. A loaded host makes it grow; a podway that is stuck (stopped,
 * sleeping on a lock, waiting for a timer) does not gain any. Samples: per node, [epoch ms, wait ns].
 * `allThreads`: every thread of each podway (/proc/PID/task/*: the main thread and each forwarding
 * worker, where a worker carries the stream), per node/TID.
 */
export function watchRunQueue(lab: Lab, everyMs = 20, allThreads = false): { stop(): Map<string, [number, number][]> } {
  const samples = new Map<string, [number, number][]>();
  const read = (): void => {
    for (const n of lab.nodes) {
      const pid = n.proc?.pid;
      if (pid === undefined || n.proc!.exitCode !== null) continue;
      let tids = [String(pid)];
      if (allThreads) {
        try {
          tids = readdirSync(`/proc/${pid}/task`);
        } catch {
          continue; // gone meanwhile
        }
      }
      for (const tid of tids) {
        let wait: number;
        try {
          wait = Number(readFileSync(`/proc/${pid}/task/${tid}/schedstat`, 'utf8').split(' ')[1]);
        } catch {
          continue; // gone meanwhile
        }
        if (!Number.isFinite(wait)) continue;
        const key = allThreads ? `${n.name}/${tid}` : n.name;
        let xs = samples.get(key);
        if (!xs) samples.set(key, (xs = []));
        xs.push([Date.now(), wait]);
      }
    }
  };
  read();
  const timer = setInterval(read, everyMs);
  timer.unref();
  return {
    stop: () => {
      clearInterval(timer);
      read();
      return samples;
    },
  };
}

/**
 * The longest run-queue wait (ms) of one forwarding thread (watchRunQueue) over [from, to]: from
 * the last sample at or before `from` to the first at or after `to` (so up to a sample's interval
 * more on either side; all samples there are if the test itself was not scheduled meanwhile).
 */
export function runQueueWaitIn(samples: Map<string, [number, number][]>, from: number, to: number): number {
  let most = 0;
  for (const xs of samples.values()) {
    if (xs.length < 2) continue;
    let a = xs[0]!;
    let b = xs[xs.length - 1]!;
    for (const x of xs) if (x[0] <= from) a = x;
    for (let k = xs.length - 1; k >= 0; k--) if (xs[k]![0] >= to) b = xs[k]!;
    if (b[0] > a[0]) most = Math.max(most, (b[1] - a[1]) / 1e6);
  }
  return most;
}

/**
 * "No stall" around an edit: the stream's longest gap in [t0, t1] (gapIn) under `allowed`
 * (allowedGap), or longer only by what a podway's forwarding thread spent waiting for a CPU during
 * that gap (runQueueWaitIn): on a loaded host a gap of 1.3 s whose forwarding thread waited 0.5 s
 * on a run queue is the host's, not podway's. A podway that holds the flow itself (stopped, a
 * retry timer, a lock) gains no run-queue wait and fails, at any load. Returns the failure's text,
 * or null.
 */
export function stallIn(r: StreamResult, t0: number, t1: number, allowed: number, runQueue: Map<string, [number, number][]>): { gap: number; waited: number; failure: string | null } {
  const g = gapIn(r, t0, t1);
  if (g.maxGapMs < allowed) return { gap: g.maxGapMs, waited: 0, failure: null };
  const waited = runQueueWaitIn(runQueue, g.at - g.maxGapMs, g.at);
  const excess = g.maxGapMs - allowed;
  return {
    gap: g.maxGapMs,
    waited,
    failure: waited >= excess ? null : `${g.maxGapMs.toFixed(1)} ms without packets (allowed ${allowed.toFixed(1)} ms; a forwarding thread waited ${waited.toFixed(1)} ms for a CPU meantime, less than the ${excess.toFixed(1)} ms over)`,
  };
}

/**
 * How a stream of `total` datagrams fared: the sequence numbers that never arrived, and how many
 * of those the dataplane lost, that is not counting what the stream's own sockets dropped. A
 * receiver that a loaded host leaves unscheduled for half a second overflows its buffer (140
 * datagrams in a row, seen at load ~16): the host's doing, counted by the kernel as such.
 */
export function streamLoss(r: StreamResult, total: number): { lost: number[]; socketDrops: number; dataplane: number } {
  const lost = lostSeqs(r, total);
  return { lost, socketDrops: r.socketDrops, dataplane: Math.max(0, lost.length - r.socketDrops) };
}

/**
 * The lost sequence numbers (of `lost`) that went missing away from every window: those whose
 * neighbours on either side (the last datagram received before them and the first after) arrived
 * in a span that touches no window [t0, t1]. A datagram lost while the nodes switch their mode
 * has neighbours around the switch; one lost a second later does not.
 */
export function lostOutside(r: StreamResult, lost: number[], windows: { t0: number; t1: number }[]): number[] {
  const at = new Map<number, number>(r.arrivals);
  const seqs = r.arrivals.map(([s]) => s).sort((a, b) => a - b);
  const out: number[] = [];
  for (const s of lost) {
    // the nearest received sequence numbers below and above s (binary search)
    let lo = 0;
    let hi = seqs.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (seqs[mid] < s) lo = mid + 1;
      else hi = mid;
    }
    const before = lo > 0 ? at.get(seqs[lo - 1])! : -Infinity;
    const after = lo < seqs.length ? at.get(seqs[lo])! : Infinity;
    if (!windows.some((w) => before <= w.t1 && after >= w.t0)) out.push(s);
  }
  return out;
}

/**
 * Where the machine counts datagrams it dropped for want of CPU or buffer room, as a snapshot:
 * podway's own (per node, over all its ports: `kernelDrops`, frames the kernel could not put in a
 * receive ring podway had not emptied yet; `txFull`, frames a full send backlog refused) and the
 * kernel's per interface in every namespace of the lab (`ip -s link`: rx and tx dropped, e.g. a
 * TAP pod's queue podway had not read, a veth whose peer's backlog was full). Also, apart
 * (`reasons`: not the machine's), what podway itself dropped, per node and drop reason (its
 * `podway counters` reasons less the events: a frame it answered or handed on is no loss).
 */
export interface DropCounts { podway: Record<string, { kernelDrops: number; txFull: number }>; links: Record<string, number>; reasons: Record<string, Record<string, number>> }

/** The names of podway's counters that count frames answered or handed on, not dropped. */
const EVENT_NAMES = new Set([...Object.values(Event), ...Object.values(Event6)].map((i) => COUNTER_NAMES[i]));

export async function dropCounts(lab: Lab): Promise<DropCounts> {
  const podway: DropCounts['podway'] = {};
  const reasons: DropCounts['reasons'] = {};
  for (const n of lab.nodes) {
    if (!n.proc || n.proc.exitCode !== null) continue;
    const c = (await controlRequest(n.control, { cmd: 'counters' }, 5000)) as { ports: { kernelDrops?: number; txFull?: number }[]; reasons: Record<string, number> };
    podway[n.name] = { kernelDrops: c.ports.reduce((a, p) => a + (p.kernelDrops ?? 0), 0), txFull: c.ports.reduce((a, p) => a + (p.txFull ?? 0), 0) };
    reasons[n.name] = Object.fromEntries(Object.entries(c.reasons).filter(([r]) => !EVENT_NAMES.has(r)));
  }
  const links: Record<string, number> = {};
  const namespaces = [lab.fabric, ...lab.nodes.map((n) => n.ns), ...lab.nodes.flatMap((n) => n.pods.map((p) => p.ns))];
  for (const ns of namespaces) {
    const rows = JSON.parse(execFileSync('ip', ['-j', '-s', '-n', ns, 'link', 'show'], { encoding: 'utf8', timeout: 10_000 })) as { ifname: string; stats64?: { rx: { dropped: number }; tx: { dropped: number } } }[];
    for (const r of rows) links[`${ns}/${r.ifname}`] = (r.stats64?.rx.dropped ?? 0) + (r.stats64?.tx.dropped ?? 0);
  }
  return { podway, links, reasons };
}

/**
 * What was counted between two snapshots: the machine's drops (`total`, and each non-zero counter
 * by name, for messages) and, apart, podway's own drop reasons that moved (`podwayDrops`, by
 * "node reason").
 */
export function dropsBetween(a: DropCounts, b: DropCounts): { total: number; by: Record<string, number>; podwayDrops: Record<string, number> } {
  const by: Record<string, number> = {};
  for (const [node, c] of Object.entries(b.podway)) {
    const was = a.podway[node] ?? { kernelDrops: 0, txFull: 0 };
    if (c.kernelDrops - was.kernelDrops) by[`${node} podway kernelDrops`] = c.kernelDrops - was.kernelDrops;
    if (c.txFull - was.txFull) by[`${node} podway txFull`] = c.txFull - was.txFull;
  }
  for (const [link, n] of Object.entries(b.links)) if (n - (a.links[link] ?? 0) > 0) by[link] = n - (a.links[link] ?? 0);
  const podwayDrops: Record<string, number> = {};
  for (const [node, rs] of Object.entries(b.reasons)) {
    for (const [r, n] of Object.entries(rs)) if (n - (a.reasons[node]?.[r] ?? 0) > 0) podwayDrops[`${node} ${r}`] = n - (a.reasons[node]?.[r] ?? 0);
  }
  return { total: Object.values(by).reduce((x, y) => x + y, 0), by, podwayDrops };
}

/** Sequence numbers 0..total-1 that never arrived. */
export function lostSeqs(r: StreamResult, total: number): number[] {
  const seen = new Uint8Array(total);
  for (const [s] of r.arrivals) if (s < total) seen[s] = 1;
  const lost: number[] = [];
  for (let s = 0; s < total; s++) if (!seen[s]) lost.push(s);
  return lost;
}

/**
 * Stops `node`'s podway (it must exit 0) and rewrites the model cache it wrote as if written in
 * another boot of the machine; returns that boot id (a start then treats the cache as a reboot's).
 */
export async function stopWithCacheOfAnotherBoot(lab: Lab, node: string, datastore: string): Promise<string> {
  const code = await lab.stopPodway(node);
  if (code !== 0) throw new Error(`${node} stopped with exit code ${code}, not 0`);
  const file = lab.modelCachePath(node);
  const r = readModelCache(file, node, datastore);
  if (r === 'none' || 'refused' in r || r.nodeIdentity === null) throw new Error(`${node}'s cache (format 4 expected): ${JSON.stringify(r)}`);
  const other = '00000000-1111-2222-3333-444444444444';
  await writeModelCache(file, node, datastore, r.model, r.appliedAt, r.nodeIdentity, r.bgp, other);
  return other;
}

/**
 * The first source port from 40000 whose `proto` flow src -> dst:dport the steering (steer.ts
 * steerIndex, as the filters of `podway run --workers N` compute it) hands worker `worker` of
 * `workers`: for a test that wants its stream carried by a given forwarding thread.
 */
export function sourcePortFor(proto: 'tcp' | 'udp', src: string, dst: string, dport: number, worker: number, workers = 2): number {
  const f = new Uint8Array(14 + 20 + 8);
  f[12] = 0x08; f[14] = 0x45; f[14 + 9] = proto === 'tcp' ? 6 : 17;
  for (const [at, ip] of [[26, src], [30, dst]] as const) { const a = parseIpv4(ip); f.set([a >>> 24, (a >>> 16) & 255, (a >>> 8) & 255, a & 255], at); }
  f.set([dport >> 8, dport & 255], 36);
  for (let p = 40000; p < 40100; p++) {
    f.set([p >> 8, p & 255], 34);
    if (steerIndex(f, workers) === worker) return p;
  }
  throw new Error(`no source port in 40000-40099 steers ${proto} ${src} -> ${dst}:${dport} to worker ${worker} of ${workers}`);
}

/**
 * Writes `source` as DIR/NAME, a preload module for a test's `podway run` (the test's, written at
 * run time; podway reads nothing for it), and returns the env that has node load it: the test's own
 * NODE_OPTIONS and `--require` it.
 */
export function preloadEnv(dir: string, name: string, source: string): { NODE_OPTIONS: string } {
  const file = path.join(dir, name);
  writeFileSync(file, source);
  return { NODE_OPTIONS: `${process.env.NODE_OPTIONS ?? ''} --require ${file}`.trim() };
}

/** The forwarding-worker tests' lab (e2e/worker-death, worker-late), guarded, not yet built: node1
 * with pod web-1 and node2 with web-2 on one subnet. */
export function workersLab(): Lab {
  return guard(new Lab([
    { name: 'node1', subnet: 'a', pods: [{ name: 'web-1', type: 'veth' }] },
    { name: 'node2', subnet: 'a', pods: [{ name: 'web-2', type: 'veth' }] },
  ]));
}

/** Builds a workersLab and starts node1's podway with `--workers 2`, its metrics on `metricsPort`
 * and `env` (a preload's: preloadEnv), and node2's plain. */
export async function startWorkersLab(lab: Lab, metricsPort: number, env: Record<string, string>): Promise<void> {
  lab.build();
  await lab.startPodway('node1', 20_000, ['--workers', '2', '--metrics-port', String(metricsPort)], env);
  await lab.startPodway('node2', 20_000);
}

/** node1's /metrics on `port` (GET from inside its namespace), parsed; first a render interval
 * passes, so that the scrape renders afresh (src/observe/http.ts serves quick scrapes the last text). */
export async function scrapeNode1(lab: Lab, port: number, timeoutMs: number): Promise<ReturnType<typeof parseMetrics>> {
  await new Promise((r) => setTimeout(r, METRICS_RENDER_MS + 50));
  const r = await execBounded('ip', ['netns', 'exec', lab.node('node1').ns, process.execPath, path.join(__dirname, 'http-get.js'), `http://127.0.0.1:${port}/metrics`], timeoutMs);
  if (r.code !== 0) throw new Error(`http-get: exit ${r.code}: ${r.stderr}`);
  return parseMetrics((JSON.parse(r.stdout.trim()) as { body: string }).body);
}

/** web-1's port's received frames and the receive batches counted on node1, summed over its threads. */
export async function web1Sums(lab: Lab, port: number, timeoutMs: number): Promise<{ rx: number; batches: number }> {
  const m = await scrapeNode1(lab, port, timeoutMs);
  return { rx: valueOf(m, 'podway_port_rx_packets_total', { port: lab.pod('web-1').ifname }), batches: valueOf(m, 'podway_rx_batch_size') };
}
