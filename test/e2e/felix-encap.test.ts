/**
 * Felix's allowVXLANPacketsFromWorkloads / allowIPIPPacketsFromWorkloads taken from the
 * FelixConfiguration resources (`default`, then `node.node1` over it) by a running `podway run`
 * (root, network namespaces): a pod's own VXLAN packets (UDP to port 4789) and IP-in-IP packets
 * (protocol 4, from a raw socket) sent to another pod of the node are dropped and counted
 * `encap_from_pod` while the setting in force is false, and arrive while it is true; each change
 * of the resources is applied live (said in the log), and only as settings: the engine's model is
 * not applied again (its modelsApplied stays). The embedded store with one forwarding thread, then
 * a real etcd with two (the change reaches the second worker too).
 *
 * Each round: the sender sends N of each, then one datagram to port 4790 (never dropped) last; the
 * receiver ends once that one arrives (the same pod's packets, in order through podway), so what
 * was dropped is known without waiting: the count of each that arrived, and podway's counters.
 */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { Lab, LabKvStore, LabNodeSpec } from '../../src/lab/lab';
import { applyResource } from '../../src/control/v3-store';
import { kindInfo, resourceKey } from '../../src/control/calico-kinds';
import { controlRequest } from '../../src/dataplane/control-server';
import { guard, teardown, isRoot, logMessage, logTail, status as podwayStatus, until, waitLog as waitRaw } from './e2e-kit';
import { Bg, py, pyJson, reasons, delta, PY_START_MS } from './tools';
import type { LabNode } from '../../src/lab/lab';

const waitLog = (n: LabNode, re: RegExp, from: number, ms: number) => waitRaw(n, { test: (l: string) => re.test(logMessage(l)) } as RegExp, from, ms);

const SPEC: LabNodeSpec[] = [
  { name: 'node1', subnet: 'a', pods: [{ name: 'encap-a', type: 'veth' }, { name: 'encap-b', type: 'veth' }] },
];
const FELIX = kindInfo('FelixConfiguration')!;
const N = 5;
const MARK = `pw-felix2-${process.pid}`;

/** In the receiving pod: UDP 4789 and 4790, a raw socket for protocol 4; counts the datagrams
 * carrying MARK until the one to port 4790 arrives (or the bound), then what is queued. */
const RECEIVER = String.raw`
import socket, select, sys, json, time
mark, tmo = sys.argv[1].encode(), float(sys.argv[2])
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); u.bind(('0.0.0.0', 4789))
e = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); e.bind(('0.0.0.0', 4790))
r = socket.socket(socket.AF_INET, socket.SOCK_RAW, 4)
got = {'vxlan': 0, 'ipip': 0, 'end': False}
def take(s):
    d = s.recv(65535)
    if mark not in d: return
    if s is u: got['vxlan'] += 1
    elif s is r: got['ipip'] += 1
    else: got['end'] = True
print('listening', flush=True)
end = time.time() + tmo
while not got['end'] and time.time() < end:
    rd, _, _ = select.select([u, e, r], [], [], max(0.01, end - time.time()))
    for s in rd: take(s)
for s in (u, r):
    s.setblocking(False)
    while True:
        try: take(s)
        except BlockingIOError: break
print(json.dumps(got), flush=True)
`;

/** In the sending pod: N VXLAN datagrams (an 8-byte VXLAN header, VNI 4096, then MARK) to DST:4789,
 * N IP-in-IP packets (an inner IPv4/UDP header, then MARK), then one UDP datagram to DST:4790. */
const SENDER = String.raw`
import socket, sys, struct, json, time
dst, mark, n = sys.argv[1], sys.argv[2].encode(), int(sys.argv[3])
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
r = socket.socket(socket.AF_INET, socket.SOCK_RAW, 4)
vx = b'\x08\x00\x00\x00\x00\x10\x00\x00' + mark
body = struct.pack('!HHHH', 5000, 9999, 8 + len(mark), 0) + mark
inner = struct.pack('!BBHHHBBH4s4s', 0x45, 0, 20 + len(body), 1, 0, 64, 17, 0, socket.inet_aton('10.255.0.1'), socket.inet_aton('10.255.0.2')) + body
for k in range(n):
    u.sendto(vx, (dst, 4789))
    r.sendto(inner, (dst, 0))
    time.sleep(0.01)
u.sendto(b'end ' + mark, (dst, 4790))
print(json.dumps({'sent': n}))
`;

interface Round { vxlan: number; ipip: number; end: boolean; dropped: number; modelsApplied: number }

