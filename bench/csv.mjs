#!/usr/bin/env node
// The case study's throughput: `npm run sim` with 1, 2 and 4 children on the same CSV, each beside
// a run of the single-process importer that reads the same CSV and writes the same SQLite table
// directly (the limit on one machine), as ratios.
//
// On a machine shared with other work the load moves by the minute: each sim run is paired with a
// baseline run made right before it, both as fresh processes (a cold V8 each, as the sim's VMs
// have), and its ratio is to that run. BENCH_ROUNDS=N repeats the pairs and reports medians.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { jsonOut, root, table, writeJson } from './lib/common.mjs';

const ROWS = Number(process.env.BENCH_ROWS ?? 500_000);
const ROUNDS = Math.max(1, Number(process.env.BENCH_ROUNDS ?? 1));
const ex = join(root, 'examples/csv-processing/dist');
const { generateCsv } = await import(join(ex, 'generate.js'));

const dir = mkdtempSync(join(tmpdir(), 'rack-bench-csv-'));
const csv = join(dir, 'bench.csv');
const gen = await generateCsv(csv, { rows: ROWS });
console.log(`CSV: ${ROWS.toLocaleString('en-US')} rows, ${(gen.bytes / 1e6).toFixed(1)} MB; ${ROUNDS} round${ROUNDS > 1 ? 's' : ''}`);

// The single-process importer in a process of its own: its elapsed time, from opening the table to closing it.
const BASELINE = `
  const [ex, csv, db] = process.argv.slice(1);
  const { importFile } = await import(ex + '/baseline.js');
  const { TargetDatabase } = await import(ex + '/database.js');
  const t0 = performance.now();
  const t = new TargetDatabase(db);
  await importFile(csv, t);
  t.close();
  console.log(Math.round(performance.now() - t0));
`;
let baselines = 0;
const baseline = () => {
  const db = join(dir, `baseline-${++baselines}.db`);
  const ms = Number(execFileSync(process.execPath, ['--input-type=module', '-e', BASELINE, ex, csv, db], { encoding: 'utf8' }).trim());
  for (const s of ['', '-wal', '-shm']) rmSync(db + s, { force: true });
  return ms;
};
const sim = (n) => {
  const out = execFileSync(process.execPath, [join(ex, 'sim.js'), '--csv', csv, '--max-children', String(n), '--chunk-size', '1024', '--json'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'], maxBuffer: 256 * 1024 * 1024 });
  const r = JSON.parse(out.trim().split('\n').pop());
  if (!r.verified) throw new Error(`sim with ${n} children did not verify`);
  return r.elapsed_ms;
};

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor((xs.length - 1) / 2)];
const load = [loadavg()[0]];
const runs = { 1: [], 2: [], 4: [] };
for (let round = 0; round < ROUNDS; round++) {
  for (const n of [1, 2, 4]) {
    const base = baseline();
    const ms = sim(n);
    runs[n].push({ baseline_ms: base, sim_ms: ms, ratio: Math.round((base / ms) * 100) / 100 });
  }
}
load.push(loadavg()[0]);
const allBase = Object.values(runs).flat().map((r) => r.baseline_ms);
const baseMs = median(allBase);
const results = {
  rows: ROWS,
  bytes: gen.bytes,
  rounds: ROUNDS,
  load_average: { start: Math.round(load[0] * 100) / 100, end: Math.round(load[1] * 100) / 100 },
  single_process: { elapsed_ms: baseMs, rows_per_s: Math.round(ROWS / (baseMs / 1000)), runs_ms: allBase },
  sim: {},
};
for (const n of [1, 2, 4]) {
  const ms = median(runs[n].map((r) => r.sim_ms));
  results.sim[n] = { elapsed_ms: ms, rows_per_s: Math.round(ROWS / (ms / 1000)), ratio_to_single: median(runs[n].map((r) => r.ratio)), runs: runs[n] };
}
table(`CSV case study, ${ROWS.toLocaleString('en-US')} rows (load average ${results.load_average.start} at the start, ${results.load_average.end} at the end)`, ['importer', 'elapsed', 'rows/s', 'vs single process (its own baseline run)'], [
  ['single process, direct SQLite (the limit)', `${(baseMs / 1000).toFixed(1)} s`, results.single_process.rows_per_s, '1.00'],
  ...[1, 2, 4].map((n) => [`RACK sim, ${n} child VM${n > 1 ? 's' : ''}`, `${(results.sim[n].elapsed_ms / 1000).toFixed(1)} s`, results.sim[n].rows_per_s, `${results.sim[n].ratio_to_single.toFixed(2)}${ROUNDS > 1 ? `  (${runs[n].map((r) => r.ratio.toFixed(2)).join(' / ')})` : ''}`]),
]);
rmSync(dir, { recursive: true, force: true });
writeJson(jsonOut(), results);
