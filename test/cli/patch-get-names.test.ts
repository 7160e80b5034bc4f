// calicoctl's verbs a migrating operator types: `patch KIND NAME -p JSON` (a JSON merge patch,
// validated as apply validates a file, written only against the revision it read), `get KIND NAME
// NAME...` (a list in the order given), `get -f FILE` (what the file names, read from the
// datastore). On an embedded store and a real etcd. Without them: "unknown command 'patch'" and
// exit 2 for several names or -f.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { KvStore } from '../../src/control/kv/kv';
import { mergePatch } from '../../src/cli/resources-cmd';
import { podwayInProcess as podway, okInProcess as ok, tempDir, Target, embeddedTarget, etcdTarget, stopEtcd } from './cli-kit';

const RES = '/calico/resources/v3/projectcalico.org/';
const POOLS = [
  'apiVersion: projectcalico.org/v3', 'kind: IPPool', 'metadata: {name: p1}', 'spec: {cidr: 10.55.0.0/16, vxlanMode: Always}', '---',
  'apiVersion: projectcalico.org/v3', 'kind: IPPool', 'metadata: {name: p2}', 'spec: {cidr: 10.56.0.0/16}', '---',
  'apiVersion: projectcalico.org/v3', 'kind: NetworkPolicy', 'metadata: {name: web, namespace: prod}', 'spec: {selector: all()}', '',
].join('\n');

const unit = suite('mergePatch (RFC 7386)');
unit('objects merged, null removes, lists and scalars replaced', () => {
  assert.equal(mergePatch({ a: 1, b: { c: 2, d: [1, 2] } }, { b: { c: null, d: [3], e: 'x' }, f: true }), { a: 1, b: { d: [3], e: 'x' }, f: true });
  assert.equal(mergePatch({ a: 1 }, [1]), [1]);
});
unit.run();

function cliSuite(target: Target) {
  const test = suite(`patch and get by names on ${target.name}`);
  let spec = '';
  let kv: KvStore;
  let work = '';
  test.before.each(async () => {
    ({ spec, kv } = await target.open());
    work = tempDir('podway-patch-');
    writeFileSync(path.join(work, 'all.yaml'), POOLS);
    await ok(['apply', '-f', path.join(work, 'all.yaml'), '--datastore', spec]);
  });
  test.after.each(async () => {
    await kv.close();
  });
  const ds = () => ['--datastore', spec];

  test('patch merges into the stored resource, keeps uid, validates, and refuses a stale or bad patch', async () => {
    const before = JSON.parse((await kv.get(`${RES}ippools/p1`))!.value);
    assert.is(await ok(['patch', 'ippool', 'p1', '-p', '{"spec":{"natOutgoing":true,"vxlanMode":null}}', ...ds()]), "Successfully patched 1 'IPPool' resource\n");
    const after = JSON.parse((await kv.get(`${RES}ippools/p1`))!.value);
    assert.is(after.spec.natOutgoing, true);
    assert.is(after.spec.vxlanMode, 'Never', 'a removed field takes its default, as apply gives it');
    assert.is(after.spec.cidr, '10.55.0.0/16');
    assert.is(after.metadata.uid, before.metadata.uid);
    const bad = await podway(['patch', 'ippool', 'p1', '-p', '{"spec":{"bogusField":1}}', ...ds()]);
    assert.is(bad.code, 1);
    assert.match(bad.err, /spec\.bogusField: unknown field/);
    const rename = await podway(['patch', 'ippool', 'p1', '-p', '{"metadata":{"name":"p9"}}', ...ds()]);
    assert.is(rename.code, 2);
    assert.match(rename.err, /cannot be patched/);
    const json = await podway(['patch', 'ippool', 'p1', '-p', 'nope', ...ds()]);
    assert.is(json.code, 2);
    assert.match(json.err, /--patch is not valid JSON/);
    const missing = await podway(['patch', 'ippool', 'nope', '-p', '{}', ...ds()]);
    assert.is(missing.code, 1);
    assert.match(missing.err, /resource does not exist: IPPool\(nope\)/);
    const np = await podway(['patch', 'networkpolicy', 'web', '-n', 'prod', '-p', '{"spec":{"order":10}}', ...ds()]);
    assert.is(np.code, 0, np.err);
    assert.match(np.err, /does NOT enforce network policy/);
    assert.is(JSON.parse((await kv.get(`${RES}networkpolicies/prod/web`))!.value).spec.order, 10);
  });

  test('get NAME NAME lists them in the order given; a missing one fails; get -f reads what a file names', async () => {
    assert.is(await ok(['get', 'ippool', 'p2', 'p1', ...ds()]), 'NAME   CIDR           SELECTOR\np2     10.56.0.0/16   all()\np1     10.55.0.0/16   all()\n');
    const list = JSON.parse(await ok(['get', 'ippools', 'p1', 'p2', '-o', 'json', ...ds()]));
    assert.is(list.kind, 'IPPoolList');
    assert.equal(list.items.map((i: { metadata: { name: string } }) => i.metadata.name), ['p1', 'p2']);
    const missing = await podway(['get', 'ippool', 'p1', 'nope', ...ds()]);
    assert.is(missing.code, 1);
    assert.match(missing.err, /resource does not exist: IPPool\(nope\)/);
    writeFileSync(path.join(work, 'names.yaml'), 'apiVersion: projectcalico.org/v3\nkind: IPPool\nmetadata: {name: p2}\n---\napiVersion: projectcalico.org/v3\nkind: NetworkPolicy\nmetadata: {name: web, namespace: prod}\n');
    assert.is(await ok(['get', '-f', path.join(work, 'names.yaml'), ...ds()]), 'NAME   CIDR           SELECTOR\np2     10.56.0.0/16   all()\nNAME\nweb\n');
    const both = await podway(['get', 'ippool', '-f', path.join(work, 'names.yaml'), ...ds()]);
    assert.is(both.code, 2);
  });

  return test;
}

cliSuite(embeddedTarget).run();
const etcdSuite = cliSuite(etcdTarget);
etcdSuite.after(stopEtcd);
etcdSuite.run();
