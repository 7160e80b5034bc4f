// podway's BGP-4 speaker: peers (session.ts), the Adj-RIBs-In, best-path selection, and what is
// advertised to whom (iBGP rules, eBGP next-hop-self and AS prepend, RFC 4456 route reflection,
// and which learned routes may be passed on at all: setLearnedExportPolicy).
// The public API (BgpSpeaker and the types) is what the Calico peering model builds on.
import { EventEmitter } from 'node:events';
import { networkInterfaces } from 'node:os';
import { createServer, Server, Socket } from 'node:net';
import { offeredFamilies, PeerSession, SessionHost, stripMapped, BgpState } from './session';
import { readTcpMd5Counters, setListenerKey, setTtlSecurity, TcpMd5Counters } from './md5';
import { filterVerdict, type BgpPeerFilter, type FilterRoute } from './filters';
import { Backoff } from '../../util/backoff';
import { LogLimiter } from '../../util/log-limiter';
import {
  Afi, AsPathSegment, AsSegment, asPathLength, BgpError, CeaseSub, encodeAnnounce, encodeEndOfRib,
  encodeRouteRefresh, encodeWithdraw, endOfRibFamily, ErrCode, PathAttrs, Prefix, SAFI_UNICAST, UpdateMessage,
  addressOctets, addressText, parsePrefix,
} from './wire';

export type { BgpState } from './session';

export interface BgpPeerConfig {
  address: string;
  asNumber: number;
  /** Wait for the peer to connect; never dial (Calico makes one side of each mesh pair passive). */
  passive?: boolean;
  /** The peer's TCP port (default 179). */
  port?: number;
  /** TCP-MD5 (RFC 2385) key. */
  password?: string;
  /** The peer is our route-reflector client (we reflect only when clusterId is set). */
  routeReflectorClient?: boolean;
  /** Toward an external peer, keep a learned route's next hop instead of setting ourselves. */
  keepOriginalNextHop?: boolean;
  /** Every learned route passed on to this peer, eBGP or iBGP (reflected too), goes with our own
   * address as next hop: BIRD's `next hop self` (Calico's BGPPeer nextHopMode Self). */
  nextHopSelf?: boolean;
  holdTimeSeconds?: number;
  /** Seconds between our KEEPALIVEs (BIRD's `keepalive time`; at most a third of the hold time). */
  keepaliveSeconds?: number;
  /** Restart time announced to this peer (BIRD's `graceful restart time`), instead of the speaker's. */
  gracefulRestartSeconds?: number;
  /** Source address for our connection to the peer. */
  localAddress?: string;
  description?: string;
  /** Most prefixes accepted from this peer before the session is closed (Cease 1); default 250000. */
  maxPrefixes?: number;
  /** Address families offered (default both): Calico's plan gives IPv4 sessions 'ipv4' and IPv6
   * sessions 'ipv6', as its BIRD for IPv4 and BIRD for IPv6 do. */
  families?: readonly ('ipv4' | 'ipv6')[];
  /** Calico's BGPFilters (BGPPeer spec.filters) in order: each route in (import) and out (export)
   * is judged by their rules (filters.ts). A change to them alone does not reset the session:
   * its routes are judged again, what is now rejected withdrawn and what is now accepted sent. */
  filters?: readonly BgpPeerFilter[];
  /** GTSM (RFC 5082, BIRD's `ttl security on; multihop N`): the peer is N hops away. */
  ttlSecurity?: number;
  /** This session's own AS (BIRD's `local as`, Calico's BGPPeer localASNumber), instead of the
   * speaker's: in OPEN, for iBGP or eBGP, in the AS_PATH we send and in the loop check. */
  localAs?: number;
  /** How many times our own AS may appear in a route's AS_PATH before the route is rejected as a
   * loop, on iBGP and eBGP sessions alike: BIRD's `allow local as N` (Calico's BGPPeer
   * numAllowedLocalASNumbers). Default 0: any occurrence rejects the route. */
  allowLocalAs?: number;
}

export interface BgpSpeakerOptions {
  localAs: number;
  routerId: string;
  /** Listen on this address only (Calico's bindMode NodeIP); default all addresses, IPv4 and IPv6. */
  listenAddress?: string;
  /** With listenAddress: also listen on this IPv6 address (the node's, for its IPv6 sessions). */
  listenAddress6?: string;
  /** TCP port to listen on; 179 by default, 0 = do not listen (outgoing sessions only). */
  listenPort?: number;
  /** Set = we are a route reflector with this cluster id. */
  clusterId?: string;
  /** Restart time we announce (RFC 4724); 0 = no graceful restart capability. Default 120. */
  gracefulRestartSeconds?: number;
  /** Wait between connection attempts and after a session error; default 5. */
  connectRetrySeconds?: number;
  /** A listener that could not open is tried again after these waits (ms, doubling); default 1 s to 30 s. */
  listenRetryMs?: { first: number; max: number };
  /** Where the speaker reports session events; default: warnings to stderr. */
  log?: (level: 'info' | 'warn', msg: string) => void;
  /**
   * This speaker starts a restart of the node's BGP: an earlier run of it forwarded on routes it
   * announced, and that forwarding state was kept (podway re-attaches to the same pods; their
   * addresses and blocks are unchanged). Graceful restart's flags in OPEN (RFC 4724 section 3):
   * R (restart state) and F (forwarding preserved) are set in each peer's OPENs until its first
   * session after the start is Established. Without it (a first start, nothing kept: a peer still
   * holding stale routes of ours must drop them at once) both are clear then. Later OPENs, once
   * a session was up, are not a restart (R clear) and this process forwarded all along (F set).
   */
  restarted?: boolean;
}

export interface BgpExport {
  prefix: string;
  /** Default: our local address on the session. */
  nextHop?: string;
  /** "65000:100" style. */
  communities?: string[];
}

/**
 * Which learned routes are passed on to peers (iBGP and eBGP alike), as Calico's BIRD export
 * filter `calico_export_to_bgp_peers` decides it for routes BIRD learned over BGP: a route inside
 * (or equal to) a pool with `exported: false` (disableBGPExport) never; one strictly inside one of
 * our own `blocks` never (the block covers it: calico_aggr); else one inside any other pool yes;
 * anything else (a ToR's default route, another AS's networks) never, so a node is no transit
 * between its peers. The BGP rules (iBGP split horizon, route reflection) apply on top.
 */
export interface BgpLearnedExportPolicy {
  readonly pools: readonly { readonly cidr: string; readonly exported: boolean }[];
  readonly blocks: readonly string[];
}

export interface BgpRoute {
  prefix: string;
  nextHop: string;
  /** Address of the peer it was learned from. */
  peer: string;
  asPath: number[];
  localPref?: number;
  med?: number;
  communities: string[];
  originatorId?: string;
  clusterList?: string[];
}

