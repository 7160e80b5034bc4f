/**
 * What calico-node does at start against a writable datastore (etcd or the embedded store), for
 * `podway run`: find this node's addresses (IPv4, and IPv6 when it has one), register the Node
 * resource (keeping what others set on it), reconcile its VXLAN tunnel addresses with IPAM as
 * calico-node's allocateip does (handles `vxlan-tunnel-addr-<node>` and
 * `vxlan-v6-tunnel-addr-<node>`: assigned while a VXLAN pool of the family selects the node,
 * released and cleared from the Node when none does; control/tunnel-addrs.ts) and mark the
 * datastore ready. A YAML file datastore is read-only:
 * nothing is joined there.
 */
import { openKvStore } from '../control/kv/open';
import type { DatastoreSpec } from '../control/kv/spec';
import type { KvEntry, KvStore } from '../control/kv/kv';
import { hasLeaseClaims, hasLeaseReads, hasLeases, KvConfigError, KvUnavailableError } from '../control/kv/kv';
import { awaitNodeFree, claimNode, NodeLiveness, thisHost, type LiveRecord, type LivenessStatus } from '../control/node-live';
import { clusterGuidOf } from '../control/kv/cluster-guid';
import { registerNode, markDatastoreReady, updateNodeSpec, nodeAddressConflicts, NodeRegistration, NodeAddressConflictError } from '../control/node-registration';
import { kindInfo, resourceKey } from '../control/calico-kinds';
import { firstFoundIPv4, firstFoundIPv6 } from '../dataplane/host';
import { reconcileTunnelAddrs, tunnelKind } from '../control/tunnel-addrs';
import { addressesHeldHere, chooseStartAddress } from './start-address';
import { Backoff } from '../util/backoff';
import { abortableSleep } from '../util/abortable-sleep';
import { podwayCommand } from '../util/invocation';

export interface JoinOptions {
  node: string;
  /**
   * This node's address with its prefix ("10.0.0.1/24"); 'autodetect' = first-found (Calico's
   * IP=autodetect: the Node's own is not reused); 'none' = register none (Calico's IP=none: an
   * IPv6-only node; a stored one, which calico-node keeps, is refused: joinCluster). Unset: the Node's own, else
   * first-found.
   */
  ip?: string;
  /**
   * This node's IPv6 address with its prefix ("fd00:99::1/64"); 'autodetect' = first-found;
   * 'none' = register none. Unset: the Node's own, else first-found (none when the host has none).
   */
  ip6?: string;
  /** Told of IPAM operations (metrics): 'tunnel_address_assigned', 'tunnel_address_released'. */
  onIpam?: (event: string) => void;
  /**
   * The join at start: a Node address (ip/ip6 unset) that no interface here holds is replaced by
   * first-found (start-address.ts). Later joins keep the registered address.
   */
  atStart?: boolean;
  /** Warnings (an address replaced or changed); default: `say`. */
  warn?: (m: string) => void;
  /** Ends the wait for an unreachable store (podway run stopping while it forwards on its cached
   * model): joinCluster then rejects with the signal's reason. */
  signal?: AbortSignal;
  /** The datastore's clusterGUID (ClusterInformation default) once the registration marked it ready. */
  onClusterGuid?: (guid: string | null) => void;
  /** Whether the registration found the datastore locked (ClusterInformation default has
   * datastoreReady: false, as `calicoctl datastore migrate lock` leaves it). */
  onDatastoreLocked?: (locked: boolean) => void;
  /** This node's Node as the registration first read it (null: there is none), before it writes
   * anything: podway run compares it with the Node its model cache was written for. */
  onNodeRead?: (existing: KvEntry | null) => void;
  /** This node's Node as registered (found or made), for the model cache (model-cache.ts NodeIdentity). */
  onNodeRegistered?: (entry: KvEntry) => void;
  /**
   * On etcd: this run's liveness record, with which the node's liveness key is claimed before
   * anything is written (control/node-live.ts claimNode): at start, and at a registration again
   * after the datastore was replaced (run.ts ReRegistration: a wiped or restored etcd may have
   * the key absent, or another host's). Another host holding it (its podway renewing it) refuses
   * the registration (NodeLiveElsewhereError) without writing the Node. Without it the key is only
   * read, at start (awaitNodeFree). The lease it was claimed with goes to `onLiveClaimed`, at once
   * (the caller keeps it alive: NodeLiveness), with, from the registration's thread
   * (join-thread.ts), the handle of that thread's renewals of it (LiveClaimHandle).
   */
  live?: LiveRecord;
  onLiveClaimed?: (lease: string, claim?: LiveClaimHandle) => void;
}

