/**
 * A pod interface here holding an address no workload endpoint of this datastore names. `podway
 * run` finds them (engine.ts adoptLeftovers, endpointsGone):
 * - at start, from the pod routes an earlier run left (`route`), and from the addresses the pod
 *   veths' peers hold in their pods' namespaces (`pod`: found whatever the routes and the
 *   datastore say, e.g. after `podway delete node` removed a running node's endpoints and its
 *   podway removed their routes), named or found through /proc, and the tap/tun pods' devices
 *   podway's CNI made for this node, in their pods' namespaces;
 * - while running, when an endpoint is deleted and its veth (or tap/tun device) stays (`deleted`).
 * The usual causes: a node moved to another datastore (the pod made under the old one keeps its
 * address, which the new store's IPAM never heard of), or its Node (so its endpoints) deleted
 * while its pods ran. Each is said once at warn level, listed in `podway status` while the
 * interface exists and counted in /metrics (podway_orphan_pod_addresses). `podway run` holds such an
 * address in IPAM as soon as it is found (cli/orphan-holds.ts), and the CNI ADD on the node does
 * too (cni/orphan-hold.ts): no pod, here or on another node, is given it.
 */

import { execFile, spawn } from 'node:child_process';
import { readdirSync, readlinkSync, statSync } from 'node:fs';
import { POD_DEVICE_ALIAS, POD_DEVICE_NAME } from '../control/ipam/orphan-holds';
import { podwayCommand } from '../util/invocation';

/**
 * How a scan starts its commands (`ip`, `nsenter`, the batch shell) and collects their output,
 * within `timeoutMs`; the command's whole process group is killed at the timeout. `podway run`
 * passes its Spawner's (spawner.ts: the forwarding thread forks nothing, its rings mapped); the
 * default starts them from this process (the CNI plugin, tests).
 */
export type ScanExec = (file: string, args: string[], timeoutMs: number) => Promise<{ code: number | null; stdout: string; stderr?: string; error?: string | null }>;

export interface OrphanPodAddress {
  readonly ifname: string;
  readonly address: string;
  /** How it was found (see the top); absent: not said (an older podway's status). */
  readonly source?: 'route' | 'pod' | 'deleted';
  /** A tap/tun pod's: its device's namespace (a /run/netns name's path, or /proc/PID/ns/net) and that namespace's inode (how it is known to be there still). */
  readonly netns?: string;
  readonly netnsInode?: number;
}

const FOUND: Record<NonNullable<OrphanPodAddress['source']>, string> = {
  route: 'a route an earlier run made',
  pod: 'on its pod\'s interface, in the pod\'s namespace',
  deleted: 'its WorkloadEndpoint was deleted while the interface stayed',
};

