/**
 * I/O micro-benchmark: podway's batched addon I/O against the per-packet peers a user would pick,
 * for each port kind, measured in the same run between network namespaces this script creates
 * (10.231.0.0/24 over a veth, 10.232.0.0/24 behind a TAP; nothing is sent anywhere else).
 *
 *   npm run bench:io                    # markdown table
 *   npm run bench:io -- --json          # one JSON object per row
 *   npm run bench:io -- --ms 1000 --rounds 2 --only udp,raw
 *
 * Every measured loop runs in a child (bench/io-peer.ts) started with `ip netns exec NS node ...`,
 * batched and per-packet alike. Each variant runs `--rounds` windows of `--ms`, interleaved ABBA
 * with the variants it is compared with, so load from other work on the machine hits both sides.
 * Needs root. See bench/README.md for what each row means.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import { withNetns, veth, Netns, sleep, isRoot } from '../test/helpers/netns';
import { Peer } from './io-proc';
import { benchArgsOrExit } from './e2e/bench-args';

const BENCH_ARGS = { usage: 'usage: node dist/bench/io.js [--json] [--ms WINDOW_MS] [--rounds N] [--batch N] [--only udp,raw,packet,tap]', flags: ['--json'], options: ['--ms', '--batch', '--rounds', '--only'] };

interface Opts { json: boolean; ms: number; batch: number; rounds: number; only: Set<string> }

function parseArgs(argv: string[]): Opts {
  const o: Opts = { json: false, ms: 1000, batch: 64, rounds: 2, only: new Set(['udp', 'raw', 'packet', 'tap']) };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--json') o.json = true;
    else if (a === '--ms') o.ms = Number(argv[++i]);
    else if (a === '--batch') o.batch = Number(argv[++i]);
    else if (a === '--rounds') o.rounds = Number(argv[++i]);
    else if (a === '--only') o.only = new Set(argv[++i].split(','));
    else if (a === '--help' || a === '-h') {
      process.stdout.write('usage: node dist/bench/io.js [--json] [--ms WINDOW_MS] [--rounds N] [--batch N] [--only udp,raw,packet,tap]\n');
      process.exit(0);
    } else throw new Error(`unknown argument ${a}`);
  }
  if (!(o.ms >= 100 && o.ms <= 5000)) throw new Error('--ms must be 100..5000 (the whole run must stay bounded)');
  if (!(o.rounds >= 1 && o.rounds <= 6)) throw new Error('--rounds must be 1..6');
  if (!(o.batch >= 1 && o.batch <= 1024)) throw new Error('--batch must be 1..1024');
  return o;
}

interface Row {
  kind: string;
  direction: string;
  batched: string;
  perPacket: string;
  batchedPps: number;
  perPacketPps: number;
  ratio: number;
  note: string;
  /** per-round pps, in run order */
  batchedRounds: number[];
  perPacketRounds: number[];
}

function machine() {
  const cpuinfo = fs.readFileSync('/proc/cpuinfo', 'utf8');
  const model = /^model name\s*:\s*(.*)$/m.exec(cpuinfo)?.[1]?.trim() ?? os.cpus()[0]?.model ?? '?';
  return {
    cpu: model,
    cores: os.cpus().length,
    kernel: os.release(),
    node: process.version,
    date: new Date().toISOString(),
    loadavg1: Number(os.loadavg()[0].toFixed(2)),
  };
}

const log = (s: string) => process.stderr.write(s + '\n');

/** Counters from /proc/net/snmp inside a namespace: `Udp.InDatagrams`, `Ip.InDelivers`, ... */
function snmp(ns: Netns): Record<string, number> {
  const text = ns.exec('cat', ['/proc/net/snmp']);
  const lines = text.trim().split('\n');
  const out: Record<string, number> = {};
  for (let i = 0; i + 1 < lines.length; i += 2) {
    const [proto, ...keys] = lines[i].split(/\s+/);
    const vals = lines[i + 1].split(/\s+/).slice(1);
    keys.forEach((k, j) => { out[`${proto.replace(':', '')}.${k}`] = Number(vals[j]); });
  }
  return out;
}

function delta(a: Record<string, number>, b: Record<string, number>, k: string): number {
  return (b[k] ?? 0) - (a[k] ?? 0);
}

