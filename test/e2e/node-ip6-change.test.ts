/**
 * The tunnel table follows the node's IPv6 address (root, network namespaces). node1 runs podway,
 * node2 is a kernel node with Felix's vxlan-v6.calico (src/lab/kernel.ts). node1's IPv6 address
 * (its Node's bgp.ipv6Address, which podway uses) changes while podway runs: the `vxlan6` drop
 * rule of `table inet podway_tunnels` must name the new address (so the kernel's copy of VXLAN
 * to it is dropped and counted, and pod IPv6 keeps flowing through podway's underlay port); then
 * the address goes away (the rule with it) and comes back (the rule, and the underlay port's
 * filter taking IPv6 again: pod IPv6 flows). Then nft refuses the rewrite for a new address (an
 * owned copy of the table, test/helpers/nft-owner.ts): no IPv6 VXLAN socket on it, so each
 * datagram is read once, from the underlay port.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawn } from 'node:child_process';
import { configureKernelNode } from '../../src/lab/kernel';
import { Lab } from '../../src/lab/lab';
import { deriveVtepMac } from '../../src/control';
import { guard, teardown, isRoot, routes, logTail, until, waitLog, pingIn, track, PingRun, nsExec, sleep } from './e2e-kit';
import { controlRequest } from '../../src/dataplane/control-server';
import { tunnelRxProgram } from '../../src/dataplane/nft-tunnels';
import { ownedTunnelTableInput } from '../helpers/nft-owner';
import { podwayCli } from './bgp-kit';

const SPEC = [
  { name: 'node1', subnet: 'a' as const, pods: [{ name: 'web-1', type: 'veth' as const }] },
  { name: 'node2', subnet: 'a' as const, pods: [{ name: 'web-2', type: 'veth' as const }] },
];

let lab: Lab | null = null;
let ok = false;

function table(): string {
  return nsExec(lab!.node('node1').ns, ['nft', 'list', 'table', 'inet', 'podway_tunnels']);
}

/** The table, or '' while there is none (between an owned copy's delete and add, after it went). */
function tableOrNone(): string {
  try {
    return table();
  } catch {
    return '';
  }
}

function vxlan6Counter(): number {
  const out = nsExec(lab!.node('node1').ns, ['nft', '-j', 'list', 'counters', 'table', 'inet', 'podway_tunnels']);
  return (JSON.parse(out) as { nftables: { counter?: { name: string; packets: number } }[] }).nftables.find((x) => x.counter?.name === 'vxlan6')?.counter?.packets ?? 0;
}

/** node1's IPv6 address becomes `ip6` (null: none) on its interface and in its Node resource. */
function setNodeIp6(ip6: string | null): void {
  const n1 = lab!.node('node1');
  if (n1.ip6) nsExec(n1.ns, ['ip', '-6', 'addr', 'del', `${n1.ip6}/64`, 'dev', 'eth0']);
  if (ip6) nsExec(n1.ns, ['ip', '-6', 'addr', 'add', `${ip6}/64`, 'dev', 'eth0', 'nodad']);
  n1.ip6 = ip6;
  lab!.setMode(lab!.mode);
  // node2 (Felix's kernel dataplane) sends node1's IPv6 VXLAN to the new address
  if (ip6) nsExec(lab!.node('node2').ns, ['bridge', 'fdb', 'replace', deriveVtepMac('node1', 6), 'dev', 'vxlan-v6.calico', 'dst', ip6, 'self', 'permanent']);
}

/** node1's `podway status` host notes on the tunnel table: one, saying what is in force (before,
 * each change of the address added a note, the old address's staying beside the new one). */
async function tunnelNotes(): Promise<string[]> {
  const s = await controlRequest(lab!.node('node1').control, { cmd: 'status' }, 10_000) as { hostChanges: string[] };
  return s.hostChanges.filter((n) => n.startsWith('nftables table inet podway_tunnels:'));
}

async function notesSay(to: string): Promise<boolean> {
  const n = await tunnelNotes();
  return n.length === 1 && n[0].includes(` ${to} received on eth0's packet socket`);
}

const ping6 = (from: string, to: string) => lab!.ping(from, lab!.pod(to).ip6!, 1).received === 1;

