/**
 * WorkloadEndpoints of this node whose interface has been missing for long: a pod removed while
 * podway (and so the CNI plugin's DEL) could not clean up, e.g. `podman rm -f` with podway down,
 * leaves its endpoint and its address behind, and `podway endpoints` says `waiting: interface
 * missing` forever. Nothing here deletes anything: a pod being wired has its endpoint written
 * right after its veth (src/cni/plugin.ts), and a repeated ADD that re-makes a veth deletes it
 * first, so an endpoint waiting a moment is normal. podway names the long waits (status, the
 * metrics, `ipam check`) with the commands that clean them up.
 */

import { podwayCommand } from '../util/invocation';

/** How long an endpoint waits for its interface before `podway status` names it (default). */
export const DEFAULT_STALE_ENDPOINT_MS = 5 * 60_000;

/** An endpoint waiting for its interface, as `podway endpoints -o json` and the engine give it. */
export interface WaitingEndpoint {
  /** "namespace/name" of the WorkloadEndpoint. */
  readonly workload: string;
  readonly interface: string;
  /** Its addresses as CIDRs (/32, /128). */
  readonly networks: readonly string[];
  /** Why it is not attached. */
  readonly error: string;
  /** Since when this podway has found it waiting (ISO 8601): since its start at the earliest. */
  readonly since: string;
  /** The interface does not exist (rather than another attach error). */
  readonly missing: boolean;
}

export interface StaleEndpoint extends WaitingEndpoint {
  readonly waitingSeconds: number;
  /** The commands that remove it and release its addresses, if its pod is gone. */
  readonly cleanup: string;
}

/**
 * The CNI DEL's datastore half by hand: the endpoint, then its addresses (each only if unused).
 * `--grace-period 0`: the grace period keeps a young allocation from a release while an ADD may
 * still write its endpoint, but these addresses had an endpoint (the one deleted first) and the
 * operator has judged its pod gone; with the default 15 min, an address allocated shortly before
 * its pod vanished was refused and the printed command failed half-way.
 */
export function cleanupCommand(workload: string, networks: readonly string[]): string {
  const slash = workload.indexOf('/');
  const ns = slash > 0 ? workload.slice(0, slash) : 'default';
  const name = slash > 0 ? workload.slice(slash + 1) : workload;
  const ips = networks.map((n) => n.replace(/\/\d+$/, ''));
  const podway = podwayCommand();
  const del = `${podway} delete workloadendpoint ${name} -n ${ns}`;
  return ips.length ? `${del} && ${podway} ipam release ${ips.map((ip) => `--ip ${ip}`).join(' ')} --grace-period 0` : del;
}

/** The endpoints whose interface has been missing for `afterMs` or longer at `now`, oldest first. */
export function staleEndpoints(waiting: readonly WaitingEndpoint[], now: number, afterMs: number): StaleEndpoint[] {
  return waiting
    .filter((w) => w.missing && now - Date.parse(w.since) >= afterMs)
    .sort((a, b) => Date.parse(a.since) - Date.parse(b.since))
    .map((w) => ({ ...w, waitingSeconds: Math.floor((now - Date.parse(w.since)) / 1000), cleanup: cleanupCommand(w.workload, w.networks) }));
}

/**
 * `podway status`'s (and `ipam check`'s) line for one. Its commands are made here, by the process
 * printing it, from the endpoint's name and addresses: they name podway as the reader ran it
 * (`node bin/podway.js status` prints `node bin/podway.js delete ...`), not as `podway run` was
 * started (util/invocation.ts). s.cleanup, podway run's, stays in the JSON.
 */
export function staleEndpointLine(s: StaleEndpoint): string {
  return `endpoint ${s.workload}: interface ${s.interface} missing since ${s.since} (${formatWait(s.waitingSeconds)}); if its pod is gone (removed while podway or its CNI DEL could not run), clean up with: ${cleanupCommand(s.workload, s.networks)}`;
}

/** The age of the oldest endpoint waiting for its missing interface, in seconds (0: none). */
export function oldestMissingSeconds(waiting: readonly WaitingEndpoint[], now: number): number {
  let oldest = now;
  for (const w of waiting) if (w.missing) oldest = Math.min(oldest, Date.parse(w.since));
  return Math.max(0, (now - oldest) / 1000);
}

function formatWait(s: number): string {
  if (s < 120) return `${s} s`;
  if (s < 7200) return `${Math.floor(s / 60)} min`;
  return `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min`;
}
