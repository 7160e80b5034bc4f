/**
 * etcd TLS mistakes an operator makes, as the CLI and `podway run` tell them (revops): an https://
 * endpoint for a plain-http etcd says the endpoint may not speak TLS (it is otherwise "Client
 * network socket disconnected before secure TLS connection was established", retried forever by
 * podway run), and a TLS file that is there but is not PEM is a configuration error for podway run: exit
 * 2, which the systemd unit does not restart, naming the file and its flag; one not there yet exits 1
 * (another unit may write it a moment later at boot).
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import * as path from 'node:path';
import { existsSync } from 'node:fs';
import { startEtcd, type EtcdServer } from '../helpers/etcd';
import { podway, tempDir } from './cli-kit';

let etcd: EtcdServer | undefined;
test.after(async () => { await etcd?.stop(); });

test('an https:// endpoint for a plain-http etcd: the error says the endpoint may not speak TLS', async () => {
  etcd = await startEtcd();
  const https = etcd.endpoint.replace(/^http:/, 'https:');
  const r = await podway(['get', 'ippool', '--datastore', `etcd:${https}`]);
  assert.is(r.code, 1, r.err + r.out);
  // the dropped hello is a disconnect or, when etcd's RST is seen first (a loaded machine), a reset
  assert.match(r.err, /(Client network socket disconnected before secure TLS connection was established|read ECONNRESET) \(the endpoint may not speak TLS: an http:\/\/ etcd given as https:\/\/\?\)/, r.err);
  // the same store over http:// answers
  const good = await podway(['get', 'ippool', '--datastore', `etcd:${etcd.endpoint}`]);
  assert.is(good.code, 0, good.err);
});

test('podway run with a TLS file that is not PEM: exit 2 (a configuration error); one not there yet: 1; each naming the file and the flag, before anything is made', async () => {
  const dir = tempDir('podway-opsfix2-tls-');
  const sock = path.join(dir, 'run.sock');
  const cases: [string[], RegExp, number][] = [
    [['--etcd-ca-cert-file', path.join(dir, 'missing-ca.pem')], /cannot read the CA certificate file .*missing-ca\.pem \(--etcd-ca-cert-file \/ ETCD_CA_CERT_FILE\)/, 1],
    [['--etcd-ca-cert-file', __filename], /the CA certificate file .* \(--etcd-ca-cert-file \/ ETCD_CA_CERT_FILE\) is not a PEM certificate/, 2],
  ];
  for (const [flags, want, code] of cases) {
    const r = await podway(['run', '--node', `opsfix2-${process.pid}`, '--ip', '10.78.9.9/24', '--control', sock, '--model-cache', 'none', '--datastore', 'etcd:https://127.0.0.1:1', ...flags]);
    assert.is(r.code, code, `${flags.join(' ')}: ${r.err}${r.out}`);
    assert.match(r.err, want, r.err);
    assert.not.ok(existsSync(sock), 'no control socket made');
  }
  // the same files through ETCD_CA_CERT_FILE: the same
  const env = await podway(['run', '--node', `opsfix2-${process.pid}`, '--ip', '10.78.9.9/24', '--control', sock, '--model-cache', 'none', '--datastore', 'etcd:https://127.0.0.1:1'], { ETCD_CA_CERT_FILE: __filename });
  assert.is(env.code, 2, env.err);
  assert.match(env.err, /is not a PEM certificate/, env.err);
});

test.run();
