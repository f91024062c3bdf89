#!/usr/bin/env node
// `node bench/profile.mjs messages|shm|pipe|agents|ps|fork [top]`: runs that measure under V8's
// CPU profiler (`node --cpu-prof`, written when each profiled process exits) and prints where the
// time went: the top functions by self time, and the files.
// - messages, shm, pipe: that kernel measure of bench/ipc.mjs alone, the kernel profiled.
// - agents: bench/agents.mjs, whose kernel runs in the bench's own process.
// - ps: `rack ps` and `rack ps --tree` of 10,000 processes (bench/scale.mjs --only ps): each CLI
//   run profiled, and the kernel answering them (in the bench's process).
// - fork: one sim VM at a time (bench/fork.mjs --sizes 1): each VM's agent profiled from its
//   start until it is stopped once its app runs, and the kernel (in the bench's process) from
//   each fork until the app runs.
// Only the kernel's samples taken while the measure ran are counted (the bench writes when that
// was), not its start or the forking of the bench's VMs; a CLI's or an agent's whole life is.
// The .cpuprofile files stay in the printed folder (Chrome DevTools opens them, whole).
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { root } from './lib/common.mjs';

const SUITES = ['messages', 'shm', 'pipe', 'agents', 'ps', 'fork'];
const suite = process.argv[2];
const top = Number(process.argv[3] ?? 25);
if (!SUITES.includes(suite)) {
  console.error(`usage: node bench/profile.mjs ${SUITES.join('|')} [top]`);
  process.exit(2);
}
const dir = mkdtempSync(join(tmpdir(), `rack-profile-${suite}-`));
// A sample every 200 µs: the hot paths' calls take a few µs each, the default 1 ms is too coarse.
const windowFile = join(dir, 'window.json');
const profArgs = (sub) => ['--cpu-prof', `--cpu-prof-dir=${join(dir, sub)}`, '--cpu-prof-interval=200'];
const env = { ...process.env, RACK_BENCH_WINDOW: windowFile };
const bench = (file, args, nodeArgs = []) => spawnSync(process.execPath, [...nodeArgs, join(import.meta.dirname, file), ...args], { stdio: 'inherit', env });
let r;
if (suite === 'agents') {
  // agents.mjs runs its kernel in its own process (its agents in a child that is not profiled).
  r = bench('agents.mjs', [], ['--expose-gc', ...profArgs('kernel')]);
} else if (suite === 'ps') {
  env.RACK_BENCH_CLI_NODE_ARGS = profArgs('cli').join(' ');
  r = bench('scale.mjs', ['--only', 'ps'], profArgs('kernel'));
} else if (suite === 'fork') {
  env.RACK_BENCH_AGENT_NODE_ARGS = profArgs('agent').join(' ');
  r = bench('fork.mjs', ['--sizes', '1'], profArgs('kernel'));
} else {
  env.RACK_BENCH_KERNEL_NODE_ARGS = profArgs('kernel').join(' ');
  r = bench('ipc.mjs', ['--only', suite]);
}
if (r.status !== 0) process.exit(r.status ?? 1);

const profiles = (sub) => {
  mkdirSync(join(dir, sub), { recursive: true });
  return readdirSync(join(dir, sub)).filter((f) => f.endsWith('.cpuprofile')).map((f) => ({ file: join(dir, sub, f), ...JSON.parse(readFileSync(join(dir, sub, f), 'utf8')) }));
};
const where = (cf) => {
  if (!cf.url) return '';
  const path = cf.url.startsWith('file://') ? relative(root, new URL(cf.url).pathname) : cf.url;
  return `${path}:${cf.lineNumber + 1}`;
};

/**
 * Self time per function and per file over the given profiles, counting only the samples in
 * `windows` (CLOCK_MONOTONIC µs; none: all of them). Each sample is charged to the node it landed
 * in, for the time to the next; samples are timed from the profile's start.
 */
