/**
 * calicoctl-shaped IPAM commands on the cluster datastore (etcd: or embedded:):
 *   podway ipam show [--show-blocks] [--show-borrowed] [--show-configuration] [--ip IP] [-o json]
 *   podway ipam check [-o json|FILE] [--show-all-ips] [--grace-period D]   exit 3 when it finds problems
 *   podway ipam release --ip IP [--ip IP...] | --handle H [--force] | --from-report FILE [--from-report FILE...]
 *                                     exit 4 when an address was reassigned (or the handle given one) since its check
 *   podway ipam assign --node N [--handle H] [--count K | --ip IP] [--pool CIDR...]
 *   podway ipam configure [--strictaffinity true|false] [--max-blocks-per-host N]
 * All of them read and write Calico's own IPAM keys (src/control/ipam), so calicoctl on the same
 * etcd sees what podway did and the other way round. Errors exit 1 with `podway: <reason>`.
 */
import { DEFAULT_PENDING_DEL_DIR } from '../cni/config';
import { UsageError } from './usage-error';
import { Command, Option } from 'commander';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join as joinPath } from 'node:path';
import {
  AllocationBlock, auditIpam, AuditedAllocation, AuditProblem, BLOCK_PREFIX, HANDLE_PREFIX, DEFAULT_LEAK_GRACE_MS, formatAttrs, handleKey, sanitizeHandle,
  formatDuration, Ipam, IPAM_CONFIG_KEY, IpamAudit, IpamProblem, IpOwner, ownersOf, parseBlockKey, parseDuration, PoolUsage, readOwners,
} from '../control/ipam';
import { formatIp, netContains, parseIp } from '../control/ipam/net';
import { CLUSTER_INFORMATION_KEY, clusterGuidOf, shortGuid } from '../control/kv/cluster-guid';
import type { KvStore } from '../control/kv/kv';
import type { DatastoreSpec } from '../control/kv/spec';
import { resolveCommandSpec, specText } from './run-datastore';
import { calicoctlConfigOption, etcdCaCertOption, etcdCertOption, etcdKeyOption, EtcdTlsFlags, envWithEtcdTlsFlags } from './etcd-tls-options';
import { FILE_DATASTORE_READ_ONLY, withKv } from './resources-cmd';
import { controlRequest, defaultControlPath } from '../dataplane/control-client';
import { orphanPodLine, type OrphanPodAddress } from '../dataplane/orphan-pods';
import { ORPHAN_HANDLE_PREFIX } from '../control/ipam/orphan-holds';

/** How podway run found an orphan pod's address (orphan-pods.ts), passed on to the line. */
const ORPHAN_SOURCES: ReadonlySet<string> = new Set(['route', 'pod', 'deleted']);
import { staleEndpointLine, staleEndpoints, type StaleEndpoint, type WaitingEndpoint } from '../observe/stale-endpoints';
import { podwayCommand } from '../util/invocation';

type Out = (text: string) => void;

const DATASTORE_HELP = 'etcd:URL[,URL] or embedded:DIR (default -c FILE, else $PODWAY_DATASTORE, then DATASTORE_TYPE/ETCD_ENDPOINTS, then /etc/calico/calicoctl.cfg when it exists, then the embedded store)';
const NO_IPAM_IN_FILE = 'file: datastores hold no IPAM data (blocks, handles, affinities); use etcd: or embedded:';

/** The KvStore the options name (the file: datastore has no IPAM keys: refused). */
function kvSpec(o: { datastore?: string; config?: string } & EtcdTlsFlags, writing: boolean): Exclude<DatastoreSpec, { kind: 'file' }> {
  const spec = resolveCommandSpec(o.datastore, envWithEtcdTlsFlags(o), o);
  if (spec.kind === 'file') throw new Error(writing ? FILE_DATASTORE_READ_ONLY : NO_IPAM_IN_FILE);
  return spec;
}

async function withIpam<T>(o: { datastore?: string }, writing: boolean, fn: (ipam: Ipam, kv: KvStore) => Promise<T>, mustExist = !writing): Promise<T> {
  return withKv(kvSpec(o, writing), (kv) => fn(new Ipam(kv), kv), mustExist, writing);
}

// ---------------------------------------------------------------------------------------------
// Go's number formatting, as calicoctl prints usage

/** Go's exact-tie rounding for %.f: half to even (x.5 exactly), otherwise to nearest. */
function goRound(v: number): number {
  const f = Math.floor(v);
  const frac = v - f; // exact for doubles of this size
  if (frac === 0.5) return f % 2 === 0 ? f : f + 1;
  return frac < 0.5 ? f : f + 1;
}

/** fmt.Sprintf("%.5g", float64(n)) for a non-negative integer: 5 significant digits, trailing zeros dropped, %e from 1e5 up. */
export function goG5(n: number): string {
  // Integer-valued doubles beyond 2^53 are fine: an IPv6 pool's size (2^64 for a /64) is a float64 in calicoctl too.
  if (!Number.isInteger(n) || n < 0) throw new Error(`goG5: ${n} is not a non-negative integer`);
  const digits = BigInt(n).toString();
  if (digits.length <= 5) return digits;
  // Round to 5 significant digits, half to even on an exact tie (Go rounds the exact decimal).
  let head = BigInt(digits.slice(0, 5));
  const rest = digits.slice(5);
  const half = '5' + '0'.repeat(rest.length - 1);
  if (rest > half || (rest === half && head % 2n === 1n)) head += 1n;
  let exp = digits.length - 1;
  let mant = head.toString();
  if (mant.length > 5) { mant = mant.slice(0, 5); exp += 1; } // 99999.5 → 100000
  mant = mant.replace(/0+$/, '');
  const m = mant.length > 1 ? `${mant[0]}.${mant.slice(1)}` : mant;
  return `${m}e+${String(exp).padStart(2, '0')}`;
}

/** calicoctl's "%.5g (%.f%%)". */
export function withPercentage(n: number, capacity: number): string {
  return `${goG5(n)} (${capacity === 0 ? 'NaN' : goRound((100 * n) / capacity)}%)`;
}

// ---------------------------------------------------------------------------------------------
// The boxed tables calicoctl prints (olekukonko/tablewriter defaults): headers centred, cells
// that are plain numbers right-aligned, everything else left-aligned, one space of padding.

const NUMERIC = /^-?(?:\d{1,3}(?:,\d{3})*|\d+)(?:\.\d+)?$/;

export function renderBoxTable(headers: readonly string[], rows: readonly (readonly string[])[]): string {
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const border = '+' + widths.map((w) => '-'.repeat(w + 2)).join('+') + '+';
  const centre = (s: string, w: number) => {
    const gap = w - s.length;
    const left = Math.floor(gap / 2);
    return ' '.repeat(left) + s + ' '.repeat(gap - left);
  };
  const line = (cells: readonly string[], header: boolean) =>
    '| ' + cells.map((c, i) => (header ? centre(c, widths[i]!) : NUMERIC.test(c) ? c.padStart(widths[i]!) : c.padEnd(widths[i]!))).join(' | ') + ' |';
  return [border, line(headers, true), border, ...rows.map((r) => line(r, false)), border].join('\n') + '\n';
}

// ---------------------------------------------------------------------------------------------
// show

function usageRows(usage: readonly PoolUsage[], showBlocks: boolean): string[][] {
  const rows: string[][] = [];
  const row = (kind: string, cidr: string, size: number, inUse: number) =>
    [kind, cidr, goG5(size), withPercentage(inUse, size), withPercentage(size - inUse, size)];
  for (const pool of usage) {
    // As calicoctl: the group of blocks that are in no pool (0.0.0.0/0) gets no pool row.
    if (pool.cidr !== '0.0.0.0/0') rows.push(row('IP Pool', pool.cidr, pool.size, pool.inUse));
    if (showBlocks) for (const b of pool.blocks) rows.push(row('Block', b.cidr, b.size, b.inUse));
  }
  return rows;
}

interface BorrowedIp {
  readonly ip: string;
  readonly borrowingNode: string;
  readonly block: string;
  readonly blockOwner: string;
  readonly type: string;
  readonly allocatedTo: string;
}

interface StoredBlock {
  readonly key: string;
  readonly block: AllocationBlock | null;
  readonly error?: string;
}

/** Every block as stored, in key order; a block that cannot be read is kept with its error. */
async function readBlocks(kv: KvStore): Promise<StoredBlock[]> {
  const out: StoredBlock[] = [];
  for (const e of (await kv.list(BLOCK_PREFIX)).entries) {
    const cidr = parseBlockKey(e.key);
    if (!cidr) continue;
    try {
      out.push({ key: e.key, block: AllocationBlock.decode(e.value, cidr) });
    } catch (err) {
      out.push({ key: e.key, block: null, error: (err as Error).message });
    }
  }
  return out;
}

/**
 * calicoctl's getBorrowedIPs: addresses whose owner's "node" attribute differs from the block's
 * owner (or any address in a block nobody owns); ones with no node attribute cannot be classified.
 */
