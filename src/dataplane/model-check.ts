/**
 * What Engine.apply would refuse in a model, found before anything moves. apply follows a new node
 * address with the infra ports (tunnel sockets, underlay filter, tunnel table) before it syncs the
 * endpoints and builds the next hops; a model refused after that (a WorkloadEndpoint's bad MAC, a
 * Node's bad VTEP MAC) would leave the engine split between two models: ports on the new address,
 * encapsulation and ARP still from the old one. Everything a datastore object can carry into those
 * later steps is parsed here, with the error the later step would have thrown. Route prefixes are
 * not: route-calc builds them from parsed CIDRs, so a bad one is a bug, and apply's follow-back
 * (Engine.followBack) is what keeps the engine whole then.
 */
import type { NodeDataplaneModel } from '../control';
import { ip6Bytes } from '../control/route-calc6';
import { NO_ROUTE } from '../lpm';
import { parseMac } from '../packet';

export function checkModel(model: NodeDataplaneModel): void {
  const mac = (what: string, s: string | null | undefined) => {
    if (s === null || s === undefined) return;
    try {
      parseMac(s);
    } catch (e) {
      throw new Error(`${what}: ${(e as Error).message}`);
    }
  };
  const ip6 = (what: string, s: string | null) => {
    if (s === null) return;
    try {
      ip6Bytes(s);
    } catch (e) {
      throw new Error(`${what}: ${(e as Error).message}`);
    }
  };
  if (model.routes.length > NO_ROUTE) throw new Error(`too many routes (${model.routes.length}) for 16-bit next hops`);
  if (model.v6.routes.length > NO_ROUTE) throw new Error(`too many IPv6 routes (${model.v6.routes.length}) for 16-bit next hops`);
  mac('node VTEP MAC', model.node.vtepMac);
  mac('node IPv6 VTEP MAC', model.v6.vtepMac6);
  for (const ep of model.endpoints) mac(`endpoint ${ep.key} (${ep.interfaceName})`, ep.mac);
  for (const r of model.routes) mac(`route ${r.cidr} VTEP`, r.vtepMac);
  for (const r of model.v6.routes) {
    mac(`IPv6 route ${r.cidr} VTEP`, r.vtepMac);
    ip6(`IPv6 route ${r.cidr} node`, r.nodeIp6);
  }
  ip6('node IPv6 address', model.v6.ip6);
  for (const n of model.v6.knownNodeIps6) ip6('known node IPv6 address', n);
  for (const ep of model.v6.endpoints) for (const a of ep.ips6) ip6(`endpoint ${ep.interfaceName} IPv6 address`, a);
}
