import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { isUtf8 } from 'node:buffer';
import { describe, expect, it } from 'vitest';
import { MAX_MESSAGE as KERNEL_MAX_MESSAGE } from '../../../src/ipc/messaging.js';
import { importFile } from './baseline.js';
import { BatchReader, BatchWriter, MAX_MESSAGE } from './batch.js';
import { RowChecksum } from './checksum.js';
import { planChunks, planFile, type ChunkStart } from './chunking.js';
import { TargetDatabase } from './database.js';
import { generateCsv } from './generate.js';
import { MAX_RECORD, rawLine, scan, splitFields, walk, type Reject, type Row, type ScanState } from './records.js';

function parseAll(text: string | Buffer, columns = 3): { rows: Row[]; rejects: Reject[] } {
  const rows: Row[] = [];
  const rejects: Reject[] = [];
  scan(Buffer.isBuffer(text) ? text : Buffer.from(text), { offset: 0, line: 1 }, { final: true, columns }, { row: (r) => rows.push(r), reject: (r) => rejects.push(r) });
  return { rows, rejects };
}

describe('RFC 4180 records', () => {
  it('splits fields with quotes, doubled quotes, commas and newlines; LF and CRLF', () => {
    expect(splitFields('a,"b,c","d""e"')).toEqual(['a', 'b,c', 'd"e']);
    expect(splitFields('a,,')).toEqual(['a', '', '']);
    const { rows, rejects } = parseAll('1,"multi\nline",x\r\n2,"crlf\r\ninside","q""uote"\r\n3,plain,z');
    expect(rejects).toEqual([]);
    expect(rows).toEqual([
      { line: 1, fields: ['1', 'multi\nline', 'x'] },
      { line: 3, fields: ['2', 'crlf\r\ninside', 'q"uote'] },
      { line: 5, fields: ['3', 'plain', 'z'] },
    ]);
  });

  it('rejects a bad row by its first line and goes on with the next', () => {
    const bad = Buffer.concat([Buffer.from('1,a,b\n2,"broken "quote,x\n3,only two\n4,'), Buffer.from([0xff, 0xfe]), Buffer.from(',x\n5,"ok, fine",y\n6,"never closed,z\n7,a,b\n')]);
    const { rows, rejects } = parseAll(bad);
    expect(rows.map((r) => r.line)).toEqual([1, 5, 7]);
    expect(rejects.map((r) => [r.line, r.reason])).toEqual([
      [2, 'text after a closing quote'],
      [3, 'expected 3 fields, found 2'],
      [4, 'invalid UTF-8'],
      [6, 'unterminated quoted field'],
    ]);
  });

  it('chunks cut only at record starts, and chunk-by-chunk parsing equals whole-file parsing', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'csv-'));
    const file = join(dir, 'in.csv');
    const gen = await generateCsv(file, { rows: 20_000, broken: 0.01, crlf: true });
    const whole = await importFile(file);
    expect(whole.rejectLines).toEqual(gen.brokenLines);
    expect(whole.rows).toBe(20_000 - gen.brokenLines.length);
    const plan = await planFile(file, { chunkSize: 100_000, max: 7 });
    expect(plan.chunks.length).toBe(7);
    expect(plan.header).toEqual(['id', 'name', 'email', 'city', 'amount', 'date', 'note']);
    const { readFileSync } = await import('node:fs');
    const bytes = readFileSync(file);
    const lines: number[] = [];
    const rejected: number[] = [];
    for (const c of plan.chunks) {
      scan(bytes.subarray(0, c.end), { offset: c.start, line: c.firstLine }, { final: true, columns: 7 }, { row: (r) => lines.push(r.line), reject: (r) => rejected.push(r.line) });
    }
    expect(rejected).toEqual(gen.brokenLines);
    expect(lines.length).toBe(whole.rows);
    expect(new Set(lines).size).toBe(lines.length);
  });

  it('a child given only where its chunk starts and the cut finds the end the plan found', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'csv-'));
    const { readFileSync, createReadStream } = await import('node:fs');
    // A generated file, and one whose records are long next to the chunks (one spans several cuts).
    const generated = join(dir, 'gen.csv');
    await generateCsv(generated, { rows: 20_000, broken: 0.01 });
    const long = join(dir, 'long.csv');
    writeFileSync(long, `a,b\n1,x\n2,"${'y\n'.repeat(300)}"\n3,z\n4,${'w'.repeat(900)}\n5,v\n6,u\n`);
    for (const [file, chunkSize, max] of [[generated, 100_000, 7], [long, 100, 9]] as const) {
      const bytes = readFileSync(file);
      const starts: ChunkStart[] = [];
      const plan = await planChunks(createReadStream(file, { highWaterMark: 4096 }), bytes.length, { chunkSize, max }, { start: (c) => starts.push(c) });
      expect(starts.map((c) => c.start)).toEqual(plan.chunks.map((c) => c.start));
      // The last chunk runs to the end of the file (with fewer chunks than asked, no record starts past its cut).
      if (plan.chunks.length === max) expect(starts.at(-1)!.cut).toBe(null);
      else expect(plan.chunks.length).toBeLessThan(max);
      for (const c of starts) {
        const columns = plan.header.length;
        const s = walk(bytes, { offset: c.start, line: c.firstLine }, { final: true, columns, limit: c.cut === null ? undefined : Math.max(c.cut, c.start + 1) }, { row() {}, reject() {} });
        const next = plan.chunks[c.index + 1];
        expect(s.offset, `${file} chunk ${c.index}`).toBe(next ? next.start : bytes.length);
        if (next) expect(s.line).toBe(next.firstLine);
      }
    }
  });

  it('an empty file or a bad header is a clear error', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'csv-'));
    writeFileSync(join(dir, 'empty.csv'), '');
    await expect(importFile(join(dir, 'empty.csv'))).rejects.toThrow(/empty/);
    writeFileSync(join(dir, 'bad.csv'), '"a,b\n');
    await expect(importFile(join(dir, 'bad.csv'))).rejects.toThrow(/header/);
  });
});

