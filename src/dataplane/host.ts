/**
 * What podway needs from the node's own kernel, set or checked once at start and on endpoint
 * changes (never per packet):
 * - the underlay interface (the one holding the node IP), its MAC and MTU;
 * - the kernel must not forward pod transit traffic too: forwarding=0 on pod veths and the underlay,
 *   proxy_arp=0 on pod veths (podway answers 169.254.1.1 itself);
 * - traffic between a pod and its own node still uses the kernel: a /32 route and a permanent
 *   neighbour entry per veth pod, as Felix programs them.
 */
import { makeDirsSync } from '../util/make-dirs';
import { replaceFileSync } from '../util/replace-file';
import { execFile, execFileSync } from 'node:child_process';
import { performance } from 'node:perf_hooks';
import { readFileSync, writeFileSync, existsSync, rmSync } from 'node:fs';
import * as nodePath from 'node:path';
import { formatIpv4, parseIpv4, parseMac } from '../packet';
import { canonicalIpv6 } from '../packet/ipv6';
import { assembleBpf, Bpf, type BpfInsn } from './bpf';
import { SteerBuilder, jeqFar, type Steer } from './steer';
import { parseLearnedRoutes } from './host-programmer';
import { isSafeIfname } from './ifname';
import { parseLocalTable } from './local-addrs';
import { covers6, mask32, mask6Word, parseIp6 } from '../lpm/cidr';

export interface Underlay {
  name: string;
  mac: Uint8Array;
  macText: string;
  mtu: number;
}

/**
 * The interface holding the node's address: its IPv4 address (Node spec.bgp.ipv4Address), or on an
 * IPv6-only node (`nodeIp` null: IP=none) its IPv6 address (spec.bgp.ipv6Address, `nodeIp6`).
 * `linksJson`: the output of `ip -j addr show` read already (readHostAtStart); else read now.
 */
export function findUnderlay(nodeIp: number | null, nodeIp6: string | null = null, linksJson?: string): Underlay {
  const want = nodeIp !== null ? formatIpv4(nodeIp) : nodeIp6 !== null ? canonical6(nodeIp6) : null;
  if (want === null) throw new Error('the node has neither an IPv4 nor an IPv6 address (Node spec.bgp.ipv4Address / ipv6Address)');
  const field = nodeIp !== null ? 'spec.bgp.ipv4Address' : 'spec.bgp.ipv6Address';
  // iproute2 rather than os.networkInterfaces(): libuv lists only interfaces that are up and
  // running, and a veth's operstate trails its carrier by up to a second (linkwatch).
  let links: { ifname: string; mtu: number; address?: string; addr_info?: { local?: string }[] }[] = [];
  try {
    links = JSON.parse(linksJson ?? execFileSync('ip', ['-j', 'addr', 'show'], { encoding: 'utf8', timeout: 10_000 }));
  } catch (e) {
    throw new Error(`cannot list interfaces (ip -j addr): ${(e as Error).message}`);
  }
  const holds = (local: string | undefined) => local !== undefined && (nodeIp !== null ? local === want : local.includes(':') && canonical6(local) === want);
  for (const l of links) {
    if ((l.addr_info ?? []).some((a) => holds(a.local))) {
      if (!l.address) throw new Error(`interface ${l.ifname} holding the node IP ${want} has no MAC address (not Ethernet?)`);
      return { name: l.ifname, mac: parseMac(l.address), macText: l.address, mtu: l.mtu ?? 1500 };
    }
  }
  throw new Error(`no interface holds the node IP ${want} (Node ${field}); is podway running in the node's network namespace?`);
}

/** An IPv6 address in its one spelling (packet/ipv6's canonicalIpv6); text that is not one is
 * compared as it is, lowercased (it then matches nothing but itself). */
function canonical6(text: string): string {
  try {
    return canonicalIpv6(text);
  } catch {
    return text.toLowerCase();
  }
}

/** Interfaces Calico's `first-found` autodetection skips (pods, tunnels, bridges, loopback). */
const NOT_A_NODE_INTERFACE = /^(lo|docker|cbr|dummy|virbr|lxcbr|veth|cali|tunl|flannel|kube-ipvs|cni|vxlan\.calico|vxlan-v6\.calico|wireguard\.cali|wg-v6\.cali|nodelocaldns|podway|tap|tun)/;

/** One address of `ip -j addr show`, with the fields first-found looks at. */
interface IpAddrInfo { family?: string; local?: string; prefixlen?: number; scope?: string; deprecated?: boolean; tentative?: boolean; dadfailed?: boolean }

/** `ip -j addr show` as first-found reads it. */
type IpLinks = { ifname: string; flags?: string[]; addr_info?: IpAddrInfo[] }[];

function ipAddrShow(): IpLinks | undefined {
  try {
    return JSON.parse(execFileSync('ip', ['-j', 'addr', 'show'], { encoding: 'utf8', timeout: 10_000 })) as IpLinks;
  } catch {
    return undefined;
  }
}

/**
 * The first global address of `family` ("inet" or "inet6") that `usable` accepts, on an interface
 * that is up and not a pod, tunnel or bridge device, as "addr/prefix" (`hostLen` when ip gives no
 * prefix). Undefined when there is none. Serves firstFoundIPv4/6 and readNodeAddresses.
 */
function firstFoundAddress(links: IpLinks, family: 'inet' | 'inet6', hostLen: number, usable: (a: IpAddrInfo) => boolean): string | undefined {
  for (const l of links) {
    if (NOT_A_NODE_INTERFACE.test(l.ifname) || !(l.flags ?? []).includes('UP')) continue;
    const a = (l.addr_info ?? []).find((x) => x.family === family && x.scope === 'global' && x.local && usable(x));
    if (a) return `${a.local}/${a.prefixlen ?? hostLen}`;
  }
  return undefined;
}

const usable6 = (x: IpAddrInfo) => !x.deprecated && !x.tentative && !x.dadfailed;

/**
 * The node's address as Calico's default `first-found` finds it: the first global IPv4 address
 * (with its prefix, "10.0.0.1/24") of an interface that is up and not a pod, tunnel or bridge
 * device. Undefined when there is none or `ip` fails. (Start-up only: it runs `ip` and waits;
 * a running podway re-detects with readNodeAddresses.)
 */
