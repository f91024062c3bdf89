import { EventEmitter } from 'node:events';
import type { Principal } from '../auth/auth.js';
import { RackError } from '../common/errors.js';
import { until } from '../common/until.js';
import { isTerminal, type Process } from '../protocol/process.js';
import type { MailboxLimits, MailboxStore, StoredMessage } from '../store/store.js';

export const MAX_MESSAGE = 1024 * 1024;

export interface OutgoingMessage {
  to: number;
  data: Buffer;
  binary: boolean;
  /** The sender's id for it: a resend with the same id is stored once. */
  mid: string | null;
}

/** Where a receiver's messages are pushed (a WebSocket connection). */
export type Deliver = (m: StoredMessage) => void;

interface Session {
  deliver: Deliver;
  window: number;
  /** Highest seq pushed in this session; everything above it is still to send. */
  sent: number;
  /** Pushed and not yet acknowledged, in seq order. */
  inflight: number[];
  pumping: boolean;
  again: boolean;
  closed: boolean;
}

/**
 * Mailboxes: messages between processes of a group (the seed's "Signal"). Stored durably before
 * the sender gets its answer, in the order each sender sent them (over any transport); pushed to
 * a receiver in seq order with a bounded window of unacknowledged messages; delivered again after
 * a reconnect until acknowledged.
 */
export class Messaging {
  private readonly sessions = new Map<string, Session>();
  /** The highest seq stored per mailbox since this kernel started: spares the store a query when nothing is new. */
  private readonly newest = new Map<string, number>();
  private readonly arrivals = new EventEmitter();
  /** Each sender's sends are stored one after the other: per-sender order is a promise. */
  private readonly senders = new Map<string, Promise<unknown>>();
  /**
   * Processes found live as targets, by `gid/pid`, until they end (forget): a send does not read
   * its target's row again for every message. A process ends once (PIDs are never reused), and
   * forget() runs then; a send that found its target live just before is cleared with its mailbox
   * (the clear is queued behind its append).
   */
  private readonly live = new Set<string>();
  /** How many processes were forgotten: a target read while one was is not cached (it may be that one). */
  private forgets = 0;

  constructor(
    private readonly store: MailboxStore,
    /** The process, or not_found (the kernel's lookup). */
    private readonly processOf: (gid: string, pid: number) => Promise<Process>,
    /** How much a mailbox of the group may hold (the group's quotas). */
    private readonly limits: (gid: string) => Promise<MailboxLimits>,
    /**
     * Set when other kernels share the store: each stored message is announced through it (the
     * bus), and receivers here are pushed only what they read from the store, in seq order
     * (another kernel may store into the same mailbox: a message in hand is not the next one).
     */
    private readonly announce?: (gid: string, to: number, seq: number) => void,
  ) {
    this.arrivals.setMaxListeners(0);
  }

  /** The process ended: its mailbox goes. */
  async forget(gid: string, pid: number): Promise<void> {
    this.live.delete(`${gid}/${pid}`);
    this.forgets++;
    this.newest.delete(`${gid}/${pid}`);
    await this.store.clear(gid, pid);
  }

  async send(who: Principal, gid: string, to: number, data: Buffer, binary: boolean, mid: string | null): Promise<number> {
    const [r] = await this.sendMany(who, gid, [{ to, data, binary, mid }]);
    if (r instanceof Error) throw r;
    return r!;
  }

  /**
   * Sends several messages in one step: they are stored in one transaction, in order, each on
   * its own (one that cannot be sent, because its target has ended or its mailbox is full, fails
   * alone). Answers each message's seq or its error, in the same order.
   */
  sendMany(who: Principal, gid: string, items: readonly OutgoingMessage[]): Promise<Array<number | RackError>> {
    const sender = who.kind === 'process' ? `${who.gid}/${who.pid}` : 'admin';
    const previous = this.senders.get(sender) ?? Promise.resolve();
    const mine = previous.catch(() => {}).then(() => this.store1(who, gid, items));
    this.senders.set(sender, mine);
    void mine.finally(() => this.senders.get(sender) === mine && this.senders.delete(sender)).catch(() => {});
    return mine;
  }

  private async store1(who: Principal, gid: string, items: readonly OutgoingMessage[]): Promise<Array<number | RackError>> {
    const from = who.kind === 'process' ? who.pid : 0;
    const results: Array<number | RackError> = new Array(items.length);
    const targets = new Map<number, RackError | null>();
    for (const to of new Set(items.map((m) => m.to))) {
      const key = `${gid}/${to}`;
      if (this.live.has(key)) {
        targets.set(to, null);
        continue;
      }
      try {
        const forgets = this.forgets;
        const t = await this.processOf(gid, to);
        const ended = isTerminal(t.status);
        targets.set(to, ended ? new RackError('conflict', `process ${to} has ended (${t.status}); nobody will read the message`) : null);
        if (!ended && forgets === this.forgets) this.live.add(key);
      } catch (err) {
        if (!(err instanceof RackError)) throw err;
        targets.set(to, err);
      }
    }
    const storable: Array<{ index: number; item: OutgoingMessage }> = [];
    items.forEach((m, index) => {
      const refused =
        m.data.length > MAX_MESSAGE
          ? new RackError('payload_too_large', `a message is at most ${MAX_MESSAGE} bytes, this one has ${m.data.length}`)
          : m.mid !== null && (m.mid.length === 0 || m.mid.length > 64)
            ? new RackError('bad_request', '"mid" must be 1-64 characters')
            : targets.get(m.to);
      if (refused) results[index] = refused;
      else storable.push({ index, item: m });
    });
    const stored = await this.store.appendMany(gid, from, storable.map(({ item }) => item), await this.limits(gid));
    stored.forEach((r, i) => {
      const { index, item } = storable[i]!;
      results[index] = r;
      if (typeof r === 'number') {
        this.arrived(gid, item.to, { seq: r, from, data: item.data, binary: item.binary });
        this.announce?.(gid, item.to, r);
      }
    });
    return results;
  }

