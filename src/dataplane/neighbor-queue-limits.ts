/**
 * The neighbour queue's default limits (neighbor-queue.ts), in a module of their own: `podway run
 * --help` (cli/main.ts) states them, and every podway command builds that help, so they load
 * without the queue and the frame pool.
 */

/** Frames held per neighbour by default (the kernel's historic unres_qlen). */
export const NEIGHBOR_QUEUE_PER_NEIGHBOR = 3;
/** Frames held in all by default (one pool slot each: 256 x 2 KiB per worker; a 64 KiB
 * super-frame of 1,448-byte segments takes 46). */
export const NEIGHBOR_QUEUE_TOTAL = 256;
/** Bytes held per neighbour by default (frames as they will be sent): the kernel's default
 * unres_qlen_bytes (SK_WMEM_MAX), room for two whole 64 KiB TCP super-frames with their segments'
 * headers (~68-71 KiB each). */
export const NEIGHBOR_QUEUE_BYTES = 212_992;
