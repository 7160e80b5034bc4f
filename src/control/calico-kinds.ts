// The Calico v3 kinds podway reads and writes in Calico's own etcd v3 layout (libcalico-go
// backend/etcdv3 + model): where each kind lives, its names on the command line, and the schema a
// value must pass. IPPool, Node and WorkloadEndpoint use the route calculation's schemas
// (resources.ts); BGPConfiguration, BGPPeer, ClusterInformation, FelixConfiguration and Profile
// get minimal schemas here that check the fields Calico defines and pass every other field through.
//
// Keys: /calico/resources/v3/projectcalico.org/<plural>/[<namespace>/]<name>. Block affinities are
// not v3 resources in etcd but IPAM keys, /calico/ipam/v2/host/<node>/ipv4/block/<a.b.c.d-len>,
// shown as BlockAffinity objects named <node>-<cidr with '.', ':' and '/' as '-'>.
import { z } from 'zod';
import { parseIPv4, parseIPv6Cidr, parseIPv4WithPrefix } from './ipv4';
import { AFFINITY_STATES, BlockAffinity, BlockAffinitySchema, CALICO_API_VERSION, IPPoolSchema, NodeSchema, WorkloadEndpointSchema, objectName } from './resources';
import { describeValue, formatFieldPath, zodIssueMessage } from './zod-messages';

export const RESOURCES_PREFIX = '/calico/resources/v3/projectcalico.org/';
export const HOST_AFFINITY_PREFIX = '/calico/ipam/v2/host/';

const quoted = (v: unknown): string => JSON.stringify(v);

const looseMetadata = z.looseObject({ name: objectName });
const asNumber = z.number().int().min(0).max(4294967295);
const cidrText = z.string().refine((s) => parseIPv4WithPrefix(s) !== null || parseIPv6Cidr(s) !== null, {
  error: (iss) => `expected a CIDR like 10.96.0.0/12, got ${quoted(iss.input)}`,
});
const cidrList = z.array(z.looseObject({ cidr: cidrText }));

/** An IP, or IP:port / [IPv6]:port, as BGPPeer.spec.peerIP allows. */
function isPeerIp(text: string): boolean {
  if (parseIPv4(text) !== null) return true;
  const v4port = /^(\d+\.\d+\.\d+\.\d+):(\d{1,5})$/.exec(text);
  if (v4port) return parseIPv4(v4port[1]) !== null && Number(v4port[2]) <= 65535;
  const v6port = /^\[([0-9a-fA-F:.]+)\]:(\d{1,5})$/.exec(text);
  const v6 = v6port ? v6port[1] : text;
  return v6.includes(':') && parseIPv6Cidr(`${v6}/128`) !== null && (!v6port || Number(v6port[2]) <= 65535);
}

export const BGPConfigurationSchema = z.object({
  apiVersion: z.literal(CALICO_API_VERSION),
  kind: z.literal('BGPConfiguration'),
  metadata: looseMetadata,
  spec: z
    .looseObject({
      logSeverityScreen: z.enum(['Trace', 'Debug', 'Info', 'Warning', 'Error', 'Fatal']).optional(),
      nodeToNodeMeshEnabled: z.boolean().optional(),
      asNumber: asNumber.optional(),
      serviceClusterIPs: cidrList.optional(),
      serviceExternalIPs: cidrList.optional(),
      serviceLoadBalancerIPs: cidrList.optional(),
      listenPort: z.number().int().min(1).max(65535).optional(),
      bindMode: z.enum(['None', 'NodeIP']).optional(),
      nodeMeshPassword: z.looseObject({}).optional(),
      nodeMeshMaxRestartTime: z.string().optional(),
      ignoredInterfaces: z.array(z.string()).optional(),
      communities: z.array(z.looseObject({ name: z.string(), value: z.string() })).optional(),
      prefixAdvertisements: z.array(z.looseObject({ cidr: cidrText })).optional(),
    })
    .default({}),
});

export const BGPPeerSchema = z.object({
  apiVersion: z.literal(CALICO_API_VERSION),
  kind: z.literal('BGPPeer'),
  metadata: looseMetadata,
  spec: z
    .looseObject({
      node: z.string().optional(),
      peerIP: z.string().refine(isPeerIp, { error: (iss) => `expected an IP address (optionally with :port), got ${quoted(iss.input)}` }).optional(),
      asNumber: asNumber.optional(),
      nodeSelector: z.string().optional(),
      peerSelector: z.string().optional(),
      password: z.looseObject({ secretKeyRef: z.looseObject({ name: z.string(), key: z.string() }).optional() }).optional(),
      keepOriginalNextHop: z.boolean().optional(),
      sourceAddress: z.enum(['UseNodeIP', 'None']).optional(),
      maxRestartTime: z.string().optional(),
      numAllowedLocalASNumbers: z.number().int().min(0).optional(),
      ttlSecurity: z.number().int().min(0).max(255).optional(),
      filters: z.array(z.string()).optional(),
    })
    .check((ctx) => {
      // Calico's validator: a peer is peerIP + asNumber, or peerSelector (other Calico nodes).
      const spec = ctx.value;
      if (spec.node && spec.nodeSelector) {
        ctx.issues.push({ code: 'custom', path: ['nodeSelector'], input: spec.nodeSelector, message: 'node and nodeSelector cannot both be set' });
      }
      if (spec.peerSelector) {
        if (spec.peerIP) ctx.issues.push({ code: 'custom', path: ['peerIP'], input: spec.peerIP, message: 'peerIP and peerSelector cannot both be set' });
        if (spec.asNumber !== undefined) ctx.issues.push({ code: 'custom', path: ['asNumber'], input: spec.asNumber, message: 'asNumber and peerSelector cannot both be set' });
      } else {
        if (!spec.peerIP) ctx.issues.push({ code: 'custom', path: ['peerIP'], input: undefined, message: 'required (a string) unless peerSelector is set' });
        if (spec.asNumber === undefined) ctx.issues.push({ code: 'custom', path: ['asNumber'], input: undefined, message: 'required (an integer) unless peerSelector is set' });
      }
    }),
});

