// Helpers shared by the benchmarks: percentiles, a table printer, a kernel in this process or as
// its own (on SQLite or on a Redis store), processes to measure with and the IPC measures made
// through them, a tiny Redis (RESP) client, and finding or installing Debian's redis-server.
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { connect, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export const root = join(import.meta.dirname, '..', '..');

export function percentile(sorted, p) {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}

export function table(title, header, rows) {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => String(r[i]).length)));
  console.log(`\n${title}`);
  console.log('  ' + header.map((h, i) => h.padEnd(widths[i])).join('  '));
  for (const r of rows) console.log('  ' + r.map((c, i) => String(c).padEnd(widths[i])).join('  '));
}

export function writeJson(file, data) {
  if (file) writeFileSync(file, JSON.stringify(data, null, 2));
}

export function jsonOut() {
  const i = process.argv.indexOf('--json-out');
  return i >= 0 ? process.argv[i + 1] : null;
}

/**
 * The kernel as its own OS process (`rack kernel`), as it runs in production; beside Redis's own
 * process. `store`: a Redis store URL (several kernels may share one); default SQLite in its data dir.
 */
export async function spawnKernel(templates = [], { store } = {}) {
  const dataDir = mkdtempSync(join(tmpdir(), 'rack-bench-'));
  const adminToken = 'bench-admin-token-0123456789';
  // RACK_BENCH_KERNEL_NODE_ARGS: options for the kernel's node (bench/profile.mjs passes --cpu-prof).
  const nodeArgs = (process.env.RACK_BENCH_KERNEL_NODE_ARGS ?? '').split(' ').filter(Boolean);
  const args = [...nodeArgs, join(root, 'dist/cli/main.js'), 'kernel', '--listen', '127.0.0.1:0', '--data', dataDir, ...templates.flatMap((t) => ['--templates', t]), ...(store ? ['--store', store] : [])];
  const child = spawn(process.execPath, args, { env: { ...process.env, RACK_ADMIN_TOKEN: adminToken, RACK_LOG_LEVEL: 'info' }, stdio: ['ignore', 'ignore', 'pipe'] });
  const url = await new Promise((resolve, reject) => {
    let buf = '';
    const onData = (d) => {
      buf += d;
      const line = buf.split('\n').find((l) => l.includes('"kernel listening"'));
      if (!line) return;
      child.stderr.off('data', onData);
      child.stderr.resume(); // later log lines are not read
      resolve(JSON.parse(line).url);
    };
    child.stderr.on('data', onData);
    child.once('exit', (code) => reject(new Error(`rack kernel exited with ${code}: ${buf.slice(-500)}`)));
  });
  return {
    url,
    adminToken,
    dataDir,
    pid: child.pid,
    close: () => new Promise((resolve) => {
      if (child.exitCode !== null || child.signalCode !== null) return resolve();
      child.once('exit', resolve);
      child.kill('SIGTERM');
    }),
  };
}

/** REST calls with the admin token to a kernel of spawnKernel; the answer's JSON (null when it has none). */
export function adminOf(k) {
  return async (method, path, body) => {
    const res = await fetch(k.url + path, { method, headers: { authorization: `Bearer ${k.adminToken}`, 'content-type': 'application/json' }, body: body && JSON.stringify(body) });
    const text = await res.text();
    if (!res.ok) throw new Error(`${method} ${path}: ${res.status} ${text}`);
    return text ? JSON.parse(text) : null;
  };
}

/**
 * A group of `template` forked through kernel `k`: a root process and `n` children, each with a
 * VM (compute id) already. `procs[0]` is the root.
 */
