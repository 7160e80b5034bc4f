/**
 * Flow steering between forwarding threads (`podway run --workers N`): which worker's socket takes
 * a frame. Each worker's AF_PACKET socket on an interface carries a classic BPF filter that accepts
 * exactly the frames whose flow index is its own, so every frame is taken by exactly one worker.
 *
 * The index is a symmetric hash of the innermost IPv4/IPv6 header: the two addresses XORed, and for
 * unfragmented TCP and UDP the two ports XORed in, folded to 16 bits, multiplied by 0x9e3779b1 and
 * reduced `% count`. Symmetric and taken inside the tunnel, so a pod's request (read on its veth)
 * and the reply to it (read on the underlay, inside VXLAN over IPv4 or IPv6, IPIP, or plain when
 * routed directly) are handled by the SAME worker. PACKET_FANOUT_HASH, used before, hashed the
 * outer headers on the underlay: the reply of a flow went to another thread half of the time, which
 * then had to be woken from its own poll for it, where one thread is usually still running (or
 * preempted, runnable) when the reply comes and takes it without a wake-up (bench/README.md,
 * "Forwarding threads: a request and its reply on one thread"). A fanout group cannot do this: its
 * index picks a member by join order, which differs between the pod's group and the underlay's.
 *
 * Frames that are not IP, or too short for the headers, go to worker 0 (which the pipeline then
 * drops and counts, if it must). Nothing here drops a frame the filter without steering would take.
 */
import { assembleBpf, Bpf, type BpfInsn } from './bpf';

export interface Steer { index: number; count: number }

/** Multiplier of the 16-bit folded hash (Knuth's golden ratio): spreads nearby values apart. */
const MIX = 0x9e3779b1;
/** Snap length when a frame is taken: whole (the ring's slot or block cuts it if it must). */
const WHOLE = 0xffffffff;

/**
 * Builds the steering part of a filter program. Sections are added on demand (`ip4(L)`: an IPv4
 * header at byte L, `ip6(L)`, `ether(E)`: an Ethernet type at E and its IP header after it); each
 * leaves the hash in M[0] and jumps to the common tail, which accepts (jumps to `accept`) when
 * the index is this worker's, else jumps to `drop`. `accept` and `drop` must come after
 * `code()` in the program (classic BPF only jumps forward).
 */
export class SteerBuilder {
  private readonly sections = new Map<string, BpfInsn[]>();
  constructor(private readonly s: Steer, private readonly accept: string, private readonly drop: string) {
    if (!(s.count >= 2 && s.index >= 0 && s.index < s.count && Number.isInteger(s.index) && Number.isInteger(s.count))) throw new RangeError(`steer: worker ${s.index} of ${s.count}`);
  }

  /** Label of the "worker 0 takes it" tail. */
  zero(): string {
    return 'steer_zero';
  }

  /** An IPv4 header at byte L: addresses, and the ports of an unfragmented TCP/UDP packet. */
  ip4(L: number): string {
    const n = `steer_ip4_${L}`;
    if (this.sections.has(n)) return n;
    const { mix, zero } = local(n);
    this.sections.set(n, [
      n,
      [Bpf.LD_W_LEN, 0, 0, 0], [Bpf.JGE_K, 0, zero, L + 20],
      [Bpf.LD_W_ABS, 0, 0, L + 12], [Bpf.TAX, 0, 0, 0], [Bpf.LD_W_ABS, 0, 0, L + 16], [Bpf.XOR_X, 0, 0, 0], [Bpf.ST, 0, 0, 0],
      [Bpf.LD_H_ABS, 0, 0, L + 6], [Bpf.JSET_K, mix, 0, 0x3fff], // a fragment: addresses only (later ones carry no ports)
      [Bpf.LD_B_ABS, 0, 0, L + 9], [Bpf.JEQ_K, `${n}_ports`, 0, 6], [Bpf.JEQ_K, `${n}_ports`, mix, 17],
      `${n}_ports`,
      [Bpf.LDX_MSH, 0, 0, L], [Bpf.TXA, 0, 0, 0], [Bpf.ADD_K, 0, 0, L + 4], [Bpf.TAX, 0, 0, 0], [Bpf.LD_W_LEN, 0, 0, 0], [Bpf.JGE_X, 0, mix, 0],
      [Bpf.LDX_MSH, 0, 0, L], [Bpf.LD_W_IND, 0, 0, L], ...PORTS,
      mix, [Bpf.JA, 0, 0, 'steer_mix'],
      zero, [Bpf.JA, 0, 0, 'steer_zero'],
    ]);
    return n;
  }

