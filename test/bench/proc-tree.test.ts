// The idle benchmark's CPU accounting over a process tree (bench/e2e/proc-tree.ts): a child that
// ran before the window and exits in it counts only its part in the window (through its parent's
// reaped time), a grandchild started in the window counts whole, the root's own time is not all.
// CPU is burnt by each process against its own process.cpuUsage(), not against a clock, so the
// figures hold on a loaded machine; the bounds leave room for node start-ups and 10 ms ticks.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawn, ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { sampleTree, treeUsage } from '../../bench/e2e/proc-tree';

// burn(ms): spin until this process has used `ms` of CPU since it started
const BURN = 'const burn = (ms) => { while ((process.cpuUsage().user + process.cpuUsage().system) / 1000 < ms); };';
// A: 1 s of CPU, "ready"; on a line in: 0.3 s more (1.3 s in all), exit
const CHILD_A = `${BURN} burn(1000); process.stdout.write('ready\\n'); process.stdin.once('data', () => { burn(1300); process.exit(0); });`;
// B (under sh, so a grandchild of the root): 0.2 s of CPU, "burnt", then sleeps until killed
const CHILD_B = `${BURN} burn(200); process.stdout.write('burnt\\n'); setInterval(() => {}, 1000);`;
// The root: starts A; "ready" when A is; on "go" tells A, and once A has exited (reaped) starts
// sh -> B and says "done <B's pid>" when B has burnt its share.
const ROOT = `
const { spawn } = require('node:child_process');
const node = process.execPath;
const a = spawn(node, ['-e', ${JSON.stringify(CHILD_A)}], { stdio: ['pipe', 'pipe', 'inherit'] });
a.stdout.once('data', () => process.stdout.write('ready\\n'));
process.stdin.once('data', () => a.stdin.write('go\\n'));
a.once('exit', () => {
  const sh = spawn('sh', ['-c', '"$0" -e "$1"; true', node, ${JSON.stringify(CHILD_B)}], { stdio: ['ignore', 'pipe', 'inherit'] });
  sh.stdout.once('data', () => {
    // B is sh's one child
    const b = require('node:fs').readFileSync('/proc/' + sh.pid + '/task/' + sh.pid + '/children', 'utf8').trim();
    process.stdout.write('done ' + b + '\\n');
  });
});
setInterval(() => {}, 1000);
`;

function lineFrom(p: ChildProcess, re: RegExp, timeoutMs: number): Promise<string> {
  return new Promise((resolve, reject) => {
    let buf = '';
    const timer = setTimeout(() => reject(new Error(`no ${re} from the test tree in ${timeoutMs} ms: ${JSON.stringify(buf)}`)), timeoutMs);
    const on = (d: Buffer) => {
      buf += d.toString();
      const m = re.exec(buf);
      if (!m) return;
      clearTimeout(timer);
      p.stdout!.off('data', on);
      resolve(m[0]);
    };
    p.stdout!.on('data', on);
  });
}

test('a tree: a child exiting in the window counts its window part, a grandchild started in it counts whole', async () => {
  const root = spawn(process.execPath, ['-e', ROOT], { stdio: ['pipe', 'pipe', 'inherit'] });
  let bPid = 0;
  let shPid = 0;
  const rootExit = new Promise((resolve) => root.once('exit', resolve));
  try {
    await lineFrom(root, /ready\n/, 60_000);
    const a = sampleTree(root.pid!);
    assert.is(a.procs.size, 2, 'the root and A before the window');
    root.stdin!.write('go\n');
    const done = await lineFrom(root, /done (\d+)\n/, 60_000);
    bPid = Number(/done (\d+)/.exec(done)![1]);
    const b = sampleTree(root.pid!, a);
    shPid = [...b.procs.values()].find((p) => p.pid === bPid)?.ppid ?? 0;
    const u = treeUsage(a, b);
    const byPid = (pid: number) => u.perProcess.find((p) => p.pid === pid);
    // A's 0.3 s in the window (reaped by the root) + B's 0.2 s and its start-up + the root's and
    // sh's own bits. A's 1 s before the window is not in it: with it the tree would be over 1.5 s.
    assert.ok(u.cpuSeconds >= 0.45, `tree CPU ${u.cpuSeconds} s: A's 0.3 s and B's 0.2 s not all counted`);
    assert.ok(u.cpuSeconds <= 1.2, `tree CPU ${u.cpuSeconds} s: A's second before the window counted`);
    // the root's own threads did almost nothing: a root-only figure would miss the tree
    const r = byPid(root.pid!)!;
    assert.ok(r.ownSeconds < 0.3, `root's own ${r.ownSeconds} s`);
    assert.ok(r.reapedSeconds >= 0.25 && r.reapedSeconds <= 0.6, `root's reaped (A in the window) ${r.reapedSeconds} s`);
    // A exited in the window; sh and B started in it, B (the grandchild) with its 0.2 s
    assert.is(u.perProcess.filter((p) => p.life === 'exited').length, 1);
    assert.is(u.exited, 1);
    const bu = byPid(bPid);
    assert.ok(bu, `B (pid ${bPid}) in the tree: ${JSON.stringify(u.perProcess.map((p) => [p.pid, p.comm, p.life]))}`);
    assert.is(bu!.life, 'started');
    assert.ok(bu!.cpuSeconds >= 0.15, `B ${bu!.cpuSeconds} s`);
    assert.ok(bu!.tasks.length >= 1 && bu!.tasks.every((t) => t.wakeups >= 0));
    assert.is(u.processes, 4, 'root, A (exited), sh and B');
  } finally {
    for (const pid of [bPid, shPid]) {
      if (!pid) continue;
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        /* gone */
      }
    }
    root.kill('SIGKILL');
    await rootExit;
    // sh and B, orphaned, are reaped by init: wait (10 s at most) until they are gone
    for (let end = Date.now() + 10_000; Date.now() < end && [bPid, shPid].some((p) => p && existsSync(`/proc/${p}`)); ) await new Promise((r) => setTimeout(r, 20));
  }
});

test.run();
