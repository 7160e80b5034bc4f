/**
 * The pipeline's view of natOutgoing: which pod sources the kernel will masquerade when podway hands
 * their egress to it (see nft-nat.ts, which does the translation). The pipeline only counts and
 * traces those packets; one short loop over the NAT pools per egress packet, typed arrays.
 */
export class NatSources {
  private addr = new Uint32Array(0);
  private mask = new Uint32Array(0);

  /** Pools with natOutgoing: true (address, prefix length). */
  set(pools: readonly { addr: number; prefixLen: number }[]): void {
    this.addr = Uint32Array.from(pools, (p) => p.addr >>> 0);
    this.mask = Uint32Array.from(pools, (p) => (p.prefixLen === 0 ? 0 : (0xffffffff << (32 - p.prefixLen)) >>> 0));
  }

  has(src: number): boolean {
    for (let k = 0; k < this.addr.length; k++) if (((src & this.mask[k]) >>> 0) === this.addr[k]) return true;
    return false;
  }
}
