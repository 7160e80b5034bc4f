/**
 * A pod interface here holding an address no workload endpoint of this datastore names. `podway
 * run` finds them (engine.ts adoptLeftovers, endpointsGone):
 * - at start, from the pod routes an earlier run left (`route`), and from the addresses the pod
 *   veths' peers hold in their pods' namespaces (`pod`: found whatever the routes and the
 *   datastore say, e.g. after `podway delete node` removed a running node's endpoints and its
 *   podway removed their routes);
 * - while running, when an endpoint is deleted and its veth stays (`deleted`).
 * The usual causes: a node moved to another datastore (the pod made under the old one keeps its
 * address, which the new store's IPAM never heard of), or its Node (so its endpoints) deleted
 * while its pods ran. Each is said once at warn level, listed in `podway status` while the
 * interface exists and counted in /metrics (podway_orphan_pod_addresses). podway's CNI ADD on the
 * node does not hand such an address out (cni/orphan-hold.ts); another node's IPAM still could, if
 * it is free in IPAM and nothing on this node held it yet.
 */

import { execFile } from 'node:child_process';

export interface OrphanPodAddress {
  readonly ifname: string;
  readonly address: string;
  /** How it was found (see the top); absent: not said (an older podway's status). */
  readonly source?: 'route' | 'pod' | 'deleted';
}

const FOUND: Record<NonNullable<OrphanPodAddress['source']>, string> = {
  route: 'a route an earlier run made',
  pod: 'on its pod\'s interface, in the pod\'s namespace',
  deleted: 'its WorkloadEndpoint was deleted while the interface stayed',
};

/** The warning (and the status line) for one such interface. */
export function orphanPodLine(o: OrphanPodAddress): string {
  return `interface ${o.ifname} holds pod address ${o.address} (${o.source ? FOUND[o.source] : 'found on this node'}) but no workload endpoint of this datastore names it: `
    + 'a pod made under another datastore (or whose endpoint or Node was deleted) keeps the address, and IPAM may give it to a new pod (podway\'s CNI ADD on this node holds it back first); '
    + `remove that pod (its CNI DEL, e.g. podman rm), or remove and re-add it under this datastore (\`podway cni install --datastore ...\` first)${o.source === 'route' ? '; its route here is removed' : ''}`;
}

/** The host MAC Calico (and podway's CNI) gives every pod veth's host side: how a pod veth is known. */
const POD_HOST_MAC = 'ee:ee:ee:ee:ee:ee';

/** What readPodPeerAddresses found: the addresses pod veths' peers hold, and the veths it could not look into. */
export interface PodPeerAddresses {
  /** One row per address (global scope) on a pod veth's peer, the pod's interface, by its host-side name. */
  readonly found: readonly OrphanPodAddress[];
  /** Pod veths whose peer's namespace has no name under /run/netns (ip cannot enter it), or could not be read, with why. */
  readonly unread: readonly string[];
}

/** Canonical text of an address as `ip -j` or podway writes it (IPv6 zero runs as ip prints them). */
export function addressKey(a: string): string {
  return a.includes(':') ? canonical6(a) : a;
}

function canonical6(a: string): string {
  // expand, then shorten the longest run of zero groups (RFC 5952), as iproute2 prints it
  const [head, tail] = a.toLowerCase().split('::') as [string, string | undefined];
  const h = head === '' ? [] : head.split(':');
  const t = tail === undefined || tail === '' ? [] : tail.split(':');
  const groups = tail === undefined ? h : [...h, ...Array(8 - h.length - t.length).fill('0'), ...t];
  const g = groups.map((x) => x.replace(/^0+(?=.)/, ''));
  let best = -1, bestLen = 1;
  for (let i = 0; i < 8;) {
    if (g[i] !== '0') { i++; continue; }
    let j = i;
    while (j < 8 && g[j] === '0') j++;
    if (j - i > bestLen) { best = i; bestLen = j - i; }
    i = j;
  }
  if (best < 0) return g.join(':');
  return `${g.slice(0, best).join(':')}::${g.slice(best + bestLen).join(':')}`;
}

type Json = Record<string, unknown>;
const parse = (text: string): Json[] => (text.trim() === '' ? [] : JSON.parse(text) as Json[]);

/** The pod veths (host MAC ee:ee:ee:ee:ee:ee) of `ip -j link show type veth`, with their peer's ifindex and namespace id. */
export function podVethPeers(linksJson: string): { ifname: string; peerIndex: number | null; nsid: number | null }[] {
  return parse(linksJson).filter((l) => l.address === POD_HOST_MAC).map((l) => ({
    ifname: String(l.ifname),
    peerIndex: typeof l.link_index === 'number' ? l.link_index : null,
    nsid: typeof l.link_netnsid === 'number' ? l.link_netnsid : null,
  }));
}

