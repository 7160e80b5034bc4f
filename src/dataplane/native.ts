/**
 * The native I/O addon (native/) as a PacketIO: devices and sockets, batches of frames moved
 * between the kernel and one frame pool shared with C without copies. Loading it needs the built
 * addon (`npm run build:native`); nothing else in the dataplane imports this module eagerly, so
 * the pipeline runs without it (see io.ts, memory-io.ts).
 */
import * as path from 'node:path';
import * as frames from './frame-pool';
import { FramePool as PlainFramePool } from './frame-pool';
import * as ioModule from './io';
import type { PacketIO } from './io';

// Plain values, not `export { X } from`: see frame-pool.ts (a re-export's getter makes the exports
// object a dictionary, and every read of it a generic property lookup).
export const SLOT_SHIFT = frames.SLOT_SHIFT;
export const DescFlag = frames.DescFlag;
export const SLOT_SIZE = frames.SLOT_SIZE;
export const HEADROOM = frames.HEADROOM;
export type { PortOptions, PortStats, PortInfo } from './io';
export const errnoOf = ioModule.errnoOf;

/** The addon's exports, as native/addon.c defines them: a PacketIO whose setPool takes the pool's
 * arrays one by one, plus the control socket's peer check. */
type NativeAddon = Omit<PacketIO, 'setPool'> & {
  setPool(pool: ArrayBuffer, slotSize: number, headroom: number, slot: Uint32Array, off: Uint16Array,
    len: Uint16Array, port: Uint16Array, flags: Uint16Array, addr: Uint32Array, aport: Uint16Array, txList: Uint32Array,
    segs: Uint16Array, more: Uint32Array): void;
  peerCred(fd: number): { pid: number; uid: number; gid: number };
  /** AF_PACKET ports closed whose fd and ring a worker thread has not released yet. */
  pendingCloses(): number;
  /** EEVDF slice of the calling thread in ns (0: the kernel's default); returns the one it now holds. */
  setSchedSlice(ns: number): number;
  /** One datagram `text` to the AF_UNIX socket `path` ($NOTIFY_SOCKET; '@name' is abstract): sd_notify (notify.c). */
  sdNotify(path: string, text: string): void;
};

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

let addon: NativeAddon | null = null;

/** The addon itself (loaded on first use; throws a clear error when it is not built). */
export function nativeAddon(): NativeAddon {
  return (addon ??= loadAddon());
}

/** The addon's raw exports, for the addon's own tests and benchmarks (loads it on first access). */
export const native: NativeAddon = new Proxy({} as NativeAddon, {
  get: (_t, k) => (nativeAddon() as unknown as Record<string | symbol, unknown>)[k],
});

function registerPool(a: NativeAddon, p: PlainFramePool): void {
  a.setPool(p.buffer, SLOT_SIZE, HEADROOM, p.slot, p.off, p.len, p.port, p.flags, p.addr, p.aport, p.txList, p.segs, p.more);
}

let io: PacketIO | null = null;

/**
 * The addon as a PacketIO. The methods are the addon's own functions (no wrapper per call on the
 * hot path); only setPool adapts the pool object to the addon's argument list.
 */
export function nativeIO(): PacketIO {
  if (io) return io;
  const a = nativeAddon();
  io = {
    MAX_BATCH: a.MAX_BATCH,
    setPool: (p: PlainFramePool) => registerPool(a, p),
    openTap: a.openTap, openTun: a.openTun, openPacket: a.openPacket, openUdp: a.openUdp, openRaw: a.openRaw,
    preparePacket: a.preparePacket,
    close: a.close, recv: a.recv, send: a.send, stats: a.stats, checkRing: a.checkRing, checkRings: a.checkRings, txRejectedAll: a.txRejectedAll, nativeDropsAll: a.nativeDropsAll, linkMtus: a.linkMtus, linkMtu: a.linkMtu, info: a.info,
    poll: a.poll, unpoll: a.unpoll, superCut: a.superCut, superRest: a.superRest, setVxlanPort: a.setVxlanPort,
    takeRejected: a.takeRejected,
  };
  return io;
}

/** A frame pool registered with the addon at construction (for the addon's tests and benches). */
export class FramePool extends PlainFramePool {
  constructor(slots: number, descriptors = slots) {
    super(slots, descriptors);
    registerPool(nativeAddon(), this);
  }
}
