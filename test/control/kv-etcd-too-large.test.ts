// Values too large for etcd or for the client, against a real etcd started with a small
// --max-request-bytes (64 KiB; 1.5 MiB by default): the errors name the key, the value's size and
// the limit. Before, EtcdKv passed etcd's "3 INVALID_ARGUMENT: etcdserver: request is too large" on
// as it was (no key, no size, no limit), the light client added the call but no size or limit,
// and a list whose one value was larger than the client takes named the list, not the key
// (docs/datastores.md). etcd refuses a request over its --max-request-bytes itself ("request is
// too large": it does not say its limit), and one over that and gRPC's 512 KiB unread ("grpc:
// received message larger than max (N vs. M)": M is the limit and 512 KiB). Neither is an outage:
// not KvUnavailableError.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { EtcdKv } from '../../src/control/kv/etcd-kv';
import { EtcdLiteKv } from '../../src/control/kv/etcd-lite';
import { EtcdAnswerTooLargeError } from '../../src/control/kv/etcd-common';
import { KvUnavailableError } from '../../src/control/kv/kv';
import { EtcdServer, startEtcd } from '../helpers/etcd';
import { failure } from '../helpers/until';

const LIMIT = 64 * 1024;
let etcd: EtcdServer;
test.before(async () => { etcd = await startEtcd(['--max-request-bytes', String(LIMIT)]); });
test.after(async () => { await etcd?.stop(); });

const clients = (maxReceiveBytes?: number) => [
  ['EtcdKv', new EtcdKv({ endpoints: [etcd.endpoint], timeoutMs: 5000, maxReceiveBytes })],
  ['EtcdLiteKv', new EtcdLiteKv({ endpoints: [etcd.endpoint], timeoutMs: 5000, maxReceiveBytes })],
] as const;

test('a write over --max-request-bytes (etcd\'s "request is too large") and one over it and 512 KiB (refused by its gRPC server): the error names the key, the value\'s size and the limit', async () => {
  for (const [name, kv] of clients()) {
    try {
      const p = `/too-large/${name}/`;
      // over the limit, under it and 512 KiB: etcd's own refusal, which does not say the limit
      const mid = await failure(kv.create(`${p}mid`, 'x'.repeat(100 * 1024)));
      assert.not.instance(mid, KvUnavailableError, `${name}: ${mid.message}`);
      assert.is(mid.message, `etcd ${etcd.endpoint} (create ${p}mid): etcd refused the request as larger than it takes: the value of ${p}mid is 102400 bytes, over etcd's --max-request-bytes (1572864 bytes, 1.5 MiB, unless etcd was given another): etcdserver: request is too large`, name);
      // over both: refused unread, the limit said
      const big = await failure(kv.create(`${p}big`, 'x'.repeat(1024 * 1024)));
      assert.not.instance(big, KvUnavailableError, `${name}: ${big.message}`);
      assert.match(big.message, new RegExp(`^etcd ${etcd.endpoint.replace(/[.:/]/g, '\\$&')} \\(create ${p}big\\): etcd refused the request as larger than it takes: the value of ${p}big is 1048576 bytes, over etcd's --max-request-bytes, ${LIMIT} bytes here \\(its gRPC server refused the \\d+-byte request unread: above that and 512 KiB\\): grpc: received message larger than max \\(\\d+ vs\\. ${LIMIT + 512 * 1024}\\)$`), name);
      // an update of a key that is there, too
      const e = (await kv.create(`${p}small`, 'v'))!;
      const up = await failure(kv.update(`${p}small`, 'y'.repeat(200 * 1024), e.modRevision));
      assert.ok(up.message.includes(`(update ${p}small): etcd refused the request as larger than it takes: the value of ${p}small is 204800 bytes, over etcd's --max-request-bytes`), `${name}: ${up.message}`);
      assert.is((await kv.get(`${p}small`))!.value, 'v', 'not written');
    } finally {
      await kv.close();
    }
  }
});

test('a batch write (the light client\'s writeBatch) over the limit: its largest value named', async () => {
  const kv = new EtcdLiteKv({ endpoints: [etcd.endpoint], timeoutMs: 5000 });
  try {
    const e = await failure(kv.writeBatch([
      { key: '/too-large/batch/a', value: 'a', modRevision: 0 },
      { key: '/too-large/batch/b', value: 'b'.repeat(90 * 1024), modRevision: 0 },
      { key: '/too-large/batch/c', value: 'c'.repeat(1024), modRevision: 0 },
    ]));
    assert.ok(e.message.includes('(write 3 keys from /too-large/batch/a): etcd refused the request as larger than it takes: the value of /too-large/batch/b is 92160 bytes'), e.message);
  } finally {
    await kv.close();
  }
});

test('a value larger than the client takes, in a list: the error names the key, its size and the bound, not only the list', async () => {
  const p = '/too-large/read/';
  const writer = new EtcdKv({ endpoints: [etcd.endpoint], timeoutMs: 5000 });
  try {
    for (let i = 0; i < 3; i++) await writer.create(`${p}k${i}`, String(i));
    await writer.create(`${p}k1-big`, 'z'.repeat(60 * 1024)); // under etcd's 64 KiB
  } finally {
    await writer.close();
  }
  // clients that take at most 32 KiB: the list goes down to one key a page, and that key is too large
  for (const [name, kv] of clients(32 * 1024)) {
    try {
      const e = await failure(kv.list(p, 4));
      assert.instance(e, EtcdAnswerTooLargeError, `${name}: ${e.message}`);
      assert.match(e.message, new RegExp(`^etcd ${etcd.endpoint.replace(/[.:/]/g, '\\$&')} \\(list ${p}\\): the value of ${p}k1-big is about \\d+ bytes, larger than the 32768 bytes this client takes \\(etcd stores values up to its --max-request-bytes, which is above that\\)$`), name);
      // the keys around it are read as ever
      assert.is((await kv.get(`${p}k2`))!.value, '2', name);
    } finally {
      await kv.close();
    }
  }
});

test.run();
