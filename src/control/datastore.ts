// The contract between a source of cluster state (a YAML file today, etcd later) and the control
// plane. A datastore delivers whole validated snapshots; consumers recompute their model from each
// one and diff (route-calc.ts), so a datastore never has to describe what changed.
import type { ClusterSnapshot } from './snapshot';

export type SnapshotListener = (snapshot: ClusterSnapshot) => void;
export type DatastoreErrorListener = (error: Error) => void;

export interface Datastore {
  /**
   * Loads the initial state and starts watching. Resolves with the first snapshot (which is also
   * delivered to snapshot listeners); rejects if the initial state is invalid, because there is
   * no last good snapshot to fall back on.
   */
  start(): Promise<ClusterSnapshot>;
  /** Stops watching. No listener is called after the returned promise resolves. */
  close(): Promise<void>;
  /** The snapshot in force: the last valid one, or undefined before start() succeeded. */
  current(): ClusterSnapshot | undefined;
  /** Called with every new valid snapshot. Returns a function that unsubscribes. */
  onSnapshot(listener: SnapshotListener): () => void;
  /** Called when an update is rejected (the previous snapshot stays in force) or the watch fails. */
  onError(listener: DatastoreErrorListener): () => void;
}

/**
 * The listener side every datastore shares: subscriptions, and delivery that goes on when one
 * listener throws (a consumer that cannot use a snapshot is reported like a rejected edit, and
 * must not stop the watch or starve the other listeners).
 */
export abstract class DatastoreEvents {
  private readonly snapshotListeners = new Set<SnapshotListener>();
  private readonly errorListeners = new Set<DatastoreErrorListener>();
  /** Set by close(): nothing is delivered after it. */
  protected closed = false;

  onSnapshot(listener: SnapshotListener): () => void {
    this.snapshotListeners.add(listener);
    return () => this.snapshotListeners.delete(listener);
  }

  onError(listener: DatastoreErrorListener): () => void {
    this.errorListeners.add(listener);
    return () => this.errorListeners.delete(listener);
  }

  protected emitSnapshot(snapshot: ClusterSnapshot): void {
    if (this.closed) return;
    for (const listener of [...this.snapshotListeners]) {
      try {
        listener(snapshot);
      } catch (err) {
        this.emitError(err instanceof Error ? err : new Error(String(err)));
      }
    }
  }

  protected emitError(error: Error): void {
    if (this.closed) return;
    for (const listener of [...this.errorListeners]) {
      try {
        listener(error);
      } catch {
        // An error handler that fails has nobody left to tell; keep the watch alive.
      }
    }
  }
}
