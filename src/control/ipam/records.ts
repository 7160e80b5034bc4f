// The small IPAM values, in Calico's JSON (libcalico-go model):
//   BlockAffinity  {"state":"pending"|"confirmed"|"pendingDeletion","deleted":false}
//   IPAMHandle     {"block":{"10.244.1.0/26":1},"deleted":false}     (map keys sorted, as Go writes)
//   IPAMConfig     {"strict_affinity"?,"auto_allocate_blocks"?,"maxBlocksPerHost"?} (all omitempty)
// and the v3 resources IPAM reads (IPPool, Node), parsed with podway's own schemas.
import { AFFINITY_STATES, AffinityState, CALICO_API_VERSION } from '../resource-names';
import type { PoolAssignmentMode, PoolUse } from '../resources';
import { compareGoStrings, goJsonText, goString, GoJsonValue, parseGoJson } from './gojson';
import { IpNet, parseNet } from './net';
import { Labels, Selector } from './selector';

export type { AffinityState, PoolAssignmentMode, PoolUse };

/** libcalico-go's default for a pool without allowedUses (kept here: records.ts loads zod lazily). */
const DEFAULT_POOL_USES: readonly PoolUse[] = ['Workload', 'Tunnel'];

/** resources.ts (zod schemas), required when a pool or node is first decoded: releasing an
 * address (the CNI plugin's DEL) decodes neither and so does not load zod. */
function schemas(): typeof import('../resources') {
  return require('../resources') as typeof import('../resources');
}

const isObject = (v: GoJsonValue | undefined): v is { [key: string]: GoJsonValue } => typeof v === 'object' && v !== null && !Array.isArray(v);

/**
 * Fields of a stored value other than `known`, as read (a later Calico's), to be written back
 * after podway's own; [] when the value is not a JSON object or has none.
 */
function unknownFields(old: string | undefined, known: readonly string[]): string {
  if (old === undefined || old === '') return '';
  let v: GoJsonValue;
  try { v = parseGoJson(old); } catch { return ''; }
  if (!isObject(v)) return '';
  return Object.entries(v).filter(([k]) => !known.includes(k)).map(([k, x]) => `,${goString(k)}:${goJsonText(x)}`).join('');
}

/** model.BlockAffinity {"state","deleted"}; `old` (the value it replaces) keeps its other fields. */
export function encodeAffinity(state: AffinityState, old?: string): string {
  return `{"state":${goString(state)},"deleted":false${unknownFields(old, ['state', 'deleted'])}}`;
}

export function decodeAffinity(text: string): { state: AffinityState | ''; deleted: boolean } {
  // An empty value is an affinity stored before affinities had values: libcalico-go reads it as
  // {} (BlockAffinityKey.parseValue), so confirmed.
  const v = parseGoJson(text === '' ? '{}' : text);
  if (!isObject(v)) throw new Error('affinity value is not a JSON object');
  const state = v.state === undefined || v.state === '' ? '' : v.state;
  if (state !== '' && !(AFFINITY_STATES as readonly GoJsonValue[]).includes(state)) throw new Error(`unknown affinity state ${JSON.stringify(state)}`);
  // An empty state is what affinities written before states existed hold; Calico treats it as confirmed.
  return { state: state as AffinityState | '', deleted: v.deleted === true };
}

/** Handle counts per block CIDR. */
export type HandleBlocks = Map<string, number>;

/** model.IPAMHandle {"block","deleted"}; `old` (the value it replaces) keeps its other fields. */
export function encodeHandle(blocks: HandleBlocks, old?: string): string {
  const keys = [...blocks.keys()].sort(compareGoStrings);
  return `{"block":{${keys.map((k) => `${goString(k)}:${blocks.get(k)}`).join(',')}},"deleted":false${unknownFields(old, ['block', 'deleted'])}}`;
}

export function decodeHandle(text: string): HandleBlocks {
  const v = parseGoJson(text);
  if (!isObject(v)) throw new Error('handle value is not a JSON object');
  const out: HandleBlocks = new Map();
  if (v.block === null || v.block === undefined) return out;
  if (!isObject(v.block)) throw new Error('handle "block" is not an object');
  for (const [k, n] of Object.entries(v.block)) {
    if (typeof n !== 'number' || !Number.isInteger(n)) throw new Error(`handle count for ${k} is not an integer`);
    out.set(k, n);
  }
  return out;
}

export interface IpamConfig {
  readonly strictAffinity: boolean;
  readonly autoAllocateBlocks: boolean;
  /** As stored: 0 means "not set" (the limit used is then DEFAULT_MAX_BLOCKS_PER_HOST). */
  readonly maxBlocksPerHost: number;
  /**
   * ipCooldownSeconds as stored (absent: 0, libcalico-go's default): how long an address released
   * (by podway or a Calico node: attribute releasedAt) is kept out of use before an IPAM
   * operation frees it.
   */
  readonly ipCooldownSeconds?: number;
}

export const DEFAULT_MAX_BLOCKS_PER_HOST = 20;

/** What Calico's GetIPAMConfig returns when /calico/ipam/v2/config does not exist. */
export const DEFAULT_IPAM_CONFIG: IpamConfig = { strictAffinity: false, autoAllocateBlocks: true, maxBlocksPerHost: 0 };

/**
 * Reads the config value as Go's json.Unmarshal would: a field that is absent is false/0 (only a
 * missing key gives the defaults, which is why Calico writes {"auto_allocate_blocks":true}).
 */
