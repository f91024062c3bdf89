import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RestClient } from './client.js';

// A body of most of a MB in many writes, as a kernel sends a long list: with its length declared
// (copied into one buffer as it arrives) and without (chunked: kept and joined at the end).
describe('RestClient answers', () => {
  const items = Array.from({ length: 20_000 }, (_, i) => ({ pid: i, name: `p${i}`, note: i % 7 === 0 ? 'é ✓ "quoted"' : '' }));
  const text = JSON.stringify({ items });
  let server: Server;
  let url: string;

  beforeAll(async () => {
    server = createServer((req, res) => {
      const bytes = Buffer.from(text);
      // Odd-sized pieces, each its own write and turn, so the client gets the body in many chunks.
      const pieces = Array.from({ length: Math.ceil(bytes.length / 65_521) }, (_, i) => bytes.subarray(i * 65_521, (i + 1) * 65_521));
      res.writeHead(200, req.url === '/declared' ? { 'content-type': 'application/json', 'content-length': bytes.length } : { 'content-type': 'application/json' });
      const next = (): void => {
        const piece = pieces.shift();
        if (!piece) return void res.end();
        res.write(piece);
        setImmediate(next);
      };
      next();
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())));

  it.each(['/declared', '/chunked'])('%s: the whole body, decoded once', async (path) => {
    expect(await new RestClient(url, 't').call('GET', path)).toEqual({ items });
  });
});
