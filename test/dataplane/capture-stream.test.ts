// The capture stream without root: a real control socket in a temp dir serving a pipeline on
// in-memory I/O, the `podway capture` client writing pcapng read back by tshark; -n ends it and
// switches capture off in the pipeline; a second capture meanwhile is refused; bad input.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import type * as net from 'node:net';
import { startControlServer } from '../../src/dataplane/control-server';
import { Engine } from '../../src/dataplane/engine';
import { Taps, serveTaps } from '../../src/dataplane/taps';
import { runCapture } from '../../src/cli/capture';
import { makeHarness, frame, Harness } from './helpers';
import { within } from '../../src/lab/lab';

const dir = mkdtempSync(path.join(tmpdir(), 'podway-capstream-'));
process.once('exit', () => rmSync(dir, { recursive: true, force: true }));

/** The parts of an Engine a capture uses, on the test harness's pipeline. */
function engineOn(h: Harness): Engine {
  const e = { pipe: h.pipe, batch: h.pipe.batch, portNames: () => ['caliA', 'caliB', 'vxlan'], status: () => ({ node: 'n1' }) };
  Object.setPrototypeOf(e, Engine.prototype);
  return e as unknown as Engine;
}

async function serve(h: Harness, taps?: (engine: Engine) => Taps): Promise<{ sock: string; server: net.Server }> {
  const sock = path.join(dir, `s${Math.random().toString(36).slice(2, 8)}`, 'n1.sock');
  const engine = engineOn(h);
  const server = startControlServer(engine, sock, async () => [], { taps: taps ? taps(engine) : new Taps(engine) });
  await new Promise<void>((resolve, reject) => {
    server.once('listening', resolve);
    server.once('error', reject);
  });
  return { sock, server };
}

/** The promise must reject with a message matching re. */
async function rejects(p: () => Promise<unknown>, re: RegExp): Promise<void> {
  let err: Error | null = null;
  try {
    await p();
  } catch (e) {
    err = e as Error;
  }
  assert.ok(err, `expected a rejection matching ${re}`);
  assert.match(err!.message, re);
}

const until = async (cond: () => boolean, ms: number) => {
  const end = Date.now() + ms;
  while (!cond() && Date.now() < end) await new Promise((r) => setTimeout(r, 10));
  return cond();
};

test('the client writes N frames as pcapng, then capture is off in the pipeline', async () => {
  const h = makeHarness();
  const { sock, server } = await serve(h);
  try {
    const file = path.join(dir, 'n.pcapng');
    const said: string[] = [];
    const run = runCapture({ sock, filter: ['udp'], count: 3, write: file, say: (m) => said.push(m) });
    assert.ok(await until(() => h.pipe.capture !== null, 3000), 'the pipeline captures');
    // A second capture at the same time is refused, and leaves no file.
    const second = path.join(dir, 'second.pcapng');
    await runCapture({ sock, filter: [], write: second, say: () => {} }).then(
      () => assert.unreachable('a second capture must be refused'),
      (e) => assert.match((e as Error).message, /a capture is already running/),
    );
    assert.not.ok(existsSync(second));
    for (let k = 0; k < 4 && h.pipe.capture !== null; k++) {
      h.receive(h.port('caliA'), frame('a_to_b'), frame('arp_a_gw'));
      await new Promise((r) => setTimeout(r, 30));
    }
    const r = await run;
    assert.is(r.written, 3);
    assert.match(said[0], /capturing proto 17 at stage rx, 3 packets/);
    assert.ok(await until(() => h.pipe.capture === null, 3000), 'capture switched off after -n');
    const rows = execFileSync('tshark', ['-r', file, '-T', 'fields', '-E', 'separator=|', '-e', 'frame.interface_name', '-e', 'ip.dst', '-e', 'udp.dstport'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] })
      .trim().split('\n');
    assert.equal(rows, ['caliA|10.244.0.2|7000', 'caliA|10.244.0.2|7000', 'caliA|10.244.0.2|7000']);
  } finally {
    server.close();
  }
});

test('"capturing" is said once a worker that reads its messages late captures too: its first frame is in the file', async () => {
  const main = makeHarness();
  const worker = makeHarness();
  // A worker thread on a loaded host: it reads the capture-start message 300 ms late.
  let taps!: Taps;
  const workerSide = serveTaps(engineOn(worker), (m) => setTimeout(() => taps.handle(1, m as { type: string }), 1));
  const { sock, server } = await serve(main, (engine) => (taps = new Taps(engine, () => [{ post: (m) => setTimeout(() => workerSide(m as { type: string }), 300) }])));
  try {
    const file = path.join(dir, 'late-worker.pcapng');
    const said: string[] = [];
    const run = runCapture({ sock, filter: ['udp'], count: 2, write: file, say: (m) => said.push(m) });
    assert.ok(await until(() => said.length > 0, 5000), 'the client says it captures');
    worker.receive(worker.port('caliA'), frame('a_to_b'));
    main.receive(main.port('caliA'), frame('a_to_b'));
    const r = await within(run, 10_000, null);
    assert.ok(r !== null, 'both frames captured (the worker\'s was taken after "capturing")');
    assert.is(r!.written, 2);
    const ports = execFileSync('tshark', ['-r', file, '-T', 'fields', '-e', 'ip.dst'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim().split('\n');
    assert.equal(ports, ['10.244.0.2', '10.244.0.2']);
  } finally {
    server.close();
  }
});

test('bad input is refused before anything starts', async () => {
  const h = makeHarness();
  const { sock, server } = await serve(h);
  try {
    const say = () => {};
    await rejects(() => runCapture({ sock, filter: ['host', 'pod-a'], write: path.join(dir, 'x.pcapng'), say }), /invalid address "pod-a": expected an IPv4 or IPv6 address/);
    await rejects(() => runCapture({ sock, filter: ['or', 'icmp'], write: '-', say }), /capture filter: "or" where a filter word was expected/);
    await rejects(() => runCapture({ sock, filter: [], stage: 'ingress', write: '-', say }), /unknown stage "ingress"/);
    await rejects(() => runCapture({ sock, filter: [], count: 0, write: '-', say }), /-n must be a positive whole number/);
    await rejects(() => runCapture({ sock, filter: [], write: path.join(dir, 'missing', 'x.pcapng'), say }), /cannot write .*missing\/x\.pcapng: ENOENT/);
    await rejects(() => runCapture({ sock: path.join(dir, 'none.sock'), filter: [], write: path.join(dir, 'y.pcapng'), say }), /podway is not running/);
    assert.not.ok(existsSync(path.join(dir, 'x.pcapng')) || existsSync(path.join(dir, 'y.pcapng')), 'no files left by refused captures');
    assert.is(h.pipe.capture, null);
  } finally {
    server.close();
  }
});

test.run();
