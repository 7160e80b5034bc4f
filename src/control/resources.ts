// Zod schemas for the Calico v3 resources podway reads, in the shape `calicoctl get -o yaml` prints
// them: { apiVersion: projectcalico.org/v3, kind, metadata: { name, ... }, spec }.
//
// Fields podway does not use (metadata.uid, spec.orchRefs, spec.profiles, ...) are accepted and
// dropped, so real calicoctl output loads unchanged; fields Calico does not define either are typos,
// refused where a person wrote the resource (calico-fields.ts). Fields it does use are checked strictly and
// defaults are applied here, so later stages never see a missing mode or block size.
import { INTERFACE_NETNS_ANNOTATION, INTERFACE_TYPE_ANNOTATION } from './wep-interface';
import { z } from 'zod';
import { asNumberInput } from './as-number';
import { parseIPv4, parseIPv4Cidr, parseIPv4WithPrefix, parseIPv6Cidr } from './ipv4';
import { netsOverlap, parseNet } from './ipam/net';
import { isMacText, normalizeMac } from './mac';
import { AFFINITY_STATES, CALICO_API_VERSION, INTERFACE_TYPES, MAX_IFNAME_LEN, NAME_PATTERN } from './resource-names';

// Zod-free names and rules, re-exported for the modules that import them from here.
export { AFFINITY_STATES, CALICO_API_VERSION, INTERFACE_TYPES, validateNodeName } from './resource-names';
export type { AffinityState, InterfaceType } from './resource-names';

/** Kinds podway understands. */
export const MODEL_KINDS = ['IPPool', 'Node', 'BlockAffinity', 'WorkloadEndpoint'] as const;
export type ModelKind = (typeof MODEL_KINDS)[number];

/**
 * Other Calico kinds that may legitimately sit in a dumped datastore file. They are skipped rather
 * than rejected; any other kind is an error, so that a typo such as `kind: IPpool` is not ignored.
 */
export const IGNORED_KINDS: ReadonlySet<string> = new Set([
  'BGPConfiguration', 'BGPFilter', 'BGPPeer', 'CalicoNodeStatus', 'ClusterInformation',
  'FelixConfiguration', 'GlobalNetworkPolicy', 'GlobalNetworkSet', 'HostEndpoint', 'IPAMConfiguration',
  'IPReservation', 'KubeControllersConfiguration', 'NetworkPolicy', 'NetworkSet', 'Profile', 'Tier',
  'StagedNetworkPolicy', 'StagedGlobalNetworkPolicy', 'StagedKubernetesNetworkPolicy',
]);

export const ENCAP_MODES = ['Never', 'Always', 'CrossSubnet'] as const;
export type EncapMode = (typeof ENCAP_MODES)[number];

/**
 * IPPool spec.allowedUses values (Calico's IPPoolAllowedUse). Absent or empty means
 * [Workload, Tunnel], as libcalico-go's convertIpPoolFromStorage defaults it.
 */
export const POOL_USES = ['Workload', 'Tunnel', 'LoadBalancer'] as const;
export type PoolUse = (typeof POOL_USES)[number];

/** IPPool spec.assignmentMode values (Calico's AssignmentMode); absent means Automatic. */
export const POOL_ASSIGNMENT_MODES = ['Automatic', 'Manual'] as const;
export type PoolAssignmentMode = (typeof POOL_ASSIGNMENT_MODES)[number];

const quoted = (v: unknown): string => JSON.stringify(v);

/** A resource name: a lowercase DNS name, as Kubernetes and Calico require. */
export const objectName = z
  .string()
  .min(1)
  .max(253)
  .refine((s) => NAME_PATTERN.test(s), {
    error: (iss) => `expected a lowercase DNS name (a-z, 0-9, '-', '.'), got ${quoted(iss.input)}`,
  });

const metadata = z.object({ name: objectName });

