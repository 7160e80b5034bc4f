// util/replace-file.ts on real files: the content replaced whole with the mode asked for, the
// temporary a dot-file beside it, and nothing left behind by a write that fails (a real full disk:
// a tmpfs of 64 KiB of this test's own; a rename over a directory), the old content kept.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { execFileSync } from 'node:child_process';
import { lstatSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { replaceFile, replaceFileSync, replaceTempName, TEMP_TRIES } from '../../src/util/replace-file';

const dir = mkdtempSync(join(tmpdir(), 'podway-replace-'));
let mounted = false;
test.after(() => {
  if (mounted) execFileSync('umount', [join(dir, 'small')]);
  rmSync(dir, { recursive: true, force: true });
});

const variants: [string, (file: string, data: string | Uint8Array, opts?: { mode?: number }) => unknown][] = [
  ['replaceFileSync', replaceFileSync],
  ['replaceFile', replaceFile],
];

test('the temporary is a dot-file of this process beside the file, with a random part', () => {
  const a = replaceTempName('/a/b/conf.json');
  assert.match(a, new RegExp(`^/a/b/\\.conf\\.json\\.${process.pid}\\.[0-9a-f]{12}\\.tmp$`));
  assert.is.not(replaceTempName('/a/b/conf.json'), a);
});

for (const [name, replace] of variants) {
  test(`${name}: replaces the content whole, new file with the mode asked for (umask applied), only the file left`, async () => {
    const d = join(dir, `ok-${name}`);
    mkdirSync(d);
    const file = join(d, 'f.json');
    const old = process.umask(0o022);
    try {
      await replace(file, 'one\n', { mode: 0o640 });
      assert.is(readFileSync(file, 'utf8'), 'one\n');
      assert.is(statSync(file).mode & 0o777, 0o640);
      await replace(file, Buffer.from('two\n'), { mode: 0o777 });
      assert.is(readFileSync(file, 'utf8'), 'two\n');
      assert.is(statSync(file).mode & 0o777, 0o755, 'umask applied');
      await replace(join(d, 'g'), 'x');
      assert.is(statSync(join(d, 'g')).mode & 0o777, 0o644, 'default 0o666 less the umask');
    } finally {
      process.umask(old);
    }
    assert.equal(readdirSync(d).sort(), ['f.json', 'g']);
  });

  test(`${name}: a full disk: the error thrown, the old content kept, no temporary left`, async () => {
    const small = join(dir, 'small');
    if (!mounted) {
      mkdirSync(small);
      execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=64k', 'podway-test', small]);
      mounted = true;
    }
    const file = join(small, `f-${name}`);
    writeFileSync(file, 'old');
    const err = await Promise.resolve().then(() => replace(file, Buffer.alloc(1 << 20, 1))).then(() => null, (e: NodeJS.ErrnoException) => e);
    assert.is(err?.code, 'ENOSPC', String(err));
    assert.is(readFileSync(file, 'utf8'), 'old');
    assert.equal(readdirSync(small).filter((n) => n.endsWith('.tmp')), []);
  });

  test(`${name}: a rename that fails (a directory in the way): thrown, no temporary left`, async () => {
    const d = join(dir, `dir-${name}`);
    mkdirSync(join(d, 'target'), { recursive: true });
    writeFileSync(join(d, 'target', 'inside'), 'x'); // a non-empty directory: rename(2) refuses
    const err = await Promise.resolve().then(() => replace(join(d, 'target'), 'data')).then(() => null, (e: NodeJS.ErrnoException) => e);
    assert.ok(err && ['EISDIR', 'ENOTEMPTY', 'EEXIST'].includes(err.code!), String(err));
    assert.equal(readdirSync(d), ['target']);
  });

  test(`${name}: a symlink (or file) planted at the temporary's name is not followed: its target untouched, another name taken, the planted one left as it was`, async () => {
    const d = join(dir, `planted-${name}`);
    mkdirSync(d);
    const file = join(d, 'cache.json');
    const victim = join(dir, `victim-${name}`);
    writeFileSync(victim, 'victim\n');
    const planted = join(d, '.cache.json.planted.tmp');
    symlinkSync(victim, planted);
    const dangling = join(d, '.cache.json.dangling.tmp');
    symlinkSync(join(dir, `nothing-${name}`), dangling); // O_CREAT alone would create its target
    // Old-style predictable name too (before the fix: opened with 'w', the victim overwritten).
    symlinkSync(victim, join(d, `.cache.json.${process.pid}.tmp`));
    const names = [planted, dangling];
    await replace(file, 'mine\n', { mode: 0o600, tempName: (f: string, i: number) => names[i] ?? replaceTempName(f) } as never);
    assert.is(readFileSync(victim, 'utf8'), 'victim\n', 'the target untouched');
    assert.not.ok(readdirSync(dir).includes(`nothing-${name}`), 'the dangling one\'s target not created');
    assert.is(readFileSync(file, 'utf8'), 'mine\n');
    assert.ok(lstatSync(file).isFile(), 'the file is a file, not a symlink');
    assert.is(readlinkSync(planted), victim, 'the planted symlink left alone');
    assert.is(readdirSync(d).length, 4, 'the file and the three planted names');
    // Every name taken: an error saying so, nothing written, the planted one not removed.
    const err = await Promise.resolve().then(() => replace(file, 'again\n', { tempName: () => planted } as never)).then(() => null, (e: NodeJS.ErrnoException) => e);
    assert.is(err?.code, 'EEXIST');
    assert.match(String(err?.message), `${TEMP_TRIES} random temporary names beside ${file} were all taken`);
    assert.is(readFileSync(file, 'utf8'), 'mine\n');
    assert.is(readlinkSync(planted), victim);
    assert.is(readFileSync(victim, 'utf8'), 'victim\n');
  });
}

test.run();
