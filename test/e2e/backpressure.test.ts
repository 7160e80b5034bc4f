/**
 * Back-pressure from the underlay's transmit backlog, end to end (root, network namespaces): two
 * podway nodes in VXLAN, one forwarding thread each; node1's underlay eth0 is shaped by a tbf
 * (10 Mbit/s, then 2 Mbit/s, with a short queue: the qdisc refuses what it cannot take, ENOBUFS,
 * and podway's backlog takes the rest) while pod web-1 floods web-2 with UDP faster than that
 * (a few thousand datagrams a second are enough, which a loaded machine still manages), in rounds
 * of 3 s until what the case looks for happened (5 at most).
 *   - back-pressure on (the default): web-1's port is held back (HELD > 0 in `podway counters`),
 *     its frames wait in (and are dropped at) its own ring, nothing is dropped tx_full, and once
 *     the backlog drained web-1 reaches web-2 again;
 *   - `--no-backpressure`: the backlog fills to its 16,384 frames and what does not fit is dropped
 *     tx_full, which `podway capture --stage drop` shows under the underlay port with the comment
 *     `drop: tx_full`.
 * The lab is removed after the last case, on a failure, and by guard() on any exit.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { promisify } from 'node:util';
import { Lab } from '../../src/lab/lab';
import { controlRequest } from '../../src/dataplane/control-server';
import { guard, teardown, isRoot, until, Collected, nsExec, logTail, startCapture, tsharkRows } from './e2e-kit';

const dir = mkdtempSync(path.join(tmpdir(), 'podway-backpressure-'));
process.once('exit', () => rmSync(dir, { recursive: true, force: true }));

let lab: Lab | null = null;
let ok = false;

interface PortRow { port: string; rx: number; drops: number; kernelDrops: number; txFull: number; txBacklog?: number; held?: number; heldMs?: number; heldNow?: number; holding?: number; holdStalls?: number }
interface Counters { reasons: Record<string, number>; ports: PortRow[] }

async function counters(): Promise<Counters> {
  return (await controlRequest(lab!.node('node1').control, { cmd: 'counters' }, 5000)) as Counters;
}

const row = (c: Counters, name: string): PortRow | undefined => c.ports.find((p) => p.port === name);
const underlayRow = (c: Counters): PortRow => c.ports.find((p) => p.port.startsWith('underlay('))!;

/** Pod `from` sends 1,400-byte UDP datagrams to `toIp` (port 9) as fast as it can for `seconds`. */
async function flood(from: string, toIp: string, seconds: number): Promise<number> {
  const script = `const s=require('dgram').createSocket('udp4');const b=Buffer.alloc(1400);const end=Date.now()+${seconds * 1000};let n=0;` +
    `(function go(){if(Date.now()>=end){setTimeout(()=>{console.log(n);s.close();},200);return;}for(let i=0;i<64;i++){s.send(b,9,'${toIp}');n++;}setImmediate(go);})();`;
  const { stdout } = await promisify(execFile)('ip', ['netns', 'exec', lab!.pod(from).ns, process.execPath, '-e', script], { timeout: (seconds + 20) * 1000 });
  return Number(stdout.trim());
}

const capture = (args: string[], file: string): Promise<Collected> => startCapture(lab!.node('node1').control, args, file, 60_000);
const tshark = (file: string, fields: string[]): string[][] => tsharkRows(file, fields);

/** The underlay's backlog drained and no port held: the path is idle again. */
async function drained(): Promise<boolean> {
  return until(async () => {
    const c = await counters();
    return !underlayRow(c).txBacklog && c.ports.every((p) => !p.heldNow);
  }, 30_000, 200);
}

test.before(async () => {
  if (!isRoot()) throw new Error('back-pressure end-to-end tests need root (network namespaces)');
  lab = guard(new Lab([
    { name: 'node1', subnet: 'a', pods: [{ name: 'web-1', type: 'veth' }] },
    { name: 'node2', subnet: 'a', pods: [{ name: 'web-2', type: 'veth' }] },
  ]));
  lab.build();
  for (const n of ['node1', 'node2']) await lab.startPodway(n, undefined, ['--workers', '1']);
  assert.ok(await until(() => lab!.ping('web-1', lab!.pod('web-2').ip, 1, 56, ['-W', '2']).received === 1, 20_000, 200), 'web-1 reaches web-2 (the path works)');
  tbf('replace', '10mbit');
});

/** node1's underlay qdisc: a tbf at `rate` with a short queue (64 datagrams). */
function tbf(op: 'replace' | 'change', rate: string): void {
  nsExec(lab!.node('node1').ns, ['tc', 'qdisc', op, 'dev', 'eth0', 'root', 'tbf', 'rate', rate, 'burst', '16kb', 'limit', '96kb']);
}

