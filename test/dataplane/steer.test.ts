// Flow steering between workers (steer.ts): each worker's socket filter, run by the interpreter in
// helpers.ts, takes exactly the frames of its flow index; a pod's request (read on its veth) and
// the reply (on the underlay: VXLAN over IPv4 or IPv6, IPIP, or plain) get the same index; flows
// spread over the workers; what the filter without steering drops, every worker drops.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { underlayFilter } from '../../src/dataplane/host';
import { podSteerFilter, steerIndex } from '../../src/dataplane/steer';
import { runBpf } from './helpers';

const NODE1 = 0x0a630001; // 10.99.0.1, this node
const NODE2 = 0x0a630002;
const VXLAN = 4789;

function be32(b: Uint8Array, o: number, v: number): void {
  b[o] = v >>> 24; b[o + 1] = (v >>> 16) & 255; b[o + 2] = (v >>> 8) & 255; b[o + 3] = v & 255;
}
function be16(b: Uint8Array, o: number, v: number): void {
  b[o] = (v >>> 8) & 255; b[o + 1] = v & 255;
}

/** IPv4 packet (no Ethernet): proto 6/17 with ports, 1 (ICMP) without; `frag` sets MF. */
function ip4(src: number, dst: number, proto: number, sport: number, dport: number, opts: { frag?: number; payload?: number } = {}): Uint8Array {
  const l4 = proto === 6 ? 20 : 8;
  const p = new Uint8Array(20 + l4 + (opts.payload ?? 16));
  p[0] = 0x45; be16(p, 2, p.length); be16(p, 6, opts.frag ?? 0); p[8] = 64; p[9] = proto;
  be32(p, 12, src); be32(p, 16, dst);
  if (proto === 6 || proto === 17) { be16(p, 20, sport); be16(p, 22, dport); }
  return p;
}

/** IPv6 packet (no Ethernet); addresses fd00::<a> style from two numbers. */
function ip6(src: number, dst: number, nh: number, sport: number, dport: number): Uint8Array {
  const p = new Uint8Array(40 + 8 + 16);
  p[0] = 0x60; be16(p, 4, p.length - 40); p[6] = nh; p[7] = 64;
  p[8] = 0xfd; be32(p, 20, src); p[24] = 0xfd; be32(p, 36, dst);
  if (nh === 6 || nh === 17) { be16(p, 40, sport); be16(p, 42, dport); }
  return p;
}

function eth(type: number, payload: Uint8Array): Uint8Array {
  const f = new Uint8Array(14 + payload.length);
  f.set([2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2]);
  be16(f, 12, type);
  f.set(payload, 14);
  return f;
}

const isV6 = (p: Uint8Array) => p[0] >> 4 === 6;
const ethOf = (p: Uint8Array) => eth(isV6(p) ? 0x86dd : 0x0800, p);

/** The pod's frame carried on the underlay from node2 to node1 as VXLAN over IPv4. */
function vxlan4(inner: Uint8Array, sport: number): Uint8Array {
  const innerEth = ethOf(inner);
  const u = new Uint8Array(8 + 8 + innerEth.length);
  be16(u, 0, sport); be16(u, 2, VXLAN); be16(u, 4, u.length);
  u[8] = 0x08; u.set(innerEth, 16);
  const outer = new Uint8Array(20 + u.length);
  outer[0] = 0x45; be16(outer, 2, outer.length); be16(outer, 6, 0x4000); outer[8] = 64; outer[9] = 17;
  be32(outer, 12, NODE2); be32(outer, 16, NODE1);
  outer.set(u, 20);
  return eth(0x0800, outer);
}

function vxlan6(inner: Uint8Array, sport: number): Uint8Array {
  const innerEth = ethOf(inner);
  const outer = new Uint8Array(40 + 16 + innerEth.length);
  outer[0] = 0x60; be16(outer, 4, outer.length - 40); outer[6] = 17; outer[7] = 64;
  outer[8] = 0xfd; outer[23] = 2; outer[24] = 0xfd; outer[39] = 1;
  be16(outer, 40, sport); be16(outer, 42, VXLAN); be16(outer, 44, outer.length - 40);
  outer[48] = 0x08; outer.set(innerEth, 56);
  return eth(0x86dd, outer);
}

