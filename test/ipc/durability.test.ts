import type { ChildProcess } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable, Transform, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connect, type Rack } from '../../src/libdck/index.js';
import type { Process } from '../../src/protocol/process.js';
import { credentialsOf } from '../../src/protocol/user-data.js';
import { adminCall, freePort, rssOf, startKernelProcess, stopKernelProcess, ADMIN_TOKEN } from '../support/kernel-process.js';
import { watchGroup } from '../support/watch.js';

/** These run the kernel as its own OS process: to kill -9 it, and to measure its memory. */
describe('IPC with the kernel as a separate process', () => {
  const dataDir = mkdtempSync(join(tmpdir(), 'rack-durable-'));
  let port: number;
  let url: string;
  let kernel: ChildProcess;
  let gid: string;
  let call: ReturnType<typeof adminCall>;
  const procs: Process[] = [];
  const token = (p: Process): string => credentialsOf(JSON.parse(readFileSync(join(dataDir, 'vms', p.compute_id!, 'vm.json'), 'utf8')).userData)!.token;

  beforeAll(async () => {
    port = await freePort();
    url = `http://127.0.0.1:${port}`;
    kernel = await startKernelProcess(port, dataDir);
    call = adminCall(url);
    gid = (await call('POST', '/v1/groups', { group: { name: 'durable', template: 'idle' } })).body.group.gid;
    const watch = await watchGroup(url, ADMIN_TOKEN, gid);
    await call('POST', `/v1/groups/${gid}/processes`, { process: {} });
    await call('POST', `/v1/groups/${gid}/processes`, { process: { ppid: 100, count: 3 } });
    await watch.until((all) => all.size === 4 && [...all.values()].every((p) => p.compute_id !== null));
    watch.close();
    procs.push(...(await call('GET', `/v1/groups/${gid}/processes`)).body.processes);
  });
  afterAll(async () => {
    await call('DELETE', `/v1/groups/${gid}`).catch(() => {});
    await stopKernelProcess(kernel, 'SIGTERM');
    rmSync(dataDir, { recursive: true, force: true });
  });

  it('10,000 messages from 2 senders: complete, in per-sender order, none twice, across a kill -9 of the kernel', async () => {
    const [receiverP, a, b] = [procs[1]!, procs[2]!, procs[3]!];
    const senders = await Promise.all([connect({ url, token: token(a) }), connect({ url, token: token(b) })]);
    const receiver = await connect({ url, token: token(receiverP) });
    const PER = 5000;
    const got: Array<{ from: number; i: number }> = [];
    let restarted = false;
    const receiving = (async () => {
      for await (const m of receiver.messages()) {
        got.push({ from: m.from, i: (m.data as { i: number }).i });
        if (got.length === 3000 && !restarted) {
          restarted = true;
          await stopKernelProcess(kernel, 'SIGKILL');
          kernel = await startKernelProcess(port, dataDir);
        }
        if (got.length === 2 * PER) break;
      }
    })();
    await Promise.all(senders.map(async (s: Rack) => {
      for (let i = 0; i < PER; i++) await s.send(receiverP.pid, { i });
    }));
    await receiving;
    expect(restarted).toBe(true);
    for (const s of [a, b]) {
      const seq = got.filter((g) => g.from === s.pid).map((g) => g.i);
      expect(seq.length).toBe(PER);
      expect(seq).toEqual([...Array(PER).keys()]);
    }
    for (const c of [...senders, receiver]) c.close();
  }, 180_000);

  it('100 MiB through a pipe to a slow reader: same hash, EOF, and the kernel memory stays bounded', async () => {
    const writer = await connect({ url, token: token(procs[0]!) });
    const pipe = await writer.pipe();
    const reader = await connect({ url, token: token(procs[1]!) });
    const base = rssOf(kernel.pid!);
    let peak = base;
    const sampler = setInterval(() => (peak = Math.max(peak, rssOf(kernel.pid!))), 50);
    const SIZE = 100 * 1024 * 1024;
    const sent = createHash('sha256');
    const got = createHash('sha256');
    let n = 0;
    // A slow consumer: the first 20 MiB are read with a pause per chunk.
    const slow = new Writable({
      write(chunk: Buffer, _e, cb) {
        got.update(chunk);
        n += chunk.length;
        if (n < 20 * 1024 * 1024) setTimeout(cb, 2);
        else cb();
      },
    });
    const reading = pipeline((await reader.pipe(pipe.id)).reader(), slow);
    let produced = 0;
    const source = new Readable({
      read() {
        if (produced >= SIZE) return void this.push(null);
        const chunk = randomBytes(Math.min(1024 * 1024, SIZE - produced));
        produced += chunk.length;
        sent.update(chunk);
        this.push(chunk);
      },
    });
    await pipeline(source, pipe.writer());
    await reading;
    clearInterval(sampler);
    expect(n).toBe(SIZE);
    expect(got.digest('hex')).toBe(sent.digest('hex'));
    expect(peak - base).toBeLessThan(64 * 1024 * 1024);
    writer.close();
    reader.close();
  }, 180_000);

  it('a 1 GiB file put and get streams with bounded kernel memory and the same hash', async () => {
    const rack = await connect({ url, token: token(procs[0]!) });
    const base = rssOf(kernel.pid!);
    let peak = base;
    const sampler = setInterval(() => (peak = Math.max(peak, rssOf(kernel.pid!))), 50);
    const SIZE = 1024 * 1024 * 1024;
    const block = randomBytes(1024 * 1024);
    const sent = createHash('sha256');
    let produced = 0;
    // The same 1 MiB block with its index stamped in: distinct content, cheap to make.
    const source = new Readable({
      read() {
        if (produced >= SIZE) return void this.push(null);
        const chunk = Buffer.from(block);
        chunk.writeUInt32BE(produced / block.length, 0);
        produced += chunk.length;
        sent.update(chunk);
        this.push(chunk);
      },
    });
    const info = await rack.files.put('big/1GiB.bin', source);
    expect(info.size).toBe(SIZE);
    const got = createHash('sha256');
    await pipeline(await rack.files.get('big/1GiB.bin'), new Transform({ transform(c, _e, cb) { got.update(c); cb(); } }).resume());
    clearInterval(sampler);
    const digest = sent.digest('hex');
    expect(info.etag).toBe(digest);
    expect(got.digest('hex')).toBe(digest);
    expect(peak - base).toBeLessThan(100 * 1024 * 1024);
    await rack.files.delete('big/1GiB.bin');
    rack.close();
  }, 300_000);
});
