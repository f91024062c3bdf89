import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { RackError } from '../common/errors.js';
import type { Logger } from '../common/log.js';
import type { Kernel } from '../kernel/kernel.js';
import { PROCESS_STATUSES } from '../protocol/process.js';
import { sendError, sendJson } from './http.js';
import { Metrics } from './metrics.js';
import { groupRoutes, processRoutes } from './process-routes.js';
import { bodyReader, Router, type Route } from './router.js';
import { KernelWebSocketServer, processOps, type OpHandler } from './websocket.js';

export interface ApiOptions {
  kernel: Kernel;
  log: Logger;
  /** More REST routes and WebSocket ops (IPC) beside the process table's. */
  routes?: Route[];
  ops?: Map<string, OpHandler>;
}

export interface Api {
  server: Server;
  router: Router;
  metrics: Metrics;
  ws: KernelWebSocketServer;
}

/** The kernel's HTTP server: REST under /v1, the WebSocket at /v1/ws, /healthz and /metrics. */
export function createApi(opts: ApiOptions): Api {
  const { kernel, log } = opts;
  const metrics = new Metrics();
  const countRequest = metrics.counter('rack_http_requests_total', 'HTTP requests by method and status code');
  const countEvent = metrics.counter('rack_process_events_total', 'Process state changes by new status');
  kernel.on('process', (p: { status: string }) => countEvent({ status: p.status }));
  let wsClients = 0;
  metrics.gauge('rack_websocket_connections', 'Open WebSocket connections', async () => [[{}, wsClients]]);
  metrics.gauge('rack_processes', 'Processes by status, all groups', async () => {
    const counts = new Map<string, number>(PROCESS_STATUSES.map((s) => [s, 0]));
    for (const g of await kernel.store.groups.list()) {
      for (const p of await kernel.store.processes.list(g.gid)) counts.set(p.status, (counts.get(p.status) ?? 0) + 1);
    }
    return [...counts].map(([status, n]) => [{ status }, n]);
  });

  const router = new Router([
    {
      method: 'GET',
      path: '/healthz',
      auth: false,
      handler: async () => ({ status: 200, body: { status: 'ok' } }),
    },
    {
      method: 'GET',
      path: '/metrics',
      auth: false,
      handler: async (ctx) => {
        const text = await metrics.render();
        ctx.res.writeHead(200, { 'content-type': 'text/plain; version=0.0.4' });
        ctx.res.end(text);
      },
    },
    ...groupRoutes(kernel),
    ...processRoutes(kernel),
    ...(opts.routes ?? []),
  ]);

  const ws = new KernelWebSocketServer({
    authenticate: (h) => kernel.auth.authenticate(h),
    ops: new Map([...processOps(kernel), ...(opts.ops ?? [])]),
    log,
    onConnection: (d) => (wsClients += d),
  });

  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    let status = 500;
    try {
      const raw = (req.url ?? '/').split('?')[0]!;
      // URL parsing would quietly resolve dot segments; a path that has them is refused instead.
      if (/(^|\/)(\.|%2e){1,2}(\/|$)/i.test(raw)) throw new RackError('bad_request', 'the URL path has a "." or ".." segment');
      const url = new URL(req.url ?? '/', 'http://kernel');
      const { route, params } = router.match(req.method ?? 'GET', url.pathname);
      const who = route.auth === false ? { kind: 'admin' as const } : await kernel.auth.authenticate(req.headers.authorization);
      const reply = await route.handler({ req, res, url, params, who, json: bodyReader(req) });
      status = reply ? reply.status : res.statusCode;
      if (reply) sendJson(res, reply.status, reply.status === 204 ? undefined : reply.body);
    } catch (err) {
      status = sendError(res, err);
      if (status >= 500) log.error({ err, method: req.method, path: req.url }, 'request failed');
      else log.debug({ method: req.method, path: req.url?.split('?')[0], status }, 'request refused');
    } finally {
      countRequest({ method: req.method ?? '', code: String(status) });
    }
  };

  const server = createServer((req, res) => void handle(req, res));
  // Headers must arrive within 20 s; bodies may be file uploads of any size, so there is no
  // whole-request limit, but a socket idle for longer than the longest long-poll is closed.
  server.requestTimeout = 0;
  server.headersTimeout = 20_000;
  server.timeout = 330_000;
  server.on('upgrade', (req, socket, head) => ws.handleUpgrade(req, socket, head));
  server.on('clientError', (_err, socket) => {
    if (socket.writable) socket.end('HTTP/1.1 400 Bad Request\r\nConnection: close\r\n\r\n');
  });
  return { server, router, metrics, ws };
}
