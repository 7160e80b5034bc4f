// Usage errors exit 2 (docs/cli.md, "Exit codes"), with one line naming what is wrong: commander's own
// refusals and podway's checks of flag values alike; 1 stays for errors met doing the work.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import * as path from 'node:path';
import { execFile } from 'node:child_process';
import { chmodSync, existsSync, writeFileSync } from 'node:fs';
import { BIN, podway, tempDir } from './cli-kit';
import { commandOf } from '../../src/util/invocation';
import { NEIGHBOR_QUEUE_BYTES, NEIGHBOR_QUEUE_PER_NEIGHBOR, NEIGHBOR_QUEUE_TOTAL } from '../../src/dataplane/neighbor-queue-limits';

// The hints name podway as these runs start it (`node bin/podway.js` from the checkout: util/invocation.ts).
const CMD = commandOf([process.execPath, BIN], {}, process.cwd());
const CMD_RE = CMD.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
const store = () => ['--datastore', `embedded:${path.join(tempDir(), 'none')}`];

test('get -o with an unknown format: exit 2, one line naming the formats (not the whole help)', async () => {
  const r = await podway(['get', 'ippool', '-o', 'xml', ...store()]);
  assert.is(r.code, 2, r.err);
  assert.is(r.err.trim().split('\n').length, 1, r.err);
  assert.match(r.err, /'xml' is invalid\. use ps, wide, yaml, json, custom-columns=SPEC, custom-columns-file=FILE/);
  const gt = await podway(['get', 'ippool', '-o', 'go-template={{.metadata.name}}', ...store()]);
  assert.is(gt.code, 2);
  assert.match(gt.err, /calicoctl's go-template is not supported by podway/);
});

test('bad flag values of run, log-level and ipam release: exit 2 before anything is asked or opened', async () => {
  const cases: [string[], RegExp][] = [
    [['run', '--bogus-flag'], /unknown option '--bogus-flag'/],
    [['run', '--node', 'usage-x', '--workers', '0'], /--workers must be auto or 1\.\.64/],
    [['log-level', 'bogus', '--control', path.join(tempDir(), 'none.sock')], /unknown log level "bogus"/],
    [['ipam', 'release', '--ip', 'bogus', ...store()], /ipam release: --ip: invalid IP address "bogus"/],
    [['ipam', 'release', ...store()], /ipam release: give --ip IP/],
    [['capture', '--stage', 'bogus', '-w', '-'], /argument 'bogus' is invalid/],
    [['capture', '-s', '10', '-w', '-'], /expected a whole number of bytes from 64 to 262144/],
    [['capture', '--snaplen', '300000', '-w', '-'], /expected a whole number of bytes from 64 to 262144/],
    [['trace', 'host', 'x'], /invalid address "x": expected an IPv4 or IPv6 address/],
    // IP=none (an IPv6-only node) with IP6=none: no address at all
    [['run', '--node', 'usage-x', '--ip', 'none', '--ip6', 'none', '--control', path.join(tempDir(), 'none.sock'), ...store()], /--ip none and --ip6 none \(IP \/ IP6\): a node needs an IPv4 or an IPv6 address/],
  ];
  for (const [args, message] of cases) {
    const r = await podway(args);
    assert.is(r.code, 2, `podway ${args.join(' ')}: ${r.err}`);
    assert.match(r.err, message);
  }
  // not a usage error: podway is not there to ask (1)
  const gone = await podway(['log-level', 'info', '--control', path.join(tempDir(), 'none.sock')]);
  assert.is(gone.code, 1, gone.err);
});

test('run\'s bad variables and datastore specs: exit 2 with the one line naming it, before the root check or anything is opened (the unit\'s RestartPreventExitStatus=2)', async () => {
  const node = ['run', '--node', 'usage-x', '--control', path.join(tempDir(), 'c.sock')];
  const cases: [string[], Record<string, string>, RegExp][] = [
    [node, { LOG_LEVEL: 'loud' }, /^podway: \$LOG_LEVEL: unknown log level "loud"/],
    [node, { FELIX_PROMETHEUSMETRICSENABLED: 'yes1' }, /^podway: \$FELIX_PROMETHEUSMETRICSENABLED: "yes1" is not a boolean/],
    [node, { FELIX_PROMETHEUSMETRICSENABLED: 'true', FELIX_PROMETHEUSMETRICSPORT: '99999' }, /^podway: \$FELIX_PROMETHEUSMETRICSPORT: "99999" is not a port/],
    [node, { FELIX_VXLANPORT: '0' }, /^podway: \$FELIX_VXLANPORT: "0" is not an integer 1\.\.65535/],
    [node, { FELIX_VXLANVNI: '16777216' }, /^podway: \$FELIX_VXLANVNI: "16777216" is not an integer/],
    [node, { FELIX_VXLANMTU: '67' }, /^podway: \$FELIX_VXLANMTU: "67" /],
    [['run', '--control', path.join(tempDir(), 'c.sock')], { NODENAME: 'Rvfn2' }, /^podway: invalid \$NODENAME "Rvfn2": a Kubernetes node name is a DNS-1123 subdomain/],
    [['run', '--node', 'bad/name'], {}, /^podway: invalid --node "bad\/name"/],
    [node, { DATASTORE_TYPE: 'kubernetes' }, /^podway: DATASTORE_TYPE=kubernetes: podway supports etcdv3/],
    [node, { DATASTORE_TYPE: 'etcdv3' }, /^podway: DATASTORE_TYPE=etcdv3 needs ETCD_ENDPOINTS/],
    [[...node, '--datastore', 'etdc:x'], {}, /^podway: datastore 'etdc:x': unknown kind 'etdc'/],
    [node, { PODWAY_DATASTORE: 'etdc:x' }, /^podway: datastore 'etdc:x': unknown kind 'etdc'/],
  ];
  for (const [args, env, message] of cases) {
    const r = await podway(args, env);
    const what = `${Object.entries(env).map(([k, v]) => `${k}=${v} `).join('')}podway ${args.join(' ')}`;
    assert.is(r.code, 2, `${what}: ${r.err}`);
    assert.is(r.err.trim().split('\n').length, 1, `${what}: ${r.err}`);
    assert.match(r.err, message, what);
  }
});

test('a datastore spec that does not parse, in every datastore command: exit 2, one line naming it, nothing opened or written', async () => {
  const dir = tempDir();
  const file = path.join(dir, 'pool.yaml');
  writeFileSync(file, 'apiVersion: projectcalico.org/v3\nkind: IPPool\nmetadata: {name: p}\nspec: {cidr: 10.251.0.0/16}\n');
  const commands: string[][] = [
    ['get', 'ippool'], ['apply', '-f', file], ['create', '-f', file], ['replace', '-f', file], ['delete', 'ippool', 'p'], ['delete', '-f', file],
    ['ipam', 'show'], ['ipam', 'check'], ['ipam', 'release', '--ip', '10.251.0.1'], ['ipam', 'assign', '--node', 'n1'],
    ['ipam', 'configure', '--strictaffinity', 'true'],
    ['cni', 'install', '--bin-dir', path.join(dir, 'bin'), '--conf-dir', path.join(dir, 'conf'), '--node', 'n1'],
  ];
  // the review's cases: an etcd address without its port (one without its scheme is http://, as etcd's Go client), a word that is no kind; and Calico's variables
  const specs: [string[], Record<string, string>, RegExp][] = [
    [['--datastore', 'etcd:http://10.0.0.5'], {}, /^podway: datastore 'etcd:http:\/\/10\.0\.0\.5': .*needs a host and a port/],
    [['--datastore', 'bogus'], {}, /^podway: datastore 'bogus': unknown kind 'bogus'/],
    [[], { PODWAY_DATASTORE: 'etdc:x' }, /^podway: datastore 'etdc:x': unknown kind 'etdc'/],
    [[], { DATASTORE_TYPE: 'kubernetes' }, /^podway: DATASTORE_TYPE=kubernetes: podway supports etcdv3/],
  ];
  // every command with one bad spec; each kind of bad spec with two commands (each spawn is a Node start)
  const runs: [string[], [string[], Record<string, string>, RegExp]][] = [
    ...commands.map((args) => [args, specs[1]!] as [string[], [string[], Record<string, string>, RegExp]]),
    ...[specs[0]!, specs[2]!, specs[3]!].flatMap((spec) => [[['get', 'ippool'], spec], [commands[6]!, spec]] as [string[], [string[], Record<string, string>, RegExp]][]),
  ];
  for (const [args, [flags, env, message]] of runs) {
    {
      const r = await podway([...args, ...flags], env);
      const what = `${Object.entries(env).map(([k, v]) => `${k}=${v} `).join('')}podway ${[...args, ...flags].join(' ')}`;
      assert.is(r.code, 2, `${what}: ${r.err}`);
      assert.is(r.err.trim().split('\n').length, 1, `${what}: ${r.err}`);
      assert.match(r.err, message, what);
      assert.is(r.out, '', what);
    }
  }
  assert.not.ok(existsSync(path.join(dir, 'bin')) || existsSync(path.join(dir, 'conf')), 'cni install wrote nothing');
});

test('a missing or conflicting operand of the datastore commands: exit 2, told before the datastore is opened', async () => {
  const cases: [string[], RegExp][] = [
    [['delete', 'ippool'], new RegExp(`^podway: delete: give -f FILE, or KIND NAME \\(e\\.g\\. ${CMD_RE} delete ippool my-pool\\)$`)],
    [['delete'], /^podway: delete: give -f FILE, or KIND NAME/],
    [['delete', 'ippool', 'p', '-f', 'x.yaml'], /^podway: delete: give -f FILE or KIND NAME, not both$/],
    [['delete', 'bogus', 'p'], /^podway: unknown resource type "bogus"; podway knows /],
    [['get', 'bogus'], /^podway: unknown resource type "bogus"; podway knows /],
    // a near miss: the alias meant; the aliases listed with their kinds
    [['get', 'ipool'], /^podway: unknown resource type "ipool" \(did you mean ippool\?\); podway knows ippool \(ipp, pool\), node \(no\), workloadendpoint \(wep\), .*bgppeer \(bgpp, bp\), .*; each in the plural too/],
    [['get', 'wpe'], /^podway: unknown resource type "wpe" \(did you mean wep\?\)/],
    [['get', 'wep', '-n', 'x', '-A'], /^podway: get: give -n NAMESPACE or -A, not both$/],
    [['ipam', 'show', '--ip', 'bogus'], /^podway: ipam show: --ip: invalid IP address "bogus"$/],
    [['ipam', 'check', '--grace-period', '15'], /^podway: --grace-period: invalid duration "15"/],
    [['ipam', 'assign', '--node', 'n1', '--ip', '10.251.0.1', '--count', '2'], /^podway: ipam assign: give --count K or --ip IP, not both$/],
    [['ipam', 'assign', '--node', 'n1', '--count', '0'], /^podway: ipam assign: --count must be 1\.\.65536, got "0"$/],
    [['ipam', 'configure'], /^podway: at least one configuration option must be specified$/],
    // the file without -f: named, with the command that works (was commander's "required option
    // '-f, --filename <file>' not specified")
    [['apply', 'pool.yaml'], new RegExp(`^podway: apply: the file is given with -f: \`${CMD_RE} apply -f pool\\.yaml\`$`)],
    [['create'], new RegExp(`^podway: create: give the file of resources with -f FILE \\(e\\.g\\. ${CMD_RE} create -f pool\\.yaml\\)$`)],
    [['replace', '-f', 'a.yaml', 'b.yaml'], /^podway: replace: unexpected argument "b\.yaml": replace reads one -f FILE \(several files: a directory of them\)$/],
    [['ipam', 'configure', '--strictaffinity', 'maybe'], /^podway: invalid value\. Use true or false to set strictaffinity$/],
  ];
  for (const [args, message] of cases) {
    // a store that does not exist: a usage error is told before it would be refused as missing (1)
    const r = await podway([...args, ...store()]);
    assert.is(r.code, 2, `podway ${args.join(' ')}: ${r.err}`);
    assert.is(r.err.trim().split('\n').length, 1, `podway ${args.join(' ')}: ${r.err}`);
    assert.match(r.err.trim(), message, `podway ${args.join(' ')}`);
  }
});

test('commander\'s refusals in every command: one line "podway: ..." and where the help is, not the whole help; exit 2', async () => {
  const cases: [string[], string][] = [
    [['run', '--wokers', '2'], `podway: unknown option '--wokers' (Did you mean --workers?); see \`${CMD} run --help\``],
    [['capture', '--stage', 'bogus', '-w', '-'], `podway: option '--stage <stage>' argument 'bogus' is invalid. Allowed choices are rx, decap, route, tx, drop; see \`${CMD} capture --help\``],
    [['ipam', 'show', '--show-blockz'], `podway: unknown option '--show-blockz' (Did you mean --show-blocks?); see \`${CMD} ipam show --help\``],
    [['cni', 'install', '--bogus'], `podway: unknown option '--bogus'; see \`${CMD} cni install --help\``],
    [['get'], `podway: missing required argument 'kind'; see \`${CMD} get --help\``],
    [['stauts'], `podway: unknown command 'stauts' (Did you mean status?); see \`${CMD} --help\``],
  ];
  for (const [args, line] of cases) {
    const r = await podway(args);
    assert.is(r.code, 2, `podway ${args.join(' ')}: ${r.err}`);
    assert.is(r.err, `${line}\n`, `podway ${args.join(' ')}`);
    assert.is(r.out, '');
  }
});

test('a command that needs a subcommand given none: its help on stderr, exit 2; asked-for help exits 0', async () => {
  for (const args of [[], ['node'], ['ipam'], ['cni']]) {
    const r = await podway(args);
    assert.is(r.code, 2, `podway ${args.join(' ')}: ${r.err}`);
    assert.match(r.err, new RegExp(`^Usage: podway${args.map((a) => ` ${a}`).join('')} \\[options\\] \\[command\\]`));
    assert.is(r.out, '');
  }
  for (const args of [['--help'], ['node', '--help'], ['help', 'ipam']]) {
    const r = await podway(args);
    assert.is(r.code, 0, `podway ${args.join(' ')}: ${r.err}`);
    assert.match(r.out, /^Usage: podway/);
  }
});

test('run --help names each default once (commander adds its own "(default: ...)")', async () => {
  const r = await podway(['run', '--help']);
  assert.is(r.code, 0, r.err);
  const twice = r.out.split(/\n(?=  -)/).filter((opt) => (opt.match(/\(default: /g) ?? []).length > 1);
  assert.equal(twice, []);
  assert.match(r.out, /--workers <n\|auto>[^]*?\(default: "1"\)/);
});

test('--node of every command that asks a running podway: one wording, with the default and the only socket in /run/podway', async () => {
  for (const args of [['status'], ['routes'], ['endpoints'], ['counters'], ['trace'], ['capture'], ['top'], ['log-level'], ['node', 'status']]) {
    const r = await podway([...args, '--help']);
    assert.is(r.code, 0, r.err);
    const help = r.out.replace(/\s+/g, ' ');
    assert.ok(help.includes('--node <name> node whose podway to ask (default $NODENAME, else the only podway running here: the one socket in /run/podway)'), `podway ${args.join(' ')} --help: ${help}`);
  }
});

test('run --help states the neighbour queue\'s limits from the constants the queue uses (it said 128 KiB per neighbour)', async () => {
  const r = await podway(['run', '--help']);
  assert.is(r.code, 0, r.err);
  const help = r.out.replace(/\s+/g, ' ');
  assert.ok(help.includes(`default ${NEIGHBOR_QUEUE_PER_NEIGHBOR}, a TCP super-frame counting as one, within ${NEIGHBOR_QUEUE_BYTES.toLocaleString('en-US')} bytes per neighbour`), help);
  assert.ok(help.includes(`and ${NEIGHBOR_QUEUE_TOTAL} frames per forwarding thread`), help);
  assert.not.ok(help.includes('KiB per neighbour'), help);
});

test('a user who cannot write the embedded store: the error says root or --datastore embedded:DIR', async () => {
  if (process.getuid?.() !== 0) throw new Error('needs root (to drop its file-permission capabilities)');
  // Root without CAP_DAC_OVERRIDE (setpriv, util-linux) meets the permission bits as a user does.
  // Not `nobody`: a fresh machine's checkout under /root is not readable to nobody, so the CLI
  // could not even load there (the CI run on 22d3ed0 failed so).
  const dir = tempDir();
  writeFileSync(path.join(dir, 'pool.yaml'), 'apiVersion: projectcalico.org/v3\nkind: IPPool\nmetadata: {name: p}\nspec: {cidr: 10.251.0.0/16}\n');
  chmodSync(dir, 0o555); // the store would be made under it: not writable without the override
  const store = path.join(dir, 'store');
  try {
    const r = await new Promise<{ code: number; err: string }>((resolve) => {
      execFile('setpriv', ['--bounding-set', '-dac_override,-dac_read_search,-fowner', '--', process.execPath, BIN, 'apply', '-f', path.join(dir, 'pool.yaml'), '--datastore', `embedded:${store}`], { env: { PATH: process.env.PATH ?? '' }, timeout: 30_000 }, (e, _out, err) => resolve({ code: e ? (typeof e.code === 'number' ? e.code : -1) : 0, err }));
    });
    assert.is(r.code, 1, r.err);
    assert.match(r.err, new RegExp(`EACCES: permission denied.*: the embedded datastore ${store} needs root, or give --datastore embedded:DIR \\(a directory you can write\\)`));
  } finally {
    chmodSync(dir, 0o755); // so the temporary directory's cleanup can remove it
  }
});

test.run();
