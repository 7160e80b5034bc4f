// FileKv: the embedded KvStore for a single machine, on local files in one directory, written by
// several processes at once (the CNI plugin and `podway run`) and whole-or-absent after a crash.
//
// Files in the directory:
// (state.json and log.<gen> are 0600, a directory made here 0700: STORE_FILE_MODE.)
//   state.json      a snapshot: {format, generation, revision, compactRevision, entries, history};
//                   only ever replaced whole (written to a temp file, fsync'd, renamed over it).
//   log.<gen>       the writes since snapshot <gen>, one line each: "<crc32 hex> <json>\n" where
//                   json is {"r":rev,"k":key,"v":value,"c":createRev} or {"r":rev,"k":key,"d":1}.
//   lock            held by the one writer (file-lock.ts: link(2)-based, stale-holder recovery);
//                   lock.<pid>.<random> are the writers' tokens (those of killed processes are
//                   swept at an instance's first write and at each fold).
//
// A write takes the lock, catches up with the log, checks its condition (create-if-absent, CAS on
// modRevision, optionally guarded by other keys' modRevisions), appends one line at the end of the
// valid log (positional writes, repeated while the kernel writes less than asked: a nearly full
// filesystem takes part of a line without an error; a write that then fails cuts the part off
// again and throws, the record not applied), and releases the lock. A line is valid only if complete, its CRC matches and its revision is the
// previous one + 1, so a crash mid-append leaves a torn line that every reader ignores and the
// next writer truncates away: a write is whole or absent. Readers need no lock: they remember how
// far into the log they have applied and read only what was appended since (one stat and one read
// when nothing changed). After `rotateAfter` log lines the writer folds the log into a new
// snapshot (new generation, new empty log, old log unlinked); readers notice the replaced
// state.json and reload.
//
// Durability: with `sync: 'always'` every write is fdatasync'd before it returns. The default,
// 'batched', fdatasyncs the log at most 100 ms after a write (like Redis's appendfsync everysec):
// a process crash loses nothing (the data is in the page cache), a power loss loses at most the
// last ~100 ms of writes, and never leaves a half write (a torn or unsynced tail fails its CRC and
// the log is read up to it). On one machine a power loss also ends every pod those writes were
// for. fdatasync took 0.5-2.2 ms on the test machine, which alone can cap a client near 450/s.
// An fdatasync that fails (EIO, ENOSPC at writeback) is never ignored: with 'always' the write
// throws (its line is in the log and applied, since other readers may have taken it, but the
// caller is told it may not survive a crash); with 'batched' the next write throws it (that write
// not made), or close() does.
//
// Watches: the snapshot keeps the last `historyLimit` (10,000) events and the log the rest, so a
// watcher from an older revision gets the exact events, or onResync('compacted') when they are
// gone. Changes are noticed by fs.watch on the directory plus a poll every `pollMs` (200 ms).
// Each instance keeps in memory the events its own watchers may still need (`watchHistory`,
// default historyLimit; up to twice that before trimming): an instance that never watches (podway
// run's address-store thread, its upkeep store) keeps none (watchHistory 0: watch() refused), one
// that keeps fewer than the files do serves a watcher from before them with onResync('compacted')
// (a re-list, never a gap), and a fold it makes takes the events it does not hold from the files
// (fileRecords), so what the files keep for other processes' watchers never depends on it.
//
// Measured (2-core Debian 12 VM, `npm run build:ts && node dist/bench/kv/run.js 2000`), one client,
// sequential create+update pairs: 1,600-4,000 ops/s batched, 840-1,940 ops/s with sync 'always'
// (etcd 3.4 on the same disk through EtcdKv: 280-540 ops/s). Eight processes contending (the
// test's 3,200 successful writes plus CAS retries) take ~3.5 s.
import { makeDirs } from '../../util/make-dirs';
import { existsSync, watch as fsWatch, FSWatcher } from 'node:fs';
import { chmod, lstat, open, readdir, readFile, stat, unlink, FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { crc32 } from 'node:zlib';
import { FileLock, sweepDeadTokens } from './file-lock';
import { compareKeys } from './keys';
import { checkBatch, KvBatchWrite, KvEntry, KvEvent, KvGuard, KvList, KvStore, KvUnavailableError, KvWatch, KvWatchHandlers } from './kv';
import { replaceFile } from '../../util/replace-file';
import { requireTrustedDir } from '../../util/trusted-dir';

/** A store written before STORE_FILE_MODE: its state files that are ours and open to group or
 * others made 0600 (best effort: a store on a read-only file system is read as it is). */
async function tightenStoreFiles(dir: string): Promise<void> {
  const uid = process.geteuid ? process.geteuid() : 0;
  for (const name of await readdir(dir).catch(() => [] as string[])) {
    if (!STORE_FILE.test(name)) continue;
    const file = join(dir, name);
    const st = await lstat(file).catch(() => null);
    if (st?.isFile() && st.uid === uid && (st.mode & 0o077) !== 0) await chmod(file, STORE_FILE_MODE).catch(() => undefined);
  }
}

export interface FileKvOptions {
  readonly dir: string;
  /** 'always': fdatasync each write; 'batched' (default): within 100 ms (see module comment). */
  readonly sync?: 'always' | 'batched';
  /** How long a writer waits for the lock before failing (default 10 s). */
  readonly lockTimeoutMs?: number;
  /** Events the files keep for watchers that start from an older revision (default 10,000). */
  readonly historyLimit?: number;
  /**
   * Events this instance keeps in memory for its own watchers (default historyLimit; trimmed when
   * twice that). 0: none, and watch() is refused: for an instance that never watches (the memory
   * of every event read grew to 2 x historyLimit for nothing: ~1 MB per 100 pod cycles, to ~16 MB).
   */
  readonly watchHistory?: number;
  /** Log lines after which the log is folded into a new snapshot (default: historyLimit). */
  readonly rotateAfter?: number;
  /** Fallback poll of the files for watches, ms (default 200; fs.watch usually wakes us first). */
  readonly pollMs?: number;
}

const FORMAT = 'podway-kv/1';
/**
 * The mode of the files holding the cluster's state (state.json, log.N), and (0700) of a store
 * directory made here: its owner's only, as etcd keeps its data (etcd's fileutil.PrivateFileMode
 * 0600 for the WAL and snapshots, and a data directory of 0700, warning at start about any other).
 * They hold every Node, pod, address block and policy: Calico shows them to the holders of etcd
 * client certificates or of RBAC on its resources, not to every local user. 0644 before. The
 * writer lock's token files (a pid) stay 0644. A reader needs to be the store's user or root.
 */
const STORE_FILE_MODE = 0o600;
const STORE_FILE = /^(state\.json|log\.\d+)$/;
const STATE = 'state.json';
const BATCHED_SYNC_MS = 100;
const READ_CHUNK = 64 * 1024;
/**
 * The most writes one writeBatch takes: one lock hold and one append for up to 500 records (a
 * few hundred KB of WorkloadEndpoints), short enough that other writers (the CNI plugin) wait
 * for the lock about as long as for one fold of the log.
 */
const MAX_BATCH = 500;

/** One write, as stored in the log and in the snapshot's history. */
interface LogRecord {
  r: number;
  k: string;
  v?: string;
  c?: number;
  d?: 1;
  /** More of the same batch follow: readers apply a batch's lines only once its last one (without
   * `m`) is whole, so a batch is all or none for them, even when its write fails half-way. */
  m?: 1;
}

interface Snapshot {
  format: string;
  generation: number;
  revision: number;
  compactRevision: number;
  /** [key, value, createRevision, modRevision] in key order. */
  entries: [string, string, number, number][];
  history: LogRecord[];
}

function encodeRecord(rec: LogRecord): Buffer {
  const json = Buffer.from(JSON.stringify(rec));
  const crc = crc32(json).toString(16).padStart(8, '0');
  return Buffer.concat([Buffer.from(crc + ' '), json, Buffer.from('\n')]);
}

function toEvent(rec: LogRecord): KvEvent {
  if (rec.d) return { type: 'delete', key: rec.k, modRevision: rec.r };
  return { type: 'put', entry: { key: rec.k, value: rec.v ?? '', createRevision: rec.c ?? rec.r, modRevision: rec.r } };
}

function toRecord(ev: KvEvent): LogRecord {
  if (ev.type === 'delete') return { r: ev.modRevision, k: ev.key, d: 1 };
  return { r: ev.entry.modRevision, k: ev.entry.key, v: ev.entry.value, c: ev.entry.createRevision };
}

/** What tells one state.json from another (replaced whole by each fold): readers reload when it changes. */
function stateIdOf(st: { ino: bigint; size: bigint; mtimeNs: bigint }): string {
  return `${st.ino}:${st.size}:${st.mtimeNs}`;
}

function isErrno(e: unknown, code: string): boolean {
  return (e as NodeJS.ErrnoException)?.code === code;
}

/** A chain that runs async tasks one at a time (this process's share of the store's state). */
class SerialQueue {
  private tail: Promise<unknown> = Promise.resolve();
  run<T>(task: () => Promise<T>): Promise<T> {
    const result = this.tail.then(task);
    this.tail = result.catch(() => undefined);
    return result;
  }
}

export class FileKv implements KvStore {
  readonly description: string;
  private readonly dir: string;
  private readonly statePath: string;
  private readonly sync: 'always' | 'batched';
  private readonly historyLimit: number;
  private readonly watchHistory: number;
  private readonly rotateAfter: number;
  private readonly pollMs: number;
  private readonly lock: FileLock;
  private readonly queue = new SerialQueue();

  // What this process has read of the store.
  private loaded = false;
  private stateId = '';
  private generation = 0;
  private revision = 0;
  private compactRevision = 0;
  private readonly entries = new Map<string, KvEntry>();
  /** Every key, in key order (kept sorted on insert/delete, so list is a binary search). */
  private sortedKeys: string[] = [];
  /**
   * Keys added since sortedKeys was last brought in order (not in it yet): merged in by keysInOrder()
   * when a list, a delete or a fold needs the order, so that many creates in a row (a batch, a
   * file of thousands applied) do not each move half the array (n inserts into n keys: O(n^2)).
   */
  private newKeys: string[] = [];
  /** Events after compactRevision, one per revision, in order: history[i] has revision compactRevision + 1 + i.
   * (This instance's memory: at most 2 x watchHistory; the files may hold more: fileCompactRevision.) */
  private history: KvEvent[] = [];
  /** The compactRevision of the snapshot this instance read or wrote last: the files hold the events after it. */
  private fileCompactRevision = 0;
  private logLines = 0;
  private log: FileHandle | undefined;
  /** Bytes of the log holding whole valid records (what we applied). */
  private logValid = 0;
  /** Bytes of the log seen in total: more than logValid when a torn or in-progress line follows. */
  private logSeen = 0;

  private syncTimer: NodeJS.Timeout | undefined;
  /** A batched fdatasync's failure, not yet reported (throwSyncFailure). */
  private syncFailure: unknown;
  private syncFailureGeneration = 0;
  private readonly watches = new Set<FileWatch>();
  private notifier: { watcher: FSWatcher | undefined; timer: NodeJS.Timeout } | undefined;
  private pollScheduled = false;
  private storeDown = false;
  private closed = false;
  /** Dead processes' lock tokens swept (sweepTokensOnce). */
  private swept = false;

  constructor(options: FileKvOptions) {
    this.dir = options.dir;
    this.statePath = join(this.dir, STATE);
    this.sync = options.sync ?? 'batched';
    this.historyLimit = options.historyLimit ?? 10_000;
    this.watchHistory = Math.max(0, Math.min(options.watchHistory ?? this.historyLimit, this.historyLimit));
    this.rotateAfter = options.rotateAfter ?? this.historyLimit;
    this.pollMs = options.pollMs ?? 200;
    this.lock = new FileLock(join(this.dir, 'lock'), options.lockTimeoutMs ?? 10_000);
    this.description = `embedded ${this.dir}`;
  }

  // ---- reading the files -------------------------------------------------------------------

  /** Brings this process's view up to date with the files. Runs inside the queue. */
  private async refresh(locked: boolean): Promise<void> {
    if (!this.loaded) {
      // 0700, not mkdir's 0777 under the umask: a umask of 002 (a user's on many distributions, a
      // unit's UMask=0002) made a group-writable directory that requireTrustedDir then refused;
      // and the cluster's state is its owner's only, as etcd's data directory (STORE_FILE_MODE)
      await makeDirs(this.dir, { mode: 0o700, what: `embedded store ${this.dir}` });
      // Its state is replaced through a temporary beside it (replaceFile) and read back: a
      // directory another user can write to could hold their forged store (util/trusted-dir.ts).
      await requireTrustedDir(this.dir, `embedded store ${this.dir}`);
      await tightenStoreFiles(this.dir);
    }
    for (let attempt = 0; ; attempt++) {
      let st;
      try {
        st = await stat(this.statePath, { bigint: true });
      } catch (e) {
        if (!isErrno(e, 'ENOENT')) throw e;
        if (!locked) {
          // The store we read is gone (its directory deleted or moved while in use): say so (a
          // watcher's poll reports the store down, keeping what it had) rather than go quiet.
          if (this.stateId !== '') throw new KvUnavailableError(`${this.statePath} is gone (the store was deleted or moved while in use)`);
          // An empty store that nobody wrote yet: nothing to read.
          if (!this.loaded) this.resetEmpty();
          return;
        }
        await this.initialize();
        continue;
      }
      const id = stateIdOf(st);
      if (id !== this.stateId) {
        if (await this.reload(locked)) return;
        if (attempt >= 20) throw new Error(`${this.description}: the snapshot keeps changing while being read`);
        continue;
      }
      await this.readLogTail();
      return;
    }
  }

  private resetEmpty(): void {
    this.loaded = true;
    this.stateId = '';
    this.generation = 0;
    this.revision = 0;
    this.compactRevision = 0;
    this.fileCompactRevision = 0;
    this.entries.clear();
    this.sortedKeys = [];
    this.newKeys = [];
    this.history = [];
  }

  /** Loads state.json and its log; false when it was replaced meanwhile (try again). */
  private async reload(locked: boolean): Promise<boolean> {
    let snap: Snapshot;
    let id: string;
    const fh = await open(this.statePath, 'r').catch(e => {
      if (isErrno(e, 'ENOENT')) return undefined;
      throw e;
    });
    if (!fh) return false;
    try {
      const st = await fh.stat({ bigint: true });
      id = stateIdOf(st);
      const text = await fh.readFile('utf8');
      try {
        snap = JSON.parse(text) as Snapshot;
      } catch (e) {
        throw new Error(`${this.description}: ${this.statePath} is not valid JSON: ${(e as Error).message}`);
      }
    } finally {
      await fh.close();
    }
    if (snap.format !== FORMAT) {
      throw new Error(`${this.description}: ${this.statePath} has format ${String(snap.format)}, expected ${FORMAT}`);
    }
    const logPath = join(this.dir, `log.${snap.generation}`);
    let log: FileHandle;
    try {
      // Read-write when we may (a later write of ours appends through it), else read-only.
      log = await open(logPath, 'r+').catch(e => {
        if (locked || !(isErrno(e, 'EACCES') || isErrno(e, 'EROFS'))) throw e;
        return open(logPath, 'r');
      });
    } catch (e) {
      if (!isErrno(e, 'ENOENT')) throw e;
      if (!locked) return false; // rotated again after we read state.json
      // The log is created before the snapshot naming it, so this means it was deleted by hand;
      // recreate it empty rather than refuse every write.
      log = await open(logPath, 'w+', STORE_FILE_MODE);
    }
    await this.log?.close().catch(() => undefined);
    this.log = log;
    this.loaded = true;
    this.stateId = id;
    this.generation = snap.generation;
    this.revision = snap.revision;
    this.compactRevision = snap.compactRevision;
    this.entries.clear();
    this.sortedKeys = new Array(snap.entries.length);
    this.newKeys = [];
    snap.entries.forEach(([key, value, createRevision, modRevision], i) => {
      this.entries.set(key, { key, value, createRevision, modRevision });
      this.sortedKeys[i] = key;
    });
    if (this.compactRevision + snap.history.length !== this.revision) {
      throw new Error(`${this.description}: ${this.statePath} history does not end at its revision`);
    }
    this.fileCompactRevision = snap.compactRevision;
    // the last watchHistory of the snapshot's events (all of them by default)
    const keep = Math.min(snap.history.length, this.watchHistory);
    this.history = snap.history.slice(snap.history.length - keep).map(toEvent);
    this.compactRevision = this.revision - keep;
    this.logLines = 0;
    this.logValid = 0;
    this.logSeen = 0;
    await this.readLogTail();
    return true;
  }

  /** Applies the whole valid records appended to the log since we last looked; a batch's lines
   * (`m` on all but its last) only once the batch is whole. */
  private async readLogTail(): Promise<void> {
    const log = this.log;
    if (!log) return;
    let pending = Buffer.alloc(0);
    let pos = this.logValid;
    // a batch's lines read so far, and their bytes: applied together when its last line is read
    let batch: LogRecord[] = [];
    let batchBytes = 0;
    for (;;) {
      const buf = Buffer.allocUnsafe(READ_CHUNK);
      const { bytesRead } = await log.read(buf, 0, READ_CHUNK, pos);
      if (bytesRead === 0) break;
      pos += bytesRead;
      pending = pending.length ? Buffer.concat([pending, buf.subarray(0, bytesRead)]) : buf.subarray(0, bytesRead);
      let start = 0;
      for (;;) {
        const nl = pending.indexOf(0x0a, start);
        if (nl < 0) break;
        const rec = this.parseLine(pending.subarray(start, nl), this.revision + 1 + batch.length);
        if (!rec) {
          // A torn or corrupt line: nothing after it counts, nor the unfinished batch before it
          // (the next writer truncates at logValid).
          this.logSeen = pos;
          return;
        }
        batchBytes += nl + 1 - start;
        start = nl + 1;
        if (rec.m) {
          batch.push(rec);
          continue;
        }
        for (const r of batch) this.apply(r);
        this.apply(rec);
        this.logLines += batch.length + 1;
        this.logValid += batchBytes;
        batch = [];
        batchBytes = 0;
      }
      pending = pending.subarray(start);
    }
    this.logSeen = pos;
  }

  private parseLine(line: Buffer, revision: number): LogRecord | null {
    if (line.length < 10 || line[8] !== 0x20) return null;
    const json = line.subarray(9);
    if (crc32(json).toString(16).padStart(8, '0') !== line.subarray(0, 8).toString('latin1')) return null;
    let rec: LogRecord;
    try {
      rec = JSON.parse(json.toString('utf8')) as LogRecord;
    } catch {
      return null;
    }
    if (rec.r !== revision || typeof rec.k !== 'string') return null;
    return rec;
  }

  /** Applies one record (the next revision) to the in-memory view. */
  private apply(rec: LogRecord): void {
    this.revision = rec.r;
    const ev = toEvent(rec);
    if (ev.type === 'put') {
      if (!this.entries.has(rec.k)) this.insertKey(rec.k);
      this.entries.set(rec.k, ev.entry);
    } else if (this.entries.delete(rec.k)) {
      this.removeKey(rec.k);
    }
    if (this.watchHistory === 0) {
      // no watcher here: nothing kept (history stays empty, ending at the revision)
      this.compactRevision = this.revision;
      return;
    }
    this.history.push(ev);
    // Keep memory bounded: past twice the limit, drop the oldest (watchers from there resync).
    if (this.history.length > 2 * this.watchHistory) {
      const drop = this.history.length - this.watchHistory;
      this.history = this.history.slice(drop);
      this.compactRevision += drop;
    }
  }

  /** sortedKeys with the keys added since merged in, in key order. */
  private keysInOrder(): string[] {
    if (this.newKeys.length === 0) return this.sortedKeys;
    const added = this.newKeys.sort(compareKeys);
    const old = this.sortedKeys;
    const merged: string[] = new Array(old.length + added.length);
    let i = 0;
    let j = 0;
    let k = 0;
    while (i < old.length && j < added.length) merged[k++] = compareKeys(old[i]!, added[j]!) <= 0 ? old[i++]! : added[j++]!;
    while (i < old.length) merged[k++] = old[i++]!;
    while (j < added.length) merged[k++] = added[j++]!;
    this.sortedKeys = merged;
    this.newKeys = [];
    return merged;
  }

  private lowerBound(key: string): number {
    this.keysInOrder();
    let lo = 0;
    let hi = this.sortedKeys.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (compareKeys(this.sortedKeys[mid], key) < 0) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  private insertKey(key: string): void {
    this.newKeys.push(key);
  }

  private removeKey(key: string): void {
    const i = this.lowerBound(key);
    if (this.sortedKeys[i] === key) this.sortedKeys.splice(i, 1);
  }

  // ---- writing -----------------------------------------------------------------------------

  /** Creates the first snapshot (under the lock, when state.json does not exist); the caller
   * then loads it as any other (its log opened there). */
  private async initialize(): Promise<void> {
    const log = await this.writeSnapshot({
      format: FORMAT,
      generation: 1,
      revision: 0,
      compactRevision: 0,
      entries: [],
      history: [],
    });
    await log.close();
  }

  /** Writes `snap` and its empty log, then makes it current (the rename is the commit point).
   * Returns the new log, open read-write (as load opens it): the caller's to keep or close. */
  private async writeSnapshot(snap: Snapshot): Promise<FileHandle> {
    // The log exists before the snapshot naming it does, so a reader never finds it missing.
    const log = await open(join(this.dir, `log.${snap.generation}`), 'w+', STORE_FILE_MODE);
    try {
      await replaceFile(this.statePath, JSON.stringify(snap), { mode: STORE_FILE_MODE });
      // Older logs (and any left by a crash mid-rotation) are no longer named by the snapshot.
      for (const name of await readdir(this.dir)) {
        const m = /^log\.(\d+)$/.exec(name);
        if (m && Number(m[1]) !== snap.generation) await unlink(join(this.dir, name)).catch(() => undefined);
      }
    } catch (e) {
      await log.close().catch(() => undefined);
      throw e;
    }
    return log;
  }

  /**
   * Removes the lock token files (`lock.<pid>.<random>`) SIGKILLed processes left (FileLock
   * removes them only when it breaks a stale lock): at this instance's first write, and at each
   * fold of the log (a long-lived podway run). One readdir and one /proc lookup per token file.
   */
  private sweepTokensOnce(): void {
    if (this.swept) return;
    this.swept = true;
    sweepDeadTokens(this.lock.path, { foreignMaxMs: 0 }); // (no mark: another PID namespace's tokens stay)
  }

  /** Folds the log into a new snapshot that keeps the events after `keepAfter` for watchers. */
  private async rotate(keepAfter: number): Promise<void> {
    sweepDeadTokens(this.lock.path, { foreignMaxMs: 0 });
    if (this.syncTimer) {
      clearTimeout(this.syncTimer);
      this.syncTimer = undefined;
    }
    const compactRevision = Math.min(this.revision, Math.max(this.fileCompactRevision, keepAfter));
    // What the new snapshot keeps: from memory when it holds them, else as the files hold them
    // (an instance keeping fewer events than the files: watchHistory).
    const fromMemory = compactRevision >= this.compactRevision;
    const keptRecords = fromMemory ? this.history.slice(compactRevision - this.compactRevision).map(toRecord) : await this.fileRecords(compactRevision);
    const generation = this.generation + 1;
    const log = await this.writeSnapshot({
      format: FORMAT,
      generation,
      revision: this.revision,
      compactRevision,
      entries: this.keysInOrder().map(k => {
        const e = this.entries.get(k)!;
        return [k, e.value, e.createRevision, e.modRevision];
      }),
      history: keptRecords,
    });
    // What we wrote is what we hold (under the lock nobody else writes): taken as read, not read
    // back (parsing a snapshot of 100,000 entries again at every fold cost ~1 CPU-s each).
    const st = await stat(this.statePath, { bigint: true }).catch(async (e) => {
      await log.close().catch(() => undefined);
      throw e;
    });
    await this.log?.close().catch(() => undefined);
    this.log = log;
    this.stateId = stateIdOf(st);
    this.generation = generation;
    this.fileCompactRevision = compactRevision;
    if (fromMemory) {
      this.history = this.history.slice(compactRevision - this.compactRevision);
      this.compactRevision = compactRevision;
    }
    this.logLines = 0;
    this.logValid = 0;
    this.logSeen = 0;
  }

  /**
   * The events after `after` as the files hold them: state.json's history, then every record of
   * the log (read again from its start), for a fold by an instance that keeps fewer in memory than
   * the files do. Under the lock, on an up-to-date view (nobody else writes): what the files hold
   * must end at the revision this instance holds, else the fold is not made (throws).
   */
  private async fileRecords(after: number): Promise<LogRecord[]> {
    let snap: Snapshot;
    try {
      snap = JSON.parse(await readFile(this.statePath, 'utf8')) as Snapshot;
    } catch (e) {
      throw new Error(`${this.description}: ${this.statePath} could not be read again for a fold: ${(e as Error).message}`);
    }
    if (snap.generation !== this.generation || snap.compactRevision > after) {
      throw new Error(`${this.description}: ${this.statePath} is not the snapshot read (generation ${snap.generation}, holding events after ${snap.compactRevision}; expected ${this.generation}, after ${after} wanted)`);
    }
    const out = snap.history.filter((r) => r.r > after).map((r) => toRecord(toEvent(r)));
    const buf = Buffer.allocUnsafe(this.logValid);
    let got = 0;
    while (got < buf.length) {
      const { bytesRead } = await this.log!.read(buf, got, buf.length - got, got);
      if (bytesRead === 0) break;
      got += bytesRead;
    }
    let rev = snap.revision;
    for (let start = 0; ;) {
      const nl = buf.indexOf(0x0a, start);
      if (nl < 0 || nl >= got) break;
      const rec = this.parseLine(buf.subarray(start, nl), rev + 1);
      if (!rec) break;
      rev = rec.r;
      start = nl + 1;
      if (rec.r > after) out.push(toRecord(toEvent(rec)));
    }
    const first = out.length ? out[0]!.r : after + 1;
    if (rev !== this.revision || first !== after + 1 || first + out.length - 1 !== this.revision) {
      throw new Error(`${this.description}: the files hold events ${first}-${rev}, not ${after + 1}-${this.revision}: fold not made`);
    }
    return out;
  }

  /**
   * Runs `decide` under the lock on an up-to-date view; it returns the record to append (without
   * its revision) or null to write nothing. Returns the appended record's revision, or null.
   */
  private async mutate(decide: () => Omit<LogRecord, 'r'> | null): Promise<number | null> {
    return this.mutateMany(() => {
      const one = decide();
      return one ? [one] : null;
    });
  }

  /**
   * mutate for several records: `decide` returns them (each the next revision, in order) or null
   * to write nothing; they are appended with one write (and, with sync 'always', one fdatasync).
   * Returns the first one's revision, or null. The batch is whole or absent for every reader: its
   * lines but the last carry `m` (more follow), and readers apply them only with the last, so a
   * write that fails or a crash half-way leaves none of it taken (the next writer cuts it off).
   */
  private async mutateMany(decide: () => Omit<LogRecord, 'r'>[] | null): Promise<number | null> {
    if (this.closed) throw new Error(`${this.description}: store is closed`);
    const rev = await this.queue.run(async () => {
      await this.acquireLock();
      try {
        this.sweepTokensOnce();
        await this.refresh(true).catch((e) => { throw this.systemError(e, 'cannot read the store to write to it'); });
        this.throwSyncFailure();
        const log = this.log!;
        if (this.logSeen > this.logValid) {
          // A writer died mid-append: cut its torn line off before appending after it.
          await log.truncate(this.logValid);
          this.logSeen = this.logValid;
        }
        const partials = decide();
        if (!partials || partials.length === 0) return null;
        const first = this.revision + 1;
        const recs = partials.map((p, i) => ({ r: first + i, ...p }) as LogRecord);
        // every line of a batch but its last says more follow: readers take the batch whole or not at all
        const lines = recs.map((rec, i) => encodeRecord(i < recs.length - 1 ? { ...rec, m: 1 } : rec));
        const data = lines.length === 1 ? lines[0]! : Buffer.concat(lines);
        await this.append(log, data, recs.length);
        let syncFailed: unknown;
        if (this.sync === 'always') {
          try {
            await log.datasync();
          } catch (e) {
            syncFailed = e;
          }
        } else {
          this.scheduleSync();
        }
        // The whole lines are in the log (other processes may have read them already), so they
        // are applied here too even when their fdatasync failed; that failure is still the caller's.
        for (let i = 0; i < recs.length; i++) {
          this.apply(recs[i]!);
          this.logLines++;
          this.logValid += lines[i]!.length;
        }
        this.logSeen = this.logValid;
        const last = recs[recs.length - 1]!.r;
        const what = recs.length === 1 ? `revision ${first}` : `revisions ${first}-${last}`;
        if (syncFailed !== undefined) throw this.ioError(syncFailed, `${what} ${recs.length === 1 ? 'was written to log.' + this.generation + ' but its fdatasync failed (it may not survive a crash)' : 'were written to log.' + this.generation + ' but their fdatasync failed (they may not survive a crash)'}`);
        if (this.logLines >= this.rotateAfter) {
          // The write is committed already: a fold that fails (no room for the new snapshot) does
          // not make it fail; the log keeps growing and the next write tries the fold again.
          await this.rotate(this.revision - this.historyLimit).catch(() => {
            if (this.sync !== 'always') this.scheduleSync(); // rotate() cancelled the pending one
          });
        }
        return first;
      } finally {
        await this.lock.release();
      }
    });
    if (rev !== null) this.dispatch();
    return rev;
  }

  /**
   * Writes `line` whole at the end of the valid log. A write can be short without an error (a
   * filesystem left with less room than the line): the rest is written by further calls, and the
   * one that fails (ENOSPC, EIO, ...) leaves a partial line no reader takes (its CRC), which is cut
   * off again here (else by the next writer) before the error is thrown: the record is not applied.
   */
  private async append(log: FileHandle, line: Buffer, records = 1): Promise<void> {
    let done = 0;
    try {
      while (done < line.length) {
        const { bytesWritten } = await log.write(line, done, line.length - done, this.logValid + done);
        if (bytesWritten <= 0) throw Object.assign(new Error('write(2) wrote nothing'), { code: 'EIO' });
        done += bytesWritten;
      }
    } catch (e) {
      this.logSeen = Math.max(this.logSeen, this.logValid + done);
      let cut = true;
      if (done > 0) {
        try {
          await log.truncate(this.logValid);
          this.logSeen = this.logValid;
        } catch {
          cut = false; // the next writer cuts it (logSeen > logValid there too)
        }
      }
      if (records === 1) throw this.ioError(e, `cannot append revision ${this.revision + 1} to log.${this.generation} (${done} of ${line.length} bytes written, not applied)`);
      // Several lines: no reader takes them without the last (m), cut off or not.
      throw this.ioError(e, `cannot append revisions ${this.revision + 1}-${this.revision + records} to log.${this.generation} (${done} of ${line.length} bytes written, none applied${cut ? '' : '; the partial batch is cut off by the next writer'})`);
    }
  }

  /**
   * Takes the writer lock; a system error (no room for its token file: ENOSPC, EROFS) names the store.
   * The lock's token file lives in the store's directory: an instance that has not read the store
   * yet makes the directory first (a first write on a store that does not exist yet, e.g. `podway
   * create` of a Profile into a fresh embedded store, failed with ENOENT on the token), as its first
   * read does; one whose directory went away while in use says the store is gone, as a read does.
   */
  private async acquireLock(): Promise<void> {
    if (!this.loaded) {
      await makeDirs(this.dir, { mode: 0o700 }).catch((e) => { throw this.systemError(e, `cannot make the store's directory ${this.dir}`); });
    }
    try {
      await this.lock.acquire();
    } catch (e) {
      if (isErrno(e, 'ENOENT') && !existsSync(this.dir)) throw new KvUnavailableError(`${this.description}: ${this.dir} is gone (the store was deleted or moved while in use): not written`);
      throw this.systemError(e, `cannot take the writer lock ${this.lock.path}`);
    }
  }

  /** A system error (one with a syscall: ENOSPC, EROFS, EACCES, EIO...) as ioError; others as they are. */
  private systemError(e: unknown, what: string): unknown {
    return typeof (e as NodeJS.ErrnoException)?.syscall === 'string' ? this.ioError(e, what) : e;
  }

  /** An I/O error of the store's files, naming the store; keeps the errno code (ENOSPC, EIO...). */
  private ioError(e: unknown, what: string): Error {
    const code = (e as NodeJS.ErrnoException)?.code;
    const err = new Error(`${this.description}: ${what}: ${(e as Error)?.message ?? String(e)}`) as NodeJS.ErrnoException;
    if (code) err.code = code;
    return err;
  }

  /**
   * A batched fdatasync that failed (EIO, ENOSPC at writeback) is reported once, by the next write
   * (not made) or by close(): the writes of the last ~100 ms may not be on disk.
   */
  private throwSyncFailure(): void {
    const e = this.syncFailure;
    if (e === undefined) return;
    this.syncFailure = undefined;
    throw this.ioError(e, `an earlier fdatasync of log.${this.syncFailureGeneration} failed (the writes up to then may not survive a crash)`);
  }

  private scheduleSync(): void {
    if (this.syncTimer) return;
    const log = this.log;
    const generation = this.generation;
    this.syncTimer = setTimeout(() => {
      this.syncTimer = undefined;
      void log?.datasync().catch((e) => {
        // A log rotated away (its handle closed: EBADF) was synced by the snapshot that replaced it.
        if (log !== this.log || isErrno(e, 'EBADF')) return;
        this.syncFailure = e;
        this.syncFailureGeneration = generation;
      });
    }, BATCHED_SYNC_MS);
  }

  private read<T>(fn: () => T): Promise<T> {
    if (this.closed) return Promise.reject(new Error(`${this.description}: store is closed`));
    return this.queue.run(async () => {
      await this.refresh(false);
      return fn();
    });
  }

  // ---- KvStore -----------------------------------------------------------------------------

  get(key: string): Promise<KvEntry | null> {
    return this.read(() => this.entries.get(key) ?? null);
  }

  list(prefix: string): Promise<KvList> {
    return this.read(() => {
      const entries: KvEntry[] = [];
      for (let i = this.lowerBound(prefix); i < this.sortedKeys.length; i++) {
        const k = this.sortedKeys[i];
        if (!k.startsWith(prefix)) break;
        entries.push(this.entries.get(k)!);
      }
      return { entries, revision: this.revision };
    });
  }

  async create(key: string, value: string): Promise<KvEntry | null> {
    const rev = await this.mutate(() => (this.entries.has(key) ? null : { k: key, v: value }));
    return rev === null ? null : { key, value, createRevision: rev, modRevision: rev };
  }

  async update(key: string, value: string, modRevision: number, guards: readonly KvGuard[] = []): Promise<KvEntry | null> {
    let createRevision = 0;
    const rev = await this.mutate(() => {
      const cur = this.entries.get(key);
      if (!cur || cur.modRevision !== modRevision) return null;
      // Checked under the writer lock, after catching up with the log: one transaction.
      if (guards.some((g) => this.entries.get(g.key)?.modRevision !== g.modRevision)) return null;
      createRevision = cur.createRevision;
      return { k: key, v: value, c: cur.createRevision };
    });
    return rev === null ? null : { key, value, createRevision, modRevision: rev };
  }

  async delete(key: string, modRevision?: number): Promise<boolean> {
    const rev = await this.mutate(() => {
      const cur = this.entries.get(key);
      if (!cur || (modRevision !== undefined && cur.modRevision !== modRevision)) return null;
      return { k: key, d: 1 };
    });
    return rev !== null;
  }

  readonly maxBatch = MAX_BATCH;

  getMany(keys: readonly string[]): Promise<(KvEntry | null)[]> {
    return this.read(() => keys.map((k) => this.entries.get(k) ?? null));
  }

  /** Every write's condition checked under the writer lock, then all appended at once (or none). */
  async writeBatch(writes: readonly KvBatchWrite[]): Promise<number[] | null> {
    if (!checkBatch(writes, MAX_BATCH)) return [];
    const first = await this.mutateMany(() => {
      const recs: Omit<LogRecord, 'r'>[] = [];
      for (const w of writes) {
        const cur = this.entries.get(w.key);
        if (w.modRevision === 0 ? cur !== undefined : cur?.modRevision !== w.modRevision) return null;
        recs.push(cur ? { k: w.key, v: w.value, c: cur.createRevision } : { k: w.key, v: w.value });
      }
      return recs;
    });
    return first === null ? null : writes.map((_, i) => first + i);
  }

  /** Discards the event history up to `revision` (watches from at or before it must resync). */
  async compact(revision: number): Promise<void> {
    if (this.closed) throw new Error(`${this.description}: store is closed`);
    await this.queue.run(async () => {
      await this.acquireLock();
      try {
        await this.refresh(true);
        await this.rotate(revision).catch((e) => { throw this.systemError(e, 'cannot fold the log into a new snapshot'); });
      } finally {
        await this.lock.release();
      }
    });
    this.dispatch();
  }

  watch(prefix: string, fromRevision: number, handlers: KvWatchHandlers): KvWatch {
    if (this.closed) throw new Error(`${this.description}: store is closed`);
    if (this.watchHistory === 0) throw new Error(`${this.description}: this instance keeps no events for watchers (watchHistory 0): it cannot watch`);
    if (!Number.isInteger(fromRevision) || fromRevision < 1) {
      throw new RangeError(`watch: fromRevision must be an integer >= 1, got ${fromRevision}`);
    }
    const w = new FileWatch(prefix, fromRevision, handlers, () => {
      this.watches.delete(w);
      if (this.watches.size === 0) this.stopNotifier();
    });
    this.watches.add(w);
    this.startNotifier();
    this.poll();
    return w;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    for (const w of [...this.watches]) await w.close();
    this.closed = true;
    await this.queue.run(async () => {
      let failed: Error | undefined;
      if (this.syncTimer) {
        clearTimeout(this.syncTimer);
        this.syncTimer = undefined;
        await this.log?.datasync().catch((e) => {
          failed = this.ioError(e, `fdatasync of log.${this.generation} at close failed (the last writes may not survive a crash)`);
        });
      }
      try {
        this.throwSyncFailure();
      } catch (e) {
        failed ??= e as Error;
      }
      await this.log?.close().catch(() => undefined);
      this.log = undefined;
      await this.lock.dispose();
      // Closed all the same; the failure is the caller's to report (the writes were not confirmed).
      if (failed) throw failed;
    });
  }

  // ---- watches -----------------------------------------------------------------------------

  private startNotifier(): void {
    if (this.notifier) return;
    let watcher: FSWatcher | undefined;
    try {
      watcher = fsWatch(this.dir, { persistent: false }, () => this.poll());
      watcher.on('error', () => undefined); // the poll below still runs
    } catch {
      watcher = undefined; // the directory does not exist yet: polling finds it
    }
    const timer = setInterval(() => this.poll(), this.pollMs);
    this.notifier = { watcher, timer };
  }

  private stopNotifier(): void {
    if (!this.notifier) return;
    this.notifier.watcher?.close();
    clearInterval(this.notifier.timer);
    this.notifier = undefined;
  }

  /** Catches up with the files and hands new events to watchers (coalesced: one at a time). */
  private poll(): void {
    if (this.pollScheduled || this.closed) return;
    this.pollScheduled = true;
    void this.queue
      .run(async () => {
        this.pollScheduled = false;
        if (this.closed) return;
        await this.refresh(false);
      })
      .then(
        () => {
          if (this.storeDown) {
            this.storeDown = false;
            for (const w of this.watches) w.status('up', `${this.description}: readable again`);
          }
          this.dispatch();
        },
        (e: Error) => {
          this.pollScheduled = false;
          if (!this.storeDown) {
            this.storeDown = true;
            for (const w of this.watches) w.status('down', `${this.description}: ${e.message}`);
          }
        },
      );
  }

  private dispatch(): void {
    for (const w of [...this.watches]) {
      if (w.next <= this.compactRevision) {
        w.resync('compacted');
        continue;
      }
      if (w.next > this.revision + 1) {
        // The revision went backwards: the store was replaced by another one (deleted and made
        // again by a writer, restored from a copy). The events the watcher expects never come.
        w.resync(`${this.description} went back to revision ${this.revision} (we had seen revision ${w.next - 1}): the store was replaced`, true);
        continue;
      }
      if (w.next > this.revision) continue;
      const events: KvEvent[] = [];
      for (let i = w.next - this.compactRevision - 1; i < this.history.length; i++) {
        const ev = this.history[i];
        if ((ev.type === 'put' ? ev.entry.key : ev.key).startsWith(w.prefix)) events.push(ev);
      }
      w.next = this.revision + 1;
      if (events.length > 0) w.deliver(events);
    }
  }
}

class FileWatch implements KvWatch {
  private closed = false;

  constructor(
    readonly prefix: string,
    /** The first revision not yet delivered. */
    public next: number,
    private readonly handlers: KvWatchHandlers,
    private readonly detach: () => void,
  ) {}

  deliver(events: readonly KvEvent[]): void {
    if (!this.closed) this.handlers.onEvents(events);
  }

  resync(reason: string, replaced = false): void {
    if (this.closed) return;
    this.closed = true;
    this.detach();
    this.handlers.onResync(reason, replaced);
  }

  status(status: 'up' | 'down', detail: string): void {
    if (!this.closed) this.handlers.onStatus?.(status, detail);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.detach();
  }
}

