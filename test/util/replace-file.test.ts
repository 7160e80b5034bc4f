// util/replace-file.ts on real files: the content replaced whole with the mode asked for, the
// temporary a dot-file beside it, and nothing left behind by a write that fails (a real full disk:
// a tmpfs of 64 KiB of this test's own; a rename over a directory), the old content kept.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { replaceFile, replaceFileSync, replaceTempName } from '../../src/util/replace-file';

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

test('the temporary is a dot-file of this process beside the file', () => {
  assert.is(replaceTempName('/a/b/conf.json'), `/a/b/.conf.json.${process.pid}.tmp`);
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
}

test.run();