function borrowedIps(blocks: readonly StoredBlock[]): { borrowed: BorrowedIp[]; unclassified: number } {
  const borrowed: BorrowedIp[] = [];
  let unclassified = 0;
  for (const { block } of blocks) {
    if (!block) continue;
    const parts = (block.affinity ?? '').split(':');
    const owner = block.affinity === null ? '' : parts.length === 2 ? parts[1]! : parts[0]!;
    block.allocations.forEach((a, o) => {
      if (a === null) return;
      const attrs = block.attributeOf(o)?.secondary ?? {};
      const node = attrs.node;
      if (node === undefined) { unclassified++; return; }
      if (node === owner) return;
      const ns = attrs.namespace ?? '';
      let type = attrs.type ?? '';
      let allocatedTo = '';
      if (attrs.vmi !== undefined) { type = 'vmi'; allocatedTo = `${ns}/${attrs.vmi}`; }
      else if (attrs.pod !== undefined) { type = 'pod'; allocatedTo = `${ns}/${attrs.pod}`; }
      borrowed.push({ ip: block.ordinalToIp(o), borrowingNode: node, block: block.cidr.text, blockOwner: owner, type, allocatedTo });
    });
  }
  return { borrowed, unclassified };
}

interface ShowOpts {
  datastore?: string;
  showBlocks?: boolean;
  showBorrowed?: boolean;
  showConfiguration?: boolean;
  output: string;
}

async function showCommand(o: ShowOpts, out: Out): Promise<void> {
  await withIpam(o, false, async (ipam, kv) => {
    if (o.showConfiguration) {
      const c = await ipam.getConfig();
      const config = { StrictAffinity: c.strictAffinity, AutoAllocateBlocks: c.autoAllocateBlocks, MaxBlocksPerHost: c.maxBlocksPerHost };
      if (o.output === 'json') return out(JSON.stringify(config, null, 2) + '\n');
      return out(renderBoxTable(['PROPERTY', 'VALUE'], Object.entries(config).map(([k, v]) => [k, String(v)])));
    }
    if (o.showBorrowed) {
      const { borrowed, unclassified } = borrowedIps(await readBlocks(kv));
      if (o.output === 'json') return out(JSON.stringify({ borrowed, unclassified }, null, 2) + '\n');
      out(renderBoxTable(['IP', 'BORROWING-NODE', 'BLOCK', 'BLOCK OWNER', 'TYPE', 'ALLOCATED-TO'],
        borrowed.map((b) => [b.ip, b.borrowingNode, b.block, b.blockOwner, b.type, b.allocatedTo])));
      if (unclassified !== 0) {
        out(`\nNote: found ${unclassified} IP allocations without an explicit node association. Unable to determine if they are borrowed.\n`);
      }
      return;
    }
    const usage = await ipam.show();
    if (o.output === 'json') {
      const pools = o.showBlocks ? usage : usage.map(({ blocks: _blocks, ...pool }) => pool);
      return out(JSON.stringify(pools, null, 2) + '\n');
    }
    out(renderBoxTable(['GROUPING', 'CIDR', 'IPS TOTAL', 'IPS IN USE', 'IPS FREE'], usageRows(usage, !!o.showBlocks)));
    // A pool IPAM cannot read is listed with its blocks (they are not orphaned), and said why.
    for (const p of usage) if (p.skipped) out(`\nNote: IP pool ${p.name} (${p.cidr}) cannot be read: ${p.skipped}; its blocks are counted under it, not as orphaned.\n`);
  });
}

// ---------------------------------------------------------------------------------------------
// check: IPAM against itself (Ipam.check) and against the addresses workloads and nodes use (auditIpam)

/** Exit status of `ipam check` when it finds problems (1 is an error, 2 a usage error). */
export const CHECK_FOUND_PROBLEMS = 3;
/**
 * ipam check's exit code when it found no problems but could not check a part it was asked to, or
 * had to pick for itself: several podway processes run here and none was named (--node), or the
 * one asked did not answer or uses another datastore. Not 0: that would claim a clean check.
 */
export const CHECK_INCOMPLETE = 5;

const REPORT_FORMAT = 'podway-ipam-check-report/v1';

/** An address-without-handle problem counts once per address (calicoctl counts leaked IPs); others once. */
const problemCount = (p: IpamProblem): number => (p.kind === 'address-without-handle' ? (p.ips?.length ?? 1) : 1);

async function clusterGuid(kv: KvStore): Promise<string> {
  const e = await kv.get(CLUSTER_INFORMATION_KEY);
  return e ? clusterGuidOf(e.value) ?? '' : '';
}

/** --grace-period's value: one that does not parse is a usage error (exit 2). */
function graceOf(text: string): number {
  try {
    return parseDuration(text);
  } catch (e) {
    throw new UsageError((e as Error).message);
  }
}

function graceOption(): Option {
  return new Option('--grace-period <duration>',
    'an allocation nobody uses is leaked only once its timestamp attribute is this old (a CNI ADD allocates before it writes the endpoint); 0 judges all')
    .default(formatDuration(DEFAULT_LEAK_GRACE_MS));
}

interface CheckOpts { datastore?: string; output: string; gracePeriod: string; showAllIps?: boolean; cniPendingDelDir?: string; cniConfDir: string; node?: string; control?: string }

/** This node's endpoints whose interface is missing, as its running `podway run` sees them. */
export interface MissingInterfaces {
  /** The control socket asked (null: none to ask). */
  readonly checkedOn: string | null;
  /** Why they were not checked (null when they were). */
  readonly notChecked: string | null;
  /** Those missing their interface longer than the grace period (counted as problems). */
  readonly endpoints: readonly StaleEndpoint[];
}

/** One pod interface of this node holding an address no endpoint of the datastore names, with what IPAM says of it. */
export interface OrphanPodFinding extends OrphanPodAddress {
  /** The address's allocation in the datastore checked: the handle and who uses it; null when IPAM has none (it may hand it out). */
  readonly allocation: { readonly handle: string | null; readonly owners: readonly string[]; readonly state: AuditedAllocation['state'] } | null;
}

/**
 * This node's pod interfaces holding an address no workload endpoint of this datastore names, as
 * its running `podway run` found them at its start (dataplane/orphan-pods.ts; `podway status`'s
 * `orphan pod:` lines): a pod made under another datastore keeps an address this one's IPAM may
 * give to a new pod. Each counts as a problem.
 */
export interface OrphanPods {
  readonly checkedOn: string | null;
  readonly notChecked: string | null;
  readonly pods: readonly OrphanPodFinding[];
}

/**
 * Asks this node's `podway run` (the control socket of --control, --node or $NODENAME, else the
 * only one under /run/podway) which endpoints wait for a missing interface, and since when, and
 * which pod interfaces hold an address no endpoint names (its status's orphanPods). Only the
 * node's own podway knows whether an interface exists (a WorkloadEndpoint says nothing of it),
 * so ipam check reports them only on the node it runs on; elsewhere, or with podway not running,
 * it says they were not checked.
 */
