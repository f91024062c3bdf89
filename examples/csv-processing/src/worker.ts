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

  let batch: RowsBatch = { type: 'rows', job: a.job!, chunk, rows: [], rejects: [], upto: 0 };
  let batchBytes = 0;
  let rows = 0;
  let rejects = 0;
  const batches: RowsBatch[] = [];
  const flush = (): void => {
    if (batch.rows.length === 0 && batch.rejects.length === 0) return;
    batches.push(batch);
    batch = { type: 'rows', job: a.job!, chunk, rows: [], rejects: [], upto: 0 };
    batchBytes = 0;
  };
  // The parent's mailbox is bounded: when it is full, wait for the parent to catch up.
  const send = async (m: RowsBatch | ChunkDone): Promise<void> => {
    for (let delay = 20; ; delay = Math.min(delay * 2, 1000)) {
      try {
        await rack.send(parent, m);
        return;
      } catch (err) {
        if ((err as { code?: string }).code !== 'mailbox_full') throw err;
        await new Promise((r) => setTimeout(r, delay));
      }
    }
  };
  scan(bytes, { offset: 0, line: Number(a.first_line) }, { final: true, columns }, {
    row(r, at) {
      batch.rows.push([r.line, ...r.fields]);
      batch.upto = at;
      rows++;
      batchBytes += r.fields.reduce((n, f) => n + f.length + 3, 8);
      if (batchBytes >= BATCH_BYTES) flush();
    },
    reject(r, at) {
      batch.upto = at;
      batch.rejects.push([r.line, r.reason, r.raw]);
      rejects++;
      batchBytes += r.raw.length + 40;
    },
  });
  flush();
  // A few batches in flight at a time; "done" only once every batch is stored. The app status
  // says how far it is (`rack ps` shows it).
  let next = 0;
  let sent = 0;
  await Promise.all(
    Array.from({ length: 4 }, async () => {
      while (next < batches.length) {
        await send(batches[next++]!);
        await rack.status(`sent ${++sent}/${batches.length} batches`);
      }
    }),
  );
  const done: ChunkDone = { type: 'done', job: a.job!, chunk, rows, rejects };
  await send(done);
  rack.exit(0);
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
