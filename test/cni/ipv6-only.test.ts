/**
 * The CNI plugin on an IPv6-only node (root, network namespaces): a Node with spec.bgp.ipv6Address
 * only (podway run --ip none, Calico's IP=none) beside an IPv4 VXLAN pool and an unencapsulated
 * IPv6 pool. `podway cni install` reads the Node and writes ipam assign_ipv4 "false" / assign_ipv6
 * "true" (or is told so with --ip none; a Node not registered yet or an unreachable etcd leaves
 * Calico's default with a note), and ADD then gives the pod its IPv6 /128 only, with the MTU of
 * the IPv6 pools alone (1500, not the IPv4 VXLAN pool's 1450). A config that still asks for IPv4
 * gets it, as Calico's plugin gives it, with a warning naming the conflist and ipam.assign_ipv4
 * (and the source, for IP=); with no IPv4 pool the ADD's error says what to set. With `podway run
 * --ip none` on the node, veth, tap and tun pods the plugin made ping each other over IPv6, and a
 * pod given IPv4 by the default config has it listed withheld.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, rmSync } from 'node:fs';
import * as path from 'node:path';
import { CniHarness, RunningPodway } from './harness';
import { applyResource } from '../../src/control/v3-store';
import { registerNode } from '../../src/control/node-registration';
import { controlRequest } from '../../src/dataplane/control-server';
import { Ipam } from '../../src/control/ipam';
import { installCni } from '../../src/cni/install';
import { isRoot, sh, sleep } from '../helpers/netns';
import { parsePing } from '../../src/lab/lab';

if (!isRoot()) throw new Error('the CNI plugin tests need root (network namespaces)');

const PODWAY = path.resolve(__dirname, '../../../bin/podway.js');
const V4_POOL = '10.251.0.0/24';
const V6_POOL = 'fd00:251::/120';
const cid = (n: string): string => `c${n}${Math.random().toString(16).slice(2, 10)}`;
const args = (pod: string) => `K8S_POD_NAMESPACE=web;K8S_POD_NAME=${pod}`;

/** The pools, and this node registered IPv6-only (no spec.bgp.ipv4Address) unless `dual`. */
async function setupNode(h: CniHarness, dual = false): Promise<void> {
  await applyResource(h.kv, { apiVersion: 'projectcalico.org/v3', kind: 'IPPool', metadata: { name: `pool-${h.tag}` }, spec: { cidr: V4_POOL, blockSize: 26, vxlanMode: 'Always' } });
  await applyResource(h.kv, { apiVersion: 'projectcalico.org/v3', kind: 'IPPool', metadata: { name: `pool6-${h.tag}` }, spec: { cidr: V6_POOL, vxlanMode: 'Never' } });
  await registerNode(h.kv, { name: h.nodeName, ipv6Address: 'fd99::1/64', ...(dual ? { ipv4Address: '10.99.0.1/24' } : {}) });
}

/** `podway cni install` into the harness's directories, as a user runs it; the conflist read back into h. */
function cliInstall(h: CniHarness, more: string[] = [], datastore = `embedded:${h.storeDir}`): { status: number | null; stdout: string; stderr: string; conflist: string } {
  const r = spawnSync(process.execPath, [PODWAY, 'cni', 'install', '--bin-dir', h.binDir, '--conf-dir', h.confDir, '--datastore', datastore, '--node', h.nodeName,
    '--control', h.control, '--ipam-lock-file', h.ipamLockFile, '--pending-del-dir', h.pendingDelDir, ...more], { encoding: 'utf8', timeout: 60_000 });
  const conflist = path.join(h.confDir, '10-podway.conflist');
  if (r.status === 0) h.conflist = JSON.parse(readFileSync(conflist, 'utf8'));
  return { status: r.status, stdout: r.stdout, stderr: r.stderr, conflist };
}

