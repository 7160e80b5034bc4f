#!/usr/bin/env node
'use strict';
// Runs every compiled test file (dist/test/**/*.test.js) with uvu and ends with the plain line
// "N passed, N failed" that CI reads (skipped tests, if any, are counted on the line before).
// uvu prints its own totals per file; we add them up across files so a file that crashes before
// reporting still counts as a failure.
//
// uvu 0.5 prints "Total" (tests that ran, skipped ones NOT included), "Passed" and "Skipped"
// (test.skip plus tests left out by test.only), so a file's failures are Total - Passed.
//
// Usage: node scripts/run-tests.js [--jobs N] [--waiting N] [--save-durations] [--list] [regex]
//   regex             filters files by path relative to the root
//   --jobs N, -j N    how many files run at once (default PODWAY_TEST_JOBS, else DEFAULT_JOBS: 2);
//                     1 runs them one after the other, in path order
//   --waiting N       how many files that mostly wait may run beside the N of --jobs (default
//                     PODWAY_TEST_WAITING, else DEFAULT_WAITING: 1; 0: none; not with --jobs 1)
//   --save-durations  writes the wall and CPU seconds of each file that passed into DURATIONS_FILE
//   --list            prints the files in the order they would start, with their declarations
//                     and the bound on each one's run (FILE_TIMEOUT_*)
// PODWAY_TEST_ROOT=dir runs the *.test.js files under dir instead of dist/test, and
// PODWAY_TEST_FILE_TIMEOUT_S=N bounds each file at N seconds (instead of its own bound: below), and
// PODWAY_TEST_DURATIONS=file reads (and --save-durations writes) that file instead of
// DURATIONS_FILE, and PODWAY_TEST_SOURCES=dir is the source tree of PODWAY_TEST_ROOT's files (the
// runner's own self-test uses them).
//
// A compiled file whose source is gone (dist/test/REL.js with neither test/REL.ts nor test/REL.js:
// a test renamed or removed since the last clean build; tsc does not delete its old output) is
// not run, and the files so skipped are named once; only when the source tree is there (the repo's
// test/, or PODWAY_TEST_SOURCES; none by default with PODWAY_TEST_ROOT).
//
// Files run concurrently must not get in each other's way. A test file declares what it shares
// with others in a line comment among the comments at its top, before any code (read from its
// TypeScript source):
//   // test-resources: podman, cni-cache   files naming a common resource never overlap
//   // test-exclusive                      the file runs alone (before the others start)
// Longest first (expected times from DURATIONS_FILE), so the last files to finish are short ones.
// A file that mostly waits (expected CPU at most WAITING_CPU_SHARE of its expected wall, and at
// least WAITING_MIN_WALL_S long: etcd failovers, BGP timers) may run beside the --jobs files, in
// one of --waiting more places: it barely uses the CPUs the others need, and its wait no longer
// holds one of the --jobs places (scripts/durations-from-log.js, docs/architecture.md "Tests").
// Each file's line is printed when it ends (wall and CPU seconds); a failing file's output follows
// its line as one block. CPU is user+system of the file's process and of every process it waited
// for (its children: podway, etcd, BIRD, ...), as the shell's `times` reports them.
const { spawn } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { HOOK_ERROR_MARK } = require('./uvu-hook-errors');

const root = process.env.PODWAY_TEST_ROOT
  ? path.resolve(process.env.PODWAY_TEST_ROOT)
  : path.resolve(__dirname, '..', 'dist', 'test');
// The tests' sources, for telling a compiled file whose source is gone (stale); null: not known.
const sources = process.env.PODWAY_TEST_SOURCES
  ? path.resolve(process.env.PODWAY_TEST_SOURCES)
  : process.env.PODWAY_TEST_ROOT ? null : path.resolve(__dirname, '..', 'test');
