import { readFileSync } from 'node:fs';
import type { IncomingHttpHeaders } from 'node:http';
import type { Readable } from 'node:stream';
import { Agent, request, type Dispatcher } from 'undici';
import { RackError } from '../common/errors.js';
import type { CloudConfig, KeystoneAuth } from './cloud-config.js';

interface CatalogEntry {
  type: string;
  endpoints: Array<{ interface: string; region?: string; region_id?: string; url: string }>;
}

export interface ServiceRequest {
  method: 'GET' | 'HEAD' | 'PUT' | 'POST' | 'DELETE' | 'COPY';
  /** Relative to the service's endpoint, starting with `/` (query string included). */
  path: string;
  headers?: Record<string, string>;
  /** A stream is sent as it comes (chunked) and is not sent again after a 401. */
  body?: string | Buffer | Readable;
  timeoutMs?: number;
}

export interface ServiceResponse {
  status: number;
  headers: IncomingHttpHeaders;
  /** Must be consumed or dumped by the caller. */
  body: Dispatcher.ResponseData['body'];
}

/**
 * A Keystone v3 session shared by every OpenStack service client (Nova, Swift): a project-scoped
 * token and the service catalog, renewed before the token expires and after a 401, over one
 * connection pool that verifies TLS with the cloud's CA bundle when it names one. The token and
 * the password never leave this object and are never logged.
 */
export class KeystoneSession {
  private token: string | null = null;
  private expires = 0;
  private catalog: CatalogEntry[] = [];
  private project: string | null = null;
  private pending: Promise<void> | null = null;
  private readonly dispatcher: Agent;

  constructor(
    readonly cloud: CloudConfig,
    private readonly timeoutMs = 30_000,
  ) {
    let ca: Buffer | undefined;
    if (cloud.cacert) {
      try {
        ca = readFileSync(cloud.cacert);
      } catch (err) {
        throw new RackError('bad_request', `${cloud.source}: cannot read the CA bundle ${cloud.cacert}: ${(err as Error).message}`);
      }
    }
    this.dispatcher = new Agent({ connect: ca ? { ca } : {}, keepAliveTimeout: 4_000 });
  }

  private authBody(): unknown {
    const a: KeystoneAuth = this.cloud.auth;
    const domain = (id?: string, name?: string): { id: string } | { name: string } => (id ? { id } : { name: name ?? 'Default' });
    const user = a.userId ? { id: a.userId } : { name: a.username, domain: domain(a.userDomainId, a.userDomainName) };
    if (a.applicationCredentialId || a.applicationCredentialName) {
      const cred = a.applicationCredentialId
        ? { id: a.applicationCredentialId, secret: a.applicationCredentialSecret }
        : { name: a.applicationCredentialName, secret: a.applicationCredentialSecret, user };
      return { auth: { identity: { methods: ['application_credential'], application_credential: cred } } };
    }
    const project = a.projectId ? { id: a.projectId } : { name: a.projectName, domain: domain(a.projectDomainId, a.projectDomainName) };
    return { auth: { identity: { methods: ['password'], password: { user: { ...user, password: a.password } } }, scope: { project } } };
  }

  private async authenticate(): Promise<void> {
    const base = this.cloud.auth.authUrl.replace(/\/+$/, '');
    const url = /\/v3$/.test(base) ? `${base}/auth/tokens` : `${base}/v3/auth/tokens`;
    let res;
    try {
      res = await request(url, {
        method: 'POST',
        headers: { 'content-type': 'application/json', accept: 'application/json' },
        body: JSON.stringify(this.authBody()),
        dispatcher: this.dispatcher,
        headersTimeout: this.timeoutMs,
        bodyTimeout: this.timeoutMs,
      });
    } catch (err) {
      throw new RackError('unavailable', `Keystone at ${url} cannot be reached: ${describe(err)}`);
    }
    const text = await res.body.text();
    if (res.statusCode !== 201) {
      throw new RackError('unavailable', `Keystone refused the credentials of ${this.cloud.source} (HTTP ${res.statusCode}${errorMessage(text) ? `: ${errorMessage(text)}` : ''})`);
    }
    const token = res.headers['x-subject-token'];
    let doc: { token?: { expires_at?: unknown; catalog?: unknown; project?: { id?: unknown } } };
    try {
      doc = JSON.parse(text);
    } catch {
      throw new RackError('unavailable', `Keystone at ${url} answered a token that is not JSON`);
    }
    const expires = Date.parse(String(doc.token?.expires_at));
    if (typeof token !== 'string' || !token || Number.isNaN(expires) || !Array.isArray(doc.token?.catalog)) {
      throw new RackError('unavailable', `Keystone at ${url} answered without a token, its expiry or a service catalog (is the scope a project?)`);
    }
    this.token = token;
    this.expires = expires;
    this.catalog = doc.token!.catalog as CatalogEntry[];
    this.project = typeof doc.token!.project?.id === 'string' ? doc.token!.project.id : null;
  }

