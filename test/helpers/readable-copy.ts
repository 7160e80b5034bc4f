/**
 * A copy of some of the project's compiled modules that another user can load. A checkout under
 * /root (CI's fresh machine) is unreadable to uid 65534, so a test that runs project code as that
 * user runs it from such a copy in a temp dir, laid out as the repo is (dist/..., build/Release).
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

/** Makes every file and directory under `dir` readable by everyone (files 0644, directories 0755). */
export function openUp(dir: string): void {
  fs.chmodSync(dir, 0o755);
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) openUp(p);
    else if (e.isFile()) fs.chmodSync(p, 0o644);
  }
}

/**
 * Copies the compiled module `entry` (a .js file under `root`, the repo's root) and every module it
 * requires by a relative path, recursively, plus `extra` files (repo-relative, e.g. a native addon),
 * into a fresh temp dir readable by everyone. Returns the copy's root and entry; the caller removes
 * the root.
 */
export function readableCopy(root: string, entry: string, extra: string[] = []): { root: string; entry: string } {
  const into = fs.mkdtempSync(path.join(os.tmpdir(), 'podway-readable-'));
  const seen = new Set<string>();
  const copy = (file: string): void => {
    if (seen.has(file)) return;
    seen.add(file);
    const to = path.join(into, path.relative(root, file));
    fs.mkdirSync(path.dirname(to), { recursive: true });
    fs.copyFileSync(file, to);
    if (!file.endsWith('.js')) return;
    for (const m of fs.readFileSync(file, 'utf8').matchAll(/require\("(\.{1,2}\/[^"]+)"\)/g)) {
      const dep = path.resolve(path.dirname(file), m[1]);
      copy(fs.existsSync(`${dep}.js`) ? `${dep}.js` : path.join(dep, 'index.js'));
    }
  };
  copy(entry);
  for (const f of extra) copy(path.join(root, f));
  openUp(into);
  return { root: into, entry: path.join(into, path.relative(root, entry)) };
}
