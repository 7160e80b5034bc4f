import type { ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';

/**
 * No such process, or one that ended and its parent has yet to reap (state Z, zombie, or X, dead,
 * in /proc/PID/stat): what a test waits for after it ended a process it started, by PID.
 */
export function processGone(pid: number): boolean {
  try {
    return / [ZX] /.test(readFileSync(`/proc/${pid}/stat`, 'utf8').replace(/^.*\)/s, ''));
  } catch {
    return true;
  }
}

/**
 * Resolves with the child's exit code (or signal) once it has exited and its output was read to
 * the end: 'close' (every stdio pipe at EOF), waited for `closeMs` at most after 'exit' (a process
 * it left running may hold the pipes open). 'exit' alone can come before the last of the output
 * is read: a JSON line cut short, a log line missing (fresh CI under load). Call it as the child
 * is spawned (before it can end).
 */
export function exitedAndRead(child: ChildProcess, closeMs = 2000): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
  const closed = new Promise<void>((r) => child.once('close', () => r()));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((r) => {
    if (child.exitCode !== null || child.signalCode !== null) r({ code: child.exitCode, signal: child.signalCode });
    else child.once('exit', (code, signal) => r({ code, signal }));
  });
  return exited.then(async (x) => {
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([closed, new Promise<void>((r) => (timer = setTimeout(r, closeMs)))]);
    clearTimeout(timer);
    return x;
  });
}
