#!/usr/bin/env node
// `node bench/profile.mjs messages|shm|pipe|agents [top]`: runs that kernel measure of bench/ipc.mjs
// alone (or bench/agents.mjs, whose kernel runs in the bench's own process) with the kernel under
// V8's CPU profiler (`node --cpu-prof`, written when the kernel exits), then prints where the
// kernel's thread spent its time: the top functions by self time, and the files.
// Only the samples taken while the measure ran are counted (the bench writes when that was),
// not the kernel's start or the forking of the bench's VMs. The .cpuprofile stays in the printed
// folder (Chrome DevTools opens it, whole).
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { root } from './lib/common.mjs';

const suite = process.argv[2];
const top = Number(process.argv[3] ?? 25);
if (!['messages', 'shm', 'pipe', 'agents'].includes(suite)) {
  console.error('usage: node bench/profile.mjs messages|shm|pipe|agents [top]');
  process.exit(2);
}
const dir = mkdtempSync(join(tmpdir(), `rack-profile-${suite}-`));
// A sample every 200 µs: the hot paths' calls take a few µs each, the default 1 ms is too coarse.
const windowFile = join(dir, 'window.json');
const profArgs = ['--cpu-prof', `--cpu-prof-dir=${dir}`, '--cpu-prof-interval=200'];
const env = { ...process.env, RACK_BENCH_KERNEL_NODE_ARGS: profArgs.join(' '), RACK_BENCH_WINDOW: windowFile };
// agents.mjs runs its kernel in its own process (its agents in a child that is not profiled).
const r = suite === 'agents'
  ? spawnSync(process.execPath, ['--expose-gc', ...profArgs, join(import.meta.dirname, 'agents.mjs')], { stdio: 'inherit', env })
  : spawnSync(process.execPath, [join(import.meta.dirname, 'ipc.mjs'), '--only', suite], { stdio: 'inherit', env });
if (r.status !== 0) process.exit(r.status ?? 1);
const file = readdirSync(dir).find((f) => f.endsWith('.cpuprofile'));
if (!file) throw new Error(`no profile in ${dir}`);
const profile = JSON.parse(readFileSync(join(dir, file), 'utf8'));
const { start, end } = JSON.parse(readFileSync(windowFile, 'utf8'))[suite];

// Self time per node: each sample is charged to the node it landed in, for the time to the next;
// samples are timed from the profile's start (both clocks are CLOCK_MONOTONIC in µs).
const self = new Map();
let at = profile.startTime;
profile.samples.forEach((id, i) => {
  at += profile.timeDeltas[i];
  if (at >= start && at <= end) self.set(id, (self.get(id) ?? 0) + (profile.timeDeltas[i + 1] ?? 0));
});
const where = (cf) => {
  if (!cf.url) return '';
  const path = cf.url.startsWith('file://') ? relative(root, new URL(cf.url).pathname) : cf.url;
  return `${path}:${cf.lineNumber + 1}`;
};
const byFn = new Map();
const byFile = new Map();
let total = 0;
let idle = 0;
for (const node of profile.nodes) {
  const t = self.get(node.id) ?? 0;
  total += t;
  if (node.callFrame.functionName === '(idle)') idle += t;
  const fn = `${node.callFrame.functionName || '(anonymous)'} ${where(node.callFrame)}`.trim();
  byFn.set(fn, (byFn.get(fn) ?? 0) + t);
  const f = node.callFrame.url ? where(node.callFrame).replace(/:\d+$/, '').replace(/^node_modules\/([^/]+)\/.*/, 'node_modules/$1') : node.callFrame.functionName;
  byFile.set(f, (byFile.get(f) ?? 0) + t);
}
const busy = total - idle;
const pct = (t) => `${((100 * t) / busy).toFixed(1).padStart(5)}%`;
const ms = (t) => `${(t / 1000).toFixed(0).padStart(7)} ms`;
console.log(`\nkernel CPU profile, ${suite}: the measure took ${((end - start) / 1e6).toFixed(1)} s, the kernel was busy ${(busy / 1e6).toFixed(1)} s of it (shares below are of busy time)`);
console.log(`profile: ${join(dir, file)}\n\ntop functions by self time:`);
for (const [fn, t] of [...byFn].filter(([fn]) => !fn.startsWith('(idle)')).sort((a, b) => b[1] - a[1]).slice(0, top)) console.log(`${ms(t)} ${pct(t)}  ${fn}`);
console.log('\nby file (self time):');
for (const [f, t] of [...byFile].filter(([f]) => f !== '(idle)').sort((a, b) => b[1] - a[1]).slice(0, 15)) console.log(`${ms(t)} ${pct(t)}  ${f}`);
