// natOutgoing's table in /metrics (no root): the collector takes the table's counters as nft -j
// prints them (parsed by nft-counters.ts, as `podway counters` does; read through the one cache,
// whose age and sharing nft-counters.test.ts checks against the kernel), keeps the last figures
// when a read fails, and the text is read back by a Prometheus text-format parser.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { PodwayMetrics } from '../../src/observe/metrics';
import { NatCollector } from '../../src/observe/nat-metrics';
import { natCountersOf, NatCounters } from '../../src/dataplane/nft-nat';
import { parseNftCounters } from '../../src/dataplane/nft-counters';
import { parseMetrics, valueOf, family } from './prom-text';
import { readFileSync, readdirSync } from 'node:fs';
import * as path from 'node:path';

/** The metric names the documentation (README.md and docs/*.md) names in backquotes, `a_{x,y}_b` patterns expanded. */
function readmeMetricNames(): Set<string> {
  const root = path.resolve(__dirname, '..', '..', '..');
  const files = ['README.md', ...readdirSync(path.join(root, 'docs')).filter((f) => f.endsWith('.md')).sort().map((f) => path.join('docs', f))];
  const text = files.map((f) => readFileSync(path.join(root, f), 'utf8')).join('\n');
  const expand = (t: string): string[] => {
    const m = /\{([^{}]*)\}/.exec(t);
    if (!m) return [t];
    return m[1].split(',').flatMap((alt) => expand(t.slice(0, m.index) + alt + t.slice(m.index + m[0].length)));
  };
  return new Set([...text.matchAll(/`(podway_[a-z0-9_{},]+)`/g)].flatMap((x) => expand(x[1])));
}

/** The NAT figures of `nft -j list counters table ip podway` output with these values. */
const parseCounters = (json: string): NatCounters => natCountersOf(parseNftCounters(json).get('ip podway')!);

/** `nft -j list counters table ip podway` output with these values. */
function nftJson(v: { flows: number; out: [number, number]; back: [number, number]; refused: number; icmp: number }): string {
  const c = (name: string, packets: number, bytes = 0) => ({ counter: { family: 'ip', name, table: 'podway', handle: 1, packets, bytes } });
  return JSON.stringify({ nftables: [{ metainfo: { json_schema_version: 1 } }, c('nat_flows', v.flows), c('nat_out', ...v.out), c('nat_in', ...v.back), c('nat_refused', v.refused), c('icmp_unmatched', v.icmp), c('pod_transit', 9)] });
}

test('NAT table figures: flows, packets and bytes each way, refusals at --nat-max-flows, unmatched ICMP, the bound; a failed read keeps them', async () => {
  let table: NatCounters | null = parseCounters(nftJson({ flows: 40, out: [120, 9000], back: [110, 8000], refused: 3, icmp: 2 }));
  let reads = 0;
  const metrics = new PodwayMetrics({ processMetrics: false });
  metrics.add(new NatCollector({ counters: async () => (reads++, table), maxFlows: () => (table ? 40 : null) }));
  const m = parseMetrics(await metrics.scrape());
  assert.is(reads, 1);
  const expect: [string, number][] = [
    ['podway_nat_flows_total', 40], ['podway_nat_out_packets_total', 120], ['podway_nat_out_bytes_total', 9000],
    ['podway_nat_in_packets_total', 110], ['podway_nat_in_bytes_total', 8000], ['podway_nat_refused_flows_total', 3],
    ['podway_nat_icmp_unmatched_total', 2],
  ];
  for (const [name, v] of expect) {
    assert.is(family(m, name).type, 'COUNTER', name);
    assert.ok(family(m, name).help.length > 20, `${name} has HELP text`);
    assert.is(valueOf(m, name), v, name);
  }
  assert.is(family(m, 'podway_nat_max_flows').type, 'GAUGE');
  assert.is(valueOf(m, 'podway_nat_max_flows'), 40);

  // each scrape asks the source (the cache decides whether nft runs), two at once ask once
  table = parseCounters(nftJson({ flows: 41, out: [130, 9500], back: [111, 8100], refused: 5, icmp: 2 }));
  const [m2] = (await Promise.all([metrics.scrape(), metrics.scrape()])).map(parseMetrics);
  assert.is(reads, 2, 'one refresh for two scrapes at once');
  assert.is(valueOf(m2, 'podway_nat_refused_flows_total'), 5);
  assert.is(valueOf(m2, 'podway_nat_flows_total'), 41);

  // A read that fails keeps the last figures (a counter falling to 0 would be a reset).
  table = null;
  const m3 = parseMetrics(await metrics.scrape());
  assert.is(valueOf(m3, 'podway_nat_refused_flows_total'), 5);
  assert.is(valueOf(m3, 'podway_nat_max_flows'), 0, 'no table: no bound');
});

test('the IPv6 table beside: podway_nat6_* series of its own, the IPv4 series unchanged', async () => {
  const metrics = new PodwayMetrics({ processMetrics: false });
  metrics.add(new NatCollector({ counters: async () => parseCounters(nftJson({ flows: 4, out: [12, 900], back: [11, 800], refused: 0, icmp: 1 })), maxFlows: () => 40 }));
  metrics.add(new NatCollector({ counters: async () => parseCounters(nftJson({ flows: 7, out: [20, 2000], back: [19, 1900], refused: 2, icmp: 0 })), maxFlows: () => 40 }, true));
  const m = parseMetrics(await metrics.scrape());
  assert.is(valueOf(m, 'podway_nat_flows_total'), 4);
  assert.is(valueOf(m, 'podway_nat6_flows_total'), 7);
  assert.is(valueOf(m, 'podway_nat6_out_bytes_total'), 2000);
  assert.is(valueOf(m, 'podway_nat6_refused_flows_total'), 2);
  assert.is(valueOf(m, 'podway_nat6_max_flows'), 40);
  assert.match(family(m, 'podway_nat6_in_packets_total').help, /^IPv6: /);
  assert.is(family(m, 'podway_nat6_refused_flows_total').help, 'IPv6: New natOutgoing flows refused (dropped) because --nat-max-flows flows were already in use.');
  assert.not.match(family(m, 'podway_nat_in_packets_total').help, /IPv6/);
});

test('the docs (README.md, docs/*.md) list every series of both tables (podway_nat_* and podway_nat6_*)', async () => {
  const metrics = new PodwayMetrics({ processMetrics: false });
  metrics.add(new NatCollector({ counters: async () => null, maxFlows: () => null }));
  metrics.add(new NatCollector({ counters: async () => null, maxFlows: () => null }, true));
  const names = [...parseMetrics(await metrics.scrape()).keys()].filter((n) => n.startsWith('podway_nat'));
  assert.is(names.length, 16, names.join(' '));
  const listed = readmeMetricNames();
  const missing = names.filter((n) => !listed.has(n));
  assert.equal(missing, [], `README.md and docs/*.md do not name ${missing.join(', ')}`);
});

test('no table ever read (nft missing): the series read 0', async () => {
  const metrics = new PodwayMetrics({ processMetrics: false });
  metrics.add(new NatCollector({ counters: async () => null, maxFlows: () => null }));
  const m = parseMetrics(await metrics.scrape());
  assert.is(valueOf(m, 'podway_nat_flows_total'), 0);
  assert.is(valueOf(m, 'podway_nat_refused_flows_total'), 0);
});

test.run();
