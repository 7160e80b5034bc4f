// Felix's settings in podway run (src/cli/felix-settings.ts): Felix's precedence (flag > environment
// > FelixConfiguration node.NAME > default > built-in), each field judged on its own (an invalid one
// ignored for the lower layer's value, named, counted once while it lasts), what changes between
// two resolutions; and the YAML file datastore giving this node's two resources to the model
// (snapshot.ts, route-calc.ts felixLayersOf), a duplicate name refused. The e2e side (embedded and
// etcd, in force in the kernel, live) is e2e/felix-config.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { FelixConfigTracker, invalidFieldLine, resolveFelix, unhonouredLine } from '../../src/cli/felix-settings';
import { felixStatusLines } from '../../src/cli/main';
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

test('the tunnel wire settings (vxlanPort, vxlanVNI, vxlanMTU, vxlanMTUV6, ipipMTU): a value podway does not use is named, never silent', () => {
  // calicoctl's form, as the Calico-migration review put it by hand; podway's own values are fine
  const layers = { default: { vxlanPort: 4789, vxlanVNI: 4096, vxlanMTU: 0, ipipMTU: 1400 }, node: { vxlanPort: 8472, vxlanVNI: 1, vxlanMTU: 1300, vxlanMTUV6: 'x' } };
  const env = { FELIX_VXLANPORT: '8472', FELIX_VXLANVNI: '4096', FELIX_VXLANMTU: '' };
  const r = resolveFelix({ values: {}, from: {}, wireEnv: env }, layers, NODE);
  assert.equal(r.unhonoured.map(unhonouredLine), [
    '$FELIX_VXLANPORT: field vxlanPort: "8472" is not honoured: podway\'s VXLAN uses UDP port 4789; a Calico node using 8472 and this node cannot reach each other\'s pods',
    'FelixConfiguration node.n1: field vxlanPort: 8472 is not honoured: podway\'s VXLAN uses UDP port 4789; a Calico node using 8472 and this node cannot reach each other\'s pods',
    'FelixConfiguration node.n1: field vxlanVNI: 1 is not honoured: podway\'s VXLAN uses VNI 4096; a Calico node using 1 and this node cannot reach each other\'s pods',
    'FelixConfiguration node.n1: field vxlanMTU: 1300 is not honoured: podway computes its IPv4 VXLAN MTU from the host interface\'s (MTU - 50)',
    'FelixConfiguration node.n1: field vxlanMTUV6: "x" is not a number 0..65535: ignored (podway computes its IPv6 VXLAN MTU from the host interface\'s (MTU - 70))',
    'FelixConfiguration default: field ipipMTU: 1400 is not honoured: podway computes its IPIP MTU from the host interface\'s (MTU - 20)',
  ]);
  // the tracker: each said once while it lasts (the log's error), listed by status until fixed
  const t = new FelixConfigTracker({ values: {}, from: {}, wireEnv: {} }, NODE);
  let u = t.update(layers, 'datastore');
  assert.equal(u.newUnhonoured.map((x) => `${x.resource} ${x.field}`), ['node.n1 vxlanPort', 'node.n1 vxlanVNI', 'node.n1 vxlanMTU', 'node.n1 vxlanMTUV6', 'default ipipMTU']);
  u = t.update({ ...layers, node: { ...layers.node, vxlanVNI: 4096 } }, 'datastore');
  assert.equal(u.newUnhonoured, [], 'said once');
  const lines = felixStatusLines(t.status());
  assert.ok(lines.includes('felix settings: FelixConfiguration node.n1: field vxlanPort: 8472 is not honoured: podway\'s VXLAN uses UDP port 4789; a Calico node using 8472 and this node cannot reach each other\'s pods'), lines.join('\n'));
  assert.not.ok(lines.some((l) => l.includes('vxlanVNI')), 'the fixed VNI no longer listed');
  u = t.update({ default: null, node: { vxlanVNI: 7 } }, 'datastore');
  assert.equal(u.newUnhonoured.map(unhonouredLine), ['FelixConfiguration node.n1: field vxlanVNI: 7 is not honoured: podway\'s VXLAN uses VNI 4096; a Calico node using 7 and this node cannot reach each other\'s pods']);
  assert.is(t.status().unhonoured.length, 1);
  // none given, or podway's own values: nothing
  assert.equal(resolveFelix({ values: {}, from: {}, wireEnv: { FELIX_VXLANPORT: '4789', FELIX_IPINIPMTU: '0' } }, undefined, NODE).unhonoured, []);
});

test('a YAML file datastore gives this node\'s FelixConfigurations (default, node.NAME) and no other\'s; one name twice is refused', () => {
  const doc = (name: string, spec: string) => `apiVersion: projectcalico.org/v3\nkind: FelixConfiguration\nmetadata: {name: ${name}}\nspec: ${spec}`;
  const snap = parseClusterYaml([doc('default', '{natOutgoingExclusions: IPPoolsAndHostIPs}'), doc('node.n1', '{logSeverityScreen: Debug}'), doc('node.n2', '{logSeverityScreen: Error}')].join('\n---\n'), 'c.yaml');
  assert.equal(felixLayersOf(snap, 'n1'), { default: { natOutgoingExclusions: 'IPPoolsAndHostIPs' }, node: { logSeverityScreen: 'Debug' } });
  assert.equal(felixLayersOf(snap, 'n3'), { default: { natOutgoingExclusions: 'IPPoolsAndHostIPs' }, node: null });
  assert.throws(() => parseClusterYaml([doc('default', '{}'), doc('default', '{logSeverityScreen: Debug}')].join('\n---\n'), 'c.yaml'), /duplicate FelixConfiguration "default"/);
});

test.run();
