/**
 * util/invocation.ts: the hints that print a podway command line name podway as the user ran it:
 * `node bin/podway.js` on a checkout, `npx podway` through npx, `podway` installed.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { commandOf } from '../../src/util/invocation';
import { staleEndpointLine, staleEndpoints } from '../../src/observe/stale-endpoints';

// dist/test/util -> the repository
const ROOT = path.resolve(__dirname, '..', '..', '..');
const BIN = path.join(ROOT, 'bin', 'podway.js');

test('commandOf: a checkout run by path, npx, the installed command', () => {
  // made-up places under one top directory (none is read: commandOf works on the strings)
  const top = path.join(tmpdir(), 'podway-invocation');
  const at = (...parts: string[]) => path.join(top, ...parts);
  const node = process.execPath;
  const checkout = at('src', 'podway');
  const script = path.join(checkout, 'bin', 'podway.js');
  const spaced = at('src', 'my podway');
  assert.is(commandOf([node, script, 'status'], {}, checkout), 'node bin/podway.js');
  assert.is(commandOf([node, script], {}, path.join(checkout, 'bin')), 'node podway.js');
  // outside the working directory: the whole path (a relative ../.. one would break on a cd)
  assert.is(commandOf([node, script], {}, at('home', 'me')), `node ${script}`);
  assert.is(commandOf([node, path.join(spaced, 'bin', 'podway.js')], {}, spaced), 'node bin/podway.js');
  assert.is(commandOf([node, path.join(spaced, 'bin', 'podway.js')], {}, at('home')), `node '${path.join(spaced, 'bin', 'podway.js')}'`);
  // npx (and npm exec) set npm_lifecycle_event=npx for what they run; a package.json script does not
  assert.is(commandOf([node, path.join(checkout, 'node_modules', '.bin', 'podway')], { npm_lifecycle_event: 'npx', npm_command: 'exec' }, checkout), 'npx podway');
  assert.is(commandOf([node, script], { npm_lifecycle_event: 'start' }, checkout), 'node bin/podway.js');
  // installed on PATH (argv[1] is the `podway` link), the CNI plugin's shim, anything else
  assert.is(commandOf([node, at('local', 'bin', 'podway'), 'status'], {}, at('home')), 'podway');
  assert.is(commandOf([node, at('opt', 'podway', 'dist', 'src', 'cni', 'main.js')], {}, top), 'podway');
  assert.is(commandOf([node], {}, top), 'podway');
});

test('node bin/podway.js: its hints name `node bin/podway.js` (from the checkout) and the whole path (from elsewhere)', () => {
  const elsewhere = mkdtempSync(path.join(tmpdir(), `podway-ops27-${process.pid}-`));
  try {
    const run = (cwd: string, script: string, args: string[]) => spawnSync(process.execPath, [script, ...args], { cwd, encoding: 'utf8', timeout: 30_000, env: { ...process.env, npm_lifecycle_event: '' } });
    let r = run(ROOT, 'bin/podway.js', ['get']);
    assert.is(r.status, 2, r.stderr);
    assert.match(r.stderr, "see `node bin/podway.js get --help`", r.stderr);
    r = run(ROOT, 'bin/podway.js', ['delete']);
    assert.match(r.stderr, '(e.g. node bin/podway.js delete ippool my-pool)', r.stderr);
    assert.not.match(r.stderr, /e\.g\. podway /, r.stderr);
    r = run(elsewhere, BIN, ['get']);
    assert.match(r.stderr, `see \`node ${BIN} get --help\``, r.stderr);
  } finally {
    rmSync(elsewhere, { recursive: true, force: true });
  }
});

test('the stale endpoint line makes its cleanup commands where it is printed, not where podway run made them', () => {
  const waiting = [{ workload: 'default/web-1', interface: 'cali123', networks: ['10.244.0.5/32'], error: 'missing', since: new Date(0).toISOString(), missing: true }];
  const [s] = staleEndpoints(waiting, 10 * 60_000, 60_000);
  // as a podway run started by another command gave it (in its status JSON)
  const line = staleEndpointLine({ ...s!, cleanup: `node ${path.join(tmpdir(), 'elsewhere', 'bin', 'podway.js')} delete workloadendpoint web-1 -n default` });
  assert.match(line, 'clean up with: podway delete workloadendpoint web-1 -n default && podway ipam release --ip 10.244.0.5 --grace-period 0');
});

test.run();
