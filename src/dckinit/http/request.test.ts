import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { request } from './request.js';

describe('request (the agent HTTP client)', () => {
  let server: Server;
  let base = '';
  beforeAll(async () => {
    server = createServer((req, res) => {
      if (req.url === '/ok') return res.end('hello');
      if (req.url === '/big-declared') {
        res.writeHead(200, { 'content-length': String(2048) });
        return res.end(Buffer.alloc(2048));
      }
      if (req.url === '/big-chunked') {
        res.write(Buffer.alloc(600));
        return res.end(Buffer.alloc(600));
      }
      if (req.url === '/trickle') {
        res.writeHead(200, { 'content-length': '100' });
        const t = setInterval(() => res.write('x'), 100);
        res.on('close', () => clearInterval(t));
        return;
      }
      res.writeHead(404).end();
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(() => new Promise<void>((r) => server.close(() => r())));

  it('returns status, headers and body', async () => {
    const r = await request(`${base}/ok`, { timeoutMs: 2000, maxBytes: 1024 });
    expect(r.status).toBe(200);
    expect(r.body.toString()).toBe('hello');
    expect((await request(`${base}/nope`, { timeoutMs: 2000, maxBytes: 1024 })).status).toBe(404);
  });

  it('refuses a body over the cap, declared or counted', async () => {
    await expect(request(`${base}/big-declared`, { timeoutMs: 2000, maxBytes: 1024 })).rejects.toMatchObject({ code: 'too_large' });
    await expect(request(`${base}/big-chunked`, { timeoutMs: 2000, maxBytes: 1024 })).rejects.toMatchObject({ code: 'too_large' });
  });

  it('a trickling body ends at the deadline', async () => {
    await expect(request(`${base}/trickle`, { timeoutMs: 300, maxBytes: 1024 })).rejects.toMatchObject({ code: 'timeout' });
  });

  it('an abort signal and a refused connection end it with their own codes', async () => {
    const ac = new AbortController();
    const p = request(`${base}/trickle`, { timeoutMs: 5000, maxBytes: 1024, signal: ac.signal });
    ac.abort();
    await expect(p).rejects.toMatchObject({ code: 'aborted' });
    await expect(request('http://127.0.0.1:1/', { timeoutMs: 2000, maxBytes: 1024 })).rejects.toMatchObject({ code: 'network' });
  });
});
