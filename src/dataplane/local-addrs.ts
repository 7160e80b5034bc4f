/**
 * The node's own addresses as the kernel delivers to them: the entries of type `local` of its
 * `local` routing table (`ip route show table local type local`, IPv4 and IPv6). That is every
 * address of every interface that is up (lo, the underlay, a second NIC, a dummy, docker0 and
 * other bridges, kube-ipvs0's Service addresses), a whole prefix given to lo (127.0.0.0/8, or
 * 10.9.0.1/24 added to lo: the kernel answers for all of it) and AnyIP routes added by hand
 * (`ip route add local 192.0.2.0/24 dev lo table local`).
 *
 * Why the pipeline needs them: the kernel receives every frame a veth pod sends (podway reads the
 * veth with AF_PACKET, which does not take the frame away), and delivers a packet for any of these
 * addresses itself. podway handing its own copy to the node's routing too (tx4/tx6, looped back on
 * lo) delivered it twice: a UDP listener got each datagram twice, TCP saw each SYN twice. So a
 * veth pod's packet for one of them is left to the kernel (counted to_host, as for the node's main
 * address); a TAP or TUN pod's, which only podway receives, is still handed to the node's routing.
 *
 * Martian destinations (127.0.0.0/8, ::1, link-local fe80::/10, multicast) are left out: the
 * kernel does not deliver them from a pod's interface, and podway drops them (martian_dst) as
 * before. Lookups are per packet only on the path that already compares with the node's address
 * (no pod route for the destination): a binary search over the host addresses (/32, /128) and a
 * scan of the few shorter prefixes, no allocation.
 */
import { isMartianDst4, isMartianDst6 } from '../packet/martian';
import { parseIpv4 } from '../packet/ipv4';
import { parseIpv6Bytes } from '../packet/ipv6';
import { Prefixes6 } from './nat';
import { mask32, mask6Word } from '../lpm/cidr';

/** The local table's `local` entries as `ip` prints them ("10.0.0.1", "127.0.0.0/8", "fd00::1"). */
export interface LocalAddresses {
  v4: string[];
  v6: string[];
}

/** The `dst` of each `local` entry of `ip -j route show table local`'s output; throws on output
 * that is not that. */
export function parseLocalTable(json: string): string[] {
  const rows = JSON.parse(json) as { type?: string; dst?: string }[];
  if (!Array.isArray(rows)) throw new Error('not a list of routes');
  const out: string[] = [];
  for (const r of rows) if (r && r.type === 'local' && typeof r.dst === 'string') out.push(r.dst);
  return [...new Set(out)].sort();
}

/**
 * The entries the sets hold (LocalSet4/LocalSet6 keep them: loopback, link-local, multicast and
 * unreadable ones left out), as `ip` printed them: what status shows as the node's own addresses.
 */
export function keptLocalAddresses(local: LocalAddresses): LocalAddresses {
  const s4 = new LocalSet4();
  const s6 = new LocalSet6();
  return { v4: local.v4.filter((c) => s4.set([c]) > 0), v6: local.v6.filter((c) => s6.set([c]) > 0) };
}

/** Both families' entries the same (order-free), to tell a change. */
export function sameLocalAddresses(a: LocalAddresses | null, b: LocalAddresses | null): boolean {
  if (a === null || b === null) return a === b;
  const same = (x: string[], y: string[]) => x.length === y.length && x.every((v, k) => v === y[k]);
  return same(a.v4, b.v4) && same(a.v6, b.v6);
}

function split(cidr: string): [string, number | null] {
  const k = cidr.indexOf('/');
  return k < 0 ? [cidr, null] : [cidr.slice(0, k), Number(cidr.slice(k + 1))];
}

/** The IPv4 set: host addresses sorted (binary search), shorter prefixes scanned. */
export class LocalSet4 {
  private hosts = new Uint32Array(0);
  private addr = new Uint32Array(0);
  private mask = new Uint32Array(0);

  /** Take `cidrs` (martian ones and unreadable ones left out); returns how many were kept. */
  set(cidrs: readonly string[]): number {
    const hosts: number[] = [];
    const nets: [number, number][] = [];
    for (const c of cidrs) {
      const [a, len] = split(c);
      let ip: number;
      try {
        ip = parseIpv4(a) >>> 0;
      } catch {
        continue;
      }
      const l = len ?? 32;
      if (!Number.isInteger(l) || l < 0 || l > 32) continue;
      const m = mask32(l);
      const net = (ip & m) >>> 0;
      if (isMartianDst4(net)) continue;
      if (l === 32) hosts.push(net);
      else nets.push([net, m]);
    }
    this.hosts = Uint32Array.from(new Set(hosts)).sort();
    this.addr = Uint32Array.from(nets, (n) => n[0]);
    this.mask = Uint32Array.from(nets, (n) => n[1]);
    return this.hosts.length + nets.length;
  }

