/**
 * The CLI's datastore when nothing names one (no --datastore, -c, $PODWAY_DATASTORE,
 * DATASTORE_TYPE or ETCD_ENDPOINTS): calicoctl's default config file when it exists, else the
 * embedded store. Calico's variables are set per shell,
 * so a new shell on a node whose `podway run` uses etcd used to read and write another store than
 * the node's, silently when a Quick start had made the embedded one (README.md, "Two nodes on etcd").
 * Such a command now asks each `podway run` answering under /run/podway which datastore it uses:
 * one on another store refuses a write (apply, create, replace, delete, ipam's writes, cni
 * install) and is warned of by a read (get, ipam show/check), naming the run's store and how to
 * give it. A datastore named in any way is taken as named, never checked.
 */
import { existsSync, readdirSync } from 'node:fs';
import * as path from 'node:path';
import type { DatastoreEnv, DatastoreSpec } from '../control/kv/spec';
import { resolveDatastoreSpec } from '../control/open-datastore';
import { controlRequest } from '../dataplane/control-client';
import { UsageError } from './usage-error';
import { defaultConfigFile, NotEtcdConfig, readCalicoctlConfig } from './calicoctl-config';
import type { EtcdTlsFlags } from './etcd-tls-options';

const RUN_DIR = '/run/podway';
/** How long one `podway run` has to answer its status (a starting one answers at once). */
const ANSWER_MS = 2000;

/** Specs that are the fallback, nothing having named a datastore (resolveCommandSpec). */
const fallbacks = new WeakSet<object>();

function named(text: string | undefined): boolean {
  return text !== undefined && text.trim() !== '';
}

/** Specs read from calicoctl's default config file (no -c given): the file, for the note and the check. */
const fromDefaultFile = new WeakMap<object, string>();
/** Specs resolved past a default calicoctl.cfg for another datastore: why it was not used. */
const defaultPassedOver = new WeakMap<object, string>();

/** A command's datastore options: --datastore, calicoctl's -c/--config, the etcd TLS flags. */
export interface CommandDatastoreOpts extends EtcdTlsFlags {
  readonly datastore?: string;
  readonly config?: string;
  /** false: calicoctl's default file is not read (cni install: the plugin reads no calicoctl.cfg). */
  readonly calicoctlDefault?: boolean;
}

/**
 * resolveDatastoreSpec, remembering whether the spec is the fallback (see checkAgainstRuns). Every
 * datastore command (get, apply, create, replace, delete, patch, label, ipam, cni install, version)
 * reads its spec here: one that does not parse (--datastore, -c FILE, $PODWAY_DATASTORE,
 * DATASTORE_TYPE/ETCD_ENDPOINTS, the default calicoctl.cfg) is a usage error (exit 2), as for
 * `podway run`. The order (docs/cli.md, "Which datastore"): --datastore or -c FILE (not both; the
 * file must exist), then $PODWAY_DATASTORE, then DATASTORE_TYPE/ETCD_ENDPOINTS, then
 * /etc/calico/calicoctl.cfg when it exists (said on stderr by checkAgainstRuns), then the
 * embedded store. calicoctl reads its default file before the variables; podway's variables are
 * the ones `podway run` reads, so a variable set here wins over a file nobody named.
 */
