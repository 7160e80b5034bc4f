/**
 * Programs the node's kernel (veth pods' /32 and /128 routes and permanent neighbours, the IPv4 and
 * IPv6 pool routes into the host port, the node's tunnel addresses on it, tap/tun pod MTUs) from a
 * desired state, by diff, off the forwarding thread.
 *
 * IPv6 mirrors IPv4 (as Felix programs both): per veth pod `route replace ADDR/128 dev CALI` and
 * `neigh replace ADDR lladdr MAC dev CALI nud permanent` (the kernel then never solicits the pod:
 * its replies and the node's own traffic leave at once), per pool `route replace CIDR dev podway0`
 * (a TUN: no link layer, so no next hop and no NDP on it; the kernel picks the node's global
 * address as the source). IPv6 has no `scope link` route scope to ask for, so the lines carry none.
 * Pool routes carry the MTU of the pool's path (`mtu N`: VXLAN, IPIP or the underlay's, see
 * HostPoolRoute), as the kernel has it from `vxlan.calico`/`tunl0` on a Calico node.
 *
 * Why: the forwarding thread is Node's main event loop, which also runs packet batches. A
 * synchronous `ip` per route (execFileSync) stalls forwarding for the whole spawn; with 1,000 pods
 * every datastore edit would stop packets for seconds. Here sync() only records the state and
 * returns; the diff runs on a later turn of the loop and is written to ONE `ip -force -batch -`
 * child whose completion arrives as an event, so the forwarding thread never waits on `ip`. What
 * it still pays, once per run: the diff (O(items); ~3 ms for 1,000 pods on the development
 * machine) and the fork of the child (10-25 ms there, on 2 busy cores).
 *
 * Why `ip -batch` and not netlink in-process: no maintained npm netlink binding fits (`netlink`
 * is a 0.x single-author native addon, `node-netlink` a 0.0.x prototype, `iproute` spawns `ip`
 * itself), and one `ip` child per change set costs one fork, not one per command.
 *
 * What iproute2 (checked on 6.1.0) tells us, and how it is used:
 * - with -force it goes on after a failed line, prints the error, then `Command failed -:N`
 *   (N = 1-based line), so each failure is attributed to its command; exit status 1 = some lines
 *   failed, 0 = none;
 * - `neigh replace` exits (status 2) on a kernel error instead of failing the line: the batch ends with
 *   no `Command failed`. So neighbour replaces come last, each after a marker (`link show dev
 *   lo`, which prints to stdout): the markers printed say exactly which neighbour line ended the
 *   batch; that one fails (and goes last next time, so it cannot block the others forever) and
 *   the lines after it are run again at once, in a new batch;
 * - `neigh del` of an entry that is already gone exits the same way, so neighbours are removed
 *   with `neigh flush to IP dev IF nud permanent` (flushing nothing succeeds).
 * All commands are idempotent (replace, del, flush), so re-running an unconfirmed one is harmless,
 * except a learned route's `route add`: run again after its result was lost (a killed or timed-out
 * batch), it fails with "File exists" on the route it made itself. Such a failure is checked
 * against the kernel (one `ip -j route show proto bird` after the run): a route there exactly as
 * we write it (same prefix, next hop, device, protocol and metric) is taken as ours, not retried.
 */
import { ChildLike, SpawnFn, localSpawn } from './spawner';
import { formatIpv4 } from '../packet';
import { parseIp6, formatIp6, formatCidr6, mask6Word } from '../lpm/cidr';
import { isSafeIfname } from './ifname';

/** A veth pod: the node reaches its addresses through a /32 route and a permanent neighbour. */
export interface HostPodRoutes {
  ifname: string;
  /** IPv4 addresses, host order (as elsewhere in podway). */
  ips: readonly number[];
  /** IPv6 addresses (text, any valid form; absent: none). */
  ips6?: readonly string[];
  /** The pod's MAC ("02:00:..."); null: route only, no neighbour entry. */
  mac: string | null;
}

/** A pool routed into the host port: `route replace CIDR dev DEV scope link [mtu MTU] [src SRC]`. */
export interface HostPoolRoute {
  cidr: string;
  dev: string;
  /** The route's MTU (`mtu N`, 68..65535; IPv6 1280..65535): the largest packet podway forwards
   * to the pool's pods on other nodes, so the node's kernel sizes its own packets (and answers a
   * too-big DF send with EMSGSIZE) up front, as it does behind Calico's tunnel devices. Absent or
   * null: none (the device's MTU). */
  mtu?: number | null;
  /** The source the node's own traffic to the pool leaves with (one of the node's tunnel
   * addresses, on `dev`: HostAddress); absent or null: the kernel picks (the node's address). */
  src?: string | null;
}

/**
 * An address of the node on one of podway's devices: the node's tunnel addresses on podway0
 * (`addr replace ADDR/32 dev DEV`, `/128 ... nodad` for IPv6), as Calico puts them on
 * `vxlan.calico`, `tunl0` and `vxlan-v6.calico`. Added before the routes naming it as their
 * source; after one is removed every pool route is written again (diff()).
 */
export interface HostAddress {
  addr: string;
  dev: string;
}

/** The MTU of a tap/tun pod device; netns is a namespace path (/run/netns/NAME, /proc/PID/ns/net). */
export interface HostDeviceMtu {
  ifname: string;
  netns: string | null;
  mtu: number;
}

/**
 * A route learned over BGP for the node's kernel (calico-node's BIRD `protocol kernel` does the
 * same, and its BIRD for IPv6): `route CIDR via VIA dev DEV proto bird metric 32`. BIRD's protocol
 * number and BIRD 1.6's default kernel metric: beside an operator's own route to the same prefix
 * (a static default) it is added, never put in its place (the kernel keys a route by prefix and
 * metric in both families; IPv6 needs a global next hop). Which one wins differs: an operator's
 * IPv4 route has metric 0 unless set, so it wins; an operator's IPv6 route has metric 1024 unless
 * set, so the learned metric-32 route wins, as under calico-node's BIRD for IPv6 (docs/bgp.md,
 * "Learned routes in the kernel").
 */
