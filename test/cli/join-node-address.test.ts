// The Node address `podway run` registers (cli/join.ts, cli/start-address.ts), on a fresh embedded
// store and a real etcd: a changed address is warned of naming old and new (a second process under
// the same node name does that), another Node's address is refused naming it (calico-node's
// checkConflictingNodes), and at start a stored address no interface holds gives way to
// first-found.
import { suite } from 'uvu';
import { createServer, Socket } from 'node:net';
import * as assert from 'uvu/assert';
import { joinCluster } from '../../src/cli/join';
import { chooseStartAddress } from '../../src/cli/start-address';
import { parseDatastoreSpec } from '../../src/control/kv/spec';
import { within } from '../../src/lab/lab';
import { embeddedTarget, etcdTarget, stopEtcd, Target } from './cli-kit';

const NODES = '/calico/resources/v3/projectcalico.org/nodes/';

for (const target of [embeddedTarget, etcdTarget] as Target[]) {
  const t = suite(`join on ${target.name}`);
  t('a changed address is warned of naming old and new; another Node\'s address is refused naming it, nothing written', async () => {
    const { spec, kv } = await target.open();
    try {
      const ds = parseDatastoreSpec(spec);
      const said: string[] = [];
      const warned: string[] = [];
      const join = (node: string, ip: string) => joinCluster(ds, { node, ip, ip6: 'none', atStart: true, warn: (m) => warned.push(m) }, (m) => said.push(m));
      await join('node1', '10.98.0.1/24');
      assert.equal(warned, []);
      await join('node1', '10.98.0.3/24');
      assert.is(warned.length, 1, warned.join('\n'));
      assert.match(warned[0]!, "node node1: its Node's IPv4 address changed from 10.98.0.1/24 to 10.98.0.3/24 (given with --ip)");
      assert.match(warned[0]!, 'If another host runs as node1, two hosts share one node name');
      // node5 on node1's address: refused before anything is written.
      const before = (await kv.list('/calico/')).revision;
      const err = await join('node5', '10.98.0.3/24').then(() => null, (e: Error) => e);
      assert.ok(err, 'node5 was registered on node1\'s address');
      assert.match(err!.message, 'node node5: Node node1 is already using the IPv4 address 10.98.0.3');
      assert.match(err!.message, 'if node1 is gone, delete its Node first (podway delete node node1)');
      assert.is(await kv.get(`${NODES}node5`), null);
      assert.is((await kv.list('/calico/')).revision, before);
      // IPv6 the same way.
      await joinCluster(ds, { node: 'node1', ip: '10.98.0.3/24', ip6: 'fd00:98::1/64' }, () => {});
      const err6 = await joinCluster(ds, { node: 'node6', ip: '10.98.0.6/24', ip6: 'fd00:98:0:0::1/64' }, () => {}).then(() => null, (e: Error) => e);
      assert.match(err6?.message ?? '(registered)', 'node node6: Node node1 is already using the IPv6 address fd00:98::1');
      assert.is(await kv.get(`${NODES}node6`), null);
    } finally {
      await kv.close();
    }
  });
  t.run();
}

const u = suite('start address');
u('the Node\'s address while an interface holds it, else first-found (warned), else kept (warned)', () => {
  const held = new Set(['10.1.1.3', 'fd00:5::3']);
  const detect4 = () => '10.1.1.3/24';
  assert.equal(chooseStartAddress(4, 'n', '10.1.1.3/24', () => '10.9.9.9/24', held), { address: '10.1.1.3/24' });
  assert.equal(chooseStartAddress(4, 'n', undefined, detect4, held), { address: '10.1.1.3/24' });
  const moved = chooseStartAddress(4, 'n', '10.1.1.9/24', detect4, held);
  assert.is(moved.address, '10.1.1.3/24');
  assert.match(moved.warning!, "node n: its Node's IPv4 address 10.1.1.9/24 is on no interface here: registering first-found 10.1.1.3/24 instead (give --ip (or IP) to choose)");
  const kept = chooseStartAddress(4, 'n', '10.1.1.9/24', () => undefined, held);
  assert.is(kept.address, '10.1.1.9/24');
  assert.match(kept.warning!, 'first-found finds none: keeping it');
  // IPv6 compared in one spelling; `ip` failing (null) keeps the stored one as before.
  assert.equal(chooseStartAddress(6, 'n', 'FD00:5:0::3/64', () => 'fd00:7::1/64', held), { address: 'FD00:5:0::3/64' });
  assert.is(chooseStartAddress(6, 'n', 'fd00:6::3/64', () => 'fd00:5::3/64', held).address, 'fd00:5::3/64');
  assert.equal(chooseStartAddress(4, 'n', '10.1.1.9/24', detect4, null), { address: '10.1.1.9/24' });
});
u.after(() => stopEtcd());
u.run();

const silentSuite = suite('join on a silent etcd');
silentSuite('a registration waiting on an etcd that accepts and never answers ends when its signal is aborted (podway run stopping), with the abort\'s reason', async () => {
  const sockets = new Set<Socket>();
  const silent = createServer((c) => { sockets.add(c); c.on('error', () => undefined); });
  await new Promise<void>((r) => silent.listen(0, '127.0.0.1', r));
  const port = (silent.address() as { port: number }).port;
  const abort = new AbortController();
  const said: string[] = [];
  try {
    const joined = joinCluster(parseDatastoreSpec(`etcd:http://127.0.0.1:${port}`), { node: 'node1', ip: '10.98.0.1/24', ip6: 'none', signal: abort.signal }, (m) => said.push(m))
      .then(() => 'registered', (e: Error) => e);
    // Bounded: the first call times out and the join says it retries.
    for (let i = 0; i < 300 && !said.some((m) => /unreachable .*; retrying in/.test(m)); i++) await new Promise((r) => setTimeout(r, 100));
    assert.ok(said.some((m) => /unreachable .*; retrying in/.test(m)), `the join waits on the silent etcd: ${said.join(' | ')}`);
    abort.abort(new Error('SIGTERM: stopping'));
    // within() clears its timer: a bare setTimeout raced here kept the file alive 30 s after its last test.
    const outcome = await within(joined, 30_000, 'still waiting');
    assert.instance(outcome, Error, `ended by the abort: ${String(outcome)}`);
    assert.is((outcome as Error).message, 'SIGTERM: stopping');
  } finally {
    for (const c of sockets) c.destroy();
    await new Promise((r) => silent.close(r));
  }
});
silentSuite.run();