export function resolveCommandSpec(flag: string | undefined, env: DatastoreEnv = process.env, o: CommandDatastoreOpts = {}): DatastoreSpec {
  let spec: DatastoreSpec;
  const config = o.config;
  if (config !== undefined && config.trim() === '') throw new UsageError('-c/--config: give the path of a calicoctl config file');
  if (config !== undefined && named(flag)) throw new UsageError('give --datastore or -c/--config, not both');
  const implicit = !named(flag) && !named(env.PODWAY_DATASTORE) && !named(env.DATASTORE_TYPE) && !named(env.ETCD_ENDPOINTS);
  const file = config ?? (implicit && o.calicoctlDefault !== false && existsSync(defaultConfigFile()) ? defaultConfigFile() : undefined);
  let passedOver: string | undefined;
  try {
    spec = file !== undefined ? readCalicoctlConfig(file, o) : resolveDatastoreSpec(flag, env);
  } catch (e) {
    // The default file of a Calico host on the Kubernetes datastore (the usual calicoctl.cfg there)
    // was not named by anyone: the embedded default as without it, said, not an error for every command.
    if (!(e instanceof NotEtcdConfig) || config !== undefined) throw new UsageError((e as Error).message);
    passedOver = (e as Error).message;
    spec = resolveDatastoreSpec(flag, env);
  }
  if (passedOver !== undefined) defaultPassedOver.set(spec, passedOver);
  if (file !== undefined && config === undefined && passedOver === undefined) fromDefaultFile.set(spec, file);
  else if ((file === undefined || passedOver !== undefined) && implicit) fallbacks.add(spec);
  return spec;
}

/** A spec as `podway run` reports it in its status (datastoreSource). */
export function specText(spec: DatastoreSpec): string {
  return spec.kind === 'file' ? `file:${spec.path}` : spec.kind === 'embedded' ? `embedded:${spec.dir}` : `etcd:${spec.endpoints.join(',')}`;
}

function sameStore(a: string, b: string): boolean {
  if (a.startsWith('embedded:') && b.startsWith('embedded:')) return path.resolve(a.slice(9)) === path.resolve(b.slice(9));
  return a === b;
}

interface RunHere {
  readonly node: string;
  readonly datastore: string | null;
  /** The clusterGUID of the store it registered with (its status's clusterGuid); null before that, or from an older podway. */
  readonly clusterGuid: string | null;
}

/** Each `podway run` answering here: its node, the datastore it reports and that store's clusterGUID. */
async function runsHere(): Promise<RunHere[]> {
  let socks: string[];
  try {
    socks = readdirSync(RUN_DIR).filter((f) => f.endsWith('.sock')).sort();
  } catch {
    return []; // none here, or not ours to list (a user's command: its own errors follow)
  }
  const answers = await Promise.all(socks.map(async (f) => {
    try {
      const s = await controlRequest(path.join(RUN_DIR, f), { cmd: 'status', starting: true }, ANSWER_MS) as { node?: unknown; datastoreSource?: unknown; clusterGuid?: unknown };
      return {
        node: typeof s.node === 'string' ? s.node : f.slice(0, -5),
        datastore: typeof s.datastoreSource === 'string' ? s.datastoreSource : null,
        clusterGuid: typeof s.clusterGuid === 'string' && s.clusterGuid !== '' ? s.clusterGuid : null,
      };
    } catch {
      return null; // a socket left behind, or a podway that does not answer: nothing to compare
    }
  }));
  return answers.filter((a): a is RunHere => a !== null);
}

/**
 * The clusterGUID (ClusterInformation default) of the store `spec` names, read without making
 * anything: null for an embedded store that does not exist, one without the resource, or one that
 * does not answer within a few seconds (then the datastore text decides, as before).
 */
async function storeGuid(spec: DatastoreSpec): Promise<string | null> {
  if (spec.kind === 'file' || (spec.kind === 'embedded' && !existsSync(spec.dir))) return null;
  try {
    const { openKvStore } = require('../control/kv/open') as typeof import('../control/kv/open');
    const { CLUSTER_INFORMATION_KEY, clusterGuidOf } = require('../control/kv/cluster-guid') as typeof import('../control/kv/cluster-guid');
    const kv = openKvStore(spec, { use: 'command', timeoutMs: ANSWER_MS });
    try {
      const e = await kv.get(CLUSTER_INFORMATION_KEY);
      return e ? clusterGuidOf(e.value) : null;
    } finally {
      await kv.close();
    }
  } catch {
    return null;
  }
}

