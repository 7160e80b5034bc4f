// The protobuf messages of etcd's KV service (etcd's api/etcdserverpb/rpc.proto and
// api/mvccpb/kv.proto, API v3) that EtcdLiteKv sends and reads, encoded and decoded by hand: the
// field numbers and types below are etcd's wire API, stable across etcd 3.x (new fields are only
// ever added). Only what a get, a prefix list, a put, a delete and a transaction of those use;
// fields not listed here are skipped when reading. test/control/etcd-proto.test.ts checks every
// message against the .proto files etcd3 ships (parsed by protobufjs there, never here).

// --------------------------------------------------------------------------------------------
// Writing

/** A varint: a non-negative integer up to 2^53 (revisions, counts, enum values). */
function varint(out: number[], n: number): void {
  if (!Number.isSafeInteger(n) || n < 0) throw new RangeError(`etcd-proto: ${n} is not a non-negative integer`);
  while (n >= 0x80) {
    out.push((n % 0x80) | 0x80);
    n = Math.floor(n / 0x80);
  }
  out.push(n);
}

/** One message being written: its fields in the order given. */
export class ProtoWriter {
  private readonly parts: Buffer[] = [];
  private head: number[] = [];

  private flushHead(): void {
    if (this.head.length > 0) this.parts.push(Buffer.from(this.head));
    this.head = [];
  }

  /** A varint field (int64, uint64, bool, enum), written even when 0 (proto3 leaves 0 out: use `uint`). */
  uintAlways(field: number, n: number): this {
    varint(this.head, field * 8);
    varint(this.head, n);
    return this;
  }

  /** An int64 varint field that may be beyond 2^53 (a lease ID), left out when 0. */
  int64(field: number, n: bigint): this {
    if (n === 0n) return this;
    varint(this.head, field * 8);
    let v = BigInt.asUintN(64, n);
    while (v >= 0x80n) {
      this.head.push(Number(v & 0x7fn) | 0x80);
      v >>= 7n;
    }
    this.head.push(Number(v));
    return this;
  }

  /** A varint field, left out when 0 (proto3's default). */
  uint(field: number, n: number | undefined): this {
    return n ? this.uintAlways(field, n) : this;
  }

  bool(field: number, b: boolean | undefined): this {
    return b ? this.uintAlways(field, 1) : this;
  }

  /** A bytes, string or embedded message field (left out when undefined; an empty one is written). */
  bytes(field: number, data: Buffer | undefined): this {
    if (data === undefined) return this;
    varint(this.head, field * 8 + 2);
    varint(this.head, data.length);
    this.flushHead();
    this.parts.push(data);
    return this;
  }

  finish(): Buffer {
    this.flushHead();
    return Buffer.concat(this.parts);
  }
}

// --------------------------------------------------------------------------------------------
// Reading

/** The fields of one message: field number -> its values in order (varints as bigint, the rest as bytes). */
export type ProtoFields = Map<number, (bigint | Buffer)[]>;

/** Splits a message into its fields; throws on a truncated or malformed one. */
export function readFields(buf: Buffer): ProtoFields {
  const fields: ProtoFields = new Map();
  let pos = 0;
  const readVarint = (): bigint => {
    let v = 0n;
    for (let shift = 0n; ; shift += 7n) {
      if (pos >= buf.length) throw new Error('etcd-proto: truncated varint');
      if (shift > 63n) throw new Error('etcd-proto: varint longer than 64 bits');
      const b = buf[pos++]!;
      v |= BigInt(b & 0x7f) << shift;
      if (b < 0x80) return v;
    }
  };
  while (pos < buf.length) {
    const tag = readVarint();
    const field = Number(tag >> 3n);
    const wire = Number(tag & 7n);
    let value: bigint | Buffer;
    if (wire === 0) value = readVarint();
    else if (wire === 2) {
      const len = Number(readVarint());
      if (pos + len > buf.length) throw new Error(`etcd-proto: field ${field} runs past the message's end`);
      value = buf.subarray(pos, pos + len);
      pos += len;
    } else if (wire === 1) {
      if (pos + 8 > buf.length) throw new Error('etcd-proto: truncated fixed64');
      value = buf.readBigUInt64LE(pos);
      pos += 8;
    } else if (wire === 5) {
      if (pos + 4 > buf.length) throw new Error('etcd-proto: truncated fixed32');
      value = BigInt(buf.readUInt32LE(pos));
      pos += 4;
    } else throw new Error(`etcd-proto: field ${field} has wire type ${wire}, which etcd's messages do not use`);
    let list = fields.get(field);
    if (!list) fields.set(field, (list = []));
    list.push(value);
  }
  return fields;
}

