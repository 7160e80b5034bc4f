/**
 * The counts of forwarding threads that died (podway run --workers N; cli/worker-deaths.ts),
 * carried forward so that every counter podway reports stays monotonic across a restart.
 *
 * A new thread's counters start from zero. Without this, `podway counters`' sums and every summed
 * metric dropped by what the dead thread had counted, which Prometheus' rate() reads as a counter
 * reset of the whole node (a spike, then the wrong rate). podway run keeps each thread's last
 * known counts (its last answer to a scrape, `podway counters`, a 10 s refresh, and the counts the
 * thread sends from its process 'exit' as it dies: dataplane/worker.ts) and, when the thread dies,
 * adds them here; every sum adds them from then on (mergeSnapshots' output for /metrics,
 * mergeCounters' for `podway counters`).
 *
 * Carried: drop reasons and events (packets and bytes), batch histograms, engine failures, log
 * lines dropped, per-port counts (by port name, into the port of that name that is open now; a
 * port gone is forgotten, as its series is), route packets (into a route still present).
 * Not carried: gauges (orphan pod addresses, failed underlay neighbours, a port's backlog or hold
 * now). Since a count can only be carried from a read, a thread that dies without running its
 * 'exit' (out of memory) loses what it counted after its last read (at most ~10 s): the sums stay
 * monotonic (never below what was reported), they only miss that part.
 */
import type { RouteHit } from '../dataplane/engine';
import { addPortCounts, type DataplaneSnapshot, type PortSample } from './snapshot';

/** A thread's `podway counters` answer (Engine.counters), as far as it is summed. */
export interface ThreadCounters {
  reasons: Record<string, number>;
  ports: Record<string, unknown>[];
  routes?: RouteHit[];
  failures?: Record<string, number>;
}

/** Port fields of Engine.counters that are not counts: never added up. */
const PORT_GAUGES = new Set(['port', 'heldNow', 'holding', 'txBacklog', 'lastError']);

function addInto(a: number[], b: readonly number[]): void {
  for (let i = 0; i < b.length; i++) a[i] = (a[i] ?? 0) + b[i];
}

function addRecord(a: Record<string, number>, b: Record<string, number> | undefined): void {
  for (const [k, n] of Object.entries(b ?? {})) if (typeof n === 'number') a[k] = (a[k] ?? 0) + n;
}

/** The numeric count fields of a `podway counters` port row added into another's. */
function addRow(a: Record<string, unknown>, b: Record<string, unknown>): void {
  for (const [k, v] of Object.entries(b)) {
    if (PORT_GAUGES.has(k) || typeof v !== 'number') continue;
    a[k] = (typeof a[k] === 'number' ? (a[k] as number) : 0) + v;
  }
}

export class RetiredCounts {
  /** Threads retired so (their counts carried). */
  threads = 0;
  private readonly snap: Omit<DataplaneSnapshot, 'ports'> & { logLinesDropped: number } = { counters: [], counterBytes: [], rxBatches: [], txBatches: [], failures: {}, logLinesDropped: 0 };
  private readonly snapPorts = new Map<string, PortSample>();
  private readonly reasons: Record<string, number> = {};
  private readonly failures: Record<string, number> = {};
  private readonly routes = new Map<string, number>();
  /** `podway counters` port rows by thread index, then port name. */
  private readonly rows = new Map<number, Map<string, Record<string, unknown>>>();

  /** Thread `index` died: its last known counts (null: never read) are carried from now on. */
  retire(index: number, counters: ThreadCounters | null, snapshot: DataplaneSnapshot | null): void {
    this.threads++;
    if (snapshot) {
      addInto(this.snap.counters, snapshot.counters);
      addInto(this.snap.counterBytes, snapshot.counterBytes);
      addInto(this.snap.rxBatches, snapshot.rxBatches);
      addInto(this.snap.txBatches, snapshot.txBatches);
      addRecord(this.snap.failures!, snapshot.failures);
      this.snap.logLinesDropped += snapshot.logLinesDropped ?? 0;
      for (const p of snapshot.ports) {
        const have = this.snapPorts.get(p.name);
        if (have) addPortCounts(have, p);
        else this.snapPorts.set(p.name, { ...p });
      }
    }
    if (counters) {
      addRecord(this.reasons, counters.reasons);
      addRecord(this.failures, counters.failures);
      for (const r of counters.routes ?? []) this.routes.set(r.cidr, (this.routes.get(r.cidr) ?? 0) + r.packets);
      let rows = this.rows.get(index);
      if (!rows) this.rows.set(index, (rows = new Map()));
      for (const p of counters.ports) {
        const name = String(p.port);
        const have = rows.get(name);
        if (have) addRow(have, p);
        else {
          const copy: Record<string, unknown> = { port: name };
          addRow(copy, p);
          rows.set(name, copy);
        }
      }
    }
  }

  /** Log lines the dead threads' logs dropped (status's logLinesDropped). */
  get logLinesDropped(): number {
    return this.snap.logLinesDropped;
  }

  /**
   * The node's merged snapshot (every live thread's: mergeSnapshots) with the dead threads' counts
   * added, in place. A carried port whose name is not in it is forgotten (the port is gone).
   */
  addToSnapshot(merged: DataplaneSnapshot): DataplaneSnapshot {
    if (this.threads === 0) return merged;
    addInto(merged.counters, this.snap.counters);
    addInto(merged.counterBytes, this.snap.counterBytes);
    addInto(merged.rxBatches, this.snap.rxBatches);
    addInto(merged.txBatches, this.snap.txBatches);
    if (Object.keys(this.snap.failures!).length) addRecord((merged.failures ??= {}), this.snap.failures);
    if (this.snap.logLinesDropped) merged.logLinesDropped = (merged.logLinesDropped ?? 0) + this.snap.logLinesDropped;
    const live = new Map(merged.ports.map((p) => [p.name, p]));
    for (const [name, c] of this.snapPorts) {
      const p = live.get(name);
      if (p) addPortCounts(p, c);
      else this.snapPorts.delete(name);
    }
    return merged;
  }

  /**
   * `podway counters`' merged answer (mergeCounters: rows named `PORT [wN]`) with the dead threads'
   * counts added, in place: the sums (reasons, failures, routes still present) and each thread's
   * port rows (into the row of the same port and thread index, when that thread answered). A
   * carried port no thread lists any more is forgotten; a route no longer present too.
   */
  addToCounters<C extends ThreadCounters>(merged: C): C {
    if (this.threads === 0) return merged;
    addRecord(merged.reasons, this.reasons);
    if (Object.keys(this.failures).length) {
      const f = (merged.failures ?? {}) as Record<string, number>;
      addRecord(f, this.failures);
      merged.failures = f;
    }
    const routes = new Map((merged.routes ?? []).map((r) => [r.cidr, r]));
    for (const [cidr, n] of this.routes) {
      const r = routes.get(cidr);
      if (r) r.packets += n;
      else this.routes.delete(cidr);
    }
    const rowByName = new Map(merged.ports.map((p) => [String(p.port), p]));
    const names = new Set([...rowByName.keys()].map((n) => n.replace(/ \[w\d+\]$/, '')));
    for (const [index, rows] of this.rows) {
      for (const [name, c] of rows) {
        if (!names.has(name)) { rows.delete(name); continue; }
        const row = rowByName.get(`${name} [w${index}]`);
        if (row) addRow(row, c);
      }
    }
    return merged;
  }
}