/** The warning (and the status line) for one such interface. */
export function orphanPodLine(o: OrphanPodAddress): string {
  return `interface ${o.ifname} holds pod address ${o.address} (${o.source ? FOUND[o.source] : 'found on this node'}) but no workload endpoint of this datastore names it: `
    + 'a pod made under another datastore (or whose endpoint or Node was deleted) keeps the address, which IPAM would give to a new pod (podway holds it in IPAM for this node: handle podway-orphan.<node>.<interface>); '
    + `remove that pod (its CNI DEL, e.g. podman rm), or remove and re-add it under this datastore (\`${podwayCommand()} cni install --datastore ...\` first)${o.source === 'route' ? '; its route here is removed' : ''}`;
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
export function podVethPeers(linksJson: string): { ifname: string; ifindex: number | null; peerIndex: number | null; nsid: number | null }[] {
  return parse(linksJson).filter((l) => l.address === POD_HOST_MAC).map((l) => ({
    ifname: String(l.ifname),
    ifindex: typeof l.ifindex === 'number' ? l.ifindex : null,
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

/** In `ip -j -d addr show` of a namespace: the ifindex of a veth whose peer is ifindex `hostIndex` in another namespace, with that ifindex `peerIndex`. */
export function isPeerIn(addrJson: string, peerIndex: number, hostIndex: number): boolean {
  return parse(addrJson).some((l) => l.ifindex === peerIndex && l.link_index === hostIndex && typeof l.link_netnsid === 'number');
}

/**
 * The tap/tun pod devices podway's CNI made for `node` in `ip -j -d addr show` of a namespace:
 * the alternative name podway knows the device by (tap/tun + 11 hex digits) and the node named in
 * its alias (`podway:<node>`; a device made by a podway before the alias is not found), with their
 * global addresses.
 */
export function podDevicesIn(addrJson: string, node: string): { ifname: string; address: string }[] {
  const out: { ifname: string; address: string }[] = [];
  for (const l of parse(addrJson)) {
    if (l.ifalias !== `${POD_DEVICE_ALIAS}${node}` || !Array.isArray(l.altnames)) continue;
    const name = (l.altnames as unknown[]).find((a): a is string => typeof a === 'string' && POD_DEVICE_NAME.test(a));
    if (!name) continue;
    for (const a of (l.addr_info ?? []) as Json[]) if (a.scope === 'global' && typeof a.local === 'string') out.push({ ifname: name, address: addressKey(a.local) });
  }
  return out;
}

/** A namespace as found: how to enter it and its inode. */
export interface PodNamespace {
  /** `ip -n` name ('' for none: entered by path with nsenter). */
  readonly name: string;
  /** Its path: /run/netns/NAME, or /proc/PID/ns/net of a process in it. */
  readonly path: string;
  readonly inode: number;
}

/** The arguments of `lsns` that list each network namespace some process is in with its ID here. */
export const LSNS_NETNS_IDS = ['-t', 'net', '-n', '-r', '-o', 'NS,NETNSID'] as const;

/**
 * `lsns` LSNS_NETNS_IDS's answer: each namespace (by inode) with the ID this namespace gives it (as
 * `ip -j link`'s link_netnsid numbers it), null for 'unassigned' (it has none here).
 */
export function parseLsnsNetnsIds(out: string): Map<number, number | null> {
  const ids = new Map<number, number | null>();
  for (const line of out.split('\n')) {
    const [ns, id] = line.trim().split(/\s+/);
    if (!/^[0-9]+$/.test(ns ?? '')) continue;
    if (/^[0-9]+$/.test(id ?? '')) ids.set(Number(ns), Number(id));
    else if (id === 'unassigned') ids.set(Number(ns), null);
  }
  return ids;
}

/**
 * Each namespace some process is in with its ID here (parseLsnsNetnsIds). Empty when lsns cannot
 * run: the caller then cannot tell namespaces apart this way and says so.
 */
async function namespaceIds(run: (cmd: string, args: string[]) => Promise<string>): Promise<Map<number, number | null>> {
  try {
    return parseLsnsNetnsIds(await run('lsns', [...LSNS_NETNS_IDS]));
  } catch {
    return new Map(); // lsns missing or failing: none told apart
  }
}

/** The inode of a namespace file (stat follows /proc's ns links), null when it is gone. */
export function netnsInode(path: string): number | null {
  try {
    return statSync(path).ino;
  } catch {
    return null;
  }
}

/**
 * The network namespaces on the machine other than this process's: those named under /run/netns
 * (as podman, containerd and CRI-O name their pods'), and those only processes are in (a runtime
 * that names none), found through /proc/PID/ns/net, one process per namespace. Bounded: at most
 * MAX_NAMESPACES.
 */
export function listNamespaces(): PodNamespace[] {
  const own = netnsInode('/proc/self/ns/net');
  const seen = new Set<number>(own === null ? [] : [own]);
  const out: PodNamespace[] = [];
  let names: string[] = [];
  try { names = readdirSync('/run/netns'); } catch { /* none named */ }
  for (const n of names.sort()) {
    const path = `/run/netns/${n}`;
    const ino = netnsInode(path);
    if (ino === null || seen.has(ino)) continue;
    seen.add(ino);
    out.push({ name: n, path, inode: ino });
    if (out.length >= MAX_NAMESPACES) return out;
  }
  let pids: string[] = [];
  try { pids = readdirSync('/proc').filter((p) => /^[0-9]+$/.test(p)); } catch { /* no /proc */ }
  for (const pid of pids) {
    const path = `/proc/${pid}/ns/net`;
    let ino: number;
    try {
      // "net:[4026532840]": the inode, without a stat
      const m = /\[([0-9]+)\]/.exec(readlinkSync(path));
      if (!m) continue;
      ino = Number(m[1]);
    } catch {
      continue; // exited, or a kernel thread
    }
    if (seen.has(ino)) continue;
    seen.add(ino);
    out.push({ name: '', path, inode: ino });
    if (out.length >= MAX_NAMESPACES) break;
  }
  return out;
}

/** The most namespaces looked into by one scan. */
const MAX_NAMESPACES = 4096;

/**
 * How a namespace's `ip -j -d addr show` is keyed in a scan: `n:NAME` (a /run/netns name, read with
 * `ip -n NAME`), `p:PATH` (/proc/PID/ns/net, read with `nsenter --net=PATH ip`).
 */
export const namespaceKey = (s: PodNamespace): string => (s.name !== '' ? `n:${s.name}` : `p:${s.path}`);

// One shell reads every namespace given (its arguments, namespaceKey's form) in turn: a line
// \x01INDEX before each one's `ip -j -d addr show` (one line of JSON), a line \x02 after one that failed.
const BATCH_SCRIPT = 'i=0; for k do printf \'\\001%d\\n\' "$i"; '
  + 'case $k in n:*) ip -j -n "${k#n:}" -d addr show ;; *) nsenter --net="${k#p:}" ip -j -d addr show ;; esac 2>/dev/null || printf \'\\002\\n\'; '
  + 'i=$((i+1)); done';

/**
 * `ip -j -d addr show` of many namespaces (keys as namespaceKey makes them, not '' for this one)
 * from one process started here (a shell running one `ip` per namespace) instead of one started
 * per namespace: podway run's start looks into every namespace on the machine (100 pods: 100
 * `ip`s from Node's main thread before this). Returns the namespaces read; one that failed or
 * vanished meanwhile is not in it (its caller reads it alone, as before, for the error), nor is
 * any when the shell could not run, or did not end within `timeoutMs` (10 s + 100 ms a namespace
 * by default: then its whole process group is killed, a hung `ip` or `nsenter` with it).
 */
export async function readNamespaceAddrs(keys: readonly string[], opts: { timeoutMs?: number; exec?: ScanExec } = {}): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  const todo = keys.filter((k) => /^[np]:./.test(k) && !k.includes('\n'));
  if (todo.length === 0) return out;
  const timeoutMs = opts.timeoutMs ?? 10_000 + 100 * todo.length;
  const exec = opts.exec;
  const { stdout, ok } = exec
    ? await exec('sh', ['-c', BATCH_SCRIPT, 'sh', ...todo], timeoutMs).then((r) => ({ stdout: r.stdout, ok: r.code === 0 && !r.error }), () => ({ stdout: '', ok: false }))
    : await new Promise<{ stdout: string; ok: boolean }>((resolve) => {
      // A process group of its own, killed whole at the timeout: execFile's own timeout kills only
      // the shell, and a hung `ip` or `nsenter` kept the stdout open, so execFile (which waits for
      // 'close') never answered: podway run's start, or a CNI ADD under the IPAM lock, hung with it.
      // (execFile passes no `detached` to spawn: spawn itself.)
      const child = spawn('sh', ['-c', BATCH_SCRIPT, 'sh', ...todo], { stdio: ['ignore', 'pipe', 'ignore'], detached: true });
      const chunks: Buffer[] = [];
      let size = 0;
      let failed = false;
      const killGroup = () => {
        failed = true;
        try {
          if (child.pid !== undefined) process.kill(-child.pid, 'SIGKILL');
        } catch {
          // the group already gone
        }
      };
      const timer = setTimeout(killGroup, timeoutMs);
      child.stdout!.on('data', (b: Buffer) => {
        size += b.length;
        if (size > 256 << 20) killGroup(); // as execFile's maxBuffer
        else chunks.push(b);
      });
      let done = false;
      const end = (ok: boolean) => {
        if (done) return;
        done = true;
        clearTimeout(timer);
        resolve({ stdout: Buffer.concat(chunks).toString('utf8'), ok });
      };
      child.on('error', () => end(false)); // sh could not start
      child.on('close', (code) => end(!failed && code === 0));
    });
  let cur = -1;
  let text: string[] = [];
  // a section is whole when the next one starts, or (the last) when the shell ended well
  const close = (whole: boolean) => {
    if (cur >= 0 && cur < todo.length && whole) out.set(todo[cur]!, text.join('\n'));
    text = [];
  };
  for (const line of stdout.split('\n')) {
    if (line.startsWith('\x01')) {
      close(true);
      cur = Number(line.slice(1));
      if (!Number.isInteger(cur)) cur = -1;
    } else if (line === '\x02') {
      text = [];
      cur = -1; // failed: not kept
    } else if (cur >= 0) {
      text.push(line);
    }
  }
  close(ok);
  for (const [k, v] of out) if (v.trim() === '') out.delete(k);
  return out;
}

/**
 * The addresses every pod veth's peer (the pod's own interface, in its namespace) holds: a veth
 * pod's address lives there, not on the host side, and stays there whatever the datastore or the
 * node's routes say (a route podway wrote is removed with its endpoint; a pod made under another
 * datastore never had one here). The pod's namespace is entered by its name under /run/netns
 * (`ip netns list-id` maps the veth's link-netnsid to it; podman, containerd and CRI-O name theirs
 * so); a veth whose peer's namespace has no name is looked for in the namespaces processes are in
 * (/proc/PID/ns/net: a runtime that names none), by its peer's ifindex pointing back at it, and
 * listed in `unread` when found in none (or in more than one). `ip` is run twice, then once per
 * pod namespace (and once per namespace on the machine when a veth's is unnamed), those from one
 * shell (readNamespaceAddrs): three processes started from here, whatever the count of pods; a
 * namespace that shell could not read (gone meanwhile, or failed) is read alone, as before.
 * `exclude`: host-side names not to look at (an ADD's own, being made). `skipRouted` (the CNI
 * ADD's scan, run on every ADD under the IPAM lock): veths with a host route are not looked into
 * (two `ip route` reads instead of one `ip` per pod namespace). `devicesOf` (podway run's scan):
 * also the tap/tun pods podway's CNI made for that node (their device, in the pod's namespace, has
 * no host side: every namespace on the machine is looked into, podDevicesIn).
 */
export async function readPodPeerAddresses(exclude: ReadonlySet<string> = new Set(), opts: { skipRouted?: boolean; devicesOf?: string; exec?: ScanExec } = {}): Promise<PodPeerAddresses> {
  const exec = opts.exec;
  const run = (cmd: string, args: string[]) => (exec
    ? exec(cmd, args, 10_000).then((r) => {
      if (r.code === 0 && !r.error) return r.stdout;
      throw new Error(`${cmd} ${args.join(' ')}: ${(r.stderr ?? '').trim() || r.error || `exit code ${r.code}`}`);
    })
    : new Promise<string>((resolve, reject) => {
      execFile(cmd, args, { encoding: 'utf8', timeout: 10_000, maxBuffer: 64 << 20 }, (e, out, err) => (e ? reject(new Error(`${cmd} ${args.join(' ')}: ${String(err).trim() || e.message}`)) : resolve(out)));
    }));
  const ip = (args: string[]) => run('ip', ['-j', ...args]);
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
  if (veths.length === 0 && opts.devicesOf === undefined) return { found: [], unread: [] };
  const names = new Map<number, string>();
  if (veths.length > 0) {
    try {
      for (const n of parse(await ip(['netns', 'list-id']))) if (typeof n.nsid === 'number' && typeof n.name === 'string') names.set(n.nsid, n.name);
    } catch {
      /* none named: each veth is looked for through /proc below */
    }
  }
  // `ip -j -d addr show` of each namespace read, by name ('' this one) or by path (/proc): those
  // read together (readNamespaceAddrs) first, then any one not read so alone (its error said)
  const batched = new Map<string, string>();
  const byNs = new Map<string, Promise<string>>();
  const addrsOf = (key: string, args: () => Promise<string>) => {
    let p = byNs.get(key);
    if (!p) {
      const b = batched.get(key);
      byNs.set(key, (p = b !== undefined ? Promise.resolve(b) : args()));
    }
    return p;
  };
  const prefetch = async (keys: Iterable<string>) => {
    const want = [...new Set(keys)].filter((k) => k !== 'n:' && !batched.has(k) && !byNs.has(k));
    if (want.length < 2) return; // one: read alone, as the batch would
    for (const [k, v] of await readNamespaceAddrs(want, { exec })) batched.set(k, v);
  };
  const named = (ns: string) => addrsOf(`n:${ns}`, () => ip(ns === '' ? ['-d', 'addr', 'show'] : ['-n', ns, '-d', 'addr', 'show']));
  const entered = (s: PodNamespace) => (s.name !== '' ? named(s.name) : addrsOf(`p:${s.path}`, () => run('nsenter', [`--net=${s.path}`, 'ip', '-j', '-d', 'addr', 'show'])));
  let spaces: PodNamespace[] | null = null;
  let nsids: Map<number, number | null> | null = null;
  {
    // the namespaces this scan will look into, read at once: the pods' named ones, and (devicesOf) every one
    const keys: string[] = [];
    for (const v of veths) {
      const ns = v.nsid === null ? undefined : names.get(v.nsid);
      if (ns !== undefined && v.peerIndex !== null) keys.push(`n:${ns}`);
    }
    if (opts.devicesOf !== undefined) {
      spaces = listNamespaces();
      keys.push(...spaces.map(namespaceKey));
    }
    await prefetch(keys);
  }
  const found: OrphanPodAddress[] = [];
  const unread: string[] = [];
  const peerAddresses = (v: (typeof veths)[number], ns: string, addrs: string) => {
    try {
      for (const address of peerAddressesIn(addrs, v.peerIndex!)) found.push({ ifname: v.ifname, address });
    } catch (e) {
      unread.push(`${v.ifname} (namespace ${ns || 'this one'}: ${(e as Error).message})`);
    }
  };
  for (const v of veths) {
    // no link-netnsid: the peer is in this namespace ('' below)
    const ns = v.nsid === null ? '' : names.get(v.nsid);
    if (v.peerIndex === null) {
      unread.push(`${v.ifname} (its peer's ifindex not given)`);
      continue;
    }
    if (ns === undefined) {
      // no name under /run/netns: the namespace a process is in whose veth's peer points back at it
      if (v.ifindex === null) {
        unread.push(`${v.ifname} (its pod's namespace, nsid ${v.nsid}, has no name under /run/netns)`);
        continue;
      }
      if (spaces === null) {
        spaces = listNamespaces();
        await prefetch(spaces.map(namespaceKey));
      }
      const hits: { s: PodNamespace; addrs: string }[] = [];
      for (const s of spaces) {
        let addrs: string;
        try { addrs = await entered(s); } catch { continue; } // gone meanwhile, or not ours to enter
        if (isPeerIn(addrs, v.peerIndex, v.ifindex)) hits.push({ s, addrs });
      }
      if (hits.length > 1) {
        // Index numbers repeat across namespaces (each new namespace numbers from 1): several may
        // hold an ifindex-peerIndex pair. lsns gives each process's namespace the ID this namespace
        // numbers it with, which the veth's link-netnsid names: keep the one that is v's.
        nsids ??= await namespaceIds(run);
        const mine = hits.filter((h) => nsids!.get(h.s.inode) === v.nsid);
        if (mine.length === 1) hits.splice(0, hits.length, mine[0]!);
      }
      if (hits.length !== 1) {
        unread.push(`${v.ifname} (its pod's namespace, nsid ${v.nsid}, has no name under /run/netns and ${hits.length === 0 ? 'no process is in it' : `${hits.length} namespaces hold a peer of its ifindex`})`);
        continue;
      }
      peerAddresses(v, hits[0]!.s.path, hits[0]!.addrs);
      continue;
    }
    let addrs: string;
    try {
      addrs = await named(ns);
    } catch (e) {
      unread.push(`${v.ifname} (namespace ${ns || 'this one'}: ${(e as Error).message.split('\n')[0]})`);
      continue;
    }
    peerAddresses(v, ns, addrs);
  }
  if (opts.devicesOf !== undefined) {
    spaces ??= listNamespaces();
    for (const s of spaces) {
      let addrs: string;
      try { addrs = await entered(s); } catch { continue; } // gone meanwhile
      for (const d of podDevicesIn(addrs, opts.devicesOf)) found.push({ ...d, netns: s.path, netnsInode: s.inode });
    }
  }
  return { found, unread };
}

/**
 * Whether a tap/tun pod's device (podway's alternative name `altName`) is still in the namespace
 * at `netns` (a path), and its global addresses there; null when the namespace or the device is
 * gone. Throws when the namespace could not be read (nsenter or ip failed, or did not answer within
 * 10 s): that says nothing of the device, and a caller that releases what is gone keeps it.
 */
export async function readPodDevice(netns: string, altName: string, exec?: ScanExec): Promise<{ inode: number; addresses: string[] } | null> {
  const inode = netnsInode(netns);
  if (inode === null) return null;
  const args = [`--net=${netns}`, 'ip', '-j', '-d', 'addr', 'show'];
  const out = exec
    ? await exec('nsenter', args, 10_000).then((r) => {
      if (r.code === 0 && !r.error) return r.stdout;
      throw new Error(`nsenter ${args.join(' ')}: ${(r.stderr ?? '').trim() || r.error || `exit code ${r.code}`}`);
    })
    : await new Promise<string>((resolve, reject) => {
      execFile('nsenter', args, { encoding: 'utf8', timeout: 10_000, maxBuffer: 64 << 20 }, (e, stdout, stderr) => (e ? reject(new Error(`nsenter ${args.join(' ')}: ${String(stderr).trim() || e.message}`)) : resolve(stdout)));
    });
  // the namespace gone (or another in its place) while it was read: gone
  if (netnsInode(netns) !== inode) return null;
  const link = parse(out).find((l) => Array.isArray(l.altnames) && (l.altnames as unknown[]).includes(altName));
  if (!link) return null;
  return { inode, addresses: ((link.addr_info ?? []) as Json[]).filter((a) => a.scope === 'global' && typeof a.local === 'string').map((a) => addressKey(String(a.local))) };
}
