/**
 * The one reader of podway's nft counters: the named counters of natOutgoing's tables (`table ip
 * podway`, `table ip6 podway`), the pod guard's (`table inet podway`) and the tunnel table's
 * (`table inet podway_tunnels`), for `podway counters` and /metrics through one cache
 * (observe/nft-cache.ts), never per packet.
 *
 * One `nft -j list counters` for every table at once: it lists the named counters (objects) of all
 * tables, not their rules or sets, and one nft run is what costs (a fork, netlink dumps, the JSON):
 * on a loaded 2-vCPU node one run took 0.3 s, three runs of `list counters table ...` side by side
 * 0.9 s (bench/README.md, "podway counters at load"). Every podway table declares named counters,
 * so a table asked for and absent from the answer is a table that is not there (deleted under
 * podway, or podway stopping); it is reported missing, the others are read.
 *
 * Asynchronous (execFile): the thread that asks (the main thread forwards too) never waits for nft;
 * a run is killed after timeoutMs, so a read always ends.
 */
import type { ScanExec } from './orphan-pods';
import { execFile } from 'node:child_process';

/** One named counter: packets and bytes. */
export interface NftCount { packets: number; bytes: number }

/** A table's named counters by name. */
export type NamedCounts = Record<string, NftCount>;

/** An nft table: its family and name ("ip podway", "inet podway_tunnels"). */
export interface NftTable { family: 'ip' | 'ip6' | 'inet'; name: string }

/** How a table is named in a read's maps and in `podway counters`' answer ("ip podway"). */
export function tableKey(t: NftTable): string {
  return `${t.family} ${t.name}`;
}

/** What one read gave: each table found with its named counters; each table asked for and not
 * read with why (nft missing, failing, or the table not there). */
export interface NftCounterRead {
  tables: Map<string, NamedCounts>;
  missing: Map<string, string>;
}

/** The default bound on one nft run; it is killed after it. */
export const NFT_READ_TIMEOUT_MS = 5000;

/**
 * The named counters of every table in `nft -j list counters` output, by tableKey. Throws on text
 * that is not nft's JSON (an object with an `nftables` array).
 */
export function parseNftCounters(json: string): Map<string, NamedCounts> {
  const doc = JSON.parse(json) as { nftables?: unknown };
  if (typeof doc !== 'object' || doc === null || !Array.isArray(doc.nftables)) throw new Error('not nft JSON: no "nftables" array');
  const out = new Map<string, NamedCounts>();
  for (const item of doc.nftables as { counter?: { family?: unknown; table?: unknown; name?: unknown; packets?: unknown; bytes?: unknown } }[]) {
    const k = item?.counter;
    if (!k || typeof k.name !== 'string' || typeof k.table !== 'string' || typeof k.family !== 'string') continue;
    const key = `${k.family} ${k.table}`;
    let t = out.get(key);
    if (!t) out.set(key, (t = {}));
    t[k.name] = { packets: Number(k.packets) || 0, bytes: Number(k.bytes) || 0 };
  }
  return out;
}

/** nft's failure in a few words (its first stderr line, or what kept it from running), however it was run. */
function nftFailure(f: { notFound: boolean; timedOut: boolean; detail: string }, timeoutMs: number): string {
  if (f.notFound) return 'the nft command was not found (package nftables)';
  if (f.timedOut) return `nft did not answer within ${timeoutMs} ms`;
  return `nft: ${f.detail.split('\n')[0]}`;
}

/**
 * Read the named counters of `tables` with one `nft -j list counters`. Never rejects: a failure
 * (nft missing, refusing, killed after timeoutMs, an unreadable answer) makes every table asked
 * for missing with the reason; a table not in the answer is missing as "no such table".
 */
export function readNftCounters(tables: readonly NftTable[], o: { nft?: string; timeoutMs?: number; exec?: ScanExec } = {}): Promise<NftCounterRead> {
  const keys = tables.map(tableKey);
  const read: NftCounterRead = { tables: new Map(), missing: new Map() };
  if (keys.length === 0) return Promise.resolve(read);
  const timeoutMs = o.timeoutMs ?? NFT_READ_TIMEOUT_MS;
  return new Promise((resolve) => {
    const all = (why: string) => {
      for (const k of keys) read.missing.set(k, why);
      resolve(read);
    };
    const answered = (out: string) => {
      let found: Map<string, NamedCounts>;
      try {
        found = parseNftCounters(out);
      } catch (e) {
        return all(`nft's answer unreadable: ${(e as Error).message}`);
      }
      for (const k of keys) {
        const t = found.get(k);
        if (t) read.tables.set(k, t);
        else read.missing.set(k, 'no such table');
      }
      resolve(read);
    };
    if (o.exec) {
      // through podway's spawner helper: a fork of podway itself would hold the forwarding thread
      o.exec(o.nft ?? 'nft', ['-j', 'list', 'counters'], timeoutMs).then((r) => {
        if (r.code === 0 && !r.error) return answered(r.stdout);
        const why = r.error ?? '';
        all(nftFailure({ notFound: /ENOENT/.test(why), timedOut: /timed out/i.test(why), detail: (r.stderr ?? '').trim() || why || `exit code ${r.code}` }, timeoutMs));
      }, (e: Error) => all(`nft could not be run: ${e.message}`));
      return;
    }
    try {
      execFile(o.nft ?? 'nft', ['-j', 'list', 'counters'], { timeout: timeoutMs, killSignal: 'SIGKILL', maxBuffer: 64 << 20 }, (err, out, stderr) => {
        if (err) return all(nftFailure({ notFound: err.code === 'ENOENT', timedOut: !!(err.killed || err.signal), detail: String(stderr ?? '').trim() || err.message }, timeoutMs));
        answered(out);
      });
    } catch (e) {
      // execFile throws synchronously only on bad arguments (e.g. an empty command name)
      all(`nft could not be run: ${(e as Error).message}`);
    }
  });
}
