/**
 * `podway run` reads Calico's FelixConfiguration (src/cli/felix-settings.ts) from a real datastore:
 * the embedded store, then a real etcd (root, network namespaces). One node with a veth pod; the
 * FelixConfigurations `default` and `node.node1` written through the datastore as calicoctl would.
 * - precedence as Felix's: flag > environment (FELIX_*) > node.node1 > default > built-in default,
 *   each setting's source in `podway status`, and in force in the kernel (the pod guard's
 *   pod_to_host chain for defaultEndpointToHostAction Drop, the NAT table's natOutgoingExclusions);
 * - a change while podway runs applied live (said in the log), the log level too;
 * - node.node1 deleted: back to default's values;
 * - an invalid field: an error naming the resource and field, ignored (the lower layer's value),
 *   counted in status, podway running on;
 * - etcd away at start: podway starts on its model cache (whose FelixConfigurations it has) and
 *   applies the datastore's FelixConfigurations once etcd answers (a change made while it was
 *   stopped), said in the log.
 * Without the feature the settings stay the built-in/environment ones: every status check fails.
 */
import { suite } from 'uvu';
import * as path from 'node:path';
import { existsSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import * as assert from 'uvu/assert';
import { Lab, LabKvStore, LabNodeSpec } from '../../src/lab/lab';
import { applyResource } from '../../src/control/v3-store';
import { kindInfo, resourceKey } from '../../src/control/calico-kinds';
import { controlRequest } from '../../src/dataplane/control-server';
import { guard, teardown, isRoot, logMessage, logTail, nsExec, until, waitLog as waitRaw } from './e2e-kit';
import type { LabNode } from '../../src/lab/lab';

/** A log line whose message matches. */
const waitLog = (n: LabNode, re: RegExp, from: number, ms: number) => waitRaw(n, { test: (l: string) => re.test(logMessage(l)) } as RegExp, from, ms);

const SPEC: LabNodeSpec[] = [
  { name: 'node1', subnet: 'a', pods: [{ name: 'felix-1', type: 'veth' }] },
  { name: 'node2', subnet: 'a', pods: [{ name: 'felix-2', type: 'veth' }] },
];

interface FelixStatus { settings: { field: string; value: string; source: string }[]; origin: string | null; invalid: { resource: string; field: string }[]; invalidSeen: number; unhonoured?: { resource: string; field: string; value: string }[] }
interface Status { felix?: FelixStatus; logLevel?: string; nat?: { natOutgoingExclusions?: string }; guard?: { endpointToHost?: string }; cachedModel?: unknown; ready?: boolean }

const FELIX = kindInfo('FelixConfiguration')!;

/** podway run's environment and flags for every start here: one setting from each local layer. */
const ENV = { FELIX_ALLOWVXLANPACKETSFROMWORKLOADS: 'false', FELIX_ALLOWIPIPPACKETSFROMWORKLOADS: 'false', FELIX_VXLANMTUV6: '1400' };
const ARGS = ['--allow-ipip-from-pods'];

for (const kind of ['embedded', 'etcd'] as const) {
  const t = suite(`felix-config ${kind}`);
  let lab: Lab | null = null;
  let store: LabKvStore | null = null;
  let ok = false;

  const status = async (): Promise<Status> => (await controlRequest(lab!.node('node1').control, { cmd: 'status', starting: true }, 5000)) as Status;
  const setting = (s: Status, field: string) => s.felix?.settings.find((x) => x.field === field);
  const put = (name: string, spec: Record<string, unknown>) => applyResource(store!.kv, { apiVersion: 'projectcalico.org/v3', kind: 'FelixConfiguration', metadata: { name }, spec });
  const remove = (name: string) => store!.kv.delete(resourceKey(FELIX, name));
  /** The pod guard's endpoint-to-host drop chain, as the kernel holds it on node1. */
  const dropsToHost = () => /chain pod_to_host/.test(nsExec(lab!.node('node1').ns, ['nft', 'list', 'table', 'inet', 'podway']));
  /** Waits until every field has the value and source given; the status at the end. */
  const settled = async (want: Record<string, [string, string]>, what: string, boundMs = 20_000): Promise<Status> => {
    let last: Status = {};
    const done = await until(async () => {
      last = await status();
      return Object.entries(want).every(([f, [v, src]]) => setting(last, f)?.value === v && setting(last, f)?.source === src);
    }, boundMs, 100);
    assert.ok(done, `${what}: want ${JSON.stringify(want)}, status says ${JSON.stringify(last.felix)}`);
    return last;
  };

  t.before(async () => {
    if (!isRoot()) throw new Error('e2e tests need root (network namespaces)');
    lab = guard(new Lab(SPEC, { podOffloads: false }));
    lab.build();
    lab.setMode('vxlan');
    store = await lab.openKvStore(kind, `podway-felixcfg-${process.pid}-`);
    await lab.useKvDatastore(store.kv, store.spec);
    await put('default', { logSeverityScreen: 'Debug', natOutgoingExclusions: 'IPPoolsAndHostIPs', defaultEndpointToHostAction: 'Drop', allowVXLANPacketsFromWorkloads: true, bpfEnabled: false });
    await put('node.node1', { natOutgoingExclusions: 'IPPoolsOnly', allowIPIPPacketsFromWorkloads: false });
    // another node's resource: never node1's
    await put('node.node2', { logSeverityScreen: 'Error', defaultEndpointToHostAction: 'Accept' });
    await lab.startPodway('node1', 20_000, ARGS, ENV);
  });

  t.after(async () => {
    if (!lab) return;
    if (!ok) console.log(logTail(lab, 40));
    await teardown(lab);
    await store?.close();
  });

  t('at start: each setting from the highest layer that gives it, in force in the kernel', async () => {
    const s = await settled({
      logSeverityScreen: ['debug', 'FelixConfiguration default'],
      natOutgoingExclusions: ['IPPoolsOnly', 'FelixConfiguration node.node1'],
      defaultEndpointToHostAction: ['Drop', 'FelixConfiguration default'],
      allowVXLANPacketsFromWorkloads: ['false', '$FELIX_ALLOWVXLANPACKETSFROMWORKLOADS'],
      allowIPIPPacketsFromWorkloads: ['true', '--allow-ipip-from-pods'],
    }, 'at start');
    assert.is(s.felix!.origin, 'datastore');
    assert.is(s.logLevel, 'debug', 'the log level from default');
    assert.is(s.nat?.natOutgoingExclusions, 'IPPoolsOnly', 'the NAT table programmed with node.node1\'s value');
    assert.ok(dropsToHost(), 'the pod guard drops pods\' connections to the node (default\'s Drop)');
    assert.equal(s.felix!.invalid, []);
  });

  t('a change while running is applied live, the log level too', async () => {
    const n1 = lab!.node('node1');
    const mark = n1.log.length;
    await put('node.node1', { natOutgoingExclusions: 'IPPoolsAndHostIPs', logSeverityScreen: 'Warning', defaultEndpointToHostAction: 'Return' });
    const s = await settled({
      logSeverityScreen: ['warn', 'FelixConfiguration node.node1'],
      natOutgoingExclusions: ['IPPoolsAndHostIPs', 'FelixConfiguration node.node1'],
      defaultEndpointToHostAction: ['Accept', 'FelixConfiguration node.node1'],
    }, 'after the change');
    assert.ok(await waitLog(n1, /natOutgoingExclusions IPPoolsOnly -> IPPoolsAndHostIPs \(from FelixConfiguration node\.node1\): applied live/, mark, 10_000), 'said in the log');
    assert.is(s.logLevel, 'warn');
    assert.ok(await until(async () => (await status()).nat?.natOutgoingExclusions === 'IPPoolsAndHostIPs', 10_000, 100), 'the NAT table follows');
    assert.ok(await until(() => !dropsToHost(), 10_000, 100), 'the pod guard no longer drops pods\' connections to the node');
  });

  t('node.node1 deleted: default\'s values again', async () => {
    await remove('node.node1');
    const s = await settled({
      logSeverityScreen: ['debug', 'FelixConfiguration default'],
      natOutgoingExclusions: ['IPPoolsAndHostIPs', 'FelixConfiguration default'],
      defaultEndpointToHostAction: ['Drop', 'FelixConfiguration default'],
    }, 'after the delete');
    assert.is(s.logLevel, 'debug');
    assert.ok(await until(() => dropsToHost(), 10_000, 100), 'the pod guard drops again');
  });

  t('an invalid field: named in the log and status, counted, ignored (the lower layer used); podway runs on', async () => {
    const n1 = lab!.node('node1');
    const mark = n1.log.length;
    await put('node.node1', { natOutgoingExclusions: 'Bogus', logSeverityScreen: 'Error' });
    const s = await settled({
      logSeverityScreen: ['error', 'FelixConfiguration node.node1'],
      natOutgoingExclusions: ['IPPoolsAndHostIPs', 'FelixConfiguration default'],
    }, 'the valid field applied, the invalid one ignored');
    assert.ok(await waitLog(n1, /FelixConfiguration node\.node1: field natOutgoingExclusions: "Bogus" is not IPPoolsOnly or IPPoolsAndHostIPs: ignored; IPPoolsAndHostIPs from FelixConfiguration default in force/, mark, 10_000), `the error names the resource and field: ${n1.log.slice(mark).join(' | ')}`);
    assert.equal(s.felix!.invalid.map((i) => `${i.resource} ${i.field}`), ['node.node1 natOutgoingExclusions']);
    assert.is(s.felix!.invalidSeen, 1);
    const text = execFileSync(process.execPath, [path.resolve(__dirname, '..', '..', '..', 'bin', 'podway.js'), 'status', '--control', n1.control], { encoding: 'utf8', timeout: 10_000 });
    assert.match(text, 'felix settings: FelixConfiguration node.node1 field natOutgoingExclusions: "Bogus" is not IPPoolsOnly or IPPoolsAndHostIPs: ignored');
    assert.match(text, 'felix settings: 1 invalid FelixConfiguration field ignored since the start');
    assert.match(text, 'natOutgoingExclusions IPPoolsAndHostIPs (FelixConfiguration default)');
    // fixed: no longer listed, the count stays
    await put('node.node1', { logSeverityScreen: 'Error' });
    assert.ok(await until(async () => (await status()).felix?.invalid.length === 0, 10_000, 100), 'the fixed field is no longer listed');
    assert.is((await status()).felix!.invalidSeen, 1);
    assert.ok(n1.proc && n1.proc.exitCode === null, 'podway runs on');
  });

  t('the tunnel MTUs are settings (vxlanMTU; FELIX_VXLANMTUV6), nothing listed as not honoured; vxlanPort/vxlanVNI changed while running: said to take effect at the next start', async () => {
    const n1 = lab!.node('node1');
    const podwayStatus = () => execFileSync(process.execPath, [path.resolve(__dirname, '..', '..', '..', 'bin', 'podway.js'), 'status', '--control', n1.control], { encoding: 'utf8', timeout: 10_000 });
    // the environment's, from the start
    assert.match(podwayStatus(), 'vxlanMTUV6 1400 ($FELIX_VXLANMTUV6)');
    const mark = n1.log.length;
    // as calicoctl writes it (the Calico-migration review's resource)
    await put('node.node1', { logSeverityScreen: 'Error', vxlanPort: 8472, vxlanVNI: 1, vxlanMTU: 1300 });
    const listed = () => (async () => ((await status()).felix?.unhonoured ?? []).map((u) => `${u.resource} ${u.field} ${u.value}`).sort().join(','))();
    // the MTU: a setting in force (the log is at Error here: its "applied live" is a warning; e2e/felix-mtu)
    await settled({ vxlanMTU: ['1300', 'FelixConfiguration node.node1'] }, 'the MTU applied');
    assert.is(await listed(), '', 'nothing listed as not honoured');
    assert.ok(await waitLog(n1, /vxlanPort 8472 \(from FelixConfiguration node\.node1\) takes effect at the next podway run start .*; 4789 in force until then/, mark, 10_000), `the port: ${n1.log.slice(mark).join(' | ')}`);
    assert.ok(await waitLog(n1, /vxlanVNI 1 \(from FelixConfiguration node\.node1\) takes effect at the next podway run start/, mark, 10_000), 'the VNI');
    const text = podwayStatus();
    assert.match(text, 'felix settings: vxlanPort 8472 (from FelixConfiguration node.node1) takes effect at the next podway run start');
    assert.match(text, 'vxlanPort 4789 (built-in default)');
    // podway's own values: nothing said
    await put('node.node1', { logSeverityScreen: 'Error', vxlanPort: 4789, vxlanVNI: 4096 });
    assert.ok(await until(async () => ((await status()) as { felix?: { vxlanPending?: unknown[] } }).felix?.vxlanPending?.length === 0, 10_000, 100), 'nothing pending with podway\'s own values');
    await put('node.node1', { logSeverityScreen: 'Error' });
  });

  if (kind === 'etcd') {
    t('etcd away at start: podway starts on its model cache, then applies the datastore\'s FelixConfigurations when etcd answers', async () => {
      const n1 = lab!.node('node1');
      assert.ok(await until(() => existsSync(lab!.modelCachePath('node1')), 15_000, 100), 'the model cache was written');
      // the cache written with the last model (node.node1: logSeverityScreen Error)
      await new Promise((r) => setTimeout(r, 11_000)); // the cache is written at most every 10 s
      assert.is(await lab!.stopPodway('node1'), 0, 'stopped');
      await put('node.node1', { logSeverityScreen: 'Info', defaultEndpointToHostAction: 'Accept' });
      const etcd = await lab!.startEtcd();
      await etcd.kill();
      const mark = n1.log.length;
      await lab!.startPodway('node1', 20_000, ARGS, ENV);
      const s = await status();
      assert.ok(s.cachedModel, `on the model cache: ${JSON.stringify(s)}`);
      assert.is(s.felix!.origin, 'model cache');
      assert.is(setting(s, 'logSeverityScreen')?.value, 'error', 'the cache\'s FelixConfiguration in force while etcd is away');
      assert.ok(dropsToHost(), 'default\'s Drop from the cache');
      await etcd.start();
      // podway's next connection (its gRPC backoff: up to 5 s), then its whole datastore start
      // (registration, first model) on a loaded host: 20 s ran out at load 48
      await settled({
        logSeverityScreen: ['info', 'FelixConfiguration node.node1'],
        defaultEndpointToHostAction: ['Accept', 'FelixConfiguration node.node1'],
      }, 'once etcd answers', 60_000);
      assert.is((await status()).felix!.origin, 'datastore');
      assert.ok(await waitLog(n1, /logSeverityScreen error -> info \(from FelixConfiguration node\.node1\): applied live/, mark, 10_000), `said: ${n1.log.slice(mark).join(' | ')}`);
      assert.ok(await until(() => !dropsToHost(), 10_000, 100), 'the pod guard follows');
    });
  }

  t('done', () => {
    ok = true;
  });
  t.run();
}
