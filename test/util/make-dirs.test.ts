/**
 * util/make-dirs.ts: mkdir -p without Node 20's endless retry. `fs.mkdirSync('/proc/x/y', {
 * recursive: true })` never returns (mkdir under /proc answers ENOENT though /proc exists); each
 * form is run in a child with a time bound, so a hang fails the test instead of holding it.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { makeDirs, makeDirsSync } from '../../src/util/make-dirs';

const MOD = path.resolve(__dirname, '..', '..', 'src', 'util', 'make-dirs.js');
const dir = mkdtempSync(path.join(tmpdir(), 'podway-opsfix2-mkdirs-'));
test.after(() => rmSync(dir, { recursive: true, force: true }));

/** Runs `code` in a child node with MOD required as `m`; killed after 10 s. */
const child = (code: string) => spawnSync(process.execPath, ['-e', `const m = require(${JSON.stringify(MOD)}); ${code}`], { encoding: 'utf8', timeout: 10_000 });

test('a path under /proc: an error naming the directory and the setting, sync and async, not a hang', () => {
  const p = `/proc/opsfix2-${process.pid}/y`;
  for (const code of [
    `try { m.makeDirsSync(${JSON.stringify(p)}, { what: '--model-cache ${p}/n.json' }); console.log('made') } catch (e) { console.log(e.message) }`,
    `m.makeDirs(${JSON.stringify(p)}, { what: '--model-cache ${p}/n.json' }).then(() => console.log('made'), (e) => console.log(e.message))`,
  ]) {
    const r = child(code);
    assert.is(r.signal, null, `ended by itself, not killed by the bound: ${r.stderr}`);
    assert.is(r.stdout.trim(), `--model-cache ${p}/n.json: cannot make the directory /proc/opsfix2-${process.pid} (of ${p}): ENOENT: the file system refuses to make it there`);
  }
});

test('missing parents made each once with the mode; an existing directory is fine; a file in the way is ENOTDIR naming it', async () => {
  const deep = path.join(dir, 'a', 'b', 'c');
  assert.is(makeDirsSync(deep, { mode: 0o700 }), path.join(dir, 'a'));
  assert.ok(statSync(deep).isDirectory());
  assert.is(statSync(path.join(dir, 'a', 'b')).mode & 0o777, 0o700);
  assert.is(makeDirsSync(deep), undefined);
  assert.is(await makeDirs(path.join(dir, 'x', 'y')), path.join(dir, 'x'));
  assert.is(await makeDirs(path.join(dir, 'x', 'y')), undefined);
  writeFileSync(path.join(dir, 'f'), '');
  assert.throws(() => makeDirsSync(path.join(dir, 'f', 'g'), { what: 'spool' }), (e: Error) => e.message.startsWith(`spool: cannot make the directory ${path.join(dir, 'f')}`) && /ENOTDIR: not a directory/.test(e.message));
  await makeDirs(path.join(dir, 'f', 'g')).then(() => assert.unreachable('a file in the way'), (e: Error) => assert.match(e.message, /ENOTDIR/));
});

test('the model cache under /proc: a write that fails, said, not a hang', () => {
  const p = `/proc/opsfix2-${process.pid}/n.model.json`;
  const mc = path.resolve(__dirname, '..', '..', 'src', 'cli', 'model-cache.js');
  const r = spawnSync(process.execPath, ['-e', `require(${JSON.stringify(mc)}).writeModelCache(${JSON.stringify(p)}, 'n1', 'etcd:http://x', { node: {} }, new Date(), { uid: 'u', createRevision: 1 }).then(() => console.log('written'), (e) => console.log(e.message))`], { encoding: 'utf8', timeout: 10_000 });
  assert.is(r.signal, null, `ended by itself: ${r.stderr}`);
  assert.match(r.stdout, new RegExp(`^model cache ${p.replace(/\./g, '\\.')}: cannot make the directory /proc/opsfix2-${process.pid}: ENOENT`), r.stdout + r.stderr);
});

test.run();
