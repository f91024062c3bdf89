/**
 * A batch of parsed rows as one binary message: what a worker sends its File Catcher. It is sized
 * by bytes (up to the kernel's message limit), not by rows, and it is cheap at both ends: the
 * worker copies each record's bytes in (a record without quotes is copied whole: its bytes are its
 * fields joined by commas), and the File Catcher decodes the text once and takes each field as a
 * slice of that string, with no JSON and no object per row.
 *
 *   uint32 BE  header length H
 *   H bytes    header, JSON: BatchHeader
 *   index      varints, per row:    (line - first) * 2,     then each field's length
 *                       per reject:  (line - first) * 2 + 1, then the reason's and the raw line's length
 *   text       UTF-8: each item's strings (a row's fields; a reject's reason and raw line), one
 *              separator byte between two strings of an item, none between items; in segments
 *              of whole items (their byte lengths are in the header)
 *
 * Lengths are in UTF-16 code units (JavaScript string lengths), so that the decoder slices the
 * text decoded once. The text holds only well-formed strings (rows are valid UTF-8; a reject's raw
 * line is decoded with replacement characters), so it survives UTF-8 both ways unchanged.
 */
import type { RecordFields } from './records.js';

/** The kernel's limit on one message (src/ipc/messaging.ts MAX_MESSAGE). */
export const MAX_MESSAGE = 1024 * 1024;
/** Room kept for the header (job name, counts, segments); a batch's index and text fill the rest. */
const HEADER_ROOM = 4 * 1024;
/**
 * The text is decoded in segments of about this many bytes, each a run of whole items: V8 makes a
 * string of a few hundred KiB several times slower than many of a few dozen (large-object space).
 */
const SEGMENT = 32 * 1024;
const QUOTE = 0x22;
const SEPARATOR = 0x2c;

export interface BatchHeader {
  type: 'rows';
  v: 1;
  job: string;
  chunk: number;
  /** Fields per row. */
  columns: number;
  /** Line number the index's line deltas count from. */
  first: number;
  rows: number;
  rejects: number;
  /** Bytes of the index (the text follows it). */
  index: number;
  /** Byte lengths of the text's segments, in order. */
  segments: number[];
  /** The text is all ASCII (it decodes as Latin-1, faster). */
  ascii: boolean;
  /** How many bytes of the chunk this batch and the ones before it cover (for progress). */
  upto: number;
}

/** UTF-16 code units of the UTF-8 bytes buf[a, b): one per character, two for those past U+FFFF. */
function utf16Length(buf: Buffer, a: number, b: number): number {
  let n = 0;
  for (let i = a; i < b; i++) {
    const c = buf[i]!;
    if ((c & 0xc0) !== 0x80) n += c >= 0xf0 ? 2 : 1;
  }
  return n;
}

/**
 * Copies src[a, b) to dst at `to`; returns the count. Byte by byte when short: Buffer#copy costs
 * about half a microsecond a call in Node 20 (a typed-array view per call), a row's fields are a
 * few dozen bytes.
 */
function copy(src: Buffer, dst: Buffer, to: number, a: number, b: number): number {
  if (b - a > 256) return src.copy(dst, to, a, b);
  for (let i = a; i < b; i++) dst[to++] = src[i]!;
  return b - a;
}

/** Collects rows and rejects of one chunk into a batch that fits in one message. */
export class BatchWriter {
  private index = Buffer.allocUnsafe(64 * 1024);
  private at = 0;
  private text: Buffer;
  private textAt = 0;
  private first = -1;
  private ascii = true;
  private readonly segments: number[] = [];
  private segmentAt = 0;
  rows = 0;
  rejects = 0;
  /** Bytes of the chunk covered so far (set by the caller). */
  upto = 0;

  constructor(
    private readonly job: string,
    private readonly chunk: number,
    private readonly columns: number,
    /** Most bytes the encoded batch may take. */
    readonly limit = MAX_MESSAGE,
  ) {
    if (limit <= HEADER_ROOM) throw new Error(`a batch limit of ${limit} bytes is too small`);
    this.text = Buffer.allocUnsafe(Math.min(limit, 1024 * 1024));
  }

  get empty(): boolean {
    return this.rows === 0 && this.rejects === 0;
  }

  /** Empties the batch for the next one (its buffers are kept: encode() copies out of them). */
  reset(): void {
    this.at = 0;
    this.textAt = 0;
    this.first = -1;
    this.ascii = true;
    this.segments.length = 0;
    this.segmentAt = 0;
    this.rows = 0;
    this.rejects = 0;
  }

