// BGP's part of `podway run --bgp`'s readiness, from the agent's status (a module of its own, so
// the main thread judges the model thread's answer without loading the speaker).
import type { NodeStatus } from './agent';

/**
 * Why BGP is not ready, as calico-node's -bird-ready judges it: the speaker is not running, or a
 * configured session is not Established ("BGP not established with A,B"). [] when ready, when BGP
 * is off, and when no peer is configured.
 */
export function bgpNotReady(s: NodeStatus): string[] {
  if (!s.enabled) return [];
  const out: string[] = [];
  if (s.speakerError) out.push(`the speaker is not running: ${s.speakerError}`);
  const down = s.peers.filter((p) => p.bgpState !== 'Established').map((p) => p.address);
  if (down.length > 0) out.push(`BGP not established with ${down.join(',')}`);
  return out;
}

/**
 * The answer for `podway node status`, the metrics and readiness while the speaker has not
 * started because the model thread has not (podway forwarding on its cached model, the datastore
 * unreachable since the start): the speaker is not running, saying why, instead of no answer.
 */
export function speakerNotStartedStatus(node: string, why: string): NodeStatus {
  return { enabled: true, node, asNumber: null, routerId: null, peers: [], exported: 0, learned: 0, speakerError: why };
}

/** The same answer when BGP is off (podway run without --bgp). */
export function bgpOffStatus(node: string): NodeStatus {
  return { enabled: false, node, asNumber: null, routerId: null, peers: [], exported: 0, learned: 0 };
}
