/**
 * Metrics, health and logs of a running `podway run` (root, network namespaces, a real etcd):
 *   - started with --metrics-port while etcd is down: /livez answers, /readyz is 503 naming the
 *     datastore; once etcd is up, /readyz is 200 and `podway status` says ready;
 *   - 100 pings from a pod: a Prometheus text-format parser reads the scrape, and the pod port's
 *     rx/tx packet and byte counters cover them, summed over both forwarding workers; Felix's
 *     names are there;
 *   - its stderr is JSON lines; `podway log-level debug` makes debug lines appear at once.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import * as path from 'node:path';
import { Lab, LabNodeSpec, run } from '../../src/lab/lab';
import type { LabEtcd } from '../../src/lab/etcd';
import { EtcdKv } from '../../src/control/kv/etcd-kv';
import { controlRequest } from '../../src/dataplane/control-server';
import { guard, teardown, isRoot, until, backgroundPing, logTail, sleep, status } from './e2e-kit';
import { execBounded } from './tools';
import { parseMetrics, valueOf, family } from '../observe/prom-text';

const SPEC: LabNodeSpec[] = [
  { name: 'node1', subnet: 'a', pods: [{ name: 'web-1', type: 'veth' }] },
  { name: 'node2', subnet: 'a', pods: [{ name: 'web-2', type: 'veth' }] },
];
const PORT = 9091;
const HTTP_GET = path.join(__dirname, 'http-get.js');
const PODWAY = path.resolve(__dirname, '..', '..', '..', 'bin', 'podway.js');

let lab: Lab;
let etcd: LabEtcd;
let kv: EtcdKv;

/** GET a path of node1's metrics port, from inside node1's namespace. */
async function get(pathname: string): Promise<{ status: number; body: string; error?: string }> {
  const r = await execBounded('ip', ['netns', 'exec', lab.node('node1').ns, process.execPath, HTTP_GET, `http://127.0.0.1:${PORT}${pathname}`], 10_000);
  if (r.code !== 0) throw new Error(`http-get ${pathname}: exit ${r.code}: ${r.stderr}`);
  return JSON.parse(r.stdout.trim()) as { status: number; body: string; error?: string };
}

async function cli(args: string[]): Promise<string> {
  const r = await execBounded(process.execPath, [PODWAY, ...args, '--control', lab.node('node1').control], 15_000);
  if (r.code !== 0) throw new Error(`podway ${args.join(' ')}: exit ${r.code}: ${r.stderr}`);
  return r.stdout;
}

test.before(async () => {
  if (!isRoot()) throw new Error('metrics e2e tests need root (network namespaces)');
  lab = guard(new Lab(SPEC));
  lab.build();
  etcd = await lab.startEtcd();
  kv = new EtcdKv({ endpoints: [etcd.localEndpoint], timeoutMs: 3000 });
  await lab.useKvDatastore(kv, `etcd:${etcd.endpoint}`);
});

test.after(async () => {
  await kv?.close();
  if (lab) await teardown(lab);
});

