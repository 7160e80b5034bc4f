// One BGP peer: the RFC 4271 finite state machine with its connect-retry, hold and keepalive
// timers, over at most two TCP connections at a time (ours and the peer's) until collision
// detection (section 6.8) keeps one. Route handling lives in the speaker; this file only moves
// messages and reports what happened.
import { Socket, connect as tcpConnect } from 'node:net';
import {
  Afi, BgpError, CeaseSub, describeError, decodeMessage, encodeNotification, encodeOpen, ErrCode, Framer,
  KEEPALIVE, MsgType, OpenMessage, openAs, OpenSub, SAFI_UNICAST, UpdateContext, UpdateMessage,
} from './wire';
import { connectWithKey, md5MismatchHint, setTtlSecurity, TcpMd5Counters, ttlSecurityOf } from './md5';

export type BgpState = 'Idle' | 'Connect' | 'Active' | 'OpenSent' | 'OpenConfirm' | 'Established';

export interface PeerSettings {
  address: string;
  asNumber: number;
  passive?: boolean;
  port?: number;
  holdTimeSeconds?: number;
  /** Seconds between our KEEPALIVEs (BIRD's `keepalive time`); default, and at most, a third of
   * the negotiated hold time. 0 or unset: the default. */
  keepaliveSeconds?: number;
  /** The restart time announced to this peer in the graceful restart capability (BIRD's `graceful
   * restart time`), instead of the speaker's; the capability itself is the speaker's choice. */
  gracefulRestartSeconds?: number;
  localAddress?: string;
  /** TCP-MD5 key (RFC 2385). */
  password?: string;
  /** GTSM (RFC 5082; BIRD's `ttl security on; multihop N`): the peer is this many hops away; our
   * packets go with TTL 255 and the peer's must arrive with at least 256 - N. Unset or 0: off. */
  ttlSecurity?: number;
  /** This session's own AS (BIRD's `local as`), instead of the speaker's: in OPEN, and for whether
   * the session is iBGP or eBGP. */
  localAs?: number;
  /** Address families offered in OPEN (default both IPv4 and IPv6 unicast). Calico's BIRD carries
   * IPv4 on sessions between IPv4 addresses and IPv6 on sessions between IPv6 ones. */
  families?: readonly ('ipv4' | 'ipv6')[];
}

/** The families a peer's sessions offer (PeerSettings.families; both when unset). */
export function offeredFamilies(cfg: PeerSettings): Afi[] {
  const f = cfg.families ?? ['ipv4', 'ipv6'];
  const out: Afi[] = [];
  if (f.includes('ipv4')) out.push(Afi.Ipv4);
  if (f.includes('ipv6')) out.push(Afi.Ipv6);
  return out;
}

/** What a session needs from the speaker that owns it. */
export interface SessionHost {
  readonly localAs: number;
  readonly routerId: string;
  readonly gracefulRestartSeconds: number;
  readonly connectRetryMs: number;
  established(peer: PeerSession): void;
  update(peer: PeerSession, msg: UpdateMessage): void;
  routeRefresh(peer: PeerSession, afi: Afi): void;
  /**
   * The established session ended. `restartFamilies`: it ended without a NOTIFICATION from a peer
   * that announced graceful restart for these families, so (RFC 4724) the peer may be restarting
   * and its routes of those families are kept, stale, for `restartSeconds`.
   */
  down(peer: PeerSession, restartFamilies: Afi[], restartSeconds: number): void;
  stateChanged(peer: PeerSession): void;
  log(level: 'info' | 'warn', msg: string): void;
  /** The namespace's TCP-MD5 drop counters (null: unreadable), for sessions that do not come up. */
  md5Counters?(): TcpMd5Counters | null;
  /** Graceful restart's R and F bits for the next OPEN to this peer (RFC 4724 section 3; see
   * BgpSpeakerOptions.restarted); default: R clear, F set. */
  gracefulRestartFlags?(peer: PeerSession): { restarting: boolean; forwarding: boolean };
}

