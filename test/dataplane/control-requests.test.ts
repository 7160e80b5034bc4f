// What the control socket does with requests that are not what `podway`'s own client sends (the
// socket is root's alone, but a script or a broken client can send anything): every one gets an
// answer that says what is wrong, none an internal error text, none a crash; and a trace whose
// client went away (Ctrl-C) ends at once instead of holding every other trace off until its
// timeout. A real Engine over MemoryIO (no devices, no root needed) behind a real unix socket.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { Engine } from '../../src/dataplane/engine';
import { MemoryIO } from '../../src/dataplane/memory-io';
import { createLogger } from '../../src/observe/log';
import { controlRequest, startControlServer } from '../../src/dataplane/control-server';

const dir = mkdtempSync(path.join(os.tmpdir(), 'podway-creq-'));
const sock = path.join(dir, 'ctl.sock');
const engine = new Engine({ io: new MemoryIO(), manageHost: false, ringCheckMs: 10, log: createLogger({ level: 'error', write: () => {} }) });
let server: net.Server;

test.before(async () => {
  server = startControlServer(engine, sock);
  await new Promise<void>((resolve, reject) => { server.once('listening', () => resolve()); server.once('error', reject); });
});
test.after(async () => {
  await new Promise<void>((r) => server.close(() => r()));
  engine.stop();
  rmSync(dir, { recursive: true, force: true });
});

/** Sends `text` raw and returns the answer lines until `lines` came or the server ended the
 * connection (at most 5 s). */
function raw(text: string, lines = 1): Promise<string[]> {
  return new Promise((resolve, reject) => {
    const c = net.connect(sock);
    let buf = '';
    const timer = setTimeout(() => { c.destroy(); reject(new Error(`no answer to ${JSON.stringify(text.slice(0, 80))} in 5 s: ${JSON.stringify(buf)}`)); }, 5000);
    const done = () => { clearTimeout(timer); c.destroy(); resolve(buf.split('\n').filter((l) => l !== '')); };
    c.setEncoding('utf8');
    c.on('data', (d) => { buf += d; if (buf.split('\n').filter((l) => l !== '').length >= lines) done(); });
    c.on('end', done);
    c.on('error', reject);
    c.write(text);
  });
}

const errorOf = (line: string): string => {
  const a = JSON.parse(line) as { ok: boolean; error?: string };
  assert.is(a.ok, false, `an error answer: ${line}`);
  return a.error!;
};

test('requests that are not a JSON object get an error saying so, and the connection goes on', async () => {
  const answers = await raw('null\n[]\n42\n"status"\nnot json\n{"cmd":"status"}\n', 6);
  for (const a of answers.slice(0, 4)) assert.match(errorOf(a), /^request is not a JSON object/);
  assert.match(errorOf(answers[4]), /^request is not JSON$/);
  assert.is(JSON.parse(answers[5]).ok, true, 'the status after them is answered');
});

test('a trace request with fields of the wrong type, or parentheses nested 5,000 deep, gets an error naming the field', async () => {
  assert.match(errorOf((await raw('{"cmd":"trace","filter":"abc"}\n'))[0]), /trace filter: not a list of words/);
  assert.match(errorOf((await raw('{"cmd":"trace","filter":[1,2]}\n'))[0]), /trace filter: not a list of words/);
  assert.match(errorOf((await raw(`{"cmd":"trace","filter":["${'('.repeat(5000)}"]}\n`))[0]), /parentheses nested deeper than 32/);
  assert.match(errorOf((await raw('{"cmd":"trace","count":"x"}\n'))[0]), /^count: "x" is not a positive number/);
  assert.match(errorOf((await raw('{"cmd":"trace","timeoutMs":-5}\n'))[0]), /^timeoutMs: -5 is not a positive number/);
});

test('a request longer than 64 KiB is answered with an error, not dropped without a word', async () => {
  const answers = await raw(`{"cmd":"status","pad":"${'x'.repeat(70_000)}"}\n`);
  assert.match(errorOf(answers[0]), /^request longer than 65536 bytes/);
  const noNewline = await raw('x'.repeat(70_000));
  assert.match(errorOf(noNewline[0]), /^request longer than 65536 bytes/);
});

test('"cmd":"capture" nested inside another request does not start a capture', async () => {
  const [a] = await raw('{"cmd":"status","y":{"cmd":"capture"}}\n');
  const r = JSON.parse(a) as { ok: boolean; result?: { node?: unknown } };
  assert.is(r.ok, true);
  assert.ok(r.result && !('capturing' in r.result), `a status answer: ${a.slice(0, 200)}`);
});

test('a trace whose client closed ends at once: the next trace starts (it waited for the first one\'s 60 s timeout)', async () => {
  const c = net.connect(sock);
  await new Promise<void>((r) => c.once('connect', () => r()));
  c.write('{"cmd":"trace","filter":["host","10.1.2.3"],"timeoutMs":60000}\n');
  await new Promise((r) => setTimeout(r, 200));
  // while it runs, a second one is refused
  assert.match(errorOf((await raw('{"cmd":"trace","filter":["host","10.1.2.4"],"timeoutMs":100}\n'))[0]), /a trace is already running/);
  c.destroy();
  // within 2 s (not 60) a new trace runs: answered with its (empty) records after its own 100 ms
  let answer: unknown = null;
  for (let k = 0; k < 20 && answer === null; k++) {
    await new Promise((r) => setTimeout(r, 100));
    try {
      answer = await controlRequest(sock, { cmd: 'trace', filter: ['host', '10.1.2.5'], timeoutMs: 100 });
    } catch (e) {
      if (!/already running/.test((e as Error).message)) throw e;
    }
  }
  assert.ok(answer !== null, 'a new trace ran within 2 s of the first client closing');
  assert.equal((answer as { records: unknown[] }).records, []);
});

test('a client pointed at a regular file or a directory is told so, not that podway is not running', async () => {
  const file = path.join(dir, 'not-a-socket');
  writeFileSync(file, 'x');
  const sub = path.join(dir, 'a-dir');
  mkdirSync(sub);
  const said = async (p: string) => controlRequest(p, { cmd: 'status' }, 5000).then(() => 'answered', (e: Error) => e.message);
  assert.is(await said(file), `${file} is a regular file or device, not a control socket: check --control (podway run makes the socket)`);
  assert.is(await said(sub), `${sub} is a directory, not a control socket: check --control (podway run makes the socket)`);
  assert.is(await said(path.join(dir, 'none.sock')), `podway is not running (no control socket at ${path.join(dir, 'none.sock')})`);
});

test.run();
