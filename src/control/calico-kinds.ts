// The Calico v3 kinds podway reads and writes in Calico's own etcd v3 layout (libcalico-go
// backend/etcdv3 + model): where each kind lives, its names on the command line, and the schema a
// value must pass. IPPool, Node and WorkloadEndpoint use the route calculation's schemas
// (resources.ts); BGPConfiguration, BGPPeer, ClusterInformation, FelixConfiguration, IPReservation
// and Profile get minimal schemas (calico-kind-schemas.ts) that check the fields Calico defines and pass every other field through.
//
// Keys: /calico/resources/v3/projectcalico.org/<plural>/[<namespace>/]<name>. Block affinities are
// not v3 resources in etcd but IPAM keys, /calico/ipam/v2/host/<node>/ipv4/block/<a.b.c.d-len>,
// shown as BlockAffinity objects named <node>-<cidr with '.', ':' and '/' as '-'>.
//
// The schemas themselves (zod) are in calico-kind-schemas.ts, required on the first validation:
// loading zod costs a short-lived process such as the CNI plugin ~40 ms, and most of what it does
// (DEL, CHECK, GC, STATUS) only names kinds and keys.
import type { z } from 'zod';
import type { BlockAffinity } from './resources';
import { AFFINITY_STATES, CALICO_API_VERSION } from './resource-names';
import { describeValue, formatFieldPath, zodIssueMessage } from './zod-messages';
import { editDistance } from '../util/edit-distance';

// Types of the schemas moved to calico-kind-schemas.ts (type-only: nothing is loaded for them).
export type { BGPConfiguration, BGPFilter, BGPPeer } from './calico-kind-schemas';

export const RESOURCES_PREFIX = '/calico/resources/v3/projectcalico.org/';
export const HOST_AFFINITY_PREFIX = '/calico/ipam/v2/host/';

const quoted = (v: unknown): string => JSON.stringify(v);

export interface KindInfo {
  /** The v3 kind, e.g. "IPPool". */
  readonly kind: string;
  /** The etcd key segment, e.g. "ippools" (empty for BlockAffinity, which is an IPAM key). */
  readonly plural: string;
  readonly namespaced: boolean;
  /** Names accepted on the command line (lower case), as calicoctl accepts them. */
  readonly aliases: readonly string[];
  /** The schema a value must pass (zod: loaded on first use). */
  readonly schema: z.ZodType;
  /** False for kinds the CLI only reads (BlockAffinity: IPAM claims blocks). */
  readonly writable: boolean;
}

type KindFacts = Omit<KindInfo, 'schema'>;

let schemaModule: typeof import('./calico-kind-schemas') | undefined;
/** calico-kind-schemas.ts, required on first use (a plain require keeps the call synchronous). */
function schemas(): typeof import('./calico-kind-schemas') {
  return (schemaModule ??= require('./calico-kind-schemas') as typeof import('./calico-kind-schemas'));
}

/** The kinds whose schemas resources.ts defines (the same objects SCHEMA_OF_KIND lists). */
const MODEL_KIND_NAMES: ReadonlySet<string> = new Set(['IPPool', 'Node', 'WorkloadEndpoint', 'BlockAffinity']);

/**
 * A kind's schema, from resources.ts for IPPool, Node, WorkloadEndpoint and BlockAffinity, so that
 * validating those (the CNI plugin's ADD: its pools, Node and WorkloadEndpoint) does not build the
 * other six kinds' schemas too (calico-kind-schemas.ts: 10-15 ms of CPU in a fresh process).
 */
function schemaOf(kind: string): z.ZodType {
  if (MODEL_KIND_NAMES.has(kind)) return ((require('./resources') as typeof import('./resources')).SCHEMA_BY_KIND as Readonly<Record<string, z.ZodType>>)[kind]!;
  return schemas().SCHEMA_OF_KIND[kind]!;
}

/** A kind whose `schema` is looked up when first read. */
function kind(facts: KindFacts): KindInfo {
  return Object.defineProperty({ ...facts }, 'schema', { get: () => schemaOf(facts.kind), enumerable: true }) as KindInfo;
}

