// The dual-stack variant of helpers.ts's cluster: the same nodes, pools and pods, plus an IPv6
// pool fd00:10:244::/64 (VXLAN, /122 blocks), node IPv6 addresses fd99::1 and fd99::2 with IPv6
// VTEPs, and an IPv6 /128 beside each pod's IPv4 address (the addresses of the v6pipe_* fixtures
// of scripts/gen-fixtures6.py). makeHarness6 wires the IPv6 half as Engine.apply does.
import { CLUSTER_YAML, NODE2_MAC, clusterModel, makeHarness, Harness, HarnessOptions } from './helpers';
import { applyModel6 } from '../../src/dataplane/engine6';
import { fromHex, parseMac } from '../../src/packet';
import { fixture6 } from '../packet/helpers6';

export const A6 = 'fd00:10:244::1';
export const B6 = 'fd00:10:244::2';
export const T6 = 'fd00:10:244::3';
export const U6 = 'fd00:10:244::4';
export const RV6 = 'fd00:10:244::41';
export const NODE1_6 = 'fd99::1';
export const NODE2_6 = 'fd99::2';
export const NODE2_MAC6 = '52:54:00:99:00:02';

const V6_ADDRS: Record<string, string> = {
  '10.244.0.1': A6, '10.244.0.2': B6, '10.245.0.3': T6, '10.246.0.4': U6, '10.244.0.65': RV6,
};

export function dualStackYaml(extra = ''): string {
  let y = CLUSTER_YAML;
  for (const [v4, v6] of Object.entries(V6_ADDRS)) y = y.replace(`ipNetworks: [${v4}/32]`, `ipNetworks: [${v4}/32, ${v6}/128]`);
  y = y.replace('bgp: { ipv4Address: 10.99.0.1/24 }', `bgp: { ipv4Address: 10.99.0.1/24, ipv6Address: ${NODE1_6}/64 }\n  ipv6VXLANTunnelAddr: "fd00:10:244::"`);
  y = y.replace('bgp: { ipv4Address: 10.99.0.2/24 }', `bgp: { ipv4Address: 10.99.0.2/24, ipv6Address: ${NODE2_6}/64 }\n  ipv6VXLANTunnelAddr: "fd00:10:244::40"`);
  return `${y}
---
apiVersion: projectcalico.org/v3
kind: IPPool
metadata: { name: v6-pool }
spec: { cidr: "fd00:10:244::/64", vxlanMode: Always, ipipMode: Never }
---
apiVersion: projectcalico.org/v3
kind: BlockAffinity
metadata: { name: node1-fd00-10-244---122 }
spec: { node: node1, cidr: "fd00:10:244::/122", state: confirmed, deleted: "false" }
---
apiVersion: projectcalico.org/v3
kind: BlockAffinity
metadata: { name: node2-fd00-10-244--40-122 }
spec: { node: node2, cidr: "fd00:10:244::40/122", state: confirmed, deleted: "false" }
${extra}`;
}

export interface Harness6Options extends HarnessOptions {
  /** Underlay IPv6 neighbours already resolved (address text -> MAC text). */
  neighbors6?: Record<string, string>;
  yaml?: string;
  /** The node the harness is (default node1; node2 gets node2's underlay MAC). */
  node?: 'node1' | 'node2';
}

export function makeHarness6(opts: Harness6Options = {}): Harness {
  const model = clusterModel(opts.node ?? 'node1', opts.yaml ?? dualStackYaml());
  const h = makeHarness({ ...opts, model });
  if (opts.node === 'node2') h.pipe.addr = { ...h.pipe.addr, underlayMac: parseMac(NODE2_MAC) };
  const n6 = new Map(Object.entries(opts.neighbors6 ?? {}).map(([ip, mac]) => [ip, Uint8Array.from(mac.split(':'), (x) => parseInt(x, 16))] as const));
  applyModel6(h.pipe, model, { portOf: (ifname) => h.ports.get(ifname) ?? -1, neighbor6: (ip) => n6.get(ip) });
  return h;
}

/** An IPv6 fixture's bytes (fresh copy). */
export function frame6(name: string): Uint8Array {
  return fromHex(fixture6(name).hex);
}
