// What podway this is: the build writes dist/version.json (scripts/write-version.js: package.json's
// version, the git commit built); `podway --version` / `-V` print it, exit 0; a dist/ with no
// version file says so. (`podway status` names it: cli/delete-running-node; podway_build_info:
// docs/metrics, which scrapes a real run against docs/observability.md's table.)
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { execFileSync } from 'node:child_process';
import { readFileSync, renameSync, existsSync } from 'node:fs';
import * as path from 'node:path';
import { ROOT, podway } from './cli-kit';
import { VERSION_FILE } from '../../src/cli/version';

const pkg = JSON.parse(readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as { version: string };

test('the build\'s version file: package.json\'s version and the checkout\'s commit; --version and -V print them, exit 0', async () => {
  // the build's step (npm run build / build:ts run it after tsc)
  execFileSync(process.execPath, [path.join(ROOT, 'scripts', 'write-version.js')], { cwd: ROOT });
  const written = JSON.parse(readFileSync(VERSION_FILE, 'utf8')) as { version: string; commit: string | null };
  assert.is(written.version, pkg.version);
  const head = execFileSync('git', ['rev-parse', '--short=12', 'HEAD'], { cwd: ROOT, encoding: 'utf8' }).trim();
  assert.match(written.commit ?? '', new RegExp(`^${head}(-dirty)?$`));
  for (const flag of ['--version', '-V']) {
    const r = await podway([flag]);
    assert.is(r.code, 0, r.err);
    assert.is(r.out, `podway ${pkg.version} (commit ${written.commit})\n`);
  }
  const help = await podway(['--help']);
  assert.match(help.out, /-V, --version\s+print podway's version/);
});

test('no version file (a dist/ built by a bare tsc): --version says unknown and how to build it, exit 0', async () => {
  assert.ok(existsSync(VERSION_FILE), 'written by the test before');
  const aside = `${VERSION_FILE}.aside-${process.pid}`;
  renameSync(VERSION_FILE, aside);
  try {
    const r = await podway(['--version']);
    assert.is(r.code, 0, r.err);
    assert.is(r.out, 'podway unknown (no dist/version.json: build with `npm run build` or `npm run build:ts`)\n');
  } finally {
    renameSync(aside, VERSION_FILE);
  }
});

test.run();
