import { open } from 'node:fs/promises';
import type { Readable } from 'node:stream';
import { fieldTexts, MAX_RECORD, walk, type RecordFields, type ScanState } from './records.js';

export interface Chunk {
  index: number;
  /** Byte range [start, end) of whole records. */
  start: number;
  end: number;
  /** Physical line number of the chunk's first byte. */
  firstLine: number;
}

export interface Plan {
  header: string[];
  /** Where the first record after the header starts. */
  headerEnd: number;
  size: number;
  chunks: Chunk[];
}

/** How many children a file needs: one per `chunkSize` bytes, at most `max`, at least 1. */
export function childrenFor(size: number, chunkSize: number, max: number): number {
  return Math.max(1, Math.min(max, Math.ceil(size / chunkSize)));
}

/**
 * A chunk as soon as its start is known. It ends where the next one starts: at the first record
 * that starts at or after `cut` (after its own first record); null: at the end of the file. A
 * worker that reads on from `start` finds that record as the plan does, by the same rule.
 */
export interface ChunkStart {
  index: number;
  start: number;
  firstLine: number;
  cut: number | null;
}

/** Who wants the plan as it is made: the header, each chunk once its start is known, and once its end is. */
export interface PlanListener {
  header?(header: string[]): void;
  start?(chunk: ChunkStart): void;
  chunk?(chunk: Chunk): void;
}

/**
 * Plans the chunks of a CSV streamed from `source` (a file or the group file system): one pass
 * with the same record rule the workers use, cutting at the first record start past each target.
 * It reads only as far as the last cut: one chunk needs the header and nothing more. `on` hears
 * of each chunk as soon as it is known, in order.
 */
export async function planChunks(source: AsyncIterable<Buffer> | Readable, size: number, opts: { chunkSize: number; max: number }, on: PlanListener = {}): Promise<Plan> {
  const n = childrenFor(size, opts.chunkSize, opts.max);
  const target = Math.ceil(size / n);
  let header: string[] | null = null;
  const starts: Array<{ offset: number; line: number }> = [];
  let base = 0; // file offset of buf[0]
  let buf: Buffer = Buffer.alloc(0);
  let state: ScanState = { offset: 0, line: 1 };
  let nextCut = target;
  const chunks: Chunk[] = [];
  const known = (end: number): void => {
    const i = chunks.length;
    const s = starts[i]!;
    const c = { index: i, start: s.offset, end, firstLine: s.line };
    chunks.push(c);
    on.chunk?.(c);
  };
  // Chunk k + 1 starts at the first record at or after (k + 1) * target.
  const cut = (at: number, line: number): void => {
    if (starts.length === 0 || (at >= nextCut && starts.length < n)) {
      starts.push({ offset: at, line });
      if (starts.length > 1) {
        nextCut += target;
        known(at);
      }
      on.start?.({ index: starts.length - 1, start: at, firstLine: line, cut: starts.length < n ? nextCut : null });
      // The last start: its chunk runs to the end of the file.
      if (starts.length === n) known(size);
    }
  };
  // Records as byte ranges: the plan needs where they start, not their fields.
  const sink = {
    row(line: number, f: RecordFields) {
      if (!header) {
        header = fieldTexts(buf, f);
        on.header?.(header);
        return;
      }
      cut(base + f.start, line);
    },
    reject(line: number, _reason: string, start: number) {
      if (!header) throw new Error(`the header (line ${line}) is not a valid CSV record`);
      cut(base + start, line);
    },
  };
  const feed = (final: boolean): void => {
    // The header decides the field count: read it alone first.
    if (!header) state = walk(buf, state, { final, columns: 0, limit: state.offset + 1 }, sink);
    if (header) state = walk(buf, state, { final, columns: (header as string[]).length }, sink);
  };
  // The pieces read since the last scan, joined once (not the buffer copied again for each).
  let pieces: Buffer[] = [];
  let buffered = 0;
  let final = true;
  for await (const chunk of source as AsyncIterable<Buffer>) {
    pieces.push(chunk);
    buffered += chunk.length;
    // Little at first (the header and the first record may be all it takes), then a few MiB; a
    // record still unfinished waits for twice as much as there is (not a rescan per piece).
    if (buffered < Math.max(starts.length === 0 ? 64 * 1024 : 4 * MAX_RECORD, 2 * buf.length)) continue;
    buf = Buffer.concat([buf, ...pieces]);
    pieces = [];
    feed(false);
    // Keep only the unread tail; offsets in `state` are relative to `buf`.
    base += state.offset;
    buf = buf.subarray(state.offset);
    state = { offset: 0, line: state.line };
    buffered = buf.length;
    if (header && starts.length >= n) {
      final = false; // every cut is made: the rest of the file is the last chunk's
      break;
    }
  }
  if (final) {
    buf = Buffer.concat([buf, ...pieces]);
    feed(true);
  }
  if (!header) throw new Error('the file is empty: no header');
  if (starts.length === 0) {
    starts.push({ offset: size, line: state.line });
    on.start?.({ index: 0, start: size, firstLine: state.line, cut: null });
  }
  if (chunks.length < starts.length) known(size);
  return { header, headerEnd: starts[0]!.offset, size, chunks };
}

/** Plans a local file. */
export async function planFile(path: string, opts: { chunkSize: number; max: number }): Promise<Plan> {
  const fh = await open(path);
  try {
    const { size } = await fh.stat();
    return await planChunks(fh.createReadStream({ highWaterMark: 1 << 20 }), size, opts);
  } finally {
    await fh.close();
  }
}
