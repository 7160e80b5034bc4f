// The benchmarks' shared statistics (bench/stats.ts): every table's median and percentile.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { median, percentile } from '../../bench/stats';

test('median: the middle of an odd count, the mean of the two middle values of an even one, NaN for none; input untouched', () => {
  const xs = [9, 1, 5];
  assert.is(median(xs), 5);
  assert.equal(xs, [9, 1, 5]);
  assert.is(median([4, 1, 3, 2]), 2.5);
  assert.ok(Number.isNaN(median([])));
});

test('percentile: nearest rank (the smallest sample with p% at or below it), NaN for none', () => {
  const xs = Array.from({ length: 100 }, (_, i) => 100 - i); // 100..1, unsorted
  assert.is(percentile(xs, 50), 50);
  assert.is(percentile(xs, 99), 99);
  assert.is(percentile(xs, 100), 100);
  assert.is(percentile([7], 99.9), 7);
  assert.is(percentile([1, 2, 3], 1), 1);
  assert.ok(Number.isNaN(percentile([], 50)));
});

test.run();
