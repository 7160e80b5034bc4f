/**
 * The podway command line: `run` is the dataplane process; `status`, `routes`, `endpoints`,
 * `counters`, `trace`, `capture` and `top` ask a running one over its control socket; `demo` builds a
 * local cluster.
 */
import { UsageError } from './usage-error';
import { Command, InvalidArgumentError, Option } from 'commander';
import { readdirSync } from 'node:fs';
import { setFlagsFromString } from 'node:v8';
import { DEFAULT_WORKERS, WORKERS_AUTO_MAX, parseWorkerSteer, parseWorkers } from './workers-option';
import { DEFAULT_AUTODETECT_POLL_MS, parseDuration } from './address-monitor';
import { staleEndpointLine } from '../observe/stale-endpoints';
import { orphanPodLine } from '../dataplane/orphan-pods';
import { table, listSummary, summarizeHostChanges, guardSummary, natExclusionsText, ageText, cachedNodeText, rpFilterText, stableAfterWords, logDroppedLine } from './format';
import { addResourceCommands } from './resources-cmd';
import { addCniCommands } from '../cni/cli';
import { addIpamCommands } from './ipam-cmd';
import { addNodeCommands } from './node-status';
import { etcdCaCertOption, etcdCertOption, etcdKeyOption, envWithEtcdTlsFlags } from './etcd-tls-options';
// The control client and the name rule only: every command builds this whole program (its help
// and options), so what loads here is paid by each `podway` start, and `run`'s modules (the engine,
// the datastore, the metrics) load in run's action (see "Start-up time" in bench/README.md).
import { controlRequest, defaultControlPath, NODE_TO_ASK_HELP } from '../dataplane/control-client';
import { parseTraceFilter } from '../dataplane/trace';
import { parseNatOutgoingExclusions, type NatOutgoingExclusions } from '../dataplane/nat';
import { validateNodeName } from '../control/resource-names';
import { shortGuid } from '../control/kv/cluster-guid';
import { unenforcedPolicyText } from '../control/policy-kinds';

/** `podway status`'s policy line: null when no policy is stored. */
const policyLine = (text: string): string | null => (text ? `policy: ${text}` : null);
import { startLevel, parseLogLevel } from '../observe/log';
import { FELIX_VXLAN_FIELDS, FELIX_WIRE_FIELDS, felixSettingFlags, parseVxlanField, unhonouredLine, vxlanPendingLine, type LocalFelix } from './felix-settings';
import { versionText } from './version';
import { FELIX_MTU_FIELDS, parseTunnelMtu, type TunnelMtuSettings } from '../control/felix-mtu';
import { NEIGHBOR_QUEUE_BYTES, NEIGHBOR_QUEUE_PER_NEIGHBOR, NEIGHBOR_QUEUE_TOTAL } from '../dataplane/neighbor-queue-limits';
import { podwayCommand } from '../util/invocation';

/** `podway trace`'s exit status when the timeout came before N packets matched (1 is an error, 2 bad arguments). */
export const TRACE_TIMED_OUT = 3;

/** trace's and capture's filter words (src/dataplane/trace.ts parseTraceFilter). */
const FILTER_HELP = 'host|src|dst ADDR (IPv4 or IPv6), icmp|icmp6|tcp|udp|ipip|proto N, port N (joined by "and" and "or", "and" first; parentheses quoted)';

/** trace's and capture's filter words checked here: false (exit status 2, the reason on stderr) when they are wrong. */

/** `podway status`'s "mtu:" line, the MTUs in force beside the configured ones while the underlay
 * interface's MTU is below the model's (Engine.status mtuEffective): the routes have those. */
function mtuEffectiveText(e: { underlay: number; modelUnderlay: number; vxlan: number; ipip: number; vxlan6: number } | null | undefined, ifname: string | undefined): string {
  if (!e) return '';
  return ` (in effect: vxlan ${e.vxlan}, ipip ${e.ipip}, vxlan-v6 ${e.vxlan6}: underlay ${ifname ?? '-'} mtu ${e.underlay}, below the ${e.modelUnderlay} configured)`;
}

function filterOk(words: string[], command: 'trace' | 'capture'): boolean {
  try {
    parseTraceFilter(words, command);
    return true;
  } catch (e) {
    process.stderr.write(`podway: ${(e as Error).message}\n`);
    process.exitCode = 2;
    return false;
  }
}

/** -n N: a count of 1 or more (Number("abc") was NaN, which waited the whole timeout for nothing). */
function wholeNumber(v: string): number {
  const n = Number(v);
  if (!/^\d+$/.test(v.trim()) || n < 1) throw new InvalidArgumentError('expected a whole number of 1 or more');
  return n;
}

/** capture's -s: 64 .. 262144 bytes (tcpdump's largest snaplen). */
function snaplenBytes(v: string): number {
  const n = Number(v);
  if (!/^\d+$/.test(v.trim()) || n < 64 || n > 262144) throw new InvalidArgumentError('expected a whole number of bytes from 64 to 262144');
  return n;
}

function positiveSeconds(v: string): number {
  const n = Number(v);
  if (v.trim() === '' || !Number.isFinite(n) || n <= 0) throw new InvalidArgumentError('expected a number of seconds above 0');
  return n;
}

/**
 * The metrics port: --metrics-port, else Felix's FELIX_PROMETHEUSMETRICSENABLED=true with
 * FELIX_PROMETHEUSMETRICSPORT (default 9091, as Felix); off otherwise.
 */
export function metricsPortOption(flag: string | undefined, env: NodeJS.ProcessEnv = process.env): number | undefined {
  const check = (text: string, where: string) => {
    const n = Number(text);
    if (!/^\d+$/.test(text.trim()) || !Number.isInteger(n) || n < 1 || n > 65535) throw new UsageError(`${where}: ${JSON.stringify(text)} is not a port (1..65535)`);
    return n;
  };
  if (flag !== undefined) return check(flag, '--metrics-port');
  // Felix's boolean words; anything else is an error rather than a silent "off" (`yes` was off).
  const enabled = (env.FELIX_PROMETHEUSMETRICSENABLED ?? '').trim().toLowerCase();
  if (enabled === '' || ['false', '0', 'no', 'n', 'f'].includes(enabled)) return undefined;
  if (!['true', '1', 'yes', 'y', 't'].includes(enabled)) {
    throw new UsageError(`$FELIX_PROMETHEUSMETRICSENABLED: ${JSON.stringify(env.FELIX_PROMETHEUSMETRICSENABLED)} is not a boolean (true/false, yes/no, 1/0, as Felix reads it)`);
  }
  return env.FELIX_PROMETHEUSMETRICSPORT ? check(env.FELIX_PROMETHEUSMETRICSPORT, '$FELIX_PROMETHEUSMETRICSPORT') : 9091;
}

/**
 * `--endpoint-to-host`, else Felix's FELIX_DEFAULTENDPOINTTOHOSTACTION, else accept (what
 * calico.yaml sets; Felix's own default is Drop). Felix's Return (the host's own INPUT rules
 * decide) is accept here: podway's table then leaves them to the host's other rules as well.
 */
export function parseEndpointToHost(flag: string | undefined, env: string | undefined): 'accept' | 'drop' {
  const [text, where] = flag !== undefined ? [flag, '--endpoint-to-host'] : [env ?? '', '$FELIX_DEFAULTENDPOINTTOHOSTACTION'];
  const v = text.trim().toLowerCase();
  if (v === '' && flag === undefined) return 'accept';
  if (v === 'accept' || v === 'return') return 'accept';
  if (v === 'drop') return 'drop';
  throw new UsageError(`${where}: ${JSON.stringify(text)} is not accept or drop${flag === undefined ? ' (Felix\'s Accept, Return or Drop)' : ''}`);
}

/** A Felix boolean from a flag (given: true) or its FELIX_ variable, parsed as Felix's BoolParam
 * (true/1/yes/y/t, false/0/no/n/f, any case); unset or empty: false. */
export function parseFelixBool(flag: boolean | undefined, env: string | undefined, envName: string): boolean {
  if (flag === true) return true;
  const v = (env ?? '').trim().toLowerCase();
  if (v === '' || ['false', '0', 'no', 'n', 'f'].includes(v)) return false;
  if (['true', '1', 'yes', 'y', 't'].includes(v)) return true;
  throw new UsageError(`$${envName}: ${JSON.stringify(env)} is not a boolean (true or false, as Felix reads it)`);
}

type FelixStatus = ReturnType<import('./felix-settings').FelixConfigTracker['status']>;

/** `podway status`'s lines for Felix's settings: each in force with where it came from (the flag,
 * the variable, FelixConfiguration node.NAME or default, the built-in default), then the
 * FelixConfiguration fields ignored as invalid and those podway does not apply. */
