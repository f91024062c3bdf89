import { isUtf8 } from 'node:buffer';

/**
 * RFC 4180 records over bytes. One rule decides where records start, and the File Catcher's
 * chunking and every worker apply it the same way, so a chunk boundary is always a record start:
 *   - a record ends at a newline outside quotes (LF or CRLF); quoted fields may hold commas,
 *     doubled quotes and newlines;
 *   - a record that is not valid (broken quoting, invalid UTF-8, wrong field count, longer than
 *     MAX_RECORD) is rejected as its first physical line only, and reading goes on at the next
 *     line, so one bad row never swallows good ones.
 */

export const MAX_RECORD = 1024 * 1024;
const NL = 0x0a;
const CR = 0x0d;
const QUOTE = 0x22;

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
  row(r: Row, start: number): void;
  reject(r: Reject, start: number): void;
}

/** Splits one record's text into fields; a string is an error. */
export function splitFields(s: string): string[] | string {
  const fields: string[] = [];
  let i = 0;
  const n = s.length;
  for (;;) {
    if (s.charCodeAt(i) === QUOTE) {
      let j = i + 1;
      let val = '';
      for (;;) {
        const k = s.indexOf('"', j);
        if (k < 0) return 'unterminated quoted field';
        if (s.charCodeAt(k + 1) === QUOTE) {
          val += s.slice(j, k) + '"';
          j = k + 2;
          continue;
        }
        val += s.slice(j, k);
        i = k + 1;
        break;
      }
      if (i < n && s.charCodeAt(i) !== 0x2c) return 'text after a closing quote';
      fields.push(val);
    } else {
      const k = s.indexOf(',', i);
      const end = k < 0 ? n : k;
      const val = s.slice(i, end);
      if (val.includes('"')) return 'quote inside an unquoted field';
      fields.push(val);
      i = end;
    }
    if (i >= n) return fields;
    i++; // the comma
    if (i === n) {
      fields.push('');
      return fields;
    }
  }
}

function countNewlines(buf: Buffer, from: number, to: number): number {
  let c = 0;
  for (let i = buf.indexOf(NL, from); i >= 0 && i < to; i = buf.indexOf(NL, i + 1)) c++;
  return c;
}

function rawLine(buf: Buffer, start: number, nl: number): string {
  const end = nl > start && buf[nl - 1] === CR ? nl - 1 : nl;
  return buf.toString('utf8', start, Math.min(end, start + 1000));
}

/**
 * Reads records from `buf` starting at `state`, up to `limit` (exclusive; a record starting
 * before it is read whole). With `final` false, stops before a record that may continue past the
 * buffer's end. `columns` 0 accepts any field count (used for the header). Returns the new state.
 */
export function scan(buf: Buffer, state: ScanState, opts: { limit?: number; final: boolean; columns: number }, sink: ScanSink): ScanState {
  let p = state.offset;
  let line = state.line;
  const limit = Math.min(opts.limit ?? buf.length, buf.length);
  while (p < limit) {
    let nl = buf.indexOf(NL, p);
    if (nl < 0) {
      if (!opts.final) break;
      nl = buf.length;
    }
    const q = buf.indexOf(QUOTE, p);
    let end = nl; // end of the record (its newline, or the buffer's end)
    let lines = 1;
    let error: string | null = null;
    if (q >= 0 && q < nl) {
      // Quoted content: the record ends at the first newline outside quotes.
      let inQuotes = false;
      let i = p;
      end = -1;
      for (; i < buf.length && i - p <= MAX_RECORD; i++) {
        const c = buf[i];
        if (c === QUOTE) inQuotes = !inQuotes;
        else if (c === NL && !inQuotes) {
          end = i;
          break;
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
    if (!error) {
      const stop = end > p && buf[end - 1] === CR ? end - 1 : end;
      if (stop === p && !(q >= 0 && q < nl)) {
        // A blank line is no record.
        p = nl + 1;
        line++;
        continue;
      }
      if (!isUtf8(buf.subarray(p, stop))) error = 'invalid UTF-8';
      else {
        const fields = splitFields(buf.toString('utf8', p, stop));
        if (typeof fields === 'string') error = fields;
        else if (opts.columns > 0 && fields.length !== opts.columns) error = `expected ${opts.columns} fields, found ${fields.length}`;
        else {
          sink.row({ line, fields }, p);
          p = end + 1;
          line += lines;
          continue;
        }
      }
    }
    // Reject the first physical line only and go on with the next one.
    sink.reject({ line, reason: error, raw: rawLine(buf, p, nl) }, p);
    p = nl + 1;
    line++;
  }
  return { offset: p, line };
}
