// The e2e benchmarks' option parsing: a misspelt option or --help must never start a run (minutes
// of namespaces and load beside someone else's measurement).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { execFileSync, spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import * as path from 'node:path';
import { BenchUsageError, parseBenchArgs } from '../../bench/e2e/bench-args';

const SPEC = { usage: 'usage: x', flags: ['--json'], options: ['--only', '--podway-args'], repeated: ['--setup'] };

test('values, flags and repeated options are read; a value may start with --', () => {
  const a = parseBenchArgs(['--json', '--only', 'tcp-bulk', '--podway-args', '--workers 2', '--setup', 'kernel', '--setup', '--workers 1'], SPEC);
  assert.ok(a.has('--json'));
  assert.is(a.opt('--only'), 'tcp-bulk');
  assert.is(a.opt('--podway-args'), '--workers 2');
  assert.equal(a.all('--setup'), ['kernel', '--workers 1']);
  assert.is(a.opt('--missing'), undefined);
  assert.not.ok(a.has('--quick'));
});

test('an unknown option and a missing value are usage errors', () => {
  assert.throws(() => parseBenchArgs(['--jsn'], SPEC), (e: unknown) => e instanceof BenchUsageError && /unknown option "--jsn"/.test((e as Error).message));
  assert.throws(() => parseBenchArgs(['--only'], SPEC), (e: unknown) => e instanceof BenchUsageError && /--only needs a value/.test((e as Error).message));
  assert.throws(() => parseBenchArgs(['stray'], SPEC), (e: unknown) => e instanceof BenchUsageError);
});

// The real entry points, without root: --help, an unknown option and an unknown scenario all end
// before the root check or any lab is built.
const RUN = path.resolve(__dirname, '..', '..', 'bench', 'e2e', 'run.js');
const RR_TAIL = path.resolve(__dirname, '..', '..', 'bench', 'e2e', 'rr-tail.js');

test('run.js --help prints the usage and exits 0; a bad option or scenario exits 2', () => {
  const help = execFileSync(process.execPath, [RUN, '--help'], { encoding: 'utf8', timeout: 20_000 });
  assert.match(help, /^usage: node dist\/bench\/e2e\/run\.js/);
  const bad = spawnSync(process.execPath, [RUN, '--quick', '--sconds', '2'], { encoding: 'utf8', timeout: 20_000 });
  assert.is(bad.status, 2);
  assert.match(bad.stderr, /unknown option "--sconds"/);
  const scenario = spawnSync(process.execPath, [RUN, '--only', 'tcp-bulk,tcpbulk'], { encoding: 'utf8', timeout: 20_000 });
  assert.is(scenario.status, 2);
  assert.match(scenario.stderr, /--only: no scenario "tcpbulk"; scenarios: .*tcp-bulk/);
});

test('run.js refuses a --seconds that is not a positive number', () => {
  for (const v of ['abc', '0', '-1']) {
    const r = spawnSync(process.execPath, [RUN, '--quick', '--seconds', v], { encoding: 'utf8', timeout: 20_000 });
    assert.is(r.status, 2, `--seconds ${v}: ${r.stderr}`);
    assert.match(r.stderr, /--seconds .*a number from/);
  }
});

test('run.js --help documents --rounds; a --rounds that is not an integer from 1 is refused before any lab', () => {
  const help = execFileSync(process.execPath, [RUN, '--help'], { encoding: 'utf8', timeout: 20_000 });
  assert.match(help, /--rounds N +every row's setups measured interleaved N times/);
  for (const v of ['0', '1.5', 'x', '', '1001']) {
    const r = spawnSync(process.execPath, [RUN, '--quick', '--rounds', v], { encoding: 'utf8', timeout: 20_000 });
    assert.is(r.status, 2, `--rounds ${JSON.stringify(v)}: ${r.stderr}`);
    assert.match(r.stderr, /--rounds .*an integer from 1 to 1000/);
  }
});

// Every package.json bench* script: --help must print a usage, never start the benchmark, and a
// misspelt option must not run the default (both end before any work or root check)
test('every bench* script answers --help with its usage and refuses an unknown option', () => {
  const root = path.resolve(__dirname, '..', '..', '..');
  const scripts = (JSON.parse(readFileSync(path.join(root, 'package.json'), 'utf8')) as { scripts: Record<string, string> }).scripts;
  const files = Object.entries(scripts).filter(([k]) => k.startsWith('bench')).map(([, v]) => /^node (\S+)$/.exec(v)![1]);
  assert.ok(files.length >= 13, files.join(' '));
  for (const f of files) {
    const help = spawnSync(process.execPath, [path.join(root, f), '--help'], { encoding: 'utf8', timeout: 30_000 });
    assert.is(help.status, 0, `${f} --help: ${help.stderr}`);
    assert.match(help.stdout, /^usage: /m, f);
    const bad = spawnSync(process.execPath, [path.join(root, f), '--no-such-option'], { encoding: 'utf8', timeout: 30_000 });
    assert.is(bad.status, 2, `${f} --no-such-option: ${bad.stderr}`);
    assert.match(bad.stderr, /unknown option "--no-such-option"/, f);
  }
});

test('rr-tail.js -h exits 0 with its usage', () => {
  const r = spawnSync(process.execPath, [RR_TAIL, '-h'], { encoding: 'utf8', timeout: 20_000 });
  assert.is(r.status, 0);
  assert.match(r.stdout, /rr-tail\.js .*--setup/s);
});

test.run();