export interface HostLearnedRoute {
  cidr: string;
  /** The BGP next hop (IPv4 or IPv6 text), on the underlay's subnet. */
  via: string;
  dev: string;
}

/** The protocol and metric of podway's learned routes in the kernel (see HostLearnedRoute). */
export const LEARNED_ROUTE_PROTO = 'bird';
export const LEARNED_ROUTE_METRIC = 32;

/**
 * The routes of `ip -j -4 route show ... proto P` (or `-6`, `family` 6; JSON text) with the given
 * metric, as learned routes (`default` is 0.0.0.0/0 or ::/0, a bare address a /32 or /128).
 * Throws when the text is not JSON.
 */
export function parseLearnedRoutes(json: string, metric: number, family: 4 | 6 = 4): HostLearnedRoute[] {
  const out: HostLearnedRoute[] = [];
  for (const r of JSON.parse(json || '[]') as Record<string, unknown>[]) {
    if (Number(r.metric ?? 0) !== metric || typeof r.dst !== 'string' || typeof r.gateway !== 'string' || typeof r.dev !== 'string') continue;
    const cidr = r.dst === 'default' ? (family === 6 ? '::/0' : '0.0.0.0/0') : r.dst.includes('/') ? r.dst : `${r.dst}/${family === 6 ? 128 : 32}`;
    out.push({ cidr, via: r.gateway, dev: r.dev });
  }
  return out;
}

export interface HostState {
  pods: readonly HostPodRoutes[];
  pools: readonly HostPoolRoute[];
  /** Absent: none. */
  addrs?: readonly HostAddress[];
  mtus: readonly HostDeviceMtu[];
  /** Absent: none. */
  learned?: readonly HostLearnedRoute[];
}

export interface HostProgrammerOptions {
  /** Program this named network namespace (`ip -n NAME`) instead of the process's own (tests). */
  netns?: string | null;
  log?: (msg: string) => void;
  /** Kill an `ip` child that has not finished after this long (default 30 s). */
  timeoutMs?: number;
  /** How commands are started (default: in this process; podway run passes a Spawner's, which
   * does not fork podway itself). */
  spawn?: SpawnFn;
  /** Re-run the diff this long after a run left items unprogrammed, without waiting for the next
   * sync() (default 10 s; 0: only sync() retries). */
  retryMs?: number;
}

export interface HostProgrammerStatus {
  /** Commands run by `ip` children since start (markers not counted). */
  commandsRun: number;
  /** Commands that failed or could not be confirmed (child killed, timed out, ended early). */
  failures: number;
  /** Learned routes whose add failed with "File exists" because the kernel already held them
   * exactly as we write them (an add whose result was lost): taken as ours, not retried. */
  adopted: number;
  /** Batches that ended before their last line (killed, timed out, or exited early). */
  aborts: number;
  timeouts: number;
  /** `ip`/`nsenter` children spawned since start. */
  children: number;
  lastError: string | null;
  /** Desired items not (yet) programmed plus removals not (yet) done. */
  pendingItems: number;
  /** Wall time of the last completed run (all its batches), ms. */
  lastBatchMs: number;
  /** The commands the last completed run sent, in order (markers left out; the programmer's own
   * namespace first, then one batch per other namespace). */
  lastCommands: readonly string[];
  running: boolean;
  /** PID of the `ip` child in flight, if any. */
  childPid: number | null;
}

/** One thing in the kernel: a key naming it and a value that changes when it must be replaced. */
interface Item {
  key: string;
  value: string;
  /** Which batch (namespace) it belongs to: '' for the programmer's own namespace. */
  ns: string;
  kind: 'addr' | 'route' | 'neigh' | 'link';
  /** For logs: what it is, with its interface and address. */
  label: string;
  replace: string;
  /** When set, the command for an item not (known to be) in the kernel: `route add` fails rather
   * than replace a route someone else put there; `replace` then only changes our own. */
  add?: string;
  /** null: nothing to undo when it goes (an MTU stays with its device). */
  remove: string | null;
}

/** The kernel's value of an item whose replace failed or was not confirmed: replace it again. */
const UNKNOWN = '\0unknown';

/** One line of a batch: a command for an item, or (item null) a marker. */
interface Line {
  cmd: string;
  item: Item | null;
  removal: boolean;
}

/** What a batch run did, line by line (0-based line indices, markers included). */
export interface BatchOutcome {
  /** Lines that failed, with their messages (absent: succeeded or, from notRunFrom on, not run). */
  failed: Map<number, string>;
  /** The neighbour line whose exit ended the batch early, if that is what happened. */
  endedBy: number | null;
  /** Lines from here on never ran (after endedBy); the batch's length when it ran to the end. */
  notRunFrom: number;
  /** Why the batch did not run to its end (exit message, kill, timeout); null when it did. */
  abort: string | null;
}

const DEFAULT_TIMEOUT_MS = 30_000;
const DEFAULT_RETRY_MS = 10_000;
/** Prints a line starting with "1: lo:" to stdout: proof that ip got past the line before it. */
const MARKER = 'link show dev lo';
/** A removal that failed because the thing is already gone is done, not an error. */
const GONE = /Cannot find device|No such process|No such file or directory|No such device|Cannot assign requested address/;
/** Interface and namespace names end up in batch lines (whitespace-split, `#` comments): only
 * names that cannot smuggle in another argument or command are accepted (interfaces: isSafeIfname). */
