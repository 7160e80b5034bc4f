/**
 * Pod <-> node over IPv6 (root, network namespaces): the node's kernel gets the IPv6 half of what
 * the host programmer writes for IPv4 (a /128 and a permanent neighbour per veth pod address, the
 * IPv6 pool routed into podway0), so
 * - a node pings its own veth pod (its /128), its tap pod and a pod on another node (the pool
 *   route into podway0, podway forwards it, hop limit untouched as the node originated it);
 * - veth, tap and tun pods ping their own node's IPv6 address (the kernel's reply takes the /128
 *   or the pool route back);
 * - a pod pings another node's IPv6 address (out through the node's routing, tx6, counted
 *   `egress`; the reply comes back through that node's pool route and podway); without a route
 *   there the kernel refuses them: counted on tx6(raw) and logged;
 * - a pod removed from the datastore takes its /128 and neighbour with it, and a restart after a
 *   SIGKILL removes a /128 no endpoint wants any more (adopted, as IPv4's /32s are).
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { writeFileSync, renameSync } from 'node:fs';
import { Lab, POOL6_CIDR, GATEWAY6, run, pingArgs, parsePing } from '../../src/lab/lab';
import { controlRequest } from '../../src/dataplane/control-server';
import { guard, teardown, isRoot, routes, logTail, until, sleep, waitLog } from './e2e-kit';

const SPEC = [
  { name: 'node1', subnet: 'a' as const, pods: [{ name: 'web-1', type: 'veth' as const }, { name: 'tap-1', type: 'tap' as const }, { name: 'gone-1', type: 'veth' as const }] },
  { name: 'node2', subnet: 'a' as const, pods: [{ name: 'web-2', type: 'veth' as const }, { name: 'tun-2', type: 'tun' as const }] },
];

let lab: Lab | null = null;
let ok = false;

function ip6Of(pod: string): string {
  const ip = lab!.pod(pod).ip6;
  if (!ip) throw new Error(`${pod} has no IPv6 address`);
  return ip;
}

function node6(name: string): string {
  return lab!.node(name).ip6!;
}

/** `count` echo requests from a namespace (bounded by ping's own deadline). */
function pingFromNs(ns: string, to: string, count = 3) {
  const out = run('ip', ['netns', 'exec', ns, 'ping', ...pingArgs(count), to], { allowFail: true, timeoutMs: 5000 + count * 1500 });
  return { out, r: parsePing(out, count) };
}

/** Reachable within the time given (podway and the kernel routes come up asynchronously). */
async function reachable(ns: string, to: string, timeoutMs = 10_000): Promise<boolean> {
  return until(() => pingFromNs(ns, to, 1).r.received === 1, timeoutMs, 100);
}

function route6(ns: string, dst: string): { dst: string; dev: string; gateway?: string }[] {
  return (JSON.parse(run('ip', ['-j', '-n', ns, '-6', 'route', 'show', 'table', 'main', dst]) || '[]') as { dst: string; dev: string; gateway?: string }[]);
}

function neigh6(ns: string, dev: string): { dst: string; lladdr?: string; state?: string[] }[] {
  return JSON.parse(run('ip', ['-j', '-n', ns, '-6', 'neigh', 'show', 'dev', dev, 'nud', 'permanent']) || '[]');
}

async function reasons(node: string): Promise<Record<string, number>> {
  return ((await controlRequest(lab!.node(node).control, { cmd: 'counters' })) as { reasons: Record<string, number> }).reasons;
}

/** The resource file without the named pods' WorkloadEndpoints (written whole, by rename). */
function writeWithout(pods: string[]): void {
  const docs = lab!.resources(lab!.mode).split('\n---\n').filter((d) => !pods.some((p) => new RegExp(`^\\s*pod: ${p}$`, 'm').test(d)));
  writeFileSync(lab!.file + '.tmp', docs.join('\n---\n'));
  renameSync(lab!.file + '.tmp', lab!.file);
}

test.before(async () => {
  if (!isRoot()) throw new Error('IPv6 host-route end-to-end tests need root (network namespaces)');
  lab = guard(new Lab(SPEC, { dualStack: true }));
  lab.build();
  await lab.startPodway('node1', undefined, ['--workers', '1']);
  await lab.startPodway('node2', undefined, ['--workers', '1']);
  const n2block6 = lab.node('node2').block6!;
  assert.ok(await until(async () => (await routes(lab!.node('node1'))).some((r) => r.cidr === n2block6 && r.kind === 'vxlan'), 10_000), `node1 has no IPv6 VXLAN route to ${n2block6}`);
});

