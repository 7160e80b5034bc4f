/**
 * The clock of deadlines and bounds: monotonic milliseconds (performance.now(): Node's hrtime, the
 * kernel's CLOCK_MONOTONIC), not the wall clock. Date.now() steps when the time is set (NTP's step
 * at boot, a VM resumed, an operator's `date -s`): a deadline read on it would expire at once after
 * a step forward, and after a step back hang (an hour back: an hour) or keep an endpoint "failed
 * lately" for as long. Only differences of monoNow() mean anything; it has fractions of a ms
 * (round before putting one on the wire: etcd refuses a `grpc-timeout` of `1500.25m`).
 */
export function monoNow(): number {
  return performance.now();
}

/**
 * A deadline for grpc-js (etcd3's calls, a channel's watchConnectivityState) that ends at `endMono`
 * on the monotonic clock. grpc-js takes a Date and turns it into a relative timeout with Date.now()
 * each time it reads it (the call's timer, the `grpc-timeout` header, a retry's timer); here its
 * getTime() is always "now plus the monotonic time left", so a wall-clock step between the call
 * and those reads neither ends nor stretches it.
 */
export class MonoDeadline extends Date {
  constructor(readonly endMono: number) {
    super(Date.now() + Math.max(0, Math.ceil(endMono - monoNow())));
  }

  override getTime(): number {
    return Date.now() + Math.max(0, Math.ceil(this.endMono - monoNow()));
  }

  override valueOf(): number {
    return this.getTime();
  }
}
