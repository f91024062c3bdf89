import type { Logger } from '../common/log.js';
import { until } from '../common/until.js';
import type { ComputeDriver } from '../compute/driver.js';
import { isTerminal, type Process } from '../protocol/process.js';
import type { KillStore, ProcessStore } from '../store/store.js';
import type { Agents } from './agents.js';
import type { KernelEvents } from './events.js';
import type { ProcessTable } from './process-table.js';

export interface KillOptions {
  signal?: 'TERM' | 'KILL';
  graceMs?: number;
}

/** VMs destroyed at the same time by one kill, unless the driver says how many it takes. */
const DESTROY_CONCURRENCY = 64;

/** Runs `fn` on every item, at most `limit` at a time. */
async function forEachLimited<T>(items: readonly T[], limit: number, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < items.length) await fn(items[next++]!);
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
}

/** The process and its descendants, deepest first (children before their parents). */
export function subtreeOf(all: readonly Process[], pid: number): Process[] {
  const children = new Map<number, Process[]>();
  for (const p of all) {
    if (p.ppid === null) continue;
    const list = children.get(p.ppid) ?? [];
    list.push(p);
    children.set(p.ppid, list);
  }
  const root = all.find((p) => p.pid === pid);
  if (!root) return [];
  const levels: Process[][] = [];
  let frontier = [root];
  while (frontier.length > 0) {
    levels.push(frontier);
    frontier = frontier.flatMap((p) => children.get(p.pid) ?? []);
  }
  return levels.reverse().flatMap((level) => [...level].sort((a, b) => b.pid - a.pid));
}

/**
 * kill(): a process and every descendant end, deepest first. TERM asks each app to stop and
 * destroys what is left after the grace period; KILL destroys at once. A kill in progress is
 * stored first, so a kernel that dies during the grace period finishes it when it starts again.
 */
export class Killer {
  constructor(
    private readonly deps: {
      processes: ProcessStore;
      kills: KillStore;
      table: ProcessTable;
      agents: Agents;
      compute: ComputeDriver;
      events: KernelEvents;
      log: Logger;
      /** The fork queue: a queued process that is killed just leaves it. */
      queue: { unqueue(gid: string, pid: number): boolean };
      /** See Waits: set when other kernels share the store. */
      recheckMs?: number;
    },
  ) {}

  async subtree(gid: string, pid: number): Promise<Process[]> {
    return subtreeOf(await this.deps.processes.list(gid), pid);
  }

  /** Stores a kill in progress: a restarted kernel finishes it (a TERM's grace goes on). */
  record(gid: string, pid: number, signal: 'TERM' | 'KILL', graceMs: number): Promise<void> {
    return this.deps.kills.put({ gid, pid, signal, deadline: Date.now() + (signal === 'TERM' ? graceMs : 0) });
  }

  async terminate(gid: string, pid: number, signal: 'TERM' | 'KILL', graceMs: number): Promise<void> {
    const { processes, kills, table, agents, compute, log, queue } = this.deps;
    await this.record(gid, pid, signal, graceMs);
    const order = await this.subtree(gid, pid);
    log.info({ gid, pid, signal, grace_ms: graceMs, pids: order.map((p) => p.pid) }, 'kill');
    // Queued processes have no VM and no app yet: they leave the queue and end at once.
    for (const p of order) {
      if (p.status === 'QUEUED' && queue.unqueue(gid, p.pid)) await table.end(gid, p.pid, { status: 'KILLED', signal, app_state: 'exited' });
    }
    if (signal === 'TERM') {
      const live = (await this.subtree(gid, pid)).filter((p) => !isTerminal(p.status) && p.status !== 'QUEUED');
      for (const p of live) await agents.send(gid, p.pid, { event: 'signal', signal: 'TERM', grace_ms: graceMs });
      await this.untilEnded(gid, live.map((p) => p.pid), Date.now() + graceMs);
    }
    // The VMs go together (a bounded number of destroys at once: a driver may batch them, a
    // cloud takes them in parallel); the processes then end in order, deepest first.
    const current = (await Promise.all(order.map((p) => processes.get(gid, p.pid)))).filter((p): p is Process => p !== null);
    const failed = new Map<number, string>();
    await forEachLimited(current, compute.destroyConcurrency ?? DESTROY_CONCURRENCY, async (p) => {
      if (!p.compute_id) return;
      await compute.destroy(p.compute_id).catch((err: Error) => {
        log.warn({ gid, pid: p.pid, err: err.message }, 'destroy failed');
        failed.set(p.pid, err.message);
      });
    });
    for (const p of current) {
      const why = failed.get(p.pid);
      if (why !== undefined) {
        await table.end(gid, p.pid, { status: 'ERROR', error: `destroy failed: ${why}` });
        continue;
      }
      await table.end(gid, p.pid, { status: 'KILLED', signal, app_state: 'exited' });
      await table.vmGone(p);
    }
    await kills.delete(gid, pid);
  }

  /** Resolves once every one of `pids` has ended, or at the deadline (the grace period is over). */
  private async untilEnded(gid: string, pids: number[], deadline: number): Promise<void> {
    const waiting = new Set(pids);
    await until(
      this.deps.events,
      'process',
      (p: Process) => p.gid === gid && waiting.has(p.pid),
      async () => {
        for (const pid of [...waiting]) {
          const p = await this.deps.processes.get(gid, pid);
          if (!p || isTerminal(p.status)) waiting.delete(pid);
        }
        return waiting.size === 0 ? true : null;
      },
      deadline,
      { onTimeout: () => false, recheckMs: this.deps.recheckMs },
    );
  }

  /**
   * Whether a kill in progress covers the process (it or an ancestor is being killed): its VM's
   * end is the kill's doing, and the kill says how the process ended.
   */
  async covers(p: Process): Promise<boolean> {
    const roots = new Set((await this.deps.kills.list()).filter((k) => k.gid === p.gid).map((k) => k.pid));
    for (let at: Process | null = p; at; at = at.ppid === null ? null : await this.deps.processes.get(p.gid, at.ppid)) {
      if (roots.has(at.pid)) return true;
    }
    return false;
  }

  /** The kills a previous run did not finish: the rest of a TERM's grace, then destroy. */
  async unfinished(): Promise<Array<{ gid: string; pid: number; signal: 'TERM' | 'KILL'; graceMs: number }>> {
    return (await this.deps.kills.list()).map((k) => ({ gid: k.gid, pid: k.pid, signal: k.signal, graceMs: Math.max(0, k.deadline - Date.now()) }));
  }
}
