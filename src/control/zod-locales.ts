// zod without its ~60 translations loaded up front, for a short-lived process that validates a few
// values and exits (the CNI plugin's ADD and STATUS).
//
// Every entry point of zod 4 (zod, zod/mini, zod/v4/core) requires its locales index, which
// requires each of the ~60 locale files: in a fresh process that was 49 ms of CPU of the 123 ms
// that loading zod takes (bench/README.md, "zod in an ADD"), more than building podway's
// schemas (~28 ms) and parsing with them (~6 ms) together. podway's messages are English: zod's
// schemas load their English locale themselves (v4/classic/schemas.cjs requires locales/en.cjs),
// and zod-messages.ts words most issues itself. deferZodLocales(), called before anything requires
// zod, puts a stand-in for the index in the module cache that requires the real index on first use
// (`z.locales.fr` still works), so nothing changes but when the translations load: zod takes the
// index as an ES module (its `__esModule`) and stores it as `z.locales` without reading it.
// When zod's layout is not that one (another major version), or zod is loaded already, nothing is
// done and zod loads as it always did.
import { existsSync } from 'node:fs';
import Module = require('node:module');
import * as path from 'node:path';

/** Where zod 4 keeps the index; null when it is not there. */
export function localesIndex(): string | null {
  let pkg: string;
  try {
    pkg = require.resolve('zod/package.json');
  } catch {
    return null;
  }
  const index = path.join(path.dirname(pkg), 'v4', 'locales', 'index.cjs');
  return existsSync(index) ? index : null;
}

/**
 * The stand-in for zod's locales index: the real one required when a property is first read
 * (also by the CNI plugin's snapshot, cni/snapshot-entry.ts, whose loader has its own cache).
 */
export function deferred(index: string): object {
  let real: object | undefined;
  const load = (): object => {
    if (!real) {
      delete require.cache[index];
      real = require(index) as object;
    }
    return real;
  };
  return new Proxy({ __esModule: true } as object, {
    get: (target, key) => (key === '__esModule' ? true : Reflect.get(load(), key)),
    has: (target, key) => key === '__esModule' || Reflect.has(load(), key),
    ownKeys: () => Reflect.ownKeys(load()),
    // The real exports are frozen; reported as configurable (the stand-in's target has none of them).
    getOwnPropertyDescriptor: (target, key) => {
      const d = Reflect.getOwnPropertyDescriptor(load(), key);
      return d ? { ...d, configurable: true } : undefined;
    },
  });
}

/** Whether the stand-in was put in place (false: zod loads its locales as usual). */
export function deferZodLocales(): boolean {
  const index = localesIndex();
  if (!index || require.cache[index]) return false;
  const zodMain = path.join(path.dirname(index), '..', '..', 'index.cjs');
  if (require.cache[zodMain]) return false;
  const stand = new Module(index, module);
  stand.filename = index;
  stand.loaded = true;
  stand.exports = deferred(index);
  require.cache[index] = stand;
  return true;
}
