// What a calicoctl user types, on a real etcd (and the embedded store for label): `label KIND NAME
// KEY=VALUE [--overwrite]` / `KEY --remove` with calicoctl's messages; `-c/--config FILE` (a
// CalicoAPIConfig) and calicoctl's default file (DEFAULT_CALICOCTL_CONFIG in src/cli/calicoctl-config.ts; pointed into a temp dir
// here: the machine's is never written); ETCD_ENDPOINTS without a scheme (HOST:PORT, as etcd's Go
// client takes it); `version`'s lines. Without them: "unknown command 'label'", "unknown option
// '-c'", "ETCD_ENDPOINTS: etcd endpoint '127.0.0.1:N' is not a URL" (exit 2).
// test-resources: run-podway-sockets
// (a `podway run` on the default /run/podway/NODE.sock, or commands that compare their datastore
// with every run answering there: two such files at once see each other's runs)
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { KvStore } from '../../src/control/kv/kv';
import { CLUSTER_INFORMATION_KEY } from '../../src/control/kv/cluster-guid';
import { setDefaultConfigPath } from '../../src/cli/calicoctl-config';
import { podwayInProcess as podway, okInProcess as ok, tempDir, Target, embeddedTarget, etcdTarget, stopEtcd } from './cli-kit';

const RES = '/calico/resources/v3/projectcalico.org/';
const FILE = [
  'apiVersion: projectcalico.org/v3', 'kind: IPPool', 'metadata: {name: p1, labels: {keep: "yes"}}', 'spec: {cidr: 10.57.0.0/16}', '---',
  'apiVersion: projectcalico.org/v3', 'kind: NetworkSet', 'metadata: {name: ns1, namespace: prod}', 'spec: {nets: [10.9.0.0/24]}', '',
].join('\n');

