/**
 * SCTP from a veth pod with its CRC32c left to offload, through podway (root, network namespaces;
 * one node, two veth pods). A veth offers SCTP CRC offload, so a pod's SCTP reaches podway's packet
 * socket CHECKSUM_PARTIAL, its vnet header NEEDS_CSUM with csum_offset 8; podway completes the
 * CRC32c in C (native/gso.c) and forwards it (it used to drop it as bad_partial_csum).
 *
 * This CI machine's kernel has no SCTP module (socket(AF_INET, SOCK_STREAM, 132) fails), so no SCTP
 * stack sends or checks the packet: the sender writes the frame itself through AF_PACKET with
 * PACKET_VNET_HDR (NEEDS_CSUM, csum_start the SCTP header, csum_offset 8, the field 0), as an SCTP
 * socket on a CRC-offloading veth would hand it over; the receiver's AF_PACKET socket captures it
 * after podway, and the test checks the CRC32c with a bitwise reference (RFC 3720 B.4's vectors:
 * native/sctp-crc). python3 has no scapy here to compute it independently.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Lab, within } from '../../src/lab/lab';
import { controlRequest } from '../../src/dataplane/control-server';
import { guard, teardown, isRoot, until, logTail } from './e2e-kit';
import { Bg, py, pyJson, PY_START_MS } from './tools';
import { crc32cRef } from '../helpers/crc32c';

let lab: Lab | null = null;
let ok = false;

/** Sends one IPv4 SCTP packet (a DATA chunk of `n` bytes) with NEEDS_CSUM at its CRC32c field (0). */
const PY_SEND = `
import socket, struct, sys, json
a = json.loads(sys.argv[1])
def csum(b):
    s = sum(struct.unpack('!%dH' % (len(b) // 2), b))
    while s >> 16: s = (s & 0xffff) + (s >> 16)
    return (~s) & 0xffff
data = bytes((i * 7 + 3) & 0xff for i in range(a['n']))
chunk = struct.pack('!BBHIHHI', 0, 3, 16 + len(data), 1, 1, 0, 0) + data
chunk += b'\\0' * ((4 - len(chunk) % 4) % 4)
sctp = struct.pack('!HHII', 40001, 5000, 0x1234abcd, 0) + chunk
ip = bytearray(struct.pack('!BBHHHBBH4s4s', 0x45, 0, 20 + len(sctp), 7, 0x4000, 64, 132, 0, socket.inet_aton(a['src']), socket.inet_aton(a['dst'])))
struct.pack_into('!H', ip, 10, csum(bytes(ip)))
frame = bytes.fromhex('eeeeeeeeeeee') + bytes.fromhex(a['smac']) + b'\\x08\\x00' + bytes(ip) + sctp
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)
s.setsockopt(263, 15, 1)  # SOL_PACKET, PACKET_VNET_HDR
s.bind((a['ifname'], 0))
s.send(struct.pack('<BBHHHH', 1, 0, 0, 0, 34, 8) + frame)
print(json.dumps({'sent': frame.hex()}))
`;

/** Captures the first IPv4 SCTP frame on `ifname` (at most `tmo` s) and prints its hex. */
const PY_CAPTURE = `
import socket, sys, json, time
ifname, tmo = sys.argv[1], float(sys.argv[2])
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0800)); s.bind((ifname, 0))
print('listening', flush=True)
end = time.time() + tmo; got = None
while time.time() < end and got is None:
    s.settimeout(max(0.01, end - time.time()))
    try: d = s.recv(65535)
    except socket.timeout: break
    if len(d) > 34 and d[23] == 132: got = d.hex()
print(json.dumps({'got': got}), flush=True)
`;

type Counters = { reasons: Record<string, number>; ports: { port: string; rxCsumCompleted?: number; rxBadCsum?: number }[] };
const counters = async () => (await controlRequest(lab!.node('node1').control, { cmd: 'counters' }, 5000)) as Counters;

test.before(async () => {
  if (!isRoot()) throw new Error('e2e tests need root (network namespaces)');
  lab = guard(new Lab([{ name: 'node1', subnet: 'a', pods: [{ name: 'sctp-a', type: 'veth' }, { name: 'sctp-b', type: 'veth' }] }]));
  lab.build();
  await lab.startPodway('node1');
  assert.ok(await until(() => lab!.ping('sctp-a', lab!.pod('sctp-b').ip, 1, 56, ['-W', '2']).received === 1, 20_000, 200), 'sctp-a reaches sctp-b');
});

test.after(async () => {
  if (!lab) return;
  if (!ok) console.log(logTail(lab));
  await teardown(lab);
});

for (const n of [100, 1201]) {
  test(`an SCTP packet (${n}-byte DATA chunk) with its CRC32c left to offload crosses podway with the CRC32c filled in, counted completed, not bad_partial_csum`, async () => {
    const a = lab!.pod('sctp-a');
    const b = lab!.pod('sctp-b');
    const c0 = await counters();
    const [cmd, args] = py(b.ns, PY_CAPTURE, [b.podIf, 30]);
    const rx = new Bg(cmd, args);
    let sent = '';
    try {
      await rx.waitFor('listening', PY_START_MS);
      sent = (await pyJson<{ sent: string }>(a.ns, PY_SEND, [JSON.stringify({ ifname: a.podIf, src: a.ip, dst: b.ip, smac: (a.mac ?? '').replace(/:/g, ''), n })], 30_000)).sent;
      await rx.finish(40_000);
    } finally {
      if (rx.proc.exitCode === null && rx.proc.signalCode === null) {
        rx.proc.kill('SIGKILL');
        await within(rx.done, 5000, null);
      }
    }
    const got = (JSON.parse(rx.stdout.trim().split('\n').pop()!) as { got: string | null }).got;
    const c1 = await counters();
    const port = (c: Counters) => c.ports.find((p) => p.port === a.ifname) ?? { rxCsumCompleted: 0, rxBadCsum: 0 };
    const why = JSON.stringify({ reasons: c1.reasons, port: port(c1) });
    assert.ok(got, `sctp-b received the SCTP packet: ${why}`);
    const f = Uint8Array.from(Buffer.from(got!, 'hex'));
    const s = Uint8Array.from(Buffer.from(sent, 'hex'));
    const sctp = f.subarray(34, 34 + (s.length - 34));
    assert.is(sctp.length, s.length - 34, 'the whole SCTP packet');
    const zeroed = sctp.slice();
    zeroed.fill(0, 8, 12);
    assert.is(new DataView(sctp.buffer, sctp.byteOffset).getUint32(8, true), crc32cRef(zeroed), 'its CRC32c, least significant byte first');
    assert.equal([...zeroed], [...s.subarray(34)], 'the rest of the SCTP packet as sent');
    assert.is(f[22], s[22] - 1, 'forwarded: TTL one less');
    assert.is((port(c1).rxCsumCompleted ?? 0) - (port(c0).rxCsumCompleted ?? 0), 1, `completed once on sctp-a's port: ${why}`);
    assert.is((c1.reasons.bad_partial_csum ?? 0) - (c0.reasons.bad_partial_csum ?? 0), 0, `not bad_partial_csum: ${why}`);
  });
}

test('done', () => {
  ok = true;
});

test.run();
