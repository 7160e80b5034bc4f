// A Datastore backed by one multi-document YAML file, watched for edits.
//
// We watch the directory, not the file: editors (vim, VS Code, `kubectl`-style tools, `mv` of a
// temp file) often save by writing a new file and renaming it over the old one, which leaves a
// watch on the old inode deaf. Events are debounced because one save produces several events
// (truncate, write, rename...) and the file may be briefly missing or half-written in between.
import { FSWatcher, watch } from 'node:fs';
import { readFile } from 'node:fs/promises';
import * as path from 'node:path';
import { Datastore, DatastoreEvents } from './datastore';
import { ClusterSnapshot, parseClusterYaml } from './snapshot';

export interface FileDatastoreOptions {
  /** Quiet time after the last file event before re-reading (default 100 ms). */
  readonly debounceMs?: number;
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
    this.snapshot = next;
    this.emitSnapshot(next);
  }

  private async readText(): Promise<string> {
    try {
      return await readFile(this.filePath, 'utf8');
    } catch (err) {
      throw new Error(`${this.filePath}: cannot read: ${(err as Error).message}`);
    }
  }


}
