/**
 * scripts/build-native.js (`npm run build`, `npm run build:native`, the install script): the native
 * build never leaves build/Release without its addons. In a temporary copy of the build (the
 * script, a binding.gyp of podway_flock alone to keep it cheap, its C files), with an "old"
 * podway_flock.node in place, the script runs while the addon's path is read every 20 ms (bounded
 * in count and time): every read finds a whole addon, the old one or the new one, never none (with
 * `node-gyp rebuild` in place, build/ was removed first: `podway's flock addon ... not built` for
 * every CNI ADD and DEL of the ~35 s); the addon this process loaded before still answers after;
 * a new process loads the new one. A build that fails leaves build/Release as it was.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { closeSync, copyFileSync, mkdirSync, mkdtempSync, openSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';

const ROOT = path.resolve(__dirname, '..', '..', '..');
const ADDON = path.join(ROOT, 'build', 'Release', 'podway_flock.node');
const dirs: string[] = [];
test.after(() => { for (const d of dirs) rmSync(d, { recursive: true, force: true }); });

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

/** A copy of the build of podway_flock in a new temporary directory, its old addon in build/Release. */
function copyBuild(): { dir: string; addon: string } {
  const dir = mkdtempSync(path.join(tmpdir(), `podway-build-staging-upgrade27-${process.pid}-`));
  dirs.push(dir);
  mkdirSync(path.join(dir, 'scripts'));
  mkdirSync(path.join(dir, 'native'));
  copyFileSync(path.join(ROOT, 'scripts', 'build-native.js'), path.join(dir, 'scripts', 'build-native.js'));
  for (const f of ['flock.c', 'errors.c', 'errors.h']) copyFileSync(path.join(ROOT, 'native', f), path.join(dir, 'native', f));
  const gyp = JSON.parse(readFileSync(path.join(ROOT, 'binding.gyp'), 'utf8')) as { targets: { target_name: string }[] };
  writeFileSync(path.join(dir, 'binding.gyp'), JSON.stringify({ targets: gyp.targets.filter((t) => t.target_name === 'podway_flock') }));
  mkdirSync(path.join(dir, 'build', 'Release'), { recursive: true });
  const addon = path.join(dir, 'build', 'Release', 'podway_flock.node');
  copyFileSync(ADDON, addon);
  return { dir, addon };
}

/** Runs the copy's build script; resolves with its exit code (killed by PID after `ms`). */
function runBuild(dir: string, ms: number): { done: Promise<number | null>; out: () => string } {
  let out = '';
  const p = spawn(process.execPath, [path.join(dir, 'scripts', 'build-native.js')], { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, npm_config_node_gyp: '' } });
  p.stdout!.on('data', (d: Buffer) => { out += d.toString(); });
  p.stderr!.on('data', (d: Buffer) => { out += d.toString(); });
  const timer = setTimeout(() => p.kill('SIGKILL'), ms);
  const done = new Promise<number | null>((resolve) => p.on('exit', (code) => { clearTimeout(timer); resolve(code); }));
  return { done, out: () => out.slice(-3000) };
}

test('while the build runs, the addon\'s path always holds a whole addon (the old one, then the new one); a loaded one keeps working; a new process loads the new one', async () => {
  const { dir, addon } = copyBuild();
  const old = readFileSync(addon);
  const oldIno = statSync(addon).ino;
  // loaded before the build, as a running podway run or a CNI call under way has it
  const loaded = require(addon) as { flockTry(fd: number, mode: string): boolean };
  const build = runBuild(dir, 240_000);
  let finished = false;
  void build.done.then(() => { finished = true; });
  const seen = new Map<string, number>();
  const missing: string[] = [];
  let reads = 0;
  // every 20 ms while it runs: at most 240 s / 20 ms reads (the build is killed by then)
  for (let i = 0; i < 12_000 && !finished; i++) {
    try {
      const h = sha(readFileSync(addon));
      seen.set(h, (seen.get(h) ?? 0) + 1);
    } catch (e) {
      missing.push((e as Error).message);
    }
    reads++;
    await new Promise((r) => setTimeout(r, 20));
  }
  const code = await build.done;
  assert.is(code, 0, `the build succeeded: ${build.out()}`);
  assert.match(build.out(), /podway_flock\.node in place in build\/Release/);
  assert.ok(reads >= 10, `read during the build (${reads} reads)`);
  assert.equal(missing.slice(0, 3), [], `the addon was never missing (${missing.length} of ${reads} reads)`);
  const now = readFileSync(addon);
  assert.ok(statSync(addon).ino !== oldIno, 'the new addon renamed into place (another inode)');
  const allowed = new Set([sha(old), sha(now)]);
  assert.ok([...seen.keys()].every((h) => allowed.has(h)), `every read was the old addon or the new one, whole (${seen.size} contents seen)`);
  assert.ok((seen.get(sha(old)) ?? 0) > 0, 'the old addon was read while the new one was built');
  // the old mapping still answers; a new process loads the new file
  const fd = openSync(path.join(dir, 'lockfile'), 'w');
  try {
    assert.is(loaded.flockTry(fd, 'ex'), true, 'the addon loaded before the build still answers');
  } finally {
    closeSync(fd);
  }
  const child = spawnSync(process.execPath, ['-e', `const a = require(${JSON.stringify(addon)}); process.stdout.write(typeof a.flockTry)`], { encoding: 'utf8', timeout: 30_000 });
  assert.is(child.stdout, 'function', `a new process loads the new addon: ${child.stderr}`);
  assert.not.ok(readFileSync(path.join(dir, 'build', 'Release', 'podway_flock.node')).length === 0);
});

test('a build that fails leaves build/Release as it was, saying so; no staging directory left', async () => {
  const { dir, addon } = copyBuild();
  const before = sha(readFileSync(addon));
  writeFileSync(path.join(dir, 'native', 'flock.c'), 'this is not C;\n');
  const build = runBuild(dir, 240_000);
  const code = await build.done;
  assert.ok(code !== 0 && code !== null, `the build failed: ${code}`);
  assert.match(build.out(), /build-native: node-gyp rebuild failed \(exit \d+\): build\/Release left as it was/);
  assert.is(sha(readFileSync(addon)), before, 'the old addon in place');
  const left = spawnSync('ls', ['-a', path.join(dir, 'build')], { encoding: 'utf8' }).stdout.split('\n').filter((n) => n.startsWith('.staging-'));
  assert.equal(left, [], 'the staging directory removed');
});

test.run();
