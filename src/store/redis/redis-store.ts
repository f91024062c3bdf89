import { JsonText } from '../../protocol/json-text.js';
import { DEFAULT_QUOTAS, LIVE_STATUSES, PROCESS_FIELDS, type Group, type Process, type ProcessField, type ProcessStatus, type Quotas } from '../../protocol/process.js';
import type {
  GroupStore,
  KillStore,
  MailboxStore,
  PipeStore,
  NewProcess,
  PendingKill,
  ProcessFilter,
  ProcessPatch,
  ProcessStore,
  ScheduleStore,
  ShmStore,
  SignalQueueStore,
  Store,
  TokenOwner,
  TokenRole,
  TokenStore,
} from '../store.js';
import { connectRedis, scripts, type Client, type Scripts } from './connect.js';
import { Keys } from './keys.js';
import { RedisMailboxes } from './mailbox-store.js';
import { RedisPipes } from './pipe-store.js';
import { RedisSchedule } from './schedule-store.js';
import { PROCESS_SCRIPTS } from './scripts.js';
import { RedisShm } from './shm-store.js';

const PATCHABLE = new Set(['status', 'app_state', 'app_status', 'exit_code', 'signal', 'error', 'compute_id', 'ended_at']);
const LIVE = new Set<string>(LIVE_STATUSES);

/** A stored process without the store's own fields. */
function fromStored(stored: Process & { reaped?: number; ended_ms?: number }): Process {
  const { reaped: _r, ended_ms: _e, ...p } = stored;
  return p;
}

function toProcess(json: string | null): Process | null {
  return json === null ? null : fromStored(JSON.parse(json) as Process);
}

/** Every group's gid, for the readers that span groups. */
async function allGroups(redis: Client, keys: Keys): Promise<string[]> {
  return redis.smembers(keys.groups);
}

/** MGET in slices (all keys of one group: one slot). */
async function mget(redis: Client, names: readonly string[]): Promise<Array<string | null>> {
  const out: Array<string | null> = [];
  for (let i = 0; i < names.length; i += 1000) out.push(...(await redis.mget(...names.slice(i, i + 1000))));
  return out;
}

/** Deletes the keys outside a group that pointed at what a script removed ('t' token hash, 'c' compute id). */
async function forget(redis: Client, keys: Keys, gone: string[]): Promise<void> {
  await Promise.all(gone.map((g) => redis.del(g[0] === 't' ? keys.token(g.slice(1)) : keys.compute(g.slice(1)))));
}

class RedisGroups implements GroupStore {
  constructor(private readonly redis: Client, private readonly keys: Keys, private readonly lua: Scripts<keyof typeof PROCESS_SCRIPTS>) {}

  async create(g: Group, userData: string | null = null): Promise<void> {
    await this.redis.sadd(this.keys.groups, g.gid);
    await this.lua.run('createGroup', this.keys.group(g.gid), JSON.stringify(g), userData === null ? '0' : '1', userData ?? '');
  }

  async get(gid: string): Promise<Group | null> {
    const json = await this.redis.hget(this.keys.group(gid) + 'g', 'json');
    if (json === null) return null;
    const g = JSON.parse(json) as Group;
    return { ...g, quotas: { ...DEFAULT_QUOTAS, ...g.quotas } };
  }

  async userData(gid: string): Promise<string | null> {
    return this.redis.hget(this.keys.group(gid) + 'g', 'userdata');
  }

  async list(): Promise<Group[]> {
    const groups = await Promise.all((await allGroups(this.redis, this.keys)).map((gid) => this.get(gid)));
    return groups
      .filter((g): g is Group => g !== null)
      .sort((a, b) => (a.created_at === b.created_at ? (a.gid < b.gid ? -1 : 1) : a.created_at < b.created_at ? -1 : 1));
  }

  async delete(gid: string): Promise<void> {
    await forget(this.redis, this.keys, (await this.lua.run('deleteGroup', this.keys.group(gid))) as string[]);
    await Promise.all([this.redis.srem(this.keys.groups, gid), this.redis.srem(this.keys.shmExpiring, gid)]);
  }
}

class RedisProcesses implements ProcessStore {
  constructor(private readonly redis: Client, private readonly keys: Keys, private readonly lua: Scripts<keyof typeof PROCESS_SCRIPTS>) {}

  async insert(gid: string, rows: readonly NewProcess[], quotas: Pick<Quotas, 'processes' | 'forks'>, rid: string | null = null): Promise<{ processes: Process[]; replayed: boolean }> {
    const t = new Date().toISOString();
    const full = rows.map((r) => ({ ...r, gid, created_at: t, updated_at: t, ended_at: null }));
    // cjson would answer an empty array as {}: an empty fork creates nothing, whatever the quotas.
    if (full.length === 0) return { processes: [], replayed: false };
    const [replayed, json] = (await this.lua.run('insert', this.keys.group(gid), rid ?? '', quotas.processes, quotas.forks, JSON.stringify(full))) as [number, string];
    return { processes: (JSON.parse(json) as Process[]).map(fromStored), replayed: replayed === 1 };
  }

