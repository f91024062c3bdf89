import { existsSync, readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join, resolve } from 'node:path';
import yaml from 'js-yaml';
import { RackError } from '../common/errors.js';

/** How to authenticate with Keystone v3: a password (user + project scope) or an application credential. */
export interface KeystoneAuth {
  authUrl: string;
  username?: string;
  userId?: string;
  password?: string;
  userDomainName?: string;
  userDomainId?: string;
  projectName?: string;
  projectId?: string;
  projectDomainName?: string;
  projectDomainId?: string;
  applicationCredentialId?: string;
  applicationCredentialName?: string;
  applicationCredentialSecret?: string;
}

export type EndpointInterface = 'public' | 'internal' | 'admin';

/** One cloud, as openstackclient would use it: credentials, region, endpoint interface, CA bundle. */
export interface CloudConfig {
  auth: KeystoneAuth;
  region?: string;
  interface: EndpointInterface;
  /** PEM bundle (a path) to verify TLS with, instead of the system's CAs. */
  cacert?: string;
  /** Where it came from, for error messages: `cloud "x" of /path/clouds.yaml` or `the OS_* environment`. */
  source: string;
}

export interface LoadOptions {
  env?: NodeJS.ProcessEnv;
  /** For tests: the directories searched instead of ./, ~/.config/openstack/, /etc/openstack/. */
  searchDirs?: string[];
}

/**
 * The cloud the process is configured for, the way every OpenStack client finds it: `OS_CLOUD`
 * names a cloud in clouds.yaml (merged with secure.yaml), else the `OS_*` variables of an openrc.
 */
export function loadCloudConfig(opts: LoadOptions = {}): CloudConfig {
  const env = opts.env ?? process.env;
  if (env.OS_CLOUD) return fromCloudsYaml(env.OS_CLOUD, env, opts.searchDirs ?? defaultDirs());
  return fromEnv(env);
}

function defaultDirs(): string[] {
  return [process.cwd(), join(homedir(), '.config', 'openstack'), '/etc/openstack'];
}

/** The first file of `names` in the search order; an explicit path (an env variable) alone when set. */
function findFile(names: string[], dirs: string[], explicit: string | undefined): string | null {
  if (explicit) return existsSync(explicit) ? resolve(explicit) : null;
  for (const dir of dirs) {
    for (const name of names) {
      const p = join(dir, name);
      if (existsSync(p)) return p;
    }
  }
  return null;
}

function readYaml(path: string): Record<string, unknown> {
  let doc: unknown;
  try {
    doc = yaml.load(readFileSync(path, 'utf8'));
  } catch (err) {
    throw new RackError('bad_request', `${path} is not valid YAML: ${(err as Error).message.split('\n')[0]}`);
  }
  if (doc === undefined || doc === null) return {};
  if (!isMap(doc)) throw new RackError('bad_request', `${path} must be a mapping with a "clouds" key`);
  return doc;
}

