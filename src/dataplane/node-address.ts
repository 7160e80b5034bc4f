// Whether the node's IPv4 address is still on the node, for the engine's periodic check
// (Engine.checkNodeAddress). Node's os.networkInterfaces() lists only interfaces that are up and
// running (libuv skips the others), so an address on a link that is down looks missing there: the
// link's own state (sysfs) is read first, and a link that is down is reported as down.
import { readFileSync } from 'node:fs';
import type { NetworkInterfaceInfo } from 'node:os';

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

/**
 * The problem with the node's address `ip` (dotted) on underlay `underlay`, or null when it is on
 * an interface that is up. `ifaces`: os.networkInterfaces() (up and running interfaces only);
 * `link`: the underlay's link state (readLinkState).
 */
export function nodeAddressProblem(ip: string, underlay: string, ifaces: NodeJS.Dict<NetworkInterfaceInfo[]>, link: LinkState | null): string | null {
  const found: string[] = [];
  for (const [name, addrs] of Object.entries(ifaces)) {
    for (const a of addrs ?? []) {
      if (a.family !== 'IPv4') continue;
      if (a.address === ip) return null;
      if (name === underlay) found.push(a.cidr ?? a.address);
    }
  }
  if (link === null) return `node address ${ip}: its interface ${underlay} is gone`;
  // A link that is not up and running is not listed at all: its addresses cannot be seen here,
  // and what is wrong is the link.
  if (!link.adminUp) return `node address ${ip}: link ${underlay} is down (set down: admin state down)`;
  if (!link.running) return `node address ${ip}: link ${underlay} is down (operstate ${link.operstate}: no carrier or peer)`;
  return `node address ${ip} is no longer on this node (${underlay} has ${found.join(', ') || 'no IPv4 address'})`;
}
