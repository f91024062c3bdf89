import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { WebSocketServer, type WebSocket } from 'ws';
import { KernelSocket } from './kernel-socket.js';

/** A stand-in kernel: answers every request with an empty result; pings are answered or not. */
async function kernel(answerPings: boolean): Promise<{ url: string; server: Server; pings: () => number; onPing: (fn: () => void) => void; connections: () => number }> {
  const server = createServer();
  const wss = new WebSocketServer({ noServer: true, autoPong: answerPings });
  let pings = 0;
  let connections = 0;
  let onPing = (): void => {};
  server.on('upgrade', (req, socket, head) =>
    wss.handleUpgrade(req, socket, head, (ws: WebSocket) => {
      connections++;
      ws.on('message', (d) => ws.send(JSON.stringify({ id: JSON.parse(String(d)).id, ok: true, result: {} })));
      ws.on('ping', () => {
        pings++;
        onPing();
      });
    }),
  );
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, server, pings: () => pings, onPing: (fn) => (onPing = fn), connections: () => connections };
}

describe('KernelSocket heartbeats', () => {
  const open: Array<{ close(): unknown }> = [];
  afterEach(() => {
    for (const x of open.splice(0)) x.close();
  });

  it('are WebSocket pings; a kernel that answers them keeps the connection', async () => {
    const k = await kernel(true);
    open.push(k.server);
    const s = new KernelSocket({ url: k.url, token: 't', role: 'agent', heartbeatMs: 20 });
    open.push(s);
    let downs = 0;
    s.on('down', () => downs++);
    await s.open();
    // Five heartbeats, each answered before the next is due.
    await new Promise<void>((r) => k.onPing(() => k.pings() >= 5 && r()));
    expect(downs).toBe(0);
    expect(k.connections()).toBe(1);
  });

  it('a kernel that answers nothing for a heartbeat period is left, and dialled again', async () => {
    const k = await kernel(false);
    open.push(k.server);
    const s = new KernelSocket({ url: k.url, token: 't', role: 'agent', heartbeatMs: 20 });
    open.push(s);
    await s.open();
    const down = new Promise((r) => s.once('down', r));
    const again = new Promise((r) => s.once('reconnect', r));
    await down;
    expect(k.pings()).toBeGreaterThanOrEqual(1);
    await again;
    expect(k.connections()).toBe(2);
  });
});
