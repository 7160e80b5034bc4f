// A block write whose answer is lost (review E, H1): etcd applied it, the client got an error that
// does not say so ("Connection dropped", a deadline). Against a real etcd (test/helpers/etcd.ts,
// loopback, stopped by PID): the store below lets the real update through and then throws the
// error etcd-kv.ts throws for a dropped connection, so etcd really holds the write. Before the
// fix the handle's count was taken back on any error: the handle was deleted while the block kept
// the address, and releasing by handle (the CNI DEL) freed nothing.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Ipam } from '../../../src/control/ipam/ipam';
import { BLOCK_PREFIX, handleKey } from '../../../src/control/ipam/keys';
import { KvUnavailableError, type KvEntry, type KvGuard, type KvList, type KvStore, type KvWatch, type KvWatchHandlers } from '../../../src/control/kv/kv';
import { etcdForFile } from '../../helpers/etcd';
import { assertClean, setup } from './helpers';

const open = etcdForFile(test);

type Fault = 'applied-reply-lost' | 'applied-then-away' | 'not-applied';

/** Passes everything to a real store; the next block update fails as `fault` says, once. */
class LostReply implements KvStore {
  readonly description = 'lost-reply';
  fault: Fault | null = null;
  /** Calls refused while etcd is "away" (after applied-then-away), until `back()`. */
  private away = false;
  constructor(private readonly inner: KvStore) {}

  private gone(what: string): KvUnavailableError {
    return new KvUnavailableError(`etcd (test) unreachable (${what}): Connection dropped`);
  }
  back(): void { this.away = false; }
  get(key: string): Promise<KvEntry | null> { return this.away ? Promise.reject(this.gone(`get ${key}`)) : this.inner.get(key); }
  list(prefix: string): Promise<KvList> { return this.away ? Promise.reject(this.gone(`list ${prefix}`)) : this.inner.list(prefix); }
  create(key: string, value: string): Promise<KvEntry | null> { return this.away ? Promise.reject(this.gone(`create ${key}`)) : this.inner.create(key, value); }
  delete(key: string, rev?: number): Promise<boolean> { return this.away ? Promise.reject(this.gone(`delete ${key}`)) : this.inner.delete(key, rev); }
  watch(prefix: string, from: number, h: KvWatchHandlers): KvWatch { return this.inner.watch(prefix, from, h); }
  close(): Promise<void> { return this.inner.close(); }

  async update(key: string, value: string, rev: number, guards?: readonly KvGuard[]): Promise<KvEntry | null> {
    if (this.away) throw this.gone(`update ${key}`);
    const fault = key.startsWith(BLOCK_PREFIX) ? this.fault : null;
    if (fault === null) return this.inner.update(key, value, rev, guards);
    this.fault = null;
    if (fault === 'not-applied') throw this.gone(`update ${key}`);
    const written = await this.inner.update(key, value, rev, guards);
    assert.ok(written, 'the real write went through');
    if (fault === 'applied-then-away') this.away = true;
    throw this.gone(`update ${key}`);
  }
}

/** The addresses the blocks hold for `handle`, read straight from etcd. */
async function heldBy(kv: KvStore, handle: string): Promise<string[]> {
  const ips: string[] = [];
  for (const e of (await kv.list(BLOCK_PREFIX)).entries) {
    const b = JSON.parse(e.value) as { cidr: string; allocations: (number | null)[]; attributes: { handle_id: string | null }[] };
    b.allocations.forEach((a, o) => { if (a !== null && b.attributes[a]?.handle_id === handle) ips.push(`${b.cidr}#${o}`); });
  }
  return ips;
}

let n = 0;
async function fresh(): Promise<{ admin: KvStore; kv: LostReply; node: string; pool: string }> {
  const admin = open();
  n++;
  const node = `amb-node-${n}`;
  const pool = `10.61.${n}.0/26`;
  await setup(admin, { pools: [{ name: `amb-${n}`, cidr: pool, spec: { blockSize: 28 } }], nodes: [node] });
  return { admin, kv: new LostReply(open()), node, pool: `amb-${n}` };
}