test.after(async () => {
  if (!lab) return;
  if (!ok) console.log(logTail(lab));
  await teardown(lab);
});

test('the node\'s kernel holds a /128 and a permanent neighbour per veth pod address, and the IPv6 pool into podway0', async () => {
  const n1 = lab!.node('node1');
  const web1 = lab!.pod('web-1');
  assert.ok(await until(() => route6(n1.ns, `${ip6Of('web-1')}/128`).some((r) => r.dev === web1.ifname), 10_000), `no /128 for web-1: ${run('ip', ['-n', n1.ns, '-6', 'route'])}`);
  assert.ok(await until(() => neigh6(n1.ns, web1.ifname).some((n) => n.dst === ip6Of('web-1') && n.lladdr === web1.mac), 10_000), `no permanent neighbour for web-1: ${run('ip', ['-n', n1.ns, '-6', 'neigh'])}`);
  for (const name of ['node1', 'node2']) {
    const ns = lab!.node(name).ns;
    assert.ok(await until(() => route6(ns, POOL6_CIDR).some((r) => r.dev === 'podway0' && r.gateway === undefined), 10_000), `${name}: no ${POOL6_CIDR} dev podway0: ${run('ip', ['-n', ns, '-6', 'route'])}`);
  }
  // tap/tun pods have no /128: the pool route carries them
  assert.equal(route6(n1.ns, `${ip6Of('tap-1')}/128`), [], 'no /128 for the tap pod');
});

test('a node pings its own veth and tap pods and a pod on another node over IPv6', async () => {
  for (const [n, pod] of [['node1', 'web-1'], ['node1', 'tap-1'], ['node2', 'tun-2'], ['node1', 'web-2'], ['node2', 'tap-1']] as const) {
    const ns = lab!.node(n).ns;
    assert.ok(await reachable(ns, ip6Of(pod)), `${n} -> ${pod} (${ip6Of(pod)}) reachable:\n${pingFromNs(ns, ip6Of(pod), 1).out}`);
    const p = pingFromNs(ns, ip6Of(pod), 3);
    assert.is(p.r.loss, 0, `${n} -> ${pod}:\n${p.out}`);
  }
});

test('veth, tap and tun pods ping their own node\'s IPv6 address', async () => {
  for (const [pod, n] of [['web-1', 'node1'], ['tap-1', 'node1'], ['tun-2', 'node2'], ['web-2', 'node2']] as const) {
    assert.ok(await reachable(lab!.pod(pod).ns, node6(n)), `${pod} -> its node ${node6(n)}:\n${pingFromNs(lab!.pod(pod).ns, node6(n), 1).out}`);
    const p = lab!.ping(pod, node6(n), 3);
    assert.is(p.loss, 0, `${pod} -> ${n}: loss`);
  }
});

test('a pod pings another node\'s IPv6 address: out through the node\'s routing (counted egress), the reply back through that node\'s podway', async () => {
  for (const [pod, n] of [['web-1', 'node2'], ['tap-1', 'node2'], ['tun-2', 'node1']] as const) {
    const from = lab!.pod(pod);
    const before = await reasons(from.node);
    assert.ok(await reachable(from.ns, node6(n)), `${pod} -> ${n} (${node6(n)}):\n${pingFromNs(from.ns, node6(n), 1).out}`);
    const p = lab!.ping(pod, node6(n), 3);
    assert.is(p.loss, 0, `${pod} -> ${n}: loss`);
    const after = await reasons(from.node);
    assert.ok((after.egress ?? 0) - (before.egress ?? 0) >= 4, `${pod}'s node counted the requests as egress: ${before.egress} -> ${after.egress}`);
  }
});

/** A counter of a namespace's kernel IPv6 statistics (/proc/net/snmp6, e.g. Ip6InAddrErrors). */
function snmp6(ns: string, field: string): number {
  const line = run('ip', ['netns', 'exec', ns, 'cat', '/proc/net/snmp6']).split('\n').find((l) => l.startsWith(`${field} `));
  if (!line) throw new Error(`no ${field} in ${ns}'s /proc/net/snmp6`);
  return Number(line.trim().split(/\s+/)[1]);
}

/** The frames node1's kernel routed (and dropped: IPv6 forwarding is off there) or found no route for. */
function kernelRouted6(ns: string): number {
  return snmp6(ns, 'Ip6InAddrErrors') + snmp6(ns, 'Ip6InNoRoutes');
}

