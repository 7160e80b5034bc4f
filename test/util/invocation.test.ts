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
  const node = '/usr/bin/node';
  assert.is(commandOf([node, '/src/podway/bin/podway.js', 'status'], {}, '/src/podway'), 'node bin/podway.js');
  assert.is(commandOf([node, '/src/podway/bin/podway.js'], {}, '/src/podway/bin'), 'node podway.js');
  // outside the working directory: the whole path (a relative ../.. one would break on a cd)
  assert.is(commandOf([node, '/src/podway/bin/podway.js'], {}, '/home/me'), 'node /src/podway/bin/podway.js');
  assert.is(commandOf([node, '/src/my podway/bin/podway.js'], {}, '/src/my podway'), 'node bin/podway.js');
  assert.is(commandOf([node, '/src/my podway/bin/podway.js'], {}, '/home'), "node '/src/my podway/bin/podway.js'");
  // npx (and npm exec) set npm_lifecycle_event=npx for what they run; a package.json script does not
  assert.is(commandOf([node, '/src/podway/node_modules/.bin/podway'], { npm_lifecycle_event: 'npx', npm_command: 'exec' }, '/src/podway'), 'npx podway');
  assert.is(commandOf([node, '/src/podway/bin/podway.js'], { npm_lifecycle_event: 'start' }, '/src/podway'), 'node bin/podway.js');
  // installed on PATH (argv[1] is the `podway` link), the CNI plugin's shim, anything else
  assert.is(commandOf([node, '/usr/local/bin/podway', 'status'], {}, '/root'), 'podway');
  assert.is(commandOf([node, '/opt/podway/dist/src/cni/main.js'], {}, '/'), 'podway');
  assert.is(commandOf([node], {}, '/'), 'podway');
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
  const line = staleEndpointLine({ ...s!, cleanup: 'node /elsewhere/bin/podway.js delete workloadendpoint web-1 -n default' });
  assert.match(line, 'clean up with: podway delete workloadendpoint web-1 -n default && podway ipam release --ip 10.244.0.5 --grace-period 0');
});

test.run();
