// Felix's settings in podway run (src/cli/felix-settings.ts): Felix's precedence (flag > environment
// > FelixConfiguration node.NAME > default > built-in), each field judged on its own (an invalid one
// ignored for the lower layer's value, named, counted once while it lasts), what changes between
// two resolutions; and the YAML file datastore giving this node's two resources to the model
// (snapshot.ts, route-calc.ts felixLayersOf), a duplicate name refused. The e2e side (embedded and
// etcd, in force in the kernel, live) is e2e/felix-config.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { FelixConfigTracker, invalidFieldLine, resolveFelix, unhonouredLine, vxlanPendingLine } from '../../src/cli/felix-settings';
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

test('vxlanPort and vxlanVNI: FELIX_* > node.NAME > default > 4789/4096, each with its source; invalid ones named and ignored; a change after the start said to take effect at the next start', () => {
  const r = resolveFelix({ values: {}, from: {}, wireEnv: { FELIX_VXLANVNI: '7' } }, { default: { vxlanPort: 8472, vxlanVNI: 1 }, node: { vxlanPort: 0, vxlanVNI: 16777216 } }, NODE);
  assert.equal(r.vxlan, { vxlanPort: 8472, vxlanVNI: 7 });
  assert.equal(r.vxlanSource, { vxlanPort: 'FelixConfiguration default', vxlanVNI: '$FELIX_VXLANVNI' });
  assert.equal(r.invalid.map((i) => `${i.resource} ${i.field} ${i.value} ${i.reason}`), [
    'node.n1 vxlanPort 0 is not an integer 1..65535',
    'node.n1 vxlanVNI 16777216 is not an integer 0..16777215',
  ]);
  assert.equal(r.unhonoured, [], 'no longer "not honoured"');
  for (const bad of [65536, 1.5, '84x', -1, true]) assert.is(resolveFelix({ values: {}, from: {} }, { default: { vxlanPort: bad }, node: null }, NODE).vxlan.vxlanPort, 4789, `vxlanPort ${bad}: ignored`);
  assert.is(resolveFelix({ values: {}, from: {}, wireEnv: { FELIX_VXLANPORT: 'x' } }, undefined, NODE).invalid[0]?.resource, '$FELIX_VXLANPORT');
  assert.equal(resolveFelix({ values: {}, from: {} }, undefined, NODE).vxlan, { vxlanPort: 4789, vxlanVNI: 4096 });
  // the tracker: the values at the start stay in force; a later change is pending, said once
  const t = new FelixConfigTracker({ values: {}, from: {}, wireEnv: {} }, NODE);
  t.update({ default: { vxlanPort: 8472, vxlanVNI: 1 }, node: null }, 'datastore');
  assert.equal(t.vxlanAtStart(), { vxlanPort: 8472, vxlanVNI: 1 });
  let u = t.update({ default: { vxlanPort: 4790, vxlanVNI: 1 }, node: null }, 'datastore');
  assert.equal(u.newVxlanPending.map(vxlanPendingLine), ['vxlanPort 4790 (from FelixConfiguration default) takes effect at the next podway run start (Felix restarts itself on a change of it); 8472 in force until then: Calico nodes already using 4790 and this node cannot reach each other\'s pods meanwhile']);
  u = t.update({ default: { vxlanPort: 4790, vxlanVNI: 1, logSeverityScreen: 'Debug' }, node: null }, 'datastore');
  assert.equal(u.newVxlanPending, [], 'said once');
  const s = t.status();
  assert.equal(s.settings.filter((x) => x.field.startsWith('vxlan')), [{ field: 'vxlanPort', value: '8472', source: 'FelixConfiguration default' }, { field: 'vxlanVNI', value: '1', source: 'FelixConfiguration default' }]);
  const lines = felixStatusLines(s);
  assert.ok(lines[0]!.includes('vxlanPort 8472 (FelixConfiguration default); vxlanVNI 1 (FelixConfiguration default)'), lines[0]);
  assert.ok(lines.includes('felix settings: vxlanPort 4790 (from FelixConfiguration default) takes effect at the next podway run start (Felix restarts itself on a change of it); 8472 in force until then: Calico nodes already using 4790 and this node cannot reach each other\'s pods meanwhile'), lines.join('\n'));
  // back to the value in force: nothing pending
  t.update({ default: { vxlanPort: 8472, vxlanVNI: 1 }, node: null }, 'datastore');
  assert.equal(t.status().vxlanPending, []);
  // an invalid one: the log line names it and what is in force
  u = t.update({ default: { vxlanPort: 8472, vxlanVNI: 1 }, node: { vxlanVNI: 'one' } }, 'datastore');
  assert.equal(u.newInvalid.map((i) => invalidFieldLine(i, t)), ['FelixConfiguration node.n1: field vxlanVNI: "one" is not an integer 0..16777215: ignored; 1 from FelixConfiguration default in force']);
});

