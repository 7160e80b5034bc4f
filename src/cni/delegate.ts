// A delegated IPAM plugin (`"ipam": {"type": "host-local", ...}`): found in CNI_PATH, run with the
// same environment and stdin, its result's addresses used for the pod.
import { spawnSync } from 'node:child_process';
import { accessSync, constants } from 'node:fs';
import { join } from 'node:path';
import { isIPv4, isIPv6 } from 'node:net';
import { canonicalIpv6 } from '../packet/ipv6';
import { CniError, CNI_CODES } from './errors';
import type { CniEnv } from './env';
import { StdinConfig, versionAtLeast } from './config';

export function findPlugin(type: string, cniPath: readonly string[]): string {
  for (const dir of cniPath) {
    const file = join(dir, type);
    try {
      accessSync(file, constants.X_OK);
      return file;
    } catch {
      /* next directory */
    }
  }
  throw new CniError(CNI_CODES.INVALID_ENV, `CNI_PATH: the IPAM plugin ${JSON.stringify(type)} is in none of [${cniPath.join(', ')}]`);
}

/**
 * Runs the IPAM plugin for `command` (ADD/DEL/CHECK) and returns its parsed stdout (null when
 * empty). A plugin older than the config's version (host-local 1.1 speaks up to 1.0.0 when the
 * runtime chose 1.1.0) is asked VERSION and called again with the highest version both speak:
 * the IPAM result's addresses read the same in 0.4.0 and 1.x.
 */
export function runIpamPlugin(type: string, command: 'ADD' | 'DEL' | 'CHECK', env: CniEnv, stdin: StdinConfig): Record<string, unknown> | null {
  const file = findPlugin(type, env.path);
  try {
    return execIpam(file, type, command, stdin.text);
  } catch (e) {
    if (!(e instanceof CniError && e.code === CNI_CODES.INCOMPATIBLE_VERSION)) throw e;
    const theirs = execIpam(file, type, 'VERSION', '{}')?.supportedVersions;
    // (the plugin's own config, an object: decodeConfig took it before a plugin was ever run)
    const config = stdin.json as Record<string, unknown>;
    const ours = ['1.1.0', '1.0.0', '0.4.0'].filter((v) => versionAtLeast(String(config.cniVersion), v));
    const common = ours.find((v) => Array.isArray(theirs) && theirs.includes(v));
    if (!common) throw e;
    return execIpam(file, type, command, JSON.stringify({ ...config, cniVersion: common }));
  }
}

/**
 * Forwards STATUS or GC to the delegated IPAM plugin, as the spec asks of a plugin that delegates;
 * only to one that speaks CNI 1.1.0 (older ones, such as host-local 1.1, have neither verb).
 * Returns whether it was forwarded; the plugin's failure is thrown.
 */
export function forwardToIpam(type: string, command: 'STATUS' | 'GC', env: CniEnv, stdin: StdinConfig): boolean {
  const file = findPlugin(type, env.path);
  const theirs = execIpam(file, type, 'VERSION', JSON.stringify({ cniVersion: '1.1.0' }))?.supportedVersions;
  if (!Array.isArray(theirs) || !theirs.includes('1.1.0')) return false;
  execIpam(file, type, command, stdin.text);
  return true;
}

function execIpam(file: string, type: string, command: string, stdin: string): Record<string, unknown> | null {
  const res = spawnSync(file, [], { input: stdin, encoding: 'utf8', env: { ...process.env, CNI_COMMAND: command }, timeout: 30_000 });
  // A plugin may answer without reading its stdin (VERSION, say) and exit before all of it was
  // written: EPIPE on our side, while the plugin ran and its exit status and stdout stand.
  const epipe = (res.error as NodeJS.ErrnoException | undefined)?.code === 'EPIPE' && res.status !== null;
  if (res.error && !epipe) throw new CniError(CNI_CODES.IPAM_FAILED, `IPAM plugin ${file} (${command}) could not run: ${res.error.message}`);
  const out = (res.stdout ?? '').trim();
  let parsed: Record<string, unknown> | null = null;
  if (out !== '') {
    try {
      parsed = JSON.parse(out) as Record<string, unknown>;
    } catch {
      throw new CniError(CNI_CODES.IPAM_FAILED, `IPAM plugin ${file} (${command}) printed something that is not JSON`, out.slice(0, 500));
    }
  }
  if (res.status !== 0) {
    const msg = parsed && typeof parsed.msg === 'string' ? parsed.msg : (res.stderr ?? '').trim() || `exit status ${res.status}`;
    const code = parsed && typeof parsed.code === 'number' && parsed.code < 100 ? parsed.code : CNI_CODES.IPAM_FAILED;
    throw new CniError(code, `IPAM plugin ${type} (${command}): ${msg}`, parsed && typeof parsed.details === 'string' ? parsed.details : '');
  }
  return parsed;
}

/**
 * The pod's addresses from an IPAM result (0.4.0 or 1.x shape): its first IPv4 and its first IPv6
 * address, IPv4 first (Calico's order in ipNetworks and the result); either may be missing (an
 * IPv6-only or IPv4-only range set), not both. Prefix lengths are dropped: the pod gets a /32 and
 * a /128 as with podway's own IPAM.
 */
export function delegatedIps(result: Record<string, unknown> | null, type: string): string[] {
  const ips = Array.isArray(result?.ips) ? (result!.ips as { address?: unknown }[]) : [];
  let v4: string | null = null;
  let v6: string | null = null;
  for (const ip of ips) {
    const a = typeof ip.address === 'string' ? ip.address.split('/')[0] : '';
    if (v4 === null && isIPv4(a)) v4 = a;
    else if (v6 === null && isIPv6(a)) v6 = canonicalIpv6(a);
  }
  const out = [v4, v6].filter((a): a is string => a !== null);
  if (out.length === 0) throw new CniError(CNI_CODES.IPAM_FAILED, `IPAM plugin ${type} returned no IPv4 or IPv6 address`, JSON.stringify(result).slice(0, 500));
  return out;
}

