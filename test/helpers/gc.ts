/**
 * Garbage collections seen while a function runs: how tests check that a per-packet path
 * allocates nothing (a boxed number or an object per call would make scavenges).
 */
import { PerformanceObserver } from 'node:perf_hooks';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';

/** A full garbage collection on demand (the test process is not started with --expose-gc). */
export function collectGarbage(): void {
  setFlagsFromString('--expose-gc');
  (runInNewContext('gc') as () => void)();
}

/**
 * The garbage collections (their kinds) while `counted` runs, after warming `warm` up twice (so
 * the counted call runs the optimised function, not an on-stack replacement compiled mid-loop) and
 * emptying the young generation: garbage from the warm-up and the compiler's own allocations must
 * not be what triggers a scavenge here.
 */
export async function collectionsDuring(warm: () => void, counted: () => void): Promise<number[]> {
  warm();
  warm();
  collectGarbage();
  const kinds: number[] = [];
  const obs = new PerformanceObserver((list) => {
    for (const e of list.getEntries()) kinds.push((e as unknown as { detail?: { kind: number } }).detail?.kind ?? -1);
  });
  obs.observe({ entryTypes: ['gc'] });
  try {
    counted();
    await new Promise((r) => setTimeout(r, 50));
  } finally {
    obs.disconnect();
  }
  return kinds;
}
