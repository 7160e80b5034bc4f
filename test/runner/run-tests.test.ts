// Self-test of scripts/run-tests.js, the runner CI trusts for its "N passed, N failed" line: it is
// pointed (PODWAY_TEST_ROOT) at a temporary directory of small fake compiled test files, each one a
// case the counting must get right: passes, failures, test.skip (uvu's Total leaves skipped tests
// out), a throwing `before` hook (uvu drops its error), a crash before uvu reports, and a test that
// needs root run by a non-root user.
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { openUp } from '../helpers/readable-copy';

/** The repository root, from dist/test/runner where this file runs. */
const ROOT = path.resolve(__dirname, '..', '..', '..');
const RUNNER = path.join(ROOT, 'scripts', 'run-tests.js');
const TAG = Math.random().toString(36).slice(2, 10); // makes the messages we look for unique
const NOBODY = 65534;

const HEADER = `const { test } = require('uvu');\nconst assert = require('uvu/assert');\n`;
const FILES: Record<string, string> = {
  'a/pass.test.js': `${HEADER}
test('one', () => assert.is(1 + 1, 2));
test('two', () => assert.ok(true));
test.run();
`,
  'a/fail.test.js': `${HEADER}
test('passes', () => assert.ok(true));
test('fails', () => assert.is(1, 2, 'plain-failure-${TAG}'));
test.run();
`,
  'b/skip.test.js': `${HEADER}
test('passes', () => assert.ok(true));
test.skip('skipped', () => assert.ok(false));
test.run();
`,
  'b/hook.test.js': `${HEADER}
test.before(() => { throw new Error('before-hook-exploded-${TAG}'); });
test('first', () => assert.ok(true));
test('second', () => assert.ok(true));
test.run();
`,
  'c/crash.test.js': `${HEADER}
test('never reported', () => assert.ok(true));
console.log('about-to-exit-3-${TAG}');
process.exit(3);
`,
};

/**
 * `events`: the lines of events.log, which the files of `noting` write beside the test root;
 * `durations`: the durations file after the run (runOn's `durations` option), parsed.
 */
interface RunResult { status: number | null; out: string; lines: string[]; events: string[]; durations?: unknown }

/**
 * Copies package `name` and, recursively, its dependencies from the repo's node_modules into
 * `into` (flat, as npm laid them out), so a user who cannot read the repo can still load them.
 */
function copyPackage(name: string, into: string, done = new Set<string>()): void {
  if (done.has(name)) return;
  done.add(name);
  const from = path.join(ROOT, 'node_modules', name);
  fs.cpSync(from, path.join(into, name), { recursive: true });
  const deps = JSON.parse(fs.readFileSync(path.join(from, 'package.json'), 'utf8')).dependencies ?? {};
  for (const dep of Object.keys(deps)) copyPackage(dep, into, done);
}

/**
 * Writes `files` into a fresh temp dir, runs the runner on it (PODWAY_TEST_ROOT), removes it.
 * With `uid`, the runner runs as that user; the repo may not be readable to it (a checkout under
 * /root is not), so the runner's two scripts and uvu with its dependencies are copied in first.
 */
