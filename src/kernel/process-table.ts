import type { Logger } from '../common/log.js';
import type { Process, Quotas } from '../protocol/process.js';
import type { NewProcess, ProcessPatch, ProcessStore } from '../store/store.js';
import type { Hooks, KernelEvents } from './events.js';

/**
 * The process table's state transitions, and the only place that makes them: every change is
 * stored, then reacted to (hooks), then announced (events). A terminal state is reached at most
 * once per process, whoever races for it (an exit report, a kill, a VM that died).
 */
export class ProcessTable {
  constructor(
    private readonly processes: ProcessStore,
    private readonly events: KernelEvents,
    private readonly hooks: Hooks,
    private readonly log: Logger,
  ) {}

  get(gid: string, pid: number): Promise<Process | null> {
    return this.processes.get(gid, pid);
  }

  /** New processes (BUILD, consecutive PIDs); each is reacted to as forked, then announced. */
  async create(gid: string, rows: readonly NewProcess[], quotas: Pick<Quotas, 'processes' | 'forks'>): Promise<Process[]> {
    const created = await this.processes.insert(gid, rows, quotas);
    for (const p of created) {
      this.log.info({ gid, pid: p.pid, ppid: p.ppid, template: p.template }, 'fork');
      await this.hooks.run('forked', p);
      this.events.emit('process', p);
    }
    return created;
  }

  async change(gid: string, pid: number, patch: ProcessPatch): Promise<Process | null> {
    const p = await this.processes.update(gid, pid, patch);
    if (p) this.events.emit('process', p);
    return p;
  }

  /** A change that applies only while the process is live (it never resurrects an ended one). */
  async changeLive(gid: string, pid: number, patch: ProcessPatch): Promise<Process | null> {
    const p = await this.processes.updateLive(gid, pid, patch);
    if (p) this.events.emit('process', p);
    return p;
  }

  /** The one way into a terminal state; null when the process had ended already. */
  async end(gid: string, pid: number, patch: ProcessPatch): Promise<Process | null> {
    const p = await this.processes.updateLive(gid, pid, { ...patch, ended_at: new Date().toISOString() });
    if (!p) return null;
    this.log.info({ gid, pid, status: p.status, code: p.exit_code, signal: p.signal, error: p.error ?? undefined }, 'process ended');
    await this.hooks.run('ended', p);
    this.events.emit('process', p);
    return p;
  }

  /** The process's VM is no more (reactions forget what they kept for it, e.g. its agent's token). */
  async vmGone(p: Process): Promise<void> {
    await this.hooks.run('vmGone', p);
  }

  /**
   * Undoes a fork the compute service refused: the processes end (reactions clean up after
   * them, observers see them ERROR) and are then forgotten, as if the fork had never happened.
   */
  async rollback(created: readonly Process[], why: string): Promise<void> {
    for (const p of created) {
      await this.end(p.gid, p.pid, { status: 'ERROR', error: `fork refused: ${why}` });
      await this.vmGone(p);
    }
    if (created.length > 0) await this.processes.remove(created[0]!.gid, created.map((p) => p.pid));
  }
}
