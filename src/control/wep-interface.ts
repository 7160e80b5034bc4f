// Where a WorkloadEndpoint says how its pod is attached (veth, tap or tun) and which network
// namespace holds a TAP or TUN device: podway's own data, kept in two annotations, because
// Calico's WorkloadEndpointSpec has no such fields and `calicoctl get -o yaml` / `calicoctl
// replace` carry metadata.annotations through but drop spec fields Calico does not define (after
// which podway would take a TAP pod for a veth and lose it). Earlier podway versions wrote
// `spec.interfaceType` / `spec.interfaceNetns`: still read, an annotation winning over them.
// Zod-free, so the CNI plugin can use it without loading the schemas.

export const INTERFACE_TYPE_ANNOTATION = 'cni.podway.io/interface-type';
export const INTERFACE_NETNS_ANNOTATION = 'cni.podway.io/interface-netns';

/** A stored endpoint object's interface type (as JSON, not yet validated): the annotation, else
 * the spec field of earlier versions, else veth. */
export function storedInterfaceType(obj: { readonly metadata?: unknown; readonly spec?: unknown }): string {
  const meta = (obj.metadata ?? {}) as { annotations?: Record<string, unknown> };
  const spec = (obj.spec ?? {}) as Record<string, unknown>;
  const t = meta.annotations?.[INTERFACE_TYPE_ANNOTATION] ?? spec.interfaceType;
  return typeof t === 'string' ? t : 'veth';
}
