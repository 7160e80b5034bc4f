/**
 * Runs async tasks one after another, in the order they were queued: a task starts only once
 * every task queued before it has settled (resolved or rejected). For work that is idempotent
 * but not safe for two concurrent callers, e.g. `podway run`'s Node registrations (the start's,
 * the one again after a datastore replacement, the tunnel-address joins): two tunnel-address
 * reconciles at once can free the address the other just assigned (control/tunnel-addrs.ts).
 * Each caller gets its own task's outcome; one task failing does not stop the next.
 *
 * A leaf module (it imports nothing).
 */
export function oneAtATime(): <T>(task: () => Promise<T>) => Promise<T> {
  let tail: Promise<unknown> = Promise.resolve();
  return <T>(task: () => Promise<T>): Promise<T> => {
    const run = tail.then(task);
    tail = run.catch(() => undefined);
    return run;
  };
}
