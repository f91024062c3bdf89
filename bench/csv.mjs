#!/usr/bin/env node
// The case study's throughput: `npm run sim` with 1, 2 and 4 children on the same CSV, beside a
// single-process importer that reads the same CSV and writes the same SQLite table directly
// (the limit on one machine), as ratios.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { jsonOut, root, table, writeJson } from './lib/common.mjs';

const ROWS = Number(process.env.BENCH_ROWS ?? 500_000);
const ex = join(root, 'examples/csv-processing/dist');
const { generateCsv } = await import(join(ex, 'generate.js'));
const { importFile } = await import(join(ex, 'baseline.js'));
const { TargetDatabase } = await import(join(ex, 'database.js'));

const dir = mkdtempSync(join(tmpdir(), 'rack-bench-csv-'));
const csv = join(dir, 'bench.csv');
const gen = await generateCsv(csv, { rows: ROWS });
console.log(`CSV: ${ROWS.toLocaleString('en-US')} rows, ${(gen.bytes / 1e6).toFixed(1)} MB`);

const t0 = performance.now();
const db = new TargetDatabase(join(dir, 'baseline.db'));
await importFile(csv, db);
db.close();
const baseMs = performance.now() - t0;
const results = { rows: ROWS, bytes: gen.bytes, single_process: { elapsed_ms: Math.round(baseMs), rows_per_s: Math.round(ROWS / (baseMs / 1000)) }, sim: {} };

for (const n of [1, 2, 4]) {
  const out = execFileSync(process.execPath, [join(ex, 'sim.js'), '--csv', csv, '--max-children', String(n), '--chunk-size', '1024', '--json'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'], maxBuffer: 256 * 1024 * 1024 });
  const r = JSON.parse(out.trim().split('\n').pop());
  if (!r.verified) throw new Error(`sim with ${n} children did not verify`);
  results.sim[n] = { elapsed_ms: r.elapsed_ms, rows_per_s: r.rows_per_s, ratio_to_single: Math.round((r.rows_per_s / results.single_process.rows_per_s) * 100) / 100 };
}
table(`CSV case study, ${ROWS.toLocaleString('en-US')} rows`, ['importer', 'elapsed', 'rows/s', 'vs single process'], [
  ['single process, direct SQLite (the limit)', `${(baseMs / 1000).toFixed(1)} s`, results.single_process.rows_per_s, '1.00'],
  ...[1, 2, 4].map((n) => [`RACK sim, ${n} child VM${n > 1 ? 's' : ''}`, `${(results.sim[n].elapsed_ms / 1000).toFixed(1)} s`, results.sim[n].rows_per_s, results.sim[n].ratio_to_single.toFixed(2)]),
]);
rmSync(dir, { recursive: true, force: true });
writeJson(jsonOut(), results);
