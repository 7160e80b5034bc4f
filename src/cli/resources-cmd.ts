/**
 * calicoctl-shaped resource commands on the cluster datastore:
 *   podway apply|create|replace -f FILE [-n NS]      (YAML or JSON, one or many documents, Lists)
 *   podway delete -f FILE | podway delete KIND NAME [-n NS]
 *   podway get KIND [NAME] [-n NS | -A] [-o yaml|json|wide]
 * each with --datastore SPEC (default $PODWAY_DATASTORE, then Calico's DATASTORE_TYPE/ETCD_*
 * environment, then the embedded store). Values are written as Calico writes them (v3-store.ts),
 * so calicoctl on the same etcd reads them, and podway reads what calicoctl wrote.
 */
import { existsSync, unlinkSync } from 'node:fs';
import { Command, InvalidArgumentError, Option } from 'commander';
import { kindFromArgument as kindOfWord, kindInfo, KindInfo, KINDS, peekIdentity } from '../control/calico-kinds';
import { openKvStore } from '../control/kv/open';
import type { KvBatchWrite, KvEntry, KvStore } from '../control/kv/kv';
import type { DatastoreSpec } from '../control/kv/spec';
import { checkAgainstRuns, resolveCommandSpec, specText } from './run-datastore';
import { calicoctlConfigOption, etcdCaCertOption, etcdCertOption, etcdKeyOption, EtcdTlsFlags, envWithEtcdTlsFlags } from './etcd-tls-options';
import { CALICO_API_VERSION } from '../control/resource-names';
import {
  applyResource, batchTarget, createResource, deleteResource, describeIdentity, getResource, Identity, identityOf, JsonObject,
  listResources, planBatchWrite, replaceResource, ResourceError, requestedRevision, WriteOptions,
} from '../control/v3-store';
import type { FileResource } from './resource-files';
import type { DeleteReport } from '../control/resource-delete';
import { controlRequest, defaultControlPath } from '../dataplane/control-client';
import { CustomColumns, CustomColumnsError, evaluatePath, parseCustomColumnsOutput } from './custom-columns';
import { UsageError } from './usage-error';
import { felixConfigurationNotes } from './felix-config-note';
import { ENFORCING_KINDS } from '../control/policy-kinds';
import { podwayCommand } from '../util/invocation';

// Required by the commands that use them: every `podway` start registers these commands, and the
// YAML parser and printer, the resource schemas (zod, through resource-files.ts) and IPAM (through
// resource-delete.ts) are start-up time only reading a file, printing YAML or deleting needs
// (bench/README.md, "Start-up time").
const resourceFiles = () => require('./resource-files') as typeof import('./resource-files');
const readResourceFile: typeof import('./resource-files').readResourceFile = (...a) => resourceFiles().readResourceFile(...a);
const deleteWithCleanup: typeof import('../control/resource-delete').deleteWithCleanup = (...a) => (require('../control/resource-delete') as typeof import('../control/resource-delete')).deleteWithCleanup(...a);

export const FILE_DATASTORE_READ_ONLY = 'file: datastores are read-only (edit the file); use etcd: or embedded:';

type Out = (text: string) => void;

/** A KIND operand: an unknown one is a usage error (exit 2), told before the datastore is opened. */
function kindFromArgument(text: string): KindInfo {
  try {
    return kindOfWord(text);
  } catch (e) {
    throw new UsageError((e as Error).message);
  }
}

interface DatastoreOpts extends EtcdTlsFlags {
  datastore?: string;
  /** calicoctl's -c/--config FILE */
  config?: string;
}

function specOf(o: DatastoreOpts): DatastoreSpec {
  return resolveCommandSpec(o.datastore, envWithEtcdTlsFlags(o), o);
}

/**
 * Commands that only read or remove (get, delete, ipam show|check|release) on an embedded store
 * that does not exist: a mistyped path, which opening would create and show as an empty cluster.
 */
export function requireExistingStore(spec: Exclude<DatastoreSpec, { kind: 'file' }>): void {
  if (spec.kind === 'embedded' && !existsSync(spec.dir)) {
    throw new Error(`embedded datastore ${spec.dir} does not exist (podway run, apply or create makes it; is the path right?)`);
  }
}

/**
 * Runs `fn` with the KvStore the options name, closing it after; `mustExist`: see
 * requireExistingStore. Every datastore command opens its store here (the resource commands and
 * `podway ipam`): single calls, so on etcd the light client (kv/open.ts, 'command': no etcd3 or
 * gRPC loaded; docs/datastores.md, "The CLI's etcd client").
 */
export async function withKv<T>(spec: Exclude<DatastoreSpec, { kind: 'file' }>, fn: (kv: KvStore) => Promise<T>, mustExist: boolean, writing: boolean): Promise<T> {
  // the default store while this machine's podway run uses another: refused / warned (run-datastore.ts)
  await checkAgainstRuns(spec, writing);
  if (mustExist) requireExistingStore(spec);
  try {
    const kv = openKvStore(spec, { use: 'command' });
    try {
      return await fn(kv);
    } finally {
      await kv.close();
    }
  } catch (e) {
    const hint = storeAccessHint(spec, e);
    if (hint) throw new Error(`${(e as Error).message}${hint}`);
    throw e;
  }
}

/** A user's command on root's embedded store (mkdir /var/lib/podway, its lock, its log): what to do. */
function storeAccessHint(spec: Exclude<DatastoreSpec, { kind: 'file' }>, e: unknown): string {
  const code = (e as NodeJS.ErrnoException | null)?.code;
  if (spec.kind !== 'embedded' || (code !== 'EACCES' && code !== 'EPERM')) return '';
  return `: the embedded datastore ${spec.dir} needs root, or give --datastore embedded:DIR (a directory you can write)`;
}

function writableSpec(o: DatastoreOpts): Exclude<DatastoreSpec, { kind: 'file' }> {
  const spec = specOf(o);
  if (spec.kind === 'file') throw new Error(FILE_DATASTORE_READ_ONLY);
  return spec;
}

function where(r: FileResource, file: string): string {
  return `${r.file ?? file}: ${(require('../control/snapshot') as typeof import('../control/snapshot')).formatLocation(r.location)}`;
}

type WriteVerb = 'apply' | 'create' | 'replace' | 'delete';
const PAST: Record<WriteVerb, string> = { apply: 'applied', create: 'created', replace: 'replaced', delete: 'deleted' };

/** "'IPPool' resource(s)" when one kind, "resource(s)" when several, as calicoctl words it. */
function resourcesWord(resources: readonly FileResource[]): string {
  const kinds = new Set(resources.map((r) => peekIdentity(r.object).kind));
  return kinds.size === 1 ? `'${[...kinds][0]}' resource(s)` : 'resource(s)';
}

