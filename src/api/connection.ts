import type { Socket } from 'node:net';
import type { WebSocket } from 'ws';
import type { Principal } from '../auth/auth.js';
import type { ClientLimits } from '../auth/limits.js';
import { encodeBinaryFrame } from '../protocol/binary-frame.js';
import { Liveness } from './liveness.js';

export type Role = 'agent' | 'app' | 'admin';

/** The WebSocket close code for a client that does not read what it is sent (RFC 6455: policy). */
export const CLOSE_NOT_READING = 1008;

/**
 * Bytes handed to a client's socket per turn of the event loop. Writing a MiB to a TCP socket
 * holds the kernel's thread for milliseconds (on loopback, the receiving side's work too), which
 * every other client would wait for; larger answers go out as several frames, a slice per turn.
 */
const WRITE_SLICE = 256 * 1024;

/**
 * Room past a slice for a frame's own header: a pipe's 256 KiB chunk with its JSON header goes as
 * one frame, not as a slice and a 40-byte tail that waits a turn (and that the client joins back
 * to the slice, copying it). Binary frame headers are at most 64 KiB (src/protocol/binary-frame.ts).
 */
const HEADER_ROOM = 64 * 1024;

/**
 * Turns of the event loop, counted once for every connection: a connection notes the turn in
 * which it started a request or wrote, and compares. The count moves on in one setImmediate,
 * asked for by the first connection that needs to know in a turn (not one per connection and per
 * request: with 1,000 agents' heartbeats, those timers and their closures were part of what each
 * cost), and the connections that wait for the next turn (a request not yet started, frames not
 * yet written) are served by that same setImmediate.
 */
let turn = 0;
let turnAsked = false;
const waitingForTurn: Connection[] = [];

/** This turn's number; the next turn will have another. */
function thisTurn(): number {
  if (!turnAsked) {
    turnAsked = true;
    setImmediate(endTurn);
  }
  return turn;
}

function endTurn(): void {
  turn++;
  turnAsked = false;
  for (const conn of waitingForTurn.splice(0)) conn.onTurn();
}

/** ws's send options, allocated once (text or binary, last piece or not). */
const SEND = { text: { binary: false, fin: true }, textPiece: { binary: false, fin: false }, binary: { binary: true, fin: true }, binaryPiece: { binary: true, fin: false } };

function uncork(conn: Connection, socket: Socket): void {
  conn.corked = null;
  if (!socket.destroyed) socket.uncork();
}

/**
 * One client's WebSocket as the kernel sees it: who it is (its token, the role it said hello
 * with), how to send to it, and what to undo when it goes (subscriptions, receivers, pipe ends,
 * an agent's registration).
 *
 * Flow control both ways: the kernel stops reading a client's frames while too much waits to be
 * sent to it, or while too many of its requests are being served, and reads again once that has
 * gone down; a client that lets more pile up than `outboundDrop` (it does not read at all) is
 * disconnected with CLOSE_NOT_READING. What the kernel holds per connection stays bounded.
 */
export class Connection {
  role: Role | null = null;
  /** Whether the client is still there (see Liveness; the WebSocket server looks every 15 s). */
  readonly liveness = new Liveness();
  /** Per-connection state that operations keep (receivers, subscriptions), by owner. */
  readonly state = new Map<string, unknown>();
  private readonly cleanups: Array<() => void> = [];
  private inFlight = 0;
  /** Requests read but not started: they wait while the connection is over its limits. */
  private readonly backlog: Array<() => Promise<void>> = [];
  private paused = false;
  /** It waits in waitingForTurn. */
  private waiting = false;
  /** The turn in which a request of this connection last started (see flow). */
  private startedTurn = -1;
  private dropping = false;
  /** Frames not yet handed to the socket (see write), and their bytes. */
  private readonly outbox: Array<{ data: string | Buffer; binary: boolean; fin: boolean }> = [];
  private outboxBytes = 0;
  /** Bytes written in the turn `writtenTurn`. */
  private written = 0;
  private writtenTurn = -1;
  /** The socket is corked until the current task's promise continuations have run (see write). */
  corked: Socket | null = null;
  /** Callbacks made once, not per frame or per request. */
  private readonly flowNow = (): void => this.flow();
  private readonly requestDone = (): void => {
    this.inFlight--;
    // Something may start or resume now: on the next turn (see flow).
    if (this.backlog.length > 0 || this.paused) this.waitForTurn();
  };

  constructor(
    readonly ws: WebSocket,
    readonly who: Principal,
    private readonly limits: Pick<ClientLimits, 'outboundPause' | 'outboundDrop' | 'connectionInFlight'>,
  ) {}

  get open(): boolean {
    return this.ws.readyState === this.ws.OPEN && !this.dropping;
  }

  /** A JSON event (no id): process changes, signals, shm changes, pipe EOF. */
  push(event: object): void {
    this.send(JSON.stringify(event));
  }

  /**
   * A text frame that is JSON already (messages are stored as JSON text: no re-encoding), as a
   * string or as its UTF-8 bytes.
   */
  pushText(text: string | Buffer | readonly Buffer[]): void {
    if (typeof text === 'string' || Buffer.isBuffer(text)) return this.send(text, false);
    text.forEach((piece, i) => this.frame(piece, false, i === text.length - 1));
    this.flow();
  }

  /** A frame with bytes: a JSON header and the payload in one binary frame. */
  pushBinary(header: object, payload: Uint8Array): void {
    this.send(encodeBinaryFrame(header, payload));
  }

  /** A frame: text for a string, binary for bytes unless `binary` says otherwise. */
  send(data: string | Buffer, binary = typeof data !== 'string'): void {
    this.frame(data, binary, true);
    this.flow();
  }

