import { RackError } from '../common/errors.js';
import type { Principal } from './auth.js';

/** What one client may take of the kernel. Every figure is per process token; the admin token is not limited. */
export interface ClientLimits {
  /** Requests per second (a token bucket that refills at this rate) ... */
  rate: number;
  /** ... and how many may come at once after a quiet spell. */
  burst: number;
  /** Requests of one token being served at the same time (REST and WebSocket together). */
  inFlight: number;
  /** WebSocket connections one token may hold open. */
  connections: number;
  /** Bytes queued to one WebSocket before the kernel stops reading from it ... */
  outboundPause: number;
  /** ... and before it drops the connection (a client that does not read). */
  outboundDrop: number;
  /** Requests one WebSocket may have in the kernel before the kernel stops reading from it. */
  connectionInFlight: number;
}

export const DEFAULT_LIMITS: ClientLimits = {
  rate: 10_000,
  burst: 20_000,
  inFlight: 256,
  connections: 32,
  outboundPause: 8 * 1024 * 1024,
  outboundDrop: 64 * 1024 * 1024,
  connectionInFlight: 16,
};

interface Bucket {
  tokens: number;
  at: number;
  inFlight: number;
  connections: number;
}

/**
 * Request rate, requests in flight and connections, per process token. A client over a limit is
 * told so (rate_limited, 429) at once, and nothing of its request is done: the kernel's work and
 * memory per client stay bounded whatever the client does.
 */
export class Limiter {
  private readonly buckets = new Map<string, Bucket>();

  constructor(readonly limits: ClientLimits = DEFAULT_LIMITS) {}

  private bucket(who: Extract<Principal, { kind: 'process' }>): Bucket {
    const key = `${who.gid}/${who.pid}/${who.role}`;
    let b = this.buckets.get(key);
    if (!b) this.buckets.set(key, (b = { tokens: this.limits.burst, at: Date.now(), inFlight: 0, connections: 0 }));
    return b;
  }

  /** Admits one request: throws rate_limited, or answers the function that ends it (call it once). */
  admit(who: Principal): () => void {
    if (who.kind !== 'process') return () => {};
    const b = this.bucket(who);
    const now = Date.now();
    b.tokens = Math.min(this.limits.burst, b.tokens + ((now - b.at) / 1000) * this.limits.rate);
    b.at = now;
    if (b.tokens < 1) throw new RackError('rate_limited', `process ${who.pid} sends more than ${this.limits.rate} requests a second: slow down`);
    if (b.inFlight >= this.limits.inFlight) throw new RackError('rate_limited', `process ${who.pid} has ${b.inFlight} requests in the kernel already (at most ${this.limits.inFlight}): wait for their answers`);
    b.tokens -= 1;
    b.inFlight++;
    let done = false;
    return () => {
      if (done) return;
      done = true;
      b.inFlight--;
      this.tidy(who, b);
    };
  }

  /** Admits one WebSocket connection; answers the function that ends it. */
  connect(who: Principal): () => void {
    if (who.kind !== 'process') return () => {};
    const b = this.bucket(who);
    if (b.connections >= this.limits.connections) {
      throw new RackError('rate_limited', `process ${who.pid} holds ${b.connections} WebSocket connections already (at most ${this.limits.connections})`);
    }
    b.connections++;
    let done = false;
    return () => {
      if (done) return;
      done = true;
      b.connections--;
      this.tidy(who, b);
    };
  }

  /** A token that is idle and whose bucket would be full again is forgotten (memory per token is bounded). */
  private tidy(who: Extract<Principal, { kind: 'process' }>, b: Bucket): void {
    if (b.inFlight > 0 || b.connections > 0) return;
    if (b.tokens + ((Date.now() - b.at) / 1000) * this.limits.rate >= this.limits.burst) this.buckets.delete(`${who.gid}/${who.pid}/${who.role}`);
  }
}