  get size(): number {
    return this.hosts.length + this.addr.length;
  }

  has(ip: number): boolean {
    const h = this.hosts;
    let lo = 0;
    let hi = h.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      const v = h[mid];
      if (v === ip) return true;
      if (v < ip) lo = mid + 1;
      else hi = mid;
    }
    for (let k = 0; k < this.addr.length; k++) if (((ip & this.mask[k]) >>> 0) === this.addr[k]) return true;
    return false;
  }
}

/** The IPv6 set: host addresses as four words each, sorted (binary search), shorter prefixes scanned. */
export class LocalSet6 {
  private hosts = new Uint32Array(0);
  private readonly nets = new Prefixes6();

  set(cidrs: readonly string[]): number {
    const hosts: [number, number, number, number][] = [];
    const nets: { w: [number, number, number, number]; prefixLen: number }[] = [];
    for (const c of cidrs) {
      const [a, len] = split(c);
      let b: Uint8Array;
      try {
        b = parseIpv6Bytes(a);
      } catch {
        continue;
      }
      const l = len ?? 128;
      if (!Number.isInteger(l) || l < 0 || l > 128) continue;
      const w: [number, number, number, number] = [0, 0, 0, 0];
      for (let j = 0; j < 4; j++) {
        w[j] = (((b[4 * j] << 24) | (b[4 * j + 1] << 16) | (b[4 * j + 2] << 8) | b[4 * j + 3]) & mask6Word(l, j)) >>> 0;
      }
      const net = new Uint8Array(16);
      for (let j = 0; j < 4; j++) { net[4 * j] = w[j] >>> 24; net[4 * j + 1] = (w[j] >>> 16) & 255; net[4 * j + 2] = (w[j] >>> 8) & 255; net[4 * j + 3] = w[j] & 255; }
      if (isMartianDst6(net, 0)) continue;
      if (l === 128) hosts.push(w);
      else nets.push({ w, prefixLen: l });
    }
    hosts.sort((x, y) => x[0] - y[0] || x[1] - y[1] || x[2] - y[2] || x[3] - y[3]);
    const out = new Uint32Array(hosts.length * 4);
    let n = 0;
    for (const w of hosts) {
      if (n > 0 && out[n * 4 - 4] === w[0] && out[n * 4 - 3] === w[1] && out[n * 4 - 2] === w[2] && out[n * 4 - 1] === w[3]) continue;
      out.set(w, n * 4);
      n++;
    }
    this.hosts = out.slice(0, n * 4);
    this.nets.set(nets);
    return n + nets.length;
  }

  get size(): number {
    return (this.hosts.length >>> 2) + this.nets.size;
  }

  /** Is the address at b[off..off+16] one of them? */
  has(b: Uint8Array, off: number): boolean {
    const h = this.hosts;
    if (h.length > 0) {
      const w0 = ((b[off] << 24) | (b[off + 1] << 16) | (b[off + 2] << 8) | b[off + 3]) >>> 0;
      const w1 = ((b[off + 4] << 24) | (b[off + 5] << 16) | (b[off + 6] << 8) | b[off + 7]) >>> 0;
      const w2 = ((b[off + 8] << 24) | (b[off + 9] << 16) | (b[off + 10] << 8) | b[off + 11]) >>> 0;
      const w3 = ((b[off + 12] << 24) | (b[off + 13] << 16) | (b[off + 14] << 8) | b[off + 15]) >>> 0;
      let lo = 0;
      let hi = h.length >>> 2;
      while (lo < hi) {
        const mid = (lo + hi) >>> 1;
        const o = mid * 4;
        const c = h[o] !== w0 ? h[o] - w0 : h[o + 1] !== w1 ? h[o + 1] - w1 : h[o + 2] !== w2 ? h[o + 2] - w2 : h[o + 3] - w3;
        if (c === 0) return true;
        if (c < 0) lo = mid + 1;
        else hi = mid;
      }
    }
    return this.nets.size > 0 && this.nets.has(b, off);
  }
}