export function firstFoundIPv4(): string | undefined {
  const links = ipAddrShow();
  return links && firstFoundAddress(links, 'inet', 32, () => true);
}

/**
 * The first global IPv6 address of an up interface that is not podway's or a pod's, with its
 * prefix ("fd00:99::1/64"), as Calico's IP6 autodetection (first-found) picks; undefined when none.
 * Deprecated (preferred_lft 0) and tentative addresses are skipped: nothing can be sent from them.
 */
export function firstFoundIPv6(): string | undefined {
  const links = ipAddrShow();
  return links && firstFoundAddress(links, 'inet6', 128, usable6);
}

/** What a running podway's address autodetection sees on the node (readNodeAddresses). */
export interface NodeAddresses {
  /** first-found's IPv4 and IPv6 picks ("addr/prefix"), as at start (firstFoundIPv4/6). */
  readonly ipv4?: string;
  readonly ipv6?: string;
  /** Every address on any interface (without prefix; IPv6 as `ip` prints it, lower case). */
  readonly all: ReadonlySet<string>;
}

/**
 * first-found's picks and every address held, from one `ip -j addr show` run through `exec`
 * (the engine's spawner: the forwarding thread never waits on it). Null when `ip` fails or its
 * output cannot be read: nothing is concluded from a failed look.
 */
export async function readNodeAddresses(exec?: ExecFn): Promise<NodeAddresses | null> {
  const run: ExecFn = exec ?? execChild;
  let links: IpLinks;
  try {
    const r = await run('ip', ['-j', 'addr', 'show'], 10_000);
    if (r.code !== 0) return null;
    links = JSON.parse(r.stdout) as IpLinks;
    if (!Array.isArray(links)) return null;
  } catch {
    return null;
  }
  const all = new Set<string>();
  for (const l of links) for (const a of l.addr_info ?? []) if (a.local) all.add(a.local.toLowerCase());
  return { ipv4: firstFoundAddress(links, 'inet', 32, () => true), ipv6: firstFoundAddress(links, 'inet6', 128, usable6), all };
}

export function interfaceExists(name: string): boolean {
  return existsSync(`/sys/class/net/${name}`);
}

/** Whether the interface is administratively up (IFF_UP in sysfs flags; one small file read),
 * which is what the kernel needs to take routes through it; false when there is none. */
export function interfaceAdminUp(name: string): boolean {
  try {
    return (Number(readFileSync(`/sys/class/net/${name}/flags`, 'utf8')) & 0x1) !== 0;
  } catch {
    return false;
  }
}

/** The interface's index in this namespace, or null when there is none by that name. */
export function interfaceIndex(name: string): number | null {
  try {
    return Number(readFileSync(`/sys/class/net/${name}/ifindex`, 'utf8'));
  } catch {
    return null;
  }
}

/** Whether a tap/tun fd of this process is still attached to its device (/proc fdinfo's `iff`
 * names it; empty once the device was deleted). True when that cannot be read. */
export function tunAttached(fd: number): boolean {
  try {
    const m = /^iff:\t(.*)$/m.exec(readFileSync(`/proc/self/fdinfo/${fd}`, 'utf8'));
    return m === null || m[1] !== '';
  } catch {
    return true;
  }
}

/** A pod /32 or /128 route (and its permanent neighbour, when there is one) found on the node:
 * `ip` (IPv4, host order) or `ip6` (text as `ip` prints it) is set. */
export interface FoundPodRoute { ifname: string; ip?: number; ip6?: string; mac: string | null }

/** Calico's MAC on the host end of a pod veth (the CNI plugin and Calico's set it). */
const CALICO_HOST_MAC = 'ee:ee:ee:ee:ee:ee';

/**
 * The /32 `scope link` and /128 routes of the main table and the permanent neighbours on veths with
 * Calico's host-end MAC, as podway programs them for its pods: at start these may be left by an
 * earlier run that was killed (SIGKILL, a crash) while pods were removed, which nobody would
 * remove otherwise. Read synchronously, at start-up only; empty when unreadable.
 */
export function readPodRoutesSync(): FoundPodRoute[] {
  const ip = (args: string[]) => execFileSync('ip', ['-j', ...args], { encoding: 'utf8', timeout: 10_000 });
  try {
    const links = ip(POD_ROUTE_READS[0]);
    if (podVeths(links).size === 0) return [];
    return podRoutesFrom([links, ...POD_ROUTE_READS.slice(1).map(ip)]);
  } catch {
    return [];
  }
}

/** What readPodRoutesSync reads (`ip -j` and these): the veths, the permanent neighbours, the routes. */
const POD_ROUTE_READS = [['link', 'show', 'type', 'veth'], ['neigh', 'show', 'nud', 'permanent'], ['-4', 'route', 'show', 'table', 'main', 'scope', 'link'], ['-6', 'route', 'show', 'table', 'main']];

function podVeths(linksJson: string): Set<string> {
  return new Set((JSON.parse(linksJson || '[]') as Record<string, unknown>[]).filter((l) => l.address === CALICO_HOST_MAC).map((l) => String(l.ifname)));
}

/** The pod routes in the outputs of POD_ROUTE_READS (throws on one that does not parse). */
function podRoutesFrom(outs: string[]): FoundPodRoute[] {
  const parse = (text: string) => JSON.parse(text || '[]') as Record<string, unknown>[];
  const [links = '', neigh = '', r4 = '', r6 = ''] = outs;
  {
    const veths = podVeths(links);
    if (veths.size === 0) return [];
    const macs = new Map<string, string>();
    for (const n of parse(neigh)) {
      if (veths.has(String(n.dev)) && typeof n.lladdr === 'string') macs.set(`${n.dev} ${n.dst}`, n.lladdr);
    }
    const out: FoundPodRoute[] = [];
    for (const r of parse(r4)) {
      const dst = String(r.dst);
      if (dst.includes('/') || dst === 'default' || !veths.has(String(r.dev)) || (r.protocol !== undefined && r.protocol !== 'boot')) continue;
      out.push({ ifname: String(r.dev), ip: parseIpv4(dst), mac: macs.get(`${r.dev} ${dst}`) ?? null });
    }
    // IPv6: a /128 prints without its length; the kernel's own routes on the veth (fe80::/64,
    // multicast, local) are `proto kernel` or in other tables, so never taken.
    for (const r of parse(r6)) {
      const dst = String(r.dst);
      if (dst.includes('/') || dst === 'default' || !dst.includes(':') || !veths.has(String(r.dev)) || r.gateway !== undefined || (r.protocol !== undefined && r.protocol !== 'boot')) continue;
      out.push({ ifname: String(r.dev), ip6: dst, mac: macs.get(`${r.dev} ${dst}`) ?? null });
    }
    return out;
  }
}

