/**
 * The CNI plugin on a dual-stack datastore (root, network namespaces): with an IPv6 pool beside
 * the IPv4 one, ADD gives the pod an IPv6 /128 too (one IPAM handle for both), routes it via
 * Calico's fe80::ecee:eeff:feee:eeee, writes both ipNetworks and returns both addresses; CHECK
 * sees a missing IPv6 route; DEL frees both. Calico's ipam.assign_ipv4/assign_ipv6 choose the
 * families. Then a running `podway run` forwards IPv6 between pods the plugin made.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { CniHarness, RunningPodway } from './harness';
import { applyResource } from '../../src/control/v3-store';
import { controlRequest } from '../../src/dataplane/control-server';
import { Ipam } from '../../src/control/ipam';
import { isRoot, sh, sleep } from '../helpers/netns';
import { parsePing } from '../../src/lab/lab';

if (!isRoot()) throw new Error('the CNI plugin tests need root (network namespaces)');

const V6_POOL = 'fd00:251::/120';
const cid = (n: string): string => `c${n}${Math.random().toString(16).slice(2, 10)}`;

async function withDualStack(fn: (h: CniHarness) => Promise<void>, v6 = true, v6Mode = 'Always'): Promise<void> {
  const h = new CniHarness();
  try {
    await h.setup({ cidr: '10.251.0.0/24', blockSize: 26 });
    if (v6) await applyResource(h.kv, { apiVersion: 'projectcalico.org/v3', kind: 'IPPool', metadata: { name: `pool6-${h.tag}` }, spec: { cidr: V6_POOL, vxlanMode: v6Mode } });
    await fn(h);
  } finally {
    await h.cleanup();
  }
}

const args = (pod: string) => `K8S_POD_NAMESPACE=web;K8S_POD_NAME=${pod}`;

/** ADDs one pod per [label, interfaceType] and waits (bounded) until podway has attached them all. */
async function addPods(h: CniHarness, log: string[], specs: [string, string][]) {
  const pods = specs.map(([label, type]) => ({ label, type, ns: h.pod(label), id: cid(label) }));
  const ip6: Record<string, string> = {};
  for (const p of pods) {
    const r = (await h.add(p.ns, p.id, { args: args(`pod-${p.label}`), extra: { interfaceType: p.type } })).json;
    ip6[p.label] = (r.ips[1].address as string).split('/')[0];
  }
  let attached = false;
  for (let i = 0; i < 150 && !attached; i++) {
    attached = ((await controlRequest(h.control, { cmd: 'endpoints' })) as { state: string }[]).filter((e) => e.state === 'attached').length === pods.length;
    if (!attached) await sleep(100);
  }
  assert.ok(attached, `podway attached the ${pods.length} pods: ${log.slice(-5).join(' | ')}`);
  return { pods, ip6 };
}

