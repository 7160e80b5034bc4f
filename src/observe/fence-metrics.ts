/**
 * The etcd create fences (src/control/kv/etcd-fence.ts) as metrics: what this thread's creates'
 * fences did, per store, read from etcd-fence's thread totals at scrape time. `podway run` makes
 * its creates (registration: Node, ClusterInformation, tunnel-address IPAM) in its main thread,
 * where this collector reads. An operator alerts on result="unwritten" rising: a create whose copy
 * on a member was left without its fence (the race the fence closes stays open for it).
 */
import type { Registry } from 'prom-client';
import { fenceTotals, threadFenceCounters } from '../control/kv/etcd-fence';
import { Collector, Sample, snapshotCounter } from './metrics';

const RESULTS = ['written', 'moved', 'unwritten'] as const;

export class FenceCollector implements Collector {
  /** `store`: the store's name as its errors give it ("etcd URL[,URL]"), exported at 0 from the start. */
  constructor(store: string) {
    threadFenceCounters(store);
  }

  register(reg: Registry): void {
    snapshotCounter(reg, 'podway_etcd_create_fences_total', 'What the etcd create fences did, per store: written (a create left a copy on a member that did not answer in time; its fence written, so the copy changes nothing when applied), moved (a create sent again because another call\'s fence moved since the revision it carried), unwritten (a create left a copy whose fence could not be written: the copy may create the key again after a delete; logged once per fence key).', ['store', 'result'], () =>
      fenceTotals().flatMap((t) => RESULTS.map((result): Sample => [{ store: t.store, result }, t[result]])));
  }
}