function macOf(ns: Netns, dev: string): string {
  return ns.ip('-br', 'link', 'show', dev).trim().split(/\s+/)[2];
}

type Res = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

/** Sums over the rounds of one variant (a sender or receiver configuration). */
interface Acc {
  /** sender: datagrams accepted inside the measured windows, and those windows (ms) */
  sent: number; ms: number;
  /** sender: everything sent including warm-up, and the sending time (ms) */
  sentTotal: number; msTotal: number;
  /** receiver: frames it read */
  rx: number;
  errors: number; lastError?: string;
  /** sums of counter deltas (snmp, kernel drops, ...) */
  c: Record<string, number>;
  /** per-round figures: sender-side pps and receiver-side pps */
  sendRounds: number[]; rxRounds: number[];
}

const newAcc = (): Acc => ({ sent: 0, ms: 0, sentTotal: 0, msTotal: 0, rx: 0, errors: 0, c: {}, sendRounds: [], rxRounds: [] });

function add(acc: Acc, tx: Res, rxCount: number, counters: Record<string, number>): void {
  acc.sent += tx.sent; acc.ms += tx.ms; acc.sentTotal += tx.sentTotal; acc.msTotal += tx.msTotal;
  acc.rx += rxCount;
  acc.errors += tx.errors ?? 0;
  if (tx.lastError) acc.lastError = tx.lastError;
  for (const [k, v] of Object.entries(counters)) acc.c[k] = (acc.c[k] ?? 0) + v;
  acc.sendRounds.push(Math.round((tx.sent / tx.ms) * 1000));
  acc.rxRounds.push(Math.round((rxCount / tx.msTotal) * 1000));
}

/** Sender-side pps: datagrams the kernel accepted per second inside the measured windows. */
const sendPps = (a: Acc) => (a.ms > 0 ? (a.sent / a.ms) * 1000 : 0);
/** Receiver-side pps: frames read over the sender's whole sending time (warm-up included). */
const rxPps = (a: Acc) => (a.msTotal > 0 ? (a.rx / a.msTotal) * 1000 : 0);
/** What the sender offered over the same time. */
const offeredPps = (a: Acc) => (a.msTotal > 0 ? (a.sentTotal / a.msTotal) * 1000 : 0);
/** A counter delta per second of sending. */
const perSec = (a: Acc, k: string) => (a.msTotal > 0 ? ((a.c[k] ?? 0) / a.msTotal) * 1000 : 0);

/** Round r runs the variants forwards when even, backwards when odd (ABBA: linear drift cancels). */
function order<T>(xs: readonly T[], r: number): T[] {
  return r % 2 === 0 ? [...xs] : [...xs].reverse();
}

function snmpDeltas(ns: Netns, keys: string[], s0: Record<string, number>): Record<string, number> {
  const s1 = snmp(ns);
  const o: Record<string, number> = {};
  for (const k of keys) o[k] = delta(s0, s1, k);
  return o;
}

/**
 * Several senders against one receiver that stays up: between senders the receiver reports its
 * count (a snapshot), and /proc/net/snmp in the receiving namespace is read before and after.
 */
async function sendGroup(o: Opts, rxNs: Netns, rxArgs: string[], txNs: Netns,
  variants: readonly (readonly [string, string[]])[], snmpKeys: string[]): Promise<Record<string, Acc>> {
  const accs: Record<string, Acc> = {};
  for (const [name] of variants) accs[name] = newAcc();
  const budget = o.rounds * variants.length * (o.ms + 3000) + 5000;
  const rx = new Peer(rxNs, [...rxArgs, `maxms=${budget}`], budget + 3000);
  try {
    await rx.ready();
    for (let r = 0; r < o.rounds; r++) {
      for (const [name, txArgs] of order(variants, r)) {
        const c0 = (await rx.snap()).count as number;
        const s0 = snmp(rxNs);
        const tx = new Peer(txNs, txArgs, o.ms + 8000);
        let txr: Res;
        try { txr = await tx.result(); } finally { tx.kill(); }
        await sleep(100); // what is still in flight reaches the receiver
        const c1 = (await rx.snap()).count as number;
        add(accs[name], txr, c1 - c0, snmpDeltas(rxNs, snmpKeys, s0));
        log(`  ${name} round ${r + 1}: ${fmt((txr.sent / txr.ms) * 1000)} pps sent, ${fmt(((c1 - c0) / txr.msTotal) * 1000)} pps read by the receiver${txr.errors ? `, tx errors ${txr.errors} ${txr.lastError ?? ''}` : ''}`);
      }
    }
    rx.stop();
    await rx.result();
  } finally {
    rx.kill();
  }
  return accs;
}

