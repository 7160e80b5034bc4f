// A flood of neighbour announcements from the underlay does not flood the log: gratuitous ARPs for
// node2's address alternating between two MACs, and unsolicited override NAs for fd99::2 the same,
// 1,000 each, are all taken and counted, but logged once per neighbour (then one line per interval
// with the count). In-process on a MemoryIO, in a network namespace of its own (runPrivateNetns: a
// veth underlay holds the node's addresses).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { runPrivateNetns, sh } from '../helpers/netns';
import { Engine, NEIGHBOR_CHANGE_LOG_MS } from '../../src/dataplane/engine';
import { MemoryIO } from '../../src/dataplane/memory-io';
import { parseMac, parseIpv6Bytes, answerNeighborSolicitInPlace, writeNeighborSolicit, NS_FRAME_LEN } from '../../src/packet';
import { icmpv6FillChecksum } from '../../src/packet/icmpv6';
import { createLogger } from '../../src/observe/log';
import { clusterModel, underlayAndPodVeths } from './helpers';
import { dualStackYaml } from './helpers6';

runPrivateNetns();

const UL = 'ul0';
const engines: Engine[] = [];
const MACS = ['02:00:00:00:0a:01', '02:00:00:00:0a:02'];
const FLOOD = 1000;

test.before(() => underlayAndPodVeths(UL));

test.after(() => {
  for (const e of engines) e.stop();
});

function rig(): { engine: Engine; io: MemoryIO; ul: number; lines: () => string[] } {
  const out: string[] = [];
  const io = new MemoryIO();
  const engine = new Engine({ io, manageHost: false, ringCheckMs: 0, neighbor: { retransMs: 20_000 }, log: createLogger({ human: false, write: (s) => void out.push(s) }) });
  engines.push(engine);
  engine.apply(clusterModel('node1', dualStackYaml()));
  const ul = io.portNamed(UL);
  assert.ok(ul >= 0, 'underlay port open');
  return { engine, io, ul, lines: () => out.map((s) => (JSON.parse(s) as { msg: string }).msg) };
}

/** A gratuitous ARP (broadcast request, sender = target) for `spa` from `sha`. */
function garp(sha: string, spa: string): Uint8Array {
  const b = new Uint8Array(60);
  b.fill(0xff, 0, 6);
  b.set(parseMac(sha), 6);
  b[12] = 0x08; b[13] = 0x06;
  b.set([0, 1, 0x08, 0, 6, 4, 0, 1], 14);
  b.set(parseMac(sha), 22);
  b.set(spa.split('.').map(Number), 28);
  b.set(spa.split('.').map(Number), 38);
  return b;
}

/** An unsolicited NA (override, not solicited) for `target` from `mac`. */
function unsolicitedNa(mac: string, target: string): Uint8Array {
  const ns = new Uint8Array(NS_FRAME_LEN);
  writeNeighborSolicit(ns, 0, parseMac('02:00:00:00:00:01'), parseIpv6Bytes('fd99::1'), 0, parseIpv6Bytes(target), 0);
  const b = new Uint8Array(128);
  b.set(ns);
  const len = answerNeighborSolicitInPlace(b, 0, 14 + 40, ns.length, parseMac(mac), 0, false);
  b[14 + 40 + 4] &= ~0x40; // not solicited: an announcement
  b[14 + 40 + 2] = 0;
  b[14 + 40 + 3] = 0;
  icmpv6FillChecksum(b, 14, 14 + 40, 32);
  return b.slice(0, len);
}

const neighbor = (e: Engine, ip: string): string | null | undefined =>
  (e.status() as { neighbors: { entries: { ip: string; mac: string | null }[] } }).neighbors.entries.find((x) => x.ip === ip)?.mac;
const neighbor6 = (e: Engine, ip: string): string | null | undefined =>
  (e.status() as { neighbors6: { entries: { ip: string; mac: string | null }[] } }).neighbors6.entries.find((x) => x.ip === ip)?.mac;

/** Bound on the lines `n` changes of one neighbour may write in `ms`: the first, one per interval after. */
const bound = (ms: number) => 2 + Math.floor(ms / NEIGHBOR_CHANGE_LOG_MS);

test('1,000 gratuitous ARPs alternating two MACs: every one taken, the log gets a bounded number of lines', () => {
  const r = rig();
  const t0 = Date.now();
  for (let i = 0; i < FLOOD; i++) {
    r.io.inject(r.ul, garp(MACS[i % 2], '10.99.0.2'));
    if (i % 50 === 49) r.io.pump();
  }
  r.io.pump();
  const ms = Date.now() - t0;
  const st = r.engine.status() as { neighbors: { counters: { announced: number; macChanged: number } } };
  assert.is(st.neighbors.counters.announced, FLOOD, 'every announcement counted');
  assert.ok(st.neighbors.counters.macChanged >= FLOOD - 1, `every change counted (${st.neighbors.counters.macChanged})`);
  assert.is(neighbor(r.engine, '10.99.0.2'), MACS[(FLOOD - 1) % 2], 'the last MAC announced is the one used');
  const lines = r.lines().filter((m) => m.includes('10.99.0.2'));
  assert.ok(lines.length >= 1 && lines.length <= bound(ms), `${lines.length} lines in ${ms} ms:\n${lines.join('\n')}`);
  assert.match(lines[0], /neighbour 10\.99\.0\.2 announced 02:00:00:00:0a:0[12]/);
});

test('1,000 unsolicited NAs alternating two MACs: every one taken, the log gets a bounded number of lines', () => {
  const r = rig();
  const t0 = Date.now();
  for (let i = 0; i < FLOOD; i++) {
    r.io.inject(r.ul, unsolicitedNa(MACS[i % 2], 'fd99::2'));
    if (i % 50 === 49) r.io.pump();
  }
  r.io.pump();
  const ms = Date.now() - t0;
  assert.is(neighbor6(r.engine, 'fd99::2'), MACS[(FLOOD - 1) % 2], 'the last MAC announced is the one used');
  const st = r.engine.status() as { neighbors6: { counters: { announced: number } } };
  assert.is(st.neighbors6.counters.announced, FLOOD, 'every announcement counted');
  const lines = r.lines().filter((m) => m.includes('fd99::2'));
  assert.ok(lines.length >= 1 && lines.length <= bound(ms), `${lines.length} lines in ${ms} ms:\n${lines.join('\n')}`);
  assert.match(lines[0], /IPv6 neighbour fd99::2 is 02:00:00:00:0a:0[12]/);
});

test.run();
