/**
 * The metrics port of `podway run` (--metrics-port, or Felix's FELIX_PROMETHEUSMETRICS*):
 * GET /metrics (Prometheus text format), /livez (200 while the process answers) and /readyz (200
 * when ready, 503 with the reasons otherwise; JSON either way).
 */
import * as http from 'node:http';
import type { PodwayMetrics } from './metrics';
import type { Health } from './health';
import type { Log } from './log';

export interface MetricsServerOptions {
  port: number;
  /** Address to listen on (default: every address, as Felix). */
  host?: string;
  metrics: PodwayMetrics;
  health: Health;
  log: Log;
}

/** Listen; resolves once listening, rejects with a clear error (port in use, not permitted). */
export function startMetricsServer(opts: MetricsServerOptions): Promise<http.Server> {
  const server = http.createServer((req, res) => {
    const url = (req.url ?? '/').split('?')[0];
    const t0 = Date.now();
    res.once('finish', () => opts.log.debug(`metrics: ${req.method} ${url} ${res.statusCode}`, { path: url, status: res.statusCode, ms: Date.now() - t0 }));
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { allow: 'GET, HEAD' }).end();
      return;
    }
    const reply = (code: number, type: string, body: string) => {
      res.writeHead(code, { 'content-type': type, 'content-length': Buffer.byteLength(body) });
      res.end(req.method === 'HEAD' ? undefined : body);
    };
    const fail = (e: unknown) => {
      opts.log.warn(`metrics: ${url} failed: ${(e as Error).message}`, { path: url });
      if (!res.headersSent) reply(500, 'text/plain; charset=utf-8', `${(e as Error).message}\n`);
    };
    if (url === '/metrics') {
      opts.metrics.scrape().then((text) => reply(200, opts.metrics.contentType, text), fail);
    } else if (url === '/livez') {
      reply(200, 'text/plain; charset=utf-8', 'ok\n');
    } else if (url === '/readyz') {
      opts.health.report().then((r) => reply(r.ready ? 200 : 503, 'application/json', JSON.stringify(r) + '\n'), fail);
    } else {
      reply(404, 'text/plain; charset=utf-8', 'not found: try /metrics, /livez or /readyz\n');
    }
  });
  // A stuck client must not hold a socket forever.
  server.headersTimeout = 10_000;
  server.requestTimeout = 30_000;
  return new Promise((resolve, reject) => {
    server.once('error', (e: NodeJS.ErrnoException) => {
      const where = `${opts.host ?? '*'}:${opts.port}`;
      if (e.code === 'EADDRINUSE') reject(new Error(`metrics port ${where} is already in use (another podway or Felix?): pick another with --metrics-port`));
      else if (e.code === 'EACCES') reject(new Error(`metrics port ${where}: permission denied`));
      else if (e.code === 'EADDRNOTAVAIL') reject(new Error(`metrics address ${where}: not an address of this node`));
      else reject(new Error(`metrics port ${where}: ${e.message}`));
    });
    server.listen(opts.port, opts.host, () => {
      server.on('error', (e) => opts.log.warn(`metrics server: ${e.message}`));
      resolve(server);
    });
  });
}