interface RxVariant {
  name: string;
  rxNs: Netns; rxArgs: string[];
  txNs: Netns; txArgs: string[];
  /** after the receiver is ready, before the sender starts */
  setup?: () => void;
  /** counters to read while the receiver still runs, before/after the sender */
  counters?: () => Record<string, number>;
}

/** Receivers compared on the same offered traffic: each run starts its own receiver and sender. */
async function rxGroup(o: Opts, variants: RxVariant[]): Promise<Record<string, Acc>> {
  const accs: Record<string, Acc> = {};
  for (const v of variants) accs[v.name] = newAcc();
  for (let r = 0; r < o.rounds; r++) {
    for (const v of order(variants, r)) {
      const rx = new Peer(v.rxNs, [...v.rxArgs, `maxms=${o.ms + 10000}`], o.ms + 12000);
      try {
        await rx.ready();
        v.setup?.();
        const k0 = v.counters?.() ?? {};
        const tx = new Peer(v.txNs, v.txArgs, o.ms + 8000);
        let txr: Res;
        try { txr = await tx.result(); } finally { tx.kill(); }
        await sleep(100);
        const k1 = v.counters?.() ?? {};
        rx.stop();
        const rxr = await rx.result();
        const d: Record<string, number> = {};
        for (const k of Object.keys(k1)) d[k] = k1[k] - (k0[k] ?? 0);
        const st = rxr.stats as Res | undefined;
        if (st) { d.kernelDrops = st.rxKernelDrops; d.recvCalls = st.rxCalls; }
        add(accs[v.name], txr, rxr.count as number, d);
        log(`  ${v.name} round ${r + 1}: ${fmt(((rxr.count as number) / txr.msTotal) * 1000)} pps read of ${fmt((txr.sentTotal / txr.msTotal) * 1000)} pps offered${Object.entries(d).map(([k, x]) => `, ${k} ${x}`).join('')}`);
      } finally {
        rx.kill();
      }
    }
  }
  return accs;
}

function fmt(n: number): string {
  if (n >= 1e6) return `${(n / 1e6).toFixed(2)}M`;
  if (n >= 1e3) return `${(n / 1e3).toFixed(0)}k`;
  return n.toFixed(0);
}

function row(kind: string, direction: string, batched: string, perPacket: string, b: number, p: number,
  note: string, bRounds: number[], pRounds: number[]): Row {
  return {
    kind, direction, batched, perPacket, batchedPps: Math.round(b), perPacketPps: Math.round(p),
    ratio: p > 0 ? Number((b / p).toFixed(2)) : 0, note, batchedRounds: bRounds, perPacketRounds: pRounds,
  };
}

const kv = (o: Record<string, string | number>) => Object.entries(o).map(([k, v]) => `${k}=${v}`);
const errNote = (a: Acc, who: string) => (a.errors ? `; ${who} tx errors/drops ${a.errors} (${a.lastError ?? '?'})` : '');

