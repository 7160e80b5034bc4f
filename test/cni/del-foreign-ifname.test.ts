/**
 * DEL takes down CNI_IFNAME in CNI_NETNS only when it is provably this container's (the proof a
 * repeated ADD asks for: foreign-ifname.test.ts), and that proof counts a veth's peer namespace
 * (review: hostile, session 23). A DEL naming another pod's namespace (a wrong or reused CNI_NETNS,
 * a stale container ID) leaves the interface there, says so on stderr, releases only its own
 * container's address and endpoint, and exits 0 (CNI: DEL is idempotent). A host veth of the right
 * name whose peer has the right index in another namespace is not the container's either, for ADD
 * and DEL. Root and network namespaces (harness.ts).
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { CniHarness, withHarness } from './harness';
import { Ipam } from '../../src/control/ipam';
import { isRoot, Netns } from '../helpers/netns';

if (!isRoot()) throw new Error('the CNI plugin tests need root (network namespaces)');

/** A namespace's eth0 as the kernel has it (index, MAC, addresses), or null. */
function eth0(h: CniHarness, ns: Netns): { ifindex: number; mac: string; addrs: string[] } | null {
  const l = h.ipJson(ns, 'addr', 'show').find((x) => x.ifname === 'eth0');
  return l ? { ifindex: l.ifindex, mac: l.address, addrs: l.addr_info.map((a: any) => `${a.local}/${a.prefixlen}`) } : null;
}

const wepOf = async (h: CniHarness, id: string): Promise<any[]> => (await h.workloadEndpoints()).filter((w) => w.spec.containerID === id);

test('DEL naming another pod\'s namespace (veth and tap), or of a container never added: that pod\'s interface left, exit 0 with a stderr line; only its own address and endpoint released', async () => {
  await withHarness(async (h) => {
    for (const interfaceType of ['veth', 'tap']) {
      const extra = { interfaceType };
      const qa = h.pod(`da${interfaceType}`);
      const qb = h.pod(`db${interfaceType}`);
      const a = `dela${interfaceType}${h.tag}`;
      const b = `delb${interfaceType}${h.tag}`;
      await h.add(qa, a, { extra });
      await h.add(qb, b, { extra });
      const before = eth0(h, qa);
      assert.ok(before);

      // b's DEL, with a's namespace (a wrong or reused CNI_NETNS)
      const wrong = await h.call({ command: 'DEL', containerId: b, netns: qa.path, ifname: 'eth0', extra });
      assert.is(wrong.exitCode, 0, wrong.stdout + wrong.stderr);
      assert.match(wrong.stderr, `DEL ${b}: CNI_IFNAME eth0 in CNI_NETNS ${qa.path} is not this container's`);
      assert.match(wrong.stderr, 'left as it is');
      assert.equal(eth0(h, qa), before, 'a\'s interface untouched');
      assert.ok((await h.handles()).includes(`podway.${a}`), 'a\'s address still held');
      assert.is((await wepOf(h, a)).length, 1, 'a\'s endpoint kept');
      assert.not.ok((await h.handles()).includes(`podway.${b}`), 'b\'s address released');
      assert.equal(await wepOf(h, b), [], 'b\'s endpoint deleted');
      if (interfaceType === 'veth') assert.is(h.caliLinks().length, 1, 'b\'s own host veth went with its endpoint, a\'s stays');
      assert.is(eth0(h, qb), null, 'b\'s own interface, in its own namespace, went with its address');

      // A DEL of a container ID never added (stale), naming a's namespace.
      const stale = await h.call({ command: 'DEL', containerId: `stale${interfaceType}${h.tag}`, netns: qa.path, ifname: 'eth0', extra });
      assert.is(stale.exitCode, 0, stale.stdout + stale.stderr);
      assert.match(stale.stderr, 'left as it is');
      assert.equal(eth0(h, qa), before, 'a\'s interface untouched');

      // a's own DEL still removes it.
      const own = await h.call({ command: 'DEL', containerId: a, netns: qa.path, ifname: 'eth0', extra });
      assert.is(own.exitCode, 0, own.stdout + own.stderr);
      assert.not.match(own.stderr, 'left as it is', own.stderr);
      assert.is(eth0(h, qa), null, 'a\'s interface removed by a\'s DEL');
      assert.equal(h.caliLinks(), []);
      assert.equal(await h.handles(), []);
      assert.equal(await h.workloadEndpoints(), []);
    }
    assert.equal(await new Ipam(h.kv).check(), []);
  });
});

test('a host veth whose peer has the pod\'s index in another namespace is not the container\'s: repeated ADD refused (4), DEL leaves the interface', async () => {
  await withHarness(async (h) => {
    const qb = h.pod('vb');
    const qx = h.pod('vx');
    const qy = h.pod('vy');
    const b = `peerb${h.tag}`;
    await h.add(qb, b);
    const [cali] = h.caliLinks();
    const host = h.ipJson(h.node, 'link', 'show', 'dev', cali)[0];
    const podEnd = eth0(h, qb)!;
    assert.is(host.link_index, podEnd.ifindex);
    // In qx, an eth0 with b's pod-end index whose peer, in qy, has b's host-veth index: both
    // indexes match b's pair, only the peer's namespace tells them apart.
    qx.ip('link', 'add', 'eth0', 'index', String(podEnd.ifindex), 'type', 'veth', 'peer', 'name', 'other0', 'index', String(host.ifindex), 'netns', qy.name);
    qx.ip('addr', 'add', '192.0.2.9/32', 'dev', 'eth0');
    const x = eth0(h, qx)!;
    assert.is(x.ifindex, podEnd.ifindex);
    assert.is(h.ipJson(qx, 'link', 'show', 'dev', 'eth0')[0].link_index, host.ifindex);

    // A repeated ADD of b into qx (b's wiring there "broken"): refused, nothing changed.
    const again = await h.call({ command: 'ADD', containerId: b, netns: qx.path, ifname: 'eth0' });
    assert.is(again.json?.code, 4, again.stdout + again.stderr);
    assert.match(again.json.msg, `CNI_IFNAME eth0 in CNI_NETNS ${qx.path} is not this container's interface`);
    assert.match(again.json.msg, 'in another namespace');
    assert.equal(eth0(h, qx), x);
    assert.equal(eth0(h, qb), podEnd);

    // b's DEL naming qx: qx's eth0 stays; b's own veth goes with its endpoint.
    const del = await h.call({ command: 'DEL', containerId: b, netns: qx.path, ifname: 'eth0' });
    assert.is(del.exitCode, 0, del.stdout + del.stderr);
    assert.match(del.stderr, 'in another namespace');
    assert.equal(eth0(h, qx), x, 'qx\'s eth0 untouched');
    assert.equal(h.caliLinks(), []);
    assert.equal(await h.handles(), []);
    assert.equal(await h.workloadEndpoints(), []);
    assert.equal(await new Ipam(h.kv).check(), []);
  });
});

test.run();
