// LogLimiter: the first line per key is logged, the rest within the interval counted, the next
// line carries the count; with a summary, a flood leaves one line per interval and its count.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { LogLimiter } from '../../src/util/log-limiter';

test('first line per key logged, the rest of the interval counted and told on the next line', () => {
  let now = 1_000;
  const l = new LogLimiter<string>({ intervalMs: 10_000, now: () => now });
  assert.is(l.admit('a'), 0, 'first: logged');
  for (let i = 0; i < 999; i++) assert.is(l.admit('a'), -1);
  assert.is(l.admit('b'), 0, 'another key has its own interval');
  now += 10_000;
  assert.is(l.admit('a'), 999, 'after the interval: logged, with the count not logged');
  assert.is(l.admit('a'), -1);
  now += 10_000;
  assert.is(l.admit('a'), 1);
  now += 10_000;
  assert.is(l.admit('a'), 0, 'a quiet interval: nothing to tell');
});

test('summary: a flood leaves one line per interval, every frame logged or counted; keys are bounded', () => {
  let now = 0;
  const summaries: [string, number][] = [];
  const l = new LogLimiter<string>({ intervalMs: 10_000, maxKeys: 2, now: () => now, summary: (k, n) => summaries.push([k, n]) });
  try {
    let logged = 0;
    let told = 0;
    // 1,000 per second for 25 s, the summaries due looked at every 300 ms
    for (let t = 0; t < 25_000; t++) {
      now = t;
      const n = l.admit('a');
      if (n >= 0) {
        logged++;
        told += n;
      }
      if (t % 300 === 299) l.flush();
    }
    now = 100_000;
    l.flush();
    told += summaries.reduce((s, [, n]) => s + n, 0);
    const lines = logged + summaries.length;
    assert.ok(lines >= 3 && lines <= 4, `one line per interval and the tail: ${logged} logged, summaries ${JSON.stringify(summaries)}`);
    assert.is(told + logged, 25_000, 'every frame logged or counted in a line');
    // bounded keys: the oldest is forgotten, its next line logged as a first one
    assert.is(l.admit('b'), 0);
    assert.is(l.admit('c'), 0);
    assert.is(l.admit('a'), 0, 'a was forgotten');
  } finally {
    l.stop();
  }
});

test('summary timer: fires on its own after the interval, not after stop', async () => {
  const summaries: number[] = [];
  const l = new LogLimiter<string>({ intervalMs: 50, summary: (_k, n) => summaries.push(n) });
  assert.is(l.admit('a'), 0);
  assert.is(l.admit('a'), -1);
  assert.is(l.admit('a'), -1);
  const until = Date.now() + 20_000;
  while (summaries.length === 0 && Date.now() < until) await new Promise((r) => setTimeout(r, 20));
  assert.equal(summaries, [2]);
  assert.is(l.admit('a'), -1, 'the summary counts as the key\'s line');
  l.stop();
  await new Promise((r) => setTimeout(r, 150));
  assert.equal(summaries, [2], 'nothing after stop');
});

test.run();
