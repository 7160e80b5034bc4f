import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { DEFAULT_EMBEDDED_DIR, parseDatastoreSpec } from '../../src/control/kv/spec';

test('etcd: one or several endpoints', () => {
  assert.equal(parseDatastoreSpec('etcd:http://127.0.0.1:2379'), { kind: 'etcd', endpoints: ['http://127.0.0.1:2379'] });
  assert.equal(parseDatastoreSpec('etcd:http://10.0.0.1:2379,http://10.0.0.2:2379/'), {
    kind: 'etcd',
    endpoints: ['http://10.0.0.1:2379', 'http://10.0.0.2:2379'],
  });
});

test("Calico's environment: DATASTORE_TYPE=etcdv3 + ETCD_ENDPOINTS + TLS files", () => {
  const env = {
    DATASTORE_TYPE: 'etcdv3',
    ETCD_ENDPOINTS: 'https://etcd-a:2379,https://etcd-b:2379',
    ETCD_CA_CERT_FILE: 'ca.pem',
    ETCD_CERT_FILE: 'c.pem',
    ETCD_KEY_FILE: 'k.pem',
  };
  assert.equal(parseDatastoreSpec(undefined, env), {
    kind: 'etcd',
    endpoints: ['https://etcd-a:2379', 'https://etcd-b:2379'],
    tls: { caFile: 'ca.pem', certFile: 'c.pem', keyFile: 'k.pem' },
  });
  // An explicit spec wins over the environment.
  assert.equal(parseDatastoreSpec('embedded:/tmp/x', env), { kind: 'embedded', dir: '/tmp/x' });
});

test('embedded, file, and the default', () => {
  assert.equal(parseDatastoreSpec('embedded:/srv/kv'), { kind: 'embedded', dir: '/srv/kv' });
  assert.equal(parseDatastoreSpec('file:cluster.yaml'), { kind: 'file', path: 'cluster.yaml' });
  assert.equal(parseDatastoreSpec(undefined, {}), { kind: 'embedded', dir: DEFAULT_EMBEDDED_DIR });
  assert.equal(parseDatastoreSpec('', {}), { kind: 'embedded', dir: DEFAULT_EMBEDDED_DIR });
});

test('errors name the bad part', () => {
  assert.throws(() => parseDatastoreSpec('mysql:x'), /unknown kind 'mysql'/);
  assert.throws(() => parseDatastoreSpec('/some/file.yaml'), /unknown kind '\/some\/file.yaml'/);
  assert.throws(() => parseDatastoreSpec('etcd:'), /no etcd endpoint/);
  // HOST:PORT without a scheme is http:// (https:// with TLS files), as etcd's Go client; a port is still needed
  assert.equal(parseDatastoreSpec('etcd:127.0.0.1:2379'), { kind: 'etcd', endpoints: ['http://127.0.0.1:2379'] });
  assert.throws(() => parseDatastoreSpec('etcd:127.0.0.1'), /'http:\/\/127.0.0.1' needs a host and a port/);
  assert.throws(() => parseDatastoreSpec('etcd:ftp://a:1'), /'ftp:\/\/a:1' must start with http/);
  assert.throws(() => parseDatastoreSpec('etcd:http://h'), /'http:\/\/h' needs a host and a port/);
  assert.throws(() => parseDatastoreSpec('etcd:http://a:1,https://b:2'), /mix http:\/\/ and https:\/\//);
  assert.throws(() => parseDatastoreSpec('embedded:'), /needs a directory/);
  assert.throws(() => parseDatastoreSpec('file:'), /needs the path/);
  assert.throws(() => parseDatastoreSpec(undefined, { DATASTORE_TYPE: 'kubernetes' }), /DATASTORE_TYPE=kubernetes/);
  assert.throws(() => parseDatastoreSpec(undefined, { DATASTORE_TYPE: 'etcdv3' }), /needs ETCD_ENDPOINTS/);
  assert.throws(
    () => parseDatastoreSpec('etcd:http://a:1', { ETCD_CA_CERT_FILE: 'ca.pem' }),
    /ETCD_CA_CERT_FILE.*http:\/\//,
  );
  assert.throws(
    () => parseDatastoreSpec('etcd:https://a:1', { ETCD_CA_CERT_FILE: 'ca.pem', ETCD_CERT_FILE: 'c.pem' }),
    /ETCD_CERT_FILE \(--etcd-cert-file\) and ETCD_KEY_FILE \(--etcd-key-file\) must be given together/,
  );
});

test.run();
