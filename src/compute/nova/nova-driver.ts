import { randomUUID } from 'node:crypto';
import { RackError } from '../../common/errors.js';
import { silentLogger, type Logger } from '../../common/log.js';
import type { KeystoneSession } from '../../openstack/keystone.js';
import type { FlavorSize } from '../../protocol/resources.js';
import type { BootRequest, ComputeDriver, ProjectLimits, VmChange, VmInfo, VmState } from '../driver.js';
import { NovaApi, type CreateServer, type ServerView } from './nova-api.js';

export type Networks = 'auto' | 'none' | string[];

export interface NovaOptions {
  session: KeystoneSession;
  /** Tags every server this kernel boots (`rack-kernel-<id>`), so that list() sees only its own. */
  kernelId: string;
  networks?: Networks;
  keyName?: string;
  securityGroups?: string[];
  pollMs?: number;
  /** How long Nova may take to answer a request (default 120 s). */
  timeoutMs?: number;
  log?: Logger;
}

/** Nova statuses that mean the server no longer runs its app. */
const GONE = new Set(['DELETED', 'SHUTOFF', 'SOFT_DELETED', 'SHELVED', 'SHELVED_OFFLOADED']);
/**
 * How far back each poll's changes-since reaches before the previous poll's answer: a change
 * whose transaction began before that answer may be committed after it. Changes seen twice are
 * harmless (a state is reported only when it differs from the last one).
 */
const OVERLAP_MS = 10_000;
/** How long a server whose creation got no answer is looked out for (then reconcile at a restart finds it). */
const LOST_MS = 15 * 60_000;
const UUID = /^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$/;

/** RACK_NOVA_NETWORKS: auto (Neutron's auto-allocated topology), none, or network UUIDs. */
export function parseNetworks(value: string | undefined): Networks {
  const v = (value ?? '').trim();
  if (!v || v === 'auto') return 'auto';
  if (v === 'none') return 'none';
  const ids = v.split(',').map((s) => s.trim());
  const bad = ids.find((id) => !UUID.test(id));
  if (bad !== undefined) throw new RackError('bad_request', `RACK_NOVA_NETWORKS must be auto, none or network UUIDs separated by commas; "${bad.slice(0, 60)}" is not a UUID`);
  return ids;
}

/**
 * The `nova` compute driver: each RACK process is a Nova server booted from a Glance image, with
 * the rack_* keys in its metadata and the caller's user_data. It learns of state changes with
 * one list call per poll (servers changed since the previous poll, deleted ones included),
 * whatever the number of servers: BUILD -> ACTIVE, ERROR (with Nova's fault message), GONE.
 */
export class NovaDriver implements ComputeDriver {
  readonly name = 'nova';
  private readonly api: NovaApi;
  private readonly listeners: Array<(change: VmChange) => void> = [];
  /** Servers being watched, with the state last reported (or seen at boot). */
  private readonly known = new Map<string, VmState>();
  /** Nova's clock at the last good poll (or first boot): the next poll asks for changes since then. */
  private since: number | null = null;
  /**
   * Servers seen in ERROR before their fault was recorded (Nova sets the state first): shown
   * once each at the next poll, for the message.
   */
  private readonly faultless = new Set<string>();
  /** Boot tags of servers whose POST got no answer (Nova may create them still), with until when to look out for them. */
  private readonly lost = new Map<string, number>();
  private readonly poller: NodeJS.Timeout;
  private polling = false;
  private readonly tag: string;
  private readonly log: Logger;

  constructor(private readonly opts: NovaOptions) {
    this.api = new NovaApi(opts.session, opts.timeoutMs);
    this.tag = `rack-kernel-${opts.kernelId}`;
    this.log = opts.log ?? silentLogger();
    this.poller = setInterval(() => void this.poll(), opts.pollMs ?? 5000);
    this.poller.unref();
  }

