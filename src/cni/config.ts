// The network configuration a runtime passes on stdin (one plugin entry of a conflist, with
// cniVersion and name filled in by the runtime), checked field by field: an error names the field.
import { CniError, CNI_CODES } from './errors';
import { INTERFACE_TYPES, InterfaceType, validateNodeName } from '../control/resource-names';
import { DatastoreEnv, DatastoreSpec, parseDatastoreSpec } from '../control/kv/spec';
import { closest } from '../control/calico-fields';
import { hostname } from 'node:os';
import { readFileSync } from 'node:fs';

export const SUPPORTED_VERSIONS = ['0.4.0', '1.0.0', '1.1.0'] as const;
export type CniVersion = (typeof SUPPORTED_VERSIONS)[number];

export interface ValidAttachment {
  readonly containerID: string;
  readonly ifname: string;
}

export interface NetConf {
  readonly cniVersion: CniVersion;
  /** The network name: part of every IPAM handle ("<name>.<containerID>"). */
  readonly name: string;
  readonly datastore: DatastoreSpec;
  /** Where `datastore` came from, for messages: "datastore", "datastore_type/etcd_endpoints" or "datastore (from the environment)". */
  readonly datastoreField: string;
  readonly nodename: string;
  /** From the config; null: from the pools (1450 VXLAN, 1480 IPIP, 1500 none). */
  readonly mtu: number | null;
  readonly interfaceType: InterfaceType;
  /** null: podway's own IPAM (type podway or no ipam section). */
  readonly ipam: { readonly type: string; readonly [key: string]: unknown } | null;
  /** podway's IPAM: Calico's ipam.assign_ipv4 (default true). */
  readonly assignIpv4: boolean;
  /**
   * podway's IPAM: Calico's ipam.assign_ipv6. Unset ('auto'): an IPv6 address when an enabled IPv6
   * pool selects the node; "true": required; "false": never.
   */
  readonly assignIpv6: boolean | 'auto';
  /**
   * podway's IPAM: Calico's ipam.ipv4_pools / ipv6_pools, pool names or CIDRs (as written; the
   * plugin resolves them against the datastore's pools). Empty: every enabled pool selecting the node.
   */
  readonly ipv4Pools: readonly string[];
  readonly ipv6Pools: readonly string[];
  /** Calico's container_settings.allow_ip_forwarding: the pod's ip_forward (and IPv6 all.forwarding) 1, else 0. */
  readonly allowIpForwarding: boolean;
  /** Per-call deadline of the datastore, ms. */
  readonly datastoreTimeoutMs: number;
  /** The control socket of this node's `podway run` (STATUS asks it); null: its default path. */
  readonly control: string | null;
  /**
   * The host-wide lock ADD and DEL hold around podway's IPAM (Calico's ipam_lock_file,
   * /var/run/calico/ipam.lock there): plugin processes of one host claim blocks and addresses one
   * at a time instead of racing each other's compare-and-swap writes.
   */
  readonly ipamLockFile: string;
  /** How long a plugin waits for that lock before it fails (code 11, naming the file), ms. */
  readonly ipamLockTimeoutMs: number;
  /** Where DEL records a release it could not make while etcd was unreachable (pending-del.ts). */
  readonly pendingDelDir: string;
  readonly prevResult: unknown;
  /** The whole config as received (passed on to a delegated IPAM plugin unchanged). */
  readonly raw: RawConf;
}

/** The IPAM lock's default: beside podway run's control sockets (/run/podway), gone at reboot. */
export const DEFAULT_IPAM_LOCK_FILE = '/run/podway/ipam.lock';
/**
 * 90 s: kubelet gives RunPodSandbox, the CNI ADD within it, 2 minutes (--runtime-request-timeout)
 * and the runtime (containerd, CRI-O) ends the plugin with it; Calico's IPAM lock (a flock) waits
 * without a bound of its own, so that is its bound too. 90 s leaves the ADD 30 s for its work once
 * it has the lock; a shorter wait failed ADDs that only queued behind a storm of others (review E).
 */
