import type { Logger } from '../common/log.js';
import type { SignalEvent } from '../protocol/channel.js';
import type { SignalQueueStore } from '../store/store.js';
import type { KernelBus } from '../bus/bus.js';
import type { KernelEvents } from './events.js';

/** A live channel to one process's guest agent (a WebSocket connection, in the API layer). */
export interface AgentLink {
  send(event: SignalEvent): void;
}

/**
 * The guest agents connected right now, and the signals waiting for those that are not. Queued
 * signals are stored (a kernel restart keeps them) and delivered in order on the agent's next
 * connection, ahead of any sent meanwhile.
 *
 * With several kernels on one store, an agent not connected here may be connected to another
 * kernel: its signal is queued in the store all the same and the bus says so; the kernel that
 * holds the agent takes the queue and delivers it. Taking the queue is atomic in the store, so
 * each signal is delivered once, by whichever kernel takes it (or on the agent's next connection).
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
    private readonly bus: KernelBus,
  ) {}

  connected(gid: string, pid: number): boolean {
    return this.links.has(`${gid}/${pid}`);
  }

  /** Registers a process's agent channel and flushes what waited for it; returns the detach. */
  attach(gid: string, pid: number, link: AgentLink): () => void {
    const key = `${gid}/${pid}`;
    this.links.set(key, link);
    this.flush(gid, pid);
    this.log.info({ gid, pid }, 'agent connected');
    this.events.emit('agent', { gid, pid, connected: true });
    return () => {
      if (this.links.get(key) !== link) return;
      this.links.delete(key);
      this.log.info({ gid, pid }, 'agent disconnected');
      this.events.emit('agent', { gid, pid, connected: false });
    };
  }

  /** Delivers what is queued for a connected agent, after any delivery under way. */
  private flush(gid: string, pid: number): void {
    const key = `${gid}/${pid}`;
    const flush = (this.flushing.get(key) ?? Promise.resolve()).then(async () => {
      const link = this.links.get(key);
      if (!link) return;
      for (const ev of await this.queue.take(gid, pid)) link.send(JSON.parse(ev) as SignalEvent);
    });
    this.flushing.set(key, flush);
    this.track(flush.finally(() => this.flushing.get(key) === flush && this.flushing.delete(key)));
  }

  /** Sends to the agent now, or stores the event until it connects (here or, told by the bus, on another kernel). */
  async send(gid: string, pid: number, event: SignalEvent): Promise<void> {
    const key = `${gid}/${pid}`;
    await this.flushing.get(key);
    const link = this.links.get(key);
    if (link) return link.send(event);
    await this.queue.push(gid, pid, JSON.stringify(event));
    this.bus.publish({ t: 'signals', gid, pid });
  }

  /** Another kernel queued signals for `gid/pid`: delivered if its agent is connected here. */
  queuedElsewhere(gid: string, pid: number): void {
    if (this.links.has(`${gid}/${pid}`)) this.flush(gid, pid);
  }

  /** The periodic look at the store (a bus publication may have been lost): every agent here gets what waits for it. */
  recheck(): void {
    for (const key of this.links.keys()) {
      const at = key.lastIndexOf('/');
      this.flush(key.slice(0, at), Number(key.slice(at + 1)));
    }
  }

  /** The process ended: nothing will ever be delivered to it. */
  forget(gid: string, pid: number): Promise<void> {
    return this.queue.clear(gid, pid);
  }
}
