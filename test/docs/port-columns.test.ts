// Every column of `podway counters`' port table (the keys Engine.counters() gives each port) has its
// row in docs/observability.md, "Port columns of `podway counters`", and the table names no column
// that no longer exists. The keys are read from the engine's source: most appear only when their
// count is not 0, so a running engine would not show them all.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { readFileSync } from 'node:fs';
import * as path from 'node:path';
import { tableUnder } from './tables';

const ROOT = path.resolve(__dirname, '..', '..', '..');
const DOC = 'docs/observability.md';
const HEADING = 'Port columns of `podway counters`';

/** The object literal Engine.counters() pushes per port, and the keys written in it. */
function engineKeys(): Set<string> {
  const src = readFileSync(path.join(ROOT, 'src/dataplane/engine.ts'), 'utf8');
  const start = src.indexOf('ports.push({', src.indexOf('  counters() {'));
  assert.ok(start > 0, 'src/dataplane/engine.ts: counters() with its ports.push({ ... }) not found');
  const end = src.indexOf('\n      });', start);
  assert.ok(end > start, 'src/dataplane/engine.ts: the end of counters()\'s ports.push({ ... }) not found');
  const keys = new Set<string>();
  for (const m of src.slice(start + 'ports.push('.length, end).matchAll(/[{,]\s*([a-zA-Z]+):/g)) keys.add(m[1]);
  return keys;
}

function documented(): Set<string> {
  const names = new Set<string>();
  tableUnder(readFileSync(path.join(ROOT, DOC), 'utf8'), HEADING).forEach((cells, k) => {
    const found = [...cells[0].matchAll(/`([a-zA-Z]+)`/g)].map((m) => m[1]);
    assert.ok(found.length > 0, `${DOC}, "${HEADING}", row ${k + 1}: no \`column\` in its first cell: ${cells[0]}`);
    for (const n of found) names.add(n);
  });
  return names;
}

test('every port column of podway counters is documented, and no documented one is gone', () => {
  const keys = engineKeys();
  assert.ok(keys.has('port') && keys.has('kernelDrops') && keys.has('txQueued'), `keys read from the engine: ${[...keys].join(', ')}`);
  const docs = documented();
  const missing = [...keys].filter((k) => !docs.has(k));
  const gone = [...docs].filter((k) => !keys.has(k));
  assert.equal(missing, [], `${DOC}, "${HEADING}": no row for ${missing.join(', ')} (a column Engine.counters() gives)`);
  assert.equal(gone, [], `${DOC}, "${HEADING}": rows for ${gone.join(', ')}, which Engine.counters() no longer gives`);
});

test.run();