test.before(async () => {
  if (!isRoot()) throw new Error('e2e tests need root (network namespaces)');
  lab = guard(new Lab(SPEC, { dualStack: true, podOffloads: false }));
  lab.build();
  configureKernelNode(lab, lab.node('node2'), 'vxlan');
  await lab.startPodway('node1');
  const b6 = lab.node('node2').block6!;
  assert.ok(await until(async () => (await routes(lab!.node('node1'))).some((r) => r.cidr === b6 && r.kind === 'vxlan'), 10_000), 'node1 routes node2\'s IPv6 block');
});

test.after(async () => {
  if (!lab) return;
  if (!ok) console.log(logTail(lab, 30));
  await teardown(lab);
});

test('the vxlan6 rule names the address podway uses, before and after it changes; IPv6 VXLAN to the new address is taken by podway', async () => {
  assert.ok(await until(() => ping6('web-2', 'web-1') && ping6('web-1', 'web-2'), 10_000, 200), 'IPv6 both ways at start');
  assert.match(table(), /ip6 daddr fd99::1 exthdr frag missing udp dport 4789 counter name "vxlan6" drop/);
  setNodeIp6('fd99::a1');
  assert.ok(await until(() => /ip6 daddr fd99::a1 exthdr frag missing udp dport 4789 counter name "vxlan6" drop/.test(table()), 10_000, 100), `the rule follows the new address:\n${table()}`);
  assert.not.match(table(), /fd99::1 /, 'no rule for the old address');
  assert.ok(await until(() => notesSay('VXLAN and IPIP to 10.99.0.1 and VXLAN to fd99::a1'), 10_000, 100), `status: the table's note for the new address alone: ${JSON.stringify(await tunnelNotes())}`);
  const before = vxlan6Counter();
  assert.ok(await until(() => ping6('web-2', 'web-1'), 10_000, 200), 'web-2 -> web-1 over IPv6 VXLAN to the new address');
  for (let k = 0; k < 5; k++) assert.ok(ping6('web-2', 'web-1') && ping6('web-1', 'web-2'), `IPv6 both ways after the change (${k})`);
  assert.ok(vxlan6Counter() - before >= 5, `the kernel's copy of VXLAN to fd99::a1 was dropped by the rule (${vxlan6Counter() - before})`);
});

