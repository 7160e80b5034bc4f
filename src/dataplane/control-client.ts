/**
 * The client side of podway's local control socket (control-server.ts): where it listens and one
 * request/answer. Kept apart from the server so a short-lived caller (the CNI plugin's STATUS, the
 * CLI) loads only node:net and the node-name rule.
 */
import * as net from 'node:net';
import { validateNodeName } from '../control/resource-names';

/** The node name becomes a file name, so it is checked here too (no `../` out of /run/podway). */
export function defaultControlPath(node: string): string {
  return `/run/podway/${validateNodeName(node)}.sock`;
}

/** Client side: one request, one answer (bounded by a timeout). */
export function controlRequest(sockPath: string, req: object, timeoutMs = 15_000): Promise<unknown> {
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
      const nl = buf.indexOf('\n');
      if (nl < 0) return;
      clearTimeout(timer);
      c.end();
      const res = JSON.parse(buf.slice(0, nl)) as { ok: boolean; result?: unknown; error?: string };
      if (res.ok) resolve(res.result);
      else reject(new Error(res.error));
    });
    c.on('error', (e) => {
      clearTimeout(timer);
      const code = (e as NodeJS.ErrnoException).code;
      if (code === 'ENOENT' || code === 'ECONNREFUSED') reject(new Error(`podway is not running (no control socket at ${sockPath})`));
      else if (code === 'EACCES') reject(new Error(`permission denied on ${sockPath}: the control socket is for root and the user podway runs as`));
      else reject(new Error(e.message));
    });
  });
}