  /**
   * A driver for the configured cloud. With networks "auto" it first asks Neutron whether this
   * project can have an auto-allocated network: a cloud without that topology fails every boot,
   * and is better told at start.
   */
  static async create(opts: Omit<NovaOptions, 'networks' | 'keyName' | 'securityGroups'> & { env?: NodeJS.ProcessEnv }): Promise<NovaDriver> {
    const env = opts.env ?? process.env;
    const networks = parseNetworks(env.RACK_NOVA_NETWORKS);
    if (networks === 'auto') await checkAutoNetwork(opts.session);
    const list = (v: string | undefined): string[] | undefined => (v ? v.split(',').map((s) => s.trim()).filter(Boolean) : undefined);
    const poll = env.RACK_NOVA_POLL_SECONDS;
    if (poll !== undefined && !(/^[0-9]+(\.[0-9]+)?$/.test(poll) && Number(poll) >= 0.1 && Number(poll) <= 300)) {
      throw new RackError('bad_request', `RACK_NOVA_POLL_SECONDS must be a number of seconds from 0.1 to 300, got "${poll.slice(0, 40)}"`);
    }
    return new NovaDriver({
      ...opts,
      networks,
      keyName: env.RACK_NOVA_KEY_NAME || undefined,
      securityGroups: list(env.RACK_NOVA_SECURITY_GROUPS),
      pollMs: poll === undefined ? opts.pollMs : Number(poll) * 1000,
    });
  }

  async boot(req: BootRequest): Promise<string> {
    if (!req.flavor) throw new RackError('bad_request', 'the nova driver needs a flavor: give "flavor" at fork or when creating the group');
    const networks = this.opts.networks ?? 'auto';
    const server: CreateServer = {
      name: req.name,
      imageRef: req.template,
      flavorRef: req.flavor,
      metadata: req.meta,
      networks: Array.isArray(networks) ? networks.map((uuid) => ({ uuid })) : networks,
      // this boot's own tag: a server Nova creates after its POST went unanswered is known by it
      tags: [this.tag, `rack-boot-${randomUUID()}`],
    };
    if (req.userData !== null) server.user_data = Buffer.from(req.userData).toString('base64');
    if (this.opts.keyName) server.key_name = this.opts.keyName;
    if (this.opts.securityGroups) server.security_groups = this.opts.securityGroups.map((name) => ({ name }));
    let created;
    try {
      created = await this.api.createServer(server);
    } catch (err) {
      if ((err as RackError).code === 'unavailable') {
        // The fork fails; should Nova make the server after all, the poll deletes it.
        this.lost.set(server.tags[1]!, Date.now() + LOST_MS);
        this.since ??= Date.now() - LOST_MS;
      }
      throw err;
    }
    const { id, date } = created;
    this.known.set(id, 'BUILD');
    this.since ??= date - OVERLAP_MS;
    this.log.info({ gid: req.gid, pid: req.pid, vm: id }, 'server created');
    return id;
  }

  async destroy(id: string): Promise<void> {
    // A deletion we asked for is not news for the listeners.
    this.known.delete(id);
    await this.api.deleteServer(id);
  }

  async consoleOutput(id: string, lines: number): Promise<string> {
    return this.api.consoleOutput(id, lines);
  }

  async state(id: string): Promise<VmState> {
    const s = await this.api.showServer(id);
    const state = s ? mapStatus(s.status) : 'GONE';
    if (state === 'BUILD' || state === 'ACTIVE') this.watch(id, state);
    return state;
  }

  /** Another kernel's servers are watched like ours from now on: the poll of changes covers every server of the project. */
  async adopt(ids: readonly string[]): Promise<Map<string, VmState>> {
    // The poll asks for changes since Nova's clock at a first answer: a kernel that has booted
    // nothing yet takes it from a listing of its own servers.
    if (this.since === null) await this.list();
    const out = new Map<string, VmState>();
    for (const id of ids) out.set(id, this.known.get(id) ?? (await this.state(id)));
    return out;
  }

  /** This kernel's servers (by its tag): what reconciliation after a restart compares with the process table. */
  async list(): Promise<VmInfo[]> {
    const { servers, date } = await this.api.listServers({ tags: this.tag });
    this.since ??= date - OVERLAP_MS;
    const out: VmInfo[] = [];
    for (const s of servers) {
      const state = mapStatus(s.status);
      if (state === 'BUILD' || state === 'ACTIVE') this.watch(s.id, state);
      out.push({ id: s.id, state });
    }
    return out;
  }

  private watch(id: string, state: VmState): void {
    if (!this.known.has(id)) this.known.set(id, state);
  }