/**
 * The claimed liveness lease as the registration's thread keeps it alive from the claim on
 * (join-worker.ts, control/node-live.ts ClaimKeeper), until the running podway's holder renewed
 * it (release(): handed over) or the start ended (revoke(): the key deleted with it; resolves
 * once etcd answered or the thread ended). The thread ends after one of the two, or once it found
 * the lease gone (etcd wiped or restored, or no renewal got through for its TTL: the holder then
 * writes the key on a new lease, and this one is never handed over).
 */
export interface LiveClaimHandle {
  readonly lease: string;
  release(): void;
  revoke(): Promise<void>;
  /** Resolves once the thread keeping it ended: handed over, revoked, or the lease found gone (etcd let it expire: nothing to keep). */
  readonly ended: Promise<void>;
}

interface StoredNode { spec?: { bgp?: { ipv4Address?: string; ipv6Address?: string }; ipv4VXLANTunnelAddr?: string; ipv6VXLANTunnelAddr?: string } }

const RETRY_MAX_MS = 10_000;

/**
 * Register the node; waits (with backoff) while the store is unreachable, as calico-node does.
 * One registration, its store closed after: an etcd store through the light client (kv/open.ts
 * 'command'; no etcd3 to load). `podway run` registers in a thread of its own (join-thread.ts).
 */
export async function joinCluster(spec: DatastoreSpec, opts: JoinOptions, say: (m: string) => void): Promise<void> {
  if (spec.kind === 'file') return;
  const kv = openKvStore(spec, { use: 'command' });
  try {
    const backoff = new Backoff({ first: 1000, max: RETRY_MAX_MS });
    let saidConfig = '';
    // the liveness key's lease once claimed: a later attempt finds the key its own
    const claim = { lease: null as string | null };
    for (;;) {
      opts.signal?.throwIfAborted();
      try {
        await joinOnce(kv, opts, say, claim);
        return;
      } catch (e) {
        if (!(e instanceof KvUnavailableError)) throw e;
        // etcd refused our TLS certificate (or we its), or an endpoint is not etcd: at start that
        // is the configuration, and podway run stops with it, as with a TLS file it cannot read;
        // later it is tried again (said once per reason: a server fixed meanwhile is found).
        if (e instanceof KvConfigError && opts.atStart) throw e;
        opts.signal?.throwIfAborted();
        // e says which store and what failed: "etcd URL unreachable (get KEY): connect ECONNREFUSED ...".
        const wait = backoff.next();
        if (!(e instanceof KvConfigError)) say(`${e.message}; retrying in ${wait / 1000} s`);
        else if (e.message !== saidConfig) say(`${(saidConfig = e.message)}; retrying (said once)`);
        await abortableSleep(wait, opts.signal);
      }
    }
  } finally {
    await kv.close();
  }
}

/**
 * This node's Node as the datastore holds it now (null: none), in one read through the light
 * client (kv/open.ts 'command': no etcd3 to load, one connection, closed after): what `podway run`
 * compares with the Node its model cache was written for, while the host is read at start, before
 * the cache is applied. Throws what the store throws (unreachable, slow: the caller goes on without).
 */
export async function readNodeEntry(spec: Exclude<DatastoreSpec, { kind: 'file' }>, node: string): Promise<KvEntry | null> {
  const kv = openKvStore(spec, { use: 'command' });
  try {
    return await kv.get(resourceKey(kindInfo('Node')!, node));
  } finally {
    await kv.close();
  }
}

function chooseIpv6(opts: JoinOptions, stored: StoredNode, fromNode: (family: 4 | 6, stored: string | undefined, detect: () => string | undefined) => string | undefined): string | undefined {
  if (opts.ip6 === 'none') return undefined;
  if (opts.ip6 === 'autodetect') return firstFoundIPv6();
  return opts.ip6 ?? fromNode(6, stored.spec?.bgp?.ipv6Address, firstFoundIPv6);
}

