/**
 * Host ports and a Kubernetes pod's new sandbox (root, network namespaces; the plugin on the
 * embedded store, podway run as the node). A k8s WorkloadEndpoint is named after the pod, not the
 * container: a new sandbox's ADD writes over the old sandbox's endpoint when that one's DEL never
 * ran (as Calico's plugin does). Its host ports were refused as "taken" by that same endpoint (code
 * 4, kubelet retrying for ever); now the endpoint being replaced is no clash, while another pod's
 * is still refused.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { CniHarness, RunningPodway } from './harness';
import { isRoot } from '../helpers/netns';

test('a k8s pod\'s new sandbox keeps its host port over its old sandbox\'s endpoint (no DEL ran); another pod asking it is refused (4)', async () => {
  if (!isRoot()) throw new Error('this test needs root (network namespaces)');
  const h = new CniHarness();
  let podway: RunningPodway | null = null;
  try {
    await h.setup({ cidr: '10.247.0.0/24', blockSize: 26 });
    h.addUplink().ip('addr', 'add', '10.99.0.254/24', 'dev', 'eth0');
    podway = h.startPodway();
    await podway.ready();
    const ports = { runtimeConfig: { portMappings: [{ hostPort: 18091, containerPort: 80, protocol: 'tcp' }] } };
    const pod = 'K8S_POD_NAMESPACE=web;K8S_POD_NAME=hp';
    await h.add(h.pod('old'), 'sbxold', { args: pod, extra: ports });
    // the old sandbox's DEL never ran; the new sandbox's ADD, same pod, same host port
    const again = await h.call({ command: 'ADD', containerId: 'sbxnew', netns: h.pod('new').path, ifname: 'eth0', args: pod, extra: ports });
    assert.is(again.exitCode, 0, `the new sandbox's ADD: ${again.stdout} ${again.stderr}`);
    const weps = (await h.workloadEndpoints()).filter((w) => w.spec.pod === 'hp');
    assert.is(weps.length, 1, 'one endpoint for the pod');
    assert.is(weps[0].spec.containerID, 'sbxnew', 'the new sandbox\'s');
    assert.equal(weps[0].spec.ports, [{ name: '', protocol: 'tcp', port: 80, hostPort: 18091, hostIP: '' }]);
    // another pod asking the same host port: refused, naming the holder
    const other = await h.call({ command: 'ADD', containerId: 'sbxother', netns: h.pod('other').path, ifname: 'eth0', args: 'K8S_POD_NAMESPACE=web;K8S_POD_NAME=hp2', extra: ports });
    assert.is(other.exitCode, 1, other.stdout);
    assert.is(other.json?.code, 4, other.stdout);
    assert.match(other.json.msg, 'tcp host port *:18091 is already taken');
    assert.match(other.json.msg, '(container sbxnew,');
  } finally {
    await podway?.stop();
    await h.cleanup();
  }
});

test.run();
