#!/usr/bin/env node
// RACK on a real Nova (the fixture of test/openstack): fork -> ACTIVE and fork -> app running for
// 1, 8 and 32 processes, beside the same servers created directly with Nova's API (what
// `openstack server create` does, without its start-up), which is the limit. Skipped, with one
// line, when the fixture is not running (test/openstack/fixture/up.sh starts it).
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import WebSocket from 'ws';
import { jsonOut, root, table, writeJson } from './lib/common.mjs';

const SIZES = [1, 8, 32];
const state = process.env.RACK_OS_STATE || '/tmp/rack-openstack';
const envFile = join(state, 'fixture.env');
const skip = (why) => {
  console.log(`openstack: skipped (${why}; test/openstack/fixture/up.sh starts the fixture)`);
  process.exit(0);
};
if (!existsSync(envFile)) skip(`no ${envFile}`);
for (const m of readFileSync(envFile, 'utf8').matchAll(/^export (.*)$/gm)) for (const kv of m[1].split(' ')) process.env[kv.split('=')[0]] = kv.slice(kv.indexOf('=') + 1);
const { loadCloudConfig } = await import(join(root, 'dist/openstack/cloud-config.js'));
const { KeystoneSession } = await import(join(root, 'dist/openstack/keystone.js'));
const { GuestHost } = await import(join(root, 'test/openstack/support/guests.mjs'));
const os = new KeystoneSession(loadCloudConfig({ env: { OS_CLOUD: 'rack', OS_CLIENT_CONFIG_FILE: process.env.OS_CLIENT_CONFIG_FILE } }));
try {
  await os.getToken();
} catch (err) {
  skip(`Keystone does not answer: ${err.message}`);
}

const nova = async (method, path, body) => {
  const res = await os.request('compute', { method, path, headers: { 'content-type': 'application/json', accept: 'application/json', 'openstack-api-version': 'compute 2.52' }, body: body && JSON.stringify(body), timeoutMs: 120_000 });
  const text = await res.body.text();
  if (res.status >= 300) throw new Error(`Nova ${method} ${path}: HTTP ${res.status} ${text.slice(0, 200)}`);
  return text ? JSON.parse(text) : null;
};
const tagged = async (tag) => (await nova('GET', `/servers/detail?tags=${tag}`)).servers;
async function untilGone(tag, ms = 300_000) {
  const deadline = Date.now() + ms;
  while ((await tagged(tag)).length > 0) {
    if (Date.now() > deadline) throw new Error(`servers tagged ${tag} still listed after ${ms / 1000} s`);
    await new Promise((r) => setTimeout(r, 500));
  }
}

/** The limit: N servers created at once with Nova's API, until Nova lists them all ACTIVE (polled every 200 ms). */
async function direct(n, run) {
  const tag = `rack-bench-${run}`;
  const t0 = performance.now();
  try {
    await Promise.all(Array.from({ length: n }, (_, i) =>
      nova('POST', '/servers', { server: { name: `bench-${run}-${i}`, imageRef: process.env.RACK_OS_IMAGE, flavorRef: process.env.RACK_OS_FLAVOR, networks: 'none', tags: [tag] } })));
    for (;;) {
      const s = await tagged(tag);
      if (s.some((x) => x.status === 'ERROR')) throw new Error('a directly created server went ERROR');
      if (s.length === n && s.every((x) => x.status === 'ACTIVE')) return performance.now() - t0;
      await new Promise((r) => setTimeout(r, 200));
    }
  } finally {
    for (const s of await tagged(tag)) await nova('DELETE', `/servers/${s.id}`);
    await untilGone(tag);
  }
}

