/**
 * `podway capture [filter] [-n N] [-s SNAPLEN] [--stage rx|decap|route|tx|drop] -w FILE|-`: asks the running
 * podway for copies of matching frames over its control socket and writes them as pcapng, one
 * interface per podway port. Ends after N packets, on Ctrl-C or when the reader of `-w -` goes
 * away; closing the connection switches capture off in the dataplane.
 */
import * as net from 'node:net';
import { openSync, closeSync, writeSync, existsSync, unlinkSync } from 'node:fs';
import { parseTraceFilter } from '../dataplane/trace';
import { parseStage, readRecords } from '../dataplane/capture';
import { CaptureFrame } from '../dataplane/control-server';
import { controlConnectError } from '../dataplane/control-client';
import { PcapngWriter, PCAPNG_SNAPLEN, PcapDirection } from '../dataplane/pcapng';

export interface CaptureCliOptions {
  sock: string;
  filter: string[];
  stage?: string;
  count?: number;
  /** Bytes recorded of each packet at most (default 262,144, tcpdump's). */
  snaplen?: number;
  /** A file path, or '-' for stdout. */
  write: string;
  /** Where progress and the summary go (stderr). */
  say: (m: string) => void;
}

export interface CaptureSummary {
  written: number;
  lost: number;
}

/** An output: a file written synchronously, or stdout through its stream (whose errors, such as
 * EPIPE, end the capture). */
interface Output {
  /** false: the reader is behind; stop reading from podway until `onDrain` (podway then counts
   * what it cannot queue as lost instead of this process buffering without bound). */
  write(b: Uint8Array): boolean;
  onDrain(f: () => void): void;
  close(): void;
  /** Close, and remove the file if this capture created it (nothing was captured). */
  discard(): void;
}

function openOutput(path: string, onGone: () => void): Output {
  if (path === '-') {
    process.stdout.on('error', onGone);
    return { write: (b) => process.stdout.write(b), onDrain: (f) => process.stdout.once('drain', f), close: () => {}, discard: () => {} };
  }
  const existed = existsSync(path);
  let fd: number;
  try {
    fd = openSync(path, 'w', 0o644);
  } catch (e) {
    throw new Error(`capture: cannot write ${path}: ${(e as Error).message}`);
  }
  return {
    write: (b) => {
      let off = 0;
      while (off < b.length) off += writeSync(fd, b, off, b.length - off);
      return true;
    },
    onDrain: () => {},
    close: () => closeSync(fd),
    discard: () => {
      closeSync(fd);
      if (!existed) unlinkSync(path);
    },
  };
}

export async function runCapture(o: CaptureCliOptions): Promise<CaptureSummary> {
  // Everything the user typed is checked before anything starts.
  parseTraceFilter(o.filter, 'capture');
  parseStage(o.stage);
  if (o.count !== undefined && (!Number.isInteger(o.count) || o.count < 1)) throw new Error('capture: -n must be a positive whole number');
  if (o.snaplen !== undefined && (!Number.isInteger(o.snaplen) || o.snaplen < 64 || o.snaplen > PCAPNG_SNAPLEN)) throw new Error(`capture: -s must be a whole number of bytes from 64 to ${PCAPNG_SNAPLEN}`);
  const snaplen = o.snaplen ?? PCAPNG_SNAPLEN;
  if (!o.write) throw new Error('capture: give -w FILE.pcapng (or -w - for stdout)');
  let finish!: (s: CaptureSummary) => void;
  let fail!: (e: Error) => void;
  const result = new Promise<CaptureSummary>((res, rej) => ((finish = res), (fail = rej)));
  let conn: net.Socket | null = null;
  let written = 0;
  let lost = 0;
  let over = false;
  const end = () => {
    if (over) return;
    over = true;
    conn?.destroy();
    process.removeListener('SIGINT', onSignal);
    process.removeListener('SIGTERM', onSignal);
    try {
      out.close();
    } catch {
      /* already closed */
    }
    finish({ written, lost });
  };
  const onSignal = () => end();
  /** Failed before any packet: no file is left behind. */
  const refuse = (e: Error) => {
    over = true;
    conn?.destroy();
    process.removeListener('SIGINT', onSignal);
    process.removeListener('SIGTERM', onSignal);
    out.discard();
    fail(e);
  };
  const out = openOutput(o.write, end);
  let behind = false;
  const pcap = new PcapngWriter((b) => {
    if (!out.write(b) && !behind) behind = true;
  }, snaplen);
  /** After each chunk from podway: wait for a slow reader of stdout before reading more. */
  const keepPace = () => {
    if (!behind || over) return;
    conn?.pause();
    out.onDrain(() => {
      behind = false;
      conn?.resume();
    });
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);

  conn = net.createConnection(o.sock);
  let answered = false;
  let direction: number = PcapDirection.UNKNOWN;
  let pending: Buffer = Buffer.alloc(0);
  conn.on('connect', () => conn!.write(JSON.stringify({ cmd: 'capture', filter: o.filter, stage: o.stage ?? 'rx', count: o.count, snaplen }) + '\n'));
  conn.on('error', (e) => {
    const err = controlConnectError(e, o.sock);
    if (!answered) refuse(err);
    else end();
  });
  conn.on('close', () => {
    if (!answered && !over) refuse(new Error(`podway closed the connection without answering (${o.sock})`));
    else end();
  });
  conn.on('data', (d: Buffer) => {
    pending = pending.length ? Buffer.concat([pending, d]) : d;
    if (!answered) {
      const nl = pending.indexOf(10);
      if (nl < 0) return;
      const res = JSON.parse(pending.subarray(0, nl).toString('utf8')) as { ok: boolean; error?: string; result?: { filter: string; stage: string; ports: string[] } };
      pending = pending.subarray(nl + 1);
      answered = true;
      if (!res.ok) return refuse(new Error(res.error ?? 'capture refused'));
      pcap.begin();
      // the EPB flags' direction: frames read from a port (rx, decap) or sent on one (tx)
      const st = res.result!.stage;
      direction = st === 'rx' || st === 'decap' ? PcapDirection.INBOUND : st === 'tx' ? PcapDirection.OUTBOUND : PcapDirection.UNKNOWN;
      for (const p of res.result!.ports) pcap.iface(p);
      o.say(`capturing ${res.result!.filter} at stage ${res.result!.stage}${o.count ? `, ${o.count} packets` : ''} (Ctrl-C to stop)`);
    }
    while (pending.length >= 5 && !over) {
      const len = pending.readUInt32LE(0);
      if (pending.length < 5 + len) break;
      const kind = pending[4];
      const body = pending.subarray(5, 5 + len);
      pending = pending.subarray(5 + len);
      if (kind === CaptureFrame.RECORDS) {
        for (const r of readRecords(body)) {
          pcap.packet(r.iface, r.tsMicros, r.data, r.origLen, r.comment, direction);
          if (++written === o.count) return end();
        }
      } else if (kind === CaptureFrame.LOST) lost = (JSON.parse(body.toString('utf8')) as { lost: number }).lost;
      else if (kind === CaptureFrame.END) {
        lost = (JSON.parse(body.toString('utf8')) as { lost: number }).lost;
        return end();
      }
    }
    keepPace();
  });
  return result;
}

/** Write a message to stderr synchronously (the process may exit right after). */
export function sayToStderr(m: string): void {
  writeSync(2, `${m}\n`);
}
