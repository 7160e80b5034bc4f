// Calico's network policy kinds (control/policy-kinds.ts) through the calicoctl-shaped CLI, on an
// embedded store and a real etcd: a policy hand-put in Calico's exact etcd format (as calicoctl
// stores it) is listed by `podway get`; `podway apply` of one stores it in Calico's layout and says
// on stderr that podway does not enforce it; `delete` removes it. A YAML file datastore holding a
// policy names it in the snapshot (`podway run` says it is there). Without the kinds every `get`
// exits 2 "unknown resource type" and nothing warns.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { KvStore } from '../../src/control/kv/kv';
import { parseClusterYaml } from '../../src/control/snapshot';
import { summarizePolicies, unenforcedPolicyText } from '../../src/control/policy-kinds';
import { podwayInProcess as podway, okInProcess as ok, tempDir, Target, embeddedTarget, etcdTarget, stopEtcd } from './cli-kit';

const RES = '/calico/resources/v3/projectcalico.org/';

/** A GlobalNetworkPolicy as calicoctl stores it (libcalico-go's etcdv3 JSON: no resourceVersion). */
const GNP = {
  kind: 'GlobalNetworkPolicy',
  apiVersion: 'projectcalico.org/v3',
  metadata: { name: 'default.deny-all', uid: '0b6bd3a4-0c9f-4b3a-8c9e-2f0e5f7b6a11', creationTimestamp: '2026-12-01T10:00:00Z' },
  spec: { tier: 'default', order: 100, selector: 'all()', types: ['Ingress', 'Egress'] },
};

