/**
 * CNI_ARGS the plugin cannot read (podman user review, MED 2): a DEL still tears the container down
 * and succeeds (the CNI spec: DEL cleans up what it can; a kubelet would retry a failed one for
 * ever), saying on stderr what it passed over; an ADD refuses them (code 4) in the config's
 * cniVersion, not the newest one. Root and network namespaces (harness.ts: the installed plugin).
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { withHarness } from './harness';
import { Ipam } from '../../src/control/ipam';
import { isRoot } from '../helpers/netns';

if (!isRoot()) throw new Error('the CNI plugin tests need root (network namespaces)');

test('DEL with malformed CNI_ARGS: the pod is torn down (interface, address, endpoint) and DEL succeeds, stderr naming what was passed over', async () => {
  await withHarness(async (h) => {
    // A plain CNI pod, DEL'd with CNI_ARGS=garbage; a pod named in CNI_ARGS, DEL'd with its names and a bad part.
    const plain = h.pod('argsplain');
    const named = h.pod('argsnamed');
    const a = `argsa${h.tag}`;
    const b = `argsb${h.tag}`;
    await h.add(plain, a);
    await h.add(named, b, { args: 'IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=argspod' });
    assert.is(h.caliLinks().length, 2);
    assert.is((await h.workloadEndpoints()).length, 2);

    const da = await h.call({ command: 'DEL', containerId: a, netns: plain.path, ifname: 'eth0', args: 'garbage' });
    assert.is(da.exitCode, 0, da.stdout + da.stderr);
    assert.is(da.stdout, '');
    assert.match(da.stderr, `DEL ${a}: CNI_ARGS: "garbage" is not KEY=VALUE`);
    const db = await h.call({ command: 'DEL', containerId: b, netns: named.path, ifname: 'eth0', args: 'IgnoreUnknown=1;K8S_POD_NAMESPACE=default;oops;K8S_POD_NAME=argspod' });
    assert.is(db.exitCode, 0, db.stdout + db.stderr);
    assert.match(db.stderr, `DEL ${b}: CNI_ARGS: "oops" is not KEY=VALUE`);

    for (const ns of [plain, named]) assert.equal(h.ipJson(ns, 'link', 'show').map((l) => l.ifname), ['lo']);
    assert.equal(h.caliLinks(), []);
    assert.equal(await h.workloadEndpoints(), []);
    assert.equal(await h.handles(), []);
    assert.equal(await new Ipam(h.kv).check(), []);
  });
});

test('DEL whose K8S_POD_NAME part is malformed: the pod\'s veth (named after the pod) and its endpoint go all the same, found by the container\'s record', async () => {
  await withHarness(async (h) => {
    const named = h.pod('argspodname');
    const gone = h.pod('argspodgone');
    const c = `argsc${h.tag}`;
    const d = `argsd${h.tag}`;
    await h.add(named, c, { args: 'IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=argspodc' });
    await h.add(gone, d, { args: 'IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=argspodd' });
    assert.is(h.caliLinks().length, 2);
    // The namespace still there: its eth0 is proven this container's through the veth ADD named after the pod.
    const dc = await h.call({ command: 'DEL', containerId: c, netns: named.path, ifname: 'eth0', args: 'IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME' });
    assert.is(dc.exitCode, 0, dc.stdout + dc.stderr);
    assert.match(dc.stderr, `DEL ${c}: CNI_ARGS: "K8S_POD_NAME" is not KEY=VALUE`);
    assert.match(dc.stderr, `DEL ${c}: the pod's name is taken from its WorkloadEndpoint default/`);
    assert.not.match(dc.stderr, 'left as it is', dc.stderr);
    assert.equal(h.ipJson(named, 'link', 'show').map((l) => l.ifname), ['lo']);
    assert.is(h.caliLinks().length, 1);
    // No CNI_NETNS (the namespace gone first): the host veth goes by the endpoint's interfaceName.
    const dd = await h.call({ command: 'DEL', containerId: d, ifname: 'eth0', args: 'K8S_POD_NAMESPACE=default;K8S_POD_NAME;IgnoreUnknown=1' });
    assert.is(dd.exitCode, 0, dd.stdout + dd.stderr);
    assert.equal(h.caliLinks(), []);
    assert.equal(await h.workloadEndpoints(), []);
    assert.equal(await h.handles(), []);
    assert.equal(await new Ipam(h.kv).check(), []);
  });
});

test('ADD with malformed CNI_ARGS: refused (4) naming CNI_ARGS, in the config\'s cniVersion', async () => {
  await withHarness(async (h) => {
    const pod = h.pod('argsbad');
    for (const version of ['0.4.0', '1.0.0', '1.1.0']) {
      const r = await h.call({ command: 'ADD', containerId: `argsbad${h.tag}`, netns: pod.path, ifname: 'eth0', args: 'garbage', config: h.config(version) });
      assert.is(r.exitCode, 1, r.stdout + r.stderr);
      assert.is(r.json?.code, 4, r.stdout);
      assert.match(r.json.msg, 'CNI_ARGS: "garbage" is not KEY=VALUE');
      assert.is(r.json.cniVersion, version, `the error in the config's cniVersion: ${r.stdout}`);
    }
    // An environment error before the config is read, too (CNI_COMMAND unknown).
    const verb = await h.call({ command: 'FROB', containerId: `argsbad${h.tag}`, netns: pod.path, ifname: 'eth0', config: h.config('0.4.0') });
    assert.is(verb.json?.code, 4, verb.stdout);
    assert.is(verb.json.cniVersion, '0.4.0', verb.stdout);
    assert.equal(h.ipJson(pod, 'link', 'show').map((l) => l.ifname), ['lo']);
    assert.equal(await h.handles(), []);
  });
});

test('a CNI_ARGS key given twice with two values: ADD refused (4) naming the key, nothing made; DEL takes the last and tears down', async () => {
  await withHarness(async (h) => {
    const pod = h.pod('argstwice');
    const id = `argstwice${h.tag}`;
    const r = await h.call({ command: 'ADD', containerId: id, netns: pod.path, ifname: 'eth0', args: 'IgnoreUnknown=1;IP=10.251.0.51;K8S_POD_NAME=twice;IP=10.251.0.52' });
    assert.is(r.exitCode, 1, r.stdout + r.stderr);
    assert.is(r.json?.code, 4, r.stdout);
    assert.match(r.json.msg, 'CNI_ARGS: IP is given twice (IP=10.251.0.51 and IP=10.251.0.52)');
    assert.equal(h.ipJson(pod, 'link', 'show').map((l) => l.ifname), ['lo']);
    assert.equal(await h.handles(), []);
    // the same value twice is no question
    const same = await h.add(pod, id, { args: 'IgnoreUnknown=1;IP=10.251.0.51;IgnoreUnknown=1;IP=10.251.0.51' });
    assert.is(same.json.ips[0].address, '10.251.0.51/32');
    const d = await h.call({ command: 'DEL', containerId: id, netns: pod.path, ifname: 'eth0', args: 'K8S_POD_NAME=x;K8S_POD_NAME=' });
    assert.is(d.exitCode, 0, d.stdout + d.stderr);
    assert.match(d.stderr, 'CNI_ARGS: K8S_POD_NAME is given twice (K8S_POD_NAME=x and K8S_POD_NAME=): the last one taken');
    assert.equal(h.ipJson(pod, 'link', 'show').map((l) => l.ifname), ['lo']);
    assert.equal(h.caliLinks(), []);
    assert.equal(await h.handles(), []);
    assert.equal(await h.workloadEndpoints(), []);
  });
});

test.run();
