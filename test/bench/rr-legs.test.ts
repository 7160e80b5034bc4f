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
/** `p`'s value, or `late` after `ms` (the timer cleared either way: it does not hold the process). */
async function within<T, L>(p: Promise<T>, ms: number, late: L): Promise<T | L> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([p, new Promise<L>((r) => { timer = setTimeout(() => r(late), ms); })]);
  } finally {
    clearTimeout(timer);
  }
}

async function stop(p: ChildProcess, sig: NodeJS.Signals): Promise<void> {
  if (p.pid === undefined || processGone(p.pid)) return;
  p.kill(sig);
  for (let k = 0; k < 60 && !processGone(p.pid); k++) await sleep(50);
  if (!processGone(p.pid)) p.kill('SIGKILL');
}

/**
 * tcpdump's kernel ring (-B, KiB). At -s 128 a frame takes ~210 bytes of it, so 64 MiB hold some
 * 300,000: every frame a run of REQUESTS can make (a request, its reply and at most one pure ACK
 * each way: 4 a request) even if tcpdump gets no CPU for the whole run. The default 2 MiB held
 * ~10,000, 0.2 s of this run's ~50,000 frames a second: on a loaded machine that kept tcpdump off
 * a CPU that long, the kernel dropped the rest and their requests looked unmatched (a fresh CI run:
 * 5,058; here every run with tcpdump stopped 1.5 s while the client ran).
 */
const RING_KIB = 65536;
/** The client's requests at most (it also stops after 1 s): the bound the ring is sized for. */
const REQUESTS = 50_000;

/** tcpdump's counts: SIGUSR1 prints them on one line, its exit on three. */
interface CaptureStats { captured: number; received: number; dropped: number }
function lastStats(text: string): CaptureStats | undefined {
  let s: CaptureStats | undefined;
  for (const m of text.matchAll(/(\d+) packets? captured[\s,]+(\d+) packets? received by filter[\s,]+(\d+) packets? dropped by kernel/g)) {
    s = { captured: Number(m[1]), received: Number(m[2]), dropped: Number(m[3]) };
  }
  return s;
}

interface Capture { name: string; proc: ChildProcess; err: () => string; closed: Promise<void> }

async function tcpdump(ns: Netns, proto: string, port: number, file: string): Promise<Capture> {
  // --immediate-mode: each frame readable once the kernel wrote it (TPACKET_V2). In the default
  // TPACKET_V3 a block reaches tcpdump when full or on a timer, and one last frame of a TCP run
  // was seen to stay 30 s in the kernel's block, counted as received but not readable.
  const p = ns.spawn('tcpdump', ['-i', 'eth0', '-n', '-s', '128', '-B', String(RING_KIB), '--immediate-mode', '--time-stamp-precision=nano', '-w', file, proto, 'port', String(port)]);
  let err = '';
  p.stderr!.on('data', (d) => (err += d));
  // from the start: a listener added once it ended would never run
  const closed = new Promise<void>((r) => p.once('close', () => r()));
  const end = Date.now() + 20_000;
  while (!err.includes('listening on') && p.exitCode === null && Date.now() < end) await sleep(50);
  assert.ok(err.includes('listening on'), `tcpdump in ${ns.name}: ${err}`);
  return { name: ns.name, proc: p, err: () => err, closed };
}

/**
 * Waits until tcpdump has read every frame the kernel put in its ring (asked by SIGUSR1: captured +
 * dropped = received by filter), then ends it (SIGINT) and returns its counts. Stopped sooner, what
 * it had not read yet would be missing from the file without a word: SIGINT ends its loop at once
 * (a fixed 1.5 s wait did, with tcpdump starved on a loaded machine).
 */
async function drainAndStop(c: Capture): Promise<CaptureStats> {
  const end = Date.now() + 30_000;
  let last: CaptureStats | undefined;
  // Its own answers, 200 ms apart, with nothing more read: it has read what it can. The counts
  // seldom meet exactly: a TCP run here ended once or twice with one frame counted by the kernel
  // that tcpdump never read (no drop counted), in either ring mode; said in the failure if the
  // matching misses a request.
  let still = 0;
  for (;;) {
    const seen = c.err().length;
    c.proc.kill('SIGUSR1');
    for (let k = 0; k < 100 && lastStats(c.err().slice(seen)) === undefined; k++) await sleep(20);
    const now = lastStats(c.err().slice(seen));
    still = now && last && now.captured === last.captured ? still + 1 : 0;
    last = now ?? last;
    if (last && (last.captured + last.dropped === last.received || still >= 5)) break;
    assert.ok(Date.now() < end, `tcpdump in ${c.name} still had frames to read after 30 s: ${JSON.stringify(last)}`);
    await sleep(200);
  }
  c.proc.kill('SIGINT');
  const ended = await within(c.closed.then(() => true), 30_000, false);
  assert.ok(ended, `tcpdump in ${c.name} did not end within 30 s of SIGINT: its file may be cut short`);
  const final = lastStats(c.err());
  assert.ok(final, `tcpdump in ${c.name} ended without its counts: ${c.err()}`);
  return final!;
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
    const captures: Capture[] = [];
    try {
      ip('link', 'add', 'eth0', 'netns', a.name, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', b.name);
      a.ip('addr', 'add', '10.77.0.1/24', 'dev', 'eth0');
      b.ip('addr', 'add', '10.77.0.2/24', 'dev', 'eth0');
      for (const n of [a, b]) { n.ip('link', 'set', 'eth0', 'up'); n.ip('link', 'set', 'lo', 'up'); }
      const port = 7000 + (process.pid % 1000);
      const fa = path.join(tmp, 'a.pcap');
      const fb = path.join(tmp, 'b.pcap');
      const trace = path.join(tmp, 'trace');
      for (const [ns, f] of [[a, fa], [b, fb]] as const) {
        const c = await tcpdump(ns, proto, port, f);
        captures.push(c);
        procs.push(c.proc);
      }
      const server = b.spawn(PKTGEN, ['rr-server', proto, String(port), '6']);
      procs.push(server);
      await sleep(300);
      // window 8, closed loop: requests and replies queue, so TCP packs several in one segment
      const client = spawn('ip', ['netns', 'exec', a.name, PKTGEN, 'rr-client', proto, '10.77.0.2', String(port), '64', '0', '1', '8', String(REQUESTS)],
        { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, PKTGEN_RR_TRACE: trace } });
      procs.push(client);
      let out = '';
      client.stdout!.on('data', (d) => (out += d));
      const code = await within(new Promise<number | null>((r) => client.once('exit', r)), 15_000, 'timeout' as const);
      assert.is(code, 0, `rr-client: ${out}`);
      const m = JSON.parse(out) as { sent: number; received: number };
      assert.ok(m.received > 100, out);
      // Every frame of the run in both files, or the test says the capture lost some (not the matching).
      const counts: string[] = [];
      for (const c of captures) {
        const st = await drainAndStop(c);
        assert.is(st.dropped, 0, `tcpdump in ${c.name}: ${st.dropped} of ${st.received} frames dropped by the kernel (its ${RING_KIB} KiB ring full): the capture is incomplete`);
        counts.push(`tcpdump in ${c.name}: ${JSON.stringify(st)}`);
      }
      const base = Math.min(pcapFirstSecond(fa), pcapFirstSecond(fb));
      const t = legTimes(readPcap(fa, base), readPcap(fb, base), proto, '10.77.0.1', m.sent, 64);
      const { rows, unmatched } = legRows(readFileSync(trace, 'utf8'), t);
      assert.is(unmatched, 0, `requests not found in both captures (${counts.join('; ')})`);
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
