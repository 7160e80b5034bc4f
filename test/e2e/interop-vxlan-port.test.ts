/**
 * Felix's vxlanPort and vxlanVNI honoured, against the Linux kernel's own Calico dataplane (root,
 * network namespaces): a cluster configured with FelixConfiguration default `vxlanPort: 8472,
 * vxlanVNI: 1` (as flannel-coexisting clusters do).
 *
 * node1 runs podway, reading the FelixConfiguration from its datastore (the lab's file); node2 runs no
 * podway: its `vxlan.calico` is the one Felix makes with those settings (`dstport 8472 id 1`,
 * src/lab/kernel.ts). Pods ping and talk TCP both ways across them; the kernel's VXLAN device
 * counts the traffic; podway's tunnel socket, its nft table and its status name port 8472 and
 * VNI 1. A VXLAN datagram with the old VNI (4096) to the new port is dropped, counted bad_vni. A
 * change of vxlanPort while podway runs is said (log, status) to take effect at the next start,
 * and the wire stays as it was; at the next start the new port is in force, and VXLAN still
 * arriving on the old port is dropped by the kernel, counted vxlan_old_port (the tunnel table's
 * counter, shown as that drop reason in `podway counters` and /metrics), never answered port unreachable.
 * Without the feature podway sends 4789/VNI 4096, which node2's kernel never takes: every ping fails.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import * as path from 'node:path';
import { execFileSync } from 'node:child_process';
import { configureKernelNode } from '../../src/lab/kernel';
import { Lab, run } from '../../src/lab/lab';
import { controlRequest } from '../../src/dataplane/control-server';
import { guard, teardown, isRoot, kindOf, tcpTransfer, logMessage, logTail, until, waitLog as waitRaw } from './e2e-kit';
import type { LabNode } from '../../src/lab/lab';
import { execBounded } from './tools';
import { parseMetrics, valueOf } from '../observe/prom-text';

const SPEC = [
  { name: 'node1', subnet: 'a' as const, pods: [{ name: 'port-1', type: 'veth' as const }, { name: 'port-tap', type: 'tap' as const }] },
  { name: 'node2', subnet: 'a' as const, pods: [{ name: 'port-2', type: 'veth' as const }] },
];
const PORT = 8472;
const VNI = 1;
const MB = 1 << 20;
const METRICS_PORT = 9091;

let lab: Lab | null = null;
let ok = false;

const waitLog = (n: LabNode, re: RegExp, from: number, ms: number) => waitRaw(n, { test: (l: string) => re.test(logMessage(l)) } as RegExp, from, ms);
/** FelixConfiguration default with `spec` (JSON is YAML) in the lab's resource file, which podway watches. */
const put = async (name: string, spec: Record<string, unknown>) => {
  lab!.extraResources = [`apiVersion: projectcalico.org/v3\nkind: FelixConfiguration\nmetadata:\n  name: ${name}\nspec: ${JSON.stringify(spec)}`];
  lab!.setMode('vxlan');
};
interface Status { felix?: { settings: { field: string; value: string; source: string }[]; vxlanPending?: { field: string; configured: number; inForce: number }[]; invalid: { resource: string; field: string }[] } }
const status = async (): Promise<Status> => (await controlRequest(lab!.node('node1').control, { cmd: 'status', starting: true }, 5000)) as Status;
const counters = async () => (await controlRequest(lab!.node('node1').control, { cmd: 'counters' })) as { reasons: Record<string, number>; ports: { port: string }[] };
const podwayText = (cmd: string) => execFileSync(process.execPath, [path.resolve(__dirname, '..', '..', '..', 'bin', 'podway.js'), cmd, '--control', lab!.node('node1').control], { encoding: 'utf8', timeout: 10_000 });
const podwayStatusText = () => podwayText('status');
/** node1's /metrics (after its restart with --metrics-port), fetched inside node1's namespace. */
const metricsText = async (): Promise<string> => {
  const r = await execBounded('ip', ['netns', 'exec', lab!.node('node1').ns, process.execPath, path.join(__dirname, 'http-get.js'), `http://127.0.0.1:${METRICS_PORT}/metrics`], 10_000);
  if (r.code !== 0) throw new Error(`http-get /metrics: exit ${r.code}: ${r.stderr}`);
  return (JSON.parse(r.stdout.trim()) as { body: string }).body;
};
/** node2's kernel vxlan.calico byte counters. */
const kernelVxlan = (): { rx: number; tx: number } => {
  const st = JSON.parse(run('ip', ['-s', '-j', '-n', lab!.node('node2').ns, 'link', 'show', 'vxlan.calico']))[0].stats64;
  return { rx: st.rx.bytes, tx: st.tx.bytes };
};
/** One VXLAN datagram (VNI `vni`, an inner frame to node1's VTEP MAC) from node2's namespace to node1's `port`. */
const sendVxlan = (vni: number, port: number, count: number) => run('ip', ['netns', 'exec', lab!.node('node2').ns, 'python3', '-c', String.raw`
import socket, struct, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
inner = bytes(6) + bytes.fromhex('66aabbccdd02') + b'\x08\x00' + bytes(28)
for _ in range(int(sys.argv[4])):
    s.sendto(struct.pack('!BxxxI', 0x08, int(sys.argv[2]) << 8) + inner, (sys.argv[1], int(sys.argv[3])))
`, lab!.node('node1').ip, String(vni), String(port), String(count)]);
/** The tunnel table's named counter's packets on node1. */
const nftCounter = (name: string): number => {
  const out = run('ip', ['netns', 'exec', lab!.node('node1').ns, 'nft', 'list', 'counter', 'inet', 'podway_tunnels', name], { allowFail: true });
  const m = /packets (\d+)/.exec(out);
  return m ? Number(m[1]) : -1;
};

