/**
 * PacketIO in memory: ports are queues. Frames injected into a port are received by the pipeline
 * exactly as the addon delivers them (copied into pool slots at HEADROOM, flags and peer address
 * set); frames the pipeline sends are copied out and kept per port. It lets the forwarding logic
 * run and be tested byte for byte in a plain Node process, without root or the addon.
 */
import { readFileSync } from 'node:fs';
import { constants as osConstants } from 'node:os';
import { FramePool, HEADROOM, SLOT_SIZE, DescFlag } from './frame-pool';
import { NATIVE_DROP_FIELDS, RING_FAILED } from './io';
import type { PacketIO, PortOptions, PortStats, PortInfo, PollCallback } from './io';

/** A frame handed to a port: bytes plus, for UDP/raw ports, the peer address and port. */
export interface MemFrame {
  bytes: Uint8Array;
  /** UDP/raw: peer IPv4 address (host order). */
  addr?: number;
  /** UDP: peer port. */
  aport?: number;
  /** Descriptor flags to deliver with it (e.g. DescFlag.CSUM_PARTIAL); sent: the descriptor's. */
  flags?: number;
  /** With DescFlag.SUPER: the segments it stands for and the bytes they add (pool.segs, pool.more). */
  segs?: number;
  more?: number;
}

interface MemPort {
  kind: PortInfo['kind'];
  name: string;
  opts: PortOptions;
  rx: MemFrame[];
  tx: MemFrame[];
  stats: PortStats;
  cb: PollCallback | null;
  /** poll's recvMax (0: the callback receives itself). */
  recvMax: number;
  /** Error code the next recv/send throws (fault injection). */
  failRecv: string | null;
  failSend: string | null;
  /** A packet port's interface index when it was opened (0: no such interface here), as the
   * addon's socket stays bound to it: the engine tells a deleted or replaced interface by it. */
  ifindex: number;
  /** What the next checkRing reports: a wedged ring set up again, or an error (a failed attempt). */
  ringFault: 'stall' | string | null;
}

/** A port opened or closed, in order (MemoryIO.events): what the engine did with its ports. */
export interface MemPortEvent {
  op: 'open' | 'close';
  port: number;
  kind: PortInfo['kind'];
  name: string;
  opts: PortOptions;
}

function ifindexOf(name: string): number {
  try {
    return Number(readFileSync(`/sys/class/net/${name}/ifindex`, 'utf8')) || 0;
  } catch {
    return 0;
  }
}

function errno(code: string, what: string): Error {
  return Object.assign(new Error(`${what}: ${code}`), { code });
}

export class MemoryIO implements PacketIO {
  readonly MAX_BATCH = 1024;
  private pool: FramePool | null = null;
  private readonly ports: (MemPort | undefined)[] = [];
  /** Every open and close, in order (the test's side reads it). */
  readonly events: MemPortEvent[] = [];
  /** checkRing calls per port (any result). */
  readonly ringChecks = new Map<number, number>();
  /** Error code the next open of a port by this name throws. */
  private readonly failOpens = new Map<string, string>();

  setPool(pool: FramePool): void {
    this.pool = pool;
  }

  private open(kind: PortInfo['kind'], name: string, opts: PortOptions = {}): number {
    const fail = this.failOpens.get(name);
    if (fail) {
      this.failOpens.delete(name);
      throw errno(fail, `open ${name}`);
    }
    let id = this.ports.findIndex((p) => p === undefined);
    if (id < 0) id = this.ports.length;
    this.ports[id] = {
      kind, name, opts, rx: [], tx: [], cb: null, ifindex: kind === 'packet' ? ifindexOf(name) : 0, recvMax: 0, failRecv: null, failSend: null, ringFault: null,
      stats: { rxPackets: 0, rxBytes: 0, rxTruncated: 0, rxKernelDrops: 0, rxCalls: 0, txPackets: 0, txBytes: 0, txRetries: 0, txDroppedFull: 0, txErrors: 0, txCalls: 0 },
    };
    this.events.push({ op: 'open', port: id, kind, name, opts });
    return id;
  }

  openTap(name: string, opts?: PortOptions): number { return this.open('tap', name, opts); }
  openTun(name: string, opts?: PortOptions): number { return this.open('tun', name, opts); }
  openPacket(ifname: string, opts?: PortOptions): number { return this.open('packet', ifname, opts); }
  openUdp(opts: PortOptions): number {
    // As the kernel's bind: one socket per address and port unless every one sets SO_REUSEPORT.
    const at = (o: PortOptions) => `${o.addr6 ? [...o.addr6].join(',') : o.addr ?? 0}:${o.port ?? 0}`;
    const taken = this.ports.find((p) => p?.kind === 'udp' && at(p.opts) === at(opts) && !(p.opts.reuseport && opts.reuseport));
    if (taken && (opts.port ?? 0) !== 0) throw errno('EADDRINUSE', `bind udp ${at(opts)}`);
    return this.open('udp', `udp:${opts.port ?? 0}`, opts);
  }
  openRaw(opts: PortOptions): number { return this.open('raw', `raw:${opts.proto ?? 0}`, opts); }

