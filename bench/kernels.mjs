#!/usr/bin/env node
// Scale-out: messages, shared memory and fork through 1, 2 and 3 kernels sharing one Redis store,
// beside the SQLite single kernel (the default) and beside raw Redis (the same client work done
// with ioredis straight on a redis-server), as ratios. Every kernel is its own OS process
// (`rack kernel --store redis://...`), every Redis a private redis-server started here.
//
//   messages   p50/p99 of one pair, one message at a time (send: stored and answered; then received
//              and acked); throughput of 3 pairs at once, 16 sends in flight each. With N kernels
//              pair i sends through kernel i mod N and receives through kernel i+1 mod N (with 2 or
//              3 the bus is crossed); raw Redis: a stream per pair, XADD / XREADGROUP / XACK+XDEL.
//   shm        atomic incr of one key, 8 clients one at a time each, client j on kernel j mod N;
//              raw Redis: INCR, 8 connections, one at a time each.
//   fork       20 VMs of the idle template (sim driver) forked into one group, each kernel forking
//              its share at once, until a watcher on the first kernel has seen all 20 ACTIVE.
//
// The two cores of the machine run all of it (kernels, Redis, clients), so kernels beyond one add
// work, not CPUs; what this shows is what a request costs on each store and across the bus.
// Each round runs each measure on every setup in turn (the order rotates per round); ratios are
// taken within a round and their median is shown, with the median figures.
import { execFileSync } from 'node:child_process';
import { cpus, loadavg } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import {
  REDIS_ARGS, adminOf, connectAs, cpuMsOf, forkProcesses, freePort, jsonOut, messageLatency, messageThroughput, redisServer, root, shmIncr, spawnKernel, startRedis, table, writeJson,
} from './lib/common.mjs';

const USAGE = `usage: node bench/kernels.mjs [--quick] [--rounds N] [--only messages,shm,fork] [--json-out FILE]

Messages, shared-memory incr and fork -> ACTIVE through the SQLite single kernel, through 1, 2
and 3 kernels on one Redis (a private redis-server each), and done with ioredis straight on a
redis-server (the peer); figures and ratios, medians over rounds.
  --quick     one round of smaller runs (about a minute)
  --rounds N  rounds (default 3; --quick: 1)
  --only ...  some of the measures: messages, shm, fork
  --json-out  where to write the figures (bench/run.mjs passes it)`;

const argv = process.argv.slice(2);
if (argv.includes('--help') || argv.includes('-h')) {
  console.log(USAGE);
  process.exit(0);
}
const arg = (name) => {
  const i = argv.indexOf(name);
  return i >= 0 ? argv[i + 1] : undefined;
};
const quick = argv.includes('--quick');
const ROUNDS = Number(arg('--rounds') ?? (quick ? 1 : 3));
const MEASURES = (arg('--only') ?? 'messages,shm,fork').split(',');
for (const m of MEASURES) if (!['messages', 'shm', 'fork'].includes(m)) {
  console.error(`unknown measure "${m}"\n${USAGE}`);
  process.exit(2);
}
if (!Number.isInteger(ROUNDS) || ROUNDS < 1) {
  console.error(USAGE);
  process.exit(2);
}
const N_LAT = quick ? 200 : 500;
const N_TPUT = quick ? 600 : 2000; // per pair
const PAIRS = 3;
const IN_FLIGHT = 16;
const CLIENTS = 8;
const SHM_MS = quick ? 1000 : 2000;
const FORK_N = 20;
const KERNELS = [1, 2, 3];
const TEMPLATES = join(root, 'test/fixtures/templates');

