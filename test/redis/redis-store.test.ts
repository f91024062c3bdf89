import { randomUUID } from 'node:crypto';
import { inject } from 'vitest';
import { RedisStore } from '../../src/store/redis/redis-store.js';
import { storeContract } from '../support/store-contract.js';

storeContract('Redis (one server)', () => RedisStore.open(inject('redisUrl'), `t-${randomUUID()}`));
