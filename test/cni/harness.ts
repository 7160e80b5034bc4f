/**
 * A small container runtime for the CNI plugin tests: installs the plugin (shim + conflist) into
 * temporary directories with `installCni`, runs it as a runtime does (CNI_* environment only, the
 * network config on stdin, inside a "node" network namespace so its host-side veths stay there),
 * and reads the pod's namespace back with `ip -j`. Every namespace and directory carries a random
 * tag and is removed by cleanup(); the namespaces also at exit and on the test runner's SIGTERM
 * (helpers/netns.ts addNetns), where cleanup() does not run.
 */
import { spawn, ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import * as assert from 'uvu/assert';
import { FileKv } from '../../src/control/kv/file-kv';
import type { KvStore } from '../../src/control/kv/kv';
import { applyResource } from '../../src/control/v3-store';
import { registerNode } from '../../src/control/node-registration';
import { installCni, uninstallCni } from '../../src/cni/install';
import { controlRequest } from '../../src/dataplane/control-server';
import { addNetns, ip, Netns, sh, sleep, tag } from '../helpers/netns';
// types only: the etcd client and server helpers load with withEtcdStoppedAtAdd, not with every CNI test
import type { EtcdKv } from '../../src/control/kv/etcd-kv';
import type { EtcdServer } from '../helpers/etcd';
import { within, START_WAIT_MIN_MS, STOP_WAIT_MS } from '../../src/lab/lab';

const PODWAY_BIN = path.resolve(__dirname, '..', '..', '..', 'bin', 'podway.js');

/** A `podway run` started by CniHarness.startPodway: its process and its stderr lines so far. */
export class RunningPodway {
  readonly log: string[] = [];
  constructor(readonly proc: ChildProcess, private readonly control: string) {
    proc.stderr!.setEncoding('utf8').on('data', (d: string) => this.log.push(...d.split('\n').filter(Boolean)));
  }

  /** Resolves once its control socket answers; fails the test if that takes over START_WAIT_MIN_MS (as Lab's). */
  async ready(): Promise<void> {
    const deadline = Date.now() + START_WAIT_MIN_MS;
    let up = false;
    while (!up && Date.now() < deadline) {
      up = existsSync(this.control) && (await controlRequest(this.control, { cmd: 'status' }, 1000).then(() => true, () => false));
      if (!up) await sleep(100);
    }
    assert.ok(up, `podway came up: ${this.log.slice(-5).join(' | ')}`);
  }

  /**
   * SIGTERM, SIGKILL after STOP_WAIT_MS (as Lab's: 5 s was too short for a clean stop at load);
   * resolves once it exited (at once if it already had). A SIGKILL is said on the test's output.
   */
  async stop(): Promise<void> {
    const proc = this.proc;
    if (proc.exitCode !== null || proc.signalCode !== null) return;
    const exited = new Promise<void>((r) => proc.once('exit', () => r()));
    proc.kill('SIGTERM');
    if (await within(exited.then(() => true), STOP_WAIT_MS, false)) return;
    console.log(`  podway run (pid ${proc.pid}) still ran ${STOP_WAIT_MS} ms after SIGTERM: SIGKILL | ${this.log.slice(-3).join(' | ')}`);
    proc.kill('SIGKILL');
    await exited;
  }
}

export interface PluginRun {
  readonly exitCode: number | null;
  readonly stdout: string;
  readonly stderr: string;
  /** stdout parsed, or null when empty. */
  readonly json: any;
  /** When the plugin process ended (Date.now()). */
  readonly endedAt: number;
  readonly ms: number;
}

export interface CallOptions {
  readonly command: string;
  readonly containerId?: string;
  /** A path (default: none); pass a pod's `path`. */
  readonly netns?: string;
  readonly ifname?: string;
  readonly args?: string;
  readonly cniPath?: string;
  /** Replaces the whole config (an object is JSON-encoded; a string is sent as is). */
  readonly config?: object | string;
  /** Merged over the network's plugin config. */
  readonly extra?: Record<string, unknown>;
  /** Environment entries to drop (to test missing variables) or override. */
  readonly env?: Record<string, string | undefined>;
  /** The plugin process is SIGKILLed after this long (a hang; said in its stderr): CALL_LIMIT_MS. */
  readonly timeoutMs?: number;
}

/** A plugin call's bound (one process; a call that waits for many, as 20 parallel ADDs do, passes more). */
export const CALL_LIMIT_MS = 60_000;

export class CniHarness {
  readonly tag = tag();
  readonly dir = mkdtempSync(path.join(tmpdir(), `podway-cni-${this.tag}-`));
  readonly storeDir = path.join(this.dir, 'store');
  readonly binDir = path.join(this.dir, 'bin');
  readonly confDir = path.join(this.dir, 'net.d');
  /** The host-wide IPAM lock of this harness's plugin (not the machine's /run/podway one). */
  readonly ipamLockFile = path.join(this.dir, 'run', 'ipam.lock');
  /** DEL's spool of releases deferred while etcd is down. */
  readonly pendingDelDir = path.join(this.dir, 'pending-del');
  /** Where a test's `podway run --control` listens; the conflist names it for STATUS. */
  readonly control = path.join(this.dir, 'podway.sock');
  readonly node: Netns;
  readonly kv: KvStore;
  /** What deletes each namespace made, in the order made. */
  private readonly namespaceDeletes: (() => void)[] = [];
  conflist!: { cniVersion: string; name: string; plugins: Record<string, unknown>[] };

  /**
   * inNodeNetns false runs the plugin in this process's namespace (to reach a datastore on the
   * host's loopback); use it with tap/tun pods only, which make nothing outside the pod namespace.
   */
  constructor(readonly nodeName = `node-${tag()}`, readonly inNodeNetns = true) {
    this.node = this.addNs('node');
    this.kv = new FileKv({ dir: this.storeDir });
  }

  /** Pool(s), this node registered, the plugin installed. */
  async setup(pool: { cidr: string; blockSize?: number; vxlanMode?: string; ipipMode?: string } = { cidr: '10.251.0.0/24', blockSize: 26 }): Promise<void> {
    await applyResource(this.kv, { apiVersion: 'projectcalico.org/v3', kind: 'IPPool', metadata: { name: `pool-${this.tag}` }, spec: pool });
    await registerNode(this.kv, { name: this.nodeName, ipv4Address: '10.99.0.1/24' });
    const done = installCni({ binDir: this.binDir, confDir: this.confDir, datastore: `embedded:${this.storeDir}`, node: this.nodeName, name: 'podway', control: this.control, ipamLockFile: this.ipamLockFile, pendingDelDir: this.pendingDelDir, env: {} });
    this.conflist = JSON.parse(readFileSync(done.conflist, 'utf8'));
  }

  addNs(label: string): Netns {
    const ns = new Netns(`pw-cni-${label}-${this.tag}`);
    this.namespaceDeletes.push(addNetns(ns.name));
    ns.ip('link', 'set', 'lo', 'up');
    return ns;
  }

  /** The node's eth0 (10.99.0.1/24) and its veth peer eth0 in a new namespace, both up; returns that namespace. */
  addUplink(): Netns {
    const uplink = this.addNs('up');
    sh('ip', ['link', 'add', 'eth0', 'netns', this.node.name, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', uplink.name]);
    this.node.ip('addr', 'add', '10.99.0.1/24', 'dev', 'eth0');
    this.node.ip('link', 'set', 'eth0', 'up');
    uplink.ip('link', 'set', 'eth0', 'up');
    return uplink;
  }

  /**
   * An IPv6-only node's underlay: its eth0 with fd99::1/64 only (no IPv4 address) and the veth peer
   * in a new namespace, both up; start podway with `--ip none` (startPodway's later --ip wins).
   */
  addUplink6(): Netns {
    const uplink = this.addNs('up6');
    sh('ip', ['link', 'add', 'eth0', 'netns', this.node.name, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', uplink.name]);
    this.node.ip('-6', 'addr', 'add', 'fd99::1/64', 'dev', 'eth0', 'nodad');
    this.node.ip('link', 'set', 'eth0', 'up');
    uplink.ip('link', 'set', 'eth0', 'up');
    return uplink;
  }

  /**
   * `podway run` for this node inside its namespace, on the embedded datastore and the control
   * socket the conflist names, with `--ip 10.99.0.1/24` and `more` arguments, `env` added to the
   * test's environment (the caller stops it).
   */
  startPodway(more: string[] = [], datastore = `embedded:${this.storeDir}`, env: Record<string, string> = {}): RunningPodway {
    return new RunningPodway(spawn('ip', ['netns', 'exec', this.node.name, process.execPath, PODWAY_BIN, 'run', '--node', this.nodeName, '--datastore', datastore, '--ip', '10.99.0.1/24', '--cni-pending-del-dir', this.pendingDelDir, ...more, '--control', this.control], { stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, ...env } }), this.control);
  }

  /** A fresh pod network namespace. */
  pod(label: string): Netns {
    return this.addNs(label);
  }

  /** The network config the runtime would pass: the conflist's plugin with cniVersion and name. */
  config(version = '1.1.0', extra: Record<string, unknown> = {}): Record<string, unknown> {
    return { cniVersion: version, name: this.conflist.name, ...this.conflist.plugins[0], ...extra };
  }

  /** Runs the installed plugin (the shim) inside the node namespace with only the CNI environment. */
  call(o: CallOptions): Promise<PluginRun> {
    const env: Record<string, string> = { CNI_COMMAND: o.command };
    if (o.containerId !== undefined) env.CNI_CONTAINERID = o.containerId;
    if (o.netns !== undefined) env.CNI_NETNS = o.netns;
    if (o.ifname !== undefined) env.CNI_IFNAME = o.ifname;
    if (o.args !== undefined) env.CNI_ARGS = o.args;
    env.CNI_PATH = o.cniPath ?? this.binDir;
    for (const [k, v] of Object.entries(o.env ?? {})) {
      if (v === undefined) delete env[k];
      else env[k] = v;
    }
    const config = o.config ?? this.config('1.1.0', o.extra);
    const stdin = typeof config === 'string' ? config : JSON.stringify(config);
    const started = Date.now();
    return new Promise((resolve, reject) => {
      // `ip netns exec` keeps the environment it is given: the plugin sees only the CNI_* variables.
      const shim = path.join(this.binDir, 'podway');
      const [cmd, argv] = this.inNodeNetns ? ['/usr/bin/ip', ['netns', 'exec', this.node.name, shim]] : [shim, []];
      const child = spawn(cmd, argv, { env, stdio: ['pipe', 'pipe', 'pipe'] });
      let stdout = '';
      let stderr = '';
      child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
      child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
      const limit = o.timeoutMs ?? CALL_LIMIT_MS;
      let killed = false;
      const timer = setTimeout(() => {
        killed = true;
        child.kill('SIGKILL');
      }, limit);
      child.on('error', reject);
      child.on('close', (code) => {
        clearTimeout(timer);
        if (killed) stderr += `\n(the harness SIGKILLed the plugin: still running after ${limit} ms)`;
        const endedAt = Date.now();
        let json: any = null;
        if (stdout.trim() !== '') {
          try {
            json = JSON.parse(stdout);
          } catch {
            json = { unparsable: stdout };
          }
        }
        resolve({ exitCode: code, stdout, stderr, json, endedAt, ms: endedAt - started });
      });
      child.stdin.end(stdin);
    });
  }

  /** ADD a pod with defaults; throws with the plugin's answer when it fails. */
  async add(pod: Netns, containerId: string, more: Partial<CallOptions> = {}): Promise<PluginRun> {
    const r = await this.call({ command: 'ADD', containerId, netns: pod.path, ifname: 'eth0', ...more });
    if (r.exitCode !== 0) throw new Error(`ADD ${containerId} failed (${r.exitCode}): ${r.stdout} ${r.stderr}`);
    return r;
  }

  /** `ip -j ARGS` in a namespace, parsed. */
  ipJson(ns: Netns, ...args: string[]): any[] {
    const out = sh('ip', ['-j', '-n', ns.name, ...args]);
    return out.trim() === '' ? [] : JSON.parse(out);
  }

  /** Host-side cali* interfaces in the node namespace. */
  caliLinks(): string[] {
    return this.ipJson(this.node, 'link', 'show').map((l) => l.ifname as string).filter((n) => n.startsWith('cali'));
  }

  async workloadEndpoints(): Promise<any[]> {
    const list = await this.kv.list('/calico/resources/v3/projectcalico.org/workloadendpoints/');
    return list.entries.map((e) => JSON.parse(e.value));
  }

  async handles(): Promise<string[]> {
    return (await this.kv.list('/calico/ipam/v2/handle/')).entries.map((e) => e.key.slice('/calico/ipam/v2/handle/'.length));
  }

  /**
   * An IPAM plugin speaking CNI 1.1.0 (none of Debian's does), in `dir`, to see STATUS and GC
   * forwarded: it appends each CNI_COMMAND to dir/calls.log, keeps GC's stdin in dir/gc.json, and
   * fails STATUS with code 50 while dir/down exists. Returns its type name.
   */
  writeRecordingIpam(dir: string): string {
    mkdirSync(dir, { recursive: true });
    const file = path.join(dir, 'recording-ipam');
    writeFileSync(file, [
      '#!/bin/sh',
      'd="$(dirname "$0")"',
      'echo "$CNI_COMMAND" >> "$d/calls.log"',
      'case "$CNI_COMMAND" in',
      '  VERSION) echo \'{"cniVersion":"1.1.0","supportedVersions":["0.4.0","1.0.0","1.1.0"]}\' ;;',
      '  STATUS) if [ -e "$d/down" ]; then echo \'{"cniVersion":"1.1.0","code":50,"msg":"recording-ipam: its pool is offline"}\'; exit 1; fi ;;',
      '  GC) cat > "$d/gc.json" ;;',
      'esac',
      '',
    ].join('\n'), { mode: 0o755 });
    return 'recording-ipam';
  }

  async cleanup(): Promise<void> {
    try {
      uninstallCni({ binDir: this.binDir, confDir: this.confDir });
    } catch {
      /* the directory goes anyway */
    }
    await this.kv.close().catch(() => undefined);
    for (const del of this.namespaceDeletes.reverse()) del();
    rmSync(this.dir, { recursive: true, force: true });
  }
}

/** Runs `fn` with a harness set up (with `pool` when given) and cleaned up however `fn` ends. */
export async function withHarness(fn: (h: CniHarness) => Promise<void>, pool?: Parameters<CniHarness['setup']>[0]): Promise<void> {
  const h = new CniHarness();
  try {
    await h.setup(pool);
    await fn(h);
  } finally {
    await h.cleanup();
  }
}

/** What withEtcdStoppedAtAdd gives its test: etcd, a harness whose plugin runs in this process's
 * namespace (etcd is on the host's loopback), a client of that etcd, and an ADD's parts. */
export interface EtcdStoppedAdd {
  readonly etcd: EtcdServer;
  readonly h: CniHarness;
  readonly kv: EtcdKv;
  /** The plugin config's keys for that etcd (a tap pod, 1.5 s datastore timeout). */
  readonly extra: Record<string, unknown>;
  /** The ADD's environment: the `ip` wrapper first on its PATH. */
  readonly env: Record<string, string>;
  readonly pod: Netns;
  readonly containerId: string;
}

/**
 * The set-up of the tests that stop etcd (SIGSTOP) in the middle of an ADD, without touching the
 * plugin: etcd started, a harness (inNodeNetns false: tap pods only), pool `cidr` (/26 blocks) and
 * this node registered in etcd, and an `ip` wrapper for the ADD's PATH that, at the tap device's
 * set-up (`ip -batch` in the pod, after IPAM and before the endpoint's write), stops etcd and then
 * runs `tail` (shell lines: the test's own end of that step, e.g. failing it) before the real `ip`.
 * Everything is undone however `fn` ends (etcd resumed and stopped, by PID).
 */
export async function withEtcdStoppedAtAdd(label: string, cidr: string, tail: string, fn: (s: EtcdStoppedAdd) => Promise<void>): Promise<void> {
  const { startEtcd, ETCD_BINARY } = await import('../helpers/etcd');
  const { EtcdKv } = await import('../../src/control/kv/etcd-kv');
  if (!existsSync(ETCD_BINARY)) throw new Error(`${ETCD_BINARY} missing (scripts/setup.sh installs etcd-server)`);
  const etcd = await startEtcd();
  const h = new CniHarness(undefined, false);
  const kv = new EtcdKv({ endpoints: [etcd.endpoint] });
  const wrap = mkdtempSync(path.join(tmpdir(), `podway-${label}-ip-${process.pid}-`));
  try {
    await h.setup();
    await applyResource(kv, { apiVersion: 'projectcalico.org/v3', kind: 'IPPool', metadata: { name: `${label}-pool` }, spec: { cidr, blockSize: 26 } });
    await registerNode(kv, { name: h.nodeName, ipv4Address: '10.99.0.1/24' });
    writeFileSync(path.join(wrap, 'ip'), `#!/bin/sh
if [ "$CNI_COMMAND" = ADD ] && [ "$1" = -batch ]; then
  kill -STOP ${etcd.pid()}
${tail}
fi
exec /usr/sbin/ip "$@"
`, { mode: 0o755 });
    await fn({
      etcd, h, kv,
      extra: { datastore: undefined, datastore_type: 'etcdv3', etcd_endpoints: etcd.endpoint, interfaceType: 'tap', datastoreTimeoutMs: 1500 },
      env: { PATH: `${wrap}:/usr/sbin:/usr/bin:/sbin:/bin` },
      pod: h.pod(label),
      containerId: `${label}${h.tag}`,
    });
  } finally {
    try { etcd.resume(); } catch { /* gone */ }
    rmSync(wrap, { recursive: true, force: true });
    await kv.close().catch(() => undefined);
    await h.cleanup();
    await etcd.stop();
  }
}

/** What withEtcdNode gives its test. `podway`: the test's `podway run` (h.startPodway), set by the
 * test; stopped at the end, its log's tail printed first when the test failed. */
export interface EtcdNode {
  readonly h: CniHarness;
  readonly etcd: import('../../src/lab/etcd').LabEtcd;
  readonly kv: EtcdKv;
  /** The plugin's and podway run's datastore: `etcd:` that etcd, as the node reaches it. */
  readonly datastore: string;
  podway: RunningPodway | null;
}

/**
 * The set-up of the tests of a node on a real etcd: a harness (`node`: its node's name) with its
 * uplink, etcd in the node's namespace, a client of it, pool `pool` (`cidr`, /26 blocks), this node
 * registered at 10.99.0.1 and `others` at 10.99.0.2, .3, ... Everything is stopped (podway, the
 * client, etcd, the harness) however `fn` ends.
 */
export async function withEtcdNode(o: { node?: string; pool: string; cidr: string; others?: readonly string[] }, fn: (n: EtcdNode) => Promise<void>): Promise<void> {
  const { LabEtcd, ETCD_BINARY } = await import('../../src/lab/etcd');
  const { EtcdKv } = await import('../../src/control/kv/etcd-kv');
  if (!existsSync(ETCD_BINARY)) throw new Error(`${ETCD_BINARY} missing (scripts/setup.sh installs etcd-server)`);
  const h = new CniHarness(o.node);
  let etcd: import('../../src/lab/etcd').LabEtcd | null = null;
  let kv: EtcdKv | null = null;
  let n: EtcdNode | null = null;
  let ok = false;
  try {
    await h.setup();
    h.addUplink();
    etcd = await LabEtcd.start({ netns: h.node.name, host: '127.0.0.1' });
    kv = new EtcdKv({ endpoints: [etcd.localEndpoint], timeoutMs: 20_000 });
    await applyResource(kv, { apiVersion: 'projectcalico.org/v3', kind: 'IPPool', metadata: { name: o.pool }, spec: { cidr: o.cidr, blockSize: 26 } });
    await registerNode(kv, { name: h.nodeName, ipv4Address: '10.99.0.1/24' });
    for (const [i, other] of (o.others ?? []).entries()) await registerNode(kv, { name: other, ipv4Address: `10.99.0.${i + 2}/24` });
    n = { h, etcd, kv, datastore: `etcd:${etcd.endpoint}`, podway: null };
    await fn(n);
    ok = true;
  } finally {
    if (!ok && n?.podway) console.log(n.podway.log.slice(-30).join('\n'));
    await n?.podway?.stop();
    await kv?.close().catch(() => undefined);
    await etcd?.stop();
    await h.cleanup();
  }
}
