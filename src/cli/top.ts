/**
 * `podway top`: a live view of a running podway for a person at the node. Every second it reads
 * the counters (all workers merged) over the control socket and shows rates from the difference:
 * packets and bits per second per port, drops per second by reason, and the busiest routes.
 * On a terminal it redraws until q or Ctrl-C; with --once, or when stdout is not a terminal, it
 * takes two samples a second apart and prints one frame.
 */
import { controlRequest } from '../dataplane/control-server';
import { table } from './format';

interface PortRow { port: string; rx: number; tx: number; rxBytes?: number; txBytes?: number; drops: number }
interface RouteRow { cidr: string; kind: string; node: string; packets: number }
export interface CounterSample { at: number; ports: PortRow[]; reasons: Record<string, number>; routes?: RouteRow[] }

/** Sum a port's rows across workers ("cali1 [w0]", "cali1 [w1]" -> "cali1"). */
function byPort(s: CounterSample): Map<string, { rx: number; tx: number; rxBytes: number; txBytes: number; drops: number }> {
  const m = new Map<string, { rx: number; tx: number; rxBytes: number; txBytes: number; drops: number }>();
  for (const p of s.ports) {
    const name = p.port.replace(/ \[w\d+\]$/, '');
    const a = m.get(name) ?? { rx: 0, tx: 0, rxBytes: 0, txBytes: 0, drops: 0 };
    a.rx += p.rx;
    a.tx += p.tx;
    a.rxBytes += p.rxBytes ?? 0;
    a.txBytes += p.txBytes ?? 0;
    a.drops += p.drops;
    m.set(name, a);
  }
  return m;
}

/** 1234567 -> "1.23M" (SI, as rates are usually shown). */
export function si(v: number): string {
  const units = ['', 'k', 'M', 'G', 'T'];
  let u = 0;
  while (Math.abs(v) >= 1000 && u < units.length - 1) {
    v /= 1000;
    u++;
  }
  return u === 0 ? String(Math.round(v)) : `${v.toFixed(v >= 100 ? 0 : v >= 10 ? 1 : 2)}${units[u]}`;
}

/** One frame of the view from two samples (`prev` taken before `cur`); `live`: redrawn until q
 * (its header says so), else the one frame of --once or a pipe (its header says what the rates span). */
export function renderTop(node: string, prev: CounterSample, cur: CounterSample, maxRoutes = 10, live = true): string {
  const dt = Math.max(0.001, (cur.at - prev.at) / 1000);
  const rate = (a: number, b: number) => Math.max(0, a - b) / dt;
  const was = byPort(prev);
  const ports = [...byPort(cur)].map(([port, c]) => {
    const p = was.get(port) ?? { rx: c.rx, tx: c.tx, rxBytes: c.rxBytes, txBytes: c.txBytes, drops: c.drops };
    return {
      port,
      'rx pps': si(rate(c.rx, p.rx)),
      'tx pps': si(rate(c.tx, p.tx)),
      'rx bps': si(rate(c.rxBytes, p.rxBytes) * 8),
      'tx bps': si(rate(c.txBytes, p.txBytes) * 8),
      'drops/s': si(rate(c.drops, p.drops)),
      'rx total': c.rx,
      'tx total': c.tx,
    };
  });
  const drops = Object.entries(cur.reasons)
    .map(([reason, n]) => ({ reason, 'per s': rate(n, prev.reasons[reason] ?? n), total: n }))
    .sort((a, b) => b['per s'] - a['per s'] || b.total - a.total)
    .map((r) => ({ ...r, 'per s': si(r['per s']) }));
  const before = new Map((prev.routes ?? []).map((r) => [r.cidr, r.packets]));
  const routes = (cur.routes ?? [])
    .map((r) => ({ route: r.cidr, kind: r.kind, node: r.node, pps: rate(r.packets, before.get(r.cidr) ?? r.packets), total: r.packets }))
    .sort((a, b) => b.pps - a.pps || b.total - a.total)
    .slice(0, maxRoutes)
    .map((r) => ({ ...r, pps: si(r.pps) }));
  const when = new Date(cur.at).toISOString().slice(11, 19);
  return [
    live ? `podway top - node ${node} - ${when} UTC - every ${dt.toFixed(1)}s (q to quit)` : `podway top - node ${node} - ${when} UTC - rates over ${dt.toFixed(1)}s`,
    '',
    'PORTS',
    table(ports),
    'DROPS AND EVENTS BY REASON',
    table(drops),
    'BUSIEST ROUTES',
    table(routes),
  ].join('\n');
}

async function sample(sock: string): Promise<CounterSample> {
  const c = (await controlRequest(sock, { cmd: 'counters' }, 5000)) as Omit<CounterSample, 'at'>;
  return { ...c, at: Date.now() };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export async function runTop(o: { sock: string; once: boolean; intervalMs?: number }): Promise<void> {
  const interval = o.intervalMs ?? 1000;
  const status = (await controlRequest(o.sock, { cmd: 'status' }, 5000)) as { node: string | null };
  const node = status.node ?? '?';
  const out = process.stdout;
  let prev = await sample(o.sock);
  if (o.once || !out.isTTY) {
    await sleep(interval);
    out.write(renderTop(node, prev, await sample(o.sock), 10, false));
    return;
  }
  let quit = false;
  let wake: () => void = () => {};
  const stop = () => {
    quit = true;
    wake();
  };
  const stdin = process.stdin;
  const onKey = (d: Buffer) => {
    const k = d.toString('utf8');
    if (k === 'q' || k === 'Q' || k === '\u0003') stop(); // Ctrl-C arrives as a byte in raw mode
  };
  if (stdin.isTTY) {
    stdin.setRawMode(true);
    stdin.resume();
    stdin.on('data', onKey);
  }
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
  out.write('\x1b[?1049h\x1b[?25l'); // alternate screen, cursor hidden
  try {
    while (!quit) {
      await new Promise<void>((r) => {
        wake = r;
        setTimeout(r, interval);
      });
      if (quit) break;
      const cur = await sample(o.sock);
      out.write('\x1b[H\x1b[2J' + renderTop(node, prev, cur).replace(/\n/g, '\r\n'));
      prev = cur;
    }
  } finally {
    out.write('\x1b[?25h\x1b[?1049l');
    if (stdin.isTTY) {
      stdin.setRawMode(false);
      stdin.removeListener('data', onKey);
      stdin.pause();
    }
    process.removeListener('SIGINT', stop);
    process.removeListener('SIGTERM', stop);
  }
}
