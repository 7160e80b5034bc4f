// The CLI tests run podway without the runner's podway settings (cli-kit's PODWAY_ENV): this checks
// that PODWAY_ENV names every environment variable the sources read, so a variable podway starts
// reading is not passed from the runner's environment to the tests' podway by mistake.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { readdirSync, readFileSync } from 'node:fs';
import * as path from 'node:path';
import { PODWAY_ENV, ROOT } from './cli-kit';

function sources(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = path.join(dir, e.name);
    return e.isDirectory() ? sources(p) : e.name.endsWith('.ts') ? [p] : [];
  });
}

test('every environment variable read under src/ is one podway() strips from the runner\'s environment', () => {
  // `process.env.NAME`, `env.NAME`, `env?.NAME`, `env['NAME']` (the sources read the environment
  // through process.env or a parameter named env that defaults to it).
  const read = /\benv\??\.([A-Z][A-Z0-9_]*)\b|\benv\[['"]([A-Z][A-Z0-9_]*)['"]\]/g;
  const names = new Map<string, string>();
  for (const file of sources(path.join(ROOT, 'src'))) {
    for (const m of readFileSync(file, 'utf8').matchAll(read)) names.set(m[1] ?? m[2], path.relative(ROOT, file));
  }
  // The scan finds what it must (so an empty scan cannot pass).
  for (const known of ['NODENAME', 'LOG_LEVEL', 'IP', 'IP6', 'ETCD_ENDPOINTS', 'PODWAY_DATASTORE', 'FELIX_PROMETHEUSMETRICSPORT']) {
    assert.ok(names.has(known), `${known} not found in src/: the scan is broken`);
  }
  // read to be passed on, not a podway setting: cni/snapshot.ts gives PATH to the node it builds
  // the start-up snapshot with (the runner's PATH is the tests' too)
  const PASSED_ON = new Set(['PATH']);
  const missed = [...names].filter(([name]) => !PODWAY_ENV.test(name) && !PASSED_ON.has(name)).map(([name, file]) => `${name} (${file})`);
  assert.equal(missed, [], `read by podway but passed from the runner's environment by podway(): ${missed.join(', ')}`);
});

test.run();
