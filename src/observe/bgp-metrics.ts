/**
 * `podway run --bgp`'s sessions as metrics, read from the model thread's BGP status once per scrape
 * (the same answer `podway node status -o json` prints): whether the speaker runs, each configured
 * peer's session (Established or not, and its BGP state), messages and prefixes per peer, routes
 * exported and learned. An operator alerts on `podway_bgp_session_established == 0`.
 */
import type { Registry } from 'prom-client';
import type { NodeStatus } from '../control/bgp/agent';
import { Collector, Sample, snapshotCounter, snapshotGauge } from './metrics';

/** The BGP FSM states (RFC 4271 8.2.2), one series each in podway_bgp_session_state. */
const STATES = ['Idle', 'Connect', 'Active', 'OpenSent', 'OpenConfirm', 'Established'] as const;

export class BgpCollector implements Collector {
  private last: NodeStatus | null = null;

  /** `status` answers null when the model thread did not (then every series is left out). */
  constructor(private readonly status: () => Promise<NodeStatus | null>) {}

  async refresh(): Promise<void> {
    this.last = await this.status().catch(() => null);
  }

  register(reg: Registry): void {
    const peers = () => (this.last?.enabled ? this.last.peers : []);
    const perPeer = (value: (p: NodeStatus['peers'][number]) => number) => (): Sample[] => peers().map((p) => [{ peer: p.address, type: p.type }, value(p)]);
    snapshotGauge(reg, 'podway_bgp_speaker_running', '1 while the BGP speaker runs (listening and dialling its peers); 0 while it cannot start (e.g. port 179 taken) and is tried again.', [],
      () => (this.last?.enabled ? [[{}, this.last.speakerError ? 0 : 1]] : []));
    snapshotGauge(reg, 'podway_bgp_session_established', '1 while the BGP session with the peer is Established, else 0.', ['peer', 'type'], perPeer((p) => (p.bgpState === 'Established' ? 1 : 0)));
    snapshotGauge(reg, 'podway_bgp_session_state', 'The BGP state of each session: 1 for the state it is in, 0 for the others.', ['peer', 'type', 'state'],
      () => peers().flatMap((p) => STATES.map((state): Sample => [{ peer: p.address, type: p.type, state }, p.bgpState === state ? 1 : 0])));
    snapshotCounter(reg, 'podway_bgp_messages_received_total', 'BGP messages received from the peer (all sessions since podway started it).', ['peer', 'type'], perPeer((p) => p.messagesIn));
    snapshotCounter(reg, 'podway_bgp_messages_sent_total', 'BGP messages sent to the peer.', ['peer', 'type'], perPeer((p) => p.messagesOut));
    snapshotGauge(reg, 'podway_bgp_prefixes_received', 'Prefixes the peer announces to this node now.', ['peer', 'type'], perPeer((p) => p.prefixesReceived));
    snapshotGauge(reg, 'podway_bgp_prefixes_accepted', 'Prefixes from the peer that passed the import policy.', ['peer', 'type'], perPeer((p) => p.prefixesAccepted));
    snapshotGauge(reg, 'podway_bgp_stale_routes', 'Routes of a restarting peer kept (graceful restart helper, RFC 4724) until its End-of-RIB or restart time; 0 otherwise.', ['peer', 'type'], perPeer((p) => p.staleRoutes ?? 0));
    snapshotGauge(reg, 'podway_bgp_exported_prefixes', 'Prefixes this node announces (its blocks, and what it re-advertises).', [], () => (this.last?.enabled ? [[{}, this.last.exported]] : []));
    snapshotGauge(reg, 'podway_bgp_learned_routes', 'Learned routes in use (one per prefix) in the node\'s model.', [], () => (this.last?.enabled ? [[{}, this.last.learned]] : []));
  }
}
