import { open } from 'node:fs/promises';
import { RowChecksum } from './checksum.js';
import { TargetDatabase } from './database.js';
import { MAX_RECORD, scan, type Reject, type Row, type ScanState } from './records.js';

export interface Expected {
  header: string[];
  rows: number;
  rejects: number;
  checksum: string;
  rejectLines: number[];
}

/**
 * Reads a whole CSV in one process with the same record rule as the workers: what the table must
 * hold (the sim's verification), and, with `db`, the single-process importer the benchmark
 * compares RACK against (the limit on one machine).
 */
export async function importFile(path: string, db?: TargetDatabase): Promise<Expected> {
  const fh = await open(path);
  const sum = new RowChecksum();
  const rejectLines: number[] = [];
  let header: string[] | null = null;
  let rows: Row[] = [];
  let rejects: Reject[] = [];
  const flush = (): void => {
    if (db && (rows.length || rejects.length)) db.insert(0, rows, rejects);
    rows = [];
    rejects = [];
  };
  const sink = {
    row(r: Row) {
      if (!header) {
        header = r.fields;
        db?.prepare(header);
        return;
      }
      // With a database, its inserts keep the checksum of what they store (database.ts).
      if (db) rows.push(r);
      else sum.add(r.fields);
    },
    reject(r: Reject) {
      if (!header) throw new Error(`the header (line ${r.line}) is not a valid CSV record`);
      rejectLines.push(r.line);
      if (db) rejects.push(r);
    },
  };
  let buf: Buffer = Buffer.alloc(0);
  let state: ScanState = { offset: 0, line: 1 };
  const feed = (final: boolean): void => {
    if (!header) state = scan(buf, state, { final, columns: 0, limit: state.offset + 1 }, sink);
    if (header) state = scan(buf, state, { final, columns: (header as string[]).length }, sink);
    flush();
  };
  try {
    for await (const chunk of fh.createReadStream({ highWaterMark: 1 << 20 })) {
      buf = buf.length ? Buffer.concat([buf, chunk as Buffer]) : (chunk as Buffer);
      if (buf.length < 4 * MAX_RECORD) continue;
      feed(false);
      buf = buf.subarray(state.offset);
      state = { offset: 0, line: state.line };
    }
    feed(true);
  } finally {
    await fh.close();
  }
  if (!header) throw new Error('the file is empty: no header');
  if (db) {
    const s = db.summary();
    return { header, rows: s.rows, rejects: rejectLines.length, checksum: s.checksum, rejectLines };
  }
  return { header, rows: sum.count, rejects: rejectLines.length, checksum: sum.hex, rejectLines };
}
