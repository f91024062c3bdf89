import type { Capacity } from '../../protocol/resources.js';
import type { ScheduleEntry, ScheduleStore } from '../store.js';
import type { Client, Scripts } from './connect.js';
import type { Keys } from './keys.js';
import type { PROCESS_SCRIPTS } from './scripts.js';

/** Each group's entries (`sched`: pid -> JSON) and pool (`pool`); the fork order is one counter for all. */
export class RedisSchedule implements ScheduleStore {
  constructor(
    private readonly redis: Client,
    private readonly keys: Keys,
    private readonly lua: Scripts<keyof typeof PROCESS_SCRIPTS>,
    private readonly groups: () => Promise<string[]>,
  ) {}

  async add(entries: ReadonlyArray<Omit<ScheduleEntry, 'seq'>>): Promise<ScheduleEntry[]> {
    if (entries.length === 0) return [];
    const last = await this.redis.incrby(this.keys.scheduleSeq, entries.length);
    const added = entries.map((e, i) => ({ ...e, seq: last - entries.length + 1 + i }));
    await Promise.all(added.map((e) => this.redis.hset(this.keys.group(e.gid) + 'sched', String(e.pid), JSON.stringify(e))));
    return added;
  }

  async dequeued(gid: string, pid: number): Promise<void> {
    await this.lua.run('dequeued', this.keys.group(gid), pid);
  }

  async delete(gid: string, pid: number): Promise<void> {
    await this.redis.hdel(this.keys.group(gid) + 'sched', String(pid));
  }

  async list(): Promise<ScheduleEntry[]> {
    const perGroup = await Promise.all((await this.groups()).map((gid) => this.redis.hvals(this.keys.group(gid) + 'sched')));
    return perGroup
      .flat()
      .map((json) => JSON.parse(json) as ScheduleEntry)
      .sort((a, b) => a.seq - b.seq);
  }

  async setPool(gid: string, c: Capacity | null): Promise<void> {
    const key = this.keys.group(gid) + 'pool';
    if (c === null) await this.redis.del(key);
    else await this.redis.set(key, JSON.stringify({ instances: c.instances ?? null, vcpus: c.vcpus ?? null, ram_mb: c.ram_mb ?? null }));
  }

  async pools(): Promise<Array<{ gid: string; capacity: Capacity }>> {
    const gids = (await this.groups()).sort();
    const pools = await Promise.all(gids.map((gid) => this.redis.get(this.keys.group(gid) + 'pool')));
    return gids.flatMap((gid, i) => (pools[i] ? [{ gid, capacity: JSON.parse(pools[i]) as Capacity }] : []));
  }
}