const SAFE_NETNS_NAME = /^[A-Za-z0-9_.@-]{1,64}$/;
const MAC = /^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/;
const CIDR4 = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})\/(\d{1,2})$/;
const FAILED_LINE = /^Command failed .*:(\d+)$/;
/** `route add` of a route whose prefix and metric are taken (by us, or by someone else). */
const EXISTS = /File exists/;

export class HostProgrammer {
  private readonly log: (msg: string) => void;
  private readonly netns: string | null;
  private readonly timeoutMs: number;
  private readonly spawnFn: SpawnFn;
  private readonly retryMs: number;
  /** The latest state passed to sync() and not yet diffed (coalesced: the last one wins). */
  private desired: HostState | null = null;
  /** The items of the last diffed state. */
  private wanted = new Map<string, Item>();
  /** Inputs of the last diffed state refused before reaching `ip` (bad names, MACs, CIDRs). */
  private rejected = 0;
  /** What the kernel holds as far as we know (value UNKNOWN: maybe, with some value). */
  private programmed = new Map<string, Item>();
  /** Neighbour items that ended a batch, with when: they go last (oldest first) next time. */
  private enders = new Map<string, number>();
  private enderSeq = 0;
  private scheduled = false;
  private running = false;
  /** A run was asked for while one was in flight (forgetInterface, not a new state): one more
   * run follows it, or the forgotten items would wait for the retry. */
  private rerun = false;
  private stopped = false;
  private child: ChildLike | null = null;
  private retryTimer: NodeJS.Timeout | null = null;
  private idleWaiters: (() => void)[] = [];
  /** Last message logged per item key: a failure repeating on every retry is logged once. */
  private logged = new Map<string, string>();
  /** Learned routes whose `route add` failed with "File exists" in this run: checked against the
   * kernel when the run's batches are done (adoptExisting). */
  private existing: { item: Item; cmd: string; error: string }[] = [];
  private readonly stats = { commandsRun: 0, failures: 0, adopted: 0, aborts: 0, timeouts: 0, children: 0, lastError: null as string | null, lastBatchMs: 0, lastCommands: [] as string[] };

  constructor(opts: HostProgrammerOptions = {}) {
    this.log = opts.log ?? ((m) => console.error(m));
    this.netns = opts.netns ?? null;
    if (this.netns !== null && !SAFE_NETNS_NAME.test(this.netns)) throw new Error(`bad network namespace name "${this.netns}"`);
    this.timeoutMs = opts.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    this.spawnFn = opts.spawn ?? localSpawn;
    this.retryMs = opts.retryMs ?? DEFAULT_RETRY_MS;
  }

  /**
   * Record the desired state and return at once; it is diffed and programmed on a later turn of the
   * event loop. Calls while a run is in flight coalesce: the latest state is diffed when it ends.
   */
  sync(desired: HostState): void {
    if (this.stopped) return;
    // Copied now: the caller may reuse or mutate its arrays before the diff runs.
    this.desired = {
      pods: desired.pods.map((p) => ({ ifname: p.ifname, ips: p.ips.slice(), ips6: (p.ips6 ?? []).slice(), mac: p.mac })),
      pools: desired.pools.map((p) => ({ cidr: p.cidr, dev: p.dev, mtu: p.mtu ?? null, src: p.src ?? null })),
      addrs: (desired.addrs ?? []).map((a) => ({ addr: a.addr, dev: a.dev })),
      mtus: desired.mtus.map((m) => ({ ifname: m.ifname, netns: m.netns, mtu: m.mtu })),
      learned: (desired.learned ?? []).map((l) => ({ cidr: l.cidr, via: l.via, dev: l.dev })),
    };
    this.schedule();
  }

  /**
   * Take pod routes and neighbours already in the kernel (left by an earlier run, see
   * readPodRoutesSync) as programmed: the next diff keeps those still wanted and removes the rest.
   * Call before the first sync().
   */
  adopt(found: readonly { ifname: string; ip?: number; ip6?: string; mac: string | null }[]): void {
    const pods = found.map((f) => ({ ifname: f.ifname, ips: f.ip === undefined ? [] : [f.ip], ips6: f.ip6 === undefined ? [] : [f.ip6], mac: f.mac }));
    const { items } = itemsOf({ pods, pools: [], mtus: [] });
    for (const [key, item] of items) if (!this.programmed.has(key)) this.programmed.set(key, item);
  }

  /**
   * The same for learned routes found in the kernel with podway's protocol and metric (see
   * readLearnedRoutesSync): the next diff keeps those still learned, replaces those whose next hop
   * changed and removes the rest (a route learned before a crash is not left behind for good).
   */
  adoptLearned(found: readonly HostLearnedRoute[]): void {
    const { items } = itemsOf({ pods: [], pools: [], mtus: [], learned: found });
    for (const [key, item] of items) if (!this.programmed.has(key)) this.programmed.set(key, item);
  }

  /**
   * The interface went away (deleted by hand, or by a CNI DEL under podway) and the kernel removed
   * its routes and neighbours with it: forget that they were programmed, so the next run adds them
   * again if the interface comes back (same name) and is still wanted, instead of diffing them as
   * present. Schedules a run (diffed against the last wanted state).
   */
  forgetInterface(ifname: string): void {
    if (this.stopped) return;
    for (const key of [...this.programmed.keys()]) {
      if (key.startsWith(`r ${ifname} `) || key.startsWith(`n ${ifname} `)) {
        this.programmed.delete(key);
        this.enders.delete(key);
        this.logged.delete(key);
      }
    }
    this.schedule();
  }

