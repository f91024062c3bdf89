import { EventEmitter } from 'node:events';
import type { Logger } from '../common/log.js';
import type { Process } from '../protocol/process.js';

export interface AgentPresence {
  gid: string;
  pid: number;
  connected: boolean;
}

/**
 * What the kernel announces, for observers (WebSocket subscribers, metrics, waiters, the sim's
 * report): every process state change, agents coming and going, groups deleted. Work that must
 * happen when a process is forked or ends is not an observer: it is a ProcessHooks reaction.
 */
export type KernelEventMap = {
  /** `elsewhere`: another kernel on the same store made the change (see src/bus). */
  process: [Process, elsewhere?: boolean];
  agent: [AgentPresence];
  'group-deleted': [string, elsewhere?: boolean];
};

export class KernelEvents extends EventEmitter<KernelEventMap> {
  constructor() {
    super();
    this.setMaxListeners(0);
  }
}

/**
 * Reactions to a process's life by the parts that keep state about processes (pipes, mailboxes,
 * tokens, files, queued signals). The kernel runs them in registration order and awaits each
 * before it announces the change, so whoever is woken by the announcement sees them done.
 * The composition root (src/server/start.ts) registers them all in one place.
 */
export interface ProcessHooks {
  /** Names the reaction in logs. */
  name: string;
  /** A process was created by fork, before its VM boots (a child inherits from its parent here). */
  forked?(p: Process): void | Promise<void>;
  /** A process reached its terminal state (once), or its fork was rolled back. */
  ended?(p: Process): void | Promise<void>;
  /** A process's VM is no more: destroyed by the kernel, failed, stopped or lost (after `ended`). */
  vmGone?(p: Process): void | Promise<void>;
  /** A group and everything in it is gone. */
  groupDeleted?(gid: string): void | Promise<void>;
  /**
   * Another kernel on the same store saw the process end and ran `ended` there (what is stored
   * is done): forget what this kernel keeps in memory for it. Several kernels only (src/bus).
   */
  endedElsewhere?(p: Process): void | Promise<void>;
  /** Another kernel deleted the group: the same, for the group. */
  groupDeletedElsewhere?(gid: string): void | Promise<void>;
}

type Stage = 'forked' | 'ended' | 'vmGone' | 'groupDeleted' | 'endedElsewhere' | 'groupDeletedElsewhere';

export class Hooks {
  private readonly list: ProcessHooks[] = [];

  constructor(private readonly log: Logger) {}

  use(hooks: ProcessHooks): void {
    this.list.push(hooks);
  }

  /** Runs one stage of every reaction; a reaction that fails is logged and does not stop the others. */
  async run(stage: 'forked' | 'ended' | 'vmGone' | 'endedElsewhere', p: Process): Promise<void>;
  async run(stage: 'groupDeleted' | 'groupDeletedElsewhere', gid: string): Promise<void>;
  async run(stage: Stage, arg: Process | string): Promise<void> {
    for (const h of this.list) {
      const fn = h[stage] as ((a: Process | string) => void | Promise<void>) | undefined;
      if (!fn) continue;
      try {
        await fn.call(h, arg);
      } catch (err) {
        this.log.error({ err, hook: h.name, stage }, 'a process reaction failed');
      }
    }
  }
}
