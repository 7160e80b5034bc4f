/**
 * Poll `cond` every `stepMs` until it holds; false when `timeoutMs` is up (asked once more at the
 * end, so a condition that became true during the last sleep still counts). The bound is for a
 * loaded host: callers assert the result, they never time anything with it.
 */
export async function until(cond: () => Promise<boolean> | boolean, timeoutMs = 30_000, stepMs = 50): Promise<boolean> {
  const end = Date.now() + timeoutMs;
  while (Date.now() < end) {
    if (await cond()) return true;
    await new Promise((r) => setTimeout(r, stepMs));
  }
  return await cond();
}

/** The error `p` rejects with; throws if it resolves (a call that had to fail did not). */
export async function failure(p: Promise<unknown>): Promise<Error> {
  try {
    await p;
  } catch (e) {
    return e as Error;
  }
  throw new Error('expected the call to fail');
}
