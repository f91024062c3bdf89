/**
 * A child process (PPID set): the seed's CSV Processing APP. It streams its line-aligned byte
 * range of the CSV from the group file system, parses it as it arrives, sends the rows to its
 * parent's Target Database in binary batches of about a megabyte (batch.ts), and exits; its guest
 * agent then KILLs its VM, as in the seed.
 */
import { connect } from 'rack/libdck';
import { BatchWriter } from './batch.js';
import type { ChunkDone } from './protocol.js';
import { MAX_RECORD, rawLine, walk, type RecordFields, type ScanState } from './records.js';

/**
 * CSV bytes per batch. A batch's encoding is about as long as the CSV it holds (the fields as
 * they are, less their quotes, plus a byte or so per field for its length): some 10% more here,
 * well within the kernel's 1 MiB message. A batch that would not fit (tiny fields, long rejects)
 * is cut early by its size.
 */
const BATCH_BYTES = 768 * 1024;
/** Batches sent and not yet stored by the kernel, at most. */
const IN_FLIGHT = 4;
/** Bytes read before parsing them (at least two of the longest quoted records). */
const READ_AHEAD = 2 * MAX_RECORD + 2;

async function main(): Promise<void> {
  const rack = await connect();
  const a = rack.args;
  const job = a.job!;
  const chunk = Number(a.chunk);
  const start = Number(a.start);
  const columns = Number(a.columns);
  const parent = rack.ppid!;
  // Where the chunk ends: `end` when the plan knew it at the fork; else the first record that
  // starts at or after `cut` (after the chunk's first one), found here by the plan's own rule.
  const end = a.end !== undefined ? Number(a.end) : null;
  const stopAt = end ?? (a.cut !== undefined ? Math.max(Number(a.cut), start + 1) : Infinity);
  // Batch k holds the records that start in bytes [k, k + 1) * BATCH_BYTES of the chunk: how many
  // there will be is known before reading (the app status shows it), unless one is cut early.
  const planned = Math.max(1, Math.ceil((Math.min(stopAt, Number(a.size)) - start) / BATCH_BYTES));
  let made = 0;
  let sent = 0;
  let rows = 0;
  let rejects = 0;

  // The parent's mailbox is bounded: when it is full, wait for the parent to catch up.
  const send = async (m: Buffer | ChunkDone): Promise<void> => {
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
  const ready: Buffer[] = [];
  const inflight = new Set<Promise<void>>();
  let failed: unknown = null;
  // Sends what is ready, a few batches in flight at a time (the kernel stores each before it
  // answers); returns once there is room for more.
  const pump = async (): Promise<void> => {
    while (ready.length > 0) {
      while (inflight.size >= IN_FLIGHT) await Promise.race(inflight);
      if (failed) throw failed;
      const p: Promise<void> = send(ready.shift()!)
        .then(() => rack.status(`sent ${++sent}/${Math.max(planned, made)} batches`))
        .catch((err: unknown) => void (failed ??= err))
        .finally(() => inflight.delete(p));
      inflight.add(p);
    }
  };

  const batch = new BatchWriter(job, chunk, columns);
  let window = 0;
  const finish = (): void => {
    if (batch.empty) return;
    ready.push(batch.encode());
    made++;
    batch.reset();
  };
  /** The buffer being read, and its offset in the chunk. */
  let buf: Buffer = Buffer.alloc(0);
  let base = 0;
  const sink = {
    row(line: number, f: RecordFields) {
      const w = Math.floor((base + f.start) / BATCH_BYTES);
      if (w !== window) {
        finish();
        window = w;
      }
      if (!batch.addRecord(buf, f, line)) {
        finish();
        batch.addRecord(buf, f, line);
      }
      batch.upto = base + f.next;
      rows++;
    },
    reject(line: number, reason: string, start: number, nl: number) {
      const w = Math.floor((base + start) / BATCH_BYTES);
      if (w !== window) {
        finish();
        window = w;
      }
      const raw = rawLine(buf, start, nl);
      if (!batch.addReject(line, reason, raw)) {
        finish();
        batch.addReject(line, reason, raw);
      }
      batch.upto = base + start;
      rejects++;
    },
  };

  // Read, parse and send as the bytes arrive: the parent stores the first rows while the rest
  // are still on their way.
  let tail: Buffer = Buffer.alloc(0);
  let pieces: Buffer[] = [];
  let buffered = 0;
  let line = Number(a.first_line);
  // Records that start at or past stopAt are the next chunk's (`limit` is relative to the buffer).
  const feed = (final: boolean): void => {
    buf = pieces.length ? Buffer.concat([tail, ...pieces]) : tail;
    pieces = [];
    const s: ScanState = walk(buf, { offset: 0, line }, { final, columns, limit: Math.max(0, stopAt - start - base) }, sink);
    base += s.offset;
    line = s.line;
    tail = buf.subarray(s.offset);
    buffered = tail.length;
  };
  const done = (): boolean => start + base >= stopAt;
  if (end === null || end > start) {
    let reached = false;
    for await (const b of await rack.files.get(a.path!, end === null ? { start } : { start, end: end - 1 })) {
      pieces.push(b as Buffer);
      buffered += (b as Buffer).length;
      // A record longer than what is buffered waits for twice as much (not a rescan per piece).
      if (buffered < Math.max(READ_AHEAD, 2 * tail.length)) continue;
      feed(false);
      await pump();
      if ((reached = done())) break; // the rest of the file is other chunks'
    }
    if (!reached) feed(true);
  }
  finish();
  await pump();
  while (inflight.size > 0) await Promise.race(inflight);
  if (failed) throw failed;
  // "done" only once every batch is stored.
  await send({ type: 'done', job, chunk, rows, rejects });
  rack.exit(0);
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