type ConnState = 'Connect' | 'OpenSent' | 'OpenConfirm' | 'Established';

const CONNECT_TIMEOUT_MS = 30_000;
const OPEN_HOLD_MS = 240_000; // RFC 4271 section 8: "large" hold time until the OPEN arrives
const DEFAULT_HOLD = 90;
const ORDER: Record<BgpState, number> = { Idle: 0, Connect: 1, Active: 1, OpenSent: 2, OpenConfirm: 3, Established: 4 };

/** "connection refused" from ECONNREFUSED and friends, for status lines. */
function socketErrorText(e: NodeJS.ErrnoException): string {
  const known: Record<string, string> = {
    ECONNREFUSED: 'connection refused',
    ECONNRESET: 'connection reset',
    ETIMEDOUT: 'connection timed out',
    EHOSTUNREACH: 'host unreachable',
    ENETUNREACH: 'network unreachable',
    EADDRNOTAVAIL: 'local address not available',
    EPIPE: 'broken pipe',
  };
  return (e.code && known[e.code]) ?? e.message;
}

export function stripMapped(addr: string | undefined): string {
  return addr?.startsWith('::ffff:') && addr.includes('.') ? addr.slice(7) : addr ?? '';
}

/** One TCP connection to the peer and the part of the FSM that runs on it. */
export class Connection {
  state: ConnState;
  remote?: OpenMessage;
  /** Negotiated per RFC 4271 4.2 / RFC 6793 / RFC 4760; valid from OpenConfirm on. */
  ctx: UpdateContext = { fourOctetAs: false, ebgp: false };
  families = new Set<Afi>();
  private readonly framer = new Framer();
  private holdTimer?: NodeJS.Timeout;
  private keepaliveTimer?: NodeJS.Timeout;
  private holdMs = OPEN_HOLD_MS;
  private closed = false;
  /** Ended by a NOTIFICATION (either way), not by the transport. */
  notified = false;

  constructor(private readonly peer: PeerSession, readonly socket: Socket, readonly outgoing: boolean) {
    this.state = outgoing ? 'Connect' : 'OpenSent';
    socket.setNoDelay(true);
    socket.on('data', chunk => this.onData(chunk));
    socket.on('error', e => this.close(`${this.state}: ${socketErrorText(e)}`, false));
    socket.on('close', () => this.close(this.state === 'Established' ? 'connection closed by peer' : `${this.state}: connection closed`, false));
    // Our own dial is still connecting, unless it came connected (TCP-MD5 sockets do).
    if (outgoing && socket.connecting) socket.once('connect', () => this.sendOpen());
    else this.sendOpen();
  }

  get localAddress(): string {
    return stripMapped(this.socket.localAddress);
  }

  send(buf: Buffer): void {
    if (this.closed) return;
    this.socket.write(buf);
    this.peer.counters.messagesOut++;
  }

  private sendOpen(): void {
    if (this.closed) return; // our dial connected after we gave up on it
    const host = this.peer.host;
    this.state = 'OpenSent';
    const hold = this.peer.config.holdTimeSeconds ?? DEFAULT_HOLD;
    const gr = host.gracefulRestartSeconds;
    const grTime = this.peer.config.gracefulRestartSeconds ?? gr;
    const families = offeredFamilies(this.peer.config).map(afi => ({ afi, safi: SAFI_UNICAST }));
    const flags = host.gracefulRestartFlags?.(this.peer) ?? { restarting: false, forwarding: true };
    const localAs = this.peer.localAs;
    this.send(encodeOpen(localAs, hold, host.routerId, {
      multiprotocol: families,
      routeRefresh: true,
      fourOctetAs: localAs,
      gracefulRestart: gr > 0 ? { restarting: flags.restarting, time: Math.min(grTime, 4095), families: families.map(f => ({ ...f, forwarding: flags.forwarding })) } : undefined,
      unknown: [],
    }));
    this.armHold(OPEN_HOLD_MS);
    this.peer.refreshState();
  }

