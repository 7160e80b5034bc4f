/**
 * An ADD that fails after its address was assigned, with etcd stopped (SIGSTOP) so that its undo
 * cannot release the address either (review: hostile, LOW 8): stderr names the address and its
 * handle, left for the runtime's DEL, which (etcd resumed) releases it. The order is made certain
 * without touching the plugin: an `ip` of the test's first on the ADD's PATH (as
 * add-del-race.test.ts) stops etcd and fails the device's creation, the ADD's first step after IPAM
 * that makes something. Tap pod: etcd is on the host's loopback, the plugin runs here.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { CniHarness } from './harness';
import { EtcdKv } from '../../src/control/kv/etcd-kv';
import { applyResource } from '../../src/control/v3-store';
import { registerNode } from '../../src/control/node-registration';
import { Ipam } from '../../src/control/ipam';
import { handleKey } from '../../src/control/ipam/keys';
import { startEtcd, ETCD_BINARY } from '../helpers/etcd';

test('etcd stopped mid-ADD: the undo that cannot release the address says which, on stderr; DEL releases it', async () => {
  if (!existsSync(ETCD_BINARY)) throw new Error(`${ETCD_BINARY} missing (scripts/setup.sh installs etcd-server)`);
  const etcd = await startEtcd();
  const h = new CniHarness(undefined, false);
  const kv = new EtcdKv({ endpoints: [etcd.endpoint] });
  const wrap = mkdtempSync(path.join(tmpdir(), 'podway-undo-ip-'));
  try {
    await h.setup();
    await applyResource(kv, { apiVersion: 'projectcalico.org/v3', kind: 'IPPool', metadata: { name: 'undo-pool' }, spec: { cidr: '10.250.9.0/24', blockSize: 26 } });
    await registerNode(kv, { name: h.nodeName, ipv4Address: '10.99.0.1/24' });
    const extra = { datastore: undefined, datastore_type: 'etcdv3', etcd_endpoints: etcd.endpoint, interfaceType: 'tap', datastoreTimeoutMs: 1500 };
    writeFileSync(path.join(wrap, 'ip'), `#!/bin/sh
if [ "$CNI_COMMAND" = ADD ] && [ "$1" = -batch ]; then
  kill -STOP ${etcd.pid()}
  echo 'RTNETLINK answers: made to fail by the test' >&2
  exit 2
fi
exec /usr/sbin/ip "$@"
`, { mode: 0o755 });
    const pod = h.pod('undo');
    const id = `undo${h.tag}`;
    const add = await h.call({ command: 'ADD', containerId: id, netns: pod.path, ifname: 'eth0', extra, env: { PATH: `${wrap}:/usr/sbin:/usr/bin:/sbin:/bin` } });
    etcd.resume();
    assert.is(add.exitCode, 1, JSON.stringify(add));
    assert.is(add.json?.code, 101, `the ADD's own failure (the device's creation) on stdout, not main.ts's 999: ${add.stdout}`);
    const held = await new Ipam(kv).check();
    assert.equal(held, [], 'IPAM consistent');
    const handle = await kv.get(handleKey(`podway.${id}`));
    assert.ok(handle, 'the address is still held (the undo could not release it)');
    const m = /could not release its address\(es\) (\S+) \(IPAM handle podway\.\S+\): .*left held until the runtime's DEL/.exec(add.stderr);
    assert.ok(m, `stderr names the address left: ${add.stderr}`);
    assert.ok(m![1].startsWith('10.250.9.'), m![1]);

    const del = await h.call({ command: 'DEL', containerId: id, netns: pod.path, ifname: 'eth0', extra });
    assert.is(del.exitCode, 0, del.stdout + del.stderr);
    assert.is(await kv.get(handleKey(`podway.${id}`)), null, 'DEL released it');
  } finally {
    try { etcd.resume(); } catch { /* gone */ }
    rmSync(wrap, { recursive: true, force: true });
    await kv.close().catch(() => undefined);
    await h.cleanup();
    await etcd.stop();
  }
});

test.run();
