/**
 * Felix's settings that `podway run` has an equivalent of, from every layer Felix reads them from,
 * with Felix's precedence (its config_params.go: a value from a higher source wins): podway's own
 * flag > the environment (FELIX_*, and LOG_LEVEL for the log level) > FelixConfiguration
 * `node.<this node>` > FelixConfiguration `default` > the built-in default. podway has no Felix
 * config file, so that layer is absent.
 *
 * The two resources come from the datastore with the model (the model thread puts their specs on
 * it: route-calc.ts NodeDataplaneModel.felix), so every datastore (file, etcd, embedded) gives them,
 * a change of one is a new model, and the model cache keeps them for a start on the cache. Each
 * field is judged on its own: an invalid one is named (resource, field, value, why), counted, and
 * ignored, the next lower layer's value used (Felix puts its built-in default in its place:
 * docs/calico-differences.md); the other fields of that resource still apply.
 *
 * Every field here is applied live by `podway run` (Felix restarts itself on a change of its
 * resolved settings; podway changes them in place), but vxlanPort and vxlanVNI (FELIX_VXLAN_FIELDS),
 * taken at podway run's start. The metrics fields (prometheusMetrics*) are
 * not: the metrics server answers /readyz before the datastore is read, so they are taken from
 * --metrics-port / FELIX_PROMETHEUSMETRICS* at start only; a FelixConfiguration giving them is
 * said not to be applied (FELIX_FIELDS_START_ONLY).
 */
import type { FelixLayers } from '../control/route-calc';
import { parseLogLevel, type LogLevel } from '../observe/log';
import { NAT_OUTGOING_EXCLUSIONS, type NatOutgoingExclusions } from '../dataplane/nat';
import { VXLAN_PORT } from '../packet/vxlan';
import { CALICO_VNI } from '../dataplane/nexthops';
import { FELIX_MTU_FIELDS, parseTunnelMtu } from '../control/felix-mtu';

/** The effective values of the settings podway applies from Felix's layers. */
export interface FelixSettings {
  logLevel: LogLevel;
  natOutgoingExclusions: NatOutgoingExclusions;
  endpointToHost: 'accept' | 'drop';
  allowVxlanFromPods: boolean;
  allowIpipFromPods: boolean;
  /** Felix's vxlanMTU, vxlanMTUV6, ipipMTU (0: auto). The model thread computes the model's MTUs
   * from the same layers (control/felix-mtu.ts), so a change comes with a new model. */
  vxlanMtu: number;
  vxlanMtuV6: number;
  ipipMtu: number;
}
export type FelixKey = keyof FelixSettings;

interface FieldDef {
  /** The FelixConfiguration spec field. */
  readonly field: string;
  readonly key: FelixKey;
  /** podway run's flag (none for the MTUs) and Felix's variable (LOG_LEVEL, read before FELIX_LOGSEVERITYSCREEN, too). */
  readonly flag?: string;
  readonly env: string;
  /** podway's default (defaultEndpointToHostAction: accept, what calico.yaml sets; Felix's own is Drop). */
  readonly builtIn: FelixSettings[FelixKey];
  /** A datastore value (JSON: a string, or a boolean for the booleans) to the setting; throws the reason. */
  readonly parse: (v: unknown) => FelixSettings[FelixKey];
}

/** Felix's BoolParam words (true/1/yes/y/t, false/0/no/n/f, any case), or a JSON boolean. */
function felixBool(v: unknown): boolean {
  if (typeof v === 'boolean') return v;
  if (typeof v === 'string') {
    const t = v.trim().toLowerCase();
    if (['true', '1', 'yes', 'y', 't'].includes(t)) return true;
    if (['false', '0', 'no', 'n', 'f'].includes(t)) return false;
  }
  throw new Error('is not a boolean (true or false)');
}

function felixString(v: unknown): string {
  if (typeof v !== 'string') throw new Error('is not a string');
  return v;
}

