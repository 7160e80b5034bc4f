/**
 * `podway capture` and `podway top` against a running `podway run --workers 2` on a namespace
 * node: pings captured at rx, tx and drop (the reason as the packet comment) and read back with
 * tshark; at decap in a dual-stack lab, IPv4 VXLAN and VXLAN over IPv6 as their inner frames; `-w -` piped into `tcpdump -r -`; sixteen UDP flows spread over both workers all
 * captured; Ctrl-C ends a capture and switches it off in the dataplane; bad input refused; and
 * `podway top` once and in a pseudo-terminal (script) showing the pod's port with traffic.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, existsSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { Lab } from '../../src/lab/lab';
import { controlRequest } from '../../src/dataplane/control-server';
import { guard, teardown, isRoot, backgroundPing, until, sleep, spawnCollected, Collected } from './e2e-kit';

const BIN = path.resolve(__dirname, '..', '..', '..', 'bin', 'podway.js');
const dir = mkdtempSync(path.join(tmpdir(), 'podway-capture-'));
process.once('exit', () => rmSync(dir, { recursive: true, force: true }));

type Proc = Collected;

/** Run the CLI (or a shell pipeline) in the background, bounded in time. */
function start(cmd: string, args: string[], limitMs = 30_000): Proc {
  return spawnCollected(cmd, args, limitMs, { stdin: 'pipe' });
}

function podway(args: string[], limitMs?: number): Proc {
  return start(process.execPath, [BIN, ...args], limitMs);
}

/** Start a capture and wait until the dataplane has it running (the client says so). */
async function capture(sock: string, args: string[], file: string): Promise<Proc> {
  const p = podway(['capture', '--control', sock, ...args, '-w', file]);
  const up = await until(() => /capturing/.test(p.err()) || p.proc.exitCode !== null, 10_000);
  assert.ok(up && p.proc.exitCode === null, `capture started: ${p.err()}`);
  return p;
}

/** Packets (pcapng Enhanced Packet Blocks, little-endian as podway writes them) in the whole
 * blocks of a capture file written so far. */
function packetsIn(file: string): number {
  let b: Buffer;
  try {
    b = readFileSync(file);
  } catch {
    return 0;
  }
  let n = 0;
  for (let off = 0; off + 12 <= b.length;) {
    const len = b.readUInt32LE(off + 4);
    if (len < 12 || off + len > b.length) break;
    if (b.readUInt32LE(off) === 6) n++;
    off += len;
  }
  return n;
}

function tshark(file: string, fields: string[], filter?: string): string[][] {
  const out = execFileSync('tshark', ['-r', file, ...(filter ? ['-Y', filter] : []), '-T', 'fields', '-E', 'separator=|', ...fields.flatMap((f) => ['-e', f])], { encoding: 'utf8', timeout: 30_000, stdio: ['ignore', 'pipe', 'ignore'] });
  return out.split('\n').filter((l) => l.length > 0).map((l) => l.split('|'));
}

/** Send one UDP datagram from each of `flows` source ports, from inside a pod's namespace. */
function udpFlows(ns: string, dst: string, flows: number): void {
  const js = `const d=require('dgram');let left=${flows};for(let k=0;k<${flows};k++){const s=d.createSocket('udp4');s.bind(41000+k,()=>s.send(Buffer.from('podway capture '+k),7777,'${dst}',()=>{s.close();if(--left===0)process.exit(0)}))}setTimeout(()=>process.exit(1),5000)`;
  execFileSync('ip', ['netns', 'exec', ns, process.execPath, '-e', js], { timeout: 15_000 });
}

