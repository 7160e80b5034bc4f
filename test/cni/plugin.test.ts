/**
 * podway's CNI plugin, run as a runtime runs it (harness.ts: the installed shim, CNI_* env only,
 * config on stdin, inside a node namespace), against an embedded datastore in a temp dir (and one
 * real etcd case): every verb, result shapes per version, repeated ADDs (same address, a broken
 * interface made again), repeated and late DELs, CHECK after a
 * route is removed, GC with a partial valid list, STATUS, bad input with its codes, failed ADDs
 * that leave nothing behind, tap pods, a delegated host-local IPAM, 20 ADDs and 20 DELs at once.
 * Root and network namespaces.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { CniHarness, withHarness } from './harness';
import { Ipam } from '../../src/control/ipam';
import { IPAM_CONFIG_KEY } from '../../src/control/ipam/keys';
import { RESOURCES_PREFIX } from '../../src/control/calico-kinds';
import { EtcdKv } from '../../src/control/kv/etcd-kv';
import { applyResource } from '../../src/control/v3-store';
import { registerNode } from '../../src/control/node-registration';
import { hostVethName, podDeviceName, workloadEndpointName } from '../../src/cni/names';
import { installCni, uninstallCni, SHIM_MARKER } from '../../src/cni/install';
import { freePort, startEtcd, startEtcdCluster, ETCD_BINARY } from '../helpers/etcd';
import { isRoot, sh } from '../helpers/netns';
import { loadedModules, REPORT_MODULES } from '../helpers/module-report';

if (!isRoot()) throw new Error('the CNI plugin tests need root (network namespaces)');

const cid = (n: string | number): string => `c${n}${Math.random().toString(16).slice(2, 10)}`;

test('VERSION answers the versions it speaks', async () => {
  await withHarness(async (h) => {
    const r = await h.call({ command: 'VERSION', config: { cniVersion: '1.0.0' } });
    assert.is(r.exitCode, 0, r.stdout);
    assert.equal(r.json, { cniVersion: '1.0.0', supportedVersions: ['0.4.0', '1.0.0', '1.1.0'] });
    const empty = await h.call({ command: 'VERSION', config: '' });
    assert.equal(empty.json.supportedVersions, ['0.4.0', '1.0.0', '1.1.0']);
  });
});

test('ADD wires the pod as Calico does and writes its WorkloadEndpoint; result shape per version; CHECK passes; DEL twice', async () => {
  await withHarness(async (h) => {
    for (const version of ['0.4.0', '1.0.0', '1.1.0']) {
      const pod = h.pod(`v${version.replace(/\./g, '')}`);
      const id = cid('v');
      const r = await h.add(pod, id, { config: h.config(version), args: `IgnoreUnknown=1;K8S_POD_NAMESPACE=web;K8S_POD_NAME=shop-${version.replace(/\./g, '')}` });
      const res = r.json;
      assert.is(res.cniVersion, version);
      const hostName = hostVethName({ orchestrator: 'k8s', namespace: 'web', pod: `shop-${version.replace(/\./g, '')}` }, id);
      assert.equal(res.interfaces[0], { name: hostName, mac: 'ee:ee:ee:ee:ee:ee' });
      assert.is(res.interfaces[1].name, 'eth0');
      assert.is(res.interfaces[1].sandbox, pod.path);
      assert.is('mtu' in res.interfaces[1], version === '1.1.0', `mtu only in 1.1.0 (${version})`);
      assert.is(res.ips.length, 1);
      assert.is(res.ips[0].interface, 1);
      assert.is(res.ips[0].gateway, '169.254.1.1');
      assert.is('version' in res.ips[0], version === '0.4.0', `ips[].version only in 0.4.0 (${version})`);
      assert.ok(/^10\.251\.0\.\d+\/32$/.test(res.ips[0].address), res.ips[0].address);
      assert.equal(res.routes, [{ dst: '0.0.0.0/0', gw: '169.254.1.1' }]);
      assert.equal(res.dns, {});

      // the namespace as the kernel has it
      const [link] = h.ipJson(pod, 'addr', 'show', 'dev', 'eth0');
      assert.is(link.mtu, 1500, 'no encapsulation in the pool: MTU 1500');
      assert.ok(link.flags.includes('UP'));
      assert.is(link.address, res.interfaces[1].mac);
      assert.ok(link.addr_info.some((a: any) => a.family === 'inet' && `${a.local}/${a.prefixlen}` === res.ips[0].address));
      const routes = h.ipJson(pod, 'route', 'show');
      assert.ok(routes.some((x) => x.dst === '169.254.1.1' && x.dev === 'eth0' && x.scope === 'link'), JSON.stringify(routes));
      assert.ok(routes.some((x) => x.dst === 'default' && x.gateway === '169.254.1.1' && x.dev === 'eth0'), JSON.stringify(routes));
      // the gateway's MAC, permanent: nothing has to answer ARP for it (podway may be restarting)
      assert.equal(h.ipJson(pod, '-4', 'neigh', 'show', 'dev', 'eth0').map((n) => [n.dst, n.lladdr, n.state]), [['169.254.1.1', 'ee:ee:ee:ee:ee:ee', ['PERMANENT']]]);
      const [host] = h.ipJson(h.node, 'link', 'show', 'dev', hostName);
      assert.is(host.address, 'ee:ee:ee:ee:ee:ee');
      assert.ok(host.flags.includes('UP'));

      // the WorkloadEndpoint, in Calico's shape
      // Calico's name: <node>-k8s-<pod>-<iface>, each '-' inside a part doubled
      const name = `${h.nodeName.replace(/-/g, '--')}-k8s-shop--${version.replace(/\./g, '')}-eth0`;
      assert.is(workloadEndpointName(h.nodeName, { orchestrator: 'k8s', namespace: 'web', pod: `shop-${version.replace(/\./g, '')}` }, id, 'eth0'), name);
      const e = await h.kv.get(`/calico/resources/v3/projectcalico.org/workloadendpoints/web/${name}`);
      assert.ok(e, `WorkloadEndpoint web/${name} written`);
      const wep = JSON.parse(e!.value);
      assert.is(wep.spec.orchestrator, 'k8s');
      assert.is(wep.spec.node, h.nodeName);
      assert.is(wep.spec.pod, `shop-${version.replace(/\./g, '')}`);
      assert.is(wep.spec.endpoint, 'eth0');
      assert.is(wep.spec.containerID, id);
      assert.is(wep.spec.interfaceName, hostName);
      assert.is(wep.spec.mac, link.address);
      assert.equal(wep.spec.ipNetworks, [res.ips[0].address]);
      assert.equal(wep.spec.profiles, ['kns.web']);
      assert.is(wep.metadata.labels['projectcalico.org/orchestrator'], 'k8s');

      // the IPAM handle and its attributes
      const hk = await h.kv.get(`/calico/ipam/v2/handle/podway.${id}`);
      assert.ok(hk, 'handle podway.<containerID>');
      const blocks = await h.kv.list('/calico/ipam/v2/assignment/');
      const attrs = blocks.entries.flatMap((b) => JSON.parse(b.value).attributes).find((a: any) => a.handle_id === `podway.${id}`);
      assert.is(attrs.secondary.node, h.nodeName);
      assert.is(attrs.secondary.pod, `shop-${version.replace(/\./g, '')}`);
      assert.is(attrs.secondary.namespace, 'web');
      assert.ok(attrs.secondary.timestamp);

      const chk = await h.call({ command: 'CHECK', containerId: id, netns: pod.path, ifname: 'eth0', args: `K8S_POD_NAMESPACE=web;K8S_POD_NAME=shop-${version.replace(/\./g, '')}`, config: h.config(version, { prevResult: res }) });
      assert.is(chk.exitCode, 0, `CHECK ${version}: ${chk.stdout}`);
      assert.is(chk.stdout, '');

      for (let i = 0; i < 2; i++) {
        const d = await h.call({ command: 'DEL', containerId: id, netns: pod.path, ifname: 'eth0', args: `K8S_POD_NAMESPACE=web;K8S_POD_NAME=shop-${version.replace(/\./g, '')}`, config: h.config(version) });
        assert.is(d.exitCode, 0, `DEL #${i + 1}: ${d.stdout}`);
        assert.is(d.stdout, '');
      }
      assert.is(h.ipJson(pod, 'link', 'show').filter((l) => l.ifname === 'eth0').length, 0, 'pod interface gone');
      assert.not.ok(h.caliLinks().includes(hostName), 'host end gone');
      assert.not.ok(await h.kv.get(`/calico/resources/v3/projectcalico.org/workloadendpoints/web/${name}`), 'WorkloadEndpoint gone');
      assert.not.ok(await h.kv.get(`/calico/ipam/v2/handle/podway.${id}`), 'handle gone');
    }
    assert.equal(await new Ipam(h.kv).check(), []);
  });
});

test('MTU without one in the config: the node\'s underlay (the interface holding its registered address) less the VXLAN overhead, 1400 -> 1350, 9000 -> 8950; an explicit mtu still wins', async () => {
  await withHarness(async (h) => {
    h.addUplink();
    h.node.ip('link', 'set', 'eth0', 'mtu', '1400');
    const a = h.pod('mtu1400');
    const ra = await h.add(a, cid('m'));
    assert.is(h.ipJson(a, 'link', 'show', 'dev', 'eth0')[0].mtu, 1350, 'underlay 1400, VXLAN: 1350');
    assert.is(ra.json.interfaces[1].mtu, 1350);
    h.node.ip('link', 'set', 'eth0', 'mtu', '9000');
    const b = h.pod('mtu9000');
    await h.add(b, cid('m'));
    assert.is(h.ipJson(b, 'link', 'show', 'dev', 'eth0')[0].mtu, 8950, 'underlay 9000, VXLAN: 8950');
    const c = h.pod('mtuconf');
    await h.add(c, cid('m'), { extra: { mtu: 1300 } });
    assert.is(h.ipJson(c, 'link', 'show', 'dev', 'eth0')[0].mtu, 1300, 'the config\'s mtu wins');
  }, { cidr: '10.252.0.0/24', blockSize: 26, vxlanMode: 'Always' });
});

test('plain CNI orchestrator: WorkloadEndpoint <node>-cni-<containerID>-<iface>; MTU from a VXLAN pool; DEL after the netns is gone', async () => {
  await withHarness(async (h) => {
    const pod = h.pod('plain');
    const id = cid('p');
    const r = await h.add(pod, id, { ifname: 'net-1' });
    assert.is(h.ipJson(pod, 'link', 'show', 'dev', 'net-1')[0].mtu, 1450, 'VXLAN pool: 1450');
    const name = `${h.nodeName.replace(/-/g, '--')}-cni-${id}-net--1`;
    const wep = JSON.parse((await h.kv.get(`/calico/resources/v3/projectcalico.org/workloadendpoints/default/${name}`))!.value);
    assert.is(wep.spec.orchestrator, 'cni');
    assert.is(wep.spec.workload, id);
    assert.equal(wep.spec.profiles, ['podway']);
    assert.is(wep.spec.interfaceName, hostVethName({ orchestrator: 'cni', namespace: 'default', pod: id }, id));
    assert.is(r.json.interfaces[1].mtu, 1450);

    sh('ip', ['netns', 'del', pod.name]);
    const d = await h.call({ command: 'DEL', containerId: id, netns: pod.path, ifname: 'net-1' });
    assert.is(d.exitCode, 0, d.stdout);
    const d2 = await h.call({ command: 'DEL', containerId: id, ifname: 'net-1' }); // no CNI_NETNS at all
    assert.is(d2.exitCode, 0, d2.stdout);
    assert.equal(h.caliLinks(), []);
    assert.equal(await h.workloadEndpoints(), []);
    assert.equal(await h.handles(), []);
    assert.equal(await new Ipam(h.kv).check(), []);
  }, { cidr: '10.252.0.0/24', blockSize: 26, vxlanMode: 'Always' });
});

test('CHECK fails with a clear message when someone deletes the pod\'s route or address', async () => {
  await withHarness(async (h) => {
    const pod = h.pod('chk');
    const id = cid('k');
    const r = await h.add(pod, id);
    pod.ip('route', 'del', 'default');
    const c1 = await h.call({ command: 'CHECK', containerId: id, netns: pod.path, ifname: 'eth0', config: h.config('1.1.0', { prevResult: r.json }) });
    assert.is.not(c1.exitCode, 0);
    assert.is(c1.json.code, 100);
    assert.match(c1.json.msg, `route "default via 169.254.1.1 dev eth0" is missing in ${pod.path}`);
    pod.ip('addr', 'flush', 'dev', 'eth0');
    const c2 = await h.call({ command: 'CHECK', containerId: id, netns: pod.path, ifname: 'eth0', config: h.config('1.1.0', { prevResult: r.json }) });
    assert.match(c2.json.msg, `address ${r.json.ips[0].address} is missing on eth0`);
    const c3 = await h.call({ command: 'CHECK', containerId: id, netns: pod.path, ifname: 'eth0' });
    assert.is(c3.json.code, 7);
    assert.match(c3.json.msg, 'prevResult');
    await h.call({ command: 'DEL', containerId: id, netns: pod.path, ifname: 'eth0' });
  });
});

test('GC with a partial valid list removes the other attachments\' addresses and endpoints, keeps the valid one', async () => {
  await withHarness(async (h) => {
    const ids = [cid('g'), cid('g'), cid('g')];
    const pods = ids.map((_, i) => h.pod(`gc${i}`));
    for (let i = 0; i < 3; i++) await h.add(pods[i], ids[i]);
    // another network's handle on this node is not ours to collect
    const other = await new Ipam(h.kv).autoAssign({ node: h.nodeName, count: 1, handleId: 'other-net.keepme', attrs: { node: h.nodeName } });
    assert.is(other.ips.length, 1);
    const r = await h.call({ command: 'GC', config: h.config('1.1.0', { 'cni.dev/valid-attachments': [{ containerID: ids[0], ifname: 'eth0' }] }) });
    assert.is(r.exitCode, 0, r.stdout);
    assert.is(r.stdout, '');
    assert.equal((await h.handles()).sort(), [`other-net.keepme`, `podway.${ids[0]}`].sort());
    const weps = await h.workloadEndpoints();
    assert.equal(weps.map((w) => w.spec.containerID), [ids[0]]);
    assert.equal(h.caliLinks(), [hostVethName({ orchestrator: 'cni', namespace: 'default', pod: ids[0] }, ids[0])]);
    assert.equal(await new Ipam(h.kv).check(), []);
    const gc10 = await h.call({ command: 'GC', config: h.config('1.0.0', { 'cni.dev/valid-attachments': [] }) });
    assert.is(gc10.json.code, 1, 'GC needs cniVersion 1.1.0');
    // A delegated IPAM plugin gets GC too when it speaks 1.1.0 (host-local 1.1 does not: not forwarded, no error).
    const recDir = path.join(h.dir, 'rec-ipam');
    const rec = h.writeRecordingIpam(recDir);
    const valid = [{ containerID: ids[0], ifname: 'eth0' }];
    const fwd = await h.call({ command: 'GC', cniPath: `${h.binDir}:${recDir}`, config: h.config('1.1.0', { ipam: { type: rec }, 'cni.dev/valid-attachments': valid }) });
    assert.is(fwd.exitCode, 0, fwd.stdout);
    assert.equal(readFileSync(path.join(recDir, 'calls.log'), 'utf8').trim().split('\n'), ['VERSION', 'GC']);
    assert.equal(JSON.parse(readFileSync(path.join(recDir, 'gc.json'), 'utf8'))['cni.dev/valid-attachments'], valid);
    const hl = await h.call({ command: 'GC', cniPath: `${h.binDir}:/usr/lib/cni`, config: h.config('1.1.0', { ipam: { type: 'host-local', ranges: [[{ subnet: '10.254.8.0/24' }]], dataDir: path.join(h.dir, 'hl') }, 'cni.dev/valid-attachments': valid }) });
    assert.is(hl.exitCode, 0, hl.stdout);
  });
});

test('GC without a usable cni.dev/valid-attachments list is refused (code 7 naming the field) and removes nothing', async () => {
  await withHarness(async (h) => {
    const ids = [cid('k'), cid('k')];
    for (let i = 0; i < 2; i++) await h.add(h.pod(`keep${i}`), ids[i]);
    const before = { handles: (await h.handles()).sort(), weps: (await h.workloadEndpoints()).length, links: h.caliLinks().sort() };
    assert.is(before.handles.length, 2);
    assert.is(before.links.length, 2);
    const bad: [string, Record<string, unknown>, string][] = [
      ['missing', {}, 'cni.dev/valid-attachments: missing'],
      ['a string', { 'cni.dev/valid-attachments': 'none' }, 'cni.dev/valid-attachments: expected a list'],
      ['an object', { 'cni.dev/valid-attachments': { containerID: ids[0], ifname: 'eth0' } }, 'cni.dev/valid-attachments: expected a list'],
      ['an entry without ifname', { 'cni.dev/valid-attachments': [{ containerID: ids[0], ifname: 'eth0' }, { containerID: ids[1] }] }, 'cni.dev/valid-attachments[1]: expected {"containerID"'],
      ['an entry with an empty containerID', { 'cni.dev/valid-attachments': [{ containerID: '', ifname: 'eth0' }] }, 'cni.dev/valid-attachments[0]'],
      ['the old key, not a list', { 'cni.dev/attachments': 7 }, 'cni.dev/attachments: expected a list'],
    ];
    for (const [what, extra, msg] of bad) {
      const r = await h.call({ command: 'GC', config: h.config('1.1.0', extra) });
      assert.is(r.exitCode, 1, `${what}: ${r.stdout}`);
      assert.is(r.json.code, 7, `${what}: ${r.stdout}`);
      assert.ok(r.json.msg.includes(msg), `${what}: ${r.json.msg}`);
      assert.equal((await h.handles()).sort(), before.handles, `${what}: addresses kept`);
      assert.is((await h.workloadEndpoints()).length, before.weps, `${what}: endpoints kept`);
      assert.equal(h.caliLinks().sort(), before.links, `${what}: veths kept`);
    }
    // The spec's first name for the key (libcni sends both) is a list like the other.
    const old = await h.call({ command: 'GC', config: h.config('1.1.0', { 'cni.dev/attachments': ids.map((containerID) => ({ containerID, ifname: 'eth0' })) }) });
    assert.is(old.exitCode, 0, old.stdout);
    assert.equal((await h.handles()).sort(), before.handles);
    // null is libcni's encoding of an empty list (a nil Go slice): nothing is valid, so both go.
    const none = await h.call({ command: 'GC', config: h.config('1.1.0', { 'cni.dev/valid-attachments': null, 'cni.dev/attachments': null }) });
    assert.is(none.exitCode, 0, none.stdout);
    assert.equal(await h.handles(), []);
    assert.equal(h.caliLinks(), []);
  });
});

test('GC touches only its own network on its own node: a dotted network name sharing the handle prefix and another node keep theirs', async () => {
  await withHarness(async (h) => {
    const mine = cid('m');
    const blue = cid('b');
    await h.add(h.pod('mine'), mine);
    // Network "podway.blue": its handle "podway.blue.<id>" starts with "podway." too.
    await h.add(h.pod('blue'), blue, { config: h.config('1.1.0', { name: 'podway.blue' }), args: 'K8S_POD_NAMESPACE=blue;K8S_POD_NAME=bluepod' });
    // An address of network "podway" on another node.
    const other = `node-o-${cid('n')}`;
    await registerNode(h.kv, { name: other, ipv4Address: '10.99.0.2/24' });
    const farHandle = `podway.${cid('f')}`;
    const far = await new Ipam(h.kv).autoAssign({ node: other, count: 1, handleId: farHandle, attrs: { node: other } });
    assert.is(far.ips.length, 1);
    const blueVeth = hostVethName({ orchestrator: 'k8s', namespace: 'blue', pod: 'bluepod' }, blue);
    const r = await h.call({ command: 'GC', config: h.config('1.1.0', { 'cni.dev/valid-attachments': [] }) });
    assert.is(r.exitCode, 0, r.stdout);
    const handles = await h.handles();
    assert.ok(!handles.includes(`podway.${mine}`), 'this network\'s stale attachment is collected');
    assert.ok(handles.includes(`podway.blue.${blue}`), 'network podway.blue keeps its address');
    assert.ok(handles.includes(farHandle), 'another node keeps its address');
    assert.equal((await h.workloadEndpoints()).map((w) => w.spec.containerID), [blue]);
    assert.equal(h.caliLinks(), [blueVeth]);
    // An allocation made before ADD recorded its network: the other network's endpoint claims it.
    const ipam = new Ipam(h.kv);
    const legacyClaimed = await ipam.autoAssign({ node: h.nodeName, count: 1, handleId: `podway.blue.${blue}`, attrs: { node: h.nodeName } });
    assert.is(legacyClaimed.ips.length, 1);
    const legacy = cid('l');
    await ipam.autoAssign({ node: h.nodeName, count: 1, handleId: `podway.blue.${legacy}`, attrs: { node: h.nodeName } });
    const r2 = await h.call({ command: 'GC', config: h.config('1.1.0', { 'cni.dev/valid-attachments': [] }) });
    assert.is(r2.exitCode, 0, r2.stdout);
    assert.is((await ipam.allocationOf(legacyClaimed.ips[0]))?.handleId, `podway.blue.${blue}`, 'claimed by podway.blue\'s endpoint: kept');
    // ... and without an endpoint of podway.blue naming it, it can't be told from "podway"'s container "blue.<id>": collected.
    assert.ok(!(await h.handles()).includes(`podway.blue.${legacy}`));
    assert.equal(await new Ipam(h.kv).check(), []);
  });
});

test('DEL tolerates config fields it does not use (reported on stderr), still refuses what it needs; config errors name the network and its conflist', async () => {
  await withHarness(async (h) => {
    const pod = h.pod('deltol');
    const id = cid('t');
    await h.add(pod, id);
    const conflist = h.conflist.plugins[0].conflist as string;
    assert.ok(typeof conflist === 'string' && conflist.startsWith(h.confDir), `cni install names its file in the conflist: ${conflist}`);
    const broken = { mtu: 'abc', interfaceType: 'macvlan', datastoreTimeoutMs: 'soon', control: 'relative.sock', ipam: { type: 'podway', assign_ipv4: 'maybe' } };
    // ADD refuses such a config, naming the field, the network and the file.
    const add = await h.call({ command: 'ADD', containerId: cid('t'), netns: h.pod('deltol2').path, ifname: 'eth0', extra: { mtu: 'abc' } });
    assert.is(add.json?.code, 7, add.stdout);
    assert.ok(add.json.msg.startsWith(`network "podway" config (${conflist}): mtu: expected an integer`), add.json.msg);
    // DEL still needs its datastore: refused, named.
    const noStore = await h.call({ command: 'DEL', containerId: id, netns: pod.path, ifname: 'eth0', extra: { ...broken, datastore: 'consul:x' } });
    assert.is(noStore.json?.code, 7, noStore.stdout);
    assert.ok(noStore.json.msg.startsWith(`network "podway" config (${conflist}): datastore:`), noStore.json.msg);
    assert.equal(await h.handles(), [`podway.${id}`], 'nothing released by the refused DEL');
    const del = await h.call({ command: 'DEL', containerId: id, netns: pod.path, ifname: 'eth0', extra: broken });
    assert.is(del.exitCode, 0, `${del.stdout} ${del.stderr}`);
    assert.is(del.stdout, '');
    for (const field of ['mtu', 'interfaceType', 'datastoreTimeoutMs', 'control', 'ipam.assign_ipv4']) assert.ok(del.stderr.includes(`: ${field}: `), `stderr names ${field}: ${del.stderr}`);
    assert.equal(await h.handles(), [], 'address released');
    assert.equal(await h.workloadEndpoints(), [], 'endpoint deleted');
    assert.equal(h.caliLinks(), [], 'veth removed');
    assert.equal(h.ipJson(pod, 'link', 'show').map((l) => l.ifname), ['lo']);
    // Without a file name (a config not written by cni install), the network is still named.
    const plain = await h.call({ command: 'ADD', containerId: cid('t'), netns: h.pod('deltol3').path, ifname: 'eth0', extra: { conflist: undefined, mtu: 'abc' } });
    assert.ok(plain.json.msg.startsWith('network "podway" config: mtu:'), plain.json.msg);
  });
});

test('DEL of a pod added by an older podway with "nodename": "" or an "ipam" section without "type" (both refused by ADD now) still releases its address, with a warning', async () => {
  await withHarness(async (h) => {
    const cases: Array<[string, Record<string, unknown>, Record<string, string>, string]> = [
      // the older plugin read "" as $NODENAME or the hostname
      ['empty nodename', { nodename: '' }, { NODENAME: h.nodeName }, 'nodename: is empty'],
      // ... and an untyped "ipam" section as podway's own IPAM
      ['ipam without type', { ipam: { assign_ipv6: 'false' } }, {}, 'ipam.type: required'],
    ];
    for (const [what, extra, env] of cases) {
      const add = await h.call({ command: 'ADD', containerId: cid('u'), netns: h.pod(`up${what.length}`).path, ifname: 'eth0', extra, env });
      assert.is(add.json?.code, 7, `${what}: ADD refuses it: ${add.stdout}`);
    }
    for (const [i, [what, extra, env, warning]] of cases.entries()) {
      const pod = h.pod(`upg${i}`);
      const id = cid('u');
      await h.add(pod, id); // as the older plugin added it (same node, podway's IPAM)
      assert.equal(await h.handles(), [`podway.${id}`], what);
      const del = await h.call({ command: 'DEL', containerId: id, netns: pod.path, ifname: 'eth0', extra, env });
      assert.is(del.exitCode, 0, `${what}: ${del.stdout} ${del.stderr}`);
      assert.ok(del.stderr.includes(warning), `${what}: warned on stderr: ${del.stderr}`);
      assert.equal(await h.handles(), [], `${what}: address released`);
      assert.equal(await h.workloadEndpoints(), [], `${what}: endpoint deleted`);
      assert.equal(h.caliLinks(), [], `${what}: veth removed`);
    }
  });
});

test('a repeated ADD of the same attachment keeps its address and interface; a broken one is made again on the same address', async () => {
  await withHarness(async (h) => {
    const pod = h.pod('again2');
    const id = cid('r');
    const held = async () => (await h.kv.list('/calico/ipam/v2/assignment/')).entries
      .flatMap((b) => { const j = JSON.parse(b.value); return j.allocations.filter((a: number | null) => a !== null).map((a: number) => j.attributes[a].handle_id); })
      .filter((x: string) => x === `podway.${id}`).length;
    const r1 = await h.add(pod, id);
    const rev1 = (await h.kv.list('/calico/resources/v3/projectcalico.org/workloadendpoints/')).entries[0]!.modRevision;
    const r2 = await h.add(pod, id);
    assert.equal(r2.json, r1.json, 'the same result: same address, same interfaces');
    assert.is(await held(), 1, 'one address held for the container, not two');
    assert.is((await h.workloadEndpoints()).length, 1);
    assert.is((await h.kv.list('/calico/resources/v3/projectcalico.org/workloadendpoints/')).entries[0]!.modRevision, rev1, 'an intact attachment: its endpoint is not rewritten');
    const host = r1.json.interfaces[0].name;
    assert.equal(h.caliLinks(), [host]);

    // Its veth deleted under it (both ends go): ADD makes it again on the same address.
    h.node.ip('link', 'del', host);
    const r3 = await h.add(pod, id);
    assert.equal(r3.json.ips, r1.json.ips);
    assert.is(r3.json.interfaces[0].name, host);
    assert.equal(h.caliLinks(), [host]);
    const [link] = h.ipJson(pod, 'addr', 'show', 'dev', 'eth0');
    assert.is(link.address, r3.json.interfaces[1].mac);
    assert.ok(link.addr_info.some((a: any) => `${a.local}/${a.prefixlen}` === r1.json.ips[0].address));
    const [wep] = await h.workloadEndpoints();
    assert.is(wep.spec.mac, r3.json.interfaces[1].mac, 'the endpoint names the new pod end\'s MAC');
    assert.is(await held(), 1);

    // A route removed in the pod: made again too; CHECK then passes.
    pod.ip('route', 'del', 'default');
    const r4 = await h.add(pod, id);
    assert.equal(r4.json.ips, r1.json.ips);
    const chk = await h.call({ command: 'CHECK', containerId: id, netns: pod.path, ifname: 'eth0', config: h.config('1.1.0', { prevResult: r4.json }) });
    assert.is(chk.exitCode, 0, chk.stdout);

    // Another interface of the same container would need the same host veth: refused (it used to
    // replace eth0's veth), eth0 left attached (see the test of a second network below).
    const other = await h.call({ command: 'ADD', containerId: id, netns: pod.path, ifname: 'eth1' });
    assert.is(other.json?.code, 4, other.stdout);
    assert.equal(h.caliLinks(), [host]);

    for (const ifname of ['eth0', 'eth1']) assert.is((await h.call({ command: 'DEL', containerId: id, netns: pod.path, ifname })).exitCode, 0);
    assert.equal(await h.handles(), []);
    assert.equal(await h.workloadEndpoints(), []);
    assert.equal(await new Ipam(h.kv).check(), []);
  });
});

test('ADD replaces a host veth left by the pod\'s previous sandbox (same k8s pod name)', async () => {
  await withHarness(async (h) => {
    const args = 'IgnoreUnknown=1;K8S_POD_NAMESPACE=web;K8S_POD_NAME=again';
    const id = cid('s');
    const host = hostVethName({ orchestrator: 'k8s', namespace: 'web', pod: 'again' }, id);
    // The old sandbox's pair, still there: its host end has the name this ADD needs.
    h.node.ip('link', 'add', host, 'type', 'veth', 'peer', 'name', 'oldpod0');
    const pod = h.pod('again');
    const r = await h.add(pod, id, { args });
    assert.equal(r.json.interfaces[0].name, host);
    assert.equal(h.caliLinks(), [host]);
    assert.equal(h.ipJson(h.node, 'link', 'show').map((l) => l.ifname).filter((n) => n === 'oldpod0'), [], 'the old pair is gone');
    assert.equal(h.ipJson(pod, 'link', 'show', 'dev', 'eth0').length, 1, 'the new pod end is in the pod');
    assert.is((await h.call({ command: 'DEL', containerId: id, netns: pod.path, ifname: 'eth0', args })).exitCode, 0);
    assert.equal(h.caliLinks(), []);
  });
});

test('a second podway network on the same container (podman --network a,b: eth1) is refused naming the first endpoint and its veth, which stays attached', async () => {
  await withHarness(async (h) => {
    const id = cid('two');
    const pod = h.pod('two');
    const first = await h.add(pod, id);
    const host = first.json.interfaces[0].name;
    const second = await h.call({ command: 'ADD', containerId: id, netns: pod.path, ifname: 'eth1', extra: { name: 'podway2' } });
    assert.is(second.json?.code, 4, second.stdout);
    assert.match(second.json.msg, `host veth ${host} is already the interface of WorkloadEndpoint default/`);
    assert.match(second.json.msg, '(network "podway", eth0)');
    assert.equal(h.caliLinks(), [host], 'the first attachment\'s veth is kept');
    assert.equal(h.ipJson(pod, 'link', 'show').map((l) => l.ifname).sort(), ['eth0', 'lo'], 'nothing left of the refused ADD');
    assert.equal(await h.handles(), [`podway.${id}`]);
    assert.is((await h.workloadEndpoints()).length, 1);
    // the runtime's DEL of the refused attachment leaves the first one's veth (same name) alone
    const d = await h.call({ command: 'DEL', containerId: id, netns: pod.path, ifname: 'eth1', extra: { name: 'podway2' } });
    assert.is(d.exitCode, 0, d.stdout);
    assert.equal(h.caliLinks(), [host], 'DEL of eth1 did not remove eth0\'s veth');
    assert.equal(await h.handles(), [`podway.${id}`]);
  });
});

test('a namespace path with a space (a bind mount): the veth is made without ip -batch, ADD and DEL work', async () => {
  await withHarness(async (h) => {
    const pod = h.pod('space');
    const dir = path.join(h.dir, 'net ns');
    mkdirSync(dir);
    const odd = path.join(dir, 'pod #1');
    writeFileSync(odd, '');
    sh('mount', ['--bind', pod.path, odd]);
    try {
      const id = cid('sp');
      const r = await h.add(pod, id, { netns: odd });
      assert.match(r.json.ips[0].address, /^10\.251\.0\.\d+\/32$/);
      const [link] = h.ipJson(pod, 'addr', 'show', 'dev', 'eth0');
      assert.is(link.address, r.json.interfaces[1].mac, 'the MAC in the result is the pod end\'s');
      assert.equal(link.addr_info.filter((a: any) => a.family === 'inet').map((a: any) => `${a.local}/${a.prefixlen}`), [r.json.ips[0].address]);
      assert.is((await h.call({ command: 'DEL', containerId: id, netns: odd, ifname: 'eth0' })).exitCode, 0);
      assert.equal(h.caliLinks(), []);
    } finally {
      sh('umount', [odd], { allowFail: true });
    }
  });
});

test('what a plugin process loads: zod only where pools or the WorkloadEndpoint are validated (ADD, STATUS), never the etcd client on the embedded store', async () => {
  await withHarness(async (h) => {
    // Each call reports the packages and project files it loaded (test/helpers/module-report.ts).
    const env = { NODE_OPTIONS: REPORT_MODULES };
    const loads = async (o: Parameters<CniHarness['call']>[0], code = 0) => {
      const r = await h.call({ ...o, env });
      assert.is(r.exitCode, code, `${o.command}: ${r.stdout} ${r.stderr}`);
      const mods = loadedModules(r.stderr);
      assert.ok(mods, `${o.command} reported its modules (stderr: ${r.stderr})`);
      for (const heavy of ['etcd3', '@grpc/grpc-js', '@grpc/proto-loader', 'protobufjs']) assert.not.ok(mods!.includes(heavy), `${o.command} loaded ${heavy}`);
      last = r;
      return mods!;
    };
    let last: Awaited<ReturnType<CniHarness['call']>> | undefined;
    const pod = h.pod('mods');
    const id = cid('m');
    const zodFree = (mods: string[]) => !mods.includes('zod') && !mods.includes('src/control/resources.js') && !mods.includes('src/control/calico-kind-schemas.js');
    assert.ok(zodFree(await loads({ command: 'VERSION' })), 'VERSION');
    const add = await loads({ command: 'ADD', containerId: id, netns: pod.path, ifname: 'eth0' });
    assert.ok(add.includes('zod'), 'ADD validates pools and its WorkloadEndpoint with the schemas');
    assert.not.ok(add.includes('src/control/calico-kind-schemas.js'), 'ADD builds the schemas of the kinds it validates (resources.ts), not the six others');
    const prevResult = last!.json;
    assert.ok(zodFree(await loads({ command: 'CHECK', containerId: id, netns: pod.path, ifname: 'eth0', config: h.config('1.1.0', { prevResult }) })), 'CHECK');
    // No podway run here: 50, but the modules are what counts. STATUS checks the pools (schemas).
    const status = await loads({ command: 'STATUS' }, 1);
    assert.not.ok(status.includes('src/dataplane/control-server.js'), 'STATUS loads the control client only');
    assert.ok(zodFree(await loads({ command: 'GC', config: h.config('1.1.0', { 'cni.dev/valid-attachments': [{ containerID: id, ifname: 'eth0' }] }) })), 'GC');
    assert.ok(zodFree(await loads({ command: 'DEL', containerId: id, netns: pod.path, ifname: 'eth0' })), 'DEL');
    assert.equal(await h.workloadEndpoints(), [], 'DEL removed the endpoint');
    assert.equal(await h.handles(), [], 'DEL released the address');
  });
});

test('STATUS: 50 when podway run does not answer, the datastore is unreachable or the node is not registered (0: test/cni/e2e)', async () => {
  await withHarness(async (h) => {
    const noPodway = await h.call({ command: 'STATUS' });
    assert.is(noPodway.json.code, 50, noPodway.stdout);
    assert.match(noPodway.json.msg, `does not answer on ${h.control}`);
    const port = await freePort();
    const down = await h.call({ command: 'STATUS', extra: { datastore: `etcd:http://127.0.0.1:${port}`, datastoreTimeoutMs: 500 } });
    assert.is.not(down.exitCode, 0);
    assert.is(down.json.code, 50);
    assert.match(down.json.msg, `127.0.0.1:${port}`);
    const nonode = await h.call({ command: 'STATUS', extra: { nodename: 'no-such-node' } });
    assert.is(nonode.json.code, 50);
    assert.match(nonode.json.msg, 'node no-such-node is not registered');
    // ADD against the unreachable store: try again later, nothing made
    const pod = h.pod('down');
    const add = await h.call({ command: 'ADD', containerId: cid('d'), netns: pod.path, ifname: 'eth0', extra: { datastore: `etcd:http://127.0.0.1:${port}`, datastoreTimeoutMs: 500 } });
    assert.is(add.json.code, 11, add.stdout);
    // The store and the cause, said once (it was "datastore etcd URL unreachable: etcd URL unreachable (...)");
    // ADD's first read is the lock check's (ClusterInformation default).
    assert.match(add.json.msg, new RegExp(`^etcd http://127\\.0\\.0\\.1:${port} unreachable \\(get /calico/resources/v3/projectcalico\\.org/clusterinformations/default\\): `));
    assert.is(add.json.msg.split('unreachable').length, 2, add.json.msg);
    assert.equal(h.ipJson(pod, 'link', 'show').map((l) => l.ifname), ['lo']);
  });
});

test('bad environment and config: codes 1, 4, 6, 7 naming what is wrong', async () => {
  await withHarness(async (h) => {
    const pod = h.pod('bad');
    const base = { containerId: cid('b'), netns: pod.path, ifname: 'eth0' };
    const cases: [string, Parameters<CniHarness['call']>[0], number, string][] = [
      ['no CNI_COMMAND', { command: 'ADD', ...base, env: { CNI_COMMAND: undefined } }, 4, 'CNI_COMMAND'],
      ['unknown verb', { command: 'FROB', ...base }, 4, 'CNI_COMMAND'],
      ['no CNI_CONTAINERID', { command: 'ADD', netns: pod.path, ifname: 'eth0' }, 4, 'CNI_CONTAINERID'],
      ['bad CNI_CONTAINERID', { command: 'ADD', ...base, containerId: '-x' }, 4, 'CNI_CONTAINERID'],
      ['no CNI_IFNAME', { command: 'ADD', containerId: base.containerId, netns: pod.path }, 4, 'CNI_IFNAME'],
      ['long CNI_IFNAME', { command: 'ADD', ...base, ifname: 'a-very-long-ifname' }, 4, 'CNI_IFNAME'],
      ['no CNI_NETNS', { command: 'ADD', containerId: base.containerId, ifname: 'eth0' }, 4, 'CNI_NETNS'],
      ['missing netns', { command: 'ADD', ...base, netns: '/run/netns/pw-cni-nope-000000' }, 4, '/run/netns/pw-cni-nope-000000'],
      // a file that is no namespace: it failed inside `ip -batch` (101, "Invalid argument")
      ['not a netns', { command: 'ADD', ...base, netns: '/etc/hostname' }, 4, 'CNI_NETNS: /etc/hostname is not a network namespace'],
      ['bad CNI_ARGS', { command: 'ADD', ...base, args: 'K8S_POD_NAME' }, 4, 'CNI_ARGS'],
      ['not JSON', { command: 'ADD', ...base, config: '{"cniVersion": ' }, 6, 'not JSON'],
      ['unknown version', { command: 'ADD', ...base, config: h.config('9.9.9') }, 1, '9.9.9'],
      ['wrong type', { command: 'ADD', ...base, extra: { type: 'calico' } }, 7, 'type'],
      ['bad mtu', { command: 'ADD', ...base, extra: { mtu: 'big' } }, 7, 'mtu'],
      ['bad interfaceType', { command: 'ADD', ...base, extra: { interfaceType: 'macvlan' } }, 7, 'interfaceType'],
      ['bad nodename', { command: 'ADD', ...base, extra: { nodename: 'Bad_Node' } }, 7, 'nodename'],
      ['bad datastore', { command: 'ADD', ...base, extra: { datastore: 'consul:x' } }, 7, 'datastore'],
      ['kubernetes datastore_type', { command: 'ADD', ...base, extra: { datastore: undefined, datastore_type: 'kubernetes' } }, 7, 'datastore_type'],
      ['read-only datastore', { command: 'ADD', ...base, extra: { datastore: 'file:/tmp/x.yaml' } }, 7, 'datastore'],
      ['bad ipam', { command: 'ADD', ...base, extra: { ipam: 'host-local' } }, 7, 'ipam'],
      // the CNI spec requires ipam.type; it used to be taken as podway's own IPAM
      ['ipam without type', { command: 'ADD', ...base, extra: { ipam: {} } }, 7, 'ipam.type: required'],
      ['ipam with assign_ipv6 but no type', { command: 'ADD', ...base, extra: { ipam: { assign_ipv6: 'false' } } }, 7, 'ipam.type: required'],
      // it used to become the hostname, and the error then said `or set "nodename"`
      ['empty nodename', { command: 'ADD', ...base, extra: { nodename: '' } }, 7, 'nodename: is empty'],
      ['tap in an odd netns path', { command: 'ADD', ...base, netns: '/proc/self/ns/net', extra: { interfaceType: 'tap' } }, 4, 'CNI_NETNS'],
    ];
    for (const [what, call, code, mention] of cases) {
      const r = await h.call(call);
      assert.is.not(r.exitCode, 0, what);
      assert.is(r.json?.code, code, `${what}: ${r.stdout}`);
      assert.ok(typeof r.json.msg === 'string' && r.json.msg.includes(mention), `${what}: message names ${mention}: ${r.json.msg}`);
      assert.ok(typeof r.json.cniVersion === 'string', what);
    }
    assert.equal(h.ipJson(pod, 'link', 'show').map((l) => l.ifname), ['lo'], 'nothing made in the pod');
    assert.equal(h.caliLinks(), []);
    assert.equal(await h.handles(), []);
  });
});

test('an embedded datastore directory that does not exist: ADD refused (7), STATUS (50), naming the field and the path, DEL succeeds; nothing is made', async () => {
  // It used to be made by the ADD, which then failed on the empty store or ran on an empty cluster.
  await withHarness(async (h) => {
    const pod = h.pod('nostore');
    const missing = path.join(h.dir, 'no-such-store');
    const base = { containerId: cid('n'), netns: pod.path, ifname: 'eth0', extra: { datastore: `embedded:${missing}` } };
    for (const command of ['ADD', 'STATUS'] as const) {
      const r = await h.call({ command, ...base });
      assert.is.not(r.exitCode, 0, `${command}: ${r.stdout}`);
      assert.is(r.json?.code, command === 'STATUS' ? 50 : 7, `${command}: ${r.stdout}`);
      assert.ok(String(r.json.msg).includes(`datastore: embedded datastore ${missing} does not exist`), `${command}: ${r.json.msg}`);
    }
    const del = await h.call({ command: 'DEL', ...base });
    assert.is(del.exitCode, 0, del.stdout);
    assert.not.ok(existsSync(missing), 'no directory was made');
    assert.equal(h.ipJson(pod, 'link', 'show').map((l) => l.ifname), ['lo'], 'nothing made in the pod');
  });
});

test('a failed ADD leaves nothing half-made: pool exhausted (106, names the pool, says borrowing was tried), the pod\'s routes refused after the address and the veth', async () => {
  await withHarness(async (h) => {
    const pods = [0, 1, 2, 3, 4].map((i) => h.pod(`ex${i}`));
    const ids = pods.map((_, i) => cid(`x${i}`));
    for (let i = 0; i < 4; i++) await h.add(pods[i], ids[i]);
    const r = await h.call({ command: 'ADD', containerId: ids[4], netns: pods[4].path, ifname: 'eth0' });
    assert.is(r.json.code, 106, r.stdout);
    assert.match(r.json.msg, /10\.253\.0\.0\/30: 4 addresses, 4 allocated\) exhausted: all in use; .*borrowing from other nodes' blocks tried/);
    assert.equal(h.ipJson(pods[4], 'link', 'show').map((l) => l.ifname), ['lo']);
    assert.is(h.caliLinks().length, 4);
    assert.not.ok((await h.handles()).includes(`podway.${ids[4]}`));
    for (let i = 0; i < 4; i++) assert.is((await h.call({ command: 'DEL', containerId: ids[i], netns: pods[i].path, ifname: 'eth0' })).exitCode, 0);

    // A route in the pod's namespace that the pod's own conflicts with (169.254.1.1 already
    // routed): the address and the veth are made, the pod's routes refused, and both are undone.
    pods[4].ip('route', 'add', '169.254.1.1', 'dev', 'lo');
    const late = await h.call({ command: 'ADD', containerId: `late${ids[4]}`, netns: pods[4].path, ifname: 'eth0' });
    assert.is.not(late.exitCode, 0);
    assert.is(late.json.code, 101, late.stdout);
    assert.match(late.json.msg, 'File exists', late.stdout);
    assert.equal(h.ipJson(pods[4], 'link', 'show').map((l) => l.ifname), ['lo'], 'pod end removed');
    assert.equal(h.caliLinks(), [], 'host end removed');
    assert.equal(await h.handles(), [], 'address released');
    assert.equal(await h.workloadEndpoints(), []);
    assert.equal(await new Ipam(h.kv).check(), []);
  }, { cidr: '10.253.0.0/30', blockSize: 30 });
});

test('CNI_ARGS IP= (podman --ip) and runtimeConfig.ips: exactly that address through podway\'s IPAM (handle, attributes, block affinity), released by DEL; outside the pools, in use, strict affinity and malformed refused naming it', async () => {
  await withHarness(async (h) => {
    const ipam = new Ipam(h.kv);
    // podman's CNI_ARGS for `podman run --ip 10.251.0.77`
    const a = cid('ip');
    const podA = h.pod('ipa');
    const ra = await h.add(podA, a, { args: `IgnoreUnknown=1;K8S_POD_NAME=ctr-a;IP=10.251.0.77` });
    assert.equal(ra.json.ips.map((i: { address: string }) => i.address), ['10.251.0.77/32'], ra.stdout);
    assert.ok(h.ipJson(podA, '-4', 'addr', 'show', 'dev', 'eth0')[0].addr_info.some((x: { local: string }) => x.local === '10.251.0.77'), 'on the pod');
    const held = await ipam.allocationOf('10.251.0.77');
    assert.is(held?.handleId, `podway.${a}`);
    assert.is(held?.secondary?.node, h.nodeName);
    assert.is(held?.secondary?.network, 'podway');
    assert.equal((await ipam.blocksOf(h.nodeName)).map((b) => b.cidr), ['10.251.0.64/26'], 'its block claimed for this node');
    assert.equal((await h.workloadEndpoints())[0].spec.ipNetworks, ['10.251.0.77/32']);
    // the same address again: in use, naming the holder; nothing made
    const b = cid('ip');
    const podB = h.pod('ipb');
    const taken = await h.call({ command: 'ADD', containerId: b, netns: podB.path, ifname: 'eth0', args: 'IP=10.251.0.77' });
    assert.is(taken.json?.code, 105, taken.stdout);
    assert.match(taken.json.msg, `CNI_ARGS IP: 10.251.0.77 is already in use (IPAM handle podway.${a} on node ${h.nodeName})`);
    assert.equal(h.ipJson(podB, 'link', 'show').map((l) => l.ifname), ['lo']);
    // outside every pool; malformed; two of one family
    const outside = await h.call({ command: 'ADD', containerId: b, netns: podB.path, ifname: 'eth0', args: 'IP=10.9.9.9' });
    assert.is(outside.json?.code, 105, outside.stdout);
    assert.match(outside.json.msg, 'CNI_ARGS IP: 10.9.9.9 is not in an enabled IP pool');
    const junk = await h.call({ command: 'ADD', containerId: b, netns: podB.path, ifname: 'eth0', args: 'IP=10.251.0' });
    assert.is(junk.json?.code, 4, junk.stdout);
    assert.match(junk.json.msg, 'CNI_ARGS IP=10.251.0: "10.251.0" is not an IP address');
    const two = await h.call({ command: 'ADD', containerId: b, netns: podB.path, ifname: 'eth0', extra: { runtimeConfig: { ips: ['10.251.0.80', '10.251.0.81'] } } });
    assert.is(two.json?.code, 4, two.stdout);
    assert.match(two.json.msg, 'two IPv4 addresses (10.251.0.80, 10.251.0.81)');
    assert.equal(await h.handles(), [`podway.${a}`], 'the refused ADDs hold nothing');
    // runtimeConfig.ips (the "ips" capability), a prefix length ignored
    const rb = await h.add(podB, b, { extra: { runtimeConfig: { ips: ['10.251.0.78/24'] } } });
    assert.equal(rb.json.ips.map((i: { address: string }) => i.address), ['10.251.0.78/32'], rb.stdout);
    // a block affine to another node: allowed as Calico allows it, refused under strict_affinity
    await ipam.assignIp({ ip: '10.251.0.130', handleId: 'other-host', attrs: { node: 'other-node' }, node: 'other-node' });
    const c = cid('ip');
    const podC = h.pod('ipc');
    const cfg = await h.kv.get(IPAM_CONFIG_KEY);
    const strict = JSON.stringify({ strict_affinity: true, auto_allocate_blocks: true });
    assert.ok(cfg ? await h.kv.update(IPAM_CONFIG_KEY, strict, cfg.modRevision) : await h.kv.create(IPAM_CONFIG_KEY, strict));
    const refused = await h.call({ command: 'ADD', containerId: c, netns: podC.path, ifname: 'eth0', args: 'IP=10.251.0.131' });
    assert.is(refused.json?.code, 105, refused.stdout);
    assert.match(refused.json.msg, 'CNI_ARGS IP: cannot assign 10.251.0.131 to node');
    assert.match(refused.json.msg, 'affine to host:other-node and strict_affinity is set');
    const cfg2 = (await h.kv.get(IPAM_CONFIG_KEY))!;
    assert.ok(await h.kv.update(IPAM_CONFIG_KEY, JSON.stringify({ strict_affinity: false, auto_allocate_blocks: true }), cfg2.modRevision));
    const rc = await h.add(podC, c, { args: 'IP=10.251.0.131' });
    assert.equal(rc.json.ips.map((i: { address: string }) => i.address), ['10.251.0.131/32']);
    assert.is((await ipam.allocationOf('10.251.0.131'))?.handleId, `podway.${c}`);
    // DEL releases as usual
    for (const [id, pod] of [[a, podA], [b, podB], [c, podC]] as const) {
      const d = await h.call({ command: 'DEL', containerId: id, netns: pod.path, ifname: 'eth0', args: 'IP=10.251.0.77' });
      assert.is(d.exitCode, 0, d.stdout);
    }
    assert.equal(await h.handles(), ['other-host']);
    for (const ip of ['10.251.0.77', '10.251.0.78', '10.251.0.131']) assert.is(await ipam.allocationOf(ip), null, `${ip} released`);
    assert.equal(await h.workloadEndpoints(), []);
    assert.equal(await ipam.check(), []);
  });
});

test('CNI_ARGS IP= as Calico\'s AssignIP: an address an IPReservation covers, or in a pool whose nodeSelector leaves this node out, is given; one in a disabled pool is refused (105) naming that pool, with nothing made', async () => {
  await withHarness(async (h) => {
    const ipam = new Ipam(h.kv);
    // an IPReservation as calicoctl stores it in etcd (podway's own `apply` does not take the kind)
    const rsv = { kind: 'IPReservation', apiVersion: 'projectcalico.org/v3', metadata: { name: `rsv-${h.tag}`, uid: 'b0e5a3c2-0000-4000-8000-000000000001', creationTimestamp: '2026-01-01T00:00:00Z' }, spec: { reservedCIDRs: ['10.251.0.200/29'] } };
    assert.ok(await h.kv.create(`${RESOURCES_PREFIX}ipreservations/rsv-${h.tag}`, JSON.stringify(rsv)));
    await applyResource(h.kv, { apiVersion: 'projectcalico.org/v3', kind: 'IPPool', metadata: { name: `elsewhere-${h.tag}` }, spec: { cidr: '10.251.1.0/24', blockSize: 26, nodeSelector: 'zone == "nowhere"' } });
    await applyResource(h.kv, { apiVersion: 'projectcalico.org/v3', kind: 'IPPool', metadata: { name: `off-${h.tag}` }, spec: { cidr: '10.251.2.0/24', blockSize: 26, disabled: true } });
    // reserved: given (AssignIP does not read reservations)
    const a = cid('rsv');
    const podA = h.pod('rsva');
    const ra = await h.add(podA, a, { args: 'IP=10.251.0.201' });
    assert.equal(ra.json.ips.map((i: { address: string }) => i.address), ['10.251.0.201/32'], ra.stdout);
    assert.is((await ipam.allocationOf('10.251.0.201'))?.handleId, `podway.${a}`);
    // a pool selecting other nodes: given, its block claimed for this node (AssignIP does not read nodeSelector)
    const b = cid('sel');
    const podB = h.pod('selb');
    const rb = await h.add(podB, b, { extra: { runtimeConfig: { ips: ['10.251.1.9'] } } });
    assert.equal(rb.json.ips.map((i: { address: string }) => i.address), ['10.251.1.9/32'], rb.stdout);
    assert.ok((await ipam.blocksOf(h.nodeName)).some((x) => x.cidr === '10.251.1.0/26'), 'its block is this node\'s');
    // a disabled pool: refused, naming it, nothing made or held
    const c = cid('off');
    const podC = h.pod('offc');
    const off = await h.call({ command: 'ADD', containerId: c, netns: podC.path, ifname: 'eth0', args: 'IP=10.251.2.9' });
    assert.is(off.json?.code, 105, off.stdout);
    assert.match(off.json.msg, `CNI_ARGS IP: 10.251.2.9 is not in an enabled IP pool (it is in IP pool off-${h.tag}, 10.251.2.0/24, which is disabled)`);
    assert.equal(h.ipJson(podC, 'link', 'show').map((l) => l.ifname), ['lo']);
    assert.is(await ipam.allocationOf('10.251.2.9'), null);
    assert.equal((await h.handles()).sort(), [`podway.${a}`, `podway.${b}`].sort());
    for (const [id, pod] of [[a, podA], [b, podB]] as const) {
      const d = await h.call({ command: 'DEL', containerId: id, netns: pod.path, ifname: 'eth0' });
      assert.is(d.exitCode, 0, d.stdout);
    }
    assert.equal(await h.handles(), []);
    assert.equal(await ipam.check(), []);
  });
});

test('interfaceType tap: the device is made inside the pod namespace (eth0, with a unique altname podway opens it by), its type and namespace in the endpoint\'s cni.podway.io/interface-type and -netns annotations', async () => {
  await withHarness(async (h) => {
    const pod = h.pod('tap');
    const id = cid('t');
    const r = await h.add(pod, id, { extra: { interfaceType: 'tap' } });
    assert.is(r.json.interfaces.length, 1);
    assert.is(r.json.ips[0].interface, 0);
    const [link] = h.ipJson(pod, '-d', 'link', 'show', 'dev', 'eth0');
    assert.is(link.linkinfo.info_kind, 'tun');
    assert.is(link.linkinfo.info_data.type, 'tap');
    const wep = (await h.workloadEndpoints())[0];
    // in annotations (calicoctl get/replace keeps them), not spec fields Calico does not define
    assert.is(wep.metadata.annotations['cni.podway.io/interface-type'], 'tap');
    assert.is(wep.metadata.annotations['cni.podway.io/interface-netns'], pod.path);
    assert.is(wep.spec.interfaceType, undefined);
    assert.is(wep.spec.interfaceNetns, undefined);
    // the device is eth0 in the pod; podway knows it by a unique alternative name (names.ts)
    const alt = podDeviceName('tap', { orchestrator: 'cni', namespace: 'default', pod: id }, id);
    assert.match(alt, /^tap[0-9a-f]{11}$/);
    assert.is(wep.spec.interfaceName, alt);
    assert.equal(link.altnames, [alt]);
    assert.is(wep.spec.mac, link.address);
    // as a veth pod's: the gateway's MAC, permanent (only podway answers ARP on a TAP)
    assert.equal(h.ipJson(pod, '-4', 'neigh', 'show', 'dev', 'eth0').map((n) => [n.dst, n.lladdr, n.state]), [['169.254.1.1', 'ee:ee:ee:ee:ee:ee', ['PERMANENT']]]);
    const chk = await h.call({ command: 'CHECK', containerId: id, netns: pod.path, ifname: 'eth0', extra: { interfaceType: 'tap', prevResult: r.json } });
    assert.is(chk.exitCode, 0, chk.stdout);
    const d = await h.call({ command: 'DEL', containerId: id, netns: pod.path, ifname: 'eth0', extra: { interfaceType: 'tap' } });
    assert.is(d.exitCode, 0, d.stdout);
    assert.equal(h.ipJson(pod, 'link', 'show').map((l) => l.ifname), ['lo']);
    assert.equal(await h.handles(), []);
  });
});

test('ipam delegated to host-local (from CNI_PATH): its addresses (IPv4, IPv6, both) on the pod, released by DEL', async () => {
  const hostLocal = '/usr/lib/cni/host-local';
  if (!existsSync(hostLocal)) throw new Error(`${hostLocal} is missing: apt-get install containernetworking-plugins`);
  await withHarness(async (h) => {
    const dataDir = path.join(h.dir, 'host-local');
    const ipam = { type: 'host-local', dataDir, ranges: [[{ subnet: '10.254.7.0/24' }]] };
    const pod = h.pod('hl');
    const id = cid('h');
    const r = await h.add(pod, id, { cniPath: `${h.binDir}:/usr/lib/cni`, extra: { ipam } });
    assert.ok(/^10\.254\.7\.\d+\/32$/.test(r.json.ips[0].address), r.stdout);
    assert.equal(await h.handles(), [], 'podway IPAM not used');
    const ipOnly = r.json.ips[0].address.split('/')[0];
    assert.ok(existsSync(path.join(dataDir, 'podway', ipOnly)), 'host-local holds the address');
    const d = await h.call({ command: 'DEL', containerId: id, netns: pod.path, ifname: 'eth0', cniPath: `${h.binDir}:/usr/lib/cni`, extra: { ipam } });
    assert.is(d.exitCode, 0, d.stdout);
    assert.not.ok(existsSync(path.join(dataDir, 'podway', ipOnly)), 'host-local released it');

    // dual-stack ranges: host-local's IPv4 and IPv6 addresses both go to the pod, the result and
    // the endpoint (IPv4 first), and DEL gives both back
    const ipam2 = { type: 'host-local', dataDir, ranges: [[{ subnet: '10.254.7.0/24' }], [{ subnet: 'fd00:254:7::/120' }]] };
    const pod2 = h.pod('hl2');
    const id2 = cid('h2');
    const r2 = await h.add(pod2, id2, { cniPath: `${h.binDir}:/usr/lib/cni`, extra: { ipam: ipam2 } });
    const addrs = r2.json.ips.map((x: { address: string }) => x.address);
    assert.is(addrs.length, 2, r2.stdout);
    assert.match(addrs[0], /^10\.254\.7\.\d+\/32$/);
    assert.match(addrs[1], /^fd00:254:7::[0-9a-f]+\/128$/);
    assert.is(r2.json.ips[1].gateway, 'fe80::ecee:eeff:feee:eeee', 'the IPv6 gateway');
    const [v4only, v6only] = addrs.map((a: string) => a.split('/')[0]);
    const onPod = h.ipJson(pod2, 'addr', 'show', 'dev', 'eth0')[0].addr_info.filter((a: { scope: string }) => a.scope === 'global').map((a: { local: string; prefixlen: number }) => `${a.local}/${a.prefixlen}`);
    assert.equal(onPod.sort(), [...addrs].sort(), 'both addresses on the pod');
    const wep2 = (await h.workloadEndpoints()).find((w) => w.spec.containerID === id2);
    assert.equal(wep2?.spec.ipNetworks, addrs, 'the endpoint carries both, IPv4 first');
    for (const a of [v4only, v6only]) assert.ok(existsSync(path.join(dataDir, 'podway', a)), `host-local holds ${a}`);
    const chk2 = await h.call({ command: 'CHECK', containerId: id2, netns: pod2.path, ifname: 'eth0', cniPath: `${h.binDir}:/usr/lib/cni`, config: h.config('1.0.0', { ipam: ipam2, prevResult: r2.json }) });
    assert.is(chk2.exitCode, 0, `CHECK of the dual-stack pod (host-local checks its own too): ${chk2.stdout}`);
    const d2 = await h.call({ command: 'DEL', containerId: id2, netns: pod2.path, ifname: 'eth0', cniPath: `${h.binDir}:/usr/lib/cni`, extra: { ipam: ipam2 } });
    assert.is(d2.exitCode, 0, d2.stdout);
    for (const a of [v4only, v6only]) assert.not.ok(existsSync(path.join(dataDir, 'podway', a)), `host-local released ${a}`);
    // an IPv6-only range: an IPv6-only pod
    const ipam6 = { type: 'host-local', dataDir, ranges: [[{ subnet: 'fd00:254:8::/120' }]] };
    const pod3 = h.pod('hl6');
    const id3 = cid('h6');
    const r3 = await h.add(pod3, id3, { cniPath: `${h.binDir}:/usr/lib/cni`, extra: { ipam: ipam6 } });
    assert.equal(r3.json.ips.map((x: { address: string }) => x.address.replace(/[0-9a-f]+\/128$/, 'N/128')), ['fd00:254:8::N/128'], r3.stdout);
    const d3 = await h.call({ command: 'DEL', containerId: id3, netns: pod3.path, ifname: 'eth0', cniPath: `${h.binDir}:/usr/lib/cni`, extra: { ipam: ipam6 } });
    assert.is(d3.exitCode, 0, d3.stdout);
    // a delegate whose ADD gives no address at all: refused, and the delegate is told DEL
    const recDir = path.join(h.dir, 'rec');
    const rec = h.writeRecordingIpam(recDir);
    const pod0 = h.pod('hl0');
    const empty = await h.call({ command: 'ADD', containerId: cid('h0'), netns: pod0.path, ifname: 'eth0', cniPath: `${h.binDir}:${recDir}`, extra: { ipam: { type: rec } } });
    assert.is(empty.json.code, 102, empty.stdout);
    assert.match(empty.json.msg, /returned no IPv4 or IPv6 address/);
    assert.equal(readFileSync(path.join(recDir, 'calls.log'), 'utf8').trim().split('\n'), ['ADD', 'DEL']);
    assert.equal(h.ipJson(pod0, 'link', 'show').map((l) => l.ifname), ['lo'], 'no interface left');

    const missing = await h.call({ command: 'ADD', containerId: id, netns: pod.path, ifname: 'eth0', extra: { ipam: { type: 'no-such-ipam' } } });
    assert.is(missing.json.code, 4);
    assert.match(missing.json.msg, 'no-such-ipam');
  });
});

test('20 ADDs in parallel on one node: 20 distinct addresses and endpoints; 20 DELs leave IPAM empty', async () => {
  await withHarness(async (h) => {
    const pods = Array.from({ length: 20 }, (_, i) => h.pod(`par${i}`));
    const ids = pods.map((_, i) => cid(`q${i}`));
    // 20 plugins take turns at the host-wide IPAM lock; on a loaded 2-CPU machine (load 25) the
    // last one waits longer than the default 20 s bound, so this test, which is about distinct
    // addresses and a clean release, gives them 120 s (the bound itself is tested in ipam-lock*),
    // and each process 180 s before the harness kills it (its default 60 s, for one plugin, was
    // hit at load 25+: 20 node starts at once, then the turns): a hang still ends the call.
    const extra = { ipam_lock_timeout_ms: 120_000 };
    const timeoutMs = 180_000;
    const adds = await Promise.all(pods.map((p, i) => h.call({ command: 'ADD', containerId: ids[i], netns: p.path, ifname: 'eth0', extra, timeoutMs })));
    adds.forEach((r, i) => assert.is(r.exitCode, 0, `ADD ${i}: ${r.stdout} ${r.stderr}`));
    const addrs = adds.map((r) => r.json.ips[0].address);
    assert.is(new Set(addrs).size, 20, addrs.join(' '));
    pods.forEach((p, i) => assert.ok(h.ipJson(p, 'addr', 'show', 'dev', 'eth0')[0].addr_info.some((a: any) => `${a.local}/32` === addrs[i])));
    assert.is((await h.workloadEndpoints()).length, 20);
    assert.is(h.caliLinks().length, 20);
    const ipam = new Ipam(h.kv);
    assert.equal(await ipam.check(), []);
    console.log(`  20 parallel ADDs: slowest ${Math.max(...adds.map((r) => r.ms))} ms, fastest ${Math.min(...adds.map((r) => r.ms))} ms`);

    const dels = await Promise.all(pods.map((p, i) => h.call({ command: 'DEL', containerId: ids[i], netns: p.path, ifname: 'eth0', extra, timeoutMs })));
    dels.forEach((r, i) => assert.is(r.exitCode, 0, `DEL ${i}: ${r.stdout} ${r.stderr}`));
    assert.equal(await ipam.check(), []);
    assert.equal(await h.handles(), []);
    assert.equal(await h.workloadEndpoints(), []);
    assert.equal(h.caliLinks(), []);
    const inUse = (await ipam.show()).reduce((n, p) => n + p.inUse, 0);
    assert.is(inUse, 0);
  }, { cidr: '10.251.0.0/24', blockSize: 28 });
});

test('etcd datastore: ADD, CHECK and DEL against a real etcd (Calico\'s etcd_endpoints keys), none loading the etcd3 client (gRPC, protobufjs)', async () => {
  if (!existsSync(ETCD_BINARY)) throw new Error(`${ETCD_BINARY} missing (scripts/setup.sh installs etcd-server)`);
  const etcd = await startEtcd();
  // etcd listens on the host's loopback: the plugin runs here, with a tap pod (nothing made outside the pod namespace)
  const h = new CniHarness(undefined, false);
  const kv = new EtcdKv({ endpoints: [etcd.endpoint] });
  try {
    await h.setup();
    await applyResource(kv, { apiVersion: 'projectcalico.org/v3', kind: 'IPPool', metadata: { name: 'etcd-pool' }, spec: { cidr: '10.250.8.0/24', blockSize: 26 } });
    await registerNode(kv, { name: h.nodeName, ipv4Address: '10.99.0.1/24' });
    const extra = { datastore: undefined, datastore_type: 'etcdv3', etcd_endpoints: etcd.endpoint, interfaceType: 'tap' };
    // Each call reports what it loaded (test/helpers/module-report.ts): its etcd calls go over
    // HTTP/2 itself (src/control/kv/etcd-lite.ts), which a fresh process loads in a tenth of the time.
    const env = { NODE_OPTIONS: REPORT_MODULES };
    const lean = (what: string, r: { stderr: string }) => {
      const mods = loadedModules(r.stderr);
      assert.ok(mods, `${what} reported its modules: ${r.stderr}`);
      for (const heavy of ['etcd3', '@grpc/grpc-js', '@grpc/proto-loader', 'protobufjs', 'cockatiel']) assert.not.ok(mods!.includes(heavy), `${what} loaded ${heavy}`);
      assert.ok(mods!.includes('src/control/kv/etcd-lite.js'), `${what} used etcd-lite`);
      return mods!;
    };
    const pod = h.pod('etcd');
    const id = cid('e');
    const r = await h.add(pod, id, { extra, env });
    lean('ADD', r);
    assert.ok(r.json.ips[0].address.startsWith('10.250.8.'), r.stdout);
    assert.ok(await kv.get(`/calico/ipam/v2/handle/podway.${id}`));
    assert.is((await kv.list('/calico/resources/v3/projectcalico.org/workloadendpoints/')).entries.length, 1);
    const c = await h.call({ command: 'CHECK', containerId: id, netns: pod.path, ifname: 'eth0', extra: { ...extra, prevResult: r.json }, env });
    assert.is(c.exitCode, 0, c.stdout);
    lean('CHECK', c);
    const d = await h.call({ command: 'DEL', containerId: id, netns: pod.path, ifname: 'eth0', extra, env });
    assert.is(d.exitCode, 0, d.stdout);
    assert.ok(lean('DEL', d).includes('src/control/ipam/ipam.js'), 'DEL of a container with an address releases it through IPAM');
    // A DEL of a container this network never saw (a runtime retrying, or a sandbox whose ADD
    // failed) finds no handle and no endpoint: it does not load IPAM.
    const unknown = await h.call({ command: 'DEL', containerId: cid('unknown'), netns: '', ifname: 'eth0', extra, env });
    assert.is(unknown.exitCode, 0, unknown.stdout);
    assert.not.ok(lean('DEL of an unknown container', unknown).includes('src/control/ipam/ipam.js'), 'a DEL that has nothing to release does not load IPAM');
    assert.not.ok(await kv.get(`/calico/ipam/v2/handle/podway.${id}`));
    assert.equal(await new Ipam(kv).check(), []);
    assert.equal(h.ipJson(pod, 'link', 'show').map((l) => l.ifname), ['lo']);
    assert.equal(await h.workloadEndpoints(), [], 'the embedded store was not touched');
  } finally {
    await kv.close();
    await h.cleanup();
    await etcd.stop();
  }
});

for (const how of ['killed', 'stopped'] as const) {
  test(`etcd with one of three members ${how}, its endpoint listed first: every CNI ADD and DEL, CLI apply and get succeed (${how === 'killed' ? 'a call that found no connection goes to the next endpoint' : 'a member that never connects is drawn after the connected ones'})`, async () => {
    // Review D, HIGH 1: etcd3's pass-through policy sent each call to one shuffled endpoint; 2 of 3
    // CLI runs and 4 of 4 ADDs failed "unreachable ... ECONNREFUSED" with the first member down.
    // The chaos review: with the member stopped (SIGSTOP: TCP accepted by its kernel, nothing said)
    // 4 of 4 ADDs and 4 of 6 applies failed "too slow", the call waiting for that member's connection.
    if (!existsSync(ETCD_BINARY)) throw new Error(`${ETCD_BINARY} missing (scripts/setup.sh installs etcd-server)`);
    const cluster = await startEtcdCluster(3);
    const h = new CniHarness(undefined, false);
    const kv = new EtcdKv({ endpoints: cluster.endpoints.slice(1), timeoutMs: 20_000 });
    try {
      await h.setup();
      await applyResource(kv, { apiVersion: 'projectcalico.org/v3', kind: 'IPPool', metadata: { name: 'fo-pool' }, spec: { cidr: '10.250.9.0/24', blockSize: 26 } });
      await registerNode(kv, { name: h.nodeName, ipv4Address: '10.99.0.1/24' });
      if (how === 'killed') await cluster.kill(0); // by PID; quorum stays (2 of 3)
      else await cluster.pause(0); // continued by cluster.stop()
      const endpoints = cluster.endpoints.join(',');
      const extra = { datastore: undefined, datastore_type: 'etcdv3', etcd_endpoints: endpoints, interfaceType: 'tap' };
      const podway = path.resolve(__dirname, '../../../bin/podway.js');
      const cli = (args: string[]) => spawnSync(process.execPath, [podway, ...args, '--datastore', `etcd:${endpoints}`], { encoding: 'utf8', timeout: 60_000, env: { PATH: process.env.PATH ?? '/usr/bin:/bin' } });
      for (let i = 0; i < (how === 'killed' ? 5 : 3); i++) {
        const pod = h.pod(`fo${how[0]}${i}`);
        const id = cid(`fo${how[0]}${i}`);
        const add = await h.call({ command: 'ADD', containerId: id, netns: pod.path, ifname: 'eth0', extra });
        assert.is(add.exitCode, 0, `ADD ${i}: ${add.stdout} ${add.stderr}`);
        assert.ok(add.json.ips[0].address.startsWith('10.250.9.'), add.stdout);
        const file = path.join(h.dir, `fo-pool-${i}.yaml`);
        writeFileSync(file, `apiVersion: projectcalico.org/v3\nkind: IPPool\nmetadata: {name: fo-pool, labels: {round: "${i}"}}\nspec: {cidr: 10.250.9.0/24, blockSize: 26}\n`);
        const applied = cli(['apply', '-f', file]);
        assert.is(applied.status, 0, `apply ${i}: ${applied.stderr}`);
        const got = cli(['get', 'ippool', 'fo-pool', '-o', 'json']);
        assert.is(got.status, 0, `get ${i}: ${got.stderr}`);
        assert.is(JSON.parse(got.stdout).metadata.labels.round, String(i));
        const del = await h.call({ command: 'DEL', containerId: id, netns: pod.path, ifname: 'eth0', extra });
        assert.is(del.exitCode, 0, `DEL ${i}: ${del.stdout} ${del.stderr}`);
      }
      assert.equal(await new Ipam(kv).check(), []);
      assert.is((await kv.list('/calico/ipam/v2/handle/')).entries.length, 0, 'every DEL released its address in etcd (none deferred)');
    } finally {
      await kv.close();
      await h.cleanup();
      await cluster.stop();
    }
  });
}

test('podway cni install refuses a build whose flock addon (build/Release/podway_flock.node) does not load, naming it: every ADD and DEL would fail', async () => {
  const tmp = mkdtempSync(path.join(tmpdir(), 'podway-noaddon-'));
  try {
    // this build's compiled tree without build/ beside it (a checkout rebuilt by tsc alone)
    cpSync(path.resolve(__dirname, '../../src'), path.join(tmp, 'dist', 'src'), { recursive: true });
    symlinkSync(path.resolve(__dirname, '../../../node_modules'), path.join(tmp, 'node_modules'));
    mkdirSync(path.join(tmp, 'store'));
    const script = `require(${JSON.stringify(path.join(tmp, 'dist/src/cni/install.js'))}).installCni({ binDir: ${JSON.stringify(path.join(tmp, 'bin'))}, confDir: ${JSON.stringify(path.join(tmp, 'conf'))}, datastore: 'embedded:${path.join(tmp, 'store')}', node: 'n-1' }); console.log('installed');`;
    const r = spawnSync(process.execPath, ['-e', script], { encoding: 'utf8', timeout: 60_000 });
    assert.is.not(r.status, 0, `${r.stdout}${r.stderr}`);
    assert.match(r.stderr, 'cni install: podway\'s flock addon (build/Release/podway_flock.node) not built');
    assert.match(r.stderr, 'npm run build:native');
    assert.not.ok(existsSync(path.join(tmp, 'bin')) || existsSync(path.join(tmp, 'conf')), 'nothing written');
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
});

test('podway cni install writes the shim and the conflist; uninstall removes only those', async () => {
  const h = new CniHarness();
  try {
    const binDir = path.join(h.dir, 'i-bin');
    const confDir = path.join(h.dir, 'i-conf');
    mkdirSync(confDir, { recursive: true });
    mkdirSync(h.storeDir, { recursive: true }); // install checks that an embedded store exists
    writeFileSync(path.join(confDir, '05-other.conflist'), JSON.stringify({ cniVersion: '1.0.0', name: 'other', plugins: [{ type: 'bridge' }] }));
    const out = sh(process.execPath, [path.resolve(__dirname, '../../../bin/podway.js'), 'cni', 'install', '--bin-dir', binDir, '--conf-dir', confDir, '--datastore', `embedded:${h.storeDir}`, '--node', 'n-1', '--name', 'pw-net', '--priority', '20']);
    assert.match(out, 'installed');
    assert.match(out, 'note: host ports (`podman run -p`, hostPort; IPv4 and IPv6) are forwarded by podway run itself', 'how host ports work is said');
    const shim = readFileSync(path.join(binDir, 'podway'), 'utf8');
    assert.ok(shim.includes(SHIM_MARKER));
    assert.ok(shim.includes(process.execPath) && shim.includes(path.resolve(__dirname, '../../src/cni/main.js')), shim);
    const conf = JSON.parse(readFileSync(path.join(confDir, '20-pw-net.conflist'), 'utf8'));
    assert.equal(conf, { cniVersion: '1.0.0', cniVersions: ['1.0.0', '1.1.0'], name: 'pw-net', plugins: [{ type: 'podway', datastore: `embedded:${h.storeDir}`, nodename: 'n-1', ipam: { type: 'podway' }, conflist: path.join(confDir, '20-pw-net.conflist'), capabilities: { mac: true, portMappings: true } }] });
    // the shim answers VERSION with no environment but CNI_COMMAND
    const v = sh('/usr/bin/env', ['-i', 'CNI_COMMAND=VERSION', path.join(binDir, 'podway')]);
    assert.equal(JSON.parse(v).supportedVersions, ['0.4.0', '1.0.0', '1.1.0']);
    // a foreign plugin named podway is not replaced
    const foreignBin = path.join(h.dir, 'f-bin');
    mkdirSync(foreignBin);
    writeFileSync(path.join(foreignBin, 'podway'), '#!/bin/sh\n');
    assert.throws(() => installCni({ binDir: foreignBin, confDir, datastore: `embedded:${h.storeDir}`, node: 'n-1' }), /not written by podway/);
    // Paths the plugin uses are refused when relative (the runtime runs it elsewhere) and an
    // embedded store must exist: a usage error (exit 2) naming the option, nothing written. They
    // used to be made absolute from the installer's cwd, and a missing store failed at the first pod.
    const podway = path.resolve(__dirname, '../../../bin/podway.js');
    const rBin = path.join(h.dir, 'r-bin');
    const rConf = path.join(h.dir, 'r-conf');
    const good = ['cni', 'install', '--bin-dir', rBin, '--conf-dir', rConf, '--node', 'n-1', '--datastore', `embedded:${h.storeDir}`];
    const refusals: [string[], string][] = [
      [['--datastore', 'embedded:relds'], '--datastore embedded:DIR "relds": give an absolute path'],
      [['--datastore', `embedded:${path.join(h.dir, 'no-such-store')}`], `--datastore embedded:${path.join(h.dir, 'no-such-store')}: the embedded datastore ${path.join(h.dir, 'no-such-store')} does not exist`],
      [['--ipam-lock-file', 'run/ipam.lock'], '--ipam-lock-file "run/ipam.lock": give an absolute path'],
      [['--ipam-lock-file', `${h.dir}/run/`], 'expected a file path, not a directory'],
      [['--pending-del-dir', 'pending'], '--pending-del-dir "pending": give an absolute path'],
      [['--control', './n.sock'], '--control "./n.sock": give an absolute path'],
    ];
    for (const [more, mention] of refusals) {
      const r = spawnSync(process.execPath, [podway, ...good, ...more], { cwd: h.dir, encoding: 'utf8', timeout: 60_000 });
      assert.is(r.status, 2, `${more.join(' ')}: exit 2 (usage): ${r.stdout}${r.stderr}`);
      assert.ok(r.stderr.includes(mention), `${more.join(' ')}: names ${mention}: ${r.stderr}`);
      assert.not.ok(existsSync(rBin) || existsSync(rConf), `${more.join(' ')}: nothing written`);
    }
    // the etcd TLS files go into the conflist too: refused when relative, naming the variable
    for (const v of ['ETCD_CA_CERT_FILE', 'ETCD_CERT_FILE', 'ETCD_KEY_FILE']) {
      const tenv = { ...process.env, ETCD_CA_CERT_FILE: path.join(h.dir, 'ca.pem'), ETCD_CERT_FILE: path.join(h.dir, 'c.pem'), ETCD_KEY_FILE: path.join(h.dir, 'k.pem'), [v]: 'tls/f.pem' };
      const r = spawnSync(process.execPath, [podway, ...good, '--datastore', 'etcd:https://127.0.0.1:2379'], { cwd: h.dir, env: tenv, encoding: 'utf8', timeout: 60_000 });
      assert.is(r.status, 2, `${v}: exit 2 (usage): ${r.stdout}${r.stderr}`);
      assert.ok(r.stderr.includes(`$${v} "tls/f.pem": give an absolute path`), `${v}: named: ${r.stderr}`);
      assert.not.ok(existsSync(rBin) || existsSync(rConf), `${v}: nothing written`);
    }
    // ... and given as the flags every --datastore command takes (review D, MED 4: they were
    // unknown options here): written into the conflist, a flag winning over its variable, and a
    // relative one refused naming the flag.
    const flagEnv = { ...process.env, ETCD_CA_CERT_FILE: path.join(h.dir, 'env-ca.pem') };
    const tlsDir = path.join(h.dir, 'tls-conf');
    const withFlags = spawnSync(process.execPath, [podway, 'cni', 'install', '--bin-dir', path.join(h.dir, 'tls-bin'), '--conf-dir', tlsDir, '--node', 'n-1', '--datastore', 'etcd:https://127.0.0.1:2379',
      '--etcd-ca-cert-file', path.join(h.dir, 'ca.pem'), '--etcd-cert-file', path.join(h.dir, 'c.pem'), '--etcd-key-file', path.join(h.dir, 'k.pem')], { cwd: h.dir, env: flagEnv, encoding: 'utf8', timeout: 60_000 });
    assert.is(withFlags.status, 0, withFlags.stderr);
    const tlsConf = JSON.parse(readFileSync(path.join(tlsDir, '10-podway.conflist'), 'utf8')).plugins[0];
    assert.is(tlsConf.etcd_ca_cert_file, path.join(h.dir, 'ca.pem'), 'the flag wins over ETCD_CA_CERT_FILE');
    assert.is(tlsConf.etcd_cert_file, path.join(h.dir, 'c.pem'));
    assert.is(tlsConf.etcd_key_file, path.join(h.dir, 'k.pem'));
    const relFlag = spawnSync(process.execPath, [podway, ...good, '--datastore', 'etcd:https://127.0.0.1:2379', '--etcd-ca-cert-file', 'tls/ca.pem'], { cwd: h.dir, encoding: 'utf8', timeout: 60_000 });
    assert.is(relFlag.status, 2, relFlag.stderr);
    assert.ok(relFlag.stderr.includes('--etcd-ca-cert-file / $ETCD_CA_CERT_FILE "tls/ca.pem": give an absolute path'), relFlag.stderr);
    const penv = { ...process.env, PODWAY_DATASTORE: 'embedded:relstore' };
    const fromEnv = spawnSync(process.execPath, [podway, 'cni', 'install', '--bin-dir', rBin, '--conf-dir', rConf, '--node', 'n-1'], { cwd: h.dir, env: penv, encoding: 'utf8', timeout: 60_000 });
    assert.is(fromEnv.status, 2, fromEnv.stderr);
    assert.match(fromEnv.stderr, '$PODWAY_DATASTORE embedded:DIR "relstore"');
    // a directory given with a trailing '/' is written without it (the plugin refuses one)
    const ok = spawnSync(process.execPath, [podway, ...good, '--pending-del-dir', `${h.dir}/pd/`, '--ipam-lock-file', `${h.dir}//run/ipam.lock`], { cwd: h.dir, encoding: 'utf8', timeout: 60_000 });
    assert.is(ok.status, 0, ok.stderr);
    const okConf = JSON.parse(readFileSync(path.join(rConf, '10-podway.conflist'), 'utf8')).plugins[0];
    assert.is(okConf.pending_del_dir, `${h.dir}/pd`);
    assert.is(okConf.ipam_lock_file, `${h.dir}/run/ipam.lock`);
    const removed = uninstallCni({ binDir, confDir, name: 'pw-net' });
    assert.equal(removed.sort(), [path.join(binDir, 'podway'), path.join(confDir, '20-pw-net.conflist')].sort());
    assert.ok(existsSync(path.join(confDir, '05-other.conflist')), 'others\' conflists stay');
    assert.equal(uninstallCni({ binDir: foreignBin, confDir }), [], 'a foreign podway binary stays');
    assert.ok(existsSync(path.join(foreignBin, 'podway')));
  } finally {
    await h.cleanup();
  }
});

test.run();
