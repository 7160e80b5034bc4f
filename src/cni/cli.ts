// `podway cni install` and `podway cni uninstall` (registered by src/cli/main.ts).
import { Command, Option } from 'commander';
import { detectNodeMode, installCni, uninstallCni } from './install';
import { UsageError } from '../cli/usage-error';
import { checkAgainstRuns, resolveCommandSpec } from '../cli/run-datastore';
import { calicoctlConfigOption, etcdCaCertOption, etcdCertOption, etcdKeyOption, envWithEtcdTlsFlags } from '../cli/etcd-tls-options';

export function addCniCommands(program: Command): void {
  const cni = program.command('cni').description('install or remove podway\'s CNI plugin (so a container runtime attaches pods itself)');
  cni
    .command('install')
    .description('write the plugin (a shim running this build) to the CNI bin dir and a NN-NAME.conflist to the CNI config dir')
    .option('--bin-dir <dir>', 'CNI plugin directory', '/opt/cni/bin')
    .option('--conf-dir <dir>', 'CNI network config directory', '/etc/cni/net.d')
    .option('--datastore <spec>', 'etcd:URL[,URL] or embedded:DIR (default $PODWAY_DATASTORE, Calico\'s env, the embedded store)')
    .addOption(etcdCaCertOption())
    .addOption(etcdCertOption())
    .addOption(etcdKeyOption())
    .option('--node <name>', 'this node, as `podway run --node` (default $NODENAME, else the hostname)')
    .option('--name <name>', 'network name', 'podway')
    .option('--priority <n>', 'conflist file name prefix (runtimes use the first file)', (v) => Number(v), 10)
    .option('--mtu <n>', 'pod MTU, written to the conflist, where it always wins (default: none written: at each ADD the plugin takes Felix\'s pod MTU, the smallest tunnel MTU of the encapsulations the pools use: FelixConfiguration vxlanMTU / ipipMTU / vxlanMTUV6 when set, else the underlay\'s MTU less the overhead, e.g. 1450 with VXLAN on a 1500 underlay; docs/cni.md)', (v) => Number(v))
    .addOption(new Option('--interface-type <type>', 'how pods are attached').choices(['veth', 'tap', 'tun']).default('veth'))
    .option('--control <path>', 'control socket of this node\'s podway run, which STATUS asks (default: podway run\'s, /run/podway/NODE.sock)')
    .option('--ipam-lock-file <path>', 'host-wide lock the plugin holds around IPAM (default /run/podway/ipam.lock)')
    .option('--ip <mode>', 'none: an IPv6-only node (as podway run --ip none): pods get IPv6 addresses only (ipam assign_ipv4 "false", assign_ipv6 "true"); default: read from the node\'s Node in the datastore (no spec.bgp.ipv4Address: IPv6 only)')
    .option('--pending-del-dir <dir>', 'where DEL records releases deferred while etcd is down; podway run --cni-pending-del-dir replays them (default /var/lib/podway/pending-del)')
    .action(async (o) => {
      if (!Number.isInteger(o.priority) || o.priority < 0 || o.priority > 99) throw new UsageError('cni install: --priority must be 0..99');
      if (o.mtu !== undefined && (!Number.isInteger(o.mtu) || o.mtu < 576 || o.mtu > 65535)) throw new UsageError('cni install: --mtu must be 576..65535');
      if (o.ip !== undefined && o.ip !== 'none') throw new UsageError(`cni install: --ip ${JSON.stringify(o.ip)}: only "none" (an IPv6-only node, as podway run --ip none); without --ip the node's Node in the datastore decides`);
      const opts = { binDir: o.binDir, confDir: o.confDir, datastore: o.datastore, node: o.node, name: o.name, priority: o.priority, mtu: o.mtu, interfaceType: o.interfaceType, control: o.control, ipamLockFile: o.ipamLockFile, pendingDelDir: o.pendingDelDir, env: envWithEtcdTlsFlags(o) };
      // The default store while this machine's podway run uses another: the conflist would send
      // the pods to a store the node does not read (cli/run-datastore.ts). A spec that does not
      // parse is a usage error (exit 2) there, as in every datastore command.
      // cni install reads no calicoctl.cfg: the plugin it installs reads only its conflist.
      await checkAgainstRuns(resolveCommandSpec(o.datastore, opts.env, { calicoctlDefault: false }), true);
      // IPv6 only when told (--ip none) or when the Node has no IPv4 address (docs/ipv6.md, "IPv6-only nodes").
      const mode = o.ip === 'none' ? { ipv6Only: true, note: null } : await detectNodeMode(opts);
      const done = installCni({ ...opts, ipv6Only: mode.ipv6Only });
      process.stdout.write(`installed ${done.plugin}\ninstalled ${done.conflist}\n`);
      if (done.note) process.stdout.write(`note: ${done.note}\n`);
      if (mode.note) process.stdout.write(`${mode.note}\n`);
      // Calico's conflist chains portmap; podway's plugin takes the host ports itself (docs/cni.md, "Host ports").
      process.stdout.write('note: host ports (`podman run -p`, hostPort; IPv4 and IPv6) are forwarded by podway run itself: the conflist chains no portmap plugin, do not add one (see docs/cni.md, "Host ports")\n');
    });
  cni
    .command('uninstall')
    .description('remove the plugin shim and the network\'s conflist that `podway cni install` wrote')
    .option('--bin-dir <dir>', 'CNI plugin directory', '/opt/cni/bin')
    .option('--conf-dir <dir>', 'CNI network config directory', '/etc/cni/net.d')
    .option('--name <name>', 'network name', 'podway')
    .action((o) => {
      const removed = uninstallCni({ binDir: o.binDir, confDir: o.confDir, name: o.name });
      process.stdout.write(removed.length ? removed.map((f) => `removed ${f}\n`).join('') : 'nothing to remove\n');
    });
}
