/**
 * A real container runtime for the CNI tests: podman 4.3 (Debian) with its CNI backend, run as
 * one "host" per lab node. Each host has its own temporary directory holding everything podman
 * writes (containers.conf and storage.conf given through CONTAINERS_CONF and
 * CONTAINERS_STORAGE_CONF: storage root and run root, tmp dir with file locks and exit files,
 * events log, the CNI config and plugin directories), so nothing on the machine is touched. podman
 * runs in the node's network namespace through `nsenter --net` (not `ip netns exec`, whose private
 * mount namespace would hide the container namespaces podman bind-mounts under /run/netns), so the
 * plugin runs there and the veths' host ends land there, as on a real node.
 *
 * Containers run from a root filesystem built from Debian's busybox-static (--rootfs, no registry).
 * destroy() removes the containers (podman's CNI DEL runs), kills any conmon left by PID, unmounts
 * and deletes the directory, and removes the container namespaces podman left behind; it also runs
 * at the test process's exit and on SIGINT/SIGTERM (the runner's timeout) if not called before.
 */
import { execFileSync, spawn, ChildProcess } from 'node:child_process';
import { chmodSync, copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { atCleanup } from '../e2e/e2e-kit';
import * as assert from 'uvu/assert';
import type { Lab, LabKvStore } from '../../src/lab/lab';
import type { KvStore } from '../../src/control/kv/kv';

export const PODMAN = '/usr/bin/podman';
export const BUSYBOX = '/bin/busybox';
/** Applets the tests call inside the containers (links to /bin/busybox). */
const APPLETS = ['sh', 'sleep', 'ip', 'ping', 'nc', 'dd', 'sha256sum', 'wc', 'cat', 'true'];

/** The flags containers need on this machine kind (see docs/cni.md, "podman"): runc's cgroupfs, rlimits the host allows. */
const RUN_FLAGS = ['--ulimit', 'nofile=1024:1024', '--ulimit', 'nproc=1024:1024', '--cap-add', 'NET_RAW'];

const PODWAY = path.resolve(__dirname, '..', '..', '..', 'bin', 'podway.js');

/** `podway ARGS` in the network namespace NS (a node's: it reaches etcd there); exit code and output, never a throw. */
export function podwayIn(n: { ns: string }, args: string[], timeoutMs = 30_000): { code: number; out: string } {
  try {
    return { code: 0, out: execFileSync('nsenter', [`--net=/run/netns/${n.ns}`, process.execPath, PODWAY, ...args], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], timeout: timeoutMs }) };
  } catch (e) {
    const err = e as { status?: number; stdout?: string; stderr?: string };
    return { code: err.status ?? -1, out: `${err.stdout ?? ''}${err.stderr ?? ''}` };
  }
}

/** What startPodmanNodes made, for the test's finally to undo: each node's host (destroy()) and the datastore (close()). */
export interface PodmanNodes { hosts: PodmanHost[]; opened: LabKvStore | null }

/**
 * The podman tests' set-up on a lab's nodes: the lab built, its datastore opened and used (the
 * VXLAN IPPool), podway run on every node, then on each node a PodmanHost (`hostPrefix`NODE-TAG)
 * with the plugin and conflist installed by `podway cni install` the way a user does it, into that
 * host's own directories (its own IPAM lock and pending-DEL spool, not the machine's /run/podway
 * and /var/lib/podway); an install that fails fails the test with its output. Hosts and the store
 * go into `made` as soon as they exist. Returns the store and each node's install output.
 */
export async function startPodmanNodes(lab: Lab, made: PodmanNodes, o: { datastore: 'embedded' | 'etcd'; storePrefix: string; hostPrefix?: string; installTimeoutMs?: number }): Promise<{ kv: KvStore; spec: string; installed: string[] }> {
  lab.build();
  const opened = (made.opened = await lab.openKvStore(o.datastore, o.storePrefix));
  await lab.useKvDatastore(opened.kv, opened.spec);
  for (const n of lab.nodes) await lab.startPodway(n.name, 30_000);
  const installed: string[] = [];
  for (const n of lab.nodes) {
    const h = new PodmanHost(n.ns, `${o.hostPrefix ?? ''}${n.name}-${lab.tag}`);
    made.hosts.push(h);
    const inst = podwayIn(n, ['cni', 'install', '--bin-dir', h.binDir, '--conf-dir', h.confDir, '--datastore', opened.spec, '--node', n.name, '--control', n.control,
      '--ipam-lock-file', path.join(h.dir, 'run', 'ipam.lock'), '--pending-del-dir', path.join(h.dir, 'pending-del')], o.installTimeoutMs);
    assert.is(inst.code, 0, inst.out);
    installed.push(inst.out);
  }
  return { kv: opened.kv, spec: opened.spec, installed };
}

