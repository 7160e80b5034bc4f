/**
 * Waits `ms`, or less when `signal` aborts (at once when it already has); never rejects: the
 * caller checks the signal after it, as its loop does anyway. A leaf module so that src/control
 * and src/cli share one (the retry loops of joins, the datastore and the liveness check).
 */
export function abortableSleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve();
    const timer = setTimeout(done, ms);
    function done() {
      clearTimeout(timer);
      signal?.removeEventListener('abort', done);
      resolve();
    }
    signal?.addEventListener('abort', done, { once: true });
  });
}