/** `podway status`'s line for an underlay neighbour that does not answer: the node on the link
 * (its address is the neighbour), or every node behind a gateway that does not answer. */
export function unreachableNodeLine(u: { neighbor: string; nodes: string[]; nodeIps: string[]; since: string }): string {
  const onLink = u.nodeIps.length === 1 && u.nodeIps[0] === u.neighbor;
  const who = u.nodes.length === 0 ? `underlay neighbour ${u.neighbor}` : onLink ? `node ${u.nodes.join(', ')} (${u.neighbor})` : `node${u.nodes.length === 1 ? '' : 's'} ${u.nodes.join(', ')} (via gateway ${u.neighbor})`;
  return `${who}: underlay neighbour unreachable since ${u.since}; ${u.nodes.length === 1 ? 'its' : 'their'} pods cannot be reached`;
}

export function felixStatusLines(f: FelixStatus | undefined): string[] {
  if (!f) return [];
  const lines = [`felix settings${f.origin === 'model cache' ? ' (FelixConfigurations as the model cache has them)' : f.origin === null ? ' (FelixConfigurations not read yet)' : ''}: ${f.settings.map((x) => `${x.field} ${x.value} (${x.source})`).join('; ')}`];
  for (const i of f.invalid) lines.push(`felix settings: ${i.resource.startsWith('$') ? i.resource : `FelixConfiguration ${i.resource}`} field ${i.field}: ${i.value} ${i.reason}: ignored`);
  // vxlanPort / vxlanVNI changed since the start: applied at the next one
  for (const p of f.vxlanPending ?? []) lines.push(`felix settings: ${vxlanPendingLine(p)}`);
  if (f.invalidSeen > 0) lines.push(`felix settings: ${f.invalidSeen} invalid FelixConfiguration field${f.invalidSeen === 1 ? '' : 's'} ignored since the start${f.invalid.length ? '' : ' (none now)'}`);
  // Felix's tunnel wire settings with a value podway does not use (its computed MTUs)
  for (const u of f.unhonoured ?? []) lines.push(`felix settings: ${unhonouredLine(u)}`);
  // tunnel MTUs set above what the underlay takes (applied, but podway does not fragment the outer packet)
  for (const w of f.mtuWarnings ?? []) lines.push(`felix settings: WARNING ${w}`);
  for (const n of f.notApplied) lines.push(`felix settings: FelixConfiguration ${n} not applied (metrics settings: --metrics-port, --metrics-host or FELIX_PROMETHEUSMETRICSENABLED, ...PORT and ...HOST at start)`);
  return lines;
}

/** The node name from --node or $NODENAME, checked where it is accepted (it names a file). */
function nodeOption(flag: string | undefined): string | undefined {
  try {
    if (flag !== undefined) return validateNodeName(flag, '--node');
    const env = process.env.NODENAME;
    return env ? validateNodeName(env, '$NODENAME') : undefined;
  } catch (e) {
    throw new UsageError((e as Error).message); // a name that cannot be a node's: exit 2
  }
}

function controlPath(o: { node?: string; control?: string }): string {
  if (o.control) return o.control;
  const node = nodeOption(o.node);
  if (node) return defaultControlPath(node);
  let socks: string[] = [];
  try {
    socks = readdirSync('/run/podway').filter((f) => f.endsWith('.sock'));
  } catch (e) {
    // 0700 and root's: say so rather than "not running".
    if ((e as NodeJS.ErrnoException).code === 'EACCES') throw new Error('cannot list /run/podway (permission denied): the control socket is for root and the user podway runs as');
  }
  if (socks.length === 1) return `/run/podway/${socks[0]}`;
  throw new Error(socks.length ? `several podway processes run here (${socks.join(', ')}): pick one with --node` : 'podway is not running here (no /run/podway/*.sock); give --node or --control');
}

function clientCommand(program: Command, name: string, desc: string, show: (res: any) => string, request: Record<string, unknown> = {}): void {
  program
    .command(name)
    .description(desc)
    .option('--node <name>', NODE_TO_ASK_HELP)
    .option('--control <path>', 'control socket path')
    .addOption(new Option('-o, --output <format>', 'output format').choices(['table', 'json']).default('table'))
    .action(async (o) => {
      const res = await controlRequest(controlPath(o), { ...request, cmd: name });
      process.stdout.write(o.output === 'json' ? JSON.stringify(res, null, 2) + '\n' : show(res));
    });
}

/** V8's interrupt budget in Node 20 (\`node --v8-options\`), and podway's: see --jit-budget and
 * bench/README.md ("Cold JIT at a low packet rate"). */
const V8_INTERRUPT_BUDGET = 67_584;
const JIT_BUDGET = 4096;