function lastOf(f: ProtoFields, field: number): bigint | Buffer | undefined {
  const list = f.get(field);
  return list?.[list.length - 1];
}

/** An int64/uint64 field as a bigint (0 when absent). */
export function bigintField(f: ProtoFields, field: number): bigint {
  const v = lastOf(f, field);
  if (v === undefined) return 0n;
  if (typeof v !== 'bigint') throw new Error(`etcd-proto: field ${field} is not a varint`);
  // int64 fields are two's complement in 64 bits.
  return v >= 1n << 63n ? v - (1n << 64n) : v;
}

/** An int64 field as a number (revisions, counts: below 2^53). */
export function numberField(f: ProtoFields, field: number): number {
  const v = bigintField(f, field);
  if (v > BigInt(Number.MAX_SAFE_INTEGER) || v < -BigInt(Number.MAX_SAFE_INTEGER)) throw new Error(`etcd-proto: field ${field} (${v}) is beyond 2^53`);
  return Number(v);
}

export function boolField(f: ProtoFields, field: number): boolean {
  return bigintField(f, field) !== 0n;
}

/** A bytes or message field (empty when absent). */
export function bytesField(f: ProtoFields, field: number): Buffer {
  const v = lastOf(f, field);
  if (v === undefined) return Buffer.alloc(0);
  if (typeof v === 'bigint') throw new Error(`etcd-proto: field ${field} is not length-delimited`);
  return v;
}

/** A message field, or null when absent. */
export function messageField(f: ProtoFields, field: number): ProtoFields | null {
  const v = lastOf(f, field);
  if (v === undefined) return null;
  if (typeof v === 'bigint') throw new Error(`etcd-proto: field ${field} is not a message`);
  return readFields(v);
}

/** A repeated message field. */
export function messagesField(f: ProtoFields, field: number): ProtoFields[] {
  return (f.get(field) ?? []).map((v) => {
    if (typeof v === 'bigint') throw new Error(`etcd-proto: field ${field} is not a message`);
    return readFields(v);
  });
}

// --------------------------------------------------------------------------------------------
// etcd's messages

/** etcdserverpb.RangeRequest. */
export interface RangeRequest {
  readonly key: Buffer;
  readonly rangeEnd?: Buffer;
  readonly limit?: number;
  readonly revision?: number;
  readonly serializable?: boolean;
  readonly keysOnly?: boolean;
  readonly countOnly?: boolean;
}

export function encodeRange(r: RangeRequest): Buffer {
  return new ProtoWriter().bytes(1, r.key).bytes(2, r.rangeEnd).uint(3, r.limit).uint(4, r.revision).bool(7, r.serializable).bool(8, r.keysOnly).bool(9, r.countOnly).finish();
}

/** etcdserverpb.PutRequest. */
export interface PutRequest {
  readonly key: Buffer;
  readonly value: Buffer;
  /** The lease to attach the key to (decimal int64). */
  readonly lease?: string;
  readonly prevKv?: boolean;
}

export function encodePut(r: PutRequest): Buffer {
  // value is written even when empty (proto3 would leave it out; etcd reads both as "").
  return new ProtoWriter().bytes(1, r.key).bytes(2, r.value.length > 0 ? r.value : undefined).int64(3, BigInt(r.lease ?? 0)).bool(4, r.prevKv).finish();
}

/** etcdserverpb.DeleteRangeRequest. */
export interface DeleteRangeRequest {
  readonly key: Buffer;
  readonly rangeEnd?: Buffer;
  readonly prevKv?: boolean;
}

export function encodeDeleteRange(r: DeleteRangeRequest): Buffer {
  return new ProtoWriter().bytes(1, r.key).bytes(2, r.rangeEnd).bool(3, r.prevKv).finish();
}

