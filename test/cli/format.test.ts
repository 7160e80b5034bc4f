// The CLI's plain-text tables (podway counters, routes, ...): a column only some rows have (a pod
// port's txRejected or txBacklog, which the engine adds only when non-zero) still shows.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { table } from '../../src/cli/format';

test('columns are every row\'s keys in first-seen order, not only the first row\'s', () => {
  const out = table([
    { port: 'underlay(eth0)', rx: 10, tx: 9 },
    { port: 'cali1', rx: 3, tx: 2, txRejected: 1 },
  ]);
  const [head, first, second] = out.trimEnd().split('\n');
  assert.equal(head.split(/\s+/), ['PORT', 'RX', 'TX', 'TXREJECTED']);
  assert.equal(first.split(/\s+/), ['underlay(eth0)', '10', '9']);
  assert.equal(second.split(/\s+/), ['cali1', '3', '2', '1']);
});

test('explicit columns are kept as given; no rows is (none)', () => {
  assert.is(table([{ a: 1, b: 2 }], ['b']), 'B\n2\n');
  assert.is(table([]), '(none)\n');
});

test.run();
