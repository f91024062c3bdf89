import { RackError } from '../../common/errors.js';
import { errorMessage, type KeystoneSession } from '../../openstack/keystone.js';

/** Microversion 2.52: tags given at create time (the kernel's marker), and the tags filter. */
const MICROVERSION = 'compute 2.52';
/** Servers per page of a listing (Nova's default max_limit is 1000). */
const PAGE = 1000;

/** A server as the driver needs it, checked field by field from Nova's answer. */
export interface ServerView {
  id: string;
  status: string;
  tags: string[];
  /** The server fault's message (an ERROR server: "No valid host was found. ..."). */
  fault?: string;
}

export interface ServerListing {
  servers: ServerView[];
  /** Nova's clock at the answer (its Date header), for the next changes-since. */
  date: number;
}

export interface CreateServer {
  name: string;
  imageRef: string;
  flavorRef: string;
  metadata: Record<string, string>;
  networks: 'auto' | 'none' | Array<{ uuid: string }>;
  tags: string[];
  user_data?: string;
  key_name?: string;
  security_groups?: Array<{ name: string }>;
}

/**
 * The Compute API calls the nova driver makes, and nothing else: it sends the requests, checks
 * every answer's shape and turns refusals into RackErrors with Nova's own message. The policy
 * (what to poll, what a change means) is in nova-driver.ts.
 */
export class NovaApi {
  /** `timeoutMs`: how long Nova may take to answer (its API is slow under many creations at once). */
  constructor(
    private readonly session: KeystoneSession,
    private readonly timeoutMs = 120_000,
  ) {}

  private async call(method: 'GET' | 'POST' | 'DELETE', path: string, body?: unknown): Promise<{ status: number; data: unknown; text: string; date: number }> {
    const res = await this.session.request('compute', {
      method,
      path,
      headers: { 'content-type': 'application/json', accept: 'application/json', 'openstack-api-version': MICROVERSION },
      body: body === undefined ? undefined : JSON.stringify(body),
      timeoutMs: this.timeoutMs,
    });
    const text = await res.body.text();
    let data: unknown = null;
    try {
      data = text ? JSON.parse(text) : null;
    } catch {
      data = null;
    }
    const date = Date.parse(String(res.headers.date));
    return { status: res.status, data, text, date: Number.isNaN(date) ? Date.now() : date };
  }

  /**
   * POST /servers: the new server's id, and Nova's clock when it accepted it. When Nova does not
   * answer, it may still create the server: the error says so (code `unavailable`).
   */
  async createServer(server: CreateServer): Promise<{ id: string; date: number }> {
    let r;
    try {
      r = await this.call('POST', '/servers', { server });
    } catch (err) {
      throw new RackError('unavailable', `Nova did not answer the creation of server ${server.name} (${(err as Error).message}); it may create it still`);
    }
    if (r.status === 202 || r.status === 200) {
      const id = (r.data as { server?: { id?: unknown } } | null)?.server?.id;
      if (typeof id !== 'string' || !id) throw new RackError('compute_error', `Nova accepted server ${server.name} but answered no server id`);
      return { id, date: r.date };
    }
    const msg = errorMessage(r.text) ?? `HTTP ${r.status}`;
    // 413 is Nova's older over-quota answer, 403 today's (and also a policy refusal: told apart by its message)
    if (r.status === 413 || (r.status === 403 && /quota/i.test(msg))) throw new RackError('quota_exceeded', `Nova refused server ${server.name}: ${msg}`);
    if (server.networks === 'auto' && /auto.?allocat|topology|NetworkNotFound|could not be found/i.test(msg)) {
      throw new RackError(
        'compute_error',
        `Nova cannot give server ${server.name} a network with networks "auto" (${msg}): this cloud has no auto-allocated topology; set RACK_NOVA_NETWORKS=none or to network UUIDs (docs/openstack.md)`,
      );
    }
    throw new RackError('compute_error', `Nova refused server ${server.name}: ${msg}`);
  }

  /** A flavor's vCPUs and RAM, by id (GET /flavors/{id}), else by name among all; null when Nova knows neither. */
  async flavorSize(flavor: string): Promise<{ vcpus: number; ram: number } | null> {
    type Flavor = { name: string; vcpus: number; ram: number };
    const r = await this.call('GET', `/flavors/${encodeURIComponent(flavor)}`);
    const byId = r.status === 200 ? (r.data as { flavor?: Flavor } | null)?.flavor : undefined;
    if (byId) return byId;
    const all = await this.call('GET', '/flavors/detail?is_public=None');
    return (all.status === 200 ? (all.data as { flavors?: Flavor[] } | null)?.flavors?.find((f) => f.name === flavor) : undefined) ?? null;
  }