/** etcdserverpb.Compare.CompareResult and CompareTarget. */
export const COMPARE_RESULT = { equal: 0, greater: 1, less: 2, notEqual: 3 } as const;
export const COMPARE_TARGET = { version: 0, create: 1, mod: 2, value: 3 } as const;

/** etcdserverpb.Compare on a number (version, create_revision or mod_revision). */
export interface Compare {
  readonly key: Buffer;
  readonly result: keyof typeof COMPARE_RESULT;
  readonly target: 'version' | 'create' | 'mod';
  readonly value: number;
}

function encodeCompare(c: Compare): Buffer {
  // target_union is a oneof: its member is written even when 0 (Version == 0: "absent").
  const unionField = c.target === 'version' ? 4 : c.target === 'create' ? 5 : 6;
  return new ProtoWriter().uint(1, COMPARE_RESULT[c.result]).uint(2, COMPARE_TARGET[c.target]).bytes(3, c.key).uintAlways(unionField, c.value).finish();
}

/** etcdserverpb.RequestOp: one of its three requests. */
export type RequestOp = { readonly range: RangeRequest } | { readonly put: PutRequest } | { readonly deleteRange: DeleteRangeRequest };

function encodeRequestOp(op: RequestOp): Buffer {
  const w = new ProtoWriter();
  if ('range' in op) w.bytes(1, encodeRange(op.range));
  else if ('put' in op) w.bytes(2, encodePut(op.put));
  else w.bytes(3, encodeDeleteRange(op.deleteRange));
  return w.finish();
}

/** etcdserverpb.TxnRequest. */
export interface TxnRequest {
  readonly compare: readonly Compare[];
  readonly success: readonly RequestOp[];
  readonly failure?: readonly RequestOp[];
}

export function encodeTxn(t: TxnRequest): Buffer {
  const w = new ProtoWriter();
  for (const c of t.compare) w.bytes(1, encodeCompare(c));
  for (const op of t.success) w.bytes(2, encodeRequestOp(op));
  for (const op of t.failure ?? []) w.bytes(3, encodeRequestOp(op));
  return w.finish();
}

/** etcdserverpb.ResponseHeader: cluster_id as etcd3 (and so EtcdKv) gives it, the decimal uint64. */
export interface ResponseHeader {
  readonly clusterId: string;
  readonly revision: number;
}

/** A response's header; the responses inside a transaction's may have an empty one (or none). */
function decodeHeader(f: ProtoFields | null, required = true): ResponseHeader {
  if (!f) {
    if (required) throw new Error('etcd-proto: a response without its header');
    return { clusterId: '0', revision: 0 };
  }
  const id = lastOf(f, 1);
  return { clusterId: (typeof id === 'bigint' ? id : 0n).toString(), revision: numberField(f, 3) };
}

/** mvccpb.KeyValue. */
export interface KeyValue {
  readonly key: Buffer;
  readonly value: Buffer;
  readonly createRevision: number;
  readonly modRevision: number;
  readonly version: number;
  /** The lease the key is attached to (decimal int64), only when it is attached to one. */
  readonly lease?: string;
}

function decodeKeyValue(f: ProtoFields): KeyValue {
  const lease = bigintField(f, 6);
  return { key: bytesField(f, 1), createRevision: numberField(f, 2), modRevision: numberField(f, 3), version: numberField(f, 4), value: bytesField(f, 5), ...(lease !== 0n ? { lease: lease.toString() } : {}) };
}

export interface RangeResponse {
  readonly header: ResponseHeader;
  readonly kvs: KeyValue[];
  readonly more: boolean;
  readonly count: number;
}

function rangeResponseOf(f: ProtoFields, inner = false): RangeResponse {
  return { header: decodeHeader(messageField(f, 1), !inner), kvs: messagesField(f, 2).map(decodeKeyValue), more: boolField(f, 3), count: numberField(f, 4) };
}

export function decodeRangeResponse(buf: Buffer): RangeResponse {
  return rangeResponseOf(readFields(buf));
}

export interface PutResponse {
  readonly header: ResponseHeader;
  readonly prevKv: KeyValue | null;
}

function putResponseOf(f: ProtoFields, inner = false): PutResponse {
  const prev = messageField(f, 2);
  return { header: decodeHeader(messageField(f, 1), !inner), prevKv: prev ? decodeKeyValue(prev) : null };
}

