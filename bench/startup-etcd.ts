// `podway run` restarted on etcd (root; see "Start-up time on etcd" in bench/README.md): a lab of
// three nodes (network namespaces, one etcd in the fabric namespace, pool without tunnels), all
// running podway; node1's podway is killed (SIGKILL, as a crash) and started again, and its own
// log lines (pino `time`) say when, from spawn, it had registered its Node (`join`), had its first
// datastore model (`model`; on the model cache, applied at once on a restart in the same boot:
// when the datastore's model replaced it), applied its first model (`applied`) and forwarded
// (`forwarding`); `ready` is when
// its control socket answered a plain `status` after that; `packet` is when node2's pod had the
// first answer from node1's pod (ping every 20 ms from before the spawn: the first packet node1's
// new podway forwarded both ways). With --compare DIR every round starts node1 once with each build
// (alternating which goes first), so both see the same load.
//
// Usage: node dist/bench/startup-etcd.js [--runs 5] [--bgp] [--compare DIR]
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import * as path from 'node:path';
import { Lab, sleep } from '../src/lab/lab';
import { controlRequest } from '../src/dataplane/control-client';
import { machineInfo } from './machine';
import { benchArgsOrExit, compareCheckout, intOption, type BenchArgs } from './e2e/bench-args';
import { median } from './stats';

const BENCH_ARGS = { usage: 'usage: node dist/bench/startup-etcd.js [--runs N] [--bgp] [--compare OTHER_CHECKOUT]', flags: ['--bgp'], options: ['--runs', '--compare'] };

const ROOT = path.resolve(__dirname, '..', '..');
const PHASES = ['join', 'model', 'applied', 'forwarding', 'ready', 'packet'] as const;
type Row = Record<(typeof PHASES)[number], number | null> & { cache: boolean };

function parseArgs(args: BenchArgs): { runs: number; bgp: boolean; compare?: string } {
  return { runs: intOption(args, '--runs', 5, 1, 50), bgp: args.has('--bgp'), compare: compareCheckout(args, path.join('bin', 'podway.js')) };
}


