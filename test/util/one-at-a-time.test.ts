// Tasks queued one at a time (src/util/one-at-a-time.ts): what `podway run` puts its Node
// registrations through, so two tunnel-address reconciles never run at once.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { oneAtATime } from '../../src/util/one-at-a-time';

test('a task starts only once the one queued before it settled, in order; each gets its own outcome', async () => {
  const serial = oneAtATime();
  const events: string[] = [];
  let running = 0;
  let most = 0;
  const gates: Array<() => void> = [];
  const task = (name: string, fail: boolean) => async () => {
    running++;
    most = Math.max(most, running);
    events.push(`start ${name}`);
    await new Promise<void>((r) => gates.push(r));
    running--;
    events.push(`end ${name}`);
    if (fail) throw new Error(`${name} failed`);
    return name;
  };
  const a = serial(task('a', true));
  const b = serial(task('b', false));
  const c = serial(task('c', false));
  // only a has started; b and c wait however long a takes
  for (let i = 0; i < 5; i++) await new Promise((r) => setImmediate(r));
  assert.equal(events, ['start a']);
  // each gate opened once its task has started (bounded: three tasks)
  for (let k = 0; k < 3; k++) {
    for (let i = 0; i < 100 && gates.length === 0; i++) await new Promise((r) => setImmediate(r));
    gates.shift()!();
  }
  const outcomes = await Promise.allSettled([a, b, c]);
  assert.is(outcomes[0].status, 'rejected');
  assert.is((outcomes[0] as PromiseRejectedResult).reason.message, 'a failed');
  assert.equal(outcomes.slice(1).map((o) => (o as PromiseFulfilledResult<string>).value), ['b', 'c']);
  assert.equal(events, ['start a', 'end a', 'start b', 'end b', 'start c', 'end c']);
  assert.is(most, 1);
});

test('a task queued after the others settled starts at once', async () => {
  const serial = oneAtATime();
  await serial(async () => { throw new Error('x'); }).catch(() => undefined);
  assert.is(await serial(async () => 7), 7);
});

test.run();
