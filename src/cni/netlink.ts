// The interfaces, addresses and routes of one attachment, through iproute2 (a plugin process is
// short-lived, so synchronous `ip` calls are fine here).
//
// How the veth reaches the pod: iproute2 (checked on 6.1) takes a namespace *path* wherever it takes
// `netns NAME` (a value containing '/' is opened as a file), so
//   ip link add caliX type veth peer name eth0 netns /proc/PID/ns/net
// creates both ends in one netlink request with the pod end already inside the pod's namespace
// under its final name: there is no moment where a half-made pair or a temporary name exists, and
// concurrent ADDs never see each other's pod ends. `ip -n` takes only a name under /run/netns, so
// everything inside the pod's namespace runs as `nsenter --net=PATH ip ...` (one `ip -batch` for
// the addresses and routes).
import { execFileSync } from 'node:child_process';
import { existsSync, realpathSync, statSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { release } from 'node:os';
import { CniError, CNI_CODES } from './errors';
import type { InterfaceType } from '../control/resource-names';
import { POD_DEVICE_ALIAS } from '../control/ipam/orphan-holds';
import { LSNS_NETNS_IDS, parseLsnsNetnsIds, podVethPeers } from '../dataplane/orphan-pods';

export const HOST_MAC = 'ee:ee:ee:ee:ee:ee';
export const GATEWAY = '169.254.1.1';
/** Calico's IPv6 pod gateway: the EUI-64 link-local address of the host end's ee:ee:ee:ee:ee:ee. */
export const GATEWAY6 = 'fe80::ecee:eeff:feee:eeee';

function run(cmd: string, args: string[], input?: string): string {
  try {
    return execFileSync(cmd, args, { encoding: 'utf8', input, stdio: ['pipe', 'pipe', 'pipe'], timeout: 15_000 });
  } catch (e) {
    const err = e as { stderr?: string; message: string };
    throw new CniError(CNI_CODES.NETLINK_FAILED, `${cmd} ${args.join(' ')}: ${(err.stderr ?? '').toString().trim() || err.message}`);
  }
}

/** `ip ...` in the pod's namespace. */
function podIp(netns: string, args: string[], input?: string): string {
  return run('nsenter', [`--net=${netns}`, 'ip', ...args], input);
}

const missingDevice = (e: unknown): boolean => e instanceof CniError && /Cannot find device|does not exist/.test(e.message);

/** An `ip link add` refused because a device of that name exists. */
export const alreadyExists = (e: unknown): boolean => e instanceof CniError && /File exists/.test(e.message);

export function hostLinkExists(name: string): boolean {
  try {
    run('ip', ['link', 'show', 'dev', name]);
    return true;
  } catch (e) {
    if (missingDevice(e)) return false;
    throw e;
  }
}

/** Deletes a host interface; false when it was not there. */
export function deleteHostLink(name: string): boolean {
  try {
    run('ip', ['link', 'del', 'dev', name]);
    return true;
  } catch (e) {
    if (missingDevice(e)) return false;
    throw e;
  }
}

/** Deletes the pod's interface (with a veth, both ends go); false when it was not there. */
export function deletePodLink(netns: string, ifname: string): boolean {
  try {
    podIp(netns, ['link', 'del', 'dev', ifname]);
    return true;
  } catch (e) {
    if (missingDevice(e)) return false;
    throw e;
  }
}

export interface PodLink {
  readonly name: string;
  readonly mac: string | null;
  readonly mtu: number;
}

/**
 * The veth: host end `hostName` (MAC ee:ee:ee:ee:ee:ee, up) in this namespace, pod end `ifname` in
 * `netns`, with the MAC `podMac` when given (CNI_ARGS MAC: set as the pair is made, so the pod end
 * never has another), else the kernel's random one.
 */
export function createVeth(hostName: string, netns: string, ifname: string, mtu: number, podMac: string | null = null): void {
  const add = ['link', 'add', hostName, 'mtu', String(mtu), 'type', 'veth', 'peer', 'name', ifname, ...(podMac ? ['address', podMac] : []), 'mtu', String(mtu), 'netns', netns];
  const up = ['link', 'set', 'dev', hostName, 'address', HOST_MAC, 'up'];
  // One `ip` process for both (an ADD's processes are much of its time). A batch line is split at
  // whitespace and reads quotes, so a namespace path or name with whitespace, quotes, '#' or
  // backslashes takes two processes.
  const plain = (w: string): boolean => /^[^\s"'\\#]+$/.test(w);
  if (plain(netns) && plain(ifname)) run('ip', ['-batch', '-'], `${add.join(' ')}\n${up.join(' ')}\n`);
  else {
    run('ip', add);
    run('ip', up);
  }
}

/** The running kernel has SCTP, or a module to load it with the pod's first SCTP socket. */
function kernelMayHaveSctp(): boolean {
  return existsSync('/proc/sys/net/sctp') || existsSync(`/lib/modules/${release()}/kernel/net/sctp`);
}

/**
 * Turn off SCTP segmentation offload on the pod end of a veth (`tx-sctp-segmentation`; TCP and UDP
 * offloads stay on). It is the pod end's features that decide: the pod's SCTP socket builds a GSO
 * super-frame when the device it sends on takes NETIF_F_GSO_SCTP (a veth does, in
 * NETIF_F_GSO_SOFTWARE), and the host end hands it on as it is. podway's AF_PACKET port cannot be
 * given such a frame (the kernel has no vnet header for SKB_GSO_SCTP) and on 6.18 the failed attempt
 * wedges a TPACKET_V2 ring (native/README.md). Skipped, one process less per ADD, on a kernel that
 * cannot have SCTP. Returns why it could not be done, or null; the engine still finds and sets up
 * again a wedged ring (checkRing), so a failure here is not the pod's.
 */
export function limitPodOffloads(netns: string, ifname: string, sctp = kernelMayHaveSctp()): string | null {
  if (!sctp) return null;
  try {
    run('nsenter', [`--net=${netns}`, 'ethtool', '-K', ifname, 'tx-sctp-segmentation', 'off']);
    return null;
  } catch (e) {
    return (e as Error).message;
  }
}

/**
 * A persistent tap/tun device inside the pod's namespace: it is the pod's interface, podway opens it
 * from there by `altName` (names.ts, podDeviceName). Its alias, `podway:<node>`, says whose pod it
 * is: `podway run` on that node finds the device again at its start when no endpoint names it any
 * more (dataplane/orphan-pods.ts podDevicesIn). A tap device gets `tapMac` when given (CNI_ARGS
 * MAC): the tap is the pod's own interface, so its MAC is the pod's; a tun has none.
 */
export function createTunTap(netns: string, ifname: string, mode: 'tap' | 'tun', mtu: number, altName: string, node: string, tapMac: string | null = null): void {
  podIp(netns, ['-batch', '-'], [`tuntap add dev ${ifname} mode ${mode}`, ...(tapMac && mode === 'tap' ? [`link set dev ${ifname} address ${tapMac}`] : []), `link set dev ${ifname} mtu ${mtu}`, `link property add dev ${ifname} altname ${altName}`, ...(node.length + POD_DEVICE_ALIAS.length < 256 ? [`link set dev ${ifname} alias ${POD_DEVICE_ALIAS}${node}`] : [])].join('\n') + '\n');
}

/**
 * The sysctls Calico's plugin sets inside the pod's namespace before its addresses: with an IPv6
 * address, disable_ipv6=0 for all, default and lo (a namespace made with IPv6 off could not take
 * the address: "IPv6 is disabled on this device"); and forwarding per family (Calico's
 * container_settings.allow_ip_forwarding: net.ipv4.ip_forward, net.ipv6.conf.all.forwarding, 1
 * when allowed, else 0). One `sysctl` process in the namespace.
 */
export function configurePodSysctls(netns: string, ips: readonly string[], allowForwarding: boolean): void {
  const has4 = ips.some((ip) => !ip.includes(':'));
  const has6 = ips.some((ip) => ip.includes(':'));
  const f = allowForwarding ? '1' : '0';
  const settings: string[] = [];
  if (has6) settings.push('net.ipv6.conf.all.disable_ipv6=0', 'net.ipv6.conf.default.disable_ipv6=0', 'net.ipv6.conf.lo.disable_ipv6=0');
  if (has4) settings.push(`net.ipv4.ip_forward=${f}`);
  if (has6) settings.push(`net.ipv6.conf.all.forwarding=${f}`);
  if (settings.length > 0) run('nsenter', [`--net=${netns}`, 'sysctl', '-q', '-w', ...settings]);
}

/**
 * The pod end: up, its /32 (and /128), and the routes Calico gives a pod: IPv4 default via
 * 169.254.1.1 (scope link), IPv6 default via fe80::ecee:eeff:feee:eeee (tun: device routes, it
 * has no L2); for veth and TAP a permanent neighbour entry for each gateway (ee:ee:ee:ee:ee:ee). The IPv6 address skips DAD (`nodad`): it is the pod's alone by IPAM, and a
 * tentative address could not be used for the first second.
 */
export function configurePod(netns: string, ifname: string, type: InterfaceType, ips: readonly string[]): PodLink & { defaultTaken: (4 | 6)[] } {
  const lines = [`link set dev ${ifname} up`];
  // 1-based batch line of each default route -> its family (a failed one is looked at below)
  const defaults = new Map<number, 4 | 6>();
  for (const ip of ips) {
    if (!ip.includes(':')) {
      lines.push(`addr add ${ip}/32 dev ${ifname}`);
      if (type !== 'tun') lines.push(`route add ${GATEWAY} dev ${ifname} scope link`);
      lines.push(type === 'tun' ? `route add default dev ${ifname}` : `route add default via ${GATEWAY} dev ${ifname}`);
      defaults.set(lines.length, 4);
    } else {
      lines.push(`addr add ${ip}/128 dev ${ifname} nodad`);
      lines.push(type === 'tun' ? `route add ::/0 dev ${ifname}` : `route add ::/0 via ${GATEWAY6} dev ${ifname}`);
      defaults.set(lines.length, 6);
    }
  }
  // A permanent neighbour for each gateway of an L2 pod (veth, TAP: TUN has no link layer). podway
  // answers ARP for 169.254.1.1 itself (proxy_arp is off on the host end: host.ts quietKernelOn),
  // so while podway is down (a restart) nothing answers, and an entry the pod held went to PROBE
  // then FAILED: its connects failed (EHOSTUNREACH) and its traffic waited for an ARP answer after
  // podway was back. The gateway's MAC never changes (ee:ee:ee:ee:ee:ee on every host end and in
  // every answer podway gives), so the pod never needs to ask. IPv6 likewise, flagged router as an
  // advertisement of the gateway is: a veth's host end's kernel answers for fe80::ecee:eeff:feee:eeee
  // itself, a TAP's has only podway. Last before the show: `neigh replace` ends a batch on a kernel
  // error instead of failing the line (host-programmer.ts), which then fails the ADD.
  if (type !== 'tun') {
    if (ips.some((ip) => !ip.includes(':'))) lines.push(`neigh replace ${GATEWAY} lladdr ${HOST_MAC} dev ${ifname} nud permanent`);
    if (ips.some((ip) => ip.includes(':'))) lines.push(`neigh replace ${GATEWAY6} lladdr ${HOST_MAC} dev ${ifname} nud permanent router`);
  }
  // The same `ip` process then shows the interface (its MAC for the result and the endpoint): with
  // -j only `addr show` prints anything, one JSON list.
  lines.push(`addr show dev ${ifname}`);
  // -force: a default route the namespace already has (another network's attachment: podman
  // --network podway,podman, `podman network connect`) fails its line with "File exists" and the
  // rest still runs; that case is told apart from every other failure below and handled by
  // routeBesideDefault. Any other failed line fails the ADD, as before.
  const input = lines.join('\n') + '\n';
  let out: string;
  const defaultTaken: (4 | 6)[] = [];
  try {
    out = execFileSync('nsenter', [`--net=${netns}`, 'ip', '-force', '-j', '-batch', '-'], { encoding: 'utf8', input, stdio: ['pipe', 'pipe', 'pipe'], timeout: 15_000 });
  } catch (e) {
    const err = e as { stdout?: string; stderr?: string; message: string };
    const stderr = (err.stderr ?? '').toString();
    const failed = [...stderr.matchAll(/^Command failed -:(\d+)$/gm)].map((m) => Number(m[1]));
    const errors = stderr.split('\n').filter((l) => l.trim() !== '' && !/^Command failed -:\d+$/.test(l));
    const onlyTakenDefaults = failed.length > 0 && failed.every((n) => defaults.has(n)) && errors.length === failed.length && errors.every((l) => /File exists/.test(l));
    if (!onlyTakenDefaults) throw new CniError(CNI_CODES.NETLINK_FAILED, `nsenter --net=${netns} ip -force -j -batch -: ${stderr.trim() || err.message}`);
    for (const n of failed) defaultTaken.push(defaults.get(n)!);
    out = (err.stdout ?? '').toString();
  }
  let link: PodLink | null = null;
  try {
    link = linkFromJson(out);
  } catch {
    /* unexpected output: ask again below */
  }
  return { ...(link ?? podLink(netns, ifname)!), defaultTaken };
}

/**
 * The pod's routes when its namespace already had a default route of `family` on another
 * interface (another network attached first: podman's own bridge network beside podway's, which
 * podman 4.3 attaches before or after podway's, in no fixed order). That default stays the pod's default (the network attached
 * first keeps the pod's other traffic; the reference bridge plugin instead puts its own default
 * before the one there, which podway cannot do without taking traffic from a network it knows
 * nothing of); this attachment gets a route to each of `cidrs` (the
 * enabled IP pools of the family: every podway pod's address, on any node) through its gateway,
 * and a default of its own one metric above the other's (lower priority), so the pod still has one
 * when that network is disconnected. Returns the other default as `ip route` shows it, for the
 * ADD's note. Calico's plugin fails such an ADD (`failed to add IPv4 route for 0.0.0.0/0 via
 * 169.254.1.1: file exists`); podway failed it with iproute2's "File exists".
 */
export function routeBesideDefault(netns: string, ifname: string, type: InterfaceType, family: 4 | 6, cidrs: readonly string[]): string {
  const existing = (JSON.parse(podIp(netns, ['-j', family === 4 ? '-4' : '-6', 'route', 'show', 'default'])) as (RouteJson & { metric?: number })[])
    .filter((r) => r.dev !== ifname);
  const metric = Math.max(family === 4 ? 0 : 1024, ...existing.map((r) => r.metric ?? 0)) + 1;
  const via = type === 'tun' ? '' : ` via ${family === 4 ? GATEWAY : GATEWAY6}`;
  const lines = [`route add default${via} dev ${ifname} metric ${metric}`, ...cidrs.map((c) => `route add ${c}${via} dev ${ifname}`)];
  podIp(netns, [family === 4 ? '-4' : '-6', '-batch', '-'], lines.join('\n') + '\n');
  return existing.map((r) => `default${r.gateway ? ` via ${r.gateway}` : ''} dev ${r.dev}${r.metric ? ` metric ${r.metric}` : ''}`).join(', ') || 'a default route';
}

interface IpLinkJson { ifname: string; address?: string; mtu: number; link_type?: string; addr_info?: { family: string; local: string; prefixlen: number }[] }

/** The pod's interface as the kernel has it, or null when it does not exist. */
export function podLink(netns: string, ifname: string): (PodLink & { addresses: string[] }) | null {
  let out: string;
  try {
    out = podIp(netns, ['-j', 'addr', 'show', 'dev', ifname]);
  } catch (e) {
    if (missingDevice(e)) return null;
    throw e;
  }
  return linkFromJson(out);
}

/** `ip -j addr show dev X` output as a PodLink (null for an empty list); throws on other text. */
function linkFromJson(out: string): (PodLink & { addresses: string[] }) | null {
  const [link] = JSON.parse(out) as IpLinkJson[];
  if (!link) return null;
  const mac = link.link_type === 'ether' && link.address ? link.address : null;
  const addresses = (link.addr_info ?? []).filter((a) => a.family === 'inet' || (a.family === 'inet6' && !a.local.startsWith('fe80:'))).map((a) => `${a.local}/${a.prefixlen}`);
  return { name: link.ifname, mac, mtu: link.mtu, addresses };
}

export interface RouteJson { dst: string; gateway?: string; dev?: string; scope?: string }

export function podRoutes(netns: string): RouteJson[] {
  return JSON.parse(podIp(netns, ['-j', 'route', 'show', 'table', 'main'])) as RouteJson[];
}

export function podRoutes6(netns: string): RouteJson[] {
  return JSON.parse(podIp(netns, ['-j', '-6', 'route', 'show', 'table', 'main'])) as RouteJson[];
}

/** A link's index and, for a veth, its peer's index (in the peer's namespace); tap/tun: its alternative names. */
export interface LinkIndex {
  readonly ifindex: number;
  readonly peer: number | null;
  /**
   * The namespace ID (as the namespace it was shown from numbers it) of a veth peer's namespace;
   * null when the peer is in the same namespace (or the link has no peer).
   */
  readonly peerNetnsid: number | null;
  readonly altnames: readonly string[];
}

interface LinkShowJson { ifindex: number; link_index?: number; link_netnsid?: number; altnames?: string[] }

/** `name` in this namespace (netns null) or in `netns`, or null when it does not exist. */
export function linkIndex(netns: string | null, name: string): LinkIndex | null {
  let out: string;
  try {
    out = netns === null ? run('ip', ['-j', 'link', 'show', 'dev', name]) : podIp(netns, ['-j', 'link', 'show', 'dev', name]);
  } catch (e) {
    if (missingDevice(e)) return null;
    throw e;
  }
  const [l] = JSON.parse(out) as LinkShowJson[];
  if (!l) return null;
  return { ifindex: l.ifindex, peer: typeof l.link_index === 'number' ? l.link_index : null, peerNetnsid: typeof l.link_netnsid === 'number' ? l.link_netnsid : null, altnames: l.altnames ?? [] };
}

/** A host veth name as podway's CNI (and Calico's) gives one: "cali" + 11 hex digits (names.ts hostVethName). */
export const HOST_VETH_NAME = /^cali[0-9a-f]{11}$/;

/**
 * The pod veths' host ends here (host MAC ee:ee:ee:ee:ee:ee, named as hostVethName names them, a
 * peer in another namespace), by name, with their index: one `ip`. What a DEL that cannot name
 * the pod's veth (CNI_ARGS lost the pod's name, no CNI_NETNS) records of those there.
 */
export function hostPodVeths(): Record<string, number> {
  const out: Record<string, number> = {};
  for (const v of podVethPeers(run('ip', ['-j', 'link', 'show', 'type', 'veth']))) {
    if (HOST_VETH_NAME.test(v.ifname) && v.ifindex !== null && v.nsid !== null) out[v.ifname] = v.ifindex;
  }
  return out;
}

/**
 * The namespace ID this (the plugin's) namespace gives the network namespace at `path` (the
 * `link_netnsid` a veth whose peer is there shows); 'none' when it provably has none here (no link
 * here has a peer there); null when it cannot be told. Never throws: a failing `ip`/lsns, bad
 * output, a path gone or a process exited meanwhile answer null ("cannot tell").
 *
 * iproute2 has no query by path, so the namespace is found by its inode (stat of `path`, any path:
 * /run/netns/NAME, /proc/PID/ns/net, /var/run/docker/netns/ID, a CRI-O namespaces_dir...) among
 * the namespaces named in `ip netns list-id` (/run/netns/NAME, by the inode of that file) and the
 * namespaces some process is in (lsns, util-linux as nsenter, which gives their NETNSID); a
 * namespace only a bind mount outside /run/netns holds, with no process in it (or lsns failing),
 * is named for a moment in a private mount namespace and asked for (netnsIdByMount).
 */
export function netnsIdOf(path: string): number | 'none' | null {
  try {
    return netnsIdByInode(path);
  } catch {
    return null;
  }
}

function netnsIdByInode(path: string): number | 'none' | null {
  const st = statSync(path);
  // Only a namespace file (nsfs) has a namespace's inode: anything else cannot be told.
  if (st.dev !== statSync('/proc/self/ns/net').dev) return null;
  const ino = st.ino;
  let ids: { nsid?: number; name?: string }[] | null = null;
  try {
    const parsed: unknown = JSON.parse(run('ip', ['-j', 'netns', 'list-id']) || '[]');
    if (Array.isArray(parsed)) ids = parsed as { nsid?: number; name?: string }[];
  } catch {
    /* cannot tell this way: lsns below */
  }
  for (const x of ids ?? []) {
    if (typeof x?.nsid !== 'number' || typeof x.name !== 'string' || x.name.includes('/')) continue;
    try {
      const named = statSync(join('/run/netns', x.name));
      if (named.dev === st.dev && named.ino === ino) return x.nsid;
    } catch {
      /* removed meanwhile */
    }
  }
  // A /run/netns/NAME namespace (also through a symlinked directory such as /var/run/netns) that
  // `ip netns list-id` does not list has no namespace ID here.
  if (ids !== null) {
    try {
      if (/^\/run\/netns\/[^/]+$/.test(join(realpathSync(dirname(path)), basename(path)))) return 'none';
    } catch {
      /* cannot tell this way */
    }
  }
  let out = '';
  try {
    out = run('lsns', [...LSNS_NETNS_IDS]);
  } catch {
    /* lsns failing: by a mount below */
  }
  const id = parseLsnsNetnsIds(out).get(ino);
  if (id !== undefined) return id ?? 'none';
  // No process in it (only a bind mount outside /run/netns holds it), or lsns failing.
  return netnsIdByMount(path);
}

/**
 * The namespace ID of the namespace at `path` as the kernel answers for that very namespace
 * (RTM_GETNSID by a descriptor of it, which iproute2 asks for each /run/netns name in `ip netns
 * list-id`): in a mount namespace of its own (unshare -m, private: nothing is seen outside it), a
 * tmpfs over /run holds one name, bound to `path` (opened before /run is covered, wherever it
 * is). 'none' when the kernel gives it no ID here; null when this cannot run.
 */
function netnsIdByMount(path: string): number | 'none' | null {
  let out: string;
  try {
    out = run('unshare', ['--mount', '--propagation', 'private', 'sh', '-c', 'exec 3<"$1" && mount -t tmpfs podway-nsid /run && mkdir /run/netns && : >/run/netns/target && mount --bind /proc/self/fd/3 /run/netns/target && exec ip -j netns list-id', 'sh', path]);
  } catch {
    return null;
  }
  let ids: unknown;
  try {
    ids = JSON.parse(out || '[]');
  } catch {
    return null;
  }
  if (!Array.isArray(ids)) return null;
  const mine = (ids as { nsid?: unknown; name?: unknown }[]).find((x) => x?.name === 'target');
  return typeof mine?.nsid === 'number' ? mine.nsid : 'none';
}

/**
 * Whether `pod` (a link in the namespace at `netns`) and the host veth `host` (in this namespace)
 * are the two ends of one veth: each names the other's index as its peer, and the host end's peer
 * is in `netns` (indexes alone are not enough: every namespace numbers its own links, and a veth of
 * another pair in `netns` can have the same numbers; when `netns`'s namespace ID cannot be told,
 * netnsIdOf, they are all there is). null when so; else why not.
 */
export function vethPairMismatch(netns: string, pod: LinkIndex, host: LinkIndex, hostName: string): string | null {
  if (pod.peer !== host.ifindex || host.peer !== pod.ifindex) return `not the peer of the host veth ${hostName}`;
  const elsewhere = `the host veth ${hostName}'s peer (index ${host.peer}) is in another namespace (nsid ${host.peerNetnsid ?? 'none: this one'}), not in ${netns}`;
  if (host.peerNetnsid === null) return elsewhere;
  const nsid = netnsIdOf(netns);
  // Cannot tell (unshare, mount or ip failing: netnsIdByMount): the two-way index check above
  // stands alone, as before the namespace was counted. Refusing instead would leave such a pod's
  // veth for good and refuse its repeated ADD every time.
  if (nsid === null) return null;
  if (nsid !== host.peerNetnsid) return elsewhere;
  return null;
}