/** `rack kernel --driver nova` as its own process, configured by OS_CLOUD, its poll at its default. */
async function kernel() {
  const dataDir = mkdtempSync(join(tmpdir(), 'rack-bench-os-'));
  const token = 'bench-admin-token-0123456789';
  const child = spawn(process.execPath, [join(root, 'dist/cli/main.js'), 'kernel', '--driver', 'nova', '--listen', '127.0.0.1:0', '--data', dataDir], {
    env: { ...process.env, OS_CLOUD: 'rack', RACK_ADMIN_TOKEN: token, RACK_LOG_LEVEL: 'warn' },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const url = await new Promise((resolve, reject) => {
    child.stdout.on('data', (d) => {
      const m = /RACK kernel at (\S+)/.exec(String(d));
      if (m) resolve(m[1]);
    });
    child.once('exit', (code) => reject(new Error(`rack kernel exited with ${code}`)));
  });
  const call = async (method, path, body) => {
    const res = await fetch(url + path, { method, headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' }, body: body && JSON.stringify(body) });
    const text = await res.text();
    if (!res.ok) throw new Error(`kernel ${method} ${path}: ${res.status} ${text}`);
    return text ? JSON.parse(text) : null;
  };
  const tag = `rack-kernel-${readFileSync(join(dataDir, 'kernel-id'), 'utf8').trim()}`;
  return { url, token, call, tag, close: () => new Promise((r) => (child.once('exit', r), child.kill('SIGTERM'))) };
}

/** A group's process events over the kernel's WebSocket; until(pred) resolves on the first state that satisfies pred. */
async function watch(k, gid) {
  const ws = new WebSocket(k.url.replace(/^http/, 'ws') + '/v1/ws', { headers: { authorization: `Bearer ${k.token}` } });
  await new Promise((ok, fail) => (ws.once('open', ok), ws.once('error', fail)));
  const latest = new Map();
  const waiters = new Set();
  let id = 0;
  const replies = new Map();
  ws.on('message', (d) => {
    const f = JSON.parse(String(d));
    if (f.id !== undefined && replies.has(f.id)) replies.get(f.id)(f);
    if (f.event === 'process') {
      latest.set(f.process.pid, f.process);
      for (const w of [...waiters]) w();
    }
  });
  const request = (frame) => new Promise((r) => (replies.set(++id, r), ws.send(JSON.stringify({ ...frame, id }))));
  await request({ op: 'hello', role: 'admin' });
  await request({ op: 'subscribe', gid });
  return {
    until: (pred, what, ms = 300_000) => new Promise((resolve, reject) => {
      const timer = setTimeout(() => (waiters.delete(check), reject(new Error(`not ${what} after ${ms / 1000} s: ${JSON.stringify([...latest.values()].map((p) => [p.pid, p.status, p.app_state]))}`))), ms);
      const check = () => pred([...latest.values()]) && (waiters.delete(check), clearTimeout(timer), resolve(performance.now()));
      waiters.add(check);
      check();
    }),
    close: () => ws.close(),
  };
}

/**
 * N processes forked at once; resolves with the time to all ACTIVE, or (with guests: the guest host
 * starts an agent for each server Nova lists ACTIVE) to all apps running. Two runs, so that the
 * guests' start-up on the same cores does not slow the ACTIVE figure down.
 */
async function viaRack(k, n, guests) {
  const { gid } = (await k.call('POST', '/v1/groups', { group: { name: `bench-${n}`, template: process.env.RACK_OS_IMAGE, flavor: process.env.RACK_OS_FLAVOR, args: { fanout: '0' } } })).group;
  const host = guests ? new GuestHost({ session: os, secret: process.env.RACK_OS_METADATA_SECRET, template: join(root, 'test/openstack/templates/tree'), match: (s) => s.metadata.rack_gid === gid }).start() : null;
  try {
    const w = await watch(k, gid);
    const t0 = performance.now();
    await k.call('POST', `/v1/groups/${gid}/processes`, { process: { count: n } });
    // An app has started once its agent says running, or ready already (the tree app is ready at once).
    const started = (p) => p.app_state === 'running' || p.app_state === 'ready';
    const t = await w.until((ps) => ps.length === n && ps.every(guests ? started : (p) => p.status === 'ACTIVE'), guests ? 'all apps started' : 'all ACTIVE');
    w.close();
    return t - t0;
  } finally {
    await k.call('DELETE', `/v1/groups/${gid}`);
    await untilGone(k.tag);
    await host?.stop();
  }
}

const k = await kernel();
const results = { poll_seconds: Number(process.env.RACK_NOVA_POLL_SECONDS ?? 5), sizes: {} };
try {
  for (const n of SIZES) {
    const limit = await direct(n, `${n}-${Date.now().toString(36)}`);
    const active = await viaRack(k, n, false);
    const running = await viaRack(k, n, true);
    results.sizes[n] = {
      nova_direct_active_ms: Math.round(limit),
      rack_fork_to_active_ms: Math.round(active),
      rack_fork_to_running_ms: Math.round(running),
      ratio_active: Math.round((active / limit) * 100) / 100,
      ratio_running: Math.round((running / limit) * 100) / 100,
    };
  }
} finally {
  await k.close();
  await os.close();
}
table(`RACK on the fixture's Nova (fake virt driver), poll every ${results.poll_seconds} s, beside the same servers created directly`, ['servers', 'Nova direct -> ACTIVE (ms)', 'RACK fork -> ACTIVE (ms)', 'RACK fork -> app running (ms)', 'ratios (ACTIVE, running)'],
  SIZES.map((n) => { const s = results.sizes[n]; return [n, s.nova_direct_active_ms, s.rack_fork_to_active_ms, s.rack_fork_to_running_ms, `${s.ratio_active} / ${s.ratio_running}`]; }));
writeJson(jsonOut(), results);
process.exit(0);
