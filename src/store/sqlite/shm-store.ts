import { RackError } from '../../common/errors.js';
import type { ShmStore, ShmValue } from '../store.js';
import type { Db } from './database.js';
import type { GroupCommit } from './group-commit.js';
import type { RequestLog } from './request-log.js';

/** A key's row; its value as text, or as UTF-8 bytes when read to be answered (see get). */
interface Row<V extends string | Buffer = string> {
  kind: 'v' | 'l';
  value: V | null;
  version: number;
  expires_at: number | null;
}

/**
 * Shared memory on SQLite. better-sqlite3 is synchronous, so each operation runs alone, in one
 * piece: incr and compare-and-set are atomic without locks of our own. Writes go through the group
 * commit (each in its own savepoint of the turn's transaction, answered once that committed);
 * reads commit what is queued first, then read. Each group's bytes (every key once, and its value
 * or items) are kept in shm_usage, checked and updated in the same savepoint as the write.
 */
export class SqliteShm implements ShmStore {
  private readonly row;
  private readonly rowBytes;
  private readonly drop;
  private readonly upsert;
  private readonly used;
  private readonly addUsage;
  private readonly tx: <T>(fn: () => T) => T;

  constructor(
    private readonly db: Db,
    private readonly requests: RequestLog,
    private readonly commits: GroupCommit,
  ) {
    this.used = db.prepare('SELECT bytes FROM shm_usage WHERE gid = ?');
    this.addUsage = db.prepare(
      'INSERT INTO shm_usage (gid, bytes) VALUES (?, ?) ON CONFLICT (gid) DO UPDATE SET bytes = max(0, bytes + excluded.bytes)',
    );
    this.row = db.prepare('SELECT kind, value, version, expires_at FROM shm WHERE gid = ? AND key = ?');
    // A value read to be answered as it is: bytes, not a JS string (building and then encoding a
    // string of a MiB costs ten times what copying its bytes does).
    this.rowBytes = db.prepare('SELECT kind, CAST(value AS BLOB) AS value, version, expires_at FROM shm WHERE gid = ? AND key = ?');
    this.drop = db.prepare('DELETE FROM shm WHERE gid = ? AND key = ?');
    this.upsert = db.prepare(
      `INSERT INTO shm (gid, key, kind, value, version, expires_at) VALUES (?, ?, ?, ?, 1, ?)
       ON CONFLICT (gid, key) DO UPDATE SET kind = excluded.kind, value = excluded.value,
         version = version + 1, expires_at = excluded.expires_at
       RETURNING version`,
    );
    // One transaction wrapper for every read (building one per call cost as much as the work); a
    // read may drop an expired key. Reads first commit the writes queued before them.
    const run = db.transaction((fn: () => unknown) => fn());
    this.tx = <T>(fn: () => T): T => {
      commits.flush();
      return run(fn) as T;
    };
  }

  /** The live row: an expired key is dropped on sight. */
  private live<V extends string | Buffer = string>(gid: string, key: string, read = this.row): Row<V> | undefined {
    const r = read.get(gid, key) as Row<V> | undefined;
    if (r && r.expires_at !== null && r.expires_at <= Date.now()) {
      this.account(gid, -this.size(gid, key, r), Infinity);
      this.drop.run(gid, key);
      return undefined;
    }
    return r;
  }

  /** The bytes a key holds: its name, and its value or its items. */
  private size(gid: string, key: string, r: Row<string | Buffer> | undefined): number {
    if (!r) return 0;
    if (r.kind === 'v') return Buffer.byteLength(key) + Buffer.byteLength(r.value ?? '');
    const items = this.db.prepare('SELECT coalesce(sum(length(CAST(value AS BLOB))), 0) AS b FROM shm_items WHERE gid = ? AND key = ?').get(gid, key) as { b: number };
    return Buffer.byteLength(key) + items.b;
  }

