import type { WebSocket } from 'ws';
import type { Principal } from '../auth/auth.js';
import { encodeBinaryFrame } from '../protocol/binary-frame.js';

export type Role = 'agent' | 'app' | 'admin';

/**
 * One client's WebSocket as the kernel sees it: who it is (its token, the role it said hello
 * with), how to push events to it, and what to undo when it goes (subscriptions, receivers,
 * pipe ends, an agent's registration).
 */
export class Connection {
  role: Role | null = null;
  /** Per-connection state that operations keep (receivers, subscriptions), by owner. */
  readonly state = new Map<string, unknown>();
  private readonly cleanups: Array<() => void> = [];

  constructor(
    readonly ws: WebSocket,
    readonly who: Principal,
  ) {}

  get open(): boolean {
    return this.ws.readyState === this.ws.OPEN;
  }

  /** A JSON event (no id): process changes, signals, shm changes, pipe EOF. */
  push(event: object): void {
    if (this.open) this.ws.send(JSON.stringify(event));
  }

  /** Text that is a JSON event already (messages are stored as JSON text: no re-encoding). */
  pushText(text: string): void {
    if (this.open) this.ws.send(text);
  }

  /** An event with bytes: a JSON header and the payload in one binary frame. */
  pushBinary(header: object, payload: Uint8Array): void {
    if (this.open) this.ws.send(encodeBinaryFrame(header, payload));
  }

  onClose(fn: () => void): void {
    this.cleanups.push(fn);
  }

  /** Runs the cleanups once (the socket closed). */
  close(): void {
    for (const fn of this.cleanups.splice(0)) fn();
  }
}