/**
 * When `spec` is the fallback and a `podway run` here uses another datastore: throws for a
 * write (nothing done), writes a warning to `warn` for a read. Returns at once otherwise.
 */
export async function checkAgainstRuns(spec: DatastoreSpec, writing: boolean, warn: (text: string) => void = (t) => process.stderr.write(t)): Promise<void> {
  const defaultFile = fromDefaultFile.get(spec);
  // read from a file nobody named: said, so nobody writes to a store they did not mean
  if (defaultFile !== undefined) warn(`podway: datastore ${specText(spec)} from ${defaultFile} (calicoctl's default config file; no --datastore, -c, $PODWAY_DATASTORE, DATASTORE_TYPE or ETCD_ENDPOINTS given)\n`);
  const passedOver = defaultPassedOver.get(spec);
  if (passedOver !== undefined) warn(`podway: calicoctl's default config file not used (${passedOver}); datastore ${specText(spec)}\n`);
  if (!fallbacks.has(spec) && defaultFile === undefined) return;
  const mine = specText(spec);
  // A run whose datastore text is another's may still be on this store, reached another way
  // (calicoctl.cfg's http://10.0.0.5:2379 for the run's http://127.0.0.1:2379; an embedded
  // directory through a symlink): one store has one clusterGUID (ClusterInformation default,
  // which each run reports), so where both sides have one it decides, as for ipam check; the
  // text where either has none (a run not registered yet, an older podway, a store not made yet).
  const differing = (await runsHere()).filter((r) => r.datastore !== null && !sameStore(r.datastore, mine));
  const guid = differing.some((r) => r.clusterGuid !== null) ? await storeGuid(spec) : null;
  const others = differing.filter((r) => guid === null || r.clusterGuid !== guid);
  if (others.length === 0) return;
  // the GUIDs said where they told the stores apart
  const guidText = (g: string | null) => (guid !== null && g !== null ? ` (clusterGUID ${g.slice(0, 8)})` : '');
  const runs = others.map((r) => `podway run (node ${r.node}) uses ${r.datastore}${guidText(r.clusterGuid)}`).join('; ');
  const howFor = (ds: string) => ds.startsWith('etcd:')
    ? `give --datastore ${ds}, or set DATASTORE_TYPE=etcdv3 ETCD_ENDPOINTS=${ds.slice(5)} (and its ETCD_*_FILE for TLS) as for podway run`
    : `give --datastore ${ds} (or set PODWAY_DATASTORE)`;
  // each store the runs use, with its nodes: one hint per store, not the first run's for all
  const stores = new Map<string, string[]>();
  for (const r of others) stores.set(r.datastore!, [...(stores.get(r.datastore!) ?? []), r.node]);
  const one = stores.size === 1;
  const how = one
    ? howFor(others[0]!.datastore!)
    : [...stores].map(([ds, nodes]) => `for the store of node${nodes.length > 1 ? 's' : ''} ${nodes.join(', ')} ${howFor(ds)}`).join('; ');
  const mineText = `${mine}${others.some((r) => r.clusterGuid !== null) ? guidText(guid) : ''}`;
  const head = defaultFile !== undefined
    ? `${runs}, not ${mineText}, which ${defaultFile} names (calicoctl's default config file, read as no --datastore, -c, $PODWAY_DATASTORE, DATASTORE_TYPE or ETCD_ENDPOINTS is set here)`
    : `${runs}, not ${mineText}, the default this command would use (no --datastore, -c, $PODWAY_DATASTORE, DATASTORE_TYPE or ETCD_ENDPOINTS set here)`;
  if (writing) throw new Error(`${head}: ${how}; or --datastore ${mine}${defaultFile !== undefined ? ` (or -c ${defaultFile})` : ''} for that store; nothing was written`);
  warn(`warning: ${head}; reading ${mine}: ${one ? `for the node's store ${how}` : how}\n`);
}
