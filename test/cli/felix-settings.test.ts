// Felix's settings in podway run (src/cli/felix-settings.ts): Felix's precedence (flag > environment
// > FelixConfiguration node.NAME > default > built-in), each field judged on its own (an invalid one
// ignored for the lower layer's value, named, counted once while it lasts), what changes between
// two resolutions; and the YAML file datastore giving this node's two resources to the model
// (snapshot.ts, route-calc.ts felixLayersOf), a duplicate name refused. The e2e side (embedded and
// etcd, in force in the kernel, live) is e2e/felix-config.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { FelixConfigTracker, invalidFieldLine, resolveFelix } from '../../src/cli/felix-settings';
import { parseClusterYaml } from '../../src/control/snapshot';
import { felixLayersOf } from '../../src/control/route-calc';

const NODE = 'n1';

test('precedence: flag > environment > node.NAME > default > built-in, with the source of each', () => {
  const r = resolveFelix(
    { values: { allowIpipFromPods: true, endpointToHost: 'accept' }, from: { allowIpipFromPods: '--allow-ipip-from-pods', endpointToHost: '$FELIX_DEFAULTENDPOINTTOHOSTACTION' } },
    {
      default: { logSeverityScreen: 'Warning', natOutgoingExclusions: 'IPPoolsAndHostIPs', defaultEndpointToHostAction: 'Drop', allowIPIPPacketsFromWorkloads: false },
      node: { natOutgoingExclusions: 'ipPoolsOnly', allowIPIPPacketsFromWorkloads: 'false' },
    },
    NODE,
  );
  assert.equal(r.settings, { logLevel: 'warn', natOutgoingExclusions: 'IPPoolsOnly', endpointToHost: 'accept', allowVxlanFromPods: false, allowIpipFromPods: true });
  assert.equal(r.source, {
    logLevel: 'FelixConfiguration default',
    natOutgoingExclusions: 'FelixConfiguration node.n1',
    endpointToHost: '$FELIX_DEFAULTENDPOINTTOHOSTACTION',
    allowVxlanFromPods: 'built-in default',
    allowIpipFromPods: '--allow-ipip-from-pods',
  });
  assert.equal(r.invalid, []);
  // Felix's Return is accept here, as for the variable; booleans as JSON or Felix's words
  const b = resolveFelix({ values: {}, from: {} }, { default: { defaultEndpointToHostAction: 'Return', allowVXLANPacketsFromWorkloads: 'yes' }, node: null }, NODE);
  assert.is(b.settings.endpointToHost, 'accept');
  assert.is(b.settings.allowVxlanFromPods, true);
  // none at all: podway's built-in defaults (accept, as calico.yaml sets; Felix's own is Drop)
  assert.equal(resolveFelix({ values: {}, from: {} }, undefined, NODE).settings, { logLevel: 'info', natOutgoingExclusions: 'IPPoolsOnly', endpointToHost: 'accept', allowVxlanFromPods: false, allowIpipFromPods: false });
});

test('an invalid field is ignored for the lower layer\'s value, named; the resource\'s other fields still apply', () => {
  const r = resolveFelix({ values: {}, from: {} }, {
    default: { natOutgoingExclusions: 'IPPoolsAndHostIPs', allowVXLANPacketsFromWorkloads: 'maybe' },
    node: { natOutgoingExclusions: 'Bogus', logSeverityScreen: 'Error', defaultEndpointToHostAction: 7 },
  }, NODE);
  assert.is(r.settings.natOutgoingExclusions, 'IPPoolsAndHostIPs', 'default\'s, not the built-in (Felix would take its built-in default)');
  assert.is(r.source.natOutgoingExclusions, 'FelixConfiguration default');
  assert.is(r.settings.logLevel, 'error', 'the valid field of the same resource applies');
  assert.is(r.settings.endpointToHost, 'accept');
  assert.is(r.settings.allowVxlanFromPods, false);
  assert.equal(r.invalid.map((i) => `${i.resource} ${i.field} ${i.value} ${i.reason}`), [
    'node.n1 natOutgoingExclusions "Bogus" is not IPPoolsOnly or IPPoolsAndHostIPs',
    'node.n1 defaultEndpointToHostAction 7 is not a string',
    'default allowVXLANPacketsFromWorkloads "maybe" is not a boolean (true or false)',
  ]);
  // an invalid value under a higher layer that wins is still said
  const over = resolveFelix({ values: { natOutgoingExclusions: 'IPPoolsOnly' }, from: { natOutgoingExclusions: '--nat-outgoing-exclusions' } }, { default: { natOutgoingExclusions: 'x' }, node: null }, NODE);
  assert.is(over.invalid.length, 1);
});