  close(port: number): void {
    const p = this.get(port);
    this.ports[port] = undefined;
    this.events.push({ op: 'close', port, kind: p.kind, name: p.name, opts: p.opts });
  }

  /** As the addon's (io.ts): only AF_PACKET ports with a V2 ring are checked; what it reports is
   * injected with ringFault (a stall is counted in rxRingStalls, as the addon counts it). */
  checkRing(port: number): boolean {
    const p = this.get(port);
    this.ringChecks.set(port, (this.ringChecks.get(port) ?? 0) + 1);
    if (p.kind !== 'packet' || !p.opts.ring || (p.opts.ringVersion ?? 2) !== 2) return false;
    const f = p.ringFault;
    if (f === null) return false;
    // a failed attempt stays failed (the addon's ring is gone): every later check throws
    if (f !== 'stall') throw errno(f, `${p.name}: setting its receive ring up again failed`);
    p.ringFault = null;
    p.stats.rxRingStalls = (p.stats.rxRingStalls ?? 0) + 1;
    return true;
  }

  private get(port: number): MemPort {
    const p = this.ports[port];
    if (!p) throw errno('EBADF', `port ${port}`);
    return p;
  }

  recv(port: number, first: number, max: number): number {
    const p = this.get(port);
    const pool = this.pool;
    if (!pool) throw new TypeError('setPool first');
    if (p.failRecv) {
      const code = p.failRecv;
      p.failRecv = null;
      throw errno(code, p.name);
    }
    p.stats.rxCalls++;
    const cap = SLOT_SIZE - HEADROOM;
    let n = 0;
    while (n < max && n < this.MAX_BATCH && p.rx.length > 0) {
      const f = p.rx.shift()!;
      const i = first + n;
      pool.off[i] = HEADROOM;
      const len = Math.min(f.bytes.length, cap);
      pool.bytes.set(f.bytes.subarray(0, len), pool.start(i));
      pool.len[i] = len;
      pool.port[i] = port;
      pool.flags[i] = (f.flags ?? 0) | (f.bytes.length > cap ? DescFlag.TRUNCATED : 0);
      pool.addr[i] = f.addr ?? 0;
      pool.aport[i] = f.aport ?? 0;
      pool.segs[i] = f.segs ?? 1;
      pool.more[i] = f.more ?? 0;
      if (f.bytes.length > cap) p.stats.rxTruncated++;
      p.stats.rxBytes += len;
      n++;
    }
    p.stats.rxPackets += n;
    return n;
  }

  send(port: number, first: number, count: number): number {
    const p = this.get(port);
    const pool = this.pool;
    if (!pool) throw new TypeError('setPool first');
    if (count > this.MAX_BATCH) throw errno('E2BIG', p.name);
    if (p.failSend) {
      const code = p.failSend;
      p.failSend = null;
      throw errno(code, p.name);
    }
    if (count === 0) return 0;
    p.stats.txCalls++;
    // as the addon: a SUPER descriptor is sent as the segments it stands for (counted so); the
    // frame is kept as it is, with its flags and segs
    let segs = 0;
    for (let k = 0; k < count; k++) {
      const i = pool.txList[first + k];
      if (pool.off[i] + pool.len[i] > SLOT_SIZE) throw errno('ERANGE', p.name);
      const s = pool.start(i);
      const sup = (pool.flags[i] & DescFlag.SUPER) !== 0;
      p.tx.push({ bytes: pool.bytes.slice(s, s + pool.len[i]), addr: pool.addr[i], aport: pool.aport[i], flags: pool.flags[i], ...(sup ? { segs: pool.segs[i], more: pool.more[i] } : {}) });
      p.stats.txBytes += pool.len[i] + (sup ? pool.more[i] : 0);
      segs += sup ? pool.segs[i] : 1;
    }
    p.stats.txPackets += segs;
    return segs;
  }

  stats(port: number): PortStats {
    return { ...this.get(port).stats };
  }

  info(port: number): PortInfo {
    const p = this.get(port);
    return { kind: p.kind, name: p.name, fd: -1, ifindex: p.ifindex, boundPort: p.opts.port ?? 0, ring: 0 };
  }

  poll(port: number, cb: PollCallback, recvMax?: number): void {
    if (recvMax !== undefined && !(Number.isInteger(recvMax) && recvMax >= 1 && recvMax <= this.MAX_BATCH)) throw new TypeError('poll: recvMax must be 1..MAX_BATCH');
    const p = this.get(port);
    p.cb = cb;
    p.recvMax = recvMax ?? 0;
  }

  unpoll(port: number): void {
    const p = this.ports[port];
    if (p) p.cb = null;
  }

  /** poll's recvMax: the first batch, received before the callback; a receive fault as -errno. */
  private recvForPoll(port: number, max: number): number {
    try {
      return this.recv(port, 0, max);
    } catch (e) {
      const code = (e as { code?: string }).code ?? '';
      return -((osConstants.errno as Record<string, number>)[code] ?? 5 /* EIO */);
    }
  }

