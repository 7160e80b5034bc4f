// `podway trace` on what arrives from the underlay: every packet received there is traceable,
// drops included (an unencapsulated packet for a withheld pod address falls to the block's
// blackhole; a tunnel packet from a stranger is dropped before decapsulation).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Reason } from '../../src/dataplane/counters';
import { TraceSession, parseTraceFilter } from '../../src/dataplane/trace';
import { parseIpv4 } from '../../src/packet';
import { makeHarness, frame, fixIpChecksum, nothingSent, onlyFrame } from './helpers';

/** A copy of a frame (IPv4 at `at`) with its destination set to `dst`, header checksum fixed. */
function retarget(f: Uint8Array, dst: string, at = 14): Uint8Array {
  const c = f.slice();
  const d = parseIpv4(dst);
  c.set([d >>> 24, (d >>> 16) & 255, (d >>> 8) & 255, d & 255], at + 16);
  fixIpChecksum(c, at);
  return c;
}

test('unencapsulated underlay packet to a blackholed address of our block: traced to its drop', () => {
  const h = makeHarness();
  const t = new TraceSession(parseTraceFilter(['host', '10.246.0.9']), 5);
  h.pipe.trace = t;
  for (let k = 0; k < 3; k++) h.receive(h.infra.underlay, retarget(frame('underlay_rd_to_u'), '10.246.0.9'));
  nothingSent(h, 'blackhole');
  assert.is(h.pipe.counters[Reason.BLACKHOLE], 3);
  assert.is(t.records.length, 3);
  const s = t.records[0].stages.join('\n');
  assert.is(t.records[0].ingress, 'underlay(eth0)', 'named as counters and capture name the port');
  assert.match(s, /-> 10\.246\.0\.9 proto/);
  assert.match(s, /underlay: unencapsulated from/);
  assert.match(s, /lookup 10\.246\.0\.9: 10\.246\.0\.0\/\d+ blackhole/);
  assert.match(s, /drop: blackhole$/);
  // Delivered ones are traced as before; a filter that does not match opens nothing.
  const t2 = new TraceSession(parseTraceFilter(['host', '10.246.0.4']), 5);
  h.pipe.trace = t2;
  h.receive(h.infra.underlay, frame('underlay_rd_to_u'), retarget(frame('underlay_rd_to_u'), '10.246.0.9'));
  onlyFrame(h, h.port('tunU'), 'underlay to tun');
  assert.is(t2.records.length, 1);
  assert.match(t2.records[0].stages.join('\n'), /queued to port tunU/);
});

test('underlay packet to our MAC but not for a pod: traced as handed to the kernel', () => {
  const h = makeHarness();
  const t = new TraceSession(parseTraceFilter(['host', '10.99.0.50']), 5);
  h.pipe.trace = t;
  h.receive(h.infra.underlay, retarget(frame('underlay_rd_to_u'), '10.99.0.50'));
  assert.is(h.pipe.counters[Reason.UNDERLAY_NOT_FOR_PODS], 1);
  assert.is(t.records.length, 1);
  assert.match(t.records[0].stages.join('\n'), /not for a local pod \(underlay_not_for_pods\)\nhanded to the host kernel$/);
});

test('tunnel packets dropped before decapsulation are traced (socket and underlay port)', () => {
  const h = makeHarness();
  // the outer source: a node that is not a known node
  const t = new TraceSession(parseTraceFilter(['host', '10.99.0.77']), 5);
  h.pipe.trace = t;
  const stranger = frame('vxlan_rv_to_a');
  stranger.set([10, 99, 0, 77], 26);
  fixIpChecksum(stranger, 14);
  h.receive(h.infra.underlay, stranger);
  const ipip = frame('ipip_ri_to_t').subarray(14).slice();
  ipip.set([10, 99, 0, 77], 12);
  fixIpChecksum(ipip, 0);
  h.receive(h.infra.ipip, { bytes: ipip, addr: parseIpv4('10.99.0.77') });
  nothingSent(h, 'strangers');
  assert.is(h.pipe.counters[Reason.UNKNOWN_TUNNEL_SOURCE], 2);
  assert.is(t.records.length, 2);
  assert.match(t.records[0].stages.join('\n'), /vxlan \(underlay port\): outer 10\.99\.0\.77 -> 10\.99\.0\.1 \(not a known node\)\ndrop: unknown_tunnel_source$/);
  assert.match(t.records[1].stages.join('\n'), /ipip: outer 10\.99\.0\.77 -> 10\.99\.0\.1 \(not a known node\)\ndrop: unknown_tunnel_source$/);
  assert.equal(t.records.map((r) => r.ingress), ['underlay(eth0)', 'ipip(proto 4)'], 'each named after its port');
  // The VXLAN socket has no outer header: the record is the inner packet's.
  const inner = new TraceSession(parseTraceFilter(['host', '10.244.0.1']), 5);
  h.pipe.trace = inner;
  h.receive(h.infra.vxlan, { bytes: frame('vxlan_rv_to_a').subarray(42).slice(), addr: parseIpv4('10.99.0.77') });
  assert.is(inner.records.length, 1);
  assert.match(inner.records[0].stages.join('\n'), /vxlan from 10\.99\.0\.77 \(not a known node\), vni \d+\ndrop: unknown_tunnel_source$/);
  // from a known node it is delivered, one record
  h.receive(h.infra.vxlan, { bytes: frame('vxlan_rv_to_a').subarray(42).slice(), addr: parseIpv4('10.99.0.2') });
  onlyFrame(h, h.port('caliA'), 'vxlan from node2');
  assert.is(inner.records.length, 2);
  assert.match(inner.records[1].stages.join('\n'), /vxlan decap: from node 10\.99\.0\.2[^]*queued to port caliA$/);
  assert.equal(inner.records.map((r) => r.ingress), ['vxlan', 'vxlan'], 'the VXLAN socket\'s port name (the harness calls it vxlan)');
});

test.run();