test.after(async () => {
  if (!lab) return;
  if (!ok) console.log(logTail(lab, 30));
  await teardown(lab);
});

test('back-pressure on: web-1 is held back while the underlay\'s backlog is long, nothing is dropped tx_full, and web-1 reaches web-2 again', async () => {
  const web1 = lab!.pod('web-1');
  const c0 = await counters();
  const pod0 = row(c0, web1.ifname)!;
  let sent = 0;
  for (let k = 0; k < 5 && (row(await counters(), web1.ifname)!.held ?? 0) === (pod0.held ?? 0); k++) sent += await flood('web-1', lab!.pod('web-2').ip, 3);
  const c1 = await counters();
  const pod1 = row(c1, web1.ifname)!;
  const ul1 = underlayRow(c1);
  console.log(`  web-1 sent ${sent} datagrams; its port read ${pod1.rx - pod0.rx}, held ${(pod1.held ?? 0) - (pod0.held ?? 0)} times (${(pod1.heldMs ?? 0) - (pod0.heldMs ?? 0)} ms), ring drops ${pod1.kernelDrops - pod0.kernelDrops}; underlay txFull ${ul1.txFull - underlayRow(c0).txFull}, backlog ${ul1.txBacklog ?? 0}, holds given up ${ul1.holdStalls ?? 0}`);
  assert.ok((pod1.held ?? 0) > (pod0.held ?? 0), `web-1's port was held back: ${JSON.stringify(pod1)}`);
  assert.ok((pod1.heldMs ?? 0) >= (pod0.heldMs ?? 0), 'its held time is counted');
  assert.is(ul1.txFull, underlayRow(c0).txFull, 'no frame dropped tx_full at the underlay');
  assert.is(c1.reasons.tx_full ?? 0, c0.reasons.tx_full ?? 0, 'no tx_full drop');
  assert.ok(await drained(), `the backlog drained and web-1 is read again: ${JSON.stringify(await counters())}`);
  assert.ok(await until(() => lab!.ping('web-1', lab!.pod('web-2').ip, 1, 56, ['-W', '2']).received === 1, 20_000, 200), 'web-1 reaches web-2 again');
});

test('--no-backpressure: the backlog overflows, tx_full, and `podway capture --stage drop` shows those drops under the underlay port', async () => {
  await lab!.stopPodway('node1');
  await lab!.startPodway('node1', undefined, ['--workers', '1', '--no-backpressure']);
  const web2 = lab!.pod('web-2');
  assert.ok(await until(() => lab!.ping('web-1', web2.ip, 1, 56, ['-W', '2']).received === 1, 20_000, 200), 'web-1 reaches web-2');
  // 2 Mbit/s: the backlog overflows however slowly web-1 manages to send on a loaded machine
  tbf('change', '2mbit');
  const file = path.join(dir, 'txfull.pcapng');
  const cap = await capture(['--stage', 'drop', 'host', web2.ip, '-n', '3'], file);
  const c0 = await counters();
  let sent = 0;
  for (let k = 0; k < 5 && ((await counters()).reasons.tx_full ?? 0) === (c0.reasons.tx_full ?? 0); k++) sent += await flood('web-1', web2.ip, 3);
  const c1 = await counters();
  const ul0 = underlayRow(c0), ul1 = underlayRow(c1);
  const pod1 = row(c1, lab!.pod('web-1').ifname)!;
  const full = (c1.reasons.tx_full ?? 0) - (c0.reasons.tx_full ?? 0);
  console.log(`  web-1 sent ${sent} datagrams; underlay txFull ${ul1.txFull - ul0.txFull} (drop reason tx_full ${full}), backlog ${ul1.txBacklog ?? 0}; web-1 held ${pod1.held ?? 0} times`);
  assert.ok(full > 0, 'frames dropped tx_full');
  assert.is(full, ul1.txFull - ul0.txFull, 'the drop reason counts the underlay\'s txFull');
  assert.is(pod1.held ?? 0, 0, 'no port held without back-pressure');
  assert.is(await cap.done, 0, cap.err());
  const rows = tshark(file, ['frame.interface_name', 'frame.comment', 'ip.dst']);
  assert.is(rows.length, 3, JSON.stringify(rows));
  for (const [iface, comment, dst] of rows) {
    assert.is(iface, 'underlay(eth0)');
    assert.is(comment, 'drop: tx_full');
    assert.ok(dst.split(',').includes(web2.ip), `the VXLAN frame carries web-1's datagram for web-2 (${dst})`);
  }
  tbf('change', '1gbit');
  assert.ok(await drained(), 'the backlog drained');
  ok = true;
});

test.run();
