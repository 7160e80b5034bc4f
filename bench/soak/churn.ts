// Pod-churn soak (`sudo node dist/bench/soak/churn.js`; see "Pod churn soak" in bench/README.md).
//
// One podway node (a Lab node namespace, `podway run` with --metrics-port) on the embedded store or
// a real etcd, a podman "host" in the node's namespace with podway's plugin installed for three
// networks (veth, tap, tun), one long-lived peer container, and N churn cycles, each one container:
// made, attached, pinged and given a little TCP to the peer, then ended one of several ways
// (podman rm -f; kill then rm; restart, ping again, rm -f; stop then rm) on the veth, tap or tun
// network. Every --every cycles (and before and after) it samples what could grow with churn:
//   podway run: RSS, heap, threads, fds (by kind), active handles by type (timers), CPU ticks;
//   /metrics: series, series naming a port that is gone; status/endpoints/counters sizes;
//   IPAM: handles, blocks' allocations and attributes, `podway ipam check`; store keys/files;
//   node namespace: links, cali veths, nft ruleset lines and set elements, routes, neighbours,
//   qdiscs; machine's netns count; files under the lab, spool and lock directories; model cache.
// Prints each metric's first (after --warmup cycles), last and growth per 100 cycles, and the CPU
// podway spent per cycle. Bounded by --cycles and --max-minutes. Everything it made is removed.
//
// Usage: node dist/bench/soak/churn.js [--store embedded|etcd] [--cycles 200] [--every 25]
//          [--warmup 10] [--max-minutes 20] [--out FILE.jsonl] [--kinds veth,tap,tun] [--dump DIR] [--inspect]
// (--dump: each sample's /metrics text, DIR/metrics-STORE-CYCLE.txt, to diff the series)
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, readlinkSync, statSync, writeFileSync, appendFileSync, mkdirSync, copyFileSync, chmodSync, symlinkSync } from 'node:fs';
import * as path from 'node:path';
import { Lab, LabKvStore, LabNodeSpec } from '../../src/lab/lab';
import { controlRequest } from '../../src/dataplane/control-server';
import { atCleanup, guard, teardown } from '../../test/e2e/e2e-kit';
import { forgetCniCacheDirs, missingCniCacheDirs, PodmanHost, podmanMissing, BUSYBOX } from '../../test/cni/podman-kit';

const ROOT = path.resolve(__dirname, '..', '..', '..');
const PODWAY = path.join(ROOT, 'bin', 'podway.js');
const RUN_FLAGS = ['--ulimit', 'nofile=1024:1024', '--ulimit', 'nproc=1024:1024', '--cap-add', 'NET_RAW'];
const METRICS_PORT = 19391;

function arg(name: string, def: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : def;
}
const STORE = arg('store', 'embedded') as 'embedded' | 'etcd';
const CYCLES = Number(arg('cycles', '200'));
const EVERY = Number(arg('every', '25'));
const WARMUP = Number(arg('warmup', '10'));
const MAX_MS = Number(arg('max-minutes', '20')) * 60_000;
const OUT = arg('out', '');
const DUMP = arg('dump', '');
/** --inspect: podway run under the inspector; each sample adds every thread's heap after a full GC (heap-probe.ts). */
const INSPECT = process.argv.includes('--inspect');
const INSPECT_PORT = 19392;
const KINDS = arg('kinds', 'veth,tap,tun').split(',');

function sh(cmd: string, args: string[], timeout = 30_000): string {
  try {
    return execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], timeout, maxBuffer: 64 << 20 });
  } catch (e) {
    const err = e as { stdout?: string; stderr?: string; status?: number };
    return `${err.stdout ?? ''}${err.stderr ?? ''}\n#exit ${err.status}`;
  }
}

function countFiles(dir: string, skip: (p: string) => boolean = () => false): { files: number; bytes: number } {
  let files = 0;
  let bytes = 0;
  const walk = (d: string) => {
    let ents: import('node:fs').Dirent[];
    try {
      ents = readdirSync(d, { withFileTypes: true });
    } catch {
      return;
    }
    for (const e of ents) {
      const p = path.join(d, e.name);
      if (skip(p)) continue;
      if (e.isDirectory()) walk(p);
      else {
        files++;
        try {
          bytes += statSync(p).size;
        } catch {
          /* gone */
        }
      }
    }
  };
  walk(dir);
  return { files, bytes };
}