  // ---- the test's side -------------------------------------------------------------------------

  /** Queue frames for the pipeline to receive on `port`. */
  inject(port: number, ...frames: (Uint8Array | MemFrame)[]): void {
    const p = this.get(port);
    for (const f of frames) p.rx.push(f instanceof Uint8Array ? { bytes: f } : f);
  }

  /** Frames sent on `port` since the last call (taken out). */
  take(port: number): MemFrame[] {
    const p = this.get(port);
    const out = p.tx;
    p.tx = [];
    return out;
  }

  /** Frames sent on any open port since the last take that `which` picks (taken out; the rest
   * stay): e.g. the start's gateway announcements (Engine.announceGateway), cleared before a test
   * looks at what it caused. */
  takeEverywhere(which: (f: MemFrame) => boolean = () => true): MemFrame[] {
    const out: MemFrame[] = [];
    for (const p of this.ports) {
      if (!p) continue;
      out.push(...p.tx.filter(which));
      p.tx = p.tx.filter((f) => !which(f));
    }
    return out;
  }

  /** The id of the open port named `name` (device or interface name), or -1. */
  portNamed(name: string): number {
    return this.ports.findIndex((p) => p?.name === name);
  }

  /** As the addon's: checkRing on every open port, the wedged and the failed ones listed. */
  checkRings(checks: number, out: Uint32Array): number {
    let n = 0;
    for (let id = 0; id < this.ports.length && n < out.length; id++) {
      if (this.ports[id] === undefined) continue;
      try {
        if (this.checkRing(id)) out[n++] = id;
      } catch {
        out[n++] = (id | RING_FAILED) >>> 0;
      }
    }
    return n;
  }

  txRejectedAll(out: Float64Array): void {
    for (let id = 0; id < this.ports.length && id < out.length; id++) {
      const p = this.ports[id];
      if (p !== undefined) out[id] = p.stats.txRejected ?? 0;
    }
  }

  nativeDropsAll(out: Float64Array): number {
    const stride = NATIVE_DROP_FIELDS.length;
    for (let id = 0; id < this.ports.length && (id + 1) * stride <= out.length; id++) {
      const p = this.ports[id];
      if (p === undefined) continue;
      for (let k = 0; k < stride; k++) out[id * stride + k] = p.stats[NATIVE_DROP_FIELDS[k]] ?? 0;
    }
    return stride;
  }

  /** As the addon's, from sysfs (a memory port named after a real interface has its MTU): packet
   * ports, and tap/tun ports opened in this namespace (one with `netns` reads 0: sysfs shows only
   * this process's namespace's devices, the addon reads them through a socket made in theirs). */
  linkMtus(out: Uint32Array): void {
    for (let id = 0; id < this.ports.length && id < out.length; id++) {
      const mtu = this.deviceMtu(id);
      if (mtu >= 0) out[id] = mtu;
    }
  }

  linkMtu(port: number): number {
    this.get(port);
    return Math.max(0, this.deviceMtu(port));
  }

  /** A port's device's MTU as linkMtus reads it; -1: not a port on a device. */
  private deviceMtu(id: number): number {
    const p = this.ports[id];
    if (p === undefined || (p.kind !== 'packet' && p.kind !== 'tap' && p.kind !== 'tun')) return -1;
    if (p.opts.netns !== undefined) return 0;
    try {
      return Number(readFileSync(`/sys/class/net/${p.name}/mtu`, 'utf8')) || 0;
    } catch {
      return 0;
    }
  }

  isPolled(port: number): boolean {
    return this.ports[port]?.cb != null;
  }

  /** The next checkRing on `port` reports a wedged ring set up again ('stall'), or it and every
   * later one throws an errno error with this code (setting it up again failed: the port receives
   * nothing until it is closed). */
  failRing(port: number, fault: 'stall' | string): void {
    this.get(port).ringFault = fault;
  }

  /** The next open of a port named `name` throws an errno error with this code. */
  failOpen(name: string, code: string): void {
    this.failOpens.set(name, code);
  }

  /** The next recv (or send) on `port` throws an errno error with this code. */
  failNext(port: number, op: 'recv' | 'send', code: string): void {
    const p = this.get(port);
    if (op === 'recv') p.failRecv = code;
    else p.failSend = code;
  }

  /**
   * Readiness, as the event loop would deliver it: call the callback of every polled port with
   * frames queued (or an injected receive fault), until no port has any or `maxRounds` passed.
   * Returns the number of callbacks made.
   */
  pump(maxRounds = 100): number {
    let calls = 0;
    for (let round = 0; round < maxRounds; round++) {
      let any = false;
      this.ports.forEach((p, id) => {
        if (p && p.cb && (p.rx.length > 0 || p.failRecv)) {
          any = true;
          calls++;
          p.cb(id, p.recvMax ? this.recvForPoll(id, p.recvMax) : 0);
        }
      });
      if (!any) break;
    }
    return calls;
  }
}
