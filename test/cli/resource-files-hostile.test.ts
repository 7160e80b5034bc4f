// Resource files a user (or a script gone wrong) hands `podway apply -f`/`create -f`, and the
// datastore file podway run watches: an alias bomb is refused naming the file and the document
// (was a bare "Excessive alias count ..." with neither); a file that never ends (/dev/zero) is
// refused after 64 MiB (was read for ever: 2.1 GB after 40 s); a document nested 100,000 deep is
// said to be nested too deeply, at its line (was JavaScript's "Maximum call stack size exceeded").
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import * as os from 'node:os';
import * as path from 'node:path';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { readResourceFile } from '../../src/cli/resource-files';
import { parseClusterYaml } from '../../src/control/snapshot';

const dir = mkdtempSync(path.join(os.tmpdir(), 'podway-rfh-'));
test.after(() => rmSync(dir, { recursive: true, force: true }));

/** A YAML document whose aliases expand exponentially (a "billion laughs"), as the 2nd document. */
function aliasBomb(): string {
  const lines = ['a: &a ["x","x","x","x","x","x","x","x","x"]'];
  for (let k = 1; k < 10; k++) {
    const prev = String.fromCharCode(96 + k);
    const cur = String.fromCharCode(97 + k);
    lines.push(`${cur}: &${cur} [${new Array(9).fill(`*${prev}`).join(',')}]`);
  }
  return `apiVersion: projectcalico.org/v3\nkind: IPPool\nmetadata: {name: p}\nspec: {cidr: 10.244.0.0/16}\n---\n${lines.join('\n')}\n`;
}

test('an alias bomb in a resource file: refused, the file and document named', () => {
  const file = path.join(dir, 'bomb.yaml');
  writeFileSync(file, aliasBomb());
  assert.throws(() => readResourceFile(file), (e: Error) => e.message.includes(file) && /document 2/.test(e.message) && /alias/i.test(e.message));
});

test('an alias bomb in the datastore file: refused with the file and document named (the last good state is kept by the caller)', () => {
  assert.throws(() => parseClusterYaml(aliasBomb(), 'cluster.yaml'), (e: Error) => /cluster\.yaml/.test(e.message) && /document 2/.test(e.message) && /alias/i.test(e.message));
});

test('a file that never ends (/dev/zero) is refused after 64 MiB, not read for ever', () => {
  assert.throws(() => readResourceFile('/dev/zero'), (e: Error) => /\/dev\/zero: cannot read: longer than 64 MiB/.test(e.message));
});


test('a document nested 100,000 deep: "nested too deeply" with its line, in a resource file and the datastore file', () => {
  const deep = `apiVersion: projectcalico.org/v3\nkind: IPPool\nmetadata: {name: p}\nspec: {cidr: 10.244.0.0/16}\n---\nkind: IPPool\nspec: ${'['.repeat(100_000)}\n`;
  const file = path.join(dir, 'deep.yaml');
  writeFileSync(file, deep);
  const said = (e: Error) => e.message.includes('document 2') && /invalid YAML: nested too deeply .* at line 7, column \d+/.test(e.message) && !/call stack/.test(e.message);
  assert.throws(() => readResourceFile(file), (e: Error) => e.message.includes(file) && said(e));
  assert.throws(() => parseClusterYaml(deep, 'cluster.yaml'), (e: Error) => /cluster\.yaml/.test(e.message) && said(e));
});

test.run();
