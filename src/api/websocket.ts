import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import { WebSocketServer, type RawData, type WebSocket } from 'ws';
import { RackError, isRackError } from '../common/errors.js';
import type { Logger } from '../common/log.js';
import type { Principal } from '../auth/auth.js';
import type { ForkInput, Kernel } from '../kernel/kernel.js';
import { decodeBinaryFrame } from '../protocol/binary-frame.js';
import { WS_PATH, type ReplyFrame, type RequestFrame } from '../protocol/channel.js';
import { APP_STATES, SIGNALS, type AppState, type Process } from '../protocol/process.js';
import { validateBody } from './openapi.js';
import { decodeUserdata } from './process-routes.js';

/** Largest frame a client may send: 1 MiB of payload plus room for the envelope. */
export const MAX_FRAME = 1024 * 1024 + 64 * 1024;

export type Role = 'agent' | 'app' | 'admin';

/** One client connection: who it is, and how to push events to it. */
export class Connection {
  role: Role | null = null;
  readonly subscriptions = new Set<string>();
  private readonly cleanups: Array<() => void> = [];

  constructor(
    readonly ws: WebSocket,
    readonly who: Principal,
  ) {}

  push(event: object): void {
    if (this.ws.readyState === this.ws.OPEN) this.ws.send(JSON.stringify(event));
  }

  onClose(fn: () => void): void {
    this.cleanups.push(fn);
  }

  close(): void {
    for (const fn of this.cleanups.splice(0)) fn();
  }

  /** The caller's own process (process tokens only). */
  self(): { gid: string; pid: number } {
    if (this.who.kind !== 'process') throw new RackError('bad_request', 'this operation needs a process token');
    return { gid: this.who.gid, pid: this.who.pid };
  }

  /** The group an op addresses: a process's own, or the `gid` an operator names. */
  gidFor(frame: RequestFrame): string {
    if (this.who.kind === 'process') {
      if (frame.gid !== undefined && frame.gid !== this.who.gid) {
        throw new RackError('forbidden', `process ${this.who.pid} may not act in group ${String(frame.gid)}`);
      }
      return this.who.gid;
    }
    return str(frame, 'gid');
  }
}

export type OpHandler = (conn: Connection, frame: RequestFrame) => Promise<unknown>;

export function str(frame: RequestFrame, key: string, opts: { optional?: false; max?: number } = {}): string {
  const v = frame[key];
  if (typeof v !== 'string' || v.length === 0 || v.length > (opts.max ?? 255)) {
    throw new RackError('bad_request', `"${key}" must be a non-empty string of at most ${opts.max ?? 255} characters`);
  }
  return v;
}

export function int(frame: RequestFrame, key: string, min = 0, max = 2147483647): number {
  const v = frame[key];
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) {
    throw new RackError('bad_request', `"${key}" must be an integer from ${min} to ${max}`);
  }
  return v;
}

export function seconds(frame: RequestFrame, key: string, fallback: number, max: number): number {
  const v = frame[key];
  if (v === undefined) return fallback * 1000;
  if (typeof v !== 'number' || !Number.isFinite(v) || v < 0 || v > max) {
    throw new RackError('bad_request', `"${key}" must be a number of seconds from 0 to ${max}`);
  }
  return Math.round(v * 1000);
}

/** Rejects fields an op does not know, as the REST API does. */
export function only(frame: RequestFrame, keys: readonly string[]): void {
  for (const k of Object.keys(frame)) {
    if (k !== 'id' && k !== 'op' && k !== '$payload' && !keys.includes(k)) throw new RackError('bad_request', `unknown field "${k.slice(0, 40)}" for op ${frame.op}`);
  }
}

