/**
 * `podway run`'s failed start (run.ts undoFailedStart): what the start made undone newest first,
 * a step that throws said and the next one still run, and a step that never ends not holding the
 * exit: past the bound the step under way and those not reached are named, and it returns.
 * (test/cli/run-start-checks: the same through `podway run`, its exit codes and what it leaves.)
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { undoFailedStart } from '../../src/cli/run';
import { within } from '../../src/lab/lab';

function logger() {
  const lines: string[] = [];
  return { lines, log: { error: (m: string) => void lines.push(`error ${m}`), warn: (m: string) => void lines.push(`warn ${m}`) } };
}

test('steps undone newest first; one that throws is said and the rest go on', async () => {
  const { lines, log } = logger();
  const done: string[] = [];
  const steps = [
    { what: 'the model thread', undo: async () => void done.push('thread') },
    { what: 'the engine', undo: () => { throw new Error('nft refused'); } },
    { what: 'the address monitor', undo: () => new Promise<void>((r) => setTimeout(() => { done.push('monitor'); r(); }, 10)) },
  ];
  assert.is(await undoFailedStart(steps, new Error('--nat-port-range: 4000-5000 holds the VXLAN port 4789'), log, 30_000), true);
  assert.equal(done, ['monitor', 'thread']);
  assert.equal(lines, [
    'error start failed: --nat-port-range: 4000-5000 holds the VXLAN port 4789; undoing what the start made (the address monitor, the engine, the model thread)',
    'warn start failed: undoing the engine: nft refused',
  ]);
  assert.equal(steps, [], 'every step taken');
});

test('a step that never ends: past the bound it is named with those not reached, and the exit goes on', async () => {
  const { lines, log } = logger();
  let reached = false;
  const steps = [
    { what: 'the model thread', undo: () => void (reached = true) },
    { what: 'the engine', undo: () => new Promise<void>(() => undefined) },
  ];
  // bounded here too: a hang in undoFailedStart itself fails the test, not the runner's file timeout
  const r = await within(undoFailedStart(steps, new Error('boom'), log, 200), 30_000, 'did not return' as const);
  assert.is(r, false);
  assert.not.ok(reached);
  assert.is(lines[1], 'error start failed: its clean-up did not end within 0.2 s (still undoing the engine; not undone: the model thread): exiting anyway');
});

test('nothing made: nothing said', async () => {
  const { lines, log } = logger();
  assert.is(await undoFailedStart([], new Error('the run lock is held'), log), true);
  assert.equal(lines, []);
});

test.run();
