import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import { WebSocketServer, type RawData, type WebSocket } from 'ws';
import type { Principal, Revoked } from '../auth/auth.js';
import type { Limiter } from '../auth/limits.js';
import { RackError, isRackError } from '../common/errors.js';
import type { Logger } from '../common/log.js';
import { decodeBinaryFrame } from '../protocol/binary-frame.js';
import { WS_PATH } from '../protocol/channel.js';
import { Connection } from './connection.js';
import { LOOK_EVERY_MS } from './liveness.js';
import { type Answers, checkRid, requestKey } from './answers.js';
import { admit, invoke, type CompiledOp } from './operation.js';
import { encodeJson } from '../protocol/json-text.js';

/** Largest frame a client may send: 1 MiB of payload plus room for the envelope. */
export const MAX_FRAME = 1024 * 1024 + 64 * 1024;

export interface WsServerOptions {
  authenticate(header: string | undefined): Promise<Principal>;
  limiter: Limiter;
  answers: Answers;
  /** The operations that exist on the WebSocket, by op name. */
  ops: ReadonlyMap<string, CompiledOp>;
  log: Logger;
  onConnection?: (delta: number) => void;
}

type Reply = { id: number | null; ok: boolean; result?: unknown; error?: { code: string; message: string } };

/**
 * The `/v1/ws` endpoint: authenticates the upgrade, then turns request frames into operation
 * calls. Text frames are JSON requests; binary frames are a JSON header plus bytes, which the
 * operation finds as its `$payload` input (and a result with a `$payload` goes back the same way).
 */
export class KernelWebSocketServer {
  // A browser's page cannot set an Authorization header: it offers the token as a subprotocol
  // (see bearerOf), and the answer names only the protocol, never the token.
  private readonly wss = new WebSocketServer({ noServer: true, maxPayload: MAX_FRAME, handleProtocols: (offered) => (offered.has(UI_PROTOCOL) ? UI_PROTOCOL : false) });
  private readonly looks: NodeJS.Timeout;
  private readonly connections = new Set<Connection>();
  /** Process connections by `gid/pid`: a revoked token finds its connections without a search. */
  private readonly byProcess = new Map<string, Set<Connection>>();

  constructor(private readonly opts: WsServerOptions) {
    this.looks = setInterval(() => this.lookAtPeers(), LOOK_EVERY_MS);
    this.looks.unref();
  }

  /**
   * Pings the peers that have been quiet since the last look and drops those that did not answer
   * (half-open TCP); see Liveness. Runs every LOOK_EVERY_MS (tests call it themselves).
   */
  lookAtPeers(): void {
    for (const conn of this.connections) {
      const what = conn.liveness.look();
      if (what === 'ping') conn.ws.ping();
      else if (what === 'drop') conn.ws.terminate();
    }
  }

  handleUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    // Node's HTTP server lets go of an upgrading socket's errors: until ws takes the socket they
    // are ours. A client that resets meanwhile (an agent whose VM was just destroyed, refused
    // with 401) must not take the kernel down with an unhandled 'error'.
    socket.on('error', () => socket.destroy());
    const path = (req.url ?? '').split('?')[0];
    if (path !== WS_PATH) return reject(socket, 404, 'not_found', `no WebSocket endpoint at ${path}; use ${WS_PATH}`);
    this.opts.authenticate(req.headers.authorization ?? bearerOf(req.headers['sec-websocket-protocol'])).then(
      (who) => {
        // Gone while it was authenticated: nothing to upgrade (and no connection to count).
        if (socket.destroyed || !socket.writable) return;
        let release: () => void;
        try {
          release = this.opts.limiter.connect(who);
        } catch (err) {
          const e = err as RackError;
          return reject(socket, e.status, e.code, e.message);
        }
        this.wss.handleUpgrade(req, socket, head, (ws) => this.accept(ws, who, release));
      },
      (err: unknown) => {
        const e = isRackError(err) ? err : new RackError('unauthorized', 'authentication failed');
        reject(socket, e.status, e.code, e.message);
      },
    );
  }

  /**
   * Drops connections: every one, or those of one group, or of one process's token. Their clients
   * reconnect (and are refused if their token was revoked).
   */
  disconnect(whose?: Revoked): number {
    const conns = !whose
      ? [...this.connections]
      : whose.pid === undefined
        ? [...this.connections].filter((c) => c.who.kind === 'process' && c.who.gid === whose.gid)
        : [...(this.byProcess.get(`${whose.gid}/${whose.pid}`) ?? [])].filter((c) => whose.role === undefined || (c.who.kind === 'process' && c.who.role === whose.role));
    for (const conn of conns) conn.ws.terminate();
    return conns.length;
  }

  private accept(ws: WebSocket, who: Principal, release: () => void): void {
    const conn = new Connection(ws, who, this.opts.limiter.limits);
    this.connections.add(conn);
    conn.onClose(release);
    if (who.kind === 'process') {
      const key = `${who.gid}/${who.pid}`;
      let set = this.byProcess.get(key);
      if (!set) this.byProcess.set(key, (set = new Set()));
      set.add(conn);
      conn.onClose(() => {
        set!.delete(conn);
        if (set!.size === 0 && this.byProcess.get(key) === set) this.byProcess.delete(key);
      });
    }
    this.opts.onConnection?.(1);
    ws.on('pong', () => (conn.liveness.heard = true));
    // A client's ping (the guest agent's heartbeat) is answered by ws itself with a pong: the
    // client was heard, and heard from the kernel.
    ws.on('ping', () => {
      conn.liveness.heard = true;
      conn.liveness.spoke = true;
    });
    ws.on('message', (data: RawData, isBinary: boolean) => {
      conn.liveness.heard = true;
      const buf = Array.isArray(data) ? Buffer.concat(data) : Buffer.isBuffer(data) ? data : Buffer.from(data);
      conn.serve(() => this.dispatch(conn, buf, isBinary));
    });
    ws.on('error', (err) => this.opts.log.debug({ err: err.message }, 'websocket error'));
    ws.on('close', () => {
      this.connections.delete(conn);
      conn.close();
      this.opts.onConnection?.(-1);
    });
  }

  private async dispatch(conn: Connection, buf: Buffer, isBinary: boolean): Promise<void> {
    let frame: Record<string, unknown>;
    try {
      frame = parseFrame(buf, isBinary);
    } catch (err) {
      const e = isRackError(err) ? err : new RackError('invalid_json', `frame is not valid JSON: ${(err as Error).message}`);
      return send(conn, { id: null, ok: false, error: e.toJSON() });
    }
    const { id, op: name, rid, ...input } = frame;
    if (typeof id !== 'number' || !Number.isSafeInteger(id)) {
      return send(conn, { id: null, ok: false, error: { code: 'bad_request', message: '"id" must be an integer' } });
    }
    let release: (() => void) | undefined;
    try {
      release = this.opts.limiter.admit(conn.who);
      const c = typeof name === 'string' ? this.opts.ops.get(name) : undefined;
      if (!c) throw new RackError('bad_request', `unknown op "${String(name).slice(0, 40)}"`);
      if (conn.role === null && name !== 'hello') throw new RackError('bad_request', 'send "hello" first');
      const key = checkRid(rid, '"rid"');
      const gid = admit(c, conn.who, input);
      const result = await invoke(c, { who: conn.who, gid, rid: key === null ? null : requestKey(conn.who, key), conn, http: null }, input, this.opts.answers);
      send(conn, { id, ok: true, result });
    } catch (err) {
      const e = isRackError(err) ? err : new RackError('internal', 'internal error');
      if (!isRackError(err)) this.opts.log.error({ err, op: name }, 'websocket op failed');
      send(conn, { id, ok: false, error: e.toJSON() });
    } finally {
      release?.();
    }
  }

  close(): void {
    clearInterval(this.looks);
    for (const ws of this.wss.clients) ws.terminate();
    this.wss.close();
  }
}

/** The subprotocol the live view (src/api/ui) offers beside `rack.bearer.<token>`. */
export const UI_PROTOCOL = 'rack.v1';

/** `Sec-WebSocket-Protocol: rack.v1, rack.bearer.TOKEN` -> "Bearer TOKEN" (undefined without one). */
function bearerOf(protocols: string | undefined): string | undefined {
  const token = protocols?.split(',').map((p) => p.trim()).find((p) => p.startsWith('rack.bearer.'))?.slice('rack.bearer.'.length);
  return token ? `Bearer ${token}` : undefined;
}

/** A request frame as an object; `$payload` is the bytes of a binary frame, never a JSON field. */
function parseFrame(buf: Buffer, isBinary: boolean): Record<string, unknown> {
  let parsed: unknown;
  let payload: Buffer | undefined;
  if (isBinary) {
    try {
      ({ header: parsed, payload } = decodeBinaryFrame(buf));
    } catch (err) {
      throw new RackError('bad_request', `bad binary frame: ${(err as Error).message}`);
    }
  } else {
    parsed = JSON.parse(buf.toString('utf8'));
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) throw new RackError('bad_request', 'a frame must be a JSON object');
  const frame = parsed as Record<string, unknown>;
  delete frame.$payload;
  if (payload) frame.$payload = payload;
  return frame;
}

function send(conn: Connection, reply: Reply): void {
  const result = reply.result as { $payload?: unknown } | undefined;
  if (result && Buffer.isBuffer(result.$payload)) {
    const { $payload, ...rest } = result;
    conn.pushBinary({ ...reply, result: rest }, $payload as Buffer);
  } else {
    conn.pushText(encodeJson(reply));
  }
}

function reject(socket: Duplex, status: number, code: string, message: string): void {
  const body = JSON.stringify({ error: { code, message } });
  socket.end(
    `HTTP/1.1 ${status} ${code}\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`,
  );
}
