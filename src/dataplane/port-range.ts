/**
 * The node's ephemeral port range, net.ipv4.ip_local_port_range, from which Linux's vxlan device
 * picks the outer UDP source port of every packet (udp_flow_src_port with the device's port_min and
 * port_max unset: [low, high) of the range of the device's network namespace, high itself never
 * used). podway reads it once at start in its own network namespace (the node's) and hashes into
 * the same range (src/packet/flowhash.ts vxlanSourcePort), so ECMP and RSS on the underlay see the
 * ports a kernel node would send (docs/networking.md, "The VXLAN source port").
 */
import { readFileSync } from 'node:fs';
import { VXLAN_SRC_PORT_MAX, VXLAN_SRC_PORT_MIN } from '../packet/flowhash';

export const LOCAL_PORT_RANGE_FILE = '/proc/sys/net/ipv4/ip_local_port_range';

/** The file's text ("32768\t60999\n"): two ports, low not above high; a clear error otherwise. */
export function parseLocalPortRange(text: string, file = LOCAL_PORT_RANGE_FILE): [number, number] {
  const m = /^\s*(\d{1,5})\s+(\d{1,5})\s*$/.exec(text);
  if (!m) throw new Error(`${file}: "${text.trim()}" is not two port numbers (LOW HIGH)`);
  const lo = Number(m[1]);
  const hi = Number(m[2]);
  if (lo < 1 || hi > 65535 || lo > hi) throw new Error(`${file}: ${lo} ${hi} is not a port range (1 <= LOW <= HIGH <= 65535)`);
  return [lo, hi];
}

/** The range of the calling process's network namespace; the kernel's default where the file does
 * not exist (not Linux, no IPv4). */
export function readLocalPortRange(file = LOCAL_PORT_RANGE_FILE): [number, number] {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return [VXLAN_SRC_PORT_MIN, VXLAN_SRC_PORT_MAX];
    throw new Error(`${file}: ${(e as Error).message}`);
  }
  return parseLocalPortRange(text, file);
}
