// The underlay's MTU bounds what podway hands to the node's routing (tx4/tx6: bigger is answered
// with ICMP fragmentation needed / Packet Too Big). An MTU change of the interface between models
// is followed (the engine reads it every few seconds), not only at the next model. Root, in a
// private network namespace of the test's own.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { runPrivateNetns, sh, sleep, waitFor } from '../helpers/netns';
import { Engine } from '../../src/dataplane/engine';
import { MemoryIO } from '../../src/dataplane/memory-io';
import { clusterModel, fixIpChecksum, frame, u16 } from './helpers';

runPrivateNetns();

const UL = 'ul0';
let engine: Engine | null = null;

test.before(() => {
  sh('ip', ['link', 'set', 'lo', 'up']);
  sh('ip', ['link', 'add', UL, 'type', 'veth', 'peer', 'name', `${UL}p`]);
  sh('ip', ['addr', 'add', '10.99.0.1/24', 'dev', UL]);
  sh('ip', ['link', 'set', UL, 'up']);
  for (const pod of ['caliA', 'caliB']) sh('ip', ['link', 'add', pod, 'type', 'veth', 'peer', 'name', `${pod}p`]);
});

test.after(() => {
  engine?.stop();
});

test('the underlay interface\'s MTU lowered and raised between models: tx4/tx6 bounds follow it', async () => {
  engine = new Engine({ io: new MemoryIO(), manageHost: false, ringCheckMs: 0, neighbor: { retransMs: 50 } });
  engine.apply(clusterModel('node1'));
  const pipe = (engine as unknown as { pipe: { tx4Mtu: number; v6: { tx6Mtu: number } } }).pipe;
  const ulMtu = () => engine!.status().underlay?.mtu;
  assert.is(ulMtu(), 1500);
  assert.is(pipe.tx4Mtu, 1500);
  sh('ip', ['link', 'set', UL, 'mtu', '1400']);
  assert.ok(await waitFor(() => pipe.tx4Mtu === 1400, 20_000, 50), `tx4 bound follows the lowered MTU (now ${pipe.tx4Mtu})`);
  assert.is(pipe.v6.tx6Mtu, 1400, 'tx6 too');
  assert.is(ulMtu(), 1400, 'podway status shows it');
  sh('ip', ['link', 'set', UL, 'mtu', '9000']);
  // raised above the model's underlay MTU (1500 here): the smaller still bounds
  assert.ok(await waitFor(() => ulMtu() === 9000, 20_000, 50), 'the raised MTU is read');
  assert.is(pipe.tx4Mtu, 1500, 'bounded by the model\'s underlay MTU');
});

test('a veth pod\'s host-end MTU changed while it runs: the pipeline\'s check follows it (read every few seconds, every port in one linkMtus call)', async () => {
  const e = new Engine({ io: new MemoryIO(), manageHost: false, ringCheckMs: 0, neighbor: { retransMs: 50 } });
  try {
    e.apply(clusterModel('node1'));
    const inner = e as unknown as { pipe: { portMtu: Uint16Array }; endpoints: Map<string, { port: number }> };
    const port = inner.endpoints.get('caliA')!.port;
    assert.is(inner.pipe.portMtu[port], 1500, 'read when attached');
    sh('ip', ['link', 'set', 'caliA', 'mtu', '1300']);
    assert.ok(await waitFor(() => inner.pipe.portMtu[port] === 1300, 20_000, 50), `follows the lowered MTU (now ${inner.pipe.portMtu[port]})`);
    sh('ip', ['link', 'set', 'caliA', 'mtu', '1500']);
    assert.ok(await waitFor(() => inner.pipe.portMtu[port] === 1500, 20_000, 50), `and the raised one (now ${inner.pipe.portMtu[port]})`);
  } finally {
    e.stop();
  }
});


