#!/usr/bin/env node
// IPC benchmarks, each beside its reference in the same run:
//   messages through the kernel  vs  a raw ws relay on loopback (the limit)  vs  Redis PUB/SUB (a peer)
//   shared-memory incr ops/s     vs  redis-benchmark INCR with the same number of clients
//   pipe MB/s                    vs  a raw loopback TCP stream
import { spawn, spawnSync } from 'node:child_process';
import { createServer, connect as tcpConnect } from 'node:net';
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

table('Messages (one-way delivery through a server on loopback, JSON payload of ~10 bytes)', ['path', 'p50 µs', 'p99 µs', 'msgs/s'], [
  ['RACK kernel (durable, acked)', results.messages_kernel?.p50_us ?? 'n/a', results.messages_kernel?.p99_us ?? 'n/a', results.messages_kernel?.msgs_per_s ?? 'n/a'],
  ['raw ws relay (the limit)', results.messages_ws_relay?.p50_us ?? 'n/a', results.messages_ws_relay?.p99_us ?? 'n/a', results.messages_ws_relay?.msgs_per_s ?? 'n/a'],
  ['Redis PUBLISH/SUBSCRIBE', results.messages_redis_pubsub?.p50_us ?? 'n/a', results.messages_redis_pubsub?.p99_us ?? 'n/a', results.messages_redis_pubsub?.msgs_per_s ?? 'n/a'],
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
