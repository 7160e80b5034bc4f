// The BGP side of `podway run --bgp`, in the model thread next to the route calculation (as
// calico-node runs BIRD beside Felix): every datastore snapshot becomes a plan (peering.ts), which
// is handed to the speaker; the speaker's learned routes, reduced to one per prefix, come back to
// the caller, which recomputes the node's model with them. The speaker is made anew only when its
// own settings (AS, router ID, cluster ID, listen port) change; peers and exports are updated in
// place, so sessions that stay in the plan are not reset.
import type { ClusterSnapshot } from '../snapshot';
import type { LearnedRoute } from '../route-calc';
import { BgpPlan, BgpPlanOptions, computeBgpPlan, PeerType, speakerOptionsEqual } from './peering';
import { bestLearnedRoutes, learnedEqual } from './learned-routes';
import type { BgpPeerStatus, BgpSpeaker, BgpSpeakerOptions, BgpState } from './speaker';
import { Backoff } from '../../util/backoff';

/** One row of `podway node status` (calicoctl's columns, then the per-peer counters). */
export interface NodeStatusPeer {
  readonly address: string;
  readonly type: PeerType;
  readonly name: string;
  readonly asNumber: number;
  /** BIRD's protocol state as calicoctl shows it: `up` when Established, else `start` (the BGP
   * state, as BIRD names it, is `bgpState` and leads `info`). */
  readonly state: 'up' | 'start';
  /** When the session entered its present state (ISO time). */
  readonly since: string;
  /** The BGP state, with the speaker's last error while not Established. */
  readonly info: string;
  readonly bgpState: BgpState;
  readonly messagesIn: number;
  readonly messagesOut: number;
  readonly updatesIn: number;
  readonly updatesOut: number;
  readonly prefixesReceived: number;
  readonly prefixesAccepted: number;
  /** Routes kept for the peer while it restarts (graceful restart helper); 0 when none. */
  readonly staleRoutes: number;
}

export interface NodeStatus {
  readonly enabled: boolean;
  readonly node: string;
  readonly asNumber: number | null;
  readonly routerId: string | null;
  readonly peers: readonly NodeStatusPeer[];
  readonly exported: number;
  readonly learned: number;
  /** Why the speaker is not running (its listener could not open, e.g. port 179 taken); it is
   * started again with backoff meanwhile. null while it runs. */
  readonly speakerError?: string | null;
  /** Listeners of the running speaker that could not open (bindMode NodeIP: one per family), why;
   * the sessions of that family wait while it is tried again. Absent when all are open. */
  readonly listenerErrors?: readonly string[];
  /** What the plan left out and why (a peer whose password secret cannot be read, a bad selector). */
  readonly warnings?: readonly string[];
  /** While the speaker runs on the model cache's settings (the datastore has not answered since
   * the start): when that model was applied (ISO time). */
  readonly cachedSettings?: string | null;
}

export interface BgpAgentOptions extends BgpPlanOptions {
  readonly node: string;
  readonly createSpeaker: (options: BgpSpeakerOptions) => BgpSpeaker;
  readonly log: (line: string, level?: 'info' | 'warn' | 'error') => void;
  /** First and longest wait before starting a speaker again that failed to start (ms; default
   * 1 s doubling up to 30 s). */
  readonly retryMs?: { first: number; max: number };
  /** Called (coalesced) when the best learned routes change, or whether every peer's routes (both
   * families) are all here (`complete`: BgpSpeaker.ribsComplete). */
  readonly onLearned: (learned: readonly LearnedRoute[], complete: boolean) => void;
  /** Quiet time after a burst of route changes before onLearned (default 20 ms). */
  readonly settleMs?: number;
}

export class BgpAgent {
  private speaker: BgpSpeaker | null = null;
  private plan: BgpPlan | null = null;
  private best: readonly LearnedRoute[] = [];
  private complete = false;
  private warningsKey = '';
  private timer: NodeJS.Timeout | undefined;
  /** Speaker starts and stops, one at a time and in order. */
  private chain: Promise<void> = Promise.resolve();
  private stopped = false;
  /** The speaker's start failure while it is retried (status, readiness). */
  private speakerError: string | null = null;
  private retryTimer: NodeJS.Timeout | undefined;
  /** Learned routes of an earlier run (holdStale), not yet replaced or released: each stays until
   * its peer's session is up again and has sent its whole table (End-of-RIB), its peer is no
   * longer configured, or the hold ends. A prefix the speaker learns afresh uses the fresh route. */
  private held: LearnedRoute[] = [];
  private heldTimer: NodeJS.Timeout | undefined;
  /** What the plan in force was made from (recheckSecrets makes it again). */
  private planInputs: { snapshot: ClusterSnapshot; given?: Pick<BgpPlanOptions, 'exports' | 'learnedExport'> } | null = null;
  private secretsRead = new Map<string, { name: string; key: string; value: string | undefined }>();

