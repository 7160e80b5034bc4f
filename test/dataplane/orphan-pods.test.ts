// dataplane/orphan-pods.ts: reading `ip -j` output for the pod veths' peers' addresses, and the
// line said for each orphan (the e2e test is cni/orphan-etcd).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import * as path from 'node:path';
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { addressKey, hostRouteDevices, isPeerIn, listNamespaces, namespaceKey, orphanPodLine, peerAddressesIn, podDevicesIn, podVethPeers, readNamespaceAddrs } from '../../src/dataplane/orphan-pods';
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { until } from '../helpers/until';
import { sh, withNetns } from '../helpers/netns';
import { Spawner } from '../../src/dataplane/spawner';

test('addressKey: IPv6 as iproute2 prints it, IPv4 as is', () => {
  assert.is(addressKey('10.244.75.65'), '10.244.75.65');
  assert.is(addressKey('fd00:10:244:0:0:0:0:41'), 'fd00:10:244::41');
  assert.is(addressKey('FD00:0010:0244::0041'), 'fd00:10:244::41');
  assert.is(addressKey('fd00:0:0:1:0:0:0:1'), 'fd00:0:0:1::1', 'the longest zero run');
  assert.is(addressKey('fd00:1:0:2:3:4:5:6'), 'fd00:1:0:2:3:4:5:6', 'one zero group is not shortened');
  assert.is(addressKey('::1'), '::1');
});

test('podVethPeers: only veths with the pod host MAC, with their peer ifindex and nsid', () => {
  const links = JSON.stringify([
    { ifindex: 7, link_index: 2, ifname: 'cali1', address: 'ee:ee:ee:ee:ee:ee', link_netnsid: 3 },
    { ifindex: 8, link_index: 9, ifname: 'veth0', address: '62:06:b3:e5:d9:cb', link_netnsid: 0 },
    { ifindex: 10, link_index: 11, ifname: 'cali2', address: 'ee:ee:ee:ee:ee:ee' },
  ]);
  assert.equal(podVethPeers(links), [{ ifname: 'cali1', ifindex: 7, peerIndex: 2, nsid: 3 }, { ifname: 'cali2', ifindex: 10, peerIndex: 11, nsid: null }]);
  assert.equal(podVethPeers(''), []);
});

test('peerAddressesIn: the global addresses of the interface of that ifindex', () => {
  const addrs = JSON.stringify([
    { ifindex: 1, ifname: 'lo', addr_info: [{ family: 'inet', local: '127.0.0.1', scope: 'host' }] },
    { ifindex: 2, ifname: 'eth0', addr_info: [
      { family: 'inet', local: '10.244.75.65', prefixlen: 32, scope: 'global' },
      { family: 'inet6', local: 'fd00:10:244::41', prefixlen: 128, scope: 'global' },
      { family: 'inet6', local: 'fe80::1', prefixlen: 64, scope: 'link' },
    ] },
  ]);
  assert.equal(peerAddressesIn(addrs, 2), ['10.244.75.65', 'fd00:10:244::41']);
  assert.equal(peerAddressesIn(addrs, 5), [], 'no such interface');
});

test('isPeerIn: a veth of that ifindex whose peer, in another namespace, is the host veth', () => {
  const addrs = JSON.stringify([
    { ifindex: 1, ifname: 'lo' },
    { ifindex: 2, ifname: 'eth0', link_index: 7, link_netnsid: 0 },
    { ifindex: 3, ifname: 'eth1', link_index: 9 },
  ]);
  assert.ok(isPeerIn(addrs, 2, 7));
  assert.not.ok(isPeerIn(addrs, 2, 8), 'its peer is another interface');
  assert.not.ok(isPeerIn(addrs, 3, 9), 'its peer is in this namespace');
});

