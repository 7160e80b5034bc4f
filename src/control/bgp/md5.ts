// TCP-MD5 (RFC 2385) for BGP peers with a password. node cannot set TCP_MD5SIG, so the native
// addon keys the listener and creates outgoing sockets keyed before their SYN; node takes over
// the connected fd. The addon is loaded only when a peer has a password.
import { Server, Socket } from 'node:net';

interface Md5Addon {
  tcpMd5Sig(fd: number, peer: string, key: string): void;
  tcpMd5Connect(peer: string, port: number, local: string | null, key: string): number;
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
 * Dials `peer` with segments signed by `key`. Resolves with a connected node Socket; rejects with
 * the connect error (its `code` as node's own, e.g. ECONNREFUSED, or ETIMEDOUT after `timeoutMs`).
 */
export function connectWithKey(peer: string, port: number, local: string | undefined, key: string, timeoutMs: number): { socket: Promise<Socket>; cancel(): void } {
  const a = addon();
  let cancelled = false;
  let timer: NodeJS.Timeout | undefined;
  let fd = -1;
  const socket = new Promise<Socket>((resolve, reject) => {
    fd = a.tcpMd5Connect(peer, port, local ?? null, key);
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
