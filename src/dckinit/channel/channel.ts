import { EventEmitter } from 'node:events';
import WebSocket from 'ws';
import type { Logger } from '../../common/log.js';
import { WS_PATH, type ReplyFrame } from '../../protocol/channel.js';

export interface ChannelOptions {
  url: string;
  token: string;
  log: Logger;
  heartbeatMs: number;
  /** First reconnect delay; doubled with jitter up to maxBackoffMs. */
  backoffMs?: number;
  maxBackoffMs?: number;
}

interface Pending {
  frame: Record<string, unknown>;
  resolve(r: unknown): void;
  reject(e: Error): void;
}

/**
 * The agent's one WebSocket to the kernel. It reconnects with backoff and jitter for as long as
 * the agent lives; after each (re)connect it says hello and emits 'up' so the agent re-reports its
 * state. Requests made while it is down wait for the next connection. Events: 'up', 'down',
 * 'event' (kernel push frames).
 */
export class Channel extends EventEmitter {
  private ws: WebSocket | null = null;
  private nextId = 1;
  private readonly pending = new Map<number, Pending>();
  private readonly queue: number[] = [];
  private attempt = 0;
  private closed = false;
  private heartbeat: NodeJS.Timeout | null = null;
  private connected = false;

  constructor(private readonly opts: ChannelOptions) {
    super();
  }

  get isUp(): boolean {
    return this.connected;
  }

  start(): void {
    this.connect();
  }

  private connect(): void {
    if (this.closed) return;
    const url = this.opts.url.replace(/^http/, 'ws').replace(/\/+$/, '') + WS_PATH;
    const ws = new WebSocket(url, { headers: { authorization: `Bearer ${this.opts.token}` }, handshakeTimeout: 10_000 });
    this.ws = ws;
    ws.on('open', () => {
      void this.request({ op: 'hello', role: 'agent' }, true).then(
        () => {
          this.attempt = 0;
          this.connected = true;
          this.opts.log.info('channel to the kernel is up');
          // Requests queued while down go out now, in order.
          for (const id of this.queue.splice(0)) this.transmit(id);
          this.heartbeat = setInterval(() => void this.request({ op: 'heartbeat' }).catch(() => {}), this.opts.heartbeatMs);
          this.heartbeat.unref();
          this.emit('up');
        },
        (err: Error) => {
          this.opts.log.warn({ err: err.message }, 'the kernel refused hello');
          ws.close();
        },
      );
    });
    ws.on('message', (data) => {
      let f: ReplyFrame & { event?: string };
      try {
        f = JSON.parse(data.toString());
      } catch {
        return;
      }
      if (typeof f.id === 'number' && this.pending.has(f.id)) {
        const p = this.pending.get(f.id)!;
        this.pending.delete(f.id);
        if (f.ok) p.resolve(f.result);
        else p.reject(Object.assign(new Error(f.error?.message ?? 'refused'), { code: f.error?.code }));
      } else if (f.event) {
        this.emit('event', f);
      }
    });
    ws.on('error', (err) => this.opts.log.debug({ err: err.message }, 'channel error'));
    ws.on('unexpected-response', (_req, res) => {
      this.opts.log.warn({ status: res.statusCode }, 'the kernel refused the channel');
      ws.terminate();
    });
    ws.on('close', () => {
      if (this.heartbeat) clearInterval(this.heartbeat);
      this.heartbeat = null;
      const was = this.connected;
      this.connected = false;
      this.ws = null;
      // Requests in flight on the dead socket go out again on the next one.
      for (const [id, p] of this.pending) if (p.frame.op !== 'hello' && !this.queue.includes(id)) this.queue.push(id);
      for (const [id, p] of this.pending) if (p.frame.op === 'hello') {
        this.pending.delete(id);
        p.reject(new Error('connection closed'));
      }
      if (was) {
        this.opts.log.warn('channel to the kernel is down; reconnecting');
        this.emit('down');
      }
      if (this.closed) return;
      const base = this.opts.backoffMs ?? 500;
      const delay = Math.min(this.opts.maxBackoffMs ?? 10_000, base * 2 ** this.attempt) * (0.5 + Math.random());
      this.attempt = Math.min(this.attempt + 1, 16);
      setTimeout(() => this.connect(), delay).unref();
    });
  }

  private transmit(id: number): void {
    const p = this.pending.get(id);
    if (p && this.ws?.readyState === WebSocket.OPEN) this.ws.send(JSON.stringify({ id, ...p.frame }));
  }

  /** Sends a request and resolves with its result; waits for a connection when down. */
  request(frame: Record<string, unknown>, now = false): Promise<unknown> {
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { frame, resolve, reject });
      if (now || this.connected) this.transmit(id);
      else this.queue.push(id);
    });
  }

  close(): void {
    this.closed = true;
    if (this.heartbeat) clearInterval(this.heartbeat);
    this.ws?.close();
    for (const p of this.pending.values()) p.reject(new Error('channel closed'));
    this.pending.clear();
  }
}
