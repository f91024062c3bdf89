import { request } from 'undici';
import { RackError } from '../../common/errors.js';
import { silentLogger, type Logger } from '../../common/log.js';
import type { FlavorSize } from '../../protocol/resources.js';
import type { BootRequest, ComputeDriver, ProjectLimits, VmChange, VmInfo, VmState } from '../driver.js';
import { credentialsFromEnv, KeystoneSession } from '../../openstack/keystone.js';

export interface NovaOptions {
  session: KeystoneSession;
  /** Tags every server this kernel boots, so that list() sees only its own. */
  kernelId: string;
  /** 'auto', 'none', or network UUIDs. */
  networks?: 'auto' | 'none' | string[];
  keyName?: string;
  securityGroups?: string[];
  pollMs?: number;
  log?: Logger;
}

const KERNEL_KEY = 'rack_kernel';

/** Nova statuses that mean the server is no longer running its app. */
const GONE = new Set(['DELETED', 'SHUTOFF', 'SOFT_DELETED', 'SHELVED', 'SHELVED_OFFLOADED']);

/**
 * The `nova` compute driver: each RACK process is a Nova server booted from a Glance image with
 * the rack_* keys in its metadata (read by dckinit from the metadata service) and the user's
 * user_data.
 */
export class NovaDriver implements ComputeDriver {
  readonly name = 'nova';
  private readonly listeners: Array<(change: VmChange) => void> = [];
  private readonly known = new Set<string>();
  private readonly poller: NodeJS.Timeout;
  private readonly log: Logger;

  constructor(private readonly opts: NovaOptions) {
    this.log = opts.log ?? silentLogger();
    this.poller = setInterval(() => void this.poll(), opts.pollMs ?? 5000);
    this.poller.unref();
  }

  static fromEnv(opts: { kernelId: string; log?: Logger; env?: NodeJS.ProcessEnv }): NovaDriver {
    const env = opts.env ?? process.env;
    const net = env.RACK_NOVA_NETWORKS;
    return new NovaDriver({
      session: new KeystoneSession(credentialsFromEnv(env)),
      kernelId: opts.kernelId,
      networks: !net || net === 'auto' ? 'auto' : net === 'none' ? 'none' : net.split(',').map((s) => s.trim()).filter(Boolean),
      keyName: env.RACK_NOVA_KEY_NAME || undefined,
      securityGroups: env.RACK_NOVA_SECURITY_GROUPS ? env.RACK_NOVA_SECURITY_GROUPS.split(',').map((s) => s.trim()) : undefined,
      log: opts.log,
    });
  }

  private async call(method: 'GET' | 'POST' | 'DELETE', path: string, body?: unknown, retried = false): Promise<{ status: number; data: any }> {
    const base = await this.opts.session.endpoint('compute');
    const token = await this.opts.session.getToken();
    let res;
    try {
      res = await request(`${base}${path}`, {
        method,
        headers: { 'x-auth-token': token, 'content-type': 'application/json', 'openstack-api-version': 'compute 2.37', accept: 'application/json' },
        body: body === undefined ? undefined : JSON.stringify(body),
        headersTimeout: 30_000,
        bodyTimeout: 30_000,
      });
    } catch (err) {
      throw new RackError('compute_error', `Nova cannot be reached: ${(err as Error).message}`);
    }
    const text = await res.body.text();
    if (res.statusCode === 401 && !retried) {
      this.opts.session.invalidate();
      return this.call(method, path, body, true);
    }
    let data: any = null;
    try {
      data = text ? JSON.parse(text) : null;
    } catch {
      data = null;
    }
    return { status: res.statusCode, data };
  }

  async boot(req: BootRequest): Promise<string> {
    if (!req.flavor) throw new RackError('bad_request', 'the nova driver needs a flavor: give "flavor" at fork or when creating the group');
    const networks = this.opts.networks ?? 'auto';
    const server: Record<string, unknown> = {
      name: req.name,
      imageRef: req.template,
      flavorRef: req.flavor,
      metadata: { ...req.meta, [KERNEL_KEY]: this.opts.kernelId },
      networks: Array.isArray(networks) ? networks.map((uuid) => ({ uuid })) : networks,
    };
    if (req.userData !== null) server.user_data = Buffer.from(req.userData).toString('base64');
    if (this.opts.keyName) server.key_name = this.opts.keyName;
    if (this.opts.securityGroups) server.security_groups = this.opts.securityGroups.map((name) => ({ name }));
    const r = await this.call('POST', '/servers', { server });
    if (r.status !== 202 && r.status !== 200) {
      const msg = r.data ? (Object.values(r.data)[0] as { message?: string })?.message : undefined;
      throw new RackError('compute_error', `Nova refused to boot ${req.name}: ${msg ?? `HTTP ${r.status}`}`);
    }
    const id = r.data.server.id as string;
    this.known.add(id);
    this.log.info({ gid: req.gid, pid: req.pid, vm: id }, 'server created');
    return id;
  }

