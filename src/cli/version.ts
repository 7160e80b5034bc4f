/**
 * What podway this is: dist/version.json, written by the build (scripts/write-version.js: package.json's
 * version and the git commit built, when it was a checkout). Nothing is read outside dist/ at run
 * time; a dist/ built by a bare `tsc` (no version file) says so instead of guessing.
 * Shown by `podway --version`, `podway status` (text and -o json) and the podway_build_info metric.
 */
import { readFileSync } from 'node:fs';
import * as path from 'node:path';

export interface BuildVersion {
  /** package.json's version, or "unknown" when the build wrote no version file. */
  readonly version: string;
  /** The git commit built (12 hex digits, `-dirty` when tracked files differed), or null. */
  readonly commit: string | null;
}

/** dist/version.json: this file is dist/src/cli/version.js. */
export const VERSION_FILE = path.join(__dirname, '..', '..', 'version.json');

let cached: BuildVersion | undefined;

export function buildVersion(): BuildVersion {
  if (cached) return cached;
  try {
    const v = JSON.parse(readFileSync(VERSION_FILE, 'utf8')) as { version?: unknown; commit?: unknown };
    cached = {
      version: typeof v.version === 'string' && v.version !== '' ? v.version : 'unknown',
      commit: typeof v.commit === 'string' && v.commit !== '' ? v.commit : null,
    };
  } catch {
    cached = { version: 'unknown', commit: null };
  }
  return cached;
}

/** `0.1.0 (commit 0123456789ab)`, `0.1.0`, or `unknown (no dist/version.json: build with npm run build)`. */
export function versionText(v: BuildVersion = buildVersion()): string {
  if (v.version === 'unknown' && v.commit === null) return 'unknown (no dist/version.json: build with `npm run build` or `npm run build:ts`)';
  return `${v.version}${v.commit ? ` (commit ${v.commit})` : ''}`;
}
