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
import { join, resolve } from 'node:path';
import { networkDatastore } from '../cni/config';
import type { DatastoreSpec } from '../control/kv/spec';

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

/**
 * Whether two specs name one datastore: the embedded store's directory as a path; etcd when the
 * endpoint lists share one (a network naming a subset of the members, or the same in another order).
 */
export function sameDatastore(a: DatastoreSpec, b: DatastoreSpec): boolean {
  if (a.kind === 'etcd' && b.kind === 'etcd') {
    const norm = (e: string) => e.replace(/\/+$/, '').toLowerCase();
    const mine = new Set(a.endpoints.map(norm));
    return b.endpoints.some((e) => mine.has(norm(e)));
  }
  return specText(a) === specText(b);
}

/** The podway networks of `dir` (this node's, by `node`) that name another datastore than `spec`. */
export function cniConfMismatches(dir: string, node: string, spec: DatastoreSpec): CniConfMismatch[] {
  return new CniConfCheck(dir, node, spec).mismatches();
}

/**
 * cniConfMismatches as `podway status` asks it, on every call: the dir listed and each file's
 * stat looked at, a file read and judged again only when it is new or changed (its inode, size,
 * modification or change time), so an unchanged dir costs no reads or parses. Same answer.
 */
export class CniConfCheck {
  private readonly files = new Map<string, { key: string; found: CniConfMismatch[] }>();

  constructor(private readonly dir: string, private readonly node: string, private readonly spec: DatastoreSpec) {}

  mismatches(): CniConfMismatch[] {
    let names: string[];
    try {
      names = readdirSync(this.dir).filter((n) => /\.(conflist|conf|json)$/.test(n)).sort();
    } catch {
      this.files.clear();
      return []; // no CNI config dir: no runtime here uses one
    }
    const out: CniConfMismatch[] = [];
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
        had = { key, found: key === 'too large' ? [] : fileMismatches(file, this.node, this.spec) };
        this.files.set(name, had);
      }
      out.push(...had.found);
    }
    for (const name of this.files.keys()) if (!seen.has(name)) this.files.delete(name);
    return out;
  }
}

/** One config file's podway networks (this node's) naming another datastore; [] for a file that is not JSON. */
function fileMismatches(file: string, node: string, spec: DatastoreSpec): CniConfMismatch[] {
  const out: CniConfMismatch[] = [];
  const runs = specText(spec);
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
    let named: { datastore: DatastoreSpec; datastoreField: string };
    try {
      // Only what the file says: the runtime's environment is not run's.
      named = networkDatastore(plugin, {});
    } catch (e) {
      const why = (e as Error).message.replace(/^network config: /, '');
      const field = /^([a-z_/]+):/.exec(why)?.[1] ?? 'datastore';
      out.push({ file, network, field: `${at}${field}`, datastore: null, message: `CNI config ${file}: network "${network}" ${at}${why}: the podway plugin refuses every pod with it; run \`podway cni install --datastore ${runs}\` again` });
      return;
    }
    if (named.datastoreField === 'datastore (from the environment)') return; // names none: the runtime's environment decides
    if (sameDatastore(spec, named.datastore)) return;
    const names = specText(named.datastore);
    out.push({
      file, network, field: `${at}${named.datastoreField}`, datastore: names,
      message: `CNI config ${file}: network "${network}" ${at}${named.datastoreField} names datastore ${names}, but this podway run uses ${runs}: `
        + 'pods the runtime creates on that network get their addresses and endpoints there, where this run does not look (they are never attached here, and this datastore\'s IPAM may give their addresses to other pods); '
        + `run \`podway cni install --datastore ${runs}\` again (or start podway run with --datastore ${names})`,
    });
  });
  return out;
}
