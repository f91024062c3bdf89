import { afterAll, describe, expect, inject, it } from 'vitest';
import type { BusMessage } from '../../src/bus/bus.js';
import { RedisBus } from '../../src/bus/redis-bus.js';

/** Resolves with the first message `bus` hears that `match` accepts. */
function heard(bus: RedisBus, match: (m: BusMessage) => boolean): Promise<BusMessage> {
  return new Promise((resolve) => bus.subscribe((m) => match(m) && resolve(m)));
}

describe('the kernel bus on Redis', () => {
  const buses: RedisBus[] = [];
  afterAll(async () => {
    for (const b of buses) await b.close();
  });

  it('kernels on another database of the same server are another installation: they do not hear this one', async () => {
    const url = inject('redisUrl');
    const open = async (db: number, id: string): Promise<RedisBus> => {
      const b = await RedisBus.open(`${url}/${db}`, id);
      buses.push(b);
      return b;
    };
    const [a, b, c, d] = [await open(3, 'a'), await open(3, 'b'), await open(4, 'c'), await open(4, 'd')];
    const onD: string[] = [];
    d.subscribe((m) => m.t === 'group-deleted' && onD.push(m.gid));
    const toB = heard(b, (m) => m.t === 'group-deleted');
    a.publish({ t: 'group-deleted', gid: 'from-db-3' });
    expect(await toB).toEqual({ t: 'group-deleted', gid: 'from-db-3' });
    // Redis hands a publication to every subscriber of its channel at once: had d been one, it
    // would have had db 3's before db 4's.
    const toD = heard(d, (m) => m.t === 'group-deleted');
    c.publish({ t: 'group-deleted', gid: 'from-db-4' });
    await toD;
    expect(onD).toEqual(['from-db-4']);
  });
});