test('/readyz is 503 naming the datastore while etcd is down, 200 once podway is in sync; status agrees', async () => {
  const n1 = lab.node('node1');
  await etcd.kill();
  const starting = lab.startPodway('node1', 40_000, ['--metrics-port', String(PORT), '--workers', '2']);
  starting.catch(() => undefined); // awaited below
  try {
    let live: { status: number; body: string } = { status: 0, body: '' };
    assert.ok(await until(async () => (live = await get('/livez')).status === 200, 30_000), `livez: ${JSON.stringify(live)} ${n1.log.join(' | ')}`);
    // The metrics port answers before the first call to etcd has failed (podway is still joining):
    // wait until readiness names the unreachable datastore and its warning came through the log's
    // pipe, then check the whole answer.
    let r = { status: 0, body: '' };
    assert.ok(await until(async () => /unreachable/.test((r = await get('/readyz')).body) && n1.log.some((l) => /unreachable/.test(l)), 30_000, 200), `readyz names the unreachable datastore: ${JSON.stringify(r)}`);
    assert.is(r.status, 503, r.body);
    const why = JSON.parse(r.body) as { ready: boolean; reasons: string[]; checks: Record<string, boolean> };
    assert.is(why.ready, false);
    assert.is(why.checks.datastoreInSync, false);
    assert.is(why.checks.modelApplied, false);
    assert.ok(why.reasons.some((x) => /^datastore: .*unreachable/.test(x)), `the reason names the datastore: ${r.body}`);
    // The wait is a warning naming the endpoint and the call once, with grpc-js's wording cut to the cause.
    const waits = n1.log.filter((l) => /unreachable/.test(l));
    assert.ok(waits.length > 0, n1.log.join(' | '));
    for (const l of waits) {
      assert.match(l, /"level":"warn"/);
      // the first read at start: the node's liveness key (another host's run under this name?), then its Node
      assert.match(l, /etcd http:\/\/\S+ unreachable \(get \/calico\/(podway\/v1\/live|resources\/v3\/projectcalico\.org\/nodes)\/node1\): .*; retrying in \d+ s/);
      assert.not.match(l, /Resolution note|unreachable \(etcd|UNAVAILABLE/, l);
    }
    // the scrape works while not ready, and says so
    const m = parseMetrics((await get('/metrics')).body);
    assert.is(valueOf(m, 'podway_ready'), 0);
    assert.is(valueOf(m, 'podway_datastore_in_sync'), 0);

    await etcd.start();
    await starting;
    let ready = { status: 0, body: '' };
    assert.ok(await until(async () => (ready = await get('/readyz')).status === 200, 15_000), `ready after etcd is up: ${JSON.stringify(ready)}`);
    assert.equal(JSON.parse(ready.body).checks, { modelApplied: true, portsAttached: true, datastoreInSync: true });
    const st = (await controlRequest(n1.control, { cmd: 'status' })) as { ready: boolean; notReady: string[] };
    assert.is(st.ready, true, st.notReady.join('; '));
    assert.match(await cli(['status']), /^ready$/m);
  } catch (e) {
    console.log(logTail(lab, 20));
    // etcd back for the tests after this one (they would all fail on its absence, hiding nothing new)
    await etcd.start().catch(() => undefined);
    throw e;
  }
});

test('a scrape parsed as Prometheus text: 100 pings counted on the pod port over both workers; Felix names', async () => {
  const n1 = lab.node('node1');
  await lab.startPodway('node2', 20_000);
  try {
    const web1 = lab.pod('web-1');
    // the pod's path is up (routes learned both ways) before the counted run
    assert.ok(await until(() => lab.ping('web-1', lab.pod('web-2').ip, 1, 56, ['-W', '1']).loss === 0, 15_000), 'web-1 reaches web-2');
    const before = parseMetrics((await get('/metrics')).body);
    const rx0 = valueOf(before, 'podway_port_rx_packets_total', { port: web1.ifname });
    const tx0 = valueOf(before, 'podway_port_tx_packets_total', { port: web1.ifname });
    const bytes0 = valueOf(before, 'podway_port_rx_bytes_total', { port: web1.ifname });
    const p = await backgroundPing(lab, 'web-1', lab.pod('web-2').ip, 100, 0.01).done;
    assert.ok(p.received >= 95, `pings answered: ${p.received}/100`);
    const m = parseMetrics((await get('/metrics')).body);
    const rx = valueOf(m, 'podway_port_rx_packets_total', { port: web1.ifname }) - rx0;
    const tx = valueOf(m, 'podway_port_tx_packets_total', { port: web1.ifname }) - tx0;
    assert.ok(rx >= 100, `echo requests received on ${web1.ifname}: ${rx}`);
    assert.ok(tx >= p.received, `echo replies sent to ${web1.ifname}: ${tx} (${p.received} answered)`);
    assert.ok(valueOf(m, 'podway_port_rx_bytes_total', { port: web1.ifname }) - bytes0 >= 100 * 98, 'at least 98 bytes per echo request frame');
    assert.is(family(m, 'podway_port_rx_packets_total').type, 'COUNTER');
    assert.is(family(m, 'podway_port_rx_packets_total').metrics.find((s) => s.labels?.port === web1.ifname)!.labels!.kind, 'veth');
    // each port appears once: both workers' counters are merged
    assert.is(family(m, 'podway_port_rx_packets_total').metrics.filter((s) => s.labels?.port === web1.ifname).length, 1);
    assert.is(valueOf(m, 'podway_forwarding_workers'), 2);
    // Felix's names, for existing dashboards
    assert.is(valueOf(m, 'felix_active_local_endpoints'), 1);
    assert.is(valueOf(m, 'felix_cluster_num_hosts'), 2);
    assert.ok(Number(family(m, 'felix_int_dataplane_apply_time_seconds').metrics[0].count) >= 1);
    assert.ok(Number(family(m, 'podway_rx_batch_size').metrics[0].count) >= 100);
    assert.ok(valueOf(m, 'podway_routes', { kind: 'vxlan', class: 'VXLANTunnel' }) >= 1);
    assert.ok(m.has('process_resident_memory_bytes'));
  } catch (e) {
    console.log(logTail(lab, 20));
    throw e;
  } finally {
    void n1;
  }
});

test('a pod port withheld (its veth deleted) keeps its series at the last values, and goes on from them once it is back: no counter reset', async () => {
  const n1 = lab.node('node1');
  const web1 = lab.pod('web-1');
  const rx = async () => valueOf(parseMetrics((await get('/metrics')).body), 'podway_port_rx_packets_total', { port: web1.ifname });
  try {
    assert.ok(await until(() => lab.ping('web-1', lab.pod('web-2').ip, 1, 56, ['-W', '1']).loss === 0, 15_000), 'web-1 reaches web-2');
    const before = await rx();
    assert.ok(before > 0, `web-1's port has counted: ${before}`);
    run('ip', ['-n', n1.ns, 'link', 'del', web1.ifname]);
    assert.ok(await until(async () => (await status(n1)).withheld.some((w) => String((w as { cidr: string }).cidr).includes(web1.ip)), 10_000), 'web-1 withheld');
    // (frames that arrived between the first scrape and the delete count too: >=, then frozen)
    const held = await rx();
    assert.ok(held >= before, `the withheld port's series is still there, at its last value: ${held} (${before} before the delete)`);
    await sleep(300);
    assert.is(await rx(), held, 'and stays at it while withheld');
    // its veth back (as a runtime would make it again): attached, and counting on from there
    // (the host end made up, with its MAC, in the one request: podway may attach it at once)
    run('ip', ['link', 'add', web1.ifname, 'address', 'ee:ee:ee:ee:ee:ee', 'up', 'netns', n1.ns, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', web1.ns]);
    run('ip', ['-n', web1.ns, 'link', 'set', 'eth0', 'address', web1.mac!, 'mtu', '1450', 'up']);
    run('ip', ['-n', web1.ns, 'addr', 'add', `${web1.ip}/32`, 'dev', 'eth0']);
    run('ip', ['-n', web1.ns, 'route', 'add', '169.254.1.1', 'dev', 'eth0', 'scope', 'link']);
    run('ip', ['-n', web1.ns, 'route', 'add', 'default', 'via', '169.254.1.1', 'dev', 'eth0']);
    assert.ok(await until(() => lab.ping('web-1', lab.pod('web-2').ip, 1, 56, ['-W', '1']).loss === 0, 15_000), 'web-1 forwards again');
    const after = await rx();
    assert.ok(after > held, `counting on from the last value: ${after} after ${held}`);
  } catch (e) {
    console.log(logTail(lab, 20));
    throw e;
  }
});

test('stderr is JSON lines naming the node; `podway log-level debug` shows debug lines from then on', async () => {
  const n1 = lab.node('node1');
  const parsed = n1.log.map((l) => {
    try {
      return JSON.parse(l) as { level: string; time: string; node: string; msg: string; [k: string]: unknown };
    } catch {
      throw new Error(`not a JSON line: ${l}`);
    }
  });
  assert.ok(parsed.length > 3);
  for (const o of parsed) {
    assert.is(o.node, 'node1');
    assert.ok(typeof o.msg === 'string' && Number.isFinite(Date.parse(o.time)), JSON.stringify(o));
  }
  assert.not.ok(parsed.some((o) => o.level === 'debug'), 'no debug lines at the default level');
  const attached = parsed.find((o) => /applied model/.test(o.msg));
  assert.ok(attached && typeof attached.routes === 'number', 'the apply line carries its numbers as fields');
  assert.ok(parsed.some((o) => o.datastore === `etcd:${etcd.endpoint}`), 'datastore lines say which datastore');

  assert.is((await cli(['log-level'])).trim(), 'info');
  const mark = n1.log.length;
  assert.is((await cli(['log-level', 'debug'])).trim(), 'debug');
  await get('/metrics');
  let line: string | undefined;
  assert.ok(await until(() => (line = n1.log.slice(mark).find((l) => /"level":"debug"/.test(l) && /GET \/metrics 200/.test(l))) !== undefined, 5000), `a debug line after the change: ${n1.log.slice(mark).join(' | ')}`);
  assert.is(JSON.parse(line!).path, '/metrics');
  assert.is((await cli(['log-level', 'Warning'])).trim(), 'warn', "Felix's severity names work too");
  const mark2 = n1.log.length;
  await get('/metrics');
  await sleep(300);
  assert.not.ok(n1.log.slice(mark2).some((l) => /"level":"(debug|info)"/.test(l)), `nothing below warn: ${n1.log.slice(mark2).join(' | ')}`);
  const bad = await execBounded(process.execPath, [PODWAY, 'log-level', 'loud', '--control', n1.control], 15_000);
  assert.is(bad.code, 2, 'a usage error');
  assert.match(bad.stderr, /unknown log level "loud"/);
});

test('a metrics port already in use is refused at start, clearly', async () => {
  // node1's podway holds 9091 in node1's namespace: a second podway there (another node name and
  // socket) must stop at once, naming the port, before touching anything.
  const n1 = lab.node('node1');
  const r = await execBounded('ip', ['netns', 'exec', n1.ns, process.execPath, PODWAY, 'run', '--node', 'other', '--datastore', `file:${lab.file}`, '--control', path.join(lab.dir, 'other.sock'), '--metrics-port', String(PORT)], 15_000);
  assert.is(r.code, 1, r.stderr);
  assert.match(r.stderr, `metrics port *:${PORT} is already in use`);
});

test('a second podway run in the node\'s namespace (another control socket) is refused before it changes anything', async () => {
  // It used to register node1 again with its own --ip, replace node1's NAT table and, failing on
  // the busy VXLAN port, delete node1's running `inet podway_tunnels` table on its way out.
  const n1 = lab.node('node1');
  const nodeKey = '/calico/resources/v3/projectcalico.org/nodes/node1';
  const before = (await kv.get(nodeKey))?.value;
  assert.ok(before, 'node1 is registered');
  const tables = () => execBounded('ip', ['netns', 'exec', n1.ns, 'nft', 'list', 'tables'], 10_000).then((r) => r.stdout);
  assert.match(await tables(), 'table inet podway_tunnels');
  const r = await execBounded('ip', ['netns', 'exec', n1.ns, process.execPath, PODWAY, 'run', '--node', 'node1', '--ip', '10.99.0.77/24',
    '--datastore', lab.datastoreSpec, '--control', path.join(lab.dir, 'second.sock'), '--model-cache', path.join(lab.dir, 'second.model.json')], 15_000);
  assert.is(r.code, 1, r.stderr);
  assert.match(r.stderr, `another podway run is running in this network namespace for node node1 (pid `);
  assert.match(r.stderr, n1.control);
  assert.is((await kv.get(nodeKey))?.value, before, 'node1\'s Node is as the running podway registered it');
  assert.match(await tables(), 'table inet podway_tunnels');
  assert.match(await tables(), 'table ip podway');
  const st = JSON.parse(await cli(['status', '-o', 'json'])) as { ready: boolean };
  assert.ok(st.ready, 'node1 is still ready');
});

test('a datastore state the node cannot use (its Node deleted) makes it not ready, naming why, until the Node is back', async () => {
  // It stayed "ready" while rejecting every update.
  const nodeKey = '/calico/resources/v3/projectcalico.org/nodes/node1';
  const entry = await kv.get(nodeKey);
  assert.ok(entry, 'node1 is registered');
  const status = async () => JSON.parse(await cli(['status', '-o', 'json'])) as { ready: boolean; notReady: string[] };
  await kv.delete(nodeKey);
  try {
    let st = await status();
    assert.ok(await until(async () => !(st = await status()).ready, 10_000), `still ready: ${JSON.stringify(st)}`);
    assert.ok(st.notReady.some((r) => /node "node1" is not in .*forwarding on the last good state/.test(r)), st.notReady.join('; '));
    const r = await get('/readyz');
    assert.is(r.status, 503, r.body);
  } finally {
    await kv.create(nodeKey, entry!.value);
  }
  let st = await status();
  assert.ok(await until(async () => (st = await status()).ready, 10_000), `not ready again: ${JSON.stringify(st)}`);
});

test.run();