/**
 * Learned routes an earlier run put in the main table (protocol `bird`, metric 32, a gateway; see
 * host-programmer.ts HostLearnedRoute), IPv4 and IPv6, for the host programmer to adopt. A route
 * of another protocol or metric (the operator's own default route) is never listed, so never
 * removed. A family whose table cannot be read gives none.
 */
export function readLearnedRoutesSync(proto: string, metric: number): FoundLearnedRoute[] {
  const out: FoundLearnedRoute[] = [];
  for (const family of [4, 6] as const) {
    try {
      out.push(...parseLearnedRoutes(execFileSync('ip', learnedRouteArgs(family, proto), { encoding: 'utf8', timeout: 10_000 }), metric, family));
    } catch {
      /* no such table (IPv6 disabled): none of this family */
    }
  }
  return out;
}

/** `ip` arguments reading one family's `local` entries of the kernel's local table. */
const localTableArgs = (family: 4 | 6) => ['-j', `-${family}`, 'route', 'show', 'table', 'local', 'type', 'local'];

/**
 * The kernel's local table (local-addrs.ts), both families read at once through `exec` (the
 * engine's spawner: the forwarding thread never waits on `ip`). A family whose read failed is
 * null (IPv6 turned off at boot, `ip` failing): nothing is concluded about it.
 */
export async function readLocalAddresses(exec?: ExecFn): Promise<{ v4: string[] | null; v6: string[] | null }> {
  const run: ExecFn = exec ?? execChild;
  const one = (family: 4 | 6) => run('ip', localTableArgs(family), 10_000).then(
    (r) => {
      try {
        return r.code === 0 ? parseLocalTable(r.stdout) : null;
      } catch {
        return null;
      }
    },
    () => null,
  );
  const [v4, v6] = await Promise.all([one(4), one(6)]);
  return { v4, v6 };
}

export type FoundLearnedRoute = { cidr: string; via: string; dev: string };
const learnedRouteArgs = (family: 4 | 6, proto: string) => ['-j', `-${family}`, 'route', 'show', 'table', 'main', 'proto', proto];

/**
 * What the first apply reads from the host with `ip` (the interfaces for the underlay, the main
 * table, the pod routes and learned routes an earlier run left) and `nft list tables` (a leftover
 * IPv6 NAT table), read at once by
 * readHostAtStart: without blocking, all at the same time, while podway waits for its datastore,
 * instead of one after the other on the forwarding thread once the first model came
 * (bench/README.md "On etcd, restarted"); the ten `ip` reads in three `ip -batch` runs (ipReads:
 * each spawn holds the thread until its child has exec'd, bench/README.md "The gap of a restart").
 */
export interface HostStartReads {
  /** performance.now() when they were read (the caller reads again what is too old by then). */
  at: number;
  /** `ip -j addr show`'s output; null when it failed (findUnderlay runs it again and says why). */
  links: string | null;
  /** The main table; an Error when it could not be read (the caller says so and reads it again). */
  kernelRoutes: KernelRoute[] | Error;
  /** as readPodRoutesSync (empty when unreadable) */
  podRoutes: FoundPodRoute[];
  /** as readLearnedRoutesSync(proto, metric) */
  learned: FoundLearnedRoute[];
  /** `nft list tables`'s output; null when it failed (no nft: the caller looks again then) */
  nftTables: string | null;
  /** as readLocalAddresses: the node's own addresses (local-addrs.ts) */
  local: { v4: string[] | null; v6: string[] | null };
}

/**
 * The reads of HostStartReads, concurrently (child processes the event loop does not wait on):
 * the `ip` reads as three `ip -batch` runs (ipReads: one per family flag, each read answered as
 * if run alone, failures included) and `nft list tables`, four processes instead of eleven.
 * `exec`: how commands run (a test's; default a child process of this one).
 */
export async function readHostAtStart(learnedProto: string, learnedMetric: number, exec: ExecFn = execChild): Promise<HostStartReads> {
  const at = performance.now();
  // (IPv6's main table, ROUTE6_ARGS, is one of POD_ROUTE_READS: read once, for both)
  const reads = [ADDR_ARGS, ROUTE_ARGS, ...POD_ROUTE_READS.map((a) => ['-j', ...a]), learnedRouteArgs(4, learnedProto), learnedRouteArgs(6, learnedProto), localTableArgs(4), localTableArgs(6)];
  const [answers, nftTables] = await Promise.all([
    ipReads(reads, exec),
    exec('nft', ['list', 'tables'], 10_000).then((r) => (r.code === 0 ? r.stdout : null), () => null),
  ]);
  // The readers below, answered from those runs (any other command runs as it is).
  const answered: ExecFn = (file, args, timeoutMs, input) => {
    const r = file === 'ip' ? answers.get(args.join(' ')) : undefined;
    return r ? Promise.resolve(r) : exec(file, args, timeoutMs, input);
  };
  const ip = (args: string[]) => answered('ip', args, 10_000).then((r) => {
    if (r.code !== 0) throw new Error(`ip ${args.join(' ')} failed`);
    return r.stdout;
  });
  const [links, kernelRoutes, podRoutes, learned4, learned6, local] = await Promise.all([
    ip(ADDR_ARGS).catch(() => null),
    readKernelRoutes(answered).catch((e: Error) => e),
    Promise.all(POD_ROUTE_READS.map((a) => ip(['-j', ...a]))).then(podRoutesFrom).catch((): FoundPodRoute[] => []),
    ip(learnedRouteArgs(4, learnedProto)).then((out) => parseLearnedRoutes(out, learnedMetric, 4)).catch((): FoundLearnedRoute[] => []),
    ip(learnedRouteArgs(6, learnedProto)).then((out) => parseLearnedRoutes(out, learnedMetric, 6)).catch((): FoundLearnedRoute[] => []),
    readLocalAddresses(answered),
  ]);
  return { at, links, kernelRoutes, podRoutes, learned: [...learned4, ...learned6], nftTables, local };
}