async function askNode(o: CheckOpts, graceMs: number, storeGuid: string): Promise<{ missing: MissingInterfaces; orphans: { checkedOn: string | null; notChecked: string | null; pods: readonly OrphanPodAddress[] }; incomplete: boolean }> {
  let sock: string | null = o.control ?? null;
  const node = o.node ?? (process.env.NODENAME || undefined);
  // A part not checked makes the check incomplete (exit CHECK_INCOMPLETE) when it was asked for
  // (--control, --node, $NODENAME) or when podway runs here but which one was meant cannot be
  // told; not when no podway here (a check run off the nodes) or the only one is another
  // datastore's: this node's part is not to be had there, and exit 0 stays as it was.
  let asked = sock !== null || node !== undefined;
  const neither = (checkedOn: string | null, notChecked: string) => ({ missing: { checkedOn, notChecked, endpoints: [] }, orphans: { checkedOn, notChecked, pods: [] }, incomplete: asked });
  // Only a podway run on the datastore checked: another one's endpoints are not these addresses'.
  const spec = kvSpec(o, false);
  const checked = specText(spec);
  type Status = { datastoreSource?: string; clusterGuid?: unknown; orphanPods?: unknown };
  // One store has one clusterGUID (ClusterInformation default) whatever URL reaches it
  // (127.0.0.1 here, 10.x in the run's unit; an etcd member's other address): compared when both
  // sides have one, else the run's datastore text, as before runs reported their GUID.
  const runGuid = (st: Status): string | null => (typeof st.clusterGuid === 'string' && st.clusterGuid !== '' ? st.clusterGuid : null);
  const onThisStore = (st: Status): boolean => {
    const theirs = runGuid(st);
    return theirs !== null && storeGuid !== '' ? theirs === storeGuid : st.datastoreSource === checked;
  };
  // the status of the socket picked among several (asked already: not asked again)
  let picked: Status | null = null;
  if (sock === null && node !== undefined) sock = defaultControlPath(node);
  if (sock === null) {
    let socks: string[] = [];
    try {
      socks = readdirSync('/run/podway').filter((f) => f.endsWith('.sock'));
    } catch {
      /* none */
    }
    if (socks.length === 0) return neither(null, 'no podway run here (no /run/podway/*.sock; give --node or --control on the node)');
    if (socks.length > 1) {
      // Several here (nodes of test clusters, or a socket a killed run left): the one meant is the
      // one on this datastore; others' endpoints are not these addresses', a silent socket no run.
      const ours = (await Promise.all(socks.map(async (f) => {
        const st = await controlRequest(`/run/podway/${f}`, { cmd: 'status' }, 3000).catch(() => null) as Status | null;
        return st && onThisStore(st) ? { f, st } : null;
      }))).filter((o): o is { f: string; st: Status } => o !== null);
      if (ours.length === 0) return neither(null, `no podway run here uses ${checked} (${socks.join(', ')} here: another datastore's or not answering; give --node or --control on the node)`);
      // Two or more nodes of this datastore here (a test cluster's): each one's part is its own
      // (its interfaces, its orphan pods), and this report is one node's. Which one this check
      // was meant for cannot be told, and neither part is guessed: incomplete (exit 5), naming
      // the --node of each, one check per node.
      if (ours.length > 1) {
        const nodes = ours.map((o) => o.f.slice(0, -'.sock'.length));
        return { ...neither(null, `several podway runs on ${checked} answer here (${ours.map((o) => o.f).join(', ')}), one node's part each: check each node with ${nodes.map((n) => `--node ${n}`).join(' or ')}`), incomplete: true };
      }
      socks = [ours[0]!.f];
      picked = ours[0]!.st;
    }
    sock = `/run/podway/${socks[0]}`;
  }
  let rows: unknown;
  let status: Status;
  try {
    status = picked ?? await controlRequest(sock, { cmd: 'status' }, 10_000) as Status;
    if (!onThisStore(status)) {
      const guids = runGuid(status) !== null && storeGuid !== '';
      return neither(sock, `podway run on ${sock} uses datastore ${status.datastoreSource ?? '?'}${guids ? ` (clusterGUID ${shortGuid(runGuid(status)!)})` : ''}, not ${checked}${guids ? ` (clusterGUID ${shortGuid(storeGuid)})` : ''}`);
    }
    asked = true; // the podway of this datastore: what it cannot give is a gap
    rows = await controlRequest(sock, { cmd: 'endpoints' }, 10_000);
  } catch (e) {
    return neither(sock, `podway run on ${sock} did not answer: ${(e as Error).message}`);
  }
  // A podway before orphanPods (or one that says none) lists none; one that lists them oddly is said.
  const orphanRows = status.orphanPods ?? [];
  const orphans = Array.isArray(orphanRows)
    ? { checkedOn: sock, notChecked: null, pods: orphanRows.filter((r): r is OrphanPodAddress => typeof r?.ifname === 'string' && typeof r?.address === 'string').map((r) => ({ ifname: r.ifname, address: r.address, ...(ORPHAN_SOURCES.has(String(r.source)) ? { source: r.source } : {}) })) }
    : { checkedOn: sock, notChecked: `podway run on ${sock} gave no list of orphan pod interfaces`, pods: [] };
  if (!Array.isArray(rows)) return { missing: { checkedOn: sock, notChecked: `podway run on ${sock} gave no endpoint list`, endpoints: [] }, orphans, incomplete: true };
  const waiting: WaitingEndpoint[] = [];
  for (const r of rows as Record<string, unknown>[]) {
    if (typeof r.state !== 'string' || !r.state.startsWith('waiting') || typeof r.since !== 'string') continue;
    waiting.push({ workload: String(r.workload), interface: String(r.interface), networks: Array.isArray(r.networks) ? r.networks.map(String) : [], error: String(r.error ?? ''), since: r.since, missing: r.state === 'waiting: interface missing' });
  }
  return { missing: { checkedOn: sock, notChecked: null, endpoints: staleEndpoints(waiting, Date.now(), graceMs) }, orphans, incomplete: orphans.notChecked !== null };
}

/** An address as the audit writes it (formatIp), whatever form podway run gave it in. */
function canonicalIp(text: string): string {
  const ip = parseIp(text);
  return ip === null ? text : formatIp(ip.version, ip.value);
}

/** What IPAM of the datastore checked says of an orphan pod's address (the case that hurts: given to another pod). */
function orphanAllocationText(f: OrphanPodFinding): string {
  const a = f.allocation;
  if (a === null) return 'IPAM here has no allocation of it: it may hand it out to a new pod';
  const holder = a.handle ? `handle ${a.handle}` : 'no handle';
  // held by podway run or the CNI ADD on the node so that no pod is given it (control/ipam/orphan-holds.ts)
  if (a.handle?.startsWith(ORPHAN_HANDLE_PREFIX) && a.owners.length === 0) return `IPAM here holds it for ${holder}, which podway on the node took so no new pod is given it; released by podway there once the interface is gone`;
  return a.owners.length ? `IPAM here gives it to ${a.owners.join(', ')} (${holder}): two pods with one address` : `IPAM here holds it for ${holder}, used by no endpoint`;
}

/** A DEL the CNI plugin deferred while etcd was unreachable, as check reports it. */
export interface DeferredCniRelease {
  readonly file: string;
  readonly network: string;
  readonly containerID: string;
  readonly handle: string | null;
  readonly endpoints: readonly string[];
  readonly deferredAt: string;
  /** For the datastore checked (else another one's, left for its podway). */
  readonly thisDatastore: boolean;
}

/**
 * Where this host's CNI plugin spools deferred DELs, found as the plugin finds it: the
 * pending_del_dir of each podway plugin in the conflists of `confDir` (what `podway cni install
 * --pending-del-dir` wrote; the default dir when a podway plugin names none), each with the file
 * that names it. No podway conflist there (or no such dir): the default dir. A conflist that is not
 * JSON is skipped (it is not podway's to judge here).
 */
export function cniPendingDelDirs(confDir: string): { dir: string; from: string }[] {
  const found = new Map<string, string>();
  let names: string[] = [];
  try {
    names = readdirSync(confDir).filter((n) => n.endsWith('.conflist') || n.endsWith('.conf')).sort();
  } catch { /* no CNI config dir */ }
  for (const name of names) {
    const file = joinPath(confDir, name);
    let conf: { type?: unknown; pending_del_dir?: unknown; plugins?: unknown };
    try {
      conf = JSON.parse(readFileSync(file, 'utf8'));
    } catch { continue; }
    const plugins = Array.isArray(conf?.plugins) ? conf.plugins as { type?: unknown; pending_del_dir?: unknown }[] : [conf];
    for (const p of plugins) {
      if (p?.type !== 'podway') continue;
      const dir = typeof p.pending_del_dir === 'string' && p.pending_del_dir.startsWith('/') ? p.pending_del_dir : DEFAULT_PENDING_DEL_DIR;
      if (!found.has(dir)) found.set(dir, file);
    }
  }
  if (found.size === 0) return [{ dir: DEFAULT_PENDING_DEL_DIR, from: `the default: no podway network in ${confDir}` }];
  return [...found].map(([dir, file]) => ({ dir, from: file }));
}

/** The plugin's spool (src/cni/pending-del.ts): read here, never changed. */
function deferredCniReleases(dir: string, spec: DatastoreSpec): { entries: DeferredCniRelease[]; unreadable: string[] } {
  const { readPending, datastoreKey } = require('../cni/pending-del') as typeof import('../cni/pending-del');
  const key = datastoreKey(spec);
  const entries: DeferredCniRelease[] = [];
  const unreadable: string[] = [];
  for (const s of readPending(dir)) {
    if (!s.entry) {
      unreadable.push(`${s.file} (${s.error})`);
      continue;
    }
    const e = s.entry;
    entries.push({ file: s.file, network: e.network, containerID: e.containerID, handle: e.handle, endpoints: e.endpoints.map((r) => `${r.namespace}/${r.name}`), deferredAt: e.deferredAt, thisDatastore: e.datastore === key });
  }
  return { entries, unreadable };
}

/** What `ipam check -o json` prints and `-o FILE` writes; `release --from-report` reads it back. */
export interface CheckReport {
  readonly format: typeof REPORT_FORMAT;
  readonly generatedAt: string;
  readonly datastore: string;
  readonly clusterGUID: string;
  readonly gracePeriod: string;
  readonly blocks: number;
  readonly problemCount: number;
  readonly problems: readonly (IpamProblem | AuditProblem)[];
  readonly summary: Record<string, number>;
  readonly allocations: readonly AuditedAllocation[];
  readonly leakedHandles: IpamAudit['leakedHandles'];
  readonly outsidePools: IpamAudit['outsidePools'];
  /** DELs this host's CNI plugin deferred while etcd was down (not problems: podway run replays them). */
  readonly deferredCniReleases: readonly DeferredCniRelease[];
  /** This node's endpoints whose interface has been missing longer than the grace period (problems). */
  readonly missingInterfaces: MissingInterfaces;
  /** This node's pod interfaces holding an address no endpoint of this datastore names (problems). */
  readonly orphanPods: OrphanPods;
  /** What was not checked that makes the exit code CHECK_INCOMPLETE rather than 0 (empty: all was). */
  readonly notChecked: readonly string[];
}