function cliSuite(target: Target) {
  const test = suite(`policy kinds on ${target.name}`);
  let spec = '';
  let kv: KvStore;
  let work = '';
  test.before.each(async () => {
    ({ spec, kv } = await target.open());
    work = tempDir('podway-policy-');
  });
  test.after.each(async () => {
    await kv.close();
  });
  const ds = () => ['--datastore', spec];

  test('a policy put in Calico\'s format is listed; apply says it is not enforced; delete removes it', async () => {
    await kv.create(`${RES}globalnetworkpolicies/default.deny-all`, JSON.stringify(GNP));
    assert.is(await ok(['get', 'globalnetworkpolicy', ...ds()]), 'NAME\ndefault.deny-all\n');
    assert.is(await ok(['get', 'gnp', ...ds()]), 'NAME\ndefault.deny-all\n', 'calicoctl\'s short name');
    const one = JSON.parse(await ok(['get', 'gnp', 'default.deny-all', '-o', 'json', ...ds()]));
    assert.equal(one.spec, GNP.spec, 'the spec as Calico stored it');

    writeFileSync(path.join(work, 'np.yaml'), [
      'apiVersion: projectcalico.org/v3', 'kind: NetworkPolicy', 'metadata: {name: allow-web, namespace: prod}',
      'spec: {selector: "app == \'web\'", ingress: [{action: Allow, protocol: TCP, destination: {ports: [80]}}]}', '',
    ].join('\n'));
    const applied = await podway(['apply', '-f', path.join(work, 'np.yaml'), ...ds()]);
    assert.is(applied.code, 0, applied.err);
    assert.match(applied.err, /NetworkPolicy prod\/allow-web is stored for Calico's nodes; podway does NOT enforce network policy/);
    const stored = JSON.parse((await kv.get(`${RES}networkpolicies/prod/allow-web`))!.value);
    assert.is(stored.kind, 'NetworkPolicy');
    assert.is(stored.metadata.namespace, 'prod');
    assert.equal(stored.spec.ingress[0].destination.ports, [80]);
    assert.is(await ok(['get', 'networkpolicy', '-A', ...ds()]), 'NAMESPACE   NAME\nprod        allow-web\n');

    // A HostEndpoint with its node shown, as calicoctl's table does; a GlobalNetworkSet stored without a note.
    writeFileSync(path.join(work, 'hep.yaml'), [
      'apiVersion: projectcalico.org/v3', 'kind: HostEndpoint', 'metadata: {name: node1-eth0}', 'spec: {node: node1, interfaceName: eth0}', '---',
      'apiVersion: projectcalico.org/v3', 'kind: GlobalNetworkSet', 'metadata: {name: outside}', 'spec: {nets: [198.51.100.0/24]}', '',
    ].join('\n'));
    const hep = await podway(['apply', '-f', path.join(work, 'hep.yaml'), ...ds()]);
    assert.is(hep.code, 0, hep.err);
    assert.match(hep.err, /HostEndpoint node1-eth0 is stored/);
    assert.not.match(hep.err, /GlobalNetworkSet/);
    assert.is(await ok(['get', 'hep', ...ds()]), 'NAME         NODE\nnode1-eth0   node1\n');

    await ok(['delete', 'gnp', 'default.deny-all', ...ds()]);
    assert.is(await kv.get(`${RES}globalnetworkpolicies/default.deny-all`), null);
  });

  test('KubeControllersConfiguration: stored in Calico\'s layout with a note that podway has no kube-controllers; get, delete', async () => {
    writeFileSync(path.join(work, 'kcc.yaml'), [
      'apiVersion: projectcalico.org/v3', 'kind: KubeControllersConfiguration', 'metadata: {name: default}',
      'spec: {logSeverityScreen: Info, healthChecks: Enabled, controllers: {node: {reconcilerPeriod: 5m, syncLabels: Enabled}}}', '',
    ].join('\n'));
    const r = await podway(['apply', '-f', path.join(work, 'kcc.yaml'), ...ds()]);
    assert.is(r.code, 0, r.err);
    assert.match(r.err, "KubeControllersConfiguration default is stored for Calico's kube-controllers; podway has no kube-controllers");
    const stored = JSON.parse((await kv.get(`${RES}kubecontrollersconfigurations/default`))!.value);
    assert.equal(stored.spec.controllers, { node: { reconcilerPeriod: '5m', syncLabels: 'Enabled' } });
    assert.is(await ok(['get', 'kubecontrollersconfig', ...ds()]), 'NAME\ndefault\n', 'calicoctl\'s alias');
    await ok(['delete', 'kubecontrollersconfiguration', 'default', ...ds()]);
    assert.is(await kv.get(`${RES}kubecontrollersconfigurations/default`), null);
  });

  test('a policy without a spec mapping is refused naming the field', async () => {
    writeFileSync(path.join(work, 'bad.yaml'), 'apiVersion: projectcalico.org/v3\nkind: GlobalNetworkPolicy\nmetadata: {name: Bad}\nspec: [1]\n');
    const r = await podway(['apply', '-f', path.join(work, 'bad.yaml'), ...ds()]);
    assert.is(r.code, 1);
    assert.match(r.err, /metadata\.name/);
  });

  return test;
}

const file = suite('policy kinds in a YAML file datastore');
file('named in the snapshot; the operator\'s line counts the enforcing kinds only', () => {
  const snap = parseClusterYaml([
    'apiVersion: projectcalico.org/v3', 'kind: GlobalNetworkPolicy', 'metadata: {name: default.deny-all}', 'spec: {selector: all()}', '---',
    'apiVersion: projectcalico.org/v3', 'kind: NetworkPolicy', 'metadata: {name: web}', 'spec: {selector: all()}', '---',
    'apiVersion: projectcalico.org/v3', 'kind: NetworkSet', 'metadata: {name: set1, namespace: prod}', 'spec: {}', '',
  ].join('\n'), 'cluster.yaml');
  assert.equal(snap.policies, [{ kind: 'GlobalNetworkPolicy', name: 'default.deny-all' }, { kind: 'NetworkPolicy', name: 'web', namespace: 'default' }]);
  const text = unenforcedPolicyText(summarizePolicies(snap.policies!));
  assert.match(text, /^1 GlobalNetworkPolicy, 1 NetworkPolicy in the datastore \(GlobalNetworkPolicy default\.deny-all, NetworkPolicy default\/web\): podway does NOT enforce network policy/);
  assert.is(unenforcedPolicyText(summarizePolicies([])), '');
});
file.run();

cliSuite(embeddedTarget).run();
const etcdSuite = cliSuite(etcdTarget);
etcdSuite.after(stopEtcd);
etcdSuite.run();
