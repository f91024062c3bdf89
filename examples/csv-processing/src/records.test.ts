import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { importFile } from './baseline.js';
import { planFile } from './chunking.js';
import { generateCsv } from './generate.js';
import { scan, splitFields, type Reject, type Row } from './records.js';

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

  it('an empty file or a bad header is a clear error', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'csv-'));
    writeFileSync(join(dir, 'empty.csv'), '');
    await expect(importFile(join(dir, 'empty.csv'))).rejects.toThrow(/empty/);
    writeFileSync(join(dir, 'bad.csv'), '"a,b\n');
    await expect(importFile(join(dir, 'bad.csv'))).rejects.toThrow(/header/);
  });
});
