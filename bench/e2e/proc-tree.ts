/**
 * CPU of a whole process tree over a window, as a user's `top` would add it up: the root, every
 * descendant (its helper processes and their children, all threads), and the descendants that
 * exited during the window.
 *
 * Method: at the start and the end of the window, every process whose parent chain reaches the
 * root (read from /proc/PID/stat's ppid, over all of /proc) is sampled: utime + stime (all its
 * threads) and cutime + cstime (the children it has waited for: a child's CPU moves there when its
 * parent reaps it). The tree's CPU in the window is the sum at the end minus the sum at the start,
 * per process; a process that exited during the window leaves its start figure to be subtracted
 * from the ancestor that reaped it (its CPU after the start is in that ancestor's cutime + cstime
 * delta; before the start it is not in the window). A child born and reaped within the window is
 * thus counted whole through its parent. Processes sampled at the start and reparented away
 * (an orphan adopted by init) are still followed by PID and start time.
 *
 * Limits: /proc's times are in clock ticks (USER_HZ, 100 per second on Linux), so each process's
 * figure is within 10 ms; a descendant orphaned and reaped by init during the window is
 * miscounted (its run after the start is lost, its start figure still taken off an ancestor). Per thread the breakdown also gives the scheduler's own
 * nanosecond run time (/proc/PID/task/TID/schedstat) and the voluntary context switches (each
 * one a sleep, so a wake-up after it: what wakes an idle process).
 */
import { readdirSync, readFileSync } from 'node:fs';

/** Clock ticks per second of /proc's times (USER_HZ: 100 on every Linux architecture node runs on). */
export const USER_HZ = 100;

export interface TaskSample {
  tid: number;
  comm: string;
  /** utime + stime, ticks */
  ticks: number;
  /** time on a CPU (schedstat), ns; -1 when the kernel has no schedstat */
  runNs: number;
  /** voluntary_ctxt_switches (sleeps) and nonvoluntary_ctxt_switches (preemptions) */
  voluntary: number;
  involuntary: number;
}

export interface ProcSample {
  pid: number;
  ppid: number;
  /** field 22: ticks since boot at its start; PID and this name one process */
  start: number;
  comm: string;
  /** the command line, shortened */
  cmd: string;
  /** utime + stime of all its threads, ticks */
  ticks: number;
  /** cutime + cstime: the children it has reaped, ticks */
  reapedTicks: number;
  tasks: TaskSample[];
}

export interface TreeSample {
  root: number;
  /** performance.now() at the sample */
  at: number;
  procs: Map<string, ProcSample>;
}

interface Stat { pid: number; comm: string; ppid: number; ticks: number; reapedTicks: number; start: number }

function readStat(file: string): Stat | null {
  let f: string;
  try {
    f = readFileSync(file, 'utf8');
  } catch {
    return null; // gone
  }
  const open = f.indexOf('(');
  const close = f.lastIndexOf(')');
  if (open < 0 || close < open) return null;
  // fields after the comm: 3 state, 4 ppid, ... 14 utime, 15 stime, 16 cutime, 17 cstime, ... 22 starttime
  const rest = f.slice(close + 2).split(' ');
  const n = (field: number) => Number(rest[field - 3]);
  return { pid: Number(f.slice(0, open).trim()), comm: f.slice(open + 1, close), ppid: n(4), ticks: n(14) + n(15), reapedTicks: n(16) + n(17), start: n(22) };
}

function readTask(pid: number, tid: number): TaskSample | null {
  const dir = `/proc/${pid}/task/${tid}`;
  const st = readStat(`${dir}/stat`);
  if (!st) return null;
  let runNs = -1;
  try {
    runNs = Number(readFileSync(`${dir}/schedstat`, 'utf8').split(' ')[0]);
  } catch {
    /* no schedstat */
  }
  let voluntary = 0;
  let involuntary = 0;
  try {
    const s = readFileSync(`${dir}/status`, 'utf8');
    voluntary = Number(/^voluntary_ctxt_switches:\s*(\d+)/m.exec(s)?.[1] ?? 0);
    involuntary = Number(/^nonvoluntary_ctxt_switches:\s*(\d+)/m.exec(s)?.[1] ?? 0);
  } catch {
    /* gone */
  }
  return { tid, comm: st.comm, ticks: st.ticks, runNs, voluntary, involuntary };
}

function cmdline(pid: number): string {
  try {
    const c = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').filter(Boolean);
    // node's scripts by their file name, not the path to node
    const shown = c.map((a, k) => (k === 0 || a.includes('/') ? a.slice(a.lastIndexOf('/') + 1) : a)).join(' ');
    return shown.length > 120 ? shown.slice(0, 117) + '...' : shown;
  } catch {
    return '';
  }
}

function sampleProc(st: Stat): ProcSample {
  const tasks: TaskSample[] = [];
  let tids: string[] = [];
  try {
    tids = readdirSync(`/proc/${st.pid}/task`);
  } catch {
    /* gone */
  }
  for (const t of tids) {
    const s = readTask(st.pid, Number(t));
    if (s) tasks.push(s);
  }
  return { pid: st.pid, ppid: st.ppid, start: st.start, comm: st.comm, cmd: cmdline(st.pid), ticks: st.ticks, reapedTicks: st.reapedTicks, tasks };
}

const key = (pid: number, start: number) => `${pid}@${start}`;

/**
 * The root and all its descendants now (see the file comment), plus `follow`'s processes (an
 * earlier sample's) where they still run, and their descendants.
 */
