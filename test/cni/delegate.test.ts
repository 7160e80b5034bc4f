// The delegated IPAM plugin runner (src/cni/delegate.ts) with real plugin processes (shell scripts
// in a temporary CNI_PATH): a plugin that answers without reading its stdin, and exits before the
// runner has written it all (EPIPE on the runner's side), still has its answer taken; a plugin that
// cannot run is still an error naming it.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { forwardToIpam, runIpamPlugin } from '../../src/cni/delegate';
import { parseStdin } from '../../src/cni/config';
import type { CniEnv } from '../../src/cni/env';

const dir = mkdtempSync(path.join(tmpdir(), 'podway-delegate-'));
process.on('exit', () => rmSync(dir, { recursive: true, force: true }));
const env: CniEnv = { command: 'ADD', containerId: 'c1', netns: '/run/netns/none', ifname: 'eth0', args: {}, path: [dir] };

function plugin(name: string, body: string[]): void {
  writeFileSync(path.join(dir, name), ['#!/bin/sh', ...body, ''].join('\n'), { mode: 0o755 });
}

// Answers at once, never reads stdin.
plugin('deaf-ipam', [
  'case "$CNI_COMMAND" in',
  '  VERSION) echo \'{"cniVersion":"1.1.0","supportedVersions":["1.0.0","1.1.0"]}\' ;;',
  '  ADD) echo \'{"cniVersion":"1.1.0","ips":[{"address":"10.244.9.9/32"}]}\' ;;',
  '  STATUS) exit 0 ;;',
  'esac',
]);

test('a plugin that answers without reading its stdin: its answer is taken (the runner\'s EPIPE is not an error)', () => {
  // More than a pipe holds (64 KiB), so the runner is certainly still writing when the plugin exits.
  const stdin = parseStdin(JSON.stringify({ cniVersion: '1.1.0', name: 'podway', ipam: { type: 'deaf-ipam' }, padding: 'x'.repeat(256 * 1024) }));
  const r = runIpamPlugin('deaf-ipam', 'ADD', env, stdin);
  assert.equal(r?.ips, [{ address: '10.244.9.9/32' }]);
  assert.is(forwardToIpam('deaf-ipam', 'STATUS', env, stdin), true, 'VERSION read, STATUS forwarded');
});

test('a plugin that cannot run (no interpreter) is an error naming it', () => {
  writeFileSync(path.join(dir, 'broken-ipam'), '#!/no/such/interpreter\n', { mode: 0o755 });
  assert.throws(() => runIpamPlugin('broken-ipam', 'ADD', env, parseStdin('{}')), /IPAM plugin .*broken-ipam \(ADD\) could not run: spawnSync .*ENOENT/);
});

test.run();
