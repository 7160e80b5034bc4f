// The address monitor's store on a real etcd (join.ts NodeAddressStore, wired as run.ts wires
// it): every look reads or writes this node's Node through one etcd client, made at the first
// look, not one per look; after the thread's stores reconnect (the node's address left) it goes
// on through its new client; a look that found etcd unreachable leaves a new one for the next;
// close() takes it out of the thread's open stores.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { AddressMonitor } from '../../src/cli/address-monitor';
import { NodeAddressStore } from '../../src/cli/join';
import { EtcdKv, etcdClientsMade, reconnectEtcdStores } from '../../src/control/kv/etcd-kv';
import { registerNode } from '../../src/control/node-registration';
import type { NodeAddresses } from '../../src/dataplane/host';
import { startEtcd, type EtcdServer } from '../helpers/etcd';

const NODE_KEY = '/calico/resources/v3/projectcalico.org/nodes/node1';
let etcd: EtcdServer | null = null;

test.after(async () => {
  await etcd?.stop();
});

test('the monitor\'s looks share one etcd client (reads and writes of the Node); after a reconnection its new one; closed with its owner', async () => {
  etcd = await startEtcd();
  const setup = new EtcdKv({ endpoints: [etcd.endpoint] });
  const store = new NodeAddressStore({ kind: 'etcd', endpoints: [etcd.endpoint] }, 'node1');
  try {
    await registerNode(setup, { name: 'node1', ipv4Address: '10.0.0.1/24' });
    const stored = async () => (JSON.parse((await setup.get(NODE_KEY))!.value) as { spec: { bgp: { ipv4Address: string } } }).spec.bgp.ipv4Address;
    // The node's first-found address (autodetect): a new one every other look (a write), the same
    // in between (a read of the stored Node, which is this node's: nothing to repair).
    let addr = '10.0.0.1';
    let inForce = '10.0.0.1/24';
    const warns: string[] = [];
    const m = new AddressMonitor({
      intervalMs: 60_000,
      source: { v4: 'autodetect', v6: 'none' },
      read: async (): Promise<NodeAddresses> => ({ ipv4: `${addr}/24`, all: new Set([addr]) }),
      registered: () => ({ ipv4: inForce, ipv6: null }),
      stored: () => store.stored(),
      write: (change, expect) => store.update(change, expect),
      info: () => {},
      warn: (w) => warns.push(w),
    });
    const before = etcdClientsMade();
    for (let i = 0; i < 3; i++) {
      addr = `10.0.0.${10 + i}`;
      await m.look(); // writes the new address
      assert.is(await stored(), `${addr}/24`, `look ${2 * i + 1} wrote the new address`);
      inForce = `${addr}/24`; // the model thread brought it back
      await m.look(); // reads the stored Node: this node's own
    }
    assert.equal(warns, []);
    assert.is(m.looks, 6);
    assert.is(m.updates, 3);
    assert.is(etcdClientsMade() - before, 1, 'one etcd client for six looks');
    // The node's address left: this thread's stores make new connections (run.ts addressLeft).
    const open = reconnectEtcdStores();
    assert.is(etcdClientsMade() - before, 1 + open, 'a new client per open store');
    addr = '10.0.0.20';
    await m.look();
    assert.is(await stored(), '10.0.0.20/24', 'written through the reconnected client');
    assert.is(etcdClientsMade() - before, 1 + open, 'and no client of its own for that look');
    // A look that finds etcd unreachable leaves a new client for the next one (a connection
    // dropped on the way, idle between looks, would fail every look until TCP gives up).
    await etcd.kill();
    addr = '10.0.0.21';
    await m.look();
    assert.ok(warns.some((w) => /could not be updated/.test(w)), warns.join(' | '));
    assert.is(etcdClientsMade() - before, 2 + open, 'a new client after the failed look');
    await etcd.start();
    await m.look();
    assert.is(await stored(), '10.0.0.21/24', 'written by the next look, through it');
    assert.is(etcdClientsMade() - before, 2 + open, 'and no other');
    await m.stop();
    await store.close();
    assert.is(reconnectEtcdStores(), open - 1, 'closed: no longer among the open stores');
    const after = await store.stored().then(() => 'answered', (e: Error) => e.message);
    assert.match(after, /closed/, 'a call after close fails');
  } finally {
    await store.close();
    await setup.close();
  }
});

test.run();
