import { RackError } from '../../common/errors.js';
import { DEFAULT_QUOTAS, PROCESS_FIELDS, type Group, type Process, type ProcessField, type ProcessStatus, type Quotas } from '../../protocol/process.js';
import type {
  GroupStore,
  KillStore,
  MailboxStore,
  ShmStore,
  SignalQueueStore,
  ScheduleStore,
  NewProcess,
  PendingKill,
  ProcessFilter,
  ProcessPatch,
  ProcessStore,
  Store,
  TokenOwner,
  TokenRole,
  TokenStore,
} from '../store.js';
import { openDatabase, type Db } from './database.js';
import { FIRST_PID } from '../../protocol/process.js';
import { JsonText } from '../../protocol/json-text.js';
import { GroupCommit } from './group-commit.js';
import { RequestLog } from './request-log.js';
import { SqliteMailboxes } from './mailbox-store.js';
import { SqliteSchedule } from './schedule-store.js';
import { SqliteShm } from './shm-store.js';

interface ProcessRow extends Omit<Process, 'args'> {
  args: string;
  reaped: number;
}

/** Field by field, not by spreading the row: listing 10,000 processes made two objects of each, and the collector paid. */
function toProcess(row: ProcessRow | undefined): Process | null {
  if (!row) return null;
  return {
    gid: row.gid,
    pid: row.pid,
    ppid: row.ppid,
    name: row.name,
    template: row.template,
    flavor: row.flavor,
    args: JSON.parse(row.args) as Record<string, string>,
    status: row.status,
    app_state: row.app_state,
    app_status: row.app_status,
    exit_code: row.exit_code,
    signal: row.signal,
    error: row.error,
    compute_id: row.compute_id,
    created_at: row.created_at,
    updated_at: row.updated_at,
    ended_at: row.ended_at,
  };
}

/** A process row as JSON: these fields of it, in toProcess's order (PROCESS_FIELDS's, also the columns' names). */
function processJson(fields: readonly ProcessField[]): string {
  const pairs = PROCESS_FIELDS.filter((f) => fields.includes(f)).map((f) => `'${f}', ${f === 'args' ? 'json(args)' : f}`);
  return `json_object(${pairs.join(', ')})`;
}

/** The WHERE clause of a ProcessFilter, with its values. */
function processWhere(gid: string, filter: ProcessFilter): { where: string; values: unknown[] } {
  const where = ['gid = ?'];
  const values: unknown[] = [gid];
  if (filter.ppid !== undefined) {
    if (filter.ppid === null) where.push('ppid IS NULL');
    else {
      where.push('ppid = ?');
      values.push(filter.ppid);
    }
  }
  if (filter.status && filter.status.length > 0) {
    where.push(`status IN (${filter.status.map(() => '?').join(', ')})`);
    values.push(...filter.status);
  }
  return { where: where.join(' AND '), values };
}

function toGroup(row: (Omit<Group, 'args' | 'quotas'> & { args: string; quotas: string; next_pid?: number; userdata?: string | null }) | undefined): Group | null {
  if (!row) return null;
  const { next_pid: _n, userdata: _u, args, quotas, ...rest } = row;
  // Quotas stored before a new kind of quota existed take the default for it.
  return { ...rest, args: JSON.parse(args) as Record<string, string>, quotas: { ...DEFAULT_QUOTAS, ...(JSON.parse(quotas) as Partial<Quotas>) } };
}

const now = (): string => new Date().toISOString();

const PATCHABLE = new Set([
  'status',
  'app_state',
  'app_status',
  'exit_code',
  'signal',
  'error',
  'compute_id',
  'ended_at',
]);

function patchSql(patch: ProcessPatch): { sets: string; values: unknown[] } {
  const keys = Object.keys(patch).filter((k) => PATCHABLE.has(k));
  const sets = [...keys.map((k) => `${k} = ?`), 'updated_at = ?'].join(', ');
  const values = [...keys.map((k) => (patch as Record<string, unknown>)[k] ?? null), now()];
  return { sets, values };
}

class SqliteGroups implements GroupStore {
  constructor(private readonly db: Db) {}