  /** Resolves when every state passed to sync() so far has been diffed and its commands have run
   * (items that failed stay pending, see status(), until the next sync() or retry). */
  idle(): Promise<void> {
    if (this.isIdle()) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  /** No more runs; wait for the child in flight up to graceMs, then SIGKILL it by PID. */
  async stop(graceMs = 5000): Promise<void> {
    this.stopped = true;
    this.desired = null;
    if (this.retryTimer) clearTimeout(this.retryTimer);
    this.retryTimer = null;
    const child = this.child;
    if (child && child.exitCode === null && child.signalCode === null) {
      const closed = new Promise<void>((resolve) => child.once('close', () => resolve()));
      const inTime = await Promise.race([closed.then(() => true), sleep(graceMs).then(() => false)]);
      if (!inTime) {
        killPid(child.pid);
        await Promise.race([closed, sleep(1000)]);
      }
    }
    await this.idle();
  }

  status(): HostProgrammerStatus {
    return {
      ...this.stats,
      lastCommands: this.stats.lastCommands.slice(),
      pendingItems: this.pendingItems(),
      running: this.running,
      childPid: this.child?.pid ?? null,
    };
  }

  // ---- the run: diff, batches, outcomes ------------------------------------------------------

  private isIdle(): boolean {
    return !this.running && !this.scheduled && (this.desired === null || this.stopped);
  }

  private schedule(): void {
    if (this.running && !this.stopped) this.rerun = true;
    if (this.scheduled || this.running || this.stopped) return;
    this.scheduled = true;
    // Deferred, not run inside sync(): back-to-back syncs coalesce into one run, and even the
    // fork of the child happens on a later turn, between packet batches.
    setImmediate(() => {
      this.scheduled = false;
      void this.run();
    });
  }

  private async run(): Promise<void> {
    if (this.running || this.stopped) return this.wake();
    this.running = true;
    if (this.retryTimer) clearTimeout(this.retryTimer);
    this.retryTimer = null;
    const t0 = Date.now();
    const ran: string[] = [];
    try {
      if (this.desired) {
        const { items, rejects } = itemsOf(this.desired);
        this.desired = null;
        this.wanted = items;
        this.rejected = rejects.length;
        for (const r of rejects) this.logOnce(r.key, r.msg, `host programmer: ${r.msg}; ${r.then ?? 'not programmed'}`);
      }
      for (const [ns, first] of this.diff()) {
        // A neighbour line that ended the batch failed; the lines after it never ran: run them
        // now (each pass is shorter by that line, so this ends).
        for (let lines = first; lines.length > 0 && !this.stopped; ) {
          const withMarkers = addMarkers(lines);
          const outcome = await this.runBatch(ns, withMarkers.map((l) => l.cmd));
          for (const l of withMarkers.slice(0, outcome.notRunFrom)) if (l.item) ran.push(l.cmd);
          lines = this.record(ns, withMarkers, outcome);
        }
      }
      if (this.existing.length > 0 && !this.stopped) await this.adoptExisting();
    } catch (e) {
      // A bug here must not take the forwarding process down: report it; the next sync retries.
      this.stats.lastError = `host programmer: ${(e as Error).message}`;
      this.log(this.stats.lastError);
    } finally {
      this.stats.lastBatchMs = Date.now() - t0;
      this.stats.lastCommands = ran;
      this.running = false;
    }
    const again = this.rerun;
    this.rerun = false;
    if ((this.desired || again) && !this.stopped) return this.schedule();
    if (this.retryMs > 0 && !this.stopped && this.pendingItems() > 0) {
      this.retryTimer = setTimeout(() => {
        this.retryTimer = null;
        this.schedule();
      }, this.retryMs);
      this.retryTimer.unref();
    }
    this.wake();
  }

  private wake(): void {
    if (!this.isIdle()) return;
    const waiters = this.idleWaiters;
    this.idleWaiters = [];
    for (const w of waiters) w();
  }

  /** The lines to run, per namespace (own namespace first); removals first (an address moving
   * between interfaces is deleted before it is added), neighbour replaces last, enders at the end.
   * Host addresses (podway0's tunnel addresses) are added before everything, since a route may
   * name one as its source, and removed before the routes are written (`delAddr`): the kernel
   * deletes the routes whose source an address was, and every IPv4 route through a device whose
   * last IPv4 address goes (fib_disable_ip), so after a removal every pool route is written again
   * (replace: idempotent), not only the changed ones. */
  private diff(): Map<string, Line[]> {
    const perNs = new Map<string, { addr: Line[]; del: Line[]; route: Line[]; delAddr: Line[]; link: Line[]; neigh: Line[] }>();
    const group = (ns: string) => {
      let g = perNs.get(ns);
      if (!g) perNs.set(ns, (g = { addr: [], del: [], route: [], delAddr: [], link: [], neigh: [] }));
      return g;
    };
    for (const [key, have] of this.programmed) {
      if (this.wanted.has(key)) continue;
      this.enders.delete(key);
      if (have.remove === null) this.programmed.delete(key);
      else (have.kind === 'addr' ? group(have.ns).delAddr : group(have.ns).del).push({ cmd: have.remove, item: have, removal: true });
    }
    for (const [key, want] of this.wanted) {
      const have = this.programmed.get(key);
      if (have?.value === want.value) continue;
      const ours = have !== undefined && have.value !== UNKNOWN;
      group(want.ns)[want.kind].push({ cmd: want.add !== undefined && !ours ? want.add : want.replace, item: want, removal: false });
    }
    const out = new Map<string, Line[]>();
    for (const ns of [...perNs.keys()].sort()) {
      const g = perNs.get(ns)!;
      const rank = (l: Line) => this.enders.get(l.item!.key) ?? -1;
      g.neigh.sort((a, b) => rank(a) - rank(b));
      if (g.delAddr.length > 0) {
        const queued = new Set(g.route.map((l) => l.item!.key));
        for (const [key, want] of this.wanted) {
          if (want.ns === ns && key.startsWith('p ') && !queued.has(key)) g.route.push({ cmd: want.replace, item: want, removal: false });
        }
      }
      out.set(ns, [...g.addr, ...g.del, ...g.delAddr, ...g.route, ...g.link, ...g.neigh]);
    }
    return out;
  }

  /** Apply a batch's outcome (what succeeded is programmed, what failed is retried later); returns
   * the lines that never ran because a neighbour line ended the batch. */
  private record(ns: string, lines: Line[], outcome: BatchOutcome): Line[] {
    let unconfirmed = 0;
    for (let i = 0; i < outcome.notRunFrom; i++) {
      const line = lines[i];
      const item = line.item;
      if (!item) continue;
      this.stats.commandsRun++;
      const error = outcome.failed.get(i) ?? null;
      if (error === null || (line.removal && GONE.test(error))) {
        // Done; a removal of something already gone (with its interface) counts as done too.
        if (line.removal) this.programmed.delete(item.key);
        else this.programmed.set(item.key, item);
        this.enders.delete(item.key);
        this.logged.delete(item.key);
        continue;
      }
      this.stats.failures++;
      // A failed removal stays programmed (removed again next time); after a failed replace the
      // kernel's value is unknown: replaced again, or removed if no longer wanted.
      if (!line.removal) this.programmed.set(item.key, { ...item, value: UNKNOWN });
      if (i === outcome.endedBy) this.enders.set(item.key, ++this.enderSeq);
      if (outcome.abort !== null && error === outcome.abort && i !== outcome.endedBy) {
        unconfirmed++;
        continue;
      }
      if (item.add !== undefined && line.cmd === item.add && EXISTS.test(error)) {
        this.existing.push({ item, cmd: line.cmd, error });
        continue;
      }
      this.logOnce(item.key, error, `host programmer: ${item.label}: \`ip ${line.cmd}\`: ${error}; will retry`);
    }
    if (outcome.abort !== null) {
      this.stats.aborts++;
      const where = ns ? ` in ${ns}` : this.netns ? ` in netns ${this.netns}` : '';
      const notRun = lines.slice(outcome.notRunFrom).filter((l) => l.item).length;
      const what = outcome.endedBy !== null ? `${notRun} commands after it run again` : `${unconfirmed} commands not confirmed, will retry`;
      this.stats.lastError = `host programmer: ip batch${where} ended early (${outcome.abort}); ${what}`;
      // Logged once while it keeps happening the same way (a hung or missing `ip` on every retry);
      // the counters keep counting.
      if (outcome.endedBy === null) this.logOnce(`batch ${ns}`, outcome.abort, this.stats.lastError);
    } else {
      this.logged.delete(`batch ${ns}`);
    }
    return lines.slice(outcome.notRunFrom).filter((l) => l.item !== null);
  }

  /**
   * The learned routes whose add failed with "File exists": those in the kernel exactly as we
   * write them (an earlier add of ours whose result was lost) are ours from now on; the others
   * (someone else's route at our prefix and metric: an operator's, left alone) are logged and
   * retried as any failure. An unreadable table leaves them all to the retry.
   */
  private async adoptExisting(): Promise<void> {
    const existing = this.existing;
    this.existing = [];
    const inKernel = new Set<string>();
    // Each family read only when one of its routes is in question (items are keyed `l CIDR`).
    for (const family of [4, 6] as const) {
      if (!existing.some(({ item }) => item.key.includes(':') === (family === 6))) continue;
      const text = await this.readTable(['-j', `-${family}`, 'route', 'show', 'table', 'main', 'proto', LEARNED_ROUTE_PROTO]);
      try {
        for (const r of parseLearnedRoutes(text, LEARNED_ROUTE_METRIC, family)) inKernel.add(`${r.cidr} ${r.via} ${r.dev}`);
      } catch {
        /* not JSON (ip failed): nothing of this family is adopted, all are retried */
      }
    }
    for (const { item, cmd, error } of existing) {
      // Items are keyed `l CIDR` with value `VIA DEV` (itemsOf).
      if (inKernel.has(`${item.key.slice(2)} ${item.value}`) && this.wanted.get(item.key)?.value === item.value) {
        this.programmed.set(item.key, item);
        this.logged.delete(item.key);
        this.stats.adopted++;
        continue;
      }
      this.logOnce(item.key, error, `host programmer: ${item.label}: \`ip ${cmd}\`: ${error}; will retry`);
    }
  }

  /** One `ip ARGS` read in the programmer's namespace; its stdout, or '' when it failed or hung. */
  private readTable(args: string[]): Promise<string> {
    const child = this.spawnFn('ip', this.netns ? ['-n', this.netns, ...args] : args);
    this.child = child;
    this.stats.children++;
    return new Promise((resolve) => {
      let out = '';
      let settled = false;
      const timer = setTimeout(() => killPid(child.pid), this.timeoutMs);
      const finish = (ok: boolean) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        if (this.child === child) this.child = null;
        resolve(ok ? out : '');
      };
      child.stdout!.setEncoding('utf8');
      child.stdout!.on('data', (s: string) => {
        if (out.length < 64 << 20) out += s;
      });
      child.stderr!.setEncoding('utf8');
      child.stderr!.on('data', () => {});
      child.stdin!.on('error', () => {});
      child.on('error', () => finish(false));
      child.on('close', (code) => finish(code === 0));
      child.stdin!.end('');
    });
  }