test('a veth pod\'s host-end MTU raised: a packet bigger than the old one is delivered at once (its port\'s MTU read again for it), not answered with the old MTU until the next poll', async () => {
  const io = new MemoryIO();
  const e = new Engine({ io, manageHost: false, ringCheckMs: 0, neighbor: { retransMs: 50 } });
  sh('ip', ['link', 'set', 'caliB', 'mtu', '1300']);
  try {
    e.apply(clusterModel('node1'));
    for (const pod of ['caliA', 'caliB']) io.take(io.portNamed(pod)); // the start's gateway announcements (Engine.announceGateway)
    const inner = e as unknown as { pipe: { portMtu: Uint16Array }; mtuCheckedAt: number };
    // the poll's first read (at the first timer tick) done: the next is 5 s away
    assert.ok(await waitFor(() => inner.mtuCheckedAt > 0, 10_000, 10), 'first poll');
    const a = io.portNamed('caliA');
    const b = io.portNamed('caliB');
    // a_big_df (1451 bytes, DF) for pod B
    const big = frame('a_big_df');
    big.set([10, 244, 0, 2], 30);
    fixIpChecksum(big, 14);
    assert.is(u16(big, 16), 1451);
    io.inject(a, big.slice());
    io.pump();
    const back = io.take(a);
    assert.is(back.length, 1, 'answered');
    assert.is(u16(back[0].bytes, 40), 1300, 'fragmentation needed, mtu 1300');
    assert.is(io.take(b).length, 0);
    sh('ip', ['link', 'set', 'caliB', 'mtu', '1500']);
    // as the poll leaves it for up to 5 s (set here so that a poll meanwhile cannot decide the test)
    inner.pipe.portMtu[b] = 1300;
    await sleep(150); // past the per-port interval of re-reads
    assert.is(inner.pipe.portMtu[b], 1300, 'no poll meanwhile');
    io.inject(a, big.slice());
    io.pump();
    assert.is(io.take(b).length, 1, 'delivered to B at once');
    assert.is(io.take(a).length, 0, 'no error sent');
    assert.is(inner.pipe.portMtu[b], 1500, 'the port\'s MTU read again');
  } finally {
    e.stop();
    sh('ip', ['link', 'set', 'caliB', 'mtu', '1500']);
  }
});

test('the underlay interface\'s MTU lowered: the tunnel and direct routes\' MTUs follow it (VXLAN 50 and IPIP 20 below it), local ones keep theirs; raised again, the model\'s come back', async () => {
  const e = new Engine({ io: new MemoryIO(), manageHost: false, ringCheckMs: 0, neighbor: { retransMs: 50 } });
  try {
    e.apply(clusterModel('node1'));
    const inner = e as unknown as { pipe: { tx4Mtu: number; nh: { count: number; mtu: Uint16Array; routes: readonly { cidr: string }[] } } };
    const mtuOf = (cidr: string) => {
      const nh = inner.pipe.nh;
      for (let i = 0; i < nh.count; i++) if (nh.routes[i].cidr === cidr) return nh.mtu[i];
      throw new Error(`no route ${cidr}`);
    };
    const routes = { vxlan: '10.244.0.64/26', ipip: '10.245.0.64/26', direct: '10.246.0.64/26', local: '10.244.0.1/32' };
    const model = { vxlan: mtuOf(routes.vxlan), ipip: mtuOf(routes.ipip), direct: mtuOf(routes.direct), local: mtuOf(routes.local) };
    assert.equal(model, { vxlan: 1450, ipip: 1480, direct: 1500, local: 1450 }, 'the model\'s, from an underlay of 1500 (a local pod: the pod MTU)');
    sh('ip', ['link', 'set', UL, 'mtu', '1400']);
    assert.ok(await waitFor(() => inner.pipe.tx4Mtu === 1400, 20_000, 50), 'the lowered MTU is read');
    assert.equal({ vxlan: mtuOf(routes.vxlan), ipip: mtuOf(routes.ipip), direct: mtuOf(routes.direct), local: mtuOf(routes.local) }, { vxlan: 1350, ipip: 1380, direct: 1400, local: 1450 }, 'a local pod keeps its MTU');
    // a model applied while the link is lower keeps the bound
    e.apply(clusterModel('node1'));
    assert.is(mtuOf(routes.vxlan), 1350, 'after another model');
    sh('ip', ['link', 'set', UL, 'mtu', '9000']);
    assert.ok(await waitFor(() => e.status().underlay?.mtu === 9000, 20_000, 50), 'the raised MTU is read');
    assert.equal({ vxlan: mtuOf(routes.vxlan), ipip: mtuOf(routes.ipip), direct: mtuOf(routes.direct), local: mtuOf(routes.local) }, model, 'the model\'s again');
  } finally {
    e.stop();
    sh('ip', ['link', 'set', UL, 'mtu', '1500']);
  }
});

test.run();
