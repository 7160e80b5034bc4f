/**
 * A container ID with upper case (review: hostile, session 23). libcalico-go takes any container ID
 * in a WorkloadEndpoint's spec.containerID, but resource names are lowercase, and the plain-CNI
 * endpoint name holds the container ID: such an ADD is refused up front (code 4 naming
 * CNI_CONTAINERID), before an address or an interface is made (it used to fail at the endpoint's
 * write and undo both). A pod named in CNI_ARGS names its endpoint after the pod and takes it, as
 * Calico's plugin does. Root and network namespaces (harness.ts).
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { CniHarness } from './harness';
import { Ipam } from '../../src/control/ipam';
import { isRoot } from '../helpers/netns';

if (!isRoot()) throw new Error('the CNI plugin tests need root (network namespaces)');

test('upper-case container ID: plain CNI refused up front (4, names CNI_CONTAINERID, nothing made); a k8s pod takes it, DEL releases it', async () => {
  const h = new CniHarness();
  try {
    await h.setup();
    const pod = h.pod('case');
    const id = `Upper${h.tag}`;
    const r = await h.call({ command: 'ADD', containerId: id, netns: pod.path, ifname: 'eth0' });
    assert.is(r.exitCode, 1, r.stdout + r.stderr);
    assert.is(r.json?.code, 4, r.stdout);
    assert.match(r.json.msg, `CNI_CONTAINERID "${id}" cannot be part of WorkloadEndpoint name`);
    assert.match(r.json.msg, 'refused before anything is made');
    assert.not.match(r.stderr, 'failed, and undoing', 'nothing to undo');
    assert.equal(h.ipJson(pod, 'link', 'show').map((l) => l.ifname), ['lo']);
    assert.equal(h.caliLinks(), []);
    assert.equal(await h.handles(), [], 'no address was taken');
    assert.equal(await h.workloadEndpoints(), []);
    // DEL of it succeeds (nothing to remove).
    assert.is((await h.call({ command: 'DEL', containerId: id, netns: pod.path, ifname: 'eth0' })).exitCode, 0);

    // The same ID for a k8s pod: its endpoint is named after the pod.
    const args = `K8S_POD_NAMESPACE=default;K8S_POD_NAME=case-${h.tag}`;
    const ok = await h.add(pod, id, { args });
    assert.is(ok.json.ips.length, 1, ok.stdout);
    const [wep] = await h.workloadEndpoints();
    assert.is(wep.spec.containerID, id);
    assert.is(wep.metadata.name, `${h.nodeName.replace(/-/g, '--')}-k8s-case--${h.tag}-eth0`);
    assert.equal(await h.handles(), [`podway.${id}`]);
    const del = await h.call({ command: 'DEL', containerId: id, netns: pod.path, ifname: 'eth0', args });
    assert.is(del.exitCode, 0, del.stdout + del.stderr);
    assert.equal(await h.handles(), []);
    assert.equal(await h.workloadEndpoints(), []);
    assert.equal(h.caliLinks(), []);
    assert.equal(await new Ipam(h.kv).check(), []);
  } finally {
    await h.cleanup();
  }
});

test.run();
