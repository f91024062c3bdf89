import WebSocket from 'ws';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import type { Connection } from '../../src/api/connection.js';
import { startTestKernel, type TestKernel } from '../support/kernel.js';

/** The kernel's watch over its WebSocket peers (src/api/liveness.ts), one look at a time. */
describe('WebSocket liveness', () => {
  let k: TestKernel;
  beforeAll(async () => {
    k = await startTestKernel();
  });
  afterAll(() => k.cleanup());

  /** An admin connection that does not answer pings by itself; counts the pings it gets. */
  async function peer() {
    const ws = new WebSocket(k.url.replace(/^http/, 'ws') + '/v1/ws', { headers: { authorization: `Bearer ${k.adminToken}` }, autoPong: false });
    let pings = 0;
    let pinged: () => void = () => {};
    ws.on('ping', () => {
      pings++;
      pinged();
    });
    const answers = new Map<number, () => void>();
    ws.on('message', (d) => answers.get(JSON.parse(String(d)).id)?.());
    await new Promise((resolve, reject) => ws.once('open', resolve).once('error', reject));
    let id = 0;
    const call = (op: string): Promise<void> =>
      new Promise((resolve, reject) => {
        answers.set(++id, resolve);
        // Dropped before the answer: fail now, not at the test's timeout.
        ws.once('close', () => reject(new Error(`the kernel dropped the connection before answering ${op}`)));
        ws.send(JSON.stringify({ id, op }));
      });
    await call('hello');
    return { ws, call, pings: () => pings, nextPing: () => new Promise<void>((r) => (pinged = r)) };
  }

  it('an active peer is not pinged; a quiet one is, and is dropped when it does not answer', async () => {
    const p = await peer();
    // Each look follows a request and its answer: frames arrive in order, so a ping sent at the
    // look would have come before the next answer.
    for (let i = 0; i < 3; i++) {
      k.api.ws.lookAtPeers();
      await p.call('heartbeat');
    }
    expect(p.pings()).toBe(0);
    k.api.ws.lookAtPeers(); // the heartbeat of the last round was heard and answered: nothing to ask
    const ping = p.nextPing();
    k.api.ws.lookAtPeers(); // quiet since: pinged
    await ping;
    expect(p.pings()).toBe(1);
    const closed = new Promise((r) => p.ws.once('close', r));
    k.api.ws.lookAtPeers(); // the ping may still be answered
    expect(p.ws.readyState).toBe(WebSocket.OPEN);
    k.api.ws.lookAtPeers(); // it was not: dropped
    await closed;
  });

  it('a pong counts as hearing from the peer: a quiet peer that answers its pings stays', async () => {
    const p = await peer();
    // The kernel's side of this peer: the newest connection.
    const conn = [...(k.api.ws as unknown as { connections: Set<Connection> }).connections].at(-1)!;
    k.api.ws.lookAtPeers(); // hello was heard and answered: nothing to ask
    for (let round = 0; round < 3; round++) {
      const ping = p.nextPing();
      k.api.ws.lookAtPeers(); // quiet since the last look: pinged
      await ping;
      p.ws.pong();
      // Only the pong comes from the peer (a request would be heard as well): wait until the
      // kernel has read it.
      await vi.waitFor(() => expect(conn.liveness.heard).toBe(true));
      k.api.ws.lookAtPeers(); // the pong was heard: neither a ping nor a drop
    }
    expect(p.pings()).toBe(3);
    expect(p.ws.readyState).toBe(WebSocket.OPEN);
  });
});