  /** Counts `delta` bytes for the group; a growth past `max` is refused (and the transaction undone). */
  private account(gid: string, delta: number, max: number): void {
    if (delta === 0) return;
    if (delta > 0) {
      const now = (this.used.get(gid) as { bytes: number } | undefined)?.bytes ?? 0;
      if (now + delta > max) {
        throw new RackError('quota_exceeded', `quota: the group's shared memory may hold ${max} bytes; it holds ${now}, and this write needs ${delta} more`);
      }
    }
    this.addUsage.run(gid, delta);
  }

  async usage(gid: string): Promise<number> {
    this.commits.flush();
    return (this.used.get(gid) as { bytes: number } | undefined)?.bytes ?? 0;
  }

  private value<V extends string | Buffer = string>(gid: string, key: string, read = this.row): Row<V> | undefined {
    const r = this.live<V>(gid, key, read);
    if (r && r.kind !== 'v') throw new RackError('conflict', `key "${key}" holds a list, not a value`);
    return r;
  }

  private list(gid: string, key: string): Row | undefined {
    const r = this.live(gid, key);
    if (r && r.kind !== 'l') throw new RackError('conflict', `key "${key}" holds a value, not a list`);
    return r;
  }

  async get(gid: string, key: string): Promise<ShmValue> {
    return this.tx(() => {
      const r = this.value<Buffer>(gid, key, this.rowBytes);
      return { json: r?.value ?? null, version: r?.version ?? 0 };
    });
  }

  async set(gid: string, key: string, json: string, ttlMs: number | null, maxBytes: number): Promise<number> {
    return this.commits.run(() => {
      const old = this.live(gid, key);
      this.account(gid, Buffer.byteLength(key) + Buffer.byteLength(json) - this.size(gid, key, old), maxBytes);
      // Replacing a list by a value drops its items.
      if (old?.kind === 'l') this.drop.run(gid, key);
      const r = this.upsert.get(gid, key, 'v', json, ttlMs === null ? null : Date.now() + ttlMs) as { version: number };
      return r.version;
    });
  }

  async delete(gid: string, key: string): Promise<boolean> {
    return this.commits.run(() => {
      const r = this.live(gid, key);
      if (!r) return false;
      this.account(gid, -this.size(gid, key, r), Infinity);
      this.drop.run(gid, key);
      return true;
    });
  }

  async incr(gid: string, key: string, by: number, maxBytes: number, rid: string | null = null): Promise<number> {
    return this.commits.run(() => this.requests.once(rid, () => {
      const r = this.value(gid, key);
      const cur = r?.value === null || r === undefined ? 0 : (JSON.parse(r.value) as unknown);
      if (typeof cur !== 'number' || !Number.isSafeInteger(cur)) throw new RackError('conflict', `key "${key}" does not hold an integer`);
      const next = cur + by;
      if (!Number.isSafeInteger(next)) throw new RackError('conflict', `incrementing key "${key}" would overflow`);
      this.account(gid, Buffer.byteLength(key) + String(next).length - this.size(gid, key, r), maxBytes);
      this.upsert.get(gid, key, 'v', String(next), r?.expires_at ?? null);
      return next;
    }).value);
  }

  async cas(gid: string, key: string, expect: string | null, json: string, maxBytes: number, rid: string | null = null): Promise<{ ok: boolean; current: string | null }> {
    return this.commits.run(() => this.requests.once(rid, () => {
      const r = this.value(gid, key);
      const current = r?.value ?? null;
      if (current !== expect) return { ok: false, current };
      this.account(gid, Buffer.byteLength(key) + Buffer.byteLength(json) - this.size(gid, key, r), maxBytes);
      this.upsert.get(gid, key, 'v', json, r?.expires_at ?? null);
      return { ok: true, current: json };
    }).value);
  }

  private bounds(gid: string, key: string): { lo: number | null; hi: number | null; n: number } {
    return this.db
      .prepare('SELECT min(pos) AS lo, max(pos) AS hi, count(*) AS n FROM shm_items WHERE gid = ? AND key = ?')
      .get(gid, key) as { lo: number | null; hi: number | null; n: number };
  }

