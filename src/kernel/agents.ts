import type { Logger } from '../common/log.js';
import type { SignalEvent } from '../protocol/channel.js';
import type { SignalQueueStore } from '../store/store.js';
import type { KernelEvents } from './events.js';

/** A live channel to one process's guest agent (a WebSocket connection, in the API layer). */
export interface AgentLink {
  send(event: SignalEvent): void;
}

/**
 * The guest agents connected right now, and the signals waiting for those that are not. Queued
 * signals are stored (a kernel restart keeps them) and delivered in order on the agent's next
 * connection, ahead of any sent meanwhile.
 */
export class Agents {
  private readonly links = new Map<string, AgentLink>();
  /** Agents whose queued signals are being sent: newer signals wait for them. */
  private readonly flushing = new Map<string, Promise<void>>();

  constructor(
    private readonly queue: SignalQueueStore,
    private readonly events: KernelEvents,
    private readonly log: Logger,
    private readonly track: (work: Promise<unknown>) => void,
  ) {}

  connected(gid: string, pid: number): boolean {
    return this.links.has(`${gid}/${pid}`);
  }

  /** Registers a process's agent channel and flushes what waited for it; returns the detach. */
  attach(gid: string, pid: number, link: AgentLink): () => void {
    const key = `${gid}/${pid}`;
    this.links.set(key, link);
    const flush = this.queue.take(gid, pid).then((queued) => {
      for (const ev of queued) link.send(JSON.parse(ev) as SignalEvent);
    });
    this.flushing.set(key, flush);
    this.track(flush.finally(() => this.flushing.get(key) === flush && this.flushing.delete(key)));
    this.log.info({ gid, pid }, 'agent connected');
    this.events.emit('agent', { gid, pid, connected: true });
    return () => {
      if (this.links.get(key) !== link) return;
      this.links.delete(key);
      this.log.info({ gid, pid }, 'agent disconnected');
      this.events.emit('agent', { gid, pid, connected: false });
    };
  }

  /** Sends to the agent now, or stores the event until it connects. */
  async send(gid: string, pid: number, event: SignalEvent): Promise<void> {
    const key = `${gid}/${pid}`;
    await this.flushing.get(key);
    const link = this.links.get(key);
    if (link) link.send(event);
    else await this.queue.push(gid, pid, JSON.stringify(event));
  }

  /** The process ended: nothing will ever be delivered to it. */
  forget(gid: string, pid: number): Promise<void> {
    return this.queue.clear(gid, pid);
  }
}
