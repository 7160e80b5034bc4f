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
