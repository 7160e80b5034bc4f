// IPAMConfiguration (calicoctl get/apply/delete ipamconfiguration default) on the embedded store and
// a real etcd: stored where libcalico-go's clientv3 stores it on etcd
// (/calico/resources/v3/projectcalico.org/ipamconfigurations/default, the whole v3 object) and kept
// one with /calico/ipam/v2/config, which IPAM reads (as Calico's Kubernetes datastore keeps them one
// object); `ipam configure` changes both. And `ipam configure --max-blocks-per-host N` without
// StrictAffinity refused, as libcalico-go's SetIPAMConfig refuses it. Without the kind: "unknown
// resource type" (exit 2), "unknown kind" in apply; without the refusal, MaxBlocksPerHost stored.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { KvStore } from '../../src/control/kv/kv';
import { podwayInProcess as podway, okInProcess as ok, podway as spawned, tempDir, Target, embeddedTarget, etcdTarget, stopEtcd } from './cli-kit';

const V3_KEY = '/calico/resources/v3/projectcalico.org/ipamconfigurations/default';
const V2_KEY = '/calico/ipam/v2/config';

const doc = (spec: string, name = 'default') => `apiVersion: projectcalico.org/v3\nkind: IPAMConfiguration\nmetadata: {name: ${name}}\nspec: ${spec}\n`;
const NODES = [
  'apiVersion: projectcalico.org/v3', 'kind: Node', 'metadata: {name: node1}', 'spec: {bgp: {ipv4Address: 10.99.0.1/24}}', '---',
  'apiVersion: projectcalico.org/v3', 'kind: IPPool', 'metadata: {name: tiny}', 'spec: {cidr: 10.251.0.0/24, blockSize: 30}', '',
].join('\n');