test.before(async () => {
  if (!isRoot()) throw new Error('interop tests need root (network namespaces)');
  lab = guard(new Lab(SPEC));
  lab.build();
  await put('default', { vxlanPort: PORT, vxlanVNI: VNI });
  // node2 as Felix programs it with those settings (no podway there)
  configureKernelNode(lab, lab.node('node2'), 'vxlan', { port: PORT, vni: VNI });
  await lab.startPodway('node1', 20_000, ['--workers', '1']);
  const n2block = lab.node('node2').block;
  assert.ok(await until(async () => (await kindOf(lab!.node('node1'), n2block)) === 'vxlan', 10_000), `node1 has no vxlan route to ${n2block}`);
});

test.after(async () => {
  if (!lab) return;
  if (!ok) console.log(logTail(lab, 60));
  await teardown(lab);
});

test('podway runs on vxlanPort 8472 and vxlanVNI 1 from FelixConfiguration default: status, its socket and its tunnel table say so', async () => {
  const s = await status();
  const f = (field: string) => s.felix?.settings.find((x) => x.field === field);
  assert.equal(f('vxlanPort'), { field: 'vxlanPort', value: '8472', source: 'FelixConfiguration default' });
  assert.equal(f('vxlanVNI'), { field: 'vxlanVNI', value: '1', source: 'FelixConfiguration default' });
  assert.equal(s.felix?.vxlanPending, []);
  assert.match(podwayStatusText(), 'vxlanPort 8472 (FelixConfiguration default)');
  const c = await counters();
  assert.ok(c.ports.some((p) => p.port.endsWith(`:${PORT})`) && p.port.startsWith('vxlan(')), `a VXLAN socket on ${PORT}: ${c.ports.map((p) => p.port).join(', ')}`);
  const table = run('ip', ['netns', 'exec', lab!.node('node1').ns, 'nft', 'list', 'table', 'inet', 'podway_tunnels']);
  assert.match(table, `udp dport ${PORT} counter name "vxlan" drop`);
  assert.not.match(table, 'udp dport 4789');
});

for (const [a, b] of [['port-1', 'port-2'], ['port-2', 'port-1'], ['port-tap', 'port-2'], ['port-2', 'port-tap']]) {
  test(`ping ${a} -> ${b} across podway and the kernel's vxlan.calico (dstport 8472 id 1): 0% loss, at the pod MTU too`, () => {
    const r = lab!.ping(a, lab!.pod(b).ip, 4, 56, ['-W', '3']);
    assert.is(r.loss, 0, `${a} -> ${b}: ${JSON.stringify(r)}`);
    const big = lab!.ping(a, lab!.pod(b).ip, 2, 1422, ['-M', 'do', '-W', '3']);
    assert.is(big.loss, 0, `${a} -> ${b} at 1450 bytes: ${JSON.stringify(big)}`);
  });
}

for (const [a, b] of [['port-1', 'port-2'], ['port-2', 'port-1'], ['port-tap', 'port-2'], ['port-2', 'port-tap']]) {
  test(`TCP ${a} -> ${b}: 2 MiB, sha256 equal`, async () => {
    const t = await tcpTransfer(lab!, a, b, 2 * MB);
    assert.is(t.received.bytes, 2 * MB);
    assert.is(t.received.sha256, t.sent.sha256);
  });
}

test('the traffic crossed the kernel\'s VXLAN device both ways; podway dropped nothing it should forward', async () => {
  const k = kernelVxlan();
  assert.ok(k.rx > 4 * MB && k.tx > 4 * MB, `vxlan.calico bytes ${JSON.stringify(k)}`);
  const c = await counters();
  const allowed = new Set(['unsupported_ethertype', 'arp_replied', 'gateway_announced', 'arp_learned', 'icmp_sent', 'to_host', 'csum_completed', 'ndp_replied', 'ndp_not_gateway', 'ndp_advert_from_pod', 'multicast6']);
  assert.equal(Object.entries(c.reasons).filter(([r]) => !allowed.has(r)), [], JSON.stringify(c.reasons));
});