/** The conflist a plain install writes (Calico's default families), written with installCni. */
function defaultInstall(h: CniHarness): string {
  const done = installCni({ binDir: h.binDir, confDir: h.confDir, datastore: `embedded:${h.storeDir}`, node: h.nodeName, control: h.control, ipamLockFile: h.ipamLockFile, pendingDelDir: h.pendingDelDir, env: {} });
  h.conflist = JSON.parse(readFileSync(done.conflist, 'utf8'));
  return done.conflist;
}

const V6_ONLY_IPAM = { type: 'podway', assign_ipv4: 'false', assign_ipv6: 'true' };

test('cni install on an IPv6-only node: IPv6 only from its Node (or --ip none); ADD gives a /128 alone, the IPv6 pools\' MTU, no warning', async () => {
  const h = new CniHarness();
  try {
    await setupNode(h);
    const inst = cliInstall(h);
    assert.is(inst.status, 0, inst.stderr);
    assert.match(inst.stdout, `node ${h.nodeName} is IPv6-only (its Node has no spec.bgp.ipv4Address): the conflist asks for IPv6 addresses only`);
    assert.equal(h.conflist.plugins[0].ipam, V6_ONLY_IPAM);

    const pod = h.pod('a');
    const id = cid('a');
    const r = await h.add(pod, id, { args: args('a') });
    assert.is(r.json.ips.length, 1, JSON.stringify(r.json.ips));
    assert.match(r.json.ips[0].address, /^fd00:251::[0-9a-f]*\/128$/);
    assert.not.match(r.stderr, 'IPv6-only', `no warning: ${r.stderr}`);
    const [link] = h.ipJson(pod, 'addr', 'show', 'dev', 'eth0');
    assert.equal(link.addr_info.filter((a: { family: string }) => a.family === 'inet'), [], 'no IPv4 address in the pod');
    assert.equal(h.ipJson(pod, '-4', 'route', 'show'), [], 'no IPv4 route in the pod');
    assert.is(link.mtu, 1500, 'the IPv6 pool (unencapsulated) sets the MTU; the IPv4 VXLAN pool is not used on this node');
    const wep = (await h.workloadEndpoints()).find((w) => w.spec.containerID === id);
    assert.equal(wep.spec.ipNetworks, [r.json.ips[0].address]);
    assert.is((await h.call({ command: 'DEL', containerId: id, netns: pod.path, ifname: 'eth0', args: args('a') })).exitCode, 0);
    assert.equal(await h.handles(), []);
    assert.equal(await new Ipam(h.kv).check(), []);

    // A dual-stack Node: Calico's default families, nothing said.
    await registerNode(h.kv, { name: h.nodeName, ipv4Address: '10.99.0.1/24', ipv6Address: 'fd99::1/64' });
    const dual = cliInstall(h);
    assert.is(dual.status, 0, dual.stderr);
    assert.equal(h.conflist.plugins[0].ipam, { type: 'podway' });
    assert.not.match(dual.stdout, 'IPv6-only');
  } finally {
    await h.cleanup();
  }
});

test('cni install: --ip none without reading the Node; a Node not registered yet or an unreachable etcd: Calico\'s default and a note; --ip other than none refused', async () => {
  const h = new CniHarness();
  try {
    mkdirSync(h.storeDir, { recursive: true }); // install checks that an embedded store exists
    const unregistered = cliInstall(h);
    assert.is(unregistered.status, 0, unregistered.stderr);
    assert.match(unregistered.stdout, `note: node ${h.nodeName} is not registered in embedded ${h.storeDir} yet: the conflist asks for Calico's default address families`);
    assert.match(unregistered.stdout, 'give --ip none');
    assert.equal(h.conflist.plugins[0].ipam, { type: 'podway' });

    const told = cliInstall(h, ['--ip', 'none']);
    assert.is(told.status, 0, told.stderr);
    assert.equal(h.conflist.plugins[0].ipam, V6_ONLY_IPAM);
    assert.not.match(told.stdout, 'note: node', 'told: the Node is not read');

    // Nothing listens on port 1: refused at once; the install goes on.
    const down = cliInstall(h, [], 'etcd:http://127.0.0.1:1');
    assert.is(down.status, 0, down.stderr);
    assert.match(down.stdout, `note: node ${h.nodeName}'s Node not read from etcd http://127.0.0.1:1 (`);
    assert.equal(h.conflist.plugins[0].ipam, { type: 'podway' });

    rmSync(h.confDir, { recursive: true, force: true });
    const wrong = cliInstall(h, ['--ip', '10.0.0.1/24']);
    assert.is(wrong.status, 2, wrong.stdout + wrong.stderr);
    assert.match(wrong.stderr, 'cni install: --ip "10.0.0.1/24": only "none"');
    assert.not.ok(existsSync(h.confDir), 'nothing written');
  } finally {
    await h.cleanup();
  }
});

