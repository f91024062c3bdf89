import { EventEmitter } from 'node:events';
import WebSocket from 'ws';
import { RackError, type ErrorCode } from '../common/errors.js';
import { decodeBinaryFrame, encodeBinaryFrame } from '../protocol/binary-frame.js';
import { WS_PATH } from '../protocol/channel.js';

/**
 * Ops that can be sent again after a reconnect without changing their outcome (libdck's pipe
 * writes carry their offset, and closing a closed end is no error). Others fail with
 * `unavailable` when the connection drops before their answer: the caller decides.
 */
const RETRY_SAFE = new Set(['hello', 'send', 'send.batch', 'list', 'show', 'subscribe', 'recv.start', 'shm.get', 'shm.set', 'shm.delete', 'shm.keys', 'shm.range', 'shm.len', 'shm.watch', 'pipe.list', 'fifo.open', 'pipe.write', 'pipe.close', 'heartbeat']);

interface Pending {
  op: string;
  frame: Record<string, unknown>;
  payload?: Buffer;
  resolve(v: unknown): void;
  reject(e: Error): void;
  timer: NodeJS.Timeout;
  sent: boolean;
}

export interface ConnectionOptions {
  url: string;
  token: string;
  role?: 'app' | 'admin';
  /** Default per-call timeout. */
  timeoutMs?: number;
}

/**
 * One WebSocket to the kernel carrying every call of a process. Reconnects by itself with
 * backoff; after each reconnect it says hello again and emits 'reconnect' so that subscriptions
 * (message receiving, watches) are renewed. Events: 'event' (header, payload?), 'reconnect'.
 */
export class Connection extends EventEmitter {
  private ws: WebSocket | null = null;
  private nextId = 1;
  private readonly pending = new Map<number, Pending>();
  private up = false;
  private closed = false;
  private attempt = 0;
  private opening: Promise<void> | null = null;
  readonly timeoutMs: number;

  constructor(private readonly opts: ConnectionOptions) {
    super();
    this.setMaxListeners(0);
    this.timeoutMs = opts.timeoutMs ?? 30_000;
  }

  /** Opens the socket and says hello; rejects if the kernel refuses (bad token, unreachable). */
  async open(): Promise<unknown> {
    await this.dial(true);
    return this.helloResult;
  }

  private helloResult: unknown = null;

  private dial(first: boolean): Promise<void> {
    if (this.opening) return this.opening;
    this.opening = new Promise<void>((resolve, reject) => {
      const url = this.opts.url.replace(/^http/, 'ws').replace(/\/+$/, '') + WS_PATH;
      const ws = new WebSocket(url, { headers: { authorization: `Bearer ${this.opts.token}` }, handshakeTimeout: 10_000, maxPayload: 4 * 1024 * 1024 });
      this.ws = ws;
      let settled = false;
      const fail = (err: Error): void => {
        if (settled) return;
        settled = true;
        this.opening = null;
        reject(err);
      };
      ws.on('unexpected-response', (_req, res) => {
        let body = '';
        res.on('data', (d: Buffer) => (body += d));
        res.on('end', () => {
          let msg = `HTTP ${res.statusCode}`;
          let code: ErrorCode = res.statusCode === 401 ? 'unauthorized' : 'unavailable';
          try {
            const e = JSON.parse(body).error;
            msg = e.message;
            code = e.code;
          } catch {
            /* keep the status */
          }
          fail(new RackError(code, `the kernel refused the connection: ${msg}`));
          ws.terminate();
        });
      });
      ws.on('error', (err) => fail(new RackError('unavailable', `cannot reach the kernel at ${this.opts.url}: ${err.message}`)));
      ws.on('open', () => {
        const id = this.nextId++;
        ws.send(JSON.stringify({ id, op: 'hello', role: this.opts.role ?? 'app' }));
        const onHello = (data: WebSocket.RawData, isBinary: boolean): void => {
          if (isBinary) return;
          const f = JSON.parse(data.toString());
          if (f.id !== id) return;
          ws.off('message', onHello);
          if (!f.ok) return fail(new RackError(f.error.code, f.error.message));
          this.helloResult = f.result;
          this.up = true;
          this.attempt = 0;
          settled = true;
          this.opening = null;
          for (const [pid, p] of this.pending) if (!p.sent) this.transmit(pid, p);
          if (!first) this.emit('reconnect');
          resolve();
        };
        ws.on('message', onHello);
      });
      ws.on('message', (data, isBinary) => this.receive(data as Buffer, isBinary));
      ws.on('close', () => this.onClose(first && !settled));
    });
    return this.opening;
  }

