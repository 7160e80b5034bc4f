/**
 * The datastore half of a CNI DEL (pending-del.ts releaseInStore, run by DEL and by a deferred
 * DEL's replay), on a real embedded store: the pod's WorkloadEndpoint is deleted before its IPAM
 * handle is released, as Calico's plugin orders it, so a DEL killed in between leaves a leaked
 * address, never an endpoint naming a free one; and an endpoint written for the same container
 * after the first look (an overlapping ADD) is deleted by the second look after the release.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FileKv } from '../../src/control/kv/file-kv';
import type { KvEvent, KvStore } from '../../src/control/kv/kv';
import { Ipam } from '../../src/control/ipam/ipam';
import { BLOCK_PREFIX, handleKey } from '../../src/control/ipam/keys';
import { applyResource, deleteResource, getResource } from '../../src/control/v3-store';
import { kindInfo } from '../../src/control/calico-kinds';
import { releaseInStore } from '../../src/cni/pending-del';
import { setup } from '../control/ipam/helpers';
import { wep } from '../control/fixtures';

const WEP = kindInfo('WorkloadEndpoint')!;
const WEP_PREFIX = '/calico/resources/v3/projectcalico.org/workloadendpoints/';

async function fresh(): Promise<{ dir: string; kv: FileKv; ip: string; handle: string; cid: string; name: string }> {
  const dir = mkdtempSync(join(tmpdir(), 'podway-release-order-'));
  const kv = new FileKv({ dir });
  await setup(kv, { pools: [{ name: 'ro', cidr: '10.62.0.0/26', spec: { blockSize: 28 } }], nodes: ['ronode'] });
  const cid = `c${process.pid}`;
  const handle = `podway.${cid}`;
  const got = await new Ipam(kv).autoAssign({ node: 'ronode', count: 1, handleId: handle, attrs: { node: 'ronode' }, pools: ['ro'] });
  assert.is(got.ips.length, 1, JSON.stringify(got));
  const w = wep('ronode', 'web', [`${got.ips[0]}/32`], 'caliweb0', { containerID: cid });
  await applyResource(kv, w);
  return { dir, kv, ip: got.ips[0], handle, cid, name: (w.metadata as { name: string }).name };
}

/** The store's events after `from` (watch from the log), in revision order. */
async function eventsSince(kv: KvStore, from: number): Promise<KvEvent[]> {
  const to = (await kv.list('/')).revision;
  if (to <= from) return [];
  return new Promise((resolve, reject) => {
    const events: KvEvent[] = [];
    const timer = setTimeout(() => reject(new Error(`events ${from + 1}..${to}: got ${events.length}`)), 10_000);
    const w = kv.watch('/', from + 1, {
      onEvents: (evs) => {
        events.push(...evs);
        const last = evs[evs.length - 1];
        if ((last.type === 'put' ? last.entry.modRevision : last.modRevision) >= to) {
          clearTimeout(timer);
          void w.close();
          resolve(events);
        }
      },
      onResync: (why) => { clearTimeout(timer); reject(new Error(`resync: ${why}`)); },
    });
  });
}

const keyOf = (e: KvEvent) => (e.type === 'put' ? e.entry.key : e.key);
const revOf = (e: KvEvent) => (e.type === 'put' ? e.entry.modRevision : e.modRevision);

test('DEL in the datastore: the WorkloadEndpoint is deleted before the handle is released (Calico\'s order)', async () => {
  const { dir, kv, ip, handle, cid, name } = await fresh();
  try {
    const before = (await kv.list('/')).revision;
    const r = await releaseInStore(kv, handle, [{ name, namespace: 'default' }], cid);
    assert.equal(r.deleted.map((d) => d.ref.name), [name]);
    assert.is(await kv.get(handleKey(handle)), null);
    assert.is(await new Ipam(kv).allocationOf(ip), null);
    const events = await eventsSince(kv, before);
    const wepDelete = events.find((e) => e.type === 'delete' && e.key.startsWith(WEP_PREFIX));
    const firstIpam = events.find((e) => keyOf(e).startsWith(BLOCK_PREFIX) || keyOf(e) === handleKey(handle));
    assert.ok(wepDelete && firstIpam, JSON.stringify(events.map((e) => [e.type, keyOf(e)])));
    assert.ok(revOf(wepDelete!) < revOf(firstIpam!), `endpoint deleted (rev ${revOf(wepDelete!)}) before IPAM is touched (rev ${revOf(firstIpam!)} ${keyOf(firstIpam!)})`);
  } finally {
    await kv.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('an endpoint of the same container written after the first look (an overlapping ADD) is deleted after the release', async () => {
  const { dir, kv, handle, cid, name } = await fresh();
  // The ADD's endpoint write lands between DEL's first look (nothing there yet) and its release:
  // a store that writes it when the DEL reads the handle (what the release reads first).
  const endpoint = (await getResource(kv, WEP, name, 'default'))!.object;
  await deleteResource(kv, { info: WEP, name, namespace: 'default' });
  let injected = false;
  const racing = new Proxy(kv, {
    get(target, prop, receiver) {
      if (prop === 'get') {
        return async (key: string) => {
          if (!injected && key === handleKey(handle)) {
            injected = true;
            await applyResource(target, endpoint);
          }
          return target.get(key);
        };
      }
      const v = Reflect.get(target, prop, receiver);
      return typeof v === 'function' ? v.bind(target) : v;
    },
  });
  try {
    const r = await releaseInStore(racing, handle, [{ name, namespace: 'default' }], cid);
    assert.ok(injected, 'the endpoint was written during the DEL');
    assert.equal(r.deleted.map((d) => d.ref.name), [name], 'deleted by the look after the release');
    assert.is(await getResource(kv, WEP, name, 'default'), null);
    assert.is(await kv.get(handleKey(handle)), null);
  } finally {
    await kv.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

test.run();
