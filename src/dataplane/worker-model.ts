/**
 * The model message the main engine sends its forwarding workers (worker.ts, `podway run
 * --workers N`): the model, the kernel routes it was applied with, and where the main engine reads
 * tunnels after applying it (Engine.tunnelRx). A worker manages no host state, so it cannot decide
 * the last itself: the main engine's can change with any model (a new node address rewrites the
 * tunnel table, which nft may refuse), and a worker whose underlay filter or IPv6 VXLAN socket
 * disagreed with the table would read tunnel packets twice or never. The same for the IPv4 address
 * its ports follow (TunnelRx.ip), which is not the model's after a failed follow-back (engine.ts
 * followBack): run.ts then sends the last good model again with it.
 */
import type { NodeDataplaneModel } from '../control';
import type { Engine, TunnelRx } from './engine';
import type { KernelRoute } from './host';
import type { LocalAddresses } from './local-addrs';

export interface WorkerModelMessage {
  type: 'model';
  model: NodeDataplaneModel;
  kernelRoutes: readonly KernelRoute[];
  tunnels: TunnelRx;
  /** The node's own addresses as the main engine holds them (local-addrs.ts; changes between
   * models come as 'local-addresses' messages). */
  local?: LocalAddresses;
}

/** The message for a model `main` has just applied (structured-clone safe: plain data). */
export function workerModelMessage(main: Engine, model: NodeDataplaneModel, kernelRoutes: readonly KernelRoute[]): WorkerModelMessage {
  return { type: 'model', model, kernelRoutes, tunnels: main.tunnelRx(), local: main.localAddresses() };
}

/** A worker applies it: the tunnels first, so ports reopened for the model already follow them. */
export function applyWorkerModel(engine: Engine, msg: WorkerModelMessage): void {
  if (msg.local) engine.setLocalAddresses(msg.local);
  engine.apply(msg.model, msg.kernelRoutes, msg.tunnels);
}
