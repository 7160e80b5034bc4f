/**
 * Where `podway run`'s start goes: one log line per start-up phase, with the milliseconds since
 * the process started (performance.now(): Node's time origin is the process's start, so module
 * loading counts) and since the phase before:
 *
 *   start-up: registered at 1022 ms (+640 ms, cpu 905 ms)
 *
 * `cpu` is the CPU time the process (every thread) used since it started (process.cpuUsage(),
 * user and system): on a busy machine the ms since start stretch with the load (a start waits for
 * a CPU), the CPU much less, so it says what the start itself cost (bench/README.md, "The gap of
 * a restart").
 *
 * An operator reads how long a (re)start took to forward and which part was slow; bench/startup-etcd
 * reads the same lines. Each phase is said once (a second mark of the same phase is ignored: the
 * first is the start's), and nothing is said after `done()` (the start ended: later events, a
 * datastore answering long after the start on the cached model, are not start-up phases).
 */
import { performance } from 'node:perf_hooks';

export type StartupPhase =
  | 'modules loaded'
  | 'control socket'
  | 'registered'
  | 'first model'
  | 'host prepared'
  | 'model applied'
  | 'nat tables'
  | 'forwarding';

export class StartupClock {
  private last = 0;
  private readonly said = new Set<StartupPhase>();
  private ended = false;

  constructor(
    private readonly say: (msg: string, fields: Record<string, unknown>) => void,
    private readonly now: () => number = () => performance.now(),
    private readonly cpu: () => number = processCpuMs,
  ) {}

  /** Says that `phase` ended now; `detail` follows in parentheses. Returns the ms since start. */
  mark(phase: StartupPhase, detail?: string): number | null {
    if (this.ended || this.said.has(phase)) return null;
    this.said.add(phase);
    const at = Math.round(this.now());
    const step = Math.max(0, at - this.last);
    this.last = at;
    const cpuMs = Math.round(this.cpu());
    this.say(`start-up: ${phase} at ${at} ms (+${step} ms, cpu ${cpuMs} ms)${detail ? `; ${detail}` : ''}`, { startupPhase: phase, sinceStartMs: at, phaseMs: step, cpuMs });
    if (phase === 'forwarding') this.ended = true;
    return at;
  }

  /** The start is over (forwarding, or failed): later marks say nothing. */
  done(): void {
    this.ended = true;
  }
}

/** The CPU time (user and system, every thread) this process used since it started, in ms. */
function processCpuMs(): number {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1000;
}
