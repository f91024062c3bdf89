/**
 * A child process (PPID set): the seed's CSV Processing APP. It reads its line-aligned byte range
 * of the CSV from the group file system, parses it, sends the rows to its parent's Target
 * Database, and exits; its guest agent then KILLs its VM, as in the seed.
 */
import { connect } from 'rack/libdck';
import type { ChunkDone, RowsBatch } from './protocol.js';
import { scan } from './records.js';

const BATCH_BYTES = 256 * 1024;

async function main(): Promise<void> {
  const rack = await connect();
  const a = rack.args;
  const chunk = Number(a.chunk);
  const start = Number(a.start);
  const end = Number(a.end);
  const columns = Number(a.columns);
  const parent = rack.ppid!;
  const parts: Buffer[] = [];
  if (end > start) for await (const b of await rack.files.get(a.path!, { start, end: end - 1 })) parts.push(b as Buffer);
  const bytes = Buffer.concat(parts);

  let batch: RowsBatch = { type: 'rows', job: a.job!, chunk, rows: [], rejects: [] };
  let batchBytes = 0;
  let rows = 0;
  let rejects = 0;
  const pending: Promise<unknown>[] = [];
  const flush = (): void => {
    if (batch.rows.length === 0 && batch.rejects.length === 0) return;
    pending.push(rack.send(parent, batch));
    batch = { type: 'rows', job: a.job!, chunk, rows: [], rejects: [] };
    batchBytes = 0;
  };
  scan(bytes, { offset: 0, line: Number(a.first_line) }, { final: true, columns }, {
    row(r, s) {
      batch.rows.push([r.line, ...r.fields]);
      rows++;
      batchBytes += r.fields.reduce((n, f) => n + f.length + 3, 8);
      if (batchBytes >= BATCH_BYTES) flush();
      void s;
    },
    reject(r) {
      batch.rejects.push([r.line, r.reason, r.raw]);
      rejects++;
      batchBytes += r.raw.length + 40;
    },
  });
  flush();
  // Messages from one sender arrive in order: "done" comes after every batch.
  await Promise.all(pending);
  const done: ChunkDone = { type: 'done', job: a.job!, chunk, rows, rejects };
  await rack.send(parent, done);
  rack.exit(0);
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
