/**
 * The reverse-path filtering a Calico node's kernel applies to what its tunnel devices decapsulate.
 * Felix sets rp_filter on workload (cali) interfaces only; vxlan.calico and tunl0 take
 * net.ipv4.conf.default.rp_filter when they are made, and the kernel uses the larger of the
 * device's and net.ipv4.conf.all.rp_filter (IN_DEV_RPFILTER). podway has no such devices, so it
 * reads both values once at start in its own network namespace (the node's) and filters
 * decapsulated IPv4 as the kernel would (Pipeline.rpFilter): 0 off, 1 strict, 2 loose.
 */
import { readFileSync } from 'node:fs';

export const RP_FILTER_DIR = '/proc/sys/net/ipv4/conf';

/** One rp_filter file's text ("1\n"): 0, 1 or 2; a clear error naming the file otherwise. */
export function parseRpFilter(text: string, file: string): number {
  const m = /^\s*([0-2])\s*$/.exec(text);
  if (!m) throw new Error(`${file}: "${text.trim()}" is not an rp_filter value (0, 1 or 2)`);
  return Number(m[1]);
}

/** max(all, default) under `dir`; 0 (the kernel's default) where the files do not exist (no IPv4). */
export function readTunnelRpFilter(dir = RP_FILTER_DIR): number {
  let v = 0;
  for (const which of ['all', 'default']) {
    const file = `${dir}/${which}/rp_filter`;
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') continue;
      throw new Error(`${file}: ${(e as Error).message}`);
    }
    v = Math.max(v, parseRpFilter(text, file));
  }
  return v;
}
