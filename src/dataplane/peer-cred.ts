/**
 * Who may talk to a podway's control socket: root, or the uid podway itself runs as. The answer
 * comes from the kernel (SO_PEERCRED, the peer's credentials at connect time), not from anything
 * the peer sends, and it is checked on every accepted connection, so a socket file that someone
 * made readable by others, or a directory with loose permissions, still lets nobody else in.
 */
import type * as net from 'node:net';
import { native } from './native';

export interface PeerCred {
  pid: number;
  uid: number;
  gid: number;
}

/** The file descriptor behind an accepted unix-socket connection, or null when node exposes none. */
function socketFd(conn: net.Socket): number | null {
  // Not public API: node's Pipe handle carries the fd on Linux. Absent (a closed or wrapped
  // socket), the caller refuses the connection.
  const fd = (conn as unknown as { _handle?: { fd?: unknown } | null })._handle?.fd;
  return typeof fd === 'number' && Number.isInteger(fd) && fd >= 0 ? fd : null;
}

/**
 * Why `conn` must be refused, or null when its peer is root or `ownerUid`. Fails closed: a peer
 * that cannot be identified is refused, with the reason.
 */
export function peerRefusal(conn: net.Socket, ownerUid: number): string | null {
  const fd = socketFd(conn);
  if (fd === null) return 'permission denied: cannot identify the peer (this connection has no file descriptor to ask SO_PEERCRED)';
  let cred: PeerCred;
  try {
    cred = native.peerCred(fd);
  } catch (e) {
    return `permission denied: cannot identify the peer (${(e as Error).message})`;
  }
  if (cred.uid === 0 || cred.uid === ownerUid) return null;
  return `permission denied: uid ${cred.uid} is not root or the owner of this podway`;
}