  async push(gid: string, key: string, values: readonly string[], left: boolean, maxBytes: number, rid: string | null = null): Promise<number> {
    return this.commits.run(() => this.requests.once(rid, () => {
      const r = this.list(gid, key);
      this.account(gid, (r ? 0 : Buffer.byteLength(key)) + values.reduce((n, v) => n + Buffer.byteLength(v), 0), maxBytes);
      if (!r) this.upsert.get(gid, key, 'l', null, null);
      else this.db.prepare('UPDATE shm SET version = version + 1 WHERE gid = ? AND key = ?').run(gid, key);
      const b = this.bounds(gid, key);
      const ins = this.db.prepare('INSERT INTO shm_items (gid, key, pos, value) VALUES (?, ?, ?, ?)');
      let lo = b.lo ?? 0;
      let hi = b.hi ?? -1;
      for (const v of values) ins.run(gid, key, left ? --lo : ++hi, v);
      return b.n + values.length;
    }).value);
  }

  async pop(gid: string, key: string, left: boolean, rid: string | null = null): Promise<string | null> {
    // A pop that found nothing is not kept: the blocking pop tries again with the same id.
    return this.commits.run(() => this.requests.once(rid, () => {
      if (!this.list(gid, key)) return null;
      const item = this.db
        .prepare(`SELECT pos, value FROM shm_items WHERE gid = ? AND key = ? ORDER BY pos ${left ? 'ASC' : 'DESC'} LIMIT 1`)
        .get(gid, key) as { pos: number; value: string } | undefined;
      if (!item) return null;
      this.db.prepare('DELETE FROM shm_items WHERE gid = ? AND key = ? AND pos = ?').run(gid, key, item.pos);
      this.account(gid, -Buffer.byteLength(item.value), Infinity);
      // An empty list is no key at all, as in Redis.
      if (this.bounds(gid, key).n === 0) {
        this.account(gid, -Buffer.byteLength(key), Infinity);
        this.drop.run(gid, key);
      }
      else this.db.prepare('UPDATE shm SET version = version + 1 WHERE gid = ? AND key = ?').run(gid, key);
      return item.value;
    }, (v) => v !== null).value);
  }

  async range(gid: string, key: string, start: number, stop: number): Promise<string[]> {
    return this.tx(() => {
      if (!this.list(gid, key)) return [];
      const n = this.bounds(gid, key).n;
      const from = start < 0 ? Math.max(0, n + start) : start;
      const to = stop < 0 ? n + stop : Math.min(stop, n - 1);
      if (from > to) return [];
      const rows = this.db
        .prepare('SELECT value FROM shm_items WHERE gid = ? AND key = ? ORDER BY pos LIMIT ? OFFSET ?')
        .all(gid, key, to - from + 1, from) as Array<{ value: string }>;
      return rows.map((r) => r.value);
    });
  }

  async len(gid: string, key: string): Promise<number> {
    return this.tx(() => (this.list(gid, key) ? this.bounds(gid, key).n : 0));
  }

  async keys(gid: string, prefix: string): Promise<string[]> {
    this.commits.flush();
    const rows = this.db
      .prepare(`SELECT key FROM shm WHERE gid = ? AND substr(key, 1, ?) = ? AND (expires_at IS NULL OR expires_at > ?) ORDER BY key LIMIT 10000`)
      .all(gid, prefix.length, prefix, Date.now()) as Array<{ key: string }>;
    return rows.map((r) => r.key);
  }

  async expire(now: number): Promise<Array<{ gid: string; key: string }>> {
    return this.commits.run(() => {
      const rows = this.db.prepare('SELECT gid, key, kind, value, version, expires_at FROM shm WHERE expires_at IS NOT NULL AND expires_at <= ?').all(now) as Array<Row & { gid: string; key: string }>;
      for (const r of rows) this.account(r.gid, -this.size(r.gid, r.key, r), Infinity);
      this.db.prepare('DELETE FROM shm WHERE expires_at IS NOT NULL AND expires_at <= ?').run(now);
      return rows.map((r) => ({ gid: r.gid, key: r.key }));
    });
  }
}