  constructor(private readonly options: BgpAgentOptions) {}

  /**
   * At a restart: `routes`, the learned routes the earlier run's last model had (the model cache),
   * are in use from now on, marked stale, as RFC 4724's restarting speaker keeps its forwarding
   * state: each until its peer is back and has said End-of-RIB (then the peer's own table is what
   * counts: a prefix it no longer sends goes), its peer leaves the configuration, or `ms` is over
   * (a peer that does not come back). learned() includes them at once.
   */
  holdStale(routes: readonly LearnedRoute[], ms: number): void {
    if (this.heldTimer) clearTimeout(this.heldTimer);
    this.held = [...routes];
    if (!this.held.length) return;
    this.options.log(`bgp: holding ${this.held.length} learned route(s) of the earlier run (model cache), each until its peer has sent its table again (End-of-RIB), at most ${Math.round(ms / 1000)} s: ${this.held.slice(0, 5).map((r) => `${r.prefix} via ${r.nextHop}`).join(', ')}${this.held.length > 5 ? ', ...' : ''}`);
    this.heldTimer = setTimeout(() => {
      this.heldTimer = undefined;
      if (this.held.length) this.options.log(`bgp: hold over: dropping ${this.held.length} learned route(s) of the earlier run that no peer brought again: ${this.held.slice(0, 5).map((r) => `${r.prefix} from ${r.peer}`).join(', ')}${this.held.length > 5 ? ', ...' : ''}`);
      this.held = [];
      this.publish(true);
    }, ms);
    this.heldTimer.unref?.();
    this.best = mergeHeld([], this.held);
  }

  /** Whether a plan is in force (a snapshot, or the model cache's settings, was taken). */
  hasPlan(): boolean {
    return this.plan !== null;
  }

  /** The routes in use (one per prefix). */
  learned(): readonly LearnedRoute[] {
    return this.best;
  }

  /**
   * Applies a snapshot (`given`: the model cache's exports and learned-route policy, which its
   * snapshot cannot give). Throws (nothing changed) when this node has no plan, e.g. no address yet;
   * the previous plan then stays in force, as the dataplane keeps its last good model.
   */
  update(snapshot: ClusterSnapshot, given?: Pick<BgpPlanOptions, 'exports' | 'learnedExport'>): string {
    if (this.stopped) return '';
    // The secrets this plan reads, with what they held (undefined: not there): recheckSecrets
    // makes the plan again when one of them changes (a rotated password, one that appears).
    const read = new Map<string, { name: string; key: string; value: string | undefined }>();
    const resolve = this.options.resolveSecret;
    const resolveSecret = resolve && ((name: string, key: string) => {
      const value = resolve(name, key);
      read.set(`${name}/${key}`, { name, key, value });
      return value;
    });
    const plan = computeBgpPlan(snapshot, this.options.node, { ...this.options, ...(given ?? {}), ...(resolveSecret ? { resolveSecret } : {}) });
    // Secrets that hold something else than at the last plan (rotated, appeared, gone): said first,
    // whether a datastore change or the --bgp-secrets watch (recheckSecrets) made this plan.
    const secretsChanged = [...read.entries()].filter(([ref, r]) => this.secretsRead.has(ref) && this.secretsRead.get(ref)!.value !== r.value).map(([ref]) => ref);
    const secretsSaid = (said: string) => (secretsChanged.length ? `secret${secretsChanged.length > 1 ? 's' : ''} ${secretsChanged.join(', ')} changed: ${said || 'no peer uses it now'}` : said);
    this.secretsRead = read;
    this.planInputs = { snapshot, ...(given ? { given } : {}) };
    const warningsKey = plan.warnings.join('\n');
    if (warningsKey !== this.warningsKey) for (const w of plan.warnings) this.options.log(`bgp: ${w}`, 'warn');
    this.warningsKey = warningsKey;
    const previous = this.plan;
    this.plan = plan;
    if (!this.speaker || !previous || !speakerOptionsEqual(previous.speaker, plan.speaker)) {
      this.replaceSpeaker(plan);
      return previous ? secretsSaid('speaker settings changed (speaker restarted)') : '';
    }
    this.speaker.setPeers(plan.peers.map(toPeerConfig));
    this.speaker.setExports([...plan.exports]);
    this.speaker.setLearnedExportPolicy(plan.learnedExport);
    return secretsSaid(describePlanChange(previous, plan));
  }

