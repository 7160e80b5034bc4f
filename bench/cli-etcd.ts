// The CLI's datastore commands on etcd (`npm run bench:cli-etcd`; see "The CLI on etcd" in
// bench/README.md). An operator's `podway get ...` in a loop is a fresh Node process each time, so
// what it loads before its first call to etcd is paid per command. Against a one-member etcd on
// loopback (a pool, NODES Nodes, addresses assigned on each), each command below is a new `podway`
// process, timed from spawn to exit, with its CPU seconds (user + system) and maximum RSS from GNU
// time:
//   get-nodes    podway get nodes
//   get-yaml     podway get ippools -o yaml
//   apply        podway apply -f pool.yaml        (the pool again: read, compare, write)
//   ipam-show    podway ipam show --show-blocks
// Each round runs every command once per build; with --compare DIR another build's bin/podway.js
// (a checkout with its dist/, e.g. a copy of the build before a change) runs each command right
// after or before this one (alternating which goes first), so both see the same load. Prints the
// medians of the rounds and the machine (load before and after); --json for one object.
//
// Usage: node dist/bench/cli-etcd.js [--runs 9] [--compare DIR] [--json]
import { ChildProcess, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { ETCD_BINARY, requireEtcdBinary, singleMemberArgs } from '../src/lab/etcd';
import { TIME_BINARY } from './cni/driver';
import { benchArgsOrExit, compareCheckout, intOption, type BenchArgs } from './e2e/bench-args';
import { machineInfo } from './machine';
import { median } from './stats';

const BENCH_ARGS = { usage: 'usage: node dist/bench/cli-etcd.js [--runs N] [--compare OTHER_CHECKOUT] [--json]', flags: ['--json'], options: ['--runs', '--compare'] };

const ROOT = path.resolve(__dirname, '..', '..');
const NODES = 20;
const ADDRESSES_PER_NODE = 3;
const COMMANDS = {
  'get-nodes': ['get', 'nodes'],
  'get-yaml': ['get', 'ippools', '-o', 'yaml'],
  apply: ['apply', '-f', 'POOL'],
  'ipam-show': ['ipam', 'show', '--show-blocks'],
} as const;
type Command = keyof typeof COMMANDS;

interface Args { runs: number; json: boolean; compare?: string }

function parseArgs(args: BenchArgs): Args {
  return { runs: intOption(args, '--runs', 9, 1, 100), json: args.has('--json'), compare: compareCheckout(args, path.join('bin', 'podway.js')) };
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as { port: number };
      s.close(() => resolve(port));
    });
  });
}