test('ADD on a dual-stack datastore: /32 and /128, both default routes, both ipNetworks, both in the result; CHECK; DEL frees both', async () => {
  await withDualStack(async (h) => {
    for (const version of ['0.4.0', '1.1.0']) {
      const pod = h.pod(`d${version.replace(/\./g, '')}`);
      const id = cid('d');
      const name = `dual-${version.replace(/\./g, '')}`;
      const res = (await h.add(pod, id, { config: h.config(version), args: args(name) })).json;
      assert.is(res.ips.length, 2, JSON.stringify(res.ips));
      assert.match(res.ips[0].address, /^10\.251\.0\.\d+\/32$/);
      assert.match(res.ips[1].address, /^fd00:251::[0-9a-f]*\/128$/);
      assert.is(res.ips[1].gateway, 'fe80::ecee:eeff:feee:eeee');
      assert.is(res.ips[1].interface, 1);
      if (version === '0.4.0') assert.equal(res.ips.map((i: { version: string }) => i.version), ['4', '6']);
      assert.equal(res.routes, [{ dst: '0.0.0.0/0', gw: '169.254.1.1' }, { dst: '::/0', gw: 'fe80::ecee:eeff:feee:eeee' }]);
      assert.equal((await h.add(pod, id, { config: h.config(version), args: args(name) })).json, res, 'a repeated ADD: the same result, both addresses kept');
      const [link] = h.ipJson(pod, 'addr', 'show', 'dev', 'eth0');
      assert.is(link.mtu, 1430, 'an IPv6 VXLAN pool: outer IPv6 costs 70 bytes');
      const v6addr = link.addr_info.find((a: { family: string; scope: string }) => a.family === 'inet6' && a.scope === 'global');
      assert.is(`${v6addr.local}/${v6addr.prefixlen}`, res.ips[1].address);
      assert.ok(!v6addr.tentative, 'no DAD wait');
      const routes6 = h.ipJson(pod, '-6', 'route', 'show');
      assert.ok(routes6.some((r) => r.dst === 'default' && r.gateway === 'fe80::ecee:eeff:feee:eeee' && r.dev === 'eth0'), JSON.stringify(routes6));
      // both gateways' MAC, permanent (the IPv6 one flagged router, as its advertisements are)
      assert.equal(h.ipJson(pod, '-4', 'neigh', 'show', 'dev', 'eth0').map((n) => [n.dst, n.lladdr, n.state]), [['169.254.1.1', 'ee:ee:ee:ee:ee:ee', ['PERMANENT']]]);
      const neigh6 = h.ipJson(pod, '-6', 'neigh', 'show', 'dev', 'eth0').filter((n) => n.dst === 'fe80::ecee:eeff:feee:eeee');
      assert.equal(neigh6.map((n) => [n.lladdr, n.state, 'router' in n]), [['ee:ee:ee:ee:ee:ee', ['PERMANENT'], true]], JSON.stringify(neigh6));
      const wep = (await h.workloadEndpoints()).find((w) => w.spec.containerID === id);
      assert.equal(wep.spec.ipNetworks, [res.ips[0].address, res.ips[1].address]);
      const handle = await h.kv.get(`/calico/ipam/v2/handle/podway.${id}`);
      const counts = JSON.parse(handle!.value).block as Record<string, number>;
      assert.equal(Object.values(counts), [1, 1], `one handle, one address in each family's block: ${handle!.value}`);
      assert.ok(Object.keys(counts).some((b) => b.startsWith('fd00:251::') && b.endsWith('/122')));

      const chk = await h.call({ command: 'CHECK', containerId: id, netns: pod.path, ifname: 'eth0', args: args(name), config: h.config(version, { prevResult: res }) });
      assert.is(chk.exitCode, 0, chk.stdout);
      pod.ip('-6', 'route', 'del', 'default');
      const bad = await h.call({ command: 'CHECK', containerId: id, netns: pod.path, ifname: 'eth0', args: args(name), config: h.config(version, { prevResult: res }) });
      assert.is(bad.json?.code, 100, bad.stdout);
      assert.match(bad.json.msg, 'IPv6 route "default via fe80::ecee:eeff:feee:eeee dev eth0" is missing');

      const d = await h.call({ command: 'DEL', containerId: id, netns: pod.path, ifname: 'eth0', args: args(name), config: h.config(version) });
      assert.is(d.exitCode, 0, d.stdout);
      assert.is(await h.kv.get(`/calico/ipam/v2/handle/podway.${id}`), null);
    }
    const ipam = new Ipam(h.kv);
    assert.equal(await ipam.check(), []);
    assert.ok((await ipam.show()).every((p) => p.inUse === 0), 'both families released');
  });
});

