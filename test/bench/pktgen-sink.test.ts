// The e2e benchmark's sink (bench/e2e/pktgen.c `sink`): what it counts as delivered. Frames sent
// to it on loopback by this test (no root, no namespaces): a repeated sequence number, a frame
// stamped before the sink started and frames arriving well after the last send stamp must not be
// counted as received. No timing assertion: the late frames arrive about 500 ms after the cutoff,
// the on-time ones about 1 s before it.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawn, spawnSync } from 'node:child_process';
import * as dgram from 'node:dgram';
import * as path from 'node:path';
import { exitedAndRead } from '../helpers/proc';

const PKTGEN = path.resolve(__dirname, '..', '..', '..', 'build', 'Release', 'pktgen');
const MAGIC = 0x70647779;

/** pktgen's payload: magic and sequence number big-endian, the CLOCK_MONOTONIC send time in ns host-endian. */
function frame(seq: number, tNs: bigint): Buffer {
  const b = Buffer.alloc(32);
  b.writeUInt32BE(MAGIC, 0);
  b.writeUInt32BE(seq, 4);
  b.writeBigUInt64LE(tNs, 8);
  return b;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

test('the sink counts each sequence number once, within the window: late, dup and stale apart', async () => {
  // process.hrtime is CLOCK_MONOTONIC on Linux, pktgen's clock
  const beforeSink = process.hrtime.bigint();
  const port = 20000 + (process.pid % 20000);
  const sink = spawn(PKTGEN, ['sink', String(port), '4'], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  sink.stdout!.on('data', (d) => (out += d));
  sink.stderr!.on('data', (d) => (err += d));
  // from the start: a sink that ended (its 4 s) before the sends did would never be heard of
  // by a listener added after them, and the test would hang instead of failing on its counts
  // (and its JSON read to the end: 'exit' can come before the last of its output)
  const exited = exitedAndRead(sink).then((x) => x.code);
  const sock = dgram.createSocket('udp4');
  const send = (b: Buffer) => new Promise<void>((res, rej) => sock.send(b, port, '127.0.0.1', (e) => (e ? rej(e) : res())));
  try {
    // bound: ss lists it (bounded wait, a loaded machine starts it late)
    const until = Date.now() + 10_000;
    while (Date.now() < until) {
      const ss = spawnSync('ss', ['-Hlun', 'sport', '=', `:${port}`], { encoding: 'utf8' });
      if (ss.stdout.trim()) break;
      await sleep(50);
    }
    await send(frame(999, beforeSink)); // stale: sent before the sink started
    const t = process.hrtime.bigint();
    for (let seq = 0; seq < 100; seq++) await send(frame(seq, t));
    await send(frame(5, t)); // dup
    // the last send stamp, 1 s ahead: everything above arrives well before it + 20 ms
    const last = t + 1_000_000_000n;
    await send(frame(200, last));
    // late: arrives about 500 ms after the last stamp + 20 ms
    while (process.hrtime.bigint() < last + 500_000_000n) await sleep(20);
    for (let seq = 100; seq < 110; seq++) await send(frame(seq, t));
    await send(frame(150, t)); // late too
    const code = await exited;
    assert.is(code, 0, err);
    const r = JSON.parse(out) as { received: number; late: number; dup: number; stale: number };
    assert.is(r.received, 101, out);
    assert.is(r.late, 11, out);
    assert.is(r.dup, 1, out);
    assert.is(r.stale, 1, out);
  } finally {
    sock.close();
    if (sink.exitCode === null) sink.kill('SIGKILL');
  }
});

test.run();
