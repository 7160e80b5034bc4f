// `podway cni install|uninstall`: the plugin executable (a small shell shim that runs this
// checkout's compiled plugin with this Node) in the CNI bin directory, and a conflist naming it in
// the CNI config directory. Both carry what the runtime's minimal environment lacks: the absolute
// paths of node and the plugin, a PATH with iproute2 and nsenter, the datastore and the node name.
import { makeDirsSync } from '../util/make-dirs';
import { existsSync, readFileSync, readdirSync, statSync, unlinkSync } from 'node:fs';
import { hostname } from 'node:os';
import * as path from 'node:path';
import { resolveDatastoreSpec } from '../control/open-datastore';
import { loadFlockAddon } from './flock-lock';
import { parseDatastoreSpec } from '../control/kv/spec';
import { validateNodeName } from '../control/resource-names';
import { replaceFileSync } from '../util/replace-file';
import { openKvStore } from '../control/kv/open';
import type { KvStore } from '../control/kv/kv';
import { nodeKey } from '../control/ipam/keys';
import { isIpv6Only, nodeFamilies } from './node-families';
import { UsageError } from '../cli/usage-error';
import { checkoutTag, ensurePluginSnapshot, SNAPSHOT_DIR } from './snapshot';

export const SHIM_MARKER = '# podway CNI plugin shim, written by `podway cni install`';

export interface InstallOptions {
  readonly binDir: string;
  readonly confDir: string;
  /** Datastore spec (default: $PODWAY_DATASTORE, Calico's env, the embedded default), written into the conflist. */
  readonly datastore?: string;
  /** Node name (default $NODENAME, else the hostname), written into the conflist. */
  readonly node?: string;
  /** Network name (default "podway"): the conflist's name, and the IPAM handle prefix. */
  readonly name?: string;
  /** The conflist's file name prefix (runtimes take the first file in name order), default 10. */
  readonly priority?: number;
  /** Pod MTU (default: from the pools). */
  readonly mtu?: number;
  readonly interfaceType?: 'veth' | 'tap' | 'tun';
  /** podway run's control socket on this node, for STATUS (default: podway run's default for the node). */
  readonly control?: string;
  /** The host-wide IPAM lock file (default in the plugin: /run/podway/ipam.lock). */
  readonly ipamLockFile?: string;
  /** Where DEL spools releases deferred while etcd is down (default /var/lib/podway/pending-del). */
  readonly pendingDelDir?: string;
  /**
   * An IPv6-only node (podway run --ip none): the conflist's ipam asks for IPv6 only
   * (assign_ipv4 "false", assign_ipv6 "true"), as Calico's IPv6-only setup does. detectNodeMode
   * reads it from the Node.
   */
  readonly ipv6Only?: boolean;
  /** The conflist's path, written into it ("conflist") for the plugin's error messages; installCni sets it. */
  readonly conflist?: string;
  readonly env?: NodeJS.ProcessEnv;
  /** false: no start-up snapshot; the shim runs dist/src/cni/main.js (default: made and used, snapshot.ts). */
  readonly snapshot?: boolean;
}

export interface Installed {
  readonly plugin: string;
  readonly conflist: string;
  /** The plugin's start-up snapshot for this node binary (null: none; the plugin starts without). */
  readonly snapshot: string | null;
  /** Why there is no snapshot, to say (null when there is one, or none was asked for). */
  readonly note: string | null;
}

