// CNI error results (spec 1.x "Error"): a non-zero exit and {cniVersion, code, msg, details} on
// stdout. Codes 1-99 are the spec's; 100+ are podway's own.
export const CNI_CODES = {
  /** The config's cniVersion is not one this plugin speaks. */
  INCOMPATIBLE_VERSION: 1,
  UNSUPPORTED_FIELD: 2,
  CONTAINER_UNKNOWN: 3,
  /** A CNI_* environment variable is missing or malformed (the message names it). */
  INVALID_ENV: 4,
  IO_FAILURE: 5,
  /** The config on stdin is not JSON. */
  DECODE_FAILURE: 6,
  /** The config is JSON but a field is wrong (the message names it). */
  INVALID_CONFIG: 7,
  /** Retrying may help: the datastore is unreachable or slow, the node is not registered yet. */
  TRY_AGAIN_LATER: 11,
  /** STATUS: this plugin cannot serve ADD now. */
  CANNOT_SERVE_ADD: 50,
  /** CHECK found the attachment not as ADD made it. */
  CHECK_FAILED: 100,
  /** Netlink work (the `ip` commands) failed. */
  NETLINK_FAILED: 101,
  /** A delegated IPAM plugin failed (its own error is in details). */
  IPAM_FAILED: 102,
  /** GC could not remove everything; details lists each failure. */
  GC_INCOMPLETE: 103,
  /** The datastore refused a write (not a reachability problem). */
  DATASTORE_FAILED: 104,
  /** The address the runtime asked for (CNI_ARGS IP, runtimeConfig.ips) cannot be given: outside the pools, in use, or in another node's block under strict affinity. */
  IP_UNAVAILABLE: 105,
  /** The IP pools have no free address for the pod: every block claimed and borrowing from other
   * nodes' blocks found none. The spec has no code for it (11 would say a retry helps; it does only
   * once addresses are released or a pool is added). */
  POOL_EXHAUSTED: 106,
  /** ADD or DEL while the datastore is locked (ClusterInformation default datastoreReady: false):
   * the code Calico's plugin answers with (libcni's skel gives a plain Go error 999). */
  DATASTORE_LOCKED: 999,
} as const;

export class CniError extends Error {
  constructor(readonly code: number, message: string, readonly details = '') {
    super(message);
    this.name = 'CniError';
  }
}

/** The error result as the spec shapes it. */
export function errorResult(cniVersion: string, err: unknown): { cniVersion: string; code: number; msg: string; details?: string } {
  if (err instanceof CniError) {
    return err.details ? { cniVersion, code: err.code, msg: err.message, details: err.details } : { cniVersion, code: err.code, msg: err.message };
  }
  const e = err as Error;
  return { cniVersion, code: 999, msg: e?.message ?? String(err), details: e?.stack ?? '' };
}