export const DEFAULT_IPAM_LOCK_TIMEOUT_MS = 90_000;
/**
 * Each etcd call's deadline, counted from when the connection is up (etcd-lite.ts: making it has its
 * own bound, CNI_CONNECT_TIMEOUT_MS, 30 s); 10 s leaves a CPU-starved plugin in a storm time to read
 * an answer etcd gave at once. Calico's etcd client gives each call 30 s, connecting included.
 */
export const DEFAULT_DATASTORE_TIMEOUT_MS = 10_000;
/** concurrency_limit's bound (slots.ts): one slot file each. */
export const MAX_CONCURRENCY_LIMIT = 1024;

/** A valid concurrency_limit: 0 (no limit) or a number of slots. */
export function validConcurrencyLimit(v: unknown): v is number {
  return typeof v === 'number' && Number.isInteger(v) && v >= 0 && v <= MAX_CONCURRENCY_LIMIT;
}

/** DEL's spool of releases deferred while etcd was down: on disk, so a reboot does not lose them. */
export const DEFAULT_PENDING_DEL_DIR = '/var/lib/podway/pending-del';

const NETWORK_NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]*$/;

function bad(field: string, why: string): CniError {
  return new CniError(CNI_CODES.INVALID_CONFIG, `network config: ${field}: ${why}`);
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

function optString(raw: RawConf, field: ConfKey): string | undefined {
  const v = raw[field];
  if (v === undefined || v === null || v === '') return undefined;
  if (typeof v !== 'string') throw bad(field, `expected a string, got ${JSON.stringify(v)}`);
  return v;
}

/** Calico's assign_ipv4/assign_ipv6: the strings "true"/"false" (booleans accepted too); undefined when unset. */
function assignFlag(section: Record<string, unknown>, key: string): boolean | undefined {
  const v = section[key];
  if (v === undefined || v === null || v === '') return undefined;
  if (v === true || v === 'true') return true;
  if (v === false || v === 'false') return false;
  throw bad(`ipam.${key}`, `expected "true" or "false", got ${JSON.stringify(v)}`);
}

/** Calico's ipv4_pools/ipv6_pools: a list of pool names or CIDRs; [] when unset. */
function poolList(section: Record<string, unknown>, key: string): string[] {
  const v = section[key];
  if (v === undefined || v === null) return [];
  if (!Array.isArray(v) || v.some((p) => typeof p !== 'string' || p.trim() === '')) throw bad(`ipam.${key}`, `expected a list of IP pool names or CIDRs, got ${JSON.stringify(v)}`);
  return (v as string[]).map((p) => p.trim());
}

/**
 * Keys of Calico's NetConf that podway does not act on although a Calico plugin would (k8s API
 * lookups, readiness waits, device options): each set one is named, so that a config written for
 * Calico does not silently behave otherwise. Keys Calico itself ignores on Linux without
 * Kubernetes (Windows options, client rate limits, log settings: podway logs to stderr) are not.
 */
export function unhonouredSettings(raw: RawConf): string[] {
  const out: string[] = [];
  const set = (v: unknown): boolean => v !== undefined && v !== null && v !== '' && v !== false && v !== 0 && !(Array.isArray(v) && v.length === 0) && !(isObject(v) && Object.keys(v).length === 0);
  const fc = isObject(raw.feature_control) ? raw.feature_control : {};
  for (const k of ['ip_addrs_no_ipam', 'floating_ips']) if (set(fc[k])) out.push(`feature_control.${k}: not implemented (it reads Kubernetes pod annotations, which podway does not)`);
  const policy = isObject(raw.policy) ? raw.policy : {};
  if (set(policy.type)) out.push(`policy.type ${JSON.stringify(policy.type)}: not implemented (podway reads no pod labels or service accounts from the Kubernetes API; endpoints get profile kns.<namespace> or the network name)`);
  const k8s = isObject(raw.kubernetes) ? raw.kubernetes : {};
  for (const k of ['kubeconfig', 'k8s_api_root', 'node_name']) if (set(k8s[k])) out.push(`kubernetes.${k}: not used (podway does not talk to the Kubernetes API${k === 'node_name' ? '; set "nodename"' : ''})`);
  if (typeof raw.num_queues === 'number' && raw.num_queues > 1) out.push(`num_queues ${raw.num_queues}: not implemented (the veth gets one queue)`);
  if (set(raw.device_type) && raw.device_type !== 'veth') out.push(`device_type ${JSON.stringify(raw.device_type)}: not implemented (a veth is made, as Calico does where netkit is missing; podway's own interfaceType picks veth, tap or tun)`);
  if (set(raw.readiness_gates)) out.push('readiness_gates: not implemented (ADD does not wait for them)');
  if (set(raw.policy_setup_timeout_seconds)) out.push('policy_setup_timeout_seconds: not implemented (ADD does not wait for policy to be programmed)');
  if (set(raw.require_mtu_file)) out.push('require_mtu_file: not implemented (podway takes "mtu" or derives it from the pools, it reads no MTU file)');
  if (set(raw.dataplane_options)) out.push('dataplane_options: not implemented (no gRPC dataplane)');
  if (set(raw.include_default_routes)) out.push('include_default_routes: not implemented (podway does not read host-local routes for calico-ipam)');
  // Without "etcd_endpoints" or "datastore", the first two are refused (parseConfig).
  for (const k of ['etcd_discovery_srv', 'etcd_authority', 'etcd_scheme'] as const) if (set(raw[k])) out.push(`${k}: not read (podway uses "etcd_endpoints" or "datastore")`);
  if (set(raw.hostname) && raw.nodename === undefined && raw.nodename_file === undefined) out.push('hostname: the deprecated key is not read (set "nodename")');
  const args = isObject(raw.args) ? raw.args : {};
  if (set(args['org.apache.mesos'])) out.push('args.org.apache.mesos: not implemented (no Mesos labels on the endpoint)');
  return out;
}

/**
 * Every top-level key of a network config that is read by someone: the CNI spec's (and what
 * runtimes add), podway's own, and Calico's NetConf (cni-plugin/pkg/types), the ones podway does
 * not act on included (unhonouredSettings names those that are set). The one list of them: the
 * parser reads the config as a RawConf, whose only keys are these, so a key read but not listed
 * here (and then reported as unknown on every ADD) does not compile.
 */
const KNOWN_KEYS = [
  // CNI: the network's and the runtime's (libcni writes name and cniVersion into each plugin)
  'cniVersion', 'cniVersions', 'name', 'type', 'args', 'ipMasq', 'ipam', 'dns', 'capabilities', 'runtimeConfig', 'prevResult',
  'cni.dev/valid-attachments', 'cni.dev/attachments', 'disableCheck', 'disableGC',
  // podway's own
  'datastore', 'interfaceType', 'datastoreTimeoutMs', 'control', 'ipam_lock_timeout_ms', 'pending_del_dir', 'conflist', 'concurrency_limit',
  // Calico's NetConf
  'mode', 'vxlan_mac_prefix', 'vxlan_vni', 'mtu', 'num_queues', 'nodename', 'nodename_file', 'nodename_file_optional', 'ipam_lock_file',
  'datastore_type', 'etcd_endpoints', 'etcd_discovery_srv', 'etcd_authority', 'etcd_scheme', 'etcd_key_file', 'etcd_cert_file', 'etcd_ca_cert_file',
  'log_level', 'log_file_path', 'log_file_max_size', 'log_file_max_age', 'log_file_max_count', 'debug', 'policy', 'kubernetes', 'feature_control',
  'container_settings', 'include_default_routes', 'dataplane_options', 'device_type', 'readiness_gates', 'policy_setup_timeout_seconds',
  'endpoint_status_dir', 'require_mtu_file', 'hostname', 'windows_pod_deletion_timestamp_timeout', 'windows_use_single_network',
  'windows_disable_default_deny_all_policy', 'windows_loopback_DSR',
] as const;
/** A top-level key of a network config that someone reads (KNOWN_KEYS). */
export type ConfKey = typeof KNOWN_KEYS[number];
/** A network config as received, seen through the keys that are read (KNOWN_KEYS). */
export type RawConf = { readonly [K in ConfKey]?: unknown };

/**
 * Top-level keys no one reads, each with the known key it most likely meant: a typo ("mtuu") used
 * to be dropped without a word. A warning, not an error: Calico's plugin ignores unknown keys too
 * (Go's encoding/json), and other tools add keys of their own to a network's config.
 */
export function unknownSettings(raw: Record<string, unknown>): string[] {
  const out: string[] = [];
  for (const key of Object.keys(raw)) {
    if ((KNOWN_KEYS as readonly string[]).includes(key)) continue;
    const meant = closest(key, KNOWN_KEYS);
    out.push(`unknown key ${JSON.stringify(key)} ignored${meant !== undefined ? ` (did you mean ${meant}?)` : ''}`);
  }
  return out;
}

/**
 * The network config as it came on stdin, parsed once (main.ts) and passed along: the concurrency
 * limiter (slots.ts), the error answers' cniVersion, the config parser and a delegated IPAM
 * plugin's version fallback read `json`; the plugins the config is handed on to get `text` as it came.
 */
export interface StdinConfig {
  readonly text: string;
  /** The JSON value, or undefined when `text` is not JSON (`error` says why). */
  readonly json: unknown;
  readonly error: string | null;
}

export function parseStdin(text: string): StdinConfig {
  try {
    return { text, json: JSON.parse(text) as unknown, error: null };
  } catch (e) {
    return { text, json: undefined, error: (e as Error).message };
  }
}

/** The config object on stdin (code 6 when it is not JSON, or not an object). */
export function decodeConfig(stdin: StdinConfig): Record<string, unknown> {
  if (stdin.error !== null) throw new CniError(CNI_CODES.DECODE_FAILURE, `network config on stdin is not JSON: ${stdin.error}`);
  if (!isObject(stdin.json)) throw new CniError(CNI_CODES.DECODE_FAILURE, 'network config on stdin is not a JSON object');
  return stdin.json;
}

/** The config's cniVersion, checked against the versions this plugin speaks (code 1 otherwise). */
export function configVersion(raw: RawConf): CniVersion {
  const v = raw.cniVersion;
  if (typeof v !== 'string' || v === '') throw bad('cniVersion', `required (one of ${SUPPORTED_VERSIONS.join(', ')})`);
  if (!(SUPPORTED_VERSIONS as readonly string[]).includes(v)) {
    throw new CniError(CNI_CODES.INCOMPATIBLE_VERSION, `incompatible CNI version ${JSON.stringify(v)}: podway supports ${SUPPORTED_VERSIONS.join(', ')}`);
  }
  return v as CniVersion;
}

/**
 * The datastore: `datastore` (podway spec), else Calico's datastore_type/etcd_* keys, else $PODWAY_DATASTORE / Calico env / the embedded default.
 * Exported for `podway run`, which compares the installed conflists' with its own (cli/cni-conf-check.ts).
 */
export function networkDatastore(raw: RawConf, env: NodeJS.ProcessEnv): { datastore: DatastoreSpec; datastoreField: string } {
  return datastoreOf(raw, env);
}

function datastoreOf(raw: RawConf, env: NodeJS.ProcessEnv): { datastore: DatastoreSpec; datastoreField: string } {
  const spec = optString(raw, 'datastore');
  const calicoType = optString(raw, 'datastore_type');
  const endpoints = optString(raw, 'etcd_endpoints');
  // etcd TLS files may be given in the config (Calico's keys) as well as in the environment.
  const tlsEnv: DatastoreEnv = {
    ...env,
    ETCD_CA_CERT_FILE: optString(raw, 'etcd_ca_cert_file') ?? env.ETCD_CA_CERT_FILE,
    ETCD_CERT_FILE: optString(raw, 'etcd_cert_file') ?? env.ETCD_CERT_FILE,
    ETCD_KEY_FILE: optString(raw, 'etcd_key_file') ?? env.ETCD_KEY_FILE,
  };
  let parsed: DatastoreSpec;
  const field = spec !== undefined ? 'datastore' : calicoType !== undefined || endpoints !== undefined ? 'datastore_type/etcd_endpoints' : 'datastore (from the environment)';
  try {
    if (spec !== undefined) parsed = parseDatastoreSpec(spec, tlsEnv);
    else if (calicoType !== undefined || endpoints !== undefined) {
      parsed = parseDatastoreSpec(undefined, { ...tlsEnv, DATASTORE_TYPE: calicoType ?? 'etcdv3', ETCD_ENDPOINTS: endpoints });
    } else {
      // As resolveDatastoreSpec (open-datastore.ts) does, without loading the datastore readers a plugin never uses.
      parsed = parseDatastoreSpec(env.PODWAY_DATASTORE, tlsEnv);
    }
  } catch (e) {
    throw bad(field, (e as Error).message);
  }
  if (parsed.kind === 'file') throw bad('datastore', 'file: is the read-only YAML datastore; the CNI plugin writes addresses and endpoints, so give etcd:URL or embedded:DIR');
  // Calico finds its etcd by these keys when "etcd_endpoints" is not given; podway reads neither,
  // so the pod would silently land in another datastore (the default one) than the one meant.
  if (spec === undefined && endpoints === undefined) {
    for (const k of ['etcd_discovery_srv', 'etcd_authority'] as const) {
      const v = optString(raw, k);
      if (v === undefined) continue;
      const where = parsed.kind === 'etcd' ? `etcd ${parsed.endpoints.join(',')}` : `embedded ${parsed.dir}`;
      throw bad(k, `${JSON.stringify(v)} without "etcd_endpoints": podway does not read it (${k === 'etcd_discovery_srv' ? 'no DNS SRV lookup' : 'Calico\'s legacy host:port key'}), so the pod would land in ${where} (${field}) instead; give the etcd as "etcd_endpoints" (or podway's "datastore")`);
    }
  }
  return { datastore: parsed, datastoreField: field };
}

/**
 * Calico's nodename_file: the node name read from that file when "nodename" is not set. A file
 * that does not exist is an error unless nodename_file_optional is true, as in Calico (which also
 * looks at /var/lib/calico/nodename by default; podway only at a file the config names).
 */
function nodenameFromFile(raw: RawConf): string | undefined {
  const file = optString(raw, 'nodename_file');
  if (file === undefined) return undefined;
  if (!file.startsWith('/')) throw bad('nodename_file', `expected an absolute file path, got ${JSON.stringify(file)}`);
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT' && raw.nodename_file_optional === true) return undefined;
    throw bad('nodename_file', `${file}: ${(e as Error).message}${raw.nodename_file_optional === true ? '' : ' (set "nodename_file_optional": true to fall back to $NODENAME or the hostname)'}`);
  }
  const name = text.trim();
  if (name === '') throw bad('nodename_file', `${file} is empty`);
  return name;
}

