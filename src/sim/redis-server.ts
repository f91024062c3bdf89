import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export const REDIS_MISSING = 'redis-server is not installed (Debian: apt-get install redis-server)';

/** A loopback port free now (the OS picks it; redis-server and a kernel list of URLs need it before they listen). */
export function freeLoopbackPort(): Promise<number> {
  return new Promise((ok, fail) => {
    const s = createServer();
    s.once('error', fail);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as { port: number };
      s.close(() => ok(port));
    });
  });
}

/** Starts Debian's redis-server in the foreground on loopback; resolves once it accepts connections. */
export function spawnRedisServer(port: number, dir: string, extra: readonly string[] = []): Promise<ChildProcess> {
  const child = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--daemonize', 'no', '--dir', dir, ...extra], { stdio: ['ignore', 'pipe', 'pipe'] });
  return new Promise((ok, fail) => {
    let out = '';
    child.once('error', (err: NodeJS.ErrnoException) => fail(new Error(err.code === 'ENOENT' ? REDIS_MISSING : err.message)));
    child.once('exit', (code) => fail(new Error(`redis-server on port ${port} exited (${code}) before it was ready:\n${out}`)));
    child.stdout!.on('data', (chunk: Buffer) => {
      out += chunk.toString();
      if (out.includes('Ready to accept connections')) {
        child.stdout!.removeAllListeners('data').resume();
        ok(child);
      }
    });
  });
}

/** Ends redis-server children (TERM, then waits for each) and removes their directory. */
export function stopRedisServers(children: readonly ChildProcess[], dir: string): () => Promise<void> {
  return async () => {
    await Promise.all(
      children.map((c) =>
        c.exitCode !== null || c.signalCode !== null
          ? undefined
          : new Promise<void>((ok) => {
              c.once('exit', () => ok());
              c.kill('SIGTERM');
            }),
      ),
    );
    rmSync(dir, { recursive: true, force: true });
  };
}

export interface PrivateRedis {
  url: string;
  stop(): Promise<void>;
}

/** A throwaway redis-server on a free loopback port, in memory only (a demo's or a test's store). */
export async function startPrivateRedis(): Promise<PrivateRedis> {
  const dir = mkdtempSync(join(tmpdir(), 'rack-redis-'));
  try {
    const port = await freeLoopbackPort();
    const child = await spawnRedisServer(port, dir);
    return { url: `redis://127.0.0.1:${port}`, stop: stopRedisServers([child], dir) };
  } catch (err) {
    rmSync(dir, { recursive: true, force: true });
    throw err;
  }
}
