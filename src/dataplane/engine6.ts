/**
 * The IPv6 part of Engine.apply: each pod port's IPv6 addresses (source check), the IPv6 next
 * hops and FIB, this node's IPv6 address and the pods' MTU, handed to the Pipeline's IPv6 half
 * together (between two batches, like the IPv4 swap).
 */
import type { NodeDataplaneModel } from '../control/route-calc';
import { ip6Bytes } from '../control/route-calc6';
import { buildNextHops6, NextHops6 } from './nexthops6';
import type { Pipeline } from './pipeline';

export interface Apply6Context {
  /** The port of a local endpoint's interface, or -1 while it is not attached. */
  portOf(interfaceName: string): number;
  /** A resolved underlay IPv6 neighbour's MAC. */
  neighbor6(ip6: string): Uint8Array | undefined;
}

export function applyModel6(pipe: Pipeline, model: NodeDataplaneModel, ctx: Apply6Context): NextHops6 {
  const m = model.v6;
  const v6 = pipe.v6;
  const byIf = new Map(m.endpoints.map((e) => [e.interfaceName, e.ips6] as const));
  for (const ep of model.endpoints) {
    const port = ctx.portOf(ep.interfaceName);
    if (port >= 0) v6.setPortAddrs(port, (byIf.get(ep.interfaceName) ?? []).map(ip6Bytes));
  }
  const nh = buildNextHops6(m, { portOf: ctx.portOf, neighbor6: ctx.neighbor6 }, v6.nh ?? undefined);
  v6.nh = nh;
  if (m.ip6 !== null) v6.nodeIp6.set(ip6Bytes(m.ip6));
  v6.hasNodeIp6 = m.ip6 !== null;
  v6.podMtu = Math.min(model.mtu.pod, m.vxlan ? m.vxlanMtu : Infinity);
  return nh;
}
