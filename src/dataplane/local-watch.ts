/**
 * Change notification for the node's own addresses (local-addrs.ts): one long-lived
 * `ip -o monitor address route link` child, through the spawner, instead of reading the local table
 * every few seconds. The kernel announces every address added or removed and every route of any
 * table (iproute2 6.1 has neither `ip -j monitor` nor a table filter for `ip monitor route`); a
 * line about an address (`N: dev inet|inet6 ...`) or about the local table (`... table local ...`)
 * asks for one read of the local table, debounced (a burst of lines, as an address brings: its
 * address line and its local, broadcast and prefix routes, gives one read). Lines about other
 * tables (pod routes, learned routes) are ignored.
 *
 * The same child tells the main table's route changes, both families (routeConcerns/onRouteChange,
 * mainRoute4/mainRoute6: a `default` line is told IPv4's or IPv6's by its words): a route
 * added or deleted whose prefix the caller cares about (one covering another node's address: the
 * underlay next hop towards it may have moved, engine.ts) asks for one more callback, debounced
 * on its own. The kernel resolves a next hop per packet; podway resolves it when told.
 *
 * And the links' changes (onLink, at once): a line about the underlay with another MTU has the
 * engine read the MTU again then, not at its next 5 s check (an MTU lowered under podway: the
 * kernel refuses the bigger frames until podway bounds its routes by it).
 *
 * The child is stopped by its PID at stop(). If it exits (or cannot be started: no `ip`, no
 * netlink) it is started again after a pause doubling from 1 s to 60 s (back to 1 s once one ran
 * 10 s); while none runs, `live`
 * is false and the engine reads the local table every 5 s as before. Each time one starts, one read
 * follows (what changed while none ran).
 *
 * Once podway is stopping (`stopping()`, at its SIGINT/SIGTERM) the monitor's end is no news: a
 * signal to the whole process group (Ctrl-C, `timeout`, systemd's KillMode=mixed) also ends the
 * spawner helper, and with it this monitor, while podway stops. So the warning that it was lost
 * waits LOST_WARN_GRACE_MS (the helper's exit can be read before podway's own signal) and is not
 * written once podway is stopping or stopped; nor is the monitor started again.
 */
import type { SpawnFn, ChildLike } from './spawner';
import { Backoff } from '../util/backoff';
import { parseIp6 } from '../lpm/cidr';

/** The lines that concern the node's own addresses: an address line or a route of the local table. */
export function concernsLocal(line: string): boolean {
  return / table local( |$)/.test(line) || /^(Deleted )?\d+: \S+\s+inet6? /.test(line);
}

/** Route types `ip monitor` prints before the destination. */
const ROUTE_TYPES = new Set(['unicast', 'unreachable', 'blackhole', 'prohibit', 'throw', 'local', 'broadcast', 'anycast', 'multicast', 'nat']);

/** A route line's words and its destination word (after `Deleted` and a route type); null for a
 * route of another table than main. Either family: the callers tell them apart by the destination. */
function mainRouteWords(line: string): { words: string[]; dst: string } | null {
  const words = line.trim().split(/\s+/);
  let i = words[0] === 'Deleted' ? 1 : 0;
  if (ROUTE_TYPES.has(words[i] ?? '')) i++;
  const t = words.indexOf('table');
  if (t >= 0 && words[t + 1] !== 'main') return null;
  return { words, dst: words[i] ?? '' };
}

/**
 * Whether a `default` route line is IPv6's: `default` names neither family, so it is told by the
 * rest of the line. The kernel gives every IPv6 route its router preference (RTA_PREF, which
 * iproute2 prints as `pref medium`) and no IPv4 route one, so a default without a gateway (`default
 * dev eth0 metric 1024 pref medium`) is IPv6's too; failing that, a gateway of the line's own
 * family (`via fd99::fe`; an IPv4 route with an IPv6 gateway says `via inet6 fe80::1`).
 */
function defaultIsIpv6(words: readonly string[]): boolean {
  if (words.includes('pref')) return true;
  for (let i = 0; i + 1 < words.length; i++) if (words[i] === 'via' && words[i + 1]!.includes(':')) return true;
  return false;
}

/** The destination of a line about an IPv4 route of the main table (`ip -o monitor route`, added
 * or `Deleted`), host order; null for any other line (addresses, IPv6, other tables). */
