import type { TestProject } from 'vitest/node';
import { startRedis } from '../support/redis-server.js';

declare module 'vitest' {
  export interface ProvidedContext {
    /** The redis-server of `npm run test:redis` (unset in `npm test`). */
    redisUrl: string;
  }
}

/** One redis-server for the whole run; each store on it has its own key prefix. */
export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const redis = await startRedis();
  project.provide('redisUrl', redis.url);
  return redis.stop;
}
