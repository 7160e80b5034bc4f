/**
 * calicoctl-shaped IPAM commands on the cluster datastore (etcd: or embedded:):
 *   podway ipam show [--show-blocks] [--show-borrowed] [--show-configuration] [-o json]
 *   podway ipam check [-o json]                    exit 1 when it finds problems
 *   podway ipam release --ip IP [--ip IP...] | --handle H
 *   podway ipam assign --node N [--handle H] [--count K | --ip IP] [--pool CIDR...]
 *   podway ipam configure [--strictaffinity true|false] [--max-blocks-per-host N]
 * All of them read and write Calico's own IPAM keys (src/control/ipam), so calicoctl on the same
 * etcd sees what podway did and the other way round. Errors exit 1 with `podway: <reason>`.
 */
import { Command, Option } from 'commander';
import {
  AllocationAttribute, AllocationBlock, BLOCK_PREFIX, encodeIpamConfig, Ipam, IPAM_CONFIG_KEY, IpamProblem, parseBlockKey, PoolUsage,
} from '../control/ipam';
import { openKvStore } from '../control/kv/open';
import type { KvStore } from '../control/kv/kv';
import type { DatastoreSpec } from '../control/kv/spec';
import { resolveDatastoreSpec } from '../control/open-datastore';
import { etcdCaCertOption, etcdCertOption, etcdKeyOption, EtcdTlsFlags, envWithEtcdTlsFlags } from './etcd-tls-options';
import { FILE_DATASTORE_READ_ONLY, requireExistingStore } from './resources-cmd';

type Out = (text: string) => void;

const DATASTORE_HELP = 'etcd:URL[,URL] or embedded:DIR (default $PODWAY_DATASTORE, then DATASTORE_TYPE/ETCD_ENDPOINTS, then the embedded store)';
const NO_IPAM_IN_FILE = 'file: datastores hold no IPAM data (blocks, handles, affinities); use etcd: or embedded:';

/** The KvStore the options name (the file: datastore has no IPAM keys: refused). */
function kvSpec(o: { datastore?: string } & EtcdTlsFlags, writing: boolean): Exclude<DatastoreSpec, { kind: 'file' }> {
  const spec = resolveDatastoreSpec(o.datastore, envWithEtcdTlsFlags(o));
  if (spec.kind === 'file') throw new Error(writing ? FILE_DATASTORE_READ_ONLY : NO_IPAM_IN_FILE);
  return spec;
}

async function withIpam<T>(o: { datastore?: string }, writing: boolean, fn: (ipam: Ipam, kv: KvStore) => Promise<T>, mustExist = !writing): Promise<T> {
  const spec = kvSpec(o, writing);
  if (mustExist) requireExistingStore(spec);
  const kv = openKvStore(spec);
  try {
    return await fn(new Ipam(kv), kv);
  } finally {
    await kv.close();
  }
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
  });
}

// ---------------------------------------------------------------------------------------------
// check

/** calicoctl's formatAttrs: "Main:<handle> Extra:k=v,..." (keys sorted). */
function formatAttrs(attr: AllocationAttribute | null): string {
  if (!attr) return '<missing>';
  const kvs = (m: Readonly<Record<string, string>> | null) => Object.keys(m ?? {}).sort().map((k) => `${k}=${m![k]}`).join(',');
  let s = `Main:${attr.handleId ?? '<none>'} Extra:${kvs(attr.secondary)}`;
  if (attr.alternate && Object.keys(attr.alternate).length > 0) s += ` Alternate:${kvs(attr.alternate)}`;
  return s;
}

/** An address-without-handle problem counts once per address (calicoctl counts leaked IPs); others once. */
const problemCount = (p: IpamProblem): number => (p.kind === 'address-without-handle' ? (p.ips?.length ?? 1) : 1);