export function mainRoute4(line: string): { addr: number; len: number } | null {
  const r = mainRouteWords(line);
  if (!r) return null;
  const { words, dst } = r;
  if (dst === 'default') return defaultIsIpv6(words) ? null : { addr: 0, len: 0 };
  const m = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})(?:\/(\d{1,2}))?$/.exec(dst);
  if (!m) return null;
  const o = m.slice(1, 5).map(Number);
  const len = m[5] === undefined ? 32 : Number(m[5]);
  if (o.some((x) => x > 255) || len > 32) return null;
  return { addr: ((o[0]! << 24) | (o[1]! << 16) | (o[2]! << 8) | o[3]!) >>> 0, len };
}

/** The destination of a line about an IPv6 route of the main table (`ip -o monitor route`),
 * as four host-order words and a length; null for any other line (IPv4, other tables, addresses). */
export function mainRoute6(line: string): { w: [number, number, number, number]; len: number } | null {
  const r = mainRouteWords(line);
  if (!r) return null;
  const { words, dst } = r;
  // `default` is IPv4's too (mainRoute4 takes those): defaultIsIpv6 tells them apart
  if (dst === 'default') return defaultIsIpv6(words) ? { w: [0, 0, 0, 0], len: 0 } : null;
  if (!dst.includes(':')) return null;
  const [a, l] = dst.split('/');
  const len = l === undefined ? 128 : Number(l);
  if (!Number.isInteger(len) || len < 0 || len > 128) return null;
  try {
    return { w: parseIp6(a!), len };
  } catch {
    return null;
  }
}

/** A line about a link (`ip -o monitor link`: `N: NAME[@PEER]: <FLAGS> mtu M ...`, or `Deleted
 * N: ...`): its name and MTU; null for any other line. */
export function linkLine(line: string): { name: string; mtu: number; deleted: boolean } | null {
  const m = /^(Deleted )?\d+: ([^\s:@]+)(?:@\S*)?: <[^>]*> .*?\bmtu (\d+)\b/.exec(line);
  if (!m) return null;
  return { name: m[2]!, mtu: Number(m[3]), deleted: m[1] !== undefined };
}

export interface LocalWatchOptions {
  spawn: SpawnFn;
  /** What to read after a relevant line (debounced) and after each start. */
  onChange: () => void;
  /** Whether a line about a route matters to onRouteChange (mainRoute4 parses it). */
  routeConcerns?: (line: string) => boolean;
  /** Called (debounced) after a line routeConcerns takes, and after each start. */
  onRouteChange?: () => void;
  /** A link line (linkLine parsed it): called at once, not debounced (the engine reads the
   * underlay's MTU again when the line names it with another MTU). */
  onLink?: (link: { name: string; mtu: number; deleted: boolean }) => void;
  log: (level: 'info' | 'warn', m: string) => void;
  /** `ip`'s arguments (default: -o monitor address route; tests add -n NETNS). */
  args?: string[];
  debounceMs?: number;
  restartMinMs?: number;
  restartMaxMs?: number;
}

export const LOCAL_WATCH_ARGS = ['-o', 'monitor', 'address', 'route', 'link'];

/** How long the warning that the monitor was lost waits for podway's own stop (see above; at most half the pause before the next start). */
export const LOST_WARN_GRACE_MS = 500;

export class LocalTableWatch {
  private child: ChildLike | null = null;
  private pid: number | undefined = undefined;
  private stopped = false;
  /** podway is stopping: the monitor's end is not warned about nor followed by a new one. */
  private quiet = false;
  private debounce: NodeJS.Timeout | null = null;
  private routeDebounce: NodeJS.Timeout | null = null;
  private restart: NodeJS.Timeout | null = null;
  /** The pause before starting again: doubling from restartMinMs to restartMaxMs. */
  private readonly restartWait: Backoff;
  private partial = '';
  /** When the running one started (Date.now()): one that ran 10 s resets the back-off. */
  private upAt = 0;
  /** Whether a monitor runs now (its PID known). */
  live = false;
  /** How many times one was started, and how many relevant lines it printed (status, tests). */
  starts = 0;
  lines = 0;
  /** Route lines routeConcerns took (status, tests). */
  routeLines = 0;
  /** Link lines handed to onLink (tests). */
  linkLines = 0;

  constructor(private readonly o: LocalWatchOptions) {
    this.restartWait = new Backoff({ first: o.restartMinMs ?? 1000, max: o.restartMaxMs ?? 60_000 });
  }

