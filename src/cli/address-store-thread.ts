/**
 * join.ts NodeAddressStore's methods, run in a thread of its own (address-store-worker.ts) so that
 * nothing of the address monitor's etcd calls runs on the forwarding thread: the thread starts at
 * the first call (the monitor's first look) and ends at close(). Errors come back as their message
 * (the monitor reads no more of them).
 */
import { Worker } from 'node:worker_threads';
import * as path from 'node:path';
import type { DatastoreSpec } from '../control/kv/spec';
import { silentLog, type Log } from '../observe/log';
import type { NodeAddressStore } from './join';
import type { AddressStoreAnswer, AddressStoreRequest, AddressStoreWorkerData } from './address-store-worker';
import type { LiveRecord, LivenessStatus } from '../control/node-live';

type Update = NodeAddressStore['update'];
type Request = Extract<AddressStoreRequest, { id: number }>;
type WithoutId<T> = T extends unknown ? Omit<T, 'id'> : never;

export class NodeAddressStoreThread {
  private worker: Worker | null = null;
  private next = 1;
  private readonly waiting = new Map<number, { resolve(v: unknown): void; reject(e: Error): void }>();
  private closed = false;
  /** podway's exit asked for (stopLiveness): read by the holder in the thread (address-store-worker.ts). */
  private readonly stopCell = new Int32Array(new SharedArrayBuffer(4));

  constructor(private readonly spec: DatastoreSpec, private readonly node: string, private readonly log: Log = silentLog) {}

  stored(): ReturnType<NodeAddressStore['stored']> {
    return this.ask({ op: 'stored' }) as ReturnType<NodeAddressStore['stored']>;
  }

  update(change: Parameters<Update>[0], expect?: Parameters<Update>[1]): ReturnType<Update> {
    return this.ask({ op: 'update', change, ...(expect !== undefined ? { expect } : {}) }) as ReturnType<Update>;
  }

  /**
   * Hold this node's liveness key from now until close() (join.ts NodeAddressStore.holdLiveness):
   * `lease`, the one the start claimed it with, renewed (null: one granted there).
   */
  holdLiveness(record: LiveRecord, lease: string | null = null): Promise<boolean> {
    if (this.livenessStopped()) return Promise.resolve(false); // exiting: the claim is revoked, not held
    this.liveRecord = record;
    this.liveLease = lease;
    return this.ask({ op: 'live', record, lease }) as Promise<boolean>;
  }

  /** The node's addresses as registered now: the liveness key's value follows (same lease). */
  setLiveAddresses(addresses: readonly string[]): void {
    if (!this.liveRecord) return;
    this.liveRecord = { ...this.liveRecord, addresses: [...addresses] };
    this.ask({ op: 'live-addresses', addresses: [...addresses] }).catch(() => undefined);
  }

  /** What the liveness key's renewals did (null: not held here); failures counted over every thread. */
  liveStatus(): LivenessStatus | null {
    const s = this.lastLive;
    return s && { ...s, renewalsFailed: s.renewalsFailed + this.liveFailedBefore, recordWritesFailed: s.recordWritesFailed + this.liveWritesFailedBefore };
  }

  /** The liveness key's record and lease, held again by a thread started after one ended. */
  private liveRecord: LiveRecord | null = null;
  private liveLease: string | null = null;
  private lastLive: LivenessStatus | null = null;
  /** The renewals failed, and the writes of the key's value failed, in the threads that ended. */
  private liveFailedBefore = 0;
  private liveWritesFailedBefore = 0;
  /** Told of each liveness status the thread posts (run.ts: the start's claim handed over once the holder renewed it). */
  onLiveStatus: (s: LivenessStatus) => void = () => {};

  /** New connections for the store (the node's address left or appeared); nothing if not opened. */
  reconnect(): void {
    this.worker?.postMessage({ op: 'reconnect' } satisfies AddressStoreRequest);
  }

  /**
   * podway exits: from now on the holder grants and writes nothing (its lease revoked by the exit,
   * by close() or by the start's own revoke, is not taken for an expiry to make good with a new
   * lease). Synchronous, through shared memory: seen by the thread at its next step, however busy
   * it is with messages; called before anything revokes a liveness lease of this run.
   */
  stopLiveness(): void {
    Atomics.store(this.stopCell, 0, 1);
  }

  /** Whether stopLiveness() was called. */
  livenessStopped(): boolean {
    return Atomics.load(this.stopCell, 0) === 1;
  }

  /** Closes the store and ends the thread (if started), the liveness held no more (stopLiveness, then the lease revoked); later calls fail. */
  async close(): Promise<void> {
    this.stopLiveness();
    if (this.closed) return;
    this.closed = true;
    if (!this.worker) return;
    await this.ask({ op: 'close' }, true).catch(() => undefined);
  }

  private thread(): Worker {
    if (this.worker) return this.worker;
    const data: AddressStoreWorkerData = { spec: this.spec, node: this.node, stop: this.stopCell.buffer as SharedArrayBuffer };
    const w = new Worker(path.resolve(__dirname, 'address-store-worker.js'), { workerData: data });
    w.unref(); // the monitor's timer and the store's calls are what keep the process running
    w.on('message', (m: AddressStoreAnswer) => {
      if ('liveStatus' in m) {
        this.lastLive = m.liveStatus;
        this.liveLease = m.liveStatus.lease ?? this.liveLease;
        this.onLiveStatus(m.liveStatus);
        return;
      }
      if ('log' in m) {
        if (m.log === 'warn') this.log.warn(m.message, { node: this.node });
        else this.log.info(m.message, { node: this.node });
        return;
      }
      const p = this.waiting.get(m.id);
      if (!p) return;
      this.waiting.delete(m.id);
      if (m.ok) p.resolve(m.value);
      else p.reject(new Error(m.message));
    });
    const gone = (why: string) => {
      if (this.worker === w) this.worker = null;
      if (this.lastLive) {
        this.liveFailedBefore += this.lastLive.renewalsFailed;
        this.liveWritesFailedBefore += this.lastLive.recordWritesFailed;
        this.lastLive = { ...this.lastLive, renewalsFailed: 0, recordWritesFailed: 0 };
      }
      // With no call waiting nobody hears of it otherwise (the next call starts a new thread);
      // the end that close() asked for is not news.
      if (this.waiting.size === 0 && !this.closed) this.log.warn(`the Node address store's thread ${why}; a new one starts at the next call`, { node: this.node });
      for (const p of this.waiting.values()) p.reject(new Error(`node ${this.node}: the Node address store's thread ${why}`));
      this.waiting.clear();
    };
    w.on('error', (e) => gone(`failed: ${e.message}`));
    w.on('exit', (code) => gone(`ended (${code})`));
    // A thread started again (its last one ended): it holds the liveness key again (its answer unheard).
    if (this.liveRecord) w.postMessage({ id: this.next++, op: 'live', record: this.liveRecord, lease: this.liveLease } satisfies AddressStoreRequest);
    return (this.worker = w);
  }

  private ask(req: WithoutId<Request>, closing = false): Promise<unknown> {
    if (this.closed && !closing) return Promise.reject(new Error(`node ${this.node}: the Node address store is closed`));
    const id = this.next++;
    const w = this.thread();
    return new Promise((resolve, reject) => {
      this.waiting.set(id, { resolve, reject });
      w.postMessage({ ...req, id } as AddressStoreRequest);
    });
  }
}
