/**
 * Moving test frames through a FramePool and a real port: the native tests that send on a veth
 * and read the peer back (gro, uso) share these, so they put frames in descriptors and collect
 * what arrives the same way.
 */
import * as assert from 'uvu/assert';
import { native, nativeAddon, FramePool } from '../../src/dataplane/native';
import { waitFor } from '../helpers/netns';

/** A copy of descriptor i's frame. */
export function frameAt(pool: FramePool, i: number): Uint8Array {
  return pool.bytes.slice(pool.start(i), pool.start(i) + pool.len[i]);
}

/** Puts frames in pool descriptors [0, n) and sends them on `port` in one call. */
export function sendBatch(pool: FramePool, port: number, frames: Uint8Array[]): number {
  for (const [k, f] of frames.entries()) {
    pool.bytes.set(f, pool.start(k));
    pool.len[k] = f.length;
    pool.txList[k] = k;
  }
  return native.send(port, 0, frames.length);
}

/**
 * Receives on `port` (into descriptors 300..499) until `want` frames that `ours` accepts have
 * arrived, bounded in time (waitFor fails the test on timeout). Other frames (the kernel's own
 * on a fresh veth) are skipped.
 */
export async function collect(pool: FramePool, port: number, want: number, ours: (f: Uint8Array) => boolean, timeoutMs = 3000): Promise<Uint8Array[]> {
  const got: Uint8Array[] = [];
  await waitFor(() => {
    for (let round = 0; round < 100; round++) {
      const n = native.recv(port, 300, 200);
      for (let i = 300; i < 300 + n; i++) {
        const f = frameAt(pool, i);
        if (ours(f)) got.push(f);
      }
      if (n === 0) break;
    }
    return got.length >= want;
  }, timeoutMs);
  return got;
}

/** One message a coalescing test hook (groCoalesceForTest, usoCoalesceForTest) says the addon
 * would send: the frames it carries, its bytes, its virtio-net header (null: a plain frame). */
export interface Message { frames: number; frame: Uint8Array; vnetHdr: Uint8Array | null }

interface DeliverHook {
  offloadDeliverForTest(frame: Uint8Array, vnet: Uint8Array | null, first: number, max: number, resume: boolean): { n: number; done: number };
}

/** The addon's receive segmenter (gso.c) cutting a merged message into pool descriptors 0..n-1:
 * what a receiver of the GSO skb gets. */
export function resegment(pool: FramePool, m: Message): Uint8Array[] {
  if (!m.vnetHdr) return [m.frame];
  const r = (nativeAddon() as unknown as DeliverHook).offloadDeliverForTest(m.frame, m.vnetHdr, 0, 128, false);
  assert.is(r.done, 1);
  const out: Uint8Array[] = [];
  for (let i = 0; i < r.n; i++) out.push(frameAt(pool, i));
  return out;
}
