/**
 * `podway run` when `ip` cannot read the kernel's main table while it runs (root, network
 * namespaces): node1 is started with a PATH whose `ip` is a wrapper that fails the read podway makes
 * (`ip -j -4 route show table main`) while a flag file exists, and runs the real `ip` otherwise.
 * node2 is on another subnet (the underlay next hop towards it is the fabric's router, which only
 * the kernel's table says), each with a veth pod, the datastore the embedded store.
 * - the flag set, then a datastore change (a new IPPool) makes podway read the table: the read
 *   fails; podway keeps the last good table and forwards on it (pod to pod across the router, a
 *   second model applied meanwhile too), `podway status` says since when and why (kernelRoutes
 *   .failing), /metrics podway_kernel_routes_unreadable is 1 and the failures are counted;
 * - the flag removed: the retry (1 s doubling) reads it again, said in the log, status and the
 *   metric back to readable, forwarding on.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import * as path from 'node:path';
import { execFileSync } from 'node:child_process';
import { writeFileSync, mkdirSync, rmSync, chmodSync } from 'node:fs';
import { Lab, LabKvStore, LabNode } from '../../src/lab/lab';
import { applyResource } from '../../src/control/v3-store';
import { controlRequest } from '../../src/dataplane/control-server';
import { guard, teardown, isRoot, logMessage, logTail, until, waitLog as waitRaw } from './e2e-kit';
import { execBounded } from './tools';
import { parseMetrics, valueOf } from '../observe/prom-text';

const waitLog = (n: LabNode, re: RegExp, from: number, ms: number) => waitRaw(n, { test: (l: string) => re.test(logMessage(l)) } as RegExp, from, ms);

const SPEC = [
  { name: 'node1', subnet: 'a' as const, pods: [{ name: 'kr-1', type: 'veth' as const }] },
  { name: 'node2', subnet: 'b' as const, pods: [{ name: 'kr-2', type: 'veth' as const }] },
];
const PORT = 9091;
const HTTP_GET = path.join(__dirname, 'http-get.js');

let lab: Lab | null = null;
let store: LabKvStore | null = null;
let ok = false;
let flag = '';

interface KernelRoutesStatus { routes: number; readAt: string | null; failures: number; failing: { since: string; error: string; attempts: number } | null }
const kernelRoutes = async (): Promise<KernelRoutesStatus> => ((await controlRequest(lab!.node('node1').control, { cmd: 'status' }, 5000)) as { kernelRoutes: KernelRoutesStatus }).kernelRoutes;
const unreadable = async (): Promise<number | undefined> => {
  const r = await execBounded('ip', ['netns', 'exec', lab!.node('node1').ns, process.execPath, HTTP_GET, `http://127.0.0.1:${PORT}/metrics`], 10_000);
  return valueOf(parseMetrics((JSON.parse(r.stdout.trim()) as { body: string }).body), 'podway_kernel_routes_unreadable');
};
/** Pod kr-1 pings kr-2 across the router: every reply back. */
const podsTalk = (what: string) => {
  const r = lab!.ping('kr-1', lab!.node('node2').pods[0].ip, 3);
  assert.is(r.received, 3, `${what}: ${JSON.stringify(r)}`);
};
let pools = 0;
const newPool = () => applyResource(store!.kv, { apiVersion: 'projectcalico.org/v3', kind: 'IPPool', metadata: { name: `felix2-kr-${process.pid}-${++pools}` }, spec: { cidr: `10.251.${pools}.0/24`, vxlanMode: 'Always' } });

test.before(async () => {
  if (!isRoot()) throw new Error('e2e tests need root (network namespaces)');
  lab = guard(new Lab(SPEC));
  lab.build();
  lab.setMode('vxlan');
  store = await lab.openKvStore('embedded', `podway-felix2-kr-${process.pid}-`);
  await lab.useKvDatastore(store.kv, store.spec);
  // the wrapper: the real ip, but the main table's read refused while the flag exists
  const bin = path.join(lab.dir, 'felix2-bin');
  mkdirSync(bin);
  flag = path.join(lab.dir, 'felix2-route-fails');
  const realIp = execFileSync('sh', ['-c', 'command -v ip'], { encoding: 'utf8' }).trim();
  writeFileSync(path.join(bin, 'ip'), `#!/bin/sh\nif [ -e '${flag}' ] && [ "$*" = "-j -4 route show table main" ]; then echo "ip route read refused by the test's wrapper" >&2; exit 1; fi\nexec '${realIp}' "$@"\n`);
  chmodSync(path.join(bin, 'ip'), 0o755);
  await lab.startPodway('node1', 20_000, ['--metrics-port', String(PORT)], { PATH: `${bin}:${process.env.PATH ?? ''}` });
  await lab.startPodway('node2', 20_000);
});

test.after(async () => {
  if (!lab) return;
  if (!ok) console.log(logTail(lab, 40));
  rmSync(flag, { force: true });
  await teardown(lab);
  await store?.close();
});

test('at start: the table read, readable, pods talk across the router', async () => {
  const k = await kernelRoutes();
  assert.ok(k.routes > 0 && k.readAt !== null, JSON.stringify(k));
  assert.is(k.failing, null);
  assert.is(await unreadable(), 0);
  assert.ok(await until(async () => lab!.ping('kr-1', lab!.node('node2').pods[0].ip, 1).received === 1, 20_000, 200), 'kr-1 reaches kr-2');
  podsTalk('at start');
});

test('the read fails: the last good table kept and forwarded on, said in the log, status and metrics', async () => {
  const n1 = lab!.node('node1');
  const was = await kernelRoutes();
  const mark = n1.log.length;
  writeFileSync(flag, '');
  await newPool();
  assert.ok(await waitLog(n1, /kernel routes unreadable: .*ip route read refused by the test's wrapper.*; keeping the table read at \S+ \(\d+ routes\); trying again in 1 s/, mark, 20_000), `said: ${n1.log.slice(mark).join(' | ')}`);
  const k = await kernelRoutes();
  assert.ok(k.failing !== null && /refused by the test's wrapper/.test(k.failing.error), JSON.stringify(k));
  assert.is(k.routes, was.routes, 'the last good table in use');
  assert.is(k.readAt, was.readAt, 'read when it was');
  assert.is(await unreadable(), 1);
  podsTalk('while the reads fail');
  // another model while they fail: applied on the table kept
  await newPool();
  assert.ok(await until(async () => (await kernelRoutes()).failures >= 2, 20_000, 200), 'tried again, failing again');
  podsTalk('after a model applied while the reads fail');
  assert.is((await kernelRoutes()).failing !== null, true);
});

test('the read works again: read on the retry, said, status and metrics readable, forwarding on', async () => {
  const n1 = lab!.node('node1');
  const mark = n1.log.length;
  rmSync(flag);
  // the retry waits double up to 30 s: bounded above that
  assert.ok(await waitLog(n1, /kernel routes read again \(\d+ routes\) after \d+ failed reads? since \S+: underlay next hops follow the kernel's table again/, mark, 45_000), `said: ${n1.log.slice(mark).join(' | ')}`);
  const k = await kernelRoutes();
  assert.is(k.failing, null);
  assert.ok(k.failures >= 2, JSON.stringify(k));
  assert.is(await unreadable(), 0);
  podsTalk('after the recovery');
  ok = true;
});

test.run();