  async get(gid: string, pid: number): Promise<Process | null> {
    return toProcess(await this.redis.get(`${this.keys.group(gid)}p:${pid}`));
  }

  async list(gid: string, filter: ProcessFilter = {}): Promise<Process[]> {
    const base = this.keys.group(gid);
    const index = filter.ppid === undefined ? 'pids' : `kids:${filter.ppid ?? 'root'}`;
    const pids = await this.redis.zrange(base + index, '0', '-1');
    const all = (await mget(this.redis, pids.map((pid) => `${base}p:${pid}`))).map(toProcess).filter((p): p is Process => p !== null);
    const wanted = filter.status && filter.status.length > 0 ? new Set<string>(filter.status) : null;
    return wanted ? all.filter((p) => wanted.has(p.status)) : all;
  }

  async listText(gid: string, filter: ProcessFilter = {}, fields: readonly ProcessField[] = PROCESS_FIELDS): Promise<JsonText> {
    const list = await this.list(gid, filter);
    if (fields.length === PROCESS_FIELDS.length) return new JsonText(JSON.stringify(list));
    const keep = PROCESS_FIELDS.filter((f) => fields.includes(f));
    return new JsonText(JSON.stringify(list.map((p) => Object.fromEntries(keep.map((f) => [f, p[f]])))));
  }

  async listLive(): Promise<Process[]> {
    const perGroup = await Promise.all(
      (await allGroups(this.redis, this.keys)).map(async (gid) => {
        const base = this.keys.group(gid);
        const pids = await this.redis.smembers(base + 'live');
        return (await mget(this.redis, pids.map((pid) => `${base}p:${pid}`))).map(toProcess);
      }),
    );
    return perGroup
      .flat()
      .filter((p): p is Process => p !== null && LIVE.has(p.status))
      .sort((a, b) => (a.gid === b.gid ? a.pid - b.pid : a.gid < b.gid ? -1 : 1));
  }

  private async patch(gid: string, pid: number, patch: ProcessPatch, onlyLive: boolean): Promise<Process | null> {
    const fields = Object.fromEntries(Object.keys(patch).filter((k) => PATCHABLE.has(k)).map((k) => [k, (patch as Record<string, unknown>)[k] ?? null]));
    // The index first: a crash before the update leaves an entry byComputeId sees through.
    if (typeof fields.compute_id === 'string') await this.redis.set(this.keys.compute(fields.compute_id), JSON.stringify([gid, pid]));
    const endedMs = 'ended_at' in fields ? String(fields.ended_at === null ? 0 : Date.parse(fields.ended_at as string)) : '';
    const json = (await this.lua.run('update', this.keys.group(gid), pid, onlyLive ? '1' : '0', JSON.stringify(fields), new Date().toISOString(), endedMs)) as string | null;
    return toProcess(json);
  }

  update(gid: string, pid: number, patch: ProcessPatch): Promise<Process | null> {
    return this.patch(gid, pid, patch, false);
  }

  updateLive(gid: string, pid: number, patch: ProcessPatch): Promise<Process | null> {
    return this.patch(gid, pid, patch, true);
  }

  async reapAny(gid: string, ppid: number, rid: string | null = null): Promise<Process | null> {
    return toProcess((await this.lua.run('reap', this.keys.group(gid), ppid, rid ?? '')) as string | null);
  }

  async markReaped(gid: string, pid: number): Promise<void> {
    await this.lua.run('update', this.keys.group(gid), pid, '0', '{"reaped":1}', '', '');
  }

  async byComputeId(computeId: string): Promise<Process | null> {
    const at = await this.redis.get(this.keys.compute(computeId));
    if (at === null) return null;
    const [gid, pid] = JSON.parse(at) as [string, number];
    const p = await this.get(gid, pid);
    return p?.compute_id === computeId ? p : null;
  }

  async countByStatus(): Promise<Partial<Record<ProcessStatus, number>>> {
    const out: Partial<Record<ProcessStatus, number>> = {};
    const counts = await Promise.all((await allGroups(this.redis, this.keys)).map((gid) => this.redis.hgetall(this.keys.group(gid) + 'count')));
    for (const c of counts) {
      for (const [status, n] of Object.entries(c)) out[status as ProcessStatus] = (out[status as ProcessStatus] ?? 0) + Number(n);
    }
    for (const s of Object.keys(out) as ProcessStatus[]) if (out[s] === 0) delete out[s];
    return out;
  }