export function buildProgram(): Command {
  const program = new Command('podway')
    .description('userspace packet dataplane for Calico-shaped pod networks')
    // A refusal is one line and the pointer to the help (the whole help after it scrolled the
    // line off a terminal); each command's own pointer is set by oneLineErrors below.
    .showHelpAfterError(false)
    .version(`podway ${versionText()}`, '-V, --version', 'print podway\'s version (package.json\'s, and the git commit it was built from) and exit')
    .exitOverride();

  program
    .command('run')
    .description('run the dataplane for one node')
    .option('--node <name>', 'this node (default $NODENAME)')
    .addOption(etcdCaCertOption()).addOption(etcdCertOption()).addOption(etcdKeyOption())
    .option('--ip <addr/prefix>', 'this node\'s address, registered in an etcd/embedded datastore and never changed by podway (default: the Node\'s own while an interface here holds it, else first-found; replaced by first-found once it leaves the node; another Node\'s address is refused; "autodetect": first-found, followed whenever it changes; "none": no IPv4 address, an IPv6-only node (needs its IPv6 address: --ip6); Calico\'s IP env); with a file: datastore it must be the file Node\'s address')
    .option('--ip6 <addr/prefix>', 'this node\'s IPv6 address (or "autodetect", or "none"), registered as spec.bgp.ipv6Address (default: the Node\'s own, else the first global IPv6 found; Calico\'s IP6 env)')
    .option('--autodetect-poll-interval <duration>', 'how often an autodetected node address is looked for again, its Node updated when it changed ("60s", "5m", "500ms"; 0 = never; default $AUTODETECT_POLL_INTERVAL, else 60s as calico-node)')
    .option('--datastore <spec>', 'file:PATH (a YAML file), etcd:URL[,URL] or embedded:DIR (default $PODWAY_DATASTORE, then Calico\'s DATASTORE_TYPE/ETCD_ENDPOINTS, then the embedded store)')
    .option('--control <path>', 'control socket (default /run/podway/NODE.sock)')
    .option('--model-cache <path>', 'etcd datastore: the last-known-good model, written on local disk (at most every 10 s) and forwarded on at start until the datastore\'s model is applied: at once when written in this boot of the machine (see --no-cache-first), else only while etcd is unreachable; "none": no cache (default /var/lib/podway/NODE.model.json)')
    .option('--no-cache-first', 'apply the model cache at start only when etcd is unreachable (or silent 5 s), not at once when it was written in this boot of the machine (on by default: a restart forwards on its last model, not ready, until the datastore\'s replaces it)')
    .option('--cni-pending-del-dir <dir>', 'etcd or embedded datastore: where podway\'s CNI plugin records the DELs it could not finish while etcd was unreachable or the datastore locked (its "pending_del_dir"); replayed here at start, when etcd answers again and every minute (default /var/lib/podway/pending-del)')
    .option('--cni-conf-dir <dir>', 'the CNI config dir whose podway networks (podway cni install\'s conflist) are checked to name this run\'s datastore: one naming another is warned of at start and in status (default /etc/cni/net.d)')
    .option('--batch <n>', 'frames per batch', (v) => Number(v), 256)
    .addOption(new Option('--rx-ring <version>', 'AF_PACKET receive ring: 2 = wake per frame (default: no block timer on the path), 3 = block batching').choices(['2', '3']).default('2'))
    .option('--underlay-ring-mb <n>', 'receive ring of the underlay port in MiB, per worker (unswappable kernel memory; one ring takes all the node\'s tunnel traffic; default 16)', (v) => Number(v))
    .option('--no-gro', 'send TCP segments to pods one by one, not coalesced into super-frames (software GRO, on by default)')
    .option('--no-rx-super', 'cut a kernel node\'s VXLAN TCP super-frames (underlay offloads on) into datagrams and merge them again towards the pod, instead of handing each on whole (on by default)')
    .option('--no-rx-merge', 'hand a kernel node\'s VXLAN TCP datagrams (underlay offloads off) to JS one by one and merge them towards the pod after routing, instead of merging runs on receive (on by default)')
    .option('--no-tx-socket', 'send on the underlay through the receiving packet socket, not a second transmit-only one (on by default)')
    .option('--no-backpressure', 'keep reading the pods while the underlay\'s transmit backlog is long, instead of holding back the ones feeding it (over 4,096 frames, until 1,024; on by default)')
    .option('--no-tx-gso', 'send VXLAN (and direct-routed TCP) on the underlay one datagram per send, not runs as one GSO message the kernel segments (on by default)')
    .option('--scatter-rx', 'read a pod\'s super-frames straight into their segments\' pool slots (the default; given after --no-scatter-rx it wins, for benchmarks that pass both)')
    .option('--pod-super', 'hand a pod\'s TCP super-frames to the pipeline as one descriptor, cut where they are sent (the default; given after --no-pod-super it wins, for benchmarks that pass both)')
    .option('--no-pod-super', 'cut a pod\'s TCP super-frames into segments on receive (scatter receive), one descriptor each, instead of handing each on whole and cutting it on send (on by default)')
    .option('--no-scatter-rx', 'read a pod\'s TCP/UDP super-frames whole into a buffer and copy each segment into the pool from there, not straight into the segments\' slots (scatter receive, on by default)')
    .option('--no-kernel-transit-drop', 'let the node\'s kernel also track and route the pod frames podway forwards (it drops them after conntrack and a route lookup); by default an nftables rule drops them first')
    .option('--endpoint-to-host <accept|drop>', 'what a pod\'s new connections to the node\'s own addresses get (Felix\'s DefaultEndpointToHostAction, or FELIX_DEFAULTENDPOINTTOHOSTACTION; default accept, as calico.yaml sets it): drop leaves pods (veth, TAP, TUN) only replies to connections the node opened and IPv6 NDP/MLD')
    .option('--neighbor-reachable <ms>', 'underlay neighbours (ARP/NDP): how long an answer keeps an entry REACHABLE before it is re-probed (the kernel\'s base_reachable_time; default 30000)', (v) => Number(v))
    .option('--neighbor-retrans <ms>', 'underlay neighbours: between two probes of one address (the kernel\'s retrans_time; default 1000); 3 unanswered probes make it FAILED', (v) => Number(v))
    .option('--neighbor-queue <n>', `underlay neighbours: packets held per neighbour while it is resolved, sent when it answers (the kernel's unres_qlen; default ${NEIGHBOR_QUEUE_PER_NEIGHBOR}, a TCP super-frame counting as one, within ${NEIGHBOR_QUEUE_BYTES.toLocaleString('en-US')} bytes per neighbour (the kernel's unres_qlen_bytes) and ${NEIGHBOR_QUEUE_TOTAL} frames per forwarding thread; 0: none, dropped as neighbor_unresolved)`, (v) => Number(v))
    .option('--qdisc-bypass', 'send on AF_PACKET sockets straight to the driver, skipping qdiscs (tc)')
    .option('--workers <n|auto>', `forwarding threads, flows spread over them by the kernel (PACKET_FANOUT/SO_REUSEPORT); auto = one per CPU, at most ${WORKERS_AUTO_MAX}; TAP/TUN pods are read by the first`, DEFAULT_WORKERS)
    .option('--worker-steer <flow|fanout>', 'with several workers, how frames are split between them: flow (each socket filter takes its share by a symmetric hash of the flow inside the tunnel, so a request and its reply meet on one thread) or fanout (PACKET_FANOUT_HASH of the outer headers; for measuring)', 'flow')
    .option('--nat-port-range <low-high>', 'natOutgoing: TCP/UDP source ports (default: above net.ipv4.ip_local_port_range, 61000-65535 on most nodes)')
    .option('--nat-udp-timeout <seconds>', 'natOutgoing: idle timeout of a NATed UDP flow (default 30 unreplied, 120 replied)', (v) => Number(v))
    .option('--allow-vxlan-from-pods', 'forward a pod\'s own VXLAN packets (UDP to the VXLAN port, 4789 unless vxlanPort says otherwise), which are otherwise dropped and counted encap_from_pod, as Felix drops them (Felix\'s allowVXLANPacketsFromWorkloads, or FELIX_ALLOWVXLANPACKETSFROMWORKLOADS; default false)')
    .option('--allow-ipip-from-pods', 'forward a pod\'s own IP-in-IP packets (protocol 4), otherwise dropped and counted encap_from_pod (Felix\'s allowIPIPPacketsFromWorkloads, or FELIX_ALLOWIPIPPACKETSFROMWORKLOADS; default false)')
    .option('--nat-outgoing-exclusions <IPPoolsOnly|IPPoolsAndHostIPs>', 'natOutgoing: which destinations outside the pool keep the pod\'s address (Felix\'s natOutgoingExclusions, or FELIX_NATOUTGOINGEXCLUSIONS; default IPPoolsOnly, as Felix: only other pools, so a pod\'s connection to another node\'s address is masqueraded too; IPPoolsAndHostIPs: the nodes\' addresses as well)')
    .option('--nat-max-flows <n>', 'natOutgoing: NATed flows at once; new ones beyond are refused and counted', (v) => Number(v), 65536)
    .option('--metrics-port <port>', 'serve Prometheus /metrics, /livez and /readyz on this port (or FELIX_PROMETHEUSMETRICSENABLED=true and FELIX_PROMETHEUSMETRICSPORT, default 9091)')
    .option('--metrics-host <addr>', 'address for the metrics port (default every address; or FELIX_PROMETHEUSMETRICSHOST)')
    .option('--bgp', 'run the BGP speaker with Calico\'s peering model (also CALICO_NETWORKING_BACKEND=bird)')
    .option('--router-id <id|hash>', 'BGP router ID: a.b.c.d, or hash (derived from the node name, as calico-node); needed on a node without an IPv4 address (or CALICO_ROUTER_ID; default the node\'s IPv4 address)')
    .option('--bgp-secrets <dir>', 'BGPPeer password secrets, read from DIR/<secret>/<key> (a mounted Kubernetes secret\'s layout)')
    .option('--log-level <level>', `trace|debug|info|warn|error|fatal|silent (or LOG_LEVEL, or Felix's FELIX_LOGSEVERITYSCREEN; default info); change it later with \`${podwayCommand()} log-level\``)
    .option('--sched-slice-us <us>', 'scheduler slice of each forwarding thread (EEVDF, Linux 6.12+; 100..100000 µs, 0 = the kernel\'s default): a short one lets a woken forwarding thread run before a busy process finishes its slice (default: left as the kernel sets it)', (v) => Number(v))
    .option('--model-thread-stable-after <duration>', 'a model thread started again after one died counts as stable once it has run this long after its first model: the restart backoff starts again from 1 s, and a failing model thread (3 deaths, none stable in between) is no longer failing, so the node is ready again (10s..1h)', '1m')
    .option('--model-thread-hang-after <duration>', 'the model thread (datastore watch and model computation) not answering its heartbeat this long is taken for hung: terminated and replaced, said in the log and status (as Felix\'s HealthTimeoutOverrides for its calculation graph; 2s..10m, default 20s as Felix\'s); asked every quarter of it, at most every 5 s', '20s')
    .option('--endpoint-missing-after <duration>', `how long a local endpoint waits for its missing interface before \`${podwayCommand()} status\` names it with the commands that clean it up (a pod removed while no CNI DEL could run); nothing is deleted`, '5m')
    .option('--orphan-hold-interval <duration>', 'how often podway run looks again at the orphan pod addresses it holds in IPAM while it holds any (docs/ipam.md, "Addresses a pod on the node still holds"): a hold whose interface is gone (a veth, or a tap/tun pod\'s device gone from its namespace) is released then at the latest (1s..1h)', '1m')
    .option('--jit-budget <bytes>', `V8's interrupt budget: bytecode a function runs between checks for optimizing it (V8's default ${V8_INTERRUPT_BUDGET}); a lower one gets the forwarding path optimized after a few hundred packets; with V8's, a node carrying a trickle runs it unoptimized for thousands`, (v) => Number(v), JIT_BUDGET)
    .addHelpText('after', `\nFelix settings (${felixSettingFlags().join(', ')}): the flag, else its FELIX_ variable, else FelixConfiguration node.<this node>, else FelixConfiguration default, else the built-in default; a FelixConfiguration change applies live (docs/running.md, "Felix settings (FelixConfiguration)").`)
    .action(async (o) => {
      if (!Number.isInteger(o.jitBudget) || o.jitBudget < 256 || o.jitBudget > 1_048_576) throw new UsageError('run: --jit-budget must be 256..1048576');
      // Before the dataplane's functions first run: their feedback cells take the budget then.
      setFlagsFromString(`--interrupt-budget=${o.jitBudget}`);
      const node = nodeOption(o.node);
      const datastore: string = o.datastore ?? '';
      // The flags win over Calico's environment names, which every datastore user reads.
      // (process.env, because the model thread reads it too.)
      Object.assign(process.env, envWithEtcdTlsFlags(o));
      if (!node) throw new UsageError('run: give --node NAME (or set NODENAME)');
      if (!Number.isInteger(o.batch) || o.batch < 1 || o.batch > 1024) throw new UsageError('run: --batch must be 1..1024');
      const workers = parseWorkers(o.workers);
      if (o.underlayRingMb !== undefined && (!Number.isInteger(o.underlayRingMb) || o.underlayRingMb < 1 || o.underlayRingMb > 1024)) throw new UsageError('run: --underlay-ring-mb must be 1..1024 (MiB)');
      if (o.natUdpTimeout !== undefined && (!Number.isInteger(o.natUdpTimeout) || o.natUdpTimeout < 1 || o.natUdpTimeout > 86400)) throw new UsageError('run: --nat-udp-timeout must be 1..86400 seconds');
      if (!Number.isInteger(o.natMaxFlows) || o.natMaxFlows < 1 || o.natMaxFlows > 16_777_216) throw new UsageError('run: --nat-max-flows must be 1..16777216');
      for (const [flag, v] of [['--neighbor-reachable', o.neighborReachable], ['--neighbor-retrans', o.neighborRetrans]] as const) {
        if (v !== undefined && (!Number.isInteger(v) || v < 100 || v > 3_600_000)) throw new UsageError(`run: ${flag} must be 100..3600000 ms`);
      }
      if (o.schedSliceUs !== undefined && (!Number.isInteger(o.schedSliceUs) || (o.schedSliceUs !== 0 && (o.schedSliceUs < 100 || o.schedSliceUs > 100_000)))) throw new UsageError('run: --sched-slice-us must be 0 or 100..100000');
      const neighbor = { reachableMs: o.neighborReachable as number | undefined, retransMs: o.neighborRetrans as number | undefined };
      if (o.neighborQueue !== undefined && (!Number.isInteger(o.neighborQueue) || o.neighborQueue < 0 || o.neighborQueue > 64)) throw new UsageError('run: --neighbor-queue must be 0..64 (packets per neighbour)');
      const neighborQueue = o.neighborQueue === undefined ? undefined : { perNeighbor: o.neighborQueue as number };
      // Felix's settings given here (flag, else environment): each is podway run's top layers, over
      // the FelixConfiguration node.NAME and default it reads from its datastore (felix-settings.ts).
      // One not given here is absent: a FelixConfiguration or the built-in default gives it.
      const felixFrom: LocalFelix['from'] = {};
      const logFrom = o.logLevel ? '--log-level' : process.env.LOG_LEVEL ? '$LOG_LEVEL' : process.env.FELIX_LOGSEVERITYSCREEN ? '$FELIX_LOGSEVERITYSCREEN' : undefined;
      let logLevel: ReturnType<typeof startLevel> | undefined;
      try {
        logLevel = logFrom === undefined ? undefined : startLevel(o.logLevel);
      } catch (e) {
        throw new UsageError((e as Error).message);
      }
      if (logFrom) felixFrom.logLevel = logFrom;
      const metricsPort = metricsPortOption(o.metricsPort);
      const metricsHost: string | undefined = o.metricsHost ?? (process.env.FELIX_PROMETHEUSMETRICSHOST || undefined);
      const backend = process.env.CALICO_NETWORKING_BACKEND;
      // calico-node's values: bird (BGP), vxlan and none (no BGP). Anything else is a typo that
      // would otherwise run a node without the BGP its operator asked for.
      if (backend !== undefined && backend !== '' && !['bird', 'vxlan', 'none'].includes(backend)) {
        throw new UsageError(`run: CALICO_NETWORKING_BACKEND must be bird, vxlan or none, got ${JSON.stringify(backend)}`);
      }
      const bgp = !!o.bgp || backend === 'bird';
      // IP=none (an IPv6-only node) needs its IPv6 address: both none is no node address at all.
      if ((o.ip ?? process.env.IP) === 'none' && (o.ip6 ?? process.env.IP6) === 'none') {
        throw new UsageError('--ip none and --ip6 none (IP / IP6): a node needs an IPv4 or an IPv6 address');
      }
      // calico-node's CALICO_ROUTER_ID (the flag wins): checked here, so a typo stops the start.
      const routerIdText: string | undefined = o.routerId ?? (process.env.CALICO_ROUTER_ID || undefined);
      let routerId: string | undefined;
      try {
        routerId = routerIdText === undefined ? undefined : (await import('../control/bgp/peering')).checkRouterIdSetting(routerIdText, o.routerId !== undefined ? 'run: --router-id' : 'run: CALICO_ROUTER_ID');
      } catch (e) {
        throw new UsageError((e as Error).message);
      }
      const given = (flag: unknown, env: string | undefined, flagName: string, envName: string): string | undefined =>
        flag !== undefined && flag !== false ? flagName : (env ?? '').trim() !== '' ? `$${envName}` : undefined;
      felixFrom.endpointToHost = given(o.endpointToHost, process.env.FELIX_DEFAULTENDPOINTTOHOSTACTION, '--endpoint-to-host', 'FELIX_DEFAULTENDPOINTTOHOSTACTION');
      const endpointToHost = felixFrom.endpointToHost ? parseEndpointToHost(o.endpointToHost, process.env.FELIX_DEFAULTENDPOINTTOHOSTACTION) : undefined;
      felixFrom.allowVxlanFromPods = given(o.allowVxlanFromPods, process.env.FELIX_ALLOWVXLANPACKETSFROMWORKLOADS, '--allow-vxlan-from-pods', 'FELIX_ALLOWVXLANPACKETSFROMWORKLOADS');
      const allowVxlanFromPods = felixFrom.allowVxlanFromPods ? parseFelixBool(o.allowVxlanFromPods, process.env.FELIX_ALLOWVXLANPACKETSFROMWORKLOADS, 'FELIX_ALLOWVXLANPACKETSFROMWORKLOADS') : undefined;
      felixFrom.allowIpipFromPods = given(o.allowIpipFromPods, process.env.FELIX_ALLOWIPIPPACKETSFROMWORKLOADS, '--allow-ipip-from-pods', 'FELIX_ALLOWIPIPPACKETSFROMWORKLOADS');
      const allowIpipFromPods = felixFrom.allowIpipFromPods ? parseFelixBool(o.allowIpipFromPods, process.env.FELIX_ALLOWIPIPPACKETSFROMWORKLOADS, 'FELIX_ALLOWIPIPPACKETSFROMWORKLOADS') : undefined;
      felixFrom.natOutgoingExclusions = given(o.natOutgoingExclusions, process.env.FELIX_NATOUTGOINGEXCLUSIONS, '--nat-outgoing-exclusions', 'FELIX_NATOUTGOINGEXCLUSIONS');
      let natOutgoingExclusions: NatOutgoingExclusions | undefined;
      try {
        natOutgoingExclusions = o.natOutgoingExclusions !== undefined
          ? parseNatOutgoingExclusions(o.natOutgoingExclusions, 'run: --nat-outgoing-exclusions')
          : felixFrom.natOutgoingExclusions ? parseNatOutgoingExclusions(process.env.FELIX_NATOUTGOINGEXCLUSIONS, 'run: $FELIX_NATOUTGOINGEXCLUSIONS') : undefined;
      } catch (e) {
        throw new UsageError((e as Error).message);
      }
      // Felix's tunnel MTUs from the environment (vxlanMTU...; felix-mtu.ts): a bad one stops the start
      const tunnelMtuEnv: TunnelMtuSettings = {};
      for (const m of FELIX_MTU_FIELDS) {
        const text = process.env[m.env];
        if (text === undefined || text.trim() === '') continue;
        try {
          tunnelMtuEnv[m.tunnel] = parseTunnelMtu(text, m.min);
        } catch (e) {
          throw new UsageError(`$${m.env}: ${JSON.stringify(text)} ${(e as Error).message}`);
        }
        felixFrom[m.tunnel === 'vxlan' ? 'vxlanMtu' : m.tunnel === 'vxlan6' ? 'vxlanMtuV6' : 'ipipMtu'] = `$${m.env}`;
      }
      // FELIX_VXLANPORT / FELIX_VXLANVNI: a bad one stops the start as the other FELIX_ variables do
      // (it was logged and ignored, the only FELIX_ variable so treated)
      for (const f of FELIX_VXLAN_FIELDS) {
        const text = process.env[f.env];
        if (text === undefined || text.trim() === '') continue;
        try {
          parseVxlanField(f.field, text);
        } catch (e) {
          throw new UsageError(`$${f.env}: ${JSON.stringify(text)} ${(e as Error).message}`);
        }
      }
      for (const k of Object.keys(felixFrom) as (keyof typeof felixFrom)[]) if (felixFrom[k] === undefined) delete felixFrom[k];
      const pollText: string | undefined = o.autodetectPollInterval ?? (process.env.AUTODETECT_POLL_INTERVAL || undefined);
      let autodetectPollMs: number;
      try {
        autodetectPollMs = pollText === undefined ? DEFAULT_AUTODETECT_POLL_MS : parseDuration(pollText, o.autodetectPollInterval !== undefined ? 'run: --autodetect-poll-interval' : 'run: AUTODETECT_POLL_INTERVAL');
      } catch (e) {
        throw new UsageError((e as Error).message);
      }
      const staleEndpointMs = durationFlag(o.endpointMissingAfter, '--endpoint-missing-after', 1000, 86_400_000 * 30, '1s..720h');
      const modelThreadHangMs = durationFlag(o.modelThreadHangAfter, '--model-thread-hang-after', 2000, 600_000, '2s..10m');
      const modelThreadStableMs = durationFlag(o.modelThreadStableAfter, '--model-thread-stable-after', 10_000, 3_600_000, '10s..1h');
      const orphanHoldIntervalMs = durationFlag(o.orphanHoldInterval, '--orphan-hold-interval', 1000, 3_600_000, '1s..1h');
      if (autodetectPollMs !== 0 && (autodetectPollMs < 100 || autodetectPollMs > 86_400_000)) throw new UsageError('run: --autodetect-poll-interval must be 0 (off) or 100ms..24h');
      // The datastore spec (--datastore, $PODWAY_DATASTORE, DATASTORE_TYPE/ETCD_ENDPOINTS) as
      // runNode will read it: one that does not parse is a usage error too, told before the root
      // check and anything else (under the unit, exit 2 stops the restarts).
      const { resolveDatastoreSpec } = await import('../control/open-datastore');
      try {
        resolveDatastoreSpec(datastore || undefined);
      } catch (e) {
        throw new UsageError((e as Error).message);
      }
      const { runNode } = await import('./run');
      // A start that failed once it began (a usage error found once the datastore was read, nft
      // refusing a table): runNode undid what it made (bounded: run.ts undoFailedStart); the error
      // is said and podway exits with its code here, not when its last thread or socket ends (a
      // usage error returned from main and left the process to the event loop: it never ended).
      const ran = runNode({ autodetectPollMs, staleEndpointMs, orphanHoldIntervalMs, modelThreadHangMs, modelThreadStableMs, bgp, bgpSecretsDir: o.bgpSecrets, ...(routerId !== undefined ? { routerId } : {}), natPortRange: o.natPortRange, natUdpTimeout: o.natUdpTimeout, natMaxFlows: o.natMaxFlows, natOutgoingExclusions, allowVxlanFromPods, allowIpipFromPods, felixFrom, tunnelMtuEnv, felixWireEnv: Object.fromEntries([...FELIX_WIRE_FIELDS, ...FELIX_VXLAN_FIELDS].map((f) => [f.env, process.env[f.env]])), node, datastore, ip: o.ip ?? (process.env.IP || undefined), ip6: o.ip6 ?? (process.env.IP6 || undefined), control: o.control, modelCache: o.modelCache, cacheFirst: o.cacheFirst !== false, cniPendingDelDir: o.cniPendingDelDir, cniConfDir: o.cniConfDir, batch: o.batch, ringVersion: o.rxRing === '2' ? 2 : 3, underlayRingMb: o.underlayRingMb, qdiscBypass: !!o.qdiscBypass, gro: o.gro !== false, txGso: o.txGso !== false, txSocket: o.txSocket !== false, backpressure: o.backpressure !== false, rxSuper: o.rxSuper !== false, rxMerge: o.rxMerge !== false, scatterRx: o.scatterRx !== false, podSuper: o.podSuper !== false, kernelTransitDrop: o.kernelTransitDrop !== false, endpointToHost, neighbor, neighborQueue, workers: workers.count, workersAuto: workers.auto, workerSteer: parseWorkerSteer(o.workerSteer), schedSliceUs: o.schedSliceUs as number | undefined, logLevel, metricsPort, metricsHost });
      try {
        await ran;
      } catch (e) {
        process.stderr.write(`podway: ${e instanceof Error ? e.message : String(e)}\n`);
        process.exit(e instanceof UsageError ? 2 : 1);
      }
      // runNode resolves once its stop is done (models, cache, Node writes, NAT, workers: each
      // awaited or bounded). What can remain is a gRPC connection still being set up to an etcd
      // that drops packets (a registration that waited on it): grpc-js does not abort a pending
      // connect on close, and its socket would hold the process until the kernel gives the
      // connect up (minutes). SIGTERM must end podway in its stop time, so the process ends here.
      process.exit();
    });

  clientCommand(program, 'status', 'show the running node dataplane', (s) => {
    // Answered by a podway still registering its Node or waiting for its datastore (run.ts).
    if (s.starting) {
      return [
        `podway is starting on node ${s.node} (pid ${s.pid}), up ${s.uptimeSeconds}s`,
        s.version ? `version ${versionText(s.version)}` : null,
        `starting: ${s.starting}${s.datastore ? ` (${s.datastore})` : ''}`,
        `not ready: ${(s.notReady as string[]).join('; ')}`,
        ...((s.cniConfMismatch ?? []) as { message: string }[]).map((c) => `cni config: ${c.message}`),
        s.logLevel ? `log level ${s.logLevel}${s.metricsPort ? `; metrics on port ${s.metricsPort}` : ''}` : null,
        logDroppedLine(s.logLinesDropped),
        ...felixStatusLines(s.felix),
      ].filter((l) => l !== null).join('\n') + '\n';
    }
    const lines = [
      // an IPv6-only node (IP=none) has no IPv4 address: its IPv6 one, said so
      `podway is running on node ${s.node} (${s.nodeIp ?? `${s.ipv6?.nodeIp ?? 'no address'}, IPv6 only`}), up ${s.uptimeSeconds}s`,
      s.version ? `version ${versionText(s.version)}` : null,
      s.ready === undefined ? null : s.ready ? 'ready' : `not ready: ${(s.notReady as string[]).join('; ')}`,
      // network policy stored but not enforced (control/policy-kinds.ts): right under readiness
      s.unenforcedPolicies ? policyLine(unenforcedPolicyText(s.unenforcedPolicies)) : null,
      s.cachedModel ? `forwarding on the cached model from ${s.cachedModel.appliedAt}${s.cachedModel.ageSeconds !== undefined ? `, ${ageText(s.cachedModel.ageSeconds)} old` : ''} (${s.cachedModel.file}): ${s.cachedModel.first ? 'applied at start (written in this boot), the datastore\'s model not applied yet' : 'the datastore has not answered since the start'}${cachedNodeText(s.cachedModel)}` : null,
      `underlay ${s.underlay?.name} mac ${s.underlay?.mac} mtu ${s.underlay?.mtu}; vtep ${s.vtep?.ip ?? '-'} ${s.vtep?.mac}${s.tunnelsOn ? `; tunnels received on the ${s.tunnelsOn}` : ''}${rpFilterText(s.rpFilter, s.rpFilterChange)}`,
      `mtu: pod ${s.mtu?.pod}, vxlan ${s.mtu?.vxlan}, ipip ${s.mtu?.ipip}${mtuEffectiveText(s.mtuEffective, s.underlay?.name)}; batch ${s.batch}`,
      `${s.routes} routes, ${s.endpoints} endpoints, ${s.modelsApplied} model updates applied; known nodes: ${listSummary(s.knownNodes)}`,
      // IPv6 beside: its own line when the node has an address or routes of that family
      s.ipv6 && (s.ipv6.nodeIp || s.ipv6.routes > 0)
        ? `ipv6: node ${s.ipv6.nodeIp ?? 'no address'}; vtep ${s.ipv6.vtep.ip ?? '-'} ${s.ipv6.vtep.mac}; ${s.ipv6.routes} routes; mtu: pod ${s.ipv6.podMtu}, vxlan ${s.ipv6.vxlanMtu}; known nodes: ${listSummary(s.ipv6.knownNodes) || '-'}`
        : null,
      // the kernel's local table (local-addrs.ts): a veth pod's packets for these are the kernel's to deliver
      s.localAddresses ? `node's own addresses (local table${s.localLearned ? `, ${s.localLearned}` : ''}; loopback, IPv6 link-local and multicast left out): ${listSummary([...s.localAddresses.v4, ...s.localAddresses.v6]) || 'none read'}` : null,
    ];
    // the underlay link down or gone, and the node's address gone from a link that is up: two
    // things, two lines (Engine.checkNodeAddress)
    if (s.underlayDown) lines.push(`underlay down: ${s.underlayDown.reason} (since ${s.underlayDown.since})`);
    if (s.nodeAddressMissing) lines.push(`node address missing: ${s.nodeAddressMissing}`);
    // an underlay neighbour whose probes go unanswered: the nodes behind it (Engine.unreachableNodes)
    for (const u of (s.unreachableNodes ?? []) as { neighbor: string; nodes: string[]; nodeIps: string[]; since: string }[]) lines.push(unreachableNodeLine(u));
    if (s.ipPools === 0) lines.push(`no IPPool for this node's pods (none in the datastore, all disabled, or none of the node's address family): a pod's CNI ADD gets no address ("enabled pools: none"); create one: \`${podwayCommand()} apply -f pool.yaml\` (an IPPool, as in the README's Quick start)`);
    for (const w of s.withheld) lines.push(`withheld: ${w.cidr} via ${w.node}: ${w.reason}`);
    for (const w of s.waiting ?? []) lines.push(`waiting for: ${w}`);
    // endpoints whose interface has been missing for long (--endpoint-missing-after), with the cleanup
    for (const e of s.staleEndpoints ?? []) lines.push(staleEndpointLine(e));
    // pod interfaces holding an address no endpoint of this datastore names (dataplane/orphan-pods.ts)
    for (const o of s.orphanPods ?? []) lines.push(`orphan pod: ${orphanPodLine(o)}`);
    for (const h of summarizeHostChanges(s.hostChanges)) lines.push(`host: ${h}`);
    if (s.nat?.table) lines.push(`nat: table ${s.nat.table}; natOutgoing from ${s.nat.natPools.join(', ') || 'no pool'}${natExclusionsText(s.nat.natOutgoingExclusions, s.nat.natPools.length)}; ports ${s.nat.portRange}; udp timeout ${s.nat.udpTimeout.unreplied}/${s.nat.udpTimeout.replied} s; at most ${s.nat.maxFlows} flows${s.nat.lastError ? '; last error: ' + s.nat.lastError : ''}`);
    else if (s.nat?.lastError) lines.push(`nat: unavailable: ${s.nat.lastError}`);
    if (s.nat6?.table) lines.push(`nat6: table ${s.nat6.table}; natOutgoing from ${s.nat6.natPools.join(', ') || 'no pool'}${natExclusionsText(s.nat6.natOutgoingExclusions, s.nat6.natPools.length)}; ports ${s.nat6.portRange}; udp timeout ${s.nat6.udpTimeout.unreplied}/${s.nat6.udpTimeout.replied} s; at most ${s.nat6.maxFlows} flows${s.nat6.lastError ? '; last error: ' + s.nat6.lastError : ''}`);
    else if (s.nat6?.lastError) lines.push(`nat6: unavailable: ${s.nat6.lastError}`);
    if (s.guard?.table) lines.push(`pod guard: table ${s.guard.table}; ${guardSummary(s.guard)}${s.guard.lastError ? '; last error: ' + s.guard.lastError : ''}`);
    else if (s.guard?.lastError) lines.push(`pod guard: unavailable (veth pods reach the node's kernel with forged sources and tunnel packets): ${s.guard.lastError}`);
    // DELs the CNI plugin deferred while etcd was down (pending-del-replay.ts), once there were any
    const pd = s.cniPendingDel;
    if (pd && (pd.pending || pd.replayed || pd.failed || pd.ignored)) lines.push(`cni deferred DELs (${pd.dir}): ${pd.pending} pending, ${pd.replayed} replayed, ${pd.failed} failed${pd.ignored ? `, ${pd.ignored} not for this datastore or unreadable` : ''}${pd.lastError ? `; last error${pd.lastErrorAt ? ` (at ${pd.lastErrorAt})` : ''}: ${pd.lastError}` : ''}`);
    // the etcd create fences (etcd-fence.ts): once one was written, moved or left unwritten
    for (const f of (s.etcdFences ?? []) as { store: string; written: number; moved: number; unwritten: number }[]) {
      if (f.written || f.moved || f.unwritten) lines.push(`create fences (${f.store}): ${f.written} written, ${f.moved} moved, ${f.unwritten} unwritten${f.unwritten ? ' (creates that left a copy on a member without their fence: see the log)' : ''}`);
    }
    // the node's liveness key on etcd (control/node-live.ts): its lease lost, or renewals failing
    const nl = s.nodeLiveness as import('../control/node-live').LivenessStatus | null | undefined;
    if (nl) {
      const age = Math.round((Date.now() - nl.lastRenewedAt) / 1000);
      const failed = `${nl.renewalsFailed} renewal${nl.renewalsFailed === 1 ? '' : 's'} failed in all`;
      if (nl.lostSince !== null) {
        lines.push(`liveness: the lease of node ${nl.node}'s liveness key lost since ${new Date(nl.lostSince).toISOString()} (last renewed ${age} s ago; ${failed}): ${nl.heldElsewhere ? `another host holds the key (${nl.heldElsewhere}): another podway runs under this node's name there` : `another host may start under this node's name; the key is written again once etcd answers`}`);
      } else if (age > nl.ttl / 3 + 2) lines.push(`liveness: node ${nl.node}'s liveness key last renewed ${age} s ago (${failed}; its lease of ${nl.ttl} s is lost past that)`);
      // its lease renewed, but its value (the node's addresses) not written: the name is held, the record old
      if (nl.recordWritesFailed) lines.push(`liveness: node ${nl.node}'s liveness key: ${nl.recordWritesFailed} write${nl.recordWritesFailed === 1 ? '' : 's'} of its value failed in all (its lease renewed: the key held, its node addresses as last written; see the log)`);
    }
    // the kernel's main table unreadable (`ip route` failing: dataplane/kernel-routes.ts): the last good one in use
    const kr = s.kernelRoutes as { routes: number; readAt: string | null; failures: number; failing: { since: string; error: string; attempts: number; nextTryAt: string | null } | null } | undefined;
    if (kr?.failing) lines.push(`kernel routes unreadable since ${kr.failing.since} (${kr.failing.attempts} failed read${kr.failing.attempts === 1 ? '' : 's'} in a row; last: ${kr.failing.error}): underlay next hops follow ${kr.readAt ? `the table read at ${kr.readAt} (${kr.routes} routes)` : 'no table (none read yet: every node taken as on-link)'}${kr.failing.nextTryAt ? `; next try at ${kr.failing.nextTryAt}` : ''}`);
    // podway networks of the CNI config dir naming another datastore than this run's (cni-conf-check.ts)
    for (const c of s.cniConfMismatch ?? []) lines.push(`cni config: ${c.message}`);
    // the datastore and its clusterGUID (ClusterInformation default) as the registration saw it
    if (s.datastoreSource) lines.push(`datastore ${s.datastoreSource}${s.clusterGuid ? ` (clusterGUID ${shortGuid(s.clusterGuid)})` : ''}`);
    // ClusterInformation default's datastoreReady: false, as the last registration read it
    if (s.datastoreRejected) lines.push(`datastore ${s.datastoreSource ?? ''} rejected since ${s.datastoreRejected.since}: ${s.datastoreRejected.error}; running on the last good state`);
    // the model thread died at least once (model-source.ts): how often, what killed it last, and now
    const mt = s.modelThread as { state: string; restarts: number; hangs?: number; lastExit: { at: string; error: string } | null; nextStartAt: string | null; failing?: { deaths: number; since: string } | null; stableAfterS?: number } | null | undefined;
    if (mt && (mt.restarts > 0 || mt.state !== 'running')) {
      const now = mt.state === 'down' ? `down: forwarding on the last good model, a new one at ${mt.nextStartAt}` : mt.state === 'starting' ? 'starting again: listing the datastore' : 'running';
      const hung = mt.hangs ? ` (${mt.hangs} of them after it hung)` : '';
      const failing = mt.failing ? `; failing: died ${mt.failing.deaths} times since ${mt.failing.since}, none running ${stableAfterWords((mt.stableAfterS ?? 60) * 1000)} in between (restarted at most every 30 s, never given up)` : '';
      lines.push(`model thread: ${now}; restarted ${mt.restarts} time${mt.restarts === 1 ? '' : 's'}${hung}${failing}${mt.lastExit ? `; last died at ${mt.lastExit.at}: ${mt.lastExit.error}` : ''}`);
    }
    // forwarding threads that died and were started again (worker-deaths.ts)
    const ft = s.forwardingThreads as { count: number; restarts: number; deathsInWindow: number; windowS: number; giveUpAt: number; lastDeath: { worker: number; at: string; error: string } | null; down: { worker: number; restartAt: string | null }[] } | null | undefined;
    if (ft && (ft.restarts > 0 || ft.down.length > 0)) {
      const down = ft.down.map((d) => `worker ${d.worker} down${d.restartAt ? `, a new one at ${d.restartAt}` : ', given up'}`).join('; ');
      lines.push(`forwarding threads: ${down ? `${down}; ` : ''}restarted ${ft.restarts} time${ft.restarts === 1 ? '' : 's'} (${ft.deathsInWindow} death${ft.deathsInWindow === 1 ? '' : 's'} in the last ${ft.windowS} s; podway exits at ${ft.giveUpAt})${ft.lastDeath ? `; last died: worker ${ft.lastDeath.worker} at ${ft.lastDeath.at}: ${ft.lastDeath.error}` : ''}`);
    }
    // the model cache cannot be written (model-cache.ts ModelCacheWriter.status): forwarding goes on,
    // but the cache a restart during a datastore outage would forward on is not kept
    const mc = s.modelCache as { file: string; lastWritten: string | null; failures: number; failing: { since: string; attempts: number; error: string } | null } | null | undefined;
    if (mc?.failing) lines.push(`model cache ${mc.file} cannot be written since ${mc.failing.since} (${mc.failing.attempts} failed write${mc.failing.attempts === 1 ? '' : 's'} in a row; last: ${mc.failing.error}): a restart while the datastore is unreachable would not forward until it is back (${mc.lastWritten ? `last written at ${mc.lastWritten}` : 'not written since the start'})`);
    // registering again after the datastore was replaced keeps failing (re-register.ts): tried again with backoff
    const rr = s.reRegistrationFailing as { since: string; why: string; error: string; attempts: number; nextAt: string } | null | undefined;
    if (rr) lines.push(`registration failing since ${rr.since} (registering again after: ${rr.why}; attempt ${rr.attempts}): ${rr.error}; next try at ${rr.nextAt}`);
    if (s.datastoreLocked) lines.push(`datastore locked: ClusterInformation default has datastoreReady: false (read ${s.datastoreLocked.checkedAt}; e.g. \`calicoctl datastore migrate lock\`): Calico's Felix and CNI plugin wait until it is unlocked (\`calicoctl datastore migrate unlock\`); podway forwards on and does not unlock it`);
    if (s.logLevel) lines.push(`log level ${s.logLevel}${s.metricsPort ? `; metrics on port ${s.metricsPort}` : ''}`);
    lines.push(logDroppedLine(s.logLinesDropped));
    lines.push(...felixStatusLines(s.felix));
    return lines.filter((l) => l !== null).join('\n') + '\n';
  }, { starting: true }); // a podway still starting answers status only to a caller that reads that answer
  // a local route whose interface is not attached is listed as withheld, with status's reason
  clientCommand(program, 'routes', 'show the routing table', (r) => table(r, ['cidr', 'kind', 'node', 'via', ...((r as { gateway?: string }[]).some((x) => x.gateway) ? ['gateway'] : []), 'vtepMac', 'nextHopMac', 'mtu', 'pool', ...((r as { withheld?: string }[]).some((x) => x.withheld) ? ['withheld'] : [])]));
  clientCommand(program, 'endpoints', 'show local workload endpoints (attached, or waiting for their interface)', (r) => table(r, ['workload', 'interface', 'type', 'networks', 'state', 'mac', 'rx', 'tx']));
  clientCommand(program, 'counters', 'show per-port counters and drop reasons', (r) => {
    const reasons = Object.entries(r.reasons as Record<string, number>).map(([reason, count]) => ({ reason, count }));
    const nat = r.nat ? `\nnat (table ip podway): ${r.nat.flows} flows masqueraded, ${r.nat.outPackets} packets out, ${r.nat.inPackets} replies back to pods, ${r.nat.refused} new flows refused (table full), ${r.nat.icmpUnmatched} ICMP errors quoting no known flow, ${r.nat.podTransit ?? 0} pod frames dropped before the kernel's conntrack (podway forwards them)${r.nat.hostPortIn !== undefined ? `; host ports: ${r.nat.hostPortIn} packets copied to podway (hostport_in), ${r.nat.hostPortDnat ?? 0} connections translated to pods, ${r.nat.hostPortCopy ?? 0} kernel copies of pods' host port packets dropped (podway sends them), ${r.nat.hostPortLocalnet ?? 0} pod packets for 127.0.0.0/8 dropped` : ''}\n` : '';
    const nat6 = r.nat6 ? `${nat ? '' : '\n'}nat6 (table ip6 podway): ${r.nat6.flows} flows masqueraded, ${r.nat6.outPackets} packets out, ${r.nat6.inPackets} replies back to pods, ${r.nat6.refused} new flows refused (table full), ${r.nat6.icmpUnmatched} ICMPv6 errors quoting no known flow, ${r.nat6.podTransit ?? 0} pod frames dropped before the kernel's IPv6 input (podway forwards them)\n` : '';
    const g = r.guard as { podSpoofed?: number; podTunnel?: number; podToHost?: number } | null | undefined;
    const guard = g ? `${nat || nat6 ? '' : '\n'}pod guard (table inet podway): ${g.podSpoofed ?? 0} frames from veth pods with a source not their own dropped before the node's kernel, ${g.podTunnel ?? 0} tunnel packets (VXLAN, IPIP) from pods dropped, ${g.podToHost ?? 0} new connections from pods to the node dropped (--endpoint-to-host drop)\n` : '';
    // deferred CNI DELs (etcd datastore only): always shown there, 0s included, to be watched
    const pd = r.cniPendingDel as { dir: string; pending: number; replayed: number; failed: number; ignored: number } | null | undefined;
    const cni = pd ? `${nat || nat6 || guard ? '' : '\n'}cni deferred DELs (${pd.dir}): ${pd.pending} pending, ${pd.replayed} replayed, ${pd.failed} failed${pd.ignored ? `, ${pd.ignored} not for this datastore or unreadable` : ''}\n` : '';
    const bgp = r.bgpPeers ? '\n' + table(r.bgpPeers, ['peer', 'type', 'state', 'messagesIn', 'messagesOut', 'updatesIn', 'updatesOut', 'prefixesReceived', 'prefixesAccepted']) : '';
    // host-side failures (Engine.failures), only when there was one
    const failed = Object.entries((r.failures ?? {}) as Record<string, number>).filter(([, n]) => n > 0);
    const failures = failed.length ? `\nfailures: ${failed.map(([k, n]) => `${k} ${n}`).join(', ')}\n` : '';
    // workers that did not answer in time: the sums above lack their part
    const missing = (r.missingWorkers ?? []) as number[];
    const gone = missing.length ? `\nnot counted: worker${missing.length > 1 ? 's' : ''} ${missing.join(', ')} did not answer in time\n` : '';
    // late workers: their counts as of their last answer are in the sums (they only grow)
    const lateW = (r.lateWorkers ?? []) as number[];
    const late = lateW.length ? `\nlate: worker${lateW.length > 1 ? 's' : ''} ${lateW.join(', ')} did not answer in time: ${lateW.length > 1 ? 'their' : 'its'} counts as of ${lateW.length > 1 ? 'their' : 'its'} last answer are shown\n` : '';
    // nft tables podway holds that could not be read (nft missing, a table deleted under it): their lines are left out
    const notRead = Object.entries((r.nftNotRead ?? {}) as Record<string, string>);
    const nft = notRead.length ? `\nnot read: ${notRead.map(([t, why]) => `table ${t} (${why})`).join(', ')}\n` : '';
    return table(r.ports) + '\n' + table(reasons) + failures + gone + late + nft + nat + nat6 + guard + cni + bgp;
  });
  // node status: the BGP sessions, as calicoctl node status.
  addNodeCommands(program, controlPath);

  program
    .command('trace')
    .description(`show the life of the next N packets matching a filter, e.g. \`${podwayCommand()} trace host 10.244.0.66 and icmp -n 2\``)
    .addHelpText('after', `\nExit status: 0 when N packets matched; ${TRACE_TIMED_OUT} when the timeout came first (none or fewer than N matched,\nthose that did are shown); 1 when podway could not be asked; 2 for bad arguments (a bad filter too).\nOnce podway matches packets in every thread, "podway: tracing ..." goes to stderr: send what to trace after it.`)
    .argument('[filter...]', FILTER_HELP)
    .option('-n, --count <n>', 'packets to show', wholeNumber, 1)
    .option('--timeout <seconds>', 'give up after', positiveSeconds, 10)
    .option('--node <name>', NODE_TO_ASK_HELP)
    .option('--control <path>', 'control socket path')
    .addOption(new Option('-o, --output <format>', 'output format').choices(['table', 'json']).default('table'))
    .action(async (filter: string[], o) => {
      // A bad filter is a bad argument (2), told before podway is asked (1 is "could not ask").
      if (!filterOk(filter, 'trace')) return;
      // Said on stderr once podway matches packets in every thread: what is sent from then on is seen.
      const armed = (p: Record<string, unknown>) => {
        if (typeof p.armed === 'string') process.stderr.write(`podway: tracing "${p.armed}": the next ${o.count} matching packet${o.count > 1 ? 's' : ''} within ${o.timeout}s\n`);
      };
      const res = (await controlRequest(controlPath(o), { cmd: 'trace', filter, count: o.count, timeoutMs: o.timeout * 1000, armed: true }, o.timeout * 1000 + 5000, armed)) as { filter: string; records: { at: string; ingress: string; stages: string[] }[] };
      if (o.output === 'json') process.stdout.write(JSON.stringify(res, null, 2) + '\n');
      else process.stdout.write(formatTrace(res));
      // A script must tell "nothing (or not all) seen" from success: it used to exit 0 either way.
      if (res.records.length < o.count) {
        // The table already says "no packet matched"; a partial trace or JSON needs the word here.
        if (res.records.length > 0 || o.output === 'json') process.stderr.write(`podway: trace timed out after ${o.timeout}s: ${res.records.length} of ${o.count} packet${o.count > 1 ? 's' : ''} matched "${res.filter}"\n`);
        process.exitCode = TRACE_TIMED_OUT;
      }
    });

  program
    .command('log-level')
    .description('show or set the log level of the running podway (trace|debug|info|warn|error|fatal|silent)')
    .argument('[level]', 'the new level (Felix\'s Debug, Info, Warning, Error too)')
    .option('--node <name>', NODE_TO_ASK_HELP)
    .option('--control <path>', 'control socket path')
    .action(async (level: string | undefined, o) => {
      // a bad level is a usage error (2), told before podway is looked for
      let parsed: ReturnType<typeof parseLogLevel> | undefined;
      try {
        parsed = level !== undefined ? parseLogLevel(level, 'log-level') : undefined;
      } catch (e) {
        throw new UsageError((e as Error).message);
      }
      const res = (await controlRequest(controlPath(o), { cmd: 'log-level', ...(parsed !== undefined ? { level: parsed } : {}) })) as { level: string };
      process.stdout.write(`${res.level}\n`);
    });

  program
    .command('capture')
    .description(`write matching frames at one pipeline stage as pcapng, e.g. \`${podwayCommand()} capture host 10.244.0.66 -w - | tcpdump -r -\``)
    .argument('[filter...]', `${FILTER_HELP}, as for trace`)
    .requiredOption('-w, --write <file>', 'pcapng file to write, or - for stdout')
    .option('-n, --count <n>', 'stop after N packets', wholeNumber)
    .option('-s, --snaplen <bytes>', 'bytes recorded of each packet at most (64..262144; default 262144, as tcpdump: a whole 64 KiB TCP super-frame)', snaplenBytes)
    .addOption(new Option('--stage <stage>', 'where to take the frames: as received, decapsulated, routed (before encapsulation), as sent, or dropped (with the reason as a comment)').choices(['rx', 'decap', 'route', 'tx', 'drop']).default('rx'))
    .option('--node <name>', NODE_TO_ASK_HELP)
    .option('--control <path>', 'control socket path')
    .action(async (filter: string[], o) => {
      if (!filterOk(filter, 'capture')) return;
      const { runCapture, sayToStderr } = await import('./capture');
      const r = await runCapture({ sock: controlPath(o), filter, stage: o.stage, count: o.count, snaplen: o.snaplen, write: o.write, say: sayToStderr });
      sayToStderr(`${r.written} packets captured${r.lost ? `, ${r.lost} lost (the reader was too slow)` : ''}`);
    });

  program
    .command('top')
    .description('live view of the running podway: pps/bps per port, drops by reason, busiest routes (q to quit)')
    .option('--once', 'print one frame (two samples a second apart) and exit; the default when stdout is not a terminal')
    .option('--node <name>', NODE_TO_ASK_HELP)
    .option('--control <path>', 'control socket path')
    .action(async (o) => {
      const { runTop } = await import('./top');
      await runTop({ sock: controlPath(o), once: !!o.once });
    });

  program
    .command('cleanup')
    .description(`remove what a stopped \`${podwayCommand()} run\` leaves for its next start (its nftables tables; the underlay's forwarding a killed run left at 0; a killed run's control socket): after stopping it for good. Refused while a podway run is running here`)
    .option('--node <name>', 'the node podway ran as (default $NODENAME)')
    .option('--control <path>', 'the control socket podway run used (default /run/podway/NODE.sock); its forwarding records are beside it')
    .action(async (o) => {
      const node = nodeOption(o.node);
      if (!node) throw new UsageError('cleanup: give --node NAME (or set NODENAME)');
      const { cleanupNode } = await import('./cleanup');
      const done = await cleanupNode({ node, control: o.control ?? defaultControlPath(node) });
      process.stdout.write(done.length ? done.join('\n') + '\n' : 'nothing of podway\'s was left here\n');
    });

  program
    .command('demo')
    .description('build a local cluster in network namespaces, run podway on each node, ping across every mode, clean up')
    .option('--keep', 'leave the cluster running until Ctrl-C')
    .addOption(new Option('--datastore <kind>', 'where the cluster state lives: the YAML file (default), a real etcd the demo starts, or the embedded store').choices(['file', 'etcd', 'embedded']).default('file'))
    .action(async (o) => {
      const { runDemo } = await import('./demo');
      await runDemo({ keep: !!o.keep, datastore: o.datastore });
    });

  // apply, create, replace, delete, get: calicoctl-shaped resource commands on the datastore.
  addResourceCommands(program);
  // cni install|uninstall: podway's CNI plugin for container runtimes.
  addCniCommands(program);
  // ipam show/check/release/assign/configure: calicoctl-shaped IPAM commands on the datastore.
  addIpamCommands(program);
  oneLineErrors(program, podwayCommand());
  return program;
}

