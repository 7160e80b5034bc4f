// The e2e benchmark's round aggregation (bench/e2e/rounds.ts): a row's figures are medians over
// the rounds that counted, its ratio the median of the per-round ratios (each round's podway over
// that round's baseline, not the medians' quotient), with their spread; a row where no round
// counted is an error, never a ratio of 0.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { median, medianOrNull, NoRoundCounted, ratioText, roundsText, summariseRounds } from '../../bench/e2e/rounds';

test('median: the middle value for an odd count, the mean of the two middle ones for an even count', () => {
  assert.is(median([3]), 3);
  assert.is(median([5, 1, 3]), 3);
  assert.is(median([4, 1, 3, 2]), 2.5);
  assert.is(median([10, 2]), 6);
  // numbers, not strings: 10 sorts after 9
  assert.is(median([9, 10, 100]), 10);
  assert.throws(() => median([]), /no values/);
  assert.is(medianOrNull([null, 4, undefined, 2, 6]), 4);
  assert.is(medianOrNull([null, NaN]), null);
});

test('three rounds: medians of each side, the ratio is the median of the per-round ratios, with min-max', () => {
  // the kernel moved 74k-166k between rounds: per-round ratios 2.0, 1.0, 1.5
  const s = summariseRounds([
    { podway: 200_000, baseline: 100_000 },
    { podway: 166_000, baseline: 166_000 },
    { podway: 111_000, baseline: 74_000 },
  ]);
  assert.is(s.rounds, 3);
  assert.is(s.counted, 3);
  assert.is(s.podway, 166_000);
  assert.is(s.baseline, 100_000);
  assert.is(s.ratio, 1.5);
  assert.is(s.ratioMin, 1);
  assert.is(s.ratioMax, 2);
  // not the quotient of the medians (1.66)
  assert.is.not(s.ratio, s.podway / s.baseline);
  assert.equal(s.perRound.map((r) => r.ratio), [2, 1, 1.5]);
  assert.ok(s.perRound.every((r) => r.counted && r.why === undefined));
  assert.is(ratioText(s), '1.5x (1-2, 3 rounds)');
});

test('an even number of rounds: the mean of the two middle values, for the sides and the ratio', () => {
  const s = summariseRounds([
    { podway: 100, baseline: 100 },
    { podway: 300, baseline: 100 },
    { podway: 200, baseline: 100 },
    { podway: 400, baseline: 100 },
  ]);
  assert.is(s.counted, 4);
  assert.is(s.podway, 250);
  assert.is(s.baseline, 100);
  assert.is(s.ratio, 2.5);
  assert.is(ratioText(s), '2.5x (1-4, 4 rounds)');
});

test('a failed round does not count, and the row says how many did', () => {
  const s = summariseRounds([
    { podway: 300, baseline: 100 },
    { podway: null, baseline: 100, error: 'podway: pktgen sink printed no result' },
    { podway: 100, baseline: 100 },
    // a baseline that delivered nothing gives no ratio (not Infinity, not a 0)
    { podway: 500, baseline: 0 },
  ]);
  assert.is(s.rounds, 4);
  assert.is(s.counted, 2);
  assert.is(s.ratio, 2);
  assert.is(s.podway, 200);
  assert.equal(s.perRound.map((r) => r.counted), [true, false, true, false]);
  assert.is(s.perRound[1].ratio, null);
  assert.match(s.perRound[1].why!, /pktgen sink printed no result/);
  assert.is(s.perRound[3].why, 'baseline delivered 0');
  assert.is(ratioText(s), '2x (1-3, 2 of 4 rounds)');
  // a podway that delivered nothing against a baseline that did is a measured 0: it counts
  const zero = summariseRounds([{ podway: 0, baseline: 100 }]);
  assert.is(zero.counted, 1);
  assert.is(zero.ratio, 0);
  assert.is(ratioText(zero), '0x (1 round)');
  const one = summariseRounds([{ podway: null, baseline: 90, error: 'x' }, { podway: 212, baseline: 100 }, { podway: 5, baseline: NaN }]);
  assert.is(one.counted, 1);
  assert.is(ratioText(one), '2.12x (1 of 3 rounds)');
});

test('a row where no round counted is an error naming each round, not a ratio of 0', () => {
  const e = (() => {
    try {
      summariseRounds([
        { podway: null, baseline: 100, error: 'podway: did not start' },
        { podway: 100, baseline: 0 },
        { podway: 100, baseline: null, error: 'baseline: no udp server on port 9001' },
      ]);
    } catch (err) {
      return err;
    }
    return null;
  })();
  assert.ok(e instanceof NoRoundCounted, String(e));
  assert.match((e as Error).message, /^no round counted of 3: round 1: podway: did not start; round 2: baseline delivered 0; round 3: baseline: no udp server/);
  assert.throws(() => summariseRounds([]), (x: unknown) => x instanceof NoRoundCounted && /no round counted of 0/.test((x as Error).message));
});

test('rounds text: all, one, some', () => {
  assert.is(roundsText(3, 3), '3 rounds');
  assert.is(roundsText(1, 1), '1 round');
  assert.is(roundsText(2, 3), '2 of 3 rounds');
  assert.is(ratioText({ ratio: 2.104, ratioMin: 1.4, ratioMax: 2.5, counted: 3, rounds: 3 }), '2.1x (1.4-2.5, 3 rounds)');
});

test.run();