const quote = (s: string): string => `'${s.replace(/'/g, `'\\''`)}'`;

/**
 * The shim's text: exec node on the compiled plugin, with a PATH that finds ip and nsenter. With
 * `snapshotDir` (snapshot.ts), node starts from the plugin's start-up snapshot when that directory
 * holds one for this node binary and this build (snapshot.ts: `stat -Lc %d-%i-%Z-%s NODE`, then
 * checkoutTag of pluginJs's directory) and the
 * call has no arguments and no NODE_OPTIONS (a V8 flag there would make node refuse the snapshot);
 * otherwise, and without `snapshotDir`, as before: node on dist/src/cni/main.js.
 */
export function shimText(nodePath: string, pluginJs: string, snapshotDir?: string): string {
  const lines = [
    '#!/bin/sh',
    SHIM_MARKER,
    '# Runtimes run plugins with a minimal environment: the paths are absolute, and PATH gets the',
    '# usual system directories (iproute2 and nsenter live in sbin).',
    'PATH="${PATH:+$PATH:}/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"',
    'export PATH',
  ];
  if (snapshotDir !== undefined) {
    lines.push(
      '# The plugin\'s start-up snapshot for this node binary, when there is one (docs/cni.md, "The start-up snapshot").',
      'if [ $# -eq 0 ] && [ -z "${NODE_OPTIONS-}" ]; then',
      `  snap=${quote(snapshotDir)}/$(stat -Lc %d-%i-%Z-%s ${quote(nodePath)} 2>/dev/null)-${checkoutTag(path.dirname(pluginJs))}.blob`,
      `  [ -f "$snap" ] && exec ${quote(nodePath)} --snapshot-blob "$snap"`,
      'fi',
    );
  }
  lines.push(`exec ${quote(nodePath)} ${quote(pluginJs)} "$@"`, '');
  return lines.join('\n');
}

/**
 * A path the plugin will use: absolute, or a usage error naming the option. The plugin runs in the
 * runtime's working directory, not the installer's, so a relative path is refused rather than
 * quietly resolved against wherever `cni install` happened to run.
 */
function absoluteOption(option: string, value: string, kind: 'file' | 'dir' = 'file'): string {
  if (value === '' || !path.isAbsolute(value)) {
    throw new UsageError(`cni install: ${option} ${JSON.stringify(value)}: give an absolute path (the plugin runs in the container runtime's working directory, not this one)`);
  }
  const p = path.normalize(value);
  if (kind === 'dir') return p.length > 1 ? p.replace(/\/+$/, '') : p;
  // The plugin refuses a file path ending in '/' (network config: ipam_lock_file: ...): said now.
  if (p.endsWith('/')) throw new UsageError(`cni install: ${option} ${JSON.stringify(value)}: expected a file path, not a directory`);
  return p;
}

function datastoreText(spec: string | undefined, env: NodeJS.ProcessEnv): { datastore: string; tls: Record<string, string> } {
  const parsed = spec ? parseDatastoreSpec(spec, env) : resolveDatastoreSpec(undefined, env);
  // Where the spec came from, for messages.
  const option = spec ? '--datastore' : env.PODWAY_DATASTORE ? '$PODWAY_DATASTORE' : 'the default datastore';
  if (parsed.kind === 'file') throw new UsageError(`cni install: ${option} file: is read-only; the plugin needs etcd:URL or embedded:DIR`);
  if (parsed.kind === 'embedded') {
    const dir = absoluteOption(`${option} embedded:DIR`, parsed.dir, 'dir');
    // The plugin refuses a missing store at the first pod (it does not make one: a mistyped path
    // would otherwise become an empty cluster); said here instead, where the path was typed.
    if (!existsSync(dir)) throw new UsageError(`cni install: ${option} embedded:${dir}: the embedded datastore ${dir} does not exist (podway run, apply or create makes it; is the path right?)`);
    if (!statSync(dir).isDirectory()) throw new UsageError(`cni install: ${option} embedded:${dir}: ${dir} is not a directory`);
    return { datastore: `embedded:${dir}`, tls: {} };
  }
  const tls: Record<string, string> = {};
  // The plugin reads these too, from the runtime's working directory: absolute, as the paths above.
  if (parsed.tls?.caFile) tls.etcd_ca_cert_file = absoluteOption('--etcd-ca-cert-file / $ETCD_CA_CERT_FILE', parsed.tls.caFile);
  if (parsed.tls?.certFile) tls.etcd_cert_file = absoluteOption('--etcd-cert-file / $ETCD_CERT_FILE', parsed.tls.certFile);
  if (parsed.tls?.keyFile) tls.etcd_key_file = absoluteOption('--etcd-key-file / $ETCD_KEY_FILE', parsed.tls.keyFile);
  return { datastore: `etcd:${parsed.endpoints.join(',')}`, tls };
}

const CONFLIST_NAME = /^(\d+)-(.+)\.conflist$/;

export function conflistPath(confDir: string, name: string, priority = 10): string {
  return path.join(confDir, `${String(priority).padStart(2, '0')}-${name}.conflist`);
}