  async remove(gid: string, pids: readonly number[]): Promise<void> {
    if (pids.length === 0) return;
    await forget(this.redis, this.keys, (await this.lua.run('remove', this.keys.group(gid), ...pids)) as string[]);
  }
}

class RedisTokens implements TokenStore {
  constructor(private readonly redis: Client, private readonly keys: Keys, private readonly lua: Scripts<keyof typeof PROCESS_SCRIPTS>) {}

  async put(hash: string, owner: TokenOwner): Promise<void> {
    await this.redis.set(this.keys.token(hash), owner.gid);
    await this.lua.run('putToken', this.keys.group(owner.gid), hash, owner.pid, owner.role);
  }

  async owner(hash: string): Promise<TokenOwner | null> {
    const gid = await this.redis.get(this.keys.token(hash));
    if (gid === null) return null;
    const whose = await this.redis.hget(this.keys.group(gid) + 'tokens', hash);
    if (whose === null) return null;
    const [pid, role] = whose.split(' ');
    return { gid, pid: Number(pid), role: role as TokenRole };
  }

  async revoke(gid: string, pid: number, role: TokenRole): Promise<void> {
    const hashes = (await this.lua.run('revokeToken', this.keys.group(gid), pid, role)) as string[];
    await forget(this.redis, this.keys, hashes.map((h) => 't' + h));
  }
}

class RedisKills implements KillStore {
  constructor(private readonly redis: Client, private readonly keys: Keys) {}

  async put(k: PendingKill): Promise<void> {
    await this.redis.hset(this.keys.group(k.gid) + 'kills', String(k.pid), JSON.stringify({ signal: k.signal, deadline: k.deadline }));
  }

  async delete(gid: string, pid: number): Promise<void> {
    await this.redis.hdel(this.keys.group(gid) + 'kills', String(pid));
  }

  async list(): Promise<PendingKill[]> {
    const perGroup = await Promise.all(
      (await allGroups(this.redis, this.keys)).map(async (gid) =>
        Object.entries(await this.redis.hgetall(this.keys.group(gid) + 'kills')).map(([pid, json]) => ({ gid, pid: Number(pid), ...(JSON.parse(json) as Pick<PendingKill, 'signal' | 'deadline'>) })),
      ),
    );
    return perGroup.flat().sort((a, b) => a.deadline - b.deadline);
  }
}

class RedisSignalQueue implements SignalQueueStore {
  constructor(private readonly redis: Client, private readonly keys: Keys) {}

  private key(gid: string, pid: number): string {
    return `${this.keys.group(gid)}sig:${pid}`;
  }

  async push(gid: string, pid: number, event: string): Promise<void> {
    await this.redis.rpush(this.key(gid, pid), event);
  }

  async take(gid: string, pid: number): Promise<string[]> {
    const key = this.key(gid, pid);
    const [[err, events]] = (await this.redis.multi().lrange(key, 0, -1).del(key).exec()) as [[Error | null, string[]]];
    if (err) throw err;
    return events;
  }

  async clear(gid: string, pid: number): Promise<void> {
    await this.redis.del(this.key(gid, pid));
  }
}

/**
 * The kernel's state in Redis (one server, or a Redis Cluster): every group's keys in one slot,
 * what SQLite does in a transaction done by one Lua script. `prefix` names the keys (several
 * stores, e.g. tests, may share a server).
 */
export class RedisStore implements Store {
  readonly groups: GroupStore;
  readonly processes: ProcessStore;
  readonly tokens: TokenStore;
  readonly kills: KillStore;
  readonly signals: SignalQueueStore;
  readonly mailboxes: MailboxStore;
  readonly shm: ShmStore;
  readonly schedule: ScheduleStore;
  readonly pipes: PipeStore;

  private constructor(private readonly redis: Client, prefix: string) {
    const keys = new Keys(prefix);
    const lua = scripts(redis, 'process', PROCESS_SCRIPTS);
    this.groups = new RedisGroups(redis, keys, lua);
    this.processes = new RedisProcesses(redis, keys, lua);
    this.tokens = new RedisTokens(redis, keys, lua);
    this.kills = new RedisKills(redis, keys);
    this.signals = new RedisSignalQueue(redis, keys);
    this.mailboxes = new RedisMailboxes(redis, keys);
    this.shm = new RedisShm(redis, keys);
    this.schedule = new RedisSchedule(redis, keys, lua, () => allGroups(redis, keys));
    this.pipes = new RedisPipes(redis, keys);
  }

  static async open(url: string, prefix = 'rack', onError?: (err: Error) => void): Promise<RedisStore> {
    return new RedisStore(await connectRedis(url, onError), prefix);
  }

  async close(): Promise<void> {
    await this.redis.quit().catch(() => this.redis.disconnect());
  }
}