/** The process-table ops; IPC adds its own through `ops`. */
export function processOps(kernel: Kernel): Map<string, OpHandler> {
  const ops = new Map<string, OpHandler>();

  ops.set('hello', async (conn, f) => {
    only(f, ['role']);
    const role = f.role ?? (conn.who.kind === 'admin' ? 'admin' : 'app');
    if (role !== 'agent' && role !== 'app' && role !== 'admin') throw new RackError('bad_request', '"role" must be agent, app or admin');
    if ((role === 'admin') !== (conn.who.kind === 'admin')) throw new RackError('forbidden', `role ${role} does not match the token`);
    if (conn.role !== null && conn.role !== role) throw new RackError('conflict', `this connection is already an ${conn.role}`);
    conn.role = role;
    if (conn.who.kind === 'admin') return {};
    const { gid, pid } = conn.self();
    const p = await kernel.getProcess(conn.who, gid, pid);
    if (role === 'agent') {
      const detach = kernel.attachAgent(gid, pid, { send: (ev) => conn.push(ev) });
      conn.onClose(detach);
    }
    return { process: p };
  });

  ops.set('heartbeat', async (_conn, f) => {
    only(f, []);
    return {};
  });

  ops.set('subscribe', async (conn, f) => {
    only(f, ['gid']);
    const gid = conn.gidFor(f);
    await kernel.getGroup(conn.who, gid);
    if (!conn.subscriptions.has(gid)) {
      conn.subscriptions.add(gid);
      const listener = (p: Process): void => {
        if (p.gid === gid) conn.push({ event: 'process', process: p });
      };
      kernel.on('process', listener);
      conn.onClose(() => kernel.off('process', listener));
    }
    return {};
  });

  ops.set('state', async (conn, f) => {
    only(f, ['state', 'code', 'signal']);
    if (conn.role !== 'agent') throw new RackError('forbidden', 'only a guest agent (hello role=agent) reports app state');
    const state = f.state as AppState;
    if (!APP_STATES.includes(state)) throw new RackError('bad_request', `"state" must be one of ${APP_STATES.join(', ')}`);
    const code = f.code === undefined || f.code === null ? null : int(f, 'code', 0, 255);
    const signal = f.signal === undefined || f.signal === null ? null : str(f, 'signal', { max: 16 });
    const { gid, pid } = conn.self();
    return { process: await kernel.reportAppState(conn.who, gid, pid, state, { code, signal }) };
  });

  ops.set('status', async (conn, f) => {
    only(f, ['app_status', 'gid', 'pid']);
    const v = f.app_status;
    if (typeof v !== 'string' || v.length > 255) throw new RackError('bad_request', '"app_status" must be a string of at most 255 characters');
    const gid = conn.gidFor(f);
    const pid = conn.who.kind === 'process' ? conn.who.pid : int(f, 'pid');
    return { process: await kernel.setAppStatus(conn.who, gid, pid, v) };
  });

  ops.set('list', async (conn, f) => {
    only(f, ['gid', 'ppid']);
    const gid = conn.gidFor(f);
    const filter = f.ppid === undefined ? {} : { ppid: int(f, 'ppid') };
    return { processes: await kernel.listProcesses(conn.who, gid, filter) };
  });

  ops.set('show', async (conn, f) => {
    only(f, ['gid', 'pid']);
    return { process: await kernel.getProcess(conn.who, conn.gidFor(f), int(f, 'pid')) };
  });

  ops.set('fork', async (conn, f) => {
    const { id: _id, op: _op, gid: _gid, wait_running, ...rest } = f;
    const gid = conn.gidFor(f);
    const { process: p } = validateBody<{ process: ForkInput }>('ProcessCreate', { process: rest });
    const created = await kernel.fork(conn.who, gid, { ...p, userdata: decodeUserdata(p.userdata) });
    if (wait_running === undefined) return { processes: created };
    const ms = seconds(f, 'wait_running', 0, 3600);
    return { processes: await kernel.waitRunning(conn.who, gid, created.map((c) => c.pid), ms) };
  });

  ops.set('kill', async (conn, f) => {
    only(f, ['gid', 'pid', 'signal', 'grace']);
    const signal = f.signal ?? 'TERM';
    if (signal !== 'TERM' && signal !== 'KILL') throw new RackError('bad_request', '"signal" must be TERM or KILL (other signals: op signal)');
    const graceMs = seconds(f, 'grace', kernel.defaultGraceMs / 1000, 3600);
    return { pids: await kernel.kill(conn.who, conn.gidFor(f), int(f, 'pid'), { signal, graceMs }) };
  });

  ops.set('signal', async (conn, f) => {
    only(f, ['gid', 'pid', 'name']);
    const name = f.name as (typeof SIGNALS)[number];
    if (!SIGNALS.includes(name) || name === 'KILL') throw new RackError('bad_request', '"name" must be TERM, INT, HUP, USR1, USR2, STOP or CONT');
    await kernel.signal(conn.who, conn.gidFor(f), int(f, 'pid'), name);
    return {};
  });

  ops.set('wait', async (conn, f) => {
    only(f, ['gid', 'ppid', 'pid', 'timeout']);
    const gid = conn.gidFor(f);
    const ppid = conn.who.kind === 'process' ? conn.who.pid : int(f, 'ppid');
    const timeoutMs = seconds(f, 'timeout', 30, 3600);
    const opts = f.pid === undefined ? { timeoutMs } : { pid: int(f, 'pid'), timeoutMs };
    return kernel.wait(conn.who, gid, ppid, opts);
  });

  ops.set('exit', async (conn, f) => {
    only(f, ['code']);
    const { gid, pid } = conn.self();
    return { process: await kernel.exit(conn.who, gid, pid, int(f, 'code', 0, 255)) };
  });

  return ops;
}

export interface WsServerOptions {
  authenticate(header: string | undefined): Promise<Principal>;
  ops: Map<string, OpHandler>;
  log: Logger;
  onConnection?: (delta: number) => void;
}

