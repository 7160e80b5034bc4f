/**
 * Readiness of `podway run`: ready when a model is applied, the node's ports are open and
 * receiving (every worker's), the datastore is in sync (reachable, not re-listing), and no block of
 * the node lacks the tunnel or IPv6 address peers need to reach it (control/tunnel-gaps.ts), and (with --bgp)
 * the BGP speaker runs and every configured session is Established, as calico-node's -bird-ready
 * ("BGP not established with ..."), and the model thread is not failing (dying again and again). Served as
 * /readyz on the metrics port and shown by `podway status`; /livez only says the process answers.
 */
import type { Collector } from './metrics';
import { ageText } from '../cli/format';

export interface EngineReadiness {
  /** Why an engine cannot forward ([] when it can). */
  problems: string[];
  /** Pods whose interface is not there yet (normal while a pod is wired; not a problem). */
  waiting: string[];
}

export interface ReadinessReport {
  ready: boolean;
  /** Why not ready, one line each ([] when ready). */
  reasons: string[];
  checks: { modelApplied: boolean; portsAttached: boolean; datastoreInSync: boolean };
  waiting: string[];
  /** Since when the datastore has not been in sync (ISO time; null while it is): a 10 s blip and a
   * 10 min outage told apart. */
  datastoreNotInSyncSince: string | null;
  /** The last moment this node's view of the datastore was known current (ISO time): now while in
   * sync, the moment it was lost otherwise; null before the first sync. */
  datastoreLastSync: string | null;
}

/** An ISO time to the second ("2026-12-07T03:21:07Z"): status lines read at a glance. */
export function isoSeconds(t: Date): string {
  return t.toISOString().replace(/\.\d{3}Z$/, 'Z');
}

/** " (for 4 min 12 s, since 2026-12-07T03:21:07Z)": how long a state has lasted, for a reason line. */
export function sinceText(since: Date, now = Date.now()): string {
  return ` (for ${ageText((now - since.getTime()) / 1000)}, since ${isoSeconds(since)})`;
}

const iso = (t: Date | null): string | null => (t ? isoSeconds(t) : null);

export class Health implements Collector {
  private datastore = { inSync: false, reason: 'waiting for the first datastore snapshot' };
  /** When the datastore stopped being in sync (the start, before the first sync); null while it is. */
  private notInSyncSince: Date | null = new Date();
  /** When it was last in sync, if it is not now (null: never yet). */
  private lastInSync: Date | null = null;
  private engines: (() => Promise<EngineReadiness[]>) | null = null;
  private tunnelGaps: readonly string[] = [];
  private bgp: (() => Promise<string[]>) | null = null;
  private modelThread: (() => string) | null = null;
  private cachedModel: (() => { appliedAt: Date; age: string } | null) | null = null;
  /** The last report (the podway_ready gauge reads it). */
  last: ReadinessReport | null = null;

  /** Track the datastore: in sync, or not and why. */
  setDatastore(inSync: boolean, reason = ''): void {
    const now = new Date();
    if (inSync) this.notInSyncSince = null;
    else if (this.notInSyncSince === null) {
      // in sync until now: the outage (or rejection, or re-list) starts here, whatever its reason
      // lines say next (each retry of an unreachable store sets a new one)
      this.notInSyncSince = now;
      this.lastInSync = now;
    }
    this.datastore = { inSync, reason: inSync ? '' : reason || 'datastore not in sync' };
  }

  /** Since when the datastore has not been in sync (null while it is). */
  get datastoreNotInSyncSince(): Date | null {
    return this.notInSyncSince;
  }

  /** The last moment this node's view of the datastore was known current: now while in sync, the
   * moment that ended otherwise; null before the first sync (podway_datastore_last_sync_timestamp_seconds). */
  datastoreLastSync(now = new Date()): Date | null {
    return this.datastore.inSync ? now : this.lastInSync;
  }

  get datastoreInSync(): boolean {
    return this.datastore.inSync;
  }

  /**
   * This node's blocks that other nodes cannot reach for want of a tunnel address
   * (control/tunnel-gaps.ts), one line per family; [] when none. Not ready while there are any.
   */
  setTunnelGaps(gaps: readonly string[]): void {
    this.tunnelGaps = gaps;
  }

  /** Why the datastore is not in sync ('' when it is). */
  get datastoreReason(): string {
    return this.datastore.reason;
  }

  /** The reason with how long it has lasted ("... (for 4 min 12 s, since 2026-12-07T03:21:07Z)"); '' when in sync. */
  datastoreReasonSince(now = Date.now()): string {
    if (this.datastore.inSync) return '';
    return `${this.datastore.reason}${this.notInSyncSince ? sinceText(this.notInSyncSince, now) : ''}`;
  }

  /** With --bgp: why BGP is not ready, one line each ([] when the speaker runs and every session
   * is Established). */
  setBgp(fn: () => Promise<string[]>): void {
    this.bgp = fn;
  }

  /** Why the model thread makes the node not ready by itself ('' when it does not): it keeps dying
   * (cli/model-source.ts failingReason). */
  setModelThread(fn: () => string): void {
    this.modelThread = fn;
  }

  /** The model cache in force, if any (cli/model-cache.ts): while the datastore is not in sync its
   * reason line says how old the cached model is, as `podway status` does. */
  setCachedModel(fn: () => { appliedAt: Date; age: string } | null): void {
    this.cachedModel = fn;
  }

  /** Where the engines' readiness comes from, once they exist (the main engine, then workers). */
  setEngines(fn: () => Promise<EngineReadiness[]>): void {
    this.engines = fn;
  }

  async report(): Promise<ReadinessReport> {
    const reasons: string[] = [];
    const waiting: string[] = [];
    let modelApplied = false;
    let portsAttached = false;
    // The engines' and BGP's answers come from other threads (up to 2 s each): asked together.
    const [engines, bgp] = await Promise.all([this.engines ? this.engines() : null, this.bgp ? this.bgp() : []]);
    if (!engines) reasons.push('no model applied yet (starting)');
    else {
      const all = engines;
      modelApplied = all.length > 0 && all.every((e) => !e.problems.includes('no model applied yet'));
      portsAttached = modelApplied && all.every((e) => e.problems.length === 0);
      all.forEach((e, k) => {
        for (const p of e.problems) reasons.push(all.length > 1 ? `worker ${k}: ${p}` : p);
      });
      for (const w of all[0]?.waiting ?? []) waiting.push(w);
    }
    if (!this.datastore.inSync) {
      const cache = this.cachedModel?.() ?? null;
      reasons.push(`datastore: ${this.datastoreReasonSince()}${cache ? `; the cached model (from ${cache.appliedAt.toISOString()}) is ${cache.age} old` : ''}`);
    }
    const thread = this.modelThread?.() ?? '';
    if (thread) reasons.push(`model thread: ${thread}`);
    for (const g of this.tunnelGaps) reasons.push(`unreachable: ${g}`);
    for (const b of bgp) reasons.push(`bgp: ${b}`);
    const report = { ready: reasons.length === 0, reasons, checks: { modelApplied, portsAttached, datastoreInSync: this.datastore.inSync }, waiting, datastoreNotInSyncSince: this.notInSyncSince ? isoSeconds(this.notInSyncSince) : null, datastoreLastSync: iso(this.datastoreLastSync()) };
    this.last = report;
    return report;
  }

  register(): void {}

  async refresh(): Promise<void> {
    await this.report();
  }
}
