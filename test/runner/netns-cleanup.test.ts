// The runner ends a test file that timed out with SIGTERM (scripts/run-tests.js), where neither a
// `finally` nor an uvu after-hook runs: the network namespaces the file made through
// test/helpers/netns.ts (addNetns, withNetns) are deleted then too (helpers/cleanup.ts), as e2e-kit's
// guard() does for a lab's. A child process stands for the test file: it makes its namespaces,
// prints their names and waits; this test sends it SIGTERM by PID and looks for them.
import { spawn, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import * as path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { isRoot } from '../helpers/netns';
import { until } from '../helpers/until';

/** The compiled helper, as a test file requires it. */
const NETNS = JSON.stringify(path.join(__dirname, '..', 'helpers', 'netns.js'));

/** Runs `script` (its namespaces' names printed as one JSON line), SIGTERMs it once they exist, and
 * says how it ended and which of them are left. */
async function terminated(script: string): Promise<{ names: string[]; code: number | null; left: string[] }> {
  const child = spawn(process.execPath, ['-e', `setInterval(() => undefined, 1000);\n${script}`], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout!.setEncoding('utf8').on('data', (d: string) => (out += d));
  child.stderr!.setEncoding('utf8').on('data', (d: string) => (out += d));
  const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
  let names: string[] = [];
  try {
    assert.ok(await until(() => out.includes('\n') || child.exitCode !== null, 30_000), `the child made its namespaces: ${out}`);
    names = JSON.parse(out.split('\n')[0]) as string[];
    assert.ok(names.length > 0 && names.every((n) => existsSync(`/run/netns/${n}`)), `made: ${out}`);
    process.kill(child.pid!, 'SIGTERM');
    assert.ok(await until(() => child.exitCode !== null || child.signalCode !== null, 30_000), 'the child ended on SIGTERM');
    const code = await exited;
    return { names, code, left: names.filter((n) => existsSync(`/run/netns/${n}`)) };
  } finally {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    for (const n of names) if (existsSync(`/run/netns/${n}`)) spawnSync('ip', ['netns', 'del', n]);
  }
}

test('addNetns: a namespace made is deleted when SIGTERM ends the process (exit 143)', async () => {
  if (!isRoot()) throw new Error('this test needs root (network namespaces)');
  const name = `pw-sigterm-${process.pid}`;
  const r = await terminated(`require(${NETNS}).addNetns(${JSON.stringify(name)}); console.log(JSON.stringify([${JSON.stringify(name)}]));`);
  assert.equal(r.left, [], `left behind: ${r.left.join(', ')}`);
  assert.is(r.code, 128 + 15);
});

test('withNetns: its namespaces are deleted when SIGTERM ends the process inside fn', async () => {
  if (!isRoot()) throw new Error('this test needs root (network namespaces)');
  const r = await terminated(`require(${NETNS}).withNetns(['sigterm-a', 'sigterm-b'], (ns) => { console.log(JSON.stringify(ns.map((n) => n.name))); return new Promise(() => undefined); });`);
  assert.is(r.names.length, 2);
  assert.equal(r.left, [], `left behind: ${r.left.join(', ')}`);
  assert.is(r.code, 128 + 15);
});

test.run();
