#!/usr/bin/env node
// fork -> ACTIVE and fork -> app running for 1, 10 and 100 sim VMs, beside spawning the same
// processes directly. A sim VM is what src/compute/sim spawns: the guest agent
// (node dist/dckinit/main.js) in its own session, which then runs the template's app. Directly:
// the same node process loads the same agent code and spawns the same app, no kernel, metadata
// service or channel. ACTIVE is beside the agent's process having started; app running beside the
// app having started. Limits: 1.3x for 1 VM, 2x for 100 (10 is shown, with the 100 limit).
import { spawn } from 'node:child_process';
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { jsonOut, root, startKernel, table, writeJson } from './lib/common.mjs';

// --sizes 1,10 runs fewer (while working on it); the suite runs all three.
const sizesArg = process.argv.indexOf('--sizes');
const SIZES = sizesArg >= 0 ? process.argv[sizesArg + 1].split(',').map(Number) : [1, 10, 100];
const LIMIT = { 1: 1.3, 10: 2, 100: 2 };
const limitOf = (n) => LIMIT[n] ?? 2;
const RUNS = { 1: 5, 10: 2, 100: 1 };
const runsOf = (n) => RUNS[n] ?? 1; // medians of a few runs; the 100s are long on 2 cores
const ADMIN = { kind: 'admin' };
const { AGENT_NODE_FLAGS } = await import(join(root, 'dist/compute/sim/sim-driver.js'));
const out = mkdtempSync(join(tmpdir(), 'rack-bench-fork-'));
const app = ['/bin/sh', join(root, 'test/fixtures/templates/agent-app/opt/app/app.sh')];
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

// bench/profile.mjs fork: RACK_BENCH_AGENT_NODE_ARGS are node options for the VMs' agents (the
// profiler's), given by a copy of the template whose image.yaml runs the agent with them; each
// agent is stopped with TERM once its app runs, so that it writes its profile, before its group
// goes. RACK_BENCH_WINDOW=file: when each fork through the kernel started and ended
// (CLOCK_MONOTONIC µs, the profiler's clock).
const agentArgs = (process.env.RACK_BENCH_AGENT_NODE_ARGS ?? '').split(' ').filter(Boolean);
let templates = join(root, 'test/fixtures/templates');
if (agentArgs.length > 0) {
  templates = join(out, 'templates');
  cpSync(join(root, 'test/fixtures/templates/agent-app'), join(templates, 'agent-app'), { recursive: true });
  writeFileSync(join(templates, 'agent-app', 'image.yaml'), `init: ${JSON.stringify([process.execPath, ...AGENT_NODE_FLAGS, ...agentArgs, join(root, 'dist/dckinit/main.js')])}\n`);
}
const windows = [];
const now = () => Number(process.hrtime.bigint() / 1000n);

/** TERM to each VM's agent, then until each has ended (the sim driver, in this process, reaps it). */
async function stopAgents(k, procs) {
  const pids = procs.map((p) => JSON.parse(readFileSync(join(k.dataDir, 'vms', p.compute_id, 'vm.json'), 'utf8')).pid);
  for (const pid of pids) process.kill(pid, 'SIGTERM');
  const alive = (pid) => {
    try {
      process.kill(pid, 0);
      return true;
    } catch {
      return false;
    }
  };
  while (pids.some(alive)) await new Promise((r) => setTimeout(r, 20));
}

/** The kernel's way: one fork of n processes; when each is ACTIVE, when each app runs. */
async function viaKernel(k, n) {
  const { gid } = await k.kernel.createGroup({ name: `fork-${n}`, template: 'agent-app', args: { out }, quotas: { processes: n + 1 } });
  const active = new Set();
  let allActive = null;
  const t0 = performance.now();
  const onEvent = (p) => {
    if (p.gid !== gid || p.status !== 'ACTIVE' || active.has(p.pid)) return;
    active.add(p.pid);
    if (active.size === n) allActive = performance.now() - t0;
  };
  k.kernel.events.on('process', onEvent);
  const start = now();
  const procs = await k.kernel.fork(ADMIN, gid, { count: n });
  const booted = await k.kernel.waitRunning(gid, procs.map((p) => p.pid), 300_000);
  const running = performance.now() - t0;
  windows.push({ start, end: now() });
  k.kernel.events.off('process', onEvent);
  if (agentArgs.length > 0) await stopAgents(k, booted);
  await k.kernel.deleteGroup(gid);
  return { active: allActive ?? running, running };
}