  /** A message is stored: wake REST readers, and push it to a connected receiver. */
  private arrived(gid: string, to: number, m: StoredMessage): void {
    const key = `${gid}/${to}`;
    const before = this.newest.get(key);
    if (before === undefined || m.seq > before) this.newest.set(key, m.seq);
    this.arrivals.emit('arrived', key);
    const s = this.sessions.get(key);
    if (!s) return;
    // A receiver that has everything before this message gets it straight from here (it is
    // stored already); otherwise the pump reads what it is missing from the store, in order.
    if (!this.announce && before !== undefined && m.seq > before && s.sent === before && !s.pumping && !s.closed && s.inflight.length < s.window) {
      s.deliver(m);
      s.sent = m.seq;
      s.inflight.push(m.seq);
    } else {
      void this.pump(gid, to, s);
    }
  }

  /** Another kernel stored message `seq` for `to`: its receiver here reads it from the store. */
  storedElsewhere(gid: string, to: number, seq: number): void {
    const key = `${gid}/${to}`;
    if ((this.newest.get(key) ?? 0) < seq) this.newest.set(key, seq);
    this.arrivals.emit('arrived', key);
    const s = this.sessions.get(key);
    if (s) void this.pump(gid, to, s);
  }

  /** Looks at the store again for every receiver and long poll here (an announcement may have been lost). */
  recheck(): void {
    this.newest.clear();
    this.arrivals.emit('arrived', '*');
    for (const [key, s] of this.sessions) {
      const at = key.lastIndexOf('/');
      void this.pump(key.slice(0, at), Number(key.slice(at + 1)), s);
    }
  }

  /** Starts pushing `pid`'s messages to `deliver`; a newer session of the same process replaces it. */
  async receive(gid: string, pid: number, deliver: Deliver, window = 256): Promise<{ close(): void }> {
    await this.processOf(gid, pid);
    const key = `${gid}/${pid}`;
    const old = this.sessions.get(key);
    if (old) old.closed = true;
    const s: Session = { deliver, window: Math.max(1, Math.min(window, 10_000)), sent: 0, inflight: [], pumping: false, again: false, closed: false };
    this.sessions.set(key, s);
    void this.pump(gid, pid, s);
    return {
      close: () => {
        s.closed = true;
        if (this.sessions.get(key) === s) this.sessions.delete(key);
      },
    };
  }

  private async pump(gid: string, pid: number, s: Session): Promise<void> {
    if (s.pumping) {
      s.again = true;
      return;
    }
    s.pumping = true;
    try {
      do {
        s.again = false;
        while (!s.closed && s.inflight.length < s.window) {
          const newest = this.newest.get(`${gid}/${pid}`);
          if (newest !== undefined && newest <= s.sent) break;
          const batch = await this.store.after(gid, pid, s.sent, s.window - s.inflight.length);
          if (batch.length === 0) break;
          for (const m of batch) {
            if (s.closed) return;
            s.deliver(m);
            s.sent = m.seq;
            s.inflight.push(m.seq);
          }
        }
      } while (s.again && !s.closed);
    } finally {
      s.pumping = false;
    }
  }

  /** The oldest unacknowledged message, waiting up to `timeoutMs` for one (a long poll). */
  async next(gid: string, pid: number, timeoutMs: number): Promise<StoredMessage> {
    await this.processOf(gid, pid);
    const key = `${gid}/${pid}`;
    return until(
      this.arrivals,
      'arrived',
      (k: string) => k === key || k === '*',
      async () => (await this.store.after(gid, pid, 0, 1))[0] ?? null,
      Date.now() + timeoutMs,
      { timeoutMessage: 'no message arrived in time; call again to keep waiting' },
    );
  }

  /** Acknowledges every message up to `seq`; a receiving session gets room for more. */
  async ack(gid: string, pid: number, seq: number): Promise<void> {
    await this.store.ack(gid, pid, seq);
    const s = this.sessions.get(`${gid}/${pid}`);
    if (!s || s.closed) return;
    while (s.inflight.length > 0 && s.inflight[0]! <= seq) s.inflight.shift();
    void this.pump(gid, pid, s);
  }
}