/** Writes each resource in file order; stops at the first failure (naming file, document and reason). */
async function writeAll(verb: WriteVerb, file: string, o: DatastoreOpts & { namespace?: string; skipNotExists?: boolean; skipExists?: boolean }, out: Out, err: Out): Promise<void> {
  const spec = writableSpec(o);
  const resources = readResourceFile(file, verb === 'delete' ? 'identity' : 'write');
  // IPAM state among the documents (a file datastore's BlockAffinities) is refused before anything
  // is written: it used to stop the file half-way ("Partial success"), the rest left out.
  const ipamState = resources.filter((r) => !kindInfo(peekIdentity(r.object).kind ?? '')?.writable);
  if (ipamState.length > 0) {
    throw new Error(ipamState.map((r) => `${where(r, file === '-' ? '<stdin>' : file)}: ${peekIdentity(r.object).kind} is IPAM state, `
      + `not a resource to ${verb}: leave it out of the file (\`${podwayCommand()} ipam assign --node NODE --ip IP\` gives an address to a node, `
      + `claiming its block for the node as Calico's IPAM does)`).join('\n') + '\nnothing was written');
  }
  const options = { namespace: o.namespace };
  const shown = file === '-' ? '<stdin>' : file;
  let done = 0;
  /** The error that ends the command at `r` (after `done` resources), as calicoctl words it. */
  const failure = (r: FileResource, e: unknown): Error => {
    const reason = e instanceof ResourceError ? e.message : `${(e as Error).message}${storeAccessHint(spec, e)}`;
    const prefix = done === 0
      ? `Failed to ${verb} any ${resourcesWord(resources)}`
      : `Partial success: ${PAST[verb]} the first ${done} out of ${resources.length} resources`;
    return new Error(`${prefix}: ${where(r, shown)}: ${reason}`);
  };
  /** A --skip-exists / --skip-not-exists skip of `r` (counted as handled, as calicoctl counts it), or null. */
  const skipped = (r: FileResource, e: unknown): string | null => {
    if (verb === 'delete' && o.skipNotExists && e instanceof ResourceError && e.reason === 'not-found') {
      return `podway: ${where(r, shown)}: ${describeIdentity(identityOf(r.object, o.namespace))} does not exist: skipped (--skip-not-exists)\n`;
    }
    if (verb === 'create' && o.skipExists && e instanceof ResourceError && e.reason === 'exists') {
      return `podway: ${where(r, shown)}: ${describeIdentity(identityOf(r.object, o.namespace))} already exists: skipped (--skip-exists)\n`;
    }
    return null;
  };
  await withKv(spec, async (kv) => {
    /** One resource written alone (its own read and compare-and-swap, as calicoctl writes each). */
    const writeOne = async (r: FileResource): Promise<void> => {
      try {
        if (verb === 'apply') await applyResource(kv, r.object, options);
        else if (verb === 'create') await createResource(kv, r.object, options);
        else if (verb === 'replace') await replaceResource(kv, r.object, options);
        else await deleteAndReport(kv, spec, identityOf(r.object, o.namespace), requestedRevision(r.object), err);
        done++;
      } catch (e) {
        const skip = skipped(r, e);
        if (skip === null) throw failure(r, e);
        err(skip);
        done++;
      }
    };
    // apply, create and replace go in batches where the store takes them (writeBatch: one
    // transaction of up to maxBatch resources), with the outcome of writing them one at a time.
    let batches = verb !== 'delete' && (kv.maxBatch ?? 0) > 1 && kv.getMany !== undefined && kv.writeBatch !== undefined;
    let i = 0;
    while (i < resources.length) {
      const chunk = batches && verb !== 'delete' ? takeBatch(verb, resources, i, kv.maxBatch!, options) : [];
      if (chunk.length === 0) {
        await writeOne(resources[i++]!);
        continue;
      }
      i += chunk.length;
      if (!(await writeBatch(kv, verb as Exclude<WriteVerb, 'delete'>, chunk, options, {
        failure, skipped, err, done: () => done++, writeOne,
      }))) {
        // The store refused so many operations in one transaction (an etcd with a lower
        // --max-txn-ops): these and the rest one at a time.
        batches = false;
        for (const b of chunk) await writeOne(b.r);
      }
    }
  }, false, true);
  out(`Successfully ${PAST[verb]} ${done} ${resourcesWord(resources)}\n`);
  // a FelixConfiguration: said what podway run does with each of its fields (felix-config-note.ts)
  if (verb !== 'delete') for (const note of felixConfigurationNotes(resources.map((r) => r.object))) err(`${note}\n`);
  // network policy: stored for Calico, not enforced by podway (control/policy-kinds.ts)
  if (verb !== 'delete') for (const note of policyNotes(resources.map((r) => r.object))) err(`${note}\n`);
  // KubeControllersConfiguration: stored for Calico's kube-controllers, which podway has none of
  if (verb !== 'delete') for (const note of kubeControllersNotes(resources.map((r) => r.object))) err(`${note}\n`);
  // IPAMConfiguration fields podway's IPAM stores for Calico's nodes but does not apply itself
  if (verb !== 'delete') for (const note of ipamConfigurationNotes(resources.map((r) => r.object))) err(`${note}\n`);
  // BGPPeer fields stored for Calico's nodes that podway's BGP does not apply (control/bgp/peering.ts)
  if (verb !== 'delete') for (const note of bgpPeerNotes(resources.map((r) => r.object))) err(`${note}\n`);
  // BGPConfiguration node.NAME fields Calico reads from default only; a name Calico never reads
  if (verb !== 'delete') for (const note of bgpConfigurationNotes(resources.map((r) => r.object))) err(`${note}\n`);
}

/** One note per written KubeControllersConfiguration: podway runs no kube-controllers. */
export function kubeControllersNotes(objects: readonly unknown[]): string[] {
  const notes: string[] = [];
  for (const o of objects) {
    const obj = o as { kind?: unknown; metadata?: { name?: unknown } };
    if (obj?.kind !== 'KubeControllersConfiguration') continue;
    notes.push(`podway: note: KubeControllersConfiguration ${String(obj.metadata?.name ?? '?')} is stored for Calico's kube-controllers; podway has no kube-controllers, so nothing on podway nodes acts on it (its IPAM garbage collection: podway ipam check / release --from-report; docs/calico-differences.md)`);
  }
  return notes;
}

/** One note per field of a written IPAMConfiguration that podway's IPAM does not apply (Calico's nodes do). */
export function ipamConfigurationNotes(objects: readonly unknown[]): string[] {
  const notes: string[] = [];
  for (const o of objects) {
    const obj = o as { kind?: unknown; spec?: Record<string, unknown> };
    if (obj?.kind !== 'IPAMConfiguration' || typeof obj.spec !== 'object' || obj.spec === null) continue;
    // ipCooldownSeconds is applied by podway's IPAM as by libcalico-go's (docs/ipam.md): no note.
    if (obj.spec.kubeVirtVMAddressPersistence !== undefined) {
      notes.push(`podway: note: IPAMConfiguration default: kubeVirtVMAddressPersistence is stored for Calico's nodes; podway's CNI plugin does not keep KubeVirt VM addresses (docs/calico-differences.md)`);
    }
  }
  return notes;
}

/** One note per field a written BGPPeer or BGPFilter uses that podway's BGP does not apply. */
function bgpPeerNotes(objects: readonly unknown[]): string[] {
  const notes: string[] = [];
  for (const o of objects) {
    const obj = o as { kind?: unknown; metadata?: { name?: unknown }; spec?: unknown };
    if (obj?.kind === 'BGPFilter') {
      // required here, as the modules above: only a write of a BGPFilter needs it
      const { unappliedBgpFilterFields } = require('../control/bgp/filters') as typeof import('../control/bgp/filters');
      for (const f of unappliedBgpFilterFields(obj.spec)) notes.push(`podway: note: BGPFilter ${String(obj.metadata?.name ?? '?')}: ${f} (docs/bgp.md "BGPFilters")`);
    }
    if (obj?.kind !== 'BGPPeer') continue;
    // required here, as the modules above: only a write of a BGPPeer needs the peering model
    const { unappliedBgpPeerFields } = require('../control/bgp/peering') as typeof import('../control/bgp/peering');
    for (const f of unappliedBgpPeerFields(obj.spec)) notes.push(`podway: note: BGPPeer ${String(obj.metadata?.name ?? '?')}: ${f} (docs/bgp.md "BGPPeers")`);
  }
  return notes;
}

/**
 * One note per written BGPConfiguration that is not read as written: a `node.NAME` one's fields
 * that calico-node's confd (and podway) read from `default` only, or a name that is neither
 * `default` nor `node.NAME` (confd reads no other). `default`, and node.NAME's per-node fields, pass
 * quietly.
 */
