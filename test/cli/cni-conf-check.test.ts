// `podway run`'s check of the CNI config dir (src/cli/cni-conf-check.ts): which podway networks
// send this node's pods to another datastore than the run's, read from real files; which are not
// its to judge (another node's, one naming no datastore, other plugins, files that are not JSON).
// The warning and the status line of a running podway: test/cli/run-start-checks.test.ts.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import * as path from 'node:path';
import { writeFileSync, renameSync, unlinkSync, mkdirSync, rmSync, readFileSync, readdirSync } from 'node:fs';
import { tempDir, ok } from './cli-kit';
import { cniConfMismatches, sameDatastore, CniConfCheck } from '../../src/cli/cni-conf-check';
import { parseDatastoreSpec } from '../../src/control/kv/spec';

const spec = (t: string) => parseDatastoreSpec(t, {});

test('sameDatastore: an embedded dir as a path; etcd lists sharing an endpoint (order, trailing slash, case); kinds apart', () => {
  assert.ok(sameDatastore(spec('embedded:/var/lib/podway/datastore'), spec('embedded:/var/lib/podway/datastore/')));
  assert.not.ok(sameDatastore(spec('embedded:/var/lib/podway/a'), spec('embedded:/var/lib/podway/b')));
  assert.ok(sameDatastore(spec('etcd:http://10.0.0.1:2379,http://10.0.0.2:2379'), spec('etcd:http://10.0.0.2:2379/')));
  assert.ok(sameDatastore(spec('etcd:http://ETCD1:2379'), spec('etcd:http://etcd1:2379')));
  assert.not.ok(sameDatastore(spec('etcd:http://10.0.0.1:2379'), spec('etcd:http://10.0.0.9:2379')));
  assert.not.ok(sameDatastore(spec('etcd:http://10.0.0.1:2379'), spec('embedded:/var/lib/podway/datastore')));
});

test('cniConfMismatches: this node\'s podway networks naming another datastore, each with its file and field; the rest left alone', () => {
  const dir = tempDir();
  const w = (name: string, v: unknown) => writeFileSync(path.join(dir, name), typeof v === 'string' ? v : JSON.stringify(v));
  const mine = spec('etcd:http://127.0.0.1:2379');
  w('10-podway.conflist', { cniVersion: '1.0.0', name: 'podway', plugins: [{ type: 'podway', datastore: 'embedded:/var/lib/podway/datastore', nodename: 'n1' }] });
  // Calico's keys, in a single-plugin .conf
  w('11-calico.conf', { cniVersion: '0.4.0', name: 'k8s-pod-network', type: 'podway', datastore_type: 'etcdv3', etcd_endpoints: 'http://10.9.9.9:2379' });
  // the plugin would refuse every pod: said, naming the field
  w('12-broken.conflist', { cniVersion: '1.0.0', name: 'broken', plugins: [{ type: 'portmap' }, { type: 'podway', datastore: 42 }] });
  // not this run's to judge
  w('20-other-node.conflist', { cniVersion: '1.0.0', name: 'n2net', plugins: [{ type: 'podway', datastore: 'embedded:/x', nodename: 'n2' }] });
  w('21-env.conflist', { cniVersion: '1.0.0', name: 'fromenv', plugins: [{ type: 'podway' }] });
  w('22-same.conflist', { cniVersion: '1.0.0', name: 'same', plugins: [{ type: 'podway', datastore: 'etcd:http://127.0.0.1:2379,http://127.0.0.2:2379', nodename: 'n1' }] });
  w('87-bridge.conflist', { cniVersion: '1.0.0', name: 'br', plugins: [{ type: 'bridge' }] });
  w('90-garbage.conflist', '{ not json');
  w('README', 'not a config');
  const found = cniConfMismatches(dir, 'n1', mine);
  assert.equal(found.map((f) => [path.basename(f.file), f.network, f.field, f.datastore]), [
    ['10-podway.conflist', 'podway', 'plugins[0].datastore', 'embedded:/var/lib/podway/datastore'],
    ['11-calico.conf', 'k8s-pod-network', 'datastore_type/etcd_endpoints', 'etcd:http://10.9.9.9:2379'],
    ['12-broken.conflist', 'broken', 'plugins[1].datastore', null],
  ]);
  assert.match(found[0].message, `CNI config ${path.join(dir, '10-podway.conflist')}: network "podway" plugins[0].datastore names datastore embedded:/var/lib/podway/datastore, but this podway run uses etcd:http://127.0.0.1:2379: `);
  assert.match(found[0].message, `run \`podway cni install --datastore etcd:http://127.0.0.1:2379 --node n1 --conf-dir ${dir}\` again`);
  assert.match(found[2].message, `CNI config ${path.join(dir, '12-broken.conflist')}: network "broken" plugins[1].datastore: expected a string, got 42: the podway plugin refuses every pod with it`);
  // no such dir: nothing to say
  assert.equal(cniConfMismatches(path.join(dir, 'none'), 'n1', mine), []);
});