/**
 * The file of a sysctl named as sysctl(8) names it: dots separate the levels, and a '/' stands for
 * a dot within one (an interface's: net.ipv4.conf.eth0/100.forwarding is
 * /proc/sys/net/ipv4/conf/eth0.100/forwarding).
 */
export function sysctlFile(key: string): string {
  return `/proc/sys/${key.replace(/[./]/g, (c) => (c === '.' ? '/' : '.'))}`;
}

/** Write a sysctl under /proc/sys/net (key as sysctlFile takes it); returns a note of what changed, or '' when already set.
 * `was` hears the value it replaced, when it changed one. */
export function setSysctl(path: string, value: string, was?: (previous: string) => void): string {
  const full = sysctlFile(path);
  let cur = '';
  try {
    cur = readFileSync(full, 'utf8').trim();
  } catch (e) {
    throw new Error(`sysctl ${path}: ${(e as Error).message}`);
  }
  if (cur === value) return '';
  writeFileSync(full, value);
  was?.(cur);
  return `${path}=${value} (was ${cur})`;
}

/**
 * Sets back a sysctl podway changed, at a clean stop, when it still holds what podway wrote (one
 * changed since by someone else is theirs) and its interface is still there. Returns a note, or ''.
 */
export function restoreSysctl(path: string, wrote: string, previous: string): string {
  const full = sysctlFile(path);
  try {
    if (readFileSync(full, 'utf8').trim() !== wrote) return '';
    writeFileSync(full, previous);
  } catch {
    return ''; // the interface is gone, and its settings with it
  }
  return `${path}=${previous} (set back; podway had set ${wrote})`;
}

function ipCmd(args: string[]): void {
  try {
    execFileSync('ip', args, { stdio: ['ignore', 'ignore', 'pipe'], timeout: 10_000 });
  } catch (e) {
    throw new Error(`ip ${args.join(' ')}: ${((e as { stderr?: Buffer }).stderr ?? '').toString().trim() || (e as Error).message}`);
  }
}

/**
 * The underlay's IPv4 forwarding value from before podway set it to 0, kept on disk (one file per
 * interface, `file` = the record's path) until podway sets it back at a clean stop. A run that did
 * not stop cleanly (SIGKILL, a watchdog abort) leaves the file, and the next run, finding the
 * switch at 0, takes the value from it (it would otherwise take podway's own 0 for the node's).
 * `warn`: a record that cannot be written or read (podway goes on without it).
 */
export interface ForwardingRecord {
  file: string;
  warn(message: string): void;
}