if (!redisServer()) {
  console.error('kernels.mjs needs Debian\'s redis-server (apt-get install redis-server)');
  process.exit(1);
}
const { KernelSocket } = await import(join(root, 'dist/client/kernel-socket.js'));
const { version: redisVersion } = /v=(?<version>\S+)/.exec(execFileSync('redis-server', ['--version'], { encoding: 'utf8' })).groups;
const load = { start: loadavg().map((x) => Math.round(x * 100) / 100), rounds: [] };
const redisArgs = REDIS_ARGS.map((a) => (a === '' ? "''" : a)).join(' ');
console.log(`redis-server ${redisVersion} ${redisArgs} (in memory: nothing saved, no append-only file), one per setup; load average ${load.start.join(' ')}`);

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
// What to undo at the end, in this order: connections, the groups (VMs outlive their kernel by
// design), kernels, redis-servers.
const cleanup = { conns: [], groups: [], kernels: [], redis: [] };

// ---- setups ----
// Each Redis setup has a redis-server of its own: kernels hear each other on the channel
// `rack:bus`, and a Redis pub/sub channel is the server's, not a database's.

/** Kernels on one store, and the processes the IPC measures use, each connected to its kernel. */
async function kernelSetup(name, n, redis) {
  const store = redis ? `redis://127.0.0.1:${redis.port}/0` : null;
  const kernels = await Promise.all(Array.from({ length: n }, () => spawnKernel([TEMPLATES], store ? { store } : {})));
  cleanup.kernels.push(() => Promise.all(kernels.map((k) => k.close())));
  const { gid, procs } = await forkProcesses(kernels[0], 2 * PAIRS + CLIENTS);
  cleanup.groups.push(() => adminOf(kernels[0])('DELETE', `/v1/groups/${gid}`));
  const on = (i, p) => connectAs(kernels[i % n], p, kernels);
  const pairs = await Promise.all(Array.from({ length: PAIRS }, async (_, i) => {
    const [from, to] = await Promise.all([on(i, procs[1 + 2 * i]), on(i + 1, procs[2 + 2 * i])]);
    return { from, to, inbox: to.messages() };
  }));
  const clients = await Promise.all(Array.from({ length: CLIENTS }, (_, j) => on(j, procs[1 + 2 * PAIRS + j])));
  cleanup.conns.push(() => [...pairs.flatMap((p) => [p.from, p.to]), ...clients].forEach((r) => r.close()));
  return { name, kernels, pairs, clients, pids: { kernels: kernels.map((k) => k.pid), redis: redis?.pid }, fork: (round) => forkActive(kernels, round) };
}

/** fork -> ACTIVE of FORK_N VMs into a new group, shared out over the kernels; ms until a watcher on the first saw them all ACTIVE. */
async function forkActive(kernels, round) {
  const admin = adminOf(kernels[0]);
  const gid = (await admin('POST', '/v1/groups', { group: { name: `fork-${round}`, template: 'idle' } })).group.gid;
  const watch = new KernelSocket({ url: kernels[0].url, token: kernels[0].adminToken, role: 'admin', timeoutMs: 30_000 });
  let timeout;
  try {
    await watch.open();
    const active = new Set();
    let done;
    const all = new Promise((r) => (done = r));
    watch.on('event', (e) => {
      if (e.event !== 'process' || e.process.gid !== gid || e.process.status !== 'ACTIVE') return;
      active.add(e.process.pid);
      if (active.size === FORK_N) done();
    });
    await watch.call('subscribe', { gid });
    const share = (i) => Math.floor(FORK_N / kernels.length) + (i < FORK_N % kernels.length ? 1 : 0);
    const t0 = performance.now();
    await Promise.all(kernels.map((k, i) => adminOf(k)('POST', `/v1/groups/${gid}/processes`, { process: { count: share(i) } })));
    timeout = setTimeout(() => done(new Error(`${FORK_N} VMs not all ACTIVE within 60 s (${active.size})`)), 60_000);
    const err = await all;
    if (err) throw err;
    return performance.now() - t0;
  } finally {
    clearTimeout(timeout);
    watch.close();
    // Its VMs go with it (they would outlive the kernels).
    await admin('DELETE', `/v1/groups/${gid}`);
  }
}

