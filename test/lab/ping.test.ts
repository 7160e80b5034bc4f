/**
 * The lab's ping (pingArgs + parsePing, used by Lab.ping and the e2e tests) against a responder
 * that answers late or not at all (root, two namespaces on a veth; the kernel's own echo replies
 * are off in the responder's namespace and a raw socket answers instead).
 *
 * ping -c N alone, once any reply came, exits 50 ms (one interval) after its last request: a last
 * reply delayed by a loaded host was counted as lost, the e2e tests' "0% loss" then failed.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawn, ChildProcess } from 'node:child_process';
import { pingArgs, parsePing, run } from '../../src/lab/lab';
import { withNetns, veth, Netns, isRoot, waitFor } from '../helpers/netns';

/**
 * Answers echo requests on a raw socket: request `delaySeq` after `delayMs`, `dropSeq` never;
 * prints "ready" once listening; ends by itself after 10 s.
 */
const RESPONDER = `
import socket, struct, time, sys
delay_seq, delay_s, drop_seq = int(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3])
def csum(b):
    if len(b) % 2: b += b'\\0'
    s = sum(struct.unpack('!%dH' % (len(b) // 2), b)); s = (s >> 16) + (s & 0xffff); s += s >> 16
    return ~s & 0xffff
s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
print('ready', flush=True)
end = time.time() + 10
while time.time() < end:
    s.settimeout(max(0.01, end - time.time()))
    try: d, a = s.recvfrom(2048)
    except socket.timeout: break
    icmp = bytearray(d[(d[0] & 15) * 4:])
    if icmp[0] != 8: continue
    seq = struct.unpack('!H', icmp[6:8])[0]
    if seq == drop_seq: continue
    if seq == delay_seq: time.sleep(delay_s)
    icmp[0] = 0; icmp[2:4] = b'\\0\\0'; icmp[2:4] = struct.pack('!H', csum(bytes(icmp)))
    s.sendto(bytes(icmp), a)
`;

async function withResponder(fn: (a: Netns, b: Netns, start: (delaySeq: number, delayMs: number, dropSeq: number) => Promise<void>) => Promise<void>): Promise<void> {
  await withNetns(['pinga', 'pingb'], async ([a, b]) => {
    veth(a, 'pa0', b, 'pb0');
    a.ip('addr', 'add', '192.0.2.1/24', 'dev', 'pa0');
    b.ip('addr', 'add', '192.0.2.2/24', 'dev', 'pb0');
    b.exec('sysctl', ['-qw', 'net.ipv4.icmp_echo_ignore_all=1']);
    let responder: ChildProcess | null = null;
    try {
      await fn(a, b, async (delaySeq, delayMs, dropSeq) => {
        responder = b.spawn('python3', ['-c', RESPONDER, String(delaySeq), String(delayMs / 1000), String(dropSeq)]);
        let out = '';
        responder.stdout!.on('data', (d: Buffer) => (out += d.toString()));
        assert.ok(await waitFor(() => out.includes('ready'), 10_000, 20), 'responder started');
      });
    } finally {
      (responder as ChildProcess | null)?.kill('SIGKILL');
    }
  });
}

test('a last reply 300 ms late still counts: ping waits for every reply (count > 1)', async () => {
  assert.ok(isRoot(), 'needs root (network namespaces)');
  await withResponder(async (a, _b, start) => {
    await start(4, 300, 0);
    const out = run('ip', ['netns', 'exec', a.name, 'ping', ...pingArgs(4), '192.0.2.2'], { allowFail: true, timeoutMs: 15_000 });
    const r = parsePing(out, 4);
    assert.equal({ sent: r.sent, received: r.received, loss: r.loss }, { sent: 4, received: 4, loss: 0 }, out);
    assert.is(r.ttl, 64);
  });
});

test('an unanswered request is lost: the requests ping adds past count are not counted', async () => {
  assert.ok(isRoot(), 'needs root (network namespaces)');
  await withResponder(async (a, _b, start) => {
    await start(0, 0, 2);
    const out = run('ip', ['netns', 'exec', a.name, 'ping', ...pingArgs(4), '192.0.2.2'], { allowFail: true, timeoutMs: 15_000 });
    const r = parsePing(out, 4);
    assert.match(out, /icmp_seq=5 /, 'ping sent a fifth request while the second was unanswered');
    assert.equal({ sent: r.sent, received: r.received, loss: r.loss }, { sent: 4, received: 3, loss: 25 }, out);
  });
});

test('awaitReplies false: exactly count requests, none answered', async () => {
  assert.ok(isRoot(), 'needs root (network namespaces)');
  await withResponder(async (a) => {
    const out = run('ip', ['netns', 'exec', a.name, 'ping', ...pingArgs(3, [], { awaitReplies: false }), '192.0.2.2'], { allowFail: true, timeoutMs: 15_000 });
    assert.match(out, /3 packets transmitted, 0 received/, out);
    assert.equal(parsePing(out, 3).received, 0);
  });
});

test.run();
