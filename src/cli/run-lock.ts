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
import { createConnection, createServer, Server } from 'node:net';

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

/** Asks the holder who it is; null if it does not answer in time. */
function askHolder(): Promise<RunLockHolder | null> {
  return new Promise((resolve) => {
    let text = '';
    const s = createConnection({ path: LOCK_NAME });
    const done = (v: RunLockHolder | null) => { s.destroy(); resolve(v); };
    s.setTimeout(ASK_TIMEOUT_MS, () => done(null));
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
    const holder = await askHolder();
    const who = holder ? `for node ${holder.node} (pid ${holder.pid}, control ${holder.control})` : '(it does not say which node)';
    const port = portOf(holder);
    throw new Error(`another podway run is running in this network namespace ${who}: one podway per node, it owns podway0, `
      + `the nftables tables and the VXLAN UDP port${port === undefined ? '' : ` ${port}`} here; stop it first (nothing was changed)`);
  }
  server.unref();
  return server;
}