/** The same client work with ioredis on a redis-server: a stream per pair, INCR for shared memory. */
async function rawSetup({ port, pid }) {
  const url = `redis://127.0.0.1:${port}`;
  const conns = [];
  const client = () => {
    const c = new Redis(url);
    conns.push(c);
    return c;
  };
  cleanup.conns.push(() => conns.forEach((c) => c.disconnect()));
  const pairs = await Promise.all(Array.from({ length: PAIRS }, async (_, i) => {
    const stream = `bench:${i}`;
    await client().xgroup('CREATE', stream, 'g', '$', 'MKSTREAM');
    const tx = client();
    const rx = client();
    // Received entries wait in `queue` for next(), as libdck's messages() keeps them.
    const queue = [];
    let wake = null;
    (async () => {
      for (;;) {
        const r = await rx.xreadgroup('GROUP', 'g', 'c', 'COUNT', 100, 'BLOCK', 0, 'STREAMS', stream, '>').catch(() => null);
        if (!r) return; // disconnected at the end
        const ids = r[0][1].map(([id]) => id);
        for (const [, fields] of r[0][1]) queue.push(fields);
        // Acked and gone (RACK's ack drops the message too), on the same connection before the next read.
        rx.xack(stream, 'g', ...ids).catch(() => {});
        rx.xdel(stream, ...ids).catch(() => {});
        wake?.();
      }
    })();
    const inbox = {
      async next() {
        while (queue.length === 0) await new Promise((r) => (wake = r));
        wake = null;
        return { value: queue.shift(), done: false };
      },
    };
    return { from: { send: (to, data) => tx.xadd(to, '*', 'd', JSON.stringify(data)) }, to: { pid: stream }, inbox };
  }));
  const clients = Array.from({ length: CLIENTS }, () => {
    const c = client();
    return { shm: { incr: (key) => c.incr(key) } };
  });
  return { name: 'raw', pairs, clients, pids: { kernels: [], redis: pid }, fork: null };
}

/**
 * Runs `fn` and says what CPU each part used meanwhile, in ms: the setup's kernels together, its
 * redis-server, and this process (the clients; the other setups' are idle).
 */
async function withCpu(s, fn) {
  const kernels = () => s.pids.kernels.reduce((sum, pid) => sum + cpuMsOf(pid), 0);
  const redis = () => (s.pids.redis ? cpuMsOf(s.pids.redis) : 0);
  const [k0, r0, c0, t0] = [kernels(), redis(), process.cpuUsage(), performance.now()];
  const value = await fn();
  const ms = performance.now() - t0;
  const c = process.cpuUsage(c0);
  return { value, ms, cpu: { kernels: kernels() - k0, redis: redis() - r0, clients: (c.user + c.system) / 1000 } };
}

/** CPU µs per operation of each part, into a round's figures (`msg_kernels_cpu_us`, ...). */
function perOp(r, what, cpu, ops) {
  for (const [part, ms] of Object.entries(cpu)) r[`${what}_${part}_cpu_us`] = Math.round((ms * 1000) / ops);
}

