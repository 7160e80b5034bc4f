// The field names Calico's v3 API defines for the kinds podway routes and peers on (IPPool, Node,
// WorkloadEndpoint, BlockAffinity, BGPPeer, BGPConfiguration), as Calico's Go structs spell them
// in their json tags.
//
// The schemas (resources.ts) accept fields podway does not use, so real calicoctl output loads
// unchanged; but a field Calico does not define either is a typo (`vxlanmode: Always`,
// `natOutGoing: true`, `keepOriginalNexthop: true`), which would otherwise be stored and silently
// mean the default. calicoctl
// refuses such fields too (it decodes strictly). This module finds them, with the field meant
// when one is close, for the places a person wrote the resource: `podway apply|create|replace -f`
// and the `file:` datastore. Resources read back from etcd or the embedded store are not checked
// (a newer Calico may have written fields this list does not know). Zod-free.
import { editDistance } from '../util/edit-distance';

/** A mapping's known keys; a key whose value is `true` is not looked into. */
type FieldTree = { readonly [key: string]: FieldTree | true };

/** metav1.ObjectMeta's json names. */
const OBJECT_META: FieldTree = Object.fromEntries(
  ['name', 'generateName', 'namespace', 'selfLink', 'uid', 'resourceVersion', 'generation', 'creationTimestamp',
    'deletionTimestamp', 'deletionGracePeriodSeconds', 'labels', 'annotations', 'ownerReferences', 'finalizers',
    'managedFields', 'clusterName'].map((k) => [k, true]),
);

const leaves = (...keys: string[]): FieldTree => Object.fromEntries(keys.map((k) => [k, true]));

/** The key of a tree that describes a list's items rather than a mapping's keys. */
const ITEMS = '[]';

/** BGPFilterRuleV4/V6's fields (newer Calico's included). */
const BGP_FILTER_RULES: FieldTree = {
  [ITEMS]: {
    ...leaves('cidr', 'matchOperator', 'source', 'interface', 'peerType', 'asPathPrefix', 'priority', 'action', 'operations'),
    prefixLength: leaves('min', 'max'),
    communities: leaves('values'),
  },
};

const SPEC_FIELDS: Readonly<Record<string, FieldTree>> = {
  IPPool: leaves('cidr', 'vxlanMode', 'ipipMode', 'natOutgoing', 'disabled', 'disableBGPExport', 'blockSize', 'nodeSelector',
    'namespaceSelector', 'ipip', 'nat-outgoing', 'allowedUses', 'assignmentMode', 'awsSubnetID'),
  Node: {
    ...leaves('ipv4VXLANTunnelAddr', 'vxlanTunnelMACAddr', 'ipv6VXLANTunnelAddr', 'vxlanTunnelMACAddrV6', 'orchRefs',
      'wireguard', 'addresses', 'interfaces'),
    bgp: leaves('asNumber', 'ipv4Address', 'ipv6Address', 'ipv4IPIPTunnelAddr', 'routeReflectorClusterID'),
  },
  // interfaceType and interfaceNetns: where earlier podway versions kept a TAP/TUN pod's attachment,
  // still read (now the cni.podway.io/interface-* annotations: resources.ts).
  WorkloadEndpoint: leaves('orchestrator', 'workload', 'node', 'containerID', 'pod', 'endpoint', 'serviceAccountName',
    'ipNetworks', 'ipNATs', 'ipv4Gateway', 'ipv6Gateway', 'profiles', 'interfaceName', 'mac', 'ports',
    'allowSpoofedSourcePrefixes', 'qosControls', 'awsElasticIPs', 'interfaceType', 'interfaceNetns'),
  BlockAffinity: leaves('state', 'node', 'type', 'cidr', 'deleted'),
  IPAMConfiguration: leaves('strictAffinity', 'maxBlocksPerHost', 'autoAllocateBlocks', 'kubeVirtVMAddressPersistence', 'ipCooldownSeconds'),
  // The BGP kinds over Calico's releases (fields newer Calico added included: older output loads).
  BGPPeer: {
    ...leaves('node', 'nodeSelector', 'peerIP', 'asNumber', 'peerSelector', 'keepOriginalNextHop', 'sourceAddress',
      'maxRestartTime', 'numAllowedLocalASNumbers', 'ttlSecurity', 'filters', 'reachableBy', 'keepaliveTime',
      'failureDetectionMode', 'restartMode', 'birdGatewayMode', 'nextHopMode', 'localWorkloadSelector', 'localASNumber',
      'reversePeering'),
    password: leaves('secretKeyRef'),
  },
  IPReservation: leaves('reservedCIDRs'),
  BGPFilter: { exportV4: BGP_FILTER_RULES, importV4: BGP_FILTER_RULES, exportV6: BGP_FILTER_RULES, importV6: BGP_FILTER_RULES },
  BGPConfiguration: leaves('logSeverityScreen', 'nodeToNodeMeshEnabled', 'asNumber', 'serviceLoadBalancerIPs',
    'serviceExternalIPs', 'serviceClusterIPs', 'communities', 'listenPort', 'prefixAdvertisements', 'nodeMeshPassword',
    'nodeMeshMaxRestartTime', 'bindMode', 'ignoredInterfaces', 'localWorkloadPeeringIPV4', 'localWorkloadPeeringIPV6',
    'programClusterRoutes', 'serviceLoadBalancerAggregation', 'ipv4NormalRoutePriority', 'ipv6NormalRoutePriority'),
};