  private receive(data: Buffer, isBinary: boolean): void {
    if (isBinary) {
      let decoded;
      try {
        decoded = decodeBinaryFrame(data);
      } catch {
        return;
      }
      this.emit('event', decoded.header, decoded.payload);
      return;
    }
    let f: { id?: number | null; ok?: boolean; result?: unknown; error?: { code: ErrorCode; message: string }; event?: string };
    try {
      f = JSON.parse(data.toString('utf8'));
    } catch {
      return;
    }
    if (typeof f.id === 'number') {
      const p = this.pending.get(f.id);
      if (!p) return;
      this.pending.delete(f.id);
      clearTimeout(p.timer);
      if (f.ok) p.resolve(f.result);
      else p.reject(new RackError(f.error?.code ?? 'internal', f.error?.message ?? 'refused'));
    } else if (f.event) {
      this.emit('event', f);
    }
  }

  private onClose(firstFailed: boolean): void {
    this.up = false;
    this.ws = null;
    for (const [id, p] of this.pending) {
      if (!p.sent) continue;
      if (RETRY_SAFE.has(p.op)) p.sent = false;
      else {
        this.pending.delete(id);
        clearTimeout(p.timer);
        p.reject(new RackError('unavailable', `the connection to the kernel dropped before "${p.op}" was answered; it may or may not have happened`));
      }
    }
    if (this.closed || firstFailed) return;
    const delay = Math.min(5000, 100 * 2 ** this.attempt) * (0.5 + Math.random());
    this.attempt = Math.min(this.attempt + 1, 16);
    setTimeout(() => {
      if (!this.closed) this.dial(false).catch(() => this.onClose(false));
    }, delay).unref();
  }

  private transmit(id: number, p: Pending): void {
    if (!this.up || !this.ws || this.ws.readyState !== WebSocket.OPEN) return;
    p.sent = true;
    const frame = { id, op: p.op, ...p.frame };
    this.ws.send(p.payload ? encodeBinaryFrame(frame, p.payload) : JSON.stringify(frame));
  }

  /** One call; rejects with the kernel's error, or `timeout` after `timeoutMs`. */
  call<T = any>(op: string, params: Record<string, unknown> = {}, opts: { timeoutMs?: number; payload?: Buffer } = {}): Promise<T> {
    if (this.closed) return Promise.reject(new RackError('unavailable', 'the RACK context is closed'));
    const id = this.nextId++;
    const ms = opts.timeoutMs ?? this.timeoutMs;
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new RackError('timeout', `"${op}" got no answer within ${ms} ms`));
      }, ms);
      const p: Pending = { op, frame: params, payload: opts.payload, resolve: resolve as (v: unknown) => void, reject, timer, sent: false };
      this.pending.set(id, p);
      this.transmit(id, p);
    });
  }

  /** Bytes buffered for the socket: senders of bulk data wait while it is high. */
  get buffered(): number {
    return this.ws?.bufferedAmount ?? 0;
  }

  close(): void {
    this.closed = true;
    for (const p of this.pending.values()) {
      clearTimeout(p.timer);
      p.reject(new RackError('unavailable', 'the RACK context was closed'));
    }
    this.pending.clear();
    this.ws?.close();
  }
}
