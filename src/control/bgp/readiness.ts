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