test('assign_ipv4/assign_ipv6: "false" leaves a family out; "true" without an IPv6 pool fails; unset without one is IPv4 only', async () => {
  await withDualStack(async (h) => {
    const only4 = (await h.add(h.pod('o4'), cid('o4'), { args: args('o4'), extra: { ipam: { type: 'calico-ipam', assign_ipv6: 'false' } } })).json;
    assert.equal(only4.ips.map((i: { address: string }) => i.address.includes(':')), [false]);
    const podTun = h.pod('o6');
    const o6 = cid('o6');
    const only6Opts = { args: args('o6'), extra: { interfaceType: 'tun', ipam: { type: 'calico-ipam', assign_ipv4: 'false', assign_ipv6: 'true' } } };
    const only6 = (await h.add(podTun, o6, only6Opts)).json;
    // a tun pod's route removed: a repeated ADD makes its device again on the same address
    podTun.ip('-6', 'route', 'del', 'default');
    assert.equal((await h.add(podTun, o6, only6Opts)).json.ips, only6.ips, 'a repeated ADD of a tun pod: the same address');
    assert.ok(h.ipJson(podTun, '-6', 'route', 'show').some((r) => r.dst === 'default' && r.dev === 'eth0'), 'its route made again');
    assert.equal(only6.ips.length, 1);
    // no hardware address: the all-zero one (podman fails a container on a result without mac)
    assert.equal(only6.interfaces.map((i: { name: string; mac: string; sandbox: string }) => [i.name, i.mac, i.sandbox]), [['eth0', '00:00:00:00:00:00', podTun.path]]);
    assert.is(only6.ips[0].interface, 0);
    assert.match(only6.ips[0].address, /^fd00:251::/);
    assert.is(only6.ips[0].gateway, undefined, 'tun: a device route');
    assert.ok(h.ipJson(podTun, '-6', 'route', 'show').some((r) => r.dst === 'default' && r.dev === 'eth0' && !r.gateway));
    assert.equal(h.ipJson(podTun, 'neigh', 'show', 'dev', 'eth0'), [], 'tun: no link layer, no neighbour entry');
    assert.equal(h.ipJson(podTun, '-4', 'addr', 'show', 'dev', 'eth0')[0]?.addr_info ?? [], [], 'no IPv4 address');
    const none = await h.call({ command: 'ADD', containerId: cid('n'), netns: h.pod('n').path, ifname: 'eth0', args: args('n'), extra: { ipam: { type: 'podway', assign_ipv4: 'false', assign_ipv6: 'false' } } });
    assert.is(none.json?.code, 7, none.stdout);
    assert.match(none.json.msg, 'ipam.assign_ipv4');
    const junk = await h.call({ command: 'ADD', containerId: cid('j'), netns: h.pod('j').path, ifname: 'eth0', args: args('j'), extra: { ipam: { type: 'podway', assign_ipv6: 'yes' } } });
    assert.match(junk.json?.msg ?? '', /ipam\.assign_ipv6: expected "true" or "false"/);
  });
  await withDualStack(async (h) => {
    const plain = (await h.add(h.pod('p'), cid('p'), { args: args('p') })).json;
    assert.is(plain.ips.length, 1, 'no IPv6 pool: IPv4 only, no error');
    const want6 = await h.call({ command: 'ADD', containerId: cid('w'), netns: h.pod('w').path, ifname: 'eth0', args: args('w'), extra: { ipam: { type: 'calico-ipam', assign_ipv6: 'true' } } });
    assert.is(want6.json?.code, 11, want6.stdout);
    assert.match(want6.json.msg, 'no enabled IPv6 pool');
    assert.equal(await new Ipam(h.kv).check(), [], 'the failed ADD gave its IPv4 address back');
  }, false);
});

