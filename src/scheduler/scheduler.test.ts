import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { silentLogger } from '../common/log.js';
import { DEFAULT_QUOTAS } from '../protocol/process.js';
import { SqliteStore } from '../store/sqlite/sqlite-store.js';
import { Scheduler } from './scheduler.js';

/** Two kernels' schedulers on one store (what several kernels on Redis are): sync() keeps each in line with the other. */
describe('Scheduler.sync', () => {
  let store: SqliteStore;
  let a: Scheduler;
  let b: Scheduler;
  const size = { instances: 1, vcpus: 1, ram_mb: 512 };
  const make = (): Scheduler => new Scheduler({ store: store.schedule, compute: { flavor: async () => null }, log: silentLogger() });
  const place = { priority: 0, deadline: null, userdata: null };

  beforeEach(async () => {
    store = new SqliteStore(':memory:');
    await store.groups.create({ gid: 'g', name: 'g', description: '', template: 't', flavor: null, args: {}, quotas: { ...DEFAULT_QUOTAS }, created_at: new Date().toISOString() });
    [a, b] = [make(), make()];
    await a.load(async () => true);
    await b.load(async () => true);
  });
  afterEach(async () => {
    a.close();
    b.close();
    await store.close();
  });

  it("counts the other's holdings and queue and its pool settings, follows its queue, and forgets what the store no longer has", async () => {
    await a.setPool('g', { instances: 1 });
    const hold = a.reserve('g', size, 2, 0, false);
    expect(hold.now).toBe(1);
    await a.record(hold, [100, 101], place);
    let freed = 0;
    b.on('freed', () => freed++);
    await b.sync();
    expect(freed).toBe(1);
    expect(b.view('g').group).toMatchObject({ capacity: { instances: 1 }, used: { instances: 1 }, queued: 1 });
    expect(b.reserve('g', size, 1, 0, false).now).toBe(0); // behind A's queued fork
    await b.sync();
    expect(freed).toBe(1); // nothing new

    // A's first ends and its queued one boots there.
    await a.release('g', 100);
    expect(await a.next()).toMatchObject({ gid: 'g', pid: 101 });
    await b.sync();
    expect(b.view('g').group).toMatchObject({ used: { instances: 1 }, queued: 0 });
    await a.release('g', 101);
    await b.sync();
    expect(b.view('g').group).toMatchObject({ used: { instances: 0 }, queued: 0 });
    expect(freed).toBe(3);
  });

  it('a fork queued by a kernel that is gone is next here once it fits', async () => {
    await a.setPool('g', { instances: 1 });
    const hold = a.reserve('g', size, 2, 0, false);
    await a.record(hold, [100, 101], place);
    a.close(); // A dies; its process 100 ends (recorded by another kernel)
    await b.sync();
    expect(await b.next()).toBeNull();
    await b.release('g', 100);
    expect(await b.next()).toMatchObject({ gid: 'g', pid: 101 });
  });
});
