// Which address families a stored Node has, read as podway run's model reads them
// (control/route-calc.ts nodeInfoOf, route-calc6.ts node6InfoOf): a Node without a usable
// spec.bgp.ipv4Address is an IPv6-only node (calico-node's IP=none, `podway run --ip none`), whose
// model has an empty IPv4 half: no IPv4 routes, and any IPv4 address a pod there is given is
// withheld (never routed). `podway cni install` and the plugin's ADD read it (docs/ipv6.md, "IPv6-only
// nodes"). Kept apart from the model's modules so the plugin process loads no more than this.
import { parseCidrOrIp } from '../control/ipam/net';

export interface NodeFamilies {
  /** spec.bgp.ipv4Address is an IPv4 address (with or without its prefix length). */
  readonly ipv4: boolean;
  /** spec.bgp.ipv6Address is an IPv6 address (with or without its prefix length). */
  readonly ipv6: boolean;
}

const isMapping = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

function hasAddress(v: unknown, version: 4 | 6): boolean {
  return typeof v === 'string' && parseCidrOrIp(v.trim())?.version === version;
}

/** The families of a Node as stored (its JSON text); null when the text is not a Node object. */
export function nodeFamilies(nodeJson: string): NodeFamilies | null {
  let node: unknown;
  try {
    node = JSON.parse(nodeJson);
  } catch {
    return null;
  }
  if (!isMapping(node)) return null;
  const spec = isMapping(node.spec) ? node.spec : {};
  const bgp = isMapping(spec.bgp) ? spec.bgp : {};
  return { ipv4: hasAddress(bgp.ipv4Address, 4), ipv6: hasAddress(bgp.ipv6Address, 6) };
}

/** An IPv6-only node: an IPv6 address and no IPv4 one (a Node with neither is refused by podway run). */
export function isIpv6Only(f: NodeFamilies | null): boolean {
  return f !== null && !f.ipv4 && f.ipv6;
}
