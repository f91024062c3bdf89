import { RackError } from '../../common/errors.js';
import type { MailboxLimits, MailboxStore, StoredMessage } from '../store.js';
import type { Db } from './database.js';
import type { GroupCommit } from './group-commit.js';

/** How long an acknowledged message's id is kept to recognise a late resend of it. */
const DEDUPE_WINDOW_MS = 60 * 60 * 1000;

export class SqliteMailboxes implements MailboxStore {
  private readonly appendOne: (gid: string, to: number, from: number, mid: string | null, data: Buffer, binary: boolean, limits: MailboxLimits) => number;
  private readonly ackOne: (gid: string, to: number, seq: number) => void;
  private lastGc = 0;

  /** Appends, acks and clears go through `commits` (one transaction per turn); reads flush it first. */
  constructor(
    private readonly db: Db,
    private readonly commits: GroupCommit,
  ) {
    const byMid = db.prepare('SELECT seq FROM messages WHERE gid = ? AND from_pid = ? AND mid = ?');
    const stats = db.prepare('SELECT count, bytes FROM mailboxes WHERE gid = ? AND pid = ?');
    const insert = db.prepare(
      'INSERT INTO messages (gid, to_pid, from_pid, mid, data, binary, size, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)',
    );
    const bump = db.prepare(
      `INSERT INTO mailboxes (gid, pid, count, bytes) VALUES (?, ?, 1, ?)
       ON CONFLICT (gid, pid) DO UPDATE SET count = count + 1, bytes = bytes + excluded.bytes`,
    );
    // No savepoint of its own: every refusal is found before the first write (a full mailbox, or a
    // resend answered with its first seq), so a refused message leaves nothing to undo. An SQLite
    // error fails the whole call, undone by its group-commit savepoint.
    this.appendOne = (gid, to, from, mid, data, binary, limits) => {
      if (mid !== null) {
        const dup = byMid.get(gid, from, mid) as { seq: number } | undefined;
        if (dup) return dup.seq;
      }
      const s = stats.get(gid, to) as { count: number; bytes: number } | undefined;
      if (s && (s.count >= limits.maxCount || s.bytes + data.length > limits.maxBytes)) {
        throw new RackError(
          'mailbox_full',
          `the mailbox of process ${to} is full (${s.count} messages, ${s.bytes} bytes; limits ${limits.maxCount} messages, ${limits.maxBytes} bytes): retry once it has read some`,
        );
      }
      const info = insert.run(gid, to, from, mid, data, binary ? 1 : 0, data.length, Date.now());
      bump.run(gid, to, data.length);
      return Number(info.lastInsertRowid);
    };
    const pending = db.prepare('SELECT count(*) AS n, coalesce(sum(size), 0) AS b FROM messages WHERE gid = ? AND to_pid = ? AND acked = 0 AND seq <= ?');
    const markAcked = db.prepare('UPDATE messages SET acked = 1, data = NULL WHERE gid = ? AND to_pid = ? AND acked = 0 AND seq <= ?');
    const shrink = db.prepare('UPDATE mailboxes SET count = max(0, count - ?), bytes = max(0, bytes - ?) WHERE gid = ? AND pid = ?');
    // Runs inside the group commit's transaction (no transaction of its own).
    this.ackOne = (gid: string, to: number, seq: number) => {
      const p = pending.get(gid, to, seq) as { n: number; b: number };
      if (p.n === 0) return;
      markAcked.run(gid, to, seq);
      shrink.run(p.n, p.b, gid, to);
    };
  }

  async appendMany(gid: string, from: number, items: ReadonlyArray<{ to: number; mid: string | null; data: Buffer; binary: boolean }>, limits: MailboxLimits): Promise<Array<number | RackError>> {
    if (items.length === 0) return [];
    // One commit for the lot (and for other writes of this turn); a full mailbox refuses only its
    // own message (see appendOne).
    return this.commits.run(() =>
      items.map((m) => {
        try {
          return this.appendOne(gid, m.to, from, m.mid, m.data, m.binary, limits);
        } catch (err) {
          if (err instanceof RackError) return err;
          throw err;
        }
      }),
    );
  }

  async after(gid: string, to: number, after: number, limit: number): Promise<StoredMessage[]> {
    this.commits.flush();
    const rows = this.db
      .prepare('SELECT seq, from_pid, data, binary FROM messages WHERE gid = ? AND to_pid = ? AND acked = 0 AND seq > ? ORDER BY seq LIMIT ?')
      .all(gid, to, after, limit) as Array<{ seq: number; from_pid: number; data: Buffer; binary: number }>;
    return rows.map((r) => ({ seq: r.seq, from: r.from_pid, data: r.data, binary: r.binary === 1 }));
  }

  async ack(gid: string, to: number, seq: number): Promise<void> {
    await this.commits.run(() => {
      this.ackOne(gid, to, seq);
      const now = Date.now();
      if (now - this.lastGc > 60_000) {
        this.lastGc = now;
        this.db.prepare('DELETE FROM messages WHERE acked = 1 AND created_at < ?').run(now - DEDUPE_WINDOW_MS);
      }
    });
  }

  async clear(gid: string, to: number): Promise<void> {
    // Queued behind the appends asked for before it (a message sent just before its receiver
    // ended is cleared with the rest, not stored after the clear).
    await this.commits.run(() => {
      this.db.prepare('UPDATE messages SET acked = 1, data = NULL WHERE gid = ? AND to_pid = ? AND acked = 0').run(gid, to);
      this.db.prepare('DELETE FROM mailboxes WHERE gid = ? AND pid = ?').run(gid, to);
    });
  }
}
