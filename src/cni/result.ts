// ADD's success result in the shape each CNI version expects, and prevResult read back for CHECK.
import type { CniVersion } from './config';
import { CniError, CNI_CODES } from './errors';

export interface Attachment {
  /** Host end of a veth (no sandbox); absent for tap/tun, whose device is the pod's interface. */
  readonly host: { readonly name: string; readonly mac: string } | null;
  readonly pod: { readonly name: string; readonly mac: string | null; readonly sandbox: string; readonly mtu: number };
  /** The pod's addresses (IPv4 first), each with its default route's gateway; null for tun (a device route). */
  readonly ips: readonly { readonly address: string; readonly gateway: string | null }[];
}

/** The pod interface's `mac` in the result for a device without one (tun). */
export const NO_MAC = '00:00:00:00:00:00';

export function successResult(version: CniVersion, a: Attachment): Record<string, unknown> {
  const interfaces: Record<string, unknown>[] = [];
  if (a.host) interfaces.push({ name: a.host.name, mac: a.host.mac });
  // A tun device has no hardware address. The spec makes `mac` optional ("if applicable"), but
  // podman's libnetwork parses the mac of every sandbox interface (net.ParseMAC) and fails the
  // container on an empty one ("invalid MAC address"); leaving the interface out, or its index out
  // of `ips`, would lose the pod's address in podman inspect. So the all-zero address stands for
  // "none", as the kernel shows one for a device without (the WorkloadEndpoint gets no mac).
  const podIf: Record<string, unknown> = { name: a.pod.name, mac: a.pod.mac ?? NO_MAC };
  // `mtu` on interfaces is new in 1.1.0.
  if (version === '1.1.0') podIf.mtu = a.pod.mtu;
  podIf.sandbox = a.pod.sandbox;
  interfaces.push(podIf);
  const ips: Record<string, unknown>[] = [];
  const routes: Record<string, unknown>[] = [];
  for (const { address, gateway } of a.ips) {
    const v6 = address.includes(':');
    const ip: Record<string, unknown> = version === '0.4.0' ? { version: v6 ? '6' : '4' } : {};
    ip.address = `${address}/${v6 ? 128 : 32}`;
    if (gateway) ip.gateway = gateway;
    ip.interface = interfaces.length - 1;
    ips.push(ip);
    const route: Record<string, unknown> = { dst: v6 ? '::/0' : '0.0.0.0/0' };
    if (gateway) route.gw = gateway;
    routes.push(route);
  }
  return { cniVersion: version, interfaces, ips, routes, dns: {} };
}

export interface PrevResult {
  readonly interfaces: { name: string; mac?: string; sandbox?: string }[];
  readonly ips: { address: string; interface?: number }[];
}

/** prevResult from CHECK's config: at least one address on an interface of the sandbox. */
export function readPrevResult(raw: unknown): PrevResult {
  const bad = (why: string): CniError => new CniError(CNI_CODES.INVALID_CONFIG, `network config: prevResult: ${why}`);
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw bad('required for CHECK (the result ADD returned)');
  const r = raw as { interfaces?: unknown; ips?: unknown };
  if (!Array.isArray(r.interfaces) || !r.interfaces.every((i) => typeof i === 'object' && i !== null && typeof (i as { name?: unknown }).name === 'string')) throw bad('interfaces: expected a list of {name, mac?, sandbox?}');
  if (!Array.isArray(r.ips) || r.ips.length === 0) throw bad('ips: expected a non-empty list of {address, interface?}');
  for (const [k, ip] of r.ips.entries()) {
    if (typeof ip !== 'object' || ip === null || typeof (ip as { address?: unknown }).address !== 'string') throw bad(`ips[${k}].address: expected "A.B.C.D/N"`);
  }
  return { interfaces: r.interfaces as PrevResult['interfaces'], ips: r.ips as PrevResult['ips'] };
}
