/**
 * MTUs towards a local pod (root, network namespaces; one node, two veth pods, a TAP and a TUN pod).
 *
 * A pod that lowers its own eth0 MTU under its host-side veth's: a frame that fits the veth but not
 * the pod is dropped by the kernel (veth_xmit: the peer's MTU), and the packet socket answers
 * ENOBUFS, as for a full queue. podway retries it a few times, then drops it (`tx_rejected`, in
 * `podway counters`, the port's drops and `podway capture --stage drop`), and the pod's later
 * traffic goes on; before, that one frame stayed at the head of the port's backlog for good and
 * every later frame for the pod queued behind it.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { Lab } from '../../src/lab/lab';
import { controlRequest } from '../../src/dataplane/control-server';
import { guard, teardown, isRoot, until, Collected, nsExec, logTail, startCapture, tsharkRows } from './e2e-kit';

const dir = mkdtempSync(path.join(tmpdir(), 'podway-podmtu-'));
process.once('exit', () => rmSync(dir, { recursive: true, force: true }));

let lab: Lab | null = null;
let ok = false;

type Counters = { reasons: Record<string, number>; ports: { port: string; drops: number; txBacklog?: number; txRejected?: number }[] };
async function counters(): Promise<Counters> {
  return (await controlRequest(lab!.node('node1').control, { cmd: 'counters' }, 5000)) as Counters;
}

const capture = (args: string[], file: string): Promise<Collected> => startCapture(lab!.node('node1').control, args, file, 30_000);
const tshark = (file: string, fields: string[]): string[][] => tsharkRows(file, fields);

test.before(async () => {
  if (!isRoot()) throw new Error('pod MTU end-to-end tests need root (network namespaces)');
  lab = guard(new Lab([{ name: 'node1', subnet: 'a', pods: [{ name: 'web-1', type: 'veth' }, { name: 'web-2', type: 'veth' }, { name: 'tap-1', type: 'tap' }, { name: 'tun-1', type: 'tun' }] }]));
  lab.build();
  await lab.startPodway('node1');
  assert.ok(await until(() => lab!.ping('web-1', lab!.pod('web-2').ip, 1, 56, ['-W', '2']).received === 1, 20_000, 200), 'web-1 reaches web-2 (the path works)');
});

test.after(async () => {
  if (!lab) return;
  if (!ok) console.log(logTail(lab));
  await teardown(lab);
});

test('a frame bigger than the pod\'s own MTU (but not its veth\'s) is dropped and counted, tx_rejected; the pod\'s later traffic goes on', async () => {
  const web2 = lab!.pod('web-2');
  nsExec(web2.ns, ['ip', 'link', 'set', web2.podIf, 'mtu', '1300']);
  const c0 = await counters();
  const file = path.join(dir, 'drop.pcapng');
  const cap = await capture(['--stage', 'drop', 'host', web2.ip, '-n', '1'], file);
  const big = lab!.ping('web-1', web2.ip, 1, 1350, ['-W', '2']);
  assert.is(big.received, 0, 'the 1378-byte echo does not fit web-2\'s eth0');
  const small = lab!.ping('web-1', web2.ip, 3, 56, ['-W', '3', '-i', '0.3']);
  assert.is(small.received, 3, `the small echoes behind it are answered: ${JSON.stringify(await counters())}`);
  assert.ok(await until(async () => ((await counters()).reasons.tx_rejected ?? 0) > (c0.reasons.tx_rejected ?? 0), 10_000), 'counted tx_rejected');
  const c1 = await counters();
  assert.is((c1.reasons.tx_rejected ?? 0) - (c0.reasons.tx_rejected ?? 0), 1, JSON.stringify(c1.reasons));
  const port = c1.ports.find((p) => p.port === web2.ifname)!;
  assert.ok(port.drops >= 1 && (port.txRejected ?? 0) >= 1 && !port.txBacklog, `web-2's port: ${JSON.stringify(port)}`);
  assert.is(await cap.done, 0, cap.err());
  const rows = tshark(file, ['frame.interface_name', 'ip.dst', 'ip.len', 'frame.comment']);
  assert.equal(rows, [[web2.ifname, web2.ip, '1378', 'drop: tx_rejected']]);
  nsExec(web2.ns, ['ip', 'link', 'set', web2.podIf, 'mtu', '1500']);
});

test('a pod\'s veth with a smaller MTU (as the CNI sets it, both ends alike): a bigger DF packet for it gets ICMP fragmentation needed with that MTU, frag_needed, shown by capture at drop as it came', async () => {
  const web1 = lab!.pod('web-1');
  const web2 = lab!.pod('web-2');
  nsExec(web2.ns, ['ip', 'link', 'set', web2.podIf, 'mtu', '1300']);
  nsExec(lab!.node('node1').ns, ['ip', 'link', 'set', web2.ifname, 'mtu', '1300']);
  try {
    const c0 = await counters();
    // the engine reads the port's MTU every few seconds: ask until the answer comes (before it,
    // the kernel refuses the frame at the veth, EMSGSIZE: tx_rejected)
    let out = '';
    const answered = await until(() => {
      out = nsExec(web1.ns, ['sh', '-c', `ip route flush cache; ping -c1 -W1 -M do -s 1350 ${web2.ip} 2>&1; true`]);
      return /mtu = 1300/.test(out);
    }, 20_000, 500);
    assert.ok(answered, `web-1 told the path MTU: ${out}`);
    const c1 = await counters();
    assert.ok((c1.reasons.frag_needed ?? 0) > (c0.reasons.frag_needed ?? 0), 'counted frag_needed');
    const file = path.join(dir, 'frag.pcapng');
    const cap = await capture(['--stage', 'drop', 'host', web2.ip, '-n', '1'], file);
    // (web-1's kernel learned the path MTU: forget it, so the echo goes out again)
    assert.match(nsExec(web1.ns, ['sh', '-c', `ip route flush cache; ping -c1 -W1 -M do -s 1350 ${web2.ip} 2>&1; true`]), /mtu = 1300/);
    assert.is(await cap.done, 0, cap.err());
    const rows = tshark(file, ['frame.interface_name', 'ip.dst', 'ip.len', 'frame.comment']);
    assert.equal(rows, [[web1.ifname, web2.ip, '1378', 'drop: frag_needed']], 'the echo request as it came, not the ICMP error it became');
    assert.is(lab!.ping('web-1', web2.ip, 2, 56, ['-W', '3']).received, 2, 'small packets still pass');
  } finally {
    nsExec(lab!.node('node1').ns, ['ip', 'link', 'set', web2.ifname, 'mtu', '1500']);
    nsExec(web2.ns, ['ip', 'link', 'set', web2.podIf, 'mtu', '1500']);
  }
});

test('a TAP or TUN pod\'s own device with a smaller MTU (in the pod\'s namespace, which podway reads it in): a bigger DF packet for it gets ICMP fragmentation needed with that MTU, frag_needed; one that fits passes', async () => {
  const web1 = lab!.pod('web-1');
  for (const name of ['tap-1', 'tun-1']) {
    const p = lab!.pod(name);
    const was = String(JSON.parse(nsExec(p.ns, ['ip', '-j', 'link', 'show', p.podIf]))[0].mtu);
    assert.is(lab!.ping('web-1', p.ip, 1, 1350, ['-W', '3', '-M', 'do']).received, 1, `${name}: a 1378-byte DF echo fits its MTU ${was}`);
    nsExec(p.ns, ['ip', 'link', 'set', p.podIf, 'mtu', '1300']);
    try {
      const c0 = await counters();
      // read every few seconds: ask until the answer comes (before it, the TAP/TUN takes the
      // packet whole: a tun write is not checked against the device's MTU)
      let out = '';
      const answered = await until(() => {
        out = nsExec(web1.ns, ['sh', '-c', `ip route flush cache; ping -c1 -W1 -M do -s 1350 ${p.ip} 2>&1; true`]);
        return /mtu = 1300/.test(out);
      }, 20_000, 500);
      assert.ok(answered, `${name}: web-1 told the path MTU: ${out}`);
      const c1 = await counters();
      assert.ok((c1.reasons.frag_needed ?? 0) > (c0.reasons.frag_needed ?? 0), `${name}: counted frag_needed`);
      nsExec(web1.ns, ['ip', 'route', 'flush', 'cache']);
      assert.is(lab!.ping('web-1', p.ip, 2, 1272, ['-W', '3', '-M', 'do']).received, 2, `${name}: a DF packet of 1300 bytes passes`);
    } finally {
      nsExec(p.ns, ['ip', 'link', 'set', p.podIf, 'mtu', was]);
      nsExec(web1.ns, ['ip', 'route', 'flush', 'cache']);
    }
  }
  ok = true;
});

test.run();
