/**
 * Felix's tunnel MTUs (FelixConfiguration vxlanMTU, vxlanMTUV6, ipipMTU; FELIX_VXLANMTU,
 * FELIX_VXLANMTUV6, FELIX_IPINIPMTU) and the pod MTU they give, shared by the node's model
 * (route-calc.ts, in `podway run`'s model thread) and the CNI plugin (cni/plugin.ts), so the two
 * always agree. Small and free of the dataplane: the CNI plugin loads it at every ADD.
 *
 * As Felix (felix/dataplane/linux/int_dataplane.go ConfigureDefaultMTUs, determinePodMTU):
 * - each tunnel's MTU (Calico's vxlan.calico / tunl0 / vxlan-v6.calico device MTU: the largest
 *   inner packet through the tunnel) is its setting, or with 0 or none the underlay's MTU less the
 *   tunnel's overhead (VXLAN 50, IPIP 20, IPv6 VXLAN 70);
 * - the pod MTU is the smallest tunnel MTU of the encapsulations in use, the underlay's with none;
 * - an encapsulation is in use while some pool has its mode other than Never, a disabled pool too
 *   (Felix's encapsulation calculator does not look at `disabled`, which only stops IPAM from
 *   handing out new addresses from it);
 * - the settings' precedence: the environment (podway run's FELIX_*) > FelixConfiguration
 *   node.<node> > FelixConfiguration default; 0 given in a higher layer is auto there.
 * podway's own: on an IPv6-only node (no IPv4 address) only the IPv6 pools count (it routes no
 * IPv4), and an invalid value (not an integer, below 68 or, for IPv6, 1280, above 65535) is ignored,
 * the next lower layer's used (Felix puts its default in its place).
 */

/** Bytes each tunnel adds: outer IPv4 20 (+ UDP 8 + VXLAN 8 + inner Ethernet 14); IPv6 VXLAN's outer IPv6 is 40. */
export const TUNNEL_OVERHEAD = { vxlan: 50, ipip: 20, vxlan6: 70 } as const;
export type Tunnel = keyof typeof TUNNEL_OVERHEAD;

/** The three settings: FelixConfiguration field, Felix's variable, the tunnel, the smallest valid MTU. */
export const FELIX_MTU_FIELDS: readonly { readonly field: 'vxlanMTU' | 'vxlanMTUV6' | 'ipipMTU'; readonly env: string; readonly tunnel: Tunnel; readonly min: number }[] = [
  { field: 'vxlanMTU', env: 'FELIX_VXLANMTU', tunnel: 'vxlan', min: 68 },
  { field: 'vxlanMTUV6', env: 'FELIX_VXLANMTUV6', tunnel: 'vxlan6', min: 1280 },
  { field: 'ipipMTU', env: 'FELIX_IPINIPMTU', tunnel: 'ipip', min: 68 },
];

/** A setting given per tunnel (absent or 0: auto). */
export type TunnelMtuSettings = Partial<Record<Tunnel, number>>;

/** One MTU setting's value (a JSON number, or digits as the environment gives them): 0 (auto) or
 * `min`..65535; throws the reason otherwise. */
export function parseTunnelMtu(v: unknown, min: number): number {
  const n = typeof v === 'number' ? v : typeof v === 'string' && /^\s*-?\d+\s*$/.test(v) ? Number(v) : NaN;
  if (!Number.isInteger(n)) throw new Error('is not an integer (an MTU, or 0 for auto)');
  if (n !== 0 && (n < min || n > 65535)) throw new Error(`is not 0 (auto) or an MTU ${min}..65535`);
  return n;
}

/** The two FelixConfiguration specs of a node (null: no such resource), as route-calc's FelixLayers. */
export interface FelixMtuLayers {
  readonly default: Readonly<Record<string, unknown>> | null;
  readonly node: Readonly<Record<string, unknown>> | null;
}

/** The settings in force: `local` (podway run's environment, parsed) over node.<node> over default;
 * an invalid or null field is skipped (the lower layer's used). */
