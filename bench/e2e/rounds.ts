/**
 * Round aggregation for the e2e benchmark (run.ts --rounds N): a row's setups are measured
 * interleaved N times (kernel, podway, [compare], kernel, podway, ...), and the row reports the
 * median of each setup's figure over the rounds that counted, the median of the per-round ratios
 * (each round's podway figure over that same round's baseline) and their spread (min-max).
 *
 * Why: on a shared 2-vCPU VM the kernel baseline moved 74k-166k pps between runs minutes apart, so
 * a ratio from one sample per side flipped its verdict from run to run. A ratio taken within a
 * round compares two measurements seconds apart; the median of N of them, with the spread beside
 * it, says how far one figure can be trusted.
 *
 * A round counts when both of its figures were measured (no error) and are finite, and the
 * baseline's is above 0 (a ratio over 0 is no figure). A row where no round counted is an error
 * (NoRoundCounted), never a ratio of 0.
 */
import { median as medianOf } from '../stats';

/** The middle value, or the mean of the two middle ones for an even count (bench/stats.ts). Throws on none. */
export function median(xs: readonly number[]): number {
  if (xs.length === 0) throw new Error('median of no values');
  return medianOf(xs);
}

/** The median of the values that are numbers (null/undefined: not measured), or null if none are. */
export function medianOrNull(xs: readonly (number | null | undefined)[]): number | null {
  const v = xs.filter((x): x is number => typeof x === 'number' && Number.isFinite(x));
  return v.length ? median(v) : null;
}

/** One round of a row: podway's and the baseline's figure, null when that measurement failed
 * (its reason in error). */
export interface RoundInput {
  podway: number | null;
  baseline: number | null;
  error?: string;
}

export interface RoundRatio {
  podway: number | null;
  baseline: number | null;
  /** podway / baseline of this round; null when the round did not count */
  ratio: number | null;
  counted: boolean;
  /** why the round did not count */
  why?: string;
}

export interface RatioSummary {
  /** rounds run, and those that counted */
  rounds: number;
  counted: number;
  /** medians of each side's figure over the counted rounds */
  podway: number;
  baseline: number;
  /** median, minimum and maximum of the counted rounds' ratios */
  ratio: number;
  ratioMin: number;
  ratioMax: number;
  perRound: RoundRatio[];
}

/** A row none of whose rounds counted: the reasons, round by round. */
export class NoRoundCounted extends Error {}

function roundRatio(r: RoundInput): RoundRatio {
  const { podway, baseline } = r;
  const bad = (x: number | null) => x === null || !Number.isFinite(x);
  let why: string | undefined;
  if (r.error) why = r.error;
  else if (bad(podway) || bad(baseline)) why = `not measured (podway ${podway}, baseline ${baseline})`;
  else if (baseline! <= 0) why = 'baseline delivered 0';
  if (why !== undefined) return { podway, baseline, ratio: null, counted: false, why };
  return { podway, baseline, ratio: podway! / baseline!, counted: true };
}

/** Summarises a row's rounds (module comment). Throws NoRoundCounted when none counted. */
export function summariseRounds(rounds: readonly RoundInput[]): RatioSummary {
  const perRound = rounds.map(roundRatio);
  const ok = perRound.filter((r) => r.counted);
  if (ok.length === 0) {
    const reasons = perRound.map((r, i) => `round ${i + 1}: ${r.why}`).join('; ');
    throw new NoRoundCounted(`no round counted of ${rounds.length}${reasons ? `: ${reasons}` : ''}`);
  }
  const ratios = ok.map((r) => r.ratio!);
  return {
    rounds: rounds.length,
    counted: ok.length,
    podway: median(ok.map((r) => r.podway!)),
    baseline: median(ok.map((r) => r.baseline!)),
    ratio: median(ratios),
    ratioMin: Math.min(...ratios),
    ratioMax: Math.max(...ratios),
    perRound,
  };
}

/** How many rounds a figure is from: "3 rounds", "1 round", "2 of 3 rounds". */
export function roundsText(counted: number, run: number): string {
  return counted === run ? `${run} round${run === 1 ? '' : 's'}` : `${counted} of ${run} rounds`;
}

/** A ratio cell: "2.1x (1.4-2.5, 3 rounds)"; one counted round has no spread: "2.1x (1 round)". */
export function ratioText(s: { ratio: number; ratioMin: number; ratioMax: number; counted: number; rounds: number }, digits = 2): string {
  const f = (x: number) => String(+x.toFixed(digits));
  const spread = s.counted > 1 ? `${f(s.ratioMin)}-${f(s.ratioMax)}, ` : '';
  return `${f(s.ratio)}x (${spread}${roundsText(s.counted, s.rounds)})`;
}