test('podDevicesIn: tap/tun devices podway made for that node (alias podway:<node>), by their podway name, with their global addresses', () => {
  const addrs = JSON.stringify([
    { ifindex: 2, ifname: 'eth0', ifalias: 'podway:node2', altnames: ['tap0123456789a'], addr_info: [
      { family: 'inet', local: '10.244.75.70', scope: 'global' }, { family: 'inet6', local: 'FD00:10:244:0:0:0:0:46', scope: 'global' }, { family: 'inet6', local: 'fe80::1', scope: 'link' }] },
    { ifindex: 3, ifname: 'eth1', ifalias: 'podway:node1', altnames: ['tun0123456789b'], addr_info: [{ family: 'inet', local: '10.244.75.71', scope: 'global' }] },
    { ifindex: 4, ifname: 'eth2', ifalias: 'podway:node2', altnames: ['other'], addr_info: [{ family: 'inet', local: '10.244.75.72', scope: 'global' }] },
    { ifindex: 5, ifname: 'eth3', altnames: ['tun0123456789c'], addr_info: [{ family: 'inet', local: '10.244.75.73', scope: 'global' }] },
  ]);
  assert.equal(podDevicesIn(addrs, 'node2'), [{ ifname: 'tap0123456789a', address: '10.244.75.70' }, { ifname: 'tap0123456789a', address: 'fd00:10:244::46' }]);
  assert.equal(podDevicesIn(addrs, 'node3'), []);
});

test('orphanPodLine says how it was found; only a route found is said removed', () => {
  const o = { ifname: 'cali1', address: '10.244.75.65' };
  assert.match(orphanPodLine({ ...o, source: 'route' }), 'interface cali1 holds pod address 10.244.75.65 (a route an earlier run made) but no workload endpoint of this datastore names it');
  assert.match(orphanPodLine({ ...o, source: 'route' }), /its route here is removed$/);
  assert.match(orphanPodLine({ ...o, source: 'pod' }), "(on its pod's interface, in the pod's namespace)");
  assert.match(orphanPodLine({ ...o, source: 'deleted' }), '(its WorkloadEndpoint was deleted while the interface stayed)');
  assert.not.match(orphanPodLine({ ...o, source: 'deleted' }), 'route here is removed');
  assert.match(orphanPodLine(o), '(found on this node)');
});

test('hostRouteDevices: the devices of /32 and /128 routes only', () => {
  const v4 = JSON.stringify([{ dst: 'default', gateway: '10.99.0.254', dev: 'eth0' }, { dst: '10.244.0.5', dev: 'cali1', scope: 'link' }, { dst: '10.244.0.0/26', type: 'blackhole' }, { dst: '10.99.0.0/24', dev: 'eth0' }]);
  assert.equal(hostRouteDevices(v4), ['cali1']);
  assert.equal(hostRouteDevices(JSON.stringify([{ dst: 'fd00:10:244::5', dev: 'cali2' }, { dst: 'fe80::/64', dev: 'eth0' }])), ['cali2']);
  assert.equal(hostRouteDevices(''), []);
});