  /** A flavor's size from Nova (by id, else by name); null when Nova does not know it (its boot then says why). */
  async flavor(_template: string, flavor: string | null): Promise<FlavorSize | null> {
    if (!flavor) return null;
    const f = await this.api.flavorSize(flavor);
    return f ? { vcpus: f.vcpus, ram_mb: f.ram } : null;
  }

  /** The project's absolute limits and usage (Nova's /limits); -1 means unlimited. */
  async limits(): Promise<ProjectLimits | null> {
    const a = await this.api.absoluteLimits();
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

  /** One GET /servers/detail?changes-since=... for all watched servers; nothing while none is watched. */
  private async poll(): Promise<void> {
    for (const [name, until] of this.lost) if (until < Date.now()) this.lost.delete(name);
    if (this.polling || (this.known.size === 0 && this.lost.size === 0) || this.since === null) return;
    this.polling = true;
    try {
      for (const id of this.faultless) {
        const s = await this.api.showServer(id);
        this.faultless.delete(id);
        this.report(id, 'ERROR', s?.fault);
      }
      const { servers, date } = await this.api.listServers({ changesSince: this.since });
      for (const s of servers) this.seen(s);
      this.since = date - OVERLAP_MS;
    } catch (err) {
      this.log.warn({ err: (err as Error).message, watched: this.known.size }, 'cannot poll Nova for server changes');
    } finally {
      this.polling = false;
    }
  }

  private seen(s: ServerView): void {
    const lostTag = s.tags.find((t) => this.lost.has(t));
    if (lostTag && s.status !== 'DELETED') {
      this.lost.delete(lostTag);
      this.log.warn({ vm: s.id }, 'deleting a server Nova created after its creation failed');
      void this.api.deleteServer(s.id).catch((err: Error) => this.log.warn({ vm: s.id, err: err.message }, 'cannot delete a server'));
      return;
    }
    const before = this.known.get(s.id);
    if (before === undefined) return; // another kernel's, a user's, or one we destroyed
    const now = mapStatus(s.status);
    if (now === before || now === 'BUILD') return;
    if (now === 'ERROR' && !s.fault) this.faultless.add(s.id);
    else this.report(s.id, now, s.fault);
  }

  private report(id: string, state: Exclude<VmState, 'BUILD'>, fault: string | undefined): void {
    if (!this.known.has(id)) return; // destroyed meanwhile
    if (state === 'ACTIVE') this.known.set(id, state);
    else this.known.delete(id);
    let change: VmChange = { id, state };
    if (state === 'ERROR') {
      change = { id, state, fault: fault ?? `Nova set server ${id} to ERROR without a fault message` };
      this.log.warn({ vm: id, fault: change.fault }, 'server failed');
    }
    for (const l of this.listeners) l(change);
  }

  async close(): Promise<void> {
    clearInterval(this.poller);
    await this.opts.session.close();
  }
}

function mapStatus(status: string): VmState {
  if (status === 'ACTIVE') return 'ACTIVE';
  if (status === 'ERROR') return 'ERROR';
  if (GONE.has(status)) return 'GONE';
  return 'BUILD';
}

/** Asks Neutron for a dry run of the auto-allocated topology (what networks "auto" needs). */
async function checkAutoNetwork(session: KeystoneSession): Promise<void> {
  const hint = 'set RACK_NOVA_NETWORKS=none (no network: a test cloud, or a config drive only) or to network UUIDs (see docs/openstack.md)';
  if (!(await session.has('network'))) throw new RackError('bad_request', `RACK_NOVA_NETWORKS is auto (the default) but the cloud has no network service in its catalog: ${hint}`);
  const project = await session.projectId();
  const res = await session.request('network', { method: 'GET', path: `/v2.0/auto-allocated-topology/${encodeURIComponent(project)}?fields=dry-run`, headers: { accept: 'application/json' } });
  const text = await res.body.text();
  if (res.status === 200) return;
  throw new RackError('bad_request', `RACK_NOVA_NETWORKS is auto (the default) but Neutron cannot auto-allocate a network for this project (HTTP ${res.status}${text ? `: ${text.slice(0, 200).replace(/\s+/g, ' ')}` : ''}): ${hint}`);
}
