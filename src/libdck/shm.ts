import type { KernelSocket } from '../client/kernel-socket.js';

/** Shared memory of the group: values, counters, compare-and-set, lists and watches. */
export class SharedMemory {
  constructor(private readonly conn: KernelSocket) {}

  async get<T = unknown>(key: string): Promise<T | null> {
    return (await this.conn.call('shm.get', { key })).value as T | null;
  }

  async set(key: string, value: unknown, opts: { ttl?: number } = {}): Promise<void> {
    await this.conn.call('shm.set', { key, value, ...(opts.ttl === undefined ? {} : { ttl: opts.ttl }) });
  }

  async delete(key: string): Promise<boolean> {
    return (await this.conn.call('shm.delete', { key })).deleted as boolean;
  }

  async incr(key: string, by = 1): Promise<number> {
    return (await this.conn.call('shm.incr', { key, by })).value as number;
  }

  /** Sets `value` if the key holds `expect` (null: the key is absent); true when it did. */
  async cas(key: string, expect: unknown, value: unknown): Promise<boolean> {
    return (await this.conn.call('shm.cas', { key, expect, value })).ok as boolean;
  }

  async push(key: string, ...values: unknown[]): Promise<number> {
    return (await this.conn.call('shm.push', { key, values })).length as number;
  }

  /** Pops the head of a list; with `timeout` seconds, waits for a push when it is empty. */
  async pop<T = unknown>(key: string, opts: { timeout?: number; right?: boolean } = {}): Promise<T | null> {
    const timeout = opts.timeout ?? 0;
    const r = await this.conn.call('shm.pop', { key, left: !opts.right, timeout }, { timeoutMs: timeout * 1000 + this.conn.timeoutMs });
    return r.value as T | null;
  }

  async range<T = unknown>(key: string, start = 0, stop = -1): Promise<T[]> {
    return (await this.conn.call('shm.range', { key, start, stop })).values as T[];
  }

  async len(key: string): Promise<number> {
    return (await this.conn.call('shm.len', { key })).length as number;
  }

  async keys(prefix = ''): Promise<string[]> {
    return (await this.conn.call('shm.keys', { prefix })).keys as string[];
  }

  /** Calls `fn` when a key starting with `prefix` changes; returns a function that stops watching. */
  async watch(prefix: string, fn: (change: { key: string; op: string }) => void): Promise<() => void> {
    const onEvent = (e: { event?: string; key?: string; op?: string }): void => {
      if (e.event === 'shm' && typeof e.key === 'string' && e.key.startsWith(prefix)) fn({ key: e.key, op: e.op ?? '' });
    };
    const renew = (): void => void this.conn.call('shm.watch', { prefix }).catch(() => {});
    this.conn.on('event', onEvent);
    this.conn.on('reconnect', renew);
    await this.conn.call('shm.watch', { prefix });
    return () => {
      this.conn.off('event', onEvent);
      this.conn.off('reconnect', renew);
    };
  }
}
