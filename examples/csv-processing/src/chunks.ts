import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import { Readable } from 'node:stream';
import { CsvReader, parseStream, type CsvBatch } from './csv.js';

/** One child's share of a CSV file: whole records in the byte range [start, end). */
export interface ChunkRange {
  index: number;
  start: number;
  end: number;
  /** Physical line number (1-based) of the byte at `start`. */
  firstLine: number;
}

export interface ChunkPlan {
  header: string[];
  /** Offset of the first record after the header (= ranges[0].start). */
  headerEnd: number;
  /** File size in bytes (= the last range's end). */
  size: number;
  ranges: ChunkRange[];
}

export interface ChunkOptions {
  /** Target bytes per chunk. */
  chunkSize: number;
  /** At most this many chunks (children). */
  maxChunks: number;
  /** Read block size; default 1 MiB. */
  blockSize?: number;
}

/** How many chunks (children) a file of `size` bytes gets: min(max, ceil(size / chunkSize)), at least 1. */
export function chunkCount(size: number, chunkSize: number, maxChunks: number): number {
  if (!(chunkSize > 0)) throw new RangeError(`chunkSize must be positive, got ${chunkSize}`);
  if (!(maxChunks >= 1)) throw new RangeError(`maxChunks must be at least 1, got ${maxChunks}`);
  return Math.max(1, Math.min(Math.floor(maxChunks), Math.ceil(size / chunkSize)));
}

/**
 * Plans the chunks of a CSV byte stream of `size` bytes in one quote-aware pass (the record rule
 * of csv.ts, boundaries only, so a newline inside quotes is never a cut). The data after the
 * header is cut into `chunkCount(...)` ranges of about equal size, each cut at the first record
 * start at or after its target. Always returns exactly that many ranges, contiguous and covering
 * [headerEnd, size); a range is empty (start = end) only when the records run out before its
 * target (a tiny file or a huge record).
 */
export async function planChunks(source: AsyncIterable<Buffer | Uint8Array>, size: number, opts: ChunkOptions): Promise<ChunkPlan> {
  const n = chunkCount(size, opts.chunkSize, opts.maxChunks);
  const cuts: Array<{ offset: number; line: number }> = [];
  let dataStart = -1;
  let dataSize = 0;
  let nextTarget = Infinity;
  const target = (k: number): number => (k < n ? dataStart + Math.ceil((k * dataSize) / n) : Infinity);
  const record = (at: number, line: number): void => {
    if (dataStart < 0) {
      dataStart = reader.headerEnd;
      dataSize = Math.max(0, size - dataStart);
      nextTarget = target(1);
    }
    while (at >= nextTarget) {
      cuts.push({ offset: at, line });
      nextTarget = target(cuts.length + 1);
    }
  };
  const reader: CsvReader = new CsvReader(
    {
      row: (_fields, line, start) => record(reader.base + start, line),
      reject: (r, start) => record(reader.base + start, r.line),
    },
    { header: true, structureOnly: true },
  );
  for await (const block of source) reader.push(Buffer.isBuffer(block) ? block : Buffer.from(block.buffer, block.byteOffset, block.byteLength));
  reader.end();
  const header = reader.header!; // end() throws CsvHeaderError when there is none
  const headerEnd = reader.headerEnd;
  const total = Math.max(size, reader.offset);
  // Targets past the last record: empty ranges at the end of the file.
  while (cuts.length < n - 1) cuts.push({ offset: total, line: reader.line });
  const ranges: ChunkRange[] = [];
  for (let i = 0; i < n; i++) {
    const start = i === 0 ? headerEnd : cuts[i - 1]!.offset;
    const firstLine = i === 0 ? reader.headerEndLine : cuts[i - 1]!.line;
    ranges.push({ index: i, start, end: i + 1 < n ? cuts[i]!.offset : total, firstLine });
  }
  return { header, headerEnd, size: total, ranges };
}

/**
 * Plans the chunks of a CSV file (see `planChunks`). One sequential read of the file.
 */
export async function planFile(path: string, opts: ChunkOptions): Promise<ChunkPlan> {
  const { size } = await stat(path);
  return planChunks(createReadStream(path, { highWaterMark: opts.blockSize ?? 1 << 20 }) as AsyncIterable<Buffer>, size, opts);
}

/** The bytes of one range of a file, as a stream (what a child reads). */
export function readRange(path: string, range: Pick<ChunkRange, 'start' | 'end'>, blockSize = 1 << 20): Readable {
  if (range.end <= range.start) return Readable.from([]);
  return createReadStream(path, { start: range.start, end: range.end - 1, highWaterMark: blockSize });
}

/**
 * Parses one chunk of a file into batches of rows and rejects (line numbers are the file's),
 * checking the field count against the header. What a child does with its range.
 */
export function parseChunk(path: string, range: ChunkRange, header: readonly string[], opts: { batchRows?: number } = {}): AsyncGenerator<CsvBatch, unknown, void> {
  return parseStream(readRange(path, range) as AsyncIterable<Buffer>, { columns: header.length, firstLine: range.firstLine, batchRows: opts.batchRows });
}