test('a config asking for IPv4 on an IPv6-only node: assigned, as Calico\'s plugin does, with a warning naming the conflist and ipam.assign_ipv4; IP= named; no IPv4 pool: the error says what to set', async () => {
  const h = new CniHarness();
  try {
    await setupNode(h);
    const conflist = defaultInstall(h);
    const warning = `network "podway" config (${conflist}): ipam.assign_ipv4 is unset (Calico's default: "true"), but node ${h.nodeName} is IPv6-only (its Node has no spec.bgp.ipv4Address: podway run --ip none), so the pod's IPv4 address `;

    const podA = h.pod('a');
    const a = await h.add(podA, cid('a'), { args: args('a') });
    assert.is(a.json.ips.length, 2, JSON.stringify(a.json.ips));
    const v4 = (a.json.ips[0].address as string).split('/')[0];
    assert.match(a.stderr, `${warning}${v4} is not routed here (podway status lists it withheld); assigned all the same, as Calico's plugin does: set "assign_ipv4": "false" and "assign_ipv6": "true" in "ipam"`);
    assert.is(h.ipJson(podA, 'link', 'show', 'dev', 'eth0')[0].mtu, 1500);

    const b = await h.add(h.pod('b'), cid('b'), { args: args('b'), extra: { ipam: { type: 'calico-ipam', assign_ipv4: 'true', assign_ipv6: 'true' } } });
    assert.match(b.stderr, 'ipam.assign_ipv4 is "true", but node');

    const c = await h.add(h.pod('c'), cid('c'), { args: `${args('c')};IP=10.251.0.77` });
    assert.equal(c.json.ips.map((i: { address: string }) => i.address), ['10.251.0.77/32']);
    assert.match(c.stderr, `CNI_ARGS IP: 10.251.0.77 asked for, but node ${h.nodeName} is IPv6-only`);

    // No IPv4 pool: the ADD fails (as Calico's does), saying what to set, and leaves nothing.
    await applyResource(h.kv, { apiVersion: 'projectcalico.org/v3', kind: 'IPPool', metadata: { name: `pool-${h.tag}` }, spec: { cidr: V4_POOL, blockSize: 26, vxlanMode: 'Always', disabled: true } });
    const handles = (await h.handles()).length;
    const d = await h.call({ command: 'ADD', containerId: cid('d'), netns: h.pod('d').path, ifname: 'eth0', args: args('d') });
    assert.is(d.exitCode, 1, d.stdout);
    assert.is(d.json.code, 11, d.stdout);
    assert.match(d.json.msg, `IPAM: no IPv4 address for`);
    assert.match(d.json.msg, `; node ${h.nodeName} is IPv6-only (its Node has no spec.bgp.ipv4Address: podway run --ip none): set "assign_ipv4": "false" and "assign_ipv6": "true" in network "podway" config (${conflist})'s "ipam"`);
    assert.is((await h.handles()).length, handles, 'the failed ADD gave back what it took');

    // The same config on a dual-stack node: no warning (what makes the ones above the node's doing).
    await applyResource(h.kv, { apiVersion: 'projectcalico.org/v3', kind: 'IPPool', metadata: { name: `pool-${h.tag}` }, spec: { cidr: V4_POOL, blockSize: 26, vxlanMode: 'Always' } });
    await registerNode(h.kv, { name: h.nodeName, ipv4Address: '10.99.0.1/24', ipv6Address: 'fd99::1/64' });
    const podE = h.pod('e');
    const e = await h.add(podE, cid('e'), { args: args('e') });
    assert.is(e.json.ips.length, 2);
    assert.not.match(e.stderr, 'IPv6-only');
    assert.is(h.ipJson(podE, 'link', 'show', 'dev', 'eth0')[0].mtu, 1450, 'dual-stack: the IPv4 VXLAN pool counts');
  } finally {
    await h.cleanup();
  }
});

