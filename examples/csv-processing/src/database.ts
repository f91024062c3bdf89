import Database from 'better-sqlite3';
import { RowChecksum } from './checksum.js';
import type { Reject, Row } from './records.js';

/** A CSV header name as a safe SQL column name. */
function column(name: string, i: number): string {
  const clean = name.normalize('NFKC').replace(/[^A-Za-z0-9_]/g, '_').slice(0, 60) || `col${i}`;
  return `"c_${clean}"`;
}

export interface TableSummary {
  rows: number;
  rejects: number;
  checksum: string;
  chunks: number;
}

/**
 * The Target Database: a SQLite file owned by the parent process. Rows are keyed by their line
 * number, so a chunk re-sent by a replacement child (after the first one died) lands once: the
 * replacement's rows are the same rows, and INSERT OR IGNORE drops the copies.
 */
export class TargetDatabase {
  readonly db: Database.Database;
  private insertRow: Database.Statement | null = null;
  private readonly insertReject: Database.Statement;
  private columns = 0;

  constructor(file: string) {
    this.db = new Database(file);
    this.db.pragma('journal_mode = WAL');
    this.db.pragma('synchronous = NORMAL');
    this.db.exec(`
      CREATE TABLE IF NOT EXISTS rejects (line INTEGER PRIMARY KEY, chunk INTEGER NOT NULL, reason TEXT NOT NULL, raw TEXT NOT NULL);
      CREATE TABLE IF NOT EXISTS chunks (idx INTEGER PRIMARY KEY, rows INTEGER NOT NULL, rejects INTEGER NOT NULL, committed_at TEXT NOT NULL);
    `);
    this.insertReject = this.db.prepare('INSERT OR IGNORE INTO rejects (line, chunk, reason, raw) VALUES (?, ?, ?, ?)');
  }

  /** Creates the rows table for this header (idempotent). */
  prepare(header: readonly string[]): void {
    const cols = header.map(column);
    this.db.exec(`CREATE TABLE IF NOT EXISTS rows (line INTEGER PRIMARY KEY, chunk INTEGER NOT NULL, ${cols.map((c) => `${c} TEXT`).join(', ')})`);
    this.columns = header.length;
    this.insertRow = this.db.prepare(`INSERT OR IGNORE INTO rows (line, chunk, ${cols.join(', ')}) VALUES (?, ?, ${cols.map(() => '?').join(', ')})`);
  }

  /** Stores a batch of rows and rejects of a chunk in one transaction. */
  insert(chunk: number, rows: readonly Row[], rejects: readonly Reject[]): void {
    const ins = this.insertRow!;
    this.db.transaction(() => {
      for (const r of rows) ins.run(r.line, chunk, ...r.fields);
      for (const r of rejects) this.insertReject.run(r.line, chunk, r.reason, r.raw);
    })();
  }

  /** Marks a chunk done; false when it already was (a duplicate "done"). */
  commit(chunk: number, rows: number, rejects: number): boolean {
    const r = this.db.prepare('INSERT OR IGNORE INTO chunks (idx, rows, rejects, committed_at) VALUES (?, ?, ?, ?)').run(chunk, rows, rejects, new Date().toISOString());
    return r.changes === 1;
  }

  committed(chunk: number): boolean {
    return this.db.prepare('SELECT 1 FROM chunks WHERE idx = ?').get(chunk) !== undefined;
  }

  /** Row count, reject count and the order-independent checksum of the table. */
  summary(): TableSummary {
    const sum = new RowChecksum();
    const stmt = this.db.prepare('SELECT * FROM rows').raw(true);
    for (const r of stmt.iterate() as Iterable<unknown[]>) sum.add(r.slice(2, 2 + this.columns) as string[]);
    const rejects = (this.db.prepare('SELECT count(*) AS n FROM rejects').get() as { n: number }).n;
    const chunks = (this.db.prepare('SELECT count(*) AS n FROM chunks').get() as { n: number }).n;
    return { rows: sum.count, rejects, checksum: sum.hex, chunks };
  }

  rejectLines(): number[] {
    return (this.db.prepare('SELECT line FROM rejects ORDER BY line').all() as Array<{ line: number }>).map((r) => r.line);
  }

  close(): void {
    this.db.close();
  }
}
