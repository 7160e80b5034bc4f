/**
 * A forwarding worker that does not answer the main thread in time: counters say which worker's
 * part is missing (and label the others' ports with their own index), and the warning about it
 * comes at most once per interval per kind of question.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import type { Engine } from '../../src/dataplane/engine';
import { mergeCounters } from '../../src/dataplane/control-server';
import { MissingWorkerLog, missingWorkers, withLastKnown } from '../../src/cli/worker-answers';

type Counters = ReturnType<Engine['counters']>;

function counters(drops: number, port: string): Counters {
  return {
    reasons: { no_route: drops },
    ports: [{ port, rx: drops }],
    routes: [{ cidr: '10.244.0.0/26', packets: drops }],
    failures: { tunnelTable: 0 },
  } as unknown as Counters;
}

test('mergeCounters: a worker that did not answer is named, left out of the sums, the others keep their index', () => {
  const m = mergeCounters(counters(1, 'caliA'), [null, counters(10, 'caliB'), counters(100, 'caliC')]);
  assert.equal(m.missingWorkers, [1]);
  assert.is(m.reasons.no_route, 111);
  assert.equal(m.ports.map((p) => p.port), ['caliA [w0]', 'caliB [w2]', 'caliC [w3]']);
  assert.is(m.routes[0]!.packets, 111);
  const all = mergeCounters(counters(1, 'caliA'), [counters(10, 'caliB')]);
  assert.is(all.missingWorkers, undefined, 'every worker answered: nothing named');
  assert.is(all.reasons.no_route, 11);
});

test('withLastKnown: a late worker\'s last answer stands in for it, named late; one never known stays missing', () => {
  const last = [counters(7, 'caliB'), null, counters(70, 'caliD')];
  const { answers, late } = withLastKnown([null, null, counters(100, 'caliD')], last);
  assert.equal(late, [1], 'worker 1 late with a last answer; worker 2 never answered: left out');
  assert.is(answers[1], null);
  const m = mergeCounters(counters(1, 'caliA'), answers);
  assert.equal(m.lateWorkers, [1]);
  assert.equal(m.missingWorkers, [2]);
  assert.is(m.reasons.no_route, 108, 'the late one\'s last counts are in the sum, the answer over its last known');
  assert.equal(m.ports.map((p) => p.port), ['caliA [w0]', 'caliB [w1]', 'caliD [w3]']);
  assert.is((last[0] as { late?: true }).late, undefined, 'the kept answer itself is not marked');
});

test('missingWorkers: the 1-based index of each null answer', () => {
  assert.equal(missingWorkers([{}, null, {}, null]), [2, 4]);
  assert.equal(missingWorkers([]), []);
});

test('MissingWorkerLog: one warning per interval per question, the ones in between counted into the next', () => {
  let now = 1_000_000;
  const lines: string[] = [];
  const w = new MissingWorkerLog((m) => lines.push(m), 2000, 60_000, () => now);
  w.note('counters', []);
  assert.equal(lines, [], 'nothing missing: nothing said');
  w.note('counters', [2]);
  assert.equal(lines, ['worker 2 did not answer within 2 s: left out of the counters']);
  now += 15_000;
  w.note('counters', [2]);
  w.note('counters', [1, 2]);
  w.note('metrics', [1, 2]);
  assert.is(lines.length, 2, lines.join('\n'));
  assert.is(lines[1], 'workers 1, 2 did not answer within 2 s: left out of the metrics');
  now += 60_000;
  w.note('counters', [2]);
  assert.is(lines[2], 'worker 2 did not answer within 2 s: left out of the counters (and 2 more times since the last warning)');
  now += 60_000;
  w.note('metrics', [3], [1]);
  assert.is(lines[3], 'workers 1, 3 did not answer within 2 s: worker 1 counted in the metrics by its last answer; worker 3 (never answered yet) left out');
  now += 60_000;
  w.note('metrics', [], [1, 2]);
  assert.is(lines[4], 'workers 1, 2 did not answer within 2 s: counted in the metrics by their last answer');
});

test.run();
