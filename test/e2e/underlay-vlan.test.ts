/**
 * VLAN-tagged frames from the underlay are dropped as the addon reads them (root, network
 * namespaces): node1 runs podway; from node2's namespace (no podway there, a node of the cluster)
 * a raw AF_PACKET socket on its underlay eth0 sends VXLAN frames to node1's underlay address, the
 * same frame 802.1Q-tagged (VID 10) and untagged. The fabric's bridge forwards tagged frames as
 * they are; node1's kernel has no VLAN device, takes the tag off into the frame's metadata and the
 * frame reads untagged to a packet socket: podway must drop it (vlan_tagged, in `podway counters`,
 * in /metrics and in the underlay port's drops), never deliver it, and still deliver the untagged
 * one. A sniffer in the receiving pod's namespace counts what arrives, by payload.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawn } from 'node:child_process';
import * as path from 'node:path';
import { Lab, run } from '../../src/lab/lab';
import { deriveVtepMac } from '../../src/control';
import { controlRequest } from '../../src/dataplane/control-server';
import { guard, teardown, isRoot, kindOf, logTail, until } from './e2e-kit';
import { exitedAndRead } from '../helpers/proc';

const SPEC = [
  { name: 'node1', subnet: 'a' as const, pods: [{ name: 'web-1', type: 'veth' as const }] },
  { name: 'node2', subnet: 'a' as const, pods: [{ name: 'web-2', type: 'veth' as const }] },
];

let lab: Lab | null = null;
let ok = false;

const TAGGED = 40;
const METRICS_PORT = 9092; // in node1's own namespace
const HTTP_GET = path.join(__dirname, 'http-get.js');
const MARK = `pw-uvlan-${process.pid}`;

/** On node2's eth0, raw: COUNT VXLAN frames (VNI 4096) to node1, each an inner IPv4/UDP datagram
 * from SRC to DST port 9999 whose payload is MARK + '-t' in 802.1Q VID 10, then one untagged whose
 * payload is MARK + '-u'. argv: ifname, dst MAC, src MAC, outer src, outer dst, inner dst MAC (the
 * VTEP's), inner src, inner dst, MARK, COUNT. */
const SENDER = String.raw`
import socket, struct, sys
ifn, dmac, smac, osrc, odst, vtep, isrc, idst, mark, count = sys.argv[1:11]
h = lambda m: bytes.fromhex(m.replace(':', ''))
def csum(b):
    s = sum(struct.unpack('!%dH' % (len(b) // 2), b))
    while s >> 16: s = (s & 0xffff) + (s >> 16)
    return ~s & 0xffff
def ip4(src, dst, payload):
    ip = struct.pack('!BBHHHBBH4s4s', 0x45, 0, 20 + len(payload), 7, 0x4000, 64, 17, 0, socket.inet_aton(src), socket.inet_aton(dst))
    return ip[:10] + struct.pack('!H', csum(ip)) + ip[12:] + payload
def frame(tag, vlan):
    body = (mark + tag).encode()
    inner = h(vtep) + h('66aabbccdd02') + b'\x08\x00' + ip4(isrc, idst, struct.pack('!HHHH', 5555, 9999, 8 + len(body), 0) + body)
    vx = struct.pack('!BxxxI', 0x08, 4096 << 8) + inner
    outer = ip4(osrc, odst, struct.pack('!HHHH', 40000, 4789, 8 + len(vx), 0) + vx)
    return h(dmac) + h(smac) + (struct.pack('!HH', 0x8100, 10) if vlan else b'') + b'\x08\x00' + outer
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)
s.bind((ifn, 0))
n = 0
for _ in range(int(count)): n += s.send(frame('-t', True)) > 0
s.send(frame('-u', False))
print(n, flush=True)
`;

/** UDP datagrams to port 9999 on IFACE whose payload starts with MARK, counted by payload, printed
 * as JSON: for SECS, or until MARK-u came. argv: IFACE, MARK, SECS. */
const SNIFFER = String.raw`
import socket, sys, time, select, json
iface, mark, secs = sys.argv[1], sys.argv[2].encode(), float(sys.argv[3])
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0800))
s.bind((iface, 0))
print('ready', flush=True)
end = time.time() + secs
seen = {}
while time.time() < end and mark + b'-u' not in seen:
    r, _, _ = select.select([s], [], [], max(0.0, end - time.time()))
    if not r: continue
    ip = s.recv(65535)[14:]
    if len(ip) < 28 or ip[9] != 17: continue
    hl = (ip[0] & 15) * 4
    if ip[hl + 2:hl + 4] != b'\x27\x0f' or not ip[hl + 8:].startswith(mark): continue
    k = ip[hl + 8:]
    seen[k] = seen.get(k, 0) + 1
print(json.dumps({k.decode(): v for k, v in seen.items()}), flush=True)
`;