/** The conflist for this network. */
export function conflistText(opts: InstallOptions): string {
  const env = opts.env ?? process.env;
  const name = opts.name ?? 'podway';
  const node = validateNodeName(opts.node ?? (env.NODENAME || hostname()), '--node');
  const { datastore, tls } = datastoreText(opts.datastore, env);
  const plugin: Record<string, unknown> = { type: 'podway', datastore, ...tls, nodename: node };
  if (opts.mtu) plugin.mtu = opts.mtu;
  if (opts.interfaceType && opts.interfaceType !== 'veth') plugin.interfaceType = opts.interfaceType;
  if (opts.control !== undefined) plugin.control = absoluteOption('--control', opts.control);
  if (opts.ipamLockFile !== undefined) plugin.ipam_lock_file = absoluteOption('--ipam-lock-file', opts.ipamLockFile);
  if (opts.pendingDelDir !== undefined) plugin.pending_del_dir = absoluteOption('--pending-del-dir', opts.pendingDelDir, 'dir');
  // An IPv6-only node's model withholds every IPv4 address (never routed): its pods get IPv6 only,
  // an IPv6 pool required (ADD fails naming it rather than leaving a pod without an address).
  plugin.ipam = opts.ipv6Only ? { type: 'podway', assign_ipv4: 'false', assign_ipv6: 'true' } : { type: 'podway' };
  // Where this config lives: the plugin gets only stdin, and names the file in its config errors.
  if (opts.conflist) plugin.conflist = opts.conflist;
  // The CNI "mac" capability (CONVENTIONS.md): a runtime that has one to give (libcni's
  // CapabilityArgs "mac") fills runtimeConfig.mac, the pod's MAC (plugin.ts requestedMac). podman
  // passes CNI_ARGS MAC= instead, which needs no declaration.
  // "portMappings" (podman's -p, kubelet's hostPort): the runtime's host ports in
  // runtimeConfig.portMappings, which the plugin records in the endpoint's spec.ports and podway
  // run forwards to the pod (docs/cni.md, "Host ports"); no portmap plugin is chained.
  plugin.capabilities = { mac: true, portMappings: true };
  const conf = { cniVersion: '1.0.0', cniVersions: ['1.0.0', '1.1.0'], name, plugins: [plugin] };
  return JSON.stringify(conf, null, 2) + '\n';
}

/** What `cni install` found out about the node's address families: the conflist's ipam follows it. */
export interface NodeMode {
  readonly ipv6Only: boolean;
  /** What to tell the user (one line), or null when there is nothing to say. */
  readonly note: string | null;
}

/** How long `cni install` waits for the datastore to answer the Node's read. */
export const NODE_READ_TIMEOUT_MS = 5000;

/**
 * Whether this node is IPv6-only, read from its Node in the datastore the conflist names (through
 * the same spec and TLS files the plugin will use), as podway run's model judges it: no
 * spec.bgp.ipv4Address and an IPv6 address (node-families.ts). A Node not registered yet, or a
 * datastore that does not answer within timeoutMs, leaves Calico's default (IPv4, and IPv6 when
 * a pool has it) with a note saying so and how to ask for IPv6 only (--ip none). Never throws for
 * the datastore: installing used to need none, and a node is often set up before its store runs.
 */
export async function detectNodeMode(opts: InstallOptions, timeoutMs = NODE_READ_TIMEOUT_MS): Promise<NodeMode> {
  // The checks install makes (usage errors) first, and the datastore exactly as written for the plugin.
  const conf = (JSON.parse(conflistText({ ...opts, ipv6Only: false })) as { plugins: Record<string, string>[] }).plugins[0]!;
  const node = conf.nodename!;
  const spec = parseDatastoreSpec(conf.datastore, { ETCD_CA_CERT_FILE: conf.etcd_ca_cert_file, ETCD_CERT_FILE: conf.etcd_cert_file, ETCD_KEY_FILE: conf.etcd_key_file });
  if (spec.kind === 'file') throw new Error('cni install: a file: datastore cannot be written here');
  const where = spec.kind === 'etcd' ? `etcd ${spec.endpoints.join(',')}` : `embedded ${spec.dir}`;
  const defaults = 'the conflist asks for Calico\'s default address families (IPv4, and IPv6 where a pool has it); on an IPv6-only node (podway run --ip none) give --ip none, or install again once podway run has registered it';
  let kv: KvStore | null = null;
  try {
    kv = openKvStore(spec, { use: 'command', timeoutMs });
    const entry = await kv.get(nodeKey(node));
    if (!entry) return { ipv6Only: false, note: `note: node ${node} is not registered in ${where} yet: ${defaults}` };
    if (!isIpv6Only(nodeFamilies(entry.value))) return { ipv6Only: false, note: null };
    return { ipv6Only: true, note: `node ${node} is IPv6-only (its Node has no spec.bgp.ipv4Address): the conflist asks for IPv6 addresses only ("assign_ipv4": "false", "assign_ipv6": "true" in ipam)` };
  } catch (e) {
    return { ipv6Only: false, note: `note: node ${node}'s Node not read from ${where} (${(e as Error).message}): ${defaults}` };
  } finally {
    await kv?.close().catch(() => undefined);
  }
}

