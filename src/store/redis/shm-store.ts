import type { ShmStore, ShmValue } from '../store.js';
import { scripts, type Client, type Scripts } from './connect.js';
import type { Keys } from './keys.js';
import { SHM_SCRIPTS } from './shm-scripts.js';

/** Shared memory on Redis: each operation one script over the group's keys (see shm-scripts.ts). */
export class RedisShm implements ShmStore {
  private readonly lua: Scripts<keyof typeof SHM_SCRIPTS>;

  constructor(
    private readonly redis: Client,
    private readonly names: Keys,
  ) {
    this.lua = scripts(redis, 'shm', SHM_SCRIPTS);
  }

  private run(name: keyof typeof SHM_SCRIPTS, gid: string, ...args: Array<string | number>): Promise<unknown> {
    return this.lua.run(name, this.names.group(gid), Date.now(), ...args);
  }

  async get(gid: string, key: string): Promise<ShmValue> {
    const [json, version] = (await this.run('get', gid, key)) as [string?, number?];
    return { json: json ?? null, version: version ?? 0 };
  }

  async set(gid: string, key: string, json: string, ttlMs: number | null, maxBytes: number): Promise<number> {
    // Listed before the key is written: expire() visits the group (a group listed with nothing to expire costs a call).
    if (ttlMs !== null) await this.redis.sadd(this.names.shmExpiring, gid);
    return (await this.run('set', gid, key, json, ttlMs ?? '', maxBytes)) as number;
  }

  async delete(gid: string, key: string): Promise<boolean> {
    return (await this.run('delete', gid, key)) === 1;
  }

  async incr(gid: string, key: string, by: number, maxBytes: number, rid: string | null = null): Promise<number> {
    return Number(await this.run('incr', gid, key, by, maxBytes, rid ?? ''));
  }

  async cas(gid: string, key: string, expect: string | null, json: string, maxBytes: number, rid: string | null = null): Promise<{ ok: boolean; current: string | null }> {
    const [ok, current] = JSON.parse((await this.run('cas', gid, key, expect === null ? '0' : '1', expect ?? '', json, maxBytes, rid ?? '')) as string) as [boolean, string | null];
    return { ok, current };
  }

  async push(gid: string, key: string, values: readonly string[], left: boolean, maxBytes: number, rid: string | null = null): Promise<number> {
    return Number(await this.run('push', gid, key, left ? '1' : '0', maxBytes, rid ?? '', ...values));
  }

  async usage(gid: string): Promise<number> {
    return Number((await this.redis.get(this.names.group(gid) + 'shm:bytes')) ?? 0);
  }

  async pop(gid: string, key: string, left: boolean, rid: string | null = null): Promise<string | null> {
    return (await this.run('pop', gid, key, left ? '1' : '0', rid ?? '')) as string | null;
  }

  async range(gid: string, key: string, start: number, stop: number): Promise<string[]> {
    return (await this.run('range', gid, key, start, stop)) as string[];
  }

  async len(gid: string, key: string): Promise<number> {
    return (await this.run('len', gid, key)) as number;
  }

  async keys(gid: string, prefix: string): Promise<string[]> {
    return (await this.run('keys', gid, prefix)) as string[];
  }

  async expire(now: number): Promise<Array<{ gid: string; key: string }>> {
    const gids = await this.redis.smembers(this.names.shmExpiring);
    const gone = await Promise.all(gids.map(async (gid) => ((await this.lua.run('expire', this.names.group(gid), now)) as string[]).map((key) => ({ gid, key }))));
    return gone.flat();
  }
}
