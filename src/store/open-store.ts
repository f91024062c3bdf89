import { join } from 'node:path';
import { RackError } from '../common/errors.js';
import type { Logger } from '../common/log.js';
import { parseRedisUrl, redact } from './redis/url.js';
import type { Store } from './store.js';

export const STORE_HELP = 'redis://HOST:PORT[/DB] (one Redis server) or redis+cluster://HOST:PORT,HOST:PORT,... (a Redis Cluster); default: SQLite in DATA/rack.db';

/** Checks a store URL (null: the default, SQLite); a bad one is bad_request, in one line. */
export function checkStoreUrl(url: string | null): void {
  if (url === null) return;
  if (!/^redis(\+cluster)?:\/\//.test(url)) throw new RackError('bad_request', `--store must be ${STORE_HELP}; got "${redact(url)}"`);
  parseRedisUrl(url);
}

/** The store a kernel runs on: SQLite in its data dir, or Redis at `url`. */
export async function openStore(url: string | null, dataDir: string, log: Logger): Promise<Store> {
  checkStoreUrl(url);
  // Each engine is loaded only by a kernel that uses it (the CLI imports this file for --help).
  if (url === null) {
    const { SqliteStore } = await import('./sqlite/sqlite-store.js');
    return new SqliteStore(join(dataDir, 'rack.db'));
  }
  const { RedisStore } = await import('./redis/redis-store.js');
  return RedisStore.open(url, 'rack', (err) => log.warn({ err: err.message }, 'Redis store connection'));
}
