// etcd-proto.ts (the hand-written encoding of etcd's KV messages for EtcdLiteKv) against etcd's own
// .proto files as the etcd3 package ships them, parsed by protobufjs (its dependency): what we
// write decodes there to the same request, what protobufjs writes (as etcd would) decodes here to
// the same response. A field renumbered or retyped in either would show here.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import {
  decodeDeleteRangeResponse,
  decodeRangeResponse,
  decodeTxnResponse,
  encodeDeleteRange,
  encodePut,
  encodeRange,
  encodeTxn,
  readFields,
} from '../../src/control/kv/etcd-proto';

const etcd3 = require.resolve('etcd3');
const protobuf = createRequire(etcd3)('protobufjs') as {
  Root: new () => { loadSync(file: string, o: { keepCase: boolean }): { lookupType(name: string): PbType } };
};
interface PbType {
  decode(b: Uint8Array): unknown;
  toObject(m: unknown, o: Record<string, unknown>): Record<string, any>;
  fromObject(o: Record<string, unknown>): unknown;
  encode(m: unknown): { finish(): Uint8Array };
}
const root = new protobuf.Root().loadSync(join(dirname(etcd3), '..', 'proto', 'rpc.proto'), { keepCase: true });
const T = (name: string) => root.lookupType(`etcdserverpb.${name}`);
const OPTS = { longs: String, enums: String, bytes: String, defaults: false, oneofs: true };
const b64 = (s: string) => Buffer.from(s).toString('base64');
/** Ours, decoded by protobufjs as etcd's Go code would read it. */
const theirs = (type: string, buf: Buffer) => T(type).toObject(T(type).decode(buf), OPTS);
/** protobufjs's encoding of `obj` (as etcd would send it). */
const encoded = (type: string, obj: Record<string, unknown>) => Buffer.from(T(type).encode(T(type).fromObject(obj)).finish());

test('RangeRequest, PutRequest, DeleteRangeRequest: every field we set, and only those', () => {
  const big = 2 ** 40 + 7;
  assert.equal(theirs('RangeRequest', encodeRange({ key: Buffer.from('/a'), rangeEnd: Buffer.from('/b'), limit: 1, revision: big, serializable: true, keysOnly: true, countOnly: true })), {
    key: b64('/a'), range_end: b64('/b'), limit: '1', revision: String(big), serializable: true, keys_only: true, count_only: true,
  });
  assert.equal(theirs('RangeRequest', encodeRange({ key: Buffer.from('/k') })), { key: b64('/k') });
  assert.equal(theirs('PutRequest', encodePut({ key: Buffer.from('/k'), value: Buffer.from('{"v":1}'), prevKv: true })), { key: b64('/k'), value: b64('{"v":1}'), prev_kv: true });
  assert.equal(theirs('PutRequest', encodePut({ key: Buffer.from('/k'), value: Buffer.alloc(0) })), { key: b64('/k') });
  assert.equal(theirs('DeleteRangeRequest', encodeDeleteRange({ key: Buffer.from('/k'), rangeEnd: Buffer.from('/l'), prevKv: true })), { key: b64('/k'), range_end: b64('/l'), prev_kv: true });
});

