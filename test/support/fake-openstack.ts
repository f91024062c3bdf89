import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface FakeServer {
  id: string;
  name: string;
  status: string;
  metadata: Record<string, string>;
  tags: string[];
  user_data?: string;
  flavorRef: string;
  imageRef: string;
  networks: unknown;
  updated: number;
  fault?: { message: string; code: number };
}

/**
 * A stand-in for Keystone v3 and Nova, over HTTP, for fast tests of the nova driver: servers are
 * BUILD after the POST until `activate()` (or `autoActive`), deleted servers stay listed as
 * DELETED for changes-since (without their tags, as Nova drops them), listings are paged. Every
 * request is recorded. The real thing is in test/openstack/.
 */
export class FakeOpenStack {
  server!: Server;
  url = '';
  servers = new Map<string, FakeServer>();
  requests: Array<{ method: string; path: string }> = [];
  auths = 0;
  tokens = new Set<string>();
  expireNext = false;
  /** Servers turn ACTIVE as soon as they are created (the old fake's shortcut). */
  autoActive = false;
  /** The answer to the next POST /servers, instead of creating a server. */
  refuseNext: { status: number; body: unknown } | null = null;
  /** The next POST /servers creates its server but is never answered (a Nova too slow to answer). */
  stallNext = false;
  pageSize = 1000;
  private n = 0;

  async start(): Promise<void> {
    this.server = createServer((req, res) => void this.handle(req, res));
    await new Promise<void>((r) => this.server.listen(0, '127.0.0.1', r));
    this.url = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  async stop(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise((r) => this.server.close(r));
  }

  env(): Record<string, string> {
    return { OS_AUTH_URL: `${this.url}/identity`, OS_USERNAME: 'rack', OS_PASSWORD: 'secret-password', OS_PROJECT_NAME: 'demo', OS_REGION_NAME: 'RegionOne' };
  }

  create(fields: Partial<FakeServer> = {}): FakeServer {
    const id = `00000000-0000-4000-8000-${String(++this.n).padStart(12, '0')}`;
    const s: FakeServer = { id, name: `srv-${this.n}`, status: this.autoActive ? 'ACTIVE' : 'BUILD', metadata: {}, tags: [], flavorRef: 'f', imageRef: 'i', networks: 'none', updated: Date.now(), ...fields };
    this.servers.set(id, s);
    return s;
  }

  set(id: string, status: string, fault?: string): void {
    const s = this.servers.get(id)!;
    s.status = status;
    s.updated = Date.now();
    if (fault) s.fault = { message: fault, code: 500 };
  }

  /** Live servers (not DELETED). */
  live(): FakeServer[] {
    return [...this.servers.values()].filter((s) => s.status !== 'DELETED');
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    let body = '';
    for await (const c of req) body += c;
    const url = new URL(req.url ?? '/', this.url);
    this.requests.push({ method: req.method ?? '', path: url.pathname + url.search });
    const send = (status: number, data?: unknown, headers: Record<string, string> = {}): void => {
      res.writeHead(status, { 'content-type': 'application/json', date: new Date().toUTCString(), ...headers });
      res.end(data === undefined ? '' : JSON.stringify(data));
    };
    if (url.pathname === '/identity/v3/auth/tokens' && req.method === 'POST') {
      const auth = JSON.parse(body).auth;
      if (auth.identity.password?.user.password !== 'secret-password') return send(401, { error: { message: 'The request you have made requires authentication.' } });
      const token = `tok-${++this.auths}`;
      this.tokens.add(token);
      const catalog = [{ type: 'compute', endpoints: [{ interface: 'public', region: 'RegionOne', url: `${this.url}/compute/v2.1` }] }];
      return send(201, { token: { expires_at: new Date(Date.now() + 3600_000).toISOString(), project: { id: 'p1' }, catalog } }, { 'x-subject-token': token });
    }
    const token = req.headers['x-auth-token'] as string;
    if (!this.tokens.has(token) || this.expireNext) {
      this.expireNext = false;
      this.tokens.delete(token);
      return send(401, { error: { message: 'expired' } });
    }
    const m = /^\/compute\/v2\.1\/servers(?:\/([^/]+))?(\/action)?$/.exec(url.pathname);
    if (!m) return send(404, { itemNotFound: { message: 'no such resource' } });
    if (req.method === 'POST' && !m[1]) {
      if (this.refuseNext) {
        const r = this.refuseNext;
        this.refuseNext = null;
        return send(r.status, r.body);
      }
      const s = this.create(JSON.parse(body).server);
      if (this.stallNext) {
        this.stallNext = false;
        return;
      }
      return send(202, { server: { id: s.id } });
    }
    if (m[1] === 'detail') return this.list(url.searchParams, send);
    const s = this.servers.get(decodeURIComponent(m[1] ?? ''));
    if (!s || s.status === 'DELETED') return send(404, { itemNotFound: { message: `Instance ${m[1]} could not be found.` } });
    if (req.method === 'GET') return send(200, { server: view(s) });
    if (req.method === 'POST' && m[2]) {
      const length = JSON.parse(body)['os-getConsoleOutput']?.length as number;
      const lines = ['boot', 'cloud-init done', `dckinit: app of ${s.name} running`];
      return send(200, { output: lines.slice(-length).join('\n') + '\n' });
    }
    if (req.method === 'DELETE') {
      s.status = 'DELETED';
      s.tags = [];
      s.updated = Date.now();
      return send(204);
    }
    send(405);
  }

  private list(q: URLSearchParams, send: (status: number, data?: unknown) => void): void {
    const since = q.get('changes-since');
    const sinceMs = since ? Date.parse(since) : null;
    const tags = q.get('tags');
    let all = [...this.servers.values()].filter((s) => (sinceMs === null ? s.status !== 'DELETED' : s.updated >= sinceMs) && (!tags || s.tags.includes(tags)));
    const marker = q.get('marker');
    if (marker) all = all.slice(all.findIndex((s) => s.id === marker) + 1);
    const limit = Math.min(Number(q.get('limit') ?? this.pageSize), this.pageSize);
    const page = all.slice(0, limit);
    const more = all.length > limit;
    send(200, { servers: page.map(view), ...(more ? { servers_links: [{ rel: 'next', href: `${this.url}/compute/v2.1/servers/detail?marker=${page.at(-1)!.id}` }] } : {}) });
  }
}

function view(s: FakeServer): Record<string, unknown> {
  return { ...s, updated: new Date(s.updated).toISOString(), ...(s.fault && s.status === 'ERROR' ? { fault: s.fault } : {}) };
}