async function joinOnce(kv: ReturnType<typeof openKvStore>, opts: JoinOptions, say: (m: string) => void, claim: { lease: string | null } = { lease: null }): Promise<void> {
  const nodeInfo = kindInfo('Node')!;
  // the addresses this host's interfaces hold, read once when first needed
  let held: ReadonlySet<string> | null | undefined;
  const heldHere = () => (held === undefined ? (held = addressesHeldHere()) : held);
  // At start on etcd, before anything is written: is this node running on another host (its
  // liveness key, control/node-live.ts)? Refused then (NodeLiveElsewhereError: exit 2), the Node
  // untouched; a lease nobody renews is waited out. Else the key is claimed here, in one
  // transaction (of two hosts started at once, one claims it and the other is refused), and only
  // then is the Node written. The embedded store is one machine's (the run lock covers it). The
  // same at a registration after the datastore was replaced (`live` given): the key claimed
  // again (absent in a wiped etcd) before the Node is written, and refused while another host's
  // podway renews it there (that host took the name while the store was empty: stop one of them).
  if ((opts.atStart || opts.live) && hasLeaseReads(kv)) {
    const check = { node: opts.node, me: thisHost(), held: heldHere(), say, ...(opts.signal ? { signal: opts.signal } : {}) };
    if (opts.live && hasLeaseClaims(kv)) {
      const lease = await claimNode(kv, { ...check, record: opts.live, lease: claim.lease });
      if (lease !== claim.lease) {
        claim.lease = lease;
        opts.onLiveClaimed?.(lease);
      }
    } else await awaitNodeFree(kv, check);
  }
  const existing = await kv.get(resourceKey(nodeInfo, opts.node));
  opts.onNodeRead?.(existing);
  const stored: StoredNode = existing ? (JSON.parse(existing.value) as StoredNode) : {};
  const warn = opts.warn ?? say;
  const replacedStored = { 4: false, 6: false };
  const fromNode = (family: 4 | 6, was: string | undefined, detect: () => string | undefined) => {
    if (!opts.atStart) return was ?? detect();
    const c = chooseStartAddress(family, opts.node, was, detect, heldHere());
    if (c.warning) warn(c.warning);
    if (was !== undefined && c.address !== was) replacedStored[family] = true;
    return c.address;
  };
  const ipv4Address = opts.ip === 'none' ? undefined : opts.ip === 'autodetect' ? firstFoundIPv4() : opts.ip ?? fromNode(4, stored.spec?.bgp?.ipv4Address, firstFoundIPv4);
  const ipv6Address = chooseIpv6(opts, stored, fromNode);
  // IP=none: an IPv6-only node, which needs its IPv6 address (calico-node stops likewise).
  if (!ipv4Address && opts.ip === 'none' && !ipv6Address) throw new Error(`node ${opts.node}: --ip none (IP=none) and no IPv6 address to register (give --ip6 ADDR/PREFIX, or an IPv4 address)`);
  if (!ipv4Address && opts.ip !== 'none') throw new Error(`node ${opts.node}: no IPv4 address to register (give --ip ADDR/PREFIX, or --ip none for an IPv6-only node)`);
  // IP=none with an IPv4 address already in the Node: calico-node keeps it (startup.go: "Autodetection
  // for IPv4 disabled, keeping existing value"), and the node stays dual-stack (its model, the other
  // nodes' routes to it), which is not what --ip none asks for. Refused, naming the field, before
  // anything is written.
  const storedIpv4 = stored.spec?.bgp?.ipv4Address;
  if (opts.ip === 'none' && storedIpv4) {
    throw new Error(`node ${opts.node}: --ip none (IP=none), but its Node has spec.bgp.ipv4Address ${storedIpv4}, which podway would keep (as calico-node does) and forward IPv4 on: `
      + `for an IPv6-only node, remove spec.bgp.ipv4Address from Node ${opts.node} (${podwayCommand()} get node ${opts.node} -o yaml, delete the field, ${podwayCommand()} apply -f) and start again; for a dual-stack one, give --ip ${storedIpv4}`);
  }
  // The Node first: IPAM reads its labels (pools' nodeSelectors) to give it a tunnel address.
  // Addresses taken from the Node itself are kept as the Node has them when it is written (they
  // may have changed since the read above: the address monitor), not written back; one replaced
  // at start (no interface here holds it) is written. Per family: IPv4 given (--ip) and IPv6 taken
  // from the Node still keeps the Node's IPv6 address, and the other way round (IPv6 'none'
  // writes none).
  const keepStoredAddresses = { 4: (opts.ip === undefined || opts.ip === 'none') && !replacedStored[4], 6: (opts.ip6 === undefined || opts.ip6 === 'none') && !replacedStored[6] };
  const base: NodeRegistration = { name: opts.node, ...(ipv4Address ? { ipv4Address } : {}), ...(ipv6Address ? { ipv6Address } : {}), ...(keepStoredAddresses[4] || keepStoredAddresses[6] ? { keepStoredAddresses } : {}) };
  const reg = await registerNode(kv, base).catch((e: unknown) => {
    if (!(e instanceof NodeAddressConflictError)) throw e;
    const others = [...new Set(e.conflicts.map((c) => c.node))];
    const gone = others.length === 1 ? `if ${others[0]} is gone, delete its Node first (${podwayCommand()} delete node ${others[0]})` : `if those nodes are gone, delete their Nodes first (${podwayCommand()} delete node NAME)`;
    throw new Error(`${e.message} (calico-node refuses to start too). Give ${opts.node} its own address (--ip / --ip6), or, ${gone}`);
  });
  opts.onNodeRegistered?.(reg.entry);
  // calico-node warns too: a second host started under this node's name does exactly this.
  for (const c of reg.addressChanges) {
    const given = c.family === 4 ? opts.ip : opts.ip6;
    const how = given === undefined || given === 'autodetect' ? 'first-found' : `given with ${c.family === 4 ? '--ip' : '--ip6'}`;
    warn(`node ${opts.node}: its Node's IPv${c.family} address changed from ${c.from} to ${c.to} (${how}); every node now sends ${opts.node}'s pod traffic to ${c.to.split('/')[0]}. If another host runs as ${opts.node}, two hosts share one node name: give each its own --node`);
  }
  // Calico gives an IPv6 VTEP only to a node with an IPv6 address (the tunnel runs over it), and
  // an IPv4 VTEP (or IPIP address) only to one with an IPv4 address (none on an IPv6-only node, IP=none).
  const t = await reconcileTunnelAddrs(kv, opts.node, { assignV6: ipv6Address !== undefined, assignV4: ipv4Address !== undefined });
  for (const [kind, o] of [['vxlan', t.v4], ['vxlan-v6', t.v6], ['ipip', t.ipip]] as const) {
    const k = tunnelKind(kind);
    const { label } = k;
    const handle = k.handle(opts.node);
    if (o.action === 'assigned') {
      opts.onIpam?.('tunnel_address_assigned');
      say(`${label} tunnel address ${o.addr} assigned (handle ${handle})${o.released.length ? `, replacing ${o.released.join(', ')}` : ''}`);
    } else if (o.action === 'released') {
      opts.onIpam?.('tunnel_address_released');
      say(`${label} tunnel address ${o.released.join(', ') || '(none held)'} released: no ${k.encap} pool of IPv${k.version} for this node (handle ${handle})`);
    }
  }
  const addrs = [ipv4Address, ipv6Address, t.v4.addr && `vxlan ${t.v4.addr}`, t.v6.addr && `vxlan-v6 ${t.v6.addr}`, t.ipip.addr && `ipip ${t.ipip.addr}`].filter(Boolean).join(', ');
  // A tunnel address assigned or released is written to the Node too: then it was updated.
  const tunnelsChanged = [t.v4, t.v6, t.ipip].some((o) => o.action === 'assigned' || o.action === 'released');
  say(`node ${opts.node} ${reg.action === 'unchanged' && tunnelsChanged ? 'updated' : reg.action} in ${kv.description} (${addrs})`);
  // CLUSTER_TYPE as calico-node reads it (e.g. "k8s,bgp"), merged into clusterType as Calico merges it
  const ready = await markDatastoreReady(kv, { clusterType: process.env.CLUSTER_TYPE });
  const guid = clusterGuidOf(ready.entry.value);
  if (ready.action !== 'unchanged') say(`datastore marked ready (ClusterInformation default ${ready.action}, clusterGUID ${guid})`);
  if (ready.locked) {
    warn(`ClusterInformation default has datastoreReady: false (the datastore is locked, e.g. by \`calicoctl datastore migrate lock\`): Calico's Felix waits until it is true again; podway leaves it false (it does not unlock a locked datastore)`);
  }
  opts.onClusterGuid?.(guid);
  opts.onDatastoreLocked?.(ready.locked);
}