async function checkCommand(o: { datastore?: string; output: string }, out: Out): Promise<number> {
  const { problems, blocks, pools } = await withIpam(o, false, async (ipam, kv) => {
    const stored = await readBlocks(kv);
    return { problems: await ipam.check(), blocks: stored, pools: await ipam.listPools() };
  });
  const total = problems.reduce((n, p) => n + problemCount(p), 0);
  if (o.output === 'json') {
    out(JSON.stringify({ blocks: blocks.length, problems, problemCount: total }, null, 2) + '\n');
    return total;
  }
  const lines: string[] = ['Checking IPAM for inconsistencies...', '', 'Loading all IPAM blocks...', `Found ${blocks.length} IPAM blocks.`];
  const byBlock = new Map<string, IpamProblem[]>();
  const known = new Set(blocks.map((b) => b.block?.cidr.text ?? parseBlockKey(b.key)?.text ?? b.key));
  const elsewhere: IpamProblem[] = [];
  for (const p of problems) {
    if (p.block !== undefined && known.has(p.block)) byBlock.set(p.block, [...(byBlock.get(p.block) ?? []), p]);
    else elsewhere.push(p);
  }
  let allocations = 0;
  let leaked = 0;
  for (const { key, block } of blocks) {
    const cidr = block?.cidr.text ?? parseBlockKey(key)?.text ?? key;
    lines.push(` IPAM block ${cidr} affinity=${block ? block.affinity ?? '<none>' : '<unreadable>'}:`);
    if (block) allocations += block.numInUse();
    for (const p of byBlock.get(cidr) ?? []) {
      if (p.kind === 'address-without-handle' && block) {
        for (const ip of p.ips ?? []) {
          lines.push(`  ${ip} leaked; attrs ${formatAttrs(block.attributeOf(block.ipToOrdinal(ip) ?? -1))}`);
          leaked++;
        }
      } else {
        lines.push(`  ${p.message}`);
      }
    }
  }
  lines.push(`IPAM blocks record ${allocations} allocations.`);
  lines.push(`Found ${leaked} IPs held by a handle that does not exist (leaked: release --handle cannot free them).`, '');
  const active = pools.filter((p) => !p.disabled);
  lines.push('Loading all IPAM pools...', ...active.map((p) => `  ${p.cidr.text}`), `Found ${active.length} active IP pools.`, '');
  lines.push('Scanning handles and block affinities...', ...elsewhere.map((p) => `  ${p.message}`));
  lines.push(`Found ${elsewhere.length} problems in handles and block affinities.`);
  lines.push(`Check complete; found ${total} problems.`);
  out(lines.join('\n') + '\n');
  return total;
}

// ---------------------------------------------------------------------------------------------
// release, assign, configure

