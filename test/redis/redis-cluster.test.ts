import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe } from 'vitest';
import { RedisStore } from '../../src/store/redis/redis-store.js';
import { startRedisCluster, type RedisServers } from '../support/redis-server.js';
import { storeContract } from '../support/store-contract.js';

describe('a three-master Redis Cluster', () => {
  let cluster: RedisServers;
  beforeAll(async () => {
    cluster = await startRedisCluster(3);
  }, 90_000);
  afterAll(() => cluster?.stop());

  // Groups spread over the three masters: each test's groups (random gids) land in different slots.
  storeContract('Redis Cluster', () => RedisStore.open(cluster.url, `t-${randomUUID()}`));
});
