/**
 * `podway run`'s side of its node's liveness key on etcd (control/node-live.ts): the claims its
 * registrations make (join-thread.ts LiveClaimHandle: the registration's thread renews each until
 * it is handed over or revoked), the holder (address-store-thread.ts holdLiveness: NodeLiveness in
 * the Node address store's thread) and what the exit does to both.
 *
 * The exit's order is kept here: first the holder's stop flag (exitAsked: shared memory, read by
 * the holder before each grant and write, however busy its thread is), then the revokes (the
 * claims' through their threads, the holder's own at its close, a signal while starting through a
 * light client of this thread). A revoke the holder saw before its flag was set used to be taken
 * for an expiry: "its liveness lease ... expired: granting a new one", the key written again on a
 * new lease that outlived podway (other nodes took the node for running until that lease's TTL
 * passed). A claim that comes once the exit was asked (a registration under way at the stop) is
 * revoked, not held; the stop waits for those revokes (lateRevoked).
 */
import type { LiveClaimHandle } from './join';
import type { LiveRecord, LivenessStatus } from '../control/node-live';
import type { EtcdTlsFiles } from '../control/kv/etcd-common';

/** What RunLiveness uses of the holder (address-store-thread.ts NodeAddressStoreThread). */
export interface LivenessHolder {
  holdLiveness(record: LiveRecord, lease?: string | null): Promise<boolean>;
  setLiveAddresses(addresses: readonly string[]): void;
  liveStatus(): LivenessStatus | null;
  stopLiveness(): void;
  close(): Promise<void>;
  onLiveStatus: (s: LivenessStatus) => void;
}

export class RunLiveness {
  /** Whether the holder has the key (a claim handed to it, or held without one). */
  private held = false;
  /** The claims whose leases the registration's thread renews until the holder renewed them
   * itself (handed over: released) or the start ends (revoked), oldest first. */
  private readonly claims: LiveClaimHandle[] = [];
  /** The revokes of claims made once the exit was asked (a registration under way at the stop). */
  private readonly lateRevokes: Promise<unknown>[] = [];
  private exiting = false;

  constructor(
    private readonly node: string,
    private readonly holder: LivenessHolder,
    /** This run's record; its addresses: `addresses()`, the node's as last registered. */
    private readonly record: LiveRecord,
    private readonly addresses: () => readonly string[],
    private readonly log: { info(m: string): void; warn(m: string): void },
  ) {
    // The holder renewed a claimed lease: that claim and the older ones (whose leases it
    // replaced) are handed over; their threads renew them no more and end.
    holder.onLiveStatus = (st) => {
      const k = st.renewedLease === null ? -1 : this.claims.findIndex((c) => c.lease === st.renewedLease);
      for (const c of k < 0 ? [] : this.claims.splice(0, k + 1)) c.release();
    };
  }

  /** A registration claimed the key on `lease` (join.ts onLiveClaimed): the holder adopts it at once. */
  readonly onLiveClaimed = (lease: string, claim?: LiveClaimHandle): void => {
    if (this.exiting) {
      // Claimed as the run stopped (a re-registration under way, a start aborted): its claims
      // were revoked already, and the holder is closing; this one revoked too, not held.
      this.log.info(`node ${this.node}: its liveness key claimed on lease ${lease} as podway stopped: revoked`);
      if (claim) this.lateRevokes.push(claim.revoke().catch(() => undefined));
      return;
    }
    this.log.info(`node ${this.node}: its liveness key claimed on lease ${lease}: held from here`);
    if (claim) {
      this.claims.push(claim);
      // Its thread ended by itself (the lease found gone: etcd wiped or restored, or no renewal
      // got through for its TTL; the holder writes the key on a new lease): nothing to hand over.
      void claim.ended.then(() => {
        const k = this.claims.indexOf(claim);
        if (k >= 0) this.claims.splice(k, 1);
      });
    }
    this.held = true;
    this.holder.holdLiveness({ ...this.record, addresses: [...this.addresses()] }, lease)
      .catch((e: Error) => this.log.warn(`node ${this.node}: its liveness key could not be held: ${e.message}`));
  };

  /** Once registered: the key held until the stop, if no claim made the holder hold it already. */
  hold(): void {
    if (this.held || this.exiting) return;
    this.held = true;
    this.holder.holdLiveness({ ...this.record, addresses: [...this.addresses()] })
      .catch((e: Error) => this.log.warn(`node ${this.node}: its liveness key could not be held: ${e.message}`));
  }

  /** The node's registered addresses changed: the key's value follows (same lease). */
  addressesChanged(): void {
    if (this.held) this.holder.setLiveAddresses(this.addresses());
  }

  /**
   * podway exits (a stop, a signal while starting, a failed start): from here the holder grants
   * and writes nothing, and a claim still to come is revoked. Synchronous; called before anything
   * revokes a lease of this run (run.ts calls it as the start's abort begins).
   */
  exitAsked(): void {
    this.exiting = true;
    this.holder.stopLiveness();
  }

  /** The claimed leases not handed over yet, revoked by their threads (the exit asked first). */
  revokeClaims(): Promise<unknown> {
    this.exitAsked();
    return Promise.all(this.claims.splice(0).map((c) => c.revoke()));
  }

  /** The leases this thread knows of: the claims not handed over, the holder's. */
  leases(): string[] {
    return [...new Set([...this.claims.map((c) => c.lease), this.holder.liveStatus()?.lease].filter((l): l is string => typeof l === 'string'))];
  }

  /**
   * A signal while starting: the leases this thread knows of revoked through a light client of its
   * own (the registration's thread may be held for seconds by what it loads on a loaded machine),
   * and by their threads, and the holder closed (its own lease revoked), all at once: the holder's
   * flag is set first, so none of these revokes is taken for an expiry. Resolves once all answered
   * (the caller bounds it). Returns the leases it revoked here (none: the caller waits for the
   * start's registration, whose thread revokes what it claimed).
   */
  exitNow(etcd: { endpoints: readonly string[]; tls?: EtcdTlsFiles }): { leases: string[]; done: Promise<unknown> } {
    this.exitAsked();
    const leases = this.leases();
    const here = leases.length > 0 ? (async () => {
      const { EtcdLiteKv } = require('../control/kv/etcd-lite') as typeof import('../control/kv/etcd-lite');
      const kv = new EtcdLiteKv({ endpoints: [...etcd.endpoints], tls: etcd.tls });
      try {
        await Promise.all(leases.map((l) => kv.revokeLease(l)));
      } finally {
        await kv.close();
      }
    })() : Promise.resolve();
    return { leases, done: Promise.all([here, this.revokeClaims(), this.holder.close()]) };
  }

  /** The revokes of claims that came once the exit was asked, answered. */
  lateRevoked(): Promise<unknown> {
    return Promise.all(this.lateRevokes);
  }
}
