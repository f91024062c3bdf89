import { isUtf8 } from 'node:buffer';

/**
 * A streaming RFC 4180 reader over bytes.
 *
 * One rule decides where records start, and the File Catcher's chunking (structure only) and
 * every child (full parse) apply it the same way, so a chunk boundary is always a record start
 * and parsing a file chunk by chunk gives exactly what parsing it whole gives:
 *
 *   - a record ends at a newline (LF or CRLF) outside quotes; a quoted field may hold commas,
 *     doubled quotes ("") and newlines; a quote may only open a field and must close it;
 *   - blank lines are no records (they still count as lines);
 *   - a record whose quoting is broken (a quote inside an unquoted field, text after a closing
 *     quote, a quoted field never closed, or a record longer than MAX_RECORD_BYTES) is rejected as
 *     its first physical line only, and reading goes on at the next line: its true end is unknown,
 *     and one bad row must not swallow good ones;
 *   - a record whose quoting is sound but which is invalid UTF-8 or has the wrong number of fields
 *     is rejected whole (all its lines), and reading goes on after it.
 *
 * Line numbers are 1-based physical lines (LF count + 1) of a record's first line.
 */

/** A record's quoted content may run this far from its start; longer is "broken quoting". */
export const MAX_RECORD_BYTES = 1024 * 1024;
/** A reject keeps at most this many bytes of its raw text. */
export const MAX_RAW_BYTES = 4096;

const NL = 0x0a;
const CR = 0x0d;
const QUOTE = 0x22;
const COMMA = 0x2c;
/** Bytes of input checked for UTF-8 at once (then per record only where a window fails). */
const UTF8_WINDOW = 256 * 1024;
const EMPTY = Buffer.alloc(0);

export interface CsvRow {
  line: number;
  fields: string[];
}

export interface CsvReject {
  line: number;
  reason: string;
  raw: string;
}

/** What a parse reports, record by record, in file order. `start` is the record's byte offset in the buffer handed in. */
export interface CsvSink {
  row(fields: string[], line: number, start: number): void;
  reject(reject: CsvReject, start: number): void;
}

/** Thrown when the header (the first record of a file) is not a valid record. */
export class CsvHeaderError extends Error {
  constructor(
    readonly line: number,
    readonly reason: string,
  ) {
    super(`the CSV header (line ${line}) is not a valid record: ${reason}`);
    this.name = 'CsvHeaderError';
  }
}

export interface ScanResult {
  /** Offset of the first byte not consumed (the next record start). */
  offset: number;
  /** Line number at `offset`. */
  line: number;
}

export interface ScanOptions {
  /** Offset of the first record. */
  start: number;
  /** Data ends here (exclusive); default: the buffer's end. With `final`, this is the end of the input. */
  end?: number;
  /** No record starting at or after this offset is read (the data up to `end` is still looked at). */
  until?: number;
  /** Line number of the record at `start`; default 1. */
  line?: number;
  /** True when no bytes follow `end`; false stops before a record that may go on past it. */
  final: boolean;
  /** Required fields per record; 0 accepts any count. */
  columns: number;
  /** Only find record boundaries: `row` gets an empty array, no UTF-8 or field-count checks. */
  structureOnly?: boolean;
  /** Stop after this many records (rows + rejects). */
  maxRecords?: number;
}

const NO_FIELDS: string[] = [];
/** `quoted()` result: more bytes are needed to decide. */
const NEED_MORE = -1;

/**
 * The record reader. Holds the per-call state so the hot loop stays allocation-free except for
 * the fields themselves.
 */
class Scanner {
  buf: Buffer = EMPTY;
  limit = 0;
  final = true;
  decode = true;
  // UTF-8 windows: [okFrom, okUntil) is known valid; records starting before checkedUntil were in a window already looked at.
  okFrom = 0;
  okUntil = 0;
  checkedUntil = 0;
  // Results of quoted().
  fields: string[] = NO_FIELDS;
  reason = '';
  recEnd = 0; // offset of the record's terminating LF (or the data's end)

  reset(buf: Buffer, limit: number, final: boolean, decode: boolean): void {
    this.buf = buf;
    this.limit = limit;
    this.final = final;
    this.decode = decode;
    this.okFrom = 0;
    this.okUntil = 0;
    this.checkedUntil = 0;
  }

  utf8(p: number, stop: number): boolean {
    if (p >= this.okFrom && stop <= this.okUntil) return true;
    if (p >= this.checkedUntil) {
      // Check a window of whole lines at once: LF is never inside a multi-byte sequence.
      let w = Math.min(p + UTF8_WINDOW, this.limit);
      if (w < this.limit) {
        const lf = this.buf.lastIndexOf(NL, w - 1);
        if (lf >= p) w = lf + 1;
      }
      if (w < stop) w = stop;
      this.checkedUntil = w;
      if (isUtf8(this.buf.subarray(p, w))) {
        this.okFrom = p;
        this.okUntil = w;
        return true;
      }
    }
    return isUtf8(this.buf.subarray(p, stop));
  }

