#!/usr/bin/env node
// A greedy client beside everyone else: one WebSocket asks for 3,000 copies of a 900 KB value and
// never reads. The kernel pauses it at its outbound budget (then drops it) and keeps serving the
// others: /healthz latency on a fresh connection while it happens, beside the same with no such
// client, and the kernel's memory growth. Limit: /healthz under 50 ms.
import { get } from 'node:http';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import WebSocket from 'ws';
import { jsonOut, percentile, root, spawnKernel, table, writeJson } from './lib/common.mjs';

const LIMIT_MS = 50;
const MiB = 1024 * 1024;
const rss = (pid) => Number(/VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? 0) * 1024;
const healthz = (url) =>
  new Promise((resolve, reject) => {
    const t0 = performance.now();
    get(`${url}/healthz`, { agent: false }, (res) => {
      res.resume();
      res.on('end', () => (res.statusCode === 200 ? resolve(performance.now() - t0) : reject(new Error(`healthz ${res.statusCode}`))));
    }).on('error', reject);
  });
const sample = async (url, n = 50) => {
  const ms = [];
  for (let i = 0; i < n; i++) ms.push(await healthz(url));
  return ms.sort((a, b) => a - b);
};

const k = await spawnKernel([join(root, 'test/fixtures/templates')]);
const call = async (method, path, body) => {
  const r = await fetch(k.url + path, { method, headers: { authorization: `Bearer ${k.adminToken}`, 'content-type': 'application/json' }, body: body && JSON.stringify(body) });
  return r.status === 204 ? null : r.json();
};
let results;
try {
  const pid = Number(readFileSync(join(k.dataDir, 'kernel.pid'), 'utf8').trim() || 0) || null;
  const quiet = await sample(k.url);
  const gid = (await call('POST', '/v1/groups', { group: { name: 'greedy', template: 'idle' } })).group.gid;
  await call('PUT', `/v1/groups/${gid}/shm/big`, { value: 'x'.repeat(900 * 1024) });
  const ws = new WebSocket(`${k.url.replace('http', 'ws')}/v1/ws`, { headers: { authorization: `Bearer ${k.adminToken}` } });
  await new Promise((r) => ws.once('open', r));
  ws.send(JSON.stringify({ id: 0, op: 'hello', role: 'admin' }));
  await new Promise((r) => ws.once('message', r));
  ws.pause();
  const before = pid ? rss(pid) : 0;
  for (let id = 1; id <= 3000; id++) ws.send(JSON.stringify({ id, op: 'shm.get', gid, key: 'big' }));
  const busy = await sample(k.url);
  const after = pid ? rss(pid) : 0;
  ws.terminate();
  results = { limit_ms: LIMIT_MS, quiet: { p50: percentile(quiet, 50), max: quiet.at(-1) }, greedy: { p50: percentile(busy, 50), max: busy.at(-1) }, rss_growth_mib: pid ? (after - before) / MiB : null };
} finally {
  await k.close();
}
const f = (x) => `${x.toFixed(1)} ms`;
table('/healthz on a fresh connection (50 in a row)', ['while', 'p50', 'max', 'limit', 'ratio (max / limit)'], [
  ['no greedy client', f(results.quiet.p50), f(results.quiet.max), `< ${LIMIT_MS} ms`, (results.quiet.max / LIMIT_MS).toFixed(2)],
  ['a client that never reads 3,000 × 900 KB', f(results.greedy.p50), f(results.greedy.max), `< ${LIMIT_MS} ms`, (results.greedy.max / LIMIT_MS).toFixed(2)],
]);
if (results.rss_growth_mib !== null) console.log(`  kernel memory growth meanwhile: ${results.rss_growth_mib.toFixed(0)} MiB (3,000 answers would be 2.7 GB)`);
writeJson(jsonOut(), results);
