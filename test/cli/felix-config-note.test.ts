// A FelixConfiguration written with apply/create/replace is stored but not read by podway run
// (src/cli/felix-config-note.ts): the write says so on stderr, with the FELIX_* variable (and flag)
// for each field podway has an equivalent of, and the fields it has none of. It used to print
// "Successfully applied" only, and a Calico operator took the settings to be in force.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import * as path from 'node:path';
import { readFileSync, writeFileSync } from 'node:fs';
import { podway, ROOT, tempDir } from './cli-kit';
import { FELIX_FIELDS_PODWAY_READS } from '../../src/cli/felix-config-note';

test('apply, create and replace of FelixConfiguration: stored, and a note per resource naming the variables to set and the fields podway has none of', async () => {
  const dir = tempDir();
  const ds = ['--datastore', `embedded:${path.join(dir, 'store')}`];
  const file = path.join(dir, 'felix.yaml');
  writeFileSync(file, [
    'apiVersion: projectcalico.org/v3\nkind: FelixConfiguration\nmetadata: {name: default}\nspec: {natOutgoingExclusions: IPPoolsAndHostIPs, prometheusMetricsEnabled: true, bpfEnabled: false}',
    'apiVersion: projectcalico.org/v3\nkind: IPPool\nmetadata: {name: p}\nspec: {cidr: 10.251.0.0/16}',
  ].join('\n---\n') + '\n');
  const note = "podway: note: FelixConfiguration default is stored for Calico's Felix; podway run does not read it: for podway set FELIX_NATOUTGOINGEXCLUSIONS=IPPoolsAndHostIPs (or --nat-outgoing-exclusions), FELIX_PROMETHEUSMETRICSENABLED=true (or --metrics-port) in podway run's environment (contrib/systemd/podway.env), read at its start; podway has no equivalent of bpfEnabled\n";
  for (const verb of ['apply', 'replace', 'delete', 'create']) {
    if (verb === 'delete') {
      // a delete of it says nothing
      const del = await podway(['delete', '-f', file, ...ds]);
      assert.is(del.code, 0, del.err);
      assert.not.match(del.err, 'FelixConfiguration');
      continue;
    }
    const r = await podway([verb, '-f', file, ...ds]);
    assert.is(r.code, 0, `${verb}: ${r.err}`);
    assert.match(r.out, /^Successfully (created|applied|replaced) 2 resource\(s\)\n$/, verb);
    assert.is(r.err, note, verb);
  }
  const got = await podway(['get', 'felixconfiguration', 'default', '-o', 'yaml', ...ds]);
  assert.is(got.code, 0, got.err);
  assert.match(got.out, 'natOutgoingExclusions: IPPoolsAndHostIPs', 'stored as written');
  // a write of other kinds says nothing
  const pool = path.join(dir, 'pool.yaml');
  writeFileSync(pool, 'apiVersion: projectcalico.org/v3\nkind: IPPool\nmetadata: {name: q}\nspec: {cidr: 10.252.0.0/16}\n');
  const plain = await podway(['apply', '-f', pool, ...ds]);
  assert.equal([plain.code, plain.err], [0, '']);
});

test('the note knows every FELIX_* variable podway run reads (src/cli/main.ts, src/cli/run.ts, src/observe/log.ts), and no other', () => {
  const read = new Set<string>();
  for (const f of ['src/cli/main.ts', 'src/cli/run.ts', 'src/observe/log.ts']) {
    for (const m of readFileSync(path.join(ROOT, f), 'utf8').matchAll(/\bFELIX_[A-Z]+\b/g)) read.add(m[0]);
  }
  const known = new Set(Object.values(FELIX_FIELDS_PODWAY_READS).map((v) => v.env));
  assert.equal([...read].sort(), [...known].sort());
});

test.run();