export interface ParseOptions {
  /**
   * DEL: a field DEL does not use (mtu, interfaceType, ipam.assign_*, datastoreTimeoutMs, control)
   * that is wrong is reported to `warn` and taken at its default instead of failing the call, so a
   * pod can still be torn down after a bad edit of the config. What DEL needs (cniVersion, name,
   * type, nodename, the datastore, the ipam plugin) is still refused.
   */
  readonly tolerant?: boolean;
  readonly warn?: (message: string) => void;
}

export function parseConfig(raw: RawConf, env: NodeJS.ProcessEnv, opts: ParseOptions = {}): NetConf {
  // A field only ADD/CHECK/STATUS use: its error fails the call, or under `tolerant` is reported and defaulted.
  const unused = <T>(fallback: T, parse: () => T): T => {
    if (!opts.tolerant) return parse();
    try {
      return parse();
    } catch (e) {
      if (!(e instanceof CniError) || e.code !== CNI_CODES.INVALID_CONFIG) throw e;
      opts.warn?.(`${e.message} (ignored: not needed to delete)`);
      return fallback;
    }
  };
  const cniVersion = configVersion(raw);
  const name = raw.name;
  if (typeof name !== 'string' || !NETWORK_NAME.test(name)) throw bad('name', `expected a network name (alphanumerics, '_', '.', '-'), got ${JSON.stringify(name)}`);
  if (raw.type !== 'podway') throw bad('type', `expected "podway", got ${JSON.stringify(raw.type)}`);
  // Set but empty is a mistake (a template left blank), not "use the hostname": refused, naming the field.
  // Under `tolerant` (DEL) it is read as the plugin before this check did ($NODENAME or the hostname), with a
  // warning: a pod added with such a config must still be deletable, or its address would never be freed.
  if (raw.nodename === '') {
    const why = 'is empty: give this node\'s name (as `podway run --node` registers it), or leave the key out to use $NODENAME or the hostname';
    if (!opts.tolerant) throw bad('nodename', why);
    opts.warn?.(`network config: nodename: ${why} (read as $NODENAME or the hostname to delete, as older podway did)`);
  }
  const nodeText = optString(raw, 'nodename') ?? nodenameFromFile(raw) ?? (env.NODENAME || hostname());
  let nodename: string;
  try {
    nodename = validateNodeName(nodeText, 'node name');
  } catch (e) {
    throw bad('nodename', (e as Error).message);
  }
  const mtu = unused<number | null>(null, () => {
    if (raw.mtu === undefined || raw.mtu === null || raw.mtu === 0) return null;
    if (typeof raw.mtu !== 'number' || !Number.isInteger(raw.mtu) || raw.mtu < 576 || raw.mtu > 65535) throw bad('mtu', `expected an integer 576..65535, got ${JSON.stringify(raw.mtu)}`);
    return raw.mtu;
  });
  const interfaceType = unused<InterfaceType>('veth', () => {
    const typeText = optString(raw, 'interfaceType') ?? 'veth';
    if (!(INTERFACE_TYPES as readonly string[]).includes(typeText)) throw bad('interfaceType', `expected one of ${INTERFACE_TYPES.join(', ')}, got ${JSON.stringify(typeText)}`);
    return typeText as InterfaceType;
  });
  let ipam: NetConf['ipam'] = null;
  if (raw.ipam !== undefined && raw.ipam !== null) {
    if (!isObject(raw.ipam)) throw bad('ipam', `expected an object like {"type": "host-local", ...}, got ${JSON.stringify(raw.ipam)}`);
    const t = raw.ipam.type;
    // The CNI spec requires ipam.type: a section without it is refused, not read as podway's IPAM.
    // Under `tolerant` (DEL) a missing type is read as podway's IPAM, as the plugin before this check did, with a
    // warning: refusing it would leave the address of a pod added by an older podway allocated forever.
    if (t === undefined || t === null) {
      const why = 'required in an "ipam" section (the CNI spec\'s IPAM plugin name): "podway" (or Calico\'s "calico-ipam") for podway\'s own IPAM, or a plugin such as "host-local"; leave "ipam" out for podway\'s own';
      if (!opts.tolerant) throw bad('ipam.type', why);
      opts.warn?.(`network config: ipam.type: ${why} (read as podway's IPAM to delete, as older podway did)`);
    } else if (typeof t !== 'string' || !/^[A-Za-z0-9][A-Za-z0-9_.-]*$/.test(t)) throw bad('ipam.type', `expected a plugin name, got ${JSON.stringify(t)}`);
    if (typeof t === 'string' && t !== 'podway' && t !== 'calico-ipam') ipam = { ...raw.ipam, type: t };
  }
  const ipamSection = isObject(raw.ipam) && ipam === null ? raw.ipam : {};
  const { assignIpv4, assignIpv6 } = unused<{ assignIpv4: boolean; assignIpv6: boolean | 'auto' }>({ assignIpv4: true, assignIpv6: 'auto' }, () => {
    const v4 = assignFlag(ipamSection, 'assign_ipv4') ?? true;
    const v6 = assignFlag(ipamSection, 'assign_ipv6') ?? 'auto';
    if (!v4 && v6 === false) throw bad('ipam.assign_ipv4', 'assign_ipv4 and assign_ipv6 are both "false": the pod would get no address');
    return { assignIpv4: v4, assignIpv6: v6 };
  });
  const { ipv4Pools, ipv6Pools } = unused<{ ipv4Pools: string[]; ipv6Pools: string[] }>({ ipv4Pools: [], ipv6Pools: [] }, () => ({
    ipv4Pools: poolList(ipamSection, 'ipv4_pools'),
    ipv6Pools: poolList(ipamSection, 'ipv6_pools'),
  }));
  const allowIpForwarding = unused(false, () => {
    const cs = raw.container_settings;
    if (cs === undefined || cs === null) return false;
    if (!isObject(cs)) throw bad('container_settings', `expected an object like {"allow_ip_forwarding": true}, got ${JSON.stringify(cs)}`);
    const v = cs.allow_ip_forwarding;
    if (v === undefined || v === null) return false;
    if (typeof v !== 'boolean') throw bad('container_settings.allow_ip_forwarding', `expected true or false, got ${JSON.stringify(v)}`);
    return v;
  });
  const datastoreTimeoutMs = unused(DEFAULT_DATASTORE_TIMEOUT_MS, () => {
    const t = raw.datastoreTimeoutMs;
    if (t === undefined) return DEFAULT_DATASTORE_TIMEOUT_MS;
    if (typeof t !== 'number' || !Number.isInteger(t) || t < 100 || t > 120_000) throw bad('datastoreTimeoutMs', `expected an integer 100..120000 (ms), got ${JSON.stringify(t)}`);
    return t;
  });
  const control = unused<string | null>(null, () => {
    const c = optString(raw, 'control') ?? null;
    if (c !== null && !c.startsWith('/')) throw bad('control', `expected the absolute path of podway run's control socket, got ${JSON.stringify(c)}`);
    return c;
  });
  // DEL uses these too (it releases under the lock, or spools): never defaulted on error.
  const absolutePath = (field: ConfKey, fallback: string): string => {
    const v = optString(raw, field) ?? fallback;
    if (!v.startsWith('/') || v.endsWith('/')) throw bad(field, `expected an absolute file path, got ${JSON.stringify(v)}`);
    return v;
  };
  const ipamLockFile = absolutePath('ipam_lock_file', DEFAULT_IPAM_LOCK_FILE);
  const t = raw.ipam_lock_timeout_ms;
  if (t !== undefined && (typeof t !== 'number' || !Number.isInteger(t) || t < 100 || t > 600_000)) throw bad('ipam_lock_timeout_ms', `expected an integer 100..600000 (ms), got ${JSON.stringify(t)}`);
  const ipamLockTimeoutMs = (t as number | undefined) ?? DEFAULT_IPAM_LOCK_TIMEOUT_MS;
  const pendingDelDir = absolutePath('pending_del_dir', DEFAULT_PENDING_DEL_DIR);
  // Read again (before this parser loads) by main.ts's limiter (slots.ts), which falls back to its default.
  const cl = raw.concurrency_limit;
  if (cl !== undefined && !validConcurrencyLimit(cl)) throw bad('concurrency_limit', `expected an integer 0..${MAX_CONCURRENCY_LIMIT} (plugin processes at once on this host; 0: no limit), got ${JSON.stringify(cl)}`);
  return {
    cniVersion, name, ...datastoreOf(raw, env), nodename, mtu, interfaceType, ipam, assignIpv4, assignIpv6, ipv4Pools, ipv6Pools, allowIpForwarding,
    datastoreTimeoutMs, control, ipamLockFile, ipamLockTimeoutMs, pendingDelDir, prevResult: raw.prevResult, raw,
  };
}