function isMap(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** secure.yaml's values win over clouds.yaml's, key by key (as in openstacksdk). */
function merge(base: Record<string, unknown>, over: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = { ...base };
  for (const [k, v] of Object.entries(over)) out[k] = isMap(v) && isMap(out[k]) ? merge(out[k] as Record<string, unknown>, v) : v;
  return out;
}

function fromCloudsYaml(name: string, env: NodeJS.ProcessEnv, dirs: string[]): CloudConfig {
  const cloudsFile = findFile(['clouds.yaml', 'clouds.yml'], dirs, env.OS_CLIENT_CONFIG_FILE);
  if (!cloudsFile) {
    const where = env.OS_CLIENT_CONFIG_FILE ? `OS_CLIENT_CONFIG_FILE=${env.OS_CLIENT_CONFIG_FILE}` : dirs.map((d) => join(d, 'clouds.yaml')).join(', ');
    throw new RackError('bad_request', `OS_CLOUD=${name} but there is no clouds.yaml (looked at ${where})`);
  }
  const clouds = readYaml(cloudsFile).clouds;
  if (!isMap(clouds)) throw new RackError('bad_request', `${cloudsFile} has no "clouds" mapping`);
  const found = clouds[name];
  if (!isMap(found)) {
    throw new RackError('bad_request', `no cloud "${name}" in ${cloudsFile} (it has: ${Object.keys(clouds).join(', ') || 'none'})`);
  }
  let cloud: Record<string, unknown> = found;
  const secureFile = findFile(['secure.yaml', 'secure.yml'], dirs, env.OS_CLIENT_SECURE_FILE);
  if (secureFile) {
    const secure = readYaml(secureFile).clouds;
    if (secure !== undefined && !isMap(secure)) throw new RackError('bad_request', `${secureFile}: "clouds" must be a mapping`);
    if (isMap(secure) && isMap(secure[name])) cloud = merge(cloud, secure[name] as Record<string, unknown>);
  }
  const source = `cloud "${name}" of ${cloudsFile}${secureFile ? ` (with ${secureFile})` : ''}`;
  const str = (obj: Record<string, unknown>, key: string, path: string): string | undefined => {
    const v = obj[key];
    if (v === undefined || v === null) return undefined;
    if (typeof v === 'number') return String(v);
    if (typeof v !== 'string') throw new RackError('bad_request', `${source}: ${path} must be a string`);
    return v;
  };
  const authRaw = cloud.auth;
  if (!isMap(authRaw)) throw new RackError('bad_request', `${source}: auth is missing`);
  const a = (key: string): string | undefined => str(authRaw, key, `auth.${key}`);
  const authType = str(cloud, 'auth_type', 'auth_type') ?? 'password';
  if (!['password', 'v3password', 'v3applicationcredential', 'application_credential'].includes(authType)) {
    throw new RackError('bad_request', `${source}: auth_type "${authType}" is not supported (password or v3applicationcredential)`);
  }
  const auth: KeystoneAuth = {
    authUrl: a('auth_url') ?? '',
    username: a('username'),
    userId: a('user_id'),
    password: a('password'),
    userDomainName: a('user_domain_name') ?? (a('user_domain_id') ?? a('domain_id') ? undefined : (a('domain_name') ?? 'Default')),
    userDomainId: a('user_domain_id') ?? a('domain_id'),
    projectName: a('project_name') ?? a('tenant_name'),
    projectId: a('project_id') ?? a('tenant_id'),
    projectDomainName: a('project_domain_name') ?? (a('project_domain_id') ?? a('domain_id') ? undefined : (a('domain_name') ?? 'Default')),
    projectDomainId: a('project_domain_id') ?? a('domain_id'),
    applicationCredentialId: a('application_credential_id'),
    applicationCredentialName: a('application_credential_name'),
    applicationCredentialSecret: a('application_credential_secret'),
  };
  const appCred = authType.includes('application');
  checkAuth(auth, appCred, source, (k) => `${source}: auth.${k} is missing${k.includes('password') || k.includes('secret') ? ' (in clouds.yaml or secure.yaml)' : ''}`);
  return {
    auth,
    region: str(cloud, 'region_name', 'region_name'),
    interface: parseInterface(str(cloud, 'interface', 'interface') ?? str(cloud, 'endpoint_type', 'endpoint_type'), `${source}: interface`),
    cacert: checkCacert(str(cloud, 'cacert', 'cacert'), `${source}: cacert`),
    source,
  };
}

function fromEnv(env: NodeJS.ProcessEnv): CloudConfig {
  const e = (k: string): string | undefined => env[k] || undefined;
  if (!e('OS_AUTH_URL')) {
    throw new RackError('bad_request', 'no OpenStack cloud configured: set OS_CLOUD (a cloud of clouds.yaml) or OS_AUTH_URL and the other OS_* variables of an openrc file');
  }
  const auth: KeystoneAuth = {
    authUrl: e('OS_AUTH_URL')!,
    username: e('OS_USERNAME'),
    userId: e('OS_USER_ID'),
    password: e('OS_PASSWORD'),
    userDomainName: e('OS_USER_DOMAIN_NAME') ?? (e('OS_USER_DOMAIN_ID') ? undefined : 'Default'),
    userDomainId: e('OS_USER_DOMAIN_ID'),
    projectName: e('OS_PROJECT_NAME') ?? e('OS_TENANT_NAME'),
    projectId: e('OS_PROJECT_ID') ?? e('OS_TENANT_ID'),
    projectDomainName: e('OS_PROJECT_DOMAIN_NAME') ?? (e('OS_PROJECT_DOMAIN_ID') ? undefined : 'Default'),
    projectDomainId: e('OS_PROJECT_DOMAIN_ID'),
    applicationCredentialId: e('OS_APPLICATION_CREDENTIAL_ID'),
    applicationCredentialName: e('OS_APPLICATION_CREDENTIAL_NAME'),
    applicationCredentialSecret: e('OS_APPLICATION_CREDENTIAL_SECRET'),
  };
  const appCred = Boolean(auth.applicationCredentialId || auth.applicationCredentialName) || /application/.test(e('OS_AUTH_TYPE') ?? '');
  const envName: Record<string, string> = {
    username: 'OS_USERNAME',
    password: 'OS_PASSWORD',
    project_name: 'OS_PROJECT_NAME',
    application_credential_id: 'OS_APPLICATION_CREDENTIAL_ID',
    application_credential_secret: 'OS_APPLICATION_CREDENTIAL_SECRET',
  };
  checkAuth(auth, appCred, 'OS_AUTH_URL', (k) => `${envName[k] ?? `OS_${k.toUpperCase()}`} is not set (the OpenStack credentials come from the OS_* environment; or set OS_CLOUD)`);
  return {
    auth,
    region: e('OS_REGION_NAME'),
    interface: parseInterface(e('OS_INTERFACE') ?? e('OS_ENDPOINT_TYPE'), 'OS_INTERFACE'),
    cacert: checkCacert(e('OS_CACERT'), 'OS_CACERT'),
    source: 'the OS_* environment',
  };
}

/** Names the first missing piece of the chosen way to authenticate. */
function checkAuth(a: KeystoneAuth, appCred: boolean, where: string, missing: (key: string) => string): void {
  const need = (ok: unknown, key: string): void => {
    if (!ok) throw new RackError('bad_request', missing(key));
  };
  need(a.authUrl, 'auth_url');
  if (!/^https?:\/\/[^\s/]+/.test(a.authUrl)) throw new RackError('bad_request', `${where}: auth_url "${a.authUrl.slice(0, 80)}" is not an http(s) URL`);
  if (appCred) {
    if (!a.applicationCredentialId) {
      need(a.applicationCredentialName, 'application_credential_id');
      need(a.username || a.userId, 'username');
    }
    need(a.applicationCredentialSecret, 'application_credential_secret');
    return;
  }
  need(a.username || a.userId, 'username');
  need(a.password, 'password');
  need(a.projectName || a.projectId, 'project_name');
}

function parseInterface(v: string | undefined, what: string): EndpointInterface {
  const i = (v ?? 'public').replace(/URL$/, '');
  if (i !== 'public' && i !== 'internal' && i !== 'admin') throw new RackError('bad_request', `${what} must be public, internal or admin, got "${v}"`);
  return i;
}

function checkCacert(path: string | undefined, what: string): string | undefined {
  if (path === undefined) return undefined;
  if (!existsSync(path)) throw new RackError('bad_request', `${what}: no CA bundle at ${path}`);
  return path;
}
