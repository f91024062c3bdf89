import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { RackError } from '../../src/common/errors.js';
import { silentLogger } from '../../src/common/log.js';
import { checkStoreUrl, openStore } from '../../src/store/open-store.js';
import { parseRedisUrl } from '../../src/store/redis/url.js';
import { SqliteStore } from '../../src/store/sqlite/sqlite-store.js';

describe('choosing the store', () => {
  it('reads redis:// and redis+cluster:// URLs', () => {
    expect(parseRedisUrl('redis://127.0.0.1:6380')).toEqual({ nodes: [{ host: '127.0.0.1', port: 6380 }], cluster: false, db: 0 });
    expect(parseRedisUrl('redis://:s%40cret@cache.local/3')).toEqual({ nodes: [{ host: 'cache.local', port: 6379 }], cluster: false, db: 3, password: 's@cret' });
    expect(parseRedisUrl('redis+cluster://a:7000,b:7001,[::1]:7002')).toEqual({
      nodes: [{ host: 'a', port: 7000 }, { host: 'b', port: 7001 }, { host: '::1', port: 7002 }],
      cluster: true,
      db: 0,
    });
  });

  it('refuses anything else with bad_request, in one line, without the password', () => {
    for (const url of ['mysql://h:1', 'redis://', 'redis://h:70000', 'redis://a:1,b:2', 'redis+cluster://a:1/2', 'redis://:secret@h:1/x', 'redis:/h:1', 'mysql://u:secret@h']) {
      let err: unknown;
      try {
        checkStoreUrl(url);
      } catch (e) {
        err = e;
      }
      expect(err, url).toBeInstanceOf(RackError);
      expect((err as RackError).code, url).toBe('bad_request');
      expect((err as RackError).message, url).not.toContain('\n');
      expect((err as RackError).message, url).not.toContain('secret');
    }
    expect(() => checkStoreUrl(null)).not.toThrow();
  });

  it('SQLite in the data dir by default; an unreachable Redis fails at once with unavailable', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'rack-store-'));
    try {
      const store = await openStore(null, dir, silentLogger());
      expect(store).toBeInstanceOf(SqliteStore);
      await store.close();
      // Port 1 on loopback: nothing listens there, the connection is refused.
      await expect(openStore('redis://127.0.0.1:1', dir, silentLogger())).rejects.toMatchObject({ code: 'unavailable', message: expect.stringMatching(/^cannot reach Redis at redis:\/\/127\.0\.0\.1:1: .*ECONNREFUSED/) });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
