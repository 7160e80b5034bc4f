// Names Calico's CNI plugin derives, so Calico tools see podway's endpoints as their own.
import { createHash } from 'node:crypto';

/** Annotation on the WorkloadEndpoints the plugin writes: which CNI network made it (GC keys on it). */
export const NETWORK_ANNOTATION = 'cni.podway.io/network';

export interface PodIdentity {
  readonly orchestrator: 'k8s' | 'cni';
  /** The pod's namespace (k8s) or "default" (cni). */
  readonly namespace: string;
  /** The pod name (k8s) or the container ID (cni). */
  readonly pod: string;
}

/** k8s when CNI_ARGS names the pod (K8S_POD_NAMESPACE and K8S_POD_NAME), else the plain CNI orchestrator. */
export function podIdentity(args: Readonly<Record<string, string>>, containerId: string): PodIdentity {
  const ns = args.K8S_POD_NAMESPACE;
  const pod = args.K8S_POD_NAME;
  if (ns && pod) return { orchestrator: 'k8s', namespace: ns, pod };
  return { orchestrator: 'cni', namespace: 'default', pod: containerId };
}

/** Calico's host-side veth name: "cali" + the first 11 hex digits of sha1 of "<namespace>.<pod>" (k8s) or the container ID. */
export function hostVethName(id: PodIdentity, containerId: string): string {
  const key = id.orchestrator === 'k8s' ? `${id.namespace}.${id.pod}` : containerId;
  return 'cali' + createHash('sha1').update(key).digest('hex').slice(0, 11);
}

/**
 * The name podway knows a tap/tun pod's device by: "tap"/"tun" + the veth name's 11 hex digits.
 * The device itself is named CNI_IFNAME ("eth0" in every pod), while podway keys endpoints by
 * node and interfaceName, so the plugin gives each device this unique alternative name (kernel
 * 5.5+); the kernel resolves alternative names wherever it looks a device up by name, TUNSETIFF
 * included, so podway opens the pod's device by it.
 */
export function podDeviceName(type: 'tap' | 'tun', id: PodIdentity, containerId: string): string {
  return type + hostVethName(id, containerId).slice('cali'.length);
}

/** Calico's WorkloadEndpoint name: "<node>-k8s-<pod>-<iface>" or "<node>-cni-<containerID>-<iface>", each '-' inside a part doubled. */
export function workloadEndpointName(node: string, id: PodIdentity, containerId: string, ifname: string): string {
  const esc = (s: string): string => s.replace(/-/g, '--');
  const middle = id.orchestrator === 'k8s' ? id.pod : containerId;
  return [esc(node), id.orchestrator, esc(middle), esc(ifname)].join('-');
}

/** The IPAM handle of one attachment: "<network name>.<containerID>" (Calico: k8s-pod-network.<id>). */
export function handleId(network: string, containerId: string): string {
  return `${network}.${containerId}`;
}