async function podTransit6(node: string): Promise<number> {
  const c = (await controlRequest(lab!.node(node).control, { cmd: 'counters' })) as { nat6?: { podTransit: number } | null };
  return c.nat6?.podTransit ?? -1;
}

test('the IPv6 kernel transit drop: a veth pod\'s frames podway forwards never reach the node\'s IPv6 input (counted pod_transit); pod -> node and NDP still do', async () => {
  const n1 = lab!.node('node1');
  const web1 = lab!.pod('web-1');
  const nft = (args: string[]) => run('ip', ['netns', 'exec', n1.ns, 'nft', ...args]);
  const set = nft(['list', 'set', 'ip6', 'podway', 'pods']);
  assert.match(set, `"${web1.ifname}"`, `web-1's veth in the set: ${set}`);
  assert.not.match(set, lab!.pod('tap-1').ifname, 'a tap pod is not seen by the kernel: not in the set');
  // no IPv6 pool has natOutgoing here: the table holds the drop only, nothing that tracks IPv6
  assert.not.match(nft(['list', 'table', 'ip6', 'podway']), /masquerade|ct /);
  assert.ok(await reachable(web1.ns, ip6Of('web-2')), 'web-1 -> web-2 over IPv6');
  const before = await podTransit6('node1');
  const k0 = kernelRouted6(n1.ns);
  const p = lab!.ping('web-1', ip6Of('web-2'), 5);
  assert.is(p.received, 5, `web-1 -> web-2: ${JSON.stringify(p)}`);
  // (the nft counters in `podway counters` are up to NFT_COUNTERS_MAX_AGE_MS old: asked again until then)
  assert.ok(await until(async () => (await podTransit6('node1')) - before >= 5, 10_000), `pod_transit (table ip6 podway) counted the 5 forwarded echo requests: ${before} -> ${await podTransit6('node1')}`);
  assert.is(kernelRouted6(n1.ns) - k0, 0, 'node1\'s kernel never routed (and dropped) a forwarded IPv6 frame');
  // Without the rule the same frames reach the kernel's routing: what the figure above would show.
  nft(['flush', 'chain', 'ip6', 'podway', 'pod_ingress']);
  try {
    const k1 = kernelRouted6(n1.ns);
    assert.is(lab!.ping('web-1', ip6Of('web-2'), 5).received, 5);
    assert.ok(kernelRouted6(n1.ns) - k1 >= 5, `without the rule the kernel routed them: ${k1} -> ${kernelRouted6(n1.ns)}`);
  } finally {
    nft(['add', 'rule', 'ip6', 'podway', 'pod_ingress', 'iifname', '@pods', 'ip6', 'daddr', '!=', '{', 'fe80::/10,', 'ff00::/8', '}', 'fib', 'daddr', 'type', '!=', '{', 'local,', 'anycast', '}', 'counter', 'name', 'pod_transit', 'drop']);
  }
  // NDP: web-1 forgets its gateway and node1's kernel its neighbours on the veth; the pod asks
  // again (solicited-node multicast) and the node's own address still answers.
  run('ip', ['-n', web1.ns, '-6', 'neigh', 'flush', 'dev', web1.podIf]);
  run('ip', ['-n', n1.ns, '-6', 'neigh', 'flush', 'dev', web1.ifname, 'nud', 'all'], { allowFail: true });
  const k2 = kernelRouted6(n1.ns);
  assert.ok(await reachable(web1.ns, node6('node1')), `web-1 -> node1 (${node6('node1')}) after a neighbour flush:\n${pingFromNs(web1.ns, node6('node1'), 1).out}`);
  const q = lab!.ping('web-1', node6('node1'), 3);
  assert.is(q.loss, 0, 'web-1 -> node1: the node\'s own address reaches its kernel');
  assert.ok(JSON.parse(run('ip', ['-j', '-n', web1.ns, '-6', 'neigh', 'show', 'dev', web1.podIf])).some((n: { dst: string; lladdr?: string }) => n.dst === GATEWAY6 && n.lladdr !== undefined), `web-1 resolved its gateway again: ${run('ip', ['-n', web1.ns, '-6', 'neigh'])}`);
  // and the link-local gateway itself (NDP unicast, ping) is never dropped
  assert.ok(await until(() => pingFromNs(web1.ns, `${GATEWAY6}%${web1.podIf}`, 1).r.received === 1, 10_000, 200), `web-1 -> its gateway ${GATEWAY6}:\n${pingFromNs(web1.ns, `${GATEWAY6}%${web1.podIf}`, 1).out}`);
  assert.is(kernelRouted6(n1.ns) - k2, 0, 'nothing of it was routed by the kernel');
});