export interface NodeAddressChange {
  /** The new spec.bgp.ipv4Address ("10.0.0.2/24"); unset keeps the stored one. */
  ipv4Address?: string;
  /** The new spec.bgp.ipv6Address; unset keeps the stored one. */
  ipv6Address?: string;
}

/**
 * This node's Node addresses read and written (stored(), update()) through one store, opened at
 * the first call and kept until close(): the address monitor's (run.ts),
 * which looks every minute for as long as podway runs, and opened a store per look before (for
 * etcd a new client each time: a connection, a TLS handshake, gRPC's channel set up again). The
 * store is this object's own (no other part of the thread closes it); its owner closes it once
 * the monitor stopped (no look under way). Its etcd connections are made again with the
 * thread's others (reconnectEtcdStores: the node's address left) and stay this store's: a read
 * waiting on the old connection is sent again, a write is tried once more (update). A call that
 * found the store unreachable leaves new connections for the next one (reconnect()): between
 * looks the connection is idle, without keepalives (etcd-kv.ts), and one dropped silently on the
 * way (a NAT or a load balancer forgetting it) would otherwise fail every look until TCP gives up,
 * many minutes later; a look made on fresh connections is what the store per look gave. A call
 * after close() fails (the monitor says so; it is stopped by then).
 */
