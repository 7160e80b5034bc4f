/**
 * A FelixConfiguration written with apply, create or replace is stored for Calico's Felix and
 * calicoctl, and `podway run` reads the two Felix reads (`default`, `node.<node name>`), applying
 * live the fields it has an equivalent of (felix-settings.ts) below its own flags and FELIX_*
 * variables. A Calico operator expects the resource to take effect: so the write says on stderr,
 * per resource, which of its fields podway applies, which it takes from its environment at start
 * only, which values it will ignore as invalid, and which fields it has no equivalent of.
 */
import { FELIX_FIELDS, FELIX_FIELDS_START_ONLY, FELIX_VXLAN_FIELDS, FELIX_WIRE_FIELDS, parseVxlanField, wireFinding } from './felix-settings';
import { podwayCommand } from '../util/invocation';

/** The FelixConfiguration fields podway has an equivalent of: Felix's variable, and podway run's flag
 * (vxlanPort and vxlanVNI have none: taken at start from the variable or the resources). */
export const FELIX_FIELDS_PODWAY_READS: Readonly<Record<string, { env: string; flag?: string }>> = {
  ...Object.fromEntries(FELIX_FIELDS.map((f) => [f.field, { env: f.env, flag: f.flag }])),
  ...FELIX_FIELDS_START_ONLY,
  ...Object.fromEntries(FELIX_VXLAN_FIELDS.map((f) => [f.field, { env: f.env }])),
};

function scalar(v: unknown): string {
  return typeof v === 'string' || typeof v === 'number' || typeof v === 'boolean' ? String(v) : JSON.stringify(v);
}

/** "takes" for one field, "take" for several: the verb of the note's lists. */
const takes = (fields: readonly string[]): string => (fields.length === 1 ? 'takes' : 'take');

/** The note for each FelixConfiguration among `objects` (written resources), one line each; [] when none. */
export function felixConfigurationNotes(objects: readonly unknown[]): string[] {
  const notes: string[] = [];
  for (const o of objects) {
    const obj = o as { kind?: unknown; metadata?: { name?: unknown }; spec?: unknown };
    if (obj?.kind !== 'FelixConfiguration') continue;
    const name = typeof obj.metadata?.name === 'string' ? obj.metadata.name : '?';
    const spec = obj.spec !== null && typeof obj.spec === 'object' && !Array.isArray(obj.spec) ? obj.spec as Record<string, unknown> : {};
    const fields = Object.keys(spec);
    // Felix (and podway run) read `default` and `node.<its node>` only
    if (name !== 'default' && !name.startsWith('node.')) {
      notes.push(`podway: note: FelixConfiguration ${name} is stored for Calico's Felix; podway run, as Felix, reads only FelixConfiguration default and node.<node name>`);
      continue;
    }
    const live: string[] = [];
    const invalid: string[] = [];
    for (const f of FELIX_FIELDS) {
      if (!fields.includes(f.field) || spec[f.field] === null) continue;
      try {
        f.parse(spec[f.field]);
        live.push(`${f.field} (under ${f.flag ? `${f.flag} and ` : ''}$${f.env})`);
      } catch (e) {
        invalid.push(`${f.field}: ${JSON.stringify(spec[f.field])} ${(e as Error).message}`);
      }
    }
    // vxlanPort / vxlanVNI: applied when podway run starts (Felix restarts itself on a change)
    const atStart: string[] = [];
    const atStartEnv: string[] = [];
    for (const f of FELIX_VXLAN_FIELDS) {
      if (!fields.includes(f.field) || spec[f.field] === null) continue;
      try {
        atStart.push(`${f.field} ${parseVxlanField(f.field, spec[f.field])}`);
        atStartEnv.push(`$${f.env}`);
      } catch (e) {
        invalid.push(`${f.field}: ${JSON.stringify(spec[f.field])} ${(e as Error).message}`);
      }
    }
    const startOnly = fields.filter((f) => f in FELIX_FIELDS_START_ONLY).map((f) => `${FELIX_FIELDS_START_ONLY[f]!.env}=${scalar(spec[f])} (or ${FELIX_FIELDS_START_ONLY[f]!.flag})`);
    // the tunnel wire fields: podway's own value is fine; another is named (podway run logs it as an error)
    const wire = FELIX_WIRE_FIELDS.map((w) => wireFinding(name, w.field, spec[w.field])).filter((w) => w !== null).map((w) => `${w.field} ${w.value} ${w.reason}`);
    const other = fields.filter((f) => !(f in FELIX_FIELDS_PODWAY_READS) && !FELIX_WIRE_FIELDS.some((w) => w.field === f) && !FELIX_VXLAN_FIELDS.some((w) => w.field === f));
    const target = name === 'default' ? 'every node' : `node ${name.slice('node.'.length)}`;
    const parts = [
      `podway: note: FelixConfiguration ${name} is stored; podway run applies it to ${target}`,
      live.length ? `: ${live.join(', ')} ${takes(live)} effect at once, also while it runs (a flag or variable given to podway run wins; \`${podwayCommand()} status\` shows where each setting comes from)` : '',
      atStart.length ? `; ${atStart.join(', ')} (VXLAN, under ${atStartEnv.join(' / ')}) ${takes(atStart)} effect at the next podway run start: restart podway run on every node together with Calico's (a node on another port or VNI cannot reach this node's pods)` : '',
      invalid.length ? `; ignored as invalid (the lower layer's value used): ${invalid.join('; ')}` : '',
      startOnly.length ? `; the metrics settings are read from podway run's environment at its start only: set ${startOnly.join(', ')} (contrib/systemd/podway.env)` : '',
      wire.length ? `; WARNING, the tunnel wire: ${wire.join('; ')}` : '',
      other.length ? `; podway has no equivalent of ${other.join(', ')}` : '',
      fields.length === 0 ? ` (podway applies ${FELIX_FIELDS.map((f) => f.field).join(', ')})` : '',
    ];
    notes.push(parts.join(''));
  }
  return notes;
}
