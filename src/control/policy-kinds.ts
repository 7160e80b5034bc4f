// Calico's network policy kinds. podway routes pod traffic as Felix does but enforces no policy:
// every pod's traffic is allowed whatever these say. They are stored and read in Calico's own etcd
// layout (calico-kinds.ts: `podway get/apply/delete` work on them, and a cluster shared with
// Calico nodes keeps them), and their presence is said wherever an operator looks (the run log,
// `podway status`, /metrics, `podway apply`), because a policy that silently does nothing is a
// security hole (docs/calico-differences.md "Network policy: not enforced"). Zod-free: the model
// thread and the CLI name these kinds without loading schemas.

/** Kinds stored and listed, never acted on. */
export const STORED_ONLY_KINDS = [
  'GlobalNetworkPolicy', 'NetworkPolicy', 'StagedGlobalNetworkPolicy', 'StagedNetworkPolicy',
  'StagedKubernetesNetworkPolicy', 'Tier', 'HostEndpoint', 'GlobalNetworkSet', 'NetworkSet',
] as const;

/**
 * The kinds that would change what traffic passes on a Calico node (policies, and host endpoints,
 * which put policy on the node's own interfaces). Staged policies only report on a Calico node;
 * tiers and network sets only order or feed policies: they are stored without a warning.
 */
export const ENFORCING_KINDS: ReadonlySet<string> = new Set(['GlobalNetworkPolicy', 'NetworkPolicy', 'HostEndpoint']);

/** One stored policy object: enough to name it (its rules are not read). */
export interface PolicyRef {
  readonly kind: string;
  readonly name: string;
  readonly namespace?: string;
}

/** What a datastore holds that podway does not enforce: counts by kind, and a few names to show. */
export interface UnenforcedPolicies {
  /** Enforcing kinds (ENFORCING_KINDS) only, by kind; kinds with none are left out. */
  readonly counts: Readonly<Record<string, number>>;
  /** Up to NAMES_SHOWN of them, as "Kind ns/name" or "Kind name", sorted. */
  readonly names: readonly string[];
}

const NAMES_SHOWN = 5;

export function policyRefText(r: PolicyRef): string {
  return `${r.kind} ${r.namespace !== undefined ? `${r.namespace}/` : ''}${r.name}`;
}

/** The summary of the stored policy objects (only the enforcing kinds count). */
export function summarizePolicies(refs: readonly PolicyRef[]): UnenforcedPolicies {
  const counts: Record<string, number> = {};
  const texts: string[] = [];
  for (const r of refs) {
    if (!ENFORCING_KINDS.has(r.kind)) continue;
    counts[r.kind] = (counts[r.kind] ?? 0) + 1;
    texts.push(policyRefText(r));
  }
  texts.sort();
  return { counts, names: texts.slice(0, NAMES_SHOWN) };
}

export function policyTotal(p: UnenforcedPolicies): number {
  let n = 0;
  for (const c of Object.values(p.counts)) n += c;
  return n;
}

/** The operator's line: what is there and that it does nothing here; '' when there is none. */
export function unenforcedPolicyText(p: UnenforcedPolicies): string {
  const total = policyTotal(p);
  if (total === 0) return '';
  const kinds = Object.keys(p.counts).sort().map((k) => `${p.counts[k]} ${k}`).join(', ');
  const more = total > p.names.length ? `, ... ${total - p.names.length} more` : '';
  return `${kinds} in the datastore (${p.names.join(', ')}${more}): podway does NOT enforce network policy; all pod traffic is allowed (docs/calico-differences.md "Network policy: not enforced")`;
}
