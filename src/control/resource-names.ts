// The plain facts about Calico v3 resources that need no schema: the API version, interface and
// affinity kinds, and the name rule. Kept apart from the zod schemas (resources.ts) so that code
// that only names things (the CNI plugin's DEL, CHECK, STATUS; the control socket's path) does not
// load zod: ~40 ms of a short-lived process (bench/README.md, CNI plugin).

export const CALICO_API_VERSION = 'projectcalico.org/v3';

export const INTERFACE_TYPES = ['veth', 'tap', 'tun'] as const;
export type InterfaceType = (typeof INTERFACE_TYPES)[number];

export const AFFINITY_STATES = ['confirmed', 'pending', 'pendingDeletion'] as const;
export type AffinityState = (typeof AFFINITY_STATES)[number];

/** Kubernetes object names (RFC 1123 subdomain), which is what Calico requires of these names. */
export const NAME_PATTERN = /^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/;
/** Linux IFNAMSIZ is 16 including the NUL, so an interface name holds at most 15 characters. */
export const MAX_IFNAME_LEN = 15;

/**
 * A Kubernetes node name as podway accepts it outside the datastore (`--node`, $NODENAME): the same
 * DNS-1123 subdomain rule as object names. It becomes a file name (/run/podway/NODE.sock), so
 * anything else, such as `../x` or `a/b`, is refused here rather than escaping that directory.
 * Returns the name; throws an error naming the bad value.
 */
export function validateNodeName(name: string, source = 'node name'): string {
  if (name.length >= 1 && name.length <= 253 && NAME_PATTERN.test(name)) return name;
  const why = name.length > 253 ? `${name.length} characters, at most 253 allowed` : "lowercase a-z, 0-9, '-' and '.', starting and ending with a letter or digit";
  throw new Error(`invalid ${source} ${JSON.stringify(name)}: a Kubernetes node name is a DNS-1123 subdomain (${why})`);
}
