// `podway trace` filters: the words parseTraceFilter accepts, which IPv4 packets traceMatches
// selects, and that the pipeline records only what the filter asks for, ARP included.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { parseTraceFilter, traceMatches, traceMatchesArp, describeFilter, TraceSession } from '../../src/dataplane/trace';
import { parseIpv4 } from '../../src/packet';
import { makeHarness, frame, onlyFrame, A } from './helpers';

const ip = parseIpv4;

test('parseTraceFilter: host/src/dst, protocols by name or number, port, bare address, "and"', () => {
  assert.equal(parseTraceFilter([]), {});
  assert.equal(parseTraceFilter(['host', '10.244.0.1', 'and', 'icmp']), { host: ip('10.244.0.1'), proto: 1 });
  assert.equal(parseTraceFilter(['src 10.244.0.1 and dst 10.244.0.2']), { src: ip('10.244.0.1'), dst: ip('10.244.0.2') });
  assert.equal(parseTraceFilter(['udp', 'port', '53']), { proto: 17, port: 53 });
  assert.equal(parseTraceFilter(['proto', 'tcp']), { proto: 6 });
  assert.equal(parseTraceFilter(['proto', '47']), { proto: 47 });
  assert.equal(parseTraceFilter(['ipip']), { proto: 4 });
  assert.equal(parseTraceFilter(['10.99.0.2']), { host: ip('10.99.0.2') });
  assert.equal(parseTraceFilter(['HOST', '10.99.0.2']), { host: ip('10.99.0.2') });
  assert.is(describeFilter(parseTraceFilter(['host 10.244.0.1 and udp port 53'])), 'host 10.244.0.1 and proto 17 and port 53');
  assert.is(describeFilter({}), 'all IPv4 and IPv6');
});

test('parseTraceFilter refuses what it does not understand', () => {
  assert.throws(() => parseTraceFilter(['host']), /needs a value/);
  // parseIpv4 throws first, naming the text (trace.ts's own "not an IPv4 address" is never reached).
  assert.throws(() => parseTraceFilter(['host', 'pod-a']), /invalid address "pod-a": expected an IPv4 or IPv6 address/);
  assert.throws(() => parseTraceFilter(['dst', 'bogus']), /invalid address "bogus": expected an IPv4 or IPv6 address/);
  assert.throws(() => parseTraceFilter(['src', '10.244.0.300']), /invalid IPv4 address "10\.244\.0\.300"/);
  assert.throws(() => parseTraceFilter(['pod-a']), /unknown word "pod-a"/);
  assert.throws(() => parseTraceFilter(['port', '70000']), /bad port/);
  assert.throws(() => parseTraceFilter(['port', '-1']), /bad port/);
  assert.throws(() => parseTraceFilter(['port', 'http']), /bad port/);
  assert.throws(() => parseTraceFilter(['proto', 'sctpx']), /unknown protocol/);
  assert.throws(() => parseTraceFilter(['or', 'icmp']), /"or" where a filter word was expected/);
  assert.throws(() => parseTraceFilter(['icmp', 'or']), /the end where a filter word was expected \(after "or"\)/);
  assert.throws(() => parseTraceFilter(['icmp', 'and']), /"and" needs a filter word after it/);
  assert.throws(() => parseTraceFilter(['and', 'icmp']), /"and" needs a filter word before it/);
  assert.throws(() => parseTraceFilter(['(icmp', 'or', 'udp']), /"\(" at word 1 is not closed/);
  assert.throws(() => parseTraceFilter(['icmp)']), /"\)" without its "\("/);
  assert.throws(() => parseTraceFilter(['()']), /"\)" where a filter word was expected/);
  assert.throws(() => parseTraceFilter(['host', '(10.0.0.1)']), /"host" needs a value/);
  assert.throws(() => parseTraceFilter(['(icmp or udp) and (icmp or udp) and (icmp or udp) and (icmp or udp) and (icmp or udp) and (icmp or udp)']), /more than 32 alternatives/);
});

