/**
 * The plugin with a running dataplane (root, network namespaces): `podway run --datastore
 * embedded:DIR` in a node namespace (underlay veth to an uplink namespace), two pods created by
 * the plugin's ADD on that node, ping between them through podway, and the time from ADD's return
 * to the first packet forwarded to the new pod (the watch debounce + model apply + port open).
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { readFileSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { CniHarness, RunningPodway } from './harness';
import { controlRequest } from '../../src/dataplane/control-server';
import { Ipam } from '../../src/control/ipam';
import { isRoot, sh, sleep } from '../helpers/netns';
import { pingArgs, parsePing } from '../../src/lab/lab';
import { until } from '../helpers/until';


test('pods made by the plugin\'s ADD ping each other through a running podway; ADD return -> first forwarded packet', async () => {
  if (!isRoot()) throw new Error('this test needs root (network namespaces)');
  const h = new CniHarness();
  let podway: RunningPodway | null = null;
  let log: string[] = [];
  try {
    await h.setup({ cidr: '10.249.0.0/24', blockSize: 26 });
    // underlay: node eth0 10.99.0.1/24 <-> uplink 10.99.0.254/24
    const uplink = h.addUplink();
    uplink.ip('addr', 'add', '10.99.0.254/24', 'dev', 'eth0');
    h.node.ip('route', 'add', 'default', 'via', '10.99.0.254');

    const control = h.control;
    podway = h.startPodway();
    log = podway.log;
    await podway.ready();
    // STATUS: ADD can be served now; a delegated IPAM plugin that speaks 1.1.0 is asked too.
    const st = await h.call({ command: 'STATUS' });
    assert.is(st.exitCode, 0, st.stdout);
    assert.is(st.stdout, '');
    const recDir = path.join(h.dir, 'rec-ipam');
    const rec = h.writeRecordingIpam(recDir);
    const fwdOk = await h.call({ command: 'STATUS', cniPath: `${h.binDir}:${recDir}`, extra: { ipam: { type: rec } } });
    assert.is(fwdOk.exitCode, 0, fwdOk.stdout);
    writeFileSync(path.join(recDir, 'down'), '');
    const fwdDown = await h.call({ command: 'STATUS', cniPath: `${h.binDir}:${recDir}`, extra: { ipam: { type: rec } } });
    assert.is(fwdDown.json?.code, 50, fwdDown.stdout);
    assert.match(fwdDown.json.msg, 'its pool is offline');
    assert.equal(readFileSync(path.join(recDir, 'calls.log'), 'utf8').trim().split('\n'), ['VERSION', 'STATUS', 'VERSION', 'STATUS']);

    const podA = h.pod('a');
    const podB = h.pod('b');
    const addA = await h.add(podA, 'cnie2ea', { args: 'K8S_POD_NAMESPACE=default;K8S_POD_NAME=pod-a' });
    const hostA = addA.json.interfaces[0].name as string;
    const attachedA = await until(async () => ((await controlRequest(control, { cmd: 'endpoints' })) as { interface: string; state: string }[]).some((e) => e.interface === hostA && e.state === 'attached'), 15_000);
    assert.ok(attachedA, `podway attached ${hostA}: ${log.slice(-5).join(' | ')}`);

    // pod B: ping from A starts the moment ADD returns; the first reply's timestamp (ping -D) is
    // the first packet forwarded to B and back
    const addB = await h.add(podB, 'cnie2eb', { args: 'K8S_POD_NAMESPACE=default;K8S_POD_NAME=pod-b' });
    const ipB = (addB.json.ips[0].address as string).split('/')[0];
    const out = sh('ip', ['netns', 'exec', podA.name, 'ping', '-D', '-n', '-i', '0.005', '-c', '1', '-w', '15', ipB], { allowFail: true, timeoutMs: 20_000 });
    const first = /^\[(\d+\.\d+)\] \d+ bytes from/m.exec(out);
    assert.ok(first, `A -> B answered within 15 s: ${out.slice(-300)} | ${log.slice(-5).join(' | ')}`);
    const addToFirstMs = Math.round(Number(first![1]) * 1000 - addB.endedAt);
    console.log(`  ADD of pod B took ${addB.ms} ms; ADD return -> first forwarded packet (reply) ${addToFirstMs} ms`);
    assert.ok(addToFirstMs >= 0 && addToFirstMs < 15_000, String(addToFirstMs));

    // every reply awaited, counted per request (Lab's pingArgs: ping -c alone gives the last reply 200 ms)
    const ping = sh('ip', ['netns', 'exec', podA.name, 'ping', ...pingArgs(5, ['-W', '2'], { intervalS: 0.2 }), ipB], { allowFail: true, timeoutMs: 20_000 });
    assert.is(parsePing(ping, 5).received, 5, ping);
    const ipA = (addA.json.ips[0].address as string).split('/')[0];
    const back = sh('ip', ['netns', 'exec', podB.name, 'ping', ...pingArgs(3, ['-W', '2'], { intervalS: 0.2 }), ipA], { allowFail: true, timeoutMs: 20_000 });
    assert.is(parsePing(back, 3).received, 3, back);

    // tap and tun pods made by the plugin: podway opens the devices from the pods' namespaces
    const podT = h.pod('tap');
    const podU = h.pod('tun');
    const addT = await h.add(podT, 'cnie2et', { args: 'K8S_POD_NAMESPACE=default;K8S_POD_NAME=pod-t', extra: { interfaceType: 'tap' } });
    const addU = await h.add(podU, 'cnie2eu', { args: 'K8S_POD_NAMESPACE=default;K8S_POD_NAME=pod-u', extra: { interfaceType: 'tun' } });
    const attachedTU = await until(async () => ((await controlRequest(control, { cmd: 'endpoints' })) as { state: string }[]).filter((e) => e.state === 'attached').length === 4, 15_000);
    assert.ok(attachedTU, `podway attached the tap and tun pods: ${log.slice(-5).join(' | ')}`);
    for (const [what, add] of [['tap', addT], ['tun', addU]] as const) {
      const ip = (add.json.ips[0].address as string).split('/')[0];
      const p = sh('ip', ['netns', 'exec', podA.name, 'ping', ...pingArgs(3, ['-W', '2'], { intervalS: 0.2 }), ip], { allowFail: true, timeoutMs: 20_000 });
      assert.is(parsePing(p, 3).received, 3, `veth pod A -> ${what} pod ${ip}: ${p} | ${log.slice(-5).join(' | ')}`);
    }

    // DEL all: podway drops the endpoints, IPAM is empty of pod addresses
    for (const [pod, id, name] of [[podA, 'cnie2ea', 'pod-a'], [podB, 'cnie2eb', 'pod-b'], [podT, 'cnie2et', 'pod-t'], [podU, 'cnie2eu', 'pod-u']] as const) {
      const type = id === 'cnie2et' ? 'tap' : id === 'cnie2eu' ? 'tun' : 'veth';
      const d = await h.call({ command: 'DEL', containerId: id, netns: pod.path, ifname: 'eth0', args: `K8S_POD_NAMESPACE=default;K8S_POD_NAME=${name}`, extra: { interfaceType: type } });
      assert.is(d.exitCode, 0, d.stdout);
    }
    const detached = await until(async () => ((await controlRequest(control, { cmd: 'endpoints' })) as unknown[]).length === 0, 15_000);
    assert.ok(detached, 'podway dropped every endpoint');
    // the log names each pod as it comes and goes (review: none did), and a pod's deletion is no
    // fault: its veth going first is said once at info, not followed by "cannot attach ...; retrying"
    const said = (re: RegExp) => log.some((l) => re.test(l));
    assert.ok(said(new RegExp(`endpoint [^ ]*pod--a[^ ]*: attached ${hostA} \\(${ipA.replace(/\./g, '\\.')}\\)`)), `attach of pod-a logged: ${log.join(' | ')}`);
    assert.ok(said(new RegExp(`endpoint [^ ]*pod--a[^ ]*: deleted( \\(interface ${hostA} was already gone\\)|; interface ${hostA} detached)`)), `deletion of pod-a logged: ${log.join(' | ')}`);
    assert.not.ok(said(new RegExp(`cannot attach ${hostA}`)), `no "cannot attach" for a pod being deleted: ${log.filter((l) => l.includes(hostA)).join(' | ')}`);
    assert.equal(await new Ipam(h.kv).check(), []);
    assert.ok((await h.handles()).every((x) => !x.startsWith('podway.')), 'no pod handles left');
    // podway stopped: STATUS says ADD cannot be served (its pods would not be forwarded)
    await podway.stop();
    const gone = await h.call({ command: 'STATUS' });
    assert.is(gone.json?.code, 50, gone.stdout);
    assert.match(gone.json.msg, `does not answer on ${control}`);
  } catch (e) {
    console.log(log.slice(-20).join('\n'));
    throw e;
  } finally {
    await podway?.stop();
    await h.cleanup();
  }
});

test.run();
