/**
 * The client side of podway's local control socket (control-server.ts): where it listens and one
 * request/answer. Kept apart from the server so a short-lived caller (the CNI plugin's STATUS, the
 * CLI) loads only node:net and the node-name rule.
 */
import * as net from 'node:net';
import { lstatSync } from 'node:fs';
import { validateNodeName } from '../control/resource-names';

/** --node of the commands that ask a running podway (status, routes, endpoints, counters, trace,
 * capture, top, log-level, node status): cli/main.ts controlPath finds the socket so. */
export const NODE_TO_ASK_HELP = 'node whose podway to ask (default $NODENAME, else the only podway running here: the one socket in /run/podway)';

/** The node name becomes a file name, so it is checked here too (no `../` out of /run/podway). */
export function defaultControlPath(node: string): string {
  return `/run/podway/${validateNodeName(node)}.sock`;
}

/**
 * Client side: one request, one answer (bounded by a timeout). Lines before the answer that carry
 * {"progress": ...} (a trace's "armed") go to `onProgress`.
 */
export function controlRequest(sockPath: string, req: object, timeoutMs = 15_000, onProgress?: (p: Record<string, unknown>) => void): Promise<unknown> {
  return new Promise((resolve, reject) => {
    const c = net.createConnection(sockPath);
    let buf = '';
    const timer = setTimeout(() => {
      c.destroy();
      reject(new Error(`no answer from ${sockPath} within ${timeoutMs} ms`));
    }, timeoutMs);
    c.on('connect', () => c.write(JSON.stringify(req) + '\n'));
    c.on('data', (d) => {
      buf += d.toString('utf8');
      let nl: number;
      while ((nl = buf.indexOf('\n')) >= 0) {
        const res = JSON.parse(buf.slice(0, nl)) as { ok: boolean; result?: unknown; error?: string; progress?: Record<string, unknown> };
        buf = buf.slice(nl + 1);
        if (res.progress !== undefined && res.ok === undefined) {
          onProgress?.(res.progress);
          continue;
        }
        clearTimeout(timer);
        c.end();
        if (res.ok) resolve(res.result);
        else reject(new Error(res.error));
        return;
      }
    });
    c.on('error', (e) => {
      clearTimeout(timer);
      reject(controlConnectError(e, sockPath));
    });
  });
}

/** Why a connection to the control socket at `sockPath` failed, said for a user (also capture's). */
export function controlConnectError(e: Error, sockPath: string): Error {
  const code = (e as NodeJS.ErrnoException).code;
  if (code === 'ENOENT') return new Error(`podway is not running (no control socket at ${sockPath})`);
  if (code === 'ECONNREFUSED') {
    let kind: string | null = null;
    try {
      const st = lstatSync(sockPath);
      if (!st.isSocket()) kind = st.isDirectory() ? 'a directory' : st.isSymbolicLink() ? 'a symbolic link' : 'a regular file or device';
    } catch {
      // gone meanwhile: as ENOENT
    }
    return new Error(kind !== null
      ? `${sockPath} is ${kind}, not a control socket: check --control (podway run makes the socket)`
      : `podway is not running (the control socket at ${sockPath} is left from a run that ended)`);
  }
  if (code === 'EACCES') return new Error(`permission denied on ${sockPath}: the control socket is for root and the user podway runs as`);
  return new Error(e.message);
}
