import Database from 'better-sqlite3';
import type { BatchReader } from './batch.js';
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
 *
 * The table's checksum (checksum.ts) is kept as rows go in: each transaction adds the rows it
 * inserted (not the copies it ignored) to its chunk's sums in the `sums` table, in the same
 * commit, so the sums always describe the table and the summary at the end need not read it back.
 */
export class TargetDatabase {
  readonly db: Database.Database;
  private insertRow: Database.Statement | null = null;
  private readonly insertReject: Database.Statement;
  private readonly addSums: Database.Statement;
  private columns = 0;
  /** One row's parameters: line, chunk, then the fields (reused for every row). */
  private args: unknown[] = [];

  constructor(file: string) {
    this.db = new Database(file);
    this.db.pragma('journal_mode = WAL');
    this.db.pragma('synchronous = NORMAL');
    this.db.exec(`
      CREATE TABLE IF NOT EXISTS rejects (line INTEGER PRIMARY KEY, chunk INTEGER NOT NULL, reason TEXT NOT NULL, raw TEXT NOT NULL);
      CREATE TABLE IF NOT EXISTS chunks (idx INTEGER PRIMARY KEY, rows INTEGER NOT NULL, rejects INTEGER NOT NULL, committed_at TEXT NOT NULL);
      CREATE TABLE IF NOT EXISTS sums (chunk INTEGER PRIMARY KEY, rows INTEGER NOT NULL, a INTEGER NOT NULL, b INTEGER NOT NULL);
    `);
    this.insertReject = this.db.prepare('INSERT OR IGNORE INTO rejects (line, chunk, reason, raw) VALUES (?, ?, ?, ?)');
    this.addSums = this.db.prepare(
      'INSERT INTO sums (chunk, rows, a, b) VALUES (?, ?, ?, ?) ON CONFLICT (chunk) DO UPDATE SET rows = rows + excluded.rows, a = (a + excluded.a) % 4294967296, b = (b + excluded.b) % 4294967296',
    );
  }

  /** Creates the rows table for this header (idempotent). */
  prepare(header: readonly string[]): void {
    const cols = header.map(column);
    this.db.exec(`CREATE TABLE IF NOT EXISTS rows (line INTEGER PRIMARY KEY, chunk INTEGER NOT NULL, ${cols.map((c) => `${c} TEXT`).join(', ')})`);
    this.columns = header.length;
    this.args = new Array<unknown>(2 + header.length);
    this.insertRow = this.db.prepare(`INSERT OR IGNORE INTO rows (line, chunk, ${cols.join(', ')}) VALUES (?, ?, ${cols.map(() => '?').join(', ')})`);
  }

  /** Stores rows and rejects of a chunk in one transaction. */
  insert(chunk: number, rows: readonly Row[], rejects: readonly Reject[]): void {
    this.db.transaction(() => {
      const sum = new RowChecksum();
      for (const r of rows) this.row(chunk, r.line, r.fields, sum);
      for (const r of rejects) this.insertReject.run(r.line, chunk, r.reason, r.raw);
      this.sums(chunk, sum);
    })();
  }

  /** Stores a worker's batch (batch.ts) in one transaction, decoding it as it goes. */
  insertBatch(batch: BatchReader): { rows: number; rejects: number } {
    const { chunk, columns } = batch.header;
    if (columns !== this.columns) throw new Error(`a batch of ${columns} columns for a table of ${this.columns}`);
    return this.db.transaction(() => {
      const sum = new RowChecksum();
      let rows = 0;
      let rejects = 0;
      for (let kind = batch.next(); kind !== null; kind = batch.next()) {
        if (kind === 'row') {
          this.row(chunk, batch.line, batch.fields, sum);
          rows++;
        } else {
          this.insertReject.run(batch.line, chunk, batch.reason, batch.raw);
          rejects++;
        }
      }
      this.sums(chunk, sum);
      return { rows, rejects };
    })();
  }

  private row(chunk: number, line: number, fields: readonly string[], sum: RowChecksum): void {
    const a = this.args;
    a[0] = line;
    a[1] = chunk;
    for (let i = 0; i < fields.length; i++) a[i + 2] = fields[i];
    // A copy of a row already stored (a replacement child's) changes nothing and is not counted.
    if (this.insertRow!.run(a).changes === 1) sum.add(fields);
  }

  private sums(chunk: number, sum: RowChecksum): void {
    const { a, b, count } = sum.parts;
    if (count > 0) this.addSums.run(chunk, count, a, b);
  }

  /** Marks a chunk done; false when it already was (a duplicate "done"). */
  commit(chunk: number, rows: number, rejects: number): boolean {
    const r = this.db.prepare('INSERT OR IGNORE INTO chunks (idx, rows, rejects, committed_at) VALUES (?, ?, ?, ?)').run(chunk, rows, rejects, new Date().toISOString());
    return r.changes === 1;
  }

  committed(chunk: number): boolean {
    return this.db.prepare('SELECT 1 FROM chunks WHERE idx = ?').get(chunk) !== undefined;
  }

  /** Row count (the table's), reject count, and the order-independent checksum of the table (from its sums). */
  summary(): TableSummary {
    const sum = new RowChecksum();
    for (const s of this.db.prepare('SELECT rows, a, b FROM sums').all() as Array<{ rows: number; a: number; b: number }>) sum.merge(s.a, s.b, s.rows);
    const count = (sql: string): number => (this.db.prepare(sql).get() as { n: number }).n;
    const rows = count('SELECT count(*) AS n FROM rows');
    // The sums are kept in the same commits as the rows: a disagreement is a bug, not a race.
    if (rows !== sum.count) throw new Error(`the table holds ${rows} rows, its sums count ${sum.count}`);
    return { rows, rejects: count('SELECT count(*) AS n FROM rejects'), checksum: sum.hex, chunks: count('SELECT count(*) AS n FROM chunks') };
  }

  /** The checksum computed from the table's rows themselves (reads every row: for tests and checks). */
  tableChecksum(): { rows: number; checksum: string } {
    const sum = new RowChecksum();
    const stmt = this.db.prepare('SELECT * FROM rows').raw(true);
    for (const r of stmt.iterate() as Iterable<unknown[]>) sum.add(r.slice(2, 2 + this.columns) as string[]);
    return { rows: sum.count, checksum: sum.hex };
  }

  rejectLines(): number[] {
    return (this.db.prepare('SELECT line FROM rejects ORDER BY line').all() as Array<{ line: number }>).map((r) => r.line);
  }

  close(): void {
    this.db.close();
  }
}