function labelSuite(target: Target) {
  const test = suite(`label on ${target.name}`);
  let spec = '';
  let kv: KvStore;
  test.before.each(async () => {
    ({ spec, kv } = await target.open());
    const work = tempDir('podway-label-');
    writeFileSync(path.join(work, 'all.yaml'), FILE);
    await ok(['apply', '-f', path.join(work, 'all.yaml'), '--datastore', spec]);
  });
  test.after.each(async () => { await kv.close(); });
  const stored = async (key: string) => JSON.parse((await kv.get(`${RES}${key}`))!.value);

  test('set, the same value again, a new value refused without --overwrite, --overwrite, --remove; other labels and uid kept', async () => {
    const ds = ['--datastore', spec];
    const uid = (await stored('ippools/p1')).metadata.uid;
    assert.is(await ok(['label', 'ippools', 'p1', 'rack=r1', ...ds]), 'Successfully set label rack on ippools p1\n');
    assert.equal((await stored('ippools/p1')).metadata.labels, { keep: 'yes', rack: 'r1' });
    assert.is(await ok(['label', 'ippool', 'p1', 'rack=r1', ...ds]), 'Successfully updated label rack on ippool p1\n');
    const clash = await podway(['label', 'ippool', 'p1', 'rack=r2', ...ds]);
    assert.is(clash.code, 1);
    assert.is(clash.err, "podway: failed to update label of ippool p1, key rack is already present. please use '--overwrite' to set a new value.\n");
    assert.is((await stored('ippools/p1')).metadata.labels.rack, 'r1');
    assert.is(await ok(['label', 'ippool', 'p1', 'rack=r2', '--overwrite', ...ds]), 'Successfully updated label rack on ippool p1\n');
    assert.is((await stored('ippools/p1')).metadata.labels.rack, 'r2');
    assert.is(await ok(['label', 'ippool', 'p1', 'rack', '--remove', ...ds]), 'Successfully removed label rack from ippool p1\n');
    const after = await stored('ippools/p1');
    assert.equal(after.metadata.labels, { keep: 'yes' });
    assert.is(after.metadata.uid, uid);
    const gone = await podway(['label', 'ippool', 'p1', 'rack', '--remove', ...ds]);
    assert.is(gone.code, 1);
    assert.is(gone.err, 'podway: cannot remove label of ippool p1, key rack does not exist\n');
  });

  test('namespaced kinds with -n; a missing resource; bad labels and --overwrite with --remove are usage errors', async () => {
    const ds = ['--datastore', spec];
    assert.is(await ok(['label', 'networkset', 'ns1', '-n', 'prod', 'app=web', ...ds]), 'Successfully set label app on networkset ns1\n');
    assert.equal((await stored('networksets/prod/ns1')).metadata.labels, { app: 'web' });
    const wrongNs = await podway(['label', 'networkset', 'ns1', 'app=web', ...ds]);
    assert.is(wrongNs.code, 1);
    assert.is(wrongNs.err, 'podway: networkset ns1 not found in namespace default\n');
    const missing = await podway(['label', 'ippool', 'nope', 'a=b', ...ds]);
    assert.is(missing.code, 1);
    assert.is(missing.err, 'podway: ippool nope not found\n');
    for (const [label, why] of [['a=b=c', /invalid label a=b=c/], ['rack', /invalid label rack \(expected KEY=VALUE/], ['bad key=x', /key name "bad key"/], ['a=bad value', /value "bad value"/]] as const) {
      const r = await podway(['label', 'ippool', 'p1', label, ...ds]);
      assert.is(r.code, 2, `${label}: ${r.err}`);
      assert.match(r.err, why);
    }
    const both = await podway(['label', 'ippool', 'p1', 'a=b', '--overwrite', '--remove', ...ds]);
    assert.is(both.code, 2);
    assert.match(both.err, /--overwrite or --remove, not both/);
    assert.equal((await stored('ippools/p1')).metadata.labels, { keep: 'yes' }, 'nothing written by the refused ones');
  });
  return test;
}

labelSuite(embeddedTarget).run();
labelSuite(etcdTarget).run();

const conf = suite('calicoctl -c/--config, its default file, ETCD_ENDPOINTS without a scheme, version (etcd)');
let kv: KvStore;
let endpoint = '';
let work = '';
conf.before.each(async () => {
  const t = await etcdTarget.open();
  kv = t.kv;
  endpoint = t.spec.slice('etcd:'.length);
  work = tempDir('podway-cfg-');
  writeFileSync(path.join(work, 'pool.yaml'), FILE);
  await ok(['apply', '-f', path.join(work, 'pool.yaml'), '--datastore', t.spec]);
});
conf.after.each(async () => {
  setDefaultConfigPath(undefined);
  await kv.close();
});
const hostPort = () => endpoint.replace(/^http:\/\//, '');
const cfg = (name: string, text: string) => {
  const p = path.join(work, name);
  writeFileSync(p, text);
  return p;
};

conf('-c FILE (YAML or JSON, endpoint with or without http://) reads the store it names; the datastore is said nowhere else', async () => {
  const yaml = cfg('calicoctl.cfg', `apiVersion: projectcalico.org/v3\nkind: CalicoAPIConfig\nmetadata: {}\nspec:\n  datastoreType: etcdv3\n  etcdEndpoints: ${hostPort()}\n`);
  const r = await podway(['get', 'ippool', '-c', yaml]);
  assert.is(r.code, 0, r.err);
  assert.match(r.out, /p1\s+10\.57\.0\.0\/16/);
  assert.is(r.err, '');
  const json = cfg('c.json', JSON.stringify({ apiVersion: 'projectcalico.org/v3', kind: 'CalicoAPIConfig', spec: { etcdEndpoints: endpoint } }));
  assert.is(await ok(['label', 'ippool', 'p1', 'via=json', '--config', json]), 'Successfully set label via on ippool p1\n');
  assert.is(JSON.parse((await kv.get(`${RES}ippools/p1`))!.value).metadata.labels.via, 'json');
  const ipam = await podway(['ipam', 'show', '-c', yaml]);
  assert.is(ipam.code, 0, ipam.err);
  assert.match(ipam.out, /10\.57\.0\.0\/16/);
});

conf('a bad -c file: exit 2, one line naming the file and the field; -c with --datastore refused', async () => {
  const head = 'apiVersion: projectcalico.org/v3\nkind: CalicoAPIConfig\n';
  const cases: [string, string, RegExp][] = [
    ['missing', '', /missing: cannot read the calicoctl config file \(no such file\)/],
    ['version.cfg', 'apiVersion: v1\nkind: CalicoAPIConfig\nspec: {etcdEndpoints: a:1}\n', /version\.cfg: apiVersion: "v1" is not projectcalico\.org\/v3/],
    ['kind.cfg', 'apiVersion: projectcalico.org/v3\nkind: calicoApiConfig\n', /kind\.cfg: kind: expected CalicoAPIConfig, got "calicoApiConfig"/],
    ['typo.cfg', `${head}spec: {datastoreType: etcdv3, etcdEndpoint: a:1}\n`, /typo\.cfg: spec\.etcdEndpoint: unknown field \(did you mean etcdEndpoints\? podway reads /],
    ['k8s.cfg', `${head}spec: {datastoreType: kubernetes, kubeconfig: .kube/config}\n`, /k8s\.cfg: spec\.datastoreType: "kubernetes": podway supports etcdv3/],
    ['none.cfg', `${head}spec: {}\n`, /none\.cfg: spec\.etcdEndpoints: not given, so calicoctl would use the Kubernetes datastore/],
    ['user.cfg', `${head}spec: {etcdEndpoints: a:1, etcdUsername: u, etcdPassword: p}\n`, /user\.cfg: spec\.etcdUsername: etcd user\/password authentication is not supported/],
    ['ep.cfg', `${head}spec: {etcdEndpoints: "ftp://a:1"}\n`, /ep\.cfg: spec\.etcdEndpoints: etcd endpoint 'ftp:\/\/a:1' must start with http/],
    ['tls.cfg', `${head}spec: {etcdEndpoints: "a:1", etcdCertFile: /c.pem}\n`, /tls\.cfg: spec\.etcdCertFile and spec\.etcdKeyFile must be given together/],
    ['yaml.cfg', `${head}spec: {etcdEndpoints: [\n`, /yaml\.cfg: not YAML or JSON/],
  ];
  for (const [name, text, why] of cases) {
    const p = name === 'missing' ? path.join(work, 'missing') : cfg(name, text);
    const r = await podway(['get', 'ippool', '-c', p]);
    assert.is(r.code, 2, `${name}: ${r.err}`);
    assert.match(r.err, why);
    assert.is(r.err.split('\n').length, 2, r.err);
  }
  const both = await podway(['get', 'ippool', '-c', cfg('ok.cfg', `${head}spec: {etcdEndpoints: "${endpoint}"}\n`), '--datastore', `etcd:${endpoint}`]);
  assert.is(both.code, 2);
  assert.match(both.err, /give --datastore or -c\/--config, not both/);
});

conf('the default file: read when nothing else names a datastore, and said on stderr; Calico\'s variables win over it', async () => {
  const dflt = path.join(work, 'etc-calico-calicoctl.cfg');
  setDefaultConfigPath(dflt);
  // no file there: the embedded default, as before (its directory does not exist: refused by get)
  const none = await podway(['get', 'ippool']);
  assert.not.match(none.err, /calicoctl's default config file/);
  cfg('etc-calico-calicoctl.cfg', `apiVersion: projectcalico.org/v3\nkind: CalicoAPIConfig\nspec: {datastoreType: etcdv3, etcdEndpoints: "${endpoint}"}\n`);
  const r = await podway(['get', 'ippool']);
  assert.is(r.code, 0, r.err);
  assert.match(r.out, /p1\s+10\.57\.0\.0\/16/);
  assert.is(r.err, `podway: datastore etcd:${endpoint} from ${dflt} (calicoctl's default config file; no --datastore, -c, $PODWAY_DATASTORE, DATASTORE_TYPE or ETCD_ENDPOINTS given)\n`);
  // a variable set here names the store: the file is not read (the store it names does not exist)
  const env = await podway(['get', 'ippool'], { PODWAY_DATASTORE: `embedded:${path.join(work, 'no-store')}` });
  assert.is(env.code, 1);
  assert.not.match(env.err, /calicoctl's default config file/);
  assert.match(env.err, /no-store/);
  // a Calico host's default file for the Kubernetes datastore (the usual one there): passed over
  // with a note, the embedded default as without it (not exit 2 for every command)
  cfg('etc-calico-calicoctl.cfg', 'apiVersion: projectcalico.org/v3\nkind: CalicoAPIConfig\nspec: {datastoreType: kubernetes, kubeconfig: .kube/config}\n');
  const k8s = await podway(['get', 'ippool']);
  assert.is.not(k8s.code, 2, k8s.err); // read from the embedded default: 0, or 1 where it has no directory yet
  assert.match(k8s.err, new RegExp(`calicoctl's default config file not used \\(${dflt.replace(/[.]/g, '\\.')}: spec\\.datastoreType: "kubernetes": podway supports etcdv3\\); datastore embedded:`), k8s.err);
  // a bad default file is an error naming it, not silently passed over
  cfg('etc-calico-calicoctl.cfg', 'apiVersion: projectcalico.org/v3\nkind: CalicoAPIConfig\nspec: {etcdEndpoints: a:1, bogus: 1}\n');
  const bad = await podway(['get', 'ippool']);
  assert.is(bad.code, 2);
  assert.match(bad.err, new RegExp(`${dflt.replace(/[.]/g, '\\.')}: spec\\.bogus: unknown field`));
});

conf('ETCD_ENDPOINTS=HOST:PORT (no scheme) is http://, as etcd\'s Go client takes it; with TLS files it is https://', async () => {
  const r = await podway(['get', 'ippool'], { ETCD_ENDPOINTS: hostPort() });
  assert.is(r.code, 0, r.err);
  assert.match(r.out, /p1\s+10\.57\.0\.0\/16/);
  const { parseDatastoreSpec } = await import('../../src/control/kv/spec');
  assert.equal(parseDatastoreSpec(undefined, { ETCD_ENDPOINTS: 'a:1,b:2' }), { kind: 'etcd', endpoints: ['http://a:1', 'http://b:2'] });
  assert.equal(parseDatastoreSpec(undefined, { ETCD_ENDPOINTS: 'a:1', ETCD_CA_CERT_FILE: '/ca.pem' }), { kind: 'etcd', endpoints: ['https://a:1'], tls: { caFile: '/ca.pem', certFile: undefined, keyFile: undefined } });
  const noPort = await podway(['get', 'ippool'], { ETCD_ENDPOINTS: '127.0.0.1' });
  assert.is(noPort.code, 2);
  assert.match(noPort.err, /needs a host and a port/);
});

conf('CALICO_-prefixed variables as calicoctl reads them: CALICO_NAME when set, else NAME, each on its own; errors name the one read', async () => {
  // CALICO_ETCD_ENDPOINTS alone; and over an ETCD_ENDPOINTS naming nothing that answers
  const envs: Record<string, string>[] = [{ CALICO_ETCD_ENDPOINTS: hostPort() }, { CALICO_ETCD_ENDPOINTS: endpoint, ETCD_ENDPOINTS: 'http://127.0.0.1:1' }, { CALICO_DATASTORE_TYPE: 'etcdv3', ETCD_ENDPOINTS: hostPort() }];
  for (const env of envs) {
    const r = await podway(['get', 'ippool'], env);
    assert.is(r.code, 0, `${JSON.stringify(env)}: ${r.err}`);
    assert.match(r.out, /p1\s+10\.57\.0\.0\/16/);
  }
  // a write too, on the store the variables name
  assert.is(await ok(['label', 'ippool', 'p1', 'via=calico-env'], { CALICO_ETCD_ENDPOINTS: endpoint }), 'Successfully set label via on ippool p1\n');
  assert.is(JSON.parse((await kv.get(`${RES}ippools/p1`))!.value).metadata.labels.via, 'calico-env');
  const k8s = await podway(['get', 'ippool'], { CALICO_DATASTORE_TYPE: 'kubernetes', DATASTORE_TYPE: 'etcdv3', ETCD_ENDPOINTS: endpoint });
  assert.is(k8s.code, 2);
  assert.is(k8s.err, 'podway: CALICO_DATASTORE_TYPE=kubernetes: podway supports etcdv3 (or leave it unset for the embedded store)\n');
  const noEp = await podway(['get', 'ippool'], { CALICO_DATASTORE_TYPE: 'etcdv3' });
  assert.is(noEp.code, 2);
  assert.match(noEp.err, /CALICO_DATASTORE_TYPE=etcdv3 needs ETCD_ENDPOINTS/);
  const badEp = await podway(['get', 'ippool'], { CALICO_ETCD_ENDPOINTS: '127.0.0.1', ETCD_ENDPOINTS: endpoint });
  assert.is(badEp.code, 2);
  assert.match(badEp.err, /^podway: CALICO_ETCD_ENDPOINTS: etcd endpoint 'http:\/\/127\.0\.0\.1' needs a host and a port/);
  // set but empty still wins (envconfig looks NAME up only when CALICO_NAME is not set): no etcd
  // named, so not this one (the embedded default, no default calicoctl.cfg here)
  setDefaultConfigPath(path.join(work, 'no-calicoctl.cfg'));
  const empty = await podway(['get', 'ippool'], { CALICO_ETCD_ENDPOINTS: '', ETCD_ENDPOINTS: endpoint });
  assert.is.not(empty.code, 2, empty.err);
  assert.not.match(empty.out, /p1\s+10\.57/);
  assert.not.match(empty.err, new RegExp(endpoint.replace(/[.]/g, '\\.')));
  const { calicoctlEnv } = await import('../../src/cli/calicoctl-config');
  assert.equal(calicoctlEnv({ CALICO_ETCD_ENDPOINTS: '', ETCD_ENDPOINTS: 'a:1', ETCD_CA_CERT_FILE: '/ca', CALICO_ETCD_KEY_FILE: '/k' }),
    { CALICO_ETCD_ENDPOINTS: '', ETCD_ENDPOINTS: '', ETCD_CA_CERT_FILE: '/ca', CALICO_ETCD_KEY_FILE: '/k', ETCD_KEY_FILE: '/k' });
});

conf('version: client lines, then ClusterInformation default\'s calicoVersion and clusterType ("unknown" when empty); none stored: exit 1', async () => {
  const ds = ['--datastore', `etcd:${endpoint}`];
  const none = await podway(['version', ...ds]);
  assert.is(none.code, 1);
  assert.match(none.out, /^Client Version: {4}\S+\nGit commit: {8}\S+\n$/);
  assert.match(none.err, /^podway: Unable to retrieve Cluster Version or Type: resource does not exist: ClusterInformation\(default\)/);
  assert.ok(await kv.create(CLUSTER_INFORMATION_KEY, JSON.stringify({ kind: 'ClusterInformation', apiVersion: 'projectcalico.org/v3', metadata: { name: 'default' }, spec: { clusterGUID: 'a'.repeat(32), clusterType: 'bgp,etcd', calicoVersion: 'v3.28.0', datastoreReady: true } })));
  const out = await ok(['version', ...ds]);
  assert.match(out, /\nCluster Version: {3}v3\.28\.0\nCluster Type: {6}bgp,etcd\n$/);
  const ci = (await kv.get(CLUSTER_INFORMATION_KEY))!;
  assert.ok(await kv.update(CLUSTER_INFORMATION_KEY, JSON.stringify({ kind: 'ClusterInformation', apiVersion: 'projectcalico.org/v3', metadata: { name: 'default' }, spec: { clusterGUID: 'a'.repeat(32), datastoreReady: true } }), ci.modRevision));
  assert.match(await ok(['version', ...ds]), /\nCluster Version: {3}unknown\nCluster Type: {6}unknown\n$/);
});

conf.after(async () => { await stopEtcd(); });
conf.run();
