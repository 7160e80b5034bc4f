/**
 * A forwarding thread's scheduler slice (`podway run --sched-slice-us`): EEVDF's per-task slice
 * (Linux 6.12+), set on the calling thread by the addon (native/README.md, setSchedSlice). A thread
 * that runs a few µs per wake-up asks for a short slice so that, woken, it is picked before a task
 * that has been running (a pod's process, another engineer's compiler) instead of waiting out that
 * task's slice (1.4 ms by default on 2 vCPUs): the kernel's own forwarding runs in softirq and never
 * waits for one. Fair class still (no real-time priority: see bench/README.md, "Shortening the
 * wake-up", for why SCHED_FIFO made it worse).
 */
import { nativeAddon } from './native';

/** Slices the kernel accepts for SCHED_OTHER (it clamps to 0.1-100 ms); 0 = the kernel's default. */
export const SCHED_SLICE_MAX_US = 100_000;

/** Sets this thread's slice; returns what the kernel now holds (µs), or an error's text. */
export function applySchedSlice(us: number): { sliceUs: number } | { error: string } {
  if (!(Number.isInteger(us) && us >= 0 && us <= SCHED_SLICE_MAX_US)) return { error: `slice ${us} µs: must be 0..${SCHED_SLICE_MAX_US}` };
  try {
    return { sliceUs: Math.round(nativeAddon().setSchedSlice(us * 1000) / 1000) };
  } catch (e) {
    return { error: (e as Error).message };
  }
}
