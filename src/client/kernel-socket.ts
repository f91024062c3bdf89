import { randomBytes } from 'node:crypto';
import { EventEmitter } from 'node:events';
import WebSocket from 'ws';
import { Backoff } from '../common/backoff.js';
import { RackError, type ErrorCode } from '../common/errors.js';
import type { Logger } from '../common/log.js';
import { decodeBinaryFrame, encodeBinaryFrame } from '../protocol/binary-frame.js';
import { WS_PATH } from '../protocol/channel.js';
import { kernelUrls } from './kernel-urls.js';
import { restError } from './rest-error.js';

export { kernelUrls };

export interface KernelSocketOptions {
  /**
   * The kernel, or several kernels over one store, comma-separated (as RACK_URL and the metadata
   * carry them): a connection that fails or drops is tried again on the next one.
   */
  url: string;
  token: string;
  /** A CA (PEM) to trust for a wss:// kernel, beside the system's. */
  ca?: string;
  role: 'agent' | 'app' | 'admin';
  /** Default per-call timeout in ms; 0 waits as long as it takes (the agent's reports). */
  timeoutMs?: number;
  /**
   * Send a heartbeat (a WebSocket ping) this often, and reconnect when nothing at all has come
   * from the kernel for as long after one.
   */
  heartbeatMs?: number;
  /** Reconnect delays (default: 100 ms doubling to 5 s, with jitter). */
  backoff?: Backoff;
  log?: Logger;
}

/** A kernel that says nothing (not even its 30 s ping) for this long is taken for gone. */
const SILENCE_MS = 75_000;

interface Pending {
  op: string;
  params: Record<string, unknown>;
  payload?: Buffer;
  resolve(v: unknown): void;
  reject(e: Error): void;
  /** Runs while the call is with a connected kernel. */
  timeoutMs: number;
  /** It acts on this connection (a pipe end): lost with it, never sent on another. */
  bound: boolean;
  timer: NodeJS.Timeout | null;
  sent: boolean;
}

type Frame = { id?: unknown; ok?: boolean; result?: Record<string, unknown>; error?: { code: ErrorCode; message: string }; event?: string };

/**
 * The one client core for a process's WebSocket to the kernel (the guest agent's channel,
 * libdck's connection): hello, reconnect with one backoff policy, a map of pending calls, and one
 * rule for what is sent again after a reconnect: every call whose answer has not come, with the
 * same request id (`rid`). The kernel answers a request it has seen with its first answer (it
 * keeps them; those that change stored state, durably), so a call sent twice happens once, also
 * across a kernel restart, and the caller sees one result.
 *
 * A call's timeout runs while it is with a connected kernel: a call made or resent during an
 * outage waits for the kernel to come back. While open, the socket keeps the Node process alive
 * (also between reconnect attempts): a process waiting on a call during an outage must not just
 * end. Events: 'up' (hello answer; every connection), 'reconnect' (hello answer; all but the
 * first), 'down', 'event' (header, payload?) for what the kernel pushes.
 */
export class KernelSocket extends EventEmitter {
  private ws: WebSocket | null = null;
  private nextId = 1;
  private readonly pending = new Map<number, Pending>();
  /** This client's name for its requests: `rid` = session.id, unique to the kernel. */
  private readonly session = randomBytes(9).toString('base64url');
  private up = false;
  private closed = false;
  private connections = 0;
  private lastHeard = Date.now();
  private readonly backoff: Backoff;
  private retry: NodeJS.Timeout | null = null;
  private readonly urls: string[];
  /** The kernel of urls this socket dials; the next one after each failure or drop. */
  private at = 0;
  /** Attempts that failed before the first connection (open() gives up after one round). */
  private failures = 0;
  private watch: NodeJS.Timeout | null = null;
  private heartbeat: NodeJS.Timeout | null = null;
  /** When the heartbeat that has not been answered yet went out (0: none is out). */
  private pingedAt = 0;
  readonly timeoutMs: number;

  constructor(private readonly opts: KernelSocketOptions) {
    super();
    this.setMaxListeners(0);
    this.timeoutMs = opts.timeoutMs ?? 30_000;
    this.backoff = opts.backoff ?? new Backoff(100, 5000);
    this.urls = kernelUrls(opts.url);
    // Agents spread over the kernels from the start, rather than all on the first.
    this.at = Math.floor(Math.random() * this.urls.length);
  }