async function udpAndRaw(o: Opts, rows: Row[]): Promise<void> {
  await withNetns(['ioa', 'iob'], async ([A, B]) => {
    for (const n of [A, B]) n.exec('sysctl', ['-qw', 'net.ipv6.conf.all.disable_ipv6=1', 'net.ipv6.conf.default.disable_ipv6=1']);
    veth(A, 'ioa0', B, 'iob0');
    A.ip('addr', 'add', '10.231.0.1/24', 'dev', 'ioa0');
    B.ip('addr', 'add', '10.231.0.2/24', 'dev', 'iob0');
    // static neighbours: no ARP in the measured path, no packet parked behind an unresolved entry
    A.ip('neigh', 'replace', '10.231.0.2', 'lladdr', macOf(B, 'iob0'), 'dev', 'ioa0', 'nud', 'permanent');
    B.ip('neigh', 'replace', '10.231.0.1', 'lladdr', macOf(A, 'ioa0'), 'dev', 'iob0', 'nud', 'permanent');
    const ms = o.ms;
    const b = o.batch;
    const udpTx = (impl: string, batch: number, dport: number) =>
      ['udp-send', ...kv({ impl, src: '10.231.0.1', dst: '10.231.0.2', dport, len: 64, batch, ms })];

    if (o.only.has('udp')) {
      log('udp send (receiver: addon recvmmsg in B, 8 MiB buffer, uv_poll)');
      const s = await sendGroup(o, B, ['recv', ...kv({ kind: 'udp', impl: 'addon', addr: '10.231.0.2', port: 5001, batch: 256, rcvbuf: 8 << 20 })], A, [
        ['addon', udpTx('addon', b, 5001)],
        ['dgram', udpTx('dgram', 1, 5001)],
        ['dgram-connected', udpTx('dgram-connected', 1, 5001)],
        ['addon-b1', udpTx('addon', 1, 5001)],
      ], ['Udp.InDatagrams', 'Udp.RcvbufErrors']);
      const a = s.addon;
      rows.push(row('udp', 'send', `addon sendmmsg, batch ${b}`, 'node dgram send(), address per call', sendPps(a), sendPps(s.dgram),
        `64 B payload, A→B over veth${errNote(a, 'addon')}${errNote(s.dgram, 'dgram')}`, a.sendRounds, s.dgram.sendRounds));
      rows.push(row('udp', 'send', `addon sendmmsg, batch ${b}`, 'node dgram send(), connected socket', sendPps(a), sendPps(s['dgram-connected']),
        `the stronger dgram variant${errNote(s['dgram-connected'], 'dgram')}`, a.sendRounds, s['dgram-connected'].sendRounds));
      rows.push(row('udp', 'send', `addon sendmmsg, batch ${b}`, 'addon, batch 1', sendPps(a), sendPps(s['addon-b1']),
        'control: same code, one call and one syscall per packet', a.sendRounds, s['addon-b1'].sendRounds));
      rows.push(row('udp', 'delivered', `sender: addon, batch ${b}`, 'sender: node dgram send()', rxPps(a), rxPps(s.dgram),
        `read by the addon receiver in B (= Udp.InDatagrams); RcvbufErrors ${a.c['Udp.RcvbufErrors']} / ${s.dgram.c['Udp.RcvbufErrors']}`, a.rxRounds, s.dgram.rxRounds));

      log('udp receive (sender: addon, batch ' + b + ', in A; default socket buffers)');
      const rxArgs = (impl: string, batch: number) => ['recv', ...kv({ kind: 'udp', impl, addr: '10.231.0.2', port: 5002, batch })];
      const snmpCounters = () => { const x = snmp(B); return { InDatagrams: x['Udp.InDatagrams'], RcvbufErrors: x['Udp.RcvbufErrors'] }; };
      const r = await rxGroup(o, [
        { name: 'addon', rxNs: B, rxArgs: rxArgs('addon', b), txNs: A, txArgs: udpTx('addon', b, 5002), counters: snmpCounters },
        { name: 'dgram', rxNs: B, rxArgs: rxArgs('dgram', 1), txNs: A, txArgs: udpTx('addon', b, 5002), counters: snmpCounters },
      ]);
      rows.push(row('udp', 'receive', `addon recvmmsg, batch ${b}, uv_poll`, "node dgram 'message' event", rxPps(r.addon), rxPps(r.dgram),
        `offered ${fmt(offeredPps(r.addon))} / ${fmt(offeredPps(r.dgram))} pps; dropped (RcvbufErrors) ${fmt(perSec(r.addon, 'RcvbufErrors'))} / ${fmt(perSec(r.dgram, 'RcvbufErrors'))} pps`,
        r.addon.rxRounds, r.dgram.rxRounds));
    }

    if (o.only.has('raw')) {
      log('raw IPv4 protocol 4 send (receiver: addon raw socket in B, so B sends no ICMP back)');
      const rawTx = (impl: string, batch: number) => ['raw-send', ...kv({ impl, src: '10.231.0.1', dst: '10.231.0.2', len: 80, batch, ms })];
      const s = await sendGroup(o, B, ['recv', ...kv({ kind: 'raw', impl: 'addon', batch: 256, rcvbuf: 8 << 20 })], A, [
        ['addon', rawTx('addon', b)],
        ['raw-socket', rawTx('raw-socket', 1)],
        ['addon-b1', rawTx('addon', 1)],
      ], ['Ip.InDelivers', 'Ip.InUnknownProtos']);
      const a = s.addon;
      rows.push(row('raw ipv4 proto 4', 'send', `addon sendmmsg, IP_HDRINCL, batch ${b}`, 'npm raw-socket send(), IP_HDRINCL', sendPps(a), sendPps(s['raw-socket']),
        `80 B IPIP packets, A→B over veth${errNote(a, 'addon')}${errNote(s['raw-socket'], 'raw-socket')}`, a.sendRounds, s['raw-socket'].sendRounds));
      rows.push(row('raw ipv4 proto 4', 'send', `addon sendmmsg, IP_HDRINCL, batch ${b}`, 'addon, batch 1', sendPps(a), sendPps(s['addon-b1']),
        'control: same code, one call and one syscall per packet', a.sendRounds, s['addon-b1'].sendRounds));
      rows.push(row('raw ipv4 proto 4', 'delivered', `sender: addon, batch ${b}`, 'sender: npm raw-socket', perSec(a, 'Ip.InDelivers'), perSec(s['raw-socket'], 'Ip.InDelivers'),
        `Ip.InDelivers in B; the addon raw receiver read ${fmt(rxPps(a))} / ${fmt(rxPps(s['raw-socket']))} pps`, a.rxRounds, s['raw-socket'].rxRounds));
    }

    if (o.only.has('packet')) {
      log('AF_PACKET receive in B (frames generated in A by the addon packet port, batch ' + b + ')');
      const gen = ['pkt-send', ...kv({ ifname: 'ioa0', dstmac: macOf(B, 'iob0'), len: 64, batch: b, ms })];
      // recvmmsg gets a socket buffer as large as the ring (16 x 256 KiB): same memory, so the
      // comparison is about the receive path, not about how long a queue survives a descheduled reader
      const rxArgs = (ring: number, batch: number) =>
        ['recv', ...kv({ kind: 'packet', impl: 'addon', ifname: 'iob0', ring, batch, drive: 'spin', rcvbuf: ring ? 0 : 4 << 20 })];
      const r = await rxGroup(o, [
        { name: 'ring', rxNs: B, rxArgs: rxArgs(1, b), txNs: A, txArgs: gen },
        { name: 'mmsg', rxNs: B, rxArgs: rxArgs(0, b), txNs: A, txArgs: gen },
        { name: 'mmsg-b1', rxNs: B, rxArgs: rxArgs(0, 1), txNs: A, txArgs: gen },
      ]);
      const note = (x: Acc) => `generated ${fmt(offeredPps(x))} pps, kernel drops ${fmt(perSec(x, 'kernelDrops'))} pps`;
      rows.push(row('af_packet', 'receive', `TPACKET_V3 ring (4 MiB), batch ${b}`, `recvmmsg (ring: false, 4 MiB rcvbuf), batch ${b}`, rxPps(r.ring), rxPps(r.mmsg),
        `${note(r.ring)} / ${note(r.mmsg)}`, r.ring.rxRounds, r.mmsg.rxRounds));
      rows.push(row('af_packet', 'receive', `TPACKET_V3 ring, batch ${b}`, 'recvmmsg, batch 1 (one call per frame)', rxPps(r.ring), rxPps(r['mmsg-b1']),
        note(r['mmsg-b1']), r.ring.rxRounds, r['mmsg-b1'].rxRounds));
      rows.push(row('af_packet', 'receive', `recvmmsg, batch ${b}`, 'recvmmsg, batch 1', rxPps(r.mmsg), rxPps(r['mmsg-b1']),
        'fallback path alone', r.mmsg.rxRounds, r['mmsg-b1'].rxRounds));
    }
  });
}

