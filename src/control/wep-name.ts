// A WorkloadEndpoint's name is not free: Calico derives it from the endpoint's primary identifiers
// (libcalico-go names.WorkloadEndpointIdentifiers), and its clients assign that name when none is
// given and refuse one that differs ("the WorkloadEndpoint name does not match the primary
// identifiers assigned in the Spec: expected name ..."). The name is the spec fields joined by '-',
// each '-' inside a field doubled (so the name can be split back into its fields):
//   k8s:        <node>-k8s-<pod>-<endpoint>
//   cni:        <node>-cni-<containerID>-<endpoint>
//   libnetwork: <node>-libnetwork-libnetwork-<endpoint>
//   any other:  <node>-<orchestrator>-<workload>-<endpoint>
// A field may not begin or end with '-' (the doubled dash could not be told from a separator).
import type { JsonObject } from './v3-store';

function isMapping(value: unknown): value is JsonObject {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** The spec fields that make up the name for `orchestrator`, in order. */
function nameFields(orchestrator: string): string[] {
  switch (orchestrator) {
    case 'k8s':
      return ['node', 'orchestrator', 'pod', 'endpoint'];
    case 'cni':
      return ['node', 'orchestrator', 'containerID', 'endpoint'];
    case 'libnetwork':
      return ['node', 'orchestrator', 'orchestrator', 'endpoint'];
    default:
      return ['node', 'orchestrator', 'workload', 'endpoint'];
  }
}

export type WepNameResult =
  | { readonly name: string }
  | { readonly missing: string }
  | { readonly path: string; readonly message: string };

/**
 * The name Calico gives a WorkloadEndpoint with this spec; `missing` names the first identifier
 * field that is absent (then there is no such name); path/message for a field that begins or
 * ends with '-'.
 */
export function expectedWepName(spec: unknown): WepNameResult {
  const s = isMapping(spec) ? spec : {};
  const value = (field: string): string => (typeof s[field] === 'string' ? (s[field] as string) : '');
  const parts: string[] = [];
  for (const field of nameFields(value('orchestrator'))) {
    const v = value(field);
    if (v === '') return { missing: field };
    if (v.startsWith('-') || v.endsWith('-')) return { path: `spec.${field}`, message: `must not ${v.startsWith('-') ? 'begin' : 'end'} with '-' (Calico joins the WorkloadEndpoint name's fields with '-'), got ${JSON.stringify(v)}` };
    parts.push(v.replace(/-/g, '--'));
  }
  return { name: parts.join('-') };
}

/**
 * Calico's assignOrValidateName for a WorkloadEndpoint document: without metadata.name, the
 * document with the name computed from its spec; with one, the document itself when the name is
 * the expected one. A problem (a name that cannot be computed, or does not match) is returned
 * as path/message. With `requireIdentifiers` (what `podway apply/create/replace -f` write), a
 * named endpoint whose spec lacks an identifier is refused naming the field, as Calico's client
 * refuses it (CalculateWorkloadEndpointName: "field should be assigned"); without it, such an
 * endpoint is left as it is (podway's own snapshot files, endpoints other tools wrote): there is
 * no expected name to compare with.
 */
export function assignOrValidateWepName(obj: JsonObject, options: { requireIdentifiers?: boolean } = {}): { object: JsonObject } | { path: string; message: string } {
  const meta = isMapping(obj.metadata) ? obj.metadata : undefined;
  const given = meta && typeof meta.name === 'string' && meta.name !== '' ? meta.name : undefined;
  const expected = expectedWepName(obj.spec);
  if ('path' in expected) return expected;
  if ('missing' in expected) {
    if (given !== undefined && options.requireIdentifiers) {
      return {
        path: `spec.${expected.missing}`,
        message: `required: Calico computes a WorkloadEndpoint's name from spec.node, spec.orchestrator, the workload (spec.pod for k8s, spec.containerID for cni, spec.workload otherwise) and spec.endpoint, and refuses one without them`,
      };
    }
    if (given !== undefined) return { object: obj };
    return {
      path: 'metadata.name',
      message: `required: give it, or spec.${expected.missing} (with spec.node, spec.orchestrator and the endpoint's other identifiers Calico computes the name from)`,
    };
  }
  if (given === undefined) return { object: { ...obj, metadata: { ...(meta ?? {}), name: expected.name } } };
  if (given !== expected.name) {
    return { path: 'metadata.name', message: `the WorkloadEndpoint name does not match the primary identifiers assigned in the Spec: expected name ${expected.name}, got ${JSON.stringify(given)}` };
  }
  return { object: obj };
}

/**
 * May the WorkloadEndpoint stored at `key` with JSON `value` be on node `node` (spec.node)? A
 * cheap test before its value is parsed, for a reader of one node's endpoints among a cluster's
 * (the CNI plugin's host port check lists every endpoint on each ADD): its name, the key's last
 * part, begins with the node's field as the name's layout has it (the node with each '-' doubled,
 * then a '-' and a field that begins with no '-'); or, for an endpoint named outside that layout
 * (another tool's, without the identifiers Calico computes the name from), its text holds the
 * node's name as a JSON string value (`:"NAME"`, as Go's and JavaScript's JSON write it, or `: "NAME"`). False only when it cannot be the node's; true may still be
 * another node's (the caller reads spec.node).
 */
export function mayBeOnNode(key: string, value: string, node: string): boolean {
  const name = key.slice(key.lastIndexOf('/') + 1);
  const field = node.replace(/-/g, '--');
  if (name.length > field.length + 1 && name.startsWith(field) && name.charCodeAt(field.length) === 45 && name.charCodeAt(field.length + 1) !== 45) return true;
  const text = JSON.stringify(node);
  return value.includes(`:${text}`) || value.includes(`: ${text}`);
}
