/**
 * Network policy is not enforced by podway (control/policy-kinds.ts): `podway run` says so from a
 * real datastore, the embedded store and a real etcd (root, network namespaces). One node with a
 * veth pod; a GlobalNetworkPolicy put in Calico's exact etcd format (as calicoctl stores it) before
 * the start, a NetworkPolicy added and both removed while podway runs:
 * - the log warns naming kinds, counts and names at start and on each change; the last removed: said;
 * - `podway status` carries them (unenforcedPolicies, the `policy:` line of the text);
 * - pods still talk (nothing enforced: said, not pretended).
 * Without the feature nothing is said: every assertion on the log and status fails.
 */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { Lab, LabKvStore, LabNodeSpec } from '../../src/lab/lab';
import { applyResource } from '../../src/control/v3-store';
import { controlRequest } from '../../src/dataplane/control-server';
import { guard, teardown, isRoot, logMessage, logTail, pingIn, waitLog as waitRaw } from './e2e-kit';
import type { LabNode } from '../../src/lab/lab';
import type { UnenforcedPolicies } from '../../src/control/policy-kinds';

const waitLog = (n: LabNode, re: RegExp, from: number, ms: number) => waitRaw(n, { test: (l: string) => re.test(logMessage(l)) } as RegExp, from, ms);

const SPEC: LabNodeSpec[] = [
  { name: 'node1', subnet: 'a', pods: [{ name: 'pol-1', type: 'veth' }, { name: 'pol-2', type: 'veth' }] },
  { name: 'node2', subnet: 'a', pods: [] },
];
const GNP_KEY = '/calico/resources/v3/projectcalico.org/globalnetworkpolicies/default.deny-all';
const NP_KEY = '/calico/resources/v3/projectcalico.org/networkpolicies/prod/allow-web';

for (const kind of ['embedded', 'etcd'] as const) {
  const t = suite(`policy warning ${kind}`);
  let lab: Lab | null = null;
  let store: LabKvStore | null = null;
  let ok = false;
  const status = async () => (await controlRequest(lab!.node('node1').control, { cmd: 'status' }, 5000)) as { unenforcedPolicies?: UnenforcedPolicies | null };

  t.before(async () => {
    if (!isRoot()) throw new Error('e2e tests need root (network namespaces)');
    lab = guard(new Lab(SPEC, { podOffloads: false }));
    lab.build();
    lab.setMode('vxlan');
    store = await lab.openKvStore(kind, `podway-policy-${process.pid}-`);
    await lab.useKvDatastore(store.kv, store.spec);
    // As calicoctl stores it: libcalico-go's JSON, no resourceVersion.
    await store.kv.create(GNP_KEY, JSON.stringify({
      kind: 'GlobalNetworkPolicy', apiVersion: 'projectcalico.org/v3',
      metadata: { name: 'default.deny-all', uid: '6f1c3c52-51a4-4f8e-9d35-3b1f2f7a9e10', creationTimestamp: '2026-12-01T10:00:00Z' },
      spec: { tier: 'default', selector: 'all()', types: ['Ingress', 'Egress'] },
    }));
    await lab.startPodway('node1', 20_000);
  });

  t.after(async () => {
    if (!lab) return;
    if (!ok) console.log(logTail(lab, 40));
    await teardown(lab);
    await store?.close();
  });

  t('a policy in the datastore at start: warned, in status; pods still talk', async () => {
    const n1 = lab!.node('node1');
    assert.ok(await waitLog(n1, /^1 GlobalNetworkPolicy in the datastore \(GlobalNetworkPolicy default\.deny-all\): podway does NOT enforce network policy; all pod traffic is allowed/, 0, 20_000), 'warned at start');
    const s = await status();
    assert.equal(s.unenforcedPolicies?.counts, { GlobalNetworkPolicy: 1 });
    const ping = await pingIn(lab!.pod('pol-1').ns, lab!.pod('pol-2').ip, 3, 0.1).done;
    assert.is(ping.received, 3, 'not enforced: the deny-all policy does not stop pods');
  });

  t('a policy added, then all removed, while running: said each time', async () => {
    const n1 = lab!.node('node1');
    let mark = n1.log.length;
    await applyResource(store!.kv, { apiVersion: 'projectcalico.org/v3', kind: 'NetworkPolicy', metadata: { name: 'allow-web', namespace: 'prod' }, spec: { selector: 'all()' } });
    assert.ok(await waitLog(n1, /^1 GlobalNetworkPolicy, 1 NetworkPolicy in the datastore \(GlobalNetworkPolicy default\.deny-all, NetworkPolicy prod\/allow-web\)/, mark, 20_000), 'the change warned');
    assert.equal((await status()).unenforcedPolicies?.counts, { GlobalNetworkPolicy: 1, NetworkPolicy: 1 });
    mark = n1.log.length;
    await store!.kv.delete(GNP_KEY);
    await store!.kv.delete(NP_KEY);
    assert.ok(await waitLog(n1, /^no network policy in the datastore any more$/, mark, 20_000), 'the last one removed: said');
    assert.equal((await status()).unenforcedPolicies?.counts, {});
    ok = true;
  });

  t.run();
}