function ipip(inner: Uint8Array): Uint8Array {
  const outer = new Uint8Array(20 + inner.length);
  outer[0] = 0x45; be16(outer, 2, outer.length); outer[8] = 64; outer[9] = 4;
  be32(outer, 12, NODE2); be32(outer, 16, NODE1);
  outer.set(inner, 20);
  return eth(0x0800, outer);
}

const podFilters = (count: number) => Array.from({ length: count }, (_, index) => podSteerFilter({ index, count }));
const underlayFilters = (count: number) => Array.from({ length: count }, (_, index) => underlayFilter(NODE1, { ipv6: true, tunnels: true, vxlanPort: VXLAN, steer: { index, count } }));

/** The one worker whose filter takes f (asserting there is exactly one), or -1 when none does. */
function taker(filters: Uint8Array[], f: Uint8Array, what: string): number {
  const took = filters.map((p, i) => (runBpf(p, f) > 0 ? i : -1)).filter((i) => i >= 0);
  assert.ok(took.length <= 1, `${what}: taken by workers ${took.join(', ')}`);
  return took.length ? took[0] : -1;
}

/** A pseudo-random sequence (the test is the same on every run). */
function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => { s = (Math.imul(s, 1664525) + 1013904223) >>> 0; return s; };
}

for (const count of [2, 3, 4]) {
  test(`${count} workers: a request and its reply (VXLAN over IPv4 and IPv6, IPIP, plain) are taken by the same single worker; flows spread`, () => {
    const pod = podFilters(count);
    const ul = underlayFilters(count);
    const per = new Array<number>(count).fill(0);
    const r = rng(count);
    const flows = 240;
    for (let k = 0; k < flows; k++) {
      const a = 0x0af40000 | (r() & 0xffff), b = 0x0af40000 | (r() & 0xffff); // 10.244.x.y
      const sport = 1024 + (r() % 60000), dport = [80, 443, 53, 8080][k % 4];
      const kind = k % 5;
      // the request as pod A sends it, the reply as pod B sends it
      const [req, rep] = kind === 4
        ? [ip6(a, b, 6, sport, dport), ip6(b, a, 6, dport, sport)]
        : kind === 3 ? [ip4(a, b, 1, 0, 0), ip4(b, a, 1, 0, 0)]
        : [ip4(a, b, kind === 1 ? 17 : 6, sport, dport), ip4(b, a, kind === 1 ? 17 : 6, dport, sport)];
      const what = `flow ${k} (kind ${kind})`;
      const w = taker(pod, ethOf(req), `${what} request`);
      assert.ok(w >= 0, `${what}: some worker takes the request`);
      assert.is(w, steerIndex(ethOf(req), count), `${what}: the filter agrees with steerIndex`);
      per[w]++;
      // the reply: by tunnel, and routed directly (crosssubnet/direct modes: plain on the underlay)
      const outerSport = 32768 + (r() % 28000); // the sending node picks it from its own hash
      const replies: [string, Uint8Array][] = [['vxlan4', vxlan4(rep, outerSport)], ['vxlan6', vxlan6(rep, outerSport)], ['plain', ethOf(rep)]];
      if (!isV6(rep)) replies.push(['ipip', ipip(rep)]);
      for (const [how, f] of replies) {
        assert.is(taker(ul, f, `${what} reply ${how}`), w, `${what}: the reply by ${how} goes to the request's worker`);
        assert.is(steerIndex(f, count, { vxlanPort: VXLAN }), w, `${what}: steerIndex of the ${how} reply`);
      }
      // the other direction of the same flow on the pod's veth (a reply to pod A routed back to it
      // is sent, not received, there; but pod B on this node would send this)
      assert.is(taker(pod, ethOf(rep), `${what} reverse on a veth`), w, `${what}: symmetric`);
    }
    for (let i = 0; i < count; i++) assert.ok(per[i] >= flows / count / 2, `worker ${i} takes its share of ${flows} flows: ${per.join('/')}`);
  });
}

