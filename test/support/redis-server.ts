import type { ChildProcess } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { freeLoopbackPort, REDIS_MISSING as SERVER_MISSING, spawnRedisServer, stopRedisServers } from '../../src/sim/redis-server.js';

export const REDIS_MISSING = 'test:redis needs redis-server and redis-cli: apt-get install redis-server';

export interface RedisServers {
  /** The store URL: redis://… for one server, redis+cluster://… for a cluster. */
  url: string;
  stop(): Promise<void>;
}

const taken = new Set<number>();

/** A port free now and not handed out before in this run (a cluster needs several at once). */
async function freePort(): Promise<number> {
  for (;;) {
    const port = await freeLoopbackPort();
    if (!taken.has(port)) {
      taken.add(port);
      return port;
    }
  }
}

const redisServer = (port: number, dir: string, extra: string[]): Promise<ChildProcess> => spawnRedisServer(port, dir, extra).catch((err: Error) => {
  throw err.message === SERVER_MISSING ? new Error(REDIS_MISSING) : err;
});
const stopAll = stopRedisServers;

/** One throwaway redis-server on loopback (no persistence). */
export async function startRedis(): Promise<RedisServers> {
  const dir = mkdtempSync(join(tmpdir(), 'rack-redis-'));
  const port = await freePort();
  const child = await redisServer(port, dir, []);
  return { url: `redis://127.0.0.1:${port}`, stop: stopAll([child], dir) };
}

/**
 * A Redis Cluster of `masters` servers on loopback (no replicas), all slots assigned. Once, on a
 * busy CI machine, `--cluster create` waited for the nodes to join for over a minute: an attempt
 * that takes longer than CREATE_MS is stopped and made again on fresh ports, and after three the
 * last error is the answer.
 */
export async function startRedisCluster(masters = 3): Promise<RedisServers> {
  let last: Error | undefined;
  for (let attempt = 0; attempt < 3; attempt++) {
    try {
      return await clusterOnce(masters);
    } catch (err) {
      last = err as Error;
      if (last.message === REDIS_MISSING) break;
    }
  }
  throw last!;
}

const CREATE_MS = 20_000;

async function clusterOnce(masters: number): Promise<RedisServers> {
  const dir = mkdtempSync(join(tmpdir(), 'rack-redis-cluster-'));
  const children: ChildProcess[] = [];
  const stop = stopAll(children, dir);
  try {
    const ports: number[] = [];
    for (let i = 0; i < masters; i++) {
      const [port, bus] = [await freePort(), await freePort()];
      ports.push(port);
      children.push(await redisServer(port, dir, ['--cluster-enabled', 'yes', '--cluster-port', String(bus), '--cluster-config-file', `nodes-${port}.conf`]));
    }
    // --cluster create returns once every node agrees on the slots ("Waiting for the cluster to join").
    await execa('redis-cli', ['--cluster', 'create', ...ports.map((p) => `127.0.0.1:${p}`), '--cluster-replicas', '0', '--cluster-yes'], { timeout: CREATE_MS }).catch((err: NodeJS.ErrnoException & { stderr?: string; timedOut?: boolean }) => {
      if (err.code === 'ENOENT') throw new Error(REDIS_MISSING);
      throw new Error(err.timedOut ? `redis-cli --cluster create did not finish within ${CREATE_MS / 1000} s` : `redis-cli --cluster create failed: ${err.stderr ?? err.message}`);
    });
    // --cluster create returns when the nodes agree on the configuration; each says
    // cluster_state:ok only once it has heard that every slot is served. Redis has no event for
    // that, so ask: a client that connected before it could wait a minute (seen on CI).
    const deadline = Date.now() + CREATE_MS;
    for (const port of ports) {
      while (!(await execa('redis-cli', ['-p', String(port), 'cluster', 'info'])).stdout.includes('cluster_state:ok')) {
        if (Date.now() > deadline) throw new Error(`the cluster node on port ${port} did not reach cluster_state:ok within ${CREATE_MS / 1000} s`);
        await new Promise((r) => setTimeout(r, 50));
      }
    }
    return { url: `redis+cluster://${ports.map((p) => `127.0.0.1:${p}`).join(',')}`, stop };
  } catch (err) {
    await stop();
    throw err;
  }
}