  private armHold(ms: number): void {
    clearTimeout(this.holdTimer);
    if (this.closed) return;
    this.holdMs = ms;
    if (ms > 0) this.holdTimer = setTimeout(() => this.fail(new BgpError(ErrCode.HoldTimerExpired, 0)), ms);
  }

  private onData(chunk: Buffer): void {
    if (this.closed) return;
    this.framer.push(chunk);
    try {
      for (let m = this.framer.next(); m && !this.closed; m = this.framer.next()) this.onMessage(m);
    } catch (e) {
      if (e instanceof BgpError) this.fail(e);
      else {
        // A bug of ours must not take the process down; it ends this session only.
        this.peer.host.log('warn', `bgp ${this.peer.config.address}: internal error: ${(e as Error).stack}`);
        this.fail(new BgpError(ErrCode.Cease, 0, Buffer.alloc(0), 'internal error'));
      }
    }
  }

  private onMessage(raw: Buffer): void {
    const c = this.peer.counters;
    c.messagesIn++;
    const msg = decodeMessage(raw, this.ctx);
    if (msg.type === MsgType.Notification) {
      const text = describeError(msg.code, msg.subcode);
      this.notified = true;
      this.close(`Received: ${text}`, false);
      return;
    }
    switch (this.state) {
      case 'OpenSent':
        if (msg.type !== MsgType.Open) throw new BgpError(ErrCode.Fsm, 1, Buffer.alloc(0), `message type ${msg.type} in OpenSent`);
        this.onOpen(msg);
        return;
      case 'OpenConfirm':
        if (msg.type !== MsgType.Keepalive) throw new BgpError(ErrCode.Fsm, 2, Buffer.alloc(0), `message type ${msg.type} in OpenConfirm`);
        this.armHold(this.holdMs);
        this.state = 'Established';
        this.peer.connectionEstablished(this);
        return;
      case 'Established':
        this.armHold(this.holdMs);
        if (msg.type === MsgType.Update) {
          c.updatesIn++;
          this.peer.host.update(this.peer, msg);
        } else if (msg.type === MsgType.RouteRefresh) {
          if (msg.safi === SAFI_UNICAST && this.families.has(msg.afi)) this.peer.host.routeRefresh(this.peer, msg.afi);
        } else if (msg.type === MsgType.Open) {
          throw new BgpError(ErrCode.Fsm, 3, Buffer.alloc(0), 'OPEN in Established');
        }
        return;
      default:
        throw new BgpError(ErrCode.Fsm, 0, Buffer.alloc(0), `message in ${this.state}`);
    }
  }

  private onOpen(m: OpenMessage): void {
    const host = this.peer.host;
    const cfg = this.peer.config;
    const asn = openAs(m);
    if (asn !== cfg.asNumber) {
      const data = Buffer.alloc(2);
      data.writeUInt16BE(m.myAs);
      throw new BgpError(ErrCode.Open, OpenSub.BadPeerAs, data, `peer says AS ${asn}, configured ${cfg.asNumber}`);
    }
    const localAs = this.peer.localAs;
    if (asn === localAs && m.routerId === host.routerId) throw new BgpError(ErrCode.Open, OpenSub.BadBgpId, Buffer.alloc(0), `router id ${m.routerId} is ours`);
    this.remote = m;
    this.ctx = { fourOctetAs: m.caps.fourOctetAs !== undefined, ebgp: asn !== localAs };
    // RFC 4760: no multiprotocol capability at all means IPv4 unicast only. A family is carried
    // when both sides offered it (section 6: a speaker that did not offer one never gets it).
    const offered = m.caps.multiprotocol.length ? m.caps.multiprotocol : [{ afi: Afi.Ipv4, safi: SAFI_UNICAST }];
    const ours = offeredFamilies(cfg);
    for (const f of offered) if (f.safi === SAFI_UNICAST && ours.includes(f.afi as Afi)) this.families.add(f.afi);
    if (!this.peer.collisionAllows(this)) return;
    const hold = Math.min(cfg.holdTimeSeconds ?? DEFAULT_HOLD, m.holdTime);
    this.state = 'OpenConfirm';
    this.send(KEEPALIVE);
    this.armHold(hold * 1000);
    // RFC 4271 4.4: KEEPALIVEs a third of the hold time apart, or the peer's keepaliveSeconds when
    // shorter (never so long that the peer's hold timer could expire on them).
    const keepalive = cfg.keepaliveSeconds ? Math.min(cfg.keepaliveSeconds, hold / 3) : hold / 3;
    if (hold > 0) this.keepaliveTimer = setInterval(() => this.send(KEEPALIVE), Math.max(1000, keepalive * 1000));
    this.peer.refreshState();
  }