/**
 * -o values that name an output format elsewhere (get -o yaml|wide|ps, kubectl's name) or are
 * table/json in another case. `ipam check -o` keeps calicoctl's meaning, a FILE for any value but
 * table and json, so these still name a file; a new file of that name was most likely meant as a
 * format, so check says so on stderr (give -o ./yaml to mean the file and silence it).
 */
const FORMAT_LIKE = new Set(['yaml', 'yml', 'wide', 'ps', 'name', 'text', 'table', 'json']);

async function checkCommand(o: CheckOpts, out: Out, err: Out): Promise<{ total: number; incomplete: boolean }> {
  const graceMs = graceOf(o.gracePeriod);
  const toFile = o.output !== 'table' && o.output !== 'json' ? o.output : null;
  const formatLikeNewFile = toFile !== null && FORMAT_LIKE.has(toFile.toLowerCase()) && !existsSync(toFile);
  const { problems, blocks, pools, audit, guid, source } = await withIpam(o, false, async (ipam, kv) => {
    const stored = await readBlocks(kv);
    return {
      problems: await ipam.check(), blocks: stored, pools: await ipam.listPools(),
      audit: await auditIpam(kv, { gracePeriodMs: graceMs }), guid: await clusterGuid(kv), source: kv.description,
    };
  });
  // --cni-pending-del-dir, else where the installed CNI config says the plugin spools.
  const spools = o.cniPendingDelDir !== undefined ? [{ dir: o.cniPendingDelDir, from: '--cni-pending-del-dir' }] : cniPendingDelDirs(o.cniConfDir);
  const deferred = { entries: [] as DeferredCniRelease[], unreadable: [] as string[] };
  for (const { dir } of spools) {
    const d = deferredCniReleases(dir, kvSpec(o, false));
    deferred.entries.push(...d.entries);
    deferred.unreadable.push(...d.unreadable);
  }
  const node = await askNode(o, graceMs, guid);
  const missing = node.missing;
  const notChecked = !node.incomplete ? [] : [
    ...(missing.notChecked ? [`this node's workload endpoints missing their interface (${missing.notChecked})`] : []),
    ...(node.orphans.notChecked ? [`this node's orphan pod interfaces (${node.orphans.notChecked})`] : []),
  ];
  const allocationOf = new Map(audit.allocations.map((a) => [a.ip, a]));
  const orphans: OrphanPods = {
    ...node.orphans,
    pods: node.orphans.pods.map((p) => {
      const a = allocationOf.get(canonicalIp(p.address));
      return { ...p, allocation: a ? { handle: a.handle, owners: a.owners, state: a.state } : null };
    }),
  };
  const byKind = (k: AuditProblem['kind']) => audit.problems.filter((p) => p.kind === k);
  const total = problems.reduce((n, p) => n + problemCount(p), 0) + audit.problems.length + missing.endpoints.length + orphans.pods.length;
  const count = (s: AuditedAllocation['state']) => audit.allocations.filter((a) => a.state === s).length;
  const report: CheckReport = {
    format: REPORT_FORMAT, generatedAt: new Date().toISOString(), datastore: source, clusterGUID: guid,
    gracePeriod: formatDuration(graceMs), blocks: blocks.length, problemCount: total, problems: [...problems, ...audit.problems],
    summary: {
      allocations: audit.allocations.length, inUse: count('in-use'), leaked: count('leaked'), recent: count('recent'), cooldown: count('cooldown'),
      nodeIps: audit.nodeIps, workloadIps: audit.workloadIps, inUseIps: audit.inUseIps,
      notAllocated: byKind('not-allocated').length, outsidePools: audit.outsidePools.length,
    },
    allocations: audit.allocations, leakedHandles: audit.leakedHandles, outsidePools: audit.outsidePools,
    deferredCniReleases: deferred.entries,
    missingInterfaces: missing,
    orphanPods: orphans,
    notChecked,
  };
  if (toFile !== null) {
    try {
      writeFileSync(toFile, JSON.stringify(report, null, 2) + '\n');
    } catch (e) {
      throw new Error(`cannot write the report to ${toFile}: ${(e as Error).message}`);
    }
    if (formatLikeNewFile) {
      err(`podway: warning: -o ${toFile} is not an output format of ipam check: the JSON report was written to a new file named ${JSON.stringify(toFile)} (-o takes table, json, or a FILE as calicoctl's; give -o ./${toFile} to mean the file)\n`);
    }
  }
  if (o.output === 'json') {
    out(JSON.stringify(report, null, 2) + '\n');
    return { total, incomplete: notChecked.length > 0 };
  }
  const lines: string[] = ['Checking IPAM for inconsistencies...', '', 'Loading all IPAM blocks...', `Found ${blocks.length} IPAM blocks.`];
  const byBlock = new Map<string, IpamProblem[]>();
  const known = new Set(blocks.map((b) => b.block?.cidr.text ?? parseBlockKey(b.key)?.text ?? b.key));
  const elsewhere: IpamProblem[] = [];
  for (const p of problems) {
    if (p.block !== undefined && known.has(p.block)) byBlock.set(p.block, [...(byBlock.get(p.block) ?? []), p]);
    else elsewhere.push(p);
  }
  const auditOf = new Map(audit.allocations.map((a) => [a.ip, a]));
  let allocations = 0;
  let handleless = 0;
  for (const { key, block } of blocks) {
    const cidr = block?.cidr.text ?? parseBlockKey(key)?.text ?? key;
    lines.push(` IPAM block ${cidr} affinity=${block ? block.affinity ?? '<none>' : '<unreadable>'}:`);
    if (block) allocations += block.numInUse();
    if (block && o.showAllIps) {
      block.allocations.forEach((a, ord) => {
        if (a === null) return;
        const ip = block.ordinalToIp(ord);
        const owners = auditOf.get(ip)?.owners ?? [];
        lines.push(`  ${ip} allocated; attrs ${formatAttrs(block.attributeOf(ord))}; ${owners.length ? `in use by ${owners.join(', ')}` : auditOf.get(ip)?.state ?? ''}`);
      });
    }
    for (const p of byBlock.get(cidr) ?? []) {
      if (p.kind === 'address-without-handle' && block) {
        for (const ip of p.ips ?? []) {
          lines.push(`  ${ip} held by handle ${p.handle}, which does not exist; attrs ${formatAttrs(block.attributeOf(block.ipToOrdinal(ip) ?? -1))}`);
          handleless++;
        }
      } else {
        lines.push(`  ${p.message}`);
      }
    }
  }
  lines.push(`IPAM blocks record ${allocations} allocations.`);
  lines.push(`Found ${handleless} IPs held by a handle that does not exist (release --handle cannot free them).`, '');
  const active = pools.filter((p) => !p.disabled);
  lines.push('Loading all IPAM pools...', ...active.map((p) => `  ${p.cidr.text}`), `Found ${active.length} active IP pools.`, '');
  lines.push('Loading all nodes.', `Found ${audit.nodeIps} node tunnel IPs.`, '');
  lines.push('Loading all workload endpoints.', `Found ${audit.workloadIps} workload IPs.`, `Workloads and nodes are using ${audit.inUseIps} IPs.`, '');
  const section = (title: string, found: AuditProblem[], summary: string) =>
    lines.push(title, ...found.map((p) => `  ${p.message}`), summary.replace('%d', String(found.length)));
  for (const p of byKind('bad-owner')) lines.push(`  ${p.message}`);
  section('Scanning for IPs that are allocated but not actually in use...', byKind('leaked'), 'Found %d IPs that are allocated in IPAM but not actually in use.');
  const recent = audit.allocations.filter((a) => a.state === 'recent');
  if (recent.length > 0) {
    lines.push(`Left ${recent.length} unused allocations younger than the ${formatDuration(graceMs)} grace period unjudged (an ADD in progress allocates before it writes its endpoint): ${recent.map((a) => a.ip).join(', ')}`);
  }
  const cooling = audit.allocations.filter((a) => a.state === 'cooldown');
  if (cooling.length > 0) {
    lines.push(`Left ${cooling.length} allocations released into their ipCooldownSeconds unjudged (attribute releasedAt; freed by an IPAM operation once the cooldown is over): ${cooling.map((a) => a.ip).join(', ')}`);
  }
  lines.push('Scanning for IPs that are in use by a workload or node but not allocated in IPAM...');
  for (const x of audit.outsidePools) lines.push(`  ${x.ip} in use by ${x.owners.join(', ')} is not in any active IP pool (not IPAM's: not counted as a problem).`);
  for (const p of byKind('not-allocated')) lines.push(`  ${p.message}`);
  lines.push(`Found ${audit.outsidePools.length} in-use IPs that are not in active IP pools.`);
  lines.push(`Found ${byKind('not-allocated').length} in-use IPs that are in active IP pools but have no corresponding IPAM allocation.`);
  section('Scanning for IPs in use by one owner but held for another...', byKind('owner-mismatch'), 'Found %d IPs held (handle or attributes) for another owner than the one using them.');
  section('Scanning for IPs with multiple owners...', byKind('multiple-owners'), 'Found %d IPs used by more than one workload or node.');
  section('Scanning for workload endpoints of nodes that no longer exist...', byKind('endpoint-on-missing-node'), 'Found %d workload endpoints on nodes that do not exist.');
  lines.push('');
  lines.push('Scanning handles and block affinities...', ...elsewhere.map((p) => `  ${p.message}`));
  lines.push(`Found ${elsewhere.length} problems in handles and block affinities (${audit.leakedHandles.length} handles hold no IPs).`);
  lines.push('', `Scanning releases the CNI plugin deferred while etcd was unreachable (${spools.map((sp) => `${sp.dir}, from ${sp.from}`).join('; ')})...`);
  for (const d of deferred.entries) {
    const what = [d.handle ? `handle ${d.handle}` : null, d.endpoints.length ? `endpoint ${d.endpoints.join(' or ')}` : null].filter(Boolean).join(' and ');
    lines.push(`  ${what} of container ${d.containerID} (network ${d.network}): DEL deferred at ${d.deferredAt}; ${d.thisDatastore ? 'still counted as used above until podway run on this node replays it' : 'for another datastore'}`);
  }
  for (const u of deferred.unreadable) lines.push(`  unreadable: ${u}`);
  const mine = deferred.entries.filter((d) => d.thisDatastore).length;
  lines.push(`Found ${mine} deferred releases pending for this datastore${deferred.entries.length > mine ? ` (${deferred.entries.length - mine} for others)` : ''}; podway run replays them once etcd answers (not counted as problems).`, '');
  // Endpoints that use their address (so nothing above calls it leaked) for a pod that is gone.
  lines.push(`Scanning this node's workload endpoints whose interface is missing${missing.checkedOn ? ` (podway run on ${missing.checkedOn})` : ''}...`);
  if (missing.notChecked) lines.push(`  not checked: ${missing.notChecked}`);
  for (const e of missing.endpoints) lines.push(`  ${staleEndpointLine(e)}`);
  lines.push(missing.notChecked ? 'Found ? workload endpoints missing their interface (not checked).' : `Found ${missing.endpoints.length} workload endpoints whose interface has been missing for longer than the ${formatDuration(graceMs)} grace period.`, '');
  // Pods that keep an address this datastore's endpoints do not name (made under another datastore):
  // its IPAM may give the address to a new pod, or has already.
  lines.push(`Scanning this node's pod interfaces holding an address no workload endpoint of this datastore names${orphans.checkedOn ? ` (podway run on ${orphans.checkedOn}, found at its start and while it runs)` : ''}...`);
  if (orphans.notChecked) lines.push(`  not checked: ${orphans.notChecked}`);
  for (const p of orphans.pods) lines.push(`  ${orphanPodLine(p)}; ${orphanAllocationText(p)}`);
  lines.push(orphans.notChecked ? 'Found ? orphan pod interfaces (not checked).' : `Found ${orphans.pods.length} pod interfaces holding an address no workload endpoint of this datastore names.`, '');
  lines.push(notChecked.length > 0
    ? `Check incomplete; found ${total} problems in what was checked; not checked: ${notChecked.join('; ')}.`
    : `Check complete; found ${total} problems.`);
  if (toFile !== null) lines.push(`Report written to ${toFile}.`);
  out(lines.join('\n') + '\n');
  return { total, incomplete: notChecked.length > 0 };
}

