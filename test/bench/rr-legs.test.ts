// rr-tail's legs (bench/e2e/rr-legs.ts): pktgen's rr client and server in two namespaces of this
// test joined by a veth pair, tcpdump on each end's eth0, and the client's trace. Every request
// answered must be found in both captures, in both directions, and its legs must be in the order
// the packets really went (pod A's send, pod B's arrival, pod B's reply, pod A's arrival): a wrong
// TCP stream offset or UDP sequence number would match a request to another one's frames and break
// that order or leave it unmatched. No timing assertion: only the order of stamps of one run.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawn, ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { addNetns, ip, isRoot, Netns } from '../helpers/netns';
import { processGone } from '../helpers/proc';
import { legRows, legTimes, pcapFirstSecond, readPcap } from '../../bench/e2e/rr-legs';

const PKTGEN = path.resolve(__dirname, '..', '..', '..', 'build', 'Release', 'pktgen');
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function stop(p: ChildProcess, sig: NodeJS.Signals): Promise<void> {
  if (p.pid === undefined || processGone(p.pid)) return;
  p.kill(sig);
  for (let k = 0; k < 60 && !processGone(p.pid); k++) await sleep(50);
  if (!processGone(p.pid)) p.kill('SIGKILL');
}

async function tcpdump(ns: Netns, proto: string, port: number, file: string): Promise<ChildProcess> {
  const p = ns.spawn('tcpdump', ['-i', 'eth0', '-n', '-s', '128', '--time-stamp-precision=nano', '-w', file, proto, 'port', String(port)]);
  let err = '';
  p.stderr!.on('data', (d) => (err += d));
  for (let k = 0; k < 100 && !err.includes('listening on'); k++) await sleep(50);
  assert.ok(err.includes('listening on'), `tcpdump: ${err}`);
  return p;
}

for (const proto of ['tcp', 'udp'] as const) {
  test(`${proto}: every answered request matched in both captures, its legs in the packets' order`, async () => {
    assert.ok(isRoot(), 'this test needs root (network namespaces)');
    const id = `tcptail${process.pid}${proto}`;
    const a = new Netns(`${id}a`);
    const b = new Netns(`${id}b`);
    const delA = addNetns(a.name);
    const delB = addNetns(b.name);
    const tmp = mkdtempSync(path.join(os.tmpdir(), 'rr-legs-'));
    const procs: ChildProcess[] = [];
    try {
      ip('link', 'add', 'eth0', 'netns', a.name, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', b.name);
      a.ip('addr', 'add', '10.77.0.1/24', 'dev', 'eth0');
      b.ip('addr', 'add', '10.77.0.2/24', 'dev', 'eth0');
      for (const n of [a, b]) { n.ip('link', 'set', 'eth0', 'up'); n.ip('link', 'set', 'lo', 'up'); }
      const port = 7000 + (process.pid % 1000);
      const fa = path.join(tmp, 'a.pcap');
      const fb = path.join(tmp, 'b.pcap');
      const trace = path.join(tmp, 'trace');
      procs.push(await tcpdump(a, proto, port, fa), await tcpdump(b, proto, port, fb));
      const server = b.spawn(PKTGEN, ['rr-server', proto, String(port), '6']);
      procs.push(server);
      await sleep(300);
      // window 8, closed loop: requests and replies queue, so TCP packs several in one segment
      const client = spawn('ip', ['netns', 'exec', a.name, PKTGEN, 'rr-client', proto, '10.77.0.2', String(port), '64', '0', '1', '8'],
        { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, PKTGEN_RR_TRACE: trace } });
      procs.push(client);
      let out = '';
      client.stdout!.on('data', (d) => (out += d));
      const code = await Promise.race([new Promise<number | null>((r) => client.once('exit', r)), sleep(15_000).then(() => 'timeout' as const)]);
      assert.is(code, 0, `rr-client: ${out}`);
      const m = JSON.parse(out) as { sent: number; received: number };
      assert.ok(m.received > 100, out);
      await sleep(1500); // tcpdump hands a ring block over when full or after 1 s: stopped sooner it loses the last frames
      await stop(procs[0], 'SIGINT');
      await stop(procs[1], 'SIGINT');
      const base = Math.min(pcapFirstSecond(fa), pcapFirstSecond(fb));
      const t = legTimes(readPcap(fa, base), readPcap(fb, base), proto, '10.77.0.1', m.sent, 64);
      const { rows, unmatched } = legRows(readFileSync(trace, 'utf8'), t);
      assert.is(unmatched, 0);
      assert.is(rows.length, m.received);
      assert.is(new Set(rows.map((r) => r.seq)).size, rows.length, 'each reply is its own request');
      for (const r of rows) {
        const at = `request ${r.seq}: ${JSON.stringify(r)}`;
        assert.ok(r.req >= 0 && r.srv >= 0 && r.rep >= 0, at);
        // the client's stamps (CLOCK_MONOTONIC) are outside the captures' (realtime): its part of
        // the round trip is not negative, save for the two clocks' tick
        assert.ok(r.stack > -50_000, at);
        assert.ok(r.pack >= 1 && r.inPack >= 1, at);
      }
      assert.ok(t.aDataFrames >= 1 && t.bDataFrames >= 1 && t.aInFrames >= 1);
      if (proto === 'udp') assert.is(t.aMultiFrames + t.bMultiFrames + t.aInMulti, 0, 'a datagram carries one request');
    } finally {
      for (const p of procs) await stop(p, 'SIGKILL');
      delA();
      delB();
      rmSync(tmp, { recursive: true, force: true });
    }
  });
}

test.run();
