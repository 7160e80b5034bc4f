#!/usr/bin/env node
/**
 * The native build (binding.gyp: the addons podway_native.node and podway_flock.node, the bench
 * binaries pktgen and floorfwd) without a moment where build/Release lacks them: `node-gyp
 * rebuild` in the checkout removes build/ first, and every CNI ADD and DEL during the ~35 s of
 * the compile failed (`podway's flock addon (build/Release/podway_flock.node) not built`) on a
 * node upgraded in place (docs/running.md, "Upgrading"). Here node-gyp rebuilds in a staging
 * directory of its own (build/.staging-PID, with a copy of binding.gyp whose sources name the
 * checkout's files), and once the whole build succeeded each product is renamed (rename(2), on
 * the same file system) over build/Release/NAME: a process that starts meanwhile opens the old
 * file or the new one, whole; one that loaded the old addon keeps its mapping of the old inode. A
 * failed build leaves build/Release as it was. `npm run build:native`, `npm run build` and the
 * install script (npm ci, npm install) run it.
 *
 * Usage: node scripts/build-native.js   (node-gyp: npm's, as npm gives it to scripts, else on PATH)
 */
'use strict';
const { spawnSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');

const ROOT = path.resolve(__dirname, '..');
const BUILD = path.join(ROOT, 'build');
const RELEASE = path.join(BUILD, 'Release');
const STAGING_PREFIX = '.staging-';

/** Whether process `pid` runs (a staging directory of a build still under way is left alone). */
function alive(pid) {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return e.code === 'EPERM';
  }
}

/** binding.gyp with each source named relative to `dir` (the staging directory). */
function stagedGyp(dir) {
  const gyp = JSON.parse(fs.readFileSync(path.join(ROOT, 'binding.gyp'), 'utf8'));
  for (const t of gyp.targets) {
    if (Array.isArray(t.sources)) t.sources = t.sources.map((s) => path.relative(dir, path.join(ROOT, s)));
    if (Array.isArray(t.include_dirs)) t.include_dirs = t.include_dirs.map((s) => (/^[<!$]/.test(s) || path.isAbsolute(s) ? s : path.relative(dir, path.join(ROOT, s))));
  }
  return JSON.stringify(gyp, null, 2);
}

/** How to run node-gyp: npm's (npm_config_node_gyp, set for scripts; else the one npm bundles
 * beside this node, as `node scripts/build-native.js` finds it), else `node-gyp` on PATH. */
function nodeGyp() {
  const bundled = path.join(path.dirname(process.execPath), '..', 'lib', 'node_modules', 'npm', 'node_modules', 'node-gyp', 'bin', 'node-gyp.js');
  for (const js of [process.env.npm_config_node_gyp, bundled]) if (js && fs.existsSync(js)) return [process.execPath, [js]];
  return ['node-gyp', []];
}

/** The products the build made (regular files at the top of Release/: the .node addons, the binaries). */
function products(release) {
  return fs.readdirSync(release, { withFileTypes: true }).filter((d) => d.isFile()).map((d) => d.name).sort();
}

function main() {
  fs.mkdirSync(BUILD, { recursive: true });
  // Staging directories of builds killed before their end (their process gone): removed.
  for (const name of fs.readdirSync(BUILD)) {
    const m = name.startsWith(STAGING_PREFIX) ? /^\d+$/.exec(name.slice(STAGING_PREFIX.length)) : null;
    if (m && !alive(Number(m[0]))) fs.rmSync(path.join(BUILD, name), { recursive: true, force: true });
  }
  const dir = path.join(BUILD, `${STAGING_PREFIX}${process.pid}`);
  fs.rmSync(dir, { recursive: true, force: true });
  fs.mkdirSync(dir, { recursive: true });
  try {
    fs.writeFileSync(path.join(dir, 'binding.gyp'), stagedGyp(dir));
    const [cmd, pre] = nodeGyp();
    // Run by npm, node-gyp has npm's nodedir (npm_config_nodedir); run directly, the headers of the
    // node running this when they are installed beside it (else node-gyp fetches them, as it would).
    const env = { ...process.env };
    const prefix = path.dirname(path.dirname(process.execPath));
    if (!env.npm_config_nodedir && fs.existsSync(path.join(prefix, 'include', 'node', 'node_api.h'))) env.npm_config_nodedir = prefix;
    const r = spawnSync(cmd, [...pre, 'rebuild', ...process.argv.slice(2)], { cwd: dir, stdio: 'inherit', env });
    if (r.error) {
      process.stderr.write(`build-native: cannot run node-gyp (${r.error.message}): run it as \`npm run build:native\` (npm gives scripts its node-gyp), or install node-gyp; build/Release left as it was\n`);
      return 1;
    }
    if (r.status !== 0) {
      process.stderr.write(`build-native: node-gyp rebuild failed (${r.status === null ? `signal ${r.signal}` : `exit ${r.status}`}): build/Release left as it was\n`);
      return r.status || 1;
    }
    const staged = path.join(dir, 'build', 'Release');
    const made = products(staged);
    if (made.length === 0) {
      process.stderr.write(`build-native: node-gyp made nothing in ${path.relative(ROOT, staged)}: build/Release left as it was\n`);
      return 1;
    }
    fs.mkdirSync(RELEASE, { recursive: true });
    for (const name of made) fs.renameSync(path.join(staged, name), path.join(RELEASE, name));
    process.stdout.write(`build-native: ${made.join(', ')} in place in build/Release (each renamed over the one before)\n`);
    return 0;
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

process.exitCode = main();
