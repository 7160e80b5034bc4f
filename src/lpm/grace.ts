// Memory reuse under a one-batch grace period, shared by RouteTable4 and RouteTable6 (their
// `recycleDirs` option). A FIB replaced by batch k is still read until batch k+1 starts, never
// after, so what only it referenced may be overwritten from batch k+1 on. Reusing warm memory
// matters on a VM: a fresh typed array page-faults on first write (~3 ms per MiB measured here),
// and V8 frees an ArrayBuffer only when a GC collects it (bench/lpm/README.md, "Recycling").

/**
 * The dir a batch edits: a copy of the current one, written into the buffer of the FIB published
 * two batches earlier (fresh only for the first two batches).
 */
export class DirRecycler {
  private spare: Int32Array | null = null;
  private prev: Int32Array | null = null;

  constructor(private readonly size: number) {}

  /** A copy of `cur` (the current FIB's dir) to edit for the next FIB. */
  next(cur: Int32Array): Int32Array {
    const dir = this.spare ?? new Int32Array(this.size);
    dir.set(cur);
    this.spare = this.prev;
    this.prev = cur;
    return dir;
  }
}

/**
 * Blocks (by index or offset) a batch replaced: free for reuse once the next batch starts. Blocks
 * come in `classes` size classes (class c holds blocks of one size, chosen by the owner), and a
 * block is only reused for its own class. With `enabled` false nothing is ever reused (snapshot
 * semantics).
 */
export class GracePool {
  /** Pairs (block, class) retired by the batch being built. */
  private retired: number[] = [];
  private readonly free: number[][] = [];

  constructor(readonly enabled: boolean, classes = 1) {
    for (let c = 0; c < classes; c++) this.free.push([]);
  }

  /** The block is no longer referenced by the FIB being built. */
  retire(block: number, cls = 0): void {
    if (this.enabled) this.retired.push(block, cls);
  }

  /** A new batch starts: the blocks retired by the previous one become free. */
  startBatch(): void {
    const r = this.retired;
    for (let i = 0; i < r.length; i += 2) this.free[r[i + 1]].push(r[i]);
    r.length = 0;
  }

  /** A free block of class `cls`, or -1. */
  take(cls = 0): number {
    const l = this.free[cls];
    return l.length > 0 ? l.pop()! : -1;
  }
}