test('TxnRequest: compares on version, create and mod revision (a 0 still written: oneof), each kind of operation', () => {
  const txn = encodeTxn({
    compare: [
      { key: Buffer.from('/a'), target: 'version', result: 'equal', value: 0 },
      { key: Buffer.from('/a'), target: 'mod', result: 'equal', value: 12 },
      { key: Buffer.from('/g'), target: 'version', result: 'greater', value: 0 },
      { key: Buffer.from('/c'), target: 'create', result: 'less', value: 3 },
      { key: Buffer.from('/n'), target: 'mod', result: 'notEqual', value: 2 ** 33 },
    ],
    success: [{ put: { key: Buffer.from('/a'), value: Buffer.from('v'), prevKv: true } }, { range: { key: Buffer.from('/r'), limit: 1 } }],
    failure: [{ deleteRange: { key: Buffer.from('/d') } }],
  });
  assert.equal(theirs('TxnRequest', txn), {
    // etcd3's copy names the enums Version/Create/Mod and Equal/Greater/Less/NotEqual (etcd's own:
    // VERSION, ... EQUAL, ...), the same numbers; 0 (Version, Equal) is left out, as proto3 does.
    compare: [
      { key: b64('/a'), version: '0', target_union: 'version' },
      { key: b64('/a'), target: 'Mod', mod_revision: '12', target_union: 'mod_revision' },
      { key: b64('/g'), result: 'Greater', version: '0', target_union: 'version' },
      { key: b64('/c'), target: 'Create', result: 'Less', create_revision: '3', target_union: 'create_revision' },
      { key: b64('/n'), target: 'Mod', result: 'NotEqual', mod_revision: String(2 ** 33), target_union: 'mod_revision' },
    ],
    success: [
      { request_put: { key: b64('/a'), value: b64('v'), prev_kv: true }, request: 'request_put' },
      { request_range: { key: b64('/r'), limit: '1' }, request: 'request_range' },
    ],
    failure: [{ request_delete_range: { key: b64('/d') }, request: 'request_delete_range' }],
  });
});

const header = { cluster_id: '14841639068965178418', member_id: '10276657743932975437', revision: '123456789012', raft_term: '7' };
const kv = (k: string, v: string, c: number, m: number) => ({ key: b64(k), value: b64(v), create_revision: String(c), mod_revision: String(m), version: '2', lease: '0' });

test('RangeResponse: header (a cluster_id above 2^63 in full), key-values, more, count; unknown fields skipped', () => {
  const buf = encoded('RangeResponse', { header, kvs: [kv('/a', '{"x":1}', 5, 9), kv('/b', '', 6, 6)], more: true, count: '2' });
  const r = decodeRangeResponse(Buffer.concat([buf, Buffer.from([0xf8, 0x06, 0x01])])); // field 111, varint: not etcd's (yet)
  assert.equal(r.header, { clusterId: '14841639068965178418', revision: 123456789012 });
  assert.equal(r.kvs.map((k) => ({ key: k.key.toString(), value: k.value.toString(), c: k.createRevision, m: k.modRevision, v: k.version })), [
    { key: '/a', value: '{"x":1}', c: 5, m: 9, v: 2 },
    { key: '/b', value: '', c: 6, m: 6, v: 2 },
  ]);
  assert.is(r.more, true);
  assert.is(r.count, 2);
  assert.equal(decodeRangeResponse(encoded('RangeResponse', { header })).kvs, []);
});

test('TxnResponse and DeleteRangeResponse: succeeded, a put\'s previous entry, a range, a delete\'s count', () => {
  const buf = encoded('TxnResponse', {
    header, succeeded: true,
    responses: [
      { response_put: { header: {}, prev_kv: kv('/a', 'old', 3, 4) } },
      { response_range: { header: {}, kvs: [kv('/r', 'x', 1, 1)], count: '1' } },
      { response_delete_range: { header: {}, deleted: '1' } },
    ],
  });
  const t = decodeTxnResponse(buf);
  assert.is(t.succeeded, true);
  assert.is(t.header.revision, 123456789012);
  const [put, range, del] = t.responses;
  assert.ok(put && 'put' in put && put.put.prevKv);
  assert.is(put.put.prevKv!.value.toString(), 'old');
  assert.is(put.put.prevKv!.createRevision, 3);
  assert.ok(range && 'range' in range && range.range.kvs[0]!.key.toString() === '/r');
  assert.ok(del && 'deleteRange' in del && del.deleteRange.deleted === 1);
  assert.is(decodeTxnResponse(encoded('TxnResponse', { header })).succeeded, false);
  assert.is(decodeDeleteRangeResponse(encoded('DeleteRangeResponse', { header, deleted: '3' })).deleted, 3);
});

test('malformed replies are errors, not wrong answers', () => {
  assert.throws(() => readFields(Buffer.from([0x0a, 0x05, 0x01])), /runs past the message's end/);
  assert.throws(() => readFields(Buffer.from([0x08, 0x80])), /truncated varint/);
  assert.throws(() => decodeRangeResponse(Buffer.alloc(0)), /without its header/);
});

test.run();
