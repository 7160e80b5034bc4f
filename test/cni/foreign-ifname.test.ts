/**
 * The plugin never takes down an interface that is not the container's own (review: hostile, HIGH
 * 1 and LOW 5): a repeated ADD of one container naming another CNI_NETNS than its first (where
 * another pod's eth0 is, or nothing), and a first ADD into a namespace that already has
 * CNI_IFNAME, are refused naming CNI_IFNAME and CNI_NETNS, with every pod's interface, address
 * and endpoint as they were; the refused first ADD leaves no lock file (container-lock.ts). Root
 * and network namespaces (harness.ts).
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { CniHarness, withHarness } from './harness';
import { existsSync } from 'node:fs';
import { Ipam } from '../../src/control/ipam';
import { containerLockFile } from '../../src/cni/container-lock';
import { isRoot } from '../helpers/netns';

if (!isRoot()) throw new Error('the CNI plugin tests need root (network namespaces)');

/** eth0 of a namespace: its MAC and addresses (null when it has none). */
function eth0(h: CniHarness, ns: Parameters<CniHarness['ipJson']>[0]): { mac: string; addrs: string[] } | null {
  const links = h.ipJson(ns, 'addr', 'show').filter((l) => l.ifname === 'eth0');
  if (links.length === 0) return null;
  return { mac: links[0].address, addrs: links[0].addr_info.filter((a: any) => a.family === 'inet').map((a: any) => `${a.local}/${a.prefixlen}`) };
}

test('a repeated ADD naming another namespace: refused (4) naming CNI_IFNAME and CNI_NETNS; both pods keep their interfaces', async () => {
  await withHarness(async (h) => {
    const qa = h.pod('qa');
    const qb = h.pod('qb');
    const qc = h.pod('qc');
    const a = `rha${h.tag}`;
    const b = `rhb${h.tag}`;
    const ra = await h.add(qa, a);
    const rb = await h.add(qb, b);
    const before = { qa: eth0(h, qa), qb: eth0(h, qb), cali: h.caliLinks().sort(), weps: await h.workloadEndpoints() };
    assert.equal(before.qa!.addrs, [ra.json.ips[0].address]);
    assert.equal(before.qb!.addrs, [rb.json.ips[0].address]);

    // b again, into a's namespace (its eth0 is a's).
    const again = await h.call({ command: 'ADD', containerId: b, netns: qa.path, ifname: 'eth0' });
    assert.is(again.exitCode, 1, again.stdout + again.stderr);
    assert.is(again.json?.code, 4, again.stdout);
    assert.match(again.json.msg, `CNI_IFNAME eth0 in CNI_NETNS ${qa.path} is not this container's interface`);
    // b again, into a namespace with no eth0: b's interface is in qb, its first ADD's.
    const elsewhere = await h.call({ command: 'ADD', containerId: b, netns: qc.path, ifname: 'eth0' });
    assert.is(elsewhere.json?.code, 4, elsewhere.stdout);
    assert.match(elsewhere.json.msg, `CNI_IFNAME eth0 in CNI_NETNS ${qc.path} does not exist, and this container's host veth`);

    assert.equal(eth0(h, qa), before.qa, 'a\'s eth0 untouched');
    assert.equal(eth0(h, qb), before.qb, 'b\'s eth0 untouched');
    assert.is(eth0(h, qc), null, 'nothing made in qc');
    assert.equal(h.caliLinks().sort(), before.cali);
    assert.equal(await h.workloadEndpoints(), before.weps, 'endpoints not rewritten');
    // b holds its first ADD's address and interface: its lock file stays for its DEL (review LOW 4)
    assert.ok(existsSync(containerLockFile(h.ipamLockFile, b)), 'the lock file of a container with an attachment is kept');

    // The same ADD of b into its own namespace still answers as before.
    const same = await h.add(qb, b);
    assert.equal(same.json, rb.json);

    for (const [id, ns] of [[a, qa], [b, qb]] as const) assert.is((await h.call({ command: 'DEL', containerId: id, netns: ns.path, ifname: 'eth0' })).exitCode, 0);
    assert.equal(await h.handles(), []);
    assert.equal(h.caliLinks(), []);
    assert.equal(await new Ipam(h.kv).check(), []);
  });
});

test('a first ADD into a namespace that already has CNI_IFNAME: refused (4) naming both, the interface there kept, nothing held or made (veth and tap)', async () => {
  await withHarness(async (h) => {
    for (const interfaceType of ['veth', 'tap']) {
      const ns = h.pod(`taken${interfaceType}`);
      ns.ip('link', 'add', 'eth0', 'type', 'veth', 'peer', 'name', 'other0'); // (no dummy module here)
      ns.ip('addr', 'add', '192.0.2.7/32', 'dev', 'eth0');
      const before = eth0(h, ns);
      const id = `taken${interfaceType}${h.tag}`;
      const r = await h.call({ command: 'ADD', containerId: id, netns: ns.path, ifname: 'eth0', extra: { interfaceType } });
      assert.is(r.exitCode, 1, r.stdout + r.stderr);
      assert.is(r.json?.code, 4, r.stdout);
      assert.match(r.json.msg, `CNI_IFNAME eth0 already exists in CNI_NETNS ${ns.path}`);
      assert.equal(eth0(h, ns), before, 'the interface there is left as it was');
      assert.equal(h.caliLinks(), []);
      assert.equal(await h.handles(), [], 'its address was released');
      assert.equal(await h.workloadEndpoints(), []);
      // it made nothing: its lock file is not left for a DEL that may never come (review LOW 4)
      assert.not.ok(existsSync(containerLockFile(h.ipamLockFile, id)), `no lock file left for ${id}`);
    }
    assert.equal(await new Ipam(h.kv).check(), []);
  });
});

test.run();