// ---------------------------------------------------------------------------------------------
// show --ip

async function showIpCommand(o: ShowOpts & { ip: string; gracePeriod: string }, out: Out): Promise<void> {
  const graceMs = graceOf(o.gracePeriod);
  // a malformed address is a usage error (2), told before the datastore is opened
  const parsed = parseIp(o.ip);
  if (!parsed) throw new UsageError(`ipam show: --ip: invalid IP address ${JSON.stringify(o.ip)}`);
  await withIpam(o, false, async (ipam, kv) => {
    const canonical = formatIp(parsed.version, parsed.value);
    const attr = await ipam.allocationOf(canonical);
    const audit = await auditIpam(kv, { gracePeriodMs: graceMs });
    const owners = await ownersOf(kv, canonical);
    const alloc = audit.allocations.find((a) => a.ip === canonical) ?? null;
    const pool = (await ipam.listPools()).find((p) => p.cidr.version === parsed.version && netContains(p.cidr, parsed.value));
    const affinity = alloc ? (await readBlocks(kv)).find((b) => b.block?.cidr.text === alloc.block)?.block?.affinity ?? null : null;
    const problems = audit.problems.filter((p) => p.ip === canonical);
    if (o.output === 'json') {
      out(JSON.stringify({
        ip: canonical, allocated: attr !== null, pool: pool?.name ?? null, block: alloc?.block ?? null, blockAffinity: affinity,
        handle: attr?.handleId ?? null, attributes: attr?.secondary ?? {}, sequenceNumber: alloc?.sequenceNumber ?? null,
        state: alloc?.state ?? null, owners, problems,
      }, null, 2) + '\n');
      return;
    }
    const lines: string[] = [];
    if (attr === null) {
      lines.push(`IP ${canonical} is not assigned`);
      lines.push(pool ? `Pool: ${pool.name} (${pool.cidr.text})` : 'Pool: none (IPAM does not manage this address)');
    } else {
      lines.push(`IP ${canonical} is in use`);
      if (attr.handleId !== null) lines.push(`Handle ID: ${attr.handleId}`);
      const keys = Object.keys(attr.secondary ?? {}).sort();
      if (keys.length) lines.push('Attributes:', ...keys.map((k) => `  ${k}: ${attr.secondary![k]}`));
      else lines.push('No attributes defined');
      lines.push(`Pool: ${pool ? `${pool.name} (${pool.cidr.text})` : 'none (its pool was deleted)'}`);
      lines.push(`Block: ${alloc?.block ?? '?'} affinity=${affinity ?? '<none>'}${alloc?.borrowed ? ` (borrowed by ${alloc.node})` : ''}`);
      if (alloc?.sequenceNumber) lines.push(`Sequence number: ${alloc.sequenceNumber}`);
    }
    if (owners.length) for (const w of owners) lines.push(`Used by: ${w.name} on node ${w.node || '<none>'} (${w.field})`);
    else if (alloc?.state === 'recent') lines.push(`Used by: nothing yet (allocated less than ${formatDuration(graceMs)} ago: an ADD in progress, or leaked)`);
    else if (alloc?.state === 'cooldown') lines.push(`Used by: nothing (released at ${attr?.releasedAt ?? '?'}, in its cooldown: IPAMConfiguration ipCooldownSeconds)`);
    else if (attr !== null) lines.push('Used by: nothing (leaked)');
    else lines.push('Used by: nothing');
    for (const p of problems) lines.push(`Problem: ${p.message}`);
    out(lines.join('\n') + '\n');
  });
}

// ---------------------------------------------------------------------------------------------
// release

interface ReleaseOpts {
  datastore?: string; ip: string[]; handle?: string; force?: boolean; fromReport: string[]; gracePeriod: string;
  /** --grace-period was given (not the default): --from-report then uses it, not the reports' */
  graceGiven?: boolean;
}

const describeOwners = (owners: readonly IpOwner[]) => owners.map((w) => `${w.name}${w.kind === 'workload' ? ` on node ${w.node}` : ` (${w.field})`}`).join(', ');

/**
 * Exit status of `ipam release --ip` when an address was freed and assigned again (or its holder
 * changed) between the command's check and its release: that address is not released (the
 * others are); 1 is an error (nothing changed state for the failing address), 2 a usage error.
 */
export const RELEASE_CHANGED_SINCE_CHECK = 4;

async function releaseCommand(o: ReleaseOpts, out: Out, err: Out): Promise<void> {
  const modes = [o.ip.length > 0, o.handle !== undefined, o.fromReport.length > 0].filter(Boolean).length;
  if (modes !== 1) throw new UsageError('ipam release: give --ip IP (one or more), --handle H, or --from-report FILE (one or more)');
  // a malformed address is a usage error (2), told before the datastore is opened
  for (const ip of o.ip) if (!parseIp(ip)) throw new UsageError(`ipam release: --ip: invalid IP address ${JSON.stringify(ip)}`);
  if (o.fromReport.length > 0) return releaseFromReports(o, out);
  const code = await withIpam(o, true, (_ipam, kv) => releaseChecked(kv, o, out, err), true);
  if (code !== 0) process.exitCode = code;
}

