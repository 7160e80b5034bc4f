// The selector fields of the Calico kinds podway stores: checked at apply/create/replace and when a
// YAML file is loaded (calicoctl refuses a malformed selector at apply time; without this check
// `nodeSelector: "has(x"` was stored and only noticed by `podway run`, which skips such a peer).
// Values already stored (an etcd written by another tool) are not refused on load: the readers
// warn and leave the resource out of what the selector decides (bgp/peering.ts, ipam/records.ts).
import { parseSelector } from './ipam/selector';

/** Every selector-valued spec field, by kind (Calico's syntax; empty means "none" there). */
export const SELECTOR_FIELDS: Readonly<Record<string, readonly string[]>> = {
  IPPool: ['nodeSelector', 'namespaceSelector'],
  BGPPeer: ['nodeSelector', 'peerSelector', 'localWorkloadSelector'],
};

/** The malformed selectors of one resource (a parsed document), as issues naming the field. */
export function selectorIssues(raw: unknown): { path: string; message: string }[] {
  if (typeof raw !== 'object' || raw === null) return [];
  const r = raw as { kind?: unknown; spec?: unknown };
  const fields = typeof r.kind === 'string' && Object.prototype.hasOwnProperty.call(SELECTOR_FIELDS, r.kind) ? SELECTOR_FIELDS[r.kind] : undefined;
  if (!fields || typeof r.spec !== 'object' || r.spec === null) return [];
  const spec = r.spec as Record<string, unknown>;
  const issues: { path: string; message: string }[] = [];
  for (const f of fields) {
    const v = spec[f];
    if (typeof v !== 'string' || v.trim() === '') continue;
    try {
      parseSelector(v);
    } catch (e) {
      issues.push({ path: `spec.${f}`, message: `invalid selector: ${(e as Error).message}` });
    }
  }
  return issues;
}
