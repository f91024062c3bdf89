import { isUtf8 } from 'node:buffer';

/**
 * RFC 4180 records over bytes. One rule decides where records start, and the File Catcher's
 * chunking and every worker apply it the same way, so a chunk boundary is always a record start:
 *   - a record ends at a newline outside quotes (LF or CRLF); quoted fields may hold commas,
 *     doubled quotes and newlines;
 *   - a record that is not valid (broken quoting, invalid UTF-8, wrong field count, longer than
 *     MAX_RECORD) is rejected as its first physical line only, and reading goes on at the next
 *     line, so one bad row never swallows good ones.
 *
 * The rule works on the bytes (`walk`): commas, quotes and newlines are ASCII, and no byte of a
 * multi-byte UTF-8 character is, so finding them in the bytes is finding them in the text. Fields
 * become strings only for those who want strings (`scan`); a worker copies their bytes into its
 * batches as they are (batch.ts), and the File Catcher's planning needs no field at all.
 */

/**
 * The longest record, newlines included. A worker sends each valid record whole in one message
 * (batch.ts), and the kernel's messages are at most 1 MiB: a record of this size, encoded, fits in
 * one with room to spare.
 */
export const MAX_RECORD = 1024 * 1024 - 32 * 1024;
const NL = 0x0a;
const CR = 0x0d;
const QUOTE = 0x22;
const COMMA = 0x2c;

export interface Row {
  line: number;
  fields: string[];
}

export interface Reject {
  line: number;
  reason: string;
  raw: string;
}

export interface ScanState {
  /** Byte offset of the next record start. */
  offset: number;
  /** Physical line number (1-based) at `offset`. */
  line: number;
}

export interface ScanSink {
  /** A valid record that starts at byte `start` of the buffer; `next` is where reading goes on (past its newline). */
  row(r: Row, start: number, next: number): void;
  reject(r: Reject, start: number): void;
}

/**
 * A valid record's fields as byte ranges of the buffer: field k is bytes [at[3k], at[3k+1]), and
 * at[3k+2] is 1 when it holds doubled quotes ("") that stand for one quote each. A quoted field's
 * range is inside its quotes.
 */
export interface RecordFields {
  at: number[];
  count: number;
  /** Every byte of the record is ASCII (a character is a byte). */
  ascii: boolean;
  /** The record holds a quote: without one, its bytes are its fields joined by commas. */
  quoted: boolean;
  /** The record's bytes: [start, stop) (without its newline); reading goes on at `next`. */
  start: number;
  stop: number;
  next: number;
}

export interface RecordSink {
  row(line: number, f: RecordFields): void;
  /** An invalid record: its first physical line is bytes [start, nl) (nl: its newline or the buffer's end). */
  reject(line: number, reason: string, start: number, nl: number): void;
}

/**
 * Finds the fields of the record buf[p, stop) into `f.at` and whether it is all ASCII: the field
 * count, or what is wrong with it. One pass over the bytes; invalid UTF-8 comes first among the
 * faults, as if the record were decoded before it is split.
 */
function fieldsOf(buf: Buffer, p: number, stop: number, f: RecordFields): number | string {
  const at = f.at;
  let i = p;
  let n = 0;
  let high = 0; // the bytes OR-ed: 0x80 set when one is not ASCII
  let error: string | null = null;
  fields: for (;;) {
    if (i < stop && buf[i] === QUOTE) {
      let j = i + 1;
      let escaped = 0;
      for (;;) {
        let k = j;
        let c = 0;
        while (k < stop && (c = buf[k]!) !== QUOTE) {
          high |= c;
          k++;
        }
        if (k >= stop) {
          error = 'unterminated quoted field';
          break fields;
        }
        if (k + 1 < stop && buf[k + 1] === QUOTE) {
          escaped = 1;
          j = k + 2;
          continue;
        }
        at[3 * n] = i + 1;
        at[3 * n + 1] = k;
        at[3 * n + 2] = escaped;
        n++;
        i = k + 1;
        break;
      }
      if (i < stop && buf[i] !== COMMA) {
        error = 'text after a closing quote';
        break;
      }
    } else {
      let k = i;
      let c = 0;
      while (k < stop && (c = buf[k]!) !== COMMA) {
        if (c === QUOTE) {
          error = 'quote inside an unquoted field';
          break fields;
        }
        high |= c;
        k++;
      }
      at[3 * n] = i;
      at[3 * n + 1] = k;
      at[3 * n + 2] = 0;
      n++;
      i = k;
    }
    if (i >= stop) break;
    i++; // the comma
    if (i === stop) {
      at[3 * n] = i;
      at[3 * n + 1] = i;
      at[3 * n + 2] = 0;
      n++;
      break;
    }
  }
  // A fault found early leaves bytes unread: the whole record is checked then.
  if (error !== null || high >= 0x80) {
    if (!isUtf8(buf.subarray(p, stop))) return 'invalid UTF-8';
    if (error !== null) return error;
  }
  f.ascii = high < 0x80;
  return n;
}

function countNewlines(buf: Buffer, from: number, to: number): number {
  let c = 0;
  for (let i = buf.indexOf(NL, from); i >= 0 && i < to; i = buf.indexOf(NL, i + 1)) c++;
  return c;
}

/** A rejected record's first physical line as text (at most 1,000 bytes of it; bad UTF-8 replaced). */
export function rawLine(buf: Buffer, start: number, nl: number): string {
  const end = nl > start && buf[nl - 1] === CR ? nl - 1 : nl;
  return buf.toString('utf8', start, Math.min(end, start + 1000));
}

