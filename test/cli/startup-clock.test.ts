/**
 * `podway run`'s start-up phase lines (startup-clock.ts): ms since the process started and since
 * the phase before, each phase once, nothing after the start ended.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { StartupClock } from '../../src/cli/startup-clock';

test('one line per phase: ms since start and since the phase before, the process\'s CPU ms, with the fields', () => {
  const lines: [string, Record<string, unknown>][] = [];
  let now = 412.4;
  let cpu = 301.7;
  const clock = new StartupClock((m, f) => lines.push([m, f]), () => now, () => cpu);
  assert.is(clock.mark('modules loaded'), 412);
  now = 1030.6;
  cpu = 480.2;
  clock.mark('registered');
  now = 1900;
  cpu = 655;
  clock.mark('first model', "the datastore's, 3 endpoints");
  assert.equal(lines.map((l) => l[0]), [
    'start-up: modules loaded at 412 ms (+412 ms, cpu 302 ms)',
    'start-up: registered at 1031 ms (+619 ms, cpu 480 ms)',
    "start-up: first model at 1900 ms (+869 ms, cpu 655 ms); the datastore's, 3 endpoints",
  ]);
  assert.equal(lines[1]![1], { startupPhase: 'registered', sinceStartMs: 1031, phaseMs: 619, cpuMs: 480 });
});

test('the CPU by default: this process\'s (process.cpuUsage), growing with work done', () => {
  const cpus: number[] = [];
  const clock = new StartupClock((_m, f) => cpus.push(f.cpuMs as number));
  clock.mark('modules loaded');
  const until = process.cpuUsage().user + 30_000; // 30 ms of work, bounded by the CPU it takes
  for (let i = 0; i < 1e9 && process.cpuUsage().user < until; i++) Math.sqrt(i);
  clock.mark('control socket');
  assert.ok(cpus[0]! > 0, `some CPU to get here: ${cpus[0]}`);
  assert.ok(cpus[1]! >= cpus[0]! + 25, `the work counted: ${cpus.join(' -> ')}`);
});

test('a phase is said once (the start\'s); nothing after forwarding or done()', () => {
  const lines: string[] = [];
  let now = 100;
  const clock = new StartupClock((m) => lines.push(m), () => now, () => 50);
  clock.mark('registered');
  now = 200;
  assert.is(clock.mark('registered'), null, 'a second registration (a re-register) is no start-up phase');
  clock.mark('forwarding');
  now = 300;
  assert.is(clock.mark('first model'), null, 'after forwarding');
  const other = new StartupClock((m) => lines.push(m), () => now, () => 50);
  other.done();
  assert.is(other.mark('modules loaded'), null, 'after done()');
  assert.equal(lines, ['start-up: registered at 100 ms (+100 ms, cpu 50 ms)', 'start-up: forwarding at 200 ms (+100 ms, cpu 50 ms)']);
});

test.run();
