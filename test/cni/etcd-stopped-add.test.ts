/**
 * etcd stopped (SIGSTOP) in the middle of an ADD: the plugin answers a CNI error naming etcd and its
 * endpoint (code 11, try again later) and exits 1, instead of ending with nothing to wait for (exit
 * 0, empty stdout: Node 20 never emits 'close' for an HTTP/2 session destroyed while its peer is
 * stopped, and etcd-lite's close() waited for it; main.ts's guard answered code 999 for it). The
 * order is made certain without touching the plugin: an `ip` of the test's first on the ADD's PATH
 * (as undo-stderr.test.ts) stops etcd at the device's creation and then creates it. Tap pod: etcd is
 * on the host's loopback, the plugin runs here.
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
import { startEtcd, ETCD_BINARY } from '../helpers/etcd';

test('etcd stopped mid-ADD: exit 1 with a CNI error naming etcd and its endpoint (not 999, not exit 0); after it resumes, DEL cleans up', async () => {
  if (!existsSync(ETCD_BINARY)) throw new Error(`${ETCD_BINARY} missing (scripts/setup.sh installs etcd-server)`);
  const etcd = await startEtcd();
  const h = new CniHarness(undefined, false);
  const kv = new EtcdKv({ endpoints: [etcd.endpoint] });
  const wrap = mkdtempSync(path.join(tmpdir(), `podway-cnifix-ip-${process.pid}-`));
  try {
    await h.setup();
    await applyResource(kv, { apiVersion: 'projectcalico.org/v3', kind: 'IPPool', metadata: { name: 'stopped-pool' }, spec: { cidr: '10.250.10.0/24', blockSize: 26 } });
    await registerNode(kv, { name: h.nodeName, ipv4Address: '10.99.0.1/24' });
    const extra = { datastore: undefined, datastore_type: 'etcdv3', etcd_endpoints: etcd.endpoint, interfaceType: 'tap', datastoreTimeoutMs: 1500 };
    // The tap device's set-up (`ip -batch` in the pod) comes after IPAM and before the endpoint's write.
    writeFileSync(path.join(wrap, 'ip'), `#!/bin/sh
if [ "$CNI_COMMAND" = ADD ] && [ "$1" = -batch ]; then kill -STOP ${etcd.pid()}; fi
exec /usr/sbin/ip "$@"
`, { mode: 0o755 });
    const pod = h.pod('stopped');
    const id = `stopped${h.tag}`;
    // A bound on the whole call (the harness SIGKILLs it past it and says so in stderr).
    const add = await h.call({ command: 'ADD', containerId: id, netns: pod.path, ifname: 'eth0', extra, env: { PATH: `${wrap}:/usr/sbin:/usr/bin:/sbin:/bin` }, timeoutMs: 45_000 });
    etcd.resume();
    assert.not.match(add.stderr, 'SIGKILLed', `ended by itself: ${add.stderr}`);
    assert.is(add.exitCode, 1, JSON.stringify(add));
    assert.is(add.json?.code, 11, `a try-again-later CNI error on stdout: ${add.stdout}`);
    assert.match(add.json.msg, `etcd ${etcd.endpoint}`, 'names etcd and its endpoint');
    assert.not.match(add.json.msg, 'ended without an answer', 'the answer is the etcd error, not main.ts\'s guard');

    const del = await h.call({ command: 'DEL', containerId: id, netns: pod.path, ifname: 'eth0', extra });
    assert.is(del.exitCode, 0, del.stdout + del.stderr);
    assert.equal(await new Ipam(kv).check(), [], 'IPAM consistent');
    assert.is((await kv.list(`/calico/ipam/v2/handle/podway.${id}`)).entries.length, 0, 'nothing held for the container');
    assert.equal(h.ipJson(pod, 'link', 'show').map((l) => l.ifname), ['lo'], 'no device left in the pod');
  } finally {
    try { etcd.resume(); } catch { /* gone */ }
    rmSync(wrap, { recursive: true, force: true });
    await kv.close().catch(() => undefined);
    await h.cleanup();
    await etcd.stop();
  }
});

test.run();
