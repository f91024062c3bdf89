#!/usr/bin/env node
// IPC benchmarks, each beside its reference in the same run:
//   messages through the kernel  vs  a raw ws relay on loopback (the limit)  vs  Redis PUB/SUB (a peer)
//                                vs  Redis Streams with its append-only file (the durable, acked peer)
//   shared-memory incr ops/s     vs  redis-benchmark INCR with the same number of clients
//   pipe MB/s                    vs  a raw loopback TCP stream
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, connect as tcpConnect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { WebSocketServer, WebSocket } from 'ws';
import { connectAs, forkProcesses, jsonOut, latencySummary as summary, messageLatency, messageThroughput, redisServer, resp, root, shmIncr, spawnKernel, startRedis, table, writeJson } from './lib/common.mjs';

const N_LAT = 2000;
const N_TPUT = 20000;
const CLIENTS = 8;
const SHM_MS = 3000;
const PIPE_BYTES = 256 * 1024 * 1024;
const results = {};
// `--only messages|shm|pipe`: that kernel measure alone, without the references (bench/profile.mjs).
const onlyAt = process.argv.indexOf('--only');
const only = onlyAt >= 0 ? process.argv[onlyAt + 1] : null;
const measure = (name) => only === null || only === name;
const reference = only === null;
// RACK_BENCH_WINDOW=file: where each kernel measure started and ended (CLOCK_MONOTONIC µs, the
// clock of V8's profiles), so that bench/profile.mjs counts the measure and not the setup.
const windows = {};
const mark = (name, edge) => ((windows[name] ??= {})[edge] = Number(process.hrtime.bigint() / 1000n));

// ---- kernel: processes to talk between ----
const k = await spawnKernel([join(root, 'test/fixtures/templates')]);
const { gid, procs } = await forkProcesses(k, CLIENTS);
const racks = await Promise.all(procs.map((p) => connectAs(k, p)));
const [a, b] = racks;

// ---- messages: kernel ----
if (measure('messages')) {
  mark('messages', 'start');
  const inbox = b.messages();
  const lat = await messageLatency(a, b, inbox, N_LAT);
  // 16 sends in flight.
  results.messages_kernel = { ...lat, msgs_per_s: await messageThroughput([{ from: a, to: b, inbox }], N_TPUT, 16) };
  mark('messages', 'end');
}

// ---- messages: raw ws relay (the limit) ----
if (reference) {
  const wss = new WebSocketServer({ port: 0, host: '127.0.0.1' });
  await new Promise((r) => wss.once('listening', r));
  const port = wss.address().port;
  let receiver;
  wss.on('connection', (ws, req) => {
    if (req.url === '/recv') receiver = ws;
    else ws.on('message', (d) => receiver.send(d));
  });
  const rx = new WebSocket(`ws://127.0.0.1:${port}/recv`);
  const tx = new WebSocket(`ws://127.0.0.1:${port}/send`);
  await Promise.all([new Promise((r) => rx.once('open', r)), new Promise((r) => tx.once('open', r))]);
  while (!receiver) await new Promise((r) => setImmediate(r));
  const lat = [];
  for (let i = 0; i < N_LAT; i++) {
    const t0 = performance.now();
    const got = new Promise((r) => rx.once('message', r));
    tx.send(JSON.stringify({ i }));
    await got;
    lat.push(performance.now() - t0);
  }
  const t0 = performance.now();
  await new Promise((resolve) => {
    let n = 0;
    rx.on('message', () => ++n === N_TPUT && resolve());
    for (let i = 0; i < N_TPUT; i++) tx.send(JSON.stringify({ x: i }));
  });
  results.messages_ws_relay = { ...summary(lat), msgs_per_s: Math.round(N_TPUT / ((performance.now() - t0) / 1000)) };
  rx.close();
  tx.close();
  wss.close();
}