/** Where libcni (inside podman) caches each attachment's result until its DEL; podman 4.3 has no setting for it. */
export const CNI_CACHE_DIRS = ['/var/lib/cni', '/var/lib/cni/results'];

/**
 * The cache directories that do not exist yet: podman creates them, and forgetCniCacheDirs
 * removes those of them that are empty again afterwards (rmdir: never anyone else's files).
 */
export function missingCniCacheDirs(): string[] {
  return CNI_CACHE_DIRS.filter((d) => !existsSync(d));
}

export function forgetCniCacheDirs(created: string[]): void {
  for (const d of [...created].reverse()) {
    try {
      rmdirSync(d);
    } catch {
      /* not empty (another runtime uses it) or already gone */
    }
  }
}

export interface PodmanRun {
  code: number | null;
  out: string;
  err: string;
}

export function podmanMissing(): string | null {
  for (const f of [PODMAN, '/usr/sbin/runc', '/usr/bin/conmon', BUSYBOX, '/usr/bin/nsenter']) {
    if (!existsSync(f)) return `${f} is missing: run \`bash scripts/setup.sh\` as root (podman, runc, conmon, busybox-static)`;
  }
  return null;
}

export class PodmanHost {
  readonly dir: string;
  readonly binDir: string;
  readonly confDir: string;
  private readonly env: NodeJS.ProcessEnv;
  /** Container namespaces seen (inspect's SandboxKey), removed by destroy() if podman left one. */
  private readonly sandboxes = new Set<string>();
  private readonly children = new Set<ChildProcess>();
  /** Forgets destroy() as the test process's exit and signal cleanup (e2e-kit atCleanup). */
  private readonly forget: () => void;

  /** `nodeNs`: the lab node's network namespace name (under /run/netns). */
  constructor(readonly nodeNs: string, label: string) {
    this.dir = mkdtempSync(path.join(tmpdir(), `podway-podman-${label}-`));
    this.binDir = path.join(this.dir, 'cni-bin');
    this.confDir = path.join(this.dir, 'net.d');
    for (const d of [this.binDir, this.confDir, path.join(this.dir, 'tmp')]) mkdirSync(d, { recursive: true });
    const conf = path.join(this.dir, 'containers.conf');
    const storage = path.join(this.dir, 'storage.conf');
    const q = (p: string) => JSON.stringify(path.join(this.dir, p));
    writeFileSync(conf, [
      // also the infra container of a `podman pod create`, which takes no --ulimit (RUN_FLAGS)
      '[containers]',
      'default_ulimits = ["nofile=1024:1024", "nproc=1024:1024"]',
      '[engine]',
      'cgroup_manager = "cgroupfs"',
      'runtime = "runc"',
      'events_logger = "file"',
      `events_logfile_path = ${q('events.log')}`,
      // file locks in tmp_dir: the default SHM segment (/dev/shm/libpod_lock) is machine-wide
      'lock_type = "file"',
      `tmp_dir = ${q('tmp')}`,
      // No static_dir or volume_path: their defaults are under the storage root, which is what the
      // `podman container cleanup` conmon runs when a container ends gets (its exit command passes
      // --root, and podman then takes the default static dir whatever this file says). With a
      // static_dir of its own that cleanup opened another, empty database, failed ("no container
      // with name or ID"), and a container that died (`podman kill`, its process ended) kept its
      // namespace and veth (no CNI DEL) and --restart=always never restarted it.
      '[network]',
      'network_backend = "cni"',
      // Debian's reference plugins after podway's (bridge, host-local: addBridgeNetwork)
      `cni_plugin_dirs = [${q('cni-bin')}, "/usr/lib/cni"]`,
      `network_config_dir = ${q('net.d')}`,
      '',
    ].join('\n'));
    // vfs: the image is 2 MB, and overlay over the machine's own filesystem may be refused
    writeFileSync(storage, ['[storage]', 'driver = "vfs"', `runroot = ${q('run')}`, `graphroot = ${q('root')}`, ''].join('\n'));
    this.env = { PATH: process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin', CONTAINERS_CONF: conf, CONTAINERS_STORAGE_CONF: storage, HOME: this.dir };
    // Also when the test process is ended (the runner's timeout: SIGTERM) or exits without its
    // finally: before the labs' namespaces go, as podman runs in its node's.
    this.forget = atCleanup(() => this.destroy());
  }

  private argv(args: string[]): string[] {
    return [`--net=/run/netns/${this.nodeNs}`, PODMAN, ...args];
  }

  /** Runs podman in the node namespace; throws with its stderr when it fails. */
  podman(args: string[], timeoutMs = 60_000): string {
    try {
      return execFileSync('nsenter', this.argv(args), { env: this.env, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], timeout: timeoutMs });
    } catch (e) {
      const err = e as { stderr?: string; stdout?: string; message: string };
      throw new Error(`podman ${args.join(' ')}: ${(err.stderr || err.stdout || err.message).toString().trim()}`);
    }
  }

