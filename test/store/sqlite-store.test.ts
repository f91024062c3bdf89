import { SqliteStore } from '../../src/store/sqlite/sqlite-store.js';
import { storeContract } from '../support/store-contract.js';

storeContract('SQLite', async () => new SqliteStore(':memory:'));