// ---- Redis (a peer) ----
const redis = redisServer();
let redisProc = null;
const redisPort = 16379 + Math.floor(Math.random() * 1000);
if (redis && reference) redisProc = await startRedis(redisPort);
if (redisProc) {
  const sub = await resp(redisPort);
  const pub = await resp(redisPort);
  await sub.cmd('SUBSCRIBE', 'bench');
  let waiter = null;
  let count = 0;
  sub.onMessage(() => {
    count++;
    waiter?.();
  });
  const lat = [];
  for (let i = 0; i < N_LAT; i++) {
    const t0 = performance.now();
    const got = new Promise((r) => (waiter = r));
    await pub.cmd('PUBLISH', 'bench', JSON.stringify({ i }));
    await got;
    lat.push(performance.now() - t0);
  }
  count = 0;
  const t0 = performance.now();
  const done = new Promise((r) => (waiter = () => count >= N_TPUT && r()));
  const sends = [];
  for (let i = 0; i < N_TPUT; i++) sends.push(pub.cmd('PUBLISH', 'bench', JSON.stringify({ x: i })));
  await Promise.all(sends);
  await done;
  results.messages_redis_pubsub = { ...summary(lat), msgs_per_s: Math.round(N_TPUT / ((performance.now() - t0) / 1000)) };
  sub.close();
  pub.close();
}

// ---- Redis Streams (the durable peer) ----
// What RACK's mailbox is: a message is stored before the sender hears "sent", a consumer gets it,
// and it is acknowledged once handled. Here: XADD on a redis-server that appends every command to
// its append-only file and fsyncs once a second (RACK's SQLite commits its WAL without an fsync
// per commit, synchronous=NORMAL: both keep what was acknowledged across a crash of the server's
// process, and may lose the last second to a power cut); one consumer of a consumer group reads
// with XREADGROUP and XACKs what it read, sent with its next read as RACK's receiver acks with its
// next ask. Measured as the kernel is: one message at a time for the latency, then 20,000 with 16
// XADDs in flight.
if (redis && reference) {
  const aof = mkdtempSync(join(tmpdir(), 'rack-bench-aof-'));
  const port = redisPort + 1000;
  const proc = await startRedis(port, { aof });
  const producer = await resp(port);
  const consumer = await resp(port);
  await producer.cmd('XGROUP', 'CREATE', 'bench', 'readers', '$', 'MKSTREAM');
  let onEntries = () => {};
  let received = 0;
  void (async () => {
    let acks = [];
    for (;;) {
      // The XACK of the last batch travels with the next read (no wait for its reply).
      if (acks.length > 0) void consumer.cmd('XACK', 'bench', 'readers', ...acks);
      const r = await consumer.cmd('XREADGROUP', 'GROUP', 'readers', 'c1', 'COUNT', '256', 'BLOCK', '0', 'STREAMS', 'bench', '>');
      const entries = r?.[0]?.[1] ?? [];
      acks = entries.map((e) => e[0]);
      received += entries.length;
      onEntries();
    }
  })();
  const lat = [];
  for (let i = 0; i < N_LAT; i++) {
    const t0 = performance.now();
    const target = received + 1;
    const got = new Promise((r) => (onEntries = () => received >= target && r()));
    await producer.cmd('XADD', 'bench', '*', 'm', JSON.stringify({ i }));
    await got;
    lat.push(performance.now() - t0);
  }
  const base = received;
  const t0 = performance.now();
  const done = new Promise((r) => (onEntries = () => received - base >= N_TPUT && r()));
  let next = 0;
  await Promise.all(Array.from({ length: 16 }, async () => { while (next < N_TPUT) await producer.cmd('XADD', 'bench', '*', 'm', JSON.stringify({ x: ++next })); }));
  await done;
  results.messages_redis_streams = { ...summary(lat), msgs_per_s: Math.round(N_TPUT / ((performance.now() - t0) / 1000)) };
  producer.close();
  consumer.close();
  proc.kill();
  rmSync(aof, { recursive: true, force: true });
}