  /** The secrets (name, key) the plan in force read, for a watcher of --bgp-secrets. */
  secretsInUse(): { name: string; key: string }[] {
    return [...this.secretsRead.values()].map(({ name, key }) => ({ name, key }));
  }

  /**
   * Reads the secrets the plan in force read again; when one holds something else now (a rotated
   * password, a secret that appeared or went), makes the plan again from the same snapshot, as a
   * datastore change would (the peer whose password changed has its session reset with the new
   * one). Returns what it did, for the log ('' when every secret is as it was).
   */
  recheckSecrets(): string {
    const resolve = this.options.resolveSecret;
    if (this.stopped || !resolve || !this.planInputs) return '';
    const changed = [...this.secretsRead.entries()].filter(([, r]) => resolve(r.name, r.key) !== r.value).map(([ref]) => ref);
    if (!changed.length) return '';
    const { snapshot, given } = this.planInputs;
    try {
      // update() says which secrets changed, as it does when a datastore change reads them first.
      return this.update(snapshot, given);
    } catch (e) {
      return `secret${changed.length > 1 ? 's' : ''} ${changed.join(', ')} changed; the plan cannot be made again (${(e as Error).message}), the last one kept`;
    }
  }

  status(): NodeStatus {
    const plan = this.plan;
    const live = new Map<string, BgpPeerStatus>();
    for (const s of this.speaker?.status() ?? []) live.set(s.address, s);
    const listenerErrors = this.speakerError === null ? this.speaker?.listenerErrors() ?? [] : [];
    const peers = (plan?.peers ?? []).map((p): NodeStatusPeer => {
      const s = live.get(p.address);
      const bgpState: BgpState = s?.state ?? 'Idle';
      // The speaker's info is the state, with the last error while not Established ("Active (last: ...)"),
      // and the routes held for the peer while it restarts.
      const stale = s?.staleRoutes ?? 0;
      const held = stale > 0 ? `; graceful restart: keeping ${stale} route${stale === 1 ? '' : 's'}${s?.staleUntil ? ` until ${s.staleUntil.toISOString()}` : ''}` : '';
      const info = (s?.info || bgpState) + held;
      return {
        address: p.address, type: p.type, name: p.name, asNumber: p.asNumber,
        state: bgpState === 'Established' ? 'up' : 'start',
        since: (s?.since ?? new Date()).toISOString(), info, bgpState,
        messagesIn: s?.messagesIn ?? 0, messagesOut: s?.messagesOut ?? 0, updatesIn: s?.updatesIn ?? 0, updatesOut: s?.updatesOut ?? 0,
        prefixesReceived: s?.prefixesReceived ?? 0, prefixesAccepted: s?.prefixesAccepted ?? 0, staleRoutes: stale,
      };
    });
    return {
      enabled: true, node: this.options.node, asNumber: plan?.speaker.localAs ?? null, routerId: plan?.speaker.routerId ?? null,
      peers, exported: plan?.exports.length ?? 0, learned: this.best.length, speakerError: this.speakerError,
      ...(listenerErrors.length ? { listenerErrors } : {}),
      ...(plan?.warnings.length ? { warnings: [...plan.warnings] } : {}),
    };
  }

