/**
 * Our parsers on frames the kernel built and tcpdump captured: a ping and a UDP exchange between
 * two namespaces are written to a pcap by tcpdump, and every frame must validate (kernel-computed
 * IPv4, ICMP and UDP checksums verify with our code) with the fields tcpdump's own decode shows.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { readFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { withNetns, veth, sleep } from '../helpers/netns';
import { Drop } from '../../src/packet/drop';
import { validateEthIpv4 } from '../../src/packet/frame';
import { ipv4ChecksumOk, ipv4Src, ipv4Dst, ipv4Protocol, ipv4Ttl, formatIpv4 } from '../../src/packet/ipv4';
import { validateIcmp, icmpType, icmpEchoSeq } from '../../src/packet/icmp';
import { validateUdp, udpChecksumOk, udpDstPort } from '../../src/packet/udp';

/** Frames of a classic little-endian pcap file (Ethernet link type). */
function readPcap(file: string): Uint8Array[] {
  const buf = readFileSync(file);
  assert.is(buf.readUInt32LE(0), 0xa1b2c3d4, 'pcap magic');
  assert.is(buf.readUInt32LE(20), 1, 'Ethernet link type');
  const frames: Uint8Array[] = [];
  let o = 24;
  while (o + 16 <= buf.length) {
    const incl = buf.readUInt32LE(o + 8);
    frames.push(new Uint8Array(buf.subarray(o + 16, o + 16 + incl)));
    o += 16 + incl;
  }
  return frames;
}

test('kernel-built ICMP and UDP captured by tcpdump validate with our parsers and checksums', async () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'podway-pcap-'));
  try {
    await withNetns(['cap1', 'cap2'], async ([A, B]) => {
      veth(A, 'ca0', B, 'cb0');
      A.ip('addr', 'add', '10.205.0.1/24', 'dev', 'ca0');
      B.ip('addr', 'add', '10.205.0.2/24', 'dev', 'cb0');
      // full checksums on the wire (no offload), as a NIC would send them
      for (const [ns, dev] of [[A, 'ca0'], [B, 'cb0']] as const) ns.exec('ethtool', ['-K', dev, 'tx', 'off'], { allowFail: true });
      const file = path.join(dir, 'cap.pcap');
      const cap = B.spawn('tcpdump', ['-i', 'cb0', '-U', '-n', '-c', '6', '-w', file, 'icmp[icmptype] == icmp-echo or icmp[icmptype] == icmp-echoreply or udp port 7777']);
      // tcpdump prints "listening on" once its capture is open and filtered: traffic sent before
      // that is not captured (a fixed 700 ms wait was too short on a loaded CI host).
      let capErr = '';
      cap.stderr!.setEncoding('utf8');
      cap.stderr!.on('data', (d: string) => (capErr += d));
      for (let t = Date.now(); !/listening on/.test(capErr) && cap.exitCode === null && Date.now() - t < 20_000;) await sleep(20);
      assert.match(capErr, /listening on/, `tcpdump did not start: ${capErr}`);
      A.exec('ping', ['-c', '2', '-i', '0.2', '-W', '1', '10.205.0.2']);
      A.exec('python3', ['-c', "import socket;s=socket.socket(2,2);[s.sendto(b'podway'*k,('10.205.0.2',7777)) for k in (1,2)]"]);
      // (polled, not raced against a sleep: a pending 20 s timer would hold the process that long)
      for (let t = Date.now(); cap.exitCode === null && cap.signalCode === null && Date.now() - t < 20_000;) await sleep(20);
      if (cap.exitCode === null && cap.signalCode === null) {
        cap.kill('SIGINT'); // tcpdump writes out what it has, then exits
        for (let t = Date.now(); cap.exitCode === null && cap.signalCode === null && Date.now() - t < 5000;) await sleep(20);
      }
      const frames = readPcap(file);
      assert.ok(frames.length >= 6, `captured ${frames.length} frames`);
      let echo = 0, reply = 0, udp = 0;
      for (const f of frames) {
        assert.is(validateEthIpv4(f, 0, f.length), Drop.OK);
        const ip = 14;
        assert.ok(ipv4ChecksumOk(f, ip), 'kernel IPv4 checksum verifies');
        assert.is(ipv4Ttl(f, ip), 64);
        const l4 = ip + 20;
        const l4len = ((f[ip + 2] << 8) | f[ip + 3]) - 20;
        if (ipv4Protocol(f, ip) === 1) {
          assert.is(validateIcmp(f, l4, l4len), Drop.OK, 'kernel ICMP checksum verifies');
          if (icmpType(f, l4) === 8) { echo++; assert.is(formatIpv4(ipv4Dst(f, ip)), '10.205.0.2'); assert.ok(icmpEchoSeq(f, l4) >= 1); }
          if (icmpType(f, l4) === 0) { reply++; assert.is(formatIpv4(ipv4Src(f, ip)), '10.205.0.2'); }
        } else {
          assert.is(ipv4Protocol(f, ip), 17);
          assert.is(validateUdp(f, l4, l4len), Drop.OK);
          assert.is(udpDstPort(f, l4), 7777);
          assert.ok(((f[l4 + 6] << 8) | f[l4 + 7]) !== 0, 'the kernel filled the UDP checksum');
          assert.ok(udpChecksumOk(f, ip, l4), 'kernel UDP checksum verifies');
          udp++;
        }
      }
      assert.is(echo, 2);
      assert.is(reply, 2);
      assert.is(udp, 2);
      // and a corrupted copy is caught
      const bad = frames[0].slice();
      bad[14 + 8] ^= 1;
      assert.is(validateEthIpv4(bad, 0, bad.length), Drop.BAD_CHECKSUM);
    });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test.run();
