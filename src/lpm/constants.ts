// Shared value conventions of the LPM tables.
//
// A route's value is a next-hop index: a small non-negative integer that the dataplane uses to
// index its own next-hop table. It is limited to 16 bits because the compiled FIB stores leaves
// in a Uint16Array (half the memory and cache footprint of 32-bit leaves), and 65,535 next hops
// is far more than one node ever has.

/** Returned by every lookup when no prefix covers the address. */
export const NO_ROUTE = 0xffff;
/** Largest next-hop index a route may carry (NO_ROUTE is reserved). */
export const MAX_NEXT_HOP = 0xfffe;

export function checkNextHop(nh: number, what: string): void {
  if (!Number.isInteger(nh) || nh < 0 || nh > MAX_NEXT_HOP) {
    throw new Error(`${what}: next hop ${nh} is not an integer in 0..${MAX_NEXT_HOP}`);
  }
}
