/** The forwarding threads' death policy (src/cli/worker-deaths.ts): backoff, the window, giving up. */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { WorkerDeaths } from '../../src/cli/worker-deaths';

test('waits double per death in the window, capped; the fifth within it gives up', () => {
  const d = new WorkerDeaths({ max: 5, windowMs: 60_000 }, { first: 200, max: 1000 });
  const t = 1_000_000;
  const waits = [0, 1, 2, 3].map((k) => {
    const v = d.died(1, 'boom', t + k * 1000);
    assert.is(v.action, 'restart');
    assert.match(d.downReason(1) ?? '', /^worker 1 died \(boom\); a new one at /);
    d.restarted(1);
    assert.is(d.downReason(1), null);
    return v.action === 'restart' ? v.waitMs : -1;
  });
  assert.equal(waits, [200, 400, 800, 1000]);
  assert.is(d.restarts, 4);
  const last = d.died(2, 'oom', t + 5000);
  assert.is(last.action, 'give-up');
  assert.match(last.action === 'give-up' ? last.message : '', /forwarding threads died 5 times within 60 s \(the last: worker 2: oom\): giving up, exiting 1/);
  assert.match(d.downReason(2) ?? '', /giving up$/);
  assert.equal(d.status(3, t + 5000).down, [{ worker: 2, restartAt: null }]);
});

test('deaths older than the window are forgotten: the wait starts again, no give-up', () => {
  const d = new WorkerDeaths({ max: 3, windowMs: 10_000 });
  let t = 0;
  for (let k = 0; k < 10; k++) {
    const v = d.died(1, 'x', t);
    assert.is(v.action, 'restart', `death ${k}`);
    assert.is(v.action === 'restart' ? v.waitMs : 0, 200);
    d.restarted(1);
    t += 10_001;
  }
  assert.is(d.status(2, t).deathsInWindow, 0);
  assert.is(d.status(2, t - 10_001).lastDeath?.worker, 1);
});

test.run();
