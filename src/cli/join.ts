/**
 * What calico-node does at start against a writable datastore (etcd or the embedded store), for
 * `podway run`: find this node's address, give it a VXLAN tunnel address from IPAM when a pool
 * uses VXLAN (handle `vxlan-tunnel-addr-<node>`, as Calico names it), register the Node resource
 * (keeping what others set on it) and mark the datastore ready. A YAML file datastore is
 * read-only: nothing is joined there.
 */
import { openKvStore } from '../control/kv/open';
import type { DatastoreSpec } from '../control/kv/spec';
import { KvUnavailableError } from '../control/kv/kv';
import { Ipam } from '../control/ipam';
import { registerNode, markDatastoreReady } from '../control/node-registration';
import { kindInfo, kindPrefix, resourceKey } from '../control/calico-kinds';
import { firstFoundIPv4 } from '../dataplane/host';
import { deriveVtepMac } from '../control/mac';

export interface JoinOptions {
  node: string;
  /** This node's address with its prefix ("10.0.0.1/24"); else the Node's own, else first-found. */
  ip?: string;
  /** Told of IPAM operations (metrics): 'tunnel_address_assigned'. */
  onIpam?: (event: string) => void;
}

interface StoredNode { spec?: { bgp?: { ipv4Address?: string }; ipv4VXLANTunnelAddr?: string } }

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

async function joinOnce(kv: ReturnType<typeof openKvStore>, opts: JoinOptions, say: (m: string) => void): Promise<void> {
  const nodeInfo = kindInfo('Node')!;
  const existing = await kv.get(resourceKey(nodeInfo, opts.node));
  const stored: StoredNode = existing ? (JSON.parse(existing.value) as StoredNode) : {};
  const ipv4Address = opts.ip ?? stored.spec?.bgp?.ipv4Address ?? firstFoundIPv4();
  if (!ipv4Address) throw new Error(`node ${opts.node}: no IPv4 address to register (give --ip ADDR/PREFIX)`);
  // The Node first: IPAM reads its labels (pools' nodeSelectors) to give it a tunnel address.
  let reg = await registerNode(kv, { name: opts.node, ipv4Address });
  let vxlanTunnelAddr = stored.spec?.ipv4VXLANTunnelAddr;
  if (!vxlanTunnelAddr && (await anyVxlanPool(kv))) {
    const ipam = new Ipam(kv);
    const r = await ipam.autoAssign({ node: opts.node, count: 1, handleId: `vxlan-tunnel-addr-${opts.node}`, attrs: { node: opts.node, type: 'vxlanTunnelAddress' } });
    if (r.ips.length === 0) throw new Error(`node ${opts.node}: no VXLAN tunnel address: ${(r.errors ?? []).join('; ')}`);
    vxlanTunnelAddr = r.ips[0];
    opts.onIpam?.('tunnel_address_assigned');
    say(`VXLAN tunnel address ${vxlanTunnelAddr} assigned (handle vxlan-tunnel-addr-${opts.node})`);
    // Felix records the VTEP's MAC on the Node (vxlanTunnelMACAddr); podway's is the one Felix derives.
    const again = await registerNode(kv, { name: opts.node, ipv4Address, vxlanTunnelAddr, vtepMac: deriveVtepMac(opts.node) });
    reg = { ...again, action: reg.action === 'created' ? 'created' : again.action };
  }
  say(`node ${opts.node} ${reg.action} in ${kv.description} (${ipv4Address}${vxlanTunnelAddr ? `, vxlan ${vxlanTunnelAddr}` : ''})`);
  const ready = await markDatastoreReady(kv);
  if (ready.action !== 'unchanged') say(`datastore marked ready (ClusterInformation default ${ready.action})`);
}

/** Whether an enabled pool uses VXLAN (Always or CrossSubnet): then every node needs a VTEP address. */
async function anyVxlanPool(kv: ReturnType<typeof openKvStore>): Promise<boolean> {
  const info = kindInfo('IPPool')!;
  const list = await kv.list(kindPrefix(info));
  return list.entries.some((e) => {
    try {
      const p = JSON.parse(e.value) as { spec?: { vxlanMode?: string; disabled?: boolean; cidr?: string } };
      return !p.spec?.disabled && (p.spec?.vxlanMode === 'Always' || p.spec?.vxlanMode === 'CrossSubnet') && !(p.spec?.cidr ?? '').includes(':');
    } catch {
      return false;
    }
  });
}