// Two at once: on the 2-vCPU CI kind of machine the suite takes about as many CPU seconds
// (1,230-1,512 s) as its files take wall seconds one after the other on a quiet one (1,361-1,473 s),
// so 2 at once can at best halve the wall time and a third mostly adds contention. The whole suite
// passed at 2 beside a host loaded 10-24 by others but for two waits that load broke (fixed), and
// its known load-sensitive files were fixed first (docs/architecture.md, "Tests"); `--jobs 1` runs one by one.
// A third at once, measured on six files that mostly wait (e2e/cluster-etcd, e2e/hitless, e2e/nat,
// control/kv-etcd, bgp/bird, cli/trace-exit: 77 CPU s in ~186-228 wall s), back to back on the
// shared 2-vCPU host at load 8-10 from others: 86.3 s wall at 3, 98.3 s at 2 (-12%), every file
// passing, each file's own wall 23% longer (185.6 -> 227.6 s summed). One pair of runs of a
// waiting-heavy subset on a loaded host, not the suite on a CI machine (whose CPU-bound files,
// control/ipam/processes, the cni and e2e starts, gain nothing from a third): not enough to move CI,
// which stays at 2; what would decide it is the whole suite at 3 on a quiet CI-kind machine beside
// its 1,364 s at 2.
const DEFAULT_JOBS = 2;
// One more place, for the files that mostly wait. In the fresh CI run of 41c25af (2 at once, 1,342 s
// wall, 1,828 CPU s of the 2,684 two CPUs give in that time), 19 files of at least 3 s spent at most
// a quarter of their wall on a CPU: 363 s of wall for 37 CPU s (control/kv-etcd-cut 51 s for 2.4,
// bgp/session-restart 35 s for 0.5, control/kv-etcd-failover 61 s for 8.6, ...), each holding one
// of the two places meanwhile.
const DEFAULT_WAITING = 1;
const WAITING_CPU_SHARE = 0.25;
const WAITING_MIN_WALL_S = 3;
// Expected seconds per file (relative path -> { wall, cpu }; a plain number is a wall time with no
// CPU known), for longest-first and for telling the files that mostly wait; refreshed with
// --save-durations or from a whole run's output with scripts/durations-from-log.js. Files missing
// from it count as NEW_FILE_SECONDS of wall (CPU unknown: never a waiting file).
const DURATIONS_FILE = process.env.PODWAY_TEST_DURATIONS ? path.resolve(process.env.PODWAY_TEST_DURATIONS) : path.join(__dirname, 'test-durations.json');
const NEW_FILE_SECONDS = 10;
// A bound on a hung file, not on a slow one: the longest e2e files take 200 s on a loaded 2-CPU
// host (a podway start alone took 20 s there), and a timed-out file fails as a whole. A file with
// an expected time is bounded at FILE_TIMEOUT_FACTOR times it, FILE_TIMEOUT_MIN_MS at least and
// FILE_TIMEOUT_MAX_MS at most; one without (new), at FILE_TIMEOUT_MAX_MS. In the expected times'
// history (the last 12 versions of scripts/test-durations.json: quiet and loaded CI runs) the
// longest run of every file stays under 42% of the bound this gives it now (cli/run-start-checks:
// 250 s once, bound 594 s; no other over 103 s). So a file that hangs (a wait on something that
// never comes) fails in 5 minutes instead of 10, naming the test that ran (uvu-hook-errors.js),
// while the others go on in the other places.
const FILE_TIMEOUT_MAX_MS = 600_000;
const FILE_TIMEOUT_MIN_MS = 300_000;
const FILE_TIMEOUT_FACTOR = 6;
// PODWAY_TEST_FILE_TIMEOUT_S: one bound for every file (null: each file its own).
const FILE_TIMEOUT_MS = fileTimeoutMs(process.env.PODWAY_TEST_FILE_TIMEOUT_S);
// After a timeout's SIGTERM, how long the file has to clean up (stop podway, delete its
// namespaces, remove podman's containers: seconds each on a loaded host) before SIGKILL.
const TERM_GRACE_MS = 30_000;
// Wraps uvu's hook registration so a throwing before/after hook is printed (uvu drops it).
const hookReporter = path.join(__dirname, 'uvu-hook-errors.js');
const isRoot = !process.getuid || process.getuid() === 0;

function usage(msg) {
  console.error(`${msg}\nusage: node scripts/run-tests.js [--jobs N] [--waiting N] [--save-durations] [--list] [regex]`);
  console.log('0 passed, 1 failed');
  process.exit(2);
}

function fileTimeoutMs(text) {
  if (!text) return null;
  if (!/^[0-9]+(\.[0-9]+)?$/.test(text) || Number(text) <= 0) usage(`PODWAY_TEST_FILE_TIMEOUT_S: expected seconds (more than 0), got ${JSON.stringify(text)}`);
  return Number(text) * 1000;
}

