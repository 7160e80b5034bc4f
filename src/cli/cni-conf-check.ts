/**
 * The CNI config `podway run` looks at: the podway networks in the runtime's CNI config dir
 * (`--cni-conf-dir`, default /etc/cni/net.d; what `podway cni install` writes, docs/cni.md) whose
 * datastore is not the one this run uses. The runtime's plugin writes each pod's address and
 * WorkloadEndpoint to the datastore its network config names; a run on another one never sees
 * those pods (their endpoints are never attached here) while its own IPAM may hand their addresses
 * out again. Said once at start (warn) and in `podway status` (looked at again each time it is
 * asked, so a `podway cni install` that puts it right is seen; a file is read again only when it
 * changed: CniConfCheck).
 *
 * A network is this node's unless its plugin names another `nodename` (labs run several nodes on
 * one machine, each with its own network). A plugin that names no datastore takes the runtime's
 * environment, which run cannot see: not judged. A podway plugin whose datastore fields do not
 * parse is said too (the plugin refuses every pod with it), naming the file and field. Files that
 * are not JSON, and other plugins, are not podway's to judge here.
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { networkDatastore } from '../cni/config';
import type { DatastoreSpec } from '../control/kv/spec';
import { podwayCommand } from '../util/invocation';

export const DEFAULT_CNI_CONF_DIR = '/etc/cni/net.d';

/** A CNI config file larger than this is not read (a runtime's own are a few hundred bytes). */
const MAX_CONF_BYTES = 1 << 20;

/** One podway network of the config dir that sends this node's pods to another datastore. */
export interface CniConfMismatch {
  readonly file: string;
  readonly network: string;
  /** The field that names the datastore: "datastore", "datastore_type/etcd_endpoints", or the one that does not parse. */
  readonly field: string;
  /** What it names (as the plugin reads it), or null when it does not parse. */
  readonly datastore: string | null;
  /** The status line and the warning. */
  readonly message: string;
}

function specText(spec: DatastoreSpec): string {
  return spec.kind === 'file' ? `file:${spec.path}` : spec.kind === 'embedded' ? `embedded:${resolve(spec.dir)}` : `etcd:${spec.endpoints.join(',')}`;
}

/** etcd's cluster ID by client URL (normalized: etcdEndpointKey), as last asked; null: it did not answer. */
export type EtcdClusterIds = ReadonlyMap<string, string | null>;

/** A client URL as compared here: no trailing slash, any case. */
export function etcdEndpointKey(e: string): string {
  return e.replace(/\/+$/, '').toLowerCase();
}

/** The cluster IDs known for a spec's endpoints (those that answered). */
function clusterIdsOf(spec: DatastoreSpec & { kind: 'etcd' }, ids: EtcdClusterIds | undefined): Set<string> {
  const out = new Set<string>();
  for (const e of spec.endpoints) {
    const id = ids?.get(etcdEndpointKey(e));
    if (typeof id === 'string') out.add(id);
  }
  return out;
}

/**
 * Whether `b` (a network's) names the datastore `a` (the run's) is: the embedded store's directory
 * as a path; etcd by the cluster IDs its endpoints answered with when `ids` knows one on each side:
 * every cluster b's endpoints serve is one of a's (the same cluster under other URLs, another
 * member of it, a subset of the members), so a list that shares an endpoint with a's but also
 * names another cluster is not the same (the plugin may write to that one); otherwise (no
 * endpoint of one side answered, or they were not asked) when the endpoint lists share one (a
 * network naming a subset of the members, or the same in another order).
 */
export function sameDatastore(a: DatastoreSpec, b: DatastoreSpec, ids?: EtcdClusterIds): boolean {
  if (a.kind === 'etcd' && b.kind === 'etcd') {
    const ia = clusterIdsOf(a, ids);
    const ib = clusterIdsOf(b, ids);
    if (ia.size > 0 && ib.size > 0) return [...ib].every((id) => ia.has(id));
    const mine = new Set(a.endpoints.map(etcdEndpointKey));
    return b.endpoints.some((e) => mine.has(etcdEndpointKey(e)));
  }
  return specText(a) === specText(b);
}

/** How long one endpoint is given to say its cluster ID (connecting included). */
export const CLUSTER_ID_TIMEOUT_MS = 2000;

/**
 * Each endpoint of `specs` (etcd ones) asked alone for its cluster ID: one get through the light
 * client (etcd-lite.ts; every response header carries cluster_id), with that spec's TLS files,
 * bounded by `timeoutMs`; an endpoint that does not answer is null. All at once.
 */