export function bgpConfigurationNotes(objects: readonly unknown[]): string[] {
  const notes: string[] = [];
  for (const o of objects) {
    const obj = o as { kind?: unknown; metadata?: { name?: unknown }; spec?: unknown };
    if (obj?.kind !== 'BGPConfiguration') continue;
    const name = String(obj.metadata?.name ?? '?');
    if (name === 'default') continue;
    const { NODE_BGP_CONFIG_PREFIX, PER_NODE_BGP_CONFIG_FIELDS, defaultOnlyBgpConfigFields } = require('../control/bgp/peering') as typeof import('../control/bgp/peering');
    if (!name.startsWith(NODE_BGP_CONFIG_PREFIX)) {
      notes.push(`podway: note: BGPConfiguration ${name} is stored, and has no effect: calico-node (and podway run) read only BGPConfiguration default and ${NODE_BGP_CONFIG_PREFIX}<node name> (docs/bgp.md "Per-node BGPConfiguration")`);
      continue;
    }
    const ignored = defaultOnlyBgpConfigFields(obj.spec);
    if (!ignored.length) continue;
    notes.push(`podway: note: BGPConfiguration ${name}: ${ignored.map((f) => `spec.${f}`).join(', ')} ignored, as by calico-node: read from BGPConfiguration default only (per node: ${PER_NODE_BGP_CONFIG_FIELDS.join(', ')}${ignored.includes('asNumber') ? `; a node's own AS is its Node's spec.bgp.asNumber` : ''}) (docs/bgp.md "Per-node BGPConfiguration")`);
  }
  return notes;
}

/** A resource of a batch: what it is in the file, its identity and key (batchTarget). */
interface BatchItem {
  readonly r: FileResource;
  readonly id: Identity;
  readonly key: string;
}

/**
 * The most bytes of resources (as JSON) one batch takes: below etcd's default request limit
 * (--max-request-bytes, 1.5 MiB) with room for the keys, the stored metadata and the framing.
 */
const MAX_BATCH_BYTES = 1024 * 1024;

/**
 * The resources from `start` on that go in one batch: up to `max`, of distinct keys, under
 * MAX_BATCH_BYTES (but at least one). It ends before one that is written alone (an IPPool, or
 * one whose write fails before the store is read: an invalid resourceVersion), which is then
 * written (or fails) as before; empty when that is the first.
 */
function takeBatch(verb: Exclude<WriteVerb, 'delete'>, resources: readonly FileResource[], start: number, max: number, options: WriteOptions): BatchItem[] {
  const chunk: BatchItem[] = [];
  const keys = new Set<string>();
  let bytes = 0;
  for (let i = start; i < resources.length && chunk.length < max; i++) {
    const r = resources[i]!;
    let target: { id: Identity; key: string } | null;
    try {
      target = batchTarget(verb, r.object, options);
    } catch {
      target = null;
    }
    // a key given twice: the second write depends on the first's outcome, so it starts the next batch
    if (target === null || keys.has(target.key)) break;
    const size = Buffer.byteLength(JSON.stringify(r.object)) + Buffer.byteLength(target.key) + 512;
    if (chunk.length > 0 && bytes + size > MAX_BATCH_BYTES) break;
    bytes += size;
    keys.add(target.key);
    chunk.push({ r, ...target });
  }
  return chunk;
}

interface BatchOutcome {
  /** The error that ends the command at a resource (writeAll's, counting what is done so far). */
  failure(r: FileResource, e: unknown): Error;
  /** The skip line of a --skip-exists skip, or null. */
  skipped(r: FileResource, e: unknown): string | null;
  err: Out;
  /** One more resource handled (written or skipped). */
  done(): void;
  /** writeAll's write of one resource alone (its own read and compare-and-swap; counted, skipped or thrown). */
  writeOne(r: FileResource): Promise<void>;
}

/** etcd's refusal of a transaction with more operations than its --max-txn-ops, or larger than its
 * --max-request-bytes (below the 1.5 MiB default MAX_BATCH_BYTES is sized for): one at a time then. */
const TOO_MANY_OPS = /too many operations in txn request|request is too large/;

/**
 * Writes `chunk` as writing each alone in file order would: the entries read at once, each
 * resource's write decided on its entry (planBatchWrite), and the writes up to the first that
 * fails made as one transaction, every key still as read; then the skip lines, the count and the
 * error of that first failure, as writeAll's loop says them. When a key changed between the read
 * and the transaction (another writer), nothing of the chunk was written and it is written one
 * resource at a time instead, as before. False when the store refuses a transaction this large
 * (nothing of the chunk read or written).
 */
async function writeBatch(kv: KvStore, verb: Exclude<WriteVerb, 'delete'>, chunk: readonly BatchItem[], options: WriteOptions, outcome: BatchOutcome): Promise<boolean> {
  let current: (KvEntry | null)[];
  try {
    current = await kv.getMany!(chunk.map((b) => b.key));
  } catch (e) {
    if (TOO_MANY_OPS.test((e as Error).message)) return false;
    throw outcome.failure(chunk[0]!.r, e);
  }
  const steps: ({ write: KvBatchWrite; b: BatchItem } | { skip: string })[] = [];
  let failed: { b: BatchItem; e: unknown } | null = null;
  for (let j = 0; j < chunk.length; j++) {
    const b = chunk[j]!;
    try {
      steps.push({ write: planBatchWrite(verb, b.r.object, b.id, b.key, current[j]!, options), b });
    } catch (e) {
      const skip = outcome.skipped(b.r, e);
      if (skip === null) {
        failed = { b, e };
        break;
      }
      steps.push({ skip });
    }
  }
  const writes = steps.flatMap((s) => ('write' in s ? [s.write] : []));
  let written: number[] | null;
  try {
    written = await kv.writeBatch!(writes);
  } catch (e) {
    if (TOO_MANY_OPS.test((e as Error).message)) return false;
    // the first write of the batch is where it stopped; the skips before it were handled
    for (const s of steps) {
      if ('write' in s) throw outcome.failure(s.b.r, e);
      outcome.err(s.skip);
      outcome.done();
    }
    throw e;
  }
  if (written === null) {
    // Someone wrote one of these keys since the read: nothing of the chunk was written.
    for (const b of chunk) await outcome.writeOne(b.r);
    return true;
  }
  for (const s of steps) {
    if ('skip' in s) outcome.err(s.skip);
    outcome.done();
  }
  if (failed) throw outcome.failure(failed.b.r, failed.e);
  return true;
}

/** One note per written policy object of a kind that would filter traffic on a Calico node. */
function policyNotes(objects: readonly unknown[]): string[] {
  const notes: string[] = [];
  for (const o of objects) {
    const obj = o as { kind?: unknown; metadata?: { name?: unknown; namespace?: unknown } };
    if (typeof obj?.kind !== 'string' || !ENFORCING_KINDS.has(obj.kind)) continue;
    const ns = obj.kind === 'NetworkPolicy' ? `${typeof obj.metadata?.namespace === 'string' ? obj.metadata.namespace : 'default'}/` : '';
    notes.push(`podway: note: ${obj.kind} ${ns}${String(obj.metadata?.name ?? '?')} is stored for Calico's nodes; podway does NOT enforce network policy: pod traffic on podway nodes is allowed whatever it says (docs/calico-differences.md "Network policy: not enforced")`);
  }
  return notes;
}

/**
 * A node's `podway run` on this host answering on its default control socket. calicoctl deletes a
 * Node without asking whether it runs; podway does the same but says so: a running node does not
 * register itself again (it registers at start only, as calico/node does): it goes not ready and
 * forwards on its last model (the released tunnel address included) until it is restarted.
 */
async function nodeRunsHere(node: string): Promise<string | null> {
  const sock = defaultControlPath(node);
  if (!existsSync(sock)) return null;
  try {
    // starting:true: a podway still starting (waiting for the datastore) answers too, and counts as running
    await controlRequest(sock, { cmd: 'status', starting: true }, 1000);
    return sock;
  } catch {
    return null;
  }
}

