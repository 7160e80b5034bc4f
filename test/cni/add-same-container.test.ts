/**
 * ADDs of one container run at once (review: hostile, MED 3: a runtime retrying after a timeout):
 * they take turns on the container's lock (src/cni/container-lock.ts), so every one answers the
 * same result, the pod has that one address, and IPAM holds that one only; DEL then removes the
 * lock file. Root and network namespaces (harness.ts).
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { existsSync } from 'node:fs';
import { CniHarness } from './harness';
import { Ipam } from '../../src/control/ipam';
import { containerLockFile } from '../../src/cni/container-lock';
import { isRoot } from '../helpers/netns';

if (!isRoot()) throw new Error('the CNI plugin tests need root (network namespaces)');

test('3 ADDs of one container at once: one result for all, one address held and on the pod; DEL removes the lock file', async () => {
  const h = new CniHarness();
  try {
    await h.setup();
    const pod = h.pod('same');
    const id = `same${h.tag}`;
    const runs = await Promise.all([1, 2, 3].map(() => h.call({ command: 'ADD', containerId: id, netns: pod.path, ifname: 'eth0' })));
    for (const r of runs) assert.is(r.exitCode, 0, r.stdout + r.stderr);
    assert.equal(runs[1].json, runs[0].json, 'the second answers what the first did');
    assert.equal(runs[2].json, runs[0].json, 'the third answers what the first did');
    const address = runs[0].json.ips[0].address;
    const [link] = h.ipJson(pod, 'addr', 'show', 'dev', 'eth0');
    assert.equal(link.addr_info.filter((a: any) => a.family === 'inet').map((a: any) => `${a.local}/${a.prefixlen}`), [address]);
    assert.is(link.address, runs[0].json.interfaces[1].mac);
    const ipam = new Ipam(h.kv);
    const held = (await h.kv.list('/calico/ipam/v2/assignment/')).entries.flatMap((b) => {
      const j = JSON.parse(b.value);
      return j.allocations.map((a: number | null, ord: number) => ({ a, ord, cidr: j.cidr as string })).filter((x: any) => x.a !== null && j.attributes[x.a].handle_id === `podway.${id}`);
    });
    assert.is(held.length, 1, 'one address held for the container');
    assert.equal(await ipam.check(), []);
    assert.is((await h.workloadEndpoints()).length, 1);
    assert.ok(existsSync(containerLockFile(h.ipamLockFile, id)), 'the ADDs\' lock file');

    const d = await h.call({ command: 'DEL', containerId: id, netns: pod.path, ifname: 'eth0' });
    assert.is(d.exitCode, 0, d.stdout + d.stderr);
    assert.not.ok(existsSync(containerLockFile(h.ipamLockFile, id)), 'DEL removed the lock file');
    assert.equal(await h.handles(), []);
    assert.equal(await ipam.check(), []);
  } finally {
    await h.cleanup();
  }
});

test.run();
