/**
 * An ADD that fails after its address was assigned, with etcd stopped (SIGSTOP) so that its undo
 * cannot release the address either (review: hostile, LOW 8): stderr names the address and its
 * handle, left for the runtime's DEL, which (etcd resumed) releases it. The order is made certain
 * without touching the plugin: an `ip` of the test's first on the ADD's PATH (harness.ts
 * withEtcdStoppedAtAdd, as etcd-stopped-add.test.ts) stops etcd and fails the device's creation,
 * the ADD's first step after IPAM that makes something. Tap pod: etcd is on the host's loopback,
 * the plugin runs here.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { withEtcdStoppedAtAdd } from './harness';
import { Ipam } from '../../src/control/ipam';
import { handleKey } from '../../src/control/ipam/keys';

test('etcd stopped mid-ADD: the undo that cannot release the address says which, on stderr; DEL releases it', async () => {
  // after the stop, the device's creation fails
  const fail = `  echo 'RTNETLINK answers: made to fail by the test' >&2
  exit 2`;
  await withEtcdStoppedAtAdd('undo', '10.250.9.0/24', fail, async ({ etcd, h, kv, extra, env, pod, containerId: id }) => {
    const add = await h.call({ command: 'ADD', containerId: id, netns: pod.path, ifname: 'eth0', extra, env });
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
  });
});

test.run();