export function decodeIpamConfig(text: string): IpamConfig {
  const v = parseGoJson(text);
  if (!isObject(v)) throw new Error('IPAM config is not a JSON object');
  const bool = (k: string): boolean => {
    if (v[k] === undefined || v[k] === null) return false;
    if (typeof v[k] !== 'boolean') throw new Error(`IPAM config ${k} is not a boolean`);
    return v[k] as boolean;
  };
  const max = v.maxBlocksPerHost ?? 0;
  if (typeof max !== 'number' || !Number.isInteger(max) || max < 0) throw new Error('IPAM config maxBlocksPerHost is not a non-negative integer');
  const cooldown = v.ipCooldownSeconds ?? 0;
  if (typeof cooldown !== 'number' || !Number.isInteger(cooldown)) throw new Error('IPAM config ipCooldownSeconds is not an integer');
  return { strictAffinity: bool('strict_affinity'), autoAllocateBlocks: bool('auto_allocate_blocks'), maxBlocksPerHost: max, ...(cooldown !== 0 ? { ipCooldownSeconds: cooldown } : {}) };
}

export function encodeIpamConfig(c: IpamConfig): string {
  const parts: string[] = [];
  if (c.strictAffinity) parts.push('"strict_affinity":true');
  if (c.autoAllocateBlocks) parts.push('"auto_allocate_blocks":true');
  if (c.maxBlocksPerHost !== 0) parts.push(`"maxBlocksPerHost":${c.maxBlocksPerHost}`);
  return `{${parts.join(',')}}`;
}

/** An IP pool as IPAM uses it. */
export interface PoolInfo {
  readonly name: string;
  readonly cidr: IpNet;
  readonly blockSize: number;
  readonly disabled: boolean;
  readonly nodeSelector: Selector;
  /**
   * spec.namespaceSelector (Calico v3.31+; absent: every namespace): an unnamed pod request gets
   * addresses from the pool only when it matches the pod's namespace labels (libcalico-go's
   * SelectsNamespace; see AutoAssignRequest.namespaceLabels for what podway knows of them).
   */
  readonly namespaceSelector: Selector;
  /** The stored nodeSelector or namespaceSelector could not be parsed (the pool then selects no node). */
  readonly selectorError?: string;
  /** spec.allowedUses, [Workload, Tunnel] when absent or empty (libcalico-go's convertIpPoolFromStorage). */
  readonly allowedUses: readonly PoolUse[];
  /** spec.assignmentMode, Automatic when absent: a Manual pool gives addresses only to a request that names it. */
  readonly assignmentMode: PoolAssignmentMode;
}

/** Fills in apiVersion/kind when a stored value leaves them out, so the schema can check the rest. */
const asResource = (v: unknown, kind: string): unknown =>
  isObject(v as GoJsonValue) ? { apiVersion: CALICO_API_VERSION, kind, ...(v as object) } : v;

export function decodePool(text: string, key: string): PoolInfo {
  const raw = JSON.parse(text) as unknown;
  const parsed = schemas().IPPoolSchema.safeParse(asResource(raw, 'IPPool'));
  if (!parsed.success) throw new Error(`${key}: ${parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')}`);
  const pool = parsed.data;
  const cidr = parseNet(pool.spec.cidr);
  if (!cidr) throw new Error(`${key}: spec.cidr: ${pool.spec.cidr} is not a canonical network CIDR`);
  // A malformed stored selector (apply refuses one; another tool may have written it) does not
  // make every pool unreadable: this pool selects no node, and says why (selectorError).
  let nodeSelector: Selector;
  let selectorError: string | undefined;
  try {
    nodeSelector = new Selector(pool.spec.nodeSelector);
  } catch (e) {
    nodeSelector = new Selector('!all()');
    selectorError = `${key}: spec.nodeSelector: ${(e as Error).message}: the pool selects no node`;
  }
  const nsText = (raw as { spec?: { namespaceSelector?: unknown } }).spec?.namespaceSelector;
  let namespaceSelector = new Selector('');
  if (typeof nsText === 'string' && nsText !== '') {
    try {
      namespaceSelector = new Selector(nsText);
    } catch (e) {
      // libcalico-go's determinePools fails the request on it; podway leaves the pool out of it
      nodeSelector = new Selector('!all()');
      selectorError = `${key}: spec.namespaceSelector: ${(e as Error).message}: the pool selects no node`;
    }
  } else if (nsText !== undefined && nsText !== null && typeof nsText !== 'string') {
    nodeSelector = new Selector('!all()');
    selectorError = `${key}: spec.namespaceSelector: expected a string: the pool selects no node`;
  }
  const uses = pool.spec.allowedUses as PoolUse[] | undefined;
  const allowedUses = uses && uses.length > 0 ? uses : DEFAULT_POOL_USES;
  return { name: pool.metadata.name, cidr, blockSize: pool.spec.blockSize, disabled: pool.spec.disabled, nodeSelector, namespaceSelector, ...(selectorError ? { selectorError } : {}), allowedUses, assignmentMode: pool.spec.assignmentMode ?? 'Automatic' };
}

/**
 * A node's labels. NodeSchema validates the resource but keeps only metadata.name, so the labels
 * are read from the raw value here (string values only, as Kubernetes labels are).
 */
export function decodeNodeLabels(text: string, key: string): Labels {
  const raw = JSON.parse(text) as { metadata?: { labels?: unknown } };
  const parsed = schemas().NodeSchema.safeParse(asResource(raw, 'Node'));
  if (!parsed.success) throw new Error(`${key}: ${parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')}`);
  const labels = raw.metadata?.labels;
  if (labels === undefined || labels === null) return {};
  if (typeof labels !== 'object' || Array.isArray(labels)) throw new Error(`${key}: metadata.labels is not an object`);
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(labels)) {
    if (typeof v !== 'string') throw new Error(`${key}: metadata.labels.${k} is not a string`);
    out[k] = v;
  }
  return out;
}
