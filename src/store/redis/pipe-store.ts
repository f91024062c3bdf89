import { RackError } from '../../common/errors.js';
import type { PipeStore } from '../store.js';
import { scripts, type Client, type Scripts } from './connect.js';
import type { Keys } from './keys.js';
import { PIPE_SCRIPTS } from './pipe-scripts.js';

const WRITE = { 1: 'ok', 0: 'full', [-1]: 'epipe', [-2]: 'gone' } as const;

/** The kernel run of an end named `RUN/N`. */
function runOf(end: string): string {
  return end.slice(0, end.lastIndexOf('/'));
}

/**
 * Pipes on Redis: every kernel's ends on one buffer per pipe, each operation one script over
 * the group's keys (pipe-scripts.ts). Beside them, outside the group's slot, each kernel run's
 * open ends are listed (written before an end is recorded, removed after it is forgotten): when
 * a run is over (its kernel died), sweep() closes what it left open, so that readers elsewhere
 * get their EOF and writers their broken pipe.
 */
export class RedisPipes implements PipeStore {
  private readonly lua: Scripts<keyof typeof PIPE_SCRIPTS>;

  constructor(
    private readonly redis: Client,
    private readonly keys: Keys,
  ) {
    this.lua = scripts(redis, 'pipe', PIPE_SCRIPTS);
  }

  private run(name: keyof typeof PIPE_SCRIPTS, gid: string, id: string, ...args: Array<string | number | Buffer>): Promise<unknown> {
    return this.lua.run(name, this.keys.group(gid), id, ...args);
  }

  private added(gid: string, max: number, answer: number): void {
    if (answer === -2) throw new RackError('not_found', `no group ${gid}`);
    if (answer >= 0) throw new RackError('quota_exceeded', `quota: the group may have ${max} pipes open at once; it has ${answer}`);
  }

  async create(gid: string, id: string, max: number, owner: number | null): Promise<void> {
    this.added(gid, max, Number(await this.run('create', gid, id, max, owner ?? '')));
  }

  async fifo(gid: string, id: string, max: number): Promise<void> {
    this.added(gid, max, Number(await this.run('fifo', gid, id, max)));
  }

  async list(gid: string, pid: number): Promise<string[]> {
    return ((await this.run('list', gid, '', pid)) as string[]).sort();
  }

  async inherit(gid: string, ppid: number, pid: number): Promise<void> {
    await this.run('inherit', gid, '', ppid, pid);
  }

  async open(gid: string, id: string, end: string, mode: 'r' | 'w'): Promise<boolean> {
    const run = runOf(end);
    await this.redis.sadd(this.keys.pipeRuns, run);
    const entry = `${gid}\n${id}\n${end}`;
    await this.redis.sadd(this.keys.pipeEnds(run), entry);
    if ((await this.run('open', gid, id, end, mode)) === 1) return true;
    await this.redis.srem(this.keys.pipeEnds(run), entry);
    return false;
  }

  async close(gid: string, id: string, end: string): Promise<void> {
    await this.run('close', gid, id, end);
    await this.redis.srem(this.keys.pipeEnds(runOf(end)), `${gid}\n${id}\n${end}`);
  }

  async write(gid: string, id: string, data: Buffer, capacity: number): Promise<'ok' | 'full' | 'epipe' | 'gone'> {
    return WRITE[Number(await this.run('write', gid, id, capacity, data)) as keyof typeof WRITE];
  }

  async take(gid: string, id: string, max: number): Promise<{ data: Buffer; eof: boolean }> {
    const [data, eof] = (await this.lua.runBuffer('take', this.keys.group(gid), id, max)) as [Buffer, number];
    return { data, eof: eof === 1 };
  }

  async release(gid: string, pid: number): Promise<void> {
    await this.run('release', gid, '', pid);
  }

  async deleteGroup(gid: string): Promise<void> {
    await this.run('deleteGroup', gid, '');
  }

  async sweep(dead: (run: string) => Promise<boolean>): Promise<number> {
    let n = 0;
    for (const run of await this.redis.smembers(this.keys.pipeRuns)) {
      if (!(await dead(run))) continue;
      for (const entry of await this.redis.smembers(this.keys.pipeEnds(run))) {
        const [gid, id, end] = entry.split('\n') as [string, string, string];
        await this.close(gid, id, end);
        n++;
      }
      // Emptied first: an entry added meanwhile (a run is never dead to itself) is not lost.
      if ((await this.redis.scard(this.keys.pipeEnds(run))) === 0) await this.redis.srem(this.keys.pipeRuns, run);
    }
    return n;
  }
}