/** A canonical IPv4 or IPv6 network CIDR (host bits clear). */
const networkCidr = z.string().check((ctx) => {
  const text = ctx.value;
  if (text.includes(':')) {
    // Host bits and spelling are checked where pools are written and in a YAML file
    // (ipv6CidrProblem), not here: a pool an older podway stored must still load.
    if (!parseIPv6Cidr(text)) ctx.issues.push({ code: 'custom', input: text, message: `expected an IPv6 CIDR, got ${quoted(text)}` });
    return;
  }
  const withPrefix = parseIPv4WithPrefix(text);
  if (!withPrefix) {
    ctx.issues.push({ code: 'custom', input: text, message: `expected a CIDR like 10.244.0.0/16, got ${quoted(text)}` });
  } else if (!parseIPv4Cidr(text)) {
    ctx.issues.push({ code: 'custom', input: text, message: `${quoted(text)} has host bits set` });
  }
});

const ipv4Address = z.string().refine((s) => parseIPv4(s) !== null, {
  error: (iss) => `expected an IPv4 address, got ${quoted(iss.input)}`,
});

/** Node.spec.bgp.ipv4Address: the node IP with its subnet ("10.99.0.1/24"); a bare IP means /32. */
const ipv4AddressWithSubnet = z.string().refine((s) => parseIPv4(s) !== null || parseIPv4WithPrefix(s) !== null, {
  error: (iss) => `expected an IPv4 address with prefix length like 10.99.0.1/24, got ${quoted(iss.input)}`,
});

const macAddress = z
  .string()
  .refine(isMacText, { error: (iss) => `expected a MAC address like 66:0a:1b:2c:3d:4e, got ${quoted(iss.input)}` })
  .transform(normalizeMac);

/** A plain IPv6 address (no prefix), e.g. Node.spec.ipv6VXLANTunnelAddr. */
const ipv6Address = z.string().check((ctx) => {
  if (ctx.value.includes('/') || !parseIPv6Cidr(`${ctx.value}/128`)) {
    ctx.issues.push({ code: 'custom', input: ctx.value, message: `expected an IPv6 address, got ${quoted(ctx.value)}` });
  }
});

/** A workload address: IPv4 /32 or IPv6 /128, as Calico's ipNetworks hold them. */
const hostCidr = z.string().check((ctx) => {
  const text = ctx.value;
  const v6 = text.includes(':') ? parseIPv6Cidr(text) : null;
  const v4 = text.includes(':') ? null : parseIPv4WithPrefix(text);
  if (!(v4 && v4.prefixLen === 32) && !(v6 && v6.prefixLen === 128)) {
    ctx.issues.push({ code: 'custom', input: text, message: `expected an IPv4 /32 (or IPv6 /128), got ${quoted(text)}` });
  }
});

const encapMode = z.enum(ENCAP_MODES);

// ---------------------------------------------------------------------------------------------
// IPPool

