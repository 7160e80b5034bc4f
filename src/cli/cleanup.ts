/**
 * `podway cleanup`: removes what a stopped `podway run` leaves in the kernel for its next start.
 *
 * A stop (SIGTERM, an upgrade, `systemctl restart`) forwards until its last moment and leaves the
 * nftables tables (`ip podway`, `ip6 podway`, `inet podway`, `inet podway_tunnels`) in place, as a
 * crash does and as Felix leaves its rules: the next start replaces each in one transaction, so a
 * restart costs no table deletes. Stopped for good (an uninstall, another dataplane taking over),
 * they are no longer wanted: `table inet podway_tunnels` drops the node's VXLAN (UDP to the VXLAN port, 4789 unless vxlanPort says otherwise) and IPIP
 * packets before any socket sees them, the NAT tables masquerade pool sources, the pod guard drops
 * veth pods' forged sources. This command deletes them, sets the underlay's IPv4 forwarding back from
 * the record a killed run left (a clean stop sets it back itself), and removes a killed run's stale
 * control socket. It holds the namespace's run lock meanwhile, so it never runs beside a `podway
 * run` (refused, naming it, nothing changed). Pod routes and neighbours stay: they go with the pods'
 * veths, as Calico's go when calico-node is removed.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, rmSync } from 'node:fs';
import * as path from 'node:path';
import { takeRunLock } from './run-lock';
import { forwardingKey, readForwardingRecord, removeForwardingRecord, restoreSysctl } from '../dataplane/host';
import { NAT_TABLE } from '../dataplane/nft-nat';
import { TUNNEL_TABLE } from '../dataplane/nft-tunnels';
import { isSafeIfname } from '../dataplane/ifname';

/** podway's nftables tables, as `nft list tables` names them. */
export const PODWAY_TABLES: readonly string[] = [`ip ${NAT_TABLE}`, `ip6 ${NAT_TABLE}`, `inet ${NAT_TABLE}`, `inet ${TUNNEL_TABLE}`];

export interface CleanupOptions {
  node: string;
  /** The control socket path `podway run` used (its directory holds the forwarding records). */
  control: string;
  nft?: string;
}

/** The tables of PODWAY_TABLES that `nft list tables` output names. */
export function podwayTablesIn(listed: string): string[] {
  const have = new Set(listed.split('\n').map((l) => l.trim().replace(/^table\s+/, '')).filter(Boolean));
  return PODWAY_TABLES.filter((t) => have.has(t));
}

function nftError(e: unknown): string {
  const err = e as NodeJS.ErrnoException & { stderr?: Buffer | string };
  if (err.code === 'ENOENT') return 'the nft command was not found (package nftables)';
  return ((err.stderr ?? '').toString().trim() || err.message).split('\n')[0];
}

/**
 * Does the cleanup in this network namespace; returns what it did, one line each. Throws when a
 * podway run holds the namespace (nothing changed) or nft refuses the delete.
 */
export async function cleanupNode(o: CleanupOptions): Promise<string[]> {
  const nft = o.nft ?? 'nft';
  let lock;
  try {
    lock = await takeRunLock({ node: o.node, pid: process.pid, control: '(podway cleanup)' });
  } catch (e) {
    throw new Error(`cleanup: ${(e as Error).message.replace(/^another podway run is running/, 'a podway run is running')}`);
  }
  const done: string[] = [];
  try {
    let listed: string | null = null;
    try {
      listed = execFileSync(nft, ['list', 'tables'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], timeout: 10_000 });
    } catch (e) {
      done.push(`nftables tables not looked at: ${nftError(e)}`);
    }
    if (listed !== null) {
      const tables = podwayTablesIn(listed);
      if (tables.length > 0) {
        try {
          execFileSync(nft, ['-f', '-'], { input: tables.map((t) => `delete table ${t}\n`).join(''), stdio: ['pipe', 'ignore', 'pipe'], timeout: 10_000 });
        } catch (e) {
          throw new Error(`cleanup: nft refused to delete ${tables.map((t) => `table ${t}`).join(', ')}: ${nftError(e)} (nothing deleted)`);
        }
        for (const t of tables) done.push(`removed nftables table ${t}`);
      }
    }
    // The forwarding records of this node's runs (run.ts: beside the control socket, NODE.IF.forwarding).
    const dir = path.dirname(o.control);
    let files: string[] = [];
    try {
      files = readdirSync(dir).filter((f) => f.startsWith(`${o.node}.`) && f.endsWith('.forwarding') && f.length > o.node.length + '..forwarding'.length);
    } catch {
      /* no directory: no records */
    }
    for (const f of files) {
      const ifname = f.slice(o.node.length + 1, -'.forwarding'.length);
      if (!isSafeIfname(ifname)) {
        done.push(`${path.join(dir, f)}: not an interface's forwarding record; left alone`);
        continue;
      }
      const rec = { file: path.join(dir, f), warn: (m: string) => done.push(m) };
      const was = readForwardingRecord(rec);
      const key = forwardingKey(ifname);
      if (was !== null) {
        const note = restoreSysctl(key, '0', was);
        done.push(note ? `set ${note}` : `${key} left as it is (not podway's 0 now, or ${ifname} is gone); it was ${was} before podway`);
      }
      removeForwardingRecord(rec);
      done.push(`removed ${rec.file}`);
    }
    if (existsSync(o.control)) {
      rmSync(o.control, { force: true });
      done.push(`removed the control socket ${o.control} a killed run left`);
    }
  } finally {
    lock.close();
  }
  return done;
}
