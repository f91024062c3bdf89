#!/usr/bin/env node
// The kernel's cost per VM as groups grow: fork and group delete at 500, 2,000 and 5,000 VMs on
// the fake compute driver (the kernel's own work, no OS processes), and a group of 1,000 sim VMs
// deleted by a kernel in its own process. Linear means the same CPU per VM at every size; the
// limit is 1.5x the smallest size's cost. These were timed tests once; timing belongs here.
import { execFile, spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { jsonOut, root, table, writeJson } from './lib/common.mjs';

// --only ps: the `rack ps` measure alone (bench/profile.mjs ps runs it so).
const onlyPs = process.argv.includes('--only') && process.argv[process.argv.indexOf('--only') + 1] === 'ps';
const { Kernel } = await import(join(root, 'dist/kernel/kernel.js'));
const { SqliteStore } = await import(join(root, 'dist/store/sqlite/sqlite-store.js'));
const { FakeDriver } = await import(join(root, 'dist/compute/fake/fake-driver.js'));
const { silentLogger } = await import(join(root, 'dist/common/log.js'));
const ADMIN = { kind: 'admin' };
const LIMIT = 1.5;

/** CPU µs per VM to fork n children of one root, and to delete their group. */
async function perVm(n) {
  const store = new SqliteStore(':memory:');
  const kernel = new Kernel({
    store,
    compute: new FakeDriver(),
    tokens: { issue: async (_g, pid) => ({ app: `rkp_bench-app-${pid}`, agent: `rkg_bench-agent-${pid}` }) },
    log: silentLogger(),
    url: () => 'http://kernel',
    forkLimit: 1000,
    quotas: { processes: 10_000 },
  });
  const gid = (await kernel.createGroup({ name: 'big', template: 'image' })).gid;
  const [rootProc] = await kernel.fork(ADMIN, gid, {});
  let t0 = process.cpuUsage();
  for (let i = 0; i < n; i += 1000) await kernel.fork(ADMIN, gid, { ppid: rootProc.pid, count: Math.min(1000, n - i) });
  const f = process.cpuUsage(t0);
  t0 = process.cpuUsage();
  await kernel.deleteGroup(gid);
  const d = process.cpuUsage(t0);
  await kernel.close();
  await store.close();
  return { fork: (f.user + f.system) / n, del: (d.user + d.system) / n };
}

const fake = [];
if (!onlyPs) {
  await perVm(200); // the JIT warms up first
  for (const n of [500, 2000, 5000]) fake.push({ n, ...(await perVm(n)) });
  const base = fake[0];
  table('kernel CPU per VM, fake compute driver', ['VMs', 'fork µs/VM', 'ratio', 'delete µs/VM', 'ratio', 'limit'], fake.map((r) => [
    r.n, r.fork.toFixed(0), (r.fork / base.fork).toFixed(2), r.del.toFixed(0), (r.del / base.del).toFixed(2), `≤ ${LIMIT}`,
  ]));
}

// `rack ps` of 10,000 processes (one group, fake driver, the kernel in this process) beside the
// REST list it is built on, fetched by curl: both are a process started, a request, an answer.
const PS_N = 10_000;
const PS_LIMIT_S = 0.5;
// bench/profile.mjs ps: RACK_BENCH_CLI_NODE_ARGS are node options for the CLI (the profiler's),
// added to its #! line's; RACK_BENCH_WINDOW=file: when the CLI runs started and ended
// (CLOCK_MONOTONIC µs, the profiler's clock).
const cliArgs = (process.env.RACK_BENCH_CLI_NODE_ARGS ?? '').split(' ').filter(Boolean);
const cli = join(root, 'dist/cli/main.js');
const cliFlags = readFileSync(cli, 'utf8').split('\n', 1)[0].split(' ').filter((a) => a.startsWith('--'));
const rack = (args) => (cliArgs.length > 0 ? [process.execPath, [...cliFlags, ...cliArgs, cli, ...args]] : [cli, args]);
async function psOf(n) {
  const { startKernel } = await import(join(root, 'dist/server/start.js'));
  const k = await startKernel({ listen: '127.0.0.1:0', dataDir: mkdtempSync(join(tmpdir(), 'rack-bench-ps-')), adminToken: 'bench-admin-token-0123456789', log: silentLogger(), compute: new FakeDriver(), forkLimit: 1000, quotas: { processes: n + 10 } });
  try {
    const gid = (await k.kernel.createGroup({ name: 'ps', template: 'image' })).gid;
    const [first] = await k.kernel.fork(ADMIN, gid, {});
    for (let i = 1; i < n; i += 1000) await k.kernel.fork(ADMIN, gid, { ppid: first.pid, count: Math.min(1000, n - i) });
    const env = { ...process.env, RACK_URL: k.url, RACK_TOKEN: k.adminToken };
    // Not spawnSync: the kernel answering it runs on this process's event loop.
    const wall = (cmd, args) => new Promise((resolve, reject) => {
      const t0 = performance.now();
      execFile(cmd, args, { env, maxBuffer: 64 * 1024 * 1024 }, (err, stdout) => {
        if (err) return reject(new Error(`${cmd} ${args.join(' ')}: ${err.message}`));
        resolve({ s: (performance.now() - t0) / 1000, lines: stdout.split('\n').length });
      });
    });
    const best = async (f) => {
      const runs = [];
      for (let i = 0; i < 5; i++) runs.push(await f());
      return runs.sort((a, b) => a.s - b.s)[0];
    };
    // As a user runs it: the script itself, so that its #! line's node flags apply.
    const start = Number(process.hrtime.bigint() / 1000n);
    const ps = await best(() => wall(...rack(['ps', '--gid', gid])));
    if (ps.lines < n) throw new Error(`rack ps printed ${ps.lines} lines for ${n} processes`);
    const tree = await best(() => wall(...rack(['ps', '--gid', gid, '--tree'])));
    writeJson(process.env.RACK_BENCH_WINDOW, { ps: { start, end: Number(process.hrtime.bigint() / 1000n) } });
    const rest = await best(() => wall('curl', ['-sf', '-o', '/dev/null', '-H', `authorization: Bearer ${k.adminToken}`, `${k.url}/v1/groups/${gid}/processes`]));
    return { n, ps_s: ps.s, tree_s: tree.s, rest_s: rest.s };
  } finally {
    await k.close();
  }
}
const ps = await psOf(PS_N);
table(`rack ps of ${PS_N.toLocaleString('en')} processes (best of 5)`, ['command', 'wall s', 'limit', 'ratio (s / limit)'], [
  ['rack ps', ps.ps_s.toFixed(2), `≤ ${PS_LIMIT_S} s`, (ps.ps_s / PS_LIMIT_S).toFixed(2)],
  ['rack ps --tree', ps.tree_s.toFixed(2), `≤ ${PS_LIMIT_S} s`, (ps.tree_s / PS_LIMIT_S).toFixed(2)],
  ['curl of the REST list (reference)', ps.rest_s.toFixed(2), '', ''],
]);
if (onlyPs) process.exit(0);

// A kernel in its own process deleting a group of sim VMs (each an agent + app OS process tree).
const cpuOf = (pid) => {
  const f = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = f.slice(f.lastIndexOf(')') + 2).split(' ');
  const tick = Number(spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).stdout.trim()) || 100;
  return (Number(fields[11]) + Number(fields[12])) / tick;
};
const dataDir = mkdtempSync(join(tmpdir(), 'rack-bench-scale-'));
const adminToken = 'bench-admin-token-0123456789';
const child = spawn(process.execPath, [join(root, 'dist/cli/main.js'), 'kernel', '--listen', '127.0.0.1:0', '--data', dataDir, '--templates', join(root, 'test/fixtures/templates')], {
  env: { ...process.env, RACK_ADMIN_TOKEN: adminToken, RACK_LOG_LEVEL: 'info' },
  stdio: ['ignore', 'ignore', 'pipe'],
});
const url = await new Promise((resolve, reject) => {
  let buf = '';
  const onData = (d) => {
    buf += d;
    const line = buf.split('\n').find((l) => l.includes('"kernel listening"'));
    if (!line) return;
    child.stderr.off('data', onData);
    child.stderr.resume();
    resolve(JSON.parse(line).url);
  };
  child.stderr.on('data', onData);
  child.once('exit', (code) => reject(new Error(`rack kernel exited with ${code}: ${buf.slice(-500)}`)));
});
const call = async (method, path, body) => {
  const r = await fetch(url + path, { method, headers: { authorization: `Bearer ${adminToken}`, 'content-type': 'application/json' }, body: body && JSON.stringify(body) });
  return { status: r.status, body: r.status === 204 ? null : await r.json() };
};
async function simDelete(n) {
  const gid = (await call('POST', '/v1/groups', { group: { name: `scale-${n}`, template: 'idle', quotas: { processes: n + 10 } } })).body.group.gid;
  await call('POST', `/v1/groups/${gid}/processes`, { process: {} });
  for (let i = 0; i < n - 1; i += 500) await call('POST', `/v1/groups/${gid}/processes`, { process: { ppid: 100, count: Math.min(500, n - 1 - i) } });
  for (;;) {
    const list = (await call('GET', `/v1/groups/${gid}/processes`)).body.processes;
    if (list.length === n && list.every((p) => p.status === 'ACTIVE')) break;
    await new Promise((r) => setTimeout(r, 500));
  }
  const before = cpuOf(child.pid);
  const t0 = performance.now();
  const r = await call('DELETE', `/v1/groups/${gid}`);
  if (r.status !== 204) throw new Error(`group delete answered ${r.status}`);
  return { n, cpuMsPerVm: ((cpuOf(child.pid) - before) * 1000) / n, wallS: (performance.now() - t0) / 1000 };
}
let sim;
try {
  sim = [await simDelete(250), await simDelete(1000)];
} finally {
  await new Promise((resolve) => {
    child.once('exit', resolve);
    child.kill('SIGTERM');
  });
  rmSync(dataDir, { recursive: true, force: true });
}
table('group delete, sim VMs, kernel in its own process', ['VMs', 'kernel CPU ms/VM', 'ratio', 'wall s', 'limit'], sim.map((r) => [
  r.n, r.cpuMsPerVm.toFixed(2), (r.cpuMsPerVm / Math.max(sim[0].cpuMsPerVm, 0.0005)).toFixed(2), r.wallS.toFixed(1), `≤ ${LIMIT}`,
]));
writeJson(jsonOut(), { limit: LIMIT, fake, sim, ps: { ...ps, limit_s: PS_LIMIT_S } });