export interface BgpPeerStatus {
  address: string;
  asNumber: number;
  description?: string;
  state: BgpState;
  since: Date;
  info: string;
  /** The last error of this peer's sessions (NOTIFICATION sent or received, socket error); kept after recovery. */
  lastError: string;
  messagesIn: number;
  messagesOut: number;
  updatesIn: number;
  updatesOut: number;
  prefixesReceived: number;
  prefixesAccepted: number;
  /** UPDATEs whose announcements RFC 7606 made withdrawals (malformed attributes). */
  updatesTreatedAsWithdraw: number;
  /** Path attributes dropped under RFC 7606 "attribute discard". */
  attributesDiscarded: number;
  /** iBGP or eBGP, once the session knows. */
  type: 'internal' | 'external';
  /** Routes kept (stale) for a restarting peer (RFC 4724 helper) until its End-of-RIB or
   * `staleUntil`; 0 when none are held. */
  staleRoutes: number;
  staleUntil?: Date;
}

const NO_EXPORT = 0xffffff01;
const NO_ADVERTISE = 0xffffff02;
const DEFAULT_LOCAL_PREF = 100;
const DEFAULT_MAX_PREFIXES = 250_000;
const ROUTES_EVENT_MS = 100;
/** How often a refused unconfigured peer is logged again (with the count since), and how many are remembered. */
const REFUSED_LOG_MS = 5 * 60_000;
const REFUSED_REMEMBERED = 1024;
/** How often an UPDATE treated as withdraw is logged per peer and reason (the rest are counted and
 * the count said on the next line), and how many reasons per peer are remembered. */
const TREAT_AS_WITHDRAW_LOG_MS = 60_000;
/** At most one AS-loop rejection line per peer per this long. */
const AS_LOOP_LOG_MS = 60_000;
const TREAT_AS_WITHDRAW_REMEMBERED = 32;

/** One route in a peer's Adj-RIB-In. `attrs` is shared by all prefixes of one UPDATE. */
interface Path {
  readonly prefix: string;
  readonly afi: Afi;
  readonly peer: Peer;
  readonly attrs: PathAttrs;
  readonly nextHop: string;
  /** Import checks passed (no AS or cluster loop). */
  readonly loopFree: boolean;
  /** Used: loop free and the peer's import filters (BGPFilter) accept it (judged again when they change). */
  accepted: boolean;
}

interface Peer {
  config: BgpPeerConfig;
  session: PeerSession;
  ribIn: Map<string, Path>;
  /** What we last announced to the peer: prefix -> attribute signature. */
  ribOut: Map<string, string>;
  accepted: number;
  treatedAsWithdraw: number;
  /** Per reason: when an UPDATE treated as withdraw was last logged, and how many like it since. */
  treatAsWithdrawLog?: LogLimiter<string>;
  asLoopLog?: LogLimiter<string>;
  discarded: number;
  /** RFC 4724 helper: prefixes kept from a restarting peer until its End-of-RIB or the timer. */
  stale?: Set<string>;
  /** The peer said IPv4 End-of-RIB since its session was last Established (ipv4RibsComplete). */
  eor4?: boolean;
  /** The same for IPv6 (ribsComplete). */
  eor6?: boolean;
  staleTimer?: NodeJS.Timeout;
  /** When the restart time of a restarting peer runs out (its stale routes go then at the latest). */
  staleUntil?: Date;
  /** The subnet of our interface on this session, when the peer is on it (one hop away). */
  sharedSubnet?: Subnet;
  /** A session with this peer was Established since the speaker started (graceful restart flags). */
  upOnce?: boolean;
}

interface Subnet {
  net: Buffer;
  bits: number;
}

function inSubnet(addr: Buffer, s: Subnet): boolean {
  if (addr.length !== s.net.length) return false;
  const whole = s.bits >> 3;
  for (let i = 0; i < whole; i++) if (addr[i] !== s.net[i]) return false;
  const rest = s.bits & 7;
  if (!rest) return true;
  const mask = (0xff << (8 - rest)) & 0xff;
  return (addr[whole] & mask) === (s.net[whole] & mask);
}

/**
 * The subnet of our interface that holds both our session address `local` and `peer` (the most
 * specific one): then the peer is one hop away and shares that subnet with us (RFC 4271 5.1.3).
 * Read from the kernel's interface list.
 */
function sharedSubnetOf(local: string, peer: string): Subnet | undefined {
  let localOctets: Buffer;
  let peerOctets: Buffer;
  try {
    localOctets = addressOctets(local);
    peerOctets = addressOctets(peer);
  } catch {
    return undefined;
  }
  let best: Subnet | undefined;
  for (const addrs of Object.values(networkInterfaces())) {
    for (const a of addrs ?? []) {
      if (!a.cidr) continue;
      let net: Buffer;
      try {
        net = addressOctets(a.address.split('%')[0]);
      } catch {
        continue;
      }
      const subnet = { net, bits: Number(a.cidr.split('/')[1]) };
      // A /32 (or /128) host address shares no subnet with anyone.
      if (subnet.bits >= net.length * 8 || (best && best.bits >= subnet.bits)) continue;
      if (inSubnet(localOctets, subnet) && inSubnet(peerOctets, subnet)) best = subnet;
    }
  }
  return best;
}

export function communityText(c: number): string {
  return `${c >>> 16}:${c & 0xffff}`;
}

export function parseCommunity(text: string): number {
  const m = /^(\d{1,5}):(\d{1,5})$/.exec(text);
  if (!m || Number(m[1]) > 0xffff || Number(m[2]) > 0xffff) throw new Error(`invalid BGP community "${text}": expected "asn:value" with both parts 0..65535`);
  return (Number(m[1]) * 65536 + Number(m[2])) >>> 0;
}

function canonicalAddress(text: string): string {
  return addressText(addressOctets(text));
}

function flatAsPath(segs: AsPathSegment[] | undefined): number[] {
  return (segs ?? []).flatMap(s => s.asns);
}

/** How many times `asn` appears in the AS_PATH, in any segment (BIRD's as_path_contains). */
function countAs(segs: AsPathSegment[] | undefined, asn: number): number {
  let n = 0;
  for (const seg of segs ?? []) for (const a of seg.asns) if (a === asn) n++;
  return n;
}

function prepend(asn: number, segs: AsPathSegment[] | undefined): AsPathSegment[] {
  const path = segs ?? [];
  if (path.length && path[0].type === AsSegment.Sequence && path[0].asns.length < 255) {
    return [{ type: AsSegment.Sequence, asns: [asn, ...path[0].asns] }, ...path.slice(1)];
  }
  return [{ type: AsSegment.Sequence, asns: [asn] }, ...path];
}

/** The family of a canonical prefix text, without parsing it. */
function afiOf(prefix: string): Afi {
  return prefix.includes(':') ? Afi.Ipv6 : Afi.Ipv4;
}

/** A listening address and the sessions it serves ('::' serves both families). */
interface Listener { host: string; families: 'ipv4' | 'ipv6' | 'both' }

function listens(l: Listener, peer: string): boolean {
  return l.families === 'both' || (l.families === 'ipv6') === peer.includes(':');
}

function ipNumber(text: string): number {
  return text.split('.').reduce((n, o) => n * 256 + Number(o), 0);
}