function describeReport(what: string, r: DeleteReport): string {
  const parts: string[] = [];
  if (r.releasedIps.length > 0) parts.push(`released ${r.releasedIps.length} address(es) (${r.releasedIps.join(', ')})`);
  if (r.endpoints.length > 0) parts.push(`deleted ${r.endpoints.length} WorkloadEndpoint(s)`);
  if (r.skippedIps.length > 0) parts.push(`left ${r.skippedIps.length} address(es) held by others now (${r.skippedIps.join(', ')})`);
  if (r.blocks.length > 0) parts.push(`released the affinity of ${r.blocks.length} block(s) (${r.blocks.join(', ')}; empty ones deleted)`);
  if (r.others.length > 0) parts.push(`deleted ${r.others.join(', ')}`);
  const head = `${what}: ${parts.length > 0 ? parts.join('; ') : 'it held no addresses, endpoints or blocks'}\n`;
  if (!r.inUseIps) return head;
  return `${head}warning: ${r.inUseIps} address(es) of the deleted pool are still in use (pods, tunnel addresses): they stay allocated in their blocks, now in no pool, until released; delete those pods (their CNI DEL releases them), or see them with \`${podwayCommand()} ipam check\` and release them with \`${podwayCommand()} ipam release\`\n`;
}

/** Deletes one resource; a Node or IPPool with its IPAM state and endpoints (control/resource-delete.ts), reported on `err`. */
async function deleteAndReport(kv: KvStore, spec: DatastoreSpec, id: Identity, revision: number | undefined, err: Out): Promise<void> {
  const sock = id.info.kind === 'Node' ? await nodeRunsHere(id.name) : null;
  if (sock) err(`${runningNodeWarning(id.name, sock)}\n`);
  const report = await deleteWithCleanup(kv, id, revision);
  if (report) err(describeReport(describeIdentity(id), report));
  if (id.info.kind === 'Node' && report && report.endpoints.length > 0) err(`${liveNodeWarning(id.name, report)}\n`);
  if (id.info.kind === 'Node' && report) removeDeletedNodeCache(id.name, spec, sock !== null, err);
}

/**
 * The deleted Node's model cache on this host (podway run's default file, model-cache.ts):
 * removed, so that the next start of a node of that name here does not forward on the deleted
 * Node's state (nor announce its blocks with --bgp) until the datastore answers (docs/failures.md,
 * "A deleted Node's cache while etcd does not answer at all"). Only a cache of that node from this
 * datastore (etcd: the other datastores have none); one of another datastore, damaged or of
 * another format is left as it is (a start ignores it, saying why). A --model-cache FILE elsewhere
 * is not known here: said in docs/cli.md.
 */
function removeDeletedNodeCache(node: string, spec: DatastoreSpec, running: boolean, err: Out): void {
  const mc = require('./model-cache') as typeof import('./model-cache');
  const ds = mc.datastoreIdentity(spec);
  if (ds === null) return;
  const file = mc.defaultModelCachePath(node);
  const cached = mc.readModelCache(file, node, ds);
  if (cached === 'none' || 'refused' in cached) return;
  const written = `written for Node ${node} ${cached.nodeIdentity === null ? `(format ${cached.version}: not recorded)` : mc.nodeIdentityText(cached.nodeIdentity)}, its model applied at ${cached.appliedAt.toISOString()}`;
  try {
    unlinkSync(file);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return;
    err(`warning: node ${node}'s model cache ${file} (${written}) could not be removed: ${(e as Error).message}; remove it, or a start of ${node} here while the datastore does not answer forwards on the deleted Node's state\n`);
    return;
  }
  err(`removed node ${node}'s model cache ${file} (${written}): a start of ${node} on this host waits for the datastore instead of forwarding on it${running ? `; its podway run, still running here, writes it again with its next model: stop it, then remove the file` : ''}\n`);
}

/**
 * The Node of a `podway run` answering on this host deleted: it does not register it again (at start
 * only, as calico/node), so it is stopped (decommissioned) or restarted (registered again).
 */
export function runningNodeWarning(node: string, sock: string): string {
  return `warning: podway run of node ${node} answers on ${sock}: it does not register the node again (it registers at start only, as calico/node does): `
    + `it goes not ready and forwards on its last state until it stops; stop it to decommission the node, or restart it to register the node again`;
}

/**
 * A Node deleted with WorkloadEndpoints: it looked alive (podway keeps no heartbeat key; pods on it
 * are the sign), and whatever runs there is not told. Says what becomes of its pods.
 */
export function liveNodeWarning(node: string, r: DeleteReport): string {
  const eps = r.endpoints.slice(0, 5).join(', ') + (r.endpoints.length > 5 ? `, and ${r.endpoints.length - 5} more` : '');
  return `warning: node ${node} looked alive: it had ${r.endpoints.length} WorkloadEndpoint(s) (${eps}). Pods still running there keep their addresses, which IPAM now has free: `
    + `a podway run still running on ${node} removes their routes, lists them as \`orphan pod:\` in its status and metrics and holds those addresses in IPAM for ${node} (docs/ipam.md); with no podway run there, its CNI ADD holds them at its next pod, and until then another node's IPAM may give them out. `
    + `Remove those pods on ${node} (their CNI DEL, e.g. podman rm) and stop its podway run to decommission it; to keep the node, restart its podway run (it registers the node at start only, as calico/node does), then re-create those pods`;
}

// ---------------------------------------------------------------------------------------------
// get

interface Column {
  readonly header: string;
  readonly value: (obj: JsonObject) => string;
}

const str = (v: unknown): string => (v === undefined || v === null ? '' : Array.isArray(v) ? v.join(',') : String(v));
/** calicoctl's `{{if .Spec.X}}{{.Spec.X}}{{ else }}-{{ end }}` for a pointer field: "-" when unset. */
const orDash = (v: unknown): string => (v === undefined || v === null ? '-' : str(v));
const meta = (o: JsonObject) => (o.metadata ?? {}) as JsonObject;
const spec = (o: JsonObject) => (o.spec ?? {}) as JsonObject;
const bgp = (o: JsonObject) => (spec(o).bgp ?? {}) as JsonObject;
const name: Column = { header: 'NAME', value: (o) => str(meta(o).name) };
const namespace: Column = { header: 'NAMESPACE', value: (o) => str(meta(o).namespace) };

