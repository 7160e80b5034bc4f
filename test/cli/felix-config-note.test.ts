// A FelixConfiguration written with apply/create/replace (src/cli/felix-config-note.ts): the write
// says on stderr what podway run does with each field: applied live (below its flags and FELIX_*
// variables), ignored as invalid, taken from the environment at start only (the metrics
// settings), or none of (no equivalent); a resource Felix does not read (neither default nor
// node.NAME) is said so. It used to print "Successfully applied" only, and then that podway run
// did not read the resource at all.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import * as path from 'node:path';
import { readFileSync, writeFileSync } from 'node:fs';
import { BIN, podway, ROOT, tempDir } from './cli-kit';
import { FELIX_FIELDS_PODWAY_READS, felixConfigurationNotes } from '../../src/cli/felix-config-note';
import { commandOf } from '../../src/util/invocation';

// podway as these runs start it, as its notes name it (util/invocation.ts)
const CMD = commandOf([process.execPath, BIN], {}, process.cwd());

test('apply, create and replace of FelixConfiguration: stored, and a note per resource saying what podway run does with each field', async () => {
  const dir = tempDir();
  const ds = ['--datastore', `embedded:${path.join(dir, 'store')}`];
  const file = path.join(dir, 'felix.yaml');
  writeFileSync(file, [
    'apiVersion: projectcalico.org/v3\nkind: FelixConfiguration\nmetadata: {name: default}\nspec: {natOutgoingExclusions: IPPoolsAndHostIPs, prometheusMetricsEnabled: true, bpfEnabled: false, defaultEndpointToHostAction: Deny}',
    'apiVersion: projectcalico.org/v3\nkind: FelixConfiguration\nmetadata: {name: node.n1}\nspec: {logSeverityScreen: Warning}',
    'apiVersion: projectcalico.org/v3\nkind: FelixConfiguration\nmetadata: {name: other}\nspec: {logSeverityScreen: Debug}',
    'apiVersion: projectcalico.org/v3\nkind: IPPool\nmetadata: {name: p}\nspec: {cidr: 10.251.0.0/16}',
  ].join('\n---\n') + '\n');
  const note = [
    `podway: note: FelixConfiguration default is stored; podway run applies it to every node: natOutgoingExclusions (under --nat-outgoing-exclusions and $FELIX_NATOUTGOINGEXCLUSIONS) takes effect at once, also while it runs (a flag or variable given to podway run wins; \`${CMD} status\` shows where each setting comes from); ignored as invalid (the lower layer's value used): defaultEndpointToHostAction: \"Deny\" is not Drop, Accept or Return; the metrics settings are read from podway run's environment at its start only: set FELIX_PROMETHEUSMETRICSENABLED=true (or --metrics-port) (contrib/systemd/podway.env); podway has no equivalent of bpfEnabled\n`,
    `podway: note: FelixConfiguration node.n1 is stored; podway run applies it to node n1: logSeverityScreen (under --log-level and $FELIX_LOGSEVERITYSCREEN) takes effect at once, also while it runs (a flag or variable given to podway run wins; \`${CMD} status\` shows where each setting comes from)\n`,
    "podway: note: FelixConfiguration other is stored for Calico's Felix; podway run, as Felix, reads only FelixConfiguration default and node.<node name>\n",
  ].join('');
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
    assert.match(r.out, /^Successfully (created|applied|replaced) 4 resource\(s\)\n$/, verb);
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

test('the note: vxlanPort/vxlanVNI take effect at the next podway run start (an invalid one named); the MTUs apply at once (an invalid one named)', () => {
  const [n] = felixConfigurationNotes([{ kind: 'FelixConfiguration', metadata: { name: 'node.n1' }, spec: { vxlanPort: 8472, vxlanVNI: 4096, vxlanMTU: 1300, ipipMTU: 12, bpfEnabled: false } }]);
  assert.match(n!, '; vxlanPort 8472, vxlanVNI 4096 (VXLAN, under $FELIX_VXLANPORT / $FELIX_VXLANVNI) take effect at the next podway run start');
  assert.match(n!, ': vxlanMTU (under $FELIX_VXLANMTU) takes effect at once');
  // one field: "takes", its own variable only; several: "take"
  const [port] = felixConfigurationNotes([{ kind: 'FelixConfiguration', metadata: { name: 'default' }, spec: { vxlanPort: 8472, vxlanMTU: 1300, ipipMTU: 1400 } }]);
  assert.match(port!, '; vxlanPort 8472 (VXLAN, under $FELIX_VXLANPORT) takes effect at the next podway run start');
  assert.match(port!, ': vxlanMTU (under $FELIX_VXLANMTU), ipipMTU (under $FELIX_IPINIPMTU) take effect at once');
  assert.match(n!, 'ipipMTU: 12 is not 0 (auto) or an MTU 68..65535');
  assert.not.match(n!, 'WARNING, the tunnel wire');
  assert.not.match(n!, 'is not honoured: podway\'s VXLAN');
  const [bad] = felixConfigurationNotes([{ kind: 'FelixConfiguration', metadata: { name: 'default' }, spec: { vxlanPort: 0, vxlanVNI: 1.5 } }]);
  assert.match(bad!, 'ignored as invalid (the lower layer\'s value used): vxlanPort: 0 is not an integer 1..65535; vxlanVNI: 1.5 is not an integer 0..16777215');
  assert.match(n!, /podway has no equivalent of bpfEnabled$/);
});

test('the note knows every FELIX_* variable podway run reads (src/cli/main.ts, src/cli/run.ts, src/observe/log.ts), and no other', () => {
  const read = new Set<string>();
  for (const f of ['src/cli/main.ts', 'src/cli/run.ts', 'src/observe/log.ts']) {
    for (const m of readFileSync(path.join(ROOT, f), 'utf8').matchAll(/\bFELIX_[A-Z0-9]+\b/g)) read.add(m[0]);
  }
  const known = new Set(Object.values(FELIX_FIELDS_PODWAY_READS).map((v) => v.env));
  assert.equal([...read].sort(), [...known].sort());
});

test.run();