test('ipam.ipv4_pools/ipv6_pools (names, CIDRs) as calico-ipam; unknown, disabled, wrong-family refused; allow_ip_forwarding; IPv6 off in the pod namespace; unimplemented Calico keys and a misspelt key named on stderr', async () => {
  await withDualStack(async (h) => {
    const b = `b-${h.tag}`;
    await applyResource(h.kv, { apiVersion: 'projectcalico.org/v3', kind: 'IPPool', metadata: { name: b }, spec: { cidr: '10.252.0.0/24', blockSize: 26 } });
    await applyResource(h.kv, { apiVersion: 'projectcalico.org/v3', kind: 'IPPool', metadata: { name: `off-${h.tag}` }, spec: { cidr: '10.253.0.0/24', disabled: true } });
    const sysctl = (pod: ReturnType<CniHarness['pod']>, key: string) => pod.exec('sysctl', ['-n', key]).trim();
    // a namespace with IPv6 off (Calico turns it on for an IPv6 address), the pool named, forwarding allowed
    const pod = h.pod('pl');
    pod.exec('sysctl', ['-q', '-w', 'net.ipv6.conf.all.disable_ipv6=1', 'net.ipv6.conf.default.disable_ipv6=1']);
    const r = await h.add(pod, cid('pl'), { args: args('pl'), extra: { ipam: { type: 'calico-ipam', ipv4_pools: [b], ipv6_pools: [V6_POOL] }, container_settings: { allow_ip_forwarding: true }, policy: { type: 'k8s' }, feature_control: { floating_ips: true }, mtuu: 1400 } });
    assert.match(r.json.ips[0].address, /^10\.252\.0\.\d+\/32$/, 'from the named pool only');
    assert.match(r.json.ips[1].address, /^fd00:251::/);
    assert.equal(['net.ipv6.conf.all.disable_ipv6', 'net.ipv6.conf.lo.disable_ipv6', 'net.ipv4.ip_forward', 'net.ipv6.conf.all.forwarding'].map((k) => sysctl(pod, k)), ['0', '0', '1', '1']);
    assert.match(r.stderr, /network "podway" config[^\n]*: policy\.type "k8s": not implemented/);
    assert.match(r.stderr, /feature_control\.floating_ips: not implemented/);
    // a misspelt key: named with the key meant, and the call goes on (mtu from the pools)
    assert.match(r.stderr, /network "podway" config[^\n]*: unknown key "mtuu" ignored \(did you mean mtu\?\)/);
    // a CIDR with host bits set, as Go's ParseCIDR reads it; forwarding not allowed: 0, as Calico writes it
    const pod2 = h.pod('pc');
    pod2.exec('sysctl', ['-q', '-w', 'net.ipv4.ip_forward=1']);
    const r2 = await h.add(pod2, cid('pc'), { args: args('pc'), extra: { ipam: { type: 'calico-ipam', ipv4_pools: ['10.252.0.9/24'], assign_ipv6: 'false' } } });
    assert.match(r2.json.ips[0].address, /^10\.252\.0\./);
    assert.is(r2.json.ips.length, 1);
    assert.is(sysctl(pod2, 'net.ipv4.ip_forward'), '0');
    assert.is(r2.stderr, '', 'no warning for a config podway honours');
    const xpod = h.pod('x'); // a refused ADD leaves nothing in it
    const refused = async (ipamExtra: Record<string, unknown>, code: number, msg: RegExp) => {
      const x = await h.call({ command: 'ADD', containerId: cid('x'), netns: xpod.path, ifname: 'eth0', args: args('x'), extra: { ipam: { type: 'calico-ipam', ...ipamExtra } } });
      assert.is(x.json?.code, code, x.stdout);
      assert.match(x.json.msg, msg);
    };
    await refused({ ipv4_pools: ['nope'] }, 7, /ipam\.ipv4_pools: error parsing pool "nope"/);
    await refused({ ipv4_pools: [`off-${h.tag}`] }, 7, /ipam\.ipv4_pools: the given pool \(10\.253\.0\.0\/24\) does not exist, or is not enabled/);
    await refused({ ipv4_pools: ['10.99.0.0/24'] }, 7, /the given pool \(10\.99\.0\.0\/24\) does not exist, or is not enabled/);
    await refused({ ipv6_pools: [b] }, 7, /ipam\.ipv6_pools: .*isn't an IPv6 pool/);
    await refused({ ipv4_pools: 'x' }, 7, /ipam\.ipv4_pools: expected a list/);
    const handles = await h.handles();
    assert.is(handles.length, 2, `only the two pods hold addresses: ${handles.join(', ')}`);
  });
});

test('podway run forwards IPv6 between veth, tap and tun pods the plugin made', async () => {
  await withDualStack(async (h) => {
    let podway: RunningPodway | null = null;
    let log: string[] = [];
    try {
      h.addUplink();
      podway = h.startPodway(['--ip6', 'none']);
      log = podway.log;
      await podway.ready();
      const { pods, ip6 } = await addPods(h, log, [['va', 'veth'], ['vb', 'veth'], ['ta', 'tap'], ['ua', 'tun']]);
      for (const [a, b] of [['va', 'vb'], ['vb', 'ta'], ['ta', 'ua'], ['ua', 'va']]) {
        const from = pods.find((p) => p.label === a)!;
        const out = sh('ip', ['netns', 'exec', from.ns.name, 'ping', '-6', '-n', '-c', '3', '-i', '0.2', '-w', '10', ip6[b]], { allowFail: true, timeoutMs: 15_000 });
        // with -w a late reply makes ping send a fourth request: the replies to 1..3 are what count
        assert.is(parsePing(out, 3).received, 3, `${a} -> ${b} (${ip6[b]}): ${out} | ${log.slice(-5).join(' | ')}`);
      }
      for (const p of pods) {
        const d = await h.call({ command: 'DEL', containerId: p.id, netns: p.ns.path, ifname: 'eth0', args: args(`pod-${p.label}`), extra: { interfaceType: p.type } });
        assert.is(d.exitCode, 0, d.stdout);
      }
      assert.equal(await new Ipam(h.kv).check(), []);
    } catch (e) {
      console.log(log.slice(-20).join('\n'));
      throw e;
    } finally {
      await podway?.stop();
    }
  }, true, 'Never');
});

test('with a node IPv6 address: the node and the veth, tap and tun pods the plugin made ping each other over IPv6; a DEL takes the veth pod\'s /128 off the node', async () => {
  await withDualStack(async (h) => {
    let podway: RunningPodway | null = null;
    let log: string[] = [];
    const ping6 = (ns: string, to: string): string => sh('ip', ['netns', 'exec', ns, 'ping', '-6', '-n', '-c', '3', '-i', '0.2', '-w', '10', to], { allowFail: true, timeoutMs: 15_000 });
    try {
      h.addUplink();
      h.node.ip('-6', 'addr', 'add', 'fd99::1/64', 'dev', 'eth0', 'nodad');
      podway = h.startPodway(['--ip6', 'fd99::1/64']);
      log = podway.log;
      await podway.ready();
      const { pods, ip6 } = await addPods(h, log, [['hv', 'veth'], ['ht', 'tap'], ['hu', 'tun']]);
      const route128 = () => h.ipJson(h.node, '-6', 'route', 'show', `${ip6.hv}/128`) as { dev: string }[];
      for (let i = 0; i < 100 && route128().length === 0; i++) await sleep(100);
      assert.is(route128().length, 1, `the node's /128 for the veth pod: ${JSON.stringify(h.ipJson(h.node, '-6', 'route', 'show'))}`);
      assert.match(route128()[0].dev, /^cali/);
      for (const p of pods) {
        const there = ping6(h.node.name, ip6[p.label]);
        assert.is(parsePing(there, 3).received, 3, `node -> ${p.label} (${ip6[p.label]}): ${there} | ${log.slice(-5).join(' | ')}`);
        const back = ping6(p.ns.name, 'fd99::1');
        assert.is(parsePing(back, 3).received, 3, `${p.label} -> node fd99::1: ${back} | ${log.slice(-5).join(' | ')}`);
      }
      for (const p of pods) {
        const d = await h.call({ command: 'DEL', containerId: p.id, netns: p.ns.path, ifname: 'eth0', args: args(`pod-${p.label}`), extra: { interfaceType: p.type } });
        assert.is(d.exitCode, 0, d.stdout);
      }
      for (let i = 0; i < 100 && route128().length > 0; i++) await sleep(100);
      assert.equal(route128(), [], 'the /128 went with the pod');
    } catch (e) {
      console.log(log.slice(-20).join('\n'));
      throw e;
    } finally {
      await podway?.stop();
    }
  }, true, 'Never');
});

test.run();