function parseJobs(text, from) {
  if (!/^[1-9][0-9]*$/.test(String(text))) usage(`${from}: expected a whole number of files at once (1 or more), got ${JSON.stringify(text)}`);
  return Number(text);
}

function parseWaiting(text, from) {
  if (!/^[0-9]+$/.test(String(text))) usage(`${from}: expected a whole number of files that mostly wait (0 or more), got ${JSON.stringify(text)}`);
  return Number(text);
}

let jobs = process.env.PODWAY_TEST_JOBS ? parseJobs(process.env.PODWAY_TEST_JOBS, 'PODWAY_TEST_JOBS') : DEFAULT_JOBS;
let waiting = process.env.PODWAY_TEST_WAITING ? parseWaiting(process.env.PODWAY_TEST_WAITING, 'PODWAY_TEST_WAITING') : DEFAULT_WAITING;
let saveDurations = false;
let listOnly = false;
let filter = null;
{
  const args = process.argv.slice(2);
  for (let i = 0; i < args.length; i++) {
    const a = args[i];
    if (a === '--jobs' || a === '-j') {
      if (i + 1 >= args.length) usage(`${a}: missing the number of files at once`);
      jobs = parseJobs(args[++i], a);
    } else if (a.startsWith('--jobs=')) jobs = parseJobs(a.slice(7), '--jobs');
    else if (a === '--waiting') {
      if (i + 1 >= args.length) usage(`${a}: missing the number of files that mostly wait`);
      waiting = parseWaiting(args[++i], a);
    } else if (a.startsWith('--waiting=')) waiting = parseWaiting(a.slice(10), '--waiting');
    else if (a === '--save-durations') saveDurations = true;
    else if (a === '--list') listOnly = true;
    else if (a.startsWith('-') && a.length > 1) usage(`unknown option ${a}`);
    else if (filter) usage(`one filter only (got ${JSON.stringify(filter.source)} and ${JSON.stringify(a)})`);
    else filter = new RegExp(a);
  }
}

function walk(dir) {
  const out = [];
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) out.push(...walk(p));
    else if (e.name.endsWith('.test.js')) out.push(p);
  }
  return out.sort();
}

/**
 * A compiled file (REL relative to root) whose source is gone: neither sources/REL.ts nor
 * sources/REL.js. Never when the source tree is not there (a copy of dist/ alone runs as it is).
 */
function isStale(rel) {
  if (!sources || !fs.existsSync(sources) || !fs.statSync(sources).isDirectory()) return false;
  const base = path.join(sources, rel.replace(/\.js$/, ''));
  return !fs.existsSync(`${base}.ts`) && !fs.existsSync(`${base}.js`);
}

/**
 * Where a compiled file's declarations are read: its TypeScript source (tsc moves leading comments
 * below its module helpers), test/REL.ts for dist/test/REL.js or a .ts beside the .js; else the
 * file itself (a plain .js test).
 */
function declaringSource(file) {
  const rel = path.relative(root, file);
  const candidates = [file.replace(/\.js$/, '.ts'), file];
  if (!process.env.PODWAY_TEST_ROOT) candidates.unshift(path.join(__dirname, '..', 'test', rel.replace(/\.js$/, '.ts')));
  return candidates.find((f) => fs.existsSync(f));
}

/**
 * What a file declares in its leading comments: `// test-resources: a, b` and `// test-exclusive`.
 * Only the comment block before the first line of code counts (a test may hold such text in a
 * string, as the runner's own self-test does).
 */
function declarations(file) {
  const resources = new Set();
  let exclusive = false;
  let inBlock = false;
  for (const raw of fs.readFileSync(declaringSource(file), 'utf8').split('\n')) {
    const line = raw.trim();
    if (inBlock) {
      if (line.includes('*/')) inBlock = false;
      continue;
    }
    if (line === '' || line === '"use strict";' || line === "'use strict';" || line.startsWith('#!')) continue;
    if (line.startsWith('/*')) {
      inBlock = !line.includes('*/');
      continue;
    }
    if (!line.startsWith('//')) break;
    const m = /^\/\/\s*test-(resources|exclusive)\b:?\s*(.*)$/.exec(line);
    if (!m) continue;
    if (m[1] === 'exclusive') exclusive = true;
    else for (const r of m[2].split(/[\s,]+/)) if (r) resources.add(r);
  }
  return { resources, exclusive };
}