/** calicoctl's table columns per kind (default, then wide). */
function columnsFor(info: KindInfo, wide: boolean, allNamespaces: boolean, defaultAsn: string): Column[] {
  switch (info.kind) {
    case 'IPPool':
      return wide
        ? [name, { header: 'CIDR', value: (o) => str(spec(o).cidr) }, { header: 'NAT', value: (o) => str(spec(o).natOutgoing ?? false) },
          { header: 'IPIPMODE', value: (o) => str(spec(o).ipipMode ?? 'Never') }, { header: 'VXLANMODE', value: (o) => str(spec(o).vxlanMode ?? 'Never') },
          { header: 'DISABLED', value: (o) => str(spec(o).disabled ?? false) }, { header: 'DISABLEBGPEXPORT', value: (o) => str(spec(o).disableBGPExport ?? false) },
          { header: 'SELECTOR', value: (o) => str(spec(o).nodeSelector ?? 'all()') }, { header: 'ASSIGNMENTMODE', value: (o) => str(spec(o).assignmentMode ?? 'Automatic') }]
        : [name, { header: 'CIDR', value: (o) => str(spec(o).cidr) }, { header: 'SELECTOR', value: (o) => str(spec(o).nodeSelector ?? 'all()') }];
    case 'Node':
      return wide
        ? [name, { header: 'ASN', value: (o) => (bgp(o).asNumber !== undefined ? str(bgp(o).asNumber) : `(${defaultAsn})`) },
          { header: 'IPV4', value: (o) => str(bgp(o).ipv4Address) }, { header: 'IPV6', value: (o) => str(bgp(o).ipv6Address) }]
        : [name];
    case 'WorkloadEndpoint': {
      const cols: Column[] = [
        { header: 'WORKLOAD', value: (o) => str(spec(o).workload || spec(o).pod || meta(o).name) },
        { header: 'NODE', value: (o) => str(spec(o).node) },
        { header: 'NETWORKS', value: (o) => str(spec(o).ipNetworks) },
        { header: 'INTERFACE', value: (o) => str(spec(o).interfaceName) },
      ];
      if (wide) cols.unshift(name);
      if (wide) cols.push({ header: 'PROFILES', value: (o) => str(spec(o).profiles) });
      if (allNamespaces) cols.unshift(namespace);
      return cols;
    }
    case 'BlockAffinity':
      return [name, { header: 'NODE', value: (o) => str(spec(o).node) }, { header: 'CIDR', value: (o) => str(spec(o).cidr) },
        { header: 'STATE', value: (o) => str(spec(o).state) }];
    case 'BGPConfiguration':
      // calicoctl's: an unset MESHENABLED or ASNUMBER is "-" (a node.NAME one usually has neither:
      // they are read from default only), an unset LOGSEVERITY empty.
      return [name, { header: 'LOGSEVERITY', value: (o) => str(spec(o).logSeverityScreen) },
        { header: 'MESHENABLED', value: (o) => orDash(spec(o).nodeToNodeMeshEnabled) }, { header: 'ASNUMBER', value: (o) => orDash(spec(o).asNumber) }];
    case 'BGPPeer':
      return [name, { header: 'PEERIP', value: (o) => str(spec(o).peerIP || spec(o).peerSelector) },
        { header: 'NODE', value: (o) => str(spec(o).node || spec(o).nodeSelector || '(global)') }, { header: 'ASN', value: (o) => str(spec(o).asNumber) }];
    case 'BGPFilter': {
      // calicoctl's resourcemgr/bgpfilter.go: the number of rules per direction and family
      const count = (f: string) => (o: JsonObject) => str(Array.isArray(spec(o)[f]) ? (spec(o)[f] as unknown[]).length : 0);
      return [name, { header: 'NUMEXPORTV4', value: count('exportV4') }, { header: 'NUMIMPORTV4', value: count('importV4') },
        { header: 'NUMEXPORTV6', value: count('exportV6') }, { header: 'NUMIMPORTV6', value: count('importV6') }];
    }
    case 'ClusterInformation':
      return [name, { header: 'CLUSTERGUID', value: (o) => str(spec(o).clusterGUID) }, { header: 'CLUSTERTYPE', value: (o) => str(spec(o).clusterType) },
        { header: 'DATASTOREREADY', value: (o) => str(spec(o).datastoreReady) }];
    case 'NetworkPolicy':
    case 'StagedNetworkPolicy':
    case 'StagedKubernetesNetworkPolicy':
    case 'NetworkSet':
      // calicoctl: NAME, with NAMESPACE first for --all-namespaces
      return allNamespaces ? [namespace, name] : [name];
    case 'HostEndpoint':
      return wide
        ? [name, { header: 'NODE', value: (o) => str(spec(o).node) }, { header: 'INTERFACE', value: (o) => str(spec(o).interfaceName) },
          { header: 'IPS', value: (o) => str(spec(o).expectedIPs) }, { header: 'PROFILES', value: (o) => str(spec(o).profiles) }]
        : [name, { header: 'NODE', value: (o) => str(spec(o).node) }];
    case 'IPAMConfiguration': {
      // calicoctl's resourcemgr/ipamconfiguration.go: NAME, STRICTAFFINITY, AUTOALLOCATEBLOCKS; wide adds MAXBLOCKSPERHOST (0: not set, 20 applied)
      const cols: Column[] = [name, { header: 'STRICTAFFINITY', value: (o) => str(spec(o).strictAffinity ?? false) },
        { header: 'AUTOALLOCATEBLOCKS', value: (o) => str(spec(o).autoAllocateBlocks ?? true) }];
      return wide ? [...cols, { header: 'MAXBLOCKSPERHOST', value: (o) => str(spec(o).maxBlocksPerHost ?? 0) }] : cols;
    }
    case 'IPReservation':
      // calicoctl: NAME; wide adds CIDRS, joined with ',' and cut at 80 characters.
      return wide ? [name, { header: 'CIDRS', value: (o) => joinAndTruncate(spec(o).reservedCIDRs, 80) }] : [name];
    default:
      return [name];
  }
}

/** calicoctl's joinAndTruncate: the items joined with ',', cut to `max` characters ending in '...'. */
function joinAndTruncate(items: unknown, max: number): string {
  const text = Array.isArray(items) ? items.map(String).join(',') : '';
  return text.length > max ? `${text.slice(0, max - 3)}...` : text;
}

/** A calicoctl table: upper-case headers (always printed), columns padded, three spaces apart. */
export function renderTable(columns: readonly Column[], rows: readonly JsonObject[]): string {
  const cells = rows.map((r) => columns.map((c) => c.value(r)));
  const widths = columns.map((c, i) => Math.max(c.header.length, ...cells.map((row) => row[i]!.length)));
  const line = (vals: readonly string[]) => vals.map((v, i) => v.padEnd(widths[i]!)).join('   ').trimEnd();
  return [line(columns.map((c) => c.header)), ...cells.map(line)].join('\n') + '\n';
}

/** Recursively sorted keys: calicoctl's YAML goes through JSON and prints map keys sorted. */
function sortKeys(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(sortKeys);
  if (typeof value !== 'object' || value === null) return value;
  return Object.fromEntries(
    Object.keys(value as JsonObject).sort().map((k) => [k, sortKeys((value as JsonObject)[k])] as const),
  );
}

function printObject(obj: unknown, format: string): string {
  return format === 'json' ? JSON.stringify(obj, null, 2) + '\n' : (require('yaml') as typeof import('yaml')).stringify(sortKeys(obj), { indentSeq: false });
}

interface GetOpts extends DatastoreOpts {
  namespace?: string;
  allNamespaces?: boolean;
  output: string | CustomColumns;
}

const GET_FORMATS = ['ps', 'wide', 'yaml', 'json', 'custom-columns=SPEC', 'custom-columns-file=FILE'] as const;

/**
 * `get -o`: one of GET_FORMATS (custom columns parsed here, so a bad spec is a usage error before
 * anything is opened); calicoctl's go-template is not implemented.
 */
function getFormat(v: string): string | CustomColumns {
  if ((GET_FORMATS as readonly string[]).includes(v) && !v.includes('=')) return v;
  try {
    const custom = parseCustomColumnsOutput(v);
    if (custom) return custom;
  } catch (e) {
    if (e instanceof CustomColumnsError) throw new InvalidArgumentError(e.message);
    throw e;
  }
  const calicoctlOnly = /^(go-template|go-template-file)(=|$)/.test(v) ? ` (calicoctl's ${v.split('=')[0]} is not supported by podway)` : '';
  throw new InvalidArgumentError(`use ${GET_FORMATS.join(', ')}${calicoctlOnly}`);
}

/**
 * The table columns of `-o custom-columns`: a `HEADER:PATH` column reads its path; a bare HEADER
 * (calicoctl's form) is the kind's own column of that heading (any of its default or wide ones).
 */
