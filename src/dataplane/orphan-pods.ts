/**
 * A pod interface here holding an address no workload endpoint of this datastore names: its
 * route, made by an earlier run, is found at start (engine.ts adoptLeftovers) and no endpoint in
 * the model wants it. The usual cause is a node moved to another datastore (the embedded store to
 * etcd): the pod made under the old one keeps its address, and the new store's IPAM, which never
 * heard of it, may give that address to a new pod. podway removes the route as before, and says
 * what it found and what to do, at warn level and in `podway status` while the interface exists.
 */

export interface OrphanPodAddress {
  readonly ifname: string;
  readonly address: string;
}

/** The warning (and the status line) for one such interface. */
export function orphanPodLine(o: OrphanPodAddress): string {
  return `interface ${o.ifname} holds pod address ${o.address} (a route an earlier run made) but no workload endpoint of this datastore names it: `
    + 'a pod made under another datastore (or whose endpoint was deleted) keeps the address, and this datastore\'s IPAM may give it to a new pod; '
    + `remove that pod (its CNI DEL, e.g. podman rm), or remove and re-add it under this datastore (\`podway cni install --datastore ...\` first); its route here is removed`;
}