export function resolveTunnelMtus(layers: FelixMtuLayers | undefined, local: TunnelMtuSettings = {}): TunnelMtuSettings {
  const out: TunnelMtuSettings = {};
  for (const f of FELIX_MTU_FIELDS) {
    if (local[f.tunnel] !== undefined) {
      out[f.tunnel] = local[f.tunnel];
      continue;
    }
    for (const spec of [layers?.node ?? null, layers?.default ?? null]) {
      const raw = spec?.[f.field];
      if (raw === undefined || raw === null) continue;
      try {
        out[f.tunnel] = parseTunnelMtu(raw, f.min);
        break;
      } catch {
        // named by felix-settings.ts (podway run) as an invalid field; the next layer's in force
      }
    }
  }
  return out;
}

/** Each tunnel's MTU on an underlay of MTU `underlay`: the setting, or the underlay's less the overhead. */
export interface TunnelMtus {
  readonly vxlan: number;
  readonly ipip: number;
  readonly vxlan6: number;
}

export function tunnelMtus(underlay: number, settings: TunnelMtuSettings = {}): TunnelMtus {
  const of = (t: Tunnel) => (settings[t] ? settings[t]! : underlay - TUNNEL_OVERHEAD[t]);
  return { vxlan: of('vxlan'), ipip: of('ipip'), vxlan6: of('vxlan6') };
}

/** Which tunnels the pools use (a disabled pool too, as Felix's encapsulation calculator). */
export type TunnelsInUse = Record<Tunnel, boolean>;

/** The pools' specs as stored (fields absent or null: Never). IPIP counts for IPv4 pools only. */
export function tunnelsInUse(pools: readonly { readonly cidr?: unknown; readonly vxlanMode?: unknown; readonly ipipMode?: unknown }[]): TunnelsInUse {
  const on = (m: unknown) => typeof m === 'string' && m !== '' && m !== 'Never';
  const v6 = (p: { cidr?: unknown }) => String(p.cidr ?? '').includes(':');
  return {
    vxlan: pools.some((p) => !v6(p) && on(p.vxlanMode)),
    ipip: pools.some((p) => !v6(p) && on(p.ipipMode) && !on(p.vxlanMode)),
    vxlan6: pools.some((p) => v6(p) && on(p.vxlanMode)),
  };
}

/** The pod MTU: the smallest tunnel MTU of those in use (on an IPv6-only node IPv6 VXLAN's alone),
 * the underlay's when none is. */
export function podMtuOf(underlay: number, mtus: TunnelMtus, inUse: TunnelsInUse, ipv6Only = false): number {
  let mtu = 0;
  for (const t of ipv6Only ? (['vxlan6'] as const) : (['vxlan', 'ipip', 'vxlan6'] as const)) {
    if (inUse[t] && (mtu === 0 || mtus[t] < mtu)) mtu = mtus[t];
  }
  return mtu === 0 ? underlay : mtu;
}

/** Tunnels in use whose MTU is set above what the underlay takes (its MTU less the overhead): a
 * packet bigger than that is answered with fragmentation needed (DF) or fragmented to that size (no
 * DF) by podway, which never fragments the outer packet. One sentence each, for the log and status. */
export function tunnelMtuWarnings(underlay: number, mtus: TunnelMtus, inUse: TunnelsInUse, ipv6Only = false): string[] {
  const out: string[] = [];
  for (const f of FELIX_MTU_FIELDS) {
    if (!inUse[f.tunnel] || (ipv6Only && f.tunnel !== 'vxlan6')) continue;
    const fits = underlay - TUNNEL_OVERHEAD[f.tunnel];
    if (mtus[f.tunnel] > fits) out.push(`${f.field} ${mtus[f.tunnel]} is larger than the underlay takes (${underlay} - ${TUNNEL_OVERHEAD[f.tunnel]} = ${fits}): pods get MTU ${mtus[f.tunnel]} as Felix gives them, but podway does not fragment the tunnel's outer packets, so a packet through it bigger than ${fits} is answered with fragmentation needed (DF set) or cut into fragments of ${fits} (no DF)`);
  }
  return out;
}
