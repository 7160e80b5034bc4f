// The "container runtime" of bench/cni: run inside the node's network namespace (as a runtime
// is), it spawns the installed plugin for each call with only the CNI environment and the network
// config on stdin, and times the plugin's whole process (spawn to stdout closed and exit), which
// is what a runtime waits for. Calls run `concurrency` at a time. With `probe`, right after each
// ADD returns it pings the new pod from a pod already attached (ping -D: the reply's arrival
// time) to time ADD's return -> first packet forwarded to the pod and back.
//
// With `measure`, each plugin process runs under GNU time (/usr/bin/time): its CPU seconds (user +
// system, with the processes it waited for: ip, nsenter, ethtool) and its maximum resident set.
//
// Usage (bench/cni/run.ts does it): ip netns exec NODE node dist/bench/cni/driver.js < job.json
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';

/** GNU time, for each call's CPU and RSS (scripts/setup.sh installs it). */
export const TIME_BINARY = '/usr/bin/time';

export interface DriverCall {
  readonly command: 'ADD' | 'DEL';
  readonly containerId: string;
  readonly netns: string;
  readonly ifname: string;
  /** Another build's plugin (run.ts --compare); default: the job's. */
  readonly plugin?: string;
}

export interface DriverJob {
  /** The plugin executable (the shim `podway cni install` wrote). */
  readonly plugin: string;
  readonly cniPath: string;
  /** The network config the runtime passes (conflist entry with cniVersion and name). */
  readonly config: Record<string, unknown>;
  readonly calls: readonly DriverCall[];
  readonly concurrency: number;
  /** Ping each pod ADD made from this namespace (a path) right after ADD returns. */
  readonly probe?: { readonly fromNetns: string; readonly timeoutS: number };
  /** Run each plugin process under GNU time: its CPU seconds and maximum RSS. */
  readonly measure?: boolean;
}

export interface DriverSample {
  readonly command: string;
  readonly containerId: string;
  readonly exitCode: number | null;
  /** The plugin process, spawn to exit, ms. */
  readonly ms: number;
  /** With `measure`: user + system CPU seconds of the plugin and the processes it waited for. */
  readonly cpuS?: number;
  /** With `measure`: the largest resident set of the plugin (or one of its children), KiB. */
  readonly maxRssKb?: number;
  /** The pod's address (ADD). */
  readonly ip?: string;
  /** ADD's return -> the first echo reply from the pod, ms (null: no reply within timeoutS). */
  readonly firstPacketMs?: number | null;
  /** stdout and stderr when the call failed. */
  readonly failure?: string;
}

export interface DriverResult {
  readonly samples: DriverSample[];
  /** All calls, first spawn to last exit, ms. */
  readonly wallMs: number;
}

const nowEpochMs = (): number => performance.timeOrigin + performance.now();

let timeDir: string | null = null;
let timeFiles = 0;

/** GNU time's `%U %S %M` line: CPU seconds (user + system) and max RSS in KiB. */
function readTime(file: string): { cpuS: number; maxRssKb: number } | null {
  try {
    const last = readFileSync(file, 'utf8').trim().split('\n').pop() ?? '';
    const [u, sys, rss] = last.split(' ').map(Number);
    return Number.isFinite(u) && Number.isFinite(sys) && Number.isFinite(rss) ? { cpuS: Number((u! + sys!).toFixed(3)), maxRssKb: rss! } : null;
  } catch {
    return null;
  }
}

function runPlugin(job: DriverJob, call: DriverCall): Promise<{ code: number | null; stdout: string; stderr: string; ms: number; endedAt: number; cpuS?: number; maxRssKb?: number }> {
  const env = {
    CNI_COMMAND: call.command, CNI_CONTAINERID: call.containerId, CNI_NETNS: call.netns, CNI_IFNAME: call.ifname,
    CNI_ARGS: 'IgnoreUnknown=1', CNI_PATH: job.cniPath,
  };
  const plugin = call.plugin ?? job.plugin;
  let timeFile: string | null = null;
  if (job.measure) {
    timeDir ??= mkdtempSync(join(tmpdir(), 'podway-bench-cni-time-'));
    timeFile = join(timeDir, `${timeFiles++}`);
  }
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    // GNU time forks and waits for the plugin: about a millisecond more on the wall time.
    const child = timeFile ? spawn(TIME_BINARY, ['-f', '%U %S %M', '-o', timeFile, plugin], { env, stdio: ['pipe', 'pipe', 'pipe'] }) : spawn(plugin, [], { env, stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), 60_000);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      const ms = performance.now() - t0;
      const measured = timeFile ? readTime(timeFile) : null;
      resolve({ code, stdout, stderr, ms, endedAt: nowEpochMs(), ...(measured ?? {}) });
    });
    child.stdin.end(JSON.stringify(job.config));
  });
}

/** ping -D from `fromNetns` until the first reply; its timestamp minus `since` (epoch ms). */
function firstReply(fromNetns: string, ip: string, since: number, timeoutS: number): Promise<number | null> {
  return new Promise((resolve) => {
    const p = spawn('nsenter', [`--net=${fromNetns}`, 'ping', '-D', '-n', '-i', '0.005', '-c', '1', '-w', String(timeoutS), ip], { stdio: ['ignore', 'pipe', 'ignore'] });
    let out = '';
    p.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
    const timer = setTimeout(() => p.kill('SIGKILL'), (timeoutS + 5) * 1000);
    p.on('close', () => {
      clearTimeout(timer);
      const m = /^\[(\d+\.\d+)\] \d+ bytes from/m.exec(out);
      resolve(m ? Number(m[1]) * 1000 - since : null);
    });
  });
}

async function one(job: DriverJob, call: DriverCall): Promise<DriverSample> {
  const r = await runPlugin(job, call);
  const base = { command: call.command, containerId: call.containerId, exitCode: r.code, ms: r.ms, cpuS: r.cpuS, maxRssKb: r.maxRssKb };
  if (r.code !== 0) return { ...base, failure: `${r.stdout.trim()} ${r.stderr.trim()}`.slice(0, 500) };
  if (call.command !== 'ADD') return base;
  const ip = String((JSON.parse(r.stdout) as { ips: { address: string }[] }).ips[0].address).split('/')[0];
  if (!job.probe) return { ...base, ip };
  return { ...base, ip, firstPacketMs: await firstReply(job.probe.fromNetns, ip, r.endedAt, job.probe.timeoutS) };
}

export async function drive(job: DriverJob): Promise<DriverResult> {
  const samples: DriverSample[] = new Array(job.calls.length);
  let next = 0;
  const t0 = performance.now();
  const worker = async (): Promise<void> => {
    while (next < job.calls.length) {
      const i = next++;
      samples[i] = await one(job, job.calls[i]);
    }
  };
  try {
    await Promise.all(Array.from({ length: Math.max(1, Math.min(job.concurrency, job.calls.length)) }, worker));
  } finally {
    if (timeDir) rmSync(timeDir, { recursive: true, force: true });
    timeDir = null;
  }
  return { samples, wallMs: performance.now() - t0 };
}

if (require.main === module) {
  let text = '';
  process.stdin.setEncoding('utf8').on('data', (d: string) => (text += d));
  process.stdin.on('end', () => {
    drive(JSON.parse(text) as DriverJob).then(
      (r) => process.stdout.write(JSON.stringify(r) + '\n'),
      (e) => {
        process.stderr.write(`cni bench driver: ${(e as Error).stack ?? e}\n`);
        process.exit(1);
      },
    );
  });
}
