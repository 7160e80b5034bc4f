/**
 * Prometheus text parsed by a kept parser (parse-prometheus-text-format, prom2json's output
 * shape), and lookups on the result for the tests.
 */
// The package ships no types: its output shape is prom2json's.
// eslint-disable-next-line @typescript-eslint/no-require-imports
const parseText = require('parse-prometheus-text-format') as (text: string) => Family[];

export interface Sample { value?: string; labels?: Record<string, string>; buckets?: Record<string, string>; count?: string; sum?: string }
export interface Family { name: string; help: string; type: string; metrics: Sample[] }

export function parseMetrics(text: string): Map<string, Family> {
  return new Map(parseText(text).map((f) => [f.name, f]));
}

/** The family `name`, or a failure naming what is there. */
export function family(m: Map<string, Family>, name: string): Family {
  const f = m.get(name);
  if (!f) throw new Error(`no metric ${name} in the scrape (have: ${[...m.keys()].filter((k) => /^(podway|felix)_/.test(k)).join(', ')})`);
  return f;
}

/** The value of the one sample of `name` whose labels include `labels`. */
export function valueOf(m: Map<string, Family>, name: string, labels: Record<string, string> = {}): number {
  const f = family(m, name);
  const hits = f.metrics.filter((s) => Object.entries(labels).every(([k, v]) => s.labels?.[k] === v));
  if (hits.length !== 1) throw new Error(`${name}${JSON.stringify(labels)}: ${hits.length} samples match (of ${JSON.stringify(f.metrics.map((s) => s.labels))})`);
  return Number(hits[0].value ?? hits[0].count);
}
