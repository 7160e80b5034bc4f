// The zod schemas of the Calico kinds calico-kinds.ts lists that resources.ts does not define
// (BGPConfiguration, BGPPeer, ClusterInformation, FelixConfiguration, IPReservation, Profile), and the schema of
// every kind by name. calico-kinds.ts loads this module only when a value is validated, so naming
// kinds and keys (the CNI plugin's DEL, CHECK, GC) does not load zod.
import { z } from 'zod';
import { asNumberInput } from './as-number';
import { parseCidrOrIp } from './ipam/net';
import { parseIPv4, parseIPv6Cidr, parseIPv4WithPrefix } from './ipv4';
import { STORED_ONLY_KINDS } from './policy-kinds';
import { BlockAffinitySchema, CALICO_API_VERSION, IPPoolSchema, NodeSchema, WorkloadEndpointSchema, objectName } from './resources';
import { goDurationSeconds } from './go-duration';

const quoted = (v: unknown): string => JSON.stringify(v);

const looseMetadata = z.looseObject({ name: objectName });
// AS 0 (reserved, RFC 7607) loads, as it did before podway refused it: stored data must not vanish
// from the snapshot. `podway apply` refuses it (cli/resource-files.ts); the BGP plan treats it as
// unset (Node, BGPConfiguration) or skips the peer (BGPPeer), with a warning (bgp/peering.ts).
// A number, or a string holding one or asdot "1.10", as Calico's numorstring.ASNumber (as-number.ts).
const asNumber = z.preprocess(asNumberInput, z.number().int().min(0).max(4294967295));
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
      maxRestartTime: z.string().refine((t) => goDurationSeconds(t) !== null, { error: (iss) => `expected a duration like 120s or 2m, got ${quoted(iss.input)}` }).optional(),
      keepaliveTime: z.string().refine((t) => goDurationSeconds(t) !== null, { error: (iss) => `expected a duration like 30s or 1m, got ${quoted(iss.input)}` }).optional(),
      nextHopMode: z.enum(['Auto', 'Self', 'Keep']).optional(),
      reversePeering: z.enum(['Auto', 'Manual']).optional(),
      numAllowedLocalASNumbers: z.number().int().min(0).optional(),
      ttlSecurity: z.number().int().min(0).max(255).optional(),
      filters: z.array(objectName).optional(),
      localASNumber: asNumber.optional(),
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

/**
 * BGPFilter (Calico v3.26+; bgp/filters.ts applies it): ordered rules per direction and family.
 * As Calico's validation and CRD: `cidr` of the rule's family (host bits allowed, as Go's
 * ParseCIDR takes them), `cidr` and `matchOperator` both or neither, `prefixLength` only with a
 * `cidr` (min and max 0..32 or 0..128), `source` RemotePeers, `interface` a name or pattern of
 * [a-zA-Z0-9_.*-] up to 15 characters, `action` Accept or Reject, `operations` only with Accept.
 * The fields of newer releases (peerType, communities, asPathPrefix, priority, operations) load.
 */
function bgpFilterRule(family: 4 | 6) {
  const max = family === 4 ? 32 : 128;
  const length = z.number().int().min(0).max(max);
  return z
    .looseObject({
      cidr: z.string().refine((s) => s === '' || (family === 4 ? parseIPv4WithPrefix(s) !== null && s.includes('/') : s.includes(':') && parseIPv6Cidr(s) !== null), {
        error: (iss) => `expected an IPv${family} CIDR like ${family === 4 ? '10.0.0.0/8' : 'fd00::/8'}, got ${quoted(iss.input)}`,
      }).optional(),
      matchOperator: z.enum(['Equal', 'NotEqual', 'In', 'NotIn']).optional(),
      prefixLength: z.looseObject({ min: length.optional(), max: length.optional() }).optional(),
      source: z.enum(['RemotePeers']).optional(),
      interface: z.string().refine((s) => s === '*' || /^[a-zA-Z0-9_.*-]{1,15}$/.test(s), {
        error: (iss) => `expected an interface name or pattern (letters, digits, _ . * -, at most 15), got ${quoted(iss.input)}`,
      }).optional(),
      peerType: z.enum(['eBGP', 'iBGP']).optional(),
      communities: z.looseObject({ values: z.array(z.string().regex(/^\d+:\d+(:\d+)?$/, { error: 'expected a community aa:nn or aa:nn:mm' })).min(1).max(1) }).optional(),
      asPathPrefix: z.array(asNumber).optional(),
      priority: z.number().int().min(1).max(2147483646).optional(),
      action: z.enum(['Accept', 'Reject']),
      operations: z.array(z.looseObject({})).min(1).max(10).optional(),
    })
    .check((ctx) => {
      const r = ctx.value;
      const hasCidr = r.cidr !== undefined && r.cidr !== '';
      if (hasCidr && !r.matchOperator) ctx.issues.push({ code: 'custom', path: ['matchOperator'], input: undefined, message: 'required with cidr (Equal, NotEqual, In or NotIn): cidr and matchOperator must both be set or both be empty' });
      if (!hasCidr && r.matchOperator) ctx.issues.push({ code: 'custom', path: ['cidr'], input: undefined, message: 'required with matchOperator: cidr and matchOperator must both be set or both be empty' });
      if (r.prefixLength !== undefined && !hasCidr) ctx.issues.push({ code: 'custom', path: ['prefixLength'], input: r.prefixLength, message: 'cidr is required when prefixLength is set' });
      // The prefix set BIRD gets is CIDR{max(len, min), min(max, 32|128)}: an empty range is a
      // filter that can never match (In) or always does (NotIn); BIRD refuses such a set.
      if (r.prefixLength !== undefined && hasCidr) {
        const len = Number(/\/(\d+)$/.exec(r.cidr!)?.[1] ?? NaN);
        const lo = Math.max(len, r.prefixLength.min ?? 0);
        const hi = Math.min(max, r.prefixLength.max ?? max);
        if (Number.isInteger(len) && lo > hi) {
          ctx.issues.push({ code: 'custom', path: ['prefixLength'], input: r.prefixLength, message: `an empty range: min ${lo} is above max ${hi} (min is at least the cidr's own length ${len}, max at most ${max}); no prefix length can match` });
        }
      }
      if (r.operations?.length && r.action !== 'Accept') ctx.issues.push({ code: 'custom', path: ['operations'], input: r.operations, message: 'operations may only be used with action Accept' });
    });
}

