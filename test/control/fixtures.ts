// Builders for Calico resources in test YAML, so each test states only what it is about.
import * as path from 'node:path';
import { stringify } from 'yaml';
import { ClusterSnapshot, parseClusterYaml } from '../../src/control/snapshot';

const API = 'projectcalico.org/v3';
type Obj = Record<string, unknown>;

/** Source tree path of the example files (tests run from dist/test/control). */
export const EXAMPLES_DIR = path.resolve(__dirname, '..', '..', '..', 'src', 'control', 'examples');

export function pool(name: string, cidr: string, spec: Obj = {}): Obj {
  return { apiVersion: API, kind: 'IPPool', metadata: { name }, spec: { cidr, ...spec } };
}

/** A node with `ip` like "10.99.0.1/24" (omit for a node without an address) and an optional VTEP. */
export function node(name: string, ip?: string, vtep?: string, spec: Obj = {}): Obj {
  return {
    apiVersion: API,
    kind: 'Node',
    metadata: { name },
    spec: { ...(ip ? { bgp: { ipv4Address: ip } } : {}), ...(vtep ? { ipv4VXLANTunnelAddr: vtep } : {}), ...spec },
  };
}

export function affinity(nodeName: string, cidr: string, state = 'confirmed'): Obj {
  return {
    apiVersion: API,
    kind: 'BlockAffinity',
    metadata: { name: `${nodeName}-${cidr.replace(/[./:]/g, '-')}` },
    spec: { node: nodeName, cidr, state, deleted: 'false' },
  };
}

export function wep(nodeName: string, pod: string, ips: string[], iface: string, spec: Obj = {}): Obj {
  return {
    apiVersion: API,
    kind: 'WorkloadEndpoint',
    metadata: { name: `${nodeName}-k8s-${pod}-eth0`, namespace: 'default' },
    spec: { orchestrator: 'k8s', node: nodeName, pod, endpoint: 'eth0', interfaceName: iface, ipNetworks: ips, ...spec },
  };
}

export function yamlOf(...docs: Obj[]): string {
  return docs.map((d) => stringify(d)).join('---\n');
}

export function snapshotOf(...docs: Obj[]): ClusterSnapshot {
  return parseClusterYaml(yamlOf(...docs), 'test.yaml');
}

/** The error message parseClusterYaml throws for `text`, or fails the test if it parses. */
export function errorOf(text: string, file = 'cluster.yaml'): string {
  try {
    parseClusterYaml(text, file);
  } catch (err) {
    return (err as Error).message;
  }
  throw new Error('expected the file to be rejected, but it parsed');
}
