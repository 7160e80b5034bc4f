// Calico's IPAM key layout in etcd v3 (libcalico-go model: BlockKey, BlockAffinityKey,
// IPAMHandleKey, IPAMConfigKey) and the v3 resource keys IPAM reads.
import { IpNet, IpVersion, netFromKeyPart, netKeyPart } from './net';

export const IPAM_PREFIX = '/calico/ipam/v2/';
export const BLOCK_PREFIX = '/calico/ipam/v2/assignment/';
export const HOST_AFFINITY_PREFIX = '/calico/ipam/v2/host/';
export const HANDLE_PREFIX = '/calico/ipam/v2/handle/';
export const IPAM_CONFIG_KEY = '/calico/ipam/v2/config';
export const IPPOOL_PREFIX = '/calico/resources/v3/projectcalico.org/ippools/';
export const NODE_PREFIX = '/calico/resources/v3/projectcalico.org/nodes/';
/** IPReservations: addresses automatic assignment skips (reservations.ts). */
export const IPRESERVATION_PREFIX = '/calico/resources/v3/projectcalico.org/ipreservations/';
/** WorkloadEndpoints: <prefix><namespace>/<name> (ipam check reads which addresses they use). */
export const WORKLOADENDPOINT_PREFIX = '/calico/resources/v3/projectcalico.org/workloadendpoints/';

export function blockKey(cidr: IpNet): string {
  return `${BLOCK_PREFIX}ipv${cidr.version}/block/${netKeyPart(cidr)}`;
}

export function blockPrefix(version: IpVersion): string {
  return `${BLOCK_PREFIX}ipv${version}/block/`;
}

export function affinityKey(node: string, cidr: IpNet): string {
  return `${HOST_AFFINITY_PREFIX}${node}/ipv${cidr.version}/block/${netKeyPart(cidr)}`;
}

/** All of one node's affinities of one IP version. */
export function nodeAffinityPrefix(node: string, version: IpVersion): string {
  return `${HOST_AFFINITY_PREFIX}${node}/ipv${version}/block/`;
}

export function handleKey(handleId: string): string {
  return HANDLE_PREFIX + handleId;
}

export function nodeKey(name: string): string {
  return NODE_PREFIX + name;
}

const BLOCK_KEY = /^\/calico\/ipam\/v2\/assignment\/ipv([46])\/block\/([^/]+)$/;
const AFFINITY_KEY = /^\/calico\/ipam\/v2\/host\/([^/]+)\/ipv([46])\/block\/([^/]+)$/;
const HANDLE_KEY = /^\/calico\/ipam\/v2\/handle\/([^/]+)$/;

export function parseBlockKey(key: string): IpNet | null {
  const m = BLOCK_KEY.exec(key);
  return m ? netFromKeyPart(m[2]) : null;
}

export function parseAffinityKey(key: string): { node: string; cidr: IpNet } | null {
  const m = AFFINITY_KEY.exec(key);
  const cidr = m ? netFromKeyPart(m[3]) : null;
  return m && cidr ? { node: m[1], cidr } : null;
}

export function parseHandleKey(key: string): string | null {
  const m = HANDLE_KEY.exec(key);
  return m ? m[1] : null;
}

/**
 * Node names and handle IDs become one path segment. A '/' would move the key into another
 * subtree (and Calico's key regexes would not read it back), so those are refused up front.
 */
export function checkSegment(what: string, value: string): string {
  if (value.length === 0 || value.includes('/')) {
    throw new Error(`invalid ${what} ${JSON.stringify(value)}: must be non-empty and contain no '/'`);
  }
  return value;
}