/**
 * `ipam release --ip`/`--handle` on an open store: checks who uses each address and how old it
 * is, then releases. The release of an --ip address is a compare-and-swap against the allocation
 * the check judged (its handle, sequence number and attributes): a CNI DEL and ADD between the
 * two hand the address to a new pod, and an unconditional release would then free that live
 * pod's address. Returns the exit status (0, or RELEASE_CHANGED_SINCE_CHECK); throws on errors.
 */
export async function releaseChecked(kv: KvStore, o: Pick<ReleaseOpts, 'ip' | 'handle' | 'force' | 'gracePeriod'>, out: Out, err: Out): Promise<number> {
  const ipam = new Ipam(kv);
  // Who uses what is about to be released: a live endpoint's or node's address freed in IPAM is
  // handed to the next pod while the first still uses it.
  const owners = await readOwners(kv);
  // An allocation younger than the grace period and used by nobody yet may be a CNI ADD (or a
  // tunnel address) between its assignment and its endpoint (or Node) write: refused as in use.
  const graceMs = graceOf(o.gracePeriod);
  const audit = await auditIpam(kv, { gracePeriodMs: graceMs });
  let targets: string[];
  if (o.handle !== undefined) {
    // The name as stored: handles are kept up to a carriage return (sanitizeHandle), as Calico does.
    const wanted = sanitizeHandle(o.handle);
    targets = audit.allocations.filter((a) => a.handle === wanted).map((a) => a.ip);
  } else {
    targets = o.ip.map((ip) => {
      const p = parseIp(ip);
      if (!p) throw new Error(`invalid IP address ${JSON.stringify(ip)}`);
      return formatIp(p.version, p.value);
    });
  }
  const used = targets.map((ip) => ({ ip, by: owners.byIp.get(ip) ?? [] })).filter((u) => u.by.length > 0);
  if (used.length > 0 && !o.force) {
    throw new Error(`${used.map((u) => `IP address ${u.ip} is in use by ${describeOwners(u.by)}`).join('; ')}: releasing ${used.length > 1 ? 'them' : 'it'} lets IPAM hand ${used.length > 1 ? 'them' : 'it'} out again while still in use; delete the endpoint (or node) first, or pass --force; nothing was released`);
  }
  for (const u of used) err(`podway: warning: releasing ${u.ip} although ${describeOwners(u.by)} uses it (--force)\n`);
  const recent = audit.allocations.filter((a) => a.state === 'recent' && targets.includes(a.ip));
  if (recent.length > 0 && !o.force) {
    throw new Error(`${recent.map((a) => `IP address ${a.ip} was allocated ${formatDuration(Math.round((a.ageMs ?? 0) / 1000) * 1000)} ago (less than the grace period ${formatDuration(graceMs)}) and is used by nothing yet`).join('; ')}: an ADD may be in progress that writes its endpoint (or Node) next; wait, pass a shorter --grace-period, or pass --force; nothing was released`);
  }
  for (const a of recent) err(`podway: warning: releasing ${a.ip} although it was allocated ${formatDuration(Math.round((a.ageMs ?? 0) / 1000) * 1000)} ago (--force)\n`);
  // Each address is released only if it is still the allocation judged above (--force lifts the
  // owner and age checks, not this one: the warnings printed were about that allocation).
  const checked = new Map(audit.allocations.map((a) => [a.ip, a]));
  if (o.handle !== undefined) return releaseHandleChecked(kv, ipam, o.handle, targets.map((ip) => checked.get(ip)!), out, err);
  const notAllocated: string[] = [];
  let changed = 0;
  for (const ip of new Set(targets)) {
    const seen = checked.get(ip);
    // Not allocated at the check: not released even if an ADD has taken it since.
    if (!seen) { notAllocated.push(ip); continue; }
    const r = await ipam.releaseIfUnchanged(ip, { handle: seen.handle, sequenceNumber: seen.sequenceNumber, attributes: seen.attributes });
    if (r.outcome === 'released') {
      out(`Successfully released IP address ${ip}\n`);
      const note = orphanHoldNote(seen);
      if (note) err(`podway: note: ${ip}: ${note}\n`);
    }
    else if (r.outcome === 'not-allocated') notAllocated.push(ip); // released by someone else meanwhile
    else { err(`podway: ${ip} was reassigned since the check; not released (${r.reason})\n`); changed++; }
  }
  if (notAllocated.length > 0) {
    throw new Error(`IP address${notAllocated.length > 1 ? 'es' : ''} ${notAllocated.join(', ')} ${notAllocated.length > 1 ? 'are' : 'is'} not assigned`);
  }
  return changed > 0 ? RELEASE_CHANGED_SINCE_CHECK : 0;
}

/**
 * `release --handle` after its check: the handle's addresses the check judged, each by the same
 * compare-and-swap as `--ip` (a CNI DEL and ADD between the check and the release keep the new
 * pod's address), never an unconditional release of whatever the handle holds by then. An address
 * assigned to the handle since the check (a retried ADD of the same container) was judged by
 * nothing and is not released either. Either way the handle changed since the check: said on
 * stderr, the rest released, exit RELEASE_CHANGED_SINCE_CHECK. The handle key goes with its last
 * address (Ipam's handle count). A handle holding no address (an ADD that failed between counting
 * its address in the handle and writing the block: a full disk, etcd gone) is deleted, by
 * compare-and-swap on the revision read before the blocks were scanned again for it: an ADD that
 * counts an address in it after that read fails the swap, and one that counted before writes its
 * block guarded on that handle revision, which fails once the handle is gone.
 */
async function releaseHandleChecked(kv: KvStore, ipam: Ipam, handleIn: string, judged: readonly AuditedAllocation[], out: Out, err: Out): Promise<number> {
  const handle = sanitizeHandle(handleIn);
  if (judged.length === 0) {
    const he = await kv.get(handleKey(handle));
    if (!he) throw new Error(`handle ${handleIn} does not exist`);
    const holds = (await auditIpam(kv, { gracePeriodMs: 0 })).allocations.filter((a) => a.handle === handle).map((a) => a.ip);
    if (holds.length > 0 || !(await kv.delete(handleKey(handle), he.modRevision))) {
      err(`podway: handle ${handleIn} ${holds.length > 0 ? `was given ${holds.join(', ')}` : 'changed'} since the check; not released (run release --handle again to judge it)\n`);
      return RELEASE_CHANGED_SINCE_CHECK;
    }
    out(`Successfully released 0 IP address(es) of handle ${handleIn}; the handle held none and is deleted\n`);
    return 0;
  }
  const released: string[] = [];
  let changed = 0;
  for (const a of judged) {
    const r = await ipam.releaseIfUnchanged(a.ip, { handle: a.handle, sequenceNumber: a.sequenceNumber, attributes: a.attributes });
    if (r.outcome === 'released') released.push(a.ip);
    else if (r.outcome === 'not-allocated') err(`podway: ${a.ip} of handle ${handleIn} was released by someone else since the check\n`);
    else { err(`podway: ${a.ip} was reassigned since the check; not released (${r.reason})\n`); changed++; }
  }
  const judgedIps = new Set(judged.map((a) => a.ip));
  const added = (await auditIpam(kv, { gracePeriodMs: 0 })).allocations.filter((a) => a.handle === handleIn && !judgedIps.has(a.ip)).map((a) => a.ip);
  if (added.length > 0) {
    err(`podway: handle ${handleIn} was given ${added.join(', ')} since the check; not released (run release --handle again to judge ${added.length > 1 ? 'them' : 'it'})\n`);
    changed++;
  }
  out(`Successfully released ${released.length} IP address(es) of handle ${handleIn}${released.length ? `: ${released.join(', ')}` : ''}\n`);
  const note = released.length > 0 ? orphanHoldNote(judged[0]!) : null;
  if (note) err(`podway: note: ${released.join(', ')}: ${note}\n`);
  return changed > 0 ? RELEASE_CHANGED_SINCE_CHECK : 0;
}

function readReport(file: string): CheckReport {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    throw new Error(`cannot read report ${file}: ${(e as Error).message}`);
  }
  let r: Partial<CheckReport>;
  try {
    r = JSON.parse(text) as Partial<CheckReport>;
  } catch (e) {
    throw new Error(`report ${file} is not JSON: ${(e as Error).message}`);
  }
  if (r?.format !== REPORT_FORMAT || !Array.isArray(r.allocations)) {
    throw new Error(`${file} is not a report of ${podwayCommand()} ipam check -o FILE (format ${REPORT_FORMAT})`);
  }
  return r as CheckReport;
}

/**
 * calicoctl's release --from-report: the addresses every report calls leaked, each re-checked
 * against the datastore now (still allocated with the same handle and sequence number, still used
 * by no workload or node, older than the grace period) and released with a compare-and-swap that
 * fails if it was assigned again meanwhile. What changed since the report is skipped and said.
 */
