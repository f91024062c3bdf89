import { createHash, randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connect, RackError, type Rack } from '../../src/libdck/index.js';
import type { Process } from '../../src/protocol/process.js';
import { SqliteStore } from '../../src/store/sqlite/sqlite-store.js';
import { startTestKernel, untilProcess, type TestKernel } from '../support/kernel.js';

describe('libdck against a kernel', () => {
  let k: TestKernel;
  let gid: string;
  let root: Process;
  let parent: Rack;

  const child = async (): Promise<Rack> => {
    const [p] = await parent.fork();
    const booted = await untilProcess(k, gid, p!.pid, (x) => x.compute_id !== null);
    return connect({ url: k.url, token: k.tokenOf(booted) });
  };

  beforeAll(async () => {
    k = await startTestKernel();
    gid = (await k.call('POST', '/v1/groups', { group: { name: 'libdck', template: 'idle' } })).body.group.gid;
    const r = await k.call('POST', `/v1/groups/${gid}/processes`, { process: { args: { job: 'test' } } });
    root = await untilProcess(k, gid, r.body.processes[0].pid, (p) => p.compute_id !== null);
    parent = await connect({ url: k.url, token: k.tokenOf(root) });
  });
  afterAll(async () => {
    parent.close();
    await k.call('DELETE', `/v1/groups/${gid}`);
    await k.cleanup();
  });

  it('connect() knows who the process is', () => {
    expect(parent).toMatchObject({ gid, pid: root.pid, ppid: null, role: 'parent', args: { job: 'test' } });
  });

  it('refuses to connect without a URL or with a bad token, clearly', async () => {
    await expect(connect({ url: k.url, token: 'nope' })).rejects.toThrow(/refused the connection: unknown token/);
    const saved = process.env.RACK_URL;
    delete process.env.RACK_URL;
    await expect(connect({ token: 'x' })).rejects.toThrow(/no RACK_URL/);
    if (saved !== undefined) process.env.RACK_URL = saved;
  });

  it('a message sent before the receiver connects arrives once it does; JSON and bytes', async () => {
    const [p] = await parent.fork();
    await parent.send(p!.pid, { hello: 1 });
    await parent.send(p!.pid, Buffer.from([1, 2, 3]));
    const booted = await untilProcess(k, gid, p!.pid, (x) => x.compute_id !== null);
    const c = await connect({ url: k.url, token: k.tokenOf(booted) });
    const got: unknown[] = [];
    for await (const m of c.messages()) {
      got.push(m.data);
      expect(m.from).toBe(root.pid);
      if (got.length === 2) break;
    }
    expect(got[0]).toEqual({ hello: 1 });
    expect([...(got[1] as Buffer)]).toEqual([1, 2, 3]);
    c.close();
  });

  it('many sends in flight at once, JSON and bytes mixed, arrive in send order (batched on the wire)', async () => {
    const c = await child();
    const N = 2000;
    const sends = Array.from({ length: N }, (_, i) => parent.send(c.pid, i % 10 === 0 ? Buffer.from(String(i)) : { i }));
    const seqs = await Promise.all(sends);
    expect([...seqs].sort((x, y) => x - y)).toEqual(seqs);
    const got: number[] = [];
    for await (const m of c.messages()) {
      got.push(Buffer.isBuffer(m.data) ? Number(m.data.toString()) : (m.data as { i: number }).i);
      if (got.length === N) break;
    }
    expect(got).toEqual(Array.from({ length: N }, (_, i) => i));
    c.close();
  });

  it('acks lost with a connection do not stall the mailbox at its window after the reconnect', async () => {
    // A store whose acks can be made to fail, as they do when the connection drops before they land.
    const real = new SqliteStore(':memory:');
    let losing = false;
    const mailboxes = new Proxy(real.mailboxes, {
      get: (target, prop) =>
        prop === 'ack' && losing
          ? async () => {
              throw new RackError('unavailable', 'ack lost (test)');
            }
          : Reflect.get(target, prop).bind(target),
    });
    const lossy = await startTestKernel({ store: new Proxy(real, { get: (t, prop) => (prop === 'mailboxes' ? mailboxes : Reflect.get(t, prop)) }) });
    try {
      const g = (await lossy.call('POST', '/v1/groups', { group: { name: 'acks', template: 'idle' } })).body.group.gid;
      const [a, b] = (await lossy.call('POST', `/v1/groups/${g}/processes`, { process: { count: 2 } })).body.processes as Process[];
      const sender = await connect({ url: lossy.url, token: lossy.tokenOf(await untilProcess(lossy, g, a!.pid, (p) => p.compute_id !== null)) });
      const c = await connect({ url: lossy.url, token: lossy.tokenOf(await untilProcess(lossy, g, b!.pid, (p) => p.compute_id !== null)) });
      losing = true;
      for (let i = 0; i < 10; i++) await sender.send(c.pid, { i });
      const it = c.messages({ window: 4 });
      const got: number[] = [];
      // The window (4) fills and no ack gets through: the kernel sends no more.
      for (let i = 0; i < 4; i++) got.push(((await it.next()).value!.data as { i: number }).i);
      losing = false;
      lossy.api.ws.disconnect();
      // After the reconnect the kernel sends the 4 again (dropped as seen) and must hear how far we are.
      for (let i = 4; i < 10; i++) got.push(((await it.next()).value!.data as { i: number }).i);
      expect(got).toEqual([...Array(10).keys()]);
      sender.close();
      c.close();
    } finally {
      await lossy.cleanup();
    }
  });

  it('fork, wait and kill through libdck', async () => {
    const kids = await parent.fork({ count: 2, args: { n: '1' } });
    expect(kids.map((p) => p.ppid)).toEqual([root.pid, root.pid]);
    await parent.kill(kids[0]!.pid, { signal: 'KILL' });
    const w = await parent.wait(kids[0]!.pid);
    expect(w).toMatchObject({ pid: kids[0]!.pid, status: 'killed', signal: 'KILL' });
    await expect(parent.wait(kids[1]!.pid, { timeout: 0.2 })).rejects.toThrow(/timed out/);
  });

  it('shared memory: incr from many clients, CAS without lost updates, lists and watch', async () => {
    const clients = await Promise.all([child(), child(), child()]);
    await Promise.all(clients.map(async (c) => {
      for (let i = 0; i < 300; i++) await c.shm.incr('n');
    }));
    expect(await parent.shm.get('n')).toBe(900);
    await Promise.all(clients.map(async (c) => {
      for (let i = 0; i < 100; i++) {
        for (;;) {
          const cur = (await c.shm.get<number>('cas')) ?? 0;
          if (await c.shm.cas('cas', cur === 0 ? null : cur, cur + 1)) break;
        }
      }
    }));
    expect(await parent.shm.get('cas')).toBe(300);
    const changes: string[] = [];
    const stop = await parent.shm.watch('job:', (c) => changes.push(`${c.key}:${c.op}`));
    const popped = clients[0]!.shm.pop('job:queue', { timeout: 10 });
    await clients[1]!.shm.push('job:queue', 'a', 'b');
    expect(await popped).toBe('a');
    expect(await parent.shm.range('job:queue')).toEqual(['b']);
    await parent.shm.set('job:ttl', 1, { ttl: 60 });
    expect(await parent.shm.keys('job:')).toEqual(['job:queue', 'job:ttl']);
    stop();
    expect(changes).toContain('job:queue:push');
    for (const c of clients) c.close();
  });

  it('a pipe inherited by a child carries 16 MiB with the same hash, then EOF', async () => {
    const pipe = await parent.pipe();
    const c = await child();
    expect((await c.pipes()).map((p) => p.id)).toContain(pipe.id);
    const data = randomBytes(16 * 1024 * 1024);
    const hash = createHash('sha256');
    const reading = pipeline((await c.pipe(pipe.id)).reader(), hash);
    await pipeline(Readable.from([data.subarray(0, 5_000_000), data.subarray(5_000_000)]), pipe.writer());
    await reading;
    expect(hash.digest('hex')).toBe(createHash('sha256').update(data).digest('hex'));
    c.close();
  });

  it('a pipe stream survives its connections being cut mid-way: same bytes, in order, then EOF', async () => {
    const pipe = await parent.pipe();
    const c = await child();
    const data = randomBytes(24 * 1024 * 1024);
    const hash = createHash('sha256');
    // Cut every WebSocket of the kernel (writer's and reader's) when the reader has 4 MiB, then 12 MiB.
    const cutAt = [4 * 1024 * 1024, 12 * 1024 * 1024];
    let got = 0;
    let cuts = 0;
    const reader = (await c.pipe(pipe.id)).reader();
    reader.on('data', (b: Buffer) => {
      got += b.length;
      if (cuts < cutAt.length && got >= cutAt[cuts]!) {
        cuts++;
        k.api.ws.disconnect();
      }
    });
    const reading = pipeline(reader, hash);
    await pipeline(Readable.from([data.subarray(0, 10_000_000), data.subarray(10_000_000)]), pipe.writer());
    await reading;
    expect(cuts).toBe(2);
    expect(got).toBe(data.length);
    expect(hash.digest('hex')).toBe(createHash('sha256').update(data).digest('hex'));
    c.close();
  });

  it('files: put and get as streams, ranges, list, stat, delete', async () => {
    const body = randomBytes(1_000_000);
    const info = await parent.files.put('in/data.bin', Readable.from([body]));
    expect(info.size).toBe(1_000_000);
    const part: Buffer[] = [];
    for await (const b of await parent.files.get('in/data.bin', { start: 10, end: 19 })) part.push(b as Buffer);
    expect(Buffer.concat(part).equals(body.subarray(10, 20))).toBe(true);
    expect((await parent.files.list('in/')).map((f) => f.path)).toEqual(['in/data.bin']);
    expect((await parent.files.stat('in/data.bin')).size).toBe(1_000_000);
    await parent.files.delete('in/data.bin');
    await expect(parent.files.stat('in/data.bin')).rejects.toThrow();
    await expect(parent.files.put('../escape', 'x')).rejects.toThrow(/"\." or "\.\." segment|dot/);
  });
});

