// The doubling retry delay the control plane, the dataplane and the CLI share (src/util/backoff.ts).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Backoff } from '../../src/util/backoff';

const take = (b: Backoff, n: number) => Array.from({ length: n }, () => b.next());

test('first, then doubling up to max, where it stays', () => {
  const b = new Backoff({ first: 1000, max: 30_000 });
  assert.is(b.attempts, 0);
  assert.equal(take(b, 8), [1000, 2000, 4000, 8000, 16_000, 30_000, 30_000, 30_000]);
  assert.is(b.attempts, 8);
});

test('reset starts again from first', () => {
  const b = new Backoff({ first: 200, max: 400 });
  assert.equal(take(b, 3), [200, 400, 400]);
  b.reset();
  assert.is(b.attempts, 0);
  assert.equal(take(b, 2), [200, 400]);
});

test('a first above max waits max; a first of 0 retries at once every time', () => {
  assert.equal(take(new Backoff({ first: 5000, max: 3000 }), 3), [3000, 3000, 3000]);
  const zero = new Backoff({ first: 0, max: 1000 });
  assert.equal(take(zero, 3), [0, 0, 0]);
  assert.is(zero.attempts, 3, 'still counts what it handed out');
});

test('stays finite and at max after very many failures (no 2^n overflow)', () => {
  const b = new Backoff({ first: 1, max: 60_000 });
  let last = 0;
  for (let i = 0; i < 5000; i++) last = b.next();
  assert.is(last, 60_000);
  assert.ok(Number.isFinite(last));
});

test.run();