export async function forkProcesses(k, n, template = 'idle', name = 'bench') {
  const admin = adminOf(k);
  const gid = (await admin('POST', '/v1/groups', { group: { name, template } })).group.gid;
  await admin('POST', `/v1/groups/${gid}/processes`, { process: {} });
  await admin('POST', `/v1/groups/${gid}/processes`, { process: { ppid: 100, count: n } });
  for (;;) {
    const procs = (await admin('GET', `/v1/groups/${gid}/processes`)).processes;
    if (procs.every((p) => p.compute_id)) return { gid, procs: procs.sort((a, b) => a.pid - b.pid) };
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** A process's app token, where its (sim) VM got it: the user data the kernel that booted it wrote in its data dir. */
export async function tokenOf(kernels, p) {
  const { credentialsOf } = await import(join(root, 'dist/protocol/user-data.js'));
  for (const k of kernels) {
    const file = join(k.dataDir, 'vms', p.compute_id, 'vm.json');
    if (existsSync(file)) return credentialsOf(JSON.parse(readFileSync(file, 'utf8')).userData).token;
  }
  throw new Error(`no kernel booted the VM of process ${p.pid}`);
}

/** libdck connected as process `p` to kernel `k` (its token from whichever of `kernels` booted it). */
export async function connectAs(k, p, kernels = [k]) {
  const { connect } = await import(join(root, 'dist/libdck/index.js'));
  return connect({ url: k.url, token: await tokenOf(kernels, p) });
}

// ---- IPC measures through libdck (bench/ipc.mjs, bench/kernels.mjs) ----

/** p50 and p99 in µs of latencies in ms. */
export function latencySummary(lat) {
  const s = [...lat].sort((a, b) => a - b);
  return { p50_us: Math.round(percentile(s, 50) * 1000), p99_us: Math.round(percentile(s, 99) * 1000) };
}

/**
 * One message at a time from `a` to `b`: sent (stored, answered), then received from `inbox`,
 * b's `messages()`. p50/p99 in µs. An inbox is taken with next(), never left by a `break`
 * (that would end it with its last message unacknowledged, to come again to the next one).
 */
export async function messageLatency(a, b, inbox, n) {
  const lat = [];
  for (let i = 0; i < n; i++) {
    const t0 = performance.now();
    await a.send(b.pid, { i });
    await inbox.next();
    lat.push(performance.now() - t0);
  }
  return latencySummary(lat);
}

/**
 * `n` messages through each pair `{ from, to, inbox }` (inbox: to's `messages()`), all pairs at
 * once, each sender with `inFlight` sends unanswered (libdck sends those together in one frame);
 * msgs/s of all pairs together.
 */
export async function messageThroughput(pairs, n, inFlight = 16) {
  const t0 = performance.now();
  await Promise.all(pairs.map(async ({ from, to, inbox }) => {
    const receiving = (async () => {
      for (let got = 0; got < n; got++) await inbox.next();
    })();
    let next = 0;
    // A full mailbox (the receiver is behind) means wait and retry.
    const send = async (x) => {
      for (;;) {
        try {
          return await from.send(to.pid, { x });
        } catch (err) {
          if (err.code !== 'mailbox_full') throw err;
          await new Promise((r) => setTimeout(r, 5));
        }
      }
    };
    await Promise.all(Array.from({ length: inFlight }, async () => { while (next < n) await send(++next); }));
    await receiving;
  }));
  return Math.round((n * pairs.length) / ((performance.now() - t0) / 1000));
}

/** Each client increments `key` in its group's shared memory, one at a time, for `ms`; ops/s of all together. */
export async function shmIncr(clients, ms, key = 'bench') {
  let ops = 0;
  const t0 = performance.now();
  await Promise.all(clients.map(async (r) => {
    while (performance.now() - t0 < ms) {
      await r.shm.incr(key);
      ops++;
    }
  }));
  return Math.round(ops / ((performance.now() - t0) / 1000));
}

export async function startKernel(templates = []) {
  const { startKernel } = await import(join(root, 'dist/server/start.js'));
  const { silentLogger } = await import(join(root, 'dist/common/log.js'));
  return startKernel({ listen: '127.0.0.1:0', dataDir: mkdtempSync(join(tmpdir(), 'rack-bench-')), templates, adminToken: 'bench-admin-token-0123456789', log: silentLogger() });
}

/** Debian's redis-server: found, or installed with apt-get when we are root; null when neither. */
export function redisServer() {
  const has = () => spawnSync('sh', ['-c', 'command -v redis-server && command -v redis-benchmark'], { stdio: 'ignore' }).status === 0;
  if (has()) return 'redis-server';
  if (process.getuid?.() === 0) {
    console.log('installing Debian redis-server for the reference figures...');
    spawnSync('sh', ['-c', 'apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server redis-tools >/dev/null'], { stdio: 'inherit' });
  }
  return has() ? 'redis-server' : null;
}

/** CPU time (user + system) an OS process has used so far, in ms (10 ms steps: the kernel's clock ticks). */
export function cpuMsOf(pid) {
  // Fields after the command's closing parenthesis: state is the 3rd of /proc/PID/stat, utime the 14th, stime the 15th.
  const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
  return (Number(f[11]) + Number(f[12])) * 10;
}

/** A port nobody listens on now (the OS's pick). */
export function freePort() {
  return new Promise((resolve, reject) => {
    const s = createServer().listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
    s.once('error', reject);
  });
}

/** How startRedis runs redis-server by default: in memory only, as the references are measured. */
export const REDIS_ARGS = ['--save', '', '--appendonly', 'no'];

/**
 * A private redis-server on `port`: in memory only, or with `aof` (a directory) its append-only
 * file there, written for every command and fsynced once a second (`appendfsync everysec`).
 */
export async function startRedis(port, { aof } = {}) {
  const persistence = aof ? ['--save', '', '--appendonly', 'yes', '--appendfsync', 'everysec', '--dir', aof] : REDIS_ARGS;
  const child = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', ...persistence], { stdio: 'ignore' });
  for (let i = 0; i < 100; i++) {
    try {
      const c = await resp(port);
      c.close();
      return child;
    } catch {
      await new Promise((r) => setTimeout(r, 50));
    }
  }
  child.kill();
  throw new Error('redis-server did not start');
}

/** A minimal RESP client: commands in, replies (and pub/sub pushes) out, in order. */
export function resp(port) {
  return new Promise((resolve, reject) => {
    const sock = connect(port, '127.0.0.1');
    let buf = Buffer.alloc(0);
    const waiting = [];
    let onPush = null;
    const parse = (b, i) => {
      const nl = b.indexOf('\r\n', i);
      if (nl < 0) return null;
      const type = String.fromCharCode(b[i]);
      const line = b.toString('utf8', i + 1, nl);
      if (type === '+' || type === '-' || type === ':') return { value: type === ':' ? Number(line) : line, next: nl + 2 };
      if (type === '$') {
        const n = Number(line);
        if (n < 0) return { value: null, next: nl + 2 };
        if (b.length < nl + 2 + n + 2) return null;
        return { value: b.toString('utf8', nl + 2, nl + 2 + n), next: nl + 2 + n + 2 };
      }
      if (type === '*') {
        const n = Number(line);
        const out = [];
        let j = nl + 2;
        for (let k = 0; k < n; k++) {
          const r = parse(b, j);
          if (!r) return null;
          out.push(r.value);
          j = r.next;
        }
        return { value: out, next: j };
      }
      throw new Error(`bad RESP type ${type}`);
    };
    sock.on('data', (d) => {
      buf = buf.length ? Buffer.concat([buf, d]) : d;
      let i = 0;
      for (;;) {
        const r = parse(buf, i);
        if (!r) break;
        i = r.next;
        if (Array.isArray(r.value) && r.value[0] === 'message' && onPush) onPush(r.value[2]);
        else waiting.shift()?.(r.value);
      }
      buf = buf.subarray(i);
    });
    sock.once('error', reject);
    sock.once('connect', () =>
      resolve({
        cmd: (...args) =>
          new Promise((res) => {
            waiting.push(res);
            sock.write(`*${args.length}\r\n${args.map((a) => `$${Buffer.byteLength(String(a))}\r\n${a}\r\n`).join('')}`);
          }),
        onMessage: (fn) => (onPush = fn),
        close: () => sock.destroy(),
      }),
    );
  });
}
