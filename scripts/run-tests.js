#!/usr/bin/env node
'use strict';
// Runs every compiled test file (dist/test/**/*.test.js) with uvu and ends with the plain line
// "N passed, N failed" (followed by ", N skipped" only when tests were skipped) that CI reads.
// uvu prints its own totals per file; we add them up across files so a file that crashes before
// reporting still counts as a failure.
//
// uvu 0.5 prints "Total" (tests that ran, skipped ones NOT included), "Passed" and "Skipped"
// (test.skip plus tests left out by test.only), so a file's failures are Total - Passed.
//
// Usage: node scripts/run-tests.js [regex]   (regex filters files by path relative to the root)
// PODWAY_TEST_ROOT=dir runs the *.test.js files under dir instead of dist/test (the runner's own
// self-test uses it).
const { spawnSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');
const { HOOK_ERROR_MARK } = require('./uvu-hook-errors');

const root = process.env.PODWAY_TEST_ROOT
  ? path.resolve(process.env.PODWAY_TEST_ROOT)
  : path.resolve(__dirname, '..', 'dist', 'test');
const filter = process.argv[2] ? new RegExp(process.argv[2]) : null;
// A bound on a hung file, not on a slow one: the longest e2e files take 200 s on a loaded 2-CPU
// host (a podway start alone took 20 s there), and a timed-out file fails as a whole.
const FILE_TIMEOUT_MS = 600_000;
// Wraps uvu's hook registration so a throwing before/after hook is printed (uvu drops it).
const hookReporter = path.join(__dirname, 'uvu-hook-errors.js');
const isRoot = !process.getuid || process.getuid() === 0;

function walk(dir) {
  const out = [];
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) out.push(...walk(p));
    else if (e.name.endsWith('.test.js')) out.push(p);
  }
  return out.sort();
}

/** The last uvu summary number called `label` in a file's output, or null if it never reported. */
function summary(out, label) {
  const all = [...out.matchAll(new RegExp(`^\\s*${label}:\\s+(\\d+)`, 'gm'))];
  return all.length ? Number(all[all.length - 1][1]) : null;
}

if (!fs.existsSync(root)) {
  console.error(`no compiled tests in ${path.relative(process.cwd(), root) || root}: run \`npm run build\` first`);
  console.log('0 passed, 1 failed');
  process.exit(1);
}
let passed = 0;
let failed = 0;
let skipped = 0;
const failedFiles = [];
const rootFiles = []; // failed files whose output says they need root (only counted when not root)
for (const file of walk(root)) {
  const rel = path.relative(root, file);
  if (filter && !filter.test(rel)) continue;
  const t0 = Date.now();
  const r = spawnSync(process.execPath, ['-r', hookReporter, file], {
    encoding: 'utf8',
    timeout: FILE_TIMEOUT_MS,
    env: { ...process.env, FORCE_COLOR: '0' },
  });
  const out = (r.stdout || '') + (r.stderr || '');
  const total = summary(out, 'Total');
  const p = summary(out, 'Passed') ?? 0;
  const s = summary(out, 'Skipped') ?? 0;
  let f = total === null ? 0 : Math.max(0, total - p);
  const hookError = out.includes(HOOK_ERROR_MARK);
  // Crashed, timed out or hook failed without uvu counting a failure: still a failure.
  if ((r.status !== 0 || hookError || total === null) && f === 0) f = 1;
  passed += p;
  failed += f;
  skipped += s;
  const secs = ((Date.now() - t0) / 1000).toFixed(1);
  console.log(`${f ? 'FAIL' : 'ok  '} ${rel} (${p} passed, ${f} failed${s ? `, ${s} skipped` : ''}, ${secs}s)`);
  if (f || r.status !== 0) {
    if (f) failedFiles.push(rel);
    process.stdout.write(out.split('\n').map((l) => '    ' + l).join('\n') + '\n');
    if (r.error) console.log('    ' + r.error.message);
    else if (r.status === null) console.log(`    killed by ${r.signal}`);
    else if (r.status !== 0) console.log(`    exit status ${r.status}`);
    if (!isRoot && f && /needs? root/i.test(out)) rootFiles.push(rel);
  }
}
if (failedFiles.length) console.log('failed files: ' + failedFiles.join(', '));
if (rootFiles.length) {
  const n = rootFiles.length;
  console.log(`note: not root: ${n} ${n === 1 ? 'file needs' : 'files need'} root (network namespaces) and failed for that reason: ${rootFiles.join(', ')}`);
}
console.log(`${passed} passed, ${failed} failed${skipped ? `, ${skipped} skipped` : ''}`);
process.exit(failed ? 1 : 0);
