// `podway top`'s frame (src/cli/top.ts renderTop): rates from two samples; the header of a live
// view says how to quit, the one frame of --once (or a pipe) does not.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { renderTop, type CounterSample } from '../../src/cli/top';

const prev: CounterSample = { at: 1_000_000, ports: [{ port: 'cali1 [w0]', rx: 100, tx: 50, drops: 0 }, { port: 'cali1 [w1]', rx: 0, tx: 0, drops: 0 }], reasons: { no_route: 2 } };
const cur: CounterSample = { at: 1_001_200, ports: [{ port: 'cali1 [w0]', rx: 400, tx: 170, drops: 0 }, { port: 'cali1 [w1]', rx: 200, tx: 0, drops: 0 }], reasons: { no_route: 8 } };

test('live: "every 1.2s (q to quit)"; one frame (--once, a pipe): "rates over 1.2s", no q', () => {
  const live = renderTop('n1', prev, cur).split('\n')[0]!;
  assert.match(live, /^podway top - node n1 - \d\d:\d\d:\d\d UTC - every 1\.2s \(q to quit\)$/);
  const once = renderTop('n1', prev, cur, 10, false);
  assert.match(once.split('\n')[0]!, /^podway top - node n1 - \d\d:\d\d:\d\d UTC - rates over 1\.2s$/);
  assert.not.ok(once.includes('q to quit'), once);
  // the workers' rows of a port summed: (400 + 200 - 100) / 1.2 s
  assert.match(once, /^cali1\s+417\s/m);
});

test.run();
