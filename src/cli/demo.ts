/**
 * `podway demo`: a three-node Calico-shaped cluster in network namespaces (veth, TAP and TUN pods;
 * nodes 1 and 2 share a subnet, node 3 sits behind a router), one podway per node, pings same-node
 * and cross-node in every mode (switching the IPPool's mode by editing the resource file while
 * podway runs), a results table, then the life of one cross-node packet on both nodes. It always
 * cleans up.
 *
 * `--datastore etcd` runs the same cluster on a real etcd (Debian's /usr/bin/etcd, started inside
 * the lab's fabric namespace with a temporary data dir), `--datastore embedded` on the embedded
 * store in a temporary directory: the pool and the pods' endpoints are written in Calico's layout,
 * the pods' addresses come from IPAM, each podway registers its own Node, and the mode switches
 * are writes of the IPPool. Without the option the demo uses the YAML file, as before.
 */
import { execFileSync } from 'node:child_process';
import * as path from 'node:path';
import { Lab, Mode, LabPod } from '../lab/lab';
import type { KvStore } from '../control/kv/kv';
import { EtcdKv } from '../control/kv/etcd-kv';
import { FileKv } from '../control/kv/file-kv';
import { table } from './format';
import { formatTrace } from './main';
import { controlRequest } from '../dataplane/control-server';
import { humanLine } from '../observe/log';
import { podwayCommand } from '../util/invocation';

/**
 * How to run the podway that runs this demo, for the hints it prints: after `npm install` in a
 * checkout `podway` is not on PATH (`node bin/podway.js`), nor after npx (`npx podway`); an installed
 * one is named as it was run.
 */
function thisCommand(): string {
  const script = process.argv[1] ?? '';
  if (script.includes(`${path.sep}_npx${path.sep}`)) return 'npx podway';
  if (!script.endsWith('.js')) return script ? path.basename(script) : 'podway';
  const rel = path.relative(process.cwd(), script);
  return `node ${rel.startsWith('..') ? script : rel}`;
}

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

/** Where the demo's cluster state lives: the YAML file (default), etcd, or the embedded store. */
export type DemoDatastore = 'file' | 'etcd' | 'embedded';

/** Put the lab on a KV datastore; returns the store (closed by the caller) and what to print. */
async function openKvDatastore(lab: Lab, kind: 'etcd' | 'embedded'): Promise<{ kv: KvStore; text: string }> {
  if (kind === 'etcd') {
    const etcd = await lab.startEtcd();
    const kv = new EtcdKv({ endpoints: [etcd.localEndpoint] });
    await lab.useKvDatastore(kv, `etcd:${etcd.endpoint}`);
    return { kv, text: `etcd ${etcd.endpoint} (pid ${etcd.pid()} in namespace ${lab.fabric}, data ${etcd.dataDir})` };
  }
  const dir = path.join(lab.dir, 'datastore'); // removed with the lab
  const kv = new FileKv({ dir });
  await lab.useKvDatastore(kv, `embedded:${dir}`);
  return { kv, text: `embedded ${dir}` };
}

