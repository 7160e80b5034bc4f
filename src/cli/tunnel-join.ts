/**
 * When `podway run` reconciles the node's tunnel addresses (VXLAN, IPIP) again (calico-node's allocateip
 * keeps doing it too, on pool and node updates): a pool turned to VXLAN (or IPIP) after this node
 * registered, or one that starts selecting it (its nodeSelector edited, the node's labels changed),
 * needs a tunnel address now; the last VXLAN pool of a family gone (or no longer VXLAN, or no
 * longer selecting this node), or the last IPIP pool, has its address released and cleared. The join (control/tunnel-addrs.ts) is idempotent; this decides when to run it, one at
 * a time, after a model is applied.
 */
import type { NodeDataplaneModel } from '../control';
import { Backoff } from '../util/backoff';

/**
 * The model's tunnel addresses disagree with its pools: a kind (IPv4 VXLAN, IPv6 VXLAN, IPIP) that
 * a pool calls for on this node (PoolModel.tunnelAddr: it selects this node's labels and allows
 * Tunnel use) and the node has none, or that the node has and no pool calls for (allocateip then
 * releases it). Felix's view of the pools (disabled ones included) stands for allocateip's here;
 * the join applies allocateip's rules, except that an address in a disabled VXLAN pool is kept
 * there too (tunnel-addrs.ts): a restart then keeps what the running node kept, and peers keep
 * their route to this node's blocks in the disabled pool. A model cached by an older podway has
 * no tunnelAddr: every pool of the encapsulation counts, as it did then.
 */
export function tunnelAddressesStale(m: NodeDataplaneModel): boolean {
  const wants = (pools: readonly { encap: string; tunnelAddr?: boolean }[], encap: string) =>
    pools.some((p) => p.encap === encap && p.tunnelAddr !== false);
  const vxlan = wants(m.pools, 'vxlan');
  const ipip = wants(m.pools, 'ipip');
  const vxlan6 = wants(m.v6.pools, 'vxlan');
  return vxlan !== (m.node.vtepIp !== null) || ipip !== ((m.node.ipipTunnelIp ?? null) !== null)
    || (vxlan6 ? m.v6.ip6 !== null && m.v6.vtepIp6 === null : m.v6.vtepIp6 !== null);
}

/**
 * What the join's outcome depends on, as far as the model shows it: the pools (a disabled one is
 * in the model too, and whether each calls for a tunnel address here: its nodeSelector against
 * this node's labels, its allowedUses) and the node's addresses, tunnel addresses included.
 */
function joinInputs(m: NodeDataplaneModel): string {
  return JSON.stringify([m.pools, m.v6.pools, m.node.ip, m.v6.ip6, m.node.vtepIp, m.v6.vtepIp6, m.node.ipipTunnelIp ?? null]);
}

export class TunnelAddressJoin {
  private running: Promise<void> | null = null;
  private stopped = false;
  /**
   * The inputs (joinInputs) of the last join that succeeded. A join can succeed and still leave
   * the model stale: a node with no tunnel address whose only VXLAN pools are disabled gets none
   * (nothing to assign from), or whose only selecting pool has a nodeSelector that cannot be
   * parsed. Joining again on every apply would only repeat it, so it runs again when these inputs
   * change (a pool enabled, a nodeSelector edited, the node's labels changed: each is a new model). Forgotten once a model is not stale: an
   * address cleared later (an operator, `ipam release`) with the same inputs is joined for again.
   */
  private joinedFor: string | null = null;
  /** Joins started (for status and tests). */
  runs = 0;
  /** The last model applied, and the timer that joins for it again after a failed join (a quiet
   * cluster sends no new model to retry with). */
  private last: NodeDataplaneModel | null = null;
  private retryTimer: NodeJS.Timeout | null = null;
  /** The wait before joining again after a failure; reset by a join that succeeds or a model that is not stale. */
  private readonly backoff: Backoff;

  constructor(
    /** The join: reconciles the Node's tunnel addresses in the datastore (a new model follows a change). */
    private readonly join: () => Promise<void>,
    private readonly onError: (e: Error) => void,
    /** Wait before joining again after a failure: first, doubling up to max (ms). */
    retryMs: { first: number; max: number } = { first: 1000, max: 60_000 },
  ) {
    this.backoff = new Backoff(retryMs);
  }

  /** A model was applied: join again when its tunnel addresses look stale (not while one runs, and
   * not again for the same inputs as the last successful join: joinedFor). */
  applied(m: NodeDataplaneModel): void {
    if (this.stopped) return;
    this.last = m;
    if (this.running) {
      // looked at when the running join ends (its outcome may already answer it)
      this.waiting = m;
      return;
    }
    if (this.retryTimer) clearTimeout(this.retryTimer);
    this.retryTimer = null;
    if (!tunnelAddressesStale(m)) {
      this.joinedFor = null;
      this.backoff.reset();
      return;
    }
    const inputs = joinInputs(m);
    if (inputs === this.joinedFor) return;
    this.runs++;
    this.running = this.join()
      .then(
        () => {
          this.joinedFor = inputs;
          this.backoff.reset();
        },
        (e) => {
          this.onError(e as Error);
          this.scheduleRetry();
        },
      )
      .finally(() => {
        this.running = null;
        const next = this.waiting;
        this.waiting = null;
        if (next) this.applied(next);
      });
  }

  /** The last model applied while a join ran. */
  private waiting: NodeDataplaneModel | null = null;

  /** The join running now has ended (resolves at once when none runs). */
  async idle(): Promise<void> {
    while (this.running) await this.running;
  }

  /** After a failed join: the last model again after a backoff, unless a newer one comes first. */
  private scheduleRetry(): void {
    if (this.stopped) return;
    const wait = this.backoff.next();
    this.retryTimer = setTimeout(() => {
      this.retryTimer = null;
      if (this.last && !this.running) this.applied(this.last);
    }, wait);
    this.retryTimer.unref?.();
  }

  stop(): void {
    this.stopped = true;
    if (this.retryTimer) clearTimeout(this.retryTimer);
    this.retryTimer = null;
  }
}