/**
 * Which network config an error is about, for messages: the network's name when it is one, and
 * the file `podway cni install` wrote it to (its "conflist" key; the plugin only gets stdin).
 */
export function configOrigin(raw: RawConf | null): string {
  if (!raw) return 'network config';
  const name = typeof raw.name === 'string' && NETWORK_NAME.test(raw.name) ? `network "${raw.name}" config` : 'network config';
  const file = typeof raw.conflist === 'string' && raw.conflist.startsWith('/') ? ` (${raw.conflist})` : '';
  return `${name}${file}`;
}

/** A code-7 error with "network config:" in front, told which network and file it is about. */
export function withConfigOrigin(e: unknown, raw: RawConf | null): unknown {
  const prefix = 'network config: ';
  if (!(e instanceof CniError) || e.code !== CNI_CODES.INVALID_CONFIG || !e.message.startsWith(prefix)) return e;
  const where = configOrigin(raw);
  if (where === 'network config') return e;
  return new CniError(e.code, `${where}: ${e.message.slice(prefix.length)}`, e.details);
}

const VALID_ATTACHMENTS = 'cni.dev/valid-attachments';
/** The key's name in the CNI 1.1.0 spec text before it was corrected (libcni sends both, containernetworking/cni#1101). */
const VALID_ATTACHMENTS_OLD = 'cni.dev/attachments';