test('podway run --ip none with pods the plugin made: veth, tap and tun ping each other over IPv6; a pod given IPv4 by the default config has it withheld', async () => {
  const h = new CniHarness();
  let podway: RunningPodway | null = null;
  try {
    await setupNode(h);
    h.addUplink6();
    podway = h.startPodway(['--ip', 'none', '--ip6', 'fd99::1/64', '--model-cache', 'none']);
    await podway.ready();
    const inst = cliInstall(h);
    assert.is(inst.status, 0, inst.stderr);
    assert.equal(h.conflist.plugins[0].ipam, V6_ONLY_IPAM);
    const pods = [['va', 'veth'], ['vb', 'veth'], ['ta', 'tap'], ['ua', 'tun']].map(([label, type]) => ({ label, type, ns: h.pod(label), id: cid(label), ip6: '' }));
    for (const p of pods) {
      const r = (await h.add(p.ns, p.id, { args: args(`pod-${p.label}`), extra: { interfaceType: p.type } })).json;
      assert.is(r.ips.length, 1, JSON.stringify(r.ips));
      p.ip6 = (r.ips[0].address as string).split('/')[0];
    }
    let attached = false;
    for (let i = 0; i < 300 && !attached; i++) {
      attached = ((await controlRequest(h.control, { cmd: 'endpoints' })) as { state: string }[]).filter((e) => e.state === 'attached').length === pods.length;
      if (!attached) await sleep(100);
    }
    assert.ok(attached, `podway attached the ${pods.length} pods: ${podway.log.slice(-5).join(' | ')}`);
    for (const [a, b] of [['va', 'vb'], ['vb', 'ta'], ['ta', 'ua'], ['ua', 'va']]) {
      const from = pods.find((p) => p.label === a)!;
      const to = pods.find((p) => p.label === b)!;
      const out = sh('ip', ['netns', 'exec', from.ns.name, 'ping', '-6', '-n', '-c', '3', '-i', '0.2', '-w', '15', to.ip6], { allowFail: true, timeoutMs: 20_000 });
      assert.is(parsePing(out, 3).received, 3, `${a} -> ${b} (${to.ip6}): ${out} | ${podway.log.slice(-5).join(' | ')}`);
    }

    // The default config on this node: an IPv4 address too, which the node's model withholds.
    const conflist = defaultInstall(h);
    const w = await h.add(h.pod('w'), cid('w'), { args: args('pod-w') });
    const v4 = (w.json.ips[0].address as string).split('/')[0];
    assert.match(w.stderr, `network "podway" config (${conflist}): ipam.assign_ipv4 is unset`);
    let withheld = false;
    for (let i = 0; i < 300 && !withheld; i++) {
      const st = (await controlRequest(h.control, { cmd: 'status' })) as { withheld: { cidr: string; reason: string }[] };
      withheld = st.withheld.some((x) => x.cidr === `${v4}/32` && /this node has no IPv4 address/.test(x.reason));
      if (!withheld) await sleep(100);
    }
    assert.ok(withheld, `${v4} listed withheld`);
  } catch (e) {
    console.log(podway?.log.slice(-20).join('\n'));
    throw e;
  } finally {
    await podway?.stop();
    await h.cleanup();
  }
});

test.run();
