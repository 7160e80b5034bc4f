/**
 * The metrics port of `podway run` (--metrics-port, or Felix's FELIX_PROMETHEUSMETRICS*):
 * GET /metrics (Prometheus text format), /livez (200 while the process answers) and /readyz (200
 * when ready, 503 with the reasons otherwise; JSON either way).
 *
 * The port is reachable from the pods unless --metrics-host binds it elsewhere (or the node's
 * firewall drops pod->node there), and a busy scraper must not cost the forwarding thread (this
 * server runs on it): the /metrics text is rendered at most once per METRICS_RENDER_MS on average,
 * after a burst of METRICS_RENDER_BURST (scrapes beyond get the last text; overlapping ones share
 * one render), /readyz's report likewise (READYZ_REPORT_MS, READYZ_REPORT_BURST), connections are capped
 * (METRICS_MAX_CONNECTIONS: more are closed at accept, counted, said in a warning at most once a
 * minute), and idle or slow ones closed soon (nothing sent for 5 s, headers within 5 s, keep-alive 2 s). A pod looping
 * GET /metrics over keep-alive (~120/s) cost 2.2-2.4 CPU s per 8 s and raised other pods' ping
 * from <1 ms to ~10 ms before; 8,000 connections took 8,000 fds and +80-280 MB.
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
  /** Connections at once (default METRICS_MAX_CONNECTIONS). */
  maxConnections?: number;
}

/** The /metrics text is rendered at most once in this many ms on average (Prometheus scrapes
 * every 15 s), after a burst of METRICS_RENDER_BURST; scrapes beyond get the last text. */
export const METRICS_RENDER_MS = 1000;
export const METRICS_RENDER_BURST = 3;
/** Connections at once to the metrics port; more are closed when accepted. */
export const METRICS_MAX_CONNECTIONS = 32;
/** Refused connections are said at most once in this many ms. */
const REFUSED_LOG_MS = 60_000;

/** The /readyz report is made at most once in this many ms on average, after a burst of
 * READYZ_REPORT_BURST; requests beyond get the last report (at most about this old). Making one
 * asks every forwarding worker for its state (a message and a snapshot each) and, with --bgp, the
 * model thread for the sessions: a pod looping /readyz made every request pay that. */
export const READYZ_REPORT_MS = 1000;
export const READYZ_REPORT_BURST = 3;

/** What the metrics server counts (also podway_metrics_renders_total and _connections_refused_total). */
export interface MetricsServerStats {
  renders: number;
  /** Readiness reports made for /readyz (the others got the last one). */
  readyReports: number;
  refused: number;
}

/**
 * `make` paced: its result made afresh while the bucket (of `burst`, refilled one per `everyMs`)
 * has a token, the last result otherwise; a call while one is being made shares it. A caller that
 * asks now and then (Prometheus every 15 s, a kubelet probe every 10 s, a test asking twice after a
 * change) always gets a fresh one; a loop gets one a second and the last one in between. A failed
 * make is not kept (the next call makes again, paid from the bucket).
 */
function paced<T>(make: () => Promise<T>, everyMs: number, burst: number): () => Promise<T> {
  let last: { value: T } | null = null;
  let making: Promise<T> | null = null;
  let tokens = burst;
  let filled = Date.now();
  return () => {
    if (making) return making;
    const now = Date.now();
    tokens = Math.min(burst, tokens + (now - filled) / everyMs);
    filled = now;
    if (last !== null && tokens < 1) return Promise.resolve(last.value);
    tokens = Math.max(0, tokens - 1);
    making = (async () => {
      try {
        const value = await make();
        last = { value };
        return value;
      } finally {
        making = null;
      }
    })();
    return making;
  };
}

/** Listen; resolves once listening, rejects with a clear error (port in use, not permitted). */
export function startMetricsServer(opts: MetricsServerOptions): Promise<http.Server & { stats: MetricsServerStats }> {
  const stats: MetricsServerStats = { renders: 0, readyReports: 0, refused: 0 };
  // The /metrics text and the /readyz report, each paid from its own bucket (paced below).
  const render = paced(async () => {
    stats.renders++;
    return opts.metrics.scrape();
  }, METRICS_RENDER_MS, METRICS_RENDER_BURST);
  const readiness = paced(async () => {
    stats.readyReports++;
    return opts.health.report();
  }, READYZ_REPORT_MS, READYZ_REPORT_BURST);
  const reg = opts.metrics.registry;
  if (!reg.getSingleMetric('podway_metrics_renders_total')) {
    // loaded here, not at the top: run.ts imports this module, and prom-client (metrics.ts) loads
    // only with a metrics port (cli/startup-modules)
    const { snapshotCounter } = require('./metrics') as typeof import('./metrics');
    opts.metrics.add({ register: (r) => {
      snapshotCounter(r, 'podway_metrics_renders_total', `Times the /metrics text was rendered (at most once per ${METRICS_RENDER_MS} ms after a burst of ${METRICS_RENDER_BURST}; scrapes beyond get the last text).`, [], () => [[{}, stats.renders]]);
      snapshotCounter(r, 'podway_metrics_connections_refused_total', `Connections to the metrics port closed when accepted: ${opts.maxConnections ?? METRICS_MAX_CONNECTIONS} were open already.`, [], () => [[{}, stats.refused]]);
    } });
  }
  // The connections' timeouts are checked every second (Node's default: every 30 s).
  const server = http.createServer({ connectionsCheckingInterval: 1000, keepAliveTimeout: 2000 }, (req, res) => {
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
      render().then((text) => reply(200, opts.metrics.contentType, text), fail);
    } else if (url === '/livez') {
      reply(200, 'text/plain; charset=utf-8', 'ok\n');
    } else if (url === '/readyz') {
      readiness().then((r) => reply(r.ready ? 200 : 503, 'application/json', JSON.stringify(r) + '\n'), fail);
    } else {
      reply(404, 'text/plain; charset=utf-8', 'not found: try /metrics, /livez or /readyz\n');
    }
  });
  // A stuck or idle client must not hold a socket long: the request's headers within 5 s of the
  // connection (or of the last answer), the whole request within 10 s, keep-alive 2 s.
  server.headersTimeout = 5_000;
  server.requestTimeout = 10_000;
  server.keepAliveTimeout = 2_000;
  // A connection that sends nothing at all (no request begun: headersTimeout does not see it)
  // is closed after 5 s without traffic.
  server.timeout = 5_000;
  server.maxConnections = opts.maxConnections ?? METRICS_MAX_CONNECTIONS;
  let refusedSaid = 0;
  let refusedSince = 0;
  server.on('drop', (d?: { remoteAddress?: string }) => {
    stats.refused++;
    refusedSince++;
    const now = Date.now();
    if (now - refusedSaid < REFUSED_LOG_MS) return;
    opts.log.warn(`metrics: ${refusedSince} connection(s) refused${refusedSaid ? ' since the last warning' : ''}: ${server.maxConnections} were open already (the last from ${d?.remoteAddress ?? 'an unknown address'}); podway_metrics_connections_refused_total counts them`);
    refusedSaid = now;
    refusedSince = 0;
  });
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
      resolve(Object.assign(server, { stats }));
    });
  });
}
