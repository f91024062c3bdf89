import type { Logger } from '../common/log.js';
import { LocalBus, type KernelBus } from './bus.js';

/** The bus of a kernel on this store: Redis pub/sub beside a Redis store, else alone (SQLite is one kernel's). `id`: the kernel's (see kernelId). */
export async function openBus(storeUrl: string | null, id: () => string, log: Logger): Promise<KernelBus> {
  if (storeUrl === null) return new LocalBus();
  // Loaded only by a kernel on Redis, as the store engine is (see openStore).
  const { RedisBus } = await import('./redis-bus.js');
  return RedisBus.open(storeUrl, id(), 'rack', (err) => log.warn({ err: err.message }, 'Redis bus connection'));
}
