import { open } from 'node:fs/promises';
import type { Readable } from 'node:stream';
import { MAX_RECORD, scan, type ScanState } from './records.js';

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
 * Plans the chunks of a CSV streamed from `source` (a file or the group file system): one pass
 * with the same record rule the workers use, cutting at the first record start past each target.
 */
export async function planChunks(source: AsyncIterable<Buffer> | Readable, size: number, opts: { chunkSize: number; max: number }): Promise<Plan> {
  const n = childrenFor(size, opts.chunkSize, opts.max);
  const target = Math.ceil(size / n);
  let header: string[] | null = null;
  const starts: Array<{ offset: number; line: number }> = [];
  let base = 0; // file offset of buf[0]
  let buf: Buffer = Buffer.alloc(0);
  let state: ScanState = { offset: 0, line: 1 };
  let nextCut = target;
  const sink = {
    row(r: { line: number; fields: string[] }, start: number) {
      if (!header) {
        header = r.fields;
        return;
      }
      const at = base + start;
      if (starts.length === 0 || (at >= nextCut && starts.length < n)) {
        starts.push({ offset: at, line: r.line });
        if (starts.length > 1) nextCut += target;
      }
    },
    reject(r: { line: number }, start: number) {
      if (!header) throw new Error(`the header (line ${r.line}) is not a valid CSV record`);
      const at = base + start;
      if (starts.length === 0 || (at >= nextCut && starts.length < n)) {
        starts.push({ offset: at, line: r.line });
        if (starts.length > 1) nextCut += target;
      }
    },
  };
  const feed = (final: boolean): void => {
    // The header decides the field count: scan it alone first.
    if (!header) state = scan(buf, state, { final, columns: 0, limit: state.offset + 1 }, sink);
    if (header) state = scan(buf, state, { final, columns: (header as string[]).length }, sink);
  };
  for await (const chunk of source as AsyncIterable<Buffer>) {
    buf = buf.length ? Buffer.concat([buf, chunk]) : chunk;
    if (buf.length < 4 * MAX_RECORD && buf.length < 8 * 1024 * 1024) continue;
    feed(false);
    // Keep only the unread tail; offsets in `state` are relative to `buf`.
    base += state.offset;
    buf = buf.subarray(state.offset);
    state = { offset: 0, line: state.line };
  }
  feed(true);
  if (!header) throw new Error('the file is empty: no header');
  if (starts.length === 0) starts.push({ offset: size, line: state.line });
  const chunks = starts.map((s, i) => ({ index: i, start: s.offset, end: i + 1 < starts.length ? starts[i + 1]!.offset : size, firstLine: s.line }));
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