  /** The encoded size, with room for the header. */
  get size(): number {
    return HEADER_ROOM + this.at + this.textAt;
  }

  /**
   * Adds a valid record (records.ts walk) of `buf` at `line`; false, and nothing added, when
   * the batch would grow past its limit.
   */
  addRecord(buf: Buffer, f: RecordFields, line: number): boolean {
    const n = f.count;
    if (n !== this.columns) throw new Error(`a row of ${n} fields in a batch of ${this.columns} columns`);
    // Room for the worst case (the record's bytes bound its text; a length takes 3 bytes at
    // most), then the size checked exactly.
    this.room(5 + 3 * n, f.stop - f.start);
    const at = this.at;
    const textAt = this.textAt;
    this.line(line, 0);
    const fa = f.at;
    const text = this.text;
    if (!f.quoted) {
      // No quotes: the record's bytes are its fields joined by commas.
      this.textAt += copy(buf, text, this.textAt, f.start, f.stop);
      for (let k = 0; k < n; k++) {
        const a = fa[3 * k]!;
        const b = fa[3 * k + 1]!;
        this.varint(f.ascii ? b - a : utf16Length(buf, a, b));
      }
    } else {
      for (let k = 0; k < n; k++) {
        if (k > 0) text[this.textAt++] = SEPARATOR;
        const from = this.textAt;
        const a = fa[3 * k]!;
        const b = fa[3 * k + 1]!;
        if (fa[3 * k + 2]) {
          // Doubled quotes: each pair is one quote.
          for (let i = a; i < b; ) {
            let q = buf.indexOf(QUOTE, i);
            if (q < 0 || q >= b) q = b;
            this.textAt += copy(buf, text, this.textAt, i, q);
            if (q < b) text[this.textAt++] = QUOTE;
            i = q + 2;
          }
        } else this.textAt += copy(buf, text, this.textAt, a, b);
        this.varint(f.ascii ? this.textAt - from : utf16Length(text, from, this.textAt));
      }
    }
    if (!this.added(at, textAt, line)) return false;
    this.rows++;
    if (!f.ascii) this.ascii = false;
    return true;
  }

  /** Adds a reject; false, and nothing added, when the batch would grow past its limit. */
  addReject(line: number, reason: string, raw: string): boolean {
    this.room(15, 3 * (reason.length + raw.length) + 1);
    const at = this.at;
    const textAt = this.textAt;
    this.line(line, 1);
    this.varint(reason.length);
    this.varint(raw.length);
    this.textAt += this.text.write(reason, this.textAt);
    this.text[this.textAt++] = SEPARATOR;
    this.textAt += this.text.write(raw, this.textAt);
    if (!this.added(at, textAt, line)) return false;
    this.rejects++;
    if (!/^[\x00-\x7f]*$/.test(reason + raw)) this.ascii = false;
    return true;
  }

  /** The message's bytes. */
  encode(): Buffer {
    const segments = this.textAt > this.segmentAt ? [...this.segments, this.textAt - this.segmentAt] : this.segments;
    const header: BatchHeader = {
      type: 'rows', v: 1, job: this.job, chunk: this.chunk, columns: this.columns, first: Math.max(this.first, 0),
      rows: this.rows, rejects: this.rejects, index: this.at, segments, ascii: this.ascii, upto: this.upto,
    };
    const head = Buffer.from(JSON.stringify(header));
    if (head.length > HEADER_ROOM) throw new Error('batch header too long');
    const out = Buffer.allocUnsafe(4 + head.length + this.at + this.textAt);
    out.writeUInt32BE(head.length, 0);
    head.copy(out, 4);
    this.index.copy(out, 4 + head.length, 0, this.at);
    this.text.copy(out, 4 + head.length + this.at, 0, this.textAt);
    return out;
  }

  /** Keeps the item just written if the batch is still within its limit, else takes it back. */
  private added(at: number, textAt: number, line: number): boolean {
    if (this.size <= this.limit) return true;
    this.at = at;
    this.textAt = textAt;
    if (this.empty) throw new Error(`line ${line} is too large for one message`);
    return false;
  }

  /** Makes room for an item of at most this many index and text bytes (past the limit if need be: added() takes it back). */
  private room(index: number, text: number): void {
    if (this.at + index > this.index.length) {
      const bigger = Buffer.allocUnsafe(Math.max(this.index.length * 2, this.at + index));
      this.index.copy(bigger, 0, 0, this.at);
      this.index = bigger;
    }
    if (this.textAt + text > this.text.length) {
      const bigger = Buffer.allocUnsafe(Math.max(this.text.length * 2, this.textAt + text));
      this.text.copy(bigger, 0, 0, this.textAt);
      this.text = bigger;
    }
  }

