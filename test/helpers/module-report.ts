/**
 * Reads what module-report-preload.ts wrote: the packages and project files a process loaded.
 */
import * as path from 'node:path';

const LINE = 'podway-modules: ';

/** NODE_OPTIONS that make a node process report its modules on exit. */
export const REPORT_MODULES = `--require ${path.join(__dirname, 'module-report-preload.js')}`;

/** The list a process reported on its stderr (null when it did not report). */
export function loadedModules(stderr: string): string[] | null {
  const line = stderr.split('\n').find((l) => l.startsWith(LINE));
  return line ? (JSON.parse(line.slice(LINE.length)) as string[]) : null;
}

/** Every list a process reported: one per thread that loaded the preload (worker threads inherit
 * NODE_OPTIONS), in the order they exited. */
export function loadedModuleReports(stderr: string): string[][] {
  return stderr.split('\n').filter((l) => l.startsWith(LINE)).map((l) => JSON.parse(l.slice(LINE.length)) as string[]);
}