  start(): void {
    if (this.stopped || this.child !== null) return;
    const args = this.o.args ?? LOCAL_WATCH_ARGS;
    let c: ChildLike;
    try {
      c = this.o.spawn('ip', args);
    } catch (e) {
      this.ended(`could not be started (${(e as Error).message})`);
      return;
    }
    this.child = c;
    let err = '';
    let done = false;
    const end = (why: string) => {
      if (done) return;
      done = true;
      if (this.child === c) this.child = null;
      this.ended(err.trim() ? `${why}: ${err.trim().slice(0, 200)}` : why);
    };
    c.stdout.setEncoding('utf8');
    c.stderr.setEncoding('utf8');
    c.stdout.on('data', (s: string) => {
      if (!this.live && c.pid !== undefined) this.up(c);
      this.data(s);
    });
    c.stderr.on('data', (s: string) => (err += s));
    c.on('error', (e) => end(`could not be started or was lost (${e.message})`));
    c.on('close', (code, signal) => end(`exited (${signal ?? `code ${code}`})`));
    c.stdin.end('');
    // The spawner learns the PID a moment later (its 'spawn' message): look for it until then.
    const waitPid = (n: number) => {
      if (done || this.stopped || this.child !== c) return;
      if (c.pid !== undefined) return this.up(c);
      if (n > 0) setTimeout(() => waitPid(n - 1), 20).unref();
    };
    waitPid(500);
  }

  private up(c: ChildLike): void {
    if (this.live || this.child !== c) return;
    this.live = true;
    this.upAt = Date.now();
    this.pid = c.pid;
    this.starts++;
    this.o.log('info', `node's own addresses: learned from the kernel's change notices (ip monitor, PID ${c.pid}); the local table is read again on each change, and every 60 s`);
    // Whatever changed while none ran (or before this one subscribed).
    this.kick();
    this.kickRoutes();
  }

  private ended(why: string): void {
    const was = this.live;
    this.live = false;
    this.pid = undefined;
    this.partial = '';
    if (this.stopped || this.quiet) return;
    // one that ran a while starts again soon; one that keeps dying at once waits longer each time
    if (was && Date.now() - this.upAt >= 10_000) this.restartWait.reset();
    const pause = this.restartWait.next();
    const warn = setTimeout(() => {
      if (!this.stopped && !this.quiet) this.o.log('warn', `node's own addresses: ip monitor ${why}; the local table is read every 5 s until it runs again (started again in ${pause / 1000} s)`);
    }, Math.min(LOST_WARN_GRACE_MS, pause / 2)); // before the new one starts
    warn.unref();
    this.restart = setTimeout(() => {
      this.restart = null;
      if (this.quiet) return;
      this.start();
    }, pause);
    this.restart.unref();
  }

  private data(s: string): void {
    const text = this.partial + s;
    const k = text.lastIndexOf('\n');
    // an unfinished last line waits for the rest (bounded: a line is a few hundred bytes)
    this.partial = k < 0 ? text.slice(-4096) : text.slice(k + 1);
    if (k < 0) return;
    let hit = false;
    let route = false;
    for (const line of text.slice(0, k).split('\n')) {
      if (concernsLocal(line)) hit = true;
      else if (this.o.routeConcerns?.(line)) route = true;
      else if (this.o.onLink) {
        const l = linkLine(line);
        if (l !== null) {
          this.linkLines++;
          this.o.onLink(l);
        }
      }
    }
    if (route) {
      this.routeLines++;
      this.kickRoutes();
    }
    if (!hit) return;
    this.lines++;
    this.kick();
  }

  /** One onRouteChange, after the debounce pause (lines in the meantime join it). */
  private kickRoutes(): void {
    if (this.routeDebounce !== null || this.stopped || !this.o.onRouteChange) return;
    this.routeDebounce = setTimeout(() => {
      this.routeDebounce = null;
      if (!this.stopped) this.o.onRouteChange?.();
    }, this.o.debounceMs ?? 150);
    this.routeDebounce.unref();
  }

  /** One read, after the debounce pause (lines in the meantime join it). */
  private kick(): void {
    if (this.debounce !== null || this.stopped) return;
    this.debounce = setTimeout(() => {
      this.debounce = null;
      if (!this.stopped) this.o.onChange();
    }, this.o.debounceMs ?? 150);
    this.debounce.unref();
  }

  /** podway began to stop (its SIGINT/SIGTERM): the monitor runs on until stop(), but its end, as
   * a signal to the whole process group brings, is neither warned about nor restarted. */
  stopping(): void {
    this.quiet = true;
  }

  /** Stop the monitor (by its PID) and every timer. */
  stop(): void {
    this.stopped = true;
    if (this.debounce) clearTimeout(this.debounce);
    if (this.routeDebounce) clearTimeout(this.routeDebounce);
    if (this.restart) clearTimeout(this.restart);
    this.debounce = this.routeDebounce = this.restart = null;
    const pid = this.child?.pid ?? this.pid;
    this.child = null;
    this.live = false;
    if (pid !== undefined) {
      try {
        process.kill(pid, 'SIGTERM');
      } catch {
        // already gone
      }
    }
  }
}
