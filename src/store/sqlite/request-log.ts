import type { Db } from './database.js';

/** Answers are kept for one to two periods (clients resend as soon as they are back). */
const PERIOD_MS = 10 * 60_000;

/**
 * Answers by request key, kept in the same transaction as the change they answer: a request
 * sent again finds its answer whether the kernel restarted in between or not, and a change is
 * never made twice. Call `once` inside the store's transaction.
 *
 * Answers of a period go to one of two tables, which is emptied whole when its turn comes
 * again: lookups read both, and forgetting old answers costs one statement per period.
 */
export class RequestLog {
  private readonly get: Array<{ get(key: string): unknown }>;
  private readonly put: Array<{ run(key: string, answer: string): unknown }>;
  private readonly clear: Array<{ run(): unknown }>;
  private readonly marked;
  private readonly mark;
  private period = -1;

  constructor(db: Db) {
    this.get = [0, 1].map((g) => db.prepare(`SELECT answer FROM requests_${g} WHERE key = ?`));
    this.put = [0, 1].map((g) => db.prepare(`INSERT INTO requests_${g} (key, answer) VALUES (?, ?)`));
    this.clear = [0, 1].map((g) => db.prepare(`DELETE FROM requests_${g}`));
    this.marked = db.prepare('SELECT period FROM request_periods WHERE gen = ?');
    this.mark = db.prepare('INSERT INTO request_periods (gen, period) VALUES (?, ?) ON CONFLICT (gen) DO UPDATE SET period = excluded.period');
  }

  /**
   * The answer kept for `key`, or `run()`'s, kept now when `done(value)` says the request did
   * something (a pop of an empty list did not: trying it again later is a new try). Without a
   * key, just `run()`.
   */
  once<T>(key: string | null | undefined, run: () => T, done: (value: T) => boolean = () => true): { value: T; replayed: boolean } {
    if (!key) return { value: run(), replayed: false };
    // First the turn of the tables: a table emptied now holds nothing to find.
    const gen = this.generation();
    for (const get of this.get) {
      const seen = get.get(key) as { answer: string } | undefined;
      if (seen) return { value: JSON.parse(seen.answer) as T, replayed: true };
    }
    const value = run();
    if (!done(value)) return { value, replayed: false };
    this.put[gen]!.run(key, JSON.stringify(value ?? null));
    return { value, replayed: false };
  }

  /** The table of this period; emptied first when it last held an older period's answers. */
  private generation(): number {
    const period = Math.floor(Date.now() / PERIOD_MS);
    const gen = period % 2;
    if (period !== this.period) {
      const was = (this.marked.get(gen) as { period: number } | undefined)?.period;
      if (was !== period) {
        this.clear[gen]!.run();
        this.mark.run(gen, period);
      }
      this.period = period;
    }
    return gen;
  }
}