/**
 * The record rule written the plain way (a byte loop for quoted records, the text split as a
 * string): what records.ts did before it worked on bytes, kept here to check it against.
 */
function referenceScan(buf: Buffer, state: ScanState, opts: { final: boolean; columns: number }): { rows: Row[]; rejects: Reject[]; state: ScanState } {
  const rows: Row[] = [];
  const rejects: Reject[] = [];
  const split = (s: string): string[] | string => {
    const fields: string[] = [];
    let i = 0;
    for (;;) {
      if (s.charCodeAt(i) === 0x22) {
        let j = i + 1;
        let val = '';
        for (;;) {
          const k = s.indexOf('"', j);
          if (k < 0) return 'unterminated quoted field';
          if (s.charCodeAt(k + 1) === 0x22) {
            val += s.slice(j, k) + '"';
            j = k + 2;
            continue;
          }
          val += s.slice(j, k);
          i = k + 1;
          break;
        }
        if (i < s.length && s.charCodeAt(i) !== 0x2c) return 'text after a closing quote';
        fields.push(val);
      } else {
        const k = s.indexOf(',', i);
        const end = k < 0 ? s.length : k;
        const val = s.slice(i, end);
        if (val.includes('"')) return 'quote inside an unquoted field';
        fields.push(val);
        i = end;
      }
      if (i >= s.length) return fields;
      i++;
      if (i === s.length) {
        fields.push('');
        return fields;
      }
    }
  };
  let p = state.offset;
  let line = state.line;
  while (p < buf.length) {
    let nl = buf.indexOf(0x0a, p);
    if (nl < 0) {
      if (!opts.final) break;
      nl = buf.length;
    }
    const q = buf.indexOf(0x22, p);
    const quoted = q >= 0 && q < nl;
    let end = nl;
    let lines = 1;
    let error: string | null = null;
    if (quoted) {
      let inQuotes = false;
      let i = p;
      end = -1;
      for (; i < buf.length && i - p <= MAX_RECORD; i++) {
        if (buf[i] === 0x22) inQuotes = !inQuotes;
        else if (buf[i] === 0x0a && !inQuotes) {
          end = i;
          break;
        }
      }
      if (end < 0) {
        if (i - p > MAX_RECORD) error = `a quoted field runs past ${MAX_RECORD} bytes`;
        else if (!opts.final) break;
        else if (inQuotes) error = 'unterminated quoted field';
        else end = buf.length;
      }
      if (!error) lines = buf.subarray(p, end).toString('latin1').split('\n').length;
    }
    if (!error && end - p > MAX_RECORD) error = `a record runs past ${MAX_RECORD} bytes`;
    if (!error) {
      const stop = end > p && buf[end - 1] === 0x0d ? end - 1 : end;
      if (stop === p && !quoted) {
        p = nl + 1;
        line++;
        continue;
      }
      if (!isUtf8(buf.subarray(p, stop))) error = 'invalid UTF-8';
      else {
        const fields = split(buf.toString('utf8', p, stop));
        if (typeof fields === 'string') error = fields;
        else if (opts.columns > 0 && fields.length !== opts.columns) error = `expected ${opts.columns} fields, found ${fields.length}`;
        else {
          rows.push({ line, fields });
          p = end + 1;
          line += lines;
          continue;
        }
      }
    }
    rejects.push({ line, reason: error!, raw: rawLine(buf, p, nl) });
    p = nl + 1;
    line++;
  }
  return { rows, rejects, state: { offset: p, line } };
}