function customColumnsFor(info: KindInfo, custom: CustomColumns, allNamespaces: boolean, defaultAsn: string): Column[] {
  const known = [...columnsFor(info, true, allNamespaces, defaultAsn), ...columnsFor(info, false, allNamespaces, defaultAsn), ...(info.namespaced ? [namespace] : [])];
  return custom.custom.map((c): Column => {
    if (c.path) {
      const path = c.path;
      return { header: c.header, value: (o) => evaluatePath(o, path) };
    }
    const col = known.find((k) => k.header === c.header.toUpperCase());
    if (!col) {
      const headers = [...new Set(known.map((k) => k.header))].join(', ');
      throw new UsageError(`get -o custom-columns: ${info.kind} has no column ${JSON.stringify(c.header)} (its columns: ${headers}; or write HEADER:PATH, e.g. ${c.header}:.spec.${c.header.toLowerCase()})`);
    }
    return { header: col.header, value: col.value };
  });
}

/** The objects of a kind in a file: datastore (no resourceVersion: a file has none). */
function fromFile(path: string, info: KindInfo): JsonObject[] {
  return readResourceFile(path).map((r) => r.object).filter((o) => o.kind === info.kind);
}

async function getCommand(kindArg: string, names: readonly string[], o: GetOpts, out: Out, err: Out): Promise<void> {
  const info = kindFromArgument(kindArg);
  // one NAME prints the object itself; several a list of them, in the order given (calicoctl)
  const nameArg = names.length === 1 ? names[0] : undefined;
  if (o.allNamespaces && o.namespace) throw new UsageError('get: give -n NAMESPACE or -A, not both');
  const ns = info.namespaced ? (o.allNamespaces ? undefined : o.namespace || 'default') : undefined;
  const allNs = info.namespaced && !!o.allNamespaces;
  // checked before the datastore is opened: an unknown heading is a usage error
  if (typeof o.output === 'object') customColumnsFor(info, o.output, allNs, '64512');
  const ds = specOf(o);
  let items: JsonObject[];
  let revision: string | undefined;
  let defaultAsn = '64512';
  if (ds.kind === 'file') {
    items = fromFile(ds.path, info).filter((obj) => ns === undefined || (meta(obj).namespace ?? 'default') === ns);
    if (names.length > 1) {
      items = names.map((n) => {
        const one = items.find((obj) => meta(obj).name === n);
        if (!one) throw new ResourceError('not-found', `resource does not exist: ${describeIdentity({ info, name: n, namespace: ns })}`);
        return one;
      });
    }
  } else {
    const result = await withKv(ds, async (kv) => {
      // a Node without its own AS shows the cluster's (BGPConfiguration default), one or all of them
      let asn: unknown;
      if (info.kind === 'Node' && (o.output === 'wide' || typeof o.output === 'object')) {
        asn = spec(((await getResource(kv, kindFromArgument('bgpconfiguration'), 'default'))?.object ?? {}) as JsonObject).asNumber;
      }
      if (nameArg !== undefined) {
        const one = await getResource(kv, info, nameArg, ns);
        return { items: one ? [one.object] : [], revision: undefined, asn };
      }
      if (names.length > 1) {
        const found: JsonObject[] = [];
        for (const n of names) {
          const one = await getResource(kv, info, n, ns);
          if (!one) throw new ResourceError('not-found', `resource does not exist: ${describeIdentity({ info, name: n, namespace: ns })}`);
          found.push(one.object);
        }
        return { items: found, revision: undefined, asn };
      }
      const list = await listResources(kv, info, ns);
      for (const p of list.problems) err(`warning: ${p} (skipped)\n`);
      return { items: list.items.map((r) => r.object), revision: String(list.revision), asn };
    }, true, false);
    items = result.items;
    revision = result.revision;
    if (result.asn !== undefined) defaultAsn = String(result.asn);
  }
  if (nameArg !== undefined) {
    const one = items.find((obj) => meta(obj).name === nameArg);
    if (!one) {
      const id: Identity = { info, name: nameArg, namespace: ns };
      throw new Error(`resource does not exist: ${describeIdentity(id)}`);
    }
    items = [one];
  }
  if (o.output === 'yaml' || o.output === 'json') {
    if (nameArg !== undefined) return out(printObject(items[0], o.output));
    const list: JsonObject = { kind: `${info.kind}List`, apiVersion: CALICO_API_VERSION, metadata: revision ? { resourceVersion: revision } : {}, items };
    return out(printObject(list, o.output));
  }
  if (typeof o.output === 'object') return out(renderTable(customColumnsFor(info, o.output, allNs, defaultAsn), items));
  out(renderTable(columnsFor(info, o.output === 'wide', info.namespaced && !!o.allNamespaces, defaultAsn), items));
}

// ---------------------------------------------------------------------------------------------

const DATASTORE_HELP = 'etcd:URL[,URL], embedded:DIR or file:PATH (default -c FILE, else $PODWAY_DATASTORE, then DATASTORE_TYPE/ETCD_ENDPOINTS, then /etc/calico/calicoctl.cfg when it exists, then the embedded store)';