export class NodeAddressStore {
  private kv: KvStore | null = null;
  private closed = false;
  private liveness: NodeLiveness | null = null;

  constructor(
    private readonly spec: DatastoreSpec,
    private readonly node: string,
    private readonly log: { info(m: string): void; warn(m: string): void } = { info: () => {}, warn: () => {} },
    private readonly onLiveStatus: (s: LivenessStatus) => void = () => {},
    /** podway's exit asked for (address-store-thread.ts stopLiveness): the liveness key neither granted nor written again (NodeLiveness stopAsked). */
    private readonly stopAsked: () => boolean = () => false,
  ) {}

  /**
   * Hold this node's liveness key (control/node-live.ts) through this store, from now until
   * close(): the lease the start claimed it with (`lease`) renewed, or one of its own granted and
   * the key written; written again after the lease was lost. Only on etcd (false elsewhere: the
   * embedded store is one machine's, the run lock covers it).
   */
  holdLiveness(record: LiveRecord, lease: string | null = null): boolean {
    if (this.stopAsked()) return false; // podway exits: the claim is revoked, not held
    if (this.liveness && lease !== null) void this.liveness.adopt(lease); // claimed again: that lease now
    if (this.liveness || this.spec.kind !== 'etcd') return this.liveness !== null;
    const kv = this.store();
    if (!hasLeases(kv)) return false;
    this.liveness = new NodeLiveness(kv, this.node, record, this.log, undefined, lease, this.onLiveStatus, this.stopAsked);
    this.liveness.start();
    return true;
  }

  /** The node's addresses as registered now: the liveness key's value follows (same lease). */
  async setLiveAddresses(addresses: readonly string[]): Promise<void> {
    await this.liveness?.setAddresses(addresses);
  }

  private store(): KvStore {
    if (this.closed) throw new Error(`node ${this.node}: the Node address store is closed`);
    if (this.spec.kind === 'file') throw new Error('a file: datastore is read-only');
    // never watched: the embedded store keeps no event history for it (open.ts watches)
    return (this.kv ??= openKvStore(this.spec, { use: 'run', watches: false }));
  }

