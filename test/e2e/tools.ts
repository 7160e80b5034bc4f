/**
 * Helpers for the end-to-end forwarding tests: bounded child processes (always tracked, so cleanup
 * can end them), small python3 programs run inside pod namespaces (TCP transfer, UDP at the MTU,
 * raw frames through AF_PACKET), frame builders, tcpdump captures decoded by tshark, and podway
 * counter snapshots. Everything only talks between addresses inside the lab's namespaces.
 */
import { spawn, execFile, ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { controlRequest } from '../../src/dataplane/control-server';
import type { LabNode } from '../../src/lab/lab';
import { within } from '../../src/lab/lab';

// ---- processes -------------------------------------------------------------------------------

/** Every child started here, so a failing test (or the exit handler) can end them. */
export const children = new Set<ChildProcess>();

export function killChildren(): void {
  for (const c of children) {
    if (c.exitCode === null && c.signalCode === null) {
      try {
        c.kill('SIGKILL');
      } catch {
        /* gone */
      }
    }
  }
  children.clear();
}

export interface ExecResult { code: number | null; signal: string | null; stdout: string; stderr: string; timedOut: boolean }

/** Run a command to completion, bounded by timeoutMs (then SIGKILL). Never throws. */
export function execBounded(cmd: string, args: string[], timeoutMs: number): Promise<ExecResult> {
  return new Promise((resolve) => {
    const c = execFile(cmd, args, { encoding: 'utf8', timeout: timeoutMs, killSignal: 'SIGKILL', maxBuffer: 16 << 20 }, (err, stdout, stderr) => {
      children.delete(c);
      const e = err as (NodeJS.ErrnoException & { killed?: boolean; signal?: string; code?: number | string }) | null;
      resolve({
        code: e ? (typeof e.code === 'number' ? e.code : null) : 0,
        signal: e?.signal ?? null,
        stdout: stdout ?? '',
        stderr: stderr ?? '',
        timedOut: !!e?.killed,
      });
    });
    children.add(c);
  });
}

/** A long-running child (server, capture) whose output we watch. */
export class Bg {
  readonly proc: ChildProcess;
  stdout = '';
  stderr = '';
  readonly done: Promise<number | null>;
  constructor(cmd: string, args: string[]) {
    this.proc = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    children.add(this.proc);
    this.proc.stdout!.setEncoding('utf8');
    this.proc.stderr!.setEncoding('utf8');
    this.proc.stdout!.on('data', (d: string) => (this.stdout += d));
    this.proc.stderr!.on('data', (d: string) => (this.stderr += d));
    this.done = new Promise((r) => this.proc.once('close', (code) => {
      children.delete(this.proc);
      r(code);
    }));
  }
  /** Wait (bounded) until `text` appears in stdout or stderr. */
  async waitFor(text: string, timeoutMs: number): Promise<void> {
    const end = Date.now() + timeoutMs;
    while (Date.now() < end) {
      if (this.stdout.includes(text) || this.stderr.includes(text)) return;
      if (this.proc.exitCode !== null) break;
      await sleep(20);
    }
    throw new Error(`"${text}" not seen within ${timeoutMs} ms; stdout: ${this.stdout.slice(-300)} stderr: ${this.stderr.slice(-300)}`);
  }
  /** Wait (bounded) for exit; past the bound, SIGTERM then SIGKILL. Returns the exit code. */
  async finish(timeoutMs: number): Promise<number | null> {
    const t = await within(this.done, timeoutMs, 'timeout' as const);
    if (t !== 'timeout') return t;
    this.proc.kill('SIGTERM');
    const t2 = await within(this.done, 2000, 'timeout' as const);
    if (t2 !== 'timeout') return t2;
    this.proc.kill('SIGKILL');
    return this.done;
  }
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export function inNs(ns: string, cmd: string, args: string[]): [string, string[]] {
  return ['ip', ['netns', 'exec', ns, cmd, ...args]];
}

// ---- python3 programs run in pod namespaces -----------------------------------------------------

/** TCP server: accept one connection, read to EOF, answer with the sha256, print a JSON summary. */
export const PY_TCP_SERVER = `
import socket, hashlib, sys, json
ip, port, tmo = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); s.bind((ip, port)); s.listen(1); s.settimeout(tmo)
print('listening', flush=True)
c, a = s.accept(); c.settimeout(tmo)
h = hashlib.sha256(); n = 0
while True:
    d = c.recv(1 << 16)
    if not d: break
    h.update(d); n += len(d)
c.sendall(h.hexdigest().encode()); c.close()
print(json.dumps({'bytes': n, 'sha256': h.hexdigest(), 'peer': a[0]}), flush=True)
`;

/** TCP client: send n random bytes, read the server's sha256 back; prints both and the MSS. */
export const PY_TCP_CLIENT = `
import socket, hashlib, sys, json, os
ip, port, n, tmo = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
data = os.urandom(n)
s = socket.create_connection((ip, port), timeout=tmo)
mss = s.getsockopt(socket.IPPROTO_TCP, socket.TCP_MAXSEG)
s.sendall(data); s.shutdown(socket.SHUT_WR)
r = b''
while True:
    d = s.recv(128)
    if not d: break
    r += d
print(json.dumps({'bytes': n, 'sha256': hashlib.sha256(data).hexdigest(), 'serverSha256': r.decode(), 'mss': mss, 'local': s.getsockname()[0]}))
`;

/** UDP receiver: datagrams carry seq(4) + sha256(rest)(32) + rest; prints which arrived intact. */
export const PY_UDP_RECV = `
import socket, hashlib, sys, json, time
ip, port, count, tmo = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind((ip, port))
print('listening', flush=True)
end = time.time() + tmo; got = {}; bad = 0; sizes = set()
while len(got) < count and time.time() < end:
    s.settimeout(max(0.01, end - time.time()))
    try: d, a = s.recvfrom(65535)
    except socket.timeout: break
    sizes.add(len(d))
    if len(d) >= 36 and hashlib.sha256(d[36:]).digest() == d[4:36]: got[int.from_bytes(d[:4], 'big')] = len(d)
    else: bad += 1
print(json.dumps({'received': sorted(got), 'bad': bad, 'sizes': sorted(sizes)}), flush=True)
`;

/** UDP sender with DF (IP_MTU_DISCOVER=IP_PMTUDISC_DO): count datagrams of exactly size bytes,
 * then one byte more, which the pod's own stack must refuse (the datagrams filled the MTU). */
export const PY_UDP_SEND = `
import socket, hashlib, sys, json, os, time
ip, port, size, count = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.IPPROTO_IP, 10, 2)  # IP_MTU_DISCOVER, IP_PMTUDISC_DO
sent = 0; errs = []
for k in range(count):
    body = os.urandom(size - 36)
    try: s.sendto(k.to_bytes(4, 'big') + hashlib.sha256(body).digest() + body, (ip, port)); sent += 1
    except OSError as e: errs.append(e.strerror)
    time.sleep(0.005)
try: s.sendto(os.urandom(size + 1), (ip, port)); over = 'sent'
except OSError as e: over = e.strerror
print(json.dumps({'sent': sent, 'errors': errs, 'oneMore': over}))
`;

/** Send raw Ethernet frames (hex) on an interface with AF_PACKET, then listen for ARP replies. */
export const PY_RAW = `
import socket, sys, json, time
a = json.loads(sys.argv[1])
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0806))
s.bind((a['ifname'], 0))
for h in a['frames']:
    s.send(bytes.fromhex(h))
replies = []
end = time.time() + a.get('listenMs', 0) / 1000
while time.time() < end:
    s.settimeout(max(0.01, end - time.time()))
    try: d = s.recv(2048)
    except socket.timeout: break
    if len(d) >= 42 and d[12:14] == b'\\x08\\x06' and d[20:22] == b'\\x00\\x02':
        replies.append({'spa': socket.inet_ntoa(d[28:32]), 'sha': d[22:28].hex(':'), 'tpa': socket.inet_ntoa(d[38:42])})
print(json.dumps({'sent': len(a['frames']), 'arpReplies': replies}))
`;

/**
 * How long a python program run here may take to say it listens: a python start took 2-3 s at load
 * 15 and missed a 5 s bound at load ~20. A bound on a hang, not on speed: the wait ends at the line.
 */
export const PY_START_MS = 30_000;

export function py(ns: string, script: string, args: (string | number)[]): [string, string[]] {
  return inNs(ns, 'python3', ['-c', script, ...args.map(String)]);
}

/** Run a python program in a namespace, bounded; parse the last stdout line as JSON. */
export async function pyJson<T>(ns: string, script: string, args: (string | number)[], timeoutMs: number): Promise<T> {
  const [c, a] = py(ns, script, args);
  const r = await execBounded(c, a, timeoutMs);
  const last = r.stdout.trim().split('\n').pop() ?? '';
  if (r.code !== 0 || !last.startsWith('{')) throw new Error(`python in ${ns} failed (code ${r.code}${r.timedOut ? ', timed out' : ''}): ${r.stderr.trim().slice(-500)} ${r.stdout.slice(-200)}`);
  return JSON.parse(last) as T;
}

// ---- frames ----------------------------------------------------------------------------------

export function macBytes(mac: string): Buffer {
  return Buffer.from(mac.replace(/:/g, ''), 'hex');
}

export function ipBytes(ip: string): Buffer {
  return Buffer.from(ip.split('.').map(Number));
}

function csum(buf: Buffer): number {
  let s = 0;
  for (let i = 0; i + 1 < buf.length; i += 2) s += buf.readUInt16BE(i);
  if (buf.length & 1) s += buf[buf.length - 1] << 8;
  while (s > 0xffff) s = (s & 0xffff) + (s >>> 16);
  return ~s & 0xffff;
}

export function eth(dst: string, src: string, type: number, payload: Buffer): Buffer {
  const h = Buffer.alloc(14);
  macBytes(dst).copy(h, 0);
  macBytes(src).copy(h, 6);
  h.writeUInt16BE(type, 12);
  return Buffer.concat([h, payload]);
}

/** ARP payload (28 bytes); fields overridable to make malformed ones. */
export function arp(op: number, sha: string, spa: string, tpa: string, htype = 1): Buffer {
  const a = Buffer.alloc(28);
  a.writeUInt16BE(htype, 0);
  a.writeUInt16BE(0x0800, 2);
  a[4] = 6;
  a[5] = 4;
  a.writeUInt16BE(op, 6);
  macBytes(sha).copy(a, 8);
  ipBytes(spa).copy(a, 14);
  ipBytes(tpa).copy(a, 24);
  return a;
}

/** IPv4 + ICMP echo request with correct checksums. */
export function icmpEcho(src: string, dst: string, id: number, seq: number, ttl = 64, payloadLen = 32): Buffer {
  const icmp = Buffer.alloc(8 + payloadLen);
  icmp[0] = 8;
  icmp.writeUInt16BE(id, 4);
  icmp.writeUInt16BE(seq, 6);
  for (let k = 0; k < payloadLen; k++) icmp[8 + k] = k & 255;
  icmp.writeUInt16BE(csum(icmp), 2);
  const ip = Buffer.alloc(20);
  ip[0] = 0x45;
  ip.writeUInt16BE(20 + icmp.length, 2);
  ip.writeUInt16BE(0x4242, 4);
  ip.writeUInt16BE(0x4000, 6);
  ip[8] = ttl;
  ip[9] = 1;
  ipBytes(src).copy(ip, 12);
  ipBytes(dst).copy(ip, 16);
  ip.writeUInt16BE(csum(ip), 10);
  return Buffer.concat([ip, icmp]);
}

/** Calico's VTEP MAC when none is configured: 0x66 then the first 5 bytes of sha1(nodename). */
export function calicoVtepMac(node: string): string {
  const h = createHash('sha1').update(node).digest();
  return [0x66, ...h.subarray(0, 5)].map((x) => x.toString(16).padStart(2, '0')).join(':');
}

// ---- captures --------------------------------------------------------------------------------

/** Start tcpdump in a namespace writing a pcap; resolves once it listens. */
export async function startCapture(ns: string, ifname: string, file: string, filter: string, count: number): Promise<Bg> {
  const [c, a] = inNs(ns, 'tcpdump', ['-i', ifname, '-n', '-U', '-w', file, '-c', String(count), filter]);
  const bg = new Bg(c, a);
  await bg.waitFor('listening on', 5000);
  return bg;
}

/** Decode a pcap with tshark into rows of fields (multi-layer fields come back as arrays). */
export async function tsharkFields(file: string, fields: string[], displayFilter?: string): Promise<string[][][]> {
  const args = ['-r', file, '-n', '-T', 'fields', '-E', 'separator=|', '-E', 'aggregator=,'];
  if (displayFilter) args.push('-Y', displayFilter);
  for (const f of fields) args.push('-e', f);
  const r = await execBounded('tshark', args, 20_000);
  if (r.code !== 0) throw new Error(`tshark -r ${file}: ${r.stderr.trim()}`);
  return r.stdout.split('\n').filter(Boolean).map((line) => line.split('|').map((v) => (v === '' ? [] : v.split(','))));
}

// ---- podway ----------------------------------------------------------------------------------

export type Reasons = Record<string, number>;

export async function reasons(node: LabNode): Promise<Reasons> {
  const r = (await controlRequest(node.control, { cmd: 'counters' }, 5000)) as { reasons: Reasons };
  return r.reasons;
}

export function delta(before: Reasons, after: Reasons, name: string): number {
  return (after[name] ?? 0) - (before[name] ?? 0);
}

/** The ttl=N of every reply in ping output (to requests 1..maxSeq when given: see Lab's pingArgs). */
export function replyTtls(out: string, maxSeq = Infinity): number[] {
  return [...out.matchAll(/icmp_seq=(\d+) ttl=(\d+)/g)].filter((m) => Number(m[1]) <= maxSeq).map((m) => Number(m[2]));
}
