// A pod's own tunnel packets (UDP to the VXLAN port, IP-in-IP) are dropped and counted
// encap_from_pod, IPv4 and IPv6, as Felix's "Drop VXLAN/IPinIP encapped packets originating in
// workloads" rules in every workload chain (unless allowVXLANPacketsFromWorkloads /
// allowIPIPPacketsFromWorkloads): without them a pod could hand another node a VXLAN packet whose
// inner source is forged. Allowed, they are forwarded as any packet.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Reason, COUNTER_NAMES, COUNTER_COUNT } from '../../src/dataplane/counters';
import { makeHarness, frame, onlyFrame, nothingSent, fixIpChecksum, NODE2_MAC } from './helpers';
import { makeHarness6, frame6 } from './helpers6';

const RESOLVED = { neighbors: { '10.99.0.2': NODE2_MAC } };

/** pipe_a_to_rv (UDP A -> a pod on node2, port 8080) sent to UDP port `dport`, UDP checksum 0. */
function udpTo(dport: number, fragment?: { mf: boolean; offset8: number }): Uint8Array {
  const f = frame('a_to_rv');
  f[36] = dport >> 8;
  f[37] = dport & 255;
  f[40] = 0;
  f[41] = 0;
  if (fragment) {
    f[20] = (fragment.mf ? 0x20 : 0) | ((fragment.offset8 >> 8) & 0x1f);
    f[21] = fragment.offset8 & 255;
  }
  fixIpChecksum(f, 14);
  return f;
}

/** pipe_a_to_rv as protocol 4 (IP-in-IP). */
function ipip(): Uint8Array {
  const f = frame('a_to_rv');
  f[23] = 4;
  fixIpChecksum(f, 14);
  return f;
}

test('counter names: one name per counter, none shared, none missing', () => {
  assert.is(COUNTER_NAMES.length, COUNTER_COUNT);
  assert.is(new Set(COUNTER_NAMES).size, COUNTER_COUNT, 'two counters share an index or a name');
  for (let k = 0; k < COUNTER_COUNT; k++) assert.ok(typeof COUNTER_NAMES[k] === 'string' && COUNTER_NAMES[k].length > 0, `counter ${k} has no name`);
  assert.is(COUNTER_NAMES[Reason.ENCAP_FROM_POD], 'encap_from_pod');
});

test('IPv4: a pod\'s UDP to port 4789 and its IP-in-IP are dropped encap_from_pod; UDP to another port, and a later fragment, go on', () => {
  const h = makeHarness(RESOLVED);
  const a = h.port('caliA');
  h.receive(a, udpTo(4789));
  nothingSent(h, 'VXLAN from a pod');
  h.receive(a, ipip());
  nothingSent(h, 'IP-in-IP from a pod');
  h.receive(a, udpTo(4789, { mf: true, offset8: 0 }));
  nothingSent(h, 'the first fragment of a VXLAN datagram');
  assert.is(h.pipe.counters[Reason.ENCAP_FROM_POD], 3);
  h.receive(a, udpTo(4790));
  onlyFrame(h, h.infra.underlay, 'UDP to port 4790');
  h.receive(a, udpTo(4789, { mf: false, offset8: 185 }));
  onlyFrame(h, h.infra.underlay, 'a later fragment (no UDP header to tell by)');
  assert.is(h.pipe.counters[Reason.ENCAP_FROM_POD], 3);
});

test('IPv4: allowed (Felix\'s allowVXLANPacketsFromWorkloads / allowIPIPPacketsFromWorkloads), each is forwarded; one allowed does not allow the other', () => {
  const h = makeHarness(RESOLVED);
  const a = h.port('caliA');
  h.pipe.allowVxlanFromPods = true;
  h.receive(a, udpTo(4789));
  onlyFrame(h, h.infra.underlay, 'VXLAN from a pod, allowed');
  h.receive(a, ipip());
  nothingSent(h, 'IP-in-IP still dropped');
  h.pipe.allowIpipFromPods = true;
  h.receive(a, ipip());
  onlyFrame(h, h.infra.underlay, 'IP-in-IP from a pod, allowed');
  assert.is(h.pipe.counters[Reason.ENCAP_FROM_POD], 1);
});

/** v6pipe_a_to_b_ext (A -> B: hop-by-hop, destination options, then UDP) sent to UDP port `dport`. */
function udp6To(dport: number): Uint8Array {
  const f = frame6('v6pipe_a_to_b_ext');
  assert.is(f[14 + 40 + 8], 0x11, 'fixture: UDP after two extension headers');
  const udp = 14 + 40 + 16;
  f[udp + 2] = dport >> 8;
  f[udp + 3] = dport & 255;
  return f;
}

test('IPv6: UDP to port 4789 behind extension headers, and next header 4 (IPv4 in IPv6), dropped encap_from_pod; allowed, forwarded', () => {
  const h = makeHarness6();
  const a = h.port('caliA');
  const b = h.port('caliB');
  h.receive(a, udp6To(4789));
  nothingSent(h, 'IPv6 VXLAN from a pod');
  const v4in6 = frame6('v6pipe_a_to_b');
  v4in6[14 + 6] = 4;
  h.receive(a, v4in6);
  nothingSent(h, 'IPv4-in-IPv6 from a pod');
  assert.is(h.pipe.counters[Reason.ENCAP_FROM_POD], 2);
  h.receive(a, udp6To(4790));
  onlyFrame(h, b, 'UDP to port 4790');
  h.pipe.allowVxlanFromPods = true;
  h.pipe.allowIpipFromPods = true;
  h.receive(a, udp6To(4789));
  onlyFrame(h, b, 'IPv6 VXLAN from a pod, allowed');
  h.receive(a, v4in6);
  onlyFrame(h, b, 'IPv4-in-IPv6, allowed');
  assert.is(h.pipe.counters[Reason.ENCAP_FROM_POD], 2);
});

test.run();