  /**
   * A running podway re-detected its address (cli/address-monitor.ts): write it to this node's Node
   * (spec.bgp.ipv4Address / ipv6Address by compare-and-swap, every other field kept: tunnel
   * addresses, labels, AS number), as calico-node's monitor-addresses does. One attempt: an
   * unreachable store throws (KvUnavailableError) and the monitor tries again on its next look.
   * Refused, naming it, when another Node already holds the address (Calico checks for conflicting
   * Nodes before it writes a changed address; two Nodes on one address would take each other's
   * traffic). Never on a `file:` datastore (read-only). With `expect` (the repair of a Node another
   * process rewrote): written only while the stored addresses are still exactly `expect` (what the
   * monitor read and judged foreign), in the same compare-and-swap; false (nothing written) when
   * they changed meanwhile. Otherwise true.
   */
  async update(change: NodeAddressChange, expect?: { ipv4: string | null; ipv6: string | null }): Promise<boolean> {
    const kv = this.store();
    const written = await this.freshAfterFailure(kv, async () => {
      try {
        return await updateNodeAddressesIn(kv, this.node, change, expect);
      } catch (e) {
        // Its connection was left for a new one under it (the node address it came from left the
        // node: run.ts reconnectEtcdStores): once more over the new one, now, not at the next look
        // (a minute later by default). The compare-and-swap reads the Node again first: a write of
        // the first attempt that was applied is found there, and not written twice.
        if (!(e instanceof KvUnavailableError && e.reconnected)) throw e;
        return await updateNodeAddressesIn(kv, this.node, change, expect);
      }
    });
    // The liveness key names the node's addresses as the Node has them now (not awaited: its
    // renewal's own failures are its own, said and counted there).
    if (written.ok) void this.liveness?.setAddresses(nodeAddressesOf(written.entry));
    return written.ok;
  }

  /**
   * This node's Node addresses as the store holds them now (spec.bgp.ipv4Address / ipv6Address), for
   * the address monitor's repair of a Node another process rewrote; null when there is no Node or no
   * address in it, or on a file: datastore (ipv4 null on an IPv6-only node's). An unreachable store
   * throws (the monitor concludes nothing from it).
   */
  async stored(): Promise<{ ipv4: string | null; ipv6: string | null } | null> {
    if (this.spec.kind === 'file') return null;
    const kv = this.store();
    const e = await this.freshAfterFailure(kv, () => kv.get(resourceKey(kindInfo('Node')!, this.node)));
    if (!e) return null;
    const bgp = (JSON.parse(e.value) as StoredNode).spec?.bgp;
    return bgp?.ipv4Address || bgp?.ipv6Address ? { ipv4: bgp.ipv4Address ?? null, ipv6: bgp.ipv6Address ?? null } : null;
  }

  /** `fn`; when it finds the store unreachable, new connections for the next call (see the class comment). */
  private async freshAfterFailure<T>(kv: KvStore, fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (e) {
      if (e instanceof KvUnavailableError && !this.closed) kv.reconnect?.();
      throw e;
    }
  }

  /** Closes the store (if one was opened), the liveness lease revoked first; later calls fail. */
  async close(): Promise<void> {
    this.closed = true;
    await this.liveness?.stop();
    this.liveness = null;
    const kv = this.kv;
    this.kv = null;
    await kv?.close();
  }
}

/** A Node's spec.bgp addresses (IPv4 first), as its liveness key names them. */
export function nodeAddressesOf(entry: KvEntry): string[] {
  try {
    const bgp = (JSON.parse(entry.value) as StoredNode).spec?.bgp;
    return [bgp?.ipv4Address, bgp?.ipv6Address].filter((a): a is string => typeof a === 'string' && a !== '');
  } catch {
    return [];
  }
}

async function updateNodeAddressesIn(kv: ReturnType<typeof openKvStore>, node: string, change: NodeAddressChange, expect?: { ipv4: string | null; ipv6: string | null }): Promise<{ ok: boolean; entry: KvEntry }> {
  const conflicts = await nodeAddressConflicts(kv, node, { 4: change.ipv4Address, 6: change.ipv6Address });
  if (conflicts.length > 0) throw new NodeAddressConflictError(node, conflicts);
  let moved = false;
  const entry = await updateNodeSpec(kv, node, (s) => {
    const bgp = { ...((s.bgp ?? {}) as Record<string, unknown>) };
    // The repair's compare-and-swap: the Node as read now (each CAS attempt reads it again) must
    // still name the addresses the monitor judged; else it is left as it is (spec unchanged: no write).
    moved = expect !== undefined && ((bgp.ipv4Address ?? null) !== expect.ipv4 || (bgp.ipv6Address ?? null) !== expect.ipv6);
    if (moved) return;
    if (change.ipv4Address) bgp.ipv4Address = change.ipv4Address;
    if (change.ipv6Address) bgp.ipv6Address = change.ipv6Address;
    s.bgp = bgp as typeof s.bgp;
  });
  if (entry === null) throw new Error(`Node ${node} is not in ${kv.description}`);
  return { ok: !moved, entry };
}