test('steering: fragments by addresses (all fragments of a datagram on one worker), ARP and short or odd frames to worker 0, IPv4 options followed', () => {
  const count = 2;
  const pod = podFilters(count);
  const ul = underlayFilters(count);
  // fragments: the first (MF, with ports) and a later one (offset, no ports) go to the same worker
  for (let k = 0; k < 40; k++) {
    const a = 0x0af40100 + k, b = 0x0af40200 + 3 * k;
    const first = ethOf(ip4(a, b, 17, 1000 + k, 53, { frag: 0x2000 }));
    const later = ethOf(ip4(a, b, 17, 0, 0, { frag: 0x00b9 }));
    const icmp = ethOf(ip4(a, b, 1, 0, 0));
    const w = taker(pod, first, 'first fragment');
    assert.is(taker(pod, later, 'later fragment'), w, `fragments of ${k} on one worker`);
    assert.is(taker(pod, icmp, 'icmp'), w, 'same addresses, no ports: same worker');
  }
  // ARP, unknown ethertypes, frames too short for their IP header: worker 0 alone
  const arp = eth(0x0806, new Uint8Array(28));
  assert.is(taker(pod, arp, 'arp on a veth'), 0);
  assert.is(taker(ul, arp, 'arp on the underlay'), 0);
  assert.is(taker(pod, eth(0x88cc, new Uint8Array(40)), 'lldp'), 0);
  assert.is(taker(pod, eth(0x0800, new Uint8Array(10)), 'short IPv4'), 0);
  assert.is(taker(pod, eth(0x86dd, new Uint8Array(30)), 'short IPv6'), 0);
  // a TCP header cut off: addresses only, still exactly one worker
  const cut = ethOf(ip4(0x0af40001, 0x0af40002, 6, 1, 2)).subarray(0, 14 + 20 + 2);
  assert.is(taker(pod, cut, 'cut TCP'), steerIndex(cut, count));
  // IPv4 options: the ports after the options
  for (let k = 0; k < 20; k++) {
    const p = ip4(0x0af40001, 0x0af40002, 6, 40000 + k, 80);
    const withOpts = new Uint8Array(p.length + 4);
    withOpts.set(p.subarray(0, 20)); withOpts[0] = 0x46; withOpts.set(p.subarray(20), 24);
    assert.is(taker(pod, ethOf(withOpts), 'options'), steerIndex(ethOf(p), count), `options ${k}: the same flow's worker`);
  }
});

test('steering takes nothing the underlay filter drops, and drops nothing it takes', () => {
  const plain = underlayFilter(NODE1, { ipv6: true, tunnels: true, vxlanPort: VXLAN });
  const ul = underlayFilters(3);
  const a = 0x0af40001, b = 0x0af40102;
  const frames: [string, Uint8Array][] = [
    ['vxlan to the node', vxlan4(ip4(a, b, 6, 1, 2), 40000)],
    ['udp to the node, not vxlan', (() => { const f = vxlan4(ip4(a, b, 6, 1, 2), 40000); be16(f, 36, 53); return f; })()],
    ['tcp to the node', eth(0x0800, ip4(NODE2, NODE1, 6, 5000, 179))],
    ['outer fragment to the node', (() => { const f = vxlan4(ip4(a, b, 6, 1, 2), 40000); be16(f, 20, 0x2000); return f; })()],
    ['ipip to the node', ipip(ip4(a, b, 17, 3, 4))],
    ['routed to a pod', eth(0x0800, ip4(a, b, 17, 3, 4))],
    ['arp', eth(0x0806, new Uint8Array(28))],
    ['ipv6', eth(0x86dd, ip6(1, 2, 58, 0, 0))],
    ['vlan', eth(0x8100, new Uint8Array(60))],
    ['short', eth(0x0800, new Uint8Array(8))],
  ];
  for (const [what, f] of frames) {
    const takes = runBpf(plain, f) > 0;
    const w = taker(ul, f, what);
    assert.is(w >= 0, takes, `${what}: taken by one worker exactly when the plain filter takes it`);
  }
});

test.run();
