#!/usr/bin/env node
'use strict';
// Runs every compiled test file (dist/test/**/*.test.js) with uvu and ends with the plain line
// "N passed, N failed" that CI reads. uvu prints its own totals; we add them up across files so a
// file that crashes before reporting still counts as a failure.
const { spawnSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');

const root = path.resolve(__dirname, '..', 'dist', 'test');
const filter = process.argv[2] ? new RegExp(process.argv[2]) : null;
function walk(dir) {
  const out = [];
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) out.push(...walk(p));
    else if (e.name.endsWith('.test.js')) out.push(p);
  }
  return out.sort();
}
if (!fs.existsSync(root)) {
  console.error('no compiled tests in dist/test: run `npm run build` first');
  console.log('0 passed, 1 failed');
  process.exit(1);
}
let passed = 0;
let failed = 0;
const failedFiles = [];
for (const file of walk(root)) {
  const rel = path.relative(root, file);
  if (filter && !filter.test(rel)) continue;
  const t0 = Date.now();
  const r = spawnSync(process.execPath, [file], { encoding: 'utf8', timeout: 300_000, env: { ...process.env, FORCE_COLOR: '0' } });
  const out = (r.stdout || '') + (r.stderr || '');
  const total = /Total:\s+(\d+)/.exec(out);
  const ok = /Passed:\s+(\d+)/.exec(out);
  let p = ok ? Number(ok[1]) : 0;
  let f = total ? Number(total[1]) - p : 0;
  const skipped = /Skipped:\s+(\d+)/.exec(out);
  if (skipped) f -= Number(skipped[1]);
  if (r.status !== 0 && f === 0) f = 1; // crashed or timed out before uvu could report
  passed += p;
  failed += f;
  const secs = ((Date.now() - t0) / 1000).toFixed(1);
  console.log(`${f ? 'FAIL' : 'ok  '} ${rel} (${p} passed, ${f} failed, ${secs}s)`);
  if (f) {
    failedFiles.push(rel);
    process.stdout.write(out.split('\n').map((l) => '    ' + l).join('\n') + '\n');
    if (r.error) console.log('    ' + r.error.message);
  }
}
if (failedFiles.length) console.log('failed files: ' + failedFiles.join(', '));
console.log(`${passed} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);