async function tap(o: Opts, rows: Row[]): Promise<void> {
  await withNetns(['iot'], async ([T]) => {
    T.exec('sysctl', ['-qw', 'net.ipv6.conf.all.disable_ipv6=1', 'net.ipv6.conf.default.disable_ipv6=1']);
    log('TAP receive (kernel UDP from the namespace, routed into the TAP by a static neighbour)');
    const dev = 'pwiotap0';
    // The receiver creates the TAP (it goes away when its fd closes), so it is configured per run.
    const setup = () => {
      T.ip('addr', 'add', '10.232.0.1/24', 'dev', dev);
      T.ip('link', 'set', dev, 'up');
      T.ip('neigh', 'replace', '10.232.0.2', 'lladdr', '02:00:00:00:00:02', 'dev', dev, 'nud', 'permanent');
    };
    const counters = () => ({ tapTxDropped: Number(T.exec('cat', [`/sys/class/net/${dev}/statistics/tx_dropped`]).trim()) });
    const txArgs = ['udp-send', ...kv({ impl: 'addon', src: '10.232.0.1', dst: '10.232.0.2', dport: 5003, len: 64, batch: o.batch, ms: o.ms })];
    const rxArgs = (batch: number) => ['recv', ...kv({ kind: 'tap', impl: 'addon', ifname: dev, batch, drive: 'spin' })];
    const r = await rxGroup(o, [
      { name: 'tap', rxNs: T, rxArgs: rxArgs(o.batch), txNs: T, txArgs, setup, counters },
      { name: 'tap-b1', rxNs: T, rxArgs: rxArgs(1), txNs: T, txArgs, setup, counters },
    ]);
    const note = (x: Acc) => `${fmt(offeredPps(x))} pps offered, TAP drops ${fmt(perSec(x, 'tapTxDropped'))} pps`;
    rows.push(row('tap', 'receive', `read loop, batch ${o.batch}`, 'batch 1 (one N-API call per frame)', rxPps(r.tap), rxPps(r['tap-b1']),
      `${note(r.tap)} / ${note(r['tap-b1'])}`, r.tap.rxRounds, r['tap-b1'].rxRounds));
  });
}

