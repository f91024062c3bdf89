import type { Db } from './database.js';

interface Pending {
  fn: () => unknown;
  resolve: (value: unknown) => void;
  reject: (err: unknown) => void;
}

type Outcome = { ok: true; value: unknown } | { ok: false; error: unknown };

/**
 * Group commit: the writes asked for within one turn of the event loop go to SQLite in one
 * transaction, and each caller is answered once that transaction has committed. A commit (its
 * BEGIN, its COMMIT and the WAL write behind it) costs more than a small write itself; one commit
 * for the mailbox appends, acks and shared-memory writes of all clients of a turn is what lets
 * the kernel's one thread keep up with many of them.
 *
 * Each write runs in a savepoint of its own (better-sqlite3's nested transaction), so that one
 * that fails (a full mailbox, a quota, a conflict, or an SQLite error) is undone alone and its
 * caller gets its error; the others commit. Writes run in the order they were asked for.
 *
 * Durability is the same as one transaction per write: nobody hears of a write before its
 * transaction has committed (to the WAL: a kill -9 of the kernel loses nothing that was answered).
 *
 * Reads call `flush()` first: a read sees every write asked for before it, answered or not, as it
 * did when each write committed on its own (a client that sends a write and then a read without
 * waiting still reads its write).
 */
export class GroupCommit {
  private queue: Pending[] = [];
  private timer: NodeJS.Immediate | null = null;
  private flushing = false;
  private readonly many: (items: readonly Pending[]) => Outcome[];
  private readonly one: (fn: () => unknown) => unknown;
  private readonly savepoint: (fn: () => unknown) => unknown;

  constructor(private readonly db: Db) {
    // One wrapper each, built once (building a transaction function per call costs as much as a
    // small write). Called inside `many`, `savepoint` is a SAVEPOINT ... RELEASE, not a BEGIN.
    this.one = db.transaction((fn: () => unknown) => fn());
    this.savepoint = db.transaction((fn: () => unknown) => fn());
    this.many = db.transaction((items: readonly Pending[]) =>
      items.map((item): Outcome => {
        try {
          return { ok: true, value: this.savepoint(item.fn) };
        } catch (error) {
          return { ok: false, error };
        }
      }),
    );
  }

  /** Runs `fn` (synchronous SQLite work) in this turn's transaction; resolves once it committed. */
  run<T>(fn: () => T): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      this.queue.push({ fn, resolve: resolve as (value: unknown) => void, reject });
      // setImmediate: after every request read in this turn has queued its write.
      this.timer ??= setImmediate(this.flush);
    });
  }

  /** Commits what is queued now, and answers its callers (their promises settle after this returns). */
  readonly flush = (): void => {
    if (this.timer) {
      clearImmediate(this.timer);
      this.timer = null;
    }
    // A write that reads through a store's public method does not commit its own batch early.
    if (this.flushing || this.queue.length === 0) return;
    const items = this.queue;
    this.queue = [];
    if (!this.db.open) {
      for (const item of items) item.reject(new Error('the store is closed'));
      return;
    }
    this.flushing = true;
    try {
      if (items.length === 1) {
        // Alone: its own transaction is its savepoint (one statement fewer on each side).
        const [item] = items as [Pending];
        let value: unknown;
        try {
          value = this.one(item.fn);
        } catch (err) {
          item.reject(err);
          return;
        }
        item.resolve(value);
        return;
      }
      let outcomes: Outcome[];
      try {
        outcomes = this.many(items);
      } catch (err) {
        // The commit itself failed (the disk): nothing of the batch is stored.
        for (const item of items) item.reject(err);
        return;
      }
      outcomes.forEach((o, i) => (o.ok ? items[i]!.resolve(o.value) : items[i]!.reject(o.error)));
    } finally {
      this.flushing = false;
    }
  };

  /** Commits what is queued (the store closes). */
  close(): void {
    this.flush();
  }
}