/** The `/v1/ws` endpoint: authenticates the upgrade, then dispatches request frames to ops. */
export class KernelWebSocketServer {
  private readonly wss = new WebSocketServer({ noServer: true, maxPayload: MAX_FRAME });
  private readonly heartbeat: NodeJS.Timeout;
  private readonly alive = new WeakSet<WebSocket>();

  constructor(private readonly opts: WsServerOptions) {
    // Ping every 30 s and drop peers that did not answer the previous ping (half-open TCP).
    this.heartbeat = setInterval(() => {
      for (const ws of this.wss.clients) {
        if (!this.alive.has(ws)) {
          ws.terminate();
          continue;
        }
        this.alive.delete(ws);
        ws.ping();
      }
    }, 30_000);
    this.heartbeat.unref();
  }

  handleUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    const path = (req.url ?? '').split('?')[0];
    if (path !== WS_PATH) return reject(socket, 404, 'not_found', `no WebSocket endpoint at ${path}; use ${WS_PATH}`);
    this.opts.authenticate(req.headers.authorization).then(
      (who) => this.wss.handleUpgrade(req, socket, head, (ws) => this.accept(ws, who)),
      (err: unknown) => {
        const e = isRackError(err) ? err : new RackError('unauthorized', 'authentication failed');
        reject(socket, e.status, e.code, e.message);
      },
    );
  }

  private accept(ws: WebSocket, who: Principal): void {
    const conn = new Connection(ws, who);
    this.alive.add(ws);
    this.opts.onConnection?.(1);
    ws.on('pong', () => this.alive.add(ws));
    ws.on('message', (data: RawData, isBinary: boolean) => {
      const buf = Array.isArray(data) ? Buffer.concat(data) : Buffer.isBuffer(data) ? data : Buffer.from(data);
      void this.dispatch(conn, buf, isBinary);
    });
    ws.on('error', (err) => this.opts.log.debug({ err: err.message }, 'websocket error'));
    ws.on('close', () => {
      conn.close();
      this.opts.onConnection?.(-1);
    });
  }

  /**
   * Text frames are JSON requests; binary frames are a JSON header plus payload bytes, which the
   * op finds as `$payload` (a name no JSON request may use).
   */
  private async dispatch(conn: Connection, buf: Buffer, isBinary: boolean): Promise<void> {
    let frame: RequestFrame;
    try {
      let parsed: unknown;
      let payload: Buffer | undefined;
      if (isBinary) {
        try {
          const decoded = decodeBinaryFrame(buf);
          parsed = decoded.header;
          payload = decoded.payload;
        } catch (err) {
          throw new RackError('bad_request', `bad binary frame: ${(err as Error).message}`);
        }
      } else {
        parsed = JSON.parse(buf.toString('utf8'));
      }
      if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) throw new RackError('bad_request', 'a frame must be a JSON object');
      frame = parsed as RequestFrame;
      delete frame.$payload;
      if (payload) frame.$payload = payload;
    } catch (err) {
      const e = isRackError(err) ? err : new RackError('invalid_json', `frame is not valid JSON: ${(err as Error).message}`);
      return reply(conn.ws, { id: null, ok: false, error: e.toJSON() });
    }
    const id = frame.id;
    if (typeof id !== 'number' || !Number.isSafeInteger(id)) {
      return reply(conn.ws, { id: null, ok: false, error: { code: 'bad_request', message: '"id" must be an integer' } });
    }
    try {
      const handler = typeof frame.op === 'string' ? this.opts.ops.get(frame.op) : undefined;
      if (!handler) throw new RackError('bad_request', `unknown op "${String(frame.op).slice(0, 40)}"`);
      if (conn.role === null && frame.op !== 'hello') throw new RackError('bad_request', 'send "hello" first');
      const result = await handler(conn, frame);
      reply(conn.ws, { id, ok: true, result });
    } catch (err) {
      const e = isRackError(err) ? err : new RackError('internal', 'internal error');
      if (!isRackError(err)) this.opts.log.error({ err, op: frame.op }, 'websocket op failed');
      reply(conn.ws, { id, ok: false, error: e.toJSON() });
    }
  }

  get clients(): number {
    return this.wss.clients.size;
  }

  close(): void {
    clearInterval(this.heartbeat);
    for (const ws of this.wss.clients) ws.terminate();
    this.wss.close();
  }
}

function reply(ws: WebSocket, frame: ReplyFrame | { id: null; ok: false; error: { code: string; message: string } }): void {
  if (ws.readyState === ws.OPEN) ws.send(JSON.stringify(frame));
}

function reject(socket: Duplex, status: number, code: string, message: string): void {
  const body = JSON.stringify({ error: { code, message } });
  socket.end(
    `HTTP/1.1 ${status} ${code}\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`,
  );
}