/**
 * commander's refusals (unknown option or command, bad choice, missing argument) as podway's own
 * usage errors: `podway: <what>; see \`podway run --help\`` on one line (commander writes
 * "error: ..." with its suggestion on a second line), for every command and subcommand; main()
 * then exits 2. The help named as the user ran podway (`node bin/podway.js run --help` on a
 * checkout: util/invocation.ts).
 */
function oneLineErrors(cmd: Command, name: string): void {
  cmd.showHelpAfterError(false);
  cmd.configureOutput({
    // commander ends some messages with '.' ("Allowed choices are rx, ..., drop."): dropped, so
    // the line does not read "drop.; see".
    outputError: (str, write) => write(`podway: ${str.replace(/^error: /, '').trim().replace(/\s*\n\s*/g, ' ').replace(/\.$/, '')}; see \`${name} --help\`\n`),
  });
  for (const sub of cmd.commands) oneLineErrors(sub, `${name} ${sub.name()}`);
}

export function formatTrace(res: { filter: string; records: { at: string; ingress: string; stages: string[] }[] }): string {
  if (res.records.length === 0) return `no packet matched "${res.filter}" in time\n`;
  return res.records
    .map((r, i) => [`packet ${i + 1} (${r.at}, in ${r.ingress}):`, ...r.stages.map((s) => `  -> ${s}`)].join('\n'))
    .join('\n') + '\n';
}