  /** An IPv6 header at byte L: addresses, and the ports when TCP/UDP follows it directly. */
  ip6(L: number): string {
    const n = `steer_ip6_${L}`;
    if (this.sections.has(n)) return n;
    const { mix, zero } = local(n);
    const words: BpfInsn[] = [[Bpf.LD_W_ABS, 0, 0, L + 8]];
    for (let o = 12; o < 40; o += 4) words.push([Bpf.TAX, 0, 0, 0], [Bpf.LD_W_ABS, 0, 0, L + o], [Bpf.XOR_X, 0, 0, 0]);
    this.sections.set(n, [
      n,
      [Bpf.LD_W_LEN, 0, 0, 0], [Bpf.JGE_K, 0, zero, L + 40],
      ...words, [Bpf.ST, 0, 0, 0],
      [Bpf.LD_B_ABS, 0, 0, L + 6], [Bpf.JEQ_K, `${n}_ports`, 0, 6], [Bpf.JEQ_K, `${n}_ports`, mix, 17],
      `${n}_ports`,
      [Bpf.LD_W_LEN, 0, 0, 0], [Bpf.JGE_K, 0, mix, L + 44],
      [Bpf.LD_W_ABS, 0, 0, L + 40], ...PORTS,
      mix, [Bpf.JA, 0, 0, 'steer_mix'],
      zero, [Bpf.JA, 0, 0, 'steer_zero'],
    ]);
    return n;
  }

  /** An Ethernet type at byte E (a frame's, or inside VXLAN): its IPv4/IPv6 header; else worker 0. */
  ether(E: number): string {
    const n = `steer_eth_${E}`;
    if (this.sections.has(n)) return n;
    const ip4 = this.ip4(E + 2);
    const ip6 = this.ip6(E + 2);
    this.sections.set(n, [
      n,
      [Bpf.LD_W_LEN, 0, 0, 0], [Bpf.JGE_K, 1, 0, E + 2], [Bpf.JA, 0, 0, 'steer_zero'],
      [Bpf.LD_H_ABS, 0, 0, E],
      ...jeqFar(0x0800, ip4), ...jeqFar(0x86dd, ip6),
      [Bpf.JA, 0, 0, 'steer_zero'],
    ]);
    return n;
  }

  /** Every section asked for, then the common tail. */
  code(): BpfInsn[] {
    // sections that others jump into come after them: ether() registers its ip4/ip6 first, so put
    // the Ethernet dispatchers first
    const order = [...this.sections.keys()].sort((a, b) => Number(b.startsWith('steer_eth_')) - Number(a.startsWith('steer_eth_')));
    return [
      ...order.flatMap((k) => this.sections.get(k)!),
      'steer_mix',
      [Bpf.LD_MEM, 0, 0, 0], [Bpf.TAX, 0, 0, 0], [Bpf.RSH_K, 0, 0, 16], [Bpf.XOR_X, 0, 0, 0], [Bpf.AND_K, 0, 0, 0xffff],
      [Bpf.MUL_K, 0, 0, MIX], [Bpf.RSH_K, 0, 0, 16], [Bpf.MOD_K, 0, 0, this.s.count],
      [Bpf.JEQ_K, 0, 1, this.s.index], [Bpf.JA, 0, 0, this.accept], [Bpf.JA, 0, 0, this.drop],
      'steer_zero',
      [Bpf.JA, 0, 0, this.s.index === 0 ? this.accept : this.drop],
    ];
  }
}