test('autoAssign: block write applied, reply lost: the address is ours (handle kept) and release by handle frees it', async () => {
  const { admin, kv, node, pool } = await fresh();
  const ipam = new Ipam(kv);
  kv.fault = 'applied-reply-lost';
  const got = await ipam.autoAssign({ node, count: 1, handleId: 'amb.c1', attrs: { node }, pools: [pool] });
  assert.is(kv.fault, null, 'the fault was used');
  assert.is(got.ips.length, 1, `the applied write is an assignment (${JSON.stringify(got)})`);
  assert.ok(await admin.get(handleKey('amb.c1')), 'the handle is kept');
  assert.is((await heldBy(admin, 'amb.c1')).length, 1);
  const rel = await new Ipam(admin).releaseByHandle('amb.c1');
  assert.equal(rel, { found: true, released: got.ips, dropped: [] });
  assert.equal(await heldBy(admin, 'amb.c1'), []);
  await assertClean(new Ipam(admin), 'after release');
});

test('autoAssign: write applied, reply lost and etcd away for the re-read: fails, handle kept, release by handle frees it', async () => {
  const { admin, kv, node, pool } = await fresh();
  const ipam = new Ipam(kv);
  kv.fault = 'applied-then-away';
  let err: unknown = null;
  try { await ipam.autoAssign({ node, count: 1, handleId: 'amb.c2', attrs: { node }, pools: [pool] }); } catch (e) { err = e; }
  kv.back();
  assert.instance(err, KvUnavailableError);
  assert.is((await heldBy(admin, 'amb.c2')).length, 1, 'etcd holds the write');
  assert.ok(await admin.get(handleKey('amb.c2')), 'the handle is kept');
  const rel = await new Ipam(admin).releaseByHandle('amb.c2');
  assert.is(rel.found, true);
  assert.is(rel.released.length, 1);
  assert.equal(await heldBy(admin, 'amb.c2'), []);
  assert.is(await admin.get(handleKey('amb.c2')), null);
  await assertClean(new Ipam(admin), 'after release');
});

test('autoAssign: write not applied (error before etcd took it): count taken back, nothing left', async () => {
  const { admin, kv, node, pool } = await fresh();
  const ipam = new Ipam(kv);
  kv.fault = 'not-applied';
  let err: unknown = null;
  try { await ipam.autoAssign({ node, count: 1, handleId: 'amb.c3', attrs: { node }, pools: [pool] }); } catch (e) { err = e; }
  assert.instance(err, KvUnavailableError);
  assert.equal(await heldBy(admin, 'amb.c3'), []);
  assert.is(await admin.get(handleKey('amb.c3')), null, 'handle taken back');
  await assertClean(new Ipam(admin), 'after a write that was not applied');
});

test('assignIp (CNI IP=): block write applied, reply lost: assigned, release by handle frees it', async () => {
  const { admin, kv, node } = await fresh();
  const ipam = new Ipam(kv);
  const ip = `10.61.${n}.5`;
  // The block exists first, so the faulty call is the assignment's own update.
  await new Ipam(admin).assignIp({ node, ip: `10.61.${n}.4`, handleId: 'amb.other', attrs: { node } });
  kv.fault = 'applied-reply-lost';
  await ipam.assignIp({ node, ip, handleId: 'amb.c4', attrs: { node } });
  assert.is(kv.fault, null, 'the fault was used');
  assert.is((await heldBy(admin, 'amb.c4')).length, 1);
  assert.equal(await new Ipam(admin).releaseByHandle('amb.c4'), { found: true, released: [ip], dropped: [] });
  assert.equal(await new Ipam(admin).releaseByHandle('amb.other'), { found: true, released: [`10.61.${n}.4`], dropped: [] });
  await assertClean(new Ipam(admin), 'after release');
});

test.run();
