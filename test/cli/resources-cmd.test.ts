// `podway apply|create|replace|delete|get` as a user runs them: `node bin/podway.js ...` (built by
// `npm run build:ts`) against an embedded store in a temp dir and against a real etcd. Each command
// path that a process shows (exit status, the error line, the environment, the process ending
// with its datastore closed) runs as a real process at least once per datastore (spawned/okSpawned);
// the other calls run the same main() in this process (cli-kit's podwayInProcess), which also
// fails if a command leaves anything that would keep a process alive. The values
// written are compared field by field (and in Go's key order) with hand-written Calico fixtures.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { parse as parseYaml } from 'yaml';
import { KvStore } from '../../src/control/kv/kv';
import { applyResource } from '../../src/control/v3-store';
import { podwayInProcess as podway, okInProcess as ok, podway as spawned, ok as okSpawned, tempDir, Target, embeddedTarget, etcdTarget, stopEtcd, ROOT } from './cli-kit';

const FIXTURES = path.join(ROOT, 'test', 'fixtures', 'calico-v3');
const CLUSTER = path.join(FIXTURES, 'cluster.yaml');
const RES = '/calico/resources/v3/projectcalico.org/';




const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
const RFC3339 = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$/;

/** Compares a stored value with a fixture: same keys in the same order at every level, same leaves. */
function assertSameShape(actual: unknown, expected: unknown, where = '$'): void {
  if (expected === '<uuid>') return assert.ok(typeof actual === 'string' && UUID.test(actual), `${where}: ${JSON.stringify(actual)} is not a UUID`);
  if (expected === '<rfc3339>') return assert.ok(typeof actual === 'string' && RFC3339.test(actual), `${where}: ${JSON.stringify(actual)} is not RFC 3339`);
  if (Array.isArray(expected)) {
    assert.ok(Array.isArray(actual), `${where}: expected a list, got ${JSON.stringify(actual)}`);
    assert.is((actual as unknown[]).length, expected.length, `${where}: length`);
    expected.forEach((e, i) => assertSameShape((actual as unknown[])[i], e, `${where}[${i}]`));
    return;
  }
  if (typeof expected === 'object' && expected !== null) {
    assert.ok(typeof actual === 'object' && actual !== null && !Array.isArray(actual), `${where}: expected an object, got ${JSON.stringify(actual)}`);
    assert.equal(Object.keys(actual as object), Object.keys(expected), `${where}: keys (and their order)`);
    for (const k of Object.keys(expected)) assertSameShape((actual as Record<string, unknown>)[k], (expected as Record<string, unknown>)[k], `${where}.${k}`);
    return;
  }
  assert.is(actual, expected, where);
}