  /** Sends the NOTIFICATION for `e` and closes. */
  fail(e: BgpError): void {
    if (this.closed) return;
    const text = `${this.state === 'Established' ? '' : this.state + ': '}Sent: ${e.message}`;
    // An Established session's end is news each time; a collision loser is routine (the other
    // connection carries on); a session that keeps failing to come up is said once per reason.
    if (this.state === 'Established') this.peer.host.log('warn', `bgp ${this.peer.config.address}: ${text}`);
    else if (e.code === ErrCode.Cease && e.subcode === CeaseSub.CollisionResolution) this.peer.host.log('info', `bgp ${this.peer.config.address}: ${text}`);
    else this.peer.noteFailure(text);
    this.send(encodeNotification(e.code, e.subcode, e.data));
    this.close(text, true);
  }

  /** NOTIFICATION Cease / connection rejected (RFC 4486) and close, not logged: routine, and a
   * peer's address making connection after connection must not flood the log. */
  reject(reason: string): void {
    if (this.closed) return;
    this.send(encodeNotification(ErrCode.Cease, CeaseSub.ConnectionRejected));
    this.close(reason, true);
  }

  /** Ends the connection: with `notified` the socket is flushed first (the NOTIFICATION goes out). */
  close(reason: string, notified: boolean): void {
    if (this.closed) return;
    this.closed = true;
    if (notified) this.notified = true;
    clearTimeout(this.holdTimer);
    clearInterval(this.keepaliveTimer);
    const s = this.socket;
    // A NOTIFICATION goes out before the FIN; a dial still connecting has nothing to flush.
    if (notified && !s.connecting) {
      s.end();
      // Do not wait forever for a FIN from a peer that stopped reading.
      setTimeout(() => s.destroy(), 1000).unref();
    } else {
      s.destroy();
    }
    this.peer.connectionClosed(this, reason);
  }

  /** Closes without NOTIFICATION, as a restarting speaker does (RFC 4724). */
  drop(): void {
    if (this.closed) return;
    this.closed = true;
    clearTimeout(this.holdTimer);
    clearInterval(this.keepaliveTimer);
    this.socket.destroy();
  }

  get isClosed(): boolean {
    return this.closed;
  }
}

export interface PeerCounters {
  messagesIn: number;
  messagesOut: number;
  updatesIn: number;
  updatesOut: number;
}

/** BIRD's protocol state of a BGP state: up, start (trying to come up) or down (stopped). */
function phaseOf(state: BgpState): 'up' | 'start' | 'down' {
  return state === 'Established' ? 'up' : state === 'Idle' ? 'down' : 'start';
}

/** A connection's end that a NOTIFICATION made (`Sent: ...`, `OpenSent: Sent: ...`, `Received: ...`),
 * not the transport (a close, a reset, a timeout). */
function isBgpLevel(reason: string): boolean {
  return /^(?:\w+: )?(?:Sent|Received): /.test(reason);
}

