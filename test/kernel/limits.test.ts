import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { get } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import WebSocket from 'ws';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CLOSE_NOT_READING } from '../../src/api/connection.js';
import type { ClientLimits } from '../../src/auth/limits.js';
import type { Process } from '../../src/protocol/process.js';
import { adminCall, ADMIN_TOKEN, freePort, rssOf, startKernelProcess, stopKernelProcess } from '../support/kernel-process.js';
import { startTestKernel, untilProcess } from '../support/kernel.js';
import { RawClient } from '../support/ws-client.js';

const MiB = 1024 * 1024;

/** Milliseconds /healthz takes to answer, on a connection of its own. */
function healthz(url: string): Promise<number> {
  const t0 = performance.now();
  return new Promise((resolve, reject) => {
    get(`${url}/healthz`, { agent: false }, (res) => {
      res.resume();
      res.on('end', () => (res.statusCode === 200 ? resolve(performance.now() - t0) : reject(new Error(`healthz ${res.statusCode}`))));
    }).on('error', reject);
  });
}

describe('bounded memory and work per client', () => {
  describe('a kernel of its own (its memory is measured)', () => {
    const dir = mkdtempSync(join(tmpdir(), 'rack-limits-'));
    let kernel: ChildProcess;
    let url: string;
    beforeAll(async () => {
      const port = await freePort();
      kernel = await startKernelProcess(port, dir);
      url = `http://127.0.0.1:${port}`;
    });
    afterAll(async () => {
      await stopKernelProcess(kernel);
      rmSync(dir, { recursive: true, force: true });
    });

    it('a client that asks for 3,000 copies of a 900 KB value and never reads: kernel memory stays bounded, /healthz stays fast', async () => {
      const admin = adminCall(url);
      const gid = (await admin('POST', '/v1/groups', { group: { name: 'greedy', template: 'idle' } })).body.group.gid;
      await admin('PUT', `/v1/groups/${gid}/shm/big`, { value: 'x'.repeat(900 * 1024) });
      const before = rssOf(kernel.pid!);
      const ws = new WebSocket(url.replace('http', 'ws') + '/v1/ws', { headers: { authorization: `Bearer ${ADMIN_TOKEN}` } });
      await new Promise((r) => ws.once('open', r));
      ws.send(JSON.stringify({ id: 0, op: 'hello', role: 'admin' }));
      await new Promise((r) => ws.once('message', r));
      // From here on the client reads nothing.
      ws.pause();
      for (let id = 1; id <= 3000; id++) ws.send(JSON.stringify({ id, op: 'shm.get', gid, key: 'big' }));
      const latencies: number[] = [];
      for (let i = 0; i < 20; i++) latencies.push(await healthz(url));
      const after = rssOf(kernel.pid!);
      ws.terminate();
      // The kernel keeps answering others (how fast is a figure of `npm run bench`, not a test).
      expect(latencies).toHaveLength(20);
      // 3,000 answers would be 2.7 GB; what the kernel holds for this client stays within its budget.
      expect(after - before).toBeLessThan(200 * MiB);
    }, 120_000);
  });

  describe('limits (small ones, to see them hold)', () => {
    /** A kernel with these limits, a group and two processes in it. */
    async function kernelWith(limits: Partial<ClientLimits>) {
      const k = await startTestKernel({ limits });
      const gid = (await k.call('POST', '/v1/groups', { group: { name: 'limits', template: 'idle' } })).body.group.gid as string;
      const r = await k.call('POST', `/v1/groups/${gid}/processes`, { process: { count: 2 } });
      const ps = await Promise.all((r.body.processes as Process[]).map((p) => untilProcess(k, gid, p.pid, (x) => x.compute_id !== null)));
      return { k, gid, ps };
    }

    it('requests in flight per token: one over the limit is refused with rate_limited, the others go on', async () => {
      const { k, gid, ps } = await kernelWith({ inFlight: 3 });
      try {
        const [p] = ps;
        const t = k.tokenOf(p!);
        const polls = [1, 2, 3].map(() => k.call('GET', `/v1/groups/${gid}/processes/${p!.pid}/messages?timeout=2`, undefined, t));
        let refused: { status: number; body: any } | undefined;
        for (let i = 0; i < 50 && !refused; i++) {
          const r = await k.call('GET', '/v1/self', undefined, t);
          if (r.status === 429) refused = r;
        }
        expect(refused?.body.error.code).toBe('rate_limited');
        expect(refused?.body.error.message).toMatch(/requests in the kernel already/);
        expect((await Promise.all(polls)).map((r) => r.status)).toEqual([408, 408, 408]);
      } finally {
        await k.cleanup();
      }
    });

    it('request rate per token: past the burst, 429 with the reason; other tokens and the admin are not slowed', async () => {
      const { k, gid, ps } = await kernelWith({ rate: 5, burst: 10 });
      try {
        const t = k.tokenOf(ps[0]!);
        const statuses: number[] = [];
        for (let i = 0; i < 30; i++) statuses.push((await k.call('GET', '/v1/self', undefined, t)).status);
        expect(statuses.filter((s) => s === 429).length).toBeGreaterThan(0);
        expect((await k.call('GET', '/v1/self', undefined, k.tokenOf(ps[1]!))).status).toBe(200);
        expect((await k.call('GET', `/v1/groups/${gid}`)).status).toBe(200);
      } finally {
        await k.cleanup();
      }
    });

    it('WebSocket connections per token', async () => {
      const { k, ps } = await kernelWith({ connections: 2 });
      try {
        const t = k.tokenOf(ps[0]!);
        const a = await RawClient.connect(k.url, t);
        const b = await RawClient.connect(k.url, t);
        await expect(RawClient.connect(k.url, t)).rejects.toThrow(/429/);
        await Promise.all([a.close(), b.close()]);
      } finally {
        await k.cleanup();
      }
    });

    it('a receiver that does not read its messages is disconnected with a clear close code once too much waits for it', async () => {
      const { k, gid, ps } = await kernelWith({ outboundPause: 1 * MiB, outboundDrop: 4 * MiB });
      try {
        const [s, r] = ps;
        const reader = await RawClient.connect(k.url, k.tokenOf(r!));
        const closed = new Promise<number>((resolve) => reader.ws.once('close', (code) => resolve(code)));
        await reader.call('recv.start', { window: 100 });
        reader.ws.pause();
        const big = 'y'.repeat(500 * 1024);
        for (let i = 0; i < 20; i++) await k.call('POST', `/v1/groups/${gid}/processes/${r!.pid}/messages`, { message: { data: big } }, k.tokenOf(s!));
        // It reads again, late: it finds what was sent before the limit, then the reason it was dropped.
        reader.ws.resume();
        expect(await closed).toBe(CLOSE_NOT_READING);
        expect((await k.call('GET', '/healthz')).status).toBe(200);
      } finally {
        await k.cleanup();
      }
    });
  });
});