export async function askEtcdClusterIds(specs: readonly DatastoreSpec[], timeoutMs = CLUSTER_ID_TIMEOUT_MS): Promise<Map<string, string | null>> {
  const out = new Map<string, string | null>();
  const asks: Promise<void>[] = [];
  const { EtcdLiteKv } = require('../control/kv/etcd-lite') as typeof import('../control/kv/etcd-lite');
  for (const spec of specs) {
    if (spec.kind !== 'etcd') continue;
    for (const e of spec.endpoints) {
      const key = etcdEndpointKey(e);
      if (out.has(key)) continue;
      out.set(key, null);
      asks.push((async () => {
        let kv: InstanceType<typeof EtcdLiteKv> | null = null;
        try {
          kv = new EtcdLiteKv({ endpoints: [e], tls: spec.tls, timeoutMs, connectTimeoutMs: timeoutMs });
          await kv.get('/calico/resources/v3/projectcalico.org/clusterinformations/default');
          const id = kv.clusterIdSeen();
          out.set(key, id !== null && id !== '0' ? id : null);
        } catch {
          out.set(key, null);
        } finally {
          await kv?.close().catch(() => undefined);
        }
      })());
    }
  }
  await Promise.all(asks);
  return out;
}

/** The podway networks of `dir` (this node's, by `node`) that name another datastore than `spec` (etcd by endpoint overlap). */
export function cniConfMismatches(dir: string, node: string, spec: DatastoreSpec): CniConfMismatch[] {
  return new CniConfCheck(dir, node, spec).mismatches();
}

/** A podway network of one file (this node's) and the datastore it names; null: its fields do not parse (why). */
interface NamedNetwork {
  readonly file: string;
  readonly network: string;
  readonly field: string;
  readonly named: DatastoreSpec | null;
  readonly why?: string;
  /** The options of `podway cni install` (besides --datastore) that write this network again: this node, and the network's name, file prefix, interface type and config dir where not the defaults. */
  readonly reinstall: string;
}

/**
 * cniConfMismatches as `podway status` asks it, on every call: the dir listed and each file's
 * stat looked at, a file read and parsed again only when it is new or changed (its inode, size,
 * modification or change time), so an unchanged dir costs no reads or parses. Same answer. On
 * etcd, askClusterIds() has the endpoints asked for their cluster IDs (podway run: at start):
 * from then on etcd datastores are compared by them where both sides answered (sameDatastore).
 */
export class CniConfCheck {
  private readonly files = new Map<string, { key: string; found: NamedNetwork[] }>();
  private ids: Map<string, string | null> | undefined;

  constructor(private readonly dir: string, private readonly node: string, private readonly spec: DatastoreSpec) {}

  mismatches(): CniConfMismatch[] {
    return this.networks().map((n) => judge(n, this.spec, this.ids)).filter((m): m is CniConfMismatch => m !== null);
  }

  /**
   * With an etcd datastore and a podway network naming etcd: every endpoint of both asked for its
   * cluster ID (askEtcdClusterIds), kept for the calls after. Then the mismatches. Never throws.
   */
  async askClusterIds(timeoutMs = CLUSTER_ID_TIMEOUT_MS): Promise<CniConfMismatch[]> {
    if (this.spec.kind === 'etcd') {
      const etcd = this.networks().map((n) => n.named).filter((d): d is DatastoreSpec => d !== null && d.kind === 'etcd');
      if (etcd.length > 0) this.ids = await askEtcdClusterIds([this.spec, ...etcd], timeoutMs);
    }
    return this.mismatches();
  }

  /** The cluster IDs asked (null before askClusterIds, or when there was nothing to ask). */
  clusterIds(): EtcdClusterIds | null {
    return this.ids ?? null;
  }

  private networks(): NamedNetwork[] {
    let names: string[];
    try {
      names = readdirSync(this.dir).filter((n) => /\.(conflist|conf|json)$/.test(n)).sort();
    } catch {
      this.files.clear();
      return []; // no CNI config dir: no runtime here uses one
    }
    const out: NamedNetwork[] = [];
    const seen = new Set<string>();
    for (const name of names) {
      const file = join(this.dir, name);
      let key: string;
      try {
        const st = statSync(file, { bigint: true });
        key = `${st.ino} ${st.size} ${st.mtimeNs} ${st.ctimeNs}`;
        if (st.size > MAX_CONF_BYTES) key = 'too large';
      } catch {
        continue; // gone since the listing
      }
      seen.add(name);
      let had = this.files.get(name);
      if (had?.key !== key) {
        had = { key, found: key === 'too large' ? [] : fileNetworks(file, this.node) };
        this.files.set(name, had);
      }
      out.push(...had.found);
    }
    for (const name of this.files.keys()) if (!seen.has(name)) this.files.delete(name);
    return out;
  }
}

/** A network's datastore against the run's: the mismatch, or null when it is the run's. */
function judge(n: NamedNetwork, spec: DatastoreSpec, ids: EtcdClusterIds | undefined): CniConfMismatch | null {
  const runs = specText(spec);
  if (n.named === null) return { file: n.file, network: n.network, field: n.field, datastore: null, message: `CNI config ${n.file}: network "${n.network}" ${n.why}: the podway plugin refuses every pod with it; run \`${podwayCommand()} cni install --datastore ${runs}${n.reinstall}\` again` };
  if (sameDatastore(spec, n.named, ids)) return null;
  const names = specText(n.named);
  // told apart by the clusters their members answered for: said (the URLs alone may share one)
  const a = spec.kind === 'etcd' ? [...clusterIdsOf(spec, ids)] : [];
  const b = n.named.kind === 'etcd' ? [...clusterIdsOf(n.named, ids)] : [];
  const clusters = a.length > 0 && b.length > 0 ? ` (etcd cluster ${b.join(', ')}; this run's is ${a.join(', ')})` : '';
  return {
    file: n.file, network: n.network, field: n.field, datastore: names,
    message: `CNI config ${n.file}: network "${n.network}" ${n.field} names datastore ${names}${clusters}, but this podway run uses ${runs}: `
      + 'pods the runtime creates on that network get their addresses and endpoints there, where this run does not look (they are never attached here, and this datastore\'s IPAM may give their addresses to other pods); '
      + `run \`${podwayCommand()} cni install --datastore ${runs}${n.reinstall}\` again (or start podway run with --datastore ${names})`,
  };
}