  /**
   * Queues one piece of a message (`fin`: its last) and writes what this turn allows. A piece
   * larger than a slice (and its header's room) goes out as several frames of one message, a
   * slice per turn.
   */
  private frame(data: string | Buffer, binary: boolean, fin: boolean): void {
    if (!this.open) return;
    if (data.length > WRITE_SLICE + HEADER_ROOM) {
      const bytes = typeof data === 'string' ? Buffer.from(data) : data;
      for (let at = 0; at < bytes.length; at += WRITE_SLICE) {
        this.outbox.push({ data: bytes.subarray(at, at + WRITE_SLICE), binary, fin: fin && at + WRITE_SLICE >= bytes.length });
      }
      this.outboxBytes += data.length;
    } else if (this.outbox.length === 0 && this.writable() > 0) {
      // Nothing waits and this turn has room: straight to the socket (the common case).
      return this.hand(data, binary, fin);
    } else {
      this.outbox.push({ data, binary, fin });
      this.outboxBytes += data.length;
    }
    this.write();
  }

  /** Bytes this turn's slice has left. */
  private writable(): number {
    if (this.writtenTurn !== turn) return WRITE_SLICE;
    return WRITE_SLICE - this.written;
  }

  /** Writes queued frames, up to WRITE_SLICE bytes in this turn of the event loop; the rest on the next. */
  private write(): void {
    while (this.outbox.length > 0 && this.writable() > 0) {
      if (!this.open) {
        this.outbox.length = 0;
        this.outboxBytes = 0;
        return;
      }
      const { data, binary, fin } = this.outbox.shift()!;
      this.outboxBytes -= data.length;
      this.hand(data, binary, fin);
    }
    if (this.outbox.length > 0) this.waitForTurn();
  }

  /** One frame to ws, counted in this turn's slice. */
  private hand(data: string | Buffer, binary: boolean, fin: boolean): void {
    const now = thisTurn();
    if (this.writtenTurn !== now) {
      this.writtenTurn = now;
      this.written = 0;
    }
    this.written += data.length;
    this.cork();
    this.liveness.spoke = true;
    this.ws.send(data, binary ? (fin ? SEND.binary : SEND.binaryPiece) : fin ? SEND.text : SEND.textPiece, this.flowNow);
  }

  /**
   * Frames written to the client in one task (the answers of one group commit, a message pushed
   * with its sender's answer, an answer and the ack after it) leave in one writev, not one system
   * call each: on loopback a send also does the receiving side's work and wakes the client, and
   * that, per frame, was the kernel's largest cost on the IPC paths. The socket is uncorked on
   * process.nextTick, which runs once the task's promise continuations have all run (the answers
   * of a batch are such continuations), so no frame waits for another turn of the event loop.
   */
  private cork(): void {
    if (this.corked) return;
    // ws keeps its net.Socket there; without it (another transport), frames go out one by one.
    const socket = (this.ws as unknown as { _socket?: Socket })._socket;
    if (!socket || socket.destroyed) return;
    socket.cork();
    this.corked = socket;
    process.nextTick(uncork, this, socket);
  }

  /** What waits to reach the client: in the socket and in the queue of slices. */
  private get queued(): number {
    return this.ws.bufferedAmount + this.outboxBytes;
  }

  /**
   * Serves a request now, or once the connection is under its limits again. A frame already read
   * (a TCP read holds many) waits here; the socket is not read any further meanwhile.
   */
  serve(request: () => Promise<void>): void {
    this.backlog.push(request);
    this.flow();
  }

  private flow(): void {
    if (this.ws.readyState !== this.ws.OPEN) return;
    if (this.queued > this.limits.outboundDrop && !this.dropping) {
      this.dropping = true;
      this.backlog.length = 0;
      this.outbox.length = 0;
      this.outboxBytes = 0;
      this.ws.close(CLOSE_NOT_READING, 'the client does not read what it is sent');
      // Its close frame waits behind what it does not read: give it a few seconds, not more.
      setTimeout(() => this.ws.terminate(), 5000).unref();
      return;
    }
    const started = this.startedTurn === turn;
    if (this.backlog.length > 0 && this.room() && !this.dropping && !started) {
      const request = this.backlog.shift()!;
      this.inFlight++;
      // The next request starts on the next turn of the event loop, never in the same one: a
      // burst of heavy requests on one connection (each answer a MiB) must not hold the loop from
      // everyone else, /healthz and other clients.
      this.startedTurn = thisTurn();
      void request().then(this.requestDone, this.requestDone);
      if (this.backlog.length > 0) this.waitForTurn();
    } else if (this.backlog.length > 0 && started) this.waitForTurn();
    const over = this.backlog.length > 0 || !this.room();
    if (over && !this.paused) {
      this.paused = true;
      this.ws.pause();
    } else if (!over && this.paused && this.queued <= this.limits.outboundPause / 2) {
      this.paused = false;
      this.ws.resume();
    }
  }

  private room(): boolean {
    return this.queued <= this.limits.outboundPause && this.inFlight < this.limits.connectionInFlight;
  }

  private waitForTurn(): void {
    if (this.waiting) return;
    this.waiting = true;
    thisTurn();
    waitingForTurn.push(this);
  }

  /** The next turn of the event loop has come (it waited for it): write and serve what waits. */
  onTurn(): void {
    this.waiting = false;
    this.write();
    this.flow();
  }

  onClose(fn: () => void): void {
    this.cleanups.push(fn);
  }

  /** Runs the cleanups once (the socket closed). */
  close(): void {
    for (const fn of this.cleanups.splice(0)) fn();
  }
}