async function main(): Promise<void> {
  // --help prints the usage; an unknown option or one missing its value exits 2 (bench-args.ts)
  const args = parseArgs(benchArgsOrExit(process.argv.slice(2), BENCH_ARGS));
  if (process.getuid?.() !== 0) throw new Error('needs root (network namespaces)');
  const extra = args.bgp ? ['--bgp'] : [];
  const builds: [string, string][] = [['this', ROOT], ...(args.compare ? [['compare', args.compare] as [string, string]] : [])];
  const rows = new Map<string, Row[]>(builds.map(([l]) => [l, []]));
  const lab = new Lab([1, 2, 3].map((k) => ({ name: `node${k}`, subnet: 'a' as const, pods: [{ name: `web-${k}`, type: 'veth' as const }] })));
  let store: Awaited<ReturnType<Lab['openKvStore']>> | null = null;
  let p: ChildProcess | null = null;
  const before = machineInfo();
  try {
    lab.build();
    lab.setMode('direct');
    store = await lab.openKvStore('etcd', 'podway-bench-startup-etcd-');
    await lab.startEtcd();
    await lab.useKvDatastore(store.kv, store.spec);
    for (const n of ['node1', 'node2', 'node3']) await lab.startPodway(n, 60_000, extra);
    await sleep(3000);
    const n1 = lab.node('node1');
    p = n1.proc;
    n1.proc = null;
    for (let round = 0; round < args.runs; round++) {
      for (const [label, root] of round % 2 ? [...builds].reverse() : builds) {
        const old = p!;
        old.kill('SIGKILL');
        await new Promise<void>((r) => (old.exitCode !== null || old.signalCode !== null ? r() : old.once('exit', () => r())));
        await sleep(1500);
        const log: string[] = [];
        // node2's pod pings node1's from before the spawn: -D prints each answer's wall time
        const web1 = lab.pod('web-1');
        const ping = spawn('ip', ['netns', 'exec', lab.pod('web-2').ns, 'ping', '-n', '-D', '-i', '0.02', '-W', '1', '-w', '60', web1.ip], { stdio: ['ignore', 'pipe', 'ignore'] });
        const answers: number[] = [];
        ping.stdout!.setEncoding('utf8').on('data', (d: string) => {
          for (const m of d.matchAll(/^\[(\d+\.\d+)\] \d+ bytes from/gm)) answers.push(Math.round(Number(m[1]) * 1000));
        });
        await sleep(200);
        const t0 = Date.now();
        p = spawn('ip', ['netns', 'exec', n1.ns, process.execPath, path.join(root, 'bin', 'podway.js'), 'run', '--node', 'node1', '--datastore', lab.datastoreSpec, '--control', n1.control, '--model-cache', lab.modelCachePath('node1'), ...extra], { stdio: ['ignore', 'ignore', 'pipe'] });
        p.stderr!.setEncoding('utf8').on('data', (d: string) => log.push(...d.split('\n').filter(Boolean)));
        const at = (re: RegExp): number | null => {
          for (const l of log) {
            try {
              const j = JSON.parse(l) as { msg?: string; time?: number | string };
              if (j.msg && re.test(j.msg)) return (typeof j.time === 'number' ? j.time : Date.parse(String(j.time))) - t0;
            } catch { /* not a log line */ }
          }
          return null;
        };
        let ready: number | null = null;
        const end = Date.now() + 40_000;
        while (Date.now() < end && p.exitCode === null) {
          if (at(/^forwarding: node/) !== null && (await controlRequest(n1.control, { cmd: 'status' }, 2000).then(() => true, () => false))) {
            ready = Date.now() - t0;
            break;
          }
          await sleep(50);
        }
        if (ready === null) {
          ping.kill('SIGKILL');
          throw new Error(`${label}: node1 did not forward within 40 s: ${log.slice(-5).join(' | ')}`);
        }
        const pingEnd = Date.now() + 20_000;
        while (Date.now() < pingEnd && !answers.some((a) => a >= t0)) await sleep(20);
        ping.kill('SIGKILL');
        const packet = answers.find((a) => a >= t0);
        // on the cache (applied at once on a restart in the same boot): `model` is when the
        // datastore's model replaced it, `applied` the cache's apply
        const row: Row = { join: at(/^node node1 /), model: at(/^datastore etcd:\S+$/) ?? at(/answers: its model replaces the cached one/), applied: at(/^applied model/), forwarding: at(/^forwarding: node/), ready, packet: packet === undefined ? null : packet - t0, cache: at(/forwarding on the cached model/) !== null };
        for (const l of log) {
          // the start-up phase lines and the apply's breakdown, for where the time went
          try {
            const j = JSON.parse(l) as { msg?: string };
            if (j.msg && /^(start-up: |applied model)/.test(j.msg)) process.stderr.write(`  ${label}: ${j.msg}\n`);
          } catch { /* not a log line */ }
        }
        rows.get(label)!.push(row);
        process.stderr.write(`${label} ${JSON.stringify(row)}\n`);
        await sleep(2000);
      }
    }
  } finally {
    p?.kill('SIGKILL');
    for (const n of ['node2', 'node3']) await lab.stopPodway(n).catch(() => null);
    lab.destroy();
    await store?.close().catch(() => undefined);
  }
  const after = machineInfo();
  process.stdout.write(`${before.date}, ${before.cpu}, ${before.nproc} vCPUs, kernel ${before.kernel}, Node ${before.node}; load ${before.loadavg.join(' ')} before, ${after.loadavg.join(' ')} after; ${args.bgp ? '--bgp' : 'no --bgp'}, ${args.runs} rounds\n\n`);
  process.stdout.write(`| build | ${PHASES.join(' | ')} | on the cache |\n|---|${PHASES.map(() => '---:').join('|')}|---:|\n`);
  for (const [label] of builds) {
    const xs = rows.get(label)!;
    process.stdout.write(`| ${label} | ${PHASES.map((f) => median(xs.map((x) => x[f]).filter((v): v is number => v !== null)).toFixed(0)).join(' | ')} | ${xs.filter((x) => x.cache).length}/${xs.length} |\n`);
  }
}

main().catch((e) => {
  process.stderr.write(`bench startup-etcd: ${(e as Error).stack ?? e}\n`);
  process.exit(1);
});