export const KINDS: readonly KindInfo[] = [
  kind({ kind: 'IPPool', plural: 'ippools', namespaced: false, aliases: ['ippool', 'ippools', 'ipp', 'ipps', 'pool', 'pools'], writable: true }),
  kind({ kind: 'Node', plural: 'nodes', namespaced: false, aliases: ['node', 'nodes', 'no', 'nos'], writable: true }),
  kind({
    kind: 'WorkloadEndpoint', plural: 'workloadendpoints', namespaced: true,
    aliases: ['workloadendpoint', 'workloadendpoints', 'wep', 'weps'], writable: true,
  }),
  kind({
    kind: 'BlockAffinity', plural: '', namespaced: false,
    aliases: ['blockaffinity', 'blockaffinities', 'affinity', 'affinities', 'aff', 'affs'], writable: false,
  }),
  kind({
    kind: 'BGPConfiguration', plural: 'bgpconfigurations', namespaced: false,
    aliases: ['bgpconfiguration', 'bgpconfigurations', 'bgpconfig', 'bgpconfigs'], writable: true,
  }),
  kind({ kind: 'BGPPeer', plural: 'bgppeers', namespaced: false, aliases: ['bgppeer', 'bgppeers', 'bgpp', 'bgpps', 'bp', 'bps'], writable: true }),
  kind({ kind: 'BGPFilter', plural: 'bgpfilters', namespaced: false, aliases: ['bgpfilter', 'bgpfilters', 'bgpf', 'bgpfs', 'bf', 'bfs'], writable: true }),
  kind({
    kind: 'ClusterInformation', plural: 'clusterinformations', namespaced: false,
    aliases: ['clusterinformation', 'clusterinformations', 'clusterinfo', 'clusterinfos'], writable: true,
  }),
  kind({
    kind: 'FelixConfiguration', plural: 'felixconfigurations', namespaced: false,
    aliases: ['felixconfiguration', 'felixconfigurations', 'felixconfig', 'felixconfigs'], writable: true,
  }),
  kind({
    kind: 'IPReservation', plural: 'ipreservations', namespaced: false,
    aliases: ['ipreservation', 'ipreservations', 'reservation', 'reservations'], writable: true,
  }),
  kind({ kind: 'Profile', plural: 'profiles', namespaced: false, aliases: ['profile', 'profiles', 'pro', 'pros'], writable: true }),
  // IPAM's configuration: one resource, "default", kept with /calico/ipam/v2/config (ipam-configuration.ts)
  kind({
    kind: 'IPAMConfiguration', plural: 'ipamconfigurations', namespaced: false,
    aliases: ['ipamconfiguration', 'ipamconfigurations', 'ipamconfig', 'ipamconfigs'], writable: true,
  }),
  // Stored for Calico's kube-controllers, which podway has no equivalent of (apply says so).
  kind({
    kind: 'KubeControllersConfiguration', plural: 'kubecontrollersconfigurations', namespaced: false,
    aliases: ['kubecontrollersconfiguration', 'kubecontrollersconfigurations', 'kubecontrollersconfig', 'kubecontrollersconfigs'], writable: true,
  }),
  // Network policy and the kinds it selects with: stored in Calico's layout, never enforced
  // (policy-kinds.ts; docs/calico-differences.md "Network policy: not enforced").
  kind({
    kind: 'GlobalNetworkPolicy', plural: 'globalnetworkpolicies', namespaced: false,
    aliases: ['globalnetworkpolicy', 'globalnetworkpolicies', 'gnp', 'gnps', 'globalpolicy', 'globalpolicies'], writable: true,
  }),
  kind({
    kind: 'NetworkPolicy', plural: 'networkpolicies', namespaced: true,
    aliases: ['networkpolicy', 'networkpolicies', 'policy', 'policies', 'pol', 'pols', 'np', 'nps'], writable: true,
  }),
  kind({
    kind: 'StagedGlobalNetworkPolicy', plural: 'stagedglobalnetworkpolicies', namespaced: false,
    aliases: ['stagedglobalnetworkpolicy', 'stagedglobalnetworkpolicies', 'sgnp', 'sgnps'], writable: true,
  }),
  kind({
    kind: 'StagedNetworkPolicy', plural: 'stagednetworkpolicies', namespaced: true,
    aliases: ['stagednetworkpolicy', 'stagednetworkpolicies', 'snp', 'snps'], writable: true,
  }),
  kind({
    kind: 'StagedKubernetesNetworkPolicy', plural: 'stagedkubernetesnetworkpolicies', namespaced: true,
    aliases: ['stagedkubernetesnetworkpolicy', 'stagedkubernetesnetworkpolicies', 'sknp', 'sknps'], writable: true,
  }),
  kind({ kind: 'Tier', plural: 'tiers', namespaced: false, aliases: ['tier', 'tiers'], writable: true }),
  kind({ kind: 'HostEndpoint', plural: 'hostendpoints', namespaced: false, aliases: ['hostendpoint', 'hostendpoints', 'hep', 'heps'], writable: true }),
  kind({ kind: 'GlobalNetworkSet', plural: 'globalnetworksets', namespaced: false, aliases: ['globalnetworkset', 'globalnetworksets'], writable: true }),
  kind({ kind: 'NetworkSet', plural: 'networksets', namespaced: true, aliases: ['networkset', 'networksets', 'netset', 'netsets'], writable: true }),
];