  /** Runs podman in the background (bounded by timeoutMs, then SIGKILL); resolves with its output. */
  podmanAsync(args: string[], timeoutMs = 60_000): Promise<PodmanRun> {
    const p = spawn('nsenter', this.argv(args), { env: this.env, stdio: ['ignore', 'pipe', 'pipe'] });
    this.children.add(p);
    let out = '';
    let err = '';
    p.stdout!.setEncoding('utf8').on('data', (d: string) => (out += d));
    p.stderr!.setEncoding('utf8').on('data', (d: string) => (err += d));
    return new Promise((resolve) => {
      const timer = setTimeout(() => p.kill('SIGKILL'), timeoutMs);
      p.once('close', (code) => {
        clearTimeout(timer);
        this.children.delete(p);
        resolve({ code, out, err });
      });
    });
  }

  /**
   * A container's root filesystem: /bin/busybox (busybox-static) and links to it. Containers run
   * from it with --rootfs: no registry and no image store; `podman import` would also write
   * containers/image's blob cache under /var/lib/containers, outside this host's directory.
   */
  private rootfs(name: string): string {
    const rootfs = path.join(this.dir, 'rootfs', name);
    for (const d of ['bin', 'tmp', 'etc', 'proc', 'sys', 'dev']) mkdirSync(path.join(rootfs, d), { recursive: true });
    copyFileSync(BUSYBOX, path.join(rootfs, 'bin', 'busybox'));
    chmodSync(path.join(rootfs, 'bin', 'busybox'), 0o755);
    for (const a of APPLETS) symlinkSync('busybox', path.join(rootfs, 'bin', a));
    return rootfs;
  }

  /** `podman run -d` a busybox container on `network` ('': none given, e.g. a pod's member) that sleeps (`more`: other run flags, e.g. --ip); returns its ID. */
  runContainer(name: string, network: string, more: string[] = []): string {
    const id = this.podman(['run', '-d', '--name', name, ...(network ? ['--network', network] : []), ...more, ...RUN_FLAGS, '--rootfs', this.rootfs(name), '/bin/sleep', '600']).trim();
    this.sandboxes.add(this.inspect(name).NetworkSettings.SandboxKey);
    return id;
  }

  /**
   * `podman run -d` as runContainer, in the background (several at once: podman's file locks in
   * this host's tmp dir order what must be): resolves with podman's answer (the ID on stdout).
   */
  async runContainerAsync(name: string, network: string, more: string[] = [], timeoutMs = 120_000): Promise<PodmanRun> {
    const r = await this.podmanAsync(['run', '-d', '--name', name, ...(network ? ['--network', network] : []), ...more, ...RUN_FLAGS, '--rootfs', this.rootfs(name), '/bin/sleep', '600'], timeoutMs);
    if (r.code === 0) {
      const got = await this.podmanAsync(['inspect', '--format', '{{.NetworkSettings.SandboxKey}}', name], 30_000);
      if (got.code === 0 && got.out.trim() !== '') this.sandboxes.add(got.out.trim());
    }
    return r;
  }

  /**
   * A bridge network `name` (the reference bridge plugin, host-local IPAM), as podman's own default
   * network is made, with host-local's leases in this host's directory instead of
   * /var/lib/cni/networks. Its bridge is made in the node's namespace.
   */
  addBridgeNetwork(name: string, bridge: string, subnet: string, gateway: string, v6?: { subnet: string; gateway: string }): void {
    const routes = [{ dst: '0.0.0.0/0' }, ...(v6 ? [{ dst: '::/0' }] : [])];
    const ranges = [[{ subnet, gateway }], ...(v6 ? [[v6]] : [])];
    writeFileSync(path.join(this.confDir, `87-${name}.conflist`), JSON.stringify({
      cniVersion: '0.4.0',
      name,
      plugins: [{
        type: 'bridge', bridge, isGateway: true, ipMasq: false, hairpinMode: true,
        ipam: { type: 'host-local', dataDir: path.join(this.dir, 'host-local'), routes, ranges },
      }],
    }, null, 2));
  }