test('VXLAN with the old VNI (4096) on the new port: dropped, counted bad_vni', async () => {
  const before = (await counters()).reasons.bad_vni ?? 0;
  sendVxlan(4096, PORT, 5);
  assert.ok(await until(async () => ((await counters()).reasons.bad_vni ?? 0) - before >= 5, 5000, 100), `bad_vni: ${JSON.stringify((await counters()).reasons)}`);
});

test('vxlanPort changed while podway runs: said to take effect at the next start, the wire unchanged; at the next start in force, the old port dropped and counted vxlan_old_port', async () => {
  const n1 = lab!.node('node1');
  const mark = n1.log.length;
  await put('default', { vxlanPort: 4790, vxlanVNI: VNI });
  assert.ok(await waitLog(n1, /vxlanPort 4790 \(from FelixConfiguration default\) takes effect at the next podway run start .*8472 in force until then/, mark, 10_000), `said: ${n1.log.slice(mark).join(' | ')}`);
  const s = await status();
  assert.equal(s.felix?.vxlanPending?.map((p) => `${p.field} ${p.configured} ${p.inForce}`), ['vxlanPort 4790 8472']);
  assert.equal(s.felix?.settings.find((x) => x.field === 'vxlanPort')?.value, '8472', 'the port in force is still 8472');
  assert.match(podwayStatusText(), 'felix settings: vxlanPort 4790 (from FelixConfiguration default) takes effect at the next podway run start');
  const r = lab!.ping('port-1', lab!.pod('port-2').ip, 2, 56, ['-W', '3']);
  assert.is(r.loss, 0, `still on 8472 with the kernel node: ${JSON.stringify(r)}`);
  // an invalid value: named, ignored (the next layer's, here the built-in 4789, would apply at the next start)
  const mark2 = n1.log.length;
  await put('default', { vxlanPort: 70000, vxlanVNI: VNI });
  assert.ok(await waitLog(n1, /FelixConfiguration default: field vxlanPort: 70000 is not an integer 1\.\.65535: ignored/, mark2, 10_000), `invalid said: ${n1.log.slice(mark2).join(' | ')}`);
  // back to 8472 for the node2 side, then the restart onto a new port the kernel node follows
  await put('default', { vxlanPort: 4790, vxlanVNI: VNI });
  assert.is(await lab!.stopPodway('node1'), 0, 'stopped');
  await lab!.startPodway('node1', 20_000, ['--workers', '1', '--metrics-port', String(METRICS_PORT)]);
  const after = await status();
  assert.equal(after.felix?.settings.find((x) => x.field === 'vxlanPort'), { field: 'vxlanPort', value: '4790', source: 'FelixConfiguration default' });
  const table = run('ip', ['netns', 'exec', n1.ns, 'nft', 'list', 'table', 'inet', 'podway_tunnels']);
  assert.match(table, 'udp dport 4790 counter name "vxlan" drop');
  assert.match(table, `udp dport ${PORT} counter name "vxlan_old_port" drop`);
  // the kernel node still on 8472: its VXLAN to node1 is dropped and counted, not taken
  const before = nftCounter('vxlan_old_port');
  sendVxlan(VNI, PORT, 4);
  assert.ok(await until(() => nftCounter('vxlan_old_port') - before >= 4, 5000, 100), `vxlan_old_port counter: ${nftCounter('vxlan_old_port')}`);
  // ... and shown where operators look: the drop reason vxlan_old_port of `podway counters` and of
  // /metrics (the nft counter read at most every 5 s: waited for past that)
  assert.ok(await until(async () => ((await counters()).reasons.vxlan_old_port ?? 0) >= 4, 12_000, 250), `podway counters: ${JSON.stringify((await counters()).reasons)}`);
  const shown = /^\s*vxlan_old_port\s+(\d+)\s*$/m.exec(podwayText('counters'));
  assert.ok(shown && Number(shown[1]) >= 4, `podway counters' reasons: ${podwayText('counters')}`);
  const scraped = async () => valueOf(parseMetrics((await metricsText())), 'podway_dropped_packets_total', { reason: 'vxlan_old_port' }) ?? 0;
  assert.ok(await until(async () => (await scraped()) >= 4, 12_000, 250), `podway_dropped_packets_total{reason="vxlan_old_port"}: ${await scraped()}`);
  assert.ok((valueOf(parseMetrics(await metricsText()), 'podway_dropped_bytes_total', { reason: 'vxlan_old_port' }) ?? 0) >= 4 * 78, 'its bytes (4 datagrams of 78 bytes: IPv4 and UDP headers, VXLAN\'s, a 42-byte inner frame)');
  // node2 moved to 4790 as Felix would after its restart: pods reach each other again
  configureKernelNode(lab!, lab!.node('node2'), 'vxlan', { port: 4790, vni: VNI });
  assert.ok(await until(async () => (await kindOf(n1, lab!.node('node2').block)) === 'vxlan', 10_000), 'vxlan route');
  const p = lab!.ping('port-2', lab!.pod('port-1').ip, 3, 56, ['-W', '3']);
  assert.is(p.loss, 0, `on 4790: ${JSON.stringify(p)}`);
  ok = true;
});

test.run();