const ipPoolSpec = z
  .object({
    cidr: networkCidr,
    // Default depends on the pool's family (26 for IPv4, 122 for IPv6), so it is filled in below.
    blockSize: z.number().int().optional(),
    // An empty mode is Never, as libcalico-go reads and writes one (convertIpPoolFromStorage,
    // validateAndSetDefaults: `len(IPIPMode) == 0` -> Never).
    ipipMode: z.preprocess((v) => (v === '' ? undefined : v), encapMode.default('Never')),
    vxlanMode: z.preprocess((v) => (v === '' ? undefined : v), encapMode.default('Never')),
    natOutgoing: z.boolean().default(false),
    disabled: z.boolean().default(false),
    disableBGPExport: z.boolean().default(false),
    nodeSelector: z.string().default('all()'),
    // Which addresses IPAM may take from the pool: pod addresses (Workload), tunnel addresses
    // (Tunnel); LoadBalancer pools are for service addresses, which podway does not assign.
    allowedUses: z.array(z.string()).optional(),
    // Calico v3.30+: Automatic (absent: the default) pools give addresses to any request; a
    // Manual pool only when the request names it (the CNI config's ipv4_pools/ipv6_pools,
    // `ipam assign --pool`) or asks for one of its addresses (libcalico-go's determinePools).
    assignmentMode: z.enum(POOL_ASSIGNMENT_MODES).optional(),
  })
  .check((ctx) => {
    const spec = ctx.value;
    // As libcalico-go's validateIPPoolSpec (lib/validator/v3): every use one of the three, and
    // LoadBalancer neither combined with Workload/Tunnel nor on an encapsulated pool.
    const uses = spec.allowedUses ?? [];
    uses.forEach((u, i) => {
      if (!(POOL_USES as readonly string[]).includes(u)) {
        ctx.issues.push({ code: 'custom', path: ['allowedUses', i], input: u, message: `unknown use ${quoted(u)}: expected one of ${POOL_USES.join(', ')}` });
      }
    });
    if (uses.includes('LoadBalancer')) {
      const other = uses.find((u) => u === 'Workload' || u === 'Tunnel');
      if (other) ctx.issues.push({ code: 'custom', path: ['allowedUses'], input: uses, message: `LoadBalancer cannot be used at the same time as ${other}` });
      if (spec.ipipMode !== 'Never' || spec.vxlanMode !== 'Never') {
        ctx.issues.push({ code: 'custom', path: ['allowedUses'], input: uses, message: 'a LoadBalancer pool cannot have ipipMode or vxlanMode enabled' });
      }
    }
    const isV6 = spec.cidr.includes(':');
    let sizeOk = true;
    if (spec.blockSize !== undefined) {
      const [min, max] = isV6 ? [116, 128] : [20, 32];
      if (spec.blockSize < min || spec.blockSize > max) {
        sizeOk = false;
        ctx.issues.push({
          code: 'custom', path: ['blockSize'], input: spec.blockSize,
          message: `expected ${min} to ${max} for an ${isV6 ? 'IPv6' : 'IPv4'} pool, got ${spec.blockSize}`,
        });
      }
    }
    const blockSize = spec.blockSize ?? (isV6 ? 122 : 26);
    const prefixLen = Number(spec.cidr.split('/')[1]);
    // Only against a block size that is valid for the family: a /26 for an IPv6 pool is one error, not two.
    if (sizeOk && prefixLen > blockSize) {
      ctx.issues.push({
        code: 'custom', path: ['cidr'], input: spec.cidr,
        message: `pool ${spec.cidr} is smaller than one block (/${blockSize})`,
      });
    }
    // libcalico-go's validateIPPoolSpec: a pool may not overlap the link-local ranges (a
    // 169.254 pool would also hold 169.254.1.1, the gateway every pod is given). Calico refuses no
    // other range (loopback, multicast) there, and neither does podway.
    const net = parseNet(spec.cidr);
    if (net) {
      const [linkLocal, family] = net.version === 4 ? ['169.254.0.0/16', 'IPv4'] : ['fe80::/10', 'IPv6'];
      if (netsOverlap(net, parseNet(linkLocal)!)) {
        ctx.issues.push({ code: 'custom', path: ['cidr'], input: spec.cidr, message: `IP pool range ${spec.cidr} overlaps with ${family} Link Local range ${linkLocal}` });
      }
    }
    if (spec.ipipMode !== 'Never' && spec.vxlanMode !== 'Never') {
      ctx.issues.push({
        code: 'custom', path: ['vxlanMode'], input: spec.vxlanMode,
        message: `cannot be ${spec.vxlanMode} while ipipMode is ${spec.ipipMode}: enable at most one encapsulation`,
      });
    }
    if (isV6 && spec.ipipMode !== 'Never') {
      ctx.issues.push({ code: 'custom', path: ['ipipMode'], input: spec.ipipMode, message: 'IPIP is IPv4 only; use Never for an IPv6 pool' });
    }
  })
  .transform((spec) => ({ ...spec, blockSize: spec.blockSize ?? (spec.cidr.includes(':') ? 122 : 26) }));

export const IPPoolSchema = z.object({
  apiVersion: z.literal(CALICO_API_VERSION),
  kind: z.literal('IPPool'),
  metadata,
  spec: ipPoolSpec,
});
export type IPPool = z.output<typeof IPPoolSchema>;

// ---------------------------------------------------------------------------------------------
// Node