/**
 * Reads records from `buf` starting at `state`, up to `limit` (exclusive; a record starting
 * before it is read whole), and hands each to `sink` as byte ranges. With `final` false, stops
 * before a record that may continue past the buffer's end. `columns` 0 accepts any field count
 * (used for the header). Returns the new state.
 */
export function walk(buf: Buffer, state: ScanState, opts: { limit?: number; final: boolean; columns: number }, sink: RecordSink): ScanState {
  let p = state.offset;
  let line = state.line;
  const limit = Math.min(opts.limit ?? buf.length, buf.length);
  // `quote` is the first quote at or after `quoteFrom` (-1: none up to the buffer's end); it is
  // looked up again only when reading has passed it (or gone back, after a reject), so a file
  // with few quotes is not searched to its end for every record.
  let quote = -2;
  let quoteFrom = 0;
  const quoteAt = (from: number): number => {
    if (quote === -2 || from < quoteFrom || (quote >= 0 && quote < from)) {
      quote = buf.indexOf(QUOTE, from);
      quoteFrom = from;
    }
    return quote;
  };
  const f: RecordFields = { at: [], count: 0, ascii: true, quoted: false, start: 0, stop: 0, next: 0 };
  while (p < limit) {
    let nl = buf.indexOf(NL, p);
    if (nl < 0) {
      if (!opts.final) break;
      nl = buf.length;
    }
    const q = quoteAt(p);
    const quoted = q >= 0 && q < nl;
    let end = nl; // end of the record (its newline, or the buffer's end)
    let lines = 1;
    let error: string | null = null;
    if (quoted) {
      // Quoted content: the record ends at the first newline outside quotes. Quotes toggle; a
      // newline counts only between a closing quote and the next opening one.
      const max = Math.min(buf.length, p + MAX_RECORD + 1);
      let inQuotes = false;
      let i = p;
      end = -1;
      while (i < max) {
        const nq = quoteAt(i);
        if (inQuotes) {
          if (nq < 0 || nq >= max) {
            i = max;
            break;
          }
          inQuotes = false;
          i = nq + 1;
        } else {
          let n = buf.indexOf(NL, i);
          if (n >= max) n = -1;
          if (n >= 0 && (nq < 0 || n < nq)) {
            end = n;
            break;
          }
          if (nq < 0 || nq >= max) {
            i = max;
            break;
          }
          inQuotes = true;
          i = nq + 1;
        }
      }
      if (end < 0) {
        if (i - p > MAX_RECORD) error = `a quoted field runs past ${MAX_RECORD} bytes`;
        else if (!opts.final) break; // the record may go on in the next buffer
        else if (inQuotes) error = 'unterminated quoted field';
        else end = buf.length;
      }
      if (!error) lines = countNewlines(buf, p, end) + 1;
    }
    if (!error && end - p > MAX_RECORD) error = `a record runs past ${MAX_RECORD} bytes`;
    if (!error) {
      const stop = end > p && buf[end - 1] === CR ? end - 1 : end;
      if (stop === p && !quoted) {
        // A blank line is no record.
        p = nl + 1;
        line++;
        continue;
      }
      const n = fieldsOf(buf, p, stop, f);
      if (typeof n === 'string') error = n;
      else if (opts.columns > 0 && n !== opts.columns) error = `expected ${opts.columns} fields, found ${n}`;
      else {
        f.count = n;
        f.quoted = quoted;
        f.start = p;
        f.stop = stop;
        f.next = end + 1;
        sink.row(line, f);
        p = end + 1;
        line += lines;
        continue;
      }
    }
    // Reject the first physical line only and go on with the next one.
    sink.reject(line, error, p, nl);
    p = nl + 1;
    line++;
  }
  return { offset: p, line };
}

/** A record's fields as strings. */
export function fieldTexts(buf: Buffer, f: RecordFields): string[] {
  const out = new Array<string>(f.count);
  const at = f.at;
  // ASCII: one string for the record, its fields slices of it (a byte is a character).
  const s = f.ascii ? buf.toString('latin1', f.start, f.stop) : null;
  for (let k = 0; k < f.count; k++) {
    const a = at[3 * k]!;
    const b = at[3 * k + 1]!;
    const t = s !== null ? s.slice(a - f.start, b - f.start) : buf.toString('utf8', a, b);
    out[k] = at[3 * k + 2] ? t.replaceAll('""', '"') : t;
  }
  return out;
}

/** `walk`, with each record's fields as strings. */
export function scan(buf: Buffer, state: ScanState, opts: { limit?: number; final: boolean; columns: number }, sink: ScanSink): ScanState {
  return walk(buf, state, opts, {
    row: (line, f) => sink.row({ line, fields: fieldTexts(buf, f) }, f.start, f.next),
    reject: (line, reason, start, nl) => sink.reject({ line, reason, raw: rawLine(buf, start, nl) }, start),
  });
}

/** Splits one record's text into fields; a string is an error. */
export function splitFields(s: string): string[] | string {
  const buf = Buffer.from(s);
  const f: RecordFields = { at: [], count: 0, ascii: true, quoted: true, start: 0, stop: buf.length, next: buf.length };
  const n = fieldsOf(buf, 0, buf.length, f);
  if (typeof n === 'string') return n;
  f.count = n;
  return fieldTexts(buf, f);
}
