/**
 * A MAC the runtime asks for the pod (podman user review, MED 1: `podman run --mac-address`, which
 * podman passes as CNI_ARGS MAC=, was ignored): the pod's interface (veth pod end, tap device) gets
 * it, so do the result and the WorkloadEndpoint; runtimeConfig.mac (the "mac" capability) too; a
 * bad one, a TUN pod's, or two that disagree are refused (code 4) with nothing made; and podway
 * forwards to and from such a pod, answering its ARP for the gateway, and over IPv6 (dual stack)
 * its neighbour solicitation for the gateway, each pod's entries for the other side right. Root and network namespaces
 * (harness.ts: the installed plugin, a real `podway run`).
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { CniHarness, RunningPodway, withHarness } from './harness';
import { applyResource } from '../../src/control/v3-store';
import { controlRequest } from '../../src/dataplane/control-server';
import { Ipam } from '../../src/control/ipam';
import { isRoot, sh } from '../helpers/netns';
import { pingArgs, parsePing } from '../../src/lab/lab';
import { until } from '../helpers/until';

if (!isRoot()) throw new Error('the CNI plugin tests need root (network namespaces)');

const MAC = '02:11:22:33:44:55';

function macOf(h: CniHarness, ns: Parameters<CniHarness['ipJson']>[0]): string {
  return h.ipJson(ns, 'link', 'show', 'dev', 'eth0')[0].address;
}

test('CNI_ARGS MAC and runtimeConfig.mac: the pod\'s eth0 (veth, tap), the result and the endpoint have it; the capability is declared; bad ones refused (4)', async () => {
  await withHarness(async (h) => {
    assert.is((h.conflist.plugins[0].capabilities as Record<string, boolean> | undefined)?.mac, true, 'cni install declares the "mac" capability');
    const v = h.pod('macveth');
    const vid = `macv${h.tag}`;
    // podman's CNI_ARGS for `podman run --mac-address 02:11:22:33:44:55 --network podway`
    const r = await h.add(v, vid, { args: `IgnoreUnknown=1;K8S_POD_NAME=macpod;MAC=${MAC.toUpperCase()}` });
    assert.is(macOf(h, v), MAC);
    assert.is(r.json.interfaces[1].name, 'eth0');
    assert.is(r.json.interfaces[1].mac, MAC);
    const [wep] = await h.workloadEndpoints();
    assert.is(wep.spec.mac, MAC);
    // the same ADD again: the interface is left as it is, the same answer
    const again = await h.add(v, vid, { args: `IgnoreUnknown=1;K8S_POD_NAME=macpod;MAC=${MAC}` });
    assert.equal(again.json, r.json);
    const check = await h.call({ command: 'CHECK', containerId: vid, netns: v.path, ifname: 'eth0', args: `IgnoreUnknown=1;K8S_POD_NAME=macpod;MAC=${MAC}`, extra: { prevResult: r.json } });
    assert.is(check.exitCode, 0, check.stdout + check.stderr);

    // a tap pod, from runtimeConfig.mac (what libcni fills in for the declared capability)
    const t = h.pod('mactap');
    const tid = `mact${h.tag}`;
    const tr = await h.add(t, tid, { extra: { interfaceType: 'tap', runtimeConfig: { mac: '02:aa:bb:cc:dd:ee' } } });
    assert.is(macOf(h, t), '02:aa:bb:cc:dd:ee');
    assert.is(tr.json.interfaces.find((i: any) => i.name === 'eth0').mac, '02:aa:bb:cc:dd:ee');

    // refused, nothing made
    const u = h.pod('macbad');
    const cases: [string, Record<string, unknown>, string][] = [
      [`MAC=zz:11:22:33:44:55`, {}, 'CNI_ARGS MAC=zz:11:22:33:44:55: not a MAC address'],
      [`MAC=02:11:22:33:44`, {}, 'CNI_ARGS MAC=02:11:22:33:44: not a MAC address'],
      [`MAC=00:00:00:00:00:00`, {}, 'CNI_ARGS MAC=00:00:00:00:00:00: the all-zero MAC'],
      [`MAC=01:00:5e:00:00:01`, {}, 'CNI_ARGS MAC=01:00:5e:00:00:01: a multicast MAC'],
      [`MAC=ff:ff:ff:ff:ff:ff`, {}, 'CNI_ARGS MAC=ff:ff:ff:ff:ff:ff: a multicast (broadcast) MAC'],
      [`MAC=ee:ee:ee:ee:ee:ee`, {}, "is the pod gateway's MAC"],
      [`MAC=${MAC}`, { runtimeConfig: { mac: '02:11:22:33:44:56' } }, `CNI_ARGS MAC ${MAC} and runtimeConfig.mac 02:11:22:33:44:56 ask for different MACs`],
      [`MAC=${MAC}`, { interfaceType: 'tun' }, 'a tun interface ("interfaceType": "tun" in the network config) has no link layer'],
      ['', { runtimeConfig: { mac: 7 } }, 'runtimeConfig.mac: expected a MAC address string'],
    ];
    for (const [args, extra, msg] of cases) {
      const b = await h.call({ command: 'ADD', containerId: `macbad${h.tag}`, netns: u.path, ifname: 'eth0', args, extra });
      assert.is(b.exitCode, 1, `${args} ${JSON.stringify(extra)}: ${b.stdout}${b.stderr}`);
      assert.is(b.json?.code, 4, b.stdout);
      assert.match(b.json.msg, msg);
      assert.equal(h.ipJson(u, 'link', 'show').map((l) => l.ifname), ['lo'], `nothing made: ${args}`);
    }
    assert.equal((await h.handles()).sort(), [`podway.${tid}`, `podway.${vid}`].sort());

    for (const [id, ns, extra, args] of [[vid, v, {}, 'K8S_POD_NAME=macpod'], [tid, t, { interfaceType: 'tap' }, '']] as const) {
      const d = await h.call({ command: 'DEL', containerId: id, netns: ns.path, ifname: 'eth0', args, extra });
      assert.is(d.exitCode, 0, d.stdout + d.stderr);
    }
    assert.equal(await h.handles(), []);
    assert.equal(await new Ipam(h.kv).check(), []);
  });
});

test('podway forwards to and from a pod with a set MAC, answering its ARP for the gateway', async () => {
  const h = new CniHarness();
  let podway: RunningPodway | null = null;
  try {
    await h.setup({ cidr: '10.248.0.0/24', blockSize: 26 });
    const uplink = h.addUplink();
    uplink.ip('addr', 'add', '10.99.0.254/24', 'dev', 'eth0');
    h.node.ip('route', 'add', 'default', 'via', '10.99.0.254');
    podway = h.startPodway();
    await podway.ready();
    const a = h.pod('maca');
    const b = h.pod('macb');
    const ra = await h.add(a, `maca${h.tag}`, { args: `IgnoreUnknown=1;MAC=${MAC}` });
    const rb = await h.add(b, `macb${h.tag}`, { args: 'IgnoreUnknown=1;MAC=02:11:22:33:44:66' });
    const ipA = (ra.json.ips[0].address as string).split('/')[0];
    const ipB = (rb.json.ips[0].address as string).split('/')[0];
    const attached = await until(async () => ((await controlRequest(h.control, { cmd: 'endpoints' })) as { state: string }[]).filter((e) => e.state === 'attached').length === 2, 15_000);
    assert.ok(attached, `podway attached both pods: ${podway.log.slice(-5).join(' | ')}`);
    // A's gateway entry dropped: A must ask ARP for 169.254.1.1, and podway answer to 02:11:22:33:44:55.
    sh('ip', ['-n', a.name, 'neigh', 'del', '169.254.1.1', 'dev', 'eth0']);
    const ab = sh('ip', ['netns', 'exec', a.name, 'ping', ...pingArgs(3, ['-W', '2'], { intervalS: 0.2 }), ipB], { allowFail: true, timeoutMs: 20_000 });
    assert.is(parsePing(ab, 3).received, 3, `A -> B: ${ab} | ${podway.log.slice(-5).join(' | ')}`);
    const gw = h.ipJson(a, 'neigh', 'show', '169.254.1.1', 'dev', 'eth0');
    assert.is(gw[0]?.lladdr, 'ee:ee:ee:ee:ee:ee', `podway answered A's ARP: ${JSON.stringify(gw)}`);
    const ba = sh('ip', ['netns', 'exec', b.name, 'ping', ...pingArgs(3, ['-W', '2'], { intervalS: 0.2 }), ipA], { allowFail: true, timeoutMs: 20_000 });
    assert.is(parsePing(ba, 3).received, 3, `B -> A: ${ba} | ${podway.log.slice(-5).join(' | ')}`);
    assert.is(macOf(h, a), MAC);
    for (const [id, ns] of [[`maca${h.tag}`, a], [`macb${h.tag}`, b]] as const) assert.is((await h.call({ command: 'DEL', containerId: id, netns: ns.path, ifname: 'eth0' })).exitCode, 0);
  } finally {
    await podway?.stop();
    await h.cleanup();
  }
});

test('dual stack with set MACs (CNI_ARGS MAC, runtimeConfig.mac): podway answers each pod\'s IPv6 neighbour solicitation for the gateway and forwards to and from it; both sides\' neighbour entries right', async () => {
  const h = new CniHarness();
  let podway: RunningPodway | null = null;
  const macB = '02:11:22:33:44:77';
  const gw6 = 'fe80::ecee:eeff:feee:eeee';
  try {
    await h.setup({ cidr: '10.248.0.0/24', blockSize: 26 });
    await applyResource(h.kv, { apiVersion: 'projectcalico.org/v3', kind: 'IPPool', metadata: { name: `pool6-${h.tag}` }, spec: { cidr: 'fd00:248::/120', vxlanMode: 'Never' } });
    h.addUplink();
    podway = h.startPodway(['--ip6', 'none']);
    await podway.ready();
    const a = h.pod('mac6a');
    const b = h.pod('mac6b');
    const ra = await h.add(a, `mac6a${h.tag}`, { args: `IgnoreUnknown=1;MAC=${MAC}` });
    const rb = await h.add(b, `mac6b${h.tag}`, { extra: { runtimeConfig: { mac: macB } } });
    for (const [r, ns, mac] of [[ra, a, MAC], [rb, b, macB]] as const) {
      assert.is(r.exitCode, 0, r.stdout + r.stderr);
      assert.is(r.json.ips.length, 2, `dual stack: ${r.stdout}`);
      assert.is(macOf(h, ns), mac);
    }
    const ip6A = (ra.json.ips[1].address as string).split('/')[0];
    const ip6B = (rb.json.ips[1].address as string).split('/')[0];
    assert.match(ip6A, /:/);
    const attached = await until(async () => ((await controlRequest(h.control, { cmd: 'endpoints' })) as { state: string }[]).filter((e) => e.state === 'attached').length === 2, 15_000);
    assert.ok(attached, `podway attached both pods: ${podway.log.slice(-5).join(' | ')}`);
    // No entry for the gateway on either side: each pod must solicit it (NS from its set MAC) and podway answer.
    for (const ns of [a, b]) sh('ip', ['-n', ns.name, '-6', 'neigh', 'flush', 'dev', 'eth0']);
    const ping6 = (from: typeof a, to: string) => sh('ip', ['netns', 'exec', from.name, 'ping', '-6', ...pingArgs(3, ['-W', '2'], { intervalS: 0.2 }), to], { allowFail: true, timeoutMs: 20_000 });
    const ab = ping6(a, ip6B);
    assert.is(parsePing(ab, 3).received, 3, `A -> B over IPv6: ${ab} | ${podway.log.slice(-5).join(' | ')}`);
    const ba = ping6(b, ip6A);
    assert.is(parsePing(ba, 3).received, 3, `B -> A over IPv6: ${ba} | ${podway.log.slice(-5).join(' | ')}`);
    for (const ns of [a, b]) {
      const gw = h.ipJson(ns, '-6', 'neigh', 'show', gw6, 'dev', 'eth0');
      assert.is(gw[0]?.lladdr, 'ee:ee:ee:ee:ee:ee', `podway answered ${ns.name}'s NS for the gateway: ${JSON.stringify(gw)}`);
      assert.not.ok(['FAILED', 'INCOMPLETE'].some((st) => (gw[0]?.state ?? []).includes(st)), JSON.stringify(gw));
      // No entry for the other pod's address: it is off-link, reached through the gateway only.
      assert.equal(h.ipJson(ns, '-6', 'neigh', 'show', ns === a ? ip6B : ip6A), []);
    }
    // The pods' own MACs stayed as asked (replies reached each only because podway addressed it so).
    assert.is(macOf(h, a), MAC);
    assert.is(macOf(h, b), macB);
    for (const [id, ns] of [[`mac6a${h.tag}`, a], [`mac6b${h.tag}`, b]] as const) assert.is((await h.call({ command: 'DEL', containerId: id, netns: ns.path, ifname: 'eth0' })).exitCode, 0);
    assert.equal(await new Ipam(h.kv).check(), []);
  } finally {
    await podway?.stop();
    await h.cleanup();
  }
});

test.run();