  /** The project's absolute limits and usage (GET /limits), as Nova names them; null without an answer. */
  async absoluteLimits(): Promise<Record<string, unknown> | null> {
    const r = await this.call('GET', '/limits');
    return r.status === 200 ? ((r.data as { limits?: { absolute?: Record<string, unknown> } } | null)?.limits?.absolute ?? null) : null;
  }

  /** DELETE /servers/{id}; a server that is already gone is not an error. */
  async deleteServer(id: string): Promise<void> {
    const r = await this.call('DELETE', `/servers/${encodeURIComponent(id)}`);
    if (r.status !== 204 && r.status !== 202 && r.status !== 404) {
      throw new RackError('compute_error', `Nova could not delete server ${id}: ${errorMessage(r.text) ?? `HTTP ${r.status}`}`);
    }
  }

  /** GET /servers/{id}, or null when Nova no longer knows it. */
  async showServer(id: string): Promise<ServerView | null> {
    const r = await this.call('GET', `/servers/${encodeURIComponent(id)}`);
    if (r.status === 404) return null;
    if (r.status !== 200) throw new RackError('compute_error', `Nova could not show server ${id}: ${errorMessage(r.text) ?? `HTTP ${r.status}`}`);
    return serverView((r.data as { server?: unknown } | null)?.server, `server ${id}`);
  }

  /**
   * GET /servers/detail with filters, every page. With `changesSince` Nova also answers the
   * servers deleted since then (status DELETED), which is how a poll learns of deletions.
   */
  async listServers(filter: { changesSince?: number; tags?: string }): Promise<ServerListing> {
    const servers: ServerView[] = [];
    let marker: string | null = null;
    let date = 0;
    for (;;) {
      const q = new URLSearchParams({ limit: String(PAGE) });
      if (filter.changesSince !== undefined) q.set('changes-since', new Date(filter.changesSince).toISOString().replace(/\.\d+Z$/, 'Z'));
      if (filter.tags) q.set('tags', filter.tags);
      if (marker) q.set('marker', marker);
      const r = await this.call('GET', `/servers/detail?${q}`);
      if (r.status !== 200) throw new RackError('compute_error', `Nova could not list servers: ${errorMessage(r.text) ?? `HTTP ${r.status}`}`);
      const page = (r.data as { servers?: unknown } | null)?.servers;
      if (!Array.isArray(page)) throw new RackError('compute_error', 'Nova answered a server list without "servers"');
      date ||= r.date;
      for (const s of page) servers.push(serverView(s, 'a listed server'));
      const links = (r.data as { servers_links?: Array<{ rel?: unknown }> }).servers_links;
      if (page.length === 0 || !Array.isArray(links) || !links.some((l) => l?.rel === 'next')) break;
      marker = servers.at(-1)!.id;
    }
    return { servers, date };
  }

  /** POST /servers/{id}/action os-getConsoleOutput; empty when the server is gone. */
  async consoleOutput(id: string, lines: number): Promise<string> {
    const r = await this.call('POST', `/servers/${encodeURIComponent(id)}/action`, { 'os-getConsoleOutput': { length: lines } });
    if (r.status === 404) return '';
    if (r.status !== 200) throw new RackError('compute_error', `Nova could not get the console of server ${id}: ${errorMessage(r.text) ?? `HTTP ${r.status}`}`);
    const out = (r.data as { output?: unknown } | null)?.output;
    if (typeof out !== 'string') throw new RackError('compute_error', `Nova answered the console of server ${id} without "output"`);
    return out;
  }
}

function serverView(s: unknown, what: string): ServerView {
  const o = s as { id?: unknown; status?: unknown; fault?: { message?: unknown }; tags?: unknown } | null;
  if (typeof o?.id !== 'string' || typeof o.status !== 'string') throw new RackError('compute_error', `Nova answered ${what} without an id and a status`);
  const fault = typeof o.fault?.message === 'string' ? o.fault.message : undefined;
  const tags = Array.isArray(o.tags) ? o.tags.filter((t): t is string => typeof t === 'string') : [];
  return { id: o.id, status: o.status, fault, tags };
}
