// `podway capture` without a running process: the pcapng writer read back by tshark, and the
// pipeline's capture tap at each stage (what it copies, the drop comment, the filter, the bound),
// the records decoded and written as pcapng and read by tshark again.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { PcapngWriter } from '../../src/dataplane/pcapng';
import { CaptureTap, Stage, readRecords, countRecords, parseStage, CaptureRecord } from '../../src/dataplane/capture';
import { parseTraceFilter } from '../../src/dataplane/trace';
import { makeHarness, frame, onlyFrame, takeAll, NODE2, Harness } from './helpers';

const dir = mkdtempSync(path.join(tmpdir(), 'podway-pcapng-'));
process.once('exit', () => rmSync(dir, { recursive: true, force: true }));
let fileNo = 0;

/** Write records as pcapng and let tshark read them: one line of fields per frame. */
function tshark(write: (w: PcapngWriter) => void, fields: string[]): string[][] {
  const parts: Uint8Array[] = [];
  const w = new PcapngWriter((b) => parts.push(b));
  w.begin();
  write(w);
  const file = path.join(dir, `t${++fileNo}.pcapng`);
  writeFileSync(file, Buffer.concat(parts));
  const out = execFileSync('tshark', ['-r', file, '-T', 'fields', '-E', 'separator=|', ...fields.flatMap((f) => ['-e', f])], { encoding: 'utf8', timeout: 30_000, stdio: ['ignore', 'pipe', 'ignore'] });
  return out.split('\n').filter((l) => l.length > 0).map((l) => l.split('|'));
}

function capture(h: Harness, stage: number, words: string[] = [], count = 100, bufferBytes?: number): CaptureTap {
  const tap = new CaptureTap({ filter: parseTraceFilter(words), stage, count, bufferBytes }, h.pipe.batch);
  h.pipe.capture = tap;
  return tap;
}

function records(tap: CaptureTap): CaptureRecord[] {
  const c = tap.take();
  return c ? [...readRecords(c)].map((r) => ({ ...r, data: r.data.slice() })) : [];
}

test('pcapng writer: tshark reads interfaces by name, timestamps, frames and comments', () => {
  const t0 = Date.UTC(2026, 0, 2, 3, 4, 5) * 1000 + 123456; // µs
  const rows = tshark((w) => {
    w.iface('caliA');
    w.packet('caliA', t0, frame('a_to_b'));
    w.packet('eth0', t0 + 1, frame('vxlan_rv_to_a'), undefined, 'drop: no_route');
    w.packet('caliA', t0 + 2, frame('arp_a_gw'));
  }, ['frame.interface_name', 'frame.time_epoch', 'ip.src', 'ip.dst', 'frame.comment', 'vxlan.vni', 'arp.dst.proto_ipv4']);
  assert.is(rows.length, 3);
  assert.equal(rows.map((r) => r[0]), ['caliA', 'eth0', 'caliA']);
  assert.is(rows[0][1], '1767323045.123456000');
  assert.equal(rows[0].slice(2, 4), ['10.244.0.1', '10.244.0.2']);
  assert.is(rows[0][4], '');
  assert.is(rows[1][4], 'drop: no_route');
  assert.is(rows[1][5], '4096', 'the VXLAN frame is decoded through its outer headers');
  assert.is(rows[2][6], '169.254.1.1');
});

test('pcapng writer: the EPB flags carry the direction (inbound at rx/decap, outbound at tx), none when not given', () => {
  const rows = tshark((w) => {
    w.packet('caliA', 1, frame('a_to_b'), undefined, '', 1);
    w.packet('caliA', 2, frame('a_to_b'), undefined, 'x', 2);
    w.packet('caliA', 3, frame('a_to_b'));
  }, ['frame.packet_flags_direction', 'frame.comment']);
  assert.equal(rows, [['0x00000001', ''], ['0x00000002', 'x'], ['', '']]);
});

test('an empty capture is a valid file (section header only)', () => {
  assert.equal(tshark(() => {}, ['frame.number']), []);
});

test('capture at rx: matching frames only, named after the ingress port, as received', () => {
  const h = makeHarness();
  const tap = capture(h, Stage.RX, ['dst', '10.244.0.2']);
  h.receive(h.port('caliA'), frame('a_to_b'), frame('arp_a_gw'));
  const rs = records(tap);
  assert.is(rs.length, 1, 'the ARP request is not dst 10.244.0.2');
  assert.is(rs[0].iface, 'caliA');
  assert.equal([...rs[0].data], [...frame('a_to_b')]);
  assert.ok(Math.abs(rs[0].tsMicros / 1000 - Date.now()) < 5000, 'a current timestamp');
  // Forwarding is unchanged by the capture.
  const sent = takeAll(h);
  assert.is(sent.get(h.port('caliB'))?.length, 1, 'forwarded while captured');
  assert.is(sent.get(h.port('caliA'))?.length, 1, 'ARP answered while captured');
});