const LABEL = {
  sqlite: 'SQLite, 1 kernel (default)',
  'redis-1': 'Redis, 1 kernel',
  'redis-2': 'Redis, 2 kernels',
  'redis-3': 'Redis, 3 kernels',
  raw: 'raw Redis (ioredis, no kernel)',
};
const setups = [];
const runs = []; // per round: { setup: { p50_us, p99_us, msgs_per_s, shm_ops_per_s, fork_ms } }
try {
  const t0 = performance.now();
  /** A private redis-server on a free port (tried again on another if that one was taken meanwhile). */
  const privateRedis = async (attempt = 1) => {
    const port = await freePort();
    try {
      const redis = await startRedis(port);
      cleanup.redis.push(() => redis.kill());
      return { port, pid: redis.pid };
    } catch (err) {
      if (attempt >= 3) throw err;
      return privateRedis(attempt + 1);
    }
  };
  const redisSetup = async (n) => kernelSetup(`redis-${n}`, n, await privateRedis());
  // allSettled: what did start is undone below even when another setup fails.
  const made = await Promise.allSettled([kernelSetup('sqlite', 1, null), ...KERNELS.map(redisSetup), privateRedis().then(rawSetup)]);
  for (const m of made) if (m.status === 'rejected') throw m.reason;
  setups.push(...made.map((m) => m.value));
  console.log(`set up in ${((performance.now() - t0) / 1000).toFixed(1)} s: ${setups.filter((s) => s.kernels).map((s) => s.kernels.length).reduce((a, b) => a + b)} kernels, ${KERNELS.length + 1} redis-servers; ${ROUNDS} round(s)`);

  // Warm-up: each path once, unmeasured (JIT, the scripts loaded into Redis, connections).
  for (const s of setups) {
    if (MEASURES.includes('messages')) {
      await messageLatency(s.pairs[0].from, s.pairs[0].to, s.pairs[0].inbox, 50);
      await messageThroughput(s.pairs, 100, IN_FLIGHT);
    }
    if (MEASURES.includes('shm')) await shmIncr(s.clients, 200);
  }

  for (let round = 0; round < ROUNDS; round++) {
    const order = setups.map((_, i) => setups[(i + round) % setups.length]);
    const r = Object.fromEntries(setups.map((s) => [s.name, {}]));
    if (MEASURES.includes('messages')) {
      for (const s of order) {
        const p = s.pairs[0];
        Object.assign(r[s.name], await messageLatency(p.from, p.to, p.inbox, N_LAT));
      }
      for (const s of order) {
        const { value, cpu } = await withCpu(s, () => messageThroughput(s.pairs, N_TPUT, IN_FLIGHT));
        r[s.name].msgs_per_s = value;
        perOp(r[s.name], 'msg', cpu, PAIRS * N_TPUT);
      }
    }
    if (MEASURES.includes('shm')) {
      for (const s of order) {
        const { value, ms, cpu } = await withCpu(s, () => shmIncr(s.clients, SHM_MS));
        r[s.name].shm_ops_per_s = value;
        perOp(r[s.name], 'incr', cpu, (value * ms) / 1000);
      }
    }
    if (MEASURES.includes('fork')) for (const s of order) if (s.fork) r[s.name].fork_ms = Math.round(await s.fork(round));
    runs.push(r);
    load.rounds.push(Math.round(loadavg()[0] * 100) / 100);
    console.log(`round ${round + 1}/${ROUNDS} done (${order.map((s) => s.name).join(', ')}), load average ${loadavg().map((x) => x.toFixed(2)).join(' ')}`);
  }
} finally {
  for (const f of Object.values(cleanup).flat()) await Promise.resolve().then(f).catch((err) => console.error(`cleanup: ${err.message}`));
}
load.end = loadavg().map((x) => Math.round(x * 100) / 100);

