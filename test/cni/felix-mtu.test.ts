/**
 * The CNI plugin's pod MTU follows Felix's tunnel MTU settings (src/control/felix-mtu.ts, the same
 * function as `podway run`'s model): FelixConfiguration vxlanMTU / ipipMTU / vxlanMTUV6 in
 * node.<node> over default, 0 auto (the underlay less the overhead), the smallest over the
 * encapsulations the pools use, a disabled pool too (Felix's encapsulation calculator); an invalid
 * value is ignored (the lower layer's used); an explicit "mtu" in the config still wins. Run as a
 * runtime runs it (harness.ts), on an embedded datastore. Root and network namespaces.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { CniHarness } from './harness';
import { applyResource } from '../../src/control/v3-store';
import { kindInfo, resourceKey } from '../../src/control/calico-kinds';
import { isRoot } from '../helpers/netns';

if (!isRoot()) throw new Error('the CNI plugin tests need root (network namespaces)');

const cid = (n: string): string => `c${n}${Math.random().toString(16).slice(2, 10)}`;

test('pod MTU: FelixConfiguration vxlanMTU / ipipMTU (node.NAME over default, 0 auto, invalid ignored), the smallest of the pools\' encapsulations, a disabled pool counted; the config\'s mtu wins', async () => {
  const h = new CniHarness();
  try {
    await h.setup({ cidr: '10.253.0.0/24', blockSize: 26, vxlanMode: 'Always' });
    h.addUplink();
    h.node.ip('link', 'set', 'eth0', 'mtu', '1500');
    const felix = (name: string, spec: Record<string, unknown>) => applyResource(h.kv, { apiVersion: 'projectcalico.org/v3', kind: 'FelixConfiguration', metadata: { name }, spec });
    let n = 0;
    const podMtu = async (more: Record<string, unknown> = {}): Promise<number> => {
      const pod = h.pod(`fm${n++}`);
      const r = await h.add(pod, cid('f'), Object.keys(more).length ? { extra: more } : {});
      assert.is(r.exitCode, 0, r.stdout + r.stderr);
      const mtu = h.ipJson(pod, 'link', 'show', 'dev', 'eth0')[0].mtu as number;
      assert.is(r.json.interfaces[1].mtu, mtu, 'the result says the MTU set');
      return mtu;
    };
    assert.is(await podMtu(), 1450, 'no setting: VXLAN auto, 1500 - 50');
    await felix('default', { vxlanMTU: 1400 });
    assert.is(await podMtu(), 1400, 'default\'s vxlanMTU');
    await felix(`node.${h.nodeName}`, { vxlanMTU: 1300 });
    assert.is(await podMtu(), 1300, 'node.NAME over default');
    await felix(`node.${h.nodeName}`, { vxlanMTU: 0 });
    assert.is(await podMtu(), 1450, 'node.NAME\'s 0 is auto, over default\'s 1400 (as Felix)');
    await felix(`node.${h.nodeName}`, { vxlanMTU: 12 });
    assert.is(await podMtu(), 1400, 'an invalid value ignored: default\'s in force');
    await felix(`node.${h.nodeName}`, {});
    // a second pool, IPIP and disabled: its encapsulation still counts (Felix's calculator), the smallest wins
    await applyResource(h.kv, { apiVersion: 'projectcalico.org/v3', kind: 'IPPool', metadata: { name: `ipip-${h.nodeName}` }, spec: { cidr: '10.254.0.0/24', blockSize: 26, ipipMode: 'Always', disabled: true } });
    await felix('default', { vxlanMTU: 1400, ipipMTU: 1350 });
    assert.is(await podMtu(), 1350, 'the disabled IPIP pool\'s ipipMTU, the smaller');
    await felix('default', { vxlanMTU: 1400 });
    assert.is(await podMtu(), 1400, 'IPIP auto (1480) is larger: vxlanMTU');
    await felix('default', { vxlanMTU: 1600 });
    assert.is(await podMtu(), 1480, 'vxlanMTU above the IPIP auto MTU: the smallest, 1480');
    assert.is(await podMtu({ mtu: 1280 }), 1280, 'the config\'s mtu wins');
    await h.kv.delete(resourceKey(kindInfo('FelixConfiguration')!, 'default'));
    assert.is(await podMtu(), 1450, 'no FelixConfiguration: auto again');
  } finally {
    await h.cleanup();
  }
});

test.run();