export async function main(argv: string[]): Promise<void> {
  const program = buildProgram();
  try {
    await program.parseAsync(argv);
  } catch (e) {
    const code = (e as { code?: string }).code;
    // A command that needs a subcommand given none (`podway`, `podway node`, `podway ipam`,
    // `podway cni`): its help on stderr, then a usage error (commander's exit code 1 there; an
    // asked-for help, --help or `podway help`, exits 0).
    if (code === 'commander.help' && (e as { exitCode?: number }).exitCode !== 0) {
      process.exitCode = 2;
      return;
    }
    if (code === 'commander.helpDisplayed' || code === 'commander.version' || code === 'commander.help') return;
    if (code?.startsWith('commander.')) {
      process.exitCode = 2;
      return;
    }
    if (e instanceof UsageError) {
      process.stderr.write(`podway: ${e.message}\n`);
      process.exitCode = 2;
      return;
    }
    throw e;
  }
}

/** A `run` duration flag's value in ms: one that does not parse, or is outside [minMs, maxMs]
 * (said as `range`), is a usage error naming the flag (exit 2). */
function durationFlag(value: unknown, flag: string, minMs: number, maxMs: number, range: string): number {
  let ms: number;
  try {
    ms = parseDuration(String(value), `run: ${flag}`);
  } catch (e) {
    throw new UsageError((e as Error).message.replace(/ \(0 turns re-detection off\)$/, ''));
  }
  if (ms < minMs || ms > maxMs) throw new UsageError(`run: ${flag} must be ${range}`);
  return ms;
}
