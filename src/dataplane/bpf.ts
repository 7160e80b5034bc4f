/**
 * A small classic BPF assembler for the AF_PACKET socket filters (host.ts underlayFilter,
 * steer.ts). An instruction is [code, jt, jf, k]; a string is a label. jt/jf may name a label (a
 * forward conditional jump, at most 255 instructions away: classic BPF's offsets are 8 bits), and
 * so may k of `ja` (BPF_JMP|BPF_JA, 32-bit offset). Output: struct sock_filter, 8 bytes each.
 */
export type BpfInsn = [number, number | string, number | string, number | string] | string;

/** Opcodes used here (linux/filter.h). */
export const Bpf = {
  LD_W_ABS: 0x20, LD_H_ABS: 0x28, LD_B_ABS: 0x30,
  LD_W_IND: 0x40, LD_H_IND: 0x48,
  LD_W_LEN: 0x80, //  A = frame length
  LD_MEM: 0x60, LDX_MEM: 0x61, ST: 0x02,
  LDX_MSH: 0xb1, //   X = 4 * (P[k] & 0xf): an IPv4 header's length
  ADD_K: 0x04, MUL_K: 0x24, AND_K: 0x54, RSH_K: 0x74, MOD_K: 0x94, XOR_X: 0xac,
  TAX: 0x07, TXA: 0x87,
  JA: 0x05, JEQ_K: 0x15, JGE_K: 0x35, JGE_X: 0x3d, JSET_K: 0x45,
  RET_K: 0x06,
} as const;

/** Resolve labels and encode. Throws on an unknown label, a backward jump or one out of reach. */
export function assembleBpf(prog: BpfInsn[]): Uint8Array {
  const labels = new Map<string, number>();
  const code: [number, number | string, number | string, number | string][] = [];
  for (const x of prog) {
    if (typeof x === 'string') {
      if (labels.has(x)) throw new Error(`bpf: label ${x} defined twice`);
      labels.set(x, code.length);
    } else code.push(x);
  }
  const out = new Uint8Array(code.length * 8);
  const dv = new DataView(out.buffer);
  code.forEach(([op, jt, jf, k], i) => {
    const rel = (j: number | string, max: number) => {
      if (typeof j === 'number') return j;
      const at = labels.get(j);
      if (at === undefined) throw new Error(`bpf: no label ${j}`);
      const d = at - i - 1;
      if (d < 0 || d > max) throw new Error(`bpf: jump to ${j} from ${i} is ${d} instructions (0..${max})`);
      return d;
    };
    dv.setUint16(i * 8, op, true);
    out[i * 8 + 2] = rel(jt, 255);
    out[i * 8 + 3] = rel(jf, 255);
    dv.setUint32(i * 8 + 4, typeof k === 'string' ? rel(k, 0xffff) : k >>> 0, true);
  });
  return out;
}
