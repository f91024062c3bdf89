import type { IncomingMessage, ServerResponse } from 'node:http';
import { RackError } from '../common/errors.js';
import type { Principal } from '../auth/auth.js';
import { readJson } from './http.js';

export interface Context {
  req: IncomingMessage;
  res: ServerResponse;
  url: URL;
  /** Path parameters by the names in the route's OpenAPI-style path (`{gid}`). */
  params: Record<string, string>;
  /** The authenticated caller; null only on routes with `auth: false`. */
  who: Principal;
  json(): Promise<unknown>;
}

/** What a handler answers; a handler that writes `res` itself (streams) returns nothing. */
export interface Reply {
  status: number;
  body?: unknown;
}

export interface Route {
  method: 'GET' | 'HEAD' | 'POST' | 'PUT' | 'DELETE';
  /** The path exactly as in openapi.yaml, e.g. `/v1/groups/{gid}/processes/{pid}`. */
  path: string;
  auth?: boolean;
  handler(ctx: Context): Promise<Reply | void>;
}

interface Compiled {
  route: Route;
  regex: RegExp;
  names: string[];
}

export class Router {
  private readonly compiled: Compiled[] = [];

  constructor(routes: Iterable<Route>) {
    for (const route of routes) this.add(route);
  }

  add(route: Route): void {
    const names: string[] = [];
    // A parameter named `path` spans segments (file paths); every other one is a single segment.
    const source = route.path.replace(/[.*+?^$()|[\]\\]/g, '\\$&').replace(/\{(\w+)\}/g, (_m, name: string) => {
      names.push(name);
      return name === 'path' ? '(.+)' : '([^/]+)';
    });
    this.compiled.push({ route, regex: new RegExp(`^${source}$`), names });
  }

  get routes(): Route[] {
    return this.compiled.map((c) => c.route);
  }

  /** Finds the route; 404 for an unknown path, 405 for a known path with another method. */
  match(method: string, pathname: string): { route: Route; params: Record<string, string> } {
    let pathKnown = false;
    for (const c of this.compiled) {
      const m = c.regex.exec(pathname);
      if (!m) continue;
      pathKnown = true;
      if (c.route.method !== method) continue;
      const params: Record<string, string> = {};
      c.names.forEach((n, i) => {
        try {
          params[n] = decodeURIComponent(m[i + 1]!);
        } catch {
          throw new RackError('bad_request', `the ${n} in the URL is not valid percent-encoding`);
        }
      });
      return { route: c.route, params };
    }
    if (pathKnown) throw new RackError('method_not_allowed', `${method} is not allowed on ${pathname}`);
    throw new RackError('not_found', `no such endpoint: ${method} ${pathname}`);
  }
}

export function bodyReader(req: IncomingMessage): () => Promise<unknown> {
  let body: Promise<unknown> | undefined;
  return () => (body ??= readJson(req));
}
