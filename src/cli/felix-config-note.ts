/**
 * A FelixConfiguration written with apply, create or replace is stored (for Calico's Felix and
 * calicoctl) but not read by `podway run`, which takes the few Felix settings it has from Felix's
 * environment variables (or its own flags). A Calico operator expects the resource to take effect:
 * so the write says on stderr, per resource, which of its fields podway has an equivalent of (with
 * the variable to set, and the value the resource gives) and which it has none of.
 */

/** The FelixConfiguration fields podway has an equivalent of: Felix's variable, and podway run's flag. */
export const FELIX_FIELDS_PODWAY_READS: Readonly<Record<string, { env: string; flag: string }>> = {
  logSeverityScreen: { env: 'FELIX_LOGSEVERITYSCREEN', flag: '--log-level' },
  prometheusMetricsEnabled: { env: 'FELIX_PROMETHEUSMETRICSENABLED', flag: '--metrics-port' },
  prometheusMetricsPort: { env: 'FELIX_PROMETHEUSMETRICSPORT', flag: '--metrics-port' },
  prometheusMetricsHost: { env: 'FELIX_PROMETHEUSMETRICSHOST', flag: '--metrics-host' },
  natOutgoingExclusions: { env: 'FELIX_NATOUTGOINGEXCLUSIONS', flag: '--nat-outgoing-exclusions' },
  defaultEndpointToHostAction: { env: 'FELIX_DEFAULTENDPOINTTOHOSTACTION', flag: '--endpoint-to-host' },
  allowVXLANPacketsFromWorkloads: { env: 'FELIX_ALLOWVXLANPACKETSFROMWORKLOADS', flag: '--allow-vxlan-from-pods' },
  allowIPIPPacketsFromWorkloads: { env: 'FELIX_ALLOWIPIPPACKETSFROMWORKLOADS', flag: '--allow-ipip-from-pods' },
};

function scalar(v: unknown): string {
  return typeof v === 'string' || typeof v === 'number' || typeof v === 'boolean' ? String(v) : JSON.stringify(v);
}

/** The note for each FelixConfiguration among `objects` (written resources), one line each; [] when none. */
export function felixConfigurationNotes(objects: readonly unknown[]): string[] {
  const notes: string[] = [];
  for (const o of objects) {
    const obj = o as { kind?: unknown; metadata?: { name?: unknown }; spec?: unknown };
    if (obj?.kind !== 'FelixConfiguration') continue;
    const name = typeof obj.metadata?.name === 'string' ? obj.metadata.name : '?';
    const spec = obj.spec !== null && typeof obj.spec === 'object' && !Array.isArray(obj.spec) ? obj.spec as Record<string, unknown> : {};
    const fields = Object.keys(spec);
    const known = fields.filter((f) => f in FELIX_FIELDS_PODWAY_READS);
    const other = fields.filter((f) => !(f in FELIX_FIELDS_PODWAY_READS));
    const set = known.map((f) => `${FELIX_FIELDS_PODWAY_READS[f]!.env}=${scalar(spec[f])} (or ${FELIX_FIELDS_PODWAY_READS[f]!.flag})`);
    const parts = [
      `podway: note: FelixConfiguration ${name} is stored for Calico's Felix; podway run does not read it`,
      set.length ? `: for podway set ${set.join(', ')} in podway run's environment (contrib/systemd/podway.env), read at its start` : '',
      other.length ? `; podway has no equivalent of ${other.join(', ')}` : '',
      set.length === 0 && other.length === 0 ? ` (podway reads ${Object.values(FELIX_FIELDS_PODWAY_READS).map((v) => v.env).filter((v, k, a) => a.indexOf(v) === k).join(', ')} from its environment)` : '',
    ];
    notes.push(parts.join(''));
  }
  return notes;
}
