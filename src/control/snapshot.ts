// Turns the text of a multi-document YAML file of Calico resources into a validated ClusterSnapshot.
// Errors name the file, the document (1-based, as an editor would count them, with kind and name
// when known) and the field path, e.g.
//   cluster.yaml: document 3 (IPPool default-pool): spec.vxlanMode: expected one of Never|Always|CrossSubnet, got "Sometimes"
import { Composer, LineCounter, Parser, type YAMLError } from 'yaml';
import type { z } from 'zod';
import { IpNet, ipv6CidrProblem, netsOverlap, parseNet } from './ipam/net';
import { cidrContainsAddr, cidrContainsCidr, cidrsOverlap, formatIPv4, IPv4Cidr, parseIPv4, parseIPv4Cidr, parseIPv4WithPrefix } from './ipv4';
import {
  BlockAffinity, CALICO_API_VERSION, CalicoResource, IGNORED_KINDS, IPPool, MODEL_KINDS, ModelKind, Node,
  resourceDisplayName, SCHEMA_BY_KIND, WorkloadEndpoint,
} from './resources';
import { describeValue, formatFieldPath, zodIssueMessage } from './zod-messages';
import { selectorIssues } from './selector-fields';
import { BGPConfiguration, BGPConfigurationSchema, BGPFilter, BGPFilterSchema, BGPPeer, BGPPeerSchema, FelixConfiguration, FelixConfigurationSchema } from './calico-kind-schemas';
import { unknownCalicoFields } from './calico-fields';
import { ENFORCING_KINDS, type PolicyRef } from './policy-kinds';
import { peekIdentity as resourceIdentity } from './calico-kinds';

/** Everything the control plane knows at one moment. Arrays keep file order (later = newer). */
export interface ClusterSnapshot {
  /** The file (or other label) the snapshot was read from. */
  readonly source: string;
  readonly ipPools: readonly IPPool[];
  readonly nodes: readonly Node[];
  readonly blockAffinities: readonly BlockAffinity[];
  readonly workloadEndpoints: readonly WorkloadEndpoint[];
  /** BGP settings (read by `podway run --bgp`); absent means none were given. */
  readonly bgpConfigurations?: readonly BGPConfiguration[];
  readonly bgpPeers?: readonly BGPPeer[];
  /** BGPFilters (the BGPPeers' spec.filters name them; bgp/filters.ts); absent means none were given. */
  readonly bgpFilters?: readonly BGPFilter[];
  /** Felix's settings (`default` and `node.NAME`: `podway run` reads the two of its node;
   * cli/felix-settings.ts); absent means none were given. */
  readonly felixConfigurations?: readonly FelixConfiguration[];
  /** IPAM blocks (read from /calico/ipam/v2/assignment/ by a cluster datastore) that hold
   * addresses used by a node other than the block's own: only blocks with such allocations are
   * listed. Absent for a YAML file (it has no blocks). */
  readonly ipamBlocks?: readonly IpamBlockBorrowed[];
  /**
   * Every IPAM block whose own `affinity` field names a host (`host:NODE`), read by a cluster
   * datastore: which block is routed to which node, as Felix's route resolver takes it
   * (AllocationBlock.Host()), whatever the state of the node's affinity key (pending while a
   * claim is between its block write and its confirmation, or left so by a claimer that died
   * there; pendingDeletion while a release is between its mark and its block write). When
   * present, the routes come from it (routedBlocks); IPAM itself goes by confirmed affinities.
   * Absent for a YAML file (it has no blocks: its confirmed BlockAffinities are routed).
   */
  readonly ipamBlockHosts?: readonly IpamBlockHost[];
  /** Network policy objects stored (policy-kinds.ts ENFORCING_KINDS), named only: podway enforces
   * none of them, `podway run` says they are there. Absent when the source was not looked at for them. */
  readonly policies?: readonly PolicyRef[];
  /** Suspicious but legal things (e.g. one IP claimed on two nodes), for logs. */
  readonly warnings: readonly string[];
}