export function kindInfo(kind: string): KindInfo | undefined {
  return KINDS.find((k) => k.kind === kind);
}

/** A kind from the command line: an alias (any case) or the kind itself. */
export function kindFromArgument(text: string): KindInfo {
  const lower = text.toLowerCase();
  const found = KINDS.find((k) => k.kind.toLowerCase() === lower || k.aliases.includes(lower));
  if (!found) {
    const near = nearestAlias(lower);
    // each kind with its short names (the aliases list singular, plural pairs: the singulars)
    const known = KINDS.map((k) => {
      const short = k.aliases.filter((a, i) => i > 0 && i % 2 === 0);
      return short.length ? `${k.aliases[0]} (${short.join(', ')})` : k.aliases[0];
    }).join(', ');
    throw new Error(`unknown resource type ${quoted(text)}${near ? ` (did you mean ${near}?)` : ''}; podway knows ${known}; each in the plural too (ippools, weps)`);
  }
  return found;
}

/** The alias nearest to `text` (optimal string alignment distance: at most 1, or 2 from 5 letters), if one is. */
function nearestAlias(text: string): string | null {
  if (text.length > 64) return null; // a command-line word, not a text to align
  const max = text.length >= 5 ? 2 : 1;
  let best: string | null = null;
  let bestD = max + 1;
  for (const k of KINDS) {
    for (const a of k.aliases) {
      const d = editDistance(text, a, max, true);
      if (d < bestD) {
        best = a;
        bestD = d;
      }
    }
  }
  return best;
}

export function resourceKey(info: KindInfo, name: string, namespace?: string): string {
  if (!info.plural) throw new Error(`${info.kind} is not stored as a v3 resource`);
  if (name === '' || name.includes('/')) throw new Error(`invalid ${info.kind} name ${quoted(name)}`);
  if (!info.namespaced) return `${RESOURCES_PREFIX}${info.plural}/${name}`;
  const ns = namespace || 'default';
  if (ns.includes('/')) throw new Error(`invalid namespace ${quoted(ns)}`);
  return `${RESOURCES_PREFIX}${info.plural}/${ns}/${name}`;
}

/** The key prefix of one kind (and namespace, when given). */
export function kindPrefix(info: KindInfo, namespace?: string): string {
  if (!info.plural) return HOST_AFFINITY_PREFIX;
  return info.namespaced && namespace ? `${RESOURCES_PREFIX}${info.plural}/${namespace}/` : `${RESOURCES_PREFIX}${info.plural}/`;
}

/** Which kind (and namespace/name) a resource key holds; null for keys of other kinds or shapes. */
export function parseResourceKey(key: string): { info: KindInfo; namespace?: string; name: string } | null {
  if (!key.startsWith(RESOURCES_PREFIX)) return null;
  const parts = key.slice(RESOURCES_PREFIX.length).split('/');
  const info = KINDS.find((k) => k.plural !== '' && k.plural === parts[0]);
  if (!info) return null;
  if (info.namespaced) return parts.length === 3 && parts[1] && parts[2] ? { info, namespace: parts[1], name: parts[2] } : null;
  return parts.length === 2 && parts[1] ? { info, name: parts[1] } : null;
}

const AFFINITY_KEY = /^\/calico\/ipam\/v2\/host\/([^/]+)\/ipv([46])\/block\/([^/]+)$/;

/** Calico's v3 name of a block affinity: node and CIDR joined, '.', ':' and '/' as '-'. */
export function blockAffinityName(node: string, cidr: string): string {
  return `${node}-${cidr.replace(/[.:/]/g, '-')}`;
}