/** One config file's podway networks (this node's) and what each names; [] for a file that is not JSON. */
function fileNetworks(file: string, node: string): NamedNetwork[] {
  const out: NamedNetwork[] = [];
  let conf: Record<string, unknown>;
  try {
    conf = JSON.parse(readFileSync(file, 'utf8'));
  } catch {
    return out;
  }
  if (typeof conf !== 'object' || conf === null) return out;
  const network = typeof conf.name === 'string' ? conf.name : '?';
  const plugins = Array.isArray(conf.plugins) ? conf.plugins as unknown[] : [conf];
  plugins.forEach((p, k) => {
    if (typeof p !== 'object' || p === null || (p as Record<string, unknown>).type !== 'podway') return;
    const plugin = p as Record<string, unknown>;
    // another node's network (a lab running several nodes on one machine)
    if (typeof plugin.nodename === 'string' && plugin.nodename !== '' && plugin.nodename !== node) return;
    const at = Array.isArray(conf.plugins) ? `plugins[${k}].` : '';
    const reinstall = reinstallOptions(file, network, plugin, node);
    let named: { datastore: DatastoreSpec; datastoreField: string };
    try {
      // Only what the file says: the runtime's environment is not run's.
      named = networkDatastore(plugin, {});
    } catch (e) {
      const why = (e as Error).message.replace(/^network config: /, '');
      const field = /^([a-z_/]+):/.exec(why)?.[1] ?? 'datastore';
      out.push({ file, network, field: `${at}${field}`, named: null, why: `${at}${why}`, reinstall });
      return;
    }
    if (named.datastoreField === 'datastore (from the environment)') return; // names none: the runtime's environment decides
    out.push({ file, network, field: `${at}${named.datastoreField}`, named: named.datastore, reinstall });
  });
  return out;
}

/**
 * The `podway cni install` options, besides --datastore, that write `file`'s network again in its
 * place: --node always (install's own default is $NODENAME or the hostname, not necessarily the
 * node this run is: a conflist for that name would never be attached here), and --name,
 * --priority, --interface-type and --conf-dir where the file differs from install's defaults.
 */
function reinstallOptions(file: string, network: string, plugin: Record<string, unknown>, node: string): string {
  let out = ` --node ${node}`;
  if (network !== 'podway') out += ` --name ${network}`;
  const m = /^(\d+)-(.+)\.conflist$/.exec(basename(file));
  if (m && m[2] === network && Number(m[1]) !== 10) out += ` --priority ${Number(m[1])}`;
  if (plugin.interfaceType === 'tap' || plugin.interfaceType === 'tun') out += ` --interface-type ${plugin.interfaceType}`;
  if (resolve(dirname(file)) !== DEFAULT_CNI_CONF_DIR) out += ` --conf-dir ${dirname(file)}`;
  return out;
}

/**
 * The IPAM lock files (`ipam_lock_file`) of this node's podway networks in `dir`, sorted: what
 * podway run holds while it holds orphan pods' addresses (cli/orphan-holds.ts), so that it takes
 * turns with the plugin's ADDs (the lock is the host's, whatever datastore a network names). None
 * there: the plugin's default.
 */
export function cniIpamLockFiles(dir: string, node: string, fallback: string): string[] {
  let names: string[];
  try {
    names = readdirSync(dir).filter((n) => /\.(conflist|conf|json)$/.test(n)).sort();
  } catch {
    return [fallback];
  }
  const found = new Set<string>();
  for (const name of names) {
    const file = join(dir, name);
    let conf: Record<string, unknown>;
    try {
      if (statSync(file).size > MAX_CONF_BYTES) continue;
      conf = JSON.parse(readFileSync(file, 'utf8'));
    } catch {
      continue;
    }
    if (typeof conf !== 'object' || conf === null) continue;
    const plugins = Array.isArray(conf.plugins) ? conf.plugins as unknown[] : [conf];
    for (const p of plugins) {
      if (typeof p !== 'object' || p === null || (p as Record<string, unknown>).type !== 'podway') continue;
      const plugin = p as Record<string, unknown>;
      if (typeof plugin.nodename === 'string' && plugin.nodename !== '' && plugin.nodename !== node) continue;
      const lock = plugin.ipam_lock_file;
      found.add(typeof lock === 'string' && lock.startsWith('/') ? lock : fallback);
    }
  }
  return found.size === 0 ? [fallback] : [...found].sort();
}