  raw(p: number, stop: number): string {
    return this.buf.toString('utf8', p, Math.min(stop, p + MAX_RAW_BYTES));
  }

  /**
   * Reads a record at `p` that has a quote on its first line (which ends at `nl`). Returns the
   * offset of its terminating LF (or the data's end), NEED_MORE, or -2 for broken quoting (with
   * `reason`). With `decode`, `fields` holds the fields.
   */
  quoted(p: number): number {
    const buf = this.buf;
    const limit = this.limit;
    const decode = this.decode;
    const fields: string[] = decode ? [] : NO_FIELDS;
    let i = p;
    for (;;) {
      if (i < limit && buf[i] === QUOTE) {
        let j = i + 1;
        let val = '';
        for (;;) {
          const q = buf.indexOf(QUOTE, j);
          if (q < 0 || q - p > MAX_RECORD_BYTES) {
            // Decided the same way whether the bytes come whole or in pieces.
            const long = q >= 0 || limit - p > MAX_RECORD_BYTES;
            if (!long && !this.final) return NEED_MORE;
            this.reason = long ? `a record runs past ${MAX_RECORD_BYTES} bytes inside quotes` : 'unterminated quoted field';
            return -2;
          }
          if (q + 1 >= limit && !this.final) return NEED_MORE; // is it "" or the closing quote?
          if (buf[q + 1] === QUOTE) {
            if (decode) val += buf.toString('utf8', j, q + 1);
            j = q + 2;
            continue;
          }
          if (decode) val += j === q ? '' : buf.toString('utf8', j, q);
          i = q + 1;
          break;
        }
        if (decode) fields.push(val);
        if (i >= limit) {
          if (!this.final) return NEED_MORE;
          this.fields = fields;
          return limit;
        }
        const c = buf[i];
        if (c === COMMA) {
          i++;
          continue;
        }
        if (c === NL) {
          this.fields = fields;
          return i;
        }
        if (c === CR) {
          if (i + 1 >= limit) {
            if (!this.final) return NEED_MORE;
            this.fields = fields;
            return limit;
          }
          if (buf[i + 1] === NL) {
            this.fields = fields;
            return i + 1;
          }
        }
        this.reason = 'text after a closing quote';
        return -2;
      }
      // An unquoted field: up to the next comma or LF; a quote in it is an error.
      let k = i;
      let c = 0;
      while (k < limit) {
        c = buf[k]!;
        if (c === COMMA || c === NL) break;
        if (c === QUOTE) {
          this.reason = 'quote inside an unquoted field';
          return -2;
        }
        k++;
      }
      if (k >= limit) {
        if (!this.final) return NEED_MORE;
        if (decode) fields.push(buf.toString('utf8', i, k > i && buf[k - 1] === CR ? k - 1 : k));
        this.fields = fields;
        return limit;
      }
      if (c === COMMA) {
        if (decode) fields.push(buf.toString('utf8', i, k));
        i = k + 1;
        continue;
      }
      if (decode) fields.push(buf.toString('utf8', i, k > i && buf[k - 1] === CR ? k - 1 : k));
      this.fields = fields;
      return k;
    }
  }

