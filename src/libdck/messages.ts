import type { KernelSocket } from '../client/kernel-socket.js';

export interface Message {
  seq: number;
  /** The sender's PID (0: an operator). */
  from: number;
  /** The JSON value sent, or a Buffer for bytes. */
  data: unknown;
}

/**
 * The process's mailbox as an async iterator. Messages arrive in send order per sender, at least
 * once from the kernel; seqs already seen are dropped here, so each reaches the app once. A
 * message is acknowledged when the consumer asks for the next one (it has been handled).
 */
export async function* receive(conn: KernelSocket, window = 256): AsyncGenerator<Message> {
  const queue: Message[] = [];
  let wake: (() => void) | null = null;
  let lastSeen = 0;
  // Acks are cumulative: one in flight at a time, for the newest handled seq, so a fast consumer
  // is not held to one round trip per message.
  let handled = 0;
  let acked = 0;
  let acking = false;
  const ack = (): void => {
    if (acking || handled <= acked) return;
    acking = true;
    const seq = handled;
    void conn.call('ack', { seq }).then(
      () => {
        acked = Math.max(acked, seq);
        acking = false;
        ack();
      },
      () => {
        // Lost with the connection: sent again once receiving has restarted.
        acking = false;
      },
    );
  };
  const onEvent = (e: { event?: string; seq?: number; from?: number; data?: unknown }, payload?: Buffer): void => {
    if (e.event !== 'message' || typeof e.seq !== 'number') return;
    if (e.seq <= lastSeen) {
      // Delivered again after a reconnect: already ours. The kernel sends it because it has not
      // heard our ack, and stops at its window until it does: tell it how far we are.
      if (e.seq <= handled) ack();
      return;
    }
    lastSeen = e.seq;
    queue.push({ seq: e.seq, from: e.from ?? 0, data: payload ?? e.data });
    wake?.();
  };
  const restart = (): void => void conn.call('recv.start', { window }).then(ack, () => {});
  conn.on('event', onEvent);
  conn.on('reconnect', restart);
  try {
    await conn.call('recv.start', { window });
    for (;;) {
      while (queue.length === 0) await new Promise<void>((r) => (wake = r));
      wake = null;
      const m = queue.shift()!;
      yield m;
      handled = m.seq;
      ack();
    }
  } finally {
    conn.off('event', onEvent);
    conn.off('reconnect', restart);
  }
}