export async function runDemo(opts: { keep: boolean; datastore?: DemoDatastore }): Promise<void> {
  const datastore = opts.datastore ?? 'file';
  if (process.getuid && process.getuid() !== 0) {
    throw new Error(`the demo builds network namespaces and needs root: run \`sudo ${podwayCommand()} demo\``);
  }
  if (!has('ping') || !has('ethtool')) {
    process.stderr.write('demo: installing the Debian packages the demo and the tests use (scripts/setup.sh)\n');
    execFileSync('bash', [path.resolve(__dirname, '..', '..', '..', 'scripts', 'setup.sh')], { stdio: 'inherit' });
  }
  // Dual-stack with the resource file: the nodes on subnet a (node1, node2) and their pods get
  // IPv6 too. (On a KV datastore podway registers its Nodes itself, without IPv6 yet.)
  const lab = new Lab(Lab.defaultSpec(), { dualStack: datastore === 'file' });
  let kv: KvStore | null = null;
  const cleanup = () => lab.destroy(); // also kills the demo's etcd and removes its data
  const onSignal = () => {
    cleanup();
    process.exit(130);
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  try {
    lab.build();
    const subnetOf = (node: string) => (lab.node(node).ip.startsWith('10.99.') ? 'a' : 'b');
    console.log(`cluster ${lab.tag}: ${lab.nodes.map((n) => `${n.name} ${n.ip}${n.ip6 ? ' ' + n.ip6 : ''} (${n.pods.map((p) => `${p.name} ${p.type} ${p.ip}${p.ip6 ? ' ' + p.ip6 : ''}`).join(', ')})`).join('; ')}`);
    if (datastore === 'file') console.log(`resources: ${lab.file}`);
    else {
      const opened = await openKvDatastore(lab, datastore);
      kv = opened.kv;
      console.log(`datastore: ${opened.text}`);
    }
    for (const n of lab.nodes) await lab.startPodway(n.name);
    console.log(`podway running on ${lab.nodes.length} nodes\n`);

    const paths: [string, string][] = [['web-1', 'tap-1'], ['web-1', 'web-2'], ['tap-1', 'tap-2'], ['web-1', 'web-3'], ['tap-1', 'tun-3']];
    const rows: Record<string, unknown>[] = [];
    for (const mode of MODES) {
      await lab.applyMode(mode);
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
      // IPv6 between the dual-stack pods: VXLAN over IPv6 in the VXLAN modes, else unencapsulated
      // (IPIP is IPv4 only, so the IPv6 pool is Never there).
      for (const [a, b] of paths) {
        const from: LabPod = lab.pod(a);
        const to: LabPod = lab.pod(b);
        if (!from.ip6 || !to.ip6) continue;
        const kind6 = from.node === to.node ? 'local' : mode === 'vxlan' ? 'vxlan' : 'direct';
        // The first packet may wait for the gateway's NA and the underlay neighbour: one warm-up ping.
        lab.ping(a, to.ip6, 1);
        const r = lab.ping(a, to.ip6, 4);
        rows.push({ mode, path: `${a} -> ${b} over IPv6`, route: kind6, loss: `${r.loss}%`, rtt: r.rttMs !== null ? `${r.rttMs.toFixed(3)} ms` : '-', ttl: r.ttl ?? '-' });
      }
    }
    process.stdout.write(table(rows, ['mode', 'path', 'route', 'loss', 'rtt', 'ttl']));

    // The life of one cross-node packet, seen by the podway of each node it crosses.
    await lab.applyMode('vxlan');
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
    if (src.ip6 && dst.ip6) {
      const filter6 = ['host', dst.ip6, 'and', 'icmp6'];
      const u1 = controlRequest(lab.node('node1').control, { cmd: 'trace', filter: filter6, count: 1, timeoutMs: 5000 }, 10_000);
      const u2 = controlRequest(lab.node('node2').control, { cmd: 'trace', filter: filter6, count: 1, timeoutMs: 5000 }, 10_000);
      await new Promise((r) => setTimeout(r, 100));
      lab.ping(src.name, dst.ip6, 1);
      const [s1, s2] = (await Promise.all([u1, u2])) as Parameters<typeof formatTrace>[0][];
      console.log(`\nlife of one IPv6 packet ${src.name} ${src.ip6} -> ${dst.name} ${dst.ip6} (vxlan over IPv6):`);
      process.stdout.write(`node1:\n${formatTrace(s1)}node2:\n${formatTrace(s2)}`);
    }

    const failed = rows.filter((r) => r.loss !== 'n/a' && r.loss !== '0%');
    if (opts.keep) {
      console.log(`\ncluster kept; Ctrl-C to remove it. Try: ip netns exec ${src.ns} ping ${dst.ip}; ${thisCommand()} routes --control ${lab.node('node1').control}`);
      await new Promise(() => {});
    }
    if (failed.length) {
      for (const n of lab.nodes) console.error(`--- ${n.name} log tail:\n${n.log.slice(-10).map((l) => humanLine(l).trimEnd()).join('\n')}`);
      throw new Error(`${failed.length} path(s) lost packets`);
    }
    console.log('\nall paths delivered; cleaning up');
  } finally {
    for (const n of lab.nodes) await lab.stopPodway(n.name).catch(() => null);
    await kv?.close().catch(() => undefined);
    cleanup();
    process.removeListener('SIGINT', onSignal);
    process.removeListener('SIGTERM', onSignal);
  }
}