export function installCni(opts: InstallOptions): Installed {
  const name = opts.name ?? 'podway';
  if (!/^[A-Za-z0-9][A-Za-z0-9_.-]*$/.test(name)) throw new Error(`cni install: --name ${JSON.stringify(name)}: a network name is alphanumerics, '_', '.', '-'`);
  const pluginJs = path.resolve(__dirname, 'main.js');
  if (!existsSync(pluginJs)) throw new Error(`cni install: ${pluginJs} is missing (run npm run build:ts first)`);
  // Every ADD and DEL takes the IPAM lock through this addon: a checkout rebuilt by tsc alone
  // (an upgrade without `npm run build:native`) would fail them all; said here instead.
  try {
    loadFlockAddon();
  } catch (e) {
    throw new Error(`cni install: ${(e as Error).message}; the plugin needs it for every ADD and DEL (an upgrade needs \`npm run build:native\` or \`npm install\`)`);
  }
  const conflist = conflistPath(path.resolve(opts.confDir), name, opts.priority);
  const text = conflistText({ ...opts, conflist });
  makeDirsSync(opts.binDir, { what: 'cni install: --bin-dir' });
  makeDirsSync(opts.confDir, { what: 'cni install: --conf-dir' });
  const plugin = path.join(path.resolve(opts.binDir), 'podway');
  if (existsSync(plugin) && !readFileSync(plugin, 'utf8').includes(SHIM_MARKER)) {
    throw new Error(`cni install: ${plugin} exists and was not written by podway cni install; not replacing it`);
  }
  // The plugin's start-up snapshot for this node (snapshot.ts); without one, the shim runs main.js.
  const snapshot = opts.snapshot === false ? { blob: null, note: null } : ensurePluginSnapshot(process.execPath);
  replaceFileSync(plugin, shimText(process.execPath, pluginJs, opts.snapshot === false ? undefined : SNAPSHOT_DIR), { mode: 0o755 });
  // One conflist per network name: a reinstall with another priority replaces the old file.
  for (const old of ourConflists(opts.confDir, name)) unlinkSync(old);
  replaceFileSync(conflist, text, { mode: 0o644 });
  return { plugin, conflist, snapshot: snapshot.blob, note: snapshot.note };
}

/** Conflists in confDir that are this network's podway config (name and a podway plugin). */
function ourConflists(confDir: string, name: string): string[] {
  let files: string[];
  try {
    files = readdirSync(confDir);
  } catch {
    return [];
  }
  const out: string[] = [];
  for (const f of files) {
    const m = CONFLIST_NAME.exec(f);
    if (!m || m[2] !== name) continue;
    const file = path.join(confDir, f);
    try {
      const conf = JSON.parse(readFileSync(file, 'utf8')) as { name?: unknown; plugins?: { type?: unknown }[] };
      if (conf.name === name && Array.isArray(conf.plugins) && conf.plugins.some((p) => p?.type === 'podway')) out.push(file);
    } catch {
      /* not ours: unreadable or not JSON */
    }
  }
  return out;
}

/** Removes the shim (only if podway wrote it) and this network's podway conflist; returns what was removed. */
export function uninstallCni(opts: { binDir: string; confDir: string; name?: string }): string[] {
  const removed: string[] = [];
  const plugin = path.join(opts.binDir, 'podway');
  if (existsSync(plugin) && readFileSync(plugin, 'utf8').includes(SHIM_MARKER)) {
    unlinkSync(plugin);
    removed.push(plugin);
  }
  for (const f of ourConflists(opts.confDir, opts.name ?? 'podway')) {
    unlinkSync(f);
    removed.push(f);
  }
  return removed;
}
