/**
 * A pod looping GET /readyz on its node's metrics port (keep-alive, one request at a time, as fast
 * as answers come): the CPU of `podway run` (its whole process: the forwarding thread serves the
 * port, the workers are asked for the report) over the loop, for this checkout and a baseline
 * checkout, alternately in the same run.
 *
 *   flock /tmp/pw-bench.lock node dist/bench/e2e/readyz-loop.js BASELINE_ROOT [seconds=8] [rounds=3] [podway run args...]
 *
 * BASELINE_ROOT: another checkout, built (its bin/podway.js runs). Root (network namespaces). The
 * client is this file run with `client URL SECONDS` in the pod's namespace; it prints the requests
 * it made. Lab: one node, one veth pod, the YAML datastore.
 */
import { request, Agent } from 'node:http';
import * as path from 'node:path';
import { Lab } from '../../src/lab/lab';
import { execBounded } from '../../test/e2e/tools';
import { sampleTree, treeUsage } from './proc-tree';

const PORT = 9091;

async function client(url: string, seconds: number): Promise<void> {
  const agent = new Agent({ keepAlive: true, maxSockets: 1 });
  const end = Date.now() + seconds * 1000;
  let n = 0;
  let failed = 0;
  while (Date.now() < end && n + failed < 1_000_000) {
    await new Promise<void>((resolve) => {
      const req = request(url, { agent, timeout: 5000 }, (res) => {
        res.resume();
        res.on('end', () => (res.statusCode === 200 || res.statusCode === 503 ? n++ : failed++, resolve()));
      });
      req.on('timeout', () => req.destroy(new Error('timed out')));
      req.on('error', () => (failed++, resolve()));
      req.end();
    });
  }
  agent.destroy();
  process.stdout.write(JSON.stringify({ requests: n, failed }) + '\n');
}

async function main(): Promise<void> {
  if (process.argv[2] === 'client') return client(process.argv[3], Number(process.argv[4]));
  const base = process.argv[2];
  const seconds = Number(process.argv[3] ?? 8);
  const rounds = Number(process.argv[4] ?? 3);
  const args = ['--metrics-port', String(PORT), ...process.argv.slice(5)];
  if (!base) throw new Error('usage: readyz-loop.js BASELINE_ROOT [seconds] [rounds] [podway run args...]');
  const here = path.resolve(__dirname, '..', '..', '..');
  const lab = new Lab([{ name: 'node1', subnet: 'a', pods: [{ name: 'web-1', type: 'veth' }] }]);
  const results: { which: string; cpuS: number; requests: number; idleCpuS: number }[] = [];
  try {
    lab.build();
    const n = lab.node('node1');
    const pod = lab.pod('web-1');
    for (let r = 0; r < rounds; r++) {
      for (const [which, root] of [['baseline', base], ['this', here]] as const) {
        await lab.startPodway('node1', 60_000, args, {}, root);
        await new Promise((res) => setTimeout(res, 3000)); // past the start's work
        const pid = n.proc!.pid!;
        const i0 = sampleTree(pid);
        await new Promise((res) => setTimeout(res, seconds * 1000));
        const i1 = sampleTree(pid, i0);
        const a = sampleTree(pid);
        const c = await execBounded('ip', ['netns', 'exec', pod.ns, process.execPath, __filename, 'client', `http://${n.ip}:${PORT}/readyz`, String(seconds)], (seconds + 30) * 1000);
        const b = sampleTree(pid, a);
        const got = JSON.parse(c.stdout.trim() || '{"requests":0}') as { requests: number; failed?: number };
        const row = { which, cpuS: +treeUsage(a, b).cpuSeconds.toFixed(2), requests: got.requests, idleCpuS: +treeUsage(i0, i1).cpuSeconds.toFixed(2) };
        results.push(row);
        process.stdout.write(`round ${r + 1} ${which}: ${JSON.stringify(row)}${got.failed ? ` failed ${got.failed}` : ''}\n`);
        await lab.stopPodway('node1');
      }
    }
  } finally {
    for (const nd of lab.nodes) await lab.stopPodway(nd.name);
    lab.destroy();
  }
  for (const which of ['baseline', 'this']) {
    const rs = results.filter((x) => x.which === which);
    process.stdout.write(`${which}: podway CPU s per ${seconds} s loop ${rs.map((x) => x.cpuS).join(', ')} (idle ${rs.map((x) => x.idleCpuS).join(', ')}); requests ${rs.map((x) => x.requests).join(', ')}\n`);
  }
}

main().catch((e) => {
  process.stderr.write(`${(e as Error).stack}\n`);
  process.exit(1);
});