  /** Stops the speaker; `graceful` (default true): peers keep our routes for the restart time (a
   * restart, not a withdrawal), as BgpSpeaker.stop's option of the same name. */
  stop({ graceful = true }: { graceful?: boolean } = {}): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    if (this.heldTimer) clearTimeout(this.heldTimer);
    if (this.retryTimer) clearTimeout(this.retryTimer);
    const speaker = this.speaker;
    this.speaker = null;
    this.chain = this.chain.then(() => speaker?.stop({ graceful })).catch((e) => this.options.log(`bgp: stop: ${(e as Error).message}`));
    return this.chain;
  }

  private replaceSpeaker(plan: BgpPlan): void {
    const old = this.speaker;
    const speaker = this.options.createSpeaker({ ...plan.speaker });
    this.speaker = speaker;
    if (this.retryTimer) clearTimeout(this.retryTimer);
    this.retryTimer = undefined;
    this.speakerError = null;
    speaker.on('routes', () => this.routesChanged(speaker));
    speaker.on('error', (e: unknown) => this.options.log(`bgp: ${e instanceof Error ? e.message : String(e)}`, 'warn'));
    speaker.setPeers(plan.peers.map(toPeerConfig));
    speaker.setExports([...plan.exports]);
    speaker.setLearnedExportPolicy(plan.learnedExport);
    this.chain = this.chain.then(async () => {
      if (old) {
        this.options.log('bgp: speaker settings changed; restarting the speaker');
        await old.stop({ graceful: false }).catch((e) => this.options.log(`bgp: stop: ${(e as Error).message}`, 'warn'));
      }
    });
    // a backoff of its own per speaker: a replaced one starts again from the first wait
    this.startSpeaker(speaker, new Backoff(this.retryMs()));
    this.routesChanged(speaker);
  }

  /** The speaker's start retry: first wait and longest (ms). */
  private retryMs(): { first: number; max: number } {
    return this.options.retryMs ?? { first: 1000, max: 30_000 };
  }

  /**
   * Starts `speaker` (after the chain's earlier stops). A start that fails (its listener: port 179
   * taken by a BIRD still running, an address not yet there) is logged as an error, shown in
   * status() (readiness), and tried again with backoff until it runs or the speaker is replaced:
   * a speaker that only dials out would leave the node half-peered.
   */
  private startSpeaker(speaker: BgpSpeaker, backoff: Backoff): void {
    const o = speaker.opts;
    this.chain = this.chain
      .then(async () => {
        if (this.speaker !== speaker || this.stopped) return; // replaced or stopped meanwhile
        await speaker.start();
        const again = this.speakerError !== null ? ' (after failing to start)' : '';
        this.speakerError = null;
        const plan = this.plan;
        this.options.log(`bgp: speaker up${again}: AS ${o.localAs}, router ID ${o.routerId}${o.clusterId ? `, route reflector cluster ${o.clusterId}` : ''}, ${plan?.peers.length ?? 0} peers, ${plan?.exports.length ?? 0} prefixes exported`);
      })
      .catch((e) => {
        if (this.speaker !== speaker || this.stopped) return;
        const wait = backoff.next();
        const message = (e as Error).message;
        if (this.speakerError !== message) this.options.log(`bgp: cannot start the speaker: ${message}; no BGP session runs until it starts (trying again every ${this.retryMs().max / 1000} s at most)`, 'error');
        this.speakerError = message;
        this.retryTimer = setTimeout(() => {
          this.retryTimer = undefined;
          this.startSpeaker(speaker, backoff);
        }, wait);
        this.retryTimer.unref?.();
      });
  }

  private routesChanged(speaker: BgpSpeaker): void {
    if (speaker !== this.speaker || this.stopped) return;
    if (this.timer) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.publish(false);
    }, this.options.settleMs ?? 20);
  }

  /** The speaker's best routes (with those still held), to onLearned when they changed. */
  private publish(holdOver: boolean): void {
    if (this.stopped) return;
    const speaker = this.speaker;
    if (!speaker && !holdOver) return;
    const fresh = speaker ? bestLearnedRoutes(speaker.learned()) : [];
    if (this.held.length && speaker && this.plan) {
      // A peer back with its whole table (or no longer configured): its held routes are released;
      // what it sent again is in `fresh`, what it did not is gone.
      const done = new Map<string, boolean>();
      const isDone = (peer: string) => {
        let d = done.get(peer);
        if (d === undefined) done.set(peer, (d = speaker.peerRibsComplete(peer) ?? true));
        return d;
      };
      const kept = this.held.filter((r) => !isDone(r.peer));
      if (kept.length !== this.held.length) {
        const freshPrefixes = new Set(fresh.map((r) => r.prefix));
        const released = this.held.filter((r) => isDone(r.peer));
        const gone = released.filter((r) => !freshPrefixes.has(r.prefix));
        const peers = [...new Set(released.map((r) => r.peer))];
        this.options.log(`bgp: ${peers.join(', ')} sent ${peers.length > 1 ? 'their tables' : 'its table'} again (End-of-RIB) or left: ${released.length} held route(s) of the earlier run released, ${gone.length} of them not brought again and dropped${gone.length ? `: ${gone.slice(0, 5).map((r) => r.prefix).join(', ')}${gone.length > 5 ? ', ...' : ''}` : ''}`);
        this.held = kept;
        if (!kept.length && this.heldTimer) {
          clearTimeout(this.heldTimer);
          this.heldTimer = undefined;
        }
      }
    }
    const best = mergeHeld(fresh, this.held);
    const complete = !!speaker && speaker.ribsComplete() && this.held.length === 0;
    if (learnedEqual(best, this.best) && complete === this.complete) return;
    this.best = best;
    this.complete = complete;
    this.options.onLearned(best, complete);
  }
}

