// Calico's own name for a datastore: ClusterInformation "default", whose spec.clusterGUID (32 hex
// digits) calico-node's start-up writes once, when it creates the resource, and nobody changes
// afterwards (podway's registration does the same: node-registration.ts, markDatastoreReady).
// A store wiped or rebuilt and filled again gets another one from the first node that starts
// against it; etcd's own cluster_id does not tell such a store apart when it was rebuilt with the
// same member name, URLs and token, or restored keeping its ID. The etcd watch (etcd-kv.ts) reads
// it back after every reconnection.

/** The key of ClusterInformation "default" in Calico's etcd v3 layout. */
export const CLUSTER_INFORMATION_KEY = '/calico/resources/v3/projectcalico.org/clusterinformations/default';

/** spec.clusterGUID of a stored ClusterInformation value; null when it has none (or is not a JSON object). */
export function clusterGuidOf(value: string): string | null {
  const guid = specOf(value)?.clusterGUID;
  return typeof guid === 'string' && guid !== '' ? guid : null;
}

/** The spec object of a stored ClusterInformation value; null when the value is not JSON or has none. */
function specOf(value: string): Record<string, unknown> | null {
  let parsed: unknown;
  try {
    parsed = JSON.parse(value);
  } catch {
    return null;
  }
  const spec = typeof parsed === 'object' && parsed !== null ? (parsed as { spec?: unknown }).spec : undefined;
  return typeof spec === 'object' && spec !== null ? (spec as Record<string, unknown>) : null;
}

/** A GUID as the status shows it: its first 8 hex digits. */
export function shortGuid(guid: string): string {
  return guid.slice(0, 8);
}

/**
 * Whether a stored ClusterInformation value says the datastore is locked: spec.datastoreReady
 * false, as `calicoctl datastore migrate lock` leaves it (an absent flag is not a lock: calico-node
 * and podway's registration set it true). Calico's Felix and CNI plugin wait while it is false.
 */
export function datastoreLockedIn(value: string): boolean {
  return specOf(value)?.datastoreReady === false;
}

/** What a locked datastore means and how to lift it, for messages. */
export const DATASTORE_LOCKED_TEXT = 'ClusterInformation default has datastoreReady: false, as `calicoctl datastore migrate lock` leaves it; `calicoctl datastore migrate unlock` lifts it';