test('the node\'s kernel refusing them (no IPv6 route to the other node): counted on tx6(raw), said in the log', async () => {
  const n1 = lab!.node('node1');
  const mark = n1.log.length;
  run('ip', ['-n', n1.ns, '-6', 'route', 'del', 'fd99::/64', 'dev', 'eth0']);
  try {
    const p = lab!.ping('web-1', node6('node2'), 2);
    assert.is(p.received, 0, 'no route on node1: lost');
    const line = await waitLog(n1, /tx6\(raw\): the node's kernel refused \d+ packet\(s\) .*ENETUNREACH \(no IPv6 route/, mark, 10_000);
    assert.ok(line, `logged: ${n1.log.slice(mark).join(' | ')}`);
  } finally {
    run('ip', ['-n', n1.ns, '-6', 'route', 'replace', 'fd99::/64', 'dev', 'eth0']);
  }
  assert.ok(await reachable(lab!.pod('web-1').ns, node6('node2')), 'reachable again with the route back');
});

test('a pod removed from the datastore takes its /128 and IPv6 neighbour off the node; a restart after SIGKILL removes one left behind', async () => {
  const n1 = lab!.node('node1');
  const gone = lab!.pod('gone-1');
  assert.ok(await until(() => route6(n1.ns, `${gone.ip6}/128`).length === 1 && neigh6(n1.ns, gone.ifname).length === 1, 10_000), 'gone-1 programmed first');
  writeWithout(['gone-1']);
  assert.ok(await until(() => route6(n1.ns, `${gone.ip6}/128`).length === 0, 10_000), `gone-1's /128 removed: ${run('ip', ['-n', n1.ns, '-6', 'route'])}`);
  assert.equal(neigh6(n1.ns, gone.ifname), [], 'its permanent neighbour removed');
  assert.not.ok(/dev /.test(run('ip', ['-n', n1.ns, '-4', 'route', 'show', `${gone.ip}/32`])), 'its IPv4 /32 removed too');
  // web-1 is untouched and still reached
  assert.is(pingFromNs(n1.ns, ip6Of('web-1'), 2).r.loss, 0, 'web-1 still reached');

  // Back in the file: programmed again.
  lab!.setMode(lab!.mode);
  assert.ok(await until(() => route6(n1.ns, `${gone.ip6}/128`).length === 1, 10_000), 'gone-1 programmed again');
  // podway killed (no chance to clean up), the pod removed meanwhile, podway started again:
  // the /128 it left is adopted and removed; web-1's is kept.
  const pid = n1.proc!.pid!;
  process.kill(pid, 'SIGKILL');
  assert.ok(await until(() => n1.proc!.exitCode !== null || n1.proc!.signalCode !== null, 5000), 'podway on node1 ended');
  n1.proc = null;
  writeWithout(['gone-1']);
  await sleep(50);
  assert.is(route6(n1.ns, `${gone.ip6}/128`).length, 1, 'the killed run left the /128');
  const mark = n1.log.length;
  await lab!.startPodway('node1', undefined, ['--workers', '1']);
  assert.ok(await until(() => route6(n1.ns, `${gone.ip6}/128`).length === 0 && neigh6(n1.ns, gone.ifname).length === 0, 10_000), `the left /128 removed after the restart: ${run('ip', ['-n', n1.ns, '-6', 'route'])}`);
  // gone-1's veth is still there with its addresses, which no endpoint names any more (as a pod
  // made under another datastore): said at warn level, per address, and listed in status
  const warned = await waitLog(n1, new RegExp(`interface ${gone.ifname} holds pod address ${gone.ip6} \\(a route an earlier run made\\) but no workload endpoint of this datastore names it`), mark, 10_000);
  assert.ok(warned, `warned: ${n1.log.slice(mark).filter((l) => l.includes(gone.ifname)).join(' | ')}`);
  assert.match(warned!, /"level":"warn"/);
  const st = (await controlRequest(n1.control, { cmd: 'status' })) as { orphanPods?: { ifname: string; address: string }[] };
  assert.equal((st.orphanPods ?? []).filter((o) => o.ifname === gone.ifname).map((o) => o.address).sort(), [gone.ip, gone.ip6].sort(), JSON.stringify(st.orphanPods));
  assert.ok(await until(() => route6(n1.ns, `${ip6Of('web-1')}/128`).length === 1, 10_000), 'web-1\'s /128 kept');
  assert.ok(await reachable(n1.ns, ip6Of('web-1')), 'node1 -> web-1 after the restart');
  ok = true;
});

test.run();