export interface UnknownField {
  /** Dotted path as the validators print it, e.g. "spec.vxlanmode". */
  readonly path: string;
  readonly message: string;
}

function isMapping(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** The known key a typo most likely meant: same letters in another case, else within 2 edits. */
export function closest(key: string, known: readonly string[]): string | undefined {
  const lower = key.toLowerCase();
  const sameCase = known.find((k) => k.toLowerCase() === lower);
  if (sameCase) return sameCase;
  let best: string | undefined;
  let bestDistance = 3;
  for (const k of known) {
    const d = editDistance(lower, k.toLowerCase(), 2);
    if (d < bestDistance) [best, bestDistance] = [k, d];
  }
  return best;
}

function walk(value: unknown, tree: FieldTree, where: string, what: string, out: UnknownField[]): void {
  // A list whose items are mappings (BGPFilter's rules): each item against the tree under ITEMS.
  const items = Object.prototype.hasOwnProperty.call(tree, ITEMS) ? tree[ITEMS] : undefined;
  if (items !== undefined) {
    if (Array.isArray(value) && items !== true) value.forEach((v, i) => walk(v, items, `${where}[${i}]`, what, out));
    return;
  }
  if (!isMapping(value)) return; // a wrong type is the schema's to report
  const known = Object.keys(tree);
  for (const [key, child] of Object.entries(value)) {
    const path = where ? `${where}.${key}` : key;
    const sub = Object.prototype.hasOwnProperty.call(tree, key) ? tree[key] : undefined;
    if (sub === undefined) {
      const meant = closest(key, known);
      out.push({
        path,
        message: meant !== undefined
          ? `unknown field (did you mean ${meant}?)`
          : `unknown field (${what} has ${known.join(', ')})`,
      });
    } else if (sub !== true) walk(child, sub, path, `${what}.${key}`, out);
  }
}

/**
 * Fields of `raw` that Calico's v3 API does not define for its kind; [] for kinds this module does
 * not cover (FelixConfiguration, Profile, ...) and for values that are not a resource mapping.
 */
export function unknownCalicoFields(raw: unknown): UnknownField[] {
  if (!isMapping(raw) || typeof raw.kind !== 'string' || !Object.prototype.hasOwnProperty.call(SPEC_FIELDS, raw.kind)) return [];
  const spec = SPEC_FIELDS[raw.kind]!;
  const out: UnknownField[] = [];
  const top: FieldTree = { apiVersion: true, kind: true, metadata: OBJECT_META, spec, status: true };
  walk(raw, top, '', raw.kind, out);
  return out;
}