/** A word of two ports in A: (sport ^ dport) & 0xffff XORed into M[0]. */
const PORTS: BpfInsn[] = [
  [Bpf.TAX, 0, 0, 0], [Bpf.RSH_K, 0, 0, 16], [Bpf.XOR_X, 0, 0, 0], [Bpf.AND_K, 0, 0, 0xffff],
  [Bpf.TAX, 0, 0, 0], [Bpf.LD_MEM, 0, 0, 0], [Bpf.XOR_X, 0, 0, 0], [Bpf.ST, 0, 0, 0],
];

function local(n: string) {
  return { mix: `${n}_mix`, zero: `${n}_zero` };
}

/** A == k: jump to a label at any distance (a short conditional jump over a `ja`). */
export function jeqFar(k: number, label: string): BpfInsn[] {
  return [[Bpf.JEQ_K, 0, 1, k], [Bpf.JA, 0, 0, label]];
}

/** The filter of a veth pod's socket for worker `s.index`: its share of the pod's flows. */
export function podSteerFilter(s: Steer): Uint8Array {
  const b = new SteerBuilder(s, 'accept', 'drop');
  return assembleBpf([
    [Bpf.JA, 0, 0, b.ether(12)],
    ...b.code(),
    'accept', [Bpf.RET_K, 0, 0, WHOLE],
    'drop', [Bpf.RET_K, 0, 0, 0],
  ]);
}

/**
 * The flow index of a frame, as the filters compute it (for tests and tools; never on the packet
 * path). `tunnel`: the frame came from the underlay, where VXLAN (UDP to `vxlanPort`, outer IPv4
 * without options or IPv6) and IPIP (outer IPv4 without options) are looked into.
 */
export function steerIndex(f: Uint8Array, count: number, tunnel?: { vxlanPort: number }): number {
  const len = f.length;
  const w = (o: number) => ((f[o] << 24) | (f[o + 1] << 16) | (f[o + 2] << 8) | f[o + 3]) >>> 0;
  const h16 = (o: number) => (f[o] << 8) | f[o + 1];
  const mix = (h: number) => {
    const v = ((h ^ (h >>> 16)) & 0xffff) >>> 0;
    return ((Math.imul(v, MIX) >>> 0) >>> 16) % count;
  };
  const ports = (o: number) => { const p = w(o); return (p ^ (p >>> 16)) & 0xffff; };
  const ip4 = (L: number): number => {
    if (len < L + 20) return 0;
    let h = (w(L + 12) ^ w(L + 16)) >>> 0;
    const proto = f[L + 9];
    if ((h16(L + 6) & 0x3fff) === 0 && (proto === 6 || proto === 17)) {
      const ihl = (f[L] & 15) * 4;
      if (len >= L + ihl + 4) h = (h ^ ports(L + ihl)) >>> 0;
    }
    return mix(h);
  };
  const ip6 = (L: number): number => {
    if (len < L + 40) return 0;
    let h = 0;
    for (let o = 8; o < 40; o += 4) h = (h ^ w(L + o)) >>> 0;
    const nh = f[L + 6];
    if ((nh === 6 || nh === 17) && len >= L + 44) h = (h ^ ports(L + 40)) >>> 0;
    return mix(h);
  };
  const ether = (E: number): number => {
    if (len < E + 2) return 0;
    const t = h16(E);
    return t === 0x0800 ? ip4(E + 2) : t === 0x86dd ? ip6(E + 2) : 0;
  };
  if (!tunnel || len < 14) return ether(12);
  const t = h16(12);
  if (t === 0x0800 && len >= 34 && f[14] === 0x45 && (h16(20) & 0x3fff) === 0) {
    if (f[23] === 4) return ip4(34);
    if (f[23] === 17 && h16(36) === tunnel.vxlanPort) return ether(62);
  }
  if (t === 0x86dd && len >= 58 && f[20] === 17 && h16(56) === tunnel.vxlanPort) return ether(82);
  return ether(12);
}