const nodeSpec = z.object({
  bgp: z
    .object({
      ipv4Address: ipv4AddressWithSubnet.optional(),
      ipv6Address: z.string().optional(),
      // a number, or "64512" / asdot "1.10" as Calico reads it (as-number.ts)
      asNumber: z.preprocess(asNumberInput, z.number().int().min(0).max(4294967295)).optional(),
      ipv4IPIPTunnelAddr: ipv4Address.optional(),
      /** Set on route reflectors: the cluster ID they reflect for (Calico skips their mesh). */
      routeReflectorClusterID: ipv4Address.optional(),
    })
    .optional(),
  ipv4VXLANTunnelAddr: ipv4Address.optional(),
  // Unset means "derive it as Felix does" (see mac.ts deriveVtepMac).
  vxlanTunnelMACAddr: macAddress.optional(),
  // The IPv6 VTEP (vxlan-v6.calico): an address of the node's own IPv6 block, and its MAC
  // (unset: derived from sha1(nodename + "-v6")).
  ipv6VXLANTunnelAddr: ipv6Address.optional(),
  vxlanTunnelMACAddrV6: macAddress.optional(),
});

export const NodeSchema = z.object({
  apiVersion: z.literal(CALICO_API_VERSION),
  kind: z.literal('Node'),
  // Labels are what BGPPeer nodeSelector/peerSelector and IPPool nodeSelector match.
  metadata: metadata.extend({ labels: z.record(z.string(), z.string()).optional() }),
  // calicoctl prints `spec: {}` for a bare node; a missing spec means the same.
  spec: nodeSpec.default({}),
});
export type Node = z.output<typeof NodeSchema>;

// ---------------------------------------------------------------------------------------------
// BlockAffinity

export const BlockAffinitySchema = z.object({
  apiVersion: z.literal(CALICO_API_VERSION),
  kind: z.literal('BlockAffinity'),
  metadata,
  spec: z.object({
    node: objectName,
    cidr: networkCidr,
    // Only `confirmed` affinities give routes; the others are IPAM's claims in progress.
    state: z.enum(AFFINITY_STATES),
    // Calico stores this as the string "true"/"false"; accept a boolean too.
    deleted: z.union([z.boolean(), z.enum(['true', 'false'])]).optional(),
  }),
});
export type BlockAffinity = z.output<typeof BlockAffinitySchema>;

// ---------------------------------------------------------------------------------------------
// WorkloadEndpoint

// Only the two places network namespaces are named: `ip netns` bind mounts and a process's own
// handle. Root setns()es into whatever this names, so any other path (a device, a file under /etc,
// a symlink trick through `..`) is refused.
const NETNS_NAMED = /^\/run\/netns\/([A-Za-z0-9_.-]+)$/;
const NETNS_OF_PID = /^\/proc\/[0-9]+\/ns\/net$/;

const netnsPath = z.string().refine(
  (s) => {
    const named = NETNS_NAMED.exec(s);
    return named ? named[1] !== '.' && named[1] !== '..' : NETNS_OF_PID.test(s);
  },
  { error: (iss) => `expected /run/netns/NAME (NAME of A-Z, a-z, 0-9, '_', '.', '-') or /proc/PID/ns/net, got ${quoted(iss.input)}` },
);

// A TAP or TUN pod's attachment: the cni.podway.io/interface-type and -netns annotations (why:
// wep-interface.ts), or the spec fields earlier versions wrote.

