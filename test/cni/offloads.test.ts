/**
 * The CNI plugin's offload change on a pod's veth (netlink.ts limitPodOffloads): SCTP segmentation
 * off on the pod end, every other offload as it was, the host end untouched. Real veth in two
 * network namespaces (root). This kernel may have no SCTP at all, so the check is forced on here.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { limitPodOffloads } from '../../src/cni/netlink';
import { withNetns, veth, Netns } from '../helpers/netns';

function features(n: Netns, ifname: string): Map<string, string> {
  const m = new Map<string, string>();
  for (const line of n.exec('ethtool', ['-k', ifname]).split('\n')) {
    const r = /^\s*([a-z0-9-]+): (on|off)/.exec(line);
    if (r) m.set(r[1], r[2]);
  }
  return m;
}

test('limitPodOffloads: tx-sctp-segmentation off on the pod end only; TCP/UDP segmentation and checksums stay on', async () => {
  await withNetns(['cnio-pod', 'cnio-host'], ([pod, host]) => {
    veth(pod, 'eth0', host, 'calitest0');
    const before = features(pod, 'eth0');
    const hostBefore = features(host, 'calitest0');
    assert.is(before.get('tx-sctp-segmentation'), 'on', 'a veth takes SCTP GSO by default');
    assert.is(limitPodOffloads(pod.path, 'eth0', true), null);
    const after = features(pod, 'eth0');
    assert.is(after.get('tx-sctp-segmentation'), 'off');
    for (const [k, v] of before) if (k !== 'tx-sctp-segmentation') assert.is(after.get(k), v, k);
    assert.is(after.get('tx-tcp-segmentation'), 'on');
    assert.is(after.get('tx-udp-segmentation'), 'on');
    assert.is(after.get('tx-checksumming'), before.get('tx-checksumming'));
    assert.equal(features(host, 'calitest0'), hostBefore, 'host end untouched');
    // a kernel without SCTP: nothing run, nothing changed
    host.exec('ethtool', ['-K', 'calitest0', 'tx-sctp-segmentation', 'on']);
    assert.is(limitPodOffloads(host.path, 'calitest0', false), null);
    assert.is(features(host, 'calitest0').get('tx-sctp-segmentation'), 'on');
    // a failure is reported, not thrown (the ADD goes on; the engine's ring check is the backstop)
    const why = limitPodOffloads(pod.path, 'nosuch0', true);
    assert.ok(why && /nosuch0|No such device|no device/i.test(why), `why: ${why}`);
  });
});

test.run();
