#!/usr/bin/env node
// A kernel with 1,000 connected guest agents: what each connection costs the kernel in memory,
// and what their heartbeats (every 15 s, dckinit's default) cost it in CPU while nothing else
// happens, beside the same kernel before they connected. The kernel runs in this process on the fake compute driver (1,000 processes, no VMs);
// the agents are the real client core (src/client/kernel-socket.ts) in a child process.
// The reference: the same agents against a bare ws server in this process that answers each
// frame and does nothing else: what 1,000 heartbeats every 15 s cost on this machine before any
// kernel code runs (waking up for each, reading it, writing the answer).
import { spawn } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { createServer } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { jsonOut, root, table, writeJson } from './lib/common.mjs';

const N = 1000;
const HEARTBEAT_MS = 15_000;
// Two heartbeat periods: each agent's heartbeat falls in the window twice, whatever its phase (20 s
// held one or two of them, and the kernel's 30 s ping round or none).
const WATCH_MS = 2 * HEARTBEAT_MS;
const { WebSocketServer } = await import('ws');
// Limits: a connection should cost the kernel no more than Redis's ~20 KiB client plus what a
// WebSocket and its flow control need; heartbeats should be noise next to a core.
const LIMIT = { kib_per_agent: 100, cpu_percent: 1 };

const { startKernel } = await import(join(root, 'dist/server/start.js'));
const { FakeDriver } = await import(join(root, 'dist/compute/fake/fake-driver.js'));
const { silentLogger } = await import(join(root, 'dist/common/log.js'));
const { credentialsOf } = await import(join(root, 'dist/protocol/user-data.js'));

// RACK_BENCH_WINDOW=file: when each CPU reading started and ended (CLOCK_MONOTONIC µs, the clock
// of V8's profiles), so that `bench/profile.mjs agents` counts the reading and not the setup.
const windows = {};

/** This process's CPU over `ms`, in % of one core. */
async function cpuOver(ms, name) {
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  windows[name] = { start: Number(process.hrtime.bigint() / 1000n) };
  await new Promise((r) => setTimeout(r, ms));
  windows[name].end = Number(process.hrtime.bigint() / 1000n);
  const cpu = process.cpuUsage(cpu0);
  return ((cpu.user + cpu.system) / 1000 / (performance.now() - t0)) * 100;
}

