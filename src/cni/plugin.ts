// podway's CNI plugin: the verbs (ADD, DEL, CHECK, VERSION, STATUS, GC) over the pod's network
// namespace (netlink.ts), IPAM (podway's Calico-compatible one, or a delegated plugin) and the
// WorkloadEndpoint a running `podway run` attaches. Calico's CNI plugin is the model: the same
// veth names, host MAC, pod routes, IPAM handle and WorkloadEndpoint names and fields.
import { execFileSync } from 'node:child_process';
import { existsSync, realpathSync, statfsSync, writeFileSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { CniError, CNI_CODES, errorResult } from './errors';
import { readEnv, CniEnv } from './env';
import { parseIPv4, parseIPv6Cidr } from '../control/ipv4';
import { configOrigin, configVersion, decodeConfig, unhonouredSettings, unknownSettings, NetConf, parseConfig, parseValidAttachments, StdinConfig, SUPPORTED_VERSIONS, versionAtLeast, withConfigOrigin } from './config';
import { holdOrphanAddresses, ORPHAN_HANDLE_PREFIX } from './orphan-hold';
import { handleId, hostVethName, NETWORK_ANNOTATION, podDeviceName, podIdentity, PodIdentity, workloadEndpointName } from './names';
import * as netlink from './netlink';
import { Attachment, readPrevResult, successResult } from './result';
import { IpamLockIoError, IpamLockOptions, IpamLockTimeoutError, requirePrivateDir, withIpamLock } from './ipam-lock';
import { datastoreKey, MAX_HOST_VETHS, entryDatastore, netnsIdentity, PodDeviceRef, entryEndpoints, lastClusterId, pendingFileName, pendingOfContainer, PENDING_DEL_FORMAT, readPending, recordedPod, Released, releaseInStore, rememberClusterId, replayingOfContainer, removePendingFile, writePending } from './pending-del';
import { delegatedIps, forwardToIpam, runIpamPlugin } from './delegate';
import { removeContainerLock, withContainerLock } from './container-lock';
import { isIpv6Only, nodeFamilies } from './node-families';
import type { KvEntry, KvStore } from '../control/kv/kv';
import { KvConfigError, KvNotEtcdError, KvSlowError, KvTlsRejectedError, KvUnavailableError } from '../control/kv/kv';
import { FileLockTimeoutError } from '../control/kv/file-lock';
import type { Ipam } from '../control/ipam/ipam';
import type { AllocationBlock } from '../control/ipam/block';
import { blockPrefix, HANDLE_PREFIX, handleKey, nodeKey, parseBlockKey } from '../control/ipam/keys';
import { formatIp, parseCidrOrIp, parseIp } from '../control/ipam/net';
import { kindInfo } from '../control/calico-kinds';
import { podMtuOf, resolveTunnelMtus, tunnelMtus, tunnelsInUse } from '../control/felix-mtu';
import { applyResource, deleteResource, getResource, JsonObject, listNodeWorkloadEndpoints, listResources, ResourceError } from '../control/v3-store';
import { CALICO_API_VERSION, NAME_PATTERN } from '../control/resource-names';
import { INTERFACE_NETNS_ANNOTATION, INTERFACE_TYPE_ANNOTATION, storedInterfaceType } from '../control/wep-interface';
import { CLUSTER_INFORMATION_KEY, DATASTORE_LOCKED_TEXT, datastoreLockedIn } from '../control/kv/cluster-guid';
import { podwayCommand } from '../util/invocation';

export { NETWORK_ANNOTATION } from './names';

export interface PluginOutput {
  /** What goes to stdout ('' for DEL/STATUS/GC success). */
  readonly stdout: string;
  readonly exitCode: number;
}

const WEP = kindInfo('WorkloadEndpoint')!;
const IPPOOL = kindInfo('IPPool')!;
const FELIX_CONFIGURATION = kindInfo('FelixConfiguration')!;

// ---------------------------------------------------------------------------------------------
// Datastore access

/**
 * ADD and STATUS check pools (IPAM) and ADD its WorkloadEndpoint with zod's schemas, which load
 * then (DEL, CHECK, GC and VERSION never load zod). In this short-lived process each schema parses
 * once or twice, so zod's JIT (an object schema compiled with new Function on its first parse)
 * costs more than it saves: its first two parses take ~12 ms with it, ~6 ms without. zod's ~60
 * translations are not loaded with it (zod-locales.ts: 49 ms of CPU of zod's 123 to load).
 */
function zodWithoutJit(): void {
  (require('../control/zod-locales') as typeof import('../control/zod-locales')).deferZodLocales();
  (require('zod') as typeof import('zod')).config({ jitless: true });
}

/**
 * podway's IPAM on `kv`, loaded when first used: ADD, STATUS and GC use it, a DEL only when the
 * container holds addresses (pending-del.ts releaseInStore), CHECK and VERSION never.
 */
function ipamOn(kv: KvStore): Ipam {
  return new (require('../control/ipam/ipam') as typeof import('../control/ipam/ipam')).Ipam(kv);
}

/** An embedded datastore directory that does not exist (etcd: never). */
function embeddedStoreMissing(conf: NetConf): boolean {
  return conf.datastore.kind === 'embedded' && !existsSync(conf.datastore.dir);
}

async function openStore(conf: NetConf): Promise<KvStore> {
  const d = conf.datastore;
  if (d.kind === 'file') throw new CniError(CNI_CODES.INVALID_CONFIG, 'network config: datastore: not a writable datastore');
  // Opening would make a mistyped directory and then fail (no Node) or work on an empty cluster.
  if (d.kind === 'embedded' && embeddedStoreMissing(conf)) {
    throw new CniError(CNI_CODES.INVALID_CONFIG, `network config: ${conf.datastoreField}: embedded datastore ${d.dir} does not exist (podway run, apply or create makes it; is the path right?)`);
  }
  // Loaded on demand. etcd: a command's client (kv/open.ts), its KV calls straight over HTTP/2
  // (etcd-lite.ts), not the etcd3 client, which costs a fresh process ~0.3 CPU-s to load (it
  // parses etcd's .proto files); 30 s to connect, as Calico's client dials.
  const { openKvStore } = await import('../control/kv/open');
  const connectTimeoutMs = d.kind === 'etcd' ? (await import('../control/kv/etcd-common')).CNI_CONNECT_TIMEOUT_MS : undefined;
  return openKvStore(d, { use: 'command', timeoutMs: conf.datastoreTimeoutMs, connectTimeoutMs });
}

function datastoreText(conf: NetConf): string {
  const d = conf.datastore;
  return d.kind === 'etcd' ? `etcd ${d.endpoints.join(',')}` : d.kind === 'embedded' ? `embedded ${d.dir}` : d.path;
}

/** errno codes of a local store that cannot be written: full, over quota, read-only, refused, failing. */
const STORE_IO_CODES = new Set(['ENOSPC', 'EDQUOT', 'EROFS', 'EACCES', 'EPERM', 'EIO']);

/**
 * An I/O failure of the embedded store's own files (FileKv's log and snapshot, FileLock's token
 * and lock) as CNI code 5, naming the store and the config field, without a JS stack; null for
 * anything else (another datastore, another file, another error).
 */
function storeIoError(conf: NetConf, e: unknown): CniError | null {
  const d = conf.datastore;
  if (d.kind !== 'embedded' || !(e instanceof Error)) return null;
  const err = e as NodeJS.ErrnoException;
  if (typeof err.code !== 'string' || !STORE_IO_CODES.has(err.code)) return null;
  // FileKv's errors start with its description ("embedded DIR: "); a FileLock's are Node's own,
  // with the path of the store's file.
  const prefix = `embedded ${d.dir}: `;
  const ours = err.message.startsWith(prefix) || (typeof err.path === 'string' && (err.path === d.dir || err.path.startsWith(`${d.dir}/`)));
  if (!ours) return null;
  const field = conf.datastoreField === 'datastore' ? '"datastore" in the network config' : `network config: ${conf.datastoreField}`;
  const msg = err.message.startsWith(prefix) ? err.message.slice(prefix.length) : err.message;
  return new CniError(CNI_CODES.IO_FAILURE, `datastore embedded:${d.dir} (${field}): ${msg}`);
}

/** Datastore failures as CNI errors: unreachable (or its lock held too long) is "try again later". */
function datastoreError(conf: NetConf, e: unknown): unknown {
  if (e instanceof CniError) return e;
  const io = storeIoError(conf, e);
  if (io) return io;
  // etcd refused the TLS handshake (our certificate) or its certificate is not accepted: the
  // configuration, not an outage; the message names the settings, and the conflist's keys here.
  if (e instanceof KvTlsRejectedError) return new CniError(CNI_CODES.INVALID_CONFIG, `${e.message}; in the network config: etcd_ca_cert_file, etcd_cert_file, etcd_key_file`);
  // An endpoint that answers HTTP 404 to etcd's API is not etcd: the configuration again.
  if (e instanceof KvNotEtcdError) return new CniError(CNI_CODES.INVALID_CONFIG, `${e.message}; in the network config: etcd_endpoints`);
  // KvUnavailableError already names the store: "etcd URL unreachable (get KEY): connect ECONNREFUSED ...".
  if (e instanceof KvUnavailableError) return new CniError(CNI_CODES.TRY_AGAIN_LATER, e.message);
  if (e instanceof FileLockTimeoutError) {
    return new CniError(CNI_CODES.TRY_AGAIN_LATER, `datastore ${datastoreText(conf)} unreachable: ${e.message}`);
  }
  if (e instanceof ResourceError) return new CniError(CNI_CODES.DATASTORE_FAILED, `datastore ${datastoreText(conf)}: ${e.message}`);
  return e;
}

async function withStore<T>(conf: NetConf, fn: (kv: KvStore) => Promise<T>): Promise<T> {
  const kv = await openStore(conf);
  try {
    return await fn(kv);
  } catch (e) {
    throw datastoreError(conf, e);
  } finally {
    await closeStore(conf, kv);
  }
}

/**
 * Closes the store; a failure (the embedded store's fdatasync of the last writes: EIO, ENOSPC at
 * writeback) is said on stderr: the call's work is done, and failing it now would leave it undone.
 */
async function closeStore(conf: NetConf, kv: KvStore): Promise<void> {
  await kv.close().catch((e: unknown) => {
    const err = datastoreError(conf, e) as Error;
    process.stderr.write(`podway: closing datastore ${datastoreText(conf)}: ${err?.message ?? String(err)}\n`);
  });
}

/**
 * Records which etcd cluster answered (its cluster_id) in the spool directory, for the entry a
 * later DEL defers while etcd is down (pending-del.ts). Best effort: a DEL or ADD does not fail on it.
 */
function noteCluster(conf: NetConf, kv: KvStore): void {
  const id = kv.clusterIdSeen?.();
  if (!id) return;
  try {
    rememberClusterId(conf.pendingDelDir, datastoreKey(conf.datastore), id);
  } catch (e) {
    process.stderr.write(`podway: "pending_del_dir" ${conf.pendingDelDir}: cannot record the datastore's cluster_id: ${(e as Error).message}\n`);
  }
}

/** The host-wide IPAM lock this network's config names (ipam-lock.ts). */
function ipamLockOf(conf: NetConf): IpamLockOptions {
  return { file: conf.ipamLockFile, timeoutMs: conf.ipamLockTimeoutMs, setting: '"ipam_lock_file" in the network config' };
}

/** ADD or DEL refused because the datastore is locked (`calicoctl datastore migrate lock`). */
class DatastoreLockedError extends CniError {}

/**
 * Calico's plugin reads ClusterInformation default at every ADD and DEL and refuses both while its
 * datastoreReady is false ("Calico is currently not ready to process requests", code 999): the
 * datastore is locked, e.g. for a migration, and a write now could be lost with the old store. The
 * same here, with the same code, naming the lock and how to lift it. One read, whose answer also
 * says the store is reachable (and which etcd cluster answered). A store without a ClusterInformation
 * (no calico-node or podway run has registered there yet) is not locked here, where Calico's
 * plugin fails ("error getting ClusterInformation").
 */
async function datastoreLock(kv: KvStore, conf: NetConf): Promise<DatastoreLockedError | null> {
  const ci = await kv.get(CLUSTER_INFORMATION_KEY);
  if (!ci || !datastoreLockedIn(ci.value)) return null;
  return new DatastoreLockedError(CNI_CODES.DATASTORE_LOCKED, `Calico is currently not ready to process requests: datastore ${datastoreText(conf)} is locked (${DATASTORE_LOCKED_TEXT})`);
}

async function requireUnlocked(kv: KvStore, conf: NetConf): Promise<void> {
  const locked = await datastoreLock(kv, conf);
  if (locked) throw locked;
}

/** Code 11 (try again later) while this node's Node (`node`, as read) is not registered. */
function requireNode(conf: NetConf, node: KvEntry | null): void {
  if (!node) {
    throw new CniError(CNI_CODES.TRY_AGAIN_LATER, `node ${conf.nodename} is not registered in datastore ${datastoreText(conf)} (no ${nodeKey(conf.nodename)}): start \`${podwayCommand()} run --node ${conf.nodename}\` on this host, or set "nodename" in the network config`);
  }
}

/**
 * The MTU of the interface holding the node's registered address (Node spec.bgp.ipv4Address; on an
 * IPv6-only node spec.bgp.ipv6Address): the underlay Felix calls the main interface and podway run
 * forwards over. The plugin runs in the node's network namespace, where podway run finds it too
 * (dataplane/host.ts findUnderlay); null when no interface holds it (the plugin run elsewhere) or
 * `ip` cannot list them.
 */
export function nodeUnderlayMtu(nodeJson: string, ipv6Only: boolean): number | null {
  let want: string | null = null;
  try {
    const bgp = (JSON.parse(nodeJson) as { spec?: { bgp?: { ipv4Address?: unknown; ipv6Address?: unknown } } }).spec?.bgp;
    const text = ipv6Only ? bgp?.ipv6Address : bgp?.ipv4Address;
    const ip = typeof text === 'string' ? parseIp(text.split('/')[0]) : null;
    want = ip ? formatIp(ip.version, ip.value) : null;
  } catch {
    return null;
  }
  if (want === null) return null;
  let links: { mtu?: number; addr_info?: { local?: string }[] }[];
  try {
    links = JSON.parse(execFileSync('ip', ['-j', ipv6Only ? '-6' : '-4', 'addr', 'show'], { encoding: 'utf8', timeout: 10_000 })) as typeof links;
  } catch {
    return null;
  }
  const same = (local: string | undefined) => {
    const p = local !== undefined ? parseIp(local) : null;
    return p !== null && formatIp(p.version, p.value) === want;
  };
  const l = links.find((x) => (x.addr_info ?? []).some((a) => same(a.local)));
  return l && Number.isInteger(l.mtu) && l.mtu! >= 68 ? l.mtu! : null;
}

/**
 * The pod MTU when the config has none, as Calico's with veth_mtu 0 (Felix's pod MTU): the smallest
 * tunnel MTU of the encapsulations the pools use (a disabled pool too, as Felix's encapsulation
 * calculator), each Felix's vxlanMTU / vxlanMTUV6 / ipipMTU from FelixConfiguration node.<node> or
 * default when set, else the node's underlay MTU (`underlay`: nodeUnderlayMtu, 1500 when unknown)
 * less the overhead: IPv4 VXLAN 50, IPIP 20, IPv6 VXLAN 70 (1450, 1480, 1430 on a 1500 underlay);
 * the underlay's with none. On an IPv6-only node the IPv6 pools alone, as its model sets the pods'
 * MTU (IPv4 pools are not used there). The same function as `podway run`'s model
 * (control/felix-mtu.ts), so the two agree; podway run's own FELIX_* environment is not seen here.
 */
async function poolMtu(kv: KvStore, ipv6Only: boolean, underlay: number, nodename: string): Promise<number> {
  const pools = (await listResources(kv, IPPOOL)).items.map((r) => (r.object.spec ?? {}) as JsonObject);
  const felix = (await listResources(kv, FELIX_CONFIGURATION)).items;
  const spec = (name: string) => {
    const o = felix.find((r) => (r.object.metadata as JsonObject | undefined)?.name === name)?.object.spec;
    return o !== null && typeof o === 'object' && !Array.isArray(o) ? (o as JsonObject) : null;
  };
  const settings = resolveTunnelMtus({ default: spec('default'), node: spec(`node.${nodename}`) });
  return podMtuOf(underlay, tunnelMtus(underlay, settings), tunnelsInUse(pools), ipv6Only);
}

// ---------------------------------------------------------------------------------------------
// Namespaces

const NETNS_NAMED = /^\/run\/netns\/[A-Za-z0-9_.-]+$/;
const NETNS_OF_PID = /^\/proc\/[0-9]+\/ns\/net$/;

/** statfs(2) f_type of the namespace filesystem (linux/magic.h NSFS_MAGIC). */
const NSFS_MAGIC = 0x6e736673;

/**
 * CNI_NETNS exists and is a namespace file (nsfs, as Calico's ns.GetNS checks): another file
 * (a typo, /etc/hostname) would otherwise fail later inside `ip` with "Invalid argument", not
 * naming CNI_NETNS.
 */
function requireNetns(path: string): void {
  if (!existsSync(path)) throw new CniError(CNI_CODES.INVALID_ENV, `CNI_NETNS: ${path} does not exist (the container's network namespace is gone or was never made)`);
  let type: number;
  try {
    type = statfsSync(path).type;
  } catch (e) {
    throw new CniError(CNI_CODES.INVALID_ENV, `CNI_NETNS: ${path}: ${(e as Error).message}`);
  }
  if (type !== NSFS_MAGIC) throw new CniError(CNI_CODES.INVALID_ENV, `CNI_NETNS: ${path} is not a network namespace (a file on a filesystem of type 0x${type.toString(16)}, not nsfs): give /run/netns/NAME, /proc/PID/ns/net or a bind mount of one`);
}

/**
 * The namespace path podway run opens a tap/tun device from (WorkloadEndpoint interfaceNetns):
 * /run/netns/NAME or /proc/PID/ns/net, also when given through a symlinked directory such as
 * /var/run/netns.
 */
export function endpointNetns(path: string): string {
  if ((NETNS_NAMED.test(path) && basename(path) !== '.' && basename(path) !== '..') || NETNS_OF_PID.test(path)) return path;
  // Only bind mounts are resolved: /proc/self or /proc/thread-self would name this short-lived process.
  if (!path.startsWith('/proc/')) try {
    const real = join(realpathSync(dirname(path)), basename(path));
    if (NETNS_NAMED.test(real) || NETNS_OF_PID.test(real)) return real;
  } catch {
    /* fall through */
  }
  throw new CniError(CNI_CODES.INVALID_ENV, `CNI_NETNS: ${path}: a tap/tun endpoint needs a namespace path podway can open later, /run/netns/NAME or /proc/PID/ns/net`);
}

// ---------------------------------------------------------------------------------------------
// ADD

/** One host port as Calico's WorkloadEndpoint spec.ports holds it (libcalico-go
 * WorkloadEndpointPort: name, protocol, port, hostPort, hostIP, every field written). */
export interface EndpointPort {
  readonly name: string;
  readonly protocol: 'tcp' | 'udp' | 'sctp';
  readonly port: number;
  readonly hostPort: number;
  readonly hostIP: string;
}

/**
 * The runtime's host ports (the CNI "portMappings" capability: podman's `-p`, kubelet's hostPort),
 * runtimeConfig.portMappings `[{hostPort, containerPort, protocol, hostIP}]`, as spec.ports entries
 * (Calico's k8s conversion writes protocol in lower case, hostIP "" for none). Refused with code 7
 * naming the entry and field when one is not a port mapping.
 */
export function requestedPorts(conf: NetConf): EndpointPort[] {
  const rc = conf.raw.runtimeConfig;
  if (typeof rc !== 'object' || rc === null || Array.isArray(rc)) return [];
  const pm = (rc as Record<string, unknown>).portMappings;
  if (pm === undefined || pm === null) return [];
  const where = `${configOrigin(conf.raw)}: runtimeConfig.portMappings`;
  if (!Array.isArray(pm)) throw new CniError(CNI_CODES.INVALID_CONFIG, `${where}: expected a list of port mappings, got ${JSON.stringify(pm)}`);
  const out: EndpointPort[] = [];
  pm.forEach((m: unknown, k: number) => {
    if (typeof m !== 'object' || m === null || Array.isArray(m)) throw new CniError(CNI_CODES.INVALID_CONFIG, `${where}[${k}]: expected {hostPort, containerPort, protocol, hostIP}, got ${JSON.stringify(m)}`);
    const o = m as Record<string, unknown>;
    const port = (f: string) => {
      const v = o[f];
      if (typeof v !== 'number' || !Number.isInteger(v) || v < 1 || v > 65535) throw new CniError(CNI_CODES.INVALID_CONFIG, `${where}[${k}].${f}: expected a port (1-65535), got ${JSON.stringify(v)}`);
      return v;
    };
    const hostPort = port('hostPort');
    const containerPort = port('containerPort');
    const proto = o.protocol === undefined || o.protocol === '' ? 'tcp' : typeof o.protocol === 'string' ? o.protocol.toLowerCase() : '';
    if (proto !== 'tcp' && proto !== 'udp' && proto !== 'sctp') throw new CniError(CNI_CODES.INVALID_CONFIG, `${where}[${k}].protocol: expected tcp, udp or sctp, got ${JSON.stringify(o.protocol)}`);
    let hostIP = '';
    if (o.hostIP !== undefined && o.hostIP !== '') {
      const h = o.hostIP;
      if (typeof h !== 'string' || (parseIPv4(h) === null && parseIPv6Cidr(`${h}/128`) === null)) throw new CniError(CNI_CODES.INVALID_CONFIG, `${where}[${k}].hostIP: expected an IP address, got ${JSON.stringify(h)}`);
      // the unspecified address is every address, as portmap takes it
      hostIP = h === '0.0.0.0' || h === '::' ? '' : h;
    }
    out.push({ name: '', protocol: proto, port: containerPort, hostPort, hostIP });
  });
  return out;
}

/** Do two host ports take the same port of the node (protocol, port, and an address both cover)? */
function portsClash(a: { protocol?: unknown; hostPort?: unknown; hostIP?: unknown }, b: EndpointPort): boolean {
  if (!a.hostPort || a.hostPort !== b.hostPort) return false;
  const pa = typeof a.protocol === 'string' ? a.protocol.toLowerCase() : a.protocol === 17 ? 'udp' : a.protocol === 132 ? 'sctp' : 'tcp';
  if (pa !== b.protocol) return false;
  const ha = typeof a.hostIP === 'string' && a.hostIP !== '0.0.0.0' && a.hostIP !== '::' ? a.hostIP : '';
  // no address: every address of the node (both families), as portmap reads it
  return ha === '' || b.hostIP === '' || ha === b.hostIP;
}

/**
 * Refuse host ports another endpoint of this node already has (code 4, naming it), before
 * anything is made: the node's port goes to one pod only, and podway's table would give it to the
 * first endpoint (by name) without a word. Another attachment of this container is no clash, nor
 * is the endpoint this ADD writes over: a Kubernetes pod's is named after the pod, and its new
 * sandbox's ADD replaces the old sandbox's endpoint when that one's DEL never ran (as Calico's does).
 * Called under the IPAM lock, held until this ADD's endpoint is written (add: hostPortsSerialised):
 * two ADDs asking one port at once cannot both pass it.
 */
async function refuseTakenHostPorts(kv: KvStore, conf: NetConf, env: CniEnv, id: PodIdentity, ports: readonly EndpointPort[]): Promise<void> {
  if (ports.length === 0) return;
  const own = workloadEndpointName(conf.nodename, id, env.containerId, env.ifname);
  // this node's endpoints only: a cluster's others are skipped by name before any is parsed
  for (const r of (await listNodeWorkloadEndpoints(kv, conf.nodename)).items) {
    const spec = (r.object.spec ?? {}) as JsonObject;
    if (spec.node !== conf.nodename || spec.containerID === env.containerId || !Array.isArray(spec.ports)) continue;
    const meta = (r.object.metadata ?? {}) as JsonObject;
    if (meta.name === own && String(meta.namespace ?? 'default') === id.namespace) continue;
    for (const theirs of spec.ports as JsonObject[]) {
      const mine = ports.find((p) => portsClash(theirs, p));
      if (!mine) continue;
      const nets = ((spec.ipNetworks ?? []) as string[]).map((n) => n.split('/')[0]).join(', ');
      throw new CniError(CNI_CODES.INVALID_ENV, `runtimeConfig.portMappings: ${mine.protocol} host port ${mine.hostIP || '*'}:${mine.hostPort} is already taken on node ${conf.nodename} by WorkloadEndpoint ${String(meta.namespace ?? 'default')}/${String(meta.name)} (container ${String(spec.containerID ?? '?')}, ${nets || 'no address'} port ${String(theirs.port)}); nothing was made: remove that container or pick another host port`);
    }
  }
}

function workloadEndpoint(conf: NetConf, env: CniEnv, id: PodIdentity, ips: readonly string[], interfaceName: string, mac: string | null, ports: readonly EndpointPort[] = []): JsonObject {
  const spec: JsonObject = {
    orchestrator: id.orchestrator,
    workload: id.orchestrator === 'cni' ? env.containerId : undefined,
    node: conf.nodename,
    containerID: env.containerId,
    pod: id.orchestrator === 'k8s' ? id.pod : undefined,
    endpoint: env.ifname,
    ipNetworks: ips.map((ip) => (ip.includes(':') ? `${ip}/128` : `${ip}/32`)),
    profiles: id.orchestrator === 'k8s' ? [`kns.${id.namespace}`] : [conf.name],
    interfaceName,
    mac: mac ?? undefined,
    // Calico's spec.ports: the runtime's host ports (runtimeConfig.portMappings)
    ports: ports.length ? ports.map((p) => ({ ...p })) : undefined,
  };
  // A TAP or TUN pod's attachment in annotations, not spec fields Calico does not define (which
  // calicoctl get/replace would drop: resources.ts INTERFACE_TYPE_ANNOTATION).
  const annotations: JsonObject = { [NETWORK_ANNOTATION]: conf.name };
  if (conf.interfaceType !== 'veth') {
    annotations[INTERFACE_TYPE_ANNOTATION] = conf.interfaceType;
    annotations[INTERFACE_NETNS_ANNOTATION] = endpointNetns(env.netns);
  }
  return {
    apiVersion: CALICO_API_VERSION,
    kind: 'WorkloadEndpoint',
    metadata: {
      name: workloadEndpointName(conf.nodename, id, env.containerId, env.ifname),
      namespace: id.namespace,
      annotations,
    },
    spec,
  };
}

/** What an earlier ADD of this very attachment (same container ID and interface) left. */
interface EarlierAttachment {
  readonly ips: string[];
  readonly interfaceName: string;
  readonly mac: string | null;
  /** A tap/tun endpoint's namespace (its interface-netns annotation); null for a veth. */
  readonly netns: string | null;
  /** Its spec.ports as JSON text ("[]" for none), to tell whether they changed. */
  readonly ports: string;
}

/**
 * The endpoint an earlier ADD of this attachment wrote, when its addresses are still this
 * container's: with podway's IPAM held by its handle (an address released or taken by someone
 * else since makes the ADD a fresh one, and the endpoint is written anew). null: a first ADD, or
 * an endpoint of another container (a newer sandbox of the same k8s pod) or of another network.
 */
async function earlierAttachment(kv: KvStore, conf: NetConf, env: CniEnv, id: PodIdentity, handle: string): Promise<EarlierAttachment | null> {
  const name = workloadEndpointName(conf.nodename, id, env.containerId, env.ifname);
  const found = await getResource(kv, WEP, name, id.namespace);
  if (!found) return null;
  const spec = (found.object.spec ?? {}) as JsonObject;
  const ann = (((found.object.metadata ?? {}) as JsonObject).annotations ?? {}) as Record<string, string>;
  if (spec.containerID !== env.containerId || spec.endpoint !== env.ifname || spec.node !== conf.nodename) return null;
  if (ann[NETWORK_ANNOTATION] !== undefined && ann[NETWORK_ANNOTATION] !== conf.name) return null;
  if (storedInterfaceType(found.object) !== conf.interfaceType || typeof spec.interfaceName !== 'string') return null;
  const ips = ((spec.ipNetworks ?? []) as string[]).map((n) => n.split('/')[0]);
  if (ips.length === 0) return null;
  if (!conf.ipam) {
    const ipam = ipamOn(kv);
    for (const ip of ips) if ((await ipam.allocationOf(ip))?.handleId !== handle) return null;
  }
  const netns = typeof ann[INTERFACE_NETNS_ANNOTATION] === 'string' ? ann[INTERFACE_NETNS_ANNOTATION] : null;
  return { ips, interfaceName: spec.interfaceName, mac: typeof spec.mac === 'string' ? spec.mac : null, netns, ports: JSON.stringify(Array.isArray(spec.ports) ? spec.ports : []) };
}

/** A first ADD whose CNI_IFNAME is already in CNI_NETNS (code 4): nothing there is touched. */
function ifnameTaken(env: CniEnv): CniError {
  return new CniError(CNI_CODES.INVALID_ENV, `ADD ${env.containerId}: CNI_IFNAME ${env.ifname} already exists in CNI_NETNS ${env.netns} (another attachment's interface, or one made by hand): left as it is, nothing made`);
}

/**
 * Why a repeated ADD may not remake CNI_IFNAME in CNI_NETNS, or null when it may. A veth: the pod's
 * interface must be the peer of this container's host veth `interfaceName`, each end naming the
 * other's index (one side alone is not enough: every namespace's first interface is index 2); a
 * host veth whose pod end is elsewhere is the first ADD's, in another namespace. A tap/tun
 * device: the one there must carry this container's altname, and the namespace be the one its
 * endpoint names. Nothing there and no host veth: nothing of anyone's is in the way.
 */
function notThisContainers(env: CniEnv, conf: NetConf, interfaceName: string, earlierNetns: string | null): string | null {
  const where = `CNI_IFNAME ${env.ifname} in CNI_NETNS ${env.netns}`;
  const pod = netlink.linkIndex(env.netns, env.ifname);
  if (conf.interfaceType === 'veth') {
    const host = netlink.linkIndex(null, interfaceName);
    const mismatch = pod && host ? netlink.vethPairMismatch(env.netns, pod, host, interfaceName) : null;
    if (pod && host && mismatch === null) return null;
    if (pod) return `${where} is not this container's interface (${mismatch ?? `its host veth ${interfaceName} is gone, and a veth's ends go together`}): another pod's?`;
    if (host) return `${where} does not exist, and this container's host veth ${interfaceName} has its pod end elsewhere: in the namespace its first ADD gave`;
    return null;
  }
  if (pod && !pod.altnames.includes(interfaceName)) return `${where} is not this container's ${conf.interfaceType} device (it has no altname ${interfaceName})`;
  if (earlierNetns !== null && earlierNetns !== endpointNetns(env.netns)) return `this container's ${conf.interfaceType} device ${interfaceName} is in ${earlierNetns} (its first ADD's CNI_NETNS), not in ${env.netns}`;
  return null;
}

/**
 * The addresses the runtime asks for, IPv4 first; null when it asks for none (IPAM picks). Calico's
 * CNI_ARGS `IP=` (podman's `--ip`), one address or a comma-separated list of at most one per
 * family, or runtimeConfig `ips` (the "ips" capability: podman sends it for more than one `--ip`,
 * adding the capability to the config itself); a prefix length there ("A/N") is ignored, the pod
 * gets its /32 or /128 as always. Both given must agree.
 */
export function requestedIps(env: CniEnv, conf: NetConf): { ips: string[]; source: string } | null {
  const bad = (source: string, why: string): CniError => new CniError(CNI_CODES.INVALID_ENV, `${source}: ${why}`);
  const parse = (source: string, items: readonly unknown[]): string[] => {
    const byVersion = new Map<4 | 6, string>();
    for (const item of items) {
      const text = typeof item === 'string' ? item.trim() : '';
      const parsed = parseIp(text.replace(/\/\d{1,3}$/, ''));
      if (!parsed) throw bad(source, `${JSON.stringify(item)} is not an IP address (expected A.B.C.D and/or an IPv6 address, at most one of each)`);
      const ip = formatIp(parsed.version, parsed.value);
      if (byVersion.has(parsed.version)) throw bad(source, `two IPv${parsed.version} addresses (${byVersion.get(parsed.version)}, ${ip}): a pod gets at most one of each family`);
      byVersion.set(parsed.version, ip);
    }
    return [4 as const, 6 as const].flatMap((v) => (byVersion.has(v) ? [byVersion.get(v)!] : []));
  };
  let fromArgs: string[] | null = null;
  if (env.args.IP !== undefined && env.args.IP.trim() !== '') fromArgs = parse(`CNI_ARGS IP=${env.args.IP}`, env.args.IP.split(','));
  let fromRuntime: string[] | null = null;
  const rc = conf.raw.runtimeConfig;
  const rcIps = typeof rc === 'object' && rc !== null && !Array.isArray(rc) ? (rc as Record<string, unknown>).ips : undefined;
  if (rcIps !== undefined && rcIps !== null) {
    if (!Array.isArray(rcIps)) throw new CniError(CNI_CODES.INVALID_CONFIG, `network config: runtimeConfig.ips: expected a list of addresses, got ${JSON.stringify(rcIps)}`);
    if (rcIps.length > 0) fromRuntime = parse(`runtimeConfig.ips ${JSON.stringify(rcIps)}`, rcIps);
  }
  if (fromArgs && fromRuntime && fromArgs.join(',') !== fromRuntime.join(',')) {
    throw bad('CNI_ARGS IP', `${fromArgs.join(',')} and runtimeConfig.ips ${fromRuntime.join(',')} ask for different addresses`);
  }
  if (fromArgs) return { ips: fromArgs, source: 'CNI_ARGS IP' };
  if (fromRuntime) return { ips: fromRuntime, source: 'runtimeConfig.ips' };
  return null;
}

/**
 * The MAC the runtime asks for the pod's interface, lowercase with colons; null when it asks for
 * none (the kernel picks one). Where the reference bridge plugin reads it: CNI_ARGS `MAC=`
 * (podman's `--mac-address`, CRI-O's), the config's `args.cni.mac`, and runtimeConfig `mac` (the
 * CNI "mac" capability, which the conflist `podway cni install` writes declares). Where bridge lets
 * the later override the earlier, two that disagree are refused here (code 4), as IP= and `ips`
 * are. Refused too (code 4, naming the source): not a 6-byte MAC, all zero, a multicast or
 * broadcast one (its group bit set: no unicast frame could be addressed to the pod), and
 * ee:ee:ee:ee:ee:ee, the gateway's MAC on every host end and in every ARP/NDP answer podway gives.
 * A TUN pod has no link layer: a MAC asked for it is refused, not dropped silently.
 */
export function requestedMac(env: CniEnv, conf: NetConf): { mac: string; source: string } | null {
  const given: { mac: string; source: string }[] = [];
  const take = (source: string, value: unknown): void => {
    if (value === undefined || value === null || value === '') return;
    if (typeof value !== 'string') throw new CniError(CNI_CODES.INVALID_ENV, `${source}: expected a MAC address string, got ${JSON.stringify(value)}`);
    const m = /^([0-9a-f]{2})([:-])([0-9a-f]{2})\2([0-9a-f]{2})\2([0-9a-f]{2})\2([0-9a-f]{2})\2([0-9a-f]{2})$/i.exec(value.trim());
    if (!m) throw new CniError(CNI_CODES.INVALID_ENV, `${source}=${value}: not a MAC address (expected six hex bytes, e.g. 02:11:22:33:44:55)`);
    const bytes = [m[1], m[3], m[4], m[5], m[6], m[7]].map((b) => b.toLowerCase());
    const mac = bytes.join(':');
    if (bytes.every((b) => b === '00')) throw new CniError(CNI_CODES.INVALID_ENV, `${source}=${value}: the all-zero MAC is no interface's address`);
    if ((parseInt(bytes[0], 16) & 1) === 1) throw new CniError(CNI_CODES.INVALID_ENV, `${source}=${value}: a multicast${mac === 'ff:ff:ff:ff:ff:ff' ? ' (broadcast)' : ''} MAC (the low bit of its first byte is set): a pod's interface needs a unicast one, e.g. 02:11:22:33:44:55`);
    if (mac === netlink.HOST_MAC) throw new CniError(CNI_CODES.INVALID_ENV, `${source}=${value}: ${netlink.HOST_MAC} is the pod gateway's MAC (every host end's, and podway's ARP/NDP answers'): the pod cannot have it`);
    given.push({ mac, source });
  };
  take('CNI_ARGS MAC', env.args.MAC);
  const args = conf.raw.args;
  const cni = typeof args === 'object' && args !== null && !Array.isArray(args) ? (args as Record<string, unknown>).cni : undefined;
  if (typeof cni === 'object' && cni !== null && !Array.isArray(cni)) take('args.cni.mac', (cni as Record<string, unknown>).mac);
  const rc = conf.raw.runtimeConfig;
  if (typeof rc === 'object' && rc !== null && !Array.isArray(rc)) take('runtimeConfig.mac', (rc as Record<string, unknown>).mac);
  if (given.length === 0) return null;
  const other = given.find((g) => g.mac !== given[0].mac);
  if (other) throw new CniError(CNI_CODES.INVALID_ENV, `${given[0].source} ${given[0].mac} and ${other.source} ${other.mac} ask for different MACs`);
  if (conf.interfaceType === 'tun') throw new CniError(CNI_CODES.INVALID_ENV, `${given[0].source}=${given[0].mac}: a tun interface ("interfaceType": "tun" in the network config) has no link layer, so no MAC; use veth or tap for a pod with a set MAC`);
  return given[0];
}

/**
 * ipam.ipv4_pools / ipv6_pools as CIDRs, as Calico's plugin resolves them (utils.ResolvePools): a
 * CIDR is taken as it is (host bits cleared), anything else must be the name of an IP pool;
 * refused (code 7, naming the key) when it is neither or of the other family. Whether each is an
 * enabled pool is IPAM's check ("the given pool (CIDR) does not exist, or is not enabled").
 */
async function resolvePools(ipam: Ipam, conf: NetConf, version: 4 | 6): Promise<string[]> {
  const given = version === 4 ? conf.ipv4Pools : conf.ipv6Pools;
  if (given.length === 0) return [];
  const key = `network config: ipam.ipv${version}_pools`;
  const all = given.some((p) => !p.includes('/')) ? await ipam.listPools() : [];
  return given.map((p) => {
    const net = p.includes('/') ? parseCidrOrIp(p) : all.find((q) => q.name === p)?.cidr ?? null;
    if (!net) throw new CniError(CNI_CODES.INVALID_CONFIG, `${key}: error parsing pool ${JSON.stringify(p)}: ${p.includes('/') ? 'not a CIDR' : 'neither a CIDR nor the name of an IP pool'}`);
    if (net.version !== version) throw new CniError(CNI_CODES.INVALID_CONFIG, `${key}: ${JSON.stringify(p)} (${net.text}) isn't an IPv${version} pool`);
    return net.text;
  });
}

/**
 * Refuses (code 4) an ADD whose host veth name is already the interface of another attachment of
 * the same container on this node: another network or CNI_IFNAME (podman --network a,b). Calico
 * names the veth the same way and would replace the first one's; podway refuses instead, naming it.
 */
async function refuseSharedVeth(kv: KvStore, conf: NetConf, env: CniEnv, id: PodIdentity, interfaceName: string): Promise<void> {
  for (const r of (await listResources(kv, WEP, id.namespace)).items) {
    const spec = (r.object.spec ?? {}) as JsonObject;
    if (spec.node !== conf.nodename || spec.interfaceName !== interfaceName || spec.containerID !== env.containerId) continue;
    const net = ((((r.object.metadata ?? {}) as JsonObject).annotations ?? {}) as Record<string, string>)[NETWORK_ANNOTATION];
    if (spec.endpoint === env.ifname && (net === undefined || net === conf.name)) continue;
    throw new CniError(CNI_CODES.INVALID_ENV, `CNI_IFNAME ${env.ifname}: host veth ${interfaceName} is already the interface of WorkloadEndpoint ${id.namespace}/${String((r.object.metadata as JsonObject).name)} (network ${JSON.stringify(net ?? '?')}, ${String(spec.endpoint)}) of this container: the veth is named after the container${id.orchestrator === 'k8s' ? ' (k8s: the pod)' : ''}, as Calico names it, so a container can be on one podway veth network only; nothing was changed`);
  }
}

/** How an IPv6-only node is told (the model's reason, route-calc.ts NO_IPV4_REASON). */
const NO_NODE_IPV4 = 'its Node has no spec.bgp.ipv4Address: podway run --ip none';

/**
 * The warning for an IPv4 address given to a pod on an IPv6-only node, by where it came from: the
 * node's model withholds it (never routed; `podway status` lists it), so the pod has an address
 * that does not work. Calico's plugin assigns it all the same (its ADD never looks at the node's
 * addresses: assign_ipv4 unset means "true", and an IPv4 pool gives one), and so does podway's,
 * naming the config file and field to change instead of failing the pod.
 */
function ipv4OnIpv6OnlyNode(conf: NetConf, v4: string, source: 'auto' | 'delegated' | 'earlier' | { readonly requested: string }): string {
  const where = configOrigin(conf.raw);
  const notRouted = `node ${conf.nodename} is IPv6-only (${NO_NODE_IPV4}), so the pod's IPv4 address ${v4} is not routed here (podway status lists it withheld)`;
  const fix = `set "assign_ipv4": "false" and "assign_ipv6": "true" in "ipam" (podway cni install writes them on an IPv6-only node)`;
  if (source === 'auto') {
    const given = (conf.raw.ipam as Record<string, unknown> | undefined)?.assign_ipv4;
    const value = given === undefined || given === null || given === '' ? 'unset (Calico\'s default: "true")' : JSON.stringify(given);
    return `${where}: ipam.assign_ipv4 is ${value}, but ${notRouted}; assigned all the same, as Calico's plugin does: ${fix}`;
  }
  if (source === 'delegated') return `${where}: ipam (${conf.ipam?.type}) gave an IPv4 address, but ${notRouted}; have it assign IPv6 only`;
  if (source === 'earlier') return `${where}: the pod keeps the addresses of its first ADD, but ${notRouted}; for its next sandbox, ${fix}`;
  return `${source.requested}: ${v4} asked for, but ${notRouted}; assigned as asked, as Calico's plugin does`;
}

/**
 * Refuses (code 4, naming the variable) an ADD whose WorkloadEndpoint name would not be a Calico
 * resource name: libcalico-go takes any container ID in spec.containerID (letters of either case)
 * but names must be lowercase RFC 1123 subdomains, and the plain-CNI name holds the container ID
 * ("<node>-cni-<containerID>-<ifname>"). Calico's plugin finds out only when it writes the endpoint,
 * after the address and the veth are made (then undone); checked here before anything is made. A
 * pod named in CNI_ARGS (K8S_POD_NAMESPACE, K8S_POD_NAME) names its endpoint after the pod and
 * takes any container ID, as Calico's does.
 */
function requireEndpointName(conf: NetConf, env: CniEnv, id: PodIdentity): void {
  const name = workloadEndpointName(conf.nodename, id, env.containerId, env.ifname);
  if (name.length <= 253 && NAME_PATTERN.test(name)) return;
  const bad = (v: string): boolean => !/^[a-z0-9.-]*$/.test(v);
  const culprit = id.orchestrator === 'cni' && bad(env.containerId) ? `CNI_CONTAINERID ${JSON.stringify(env.containerId)}`
    : bad(env.ifname) ? `CNI_IFNAME ${JSON.stringify(env.ifname)}`
    : id.orchestrator === 'k8s' && bad(id.pod) ? `CNI_ARGS K8S_POD_NAME ${JSON.stringify(id.pod)}`
    : name.length > 253 ? `CNI_CONTAINERID ${JSON.stringify(env.containerId)}` : `the WorkloadEndpoint name`;
  const why = name.length > 253 ? `${name.length} characters, at most 253` : "lowercase a-z, 0-9, '-' and '.' only";
  const hint = id.orchestrator === 'cni' ? ' (a pod named in CNI_ARGS K8S_POD_NAMESPACE and K8S_POD_NAME names its endpoint after the pod, and then takes any container ID)' : '';
  throw new CniError(CNI_CODES.INVALID_ENV, `ADD ${env.containerId}: ${culprit} cannot be part of WorkloadEndpoint name ${JSON.stringify(name)}: a Calico resource name is ${why}; refused before anything is made${hint}`);
}

async function add(env: CniEnv, conf: NetConf, stdin: StdinConfig): Promise<Record<string, unknown>> {
  for (const w of [...unknownSettings(conf.raw), ...unhonouredSettings(conf.raw)]) process.stderr.write(`podway: ${configOrigin(conf.raw)}: ${w}\n`);
  requireNetns(env.netns);
  zodWithoutJit();
  if (conf.interfaceType !== 'veth') endpointNetns(env.netns);
  const id = podIdentity(env.args, env.containerId);
  requireEndpointName(conf, env, id);
  const handle = handleId(conf.name, env.containerId);
  // Checked before anything is made; a delegated IPAM plugin reads CNI_ARGS itself (host-local: IP=).
  const requested = conf.ipam ? null : requestedIps(env, conf);
  // The MAC asked for the pod's interface (CNI_ARGS MAC, runtimeConfig.mac), checked before too.
  const wantMac = requestedMac(env, conf)?.mac ?? null;
  // The host ports (runtimeConfig.portMappings), checked before too.
  const ports = requestedPorts(conf);
  // One ADD of this container at a time (container-lock.ts): a second one finds the first's
  // endpoint and returns its result.
  // With host ports, the check that no other endpoint of the node has them and this ADD's
  // endpoint write are one step under the host-wide IPAM lock (re-entrant: the IPAM below takes it
  // within): two ADDs asking the same port at once cannot both pass the check. Without host ports
  // the lock is taken for the IPAM alone, as before.
  const hostPortsSerialised = <T>(fn: () => Promise<T>): Promise<T> => (ports.length > 0 ? withIpamLock(ipamLockOf(conf), fn) : fn());
  return withContainerLock({ ipamLockFile: conf.ipamLockFile, timeoutMs: conf.ipamLockTimeoutMs }, env.containerId, (held) => withStore(conf, async (kv) => {
    // Before anything is read for the pod or made: nothing is changed while the store is locked.
    await requireUnlocked(kv, conf);
    return hostPortsSerialised(() => addUnder(kv, held));
  }));
  async function addUnder(kv: KvStore, held: Parameters<Parameters<typeof withContainerLock>[2]>[0]): Promise<Record<string, unknown>> {
    await refuseTakenHostPorts(kv, conf, env, id, ports);
    // This node's Node, read once: podway's IPAM needs it registered, and an IPv6-only one (no
    // spec.bgp.ipv4Address: podway run --ip none) routes no IPv4 (pool MTU, ipv4OnIpv6OnlyNode).
    const node = await kv.get(nodeKey(conf.nodename));
    const ipv6Only = node !== null && isIpv6Only(nodeFamilies(node.value));
    // an explicit "mtu" wins; else Felix's pod MTU: the tunnels' (FelixConfiguration, else the
    // node's underlay less the overhead) of the pools' encapsulations (poolMtu)
    const mtu = conf.mtu ?? (await poolMtu(kv, ipv6Only, (node && nodeUnderlayMtu(node.value, ipv6Only)) ?? 1500, conf.nodename));
    // Everything made so far, undone in reverse order when a later step fails.
    const undo: (() => unknown)[] = [];
    // Whether an earlier ADD of this attachment left it (undefined: not read yet).
    let earlier: EarlierAttachment | null | undefined;
    try {
      // IPv4 first, then IPv6 (Calico's order in ipNetworks and the result).
      const ips: string[] = [];
      // A repeated ADD of the same attachment (a runtime retrying after a lost reply, say) finds
      // the endpoint the first one wrote and keeps its addresses, as Calico's plugin does: IPAM is
      // not asked again, so the first addresses are not left held on the handle until DEL.
      await replayOwnPending(kv, conf, env.containerId);
      earlier = await earlierAttachment(kv, conf, env, id, handle);
      if (earlier) {
        ips.push(...earlier.ips);
      } else if (conf.ipam) {
        const result = runIpamPlugin(conf.ipam.type, 'ADD', env, stdin);
        // given back by DEL if the result is of no use either
        undo.push(() => runIpamPlugin(conf.ipam!.type, 'DEL', env, stdin));
        ips.push(...delegatedIps(result, conf.ipam.type));
      } else {
        requireNode(conf, node);
        const ipam = ipamOn(kv);
        // network: which network's handle this is (GC tells "a"'s handle "a.b.c" from "a.b"'s by it).
        const attrs: Record<string, string> = { node: conf.nodename, network: conf.name, timestamp: new Date().toISOString() };
        if (id.orchestrator === 'k8s') Object.assign(attrs, { namespace: id.namespace, pod: id.pod });
        // One handle holds both families, so DEL's releaseByHandle frees both.
        // Never silent when it fails (the datastore slow or gone, as the ADD's own failure often
        // is): which addresses are left held, and that the runtime's DEL releases them.
        undo.push(() => ipam.releaseByHandle(handle).catch((e: unknown) => {
          const held = ips.length > 0 ? `its address(es) ${ips.join(', ')}` : 'whatever address it was being given';
          process.stderr.write(`podway: ADD ${env.containerId} failed, and undoing it could not release ${held} (IPAM handle ${handle}): ${((datastoreError(conf, e) as Error)?.message ?? String(e))}; left held until the runtime's DEL of ${env.containerId}, which releases it\n`);
          throw e;
        }));
        const families: (4 | 6)[] = [...(conf.assignIpv4 ? [4 as const] : []), ...(conf.assignIpv6 !== false ? [6 as const] : [])];
        // One plugin process at a time per host (ipam-lock.ts).
        await withIpamLock(ipamLockOf(conf), async () => {
          // An address a pod on this node still holds, that IPAM has free (its endpoint deleted
          // while it ran, say), is held first so no pod here or elsewhere is given it (orphan-hold.ts).
          const orphans = await holdOrphanAddresses(ipam, kv, conf.nodename, new Set([hostVethName(id, env.containerId)]), conf.ipamLockFile);
          if (orphans.held.length > 0) process.stderr.write(`podway: ADD ${env.containerId}: pod interface(s) on ${conf.nodename} hold address(es) IPAM had free, no endpoint naming them: ${orphans.held.join(', ')}; held under IPAM handle(s) ${ORPHAN_HANDLE_PREFIX}${conf.nodename}.<interface> so no pod is given them (docs/ipam.md)\n`);
          if (orphans.releasedByHand.length > 0) process.stderr.write(`podway: ADD ${env.containerId}: address(es) pod interface(s) on ${conf.nodename} hold were released from IPAM by hand since podway held them: ${orphans.releasedByHand.join(', ')}; not held again while the interface has them (IPAM may give them to another pod; docs/ipam.md)\n`);
          if (requested) {
            // Exactly the addresses asked for (and no other family), as Calico's IPAM does with
            // IP=: its block claimed for this node if nobody has it, the same handle and attributes.
            // Checked as Calico's plugin checks them (ipamplugin's cmdAdd hands IP= to
            // ipamClient.AssignIP, nothing else): refused outside every enabled pool (a disabled
            // pool's address too), in use, or in another node's block under strict_affinity;
            // given, on purpose, when an IPReservation covers it or its pool's nodeSelector does
            // not select this node (AssignIP consults neither: reservations and nodeSelectors
            // steer automatic assignment only). See Ipam.assignIp.
            for (const ip of requested.ips) {
              const holder = await ipam.allocationOf(ip);
              if (holder) {
                const who = holder.handleId ? `IPAM handle ${holder.handleId}${holder.secondary?.node ? ` on node ${holder.secondary.node}` : ''}` : 'an allocation without a handle';
                throw new CniError(CNI_CODES.IP_UNAVAILABLE, `${requested.source}: ${ip} is already in use (${who})`);
              }
              try {
                await ipam.assignIp({ ip, handleId: handle, attrs, node: conf.nodename, use: 'Workload' });
              } catch (e) {
                const m = (e as Error).message;
                // Outside every enabled pool, in a pool not for pods, in another node's block under strict_affinity, taken meanwhile.
                if (/not in an enabled IP pool|not allowed for use|strict_affinity|already assigned/.test(m)) throw new CniError(CNI_CODES.IP_UNAVAILABLE, `${requested.source}: ${m}`);
                throw e;
              }
              ips.push(ip);
            }
            return;
          }
          for (const version of families) {
            const pools = await resolvePools(ipam, conf, version);
            let got: Awaited<ReturnType<Ipam['autoAssign']>>;
            try {
              // A pool's namespaceSelector (Calico v3.31+) is matched against what podway knows of the
              // pod's namespace without the Kubernetes API: the label every namespace carries,
              // kubernetes.io/metadata.name, for a k8s pod; none for another (as Calico without one).
              const namespaceLabels = id.orchestrator === 'k8s' ? { 'kubernetes.io/metadata.name': id.namespace } : undefined;
              got = await ipam.autoAssign({ node: conf.nodename, count: 1, handleId: handle, attrs, version, use: 'Workload', pools, ...(namespaceLabels ? { namespaceLabels } : {}) });
            } catch (e) {
              // A requested pool that is not an enabled one (libcalico-go's determinePools words it so).
              if (/does not exist, or is not enabled/.test((e as Error).message)) throw new CniError(CNI_CODES.INVALID_CONFIG, `network config: ipam.ipv${version}_pools: ${(e as Error).message}`);
              throw e;
            }
            if (got.ips.length > 0) { ips.push(got.ips[0]); continue; }
            // Unset assign_ipv6 means "if the cluster has IPv6 for this node": none is no error.
            if (version === 6 && conf.assignIpv6 === 'auto' && got.noPool && conf.ipv6Pools.length === 0) continue;
            // An IPv6-only node's IPv4 address would not be routed anyway: what to set instead.
            const hint = version === 4 && ipv6Only ? `; node ${conf.nodename} is IPv6-only (${NO_NODE_IPV4}): set "assign_ipv4": "false" and "assign_ipv6": "true" in ${configOrigin(conf.raw)}'s "ipam" (podway cni install writes them on an IPv6-only node)` : '';
            throw new CniError(got.exhausted ? CNI_CODES.POOL_EXHAUSTED : CNI_CODES.TRY_AGAIN_LATER, `IPAM: no IPv${version} address for ${env.containerId}: ${(got.errors ?? ['no address assigned']).join('; ')}${hint}`);
          }
        });
      }

      const v4 = ips.find((ip) => !ip.includes(':'));
      if (ipv6Only && v4 !== undefined) process.stderr.write(`podway: ${ipv4OnIpv6OnlyNode(conf, v4, earlier ? 'earlier' : conf.ipam ? 'delegated' : requested ? { requested: requested.source } : 'auto')}\n`);

      let host: Attachment['host'] = null;
      // A repeated ADD's name is the one its endpoint holds (the same one ADD would derive).
      let interfaceName = earlier?.interfaceName ?? '';
      let link: netlink.PodLink | null = null;
      if (earlier) {
        // Its interface as the first ADD made it: left alone. Anything missing or changed (the
        // veth deleted, an address or route removed): made again whole, on the same addresses.
        const cidrs = earlier.ips.map((ip) => (ip.includes(':') ? `${ip}/128` : `${ip}/32`));
        // A MAC asked for now that the interface does not have makes it again, with that MAC.
        if (wiringProblems(env, conf, cidrs, wantMac ?? earlier.mac, conf.interfaceType === 'veth' ? interfaceName : null).length === 0) {
          link = netlink.podLink(env.netns, env.ifname);
          if (conf.interfaceType === 'veth') host = { name: interfaceName, mac: netlink.HOST_MAC };
        } else {
          // Only what is this container's own goes: a repeated ADD naming another CNI_NETNS (or
          // CNI_IFNAME) than its first would otherwise delete another pod's interface there, and
          // cut this container's first one off (review: hostile, HIGH 1).
          const foreign = notThisContainers(env, conf, interfaceName, earlier.netns);
          if (foreign) throw new CniError(CNI_CODES.INVALID_ENV, `ADD ${env.containerId}: ${foreign}; nothing was changed (a repeated ADD must name the CNI_NETNS and CNI_IFNAME of the container's first ADD; DEL the container to move it)`);
          netlink.deletePodLink(env.netns, env.ifname);
          if (conf.interfaceType === 'veth') netlink.deleteHostLink(interfaceName);
        }
      }
      if (link) {
        /* intact: nothing to make */
      } else if (conf.interfaceType === 'veth') {
        interfaceName = hostVethName(id, env.containerId);
        // Undo first: a create that fails half-way (the pair made, its set-up refused) leaves nothing.
        undo.push(() => netlink.deleteHostLink(interfaceName));
        try {
          netlink.createVeth(interfaceName, env.netns, env.ifname, mtu, wantMac);
        } catch (e) {
          // A veth of this pod's previous sandbox (k8s names are per pod, not per container):
          // Calico replaces it too. Deleted only when it is in the way, so the usual ADD costs one
          // `ip` process less.
          if (!netlink.alreadyExists(e)) throw e;
          // CNI_IFNAME already in the pod's namespace (the kernel's "File exists" names neither):
          // not ours to replace, whatever the host veth.
          if (netlink.podLink(env.netns, env.ifname)) {
            undo.pop(); // a host veth of that name is not this ADD's either
            throw ifnameTaken(env);
          }
          // Not when it is this very container's other attachment (a second podway network, or
          // another CNI_IFNAME): the name comes from the container (k8s: the pod) alone, so replacing
          // it would cut that attachment off and leave two endpoints naming one veth.
          try {
            await refuseSharedVeth(kv, conf, env, id, interfaceName);
          } catch (r) {
            undo.pop(); // the veth in the way is the other attachment's: left as it is
            throw r;
          }
          netlink.deleteHostLink(interfaceName);
          netlink.createVeth(interfaceName, env.netns, env.ifname, mtu, wantMac);
        }
        host = { name: interfaceName, mac: netlink.HOST_MAC };
        const why = netlink.limitPodOffloads(env.netns, env.ifname);
        if (why) process.stderr.write(`podway: SCTP segmentation offload left on for ${env.ifname}: ${why}\n`);
      } else {
        interfaceName = podDeviceName(conf.interfaceType, id, env.containerId);
        // Checked before: the undo below deletes CNI_IFNAME, which must then be this ADD's.
        if (netlink.podLink(env.netns, env.ifname)) throw ifnameTaken(env);
        undo.push(() => netlink.deletePodLink(env.netns, env.ifname));
        netlink.createTunTap(env.netns, env.ifname, conf.interfaceType, mtu, interfaceName, conf.nodename, wantMac);
      }
      // A veth pod with host ports: the node's own connections to 127.0.0.1:hostPort leave for the
      // pod through its host veth (translated by table ip podway, then given the node's address),
      // which the kernel allows a loopback source only with route_localnet, as portmap sets it on
      // the host's interface; a pod's own packets for 127.0.0.0/8 stay dropped (hostport_raw).
      if (ports.length > 0 && host) {
        try {
          writeFileSync(`/proc/sys/net/ipv4/conf/${host.name}/route_localnet`, '1');
        } catch (e) {
          process.stderr.write(`podway: ADD ${env.containerId}: net.ipv4.conf.${host.name}.route_localnet=1 not set (${(e as Error).message}): the node's connections to 127.0.0.1 on this pod's host ports will fail; its address and other hosts' work\n`);
        }
      }
      if (!link) {
        netlink.configurePodSysctls(env.netns, ips, conf.allowIpForwarding);
        const made = netlink.configurePod(env.netns, env.ifname, conf.interfaceType, ips);
        link = made;
        // Another network attached to this container first holds the default route of a family
        // (podman --network podway,podman; `podman network connect podway CTR`): that one stays
        // the pod's default, and this interface gets the pools' routes (netlink.routeBesideDefault).
        for (const family of made.defaultTaken) {
          const cidrs = (await ipamOn(kv).listPools(family)).filter((p) => !p.disabled).map((p) => p.cidr.text);
          const other = netlink.routeBesideDefault(env.netns, env.ifname, conf.interfaceType, family, cidrs);
          process.stderr.write(`podway: ADD ${env.containerId}: CNI_NETNS ${env.netns} already has an IPv${family} default route (${other}: another network's attachment): left as the pod's default; ${env.ifname} gets the enabled IPv${family} pools' routes (${cidrs.join(', ') || 'none'}) and a default of lower priority\n`);
        }
      }

      // The endpoint is written again only when it changed (a re-made interface has a new MAC):
      // an unchanged one would only wake every node's watch.
      if (!earlier || earlier.mac !== link.mac || earlier.interfaceName !== interfaceName || earlier.ports !== JSON.stringify(ports)) {
        const wep = workloadEndpoint(conf, env, id, ips, interfaceName, link.mac, ports);
        const wepName = `${id.namespace}/${(wep.metadata as JsonObject).name as string}`;
        let written: Awaited<ReturnType<typeof applyResource>>;
        try {
          written = await applyResource(kv, wep);
        } catch (e) {
          if (e instanceof ResourceError) throw new CniError(CNI_CODES.DATASTORE_FAILED, `WorkloadEndpoint ${wepName}: ${e.message}`);
          throw e;
        }
        // A repeated ADD's endpoint was there before it: a failure leaves it for DEL.
        if (!earlier) undo.push(() => deleteResource(kv, { info: WEP, name: (wep.metadata as JsonObject).name as string, namespace: id.namespace }, written.resource.entry.modRevision).catch((e: unknown) => {
          process.stderr.write(`podway: ADD ${env.containerId} failed, and undoing it could not delete WorkloadEndpoint ${wepName}: ${((datastoreError(conf, e) as Error)?.message ?? String(e))}; left until the runtime's DEL of ${env.containerId}, which deletes it\n`);
          throw e;
        }));
      }
      // A DEL of this container run between this ADD's IPAM (under the lock) and now has released
      // the handle (review E, M1): the interface and endpoint just made would keep addresses IPAM
      // has freed, for another pod to get. The CNI spec forbids the overlap and Calico has the same
      // gap; the guard is one read: the handle gone, this ADD is undone and fails (try again).
      if (!earlier && !conf.ipam && !(await kv.get(handleKey(handle)))) {
        throw new CniError(CNI_CODES.TRY_AGAIN_LATER, `ADD ${env.containerId}: its addresses (${ips.join(', ')}) were released while it was wiring the pod, by a DEL of the same container run meanwhile (IPAM handle ${handle} is gone): the interface and WorkloadEndpoint it made are removed again; ADD and DEL of one container must not overlap (CNI spec)`);
      }

      noteCluster(conf, kv);
      return successResult(conf.cniVersion, {
        host,
        ips: ips.map((address) => ({ address, gateway: conf.interfaceType === 'tun' ? null : address.includes(':') ? netlink.GATEWAY6 : netlink.GATEWAY })),
        pod: { name: env.ifname, mac: link.mac, sandbox: env.netns, mtu: link.mtu },
      });
    } catch (e) {
      let undone = true;
      for (const step of undo.reverse()) {
        try {
          await step();
        } catch {
          /* best effort: the original error is what the runtime needs to see */
          undone = false;
        }
      }
      // A first ADD refused late ("CNI_IFNAME eth0 already exists"), everything it made undone: the
      // container holds nothing here, so its lock file goes now rather than waiting for a DEL that
      // may never come. Kept when an earlier ADD's attachment is there (its DEL removes it), when
      // an undo step failed (something is left for the DEL), and when the ADD failed before it
      // could tell (datastore unreachable or locked).
      if (earlier === null && undone) held.removeFileOnRelease();
      throw e;
    }
  }
}

// ---------------------------------------------------------------------------------------------
// DEL

/** This attachment's endpoint names: the one ADD wrote, and the plain-CNI one when ADD saw no pod name. */
function endpointCandidates(conf: NetConf, env: CniEnv): { name: string; namespace: string }[] {
  const id = podIdentity(env.args, env.containerId);
  const out = [{ name: workloadEndpointName(conf.nodename, id, env.containerId, env.ifname), namespace: id.namespace }];
  if (id.orchestrator === 'k8s') {
    const cni = podIdentity({}, env.containerId);
    out.push({ name: workloadEndpointName(conf.nodename, cni, env.containerId, env.ifname), namespace: cni.namespace });
  }
  return out;
}

/**
 * Why CNI_IFNAME in CNI_NETNS (`pod`, there) is not provably this container's interface, or null
 * when it is: the proof ADD's notThisContainers asks for. A veth: the peer of this container's host
 * veth (by the name ADD gives it: with the pod's name from CNI_ARGS, or the container ID alone),
 * each end naming the other and the host end's peer in CNI_NETNS. A tap/tun device: it carries
 * this container's altname.
 */
function podLinkNotOurs(env: CniEnv, conf: NetConf, pod: netlink.LinkIndex): string {
  const ids = [podIdentity(env.args, env.containerId), podIdentity({}, env.containerId)];
  if (conf.interfaceType === 'veth') {
    const why: string[] = [];
    for (const name of [...new Set(ids.map((id) => hostVethName(id, env.containerId)))]) {
      const host = netlink.linkIndex(null, name);
      if (!host) {
        why.push(`no host veth ${name}`);
        continue;
      }
      const mismatch = netlink.vethPairMismatch(env.netns, pod, host, name);
      if (mismatch === null) return '';
      why.push(mismatch);
    }
    return `not this container's veth (${why.join('; ')})`;
  }
  const names = [...new Set(ids.map((id) => podDeviceName(conf.interfaceType as 'tap' | 'tun', id, env.containerId)))];
  if (pod.altnames.some((a) => names.includes(a))) return '';
  return `not this container's ${conf.interfaceType} device (it has no altname ${names.join(' or ')})`;
}

/**
 * A deferred DEL of a veth pod that could not look for the pod end (no CNI_NETNS, or one not
 * there; a plain CNI pod's veth went by name already): the host veths left that may be this pod's,
 * by name, with their index now (the entry's hostVeths): the one CNI_ARGS names (k8s: after the
 * pod), or, when CNI_ARGS had a part passed over and the pod's endpoint was not read to correct
 * it (the pod's name lost, or given twice), every pod veth here, since any may be this pod's. The
 * replay removes the one the endpoint it deletes names when it still has that index (the veth that
 * was there at the DEL, not one a pod re-created under the same name made since). Best effort: an
 * `ip` failing records none (said on stderr).
 */
function leftHostVeths(env: CniEnv, argsFaulty: boolean): Record<string, number> | null {
  const id = podIdentity(env.args, env.containerId);
  try {
    if (argsFaulty) {
      const all = netlink.hostPodVeths();
      if (Object.keys(all).length <= MAX_HOST_VETHS) return all;
      process.stderr.write(`podway: DEL ${env.containerId}: ${Object.keys(all).length} pod veths here, more than an entry records (${MAX_HOST_VETHS}): a replay will not remove a host veth left here\n`);
      return null;
    }
    if (id.orchestrator !== 'k8s') return null; // removed by name (removePlainVeth)
    const name = hostVethName(id, env.containerId);
    const l = netlink.linkIndex(null, name);
    return l ? { [name]: l.ifindex } : null;
  } catch (e) {
    process.stderr.write(`podway: DEL ${env.containerId}: the host veths could not be listed (${(e as Error).message}): a replay will not remove a host veth left here\n`);
    return null;
  }
}

/**
 * What a DEL that could neither release nor defer leaves in the datastore (`what`), and the
 * commands that release it by hand (`fix`): the handle, whose addresses `ipam check` then counts as
 * leaked, and the candidate endpoints (only one of them exists).
 */
function leftInStore(conf: NetConf, handle: string | null, endpoints: readonly { name: string; namespace: string }[]): { what: string; fix: string } {
  const ds = `--datastore ${datastoreKey(conf.datastore)}`;
  const eps = endpoints.map((r) => `${r.namespace}/${r.name}`);
  const what = `${handle ? `IPAM handle ${handle} (its addresses) and ` : ''}the WorkloadEndpoint ${eps.join(' or ')}${conf.ipam ? ` (the addresses are the delegated IPAM plugin's ${conf.ipam.type})` : ''}`;
  const cmds = [
    ...endpoints.map((r) => `podway delete workloadendpoint ${r.name} -n ${r.namespace} ${ds}`),
    ...(handle ? [`podway ipam release --handle ${handle} --grace-period 0 ${ds}`] : []),
  ];
  return { what, fix: `${cmds.join('; ')} (only one of the endpoints named exists); \`podway ipam check ${ds}\` lists what is left` };
}

async function del(env: CniEnv, conf: NetConf, stdin: StdinConfig): Promise<void> {
  await delAttachment(env, conf, stdin);
  // Done with the container: its ADD lock file goes (when no ADD holds it).
  await removeContainerLock(conf.ipamLockFile, env.containerId);
}

/**
 * The pod's identity from the record ADD kept, for a DEL whose CNI_ARGS had a part passed over
 * (env.argsFaulty: `K8S_POD_NAME` without '=', say): k8s names the host veth, the tap/tun altname
 * and the WorkloadEndpoint after the pod, not the container, so with the pod's name lost DEL would
 * find neither and leave them. The endpoint ADD wrote for this attachment (this container ID and
 * CNI_IFNAME, on this node, of this network) names the pod: `env` with its K8S_POD_NAMESPACE and
 * K8S_POD_NAME, said on stderr; `env` as it is when there is no such endpoint or it is a plain CNI one.
 */
async function identityFromRecord(kv: KvStore, conf: NetConf, env: CniEnv): Promise<CniEnv> {
  const rec = await recordedPod(kv, { network: conf.name, containerID: env.containerId, ifname: env.ifname, node: conf.nodename });
  if (!rec) return env;
  const { id, ref } = rec;
  if (env.args.K8S_POD_NAMESPACE === id.namespace && env.args.K8S_POD_NAME === id.pod) return env;
  process.stderr.write(`podway: DEL ${env.containerId}: the pod's name is taken from its WorkloadEndpoint ${id.namespace}/${ref.name} (K8S_POD_NAMESPACE=${id.namespace};K8S_POD_NAME=${id.pod}), not from CNI_ARGS\n`);
  return { ...env, args: { ...env.args, K8S_POD_NAMESPACE: id.namespace, K8S_POD_NAME: id.pod } };
}

async function delAttachment(given: CniEnv, conf: NetConf, stdin: StdinConfig): Promise<void> {
  let env = given;
  // CNI_ARGS partly passed over: who the pod is comes from its endpoint, read before anything is
  // removed by name. The store opened for it is the one the release below uses; a failure to read
  // it (etcd down) is that release's to handle (deferred), not met twice.
  let kvEarly: KvStore | null = null;
  let lookupError: unknown = null;
  if (env.argsFaulty && !embeddedStoreMissing(conf)) {
    try {
      kvEarly = await openStore(conf);
      env = await identityFromRecord(kvEarly, conf, env);
    } catch (e) {
      lookupError = e;
      process.stderr.write(`podway: DEL ${env.containerId}: CNI_ARGS was passed over in part, and the pod's WorkloadEndpoint could not be read to tell who it is: ${((datastoreError(conf, e) as Error)?.message ?? String(e))}; going on with CNI_ARGS as read\n`);
    }
  }
  // The pod's interface first (with a veth, the host end goes with it); a namespace already gone
  // took its interfaces with it.
  let podLinkDeleted = false;
  // Looked into the namespace: a veth's two ends go together, so a host veth of this container's
  // name still there has its pod end elsewhere (this container's other attachment: another
  // network's eth0, whose ADD came first) and is not ours to remove by name.
  let lookedInside = false;
  // A veth pod end left as not provably ours: its peer's index here (the deferred entry's hostIfindex).
  let leftPeer: number | null = null;
  // The device left so: its index and its namespace's identity (the entry's podDevice; a replay
  // removes a tap/tun device only when it is this one).
  let leftDevice: PodDeviceRef | null = null;
  try {
    if (env.netns !== '' && existsSync(env.netns)) {
      try {
        // Only an interface provably this container's goes (the proof ADD asks before remaking one):
        // a DEL naming a wrong or reused CNI_NETNS, or a stale container ID, would otherwise delete
        // another pod's. Left, it is said; this container's address and endpoint are released below.
        const pod = netlink.linkIndex(env.netns, env.ifname);
        lookedInside = true;
        const foreign = pod ? podLinkNotOurs(env, conf, pod) : '';
        if (foreign) {
          if (conf.interfaceType === 'veth' && pod!.peer !== null) leftPeer = pod!.peer;
          // (whatever the config says: the replay goes by the endpoint's interface type)
          {
            try {
              leftDevice = { ifindex: pod!.ifindex, ...netnsIdentity(env.netns) };
            } catch (e) {
              process.stderr.write(`podway: DEL ${env.containerId}: CNI_NETNS ${env.netns}: ${(e as Error).message}: a replay will not remove a tap/tun device left there\n`);
            }
          }
          process.stderr.write(`podway: DEL ${env.containerId}: CNI_IFNAME ${env.ifname} in CNI_NETNS ${env.netns} is ${foreign}: left as it is (another pod's?); only this container's IPAM handle and WorkloadEndpoint are released\n`);
        } else if (pod) {
          podLinkDeleted = netlink.deletePodLink(env.netns, env.ifname);
        }
      } catch (e) {
        // Not a namespace any more (e.g. an unmounted bind-mount point): nothing of ours is in it.
        if (!(e instanceof CniError && /nsenter/.test(e.message) && /reassociate|Invalid argument|No such file/.test(e.message))) throw e;
      }
    }
    if (conf.ipam) runIpamPlugin(conf.ipam.type, 'DEL', env, stdin);
  } catch (e) {
    if (kvEarly) await closeStore(conf, kvEarly);
    throw e;
  }
  const plainVeth = conf.interfaceType === 'veth' && !('K8S_POD_NAME' in env.args && env.args.K8S_POD_NAME);
  // Plain CNI veth names come from the container ID alone, so this one can be nobody else's.
  const removePlainVeth = () => { if (!podLinkDeleted && !lookedInside && plainVeth) netlink.deleteHostLink(hostVethName(podIdentity({}, env.containerId), env.containerId)); };
  // A store that does not exist holds nothing of this container's: DEL (retried after a refused
  // ADD) succeeds without making it.
  if (embeddedStoreMissing(conf)) {
    if (kvEarly) await closeStore(conf, kvEarly);
    return removePlainVeth();
  }
  const handle = conf.ipam ? null : handleId(conf.name, env.containerId);
  const endpoints = endpointCandidates(conf, env);
  let released: Released;
  const kv = kvEarly ?? (await openStore(conf));
  try {
    if (lookupError !== null) throw lookupError;
    // Whether etcd answers, before the lock: DELs finding it down are deferred side by side, not
    // one after another behind a lock each holds while waiting for etcd. The same read says
    // whether the datastore is locked (`calicoctl datastore migrate lock`).
    const locked = await datastoreLock(kv, conf);
    if (locked) throw locked;
    // Under the IPAM lock as a whole: a replay of this container's deferred DEL (podway run) is
    // not interleaved with it. The lock needs no free space (ipam-lock.ts), and nothing before the
    // release writes to a disk: a full one (the spool's, the lock's) does not keep the datastore
    // part from being done while the datastore answers.
    released = await withIpamLock(ipamLockOf(conf), async () => {
      const r = await releaseInStore(kv, handle, endpoints, env.containerId);
      // Done now: an entry an earlier DEL of this attachment deferred has nothing left to do
      // (removing a file needs no space).
      for (const s of readPending(conf.pendingDelDir, pendingFileName(conf.name, env.containerId, env.ifname))) removePendingFile(s.file);
      return r;
    });
    // The disk-needing part after it (best effort: a DEL does not fail on it).
    noteCluster(conf, kv);
  } catch (e) {
    // etcd unreachable: podman does not retry a failed DEL, so what is local goes now and the
    // datastore part is spooled for podway run (pending-del.ts); the runtime is told success.
    // So is a DEL that could not get the IPAM lock in time (podway run takes it to replay).
    // A datastore locked by `calicoctl datastore migrate lock` (etcd or the embedded store): the
    // runtime is told DEL failed, as Calico's plugin tells it (kubelet retries, and a retry once
    // unlocked releases and drops the entry), but the release is spooled all the same, for
    // runtimes that never retry (podman): podway run replays it once the lock is lifted. Nothing
    // is written to the locked store.
    // etcd refusing our TLS certificate, or an endpoint that is not etcd, is the configuration, not
    // an outage: the DEL fails with it.
    const locked = e instanceof DatastoreLockedError;
    // A slow answer on a connection that is up (KvSlowError: etcd busy, or this host short of CPU
    // in a storm of plugin calls) is not "down": the DEL fails (code 11: kubelet retries it, and
    // the retry releases at once and drops the entry) but, as for a locked datastore, its release
    // is spooled all the same: podman never retries a DEL, and the pod's addresses and
    // WorkloadEndpoint stayed in etcd for good (the pod-churn soak, bench/soak/churn.ts).
    const slow = e instanceof KvSlowError && conf.datastore.kind === 'etcd';
    const away = e instanceof KvUnavailableError && !(e instanceof KvConfigError) && !slow;
    // The embedded store does not go away, but its disk can be full, read-only or failing, and its
    // lock (or the IPAM lock) held past the bound: deferred as well, replayed by podway run on
    // that store once a write goes through.
    const io = storeIoError(conf, e);
    // The IPAM lock not had for a local reason (its directory or file cannot be made or opened):
    // the release was not tried; deferred as a lock held past its bound is.
    const lockIo = e instanceof IpamLockIoError;
    const localFailure = conf.datastore.kind === 'embedded' && (io !== null || e instanceof FileLockTimeoutError || e instanceof IpamLockTimeoutError || lockIo);
    if (!(locked || slow || localFailure || (conf.datastore.kind === 'etcd' && (away || e instanceof IpamLockTimeoutError || lockIo)))) throw datastoreError(conf, e);
    const reason = ((io ?? datastoreError(conf, e)) as Error).message;
    removePlainVeth();
    // The datastore answered before the lock failed: its cluster_id for the entry (best effort).
    noteCluster(conf, kv);
    const hostVeths = conf.interfaceType === 'veth' && !lookedInside ? leftHostVeths(env, given.argsFaulty === true && env === given) : null;
    const interfaceName = conf.interfaceType === 'veth' ? hostVethName(podIdentity(env.args, env.containerId), env.containerId) : podDeviceName(conf.interfaceType, podIdentity(env.args, env.containerId), env.containerId);
    let file: string;
    try {
      file = writePending(conf.pendingDelDir, {
        format: PENDING_DEL_FORMAT, network: conf.name, containerID: env.containerId, ifname: env.ifname, node: conf.nodename,
        handle, endpoints, interfaceName, datastore: datastoreKey(conf.datastore), clusterId: lastClusterId(conf.pendingDelDir, datastoreKey(conf.datastore)), ipamLockFile: conf.ipamLockFile,
        deferredAt: new Date().toISOString(), reason,
        // The pod's name lost with CNI_ARGS and not read from its endpoint: the replay finds that
        // endpoint by its record, and removes the host veth left here when it names it.
        ...(given.argsFaulty && lookupError !== null ? { byRecord: true } : {}),
        ...(leftPeer !== null ? { hostIfindex: leftPeer } : {}),
        ...(hostVeths !== null && Object.keys(hostVeths).length > 0 ? { hostVeths } : {}),
        ...(leftDevice !== null ? { podDevice: leftDevice } : {}),
      });
    } catch (w) {
      // (A spool directory on the same full or read-only disk as the store fails the same way.)
      // Nothing will release them by itself (podman never retries a DEL): what is left and how to
      // release it, on stderr and in the error.
      const left = leftInStore(conf, handle, endpoints);
      const msg = `${reason}; and the release could not be deferred: "pending_del_dir" ${conf.pendingDelDir}: ${(w as Error).message}. LEFT in the datastore (${datastoreText(conf)}), released by nothing unless the runtime retries this DEL: ${left.what}. Once it ${locked ? 'is unlocked' : localFailure ? 'takes writes again' : 'answers'}: ${left.fix}`;
      process.stderr.write(`podway: DEL ${env.containerId} (${env.ifname}): ${msg}\n`);
      throw new CniError(io || lockIo ? CNI_CODES.IO_FAILURE : CNI_CODES.TRY_AGAIN_LATER, msg);
    }
    process.stderr.write(`podway: DEL ${env.containerId} (${env.ifname}): ${reason}; the pod's interface is removed, the release of ${handle ? `IPAM handle ${handle} and ` : ''}its WorkloadEndpoint is deferred to ${file}: podway run replays it once the datastore ${locked ? 'is unlocked' : localFailure ? 'takes writes again' : slow ? 'answers in time (a retry of this DEL releases it at once)' : 'answers'}\n`);
    if (locked) throw e;
    if (slow) throw datastoreError(conf, e);
    return;
  } finally {
    await closeStore(conf, kv);
  }
  for (const { spec, interfaceType, interfaceNetns } of released.deleted) {
    if (podLinkDeleted || typeof spec.interfaceName !== 'string') continue;
    // This container's veth went with its pod end above; otherwise (namespace gone first, or
    // CNI_IFNAME there not ours) remove the host end: the veth its own endpoint names.
    if (interfaceType === 'veth') netlink.deleteHostLink(spec.interfaceName);
    // A tap/tun device in another namespace than CNI_NETNS (the one its endpoint names): removed
    // there when it carries its altname, as its address is released.
    else if (interfaceNetns !== null && interfaceNetns !== env.netns && typeof spec.endpoint === 'string' && existsSync(interfaceNetns)) {
      try {
        const dev = netlink.linkIndex(interfaceNetns, spec.endpoint);
        if (dev && dev.altnames.includes(spec.interfaceName)) netlink.deletePodLink(interfaceNetns, spec.endpoint);
      } catch (e) {
        process.stderr.write(`podway: DEL ${env.containerId}: its ${interfaceType} device ${spec.interfaceName} in ${interfaceNetns} (its endpoint's namespace): ${(e as Error).message}\n`);
      }
    }
  }
  removePlainVeth();
}

/**
 * ADD of a container ID whose earlier DEL was deferred (etcd was down): that DEL's release is
 * done first, under the IPAM lock, so the handle this ADD is about to use holds nothing of the
 * old attachment and no later replay can release the new addresses. Every entry of this
 * network's container is replayed whatever datastore string it names (the conflist may have
 * changed since, localhost become 127.0.0.1): only one recorded with another etcd cluster_id is
 * left, as that cluster's. An entry naming another lock file is replayed holding both locks
 * (taken in name order, so two such ADDs cannot deadlock).
 */
async function replayOwnPending(kv: KvStore, conf: NetConf, containerId: string): Promise<void> {
  const key = datastoreKey(conf.datastore);
  if (!existsSync(conf.pendingDelDir)) return;
  // A spool others may write to could hold forged entries: refused (as DEL's write refuses it).
  requirePrivateDir(conf.pendingDelDir, '"pending_del_dir" in the network config');
  // A replay by podway run under way (its entry renamed aside) is waited for through its lock:
  // the old endpoint and addresses are still there until it is done.
  const replaying = replayingOfContainer(conf.pendingDelDir, conf.name, containerId);
  if (pendingOfContainer(conf.pendingDelDir, conf.name, containerId).length === 0 && replaying.length === 0) return;
  if (!kv.clusterIdSeen?.()) await kv.get(nodeKey(conf.nodename));
  const cluster = kv.clusterIdSeen?.() ?? null;
  const ours = () => pendingOfContainer(conf.pendingDelDir, conf.name, containerId).filter((s) => {
    if (entryDatastore(s.entry!, key, cluster) !== 'other') return true;
    process.stderr.write(`podway: ADD ${containerId}: the DEL deferred in ${s.file} is for etcd cluster ${s.entry!.clusterId} (${s.entry!.datastore}), not this datastore's ${cluster}: left for that cluster's podway\n`);
    return false;
  });
  const first = ours();
  if (first.length === 0 && replaying.length === 0) return;
  const locks = [...new Set([conf.ipamLockFile, ...first.map((s) => s.entry!.ipamLockFile), ...replaying.flatMap((r) => (r.ipamLockFile ? [r.ipamLockFile] : []))])].sort();
  const underLocks = async (i: number): Promise<void> => {
    if (i < locks.length) {
      const o = locks[i] === conf.ipamLockFile ? ipamLockOf(conf) : { file: locks[i], timeoutMs: conf.ipamLockTimeoutMs, setting: 'the "ipamLockFile" a deferred DEL of this container names' };
      return withIpamLock(o, () => underLocks(i + 1));
    }
    // Read again under the locks: a replay by podway run may have done it meanwhile.
    for (const s of ours()) {
      if (!locks.includes(s.entry!.ipamLockFile)) continue; // written meanwhile naming yet another lock: the next ADD or replay
      const r = await releaseInStore(kv, s.entry!.handle, await entryEndpoints(kv, s.entry!), containerId);
      removePendingFile(s.file);
      process.stderr.write(`podway: ADD ${containerId}: replayed the DEL deferred at ${s.entry!.deferredAt} (${s.file}): ${r.deleted.length} WorkloadEndpoint(s) deleted${r.kept.length ? `, kept (another container's): ${r.kept.join(', ')}` : ''}\n`);
    }
  };
  await underLocks(0);
}

// ---------------------------------------------------------------------------------------------
// CHECK

/**
 * What is wrong with the pod's interface, its addresses and routes (and the host end of a veth)
 * as the kernel has them: [] when they are as ADD made them. CHECK reports these; a repeated ADD
 * re-creates the interface when there are any.
 */
function wiringProblems(env: CniEnv, conf: NetConf, addrs: readonly string[], mac: string | null, hostName: string | null): string[] {
  const problems: string[] = [];
  const where = `${env.ifname} in ${env.netns}`;
  const link = netlink.podLink(env.netns, env.ifname);
  if (!link) {
    problems.push(`interface ${where} is missing`);
  } else {
    if (mac && link.mac && mac.toLowerCase() !== link.mac.toLowerCase()) problems.push(`interface ${where} has MAC ${link.mac}, ADD gave ${mac}`);
    for (const a of addrs) if (!link.addresses.includes(a)) problems.push(`address ${a} is missing on ${where} (it has ${link.addresses.join(', ') || 'none'})`);
    const routes = netlink.podRoutes(env.netns);
    const has = (want: (r: netlink.RouteJson) => boolean): boolean => routes.some(want);
    if (conf.interfaceType === 'tun') {
      if (!has((r) => r.dst === 'default' && r.dev === env.ifname)) problems.push(`route "default dev ${env.ifname}" is missing in ${env.netns}`);
    } else {
      if (!has((r) => r.dst === netlink.GATEWAY && r.dev === env.ifname && r.scope === 'link')) problems.push(`route "${netlink.GATEWAY} dev ${env.ifname} scope link" is missing in ${env.netns}`);
      if (!has((r) => r.dst === 'default' && r.gateway === netlink.GATEWAY && r.dev === env.ifname)) problems.push(`route "default via ${netlink.GATEWAY} dev ${env.ifname}" is missing in ${env.netns}`);
    }
    if (addrs.some((a) => a.includes(':'))) {
      const routes6 = netlink.podRoutes6(env.netns);
      const want6 = conf.interfaceType === 'tun' ? `default dev ${env.ifname}` : `default via ${netlink.GATEWAY6} dev ${env.ifname}`;
      if (!routes6.some((r) => r.dst === 'default' && r.dev === env.ifname && (conf.interfaceType === 'tun' || r.gateway === netlink.GATEWAY6))) problems.push(`IPv6 route "${want6}" is missing in ${env.netns}`);
    }
  }
  if (conf.interfaceType === 'veth' && hostName && !netlink.hostLinkExists(hostName)) problems.push(`host interface ${hostName} is missing`);
  return problems;
}

async function check(env: CniEnv, conf: NetConf, stdin: StdinConfig): Promise<void> {
  const prev = readPrevResult(conf.prevResult);
  requireNetns(env.netns);
  const podIf = prev.interfaces.find((i) => i.name === env.ifname && i.sandbox);
  const addrs = prev.ips.filter((ip) => ip.interface === undefined || prev.interfaces[ip.interface]?.name === env.ifname).map((ip) => ip.address);
  const hostIf = prev.interfaces.find((i) => !i.sandbox);
  const problems = wiringProblems(env, conf, addrs, podIf?.mac ?? null, hostIf?.name ?? null);
  if (conf.ipam) runIpamPlugin(conf.ipam.type, 'CHECK', env, stdin);
  await withStore(conf, async (kv) => {
    const [c] = endpointCandidates(conf, env);
    const found = await getResource(kv, WEP, c.name, c.namespace);
    if (!found) {
      problems.push(`WorkloadEndpoint ${c.namespace}/${c.name} is missing from datastore ${datastoreText(conf)}`);
    } else {
      const nets = ((found.object.spec as JsonObject).ipNetworks ?? []) as string[];
      for (const a of addrs) if (!nets.includes(`${a.split('/')[0]}/${a.includes(':') ? 128 : 32}`)) problems.push(`WorkloadEndpoint ${c.namespace}/${c.name} does not list ${a} (it has ${nets.join(', ') || 'none'})`);
    }
    if (!conf.ipam && !(await kv.get(HANDLE_PREFIX + handleId(conf.name, env.containerId)))) {
      problems.push(`IPAM handle ${handleId(conf.name, env.containerId)} is missing (the address is not held for this container)`);
    }
  });
  if (problems.length > 0) throw new CniError(CNI_CODES.CHECK_FAILED, `CHECK ${env.containerId}: ${problems.join('; ')}`);
}

// ---------------------------------------------------------------------------------------------
// STATUS and GC (CNI 1.1.0)

/** Asks this node's `podway run` for its status over its control socket (a pod ADDed while it is down is not forwarded). */
async function requirePodway(conf: NetConf): Promise<void> {
  // Loaded here only: the control client is of no use to the other verbs.
  const { controlRequest, defaultControlPath } = await import('../dataplane/control-client');
  const sock = conf.control ?? defaultControlPath(conf.nodename);
  try {
    await controlRequest(sock, { cmd: 'status' }, Math.min(conf.datastoreTimeoutMs, 3000));
  } catch (e) {
    throw new CniError(CNI_CODES.TRY_AGAIN_LATER, `podway run of node ${conf.nodename} does not answer on ${sock} ("control" in the network config): ${(e as Error).message}`);
  }
}

async function status(env: CniEnv, conf: NetConf, stdin: StdinConfig): Promise<void> {
  try {
    await withStore(conf, async (kv) => {
      await requireUnlocked(kv, conf);
      requireNode(conf, await kv.get(nodeKey(conf.nodename)));
      if (!conf.ipam) {
        zodWithoutJit();
        const ipam = ipamOn(kv);
        const required: (4 | 6)[] = [...(conf.assignIpv4 ? [4 as const] : []), ...(conf.assignIpv6 === true ? [6 as const] : [])];
        for (const v of required) {
          if (!(await ipam.listPools(v)).some((p) => !p.disabled && p.allowedUses.includes('Workload'))) throw new CniError(CNI_CODES.TRY_AGAIN_LATER, `datastore ${datastoreText(conf)} has no enabled IPv${v} pool allowing Workload use to assign pod addresses from`);
        }
      }
    });
    await requirePodway(conf);
    if (conf.ipam) forwardToIpam(conf.ipam.type, 'STATUS', env, stdin);
  } catch (e) {
    const err = e instanceof CniError ? e : (datastoreError(conf, e) as Error);
    throw new CniError(CNI_CODES.CANNOT_SERVE_ADD, `cannot serve ADD: ${err.message}`);
  }
}

/**
 * The network an IPAM handle of this network's form ("<name>.<containerID>") was taken for, when
 * that can be told: network names and container IDs may both hold dots, so "a.b.c" is network
 * "a" or "a.b". ADD records its network in the allocation ("network"); for an allocation made
 * before it did, an endpoint of another network whose handle this is claims it.
 */
function handleOwnedElsewhere(conf: NetConf, handle: string, secondary: Readonly<Record<string, string>> | null, otherNetworkHandles: ReadonlySet<string>): boolean {
  if (secondary?.network !== undefined) return secondary.network !== conf.name;
  return otherNetworkHandles.has(handle);
}

async function gc(env: CniEnv, conf: NetConf, stdin: StdinConfig): Promise<void> {
  // Checked before anything is touched: a missing or malformed list removes nothing.
  const valid = parseValidAttachments(conf.raw);
  const validIds = new Set(valid.map((a) => a.containerID));
  const validPairs = new Set(valid.map((a) => `${a.containerID}/${a.ifname}`));
  const failures: string[] = [];
  const prefix = `${conf.name}.`;
  await withStore(conf, async (kv) => {
    const weps = await listResources(kv, WEP);
    const annotationOf = (r: (typeof weps.items)[number]): string | undefined => ((((r.object.metadata ?? {}) as JsonObject).annotations ?? {}) as Record<string, string>)[NETWORK_ANNOTATION];
    // The handles other networks' endpoints hold (see handleOwnedElsewhere).
    const otherNetworkHandles = new Set<string>();
    for (const r of weps.items) {
      const net = annotationOf(r);
      const cid = ((r.object.spec ?? {}) as JsonObject).containerID;
      if (net !== undefined && net !== conf.name && typeof cid === 'string') otherNetworkHandles.add(handleId(net, cid));
    }
    // Addresses: handles of this network held on this node (a block allocation's node attribute)
    // whose container is not a valid attachment.
    if (!conf.ipam) {
      const ipam = ipamOn(kv);
      const stale = new Set<string>();
      for (const e of [...(await kv.list(blockPrefix(4))).entries, ...(await kv.list(blockPrefix(6))).entries]) {
        let block: AllocationBlock;
        try {
          block = (require('../control/ipam/block') as typeof import('../control/ipam/block')).AllocationBlock.decode(e.value, parseBlockKey(e.key) ?? undefined);
        } catch (err) {
          failures.push(`block ${e.key}: ${(err as Error).message}`);
          continue;
        }
        block.allocations.forEach((a, o) => {
          if (a === null) return;
          const attr = block.attributeOf(o);
          const h = attr?.handleId ?? '';
          if (!h.startsWith(prefix) || attr?.secondary?.node !== conf.nodename || validIds.has(h.slice(prefix.length))) return;
          if (handleOwnedElsewhere(conf, h, attr.secondary, otherNetworkHandles)) return;
          stale.add(h);
        });
      }
      // Each under the host-wide IPAM lock, as DEL's releases: taken per handle, so a GC of many
      // does not keep every ADD waiting for all of them.
      for (const h of stale) {
        try {
          await withIpamLock(ipamLockOf(conf), () => ipam.releaseByHandle(h));
        } catch (err) {
          failures.push(`release ${h}: ${(err as Error).message}`);
        }
      }
    }
    // Endpoints this network wrote on this node for attachments that are not valid.
    // A host veth is removed only when no endpoint left in place (a valid one, another network's,
    // another node's) names it: k8s veth names are per pod, not per container or network.
    const keep = new Set<string>();
    const drop: { name: string; namespace: string; rev: number; iface: string | null }[] = [];
    for (const r of weps.items) {
      const meta = r.object.metadata as JsonObject;
      const spec = (r.object.spec ?? {}) as JsonObject;
      const iface = storedInterfaceType(r.object) === 'veth' && typeof spec.interfaceName === 'string' ? spec.interfaceName : null;
      const ours = spec.node === conf.nodename && annotationOf(r) === conf.name;
      if (!ours || validPairs.has(`${spec.containerID}/${spec.endpoint}`)) {
        if (iface && spec.node === conf.nodename) keep.add(iface);
      } else {
        drop.push({ name: String(meta.name), namespace: String(meta.namespace), rev: r.entry.modRevision, iface });
      }
    }
    for (const d of drop) {
      try {
        await deleteResource(kv, { info: WEP, name: d.name, namespace: d.namespace }, d.rev);
        if (d.iface && !keep.has(d.iface)) netlink.deleteHostLink(d.iface);
      } catch (err) {
        failures.push(`WorkloadEndpoint ${d.namespace}/${d.name}: ${(err as Error).message}`);
      }
    }
  });
  if (conf.ipam) {
    try {
      forwardToIpam(conf.ipam.type, 'GC', env, stdin);
    } catch (err) {
      failures.push(`IPAM plugin ${conf.ipam.type}: ${(err as Error).message}`);
    }
  }
  if (failures.length > 0) throw new CniError(CNI_CODES.GC_INCOMPLETE, `GC: ${failures.length} item(s) could not be removed`, failures.join('\n'));
}

// ---------------------------------------------------------------------------------------------
// Dispatch

/** The cniVersion stdin's config names when it is one podway speaks; null otherwise (not JSON, none, another). */
function stdinVersion(stdin: StdinConfig): string | null {
  const v = (stdin.json as { cniVersion?: unknown } | null | undefined)?.cniVersion;
  return typeof v === 'string' && (SUPPORTED_VERSIONS as readonly string[]).includes(v) ? v : null;
}

/** Runs one plugin call: the CNI env and stdin (parsed once, main.ts) in, stdout and exit code out. */
export async function runPlugin(processEnv: NodeJS.ProcessEnv, stdin: StdinConfig): Promise<PluginOutput> {
  // Errors are said in the config's cniVersion whenever stdin names one podway speaks, also those
  // found before the config is read (the CNI_* environment's): a runtime of an older version
  // parses them by it.
  let version = stdinVersion(stdin) ?? '1.1.0';
  let raw: Record<string, unknown> | null = null;
  try {
    const env = readEnv(processEnv, (m) => process.stderr.write(`podway: DEL ${processEnv.CNI_CONTAINERID ?? ''}: ${m}\n`));
    if (env.command === 'VERSION') {
      // VERSION answers whatever stdin holds (nothing, not JSON: 1.1.0).
      const v = (stdin.json as { cniVersion?: unknown } | null | undefined)?.cniVersion;
      const asked = typeof v === 'string' && v !== '' ? v : '1.1.0';
      return { stdout: JSON.stringify({ cniVersion: asked, supportedVersions: [...SUPPORTED_VERSIONS] }) + '\n', exitCode: 0 };
    }
    raw = decodeConfig(stdin);
    configVersion(raw);
    // DEL tears down with what it needs: a config field it does not use, set wrong since ADD, is
    // reported on stderr (the runtime logs it) instead of leaving the pod impossible to delete.
    const conf = parseConfig(raw, processEnv, env.command === 'DEL' ? { tolerant: true, warn: (m) => process.stderr.write(`podway: ${m}\n`) } : {});
    switch (env.command) {
      case 'ADD':
        return { stdout: JSON.stringify(await add(env, conf, stdin)) + '\n', exitCode: 0 };
      case 'DEL':
        await del(env, conf, stdin);
        return { stdout: '', exitCode: 0 };
      case 'CHECK':
        await check(env, conf, stdin);
        return { stdout: '', exitCode: 0 };
      case 'STATUS':
      case 'GC':
        if (!versionAtLeast(conf.cniVersion, '1.1.0')) {
          throw new CniError(CNI_CODES.INCOMPATIBLE_VERSION, `${env.command} needs cniVersion 1.1.0, the config says ${conf.cniVersion}`);
        }
        if (env.command === 'STATUS') await status(env, conf, stdin);
        else await gc(env, conf, stdin);
        return { stdout: '', exitCode: 0 };
    }
  } catch (e) {
    return { stdout: JSON.stringify(errorResult(version, withConfigOrigin(e, raw))) + '\n', exitCode: 1 };
  }
}