  /** A valid token (renewed 5 minutes before it expires). */
  async getToken(): Promise<string> {
    if (!this.token || Date.now() > this.expires - 5 * 60_000) {
      this.pending ??= this.authenticate().finally(() => (this.pending = null));
      await this.pending;
    }
    return this.token!;
  }

  /** Forgets the token (after a 401) so that the next call authenticates again. */
  invalidate(): void {
    this.token = null;
  }

  /** The id of the project the token is scoped to. */
  async projectId(): Promise<string> {
    await this.getToken();
    if (!this.project) throw new RackError('unavailable', `the Keystone token of ${this.cloud.source} is not scoped to a project`);
    return this.project;
  }

  /** The URL of a service in the catalog, for this cloud's region and interface. */
  async endpoint(type: string): Promise<string> {
    await this.getToken();
    return this.find(type) ?? missingEndpoint(type, this.cloud);
  }

  /** Whether the catalog lists a service type (e.g. `network`). */
  async has(type: string): Promise<boolean> {
    await this.getToken();
    return this.find(type) !== null;
  }

  private find(type: string): string | null {
    const { region, interface: iface } = this.cloud;
    const entry = this.catalog.find((e) => e?.type === type);
    const ep = entry?.endpoints?.find((e) => e.interface === iface && (!region || e.region === region || e.region_id === region));
    return typeof ep?.url === 'string' ? ep.url.replace(/\/+$/, '') : null;
  }

  /** A call to a service of the catalog with the session's token; once more after a 401 (a revoked token). */
  async request(service: string, req: ServiceRequest): Promise<ServiceResponse> {
    const streamed = req.body !== undefined && typeof req.body !== 'string' && !Buffer.isBuffer(req.body);
    for (let attempt = 0; ; attempt++) {
      const base = await this.endpoint(service);
      const token = await this.getToken();
      let res;
      try {
        res = await request(base + req.path, {
          method: req.method,
          headers: { ...req.headers, 'x-auth-token': token },
          body: req.body,
          dispatcher: this.dispatcher,
          headersTimeout: req.timeoutMs ?? this.timeoutMs,
          bodyTimeout: req.timeoutMs ?? this.timeoutMs,
        });
      } catch (err) {
        throw new RackError('unavailable', `${service} at ${base} cannot be reached: ${describe(err)}`);
      }
      if (res.statusCode !== 401 || attempt > 0 || streamed) return { status: res.statusCode, headers: res.headers, body: res.body };
      await res.body.dump();
      this.invalidate();
    }
  }

  async close(): Promise<void> {
    await this.dispatcher.close();
  }
}

function missingEndpoint(type: string, cloud: CloudConfig): never {
  throw new RackError('unavailable', `no ${cloud.interface} ${type} endpoint${cloud.region ? ` in region ${cloud.region}` : ''} in the Keystone catalog of ${cloud.source}`);
}

/** The `message` of an OpenStack error body ({"error": {"message"}} or {"itemNotFound": {"message"}}), if any. */
export function errorMessage(text: string): string | undefined {
  try {
    const doc = JSON.parse(text) as Record<string, unknown>;
    for (const v of Object.values(doc ?? {})) {
      const m = (v as { message?: unknown } | null)?.message;
      if (typeof m === 'string') return m.slice(0, 500);
    }
  } catch {
    /* not JSON */
  }
  return undefined;
}

function describe(err: unknown): string {
  const e = err as Error & { cause?: Error };
  return e.cause?.message ? `${e.message} (${e.cause.message})` : e.message;
}
