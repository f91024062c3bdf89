// Helpers shared by the benchmarks: percentiles, a table printer, a kernel in this process,
// a tiny Redis (RESP) client, and finding or installing Debian's redis-server.
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
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

/** The kernel as its own OS process (`rack kernel`), as it runs in production; beside Redis's own process. */
export async function spawnKernel(templates = []) {
  const dataDir = mkdtempSync(join(tmpdir(), 'rack-bench-'));
  const adminToken = 'bench-admin-token-0123456789';
  // RACK_BENCH_KERNEL_NODE_ARGS: options for the kernel's node (bench/profile.mjs passes --cpu-prof).
  const nodeArgs = (process.env.RACK_BENCH_KERNEL_NODE_ARGS ?? '').split(' ').filter(Boolean);
  const args = [...nodeArgs, join(root, 'dist/cli/main.js'), 'kernel', '--listen', '127.0.0.1:0', '--data', dataDir, ...templates.flatMap((t) => ['--templates', t])];
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
    close: () => new Promise((resolve) => {
      child.once('exit', resolve);
      child.kill('SIGTERM');
    }),
  };
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

/**
 * A private redis-server on `port`: in memory only, or with `aof` (a directory) its append-only
 * file there, written for every command and fsynced once a second (`appendfsync everysec`).
 */
export async function startRedis(port, { aof } = {}) {
  const persistence = aof ? ['--appendonly', 'yes', '--appendfsync', 'everysec', '--dir', aof] : ['--appendonly', 'no'];
  const child = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', ...persistence], { stdio: 'ignore' });
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
