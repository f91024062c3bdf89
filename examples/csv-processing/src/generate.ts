import { createWriteStream } from 'node:fs';
import { once } from 'node:events';

/** A small deterministic PRNG (mulberry32): the same seed gives the same CSV. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const CITIES = ['Tokyo', 'Osaka', 'Nagoya', 'Sapporo', 'Fukuoka', 'Kobe', 'Kyoto', 'Sendai', 'New York, NY', 'São Paulo', 'Zürich', '東京都'];
const NAMES = ['Sato', 'Suzuki', 'Takahashi', 'Tanaka', 'Watanabe', 'Ito', "O'Brien", 'Müller', 'Nakamura', 'Kobayashi'];
const NOTES = ['', 'ok', 'needs "review"', 'multi\nline note', 'comma, inside', 'CRLF\r\ninside', 'plain'];

export const HEADER = ['id', 'name', 'email', 'city', 'amount', 'date', 'note'];

function quote(v: string): string {
  return /[",\r\n]/.test(v) ? `"${v.replace(/"/g, '""')}"` : v;
}

export interface GenerateOptions {
  rows: number;
  seed?: number;
  /** Fraction of rows written broken (wrong field count, broken quoting, invalid UTF-8). */
  broken?: number;
  crlf?: boolean;
  onProgress?: (rowsWritten: number) => void;
}

export interface Generated {
  rows: number;
  bytes: number;
  /** Physical line numbers of the broken rows. */
  brokenLines: number[];
}

/** Writes a sample CSV (header + rows) to `path`, streaming; quoted fields hold commas, quotes and newlines. */
export async function generateCsv(path: string, opts: GenerateOptions): Promise<Generated> {
  const rand = prng(opts.seed ?? 42);
  const eol = opts.crlf ? '\r\n' : '\n';
  const out = createWriteStream(path);
  let bytes = 0;
  let line = 1;
  const brokenLines: number[] = [];
  let buf = HEADER.join(',') + eol;
  line++;
  const flush = async (): Promise<void> => {
    const b = Buffer.from(buf, 'utf8');
    bytes += b.length;
    buf = '';
    if (!out.write(b)) await once(out, 'drain');
  };
  for (let i = 1; i <= opts.rows; i++) {
    const name = NAMES[Math.floor(rand() * NAMES.length)]!;
    const fields = [
      String(i),
      `${name} ${i % 997}`,
      `user${i}@example.com`,
      CITIES[Math.floor(rand() * CITIES.length)]!,
      (rand() * 100000).toFixed(2),
      `2013-${String(1 + Math.floor(rand() * 12)).padStart(2, '0')}-${String(1 + Math.floor(rand() * 28)).padStart(2, '0')}`,
      NOTES[Math.floor(rand() * NOTES.length)]!,
    ];
    let record = fields.map(quote).join(',');
    if (opts.broken && rand() < opts.broken) {
      const kind = Math.floor(rand() * 3);
      if (kind === 0) record = fields.slice(0, 5).map(quote).join(','); // wrong field count
      else if (kind === 1) record = `${i},"broken "quote,x,y,1.00,2013-01-01,z`; // quote in the middle of a field
      else record = `${i},${name},user${i}@example.com,\u0000BAD,1.00,2013-01-01,x`; // placeholder for invalid UTF-8 below
      brokenLines.push(line);
      if (kind === 2) {
        buf += record.split('\u0000BAD')[0];
        await flush();
        const bad = Buffer.from([0xff, 0xfe, 0x41]);
        bytes += bad.length;
        if (!out.write(bad)) await once(out, 'drain');
        buf += record.split('\u0000BAD')[1] + eol;
        line++;
        continue;
      }
    }
    buf += record + eol;
    line += 1 + (record.match(/\n/g)?.length ?? 0);
    if (buf.length > 1 << 16) {
      await flush();
      opts.onProgress?.(i);
    }
  }
  await flush();
  out.end();
  await once(out, 'finish');
  return { rows: opts.rows, bytes, brokenLines };
}