/** Directly: n agents' node processes, each loading the agent's code and spawning the app. */
const AGENT = `await import(${JSON.stringify(join(root, 'dist/dckinit/agent.js'))}); await import(${JSON.stringify(join(root, 'dist/common/log.js'))});
const { spawn } = await import('node:child_process');
const c = spawn(${JSON.stringify(app[0])}, ${JSON.stringify(app.slice(1))}, { detached: true, stdio: 'ignore', env: { ...process.env, RACK_ARG_OUT: ${JSON.stringify(out)}, RACK_PID: String(process.pid) } });
c.once('spawn', () => process.stdout.write('running ' + c.pid + '\\n'));`;

async function direct(n) {
  const t0 = performance.now();
  let started = 0;
  let allStarted = null;
  const kids = [];
  const apps = [];
  await Promise.all(Array.from({ length: n }, () => new Promise((resolve, reject) => {
    const c = spawn(process.execPath, [...AGENT_NODE_FLAGS, '--input-type=module', '-e', AGENT], { detached: true, stdio: ['ignore', 'pipe', 'inherit'] });
    kids.push(c);
    c.once('spawn', () => {
      if (++started === n) allStarted = performance.now() - t0;
    });
    c.once('error', reject);
    let buf = '';
    c.stdout.on('data', (d) => {
      buf += d;
      const m = /running (\d+)/.exec(buf);
      if (m) {
        apps.push(Number(m[1]));
        resolve();
      }
    });
  })));
  const running = performance.now() - t0;
  for (const pid of apps) try { process.kill(-pid, 'SIGKILL'); } catch {}
  for (const c of kids) try { process.kill(-c.pid, 'SIGKILL'); } catch {}
  return { active: allStarted, running };
}

const k = await startKernel([templates]);
const rows = [];
try {
  await viaKernel(k, 1); // warm up: the kernel's code paths, the page cache of node and the agent
  await direct(1);
  for (const n of SIZES) {
    const kr = [];
    const dr = [];
    for (let i = 0; i < runsOf(n); i++) {
      dr.push(await direct(n));
      kr.push(await viaKernel(k, n));
    }
    const r = {
      n,
      runs: runsOf(n),
      fork_active_ms: median(kr.map((x) => x.active)),
      direct_started_ms: median(dr.map((x) => x.active)),
      fork_running_ms: median(kr.map((x) => x.running)),
      direct_running_ms: median(dr.map((x) => x.running)),
      limit: limitOf(n),
    };
    r.active_ratio = r.fork_active_ms / r.direct_started_ms;
    r.running_ratio = r.fork_running_ms / r.direct_running_ms;
    rows.push(r);
  }
} finally {
  await k.close();
  rmSync(out, { recursive: true, force: true });
}

const ms = (v) => v.toFixed(0);
table('fork, sim VMs (agent + app), beside spawning the same processes directly; medians', ['VMs', 'fork->ACTIVE ms', 'direct ms', 'ratio', 'fork->app running ms', 'direct ms', 'ratio', 'limit'], rows.map((r) => [
  r.n, ms(r.fork_active_ms), ms(r.direct_started_ms), `${r.active_ratio.toFixed(2)}x`, ms(r.fork_running_ms), ms(r.direct_running_ms), `${r.running_ratio.toFixed(2)}x`, `≤ ${r.limit}x`,
]));
writeJson(jsonOut(), { rows });
writeJson(process.env.RACK_BENCH_WINDOW, { fork: windows });
process.exit(0);
