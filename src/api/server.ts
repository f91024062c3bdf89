import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createTlsServer } from 'node:https';
import type { Authenticator } from '../auth/auth.js';
import type { Limiter } from '../auth/limits.js';
import { isRackError, RackError } from '../common/errors.js';
import type { Logger } from '../common/log.js';
import type { Kernel } from '../kernel/kernel.js';
import type { Monitor } from '../monitor/monitor.js';
import { PROCESS_STATUSES } from '../protocol/process.js';
import { Answers } from './answers.js';
import { registerGroupMetrics } from './group-metrics.js';
import { sendError, sendJson } from './http.js';
import { Metrics } from './metrics.js';
import { compile, type CompiledOp, type Operation } from './operation.js';
import { Router, serveRest } from './rest.js';
import { serveUi } from './ui-files.js';
import { KernelWebSocketServer } from './websocket.js';

export interface ApiOptions {
  operations: readonly Operation[];
  kernel: Kernel;
  auth: Authenticator;
  limiter: Limiter;
  log: Logger;
  /** https and wss with this certificate (chain) and key, PEM; plain http without. */
  tls?: { cert: string; key: string };
  /** Resource Monitoring, for the per-group gauges on /metrics. */
  monitor?: Monitor;
}

export interface Api {
  server: Server;
  router: Router;
  metrics: Metrics;
  ws: KernelWebSocketServer;
}

/**
 * The kernel's HTTP server: every operation as a REST route under /v1 and as an op on the
 * WebSocket at /v1/ws, plus /healthz, /metrics and the live view's page (/ui). A request goes through, in this order:
 * path check, route match, authentication, input (path, query, headers, body), validation
 * against the operation's schema, policy, handler, answer; errors become `{"error": {...}}`.
 */
export function createApi(opts: ApiOptions): Api {
  const { kernel, auth, limiter, log } = opts;
  const compiled = opts.operations.map(compile);
  const metrics = new Metrics();
  const countRequest = metrics.counter('rack_http_requests_total', 'HTTP requests by method and status code');
  const countEvent = metrics.counter('rack_process_events_total', 'Process state changes by new status');
  kernel.events.on('process', (p) => countEvent({ status: p.status }));
  let wsClients = 0;
  metrics.gauge('rack_websocket_connections', 'Open WebSocket connections', async () => [[{}, wsClients]]);
  metrics.gauge('rack_processes', 'Processes by status, all groups', async () => {
    const counts = await kernel.processCounts();
    return PROCESS_STATUSES.map((status) => [{ status }, counts[status] ?? 0]);
  });
  if (opts.monitor) registerGroupMetrics(metrics, kernel, opts.monitor);

  const answers = new Answers();
  const router = new Router(compiled.filter((c) => c.op.rest).map((c) => ({ method: c.op.rest!.method, path: c.op.rest!.path, compiled: c })));
  const wsOps = new Map<string, CompiledOp>(compiled.filter((c) => c.op.ws !== false).map((c) => [c.op.name, c]));
  const ws = new KernelWebSocketServer({ authenticate: (h) => auth.authenticate(h), limiter, answers, ops: wsOps, log, onConnection: (d) => (wsClients += d) });

  const unauthenticated = async (path: string, res: ServerResponse): Promise<boolean> => {
    if (path === '/healthz') {
      sendJson(res, 200, { status: 'ok' });
      return true;
    }
    if (path === '/metrics') {
      const text = await metrics.render();
      res.writeHead(200, { 'content-type': 'text/plain; version=0.0.4' });
      res.end(text);
      return true;
    }
    return serveUi(path, res);
  };

  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    let status = 500;
    try {
      const raw = (req.url ?? '/').split('?')[0]!;
      // URL parsing would quietly resolve dot segments, and read a backslash as a slash (so that
      // `..\..\` climbs too): a path that has either is refused instead.
      if (/(^|\/)(\.|%2e){1,2}(\/|$)/i.test(raw) || raw.includes('\\')) throw new RackError('bad_request', 'the URL path has a "." or ".." segment, or a backslash');
      const url = new URL(req.url ?? '/', 'http://kernel');
      if (req.method === 'GET' && (await unauthenticated(url.pathname, res))) {
        status = 200;
        return;
      }
      const { route, params } = router.match(req.method ?? 'GET', url.pathname);
      const who = await auth.authenticate(req.headers.authorization);
      // A request counts against its token until its answer has gone out (or the client left).
      const release = limiter.admit(who);
      res.once('close', release);
      status = await serveRest(route, params, who, req, res, url, answers);
    } catch (err) {
      status = sendError(res, err);
      if (status >= 500 && !isRackError(err)) log.error({ err, method: req.method, path: req.url }, 'request failed');
      // A refusal with a code (no_capacity, compute_error) is news, not a bug: one line, no stack.
      else if (status >= 500) log.warn({ code: (err as RackError).code, err: (err as Error).message, method: req.method, path: req.url?.split('?')[0] }, 'request refused');
      else log.debug({ method: req.method, path: req.url?.split('?')[0], status }, 'request refused');
    } finally {
      countRequest({ method: req.method ?? '', code: String(status) });
    }
  };

  const serve = (req: IncomingMessage, res: ServerResponse): void => void handle(req, res);
  const server: Server = opts.tls ? createTlsServer({ cert: opts.tls.cert, key: opts.tls.key }, serve) : createServer(serve);
  // Headers must arrive within 20 s; bodies may be file uploads of any size, so there is no
  // whole-request limit, but a socket idle for longer than the longest long-poll is closed.
  server.requestTimeout = 0;
  server.headersTimeout = 20_000;
  server.timeout = 330_000;
  server.on('upgrade', (req, socket, head) => ws.handleUpgrade(req, socket, head));
  // A request Node's parser refuses (headers over 16 KiB, a malformed request line) gets the same
  // JSON error as any other bad request, not an empty 400.
  server.on('clientError', (err: NodeJS.ErrnoException, socket) => {
    if (!socket.writable || err.code === 'ECONNRESET') return socket.destroy();
    const big = err.code === 'HPE_HEADER_OVERFLOW';
    const status = big ? 431 : 400;
    const body = JSON.stringify({ error: { code: 'bad_request', message: big ? 'the request line and headers are over 16 KiB' : 'malformed HTTP request' } });
    socket.end(`HTTP/1.1 ${status} ${big ? 'Request Header Fields Too Large' : 'Bad Request'}\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`);
    countRequest({ method: 'invalid', code: String(status) });
  });
  // CONNECT (a proxy's method) is no method of this API: a clear answer, not a silent close.
  server.on('connect', (req, socket) => {
    socket.on('error', () => socket.destroy()); // Node lets go of its errors, as for an upgrade
    const body = JSON.stringify({ error: { code: 'method_not_allowed', message: `CONNECT is not allowed on ${(req.url ?? '').slice(0, 100)}` } });
    socket.end(`HTTP/1.1 405 Method Not Allowed\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`);
    countRequest({ method: 'CONNECT', code: '405' });
  });
  server.on('clientError', (_err, socket) => {
    if (socket.writable) socket.end('HTTP/1.1 400 Bad Request\r\nConnection: close\r\n\r\n');
  });
  return { server, router, metrics, ws };
}
