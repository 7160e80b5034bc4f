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
