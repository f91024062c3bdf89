import { describe, expect, it } from 'vitest';
import type { WebSocket } from 'ws';
import { Connection } from './connection.js';

/** A WebSocket that records each frame with whether its socket was corked when it was sent. */
function fakeWs() {
  const socket = { corks: 0, uncorks: 0, destroyed: false, cork() { this.corks++; }, uncork() { this.uncorks++; } };
  const frames: Array<{ data: string | Buffer; corked: boolean }> = [];
  const ws = {
    OPEN: 1,
    readyState: 1,
    bufferedAmount: 0,
    _socket: socket,
    send(data: string | Buffer, _opts: unknown, cb: () => void) {
      frames.push({ data, corked: socket.corks > socket.uncorks });
      cb();
    },
    pause() {},
    resume() {},
  };
  return { ws: ws as unknown as WebSocket, socket, frames };
}

const limits = { outboundPause: 1 << 20, outboundDrop: 1 << 26, connectionInFlight: 16 };

describe('connection writes', () => {
  it('frames written in one task, promise continuations included, leave in one corked write', async () => {
    const { ws, socket, frames } = fakeWs();
    const conn = new Connection(ws, { kind: 'admin' } as never, limits);
    conn.pushText('{"a":1}');
    conn.pushText(Buffer.from('{"b":2}'));
    await Promise.resolve().then(() => conn.push({ c: 3 }));
    // The continuations of one task run before its nextTick uncork.
    expect(socket.corks - socket.uncorks).toBe(1);
    await new Promise<void>((r) => process.nextTick(r));
    expect(socket).toMatchObject({ corks: 1, uncorks: 1 });
    expect(frames.map((f) => [String(f.data), f.corked])).toEqual([['{"a":1}', true], ['{"b":2}', true], ['{"c":3}', true]]);
    // A later task corks again.
    await new Promise<void>((r) => setImmediate(r));
    conn.pushText('{"d":4}');
    await new Promise<void>((r) => process.nextTick(r));
    expect(socket).toMatchObject({ corks: 2, uncorks: 2 });
  });
});

describe('connection turns', () => {
  const turn = () => new Promise<void>((r) => setImmediate(r));

  it("a connection's requests start one per turn of the event loop, each connection on its own", async () => {
    const a = new Connection(fakeWs().ws, { kind: 'admin' } as never, limits);
    const b = new Connection(fakeWs().ws, { kind: 'admin' } as never, limits);
    const started: string[] = [];
    const request = (name: string) => async () => void started.push(name);
    for (const name of ['a1', 'a2', 'a3']) a.serve(request(name));
    b.serve(request('b1'));
    expect(started).toEqual(['a1', 'b1']);
    await turn();
    expect(started).toEqual(['a1', 'b1', 'a2']);
    await turn();
    expect(started).toEqual(['a1', 'b1', 'a2', 'a3']);
    // A turn without a request of its own lets the next one start at once.
    await turn();
    a.serve(request('a4'));
    expect(started.at(-1)).toBe('a4');
  });

  it('a large answer goes out a slice per turn, the last piece ending the message', async () => {
    const { ws, frames } = fakeWs();
    const conn = new Connection(ws, { kind: 'admin' } as never, limits);
    conn.send(Buffer.alloc(600 * 1024));
    const seen = () => frames.map((f) => f.data.length);
    expect(seen()).toEqual([256 * 1024]);
    await turn();
    expect(seen()).toEqual([256 * 1024, 256 * 1024]);
    // A small frame queued meanwhile waits behind the rest of the message.
    conn.pushText('{"after":1}');
    expect(seen()).toEqual([256 * 1024, 256 * 1024]);
    await turn();
    expect(seen()).toEqual([256 * 1024, 256 * 1024, 88 * 1024, 11]);
  });

  it("a pipe's 256 KiB chunk with its header goes as one frame, and the next waits for the next turn", async () => {
    const { ws, frames } = fakeWs();
    const conn = new Connection(ws, { kind: 'admin' } as never, limits);
    conn.pushBinary({ event: 'pipe.data', end: 1 }, Buffer.alloc(256 * 1024));
    conn.pushBinary({ event: 'pipe.data', end: 1 }, Buffer.alloc(256 * 1024));
    expect(frames.map((f) => f.data.length)).toEqual([256 * 1024 + 33]);
    await turn();
    expect(frames.map((f) => f.data.length)).toEqual([256 * 1024 + 33, 256 * 1024 + 33]);
  });
});