function selfTimes(list, windows) {
  const byFn = new Map();
  const byFile = new Map();
  let total = 0;
  let idle = 0;
  for (const profile of list) {
    const self = new Map();
    let at = profile.startTime;
    profile.samples.forEach((id, i) => {
      at += profile.timeDeltas[i];
      if (!windows || windows.some((w) => at >= w.start && at <= w.end)) self.set(id, (self.get(id) ?? 0) + (profile.timeDeltas[i + 1] ?? 0));
    });
    for (const node of profile.nodes) {
      const t = self.get(node.id) ?? 0;
      total += t;
      if (node.callFrame.functionName === '(idle)') idle += t;
      const fn = `${node.callFrame.functionName || '(anonymous)'} ${where(node.callFrame)}`.trim();
      byFn.set(fn, (byFn.get(fn) ?? 0) + t);
      const f = node.callFrame.url ? where(node.callFrame).replace(/:\d+$/, '').replace(/^node_modules\/([^/]+)\/.*/, 'node_modules/$1') : node.callFrame.functionName;
      byFile.set(f, (byFile.get(f) ?? 0) + t);
    }
  }
  return { byFn, byFile, total, idle, busy: total - idle };
}

/** The top functions and files; `per` divides the times (the number of runs, for a mean per run). */
function print(t, per = 1) {
  const pct = (v) => `${((100 * v) / t.busy).toFixed(1).padStart(5)}%`;
  const ms = (v) => `${(v / 1000 / per).toFixed(per > 1 ? 1 : 0).padStart(7)} ms`;
  console.log(`\ntop functions by self time${per > 1 ? ' (mean per run)' : ''}, shares of busy time:`);
  for (const [fn, v] of [...t.byFn].filter(([fn]) => !fn.startsWith('(idle)')).sort((a, b) => b[1] - a[1]).slice(0, top)) console.log(`${ms(v)} ${pct(v)}  ${fn}`);
  console.log('\nby file (self time):');
  for (const [f, v] of [...t.byFile].filter(([f]) => f !== '(idle)').sort((a, b) => b[1] - a[1]).slice(0, 15)) console.log(`${ms(v)} ${pct(v)}  ${f}`);
}

/** Each profiled process's whole life (a CLI run, an agent), as a mean per run. */
function printRuns(what, list) {
  const t = selfTimes(list);
  const wall = list.reduce((n, p) => n + (p.endTime - p.startTime), 0) / list.length;
  console.log(`\n${what} CPU profile: ${list.length} runs, each ${(wall / 1000).toFixed(0)} ms from the profiler's start to the process's end (mean), busy ${(t.busy / 1000 / list.length).toFixed(0)} ms of it, idle (waiting) ${(t.idle / 1000 / list.length).toFixed(0)} ms`);
  console.log(`profiles: ${join(dir, what === 'rack ps' ? 'cli' : 'agent')}`);
  print(t, list.length);
}

/** When a process first ran a function (its first sample inside it), ms from the profiler's start; one per profile. */
function firstIn(profile, name, file) {
  const parent = new Map();
  for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const inside = (id) => {
    for (let at = id; at !== undefined; at = parent.get(at)) {
      const cf = byId.get(at).callFrame;
      if (cf.functionName === name && cf.url.endsWith(file)) return true;
    }
    return false;
  };
  let at = profile.startTime;
  for (let i = 0; i < profile.samples.length; i++) {
    at += profile.timeDeltas[i];
    if (inside(profile.samples[i])) return (at - profile.startTime) / 1000;
  }
  return NaN;
}

const kernel = profiles('kernel');
if (kernel.length !== 1) throw new Error(`expected one kernel profile in ${join(dir, 'kernel')}, found ${kernel.length}`);
if (suite === 'ps') printRuns('rack ps', profiles('cli'));
if (suite === 'fork') {
  const agents = profiles('agent');
  printRuns('agent', agents);
  const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
  const loaded = median(agents.map((p) => firstIn(p, 'runAgent', 'dist/dckinit/agent.js')));
  const spawned = median(agents.map((p) => firstIn(p, 'start', 'dist/dckinit/supervisor/supervisor.js')));
  console.log(`\nagent phases (median, ms from the profiler's start, early in node's own start): its modules loaded, runAgent runs ${loaded.toFixed(0)}; the app is spawned ${spawned.toFixed(0)}`);
}
// One window, or (fork) one per fork.
const windows = [JSON.parse(readFileSync(windowFile, 'utf8'))[suite]].flat();
const t = selfTimes(kernel, windows);
const span = windows.reduce((n, w) => n + (w.end - w.start), 0);
console.log(`\nkernel CPU profile, ${suite}: the measure took ${(span / 1e6).toFixed(1)} s, the kernel was busy ${(t.busy / 1e6).toFixed(1)} s of it (shares below are of busy time)`);
console.log(`profile: ${kernel[0].file}`);
print(t);