function ipamConfigurationSuite(target: Target) {
  const test = suite(`IPAMConfiguration on ${target.name}`);
  let spec = '';
  let kv: KvStore;
  let work = '';
  test.before.each(async () => {
    ({ spec, kv } = await target.open());
    work = tempDir('podway-ipamconf-');
  });
  test.after.each(async () => { await kv.close(); });
  const ds = () => ['--datastore', spec];
  const file = (name: string, text: string) => {
    const p = path.join(work, name);
    writeFileSync(p, text);
    return p;
  };
  const v3 = async () => JSON.parse((await kv.get(V3_KEY))!.value);
  const v2 = async () => (await kv.get(V2_KEY))?.value;

  test('apply: both keys in Calico\'s shapes; get (one, list, -o yaml, wide) shows it; IPAM honours it; ipam configure changes both', async () => {
    await ok(['apply', '-f', file('nodes.yaml', NODES), ...ds()]);
    const missing = await podway(['get', 'ipamconfig', 'default', ...ds()]);
    assert.is(missing.code, 1);
    assert.is(missing.err, 'podway: resource does not exist: IPAMConfiguration(default)\n');
    assert.is(await ok(['get', 'ipamconfigurations', ...ds()]), 'NAME   STRICTAFFINITY   AUTOALLOCATEBLOCKS\n');

    const applied = await podway(['apply', '-f', file('c.yaml', doc('{strictAffinity: true, maxBlocksPerHost: 1, autoAllocateBlocks: true}')), ...ds()]);
    assert.is(applied.code, 0, applied.err);
    assert.is(applied.out, "Successfully applied 1 'IPAMConfiguration' resource(s)\n");
    assert.is(applied.err, '');
    const stored = await v3();
    assert.equal(Object.keys(stored), ['kind', 'apiVersion', 'metadata', 'spec']);
    assert.is(stored.kind, 'IPAMConfiguration');
    assert.equal(Object.keys(stored.metadata), ['name', 'uid', 'creationTimestamp']);
    assert.is(JSON.stringify(stored.spec), '{"strictAffinity":true,"maxBlocksPerHost":1,"autoAllocateBlocks":true}');
    assert.is(await v2(), '{"strict_affinity":true,"auto_allocate_blocks":true,"maxBlocksPerHost":1}');
    assert.match(await ok(['ipam', 'show', '--show-configuration', ...ds()]), /\| StrictAffinity     \| true  \|\n\| AutoAllocateBlocks \| true  \|\n\| MaxBlocksPerHost   \|     1 \|/);
    assert.is(await ok(['get', 'ipamconfig', ...ds()]), 'NAME      STRICTAFFINITY   AUTOALLOCATEBLOCKS\ndefault   true             true\n');
    assert.is(await ok(['get', 'ipamconfig', '-o', 'wide', ...ds()]), 'NAME      STRICTAFFINITY   AUTOALLOCATEBLOCKS   MAXBLOCKSPERHOST\ndefault   true             true                 1\n');
    const yaml = await ok(['get', 'ipamconfiguration', 'default', '-o', 'yaml', ...ds()]);
    assert.match(yaml, /^apiVersion: projectcalico\.org\/v3\nkind: IPAMConfiguration\nmetadata:\n  creationTimestamp: "?\S+"?\n  name: default\n  resourceVersion: "\d+"\n  uid: \S+\nspec:\n  autoAllocateBlocks: true\n  maxBlocksPerHost: 1\n  strictAffinity: true\n$/);

    // the allocator reads it: one /30 block for node1, then the limit
    const r = await spawned(['ipam', 'assign', '--node', 'node1', '--count', '5', '--pool', '10.251.0.0/24', ...ds()]);
    assert.is(r.code, 1, r.err + r.out);
    assert.match(r.err, /node node1 has reached maxBlocksPerHost=1 blocks and they are full/);

    // ipam configure: /calico/ipam/v2/config and the resource's spec, uid kept
    assert.is(await ok(['ipam', 'configure', '--max-blocks-per-host', '2', ...ds()]), 'Successfully set MaxBlocksPerHost to: 2\n');
    assert.is(await v2(), '{"strict_affinity":true,"auto_allocate_blocks":true,"maxBlocksPerHost":2}');
    const after = await v3();
    assert.is(after.metadata.uid, stored.metadata.uid);
    assert.is(after.metadata.creationTimestamp, stored.metadata.creationTimestamp);
    assert.is(JSON.stringify(after.spec), '{"strictAffinity":true,"maxBlocksPerHost":2,"autoAllocateBlocks":true}');
    assert.match(await ok(['get', 'ipamconfig', 'default', '-o', 'json', ...ds()]), /"maxBlocksPerHost": 2,/);

    // apply again (a spec without maxBlocksPerHost: 0, not set): both keys
    assert.is(await ok(['apply', '-f', file('c2.yaml', doc('{strictAffinity: false}')), ...ds()]), "Successfully applied 1 'IPAMConfiguration' resource(s)\n");
    assert.is(await v2(), '{"auto_allocate_blocks":true}');
    assert.is(JSON.stringify((await v3()).spec), '{"strictAffinity":false,"autoAllocateBlocks":true}');
    assert.is((await v3()).metadata.uid, stored.metadata.uid);

    // delete: both keys; IPAM back on its defaults
    assert.is(await ok(['delete', 'ipamconfig', 'default', ...ds()]), "Successfully deleted 1 'IPAMConfiguration' resource(s)\n");
    assert.is(await kv.get(V3_KEY), null);
    assert.is(await kv.get(V2_KEY), null);
    const again = await podway(['delete', 'ipamconfiguration', 'default', ...ds()]);
    assert.is(again.code, 1);
    assert.is(again.err, 'podway: resource does not exist: IPAMConfiguration(default)\n');
  });

  test('set by ipam configure alone (no v3 key): get shows what IPAM uses; create refused (exists), replace writes the v3 key; fields of a newer Calico kept', async () => {
    assert.ok(await kv.create(V2_KEY, '{"strict_affinity":true,"auto_allocate_blocks":true,"ipCooldownSeconds":30,"futureField":{"a":1}}'));
    const shown = JSON.parse(await ok(['get', 'ipamconfig', 'default', '-o', 'json', ...ds()]));
    assert.equal(shown.spec, { strictAffinity: true, autoAllocateBlocks: true, ipCooldownSeconds: 30 });
    assert.is(shown.metadata.name, 'default');
    const create = await podway(['create', '-f', file('c.yaml', doc('{strictAffinity: true, maxBlocksPerHost: 3}')), ...ds()]);
    assert.is(create.code, 1);
    assert.match(create.err, /resource already exists: IPAMConfiguration\(default\)/);
    assert.is(await kv.get(V3_KEY), null, 'nothing written');
    // ipam configure keeps what it does not set, the newer Calico's fields too
    assert.is(await ok(['ipam', 'configure', '--max-blocks-per-host', '3', ...ds()]), 'Successfully set MaxBlocksPerHost to: 3\n');
    assert.is(await v2(), '{"strict_affinity":true,"auto_allocate_blocks":true,"maxBlocksPerHost":3,"ipCooldownSeconds":30,"futureField":{"a":1}}');
    const replaced = await podway(['replace', '-f', file('r.yaml', doc('{strictAffinity: true, maxBlocksPerHost: 4, autoAllocateBlocks: true}')), ...ds()]);
    assert.is(replaced.code, 0, replaced.err);
    assert.is(await v2(), '{"strict_affinity":true,"auto_allocate_blocks":true,"maxBlocksPerHost":4,"futureField":{"a":1}}');
    assert.is(JSON.stringify((await v3()).spec), '{"strictAffinity":true,"maxBlocksPerHost":4,"autoAllocateBlocks":true}');
    // a resourceVersion that is not the current one: conflict, nothing written
    const stale = await podway(['apply', '-f', file('s.yaml', doc('{strictAffinity: false}').replace('{name: default}', '{name: default, resourceVersion: "1"}')), ...ds()]);
    assert.is(stale.code, 1);
    assert.match(stale.err, /update conflict: IPAMConfiguration\(default\) has resourceVersion \d+, not 1/);
    assert.match(await v2() ?? '', /"maxBlocksPerHost":4/);
  });

  test('refused: another name (Calico\'s words), maxBlocksPerHost below 0, an unknown field; nothing written', async () => {
    const cases: [string, RegExp][] = [
      [doc('{strictAffinity: true}', 'other'), /Cannot create an IPAMConfiguration resource with a name other than "default"/],
      [doc('{maxBlocksPerHost: -1}'), /spec\.maxBlocksPerHost: .*(>=0|0)/],
      [doc('{strictAfinity: true}'), /spec\.strictAfinity: unknown field \(did you mean strictAffinity\?\)/],
      [doc('{kubeVirtVMAddressPersistence: Maybe}'), /spec\.kubeVirtVMAddressPersistence/],
    ];
    for (const [text, why] of cases) {
      const r = await podway(['apply', '-f', file('bad.yaml', text), ...ds()]);
      assert.is.not(r.code, 0, text);
      assert.match(r.err, why, r.err);
    }
    assert.is(await kv.get(V3_KEY), null);
    assert.is(await kv.get(V2_KEY), null);
  });

  test('ipam configure --max-blocks-per-host N>0 without StrictAffinity: refused as libcalico-go\'s SetIPAMConfig, naming the field; nothing written', async () => {
    const alone = await spawned(['ipam', 'configure', '--max-blocks-per-host', '4', ...ds()]);
    assert.is(alone.code, 1, alone.err);
    assert.is(alone.out, '');
    assert.is(alone.err, 'podway: MaxBlocksPerHost requires StrictAffinity to be enabled: --max-blocks-per-host 4 with StrictAffinity false; give --strictaffinity true with it, or --max-blocks-per-host 0 (not set: 20 blocks, borrowing allowed); nothing was written\n');
    assert.is(await kv.get(V2_KEY), null);
    const both = await podway(['ipam', 'configure', '--strictaffinity', 'false', '--max-blocks-per-host', '4', ...ds()]);
    assert.is(both.code, 2, 'the flags alone say it: a usage error');
    assert.match(both.err, /^podway: MaxBlocksPerHost requires StrictAffinity to be enabled: --max-blocks-per-host 4 with StrictAffinity false/);
    assert.is(await ok(['ipam', 'configure', '--strictaffinity', 'true', '--max-blocks-per-host', '4', ...ds()]), 'Successfully set StrictAffinity to: true\nSuccessfully set MaxBlocksPerHost to: 4\n');
    // strict affinity off while the limit is stored: refused too
    const off = await podway(['ipam', 'configure', '--strictaffinity', 'false', ...ds()]);
    assert.is(off.code, 1);
    assert.is(off.err, 'podway: MaxBlocksPerHost requires StrictAffinity to be enabled: MaxBlocksPerHost is 4 in /calico/ipam/v2/config; give --max-blocks-per-host 0 with --strictaffinity false (not set: 20 blocks, borrowing allowed); nothing was written\n');
    assert.is(await v2(), '{"strict_affinity":true,"auto_allocate_blocks":true,"maxBlocksPerHost":4}');
    assert.is(await ok(['ipam', 'configure', '--strictaffinity', 'false', '--max-blocks-per-host', '0', ...ds()]), 'Successfully set StrictAffinity to: false\nSuccessfully set MaxBlocksPerHost to: 0\n');
    assert.is(await v2(), '{"auto_allocate_blocks":true}');
  });

  test('autoAllocateBlocks false (absent from /calico/ipam/v2/config, as Go omits a false): get shows false, as ipam show does; ipam configure --strictaffinity false then refused (both off), not written back as true', async () => {
    assert.is((await podway(['apply', '-f', file('c.yaml', doc('{strictAffinity: true, autoAllocateBlocks: false}')), ...ds()])).code, 0);
    assert.is(await v2(), '{"strict_affinity":true}');
    assert.match(await ok(['get', 'ipamconfig', 'default', ...ds()]), /^default\s+true\s+false\s*$/m);
    assert.match(await ok(['ipam', 'show', '--show-configuration', ...ds()]), /\| AutoAllocateBlocks \| false \|/);
    const off = await podway(['ipam', 'configure', '--strictaffinity', 'false', ...ds()]);
    assert.is(off.code, 1, off.err);
    assert.match(off.err, "Cannot disable 'StrictAffinity' and 'AutoAllocateBlocks' at the same time");
    assert.is(await v2(), '{"strict_affinity":true}', 'nothing written');
  });
  return test;
}

ipamConfigurationSuite(embeddedTarget).run();
const last = ipamConfigurationSuite(etcdTarget);
last.after(async () => { await stopEtcd(); });
last.run();
