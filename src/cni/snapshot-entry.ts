// The CNI plugin's start-up snapshot: the entry Node runs with --build-snapshot (snapshot.ts
// builds it; `podway cni install` asks for it), and the main function a plugin process started from
// the snapshot runs (`node --snapshot-blob BLOB`, the shim: install.ts shimText).
//
// Every call is a new Node process, and most of its CPU went to loading the plugin's modules
// (compiling ~90 files, zod's among them, and running their top levels: zod's schemas built).
// Node 20 can start a process from a heap saved at build time (a "startup snapshot"); Node 22's
// module.enableCompileCache is not in Node 20. A snapshot holds what its entry script did, but
// Node 20 loads no module of the user's while building one (one file only, and only some of its
// own modules), so this file is its own small CommonJS loader: it reads the plugin's compiled
// files (dist/src) and the packages they require (zod), wraps each in a function as Node does, and
// runs them, building the same module objects Node's loader would. What an ADD, DEL, CHECK,
// STATUS or GC may require is loaded at build time, except the etcd3 client (etcd-kv.ts: the
// plugin uses its own, etcd-lite.ts), and is in the snapshot's heap when a call starts.
//
// Built against files that may change (an upgrade rebuilds dist/ under it): the snapshot lists
// every file it loaded with its size and mtime, and a process started from it looks at them first
// (stat(2) each, ~0.1 ms for all); when one differs or is gone it runs the plugin as the shim did
// before there was a snapshot, from dist/src/cni/main.js through Node's own loader, and says why
// on stderr. The snapshot belongs to one node binary: Node refuses it under another build (exit
// 14), so its file is named after that binary and the shim uses it only for that binary.
//
// Node's own modules that a snapshot cannot hold (child_process, net, http2, worker_threads, ...)
// are required when first used at run time: what a module gets at build time is a stand-in that
// requires the real module on its first property read.
//
// Environment at build: PODWAY_CNI_SNAPSHOT_MANIFEST, the file to write the list of loaded files
// to (JSON). At run time: PODWAY_CNI_SNAPSHOT_REPORT=1 writes one line on stderr, what the snapshot
// held and what this process compiled besides (the tests read it).
//
// A script, not an ES module: Node runs a snapshot's entry with require, __filename and __dirname
// only (no exports, no module), and require gives Node's own modules only. Everything is inside
// one function, so that nothing here is a global of the project's TypeScript.
(() => {
const fs = require('node:fs') as typeof import('node:fs');
const path = require('node:path') as typeof import('node:path');
const v8 = require('node:v8') as typeof import('node:v8');

/** The plugin's own modules and the packages they use (dist/src/cni/snapshot-entry.js -> dist/src). */
const DIST_SRC = path.resolve(__dirname, '..');
const MAIN = path.join(DIST_SRC, 'cni', 'main.js');

/**
 * What the verbs may require, relative to dist/src/cni: main.js's own imports, the plugin, and
 * what the plugin requires when a verb needs it (plugin.ts, open.ts, pending-del.ts). Not etcd-kv
 * (the etcd3 client, which the plugin never uses).
 */
const SNAPSHOT_MODULES = [
  './config',
  './slots',
  './plugin',
  '../control/resources',
  '../control/ipam/ipam',
  '../control/ipam/block',
  '../control/kv/open',
  '../control/kv/file-kv',
  '../control/kv/etcd-lite',
  '../control/kv/etcd-common',
  '../dataplane/control-client',
];

const REPORT_ENV = 'PODWAY_CNI_SNAPSHOT_REPORT';
const REPORT_LINE = 'podway-cni-snapshot: ';
const MANIFEST_ENV = 'PODWAY_CNI_SNAPSHOT_MANIFEST';
const BUILTINS_ENV = 'PODWAY_CNI_SNAPSHOT_BUILTINS';

interface LoadedModule {
  id: string;
  filename: string;
  exports: unknown;
  loaded: boolean;
  children: LoadedModule[];
  paths: string[];
  parent?: LoadedModule | null;
  require?: NodeRequire;
}

/** [file, size, mtimeMs] of every file loaded into the snapshot. */
const files: [string, number, number][] = [];
/** Files compiled after the snapshot was taken (in this process, at run time). */
const compiledLater: string[] = [];
let building = true;
const cache: Record<string, LoadedModule> = Object.create(null);
/** Node's own module names (from `require('node:module').builtinModules`, given by snapshot.ts). */
const builtinNames = new Set<string>(JSON.parse(process.env[BUILTINS_ENV] ?? '[]') as string[]);
/**
 * Node's own modules that Node 20 says work in a snapshot (others, e.g. child_process, http2,
 * worker_threads, module, it warns of, and http2 fails to load at all).
 */
const SNAPSHOT_SAFE = new Set(['fs', 'path', 'v8', 'crypto', 'events', 'buffer', 'util', 'os', 'net', 'fs/promises', 'timers', 'timers/promises', 'url', 'string_decoder', 'stream', 'assert', 'dns', 'zlib']);
const builtins = new Map<string, unknown>();
/** Node's require, for the built-in modules the snapshot could not hold; set at run time. */
let runtimeRequire: NodeRequire | null = null;

function builtin(request: string): unknown {
  const name = request.startsWith('node:') ? request.slice(5) : request;
  const known = builtins.get(name);
  if (known !== undefined) return known;
  let mod: unknown;
  if (!building) {
    mod = runtimeRequire!(name);
  } else if (SNAPSHOT_SAFE.has(name)) {
    mod = require(name);
  } else {
    // The real module when a property is first read, which must be at run time: a module whose
    // top level reads it fails the build (said by snapshot.ts, and the plugin runs without one).
    let real: Record<PropertyKey, unknown> | null = null;
    const get = (): Record<PropertyKey, unknown> => {
      if (real) return real;
      if (building) throw new Error(`node:${name} used while loading (not at run time): Node 20 cannot keep it in a snapshot`);
      return (real = runtimeRequire!(name) as Record<PropertyKey, unknown>);
    };
    // As an ES module's namespace (__esModule, its default the module itself), so that TypeScript's
    // `import * as` and default-import helpers take it as it is instead of copying its properties.
    const stand: object = new Proxy({}, {
      get: (_t, k) => (k === '__esModule' ? true : k === 'default' ? stand : get()[k]),
      has: (_t, k) => k in get(),
      ownKeys: () => Reflect.ownKeys(get()),
      getOwnPropertyDescriptor: (_t, k) => {
        const d = Reflect.getOwnPropertyDescriptor(get(), k);
        return d ? { ...d, configurable: true } : undefined;
      },
    });
    mod = stand;
  }
  builtins.set(name, mod);
  return mod;
}

function isFile(p: string): boolean {
  try {
    return fs.statSync(p).isFile();
  } catch {
    return false;
  }
}

function resolveFile(p: string): string | null {
  for (const c of [p, `${p}.js`, `${p}.json`, `${p}.node`, path.join(p, 'index.js')]) if (isFile(c)) return c;
  return null;
}

/** A package's file as Node's require finds it: node_modules up from `dir`, its "exports" ("require" condition) or "main". */
function resolvePackage(request: string, dir: string): string {
  const parts = request.split('/');
  const name = request.startsWith('@') ? parts.slice(0, 2).join('/') : parts[0];
  const sub = `.${request.slice(name.length)}`;
  for (let d = dir; ; d = path.dirname(d)) {
    const pj = path.join(d, 'node_modules', name, 'package.json');
    if (isFile(pj)) {
      const pkg = JSON.parse(fs.readFileSync(pj, 'utf8')) as { exports?: unknown; main?: string };
      const base = path.dirname(pj);
      if (pkg.exports !== undefined && pkg.exports !== null) {
        const ex = pkg.exports as Record<string, unknown> | string;
        let e: unknown = typeof ex === 'string' || !Object.keys(ex).some((k) => k.startsWith('.')) ? (sub === '.' ? ex : undefined) : ex[sub];
        while (e !== null && typeof e === 'object') {
          const o = e as Record<string, unknown>;
          e = o.require ?? o.node ?? o.default;
        }
        if (typeof e === 'string') return path.join(base, e);
        throw new Error(`${request}: not exported by ${pj} for require`);
      }
      const f = resolveFile(path.join(base, sub === '.' ? (pkg.main ?? 'index.js') : sub));
      if (f) return f;
      throw new Error(`${request}: no such file in ${base}`);
    }
    if (d === path.dirname(d)) throw new Error(`Cannot find module '${request}' from ${dir}`);
  }
}

function resolveRequest(request: string, dir: string): string {
  if (request.startsWith('./') || request.startsWith('../') || request.startsWith('/') || request === '.' || request === '..') {
    const f = resolveFile(path.resolve(dir, request));
    if (!f) throw new Error(`Cannot find module '${request}' from ${dir}`);
    return f;
  }
  return resolvePackage(request, dir);
}

/** Requests resolved so far (`dir\0request` -> file), kept in the snapshot: a require at run time of a package required at build time (zod, by the plugin's ADD) walks no directories. */
const resolved = new Map<string, string>();

function resolveCached(request: string, dir: string): string {
  const key = `${dir}\0${request}`;
  let file = resolved.get(key);
  if (file === undefined) {
    file = resolveRequest(request, dir);
    resolved.set(key, file);
  }
  return file;
}

function makeRequire(dir: string): NodeRequire {
  const isBuiltin = (r: string) => r.startsWith('node:') || builtinNames.has(r);
  const req = ((request: string) => (isBuiltin(request) ? builtin(request) : load(resolveCached(request, dir)))) as NodeRequire;
  req.resolve = ((request: string) => (isBuiltin(request) ? request : resolveCached(request, dir))) as NodeRequire['resolve'];
  req.cache = cache as unknown as NodeRequire['cache'];
  return req;
}

/** Node's CommonJS loading of one file, into `cache`. */
function load(file: string): unknown {
  const hit = cache[file];
  if (hit) return hit.exports;
  const dir = path.dirname(file);
  const mod: LoadedModule = { id: file, filename: file, exports: {}, loaded: false, children: [], paths: [], parent: null };
  cache[file] = mod;
  if (building) {
    const st = fs.statSync(file);
    files.push([file, st.size, st.mtimeMs]);
  } else {
    compiledLater.push(file);
  }
  try {
    if (file.endsWith('.json')) {
      mod.exports = JSON.parse(fs.readFileSync(file, 'utf8'));
    } else if (file.endsWith('.node')) {
      process.dlopen(mod as unknown as { exports: unknown }, file);
    } else {
      let src = fs.readFileSync(file, 'utf8');
      if (src.startsWith('#!')) src = `//${src}`;
      // As Node's CommonJS wrapper; sourceURL names the file in stack traces.
      // eslint-disable-next-line @typescript-eslint/no-implied-eval
      const fn = new Function('exports', 'require', 'module', '__filename', '__dirname', `${src}\n//# sourceURL=${file}`) as (...a: unknown[]) => void;
      mod.require = makeRequire(dir);
      fn.call(mod.exports, mod.exports, mod.require, mod, file, dir);
    }
  } catch (e) {
    delete cache[file];
    throw e;
  }
  mod.loaded = true;
  return mod.exports;
}

/** Why the snapshot's files are not the ones on disk now ('' when they are). */
function staleness(): string {
  for (const [file, size, mtimeMs] of files) {
    let st: import('node:fs').Stats;
    try {
      st = fs.statSync(file);
    } catch {
      return `${file} is gone`;
    }
    if (st.size !== size || st.mtimeMs !== mtimeMs) return `${file} changed since the snapshot was built`;
  }
  return '';
}

function report(what: string): void {
  if (process.env[REPORT_ENV] !== '1') return;
  const line = () => `${REPORT_LINE}${JSON.stringify({ mode: what, compiled: compiledLater, builtins: [...builtins.keys()] })}\n`;
  process.on('exit', () => {
    try {
      fs.writeSync(2, line());
    } catch {
      /* stderr closed */
    }
  });
}

/** The process started from the snapshot. */
function runFromSnapshot(): void {
  building = false;
  // (node:module itself is one Node 20 does not vouch for in a snapshot: required now)
  runtimeRequire = (require('node:module') as typeof import('node:module')).createRequire(MAIN);
  const stale = staleness();
  if (stale !== '') {
    // The plugin as it is on disk now, through Node's loader (what the shim ran before snapshots).
    process.stderr.write(`podway: CNI plugin snapshot not used: ${stale}; running ${MAIN} (run \`podway cni install\` again to rebuild the snapshot)\n`);
    report('stale');
    runtimeRequire(MAIN);
    return;
  }
  report('snapshot');
  load(MAIN);
}

// Only under `node --build-snapshot` (src/cni/snapshot.ts); anywhere else this file does nothing.
if (v8.startupSnapshot.isBuildingSnapshot()) {
  // This file too: a snapshot of another list of modules is another snapshot.
  const self = fs.statSync(__filename);
  files.push([__filename, self.size, self.mtimeMs]);
  // Before zod loads: its ~60 translations stay out of the heap (zod-locales.ts); zod's JIT off, as the plugin sets it.
  const zodLocales = load(resolveRequest('../control/zod-locales', __dirname)) as typeof import('../control/zod-locales');
  const index = zodLocales.localesIndex();
  if (index) cache[index] = { id: index, filename: index, exports: zodLocales.deferred(index), loaded: true, children: [], paths: [] };
  (load(resolveRequest('zod', __dirname)) as typeof import('zod')).config({ jitless: true });
  for (const m of SNAPSHOT_MODULES) load(resolveRequest(m, __dirname));
  const manifest = process.env[MANIFEST_ENV];
  if (manifest) fs.writeFileSync(manifest, JSON.stringify({ node: process.version, files }) + '\n');
  v8.startupSnapshot.setDeserializeMainFunction(runFromSnapshot);
}
})();
