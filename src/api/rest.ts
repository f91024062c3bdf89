import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Principal } from '../auth/auth.js';
import { RackError } from '../common/errors.js';
import { readBody, readJson, sendJson } from './http.js';
import { checkRid, requestKey, type Answers } from './answers.js';
import { admit, invoke, type CompiledOp } from './operation.js';

export interface RestRoute {
  method: string;
  /** The path exactly as in openapi.yaml, e.g. `/v1/groups/{gid}/processes/{pid}`. */
  path: string;
  compiled: CompiledOp;
}

interface Matcher {
  route: RestRoute;
  regex: RegExp;
  names: string[];
}

/** Finds the operation a method and path address. */
export class Router {
  private readonly matchers: Matcher[] = [];

  constructor(routes: Iterable<RestRoute>) {
    for (const route of routes) {
      const names: string[] = [];
      // A parameter named `path` spans segments (file paths); every other one is one segment.
      const source = route.path.replace(/[.*+?^$()|[\]\\]/g, '\\$&').replace(/\{(\w+)\}/g, (_m, name: string) => {
        names.push(name);
        return name === 'path' ? '(.+)' : '([^/]+)';
      });
      this.matchers.push({ route, regex: new RegExp(`^${source}$`), names });
    }
  }

  get routes(): RestRoute[] {
    return this.matchers.map((m) => m.route);
  }

  /** The route; 404 for an unknown path, 405 for a known path with another method. */
  match(method: string, pathname: string): { route: RestRoute; params: Record<string, string> } {
    let pathKnown = false;
    for (const m of this.matchers) {
      const hit = m.regex.exec(pathname);
      if (!hit) continue;
      pathKnown = true;
      if (m.route.method !== method) continue;
      const params: Record<string, string> = {};
      m.names.forEach((n, i) => {
        try {
          params[n] = decodeURIComponent(hit[i + 1]!);
        } catch {
          throw new RackError('bad_request', `the ${n} in the URL is not valid percent-encoding`);
        }
      });
      return { route: m.route, params };
    }
    if (pathKnown) throw new RackError('method_not_allowed', `${method} is not allowed on ${pathname}`);
    throw new RackError('not_found', `no such endpoint: ${method} ${pathname}`);
  }
}

function hasBody(req: IncomingMessage): boolean {
  return Number(req.headers['content-length'] ?? 0) > 0 || req.headers['transfer-encoding'] !== undefined;
}

/** The operation's input from a request: path parameters, query string, headers and body. */
async function inputOf(c: CompiledOp, req: IncomingMessage, url: URL, params: Record<string, string>): Promise<Record<string, unknown>> {
  const rest = c.op.rest!;
  const input: Record<string, unknown> = {};
  for (const [name, value] of Object.entries(params)) {
    const field = rest.params?.[name] ?? name;
    input[field] = c.coerce(field, value);
  }
  const allowed = rest.query ?? [];
  for (const [key, value] of url.searchParams) {
    if (!allowed.includes(key)) {
      throw new RackError('bad_request', `unknown query parameter "${key.slice(0, 40)}"; allowed: ${allowed.join(', ') || 'none'}`);
    }
    input[key] = c.coerce(key, value);
  }
  for (const [field, header] of Object.entries(rest.headers ?? {})) {
    const v = req.headers[header];
    if (typeof v === 'string') input[field] = v;
  }
  if (rest.raw) return input;
  if (rest.payload !== undefined && (req.headers['content-type'] ?? '').startsWith('application/octet-stream')) {
    input.$payload = await readBody(req, rest.payload);
    return input;
  }
  if (!rest.body) {
    if (hasBody(req)) throw new RackError('bad_request', `${req.method} ${url.pathname} takes no body`);
    return input;
  }
  if (rest.body.optional && !hasBody(req)) return input;
  const body = await readJson(req);
  if (typeof body !== 'object' || body === null || Array.isArray(body)) throw new RackError('bad_request', 'the body must be a JSON object');
  let fields = body as Record<string, unknown>;
  const root = rest.body.root;
  if (root !== '') {
    const extra = Object.keys(fields).find((k) => k !== root);
    if (extra !== undefined) throw new RackError('bad_request', `the body has an unknown field "${extra.slice(0, 40)}"; it is {"${root}": {...}}`);
    const inner = fields[root];
    if (typeof inner !== 'object' || inner === null || Array.isArray(inner)) throw new RackError('bad_request', `the body must be {"${root}": {...}}`);
    fields = inner as Record<string, unknown>;
  }
  for (const [k, v] of Object.entries(fields)) {
    if (!rest.body.fields.includes(k)) throw new RackError('bad_request', `unknown field "${k.slice(0, 40)}"`);
    input[k] = v;
  }
  return input;
}

/** Serves one REST call of an operation: input, policy, handler, answer. */
export async function serveRest(
  route: RestRoute,
  params: Record<string, string>,
  who: Principal,
  req: IncomingMessage,
  res: ServerResponse,
  url: URL,
  answers: Answers,
): Promise<number> {
  const c = route.compiled;
  const rest = c.op.rest!;
  const input = await inputOf(c, req, url, params);
  // The Idempotency-Key header names a request as `rid` does on the WebSocket.
  const header = req.headers['idempotency-key'];
  const rid = checkRid(typeof header === 'string' ? header : undefined, 'the Idempotency-Key header');
  const gid = admit(c, who, input);
  const result = await invoke(c, { who, gid, rid: rid === null ? null : requestKey(who, rid), conn: null, http: { req, res } }, input, answers);
  // A handler that streamed its answer has written it already.
  if (res.headersSent) return res.statusCode;
  const status = rest.status ?? 200;
  sendJson(res, status, status === 204 ? undefined : rest.wrap ? { [rest.wrap]: result } : result);
  return status;
}