  /** The kernel this socket is connected to, or dials next. */
  get url(): string {
    return this.urls[this.at]!;
  }

  get isUp(): boolean {
    return this.up;
  }

  /**
   * Connects and says hello; resolves with the hello answer. The first failure (a refused token,
   * an unreachable kernel) rejects, and the socket stays closed.
   */
  open(): Promise<unknown> {
    return new Promise((resolve, reject) => {
      const onUp = (hello: unknown): void => {
        this.off('refused', onRefused);
        resolve(hello);
      };
      const onRefused = (err: Error): void => {
        this.off('up', onUp);
        this.close();
        reject(err);
      };
      this.once('up', onUp);
      this.once('refused', onRefused);
      this.dial();
    });
  }

  /** Connects, and keeps trying for as long as it takes (the kernel may not be up yet). */
  start(): void {
    this.dial();
  }

  private dial(): void {
    if (this.closed || this.ws) return;
    const base = this.url;
    const url = base.replace(/^http/, 'ws').replace(/\/+$/, '') + WS_PATH;
    const ws = new WebSocket(url, { headers: { authorization: `Bearer ${this.opts.token}` }, handshakeTimeout: 10_000, maxPayload: 4 * 1024 * 1024, ...(this.opts.ca ? { ca: this.opts.ca } : {}) });
    this.ws = ws;
    ws.on('unexpected-response', (_req, res) => {
      let body = '';
      res.on('data', (d: Buffer) => (body += d));
      res.on('end', () => {
        const e = restError(res.statusCode ?? 0, body);
        // A refusal (a bad token) is the same on every kernel of the store: no point in the next.
        this.fail(new RackError(e.code, `the kernel refused the connection: ${e.message}`), true);
        ws.terminate();
      });
    });
    ws.on('error', (err) => this.fail(new RackError('unavailable', `cannot reach the kernel at ${base}: ${err.message}`)));
    ws.on('open', () => this.hello(ws));
    ws.on('ping', () => (this.lastHeard = Date.now()));
    ws.on('pong', () => (this.lastHeard = Date.now()));
    ws.on('message', (data, isBinary) => this.receive(data as Buffer, isBinary));
    ws.on('close', () => this.dropped(ws));
  }

  /**
   * A failed attempt: logged, and reported to open() (first connection only) once every kernel
   * has been tried, or at once when the kernel refused (`final`).
   */
  private fail(err: RackError, final = false): void {
    if (this.connections === 0 && (final || ++this.failures >= this.urls.length)) this.emit('refused', err);
    this.opts.log?.debug({ err: err.message, url: this.url }, 'kernel connection attempt failed');
  }

  private hello(ws: WebSocket): void {
    const id = this.nextId++;
    const p: Pending = {
      op: 'hello',
      params: { role: this.opts.role },
      resolve: (r) => {
        if (this.ws !== ws) return;
        this.up = true;
        this.backoff.reset();
        this.lastHeard = Date.now();
        this.startTimers(ws);
        // Calls made while down, and those to send again, go out now in the order they were made.
        for (const [pid, q] of this.pending) if (!q.sent) this.transmit(pid, q);
        const first = this.connections++ === 0;
        this.emit('up', r);
        if (!first) this.emit('reconnect', r);
      },
      reject: (err) => {
        this.fail(err instanceof RackError ? err : new RackError('unavailable', err.message));
        ws.terminate();
      },
      // A kernel that takes the connection but never answers hello is tried again.
      timeoutMs: 10_000,
      bound: true,
      timer: setTimeout(() => ws.terminate(), 10_000),
      sent: true,
    };
    this.pending.set(id, p);
    ws.send(JSON.stringify({ id, op: 'hello', role: this.opts.role }));
  }

  private startTimers(ws: WebSocket): void {
    this.watch = setInterval(() => {
      if (Date.now() - this.lastHeard > SILENCE_MS) ws.terminate();
    }, 15_000);
    // The heartbeat is a WebSocket ping, which the kernel's WebSocket layer answers by itself:
    // as the `heartbeat` op it went through the kernel's request path (parse, limits, schema,
    // handler, answer), and with 1,000 agents that was most of what the agents cost the kernel.
    // Anything heard from the kernel since the ping answers it (a pong can queue behind a large
    // answer); nothing heard for a whole period means the kernel, or the way to it, is gone.
    const every = this.opts.heartbeatMs;
    this.pingedAt = 0;
    if (every) {
      this.heartbeat = setInterval(() => {
        if (this.pingedAt > 0 && this.lastHeard < this.pingedAt) return ws.terminate();
        this.pingedAt = Date.now();
        ws.ping();
      }, every);
    }
  }