test('readPodPeerAddresses in a node namespace: every pod veth\'s peer address; with skipRouted (the CNI ADD\'s scan) only those without a host route', async () => {
  await withNetns(['opnode', 'opa', 'opb'], async ([node, a, b]) => {
    for (const [k, pod, ip] of [[1, a, '10.250.0.1'], [2, b, '10.250.0.2']] as const) {
      sh('ip', ['-n', node.name, 'link', 'add', `caliop${k}`, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', pod.name]);
      sh('ip', ['-n', node.name, 'link', 'set', `caliop${k}`, 'address', 'ee:ee:ee:ee:ee:ee', 'up']);
      sh('ip', ['-n', pod.name, 'addr', 'add', `${ip}/32`, 'dev', 'eth0']);
    }
    // pod a is served (podway run's host route to it); pod b's endpoint is gone (no route): the orphan
    sh('ip', ['-n', node.name, 'route', 'add', '10.250.0.1/32', 'dev', 'caliop1']);
    const mod = JSON.stringify(path.resolve(__dirname, '../../src/dataplane/orphan-pods'));
    const scan = (opts: string) => JSON.parse(node.exec(process.execPath, ['-e', `require(${mod}).readPodPeerAddresses(new Set(), ${opts}).then((r) => console.log(JSON.stringify(r)))`], { timeoutMs: 60_000 }).trim().split('\n').pop()!) as { found: { ifname: string; address: string }[]; unread: string[] };
    const all = scan('{}');
    assert.equal(all.found.map((f) => `${f.ifname} ${f.address}`).sort(), ['caliop1 10.250.0.1', 'caliop2 10.250.0.2']);
    assert.equal(all.unread, []);
    const unrouted = scan('{ skipRouted: true }');
    assert.equal(unrouted.found.map((f) => `${f.ifname} ${f.address}`), ['caliop2 10.250.0.2'], 'the routed pod is not looked into');
    // podway run's scan (engine.ts findPodOrphans) starts its commands through its spawner's
    // helper (the forwarding thread forks nothing): the same finds, every command the helper's
    // child (its parent's PID is the helper's), none started by the scanning process itself
    const sp = JSON.stringify(path.resolve(__dirname, '../../src/dataplane/spawner'));
    const viaHelper = JSON.parse(node.exec(process.execPath, ['-e', `
      const { Spawner } = require(${sp}); const s = new Spawner(); const ran = [];
      const exec = (f, a, t) => { const r = s.exec(f, a, t); r.then(() => ran.push(f)); return r; };
      const seen = new Set(); const cp = require('node:child_process'); const orig = cp.ChildProcess.prototype.spawn;
      cp.ChildProcess.prototype.spawn = function (o) { seen.add(o.file); return orig.call(this, o); };
      require(${mod}).readPodPeerAddresses(new Set(), { exec }).then((r) => { console.log(JSON.stringify({ r, ran, forkedHere: [...seen] })); s.close(); });`], { timeoutMs: 60_000 }).trim().split('\n').pop()!) as { r: typeof all; ran: string[]; forkedHere: string[] };
    assert.equal(viaHelper.r, all, 'the same finds through the helper');
    assert.equal([...new Set(viaHelper.ran)].sort(), ['ip', 'sh'], `ip (links, netns ids) and the batch shell ran in the helper: ${viaHelper.ran.join(' ')}`);
    assert.equal(viaHelper.forkedHere.filter((f) => f !== process.execPath), [], 'only the helper (node) forked from the scanning process');
  });
});

test('readPodPeerAddresses: a pod veth whose namespace has no name is found through /proc (told by its namespace ID from another unnamed namespace holding the same index pair); a tap pod podway made for the node is found in its namespace (devicesOf)', async () => {
  await withNetns(['opnode', 'optap', 'opdecoy'], async ([node, tapPod, decoyNode]) => {
    const nodeName = `opnode-${process.pid}`;
    // a pod namespace no /run/netns name points at (a runtime that names none): a process in it;
    // and a decoy like it whose eth0 (index 2) peers with index 2 of another namespace, as the
    // pod's does with the node's caliopu (every new namespace numbers its links from 1)
    const holder = spawn('unshare', ['--net', '--', 'sleep', '300'], { stdio: 'ignore' });
    const decoy = spawn('unshare', ['--net', '--', 'sleep', '300'], { stdio: 'ignore' });
    try {
      const pid = holder.pid!;
      const own = sh('readlink', ['/proc/self/ns/net']).trim();
      for (const p of [pid, decoy.pid!]) assert.ok(await until(() => { try { return sh('readlink', [`/proc/${p}/ns/net`]).trim() !== own; } catch { return false; } }, 10_000), 'the unnamed namespace is there');
      sh('ip', ['-n', decoyNode.name, 'link', 'add', 'caliopu', 'type', 'veth', 'peer', 'name', 'eth0', 'netns', String(decoy.pid!)]);
      sh('ip', ['-n', node.name, 'link', 'add', 'caliopu', 'type', 'veth', 'peer', 'name', 'eth0', 'netns', String(pid)]);
      const index = (ns: string, dev: string) => (JSON.parse(sh('nsenter', [`--net=${ns}`, 'ip', '-j', 'link', 'show', 'dev', dev])) as { ifindex: number; link_index?: number }[])[0]!;
      const [podEth, decoyEth] = [index(`/proc/${pid}/ns/net`, 'eth0'), index(`/proc/${decoy.pid!}/ns/net`, 'eth0')];
      assert.equal([decoyEth.ifindex, decoyEth.link_index], [podEth.ifindex, podEth.link_index], 'the decoy holds the same index pair');
      sh('ip', ['-n', node.name, 'link', 'set', 'caliopu', 'address', 'ee:ee:ee:ee:ee:ee', 'up']);
      sh('nsenter', [`--net=/proc/${pid}/ns/net`, 'ip', 'addr', 'add', '10.250.0.3/32', 'dev', 'eth0']);
      // a tap pod podway's CNI made for this node, and one for another node
      const alt = (k: string) => `tap${randomBytes(6).toString('hex').slice(0, 10)}${k}`;
      const [mine, theirs] = [alt('a'), alt('b')];
      for (const [dev, name, owner, ip] of [['eth0', mine, nodeName, '10.250.0.4'], ['eth1', theirs, `other-${nodeName}`, '10.250.0.5']] as const) {
        sh('ip', ['-n', tapPod.name, 'tuntap', 'add', 'dev', dev, 'mode', 'tap']);
        sh('ip', ['-n', tapPod.name, 'link', 'property', 'add', 'dev', dev, 'altname', name]);
        sh('ip', ['-n', tapPod.name, 'link', 'set', 'dev', dev, 'alias', `podway:${owner}`]);
        sh('ip', ['-n', tapPod.name, 'addr', 'add', `${ip}/32`, 'dev', dev]);
      }
      const mod = JSON.stringify(path.resolve(__dirname, '../../src/dataplane/orphan-pods'));
      const scan = (opts: string) => JSON.parse(node.exec(process.execPath, ['-e', `require(${mod}).readPodPeerAddresses(new Set(), ${opts}).then((r) => console.log(JSON.stringify(r)))`], { timeoutMs: 60_000 }).trim().split('\n').pop()!) as { found: { ifname: string; address: string; netns?: string; netnsInode?: number }[]; unread: string[] };
      const veths = scan('{}');
      assert.equal(veths.found.map((f) => `${f.ifname} ${f.address}`), ['caliopu 10.250.0.3'], JSON.stringify(veths));
      assert.equal(veths.unread, []);
      const all = scan(`{ devicesOf: ${JSON.stringify(nodeName)} }`);
      const tap = all.found.filter((f) => f.ifname.startsWith('tap'));
      assert.equal(tap.map((f) => `${f.ifname} ${f.address} ${f.netns}`), [`${mine} 10.250.0.4 /run/netns/${tapPod.name}`], JSON.stringify(all));
      assert.is(tap[0]!.netnsInode, Number(sh('stat', ['-L', '-c', '%i', `/run/netns/${tapPod.name}`]).trim()));
    } finally {
      holder.kill('SIGKILL');
      decoy.kill('SIGKILL');
    }
  });
});

test('readNamespaceAddrs: several namespaces read by one shell; the alias\'d tap found in the one holding it; a namespace gone mid-scan left out, not failing the rest', async () => {
  await withNetns(['opb1', 'opb2', 'opb3', 'opbgone'], async ([n1, n2, n3, gone]) => {
    const nodeName = `opb-${process.pid}`;
    const alt = `tap${randomBytes(6).toString('hex').slice(0, 10)}c`;
    sh('ip', ['-n', n2!.name, 'tuntap', 'add', 'dev', 'eth0', 'mode', 'tap']);
    sh('ip', ['-n', n2!.name, 'link', 'property', 'add', 'dev', 'eth0', 'altname', alt]);
    sh('ip', ['-n', n2!.name, 'link', 'set', 'dev', 'eth0', 'alias', `podway:${nodeName}`]);
    sh('ip', ['-n', n2!.name, 'addr', 'add', '10.250.1.4/32', 'dev', 'eth0']);
    const mine = new Set([n1, n2, n3, gone].map((n) => `n:${n!.name}`));
    const keys = listNamespaces().map(namespaceKey).filter((k) => mine.has(k));
    assert.equal(keys.length, 4, 'the four listed');
    // one vanishes between the listing and the read, and a /proc namespace whose process is gone
    sh('ip', ['netns', 'del', gone!.name]);
    const read = await readNamespaceAddrs([...keys, 'p:/proc/999999999/ns/net']);
    assert.equal([...read.keys()].sort(), [n1, n2, n3].map((n) => `n:${n!.name}`).sort(), 'the three still there, not the gone one');
    for (const n of [n1, n3]) assert.equal(podDevicesIn(read.get(`n:${n!.name}`)!, nodeName), [], `${n!.name} holds none`);
    assert.equal(podDevicesIn(read.get(`n:${n2!.name}`)!, nodeName), [{ ifname: alt, address: '10.250.1.4' }]);
    // the same facts as that namespace's own `ip -j -d addr show` (the path taken before)
    assert.equal(JSON.parse(read.get(`n:${n2!.name}`)!), JSON.parse(sh('ip', ['-j', '-n', n2!.name, '-d', 'addr', 'show'])));
    assert.equal((await readNamespaceAddrs([`n:${gone!.name}`])).size, 0, 'only a gone one: none, no error');
  });
});

for (const through of ['here', 'the spawner helper'] as const) test(`readNamespaceAddrs: an \`ip\` that hangs (holding the stdout) is killed with its shell at the timeout (started ${through}); the scan answers (none read) instead of hanging`, async () => {
  // The hung `ip`: a script first in PATH that sleeps in its place (a real hang cannot be had on
  // demand). Before the fix only the shell was killed and the call waited for the sleep's end.
  const dir = mkdtempSync(path.join(tmpdir(), `podway-revfixrun-${process.pid}-`));
  const oldPath = process.env.PATH;
  const pidFile = path.join(dir, 'ip.pid');
  let guard: NodeJS.Timeout | undefined;
  let helper: Spawner | null = null;
  try {
    writeFileSync(path.join(dir, 'ip'), `#!/bin/sh\necho $$ > '${pidFile}'\nexec sleep 120\n`);
    chmodSync(path.join(dir, 'ip'), 0o755);
    process.env.PATH = `${dir}:${oldPath}`;
    // the helper forked now: its commands see this PATH (Spawner.exec kills the command's group at the timeout)
    helper = through === 'here' ? null : new Spawner();
    const h = helper;
    const read = await Promise.race([
      readNamespaceAddrs([`n:revfixrun-${process.pid}`], { timeoutMs: 1000, ...(h ? { exec: (f: string, a: string[], t: number) => h.exec(f, a, t) } : {}) }),
      new Promise<'guard'>((resolve) => { guard = setTimeout(() => resolve('guard'), 20_000); }),
    ]);
    process.env.PATH = oldPath;
    assert.ok(read !== 'guard', 'the scan answered (the 20 s guard did not fire)');
    assert.is((read as Map<string, string>).size, 0, 'nothing read from a hung ip');
    const pid = Number(readFileSync(pidFile, 'utf8'));
    assert.ok(pid > 0);
    const alive = () => {
      try {
        return existsSync(`/proc/${pid}`) && !/^\d+ \(.*\) Z/.test(readFileSync(`/proc/${pid}/stat`, 'utf8'));
      } catch {
        return false;
      }
    };
    assert.ok(await until(() => !alive(), 5000), 'the hung ip killed with its shell');
  } finally {
    clearTimeout(guard);
    helper?.close();
    process.env.PATH = oldPath;
    try {
      const pid = Number(readFileSync(pidFile, 'utf8'));
      if (pid > 0) process.kill(pid, 'SIGKILL');
    } catch {
      // not started, or already gone
    }
    rmSync(dir, { recursive: true, force: true });
  }
});

test.run();