const strip = (s: string) => s.replace(/\x1b\[[0-9;?]*[a-zA-Z]/g, '').replace(/\r/g, '');

test('capture at rx, tx and drop, to stdout, across workers; top shows the traffic', async () => {
  assert.ok(isRoot(), 'needs root (network namespaces)');
  const lab = guard(new Lab([
    { name: 'node1', subnet: 'a', pods: [{ name: 'web-1', type: 'veth' }] },
    { name: 'node2', subnet: 'a', pods: [{ name: 'web-2', type: 'veth' }] },
  ]));
  try {
    lab.build();
    await lab.startPodway('node1', 15_000, ['--workers', '2']);
    await lab.startPodway('node2');
    const n1 = lab.node('node1');
    const sock = n1.control;
    const web1 = lab.pod('web-1');
    const web2 = lab.pod('web-2');
    assert.is(lab.ping('web-1', web2.ip, 3).loss, 0, 'the path works before any capture');

    // rx: three echo requests from the pod's veth, three replies from the VXLAN socket.
    const rxFile = path.join(dir, 'rx.pcapng');
    const rx = await capture(sock, ['icmp', 'and', 'host', web2.ip, '-n', '6'], rxFile);
    const ping1 = backgroundPing(lab, 'web-1', web2.ip, 3, 0.2);
    assert.is(await rx.done, 0, rx.err());
    assert.is((await ping1.done).received, 3);
    assert.match(rx.err(), /6 packets captured/);
    const rows = tshark(rxFile, ['frame.interface_name', 'ip.src', 'ip.dst', 'icmp.type']);
    assert.is(rows.length, 6, JSON.stringify(rows));
    assert.equal(tshark(rxFile, ['frame.packet_flags_direction']).map((r) => r[0]), Array(6).fill('0x00000001'), 'rx: inbound (EPB flags)');
    const requests = rows.filter((r) => r[3] === '8');
    const replies = rows.filter((r) => r[3] === '0');
    assert.is(requests.length, 3);
    assert.is(replies.length, 3);
    for (const r of requests) assert.equal(r.slice(0, 3), [web1.ifname, web1.ip, web2.ip]);
    for (const r of replies) {
      assert.is(r[0], 'underlay(eth0)', 'replies arrive on the underlay port (tunnels are taken there: nft-tunnels.ts)');
      assert.is(r[1], `${lab.node('node2').ip},${web2.ip}`, 'outer (node2) and inner (web-2) source');
      assert.is(r[2], `${n1.ip},${web1.ip}`);
    }
    // Every port is described up front, named as podway names it.
    const names = execFileSync('tshark', ['-r', rxFile, '-T', 'fields', '-e', 'frame.interface_name'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
    assert.ok(names.includes(web1.ifname));

    // tx: requests leave encapsulated on the underlay (or through the kernel's raw socket), replies to the pod.
    const txFile = path.join(dir, 'tx.pcapng');
    const tx = await capture(sock, ['--stage', 'tx', 'icmp', 'and', 'host', web2.ip, '-n', '4'], txFile);
    const ping2 = backgroundPing(lab, 'web-1', web2.ip, 2, 0.2);
    assert.is(await tx.done, 0, tx.err());
    await ping2.done;
    const txRows = tshark(txFile, ['frame.interface_name', 'ip.dst', 'icmp.type', 'ip.ttl', 'vxlan.vni']);
    assert.is(txRows.length, 4, JSON.stringify(txRows));
    assert.equal(tshark(txFile, ['frame.packet_flags_direction']).map((r) => r[0]), Array(4).fill('0x00000002'), 'tx: outbound (EPB flags)');
    for (const r of txRows.filter((x) => x[2] === '8')) {
      assert.match(r[0], /^(underlay\(eth0\)|tx4\(raw\))$/);
      assert.is(r[1], `${lab.node('node2').ip},${web2.ip}`);
      assert.is(r[4], '4096');
      assert.is(r[3].split(',')[1], '63', 'the inner TTL after this hop');
    }
    for (const r of txRows.filter((x) => x[2] === '0')) assert.equal([r[0], r[1]], [web1.ifname, web1.ip]);

    // drop: an unallocated address of node1's own block is Calico's blackhole.
    const hole = '10.244.0.40';
    const dropFile = path.join(dir, 'drop.pcapng');
    const drop = await capture(sock, ['--stage', 'drop', 'host', hole, '-n', '2'], dropFile);
    lab.ping('web-1', hole, 2);
    assert.is(await drop.done, 0, drop.err());
    const dropRows = tshark(dropFile, ['frame.interface_name', 'ip.dst', 'frame.comment']);
    assert.equal(dropRows, [[web1.ifname, hole, 'drop: blackhole'], [web1.ifname, hole, 'drop: blackhole']]);

    // -w - into tcpdump.
    const pipe = start('bash', ['-c', `set -o pipefail; "${process.execPath}" "${BIN}" capture --control "${sock}" icmp and host ${web2.ip} -n 4 -w - | tcpdump -n -r - 2>/dev/null`]);
    await until(() => /capturing/.test(pipe.err()), 10_000);
    const ping3 = backgroundPing(lab, 'web-1', web2.ip, 2, 0.2);
    assert.is(await pipe.done, 0, pipe.err());
    await ping3.done;
    // tcpdump shows a VXLAN frame on two lines (outer, then inner).
    const lines = pipe.out().trim().split('\n');
    assert.is(lines.filter((l) => /ICMP echo/.test(l)).length, 4, pipe.out());
    assert.is(lines.filter((l) => /VXLAN, flags \[I\] \(0x08\), vni 4096/.test(l)).length, 2, pipe.out());
    assert.is(lines.filter((l) => l.includes(`${web1.ip} > ${web2.ip}: ICMP echo request`)).length, 2, pipe.out());
    assert.is(lines.filter((l) => l.includes(`${web2.ip} > ${web1.ip}: ICMP echo reply`)).length, 2, pipe.out());

    // Both workers: 16 UDP flows spread by PACKET_FANOUT; all of them are captured.
    const before = (await controlRequest(sock, { cmd: 'counters' })) as { ports: { port: string; rx: number }[] };
    const udpFile = path.join(dir, 'udp.pcapng');
    const udp = await capture(sock, ['udp', 'and', 'dst', web2.ip, 'and', 'port', '7777', '-n', '16'], udpFile);
    udpFlows(web1.ns, web2.ip, 16);
    assert.is(await udp.done, 0, udp.err());
    const after = (await controlRequest(sock, { cmd: 'counters' })) as { ports: { port: string; rx: number }[] };
    const grew = (w: number) => (after.ports.find((p) => p.port === `${web1.ifname} [w${w}]`)?.rx ?? 0) - (before.ports.find((p) => p.port === `${web1.ifname} [w${w}]`)?.rx ?? 0);
    assert.ok(grew(0) > 0 && grew(1) > 0, `the flows were spread over both workers (${grew(0)}, ${grew(1)})`);
    const ports = tshark(udpFile, ['udp.srcport']).map((r) => Number(r[0])).sort((a, b) => a - b);
    assert.equal(ports, Array.from({ length: 16 }, (_, k) => 41000 + k), 'every flow, whichever worker had it');

    // trace covers both workers too. The answer comes when the trace is over, so nothing says when
    // each worker has started it: the flows go again every 0.5 s until 16 records came.
    let traced = false;
    const trace = controlRequest(sock, { cmd: 'trace', filter: ['udp', 'port', '7777'], count: 16, timeoutMs: 20_000 }, 25_000).finally(() => (traced = true));
    await until(() => {
      if (!traced) udpFlows(web1.ns, web2.ip, 16);
      return traced;
    }, 20_000, 500);
    const tr = (await trace) as { records: { ingress: string }[] };
    assert.is(tr.records.length, 16);
    assert.ok(tr.records.some((r) => r.ingress.endsWith('[w0]')) && tr.records.some((r) => r.ingress.endsWith('[w1]')), JSON.stringify(tr.records.map((r) => r.ingress)));

    // Ctrl-C: the client ends cleanly, the file is valid, and the dataplane switched capture off
    // (a new capture may start at once).
    const intFile = path.join(dir, 'int.pcapng');
    const int = await capture(sock, ['icmp'], intFile);
    assert.is(lab.ping('web-1', web2.ip, 1).received, 1);
    // the reply's record reaches the client after the reply itself: Ctrl-C once both are written
    assert.ok(await until(() => packetsIn(intFile) >= 2, 10_000), `request and reply written: ${packetsIn(intFile)}`);
    int.proc.kill('SIGINT');
    assert.is(await int.done, 0, int.err());
    assert.match(int.err(), /2 packets captured/);
    assert.is(tshark(intFile, ['frame.number']).length, 2);
    const again = await capture(sock, ['icmp', '-n', '1'], path.join(dir, 'again.pcapng'));
    lab.ping('web-1', web2.ip, 1);
    assert.is(await again.done, 0, again.err());

    // Bad input.
    // A bad filter is a bad argument (2, as trace), named as capture's.
    const bad = podway(['capture', '--control', sock, 'host', '10.244.0.300', '-w', path.join(dir, 'bad.pcapng')]);
    assert.is(await bad.done, 2);
    assert.match(bad.err(), /capture filter: invalid IPv4 address "10\.244\.0\.300"/);
    assert.not.ok(existsSync(path.join(dir, 'bad.pcapng')), 'no file for a capture that never started');
    const word = podway(['capture', '--control', sock, 'hots', web2.ip, '-w', '-']);
    assert.is(await word.done, 2);
    assert.match(word.err(), /capture filter: unknown word "hots"/);
    const unwritable = podway(['capture', '--control', sock, 'icmp', '-w', path.join(dir, 'no-such-dir', 'x.pcapng')]);
    assert.is(await unwritable.done, 1);
    assert.match(unwritable.err(), /cannot write .*no-such-dir\/x\.pcapng: ENOENT/);
    const notRunning = podway(['capture', '--control', path.join(dir, 'nobody.sock'), '-w', path.join(dir, 'none.pcapng')]);
    assert.is(await notRunning.done, 1);
    assert.match(notRunning.err(), /podway is not running/);
    const stage = podway(['capture', '--control', sock, '--stage', 'egress', '-w', '-']);
    assert.is(await stage.done, 2, 'commander refuses an unknown stage');
    assert.match(stage.err(), /egress/);

    // top: once (not a terminal), and in a pseudo-terminal until q, under a steady ping.
    const load = backgroundPing(lab, 'web-1', web2.ip, 600, 0.02);
    await sleep(500);
    const once = podway(['top', '--control', sock]);
    assert.is(await once.done, 0, once.err());
    const row = once.out().split('\n').find((l) => l.startsWith(web1.ifname));
    assert.ok(row, once.out());
    const [, rxPps, txPps, rxBps] = row!.split(/\s+/);
    assert.ok(Number(rxPps) > 10 && Number(txPps) > 10, `pps under a 50/s ping: ${row}`);
    assert.match(rxBps, /k$/, 'kilobits per second');
    const routesPart = once.out().split('BUSIEST ROUTES')[1] ?? '';
    const remote = routesPart.split('\n').find((l) => /^10\.244\.0\.64\/26 +vxlan +node2 /.test(l));
    assert.ok(remote && Number(remote.split(/\s+/)[3]) > 10, `the remote block's route is busy: ${routesPart}`);
    const tty = start('script', ['-qfec', `"${process.execPath}" "${BIN}" top --control "${sock}"`, '/dev/null'], 20_000);
    await until(() => (strip(tty.out()).match(/PORTS/g) ?? []).length >= 2, 15_000);
    tty.proc.stdin!.write('q');
    assert.is(await tty.done, 0, strip(tty.out()));
    const screen = strip(tty.out());
    const frames = screen.split('podway top - node node1').slice(1);
    assert.ok(frames.length >= 2, `redrawn every second: ${frames.length} frames`);
    const last = frames[frames.length - 1].split('\n').find((l) => l.startsWith(web1.ifname));
    assert.ok(last && Number(last.split(/\s+/)[1]) > 10, `the pod row with traffic in the terminal view: ${last}`);
    load.proc.kill('SIGINT');
    assert.ok((await load.done).received > 50);
  } finally {
    await teardown(lab);
  }
});

test('capture at decap, dual-stack: IPv4 VXLAN replies as their inner frames, and IPv6 VXLAN replies (from the underlay port) as inner IPv6 frames', async () => {
  assert.ok(isRoot(), 'needs root (network namespaces)');
  const lab = guard(new Lab([
    { name: 'node1', subnet: 'a', pods: [{ name: 'web-1', type: 'veth' }] },
    { name: 'node2', subnet: 'a', pods: [{ name: 'web-2', type: 'veth' }] },
  ], { dualStack: true }));
  try {
    lab.build();
    await lab.startPodway('node1');
    await lab.startPodway('node2');
    const sock = lab.node('node1').control;
    const web1 = lab.pod('web-1');
    const web2 = lab.pod('web-2');
    assert.ok(web1.ip6 && web2.ip6, 'pods with IPv6 addresses');
    assert.ok(await until(() => lab.ping('web-1', web2.ip6!, 1).received === 1, 15_000, 200), 'IPv6 path up');
    assert.is(lab.ping('web-1', web2.ip, 2).loss, 0, 'IPv4 path up');

    // IPv4: the replies from node2 arrive on the underlay port (tunnels are taken there:
    // nft-tunnels.ts); decap takes the inner frame
    const v4File = path.join(dir, 'decap4.pcapng');
    const v4 = await capture(sock, ['--stage', 'decap', 'icmp', 'and', 'host', web2.ip, '-n', '3'], v4File);
    const ping4 = backgroundPing(lab, 'web-1', web2.ip, 3, 0.2);
    assert.is(await v4.done, 0, v4.err());
    assert.is((await ping4.done).received, 3);
    const rows4 = tshark(v4File, ['frame.interface_name', 'ip.src', 'ip.dst', 'icmp.type', 'vxlan.vni']);
    assert.is(rows4.length, 3, JSON.stringify(rows4));
    for (const r of rows4) {
      assert.is(r[0], 'underlay(eth0)');
      assert.equal(r.slice(1), [web2.ip, web1.ip, '0', ''], 'the inner packet alone: no outer headers, no VXLAN');
    }

    // IPv6: node2's replies come as VXLAN over IPv6 on node1's underlay port; the filter names the
    // inner addresses and protocol, and the records are the inner IPv6 frames
    const v6File = path.join(dir, 'decap6.pcapng');
    const v6 = await capture(sock, ['--stage', 'decap', 'icmp6', 'and', 'host', web2.ip6!, '-n', '3'], v6File);
    const ping6 = backgroundPing(lab, 'web-1', web2.ip6!, 3, 0.2);
    assert.is(await v6.done, 0, v6.err());
    assert.is((await ping6.done).received, 3);
    assert.match(v6.err(), /3 packets captured/);
    const rows6 = tshark(v6File, ['frame.interface_name', 'ipv6.src', 'ipv6.dst', 'icmpv6.type', 'ipv6.hlim', 'udp.dstport', 'vxlan.vni']);
    assert.is(rows6.length, 3, JSON.stringify(rows6));
    for (const r of rows6) {
      assert.match(r[0], /^underlay\(/, 'VXLAN over IPv6 is decapsulated from the underlay port');
      assert.equal(r.slice(1), [web2.ip6!, web1.ip6!, '129', '63', '', ''], 'the inner echo reply, hop limit after node2, no outer headers');
    }
  } finally {
    await teardown(lab);
  }
});


test.run();