async function releaseCommand(o: { datastore?: string; ip: string[]; handle?: string }, out: Out): Promise<void> {
  if ((o.ip.length > 0) === (o.handle !== undefined)) throw new Error('ipam release: give --ip IP (one or more) or --handle H');
  await withIpam(o, true, async (ipam) => {
    if (o.handle !== undefined) {
      const r = await ipam.releaseByHandle(o.handle);
      if (!r.found) throw new Error(`handle ${o.handle} does not exist`);
      out(`Successfully released ${r.released.length} IP address(es) of handle ${o.handle}${r.released.length ? `: ${r.released.join(', ')}` : ''}\n`);
      return;
    }
    const r = await ipam.releaseIps(o.ip);
    for (const ip of r.released) out(`Successfully released IP address ${ip}\n`);
    if (r.notAllocated.length > 0) {
      throw new Error(`IP address${r.notAllocated.length > 1 ? 'es' : ''} ${r.notAllocated.join(', ')} ${r.notAllocated.length > 1 ? 'are' : 'is'} not assigned`);
    }
  }, true);
}

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
  if (o.ip !== undefined && o.count !== undefined) throw new Error('ipam assign: give --count K or --ip IP, not both');
  if (o.ip !== undefined && o.pool.length > 0) throw new Error('ipam assign: --pool chooses pools for --count; --ip names its address already');
  if (o.ip !== undefined && o.ipv6) throw new Error('ipam assign: --ipv6 chooses the family for --count; --ip names its address already');
  const count = o.count === undefined ? 1 : Number(o.count);
  if (!Number.isInteger(count) || count < 1 || count > 65536) throw new Error(`ipam assign: --count must be 1..65536, got ${JSON.stringify(o.count)}`);
  const attrs = { node: o.node };
  const handleId = o.handle ?? null;
  await withIpam(o, true, async (ipam) => {
    if (o.ip !== undefined) {
      await ipam.assignIp({ ip: o.ip, handleId, attrs, node: o.node });
      out(`${o.ip}\n`);
      return;
    }
    const r = await ipam.autoAssign({ node: o.node, count, handleId, attrs, pools: o.pool.length ? o.pool : undefined, version: o.ipv6 ? 6 : 4 });
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
  throw new Error('invalid value. Use true or false to set strictaffinity');
}

async function configureCommand(o: { datastore?: string; strictaffinity?: string; maxBlocksPerHost?: string }, out: Out): Promise<void> {
  const strict = o.strictaffinity === undefined ? undefined : parseBool(o.strictaffinity);
  let maxBlocks: number | undefined;
  if (o.maxBlocksPerHost !== undefined) {
    maxBlocks = Number(o.maxBlocksPerHost);
    if (!/^\d+$/.test(o.maxBlocksPerHost) || !Number.isSafeInteger(maxBlocks) || maxBlocks > 2 ** 31 - 1) throw new Error('invalid value for maxblockhost. Use a valid number');
  }
  if (strict === undefined && maxBlocks === undefined) throw new Error('at least one configuration option must be specified');
  await withIpam(o, true, async (ipam, kv) => {
    // Read-modify-write on the config key's revision, so a concurrent change is not overwritten.
    for (let attempt = 0; attempt < 10; attempt++) {
      const entry = await kv.get(IPAM_CONFIG_KEY);
      const current = await ipam.getConfig();
      const value = encodeIpamConfig({ ...current, strictAffinity: strict ?? current.strictAffinity, maxBlocksPerHost: maxBlocks ?? current.maxBlocksPerHost });
      const written = entry ? await kv.update(IPAM_CONFIG_KEY, value, entry.modRevision) : await kv.create(IPAM_CONFIG_KEY, value);
      if (written) {
        if (strict !== undefined) out(`Successfully set StrictAffinity to: ${strict}\n`);
        if (maxBlocks !== undefined) out(`Successfully set MaxBlocksPerHost to: ${maxBlocks}\n`);
        return;
      }
    }
    throw new Error(`${IPAM_CONFIG_KEY}: changed by someone else 10 times in a row; try again`);
  });
}

// ---------------------------------------------------------------------------------------------

/** Adds `podway ipam show|check|release|assign|configure` to `program`. */
export function addIpamCommands(program: Command, out: Out = (t) => void process.stdout.write(t)): void {
  const ipam = program.command('ipam').description('IP address management on the datastore, as calicoctl ipam');
  const output = () => new Option('-o, --output <format>', 'output format').choices(['table', 'json']).default('table');
  const collect = (v: string, prev: string[]) => [...prev, v];

  ipam
    .command('show')
    .description('usage per IP pool (and per block with --show-blocks), or borrowed addresses, or the IPAM configuration')
    .option('--show-blocks', 'a row per block too')
    .option('--show-borrowed', 'addresses a node uses from a block another node owns')
    .option('--show-configuration', 'the IPAM configuration (StrictAffinity, AutoAllocateBlocks, MaxBlocksPerHost)')
    .addOption(output())
    .option('--datastore <spec>', DATASTORE_HELP)
      .addOption(etcdCaCertOption()).addOption(etcdCertOption()).addOption(etcdKeyOption())
    .action((o: ShowOpts) => showCommand(o, out));

  ipam
    .command('check')
    .description('look for inconsistencies in the IPAM data; exits 1 when it finds any')
    .addOption(output())
    .option('--datastore <spec>', DATASTORE_HELP)
      .addOption(etcdCaCertOption()).addOption(etcdCertOption()).addOption(etcdKeyOption())
    .action(async (o: { datastore?: string; output: string }) => {
      if ((await checkCommand(o, out)) > 0) process.exitCode = 1;
    });

  ipam
    .command('release')
    .description('release addresses (--ip, repeatable) or every address of a handle (--handle)')
    .option('--ip <ip>', 'an address to release (repeatable)', collect, [])
    .option('--handle <id>', 'release every address of this handle, and the handle')
    .option('--datastore <spec>', DATASTORE_HELP)
      .addOption(etcdCaCertOption()).addOption(etcdCertOption()).addOption(etcdKeyOption())
    .action((o) => releaseCommand(o, out));

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
      .addOption(etcdCaCertOption()).addOption(etcdCertOption()).addOption(etcdKeyOption())
    .action((o: AssignOpts) => assignCommand(o, out));

  ipam
    .command('configure')
    .description('change the IPAM configuration')
    .option('--strictaffinity <bool>', 'true: a node never borrows addresses from other nodes\' blocks')
    .option('--max-blocks-per-host <n>', 'most blocks a node may own (0: Calico\'s default, 20)')
    .option('--datastore <spec>', DATASTORE_HELP)
      .addOption(etcdCaCertOption()).addOption(etcdCertOption()).addOption(etcdKeyOption())
    .action((o) => configureCommand(o, out));
}
