/**
 * `podway demo`: a three-node Calico-shaped cluster in network namespaces (veth, TAP and TUN pods;
 * nodes 1 and 2 share a subnet, node 3 sits behind a router), one podway per node, pings same-node
 * and cross-node in every mode (switching the IPPool's mode by editing the resource file while
 * podway runs), a results table, then the life of one cross-node packet on both nodes. It always
 * cleans up.
 */
import { execFileSync } from 'node:child_process';
import * as path from 'node:path';
import { Lab, Mode, LabPod } from '../lab/lab';
import { table } from './format';
import { formatTrace } from './main';
import { controlRequest } from '../dataplane/control-server';

const MODES: Mode[] = ['vxlan', 'ipip', 'direct', 'crosssubnet'];

function has(cmd: string): boolean {
  try {
    execFileSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

function expectedKind(mode: Mode, from: string, to: string, subnetOf: (n: string) => string): string {
  if (from === to) return 'local';
  const same = subnetOf(from) === subnetOf(to);
  if (mode === 'direct') return 'direct';
  if (mode === 'crosssubnet') return same ? 'direct' : 'vxlan';
  return mode;
}

export async function runDemo(opts: { keep: boolean }): Promise<void> {
  if (process.getuid && process.getuid() !== 0) {
    throw new Error('the demo builds network namespaces and needs root: run `sudo npx podway demo`');
  }
  if (!has('ping') || !has('ethtool')) {
    process.stderr.write('demo: installing ping and ethtool (scripts/setup.sh)\n');
    execFileSync('bash', [path.resolve(__dirname, '..', '..', '..', 'scripts', 'setup.sh')], { stdio: 'inherit' });
  }
  const lab = new Lab(Lab.defaultSpec());
  const cleanup = () => lab.destroy();
  const onSignal = () => {
    cleanup();
    process.exit(130);
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  try {
    lab.build();
    const subnetOf = (node: string) => (lab.node(node).ip.startsWith('10.99.') ? 'a' : 'b');
    console.log(`cluster ${lab.tag}: ${lab.nodes.map((n) => `${n.name} ${n.ip} (${n.pods.map((p) => `${p.name} ${p.type} ${p.ip}`).join(', ')})`).join('; ')}`);
    console.log(`resources: ${lab.file}`);
    for (const n of lab.nodes) await lab.startPodway(n.name);
    console.log(`podway running on ${lab.nodes.length} nodes\n`);

    const paths: [string, string][] = [['web-1', 'tap-1'], ['web-1', 'web-2'], ['tap-1', 'tap-2'], ['web-1', 'web-3'], ['tap-1', 'tun-3']];
    const rows: Record<string, unknown>[] = [];
    for (const mode of MODES) {
      lab.setMode(mode);
      const n3block = lab.node('node3').block;
      const n2block = lab.node('node2').block;
      await lab.waitApplied((routes, n) => {
        if (n.name === 'node1') {
          const k2 = routes.find((r) => r.cidr === n2block)?.kind;
          const k3 = routes.find((r) => r.cidr === n3block)?.kind;
          return k2 === expectedKind(mode, 'node1', 'node2', subnetOf) && k3 === expectedKind(mode, 'node1', 'node3', subnetOf);
        }
        return true;
      });
      for (const [a, b] of paths) {
        const from: LabPod = lab.pod(a);
        const to: LabPod = lab.pod(b);
        const kind = expectedKind(mode, from.node, to.node, subnetOf);
        const label = `${a} (${from.node}, ${from.type}) -> ${b} (${to.node}, ${to.type})`;
        if (mode === 'direct' && subnetOf(from.node) !== subnetOf(to.node)) {
          rows.push({ mode, path: label, route: 'direct', loss: 'n/a', rtt: '', ttl: 'across a router, unencapsulated needs a BGP fabric' });
          continue;
        }
        const r = lab.ping(a, to.ip, 4);
        rows.push({ mode, path: label, route: kind, loss: `${r.loss}%`, rtt: r.rttMs !== null ? `${r.rttMs.toFixed(3)} ms` : '-', ttl: r.ttl ?? '-' });
      }
    }
    process.stdout.write(table(rows, ['mode', 'path', 'route', 'loss', 'rtt', 'ttl']));

    // The life of one cross-node packet, seen by the podway of each node it crosses.
    lab.setMode('vxlan');
    await lab.waitApplied((routes, n) => n.name !== 'node1' || routes.find((r) => r.cidr === lab.node('node2').block)?.kind === 'vxlan');
    const src = lab.pod('web-1');
    const dst = lab.pod('web-2');
    const filter = ['host', dst.ip, 'and', 'icmp'];
    const t1 = controlRequest(lab.node('node1').control, { cmd: 'trace', filter, count: 1, timeoutMs: 5000 }, 10_000);
    const t2 = controlRequest(lab.node('node2').control, { cmd: 'trace', filter, count: 1, timeoutMs: 5000 }, 10_000);
    await new Promise((r) => setTimeout(r, 100));
    lab.ping(src.name, dst.ip, 1);
    const [r1, r2] = (await Promise.all([t1, t2])) as Parameters<typeof formatTrace>[0][];
    console.log(`\nlife of one packet ${src.name} ${src.ip} -> ${dst.name} ${dst.ip} (vxlan):`);
    process.stdout.write(`node1:\n${formatTrace(r1)}node2:\n${formatTrace(r2)}`);

    const failed = rows.filter((r) => r.loss !== 'n/a' && r.loss !== '0%');
    if (opts.keep) {
      console.log(`\ncluster kept; Ctrl-C to remove it. Try: ip netns exec ${src.ns} ping ${dst.ip}; podway routes --control ${lab.node('node1').control}`);
      await new Promise(() => {});
    }
    if (failed.length) {
      for (const n of lab.nodes) console.error(`--- ${n.name} log tail:\n${n.log.slice(-10).join('\n')}`);
      throw new Error(`${failed.length} path(s) lost packets`);
    }
    console.log('\nall paths delivered; cleaning up');
  } finally {
    for (const n of lab.nodes) await lab.stopPodway(n.name).catch(() => null);
    cleanup();
    process.removeListener('SIGINT', onSignal);
    process.removeListener('SIGTERM', onSignal);
  }
}
