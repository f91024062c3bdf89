import type { WebSocket } from 'ws';
import type { Principal } from '../auth/auth.js';
import type { ClientLimits } from '../auth/limits.js';
import { encodeBinaryFrame } from '../protocol/binary-frame.js';

export type Role = 'agent' | 'app' | 'admin';

/** The WebSocket close code for a client that does not read what it is sent (RFC 6455: policy). */
export const CLOSE_NOT_READING = 1008;

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
  /** Per-connection state that operations keep (receivers, subscriptions), by owner. */
  readonly state = new Map<string, unknown>();
  private readonly cleanups: Array<() => void> = [];
  private inFlight = 0;
  /** Requests read but not started: they wait while the connection is over its limits. */
  private readonly backlog: Array<() => Promise<void>> = [];
  private paused = false;
  private turnAsked = false;
  /** A request of this connection started in this turn of the event loop (see nextTurn). */
  private startedThisTurn = false;
  private dropping = false;

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

  /** Text that is a JSON frame already (messages are stored as JSON text: no re-encoding). */
  pushText(text: string): void {
    this.send(text);
  }

  /** A frame with bytes: a JSON header and the payload in one binary frame. */
  pushBinary(header: object, payload: Uint8Array): void {
    this.send(encodeBinaryFrame(header, payload));
  }

  send(data: string | Buffer): void {
    if (!this.open) return;
    this.ws.send(data, () => this.flow());
    this.flow();
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
    const queued = this.ws.bufferedAmount;
    if (queued > this.limits.outboundDrop && !this.dropping) {
      this.dropping = true;
      this.backlog.length = 0;
      this.ws.close(CLOSE_NOT_READING, 'the client does not read what it is sent');
      // Its close frame waits behind what it does not read: give it a few seconds, not more.
      setTimeout(() => this.ws.terminate(), 5000).unref();
      return;
    }
    const room = (): boolean => this.ws.bufferedAmount <= this.limits.outboundPause && this.inFlight < this.limits.connectionInFlight;
    if (this.backlog.length > 0 && room() && !this.dropping && !this.startedThisTurn) {
      const request = this.backlog.shift()!;
      this.inFlight++;
      this.startedThisTurn = true;
      void request().finally(() => {
        this.inFlight--;
        this.nextTurn();
      });
      this.nextTurn();
    } else if (this.backlog.length > 0 && this.startedThisTurn) this.nextTurn();
    const over = this.backlog.length > 0 || !room();
    if (over && !this.paused) {
      this.paused = true;
      this.ws.pause();
    } else if (!over && this.paused && this.ws.bufferedAmount <= this.limits.outboundPause / 2) {
      this.paused = false;
      this.ws.resume();
    }
  }

  /**
   * The next request starts on the next turn of the event loop, never in the same one: a burst of
   * heavy requests on one connection (each answer a MiB) must not hold the loop from everyone
   * else, /healthz and other clients.
   */
  private nextTurn(): void {
    if (this.turnAsked) return;
    this.turnAsked = true;
    setImmediate(() => {
      this.turnAsked = false;
      this.startedThisTurn = false;
      this.flow();
    });
  }

  onClose(fn: () => void): void {
    this.cleanups.push(fn);
  }

  /** Runs the cleanups once (the socket closed). */
  close(): void {
    for (const fn of this.cleanups.splice(0)) fn();
  }
}
