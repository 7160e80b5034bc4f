/**
 * `podway run --workers N|auto`: how many forwarding threads (default 1: bench/README.md, "Forwarding
 * threads by default", says why it is not auto yet). `auto` is one per CPU
 * this process may run on (os.availableParallelism: the affinity mask), at most WORKERS_AUTO_MAX:
 * each thread's socket filters take its share of the flows (steer.ts: a request and its reply on
 * one thread; `--worker-steer fanout`: PACKET_FANOUT), so a node with several flows
 * forwards on several cores, as the kernel's own path does. The cap: each worker holds its own
 * receive rings (the underlay's is --underlay-ring-mb of kernel memory per worker), and more than
 * two were never measured (bench/README.md, "Forwarding threads by default").
 */
import { availableParallelism } from 'node:os';
import { UsageError } from './usage-error';

export const WORKERS_AUTO_MAX = 4;
export const DEFAULT_WORKERS: string = '1';

export interface WorkersChoice {
  count: number;
  /** chosen by `auto` (said in the start-up log with the CPU count) */
  auto: boolean;
}

/** The --workers value: 'auto' or an integer 1..64; anything else is a clear error. */
export function parseWorkers(text: string, cpus: number = availableParallelism()): WorkersChoice {
  const t = String(text).trim();
  if (t === 'auto') return { count: Math.max(1, Math.min(cpus, WORKERS_AUTO_MAX)), auto: true };
  const n = Number(t);
  if (t === '' || !Number.isInteger(n) || n < 1 || n > 64) throw new UsageError(`run: --workers must be auto or 1..64 (got ${JSON.stringify(text)})`);
  return { count: n, auto: false };
}

/** The --worker-steer value: 'flow' (default) or 'fanout' (EngineOptions.workerSteer); anything else is a clear error. */
export function parseWorkerSteer(text: string | undefined): 'flow' | 'fanout' {
  const t = String(text ?? 'flow').trim();
  if (t === 'flow' || t === 'fanout') return t;
  throw new UsageError(`run: --worker-steer must be flow or fanout (got ${JSON.stringify(text)})`);
}