/** A block's non-affine allocations, as Calico's AllocationBlock.NonAffineAllocations() gives them:
 * every allocated address whose attributes name a node (`node`) other than the block's affinity
 * host, or any allocated address of a block nobody holds. */
export interface IpamBlockBorrowed {
  /** The block's CIDR ("10.244.1.0/26", or IPv6). */
  readonly cidr: string;
  /** The block's affinity host; null when it is not a host: affinity. */
  readonly host: string | null;
  /** The addresses and the node each is used on ('' when the allocation names none). */
  readonly allocations: readonly { readonly ip: string; readonly node: string }[];
}

/** A block and the node its own affinity field names. */
export interface IpamBlockHost {
  readonly cidr: string;
  readonly node: string;
}

/** Where a resource came from in the file, for error messages. */
export interface SourceLocation {
  /** 1-based document number in the YAML stream. */
  readonly document: number;
  /** 1-based item number when the document is a `kind: …List` with items. */
  readonly item?: number;
  readonly kind?: string;
  readonly name?: string;
}

export interface ValidationIssue {
  readonly file: string;
  readonly location: SourceLocation | null;
  /** Dotted field path, e.g. "spec.ipNetworks[0]"; empty for the document as a whole. */
  readonly path: string;
  readonly message: string;
}

const MAX_REPORTED_ISSUES = 20;

export class DatastoreValidationError extends Error {
  constructor(readonly file: string, readonly issues: readonly ValidationIssue[]) {
    super(formatIssues(issues));
    this.name = 'DatastoreValidationError';
  }
}

export function formatLocation(location: SourceLocation): string {
  let text = `document ${location.document}`;
  if (location.item !== undefined) text += ` item ${location.item}`;
  if (location.kind && location.name) text += ` (${location.kind} ${location.name})`;
  else if (location.kind) text += ` (${location.kind})`;
  return text;
}

export function formatIssue(issue: ValidationIssue): string {
  const parts = [issue.file];
  if (issue.location) parts.push(formatLocation(issue.location));
  if (issue.path) parts.push(issue.path);
  parts.push(issue.message);
  return parts.join(': ');
}

function formatIssues(issues: readonly ValidationIssue[]): string {
  const lines = issues.slice(0, MAX_REPORTED_ISSUES).map(formatIssue);
  if (issues.length > MAX_REPORTED_ISSUES) lines.push(`... and ${issues.length - MAX_REPORTED_ISSUES} more problems`);
  return lines.join('\n');
}

// ---------------------------------------------------------------------------------------------
// Describing zod issues in words a YAML author understands.

// ---------------------------------------------------------------------------------------------
// Parsing

interface Located<T> {
  readonly resource: T;
  readonly location: SourceLocation;
}

