// The CNI config check (src/cli/cni-conf-check.ts) with etcd on both sides, against two real etcds
// on loopback (A and B: their own free ports and data dirs, stopped by PID): once the endpoints were
// asked for their cluster IDs (CniConfCheck.askClusterIds, what podway run does at start), a
// network's etcd is the run's when every cluster its endpoints answered for is the run's (A under
// another URL, through a TCP forwarder to A: not a mismatch, though no URL is shared), and not
// when it also names B (though it shares A's URL); an endpoint that does not answer leaves the
// endpoint-overlap rule. Without the cluster IDs the first two are judged the other way round.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import * as path from 'node:path';
import { mkdirSync, writeFileSync } from 'node:fs';
import { tempDir } from './cli-kit';
import { CniConfCheck, cniConfMismatches, sameDatastore, etcdEndpointKey } from '../../src/cli/cni-conf-check';
import { parseDatastoreSpec } from '../../src/control/kv/spec';
import { startEtcd, freePort, type EtcdServer } from '../helpers/etcd';
import { startTcpProxy, type TcpProxy } from '../helpers/tcp-proxy';

const spec = (t: string) => parseDatastoreSpec(t, {});

let a: EtcdServer;
let b: EtcdServer;
let alias: TcpProxy;
let dead = '';

test.before(async () => {
  a = await startEtcd();
  b = await startEtcd();
  alias = await startTcpProxy(a.clientPort);
  dead = `http://127.0.0.1:${await freePort()}`;
});

test.after(async () => {
  await alias?.close();
  await a?.stop();
  await b?.stop();
});

/** The mismatches as `file datastore`, and the messages. */
const listed = (found: ReturnType<typeof cniConfMismatches>) => found.map((f) => `${path.basename(f.file)} ${f.datastore}`);

test('sameDatastore: by cluster ID where both sides have one, else by a shared endpoint', () => {
  const ids = new Map([[etcdEndpointKey('http://x:1'), '11'], [etcdEndpointKey('http://y:1'), '11'], [etcdEndpointKey('http://z:1'), '22']]);
  assert.ok(sameDatastore(spec('etcd:http://x:1'), spec('etcd:http://Y:1/'), ids), 'another URL of one cluster');
  assert.not.ok(sameDatastore(spec('etcd:http://x:1'), spec('etcd:http://z:1,http://x:1'), ids), 'shares x, but names cluster 22 too');
  assert.ok(sameDatastore(spec('etcd:http://x:1'), spec('etcd:http://w:1,http://x:1'), ids), 'w never answered: the clusters known are the run\'s');
  assert.ok(sameDatastore(spec('etcd:http://x:1'), spec('etcd:http://w:1,http://x:1')), 'no IDs: a shared endpoint');
  assert.not.ok(sameDatastore(spec('etcd:http://x:1'), spec('etcd:http://y:1')), 'no IDs: nothing shared');
  assert.not.ok(sameDatastore(spec('etcd:http://w:1'), spec('etcd:http://y:1'), ids), 'w unknown: no endpoint shared');
});

test('two real etcds: the check compares by the clusters the endpoints answer for, at start as podway run asks it', async () => {
  const dir = path.join(tempDir(), 'net.d');
  mkdirSync(dir);
  const w = (name: string, ds: string) => writeFileSync(path.join(dir, name), JSON.stringify({ cniVersion: '1.0.0', name: name.replace(/\..*$/, ''), plugins: [{ type: 'podway', datastore: ds, nodename: 'n1' }] }));
  w('10-alias.conflist', `etcd:${alias.endpoint}`);
  w('20-other.conflist', `etcd:${b.endpoint}`);
  w('30-mixed.conflist', `etcd:${b.endpoint},${a.endpoint}`);
  w('40-dead-member.conflist', `etcd:${dead},${a.endpoint}`);
  const mine = spec(`etcd:${a.endpoint}`);
  // the endpoints alone (before the IDs): the alias looks like another datastore, the mixed list like this one
  assert.equal(listed(cniConfMismatches(dir, 'n1', mine)), [`10-alias.conflist etcd:${alias.endpoint}`, `20-other.conflist etcd:${b.endpoint}`]);
  const check = new CniConfCheck(dir, 'n1', mine);
  const found = await check.askClusterIds();
  const ids = check.clusterIds()!;
  const idA = ids.get(etcdEndpointKey(a.endpoint));
  const idB = ids.get(etcdEndpointKey(b.endpoint));
  assert.ok(typeof idA === 'string' && typeof idB === 'string' && idA !== idB, `two clusters: ${JSON.stringify([...ids])}`);
  assert.is(ids.get(etcdEndpointKey(alias.endpoint)), idA, 'the forwarder reaches A');
  assert.is(ids.get(etcdEndpointKey(dead)), null, 'nothing listens there');
  assert.equal(listed(found), [`20-other.conflist etcd:${b.endpoint}`, `30-mixed.conflist etcd:${b.endpoint},${a.endpoint}`]);
  assert.match(found[1].message, `network "30-mixed" plugins[0].datastore names datastore etcd:${b.endpoint},${a.endpoint} (etcd cluster `);
  assert.match(found[1].message, `; this run's is ${idA}), but this podway run uses etcd:${a.endpoint}: `);
  assert.equal(check.mismatches(), found, 'status after: the same, from the IDs kept');
  // B gone (killed by its PID): its cluster unknown, the overlap decides for what names it
  await b.kill();
  const after = await check.askClusterIds();
  assert.is(check.clusterIds()!.get(etcdEndpointKey(b.endpoint)), null);
  assert.equal(listed(after), [`20-other.conflist etcd:${b.endpoint}`], 'the mixed list: only A answered, A is the run\'s');
  assert.not.match(after[0].message, 'etcd cluster', 'not told by a cluster ID');
});

test('a run on another kind of datastore asks nothing', async () => {
  const dir = path.join(tempDir(), 'net.d');
  mkdirSync(dir);
  writeFileSync(path.join(dir, '10.conflist'), JSON.stringify({ cniVersion: '1.0.0', name: 'n', plugins: [{ type: 'podway', datastore: `etcd:${a.endpoint}` }] }));
  const check = new CniConfCheck(dir, 'n1', spec('embedded:/var/lib/podway/datastore'));
  assert.equal(listed(await check.askClusterIds()), [`10.conflist etcd:${a.endpoint}`]);
  assert.is(check.clusterIds(), null);
});

test.run();