test('capture at tx and route: the frame as sent on the output port, the routed IP packet before encapsulation', () => {
  const h = makeHarness();
  let tap = capture(h, Stage.TX, ['icmp']);
  h.receive(h.infra.vxlan, { bytes: frame('vxlan_rv_to_a').subarray(42), addr: NODE2, aport: 50000 });
  const sent = onlyFrame(h, h.port('caliA'), 'decap');
  let rs = records(tap);
  assert.is(rs.length, 1);
  assert.is(rs[0].iface, 'caliA');
  assert.equal([...rs[0].data], [...sent.bytes]);
  // To a remote pod over VXLAN: tx shows the encapsulated frame on the tunnel path, route the inner packet.
  const toRemote = tshark((w) => {
    for (const stage of [Stage.TX, Stage.ROUTE]) {
      tap = capture(h, stage);
      h.receive(h.port('caliA'), frame('a_to_rv'));
      for (const r of records(tap)) w.packet(`${r.iface}@${stage}`, r.tsMicros, r.data);
    }
  }, ['frame.interface_name', 'ip.src', 'ip.dst', 'ip.ttl', 'vxlan.vni']);
  assert.is(toRemote.length, 2, JSON.stringify(toRemote));
  assert.match(toRemote[0][0], /@3$/);
  assert.is(toRemote[0][1], '10.99.0.1,10.244.0.1', 'outer and inner sources');
  assert.is(toRemote[0][4], '4096');
  assert.match(toRemote[1][0], /@2$/);
  assert.is(toRemote[1][1], '10.244.0.1', 'route: the bare pod packet');
  assert.is(toRemote[1][3], '63', 'after the TTL decrement');
  assert.is(toRemote[1][4], '');
});

test('capture at drop: the frame as it arrived, with the reason as the packet comment', () => {
  const h = makeHarness();
  const tap = capture(h, Stage.DROP);
  h.receive(h.port('caliA'), frame('a_spoof'), frame('a_to_b'));
  h.receive(h.infra.vxlan, { bytes: frame('vxlan_rv_to_a').subarray(42), addr: 0x0a63004d, aport: 50000 });
  const rs = records(tap);
  assert.equal(rs.map((r) => [r.iface, r.comment]), [['caliA', 'drop: source_check'], ['vxlan', 'drop: unknown_tunnel_source']]);
  assert.equal([...rs[0].data], [...frame('a_spoof')]);
  const rows = tshark((w) => rs.forEach((r) => w.packet(r.iface, r.tsMicros, r.data, r.origLen, r.comment)), ['frame.comment', 'ip.src', 'udp.srcport', 'vxlan.vni']);
  assert.is(rows[0][0], 'drop: source_check');
  assert.is(rows[1][0], 'drop: unknown_tunnel_source');
  assert.is(rows[1][1], '10.99.0.77,10.244.0.65', 'the VXLAN payload with the outer headers it came in');
  assert.is(rows[1][2], '50000');
  assert.is(rows[1][3], '4096');
});

test('capture at decap: the inner frame of tunnel traffic that passed decapsulation', () => {
  const h = makeHarness();
  const tap = capture(h, Stage.DECAP);
  h.receive(h.infra.vxlan, { bytes: frame('vxlan_rv_to_a').subarray(42), addr: NODE2, aport: 50000 });
  h.receive(h.infra.vxlan, { bytes: frame('vxlan_rv_to_a').subarray(42), addr: 0x0a63004d, aport: 50000 });
  h.receive(h.port('caliA'), frame('a_to_b'));
  const rs = records(tap);
  assert.is(rs.length, 1, 'one decapsulated: not the unknown sender, not the pod packet');
  assert.equal([...rs[0].data], [...frame('vxlan_rv_to_a').subarray(50)], 'the inner Ethernet frame as decapsulated');
});

test('capture takes at most N, and a full buffer loses records (counted) instead of waiting', () => {
  const h = makeHarness();
  let tap = capture(h, Stage.RX, [], 2);
  h.receive(h.port('caliA'), frame('a_to_b'), frame('a_to_b'), frame('a_to_b'));
  assert.is(countRecords(tap.take()!), 2);
  assert.ok(tap.done);
  tap = capture(h, Stage.RX, [], 100, 150);
  h.receive(h.port('caliA'), frame('a_to_b'), frame('a_to_b'), frame('a_to_b'));
  assert.is(tap.taken + tap.lost, 3);
  assert.ok(tap.lost >= 1, `lost ${tap.lost}`);
  h.pipe.capture = null;
});

test('filters and stages that do not parse are refused naming the token', () => {
  assert.throws(() => parseTraceFilter(['host', '10.0.0.300']), /"10\.0\.0\.300"/);
  assert.throws(() => parseTraceFilter(['hots', '10.0.0.1']), /unknown word "hots"/);
  assert.throws(() => parseTraceFilter(['port', 'http']), /bad port "http"/);
  assert.throws(() => parseTraceFilter(['proto', 'sctpx']), /unknown protocol "sctpx"/);
  assert.throws(() => parseStage('egress'), /unknown stage "egress" \(use rx, decap, route, tx, drop\)/);
  assert.is(parseStage(undefined), Stage.RX);
  assert.is(parseStage('drop'), Stage.DROP);
});

test.run();
