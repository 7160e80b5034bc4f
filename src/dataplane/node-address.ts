// Whether the node's addresses (IPv4, and IPv6 when it has one) are still on the node, for the engine's periodic check
// (Engine.checkNodeAddress). Node's os.networkInterfaces() lists only interfaces that are up and
// running (libuv skips the others), so an address on a link that is down looks missing there: the
// link's own state (sysfs) is read first, and a link that is down is reported as down.
import { readFileSync } from 'node:fs';
import type { NetworkInterfaceInfo } from 'node:os';
import { canonicalIpv6 } from '../packet/ipv6';

/** An interface's link state from sysfs: administratively up (IFF_UP) and its operstate; null
 * when there is no such interface. */
export interface LinkState {
  adminUp: boolean;
  /** IFF_RUNNING: the kernel's operational "up" (a carrier; for a veth, its peer up) */
  running: boolean;
  operstate: string;
}

export function readLinkState(name: string): LinkState | null {
  try {
    const flags = Number(readFileSync(`/sys/class/net/${name}/flags`, 'utf8'));
    let operstate = 'unknown';
    try {
      operstate = readFileSync(`/sys/class/net/${name}/operstate`, 'utf8').trim();
    } catch {
      /* an interface without operstate: flags say enough */
    }
    // sysfs flags leave IFF_RUNNING out (dev_get_flags adds it for getifaddrs): it is the kernel's
    // netif_oper_up, operstate up or unknown (lo, tun devices report unknown)
    return { adminUp: (flags & 0x1) !== 0, running: (flags & 0x1) !== 0 && (operstate === 'up' || operstate === 'unknown'), operstate };
  } catch {
    return null;
  }
}

/** What checkNodeAddress found: `problem` as told in the log (null: every address is on an
 * interface that is up and the underlay is up); `linkDown`: the underlay is down or gone (nothing
 * crosses it), whether or not an address is missing (one may sit on another interface);
 * `linkProblem`: what is wrong with the underlay link (`link eth0 is down (...)`, `interface eth0
 * is gone`), null when it is up; `addressProblem`: the node addresses missing from a link that is
 * up (null when none is, and while the underlay is down or gone: its addresses cannot be seen
 * then, so whether they are still there is not known; the link is what is wrong); `missing`: the
 * node addresses not seen. */
export interface NodeAddressState {
  problem: string | null;
  linkDown: boolean;
  linkProblem: string | null;
  addressProblem: string | null;
  missing: string[];
}

const isV6 = (ip: string): boolean => ip.includes(':');

/**
 * The node's addresses `ips` (its Node's IPv4 address, dotted, and IPv6 address when it has one)
 * on underlay `underlay`. `ifaces`: os.networkInterfaces() (up and running interfaces only);
 * `link`: the underlay's link state (readLinkState). IPv6 addresses are compared canonically.
 */
export function nodeAddressState(ips: readonly string[], underlay: string, ifaces: NodeJS.Dict<NetworkInterfaceInfo[]>, link: LinkState | null): NodeAddressState {
  const want = new Map(ips.map((ip) => [isV6(ip) ? canonicalIpv6(ip) : ip, ip]));
  const seen = new Set<string>();
  const found: { v4: string[]; v6: string[] } = { v4: [], v6: [] };
  for (const [name, addrs] of Object.entries(ifaces)) {
    for (const a of addrs ?? []) {
      if (a.family !== 'IPv4' && a.family !== 'IPv6') continue;
      const v6 = a.family === 'IPv6';
      let key = a.address;
      if (v6) {
        try {
          key = canonicalIpv6(a.address.split('%')[0]);
        } catch {
          continue;
        }
      }
      if (want.has(key)) seen.add(key);
      if (name === underlay) (v6 ? found.v6 : found.v4).push(a.cidr ?? a.address);
    }
  }
  const missing = [...want].filter(([k]) => !seen.has(k)).map(([, ip]) => ip);
  // The underlay's own state, whatever the addresses: they may sit on another interface (a
  // dummy or loopback address, a bond's master), and the underlay still carries the traffic.
  const linkProblem = link === null ? `its interface ${underlay} is gone`
    : !link.adminUp ? `link ${underlay} is down (set down: admin state down)`
    : !link.running ? `link ${underlay} is down (operstate ${link.operstate}: no carrier or peer)` : null;
  const gone = link === null ? `interface ${underlay} is gone` : null;
  if (missing.length === 0) return { problem: gone ?? linkProblem, linkDown: linkProblem !== null, linkProblem: gone ?? linkProblem, addressProblem: null, missing };
  const which = `node address${missing.length > 1 ? 'es' : ''} ${missing.join(', ')}`;
  // A link that is not up and running is not listed at all: its addresses cannot be seen here,
  // and what is wrong is the link (addressProblem stays null: the addresses may well be there).
  if (linkProblem !== null) return { problem: `${which}: ${linkProblem}`, linkDown: true, linkProblem: gone ?? linkProblem, addressProblem: null, missing };
  const problem = missing.map((ip) => {
    const has = isV6(ip) ? found.v6 : found.v4;
    return `node address ${ip} is no longer on this node (${underlay} has ${has.join(', ') || `no ${isV6(ip) ? 'IPv6' : 'IPv4'} address`})`;
  }).join('; ');
  return { problem, linkDown: false, linkProblem: null, addressProblem: problem, missing };
}

/**
 * The problem with the node's address `ip` (dotted IPv4, or IPv6) on underlay `underlay`, or null
 * when it is on an interface that is up (nodeAddressState for one address).
 */
export function nodeAddressProblem(ip: string, underlay: string, ifaces: NodeJS.Dict<NetworkInterfaceInfo[]>, link: LinkState | null): string | null {
  const st = nodeAddressState([ip], underlay, ifaces, link);
  return st.missing.length > 0 ? st.problem : null;
}
