// A Datastore backed by one multi-document YAML file, watched for edits.
//
// We watch the directory, not the file: editors (vim, VS Code, `kubectl`-style tools, `mv` of a
// temp file) often save by writing a new file and renaming it over the old one, which leaves a
// watch on the old inode deaf. Events are debounced because one save produces several events
// (truncate, write, rename...) and the file may be briefly missing or half-written in between.
//
// A writer that writes the file in place (not a temp file renamed over it) and pauses longer than
// the debounce leaves a valid YAML prefix for a while: applied, it would withdraw every pod, pool
// or node behind the cut. So a reload that leaves fewer objects than the snapshot in force is held
// until the file has not changed for `shrinkSettleMs` (default 2 s; re-read and compared, a change
// meanwhile starts the wait again); one that adds or edits objects applies after the debounce.
// Only atomic replacement (write a temp file, rename it over) is safe against any pause: docs/datastores.md,
// "Replace the file atomically".
import { FSWatcher, watch } from 'node:fs';
import { readFile } from 'node:fs/promises';
import * as path from 'node:path';
import { Datastore, DatastoreEvents } from './datastore';
import { ClusterSnapshot, parseClusterYaml } from './snapshot';

export interface FileDatastoreOptions {
  /** Quiet time after the last file event before re-reading (default 100 ms). */
  readonly debounceMs?: number;
  /** How long the file must stay unchanged before a reload that removes objects applies
   * (default 2000 ms; see the file comment). */
  readonly shrinkSettleMs?: number;
}

/** Objects a snapshot holds (every kind a file can carry). */
function objectCount(s: ClusterSnapshot): number {
  return s.ipPools.length + s.nodes.length + s.blockAffinities.length + s.workloadEndpoints.length + (s.bgpConfigurations?.length ?? 0) + (s.bgpPeers?.length ?? 0) + (s.felixConfigurations?.length ?? 0);
}

/** Reads and validates a file once, without watching. Errors name the file as given. */
export async function loadClusterFile(filePath: string): Promise<ClusterSnapshot> {
  let text: string;
  try {
    text = await readFile(filePath, 'utf8');
  } catch (err) {
    throw new Error(`${filePath}: cannot read: ${(err as Error).message}`);
  }
  return parseClusterYaml(text, filePath);
}

export class FileDatastore extends DatastoreEvents implements Datastore {
  private readonly debounceMs: number;
  private readonly shrinkSettleMs: number;
  /** Ends a shrink hold's wait early (close). */
  private wake: (() => void) | undefined;
  private snapshot: ClusterSnapshot | undefined;
  private watcher: FSWatcher | undefined;
  private debounceTimer: NodeJS.Timeout | undefined;
  /** The text of the last read attempt, valid or not: the same bytes are not re-reported. */
  private lastSeenText: string | undefined;
  private reloading: Promise<void> | undefined;
  private reloadAgain = false;

  constructor(readonly filePath: string, options: FileDatastoreOptions = {}) {
    super();
    this.debounceMs = options.debounceMs ?? 100;
    this.shrinkSettleMs = options.shrinkSettleMs ?? 2000;
  }

  async start(): Promise<ClusterSnapshot> {
    if (this.watcher || this.closed) throw new Error(`${this.filePath}: datastore already started or closed`);
    // Watch before the first read so that an edit made during the read is not missed.
    const dir = path.dirname(path.resolve(this.filePath));
    const base = path.basename(this.filePath);
    this.watcher = watch(dir, { persistent: true }, (_event, filename) => {
      // filename can be null on some platforms; then any event in the directory may be ours.
      if (filename === null || filename === base) this.scheduleReload();
    });
    this.watcher.on('error', (err) => this.emitError(new Error(`${this.filePath}: watch failed: ${err.message}`)));
    try {
      const text = await this.readText();
      this.lastSeenText = text;
      this.snapshot = parseClusterYaml(text, this.filePath);
    } catch (err) {
      await this.close();
      throw err;
    }
    this.emitSnapshot(this.snapshot);
    return this.snapshot;
  }

  current(): ClusterSnapshot | undefined {
    return this.snapshot;
  }

  async close(): Promise<void> {
    this.closed = true;
    if (this.debounceTimer) clearTimeout(this.debounceTimer);
    this.debounceTimer = undefined;
    this.watcher?.close();
    this.watcher = undefined;
    this.wake?.();
    await this.reloading;
  }

  private scheduleReload(): void {
    if (this.closed) return;
    if (this.debounceTimer) clearTimeout(this.debounceTimer);
    this.debounceTimer = setTimeout(() => {
      this.debounceTimer = undefined;
      this.startReload();
    }, this.debounceMs);
  }

  /** Runs one reload at a time; an event during a reload queues exactly one more. */
  private startReload(): void {
    if (this.reloading) {
      this.reloadAgain = true;
      return;
    }
    this.reloading = this.reload().finally(() => {
      this.reloading = undefined;
      if (this.reloadAgain && !this.closed) {
        this.reloadAgain = false;
        this.startReload();
      }
    });
  }

  private async reload(): Promise<void> {
    let text: string;
    try {
      text = await this.readText();
    } catch (err) {
      // Still missing after the debounce: a real deletion, not an editor's rename in progress.
      this.lastSeenText = undefined;
      this.emitError(err as Error);
      return;
    }
    if (this.closed || text === this.lastSeenText) return;
    this.lastSeenText = text;
    let next: ClusterSnapshot;
    try {
      next = parseClusterYaml(text, this.filePath);
    } catch (err) {
      this.emitError(err as Error); // the last good snapshot stays in force
      return;
    }
    // Fewer objects than in force: maybe a writer's valid prefix. Applied only once the file has
    // stayed the same for shrinkSettleMs; a change meanwhile is read and judged afresh.
    if (this.snapshot && objectCount(next) < objectCount(this.snapshot) && !(await this.settled(text))) return;
    this.snapshot = next;
    this.emitSnapshot(next);
  }

  /** Waits shrinkSettleMs (less when closed): whether the file still holds `text`. When not, the
   * change is judged afresh by one more reload. */
  private async settled(text: string): Promise<boolean> {
    await new Promise<void>((resolve) => {
      const timer = setTimeout(() => {
        this.wake = undefined;
        resolve();
      }, this.shrinkSettleMs);
      this.wake = () => {
        clearTimeout(timer);
        this.wake = undefined;
        resolve();
      };
    });
    if (this.closed) return false;
    let now: string;
    try {
      now = await this.readText();
    } catch {
      now = '';
    }
    if (now === text) return true;
    this.lastSeenText = undefined;
    this.reloadAgain = true;
    return false;
  }

  private async readText(): Promise<string> {
    try {
      return await readFile(this.filePath, 'utf8');
    } catch (err) {
      throw new Error(`${this.filePath}: cannot read: ${(err as Error).message}`);
    }
  }


}