for (const [kind, workers] of [['embedded', 1], ['etcd', 2]] as const) {
  const t = suite(`felix-encap ${kind}, ${workers} worker${workers > 1 ? 's' : ''}`);
  let lab: Lab | null = null;
  let store: LabKvStore | null = null;
  let ok = false;
  const n1 = () => lab!.node('node1');
  const put = (name: string, spec: Record<string, unknown>) => applyResource(store!.kv, { apiVersion: 'projectcalico.org/v3', kind: 'FelixConfiguration', metadata: { name }, spec });
  const settings = async () => ((await controlRequest(n1().control, { cmd: 'status' }, 5000)) as { felix: { settings: { field: string; value: string; source: string }[] } }).felix.settings;
  /** Waits until the two settings have the values and source given. */
  const settled = async (vxlan: string, ipip: string, source: string) => {
    let last: unknown = null;
    const done = await until(async () => {
      const s = await settings();
      last = s;
      const v = s.find((x) => x.field === 'allowVXLANPacketsFromWorkloads');
      const i = s.find((x) => x.field === 'allowIPIPPacketsFromWorkloads');
      return v?.value === vxlan && i?.value === ipip && (v.source === source || i.source === source);
    }, 20_000, 100);
    assert.ok(done, `want VXLAN ${vxlan}, IPIP ${ipip} from ${source}: status says ${JSON.stringify(last)}`);
  };
  /** One round from pod a to pod b: what arrived, what podway counted encap_from_pod. */
  const round = async (): Promise<Round> => {
    const [a, b] = n1().pods;
    const before = await reasons(n1());
    const [c, args] = py(b.ns, RECEIVER, [MARK, 20]);
    const rx = new Bg(c, args);
    try {
      await rx.waitFor('listening', PY_START_MS);
      await pyJson(a.ns, SENDER, [b.ip, MARK, N], PY_START_MS);
      await rx.finish(30_000);
    } finally {
      if (rx.proc.exitCode === null) rx.proc.kill('SIGKILL');
    }
    const got = JSON.parse(rx.stdout.trim().split('\n').pop() ?? '{}') as { vxlan: number; ipip: number; end: boolean };
    assert.ok(got.end, `the datagram to port 4790 arrived: ${rx.stdout} ${rx.stderr}`);
    const after = await reasons(n1());
    return { ...got, dropped: delta(before, after, 'encap_from_pod'), modelsApplied: (await podwayStatus(n1())).modelsApplied };
  };

  t.before(async () => {
    if (!isRoot()) throw new Error('e2e tests need root (network namespaces)');
    lab = guard(new Lab(SPEC, { podOffloads: false }));
    lab.build();
    lab.setMode('vxlan');
    store = await lab.openKvStore(kind, `podway-felix2-${process.pid}-`);
    await lab.useKvDatastore(store.kv, store.spec);
    await lab.startPodway('node1', 20_000, ['--workers', String(workers)]);
  });

  t.after(async () => {
    if (!lab) return;
    if (!ok) console.log(logTail(lab, 40));
    await teardown(lab);
    await store?.close();
  });

  let applied = 0;

  t('no FelixConfiguration: both built-in false; the pod\'s VXLAN and IP-in-IP packets are dropped, counted encap_from_pod', async () => {
    await settled('false', 'false', 'built-in default');
    const r = await round();
    assert.equal([r.vxlan, r.ipip, r.dropped], [0, 0, 2 * N], `arrived VXLAN ${r.vxlan}, IPIP ${r.ipip}; counted ${r.dropped}`);
    applied = r.modelsApplied;
  });

  t('FelixConfiguration default allowVXLANPacketsFromWorkloads: true, applied live (settings only): VXLAN arrives, IP-in-IP still dropped', async () => {
    const mark = n1().log.length;
    await put('default', { allowVXLANPacketsFromWorkloads: true });
    await settled('true', 'false', 'FelixConfiguration default');
    assert.ok(await waitLog(n1(), /allowVXLANPacketsFromWorkloads false -> true \(from FelixConfiguration default\): applied live/, mark, 10_000), 'said in the log');
    assert.ok(await waitLog(n1(), /FelixConfiguration settings only, the forwarding model unchanged/, mark, 10_000), `applied as settings alone: ${n1().log.slice(mark).join(' | ')}`);
    const r = await round();
    assert.equal([r.vxlan, r.ipip, r.dropped], [N, 0, N], `arrived VXLAN ${r.vxlan}, IPIP ${r.ipip}; counted ${r.dropped}`);
    assert.is(r.modelsApplied, applied, 'the engine\'s model was not applied again for a FelixConfiguration change');
  });

  t('FelixConfiguration node.node1 over default: IP-in-IP allowed, VXLAN refused again', async () => {
    const mark = n1().log.length;
    await put('node.node1', { allowIPIPPacketsFromWorkloads: 'true', allowVXLANPacketsFromWorkloads: false });
    await settled('false', 'true', 'FelixConfiguration node.node1');
    assert.ok(await waitLog(n1(), /allowIPIPPacketsFromWorkloads false -> true \(from FelixConfiguration node\.node1\): applied live/, mark, 10_000), 'said in the log');
    const r = await round();
    assert.equal([r.vxlan, r.ipip, r.dropped], [0, N, N], `arrived VXLAN ${r.vxlan}, IPIP ${r.ipip}; counted ${r.dropped}`);
    assert.is(r.modelsApplied, applied, 'not applied again');
  });

  t('node.node1 deleted: default\'s again (VXLAN arrives, IP-in-IP dropped)', async () => {
    await store!.kv.delete(resourceKey(FELIX, 'node.node1'));
    await settled('true', 'false', 'FelixConfiguration default');
    const r = await round();
    assert.equal([r.vxlan, r.ipip, r.dropped], [N, 0, N], `arrived VXLAN ${r.vxlan}, IPIP ${r.ipip}; counted ${r.dropped}`);
  });

  t('default deleted, then a pool added: the settings back to the built-in ones, the new pool\'s model applied whole', async () => {
    const before = (await podwayStatus(n1())).modelsApplied;
    await store!.kv.delete(resourceKey(FELIX, 'default'));
    await applyResource(store!.kv, { apiVersion: 'projectcalico.org/v3', kind: 'IPPool', metadata: { name: `felix2-${process.pid}` }, spec: { cidr: '10.250.0.0/24', vxlanMode: 'Always' } });
    await settled('false', 'false', 'built-in default');
    assert.ok(await until(async () => (await podwayStatus(n1())).modelsApplied > before, 10_000, 100), 'the new pool\'s model applied');
    const r = await round();
    assert.equal([r.vxlan, r.ipip, r.dropped], [0, 0, 2 * N], `arrived VXLAN ${r.vxlan}, IPIP ${r.ipip}; counted ${r.dropped}`);
  });

  t('done', () => {
    ok = true;
  });
  t.run();
}
