// TCP-MD5 (RFC 2385) for BGP peers with a password. node cannot set TCP_MD5SIG, so the native
// addon keys the listener and creates outgoing sockets keyed before their SYN; node takes over
// the connected fd. The addon is loaded only when a peer has a password.
import { Server, Socket } from 'node:net';
import { readFileSync } from 'node:fs';

interface Md5Addon {
  tcpMd5Sig(fd: number, peer: string, key: string): void;
  tcpMd5Connect(peer: string, port: number, local: string | null, key: string, ttl?: number, minTtl?: number): number;
  tcpTtlSecurity(fd: number, ttl: number, minTtl: number): void;
  tcpConnectResult(fd: number): boolean;
  closeFd(fd: number): void;
}

function addon(): Md5Addon {
  // Required lazily: speakers without passwords never need the native build.
  const mod = require('../../dataplane/native') as typeof import('../../dataplane/native');
  return mod.nativeAddon() as unknown as Md5Addon;
}

/** Not public API: node's TCP handle carries the fd on Linux. */
function fdOf(handleOwner: Server | Socket): number {
  const fd = (handleOwner as unknown as { _handle?: { fd?: unknown } | null })._handle?.fd;
  if (typeof fd !== 'number' || fd < 0) throw new Error('TCP-MD5: this socket has no file descriptor to key');
  return fd;
}

/** Keys the listener for `peer` (accepted connections inherit it); an empty key removes it. */
export function setListenerKey(server: Server, peer: string, key: string): void {
  addon().tcpMd5Sig(fdOf(server), peer, key);
}

const POLL_MS = 20;

/**
 * GTSM (RFC 5082; BIRD's `ttl security on; multihop N`, Calico's BGPPeer ttlSecurity N): our
 * packets go with TTL 255 and the peer's must arrive with at least 256 - N (N hops away: a
 * directly connected peer's at 255), as BIRD computes it. node cannot set IP_MINTTL.
 */
export interface TtlSecurity {
  readonly ttl: number;
  readonly minTtl: number;
}

export function ttlSecurityOf(hops: number | undefined): TtlSecurity | undefined {
  return hops !== undefined && hops > 0 ? { ttl: 255, minTtl: Math.max(1, 256 - Math.min(hops, 255)) } : undefined;
}

/** Sets GTSM's TTLs on a listener (its SYN-ACKs: ttl only, minTtl 0) or an accepted socket. */
export function setTtlSecurity(handleOwner: Server | Socket, t: TtlSecurity): void {
  addon().tcpTtlSecurity(fdOf(handleOwner), t.ttl, t.minTtl);
}

/**
 * Dials `peer` with segments signed by `key` ('' for none), with GTSM's TTLs when `ttl` is given. Resolves with a connected node Socket; rejects with
 * the connect error (its `code` as node's own, e.g. ECONNREFUSED, or ETIMEDOUT after `timeoutMs`).
 */
export function connectWithKey(peer: string, port: number, local: string | undefined, key: string, timeoutMs: number, ttl?: TtlSecurity): { socket: Promise<Socket>; cancel(): void } {
  const a = addon();
  let cancelled = false;
  let timer: NodeJS.Timeout | undefined;
  let fd = -1;
  const socket = new Promise<Socket>((resolve, reject) => {
    fd = ttl ? a.tcpMd5Connect(peer, port, local ?? null, key, ttl.ttl, ttl.minTtl) : a.tcpMd5Connect(peer, port, local ?? null, key);
    const deadline = Date.now() + timeoutMs;
    const check = () => {
      if (cancelled) return;
      let connected: boolean;
      try {
        connected = a.tcpConnectResult(fd);
      } catch (e) {
        a.closeFd(fd);
        reject(e);
        return;
      }
      if (connected) {
        resolve(new Socket({ fd, readable: true, writable: true }));
        return;
      }
      if (Date.now() > deadline) {
        a.closeFd(fd);
        reject(Object.assign(new Error(`connect to ${peer}:${port} timed out`), { code: 'ETIMEDOUT' }));
        return;
      }
      timer = setTimeout(check, POLL_MS);
    };
    check();
  });
  return {
    socket,
    cancel() {
      if (cancelled) return;
      cancelled = true;
      clearTimeout(timer);
      if (fd >= 0) a.closeFd(fd);
    },
  };
}

/**
 * The kernel's TCP-MD5 drop counters of this network namespace (`/proc/net/netstat`, TcpExt):
 * segments dropped because they carried no signature though a key is set for their address
 * (TCPMD5NotFound), carried one though none is set (TCPMD5Unexpected), or a wrong one
 * (TCPMD5Failure). A counter this kernel does not have is 0; null when the file cannot be read.
 * The counters are per namespace, never per peer.
 */
export interface TcpMd5Counters {
  notFound: number;
  unexpected: number;
  failure: number;
}

export function parseTcpMd5Counters(netstat: string): TcpMd5Counters | null {
  const lines = netstat.split('\n').filter(l => l.startsWith('TcpExt:'));
  if (lines.length < 2) return null;
  const names = lines[0].split(/\s+/).slice(1);
  const values = lines[1].split(/\s+/).slice(1);
  const value = (name: string): number => {
    const i = names.indexOf(name);
    const v = i < 0 ? 0 : Number(values[i]);
    return Number.isFinite(v) ? v : 0;
  };
  return { notFound: value('TCPMD5NotFound'), unexpected: value('TCPMD5Unexpected'), failure: value('TCPMD5Failure') };
}

export function readTcpMd5Counters(file = '/proc/net/netstat'): TcpMd5Counters | null {
  try {
    return parseTcpMd5Counters(readFileSync(file, 'utf8'));
  } catch {
    return null;
  }
}

/**
 * What moved between two readings that tells of a TCP-MD5 mismatch with a peer for which we have
 * a key (`keyed`) or none: a peer signing while we have no key shows as TCPMD5Unexpected; a peer
 * not signing, or with another key, while we have one, as TCPMD5NotFound or TCPMD5Failure. Counts
 * of the kind that cannot concern such a peer are left out. '' when nothing moved.
 */
export function md5MismatchHint(keyed: boolean, dropped: TcpMd5Counters): string {
  const parts: string[] = [];
  const said = (n: number, what: string, counter: string) => {
    if (n > 0) parts.push(`the kernel dropped ${n} segment${n === 1 ? '' : 's'} ${what} (${counter})`);
  };
  if (keyed) {
    said(dropped.notFound, 'without the MD5 signature our password expects', 'TCPMD5NotFound');
    said(dropped.failure, 'with a wrong MD5 signature', 'TCPMD5Failure');
  } else {
    said(dropped.unexpected, 'with an unexpected MD5 signature', 'TCPMD5Unexpected');
  }
  return parts.length ? `TCP-MD5 mismatch suspected: ${parts.join(', ')}` : '';
}