export const WorkloadEndpointSchema = z.object({
  apiVersion: z.literal(CALICO_API_VERSION),
  kind: z.literal('WorkloadEndpoint'),
  metadata: z.object({
    name: objectName,
    // Calico's WorkloadEndpoint is namespaced; calicoctl puts unqualified ones in "default".
    namespace: objectName.default('default'),
    /** Any annotations (strings); podway reads its two interface ones (above). */
    annotations: z.object({
      [INTERFACE_TYPE_ANNOTATION]: z.enum(INTERFACE_TYPES).optional(),
      [INTERFACE_NETNS_ANNOTATION]: netnsPath.optional(),
    }).catchall(z.string()).optional(),
  }),
  spec: z.object({
    node: objectName,
    /** The host-side interface (cali… for Calico veths). */
    interfaceName: z
      .string()
      .min(1)
      .refine((s) => s.length <= MAX_IFNAME_LEN && !/[\s/:]/.test(s), {
        error: (iss) => `expected a Linux interface name (at most ${MAX_IFNAME_LEN} characters, no spaces, '/' or ':'), got ${quoted(iss.input)}`,
      }),
    // A bare address is the /32 (/128) it names: libcalico-go's validator takes one ("net": an
    // address or a CIDR) and Felix routes it so; Calico's CNI plugin always writes the prefix.
    ipNetworks: z.array(z.preprocess((v) => (typeof v === 'string' && !v.includes('/') && v !== '' ? `${v}/${v.includes(':') ? 128 : 32}` : v), hostCidr)).default([]),
    /** The pod's own MAC (the far end of the veth), when known. */
    mac: macAddress.optional(),
    /**
     * How the pod is attached: `veth` (Calico's only kind, the default), or `tap`/`tun` for
     * workloads podway attaches through a TAP (L2) or TUN (L3) device. Read from the
     * cni.podway.io/interface-type annotation, or (written by earlier podway versions) this spec
     * field, not a Calico one; the parsed resource always holds the answer here.
     */
    interfaceType: z.enum(INTERFACE_TYPES).default('veth'),
    /**
     * The network namespace that holds a tap/tun interface, which podway (as root) enters with
     * setns to open it; absent: podway's own namespace. The cni.podway.io/interface-netns
     * annotation, or (earlier versions) this spec field.
     */
    interfaceNetns: netnsPath.optional(),
    /**
     * Calico's WorkloadEndpointPort list (libcalico-go: name, protocol, port, hostPort, hostIP): a
     * pod's named and mapped ports. podway forwards the entries with a hostPort (TCP, UDP) to the
     * pod: docs/cni.md, "Host ports"; its CNI plugin writes them from the runtime's portMappings.
     */
    ports: z.array(z.object({
      name: z.string().optional(),
      protocol: z.union([z.string().regex(/^(tcp|udp|sctp|icmp|icmpv6|udplite)$/i, { error: 'expected TCP, UDP, SCTP (any case) or a protocol number' }), z.number().int().min(1).max(255)]).optional(),
      port: z.number().int().min(1).max(65535),
      hostPort: z.number().int().min(0).max(65535).optional(),
      hostIP: z.string().refine((x) => x === '' || parseIPv4(x) !== null || parseIPv6Cidr(`${x}/128`) !== null, { error: 'expected an IP address or ""' }).optional(),
    })).optional(),
    // Accepted for compatibility with calicoctl output; podway does not use them.
    orchestrator: z.string().optional(),
    pod: z.string().optional(),
    workload: z.string().optional(),
    endpoint: z.string().optional(),
    containerID: z.string().optional(),
  }),
}).transform((w) => {
  const a = w.metadata.annotations;
  const type = a?.[INTERFACE_TYPE_ANNOTATION];
  const netns = a?.[INTERFACE_NETNS_ANNOTATION];
  if (type === undefined && netns === undefined) return w;
  return { ...w, spec: { ...w.spec, interfaceType: type ?? w.spec.interfaceType, interfaceNetns: netns ?? w.spec.interfaceNetns } };
});
export type WorkloadEndpoint = z.output<typeof WorkloadEndpointSchema>;

export type CalicoResource = IPPool | Node | BlockAffinity | WorkloadEndpoint;

export const SCHEMA_BY_KIND = {
  IPPool: IPPoolSchema,
  Node: NodeSchema,
  BlockAffinity: BlockAffinitySchema,
  WorkloadEndpoint: WorkloadEndpointSchema,
} as const;

/** "name" for cluster-scoped kinds, "namespace/name" for WorkloadEndpoint: how documents are named in errors. */
export function resourceDisplayName(resource: CalicoResource): string {
  return resource.kind === 'WorkloadEndpoint'
    ? `${resource.metadata.namespace}/${resource.metadata.name}`
    : resource.metadata.name;
}
