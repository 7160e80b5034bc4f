/**
 * The JS face of the native I/O addon (native/): one frame pool shared with C without copies, and
 * typed-array descriptors that say where each frame is.
 *
 * A frame is described by descriptor i: pool slot `slot[i]`, start `off[i]` inside the slot, length
 * `len[i]`, the port it came from or goes to, flags, and for UDP/raw sockets the peer address.
 * Receive writes frames at HEADROOM inside their slot, so outer headers can be prepended in place.
 * Send takes the descriptor indices listed in `txList[first .. first+count)`.
 */
import * as path from 'node:path';

export interface PortOptions {
  /** Open the device or socket inside this network namespace (e.g. /run/netns/NAME). */
  netns?: string;
  /** TAP/TUN: IFF_MULTI_QUEUE (one fd per queue, for several workers). */
  multiQueue?: boolean;
  /** TAP/TUN: keep the device after the fd closes (TUNSETPERSIST). */
  persist?: boolean;
  /** AF_PACKET: receive through a PACKET_MMAP ring (default true) rather than recvmmsg. */
  ring?: boolean;
  /** AF_PACKET ring: TPACKET_V2 (default: wakes per frame, no added latency) or TPACKET_V3
   * (blocks of frames, woken when a block fills or after 1 ms). */
  ringVersion?: 2 | 3;
  ringBlocks?: number;
  ringBlockSize?: number;
  /** AF_PACKET: PACKET_FANOUT_HASH group id (spreads flows across sockets/workers). */
  fanoutGroup?: number;
  /** AF_PACKET: PACKET_IGNORE_OUTGOING (default true): never read back frames we or the host sent. */
  ignoreOutgoing?: boolean;
  /** AF_PACKET: PACKET_QDISC_BYPASS: transmit straight to the driver, skipping the qdisc (and tc). */
  qdiscBypass?: boolean;
  /** AF_PACKET: classic BPF program, 8 bytes per instruction (struct sock_filter). */
  bpf?: Uint8Array;
  /** UDP/raw: local IPv4 address as uint32 (0 = any). */
  addr?: number;
  /** UDP: local port (0 = ephemeral). */
  port?: number;
  /** raw: IP protocol number (4 for IPIP). */
  proto?: number;
  rcvbuf?: number;
  sndbuf?: number;
  reuseport?: boolean;
}

export interface PortStats {
  rxPackets: number; rxBytes: number; rxTruncated: number; rxKernelDrops: number; rxCalls: number;
  txPackets: number; txBytes: number; txRetries: number; txDroppedFull: number; txErrors: number; txCalls: number;
  lastError?: string;
}

export interface PortInfo { kind: 'tap' | 'tun' | 'packet' | 'udp' | 'raw'; name: string; fd: number; ifindex: number; boundPort: number; /** 0 = no ring, else the TPACKET version */ ring: number }

interface NativeAddon {
  MAX_BATCH: number;
  setPool(pool: ArrayBuffer, slotSize: number, headroom: number, slot: Uint32Array, off: Uint16Array,
    len: Uint16Array, port: Uint16Array, flags: Uint16Array, addr: Uint32Array, aport: Uint16Array, txList: Uint32Array): void;
  openTap(name: string, opts?: PortOptions): number;
  openTun(name: string, opts?: PortOptions): number;
  openPacket(ifname: string, opts?: PortOptions): number;
  openUdp(opts: PortOptions): number;
  openRaw(opts: PortOptions): number;
  close(port: number): void;
  recv(port: number, first: number, max: number): number;
  send(port: number, first: number, count: number): number;
  stats(port: number): PortStats;
  info(port: number): PortInfo;
  poll(port: number, cb: (port: number, status: number) => void): void;
  unpoll(port: number): void;
  peerCred(fd: number): { pid: number; uid: number; gid: number };
}

/** Descriptor flags set by receive (mirrors native/ports.h). */
export const DescFlag = {
  TRUNCATED: 0x1,
  CSUM_PARTIAL: 0x2,
  OUTGOING: 0x4,
} as const;

function loadAddon(): NativeAddon {
  // dist/src/dataplane/native.js -> repo root is three levels up; src/ (ts-node) is two.
  const candidates = [
    path.resolve(__dirname, '..', '..', '..', 'build', 'Release', 'podway_native.node'),
    path.resolve(__dirname, '..', '..', 'build', 'Release', 'podway_native.node'),
  ];
  let lastErr: unknown;
  for (const c of candidates) {
    try {
      return require(c) as NativeAddon;
    } catch (e) {
      lastErr = e;
    }
  }
  throw new Error(`podway native addon not built (run \`npm run build:native\`): ${(lastErr as Error)?.message}`);
}

export const native: NativeAddon = loadAddon();

/** Frame pool geometry: 2048-byte slots, frames start 128 bytes in (room for outer headers). */
export const SLOT_SIZE = 2048;
export const SLOT_SHIFT = 11;
export const HEADROOM = 128;

/**
 * The one frame pool of a process (or worker) and its descriptor arrays. Descriptor i owns slot i
 * unless the pipeline swaps slots; everything is allocated once here.
 */
export class FramePool {
  readonly buffer: ArrayBuffer;
  readonly bytes: Uint8Array;
  readonly view: DataView;
  readonly slot: Uint32Array;
  readonly off: Uint16Array;
  readonly len: Uint16Array;
  readonly port: Uint16Array;
  readonly flags: Uint16Array;
  readonly addr: Uint32Array;
  readonly aport: Uint16Array;
  readonly txList: Uint32Array;

  constructor(readonly slots: number, readonly descriptors = slots) {
    if (descriptors > slots) throw new Error(`FramePool: ${descriptors} descriptors need at least as many slots (${slots})`);
    this.buffer = new ArrayBuffer(slots * SLOT_SIZE);
    this.bytes = new Uint8Array(this.buffer);
    this.view = new DataView(this.buffer);
    // Each array gets its own ArrayBuffer well above V8's on-heap limit, so its memory never moves
    // while C holds a pointer to it.
    const n = Math.max(descriptors, 64);
    this.slot = new Uint32Array(new ArrayBuffer(n * 4));
    this.off = new Uint16Array(new ArrayBuffer(n * 2));
    this.len = new Uint16Array(new ArrayBuffer(n * 2));
    this.port = new Uint16Array(new ArrayBuffer(n * 2));
    this.flags = new Uint16Array(new ArrayBuffer(n * 2));
    this.addr = new Uint32Array(new ArrayBuffer(n * 4));
    this.aport = new Uint16Array(new ArrayBuffer(n * 2));
    this.txList = new Uint32Array(new ArrayBuffer(n * 4));
    for (let i = 0; i < n; i++) {
      this.slot[i] = i < slots ? i : 0;
      this.off[i] = HEADROOM;
    }
    native.setPool(this.buffer, SLOT_SIZE, HEADROOM, this.slot, this.off, this.len, this.port, this.flags,
      this.addr, this.aport, this.txList);
  }

  /** Byte offset of descriptor i's frame in the pool. */
  start(i: number): number {
    return (this.slot[i] << SLOT_SHIFT) + this.off[i];
  }
}

/** An errno-carrying error from the addon: `code` is the errno name (EPERM, ENODEV, ...). */
export function errnoOf(e: unknown): string | undefined {
  return (e as { code?: string })?.code;
}
