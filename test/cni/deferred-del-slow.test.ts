/**
 * A DEL that finds etcd connected but too slow to answer (KvSlowError: etcd busy or stopped, or the
 * host short of CPU) is told to the runtime as a failure (code 11: kubelet retries it), and its
 * release is spooled all the same (src/cni/plugin.ts delAttachment), as a locked datastore's is:
 * podman never retries a DEL, and before, nothing was spooled, so the pod's WorkloadEndpoint and
 * addresses stayed in etcd for good, its TAP/TUN endpoint attached in `podway run` (found by the
 * pod-churn soak, bench/soak/churn.ts: one pod of 174 left on a loaded machine). A retried DEL
 * releases it and drops the entry; without a retry, `podway run` replays it. A real etcd in the
 * node's namespace, reached through a small proxy there (a node process of this test, stopped by
 * PID) that, while a flag file exists, passes etcd's HTTP/2 SETTINGS, PING and WINDOW_UPDATE
 * frames and holds back every answer: connected, never answering in time, as a busy etcd (a
 * stopped etcd is "unreachable" to a new plugin process: no HTTP/2 connection is made at all).
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawn } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { withEtcdNode } from './harness';
import { Ipam } from '../../src/control/ipam';
import { workloadEndpointName } from '../../src/cni/names';
import { pendingFileName } from '../../src/cni/pending-del';
import { isRoot } from '../helpers/netns';
import { until } from '../helpers/until';

if (!isRoot()) throw new Error('the CNI plugin tests need root (network namespaces)');

const cid = (n: string): string => `c${n}${process.pid}${Math.random().toString(16).slice(2, 8)}`;
const WEPS = '/calico/resources/v3/projectcalico.org/workloadendpoints/';
const PROXY_PORT = 23791;

/** The stalling proxy (see the file comment): argv port, target port, flag file. */
const PROXY = `
const net = require('net'); const fs = require('fs');
const [port, target, flag] = process.argv.slice(2);
net.createServer((c) => {
  const u = net.connect(Number(target), '127.0.0.1');
  let held = Buffer.alloc(0);
  c.on('data', (d) => u.write(d));
  u.on('data', (d) => {
    if (!fs.existsSync(flag) && held.length === 0) return void c.write(d);
    held = Buffer.concat([held, d]);
    while (held.length >= 9) {
      const len = held.readUIntBE(0, 3);
      if (held.length < 9 + len) break;
      const frame = held.subarray(0, 9 + len);
      held = held.subarray(9 + len);
      if (frame[3] === 4 || frame[3] === 6 || frame[3] === 8) c.write(frame);
    }
  });
  for (const [a, b] of [[c, u], [u, c]]) { a.on('error', () => b.destroy()); a.on('close', () => b.destroy()); }
}).listen(Number(port), '127.0.0.1', () => console.log('ready'));
`;

test('DEL while etcd is connected but does not answer: fails with code 11 and spools the release; a retry releases and drops the entry, podway run replays one never retried', async () => {
  await withEtcdNode({ pool: 'slowdel-pool', cidr: '10.250.29.0/24' }, async (lab) => {
    const { h, kv } = lab;
    const flag = path.join(h.dir, 'stall');
    const script = path.join(h.dir, 'proxy.js');
    writeFileSync(script, PROXY);
    const proxy = spawn('ip', ['netns', 'exec', h.node.name, process.execPath, script, String(PROXY_PORT), '2379', flag], { stdio: ['ignore', 'pipe', 'inherit'] });
    try {
    await new Promise<void>((res, rej) => {
      proxy.stdout!.once('data', () => res());
      proxy.once('exit', (c) => rej(new Error(`the proxy exited (${c})`)));
    });
    const datastore = `etcd:http://127.0.0.1:${PROXY_PORT}`;
    const extra = { datastore, datastoreTimeoutMs: 1000 };
    const args = (pod: string) => `IgnoreUnknown=1;K8S_POD_NAMESPACE=shop;K8S_POD_NAME=${pod}`;
    const k8s = (pod: string) => ({ orchestrator: 'k8s' as const, namespace: 'shop', pod });
    const wepKey = (pod: string, id: string) => `${WEPS}shop/${workloadEndpointName(h.nodeName, k8s(pod), id, 'eth0')}`;
    const entryFile = (id: string) => path.join(h.pendingDelDir, pendingFileName('podway', id, 'eth0'));

    // R: its DEL retried once etcd answers again (kubelet); P: never retried (podman)
    const [podR, podP] = [h.pod('slowr'), h.pod('slowp')];
    const [idR, idP] = [cid('r'), cid('p')];
    await h.add(podR, idR, { extra, args: args('sr') });
    await h.add(podP, idP, { extra, args: args('sp') });
    assert.is(h.caliLinks().length, 2);

    writeFileSync(flag, '');
    try {
      for (const [id, pod] of [[idR, 'sr'], [idP, 'sp']] as const) {
        const d = await h.call({ command: 'DEL', containerId: id, netns: (id === idR ? podR : podP).path, ifname: 'eth0', extra, args: args(pod) });
        assert.is.not(d.exitCode, 0, `DEL with etcd stopped is told as failed (the runtime may retry): ${d.stdout} ${d.stderr}`);
        assert.is(d.json?.code, 11, d.stdout);
        assert.match(d.json?.msg ?? '', /too slow/, d.stdout);
        assert.match(d.stderr, 'is deferred to', d.stderr);
        assert.ok(existsSync(entryFile(id)), `the release of ${id} spooled: ${readdirSync(h.pendingDelDir).join(' ')} | ${d.stderr}`);
        assert.match(JSON.parse(readFileSync(entryFile(id), 'utf8')).reason, /too slow/);
      }
    } finally {
      rmSync(flag, { force: true });
    }
    assert.equal(h.caliLinks(), [], 'the pods\' interfaces (and host veths) removed by the DELs');

    // the runtime's retry: released in etcd, its entry dropped
    const again = await h.call({ command: 'DEL', containerId: idR, ifname: 'eth0', extra, args: args('sr') });
    assert.is(again.exitCode, 0, `${again.stdout} ${again.stderr}`);
    assert.not.ok(existsSync(entryFile(idR)), 'the retried DEL dropped its entry');
    assert.is(await kv.get(wepKey('sr', idR)), null);
    assert.is(await kv.get(`/calico/ipam/v2/handle/podway.${idR}`), null);

    // never retried: podway run replays it
    assert.ok(await kv.get(wepKey('sp', idP)), 'P\'s endpoint still in etcd until the replay');
    lab.podway = h.startPodway(['--model-cache', 'none'], datastore);
    await lab.podway.ready();
    const drained = await until(() => !existsSync(entryFile(idP)) && lab.podway!.log.some((l) => l.includes('deferred CNI DEL replayed')), 60_000);
    assert.ok(drained, `podway run replayed the spool: ${readdirSync(h.pendingDelDir).join(' ')} | ${lab.podway.log.slice(-5).join(' | ')}`);
    assert.is(await kv.get(wepKey('sp', idP)), null, 'P\'s endpoint deleted');
    assert.is(await kv.get(`/calico/ipam/v2/handle/podway.${idP}`), null, 'P\'s handle released');
    assert.equal(await new Ipam(kv).check(), []);
    } finally {
      await lab.podway?.stop();
      lab.podway = null;
      if (proxy.exitCode === null && proxy.signalCode === null) proxy.kill('SIGKILL');
    }
  });
});

test.run();
