// `podway run` on an embedded store with a node address it cannot use: refused before the Node is
// registered (every other node reads its address from there), in a scratch network namespace; and
// systemd's notify protocol (READY=1, STATUS=, WATCHDOG=1, STOPPING=1) on a real AF_UNIX socket,
// and contrib/systemd's unit and settings file against docs/running.md, "Running as a service".
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { execFileSync, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { BIN, ROOT, ok, podway, tempDir } from './cli-kit';
import { execBounded } from '../e2e/tools';
import { controlRequest } from '../../src/dataplane/control-client';
import { commandOf } from '../../src/util/invocation';
import { within, START_WAIT_MIN_MS } from '../../src/lab/lab';
import { addNetns } from '../helpers/netns';
import { exitedAndRead } from '../helpers/proc';

/** podway as this file runs it (its hints name it so: util/invocation.ts), `node bin/podway.js` from the checkout. */
const CMD = commandOf([process.execPath, BIN], {}, process.cwd());

const t = suite('run start checks');
// How long a `podway run` may take to exit once signalled: contrib/systemd's TimeoutStopSec (30 s),
// what systemd gives it before SIGKILL. Its own bounds add up to more than the 10 s these waits
// had (an nft run still under way waited for up to 5 s, then nft for each table, the model
// thread 2 s): stops took 0.5-2.1 s at load 12-22, but one took over 10 s at load ~15 in CI.
const STOP_WAIT_MS = 30_000;
const NS = `pw-nu-${randomBytes(3).toString('hex')}`;
let store = '';
/** Deletes NS (registered at exit and on the runner's SIGTERM too: helpers/netns.ts addNetns). */
let dropNs = (): void => undefined;

t.before(() => {
  if (process.getuid?.() !== 0) throw new Error('run start checks need root (a network namespace)');
  dropNs = addNetns(NS);
  // One interface holding 10.1.1.3/24; 10.1.1.9 is held by none.
  for (const args of [['link', 'set', 'lo', 'up'], ['link', 'add', 'd0', 'type', 'veth', 'peer', 'name', 'd1'], ['addr', 'add', '10.1.1.3/24', 'dev', 'd0'], ['link', 'set', 'd0', 'up']]) {
    execFileSync('ip', ['-n', NS, ...args]);
  }
});

t.after(() => {
  dropNs();
});

t.before.each(async () => {
  store = `embedded:${tempDir()}`;
  const pool = path.join(tempDir(), 'pool.yaml');
  writeFileSync(pool, 'apiVersion: projectcalico.org/v3\nkind: IPPool\nmetadata: {name: p}\nspec: {cidr: 10.244.0.0/16, vxlanMode: Always}\n');
  await ok(['apply', '-f', pool, '--datastore', store]);
});

async function run(args: string[], env: string[] = []): Promise<{ code: number | null; stderr: string }> {
  const r = await execBounded('ip', ['netns', 'exec', NS, ...(env.length ? ['env', ...env] : []), process.execPath, BIN, 'run', '--node', 'nx', '--datastore', store,
    '--control', path.join(tempDir(), 'c.sock'), ...args], START_WAIT_MIN_MS); // a start up to its refusal, bounded as Lab.startPodway's
  assert.not.ok(r.timedOut, `podway run ${args.join(' ')} did not exit: ${r.stderr}`);
  return { code: r.code, stderr: r.stderr };
}

async function registeredNodes(): Promise<string> {
  return ok(['get', 'node', '--datastore', store]);
}

t('no NAT ports left by the host\'s ephemeral range: exit 1 (a host setting, not a usage error); exit 2 only for a given --nat-port-range', async () => {
  // net.ipv4.ip_local_port_range is per network namespace: only the scratch one's is changed.
  const sysctl = (...a: string[]) => execFileSync('ip', ['netns', 'exec', NS, 'sysctl', ...a], { encoding: 'utf8' }).trim();
  const before = sysctl('-n', 'net.ipv4.ip_local_port_range').split(/\s+/).join(' ');
  sysctl('-qw', 'net.ipv4.ip_local_port_range=1024 65535');
  try {
    let r = await run(['--ip', '10.1.1.3/24']);
    assert.is(r.code, 1, r.stderr);
    assert.match(r.stderr, "no ports for natOutgoing outside the kernel's ephemeral range 1024-65535 (net.ipv4.ip_local_port_range): give --nat-port-range LOW-HIGH");
    r = await run(['--ip', '10.1.1.3/24', '--nat-port-range', '2000-3000']);
    assert.is(r.code, 2, r.stderr);
    assert.match(r.stderr, "--nat-port-range: 2000-3000 overlaps the kernel's ephemeral ports 1024-65535");
    assert.not.match(await registeredNodes(), /\bnx\b/);
  } finally {
    sysctl('-qw', `net.ipv4.ip_local_port_range=${before}`);
  }
});

/** `podway cleanup` after a failed start: it takes the run lock (refused while one is held) and
 * finds no nftables table of podway's, no forwarding record, no control socket. */
async function nothingLeft(sock: string): Promise<void> {
  const c = await execBounded('ip', ['netns', 'exec', NS, process.execPath, BIN, 'cleanup', '--node', 'nx', '--control', sock], 60_000);
  assert.is(c.code, 0, c.stderr);
  assert.is(c.stdout, 'nothing of podway\'s was left here\n');
  assert.not.ok(existsSync(sock));
  // nor the host port, nor a route of podway's (the pool's, towards it)
  assert.not.match(execFileSync('ip', ['-n', NS, 'link', 'show'], { encoding: 'utf8' }), 'podway0');
  assert.not.match(execFileSync('ip', ['-n', NS, 'route', 'show', 'table', 'all'], { encoding: 'utf8' }), '10.244.');
}

t('--nat-port-range holding the VXLAN port: checked against vxlanPort, not 4789: $FELIX_VXLANPORT\'s before anything is touched, a FelixConfiguration\'s once the datastore was read; refused then with exit 2 (podway hung there), the start undone; a vxlanPort in the default NAT range: exit 1, the same', async () => {
  const sock = path.join(tempDir(), 'c.sock');
  // $FELIX_VXLANPORT: known at once (no FelixConfiguration overrides it), refused before the Node is registered
  let r = await run(['--ip', '10.1.1.3/24', '--control', sock, '--nat-port-range', '4000-5000'], ['FELIX_VXLANPORT=4500']);
  assert.is(r.code, 2, r.stderr);
  assert.match(r.stderr, '--nat-port-range: 4000-5000 holds the VXLAN port 4500 (vxlanPort from $FELIX_VXLANPORT)');
  assert.not.match(r.stderr, '4789');
  assert.not.match(await registeredNodes(), /\bnx\b/);
  // the vxlanPort in force is known once the datastore was read (after the registration, as
  // calico-node's): the refusal comes then, what the start made undone, and podway exits
  r = await run(['--ip', '10.1.1.3/24', '--control', sock, '--nat-port-range', '4000-5000']);
  assert.is(r.code, 2, r.stderr);
  assert.match(r.stderr, '\npodway: --nat-port-range: 4000-5000 holds the VXLAN port 4789 (vxlanPort from built-in default)\n');
  assert.match(r.stderr, /"level":"error".*"start failed: --nat-port-range: 4000-5000 holds the VXLAN port 4789 \(vxlanPort from built-in default\); undoing what the start made \([^)]*the model thread/);
  assert.not.match(r.stderr, 'did not end within');
  await nothingLeft(sock);
  const felix = path.join(tempDir(), 'felix.yaml');
  writeFileSync(felix, 'apiVersion: projectcalico.org/v3\nkind: FelixConfiguration\nmetadata: {name: default}\nspec: {vxlanPort: 4600}\n');
  await ok(['apply', '-f', felix, '--datastore', store]);
  r = await run(['--ip', '10.1.1.3/24', '--control', sock, '--nat-port-range', '4000-5000']);
  assert.is(r.code, 2, r.stderr);
  assert.match(r.stderr, '\npodway: --nat-port-range: 4000-5000 holds the VXLAN port 4600 (vxlanPort from FelixConfiguration default)\n');
  assert.not.match(r.stderr, '4789');
  await nothingLeft(sock);
  // not a usage error: no --nat-port-range, and the default range (above the ephemeral ports) holds vxlanPort
  const sysctl = (...a: string[]) => execFileSync('ip', ['netns', 'exec', NS, 'sysctl', ...a], { encoding: 'utf8' }).trim();
  const before = sysctl('-n', 'net.ipv4.ip_local_port_range').split(/\s+/).join(' ');
  sysctl('-qw', 'net.ipv4.ip_local_port_range=32768 60999');
  try {
    writeFileSync(felix, 'apiVersion: projectcalico.org/v3\nkind: FelixConfiguration\nmetadata: {name: default}\nspec: {vxlanPort: 62000}\n');
    await ok(['apply', '-f', felix, '--datastore', store]);
    r = await run(['--ip', '10.1.1.3/24', '--control', sock]);
    assert.is(r.code, 1, r.stderr);
    assert.match(r.stderr, "\npodway: vxlanPort 62000 is inside natOutgoing's port range 61000-65535: give --nat-port-range LOW-HIGH without it\n");
    await nothingLeft(sock);
  } finally {
    sysctl('-qw', `net.ipv4.ip_local_port_range=${before}`);
  }
});

t('--nat-port-range holding 4789 but not vxlanPort ($FELIX_VXLANPORT 4500): podway starts (it was refused for 4789)', async () => {
  const sock = path.join(tempDir(), 'c.sock');
  const r = spawnRun(['--ip', '10.1.1.3/24', '--datastore', store, '--control', sock, '--nat-port-range', '4700-4800'], { FELIX_VXLANPORT: '4500' });
  try {
    assert.ok(await r.waitFor(/"forwarding: node 10\.1\.1\.3/, START_WAIT_MIN_MS), r.err());
    assert.match(r.err(), /"nat: table ip podway created; no pool has natOutgoing, ports 4700-4800"/);
    r.child.kill('SIGTERM');
    assert.is(await within(r.exited, STOP_WAIT_MS, 'timeout' as const), 0, r.err());
  } finally {
    if (r.child.exitCode === null && r.child.signalCode === null) r.child.kill('SIGKILL');
    execFileSync('ip', ['netns', 'exec', NS, 'nft', 'flush', 'ruleset']);
  }
});

t('nft refusing the NAT table once the datastore was read (another program owns table ip podway; a pool has natOutgoing): exit 1, the engine, the pod guard and tunnel tables, the host port and its routes undone, the underlay\'s forwarding set back', async () => {
  const sock = path.join(tempDir(), 'c.sock');
  const pool = path.join(tempDir(), 'pool-nat.yaml');
  writeFileSync(pool, 'apiVersion: projectcalico.org/v3\nkind: IPPool\nmetadata: {name: p}\nspec: {cidr: 10.244.0.0/16, vxlanMode: Always, natOutgoing: true}\n');
  await ok(['apply', '-f', pool, '--datastore', store]);
  const tables = () => execFileSync('ip', ['netns', 'exec', NS, 'nft', 'list', 'tables'], { encoding: 'utf8' }).trim().split('\n').filter(Boolean).sort();
  const forwarding = () => execFileSync('ip', ['netns', 'exec', NS, 'sysctl', '-n', 'net.ipv4.conf.d0.forwarding'], { encoding: 'utf8' }).trim();
  execFileSync('ip', ['netns', 'exec', NS, 'sysctl', '-qw', 'net.ipv4.conf.d0.forwarding=1']);
  // An nft session holding table ip podway with the owner flag: the kernel refuses every other
  // process's change to it (EPERM) until that session ends, which takes the table with it.
  const holder = spawn('ip', ['netns', 'exec', NS, 'nft', '-i'], { stdio: ['pipe', 'ignore', 'ignore'] });
  const holderGone = new Promise((res) => holder.once('exit', res));
  try {
    holder.stdin!.write('add table ip podway { flags owner; }\n');
    for (let i = 0; i < 100 && !tables().includes('table ip podway'); i++) await new Promise((res) => setTimeout(res, 100));
    assert.equal(tables(), ['table ip podway']);
    const r = await run(['--ip', '10.1.1.3/24', '--control', sock]);
    assert.is(r.code, 1, r.stderr);
    assert.match(r.stderr, /\npodway: nft \(create table\): .*Operation not permitted/);
    assert.match(r.stderr, /"pod guard: table inet podway created/, 'the start had gone that far');
    assert.match(r.stderr, /"level":"error".*"start failed: nft \(create table\).*undoing what the start made \([^)]*the engine, its workers and the nftables tables/);
    assert.equal(tables(), ['table ip podway'], 'only the other program\'s table left');
    assert.is(forwarding(), '1');
  } finally {
    holder.kill('SIGKILL');
    await within(holderGone, 5000, null);
  }
  await nothingLeft(sock);
});

t('--ip held by no interface here: refused naming it, no Node registered', async () => {
  const r = await run(['--ip', '10.1.1.9/24']);
  assert.is(r.code, 1, r.stderr);
  assert.match(r.stderr, '--ip (or IP) 10.1.1.9/24: no interface holds the node IP 10.1.1.9');
  assert.not.match(await registeredNodes(), /\bnx\b/);
});

t('--ip without a prefix length, a malformed --ip6, a bad --underlay-ring-mb: refused before registering, as usage errors (exit 2)', async () => {
  let r = await run(['--ip', '10.1.1.3']);
  assert.is(r.code, 2, r.stderr);
  assert.match(r.stderr, '--ip (or IP) "10.1.1.3": expected the node\'s IPv4 address with its prefix length');
  r = await run(['--ip', '10.1.1.3/24', '--ip6', 'zz']);
  assert.is(r.code, 2, r.stderr);
  assert.match(r.stderr, '--ip6 (or IP6) "zz": expected an IPv6 address with its prefix length');
  r = await run(['--ip', '10.1.1.3/24', '--underlay-ring-mb', 'abc']);
  assert.is(r.code, 2, r.stderr);
  assert.match(r.stderr, '--underlay-ring-mb must be 1..1024');
  r = await run(['--ip', '10.1.1.3/24', '--nat-port-range', '5-1']);
  assert.is(r.code, 2, r.stderr);
  assert.match(r.stderr, '--nat-port-range: "5-1": LOW 5 is below 1024');
  r = await run(['--ip', '10.1.1.3/24', '--nat-port-range', '1000-2000']);
  assert.is(r.code, 2, r.stderr);
  assert.match(r.stderr, '--nat-port-range: "1000-2000": LOW 1000 is below 1024');
  r = await run(['--autodetect-poll-interval', 'often']);
  assert.is(r.code, 2, r.stderr);
  assert.match(r.stderr, 'run: --autodetect-poll-interval "often": expected a duration like 60s, 1m30s or 500ms (0 turns re-detection off)');
  r = await run(['--autodetect-poll-interval', '10ms']);
  assert.is(r.code, 2, r.stderr);
  assert.match(r.stderr, '--autodetect-poll-interval must be 0 (off) or 100ms..24h');
  assert.not.match(await registeredNodes(), /\bnx\b/);
});

t('an unknown CALICO_NETWORKING_BACKEND is refused (a typo of bird ran the node without BGP)', async () => {
  const r = await podway(['run', '--node', 'nx', '--datastore', store, '--control', path.join(tempDir(), 'c.sock')], { CALICO_NETWORKING_BACKEND: 'birdd' });
  assert.is(r.code, 2, r.err);
  assert.match(r.err, 'run: CALICO_NETWORKING_BACKEND must be bird, vxlan or none, got "birdd"');
  assert.not.match(await registeredNodes(), /\bnx\b/);
});

t('a bad CALICO_ROUTER_ID or --router-id is refused naming the setting (hash or a.b.c.d, as calico-node)', async () => {
  const sock = path.join(tempDir(), 'c.sock');
  const env = await podway(['run', '--node', 'nx', '--datastore', store, '--control', sock], { CALICO_ROUTER_ID: '10.0.0' });
  assert.is(env.code, 2, env.err);
  assert.match(env.err, 'run: CALICO_ROUTER_ID must be "hash" or a router ID in IPv4 form (a non-zero a.b.c.d), got "10.0.0"');
  const flag = await podway(['run', '--node', 'nx', '--datastore', store, '--control', sock, '--router-id', '0.0.0.0']);
  assert.is(flag.code, 2, flag.err);
  assert.match(flag.err, 'run: --router-id must be "hash"');
  assert.not.match(await registeredNodes(), /\bnx\b/);
});

t('file: datastore: --ip or --ip6 other than the file\'s Node address is refused naming the flag (it was ignored without a word)', async () => {
  const file = path.join(tempDir(), 'cluster.yaml');
  writeFileSync(file, [
    'apiVersion: projectcalico.org/v3\nkind: IPPool\nmetadata: {name: p}\nspec: {cidr: 10.244.0.0/16, blockSize: 26, vxlanMode: Always}',
    'apiVersion: projectcalico.org/v3\nkind: Node\nmetadata: {name: nx}\nspec: {bgp: {ipv4Address: 10.1.1.3/24}, ipv4VXLANTunnelAddr: 10.244.0.0}',
  ].join('\n---\n') + '\n');
  // 10.1.1.9 is held by no interface here, 10.1.1.3/16 is the right address with another subnet.
  for (const ip of ['10.1.1.9/24', '10.1.1.3/16']) {
    const r = await run(['--datastore', `file:${file}`, '--ip', ip]);
    assert.is(r.code, 1, r.stderr);
    assert.match(r.stderr, `--ip (or IP) ${ip} is not node nx's spec.bgp.ipv4Address 10.1.1.3/24: a file: datastore is read-only and this node's address is its Node's in ${file}`);
  }
  const r = await run(['--datastore', `file:${file}`, '--ip6', 'fd00:5::3/64']);
  assert.is(r.code, 1, r.stderr);
  assert.match(r.stderr, `--ip6 (or IP6) fd00:5::3/64 is not node nx's spec.bgp.ipv6Address (none)`);
});

t('Ctrl-C while waiting for an unreachable etcd: said in the log, exit 130 (it ended without a word)', async () => {
  const child = spawn('ip', ['netns', 'exec', NS, process.execPath, BIN, 'run', '--node', 'nx', '--ip', '10.1.1.3/24',
    '--datastore', 'etcd:http://127.0.0.1:9', '--control', path.join(tempDir(), 'c.sock')], { stdio: ['ignore', 'ignore', 'pipe'] });
  let err = '';
  child.stderr!.on('data', (b: Buffer) => (err += b.toString()));
  const exited = exitedAndRead(child).then((x) => x.code); // its last log lines read too
  try {
    const end = Date.now() + START_WAIT_MIN_MS; // a podway start, bounded as Lab.startPodway's
    while (!/unreachable/.test(err) && Date.now() < end) await new Promise((r) => setTimeout(r, 100));
    assert.match(err, /etcd http:\/\/127\.0\.0\.1:9 unreachable/);
    child.kill('SIGINT');
    const code = await within(exited, STOP_WAIT_MS, 'timeout' as const);
    assert.is(code, 130, err);
    assert.match(err, /"level":"warn".*SIGINT while starting: stopping/);
  } finally {
    if (child.exitCode === null) child.kill('SIGKILL');
  }
});

/** `podway run` in the namespace, its stderr gathered; stopped by PID (SIGKILL) when the test ends. */
function spawnRun(args: string[], env: Record<string, string> = {}): { child: ReturnType<typeof spawn>; err: () => string; waitFor: (re: RegExp, ms: number) => Promise<boolean>; exited: Promise<number | null> } {
  const child = spawn('ip', ['netns', 'exec', NS, process.execPath, BIN, 'run', '--node', 'nx', ...args], { stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, ...env } });
  let err = '';
  child.stderr!.on('data', (b: Buffer) => (err += b.toString()));
  const exited = exitedAndRead(child).then((x) => x.code); // its last log lines read too
  const waitFor = async (re: RegExp, ms: number) => {
    const end = Date.now() + ms;
    while (!re.test(err) && child.exitCode === null && Date.now() < end) await new Promise((r) => setTimeout(r, 100));
    return re.test(err);
  };
  return { child, err: () => err, waitFor, exited };
}

t('a node name new to the store on another Node\'s address: refused naming that Node, exit 1, nothing registered (calico-node refuses too)', async () => {
  const other = path.join(tempDir(), 'other.yaml');
  writeFileSync(other, 'apiVersion: projectcalico.org/v3\nkind: Node\nmetadata: {name: other}\nspec: {bgp: {ipv4Address: 10.1.1.3/24}}\n');
  await ok(['apply', '-f', other, '--datastore', store]);
  // Given with --ip, and found by first-found alike.
  for (const args of [['--ip', '10.1.1.3/24'], []]) {
    const r = await run(args);
    assert.is(r.code, 1, r.stderr);
    assert.match(r.stderr, 'node nx: Node other is already using the IPv4 address 10.1.1.3');
    assert.match(r.stderr, `if other is gone, delete its Node first (${CMD} delete node other)`);
  }
  assert.not.match(await registeredNodes(), /\bnx\b/);
});

t('without --ip, a stored Node address no interface here holds gives way to first-found (said), and podway starts (it failed); a locked datastore is shown in status; the underlay\'s forwarding=1, 0 while podway runs, is 1 again after SIGTERM', async () => {
  const node = path.join(tempDir(), 'nx.yaml');
  // As a second process run as nx with --ip 10.1.1.9/24 elsewhere leaves it; and the datastore
  // locked as `calicoctl datastore migrate lock` leaves it.
  writeFileSync(node, 'apiVersion: projectcalico.org/v3\nkind: Node\nmetadata: {name: nx}\nspec: {bgp: {ipv4Address: 10.1.1.9/24}}\n---\n'
    + 'apiVersion: projectcalico.org/v3\nkind: ClusterInformation\nmetadata: {name: default}\nspec: {clusterGUID: 0123456789abcdef0123456789abcdef, datastoreReady: false}\n');
  await ok(['apply', '-f', node, '--datastore', store]);
  const sock = path.join(tempDir(), 'c.sock');
  // the underlay's IPv4 forwarding: 0 while podway runs, set back at its clean stop
  const forwarding = () => execFileSync('ip', ['netns', 'exec', NS, 'sysctl', '-n', 'net.ipv4.conf.d0.forwarding'], { encoding: 'utf8' }).trim();
  execFileSync('ip', ['netns', 'exec', NS, 'sysctl', '-qw', 'net.ipv4.conf.d0.forwarding=1']);
  const r = spawnRun(['--datastore', store, '--control', sock]);
  try {
    assert.ok(await r.waitFor(/"forwarding: node 10\.1\.1\.3/, START_WAIT_MIN_MS), r.err());
    assert.is(forwarding(), '0');
    assert.match(r.err(), 'net.ipv4.conf.d0.forwarding=0 (was 1)');
    assert.match(r.err(), /"level":"warn".*node nx: its Node's IPv4 address 10\.1\.1\.9\/24 is on no interface here: registering first-found 10\.1\.1\.3\/24 instead/);
    assert.match(r.err(), /"level":"warn".*its Node's IPv4 address changed from 10\.1\.1\.9\/24 to 10\.1\.1\.3\/24 \(first-found\)/);
    assert.match(await ok(['get', 'node', 'nx', '-o', 'json', '--datastore', store]), '"ipv4Address": "10.1.1.3/24"');
    // Uptime counts from the process start, the same answer as before it forwarded.
    const status = JSON.parse(await ok(['status', '--control', sock, '-o', 'json']));
    assert.is(status.node, 'nx');
    assert.ok(Number.isInteger(status.uptimeSeconds));
    assert.match(r.err(), /"level":"warn".*datastoreReady: false/);
    assert.match(status.datastoreLocked?.checkedAt ?? '', /^\d{4}-\d\d-\d\dT/, JSON.stringify(status.datastoreLocked));
    assert.match(await ok(['status', '--control', sock]), /^datastore locked: ClusterInformation default has datastoreReady: false \(read \S+; e\.g\. `calicoctl datastore migrate lock`\)/m);
    r.child.kill('SIGTERM');
    const code = await within(r.exited, STOP_WAIT_MS, 'timeout' as const);
    assert.is(code, 0, r.err());
    assert.is(forwarding(), '1', 'the underlay forwards again once podway stopped');
    // all of its stderr read (the exit can come before the last data)
    const stderr = r.child.stderr!;
    await within(stderr.closed ? Promise.resolve() : new Promise((res) => stderr.once('close', res)), 5000, null);
    assert.match(r.err(), /"level":"info".*set net\.ipv4\.conf\.d0\.forwarding=1 \(set back; podway had set 0\)/);
  } finally {
    if (r.child.exitCode === null) r.child.kill('SIGKILL');
  }
});

t('pod interfaces holding an address no endpoint of this datastore names: ipam check on the node counts them (exit 3) with what IPAM says of each address; a CNI conflist naming another datastore: warned at start and in status, naming the file and field', async () => {
  const dir = tempDir();
  const sock = path.join(dir, 'c.sock');
  // As a node moved from another datastore leaves them: two pod veths (Calico's host-side MAC)
  // each with the /32 route the earlier run made. 10.244.0.77 is then given by this store's IPAM
  // to a pod; 10.244.0.78 is free in it.
  const orphans = [['caliorph0', 'orphp0', '10.244.0.77'], ['caliorph1', 'orphp1', '10.244.0.78']] as const;
  const conf = path.join(dir, 'net.d');
  const other = `embedded:${path.join(dir, 'old-store')}`;
  const r0 = store.replace(/^embedded:/, '');
  execFileSync('mkdir', ['-p', conf]);
  // what `podway cni install --datastore <the old store>` wrote; another node's network (its
  // nodename) and a non-podway file are not this run's to judge
  writeFileSync(path.join(conf, '10-podway.conflist'), JSON.stringify({ cniVersion: '1.0.0', name: 'podway', plugins: [{ type: 'podway', datastore: other, nodename: 'nx', ipam: { type: 'podway' } }] }));
  writeFileSync(path.join(conf, '20-other-node.conflist'), JSON.stringify({ cniVersion: '1.0.0', name: 'ny-net', plugins: [{ type: 'podway', datastore: other, nodename: 'ny' }] }));
  writeFileSync(path.join(conf, '30-right.conflist'), JSON.stringify({ cniVersion: '1.0.0', name: 'right', plugins: [{ type: 'podway', datastore: `embedded:${r0}/`, nodename: 'nx' }] }));
  writeFileSync(path.join(conf, '87-bridge.conflist'), JSON.stringify({ cniVersion: '1.0.0', name: 'br', plugins: [{ type: 'bridge' }] }));
  await ok(['ipam', 'assign', '--node', 'nx', '--handle', 'podway.newpod', '--ip', '10.244.0.77', '--datastore', store]);
  let r: ReturnType<typeof spawnRun> | null = null;
  try {
    for (const [host, peer, ip] of orphans) {
      execFileSync('ip', ['-n', NS, 'link', 'add', host, 'address', 'ee:ee:ee:ee:ee:ee', 'type', 'veth', 'peer', 'name', peer]);
      execFileSync('ip', ['-n', NS, 'link', 'set', host, 'up']);
      execFileSync('ip', ['-n', NS, 'link', 'set', peer, 'up']);
      execFileSync('ip', ['-n', NS, 'route', 'add', `${ip}/32`, 'dev', host, 'scope', 'link']);
    }
    // Every `ip` podway runs goes through a wrapper that notes who started it (its parent's PID)
    // and its arguments, then is the real one: the orphan scan's (its `ip -j netns list-id`, 2 s
    // after forwarding) must be started by the spawner's helper, not by podway's forwarding
    // thread (a fork of podway, its rings mapped, held that thread 0.2-0.35 s a process).
    const bin = path.join(dir, 'bin');
    const ipLog = path.join(dir, 'ip-parents.log');
    execFileSync('mkdir', ['-p', bin]);
    const realIp = execFileSync('sh', ['-c', 'command -v ip'], { encoding: 'utf8' }).trim();
    writeFileSync(path.join(bin, 'ip'), `#!/bin/sh\necho "$PPID $*" >> '${ipLog}'\nexec '${realIp}' "$@"\n`, { mode: 0o755 });
    r = spawnRun(['--ip', '10.1.1.3/24', '--datastore', store, '--control', sock, '--cni-conf-dir', conf], { PATH: `${bin}:${process.env.PATH ?? ''}` });
    assert.ok(await r.waitFor(/"forwarding: node 10\.1\.1\.3/, START_WAIT_MIN_MS), r.err());
    const conflist = path.join(conf, '10-podway.conflist');
    const warned = r.err().split('\n').filter((l) => l.includes('CNI config '));
    assert.is(warned.length, 1, warned.join('\n'));
    assert.match(warned[0], /"level":"warn"/);
    assert.match(warned[0], `CNI config ${conflist}: network \\"podway\\" plugins[0].datastore names datastore ${other}, but this podway run uses ${store}: pods the runtime creates on that network get their addresses and endpoints there, where this run does not look`);
    const st = JSON.parse(await ok(['status', '--control', sock, '-o', 'json'])) as { cniConfMismatch: { file: string; field: string; datastore: string }[]; orphanPods: { ifname: string; address: string }[] };
    assert.equal(st.cniConfMismatch.map((c) => [c.file, c.field, c.datastore]), [[conflist, 'plugins[0].datastore', other]]);
    assert.match(await ok(['status', '--control', sock]), new RegExp(`^cni config: CNI config ${conflist.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}: network "podway" plugins\\[0\\]\\.datastore names datastore`, 'm'));
    assert.equal(st.orphanPods.map((o) => [o.ifname, o.address]).sort(), orphans.map(([h, , ip]) => [h, ip]));

    // podway run holds the free one at discovery (control/ipam/orphan-holds.ts: the conflist
    // 30-right names this store and node) so that no new pod is given it: waited for, bounded
    const holdOf = async (): Promise<string | null> => {
      const j = await podway(['ipam', 'check', '--datastore', store, '--control', sock, '--grace-period', '1h', '-o', 'json']);
      const pods = (JSON.parse(j.out) as { orphanPods: { pods: { ifname: string; allocation: { handle: string } | null }[] } }).orphanPods.pods;
      return pods.find((p) => p.ifname === 'caliorph1')?.allocation?.handle ?? null;
    };
    let held: string | null = null;
    for (let i = 0; i < 100 && held === null; i++) {
      held = await holdOf();
      if (held === null) await new Promise((res) => setTimeout(res, 200));
    }
    assert.is(held, 'podway-orphan.nx.caliorph1', 'podway run held the free orphan address');
    const scanIps = async () => {
      for (let i = 0; i < 100; i++) {
        const found = (existsSync(ipLog) ? readFileSync(ipLog, 'utf8') : '').split('\n').filter((l) => / -j netns list-id$/.test(l));
        if (found.length > 0) return found;
        await new Promise((res) => setTimeout(res, 200));
      }
      return [];
    };
    const scanned = await scanIps();
    assert.ok(scanned.length > 0, `the orphan scan ran its ip: ${existsSync(ipLog) ? readFileSync(ipLog, 'utf8') : 'no ip run'}`);
    for (const l of scanned) assert.is.not(Number(l.split(' ')[0]), r.child.pid, `the scan's ip was not forked by podway run itself (${r.child.pid}): ${l}`);
    // ipam check on the node: each counted, with its IPAM state here
    const check = await podway(['ipam', 'check', '--datastore', store, '--control', sock, '--grace-period', '1h']);
    assert.is(check.code, 3, check.out + check.err);
    assert.match(check.out, `Scanning this node's pod interfaces holding an address no workload endpoint of this datastore names (podway run on ${sock}, found at its start and while it runs)...`);
    assert.match(check.out, /interface caliorph0 holds pod address 10\.244\.0\.77 \(a route an earlier run made\) but no workload endpoint of this datastore names it: .*; IPAM here holds it for handle podway\.newpod, used by no endpoint/);
    assert.match(check.out, /interface caliorph1 holds pod address 10\.244\.0\.78 .*; IPAM here holds it for handle podway-orphan\.nx\.caliorph1, which podway on the node took so no new pod is given it/);
    assert.match(check.out, 'Found 2 pod interfaces holding an address no workload endpoint of this datastore names.');
    assert.match(check.out, 'Check complete; found 2 problems.');
    const json = await podway(['ipam', 'check', '--datastore', store, '--control', sock, '--grace-period', '1h', '-o', 'json']);
    assert.is(json.code, 3);
    const report = JSON.parse(json.out) as { problemCount: number; orphanPods: { checkedOn: string; notChecked: string | null; pods: { ifname: string; address: string; allocation: { handle: string } | null }[] } };
    assert.is(report.problemCount, 2);
    assert.is(report.orphanPods.checkedOn, sock);
    assert.equal(report.orphanPods.pods.map((p) => [p.ifname, p.address, p.allocation?.handle ?? null]).sort(), [['caliorph0', '10.244.0.77', 'podway.newpod'], ['caliorph1', '10.244.0.78', 'podway-orphan.nx.caliorph1']]);
    // another datastore than the run's: not checked, not counted
    const elsewhere = await podway(['ipam', 'check', '--datastore', `embedded:${tempDir()}`, '--control', sock]);
    assert.match(elsewhere.out, 'Found ? orphan pod interfaces (not checked).');
    // the pod removed (its veth gone): neither status nor check names it any more
    execFileSync('ip', ['-n', NS, 'link', 'del', 'caliorph1']);
    const after = await podway(['ipam', 'check', '--datastore', store, '--control', sock, '--grace-period', '1h']);
    assert.match(after.out, 'Found 1 pod interfaces holding an address no workload endpoint of this datastore names.');
    // the conflist put right: status no longer names it
    writeFileSync(conflist, JSON.stringify({ cniVersion: '1.0.0', name: 'podway', plugins: [{ type: 'podway', datastore: store, nodename: 'nx' }] }));
    assert.equal((JSON.parse(await ok(['status', '--control', sock, '-o', 'json'])) as { cniConfMismatch: unknown[] }).cniConfMismatch, []);
    r.child.kill('SIGTERM');
    assert.is(await within(r.exited, STOP_WAIT_MS, 'timeout' as const), 0, r.err());
  } finally {
    if (r && r.child.exitCode === null && r.child.signalCode === null) r.child.kill('SIGKILL');
    for (const [host] of orphans) {
      try {
        execFileSync('ip', ['-n', NS, 'link', 'del', host], { stdio: 'ignore' });
      } catch { /* deleted by the test */ }
    }
  }
});

t('the underlay\'s forwarding=1 survives a crash: after SIGKILL it stays 0 with podway\'s record of the 1 beside the control socket; the next run takes the 1 from it (said) and sets it back at SIGTERM, the record removed', async () => {
  const dir = tempDir();
  const sock = path.join(dir, 'c.sock');
  const record = path.join(dir, 'nx.d0.forwarding');
  const forwarding = () => execFileSync('ip', ['netns', 'exec', NS, 'sysctl', '-n', 'net.ipv4.conf.d0.forwarding'], { encoding: 'utf8' }).trim();
  execFileSync('ip', ['netns', 'exec', NS, 'sysctl', '-qw', 'net.ipv4.conf.d0.forwarding=1']);
  const first = spawnRun(['--datastore', store, '--control', sock, '--ip', '10.1.1.3/24']);
  let second: ReturnType<typeof spawnRun> | null = null;
  try {
    assert.ok(await first.waitFor(/"forwarding: node 10\.1\.1\.3/, START_WAIT_MIN_MS), first.err());
    assert.is(forwarding(), '0');
    assert.is(readFileSync(record, 'utf8'), '1\n', 'the value podway replaced, on disk while it runs');
    first.child.kill('SIGKILL');
    assert.is(await within(first.exited, STOP_WAIT_MS, 'timeout' as const), null, first.err());
    assert.is(forwarding(), '0', 'a crash leaves 0');
    assert.ok(existsSync(record), 'and the record');
    second = spawnRun(['--datastore', store, '--control', sock, '--ip', '10.1.1.3/24']);
    assert.ok(await second.waitFor(/"forwarding: node 10\.1\.1\.3/, START_WAIT_MIN_MS), second.err());
    assert.match(second.err(), `set net.ipv4.conf.d0.forwarding=0 (already: a podway run that did not stop cleanly set it; it was 1 before, as ${record} says, and is set back at stop)`);
    assert.is(forwarding(), '0');
    second.child.kill('SIGTERM');
    assert.is(await within(second.exited, STOP_WAIT_MS, 'timeout' as const), 0, second.err());
    assert.is(forwarding(), '1', 'the value from before the crash, set back at the clean stop');
    assert.not.ok(existsSync(record), 'the record removed once set back');
  } finally {
    if (first.child.exitCode === null && first.child.signalCode === null) first.child.kill('SIGKILL');
    if (second && second.child.exitCode === null && second.child.signalCode === null) second.child.kill('SIGKILL');
  }
});

t('SIGTERM forwards until the end of the stop and leaves the nftables tables for the next start (as a crash does); podway cleanup is refused while a run runs, and after a crash removes the tables, sets the forwarding back from the record and removes the stale control socket', async () => {
  const dir = tempDir();
  const sock = path.join(dir, 'c.sock');
  const record = path.join(dir, 'nx.d0.forwarding');
  const tables = () => execFileSync('ip', ['netns', 'exec', NS, 'nft', 'list', 'tables'], { encoding: 'utf8' }).trim().split('\n').filter(Boolean).sort();
  const forwarding = () => execFileSync('ip', ['netns', 'exec', NS, 'sysctl', '-n', 'net.ipv4.conf.d0.forwarding'], { encoding: 'utf8' }).trim();
  const cleanup = () => execBounded('ip', ['netns', 'exec', NS, process.execPath, BIN, 'cleanup', '--node', 'nx', '--control', sock], 60_000);
  const PODWAY_TABLES = ['table inet podway', 'table inet podway_tunnels', 'table ip podway'];
  execFileSync('ip', ['netns', 'exec', NS, 'sysctl', '-qw', 'net.ipv4.conf.d0.forwarding=1']);
  let r = spawnRun(['--datastore', store, '--control', sock, '--ip', '10.1.1.3/24']);
  try {
    assert.ok(await r.waitFor(/"forwarding: node 10\.1\.1\.3/, START_WAIT_MIN_MS), r.err());
    assert.equal(tables(), PODWAY_TABLES);
    const refused = await cleanup();
    assert.is(refused.code, 1, refused.stderr);
    assert.match(refused.stderr, /podway: cleanup: a podway run is running in this network namespace for node nx \(pid \d+, control .*c\.sock\).*stop it first \(nothing was changed\)/);
    assert.equal(tables(), PODWAY_TABLES, 'nothing removed under a running podway');
    r.child.kill('SIGTERM');
    assert.is(await within(r.exited, STOP_WAIT_MS, 'timeout' as const), 0, r.err());
    const stderr = r.child.stderr!;
    await within(stderr.closed ? Promise.resolve() : new Promise((res) => stderr.once('close', res)), 5000, null);
    assert.match(r.err(), /"msg":"stopped: forwarded until \d+ ms after the SIGTERM, then \d+ ms to end the forwarding threads; the nftables tables, pod routes and neighbours stay for the next start/);
    assert.equal(tables(), PODWAY_TABLES, 'left for the next start');
    assert.is(forwarding(), '1', 'the underlay\'s forwarding is still set back at a clean stop');
    assert.not.ok(existsSync(sock), 'the control socket removed');
    // A crash leaves the forwarding at 0 with its record, and the control socket.
    r = spawnRun(['--datastore', store, '--control', sock, '--ip', '10.1.1.3/24']);
    assert.ok(await r.waitFor(/"forwarding: node 10\.1\.1\.3/, START_WAIT_MIN_MS), r.err());
    assert.equal(tables(), PODWAY_TABLES, 'replaced, not doubled');
    r.child.kill('SIGKILL');
    assert.is(await within(r.exited, STOP_WAIT_MS, 'timeout' as const), null, r.err());
    assert.is(forwarding(), '0');
    assert.ok(existsSync(record) && existsSync(sock));
    const c = await cleanup();
    assert.is(c.code, 0, c.stderr);
    for (const table of PODWAY_TABLES) assert.match(c.stdout, `removed nftables ${table}\n`);
    assert.match(c.stdout, 'set net.ipv4.conf.d0.forwarding=1 (set back; podway had set 0)');
    assert.match(c.stdout, `removed the control socket ${sock} a killed run left`);
    assert.equal(tables(), [], 'no table left');
    assert.is(forwarding(), '1');
    assert.not.ok(existsSync(record) || existsSync(sock));
    const again = await cleanup();
    assert.is(again.code, 0, again.stderr);
    assert.is(again.stdout, 'nothing of podway\'s was left here\n');
  } finally {
    if (r.child.exitCode === null && r.child.signalCode === null) r.child.kill('SIGKILL');
    execFileSync('ip', ['netns', 'exec', NS, 'nft', 'flush', 'ruleset']);
  }
});

t('a start logs one line per phase, in order, with the ms since the process started (startup-clock.ts)', async () => {
  const sock = path.join(tempDir(), 'c.sock');
  const r = spawnRun(['--ip', '10.1.1.3/24', '--datastore', store, '--control', sock]);
  try {
    assert.ok(await r.waitFor(/"start-up: forwarding at/, START_WAIT_MIN_MS), r.err());
    const phases = r.err().split('\n').flatMap((l) => {
      try {
        const j = JSON.parse(l) as { msg?: string; startupPhase?: string; sinceStartMs?: number; cpuMs?: number };
        return j.startupPhase ? [{ phase: j.startupPhase, at: j.sinceStartMs!, cpu: j.cpuMs!, msg: j.msg! }] : [];
      } catch {
        return [];
      }
    });
    assert.equal(phases.map((p) => p.phase), ['modules loaded', 'control socket', 'registered', 'first model', 'host prepared', 'model applied', 'nat tables', 'forwarding'], r.err());
    for (let i = 1; i < phases.length; i++) assert.ok(phases[i]!.at >= phases[i - 1]!.at, `in time order: ${phases.map((p) => p.msg).join(' | ')}`);
    // the process's CPU so far with each (never less than the phase before; some to load the modules)
    assert.ok(phases[0]!.cpu > 0, phases[0]!.msg);
    for (let i = 1; i < phases.length; i++) assert.ok(phases[i]!.cpu >= phases[i - 1]!.cpu, `CPU grows: ${phases.map((p) => p.msg).join(' | ')}`);
    assert.match(phases[3]!.msg, /^start-up: first model at \d+ ms \(\+\d+ ms, cpu \d+ ms\); the datastore's, 0 endpoints$/);
    // the apply's line says where its time went
    assert.match(r.err(), /"applied model: \d+ routes, 0 endpoints, 0 withheld \([\d.]+ ms; infra [\d.]+, endpoints [\d.]+, gw [\d.]+, host [\d.]+\)/);
    r.child.kill('SIGTERM');
    assert.is(await within(r.exited, STOP_WAIT_MS, 'timeout' as const), 0, r.err());
  } finally {
    if (r.child.exitCode === null) r.child.kill('SIGKILL');
  }
});

t('podway status while run waits for an unreachable etcd: "starting: waiting for the datastore (reason)" (it said not running)', async () => {
  const sock = path.join(tempDir(), 'c.sock');
  const r = spawnRun(['--ip', '10.1.1.3/24', '--datastore', 'etcd:http://127.0.0.1:9', '--control', sock]);
  try {
    assert.ok(await r.waitFor(/unreachable/, START_WAIT_MIN_MS), r.err());
    const seen = Date.now();
    // Past the first retry: the process (not the socket) has been up at least this long.
    while (Date.now() - seen < 2100) await new Promise((res) => setTimeout(res, 100));
    const out = await podway(['status', '--control', sock]);
    assert.is(out.code, 0, out.err);
    assert.match(out.out, /^podway is starting on node nx \(pid \d+\), up \d+s\n/);
    assert.match(out.out, /\nstarting: waiting for the datastore \(etcd http:\/\/127\.0\.0\.1:9 unreachable.*\)\n/);
    const json = JSON.parse((await podway(['status', '--control', sock, '-o', 'json'])).out);
    assert.is(json.starting, 'waiting for the datastore');
    assert.ok(json.uptimeSeconds >= 2, `uptime ${json.uptimeSeconds}`);
    // Other commands say it is starting rather than failing oddly.
    const routes = await podway(['routes', '--control', sock]);
    assert.is(routes.code, 1);
    assert.match(routes.err, /podway is starting: waiting for the datastore \(etcd http:\/\/127\.0\.0\.1:9 unreachable.*\); not forwarding yet/);
    // A plain status (the CNI plugin's STATUS, labs) is not taken for a running dataplane.
    const plain = await controlRequest(sock, { cmd: 'status' }).then(() => 'answered', (e: Error) => e.message);
    assert.match(plain, 'podway is starting: waiting for the datastore');
    r.child.kill('SIGINT');
    const code = await within(r.exited, STOP_WAIT_MS, 'timeout' as const);
    assert.is(code, 130, r.err());
    // The socket went with it: not running again.
    assert.match((await podway(['status', '--control', sock])).err, 'podway is not running');
  } finally {
    if (r.child.exitCode === null) r.child.kill('SIGKILL');
  }
});

t('contrib/systemd: ExecStart= names where the docs\' install step (docs/running.md) puts podway; systemd-analyze verify accepts the unit; podway.env left unedited stops podway run at once with exit 2 (not restarted), not a wait for a placeholder etcd', async () => {
  const read = (f: string) => readFileSync(path.join(ROOT, f), 'utf8');
  const unit = read('contrib/systemd/podway.service');
  const exec = /^ExecStart=(\S+) run$/m.exec(unit);
  assert.ok(exec, 'ExecStart=<path> run');
  // docs/running.md's "Running as a service": npm install -g --prefix DIR . links DIR/bin/podway
  const install = /^npm install -g --prefix (\/\S+) \.\s/m.exec(read('docs/running.md'));
  assert.ok(install, 'docs/running.md installs with npm install -g --prefix DIR .');
  assert.is(exec![1], `${install![1]}/bin/podway`);
  assert.match(unit, /^RestartPreventExitStatus=2$/m);
  // verify checks the command exists: this checkout's bin stands for the installed one
  const dir = tempDir();
  writeFileSync(path.join(dir, 'podway.service'), unit.replace(/^ExecStart=\S+/m, `ExecStart=${BIN}`));
  const verify = await execBounded('systemd-analyze', ['verify', path.join(dir, 'podway.service')], 60_000);
  assert.is(verify.code, 0, verify.stderr);
  assert.is(verify.stderr.trim(), '');
  // the settings file as shipped, then with NODENAME only: each a usage error naming what to set
  const env: Record<string, string> = {};
  for (const m of read('contrib/systemd/podway.env').matchAll(/^([A-Z][A-Z0-9_]*)=(.*)$/gm)) env[m[1]!] = m[2]!;
  assert.not.ok('NODENAME' in env || 'ETCD_ENDPOINTS' in env, JSON.stringify(env));
  let r = await podway(['run', '--control', path.join(dir, 'c.sock')], env);
  assert.is(r.code, 2, r.err);
  assert.is(r.err, 'podway: run: give --node NAME (or set NODENAME)\n');
  r = await podway(['run', '--control', path.join(dir, 'c.sock')], { ...env, NODENAME: 'node1' });
  assert.is(r.code, 2, r.err);
  assert.match(r.err, /^podway: DATASTORE_TYPE=etcdv3 needs ETCD_ENDPOINTS/);
});

// A systemd notify socket: AF_UNIX datagram sockets bound in the namespace (an abstract name is
// per network namespace), each datagram printed as one JSON line [address, text]. Ends by itself
// after 150 s; the test stops it by PID.
const RECEIVER = `
import json, select, socket, sys, time
socks = {}
for a in sys.argv[1:]:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    s.bind('\\0' + a[1:] if a.startswith('@') else a)
    socks[s] = a
print(json.dumps(['bound', '']), flush=True)
end = time.time() + 150
while time.time() < end:
    r, _, _ = select.select(list(socks), [], [], 1)
    for s in r:
        print(json.dumps([socks[s], s.recv(4096).decode()]), flush=True)
`;

t('systemd notify: READY=1 once forwarding and ready, STATUS= lines, WATCHDOG=1 with WATCHDOG_USEC, STOPPING=1 at SIGTERM; the addon sends to a path and to an @abstract name. An endpoint whose pod went while nothing could run its DEL: named by status and ipam check with the cleanup, which works', async () => {
  const dir = tempDir();
  const abstract = `@podway-test-notify-${process.pid}-${randomBytes(3).toString('hex')}`;
  const file = path.join(dir, 'notify.sock');
  const rx = spawn('ip', ['netns', 'exec', NS, 'python3', '-c', RECEIVER, abstract, file], { stdio: ['ignore', 'pipe', 'pipe'] });
  const got: { addr: string; text: string; forwardingLogged: boolean }[] = [];
  let r: ReturnType<typeof spawnRun> | null = null;
  let rxOut = '';
  rx.stdout!.on('data', (b: Buffer) => {
    rxOut += b.toString();
    let nl: number;
    while ((nl = rxOut.indexOf('\n')) >= 0) {
      const [addr, text] = JSON.parse(rxOut.slice(0, nl)) as [string, string];
      rxOut = rxOut.slice(nl + 1);
      // whether podway had said it forwards when this datagram arrived
      got.push({ addr, text, forwardingLogged: r !== null && /"forwarding: node/.test(r.err()) });
    }
  });
  const waitGot = async (pred: () => boolean, ms: number) => {
    const end = Date.now() + ms;
    while (!pred() && Date.now() < end) await new Promise((res) => setTimeout(res, 100));
    return pred();
  };
  try {
    assert.ok(await waitGot(() => got.some((g) => g.addr === 'bound'), 20_000), 'the receiver did not bind');
    // The addon alone, to the path socket (from this namespace: a path is seen from any).
    const { nativeAddon } = await import('../../src/dataplane/native');
    nativeAddon().sdNotify(file, 'PROBE=1');
    assert.ok(await waitGot(() => got.some((g) => g.addr === file && g.text === 'PROBE=1'), 10_000), JSON.stringify(got));
    assert.throws(() => nativeAddon().sdNotify(path.join(dir, 'none.sock'), 'X=1'), /sdNotify: sendto: .*ENOENT/);
    assert.throws(() => nativeAddon().sdNotify('relative.sock', 'X=1'), /absolute path or an @abstract name/);

    // A pod removed while podway was down (`podman rm -f`: no CNI DEL): its address and endpoint
    // stay, its veth is gone. (Not ready never hangs on it: a pod being wired waits too.)
    const wep = path.join(dir, 'wep.yaml');
    writeFileSync(wep, 'apiVersion: projectcalico.org/v3\nkind: WorkloadEndpoint\nmetadata: {name: nx-k8s-gone-eth0, namespace: default}\n'
      + 'spec: {node: nx, orchestrator: k8s, pod: gone, endpoint: eth0, containerID: c0ffee, interfaceName: caliGone0, ipNetworks: [10.244.0.5/32]}\n');
    await ok(['ipam', 'assign', '--node', 'nx', '--handle', 'podway.c0ffee', '--ip', '10.244.0.5', '--datastore', store]);
    await ok(['apply', '-f', wep, '--datastore', store]);
    const sock = path.join(dir, 'c.sock');
    r = spawnRun(['--ip', '10.1.1.3/24', '--datastore', store, '--control', sock, '--endpoint-missing-after', '1s'], { NOTIFY_SOCKET: abstract, WATCHDOG_USEC: '1000000' });
    const run = r;
    const texts = () => got.filter((g) => g.addr === abstract).map((g) => g.text);
    assert.ok(await waitGot(() => texts().some((t) => t.split('\n').includes('READY=1')) || run.child.exitCode !== null, START_WAIT_MIN_MS), `${JSON.stringify(texts())}\n${run.err()}`);
    const ready = got.find((g) => g.addr === abstract && g.text.split('\n').includes('READY=1'))!;
    assert.ok(ready.forwardingLogged, `READY=1 came before podway said it forwards: ${run.err()}`);
    assert.match(ready.text, /^READY=1\nSTATUS=ready: forwarding, 1 endpoints, \d+ routes$/);
    // status says ready too (the same report /readyz answers from)
    assert.is(JSON.parse(await ok(['status', '--control', sock, '-o', 'json'])).ready, true);
    assert.match(run.err(), /"level":"info".*told systemd READY=1/);
    // before it: the start phase
    const before = texts().slice(0, texts().indexOf(ready.text));
    assert.ok(before.some((t) => /^STATUS=starting: /.test(t)), JSON.stringify(before));
    assert.ok(before.includes('WATCHDOG=1'), JSON.stringify(before));
    // keep-alives go on every 0.5 s: two more after READY
    const n = texts().length;
    assert.ok(await waitGot(() => texts().slice(n).filter((t) => t === 'WATCHDOG=1').length >= 2, 30_000), JSON.stringify(texts().slice(n)));
    assert.is(texts().filter((t) => t.split('\n').includes('READY=1')).length, 1);

    // the leaked endpoint: waiting since the start, named once past --endpoint-missing-after
    // named as podway was run here, `node bin/podway.js` (util/invocation.ts): podway run's in its
    // JSON, and the status and ipam check lines' own (the same command in this test)
    const cmd = CMD;
    assert.match(cmd, /^node \S*bin\/podway\.js$/);
    const cleanup = `${cmd} delete workloadendpoint nx-k8s-gone-eth0 -n default && ${cmd} ipam release --ip 10.244.0.5 --grace-period 0`;
    const eps = JSON.parse(await ok(['endpoints', '--control', sock, '-o', 'json'])) as { workload: string; state: string; since?: string }[];
    assert.is(eps.find((e) => e.workload === 'default/nx-k8s-gone-eth0')?.state, 'waiting: interface missing', JSON.stringify(eps));
    const st = JSON.parse(await ok(['status', '--control', sock, '-o', 'json'])) as { staleEndpoints: { workload: string; cleanup: string }[] };
    assert.equal(st.staleEndpoints.map((e) => [e.workload, e.cleanup]), [['default/nx-k8s-gone-eth0', cleanup]]);
    assert.match(await ok(['status', '--control', sock]), new RegExp(`^endpoint default/nx-k8s-gone-eth0: interface caliGone0 missing since \\S+ \\(\\d+ s\\); if its pod is gone .*clean up with: ${cleanup.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}$`, 'm'));
    // ipam check finds no leaked address (the endpoint uses it) but, asked on the node, the endpoint
    const check = await podway(['ipam', 'check', '--datastore', store, '--control', sock, '--grace-period', '0s']);
    assert.is(check.code, 3, check.out + check.err);
    assert.match(check.out, `Scanning this node's workload endpoints whose interface is missing (podway run on ${sock})...`);
    assert.match(check.out, `clean up with: ${cleanup}`);
    assert.match(check.out, 'Found 1 workload endpoints whose interface has been missing for longer than the 0s grace period.');
    assert.match(check.out, 'Found 0 IPs that are allocated in IPAM but not actually in use.');
    // not past a longer grace; not checked without a podway run on this datastore
    assert.match((await podway(['ipam', 'check', '--datastore', store, '--control', sock, '--grace-period', '1h'])).out, 'Found 0 workload endpoints whose interface has been missing');
    const elsewhere = await podway(['ipam', 'check', '--datastore', `embedded:${tempDir()}`, '--control', sock]);
    assert.match(elsewhere.out, `not checked: podway run on ${sock} uses datastore embedded:`);
    // the cleanup as printed: the endpoint and its address gone, the check clean
    // (release's own 15 min grace for a young allocation: this one is seconds old)
    for (const part of cleanup.split(' && ')) await ok([...part.slice(cmd.length + 1).split(' '), '--datastore', store, ...(/ipam release/.test(part) ? ['--grace-period', '0s'] : [])]);
    const end = Date.now() + 30_000;
    while (Date.now() < end && (JSON.parse(await ok(['endpoints', '--control', sock, '-o', 'json'])) as unknown[]).length > 0) await new Promise((res) => setTimeout(res, 200));
    const clean = await podway(['ipam', 'check', '--datastore', store, '--control', sock, '--grace-period', '0s']);
    assert.is(clean.code, 0, clean.out + clean.err);
    assert.match(clean.out, 'Found 0 workload endpoints whose interface has been missing');
    run.child.kill('SIGTERM');
    assert.ok(await waitGot(() => texts().some((t) => t.startsWith('STOPPING=1')), STOP_WAIT_MS), JSON.stringify(texts()));
    assert.ok(texts().includes('STOPPING=1\nSTATUS=SIGTERM: stopping'), JSON.stringify(texts()));
    const code = await within(run.exited, STOP_WAIT_MS, 'timeout' as const);
    assert.is(code, 0, run.err());
    // nothing after STOPPING=1
    const all = texts();
    assert.is(all[all.length - 1], 'STOPPING=1\nSTATUS=SIGTERM: stopping', JSON.stringify(all));
  } finally {
    if (r && r.child.exitCode === null) r.child.kill('SIGKILL');
    if (rx.exitCode === null && rx.signalCode === null) {
      const gone = new Promise((res) => rx.once('exit', res));
      rx.kill('SIGKILL');
      await within(gone, 5000, 'timeout' as const);
    }
  }
});

t.run();
