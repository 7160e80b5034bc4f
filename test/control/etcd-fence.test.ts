// The etcd create fence's counting and its warning (etcd-fence.ts fencedCreate), driven through
// FencedCreateOps, the seam both etcd clients send their calls through: a create that left a copy
// and whose fence write failed (etcd gone right after the create answered, which a real cluster
// gives only by luck of timing) is counted unwritten in the store's counters and the thread's
// totals (what `podway status` and /metrics read), and said once per fence key. The fences'
// behaviour against real etcd members (written, moved) is test/control/kv-etcd-failover.test.ts's.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { fenceKeyOf, fencedCreate, fenceTotals, newFenceCounters, reportUnwrittenFences, threadFenceCounters, type FencedCreateOps } from '../../src/control/kv/etcd-fence';
import { KvUnavailableError } from '../../src/control/kv/kv';

const STORE = `etcd http://127.0.0.1:1/obsdocs-${process.pid}`;

/** Ops of a store at revision `rev` whose creates succeed, leave a copy when `copy`, and whose fence writes fail when `fail`. */
function ops(opts: { copy: boolean; fail: boolean; moved?: number }): FencedCreateOps & { fenceWrites: number } {
  let rev = 100;
  let moved = opts.moved ?? 0;
  const o = {
    fenceWrites: 0,
    revision: () => rev,
    readRevision: async () => rev,
    round: async (_fence: string, below: number) => {
      if (moved > 0) {
        moved--;
        rev += 2;
        return { succeeded: false, revision: rev, fenceMod: rev - 1, copyLeft: false };
      }
      assert.ok(below <= rev + 1);
      rev++;
      return { succeeded: true, revision: rev, fenceMod: 0, copyLeft: opts.copy };
    },
    writeFence: async () => {
      o.fenceWrites++;
      if (opts.fail) throw new KvUnavailableError('etcd http://127.0.0.1:1 unreachable (put /podway/create-fence/xx): connect ECONNREFUSED');
      return ++rev;
    },
  };
  return o;
}

test('counts go to the store and to the thread total of its name; an unwritten fence is said once per fence key, naming the key, the fence and what it means', async () => {
  const said: string[] = [];
  reportUnwrittenFences((m) => said.push(m));
  try {
    const a = newFenceCounters();
    const b = newFenceCounters(); // a second store of the same endpoints (podway run opens one per registration)
    assert.is(await fencedCreate('/calico/x/one', ops({ copy: false, fail: false }), a, STORE), 101);
    assert.equal(a, { written: 0, moved: 0, unwritten: 0 }, 'no copy left: nothing written');
    await fencedCreate('/calico/x/one', ops({ copy: true, fail: false }), a, STORE);
    await fencedCreate('/calico/x/two', ops({ copy: false, fail: false, moved: 2 }), b, STORE);
    assert.equal(a, { written: 1, moved: 0, unwritten: 0 });
    assert.equal(b, { written: 0, moved: 2, unwritten: 0 });
    assert.equal(said, []);

    const failing = ops({ copy: true, fail: true });
    assert.is(await fencedCreate('/calico/x/three', failing, b, STORE), 101, 'the create\'s answer stands');
    assert.is(failing.fenceWrites, 1);
    // the same fence key again (the same key hashes to it): counted, not said again
    await fencedCreate('/calico/x/three', ops({ copy: true, fail: true }), a, STORE);
    assert.equal(b, { written: 0, moved: 2, unwritten: 1 });
    assert.equal(a, { written: 1, moved: 0, unwritten: 1 });
    assert.is(said.length, 1, said.join('\n'));
    const fence = fenceKeyOf('/calico/x/three');
    assert.ok(said[0].startsWith(`${STORE}: the create of /calico/x/three `), said[0]);
    assert.ok(said[0].includes(`its fence ${fence} was not written (its write failed: etcd http://127.0.0.1:1 unreachable`), said[0]);
    assert.match(said[0], /created again/);
    assert.match(said[0], /docs\/datastores\.md/);
    assert.match(said[0], /unwritten/);

    const total = fenceTotals().find((t) => t.store === STORE);
    assert.equal(total, { store: STORE, written: 1, moved: 2, unwritten: 2 }, 'the thread total sums both stores');
    // a store's total may be the counters a store counts into itself: then it is counted once
    const own = threadFenceCounters(`${STORE}-own`);
    await fencedCreate('/calico/x/four', ops({ copy: true, fail: false }), own, `${STORE}-own`);
    assert.equal(fenceTotals().find((t) => t.store === `${STORE}-own`), { store: `${STORE}-own`, written: 1, moved: 0, unwritten: 0 });
  } finally {
    reportUnwrittenFences(null);
  }
});

test('a fence written at or below the revision seen (the store\'s revisions went back) is unwritten too, and said so', async () => {
  const said: string[] = [];
  reportUnwrittenFences((m) => said.push(m));
  try {
    const c = newFenceCounters();
    const o = ops({ copy: true, fail: false });
    o.writeFence = async () => 5; // a store restored from an older snapshot under the client
    await fencedCreate('/calico/y/back', o, c, `${STORE}-back`);
    assert.equal(c, { written: 0, moved: 0, unwritten: 1 });
    assert.is(said.length, 1);
    assert.match(said[0], /written at revision 5, not above 100: the store's revisions went back/);
  } finally {
    reportUnwrittenFences(null);
  }
});

test.run();
