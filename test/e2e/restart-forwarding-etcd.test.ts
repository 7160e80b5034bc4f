/**
 * After a restart in the same boot, podway's `forwarding` line means what it says (src/cli/run.ts,
 * docs/failures.md, "Where a start's time goes"), on a real etcd (root, network namespaces, etcd
 * in the fabric namespace, every process stopped by PID). Two podways on `etcd:`, one veth pod
 * each; node1's podway is stopped (SIGTERM) and started again on its model cache, reporting the
 * modules each of its threads loaded (test/helpers/module-report-preload.ts):
 * - the `forwarding` line comes once the underlay neighbour node2 is known (its ARP answer read
 *   before the line, not after the datastore's start): `underlay neighbours known: 1 of 1`, and
 *   the start-up phase line says the same;
 * - nothing of the datastore's start runs on the forwarding thread: once the datastore's model
 *   replaced the cached one (the registration done, the model thread running), the main thread
 *   has loaded neither an etcd client (etcd3, grpc-js, protobufjs) nor the schemas (zod), nor the
 *   registration's modules: the registration ran in its own thread (join-thread.ts), which
 *   loaded them, with the light etcd client. (Before, the registration loaded all of those on the
 *   forwarding thread the moment podway said it forwarded, holding it for seconds on a busy
 *   machine: bench/README.md, "The gap of a restart".)
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Lab, LabKvStore, LabNodeSpec } from '../../src/lab/lab';
import { controlRequest } from '../../src/dataplane/control-client';
import { loadedModuleReports, REPORT_MODULES } from '../helpers/module-report';
import { guard, teardown, isRoot, logTail, until, waitLog } from './e2e-kit';

const SPEC: LabNodeSpec[] = [
  { name: 'node1', subnet: 'a', pods: [{ name: 'web-1', type: 'veth' }] },
  { name: 'node2', subnet: 'a', pods: [{ name: 'web-2', type: 'veth' }] },
];
const ETCD_CLIENT = ['etcd3', '@grpc/grpc-js', '@grpc/proto-loader', 'protobufjs'];

let lab: Lab | null = null;
let store: LabKvStore | null = null;
let ok = false;

const talks = (from: string, to: string) => lab!.ping(from, lab!.pod(to).ip, 1, 56, ['-W', '1']).received === 1;
interface Status { ready?: boolean; cachedModel?: unknown }
const status = async (): Promise<Status | null> => (await controlRequest(lab!.node('node1').control, { cmd: 'status' }, 5000).catch(() => null)) as Status | null;

test.before(async () => {
  if (!isRoot()) throw new Error('e2e tests need root (network namespaces)');
  lab = guard(new Lab(SPEC, { podOffloads: false }));
  lab.build();
  lab.setMode('vxlan');
  store = await lab.openKvStore('etcd', `podway-restart2-${process.pid}-`);
  await lab.startEtcd();
  await lab.useKvDatastore(store.kv, store.spec);
  await lab.startPodway('node1', 20_000);
  await lab.startPodway('node2', 20_000);
});

test.after(async () => {
  if (!lab) return;
  if (!ok) console.log(logTail(lab, 40));
  await teardown(lab); // etcd too (killed by PID, its data removed)
  await store?.close();
});

test('a restart on the model cache: forwarding said once node2\'s MAC is known; the registration and the etcd clients off the forwarding thread', async () => {
  const n1 = lab!.node('node1');
  assert.ok(await until(() => talks('web-1', 'web-2') && talks('web-2', 'web-1'), 15_000, 100), 'pods talk');
  // ready: the datastore's model applied, so the cache holds node2's route (a SIGTERM writes the newest)
  assert.ok(await until(async () => (await status())?.ready === true, 30_000, 200), 'node1 ready');
  assert.is(await lab!.stopPodway('node1'), 0, 'node1 stopped (SIGTERM)');
  const mark = n1.log.length;
  await lab!.startPodway('node1', 20_000, [], { NODE_OPTIONS: REPORT_MODULES });
  assert.ok(await waitLog(n1, /start-up: forwarding on the cached model from \S+ \(same boot\)/, mark, 10_000), `the cache applied at once: ${n1.log.slice(mark).join(' | ')}`);
  assert.ok(await waitLog(n1, /"msg":"forwarding: node/, mark, 10_000), 'forwarding said');
  const log = n1.log.slice(mark);
  const fwd = log.find((l) => /"msg":"forwarding: node/.test(l))!;
  assert.match(fwd, /; underlay neighbours known: 1 of 1\b/, 'the forwarding line comes once node2 (the one underlay neighbour) is known');
  console.log(`  ${(JSON.parse(fwd) as { msg: string }).msg.replace(/^.*; underlay/, 'underlay')}`);
  const phase = log.find((l) => /"startupPhase":"forwarding"/.test(l));
  assert.ok(phase !== undefined && /underlay neighbours known: 1 of 1/.test(phase), `the phase line says so too: ${phase}`);
  // the datastore's start (begun after that line) done: its model replaced the cache's
  assert.ok(await waitLog(n1, /answers: its model replaces the cached one/, mark, 60_000), `the datastore's model applied: ${n1.log.slice(mark).join(' | ')}`);
  // the loop's longest hold meanwhile, measured by the process (a figure for bench/restart-gap,
  // not judged here: a loaded machine holds it too)
  const answered = n1.log.slice(mark).find((l) => /answers: its model replaces the cached one/.test(l))!;
  assert.match(answered, /; the forwarding thread held at most \d+ ms since forwarding"/, 'the hold since forwarding is said');
  assert.ok(typeof (JSON.parse(answered) as { heldMaxMs?: unknown }).heldMaxMs === 'number', 'and given as heldMaxMs');
  assert.ok(await until(async () => (await status())?.ready === true, 30_000, 200), 'node1 ready again');
  assert.ok(talks('web-1', 'web-2') && talks('web-2', 'web-1'), 'pods talk');
  const regs = n1.log.slice(mark).filter((l) => /"msg":"node node1 (unchanged|updated|created) in etcd/.test(l));
  assert.is(regs.length, 1, `registered once: ${n1.log.slice(mark).join(' | ')}`);
  assert.is(await lab!.stopPodway('node1'), 0, 'node1 stopped');
  const reports = loadedModuleReports(n1.log.slice(mark).join('\n'));
  const main = reports.filter((r) => r.includes('src/dataplane/engine.js') && r.includes('src/cli/run.js'));
  const join = reports.filter((r) => r.includes('src/cli/join-worker.js'));
  assert.is(main.length, 1, `one report of the main thread: ${JSON.stringify(reports.map((r) => r.length))}`);
  const heavy = [...ETCD_CLIENT, 'zod', 'src/control/resources.js'];
  assert.equal(main[0]!.filter((m) => heavy.includes(m)), [], 'the forwarding thread loaded no etcd client and no schema');
  assert.is(join.length, 1, 'one registration thread, which reported its modules');
  assert.ok(join[0]!.includes('zod') && join[0]!.includes('src/control/kv/etcd-lite.js') && !join[0]!.some((m) => ETCD_CLIENT.includes(m)), `the registration thread read the pools with the schemas over the light client: ${join[0]!.join(', ')}`);
  ok = true;
});

test.run();