export function sampleTree(root: number, follow?: TreeSample): TreeSample {
  const at = performance.now();
  const stats = new Map<number, Stat>();
  const children = new Map<number, number[]>();
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    const st = readStat(`/proc/${d}/stat`);
    if (!st) continue;
    stats.set(st.pid, st);
    const list = children.get(st.ppid);
    if (list) list.push(st.pid);
    else children.set(st.ppid, [st.pid]);
  }
  const roots = [root];
  if (follow) for (const p of follow.procs.values()) if (stats.get(p.pid)?.start === p.start) roots.push(p.pid);
  const procs = new Map<string, ProcSample>();
  const seen = new Set<number>();
  const queue = roots.filter((p) => stats.has(p));
  while (queue.length) {
    const pid = queue.shift()!;
    if (seen.has(pid)) continue;
    seen.add(pid);
    const st = stats.get(pid)!;
    const p = sampleProc(st);
    procs.set(key(p.pid, p.start), p);
    for (const c of children.get(pid) ?? []) queue.push(c);
  }
  return { root, at, procs };
}

export interface TaskUsage { tid: number; comm: string; cpuSeconds: number; runMs: number | null; wakeups: number; preempted: number }

export interface ProcUsage {
  pid: number; ppid: number; comm: string; cmd: string;
  /** in the window: its own threads (ticks), plus what it reaped (cutime + cstime delta), less the
   * start figures of the children it reaped that were already running at the start */
  cpuSeconds: number;
  ownSeconds: number;
  reapedSeconds: number;
  /** sampled at both ends, started in the window, or ended in it */
  life: 'whole window' | 'started' | 'exited';
  threads: number;
  /** voluntary context switches of its threads in the window (each a sleep, then a wake-up) */
  wakeups: number;
  preempted: number;
  /** its threads, the busiest first (threads alive at both ends, or started in the window) */
  tasks: TaskUsage[];
}

export interface TreeUsage {
  seconds: number;
  /** the whole tree's CPU in the window, seconds */
  cpuSeconds: number;
  /** processes in the tree at the start or the end */
  processes: number;
  /** of them, exited in the window (their CPU reached their parent's reaped figure) */
  exited: number;
  wakeups: number;
  perProcess: ProcUsage[];
}

/** The tree's CPU between two samples of it (`b` taken with `follow: a`). */
export function treeUsage(a: TreeSample, b: TreeSample): TreeUsage {
  const perProcess: ProcUsage[] = [];
  const byPid = new Map<number, ProcUsage>();
  for (const [k, p] of b.procs) {
    const p0 = a.procs.get(k);
    const own = p.ticks - (p0?.ticks ?? 0);
    const reaped = p.reapedTicks - (p0?.reapedTicks ?? 0);
    const tasks: TaskUsage[] = [];
    let wakeups = 0;
    let preempted = 0;
    for (const t of p.tasks) {
      const t0 = p0?.tasks.find((x) => x.tid === t.tid);
      const u: TaskUsage = {
        tid: t.tid, comm: t.comm, cpuSeconds: (t.ticks - (t0?.ticks ?? 0)) / USER_HZ,
        runMs: t.runNs >= 0 && (t0 === undefined || t0.runNs >= 0) ? +((t.runNs - (t0?.runNs ?? 0)) / 1e6).toFixed(3) : null,
        wakeups: t.voluntary - (t0?.voluntary ?? 0), preempted: t.involuntary - (t0?.involuntary ?? 0),
      };
      wakeups += u.wakeups;
      preempted += u.preempted;
      tasks.push(u);
    }
    tasks.sort((x, y) => (y.runMs ?? y.cpuSeconds * 1000) - (x.runMs ?? x.cpuSeconds * 1000));
    const u: ProcUsage = { pid: p.pid, ppid: p.ppid, comm: p.comm, cmd: p.cmd, cpuSeconds: (own + reaped) / USER_HZ, ownSeconds: own / USER_HZ, reapedSeconds: reaped / USER_HZ, life: p0 ? 'whole window' : 'started', threads: p.tasks.length, wakeups, preempted, tasks };
    perProcess.push(u);
    byPid.set(p.pid, u);
  }
  // Exited in the window: their CPU since the start is in an ancestor's reaped delta, which also
  // holds what they ran before the start; take that part off the nearest ancestor still there.
  let exited = 0;
  for (const [k, p] of a.procs) {
    if (b.procs.has(k)) continue;
    exited++;
    const before = (p.ticks + p.reapedTicks) / USER_HZ;
    let anc: ProcUsage | undefined;
    for (let pp = p.ppid, hops = 0; pp > 0 && hops < 64 && !anc; hops++) {
      anc = byPid.get(pp);
      if (!anc) pp = [...a.procs.values()].find((x) => x.pid === pp)?.ppid ?? 0;
    }
    if (anc) {
      anc.cpuSeconds -= before;
      anc.reapedSeconds -= before;
    }
    perProcess.push({ pid: p.pid, ppid: p.ppid, comm: p.comm, cmd: p.cmd, cpuSeconds: 0, ownSeconds: 0, reapedSeconds: 0, life: 'exited', threads: p.tasks.length, wakeups: 0, preempted: 0, tasks: [] });
  }
  for (const u of perProcess) {
    u.cpuSeconds = +u.cpuSeconds.toFixed(2);
    u.reapedSeconds = +u.reapedSeconds.toFixed(2);
  }
  perProcess.sort((x, y) => y.cpuSeconds - x.cpuSeconds || x.pid - y.pid);
  const cpu = perProcess.reduce((s, u) => s + u.cpuSeconds, 0);
  return {
    seconds: (b.at - a.at) / 1000,
    cpuSeconds: +cpu.toFixed(2),
    processes: a.procs.size + b.procs.size - [...a.procs.keys()].filter((k) => b.procs.has(k)).length,
    exited,
    wakeups: perProcess.reduce((s, u) => s + u.wakeups, 0),
    perProcess,
  };
}