  async create(g: Group, userData: string | null = null): Promise<void> {
    this.db
      .prepare(
        `INSERT INTO groups (gid, name, description, template, flavor, args, next_pid, created_at, userdata, quotas)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
      )
      .run(g.gid, g.name, g.description, g.template, g.flavor, JSON.stringify(g.args), FIRST_PID, g.created_at, userData, JSON.stringify(g.quotas));
  }

  async userData(gid: string): Promise<string | null> {
    const row = this.db.prepare('SELECT userdata FROM groups WHERE gid = ?').get(gid) as { userdata: string | null } | undefined;
    return row?.userdata ?? null;
  }

  async get(gid: string): Promise<Group | null> {
    return toGroup(this.db.prepare('SELECT * FROM groups WHERE gid = ?').get(gid) as never);
  }

  async list(): Promise<Group[]> {
    const rows = this.db.prepare('SELECT * FROM groups ORDER BY created_at, gid').all() as never[];
    return rows.map((r) => toGroup(r)!);
  }

  async delete(gid: string): Promise<void> {
    this.db.prepare('DELETE FROM groups WHERE gid = ?').run(gid);
  }
}

class SqliteProcesses implements ProcessStore {
  private readonly insertTx: (gid: string, rows: readonly NewProcess[], quotas: Pick<Quotas, 'processes' | 'forks'>, rid: string | null) => { value: Process[]; replayed: boolean };
  private readonly reapTx: (gid: string, ppid: number, rid: string | null) => { value: Process | null; replayed: boolean };

  constructor(private readonly db: Db, requests: RequestLog) {
    const bump = db.prepare('UPDATE groups SET next_pid = next_pid + ? WHERE gid = ? RETURNING next_pid');
    const ins = db.prepare(
      `INSERT INTO processes (gid, pid, ppid, name, template, flavor, args, status, app_state, app_status,
         exit_code, signal, error, compute_id, created_at, updated_at, ended_at)
       VALUES (@gid, @pid, @ppid, @name, @template, @flavor, @args, @status, @app_state, @app_status,
         @exit_code, @signal, @error, @compute_id, @created_at, @updated_at, NULL)`,
    );
    const live = db.prepare(`SELECT count(*) AS n FROM processes WHERE gid = ? AND status IN ('QUEUED', 'BUILD', 'ACTIVE')`);
    this.insertTx = db.transaction((gid: string, rows: readonly NewProcess[], quotas: Pick<Quotas, 'processes' | 'forks'>, rid: string | null) => requests.once(rid, () => {
      const n = (live.get(gid) as { n: number }).n;
      if (n + rows.length > quotas.processes) {
        throw new RackError('quota_exceeded', `quota: the group may have ${quotas.processes} live processes; it has ${n}, and this fork asks for ${rows.length} more`);
      }
      const bumped = bump.get(rows.length, gid) as { next_pid: number } | undefined;
      if (!bumped) throw new Error(`group ${gid} does not exist`);
      const first = bumped.next_pid - rows.length;
      if (bumped.next_pid - FIRST_PID > quotas.forks) {
        throw new RackError('quota_exceeded', `quota: the group may fork ${quotas.forks} processes in all; it has forked ${first - FIRST_PID}, and this fork asks for ${rows.length} more`);
      }
      const t = now();
      return rows.map((r, i) => {
        const p: Process = { ...r, gid, pid: first + i, created_at: t, updated_at: t, ended_at: null };
        ins.run({ ...p, args: JSON.stringify(p.args) });
        return p;
      });
    }));
    const reap = db.prepare(
      `UPDATE processes SET reaped = 1 WHERE rowid = (
         SELECT rowid FROM processes WHERE gid = ? AND ppid = ? AND reaped = 0
           AND status IN ('EXITED', 'KILLED', 'ERROR') ORDER BY ended_at, pid LIMIT 1)
       RETURNING *`,
    );
    this.reapTx = db.transaction((gid: string, ppid: number, rid: string | null) =>
      requests.once(rid, () => toProcess(reap.get(gid, ppid) as ProcessRow | undefined), (p) => p !== null),
    );
  }

  async insert(gid: string, rows: readonly NewProcess[], quotas: Pick<Quotas, 'processes' | 'forks'>, rid: string | null = null): Promise<{ processes: Process[]; replayed: boolean }> {
    const { value, replayed } = this.insertTx(gid, rows, quotas, rid);
    return { processes: value, replayed };
  }

  async get(gid: string, pid: number): Promise<Process | null> {
    return toProcess(this.db.prepare('SELECT * FROM processes WHERE gid = ? AND pid = ?').get(gid, pid) as never);
  }

  async list(gid: string, filter: ProcessFilter = {}): Promise<Process[]> {
    const { where, values } = processWhere(gid, filter);
    const rows = this.db.prepare(`SELECT * FROM processes WHERE ${where} ORDER BY pid`).all(...values) as ProcessRow[];
    return rows.map((r) => toProcess(r)!);
  }

  /**
   * SQLite writes the JSON itself, as bytes: for 10,000 processes the rows as objects, the
   * objects made for the answer and JSON.stringify took 50-90 ms of the kernel's one thread, the
   * statement takes 10-30 ms. The fields are toProcess's, in its order (what JSON.stringify of a
   * list() writes).
   */
  async listText(gid: string, filter: ProcessFilter = {}, fields: readonly ProcessField[] = PROCESS_FIELDS): Promise<JsonText> {
    const { where, values } = processWhere(gid, filter);
    const json = this.db
      .prepare(`SELECT CAST(json_group_array(${processJson(fields)} ORDER BY pid) AS BLOB) FROM processes WHERE ${where}`)
      .pluck()
      .get(...values) as Buffer;
    return new JsonText(json);
  }

  async listLive(): Promise<Process[]> {
    const rows = this.db
      .prepare(`SELECT * FROM processes WHERE status IN ('QUEUED', 'BUILD', 'ACTIVE') ORDER BY gid, pid`)
      .all() as ProcessRow[];
    return rows.map((r) => toProcess(r)!);
  }

  async update(gid: string, pid: number, patch: ProcessPatch): Promise<Process | null> {
    const { sets, values } = patchSql(patch);
    const row = this.db
      .prepare(`UPDATE processes SET ${sets} WHERE gid = ? AND pid = ? RETURNING *`)
      .get(...values, gid, pid) as ProcessRow | undefined;
    return toProcess(row);
  }

  async updateLive(gid: string, pid: number, patch: ProcessPatch): Promise<Process | null> {
    const { sets, values } = patchSql(patch);
    const row = this.db
      .prepare(
        `UPDATE processes SET ${sets} WHERE gid = ? AND pid = ? AND status IN ('QUEUED', 'BUILD', 'ACTIVE') RETURNING *`,
      )
      .get(...values, gid, pid) as ProcessRow | undefined;
    return toProcess(row);
  }

  async reapAny(gid: string, ppid: number, rid: string | null = null): Promise<Process | null> {
    return this.reapTx(gid, ppid, rid).value;
  }

  async markReaped(gid: string, pid: number): Promise<void> {
    this.db.prepare('UPDATE processes SET reaped = 1 WHERE gid = ? AND pid = ?').run(gid, pid);
  }

  async byComputeId(computeId: string): Promise<Process | null> {
    return toProcess(this.db.prepare('SELECT * FROM processes WHERE compute_id = ?').get(computeId) as never);
  }

  async countByStatus(): Promise<Partial<Record<ProcessStatus, number>>> {
    const rows = this.db.prepare('SELECT status, count(*) AS n FROM processes GROUP BY status').all() as Array<{ status: ProcessStatus; n: number }>;
    return Object.fromEntries(rows.map((r) => [r.status, r.n]));
  }

  async remove(gid: string, pids: readonly number[]): Promise<void> {
    const del = this.db.prepare('DELETE FROM processes WHERE gid = ? AND pid = ?');
    const tokens = this.db.prepare('DELETE FROM tokens WHERE gid = ? AND pid = ?');
    this.db.transaction(() => {
      for (const pid of pids) {
        tokens.run(gid, pid);
        del.run(gid, pid);
      }
    })();
  }
}

class SqliteTokens implements TokenStore {
  constructor(private readonly db: Db) {}

  async put(hash: string, owner: TokenOwner): Promise<void> {
    this.db.prepare('INSERT INTO tokens (hash, gid, pid, role) VALUES (?, ?, ?, ?)').run(hash, owner.gid, owner.pid, owner.role);
  }

  async owner(hash: string): Promise<TokenOwner | null> {
    const row = this.db.prepare('SELECT gid, pid, role FROM tokens WHERE hash = ?').get(hash) as TokenOwner | undefined;
    return row ?? null;
  }

  async revoke(gid: string, pid: number, role: TokenRole): Promise<void> {
    this.db.prepare('DELETE FROM tokens WHERE gid = ? AND pid = ? AND role = ?').run(gid, pid, role);
  }
}

class SqliteKills implements KillStore {
  constructor(private readonly db: Db) {}

  async put(k: PendingKill): Promise<void> {
    this.db
      .prepare('INSERT INTO kills (gid, pid, signal, deadline) VALUES (?, ?, ?, ?) ON CONFLICT (gid, pid) DO UPDATE SET signal = excluded.signal, deadline = excluded.deadline')
      .run(k.gid, k.pid, k.signal, k.deadline);
  }

  async delete(gid: string, pid: number): Promise<void> {
    this.db.prepare('DELETE FROM kills WHERE gid = ? AND pid = ?').run(gid, pid);
  }

  async list(): Promise<PendingKill[]> {
    return this.db.prepare('SELECT gid, pid, signal, deadline FROM kills ORDER BY deadline').all() as PendingKill[];
  }
}

class SqliteSignalQueue implements SignalQueueStore {
  private readonly takeTx: (gid: string, pid: number) => string[];

  constructor(private readonly db: Db) {
    const rows = db.prepare('SELECT event FROM signals WHERE gid = ? AND pid = ? ORDER BY seq');
    const del = db.prepare('DELETE FROM signals WHERE gid = ? AND pid = ?');
    this.takeTx = db.transaction((gid: string, pid: number) => {
      const events = (rows.all(gid, pid) as Array<{ event: string }>).map((r) => r.event);
      del.run(gid, pid);
      return events;
    });
  }

  async push(gid: string, pid: number, event: string): Promise<void> {
    this.db.prepare('INSERT INTO signals (gid, pid, event) VALUES (?, ?, ?)').run(gid, pid, event);
  }

  async take(gid: string, pid: number): Promise<string[]> {
    return this.takeTx(gid, pid);
  }

  async clear(gid: string, pid: number): Promise<void> {
    this.db.prepare('DELETE FROM signals WHERE gid = ? AND pid = ?').run(gid, pid);
  }
}

/** The embedded default: one SQLite file (WAL) in the kernel's data dir. */
export class SqliteStore implements Store {
  readonly db: Db;
  /** The hot paths' writes (mailboxes, shared memory): one transaction per turn of the event loop. */
  readonly commits: GroupCommit;
  readonly groups: GroupStore;
  readonly processes: ProcessStore;
  readonly tokens: TokenStore;
  readonly kills: KillStore;
  readonly signals: SignalQueueStore;
  readonly mailboxes: MailboxStore;
  readonly shm: ShmStore;
  readonly schedule: ScheduleStore;

  constructor(file: string) {
    this.db = openDatabase(file);
    this.commits = new GroupCommit(this.db);
    this.groups = new SqliteGroups(this.db);
    const requests = new RequestLog(this.db);
    this.processes = new SqliteProcesses(this.db, requests);
    this.tokens = new SqliteTokens(this.db);
    this.kills = new SqliteKills(this.db);
    this.signals = new SqliteSignalQueue(this.db);
    this.mailboxes = new SqliteMailboxes(this.db, this.commits);
    this.shm = new SqliteShm(this.db, requests, this.commits);
    this.schedule = new SqliteSchedule(this.db);
  }

  async close(): Promise<void> {
    // Writes asked for before the close are committed (and answered), not dropped.
    this.commits.close();
    if (this.db.open) this.db.close();
  }
}