/** The FSM of one configured peer. */
export class PeerSession {
  state: BgpState = 'Idle';
  since = new Date();
  info = 'Idle';
  lastError = '';
  counters: PeerCounters = { messagesIn: 0, messagesOut: 0, updatesIn: 0, updatesOut: 0 };
  established?: Connection;
  private conns: Connection[] = [];
  private retryTimer?: NodeJS.Timeout;
  private running = false;
  /** A TCP-MD5 dial under way (it becomes a Connection once connected). */
  private dialing?: { cancel(): void };
  /** A passive session has dialled its one time (see begin). */
  private dialedOnce = false;
  /** The last failure to establish that was logged: a peer failing the same way on every retry
   * (connection refused, an AS mismatch) is logged once, again when the reason changes, and
   * afresh after the session was up. */
  private loggedFailure = '';
  /** The last BGP-level error (a NOTIFICATION sent or received) since the session was last up:
   * the reason shown and logged while the session fails, a transport close or reset after it (the
   * peer resetting each retry after its NOTIFICATION, as BIRD does) being the same failure. */
  private bgpError = '';
  /** The state's info without the TCP-MD5 hint. */
  private baseInfo = 'Idle';
  /** TCP-MD5: the namespace's drop counters at the last check while not Established, the drops
   * of the kinds that concern this peer counted since it was last up, what they suggest (shown in
   * info) and the last kind of it logged. */
  private md5Seen: TcpMd5Counters | null = null;
  private md5Dropped: TcpMd5Counters = { notFound: 0, unexpected: 0, failure: 0 };
  private md5Hint = '';
  private md5Logged = '';
  private md5Timer?: NodeJS.Timeout;

  constructor(readonly host: SessionHost, readonly config: PeerSettings) {}

  /** The AS this session speaks as: the peer's localAs, else the speaker's. */
  get localAs(): number {
    return this.config.localAs ?? this.host.localAs;
  }

  start(): void {
    if (this.running) return;
    this.running = true;
    this.md5Seen = this.host.md5Counters?.() ?? null;
    this.watchMd5();
    this.begin();
  }

  /**
   * While the session is not Established, once per connect-retry time (BIRD's attempt period; our
   * dial, or the peer's, may hang in SYNs the kernel drops for a TCP-MD5 mismatch, never reaching
   * us as an error): whether the namespace's TCP-MD5 drop counters moved in a way that concerns
   * this peer. Read then, never per segment.
   */
  private watchMd5(): void {
    clearTimeout(this.md5Timer);
    if (!this.running || this.established || !this.host.md5Counters) return;
    this.md5Timer = setTimeout(() => {
      this.checkMd5();
      this.watchMd5();
    }, this.host.connectRetryMs);
  }

  private checkMd5(): void {
    const now = this.host.md5Counters?.() ?? null;
    const seen = this.md5Seen;
    this.md5Seen = now;
    if (!now || !seen || this.established) return;
    const d = this.md5Dropped;
    // Counters only grow; one lower than before (another namespace's file) counts nothing.
    d.notFound += Math.max(0, now.notFound - seen.notFound);
    d.unexpected += Math.max(0, now.unexpected - seen.unexpected);
    d.failure += Math.max(0, now.failure - seen.failure);
    const hint = md5MismatchHint(!!this.config.password, d);
    if (hint === this.md5Hint) return;
    this.md5Hint = hint;
    // Logged once per kind of drop, not each time the count grows.
    const kind = hint.replace(/\d+ segments?/g, 'N segments');
    if (hint && kind !== this.md5Logged) {
      this.md5Logged = kind;
      const side = this.config.password ? 'this side has a password for the peer' : 'this side has no password for the peer';
      this.host.log('warn', `bgp ${this.config.address}: session not established: ${hint}; ${side} (BGPPeer spec.password): check that both sides have the same one or none`);
    }
    this.setState(this.state, this.baseInfo);
  }

  /** Up: the TCP-MD5 watch stops and starts afresh if the session goes down. */
  private md5Reset(): void {
    clearTimeout(this.md5Timer);
    this.md5Timer = undefined;
    this.md5Seen = null;
    this.md5Dropped = { notFound: 0, unexpected: 0, failure: 0 };
    this.md5Hint = '';
    this.md5Logged = '';
  }