/**
 * GC's list of the attachments still valid on this network. The key is required: GC removes
 * everything of this network on this node that is not listed, so a config without it (a GC run by
 * hand, a runtime that lost the list) is refused (code 7) rather than read as "none is valid".
 * null is the empty list: libcni sends a runtime's empty (nil) Go slice as null.
 * Every entry needs a non-empty containerID and ifname: one that names nothing would leave its
 * attachment unprotected.
 */
export function parseValidAttachments(raw: RawConf): ValidAttachment[] {
  const key = VALID_ATTACHMENTS in raw ? VALID_ATTACHMENTS : VALID_ATTACHMENTS_OLD in raw ? VALID_ATTACHMENTS_OLD : null;
  if (key === null) {
    throw bad(VALID_ATTACHMENTS, 'missing: GC needs the runtime\'s list of the attachments still valid on this network ([] when none is); without it every pod of this network on this node would be taken as stale, so nothing is removed');
  }
  const va = raw[key];
  if (va === null) return [];
  if (!Array.isArray(va)) throw bad(key, `expected a list of {"containerID": ..., "ifname": ...}, got ${JSON.stringify(va)}; nothing is removed`);
  return va.map((a, i) => {
    if (!isObject(a) || typeof a.containerID !== 'string' || a.containerID === '' || typeof a.ifname !== 'string' || a.ifname === '') {
      throw bad(`${key}[${i}]`, `expected {"containerID": ..., "ifname": ...} with both non-empty strings, got ${JSON.stringify(a)}; nothing is removed`);
    }
    return { containerID: a.containerID, ifname: a.ifname };
  });
}

/** a >= b for dotted versions. */
export function versionAtLeast(a: string, b: string): boolean {
  const pa = a.split('.').map(Number);
  const pb = b.split('.').map(Number);
  for (let i = 0; i < 3; i++) if ((pa[i] ?? 0) !== (pb[i] ?? 0)) return (pa[i] ?? 0) > (pb[i] ?? 0);
  return true;
}