// RACK against each reference: its p50 latency as a multiple of theirs (lower is better), its
// throughput as a fraction of theirs (higher is better).
const versus = (ref) => {
  const k = results.messages_kernel;
  const r = results[ref];
  if (!k || !r) return ['', ''];
  return [`${(k.p50_us / r.p50_us).toFixed(2)}x`, `${(k.msgs_per_s / r.msgs_per_s).toFixed(2)}x`];
};
for (const ref of ['messages_ws_relay', 'messages_redis_pubsub', 'messages_redis_streams']) {
  const [p50, tput] = versus(ref);
  if (results[ref] && p50) Object.assign(results[ref], { kernel_p50_ratio: Number(p50.slice(0, -1)), kernel_msgs_ratio: Number(tput.slice(0, -1)) });
}
const row = (name, key) => [name, results[key]?.p50_us ?? 'n/a', results[key]?.p99_us ?? 'n/a', results[key]?.msgs_per_s ?? 'n/a', ...(key === 'messages_kernel' ? ['', ''] : versus(key))];
table('Messages (one-way delivery through a server on loopback, JSON payload of ~10 bytes)', ['path', 'p50 µs', 'p99 µs', 'msgs/s', 'RACK p50 ÷ this', 'RACK msgs/s ÷ this'], [
  row('RACK kernel (durable, acked)', 'messages_kernel'),
  row('raw ws relay (the limit)', 'messages_ws_relay'),
  row('Redis PUBLISH/SUBSCRIBE (in memory, at most once)', 'messages_redis_pubsub'),
  row('Redis Streams XADD/XREADGROUP/XACK (AOF, fsync every s)', 'messages_redis_streams'),
]);

// ---- shared memory ----
if (measure('shm')) {
  mark('shm', 'start');
  results.shm_kernel = { clients: CLIENTS, ops_per_s: await shmIncr(racks.slice(1, CLIENTS + 1), SHM_MS) };
  mark('shm', 'end');
}
if (redisProc) {
  const r = spawnSync('redis-benchmark', ['-p', String(redisPort), '-c', String(CLIENTS), '-n', '200000', '-t', 'incr', '-q', '--csv'], { encoding: 'utf8' });
  const m = /"INCR","([0-9.]+)"/.exec(r.stdout);
  results.shm_redis = { clients: CLIENTS, ops_per_s: m ? Math.round(Number(m[1])) : null };
}
table(`Shared memory: atomic increments, ${CLIENTS} clients`, ['store', 'ops/s'], [
  ['RACK kernel shm.incr (SQLite, durable)', results.shm_kernel?.ops_per_s ?? 'n/a'],
  ['redis-benchmark INCR (in memory)', results.shm_redis?.ops_per_s ?? 'n/a'],
]);

// ---- pipes ----
if (measure('pipe')) {
  mark('pipe', 'start');
  const pipe = await a.pipe();
  const block = Buffer.alloc(1024 * 1024, 7);
  const t0 = performance.now();
  const reading = (async () => {
    let n = 0;
    for await (const c of (await b.pipe(pipe.id)).reader()) n += c.length;
    return n;
  })();
  await pipeline(Readable.from((function* () { for (let i = 0; i < PIPE_BYTES / block.length; i++) yield block; })()), pipe.writer());
  const n = await reading;
  results.pipe_kernel = { bytes: n, mb_per_s: Math.round(n / 1e6 / ((performance.now() - t0) / 1000)) };
  mark('pipe', 'end');
}
if (reference) {
  const server = createServer((s) => s.resume());
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  let got = 0;
  server.removeAllListeners('connection');
  const done = new Promise((resolve) => server.on('connection', (s) => { s.on('data', (d) => (got += d.length)); s.on('end', resolve); }));
  const block = Buffer.alloc(1024 * 1024, 7);
  const t0 = performance.now();
  const sock = tcpConnect(server.address().port, '127.0.0.1');
  await pipeline(Readable.from((function* () { for (let i = 0; i < PIPE_BYTES / block.length; i++) yield block; })()), sock);
  await done;
  results.pipe_tcp = { bytes: got, mb_per_s: Math.round(got / 1e6 / ((performance.now() - t0) / 1000)) };
  server.close();
}
table(`Pipes: ${PIPE_BYTES / 2 ** 20} MiB from one process to another`, ['path', 'MB/s'], [
  ['RACK pipe (kernel buffer, backpressure)', results.pipe_kernel?.mb_per_s ?? 'n/a'],
  ['raw loopback TCP stream (the limit)', results.pipe_tcp?.mb_per_s ?? 'n/a'],
]);

for (const r of racks) r.close();
redisProc?.kill();
// VMs outlive their kernel by design: end the group first.
await fetch(`${k.url}/v1/groups/${gid}`, { method: 'DELETE', headers: { authorization: `Bearer ${k.adminToken}` } });
await k.close();
writeJson(jsonOut(), results);
writeJson(process.env.RACK_BENCH_WINDOW, windows);
process.exit(0);
