#!/usr/bin/env node
'use strict';
// Rebuilds scripts/test-durations.json (what scripts/run-tests.js orders its files by and tells the
// files that mostly wait with) from the output of a whole run, e.g. a fresh CI machine's log:
//
//   node scripts/durations-from-log.js CI.log            # or: ... | node scripts/durations-from-log.js -
//
// Each "ok   REL (N passed, 0 failed, WALLs, cpu CPUs)" line gives REL's wall and CPU seconds;
// files that failed in it keep what the durations file said (a failure's time says little), and
// entries whose test no longer exists (test/REL.ts, nor the .js beside it) are dropped. Prefer a
// quiet CI machine's run over a local one on a shared host, whose walls are inflated unevenly.
// `--out FILE` writes FILE instead (the runner reads another one with PODWAY_TEST_DURATIONS).
const fs = require('node:fs');
const path = require('node:path');

const ROOT = path.resolve(__dirname, '..');
const args = process.argv.slice(2);
let out = path.join(__dirname, 'test-durations.json');
let input = null;
for (let i = 0; i < args.length; i++) {
  if (args[i] === '--out' && i + 1 < args.length) out = path.resolve(args[++i]);
  else if (input === null && (args[i] === '-' || !args[i].startsWith('-'))) input = args[i];
  else {
    console.error(`unexpected argument ${JSON.stringify(args[i])}\nusage: node scripts/durations-from-log.js [--out FILE] LOG|-`);
    process.exit(2);
  }
}
if (input === null) {
  console.error('usage: node scripts/durations-from-log.js [--out FILE] LOG|-   (LOG: the output of scripts/run-tests.js)');
  process.exit(2);
}

const text = fs.readFileSync(input === '-' ? 0 : input, 'utf8');
const LINE = /^(ok {2}|FAIL) (\S+\.test\.js) \(.*, ([0-9.]+)s, cpu ([0-9.]+|\?)s\)$/;
const seen = {};
let passed = 0;
let failed = 0;
for (const line of text.split('\n')) {
  const m = LINE.exec(line);
  if (!m) continue;
  if (m[1] === 'FAIL') {
    failed++;
    continue;
  }
  passed++;
  seen[m[2]] = { wall: Number(m[3]), cpu: m[4] === '?' ? null : Number(m[4]) };
}
if (passed === 0) {
  console.error(`${input === '-' ? 'stdin' : input}: no "ok   FILE (..., WALLs, cpu CPUs)" lines of scripts/run-tests.js`);
  process.exit(1);
}

let old = {};
try {
  old = JSON.parse(fs.readFileSync(out, 'utf8'));
} catch {
  /* none yet */
}
const exists = (rel) => [path.join(ROOT, 'test', rel.replace(/\.js$/, '.ts')), path.join(ROOT, 'test', rel)].some((f) => fs.existsSync(f));
const all = {};
let kept = 0;
let dropped = 0;
for (const [rel, v] of Object.entries(old)) {
  if (rel in seen) continue;
  if (!exists(rel)) {
    dropped++;
    continue;
  }
  all[rel] = typeof v === 'number' ? { wall: v, cpu: null } : { wall: v.wall, cpu: v.cpu ?? null };
  kept++;
}
Object.assign(all, seen);
const lines = Object.keys(all).sort().map((k) => ` ${JSON.stringify(k)}: ${JSON.stringify(all[k].cpu === null ? { wall: all[k].wall } : all[k])}`);
fs.writeFileSync(out, `{\n${lines.join(',\n')}\n}\n`);
console.log(`${path.relative(process.cwd(), out) || out}: ${passed} files from the log${failed ? ` (${failed} failed there: kept as they were)` : ''}, ${kept} kept${dropped ? `, ${dropped} dropped (no such test any more)` : ''}`);