// ---- figures: medians over rounds; ratios per round, then their median ----
const CPU = ['msg', 'incr'].flatMap((w) => ['kernels', 'redis', 'clients'].map((p) => `${w}_${p}_cpu_us`));
const FIELDS = ['p50_us', 'p99_us', 'msgs_per_s', 'shm_ops_per_s', 'fork_ms', ...CPU];
const rows = setups.map(({ name }) => {
  const row = { setup: name, label: LABEL[name], kernels: name === 'raw' ? 0 : name === 'sqlite' ? 1 : Number(name.split('-')[1]) };
  for (const f of FIELDS) {
    const xs = runs.map((r) => r[name][f]).filter((x) => x !== undefined);
    if (xs.length === 0) continue;
    row[f] = median(xs);
    if (CPU.includes(f)) continue;
    for (const ref of ['sqlite', 'raw']) {
      const ratios = runs.filter((r) => r[ref][f] !== undefined && r[name][f] !== undefined).map((r) => r[name][f] / r[ref][f]);
      if (ratios.length) row[`${f}_vs_${ref}`] = Math.round(median(ratios) * 100) / 100;
    }
  }
  return row;
});
const x = (v) => (v === undefined ? '' : `${v.toFixed(2)}x`);
const n = (v) => (v === undefined ? 'n/a' : v.toLocaleString('en'));
const by = Object.fromEntries(rows.map((r) => [r.setup, r]));
const show = (f) => rows.filter((r) => r[f] !== undefined);
const head = `medians of ${ROUNDS} round(s); ratio: this setup's figure / the reference's, the median of each round's`;
console.log(`\nraw Redis: messages through a stream per pair, XADD / XREADGROUP BLOCK / XACK + XDEL (acked and gone, as a RACK ack); shared memory INCR`);
if (MEASURES.includes('messages')) {
  table(`Messages, latency: one pair, one at a time (send stored and answered, then received; ${N_LAT} per round); ${head}; lower is better`, ['setup', 'p50 µs', 'p99 µs', 'SQLite p50', 'ratio', 'raw Redis p50', 'ratio'], show('p50_us').map((r) => [
    r.label, n(r.p50_us), n(r.p99_us), n(by.sqlite.p50_us), x(r.p50_us_vs_sqlite), n(by.raw.p50_us), x(r.p50_us_vs_raw),
  ]));
  table(`Messages, throughput: ${PAIRS} pairs at once, ${IN_FLIGHT} sends in flight each, ${N_TPUT} per pair, received and acked; ${head}; higher is better`, ['setup', 'msgs/s', 'SQLite', 'ratio', 'raw Redis', 'ratio'], show('msgs_per_s').map((r) => [
    r.label, n(r.msgs_per_s), n(by.sqlite.msgs_per_s), x(r.msgs_per_s_vs_sqlite), n(by.raw.msgs_per_s), x(r.msgs_per_s_vs_raw),
  ]));
}
if (MEASURES.includes('shm')) {
  table(`Shared memory: incr of one key, ${CLIENTS} clients one at a time each, ${SHM_MS / 1000} s; ${head}; higher is better`, ['setup', 'ops/s', 'SQLite', 'ratio', 'raw Redis INCR', 'ratio'], show('shm_ops_per_s').map((r) => [
    r.label, n(r.shm_ops_per_s), n(by.sqlite.shm_ops_per_s), x(r.shm_ops_per_s_vs_sqlite), n(by.raw.shm_ops_per_s), x(r.shm_ops_per_s_vs_raw),
  ]));
}
const cpuRows = rows.filter((r) => CPU.some((f) => r[f] !== undefined));
if (cpuRows.length) {
  const c = (r, w) => (r[`${w}_kernels_cpu_us`] === undefined ? 'n/a' : `${r[`${w}_kernels_cpu_us`]} / ${r[`${w}_redis_cpu_us`]} / ${r[`${w}_clients_cpu_us`]}`);
  table('CPU per operation in the throughput runs, µs: kernels (all of the setup\'s) / redis-server / clients (this process); medians; 10 ms clock ticks', ['setup', 'per message', 'per shm incr'], cpuRows.map((r) => [r.label, c(r, 'msg'), c(r, 'incr')]));
}
if (MEASURES.includes('fork')) {
  table(`fork -> ACTIVE: ${FORK_N} sim VMs (idle template) in one group, shared out over the kernels, watched on the first; ${head}; lower is better`, ['setup', 'ms', 'SQLite', 'ratio'], show('fork_ms').map((r) => [
    r.label, n(r.fork_ms), n(by.sqlite.fork_ms), x(r.fork_ms_vs_sqlite),
  ]));
}
console.log(`\nload average at the start ${load.start.join(' ')}, after each round ${load.rounds.join(', ')} (1 min), at the end ${load.end.join(' ')}; ${cpus().length} cores: above ${cpus().length}, other work was taking CPU from this run`);
writeJson(jsonOut(), {
  rounds: ROUNDS,
  quick,
  load_average: load,
  redis: `redis-server ${redisVersion} ${redisArgs}`,
  params: { n_latency: N_LAT, n_throughput_per_pair: N_TPUT, pairs: PAIRS, in_flight: IN_FLIGHT, shm_clients: CLIENTS, shm_ms: SHM_MS, fork_vms: FORK_N },
  rows,
  runs,
});
process.exit(0);
