// BGPConfiguration node.NAME with `podway apply` and `podway get`: stored as Calico stores it; the
// fields calico-node reads from `default` only (asNumber, nodeToNodeMeshEnabled, bindMode, ...) get
// a note saying they are ignored there, as a name confd never reads does; the per-node fields pass
// quietly. `get` prints calicoctl's columns: an unset MESHENABLED or ASNUMBER is "-".
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { parse as parseYaml } from 'yaml';
import { podwayInProcess as podway, tempDir, embeddedTarget } from './cli-kit';

const doc = (name: string, spec: string) => `apiVersion: projectcalico.org/v3\nkind: BGPConfiguration\nmetadata: {name: ${name}}\nspec: ${spec}\n`;

test('apply: node.NAME\'s default-only fields noted as ignored, per-node ones quiet, another name noted; get shows calicoctl\'s columns', async () => {
  const { spec, kv } = await embeddedTarget.open();
  const work = tempDir('podway-bgpconfig-node-');
  try {
    const file = path.join(work, 'bgp.yaml');
    writeFileSync(file, [
      doc('default', '{asNumber: 64600, nodeToNodeMeshEnabled: true, listenPort: 1179}'),
      doc('node.n1', '{listenPort: 1180, logSeverityScreen: Debug}'),
      doc('node.n2', '{listenPort: 1181, asNumber: 65000, nodeToNodeMeshEnabled: false}'),
      doc('rack-a', '{listenPort: 1182}'),
    ].join('---\n'));
    const r = await podway(['apply', '-f', file, '--datastore', spec]);
    assert.is(r.code, 0, r.err);
    assert.is(r.out, "Successfully applied 4 'BGPConfiguration' resource(s)\n");
    const notes = r.err.split('\n').filter((l) => l.startsWith('podway: note: BGPConfiguration'));
    assert.equal(notes, [
      'podway: note: BGPConfiguration node.n2: spec.nodeToNodeMeshEnabled, spec.asNumber ignored, as by calico-node: read from BGPConfiguration default only (per node: listenPort, logSeverityScreen, prefixAdvertisements, communities; a node\'s own AS is its Node\'s spec.bgp.asNumber) (docs/bgp.md "Per-node BGPConfiguration")',
      'podway: note: BGPConfiguration rack-a is stored, and has no effect: calico-node (and podway run) read only BGPConfiguration default and node.<node name> (docs/bgp.md "Per-node BGPConfiguration")',
    ], r.err);
    const table = await podway(['get', 'bgpconfiguration', '--datastore', spec]);
    assert.is(table.code, 0, table.err);
    assert.is(table.out, [
      'NAME      LOGSEVERITY   MESHENABLED   ASNUMBER',
      'default                 true          64600',
      'node.n1   Debug         -             -',
      'node.n2                 false         65000',
      'rack-a                  -             -',
      '',
    ].join('\n'));
    const one = await podway(['get', 'bgpconfiguration', 'node.n1', '-o', 'yaml', '--datastore', spec]);
    assert.is(one.code, 0, one.err);
    assert.equal((parseYaml(one.out) as { spec: unknown }).spec, { listenPort: 1180, logSeverityScreen: 'Debug' });
  } finally {
    await kv.close();
  }
});

test.run();