export class BgpSpeaker extends EventEmitter {
  private readonly peers = new Map<string, Peer>();
  /** Unconfigured addresses that dialled us: logged the first time, then once per REFUSED_LOG_MS. */
  private readonly refusedLog = new LogLimiter<string>({ intervalMs: REFUSED_LOG_MS, maxKeys: REFUSED_REMEMBERED });
  /** Connections refused from unconfigured addresses, all told. */
  refusedTotal = 0;
  private exports = new Map<string, { exp: BgpExport; prefix: Prefix; communities: number[] }>();
  /** null: every learned route may be passed on (a plain BGP speaker; the Calico agent always sets one). */
  private learnedPolicy: { key: string; accept: Subnet[]; reject: Subnet[]; blocks: Subnet[] } | null = null;
  /** The learned-route policy's verdict per prefix of `best` (cleared with the policy). */
  private readonly passable = new Map<string, boolean>();
  /** Best accepted learned path per prefix (Loc-RIB without our own exports). */
  private readonly best = new Map<string, Path>();
  private readonly dirty = new Set<string>();
  private flushScheduled = false;
  private routesTimer?: NodeJS.Timeout;
  private lastRoutesEvent = 0;
  private servers: Server[] = [];
  /** Listeners (by address) that could not open yet: why, and their retry. */
  private readonly listenerDown = new Map<string, { message: string; backoff: Backoff; timer?: NodeJS.Timeout }>();
  private readonly listenRetry: { first: number; max: number };
  private started = false;
  /** The node's interfaces and their subnets, read at most once a second (interfaceToward). */
  private ifaces?: { at: number; list: { name: string; subnet: Subnet }[] };
  /** The listeners' packets go with TTL 255 (GTSM: their SYN-ACKs to a peer with ttlSecurity). */
  private listenersTtl255 = false;
  /** The last reading of the TCP-MD5 drop counters, shared by sessions for a second. */
  private md5Read?: { at: number; counters: TcpMd5Counters | null };
  private readonly host: SessionHost;
  private readonly log: (level: 'info' | 'warn', msg: string) => void;

  constructor(readonly opts: BgpSpeakerOptions) {
    super();
    if (!Number.isInteger(opts.localAs) || opts.localAs < 1 || opts.localAs > 0xffffffff) throw new Error(`BgpSpeaker: localAs ${opts.localAs} is not an AS number (1..4294967295)`);
    if (!/^\d+\.\d+\.\d+\.\d+$/.test(opts.routerId) || ipNumber(opts.routerId) === 0) throw new Error(`BgpSpeaker: routerId "${opts.routerId}" is not a non-zero dotted quad`);
    this.listenRetry = opts.listenRetryMs ?? { first: 1000, max: 30_000 };
    this.log = opts.log ?? ((level, msg) => { if (level === 'warn') process.stderr.write(`${msg}\n`); });
    const speaker = this;
    this.host = {
      localAs: opts.localAs,
      routerId: opts.routerId,
      gracefulRestartSeconds: opts.gracefulRestartSeconds ?? 120,
      connectRetryMs: (opts.connectRetrySeconds ?? 5) * 1000,
      established: s => speaker.onEstablished(speaker.peerOf(s)),
      update: (s, m) => speaker.onUpdate(speaker.peerOf(s), m),
      routeRefresh: (s, afi) => speaker.onRouteRefresh(speaker.peerOf(s), afi),
      down: (s, families, seconds) => speaker.onDown(speaker.peerOf(s), families, seconds),
      stateChanged: s => { const p = speaker.peerOf(s, true); if (p) speaker.emit('peer', speaker.statusOf(p)); },
      log: (level, msg) => speaker.log(level, msg),
      md5Counters: () => speaker.md5Counters(),
      gracefulRestartFlags: s => {
        const up = speaker.peerOf(s, true)?.upOnce === true;
        const restarted = opts.restarted === true;
        return { restarting: !up && restarted, forwarding: up || restarted };
      },
    };
  }

  /**
   * Opens the listeners and starts the sessions. Under bindMode NodeIP there are two listeners
   * (the node's IPv4 and IPv6 addresses), each on its own, as Calico's BIRD and BIRD6 are: one
   * that cannot open (an IPv6 address still in DAD after boot or a renumbering, or gone) is
   * warned, shown by listenerErrors() and tried again alone with backoff, and only the sessions of
   * its family wait for it; the other family's sessions run. Only when no listener opens at all
   * does start() fail (the caller, BgpAgent, retries the whole speaker).
   */
  async start(): Promise<void> {
    if (this.started) return;
    this.started = true;
    const port = this.opts.listenPort ?? 179;
    if (port !== 0) {
      const wanted: Listener[] = this.opts.listenAddress === undefined
        ? [{ host: '::', families: 'both' }]
        : [{ host: this.opts.listenAddress, families: this.opts.listenAddress.includes(':') ? 'ipv6' : 'ipv4' },
          ...(this.opts.listenAddress6 !== undefined ? [{ host: this.opts.listenAddress6, families: 'ipv6' as const }] : [])];
      const results = await Promise.all(wanted.map(l => this.openListener(l, port).then(() => null, (e: Error) => e)));
      if (results.every(e => e !== null)) {
        // Not started at all: no session opens while peers that dial us could not reach us (a
        // node half-peered); the caller may start again (BgpAgent retries).
        this.started = false;
        throw results[0]!;
      }
      if (!this.started) return; // stopped meanwhile (its listeners closed by stop() or openListener)
      wanted.forEach((l, i) => { if (results[i]) this.listenerFailed(l, port, results[i]!); });
    }
    for (const p of this.peers.values()) this.startSession(p);
  }

  /** Why a listener is not open (its sessions wait for it; it is tried again), one line each; [] when all are. */
  listenerErrors(): string[] {
    return [...this.listenerDown.values()].map(d => d.message);
  }