export interface DeleteRangeResponse {
  readonly header: ResponseHeader;
  readonly deleted: number;
}

function deleteRangeResponseOf(f: ProtoFields, inner = false): DeleteRangeResponse {
  return { header: decodeHeader(messageField(f, 1), !inner), deleted: numberField(f, 2) };
}

export function decodeDeleteRangeResponse(buf: Buffer): DeleteRangeResponse {
  return deleteRangeResponseOf(readFields(buf));
}

/** etcdserverpb.ResponseOp: the response of the RequestOp at the same place. */
export type ResponseOp = { readonly range: RangeResponse } | { readonly put: PutResponse } | { readonly deleteRange: DeleteRangeResponse } | { readonly other: true };

export interface TxnResponse {
  readonly header: ResponseHeader;
  readonly succeeded: boolean;
  readonly responses: ResponseOp[];
}

export function decodeTxnResponse(buf: Buffer): TxnResponse {
  const f = readFields(buf);
  const responses = messagesField(f, 3).map((op): ResponseOp => {
    const range = messageField(op, 1);
    if (range) return { range: rangeResponseOf(range, true) };
    const put = messageField(op, 2);
    if (put) return { put: putResponseOf(put, true) };
    const del = messageField(op, 3);
    if (del) return { deleteRange: deleteRangeResponseOf(del, true) };
    return { other: true };
  });
  return { header: decodeHeader(messageField(f, 1)), succeeded: boolField(f, 2), responses };
}

// --------------------------------------------------------------------------------------------
// The Lease service, as far as podway's start uses it (control/node-live.ts): LeaseTimeToLive,
// LeaseGrant and LeaseRevoke (the start's claim of its liveness key).

/** etcdserverpb.LeaseTimeToLiveRequest (ID: the lease, decimal int64). */
export function encodeLeaseTimeToLive(id: string): Buffer {
  return new ProtoWriter().int64(1, BigInt(id)).finish();
}

/** etcdserverpb.LeaseTimeToLiveResponse: TTL the seconds left (-1: expired or never granted). */
export interface LeaseTimeToLiveResponse {
  readonly header: ResponseHeader;
  readonly ttl: number;
}

export function decodeLeaseTimeToLiveResponse(buf: Buffer): LeaseTimeToLiveResponse {
  const f = readFields(buf);
  return { header: decodeHeader(messageField(f, 1)), ttl: numberField(f, 3) };
}

/** etcdserverpb.LeaseGrantRequest (TTL in seconds; ID 0: etcd chooses). */
export function encodeLeaseGrant(ttlSeconds: number): Buffer {
  return new ProtoWriter().int64(1, BigInt(ttlSeconds)).finish();
}

/** etcdserverpb.LeaseGrantResponse: the lease's ID (decimal int64), its TTL, etcd's error text. */
export interface LeaseGrantResponse {
  readonly header: ResponseHeader;
  readonly id: string;
  readonly ttl: number;
  readonly error: string;
}

export function decodeLeaseGrantResponse(buf: Buffer): LeaseGrantResponse {
  const f = readFields(buf);
  return { header: decodeHeader(messageField(f, 1)), id: bigintField(f, 2).toString(), ttl: numberField(f, 3), error: bytesField(f, 4).toString('utf8') };
}

/** etcdserverpb.LeaseRevokeRequest (ID: the lease, decimal int64); its response is a header. */
export function encodeLeaseRevoke(id: string): Buffer {
  return new ProtoWriter().int64(1, BigInt(id)).finish();
}

/**
 * etcdserverpb.LeaseKeepAliveRequest (ID: the lease, decimal int64): one renewal, sent as the one
 * message of a LeaseKeepAlive stream closed after it (clientv3's KeepAliveOnce).
 */
export function encodeLeaseKeepAlive(id: string): Buffer {
  return new ProtoWriter().int64(1, BigInt(id)).finish();
}

/** etcdserverpb.LeaseKeepAliveResponse: TTL the seconds the lease has after the renewal (0: it is gone). */
export function decodeLeaseKeepAliveResponse(buf: Buffer): { readonly header: ResponseHeader; readonly ttl: number } {
  const f = readFields(buf);
  return { header: decodeHeader(messageField(f, 1)), ttl: numberField(f, 3) };
}