function table(rows: Row[]): string {
  const head = '| kind | direction | batched | per-packet peer | batched pps | per-packet pps | ratio | notes |';
  const sep = '|---|---|---|---|---:|---:|---:|---|';
  const body = rows.map((r) => `| ${r.kind} | ${r.direction} | ${r.batched} | ${r.perPacket} | ${fmt(r.batchedPps)} | ${fmt(r.perPacketPps)} | ${r.ratio.toFixed(2)}x | ${r.note} |`);
  return [head, sep, ...body].join('\n');
}

async function main(): Promise<void> {
  // --help prints the usage; an unknown option or one missing its value exits 2 (bench-args.ts)
  benchArgsOrExit(process.argv.slice(2), BENCH_ARGS);
  const o = parseArgs(process.argv.slice(2));
  if (!isRoot()) throw new Error('bench:io needs root (network namespaces, raw and packet sockets)');
  const m = machine();
  const t0 = Date.now();
  log(`bench:io on ${m.cpu}, ${m.cores} cores, kernel ${m.kernel}, node ${m.node}, load ${m.loadavg1}; window ${o.ms} ms x ${o.rounds} rounds, batch ${o.batch}`);
  const rows: Row[] = [];
  if (o.only.has('udp') || o.only.has('raw') || o.only.has('packet')) await udpAndRaw(o, rows);
  if (o.only.has('tap')) await tap(o, rows);
  const secs = (Date.now() - t0) / 1000;
  if (o.json) {
    for (const r of rows) process.stdout.write(JSON.stringify({ ...r, ...m, windowMs: o.ms, rounds: o.rounds, batch: o.batch }) + '\n');
  } else {
    process.stdout.write(`Machine: ${m.cpu}, ${m.cores} cores, kernel ${m.kernel}, Node ${m.node}, ${m.date}, load average ${m.loadavg1} at start\n`);
    process.stdout.write(`${o.rounds} rounds x ${o.ms} ms per variant (ABBA order), batch ${o.batch}, whole run ${secs.toFixed(1)} s, load average ${os.loadavg()[0].toFixed(2)} at the end\n\n`);
    process.stdout.write(table(rows) + '\n');
  }
  log(`done in ${secs.toFixed(1)} s`);
}

main().catch((e) => {
  process.stderr.write(`bench:io failed: ${(e as Error)?.stack ?? e}\n`);
  process.exit(1);
});