  private async openListener(l: Listener, port: number): Promise<void> {
    const server = createServer(socket => this.onIncoming(socket));
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen({ port, host: l.host }, () => {
        server.off('error', reject);
        resolve();
      });
    });
    if (!this.started) { server.close(); return; }
    server.on('error', e => this.log('warn', `bgp listener: ${e.message}`));
    this.servers.push(server);
    for (const p of this.peers.values()) {
      if (p.config.password && listens(l, p.config.address)) this.keyServer(server, p.config, p.config.password);
    }
    if (this.listenersTtl255) this.ttlServer(server);
  }

  /**
   * GTSM: once a peer has ttlSecurity, the listeners send with TTL 255 (as BIRD's listening socket
   * always does), so the SYN-ACK of a connection that peer opens passes its IP_MINTTL; the
   * accepted connection gets the peer's minimum (PeerSession.accept). Left on after (harmless).
   */
  private ttlListeners(): void {
    if (this.listenersTtl255 || ![...this.peers.values()].some(p => (p.config.ttlSecurity ?? 0) > 0)) return;
    this.listenersTtl255 = true;
    for (const server of this.servers) this.ttlServer(server);
  }

  private ttlServer(server: Server): void {
    try {
      setTtlSecurity(server, { ttl: 255, minTtl: 0 });
    } catch (e) {
      this.log('warn', `bgp: cannot set TTL 255 on the listener (GTSM for peers with ttlSecurity): ${(e as Error).message}`);
    }
  }

  /** A listener that could not open: warned (once per distinct error), its family's sessions held, tried again with backoff. */
  private listenerFailed(l: Listener, port: number, e: Error): void {
    const prev = this.listenerDown.get(l.host);
    const family = l.families === 'ipv6' ? 'IPv6' : l.families === 'ipv4' ? 'IPv4' : 'IPv4 and IPv6';
    const message = `the ${family} listener on ${l.host} port ${port} cannot open: ${e.message}; ${family} sessions wait for it (tried again every ${this.listenRetry.max / 1000} s at most)`;
    const backoff = prev?.backoff ?? new Backoff(this.listenRetry);
    if (prev?.message !== message) this.log('warn', `bgp: ${message}`);
    const down = { message, backoff, timer: undefined as NodeJS.Timeout | undefined };
    this.listenerDown.set(l.host, down);
    down.timer = setTimeout(() => {
      if (!this.started || this.listenerDown.get(l.host) !== down) return;
      this.openListener(l, port).then(() => {
        if (!this.started || this.listenerDown.get(l.host) !== down) return;
        this.listenerDown.delete(l.host);
        this.log('info', `bgp: the ${family} listener on ${l.host} port ${port} is open (after failing); its sessions start`);
        for (const p of this.peers.values()) this.startSession(p);
      }, (err: Error) => {
        if (this.started && this.listenerDown.get(l.host) === down) this.listenerFailed(l, port, err);
      });
    }, backoff.next());
    down.timer.unref?.();
  }

  /** Starts a peer's session unless the listener of its family has not opened yet. */
  private startSession(p: Peer): void {
    if (!this.started) return;
    const v6 = p.config.address.includes(':');
    for (const d of this.listenerDown.keys()) {
      if (this.opts.listenAddress === undefined || d.includes(':') === v6) return;
    }
    p.session.start();
  }

  /** Ends every session: with NOTIFICATION Cease, or (graceful) silently so peers keep our routes. */
  async stop(opts: { graceful?: boolean } = {}): Promise<void> {
    this.started = false;
    for (const d of this.listenerDown.values()) clearTimeout(d.timer);
    this.listenerDown.clear();
    for (const p of this.peers.values()) clearTimeout(p.staleTimer);
    clearTimeout(this.routesTimer);
    this.routesTimer = undefined;
    const servers = this.servers;
    this.servers = [];
    const closing = Promise.all(servers.map(server => new Promise<void>(resolve => server.close(() => resolve()))));
    await Promise.all([...this.peers.values()].map(p => p.session.stop({ graceful: opts.graceful })));
    await closing;
  }

  setPeers(peers: BgpPeerConfig[]): void {
    const wanted = new Map<string, BgpPeerConfig>();
    for (const cfg of peers) {
      const address = canonicalAddress(cfg.address);
      if (!Number.isInteger(cfg.asNumber) || cfg.asNumber < 1 || cfg.asNumber > 0xffffffff) throw new Error(`BGP peer ${cfg.address}: asNumber ${cfg.asNumber} is not an AS number`);
      wanted.set(address, { ...cfg, address });
    }
    let removed = false;
    const refiltered: Peer[] = [];
    for (const [address, peer] of this.peers) {
      const next = wanted.get(address);
      if (next && JSON.stringify(next) === JSON.stringify(peer.config)) continue;
      // Only its BGPFilters changed: the session stays, its routes are judged again (refilter).
      if (next && JSON.stringify({ ...next, filters: undefined }) === JSON.stringify({ ...peer.config, filters: undefined })) {
        peer.config = next;
        refiltered.push(peer);
        continue;
      }
      removed = true;
      this.peers.delete(address);
      if (peer.config.password) this.keyListener(peer.config, '');
      void peer.session.stop({ subcode: next ? CeaseSub.ConfigChange : CeaseSub.PeerDeconfigured });
      this.forgetRoutes(peer);
    }
    for (const [address, cfg] of wanted) {
      if (this.peers.has(address)) continue;
      const peer: Peer = {
        config: cfg,
        session: new PeerSession(this.host, cfg),
        ribIn: new Map(),
        ribOut: new Map(),
        accepted: 0,
        treatedAsWithdraw: 0,
        discarded: 0,
      };
      this.peers.set(address, peer);
      if (cfg.password) this.keyListener(cfg, cfg.password);
      this.startSession(peer);
    }
    this.ttlListeners();
    for (const p of refiltered) this.refilter(p);
    // A peer gone (one that never came up has no routes to withdraw) may be the last one that
    // kept ipv4RibsComplete() false: listeners are told as for a route change.
    if (removed) this.routesChanged();
  }

  setExports(routes: BgpExport[]): void {
    const next = new Map<string, { exp: BgpExport; prefix: Prefix; communities: number[] }>();
    for (const exp of routes) {
      const prefix = parsePrefix(exp.prefix);
      if (exp.nextHop !== undefined) canonicalAddress(exp.nextHop);
      next.set(prefix.text, { exp, prefix, communities: (exp.communities ?? []).map(parseCommunity) });
    }
    for (const [key, e] of next) {
      const old = this.exports.get(key);
      if (!old || JSON.stringify(old.exp) !== JSON.stringify(e.exp)) this.dirty.add(key);
    }
    for (const key of this.exports.keys()) if (!next.has(key)) this.dirty.add(key);
    this.exports = next;
    this.scheduleFlush();
  }

  /**
   * Sets which learned routes may be passed on (null: all, subject to the BGP rules). A change is
   * announced or withdrawn at once on every session.
   */
  setLearnedExportPolicy(policy: BgpLearnedExportPolicy | null): void {
    const key = JSON.stringify(policy);
    if (key === (this.learnedPolicy?.key ?? 'null')) return;
    const subnet = (text: string): Subnet => {
      const p = parsePrefix(text);
      return { net: p.octets, bits: p.len };
    };
    this.learnedPolicy = policy === null ? null : {
      key,
      accept: policy.pools.filter(p => p.exported).map(p => subnet(p.cidr)),
      reject: policy.pools.filter(p => !p.exported).map(p => subnet(p.cidr)),
      blocks: policy.blocks.map(subnet),
    };
    this.passable.clear();
    for (const prefix of this.best.keys()) this.dirty.add(prefix);
    this.scheduleFlush();
  }

  /**
   * Whether every configured peer's IPv4 routes are all here: its session Established and, when
   * IPv4 was negotiated, its End-of-RIB received (RFC 4724: the initial update is over). A peer
   * that never says End-of-RIB (no graceful restart support) keeps this false. A change emits
   * 'routes' like a route change.
   */
  ipv4RibsComplete(): boolean {
    for (const p of this.peers.values()) {
      if (!offeredFamilies(p.config).includes(Afi.Ipv4)) continue; // an IPv6 session never carries them
      const conn = p.session.established;
      if (!conn || (conn.families.has(Afi.Ipv4) && !p.eor4)) return false;
    }
    return true;
  }

  /**
   * Every configured peer's session is Established and has said End-of-RIB for each family it
   * carries (IPv4 and IPv6): the learned routes of both families are every peer's whole tables.
   */
  ribsComplete(): boolean {
    for (const p of this.peers.values()) {
      const conn = p.session.established;
      if (!conn || (conn.families.has(Afi.Ipv4) && !p.eor4) || (conn.families.has(Afi.Ipv6) && !p.eor6)) return false;
    }
    return true;
  }

  /**
   * Whether the peer at `address` has sent its whole table since its session was last Established
   * (End-of-RIB for each family the session carries); null when no such peer is configured.
   */
  peerRibsComplete(address: string): boolean | null {
    let key: string;
    try {
      key = canonicalAddress(address);
    } catch {
      return null;
    }
    const p = this.peers.get(key);
    if (!p) return null;
    const conn = p.session.established;
    if (!conn) return false;
    return (!conn.families.has(Afi.Ipv4) || p.eor4 === true) && (!conn.families.has(Afi.Ipv6) || p.eor6 === true);
  }

  learned(): BgpRoute[] {
    return [...this.best.values()].map(p => ({
      prefix: p.prefix,
      nextHop: p.nextHop,
      peer: p.peer.config.address,
      asPath: flatAsPath(p.attrs.asPath),
      localPref: p.attrs.localPref,
      med: p.attrs.med,
      communities: (p.attrs.communities ?? []).map(communityText),
      originatorId: p.attrs.originatorId,
      clusterList: p.attrs.clusterList,
    }));
  }

  status(): BgpPeerStatus[] {
    return [...this.peers.values()].map(p => this.statusOf(p));
  }

  /** Asks every established peer to send its routes again (ROUTE-REFRESH, RFC 2918). */
  refresh(): void {
    for (const p of this.peers.values()) {
      const conn = p.session.established;
      if (!conn || !conn.remote?.caps.routeRefresh) continue;
      for (const afi of conn.families) {
        conn.send(encodeRouteRefresh(afi, SAFI_UNICAST));
      }
    }
  }

  // -------------------------------------------------------------------------------------------

  /** The namespace's TCP-MD5 drop counters, read at most once a second for all sessions. */
  private md5Counters(): TcpMd5Counters | null {
    const now = Date.now();
    if (!this.md5Read || now - this.md5Read.at >= 1000) this.md5Read = { at: now, counters: readTcpMd5Counters() };
    return this.md5Read.counters;
  }

  private statusOf(p: Peer): BgpPeerStatus {
    const s = p.session;
    return {
      address: p.config.address,
      asNumber: p.config.asNumber,
      description: p.config.description,
      state: s.state,
      since: s.since,
      info: s.info,
      lastError: s.lastError,
      ...s.counters,
      prefixesReceived: p.ribIn.size,
      prefixesAccepted: p.accepted,
      updatesTreatedAsWithdraw: p.treatedAsWithdraw,
      attributesDiscarded: p.discarded,
      type: p.config.asNumber === this.localAsOf(p) ? 'internal' : 'external',
      staleRoutes: p.stale?.size ?? 0,
      ...(p.stale?.size && p.staleUntil ? { staleUntil: p.staleUntil } : {}),
    };
  }

  private peerOf(s: PeerSession): Peer;
  private peerOf(s: PeerSession, maybe: true): Peer | undefined;
  private peerOf(s: PeerSession, maybe?: true): Peer | undefined {
    const p = this.peers.get(s.config.address);
    if (p && p.session === s) return p;
    if (maybe) return undefined;
    // A session we already replaced: give it a throwaway record so its last events go nowhere.
    return { config: s.config as BgpPeerConfig, session: s, ribIn: new Map(), ribOut: new Map(), accepted: 0, treatedAsWithdraw: 0, discarded: 0 };
  }

  private onIncoming(socket: Socket): void {
    socket.on('error', () => undefined);
    const remote = stripMapped(socket.remoteAddress);
    let peer: Peer | undefined;
    try {
      peer = this.peers.get(canonicalAddress(remote));
    } catch {
      peer = undefined;
    }
    if (!peer) {
      // Not a configured peer: RFC 4271 lets us refuse without a word. A deleted node's BIRD keeps
      // dialling every few seconds: logged the first time, then once per REFUSED_LOG_MS with a count.
      const since = this.refusedLog.admit(remote);
      if (since >= 0) this.log('info', `bgp: refused connection from unconfigured ${remote}${since > 0 ? ` (${since} more since the last line)` : ''}`);
      this.refusedTotal++;
      socket.destroy();
      return;
    }
    peer.session.accept(socket);
  }

  /** Sets (or with '' removes) the peer's TCP-MD5 key on our listeners of its family. */
  private keyListener(cfg: BgpPeerConfig, key: string): void {
    if (!key && !cfg.password) return;
    // A listener bound to one address takes keys of its own family only; '::' takes both.
    const v6 = cfg.address.includes(':');
    for (const server of this.servers) {
      const bound = (server.address() as { address?: string } | null)?.address ?? '::';
      if (bound === '::' || bound.includes(':') === v6) this.keyServer(server, cfg, key);
    }
  }

  private keyServer(server: Server, cfg: BgpPeerConfig, key: string): void {
    try {
      setListenerKey(server, cfg.address, key);
    } catch (e) {
      this.log('warn', `bgp ${cfg.address}: cannot set the TCP-MD5 key on the listener: ${(e as Error).message}`);
    }
  }

  private isEbgp(p: Peer): boolean {
    return p.config.asNumber !== this.localAsOf(p);
  }

  /** The AS a session speaks as: its localAs (BGPPeer localASNumber), else the speaker's. */
  private localAsOf(p: Peer): number {
    return p.config.localAs ?? this.opts.localAs;
  }

  /** Whether `p`'s import filters (BGPFilter) take a learned path: no rule matched (BIRD's
   * `accept` after the filter functions) or an Accept; a Reject, or BIRD's runtime error, not. */
  private imports(p: Peer, path: Path): boolean {
    if (!p.config.filters?.length) return true;
    const v = filterVerdict(p.config.filters, 'import', this.filterRoute(p, path.prefix, path));
    return v === null || v === 'accept';
  }

  /** What a filter rule sees of a route: a learned path's, or (path undefined) our own export's. */
  private filterRoute(p: Peer, prefix: string, path: Path | undefined, own?: { exp: BgpExport; prefix: Prefix; communities: number[] }): FilterRoute {
    return {
      prefix: own?.prefix ?? parsePrefix(prefix),
      fromBgp: path !== undefined,
      ebgp: this.isEbgp(p),
      // Our own exports have none: a block is a blackhole (BIRD's static route), and podway's
      // workloads have no per-pod kernel interface to name (calico-node's cali*).
      iface: () => (path ? this.interfaceToward(path.nextHop) : undefined),
      asPath: path ? flatAsPath(path.attrs.asPath) : [],
      communities: path ? path.attrs.communities ?? [] : own?.communities ?? [],
    };
  }

  /** The node's interface on the subnet that holds `nextHop` (the most specific), as BIRD's
   * `ifname` of a route through it; the interface list is read at most once a second. */
  private interfaceToward(nextHop: string): string | undefined {
    let octets: Buffer;
    try {
      octets = addressOctets(nextHop);
    } catch {
      return undefined;
    }
    const now = Date.now();
    if (!this.ifaces || now - this.ifaces.at > 1000) {
      const list: { name: string; subnet: Subnet }[] = [];
      for (const [name, addrs] of Object.entries(networkInterfaces())) {
        for (const a of addrs ?? []) {
          if (!a.cidr) continue;
          try {
            list.push({ name, subnet: { net: addressOctets(a.address.split('%')[0]!), bits: Number(a.cidr.split('/')[1]) } });
          } catch { /* not an address */ }
        }
      }
      this.ifaces = { at: now, list };
    }
    let best: { name: string; subnet: Subnet } | undefined;
    for (const i of this.ifaces.list) if (inSubnet(octets, i.subnet) && (!best || i.subnet.bits > best.subnet.bits)) best = i;
    return best?.name;
  }

  /**
   * `p`'s filters changed (nothing else): every path it sent is judged again (what is now refused
   * leaves the best paths, what is now taken joins them), and every route is offered to it again
   * (advertise sends only what differs from what it has: withdrawals of what is now rejected,
   * announcements of what is now accepted).
   */
  private refilter(p: Peer): void {
    for (const path of p.ribIn.values()) {
      const accepted = path.loopFree && this.imports(p, path);
      if (accepted === path.accepted) continue;
      path.accepted = accepted;
      p.accepted += accepted ? 1 : -1;
      this.dirty.add(path.prefix);
    }
    this.advertise(p, new Set<string>([...this.exports.keys(), ...this.best.keys(), ...p.ribOut.keys()]));
    this.scheduleFlush();
  }

  /** RFC 4271 9.1.2 / RFC 4456 8: would we use this path at all (loops)? Our AS in the AS_PATH
   * rejects the route on every session, iBGP included, as BIRD's bgp_as_path_loopy does: more
   * than the peer's allowLocalAs occurrences (counted in every segment, sets too). */
  private importable(p: Peer, attrs: PathAttrs): boolean {
    const ours = countAs(attrs.asPath, this.localAsOf(p));
    if (ours > (p.config.allowLocalAs ?? 0)) {
      this.logAsLoop(p, ours);
      return false;
    }
    if (this.isEbgp(p)) return true;
    if (attrs.originatorId === this.opts.routerId) return false;
    const cluster = this.opts.clusterId ?? this.opts.routerId;
    return !(attrs.clusterList ?? []).includes(cluster);
  }

  private onUpdate(p: Peer, m: UpdateMessage): void {
    if (m.discarded.length) p.discarded += m.discarded.length;
    const eor = endOfRibFamily(m);
    if (eor !== null) {
      this.dropStale(p, eor);
      if (eor === Afi.Ipv4 && !p.eor4) {
        p.eor4 = true;
        this.routesChanged();
      } else if (eor === Afi.Ipv6 && !p.eor6) {
        p.eor6 = true;
        this.routesChanged();
      }
      return;
    }
    // Routes of a family the session did not negotiate are ignored (RFC 4760 section 6).
    const families = p.session.established?.families;
    const carried = (afi: number) => families?.has(afi as Afi) ?? false;
    const unreach = m.attrs.mpUnreach;
    const gone = [...(carried(Afi.Ipv4) ? m.withdrawn : []), ...(unreach && unreach.safi === SAFI_UNICAST && carried(unreach.afi) ? unreach.withdrawn : [])];
    const announced: { prefix: string; afi: Afi; nextHop: string }[] = [];
    if (carried(Afi.Ipv4)) for (const prefix of m.nlri) announced.push({ prefix, afi: Afi.Ipv4, nextHop: m.attrs.nextHop ?? '' });
    const mp = m.attrs.mpReach;
    if (mp && mp.safi === SAFI_UNICAST && carried(mp.afi)) {
      for (const prefix of mp.nlri) announced.push({ prefix, afi: mp.afi, nextHop: mp.nextHop });
    }
    if (m.treatAsWithdraw) {
      p.treatedAsWithdraw++;
      this.logTreatAsWithdraw(p, m.treatAsWithdraw);
      for (const a of announced) gone.push(a.prefix);
      announced.length = 0;
    }
    for (const prefix of gone) {
      p.stale?.delete(prefix);
      this.removePath(p, prefix);
    }
    if (announced.length) {
      const { mpReach: _r, mpUnreach: _u, ...attrs } = m.attrs;
      const loopFree = this.importable(p, attrs);
      for (const a of announced) {
        p.stale?.delete(a.prefix);
        this.removePath(p, a.prefix);
        const path: Path = { prefix: a.prefix, afi: a.afi, peer: p, attrs, nextHop: a.nextHop, loopFree, accepted: false };
        path.accepted = loopFree && this.imports(p, path);
        p.ribIn.set(a.prefix, path);
        if (path.accepted) p.accepted++;
        this.dirty.add(a.prefix);
      }
      const max = p.config.maxPrefixes ?? DEFAULT_MAX_PREFIXES;
      if (p.ribIn.size > max) {
        this.log('warn', `bgp ${p.config.address}: ${p.ribIn.size} prefixes exceed the limit of ${max}; closing the session (Cease: maximum number of prefixes reached)`);
        // RFC 4486: the data names the family whose prefixes went over (the one of this UPDATE).
        const data = Buffer.alloc(7);
        data.writeUInt16BE(announced[0]!.afi, 0);
        data[2] = SAFI_UNICAST;
        data.writeUInt32BE(max, 3);
        p.session.established?.fail(new BgpError(ErrCode.Cease, CeaseSub.MaxPrefixes, data));
      }
    }
    this.scheduleFlush();
  }

  /** Routes rejected as AS loops are kept out of the RIB silently by BIRD; here they stay visible
   * as the difference between the peer's prefixesReceived and prefixesAccepted (`podway status`,
   * the metrics), and one line per peer per AS_LOOP_LOG_MS says why. */
  private logAsLoop(p: Peer, ours: number): void {
    const limit = (p.asLoopLog ??= new LogLimiter<string>({ intervalMs: AS_LOOP_LOG_MS, maxKeys: 1 }));
    const since = limit.admit('loop');
    if (since < 0) return;
    const more = since > 0 ? ` (${since} more such UPDATEs not logged since the last line)` : '';
    const allowed = p.config.allowLocalAs ?? 0;
    this.log('info', `bgp ${p.config.address}: UPDATE's routes rejected as a loop: the AS_PATH holds our AS ${this.localAsOf(p)} ${ours} time${ours === 1 ? '' : 's'}` +
      ` (allowed: ${allowed}, BGPPeer numAllowedLocalASNumbers)${more}; logged at most once per ${AS_LOOP_LOG_MS / 1000} s per peer`);
  }

  /** A peer sending malformed UPDATEs by the thousand must not flood the log: one line per reason
   * per TREAT_AS_WITHDRAW_LOG_MS, the next one saying how many were not logged (the counter,
   * updatesTreatedAsWithdraw, counts every one). */
  private logTreatAsWithdraw(p: Peer, reason: string): void {
    const limit = (p.treatAsWithdrawLog ??= new LogLimiter<string>({ intervalMs: TREAT_AS_WITHDRAW_LOG_MS, maxKeys: TREAT_AS_WITHDRAW_REMEMBERED }));
    const since = limit.admit(reason);
    if (since < 0) return;
    const more = since > 0 ? ` (${since} more for this reason not logged since the last line)` : '';
    this.log('warn', `bgp ${p.config.address}: UPDATE treated as withdraw (RFC 7606): ${reason}${more}; logged at most once per ${TREAT_AS_WITHDRAW_LOG_MS / 1000} s per reason`);
  }

  private removePath(p: Peer, prefix: string): void {
    const old = p.ribIn.get(prefix);
    if (!old) return;
    p.ribIn.delete(prefix);
    if (old.accepted) p.accepted--;
    this.dirty.add(prefix);
  }

  private forgetRoutes(p: Peer): void {
    clearTimeout(p.staleTimer);
    p.stale = undefined;
    for (const prefix of p.ribIn.keys()) this.dirty.add(prefix);
    p.ribIn.clear();
    p.ribOut.clear();
    p.accepted = 0;
    this.scheduleFlush();
  }

  private onDown(p: Peer, restartFamilies: Afi[], restartSeconds: number): void {
    p.ribOut.clear();
    p.eor4 = false;
    p.eor6 = false;
    this.dropStale(p);
    if (!restartFamilies.length) {
      this.forgetRoutes(p);
      return;
    }
    // Graceful restart helper (RFC 4724 section 4.2): keep forwarding on the peer's routes of the
    // families it named, marked stale, until it is back and says End-of-RIB, or until its restart
    // time runs out. Routes of other families go now.
    p.stale = new Set();
    for (const prefix of [...p.ribIn.keys()]) {
      if (restartFamilies.includes(afiOf(prefix))) p.stale.add(prefix);
      else this.removePath(p, prefix);
    }
    this.log('info', p.stale.size
      ? `bgp ${p.config.address}: peer restarting; keeping ${p.stale.size} routes for up to ${restartSeconds} s`
      : `bgp ${p.config.address}: peer restarting (graceful restart, up to ${restartSeconds} s); it had no routes of those families, none kept`);
    p.staleUntil = new Date(Date.now() + restartSeconds * 1000);
    p.staleTimer = setTimeout(() => {
      this.log('info', `bgp ${p.config.address}: restart time over; dropping its stale routes`);
      this.dropStale(p);
    }, restartSeconds * 1000);
  }

  /** Withdraws the peer's routes still stale (of `afi`, or all). */
  private dropStale(p: Peer, afi?: Afi): void {
    const stale = p.stale;
    if (!stale) return;
    for (const prefix of [...stale]) {
      if (afi !== undefined && afiOf(prefix) !== afi) continue;
      stale.delete(prefix);
      this.removePath(p, prefix);
    }
    if (afi === undefined || !stale.size) {
      clearTimeout(p.staleTimer);
      p.stale = undefined;
      p.staleUntil = undefined;
    }
    this.scheduleFlush();
  }

  private onEstablished(p: Peer): void {
    p.ribOut.clear();
    p.eor4 = false;
    p.eor6 = false;
    p.upOnce = true;
    const conn = p.session.established!;
    p.sharedSubnet = this.isEbgp(p) ? sharedSubnetOf(conn.localAddress, p.config.address) : undefined;
    // A restarted peer that no longer preserves forwarding for a family: its stale routes go now.
    if (p.stale) {
      const gr = conn.remote?.caps.gracefulRestart;
      for (const afi of [Afi.Ipv4, Afi.Ipv6]) {
        if (!gr?.families.some(f => f.afi === afi && f.safi === SAFI_UNICAST && f.forwarding)) this.dropStale(p, afi);
      }
    }
    const all = new Set<string>([...this.exports.keys(), ...this.best.keys()]);
    this.advertise(p, all);
    for (const afi of conn.families) this.sendTo(p, [encodeEndOfRib(afi)]);
    this.log('info', `bgp ${p.config.address}: Established`);
  }

  private onRouteRefresh(p: Peer, afi: Afi): void {
    const all = new Set<string>();
    for (const key of [...this.exports.keys(), ...this.best.keys()]) {
      if (afiOf(key) !== afi) continue;
      p.ribOut.delete(key);
      all.add(key);
    }
    this.advertise(p, all);
    this.sendTo(p, [encodeEndOfRib(afi)]);
  }

  private scheduleFlush(): void {
    if (this.flushScheduled) return;
    this.flushScheduled = true;
    setImmediate(() => this.flush());
  }

  /** Re-selects best paths for changed prefixes, tells every established peer, emits 'routes'. */
  private flush(): void {
    this.flushScheduled = false;
    if (!this.dirty.size) return;
    const changed = new Set(this.dirty);
    this.dirty.clear();
    let learnedChanged = false;
    for (const prefix of changed) {
      const next = this.select(prefix);
      const prev = this.best.get(prefix);
      if (next === prev) continue;
      learnedChanged = true;
      if (next) this.best.set(prefix, next);
      else {
        this.best.delete(prefix);
        this.passable.delete(prefix);
      }
    }
    for (const p of this.peers.values()) if (p.session.established) this.advertise(p, changed);
    if (learnedChanged) this.routesChanged();
  }

  /**
   * Emits 'routes' (no payload: listeners call learned()) at most every ROUTES_EVENT_MS while
   * routes keep changing, and always once after the last change, so a full table arriving in
   * thousands of UPDATEs does not make listeners rebuild it thousands of times.
   */
  private routesChanged(): void {
    if (this.routesTimer) return;
    const wait = this.lastRoutesEvent + ROUTES_EVENT_MS - Date.now();
    if (wait <= 0) {
      this.lastRoutesEvent = Date.now();
      this.emit('routes');
      return;
    }
    this.routesTimer = setTimeout(() => {
      this.routesTimer = undefined;
      this.lastRoutesEvent = Date.now();
      this.emit('routes');
    }, wait);
  }

  private select(prefix: string): Path | undefined {
    let best: Path | undefined;
    for (const p of this.peers.values()) {
      const path = p.ribIn.get(prefix);
      if (path?.accepted && (!best || this.better(path, best))) best = path;
    }
    return best;
  }

  /** RFC 4271 9.1.2.2 decision process (MED compared across neighbour ASes, as "always-compare"). */
  private better(a: Path, b: Path): boolean {
    const lp = (x: Path) => x.attrs.localPref ?? DEFAULT_LOCAL_PREF;
    if (lp(a) !== lp(b)) return lp(a) > lp(b);
    const al = asPathLength(a.attrs.asPath ?? []);
    const bl = asPathLength(b.attrs.asPath ?? []);
    if (al !== bl) return al < bl;
    if ((a.attrs.origin ?? 2) !== (b.attrs.origin ?? 2)) return (a.attrs.origin ?? 2) < (b.attrs.origin ?? 2);
    if ((a.attrs.med ?? 0) !== (b.attrs.med ?? 0)) return (a.attrs.med ?? 0) < (b.attrs.med ?? 0);
    const ae = this.isEbgp(a.peer);
    if (ae !== this.isEbgp(b.peer)) return ae;
    const cl = (x: Path) => x.attrs.clusterList?.length ?? 0;
    if (cl(a) !== cl(b)) return cl(a) < cl(b);
    const id = (x: Path) => ipNumber(x.attrs.originatorId ?? x.peer.session.established?.remote?.routerId ?? '255.255.255.255');
    if (id(a) !== id(b)) return id(a) < id(b);
    return a.peer.config.address < b.peer.config.address;
  }

  /** Our next hop on this session for a family (IPv4-mapped when an IPv6 route rides IPv4). */
  private selfNextHop(p: Peer, afi: Afi): string {
    const local = p.session.established!.localAddress;
    const v6 = local.includes(':');
    if (afi === Afi.Ipv4) return v6 ? '0.0.0.0' : local;
    return v6 ? local : `::ffff:${local}`;
  }

  /**
   * RFC 4271 5.1.3 (BIRD's default toward eBGP peers): a learned route's next hop on the subnet we
   * share with the one-hop peer `p` is passed on as it is, so `p` sends straight to it rather than
   * through us. Never the peer's own address (that would point it at itself).
   */
  private thirdPartyNextHop(p: Peer, nextHop: string): boolean {
    const subnet = p.sharedSubnet;
    if (!subnet || !nextHop || nextHop === p.config.address) return false;
    try {
      return inSubnet(addressOctets(nextHop), subnet);
    } catch {
      return false;
    }
  }

  /** The attributes to announce our own export with to `p`. */
  private outboundOwn(p: Peer, own: { exp: BgpExport; communities: number[] }, afi: Afi): PathAttrs {
    const toEbgp = this.isEbgp(p);
    return {
      origin: 0,
      asPath: toEbgp ? [{ type: AsSegment.Sequence, asns: [this.localAsOf(p)] }] : [],
      nextHop: own.exp.nextHop !== undefined ? canonicalAddress(own.exp.nextHop) : this.selfNextHop(p, afi),
      localPref: toEbgp ? undefined : DEFAULT_LOCAL_PREF,
      communities: own.communities.length ? own.communities : undefined,
    };
  }

  /** Whether the learned-route policy lets a learned `prefix` be passed on to any peer. */
  private passOn(prefix: string): boolean {
    const policy = this.learnedPolicy;
    if (!policy) return true;
    let verdict = this.passable.get(prefix);
    if (verdict === undefined) {
      const p = parsePrefix(prefix);
      const inside = (s: Subnet) => p.len >= s.bits && inSubnet(p.octets, s);
      verdict = !policy.reject.some(inside)
        && !policy.blocks.some(s => p.len > s.bits && inSubnet(p.octets, s))
        && policy.accept.some(inside);
      this.passable.set(prefix, verdict);
    }
    return verdict;
  }

  /** The attributes to pass the learned `best` on to `p` with, or null when `p` should not have it. */
  private outboundLearned(p: Peer, best: Path, afi: Afi): PathAttrs | null {
    if (best.peer === p) return null;
    const toEbgp = this.isEbgp(p);
    const a = best.attrs;
    const communities = a.communities ?? [];
    if (communities.includes(NO_ADVERTISE) || (toEbgp && communities.includes(NO_EXPORT))) return null;
    const fromEbgp = this.isEbgp(best.peer);
    const self = p.config.nextHopSelf === true;
    if (toEbgp) {
      return {
        origin: a.origin,
        asPath: prepend(this.localAsOf(p), a.asPath),
        nextHop: !self && (p.config.keepOriginalNextHop || this.thirdPartyNextHop(p, best.nextHop)) ? best.nextHop : this.selfNextHop(p, afi),
        communities: a.communities,
        atomicAggregate: a.atomicAggregate,
        aggregator: a.aggregator,
        unknown: a.unknown,
      };
    }
    if (fromEbgp) return { ...a, nextHop: self ? this.selfNextHop(p, afi) : best.nextHop, localPref: a.localPref ?? DEFAULT_LOCAL_PREF };
    // iBGP to iBGP: only a route reflector passes routes on (RFC 4456 section 6).
    if (this.opts.clusterId === undefined) return null;
    if (!best.peer.config.routeReflectorClient && !p.config.routeReflectorClient) return null;
    const originatorId = a.originatorId ?? best.peer.session.established?.remote?.routerId ?? best.peer.config.address;
    if (p.session.established?.remote?.routerId === originatorId) return null;
    return {
      ...a,
      nextHop: self ? this.selfNextHop(p, afi) : best.nextHop,
      localPref: a.localPref ?? DEFAULT_LOCAL_PREF,
      originatorId,
      clusterList: [this.opts.clusterId, ...(a.clusterList ?? [])],
    };
  }

  /** Brings `p`'s Adj-RIB-Out for `prefixes` up to date: withdrawals, then grouped announcements. */
  private advertise(p: Peer, prefixes: Iterable<string>): void {
    const conn = p.session.established;
    if (!conn) return;
    const groups = new Map<string, { attrs: PathAttrs; prefixes: Prefix[] }>();
    const withdraw: Record<number, Prefix[]> = { [Afi.Ipv4]: [], [Afi.Ipv6]: [] };
    // Prefixes of one UPDATE share one attrs object: work out what to send for it once.
    const memo = new Map<PathAttrs, Map<string, { attrs: PathAttrs; sig: string } | null>>();
    const learnedOut = (best: Path, afi: Afi) => {
      let byHop = memo.get(best.attrs);
      if (!byHop) memo.set(best.attrs, (byHop = new Map()));
      const k = `${afi}|${best.nextHop}|${best.peer.config.address}`;
      let out = byHop.get(k);
      if (out === undefined) {
        const attrs = this.outboundLearned(p, best, afi);
        out = attrs ? { attrs, sig: `${afi}|${JSON.stringify(attrs)}` } : null;
        byHop.set(k, out);
      }
      return out;
    };
    for (const key of prefixes) {
      const afi = afiOf(key);
      if (!conn.families.has(afi)) continue;
      const own = this.exports.get(key);
      const best = own ? undefined : this.best.get(key);
      let out: { attrs: PathAttrs; sig: string } | null = null;
      // The peer's export filters (BGPFilter) first, as confd's export filter calls them before
      // calico_export_to_bgp_peers: an Accept sends a learned route the policy would not pass on,
      // a Reject (or BIRD's runtime error) withholds even our own block; no match: as without.
      const verdict = p.config.filters?.length ? filterVerdict(p.config.filters, 'export', this.filterRoute(p, key, own ? undefined : best, own)) : null;
      if (verdict === 'reject' || verdict === 'error') {
        out = null;
      } else if (own) {
        const attrs = this.outboundOwn(p, own, afi);
        out = { attrs, sig: `${afi}|${JSON.stringify(attrs)}` };
      } else if (best && (verdict === 'accept' || this.passOn(key))) {
        out = learnedOut(best, afi);
      }
      const prev = p.ribOut.get(key);
      if (out?.sig === prev) continue;
      if (out) {
        p.ribOut.set(key, out.sig);
        const g = groups.get(out.sig) ?? { attrs: out.attrs, prefixes: [] };
        g.prefixes.push(own ? own.prefix : parsePrefix(key));
        groups.set(out.sig, g);
      } else {
        p.ribOut.delete(key);
        withdraw[afi].push(parsePrefix(key));
      }
    }
    const out: Buffer[] = [...encodeWithdraw(withdraw[Afi.Ipv4]), ...encodeWithdraw(withdraw[Afi.Ipv6])];
    for (const g of groups.values()) out.push(...encodeAnnounce(g.prefixes, g.attrs, conn.ctx));
    this.sendTo(p, out);
  }

  private sendTo(p: Peer, msgs: Buffer[]): void {
    const conn = p.session.established;
    if (!conn) return;
    for (const m of msgs) {
      conn.send(m);
      p.session.counters.updatesOut++;
    }
  }
}