  /** Idle -> Connect (we dial) or Active (passive: we wait for the peer). */
  private begin(): void {
    clearTimeout(this.retryTimer);
    if (!this.running) return;
    // The retry timer may fire after the peer has connected to us (a restarted peer is often
    // back within the connect-retry time): a live connection's state is the session's state then.
    if (this.conns.some(c => !c.isClosed)) {
      this.refreshState();
      if (this.config.passive || this.established || this.conns.some(c => c.outgoing) || this.dialing) return;
    } else if (this.config.passive && this.dialedOnce) {
      this.setState('Active', this.lastError ? `Active (last: ${this.lastError})` : 'Active (waiting for the peer to connect)');
      return;
    }
    if (this.dialing) return;
    // A passive session (the mesh's side with the higher address waits for the other) dials once
    // when it starts: after a restart of this node the peer only dials again at its next connect
    // retry (5 s), and the session (and the routes it brings) would wait for it. Both sides
    // dialling at once is a collision, which section 6.8 resolves (the higher router ID's
    // connection stays); a dial the peer refuses (it is not up yet) is not logged: it dials us.
    this.dialedOnce = true;
    const cfg = this.config;
    // TCP-MD5 and GTSM need socket options before the SYN, which node cannot set: the addon dials.
    if (cfg.password || cfg.ttlSecurity) {
      this.dialKeyed(cfg.password ?? '');
      return;
    }
    const socket = tcpConnect({ host: cfg.address, port: cfg.port ?? 179, localAddress: cfg.localAddress, timeout: CONNECT_TIMEOUT_MS });
    socket.once('timeout', () => { if (socket.connecting) socket.destroy(Object.assign(new Error('connect timed out'), { code: 'ETIMEDOUT' })); });
    socket.once('connect', () => socket.setTimeout(0)); // the hold timer watches the session from here
    this.conns.push(new Connection(this, socket, true));
    this.refreshState();
  }

  private dialKeyed(password: string): void {
    const cfg = this.config;
    let dial: ReturnType<typeof connectWithKey>;
    try {
      dial = connectWithKey(cfg.address, cfg.port ?? 179, cfg.localAddress, password, CONNECT_TIMEOUT_MS, ttlSecurityOf(cfg.ttlSecurity));
    } catch (e) {
      this.lastError = `Connect: ${socketErrorText(e as NodeJS.ErrnoException)}`;
      this.setState('Active', `Active (last: ${this.lastError})`);
      this.noteFailure(this.lastError);
      this.retryLater();
      return;
    }
    this.dialing = dial;
    if (!this.conns.length) this.setState('Connect', 'Connect');
    dial.socket.then(
      socket => {
        if (this.dialing !== dial) {
          socket.destroy();
          return;
        }
        this.dialing = undefined;
        this.conns.push(new Connection(this, socket, true));
        this.refreshState();
      },
      (e: NodeJS.ErrnoException) => {
        if (this.dialing !== dial) return;
        this.dialing = undefined;
        this.lastError = `Connect: ${socketErrorText(e)}`;
        if (!this.conns.length) this.setState('Active', `Active (last: ${this.lastError})`);
        if (!this.config.passive) this.noteFailure(this.lastError);
        this.retryLater();
      },
    );
  }

  private retryLater(): void {
    clearTimeout(this.retryTimer);
    if (!this.running) return;
    this.retryTimer = setTimeout(() => this.begin(), this.host.connectRetryMs);
  }