async function releaseFromReports(o: ReleaseOpts, out: Out): Promise<void> {
  const reports = o.fromReport.map((f) => ({ file: f, report: readReport(f) }));
  // The grace period the reports were checked with (the longest, when they differ), unless
  // --grace-period is given: a report of `check --grace-period 0` called young addresses leaked
  // knowingly, and re-checking them with the default 15m would skip every one.
  let graceMs = graceOf(o.gracePeriod);
  if (!o.graceGiven) {
    const given = reports.map(({ file, report }) => {
      if (typeof report.gracePeriod !== 'string') return null;
      try {
        return parseDuration(report.gracePeriod);
      } catch {
        throw new Error(`report ${file}: gracePeriod ${JSON.stringify(report.gracePeriod)} is not a duration`);
      }
    });
    if (given.every((g) => g !== null)) {
      const fromReports = Math.max(...(given as number[]));
      if (fromReports !== graceMs) out(`Using the report's grace period ${formatDuration(fromReports)} (not the default ${formatDuration(graceMs)}; --grace-period overrides it).\n`);
      graceMs = fromReports;
    }
  }
  const key = (a: AuditedAllocation) => `${a.ip} ${a.handle ?? ''} ${a.sequenceNumber ?? ''}`;
  // Leaked in every report: reports taken some time apart leave out allocations in transit.
  let candidates = new Map(reports[0]!.report.allocations.filter((a) => a.state === 'leaked').map((a) => [key(a), a]));
  const handleKey = (h: CheckReport['leakedHandles'][number]) => `${h.key} ${h.modRevision}`;
  let handles = new Map((reports[0]!.report.leakedHandles ?? []).map((h) => [handleKey(h), h]));
  for (const { report } of reports.slice(1)) {
    const leaked = new Set(report.allocations.filter((a) => a.state === 'leaked').map(key));
    candidates = new Map([...candidates].filter(([k]) => leaked.has(k)));
    const idle = new Set((report.leakedHandles ?? []).map(handleKey));
    handles = new Map([...handles].filter(([k]) => idle.has(k)));
  }
  await withIpam(o, true, async (ipam, kv) => {
    const guid = await clusterGuid(kv);
    for (const { file, report } of reports) {
      if (report.clusterGUID && guid && report.clusterGUID !== guid) {
        throw new Error(`report ${file} is of another cluster (clusterGUID ${report.clusterGUID}, this datastore's is ${guid}); refusing to release`);
      }
    }
    const now = await auditIpam(kv, { gracePeriodMs: graceMs });
    await releaseLeakedIps(ipam, now, candidates.values(), graceMs, out);
    // Handles that held no address: deleted only at the revision the report saw (an assignment
    // since would have incremented them) and only if no block names them now (an ADD in flight at
    // report time had created its handle but not yet written its block). An ADD still stalled
    // between its handle and its block write is safe too: Ipam guards that block write on the
    // handle's revision, so a deleted handle fails it and the ADD counts in a new handle.
    if (handles.size === 0) { out('The report names no handles without IPs to delete.\n'); return; }
    const named = new Set((await auditIpam(kv, { gracePeriodMs: graceMs })).allocations.map((a) => a.handle));
    let deleted = 0;
    for (const h of handles.values()) {
      if (h.key !== `${HANDLE_PREFIX}${h.id}`) throw new Error(`report names handle ${JSON.stringify(h.id)} under key ${JSON.stringify(h.key)}; refusing`);
      if (named.has(h.id)) out(`  skipped handle ${h.id}: holds IPs now\n`);
      else if (await kv.delete(h.key, h.modRevision)) { out(`  deleted handle ${h.id}\n`); deleted++; continue; }
      else out(`  skipped handle ${h.id}: gone or changed since the report\n`);
    }
    out(`Deleted ${deleted} handles; skipped ${handles.size - deleted}.\n`);
  });
}

/**
 * What releasing a hold of an orphan pod's address (control/ipam/orphan-holds.ts) means: the
 * operator's release stands (the node's podway does not hold it again while the pod keeps it), and
 * IPAM may now give it to another pod. Null for any other allocation.
 */
function orphanHoldNote(a: { readonly handle: string | null; readonly attributes?: Readonly<Record<string, string>> }): string | null {
  if (!a.handle?.startsWith(ORPHAN_HANDLE_PREFIX)) return null;
  const node = a.attributes?.node ?? '?';
  const ifname = a.attributes?.interface ?? a.handle.slice(ORPHAN_HANDLE_PREFIX.length + node.length + 1);
  return `a pod on node ${node} (interface ${ifname}) held this address, no endpoint naming it; released as asked: podway on ${node} will not hold it again while that interface has it, and IPAM may give it to another pod (two pods, one address) until that pod is removed`;
}

/** Releases the report's leaked addresses that are still the same allocation and still unused. */
async function releaseLeakedIps(ipam: Ipam, audit: IpamAudit, leaked: Iterable<AuditedAllocation>, graceMs: number, out: Out): Promise<void> {
  const list = [...leaked];
  if (list.length === 0) { out('The report names no leaked IPs to release.\n'); return; }
  const now = new Map(audit.allocations.map((a) => [a.ip, a]));
  let released = 0;
  let skipped = 0;
  out(`Releasing ${list.length} leaked IPs from the report, each re-checked first...\n`);
  for (const a of list) {
    const cur = now.get(a.ip);
    let why: string | null = null;
    if (!cur) why = 'not allocated any more';
    else if (cur.handle !== a.handle || cur.sequenceNumber !== a.sequenceNumber) why = 'assigned again since the report';
    else if (cur.state === 'in-use') why = `in use by ${cur.owners.join(', ')} now`;
    else if (cur.state === 'recent') why = `allocated less than ${formatDuration(graceMs)} ago`;
    else if (cur.state === 'cooldown') why = 'released already, in its cooldown (releasedAt)';
    if (why === null) {
      const r = await ipam.releaseIfUnchanged(a.ip, { handle: a.handle, sequenceNumber: a.sequenceNumber, attributes: a.attributes });
      if (r.outcome === 'released') {
        const note = orphanHoldNote(a);
        out(`  released ${a.ip} (handle ${a.handle ?? '<none>'})${note ? `: ${note}` : ''}\n`);
        released++;
        continue;
      }
      why = r.outcome === 'not-allocated' ? 'not allocated any more' : r.reason!;
    }
    out(`  skipped ${a.ip}: ${why}\n`);
    skipped++;
  }
  out(`Released ${released} IPs; skipped ${skipped}.\n`);
}

// ---------------------------------------------------------------------------------------------
// assign, configure

interface AssignOpts {
  datastore?: string;
  node: string;
  handle?: string;
  count?: string;
  ip?: string;
  pool: string[];
  ipv6?: boolean;
}

async function assignCommand(o: AssignOpts, out: Out): Promise<void> {
  if (o.ip !== undefined && o.count !== undefined) throw new UsageError('ipam assign: give --count K or --ip IP, not both');
  if (o.ip !== undefined && o.pool.length > 0) throw new UsageError('ipam assign: --pool chooses pools for --count; --ip names its address already');
  if (o.ip !== undefined && o.ipv6) throw new UsageError('ipam assign: --ipv6 chooses the family for --count; --ip names its address already');
  const count = o.count === undefined ? 1 : Number(o.count);
  if (!Number.isInteger(count) || count < 1 || count > 65536) throw new UsageError(`ipam assign: --count must be 1..65536, got ${JSON.stringify(o.count)}`);
  // timestamp: `ipam check` dates the allocation and leaves it unjudged for the grace period
  const attrs = { node: o.node, timestamp: new Date().toISOString() };
  const handleId = o.handle ?? null;
  await withIpam(o, true, async (ipam) => {
    if (o.ip !== undefined) {
      await ipam.assignIp({ ip: o.ip, handleId, attrs, node: o.node, use: 'Workload' });
      out(`${o.ip}\n`);
      return;
    }
    const r = await ipam.autoAssign({ node: o.node, count, handleId, attrs, pools: o.pool.length ? o.pool : undefined, version: o.ipv6 ? 6 : 4, use: 'Workload' });
    // What was assigned is printed even on a shortfall: those addresses are held until released.
    for (const ip of r.ips) out(`${ip}\n`);
    if (r.ips.length < count) {
      const reason = r.errors?.length ? r.errors.join('; ') : 'no reason given';
      throw new Error(`assigned ${r.ips.length} of ${count} address(es): ${reason}`);
    }
  });
}

function parseBool(v: string): boolean {
  // Go's strconv.ParseBool, as calicoctl parses --strictaffinity.
  if (['1', 't', 'T', 'TRUE', 'true', 'True'].includes(v)) return true;
  if (['0', 'f', 'F', 'FALSE', 'false', 'False'].includes(v)) return false;
  throw new UsageError('invalid value. Use true or false to set strictaffinity');
}