function isMapping(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/**
 * Best-effort kind/name for labelling a document that may be invalid: calico-kinds' identity, a
 * WorkloadEndpoint's name prefixed by its namespace (default when absent), as `get` prints it.
 */
function documentLabel(raw: Record<string, unknown>): { kind?: string; name?: string } {
  const { kind, name, namespace } = resourceIdentity(raw);
  return { kind, name: name !== undefined && kind === 'WorkloadEndpoint' ? `${namespace ?? 'default'}/${name}` : name };
}

/**
 * A parsed YAML document's value (`js`: undefined or null for an empty document), or null with an
 * issue naming the file and document pushed to `issues` when resolving it throws: what shows only
 * once resolved, an alias bomb ("Excessive alias count"). For the datastore file and resource files.
 */
export function yamlDocValue(doc: { toJS(): unknown }, file: string, document: number, issues: ValidationIssue[]): { js: unknown } | null {
  try {
    return { js: doc.toJS() };
  } catch (e) {
    issues.push({ file, location: { document }, path: '', message: `invalid YAML: ${(e as Error).message}` });
    return null;
  }
}

/** One document of a YAML stream: its errors (each one line: "reason at line L, column C"), its value. */
export interface YamlDocument {
  readonly errors: readonly string[];
  toJS(): unknown;
}

/** yaml's wording of an error (as parseAllDocuments' prettyErrors gives it), on one line. */
function yamlErrorText(e: YAMLError, lines: LineCounter): string {
  // A document nested deeper than the parser's recursion can follow: say so, not JavaScript's words.
  const reason = /Maximum call stack size exceeded/.test(e.message) ? 'nested too deeply (a collection inside a collection inside ..., beyond what can be read)' : e.message.split('\n')[0]!;
  if (e.pos[0] === -1) return reason;
  const { line, col } = lines.linePos(e.pos[0]);
  return `${reason} at line ${line}, column ${col}`;
}

/**
 * Calls `each` with every document of the YAML stream `text` in turn (index from 0), as it is read:
 * a file of 100,000 resources is never held as 100,000 document trees at once (parseAllDocuments
 * did, 758 MB for a 12 MB file); each tree can be let go once its value is taken.
 */
export function forEachYamlDocument(text: string, each: (doc: YamlDocument, index: number) => void): void {
  const lines = new LineCounter();
  const composer = new Composer();
  let index = 0;
  for (const doc of composer.compose(new Parser(lines.addNewLine).parse(text))) {
    each({ errors: doc.errors.map((e) => yamlErrorText(e, lines)), toJS: () => doc.toJS() }, index++);
  }
}

/**
 * Parses and validates a whole file. Throws DatastoreValidationError listing every problem found
 * (per-document problems first; cross-resource checks run only when every document is valid, so
 * one typo does not cascade into a page of "unknown node" errors).
 */
export function parseClusterYaml(text: string, file: string): ClusterSnapshot {
  const issues: ValidationIssue[] = [];
  const resources: Located<CalicoResource>[] = [];
  const bgp: Located<BgpResource>[] = [];
  const policies: PolicyRef[] = [];
  forEachYamlDocument(text, (doc, index) => {
    const document = index + 1;
    if (doc.errors.length > 0) {
      issues.push({ file, location: { document }, path: '', message: `invalid YAML: ${doc.errors[0]!}` });
      return;
    }
    const value = yamlDocValue(doc, file, document, issues);
    if (value === null) return;
    const raw = value.js;
    if (raw === null || raw === undefined) return; // empty document, e.g. a trailing "---"
    if (!isMapping(raw)) {
      issues.push({ file, location: { document }, path: '', message: `expected a mapping with apiVersion, kind, metadata and spec, got ${describeValue(raw)}` });
      return;
    }
    // `calicoctl get -o yaml` prints several resources as `kind: IPPoolList` with `items`.
    if (typeof raw.kind === 'string' && raw.kind.endsWith('List') && Array.isArray(raw.items)) {
      raw.items.forEach((item, itemIndex) => {
        parseResource(item, { document, item: itemIndex + 1 }, file, issues, resources, bgp, policies);
      });
      return;
    }
    parseResource(raw, { document }, file, issues, resources, bgp, policies);
  });

  if (issues.length > 0) throw new DatastoreValidationError(file, issues);
  const warnings: string[] = [];
  checkCrossResource(resources, file, issues, warnings);
  checkBgpNames(bgp, file, issues);
  if (issues.length > 0) throw new DatastoreValidationError(file, issues);

  const ofKind = <K extends ModelKind>(kind: K) =>
    resources.filter((r) => r.resource.kind === kind).map((r) => r.resource as Extract<CalicoResource, { kind: K }>);
  return {
    source: file,
    ipPools: ofKind('IPPool'),
    nodes: ofKind('Node'),
    blockAffinities: ofKind('BlockAffinity'),
    workloadEndpoints: ofKind('WorkloadEndpoint'),
    bgpConfigurations: bgp.filter((r) => r.resource.kind === 'BGPConfiguration').map((r) => r.resource as BGPConfiguration),
    bgpPeers: bgp.filter((r) => r.resource.kind === 'BGPPeer').map((r) => r.resource as BGPPeer),
    bgpFilters: bgp.filter((r) => r.resource.kind === 'BGPFilter').map((r) => r.resource as BGPFilter),
    felixConfigurations: bgp.filter((r) => r.resource.kind === 'FelixConfiguration').map((r) => r.resource as FelixConfiguration),
    policies,
    warnings,
  };
}

// FelixConfiguration with them: read whole (its fields are judged one by one where they are used),
// and one name twice is refused as for the BGP kinds.
type BgpResource = BGPConfiguration | BGPPeer | BGPFilter | FelixConfiguration;
const BGP_SCHEMAS: Readonly<Record<string, z.ZodType<BgpResource>>> = { BGPConfiguration: BGPConfigurationSchema, BGPPeer: BGPPeerSchema, BGPFilter: BGPFilterSchema, FelixConfiguration: FelixConfigurationSchema };

/** Two BGP resources of one kind with one name: the later would silently replace the earlier. */
function checkBgpNames(bgp: readonly Located<BgpResource>[], file: string, issues: ValidationIssue[]): void {
  const seen = new Map<string, SourceLocation>();
  for (const { resource, location } of bgp) {
    const key = `${resource.kind}\u0000${resource.metadata.name}`;
    const first = seen.get(key);
    if (first) issues.push({ file, location, path: 'metadata.name', message: `duplicate ${resource.kind} ${JSON.stringify(resource.metadata.name)} (first defined in ${where(first)})` });
    else seen.set(key, location);
  }
}

function parseResource(
  raw: unknown,
  position: { document: number; item?: number },
  file: string,
  issues: ValidationIssue[],
  out: Located<CalicoResource>[],
  bgpOut: Located<BgpResource>[],
  policies: PolicyRef[],
): void {
  if (!isMapping(raw)) {
    issues.push({ file, location: position, path: '', message: `expected a mapping with apiVersion, kind, metadata and spec, got ${describeValue(raw)}` });
    return;
  }
  const location: SourceLocation = { ...position, ...documentLabel(raw) };
  if (raw.apiVersion !== CALICO_API_VERSION) {
    issues.push({ file, location, path: 'apiVersion', message: `expected ${JSON.stringify(CALICO_API_VERSION)}, got ${describeValue(raw.apiVersion)}` });
    return;
  }
  if (typeof raw.kind !== 'string') {
    issues.push({ file, location, path: 'kind', message: raw.kind === undefined ? 'required (a string)' : `expected a string, got ${describeValue(raw.kind)}` });
    return;
  }
  const bgpSchema = Object.prototype.hasOwnProperty.call(BGP_SCHEMAS, raw.kind) ? BGP_SCHEMAS[raw.kind] : undefined;
  if (bgpSchema) {
    const parsed = bgpSchema.safeParse(raw, { reportInput: true });
    const unknown = [...unknownCalicoFields(raw), ...selectorIssues(raw)];
    if (!parsed.success) {
      for (const zi of parsed.error.issues) issues.push({ file, location, path: formatFieldPath(zi.path), message: zodIssueMessage(zi) });
    }
    for (const u of unknown) issues.push({ file, location, path: u.path, message: u.message });
    if (parsed.success && unknown.length === 0) bgpOut.push({ resource: parsed.data, location });
    return;
  }
  if (IGNORED_KINDS.has(raw.kind)) {
    // Network policy is not enforced: named here so that `podway run` can say it is there.
    if (ENFORCING_KINDS.has(raw.kind) && location.name !== undefined) {
      policies.push({ kind: raw.kind, name: location.name, ...(raw.kind === 'NetworkPolicy' ? { namespace: resourceIdentity(raw).namespace ?? 'default' } : {}) });
    }
    return;
  }
  if (!(MODEL_KINDS as readonly string[]).includes(raw.kind)) {
    issues.push({ file, location, path: 'kind', message: `unknown kind ${JSON.stringify(raw.kind)} (podway reads ${MODEL_KINDS.join(', ')})` });
    return;
  }
  const schema = SCHEMA_BY_KIND[raw.kind as ModelKind];
  const result = schema.safeParse(raw, { reportInput: true });
  if (!result.success) {
    for (const zi of result.error.issues) {
      issues.push({ file, location, path: formatFieldPath(zi.path), message: zodIssueMessage(zi) });
    }
  }
  // A field Calico does not define is a typo (`vxlanmode: Always`) that would silently mean the
  // default; a malformed selector would be noticed only by what reads it.
  const unknown = [...unknownCalicoFields(raw), ...selectorIssues(raw)];
  for (const u of unknown) issues.push({ file, location, path: u.path, message: u.message });
  if (!result.success || unknown.length > 0) return;
  out.push({ resource: result.data, location });
}

// ---------------------------------------------------------------------------------------------
// Cross-resource checks: things no single document can get wrong on its own.

function where(location: SourceLocation): string {
  return location.item === undefined ? `document ${location.document}` : `document ${location.document} item ${location.item}`;
}

function checkCrossResource(resources: Located<CalicoResource>[], file: string, issues: ValidationIssue[], warnings: string[]): void {
  const fail = (location: SourceLocation, path: string, message: string) => issues.push({ file, location, path, message });

  // Duplicate names, per kind (WorkloadEndpoints per namespace).
  const seen = new Map<string, SourceLocation>();
  for (const { resource, location } of resources) {
    const key = `${resource.kind}\u0000${resourceDisplayName(resource)}`;
    const first = seen.get(key);
    if (first) fail(location, 'metadata.name', `duplicate ${resource.kind} ${JSON.stringify(resourceDisplayName(resource))} (first defined in ${where(first)})`);
    else seen.set(key, location);
  }

  const pools = resources.filter((r): r is Located<IPPool> => r.resource.kind === 'IPPool');
  const nodes = resources.filter((r): r is Located<Node> => r.resource.kind === 'Node');
  const affinities = resources.filter((r): r is Located<BlockAffinity> => r.resource.kind === 'BlockAffinity');
  const workloads = resources.filter((r): r is Located<WorkloadEndpoint> => r.resource.kind === 'WorkloadEndpoint');

  // Pools must not overlap: an address must belong to exactly one pool to have one encapsulation.
  const pools4: { pool: IPPool; cidr: IPv4Cidr; location: SourceLocation }[] = [];
  const poolNets: { pool: IPPool; net: IpNet }[] = [];
  for (const { resource: pool, location } of pools) {
    const problem = ipv6CidrProblem(pool.spec.cidr);
    if (problem) {
      fail(location, 'spec.cidr', problem);
      continue;
    }
    const net = parseNet(pool.spec.cidr);
    if (!net) continue;
    const clash = poolNets.find((p) => netsOverlap(p.net, net));
    if (clash) fail(location, 'spec.cidr', `${pool.spec.cidr} overlaps IPPool ${JSON.stringify(clash.pool.metadata.name)} (${clash.pool.spec.cidr})`);
    poolNets.push({ pool, net });
    const cidr = parseIPv4Cidr(pool.spec.cidr);
    if (cidr) pools4.push({ pool, cidr, location });
  }
  const poolContainingAddr = (addr: number) => pools4.find((p) => cidrContainsAddr(p.cidr, addr));

  // Nodes: their IPs and VTEP IPs identify them on the wire, so they must be unique.
  const nodeNames = new Set<string>();
  const nodeIps = new Map<number, string>();
  const vtepIps = new Map<number, string>();
  for (const { resource: node, location } of nodes) {
    nodeNames.add(node.metadata.name);
    const addrText = node.spec.bgp?.ipv4Address;
    if (addrText !== undefined) {
      const addr = parseIPv4(addrText) ?? parseIPv4WithPrefix(addrText)!.addr;
      const owner = nodeIps.get(addr);
      if (owner !== undefined) fail(location, 'spec.bgp.ipv4Address', `${formatIPv4(addr)} is also the address of Node ${JSON.stringify(owner)}`);
      else nodeIps.set(addr, node.metadata.name);
    }
    const vtepText = node.spec.ipv4VXLANTunnelAddr;
    if (vtepText !== undefined) {
      const vtep = parseIPv4(vtepText)!;
      const owner = vtepIps.get(vtep);
      if (owner !== undefined) fail(location, 'spec.ipv4VXLANTunnelAddr', `${vtepText} is also the VXLAN tunnel address of Node ${JSON.stringify(owner)}`);
      else vtepIps.set(vtep, node.metadata.name);
    }
  }

  // Block affinities: a known node, a block that fits inside a pool, and one confirmed owner per block.
  const confirmedBlocks: { cidr: IPv4Cidr; node: string; location: SourceLocation }[] = [];
  for (const { resource: affinity, location } of affinities) {
    const { node, cidr: cidrText, state } = affinity.spec;
    if (!nodeNames.has(node)) fail(location, 'spec.node', `unknown node ${JSON.stringify(node)}`);
    const cidr = parseIPv4Cidr(cidrText);
    if (!cidr) continue;
    const pool = pools4.find((p) => cidrContainsCidr(p.cidr, cidr));
    if (!pool) {
      fail(location, 'spec.cidr', `${cidrText} is outside every IPPool`);
      continue;
    }
    if (cidr.prefixLen !== pool.pool.spec.blockSize) {
      fail(location, 'spec.cidr', `/${cidr.prefixLen} does not match blockSize ${pool.pool.spec.blockSize} of IPPool ${JSON.stringify(pool.pool.metadata.name)}`);
      continue;
    }
    if (state !== 'confirmed') continue;
    const clash = confirmedBlocks.find((b) => cidrsOverlap(b.cidr, cidr));
    if (clash) {
      fail(location, 'spec.cidr', `${cidrText} is already confirmed for node ${JSON.stringify(clash.node)} (${where(clash.location)})`);
      continue;
    }
    confirmedBlocks.push({ cidr, node, location });
  }

  // Workloads: a known node, addresses inside a pool, and no two endpoints on one node sharing an
  // address or a host interface (the dataplane could not tell which one a packet is for).
  const ipOwners = new Map<string, { node: string; name: string; location: SourceLocation }>();
  const ifaceOwners = new Map<string, { name: string; location: SourceLocation }>();
  const nodesByIp = new Map<string, Set<string>>();
  for (const { resource: wep, location } of workloads) {
    const wepName = resourceDisplayName(wep);
    const { node, interfaceName, ipNetworks } = wep.spec;
    if (!nodeNames.has(node)) fail(location, 'spec.node', `unknown node ${JSON.stringify(node)}`);
    const ifaceKey = `${node}\u0000${interfaceName}`;
    const ifaceOwner = ifaceOwners.get(ifaceKey);
    if (ifaceOwner) {
      fail(location, 'spec.interfaceName', `${JSON.stringify(interfaceName)} is already used on node ${JSON.stringify(node)} by WorkloadEndpoint ${ifaceOwner.name} (${where(ifaceOwner.location)})`);
    } else {
      ifaceOwners.set(ifaceKey, { name: wepName, location });
    }
    ipNetworks.forEach((net, i) => {
      const path = `spec.ipNetworks[${i}]`;
      const addr = net.includes(':') ? null : parseIPv4WithPrefix(net)!.addr;
      if (addr !== null && !poolContainingAddr(addr)) {
        fail(location, path, `${net} is outside every IPPool`);
        return;
      }
      const ipKey = net.toLowerCase();
      const ownerKey = `${node}\u0000${ipKey}`;
      const owner = ipOwners.get(ownerKey);
      if (owner) {
        fail(location, path, `${net} is already claimed on node ${JSON.stringify(node)} by WorkloadEndpoint ${owner.name} (${where(owner.location)})`);
        return;
      }
      ipOwners.set(ownerKey, { node, name: wepName, location });
      const claimants = nodesByIp.get(ipKey) ?? new Set<string>();
      claimants.add(node);
      nodesByIp.set(ipKey, claimants);
    });
  }
  for (const [ip, claimants] of nodesByIp) {
    if (claimants.size > 1) {
      warnings.push(`${file}: ${ip} is claimed by workloads on several nodes (${[...claimants].join(', ')}); local endpoints win, then the last one in the file`);
    }
  }
}