/** The last uvu summary number called `label` in a file's output, or null if it never reported. */
function summary(out, label) {
  const all = [...out.matchAll(new RegExp(`^\\s*${label}:\\s+(\\d+)`, 'gm'))];
  return all.length ? Number(all[all.length - 1][1]) : null;
}

/** DURATIONS_FILE as { rel: { wall, cpu } } (cpu null when not known). */
function readDurations() {
  let raw;
  try {
    raw = JSON.parse(fs.readFileSync(DURATIONS_FILE, 'utf8'));
  } catch {
    return {}; // none yet (or a copy of the runner without it): path order among equals
  }
  const out = {};
  for (const [rel, v] of Object.entries(raw ?? {})) {
    if (typeof v === 'number' && v >= 0) out[rel] = { wall: v, cpu: null };
    else if (v && typeof v.wall === 'number' && v.wall >= 0) out[rel] = { wall: v.wall, cpu: typeof v.cpu === 'number' && v.cpu >= 0 ? v.cpu : null };
  }
  return out;
}

/** Writes durations ({ rel: { wall, cpu } }) sorted by path, one file a line. */
function writeDurations(file, all) {
  const lines = Object.keys(all).sort().map((k) => ` ${JSON.stringify(k)}: ${JSON.stringify(all[k].cpu === null ? { wall: all[k].wall } : all[k])}`);
  fs.writeFileSync(file, `{\n${lines.join(',\n')}\n}\n`);
}

/** The bound on one file's run, from its expected wall seconds (undefined: not known). */
function fileBoundMs(expectedWallS) {
  if (FILE_TIMEOUT_MS !== null) return FILE_TIMEOUT_MS;
  if (expectedWallS === undefined) return FILE_TIMEOUT_MAX_MS;
  return Math.min(FILE_TIMEOUT_MAX_MS, Math.max(FILE_TIMEOUT_MIN_MS, Math.ceil(FILE_TIMEOUT_FACTOR * expectedWallS) * 1000));
}

/** A file expected to spend at most WAITING_CPU_SHARE of its wall on a CPU (and long enough to matter). */
function mostlyWaits(d) {
  return d !== undefined && d.cpu !== null && d.wall >= WAITING_MIN_WALL_S && d.cpu <= WAITING_CPU_SHARE * d.wall;
}

/** Seconds of `times` output ("0m1.790000s 0m0.060000s"): user + system of the waited children. */
function cpuSeconds(timesOut) {
  const lines = timesOut.trim().split('\n');
  const m = lines.length >= 2 ? [...lines[1].matchAll(/(\d+)m([\d.]+)s/g)] : [];
  if (m.length !== 2) return null;
  return m.reduce((s, x) => s + Number(x[1]) * 60 + Number(x[2]), 0);
}

const SIGNAL_NAMES = Object.fromEntries(Object.entries(os.constants.signals).map(([k, v]) => [v, k]));

/**
 * The processes of process group `pgid` (from /proc: the fifth field of each /proc/PID/stat), each
 * with its PID and "NAME (PID: command line)": what a file left running, named in its note, and
 * what a timeout signals; null without /proc. Zombies are left out: a process that has ended but
 * whose parent ended first waits there for init to reap it, which is not at once on every machine
 * (podway's spawner helper, which ends a moment after podway, was seen so for over 300 ms).
 */
function groupMembers(pgid) {
  const out = [];
  let entries = [];
  try {
    entries = fs.readdirSync('/proc');
  } catch {
    return null;
  }
  for (const e of entries) {
    if (!/^\d+$/.test(e)) continue;
    try {
      const stat = fs.readFileSync(`/proc/${e}/stat`, 'utf8');
      const close = stat.lastIndexOf(')');
      const [state, , pgrp] = stat.slice(close + 2).split(' ');
      if (Number(pgrp) !== pgid || state === 'Z' || state === 'X') continue;
      const name = stat.slice(stat.indexOf('(') + 1, close);
      const cmd = fs.readFileSync(`/proc/${e}/cmdline`, 'utf8').split('\0').filter(Boolean).join(' ');
      out.push({ pid: Number(e), text: `${name} (${e}: ${cmd.length > 160 ? cmd.slice(0, 157) + '...' : cmd})` });
    } catch {
      /* gone meanwhile */
    }
  }
  return out;
}