  /** A connection the peer opened to our listener. */
  accept(socket: Socket): void {
    if (!this.running) {
      socket.destroy();
      return;
    }
    // GTSM on the accepted connection (as BIRD's bgp_incoming_connection): our packets with TTL
    // 255, the peer's dropped by the kernel below 256 - hops. A connection that cannot be
    // protected is not taken.
    const gtsm = ttlSecurityOf(this.config.ttlSecurity);
    if (gtsm) {
      try {
        setTtlSecurity(socket, gtsm);
      } catch (e) {
        this.noteFailure(`cannot set TTL security (GTSM) on the peer's connection: ${(e as Error).message}`);
        socket.destroy();
        return;
      }
    }
    const est = this.established;
    // A new connection colliding with an Established one is the one closed (6.8), unless the peer
    // announced graceful restart: then it may be the peer back after a restart (RFC 4724 section
    // 4.2), and the new connection goes on beside the Established one, which stays up until a
    // valid OPEN arrives on the new one (collisionAllows). A bare TCP connection from the peer's
    // address (a port scan, a stray connect) never takes the session down.
    if (est && !est.remote?.caps.gracefulRestart) {
      socket.end(encodeNotification(ErrCode.Cease, CeaseSub.CollisionResolution));
      setTimeout(() => socket.destroy(), 1000).unref();
      return;
    }
    // At most one incoming connection waiting for the peer's OPEN: a newer one replaces it (a
    // genuine peer sends its OPEN at once, so it is the older one that is stale), and idle
    // connections from the peer's address cannot pile up, each held for the OPEN hold time.
    const waiting = this.conns.filter(c => !c.outgoing && c.state === 'OpenSent' && !c.isClosed);
    this.conns.push(new Connection(this, socket, false));
    for (const old of waiting) old.reject('OpenSent: replaced by a newer connection from the peer (no OPEN came on this one)');
    this.refreshState();
  }

  /**
   * Collision detection (RFC 4271 section 6.8) when `conn` has just received the peer's OPEN:
   * the connection opened by the speaker with the higher BGP identifier survives.
   */
  collisionAllows(conn: Connection): boolean {
    for (const other of this.conns) {
      if (other === conn || other.isClosed || other.state === 'Connect') continue;
      if (other.state === 'Established') {
        // RFC 4724 section 4.2: a graceful-restart peer's OPEN on a new connection is the peer
        // back after a restart: the old session ends as if its connection had closed (its routes
        // kept, stale) and the new one carries on.
        if (!conn.outgoing && other.remote?.caps.gracefulRestart) {
          other.close('peer restarted (new connection with an OPEN)', false);
          continue;
        }
        conn.fail(new BgpError(ErrCode.Cease, CeaseSub.CollisionResolution));
        return false;
      }
      const remoteId = conn.remote!.routerId;
      const weWin = ipNumber(this.host.routerId) > ipNumber(remoteId);
      // Keep the connection we opened when our identifier is higher, theirs otherwise.
      const loser = (other.outgoing === weWin) ? conn : other;
      loser.fail(new BgpError(ErrCode.Cease, CeaseSub.CollisionResolution));
      if (loser === conn) return false;
    }
    return true;
  }

  connectionEstablished(conn: Connection): void {
    for (const other of this.conns) if (other !== conn) other.fail(new BgpError(ErrCode.Cease, CeaseSub.CollisionResolution));
    this.established = conn;
    this.loggedFailure = '';
    this.bgpError = '';
    this.md5Reset();
    clearTimeout(this.retryTimer); // armed when an earlier session went down; nothing to retry now
    this.refreshState();
    this.host.established(this);
  }

  connectionClosed(conn: Connection, closedBy: string): void {
    this.conns = this.conns.filter(c => c !== conn);
    // A NOTIFICATION that ended an attempt to come up stands as the reason until the session is
    // up or another NOTIFICATION comes: a close or reset of a later attempt's connection (BIRD,
    // its OPEN refused, resets each retry) is the same failure, said as it (no new log line).
    // A dial that fails (refused, timed out: the peer is gone) is news of its own.
    const bgpLevel = isBgpLevel(closedBy);
    if (bgpLevel && this.established !== conn) this.bgpError = closedBy;
    const masked = this.established !== conn && this.bgpError !== '' && !bgpLevel && !closedBy.startsWith('Connect: ');
    const reason = masked ? this.bgpError : closedBy;
    // A collision loser is not news while the other connection carries on.
    if (this.established === conn || !this.conns.length) this.lastError = reason;
    if (this.established === conn) {
      this.established = undefined;
      this.host.log('warn', `bgp ${this.config.address}: session down: ${reason}`);
      if (this.running) {
        this.md5Seen = this.host.md5Counters?.() ?? null;
        this.watchMd5();
      }
      const gr = conn.remote?.caps.gracefulRestart;
      const families = !conn.notified && gr && gr.time > 0 ? gr.families.filter(f => f.safi === SAFI_UNICAST).map(f => f.afi as Afi) : [];
      this.host.down(this, families, gr?.time ?? 0);
    }
    if (!this.running) return;
    if (this.conns.length) {
      this.refreshState();
      return;
    }
    // The last connection of a session that did not come up: why, once per reason (a passive
    // session's one dial at start is not news: the peer dials us).
    if (conn.state !== 'Established' && !(this.config.passive && conn.outgoing)) this.noteFailure(reason);
    // Active until the connect-retry time brings Connect again: as BIRD names a session that is
    // trying to come up (`start ... Active`), so the metric, `podway node status` and a BIRD peer's
    // view agree (RFC 4271 would pass through Idle after an error; Idle here means stopped).
    this.setState('Active', `Active (last: ${reason})`);
    this.retryLater();
  }

