// A guard over etcd3's watch multiplexer (node_modules/etcd3/lib/watch.js, WatchManager) for the
// answers etcd sends about a watch the library no longer tracks.
//
// etcd3 1.1 throws ClientRuntimeError("Failed to find watcher for IWatchResponse") from its gRPC
// stream's 'data' handler when a response names a watch id none of its watchers holds. A throw
// there is an uncaught exception: it kills the whole process (`podway run`, the CNI plugin). etcd
// sends such answers in ordinary operation:
// - a watch etcd canceled (its start revision compacted) is dropped from the library's list at
//   once, but etcd still holds it in its watch stream: canceling it afterwards (as a caller that
//   learns the store was replaced does) writes a cancel request etcd answers with "canceled" for
//   that id. The caller's cancel() then also waits for an 'end' that never comes.
// - events or progress notifications already in flight for a watch being let go.
// etcd's own Go client (clientv3's watchGrpcStream) ignores a response for an unknown id, and asks
// etcd to cancel a watch that still sends events. So does this guard: a "canceled" answer for a
// watcher we are closing ends it (its cancel() resolves); any other answer for an unknown id is
// counted and, when it carries events, the id is canceled so etcd stops sending. Nothing is lost:
// no watcher listens on that id, and a watcher that resubscribes starts from the revision it had
// delivered (etcd-kv.ts). The same for a creation answer nobody waits for.
//
// The guard wraps two methods of the library's WatchManager prototype, once per process, keeping
// the library's own handling for every known id. It checks the shape it relies on when installed
// and refuses loudly (at start, not mid-outage) if an etcd3 update changed it.
import { createRequire } from 'node:module';
import type { EventEmitter } from 'node:events';
import type { IWatchResponse } from 'etcd3';

/** What the guard reads of etcd3's internal watcher and manager (etcd3 1.1.x). */
interface WatcherShape extends EventEmitter {
  id: string | null;
}
interface ManagerShape {
  watchers: WatcherShape[];
  expectedClosers: Set<WatcherShape>;
  state: number;
  stream?: { write(message: unknown): unknown };
  queue?: { queue: WatcherShape[] };
  handleResponse(res: IWatchResponse): void;
  handleCreatedResponse(res: IWatchResponse): void;
}

/** WatchManager's state while its stream is open (etcd3's State.Connected). */
const CONNECTED = 2;

let installed = false;
let strays = 0;
let lateCancels = 0;

/** Answers etcd sent for watch ids the library no longer tracked: ignored, never thrown. */
export function strayWatchResponses(): number {
  return strays;
}

/** Cancel answers for watchers etcd had already canceled (their cancel() resolved by the guard). */
export function lateWatchCancels(): number {
  return lateCancels;
}

/** Installs the guard once per process (etcd-kv.ts does at load). Throws if etcd3's shape changed. */
export function installEtcdWatchGuard(): void {
  if (installed) return;
  const watchModule = createRequire(__filename)('etcd3/lib/watch') as { WatchManager?: { prototype: ManagerShape } };
  const proto = watchModule.WatchManager?.prototype;
  if (!proto || typeof proto.handleResponse !== 'function' || typeof proto.handleCreatedResponse !== 'function') {
    throw new Error('etcd3 changed: lib/watch.js has no WatchManager.handleResponse/handleCreatedResponse (src/control/kv/etcd-watch-guard.ts needs review)');
  }
  const handleResponse = proto.handleResponse;
  const handleCreatedResponse = proto.handleCreatedResponse;

  proto.handleResponse = function (this: ManagerShape, res: IWatchResponse): void {
    if (this.watchers.some((w) => w.id === res.watch_id)) return handleResponse.call(this, res);
    if (res.canceled) {
      const closing = [...this.expectedClosers].find((w) => w.id === res.watch_id);
      if (closing) {
        lateCancels++;
        this.expectedClosers.delete(closing);
        closing.emit('end');
        return;
      }
    }
    strays++;
    if (!res.canceled) cancelOnStream(this, res.watch_id);
  };

  proto.handleCreatedResponse = function (this: ManagerShape, res: IWatchResponse): void {
    const nobodyWaits = res.canceled
      ? !this.watchers.some((w) => w.id === null)
      : (this.queue?.queue.length ?? 0) === 0;
    if (!nobodyWaits) return handleCreatedResponse.call(this, res);
    strays++;
    if (!res.canceled) cancelOnStream(this, res.watch_id);
  };
  installed = true;
}

/** Asks etcd to cancel watch `id` on the manager's open stream (nothing to do on a closed one). */
function cancelOnStream(manager: ManagerShape, id: string | number): void {
  if (manager.state !== CONNECTED || !manager.stream) return;
  try {
    manager.stream.write({ cancel_request: { watch_id: id } });
  } catch {
    // the stream is ending: etcd drops its watches with it
  }
}