/**
 * Runs one file: `sh` starts node on it and, when it ends, writes `times` (the CPU of node and of
 * all it waited for) on fd 3, which node itself does not get. The shell leads a process group of
 * its own, so a timeout ends everything the file started that is still in that group.
 */
function runFile(file, timeoutMs) {
  return new Promise((resolve) => {
    const script = '"$@" 3>&-; s=$?; times >&3; exit $s';
    const child = spawn('/bin/sh', ['-c', script, 'sh', process.execPath, '-r', hookReporter, file], {
      stdio: ['ignore', 'pipe', 'pipe', 'pipe'],
      env: { ...process.env, FORCE_COLOR: '0' },
      detached: true,
    });
    running.add(child);
    const t0 = process.hrtime.bigint();
    let out = '';
    let times = '';
    let timedOut = false;
    let exited = null;
    let leftovers = null; // what the file left running in its group when it ended
    child.stdout.setEncoding('utf8').on('data', (d) => (out += d));
    child.stderr.setEncoding('utf8').on('data', (d) => (out += d));
    child.stdio[3].setEncoding('utf8').on('data', (d) => (times += d));
    const killGroup = (sig) => {
      try {
        process.kill(-child.pid, sig);
      } catch {
        /* the group is gone */
      }
    };
    // A timeout: SIGTERM to every process of the group but the shell, which waits on for the
    // file's own exit (a SIGTERM to the shell too ended it at once, and its exit then SIGKILLed
    // the group as leftovers while the file was still cleaning up: a lab's namespaces, podman's
    // containers and their namespaces were left behind); SIGKILL to all after TERM_GRACE_MS.
    let graceTimer = null;
    const timer = setTimeout(() => {
      timedOut = true;
      const members = groupMembers(child.pid);
      if (members === null) killGroup('SIGTERM'); // no /proc: the shell too
      for (const p of members ?? []) {
        if (p.pid === child.pid) continue;
        try {
          process.kill(p.pid, 'SIGTERM');
        } catch {
          /* gone */
        }
      }
      graceTimer = setTimeout(() => killGroup('SIGKILL'), TERM_GRACE_MS);
    }, timeoutMs);
    let closeWait = null;
    const finish = () => {
      if (!exited) return;
      clearTimeout(timer);
      clearTimeout(graceTimer); // (what was left at the exit was killed then; the group is gone)
      clearTimeout(closeWait);
      running.delete(child);
      const wallS = Number(process.hrtime.bigint() - t0) / 1e9;
      resolve({ out, wallS, cpuS: cpuSeconds(times), code: exited.code, signal: exited.signal, timedOut, error: exited.error, leftovers });
    };
    child.once('error', (error) => {
      exited = { code: null, signal: null, error };
      finish();
    });
    child.once('exit', (code, signal) => {
      exited = { code, signal };
      // The file has ended: what it started in its group and left running (podway, etcd, BIRD)
      // must not run on beside the next files: the group's members that still run (/proc), or,
      // where /proc cannot say, signal 0 asks whether any member is left (zombies included).
      const members = groupMembers(child.pid);
      if (members === null) {
        try {
          process.kill(-child.pid, 0);
          leftovers = [];
        } catch {
          /* nothing left in the group */
        }
      } else if (members.length) leftovers = members.map((p) => p.text);
      if (leftovers) killGroup('SIGKILL');
      // Output still in the pipes comes before 'close'; a process the file left running that
      // still holds them must not hold the run: 5 s, then what was read is what counts.
      closeWait = setTimeout(() => {
        for (const s of child.stdio) if (s) s.destroy();
        out += '\n(a process this file started still held its output open after it ended)\n';
        finish();
      }, 5000);
    });
    child.once('close', () => finish());
  });
}

const running = new Set();
for (const sig of ['SIGINT', 'SIGTERM']) {
  process.on(sig, () => {
    // The files run in process groups of their own: pass the signal on, as a terminal would.
    for (const c of running) try { process.kill(-c.pid, sig); } catch { /* gone */ }
    process.exit(130);
  });
}