  private line(line: number, kind: 0 | 1): void {
    // A new segment begins with this item when the current one is long enough (an item taken
    // back leaves an empty segment, which encode() drops).
    if (this.textAt - this.segmentAt >= SEGMENT) {
      this.segments.push(this.textAt - this.segmentAt);
      this.segmentAt = this.textAt;
    }
    if (this.first < 0) this.first = line;
    this.varint((line - this.first) * 2 + kind);
  }

  private varint(n: number): void {
    const b = this.index;
    while (n >= 0x80) {
      b[this.at++] = (n & 0x7f) | 0x80;
      n = Math.floor(n / 128);
    }
    b[this.at++] = n;
  }
}

/** A batch message, read row by row without an object per row. */
export class BatchReader {
  readonly header: BatchHeader;
  private at: number;
  private readonly end: number;
  /** The segment being read, decoded; the next segment's byte offset and index. */
  private text = '';
  private textByte: number;
  private segment = 0;
  private pos = 0;
  /** The current item: its line, and its fields (a row) or reason and raw line (a reject). */
  line = 0;
  readonly fields: string[];
  reason = '';
  raw = '';

  constructor(private readonly buf: Buffer) {
    if (buf.length < 4) throw new Error('a batch shorter than its length prefix');
    const h = buf.readUInt32BE(0);
    if (4 + h > buf.length) throw new Error('a batch header runs past the message');
    const header = JSON.parse(buf.toString('utf8', 4, 4 + h)) as BatchHeader;
    if (header?.type !== 'rows' || header.v !== 1 || !(Number.isInteger(header.index) && header.index >= 0 && 4 + h + header.index <= buf.length)) throw new Error('not a batch of rows');
    if (!(Number.isInteger(header.columns) && header.columns > 0 && header.columns <= 100_000)) throw new Error('a batch with a bad column count');
    const segments = header.segments;
    if (!Array.isArray(segments) || segments.some((n) => !(Number.isInteger(n) && n > 0)) || segments.reduce((a, n) => a + n, 0) !== buf.length - 4 - h - header.index) {
      throw new Error('a batch whose text segments do not add up');
    }
    this.header = header;
    this.at = 4 + h;
    this.end = 4 + h + header.index;
    this.textByte = this.end;
    this.fields = new Array<string>(header.columns);
  }

  /** Moves to the next item: 'row', 'reject', or null at the end. */
  next(): 'row' | 'reject' | null {
    if (this.pos >= this.text.length) {
      // The segment is read: the next item begins the next one.
      if (this.pos > this.text.length) throw new Error('a batch whose index runs past its text');
      if (this.segment < this.header.segments.length) {
        const n = this.header.segments[this.segment++]!;
        this.text = this.buf.toString(this.header.ascii ? 'latin1' : 'utf8', this.textByte, this.textByte + n);
        this.textByte += n;
        this.pos = 0;
      }
    }
    if (this.at >= this.end) {
      if (this.pos !== this.text.length || this.segment !== this.header.segments.length) throw new Error('a batch whose text is longer than its index says');
      return null;
    }
    const v = this.varint();
    this.line = this.header.first + Math.floor(v / 2);
    const t = this.text;
    let pos = this.pos;
    if (v % 2 === 0) {
      const f = this.fields;
      for (let i = 0; i < f.length; i++) {
        const n = this.varint();
        f[i] = t.slice(pos, pos + n);
        pos += n + 1;
      }
      this.pos = pos - 1;
      if (this.pos > t.length) throw new Error('a batch whose index runs past its text');
      return 'row';
    }
    const n = this.varint();
    this.reason = t.slice(pos, pos + n);
    pos += n + 1;
    const m = this.varint();
    this.raw = t.slice(pos, pos + m);
    this.pos = pos + m;
    if (this.pos > t.length) throw new Error('a batch whose index runs past its text');
    return 'reject';
  }

  private varint(): number {
    const b = this.buf;
    let n = 0;
    let scale = 1;
    for (;;) {
      if (this.at >= this.end) throw new Error('a batch index cut short');
      const c = b[this.at++]!;
      n += (c & 0x7f) * scale;
      if (c < 0x80) return n;
      scale *= 128;
      if (scale > 2 ** 49) throw new Error('a batch index with a varint too long');
    }
  }
}
