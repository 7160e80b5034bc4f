// One `podway run` per network namespace. A node's podway owns what the namespace has one of:
// `podway0`, the nftables tables `ip podway` and `inet podway_tunnels`, the VXLAN UDP port (4789
// unless vxlanPort says otherwise), the Node it registers. A second run (another --control path gets it past the control socket's check) used
// to register the Node again (with its own --ip), replace the running one's NAT table and, when it
// then failed on the busy VXLAN port, delete the running one's tunnel table on its way out.
//
// The lock is a listening Unix socket in the abstract namespace, which is per network namespace
// and vanishes with the process that holds it (a crash leaves nothing stale to clean up). Whoever
// connects is told the holder's node, pid and control socket (and, once the holder has taken it,
// its VXLAN UDP port), so the refusal can name them.
//
// Anyone in the namespace may bind an abstract name, root or not: a local user could take
// `@podway-run` first and answer with text of their choosing, and podway run refused to start
// naming a "podway" that was not one. So the holder's credentials are asked of the kernel
// (SO_PEERCRED of the connection, as the control socket does): a holder that is neither root nor
// this process's user is a squatter, its answer not read; the refusal says which uid and pid
// hold the name, and that it is not a podway. (It still keeps podway from starting until it is
// stopped: the name is the lock.)
import { createConnection, createServer, Server, type Socket } from 'node:net';
import { native } from '../dataplane/native';

/** The abstract socket's name (a leading NUL: never a file). */
const LOCK_NAME = '\0podway-run';
const ASK_TIMEOUT_MS = 1000;

export interface RunLockHolder {
  readonly node: string;
  readonly pid: number;
  readonly control: string;
  /** The VXLAN UDP port the holder's run holds (Felix's vxlanPort in force), set once it took it:
   * a run still waiting for its datastore holds none yet. Read at each connection. */
  vxlanPort?: number;
}

/** The holder's VXLAN port as it said it, or undefined when it said none (or nothing usable). */
function portOf(holder: RunLockHolder | null): number | undefined {
  const p = holder?.vxlanPort;
  return typeof p === 'number' && Number.isInteger(p) && p >= 1 && p <= 65535 ? p : undefined;
}

/** A holder of the name that is neither root nor this user (SO_PEERCRED). */
interface Squatter {
  readonly squatter: { uid: number; pid: number };
}

function ownUid(): number {
  return process.geteuid ? process.geteuid() : 0;
}

/** The holder's credentials, from the kernel; null when they cannot be read. */
function credOf(s: Socket): { uid: number; pid: number } | null {
  const fd = (s as unknown as { _handle?: { fd?: unknown } | null })._handle?.fd;
  if (typeof fd !== 'number' || !Number.isInteger(fd) || fd < 0) return null;
  try {
    return native.peerCred(fd);
  } catch {
    return null;
  }
}

/** Asks the holder who it is; null if it does not answer in time; a squatter when the kernel says
 * the holder is neither root nor this user (its answer is not read). */
function askHolder(): Promise<RunLockHolder | Squatter | null> {
  return new Promise((resolve) => {
    let text = '';
    const s = createConnection({ path: LOCK_NAME });
    const done = (v: RunLockHolder | Squatter | null) => { s.destroy(); resolve(v); };
    s.setTimeout(ASK_TIMEOUT_MS, () => done(null));
    s.once('connect', () => {
      const cred = credOf(s);
      if (cred && cred.uid !== 0 && cred.uid !== ownUid()) done({ squatter: { uid: cred.uid, pid: cred.pid } });
    });
    s.on('data', (d) => (text += d.toString('utf8')));
    s.on('error', () => done(null));
    s.on('end', () => {
      try {
        done(JSON.parse(text) as RunLockHolder);
      } catch {
        done(null);
      }
    });
  });
}

/**
 * Takes this network namespace's run lock for `self`, or fails naming the podway that holds it.
 * The returned server holds the lock until closed or the process ends; it keeps nothing alive.
 */
export async function takeRunLock(self: RunLockHolder): Promise<Server> {
  const server = createServer((c) => c.end(JSON.stringify(self)));
  try {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen({ path: LOCK_NAME }, () => {
        server.off('error', reject);
        resolve();
      });
    });
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'EADDRINUSE') throw new Error(`run lock: ${(e as Error).message}`);
    const asked = await askHolder();
    if (asked !== null && 'squatter' in asked) {
      const q = asked.squatter;
      throw new Error(`podway's run lock (the abstract unix socket @podway-run of this network namespace) is held by uid ${q.uid} (pid ${q.pid}), `
        + `neither root nor this user (uid ${ownUid()}): not a podway run, its answer not trusted; a local user squats the name and keeps podway run from starting here. `
        + `Stop that process (pid ${q.pid}, in this network namespace) and start again (nothing was changed)`);
    }
    const holder = asked;
    const who = holder ? `for node ${holder.node} (pid ${holder.pid}, control ${holder.control})` : '(it does not say which node)';
    const port = portOf(holder);
    throw new Error(`another podway run is running in this network namespace ${who}: one podway per node, it owns podway0, `
      + `the nftables tables and the VXLAN UDP port${port === undefined ? '' : ` ${port}`} here; stop it first (nothing was changed)`);
  }
  server.unref();
  return server;
}