export type BGPConfiguration = z.output<typeof BGPConfigurationSchema>;
export type BGPPeer = z.output<typeof BGPPeerSchema>;

export const ClusterInformationSchema = z.object({
  apiVersion: z.literal(CALICO_API_VERSION),
  kind: z.literal('ClusterInformation'),
  metadata: looseMetadata,
  spec: z
    .looseObject({
      clusterGUID: z.string().optional(),
      clusterType: z.string().optional(),
      calicoVersion: z.string().optional(),
      datastoreReady: z.boolean().optional(),
      variant: z.string().optional(),
    })
    .default({}),
});

/** Checked only for shape: podway does not read Felix's settings or profiles' rules. */
export const FelixConfigurationSchema = z.object({
  apiVersion: z.literal(CALICO_API_VERSION),
  kind: z.literal('FelixConfiguration'),
  metadata: looseMetadata,
  spec: z.looseObject({}).default({}),
});

export const ProfileSchema = z.object({
  apiVersion: z.literal(CALICO_API_VERSION),
  kind: z.literal('Profile'),
  metadata: looseMetadata,
  spec: z.looseObject({}).default({}),
});

export interface KindInfo {
  /** The v3 kind, e.g. "IPPool". */
  readonly kind: string;
  /** The etcd key segment, e.g. "ippools" (empty for BlockAffinity, which is an IPAM key). */
  readonly plural: string;
  readonly namespaced: boolean;
  /** Names accepted on the command line (lower case), as calicoctl accepts them. */
  readonly aliases: readonly string[];
  readonly schema: z.ZodType;
  /** False for kinds the CLI only reads (BlockAffinity: IPAM claims blocks). */
  readonly writable: boolean;
}

export const KINDS: readonly KindInfo[] = [
  { kind: 'IPPool', plural: 'ippools', namespaced: false, aliases: ['ippool', 'ippools', 'ipp', 'ipps', 'pool', 'pools'], schema: IPPoolSchema, writable: true },
  { kind: 'Node', plural: 'nodes', namespaced: false, aliases: ['node', 'nodes', 'no', 'nos'], schema: NodeSchema, writable: true },
  {
    kind: 'WorkloadEndpoint', plural: 'workloadendpoints', namespaced: true,
    aliases: ['workloadendpoint', 'workloadendpoints', 'wep', 'weps'], schema: WorkloadEndpointSchema, writable: true,
  },
  {
    kind: 'BlockAffinity', plural: '', namespaced: false,
    aliases: ['blockaffinity', 'blockaffinities', 'affinity', 'affinities', 'aff', 'affs'], schema: BlockAffinitySchema, writable: false,
  },
  {
    kind: 'BGPConfiguration', plural: 'bgpconfigurations', namespaced: false,
    aliases: ['bgpconfiguration', 'bgpconfigurations', 'bgpconfig', 'bgpconfigs'], schema: BGPConfigurationSchema, writable: true,
  },
  { kind: 'BGPPeer', plural: 'bgppeers', namespaced: false, aliases: ['bgppeer', 'bgppeers', 'bgpp', 'bgpps', 'bp', 'bps'], schema: BGPPeerSchema, writable: true },
  {
    kind: 'ClusterInformation', plural: 'clusterinformations', namespaced: false,
    aliases: ['clusterinformation', 'clusterinformations', 'clusterinfo', 'clusterinfos'], schema: ClusterInformationSchema, writable: true,
  },
  {
    kind: 'FelixConfiguration', plural: 'felixconfigurations', namespaced: false,
    aliases: ['felixconfiguration', 'felixconfigurations', 'felixconfig', 'felixconfigs'], schema: FelixConfigurationSchema, writable: true,
  },
  { kind: 'Profile', plural: 'profiles', namespaced: false, aliases: ['profile', 'profiles', 'pro', 'pros'], schema: ProfileSchema, writable: true },
];

export function kindInfo(kind: string): KindInfo | undefined {
  return KINDS.find((k) => k.kind === kind);
}

/** A kind from the command line: an alias (any case) or the kind itself. */
export function kindFromArgument(text: string): KindInfo {
  const lower = text.toLowerCase();
  const found = KINDS.find((k) => k.kind.toLowerCase() === lower || k.aliases.includes(lower));
  if (!found) throw new Error(`unknown resource type ${quoted(text)}; podway knows ${KINDS.map((k) => k.aliases[0]).join(', ')}`);
  return found;
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
 * (affinities written before states existed).
 */
export function blockAffinityFromKv(key: string, value: string): BlockAffinity {
  const m = AFFINITY_KEY.exec(key);
  if (!m) throw new Error('not an affinity key (expected /calico/ipam/v2/host/NODE/ipv4/block/CIDR)');
  const part = m[3];
  const dash = part.lastIndexOf('-');
  const cidr = dash > 0 ? `${part.slice(0, dash)}/${part.slice(dash + 1)}` : part;
  let raw: unknown;
  try {
    raw = JSON.parse(value);
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
  const parsed = BlockAffinitySchema.safeParse({
    apiVersion: CALICO_API_VERSION,
    kind: 'BlockAffinity',
    metadata: { name: blockAffinityName(m[1], cidr) },
    spec: { node: m[1], cidr, state, deleted: v.deleted === true ? 'true' : 'false' },
  });
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    throw new Error(`${issue.path.join('.')}: ${issue.message}`);
  }
  return parsed.data;
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