function cliSuite(target: Target) {
  const test = suite(`podway resource commands on ${target.name}`);
  let spec = '';
  let kv: KvStore;
  let work = '';
  test.before.each(async () => {
    ({ spec, kv } = await target.open());
    work = tempDir();
  });
  test.after.each(async () => {
    await kv.close();
  });
  const ds = () => ['--datastore', spec];

  test('apply a multi-document YAML; the stored JSON is Calico\'s, field by field', async () => {
    const out = await okSpawned(['apply', '-f', CLUSTER, ...ds()]);
    assert.is(out, 'Successfully applied 5 resource(s)\n');
    const fixture = (f: string) => JSON.parse(readFileSync(path.join(FIXTURES, f), 'utf8'));
    const pool = (await kv.get(`${RES}ippools/pool-a`))!;
    assertSameShape(JSON.parse(pool.value), fixture('ippool-pool-a.json'));
    assert.not.match(pool.value, /resourceVersion/);
    const node1 = (await kv.get(`${RES}nodes/node1`))!;
    assertSameShape(JSON.parse(node1.value), fixture('node-node1.json'));
    const web = (await kv.get(`${RES}workloadendpoints/prod/node1-k8s-web--1-eth0`))!;
    assertSameShape(JSON.parse(web.value), fixture('wep-prod-web-1.json'));
    // The WEP without a namespace went to "default".
    assert.ok(await kv.get(`${RES}workloadendpoints/default/node2-k8s-db--1-eth0`));

    // A second apply replaces in place: same uid and creation time, a new revision.
    const before = JSON.parse(pool.value);
    writeFileSync(path.join(work, 'pool.yaml'), 'apiVersion: projectcalico.org/v3\nkind: IPPool\nmetadata: {name: pool-a}\nspec: {cidr: 10.244.0.0/16, vxlanMode: CrossSubnet}\n');
    assert.is(await ok(['apply', '-f', path.join(work, 'pool.yaml'), ...ds()]), "Successfully applied 1 'IPPool' resource(s)\n");
    const pool2 = (await kv.get(`${RES}ippools/pool-a`))!;
    const after = JSON.parse(pool2.value);
    assert.ok(pool2.modRevision > pool.modRevision);
    assert.is(after.metadata.uid, before.metadata.uid);
    assert.is(after.metadata.creationTimestamp, before.metadata.creationTimestamp);
    assert.is(after.spec.vxlanMode, 'CrossSubnet');
    assert.is(after.spec.natOutgoing, undefined, 'natOutgoing false is omitted, as Go does');
  });

  test('get -o json|yaml round-trips; tables as calicoctl prints them', async () => {
    await ok(['apply', '-f', CLUSTER, ...ds()]);
    const list = JSON.parse(await ok(['get', 'ippool', '-o', 'json', ...ds()]));
    assert.is(list.kind, 'IPPoolList');
    assert.is(list.apiVersion, 'projectcalico.org/v3');
    assert.ok(Number(list.metadata.resourceVersion) >= 5);
    assert.is(list.items.length, 1);
    const item = list.items[0];
    const stored = (await kv.get(`${RES}ippools/pool-a`))!;
    assert.equal(Object.keys(item), ['kind', 'apiVersion', 'metadata', 'spec']);
    assert.is(item.metadata.resourceVersion, String(stored.modRevision));
    assert.equal({ ...item.metadata, resourceVersion: undefined }, { ...JSON.parse(stored.value).metadata, resourceVersion: undefined });
    assert.equal(item.spec, JSON.parse(stored.value).spec);

    const one = JSON.parse(await okSpawned(['get', 'ippool', 'pool-a', '-o', 'json', ...ds()]));
    assert.equal(one, item, 'NAME prints the single object');
    // The YAML of one object, edited and applied back (its resourceVersion is current: accepted).
    const yamlText = await ok(['get', 'ippool', 'pool-a', '-o', 'yaml', ...ds()]);
    const fromYaml = parseYaml(yamlText);
    assert.equal(fromYaml, item);
    writeFileSync(path.join(work, 'edited.yaml'), yamlText.replace('natOutgoing: true', 'natOutgoing: false'));
    await ok(['replace', '-f', path.join(work, 'edited.yaml'), ...ds()]);
    const edited = JSON.parse((await kv.get(`${RES}ippools/pool-a`))!.value);
    assert.is(edited.spec.natOutgoing, undefined);
    assert.is(edited.metadata.uid, item.metadata.uid);
    // The same file again: its resourceVersion is stale now.
    const stale = await spawned(['replace', '-f', path.join(work, 'edited.yaml'), ...ds()]);
    assert.is(stale.code, 1);
    assert.match(stale.err, /update conflict: IPPool\(pool-a\) has resourceVersion \d+, not \d+/);

    // A list printed by get -o yaml is accepted by apply (kind: IPPoolList with items).
    const listYaml = await ok(['get', 'nodes', '-o', 'yaml', ...ds()]);
    assert.match(listYaml, /^kind: NodeList$/m);
    writeFileSync(path.join(work, 'nodes.yaml'), listYaml.replace(/^  resourceVersion: .*$/gm, ''));
    assert.is(await ok(['apply', '-f', path.join(work, 'nodes.yaml'), ...ds()]), "Successfully applied 2 'Node' resource(s)\n");

    assert.is(await ok(['get', 'ippool', ...ds()]), 'NAME     CIDR            SELECTOR\npool-a   10.244.0.0/16   all()\n');
    assert.is(await ok(['get', 'node', ...ds()]), 'NAME\nnode1\nnode2\n');
    assert.is(await ok(['get', 'node', '-o', 'wide', ...ds()]),
      'NAME    ASN       IPV4           IPV6\nnode1   64513     10.99.0.1/24\nnode2   (64512)   10.99.0.2/24\n');
    assert.is(await ok(['get', 'workloadendpoints', ...ds()]),
      'WORKLOAD   NODE    NETWORKS         INTERFACE\ndb-1       node2   10.244.0.65/32   cali1111ccbeace\n');
    assert.is(await ok(['get', 'wep', '-n', 'prod', ...ds()]),
      'WORKLOAD   NODE    NETWORKS        INTERFACE\nweb-1      node1   10.244.0.1/32   cali0761ccbeace\n');
    assert.is(await ok(['get', 'wep', '-A', ...ds()]),
      'NAMESPACE   WORKLOAD   NODE    NETWORKS         INTERFACE\ndefault     db-1       node2   10.244.0.65/32   cali1111ccbeace\nprod        web-1      node1   10.244.0.1/32    cali0761ccbeace\n');

    // Block affinities are IPAM keys, shown as BlockAffinity objects.
    await kv.create('/calico/ipam/v2/host/node1/ipv4/block/10.244.0.0-26', '{"state":"confirmed","deleted":false}');
    await kv.create('/calico/ipam/v2/host/node2/ipv4/block/10.244.0.64-26', '{"state":"pending","deleted":false}');
    assert.is(await ok(['get', 'blockaffinity', ...ds()]),
      'NAME                   NODE    CIDR             STATE\nnode1-10-244-0-0-26    node1   10.244.0.0/26    confirmed\nnode2-10-244-0-64-26   node2   10.244.0.64/26   pending\n');
    const aff = JSON.parse(await ok(['get', 'affinity', 'node1-10-244-0-0-26', '-o', 'json', ...ds()]));
    assert.equal(aff.spec, { node: 'node1', cidr: '10.244.0.0/26', state: 'confirmed', deleted: 'false' });
    assert.is(aff.kind, 'BlockAffinity');
    // ... and not something apply writes.
    writeFileSync(path.join(work, 'aff.yaml'), 'apiVersion: projectcalico.org/v3\nkind: BlockAffinity\nmetadata: {name: x}\nspec: {node: node1, cidr: 10.244.1.0/26, state: confirmed}\n');
    const refused = await podway(['apply', '-f', path.join(work, 'aff.yaml'), ...ds()]);
    assert.is(refused.code, 1);
    assert.match(refused.err, /aff\.yaml: document 1 \(BlockAffinity x\): BlockAffinity is IPAM state/);
  });

  test('a file datastore\'s file (BlockAffinities in it) is refused whole, naming each; the README\'s move works without them', async () => {
    // It used to stop at the first BlockAffinity with "Partial success", the endpoints after it left out.
    const example = path.join(ROOT, 'src', 'control', 'examples', 'two-node-vxlan.yaml');
    const r = await spawned(['apply', '-f', example, ...ds()]);
    assert.is(r.code, 1, r.err);
    assert.match(r.err, /document 4 \(BlockAffinity node1-10-244-0-0-26\): BlockAffinity is IPAM state, not a resource to apply: leave it out/);
    assert.match(r.err, /document 5 \(BlockAffinity node2-10-244-0-64-26\): BlockAffinity is IPAM state/);
    assert.match(r.err, /nothing was written/);
    assert.equal((await kv.list('/calico/')).entries, [], 'nothing written');
    const docs = readFileSync(example, 'utf8').split(/^---$/m).filter((d) => !/kind: BlockAffinity/.test(d));
    writeFileSync(path.join(work, 'move.yaml'), docs.join('---'));
    await ok(['apply', '-f', path.join(work, 'move.yaml'), ...ds()]);
    await ok(['ipam', 'assign', '--node', 'node2', '--ip', '10.244.0.66', ...ds()]);
    assert.match(await ok(['get', 'blockaffinity', ...ds()]), /node2-10-244-0-64-26\s+node2\s+10\.244\.0\.64\/26\s+confirmed/);
  });

  test('create of an existing resource fails naming it (exit 1); replace of an absent one too; delete removes', async () => {
    await ok(['apply', '-f', CLUSTER, ...ds()]);
    const again = await spawned(['create', '-f', CLUSTER, ...ds()]);
    assert.is(again.code, 1);
    assert.is(again.err, `podway: Failed to create any resource(s): ${CLUSTER}: document 1 (IPPool pool-a): resource already exists: IPPool(pool-a)\n`);

    writeFileSync(path.join(work, 'new.yaml'), [
      'apiVersion: projectcalico.org/v3\nkind: BGPPeer\nmetadata: {name: rr1}\nspec: {peerIP: 10.99.0.10, asNumber: 64514}',
      'apiVersion: projectcalico.org/v3\nkind: IPPool\nmetadata: {name: pool-a}\nspec: {cidr: 10.244.0.0/16}',
    ].join('\n---\n'));
    const partial = await podway(['create', '-f', path.join(work, 'new.yaml'), ...ds()]);
    assert.is(partial.code, 1);
    assert.match(partial.err, /Partial success: created the first 1 out of 2 resources: .*new\.yaml: document 2 \(IPPool pool-a\): resource already exists: IPPool\(pool-a\)/);
    assert.match(await ok(['get', 'bgppeer', ...ds()]), /^rr1\s+10\.99\.0\.10\s+\(global\)\s+64514$/m);

    writeFileSync(path.join(work, 'absent.yaml'), 'apiVersion: projectcalico.org/v3\nkind: IPPool\nmetadata: {name: nope}\nspec: {cidr: 10.245.0.0/16}\n');
    const absent = await podway(['replace', '-f', path.join(work, 'absent.yaml'), ...ds()]);
    assert.is(absent.code, 1);
    assert.match(absent.err, /absent\.yaml: document 1 \(IPPool nope\): resource does not exist: IPPool\(nope\)/);

    // Overlapping pools are refused, as Calico refuses them.
    writeFileSync(path.join(work, 'overlap.yaml'), 'apiVersion: projectcalico.org/v3\nkind: IPPool\nmetadata: {name: pool-b}\nspec: {cidr: 10.244.128.0/17}\n');
    const overlap = await podway(['create', '-f', path.join(work, 'overlap.yaml'), ...ds()]);
    assert.is(overlap.code, 1);
    assert.match(overlap.err, /spec\.cidr 10\.244\.128\.0\/17 overlaps IPPool\(pool-a\) 10\.244\.0\.0\/16/);
    // IPv6 pools too (an address must belong to one pool whatever its family).
    writeFileSync(path.join(work, 'v6.yaml'), 'apiVersion: projectcalico.org/v3\nkind: IPPool\nmetadata: {name: pool-v6}\nspec: {cidr: "fd00:196::/64"}\n');
    await ok(['create', '-f', path.join(work, 'v6.yaml'), ...ds()]);
    writeFileSync(path.join(work, 'overlap6.yaml'), 'apiVersion: projectcalico.org/v3\nkind: IPPool\nmetadata: {name: pool-v6b}\nspec: {cidr: "fd00:196:0:0:1::/80"}\n');
    const overlap6 = await podway(['create', '-f', path.join(work, 'overlap6.yaml'), ...ds()]);
    assert.is(overlap6.code, 1);
    assert.match(overlap6.err, /spec\.cidr fd00:196:0:0:1::\/80 overlaps IPPool\(pool-v6\) fd00:196::\/64/);
    await ok(['delete', 'ippool', 'pool-v6', ...ds()]);
    // Nor does an existing pool's block size change (its IPAM blocks keep the old size), as Calico refuses it.
    const poolA = (extra: string) => `apiVersion: projectcalico.org/v3\nkind: IPPool\nmetadata: {name: pool-a}\nspec: {cidr: 10.244.0.0/16${extra}}\n`;
    writeFileSync(path.join(work, 'resize.yaml'), poolA(', blockSize: 28'));
    const resize = await podway(['apply', '-f', path.join(work, 'resize.yaml'), ...ds()]);
    assert.is(resize.code, 1, resize.err);
    assert.match(resize.err, /IPPool\(pool-a\): spec\.blockSize cannot be changed \(26 -> 28\); create a new pool instead/);
    writeFileSync(path.join(work, 'same.yaml'), poolA(', blockSize: 26, natOutgoing: true'));
    await ok(['apply', '-f', path.join(work, 'same.yaml'), ...ds()]);

    assert.is(await okSpawned(['delete', 'wep', 'node1-k8s-web--1-eth0', '-n', 'prod', ...ds()]), "Successfully deleted 1 'WorkloadEndpoint' resource(s)\n");
    assert.is(await kv.get(`${RES}workloadendpoints/prod/node1-k8s-web--1-eth0`), null);
    const gone = await podway(['delete', 'wep', 'node1-k8s-web--1-eth0', '-n', 'prod', ...ds()]);
    assert.is(gone.code, 1);
    assert.match(gone.err, /resource does not exist: WorkloadEndpoint\(prod\/node1-k8s-web--1-eth0\)/);
    // get wep shows WORKLOAD as calicoctl does (web-1); the NAME delete takes is in -o wide: said
    assert.match(gone.err, "; a workload endpoint's NAME (not its WORKLOAD) is in `podway get workloadendpoint -o wide -n prod` (or -A for every namespace)");
    const missing = await podway(['get', 'ippool', 'nope', ...ds()]);
    assert.is(missing.code, 1);
    assert.match(missing.err, /resource does not exist: IPPool\(nope\)/);

    // Deleting node2 deletes its WorkloadEndpoint too (as calicoctl's node delete does), so the
    // file's last document no longer exists when its turn comes.
    // calicoctl counts the skipped ones as deleted; stderr names them
    const del = await podway(['delete', '-f', CLUSTER, '--skip-not-exists', ...ds()]);
    assert.is(del.code, 0, del.err);
    assert.is(del.out, 'Successfully deleted 5 resource(s)\n');
    assert.is(del.err.match(/does not exist: skipped \(--skip-not-exists\)/g)?.length, 2, del.err);
    const none = await podway(['delete', 'ippool', 'nosuch', '--skip-not-exists', ...ds()]);
    assert.is(none.code, 0, none.err);
    assert.is(none.out, "Successfully deleted 1 'IPPool' resource(s)\n");
    assert.match(none.err, 'IPPool(nosuch) does not exist: skipped (--skip-not-exists)');
    const left = await kv.list(RES);
    assert.equal(left.entries.map((e) => e.key), [`${RES}bgppeers/rr1`]);
  });

  test('invalid files name the file, the document and the field, and write nothing', async () => {
    const bad = path.join(work, 'bad.json');
    // JSON works too, and a List's items are counted per item.
    writeFileSync(bad, JSON.stringify({
      apiVersion: 'v1', kind: 'List', items: [
        { apiVersion: 'projectcalico.org/v3', kind: 'IPPool', metadata: { name: 'ok-pool' }, spec: { cidr: '10.244.0.0/16' } },
        { apiVersion: 'projectcalico.org/v3', kind: 'IPPool', metadata: { name: 'p2' }, spec: { cidr: '10.245.0.0/16', vxlanMode: 'Sometimes' } },
        { apiVersion: 'projectcalico.org/v3', kind: 'BGPPeer', metadata: { name: 'peer' }, spec: { peerIP: '10.0.0.300' } },
      ],
    }));
    const r = await podway(['apply', '-f', bad, ...ds()]);
    assert.is(r.code, 1);
    assert.match(r.err, /bad\.json: document 1 item 2 \(IPPool p2\): spec\.vxlanMode: expected one of Never\|Always\|CrossSubnet, got "Sometimes"/);
    assert.match(r.err, /bad\.json: document 1 item 3 \(BGPPeer peer\): spec\.peerIP: expected an IP address/);
    assert.match(r.err, /bad\.json: document 1 item 3 \(BGPPeer peer\): spec\.asNumber: required/);
    assert.equal((await kv.list('/calico/')).entries, [], 'nothing written');
    const unknown = path.join(work, 'unknown.yaml');
    writeFileSync(unknown, 'apiVersion: projectcalico.org/v3\nkind: IPpool\nmetadata: {name: x}\nspec: {}\n---\n: : bad yaml [\n');
    const u = await podway(['apply', '-f', unknown, ...ds()]);
    assert.is(u.code, 1);
    assert.match(u.err, /unknown\.yaml: document 1 \(IPpool x\): kind: unknown kind "IPpool"/);
    assert.match(u.err, /unknown\.yaml: document 2: invalid YAML/);
  });

  test('a misspelt field is refused naming it and the field meant; nothing is written', async () => {
    // `vxlanmode: Always` used to be stored as given and the pool left at vxlanMode Never.
    const typo = path.join(work, 'typo.yaml');
    writeFileSync(typo, 'apiVersion: projectcalico.org/v3\nkind: IPPool\nmetadata:\n  name: p1\nspec:\n  cidr: 10.244.0.0/16\n  vxlanmode: Always\n  natOutGoing: true\n'
      + '---\napiVersion: projectcalico.org/v3\nkind: WorkloadEndpoint\nmetadata:\n  name: n1-k8s-a-eth0\nspec:\n  node: n1\n  orchestrator: k8s\n  pod: a\n  endpoint: eth0\n  interfaceName: cali1\n  ipNetworks: [10.244.0.1/32]\n  colour: blue\n');
    const r = await podway(['apply', '-f', typo, ...ds()]);
    assert.is(r.code, 1, r.err);
    assert.match(r.err, 'typo.yaml: document 1 (IPPool p1): spec.vxlanmode: unknown field (did you mean vxlanMode?)');
    assert.match(r.err, 'typo.yaml: document 1 (IPPool p1): spec.natOutGoing: unknown field (did you mean natOutgoing?)');
    assert.match(r.err, /typo\.yaml: document 2 \(WorkloadEndpoint default\/n1-k8s-a-eth0\): spec\.colour: unknown field \(WorkloadEndpoint\.spec has orchestrator, /);
    assert.equal((await kv.list('/calico/')).entries, [], 'nothing written');
  });

  test('a WorkloadEndpoint without metadata.name gets the name Calico computes; a wrong name, or a name without the identifiers, is refused (libcalico-go assignOrValidateName)', async () => {
    const wep = (meta: string) => `apiVersion: projectcalico.org/v3\nkind: WorkloadEndpoint\nmetadata:\n  namespace: prod\n${meta}spec:\n  node: node1\n  orchestrator: k8s\n  pod: web-1\n  endpoint: eth0\n  interfaceName: cali0761ccbeace\n  ipNetworks: [10.244.0.1/32]\n`;
    const wrong = path.join(work, 'wrong.yaml');
    writeFileSync(wrong, wep('  name: wrongname\n'));
    for (const verb of ['create', 'apply']) {
      const r = await podway([verb, '-f', wrong, ...ds()]);
      assert.is(r.code, 1, r.err);
      assert.match(r.err, 'wrong.yaml: document 1 (WorkloadEndpoint prod/wrongname): metadata.name: the WorkloadEndpoint name does not match the primary identifiers assigned in the Spec: expected name node1-k8s-web--1-eth0');
    }
    assert.equal((await kv.list('/calico/')).entries, [], 'nothing written');
    // A named endpoint lacking an identifier Calico computes the name from: refused naming the
    // field (libcalico-go's CalculateWorkloadEndpointName: "field should be assigned"), as
    // calicoctl refuses it; delete -f still finds it by name.
    for (const [drop, field] of [['  orchestrator: k8s\n', 'spec.orchestrator'], ['  endpoint: eth0\n', 'spec.endpoint'], ['  pod: web-1\n', 'spec.pod']] as const) {
      const partial = path.join(work, 'partial.yaml');
      writeFileSync(partial, wep('  name: node1-k8s-web--1-eth0\n').replace(drop, ''));
      for (const verb of ['create', 'apply', 'replace']) {
        const r = await podway([verb, '-f', partial, ...ds()]);
        assert.is(r.code, 1, r.err);
        assert.match(r.err, `partial.yaml: document 1 (WorkloadEndpoint prod/node1-k8s-web--1-eth0): ${field}: required: Calico computes a WorkloadEndpoint's name from spec.node, spec.orchestrator,`);
      }
    }
    assert.equal((await kv.list('/calico/')).entries, [], 'nothing written');
    const dash = path.join(work, 'dash.yaml');
    writeFileSync(dash, wep('').replace('pod: web-1', 'pod: web-'));
    const d = await podway(['create', '-f', dash, ...ds()]);
    assert.is(d.code, 1, d.err);
    assert.match(d.err, "spec.pod: must not end with '-'");
    const unnamed = path.join(work, 'unnamed.yaml');
    writeFileSync(unnamed, wep(''));
    assert.is(await ok(['create', '-f', unnamed, ...ds()]), "Successfully created 1 'WorkloadEndpoint' resource(s)\n");
    const stored = JSON.parse((await kv.get(`${RES}workloadendpoints/prod/node1-k8s-web--1-eth0`))!.value);
    assert.is(stored.metadata.name, 'node1-k8s-web--1-eth0');
    // delete -f finds it by the same computed name
    assert.is(await ok(['delete', '-f', unnamed, ...ds()]), "Successfully deleted 1 'WorkloadEndpoint' resource(s)\n");
    // the store itself (the CNI plugin's path) checks too
    const obj = parseYaml(wep('  name: wrongname\n'));
    const refused = await applyResource(kv, obj).then(() => null, (e: Error) => e);
    assert.match(String(refused?.message), 'metadata.name: the WorkloadEndpoint name does not match the primary identifiers assigned in the Spec: expected name node1-k8s-web--1-eth0');
  });

  test('a top-level list of resources and concatenated JSON objects are read as calicoctl reads them; errors name file, document and item', async () => {
    const pool = (name: string, cidr: string) => JSON.stringify({ apiVersion: 'projectcalico.org/v3', kind: 'IPPool', metadata: { name }, spec: { cidr } });
    const list = path.join(work, 'list.yaml');
    writeFileSync(list, `- ${pool('l1', '10.61.0.0/16')}\n- ${pool('l2', '10.62.0.0/16')}\n`);
    assert.is(await ok(['create', '-f', list, ...ds()]), "Successfully created 2 'IPPool' resource(s)\n");
    const stream = path.join(work, 'stream.json');
    writeFileSync(stream, `${pool('s1', '10.63.0.0/16')}\n${pool('s2', '10.64.0.0/16')}`);
    assert.is(await ok(['apply', '-f', stream, ...ds()]), "Successfully applied 2 'IPPool' resource(s)\n");
    for (const name of ['l1', 'l2', 's1', 's2']) assert.ok(await kv.get(`${RES}ippools/${name}`), name);
    const badList = path.join(work, 'badlist.json');
    writeFileSync(badList, `[${pool('b1', '10.65.0.0/16')}, ${pool('b2', 'x')}]`);
    const r = await podway(['apply', '-f', badList, ...ds()]);
    assert.is(r.code, 1, r.err);
    assert.match(r.err, 'badlist.json: document 1 item 2 (IPPool b2): spec.cidr: expected a CIDR');
    const badStream = path.join(work, 'badstream.json');
    writeFileSync(badStream, `${pool('b3', '10.66.0.0/16')}\n{"kind": `);
    const s2 = await podway(['apply', '-f', badStream, ...ds()]);
    assert.is(s2.code, 1, s2.err);
    assert.match(s2.err, 'badstream.json: document 2: invalid JSON');
    assert.not.ok(await kv.get(`${RES}ippools/b1`));
    assert.not.ok(await kv.get(`${RES}ippools/b3`));
    // delete -f reads the same shapes
    assert.is(await ok(['delete', '-f', stream, ...ds()]), "Successfully deleted 2 'IPPool' resource(s)\n");
  });

  test('create --skip-exists skips (and leaves alone) what exists, counting it as created as calicoctl does; without it create fails', async () => {
    const pool = (name: string, cidr: string) => `apiVersion: projectcalico.org/v3\nkind: IPPool\nmetadata:\n  name: ${name}\nspec:\n  cidr: ${cidr}\n`;
    const one = path.join(work, 'one.yaml');
    writeFileSync(one, pool('k1', '10.71.0.0/16'));
    await ok(['create', '-f', one, ...ds()]);
    const before = (await kv.get(`${RES}ippools/k1`))!;
    const both = path.join(work, 'both.yaml');
    writeFileSync(both, pool('k1', '10.71.0.0/16').replace('cidr:', 'natOutgoing: true\n  cidr:') + '---\n' + pool('k2', '10.72.0.0/16'));
    const plain = await podway(['create', '-f', both, ...ds()]);
    assert.is(plain.code, 1, plain.err);
    assert.match(plain.err, 'resource already exists: IPPool(k1)');
    const r = await spawned(['create', '-f', both, '--skip-exists', ...ds()]);
    assert.is(r.code, 0, r.err);
    assert.is(r.out, "Successfully created 2 'IPPool' resource(s)\n");
    assert.match(r.err, 'both.yaml: document 1 (IPPool k1): IPPool(k1) already exists: skipped (--skip-exists)');
    assert.is((await kv.get(`${RES}ippools/k1`))!.modRevision, before.modRevision, 'the existing pool is left as it was');
    assert.ok(await kv.get(`${RES}ippools/k2`));
  });

  test('get node NAME -o wide shows the BGPConfiguration default AS for a node without its own, as the list does', async () => {
    const f = path.join(work, 'asn.yaml');
    writeFileSync(f, 'apiVersion: projectcalico.org/v3\nkind: BGPConfiguration\nmetadata:\n  name: default\nspec:\n  asNumber: 64520\n'
      + '---\napiVersion: projectcalico.org/v3\nkind: Node\nmetadata:\n  name: n1\nspec:\n  bgp:\n    ipv4Address: 10.99.0.1/24\n');
    await ok(['apply', '-f', f, ...ds()]);
    const table = 'NAME   ASN       IPV4           IPV6\nn1     (64520)   10.99.0.1/24\n';
    assert.is(await ok(['get', 'node', '-o', 'wide', ...ds()]), table);
    assert.is(await ok(['get', 'node', 'n1', '-o', 'wide', ...ds()]), table);
    assert.is(await ok(['get', 'node', 'n1', '-o', 'custom-columns=NAME,ASN', ...ds()]), 'NAME   ASN\nn1     (64520)\n');
  });

  test('AS numbers as strings ("64512", asdot "1.10") apply and are stored as numbers, as Calico stores them; "0" is AS 0', async () => {
    const f = path.join(work, 'asstr.yaml');
    writeFileSync(f, 'apiVersion: projectcalico.org/v3\nkind: BGPPeer\nmetadata:\n  name: tor\nspec:\n  peerIP: 10.99.0.254\n  asNumber: "64512"\n'
      + '---\napiVersion: projectcalico.org/v3\nkind: BGPConfiguration\nmetadata:\n  name: default\nspec:\n  asNumber: "1.10"\n'
      + '---\napiVersion: projectcalico.org/v3\nkind: Node\nmetadata:\n  name: n1\nspec:\n  bgp:\n    ipv4Address: 10.99.0.1/24\n    asNumber: "65001"\n');
    await ok(['apply', '-f', f, ...ds()]);
    assert.is(JSON.parse((await kv.get(`${RES}bgppeers/tor`))!.value).spec.asNumber, 64512);
    assert.is(JSON.parse((await kv.get(`${RES}bgpconfigurations/default`))!.value).spec.asNumber, 65546);
    assert.is(JSON.parse((await kv.get(`${RES}nodes/n1`))!.value).spec.bgp.asNumber, 65001);
    const zero = path.join(work, 'as0s.yaml');
    writeFileSync(zero, 'apiVersion: projectcalico.org/v3\nkind: BGPPeer\nmetadata:\n  name: tor0\nspec:\n  peerIP: 10.99.0.253\n  asNumber: "0"\n');
    const r = await podway(['apply', '-f', zero, ...ds()]);
    assert.is(r.code, 1, r.err);
    assert.match(r.err, 'spec.asNumber: AS 0 is reserved');
  });

  test('AS 0 (reserved, RFC 7607) is refused by apply, naming the field; nothing is written', async () => {
    const zero = path.join(work, 'as0.yaml');
    writeFileSync(zero, 'apiVersion: projectcalico.org/v3\nkind: BGPPeer\nmetadata:\n  name: tor\nspec:\n  peerIP: 10.99.0.254\n  asNumber: 0\n'
      + '---\napiVersion: projectcalico.org/v3\nkind: Node\nmetadata:\n  name: n1\nspec:\n  bgp:\n    ipv4Address: 10.99.0.1/24\n    asNumber: 0\n');
    const r = await podway(['apply', '-f', zero, ...ds()]);
    assert.is(r.code, 1, r.err);
    assert.match(r.err, 'as0.yaml: document 1 (BGPPeer tor): spec.asNumber: AS 0 is reserved (RFC 7607): use 1-4294967295');
    assert.match(r.err, 'as0.yaml: document 2 (Node n1): spec.bgp.asNumber: AS 0 is reserved (RFC 7607): use 1-4294967295');
    assert.equal((await kv.list('/calico/')).entries, [], 'nothing written');
  });

  test('malformed selectors are refused by apply, create and replace, naming file, document and field; one stored by another tool still loads', async () => {
    const bad = path.join(work, 'badsel.yaml');
    writeFileSync(bad, 'apiVersion: projectcalico.org/v3\nkind: IPPool\nmetadata:\n  name: p1\nspec:\n  cidr: 10.244.0.0/16\n  nodeSelector: "has(x"\n'
      + '---\napiVersion: projectcalico.org/v3\nkind: BGPPeer\nmetadata:\n  name: tor\nspec:\n  peerIP: 10.99.0.254\n  asNumber: 64512\n  nodeSelector: "has(x"\n'
      + '---\napiVersion: projectcalico.org/v3\nkind: BGPPeer\nmetadata:\n  name: rr\nspec:\n  peerSelector: "rr ==="\n');
    for (const verb of ['apply', 'create', 'replace']) {
      const r = await podway([verb, '-f', bad, ...ds()]);
      assert.is(r.code, 1, `${verb}: ${r.err}`);
      assert.match(r.err, /badsel\.yaml: document 1 \(IPPool p1\): spec\.nodeSelector: invalid selector: selector "has\(x": .* at position \d+/);
      assert.match(r.err, /badsel\.yaml: document 2 \(BGPPeer tor\): spec\.nodeSelector: invalid selector: /);
      assert.match(r.err, /badsel\.yaml: document 3 \(BGPPeer rr\): spec\.peerSelector: invalid selector: /);
    }
    assert.equal((await kv.list('/calico/')).entries, [], 'nothing written');
    // A good selector still applies.
    const good = path.join(work, 'goodsel.yaml');
    writeFileSync(good, 'apiVersion: projectcalico.org/v3\nkind: IPPool\nmetadata:\n  name: p1\nspec:\n  cidr: 10.244.0.0/16\n  nodeSelector: "has(x) && zone == \'a\'"\n');
    await ok(['apply', '-f', good, ...ds()]);
    // One written by another tool: get still lists it (and the pool with it)
    const key = `${RES}ippools/p1`;
    const entry = (await kv.get(key))!;
    const stored = JSON.parse(entry.value);
    stored.spec.nodeSelector = 'has(x';
    assert.ok(await kv.update(key, JSON.stringify(stored), entry.modRevision));
    const listed = await ok(['get', 'ippools', '-o', 'yaml', ...ds()]);
    assert.match(listed, /nodeSelector: has\(x/);
  });

  test('another kind stored under a kind\'s prefix (a Node at ippools/wrong): get lists the rest and says it skipped that key, as podway run does (not a pool "wrong" with an empty CIDR)', async () => {
    const pool = path.join(work, 'pool.yaml');
    writeFileSync(pool, 'apiVersion: projectcalico.org/v3\nkind: IPPool\nmetadata:\n  name: p1\nspec:\n  cidr: 10.244.0.0/16\n');
    await ok(['apply', '-f', pool, ...ds()]);
    assert.ok(await kv.create(`${RES}ippools/wrong`, JSON.stringify({ kind: 'Node', apiVersion: 'projectcalico.org/v3', metadata: { name: 'wrong' }, spec: { bgp: { ipv4Address: '10.99.0.9/24' } } })));
    const r = await podway(['get', 'ippool', ...ds()]);
    assert.is(r.code, 0, r.err);
    assert.is(r.out.trim().split('\n').length, 2, r.out);
    assert.match(r.out, /^p1\s+10\.244\.0\.0\/16/m);
    assert.not.match(r.out, /wrong/);
    assert.is(r.err, `warning: ${RES}ippools/wrong: kind: Node stored under ippools/ (skipped)\n`);
    const y = await podway(['get', 'ippools', '-o', 'yaml', ...ds()]);
    assert.is(y.code, 0, y.err);
    assert.not.match(y.out, /Node|wrong/);
  });

  test('pools that overlap already (racing creates) can be disabled, changed and deleted; a new overlap is still refused', async () => {
    // As two creates that raced leave them (each checked before the other was written).
    const stored = (name: string, cidr: string, extra: Record<string, unknown> = {}) => JSON.stringify({
      kind: 'IPPool', apiVersion: 'projectcalico.org/v3', metadata: { name, uid: `uid-${name}`, creationTimestamp: '2024-05-01T12:00:00Z' },
      spec: { cidr, vxlanMode: 'Never', ipipMode: 'Never', blockSize: 26, nodeSelector: 'all()', allowedUses: ['Workload', 'Tunnel'], ...extra },
    });
    await ok(['apply', '-f', CLUSTER, ...ds()]); // makes the embedded store (pool-a is 10.244.0.0/16)
    assert.ok(await kv.create(`${RES}ippools/race1`, stored('race1', '10.80.1.0/24')));
    assert.ok(await kv.create(`${RES}ippools/race2`, stored('race2', '10.80.0.0/16')));
    const yaml = (name: string, cidr: string, extra = '') => `apiVersion: projectcalico.org/v3\nkind: IPPool\nmetadata: {name: ${name}}\nspec: {cidr: ${cidr}${extra}}\n`;
    writeFileSync(path.join(work, 'r1.yaml'), yaml('race1', '10.80.1.0/24', ', disabled: true, natOutgoing: true'));
    await ok(['apply', '-f', path.join(work, 'r1.yaml'), ...ds()]);
    const r1 = JSON.parse((await kv.get(`${RES}ippools/race1`))!.value) as { spec: Record<string, unknown> };
    assert.is(r1.spec.disabled, true);
    assert.is(r1.spec.natOutgoing, true);
    await ok(['delete', 'ippool', 'race2', ...ds()]);
    assert.is(await kv.get(`${RES}ippools/race2`), null);
    await ok(['delete', '-f', path.join(work, 'r1.yaml'), ...ds()]);
    assert.is(await kv.get(`${RES}ippools/race1`), null);
    // A pool another tool stored with a value podway refuses is deletable too.
    assert.ok(await kv.create(`${RES}ippools/calico-new`, stored('calico-new', '10.70.0.0/16', { ipipMode: 'always' })));
    await ok(['delete', 'ippool', 'calico-new', ...ds()]);
    assert.is(await kv.get(`${RES}ippools/calico-new`), null);
    // A create that brings a new overlap is refused still.
    assert.ok(await kv.create(`${RES}ippools/race1`, stored('race1', '10.80.1.0/24')));
    writeFileSync(path.join(work, 'r3.yaml'), yaml('race3', '10.80.0.0/16'));
    const r3 = await podway(['create', '-f', path.join(work, 'r3.yaml'), ...ds()]);
    assert.is(r3.code, 1);
    assert.match(r3.err, /spec\.cidr 10\.80\.0\.0\/16 overlaps IPPool\(race1\) 10\.80\.1\.0\/24/);
    const r3apply = await podway(['apply', '-f', path.join(work, 'r3.yaml'), ...ds()]);
    assert.is(r3apply.code, 1);
    assert.match(r3apply.err, /overlaps IPPool\(race1\)/);
  });

  test('-f DIR: its .yaml, .yml and .json files in name order (apply, create, replace, delete); problems in any file stop all', async () => {
    const dir = path.join(work, 'dird');
    mkdirSync(path.join(dir, 'sub.yaml'), { recursive: true }); // a directory, even named so, is not read
    const poolDoc = (name: string, cidr: string) => `apiVersion: projectcalico.org/v3\nkind: IPPool\nmetadata:\n  name: ${name}\nspec:\n  cidr: ${cidr}\n`;
    writeFileSync(path.join(dir, 'b.yaml'), poolDoc('pb', '10.245.0.0/16'));
    writeFileSync(path.join(dir, 'a.json'), JSON.stringify({ apiVersion: 'projectcalico.org/v3', kind: 'IPPool', metadata: { name: 'pa' }, spec: { cidr: '10.244.0.0/16' } }));
    writeFileSync(path.join(dir, 'c.yml'), poolDoc('pc', '10.246.0.0/16'));
    writeFileSync(path.join(dir, 'notes.txt'), 'not a resource');
    assert.is(await ok(['create', '-f', dir, ...ds()]), 'Successfully created 3 \'IPPool\' resource(s)\n');
    const again = await podway(['create', '-f', dir, ...ds()]);
    assert.is(again.code, 1);
    assert.match(again.err, `${path.join(dir, 'a.json')}: document 1 (IPPool pa): resource already exists`, 'the first file in name order, named');
    assert.is(await ok(['apply', '-f', dir, ...ds()]), 'Successfully applied 3 \'IPPool\' resource(s)\n');
    assert.is(await ok(['replace', '-f', dir, ...ds()]), 'Successfully replaced 3 \'IPPool\' resource(s)\n');
    assert.is(await ok(['delete', '-f', dir, ...ds()]), 'Successfully deleted 3 \'IPPool\' resource(s)\n');
    // a bad document in one file: nothing from the others is written
    writeFileSync(path.join(dir, 'd.yaml'), poolDoc('pd', '10.247.0.0/16').replace('cidr:', 'cidrs:'));
    const bad = await podway(['apply', '-f', dir, ...ds()]);
    assert.is(bad.code, 1);
    assert.match(bad.err, `${path.join(dir, 'd.yaml')}: document 1 (IPPool pd): spec.cidrs: unknown field`);
    assert.equal((await kv.list('/calico/')).entries, [], 'nothing written');
    const empty = path.join(work, 'empty');
    mkdirSync(empty);
    const none = await podway(['apply', '-f', empty, ...ds()]);
    assert.is(none.code, 1);
    assert.match(none.err, 'no .yaml, .yml or .json files in the directory');
  });

  test('create -f into a fresh datastore, the first resource one written without a read before it (Profile, BGPConfiguration, IPReservation)', async () => {
    // On an embedded store whose directory did not exist yet, the first write failed: "cannot
    // take the writer lock .../store/lock: ENOENT" (an IPPool first read the pools, which made it).
    const file = path.join(work, 'first.yaml');
    writeFileSync(file, [
      'apiVersion: projectcalico.org/v3\nkind: Profile\nmetadata: {name: pr1}\nspec: {}',
      'apiVersion: projectcalico.org/v3\nkind: BGPConfiguration\nmetadata: {name: default}\nspec: {asNumber: 64512}',
      'apiVersion: projectcalico.org/v3\nkind: IPReservation\nmetadata: {name: r1}\nspec: {reservedCIDRs: [10.0.0.1]}',
    ].join('\n---\n') + '\n');
    const r = await spawned(['create', '-f', file, ...ds()]);
    assert.is(r.err, '');
    assert.is(r.out, 'Successfully created 3 resource(s)\n');
    assert.is(r.code, 0);
    for (const key of ['profiles/pr1', 'bgpconfigurations/default', 'ipreservations/r1']) assert.ok(await kv.get(`${RES}${key}`), key);
  });

  test('get, delete and ipam show|check|release on an embedded store that does not exist: refused naming it, nothing created', async () => {
    // A mistyped path used to be created and shown as an empty cluster.
    const missing = path.join(work, 'no-such-store');
    for (const args of [['get', 'ippool'], ['delete', 'ippool', 'p'], ['ipam', 'show'], ['ipam', 'check'], ['ipam', 'release', '--ip', '10.244.0.1']]) {
      const r = await (args[0] === 'get' ? spawned : podway)([...args, '--datastore', `embedded:${missing}`]);
      assert.is(r.code, 1, `${args.join(' ')}: ${r.err}`);
      assert.match(r.err, `embedded datastore ${missing} does not exist`);
    }
    assert.not.ok(existsSync(missing), 'no directory was made');
  });

  test('the datastore comes from PODWAY_DATASTORE when --datastore is not given; file: is read-only', async () => {
    await okSpawned(['apply', '-f', CLUSTER], { PODWAY_DATASTORE: spec });
    assert.ok(await kv.get(`${RES}ippools/pool-a`));
    assert.match(await ok(['get', 'node'], { PODWAY_DATASTORE: spec }), /node2/);
    const ro = await spawned(['apply', '-f', CLUSTER, '--datastore', `file:${CLUSTER}`]);
    assert.is(ro.code, 1);
    assert.is(ro.err, 'podway: file: datastores are read-only (edit the file); use etcd: or embedded:\n');
    const del = await podway(['delete', 'ippool', 'pool-a'], { PODWAY_DATASTORE: `file:${CLUSTER}` });
    assert.is(del.code, 1);
    assert.match(del.err, /file: datastores are read-only/);
    // get reads a file: datastore.
    assert.is(await ok(['get', 'ippool', '--datastore', `file:${CLUSTER}`]), 'NAME     CIDR            SELECTOR\npool-a   10.244.0.0/16   all()\n');
  });

  return test;
}

cliSuite(embeddedTarget).run();

const etcdSuite = cliSuite(etcdTarget);
etcdSuite.after(stopEtcd);
etcdSuite.run();