describe('apps in sim VMs', () => {
  let k: TestKernel;
  afterAll(() => k.cleanup());
  beforeAll(async () => {
    k = await startTestKernel();
  });

  it('8 children increment one counter 10,000 times each: 80,000', async () => {
    const gid = (await k.call('POST', '/v1/groups', { group: { name: 'counter', template: 'idle' } })).body.group.gid;
    const root = (await k.call('POST', `/v1/groups/${gid}/processes`, { process: {} })).body.processes[0];
    const kids = await k.call('POST', `/v1/groups/${gid}/processes`, { process: { ppid: root.pid, count: 8, template: 'counter', args: { times: '10000' } } });
    expect(kids.status).toBe(202);
    for (let i = 0; i < 8; i++) {
      const w = await k.call('GET', `/v1/groups/${gid}/processes/${root.pid}/wait?timeout=120`);
      expect(w.body.wait).toMatchObject({ status: 'exited', code: 0 });
    }
    expect((await k.call('GET', `/v1/groups/${gid}/shm/counter`)).body.value).toBe(80_000);
  }, 180_000);

  it('a shell app on libdck.sh forks children that send results back; the parent sums them', async () => {
    const gid = (await k.call('POST', '/v1/groups', { group: { name: 'shell', template: 'shell-sum', args: { children: '4' } } })).body.group.gid;
    const root = (await k.call('POST', `/v1/groups/${gid}/processes`, { process: {} })).body.processes[0];
    const watch = new Promise<void>((resolve) => {
      const on = (p: Process): void => {
        if (p.gid === gid && p.pid === root.pid && p.status === 'EXITED') {
          k.kernel.events.off('process', on);
          resolve();
        }
      };
      k.kernel.events.on('process', on);
    });
    await watch;
    expect((await k.call('GET', `/v1/groups/${gid}/processes/${root.pid}`)).body.process.exit_code).toBe(0);
    expect((await k.call('GET', `/v1/groups/${gid}/shm/sum`)).body.value).toBe(1 + 4 + 9 + 16);
  }, 120_000);
});