test('the hint\'s `cni install` writes the same network again, for this node, on the run\'s datastore (before, it gave only --datastore: install took the hostname for the node, and the conflist it wrote named a node that never attaches its pods)', async () => {
  const top = tempDir();
  const conf = path.join(top, 'net.d');
  const bin = path.join(top, 'bin');
  const old = path.join(top, 'old-store');
  const runs = path.join(top, 'run-store');
  for (const d of [conf, bin, old, runs]) mkdirSync(d, { mode: 0o700 });
  // a node name that is not the hostname (NODENAME is kept out of the CLI's environment by ok())
  const node = 'hint-node-1';
  await ok(['cni', 'install', '--datastore', `embedded:${old}`, '--node', node, '--name', 'tapnet', '--priority', '15', '--interface-type', 'tap', '--conf-dir', conf, '--bin-dir', bin]);
  const found = cniConfMismatches(conf, node, spec(`embedded:${runs}`));
  assert.equal(found.map((f) => [path.basename(f.file), f.datastore]), [['15-tapnet.conflist', `embedded:${old}`]]);
  const cmd = /run `([^`]+)` again/.exec(found[0].message)?.[1];
  assert.ok(cmd, found[0].message);
  const words = cmd!.split(' ');
  const args = words.slice(words.indexOf('cni'));
  assert.equal(args.slice(0, 4), ['cni', 'install', '--datastore', `embedded:${runs}`], cmd);
  // run only when it writes into this test's directory, never the host's /etc/cni/net.d
  assert.is(args[args.indexOf('--conf-dir') + 1], conf, cmd);
  // as the user runs it (only the plugin's directory kept off the host's)
  await ok([...args, '--bin-dir', bin]);
  assert.equal(readdirSync(conf), ['15-tapnet.conflist'], 'the same file, written again; no second network');
  const plugin = JSON.parse(readFileSync(path.join(conf, '15-tapnet.conflist'), 'utf8')).plugins[0];
  assert.equal([plugin.nodename, plugin.datastore, plugin.interfaceType], [node, `embedded:${runs}`, 'tap']);
  assert.equal(cniConfMismatches(conf, node, spec(`embedded:${runs}`)), []);
});

test('CniConfCheck (podway status on every call): a file read again only when changed, the same answer as a fresh read after each change (in place with the same size, added, renamed over, removed, the dir gone and back)', () => {
  const dir = path.join(tempDir(), 'net.d');
  mkdirSync(dir);
  const w = (name: string, v: unknown) => writeFileSync(path.join(dir, name), JSON.stringify(v));
  const mine = spec('etcd:http://127.0.0.1:2379');
  const check = new CniConfCheck(dir, 'n1', mine);
  const same = (what: string) => {
    const fresh = cniConfMismatches(dir, 'n1', mine);
    assert.equal(check.mismatches(), fresh, what);
    assert.equal(check.mismatches(), fresh, `${what} (asked again)`);
    return fresh.map((f) => `${path.basename(f.file)} ${f.datastore}`);
  };
  const net = (ds: string) => ({ cniVersion: '1.0.0', name: 'podway', plugins: [{ type: 'podway', datastore: ds, nodename: 'n1' }] });
  assert.equal(same('empty'), []);
  w('10-podway.conflist', net('etcd:http://10.9.9.9:2379'));
  assert.equal(same('added'), ['10-podway.conflist etcd:http://10.9.9.9:2379']);
  // rewritten in place, same size: only its times tell
  w('10-podway.conflist', net('etcd:http://10.9.9.8:2379'));
  assert.equal(same('in place'), ['10-podway.conflist etcd:http://10.9.9.8:2379']);
  w('10-podway.conflist', net('etcd:http://127.0.0.1:2379'));
  assert.equal(same('put right'), []);
  // what `podway cni install` and editors do: a new file renamed over the old
  w('.tmp.conflist.new', net('embedded:/x'));
  assert.equal(same('a temporary name'), []);
  renameSync(path.join(dir, '.tmp.conflist.new'), path.join(dir, '10-podway.conflist'));
  assert.equal(same('renamed over'), ['10-podway.conflist embedded:/x']);
  w('11-second.conflist', net('embedded:/y'));
  assert.equal(same('a second'), ['10-podway.conflist embedded:/x', '11-second.conflist embedded:/y']);
  unlinkSync(path.join(dir, '10-podway.conflist'));
  assert.equal(same('removed'), ['11-second.conflist embedded:/y']);
  rmSync(dir, { recursive: true });
  assert.equal(same('the dir gone'), []);
  mkdirSync(dir);
  w('11-second.conflist', net('embedded:/z'));
  assert.equal(same('the dir back'), ['11-second.conflist embedded:/z']);
});

test.run();
