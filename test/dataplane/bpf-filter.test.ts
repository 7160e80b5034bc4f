// The underlay socket's classic BPF filter (host.ts underlayFilter), run by the small interpreter
// in helpers.ts: ARP and IPv4 not for the node pass; IPv4 for the node IP and everything else
// (IPv6, VLAN tags, short frames) stays in the kernel.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { underlayFilter } from '../../src/dataplane/host';
import { parseIpv4 } from '../../src/packet';
import { runBpf, frame, fixIpChecksum } from './helpers';

function withDst(f: Uint8Array, dst: string): Uint8Array {
  const c = f.slice();
  const d = parseIpv4(dst);
  c.set([d >>> 24, (d >>> 16) & 255, (d >>> 8) & 255, d & 255], 30);
  fixIpChecksum(c, 14);
  return c;
}

function withType(f: Uint8Array, type: number): Uint8Array {
  const c = f.slice();
  c[12] = type >> 8;
  c[13] = type & 255;
  return c;
}

for (const node of ['10.99.0.1', '192.168.10.11']) {
  // 192.168.10.11 is above 2^31: the comparison must be unsigned.
  test(`underlayFilter(${node}): ARP and IPv4 for others accepted; IPv4 for the node, IPv6, VLAN, short frames rejected`, () => {
    const prog = underlayFilter(parseIpv4(node));
    assert.is(prog.length % 8, 0);
    const pod = frame('underlay_rd_to_u'); // IPv4 to 10.246.0.4
    assert.ok(runBpf(prog, frame('arp_a_gw')) > 0, 'ARP request');
    assert.ok(runBpf(prog, frame('arp_a_gw_reply')) > 0, 'ARP reply');
    assert.ok(runBpf(prog, pod) > 0, 'IPv4 for a pod');
    assert.ok(runBpf(prog, withDst(pod, node === '10.99.0.1' ? '192.168.10.11' : '10.99.0.1')) > 0, "IPv4 for another node's address");
    assert.is(runBpf(prog, withDst(pod, node)), 0, 'IPv4 for the node itself');
    assert.is(runBpf(prog, withDst(frame('vxlan_rv_to_a'), node)), 0, 'VXLAN to the node IP (its own socket gets it)');
    assert.is(runBpf(prog, withType(pod, 0x86dd)), 0, 'IPv6');
    assert.is(runBpf(prog, withType(pod, 0x8100)), 0, 'VLAN tag');
    assert.is(runBpf(prog, withType(pod, 0x88cc)), 0, 'LLDP');
    assert.is(runBpf(prog, pod.subarray(0, 12)), 0, 'shorter than the ethertype');
    assert.is(runBpf(prog, pod.subarray(0, 30)), 0, 'IPv4 cut before the destination');
    // Accepting keeps the whole frame (snap length above any frame).
    assert.ok(runBpf(prog, pod) >= 0x10000);
  });
}

function withProto(f: Uint8Array, proto: number): Uint8Array {
  const c = f.slice();
  c[23] = proto;
  fixIpChecksum(c, 14);
  return c;
}

test('underlayFilter(node, { tunnels: true }): unfragmented VXLAN and IPIP to the node accepted (fragments left to the kernel reassembly); other traffic to the node still rejected', () => {
  const node = '10.99.0.1';
  const prog = underlayFilter(parseIpv4(node), { tunnels: true });
  const vx = withDst(frame('vxlan_rv_to_a'), node);
  assert.is(vx[23], 17);
  assert.ok(runBpf(prog, vx) >= 0x10000, 'VXLAN (UDP 4789) to the node IP');
  assert.ok(runBpf(prog, withProto(withDst(frame('underlay_rd_to_u'), node), 4)) > 0, 'IPIP to the node IP');
  const otherPort = vx.slice();
  otherPort[36] = 0x12; otherPort[37] = 0x34; // UDP destination 4660
  assert.is(runBpf(prog, otherPort), 0, 'UDP to another port of the node');
  const first = vx.slice();
  first[20] |= 0x20; fixIpChecksum(first, 14); // MF: a first fragment still has the UDP header
  assert.is(runBpf(prog, first), 0, 'a first fragment (MF): the kernel reassembles it for the UDP socket');
  const df = vx.slice();
  df[20] |= 0x40; fixIpChecksum(df, 14); // DF is not a fragment
  assert.ok(runBpf(prog, df) > 0, 'VXLAN with DF set');
  const ipipFrag = withProto(withDst(frame('underlay_rd_to_u'), node), 4);
  ipipFrag[20] |= 0x20; fixIpChecksum(ipipFrag, 14);
  assert.is(runBpf(prog, ipipFrag), 0, 'an IPIP fragment: the kernel reassembles it for the raw socket');
  const later = vx.slice();
  later[21] = 0x10; fixIpChecksum(later, 14); // offset 16 bytes: no UDP header here
  assert.is(runBpf(prog, later), 0, 'a later fragment');
  // IHL 6 (4 bytes of options): the UDP port is read behind them
  const opts = new Uint8Array(vx.length + 4);
  opts.set(vx.subarray(0, 34)); opts.set([1, 1, 1, 1], 34); opts.set(vx.subarray(34), 38);
  opts[14] = 0x46; opts[16] = (vx.length - 10) >> 8; opts[17] = (vx.length - 10) & 255; fixIpChecksum(opts, 14);
  assert.ok(runBpf(prog, opts) > 0, 'VXLAN behind IPv4 options');
  assert.is(runBpf(prog, withProto(withDst(frame('underlay_rd_to_u'), node), 6)), 0, 'TCP to the node IP');
  assert.ok(runBpf(prog, frame('underlay_rd_to_u')) > 0, 'IPv4 for a pod, as before');
  assert.ok(runBpf(prog, frame('arp_a_gw')) > 0, 'ARP, as before');
  assert.ok(runBpf(underlayFilter(parseIpv4(node), { tunnels: true, ipv6: true }), withType(vx, 0x86dd)) > 0, 'IPv6 with the ipv6 option');
});

test('the interpreter refuses what it does not know: unknown opcodes, jumps out, falling off the end', () => {
  const insn = (code: number, jt: number, jf: number, k: number) => {
    const b = new Uint8Array(8);
    const dv = new DataView(b.buffer);
    dv.setUint16(0, code, true);
    b[2] = jt;
    b[3] = jf;
    dv.setUint32(4, k, true);
    return b;
  };
  const prog = (...insns: Uint8Array[]) => {
    const out = new Uint8Array(insns.length * 8);
    insns.forEach((x, i) => out.set(x, i * 8));
    return out;
  };
  const pkt = frame('arp_a_gw');
  assert.is(runBpf(prog(insn(0x06, 0, 0, 7)), pkt), 7);
  assert.throws(() => runBpf(prog(insn(0x38, 0, 0, 12), insn(0x06, 0, 0, 1)), pkt), /unknown opcode 0x38/); // ldb [x+k]... (0x50) and others: not used
  assert.throws(() => runBpf(prog(insn(0x28, 0, 0, 12), insn(0x15, 5, 5, 0)), pkt), /outside the program/);
  assert.throws(() => runBpf(prog(insn(0x28, 0, 0, 12)), pkt), /outside the program/);
  assert.throws(() => runBpf(new Uint8Array(4), pkt), /multiple of 8/);
});

test.run();
