// The spawner's helper (src/dataplane/spawner.ts, spawner-child.ts): what it runs for podway ends
// with it. Spawner.close() (podway's stop) and podway's exit (the IPC channel closing) both end the
// commands still running: a `sleep 300` started through the helper is gone after either.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawn } from 'node:child_process';
import * as path from 'node:path';
import { Spawner, ChildLike } from '../../src/dataplane/spawner';
import { processGone } from '../helpers/proc';
import { until } from '../helpers/until';

/** Starts `sleep 300` through `sp` and waits (bounded) until its PID is known. */
async function sleeper(sp: Spawner): Promise<{ c: ChildLike; pid: number }> {
  const c = sp.spawn('sleep', ['300']);
  c.on('error', () => undefined); // the helper's end is reported as an error: expected here
  c.stdin.end('');
  assert.ok(await until(() => c.pid !== undefined, 20_000), 'the helper started sleep');
  return { c, pid: c.pid! };
}

test('Spawner.close(): a command still running through the helper ends with it', async () => {
  const sp = new Spawner();
  const { pid } = await sleeper(sp);
  const helper = (sp as unknown as { helper: { pid: number } }).helper.pid;
  try {
    assert.not.ok(processGone(pid), 'sleep runs');
    sp.close();
    assert.ok(await until(() => processGone(helper), 10_000), 'the helper ended');
    assert.ok(await until(() => processGone(pid), 10_000), `sleep ${pid} ended with the helper`);
  } finally {
    if (!processGone(pid)) process.kill(pid, 'SIGKILL');
  }
});

test('the process that owns the Spawner exits: the helper and its commands end', async () => {
  // a child process makes a Spawner, starts sleep through it, prints the PIDs and exits
  const script = `const { Spawner } = require(${JSON.stringify(path.join(__dirname, '..', '..', 'src', 'dataplane', 'spawner'))});
const sp = new Spawner();
const c = sp.spawn('sleep', ['300']);
c.on('error', () => {});
c.stdin.end('');
const t = setInterval(() => { if (c.pid !== undefined) { clearInterval(t); process.send({ sleep: c.pid, helper: sp.helper.pid }); process.exit(0); } }, 20);
setTimeout(() => process.exit(1), 20000);`;
  const owner = spawn(process.execPath, ['-e', script], { stdio: ['ignore', 'ignore', 'inherit', 'ipc'] });
  const pids = await new Promise<{ sleep: number; helper: number } | null>((resolve) => {
    owner.once('message', (m) => resolve(m as { sleep: number; helper: number }));
    owner.once('exit', () => resolve(null));
  });
  assert.ok(pids, 'the owner reported its helper and sleep');
  try {
    assert.ok(await until(() => processGone(pids!.helper), 10_000), 'the helper ended');
    assert.ok(await until(() => processGone(pids!.sleep), 10_000), `sleep ${pids!.sleep} ended with the helper`);
  } finally {
    if (!processGone(pids!.sleep)) process.kill(pids!.sleep, 'SIGKILL');
  }
});

test.run();
