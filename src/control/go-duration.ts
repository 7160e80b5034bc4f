// Its own module: control/bgp/peering.ts (loaded by the forwarding thread) reads BGPPeer durations
// without loading zod and the resource schemas (e2e/restart-forwarding-etcd checks what that thread loads).

/**
 * A Go duration as Kubernetes' metav1.Duration takes it (time.ParseDuration: "120s", "1m30s",
 * "1.5h", "0"; a unit on every number but a lone 0), in whole seconds rounded as confd rounds them
 * (`int(math.Round(d.Seconds()))`); null when it is not one or is negative.
 */
export function goDurationSeconds(text: string): number | null {
  if (typeof text !== 'string') return null;
  const t = text.startsWith('+') ? text.slice(1) : text;
  if (t === '0') return 0;
  const units: Record<string, number> = { ns: 1e-9, us: 1e-6, 'µs': 1e-6, 'μs': 1e-6, ms: 1e-3, s: 1, m: 60, h: 3600 };
  const re = /(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)/gy;
  let seconds = 0;
  let at = 0;
  for (let m = re.exec(t); m !== null; m = re.exec(t)) {
    seconds += Number(m[1]) * units[m[2]!]!;
    at = re.lastIndex;
  }
  if (t === '' || at !== t.length) return null;
  return Math.round(seconds);
}