  private logOnce(key: string, error: string, msg: string): void {
    this.stats.lastError = msg;
    if (this.logged.get(key) === error) return;
    this.logged.set(key, error);
    this.log(msg);
  }

  /** Run one `ip -force -batch -` child for a namespace and read which lines failed. */
  private runBatch(ns: string, cmds: string[]): Promise<BatchOutcome> {
    const [file, args] = this.command(ns);
    const markers: number[] = [];
    cmds.forEach((c, i) => c === MARKER && markers.push(i));
    return new Promise((resolve) => {
      let stderr = '';
      let markersSeen = 0;
      let timedOut = false;
      let settled = false;
      const child = this.spawnFn(file, args);
      this.child = child;
      this.stats.children++;
      const timer = setTimeout(() => {
        timedOut = true;
        this.stats.timeouts++;
        killPid(child.pid);
      }, this.timeoutMs);
      const finish = (code: number | null, signal: string | null, spawnError: Error | null) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        if (this.child === child) this.child = null;
        let why: string | null = null;
        if (spawnError) why = `${file}: ${spawnError.message}`;
        else if (timedOut) why = `killed after ${this.timeoutMs} ms`;
        else if (signal) why = `killed by ${signal}`;
        resolve(parseBatchOutcome(stderr, markersSeen, markers, cmds.length, code, why));
      };
      child.stderr!.setEncoding('utf8');
      child.stderr!.on('data', (s: string) => {
        if (stderr.length < 1 << 20) stderr += s;
      });
      // Only the markers' header lines start with a digit ("1: lo: ..."); nothing else prints.
      let partial = '';
      child.stdout!.setEncoding('utf8');
      child.stdout!.on('data', (s: string) => {
        const text = partial + s;
        const end = text.lastIndexOf('\n');
        partial = text.slice(end + 1);
        if (end >= 0) markersSeen += (text.slice(0, end + 1).match(/^\d+: /gm) ?? []).length;
      });
      // A child that exits before reading all its input fails the write with EPIPE; its outcome
      // is read from stderr, stdout and the exit status, so that error says nothing more.
      child.stdin!.on('error', () => {});
      child.on('error', (e) => finish(null, null, e));
      child.on('close', (code, signal) => {
        if (/^\d+: /.test(partial)) markersSeen++;
        finish(code, signal, null);
      });
      child.stdin!.end(cmds.join('\n') + '\n');
    });
  }

  private command(ns: string): [string, string[]] {
    const batch = ['-force', '-batch', '-'];
    if (ns === '') return ['ip', this.netns ? ['-n', this.netns, ...batch] : batch];
    const named = /^\/run\/netns\/([^/]+)$/.exec(ns);
    if (named && SAFE_NETNS_NAME.test(named[1])) return ['ip', ['-n', named[1], ...batch]];
    return ['nsenter', [`--net=${ns}`, 'ip', ...batch]];
  }

  private pendingItems(): number {
    // A state not yet diffed counts by its own items.
    const { items, rejects } = this.desired ? itemsOf(this.desired) : { items: this.wanted, rejects: { length: this.rejected } };
    let n = rejects.length;
    for (const [key, want] of items) if (this.programmed.get(key)?.value !== want.value) n++;
    for (const [key, have] of this.programmed) if (!items.has(key) && have.remove !== null) n++;
    return n;
  }
}

