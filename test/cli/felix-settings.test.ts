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
import { resolveTunnelMtus } from '../../src/control/felix-mtu';

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
  assert.equal(r.settings, { logLevel: 'warn', natOutgoingExclusions: 'IPPoolsOnly', endpointToHost: 'accept', allowVxlanFromPods: false, allowIpipFromPods: true, vxlanMtu: 0, vxlanMtuV6: 0, ipipMtu: 0 });
  assert.equal(r.source, {
    logLevel: 'FelixConfiguration default',
    natOutgoingExclusions: 'FelixConfiguration node.n1',
    endpointToHost: '$FELIX_DEFAULTENDPOINTTOHOSTACTION',
    allowVxlanFromPods: 'built-in default',
    allowIpipFromPods: '--allow-ipip-from-pods',
    vxlanMtu: 'built-in default',
    vxlanMtuV6: 'built-in default',
    ipipMtu: 'built-in default',
  });
  assert.equal(r.invalid, []);
  // Felix's Return is accept here, as for the variable; booleans as JSON or Felix's words
  const b = resolveFelix({ values: {}, from: {} }, { default: { defaultEndpointToHostAction: 'Return', allowVXLANPacketsFromWorkloads: 'yes' }, node: null }, NODE);
  assert.is(b.settings.endpointToHost, 'accept');
  assert.is(b.settings.allowVxlanFromPods, true);
  // none at all: podway's built-in defaults (accept, as calico.yaml sets; Felix's own is Drop)
  assert.equal(resolveFelix({ values: {}, from: {} }, undefined, NODE).settings, { logLevel: 'info', natOutgoingExclusions: 'IPPoolsOnly', endpointToHost: 'accept', allowVxlanFromPods: false, allowIpipFromPods: false, vxlanMtu: 0, vxlanMtuV6: 0, ipipMtu: 0 });
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
  // the environment's comes checked (main.ts: exit 2, cli/usage-errors): one that does not parse is the caller's mistake
  assert.throws(() => resolveFelix({ values: {}, from: {}, wireEnv: { FELIX_VXLANPORT: 'x' } }, undefined, NODE), /^\$FELIX_VXLANPORT: "x" is not an integer 1\.\.65535 \(the caller checks it/);
  // '' is unset, as main.ts takes it
  assert.equal(resolveFelix({ values: {}, from: {}, wireEnv: { FELIX_VXLANPORT: ' ' } }, undefined, NODE).vxlanSource.vxlanPort, 'built-in default');
  assert.equal(resolveFelix({ values: {}, from: {} }, undefined, NODE).vxlan, { vxlanPort: 4789, vxlanVNI: 4096 });
  // before a model was read, the tracker has the environment's (podway run checks --nat-port-range against it at once)
  assert.equal(new FelixConfigTracker({ values: {}, from: {}, wireEnv: { FELIX_VXLANPORT: ' 4500' } }, NODE).vxlanNow(), { wire: { vxlanPort: 4500, vxlanVNI: 4096 }, source: { vxlanPort: '$FELIX_VXLANPORT', vxlanVNI: 'built-in default' } });
  // the tracker: the values at the start stay in force; a later change is pending, said once
  const t = new FelixConfigTracker({ values: {}, from: {}, wireEnv: {} }, NODE);
  t.update({ default: { vxlanPort: 8472, vxlanVNI: 1 }, node: null }, 'datastore');
  assert.equal(t.vxlanAtStart(), { vxlanPort: 8472, vxlanVNI: 1 });
  let u = t.update({ default: { vxlanPort: 4790, vxlanVNI: 1 }, node: null }, 'datastore');
  assert.equal(u.newVxlanPending.map(vxlanPendingLine), ['vxlanPort 4790 (from FelixConfiguration default) takes effect at the next podway run start (Felix restarts itself on a change of it); 8472 in force until then: Calico nodes already using 4790 and this node cannot reach each other\'s pods meanwhile']);
  u = t.update({ default: { vxlanPort: 4790, vxlanVNI: 1, logSeverityScreen: 'Debug' }, node: null }, 'datastore');
  assert.equal(u.newVxlanPending, [], 'said once');
  const s = t.status();
  assert.equal(s.settings.filter((x) => x.field === 'vxlanPort' || x.field === 'vxlanVNI'), [{ field: 'vxlanPort', value: '8472', source: 'FelixConfiguration default' }, { field: 'vxlanVNI', value: '1', source: 'FelixConfiguration default' }]);
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

test('the tunnel MTUs (vxlanMTU, vxlanMTUV6, ipipMTU) are settings: Felix\'s precedence, 0 auto, an invalid one named and ignored; the model\'s resolution agrees', () => {
  const layers = { default: { vxlanMTU: 1400, ipipMTU: 1300, vxlanMTUV6: 1350 }, node: { vxlanMTU: 0, ipipMTU: 67, vxlanMTUV6: 1279 } };
  const r = resolveFelix({ values: { vxlanMtuV6: 1400 }, from: { vxlanMtuV6: '$FELIX_VXLANMTUV6' } }, layers, NODE);
  // node.n1's 0 is auto and wins over default's 1400 (as Felix's higher layer); its invalid ones fall to default's
  assert.equal([r.settings.vxlanMtu, r.settings.ipipMtu, r.settings.vxlanMtuV6], [0, 1300, 1400]);
  assert.equal([r.source.vxlanMtu, r.source.ipipMtu, r.source.vxlanMtuV6], ['FelixConfiguration node.n1', 'FelixConfiguration default', '$FELIX_VXLANMTUV6']);
  assert.equal(r.invalid.map((i) => `${i.resource} ${i.field} ${i.value} ${i.reason}`), [
    'node.n1 vxlanMTUV6 1279 is not 0 (auto) or an MTU 1280..65535',
    'node.n1 ipipMTU 67 is not 0 (auto) or an MTU 68..65535',
  ]);
  assert.equal(r.unhonoured, [], 'no longer "not honoured"');
  // the model thread's (and the CNI plugin's) resolution of the same layers gives the same values
  assert.equal(resolveTunnelMtus(layers, { vxlan6: 1400 }), { vxlan: 0, ipip: 1300, vxlan6: 1400 });
  for (const bad of [-1, 65536, 1.5, 'abc', true, 40]) {
    assert.equal(resolveFelix({ values: {}, from: {} }, { default: { vxlanMTU: bad }, node: null }, NODE).invalid.map((i) => i.field), ['vxlanMTU'], String(bad));
    assert.equal(resolveTunnelMtus({ default: { vxlanMTU: bad }, node: null }), {}, String(bad));
  }
  // a change is a change of the settings (said "applied live"; the model brings the MTUs), status says 0 is auto
  const t = new FelixConfigTracker({ values: {}, from: {} }, NODE);
  const u = t.update({ default: { vxlanMTU: 1400 }, node: null }, 'datastore');
  assert.equal(u.changes.map((c) => `${c.field} ${c.was} -> ${c.now} (${c.source})`), ['vxlanMTU 0 (auto) -> 1400 (FelixConfiguration default)']);
  assert.equal(t.status().settings.find((x) => x.field === 'ipipMTU'), { field: 'ipipMTU', value: '0 (auto)', source: 'built-in default' });
  // a tunnel MTU above what the underlay takes: warned (once), listed by status
  assert.equal(t.setMtuWarnings(['w']), ['w']);
  assert.equal(t.setMtuWarnings(['w']), []);
  assert.ok(felixStatusLines(t.status()).includes('felix settings: WARNING w'));
});

test('a YAML file datastore gives this node\'s FelixConfigurations (default, node.NAME) and no other\'s; one name twice is refused', () => {
  const doc = (name: string, spec: string) => `apiVersion: projectcalico.org/v3\nkind: FelixConfiguration\nmetadata: {name: ${name}}\nspec: ${spec}`;
  const snap = parseClusterYaml([doc('default', '{natOutgoingExclusions: IPPoolsAndHostIPs}'), doc('node.n1', '{logSeverityScreen: Debug}'), doc('node.n2', '{logSeverityScreen: Error}')].join('\n---\n'), 'c.yaml');
  assert.equal(felixLayersOf(snap, 'n1'), { default: { natOutgoingExclusions: 'IPPoolsAndHostIPs' }, node: { logSeverityScreen: 'Debug' } });
  assert.equal(felixLayersOf(snap, 'n3'), { default: { natOutgoingExclusions: 'IPPoolsAndHostIPs' }, node: null });
  assert.throws(() => parseClusterYaml([doc('default', '{}'), doc('default', '{logSeverityScreen: Debug}')].join('\n---\n'), 'c.yaml'), /duplicate FelixConfiguration "default"/);
});

test.run();