async function main(): Promise<void> {
  const missing = podmanMissing();
  if (missing) throw new Error(missing);
  const spec: LabNodeSpec[] = [{ name: 'node1', subnet: 'a', pods: [] }];
  const lab = guard(new Lab(spec));
  let opened: LabKvStore | null = null;
  let host: PodmanHost | null = null;
  const cacheDirs = missingCniCacheDirs();
  const forgetDirs = atCleanup(() => forgetCniCacheDirs(cacheDirs));
  const rows: Record<string, number>[] = [];
  try {
    lab.build();
    opened = await lab.openKvStore(STORE, 'soak-store-');
    const { kv, spec: dsSpec } = opened;
    await lab.useKvDatastore(kv, dsSpec);
    const node = lab.node('node1');
    await lab.startPodway('node1', 60_000, ['--metrics-port', String(METRICS_PORT), '--metrics-host', '127.0.0.1'], INSPECT ? { NODE_OPTIONS: `--inspect=127.0.0.1:${INSPECT_PORT}` } : {});
    const pid = node.proc!.pid!;
    host = new PodmanHost(node.ns, `soak-${lab.tag}`);
    const h = host;
    const pendingDir = path.join(h.dir, 'pending-del');
    const lockDir = path.join(h.dir, 'run');
    for (const [net, type] of [['podway', 'veth'], ['podway-tap', 'tap'], ['podway-tun', 'tun']]) {
      const out = execFileSync('nsenter', [`--net=/run/netns/${node.ns}`, process.execPath, PODWAY, 'cni', 'install', '--bin-dir', h.binDir, '--conf-dir', h.confDir, '--datastore', dsSpec, '--node', node.name, '--control', node.control,
        '--ipam-lock-file', path.join(lockDir, 'ipam.lock'), '--pending-del-dir', pendingDir, '--name', net, '--priority', type === 'veth' ? '10' : type === 'tap' ? '20' : '30', '--interface-type', type], { encoding: 'utf8' });
      void out;
    }
    // one root filesystem for every container (they run one after another)
    const rootfs = path.join(h.dir, 'rootfs-soak');
    for (const d of ['bin', 'tmp', 'etc', 'proc', 'sys', 'dev']) mkdirSync(path.join(rootfs, d), { recursive: true });
    copyFileSync(BUSYBOX, path.join(rootfs, 'bin', 'busybox'));
    chmodSync(path.join(rootfs, 'bin', 'busybox'), 0o755);
    for (const a of ['sh', 'sleep', 'ip', 'ping', 'nc', 'dd', 'cat', 'true']) symlinkSync('busybox', path.join(rootfs, 'bin', a));
    const run = (name: string, net: string, cmd: string[]) => h.podman(['run', '-d', '--name', name, '--network', net, ...RUN_FLAGS, '--rootfs', rootfs, ...cmd]).trim();
    const peerName = `soak-peer-${lab.tag}`;
    run(peerName, 'podway', ['/bin/sh', '-c', 'while true; do nc -l -p 5000 >/dev/null; done']);
    const peerIp = h.inspect(peerName).NetworkSettings.Networks.podway.IPAddress as string;

    const metrics = () => sh('ip', ['netns', 'exec', node.ns, 'curl', '-s', '--max-time', '10', `http://127.0.0.1:${METRICS_PORT}/metrics`]);
    const podway = (args: string[]) => sh('nsenter', [`--net=/run/netns/${node.ns}`, process.execPath, PODWAY, ...args], 60_000);
    const deadPorts = new Set<string>();
    const sandboxes = new Set<string>();
    const ids = new Set<string>();
    const sandboxOf = (name: string) => {
      const k = h.inspect(name).NetworkSettings.SandboxKey as string;
      if (k) sandboxes.add(k);
    };
    const cpuTicks = () => {
      const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
      return Number(f[11]) + Number(f[12]);
    };

    const sample = async (cycle: number): Promise<Record<string, number>> => {
      const r: Record<string, number> = { cycle, t: Date.now() };
      const status = readFileSync(`/proc/${pid}/status`, 'utf8');
      r.rssKiB = Number(/VmRSS:\s+(\d+)/.exec(status)![1]);
      r.threads = Number(/Threads:\s+(\d+)/.exec(status)![1]);
      r.cpuTicks = cpuTicks();
      const kinds: Record<string, number> = {};
      for (const fd of readdirSync(`/proc/${pid}/fd`)) {
        let l = '?';
        try {
          l = readlinkSync(`/proc/${pid}/fd/${fd}`);
        } catch {
          /* closed */
        }
        const k = l.startsWith('socket:') ? 'socket' : l.startsWith('anon_inode:') ? l.slice(11).replace(/[[\]]/g, '') : l.startsWith('pipe:') ? 'pipe' : l.startsWith('/dev/') ? l : l.startsWith('/proc/') || l.startsWith('/run/netns') || l.startsWith('net:') ? 'ns/proc' : 'file';
        kinds[k] = (kinds[k] ?? 0) + 1;
      }
      r.fds = Object.values(kinds).reduce((a, b) => a + b, 0);
      // podway run's child processes (the spawner): how many, their RSS and fds
      let kids = 0;
      let kidRss = 0;
      let kidFds = 0;
      for (const e of readdirSync('/proc')) {
        if (!/^\d+$/.test(e)) continue;
        try {
          const st = readFileSync(`/proc/${e}/status`, 'utf8');
          if (Number(/PPid:\s+(\d+)/.exec(st)![1]) !== pid) continue;
          kids++;
          kidRss += Number(/VmRSS:\s+(\d+)/.exec(st)?.[1] ?? 0);
          kidFds += readdirSync(`/proc/${e}/fd`).length;
        } catch {
          /* gone */
        }
      }
      r.children = kids;
      r.childRssKiB = kidRss;
      r.childFds = kidFds;
      for (const [k, v] of Object.entries(kinds)) r[`fd:${k}`] = v;
      const m = metrics();
      const series = m.split('\n').filter((l) => l && !l.startsWith('#'));
      r.metricSeries = series.length;
      const num = (re: RegExp) => {
        let s = 0;
        for (const l of series) if (re.test(l)) s += Number(l.split(' ').pop());
        return s;
      };
      r.heapUsed = num(/^nodejs_heap_size_used_bytes /);
      if (INSPECT) {
        const probe = sh('ip', ['netns', 'exec', node.ns, process.execPath, '--experimental-websocket', '--no-warnings', path.join(__dirname, 'heap-probe.js'), String(INSPECT_PORT)], 60_000);
        try {
          for (const [k, v] of Object.entries(JSON.parse(probe.trim().split('\n').pop()!) as Record<string, number>)) r[`gcHeap:${k}`] = v;
        } catch {
          console.log(`heap probe: ${probe}`);
        }
      }
      r.heapTotal = num(/^nodejs_heap_size_total_bytes /);
      r.external = num(/^nodejs_external_memory_bytes /);
      r.activeHandles = num(/^nodejs_active_handles_total /);
      for (const l of series) {
        const t = /^nodejs_active_handles\{type="([^"]+)"\} (\S+)/.exec(l);
        if (t) r[`handles:${t[1]}`] = Number(t[2]);
        const q = /^nodejs_active_resources\{type="([^"]+)"\} (\S+)/.exec(l);
        if (q) r[`res:${q[1]}`] = Number(q[2]);
      }
      r.seriesOfGonePorts = series.filter((l) => [...deadPorts].some((p) => l.includes(`"${p}"`))).length;
      const portLabels = new Set<string>();
      for (const l of series) for (const mm of l.matchAll(/(?:port|interface|endpoint|pod|workload)="([^"]*)"/g)) portLabels.add(mm[1]);
      r.portLabelValues = portLabels.size;
      const st = (await controlRequest(node.control, { cmd: 'status' }, 10_000)) as Record<string, unknown>;
      r.statusBytes = JSON.stringify(st).length;
      const eps = (await controlRequest(node.control, { cmd: 'endpoints' }, 10_000)) as unknown[];
      r.endpoints = eps.length;
      const ctr = await controlRequest(node.control, { cmd: 'counters' }, 10_000);
      r.countersBytes = JSON.stringify(ctr).length;
      // IPAM and the store
      const handles = await kv.list('/calico/ipam/v2/handle/');
      r.ipamHandles = handles.entries.length;
      const blocks = await kv.list('/calico/ipam/v2/assignment/');
      let alloc = 0;
      let attrs = 0;
      for (const b of blocks.entries) {
        const v = JSON.parse(b.value) as { allocations: (number | null)[]; attributes: unknown[] };
        alloc += v.allocations.filter((x) => x !== null).length;
        attrs += v.attributes.length;
      }
      r.ipamBlocks = blocks.entries.length;
      r.ipamAllocations = alloc;
      r.ipamAttributes = attrs;
      r.weps = (await kv.list('/calico/resources/v3/projectcalico.org/workloadendpoints/')).entries.length;
      r.storeKeys = (await kv.list('/')).entries.length;
      if (STORE === 'embedded') {
        const dir = dsSpec.slice('embedded:'.length);
        const c = countFiles(dir);
        r.storeFiles = c.files;
        r.storeBytes = c.bytes;
      }
      const chk = podway(['ipam', 'check', '--datastore', dsSpec]);
      r.ipamCheckBad = /#exit [1-9]/.test(chk) ? 1 : 0;
      // the node namespace
      const links = JSON.parse(sh('ip', ['-n', node.ns, '-j', 'link', 'show'])) as { ifname: string }[];
      r.links = links.length;
      r.caliLinks = links.filter((l) => l.ifname.startsWith('cali')).length;
      const rules = sh('ip', ['netns', 'exec', node.ns, 'nft', 'list', 'ruleset']);
      r.nftLines = rules.split('\n').length;
      r.nftElements = (rules.match(/elements = \{[^}]*\}/g) ?? []).reduce((a, s) => a + s.split(',').length, 0);
      r.nftRules = rules.split('\n').filter((l) => /^\t\t[^\t]/.test(l) && !/^\t\t(type|policy|elements|flags|typeof|size|timeout)/.test(l)).length;
      r.routes4 = sh('ip', ['-n', node.ns, '-4', 'route', 'show', 'table', 'all']).split('\n').filter(Boolean).length;
      r.routes6 = sh('ip', ['-n', node.ns, '-6', 'route', 'show', 'table', 'all']).split('\n').filter(Boolean).length;
      r.neigh = sh('ip', ['-n', node.ns, 'neigh', 'show']).split('\n').filter(Boolean).length + sh('ip', ['-n', node.ns, '-6', 'neigh', 'show']).split('\n').filter(Boolean).length;
      r.rules = sh('ip', ['-n', node.ns, 'rule', 'show']).split('\n').filter(Boolean).length;
      r.qdiscs = sh('tc', ['-n', node.ns, 'qdisc', 'show']).split('\n').filter(Boolean).length;
      r.netnsMachine = sh('ip', ['netns', 'list']).split('\n').filter(Boolean).length;
      r.sandboxesLeft = [...sandboxes].filter((s) => existsSync(s)).length;
      r.conntrack = Number(sh('ip', ['netns', 'exec', node.ns, 'cat', '/proc/sys/net/netfilter/nf_conntrack_count']).trim()) || 0;
      r.pendingDelFiles = countFiles(pendingDir).files;
      r.lockDirFiles = countFiles(lockDir).files;
      r.labDirFiles = countFiles(lab.dir, (p) => p.startsWith(path.join(lab.dir, 'soak-store-'))).files;
      r.hostDirFilesExclStorage = countFiles(h.dir, (p) => /\/(root|rootfs-soak|run|tmp)$/.test(p)).files;
      try {
        r.modelCacheBytes = statSync(lab.modelCachePath('node1')).size;
      } catch {
        r.modelCacheBytes = 0;
      }
      let mine = 0;
      try {
        for (const f of readdirSync('/var/lib/cni/results')) if ([...ids].some((id) => f.includes(id))) mine++;
      } catch {
        /* none */
      }
      r.cniCacheFilesOfOurs = mine;
      if (DUMP) writeFileSync(path.join(DUMP, `metrics-${STORE}-${cycle}.txt`), m);
      return r;
    };

    const log = (r: Record<string, number>) => {
      rows.push(r);
      if (OUT) appendFileSync(OUT, JSON.stringify(r) + '\n');
      console.log(`cycle ${r.cycle}: rss ${r.rssKiB} KiB heap ${(r.heapUsed / 1e6).toFixed(1)} MB fds ${r.fds} threads ${r.threads} series ${r.metricSeries} goneSeries ${r.seriesOfGonePorts} handles ${r.ipamHandles} alloc ${r.ipamAllocations} attrs ${r.ipamAttributes} keys ${r.storeKeys} links ${r.links} nft ${r.nftLines} routes ${r.routes4} neigh ${r.neigh} timers ${r['handles:Timeout'] ?? '-'}`);
    };
    if (OUT) writeFileSync(OUT, '');

    const started = Date.now();
    log(await sample(0));
    let cycle = 0;
    let cyclesAtWarm = -1;
    let ticksAtWarm = 0;
    let timeAtWarm = 0;
    const failures: string[] = [];
    while (cycle < CYCLES && Date.now() - started < MAX_MS) {
      cycle++;
      const kind = KINDS[cycle % KINDS.length];
      const net = kind === 'veth' ? 'podway' : `podway-${kind}`;
      const how = ['rm', 'kill', 'restart', 'stop'][Math.floor(cycle / KINDS.length) % 4];
      const name = `soak-${lab.tag}-${cycle}`;
      try {
        const id = run(name, net, ['/bin/sleep', '3600']);
        ids.add(id);
        sandboxOf(name);
        const wepIf = ((await kv.list('/calico/resources/v3/projectcalico.org/workloadendpoints/')).entries.map((e) => JSON.parse(e.value)).find((w) => w.spec.containerID === id)?.spec.interfaceName) as string | undefined;
        const probe = `ping -c 1 -W 2 ${peerIp} >/dev/null 2>&1 || ping -c 1 -W 2 ${peerIp} >/dev/null 2>&1 || ping -c 1 -W 3 ${peerIp} >/dev/null 2>&1; ping -c 3 -i 0.2 -W 2 ${peerIp} | grep -c 'bytes from'; dd if=/dev/zero bs=1024 count=64 2>/dev/null | nc -w 3 ${peerIp} 5000 && echo tcp-ok`;
        let out = h.exec(name, probe, 30_000);
        if (!/tcp-ok/.test(out) || !/^3$/m.test(out)) failures.push(`cycle ${cycle} ${kind}: ${out.replace(/\n/g, ' ')}`);
        if (how === 'rm') h.podman(['rm', '-f', '-t', '0', name]);
        else if (how === 'kill') {
          h.podman(['kill', name]);
          h.podman(['rm', name]);
        } else if (how === 'restart') {
          h.podman(['restart', '-t', '0', name]);
          sandboxOf(name);
          out = h.exec(name, probe, 30_000);
          if (!/tcp-ok/.test(out)) failures.push(`cycle ${cycle} ${kind} after restart: ${out.replace(/\n/g, ' ')}`);
          h.podman(['rm', '-f', '-t', '0', name]);
        } else {
          h.podman(['stop', '-t', '0', name]);
          h.podman(['rm', name]);
        }
        if (wepIf) deadPorts.add(wepIf);
      } catch (e) {
        failures.push(`cycle ${cycle} ${kind}/${how}: ${(e as Error).message.slice(0, 300)}`);
        try {
          h.podman(['rm', '-f', '-t', '0', name]);
        } catch {
          /* gone */
        }
      }
      if (cycle === WARMUP) {
        cyclesAtWarm = cycle;
        ticksAtWarm = cpuTicks();
        timeAtWarm = Date.now();
      }
      if (cycle % EVERY === 0 || cycle === WARMUP) log(await sample(cycle));
    }
    if (rows[rows.length - 1].cycle !== cycle) log(await sample(cycle));
    // settle: let podway's periodic work (orphan scans, pending-del replay) run, then sample again
    await new Promise((r) => setTimeout(r, 15_000));
    const settled = await sample(cycle);
    settled.settled = 1;
    log(settled);

    // the table
    const base = rows.find((r) => r.cycle === WARMUP) ?? rows[0];
    const last = settled;
    const n = last.cycle - base.cycle;
    const keys = [...new Set(rows.flatMap((r) => Object.keys(r)))].filter((k) => !['cycle', 't', 'cpuTicks', 'settled'].includes(k));
    console.log(`\nstore ${STORE}: ${cycle} cycles in ${((Date.now() - started) / 1000).toFixed(0)} s; growth from cycle ${base.cycle} to ${last.cycle} (settled), per 100 cycles:`);
    console.log(`${'metric'.padEnd(28)} ${'cycle0'.padStart(10)} ${'warm'.padStart(10)} ${'end'.padStart(10)} ${'per100'.padStart(10)}`);
    for (const k of keys) {
      const a = base[k] ?? 0;
      const b = last[k] ?? 0;
      const per = n > 0 ? ((b - a) / n) * 100 : 0;
      console.log(`${k.padEnd(28)} ${String(rows[0][k] ?? 0).padStart(10)} ${String(a).padStart(10)} ${String(b).padStart(10)} ${per.toFixed(1).padStart(10)}`);
    }
    if (cyclesAtWarm > 0) {
      const c = rows.filter((r) => !r.settled).pop()!;
      const ticks = c.cpuTicks - ticksAtWarm;
      const cyc = c.cycle - cyclesAtWarm;
      console.log(`\npodway run CPU: ${(ticks / 100 / cyc * 1000).toFixed(1)} ms per cycle (${ticks} ticks over ${cyc} cycles, ${((c.t - timeAtWarm) / cyc / 1000).toFixed(2)} s wall per cycle)`);
    }
    console.log(`probe failures: ${failures.length}`);
    for (const f of failures.slice(0, 20)) console.log(`  ${f}`);
    if (process.argv.includes('--log')) console.log(node.log.slice(-40).join('\n'));
  } finally {
    if (host) {
      const problems = host.destroy();
      if (problems.length) console.log(`cleanup: ${problems.join('; ')}`);
    }
    await teardown(lab);
    await opened?.close();
    forgetCniCacheDirs(cacheDirs);
    forgetDirs();
  }
}

main().then(() => process.exit(0), (e) => {
  console.error(e);
  process.exit(1);
});
