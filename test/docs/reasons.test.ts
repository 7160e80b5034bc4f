// Every drop and event reason podway counts (src/dataplane/counters.ts, COUNTER_NAMES: the
// validation reasons of src/packet/drop.ts, then the engine's) has its row in docs/observability.md,
// "Drop and event reasons", with its index and whether it is a drop or an event as /metrics
// exports it (podway_dropped_packets_total{reason} or podway_events_total{event}); the table names
// no reason that no longer exists. A reason added to counters.ts fails here until its row is
// written: the message says which, and what the row looks like.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { readFileSync } from 'node:fs';
import * as path from 'node:path';
import { COUNTER_COUNT, COUNTER_NAMES, Event, Event6 } from '../../src/dataplane/counters';
import { tableUnder } from './tables';

const ROOT = path.resolve(__dirname, '..', '..', '..');
const DOC = 'docs/observability.md';
const HEADING = 'Drop and event reasons';
const EVENTS = new Set<number>([...Object.values(Event), ...Object.values(Event6)]);

interface Row { name: string; index: number; kind: string; meaning: string; equivalent: string }

function rows(): Row[] {
  return tableUnder(readFileSync(path.join(ROOT, DOC), 'utf8'), HEADING).map((cells, k) => {
    assert.is(cells.length, 5, `${DOC}, "${HEADING}", row ${k + 1}: five cells (Reason | # | Counted as | What it means, when | Calico / kernel equivalent): ${cells.join(' | ')}`);
    const name = /^`([a-z0-9_]+)`$/.exec(cells[0]);
    assert.ok(name, `${DOC}, "${HEADING}", row ${k + 1}: the reason as \`name\`: ${cells[0]}`);
    return { name: name[1], index: Number(cells[1]), kind: cells[2], meaning: cells[3], equivalent: cells[4] };
  });
}

test('the table lists every counter of counters.ts, with its index and kind, and nothing else', () => {
  const table = rows();
  const want = Array.from({ length: COUNTER_COUNT }, (_, r) => r).filter((r) => r > 0); // 0 is `ok`
  const byName = new Map(table.map((r) => [r.name, r]));
  const problems: string[] = [];
  for (const r of want) {
    const name = COUNTER_NAMES[r];
    if (!name) {
      problems.push(`counters.ts: index ${r} has no name (a hole in the numbering, below COUNTER_COUNT)`);
      continue;
    }
    const kind = EVENTS.has(r) ? 'event' : 'drop';
    const row = byName.get(name);
    if (!row) problems.push(`missing: ${name} (index ${r}); add to ${DOC}, "${HEADING}": | \`${name}\` | ${r} | ${kind} | what it means, when | Calico / kernel equivalent |`);
    else {
      if (row.index !== r) problems.push(`${name}: the table says index ${row.index}, counters.ts ${r}`);
      if (row.kind !== kind) problems.push(`${name}: the table says ${row.kind}, counted as ${kind}`);
      if (row.meaning.length < 10 || row.equivalent.length < 2) problems.push(`${name}: its meaning and its equivalent are to be written`);
    }
  }
  const known = new Set(COUNTER_NAMES.slice(1));
  for (const row of table) if (!known.has(row.name)) problems.push(`stale: ${row.name} is in ${DOC}, "${HEADING}" but not in counters.ts (renamed or removed?)`);
  const seen = new Set<string>();
  for (const row of table) {
    if (seen.has(row.name)) problems.push(`${row.name}: two rows`);
    seen.add(row.name);
  }
  assert.equal(problems, []);
  assert.equal(table.map((r) => r.index), [...table.map((r) => r.index)].sort((a, b) => a - b), 'rows in index order (the order of `podway counters`)');
});

test('tableUnder reads the table of a heading only, and a changed table fails the check', () => {
  const md = '# T\n## A\ntext\n\n| x | y |\n|---|---|\n| `a` | 1 |\n| `b` | 2 |\n\n## B\n| `c` | 3 |\n';
  assert.equal(tableUnder(md, 'A'), [['`a`', '1'], ['`b`', '2']]);
  assert.throws(() => tableUnder(md, 'C'), /no heading "C"/);
  // a reason's row taken away from the real document is reported missing
  const text = readFileSync(path.join(ROOT, DOC), 'utf8').replace(/^\| `no_route` \|.*\n/m, '');
  assert.not.ok(tableUnder(text, HEADING).some((c) => c[0] === '`no_route`'));
  assert.ok(rows().some((r) => r.name === 'no_route'));
});

test.run();