  private dropped(ws: WebSocket): void {
    if (this.ws !== ws) return;
    this.ws = null;
    if (this.watch) clearInterval(this.watch);
    if (this.heartbeat) clearInterval(this.heartbeat);
    this.watch = this.heartbeat = null;
    const was = this.up;
    this.up = false;
    // Every call whose answer is lost goes again on the next connection, with its request id.
    for (const [id, p] of this.pending) {
      if (!p.sent) continue;
      if (p.timer) clearTimeout(p.timer);
      p.timer = null;
      if (p.op === 'hello') this.pending.delete(id);
      else if (p.bound) this.settle(id, p, new RackError('unavailable', `the connection to the kernel dropped before "${p.op}" was answered`));
      else p.sent = false;
    }
    if (was) this.emit('down');
    if (this.closed) return;
    // The next attempt goes to the next kernel: the one that dropped may be the one that died.
    this.at = (this.at + 1) % this.urls.length;
    // Before the first success open() has reported the failure and closed us; start() goes on.
    this.retry = setTimeout(() => {
      this.retry = null;
      this.dial();
    }, this.backoff.next());
  }

  private receive(data: Buffer, isBinary: boolean): void {
    this.lastHeard = Date.now();
    let frame: Frame;
    let payload: Buffer | undefined;
    try {
      if (isBinary) ({ header: frame, payload } = decodeBinaryFrame(data) as { header: Frame; payload: Buffer });
      else frame = JSON.parse(data.toString('utf8')) as Frame;
    } catch {
      this.opts.log?.warn('an unreadable frame from the kernel');
      return;
    }
    if (typeof frame.id === 'number') {
      const p = this.pending.get(frame.id);
      if (!p) return;
      if (frame.ok) this.settle(frame.id, p, null, payload ? { ...frame.result, $payload: payload } : frame.result);
      else this.settle(frame.id, p, new RackError(frame.error?.code ?? 'internal', frame.error?.message ?? 'refused'));
    } else if (frame.event) {
      this.emit('event', frame, payload);
    }
  }

  private settle(id: number, p: Pending, err: Error | null, value?: unknown): void {
    this.pending.delete(id);
    if (p.timer) clearTimeout(p.timer);
    if (err) p.reject(err);
    else p.resolve(value);
  }

  private transmit(id: number, p: Pending): void {
    if (!this.up || !this.ws || this.ws.readyState !== WebSocket.OPEN) return;
    p.sent = true;
    if (p.timeoutMs > 0 && !p.timer) p.timer = setTimeout(() => this.settle(id, p, new RackError('timeout', `"${p.op}" got no answer within ${p.timeoutMs} ms`)), p.timeoutMs);
    const frame = { id, rid: `${this.session}.${id}`, op: p.op, ...p.params };
    this.ws.send(p.payload ? encodeBinaryFrame(frame, p.payload) : JSON.stringify(frame));
  }

  /**
   * One call; waits for a connection when down; rejects with the kernel's error, or `timeout`
   * when a connected kernel does not answer within `timeoutMs`.
   */
  call<T = any>(op: string, params: Record<string, unknown> = {}, opts: { timeoutMs?: number; payload?: Buffer; bound?: boolean } = {}): Promise<T> {
    if (this.closed) return Promise.reject(new RackError('unavailable', 'the connection to the kernel is closed'));
    const id = this.nextId++;
    return new Promise<T>((resolve, reject) => {
      const p: Pending = { op, params, payload: opts.payload, resolve: resolve as (v: unknown) => void, reject, timeoutMs: opts.timeoutMs ?? this.timeoutMs, bound: opts.bound === true, timer: null, sent: false };
      this.pending.set(id, p);
      this.transmit(id, p);
    });
  }

  /** Ends the connection for good: pending calls fail, nothing reconnects. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    if (this.retry) clearTimeout(this.retry);
    for (const [id, p] of this.pending) this.settle(id, p, new RackError('unavailable', 'the connection to the kernel was closed'));
    const ws = this.ws;
    if (ws) {
      ws.close();
      this.dropped(ws);
    }
  }
}
