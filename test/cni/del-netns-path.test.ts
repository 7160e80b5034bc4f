/**
 * The veth proof (del-foreign-ifname.test.ts) for a CNI_NETNS outside /run/netns (Nomad's docker
 * driver: /var/run/docker/netns/ID; CRI-O's namespaces_dir) and when its namespace ID cannot be
 * read (review of the CNI DEL ownership change, MED 1 and 2): the namespace is found by its inode
 * (a process in it: lsns), and when it cannot be told at all (only a bind mount holds it, or lsns
 * fails) it is named for a moment in a private mount namespace and the kernel asked for its ID, the
 * two-way index check alone only when that cannot run. Before: ADD, then a repeated ADD repairing the pod
 * was refused (4) every time, DEL left the pod's veth; and a failing lsns made DEL fail before the
 * address was released. Root and network namespaces (harness.ts).
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawn, execFileSync, ChildProcess } from 'node:child_process';
import { chmodSync, mkdtempSync, readlinkSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { CniHarness, withHarness } from './harness';
import { Ipam } from '../../src/control/ipam';
import { isRoot } from '../helpers/netns';

if (!isRoot()) throw new Error('the CNI plugin tests need root (network namespaces)');

const sh = (cmd: string, args: string[]): string => execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], timeout: 15_000 });

/** A process (sleep) in a new network namespace; its PID once it is there. */
async function sleeperInNewNetns(): Promise<ChildProcess> {
  const child = spawn('unshare', ['--net', 'sleep', '300'], { stdio: 'ignore' });
  const own = readlinkSync('/proc/self/ns/net');
  for (let i = 0; i < 100; i++) {
    try {
      if (child.pid !== undefined && readlinkSync(`/proc/${child.pid}/ns/net`) !== own) return child;
    } catch {
      /* not started yet */
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  child.kill('SIGKILL');
  throw new Error('unshare --net sleep: not in a new namespace after 5 s');
}

async function stop(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const gone = new Promise((r) => child.once('exit', r));
  child.kill('SIGKILL');
  await Promise.race([gone, new Promise((r) => setTimeout(r, 5000))]);
}

/** eth0 in the namespace at `ns` (a path) as the kernel has it, or null. */
function eth0At(ns: string): { ifindex: number; mac: string; addrs: string[] } | null {
  const l = JSON.parse(sh('nsenter', [`--net=${ns}`, 'ip', '-j', 'addr', 'show']) || '[]').find((x: any) => x.ifname === 'eth0');
  return l ? { ifindex: l.ifindex, mac: l.address, addrs: l.addr_info.filter((a: any) => a.scope !== 'link').map((a: any) => `${a.local}/${a.prefixlen}`).sort() } : null;
}

/** ADD, a repeated ADD repairing the pod (an address deleted), DEL: all of it with CNI_NETNS `ns`. */
async function lifecycle(h: CniHarness, ns: string, id: string, delEnv?: Record<string, string>): Promise<void> {
  const first = await h.call({ command: 'ADD', containerId: id, netns: ns, ifname: 'eth0' });
  assert.is(first.exitCode, 0, first.stdout + first.stderr);
  const pod = eth0At(ns);
  assert.ok(pod, 'eth0 made in CNI_NETNS');
  assert.is(h.caliLinks().length, 1);

  // Unchanged: left alone, the same result.
  const same = await h.call({ command: 'ADD', containerId: id, netns: ns, ifname: 'eth0' });
  assert.is(same.exitCode, 0, same.stdout + same.stderr);
  assert.equal(same.json, first.json);

  // Its address deleted: the repeated ADD must prove eth0 is this container's and make it again.
  sh('nsenter', [`--net=${ns}`, 'ip', 'addr', 'flush', 'dev', 'eth0']);
  const repair = await h.call({ command: 'ADD', containerId: id, netns: ns, ifname: 'eth0' });
  assert.is(repair.exitCode, 0, repair.stdout + repair.stderr);
  assert.equal(repair.json.ips, first.json.ips, 'the same addresses');
  assert.ok(pod!.addrs.length > 0);
  assert.equal(eth0At(ns)!.addrs, pod!.addrs, 'the pod wired again');
  assert.is(h.caliLinks().length, 1);

  const del = await h.call({ command: 'DEL', containerId: id, netns: ns, ifname: 'eth0', env: delEnv });
  assert.is(del.exitCode, 0, del.stdout + del.stderr);
  assert.not.match(del.stderr, 'left as it is', del.stderr);
  assert.is(eth0At(ns), null, 'the pod end removed');
  assert.equal(h.caliLinks(), [], 'the host end removed');
  assert.equal(await h.handles(), [], 'the address released');
  assert.equal(await h.workloadEndpoints(), []);
  assert.equal(await new Ipam(h.kv).check(), []);
}

test('CNI_NETNS a bind mount outside /run/netns (a process in it; then only the mount): ADD, repeated ADD repairing, DEL releasing and removing both ends', async () => {
  const dir = mkdtempSync(path.join(tmpdir(), `podway-revfixcni-${process.pid}-`));
  const file = path.join(dir, 'netns');
  writeFileSync(file, '');
  let mounted = false;
  const sleeper = await sleeperInNewNetns();
  try {
    sh('mount', ['--bind', `/proc/${sleeper.pid}/ns/net`, file]);
    mounted = true;
    await withHarness(async (h) => {
      // A process in it: told by its inode (lsns).
      await lifecycle(h, file, `bindp${h.tag}`);
      // Only the bind mount holds it: cannot be told, the index check alone.
      await stop(sleeper);
      await lifecycle(h, file, `bindm${h.tag}`);
    });
  } finally {
    await stop(sleeper);
    if (mounted) sh('umount', [file]);
    rmSync(dir, { recursive: true, force: true });
  }
});

test('CNI_NETNS only a bind mount holds, whose eth0 has the indexes of this container\'s veth but is another pair\'s: told apart by the namespace (asked of the kernel by a private mount), left as it is', async () => {
  const dir = mkdtempSync(path.join(tmpdir(), `podway-cni26-${process.pid}-`));
  const file = path.join(dir, 'netns');
  writeFileSync(file, '');
  let mounted = false;
  const sleeper = await sleeperInNewNetns();
  try {
    sh('mount', ['--bind', `/proc/${sleeper.pid}/ns/net`, file]);
    mounted = true;
    await stop(sleeper); // no process in it: lsns cannot find it
    await withHarness(async (h) => {
      const real = h.pod('bindreal');
      const id = `bindx${h.tag}`;
      await h.add(real, id);
      const hostIndex: number = h.ipJson(h.node, 'link', 'show', h.caliLinks()[0])[0].ifindex;
      const podIndex: number = h.ipJson(real, 'link', 'show', 'eth0')[0].ifindex;
      // Another pair: eth0 in the bind-mounted namespace, index podIndex, its peer in a third
      // namespace at index hostIndex: every index the two-way check compares is the same.
      const other = h.addNs('bindother');
      other.ip('link', 'add', 'name', 'vother', 'index', String(hostIndex), 'type', 'veth', 'peer', 'name', 'eth0', 'netns', file, 'index', String(podIndex));
      assert.is(eth0At(file)!.ifindex, podIndex);
      const del = await h.call({ command: 'DEL', containerId: id, netns: file, ifname: 'eth0' });
      assert.is(del.exitCode, 0, del.stdout + del.stderr);
      assert.match(del.stderr, 'is in another namespace', del.stderr);
      assert.match(del.stderr, 'left as it is', del.stderr);
      assert.ok(eth0At(file), 'the other pair\'s eth0 is still there');
      // This container's own veth goes by its endpoint, its pod end with it.
      assert.equal(h.caliLinks(), []);
      assert.equal(h.ipJson(real, 'link', 'show').map((l) => l.ifname), ['lo']);
      assert.equal(await h.handles(), []);
      assert.equal(await h.workloadEndpoints(), []);
    });
  } finally {
    await stop(sleeper);
    if (mounted) sh('umount', [file]);
    rmSync(dir, { recursive: true, force: true });
  }
});

test('DEL with lsns failing (CNI_NETNS=/proc/PID/ns/net): the interface removed, the address and endpoint released', async () => {
  const dir = mkdtempSync(path.join(tmpdir(), `podway-revfixcni-${process.pid}-`));
  const fake = path.join(dir, 'lsns');
  writeFileSync(fake, '#!/bin/sh\necho "lsns: failing on purpose (test)" >&2\nexit 1\n');
  chmodSync(fake, 0o755);
  const sleeper = await sleeperInNewNetns();
  try {
    await withHarness(async (h) => {
      await lifecycle(h, `/proc/${sleeper.pid}/ns/net`, `lsnsf${h.tag}`, { PATH: dir });
    });
  } finally {
    await stop(sleeper);
    rmSync(dir, { recursive: true, force: true });
  }
});

test.run();