async function main() {
  if (!fs.existsSync(root)) {
    console.error(`no compiled tests in ${path.relative(process.cwd(), root) || root}: run \`npm run build\` first`);
    console.log('0 passed, 1 failed');
    process.exit(1);
  }
  const expected = readDurations();
  const selected = walk(root)
    .map((file) => ({ file, rel: path.relative(root, file) }))
    .filter((f) => !filter || filter.test(f.rel));
  const stale = selected.filter((f) => isStale(f.rel)).map((f) => f.rel);
  if (stale.length) console.log(`skipped ${stale.length} stale compiled test${stale.length === 1 ? '' : 's'} whose .ts is gone: ${stale.join(', ')}`);
  const files = selected
    .filter((f) => !stale.includes(f.rel))
    .map((f) => ({ ...f, ...declarations(f.file), expectS: expected[f.rel]?.wall ?? NEW_FILE_SECONDS, boundMs: fileBoundMs(expected[f.rel]?.wall), waits: jobs > 1 && waiting > 0 && mostlyWaits(expected[f.rel]) }));
  // With one job: path order, as always. With more: longest first (ties by path), exclusive
  // files before all others, each alone.
  if (jobs > 1) files.sort((a, b) => b.expectS - a.expectS || (a.rel < b.rel ? -1 : a.rel > b.rel ? 1 : 0));
  // (a copy either way: the scheduler takes files out of pending, and files is counted at the end)
  const pending = jobs > 1 ? [...files.filter((f) => f.exclusive), ...files.filter((f) => !f.exclusive)] : [...files];
  if (listOnly) {
    for (const f of pending) {
      const decl = [...(f.exclusive ? ['exclusive'] : []), ...(f.waits && !f.exclusive ? ['mostly waits'] : []), ...[...f.resources].map((r) => `resource ${r}`)];
      const cpu = expected[f.rel]?.cpu;
      console.log(`${f.rel} (expected ${f.expectS}s${cpu != null ? `, cpu ${cpu}s` : ''}${decl.length ? `; ${decl.join(', ')}` : ''}; bound ${f.boundMs / 1000}s)`);
    }
    return;
  }
  if (jobs > 1 && files.length > 1) {
    const nEx = files.filter((f) => f.exclusive).length;
    const nWait = files.filter((f) => f.waits && !f.exclusive).length;
    const also = nWait ? `, and up to ${waiting} more of the ${nWait} that mostly wait` : '';
    console.log(`${files.length} files, ${jobs} at once${also}${nEx ? ` (${nEx} exclusive, alone first)` : ''}; --jobs 1 runs them one by one`);
  }

  let passed = 0;
  let failed = 0;
  let skipped = 0;
  let cpuTotal = 0;
  let cpuUnknown = 0;
  let wallSum = 0;
  const failedFiles = [];
  const rootFiles = []; // failed files whose output says they need root (only counted when not root)
  const measured = {};
  const t0 = Date.now();

  const report = (f, r) => {
    const out = r.out;
    const total = summary(out, 'Total');
    const p = summary(out, 'Passed') ?? 0;
    const s = summary(out, 'Skipped') ?? 0;
    let nf = total === null ? 0 : Math.max(0, total - p);
    const hookError = out.includes(HOOK_ERROR_MARK);
    const bad = r.code !== 0 || r.error || r.timedOut;
    // Crashed, timed out or hook failed without uvu counting a failure: still a failure.
    if ((bad || hookError || total === null) && nf === 0) nf = 1;
    passed += p;
    failed += nf;
    skipped += s;
    wallSum += r.wallS;
    if (r.cpuS === null) cpuUnknown++;
    else cpuTotal += r.cpuS;
    if (!nf) measured[f.rel] = { wall: Math.round(r.wallS * 10) / 10, cpu: r.cpuS === null ? null : Math.round(r.cpuS * 10) / 10 };
    const cpu = r.cpuS === null ? '?' : r.cpuS.toFixed(1);
    let text = `${nf ? 'FAIL' : 'ok  '} ${f.rel} (${p} passed, ${nf} failed${s ? `, ${s} skipped` : ''}, ${r.wallS.toFixed(1)}s, cpu ${cpu}s)\n`;
    if (nf || bad) {
      if (nf) failedFiles.push(f.rel);
      text += out.split('\n').map((l) => '    ' + l).join('\n') + '\n';
      if (r.error) text += `    ${r.error.message}\n`;
      else if (r.timedOut) {
        const why = FILE_TIMEOUT_MS !== null ? 'PODWAY_TEST_FILE_TIMEOUT_S' : expected[f.rel] ? `${FILE_TIMEOUT_FACTOR} times its expected ${expected[f.rel].wall} s, ${FILE_TIMEOUT_MIN_MS / 1000}-${FILE_TIMEOUT_MAX_MS / 1000} s` : 'no expected time';
        text += `    timed out after ${f.boundMs / 1000} s (${why}): its processes were sent SIGTERM (SIGKILL to what was left ${TERM_GRACE_MS / 1000} s later)\n`;
      }
      else if (r.signal) text += `    killed by ${r.signal}\n`;
      else if (r.code > 128 && SIGNAL_NAMES[r.code - 128]) text += `    killed by ${SIGNAL_NAMES[r.code - 128]}\n`;
      else if (r.code !== 0) text += `    exit status ${r.code}\n`;
      if (!isRoot && nf && /needs? root/i.test(out)) rootFiles.push(f.rel);
    }
    if (r.leftovers) {
      text += `    note: processes this file started were still running when it ended: killed (SIGKILL to its group)${r.leftovers.length ? ':' : ''}\n`;
      for (const p of r.leftovers) text += `      ${p}\n`;
    }
    process.stdout.write(text); // one write: a file's block is never split by another's
  };

  // The scheduler: start the first pending file (in the order above) that may run now: `jobs`
  // places for any file and `waiting` more for the files that mostly wait, so at most `jobs` +
  // `waiting` files at once, at most `jobs` of them files that do not mostly wait. An exclusive
  // file waits for an empty machine and holds it; a file waits while one sharing a resource with
  // it runs (files behind it may start meanwhile).
  const busy = new Set();
  let exclusiveRunning = false;
  let active = 0;
  let others = 0; // running files that are not waiting ones
  const mayRun = (f) => !f.exclusive && ![...f.resources].some((r) => busy.has(r)) && active < jobs + waiting && (f.waits || others < jobs);
  await new Promise((resolveAll) => {
    const pump = () => {
      while (!exclusiveRunning && pending.length) {
        // exclusive files are all at the front: each waits for the others to end
        const k = pending[0].exclusive ? (active === 0 ? 0 : -1) : pending.findIndex(mayRun);
        if (k < 0) break;
        const [f] = pending.splice(k, 1);
        active++;
        if (!f.waits) others++;
        if (f.exclusive) exclusiveRunning = true;
        for (const r of f.resources) busy.add(r);
        runFile(f.file, f.boundMs).then((r) => {
          active--;
          if (!f.waits) others--;
          if (f.exclusive) exclusiveRunning = false;
          for (const x of f.resources) busy.delete(x);
          report(f, r);
          pump();
        });
      }
      if (active === 0 && pending.length === 0) resolveAll();
    };
    pump();
  });

  const wall = (Date.now() - t0) / 1000;
  if (files.length > 1) {
    console.log(`wall ${wall.toFixed(1)}s for ${files.length} files at ${jobs} at once (their own wall times add up to ${wallSum.toFixed(1)}s); cpu ${cpuTotal.toFixed(1)}s${cpuUnknown ? ` (${cpuUnknown} not measured)` : ''}`);
  }
  if (saveDurations && Object.keys(measured).length) {
    writeDurations(DURATIONS_FILE, { ...readDurations(), ...measured });
    console.log(`durations of ${Object.keys(measured).length} files saved in ${path.relative(process.cwd(), DURATIONS_FILE)}`);
  }
  if (failedFiles.length) console.log('failed files: ' + [...failedFiles].sort().join(', '));
  if (rootFiles.length) {
    const n = rootFiles.length;
    console.log(`note: not root: ${n} ${n === 1 ? 'file needs' : 'files need'} root (network namespaces) and failed for that reason: ${rootFiles.join(', ')}`);
  }
  // The closing line is exactly "N passed, N failed" (CI reads it); skips are said just before.
  if (skipped) console.log(`${skipped} skipped`);
  console.log(`${passed} passed, ${failed} failed`);
  process.exit(failed ? 1 : 0);
}

main();
