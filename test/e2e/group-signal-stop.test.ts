/**
 * The whole process group of a running `podway run` signalled, as a Ctrl-C in its terminal or
 * `timeout` does (root, network namespaces, the file datastore): podway, its spawner helper and
 * the helper's commands get the signal at once. podway stops cleanly (exit 0, as for a signal to
 * it alone), and its log has no warning about the `ip monitor` it was itself stopping ("ip monitor
 * could not be started or was lost (spawner helper exited (0))" was logged while it stopped).
 * podway runs under setsid here: the group is its own, not the test runner's.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawn } from 'node:child_process';
import * as path from 'node:path';
import { Lab, LabNodeSpec } from '../../src/lab/lab';
import { controlRequest } from '../../src/dataplane/control-server';
import { guard, teardown, isRoot, until, track } from './e2e-kit';
import { exitedAndRead } from '../helpers/proc';

const BIN = path.resolve(__dirname, '..', '..', '..', 'bin', 'podway.js');
const SPEC: LabNodeSpec[] = [
  { name: 'node1', subnet: 'a', pods: [{ name: 'web-1', type: 'veth' }] },
  { name: 'node2', subnet: 'a', pods: [{ name: 'web-2', type: 'veth' }] },
];

let lab: Lab;

test.before(() => {
  if (!isRoot()) throw new Error('group-signal e2e tests need root (network namespaces)');
  lab = guard(new Lab(SPEC));
  lab.build();
});

test.after(async () => {
  if (lab) await teardown(lab);
});

for (const sig of ['SIGINT', 'SIGTERM'] as const) {
  test(`${sig} to podway's whole process group: a clean stop, no ip monitor warning`, async () => {
    const n = lab.node('node1');
    const p = track(spawn('setsid', ['ip', 'netns', 'exec', n.ns, process.execPath, BIN, 'run', '--node', n.name, '--datastore', lab.datastoreSpec, '--control', n.control, '--model-cache', lab.modelCachePath(n.name)], { stdio: ['ignore', 'ignore', 'pipe'] }));
    let log = '';
    p.stderr!.setEncoding('utf8');
    p.stderr!.on('data', (d: string) => (log += d));
    const exited = exitedAndRead(p).then(({ code: c, signal: s }) => c ?? (s ? -1 : null)); // its last log lines read too
    try {
      const ready = await until(async () => {
        try {
          return ((await controlRequest(n.control, { cmd: 'status' }, 2000)) as { ready?: boolean }).ready === true;
        } catch {
          return false;
        }
      }, 60_000, 200);
      assert.ok(ready, `podway ready: ${log.slice(-2000)}`);
      // the ip monitor runs (its PID in the log) before the signal
      assert.ok(await until(() => /ip monitor, PID \d+/.test(log), 10_000, 100), `ip monitor started: ${log.slice(-2000)}`);
      // setsid (no fork when it is not a group leader already) made podway's PID its group's ID
      process.kill(-p.pid!, sig);
      const rc = await Promise.race([exited, new Promise<'timeout'>((r) => setTimeout(() => r('timeout'), 30_000).unref())]);
      assert.is(rc, 0, `exit after ${sig}: ${log.slice(-2000)}`);
      const warns = log.split('\n').filter((l) => /ip monitor/.test(l) && /"level":"(warn|error)"/.test(l));
      assert.equal(warns, [], 'no warning about the ip monitor while stopping');
      assert.match(log, /stopp/, 'podway said it stopped');
    } finally {
      if (p.exitCode === null && p.signalCode === null) {
        p.kill('SIGKILL');
        await exited;
      }
    }
  });
}

test.run();
