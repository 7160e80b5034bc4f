// A packet from the underlay (VXLAN or IPIP decapsulated, on the sockets or the underlay port, or
// unencapsulated) whose inner source is this node's own: its address, its tunnel address, an
// address of its local table, one of its pods, an unallocated address of its own blocks. No other
// node sends one; a Calico node's kernel drops it in its source validation (a local source is a
// martian source; a pod's or a blackholed one fails strict reverse-path filtering), so podway drops
// it too, counted own_source, instead of delivering it into the pod.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Reason } from '../../src/dataplane/counters';
import { TraceSession, parseTraceFilter } from '../../src/dataplane/trace';
import { DECAP_WAYS, Harness, frame, learnTapMac, makeHarness, outcome, takeAll, withAddrs } from './helpers';

const WAYS = DECAP_WAYS;

function harness(): Harness {
  const h = makeHarness();
  learnTapMac(h);
  h.pipe.local4.set(['10.99.0.1', '192.0.2.7']);
  return h;
}

const OWN: Record<string, string> = {
  'the node\'s address': '10.99.0.1',
  'its VXLAN tunnel address (a host route)': '10.244.0.0',
  'an address of its local table': '192.0.2.7',
  'veth pod B': '10.244.0.2',
  'tap pod T': '10.245.0.3',
  'tun pod U': '10.246.0.4',
  'an unallocated address of its block (blackholed)': '10.245.0.9',
};

test('an inner source of this node\'s own is dropped own_source on every way in, not delivered to the pod', () => {
  const h = harness();
  let drops = 0;
  for (const w of WAYS) {
    for (const [what, src] of Object.entries(OWN)) {
      assert.is(outcome(h, w.port(h), () => w.send(h, src)), 'own_source', `${w.name}, from ${what} (${src})`);
      drops++;
    }
  }
  assert.is(h.pipe.counters[Reason.OWN_SOURCE], drops);
  assert.is(h.pipe.counters[Reason.DECAP_NOT_LOCAL], 0);
});

test('other nodes\' pods and addresses still get through on every way in', () => {
  const h = harness();
  for (const w of WAYS) {
    for (const src of ['10.244.0.65', '10.245.0.65', '10.246.0.65', '10.244.0.64', '10.99.0.2']) {
      assert.is(outcome(h, w.port(h), () => w.send(h, src)), 'delivered', `${w.name}, from ${src}`);
    }
  }
  assert.is(h.pipe.counters[Reason.OWN_SOURCE], 0);
});

test('to the node\'s own VXLAN tunnel address: another node\'s pod reaches the host port, one of its own pods\' addresses is dropped own_source', () => {
  const h = harness();
  const vxlan = WAYS[0];
  assert.is(outcome(h, h.infra.host, () => vxlan.send(h, '10.244.0.65', '10.244.0.0')), 'delivered');
  assert.is(outcome(h, h.infra.host, () => vxlan.send(h, '10.244.0.2', '10.244.0.0')), 'own_source');
  assert.is(outcome(h, h.infra.host, () => vxlan.send(h, '10.99.0.1', '10.244.0.0')), 'own_source');
});

test('checked after the destination, as the kernel validates a source: a blackholed destination stays blackhole, another node\'s decap_not_local; before the TTL (no time exceeded)', () => {
  const h = harness();
  for (const w of WAYS.slice(0, 4)) {
    assert.is(outcome(h, w.port(h), () => w.send(h, '10.244.0.2', '10.244.0.9')), 'blackhole', `${w.name}: blackholed destination`);
    assert.is(outcome(h, w.port(h), () => w.send(h, '10.244.0.2', '10.244.0.66')), 'decap_not_local', `${w.name}: another node's pod`);
  }
  // TTL 1 from node2's pod: answered with time exceeded (an ICMP error back through the tunnel);
  // from an own pod's address: dropped, no error sent towards the node's own pod
  const ttl1 = frame('vxlan_rv_to_a_ttl1');
  h.receive(h.infra.underlay, ttl1);
  assert.is(h.pipe.counters[Reason.TTL_EXPIRED], 1, 'node2\'s pod: ttl_expired');
  takeAll(h);
  assert.is(outcome(h, h.port('caliA'), () => h.receive(h.infra.underlay, withAddrs(ttl1, 64, '10.244.0.2'))), 'own_source');
  assert.is(h.pipe.counters[Reason.TTL_EXPIRED], 1);
});

test('traced: the source stage says whose address it is, then the drop', () => {
  const h = harness();
  const t = new TraceSession(parseTraceFilter(['host', '10.244.0.2']), 5);
  h.pipe.trace = t;
  WAYS[1].send(h, '10.244.0.2');
  WAYS[4].send(h, '10.244.0.2');
  assert.is(t.records.length, 2);
  assert.match(t.records[0].stages.join('\n'), /vxlan decap: from node 10\.99\.0\.2[^\n]*\nsource 10\.244\.0\.2: 10\.244\.0\.2\/32 local, this node's own: [^\n]*\ndrop: own_source$/);
  assert.match(t.records[1].stages.join('\n'), /underlay: unencapsulated[^]*\nsource 10\.244\.0\.2: [^\n]*\ndrop: own_source$/);
  const t2 = new TraceSession(parseTraceFilter(['host', '192.0.2.7']), 5);
  h.pipe.trace = t2;
  WAYS[2].send(h, '192.0.2.7');
  assert.match(t2.records[0].stages.join('\n'), /source 192\.0\.2\.7: an address of this node: [^\n]*\ndrop: own_source$/);
});

test.run();
