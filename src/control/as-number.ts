// AS numbers as Calico reads them (libcalico-go numorstring.ASNumber): a JSON number, or a string
// holding a plain number ("64512") or asdot notation ("1.10" = 1 * 65536 + 10, each half 0-65535).
// Calico stores the number; podway stores what it accepted the same way (v3-store.ts).

/** The AS number a string stands for, or null when it is not one (out of range included). */
export function asNumberFromString(s: string): number | null {
  if (/^\d+$/.test(s)) {
    const n = Number(s);
    return n <= 4294967295 ? n : null;
  }
  const m = /^(\d+)\.(\d+)$/.exec(s);
  if (!m) return null;
  const hi = Number(m[1]);
  const lo = Number(m[2]);
  if (hi > 65535 || lo > 65535) return null;
  return hi * 65536 + lo;
}

/** A value as the schemas take it: a string that is an AS number becomes that number, anything
 * else is left for the number check to refuse (naming what it got). */
export function asNumberInput(v: unknown): unknown {
  if (typeof v !== 'string') return v;
  const n = asNumberFromString(v.trim());
  return n === null ? v : n;
}
