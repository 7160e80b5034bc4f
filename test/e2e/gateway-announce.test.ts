/**
 * After a restart, a pod whose gateway neighbour entry failed while podway was stopped can send at
 * once (root, network namespaces): podway's start announces the gateway to each L2 pod
 * (Engine.announceGateway), an unsolicited ARP reply "169.254.1.1 is at ee:ee:ee:ee:ee:ee" and, to
 * a TAP pod with IPv6 (whose gateway only podway answers), an unsolicited Neighbor Advertisement
 * for fe80::ecee:eeff:feee:eeee. The pods' entries are set FAILED (as ~3 s of unanswered probes
 * leave them) with podway stopped, podway is started again, and the veth pod's entry becomes
 * usable with the gateway's MAC while the pod sends nothing (no request of its in a capture on its
 * own interface, the announcement in it, to its MAC). Before, it stayed FAILED until the pod's next
 * packet and its request (docs/running.md, "What a restart costs the pods"). The TAP pod's entries
 * are flushed by its kernel as podway attaches the device again: they end gone or mended, never
 * FAILED.
 */
import * as path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Lab, GATEWAY6 } from '../../src/lab/lab';
import { guard, teardown, isRoot, logTail, until, nsExec, routes } from './e2e-kit';
import { startCapture, tsharkFields, reasons, sleep } from './tools';

const SPEC = [{ name: 'node1', subnet: 'a' as const, pods: [{ name: 'web-1', type: 'veth' as const }, { name: 'tap-1', type: 'tap' as const }] }];
const GATEWAY = '169.254.1.1';
const GATEWAY_MAC = 'ee:ee:ee:ee:ee:ee';

let lab: Lab | null = null;
let ok = false;

test.before(async () => {
  if (!isRoot()) throw new Error('the gateway announcement test needs root (network namespaces)');
  lab = guard(new Lab(SPEC, { dualStack: true }));
  lab.build();
  await lab.startPodway('node1', undefined, ['--workers', '1']);
  const n1 = lab.node('node1');
  for (const p of ['web-1', 'tap-1']) {
    const ip6 = lab.pod(p).ip6;
    assert.ok(await until(async () => (await routes(n1)).some((r) => r.cidr === `${ip6}/128` && r.kind === 'local'), 10_000), `${p} routed`);
  }
});

test.after(async () => {
  if (!lab) return;
  if (!ok) console.log(logTail(lab, 30));
  await teardown(lab);
});

interface Neigh { dst: string; lladdr?: string; state?: string[] }

/** The pod's neighbour entry for `dst` (IPv4 or IPv6 by `family`), or null when it has none. */
function entry(pod: string, family: '-4' | '-6', dst: string): Neigh | null {
  const p = lab!.pod(pod);
  const rows = JSON.parse(nsExec(p.ns, ['ip', '-j', family, 'neigh', 'show', 'dev', p.podIf])) as Neigh[];
  return rows.find((r) => r.dst === dst) ?? null;
}

const usable = (e: Neigh | null) => e !== null && e.lladdr === GATEWAY_MAC && (e.state ?? []).some((s) => s === 'REACHABLE' || s === 'STALE' || s === 'DELAY');

/** Every gateway entry the test mends: web-1's IPv4 one, tap-1's IPv4 and IPv6 ones (a veth
 * pod's IPv6 gateway is the host end's own address, answered by the node's kernel throughout). */
const ENTRIES: [string, '-4' | '-6', string][] = [['web-1', '-4', GATEWAY], ['tap-1', '-4', GATEWAY], ['tap-1', '-6', GATEWAY6]];

