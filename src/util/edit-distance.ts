/**
 * The edit distance of two short words (a YAML key, a command-line word) for "did you mean":
 * Levenshtein's, or with `transpositions` the optimal string alignment distance (two adjacent
 * letters swapped count 1). Anything above `max` is max + 1, and words whose lengths differ by
 * more than `max` are not compared at all.
 */
export function editDistance(a: string, b: string, max: number, transpositions = false): number {
  if (Math.abs(a.length - b.length) > max) return max + 1;
  const d: number[][] = Array.from({ length: a.length + 1 }, (_, i) => Array.from({ length: b.length + 1 }, (_, j) => (i === 0 ? j : j === 0 ? i : 0)));
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      d[i]![j] = Math.min(d[i - 1]![j]! + 1, d[i]![j - 1]! + 1, d[i - 1]![j - 1]! + cost);
      if (transpositions && i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) d[i]![j] = Math.min(d[i]![j]!, d[i - 2]![j - 2]! + 1);
    }
  }
  return Math.min(d[a.length]![b.length]!, max + 1);
}