test('the tracker: changes between resolutions, invalid fields counted once while they last, start-only fields said', () => {
  const t = new FelixConfigTracker({ values: {}, from: {} }, NODE);
  let u = t.update({ default: { natOutgoingExclusions: 'IPPoolsAndHostIPs', prometheusMetricsPort: 9095 }, node: null }, 'datastore');
  assert.equal(u.changes.map((c) => `${c.field} ${c.was} -> ${c.now} (${c.source})`), ['natOutgoingExclusions IPPoolsOnly -> IPPoolsAndHostIPs (FelixConfiguration default)']);
  assert.equal(u.newNotApplied, ['default: prometheusMetricsPort 9095']);
  u = t.update({ default: { natOutgoingExclusions: 'IPPoolsAndHostIPs', prometheusMetricsPort: 9095 }, node: { natOutgoingExclusions: 'nope', defaultEndpointToHostAction: 'Drop' } }, 'datastore');
  assert.equal(u.changes.map((c) => `${c.field} ${c.was} -> ${c.now}`), ['defaultEndpointToHostAction Accept -> Drop']);
  assert.equal(u.newNotApplied, [], 'said once');
  assert.is(u.newInvalid.length, 1);
  assert.is(invalidFieldLine(u.newInvalid[0]!, t), 'FelixConfiguration node.n1: field natOutgoingExclusions: "nope" is not IPPoolsOnly or IPPoolsAndHostIPs: ignored; IPPoolsAndHostIPs from FelixConfiguration default in force');
  // the same invalid value again: not new, not counted again
  u = t.update({ default: { natOutgoingExclusions: 'IPPoolsAndHostIPs' }, node: { natOutgoingExclusions: 'nope', defaultEndpointToHostAction: 'Drop' } }, 'datastore');
  assert.is(u.newInvalid.length, 0);
  assert.is(t.status().invalidSeen, 1);
  // node.n1 deleted: back to default's
  u = t.update({ default: { natOutgoingExclusions: 'IPPoolsAndHostIPs' }, node: null }, 'datastore');
  assert.equal(u.changes.map((c) => `${c.field} ${c.was} -> ${c.now} (${c.source})`), ['defaultEndpointToHostAction Drop -> Accept (built-in default)']);
  const s = t.status();
  assert.equal(s.invalid, []);
  assert.is(s.invalidSeen, 1);
  assert.is(s.origin, 'datastore');
  assert.equal(s.settings.find((x) => x.field === 'natOutgoingExclusions'), { field: 'natOutgoingExclusions', value: 'IPPoolsAndHostIPs', source: 'FelixConfiguration default' });
  // both deleted: the built-in default
  u = t.update(undefined, 'datastore');
  assert.equal(u.changes.map((c) => c.field), ['natOutgoingExclusions']);
});

test('a YAML file datastore gives this node\'s FelixConfigurations (default, node.NAME) and no other\'s; one name twice is refused', () => {
  const doc = (name: string, spec: string) => `apiVersion: projectcalico.org/v3\nkind: FelixConfiguration\nmetadata: {name: ${name}}\nspec: ${spec}`;
  const snap = parseClusterYaml([doc('default', '{natOutgoingExclusions: IPPoolsAndHostIPs}'), doc('node.n1', '{logSeverityScreen: Debug}'), doc('node.n2', '{logSeverityScreen: Error}')].join('\n---\n'), 'c.yaml');
  assert.equal(felixLayersOf(snap, 'n1'), { default: { natOutgoingExclusions: 'IPPoolsAndHostIPs' }, node: { logSeverityScreen: 'Debug' } });
  assert.equal(felixLayersOf(snap, 'n3'), { default: { natOutgoingExclusions: 'IPPoolsAndHostIPs' }, node: null });
  assert.throws(() => parseClusterYaml([doc('default', '{}'), doc('default', '{logSeverityScreen: Debug}')].join('\n---\n'), 'c.yaml'), /duplicate FelixConfiguration "default"/);
});

test.run();