  /**
   * A failure to establish the session, logged (warn) when it differs from the last one logged:
   * once per reason, not on every connect-retry (`podway node status` shows the latest in INFO).
   */
  noteFailure(reason: string): void {
    if (!this.running || reason === this.loggedFailure) return;
    this.loggedFailure = reason;
    this.host.log('warn', `bgp ${this.config.address}: session not established: ${reason} (trying again every ${this.host.connectRetryMs / 1000} s; logged again when the reason changes)`);
  }

  /** The peer's state is the most advanced of its connections' states. */
  refreshState(): void {
    let best: BgpState | undefined;
    for (const c of this.conns) if (!c.isClosed && (!best || ORDER[c.state] > ORDER[best])) best = c.state;
    if (!best) return;
    const info = best === 'Established' ? 'Established' : best === 'Connect' ? 'Connect' : `${best}${this.lastError ? ` (last: ${this.lastError})` : ''}`;
    this.setState(best, info);
  }

  private setState(state: BgpState, base: string): void {
    this.baseInfo = base;
    // While not up, what the TCP-MD5 drop counters suggest follows the state's own info.
    const info = state !== 'Established' && this.md5Hint ? `${base}; ${this.md5Hint}` : base;
    if (state === this.state && info === this.info) return;
    // SINCE is when the session entered its protocol state as BIRD (and calicoctl) show it: up
    // (Established), start (trying: Connect, Active, OpenSent, OpenConfirm) or stopped (Idle); a
    // retry passing through Connect and OpenSent again is not a new state.
    if (phaseOf(state) !== phaseOf(this.state)) this.since = new Date();
    this.state = state;
    this.info = info;
    this.host.stateChanged(this);
  }

  /**
   * Stops the FSM: NOTIFICATION Cease on every connection, or (graceful) a silent close. Resolves
   * when the sockets are closed (at most about a second later).
   */
  stop(opts: { graceful?: boolean; subcode?: number } = {}): Promise<void> {
    this.running = false;
    clearTimeout(this.retryTimer);
    this.md5Reset();
    this.dialing?.cancel();
    this.dialing = undefined;
    const conns = this.conns;
    const wasEstablished = this.established;
    this.conns = [];
    this.established = undefined;
    const closed = conns.map(c => new Promise<void>(resolve => {
      if (c.socket.destroyed) resolve();
      else c.socket.once('close', () => resolve());
    }));
    for (const c of conns) {
      if (opts.graceful) c.drop();
      else {
        c.send(encodeNotification(ErrCode.Cease, opts.subcode ?? CeaseSub.AdminShutdown));
        c.close('Stopped', true);
      }
    }
    if (wasEstablished) this.host.down(this, [], 0);
    this.setState('Idle', opts.graceful ? 'Stopped (graceful restart)' : 'Stopped');
    return Promise.all(closed).then(() => undefined);
  }
}

function ipNumber(text: string): number {
  return text.split('.').reduce((n, o) => n * 256 + Number(o), 0);
}
