/**
 * What calico-node does at start against a writable datastore (etcd or the embedded store), for
 * `podway run`: find this node's addresses (IPv4, and IPv6 when it has one), give it VXLAN tunnel
 * addresses from IPAM when a pool of that family uses VXLAN (handles `vxlan-tunnel-addr-<node>`
 * and `vxlan-v6-tunnel-addr-<node>`, as Calico names them), register the Node resource (keeping
 * what others set on it) and mark the datastore ready. A YAML file datastore is read-only:
 * nothing is joined there.
 */
import { openKvStore } from '../control/kv/open';
import type { DatastoreSpec } from '../control/kv/spec';
import { KvUnavailableError } from '../control/kv/kv';
import { Ipam } from '../control/ipam';
import { registerNode, markDatastoreReady, NodeRegistration } from '../control/node-registration';
import { kindInfo, kindPrefix, resourceKey } from '../control/calico-kinds';
import { firstFoundIPv4, firstFoundIPv6 } from '../dataplane/host';
import { deriveVtepMac } from '../control/mac';

export interface JoinOptions {
  node: string;
  /** This node's address with its prefix ("10.0.0.1/24"); else the Node's own, else first-found. */
  ip?: string;
  /**
   * This node's IPv6 address with its prefix ("fd00:99::1/64"); 'autodetect' = first-found;
   * 'none' = register none. Unset: the Node's own, else first-found (none when the host has none).
   */
  ip6?: string;
  /** Told of IPAM operations (metrics): 'tunnel_address_assigned'. */
  onIpam?: (event: string) => void;
}

interface StoredNode { spec?: { bgp?: { ipv4Address?: string; ipv6Address?: string }; ipv4VXLANTunnelAddr?: string; ipv6VXLANTunnelAddr?: string } }

const RETRY_MAX_MS = 10_000;

/** Register the node; waits (with backoff) while the store is unreachable, as calico-node does. */
export async function joinCluster(spec: DatastoreSpec, opts: JoinOptions, say: (m: string) => void): Promise<void> {
  if (spec.kind === 'file') return;
  const kv = openKvStore(spec, {});
  try {
    for (let delay = 1000; ; delay = Math.min(delay * 2, RETRY_MAX_MS)) {
      try {
        await joinOnce(kv, opts, say);
        return;
      } catch (e) {
        if (!(e instanceof KvUnavailableError)) throw e;
        say(`datastore ${kv.description} unreachable (${e.message}); retrying in ${delay / 1000} s`);
        await new Promise((r) => setTimeout(r, delay));
      }
    }
  } finally {
    await kv.close();
  }
}

function chooseIpv6(opts: JoinOptions, stored: StoredNode): string | undefined {
  if (opts.ip6 === 'none') return undefined;
  if (opts.ip6 === 'autodetect') return firstFoundIPv6();
  return opts.ip6 ?? stored.spec?.bgp?.ipv6Address ?? firstFoundIPv6();
}

async function joinOnce(kv: ReturnType<typeof openKvStore>, opts: JoinOptions, say: (m: string) => void): Promise<void> {
  const nodeInfo = kindInfo('Node')!;
  const existing = await kv.get(resourceKey(nodeInfo, opts.node));
  const stored: StoredNode = existing ? (JSON.parse(existing.value) as StoredNode) : {};
  const ipv4Address = opts.ip ?? stored.spec?.bgp?.ipv4Address ?? firstFoundIPv4();
  if (!ipv4Address) throw new Error(`node ${opts.node}: no IPv4 address to register (give --ip ADDR/PREFIX)`);
  const ipv6Address = chooseIpv6(opts, stored);
  // The Node first: IPAM reads its labels (pools' nodeSelectors) to give it a tunnel address.
  const base: NodeRegistration = { name: opts.node, ipv4Address, ...(ipv6Address ? { ipv6Address } : {}) };
  let reg = await registerNode(kv, base);
  const created = reg.action === 'created';
  const ipam = new Ipam(kv);
  const tunnel = async (version: 4 | 6, handleId: string, type: string): Promise<string> => {
    const r = await ipam.autoAssign({ node: opts.node, count: 1, handleId, attrs: { node: opts.node, type }, version });
    if (r.ips.length === 0) throw new Error(`node ${opts.node}: no IPv${version} VXLAN tunnel address: ${(r.errors ?? []).join('; ')}`);
    opts.onIpam?.('tunnel_address_assigned');
    say(`IPv${version} VXLAN tunnel address ${r.ips[0]} assigned (handle ${handleId})`);
    return r.ips[0];
  };
  const full: { -readonly [K in keyof NodeRegistration]: NodeRegistration[K] } = { ...base };
  let vxlanTunnelAddr = stored.spec?.ipv4VXLANTunnelAddr;
  if (!vxlanTunnelAddr && (await anyVxlanPool(kv, 4))) {
    vxlanTunnelAddr = await tunnel(4, `vxlan-tunnel-addr-${opts.node}`, 'vxlanTunnelAddress');
    // Felix records the VTEP's MAC on the Node (vxlanTunnelMACAddr); podway's is the one Felix derives.
    Object.assign(full, { vxlanTunnelAddr, vtepMac: deriveVtepMac(opts.node) });
  }
  // Calico gives an IPv6 VTEP only to a node with an IPv6 address (the tunnel runs over it).
  let vxlanTunnelAddrV6 = stored.spec?.ipv6VXLANTunnelAddr;
  if (ipv6Address && !vxlanTunnelAddrV6 && (await anyVxlanPool(kv, 6))) {
    vxlanTunnelAddrV6 = await tunnel(6, `vxlan-v6-tunnel-addr-${opts.node}`, 'vxlanV6TunnelAddress');
    Object.assign(full, { vxlanTunnelAddrV6, vtepMacV6: deriveVtepMac(opts.node, 6) });
  }
  if (full.vxlanTunnelAddr !== undefined || full.vxlanTunnelAddrV6 !== undefined) {
    const again = await registerNode(kv, full);
    reg = { ...again, action: created ? 'created' : again.action };
  }
  const addrs = [ipv4Address, ipv6Address, vxlanTunnelAddr && `vxlan ${vxlanTunnelAddr}`, vxlanTunnelAddrV6 && `vxlan-v6 ${vxlanTunnelAddrV6}`].filter(Boolean).join(', ');
  say(`node ${opts.node} ${reg.action} in ${kv.description} (${addrs})`);
  const ready = await markDatastoreReady(kv);
  if (ready.action !== 'unchanged') say(`datastore marked ready (ClusterInformation default ${ready.action})`);
}

/** Whether an enabled pool of this IP version uses VXLAN (Always or CrossSubnet): then every node needs a VTEP address of it. */
async function anyVxlanPool(kv: ReturnType<typeof openKvStore>, version: 4 | 6): Promise<boolean> {
  const info = kindInfo('IPPool')!;
  const list = await kv.list(kindPrefix(info));
  return list.entries.some((e) => {
    try {
      const p = JSON.parse(e.value) as { spec?: { vxlanMode?: string; disabled?: boolean; cidr?: string } };
      const isV6 = (p.spec?.cidr ?? '').includes(':');
      return !p.spec?.disabled && (p.spec?.vxlanMode === 'Always' || p.spec?.vxlanMode === 'CrossSubnet') && isV6 === (version === 6);
    } catch {
      return false;
    }
  });
}