test('the address goes away (the rule with it) and comes back (rule and IPv6 on the underlay port again)', async () => {
  setNodeIp6(null);
  assert.ok(await until(() => !/vxlan6" drop/.test(table()), 10_000, 100), `no IPv6 rule without an address:\n${table()}`);
  assert.match(table(), /ip daddr 10\.99\.0\.1 .*counter name "vxlan" drop/, 'the IPv4 rules stay');
  assert.ok(await until(() => notesSay('VXLAN and IPIP to 10.99.0.1'), 10_000, 100), `status: the table's note without an IPv6 address: ${JSON.stringify(await tunnelNotes())}`);
  setNodeIp6('fd99::b1');
  assert.ok(await until(() => /ip6 daddr fd99::b1 exthdr frag missing udp dport 4789 counter name "vxlan6" drop/.test(table()), 10_000, 100), `the rule is back for fd99::b1:\n${table()}`);
  assert.ok(await until(() => notesSay('VXLAN and IPIP to 10.99.0.1 and VXLAN to fd99::b1'), 10_000, 100), `status: the table's note for fd99::b1 alone: ${JSON.stringify(await tunnelNotes())}`);
  assert.ok(await until(() => ping6('web-1', 'web-2') && ping6('web-2', 'web-1'), 15_000, 200), 'IPv6 both ways once the address is back (NDP and VXLAN through the reopened underlay port)');
});

/** Echo requests web-2 -> web-1 over IPv6, `n` of them: the output (a duplicate says `DUP!`). */
async function pings6(n: number): Promise<PingRun> {
  return pingIn(lab!.pod('web-2').ns, lab!.pod('web-1').ip6!, n, 0.1).done;
}

test('nft refusing the rewrite for a new address: VXLAN to it read once, from the underlay port (no IPv6 VXLAN socket), counted; the next rewrite recovers', async () => {
  const n1 = lab!.node('node1');
  // an owned copy of podway's table (for fd99::b1): podway's nft is refused with EPERM
  const nft = track(spawn('ip', ['netns', 'exec', n1.ns, 'nft', '-i'], { stdio: ['pipe', 'ignore', 'ignore'] }));
  nft.stdin!.write(ownedTunnelTableInput(tunnelRxProgram('eth0', n1.ip, 4789, 'fd99::b1')));
  try {
    assert.ok(await until(() => /flags owner/.test(tableOrNone()), 5000, 50), 'nft -i holds the table');
    const from = n1.log.length;
    setNodeIp6('fd99::c1');
    assert.ok(await waitLog(n1, /could not rewrite nftables table inet podway_tunnels .*VXLAN to fd99::c1 is read from the underlay port only/, from, 10_000), `refusal logged:\n${n1.log.slice(from).join('\n')}`);
    assert.ok(await until(() => ping6('web-2', 'web-1'), 10_000, 200), 'web-2 -> web-1 over IPv6 VXLAN to fd99::c1');
    // the kernel's copy is not dropped (the table names fd99::b1); with a socket on fd99::c1 each
    // request would reach web-1 twice, through the socket and the underlay port
    const r = await pings6(10);
    assert.is(r.received, 10, r.out);
    assert.not.match(r.out, /DUP!/, 'every echo request delivered once');
    const c = (await controlRequest(n1.control, { cmd: 'counters' })) as { failures: { tunnelTable: number } };
    assert.ok(c.failures.tunnelTable >= 1, JSON.stringify(c.failures));
    assert.match(podwayCli(['counters', '--control', n1.control]), /\nfailures: tunnelTable [1-9]/);
    const st = (await controlRequest(n1.control, { cmd: 'status' })) as { tunnelsOn: string };
    assert.match(st.tunnelsOn, 'VXLAN to fd99::c1: underlay port only (no IPv6 VXLAN socket: the table names fd99::b1)');
  } finally {
    nft.stdin!.end(); // the owned table goes with the process
    await until(() => nft.exitCode !== null || nft.signalCode !== null, 5000, 20);
    if (nft.exitCode === null && nft.signalCode === null) nft.kill('SIGKILL');
  }
  setNodeIp6('fd99::d1');
  assert.ok(await until(() => /ip6 daddr fd99::d1 exthdr frag missing udp dport 4789 counter name "vxlan6" drop/.test(tableOrNone()), 10_000, 100), `podway's table is back, for fd99::d1:\n${tableOrNone()}\n${n1.log.slice(-5).join('\n')}`);
  assert.ok(await until(() => ping6('web-2', 'web-1') && ping6('web-1', 'web-2'), 15_000, 200), 'IPv6 both ways after the rewrite');
  const r = await pings6(10);
  assert.is(r.received, 10, r.out);
  assert.not.match(r.out, /DUP!/);
  ok = true;
});

test('the IPv6 address removed under podway: warned, nodeAddressMissing and `podway status` say so (as for IPv4), the node stays ready; the underlay down: not ready (another node exists), ready again once it is up', async () => {
  ok = false;
  const n1 = lab!.node('node1');
  const ip6 = n1.ip6!;
  const re = (t: string) => t.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  type Status = { ready: boolean; notReady: string[]; nodeAddressMissing: string | null; underlayDown: { reason: string; since: string } | null };
  const status = async () => (await controlRequest(n1.control, { cmd: 'status' })) as Status;
  const statusText = () => podwayCli(['status', '--control', n1.control]);
  let from = n1.log.length;
  nsExec(n1.ns, ['ip', '-6', 'addr', 'del', `${ip6}/64`, 'dev', 'eth0']);
  const warn = await waitLog(n1, new RegExp(`node address ${re(ip6)} is no longer on this node \\(eth0 has [^)]*\\): the IPv6 packets podway hands to the node's routing`), from, 15_000);
  assert.ok(warn, n1.log.slice(from).join('\n'));
  assert.match(JSON.parse(warn!).level, 'warn');
  let st = await status();
  assert.match(st.nodeAddressMissing ?? '', `node address ${ip6} is no longer on this node`);
  assert.is(st.ready, true, `an address missing from a link that is up is no readiness problem: ${st.notReady.join('; ')}`);
  assert.is(st.underlayDown, null);
  assert.match(statusText(), new RegExp(`\\nnode address missing: node address ${re(ip6)} is no longer on this node`));
  // web-1's IPv6 to node2's address leaves through tx6, which the kernel refuses now (its route
  // to fd99::/64 went with the address): a drop reason says why, not only tx6's txErrors
  type Counters = { reasons: Record<string, number>; ports: { port: string; txErrors: number }[] };
  const counters = async () => (await controlRequest(n1.control, { cmd: 'counters' })) as Counters;
  const before = (await counters()).reasons.no_node_address6 ?? 0;
  assert.is(lab!.ping('web-1', lab!.node('node2').ip6!, 3).received, 0, 'web-1 -> node2\'s address is lost');
  assert.ok(await until(async () => ((await counters()).reasons.no_node_address6 ?? 0) > before, 10_000, 200), JSON.stringify(await counters()));
  const c = await counters();
  assert.ok((c.ports.find((p) => p.port === 'tx6(raw)')?.txErrors ?? 0) >= c.reasons.no_node_address6, 'no more than tx6 refused');
  assert.match(podwayCli(['counters', '--control', n1.control]), /no_node_address6/);
  nsExec(n1.ns, ['ip', '-6', 'addr', 'add', `${ip6}/64`, 'dev', 'eth0', 'nodad']);
  assert.ok(await waitLog(n1, new RegExp(`node address ${re(ip6)} is on this node again`), from, 15_000), n1.log.slice(from).join('\n'));
  assert.is((await status()).nodeAddressMissing, null);
  assert.not.match(statusText(), /node address missing/);

  // the underlay down: nothing crosses to node2, so not ready, saying why
  from = n1.log.length;
  nsExec(n1.ns, ['ip', 'link', 'set', 'eth0', 'down']);
  try {
    // (the underlay port's receive failing, ENETDOWN, may say not ready for a moment first)
    // the link is down, said as such (since when); the node addresses are not "missing"
    const why = /^underlay down: link eth0 is down \(set down: admin state down\) \(since \d{4}-\d\d-\d\dT[\d:.]+Z\): this node cannot reach the other nodes$/;
    assert.ok(await until(async () => (await status()).notReady.some((r) => why.test(r)), 15_000, 200), JSON.stringify(await status()));
    st = await status();
    assert.is(st.ready, false);
    assert.is(st.underlayDown?.reason, 'link eth0 is down (set down: admin state down)');
    // notReady is Health.report's reasons: what /readyz serves and podway_ready reads
    assert.ok(st.notReady.includes(`underlay down: ${st.underlayDown!.reason} (since ${st.underlayDown!.since}): this node cannot reach the other nodes`), st.notReady.join('; '));
    assert.is(st.nodeAddressMissing, null);
    const text = statusText();
    assert.match(text, /\nnot ready: .*underlay down: link eth0 is down/);
    assert.match(text, `\nunderlay down: link eth0 is down (set down: admin state down) (since ${st.underlayDown!.since})\n`);
    assert.not.match(text, /node address missing/);
    // the underlay port's receive failed (ENETDOWN) and is polled again after 100, 200, 400 ms...:
    // what it reads meanwhile (the node's own frames through the down device) is no recovery, so
    // "receives again" is not said while the link is down (it was, 100 ms after the ENETDOWN)
    await sleep(1500);
    const again = n1.log.slice(from).filter((l) => /port underlay\(eth0\): receives again/.test(l));
    assert.is(again.length, 0, `said while eth0 is down: ${n1.log.slice(from).join(' | ')}`);
  } finally {
    nsExec(n1.ns, ['ip', 'link', 'set', 'eth0', 'up']);
  }
  // up again: ready; the kernel flushed the IPv6 address with the link down: said, as above
  assert.ok(await until(async () => (await status()).ready, 20_000, 200), JSON.stringify(await status()));
  assert.is((await status()).underlayDown, null);
  assert.ok(await waitLog(n1, new RegExp(`node address ${re(ip6)} is no longer on this node`), from, 15_000), n1.log.slice(from).join('\n'));
  nsExec(n1.ns, ['ip', '-6', 'addr', 'add', `${ip6}/64`, 'dev', 'eth0', 'nodad']);
  assert.ok(await until(async () => (await status()).nodeAddressMissing === null, 15_000, 200), JSON.stringify(await status()));
  assert.ok(await until(() => ping6('web-2', 'web-1') && ping6('web-1', 'web-2'), 20_000, 200), 'IPv6 both ways once the link and address are back');
  ok = true;
});

test.run();