/** A marker before the first neighbour replace and after each one (see the top comment). */
function addMarkers(lines: Line[]): Line[] {
  const out: Line[] = [];
  let inNeigh = false;
  for (const l of lines) {
    const neigh = l.item?.kind === 'neigh' && !l.removal;
    if (neigh && !inNeigh) out.push({ cmd: MARKER, item: null, removal: false });
    inNeigh ||= neigh;
    out.push(l);
    if (neigh) out.push({ cmd: MARKER, item: null, removal: false });
  }
  return out;
}

/**
 * Which lines of a `-force -batch` run failed. iproute2 prints a failed line's messages, then
 * `Command failed <file>:<N>`. Exit 0: every line ran; exit 1 with reported lines: every line ran,
 * those failed. Otherwise (an unattributed trailing message, another exit status, or `why`: killed,
 * not spawned) the batch ended early: lines up to the last reported failure or the last marker seen
 * ran; if it ended by itself right after a marker, the neighbour line there ended it (the lines
 * after it never ran); else the lines from there on are unconfirmed and fail with the reason.
 */
export function parseBatchOutcome(stderr: string, markersSeen: number, markerLines: readonly number[], lineCount: number, code: number | null, why: string | null): BatchOutcome {
  const failed = new Map<number, string>();
  let msgs: string[] = [];
  let reported = 0;
  for (const raw of stderr.split('\n')) {
    const line = raw.trim();
    if (!line) continue;
    const m = FAILED_LINE.exec(line);
    if (m && Number(m[1]) >= 1 && Number(m[1]) <= lineCount) {
      failed.set(Number(m[1]) - 1, msgs.join('; ') || 'failed');
      reported = Math.max(reported, Number(m[1]));
      msgs = [];
    } else {
      msgs.push(line);
    }
  }
  if (why === null && msgs.length === 0 && (code === 0 || (code === 1 && failed.size > 0))) {
    return { failed, endedBy: null, notRunFrom: lineCount, abort: null };
  }
  const abort = why ?? `${msgs.length ? `${msgs.join('; ')}, ` : ''}exit ${code}`;
  const seen = Math.min(markersSeen, markerLines.length);
  const afterMarker = seen > 0 ? markerLines[seen - 1] + 1 : 0;
  const ranThrough = Math.max(reported, afterMarker);
  if (why === null && seen > 0 && ranThrough === afterMarker && afterMarker < lineCount && !markerLines.includes(afterMarker)) {
    failed.set(afterMarker, abort);
    return { failed, endedBy: afterMarker, notRunFrom: afterMarker + 1, abort };
  }
  for (let i = ranThrough; i < lineCount; i++) if (!markerLines.includes(i)) failed.set(i, abort);
  return { failed, endedBy: null, notRunFrom: lineCount, abort };
}

