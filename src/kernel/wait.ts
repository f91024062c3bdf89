import { RackError } from '../common/errors.js';
import { until } from '../common/until.js';
import { appStarted, isTerminal, LIVE_STATUSES, waitResultOf, type Process, type WaitResult } from '../protocol/process.js';
import type { ProcessStore } from '../store/store.js';
import type { KernelEvents } from './events.js';

/** The long polls on the process table: wait() for a child's end, and waitRunning() for apps. */
export class Waits {
  constructor(
    private readonly processes: ProcessStore,
    private readonly events: KernelEvents,
    /** Set when other kernels share the store: their events may be lost, the store is looked at again this often. */
    private readonly recheckMs?: number,
  ) {}

  /**
   * How a child of `ppid` ended: the given one, or any child not yet reaped (each is reaped
   * once; a request id seen before gets the child it reaped then). Rejects with no_child when
   * there is nothing to wait for, timeout at the deadline.
   */
  async child(gid: string, ppid: number, pid: number | undefined, deadline: number, rid: string | null = null): Promise<WaitResult> {
    if (pid !== undefined) {
      const child = await this.processes.get(gid, pid);
      if (!child || child.ppid !== ppid) throw new RackError('no_child', `process ${pid} is not a child of ${ppid}`);
      const ended = await until(this.events, 'process', (p: Process) => p.gid === gid && p.pid === pid, async () => {
        const c = await this.processes.get(gid, pid);
        return c && isTerminal(c.status) ? c : null;
      }, deadline, { recheckMs: this.recheckMs });
      await this.processes.markReaped(gid, ended.pid);
      return waitResultOf(ended)!;
    }
    const ended = await until(this.events, 'process', (p: Process) => p.gid === gid && p.ppid === ppid, async () => {
      const reaped = await this.processes.reapAny(gid, ppid, rid);
      if (reaped) return reaped;
      const live = await this.processes.list(gid, { ppid, status: LIVE_STATUSES });
      if (live.length > 0) return null;
      // A child live at the first read may have ended before the second (with a networked store
      // the two are round trips apart): it is ended and unreaped now, so look once more.
      const late = await this.processes.reapAny(gid, ppid, rid);
      if (late) return late;
      throw new RackError('no_child', `process ${ppid} has no child left to wait for`);
    }, deadline, { recheckMs: this.recheckMs });
    return waitResultOf(ended)!;
  }

  /** Waits until each app reports running (or, with `ready`, ready); conflict if one ends first, timeout at the deadline. */
  async running(gid: string, pids: readonly number[], deadline: number, wantReady = false): Promise<Process[]> {
    const out: Process[] = [];
    for (const pid of pids) {
      const ready = (c: Process): boolean => (wantReady ? c.app_state === 'ready' : appStarted(c.app_state)) || isTerminal(c.status);
      const p = await until(this.events, 'process', (e: Process) => e.gid === gid && e.pid === pid && ready(e), async () => {
        const c = await this.processes.get(gid, pid);
        if (!c) throw new RackError('not_found', `no process ${pid} in group ${gid}`);
        return ready(c) ? c : null;
      }, deadline, { recheckMs: this.recheckMs });
      if (isTerminal(p.status)) throw new RackError('conflict', `process ${pid} ended (${p.status}) before its app ${wantReady ? 'was ready' : 'ran'}`);
      out.push(p);
    }
    return out;
  }
}