/** Adds apply, create, replace, delete and get to `program`. */
export function addResourceCommands(program: Command, out: Out = (t) => void process.stdout.write(t), err: Out = (t) => void process.stderr.write(t)): void {
  const writer = (verb: Exclude<WriteVerb, 'delete'>, desc: string) =>
    program
      .command(verb)
      .description(desc)
      .option('-f, --filename <file>', 'YAML or JSON file of resources, required (- for standard input; a directory: its .yaml, .yml and .json files, in name order)')
      .option('-n, --namespace <ns>', 'namespace for namespaced resources that do not name one', 'default')
      .option('--datastore <spec>', DATASTORE_HELP)
      .addOption(etcdCaCertOption()).addOption(etcdCertOption()).addOption(etcdKeyOption()).addOption(calicoctlConfigOption())
      // The file given without -f (`podway apply pool.yaml`, kubectl's and calicoctl's users' slip
      // too) is named in the error with the command that works; commander said only "required
      // option '-f, --filename <file>' not specified".
      .allowExcessArguments(true)
      .action((o, cmd: Command) => {
        const extra = cmd.args;
        if (!o.filename) {
          throw new UsageError(extra.length > 0
            ? `${verb}: the file is given with -f: \`${podwayCommand()} ${verb} -f ${extra[0]}\``
            : `${verb}: give the file of resources with -f FILE (e.g. ${podwayCommand()} ${verb} -f pool.yaml)`);
        }
        if (extra.length > 0) throw new UsageError(`${verb}: unexpected argument "${extra[0]}": ${verb} reads one -f FILE (several files: a directory of them)`);
        return writeAll(verb, o.filename, o, out, err);
      });
  writer('apply', 'create or replace the resources in a file');
  writer('create', 'create the resources in a file (fails on one that exists, unless --skip-exists)')
    .option('--skip-exists', 'skip a resource that already exists (left as it is) and count it as created, as calicoctl does');
  writer('replace', 'replace the resources in a file (fails on one that does not exist)');

  program
    .command('delete')
    .description(`delete the resources in a file, or one resource: \`${podwayCommand()} delete ippool NAME\``)
    .argument('[kind]', `resource type (${KINDS.filter((k) => k.writable).map((k) => k.aliases[0]).join(', ')})`)
    .argument('[name]', 'resource name')
    .option('-f, --filename <file>', 'YAML or JSON file of resources to delete (a directory: its .yaml, .yml and .json files, in name order)')
    .option('-n, --namespace <ns>', 'namespace (namespaced kinds)', 'default')
    .option('--skip-not-exists', 'do not fail on a resource that does not exist')
    .option('--datastore <spec>', DATASTORE_HELP)
      .addOption(etcdCaCertOption()).addOption(etcdCertOption()).addOption(etcdKeyOption()).addOption(calicoctlConfigOption())
    .action(async (kind: string | undefined, nameArg: string | undefined, o) => {
      if (o.filename) {
        if (kind !== undefined) throw new UsageError('delete: give -f FILE or KIND NAME, not both');
        return writeAll('delete', o.filename, o, out, err);
      }
      if (kind === undefined || nameArg === undefined) throw new UsageError(`delete: give -f FILE, or KIND NAME (e.g. ${podwayCommand()} delete ippool my-pool)`);
      const info = kindFromArgument(kind);
      const ds = writableSpec(o);
      const id: Identity = { info, name: nameArg, namespace: info.namespaced ? o.namespace : undefined };
      await withKv(ds, async (kv) => {
        try {
          await deleteAndReport(kv, ds, id, undefined, err);
        } catch (e) {
          // `get wep` shows WORKLOAD, not the NAME delete takes (as calicoctl: NAME is in -o wide)
          if (!o.skipNotExists && e instanceof ResourceError && e.reason === 'not-found' && info.kind === 'WorkloadEndpoint') {
            throw new ResourceError('not-found', `${e.message}; a workload endpoint's NAME (not its WORKLOAD) is in \`${podwayCommand()} get workloadendpoint -o wide${info.namespaced && o.namespace !== 'default' ? ` -n ${o.namespace}` : ''}\` (or -A for every namespace)`);
          }
          if (!(o.skipNotExists && e instanceof ResourceError && e.reason === 'not-found')) throw e;
          // counted as deleted, as calicoctl counts it; stderr says it was not there
          err(`podway: ${describeIdentity(id)} does not exist: skipped (--skip-not-exists)\n`);
        }
      }, true, true);
      out(`Successfully deleted 1 '${info.kind}' resource(s)\n`);
    });

  program
    .command('get')
    .description(`show resources, e.g. \`${podwayCommand()} get ippool -o yaml\`, \`${podwayCommand()} get wep -A\``)
    .argument('[kind]', `resource type (${KINDS.map((k) => k.aliases[0]).join(', ')})`)
    .argument('[names...]', 'resources by name (one is printed as a single object, several as a list)')
    .option('-f, --filename <file>', 'the resources a YAML or JSON file names (kind, name, namespace), read from the datastore')
    .option('-n, --namespace <ns>', 'namespace (namespaced kinds; default "default")')
    .option('-A, --all-namespaces', 'every namespace')
    // a refused format is one line naming the allowed ones (not the whole help after it)
    .addOption(new Option('-o, --output <format>', `output format: ${GET_FORMATS.join(', ')}`).argParser(getFormat).default('ps'))
    .showHelpAfterError(false)
    .option('--datastore <spec>', DATASTORE_HELP)
      .addOption(etcdCaCertOption()).addOption(etcdCertOption()).addOption(etcdKeyOption()).addOption(calicoctlConfigOption())
    .action(async (kind: string | undefined, names: string[], o: GetOpts & { filename?: string }) => {
      if (o.filename !== undefined) {
        if (kind !== undefined) throw new UsageError('get: give -f FILE or KIND [NAME...], not both');
        return getFromFile(o.filename, o, out, err);
      }
      if (kind === undefined) throw new UsageError(`missing required argument 'kind'; see \`${podwayCommand()} get --help\``);
      return getCommand(kind, names, o, out, err);
    });

  program
    .command('patch')
    .description(`patch one resource: \`${podwayCommand()} patch ippool NAME -p '{"spec":{"natOutgoing":true}}'\` (a JSON merge patch, as calicoctl's default)`)
    .argument('<kind>', `resource type (${KINDS.filter((k) => k.writable).map((k) => k.aliases[0]).join(', ')})`)
    .argument('<name>', 'resource name')
    .requiredOption('-p, --patch <json>', 'the patch: a JSON object merged into the stored resource (null removes a field)')
    .addOption(new Option('-t, --type <type>', 'patch type: merge, or strategic (the same for Calico\'s resources: lists are replaced whole)').choices(['merge', 'strategic']).default('strategic'))
    .option('-n, --namespace <ns>', 'namespace (namespaced kinds)', 'default')
    .option('--datastore <spec>', DATASTORE_HELP)
      .addOption(etcdCaCertOption()).addOption(etcdCertOption()).addOption(etcdKeyOption()).addOption(calicoctlConfigOption())
    .action((kind: string, nameArg: string, o: DatastoreOpts & { patch: string; namespace: string }) => patchCommand(kind, nameArg, o, out, err));

  program
    .command('label')
    .description(`set or remove one label of a resource, as calicoctl label: \`${podwayCommand()} label node node1 rack=r1 [--overwrite]\`, \`${podwayCommand()} label node node1 rack --remove\``)
    .argument('<kind>', `resource type (${KINDS.filter((k) => k.writable).map((k) => k.aliases[0]).join(', ')})`)
    .argument('<name>', 'resource name')
    .argument('<label>', 'KEY=VALUE to set, or KEY with --remove')
    .option('--overwrite', 'change the value of a label the resource has already (without it: an error, unless the value is the same)')
    .option('--remove', 'remove the label KEY (an error when the resource has no such label)')
    .option('-n, --namespace <ns>', 'namespace (namespaced kinds)', 'default')
    .option('--datastore <spec>', DATASTORE_HELP)
      .addOption(etcdCaCertOption()).addOption(etcdCertOption()).addOption(etcdKeyOption()).addOption(calicoctlConfigOption())
    .action((kind: string, nameArg: string, label: string, o: LabelOpts) => labelCommand(kind, nameArg, label, o, out, err));

  program
    .command('version')
    .description('this podway\'s version and the cluster\'s (ClusterInformation default\'s calicoVersion and clusterType), as calicoctl version')
    .option('--datastore <spec>', DATASTORE_HELP)
      .addOption(etcdCaCertOption()).addOption(etcdCertOption()).addOption(etcdKeyOption()).addOption(calicoctlConfigOption())
    .action((o: DatastoreOpts) => versionCommand(o, out));
}