/** A one-member etcd on loopback in a temporary directory; stop() kills it by PID and removes the directory. */
async function startEtcd(): Promise<{ endpoint: string; stop(): Promise<void> }> {
  requireEtcdBinary();
  const dir = mkdtempSync(path.join(os.tmpdir(), 'podway-bench-cli-etcd-'));
  const [client, peer] = [`http://127.0.0.1:${await freePort()}`, `http://127.0.0.1:${await freePort()}`];
  const p: ChildProcess = spawn(ETCD_BINARY, singleMemberArgs('bench-cli', path.join(dir, 'data'), client, client, peer), { stdio: ['ignore', 'ignore', 'pipe'] });
  let log = '';
  p.stderr!.setEncoding('utf8').on('data', (d: string) => (log = (log + d).slice(-4000)));
  const stop = async (): Promise<void> => {
    if (p.exitCode === null && p.signalCode === null) {
      const exited = new Promise((r) => p.once('exit', r));
      p.kill('SIGKILL');
      await exited;
    }
    rmSync(dir, { recursive: true, force: true });
  };
  const deadline = Date.now() + 20_000;
  for (;;) {
    if (p.exitCode !== null) {
      await stop();
      throw new Error(`etcd exited before it was healthy:\n${log}`);
    }
    const healthy = await fetch(`${client}/health`, { signal: AbortSignal.timeout(1000) }).then(async (r) => /"health":\s*"true"/.test(await r.text()), () => false);
    if (healthy) return { endpoint: client, stop };
    if (Date.now() > deadline) {
      await stop();
      throw new Error(`etcd at ${client} not healthy within 20 s:\n${log}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
}

interface Sample { wallMs: number; cpuS: number; rssMb: number }

/** `podway ARGS` under GNU time: spawn-to-exit ms, CPU seconds, max RSS; throws when it fails. */
function timed(bin: string, args: readonly string[], env: NodeJS.ProcessEnv, timeFile: string): Promise<Sample> {
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    const child = spawn(TIME_BINARY, ['-f', '%U %S %M', '-o', timeFile, process.execPath, bin, ...args], { env, stdio: ['ignore', 'ignore', 'pipe'] });
    let err = '';
    child.stderr!.setEncoding('utf8').on('data', (d: string) => (err += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), 60_000);
    child.once('exit', (code) => {
      clearTimeout(timer);
      const wallMs = performance.now() - t0;
      if (code !== 0) return reject(new Error(`podway ${args.join(' ')} (${bin}) exited ${code}: ${err}`));
      const [user, sys, rssKb] = readFileSync(timeFile, 'utf8').trim().split('\n').pop()!.split(' ').map(Number);
      resolve({ wallMs, cpuS: user! + sys!, rssMb: rssKb! / 1024 });
    });
  });
}

async function main(): Promise<void> {
  const args = parseArgs(benchArgsOrExit(process.argv.slice(2), BENCH_ARGS));
  if (!existsSync(TIME_BINARY)) throw new Error(`${TIME_BINARY} is missing: run \`bash scripts/setup.sh\` (it installs GNU time)`);
  const builds: [string, string][] = [['this', path.join(ROOT, 'bin', 'podway.js')], ...(args.compare ? [['compare', path.join(args.compare, 'bin', 'podway.js')] as [string, string]] : [])];
  const dir = mkdtempSync(path.join(os.tmpdir(), 'podway-bench-cli-'));
  const before = machineInfo();
  const etcd = await startEtcd();
  try {
    const env: NodeJS.ProcessEnv = { PATH: process.env.PATH, HOME: process.env.HOME, PODWAY_DATASTORE: `etcd:${etcd.endpoint}` };
    const pool = path.join(dir, 'pool.yaml');
    writeFileSync(pool, 'apiVersion: projectcalico.org/v3\nkind: IPPool\nmetadata: {name: bench-pool}\nspec: {cidr: 10.250.0.0/16, blockSize: 26, vxlanMode: Always, natOutgoing: true}\n');
    const nodes = path.join(dir, 'nodes.yaml');
    writeFileSync(nodes, Array.from({ length: NODES }, (_, i) => `apiVersion: projectcalico.org/v3\nkind: Node\nmetadata: {name: bench-node-${i}}\nspec: {bgp: {ipv4Address: 10.99.${i >> 8}.${(i & 255) + 1}/16}}\n`).join('---\n'));
    // The cluster, made with this build's CLI (not timed).
    const timeFile = path.join(dir, 'time');
    await timed(builds[0]![1], ['apply', '-f', pool], env, timeFile);
    await timed(builds[0]![1], ['apply', '-f', nodes], env, timeFile);
    for (let i = 0; i < NODES; i++) await timed(builds[0]![1], ['ipam', 'assign', '--node', `bench-node-${i}`, '--count', String(ADDRESSES_PER_NODE)], env, timeFile);

    const samples = new Map<string, Sample[]>();
    for (let round = 0; round < args.runs; round++) {
      for (const command of Object.keys(COMMANDS) as Command[]) {
        const argv = COMMANDS[command].map((a) => (a === 'POOL' ? pool : a));
        for (const [label, bin] of round % 2 ? [...builds].reverse() : builds) {
          const key = `${command} ${label}`;
          if (!samples.has(key)) samples.set(key, []);
          samples.get(key)!.push(await timed(bin, argv, env, timeFile));
        }
      }
    }
    const after = machineInfo();
    const rows = (Object.keys(COMMANDS) as Command[]).flatMap((command) => builds.map(([label]) => {
      const s = samples.get(`${command} ${label}`)!;
      return {
        command: `podway ${COMMANDS[command].map((a) => (a === 'POOL' ? 'pool.yaml' : a)).join(' ')}`,
        build: label,
        n: s.length,
        wallMs: Math.round(median(s.map((x) => x.wallMs))),
        wallMinMs: Math.round(Math.min(...s.map((x) => x.wallMs))),
        wallMaxMs: Math.round(Math.max(...s.map((x) => x.wallMs))),
        cpuS: Number(median(s.map((x) => x.cpuS)).toFixed(2)),
        cpuMaxS: Number(Math.max(...s.map((x) => x.cpuS)).toFixed(2)),
        rssMb: Math.round(median(s.map((x) => x.rssMb))),
      };
    }));
    if (args.json) {
      console.log(JSON.stringify({ before, after, nodes: NODES, addressesPerNode: ADDRESSES_PER_NODE, rows }, null, 2));
      return;
    }
    console.log(`${before.cpu}, ${before.nproc} vCPUs, kernel ${before.kernel}, Node ${before.node}; ${before.date} - ${after.date}`);
    console.log(`load average before ${before.loadavg.join(' ')}, after ${after.loadavg.join(' ')}; ${NODES} Nodes, ${NODES * ADDRESSES_PER_NODE} addresses; medians of ${args.runs} rounds\n`);
    console.log('| command | build | wall ms (min-max) | CPU-s (max) | RSS MB |');
    console.log('|---|---|---:|---:|---:|');
    for (const r of rows) console.log(`| ${r.command} | ${r.build} | ${r.wallMs} (${r.wallMinMs}-${r.wallMaxMs}) | ${r.cpuS.toFixed(2)} (${r.cpuMaxS.toFixed(2)}) | ${r.rssMb} |`);
    if (args.compare) {
      console.log('\n| command | wall this / compare | CPU this / compare |');
      console.log('|---|---:|---:|');
      for (let i = 0; i < rows.length; i += 2) {
        const [a, b] = [rows[i]!, rows[i + 1]!];
        console.log(`| ${a.command} | ${(a.wallMs / b.wallMs).toFixed(2)} | ${(a.cpuS / b.cpuS).toFixed(2)} |`);
      }
    }
  } finally {
    await etcd.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((e) => {
  console.error(e instanceof Error ? e.message : e);
  process.exitCode = 1;
});
