import WebSocket from 'ws';
import { decodeBinaryFrame, encodeBinaryFrame } from '../../src/protocol/binary-frame.js';

/** A bare protocol client for kernel tests: requests by id, events to listeners. */
export class RawClient {
  private nextId = 1;
  private readonly pending = new Map<number, (f: any) => void>();
  readonly events: any[] = [];
  private readonly listeners = new Set<(e: any, payload?: Buffer) => void>();

  private constructor(readonly ws: WebSocket) {
    ws.on('message', (data, isBinary) => {
      const buf = data as Buffer;
      if (isBinary) {
        const { header, payload } = decodeBinaryFrame(buf);
        for (const l of this.listeners) l(header, payload);
        return;
      }
      const f = JSON.parse(buf.toString());
      if (typeof f.id === 'number' && this.pending.has(f.id)) {
        this.pending.get(f.id)!(f);
        this.pending.delete(f.id);
      } else if (f.event) {
        this.events.push(f);
        for (const l of this.listeners) l(f);
      }
    });
  }

  static async connect(url: string, token: string, role = 'app'): Promise<RawClient> {
    const ws = new WebSocket(url.replace(/^http/, 'ws') + '/v1/ws', { headers: { authorization: `Bearer ${token}` } });
    await new Promise((resolve, reject) => {
      ws.once('open', resolve);
      ws.once('error', reject);
    });
    const c = new RawClient(ws);
    const hello = await c.call('hello', { role });
    if (!hello.ok) throw new Error(hello.error.message);
    return c;
  }

  call(op: string, params: object = {}): Promise<any> {
    const id = this.nextId++;
    return new Promise((resolve) => {
      this.pending.set(id, resolve);
      this.ws.send(JSON.stringify({ id, op, ...params }));
    });
  }

  /** A request whose bytes travel in a binary frame. */
  callBinary(op: string, params: object, payload: Buffer): Promise<any> {
    const id = this.nextId++;
    return new Promise((resolve) => {
      this.pending.set(id, resolve);
      this.ws.send(encodeBinaryFrame({ id, op, ...params }, payload));
    });
  }

  on(fn: (e: any, payload?: Buffer) => void): () => void {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }

  close(): Promise<void> {
    return new Promise((resolve) => {
      if (this.ws.readyState === WebSocket.CLOSED) return resolve();
      this.ws.once('close', () => resolve());
      this.ws.close();
    });
  }
}