export const BGPFilterSchema = z.object({
  apiVersion: z.literal(CALICO_API_VERSION),
  kind: z.literal('BGPFilter'),
  metadata: looseMetadata,
  spec: z
    .looseObject({
      exportV4: z.array(bgpFilterRule(4)).optional(),
      importV4: z.array(bgpFilterRule(4)).optional(),
      exportV6: z.array(bgpFilterRule(6)).optional(),
      importV6: z.array(bgpFilterRule(6)).optional(),
    })
    .default({}),
});

export type BGPFilter = z.output<typeof BGPFilterSchema>;

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

/**
 * IPAMConfiguration (one, named "default": ipam-configuration.ts): the fields of Calico's
 * IPAMConfigurationSpec, typed as its Go struct reads them (maxBlocksPerHost and
 * ipCooldownSeconds int32, at least 0 as libcalico-go's validateIPAMConfigSpec requires; the
 * cooldown at most 1200 and the persistence Enabled or Disabled, as its CRD says).
 */
export const IPAMConfigurationSchema = z.object({
  apiVersion: z.literal(CALICO_API_VERSION),
  kind: z.literal('IPAMConfiguration'),
  metadata: looseMetadata,
  spec: z
    .looseObject({
      strictAffinity: z.boolean().optional(),
      maxBlocksPerHost: z.number().int().min(0).max(2147483647).optional(),
      autoAllocateBlocks: z.boolean().optional(),
      kubeVirtVMAddressPersistence: z.enum(['Enabled', 'Disabled']).optional(),
      ipCooldownSeconds: z.number().int().min(0).max(1200).optional(),
    })
    .default({}),
});

/**
 * IPReservation (Calico v3.22+): addresses IPAM's automatic assignment must not hand out. Each
 * entry of spec.reservedCIDRs is an IPv4 or IPv6 CIDR, host bits allowed, or a bare address, as
 * libcalico-go's "cidrs" validator (ParseCIDROrIP) accepts them.
 */
export const IPReservationSchema = z.object({
  apiVersion: z.literal(CALICO_API_VERSION),
  kind: z.literal('IPReservation'),
  metadata: looseMetadata,
  spec: z
    .looseObject({
      reservedCIDRs: z
        .array(z.string().refine((s) => parseCidrOrIp(s) !== null, {
          error: (iss) => `expected a CIDR or IP address like 10.244.0.0/24, 10.244.0.7 or fd00::/120, got ${quoted(iss.input)}`,
        }))
        .optional(),
    })
    .default({}),
});

/** Checked only for shape here: `podway run` reads the fields it has an equivalent of, each
 * checked on its own (cli/felix-settings.ts), so one bad field does not drop the others. */
export const FelixConfigurationSchema = z.object({
  apiVersion: z.literal(CALICO_API_VERSION),
  kind: z.literal('FelixConfiguration'),
  metadata: looseMetadata,
  spec: z.looseObject({}).default({}),
});

export type FelixConfiguration = z.infer<typeof FelixConfigurationSchema>;

export const ProfileSchema = z.object({
  apiVersion: z.literal(CALICO_API_VERSION),
  kind: z.literal('Profile'),
  metadata: looseMetadata,
  spec: z.looseObject({}).default({}),
});

/**
 * A kind podway stores in Calico's layout but never acts on (policy-kinds.ts): its metadata
 * checked (name; namespace for namespaced kinds, as calicoctl defaults it), its spec a mapping
 * passed through as written (Calico's own validation of selectors and rules is not repeated:
 * nothing here reads them).
 */
function storedOnlySchema(kind: string) {
  return z.object({
    apiVersion: z.literal(CALICO_API_VERSION),
    kind: z.literal(kind),
    metadata: looseMetadata,
    spec: z.looseObject({}).default({}),
  });
}

/** The schema a value of each kind must pass. */
export const SCHEMA_OF_KIND: Readonly<Record<string, z.ZodType>> = {
  IPPool: IPPoolSchema,
  Node: NodeSchema,
  WorkloadEndpoint: WorkloadEndpointSchema,
  BlockAffinity: BlockAffinitySchema,
  BGPConfiguration: BGPConfigurationSchema,
  BGPPeer: BGPPeerSchema,
  BGPFilter: BGPFilterSchema,
  ClusterInformation: ClusterInformationSchema,
  IPAMConfiguration: IPAMConfigurationSchema,
  FelixConfiguration: FelixConfigurationSchema,
  IPReservation: IPReservationSchema,
  Profile: ProfileSchema,
  // Calico's kube-controllers reads it; nothing in podway does (its spec passed through as written).
  KubeControllersConfiguration: storedOnlySchema('KubeControllersConfiguration'),
  ...Object.fromEntries(STORED_ONLY_KINDS.map((k) => [k, storedOnlySchema(k)])),
};
