#!/usr/bin/env node
// `npm run bench`: runs every benchmark in this folder in one go, each beside its reference, and
// records the machine and date with the figures in bench/results.json, then prints them all as
// ratios beside their limits and rewrites README's table from them (bench/summary.mjs).
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { cpus, totalmem, release } from 'node:os';
import { join } from 'node:path';
import { text, writeReadme } from './summary.mjs';

const here = import.meta.dirname;
const only = process.argv.slice(2);
const suites = ['dckinit.mjs', 'fork.mjs', 'ipc.mjs', 'csv.mjs', 'nspawn.mjs', 'scale.mjs', 'agents.mjs', 'kernels.mjs', 'limits.mjs', 'openstack.mjs'].filter((s) => existsSync(join(here, s)) && (only.length === 0 || only.some((o) => s.startsWith(o))));

const machine = {
  cpu: cpus()[0]?.model ?? 'unknown',
  cores: cpus().length,
  memory_gib: Math.round(totalmem() / 2 ** 30),
  kernel: release(),
  node: process.version,
};
console.log(`RACK benchmarks on ${machine.cores} × ${machine.cpu}, ${machine.memory_gib} GiB, Linux ${machine.kernel}, Node ${machine.node}`);

// Running a few suites keeps the others' last figures (each suite records its own date).
const file = join(here, 'results.json');
const previous = only.length > 0 && existsSync(file) ? JSON.parse(readFileSync(file, 'utf8')).suites ?? {} : {};
const results = { date: new Date().toISOString(), machine, suites: { ...previous } };
let failed = false;
for (const suite of suites) {
  console.log(`\n== ${suite.replace('.mjs', '')} ==`);
  const out = join(here, `.${suite}.json`);
  // --expose-gc: a suite that weighs memory collects garbage before each reading.
  const r = spawnSync(process.execPath, ['--expose-gc', join(here, suite), '--json-out', out], { stdio: 'inherit' });
  if (r.status !== 0) {
    failed = true;
    console.error(`${suite} failed (exit ${r.status})`);
    continue;
  }
  if (existsSync(out)) results.suites[suite.replace('.mjs', '')] = { date: new Date().toISOString(), ...JSON.parse(readFileSync(out, 'utf8')) };
}
writeFileSync(file, JSON.stringify(results, null, 2) + '\n');
console.log(`\nwritten: bench/results.json`);
// The table shows what results.json now holds: a suite that failed adds nothing to it.
console.log(`\n${text(results)}`);
if (writeReadme(results)) console.log('written: README.md (bench block)');
process.exitCode = failed ? 1 : 0;