  inspect(name: string): any {
    return JSON.parse(this.podman(['inspect', name]))[0];
  }

  /** `podman exec NAME sh -c SCRIPT`. */
  exec(name: string, script: string, timeoutMs = 60_000): string {
    return this.podman(['exec', name, '/bin/sh', '-c', script], timeoutMs);
  }

  execAsync(name: string, script: string, timeoutMs = 60_000): Promise<PodmanRun> {
    return this.podmanAsync(['exec', name, '/bin/sh', '-c', script], timeoutMs);
  }

  /** Container namespaces podman made that still exist. */
  leftSandboxes(): string[] {
    return [...this.sandboxes].filter((s) => s && existsSync(s));
  }

  /** conmon processes of this host (their command line names this host's directory). */
  conmonPids(): number[] {
    const pids: number[] = [];
    for (const e of readdirSync('/proc')) {
      if (!/^\d+$/.test(e)) continue;
      try {
        const cmd = readFileSync(`/proc/${e}/cmdline`, 'utf8');
        if (cmd.startsWith('/usr/bin/conmon\0') && cmd.includes(this.dir)) pids.push(Number(e));
      } catch {
        /* gone */
      }
    }
    return pids;
  }

  /**
   * A reboot as this host's containers see it: every conmon and container process killed (conmons
   * first, so no `container cleanup` and no CNI DEL runs), their namespaces and /dev/shm mounts
   * gone, runc's state gone, and this host's tmp dir and run root emptied (tmpfs, /run, on a real
   * host: podman takes the missing `alive` file for a reboot and resets its containers to Created).
   * What persists does: storage, libcni's result cache, the CNI plugin's pending-DEL spool.
   */
  simulateReboot(): void {
    const ids = this.podman(['ps', '-a', '-q', '--no-trunc']).split('\n').filter(Boolean);
    const states = ids.map((id) => JSON.parse(this.podman(['inspect', '--format', '{{json .State.Pid}} {{json .NetworkSettings.SandboxKey}}', id]).replace(/^(\S+) /, '[$1,') + ']') as [number, string]);
    for (const pid of this.conmonPids()) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        /* gone */
      }
    }
    for (const [pid, sandbox] of states) {
      if (pid > 0) {
        try {
          process.kill(pid, 'SIGKILL');
        } catch {
          /* gone */
        }
      }
      if (sandbox) this.sandboxes.add(sandbox);
    }
    const mounts = readFileSync('/proc/self/mounts', 'utf8').split('\n').map((l) => l.split(' ')[1]).filter((m) => m && m.startsWith(this.dir + '/'));
    for (const m of mounts.reverse()) execFileSync('umount', ['-l', m]);
    for (const s of this.leftSandboxes()) {
      try {
        execFileSync('umount', ['-l', s]);
      } catch {
        /* not mounted */
      }
      rmSync(s, { force: true });
    }
    for (const id of ids) rmSync(`/run/runc/${id}`, { recursive: true, force: true });
    for (const d of ['tmp', 'run']) {
      for (const e of readdirSync(path.join(this.dir, d))) rmSync(path.join(this.dir, d, e), { recursive: true, force: true });
    }
  }

  /** Removes everything: containers (CNI DEL), leftover processes, mounts, namespaces, the directory. */
  destroy(): string[] {
    this.forget();
    const problems: string[] = [];
    for (const c of this.children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
    try {
      this.podman(['rm', '-a', '-f', '-t', '0'], 60_000);
      // pods (their infra containers) too, should rm have left any
      this.podman(['pod', 'rm', '-a', '-f', '-t', '0'], 60_000);
    } catch (e) {
      problems.push((e as Error).message);
    }
    for (const pid of this.conmonPids()) {
      problems.push(`conmon ${pid} was still running`);
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        /* gone */
      }
    }
    const mounts = readFileSync('/proc/self/mounts', 'utf8').split('\n').map((l) => l.split(' ')[1]).filter((m) => m && m.startsWith(this.dir + '/'));
    for (const m of mounts.reverse()) {
      problems.push(`${m} was still mounted`);
      try {
        execFileSync('umount', ['-l', m]);
      } catch {
        /* best effort */
      }
    }
    for (const s of this.leftSandboxes()) {
      problems.push(`container namespace ${s} was left`);
      try {
        execFileSync('umount', ['-l', s]);
      } catch {
        /* not mounted */
      }
      rmSync(s, { force: true });
    }
    rmSync(this.dir, { recursive: true, force: true });
    return problems;
  }
}
