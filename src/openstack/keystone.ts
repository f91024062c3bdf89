import { request } from 'undici';
import { RackError } from '../common/errors.js';

export interface KeystoneCredentials {
  authUrl: string;
  /** Password auth. */
  username?: string;
  password?: string;
  userDomain?: string;
  projectName?: string;
  projectDomain?: string;
  /** Application-credential auth (preferred for services: revocable, no password). */
  applicationCredentialId?: string;
  applicationCredentialSecret?: string;
  region?: string;
  /** Endpoint interface: public (default), internal or admin. */
  interface?: string;
}

interface CatalogEntry {
  type: string;
  endpoints: Array<{ interface: string; region?: string; region_id?: string; url: string }>;
}

/** Reads the standard OS_* variables (as openstackclient does). */
export function credentialsFromEnv(env: NodeJS.ProcessEnv = process.env): KeystoneCredentials {
  const authUrl = env.OS_AUTH_URL;
  if (!authUrl) throw new RackError('bad_request', 'the nova driver needs OS_AUTH_URL (and OS_USERNAME/OS_PASSWORD/OS_PROJECT_NAME, or OS_APPLICATION_CREDENTIAL_ID/SECRET)');
  const c: KeystoneCredentials = {
    authUrl,
    username: env.OS_USERNAME,
    password: env.OS_PASSWORD,
    userDomain: env.OS_USER_DOMAIN_NAME ?? 'Default',
    projectName: env.OS_PROJECT_NAME ?? env.OS_TENANT_NAME,
    projectDomain: env.OS_PROJECT_DOMAIN_NAME ?? 'Default',
    applicationCredentialId: env.OS_APPLICATION_CREDENTIAL_ID,
    applicationCredentialSecret: env.OS_APPLICATION_CREDENTIAL_SECRET,
    region: env.OS_REGION_NAME,
    interface: env.OS_INTERFACE ?? 'public',
  };
  if (!c.applicationCredentialId && !(c.username && c.password && c.projectName)) {
    throw new RackError('bad_request', 'the nova driver needs OS_USERNAME, OS_PASSWORD and OS_PROJECT_NAME, or OS_APPLICATION_CREDENTIAL_ID and OS_APPLICATION_CREDENTIAL_SECRET');
  }
  return c;
}

/**
 * A Keystone v3 session: a scoped token and the service catalog, renewed before the token
 * expires. The token and the password never leave this object (and are never logged).
 */
export class KeystoneSession {
  private token: string | null = null;
  private expires = 0;
  private catalog: CatalogEntry[] = [];
  private pending: Promise<void> | null = null;

  constructor(
    private readonly creds: KeystoneCredentials,
    private readonly timeoutMs = 30_000,
  ) {}

  private body(): unknown {
    const c = this.creds;
    if (c.applicationCredentialId) {
      return { auth: { identity: { methods: ['application_credential'], application_credential: { id: c.applicationCredentialId, secret: c.applicationCredentialSecret } } } };
    }
    return {
      auth: {
        identity: { methods: ['password'], password: { user: { name: c.username, domain: { name: c.userDomain }, password: c.password } } },
        scope: { project: { name: c.projectName, domain: { name: c.projectDomain } } },
      },
    };
  }

  private async authenticate(): Promise<void> {
    const base = this.creds.authUrl.replace(/\/+$/, '');
    const url = /\/v3$/.test(base) ? `${base}/auth/tokens` : `${base}/v3/auth/tokens`;
    let res;
    try {
      res = await request(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(this.body()), headersTimeout: this.timeoutMs, bodyTimeout: this.timeoutMs });
    } catch (err) {
      throw new RackError('compute_error', `Keystone at ${url} cannot be reached: ${(err as Error).message}`);
    }
    const text = await res.body.text();
    if (res.statusCode !== 201) throw new RackError('compute_error', `Keystone refused the credentials (HTTP ${res.statusCode})`);
    const token = res.headers['x-subject-token'];
    if (typeof token !== 'string') throw new RackError('compute_error', 'Keystone answered without X-Subject-Token');
    const doc = JSON.parse(text) as { token: { expires_at: string; catalog?: CatalogEntry[] } };
    this.token = token;
    this.expires = Date.parse(doc.token.expires_at);
    this.catalog = doc.token.catalog ?? [];
  }

  /** A valid token (renewed 5 minutes before it expires). */
  async getToken(): Promise<string> {
    if (!this.token || Date.now() > this.expires - 5 * 60_000) {
      this.pending ??= this.authenticate().finally(() => (this.pending = null));
      await this.pending;
    }
    return this.token!;
  }

  /** Forgets the token (after a 401) so the next call authenticates again. */
  invalidate(): void {
    this.token = null;
  }

  async endpoint(type: string): Promise<string> {
    await this.getToken();
    const entry = this.catalog.find((e) => e.type === type);
    const iface = this.creds.interface ?? 'public';
    const ep = entry?.endpoints.find((e) => e.interface === iface && (!this.creds.region || e.region === this.creds.region || e.region_id === this.creds.region));
    if (!ep) throw new RackError('compute_error', `no ${iface} ${type} endpoint${this.creds.region ? ` in region ${this.creds.region}` : ''} in the Keystone catalog`);
    return ep.url.replace(/\/+$/, '');
  }
}