type Counters = { reasons: Record<string, number>; ports: { port: string; drops: number; rxVlanTagged?: number }[] };
async function counters(): Promise<Counters> {
  return (await controlRequest(lab!.node('node1').control, { cmd: 'counters' }, 5000)) as Counters;
}
const macOf = (ns: string, ifname: string): string => JSON.parse(run('ip', ['-n', ns, '-j', 'link', 'show', ifname]))[0].address as string;

test.before(async () => {
  if (!isRoot()) throw new Error('these tests need root (network namespaces)');
  lab = guard(new Lab(SPEC));
  lab.build();
  const n1 = lab.node('node1');
  const n2 = lab.node('node2');
  await lab.startPodway('node1', undefined, ['--workers', '1', '--metrics-port', String(METRICS_PORT)]);
  assert.ok(await until(async () => (await kindOf(n1, n2.block)) === 'vxlan', 10_000), `node1 has no vxlan route to ${n2.block}`);
});

test.after(async () => {
  if (!lab) return;
  if (!ok) console.log(logTail(lab));
  await teardown(lab);
});

test('underlay: 802.1Q-tagged VXLAN frames towards the node are dropped as read (vlan_tagged, in counters, /metrics and the underlay port\'s drops), never delivered; the same frame untagged is', async () => {
  const n1 = lab!.node('node1');
  const n2 = lab!.node('node2');
  const web1 = n1.pods[0];
  const web2 = n2.pods[0];
  const c0 = await counters();
  const p = spawn('ip', ['netns', 'exec', web1.ns, 'python3', '-c', SNIFFER, web1.podIf, MARK, '20'], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  p.stdout.on('data', (d) => (out += d));
  p.stderr.on('data', (d) => (err += d));
  const done = exitedAndRead(p).then((x) => x.code); // the sniffer's lines read to the end (python flushes them at its exit)
  let sent = '';
  try {
    assert.ok(await until(async () => out.includes('ready'), 15_000), `sniffer in ${web1.ns} did not start: ${err}`);
    sent = run('ip', ['netns', 'exec', n2.ns, 'python3', '-c', SENDER, 'eth0', macOf(n1.ns, 'eth0'), macOf(n2.ns, 'eth0'), n2.ip, n1.ip,
      deriveVtepMac(n1.name), web2.ip, web1.ip, MARK, String(TAGGED)]).trim();
    assert.is(await done, 0, `sniffer: ${err}`);
  } finally {
    if (p.exitCode === null && p.pid !== undefined) p.kill('SIGKILL');
  }
  const got = JSON.parse(out.trim().split('\n').pop()!) as Record<string, number>;
  const c1 = await counters();
  const moved = (k: string) => (c1.reasons[k] ?? 0) - (c0.reasons[k] ?? 0);
  const under = (c: Counters) => c.ports.find((x) => x.port === 'underlay(eth0)') ?? { port: 'underlay(eth0)', drops: 0 };
  const why = JSON.stringify({ sent, got, reasons: [c0.reasons, c1.reasons], eth0: [under(c0), under(c1)] });
  assert.is(sent, String(TAGGED), why);
  assert.equal(got, { [`${MARK}-u`]: 1 }, `only the untagged frame reached web-1: ${why}`);
  assert.is(moved('vlan_tagged'), TAGGED, `vlan_tagged: ${why}`);
  assert.is((under(c1).rxVlanTagged ?? 0) - (under(c0).rxVlanTagged ?? 0), TAGGED, `the underlay port's rxVlanTagged: ${why}`);
  assert.ok(under(c1).drops - under(c0).drops >= TAGGED, `the underlay port's drops: ${why}`);
  const metrics = (JSON.parse(run('ip', ['netns', 'exec', n1.ns, process.execPath, HTTP_GET, `http://127.0.0.1:${METRICS_PORT}/metrics`])) as { body: string }).body;
  const line = metrics.split('\n').find((l) => l.startsWith('podway_dropped_packets_total{reason="vlan_tagged"}'));
  assert.ok(line && Number(line.split(' ').pop()) >= TAGGED, `/metrics: ${line}`);
  ok = true;
});

test.run();