/** The items of a desired state, and the inputs refused (they must never reach a batch line). */
function itemsOf(state: HostState): { items: Map<string, Item>; rejects: { key: string; msg: string; then?: string }[] } {
  const items = new Map<string, Item>();
  /** `then`: what becomes of it, when not "not programmed". */
  const rejects: { key: string; msg: string; then?: string }[] = [];
  const add = (item: Item) => items.set(item.key, item);
  for (const pod of state.pods) {
    const dev = pod.ifname;
    if (!isSafeIfname(dev)) {
      rejects.push({ key: `bad-if ${dev}`, msg: `pod interface "${dev}": bad interface name` });
      continue;
    }
    let mac = pod.mac === null ? null : pod.mac.toLowerCase();
    if (mac !== null && !MAC.test(mac)) {
      rejects.push({ key: `bad-mac ${dev}`, msg: `pod interface ${dev}: bad MAC "${pod.mac}" (routes only)` });
      mac = null;
    }
    for (const ip of pod.ips) {
      const a = formatIpv4(ip);
      add({ key: `r ${dev} ${a}`, value: '', ns: '', kind: 'route', label: `pod ${a} on ${dev}`, replace: `route replace ${a}/32 dev ${dev} scope link`, remove: `route del ${a}/32 dev ${dev}` });
      if (mac !== null) {
        add({ key: `n ${dev} ${a}`, value: mac, ns: '', kind: 'neigh', label: `pod ${a} on ${dev}`, replace: `neigh replace ${a} lladdr ${mac} dev ${dev} nud permanent`, remove: `neigh flush to ${a} dev ${dev} nud permanent` });
      }
    }
    for (const text of pod.ips6 ?? []) {
      // Canonical text: the key of an address is the same however the datastore or `ip` wrote it.
      const a = canonical6(text);
      if (a === null) {
        rejects.push({ key: `bad-ip6 ${dev} ${text}`, msg: `pod interface ${dev}: bad IPv6 address "${text}"` });
        continue;
      }
      // No `-6` (batch lines take no options): ip takes the family from the address.
      add({ key: `r ${dev} ${a}`, value: '', ns: '', kind: 'route', label: `pod ${a} on ${dev}`, replace: `route replace ${a}/128 dev ${dev}`, remove: `route del ${a}/128 dev ${dev}` });
      if (mac !== null) {
        add({ key: `n ${dev} ${a}`, value: mac, ns: '', kind: 'neigh', label: `pod ${a} on ${dev}`, replace: `neigh replace ${a} lladdr ${mac} dev ${dev} nud permanent`, remove: `neigh flush to ${a} dev ${dev} nud permanent` });
      }
    }
  }
  for (const pool of state.pools) {
    if (pool.cidr.includes(':')) {
      const c = canonicalCidr6(pool.cidr);
      if (c === null || !isSafeIfname(pool.dev)) {
        rejects.push({ key: `bad-pool ${pool.cidr}`, msg: `pool route "${pool.cidr}" dev "${pool.dev}": bad CIDR or interface name` });
        continue;
      }
      const src6 = pool.src ? canonical6(pool.src) : null;
      if (pool.src && src6 === null) {
        rejects.push({ key: `bad-pool ${pool.cidr}`, msg: `pool route "${pool.cidr}" src "${pool.src}": bad IPv6 source address` });
        continue;
      }
      const srcPart = src6 ? ` src ${src6}` : '';
      // A bad MTU (never from the engine) leaves the route without one: the pool stays reachable.
      let mtu6 = routeMtuPart(pool.mtu, 1280);
      if (mtu6 === null) {
        rejects.push({ key: `bad-mtu ${c}`, msg: `pool route "${pool.cidr}" dev "${pool.dev}": bad MTU ${pool.mtu} (an IPv6 route's is 1280..65535)`, then: 'routed without one' });
        mtu6 = '';
      }
      add({ key: `p ${c}`, value: `${pool.dev}${mtu6}${srcPart}`, ns: '', kind: 'route', label: `pool ${c} on ${pool.dev}${mtu6}${srcPart}`, replace: `route replace ${c} dev ${pool.dev}${mtu6}${srcPart}`, remove: `route del ${c} dev ${pool.dev}` });
      continue;
    }
    const m = CIDR4.exec(pool.cidr);
    const sm = pool.src ? CIDR4.exec(`${pool.src}/32`) : null;
    if (!m || m.slice(1, 5).some((o) => Number(o) > 255) || Number(m[5]) > 32 || !isSafeIfname(pool.dev) || (pool.src && (!sm || sm.slice(1, 5).some((o) => Number(o) > 255)))) {
      rejects.push({ key: `bad-pool ${pool.cidr}`, msg: `pool route "${pool.cidr}" dev "${pool.dev}"${pool.src ? ` src "${pool.src}"` : ''}: bad CIDR, interface name or source address` });
      continue;
    }
    let mtu4 = routeMtuPart(pool.mtu, 68);
    if (mtu4 === null) {
      rejects.push({ key: `bad-mtu ${pool.cidr}`, msg: `pool route "${pool.cidr}" dev "${pool.dev}": bad MTU ${pool.mtu} (68..65535)`, then: 'routed without one' });
      mtu4 = '';
    }
    const srcPart = pool.src ? ` src ${pool.src}` : '';
    // Keyed by CIDR alone: a pool moving to another device, MTU or source is one replace (the
    // kernel's `replace` sets the route's metrics anew), not a delete and an add.
    add({ key: `p ${pool.cidr}`, value: `${pool.dev}${mtu4}${srcPart}`, ns: '', kind: 'route', label: `pool ${pool.cidr} on ${pool.dev}${mtu4}${srcPart}`, replace: `route replace ${pool.cidr} dev ${pool.dev} scope link${mtu4}${srcPart}`, remove: `route del ${pool.cidr} dev ${pool.dev}` });
  }
  for (const a of state.addrs ?? []) {
    if (!isSafeIfname(a.dev)) {
      rejects.push({ key: `bad-addr ${a.addr}`, msg: `address "${a.addr}" on "${a.dev}": bad interface name` });
      continue;
    }
    if (a.addr.includes(':')) {
      const c = canonical6(a.addr);
      if (c === null) {
        rejects.push({ key: `bad-addr ${a.addr}`, msg: `address "${a.addr}" on ${a.dev}: bad IPv6 address` });
        continue;
      }
      // nodad: usable at once (a route's source must not be tentative); the address is the node's own.
      add({ key: `a ${c}`, value: a.dev, ns: '', kind: 'addr', label: `address ${c} on ${a.dev}`, replace: `addr replace ${c}/128 dev ${a.dev} nodad`, remove: `addr del ${c}/128 dev ${a.dev}` });
      continue;
    }
    const m = CIDR4.exec(`${a.addr}/32`);
    if (!m || m.slice(1, 5).some((o) => Number(o) > 255)) {
      rejects.push({ key: `bad-addr ${a.addr}`, msg: `address "${a.addr}" on ${a.dev}: bad IPv4 address` });
      continue;
    }
    add({ key: `a ${a.addr}`, value: a.dev, ns: '', kind: 'addr', label: `address ${a.addr} on ${a.dev}`, replace: `addr replace ${a.addr}/32 dev ${a.dev}`, remove: `addr del ${a.addr}/32 dev ${a.dev}` });
  }
  for (const l of state.learned ?? []) {
    if (l.cidr.includes(':')) {
      // IPv6: canonical texts (as `ip -j -6 route` prints them, for adoption), a global next hop.
      const c = canonicalCidr6(l.cidr);
      const via = canonical6(l.via);
      if (c === null || via === null || via === '::' || /^fe[89ab]/.test(via) || !isSafeIfname(l.dev)) {
        rejects.push({ key: `bad-learned ${l.cidr}`, msg: `learned route "${l.cidr}" via "${l.via}" dev "${l.dev}": bad CIDR, next hop (a global IPv6 address) or interface name` });
        continue;
      }
      const tail = `${c} via ${via} dev ${l.dev} proto ${LEARNED_ROUTE_PROTO} metric ${LEARNED_ROUTE_METRIC}`;
      add({ key: `l ${c}`, value: `${via} ${l.dev}`, ns: '', kind: 'route', label: `learned route ${c} via ${via}`, add: `route add ${tail}`, replace: `route replace ${tail}`, remove: `route del ${tail}` });
      continue;
    }
    const m = CIDR4.exec(l.cidr);
    const v = CIDR4.exec(`${l.via}/32`);
    if (!m || !v || [...m.slice(1, 5), ...v.slice(1, 5)].some((o) => Number(o) > 255) || Number(m[5]) > 32 || !isSafeIfname(l.dev)) {
      rejects.push({ key: `bad-learned ${l.cidr}`, msg: `learned route "${l.cidr}" via "${l.via}" dev "${l.dev}": bad CIDR, next hop or interface name` });
      continue;
    }
    // Keyed by CIDR: a new next hop is one replace of our own route (same prefix and metric).
    const tail = `${l.cidr} via ${l.via} dev ${l.dev} proto ${LEARNED_ROUTE_PROTO} metric ${LEARNED_ROUTE_METRIC}`;
    add({ key: `l ${l.cidr}`, value: `${l.via} ${l.dev}`, ns: '', kind: 'route', label: `learned route ${l.cidr} via ${l.via}`, add: `route add ${tail}`, replace: `route replace ${tail}`, remove: `route del ${tail}` });
  }
  for (const d of state.mtus) {
    const ns = d.netns ?? '';
    if (!isSafeIfname(d.ifname) || !Number.isInteger(d.mtu) || d.mtu < 68 || d.mtu > 65535 || (ns !== '' && (!ns.startsWith('/') || /[\0\n]/.test(ns)))) {
      rejects.push({ key: `bad-mtu ${ns} ${d.ifname}`, msg: `MTU ${d.mtu} of "${d.ifname}"${ns ? ` in ${ns}` : ''}: bad interface name, MTU or namespace path` });
      continue;
    }
    add({ key: `m ${ns} ${d.ifname}`, value: String(d.mtu), ns, kind: 'link', label: `MTU of ${d.ifname}${ns ? ` in ${ns}` : ''}`, replace: `link set dev ${d.ifname} mtu ${d.mtu}`, remove: null });
  }
  return { items, rejects };
}

