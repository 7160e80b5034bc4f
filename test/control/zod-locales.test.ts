// zod-locales.ts: zod loaded without its ~60 translations up front (the CNI plugin's ADD and
// STATUS). Each case is a fresh node process (the module cache is the point): the same messages
// for the same bad values with and without the stand-in, zod's other locales not loaded until
// `z.locales` is read, and then all there.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { execFileSync } from 'node:child_process';
import * as path from 'node:path';

const SRC = path.resolve(__dirname, '..', '..', 'src', 'control');

/** What a fresh process reports: the stand-in's answer, zod's locale files loaded (the index, or its stand-in, left out), messages for bad values. */
function fresh(defer: boolean, readLocales = false): { deferred: boolean | null; locales: string[]; messages: unknown; afterRead?: { fr: string; keys: number; locales: number } } {
  const script = `
    const path = require('node:path');
    const deferred = ${defer} ? require(${JSON.stringify(path.join(SRC, 'zod-locales.js'))}).deferZodLocales() : null;
    const { z } = require('zod');
    const { validateResource } = require(${JSON.stringify(path.join(SRC, 'calico-kinds.js'))});
    const locales = () => Object.keys(require.cache).filter((f) => /\\/zod\\/v4\\/locales\\/(?!index\\.cjs$)/.test(f)).map((f) => path.basename(f)).sort();
    const bad = [
      { apiVersion: 'projectcalico.org/v3', kind: 'IPPool', metadata: { name: 'p' }, spec: { cidr: '10.0.0.1/16', ipipMode: 'Sometimes', natOutgoing: 'yes' } },
      { apiVersion: 'projectcalico.org/v3', kind: 'WorkloadEndpoint', metadata: { name: 'Bad_Name' }, spec: { node: 7, interfaceName: 'a b', ipNetworks: ['10.0.0.1/24'], mac: 'zz' } },
      { apiVersion: 'projectcalico.org/v3', kind: 'BGPPeer', metadata: { name: 'x' }, spec: { peerIP: '1.2.3', asNumber: 'abc' } },
    ];
    const messages = {
      resources: bad.map((b) => validateResource(b)),
      zod: [z.string().safeParse(1), z.object({ a: z.number() }).strict().safeParse({ a: 1, b: 2 }), z.email().safeParse('x'), z.union([z.string(), z.number()]).safeParse(null)]
        .map((r) => r.error.issues.map((i) => i.message)),
    };
    const out = { deferred, locales: locales(), messages };
    if (${readLocales}) {
      const fr = typeof z.locales.fr;
      out.afterRead = { fr, keys: Object.keys(z.locales).length, locales: locales().length };
    }
    process.stdout.write(JSON.stringify(out));
  `;
  return JSON.parse(execFileSync(process.execPath, ['-e', script], { encoding: 'utf8', cwd: path.resolve(__dirname, '..', '..', '..'), timeout: 60_000 }));
}

test('zod without its translations up front: the same messages, English only loaded, the others when z.locales is read', () => {
  const plain = fresh(false);
  const lean = fresh(true, true);
  assert.is(lean.deferred, true, 'the stand-in was put in place');
  assert.ok(plain.locales.length > 40 && plain.locales.includes('fr.cjs'), `plain zod loads its translations: ${plain.locales.length}`);
  assert.equal(lean.locales, ['en.cjs'], 'only English before z.locales is read');
  assert.equal(lean.messages, plain.messages, 'the same issues and messages for the same bad values');
  assert.match(JSON.stringify(plain.messages), 'Invalid input: expected string, received number');
  assert.is(lean.afterRead!.fr, 'function', 'z.locales.fr, read, is there');
  assert.is(lean.afterRead!.locales, plain.locales.length, 'reading z.locales loads every translation');
  assert.ok(lean.afterRead!.keys > 40, `z.locales lists every locale: ${lean.afterRead!.keys}`);
});

test('deferZodLocales after zod is loaded does nothing', () => {
  const script = `
    require('zod');
    process.stdout.write(String(require(${JSON.stringify(path.join(SRC, 'zod-locales.js'))}).deferZodLocales()));
  `;
  assert.is(execFileSync(process.execPath, ['-e', script], { encoding: 'utf8', cwd: path.resolve(__dirname, '..', '..', '..'), timeout: 60_000 }), 'false');
});

test.run();