test('parseTraceFilter: "or", "and" binding tighter (as tcpdump), parentheses expanded into or\'ed terms', () => {
  assert.equal(parseTraceFilter(['icmp', 'or', 'icmp6']), { proto: 1, or: [{ proto: 58 }] });
  assert.equal(parseTraceFilter(['host 10.244.0.1 and icmp or port 53']), { host: ip('10.244.0.1'), proto: 1, or: [{ port: 53 }] });
  assert.equal(parseTraceFilter(['icmp or udp and host 10.244.0.1']), { proto: 1, or: [{ proto: 17, host: ip('10.244.0.1') }] });
  assert.equal(parseTraceFilter(['(icmp', 'or', 'udp)', 'and', 'host', '10.244.0.1']), { proto: 1, host: ip('10.244.0.1'), or: [{ proto: 17, host: ip('10.244.0.1') }] });
  assert.equal(parseTraceFilter(['host 10.244.0.1 (icmp or (udp port 53))']), { host: ip('10.244.0.1'), proto: 1, or: [{ host: ip('10.244.0.1'), proto: 17, port: 53 }] });
  assert.equal(parseTraceFilter(['((icmp))']), { proto: 1 });
  assert.equal(parseTraceFilter(['(icmp or udp) and (src 10.244.0.1 or dst 10.244.0.1)']).or?.length, 3, 'two by two: four terms');
  assert.is(describeFilter(parseTraceFilter(['host 10.244.0.1 and icmp or port 53'])), 'host 10.244.0.1 and proto 1 or port 53');
  assert.is(describeFilter(parseTraceFilter(['(icmp or icmp6) and host fd00::1'])), 'host fd00::1 and proto 1 or host fd00::1 and proto 58');
});

test('traceMatches with "or": any term; "and" binds tighter; ARP too', () => {
  const udp = frame('a_to_b'); // 10.244.0.1:40001 -> 10.244.0.2:7000 UDP
  const m = (words: string, f: Uint8Array) => traceMatches(parseTraceFilter([words]), f, 14);
  assert.ok(m('tcp or host 10.244.0.2', udp));
  assert.ok(m('host 10.244.0.2 or tcp', udp));
  assert.not.ok(m('tcp or icmp', udp));
  // icmp or (udp and host .3): no; (icmp or udp) and host .2: yes
  assert.not.ok(m('icmp or udp and host 10.244.0.3', udp), 'and binds tighter than or');
  assert.ok(m('icmp or udp and host 10.244.0.2', udp));
  assert.ok(m('(icmp or udp) and host 10.244.0.2', udp));
  assert.not.ok(m('(icmp or udp) and host 10.244.0.3', udp));
  assert.ok(m('icmp6 or udp', udp), 'an IPv6-only term beside an IPv4 one');
  assert.ok(m('host fd00::1 or port 7000', udp));
  const gw = ip('169.254.1.1');
  assert.ok(traceMatchesArp(parseTraceFilter(['tcp or host 169.254.1.1']), A, gw));
  assert.not.ok(traceMatchesArp(parseTraceFilter(['tcp or udp']), A, gw));
});

test('traceMatches on IPv4 packets: addresses either way, protocol, L4 port either way', () => {
  const udp = frame('a_to_b'); // 10.244.0.1:40001 -> 10.244.0.2:7000 UDP
  const icmp = frame('vxlan_rv_to_a_out'); // 10.244.0.65 -> 10.244.0.1 ICMP
  const m = (words: string[], f: Uint8Array) => traceMatches(parseTraceFilter(words), f, 14);
  assert.ok(m([], udp));
  assert.ok(m(['host', '10.244.0.1'], udp));
  assert.ok(m(['host', '10.244.0.2'], udp));
  assert.not.ok(m(['host', '10.244.0.3'], udp));
  assert.ok(m(['src', '10.244.0.1'], udp));
  assert.not.ok(m(['src', '10.244.0.2'], udp));
  assert.ok(m(['dst', '10.244.0.2'], udp));
  assert.not.ok(m(['dst', '10.244.0.1'], udp));
  assert.ok(m(['udp'], udp));
  assert.not.ok(m(['tcp'], udp));
  assert.ok(m(['port', '40001'], udp));
  assert.ok(m(['port', '7000'], udp));
  assert.not.ok(m(['port', '7001'], udp));
  assert.ok(m(['host', '10.244.0.1', 'and', 'udp', 'port', '7000'], udp));
  assert.not.ok(m(['host', '10.244.0.1', 'and', 'icmp'], udp));
  assert.ok(m(['icmp'], icmp));
  // ICMP has no ports: a port filter never matches it, even when the bytes there would.
  assert.not.ok(m(['port', String((icmp[34] << 8) | icmp[35])], icmp));
  // Options move the L4 header: the ports are read after IHL*4 bytes.
  const opts = frame('a_to_b').slice(); // build a copy with IHL 6 (4 bytes of NOP options)
  const withOpts = new Uint8Array(opts.length + 4);
  withOpts.set(opts.subarray(0, 34));
  withOpts.set([1, 1, 1, 0], 34);
  withOpts.set(opts.subarray(34), 38);
  withOpts[14] = 0x46;
  assert.ok(traceMatches(parseTraceFilter(['port', '7000']), withOpts, 14));
});

