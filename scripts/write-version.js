#!/usr/bin/env node
'use strict';
// Part of the build (npm run build, build:ts, prepare; after tsc): writes dist/version.json, what
// `podway --version`, `podway status` and the podway_build_info metric say (src/cli/version.ts):
// package.json's version and, when the tree built is a git checkout, its commit (`-dirty` when
// tracked files differ from it). Read at build time only: the running podway reads dist/ alone.
const { execFileSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');

const root = path.resolve(__dirname, '..');
const { version } = JSON.parse(fs.readFileSync(path.join(root, 'package.json'), 'utf8'));
const git = (args) => execFileSync('git', args, { cwd: root, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'], timeout: 10_000 }).trim();
let commit = null;
try {
  commit = git(['rev-parse', '--short=12', 'HEAD']) || null;
  if (commit && git(['status', '--porcelain', '--untracked-files=no']) !== '') commit += '-dirty';
} catch {
  commit = null; // not a git checkout (a tarball), or no git: the version alone
}
const dir = path.join(root, 'dist');
fs.mkdirSync(dir, { recursive: true });
const file = path.join(dir, 'version.json');
fs.writeFileSync(`${file}.tmp`, JSON.stringify({ version, commit }) + '\n');
fs.renameSync(`${file}.tmp`, file);
