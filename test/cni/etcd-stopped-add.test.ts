/**
 * etcd stopped (SIGSTOP) in the middle of an ADD: the plugin answers a CNI error naming etcd and its
 * endpoint (code 11, try again later) and exits 1, instead of ending with nothing to wait for (exit
 * 0, empty stdout: Node 20 never emits 'close' for an HTTP/2 session destroyed while its peer is
 * stopped, and etcd-lite's close() waited for it; main.ts's guard answered code 999 for it). The
 * order is made certain without touching the plugin: an `ip` of the test's first on the ADD's PATH
 * (harness.ts withEtcdStoppedAtAdd, as undo-stderr.test.ts) stops etcd at the device's creation and
 * then creates it. Tap pod: etcd is on the host's loopback, the plugin runs here.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { withEtcdStoppedAtAdd } from './harness';
import { Ipam } from '../../src/control/ipam';

test('etcd stopped mid-ADD: exit 1 with a CNI error naming etcd and its endpoint (not 999, not exit 0); after it resumes, DEL cleans up', async () => {
  // nothing after the stop: the device is created as without the wrapper
  await withEtcdStoppedAtAdd('stopped', '10.250.10.0/24', '', async ({ etcd, h, kv, extra, env, pod, containerId: id }) => {
    // A bound on the whole call (the harness SIGKILLs it past it and says so in stderr).
    const add = await h.call({ command: 'ADD', containerId: id, netns: pod.path, ifname: 'eth0', extra, env, timeoutMs: 45_000 });
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
  });
});

test.run();