/**
 * A BlockAffinity object from an IPAM affinity key and value. Throws an error naming the field
 * when the key or value is malformed. An empty or missing state means confirmed, as in Calico
 * (affinities written before states existed); so does an empty value (stored before affinities had
 * values: libcalico-go reads it as {}).
 */
export function blockAffinityFromKv(key: string, value: string): BlockAffinity {
  const m = AFFINITY_KEY.exec(key);
  if (!m) throw new Error('not an affinity key (expected /calico/ipam/v2/host/NODE/ipv4/block/CIDR)');
  const part = m[3];
  const dash = part.lastIndexOf('-');
  const cidr = dash > 0 ? `${part.slice(0, dash)}/${part.slice(dash + 1)}` : part;
  let raw: unknown;
  try {
    raw = JSON.parse(value === '' ? '{}' : value);
  } catch (e) {
    throw new Error(`value: not valid JSON (${(e as Error).message})`);
  }
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw new Error('value: expected a JSON object');
  const v = raw as { state?: unknown; deleted?: unknown };
  const state = v.state === undefined || v.state === '' ? 'confirmed' : v.state;
  if (typeof state !== 'string' || !(AFFINITY_STATES as readonly string[]).includes(state)) {
    throw new Error(`state: expected one of ${AFFINITY_STATES.join('|')}, got ${quoted(v.state)}`);
  }
  if (v.deleted !== undefined && typeof v.deleted !== 'boolean') throw new Error(`deleted: expected true or false, got ${quoted(v.deleted)}`);
  const parsed = schemaOf('BlockAffinity').safeParse({
    apiVersion: CALICO_API_VERSION,
    kind: 'BlockAffinity',
    metadata: { name: blockAffinityName(m[1], cidr) },
    spec: { node: m[1], cidr, state, deleted: v.deleted === true ? 'true' : 'false' },
  });
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    throw new Error(`${issue.path.join('.')}: ${issue.message}`);
  }
  return parsed.data as BlockAffinity;
}

// ---------------------------------------------------------------------------------------------
// Validating one resource, with problems worded as snapshot.ts words them (field path + message).

export interface FieldIssue {
  /** Dotted field path, e.g. "spec.cidr"; empty for the object as a whole. */
  readonly path: string;
  readonly message: string;
}

function isMapping(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

export type ValidationResult =
  | { readonly ok: true; readonly info: KindInfo; readonly value: unknown }
  | { readonly ok: false; readonly issues: readonly FieldIssue[] };

/** Checks apiVersion, kind and the kind's schema; `value` is the schema's output (defaults applied). */
export function validateResource(raw: unknown): ValidationResult {
  if (!isMapping(raw)) return { ok: false, issues: [{ path: '', message: `expected a mapping with apiVersion, kind, metadata and spec, got ${describeValue(raw)}` }] };
  if (raw.apiVersion !== CALICO_API_VERSION) {
    return { ok: false, issues: [{ path: 'apiVersion', message: `expected ${JSON.stringify(CALICO_API_VERSION)}, got ${describeValue(raw.apiVersion)}` }] };
  }
  if (typeof raw.kind !== 'string') {
    return { ok: false, issues: [{ path: 'kind', message: raw.kind === undefined ? 'required (a string)' : `expected a string, got ${describeValue(raw.kind)}` }] };
  }
  const info = kindInfo(raw.kind);
  if (!info) return { ok: false, issues: [{ path: 'kind', message: `unknown kind ${quoted(raw.kind)} (podway knows ${KINDS.map((k) => k.kind).join(', ')})` }] };
  const result = info.schema.safeParse(raw, { reportInput: true });
  if (!result.success) {
    return { ok: false, issues: result.error.issues.map((zi) => ({ path: formatFieldPath(zi.path), message: zodIssueMessage(zi) })) };
  }
  return { ok: true, info, value: result.data };
}

/** Best-effort kind and name of a possibly invalid document, for error messages. */
export function peekIdentity(raw: unknown): { kind?: string; name?: string; namespace?: string } {
  if (!isMapping(raw)) return {};
  const meta = isMapping(raw.metadata) ? raw.metadata : {};
  return {
    kind: typeof raw.kind === 'string' ? raw.kind : undefined,
    name: typeof meta.name === 'string' ? meta.name : undefined,
    namespace: typeof meta.namespace === 'string' ? meta.namespace : undefined,
  };
}