test('the tunnel MTU settings (vxlanMTU, vxlanMTUV6, ipipMTU): a value podway does not use is named, never silent', () => {
  // calicoctl's form, as the Calico-migration review put it by hand; podway's own values are fine
  const layers = { default: { vxlanMTU: 0, ipipMTU: 1400 }, node: { vxlanMTU: 1300, vxlanMTUV6: 'x' } };
  const env = { FELIX_VXLANMTU: '' };
  const r = resolveFelix({ values: {}, from: {}, wireEnv: env }, layers, NODE);
  assert.equal(r.unhonoured.map(unhonouredLine), [
    'FelixConfiguration node.n1: field vxlanMTU: 1300 is not honoured: podway computes its IPv4 VXLAN MTU from the host interface\'s (MTU - 50)',
    'FelixConfiguration node.n1: field vxlanMTUV6: "x" is not a number 0..65535: ignored (podway computes its IPv6 VXLAN MTU from the host interface\'s (MTU - 70))',
    'FelixConfiguration default: field ipipMTU: 1400 is not honoured: podway computes its IPIP MTU from the host interface\'s (MTU - 20)',
  ]);
  // the tracker: each said once while it lasts (the log's error), listed by status until fixed
  const t = new FelixConfigTracker({ values: {}, from: {}, wireEnv: {} }, NODE);
  let u = t.update(layers, 'datastore');
  assert.equal(u.newUnhonoured.map((x) => `${x.resource} ${x.field}`), ['node.n1 vxlanMTU', 'node.n1 vxlanMTUV6', 'default ipipMTU']);
  u = t.update({ ...layers, node: { vxlanMTU: 1300 } }, 'datastore');
  assert.equal(u.newUnhonoured, [], 'said once');
  const lines = felixStatusLines(t.status());
  assert.ok(lines.includes('felix settings: FelixConfiguration node.n1: field vxlanMTU: 1300 is not honoured: podway computes its IPv4 VXLAN MTU from the host interface\'s (MTU - 50)'), lines.join('\n'));
  assert.not.ok(lines.some((l) => l.includes('vxlanMTUV6')), 'the fixed one no longer listed');
  // none given, or podway's own values: nothing
  assert.equal(resolveFelix({ values: {}, from: {}, wireEnv: { FELIX_IPINIPMTU: '0' } }, undefined, NODE).unhonoured, []);
});

test('a YAML file datastore gives this node\'s FelixConfigurations (default, node.NAME) and no other\'s; one name twice is refused', () => {
  const doc = (name: string, spec: string) => `apiVersion: projectcalico.org/v3\nkind: FelixConfiguration\nmetadata: {name: ${name}}\nspec: ${spec}`;
  const snap = parseClusterYaml([doc('default', '{natOutgoingExclusions: IPPoolsAndHostIPs}'), doc('node.n1', '{logSeverityScreen: Debug}'), doc('node.n2', '{logSeverityScreen: Error}')].join('\n---\n'), 'c.yaml');
  assert.equal(felixLayersOf(snap, 'n1'), { default: { natOutgoingExclusions: 'IPPoolsAndHostIPs' }, node: { logSeverityScreen: 'Debug' } });
  assert.equal(felixLayersOf(snap, 'n3'), { default: { natOutgoingExclusions: 'IPPoolsAndHostIPs' }, node: null });
  assert.throws(() => parseClusterYaml([doc('default', '{}'), doc('default', '{logSeverityScreen: Debug}')].join('\n---\n'), 'c.yaml'), /duplicate FelixConfiguration "default"/);
});

test.run();