export const FELIX_FIELDS: readonly FieldDef[] = [
  {
    field: 'logSeverityScreen', key: 'logLevel', flag: '--log-level', env: 'FELIX_LOGSEVERITYSCREEN', builtIn: 'info',
    parse: (v) => {
      try {
        return parseLogLevel(felixString(v), 'x');
      } catch (e) {
        throw new Error((e as Error).message.replace(/^x: unknown log level "[^"]*"/, 'is not a log level'));
      }
    },
  },
  {
    field: 'natOutgoingExclusions', key: 'natOutgoingExclusions', flag: '--nat-outgoing-exclusions', env: 'FELIX_NATOUTGOINGEXCLUSIONS', builtIn: 'IPPoolsOnly',
    parse: (v) => {
      const t = felixString(v).trim().toLowerCase();
      const found = NAT_OUTGOING_EXCLUSIONS.find((x) => x.toLowerCase() === t);
      if (!found) throw new Error('is not IPPoolsOnly or IPPoolsAndHostIPs');
      return found;
    },
  },
  {
    field: 'defaultEndpointToHostAction', key: 'endpointToHost', flag: '--endpoint-to-host', env: 'FELIX_DEFAULTENDPOINTTOHOSTACTION', builtIn: 'accept',
    parse: (v) => {
      const t = felixString(v).trim().toLowerCase();
      // Felix's Return leaves the decision to the host's own INPUT rules: podway's table leaves
      // them to the host's other rules as well (main.ts parseEndpointToHost)
      if (t === 'accept' || t === 'return') return 'accept';
      if (t === 'drop') return 'drop';
      throw new Error('is not Drop, Accept or Return');
    },
  },
  { field: 'allowVXLANPacketsFromWorkloads', key: 'allowVxlanFromPods', flag: '--allow-vxlan-from-pods', env: 'FELIX_ALLOWVXLANPACKETSFROMWORKLOADS', builtIn: false, parse: felixBool },
  { field: 'allowIPIPPacketsFromWorkloads', key: 'allowIpipFromPods', flag: '--allow-ipip-from-pods', env: 'FELIX_ALLOWIPIPPACKETSFROMWORKLOADS', builtIn: false, parse: felixBool },
  // the tunnel MTUs (0: auto, the underlay's less the overhead): control/felix-mtu.ts
  ...FELIX_MTU_FIELDS.map((m) => ({ field: m.field, key: (m.tunnel === 'vxlan' ? 'vxlanMtu' : m.tunnel === 'vxlan6' ? 'vxlanMtuV6' : 'ipipMtu') as FelixKey, env: m.env, builtIn: 0, parse: (v: unknown) => parseTunnelMtu(v, m.min) })),
];

/** Felix fields podway takes from its environment (or flags) at start only, never from a FelixConfiguration. */
/** podway run's flags of the settings above, for its --help (main.ts: a name without FELIX_ in it,
 * as the note's test reads every FELIX_ word of main.ts as a variable podway reads). */
export function felixSettingFlags(): string[] {
  return FELIX_FIELDS.flatMap((f) => (f.flag ? [f.flag] : []));
}

export const FELIX_FIELDS_START_ONLY: Readonly<Record<string, { env: string; flag: string }>> = {
  prometheusMetricsEnabled: { env: 'FELIX_PROMETHEUSMETRICSENABLED', flag: '--metrics-port' },
  prometheusMetricsPort: { env: 'FELIX_PROMETHEUSMETRICSPORT', flag: '--metrics-port' },
  prometheusMetricsHost: { env: 'FELIX_PROMETHEUSMETRICSHOST', flag: '--metrics-host' },
};

/**
 * Felix's tunnel wire settings podway does not use: none left (vxlanPort and vxlanVNI are
 * FELIX_VXLAN_FIELDS, the MTUs FELIX_FIELDS: control/felix-mtu.ts); kept for the next. Each one given (a
 * FelixConfiguration's node.NAME or default, or podway run's environment) is named in an error in
 * the log and listed by `podway status` (felix settings lines), with podway's value in its place.
 */
export const FELIX_WIRE_FIELDS: readonly { readonly field: string; readonly env: string; readonly podway: number; readonly what: string; readonly max: number }[] = [
];

/**
 * Felix's VXLAN port and VNI (vxlanPort, vxlanVNI; FELIX_VXLANPORT, FELIX_VXLANVNI): the UDP
 * destination port and VNI of the node's VXLAN, sent and received. Felix restarts itself when its
 * resolved settings change; podway applies them at `podway run`'s start (the tunnel sockets, the
 * underlay's filter, the nft tables, the addon's C paths and every forwarding thread take them
 * then): a change while it runs is said (log, status, apply's note) to take effect at the next
 * start. Layers: FELIX_* > FelixConfiguration node.NAME > default > Calico's 4789 / 4096 (no flag).
 */
export const FELIX_VXLAN_FIELDS: readonly { readonly field: 'vxlanPort' | 'vxlanVNI'; readonly env: string; readonly builtIn: number; readonly min: number; readonly max: number }[] = [
  { field: 'vxlanPort', env: 'FELIX_VXLANPORT', builtIn: VXLAN_PORT, min: 1, max: 65535 },
  { field: 'vxlanVNI', env: 'FELIX_VXLANVNI', builtIn: CALICO_VNI, min: 0, max: 16777215 },
];

/** The VXLAN wire: Felix's vxlanPort and vxlanVNI. */
export interface FelixVxlanWire { readonly vxlanPort: number; readonly vxlanVNI: number }

/** A vxlanPort/vxlanVNI value (a JSON number, or the environment's digits) or throws the reason. */
export function parseVxlanField(field: string, raw: unknown): number {
  const f = FELIX_VXLAN_FIELDS.find((x) => x.field === field)!;
  const n = typeof raw === 'number' ? raw : typeof raw === 'string' && /^\s*\d+\s*$/.test(raw) ? Number(raw) : NaN;
  if (!Number.isInteger(n) || n < f.min || n > f.max) throw new Error(`is not an integer ${f.min}..${f.max}`);
  return n;
}

/** A wire setting given (a FelixConfiguration's field, or FELIX_* variable) with a value podway does not use. */
export interface UnhonouredFelixField {
  /** "node.NAME", "default" or "$FELIX_VXLANPORT". */
  readonly resource: string;
  readonly field: string;
  readonly value: string;
  /** Why, and what podway uses instead. */
  readonly reason: string;
}

/** The wire finding for one given value (JSON number, or a string of digits as the environment gives), or null when podway's. */
export function wireFinding(resource: string, field: string, raw: unknown): UnhonouredFelixField | null {
  const f = FELIX_WIRE_FIELDS.find((x) => x.field === field);
  if (!f || raw === null || raw === undefined) return null;
  const n = typeof raw === 'number' ? raw : typeof raw === 'string' && /^\s*\d+\s*$/.test(raw) ? Number(raw) : NaN;
  const value = shown(raw);
  if (!Number.isInteger(n) || n < 0 || n > f.max) return { resource, field, value, reason: `is not a number 0..${f.max}: ignored (${f.what})` };
  if (n === f.podway) return null;
  return { resource, field, value, reason: `is not honoured: ${f.what}${f.podway === 0 ? '' : `; a Calico node using ${n} and this node cannot reach each other's pods`}` };
}

/** The settings given to `podway run` itself (flag or environment), each with where it came from
 * ("--log-level", "$FELIX_NATOUTGOINGEXCLUSIONS"); a setting given neither way is absent. */
export interface LocalFelix {
  readonly values: Partial<FelixSettings>;
  readonly from: Partial<Record<FelixKey, string>>;
  /** podway run's environment's FELIX_* wire variables (FELIX_WIRE_FIELDS), as given. */
  readonly wireEnv?: Readonly<Record<string, string | undefined>>;
}

/** A FelixConfiguration field whose value podway cannot use (ignored: the lower layer's used). */
export interface InvalidFelixField {
  readonly resource: string;
  readonly field: string;
  readonly value: string;
  readonly reason: string;
}

export interface ResolvedFelix {
  readonly settings: FelixSettings;
  /** Where each setting's value came from: the flag or variable, "FelixConfiguration node.X",
   * "FelixConfiguration default" or "built-in default". */
  readonly source: Record<FelixKey, string>;
  readonly invalid: readonly InvalidFelixField[];
  /** Start-only fields a FelixConfiguration gives (not applied), e.g. "default: prometheusMetricsPort 9095". */
  readonly notApplied: readonly string[];
  /** Wire settings given with a value podway does not use (FELIX_WIRE_FIELDS). */
  readonly unhonoured: readonly UnhonouredFelixField[];
  /** vxlanPort and vxlanVNI as the layers give them now (FELIX_VXLAN_FIELDS), each with its source;
   * a FelixConfiguration's invalid one is in `invalid` (the environment's is the caller's to refuse:
   * resolveFelix). */
  readonly vxlan: FelixVxlanWire;
  readonly vxlanSource: Readonly<Record<'vxlanPort' | 'vxlanVNI', string>>;
}

function shown(v: unknown): string {
  return typeof v === 'string' ? JSON.stringify(v) : JSON.stringify(v) ?? String(v);
}

/** The effective settings from the local layers and the two resources (`layers` undefined: none known).
 * The local layers come checked: `podway run` (main.ts) refuses a bad flag or FELIX_ variable with
 * exit 2 before anything starts, FELIX_VXLANPORT and FELIX_VXLANVNI among them; one of those that
 * does not parse here is a caller's mistake, thrown (not ignored as a FelixConfiguration's field is). */
export function resolveFelix(local: LocalFelix, layers: FelixLayers | undefined, node: string): ResolvedFelix {
  const settings = {} as Record<FelixKey, unknown>;
  const source = {} as Record<FelixKey, string>;
  const invalid: InvalidFelixField[] = [];
  const ordered: [string, Readonly<Record<string, unknown>> | null][] = [[`node.${node}`, layers?.node ?? null], ['default', layers?.default ?? null]];
  for (const f of FELIX_FIELDS) {
    let value: unknown;
    let from: string | undefined;
    if (local.values[f.key] !== undefined) {
      value = local.values[f.key];
      from = local.from[f.key] ?? f.flag ?? `$${f.env}`;
    }
    // every resource's value is judged (an invalid one is said even where a higher layer wins)
    for (const [name, spec] of ordered) {
      if (spec === null || !Object.prototype.hasOwnProperty.call(spec, f.field)) continue;
      const raw = spec[f.field];
      // a field set to null (JSON) is as if absent, as Felix reads an unset pointer field
      if (raw === null || raw === undefined) continue;
      try {
        const v = f.parse(raw);
        if (from === undefined) {
          value = v;
          from = `FelixConfiguration ${name}`;
        }
      } catch (e) {
        invalid.push({ resource: name, field: f.field, value: shown(raw), reason: (e as Error).message });
      }
    }
    settings[f.key] = from === undefined ? f.builtIn : value;
    source[f.key] = from ?? 'built-in default';
  }
  const notApplied: string[] = [];
  for (const [name, spec] of ordered) {
    for (const field of Object.keys(FELIX_FIELDS_START_ONLY)) {
      if (spec && spec[field] !== undefined && spec[field] !== null) notApplied.push(`${name}: ${field} ${shown(spec[field])}`);
    }
  }
  const unhonoured: UnhonouredFelixField[] = [];
  for (const f of FELIX_WIRE_FIELDS) {
    const env = local.wireEnv?.[f.env];
    const e = env === undefined || env === '' ? null : wireFinding(`$${f.env}`, f.field, env);
    if (e) unhonoured.push(e);
    for (const [name, spec] of ordered) {
      const r = spec ? wireFinding(name, f.field, spec[f.field]) : null;
      if (r) unhonoured.push(r);
    }
  }
  const vxlan = { vxlanPort: VXLAN_PORT, vxlanVNI: CALICO_VNI };
  const vxlanSource = { vxlanPort: 'built-in default', vxlanVNI: 'built-in default' };
  for (const f of FELIX_VXLAN_FIELDS) {
    let from: string | undefined;
    const env = local.wireEnv?.[f.env];
    if (env !== undefined && env.trim() !== '') {
      try {
        vxlan[f.field] = parseVxlanField(f.field, env);
      } catch (e) {
        throw new Error(`$${f.env}: ${JSON.stringify(env)} ${(e as Error).message} (the caller checks it: podway run refuses it with exit 2)`);
      }
      from = `$${f.env}`;
    }
    // every resource's value is judged, as FELIX_FIELDS' are (an invalid one is said even where a higher layer wins)
    for (const [name, spec] of ordered) {
      const raw = spec?.[f.field];
      if (raw === null || raw === undefined) continue;
      try {
        const v = parseVxlanField(f.field, raw);
        if (from === undefined) {
          vxlan[f.field] = v;
          from = `FelixConfiguration ${name}`;
        }
      } catch (e) {
        invalid.push({ resource: name, field: f.field, value: shown(raw), reason: (e as Error).message });
      }
    }
    vxlanSource[f.field] = from ?? 'built-in default';
  }
  return { settings: settings as unknown as FelixSettings, source, invalid, notApplied, unhonoured, vxlan, vxlanSource };
}

/** A setting's value as `podway status` and the log say it (Felix's words for the enums). */
export function felixValueText(key: FelixKey, v: FelixSettings[FelixKey]): string {
  if (key === 'endpointToHost') return v === 'drop' ? 'Drop' : 'Accept';
  if ((key === 'vxlanMtu' || key === 'vxlanMtuV6' || key === 'ipipMtu') && v === 0) return '0 (auto)';
  return String(v);
}

/** What changed between two resolutions, for the log and the dataplane. */
export interface FelixChange {
  readonly key: FelixKey;
  readonly field: string;
  readonly was: string;
  readonly now: string;
  readonly source: string;
}

/**
 * The settings in force and their history: each new resolution (a model with the resources, or
 * without them) says what changed, which invalid fields are new (each counted once while it stays
 * the same), and which start-only fields are newly given.
 */
export class FelixConfigTracker {
  private resolved: ResolvedFelix;
  /** Invalid fields seen (counted once per resource, field and value while they last). */
  private invalidCount = 0;
  private invalidNow = new Set<string>();
  private notAppliedNow = new Set<string>();
  private unhonouredNow = new Set<string>();
  /** Where the resources last came from: the datastore, the model cache, or none yet. */
  private origin: 'datastore' | 'model cache' | null = null;
  /** vxlanPort and vxlanVNI in force since the dataplane started (vxlanAtStart), with their sources; null before. */
  private vxlanInForce: { wire: FelixVxlanWire; source: Readonly<Record<'vxlanPort' | 'vxlanVNI', string>> } | null = null;
  /** Fields whose configured value differs from the one in force, as last said ("vxlanPort 9000"). */
  private vxlanPendingNow = new Set<string>();
  /** Tunnel MTUs set above what the underlay takes (control/felix-mtu.ts tunnelMtuWarnings). */
  private mtuWarnings: readonly string[] = [];

  /** The model's tunnel MTU warnings now; those new since the last call returned (for the log). */
  setMtuWarnings(now: readonly string[]): string[] {
    const fresh = now.filter((w) => !this.mtuWarnings.includes(w));
    this.mtuWarnings = now;
    return fresh;
  }

  constructor(private readonly local: LocalFelix, private readonly node: string) {
    this.resolved = resolveFelix(local, undefined, node);
  }

  get settings(): FelixSettings {
    return this.resolved.settings;
  }

  /** vxlanPort and vxlanVNI as the layers give them now, with their sources (before a model was
   * read: podway run's environment, checked by main.ts, or the built-in default). */
  vxlanNow(): { readonly wire: FelixVxlanWire; readonly source: Readonly<Record<'vxlanPort' | 'vxlanVNI', string>> } {
    return { wire: this.resolved.vxlan, source: this.resolved.vxlanSource };
  }

  /** The VXLAN wire the dataplane starts on (the resolution now), in force until podway run stops. */
  vxlanAtStart(): FelixVxlanWire {
    this.vxlanInForce = this.vxlanNow();
    this.vxlanPendingNow.clear();
    return this.resolved.vxlan;
  }

  /** vxlanPort / vxlanVNI configured now with a value other than the one in force (none before the start). */
  vxlanPending(): { field: 'vxlanPort' | 'vxlanVNI'; configured: number; source: string; inForce: number }[] {
    const f = this.vxlanInForce;
    if (f === null) return [];
    return FELIX_VXLAN_FIELDS.filter((x) => this.resolved.vxlan[x.field] !== f.wire[x.field])
      .map((x) => ({ field: x.field, configured: this.resolved.vxlan[x.field], source: this.resolved.vxlanSource[x.field], inForce: f.wire[x.field] }));
  }

  /** Resolve again with a model's resources; what changed, what is newly invalid or not applied. */
  update(layers: FelixLayers | undefined, origin: 'datastore' | 'model cache'): { changes: FelixChange[]; newInvalid: InvalidFelixField[]; newNotApplied: string[]; newUnhonoured: UnhonouredFelixField[]; newVxlanPending: ReturnType<FelixConfigTracker['vxlanPending']> } {
    const was = this.resolved;
    const now = resolveFelix(this.local, layers ?? { default: null, node: null }, this.node);
    this.resolved = now;
    this.origin = origin;
    const changes: FelixChange[] = [];
    for (const f of FELIX_FIELDS) {
      const a = was.settings[f.key];
      const b = now.settings[f.key];
      if (a !== b || was.source[f.key] !== now.source[f.key]) {
        if (a === b) continue; // the same value from another layer: nothing to apply (status says where)
        changes.push({ key: f.key, field: f.field, was: felixValueText(f.key, a), now: felixValueText(f.key, b), source: now.source[f.key] });
      }
    }
    const key = (i: InvalidFelixField) => `${i.resource}\u0000${i.field}\u0000${i.value}`;
    const newInvalid = now.invalid.filter((i) => !this.invalidNow.has(key(i)));
    this.invalidCount += newInvalid.length;
    this.invalidNow = new Set(now.invalid.map(key));
    const newNotApplied = now.notApplied.filter((n) => !this.notAppliedNow.has(n));
    this.notAppliedNow = new Set(now.notApplied);
    const newUnhonoured = now.unhonoured.filter((i) => !this.unhonouredNow.has(key(i)));
    this.unhonouredNow = new Set(now.unhonoured.map(key));
    const pending = this.vxlanPending();
    const pkey = (p: { field: string; configured: number }) => `${p.field} ${p.configured}`;
    const newVxlanPending = pending.filter((p) => !this.vxlanPendingNow.has(pkey(p)));
    this.vxlanPendingNow = new Set(pending.map(pkey));
    return { changes, newInvalid, newNotApplied, newUnhonoured, newVxlanPending };
  }

  /** The source of `key`'s value now, e.g. "FelixConfiguration node.a". */
  sourceOf(key: FelixKey): string {
    return this.resolved.source[key];
  }

  /** For `podway status`: each setting, its value and source; invalid fields now and counted. */
  status(): { settings: { field: string; value: string; source: string }[]; origin: string | null; invalid: readonly InvalidFelixField[]; invalidSeen: number; notApplied: readonly string[]; unhonoured: readonly UnhonouredFelixField[]; vxlanPending: ReturnType<FelixConfigTracker['vxlanPending']>; mtuWarnings: readonly string[] } {
    // vxlanPort and vxlanVNI: the values in force (from the start on), with where they came from
    const wire = this.vxlanInForce ?? this.vxlanNow();
    return {
      settings: [
        ...FELIX_FIELDS.map((f) => ({ field: f.field, value: felixValueText(f.key, this.resolved.settings[f.key]), source: this.resolved.source[f.key] })),
        ...FELIX_VXLAN_FIELDS.map((f) => ({ field: f.field, value: String(wire.wire[f.field]), source: wire.source[f.field] })),
      ],
      vxlanPending: this.vxlanPending(),
      origin: this.origin,
      invalid: this.resolved.invalid,
      invalidSeen: this.invalidCount,
      notApplied: this.resolved.notApplied,
      unhonoured: this.resolved.unhonoured,
      mtuWarnings: this.mtuWarnings,
    };
  }
}

/** The log line for an invalid field: the resource and field named, what is used instead. */
export function invalidFieldLine(i: InvalidFelixField, tracker: FelixConfigTracker): string {
  const where = i.resource.startsWith('$') ? i.resource : `FelixConfiguration ${i.resource}`;
  const f = FELIX_FIELDS.find((x) => x.field === i.field);
  if (!f) {
    // vxlanPort / vxlanVNI: what the layers below give, applied at the next start
    const w = tracker.status().settings.find((s) => s.field === i.field);
    const pending = tracker.vxlanPending().find((p) => p.field === i.field);
    return `${where}: field ${i.field}: ${i.value} ${i.reason}: ignored; ${pending ? `${pending.configured} from ${pending.source} configured (takes effect at the next podway run start), ${w?.value} in force` : `${w?.value} from ${w?.source} in force`}`;
  }
  return `${where}: field ${i.field}: ${i.value} ${i.reason}: ignored; ${felixValueText(f.key, tracker.settings[f.key])} from ${tracker.sourceOf(f.key)} in force`;
}

/** The log line (and `podway status` line) for a vxlanPort / vxlanVNI configured but not in force. */
export function vxlanPendingLine(p: ReturnType<FelixConfigTracker['vxlanPending']>[number]): string {
  return `${p.field} ${p.configured} (from ${p.source}) takes effect at the next podway run start (Felix restarts itself on a change of it); ${p.inForce} in force until then: Calico nodes already using ${p.configured} and this node cannot reach each other's pods meanwhile`;
}

/** The log line (and `podway status` line) for a wire setting podway does not honour. */
export function unhonouredLine(u: UnhonouredFelixField): string {
  return `${u.resource.startsWith('$') ? u.resource : `FelixConfiguration ${u.resource}`}: field ${u.field}: ${u.value} ${u.reason}`;
}