  async destroy(id: string): Promise<void> {
    const r = await this.call('DELETE', `/servers/${encodeURIComponent(id)}`);
    this.known.delete(id);
    if (r.status !== 204 && r.status !== 404 && r.status !== 202) throw new RackError('compute_error', `Nova could not delete server ${id}: HTTP ${r.status}`);
  }

  async consoleOutput(id: string, lines: number): Promise<string> {
    const r = await this.call('POST', `/servers/${encodeURIComponent(id)}/action`, { 'os-getConsoleOutput': { length: lines } });
    if (r.status === 404) return '';
    if (r.status !== 200) throw new RackError('compute_error', `Nova could not get the console of server ${id}: HTTP ${r.status}`);
    return String(r.data?.output ?? '');
  }

  async state(id: string): Promise<VmState> {
    const r = await this.call('GET', `/servers/${encodeURIComponent(id)}`);
    if (r.status === 404) return 'GONE';
    if (r.status !== 200) throw new RackError('compute_error', `Nova could not show server ${id}: HTTP ${r.status}`);
    return mapStatus(r.data.server.status as string);
  }

  async list(): Promise<VmInfo[]> {
    const r = await this.call('GET', '/servers/detail?name=%5Erack-');
    if (r.status !== 200) throw new RackError('compute_error', `Nova could not list servers: HTTP ${r.status}`);
    const mine = (r.data.servers as Array<{ id: string; status: string; metadata?: Record<string, string> }>).filter((s) => s.metadata?.[KERNEL_KEY] === this.opts.kernelId);
    for (const s of mine) this.known.add(s.id);
    return mine.map((s) => ({ id: s.id, state: mapStatus(s.status) }));
  }

  /** A flavor's size from Nova (by id, else by name); null when Nova does not know it (its boot then says why). */
  async flavor(_template: string, flavor: string | null): Promise<FlavorSize | null> {
    if (!flavor) return null;
    const size = (f: { vcpus: number; ram: number }): FlavorSize => ({ vcpus: f.vcpus, ram_mb: f.ram });
    const r = await this.call('GET', `/flavors/${encodeURIComponent(flavor)}`);
    if (r.status === 200 && r.data?.flavor) return size(r.data.flavor);
    const all = await this.call('GET', '/flavors/detail?is_public=None');
    const named = all.status === 200 ? (all.data?.flavors as Array<{ name: string; vcpus: number; ram: number }> | undefined)?.find((f) => f.name === flavor) : undefined;
    return named ? size(named) : null;
  }

  /** The project's absolute limits and usage (Nova's /limits); -1 means unlimited. */
  async limits(): Promise<ProjectLimits | null> {
    const r = await this.call('GET', '/limits');
    const a = r.status === 200 ? r.data?.limits?.absolute : undefined;
    if (!a) return null;
    const max = (v: unknown): number | null => (typeof v === 'number' && v >= 0 ? v : null);
    const used = (v: unknown): number => (typeof v === 'number' && v > 0 ? v : 0);
    return {
      max: { instances: max(a.maxTotalInstances), vcpus: max(a.maxTotalCores), ram_mb: max(a.maxTotalRAMSize) },
      used: { instances: used(a.totalInstancesUsed), vcpus: used(a.totalCoresUsed), ram_mb: used(a.totalRAMUsed) },
    };
  }

  onChange(listener: (change: VmChange) => void): void {
    this.listeners.push(listener);
  }

  private async poll(): Promise<void> {
    for (const id of [...this.known]) {
      try {
        const s = await this.state(id);
        if (s === 'GONE' || s === 'ERROR') {
          this.known.delete(id);
          for (const l of this.listeners) l({ id, state: s });
        }
      } catch (err) {
        this.log.warn({ vm: id, err: (err as Error).message }, 'cannot poll a server');
      }
    }
  }

  async close(): Promise<void> {
    clearInterval(this.poller);
  }
}

function mapStatus(status: string): VmState {
  if (status === 'ACTIVE') return 'ACTIVE';
  if (status === 'ERROR') return 'ERROR';
  if (GONE.has(status)) return 'GONE';
  return 'BUILD';
}