test('traceMatchesArp: addresses match sender/target; a protocol or port never matches ARP', () => {
  const f = (w: string[]) => parseTraceFilter(w);
  const gw = ip('169.254.1.1');
  assert.ok(traceMatchesArp(f([]), A, gw));
  assert.ok(traceMatchesArp(f(['host', '10.244.0.1']), A, gw));
  assert.ok(traceMatchesArp(f(['host', '169.254.1.1']), A, gw));
  assert.not.ok(traceMatchesArp(f(['host', '10.244.0.2']), A, gw));
  assert.ok(traceMatchesArp(f(['src', '10.244.0.1']), A, gw));
  assert.not.ok(traceMatchesArp(f(['dst', '10.244.0.1']), A, gw));
  assert.not.ok(traceMatchesArp(f(['icmp']), A, gw));
  assert.not.ok(traceMatchesArp(f(['port', '53']), A, gw));
});

test('pipeline trace: ARP requests are recorded only when they match the filter', () => {
  const h = makeHarness();
  const t = new TraceSession(parseTraceFilter(['host', '10.244.0.2']), 5);
  h.pipe.trace = t;
  h.receive(h.port('caliA'), frame('arp_a_gw'));
  onlyFrame(h, h.port('caliA'), 'A answered');
  assert.is(t.records.length, 0, "A's ARP is not host 10.244.0.2");
  h.receive(h.port('caliB'), frame('arp_b_gw'));
  onlyFrame(h, h.port('caliB'), 'B answered');
  assert.is(t.records.length, 1, "B's ARP is recorded");
  assert.is(t.records[0].ingress, 'caliB');
  assert.match(t.records[0].stages[0], /arp who-has 169\.254\.1\.1/);
  // A protocol filter never records ARP.
  const t2 = new TraceSession(parseTraceFilter(['udp']), 5);
  h.pipe.trace = t2;
  h.receive(h.port('caliB'), frame('arp_b_gw'));
  onlyFrame(h, h.port('caliB'), 'B answered again');
  assert.is(t2.records.length, 0);
});

test('pipeline trace: IPv4 packets are recorded stage by stage when they match, and the session ends when full', () => {
  const h = makeHarness();
  const t = new TraceSession(parseTraceFilter(['dst', '10.244.0.2']), 2);
  h.pipe.trace = t;
  h.receive(h.port('caliA'), frame('a_spoof'), frame('vxlan_rv_to_a_out'));
  assert.is(t.records.length, 1, 'the spoofed packet to B, not the ICMP to A');
  assert.equal(t.records[0].stages.slice(-1), ['drop: source_check']);
  h.receive(h.port('caliA'), frame('a_to_b'));
  onlyFrame(h, h.port('caliB'), 'traced packet still forwarded');
  assert.is(t.records.length, 2);
  const stages = t.records[1].stages.join('\n');
  assert.match(stages, /source check: 10\.244\.0\.1 belongs to caliA: pass/);
  assert.match(stages, /ttl 64 -> 63/);
  assert.match(stages, /queued to port caliB/);
  assert.is(h.pipe.trace, null, 'full: tracing stops');
  // Once stopped, nothing more is recorded.
  h.receive(h.port('caliA'), frame('a_to_b'));
  onlyFrame(h, h.port('caliB'), 'after the trace');
  assert.is(t.records.length, 2);
});

test.run();