/** The fresh routes and, for prefixes they lack, the held ones, sorted by prefix (as bestLearnedRoutes). */
function mergeHeld(fresh: readonly LearnedRoute[], held: readonly LearnedRoute[]): LearnedRoute[] {
  if (!held.length) return [...fresh];
  const have = new Set(fresh.map((r) => r.prefix));
  const out = [...fresh];
  const seen = new Set<string>();
  for (const r of held) {
    if (have.has(r.prefix) || seen.has(r.prefix)) continue;
    seen.add(r.prefix);
    out.push(r);
  }
  return out.sort((a, b) => (a.prefix < b.prefix ? -1 : a.prefix > b.prefix ? 1 : 0));
}

/**
 * What a new plan changed for the speaker, for the log line of a datastore change that leaves the
 * forwarding model as it was ('' when nothing): peers added, removed, or whose settings changed
 * (their session is reset: Cease, configuration change), and the exported prefixes.
 */
export function describePlanChange(previous: BgpPlan, plan: BgpPlan): string {
  const before = new Map(previous.peers.map((p) => [p.address, JSON.stringify(toPeerConfig(p))]));
  const after = new Map(plan.peers.map((p) => [p.address, JSON.stringify(toPeerConfig(p))]));
  const added = [...after.keys()].filter((a) => !before.has(a));
  const removed = [...before.keys()].filter((a) => !after.has(a));
  const changedAll = [...after.keys()].filter((a) => before.has(a) && before.get(a) !== after.get(a));
  // Only its BGPFilters changed: the speaker keeps the session and judges the routes again.
  const unfiltered = (peers: BgpPlan['peers'], a: string) => JSON.stringify({ ...toPeerConfig(peers.find((p) => p.address === a)!), filters: undefined });
  const refiltered = changedAll.filter((a) => unfiltered(previous.peers, a) === unfiltered(plan.peers, a));
  const changed = changedAll.filter((a) => !refiltered.includes(a));
  const parts: string[] = [];
  if (added.length) parts.push(`peer${added.length > 1 ? 's' : ''} ${added.join(', ')} added`);
  if (removed.length) parts.push(`peer${removed.length > 1 ? 's' : ''} ${removed.join(', ')} removed`);
  if (changed.length) parts.push(`peer${changed.length > 1 ? 's' : ''} ${changed.join(', ')} changed (session reset)`);
  if (refiltered.length) parts.push(`BGPFilters of peer${refiltered.length > 1 ? 's' : ''} ${refiltered.join(', ')} changed (routes judged again, session kept)`);
  const key = (e: BgpPlan['exports'][number]) => JSON.stringify(e);
  const exportsBefore = new Set(previous.exports.map(key));
  const exportsAfter = new Set(plan.exports.map(key));
  if (exportsBefore.size !== exportsAfter.size || [...exportsAfter].some((e) => !exportsBefore.has(e))) parts.push(`exports ${previous.exports.length} -> ${plan.exports.length} prefixes`);
  // (The policy's blocks move with the exports; its pools are news of their own.)
  if (JSON.stringify(previous.learnedExport.pools) !== JSON.stringify(plan.learnedExport.pools)) parts.push('the IP pools of the learned-route export filter changed');
  return parts.join('; ');
}

function toPeerConfig(p: BgpPlan['peers'][number]) {
  const { type: _type, name: _name, source: _source, ...config } = p;
  return config;
}