/** The value a record holds: '0' or '1' (anything else is reported, and ignored). */
export function readForwardingRecord(rec: ForwardingRecord): string | null {
  let text: string;
  try {
    text = readFileSync(rec.file, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') rec.warn(`${rec.file}: ${(e as Error).message}; not used`);
    return null;
  }
  const v = text.trim();
  if (v === '0' || v === '1') return v;
  rec.warn(`${rec.file}: expected the forwarding value podway replaced (0 or 1), got ${JSON.stringify(text.slice(0, 40))}; not used`);
  return null;
}

/** Written whole (replaceFileSync: a temporary created exclusively under a random name, renamed
 * over it), so a crash never leaves half a record and nothing planted at a guessable temporary name
 * (`FILE.PID.tmp` before) is followed. */
function writeForwardingRecord(rec: ForwardingRecord, value: string): void {
  try {
    makeDirsSync(nodePath.dirname(rec.file), { mode: 0o755 });
    replaceFileSync(rec.file, `${value}\n`, { mode: 0o644 });
  } catch (e) {
    rec.warn(`${rec.file}: ${(e as Error).message}; the forwarding value podway replaced is not kept on disk, so a crash leaves 0 for good`);
  }
}

/** The record gone, once the value went back (or is no longer podway's to set back). */
export function removeForwardingRecord(rec: ForwardingRecord): void {
  try {
    rmSync(rec.file, { force: true });
  } catch (e) {
    rec.warn(`${rec.file}: ${(e as Error).message}; not removed`);
  }
}

/** The sysctl key of an interface's IPv4 forwarding switch (as sysctlFile takes it). */
export function forwardingKey(ifname: string): string {
  return `net.ipv4.conf.${ifname.replace(/\./g, '/')}.forwarding`;
}

/** Keep the host kernel out of forwarding on an interface podway forwards for. `changed` (for
 * the underlay) records the forwarding value it replaced, by interface name, to set back at stop
 * (restoreSysctl), and `record` keeps it on disk first (ForwardingRecord); a pod veth's settings
 * stay, as Felix leaves them, and so do the host port's (podway0 goes with the process). */
export function quietKernelOn(ifname: string, pod: boolean, changed?: Map<string, string>, record?: ForwardingRecord): string[] {
  // Interface names come from the datastore: refuse anything that could escape the sysctl path.
  if (!isSafeIfname(ifname)) throw new Error(`bad interface name "${ifname}"`);
  const notes: string[] = [];
  const conf = `net.ipv4.conf.${ifname.replace(/\./g, '/')}`;
  const key = forwardingKey(ifname);
  let cur = '';
  try {
    cur = readFileSync(sysctlFile(key), 'utf8').trim();
  } catch (e) {
    throw new Error(`sysctl ${key}: ${(e as Error).message}`);
  }
  if (cur !== '0') {
    const was = changed?.get(ifname) ?? cur;
    // on disk before the switch moves: a crash right after the write still finds it
    if (changed && record) writeForwardingRecord(record, was);
    const n1 = setSysctl(key, '0');
    if (changed && !changed.has(ifname)) changed.set(ifname, was);
    if (n1) notes.push(n1);
  } else if (changed && record && !changed.has(ifname)) {
    // 0 already: the node's own setting, or a run of podway that did not stop cleanly (its record)
    const kept = readForwardingRecord(record);
    if (kept !== null && kept !== '0') {
      changed.set(ifname, kept);
      notes.push(`${key}=0 (already: a podway run that did not stop cleanly set it; it was ${kept} before, as ${record.file} says, and is set back at stop)`);
    }
  }
  if (pod) {
    const n2 = setSysctl(`${conf}.proxy_arp`, '0');
    if (n2) notes.push(n2);
    // IPv6 (when the kernel has it on this interface): never take router advertisements from a
    // pod, and act as a router on the link, as Felix sets both. The kernel's IPv6 forwarding is
    // global only (no per-interface switch like IPv4's: the interface's `forwarding` makes it a
    // router on the link, forwarding follows net.ipv6.conf.all.forwarding), so a node with
    // all.forwarding=1 would forward pod IPv6 too. The interface's forwarding=1 is what flags the
    // kernel's Neighbor Advertisements router: the kernel answers a veth pod's solicitation for its
    // gateway fe80::ecee:eeff:feee:eeee (the host end's own link-local address), podway does not
    // (pipeline6.ts podNdp), and the pod's entry for its default router says router.
    const conf6 = `net.ipv6.conf.${ifname.replace(/\./g, '/')}`;
    if (existsSync(sysctlFile(conf6))) {
      const n3 = setSysctl(`${conf6}.accept_ra`, '0');
      if (n3) notes.push(n3);
      const n4 = setSysctl(`${conf6}.forwarding`, '1');
      if (n4) notes.push(n4);
    }
  }
  return notes;
}

export function linkUp(ifname: string): void {
  ipCmd(['link', 'set', 'dev', ifname, 'up']);
}

export function addRoute(cidr: string, dev: string): void {
  ipCmd(['route', 'replace', cidr, 'dev', dev, 'scope', 'link']);
}

export function delRoute(cidr: string, dev: string): void {
  try {
    ipCmd(['route', 'del', cidr, 'dev', dev]);
  } catch {
    /* gone with the device */
  }
}

/** Route and permanent neighbour for a veth pod, so the node itself can reach it (as Felix does). */
export function hostRouteToPod(ifname: string, ips: readonly number[], mac: string | null): void {
  for (const ip of ips) {
    ipCmd(['route', 'replace', `${formatIpv4(ip)}/32`, 'dev', ifname, 'scope', 'link']);
    if (mac) ipCmd(['neigh', 'replace', formatIpv4(ip), 'lladdr', mac, 'dev', ifname, 'nud', 'permanent']);
  }
}

/**
 * Give a pod interface podway attaches the pod MTU of the enabled encapsulations (Calico sets the
 * same on both veth ends; the pod end is the CNI's). A tap/tun device in another namespace is
 * reached through nsenter.
 */
export function setInterfaceMtu(ifname: string, mtu: number, netns: string | null): void {
  const args = ['link', 'set', 'dev', ifname, 'mtu', String(mtu)];
  if (!netns) return ipCmd(args);
  try {
    execFileSync('nsenter', [`--net=${netns}`, 'ip', ...args], { stdio: ['ignore', 'ignore', 'pipe'], timeout: 10_000 });
  } catch (e) {
    throw new Error(`set mtu ${mtu} on ${ifname} in ${netns}: ${((e as { stderr?: Buffer }).stderr ?? '').toString().trim() || (e as Error).message}`);
  }
}

export function removeHostRoute(ifname: string, ips: readonly number[]): void {
  for (const ip of ips) {
    try {
      ipCmd(['route', 'del', `${formatIpv4(ip)}/32`, 'dev', ifname]);
    } catch {
      /* already gone with the interface */
    }
  }
}

/** A classic BPF program for the underlay socket: ARP, or IPv4 not addressed to the node itself
 * (host traffic stays in the kernel). With `ipv6`, IPv6 frames too: IPv6 VXLAN and NDP answers
 * arrive on this socket (pipeline6.ts hands what is not for pods back to the kernel, which received
 * its own copy). With `tunnels`, IPv4 tunnel packets to the node IP too (VXLAN: UDP to
 * `vxlanPort`; IPIP: protocol 4), unfragmented ones only (fragments are the kernel's: it reassembles them and hands them to the tunnel sockets): they then arrive here with the
 * kernel's offload metadata (see tunnelRxProgram), else on their own UDP and raw sockets.
 * With `steer` (worker `index` of `count` > 1), of those only the frames whose flow index is this
 * worker's (steer.ts): the flow inside VXLAN (over IPv4 or IPv6) and IPIP, so a reply lands on the
 * worker that forwarded its request. */
export function underlayFilter(nodeIp: number | null, opts: { ipv6?: boolean; tunnels?: boolean; vxlanPort?: number; steer?: Steer } = {}): Uint8Array {
  const ACCEPT = 'accept';
  const vxlanPort = opts.vxlanPort ?? 4789;
  const st = opts.steer && opts.steer.count > 1 ? new SteerBuilder(opts.steer, ACCEPT, 'drop') : null;
  // With steering the program's end is out of a conditional jump's reach: a drop right after the checks.
  const DROP = st ? 'drop_early' : 'drop';
  // Where each kind of accepted frame goes: straight to ACCEPT, or through its steering section.
  const arp = st ? 'arp' : ACCEPT, ip6 = st ? 'ip6' : ACCEPT, plain4 = st ? 'plain4' : ACCEPT;
  const ipip = st ? 'ipip' : ACCEPT, vxlan = st ? 'vxlan' : ACCEPT;
  // An IPv6-only node (no IPv4 address: IP=none): IPv6 only; no ARP, no IPv4 (NDP is IPv6).
  const prog: BpfInsn[] = nodeIp === null ? [
    [0x28, 0, 0, 12], //                  ldh [12]
    [0x15, opts.ipv6 ? ip6 : DROP, DROP, 0x86dd], // jeq IPv6 -> accept, else drop
  ] : [
    [0x28, 0, 0, 12], //                  ldh [12]
    [0x15, arp, 0, 0x0806], //            jeq ARP -> accept
    ...(opts.ipv6 ? [[0x15, ip6, 0, 0x86dd] as BpfInsn] : []), // jeq IPv6 -> accept
    [0x15, 0, DROP, 0x0800], //           jne IPv4 -> drop
    [0x20, 0, 0, 30], //                  ld [30] (IPv4 destination)
    [0x15, opts.tunnels ? 'tunnel' : DROP, plain4, nodeIp >>> 0], // node IP: tunnel check (or drop)
  ];
  if (opts.tunnels && nodeIp !== null) {
    prog.push(
      'tunnel',
      [0x28, 0, 0, 20], //                ldh [20] (flags, fragment offset)
      [0x45, DROP, 0, 0x3fff], //         jset MF|offset -> drop (a fragment: the kernel reassembles it, for the sockets)
      [0x30, 0, 0, 23], //                ldb [23] (protocol)
      [0x15, ipip, 0, 4], //              jeq IPIP -> accept
      [0x15, 0, DROP, 17], //             jne UDP -> drop
      [0xb1, 0, 0, 14], //                ldxb 4*([14]&0xf)
      [0x48, 0, 0, 16], //                ldh [x+16] (UDP destination port)
      [0x15, vxlan, DROP, vxlanPort],
    );
  }
  if (st) {
    // Outer IPv4 without options (as every tunnel endpoint sends it): the inner headers at fixed
    // offsets; with options, the outer flow (the same worker for all of the tunnel's packets).
    prog.push(
      DROP, [0x06, 0, 0, 0],
      'arp', [Bpf.JA, 0, 0, st.zero()],
      'plain4', [Bpf.JA, 0, 0, st.ip4(14)],
      'ipip', [Bpf.LD_B_ABS, 0, 0, 14], ...jeqFar(0x45, st.ip4(34)), [Bpf.JA, 0, 0, st.ip4(14)],
      'vxlan', [Bpf.LD_B_ABS, 0, 0, 14], ...jeqFar(0x45, st.ether(62)), [Bpf.JA, 0, 0, st.ip4(14)],
      // IPv6: VXLAN (next header UDP to vxlanPort) looked into, anything else by its own addresses
      'ip6', [Bpf.LD_W_LEN, 0, 0, 0], [Bpf.JGE_K, 1, 0, 58], [Bpf.JA, 0, 0, st.ip6(14)],
      [Bpf.LD_B_ABS, 0, 0, 20], [Bpf.JEQ_K, 1, 0, 17], [Bpf.JA, 0, 0, st.ip6(14)],
      [Bpf.LD_H_ABS, 0, 0, 56], ...jeqFar(vxlanPort, st.ether(82)), [Bpf.JA, 0, 0, st.ip6(14)],
      ...st.code(),
    );
  }
  prog.push(ACCEPT, [0x06, 0, 0, 0x40000], 'drop', [0x06, 0, 0, 0]);
  return assembleBpf(prog);
}

/** Build an ARP request (who-has target tell us) at f; returns its length. */
export function writeArpRequest(b: Uint8Array, f: number, mac: Uint8Array, ip: number, target: number): number {
  b.fill(0xff, f, f + 6);
  b.set(mac, f + 6);
  b[f + 12] = 0x08; b[f + 13] = 0x06;
  const a = f + 14;
  b[a] = 0; b[a + 1] = 1; b[a + 2] = 0x08; b[a + 3] = 0; b[a + 4] = 6; b[a + 5] = 4; b[a + 6] = 0; b[a + 7] = 1;
  b.set(mac, a + 8);
  b[a + 14] = ip >>> 24; b[a + 15] = (ip >>> 16) & 255; b[a + 16] = (ip >>> 8) & 255; b[a + 17] = ip & 255;
  b.fill(0, a + 18, a + 24);
  b[a + 24] = target >>> 24; b[a + 25] = (target >>> 16) & 255; b[a + 26] = (target >>> 8) & 255; b[a + 27] = target & 255;
  b.fill(0, a + 28, f + 60);
  return 60;
}

/**
 * One IPv4 route of the kernel's main table, as the underlay next-hop choice needs it: its prefix,
 * gateway (0: on-link) and metric (the kernel's `priority`; 0 when `ip` shows none).
 */
export interface KernelRoute4 { addr: number; mask: number; len: number; gw: number; metric: number }

/**
 * The routes of `ip -j -4 route show table main` (throws on output that is not that). Only unicast
 * routes (no `type`, or `unicast`): a blackhole, unreachable, prohibit or throw route has no next
 * hop to resolve. A multipath route's gateway is its first next hop's (the kernel picks one per
 * flow; podway sends a node's tunnel packets through one).
 */
export function parseRoutes(json: string): KernelRoute4[] {
  const routes = JSON.parse(json) as { dst?: unknown; gateway?: unknown; metric?: unknown; type?: unknown; nexthops?: { gateway?: unknown }[] }[];
  if (!Array.isArray(routes)) throw new Error(`not a list of routes: ${json.slice(0, 80)}`);
  const out: KernelRoute4[] = [];
  for (const r of routes) {
    if (r.type !== undefined && r.type !== 'unicast') continue;
    if (typeof r.dst !== 'string') throw new Error(`a route without a destination: ${JSON.stringify(r).slice(0, 120)}`);
    const [a, len] = r.dst === 'default' ? ['0.0.0.0', '0'] : r.dst.split('/');
    const l = len === undefined ? 32 : Number(len);
    const gateway = typeof r.gateway === 'string' ? r.gateway : Array.isArray(r.nexthops) && typeof r.nexthops[0]?.gateway === 'string' ? r.nexthops[0].gateway : null;
    out.push({ addr: parseIpv4(a), mask: mask32(l), len: l, gw: gateway ? parseIpv4(gateway) : 0, metric: typeof r.metric === 'number' ? r.metric : 0 });
  }
  return out;
}

/**
 * One IPv6 route of the kernel's main table, as the IPv6 underlay next-hop choice needs it: its
 * prefix (four 32-bit words, host order), gateway (canonical text; null: on-link) and metric.
 * KernelRoutes keeps both families in one table (KernelRoute); `v6` tells them apart.
 */
export interface KernelRoute6 { v6: true; w: [number, number, number, number]; len: number; gw6: string | null; metric: number }

/** A route of either family's main table (the table podway run reads, keeps and hands on). */
export type KernelRoute = KernelRoute4 | KernelRoute6;

export function isRoute6(r: KernelRoute): r is KernelRoute6 {
  return (r as KernelRoute6).v6 === true;
}

/**
 * The routes of `ip -j -6 route show table main` (throws on output that is not that), as
 * parseRoutes takes IPv4's: unicast only, a multipath route's first next hop. Link-local and
 * multicast prefixes are kept (they never cover a node's global address).
 */
export function parseRoutes6(json: string): KernelRoute6[] {
  const routes = JSON.parse(json) as { dst?: unknown; gateway?: unknown; metric?: unknown; type?: unknown; nexthops?: { gateway?: unknown }[] }[];
  if (!Array.isArray(routes)) throw new Error(`not a list of routes: ${json.slice(0, 80)}`);
  const out: KernelRoute6[] = [];
  for (const r of routes) {
    if (r.type !== undefined && r.type !== 'unicast') continue;
    if (typeof r.dst !== 'string') throw new Error(`a route without a destination: ${JSON.stringify(r).slice(0, 120)}`);
    const [a, len] = r.dst === 'default' ? ['::', '0'] : r.dst.split('/');
    const l = len === undefined ? 128 : Number(len);
    if (!Number.isInteger(l) || l < 0 || l > 128) throw new Error(`a route with prefix length ${JSON.stringify(len)}: ${r.dst}`);
    const gateway = typeof r.gateway === 'string' ? r.gateway : Array.isArray(r.nexthops) && typeof r.nexthops[0]?.gateway === 'string' ? r.nexthops[0].gateway : null;
    const w = parseIp6(a!);
    for (let k = 0; k < 4; k++) w[k] = (w[k]! & mask6Word(l, k)) >>> 0;
    out.push({ v6: true, w, len: l, gw6: gateway ? canonicalIpv6(gateway) : null, metric: typeof r.metric === 'number' ? r.metric : 0 });
  }
  return out;
}

const ROUTE_ARGS = ['-j', '-4', 'route', 'show', 'table', 'main'];
const ROUTE6_ARGS = ['-j', '-6', 'route', 'show', 'table', 'main'];
const ROUTE6_COMMAND = `ip ${ROUTE6_ARGS.join(' ')}`;
/** `ip` reading every interface with its addresses (both families). */
const ADDR_ARGS = ['-j', 'addr', 'show'];
const ROUTE_COMMAND = `ip ${ROUTE_ARGS.join(' ')}`;

/** A kernel booted without IPv6 (ipv6.disable=1) answers an IPv6 read so: no IPv6 routes, not a
 * failed read (which would keep IPv4's gateways from ever being read). */
function noIpv6(said: string | undefined): boolean {
  return /Address family not supported/i.test(said ?? '');
}

/** An `ip` that failed, as the error says it: the exit status or why it did not run, and its stderr's first line. */
function routeReadError(r: { code: number | null; stderr?: string; error?: string | null }, command = ROUTE_COMMAND): Error {
  const why = r.error ? r.error : r.code === null ? 'did not run' : `exited ${r.code}`;
  const said = (r.stderr ?? '').trim().split('\n')[0];
  return new Error(`${command} ${why}${said ? `: ${said}` : ''}`);
}

/**
 * The kernel's main IPv4 table, read synchronously (start-up only). Throws when `ip` fails or
 * prints something else than routes: an empty table would take every node as on-link (it did).
 */
export function readKernelRoutesSync(): KernelRoute[] {
  const read = (args: string[], command: string): string => {
    try {
      return execFileSync('ip', args, { encoding: 'utf8', timeout: 10_000, stdio: ['ignore', 'pipe', 'pipe'] });
    } catch (e) {
      const x = e as { status?: number | null; stderr?: string; message: string };
      throw routeReadError({ code: x.status ?? null, stderr: x.stderr, error: typeof x.status === 'number' ? null : x.message }, command);
    }
  };
  const out4 = read(ROUTE_ARGS, ROUTE_COMMAND);
  let out6 = '[]';
  try {
    out6 = read(ROUTE6_ARGS, ROUTE6_COMMAND);
  } catch (e) {
    if (!noIpv6((e as Error).message)) throw e;
  }
  return bothTables(out4, out6);
}

/** IPv4's routes then IPv6's, from their `ip -j` outputs (throws naming the read not understood). */
function bothTables(out4: string, out6: string): KernelRoute[] {
  let r4: KernelRoute4[];
  let r6: KernelRoute6[];
  try {
    r4 = parseRoutes(out4);
  } catch (e) {
    throw new Error(`${ROUTE_COMMAND}: output not understood: ${(e as Error).message}`);
  }
  try {
    r6 = parseRoutes6(out6);
  } catch (e) {
    throw new Error(`${ROUTE6_COMMAND}: output not understood: ${(e as Error).message}`);
  }
  return [...r4, ...r6];
}

/** Runs a command and collects its output (a Spawner's exec, which does not fork podway). `input`:
 * its stdin (an ExecFn that takes none gives it an empty one). */
export type ExecFn = (file: string, args: string[], timeoutMs?: number, input?: string) => Promise<ExecResult>;
/** What an ExecFn answers: the exit status (null: it did not run or was killed, `error` says why), the output. */
export type ExecResult = { code: number | null; stdout: string; stderr?: string; error?: string | null };

/** ExecFn on a child process of this one (the readers' default when no spawner is given). */
const execChild: ExecFn = (file, args, timeoutMs, input) => new Promise((resolve) => {
  const c = execFile(file, args, { encoding: 'utf8', timeout: timeoutMs, maxBuffer: 64 << 20 }, (err, out, stderr) => {
    const code = err ? (typeof err.code === 'number' ? err.code : null) : 0;
    resolve({ code: err && code === 0 ? 1 : code, stdout: out, stderr, error: err && code === null ? err.message : null });
  });
  c.stdin?.on('error', () => {}); // EPIPE from a command that exits early: its status says more
  c.stdin?.end(input ?? '');
});

/** A word `ip -batch` reads back as it is (its line parser splits on blanks and takes quotes and `#`). */
const BATCH_WORD = /^[A-Za-z0-9_.:/-]+$/;

/**
 * `ip` reads, each an argument list as `ip` would be run with it alone (`-j`, then `-4`, `-6` or
 * neither, then the command), run as one `ip -j [-4|-6] -force -batch -` per family flag instead
 * of one process each (at start, from the thread that forwards: each spawn waits until its child
 * has exec'd, which at load is as long as the child waits for a CPU). Each read's answer is what
 * running it alone answers as far as the readers look: its JSON document (`ip -j` prints one per
 * command, on a line of its own, `[]` when there is nothing), or for a command that failed its own
 * stderr lines (`-force` goes on past it and ends its messages with `Command failed -:N`), a batch
 * that did not run (no `ip`, the timeout) its error for every read of it. A batch whose output
 * cannot be told apart command by command (lines missing, a line that is not one JSON list, an
 * exit `-force` does not give) has its reads run alone, as before, so nothing is concluded from a
 * guess. Keyed by the arguments joined with spaces.
 */
export async function ipReads(reads: readonly (readonly string[])[], exec: ExecFn = execChild, timeoutMs = 10_000): Promise<Map<string, ExecResult>> {
  const out = new Map<string, ExecResult>();
  const alone = (args: readonly string[]) => exec('ip', [...args], timeoutMs).then((r) => void out.set(args.join(' '), r));
  const groups = new Map<string, (readonly string[])[]>();
  const single: (readonly string[])[] = [];
  for (const a of reads) {
    const fam = a[1] === '-4' || a[1] === '-6' ? a[1] : '';
    const cmd = a.slice(fam ? 2 : 1);
    if (a[0] !== '-j' || cmd.length === 0 || cmd[0]!.startsWith('-') || !cmd.every((w) => BATCH_WORD.test(w))) single.push(a);
    else groups.set(fam, [...(groups.get(fam) ?? []), a]);
  }
  await Promise.all([
    ...single.map(alone),
    ...[...groups].map(async ([fam, group]) => {
      if (group.length === 1) return alone(group[0]!);
      const cmds = group.map((a) => a.slice(fam ? 2 : 1));
      const r = await exec('ip', ['-j', ...(fam ? [fam] : []), '-force', '-batch', '-'], timeoutMs, cmds.map((c) => c.join(' ')).join('\n') + '\n');
      const split = splitIpBatch(r, cmds.length);
      if (split === null) return Promise.all(group.map(alone));
      group.forEach((a, i) => out.set(a.join(' '), split[i]!));
    }),
  ]);
  return out;
}

/**
 * One answer per command of an `ip -j -force -batch -` run of `n` commands, or null when its
 * output cannot be attributed command by command (see ipReads).
 */
export function splitIpBatch(r: ExecResult, n: number): ExecResult[] | null {
  // It did not run, or was killed: none of its commands answered, each says why.
  if (r.code === null) return Array.from({ length: n }, () => ({ code: null, stdout: '', stderr: r.stderr ?? '', error: `${r.error ?? 'did not run'} (ip -batch)` }));
  // -force exits 0, or 1 when a command failed; anything else (an argument ip refuses ends the
  // whole batch with 255) is not a batch run to its end.
  if (r.code !== 0 && r.code !== 1) return null;
  const failed = new Map<number, string>();
  let said: string[] = [];
  for (const line of (r.stderr ?? '').split('\n')) {
    const m = /^Command failed -:(\d+)$/.exec(line);
    if (m) {
      failed.set(Number(m[1]) - 1, said.join('\n'));
      said = [];
    } else if (line.trim()) said.push(line);
  }
  if ((r.code === 1) !== (failed.size > 0) || [...failed.keys()].some((i) => i < 0 || i >= n)) return null;
  const lines = r.stdout.split('\n');
  if (lines[lines.length - 1] === '') lines.pop();
  if (lines.length !== n - failed.size) return null;
  for (const l of lines) {
    try {
      if (!Array.isArray(JSON.parse(l))) return null;
    } catch {
      return null;
    }
  }
  const answers: ExecResult[] = [];
  for (let i = 0, k = 0; i < n; i++) {
    const why = failed.get(i);
    answers.push(why === undefined ? { code: 0, stdout: `${lines[k++]}\n`, stderr: '', error: null } : { code: 1, stdout: '', stderr: why, error: null });
  }
  return answers;
}

/**
 * The same, without blocking the event loop (the forwarding thread never waits on `ip`). Rejects
 * when `ip` fails or its output is not understood (KernelRoutes keeps the last good table then).
 */
export async function readKernelRoutes(exec?: ExecFn): Promise<KernelRoute[]> {
  const run: ExecFn = exec ?? execChild;
  // both families' main tables (IPv6's for the IPv6 tunnels' and direct routes' gateways)
  const [r, r6] = await Promise.all([run('ip', ROUTE_ARGS, 10_000), run('ip', ROUTE6_ARGS, 10_000)]);
  if (r.code !== 0) throw routeReadError(r);
  if (r6.code !== 0 && !noIpv6(r6.stderr)) throw routeReadError(r6, ROUTE6_COMMAND);
  return bothTables(r.stdout, r6.code === 0 ? r6.stdout : '[]');
}

/**
 * The underlay next hop for each remote node: the node itself when on-link, else the gateway of
 * the kernel's best route to it (control path only). An empty table (none read yet) takes every
 * node as on-link.
 */
export function underlayNextHops(table: readonly KernelRoute[], ips: Iterable<number>): Map<number, number> {
  const out = new Map<number, number>();
  for (const ip of ips) {
    // As the kernel picks: the longest prefix, then among routes of that prefix the lowest metric.
    let best: KernelRoute4 | undefined;
    for (const r of table) {
      if (isRoute6(r) || ((ip & r.mask) >>> 0) !== r.addr) continue;
      if (!best || r.len > best.len || (r.len === best.len && r.metric < best.metric)) best = r;
    }
    out.set(ip, best && best.gw ? best.gw : ip);
  }
  return out;
}

/**
 * The same for IPv6 (addresses as canonical text): the node itself when a route without a gateway
 * covers it (on-link), else the gateway of the kernel's best route to it (longest prefix, then
 * lowest metric). An address no route covers, or a table without IPv6 routes (none read yet), is
 * taken as on-link.
 */
export function underlayNextHops6(table: readonly KernelRoute[], ips: Iterable<string>): Map<string, string> {
  const out = new Map<string, string>();
  for (const ip of ips) {
    let w: [number, number, number, number];
    try {
      w = parseIp6(ip);
    } catch {
      continue;
    }
    let best: KernelRoute6 | undefined;
    for (const r of table) {
      if (!isRoute6(r)) continue;
      if (!covers6(r, w)) continue;
      if (!best || r.len > best.len || (r.len === best.len && r.metric < best.metric)) best = r;
    }
    out.set(ip, best && best.gw6 !== null ? best.gw6 : ip);
  }
  return out;
}
