// How long close() of a pod's AF_PACKET port holds the calling (forwarding) thread: N veths with
// the engine's pod port options (TPACKET_V2 ring, vnet header, GRO), each opened and polled, then
// closed one after another, each close() timed on its own; then how long until every release
// finished (native/README.md, "Closing a port"). Root; the veths live in this namespace with a
// random tag and are deleted at the end.
//
// Usage: node dist/bench/stall/close-time.js [--ports 20] [--root DIR]   (DIR: another build's checkout)
import { execFileSync } from 'node:child_process';
import * as path from 'node:path';
import * as os from 'node:os';

const argv = process.argv.slice(2);
const val = (k: string): string | undefined => (argv.includes(k) ? argv[argv.indexOf(k) + 1] : undefined);
const N = Number(val('--ports') ?? 20);
const root = path.resolve(val('--root') ?? path.join(__dirname, '..', '..', '..'));
// eslint-disable-next-line @typescript-eslint/no-require-imports
const { native } = require(path.join(root, 'dist', 'src', 'dataplane', 'native.js')) as typeof import('../../src/dataplane/native');

const tag = Math.random().toString(36).slice(2, 6);
const names = Array.from({ length: N }, (_, i) => `pwct${tag}${i}`);
execFileSync('ip', ['-batch', '-'], { input: names.map((n) => `link add ${n} type veth peer name ${n}p\nlink set ${n} up\n`).join('') });
const cleanup = () => execFileSync('ip', ['-batch', '-'], { input: names.map((n) => `link del ${n}\n`).join('') });
const opts = { ring: true, ringVersion: 2 as const, ringBlocks: 4, gro: true, ignoreOutgoing: true };
try {
  const ports = names.map((n) => {
    const p = native.openPacket(n, opts);
    native.poll(p, () => {});
    return p;
  });
  const ms: number[] = [];
  for (const p of ports) {
    const t0 = process.hrtime.bigint();
    native.close(p);
    ms.push(Number(process.hrtime.bigint() - t0) / 1e6);
  }
  const t1 = performance.now();
  const pending = () => (native as { pendingCloses?: () => number }).pendingCloses?.() ?? 0;
  const done = () => {
    if (pending() > 0) return void setTimeout(done, 1);
    const sorted = [...ms].sort((a, b) => a - b);
    const r = (x: number) => Math.round(x * 1000) / 1000;
    console.log(JSON.stringify({
      bench: 'close-time', root, ports: N, closeMsP50: r(sorted[N >> 1]), closeMsMax: r(sorted[N - 1]), closeMsSum: r(ms.reduce((a, b) => a + b, 0)),
      releasedAfterMs: r(performance.now() - t1), loadavg: os.loadavg().map((x) => Math.round(x * 100) / 100),
    }));
    setTimeout(cleanup, 100);
  };
  done();
} catch (e) {
  cleanup();
  throw e;
}