const compute = new FakeDriver();
if (!global.gc) throw new Error('run with node --expose-gc (npm run bench does)');
const k = await startKernel({ listen: '127.0.0.1:0', dataDir: mkdtempSync(join(tmpdir(), 'rack-bench-agents-')), adminToken: 'bench-admin-token-0123456789', log: silentLogger(), compute, forkLimit: N, quotas: { processes: N + 10 } });
const ADMIN = { kind: 'admin' };
let results;
let agents;
try {
  const gid = (await k.kernel.createGroup({ name: 'agents', template: 'image' })).gid;
  await k.kernel.fork(ADMIN, gid, { count: N });
  const tokens = [...compute.vms.values()].map((vm) => credentialsOf(vm.req.userData)?.agent_token).filter(Boolean);
  if (tokens.length !== N) throw new Error(`expected ${N} agent tokens, found ${tokens.length}`);

  // The kernel's heap and what it holds outside it (socket buffers included), after a GC: its
  // RSS would hide the growth behind pages the fork of 1,000 processes left behind.
  const settle = async () => {
    global.gc?.();
    await new Promise((r) => setImmediate(r));
    const m = process.memoryUsage();
    return m.heapUsed + m.external;
  };
  // The same kernel with no agent, for as long: its own timers are not the agents' cost. It is
  // measured before the agents come and again after they left, and the mean taken: what it does
  // alone (a write transaction a second, the GC after the fork of 1,000 processes) moves from one
  // window to the next by more than the agents' share.
  const cpuIdleBefore = await cpuOver(WATCH_MS, 'idle');
  const before = await settle();
  /** The agents, connected to `url` (50 at a time); answers their process and how long that took. */
  const connectAgents = async (url, tokens) => {
    const script = `
      const { KernelSocket } = await import(${JSON.stringify(join(root, 'dist/client/kernel-socket.js'))});
      const tokens = JSON.parse(process.argv[1]);
      const sockets = tokens.map((token) => new KernelSocket({ url: ${JSON.stringify(url)}, token, role: 'agent', timeoutMs: 0, heartbeatMs: ${HEARTBEAT_MS} }));
      for (let i = 0; i < sockets.length; i += 50) await Promise.all(sockets.slice(i, i + 50).map((s) => s.open()));
      process.stdout.write('connected\\n');
      process.stdin.on('end', () => process.exit(0));
      process.stdin.resume();`;
    const child = spawn(process.execPath, ['--input-type=module', '-e', script, JSON.stringify(tokens)], { stdio: ['pipe', 'pipe', 'inherit'] });
    const t0 = performance.now();
    await new Promise((resolve, reject) => {
      child.stdout.on('data', (d) => String(d).includes('connected') && resolve());
      child.once('exit', (code) => reject(new Error(`the agents' process exited with ${code}`)));
    });
    return { child, ms: performance.now() - t0 };
  };
  const stopAgents = (child) => new Promise((resolve) => {
    child.once('exit', resolve);
    child.stdin.end();
  });
  let connectMs;
  ({ child: agents, ms: connectMs } = await connectAgents(k.url, tokens));
  const after = await settle();
  const cpuAgents = await cpuOver(WATCH_MS, 'agents');
  await stopAgents(agents);
  agents = null;
  await settle();
  const cpuIdle = (cpuIdleBefore + (await cpuOver(WATCH_MS, 'idle-after'))) / 2;

  // The floor: a ws server that answers every request with {"id": n, "ok": true, "result": {}}
  // (the client core's hello takes it) and, as ws does by itself, every ping (the heartbeats),
  // and does nothing else. The kernel stays up beside it, idle, as it was measured alone.
  const server = createServer();
  const wss = new WebSocketServer({ noServer: true });
  server.on('upgrade', (req, socket, head) => wss.handleUpgrade(req, socket, head, (ws) => ws.on('message', (d) => ws.send(`{"id":${JSON.parse(d).id},"ok":true,"result":{}}`))));
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  ({ child: agents } = await connectAgents(`http://127.0.0.1:${server.address().port}`, tokens));
  await settle();
  const cpuFloor = await cpuOver(WATCH_MS, 'floor');
  await stopAgents(agents);
  agents = null;
  for (const ws of wss.clients) ws.terminate();
  server.close();

  const round = (x) => Math.round(x * 100) / 100;
  results = {
    agents: N,
    heartbeat_ms: HEARTBEAT_MS,
    connect_ms: Math.round(connectMs),
    kib_per_agent: Math.round((after - before) / 1024 / N * 10) / 10,
    cpu_percent: round(Math.max(0, cpuAgents - cpuIdle)),
    cpu_idle_percent: round(cpuIdle),
    cpu_floor_percent: round(Math.max(0, cpuFloor - cpuIdle)),
    limit: LIMIT,
  };
} finally {
  agents?.stdin.end();
  await k.close();
}
table(`${N.toLocaleString('en')} connected agents, heartbeat every ${HEARTBEAT_MS / 1000} s, kernel watched for ${WATCH_MS / 1000} s`, ['measure', 'kernel', 'limit', 'ratio'], [
  ['kernel memory per connected agent (heap + external)', `${results.kib_per_agent} KiB`, `≤ ${LIMIT.kib_per_agent} KiB`, (results.kib_per_agent / LIMIT.kib_per_agent).toFixed(2)],
  ['CPU the agents add (heartbeats, pings)', `${results.cpu_percent}% of a core (kernel alone ${results.cpu_idle_percent}%)`, `≤ ${LIMIT.cpu_percent}%`, (results.cpu_percent / LIMIT.cpu_percent).toFixed(2)],
  ['the same agents on a bare ws server (the floor)', `${results.cpu_floor_percent}% of a core`, '', results.cpu_floor_percent > 0 ? `kernel ${(results.cpu_percent / results.cpu_floor_percent).toFixed(2)}x` : ''],
  ['time to connect all (50 at a time)', `${results.connect_ms} ms`, '', ''],
]);
writeJson(jsonOut(), results);
writeJson(process.env.RACK_BENCH_WINDOW, windows);
process.exit(0);