test('a restart: gateway entries the pods gave up on are usable again without a request from them', async () => {
  const n1 = lab!.node('node1');
  // each pod resolves its gateway (both families) through a first podway
  assert.is(lab!.ping('web-1', lab!.pod('tap-1').ip, 2).received, 2, 'web-1 reaches tap-1');
  assert.is(lab!.ping('tap-1', lab!.pod('web-1').ip6!, 2).received, 2, 'tap-1 reaches web-1 over IPv6');
  for (const [pod, fam, dst] of ENTRIES) assert.ok(usable(entry(pod, fam, dst)), `${pod} resolved ${dst}: ${JSON.stringify(entry(pod, fam, dst))}`);

  assert.is(await lab!.stopPodway('node1'), 0, 'podway stopped');
  // the TAP's carrier went with podway's descriptor; the kernel acts on it (operstate, the flush)
  // up to a second later (linkwatch): the entries below are made after it, as a pod's traffic in
  // the gap makes them
  const tap = lab!.pod('tap-1');
  const operstate = () => (JSON.parse(nsExec(tap.ns, ['ip', '-j', 'link', 'show', 'dev', tap.podIf])) as { operstate?: string }[])[0]?.operstate;
  assert.ok(await until(() => operstate() === 'DOWN', 5000, 50), `tap-1's device down with podway stopped: ${operstate()}`);
  // what ~3 s of unanswered probes leave while podway is stopped: the veth pod's entry failed; the
  // TAP pod's were flushed with its device's carrier when podway closed it, and the entries its
  // traffic makes during the gap fail (replace: made FAILED at once)
  for (const [pod, fam, dst] of ENTRIES) {
    const p = lab!.pod(pod);
    nsExec(p.ns, ['ip', fam, 'neigh', 'replace', dst, 'dev', p.podIf, 'nud', 'failed']);
    assert.equal(entry(pod, fam, dst)?.state, ['FAILED'], `${pod}'s entry for ${dst} failed: ${JSON.stringify(entry(pod, fam, dst))}`);
  }

  const web = lab!.pod('web-1');
  const file = path.join(lab!.dir, 'announce-web-1.pcap');
  const cap = await startCapture(web.ns, web.podIf, file, 'arp', 1000);
  // tap-1's own device, in its namespace: the advertisement as the pod's kernel gets it
  const file6 = path.join(lab!.dir, 'announce-tap-1.pcap');
  let cap6: Awaited<ReturnType<typeof startCapture>> | null = null;
  try {
    cap6 = await startCapture(tap.ns, tap.podIf, file6, 'icmp6', 1000);
    await lab!.startPodway('node1', undefined, ['--workers', '1']);
    // web-1 sends nothing: only podway's announcement can mend its entry
    assert.ok(await until(() => usable(entry('web-1', '-4', GATEWAY)), 10_000, 50), `web-1's entry for ${GATEWAY} usable again: ${JSON.stringify(entry('web-1', '-4', GATEWAY))}`);
    // tap-1's are gone or mended, never left FAILED: its kernel flushes a TAP's entries as podway
    // attaches the device again (its carrier; seen on 6.18), so it asks afresh on its next packet
    // and podway, attached, answers at once
    for (const [pod, fam, dst] of ENTRIES.slice(1)) {
      assert.ok(await until(() => { const e = entry(pod, fam, dst); return e === null || usable(e); }, 10_000, 50), `${pod}'s entry for ${dst} not FAILED: ${JSON.stringify(entry(pod, fam, dst))}`);
    }
    await sleep(1000);
  } finally {
    await cap.finish(0);
    await cap6?.finish(0);
  }
  const arp = await tsharkFields(file, ['arp.opcode', 'arp.src.proto_ipv4', 'arp.src.hw_mac', 'arp.dst.proto_ipv4', 'eth.src', 'eth.dst'], 'arp');
  assert.ok(!arp.some((r) => r[0][0] === '1' && r[4][0] !== GATEWAY_MAC), `web-1 sent no ARP request: ${JSON.stringify(arp)}`);
  const replies = arp.filter((r) => r[0][0] === '2' && r[1][0] === GATEWAY && r[2][0] === GATEWAY_MAC && r[3][0] === web.ip);
  assert.is(replies.length, 1, `one ARP reply announcing the gateway to web-1: ${JSON.stringify(arp)}`);
  if (web.mac) assert.is(replies[0][5][0], web.mac.toLowerCase(), 'to web-1\'s stated MAC');
  // tap-1's Neighbor Advertisement as it arrived: for the gateway fe80::ecee:eeff:feee:eeee (the
  // EUI-64 address of ee:ee:ee:ee:ee:ee, 169.254.1.1's IPv6 counterpart), from it and its MAC, to
  // all-nodes (on Ethernet to tap-1's MAC), hop limit 255 (RFC 4861 7.1.2: anything else is
  // dropped), Router and Override set, not Solicited, a target link-layer option with the MAC, a
  // valid checksum
  const na = await tsharkFields(file6, ['eth.src', 'eth.dst', 'ipv6.src', 'ipv6.dst', 'ipv6.hlim', 'icmpv6.nd.na.target_address', 'icmpv6.nd.na.flag.r', 'icmpv6.nd.na.flag.s', 'icmpv6.nd.na.flag.o', 'icmpv6.opt.linkaddr', 'icmpv6.checksum.status', 'icmpv6.code'], 'icmpv6.type == 136 && eth.src == ee:ee:ee:ee:ee:ee');
  assert.is(na.length, 1, `one Neighbor Advertisement from the gateway to tap-1: ${JSON.stringify(na)}`);
  const [src, dst, ip6src, ip6dst, hlim, target, r, sFlag, o, lladdr, csum, code] = na[0].map((v) => v[0]);
  assert.is(src, GATEWAY_MAC);
  assert.is(dst, tap.mac ? tap.mac.toLowerCase() : '33:33:00:00:00:01', 'to tap-1\'s stated MAC, else all-nodes');
  assert.is(target, GATEWAY6, 'the target is the pods\' IPv6 gateway');
  assert.is(ip6src, GATEWAY6, 'sent from the gateway\'s own address');
  assert.is(ip6dst, 'ff02::1', 'to all-nodes');
  assert.is(hlim, '255', 'hop limit 255');
  assert.equal([r, sFlag, o], ['1', '0', '1'], 'Router and Override, not Solicited');
  assert.is(lladdr, GATEWAY_MAC, 'the target link-layer option names the gateway\'s MAC');
  assert.is(code, '0');
  assert.is(csum, '1', `checksum good: ${JSON.stringify(na[0])}`);
  // web-1's ARP reply, tap-1's ARP reply and IPv6 advertisement (a veth pod's IPv6 gateway is its
  // node kernel's to answer: none to web-1)
  assert.is((await reasons(n1)).gateway_announced, 3, 'gateway_announced counts the three frames');
  assert.is(lab!.ping('web-1', lab!.pod('tap-1').ip, 2).received, 2, 'web-1 reaches tap-1 after the restart');
  assert.is(lab!.ping('tap-1', lab!.pod('web-1').ip6!, 2).received, 2, 'tap-1 reaches web-1 over IPv6 after the restart');
  ok = true;
});

test.run();
