// TEMPORARY: the BGP speaker's public types as agreed with the bgp-speaker branch, so the Calico
// model compiles before speaker.ts lands. Removed once speaker.ts is on main.
import type { EventEmitter } from 'node:events';

export interface BgpPeerConfig { address: string; asNumber: number; passive?: boolean; port?: number; password?: string; routeReflectorClient?: boolean; keepOriginalNextHop?: boolean; holdTimeSeconds?: number; localAddress?: string; description?: string }
export interface BgpSpeakerOptions { localAs: number; routerId: string; listenAddress?: string; listenPort?: number; clusterId?: string; gracefulRestartSeconds?: number }
export interface BgpExport { prefix: string; nextHop?: string; communities?: string[] }
export interface BgpRoute { prefix: string; nextHop: string; peer: string; asPath: number[]; localPref?: number; med?: number; communities: string[]; originatorId?: string; clusterList?: string[] }
export type BgpState = 'Idle' | 'Connect' | 'Active' | 'OpenSent' | 'OpenConfirm' | 'Established';
export interface BgpPeerStatus { address: string; asNumber: number; description?: string; state: BgpState; since: Date; info: string; messagesIn: number; messagesOut: number; updatesIn: number; updatesOut: number; prefixesReceived: number; prefixesAccepted: number }
export declare class BgpSpeaker extends EventEmitter {
  constructor(opts: BgpSpeakerOptions);
  start(): Promise<void>;
  stop(opts?: { graceful?: boolean }): Promise<void>;
  setPeers(peers: BgpPeerConfig[]): void;
  setExports(routes: BgpExport[]): void;
  learned(): BgpRoute[];
  status(): BgpPeerStatus[];
}