const LABEL_NAME = /^[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$/;
const DNS_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;

/** Kubernetes' label syntax, which Calico's validator applies to metadata.labels: null when fine. */
export function labelProblem(key: string, value?: string): string | null {
  const slash = key.indexOf('/');
  const [prefix, name] = slash >= 0 ? [key.slice(0, slash), key.slice(slash + 1)] : [null, key];
  if (prefix !== null && (prefix === '' || prefix.length > 253 || !DNS_SUBDOMAIN.test(prefix))) return `key prefix ${JSON.stringify(prefix)} is not a DNS subdomain (lower case, at most 253 characters)`;
  if (!LABEL_NAME.test(name)) return `key name ${JSON.stringify(name)} must be 1 to 63 characters of letters, digits, '-', '_' or '.', starting and ending with a letter or digit`;
  if (value !== undefined && value !== '' && !LABEL_NAME.test(value)) return `value ${JSON.stringify(value)} must be empty or at most 63 characters of letters, digits, '-', '_' or '.', starting and ending with a letter or digit`;
  return null;
}

interface LabelOpts extends DatastoreOpts { namespace: string; overwrite?: boolean; remove?: boolean }

/**
 * `podway label KIND NAME KEY=VALUE [--overwrite]` / `KEY --remove`: calicoctl's label command
 * (calicoctl/commands/label.go), its messages with KIND and NAME as typed. The resource is read,
 * its labels changed, validated as apply validates a file, and written only if nobody changed it
 * since the read (its resourceVersion, as patch): a conflict fails (exit 1), label not changed.
 */
async function labelCommand(kindArg: string, nameArg: string, label: string, o: LabelOpts, out: Out, err: Out): Promise<void> {
  const info = kindFromArgument(kindArg);
  if (!info.writable) throw new UsageError(`label: ${info.kind} is IPAM state, not a resource to label`);
  if (o.overwrite && o.remove) throw new UsageError('label: give --overwrite or --remove, not both');
  let key: string;
  let value = '';
  if (o.remove) {
    key = label;
  } else {
    // as calicoctl: exactly one '=' (a value holding '=' is not a label value either)
    const kv = label.split('=');
    if (kv.length !== 2) throw new UsageError(`invalid label ${label}${kv.length === 1 ? ' (expected KEY=VALUE, or KEY with --remove)' : ''}`);
    [key, value] = kv as [string, string];
  }
  const bad = labelProblem(key, o.remove ? undefined : value);
  if (bad) throw new UsageError(`invalid label ${label}: ${bad}`);
  const ds = writableSpec(o);
  const ns = info.namespaced ? o.namespace : undefined;
  let done = 'set' as 'removed' | 'updated' | 'set';
  await withKv(ds, async (kv) => {
    const current = await getResource(kv, info, nameArg, ns);
    if (!current) throw new ResourceError('not-found', `${kindArg} ${nameArg} not found${ns !== undefined ? ` in namespace ${ns}` : ''}`);
    const m = meta(current.object);
    const labels: Record<string, unknown> = isPlainObject(m.labels) ? { ...m.labels } : {};
    if (o.remove) {
      if (!Object.prototype.hasOwnProperty.call(labels, key)) throw new Error(`cannot remove label of ${kindArg} ${nameArg}, key ${key} does not exist`);
      delete labels[key];
      done = 'removed';
    } else if (Object.prototype.hasOwnProperty.call(labels, key)) {
      if (!o.overwrite && labels[key] !== value) throw new Error(`failed to update label of ${kindArg} ${nameArg}, key ${key} is already present. please use '--overwrite' to set a new value.`);
      labels[key] = value;
      done = 'updated';
    } else {
      labels[key] = value;
    }
    const { labels: _old, ...rest } = m;
    const metadata = { ...rest, ...(Object.keys(labels).length ? { labels } : {}), resourceVersion: String(current.entry.modRevision) };
    try {
      // validated as a file given to apply is (label keys and values included), named as the label
      const [validated] = resourceFiles().parseResourceText(JSON.stringify({ ...current.object, metadata }), '<label>', 'write');
      await replaceResource(kv, validated!.object, { namespace: o.namespace });
    } catch (e) {
      throw new Error(`failed to update ${kindArg} ${nameArg}, label not changed: ${(e as Error).message}`);
    }
  }, false, true);
  out(done === 'removed' ? `Successfully removed label ${key} from ${kindArg} ${nameArg}\n`
    : done === 'updated' ? `Successfully updated label ${key} on ${kindArg} ${nameArg}\n`
      : `Successfully set label ${key} on ${kindArg} ${nameArg}\n`);

}

/**
 * `podway version`: calicoctl version's lines (Client Version, Git commit; Cluster Version and
 * Cluster Type from ClusterInformation default's calicoVersion and clusterType, "unknown" when
 * empty). podway never writes calicoVersion (it is not a calico-node), so a cluster of podway
 * nodes alone shows "unknown" there. Not read: "Unable to retrieve Cluster Version or Type: ...", exit 1.
 */
async function versionCommand(o: DatastoreOpts, out: Out): Promise<void> {
  const { buildVersion } = require('./version') as typeof import('./version');
  const v = buildVersion();
  // calicoctl's spec is checked first (a usage error prints nothing), then the client's lines
  const ds = specOf(o);
  out(`Client Version:    ${v.version}\nGit commit:        ${v.commit ?? 'unknown'}\n`);
  const info = kindFromArgument('clusterinformation');
  let ci: JsonObject | undefined;
  try {
    ci = ds.kind === 'file'
      ? fromFile(ds.path, info).find((obj) => meta(obj).name === 'default')
      : await withKv(ds, async (kv) => (await getResource(kv, info, 'default'))?.object, true, false);
  } catch (e) {
    throw new Error(`Unable to retrieve Cluster Version or Type: ${(e as Error).message}`);
  }
  if (!ci) throw new Error(`Unable to retrieve Cluster Version or Type: resource does not exist: ClusterInformation(default) in ${specText(ds)}`);
  const sp = spec(ci);
  const text = (x: unknown) => (typeof x === 'string' && x !== '' ? x : 'unknown');
  out(`Cluster Version:   ${text(sp.calicoVersion)}\nCluster Type:      ${text(sp.clusterType)}\n`);
}

/** RFC 7386 JSON merge patch: objects merged key by key, null removes, anything else replaces. */
export function mergePatch(target: unknown, patch: unknown): unknown {
  if (!isPlainObject(patch)) return patch;
  const out: JsonObject = isPlainObject(target) ? { ...target } : {};
  for (const [k, v] of Object.entries(patch)) {
    if (v === null) delete out[k];
    else out[k] = mergePatch(out[k], v);
  }
  return out;
}

function isPlainObject(v: unknown): v is JsonObject {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** `podway patch KIND NAME -p JSON`: the stored resource, patched, validated as apply validates a
 * file, written only if nobody changed it meanwhile (its resourceVersion), as calicoctl patch. */
async function patchCommand(kindArg: string, nameArg: string, o: DatastoreOpts & { patch: string; namespace: string }, out: Out, err: Out): Promise<void> {
  const info = kindFromArgument(kindArg);
  if (!info.writable) throw new UsageError(`patch: ${info.kind} is IPAM state, not a resource to patch`);
  let patch: unknown;
  try {
    patch = JSON.parse(o.patch);
  } catch (e) {
    throw new UsageError(`patch: --patch is not valid JSON: ${(e as Error).message}`);
  }
  if (!isPlainObject(patch)) throw new UsageError('patch: --patch must be a JSON object, e.g. \'{"spec":{"natOutgoing":true}}\'');
  const ds = writableSpec(o);
  const ns = info.namespaced ? o.namespace : undefined;
  await withKv(ds, async (kv) => {
    const current = await getResource(kv, info, nameArg, ns);
    if (!current) throw new ResourceError('not-found', `resource does not exist: ${describeIdentity({ info, name: nameArg, namespace: ns })}`);
    const patched = mergePatch(current.object, patch) as JsonObject;
    const m = meta(patched);
    // what identifies the resource is not the patch's to change
    if (patched.kind !== info.kind || m.name !== nameArg || (ns !== undefined && (m.namespace ?? 'default') !== ns)) {
      throw new UsageError('patch: kind, metadata.name and metadata.namespace cannot be patched');
    }
    // validated as a file given to apply is (unknown fields, schemas), named as the patch
    const [validated] = resourceFiles().parseResourceText(JSON.stringify({ ...patched, metadata: { ...m, resourceVersion: String(current.entry.modRevision) } }), '<patch>', 'write');
    await replaceResource(kv, validated!.object, { namespace: o.namespace });
  }, false, true);
  out(`Successfully patched 1 '${info.kind}' resource\n`);
  if (ENFORCING_KINDS.has(info.kind)) for (const note of policyNotes([{ kind: info.kind, metadata: { name: nameArg, namespace: ns } }])) err(`${note}\n`);
}

/** `podway get -f FILE`: the resources the file names, read from the datastore, kind by kind in file order. */
async function getFromFile(file: string, o: GetOpts, out: Out, err: Out): Promise<void> {
  const byKind = new Map<string, { names: string[]; namespace?: string }[]>();
  for (const r of readResourceFile(file, 'identity')) {
    const id = peekIdentity(r.object);
    const info = kindInfo(id.kind ?? '');
    if (!info || id.name === undefined) continue;
    const groups = byKind.get(info.kind) ?? [];
    const ns = info.namespaced ? id.namespace ?? o.namespace ?? 'default' : undefined;
    let g = groups.find((x) => x.namespace === ns);
    if (!g) groups.push((g = { names: [], ...(ns !== undefined ? { namespace: ns } : {}) }));
    g.names.push(id.name);
    byKind.set(info.kind, groups);
  }
  let first = true;
  for (const [kind, groups] of byKind) {
    for (const g of groups) {
      if (!first && o.output === 'yaml') out('---\n');
      first = false;
      await getCommand(kind, g.names, { ...o, ...(g.namespace !== undefined ? { namespace: g.namespace } : {}) }, out, err);
    }
  }
}