/** A small deterministic PRNG (the tests' inputs are the same every run). */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = Math.imul(a ^ (a >>> 15), a | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Random CSV-ish bytes: mostly records of `columns` fields, with every kind of trouble mixed in. */
function randomCsv(rand: () => number, records: number, columns: number): Buffer {
  const pieces = ['a', 'bc', 'x y', '', 'é', '東京', '😀', '"', '""', ',', '\n', '\r\n', '"q,"', '"multi\nline"', '"say ""hi"""', ' '];
  const parts: Buffer[] = [];
  for (let r = 0; r < records; r++) {
    const kind = rand();
    if (kind < 0.75) {
      // A well-formed record, fields quoted or not.
      const fields = Array.from({ length: columns }, () => {
        const v = Array.from({ length: Math.floor(rand() * 4) }, () => ['a', 'é', '😀', ',', '"', '\n', 'z9'][Math.floor(rand() * 7)]!).join('');
        return /[",\r\n]/.test(v) || rand() < 0.2 ? `"${v.replace(/"/g, '""')}"` : v;
      });
      parts.push(Buffer.from(fields.join(',') + (rand() < 0.3 ? '\r\n' : '\n')));
    } else if (kind < 0.97) {
      // Noise.
      parts.push(Buffer.from(Array.from({ length: 1 + Math.floor(rand() * 8) }, () => pieces[Math.floor(rand() * pieces.length)]).join('')));
    } else parts.push(Buffer.from([0xff, 0xc3, 0x28, 0xe2, 0x82][Math.floor(rand() * 5)]!.toString(16) === 'ff' ? [0xff, 0x0a] : [0xc3, 0x28, 0x2c, 0x0a]));
  }
  return Buffer.concat(parts);
}

function scanAll(buf: Buffer, columns: number, final = true): { rows: Row[]; rejects: Reject[]; state: ScanState } {
  const rows: Row[] = [];
  const rejects: Reject[] = [];
  const state = scan(buf, { offset: 0, line: 1 }, { final, columns }, { row: (r) => rows.push(r), reject: (r) => rejects.push(r) });
  return { rows, rejects, state };
}

describe('the record rule on bytes', () => {
  it('agrees with the plain byte-loop-and-string reference on random input, whole and read in pieces', () => {
    const rand = prng(11);
    for (let round = 0; round < 300; round++) {
      const columns = 1 + Math.floor(rand() * 4);
      const buf = randomCsv(rand, 1 + Math.floor(rand() * 40), columns);
      const cols = rand() < 0.1 ? 0 : columns;
      for (const final of [true, false]) expect(scanAll(buf, cols, final), `round ${round}`).toEqual(referenceScan(buf, { offset: 0, line: 1 }, { final, columns: cols }));
      // In pieces, as the workers and the importer read: the same records.
      const whole = scanAll(buf, cols);
      const rows: Row[] = [];
      const rejects: Reject[] = [];
      let tail = Buffer.alloc(0);
      let line = 1;
      for (let at = 0; at < buf.length; ) {
        const n = 1 + Math.floor(rand() * 64);
        const piece = Buffer.concat([tail, buf.subarray(at, at + n)]);
        at += n;
        const s = scan(piece, { offset: 0, line }, { final: at >= buf.length, columns: cols }, { row: (r) => rows.push(r), reject: (r) => rejects.push(r) });
        tail = piece.subarray(s.offset);
        line = s.line;
      }
      expect({ rows, rejects }, `round ${round} in pieces`).toEqual({ rows: whole.rows, rejects: whole.rejects });
    }
  });

  it('rejects a record longer than MAX_RECORD, quoted or not, and goes on at its next line', () => {
    const long = 'x'.repeat(MAX_RECORD + 10);
    const { rows, rejects } = parseAll(`1,a,b\n2,${long},c\n3,"${long}",d\n4,e,f\n`);
    expect(rows.map((r) => r.line)).toEqual([1, 4]);
    expect(rejects.map((r) => [r.line, r.reason, r.raw.length])).toEqual([
      [2, `a record runs past ${MAX_RECORD} bytes`, 1000],
      [3, `a quoted field runs past ${MAX_RECORD} bytes`, 1000],
    ]);
    // A record of exactly MAX_RECORD bytes is a record.
    const exact = `5,${'y'.repeat(MAX_RECORD - 5)},z`;
    expect(Buffer.byteLength(exact + '\n')).toBe(MAX_RECORD);
    expect(parseAll(exact + '\n').rows.map((r) => r.line)).toEqual([1]);
  });
});

/** Every record of `buf` through batches of at most `limit` bytes and back. */
function roundTrip(buf: Buffer, columns: number, limit: number): { rows: Row[]; rejects: Reject[]; batches: Buffer[] } {
  const batches: Buffer[] = [];
  const w = new BatchWriter('job', 3, columns, limit);
  const next = (): void => {
    batches.push(w.encode());
    w.reset();
  };
  walk(buf, { offset: 0, line: 1 }, { final: true, columns }, {
    row(line, f) {
      if (!w.addRecord(buf, f, line)) {
        next();
        expect(w.addRecord(buf, f, line)).toBe(true);
      }
    },
    reject(line, reason, start, nl) {
      const raw = rawLine(buf, start, nl);
      if (!w.addReject(line, reason, raw)) {
        next();
        expect(w.addReject(line, reason, raw)).toBe(true);
      }
    },
  });
  if (!w.empty) next();
  const rows: Row[] = [];
  const rejects: Reject[] = [];
  for (const b of batches) {
    expect(b.length).toBeLessThanOrEqual(limit);
    const r = new BatchReader(b);
    expect(r.header).toMatchObject({ job: 'job', chunk: 3, columns });
    for (let k = r.next(); k !== null; k = r.next()) {
      if (k === 'row') rows.push({ line: r.line, fields: [...r.fields] });
      else rejects.push({ line: r.line, reason: r.reason, raw: r.raw });
    }
  }
  return { rows, rejects, batches };
}

describe('batches of rows (the binary messages)', () => {
  it('carry every row and reject as the string parser reads them, in batches within their limit', () => {
    expect(MAX_MESSAGE).toBe(KERNEL_MAX_MESSAGE);
    const rand = prng(5);
    for (let round = 0; round < 100; round++) {
      const columns = 1 + Math.floor(rand() * 4);
      const buf = randomCsv(rand, 200 + Math.floor(rand() * 400), columns);
      const want = scanAll(buf, columns);
      for (const limit of [5000, 64 * 1024, MAX_MESSAGE]) {
        const got = roundTrip(buf, columns, limit);
        expect({ rows: got.rows, rejects: got.rejects }, `round ${round}, limit ${limit}`).toEqual({ rows: want.rows, rejects: want.rejects });
      }
    }
  });

  it('text decoded in segments: a megabyte batch of a generated CSV', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'csv-'));
    const file = join(dir, 'in.csv');
    await generateCsv(file, { rows: 12_000, broken: 0.01 });
    const { readFileSync } = await import('node:fs');
    const bytes = readFileSync(file);
    const body = bytes.subarray(bytes.indexOf(0x0a) + 1);
    const want = scanAll(body, 7);
    const got = roundTrip(body, 7, MAX_MESSAGE);
    expect(got.batches.length).toBe(1);
    expect(new BatchReader(got.batches[0]!).header.segments.length).toBeGreaterThan(10);
    expect(got.rows).toEqual(want.rows);
    expect(got.rejects).toEqual(want.rejects);
    expect(want.rejects.length).toBeGreaterThan(50);
  });

  it('a record of MAX_RECORD bytes fits in one message, whatever its fields (up to the 1,998 a table can hold)', () => {
    for (const columns of [1, 7, 300, 1998]) {
      for (const char of ['x', 'é', '😀', '"']) {
        // `columns` fields of about the same length, the record MAX_RECORD bytes with its newline.
        const width = Math.floor((MAX_RECORD - columns) / columns / Buffer.byteLength(char === '"' ? '""' : char));
        const field = char === '"' ? `"${'""'.repeat(width - 1)}"` : char.repeat(width);
        let record = Array.from({ length: columns }, () => field).join(',');
        const pad = 'z'.repeat(MAX_RECORD - 1 - Buffer.byteLength(record));
        record = char === '"' ? record.slice(0, -1) + pad + '"' : record + pad;
        const buf = Buffer.from(record + '\n');
        expect(buf.length).toBe(MAX_RECORD);
        const got = roundTrip(buf, columns, MAX_MESSAGE);
        expect(got.rejects).toEqual([]);
        expect(got.rows.length, `${columns} × ${char}`).toBe(1);
        expect(got.batches.length).toBe(1);
      }
    }
  });
});

describe('the Target Database', () => {
  it('stores a batch sent twice once, and its running checksum is the table read back', () => {
    const dir = mkdtempSync(join(tmpdir(), 'csv-db-'));
    const db = new TargetDatabase(join(dir, 't.db'));
    db.prepare(['a', 'b', 'c']);
    const buf = Buffer.from('1,x,y\n2,"é, ""q""",z\nbad\n3,,😀\n');
    const { batches, rows } = roundTrip(buf, 3, MAX_MESSAGE);
    for (const b of [...batches, ...batches]) db.insertBatch(new BatchReader(b));
    const sum = new RowChecksum();
    for (const r of rows) sum.add(r.fields);
    expect(db.summary()).toEqual({ rows: 3, rejects: 1, checksum: sum.hex, chunks: 0 });
    expect(db.tableChecksum()).toEqual({ rows: 3, checksum: sum.hex });
    expect(db.rejectLines()).toEqual([3]);
    db.close();
  });
});