  scan(buf: Buffer, opts: ScanOptions, sink: CsvSink): ScanResult {
    const end = Math.min(opts.end ?? buf.length, buf.length);
    const b = end < buf.length ? buf.subarray(0, end) : buf; // indexOf stops at the data's end
    const final = opts.final;
    const columns = opts.columns;
    const decode = !opts.structureOnly;
    const until = Math.min(opts.until ?? end, end);
    let budget = opts.maxRecords ?? Infinity;
    this.reset(b, end, final, decode);
    let p = opts.start;
    let line = opts.line ?? 1;
    let nextQuote = -2; // offset of the next quote at or after p; -1: none up to the end
    while (p < until && budget > 0) {
      let nl = b.indexOf(NL, p);
      if (nl < 0) {
        if (!final) break;
        nl = end;
      }
      if (nextQuote !== -1 && nextQuote < p) nextQuote = b.indexOf(QUOTE, p);
      if (nextQuote === -1 || nextQuote > nl) {
        // The common case: no quote on this line, the record is the line.
        const stop = nl > p && b[nl - 1] === CR ? nl - 1 : nl;
        if (stop > p) {
          budget--;
          if (!decode) sink.row(NO_FIELDS, line, p);
          else if (!this.utf8(p, stop)) sink.reject({ line, reason: 'invalid UTF-8', raw: this.raw(p, stop) }, p);
          else {
            const fields = b.toString('utf8', p, stop).split(',');
            if (columns > 0 && fields.length !== columns) sink.reject({ line, reason: `expected ${columns} fields, found ${fields.length}`, raw: this.raw(p, stop) }, p);
            else sink.row(fields, line, p);
          }
        }
        p = nl + 1;
        line++;
        continue;
      }
      const recEnd = this.quoted(p);
      if (recEnd === NEED_MORE) break;
      budget--;
      if (recEnd === -2) {
        // Broken quoting: reject the first line, go on at the next.
        sink.reject({ line, reason: this.reason, raw: this.raw(p, nl > p && b[nl - 1] === CR ? nl - 1 : nl) }, p);
        p = nl + 1;
        line++;
        continue;
      }
      let lines = 1;
      for (let k = nl; k >= 0 && k < recEnd; k = b.indexOf(NL, k + 1)) lines++;
      if (decode) {
        const stop = recEnd > p && b[recEnd - 1] === CR ? recEnd - 1 : recEnd;
        const fields = this.fields;
        if (!this.utf8(p, stop)) sink.reject({ line, reason: 'invalid UTF-8', raw: this.raw(p, stop) }, p);
        else if (columns > 0 && fields.length !== columns) sink.reject({ line, reason: `expected ${columns} fields, found ${fields.length}`, raw: this.raw(p, stop) }, p);
        else sink.row(fields, line, p);
        this.fields = NO_FIELDS;
      } else sink.row(NO_FIELDS, line, p);
      p = recEnd + 1;
      line += lines;
    }
    this.buf = EMPTY;
    this.fields = NO_FIELDS;
    return { offset: Math.min(p, end), line };
  }
}


/**
 * Reads the records of `buf` from `opts.start`, calling `sink` for each, and returns where it
 * stopped. The low-level, allocation-light entry point; `parseRange` and `CsvReader` build on it.
 */
export function scanRecords(buf: Buffer, opts: ScanOptions, sink: CsvSink): ScanResult {
  return new Scanner().scan(buf, opts, sink); // one per call: a sink may scan too
}

/** The byte offset after a UTF-8 byte order mark at `start`, if there is one. */
export function skipBom(buf: Buffer, start = 0): number {
  return buf[start] === 0xef && buf[start + 1] === 0xbb && buf[start + 2] === 0xbf ? start + 3 : start;
}

/**
 * Reads the header (the first record) at `start` (a BOM is skipped). Returns the header and the
 * offset and line of the first data record, or null when more bytes are needed (`final` false).
 * Throws CsvHeaderError for an invalid header, and for an input without one when `final`.
 */
export function readHeader(buf: Buffer, opts: { start?: number; end?: number; line?: number; final: boolean }): { header: string[]; offset: number; line: number } | null {
  const start = skipBom(buf, opts.start ?? 0);
  if (!opts.final && (opts.end ?? buf.length) - start < 3 && start === (opts.start ?? 0)) return null; // a BOM may still be coming
  let header: string[] | null = null;
  let error: CsvReject | null = null;
  const r = scanRecords(buf, { start, end: opts.end, line: opts.line ?? 1, final: opts.final, columns: 0, maxRecords: 1 }, {
    row: (fields) => {
      header = fields;
    },
    reject: (rej) => {
      error = rej;
    },
  });
  if (error) throw new CsvHeaderError((error as CsvReject).line, (error as CsvReject).reason);
  if (!header) {
    if (opts.final) throw new CsvHeaderError(opts.line ?? 1, 'the input is empty');
    return null;
  }
  return { header, offset: r.offset, line: r.line };
}

export type CsvItem = ({ kind: 'row' } & CsvRow) | ({ kind: 'reject' } & CsvReject);

/**
 * Parses the byte range [start, end) of `buf` (whole records, e.g. one chunk of a file, or a whole
 * file with `header` true), yielding rows and rejects in order. Lazy: parses about a megabyte at a time.
 */
export function* parseRange(buf: Buffer, opts: { start?: number; end?: number; firstLine?: number; columns?: number; header?: boolean } = {}): Generator<CsvItem, ScanResult, void> {
  const end = Math.min(opts.end ?? buf.length, buf.length);
  let offset = opts.start ?? 0;
  let line = opts.firstLine ?? 1;
  let columns = opts.columns ?? 0;
  if (opts.header) {
    const h = readHeader(buf, { start: offset, end, line, final: true })!;
    offset = h.offset;
    line = h.line;
    if (!opts.columns) columns = h.header.length;
  }
  const items: CsvItem[] = [];
  const sink: CsvSink = {
    row: (fields, l) => void items.push({ kind: 'row', line: l, fields }),
    reject: (r) => void items.push({ kind: 'reject', ...r }),
  };
  while (offset < end) {
    const r = scanRecords(buf, { start: offset, end, until: Math.min(offset + (1 << 20), end), line, final: true, columns }, sink);
    offset = r.offset;
    line = r.line;
    yield* items;
    items.length = 0;
  }
  return { offset, line };
}

