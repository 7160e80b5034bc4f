/**
 * When `podway run` reconciles the node's VXLAN tunnel addresses again (calico-node's allocateip
 * keeps doing it too): a pool turned to VXLAN after this node registered needs a tunnel address
 * now; the last VXLAN pool of a family gone (or no longer VXLAN) has its address released and
 * cleared. The join (control/tunnel-addrs.ts) is idempotent; this decides when to run it, one at
 * a time, after a model is applied.
 */
import type { NodeDataplaneModel } from '../control';

/**
 * The model's tunnel addresses disagree with its pools. Felix's view of the pools (disabled ones
 * included) stands for allocateip's here; the join applies allocateip's rules, except that an
 * address in a disabled VXLAN pool is kept there too (tunnel-addrs.ts): a restart then keeps what
 * the running node kept, and peers keep their route to this node's blocks in the disabled pool.
 */
export function tunnelAddressesStale(m: NodeDataplaneModel): boolean {
  return m.encap.vxlan !== (m.node.vtepIp !== null) || (m.v6.vxlan ? m.v6.ip6 !== null && m.v6.vtepIp6 === null : m.v6.vtepIp6 !== null);
}

export class TunnelAddressJoin {
  private running: Promise<void> | null = null;
  private stopped = false;
  /** Joins started (for status and tests). */
  runs = 0;

  constructor(
    /** The join: reconciles the Node's tunnel addresses in the datastore (a new model follows a change). */
    private readonly join: () => Promise<void>,
    private readonly onError: (e: Error) => void,
  ) {}

  /** A model was applied: join again when its tunnel addresses look stale (not while one runs). */
  applied(m: NodeDataplaneModel): void {
    if (this.stopped || this.running || !tunnelAddressesStale(m)) return;
    this.runs++;
    this.running = this.join()
      .catch((e) => this.onError(e as Error))
      .finally(() => (this.running = null));
  }

  /** The join running now has ended (resolves at once when none runs). */
  async idle(): Promise<void> {
    while (this.running) await this.running;
  }

  stop(): void {
    this.stopped = true;
  }
}
