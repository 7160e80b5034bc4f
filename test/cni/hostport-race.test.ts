/**
 * Two CNI ADDs asking the same host port at the same moment (root, network namespaces; docs/cni.md
 * "Host ports", *A port already taken*). The plugin's check that no other endpoint of the node has
 * the port and the ADD's endpoint write are one step under the host-wide IPAM lock (plugin.ts
 * hostPortsSerialised; the lock re-entrant for the IPAM inside it: ipam-lock.ts heldLocks), so
 * exactly one ADD gets the port and the other is refused with the usual message, code 4, nothing
 * made for it. Before, both read the endpoints before either wrote its own and both succeeded
 * (podway run then gave the port to the name sorting first). Three rounds, each on its own port,
 * every call bounded by the harness (and the IPAM lock's 20 s bound).
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { withHarness } from './harness';
import { isRoot, sh } from '../helpers/netns';

const ROUNDS = 3;

test('two ADDs racing for one host port: one gets it, the other is refused (code 4), nothing made for it', async () => {
  if (!isRoot()) throw new Error('this test needs root (network namespaces)');
  await withHarness(async (h) => {
    for (let round = 0; round < ROUNDS; round++) {
      const hostPort = 18180 + round;
      const pods = ['a', 'b'].map((x) => ({ ns: h.pod(`r${round}${x}`), id: `race${round}${x}`, name: `race-${round}-${x}` }));
      const runs = await Promise.all(pods.map((p) => h.call({
        command: 'ADD', containerId: p.id, netns: p.ns.path, ifname: 'eth0', args: `K8S_POD_NAMESPACE=default;K8S_POD_NAME=${p.name}`,
        extra: { runtimeConfig: { portMappings: [{ hostPort, containerPort: 8080, protocol: 'tcp' }] } },
      })));
      const won = runs.filter((r) => r.exitCode === 0);
      const lost = runs.filter((r) => r.exitCode !== 0);
      assert.is(won.length, 1, `round ${round}: exactly one ADD gets port ${hostPort}: ${runs.map((r) => `${r.exitCode} ${r.stdout.trim()}`).join(' | ')}`);
      const winner = pods[runs.indexOf(won[0])];
      const loser = pods[runs.indexOf(lost[0])];
      assert.is(lost[0].json.code, 4, lost[0].stdout);
      assert.match(lost[0].json.msg, new RegExp(`tcp host port \\*:${hostPort} is already taken on node \\S+ by WorkloadEndpoint default/\\S+${winner.name.replace(/-/g, '--')}\\S* \\(container ${winner.id}, \\S+ port 8080\\); nothing was made`));
      assert.is(sh('ip', ['-n', loser.ns.name, 'link', 'show', 'eth0'], { allowFail: true }), '', `round ${round}: no interface made for the refused ADD`);
      const taking = (await h.workloadEndpoints()).filter((w) => (w.spec.ports ?? []).some((p: { hostPort: number }) => p.hostPort === hostPort));
      assert.equal(taking.map((w) => w.spec.containerID), [winner.id], `round ${round}: one endpoint holds the port`);
      assert.ok(!(await h.handles()).some((x) => x.endsWith(loser.id)), `round ${round}: the refused ADD holds no address`);
      // the winner goes: the next round starts from no holder
      const del = await h.call({ command: 'DEL', containerId: winner.id, netns: winner.ns.path, ifname: 'eth0', args: `K8S_POD_NAMESPACE=default;K8S_POD_NAME=${winner.name}` });
      assert.is(del.exitCode, 0, del.stdout);
    }
  }, { cidr: '10.249.0.0/24', blockSize: 26 });
});

test.run();