/** The devices of host routes (a destination without a prefix length: /32, /128) in `ip -j route show`. */
export function hostRouteDevices(routesJson: string): string[] {
  return parse(routesJson).filter((r) => typeof r.dst === 'string' && !r.dst.includes('/') && r.dst !== 'default' && typeof r.dev === 'string').map((r) => String(r.dev));
}

/** The peer's global addresses in `ip -j addr show` of its namespace (the interface of ifindex `peerIndex`). */
export function peerAddressesIn(addrJson: string, peerIndex: number): string[] {
  const link = parse(addrJson).find((l) => l.ifindex === peerIndex);
  const info = (link?.addr_info ?? []) as Json[];
  return info.filter((a) => a.scope === 'global' && typeof a.local === 'string').map((a) => addressKey(String(a.local)));
}

/**
 * The addresses every pod veth's peer (the pod's own interface, in its namespace) holds: a veth
 * pod's address lives there, not on the host side, and stays there whatever the datastore or the
 * node's routes say (a route podway wrote is removed with its endpoint; a pod made under another
 * datastore never had one here). The pod's namespace is entered by its name under /run/netns
 * (`ip netns list-id` maps the veth's link-netnsid to it; podman, containerd and CRI-O name theirs
 * so); a veth whose peer's namespace has no name is listed in `unread`. `ip` is run 2 + (one per
 * pod namespace) times. `exclude`: host-side names not to look at (an ADD's own, being made).
 * `skipRouted` (the CNI ADD's scan, run on every ADD under the IPAM lock): veths with a host route
 * are not looked into (two `ip route` reads instead of one `ip` per pod namespace).
 */
export async function readPodPeerAddresses(exclude: ReadonlySet<string> = new Set(), opts: { skipRouted?: boolean } = {}): Promise<PodPeerAddresses> {
  const ip = (args: string[]) => new Promise<string>((resolve, reject) => {
    execFile('ip', ['-j', ...args], { encoding: 'utf8', timeout: 10_000, maxBuffer: 64 << 20 }, (e, out, err) => (e ? reject(new Error(`ip -j ${args.join(' ')}: ${String(err).trim() || e.message}`)) : resolve(out)));
  });
  let veths: ReturnType<typeof podVethPeers>;
  try {
    veths = podVethPeers(await ip(['link', 'show', 'type', 'veth'])).filter((v) => !exclude.has(v.ifname));
  } catch (e) {
    return { found: [], unread: [`pod veths not listed: ${(e as Error).message.split('\n')[0]}`] };
  }
  if (opts.skipRouted && veths.length > 0) {
    // A veth with a host route (/32, /128) to it is a pod `podway run` serves (it removes a deleted
    // endpoint's route, and a crashed run's leftovers at its start): not an orphan, and not worth an
    // `ip` in its namespace. Measured: 60 pod veths, 634 ms per scan without this (one `ip` each).
    try {
      const routed = new Set([...hostRouteDevices(await ip(['-4', 'route', 'show'])), ...hostRouteDevices(await ip(['-6', 'route', 'show']))]);
      veths = veths.filter((v) => !routed.has(v.ifname));
    } catch {
      /* routes not read: every veth is looked into, as without the option */
    }
  }
  if (veths.length === 0) return { found: [], unread: [] };
  const names = new Map<number, string>();
  try {
    for (const n of parse(await ip(['netns', 'list-id']))) if (typeof n.nsid === 'number' && typeof n.name === 'string') names.set(n.nsid, n.name);
  } catch {
    /* none named: each veth is said unread below */
  }
  const byNs = new Map<string, string>();
  const found: OrphanPodAddress[] = [];
  const unread: string[] = [];
  for (const v of veths) {
    // no link-netnsid: the peer is in this namespace ('' below)
    const ns = v.nsid === null ? '' : names.get(v.nsid);
    if (ns === undefined || v.peerIndex === null) {
      unread.push(`${v.ifname} (its pod's namespace, nsid ${v.nsid}, has no name under /run/netns)`);
      continue;
    }
    let addrs = byNs.get(ns);
    if (addrs === undefined) {
      try {
        addrs = await ip(ns === '' ? ['addr', 'show'] : ['-n', ns, 'addr', 'show']);
      } catch (e) {
        unread.push(`${v.ifname} (namespace ${ns || 'this one'}: ${(e as Error).message.split('\n')[0]})`);
        continue;
      }
      byNs.set(ns, addrs);
    }
    try {
      for (const address of peerAddressesIn(addrs, v.peerIndex)) found.push({ ifname: v.ifname, address });
    } catch (e) {
      unread.push(`${v.ifname} (namespace ${ns || 'this one'}: ${(e as Error).message})`);
    }
  }
  return { found, unread };
}