export interface CsvBatch {
  rows: CsvRow[];
  rejects: CsvReject[];
}

export interface CsvReaderOptions {
  /** True: the first record is the header (not a row; it sets the field count). */
  header?: boolean;
  /** Required fields per record (0: any, or the header's count with `header`). */
  columns?: number;
  /** Line number of the first byte pushed; default 1. */
  firstLine?: number;
  /** Only record boundaries (for chunking): rows get empty field arrays. */
  structureOnly?: boolean;
}

/**
 * Push-style streaming reader: feed it Buffers as they come (`push`), then `end()`. A record split
 * across pushes is carried over. `offset` counts bytes consumed since the first push.
 */
export class CsvReader {
  header: string[] | null = null;
  /** Offset (since the first push) of the first record after the header; -1 until the header is read. */
  headerEnd = -1;
  /** Line number at `headerEnd`. */
  headerEndLine = -1;
  /** Bytes consumed (through the last complete record) since the first push. */
  offset = 0;
  /** Line number of the next record. */
  line: number;
  private columns: number;
  private readonly wantHeader: boolean;
  private readonly structureOnly: boolean;
  private tail: Buffer = EMPTY;
  private ended = false;
  /** Absolute offset of the buffer currently being scanned (for sinks that want file offsets). */
  base = 0;

  constructor(
    private readonly sink: CsvSink,
    opts: CsvReaderOptions = {},
  ) {
    this.wantHeader = !!opts.header;
    this.columns = opts.columns ?? 0;
    this.line = opts.firstLine ?? 1;
    this.structureOnly = !!opts.structureOnly;
  }

  push(chunk: Buffer): void {
    if (this.ended) throw new Error('CsvReader: push after end');
    if (chunk.length === 0) return;
    const buf = this.tail.length ? Buffer.concat([this.tail, chunk]) : chunk;
    this.run(buf, false);
  }

  end(): void {
    if (this.ended) return;
    this.ended = true;
    this.run(this.tail, true);
    this.tail = EMPTY;
  }

  private run(buf: Buffer, final: boolean): void {
    let p = 0;
    this.base = this.offset;
    if (this.wantHeader && !this.header) {
      const h = readHeader(buf, { start: 0, line: this.line, final });
      if (!h) {
        this.tail = final ? EMPTY : buf;
        return;
      }
      this.header = h.header;
      if (!this.columns) this.columns = h.header.length;
      p = h.offset;
      this.headerEnd = this.base + p;
      this.headerEndLine = h.line;
      this.line = h.line;
    }
    const r = scanRecords(buf, { start: p, line: this.line, final, columns: this.columns, structureOnly: this.structureOnly }, this.sink);
    this.offset = this.base + r.offset;
    this.line = r.line;
    // Keep only the unread tail, copied so the caller's big chunk can be freed.
    this.tail = r.offset >= buf.length ? EMPTY : Buffer.from(buf.subarray(r.offset));
  }
}

/**
 * Parses a stream of Buffers (a file, a pipe, a byte range) into batches of about `batchRows`
 * rows, for inserting in transactions. With `header`, `onHeader` gets the header first.
 */
export async function* parseStream(
  source: AsyncIterable<Buffer | Uint8Array>,
  opts: CsvReaderOptions & { batchRows?: number; onHeader?: (header: string[]) => void } = {},
): AsyncGenerator<CsvBatch, { header: string[] | null; line: number; bytes: number }, void> {
  const batchRows = opts.batchRows ?? 10_000;
  let batch: CsvBatch = { rows: [], rejects: [] };
  const sink: CsvSink = {
    row: (fields, line) => void batch.rows.push({ line, fields }),
    reject: (r) => void batch.rejects.push(r),
  };
  const reader = new CsvReader(sink, opts);
  let announced = false;
  const announce = (): void => {
    if (!announced && reader.header) {
      announced = true;
      opts.onHeader?.(reader.header);
    }
  };
  for await (const chunk of source) {
    reader.push(Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength));
    announce();
    if (batch.rows.length + batch.rejects.length >= batchRows) {
      yield batch;
      batch = { rows: [], rejects: [] };
    }
  }
  reader.end();
  announce();
  if (batch.rows.length || batch.rejects.length) yield batch;
  return { header: reader.header, line: reader.line, bytes: reader.offset };
}
