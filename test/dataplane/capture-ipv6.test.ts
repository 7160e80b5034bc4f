// `podway capture` filters on IPv6 packets as `podway trace` does (capture-match.ts): an IPv6 address in the filter
// matches IPv6 only (source, destination or either), an IPv4 one IPv4 only, protocols and ports
// are read past the extension headers; Ethernet, TUN (bare IP) and VXLAN-payload frames; a frame
// whose payload length runs past its end matches no address filter.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { CaptureTap, countRecords, Link, Stage } from '../../src/dataplane/capture';
import { FramePool } from '../../src/dataplane/frame-pool';
import { parseTraceFilter } from '../../src/dataplane/trace';
import { parseIpv6Bytes } from '../../src/packet/ipv6';

/** An IPv6 packet: optional hop-by-hop header, then UDP (ports 4000 -> 53) or ICMPv6. */
function ipv6(src: string, dst: string, opts: { upper?: 17 | 58; hbh?: boolean } = {}): Uint8Array {
  const upper = opts.upper ?? 17;
  const ext = opts.hbh ? 8 : 0;
  const l4 = 8 + 4;
  const p = new Uint8Array(40 + ext + l4);
  p[0] = 0x60;
  p[4] = 0; p[5] = ext + l4;
  p[6] = opts.hbh ? 0 : upper;
  p[7] = 64;
  p.set(parseIpv6Bytes(src), 8);
  p.set(parseIpv6Bytes(dst), 24);
  if (opts.hbh) { p[40] = upper; p[41] = 0; }
  const u = 40 + ext;
  if (upper === 17) { p[u] = 0x0f; p[u + 1] = 0xa0; p[u + 2] = 0; p[u + 3] = 53; } else p[u] = 128;
  return p;
}
function ipv4(src: number[], dst: number[]): Uint8Array {
  const p = new Uint8Array(28);
  p[0] = 0x45; p[3] = 28; p[8] = 64; p[9] = 17;
  p.set(src, 12); p.set(dst, 16);
  p[20] = 0x0f; p[21] = 0xa0; p[23] = 53;
  return p;
}
const eth = (ethertype: number, ip: Uint8Array): Uint8Array => {
  const f = new Uint8Array(14 + ip.length);
  f[12] = ethertype >> 8; f[13] = ethertype & 255;
  f.set(ip, 14);
  return f;
};

const A = 'fd00:10:244::2', B = 'fd00:10:244::43';
const frames: Record<string, { bytes: Uint8Array; link: number }> = {
  v6udp: { bytes: eth(0x86dd, ipv6(A, B)), link: Link.ETHERNET },
  v6icmp: { bytes: eth(0x86dd, ipv6(B, A, { upper: 58 })), link: Link.ETHERNET },
  v6hbh: { bytes: eth(0x86dd, ipv6(A, B, { hbh: true })), link: Link.ETHERNET },
  v6tun: { bytes: ipv6(B, A), link: Link.IP },
  v6vxlan: { bytes: new Uint8Array([8, 0, 0, 0, 0, 0x10, 0, 0, ...eth(0x86dd, ipv6(A, B))]), link: Link.VXLAN },
  v6cut: { bytes: eth(0x86dd, ipv6(A, B)).subarray(0, 14 + 40 + 4), link: Link.ETHERNET },
  v4: { bytes: eth(0x0800, ipv4([10, 244, 0, 2], [10, 244, 0, 67])), link: Link.ETHERNET },
};

/** Which of the frames a capture with this filter takes at rx. */
function captured(filter: string): string[] {
  const names = Object.keys(frames);
  const out: string[] = [];
  for (const name of names) {
    const tap = new CaptureTap({ filter: parseTraceFilter(filter.split(' ')), stage: Stage.RX, count: 100 }, 4);
    const pool = new FramePool(4);
    const { bytes, link } = frames[name];
    pool.bytes.set(bytes, pool.start(0));
    pool.len[0] = bytes.length;
    tap.before(pool, 1, 0, { portName: ['p0'], linkOf: () => link, nodeIp: 0 });
    const chunk = tap.take();
    if (chunk && countRecords(chunk) > 0) out.push(name);
  }
  return out;
}

test('IPv6 addresses: host, src, dst; on Ethernet, TUN and VXLAN payloads; never an IPv4 packet', () => {
  assert.equal(captured(`host ${A}`), ['v6udp', 'v6icmp', 'v6hbh', 'v6tun', 'v6vxlan']);
  assert.equal(captured(`src ${A}`), ['v6udp', 'v6hbh', 'v6vxlan']);
  assert.equal(captured(`dst fd00:10:244:0::2`), ['v6icmp', 'v6tun'], 'any spelling of the address');
  assert.equal(captured('host 10.244.0.2'), ['v4'], 'an IPv4 address: IPv4 only');
});

test('protocol and port past the extension headers; a filter on protocol alone takes both families', () => {
  assert.equal(captured('icmp6'), ['v6icmp']);
  assert.equal(captured(`udp and port 53 and host ${B}`), ['v6udp', 'v6hbh', 'v6tun', 'v6vxlan']);
  assert.equal(captured('udp'), ['v6udp', 'v6hbh', 'v6tun', 'v6vxlan', 'v4']);
  assert.equal(captured(''), Object.keys(frames), 'no filter: everything, a cut frame too');
});

test('"or" and parentheses in the compiled matcher: and binds tighter, as tcpdump', () => {
  assert.equal(captured('icmp6 or host 10.244.0.2'), ['v6icmp', 'v4']);
  // icmp6 or (udp and host 10.244.0.67) -- not (icmp6 or udp) and host 10.244.0.67
  assert.equal(captured('icmp6 or udp and host 10.244.0.67'), ['v6icmp', 'v4']);
  assert.equal(captured('(icmp6 or udp) and host 10.244.0.67'), ['v4']);
  assert.equal(captured(`dst ${A} and (icmp6 or tcp)`), ['v6icmp']);
  assert.equal(captured(`tcp or src ${B} and port 53`), ['v6tun']);
  assert.equal(captured('tcp or icmp'), [], 'no term matches');
  assert.equal(captured(`host ${A} or host 10.244.0.2`), ['v6udp', 'v6icmp', 'v6hbh', 'v6tun', 'v6vxlan', 'v4']);
});

test.run();