async function configureCommand(o: { datastore?: string; strictaffinity?: string; maxBlocksPerHost?: string }, out: Out): Promise<void> {
  const strict = o.strictaffinity === undefined ? undefined : parseBool(o.strictaffinity);
  let maxBlocks: number | undefined;
  if (o.maxBlocksPerHost !== undefined) {
    maxBlocks = Number(o.maxBlocksPerHost);
    if (!/^\d+$/.test(o.maxBlocksPerHost) || !Number.isSafeInteger(maxBlocks) || maxBlocks > 2 ** 31 - 1) throw new UsageError('invalid value for maxblockhost. Use a valid number');
  }
  if (strict === undefined && maxBlocks === undefined) throw new UsageError('at least one configuration option must be specified');
  // libcalico-go's SetIPAMConfig refuses these (an error, nothing written); told before the store
  // is opened when the flags alone say it
  if (strict === false && (maxBlocks ?? 0) > 0) throw new UsageError(maxBlocksRefusal(maxBlocks!, 'given'));
  await withIpam(o, true, async (_ipam, kv) => {
    const { configureIpam } = require('../control/ipam-configuration') as typeof import('../control/ipam-configuration');
    // /calico/ipam/v2/config (and IPAMConfiguration default's spec when it is stored), written at
    // the revision read, so a concurrent change is not overwritten
    await configureIpam(kv, { ...(strict !== undefined ? { strictAffinity: strict } : {}), ...(maxBlocks !== undefined ? { maxBlocksPerHost: maxBlocks } : {}) }, (_before, after) => {
      if (after.strictAffinity !== true && after.autoAllocateBlocks !== true) {
        throw new Error(`Cannot disable 'StrictAffinity' and 'AutoAllocateBlocks' at the same time (AutoAllocateBlocks is false in ${IPAM_CONFIG_KEY}); nothing was written`);
      }
      const max = typeof after.maxBlocksPerHost === 'number' ? after.maxBlocksPerHost : 0;
      if (max > 0 && after.strictAffinity !== true) throw new Error(maxBlocksRefusal(max, maxBlocks !== undefined ? 'given' : 'stored'));
    });
  });
  if (strict !== undefined) out(`Successfully set StrictAffinity to: ${strict}\n`);
  if (maxBlocks !== undefined) out(`Successfully set MaxBlocksPerHost to: ${maxBlocks}\n`);
}

/**
 * libcalico-go's SetIPAMConfig refusal (ipam.go: "MaxBlocksPerHost requires StrictAffinity to be
 * enabled"; an error, as calicoctl prints it), with the values and the way out.
 */
function maxBlocksRefusal(max: number, how: 'given' | 'stored'): string {
  return how === 'given'
    ? `MaxBlocksPerHost requires StrictAffinity to be enabled: --max-blocks-per-host ${max} with StrictAffinity false; give --strictaffinity true with it, or --max-blocks-per-host 0 (not set: 20 blocks, borrowing allowed); nothing was written`
    : `MaxBlocksPerHost requires StrictAffinity to be enabled: MaxBlocksPerHost is ${max} in ${IPAM_CONFIG_KEY}; give --max-blocks-per-host 0 with --strictaffinity false (not set: 20 blocks, borrowing allowed); nothing was written`;
}

// ---------------------------------------------------------------------------------------------

/** Adds `podway ipam show|check|release|assign|configure` to `program`. */
export function addIpamCommands(program: Command, out: Out = (t) => void process.stdout.write(t), err: Out = (t) => void process.stderr.write(t)): void {
  const ipam = program.command('ipam').description('IP address management on the datastore, as calicoctl ipam');
  const output = () => new Option('-o, --output <format>', 'output format').choices(['table', 'json']).default('table');
  const collect = (v: string, prev: string[]) => [...prev, v];

  ipam
    .command('show')
    .description('usage per IP pool (and per block with --show-blocks), or borrowed addresses, or the IPAM configuration')
    .option('--show-blocks', 'a row per block too')
    .option('--show-borrowed', 'addresses a node uses from a block another node owns')
    .option('--show-configuration', 'the IPAM configuration (StrictAffinity, AutoAllocateBlocks, MaxBlocksPerHost)')
    .option('--ip <ip>', 'one address: allocated or not, its block, handle and attributes, and which workload or node uses it')
    .addOption(graceOption())
    .addOption(output())
    .option('--datastore <spec>', DATASTORE_HELP)
      .addOption(etcdCaCertOption()).addOption(etcdCertOption()).addOption(etcdKeyOption()).addOption(calicoctlConfigOption())
    .action((o: ShowOpts & { ip?: string; gracePeriod: string }) => (o.ip !== undefined ? showIpCommand({ ...o, ip: o.ip }, out) : showCommand(o, out)));

  ipam
    .command('check')
    .description(`compare IPAM with itself and with the addresses workloads and nodes use; exits ${CHECK_FOUND_PROBLEMS} when it finds problems, ${CHECK_INCOMPLETE} when it finds none but could not check this node's part (several podway runs here and no --node, or the one asked not answering)`)
    .addOption(new Option('-o, --output <format|file>', 'table, json (the report, to stdout), or a FILE to write the JSON report to (for release --from-report; any other value is a file name, as in calicoctl: -o yaml writes a file named yaml, with a warning)').default('table'))
    .option('--show-all-ips', 'list every allocation and who uses it')
    .option('--node <name>', 'also report this node\'s endpoints whose interface is missing, asking its podway run here (default $NODENAME, else the only podway run here)')
    .option('--control <path>', 'the control socket of the podway run to ask for them (default /run/podway/NODE.sock)')
    .option('--cni-pending-del-dir <dir>', `where this host's CNI plugin records DELs it deferred while etcd was unreachable (listed, not changed; default: the pending_del_dir of the podway networks in --cni-conf-dir, else ${DEFAULT_PENDING_DEL_DIR})`)
    .option('--cni-conf-dir <dir>', 'the CNI config dir whose podway conflists name the plugin\'s pending_del_dir', '/etc/cni/net.d')
    .addOption(graceOption())
    .option('--datastore <spec>', DATASTORE_HELP)
      .addOption(etcdCaCertOption()).addOption(etcdCertOption()).addOption(etcdKeyOption()).addOption(calicoctlConfigOption())
    .action(async (o: CheckOpts) => {
      const r = await checkCommand(o, out, err);
      if (r.total > 0) process.exitCode = CHECK_FOUND_PROBLEMS;
      else if (r.incomplete) process.exitCode = CHECK_INCOMPLETE;
    });

  ipam
    .command('release')
    .description(`release addresses (--ip, repeatable), every address of a handle (--handle), or the leaked addresses of check reports (--from-report); `
      + `an --ip/--handle address is released only if it is still the allocation the command checked: one assigned again meanwhile (or given to the handle since) is kept, said on stderr, and the exit status is ${RELEASE_CHANGED_SINCE_CHECK}`)
    .option('--ip <ip>', 'an address to release (repeatable)', collect, [])
    .option('--handle <id>', 'release every address of this handle, and the handle')
    .option('--from-report <file>', 'release what `ipam check -o FILE` found leaked, re-checking each first (repeatable: only what every report calls leaked)', collect, [])
    .option('--force', 'release --ip/--handle addresses even when a workload endpoint or node uses them')
    .addOption(graceOption())
    .option('--datastore <spec>', DATASTORE_HELP)
      .addOption(etcdCaCertOption()).addOption(etcdCertOption()).addOption(etcdKeyOption()).addOption(calicoctlConfigOption())
    .action((o: ReleaseOpts, cmd: Command) => releaseCommand({ ...o, graceGiven: cmd.getOptionValueSource('gracePeriod') !== 'default' }, out, err));

  ipam
    .command('assign')
    .description('assign addresses to a node from its blocks (claiming blocks as Calico does) and print them')
    .requiredOption('--node <name>', 'the node the addresses are for (must exist in the datastore)')
    .option('--handle <id>', 'handle to hold the addresses (release them together with release --handle); default none')
    .option('--count <n>', 'how many addresses (default 1)')
    .option('--ip <ip>', 'assign this one address instead')
    .option('--pool <cidr-or-name>', 'use this pool, whatever its nodeSelector (repeatable; default: enabled pools selecting the node)', collect, [])
    .option('--ipv6', 'assign IPv6 addresses from the IPv6 pools (default: IPv4)')
    .option('--datastore <spec>', DATASTORE_HELP)
      .addOption(etcdCaCertOption()).addOption(etcdCertOption()).addOption(etcdKeyOption()).addOption(calicoctlConfigOption())
    .action((o: AssignOpts) => assignCommand(o, out));

  ipam
    .command('configure')
    .description('change the IPAM configuration')
    .option('--strictaffinity <bool>', 'true: a node never borrows addresses from other nodes\' blocks')
    .option('--max-blocks-per-host <n>', 'most blocks a node may own (0: Calico\'s default, 20); above 0 it needs StrictAffinity true, as libcalico-go requires')
    .option('--datastore <spec>', DATASTORE_HELP)
      .addOption(etcdCaCertOption()).addOption(etcdCertOption()).addOption(etcdKeyOption()).addOption(calicoctlConfigOption())
    .action((o) => configureCommand(o, out));
}