function runOn(files: Record<string, string>, opts: { filter?: string; uid?: number; args?: string[]; env?: Record<string, string>; durations?: object; sources?: string[] } = {}): RunResult {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `podway-runner-${TAG}-`));
  try {
    // `sources`: the source files (relative paths, empty) of a source tree the runner is told of
    const sourcesEnv: Record<string, string> = opts.sources ? { PODWAY_TEST_SOURCES: path.join(dir, 'sources') } : {};
    for (const rel of opts.sources ?? []) {
      fs.mkdirSync(path.dirname(path.join(dir, 'sources', rel)), { recursive: true });
      fs.writeFileSync(path.join(dir, 'sources', rel), '');
    }
    // `durations`: the runner reads (and --save-durations writes) this instead of the repo's
    const durationsFile = path.join(dir, 'durations.json');
    const durationsEnv: Record<string, string> = opts.durations ? { PODWAY_TEST_DURATIONS: durationsFile } : {};
    if (opts.durations) fs.writeFileSync(durationsFile, JSON.stringify(opts.durations));
    const tests = path.join(dir, 'tests');
    let runner = RUNNER;
    if (opts.uid === undefined) {
      // The fake files require('uvu') like real ones; they find it through this link.
      fs.symlinkSync(path.join(ROOT, 'node_modules'), path.join(dir, 'node_modules'));
    } else {
      fs.mkdirSync(path.join(dir, 'scripts'));
      for (const f of ['run-tests.js', 'uvu-hook-errors.js']) fs.copyFileSync(path.join(path.dirname(RUNNER), f), path.join(dir, 'scripts', f));
      runner = path.join(dir, 'scripts', 'run-tests.js');
      copyPackage('uvu', path.join(dir, 'node_modules'));
    }
    for (const [rel, text] of Object.entries(files)) {
      fs.mkdirSync(path.dirname(path.join(tests, rel)), { recursive: true });
      fs.writeFileSync(path.join(tests, rel), text);
    }
    if (opts.uid !== undefined) openUp(dir);
    const args = [runner, ...(opts.args ?? []), ...(opts.filter ? [opts.filter] : [])];
    const r = spawnSync(process.execPath, args, {
      cwd: dir,
      encoding: 'utf8',
      timeout: 60_000,
      env: { ...process.env, PODWAY_TEST_ROOT: tests, FORCE_COLOR: '0', PODWAY_TEST_JOBS: '', PODWAY_TEST_WAITING: '', PODWAY_TEST_DURATIONS: '', PODWAY_TEST_SOURCES: '', ...durationsEnv, ...sourcesEnv, ...opts.env },
      ...(opts.uid === undefined ? {} : { uid: opts.uid, gid: opts.uid }),
    });
    if (r.error) throw r.error;
    const out = r.stdout + r.stderr;
    const log = path.join(dir, 'events.log');
    const events = fs.existsSync(log) ? fs.readFileSync(log, 'utf8').trim().split('\n') : [];
    const durations = opts.durations ? JSON.parse(fs.readFileSync(durationsFile, 'utf8')) : undefined;
    return { status: r.status, out, lines: r.stdout.trimEnd().split('\n'), events, durations };
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

/** The runner's per-file line for `rel`. */
function fileLine(res: RunResult, rel: string): string {
  const line = res.lines.find((l) => l.slice(5).startsWith(`${rel} (`));
  assert.ok(line, `no line for ${rel} in:\n${res.out}`);
  return line as string;
}

test('counts passes, failures, skips, a throwing before hook and a crash; shows why each file failed', () => {
  const res = runOn(FILES);
  assert.is(res.status, 1, res.out);
  // 2 + 1 + 1 passed; 1 (fail) + 2 (both tests of the hook file) + 1 (crash) failed; 1 skipped.
  assert.is(res.lines[res.lines.length - 1], '4 passed, 4 failed', res.out);
  assert.is(res.lines[res.lines.length - 2], '1 skipped', res.out);
  assert.match(fileLine(res, 'a/pass.test.js'), /^ok {3}a\/pass\.test\.js \(2 passed, 0 failed, /);
  assert.match(fileLine(res, 'a/fail.test.js'), /^FAIL a\/fail\.test\.js \(1 passed, 1 failed, /);
  assert.match(fileLine(res, 'b/skip.test.js'), /^ok {3}b\/skip\.test\.js \(1 passed, 0 failed, 1 skipped, /);
  assert.match(fileLine(res, 'b/hook.test.js'), /^FAIL b\/hook\.test\.js \(0 passed, 2 failed, /);
  assert.match(fileLine(res, 'c/crash.test.js'), /^FAIL c\/crash\.test\.js \(0 passed, 1 failed, /);
  // The reasons: uvu's failure message, the hook's error (uvu alone would print nothing), the
  // crashing file's own output and its exit status.
  assert.ok(res.out.includes(`plain-failure-${TAG}`), res.out);
  assert.ok(res.out.includes(`uvu hook error (before): Error: before-hook-exploded-${TAG}`), res.out);
  assert.ok(res.out.includes(`about-to-exit-3-${TAG}`), res.out);
  assert.ok(res.out.includes('exit status 3'), res.out);
  assert.ok(res.out.includes('failed files: a/fail.test.js, b/hook.test.js, c/crash.test.js'), res.out);
  assert.not.ok(res.out.includes('note: not root'), 'no root note when no file needs root');
});

test('without skips the closing line is exactly "N passed, N failed"; a filter selects files', () => {
  const ok = runOn(FILES, { filter: '^a/pass' });
  assert.is(ok.status, 0, ok.out);
  assert.is(ok.lines[ok.lines.length - 1], '2 passed, 0 failed', ok.out);
  const bad = runOn(FILES, { filter: '^a/' });
  assert.is(bad.status, 1, bad.out);
  assert.is(bad.lines[bad.lines.length - 1], '3 passed, 1 failed', bad.out);
});

test('a compiled file whose source is gone (a renamed test\'s old output) is skipped and said so once, only when the source tree is there', () => {
  const files = {
    'a/kept.test.js': FILES['a/pass.test.js']!,
    'a/old-name.test.js': `${HEADER}\ntest('stale', () => assert.ok(false, 'stale-file-ran-${TAG}'));\ntest.run();\n`,
    'b/plain.test.js': FILES['b/skip.test.js']!,
    'b/gone-too.test.js': `${HEADER}\ntest('stale', () => assert.ok(false, 'stale-file-ran-${TAG}'));\ntest.run();\n`,
  };
  // a/kept's source is TypeScript, b/plain's a plain .js test: both run
  const res = runOn(files, { sources: ['a/kept.test.ts', 'b/plain.test.js'] });
  assert.is(res.status, 0, res.out);
  assert.is(res.lines[res.lines.length - 1], '3 passed, 0 failed', res.out);
  assert.not.ok(res.out.includes(`stale-file-ran-${TAG}`), res.out);
  const said = res.lines.filter((l) => l.includes('stale compiled test'));
  assert.equal(said, ['skipped 2 stale compiled tests whose .ts is gone: a/old-name.test.js, b/gone-too.test.js'], res.out);
  fileLine(res, 'a/kept.test.js');
  fileLine(res, 'b/plain.test.js');
  // a filter names only the stale files it selects
  const one = runOn(files, { sources: ['a/kept.test.ts', 'b/plain.test.js'], filter: '^a/' });
  assert.is(one.lines[one.lines.length - 1], '2 passed, 0 failed', one.out);
  assert.ok(one.lines.includes('skipped 1 stale compiled test whose .ts is gone: a/old-name.test.js'), one.out);
  // no source tree (none named, or the one named is not there): every compiled file runs
  for (const opts of [{}, { env: { PODWAY_TEST_SOURCES: path.join(os.tmpdir(), `podway-runner-no-sources-${TAG}`) } }]) {
    const all = runOn(files, opts);
    assert.is(all.status, 1, all.out);
    assert.is(all.lines[all.lines.length - 1], '3 passed, 2 failed', all.out);
    assert.ok(all.out.includes(`stale-file-ran-${TAG}`), all.out);
    assert.not.ok(all.out.includes('stale compiled test'), all.out);
  }
});

test('a skipped test no longer hides a failure in the same file', () => {
  const res = runOn({
    'mixed.test.js': `${HEADER}
test('passes', () => assert.ok(true));
test('fails 1', () => assert.ok(false));
test('fails 2', () => assert.ok(false));
test.skip('skipped', () => {});
test.run();
`,
  });
  assert.is(res.lines[res.lines.length - 1], '1 passed, 2 failed', res.out);
  assert.is(res.lines[res.lines.length - 2], '1 skipped', res.out);
});

test('as non-root, files that fail because they need root are named in a note and still count as failed', () => {
  const needsRoot = `${HEADER}
test('makes a namespace', () => {
  if (process.getuid() !== 0) throw new Error('this test needs root (network namespaces)');
});
test.run();
`;
  // Run as nobody when we are root; otherwise we are non-root already.
  const isRoot = process.getuid?.() === 0;
  const res = runOn({ 'netns.test.js': needsRoot, 'plain.test.js': FILES['a/pass.test.js'] }, isRoot ? { uid: NOBODY } : {});
  assert.is(res.status, 1, res.out);
  assert.ok(res.out.includes('note: not root: 1 file needs root (network namespaces) and failed for that reason: netns.test.js'), res.out);
  assert.is(res.lines[res.lines.length - 1], '2 passed, 1 failed', res.out);
});

/**
 * A fake file that notes "start NAME" and "end NAME" in the run's log (events.log beside the test
 * root), `ms` apart; `head` is its leading comment lines (its declarations).
 */
function noting(name: string, head = '', ms = 400): string {
  return `${head}${HEADER}const fs = require('node:fs');
const log = require('node:path').join(process.env.PODWAY_TEST_ROOT, '..', 'events.log');
test('${name}', async () => {
  fs.appendFileSync(log, 'start ${name}\\n');
  await new Promise((r) => setTimeout(r, ${ms}));
  fs.appendFileSync(log, 'end ${name}\\n');
});
test.run();
`;
}

test('--jobs N runs files at once; files naming a common test-resources never overlap; a test-exclusive file runs alone', () => {
  const files = {
    'a/x.test.js': noting('x', '// test-resources: shared-thing\n'),
    'a/y.test.js': noting('y', '// a comment first\n// test-resources: other, shared-thing\n'),
    'b/free1.test.js': noting('free1'),
    'b/free2.test.js': noting('free2'),
    'c/alone.test.js': noting('alone', '/* a block\n comment */\n// test-exclusive\n'),
  };
  const res = runOn(files, { args: ['--jobs', '3'] });
  assert.is(res.status, 0, res.out);
  assert.is(res.lines[res.lines.length - 1], '5 passed, 0 failed', res.out);
  assert.match(res.out, /5 files, 3 at once \(1 exclusive, alone first\)/);
  assert.match(res.out, /wall [\d.]+s for 5 files at 3 at once/);
  const log = res.events;
  const at = (e: string) => log.indexOf(e);
  for (const e of ['start x', 'end x', 'start y', 'end y', 'start free1', 'end free1', 'start free2', 'end free2', 'start alone', 'end alone']) assert.ok(at(e) >= 0, `${e} in ${log.join(', ')}`);
  // exclusive: first, nothing else between its start and end
  assert.is(at('start alone'), 0, log.join(', '));
  assert.is(at('end alone'), 1, log.join(', '));
  // x and y share a resource: one ends before the other starts
  assert.ok(at('end x') < at('start y') || at('end y') < at('start x'), `x and y overlapped: ${log.join(', ')}`);
  // the others did run at once: some file started while another was running
  const overlapped = log.some((e, i) => e.startsWith('start') && log.slice(0, i).filter((x) => x.startsWith('start')).length > log.slice(0, i).filter((x) => x.startsWith('end')).length);
  assert.ok(overlapped, `nothing ran at once: ${log.join(', ')}`);
});

test('--jobs 1 runs one file at a time, in path order; a bad --jobs is refused', () => {
  // a test-exclusive file keeps its place in path order: one at a time, it is alone anyway
  const res = runOn({ 'b/two.test.js': noting('two'), 'a/one.test.js': noting('one'), 'c/three.test.js': noting('three', '// test-exclusive\n') }, { args: ['--jobs', '1'] });
  assert.is(res.status, 0, res.out);
  const log = res.events;
  assert.equal(log, ['start one', 'end one', 'start two', 'end two', 'start three', 'end three']);
  assert.match(res.out, /wall [\d.]+s for 3 files at 1 at once/);
  for (const bad of [['--jobs', '0'], ['--jobs', 'two'], ['--jobs']]) {
    const r = runOn({ 'a/one.test.js': noting('one') }, { args: bad });
    assert.is(r.status, 2, r.out);
    assert.match(r.out, /--jobs/);
    assert.is(r.lines[r.lines.length - 1], '0 passed, 1 failed', r.out);
  }
});

/** How many of `names` ran at once at most, from the start/end events. */
function mostAtOnce(log: string[], names: string[]): number {
  let now = 0;
  let most = 0;
  for (const e of log) {
    const [what, name] = e.split(' ');
    if (!names.includes(name!)) continue;
    now += what === 'start' ? 1 : -1;
    most = Math.max(most, now);
  }
  return most;
}

test('a file that mostly waits (its expected CPU at most a quarter of its wall) runs beside the --jobs files, in --waiting more places; --waiting 0 and --jobs 1 do without', () => {
  // each lasts 3 s: on a loaded host a file's node takes a second to start
  const lasting = (ms: number) => Object.fromEntries(['h/heavy1', 'h/heavy2', 'h/heavy3', 'w/wait', 'w/short', 'w/old'].map((f) => [`${f}.test.js`, noting(path.basename(f), '', ms)]));
  const files = lasting(3000);
  // short: too short to count (under 3 s); old: a plain number (wall only, CPU unknown)
  const durations = { 'h/heavy1.test.js': { wall: 50, cpu: 50 }, 'h/heavy2.test.js': { wall: 40, cpu: 30 }, 'h/heavy3.test.js': { wall: 30, cpu: 20 }, 'w/wait.test.js': { wall: 35, cpu: 2 }, 'w/short.test.js': { wall: 2, cpu: 0 }, 'w/old.test.js': 25 };
  const list = runOn(files, { durations, args: ['--list'] });
  assert.equal(list.lines, [
    'h/heavy1.test.js (expected 50s, cpu 50s; bound 300s)',
    'h/heavy2.test.js (expected 40s, cpu 30s; bound 300s)',
    'w/wait.test.js (expected 35s, cpu 2s; mostly waits; bound 300s)',
    'h/heavy3.test.js (expected 30s, cpu 20s; bound 300s)',
    'w/old.test.js (expected 25s; bound 300s)',
    'w/short.test.js (expected 2s, cpu 0s; bound 300s)',
  ], list.out);
  const heavy = ['heavy1', 'heavy2', 'heavy3', 'short', 'old'];
  const res = runOn(files, { durations, args: ['--jobs', '2'] });
  assert.is(res.status, 0, res.out);
  assert.match(res.out, /6 files, 2 at once, and up to 1 more of the 1 that mostly wait;/);
  // heavy1, heavy2 and wait start at once; heavy3 waits for a place of the two (not for wait's end)
  const at = (e: string) => res.events.indexOf(e);
  assert.ok(Math.max(at('start heavy1'), at('start heavy2'), at('start wait')) < Math.min(at('end heavy1'), at('end heavy2'), at('end wait')), res.events.join(', '));
  assert.ok(at('start heavy3') > Math.min(at('end heavy1'), at('end heavy2')), res.events.join(', '));
  assert.is(mostAtOnce(res.events, heavy), 2, `never more than 2 of the others at once: ${res.events.join(', ')}`);
  assert.is(mostAtOnce(res.events, [...heavy, 'wait']), 3, res.events.join(', '));
  for (const args of [['--jobs', '2', '--waiting', '0'], ['--jobs', '1']]) {
    const r = runOn(lasting(400), { durations, args });
    assert.is(r.status, 0, r.out);
    assert.ok(mostAtOnce(r.events, [...heavy, 'wait']) <= Number(args[1]), `${args.join(' ')}: ${r.events.join(', ')}`);
    assert.not.match(r.out, 'mostly wait');
  }
  const bad = runOn(lasting(0), { durations, args: ['--waiting', 'x'] });
  assert.is(bad.status, 2, bad.out);
  assert.match(bad.out, /--waiting: expected a whole number/);
  // --save-durations keeps both figures of each file that passed
  const saved = runOn({ 'w/wait.test.js': noting('wait') }, { durations, args: ['--save-durations'] });
  const d = (saved.durations as Record<string, { wall: number; cpu: number }>)['w/wait.test.js']!;
  assert.ok(d.wall >= 0.4 && d.wall < 35 && d.cpu > 0 && d.cpu < 35, JSON.stringify(saved.durations));
  assert.equal((saved.durations as Record<string, unknown>)['w/old.test.js'], { wall: 25 }, 'the others kept');
});

test('scripts/durations-from-log.js rebuilds the durations from a run\'s output: what passed from it, a failed file kept as it was, a file no longer there dropped', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `podway-runner-${TAG}-`));
  try {
    const out = path.join(dir, 'durations.json');
    // runner/run-tests.test.js exists (this file); gone/away.test.js does not
    fs.writeFileSync(out, JSON.stringify({ 'runner/run-tests.test.js': 9, 'gone/away.test.js': 3, 'cli/format.test.js': { wall: 1, cpu: 1 } }));
    const log = [
      '3 files, 2 at once; --jobs 1 runs them one by one',
      'ok   e2e/nat.test.js (5 passed, 0 failed, 32.9s, cpu 24.4s)',
      'FAIL runner/run-tests.test.js (1 passed, 1 failed, 15.4s, cpu 7.2s)',
      '    some output (1 passed, 0 failed, 1.0s, cpu 1.0s)',
      'ok   cli/format.test.js (7 passed, 0 failed, 0.2s, cpu ?s)',
      '12 passed, 1 failed',
    ].join('\n');
    const r = spawnSync(process.execPath, [path.join(ROOT, 'scripts', 'durations-from-log.js'), '--out', out, '-'], { input: log, encoding: 'utf8' });
    assert.is(r.status, 0, r.stdout + r.stderr);
    assert.match(r.stdout, '2 files from the log (1 failed there: kept as they were), 1 kept, 1 dropped');
    assert.equal(JSON.parse(fs.readFileSync(out, 'utf8')), { 'cli/format.test.js': { wall: 0.2 }, 'e2e/nat.test.js': { wall: 32.9, cpu: 24.4 }, 'runner/run-tests.test.js': { wall: 9 } });
    const none = spawnSync(process.execPath, [path.join(ROOT, 'scripts', 'durations-from-log.js'), '--out', out, '-'], { input: 'nothing here\n', encoding: 'utf8' });
    assert.is(none.status, 1, none.stdout + none.stderr);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('a process a file left running is killed when the file ends, and said so', () => {
  // the file passes but leaves a sleep in its process group, noting the sleep's PID
  const leaves = `${HEADER}const { spawn } = require('node:child_process');
const log = require('node:path').join(process.env.PODWAY_TEST_ROOT, '..', 'events.log');
test('leaves a process', () => {
  const c = spawn('sleep', ['300'], { stdio: 'ignore' });
  c.unref();
  require('node:fs').appendFileSync(log, 'pid ' + c.pid + '\\n');
});
test.run();
`;
  const res = runOn({ 'leaves.test.js': leaves });
  assert.is(res.status, 0, res.out);
  assert.is(res.lines[res.lines.length - 1], '1 passed, 0 failed', res.out);
  assert.match(res.out, /note: processes this file started were still running when it ended: killed/);
  const pid = Number(/^pid (\d+)$/.exec(res.events[0] ?? '')?.[1]);
  assert.ok(pid > 0, res.events.join(', '));
  // the note names what was left: its name, PID and command line
  assert.match(res.out, `\n      sleep (${pid}: sleep 300)\n`, res.out);
  let alive = true;
  for (let i = 0; i < 100 && alive; i++) {
    try {
      process.kill(pid, 0);
      // a zombie still answers signal 0: its state says whether it runs
      const stat = fs.existsSync(`/proc/${pid}/stat`) ? fs.readFileSync(`/proc/${pid}/stat`, 'utf8') : '';
      if (!stat || / [ZX] /.test(stat.slice(stat.lastIndexOf(')')))) alive = false;
      else spawnSync('sleep', ['0.05']);
    } catch {
      alive = false;
    }
  }
  assert.not.ok(alive, `sleep ${pid} still runs`);
});

test('a file that times out gets SIGTERM and time to clean up (its shell is not killed under it), then fails saying so', () => {
  // hangs; on SIGTERM it notes it, cleans up for 1 s (a lab's teardown, say), notes that, exits
  const hangs = `${HEADER}const { spawn, spawnSync } = require('node:child_process');
const fs = require('node:fs');
const log = require('node:path').join(process.env.PODWAY_TEST_ROOT, '..', 'events.log');
process.on('SIGTERM', () => {
  fs.appendFileSync(log, 'term\\n');
  spawnSync('sleep', ['1']);
  fs.appendFileSync(log, 'cleaned\\n');
  process.exit(143);
});
test('hangs', async () => {
  spawn('sleep', ['300'], { stdio: 'ignore' }).unref();
  await new Promise((r) => setTimeout(r, 120000));
});
test.run();
`;
  // 5 s: its SIGTERM handler must be in place before the timeout, on a loaded host too
  const res = runOn({ 'hangs.test.js': hangs }, { env: { PODWAY_TEST_FILE_TIMEOUT_S: '5' } });
  assert.is(res.status, 1, res.out);
  assert.match(fileLine(res, 'hangs.test.js'), /^FAIL hangs\.test\.js \(0 passed, 1 failed, /);
  assert.match(res.out, 'timed out after 5 s (PODWAY_TEST_FILE_TIMEOUT_S): its processes were sent SIGTERM (SIGKILL to what was left 30 s later)');
  // the test that hung is named (the preload's SIGTERM listener), and the file's own handler still ran
  assert.match(res.out, /SIGTERM while running test "hangs", started [\d.]+ s before/);
  assert.equal(res.events, ['term', 'cleaned'], res.out);
  // the sleep it left got the SIGTERM too (not a leftover the exit found)
  assert.not.match(res.out, 'sleep 300', res.out);
  assert.is(res.lines[res.lines.length - 1], '0 passed, 1 failed', res.out);
});

test('a timed-out file without a SIGTERM handler of its own still ends by SIGTERM, naming the hook or test it hung in', () => {
  const files = {
    'plain.test.js': `${HEADER}test('waits for ever', async () => { await new Promise((r) => setTimeout(r, 120000)); });
test.run();
`,
    'hook.test.js': `${HEADER}const { suite } = require('uvu');
const s = suite('lab');
s.before(async () => { await new Promise((r) => setTimeout(r, 120000)); });
s('never runs', () => assert.ok(true));
s.run();
`,
  };
  const res = runOn(files, { env: { PODWAY_TEST_FILE_TIMEOUT_S: '5' } });
  assert.is(res.status, 1, res.out);
  for (const f of ['plain.test.js', 'hook.test.js']) assert.match(fileLine(res, f), new RegExp(`^FAIL ${f.replace('.', '\\.')} \\(0 passed, 1 failed, `));
  assert.match(res.out, /SIGTERM while running test "waits for ever", started [\d.]+ s before/);
  assert.match(res.out, /SIGTERM while running its before hook \(suite "lab"\), started [\d.]+ s before/);
  // ended by the signal (as without the preload's listener), not by the SIGKILL 30 s after it
  for (const f of ['plain.test.js', 'hook.test.js']) {
    const wall = Number(/, ([\d.]+)s, cpu /.exec(fileLine(res, f))![1]);
    assert.ok(wall < 5 + 30, `${f} ended ${wall} s after its start: SIGKILLed, not ended by the SIGTERM`);
  }
});

test('each file is bounded at 6 times its expected wall, 300 s at least and 600 s at most; 600 s with no expected time', () => {
  const files = Object.fromEntries(['a', 'b', 'c', 'd'].map((n) => [`${n}.test.js`, noting(n, '', 0)]));
  const durations = { 'a.test.js': { wall: 5, cpu: 2 }, 'b.test.js': { wall: 80, cpu: 40 }, 'c.test.js': 250 };
  const list = runOn(files, { durations, args: ['--list'] });
  assert.equal(list.lines, [
    'c.test.js (expected 250s; bound 600s)',
    'b.test.js (expected 80s, cpu 40s; bound 480s)',
    'd.test.js (expected 10s; bound 600s)',
    'a.test.js (expected 5s, cpu 2s; bound 300s)',
  ], list.out);
  const given = runOn(files, { durations, args: ['--list'], env: { PODWAY_TEST_FILE_TIMEOUT_S: '42' } });
  assert.ok(given.lines.length === 4 && given.lines.every((l) => l.endsWith('; bound 42s)')), given.out);
});

test('each file\'s line shows its wall and CPU seconds, its children\'s CPU included', () => {
  // burns 0.5 s of CPU in a child process it waits for, and little itself
  const burn = `${HEADER}const { spawnSync } = require('node:child_process');
test('burn', () => {
  const r = spawnSync(process.execPath, ['-e', 'const t = process.cpuUsage(); while (process.cpuUsage(t).user + process.cpuUsage(t).system < 500000);']);
  assert.is(r.status, 0);
});
test.run();
`;
  const res = runOn({ 'burn.test.js': burn });
  assert.is(res.status, 0, res.out);
  const m = /^ok {3}burn\.test\.js \(1 passed, 0 failed, ([\d.]+)s, cpu ([\d.]+)s\)$/.exec(fileLine(res, 'burn.test.js'));
  assert.ok(m, fileLine(res, 'burn.test.js'));
  const [wall, cpu] = [Number(m![1]), Number(m![2])];
  assert.ok(cpu >= 0.5, `cpu ${cpu} s counts the child's 0.5 s`);
  assert.ok(wall >= 0.5, `wall ${wall} s`);
});

test.run();