/** A pool route's ` mtu N` ('' without one); null when `mtu` is not an integer min..65535. */
function routeMtuPart(mtu: number | null | undefined, min: number): string | null {
  if (mtu === undefined || mtu === null) return '';
  return Number.isInteger(mtu) && mtu >= min && mtu <= 65535 ? ` mtu ${mtu}` : null;
}

/** An IPv6 address text in the form `ip` prints (RFC 5952); null when it is not one. Only hex
 * digits and colons come back, so the text cannot carry another batch argument. */
function canonical6(text: string): string | null {
  if (!/^[0-9A-Fa-f:]{2,39}$/.test(text)) return null;
  try {
    const w = parseIp6(text);
    return formatIp6(w[0], w[1], w[2], w[3]);
  } catch {
    return null;
  }
}

/** An IPv6 CIDR as its network (host bits cleared) in canonical text; null when it is not one. */
function canonicalCidr6(text: string): string | null {
  const m = /^([0-9A-Fa-f:]{2,39})\/(\d{1,3})$/.exec(text);
  if (!m || Number(m[2]) > 128 || canonical6(m[1]) === null) return null;
  const len = Number(m[2]);
  const w = parseIp6(m[1]);
  return formatCidr6(w.map((x, i) => (x & mask6Word(len, i)) >>> 0), len);
}

function killPid(pid: number | undefined): void {
  if (pid === undefined) return;
  try {
    process.kill(pid, 'SIGKILL');
  } catch {
    /* already gone */
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms).unref());
}
